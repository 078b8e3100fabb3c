/* A job's life in the SQLite store: insert (with its idempotency key and the queue's
 * bound), claim, finish, cancel, delete, the recovery of jobs a dead instance left
 * running, and reading a job back. A job's env_vars values stay only while it may run:
 * every statement that makes it final erases them, names kept, in the same UPDATE, and the
 * WAL is emptied after (sq_scrub_wal). */
#include "src/store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/timeutil.h"

/* What a job's env_json becomes when it reaches a final status, in the same UPDATE: the
 * names stay (GET shows them), the values, which may be secrets, do not:
 * {"API_KEY": null}. Anything but a JSON object (never stored) becomes {}. The same
 * expression is in migrations/003_secrets_at_rest.sql. */
#define ENV_ERASED                                                                          \
    "CASE WHEN json_valid(env_json) THEN CASE WHEN json_type(env_json) = 'object'"          \
    " THEN (SELECT json_group_object(key, NULL) FROM json_each(env_json)) ELSE '{}' END"   \
    " ELSE '{}' END"
/* Returned by the statements that erase: 1 when the job had env_vars, whose values then
 * still sit in old WAL frames (see sq_scrub_wal). */
#define HAD_ENV "env_json <> '{}'"

#define SQL_GET_BY_ID "SELECT " JOB_SELECT " FROM jobs WHERE id = ?1"
#define SQL_GET_BY_KEY "SELECT " JOB_SELECT " FROM jobs WHERE idempotency_key = ?1"
#define SQL_STATUS_OF "SELECT status FROM jobs WHERE id = ?1"

/* ---- reading ------------------------------------------------------------------------- */

static store_rc get_job_locked(sq_conn *c, enum sq_stmt_id which, const char *sql,
                               const char *key, job *out)
{
    sqlite3_stmt *st = sq_stmt(c, which, sql);
    if (!st)
        return STORE_ERROR;
    store_rc r = sq_bind_text(st, 1, key) == SQLITE_OK ? sq_step_job(c, st, out, "reading job")
                                                       : sq_error(c, "binding");
    sq_done(st);
    return r;
}

static store_rc get_by_id(sq_conn *c, const char *id, job *out)
{
    return get_job_locked(c, SQ_GET_BY_ID, SQL_GET_BY_ID, id, out);
}

typedef struct get_args {
    const char *id;
    job *out;
} get_args;

static store_rc read_job_by_id(sq_conn *c, void *arg)
{
    get_args *a = arg;
    return get_by_id(c, a->id, a->out);
}

store_rc sq_get_job(void *self, const char *id, job *out)
{
    get_args a = {id, out};
    return sq_read(self, false, read_job_by_id, &a);
}

store_rc sq_status_of(sq_conn *c, const char *id, job_status *status)
{
    sqlite3_stmt *st = SQ_STMT(c, STATUS_OF);
    if (!st)
        return STORE_ERROR;
    store_rc r;
    int rc = sq_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        r = job_status_parse(name, status) == 0 ? STORE_OK : STORE_ERROR;
        if (r != STORE_OK)
            store_set_error("job %s has an unknown status", id);
    } else if (rc == SQLITE_DONE) {
        r = STORE_NOT_FOUND;
    } else {
        r = sq_error(c, "reading job status");
    }
    sq_done(st);
    return r;
}

/* ---- counting ------------------------------------------------------------------------ */

#define SQL_COUNT_STATUS "SELECT count(*) FROM jobs WHERE status = ?1"
/* Grouped backend first: today that is one plain table scan (grouping by status first
 * makes SQLite walk jobs_status_seq and look every row up, twice as slow); with an index on
 * (status, backend) it becomes a scan of that covering index. */
#define SQL_COUNT_BY_STATUS_BACKEND                                                         \
    "SELECT status, backend, count(*) FROM jobs GROUP BY backend, status"

typedef struct count_args {
    job_status status;
    int64_t n;
} count_args;

