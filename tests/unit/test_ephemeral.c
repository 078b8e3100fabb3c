/* What only the `ephemeral` backend does, driven directly (no HTTP): its uid slots are
 * shared with the other instances of a host through flocks, a failed set-up step fails
 * the job closed, and without cgroups it falls back to rlimits and says so. The
 * isolation every backend promises is checked in test_isolation.c. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/cgroup.h"
#include "sandbox_harness.h"

enum { UID_BASE = 2100000, UID_COUNT = 16 }; /* apart from the other backend tests (ctest -j) */

static int count_sandbox_processes(void)
{
    return count_processes_of_uids(UID_BASE, UID_BASE + 2 * UID_COUNT);
}

static int group_setup(void **state)
{
    harness_options o = {.backend = "ephemeral", .uid_base = UID_BASE, .uid_count = UID_COUNT};
    return harness_start(&o);
}

static int group_teardown(void **state)
{
    return harness_stop();
}

static void test_uid_slots_held_by_another_instance_are_skipped(void **state)
{
    /* Another executord on this host holds every slot but one (its flocks). */
    int fds[UID_COUNT];
    const int free_slot = 5;
    for (int i = 0; i < UID_COUNT; i++) {
        fds[i] = -1;
        if (i == free_slot)
            continue;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/uid-locks/slot-%d.lock", harness.tmp_root, UID_BASE + 2 * i);
        fds[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fds[i] >= 0);
        assert_int_equal(flock(fds[i], LOCK_EX | LOCK_NB), 0);
    }
    capture cap = {0};
    sandbox_outcome out;
    run_simple("def main():\n    return open('/proc/self/uid_map').read().split()\n", NULL, &cap, &out);
    char want[160];
    snprintf(want, sizeof want, "[\"0\", \"%d\", \"1\", \"1000\", \"%d\", \"1\"]", UID_BASE + 2 * free_slot,
             UID_BASE + 2 * free_slot + 1);
    expect_result(&out, &cap, want);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    for (int i = 0; i < UID_COUNT; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_setup_failure_fails_closed(void **state)
{
    /* The new root's mount point vanished (a /tmp cleaner, say): the job must fail with
     * the step and errno, and the script must not run at all. */
    char base[PATH_MAX * 2];
    snprintf(base, sizeof base, "%s/.ephemeral-root", harness.work_root);
    assert_int_equal(rmdir(base), 0);
    capture cap = {0};
    sandbox_outcome out;
    run_simple("print('ran')\ndef main():\n    return 1\n", NULL, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_SETUP_ERROR, "SandboxError",
                   "mount tmpfs on the new root: No such file or directory");
    assert_null(cap.buf[1]);
    assert_null(out.result_json);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    assert_int_equal(mkdir(base, 0700), 0);
    assert_int_equal(count_sandbox_processes(), 0);
}

/* Last: re-initialises the backend without cgroups and back. */
static void test_without_cgroups_falls_back_to_rlimits_and_says_so(void **state)
{
    assert_int_equal(harness_restart("/nonexistent-cgroupfs"), 0); /* available ... */
    const char *why = harness.why;
    assert_non_null(strstr(why, "rlimits only"));                  /* ... but never silently */
    assert_non_null(strstr(why, "/nonexistent-cgroupfs"));
    assert_string_equal(ephemeral_status(), why);
    assert_int_equal(sandbox_cgroup_mode(), CGROUP_NONE);

    sandbox_limits l = default_limits();
    l.memory_mb = 64;
    capture cap = {0};
    sandbox_outcome out;
    run_full("def main():\n"
             "    return len(bytearray(200 << 20))\n",
             NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "MemoryLimitExceeded", "64 MB");
    assert_int_equal(out.usage.memory_peak_bytes, -1);
    assert_int_equal(out.usage.oom_kills, -1);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    run_simple("def main():\n    return 7\n", NULL, &cap, &out);
    expect_result(&out, &cap, "7");
    sandbox_outcome_free(&out);
    capture_free(&cap);

    assert_int_equal(harness_restart(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uid_slots_held_by_another_instance_are_skipped),
        cmocka_unit_test(test_setup_failure_fails_closed),
        cmocka_unit_test(test_without_cgroups_falls_back_to_rlimits_and_says_so),
    };
    return cmocka_run_group_tests_name("ephemeral", tests, group_setup, group_teardown);
}
