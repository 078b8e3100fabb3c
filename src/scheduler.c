/* The scheduler: worker threads take queued jobs oldest first from the store, run each
 * through its backend, stream its output into the store and record the outcome.
 * One mutex guards the worker slots, so "which job runs where" is always consistent
 * with the store for cancel: a job is claimed and its slot filled in one critical section.
 * The same section admits a job against the memory budget: the memory limits of running
 * jobs never add up to more than it (see claim_next for the order in which jobs wait). */
#include "src/scheduler.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/backends.h"
#include "src/log.h"
#include "src/metrics.h"
#include "src/timeutil.h"

#define MAX_LISTENERS 8
#define CANCEL_WAIT_MS 10000
/* The safety net of an idle worker: a missed wake-up costs at most this. A shared store's
 * replicas are woken by its events instead, and by each heartbeat (src/replica.c), so
 * that idle replicas do not poll the database. */
#define IDLE_POLL_MS 1000
#define IDLE_POLL_SHARED_MS 30000

/* STOP_STORAGE: the store could not take the job's output (src/store.h, storage). */
typedef enum stop_reason { STOP_NONE = 0, STOP_CANCEL, STOP_SHUTDOWN, STOP_STORAGE } stop_reason;

typedef struct worker {
    scheduler *sched;
    pthread_t thread;
    bool started;
    bool busy;
    char job_id[JOB_ID_LEN + 1];
    stop_reason stop;
    int cancel_pipe[2]; /* the backend polls [0]; a byte on [1] stops the running job */
    uint64_t memory_mb; /* what the running job holds of the memory budget */
    bool over_budget;   /* the job asks more than the whole budget: fail it, do not run it */
} worker;

struct scheduler {
    store *st;
    scheduler_options opt;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job may be waiting */
    pthread_cond_t idle_cv; /* a worker finished a job */
    bool stopping;
    /* A shared store's replica that cannot keep its lease stops taking jobs (src/replica.c):
     * the others may already count it dead. "" = claiming. */
    char paused[192];
    worker *workers;
    uint64_t committed_mb;                 /* sum of the workers' memory_mb */
    char memory_waiter[JOB_ID_LEN + 1];    /* the queue's head, waiting for memory ("" = none) */
    struct {
        job_finished_fn fn;
        void *ctx;
    } listeners[MAX_LISTENERS];
    int n_listeners;
};

static void deadline_after_ms(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

scheduler *scheduler_create(store *st, const scheduler_options *opt)
{
    scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->st = st;
    s->opt = *opt;
    if (s->opt.workers < 1)
        s->opt.workers = 1;
    pthread_mutex_init(&s->mu, NULL);
    cond_init_monotonic(&s->work_cv);
    cond_init_monotonic(&s->idle_cv);
    s->workers = calloc((size_t)s->opt.workers, sizeof *s->workers);
    if (!s->workers) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < s->opt.workers; i++) {
        s->workers[i].sched = s;
        s->workers[i].cancel_pipe[0] = s->workers[i].cancel_pipe[1] = -1;
    }
    return s;
}

void scheduler_on_finished(scheduler *s, job_finished_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->mu);
    if (s->n_listeners < MAX_LISTENERS) {
        s->listeners[s->n_listeners].fn = fn;
        s->listeners[s->n_listeners].ctx = ctx;
        s->n_listeners++;
    }
    pthread_mutex_unlock(&s->mu);
}

static void notify_finished(scheduler *s, const char *id)
{
    /* Listeners are registered before start and never removed: no lock needed to read. */
    for (int i = 0; i < s->n_listeners; i++)
        s->listeners[i].fn(s->listeners[i].ctx, id);
}

void scheduler_notify(scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
}

/* Empties the cancel pipe so a stale request for the previous job cannot stop the next. */
static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void request_stop(worker *w, stop_reason why)
{
    w->stop = why;
    ssize_t n = write(w->cancel_pipe[1], "x", 1);
    if (n != 1 && errno != EAGAIN)
        log_error("job %s: cannot signal the worker to stop it: %s", w->job_id, strerror(errno));
}

/* --- running one job -------------------------------------------------------------- */