static store_rc count_status_locked(sq_conn *c, void *arg)
{
    count_args *a = arg;
    sqlite3_stmt *st = SQ_STMT(c, COUNT_STATUS);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_OK;
    if (sq_bind_text(st, 1, job_status_name(a->status)) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        r = sq_error(c, "counting jobs");
    else
        a->n = sqlite3_column_int64(st, 0);
    sq_done(st);
    return r;
}

int64_t sq_count_status(void *self, job_status status)
{
    count_args a = {status, -1};
    return sq_read(self, false, count_status_locked, &a) == STORE_OK ? a.n : -1;
}

static store_rc read_status_count(sqlite3_stmt *st, store_status_count *row)
{
    const char *status = (const char *)sqlite3_column_text(st, 0);
    const char *backend = (const char *)sqlite3_column_text(st, 1);
    if (!status || job_status_parse(status, &row->status) != 0) {
        store_set_error("counting jobs: unknown status '%s' in the database",
                        status ? status : "(null)");
        return STORE_ERROR;
    }
    snprintf(row->backend, sizeof row->backend, "%s", backend ? backend : "");
    row->count = sqlite3_column_int64(st, 2);
    return STORE_OK;
}

typedef struct count_rows {
    store_status_count *out;
    int max, n;
} count_rows;

static store_rc count_by_status_backend(sq_conn *c, void *arg)
{
    count_rows *a = arg;
    sqlite3_stmt *st = SQ_STMT(c, COUNT_BY_STATUS_BACKEND);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_OK;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            r = sq_error(c, "counting jobs by status and backend");
            break;
        }
        /* Rows beyond max are dropped: there are at most statuses x backends. */
        if (a->n < a->max) {
            if ((r = read_status_count(st, &a->out[a->n])) != STORE_OK)
                break;
            a->n++;
        }
    }
    sq_done(st);
    return r;
}

int sq_count_by_status_backend(void *self, store_status_count *out, int max)
{
    count_rows a = {out, max, 0};
    return sq_read(self, false, count_by_status_backend, &a) == STORE_OK ? a.n : -1;
}

/* ---- insert -------------------------------------------------------------------------- */

#define SQL_DIGEST_BY_KEY "SELECT request_sha256 FROM jobs WHERE idempotency_key = ?1"
/* The request's columns (JOB_REQUEST_COLUMNS) are bound by name, :<column>, after the
 * numbered parameters. */
#define SQ_INSERT_NAME(col, form, kind, member) ", " #col
#define SQ_INSERT_PARAM(col, form, kind, member) ", :" #col
#define SQL_INSERT_JOB                                                                      \
    "INSERT INTO jobs (id, status, created_at_ms, idempotency_key, request_sha256,"         \
    " stored_bytes" JOB_REQUEST_COLUMNS(SQ_INSERT_NAME) ")"                                 \
    " VALUES (?1, 'queued', ?2, ?3, ?4, ?5" JOB_REQUEST_COLUMNS(SQ_INSERT_PARAM) ")"
/* Keys come decoded from json_each, so "a.b" or "a\"b" are stored as written. */
#define SQL_INSERT_LABELS                                                                   \
    "INSERT OR REPLACE INTO job_labels (job_seq, key, value)"                               \
    " SELECT ?1, key, value FROM json_each(?2)"                                             \
    " WHERE json_type(?2) = 'object' AND type = 'text'"

