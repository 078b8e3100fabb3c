/* A job's life in the PostgreSQL store: insert (the queue bound and idempotency keys held
 * across replicas by a transaction-level advisory lock), claim (FOR UPDATE SKIP LOCKED,
 * recording the replica), finish, cancel, delete, the recovery of this replica's jobs from
 * a previous life, counts, and reading a job back. Every statement that makes a job final
 * erases its env values (names kept) and notifies executord_final in its transaction; an
 * insert notifies executord_queue, so replicas wake on commit rather than poll. */
#include "src/store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/timeutil.h"

#define NOTIFY_FINAL(col) "pg_notify('executord_final', " col ")"

/* ---- reading ------------------------------------------------------------------------- */

typedef struct get_args {
    const char *id;
    job *out;
} get_args;

static store_rc get_by_id(pg_store *s, pg_conn *c, void *arg)
{
    get_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->id);
    store_rc r = pg_one_job(s, c, "SELECT " PG_JOB_SELECT " FROM jobs WHERE id = $1", &p, a->out,
                            "reading job");
    pp_free(&p);
    return r;
}

store_rc pg_get_job(void *self, const char *id, job *out)
{
    get_args a = {id, out};
    return pg_read(self, false, get_by_id, &a);
}

store_rc pg_status_of(pg_store *s, pg_conn *c, const char *id, job_status *status)
{
    pg_params p;
    pp_init(&p);
    pp_text(&p, id);
    PGresult *r = pg_exec(s, c, "SELECT status FROM jobs WHERE id = $1", &p, "reading job status");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    store_rc rc = STORE_NOT_FOUND;
    if (PQntuples(r) > 0) {
        rc = job_status_parse(pg_val(r, 0, 0), status) == 0 ? STORE_OK : STORE_ERROR;
        if (rc != STORE_OK)
            store_set_error("job %s has an unknown status", id);
    }
    PQclear(r);
    return rc;
}

/* ---- counting ------------------------------------------------------------------------ */

typedef struct count_args {
    job_status status;
    int64_t n;
} count_args;

static store_rc count_status(pg_store *s, pg_conn *c, void *arg)
{
    count_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, job_status_name(a->status));
    PGresult *r = pg_exec(s, c, "SELECT count(*) FROM jobs WHERE status = $1", &p,
                          "counting jobs");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    a->n = pg_i64(r, 0, 0);
    PQclear(r);
    return STORE_OK;
}

int64_t pg_count_status(void *self, job_status status)
{
    count_args a = {status, -1};
    return pg_read(self, false, count_status, &a) == STORE_OK ? a.n : -1;
}

typedef struct count_rows {
    store_status_count *out;
    int max, n;
} count_rows;

static store_rc count_by_status_backend(pg_store *s, pg_conn *c, void *arg)
{
    count_rows *a = arg;
    PGresult *r = pg_exec(s, c, "SELECT status, backend, count(*) FROM jobs GROUP BY status, backend",
                          NULL, "counting jobs by status and backend");
    if (!r)
        return STORE_ERROR;
    store_rc rc = STORE_OK;
    /* Rows beyond max are dropped: there are at most statuses x backends. */
    for (int i = 0; i < PQntuples(r) && a->n < a->max; i++) {
        store_status_count *row = &a->out[a->n];
        if (job_status_parse(pg_val(r, i, 0), &row->status) != 0) {
            store_set_error("counting jobs: unknown status '%s' in the database", pg_val(r, i, 0));
            rc = STORE_ERROR;
            break;
        }
        snprintf(row->backend, sizeof row->backend, "%s", pg_val(r, i, 1) ? pg_val(r, i, 1) : "");
        row->count = pg_i64(r, i, 2);
        a->n++;
    }
    PQclear(r);
    return rc;
}

int pg_count_by_status_backend(void *self, store_status_count *out, int max)
{
    count_rows a = {out, max, 0};
    return pg_read(self, false, count_by_status_backend, &a) == STORE_OK ? a.n : -1;
}

/* ---- insert -------------------------------------------------------------------------- */

/* The request's columns (JOB_REQUEST_COLUMNS), numbered after the six fixed parameters. */
#define PG_INSERT_NAME(col, form, kind, member) ", " #col
#define PG_INSERT_COLUMNS "id, status, created_at_ms, idempotency_key, request_sha256, stored_bytes" \
    JOB_REQUEST_COLUMNS(PG_INSERT_NAME)