typedef struct output_sink {
    scheduler *sched;
    worker *w;
    const char *job_id;
    bool failed_once;
    uint64_t stored[2];   /* bytes of stdout, stderr in the store */
    int full_stream;      /* the stream the store had no room for; 0 = none */
    char why[256];
} output_sink;

/* Each chunk is committed as it arrives so a poller sees output while the job runs; the
 * backend reads in large chunks, so a flood costs few transactions. */
static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    output_sink *sink = ctx;
    if (sink->full_stream)
        return; /* the job is being stopped: its output has a hole from here on */
    store_rc rc = store_append_output(sink->sched->st, sink->job_id, stream, data, len);
    if (rc == STORE_OK) {
        sink->stored[stream == SANDBOX_STDERR] += len;
    } else if (rc == STORE_NO_SPACE) {
        /* Even after evicting, no room: the job stops rather than run on with output that
         * goes nowhere, and says why (run_on_backend). */
        sink->full_stream = stream;
        snprintf(sink->why, sizeof sink->why, "%s", store_last_error(sink->sched->st));
        log_warn("job %s: output not stored: %s; stopping the job", sink->job_id, sink->why);
        pthread_mutex_lock(&sink->sched->mu);
        request_stop(sink->w, STOP_STORAGE);
        pthread_mutex_unlock(&sink->sched->mu);
    } else if (!sink->failed_once) {
        sink->failed_once = true;
        log_error("job %s: cannot store output: %s", sink->job_id, store_last_error(sink->sched->st));
    }
}

/* A job stopped because its output could not be stored ends failed with StorageFull; the
 * stream that hit the wall is truncated where the store stopped taking it. */
static void storage_full_outcome(job *j, const output_sink *sink)
{
    j->status = JOB_FAILED;
    free(j->result_json);
    free(j->error_type);
    free(j->error_message);
    free(j->error_traceback);
    j->result_json = j->error_traceback = NULL;
    j->error_type = strdup("StorageFull");
    if (asprintf(&j->error_message, "output could not be stored, so the job was stopped: %s",
                 sink->why) < 0)
        j->error_message = NULL;
    j->stdout_bytes = sink->stored[0];
    j->stderr_bytes = sink->stored[1];
    if (sink->full_stream == SANDBOX_STDERR)
        j->stderr_truncated = true;
    else
        j->stdout_truncated = true;
}

/* env_json {"NAME": "value"} -> NULL-terminated "NAME=value" array (one allocation). */
static char **build_env(const char *env_json)
{
    json_t *obj = env_json ? json_loads(env_json, JSON_ALLOW_NUL, NULL) : NULL;
    size_t n = json_is_object(obj) ? json_object_size(obj) : 0, bytes = 0;
    const char *k;
    json_t *v;
    if (n)
        json_object_foreach(obj, k, v) bytes += strlen(k) + 2 + json_string_length(v);
    char **env = malloc((n + 1) * sizeof *env + bytes);
    if (!env) {
        json_decref(obj);
        return NULL;
    }
    char *p = (char *)(env + n + 1);
    size_t i = 0;
    if (n) {
        json_object_foreach(obj, k, v)
        {
            env[i++] = p;
            size_t kl = strlen(k), vl = json_string_length(v);
            memcpy(p, k, kl);
            p[kl] = '=';
            memcpy(p + kl + 1, json_string_value(v), vl);
            p[kl + 1 + vl] = '\0';
            p += kl + vl + 2;
        }
    }
    env[i] = NULL;
    json_decref(obj);
    return env;
}

/* The job's package environment, installed when missing (its output into the job's
 * logs), held until release; the job's install section is written either way. Returns
 * 0 with *lease filled, or -1 with *out filled (the script must not run). */