static bool same_digest(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* The job that holds j's idempotency key decides: EXISTS (the digest of the same body) or
 * CONFLICT. STORE_NOT_FOUND when the key is unused. Inside the write transaction. */
static store_rc check_idempotency(sq_conn *c, const job *j, const char *digest, job *existing)
{
    sqlite3_stmt *st = SQ_STMT(c, DIGEST_BY_KEY);
    if (!st)
        return STORE_ERROR;
    store_rc r;
    int rc = sq_bind_text(st, 1, j->idempotency_key);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r = same_digest((const char *)sqlite3_column_text(st, 0), digest) ? STORE_EXISTS
                                                                         : STORE_CONFLICT;
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = sq_error(c, "reading the request digest");
    sq_done(st);
    if (r == STORE_EXISTS && existing) {
        store_rc g = get_job_locked(c, SQ_GET_BY_KEY, SQL_GET_BY_KEY, j->idempotency_key,
                                    existing);
        if (g != STORE_OK)
            r = g == STORE_NOT_FOUND ? STORE_ERROR : g; /* same transaction: cannot vanish */
    }
    return r;
}

/* Binds call after call while they succeed: rc holds the first failure. */
#define BIND(call)                                                                          \
    do {                                                                                    \
        if (rc == SQLITE_OK)                                                                \
            rc = (call);                                                                    \
    } while (0)

/* How each kind of a request column is bound to its named parameter. A name the
 * statement lacks binds nothing and fails (SQLITE_RANGE). */
#define SQ_BIND_TEXT(st, p, v) sq_bind_text(st, sqlite3_bind_parameter_index(st, p), v)
#define SQ_BIND_JSON(st, p, v) SQ_BIND_TEXT(st, p, (v) ? (v) : "{}")
#define SQ_BIND_CHARS(st, p, v) SQ_BIND_TEXT(st, p, v)
#define SQ_BIND_BOOL(st, p, v)                                                              \
    sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, p), (v) ? 1 : 0)
#define SQ_BIND_U64(st, p, v) sq_bind_u64(st, sqlite3_bind_parameter_index(st, p), v)
#define SQ_BIND_SECONDS(st, p, v) sqlite3_bind_double(st, sqlite3_bind_parameter_index(st, p), v)
#define SQ_BIND_COLUMN(col, form, kind, member) BIND(SQ_BIND_##kind(st, ":" #col, j->member));

static int bind_insert(sqlite3_stmt *st, const job *j, const char *digest, uint64_t bytes)
{
    int rc = SQLITE_OK;
    BIND(sq_bind_text(st, 1, j->id));
    BIND(sqlite3_bind_int64(st, 2, j->created_at_ms));
    BIND(sq_bind_text(st, 3, j->idempotency_key));
    BIND(sq_bind_text(st, 4, digest));
    BIND(sq_bind_u64(st, 5, bytes));
    JOB_REQUEST_COLUMNS(SQ_BIND_COLUMN)
    return rc;
}

/* Inside the write transaction: the job row, then its labels. */
static store_rc insert_rows(sq_conn *c, job *j, const char *digest, uint64_t bytes)
{
    sqlite3_stmt *st = SQ_STMT(c, INSERT_JOB);
    if (!st)
        return STORE_ERROR;
    int rc = bind_insert(st, j, digest, bytes);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_rc r = STORE_OK;
    if (rc != SQLITE_DONE) {
        /* Another writer (another process on this file) may have taken the key: the
         * UNIQUE constraint is the final word. */
        bool key_taken = rc == SQLITE_CONSTRAINT_UNIQUE && j->idempotency_key;
        r = sq_error(c, "inserting job");
        sq_done(st);
        return key_taken ? STORE_CONFLICT /* resolved by the caller */ : r;
    }
    sq_done(st);
    j->seq = sqlite3_last_insert_rowid(c->db);

    st = SQ_STMT(c, INSERT_LABELS);
    if (!st)
        return STORE_ERROR;
    rc = sqlite3_bind_int64(st, 1, j->seq);
    if (rc == SQLITE_OK)
        rc = sq_bind_text(st, 2, j->labels_json ? j->labels_json : "{}");
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        r = sq_error(c, "inserting job labels");
    sq_done(st);
    return r;
}

typedef struct insert_args {
    job *j;
    const char *digest;
    uint64_t bytes;
    int64_t max_queued;
    job *existing;
} insert_args;

/* The queue's bound: STORE_FULL when max_queued jobs already wait. */
static store_rc check_queue_bound(sq_conn *c, int64_t max_queued)
{
    if (max_queued <= 0)
        return STORE_OK;
    count_args queued = {JOB_QUEUED, 0};
    store_rc r = count_status_locked(c, &queued);
    if (r == STORE_OK && queued.n >= max_queued) {
        store_set_error("the queue is full (%lld jobs queued)", (long long)queued.n);
        r = STORE_FULL;
    }
    return r;
}