#define PG_BIND_TEXT(p, v) pp_text(p, v)
#define PG_BIND_JSON(p, v) pp_text(p, (v) ? (v) : "{}")
#define PG_BIND_CHARS(p, v) pp_text(p, v)
#define PG_BIND_BOOL(p, v) pp_bool(p, v)
#define PG_BIND_U64(p, v) pp_u64(p, v)
#define PG_BIND_SECONDS(p, v) pp_f64(p, v)
#define PG_BIND_COLUMN(col, form, kind, member) PG_BIND_##kind(&p, j->member);

/* "$1, $2, ..., $n" */
static void placeholders(char *out, size_t size, int n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 1; i <= n && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s$%d", i > 1 ? ", " : "", i);
}

typedef struct insert_args {
    job *j;
    const char *digest;
    uint64_t bytes;
    int64_t max_queued;
    job *existing;
    uint64_t shortfall;
} insert_args;

/* The job that holds the key decides: EXISTS (same digest) or CONFLICT; NOT_FOUND when
 * the key is unused. */
static store_rc check_idempotency(pg_store *s, pg_conn *c, insert_args *a)
{
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->j->idempotency_key);
    PGresult *r = pg_exec(s, c, "SELECT request_sha256 FROM jobs WHERE idempotency_key = $1", &p,
                          "reading the request digest");
    if (!r) {
        pp_free(&p);
        return STORE_ERROR;
    }
    store_rc rc = STORE_NOT_FOUND;
    if (PQntuples(r) > 0) {
        const char *d = pg_val(r, 0, 0);
        bool same = (!d && !a->digest) || (d && a->digest && strcmp(d, a->digest) == 0);
        rc = same ? STORE_EXISTS : STORE_CONFLICT;
        if (!same)
            store_set_error("idempotency key reused with another request");
    }
    PQclear(r);
    if (rc == STORE_EXISTS && a->existing) {
        store_rc g = pg_one_job(s, c, "SELECT " PG_JOB_SELECT " FROM jobs WHERE idempotency_key = $1",
                                &p, a->existing, "reading the job of an idempotency key");
        if (g != STORE_OK)
            rc = g == STORE_NOT_FOUND ? STORE_ERROR : g;
    }
    pp_free(&p);
    return rc;
}

/* The job's row (and its labels), written only when the queue bound and the quota admit
 * it: both checks and the write in one statement, which sees every insert committed
 * before it (it runs after the advisory lock, with a snapshot of its own). */
