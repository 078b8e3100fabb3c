/* What only the `pool` backend does, driven directly (no HTTP): its sandboxes take
 * uids from the pool's own range, jobs beyond the warm sandboxes wait and still run, a
 * killed zygote is replaced, and its status, latency and throughput. The isolation every
 * backend promises (the pool's warm sandboxes included) is checked in test_isolation.c. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/pool.h"
#include "sandbox_harness.h"

enum { UID_BASE = 2150000, UID_COUNT = 16, POOL_UID_BASE = 3200000 }; /* apart from the other backend tests (ctest -j) */

typedef struct pid_list {
    pid_t *pids;
    int n, max;
} pid_list;

/* A zygote: a live process running as the root uid of a block of the pool's range (the
 * first id of each zygote's 258). */
static bool collect_zygote(const host_process *p, void *ctx)
{
    pid_list *l = ctx;
    if (p->state == 'Z' || p->ruid < POOL_UID_BASE || p->ruid >= POOL_UID_BASE + 32 * 258 ||
        (p->ruid - POOL_UID_BASE) % 258 != 0 || l->n == l->max)
        return false;
    l->pids[l->n++] = p->pid;
    return true;
}

/* Host pids of the zygotes (at most max). */
static int zygote_pids(pid_t *pids, int max)
{
    pid_list l = {pids, 0, max};
    return each_host_process(collect_zygote, &l);
}

static void status_field(const char *key, json_int_t *v)
{
    char buf[2048];
    assert_true(pool_status_json(buf, sizeof buf) > 0);
    json_error_t err;
    json_t *o = json_loads(buf, 0, &err);
    assert_non_null(o);
    assert_true(json_is_true(json_object_get(o, "available")));
    *v = json_integer_value(json_object_get(o, key));
    json_decref(o);
}

