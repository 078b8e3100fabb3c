/* The scheduler's memory admission, with a real store and the direct backend running
 * short Python jobs: the memory limits of running jobs never add up to more than the
 * budget (sampled while they run), the oldest queued job is never overtaken by a smaller
 * one that would fit, a job queued under a larger budget is failed instead of blocking the
 * queue, and the waits are counted. Also the store's conditional claim it relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/backends.h"
#include "src/metrics.h"
#include "src/scheduler.h"
#include "src/store.h"
#include "src/timeutil.h"

#define BUDGET_MB 2000

typedef struct fixture {
    char dir[64];
    store *st;
    scheduler *sch;
} fixture;

static int group_setup(void **state)
{
    static char work[64];
    snprintf(work, sizeof work, "/tmp/test_scheduler_work.XXXXXX");
    if (!mkdtemp(work))
        return -1;
    sandbox_config scfg = {.python_path = "/usr/bin/python3", .work_root = work};
    backends_init(&scfg, "direct");
    *state = work;
    return backends_available("direct", NULL) ? 0 : -1;
}

static int group_teardown(void **state)
{
    backends_shutdown();
    rmdir((const char *)*state);
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_scheduler.XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/executord.db", f->dir);
    f->st = store_open(path, err, sizeof err);
    if (!f->st) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    scheduler_options opt = {.workers = 4, .shutdown_grace_seconds = 5, .memory_budget_mb = BUDGET_MB};
    f->sch = scheduler_create(f->st, &opt);
    *state = f;
    return f->sch ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    scheduler_stop(f->sch);
    scheduler_destroy(f->sch);
    store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", f->dir);
    free(f);
    return 0;
}

/* Queues a direct job sleeping `seconds` with limits.memory_mb = memory_mb. */
static void add_job(fixture *f, uint64_t memory_mb, double seconds, char id[JOB_ID_LEN + 1])
{
    job j;
    job_init(&j);
    job_new_id(j.id);
    snprintf(j.backend, sizeof j.backend, "direct");
    j.created_at_ms = time_now_ms();
    j.script = strdup("import time\ndef main(s):\n    time.sleep(s)\n    return s\n");
    char inputs[64];
    snprintf(inputs, sizeof inputs, "{\"s\": %g}", seconds);
    j.inputs_json = strdup(inputs);
    j.env_json = strdup("{}");
    j.limits = (sandbox_limits){.timeout_seconds = 30, .memory_mb = memory_mb, .cpu_seconds = 60,
                                .max_processes = 64, .max_file_size_mb = 64, .max_open_files = 256,
                                .max_output_bytes = 65536};
    assert_int_equal(store_insert_job(f->st, &j, 0, NULL), STORE_OK);
    memcpy(id, j.id, JOB_ID_LEN + 1);
    job_free(&j);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until every job is final, sampling what running jobs hold; returns the most. */
static uint64_t run_all(fixture *f, int n, char ids[][JOB_ID_LEN + 1], job *out)
{
    char err[256];
    assert_int_equal(scheduler_start(f->sch, err, sizeof err), 0);
    uint64_t most = 0;
    int64_t deadline = time_monotonic_ms() + 30000;
    for (;;) {
        uint64_t budget, committed;
        scheduler_memory(f->sch, &budget, &committed);
        assert_true(budget == BUDGET_MB);
        if (committed > most)
            most = committed;
        int done = 0;
        for (int i = 0; i < n; i++) {
            job_free(&out[i]);
            job_init(&out[i]);
            assert_int_equal(store_get_job(f->st, ids[i], &out[i]), STORE_OK);
            done += job_status_is_final(out[i].status);
        }
        if (done == n)
            break;
        assert_true(time_monotonic_ms() < deadline);
        sleep_ms(10);
    }
    return most;
}

static int max_overlap(const job *jobs, int n)
{
    int most = 0;
    for (int i = 0; i < n; i++) {
        int at = 0; /* jobs running at the moment job i started */
        for (int k = 0; k < n; k++)
            at += jobs[k].started_at_ms <= jobs[i].started_at_ms && jobs[i].started_at_ms < jobs[k].finished_at_ms;
        most = at > most ? at : most;
    }
    return most;
}

static void running_jobs_stay_within_the_budget(void **state)
{
    fixture *f = *state;
    uint64_t waited0 = metrics_counter_value(&metrics_memory_waits, NULL);
    char ids[4][JOB_ID_LEN + 1];
    for (int i = 0; i < 4; i++)
        add_job(f, 800, 0.6, ids[i]); /* two fit in 2000, three do not */
    job jobs[4];
    for (int i = 0; i < 4; i++)
        job_init(&jobs[i]);
    uint64_t most = run_all(f, 4, ids, jobs);
    assert_true(most <= BUDGET_MB);
    assert_true(most == 1600); /* and the budget was used: two ran at once */
    for (int i = 0; i < 4; i++)
        assert_int_equal(jobs[i].status, JOB_SUCCEEDED);
    assert_int_equal(max_overlap(jobs, 4), 2);
    /* The later two started only when one of the first two had ended. */
    int64_t first_end = jobs[0].finished_at_ms < jobs[1].finished_at_ms ? jobs[0].finished_at_ms : jobs[1].finished_at_ms;
    assert_true(jobs[2].started_at_ms >= first_end && jobs[3].started_at_ms >= first_end);
    uint64_t waited = metrics_counter_value(&metrics_memory_waits, NULL) - waited0;
    assert_true(waited >= 1 && waited <= 2);
    /* A job is final in the store a moment before its worker gives its memory back. */
    uint64_t budget, committed;
    int64_t deadline = time_monotonic_ms() + 5000;
    for (;;) {
        scheduler_memory(f->sch, &budget, &committed);
        if (committed == 0 || time_monotonic_ms() > deadline)
            break;
        sleep_ms(10);
    }
    assert_true(committed == 0);
    for (int i = 0; i < 4; i++)
        job_free(&jobs[i]);
}

static void the_oldest_job_is_not_overtaken(void **state)
{
    fixture *f = *state;
    char ids[3][JOB_ID_LEN + 1];
    add_job(f, 1200, 0.6, ids[0]);
    add_job(f, 1000, 0.05, ids[1]); /* waits: 2200 > 2000 */
    add_job(f, 300, 0.05, ids[2]);  /* would fit beside the first (1500), but is younger */
    job jobs[3];
    for (int i = 0; i < 3; i++)
        job_init(&jobs[i]);
    run_all(f, 3, ids, jobs);
    for (int i = 0; i < 3; i++)
        assert_int_equal(jobs[i].status, JOB_SUCCEEDED);
    assert_true(jobs[1].started_at_ms >= jobs[0].finished_at_ms);
    assert_true(jobs[2].started_at_ms >= jobs[1].started_at_ms);
    for (int i = 0; i < 3; i++)
        job_free(&jobs[i]);
}

static void a_job_over_the_whole_budget_fails_without_blocking(void **state)
{
    fixture *f = *state;
    char ids[2][JOB_ID_LEN + 1];
    add_job(f, BUDGET_MB + 1, 0.05, ids[0]); /* queued before a restart with a smaller budget */
    add_job(f, 100, 0.05, ids[1]);
    job jobs[2];
    job_init(&jobs[0]);
    job_init(&jobs[1]);
    run_all(f, 2, ids, jobs);
    assert_int_equal(jobs[0].status, JOB_FAILED);
    assert_string_equal(jobs[0].error_type, "SandboxError");
    assert_non_null(strstr(jobs[0].error_message, "limits.memory_mb 2001 is above this instance's memory budget of 2000 MB"));
    assert_int_equal(jobs[1].status, JOB_SUCCEEDED);
    job_free(&jobs[0]);
    job_free(&jobs[1]);
}

static void store_claims_the_head_only_when_it_fits(void **state)
{
    fixture *f = *state;
    char big[JOB_ID_LEN + 1], small[JOB_ID_LEN + 1];
    add_job(f, 500, 0, big);
    add_job(f, 100, 0, small);
    job j;
    job_init(&j);
    store_queue_head head;
    memset(&head, 0, sizeof head);
    assert_int_equal(store_claim_next_within(f->st, time_now_ms(), 499, &j, &head), STORE_CONFLICT);
    assert_string_equal(head.id, big);
    assert_true(head.memory_mb == 500);
    assert_int_equal(store_claim_next_within(f->st, time_now_ms(), 500, &j, &head), STORE_OK);
    assert_string_equal(j.id, big);
    job_free(&j);
    job_init(&j);
    assert_int_equal(store_claim_next_within(f->st, time_now_ms(), 100, &j, NULL), STORE_OK);
    assert_string_equal(j.id, small);
    job_free(&j);
    job_init(&j);
    assert_int_equal(store_claim_next_within(f->st, time_now_ms(), 0, &j, &head), STORE_NOT_FOUND);
    job_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(store_claims_the_head_only_when_it_fits, setup, teardown),
        cmocka_unit_test_setup_teardown(running_jobs_stay_within_the_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(the_oldest_job_is_not_overtaken, setup, teardown),
        cmocka_unit_test_setup_teardown(a_job_over_the_whole_budget_fails_without_blocking, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