static store_rc insert_rows(pg_store *s, pg_conn *c, insert_args *a)
{
    job *j = a->j;
    char sql[8192];
    pg_params p;
    pp_init(&p);
    pp_text(&p, j->id);
    pp_text(&p, "queued");
    pp_i64(&p, j->created_at_ms);
    pp_text(&p, j->idempotency_key);
    pp_text(&p, a->digest);
    pp_u64(&p, a->bytes);
    JOB_REQUEST_COLUMNS(PG_BIND_COLUMN)
    char ph[512];
    placeholders(ph, sizeof ph, p.n);
    pp_text(&p, s->replica_id); /* the wake-up's payload: this replica ignores its own */
    int replica_param = p.n;
    pp_i64(&p, a->max_queued > 0 ? a->max_queued : 0);
    int max_param = p.n;
    pp_u64(&p, s->quota_bytes);
    int quota_param = p.n;
    /* The queued jobs are counted only when there is a bound. */
    char queued[96];
    if (a->max_queued > 0)
        snprintf(queued, sizeof queued, "(SELECT count(*) FROM jobs WHERE status = 'queued')");
    else
        snprintf(queued, sizeof queued, "0::bigint");
    /* One statement: the checks, the job, its labels (string values only; a key given
     * twice keeps its last value) and the wake-up of every other replica, delivered when
     * this commits (the inserting one's API wakes its scheduler itself). One row: the
     * queued count and the usage row as checked, and the new job's seq (NULL when refused). */
    int len = snprintf(sql, sizeof sql,
                       "WITH chk AS (SELECT %s AS queued, used_bytes, evictable_bytes FROM storage_usage"
                       " WHERE id = 1),"
                       " ins AS (INSERT INTO jobs (" PG_INSERT_COLUMNS ") SELECT %s FROM chk"
                       " WHERE ($%d::bigint = 0 OR chk.queued < $%d::bigint)"
                       " AND ($%d::bigint = 0 OR chk.used_bytes + $6::bigint <= $%d::bigint)"
                       " RETURNING seq, labels_json),"
                       " lab AS (INSERT INTO job_labels (job_seq, key, value)"
                       " SELECT DISTINCT ON (e.key) ins.seq, e.key, e.value #>> '{}' FROM ins,"
                       " json_each(CASE WHEN json_typeof(ins.labels_json::json) = 'object'"
                       " THEN ins.labels_json::json ELSE '{}'::json END) WITH ORDINALITY AS e(key, value, n)"
                       " WHERE json_typeof(e.value) = 'string' ORDER BY e.key, e.n DESC)"
                       " SELECT chk.queued, chk.used_bytes, chk.evictable_bytes, ins.seq,"
                       " CASE WHEN ins.seq IS NOT NULL THEN pg_notify('executord_queue', $%d::text) END"
                       " FROM chk LEFT JOIN ins ON true",
                       queued, ph, max_param, max_param, quota_param, quota_param, replica_param);
    if (len < 0 || (size_t)len >= sizeof sql) {
        pp_free(&p);
        store_set_error("inserting job: the statement does not fit its buffer");
        return STORE_ERROR;
    }
    /* The transaction's last statement: its COMMIT goes with it. */
    PGresult *r = pg_exec_commit(s, c, sql, &p, "inserting job");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    store_rc rc = STORE_OK;
    if (PQntuples(r) == 0) {
        store_set_error("reading the storage total: its row is missing");
        rc = STORE_ERROR;
    } else if (!PQgetisnull(r, 0, 3)) {
        j->seq = pg_i64(r, 0, 3);
    } else if (a->max_queued > 0 && pg_i64(r, 0, 0) >= a->max_queued) {
        store_set_error("the queue is full (%lld jobs queued)", (long long)pg_i64(r, 0, 0));
        rc = STORE_FULL;
    } else {
        rc = pg_admit_usage(s, pg_u64(r, 0, 1), pg_u64(r, 0, 2), a->bytes, &a->shortfall);
        if (rc == STORE_OK) { /* refused, yet the figures it returned admit it */
            store_set_error("inserting job: refused without a reason");
            rc = STORE_ERROR;
        }
    }
    PQclear(r);
    return rc;
}

/* Under the queue's lock (pg_tx_locked). */
static store_rc insert_job(pg_store *s, pg_conn *c, void *arg)
{
    insert_args *a = arg;
    store_rc r;
    if (a->j->idempotency_key && (r = check_idempotency(s, c, a)) != STORE_NOT_FOUND)
        return r; /* EXISTS, CONFLICT or ERROR: nothing to write */
    return insert_rows(s, c, a);
}

/* pg_tx treats only STORE_OK as "commit"; EXISTS and the like roll back, which is right:
 * they wrote nothing. */
store_rc pg_insert_job(void *self, job *j, const char *digest, int64_t max_queued, job *existing)
{
    pg_store *s = self;
    uint64_t bytes = store_text_bytes(j->script) + store_text_bytes(j->inputs_json ? j->inputs_json : "{}");
    insert_args a = {j, digest, bytes, max_queued, existing, 0};
    store_rc r = pg_tx_locked(s, PG_LOCK_INSERT, insert_job, &a);
    if (r == STORE_NO_SPACE && a.shortfall && pg_evict(s, a.shortfall))
        r = pg_tx_locked(s, PG_LOCK_INSERT, insert_job, &a);
    if (r == STORE_OK)
        j->status = JOB_QUEUED;
    return r;
}

/* ---- claim --------------------------------------------------------------------------- */

/* The oldest queued job, locked so that no other replica takes it too; one another replica
 * is claiming right now is skipped (it is being taken). Only when its memory fits ($2):
 * never a younger job in its place (the scheduler's head-of-line rule). One row always:
 * the claimed job's columns (NULL when none), then the queue's head as this statement's
 * snapshot sees it, locked or not (its id and memory_mb; NULL when nothing is queued), so
 * that a claim that takes nothing needs no second round trip to say why. */
#define SQL_CLAIM                                                                           \
    "WITH head AS (SELECT seq AS head_seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1" \
    " FOR UPDATE SKIP LOCKED),"                                                             \
    " c AS (UPDATE jobs SET status = 'running', started_at_ms = $1, running_on = NULLIF($3, ''),"  \
    " cancel_requested = false FROM head WHERE jobs.seq = head_seq AND jobs.memory_mb <= $2" \
    " RETURNING " PG_JOB_SELECT "),"                                                        \
    " h AS (SELECT id, memory_mb FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1)"    \
    " SELECT c.*, h.id, h.memory_mb FROM (SELECT 1) AS one LEFT JOIN c ON true LEFT JOIN h ON true"

