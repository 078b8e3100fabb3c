/* GET /metrics: gathers what is only known at scrape time (job counts and storage from
 * the store, the scheduler's running jobs and the memory they hold, each backend's
 * availability and the pool's state) and appends the in-process registry, as Prometheus
 * text exposition format 0.0.4. */
#include "api/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "src/log.h"
#include "src/metrics.h"

/* Rows of the (status, backend) count: 6 statuses x a few backends, with room to spare
 * for rows of backends this binary no longer knows. */
#define MAX_COUNT_ROWS 64

static const job_status all_statuses[] = {JOB_QUEUED,    JOB_RUNNING,   JOB_SUCCEEDED,
                                          JOB_FAILED,    JOB_TIMED_OUT, JOB_CANCELLED};
#define N_STATUSES (sizeof all_statuses / sizeof all_statuses[0])

static const char *const backend_label[] = {"backend"};

typedef struct job_counts {
    store_status_count rows[MAX_COUNT_ROWS];
    int n;        /* -1: the store could not be read */
} job_counts;

static int64_t count_of(const job_counts *c, job_status status, const char *backend)
{
    int64_t n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->rows[i].status == status && (!backend || strcmp(c->rows[i].backend, backend) == 0))
            n += c->rows[i].count;
    return n;
}

static bool backend_listed(const api_backend_checks *checks, const char *name)
{
    for (const char *const *b = checks->names; *b; b++)
        if (strcmp(*b, name) == 0)
            return true;
    return false;
}

static void write_job_sample(metrics_buf *b, job_status status, const char *backend, int64_t n)
{
    static const char *const names[] = {"status", "backend"};
    const char *values[] = {job_status_name(status), backend};
    metrics_write_sample(b, "executord_jobs", 2, names, values, (double)n);
}

/* Every known backend gets every status (0 included) so queries never miss a series;
 * rows of other backends (jobs stored by an older binary) follow as they are. */
static void write_job_counts(metrics_buf *b, const job_counts *c, const api_backend_checks *checks)
{
    metrics_write_family(b, "executord_jobs", "gauge",
                         "Jobs in the store, by status and backend (finished jobs stay until retention).");
    for (const char *const *be = checks->names; *be; be++)
        for (size_t s = 0; s < N_STATUSES; s++)
            write_job_sample(b, all_statuses[s], *be, count_of(c, all_statuses[s], *be));
    for (int i = 0; i < c->n; i++)
        if (!backend_listed(checks, c->rows[i].backend))
            write_job_sample(b, c->rows[i].status, c->rows[i].backend, c->rows[i].count);
}

static void write_gauge(metrics_buf *b, const char *name, const char *help, double v)
{
    metrics_write_family(b, name, "gauge", help);
    metrics_write_sample(b, name, 0, NULL, NULL, v);
}

static void write_queue(metrics_buf *b, const job_counts *c, api_server *srv)
{
    /* Of the whole queue, which replicas of a shared store have in common: the figure an
     * autoscaler (KEDA, HPA) scales the replicas on. */
    write_gauge(b, "executord_queue_depth", "Jobs queued, waiting for a worker (of any replica "
                "sharing the store).", (double)count_of(c, JOB_QUEUED, NULL));
    /* The scheduler's own count is the truth about workers; the store's is a fallback
     * for a server started without one (tests). */
    int running = srv->sch ? scheduler_running_count(srv->sch) : (int)count_of(c, JOB_RUNNING, NULL);
    write_gauge(b, "executord_jobs_running", "Jobs running now on this replica.", running);
    write_gauge(b, "executord_workers", "Jobs that can run at once (--workers).", srv->cfg->workers);
}

/* The budget is fixed at start-up (the configuration has the effective one); what running
 * jobs hold is the scheduler's, absent without one (tests). */
static void write_memory(metrics_buf *b, api_server *srv)
{
    uint64_t budget = srv->cfg->memory_budget_mb, committed = 0;
    if (srv->sch)
        scheduler_memory(srv->sch, &budget, &committed);
    if (budget)
        write_gauge(b, "executord_memory_budget_bytes",
                    "What the memory limits of all running jobs may add up to (--memory-budget-mb).",
                    (double)budget * 1048576.0);
    if (srv->sch)
        write_gauge(b, "executord_memory_committed_bytes",
                    "The memory limits of the jobs running now, added up.", (double)committed * 1048576.0);
}

static double available(const api_backend_checks *checks, const char *name)
{
    const char *why = NULL; /* not shown here: /v1/backends says why */
    return checks->available(name, &why) ? 1 : 0;
}

static void write_backends(metrics_buf *b, const api_backend_checks *checks)
{
    metrics_write_family(b, "executord_backend_available", "gauge",
                         "1 when the backend can run jobs on this host, else 0 (see GET /v1/backends).");
    for (const char *const *be = checks->names; *be; be++) {
        const char *values[] = {*be};
        metrics_write_sample(b, "executord_backend_available", 1, backend_label, values,
                             available(checks, *be));
    }
}

/* The pool's numbers, as /v1/backends shows them ({"ready": 3, "busy": 1, ...}). */
static const struct pool_metric {
    const char *key, *name, *type, *help;
} pool_metrics[] = {
    {"size", "executord_pool_size", "gauge", "Warm sandboxes the pool keeps ready (--pool-size)."},
    {"zygotes", "executord_pool_zygotes", "gauge", "Live zygote processes forking warm sandboxes."},
    {"started", "executord_pool_started_total", "counter", "Warm sandboxes started."},
    {"recycled", "executord_pool_recycled_total", "counter",
     "Zygotes retired after --pool-recycle-jobs sandboxes or --pool-recycle-seconds."},
    {"failures", "executord_pool_failures_total", "counter",
     "Pool failures (a zygote or warm sandbox that broke); jobs then start cold."},
    {"cold_starts", "executord_pool_cold_starts_total", "counter",
     "Pool jobs that found no ready sandbox and started cold."},
};

