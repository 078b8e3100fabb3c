/* cgroup v2 job cgroups against a fake cgroupfs folder: detection (unified and hybrid
 * layouts, the reason when controllers are missing), controllers enabled for the
 * children, the values written for a job's limits, usage read back, cgroup.kill,
 * removal, and cleanup of a crashed instance's leftovers. */
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

static void make_v2(const char *prefix, const char *controllers)
{
    char rel[256];
    if (*prefix)
        fake_mkdir(prefix);
    snprintf(rel, sizeof rel, "%s%scgroup.controllers", prefix, *prefix ? "/" : "");
    fake_write(rel, controllers);
    snprintf(rel, sizeof rel, "%s%scgroup.subtree_control", prefix, *prefix ? "/" : "");
    fake_write(rel, "");
    snprintf(rel, sizeof rel, "%s%scgroup.procs", prefix, *prefix ? "/" : "");
    fake_write(rel, "");
}

static int init_fake(char *why, size_t whylen)
{
    cgroup_options o = {.root = fake_root, .self_path = "/", .cpu_quota_percent = 150, .fake_fs = true};
    return sandbox_cgroup_init(&o, why, whylen);
}

static sandbox_limits limits(void)
{
    sandbox_limits l = {.timeout_seconds = 5, .memory_mb = 256, .cpu_seconds = 10, .max_processes = 32,
                        .max_file_size_mb = 1, .max_open_files = 64, .max_output_bytes = 1000};
    return l;
}

static void test_detects_unified_v2(void **state)
{
    make_v2("", "cpuset cpu io memory hugetlb pids rdma misc\n");
    char why[1024] = "";
    assert_int_equal(init_fake(why, sizeof why), 0);
    assert_int_equal(sandbox_cgroup_mode(), CGROUP_V2);
    assert_non_null(strstr(sandbox_cgroup_describe(), "cgroup v2"));
    int pid = (int)getpid();
    assert_true(fake_exists("executord-%d", pid));
    /* controllers switched on for our children and for the jobs below the parent */
    assert_string_equal(fake_read("cgroup.subtree_control"), "+memory +pids +cpu");
    assert_string_equal(fake_read("executord-%d/cgroup.subtree_control", pid), "+memory +pids +cpu");
    sandbox_cgroup_shutdown();
    assert_false(fake_exists("executord-%d", pid));
}

static void test_hybrid_uses_unified_when_it_has_controllers(void **state)
{
    make_v2("unified", "memory pids cpu\n");
    char why[1024] = "";
    assert_int_equal(init_fake(why, sizeof why), 0);
    assert_int_equal(sandbox_cgroup_mode(), CGROUP_V2);
    assert_true(fake_exists("unified/executord-%d", (int)getpid()));
}

static void test_missing_controllers_give_reason(void **state)
{
    /* This machine's layout: an empty unified hierarchy next to no v1 controllers. */
    make_v2("unified", "hugetlb\n");
    char why[1024] = "";
    assert_int_equal(init_fake(why, sizeof why), -1);
    assert_int_equal(sandbox_cgroup_mode(), CGROUP_NONE);
    assert_non_null(strstr(why, "'hugetlb'"));
    assert_non_null(strstr(why, "needs memory, pids and cpu"));
    assert_non_null(strstr(why, "v1: no memory hierarchy"));
    assert_false(fake_exists("unified/executord-%d", (int)getpid()));
}

static void test_controller_names_match_whole_words(void **state)
{
    /* "cpuset" must not pass for "cpu" */
    make_v2("", "cpuset memory pids\n");
    char why[1024] = "";
    assert_int_equal(init_fake(why, sizeof why), -1);
    assert_non_null(strstr(why, "needs memory, pids and cpu"));
}

static void test_job_limits_are_written(void **state)
{
    make_v2("", "cpu memory pids\n");
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("6f1c2a", &l, &j, err, sizeof err), 0);
    int pid = (int)getpid();
    char want[PATH_MAX * 2];
    snprintf(want, sizeof want, "%s/executord-%d/job-6f1c2a", fake_root, pid);
    assert_string_equal(sandbox_cgroup_job_path(j), want);
    assert_string_equal(fake_read("executord-%d/job-6f1c2a/memory.max", pid), "268435456");
    assert_string_equal(fake_read("executord-%d/job-6f1c2a/memory.swap.max", pid), "0");
    assert_string_equal(fake_read("executord-%d/job-6f1c2a/pids.max", pid), "33"); /* + init */
    assert_string_equal(fake_read("executord-%d/job-6f1c2a/cpu.max", pid), "150000 100000");
    assert_int_equal(sandbox_cgroup_job_attach(j, 777, err, sizeof err), 0);
    assert_string_equal(fake_read("executord-%d/job-6f1c2a/cgroup.procs", pid), "777");
    char rel[256];
    snprintf(rel, sizeof rel, "executord-%d/job-6f1c2a/cgroup.procs", pid);
    fake_write(rel, "");
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
    assert_false(fake_exists("executord-%d/job-6f1c2a", pid));
}