typedef struct claim_args {
    int64_t started_at_ms;
    uint64_t max_memory_mb;
    job *out;
    store_queue_head *head;
    const char *replica;
} claim_args;

static store_rc claim_job(pg_store *s, pg_conn *c, void *arg)
{
    claim_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_i64(&p, a->started_at_ms);
    pp_u64(&p, a->max_memory_mb);
    pp_text(&p, a->replica);
    PGresult *r = pg_exec(s, c, SQL_CLAIM, &p, "claiming a job");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    int head_col = PQnfields(r) - 2;
    store_rc rc;
    if (PQntuples(r) != 1 || head_col != JOB_COL_COUNT + 1) {
        store_set_error("claiming a job: %d rows of %d columns, expected 1 of %d", PQntuples(r),
                        PQnfields(r), JOB_COL_COUNT + 3);
        rc = STORE_ERROR;
    } else if (!PQgetisnull(r, 0, 0)) {
        rc = a->out ? pg_read_job(r, 0, a->out) : STORE_OK;
    } else if (PQgetisnull(r, 0, head_col)) {
        rc = STORE_NOT_FOUND; /* nothing queued */
    } else {
        /* Nothing claimed: a head that does not fit (CONFLICT, with the head), or one that
         * fits but was skipped, locked by another replica's claim: it is being taken, this
         * worker finds nothing now. */
        a->head->memory_mb = pg_u64(r, 0, head_col + 1);
        snprintf(a->head->id, sizeof a->head->id, "%s", pg_val(r, 0, head_col));
        rc = a->head->memory_mb <= a->max_memory_mb ? STORE_NOT_FOUND : STORE_CONFLICT;
    }
    PQclear(r);
    return rc;
}

store_rc pg_claim_next_within(void *self, int64_t started_at_ms, uint64_t max_memory_mb,
                              job *out, store_queue_head *head)
{
    pg_store *s = self;
    store_queue_head h;
    claim_args a = {started_at_ms ? started_at_ms : time_now_ms(), max_memory_mb, out,
                    head ? head : &h, s->replica_id};
    /* One statement claims atomically: no transaction around it (two round trips less
     * for every worker that looks). */
    return pg_once(s, claim_job, &a);
}

/* ---- finish, cancel, recover: a job becomes final ------------------------------------ */

#define SQL_FINISH_SET                                                                      \
    "UPDATE jobs SET status = $2, finished_at_ms = $3, result_json = $4, error_type = $5,"  \
    " error_message = $6, error_traceback = $7, exit_code = $8, signal = $9,"               \
    " usage_json = $10, stdout_bytes = $11, stderr_bytes = $12, stdout_truncated = $13,"    \
    " stderr_truncated = $14, stored_bytes = stored_bytes + $15, result_stored_bytes = $16," \
    " install = $17, running_on = NULL, cancel_requested = false,"                          \
    " env_json = executord_env_erased(env_json)"                                            \
    " WHERE id = $1 AND status = 'running'"
#define SQL_FINISH SQL_FINISH_SET " RETURNING " NOTIFY_FINAL("id")
/* The fast path: one statement (atomic by itself, no transaction around it) that also
 * admits the new bytes when the usage row says they fit ($18: the quota, 0 = no check). */
#define SQL_FINISH_FAST                                                                     \
    SQL_FINISH_SET " AND ($18::bigint = 0 OR"                                               \
    " (SELECT used_bytes FROM storage_usage WHERE id = 1) + $15::bigint <= $18::bigint)"    \
    " RETURNING " NOTIFY_FINAL("id")

typedef struct finish_args {
    const job *j;
    uint64_t bytes;
    uint64_t shortfall;
    int64_t finished_at_ms;
    bool maybe_done; /* the fast path failed with its connection: it may have committed */
} finish_args;

