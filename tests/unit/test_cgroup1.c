/* cgroup v1 job cgroups against a fake cgroupfs folder: detection (and the reason when
 * a controller is missing), the values written for a job's limits, usage read back,
 * kill through the freezer, removal, and cleanup of a crashed instance's leftovers. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "sandbox/cgroup.h"
#include "tests/unit/cgroup_fake.h"

static const char *const controllers[] = {"memory", "pids", "cpu", "cpuacct", "freezer"};

/* A v1 host like this development machine: five hierarchies, memsw present. */
static void make_v1(bool memsw)
{
    for (size_t i = 0; i < 5; i++) {
        char rel[64];
        fake_mkdir(controllers[i]);
        snprintf(rel, sizeof rel, "%s/cgroup.procs", controllers[i]);
        fake_write(rel, "");
    }
    fake_write("memory/memory.limit_in_bytes", "9223372036854771712\n");
    if (memsw)
        fake_write("memory/memory.memsw.limit_in_bytes", "9223372036854771712\n");
}

static int init_fake(char *why, size_t whylen)
{
    cgroup_options o = {.root = fake_root, .self_path = "/", .cpu_quota_percent = 50, .fake_fs = true};
    return sandbox_cgroup_init(&o, why, whylen);
}

static sandbox_limits limits(void)
{
    sandbox_limits l = {.timeout_seconds = 5, .memory_mb = 128, .cpu_seconds = 10, .max_processes = 10,
                        .max_file_size_mb = 1, .max_open_files = 64, .max_output_bytes = 1000};
    return l;
}

static void test_detects_v1_with_memsw(void **state)
{
    make_v1(true);
    char why[1024] = "";
    assert_int_equal(init_fake(why, sizeof why), 0);
    assert_int_equal(sandbox_cgroup_mode(), CGROUP_V1);
    assert_non_null(strstr(sandbox_cgroup_describe(), "cgroup v1"));
    assert_non_null(strstr(sandbox_cgroup_describe(), "memsw (swap counted)"));
    for (size_t i = 0; i < 5; i++)
        assert_true(fake_exists("%s/executord-%d", controllers[i], (int)getpid()));
    sandbox_cgroup_shutdown();
    for (size_t i = 0; i < 5; i++)
        assert_false(fake_exists("%s/executord-%d", controllers[i], (int)getpid()));
}

static void test_job_limits_are_written(void **state)
{
    make_v1(true);
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("0b5e-job", &l, &j, err, sizeof err), 0);
    assert_true(sandbox_cgroup_job_limits_memory(j));
    int pid = (int)getpid();
    assert_string_equal(fake_read("memory/executord-%d/job-0b5e-job/memory.limit_in_bytes", pid), "134217728");
    assert_string_equal(fake_read("memory/executord-%d/job-0b5e-job/memory.memsw.limit_in_bytes", pid), "134217728");
    assert_string_equal(fake_read("pids/executord-%d/job-0b5e-job/pids.max", pid), "11"); /* + init */
    assert_string_equal(fake_read("cpu/executord-%d/job-0b5e-job/cpu.cfs_period_us", pid), "100000");
    assert_string_equal(fake_read("cpu/executord-%d/job-0b5e-job/cpu.cfs_quota_us", pid), "50000");

    assert_int_equal(sandbox_cgroup_job_attach(j, 4242, err, sizeof err), 0);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(fake_read("%s/executord-%d/job-0b5e-job/cgroup.procs", controllers[i], pid), "4242");
    /* the fake kernel "reaped" it */
    for (size_t i = 0; i < 5; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/executord-%d/job-0b5e-job/cgroup.procs", controllers[i], pid);
        fake_write(rel, "");
    }
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
    for (size_t i = 0; i < 5; i++)
        assert_false(fake_exists("%s/executord-%d/job-0b5e-job", controllers[i], pid));
}

/* A pool's warm sandbox: created unlimited, its job's limits applied later. */
static void test_limits_set_after_creation(void **state)
{
    make_v1(true);
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits none;
    memset(&none, 0, sizeof none);
    assert_int_equal(sandbox_cgroup_job_create("warm1", &none, &j, err, sizeof err), 0);
    int pid = (int)getpid();
    assert_false(sandbox_cgroup_job_limits_memory(j));
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_set_limits(j, &l, err, sizeof err), 0);
    assert_true(sandbox_cgroup_job_limits_memory(j));
    assert_string_equal(fake_read("memory/executord-%d/job-warm1/memory.limit_in_bytes", pid), "134217728");
    assert_string_equal(fake_read("memory/executord-%d/job-warm1/memory.memsw.limit_in_bytes", pid), "134217728");
    assert_string_equal(fake_read("pids/executord-%d/job-warm1/pids.max", pid), "11"); /* + init */
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_job_name_is_checked(void **state)
{
    make_v1(true);
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("../escape", &l, &j, err, sizeof err), -1);
    assert_null(j);
    assert_non_null(strstr(err, "not a valid cgroup name"));
}