static int acquire_packages(worker *w, job *j, const sandbox_io *io, depcache_lease *lease, sandbox_outcome *out)
{
    scheduler *s = w->sched;
    if (!s->opt.deps) {
        out->verdict = SANDBOX_FAILED;
        sandbox_outcome_set_error(out, "PackageInstallError",
                                  "no package source is configured (--pip-index-url, --pip-extra-index-url "
                                  "or --pip-find-links): the job's dependencies cannot be installed");
        return -1;
    }
    char id[DEPCACHE_ID_LEN + 1];
    char *sources = depinstall_sources_text(s->opt.deps_install);
    if (!sources) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "cannot name the job's environment: out of memory");
        return -1;
    }
    depcache_env_id(j->deps_json, s->opt.deps_install->interpreter, sources, id);
    free(sources);
    depinstall_job install = {.cfg = s->opt.deps_install, .job_id = j->id, .deps_json = j->deps_json,
                              .limits = &j->limits, .cancel_fd = w->cancel_pipe[0], .io = io};
    int64_t t0 = time_monotonic_ms();
    int rc = depcache_acquire(s->opt.deps, id, depinstall_run, &install, w->cancel_pipe[0], lease, out);
    json_t *section = json_pack("{s:s,s:b,s:I}", "environment", id, "cache_hit", rc == 0 && lease->cache_hit,
                                "duration_ms", (json_int_t)(time_monotonic_ms() - t0));
    free(j->install_json);
    j->install_json = section ? json_dumps(section, JSON_COMPACT) : NULL;
    json_decref(section);
    log_info("job %s: environment %s %s in %lld ms", j->id, id,
             rc != 0 ? "not ready" : lease->cache_hit ? "from the cache" : "installed",
             (long long)(time_monotonic_ms() - t0));
    return rc;
}

static void run_on_backend(worker *w, job *j)
{
    scheduler *s = w->sched;
    sandbox_outcome out;
    sandbox_outcome_init(&out);
    output_sink sink = {.sched = s, .w = w, .job_id = j->id};
    uint64_t install_out[2] = {0, 0}; /* what the package install wrote into the job's logs */
    const char *why = NULL;
    const sandbox_backend *b = backends_get(j->backend);
    char **env = build_env(j->env_json);
    char *runner_fields = job_runner_fields_json(j);
    bool fields_not_utf8 = !runner_fields && errno == EINVAL;
    if (w->over_budget) {
        sandbox_outcome_set_error(&out, "SandboxError",
                                  "limits.memory_mb %llu is above this instance's memory budget of %llu MB "
                                  "(--memory-budget-mb): the job was queued under a larger one and can "
                                  "never run here",
                                  (unsigned long long)j->limits.memory_mb,
                                  (unsigned long long)s->opt.memory_budget_mb);
        out.verdict = SANDBOX_SETUP_ERROR;
    } else if (!b) {
        backends_available(j->backend, &why);
        sandbox_outcome_set_error(&out, "SandboxError", "backend '%s' is not available: %s", j->backend,
                                  why ? why : "unknown");
        out.verdict = SANDBOX_SETUP_ERROR;
    } else if (!env) {
        sandbox_outcome_set_error(&out, "SandboxError", "cannot build the environment: out of memory");
        out.verdict = SANDBOX_SETUP_ERROR;
    } else if (!runner_fields) {
        sandbox_outcome_set_error(&out, "SandboxError", "cannot build the runner's fields: %s",
                                  fields_not_utf8 ? "not UTF-8" : "out of memory");
        out.verdict = SANDBOX_SETUP_ERROR;
    } else {
        sandbox_spec spec = {
            .job_id = j->id,
            .runner_fields_json = runner_fields,
            .env = (const char *const *)env,
            .allow_network = j->allow_network,
            .limits = j->limits,
            .cancel_fd = w->cancel_pipe[0],
        };
        sandbox_io io = {.ctx = &sink, .on_output = on_output};
        depcache_lease lease;
        bool packages = j->deps_json != NULL;
        int acquired = packages ? acquire_packages(w, j, &io, &lease, &out) : 0;
        memcpy(install_out, sink.stored, sizeof install_out);
        if (acquired == 0) {
            spec.packages.dir = packages ? lease.path : NULL;
            b->run(&spec, &io, &out);
            if (packages)
                depcache_release(s->opt.deps, &lease);
        }
    }
    free(runner_fields);
    free(env);
    /* The backend's word for "the sandbox could not be built, the script never ran", as
     * opposed to a script that failed: worth its own counter (a host problem, not a user's). */
    if (out.verdict == SANDBOX_SETUP_ERROR)
        metrics_setup_failure(j->backend);

    job_apply_outcome(j, &out);
    /* The logs hold the install's output before the script's: the sizes count both. */
    j->stdout_bytes += install_out[0];
    j->stderr_bytes += install_out[1];
    pthread_mutex_lock(&s->mu);
    stop_reason stop = w->stop;
    pthread_mutex_unlock(&s->mu);
    if (out.verdict == SANDBOX_CANCELLED && stop == STOP_SHUTDOWN) {
        /* Killed because executord is stopping, not because anyone asked: say so. */
        j->status = JOB_FAILED;
        free(j->error_type);
        free(j->error_message);
        j->error_type = strdup("ExecutorShutdown");
        j->error_message = strdup("executord shut down before the job finished (grace period exhausted)");
    } else if (sink.full_stream) {
        storage_full_outcome(j, &sink);
    }
    sandbox_outcome_free(&out);
}