/* One attempt at inserting, in the write transaction. */
static store_rc insert_job(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    insert_args *a = arg;
    store_rc r;
    if (a->j->idempotency_key) {
        r = check_idempotency(c, a->j, a->digest, a->existing);
        if (r != STORE_NOT_FOUND)
            return r; /* EXISTS, CONFLICT or ERROR: nothing to write */
    }
    if ((r = check_queue_bound(c, a->max_queued)) != STORE_OK ||
        (r = sq_admit(s, c, a->bytes, true, shortfall)) != STORE_OK)
        return r;
    r = insert_rows(c, a->j, a->digest, a->bytes);
    if (r == STORE_CONFLICT) {
        /* The key exists after all: answer as if we had seen it first (a failed statement
         * leaves the transaction open). */
        r = check_idempotency(c, a->j, a->digest, a->existing);
        if (r == STORE_NOT_FOUND)
            r = STORE_ERROR; /* another UNIQUE column failed; its message is recorded */
        return r;
    }
    return r;
}

store_rc sq_insert_job(void *self, job *j, const char *digest, int64_t max_queued, job *existing)
{
    sq_store *s = self;
    /* What the quota counts of a queued job: its script and inputs. */
    uint64_t bytes =
        store_text_bytes(j->script) + store_text_bytes(j->inputs_json ? j->inputs_json : "{}");
    insert_args a = {j, digest, bytes, max_queued, existing};
    sq_write_plan plan = {SQ_ROOM_EVICT, 2, bytes};
    sq_lock(&s->writer);
    store_rc r = sq_write(s, &plan, insert_job, &a);
    if (r == STORE_OK)
        j->status = JOB_QUEUED;
    sq_note_refusal(s, r);
    sq_unlock(&s->writer);
    return r;
}

/* ---- claim --------------------------------------------------------------------------- */

/* The oldest queued job, and only if its memory fits (?2): never a younger one in its
 * place (the scheduler's head-of-line rule, src/scheduler.c). */
#define SQL_CLAIM                                                                           \
    "UPDATE jobs SET status = 'running', started_at_ms = ?1"                                \
    " WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued'"                            \
    " ORDER BY seq LIMIT 1) AND memory_mb <= ?2 RETURNING " JOB_SELECT
#define SQL_QUEUE_HEAD "SELECT id, memory_mb FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1"

/* STORE_CONFLICT with the oldest queued job's id and memory_mb in *head (when not NULL),
 * or STORE_NOT_FOUND when nothing is queued. Caller holds c->mu. */
static store_rc queue_head(sq_conn *c, store_queue_head *head)
{
    sqlite3_stmt *st = SQ_STMT(c, QUEUE_HEAD);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_NOT_FOUND;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0);
        if (head) {
            snprintf(head->id, sizeof head->id, "%s", id ? (const char *)id : "");
            head->memory_mb = sq_col_u64(st, 1);
        }
        r = STORE_CONFLICT;
    } else if (rc != SQLITE_DONE) {
        r = sq_error(c, "reading the queue's head");
    }
    sq_done(st);
    return r;
}

typedef struct claim_args {
    int64_t started_at_ms;
    uint64_t max_memory_mb;
    job *out;
    store_queue_head *head;
} claim_args;