static void wait_ready(int want)
{
    for (int i = 0; i < 500; i++) {
        json_int_t ready;
        status_field("ready", &ready);
        if (ready >= want)
            return;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("pool never had %d warm sandboxes ready", want);
}

static int group_setup(void **state)
{
    harness_options o = {.backend = "pool", .uid_base = UID_BASE, .uid_count = UID_COUNT,
                         .pool_uid_base = POOL_UID_BASE, .pool_size = 2};
    return harness_start(&o);
}

static int group_teardown(void **state)
{
    return harness_stop();
}

/* A warm sandbox's ids come from the pool's blocks, not from ephemeral's slots. */
static void test_uids_come_from_the_pool_range(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("def main():\n    return int(open('/proc/self/uid_map').read().split()[1])\n", NULL, &cap, &out);
    assert_int_equal(out.verdict, SANDBOX_SUCCEEDED);
    long first = strtol(out.result_json, NULL, 10);
    assert_true(first >= POOL_UID_BASE && first < POOL_UID_BASE + 32 * 258);
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* ---- the pool heals and never refuses ---- */

typedef struct par_job {
    pthread_t t;
    sandbox_outcome out;
    int n;
} par_job;

static void *par_main(void *arg)
{
    par_job *p = arg;
    char job_id[64], inputs[64];
    snprintf(job_id, sizeof job_id, "pool-par-%d-%d", (int)getpid(), p->n);
    snprintf(inputs, sizeof inputs, "{\"n\": %d}", p->n);
    char *fields = runner_fields_make("import time\ndef main(n):\n    time.sleep(0.3)\n    return n\n", inputs);
    sandbox_spec spec = {.job_id = job_id, .runner_fields_json = fields, .limits = default_limits(), .cancel_fd = -1};
    harness.backend->run(&spec, NULL, &p->out);
    free(fields);
    return NULL;
}

static void test_more_jobs_than_warm_sandboxes_still_run(void **state)
{
    par_job jobs[6];
    for (int i = 0; i < 6; i++) {
        jobs[i].n = i;
        assert_int_equal(pthread_create(&jobs[i].t, NULL, par_main, &jobs[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(jobs[i].t, NULL);
        if (jobs[i].out.verdict != SANDBOX_SUCCEEDED)
            dump(&jobs[i].out, NULL);
        assert_int_equal(jobs[i].out.verdict, SANDBOX_SUCCEEDED);
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal(jobs[i].out.result_json, want);
        sandbox_outcome_free(&jobs[i].out);
    }
}

static void test_killed_zygote_is_replaced(void **state)
{
    wait_ready(2);
    json_int_t failures_before;
    status_field("failures", &failures_before);
    pid_t pids[8];
    int n = zygote_pids(pids, 8);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], SIGKILL), 0);
    /* Jobs keep working: the dead warm sandboxes are dropped, a new zygote forks. */
    for (int i = 0; i < 3; i++) {
        capture cap = {0};
        sandbox_outcome out;
        run_simple("def main():\n    return 7\n", NULL, &cap, &out);
        expect_result(&out, &cap, "7");
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
    json_int_t failures_after;
    status_field("failures", &failures_after);
    assert_true(failures_after > failures_before);
    pid_t now[8];
    int m = zygote_pids(now, 8);
    assert_true(m >= 1);
    for (int i = 0; i < m; i++)
        for (int k = 0; k < n; k++)
            assert_true(now[i] != pids[k]);
}

typedef struct tp_arg {
    pthread_t t;
    int jobs, ok;
} tp_arg;

static void *tp_main(void *arg)
{
    tp_arg *a = arg;
    for (int i = 0; i < a->jobs; i++) {
        sandbox_outcome out;
        char job_id[64];
        snprintf(job_id, sizeof job_id, "pool-tp-%d-%p-%d", (int)getpid(), (void *)a, i);
        for (char *c = job_id; *c; c++)
            if (*c == 'x')
                *c = '0';
        char *fields = runner_fields_make("def main():\n    return 1\n", "{}");
        sandbox_spec spec = {.job_id = job_id, .runner_fields_json = fields, .limits = default_limits(), .cancel_fd = -1};
        harness.backend->run(&spec, NULL, &out);
        free(fields);
        a->ok += out.verdict == SANDBOX_SUCCEEDED;
        sandbox_outcome_free(&out);
    }
    return NULL;
}

/* Informational: jobs per second through the backend at concurrency 4 (2x CPUs here). */
static void test_throughput(void **state)
{
    wait_ready(2);
    tp_arg a[4];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 4; i++) {
        a[i] = (tp_arg){.jobs = 15};
        assert_int_equal(pthread_create(&a[i].t, NULL, tp_main, &a[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(a[i].t, NULL);
        ok += a[i].ok;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("pool: throughput at concurrency 4: %.0f jobs/s\n", 60 / s);
    assert_int_equal(ok, 60);
}

static void test_status_and_latency(void **state)
{
    wait_ready(2);
    double total = 0, best = 1e9;
    for (int i = 0; i < 20; i++) {
        capture cap = {0};
        sandbox_outcome out;
        wait_ready(1);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        run_simple("def main():\n    return 1\n", NULL, &cap, &out);
        clock_gettime(CLOCK_MONOTONIC, &b);
        expect_result(&out, &cap, "1");
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        total += ms;
        if (ms < best)
            best = ms;
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
    print_message("pool: trivial job through the backend: mean %.2f ms, best %.2f ms\n", total / 20, best);
    char buf[2048];
    assert_true(pool_status_json(buf, sizeof buf) > 0);
    print_message("pool status: %s\n", buf);
    json_int_t started;
    status_field("started", &started);
    assert_true(started >= 20);
    assert_int_equal(pool_status_json(buf, 8), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uids_come_from_the_pool_range),
        cmocka_unit_test(test_more_jobs_than_warm_sandboxes_still_run),
        cmocka_unit_test(test_killed_zygote_is_replaced),
        cmocka_unit_test(test_status_and_latency),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests_name("pool", tests, group_setup, group_teardown);
}