static void bind_finish(pg_params *p, const finish_args *a)
{
    const job *j = a->j;
    pp_text(p, j->id);
    pp_text(p, job_status_name(j->status));
    pp_i64(p, a->finished_at_ms);
    pp_text(p, j->result_json);
    pp_text(p, j->error_type);
    pp_text(p, j->error_message);
    pp_text(p, j->error_traceback);
    if (j->has_exit_code)
        pp_i64(p, j->exit_code);
    else
        pp_text(p, NULL);
    if (j->signal)
        pp_i64(p, j->signal);
    else
        pp_text(p, NULL);
    pp_text(p, j->usage_json);
    pp_u64(p, j->stdout_bytes);
    pp_u64(p, j->stderr_bytes);
    pp_bool(p, j->stdout_truncated);
    pp_bool(p, j->stderr_truncated);
    pp_u64(p, a->bytes);
    pp_u64(p, store_text_bytes(j->result_json));
    pp_text(p, j->install_json);
}

/* Not changed: tells "no such job" from "not running". */
static store_rc explain(pg_store *s, pg_conn *c, const char *id, const char *doing,
                        const char *wanted)
{
    job_status cur;
    store_rc r = pg_status_of(s, c, id, &cur);
    if (r == STORE_OK) {
        store_set_error("%s job %s: it is %s, not %s", doing, id, job_status_name(cur), wanted);
        r = STORE_CONFLICT;
    }
    return r;
}

/* The job already holds this outcome (a fast path whose connection failed after it
 * committed): STORE_OK; else what explain says. */
static store_rc finished_already(pg_store *s, pg_conn *c, finish_args *a)
{
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->j->id);
    pp_text(&p, job_status_name(a->j->status));
    pp_i64(&p, a->finished_at_ms);
    PGresult *r = pg_exec(s, c, "SELECT 1 FROM jobs WHERE id = $1 AND status = $2"
                          " AND finished_at_ms = $3", &p, "finishing job");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    bool done = PQntuples(r) > 0;
    PQclear(r);
    return done ? STORE_OK : explain(s, c, a->j->id, "finishing", "running");
}

static store_rc finish_job(pg_store *s, pg_conn *c, void *arg)
{
    finish_args *a = arg;
    /* A result must fit like any new data; a job without one always ends. */
    store_rc r = a->j->result_json ? pg_admit(s, c, a->bytes, &a->shortfall) : STORE_OK;
    if (r != STORE_OK)
        return r;
    pg_params p;
    pp_init(&p);
    bind_finish(&p, a);
    PGresult *res = pg_exec(s, c, SQL_FINISH, &p, "finishing job");
    pp_free(&p);
    if (!res)
        return STORE_ERROR;
    bool finished = PQntuples(res) > 0;
    PQclear(res);
    if (finished)
        return STORE_OK;
    return a->maybe_done ? finished_already(s, c, a)
                         : explain(s, c, a->j->id, "finishing", "running");
}

/* STORE_OK when it finished the job; STORE_NOT_FOUND when it wrote nothing (not running,
 * or the quota may not admit the result: the slow path tells which). */
static store_rc finish_fast(pg_store *s, pg_conn *c, void *arg)
{
    finish_args *a = arg;
    pg_params p;
    pp_init(&p);
    bind_finish(&p, a);
    pp_u64(&p, a->j->result_json ? s->quota_bytes : 0);
    PGresult *res = pg_exec(s, c, SQL_FINISH_FAST, &p, "finishing job");
    pp_free(&p);
    if (!res)
        return STORE_ERROR;
    bool finished = PQntuples(res) > 0;
    PQclear(res);
    return finished ? STORE_OK : STORE_NOT_FOUND;
}

store_rc pg_finish_job(void *self, const job *j)
{
    pg_store *s = self;
    uint64_t bytes = store_text_bytes(j->result_json) + store_text_bytes(j->error_message) +
                     store_text_bytes(j->error_traceback);
    finish_args a = {j, bytes, 0, j->finished_at_ms ? j->finished_at_ms : time_now_ms(), false};
    /* Usually one statement; the transaction below (the quota read apart, eviction, why
     * nothing was written) only when that one did not finish the job. */
    store_rc r = pg_once(s, finish_fast, &a);
    if (r == STORE_OK || (r == STORE_ERROR && !store_error_is_outage()))
        return r;
    /* An outage (a pooled connection found dead, say) is tried once more in the
     * transaction, on a new connection, knowing the statement may have committed. */
    a.maybe_done = r == STORE_ERROR;
    r = pg_tx(s, finish_job, &a);
    if (r == STORE_NO_SPACE && a.shortfall && pg_evict(s, a.shortfall))
        r = pg_tx(s, finish_job, &a);
    return r;
}