/* One attempt at claiming, in the write transaction. */
static store_rc claim_job(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    claim_args *a = arg;
    /* A job that starts writes output: none starts on a disk without room for some. The
     * quota does not hold jobs back: queued jobs may be what fills it, and only running
     * them (or deleting) frees anything. */
    store_rc r = sq_admit(s, c, SQ_MIN_ROOM, false, shortfall);
    if (r == STORE_NO_SPACE) {
        /* Finished jobs' output is evicted (the retry) for a job that waits, never for an
         * empty queue (a worker looks whenever it wakes). */
        store_rc q = queue_head(c, NULL);
        if (q == STORE_NOT_FOUND)
            return STORE_NOT_FOUND;
        if (q != STORE_CONFLICT)
            *shortfall = 0; /* the queue is unknown: nothing is evicted for it */
        return r;
    }
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *st = SQ_STMT(c, CLAIM);
    if (!st)
        return STORE_ERROR;
    if (sqlite3_bind_int64(st, 1, a->started_at_ms) == SQLITE_OK &&
        sq_bind_u64(st, 2, a->max_memory_mb) == SQLITE_OK)
        r = sq_step_job(c, st, a->out, "claiming a job");
    else
        r = sq_error(c, "binding");
    sq_done(st);
    /* Nothing claimed: an empty queue, or a head that does not fit (same transaction, so
     * the head read is the one the claim saw). */
    if (r == STORE_NOT_FOUND)
        r = queue_head(c, a->head);
    return r;
}

store_rc sq_claim_next_within(void *self, int64_t started_at_ms, uint64_t max_memory_mb,
                              job *out, store_queue_head *head)
{
    sq_store *s = self;
    claim_args a = {started_at_ms ? started_at_ms : time_now_ms(), max_memory_mb, out, head};
    /* need 0: only a shortfall the disk check measured makes room. */
    sq_write_plan plan = {SQ_ROOM_EVICT, 2, 0};
    sq_lock(&s->writer);
    store_rc r = sq_write(s, &plan, claim_job, &a);
    if (r == STORE_OK || r == STORE_NO_SPACE)
        sq_note_refusal(s, r);
    sq_unlock(&s->writer);
    return r;
}

/* ---- finish, cancel, recover: a job becomes final ------------------------------------ */

#define SQL_FINISH                                                                          \
    "UPDATE jobs SET status = ?2, finished_at_ms = ?3, result_json = ?4, error_type = ?5,"  \
    " error_message = ?6, error_traceback = ?7, exit_code = ?8, signal = ?9,"               \
    " usage_json = ?10, stdout_bytes = ?11, stderr_bytes = ?12, stdout_truncated = ?13,"    \
    " stderr_truncated = ?14, stored_bytes = stored_bytes + ?15, result_stored_bytes = ?16," \
    " install = ?17, env_json = " ENV_ERASED                                                \
    " WHERE id = ?1 AND status = 'running' RETURNING " HAD_ENV
#define SQL_CANCEL                                                                          \
    "UPDATE jobs SET status = 'cancelled', finished_at_ms = ?2,"                            \
    " error_type = 'Cancelled', error_message = 'Job cancelled before it started',"         \
    " env_json = " ENV_ERASED " WHERE id = ?1 AND status = 'queued' RETURNING " JOB_SELECT
#define SQL_RECOVER                                                                         \
    "UPDATE jobs SET status = 'failed', finished_at_ms = ?1,"                               \
    " error_type = 'ExecutorLost',"                                                         \
    " error_message = 'executord stopped while the job was running',"                       \
    " error_traceback = NULL, result_json = NULL, env_json = " ENV_ERASED                    \
    " WHERE status = 'running' RETURNING " HAD_ENV

/* After a job became final: its env values, erased, still sit in old WAL frames. Caller
 * holds the writer's mutex, outside a transaction. */
static void after_final(sq_store *s, bool had_env)
{
    if (had_env || s->scrub_pending)
        sq_scrub_wal(s);
}

typedef struct finish_args {
    const job *j;
    uint64_t bytes;
    bool had_env;
} finish_args;