/* A result the store has no room for, even after evicting, is dropped: the job ends
 * failed with StorageFull rather than its outcome being lost. */
static void drop_result(job *j, const char *why)
{
    size_t n = strlen(j->result_json);
    free(j->result_json);
    free(j->error_type);
    free(j->error_message);
    free(j->error_traceback);
    j->result_json = j->error_traceback = NULL;
    j->status = JOB_FAILED;
    j->error_type = strdup("StorageFull");
    if (asprintf(&j->error_message, "the result (%zu bytes) could not be stored: %s", n, why) < 0)
        j->error_message = NULL;
}

static bool stopping(scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Stores the outcome. A job without a result ends even on a full disk (the store's
 * reserve); should even that fail, or a shared store be unreachable, it is tried again
 * every second until it works or executord stops (then the next start, or another
 * replica once this one's lease expired, ends it ExecutorLost), never left running. */
static store_rc record_outcome(scheduler *s, job *j)
{
    store_rc rc = store_finish_job(s->st, j);
    if (rc == STORE_NO_SPACE && j->result_json) {
        drop_result(j, store_last_error(s->st)); /* room went between the check and now */
        rc = store_finish_job(s->st, j);
    }
    bool logged = false;
    while ((rc == STORE_NO_SPACE || (rc == STORE_ERROR && store_error_is_outage())) &&
           !stopping(s)) {
        if (!logged)
            log_error("job %s: cannot record its outcome now (%s); retrying every second",
                      j->id, store_last_error(s->st));
        logged = true;
        struct timespec ts = {.tv_sec = 1};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        rc = store_finish_job(s->st, j);
    }
    return rc;
}

static void run_job(worker *w, job *j)
{
    scheduler *s = w->sched;
    int64_t t0 = time_monotonic_ms();
    log_info("job %s started backend=%s memory_mb=%llu queue_wait_ms=%lld", j->id, j->backend,
             (unsigned long long)j->limits.memory_mb, (long long)(j->started_at_ms - j->created_at_ms));
    run_on_backend(w, j);
    j->finished_at_ms = time_now_ms();
    if (j->result_json && store_make_room(s->st, strlen(j->result_json)) == STORE_NO_SPACE)
        drop_result(j, store_last_error(s->st));
    /* Observed before the outcome is stored, so whoever sees the job final also finds it
     * in the metrics. */
    metrics_job_finished(j->backend, job_status_name(j->status), j->created_at_ms, j->started_at_ms,
                         j->finished_at_ms);
    if (record_outcome(s, j) != STORE_OK)
        log_error("job %s: cannot record its outcome: %s", j->id, store_last_error(s->st));
    log_info("job %s finished backend=%s status=%s wall_ms=%lld%s%s", j->id, j->backend,
             job_status_name(j->status), (long long)(time_monotonic_ms() - t0),
             j->error_type ? " error=" : "", j->error_type ? j->error_type : "");
}

/* --- workers ----------------------------------------------------------------------- */

/* The order in which jobs wait for memory is head of line: only the oldest queued job
 * may start. When its limits.memory_mb does not fit in what running jobs leave of the
 * budget, no worker takes a younger job instead, even one that would fit: the oldest
 * waits only for jobs already running (each bounded by its timeout) to end, never for an
 * endless stream of small jobs overtaking it, so it cannot starve. The price is memory
 * left idle while it waits (no backfilling). A job asking more than the whole budget
 * never waits: the API refuses it, and one queued under a larger budget before a restart
 * is taken only to be failed. Its queue_wait_ms shows the wait. */
static bool over_whole_budget(const scheduler *s, uint64_t memory_mb)
{
    return s->opt.memory_budget_mb && memory_mb > s->opt.memory_budget_mb;
}

/* First time a queue head is found waiting for memory: counted and logged once. */
static void note_memory_wait(scheduler *s, const store_queue_head *head)
{
    if (strcmp(s->memory_waiter, head->id) == 0)
        return;
    memcpy(s->memory_waiter, head->id, sizeof s->memory_waiter);
    metrics_jobs_waited_for_memory(1);
    log_info("job %s waits for memory: limits.memory_mb %llu, running jobs hold %llu of the %llu MB "
             "budget", head->id, (unsigned long long)head->memory_mb, (unsigned long long)s->committed_mb,
             (unsigned long long)s->opt.memory_budget_mb);
}

/* Claims the oldest queued job into w when its memory fits; called with s->mu held. */
static bool claim_next(worker *w, job *j)
{
    scheduler *s = w->sched;
    if (s->paused[0])
        return false;
    uint64_t budget = s->opt.memory_budget_mb;
    uint64_t room = !budget ? UINT64_MAX : budget > s->committed_mb ? budget - s->committed_mb : 0;
    store_queue_head head = {.memory_mb = 0};
    int64_t now = time_now_ms();
    store_rc rc = store_claim_next_within(s->st, now, room, j, &head);
    bool over_budget = rc == STORE_CONFLICT && over_whole_budget(s, head.memory_mb);
    if (over_budget) /* still the head: cancels take s->mu too, and inserts go behind it */
        rc = store_claim_next_within(s->st, now, UINT64_MAX, j, NULL);
    if (rc == STORE_CONFLICT) {
        note_memory_wait(s, &head);
        return false;
    }
    /* No room on the disk: jobs stay queued; the store said so once in the log. */
    if (rc == STORE_NOT_FOUND || rc == STORE_NO_SPACE)
        return false;
    if (rc != STORE_OK) {
        log_error("cannot take a job from the queue: %s", store_last_error(s->st));
        return false;
    }
    drain_pipe(w->cancel_pipe[0]);
    w->busy = true;
    w->stop = STOP_NONE;
    memcpy(w->job_id, j->id, sizeof w->job_id);
    w->over_budget = over_budget;
    w->memory_mb = over_budget ? 0 : j->limits.memory_mb;
    s->committed_mb += w->memory_mb;
    if (strcmp(s->memory_waiter, j->id) == 0)
        s->memory_waiter[0] = '\0';
    return true;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    scheduler *s = w->sched;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        job j;
        job_init(&j);
        if (!claim_next(w, &j)) {
            struct timespec ts;
            deadline_after_ms(&ts, store_is_shared(s->st) ? IDLE_POLL_SHARED_MS : IDLE_POLL_MS);
            pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        run_job(w, &j);
        char id[JOB_ID_LEN + 1];
        memcpy(id, j.id, sizeof id);
        job_free(&j);
        pthread_mutex_lock(&s->mu);
        w->busy = false;
        w->job_id[0] = '\0';
        s->committed_mb -= w->memory_mb;
        w->memory_mb = 0;
        /* The memory just freed may let the waiting head start, and more than one job:
         * every idle worker looks again (this one too, when it loops). */
        if (s->memory_waiter[0])
            pthread_cond_broadcast(&s->work_cv);
        pthread_cond_broadcast(&s->idle_cv);
        pthread_mutex_unlock(&s->mu);
        notify_finished(s, id);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int scheduler_start(scheduler *s, char *err, size_t errlen)
{
    metrics_jobs_waited_for_memory(0); /* exported at 0 before the first wait */
    for (int i = 0; i < s->opt.workers; i++) {
        worker *w = &s->workers[i];
        if (pipe2(w->cancel_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
            snprintf(err, errlen, "pipe2: %s", strerror(errno));
            return -1;
        }
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "pthread_create: %s", strerror(rc));
            return -1;
        }
        w->started = true;
    }
    return 0;
}

static int busy_count(scheduler *s)
{
    int n = 0;
    for (int i = 0; i < s->opt.workers; i++)
        n += s->workers[i].busy;
    return n;
}

int scheduler_running_count(scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    int n = busy_count(s);
    pthread_mutex_unlock(&s->mu);
    return n;
}

void scheduler_memory(scheduler *s, uint64_t *budget_mb, uint64_t *committed_mb)
{
    pthread_mutex_lock(&s->mu);
    *budget_mb = s->opt.memory_budget_mb;
    *committed_mb = s->committed_mb;
    pthread_mutex_unlock(&s->mu);
}

void scheduler_stop(scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->work_cv);
    int running = busy_count(s);
    if (running)
        log_info("shutdown: waiting up to %gs for %d running job(s)", s->opt.shutdown_grace_seconds, running);
    struct timespec deadline;
    deadline_after_ms(&deadline, (int64_t)(s->opt.shutdown_grace_seconds * 1000));
    while (busy_count(s) > 0) {
        if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &deadline) == ETIMEDOUT)
            break;
    }
    for (int i = 0; i < s->opt.workers; i++) {
        worker *w = &s->workers[i];
        if (w->busy) {
            log_warn("shutdown: grace period over, killing job %s", w->job_id);
            request_stop(w, STOP_SHUTDOWN);
        }
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->opt.workers; i++)
        if (s->workers[i].started)
            pthread_join(s->workers[i].thread, NULL);
}