/* A pool's warm sandbox: created unlimited, its job's limits applied later. */
static void test_limits_set_after_creation(void **state)
{
    make_v2("", "cpu memory pids\n");
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits none;
    memset(&none, 0, sizeof none);
    assert_int_equal(sandbox_cgroup_job_create("warm1", &none, &j, err, sizeof err), 0);
    int pid = (int)getpid();
    assert_false(sandbox_cgroup_job_limits_memory(j));
    assert_false(fake_exists("executord-%d/job-warm1/memory.max", pid));
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_set_limits(j, &l, err, sizeof err), 0);
    assert_true(sandbox_cgroup_job_limits_memory(j));
    assert_string_equal(fake_read("executord-%d/job-warm1/memory.max", pid), "268435456");
    assert_string_equal(fake_read("executord-%d/job-warm1/memory.swap.max", pid), "0");
    assert_string_equal(fake_read("executord-%d/job-warm1/pids.max", pid), "33"); /* + init */
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_usage_is_read(void **state)
{
    make_v2("", "cpu memory pids\n");
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("u2", &l, &j, err, sizeof err), 0);
    char rel[256];
    int pid = (int)getpid();
    snprintf(rel, sizeof rel, "executord-%d/job-u2/memory.peak", pid);
    fake_write(rel, "99999744\n");
    snprintf(rel, sizeof rel, "executord-%d/job-u2/memory.events", pid);
    fake_write(rel, "low 0\nhigh 0\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n");
    snprintf(rel, sizeof rel, "executord-%d/job-u2/cpu.stat", pid);
    fake_write(rel, "usage_usec 1534000\nuser_usec 1000000\nsystem_usec 534000\n");
    snprintf(rel, sizeof rel, "executord-%d/job-u2/pids.events", pid);
    fake_write(rel, "max 0\n");
    sandbox_usage u = {.memory_peak_bytes = -1, .cgroup_cpu_ms = -1, .oom_kills = -1};
    bool pids_hit = true;
    sandbox_cgroup_job_usage(j, &u, &pids_hit);
    assert_int_equal(u.memory_peak_bytes, 99999744);
    assert_int_equal(u.oom_kills, 1);
    assert_int_equal(u.cgroup_cpu_ms, 1534);
    assert_false(pids_hit);
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_usage_missing_files_stay_unmeasured(void **state)
{
    make_v2("", "cpu memory pids\n");
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("u3", &l, &j, err, sizeof err), 0);
    sandbox_usage u = {.memory_peak_bytes = -1, .cgroup_cpu_ms = -1, .oom_kills = -1};
    bool pids_hit = true;
    sandbox_cgroup_job_usage(j, &u, &pids_hit); /* kernel before 5.19: no memory.peak */
    assert_int_equal(u.memory_peak_bytes, -1);
    assert_int_equal(u.oom_kills, -1);
    assert_int_equal(u.cgroup_cpu_ms, -1);
    assert_false(pids_hit);
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_kill_writes_cgroup_kill(void **state)
{
    make_v2("", "cpu memory pids\n");
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("k2", &l, &j, err, sizeof err), 0);
    char rel[256];
    snprintf(rel, sizeof rel, "executord-%d/job-k2/cgroup.kill", (int)getpid());
    fake_write(rel, "0");
    sandbox_cgroup_job_kill(j);
    assert_string_equal(fake_read("%s", rel), "1");
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_kill_without_cgroup_kill_freezes_and_kills(void **state)
{
    make_v2("", "cpu memory pids\n");
    char why[1024], err[512];
    assert_int_equal(init_fake(why, sizeof why), 0);
    cgroup_job *j = NULL;
    sandbox_limits l = limits();
    assert_int_equal(sandbox_cgroup_job_create("k3", &l, &j, err, sizeof err), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (;;)
            pause();
    }
    char rel[256], pidtxt[32];
    snprintf(rel, sizeof rel, "executord-%d/job-k3/cgroup.procs", (int)getpid());
    snprintf(pidtxt, sizeof pidtxt, "%d\n", (int)child);
    fake_write(rel, pidtxt);
    sandbox_cgroup_job_kill(j);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_string_equal(fake_read("executord-%d/job-k3/cgroup.freeze", (int)getpid()), "0");
    fake_write(rel, "");
    assert_int_equal(sandbox_cgroup_job_destroy(j, err, sizeof err), 0);
}

static void test_leftovers_of_dead_instances_are_removed(void **state)
{
    make_v2("", "cpu memory pids\n");
    char rel[256];
    snprintf(rel, sizeof rel, "executord-%d", DEAD_PID);
    fake_mkdir(rel);
    snprintf(rel, sizeof rel, "executord-%d/job-old", DEAD_PID);
    fake_mkdir(rel);
    snprintf(rel, sizeof rel, "executord-%d/job-old/memory.max", DEAD_PID);
    fake_write(rel, "1000");
    snprintf(rel, sizeof rel, "executord-supervisor-%d", DEAD_PID);
    fake_mkdir(rel);
    snprintf(rel, sizeof rel, "executord-%d", (int)getppid());
    fake_mkdir(rel);
    fake_mkdir("executord-notapid");
    char why[1024];
    assert_int_equal(init_fake(why, sizeof why), 0);
    assert_false(fake_exists("executord-%d", DEAD_PID));
    assert_false(fake_exists("executord-supervisor-%d", DEAD_PID));
    assert_true(fake_exists("executord-%d", (int)getppid()));
    assert_true(fake_exists("executord-notapid"));
    /* the leftover's job was killed through cgroup.kill before removal */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detects_unified_v2, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_hybrid_uses_unified_when_it_has_controllers, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_missing_controllers_give_reason, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_controller_names_match_whole_words, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_job_limits_are_written, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_limits_set_after_creation, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_usage_is_read, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_usage_missing_files_stay_unmeasured, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_kill_writes_cgroup_kill, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_kill_without_cgroup_kill_freezes_and_kills, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_leftovers_of_dead_instances_are_removed, fake_setup, fake_teardown),
    };
    return cmocka_run_group_tests_name("cgroup2", tests, NULL, NULL);
}