static int bind_finish(sqlite3_stmt *st, const job *j, uint64_t bytes)
{
    int rc = sq_bind_text(st, 1, j->id);
    BIND(sq_bind_text(st, 2, job_status_name(j->status)));
    BIND(sqlite3_bind_int64(st, 3, j->finished_at_ms ? j->finished_at_ms : time_now_ms()));
    BIND(sq_bind_text(st, 4, j->result_json));
    BIND(sq_bind_text(st, 5, j->error_type));
    BIND(sq_bind_text(st, 6, j->error_message));
    BIND(sq_bind_text(st, 7, j->error_traceback));
    BIND(j->has_exit_code ? sqlite3_bind_int(st, 8, j->exit_code) : sqlite3_bind_null(st, 8));
    BIND(j->signal ? sqlite3_bind_int(st, 9, j->signal) : sqlite3_bind_null(st, 9));
    BIND(sq_bind_text(st, 10, j->usage_json));
    BIND(sq_bind_u64(st, 11, j->stdout_bytes));
    BIND(sq_bind_u64(st, 12, j->stderr_bytes));
    BIND(sqlite3_bind_int(st, 13, j->stdout_truncated ? 1 : 0));
    BIND(sqlite3_bind_int(st, 14, j->stderr_truncated ? 1 : 0));
    BIND(sq_bind_u64(st, 15, bytes));
    BIND(sq_bind_u64(st, 16, store_text_bytes(j->result_json)));
    BIND(sq_bind_text(st, 17, j->install_json));
    return rc;
}

/* One attempt at finishing, in the write transaction. */
static store_rc finish_job(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    finish_args *a = arg;
    /* A result must fit like any new data; a job without one always ends, on a full disk
     * through the reserve, so no job stays running for want of space. */
    store_rc r = a->j->result_json ? sq_admit(s, c, a->bytes, true, shortfall) : STORE_OK;
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *st = SQ_STMT(c, FINISH);
    if (!st)
        return STORE_ERROR;
    int rc = bind_finish(st, a->j, a->bytes);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    bool finished = rc == SQLITE_ROW;
    a->had_env = finished && sqlite3_column_int(st, 0) != 0;
    if (finished)
        rc = sqlite3_step(st); /* completes the UPDATE ... RETURNING */
    r = rc == SQLITE_DONE ? STORE_OK : sq_error(c, "finishing job");
    sq_done(st);
    if (r != STORE_OK || finished)
        return r;
    job_status cur;
    r = sq_status_of(c, a->j->id, &cur);
    if (r == STORE_OK) {
        store_set_error("finishing job %s: it is %s, not running", a->j->id,
                        job_status_name(cur));
        r = STORE_CONFLICT;
    }
    return r;
}

store_rc sq_finish_job(void *self, const job *j)
{
    sq_store *s = self;
    /* What the quota counts of the outcome: the result and the error's text. */
    uint64_t bytes = store_text_bytes(j->result_json) + store_text_bytes(j->error_message) +
                     store_text_bytes(j->error_traceback);
    finish_args a = {j, bytes, false};
    sq_write_plan plan = {j->result_json ? SQ_ROOM_EVICT : SQ_ROOM_ESSENTIAL, 3, bytes};
    sq_lock(&s->writer);
    store_rc r = sq_write(s, &plan, finish_job, &a);
    if (r == STORE_OK)
        after_final(s, a.had_env);
    sq_unlock(&s->writer);
    return r;
}

typedef struct cancel_args {
    const char *id;
    int64_t now_ms;
    job cancelled;
} cancel_args;

/* One attempt at cancelling, in the write transaction. The cancelled row is read even when
 * the caller does not want it: its (erased) env_json tells whether the job had env values
 * to scrub from the WAL. */
static store_rc cancel_job(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    cancel_args *a = arg;
    sqlite3_stmt *st = SQ_STMT(c, CANCEL);
    if (!st)
        return STORE_ERROR;
    job_free(&a->cancelled);
    int rc = sq_bind_text(st, 1, a->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, a->now_ms);
    store_rc r = rc == SQLITE_OK ? sq_step_job(c, st, &a->cancelled, "cancelling job")
                                 : sq_error(c, "binding");
    sq_done(st);
    return r;
}

/* Not queued: tells "no such job" from "already running or final", and gives the caller
 * the job as it is. Caller holds c->mu. */
static store_rc explain_not_queued(sq_conn *c, const char *id, job *out)
{
    job cur;
    job_init(&cur);
    store_rc r = get_by_id(c, id, &cur);
    if (r != STORE_OK)
        return r;
    store_set_error("cancelling job %s: it is %s, not queued", id, job_status_name(cur.status));
    if (out)
        *out = cur;
    else
        job_free(&cur);
    return STORE_CONFLICT;
}