void scheduler_destroy(scheduler *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->opt.workers; i++) {
        if (s->workers[i].cancel_pipe[0] >= 0) {
            close(s->workers[i].cancel_pipe[0]);
            close(s->workers[i].cancel_pipe[1]);
        }
    }
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->workers);
    free(s);
}

/* --- cancellation ------------------------------------------------------------------ */

static worker *find_running(scheduler *s, const char *id)
{
    for (int i = 0; i < s->opt.workers; i++)
        if (s->workers[i].busy && strcmp(s->workers[i].job_id, id) == 0)
            return &s->workers[i];
    return NULL;
}

/* The job as it is now, after a cancel found it not queued. A DELETE may have removed it
 * meanwhile: that is "not found", not an error. CANCEL_FINISHED means "read". */
static cancel_rc reread_job(scheduler *s, const char *id, job *out)
{
    job_free(out);
    switch (store_get_job(s->st, id, out)) {
    case STORE_OK:
        return CANCEL_FINISHED;
    case STORE_NOT_FOUND:
        return CANCEL_NOT_FOUND;
    default:
        return CANCEL_ERROR;
    }
}

static cancel_rc cancel_running(scheduler *s, worker *w, const char *id, job *out)
{
    request_stop(w, STOP_CANCEL);
    struct timespec deadline;
    deadline_after_ms(&deadline, CANCEL_WAIT_MS);
    while (find_running(s, id) == w) {
        if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->mu);
    cancel_rc rc = reread_job(s, id, out);
    if (rc != CANCEL_FINISHED || out->status == JOB_CANCELLED)
        return rc == CANCEL_FINISHED ? CANCEL_DONE : rc;
    /* Finished on its own before the kill landed, or still being killed. */
    return job_status_is_final(out->status) ? CANCEL_FINISHED : CANCEL_DONE;
}