static void test_usage_is_read(void **state)
{
    make_v1(true);
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("u1", &l, &j, err, sizeof err), 0);
    char rel[256];
    int pid = (int)getpid();
    snprintf(rel, sizeof rel, "memory/executord-%d/job-u1/memory.max_usage_in_bytes", pid);
    fake_write(rel, "12345678\n");
    snprintf(rel, sizeof rel, "memory/executord-%d/job-u1/memory.oom_control", pid);
    fake_write(rel, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    snprintf(rel, sizeof rel, "cpuacct/executord-%d/job-u1/cpuacct.usage", pid);
    fake_write(rel, "2500000000\n");
    snprintf(rel, sizeof rel, "pids/executord-%d/job-u1/pids.events", pid);
    fake_write(rel, "max 3\n");
    sandbox_usage u = {.memory_peak_bytes = -1, .cgroup_cpu_ms = -1, .oom_kills = -1};
    bool pids_hit = false;
    sandbox_cgroup_job_usage(j, &u, &pids_hit);
    assert_int_equal(u.memory_peak_bytes, 12345678);
    assert_int_equal(u.oom_kills, 2);
    assert_int_equal(u.cgroup_cpu_ms, 2500);
    assert_true(pids_hit);
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_kill_uses_freezer_and_kills_members(void **state)
{
    make_v1(true);
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("k1", &l, &j, err, sizeof err), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (;;)
            pause();
    }
    char rel[256], pidtxt[32];
    snprintf(rel, sizeof rel, "freezer/executord-%d/job-k1/cgroup.procs", (int)getpid());
    snprintf(pidtxt, sizeof pidtxt, "%d\n", (int)child);
    fake_write(rel, pidtxt);
    sandbox_cgroup_job_kill(j);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    /* frozen for the kill, thawed afterwards */
    assert_string_equal(fake_read("freezer/executord-%d/job-k1/freezer.state", (int)getpid()), "THAWED");
    fake_write(rel, "");
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_without_memsw_says_so(void **state)
{
    make_v1(false);
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    assert_non_null(strstr(sandbox_cgroup_describe(), "WITHOUT memsw"));
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("m1", &l, &j, err, sizeof err), 0);
    assert_string_equal(fake_read("memory/executord-%d/job-m1/memory.limit_in_bytes", (int)getpid()), "134217728");
    assert_false(fake_exists("memory/executord-%d/job-m1/memory.memsw.limit_in_bytes", (int)getpid()));
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_missing_controller_gives_reason(void **state)
{
    make_v1(true);
    char p[PATH_MAX * 2];
    fake_path(p, sizeof p, "freezer/cgroup.procs");
    assert_int_equal(unlink(p), 0);
    fake_path(p, sizeof p, "freezer");
    assert_int_equal(rmdir(p), 0);
    char why[1024] = "";
    assert_int_equal(init_fake(why, sizeof why), -1);
    assert_int_equal(sandbox_cgroup_mode(), CGROUP_NONE);
    assert_non_null(strstr(why, "no usable cgroups"));
    assert_non_null(strstr(why, "freezer"));
    assert_non_null(strstr(why, "cgroup2"));
    assert_string_equal(sandbox_cgroup_describe(), why);
    /* nothing half-made was left behind */
    assert_false(fake_exists("memory/executord-%d", (int)getpid()));
    cgroup_job *j = NULL;
    char err[512];
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("x", &l, &j, err, sizeof err), -1);
}

static void test_leftovers_of_dead_instances_are_removed(void **state)
{
    make_v1(true);
    char rel[256];
    for (size_t i = 0; i < 5; i++) {
        snprintf(rel, sizeof rel, "%s/executord-%d", controllers[i], DEAD_PID);
        fake_mkdir(rel);
        snprintf(rel, sizeof rel, "%s/executord-%d/job-old", controllers[i], DEAD_PID);
        fake_mkdir(rel);
        snprintf(rel, sizeof rel, "%s/executord-%d/job-old/cgroup.procs", controllers[i], DEAD_PID);
        fake_write(rel, "");
        /* a live instance (our parent process) must be left alone */
        snprintf(rel, sizeof rel, "%s/executord-%d", controllers[i], (int)getppid());
        fake_mkdir(rel);
        /* and so must folders that are not ours */
        snprintf(rel, sizeof rel, "%s/other-service", controllers[i]);
        fake_mkdir(rel);
    }
    char why[1024];
    assert_int_equal(init_fake(why, sizeof why), 0);
    for (size_t i = 0; i < 5; i++) {
        assert_false(fake_exists("%s/executord-%d", controllers[i], DEAD_PID));
        assert_true(fake_exists("%s/executord-%d", controllers[i], (int)getppid()));
        assert_true(fake_exists("%s/other-service", controllers[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detects_v1_with_memsw, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_job_limits_are_written, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_limits_set_after_creation, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_job_name_is_checked, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_usage_is_read, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_kill_uses_freezer_and_kills_members, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_without_memsw_says_so, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_missing_controller_gives_reason, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_leftovers_of_dead_instances_are_removed, fake_setup, fake_teardown),
    };
    return cmocka_run_group_tests_name("cgroup1", tests, NULL, NULL);
}