store_rc sq_cancel_queued(void *self, const char *id, int64_t now_ms, job *out)
{
    sq_store *s = self;
    cancel_args a = {id, now_ms ? now_ms : time_now_ms(), {0}};
    job_init(&a.cancelled);
    /* The row is rewritten whole (its script and inputs too): room for that. */
    sq_write_plan plan = {SQ_ROOM_ESSENTIAL, 3, 0};
    sq_lock(&s->writer);
    store_rc r = sq_write(s, &plan, cancel_job, &a);
    if (r == STORE_OK) {
        after_final(s, a.cancelled.env_json && strcmp(a.cancelled.env_json, "{}") != 0);
        if (out) {
            *out = a.cancelled;
            job_init(&a.cancelled);
        }
    } else if (r == STORE_NOT_FOUND) {
        r = explain_not_queued(&s->writer, id, out);
    }
    job_free(&a.cancelled);
    sq_unlock(&s->writer);
    return r;
}

typedef struct recover_args {
    int64_t now_ms;
    int rows;
    bool had_env;
} recover_args;

/* One attempt at recovering, in the write transaction. */
static store_rc recover_jobs(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    recover_args *a = arg;
    sqlite3_stmt *st = SQ_STMT(c, RECOVER);
    if (!st)
        return STORE_ERROR;
    a->rows = 0;
    int rc = sqlite3_bind_int64(st, 1, a->now_ms);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        a->rows++;
        a->had_env |= sqlite3_column_int(st, 0) != 0;
        rc = SQLITE_OK;
    }
    store_rc r = rc == SQLITE_DONE ? STORE_OK : sq_error(c, "recovering running jobs");
    sq_done(st);
    return r;
}

int sq_recover_running(void *self, int64_t now_ms)
{
    sq_store *s = self;
    recover_args a = {now_ms ? now_ms : time_now_ms(), 0, false};
    sq_write_plan plan = {SQ_ROOM_ESSENTIAL, 3, 0};
    sq_lock(&s->writer);
    store_rc r = sq_write(s, &plan, recover_jobs, &a);
    if (r == STORE_OK)
        after_final(s, a.had_env);
    sq_unlock(&s->writer);
    return r == STORE_OK ? a.rows : -1;
}

/* ---- delete -------------------------------------------------------------------------- */

#define SQL_DELETE_JOB "DELETE FROM jobs WHERE id = ?1 AND status IN " FINAL_STATUSES

/* Runs a statement that takes a job id as ?1 and returns no rows. Caller holds c->mu. */
static store_rc run_for_job(sq_conn *c, sqlite3_stmt *st, const char *id, const char *what)
{
    if (!st)
        return STORE_ERROR;
    int rc = sq_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_rc r = rc == SQLITE_DONE ? STORE_OK : sq_error(c, what);
    sq_done(st);
    return r;
}

/* One attempt at deleting, in the write transaction. */
static store_rc delete_job(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    const char *id = arg;
    job_status cur;
    store_rc r = sq_status_of(c, id, &cur);
    if (r != STORE_OK)
        return r;
    if (!job_status_is_final(cur)) {
        store_set_error("deleting job %s: it is %s, not finished", id, job_status_name(cur));
        return STORE_CONFLICT;
    }
    /* Output rows go explicitly too: the cascade only works with foreign_keys on. */
    r = run_for_job(c, SQ_STMT(c, DELETE_OUTPUT), id, "deleting job");
    if (r == STORE_OK)
        r = run_for_job(c, SQ_STMT(c, DELETE_JOB), id, "deleting job");
    return r;
}

store_rc sq_delete_job(void *self, const char *id)
{
    sq_store *s = self;
    sq_write_plan plan = {SQ_ROOM_RESERVE, 2, 0};
    sq_lock(&s->writer);
    sq_fast_delete(&s->writer, true);
    store_rc r = sq_write(s, &plan, delete_job, (void *)id);
    sq_fast_delete(&s->writer, false);
    sq_unlock(&s->writer);
    return r;
}
