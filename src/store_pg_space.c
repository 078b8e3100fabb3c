/* The storage quota in the PostgreSQL store, the same rules as SQLite's: each job counts
 * what it holds (migration 001's triggers keep one usage row); new data that would pass
 * the quota first evicts the output, then the results, of the oldest finished jobs, else
 * is refused. The server's disk is not this service's to watch: no reserve, disk_watched
 * false. Also the retention deletes of old finished jobs. */
#include "src/store_pg.h"

#include <stdio.h>
#include <string.h>

#include "src/log.h"

#define EVICT_BATCH 64
/* Below this much room (or a quarter of a small quota) the store counts as full. */
#define PG_MIN_ROOM (1u << 20)

static store_rc read_usage(pg_store *s, pg_conn *c, uint64_t *used, uint64_t *evictable)
{
    PGresult *r = pg_exec(s, c, "SELECT used_bytes, evictable_bytes FROM storage_usage WHERE id = 1",
                          NULL, "reading the storage total");
    if (!r)
        return STORE_ERROR;
    store_rc rc = STORE_OK;
    if (PQntuples(r) == 0) {
        store_set_error("reading the storage total: its row is missing");
        rc = STORE_ERROR;
    } else {
        *used = pg_u64(r, 0, 0);
        *evictable = pg_u64(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

store_rc pg_admit(pg_store *s, pg_conn *c, uint64_t add, uint64_t *shortfall)
{
    *shortfall = 0;
    if (!s->quota_bytes)
        return STORE_OK;
    uint64_t used = 0, evictable = 0;
    store_rc r = read_usage(s, c, &used, &evictable);
    if (r != STORE_OK)
        return r;
    return pg_admit_usage(s, used, evictable, add, shortfall);
}

store_rc pg_admit_usage(pg_store *s, uint64_t used, uint64_t evictable, uint64_t add,
                        uint64_t *shortfall)
{
    *shortfall = 0;
    if (!s->quota_bytes || used + add <= s->quota_bytes)
        return STORE_OK;
    *shortfall = used + add - s->quota_bytes;
    /* Data is not thrown away for a request that would be refused anyway. */
    if (evictable < *shortfall)
        *shortfall = 0;
    store_set_error("the storage quota is used up: jobs hold %llu of %llu bytes and %llu more "
                    "were needed", (unsigned long long)used, (unsigned long long)s->quota_bytes,
                    (unsigned long long)add);
    return STORE_NO_SPACE;
}

/* ---- eviction ------------------------------------------------------------------------ */

/* The oldest finished jobs holding output (or a result). SKIP LOCKED: a job another
 * replica is evicting, deleting or reading for update is left to it. */
#define SQL_PICK_OUTPUTS                                                                    \
    "SELECT seq, output_stored_bytes FROM jobs WHERE finished_at_ms IS NOT NULL"            \
    " AND output_stored_bytes > 0 ORDER BY finished_at_ms, seq LIMIT $1 FOR UPDATE SKIP LOCKED"
#define SQL_PICK_RESULTS                                                                    \
    "SELECT seq, result_stored_bytes FROM jobs WHERE finished_at_ms IS NOT NULL"            \
    " AND result_stored_bytes > 0 ORDER BY finished_at_ms, seq LIMIT $1 FOR UPDATE SKIP LOCKED"
/* $1: the picked jobs' seqs, as an array literal. */
#define SQL_EVICT_OUTPUT_ROWS                                                               \
    "DELETE FROM job_output WHERE job_id IN (SELECT id FROM jobs WHERE seq = ANY($1::bigint[]))"
#define SQL_EVICT_OUTPUTS                                                                   \
    "UPDATE jobs SET stored_bytes = GREATEST(stored_bytes - output_stored_bytes, 0),"       \
    " output_stored_bytes = 0, output_evicted = true WHERE seq = ANY($1::bigint[])"
#define SQL_EVICT_RESULTS                                                                   \
    "UPDATE jobs SET stored_bytes = GREATEST(stored_bytes - result_stored_bytes, 0),"       \
    " result_stored_bytes = 0, result_json = NULL, result_evicted = true"                   \
    " WHERE seq = ANY($1::bigint[])"

typedef struct evict_args {
    bool outputs;
    uint64_t want;    /* still to free */
    uint64_t freed;   /* by this batch */
    uint64_t jobs;
} evict_args;

/* One transaction: picks the oldest, no more than want needs, and evicts them. */
static store_rc evict_batch(pg_store *s, pg_conn *c, void *arg)
{
    evict_args *a = arg;
    a->freed = a->jobs = 0;
    pg_params p;
    pp_init(&p);
    pp_i64(&p, EVICT_BATCH);
    PGresult *r = pg_exec(s, c, a->outputs ? SQL_PICK_OUTPUTS : SQL_PICK_RESULTS, &p,
                          "choosing jobs to evict");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    char seqs[EVICT_BATCH * 21 + 3] = "{";
    size_t len = 1;
    for (int i = 0; i < PQntuples(r) && a->freed < a->want; i++) {
        len += (size_t)snprintf(seqs + len, sizeof seqs - len, "%s%s", a->jobs ? "," : "",
                                pg_val(r, i, 0));
        a->freed += pg_u64(r, i, 1);
        a->jobs++;
    }
    PQclear(r);
    snprintf(seqs + len, sizeof seqs - len, "}");
    if (a->jobs == 0)
        return STORE_OK;
    pp_init(&p);
    pp_text(&p, seqs);
    store_rc rc = a->outputs ? pg_cmd(s, c, SQL_EVICT_OUTPUT_ROWS, &p, "evicting") : STORE_OK;
    if (rc == STORE_OK)
        rc = pg_cmd(s, c, a->outputs ? SQL_EVICT_OUTPUTS : SQL_EVICT_RESULTS, &p, "evicting");
    pp_free(&p);
    return rc;
}

bool pg_evict(pg_store *s, uint64_t want)
{
    want += store_eviction_slack(s->quota_bytes);
    uint64_t freed = 0, jobs[2] = {0, 0};
    char reason[1024];
    snprintf(reason, sizeof reason, "%s", store_error_text());
    for (int pass = 0; pass < 2 && freed < want; pass++) {
        for (;;) {
            evict_args a = {pass == 0, want - freed, 0, 0};
            if (pg_tx(s, evict_batch, &a) != STORE_OK) {
                log_error("storage: cannot evict: %s", store_error_text());
                pass = 2;
                break;
            }
            if (a.jobs == 0)
                break;
            freed += a.freed;
            jobs[pass] += a.jobs;
            if (freed >= want)
                break;
        }
    }
    /* The caller's reason for evicting stays the error to report. */
    store_set_error("%s", reason);
    if (jobs[0] || jobs[1]) {
        atomic_fetch_add(&s->evicted_outputs, jobs[0]);
        atomic_fetch_add(&s->evicted_results, jobs[1]);
        log_info("storage: evicted the output of %llu and the result of %llu finished job(s), "
                 "oldest first (%llu bytes)", (unsigned long long)jobs[0],
                 (unsigned long long)jobs[1], (unsigned long long)freed);
    }
    return freed > 0;
}

/* ---- configuration and state --------------------------------------------------------- */

int pg_set_storage(void *self, const store_storage_options *o, char *err, size_t errlen)
{
    pg_store *s = self;
    s->quota_bytes = o->quota_bytes; /* the reserve (a local disk's) does not apply */
    return 0;
}

typedef struct admit_args {
    uint64_t bytes, shortfall;
} admit_args;

static store_rc admit_only(pg_store *s, pg_conn *c, void *arg)
{
    admit_args *a = arg;
    return pg_admit(s, c, a->bytes, &a->shortfall);
}

store_rc pg_make_room(void *self, uint64_t bytes)
{
    pg_store *s = self;
    admit_args a = {bytes, 0};
    store_rc r = pg_read(s, false, admit_only, &a);
    if (r == STORE_NO_SPACE && a.shortfall && pg_evict(s, a.shortfall))
        r = pg_read(s, false, admit_only, &a);
    return r;
}

typedef struct usage_args {
    uint64_t used, evictable;
} usage_args;

static store_rc usage(pg_store *s, pg_conn *c, void *arg)
{
    usage_args *a = arg;
    return read_usage(s, c, &a->used, &a->evictable);
}

int pg_storage_state(void *self, store_storage *out)
{
    pg_store *s = self;
    usage_args a = {0, 0};
    if (pg_read(s, false, usage, &a) != STORE_OK)
        return -1;
    out->used_bytes = a.used;
    out->evictable_bytes = a.evictable;
    out->quota_bytes = s->quota_bytes;
    out->disk_watched = false;
    out->evicted_outputs = atomic_load(&s->evicted_outputs);
    out->evicted_results = atomic_load(&s->evicted_results);
    uint64_t min_room = s->quota_bytes / 4 < PG_MIN_ROOM ? s->quota_bytes / 4 : PG_MIN_ROOM;
    uint64_t kept = a.used > a.evictable ? a.used - a.evictable : 0;
    out->full = s->quota_bytes && kept + min_room > s->quota_bytes;
    if (out->full)
        snprintf(out->reason, sizeof out->reason,
                 "the storage quota is used up by queued and running jobs and the scripts "
                 "and inputs of finished ones");
    return 0;
}

/* ---- retention ----------------------------------------------------------------------- */

/* Their output goes with them (ON DELETE CASCADE). */
#define SQL_DELETE_OLD                                                                      \
    "WITH old AS (SELECT id FROM jobs WHERE finished_at_ms < $1 AND status IN "             \
    PG_FINAL_STATUSES " FOR UPDATE SKIP LOCKED),"                                           \
    " j AS (DELETE FROM jobs WHERE id IN (SELECT id FROM old) RETURNING id)"                \
    " SELECT pg_notify('executord_final', id) FROM j"

typedef struct retention_args {
    int64_t cutoff_ms;
    int64_t deleted;
} retention_args;

static store_rc delete_old(pg_store *s, pg_conn *c, void *arg)
{
    retention_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_i64(&p, a->cutoff_ms);
    PGresult *r = pg_exec(s, c, SQL_DELETE_OLD, &p, "deleting old jobs");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    a->deleted = PQntuples(r);
    PQclear(r);
    return STORE_OK;
}

int64_t pg_delete_finished_before(void *self, int64_t cutoff_ms)
{
    retention_args a = {cutoff_ms, -1};
    return pg_tx(self, delete_old, &a) == STORE_OK ? a.deleted : -1;
}