/* A job running on another replica: that replica is asked (src/store.h,
 * store_request_cancel) and kills it when the event reaches it; this waits, as
 * cancel_running does, for the job to be recorded final. */
static cancel_rc cancel_elsewhere(scheduler *s, const char *id, job *out)
{
    store_rc rc = store_request_cancel(s->st, id);
    if (rc == STORE_NOT_FOUND)
        return CANCEL_NOT_FOUND;
    if (rc == STORE_ERROR)
        return CANCEL_ERROR;
    if (rc == STORE_CONFLICT) {
        /* Not running any more, and it was not queued either: it ended meanwhile. */
        cancel_rc now = reread_job(s, id, out);
        if (now != CANCEL_FINISHED)
            return now;
        return job_status_is_final(out->status) ? CANCEL_FINISHED : CANCEL_ERROR;
    }
    log_info("job %s: cancel asked of the replica running it", id);
    int64_t deadline = time_monotonic_ms() + CANCEL_WAIT_MS;
    for (;;) {
        cancel_rc now = reread_job(s, id, out);
        if (now != CANCEL_FINISHED)
            return now;
        if (job_status_is_final(out->status))
            return out->status == JOB_CANCELLED ? CANCEL_DONE : CANCEL_FINISHED;
        if (time_monotonic_ms() >= deadline)
            return CANCEL_DONE; /* still being killed: reported as asked, as cancel_running does */
        struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

cancel_rc scheduler_cancel(scheduler *s, const char *id, job *out)
{
    pthread_mutex_lock(&s->mu);
    store_rc rc = store_cancel_queued(s->st, id, time_now_ms(), out);
    if (rc == STORE_OK) {
        if (strcmp(s->memory_waiter, id) == 0) {
            /* The head that waited for memory is gone: the next one may fit now. */
            s->memory_waiter[0] = '\0';
            pthread_cond_broadcast(&s->work_cv);
        }
        pthread_mutex_unlock(&s->mu);
        log_info("job %s cancelled while queued", id);
        notify_finished(s, id);
        return CANCEL_DONE;
    }
    if (rc == STORE_NOT_FOUND) {
        pthread_mutex_unlock(&s->mu);
        return CANCEL_NOT_FOUND;
    }
    if (rc == STORE_CONFLICT) {
        worker *w = find_running(s, id);
        if (w)
            return cancel_running(s, w, id, out); /* unlocks */
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == STORE_CONFLICT && store_is_shared(s->st))
        return cancel_elsewhere(s, id, out);
    if (rc == STORE_ERROR)
        return CANCEL_ERROR;
    cancel_rc now = reread_job(s, id, out);
    if (now != CANCEL_FINISHED)
        return now;
    return job_status_is_final(out->status) ? CANCEL_FINISHED : CANCEL_ERROR;
}

/* --- replicas (src/replica.c) ------------------------------------------------------- */

void scheduler_job_final_elsewhere(scheduler *s, const char *id)
{
    notify_finished(s, id);
}

bool scheduler_cancel_local(scheduler *s, const char *id)
{
    pthread_mutex_lock(&s->mu);
    worker *w = find_running(s, id);
    if (w && w->stop == STOP_NONE)
        request_stop(w, STOP_CANCEL);
    pthread_mutex_unlock(&s->mu);
    return w != NULL;
}

int scheduler_running_ids(scheduler *s, char (*ids)[JOB_ID_LEN + 1], int max)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->opt.workers && n < max; i++)
        if (s->workers[i].busy)
            memcpy(ids[n++], s->workers[i].job_id, JOB_ID_LEN + 1);
    pthread_mutex_unlock(&s->mu);
    return n;
}

void scheduler_pause_claims(scheduler *s, const char *why)
{
    pthread_mutex_lock(&s->mu);
    bool was = s->paused[0] != '\0';
    snprintf(s->paused, sizeof s->paused, "%s", why && why[0] ? why : "paused");
    pthread_mutex_unlock(&s->mu);
    if (!was)
        log_warn("not taking jobs from the queue: %s", why);
}

void scheduler_resume_claims(scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    bool was = s->paused[0] != '\0';
    s->paused[0] = '\0';
    if (was)
        pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    if (was)
        log_info("taking jobs from the queue again");
}

bool scheduler_claims_paused(scheduler *s, char *why, size_t len)
{
    pthread_mutex_lock(&s->mu);
    bool paused = s->paused[0] != '\0';
    if (paused && why)
        snprintf(why, len, "%s", s->paused);
    pthread_mutex_unlock(&s->mu);
    return paused;
}