#define SQL_CANCEL                                                                          \
    "WITH c AS (UPDATE jobs SET status = 'cancelled', finished_at_ms = $2,"                 \
    " error_type = 'Cancelled', error_message = 'Job cancelled before it started',"         \
    " env_json = executord_env_erased(env_json) WHERE id = $1 AND status = 'queued'"        \
    " RETURNING id) SELECT " NOTIFY_FINAL("id") " FROM c"

typedef struct cancel_args {
    const char *id;
    int64_t now_ms;
    job *out;
} cancel_args;

static store_rc cancel_job(pg_store *s, pg_conn *c, void *arg)
{
    cancel_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->id);
    pp_i64(&p, a->now_ms);
    PGresult *r = pg_exec(s, c, SQL_CANCEL, &p, "cancelling job");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    bool cancelled = PQntuples(r) > 0;
    PQclear(r);
    if (!cancelled)
        return explain(s, c, a->id, "cancelling", "queued");
    get_args g = {a->id, a->out};
    return a->out ? get_by_id(s, c, &g) : STORE_OK;
}

store_rc pg_cancel_queued(void *self, const char *id, int64_t now_ms, job *out)
{
    pg_store *s = self;
    cancel_args a = {id, now_ms ? now_ms : time_now_ms(), out};
    store_rc r = pg_tx(s, cancel_job, &a);
    if (r == STORE_CONFLICT && out) {
        /* The caller gets the job as it is. */
        get_args g = {id, out};
        store_rc g_r = pg_read(s, false, get_by_id, &g);
        if (g_r != STORE_OK)
            return g_r;
        store_set_error("cancelling job %s: it is %s, not queued", id, job_status_name(out->status));
    }
    return r;
}

/* Only this replica's jobs: a previous life of it left them running. Other replicas' are
 * ended by the survivors when their leases expire (pg_heartbeat). A store never given a
 * replica id (a single instance) claims with running_on NULL and recovers those. */
#define SQL_RECOVER                                                                         \
    "WITH lost AS (UPDATE jobs SET " PG_LOST_SET " WHERE status = 'running'"                \
    " AND running_on IS NOT DISTINCT FROM NULLIF($2, '') RETURNING id)"                     \
    " SELECT " NOTIFY_FINAL("id") " FROM lost"

typedef struct recover_args {
    int64_t now_ms;
    const char *replica;
    int rows;
} recover_args;

static store_rc recover_jobs(pg_store *s, pg_conn *c, void *arg)
{
    recover_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_i64(&p, a->now_ms);
    pp_text(&p, a->replica);
    PGresult *r = pg_exec(s, c, SQL_RECOVER, &p, "recovering running jobs");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    a->rows = PQntuples(r);
    PQclear(r);
    return STORE_OK;
}

int pg_recover_running(void *self, int64_t now_ms)
{
    pg_store *s = self;
    recover_args a = {now_ms ? now_ms : time_now_ms(), s->replica_id, 0};
    return pg_tx(s, recover_jobs, &a) == STORE_OK ? a.rows : -1;
}

/* ---- delete -------------------------------------------------------------------------- */

static store_rc delete_job(pg_store *s, pg_conn *c, void *arg)
{
    const char *id = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, id);
    /* Locks the row: a concurrent finish or delete waits, then sees it gone. */
    PGresult *r = pg_exec(s, c, "SELECT status FROM jobs WHERE id = $1 FOR UPDATE", &p,
                          "deleting job");
    store_rc rc = r ? STORE_OK : STORE_ERROR;
    job_status cur = JOB_QUEUED;
    if (r && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    else if (r && job_status_parse(pg_val(r, 0, 0), &cur) != 0)
        rc = STORE_ERROR;
    PQclear(r);
    if (rc == STORE_OK && !job_status_is_final(cur)) {
        store_set_error("deleting job %s: it is %s, not finished", id, job_status_name(cur));
        rc = STORE_CONFLICT;
    }
    if (rc == STORE_OK)
        rc = pg_cmd(s, c, "DELETE FROM job_output WHERE job_id = $1", &p, "deleting job");
    if (rc == STORE_OK)
        rc = pg_cmd(s, c, "DELETE FROM jobs WHERE id = $1", &p, "deleting job");
    if (rc == STORE_OK)
        rc = pg_cmd(s, c, "SELECT " NOTIFY_FINAL("$1"), &p, "deleting job: notifying");
    pp_free(&p);
    return rc;
}

store_rc pg_delete_job(void *self, const char *id)
{
    return pg_tx(self, delete_job, (void *)id);
}