static bool json_count(json_t *state, const char *key, double *out)
{
    json_t *v = json_object_get(state, key);
    if (!json_is_integer(v))
        return false;
    *out = (double)json_integer_value(v);
    return true;
}

/* Ready and busy are one family with a state label: their sum is the pool's sandboxes. */
static void write_pool_sandboxes(metrics_buf *b, json_t *state)
{
    static const char *const states[] = {"ready", "busy"};
    static const char *const label[] = {"state"};
    metrics_write_family(b, "executord_pool_sandboxes", "gauge",
                         "Warm sandboxes by state: ready for a job, or busy running one.");
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        double n = 0;
        if (json_count(state, states[i], &n))
            metrics_write_sample(b, "executord_pool_sandboxes", 1, label, &states[i], n);
    }
}

static void write_pool(metrics_buf *b, const api_backend_checks *checks)
{
    if (!checks->state_json || !backend_listed(checks, "pool"))
        return;
    char *text = checks->state_json("pool");
    json_t *state = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(state)) {
        json_decref(state);
        return; /* the pool is not built or reports nothing: no pool families */
    }
    write_pool_sandboxes(b, state);
    for (size_t i = 0; i < sizeof pool_metrics / sizeof pool_metrics[0]; i++) {
        const struct pool_metric *pm = &pool_metrics[i];
        double n = 0;
        if (!json_count(state, pm->key, &n))
            continue;
        metrics_write_family(b, pm->name, pm->type, pm->help);
        metrics_write_sample(b, pm->name, 0, NULL, NULL, n);
    }
    json_decref(state);
}

/* The storage quota and what eviction did (src/store.h, storage). */
static void write_storage(metrics_buf *b, const store_storage *st)
{
    write_gauge(b, "executord_storage_used_bytes",
                "Bytes the jobs hold in the store: scripts, inputs, results, errors and output.",
                (double)st->used_bytes);
    write_gauge(b, "executord_storage_evictable_bytes",
                "Of those, the output and results of finished jobs, which eviction may take.",
                (double)st->evictable_bytes);
    write_gauge(b, "executord_storage_quota_bytes", "The storage quota (--max-storage-mb), in bytes.",
                (double)st->quota_bytes);
    write_gauge(b, "executord_storage_full",
                "1 when the store counts as full (/readyz answers 503): less than 1 MiB would be "
                "left even after evicting all there is to evict.",
                st->full);
    if (st->disk_watched)
        write_gauge(b, "executord_storage_disk_free_bytes",
                    "Free bytes the store can still use on the data folder's disk (its free "
                    "space plus the database's free pages, the reserve not counted).",
                    (double)st->disk_free_bytes);
    static const char *const what[] = {"output", "result"};
    static const char *const label[] = {"what"};
    metrics_write_family(b, "executord_storage_evictions_total", "counter",
                         "Finished jobs whose output or result was evicted to make room, since start.");
    metrics_write_sample(b, "executord_storage_evictions_total", 1, label, &what[0],
                         (double)st->evicted_outputs);
    metrics_write_sample(b, "executord_storage_evictions_total", 1, label, &what[1],
                         (double)st->evicted_results);
}

/* Which replica answered (scrapes of several replicas are told apart by it) and whether
 * it takes jobs: 0 while a shared store cannot be reached or its lease renewed. */
static void write_replica(metrics_buf *b, api_server *srv)
{
    static const char *const labels[] = {"replica_id", "store"};
    const char *values[] = {store_replica_id(srv->st), store_is_shared(srv->st) ? "shared" : "local"};
    metrics_write_family(b, "executord_replica_info", "gauge",
                         "Always 1; the labels name this replica and whether its job store is "
                         "shared with others (--store).");
    metrics_write_sample(b, "executord_replica_info", 2, labels, values, 1);
    write_gauge(b, "executord_replica_claiming",
                "1 while this replica takes jobs from the queue; 0 while its store cannot be "
                "reached or its lease renewed.",
                srv->sch ? !scheduler_claims_paused(srv->sch, NULL, 0) : 1);
}

api_result api_metrics_get(api_request *rq, api_response *rs)
{
    api_server *srv = rq->srv;
    const api_backend_checks *checks = srv->backends;
    job_counts *counts = malloc(sizeof *counts);
    if (!counts)
        return api_respond_errorf(rs, 500, "internal", "out of memory");
    counts->n = store_count_by_status_backend(srv->st, counts->rows, MAX_COUNT_ROWS);
    if (counts->n < 0)
        log_error("metrics: cannot count jobs: %s", store_last_error(srv->st));

    metrics_buf b;
    metrics_buf_init(&b);
    metrics_write_registry(&b);
    /* A store that cannot be read still leaves the rest worth scraping; say so. */
    write_gauge(&b, "executord_store_up", "1 when the job store answered this scrape, else 0.",
                counts->n >= 0);
    if (counts->n >= 0) {
        write_job_counts(&b, counts, checks);
        write_queue(&b, counts, srv);
    }
    write_memory(&b, srv);
    write_replica(&b, srv);
    store_storage storage;
    if (store_storage_state(srv->st, &storage) == 0)
        write_storage(&b, &storage);
    write_backends(&b, checks);
    write_pool(&b, checks);
    free(counts);

    size_t len = 0;
    char *text = metrics_buf_take(&b, &len);
    if (!text)
        return api_respond_errorf(rs, 500, "internal", "out of memory");
    api_respond_text(rs, 200, text, len);
    rs->content_type = API_METRICS_CONTENT_TYPE;
    return API_RESPOND;
}
