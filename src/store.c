/* The durable job store on SQLite (WAL, synchronous=FULL: a returned insert is on disk).
 * Two connections to one file: a writer for every change and a reader for look-ups, each
 * used by one thread at a time under its own mutex, so reads never wait behind an fsync.
 * Also what the files keep of secrets: env_vars values only while a job may run, owner-only
 * files, freed space zeroed and the WAL emptied once a job that carried them has ended. */
#include "src/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/sha2.h>
#include <sqlite3.h>

#include "src/log.h"
#include "src/migrate.h"
#include "src/migrations.h"
#include "src/reserve.h"
#include "src/timeutil.h"

#define BUSY_TIMEOUT_MS 5000

/* Every statement, prepared once per connection on first use. */
enum stmt_id {
    ST_GET_BY_ID,
    ST_GET_BY_KEY,
    ST_DIGEST_BY_KEY,
    ST_COUNT_STATUS,
    ST_INSERT_JOB,
    ST_INSERT_LABELS,
    ST_CLAIM,
    ST_QUEUE_HEAD,
    ST_FINISH,
    ST_CANCEL,
    ST_STATUS_OF,
    ST_RESULT_OF,
    ST_DELETE_OUTPUT,
    ST_DELETE_JOB,
    ST_RECOVER,
    ST_OUTPUT_END,
    ST_OUTPUT_INSERT,
    ST_OUTPUT_BYTES,
    ST_OUTPUT_READ,
    ST_DELETE_OLD_OUTPUT,
    ST_DELETE_OLD_JOBS,
    ST_SCHEMA_VERSION,
    ST_COUNT_BY_STATUS_BACKEND,
    ST_STORAGE_USED,
    ST_FREELIST,
    ST_OLDEST_OUTPUTS,
    ST_OLDEST_RESULTS,
    ST_EVICT_OUTPUT,
    ST_EVICT_RESULT,
    ST_LIST0, /* ST_LIST0 + (status?1:0) + (key?2:0) + (value?4:0) */
    ST_COUNT = ST_LIST0 + 8,
};

#define FINAL_STATUSES "('succeeded', 'failed', 'timed_out', 'cancelled')"

/* What a job's env_json becomes when it reaches a final status, in the same UPDATE: the
 * names stay (GET shows them), the values, which may be secrets, do not:
 * {"API_KEY": null}. Anything but a JSON object (never stored) becomes {}. The same
 * expression is in migrations/003_secrets_at_rest.sql. */
#define ENV_ERASED                                                                          \
    "CASE WHEN json_valid(env_json) THEN CASE WHEN json_type(env_json) = 'object'"          \
    " THEN (SELECT json_group_object(key, NULL) FROM json_each(env_json)) ELSE '{}' END"   \
    " ELSE '{}' END"
/* Returned by the statements that erase: 1 when the job had env_vars, whose values then
 * still sit in old WAL frames (see scrub_wal). */
#define HAD_ENV "env_json <> '{}'"

/* Column order is the order read_job() expects; the list form leaves script and inputs out
 * (NULL) to keep pages small. The request itself is never stored, only its digest
 * (request_sha256), which only the idempotency check reads. The result (up to
 * max_output_bytes) is only typeof()'d here, which SQLite answers without loading the
 * value; read_job() reads the part it wants through blob I/O. */
#define JOB_COLUMNS_(script, inputs)                                                        \
    "seq, id, status, backend, created_at_ms, started_at_ms, finished_at_ms, " script       \
    ", " inputs ", env_json, labels_json, allow_network, timeout_seconds, memory_mb, "      \
    "cpu_seconds, max_processes, max_file_size_mb, max_open_files, max_output_bytes, "      \
    "idempotency_key, typeof(result_json), error_type, error_message, error_traceback, "    \
    "exit_code, signal, usage_json, stdout_bytes, stderr_bytes, stdout_truncated, "         \
    "stderr_truncated, output_evicted, result_evicted"
#define JOB_COLUMNS JOB_COLUMNS_("script", "inputs_json")
#define JOB_LIST_COLUMNS JOB_COLUMNS_("NULL", "NULL")

static const char *const stmt_sql[ST_LIST0] = {
    [ST_GET_BY_ID] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
    [ST_GET_BY_KEY] = "SELECT " JOB_COLUMNS " FROM jobs WHERE idempotency_key = ?1",
    [ST_DIGEST_BY_KEY] = "SELECT request_sha256 FROM jobs WHERE idempotency_key = ?1",
    [ST_COUNT_STATUS] = "SELECT count(*) FROM jobs WHERE status = ?1",
    [ST_INSERT_JOB] =
        "INSERT INTO jobs (id, status, backend, created_at_ms, script, inputs_json, env_json,"
        " labels_json, allow_network, timeout_seconds, memory_mb, cpu_seconds, max_processes,"
        " max_file_size_mb, max_open_files, max_output_bytes, idempotency_key, request_sha256,"
        " stored_bytes)"
        " VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
        " ?16, ?17, ?18)",
    /* Keys come decoded from json_each, so "a.b" or "a\"b" are stored as written. */
    [ST_INSERT_LABELS] =
        "INSERT OR REPLACE INTO job_labels (job_seq, key, value)"
        " SELECT ?1, key, value FROM json_each(?2)"
        " WHERE json_type(?2) = 'object' AND type = 'text'",
    /* The oldest queued job, and only if its memory fits (?2): never a younger one in its
     * place (the scheduler's head-of-line rule, src/scheduler.c). */
    [ST_CLAIM] = "UPDATE jobs SET status = 'running', started_at_ms = ?1"
                 " WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued'"
                 " ORDER BY seq LIMIT 1) AND memory_mb <= ?2 RETURNING " JOB_COLUMNS,
    [ST_QUEUE_HEAD] = "SELECT id, memory_mb FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1",
    [ST_FINISH] =
        "UPDATE jobs SET status = ?2, finished_at_ms = ?3, result_json = ?4, error_type = ?5,"
        " error_message = ?6, error_traceback = ?7, exit_code = ?8, signal = ?9,"
        " usage_json = ?10, stdout_bytes = ?11, stderr_bytes = ?12, stdout_truncated = ?13,"
        " stderr_truncated = ?14, stored_bytes = stored_bytes + ?15, result_stored_bytes = ?16,"
        " env_json = " ENV_ERASED
        " WHERE id = ?1 AND status = 'running' RETURNING " HAD_ENV,
    [ST_CANCEL] = "UPDATE jobs SET status = 'cancelled', finished_at_ms = ?2,"
                  " error_type = 'Cancelled', error_message = 'Job cancelled before it started',"
                  " env_json = " ENV_ERASED
                  " WHERE id = ?1 AND status = 'queued' RETURNING " JOB_COLUMNS,
    [ST_STATUS_OF] = "SELECT status FROM jobs WHERE id = ?1",
    [ST_RESULT_OF] = "SELECT seq, typeof(result_json) FROM jobs WHERE id = ?1",
    [ST_DELETE_OUTPUT] = "DELETE FROM job_output WHERE job_id = ?1",
    [ST_DELETE_JOB] = "DELETE FROM jobs WHERE id = ?1 AND status IN " FINAL_STATUSES,
    [ST_RECOVER] = "UPDATE jobs SET status = 'failed', finished_at_ms = ?1,"
                   " error_type = 'ExecutorLost',"
                   " error_message = 'executord stopped while the job was running',"
                   " error_traceback = NULL, result_json = NULL, env_json = " ENV_ERASED
                   " WHERE status = 'running' RETURNING " HAD_ENV,
    /* The newest chunk ends where the stream ends: one index seek, not a sum. */
    [ST_OUTPUT_END] = "SELECT start_offset + length(data) FROM job_output"
                      " WHERE job_id = ?1 AND stream = ?2 ORDER BY start_offset DESC LIMIT 1",
    [ST_OUTPUT_INSERT] =
        "INSERT INTO job_output (job_id, stream, start_offset, data) VALUES (?1, ?2, ?3, ?4)",
    /* Live byte counts while running (store_finish_job writes the backend's final ones);
     * what the chunk adds to the storage total, whatever the status. */
    [ST_OUTPUT_BYTES] =
        "UPDATE jobs SET"
        " stdout_bytes = CASE WHEN ?2 = 1 AND status = 'running' THEN ?3 ELSE stdout_bytes END,"
        " stderr_bytes = CASE WHEN ?2 = 2 AND status = 'running' THEN ?3 ELSE stderr_bytes END,"
        " output_stored_bytes = output_stored_bytes + ?4, stored_bytes = stored_bytes + ?4"
        " WHERE id = ?1",
    /* From the chunk that holds byte ?3 (or the first one) on. */
    [ST_OUTPUT_READ] =
        "SELECT start_offset, data FROM job_output WHERE job_id = ?1 AND stream = ?2"
        " AND start_offset >= COALESCE((SELECT start_offset FROM job_output"
        " WHERE job_id = ?1 AND stream = ?2 AND start_offset <= ?3"
        " ORDER BY start_offset DESC LIMIT 1), 0) ORDER BY start_offset",
    [ST_DELETE_OLD_OUTPUT] =
        "DELETE FROM job_output WHERE job_id IN (SELECT id FROM jobs WHERE finished_at_ms < ?1"
        " AND status IN " FINAL_STATUSES ")",
    [ST_DELETE_OLD_JOBS] =
        "DELETE FROM jobs WHERE finished_at_ms < ?1 AND status IN " FINAL_STATUSES,
    [ST_SCHEMA_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    /* Grouped backend first: today that is one plain table scan (grouping by status
     * first makes SQLite walk jobs_status_seq and look every row up, twice as slow); with
     * an index on (status, backend) it becomes a scan of that covering index. */
    [ST_COUNT_BY_STATUS_BACKEND] =
        "SELECT status, backend, count(*) FROM jobs GROUP BY backend, status",
    /* The storage totals, kept by the triggers of migration 004. */
    [ST_STORAGE_USED] = "SELECT used_bytes, evictable_bytes FROM storage_usage WHERE id = 1",
    [ST_FREELIST] = "PRAGMA freelist_count",
    /* Partial indexes of migration 004: only jobs that hold something to evict. */
    [ST_OLDEST_OUTPUTS] =
        "SELECT id, output_stored_bytes FROM jobs WHERE finished_at_ms IS NOT NULL"
        " AND output_stored_bytes > 0 ORDER BY finished_at_ms, seq LIMIT ?1",
    [ST_OLDEST_RESULTS] =
        "SELECT id, result_stored_bytes FROM jobs WHERE finished_at_ms IS NOT NULL"
        " AND result_stored_bytes > 0 ORDER BY finished_at_ms, seq LIMIT ?1",
    [ST_EVICT_OUTPUT] =
        "UPDATE jobs SET stored_bytes = MAX(stored_bytes - output_stored_bytes, 0),"
        " output_stored_bytes = 0, output_evicted = 1"
        " WHERE id = ?1 AND finished_at_ms IS NOT NULL",
    [ST_EVICT_RESULT] =
        "UPDATE jobs SET stored_bytes = MAX(stored_bytes - result_stored_bytes, 0),"
        " result_stored_bytes = 0, result_json = NULL, result_evicted = 1"
        " WHERE id = ?1 AND finished_at_ms IS NOT NULL AND result_stored_bytes > 0",
};

typedef struct conn {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *stmts[ST_COUNT];
} conn;

struct store {
    conn writer;
    conn reader_storage;
    conn *reader; /* &reader_storage, or &writer for an in-memory database */
    /* Under writer.mu: a job's env values were erased but the WAL could not be emptied;
     * retried when the next job ends. */
    bool scrub_pending;

    /* The storage quota and the disk (store_set_storage); read-only after it. */
    uint64_t quota_bytes;       /* 0 = none */
    reserve *rsv;               /* NULL = the disk is not watched */
    uint64_t page_size;
    /* Under writer.mu: new data is being refused (logged once per episode). */
    bool refusing;
    atomic_uint_fast64_t evicted_outputs, evicted_results;
};

static __thread char tls_error[1024];

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_error, sizeof tls_error, fmt, ap);
    va_end(ap);
}

/* The last failure of c was for lack of space: SQLITE_FULL, or an I/O error whose
 * system call said ENOSPC or EDQUOT (growing the WAL or its index). */
static bool no_space(conn *c)
{
    int rc = sqlite3_extended_errcode(c->db);
    if ((rc & 0xff) == SQLITE_FULL)
        return true;
    int e = sqlite3_system_errno(c->db);
    return (rc & 0xff) == SQLITE_IOERR && (e == ENOSPC || e == EDQUOT);
}

/* Records "what: <sqlite message>" and returns STORE_ERROR, or STORE_NO_SPACE when the
 * disk was full: callers that can make room (evict, use the reserve) try again. */
static store_rc db_error(conn *c, const char *what)
{
    set_error("%s: %s (sqlite error %d)", what, sqlite3_errmsg(c->db),
              sqlite3_extended_errcode(c->db));
    return no_space(c) ? STORE_NO_SPACE : STORE_ERROR;
}

const char *store_last_error(store *s)
{
    (void)s;
    return tls_error;
}

/* ---- statements ---------------------------------------------------------------- */

static const char *list_sql(int variant, char *buf, size_t len)
{
    int by_status = variant & 1, by_key = variant & 2, by_value = variant & 4;
    if (by_key) {
        snprintf(buf, len,
                 "SELECT " JOB_LIST_COLUMNS " FROM job_labels JOIN jobs ON jobs.seq ="
                 " job_labels.job_seq WHERE job_labels.key = :key%s AND job_labels.job_seq"
                 " < :before%s ORDER BY job_labels.job_seq DESC LIMIT :limit",
                 by_value ? " AND job_labels.value = :value" : "",
                 by_status ? " AND jobs.status = :status" : "");
    } else {
        snprintf(buf, len,
                 "SELECT " JOB_LIST_COLUMNS " FROM jobs WHERE seq < :before%s"
                 " ORDER BY seq DESC LIMIT :limit",
                 by_status ? " AND status = :status" : "");
    }
    return buf;
}

/* The cached statement, reset and unbound; NULL (error recorded) when it cannot be
 * prepared. Caller holds c->mu. */
static sqlite3_stmt *stmt(conn *c, enum stmt_id id)
{
    if (!c->stmts[id]) {
        char buf[2048];
        const char *sql = id >= ST_LIST0 ? list_sql(id - ST_LIST0, buf, sizeof buf) : stmt_sql[id];
        if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL) !=
            SQLITE_OK) {
            db_error(c, "preparing a statement");
            c->stmts[id] = NULL;
            return NULL;
        }
    }
    return c->stmts[id];
}

static void done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    return sqlite3_bind_int64(st, i, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

static int bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
    int i = sqlite3_bind_parameter_index(st, name);
    return i > 0 ? bind_text(st, i, v) : SQLITE_OK;
}

static void lock(conn *c) { pthread_mutex_lock(&c->mu); }
static void unlock(conn *c) { pthread_mutex_unlock(&c->mu); }

static int exec(conn *c, const char *sql) { return sqlite3_exec(c->db, sql, NULL, NULL, NULL); }

static store_rc begin_write(conn *c)
{
    return exec(c, "BEGIN IMMEDIATE") == SQLITE_OK ? STORE_OK : db_error(c, "BEGIN");
}

static store_rc commit(conn *c)
{
    if (exec(c, "COMMIT") == SQLITE_OK)
        return STORE_OK;
    store_rc rc = db_error(c, "COMMIT");
    if (!sqlite3_get_autocommit(c->db))
        exec(c, "ROLLBACK");
    return rc;
}

static void rollback(conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        exec(c, "ROLLBACK");
}

/* ---- rows -------------------------------------------------------------------- */

/* Copies a text column (NULL stays NULL); -1 when out of memory. */
static int col_dup(sqlite3_stmt *st, int i, char **dst)
{
    *dst = NULL;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return 0;
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (!t)
        return -1; /* not NULL, so the conversion ran out of memory */
    char *p = malloc((size_t)n + 1);
    if (!p)
        return -1;
    memcpy(p, t, (size_t)n);
    p[n] = '\0';
    *dst = p;
    return 0;
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    int64_t v = sqlite3_column_int64(st, i);
    return v < 0 ? 0 : (uint64_t)v;
}

static store_rc read_result_prefix(conn *c, job *j, size_t max);

/* Fills *j (re-initialised first) from a row in JOB_COLUMNS order, with at most
 * result_max bytes of the result. Caller holds c->mu; the row is still current. */
static store_rc read_job(conn *c, sqlite3_stmt *st, job *j, size_t result_max)
{
    job_init(j); /* overwrites: callers pass an empty job (job_init'ed or job_free'd) */
    j->seq = sqlite3_column_int64(st, 0);
    const char *id = (const char *)sqlite3_column_text(st, 1);
    snprintf(j->id, sizeof j->id, "%s", id ? id : "");
    const char *status = (const char *)sqlite3_column_text(st, 2);
    if (job_status_parse(status, &j->status) != 0) {
        set_error("job %s has an unknown status '%s'", j->id, status ? status : "(null)");
        return STORE_ERROR;
    }
    const char *backend = (const char *)sqlite3_column_text(st, 3);
    snprintf(j->backend, sizeof j->backend, "%s", backend ? backend : "");
    j->created_at_ms = sqlite3_column_int64(st, 4);
    j->started_at_ms = sqlite3_column_int64(st, 5);   /* NULL reads as 0 */
    j->finished_at_ms = sqlite3_column_int64(st, 6);
    j->allow_network = sqlite3_column_int(st, 11) != 0;
    j->limits.timeout_seconds = sqlite3_column_double(st, 12);
    j->limits.memory_mb = col_u64(st, 13);
    j->limits.cpu_seconds = col_u64(st, 14);
    j->limits.max_processes = col_u64(st, 15);
    j->limits.max_file_size_mb = col_u64(st, 16);
    j->limits.max_open_files = col_u64(st, 17);
    j->limits.max_output_bytes = col_u64(st, 18);
    j->has_exit_code = sqlite3_column_type(st, 24) != SQLITE_NULL;
    j->exit_code = j->has_exit_code ? sqlite3_column_int(st, 24) : -1;
    j->signal = sqlite3_column_int(st, 25);
    j->stdout_bytes = col_u64(st, 27);
    j->stderr_bytes = col_u64(st, 28);
    j->stdout_truncated = sqlite3_column_int(st, 29) != 0;
    j->stderr_truncated = sqlite3_column_int(st, 30) != 0;
    j->output_evicted = sqlite3_column_int(st, 31) != 0;
    j->result_evicted = sqlite3_column_int(st, 32) != 0;

    /* request_json stays NULL: only its digest is stored. */
    struct {
        int col;
        char **dst;
    } texts[] = {
        {7, &j->script},          {8, &j->inputs_json},     {9, &j->env_json},
        {10, &j->labels_json},    {19, &j->idempotency_key}, {21, &j->error_type},
        {22, &j->error_message},  {23, &j->error_traceback}, {26, &j->usage_json},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (col_dup(st, texts[i].col, texts[i].dst) != 0) {
            job_free(j);
            set_error("reading job: out of memory");
            return STORE_ERROR;
        }
    }
    const char *result_type = (const char *)sqlite3_column_text(st, 20);
    if (result_type && strcmp(result_type, "null") != 0 &&
        read_result_prefix(c, j, result_max) != STORE_OK) {
        job_free(j);
        return STORE_ERROR;
    }
    return STORE_OK;
}

/* Runs a statement expected to yield at most one job row. STORE_NOT_FOUND when none.
 * Steps to the end so an UPDATE ... RETURNING completes. */
static store_rc step_job(conn *c, sqlite3_stmt *st, job *out, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return STORE_NOT_FOUND;
    if (rc != SQLITE_ROW)
        return db_error(c, what);
    store_rc r = STORE_OK;
    if (out)
        r = read_job(c, st, out, STORE_RESULT_INLINE_MAX);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE)
        return db_error(c, what);
    return r;
}

static store_rc get_job_locked(conn *c, enum stmt_id which, const char *key, job *out)
{
    sqlite3_stmt *st = stmt(c, which);
    if (!st)
        return STORE_ERROR;
    store_rc r = bind_text(st, 1, key) == SQLITE_OK ? step_job(c, st, out, "reading job")
                                                    : db_error(c, "binding");
    done(st);
    return r;
}

/* 0 and *status, STORE_NOT_FOUND, or STORE_ERROR. Caller holds c->mu. */
static store_rc status_of(conn *c, const char *id, job_status *status)
{
    sqlite3_stmt *st = stmt(c, ST_STATUS_OF);
    if (!st)
        return STORE_ERROR;
    store_rc r;
    int rc = bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        r = job_status_parse(name, status) == 0 ? STORE_OK : STORE_ERROR;
        if (r != STORE_OK)
            set_error("job %s has an unknown status", id);
    } else if (rc == SQLITE_DONE) {
        r = STORE_NOT_FOUND;
    } else {
        r = db_error(c, "reading job status");
    }
    done(st);
    return r;
}

/* ---- secrets at rest ------------------------------------------------------------ */

/* Lowercase hex SHA-256 of the bytes (nettle: already linked through libmicrohttpd's
 * GnuTLS, so no new dependency and no home-made hash). */
static void sha256_hex(const void *data, size_t len, char out[2 * SHA256_DIGEST_SIZE + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[SHA256_DIGEST_SIZE];
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, sizeof d, d);
    for (size_t i = 0; i < sizeof d; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * SHA256_DIGEST_SIZE] = '\0';
}

/* executord_sha256(text) in SQL, for migration 003 to digest the requests it drops. */
static void sql_sha256(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    if (argc != 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    const unsigned char *t = sqlite3_value_text(argv[0]);
    if (!t) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    char hex[2 * SHA256_DIGEST_SIZE + 1];
    sha256_hex(t, (size_t)sqlite3_value_bytes(argv[0]), hex);
    sqlite3_result_text(ctx, hex, -1, SQLITE_TRANSIENT);
}

/* The database and its -wal and -shm hold job requests (env_vars values while a job may
 * run): owner-only. SQLite creates -wal and -shm with the database file's mode, so creating
 * the database 0600 (whatever the umask, which sandboxes inherit and we leave alone) covers
 * them; files left by an older build, 0644, are tightened here before SQLite opens them. */
static int restrict_db_files(const char *path, char *err, size_t errlen)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[4200];
        if ((size_t)snprintf(p, sizeof p, "%s%s", path, suffixes[i]) >= sizeof p) {
            snprintf(err, errlen, "database path %s: too long", path);
            return -1;
        }
        /* O_NONBLOCK: a FIFO planted under that name must not hang the start. */
        int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (i == 0 ? O_CREAT : 0);
        int fd = open(p, flags, 0600);
        if (fd < 0) {
            if (errno == ENOENT && i > 0)
                continue;
            snprintf(err, errlen, "opening %s: %s", p, strerror(errno));
            return -1;
        }
        struct stat st;
        int rc = fstat(fd, &st);
        const char *what = "fstat";
        if (rc == 0 && !S_ISREG(st.st_mode)) {
            close(fd);
            snprintf(err, errlen, "%s: not a regular file", p);
            return -1;
        }
        if (rc == 0 && (st.st_mode & 07777) != 0600) {
            what = "fchmod 0600";
            rc = fchmod(fd, 0600);
        }
        int saved = errno;
        close(fd);
        if (rc != 0) {
            snprintf(err, errlen, "%s %s: %s", what, p, strerror(saved));
            return -1;
        }
    }
    return 0;
}

/* Empties the WAL after a job's env values were erased. Every UPDATE of the job's row while
 * it was queued or running (insert, claim, output byte counts) appended an image of its
 * page, secrets included, to the WAL; the erasing UPDATE only appends one more. A TRUNCATE
 * checkpoint copies the newest images into the database file (overwriting its page that
 * held them) and cuts the WAL to zero bytes. It costs fsyncs and waits for readers (measured
 * here: a finish takes 0.9 ms with it against 0.25 ms without), so it runs only when a job
 * that carried env_vars ends, after a failed attempt, and at every start (a crash between
 * the erasing commit and the checkpoint); not for every job. Caller holds the writer's
 * mutex (or is store_open), outside a transaction. */
static void scrub_wal(store *s)
{
    conn *c = &s->writer;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc != SQLITE_OK) {
        /* The job's new state is committed; only the old copies linger. */
        if (!s->scrub_pending)
            log_warn("job store: cannot empty the WAL after erasing a job's env values: %s "
                     "(sqlite error %d); retried when the next job ends",
                     sqlite3_errmsg(c->db), rc);
        s->scrub_pending = true;
        return;
    }
    s->scrub_pending = false;
}

/* Once after migration 003: rewrites the whole file, so space freed by older builds
 * (without secure_delete) keeps no old env values or requests. The marker is dropped only
 * after the VACUUM worked, so a failure (a full disk) is retried at the next start. */
static int vacuum_if_pending(conn *c, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                  " AND name = 'vacuum_pending'", -1, &st, NULL) != SQLITE_OK)
        goto fail;
    int rc = sqlite3_step(st);
    int pending = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (pending < 0)
        goto fail;
    if (pending == 0)
        return 0;
    if (exec(c, "VACUUM") != SQLITE_OK) {
        snprintf(err, errlen, "VACUUM after migration 003 (it needs free space about the size of"
                 " the database): %s", sqlite3_errmsg(c->db));
        return -1;
    }
    /* The WAL written before the VACUUM may hold old pages: store_open empties it next. */
    if (exec(c, "DROP TABLE vacuum_pending") != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "scrubbing the database after migration 003: %s", sqlite3_errmsg(c->db));
    return -1;
}

/* ---- open / close -------------------------------------------------------------- */

static int conn_open(conn *c, const char *path, bool writer, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        snprintf(err, errlen, "pthread_mutex_init failed");
        return -1;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "opening database %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        return -1;
    }
    sqlite3_extended_result_codes(c->db, 1);
    if (sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS) != SQLITE_OK)
        goto fail;
    /* WAL: readers see the last commit while a writer works. FULL: a commit is fsynced
     * before we answer, so an accepted job survives a power cut. secure_delete: deleted
     * content (a job's old row after an UPDATE rewrote it, freed pages) is overwritten
     * with zeros, not left in the file's free space. */
    static const char *const pragmas[] = {
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA secure_delete=ON",
    };
    for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, pragmas[i], -1, &st, NULL) != SQLITE_OK)
            goto fail;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            /* journal_mode answers with the mode it got: memory databases cannot do WAL. */
            const char *mode = (const char *)sqlite3_column_text(st, 0);
            if (i == 0 && mode && strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
                snprintf(err, errlen, "database %s: cannot enable WAL (journal_mode is %s)",
                         path, mode);
                sqlite3_finalize(st);
                return -1;
            }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            goto fail;
    }
    if (!writer && exec(c, "PRAGMA query_only=ON") != SQLITE_OK)
        goto fail;
    if (writer && sqlite3_create_function(c->db, "executord_sha256", 1,
                                          SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                          NULL, sql_sha256, NULL, NULL) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "configuring database %s: %s", path, sqlite3_errmsg(c->db));
    return -1;
}

static void conn_close(conn *c)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    if (c->db)
        sqlite3_close_v2(c->db);
    c->db = NULL;
    pthread_mutex_destroy(&c->mu);
}

store *store_open(const char *path, char *err, size_t errlen)
{
    store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    bool memory = strcmp(path, ":memory:") == 0 || path[0] == '\0';
    if (!memory && restrict_db_files(path, err, errlen) != 0) {
        free(s);
        return NULL;
    }
    if (conn_open(&s->writer, path, true, err, errlen) != 0) {
        conn_close(&s->writer);
        free(s);
        return NULL;
    }
    /* Migrate before the reader connects, so it sees the final schema. */
    if (migrate_apply(s->writer.db, migrations, migrations_count, err, errlen) < 0 ||
        vacuum_if_pending(&s->writer, err, errlen) != 0) {
        conn_close(&s->writer);
        free(s);
        return NULL;
    }
    scrub_wal(s);
    if (memory) {
        s->reader = &s->writer;
    } else {
        if (conn_open(&s->reader_storage, path, false, err, errlen) != 0) {
            conn_close(&s->reader_storage);
            conn_close(&s->writer);
            free(s);
            return NULL;
        }
        s->reader = &s->reader_storage;
    }
    return s;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->reader != &s->writer)
        conn_close(s->reader);
    conn_close(&s->writer);
    reserve_close(s->rsv);
    free(s);
}

int store_schema_version(store *s)
{
    conn *c = s->reader;
    lock(c);
    int v = -1;
    sqlite3_stmt *st = stmt(c, ST_SCHEMA_VERSION);
    if (st) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        else
            db_error(c, "reading schema version");
    }
    done(st);
    unlock(c);
    return v;
}

int store_ping(store *s, char *err, size_t errlen)
{
    int v = store_schema_version(s);
    if (v < 0) {
        snprintf(err, errlen, "%s", tls_error);
        return -1;
    }
    return 0;
}

/* ---- storage: the quota, eviction and the disk --------------------------------- */

#define EVICT_BATCH 64          /* jobs evicted per transaction */
#define MAX_SLACK (64u << 20)
/* The room a job should find: below it the store counts as full (/readyz) and queued jobs
 * wait rather than start and fail for want of room for their output. */
#define MIN_ROOM (1u << 20)

static uint64_t text_bytes(const char *t)
{
    return t ? strlen(t) : 0;
}

/* What eviction frees beyond the shortfall, so that the next requests do not each evict
 * again: a sixteenth of the quota (at most 64 MiB), or 1 MiB without one. */
static uint64_t slack(const store *s)
{
    if (!s->quota_bytes)
        return 1u << 20;
    return s->quota_bytes / 16 < MAX_SLACK ? s->quota_bytes / 16 : MAX_SLACK;
}

/* The one-row totals: what the jobs hold, and what of it eviction could free (the output
 * and results of finished jobs). Caller holds c->mu. */
static store_rc used_locked(conn *c, uint64_t *used, uint64_t *evictable)
{
    sqlite3_stmt *st = stmt(c, ST_STORAGE_USED);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_OK;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *used = col_u64(st, 0);
        *evictable = col_u64(st, 1);
    } else if (rc == SQLITE_DONE) {
        set_error("reading the storage total: its row is missing");
        r = STORE_ERROR;
    } else {
        r = db_error(c, "reading the storage total");
    }
    done(st);
    return r;
}

/* What the disk can still take for the store: its free blocks plus the database's free
 * pages (new rows reuse them without growing the file). While the reserve is given back,
 * its size is not counted: using the reserve is not room. Takes the reserve again first
 * when the disk has room for it and as much besides. False when the disk is not watched
 * or cannot be read. Caller holds c->mu. */
static bool disk_room_locked(store *s, conn *c, uint64_t *room, uint64_t *total)
{
    if (!s->rsv)
        return false;
    uint64_t size = reserve_size(s->rsv);
    if (!reserve_held(s->rsv) && reserve_restore(s->rsv, size))
        log_info("storage: the disk has room again; the %llu-byte reserve is set aside again",
                 (unsigned long long)size);
    uint64_t avail = 0;
    if (reserve_disk(s->rsv, &avail, total) != 0) {
        log_warn("storage: statvfs of the data folder: %s", strerror(errno));
        return false;
    }
    int64_t pages = 0;
    sqlite3_stmt *st = stmt(c, ST_FREELIST);
    if (st && sqlite3_step(st) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    done(st);
    uint64_t r = avail + (uint64_t)(pages > 0 ? pages : 0) * s->page_size;
    if (!reserve_held(s->rsv))
        r = r > size ? r - size : 0;
    *room = r;
    return true;
}

/* Whether add more bytes may be stored: within the quota (when check_quota), and leaving
 * the disk the reserve's size free besides the reserve. STORE_OK, or STORE_NO_SPACE with
 * the reason recorded and *shortfall = what eviction would have to free. Caller holds
 * c->mu (inside a transaction or not). */
static store_rc admit_locked(store *s, conn *c, uint64_t add, bool check_quota,
                             uint64_t *shortfall)
{
    *shortfall = 0;
    store_rc r = STORE_OK;
    if (check_quota && s->quota_bytes) {
        uint64_t used = 0, evictable = 0;
        if ((r = used_locked(c, &used, &evictable)) != STORE_OK)
            return r;
        if (used + add > s->quota_bytes) {
            *shortfall = used + add - s->quota_bytes;
            set_error("the storage quota is used up: jobs hold %llu of %llu bytes and %llu "
                      "more were needed", (unsigned long long)used,
                      (unsigned long long)s->quota_bytes, (unsigned long long)add);
            r = STORE_NO_SPACE;
        }
    }
    uint64_t room = 0, total = 0;
    if (disk_room_locked(s, c, &room, &total)) {
        uint64_t want = add + reserve_size(s->rsv);
        if (room < want) {
            if (want - room > *shortfall)
                *shortfall = want - room;
            set_error("the disk of the data folder is full: %llu bytes free for the store, "
                      "%llu needed besides the %llu kept free", (unsigned long long)room,
                      (unsigned long long)add, (unsigned long long)reserve_size(s->rsv));
            r = STORE_NO_SPACE;
        }
    }
    return r;
}

/* New data was refused, or stored again: said once per episode in the log. Caller holds
 * the writer's mutex. */
static void note_refusal(store *s, store_rc r)
{
    if (r == STORE_NO_SPACE && !s->refusing) {
        s->refusing = true;
        log_warn("storage full: %s (after evicting what finished jobs held); new data is "
                 "refused, new jobs get 507", tls_error);
    } else if (r == STORE_OK && s->refusing) {
        s->refusing = false;
        log_info("storage: room again; new jobs are accepted");
    }
}

/* A write that must commit (a job ending, a delete, an eviction) met a full disk: the
 * reserve goes back to the filesystem. True when that freed space just now. Caller holds
 * the writer's mutex, outside a transaction. */
static bool use_reserve(store *s)
{
    if (!reserve_release(s->rsv))
        return false;
    log_warn("storage: the disk of the data folder is full: released the %llu-byte reserve so "
             "that jobs can end and be deleted; new jobs get 507 until there is room again",
             (unsigned long long)reserve_size(s->rsv));
    /* Frames already copied into the database can then be overwritten instead of the WAL
     * growing into what the reserve just gave back. */
    (void)sqlite3_wal_checkpoint_v2(s->writer.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return true;
}

/* Deleting or evicting a finished job's data frees its pages without zeroing them
 * (secure_delete=FAST; content inside the pages that stay is still overwritten). Zeroing
 * writes every freed page to the WAL, so deleting N bytes would need N bytes of free disk
 * and a full disk could never be emptied through the API. The pages freed hold no secret:
 * a job's env values were zeroed (secure_delete=ON) when it ended. Caller holds c->mu,
 * outside a transaction. */
static void fast_delete(conn *c, bool fast)
{
    if (exec(c, fast ? "PRAGMA secure_delete=FAST" : "PRAGMA secure_delete=ON") != SQLITE_OK)
        log_error("job store: PRAGMA secure_delete=%s: %s", fast ? "FAST" : "ON",
                  sqlite3_errmsg(c->db));
}

typedef struct victim {
    char id[JOB_ID_LEN + 1];
    uint64_t bytes;
} victim;

/* The oldest finished jobs that hold an output (or a result): at most EVICT_BATCH, no
 * more than needed to free want bytes. Returns how many (*sum: their bytes), or -1. */
static int pick_victims(conn *c, enum stmt_id which, uint64_t want, victim *v, uint64_t *sum)
{
    *sum = 0;
    sqlite3_stmt *st = stmt(c, which);
    if (!st)
        return -1;
    int n = 0;
    int rc = sqlite3_bind_int(st, 1, EVICT_BATCH);
    while (rc == SQLITE_OK && *sum < want && n < EVICT_BATCH &&
           (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        snprintf(v[n].id, sizeof v[n].id, "%s", id ? id : "");
        v[n].bytes = col_u64(st, 1);
        *sum += v[n].bytes;
        n++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        db_error(c, "choosing jobs to evict");
        n = -1;
    }
    done(st);
    return n;
}

/* One transaction: the outputs (or results) of these jobs go, and each says so. A job's
 * output chunks go only when its row said it is finished. */
static store_rc evict_batch(conn *c, bool outputs, const victim *v, int n)
{
    store_rc r = begin_write(c);
    for (int i = 0; r == STORE_OK && i < n; i++) {
        enum stmt_id steps[2] = {outputs ? ST_EVICT_OUTPUT : ST_EVICT_RESULT, ST_DELETE_OUTPUT};
        for (int k = 0; r == STORE_OK && k < (outputs ? 2 : 1); k++) {
            sqlite3_stmt *st = stmt(c, steps[k]);
            if (!st) {
                r = STORE_ERROR;
                break;
            }
            int rc = bind_text(st, 1, v[i].id);
            if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
            if (rc != SQLITE_DONE)
                r = db_error(c, "evicting");
            done(st);
            if (r == STORE_OK && k == 0 && sqlite3_changes(c->db) == 0)
                break;
        }
    }
    if (r == STORE_OK)
        return commit(c);
    rollback(c);
    return r;
}

/* Frees at least want bytes, or all it can: the outputs of the oldest finished jobs first,
 * then their results; each batch one transaction (a full disk may use the reserve: this
 * frees space). Returns the bytes freed. Caller holds the writer's mutex, outside a
 * transaction. */
static uint64_t evict_locked(store *s, uint64_t want)
{
    conn *c = &s->writer;
    uint64_t freed = 0, jobs[2] = {0, 0};
    /* The caller's reason for evicting stays the error to report; eviction's own failures
     * go to the log. */
    char reason[sizeof tls_error];
    memcpy(reason, tls_error, sizeof reason);
    fast_delete(c, true);
    for (int pass = 0; pass < 2 && freed < want; pass++) {
        bool outputs = pass == 0;
        for (;;) {
            victim v[EVICT_BATCH];
            uint64_t sum = 0;
            int n = pick_victims(c, outputs ? ST_OLDEST_OUTPUTS : ST_OLDEST_RESULTS,
                                 want - freed, v, &sum);
            if (n <= 0)
                break;
            store_rc r = evict_batch(c, outputs, v, n);
            if (r == STORE_NO_SPACE && use_reserve(s))
                r = evict_batch(c, outputs, v, n);
            if (r != STORE_OK) {
                log_error("storage: cannot evict: %s", tls_error);
                pass = 2;
                break;
            }
            freed += sum;
            jobs[pass] += (uint64_t)n;
            if (freed >= want)
                break;
        }
    }
    fast_delete(c, false);
    memcpy(tls_error, reason, sizeof reason);
    if (jobs[0] || jobs[1]) {
        atomic_fetch_add(&s->evicted_outputs, jobs[0]);
        atomic_fetch_add(&s->evicted_results, jobs[1]);
        log_info("storage: evicted the output of %llu and the result of %llu finished job(s), "
                 "oldest first (%llu bytes)", (unsigned long long)jobs[0],
                 (unsigned long long)jobs[1], (unsigned long long)freed);
    }
    return freed;
}

/* After a write failed for lack of room (want: the shortfall): evicts, but only when
 * that can free enough (data is not thrown away for a request that would be refused
 * anyway); a write that must commit takes whatever eviction frees, then the reserve. True
 * when another attempt may succeed. */
static bool make_room(store *s, uint64_t want, bool essential)
{
    uint64_t used = 0, evictable = 0;
    if (used_locked(&s->writer, &used, &evictable) != STORE_OK)
        evictable = 0;
    if ((essential || evictable >= want) && evictable > 0 &&
        evict_locked(s, want + slack(s)) > 0)
        return true;
    return essential && use_reserve(s);
}

store_rc store_make_room(store *s, uint64_t bytes)
{
    conn *c = &s->writer;
    lock(c);
    uint64_t shortfall = 0;
    store_rc r = admit_locked(s, c, bytes, true, &shortfall);
    if (r == STORE_NO_SPACE && make_room(s, shortfall, false))
        r = admit_locked(s, c, bytes, true, &shortfall);
    unlock(c);
    return r;
}

int store_set_storage(store *s, const store_storage_options *o, char *err, size_t errlen)
{
    s->quota_bytes = o->quota_bytes;
    if (!o->reserve_path)
        return 0;
    conn *c = &s->writer;
    lock(c);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA page_size", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        s->page_size = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    unlock(c);
    if (rc != SQLITE_ROW || !s->page_size) {
        snprintf(err, errlen, "reading the database page size: %s", sqlite3_errmsg(c->db));
        return -1;
    }
    s->rsv = reserve_open(o->reserve_path, o->reserve_bytes, err, errlen);
    return s->rsv ? 0 : -1;
}

int store_storage_state(store *s, store_storage *out)
{
    memset(out, 0, sizeof *out);
    out->quota_bytes = s->quota_bytes;
    out->evicted_outputs = atomic_load(&s->evicted_outputs);
    out->evicted_results = atomic_load(&s->evicted_results);
    conn *c = s->reader;
    lock(c);
    uint64_t room = 0, evictable = 0;
    store_rc r = used_locked(c, &out->used_bytes, &evictable);
    if (r == STORE_OK)
        out->disk_watched = disk_room_locked(s, c, &room, &out->disk_total_bytes);
    unlock(c);
    if (r != STORE_OK)
        return -1;
    if (out->disk_watched) {
        out->disk_free_bytes = room;
        out->reserve_bytes = reserve_size(s->rsv);
        out->reserve_held = reserve_held(s->rsv);
    }
    /* Full: less than MIN_ROOM (a quarter of a small quota) left even after evicting all
     * there is to evict. */
    uint64_t min_quota_room = s->quota_bytes / 4 < MIN_ROOM ? s->quota_bytes / 4 : MIN_ROOM;
    uint64_t kept = out->used_bytes > evictable ? out->used_bytes - evictable : 0;
    bool over_quota = s->quota_bytes && kept + min_quota_room > s->quota_bytes;
    bool disk_full = out->disk_watched && room + evictable < out->reserve_bytes + MIN_ROOM;
    out->full = over_quota || disk_full;
    out->evictable_bytes = evictable;
    if (out->full && disk_full)
        snprintf(out->reason, sizeof out->reason, "the disk of the data folder is full");
    else if (out->full)
        snprintf(out->reason, sizeof out->reason,
                 "the storage quota is used up by queued and running jobs and the scripts "
                 "and inputs of finished ones");
    else if (out->disk_watched && !out->reserve_held && out->reserve_bytes)
        snprintf(out->reason, sizeof out->reason,
                 "the disk was full: its reserve is in use until %llu bytes are free again",
                 (unsigned long long)(2 * out->reserve_bytes));
    return 0;
}

/* ---- jobs ---------------------------------------------------------------------- */

/* The digest stored for a request: what idempotency compares instead of the request,
 * which carries env_vars values. NULL (no key, so no request) stays NULL. */
static const char *request_digest(const job *j, char buf[2 * SHA256_DIGEST_SIZE + 1])
{
    if (!j->request_json)
        return NULL;
    sha256_hex(j->request_json, strlen(j->request_json), buf);
    return buf;
}

static bool same_digest(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* The job that holds j's idempotency key decides: EXISTS (the digest of the same body) or
 * CONFLICT. STORE_NOT_FOUND when the key is unused. Caller holds the writer inside a
 * transaction. */
static store_rc check_idempotency(conn *c, const job *j, const char *digest, job *existing)
{
    sqlite3_stmt *st = stmt(c, ST_DIGEST_BY_KEY);
    if (!st)
        return STORE_ERROR;
    store_rc r;
    int rc = bind_text(st, 1, j->idempotency_key);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r = same_digest((const char *)sqlite3_column_text(st, 0), digest) ? STORE_EXISTS
                                                                         : STORE_CONFLICT;
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = db_error(c, "reading the request digest");
    done(st);
    if (r == STORE_EXISTS && existing) {
        store_rc g = get_job_locked(c, ST_GET_BY_KEY, j->idempotency_key, existing);
        if (g != STORE_OK)
            r = g == STORE_NOT_FOUND ? STORE_ERROR : g; /* same transaction: cannot vanish */
    }
    return r;
}

static store_rc count_status_locked(conn *c, job_status st_, int64_t *n)
{
    sqlite3_stmt *st = stmt(c, ST_COUNT_STATUS);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_OK;
    if (bind_text(st, 1, job_status_name(st_)) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        r = db_error(c, "counting jobs");
    else
        *n = sqlite3_column_int64(st, 0);
    done(st);
    return r;
}

static int bind_insert(sqlite3_stmt *st, const job *j, const char *digest, uint64_t bytes)
{
    const sandbox_limits *l = &j->limits;
    int rc = SQLITE_OK;
#define B(call)                                                                             \
    do {                                                                                    \
        if (rc == SQLITE_OK)                                                                \
            rc = (call);                                                                    \
    } while (0)
    B(bind_text(st, 1, j->id));
    B(bind_text(st, 2, j->backend));
    B(sqlite3_bind_int64(st, 3, j->created_at_ms));
    B(bind_text(st, 4, j->script));
    B(bind_text(st, 5, j->inputs_json ? j->inputs_json : "{}"));
    B(bind_text(st, 6, j->env_json ? j->env_json : "{}"));
    B(bind_text(st, 7, j->labels_json ? j->labels_json : "{}"));
    B(sqlite3_bind_int(st, 8, j->allow_network ? 1 : 0));
    B(sqlite3_bind_double(st, 9, l->timeout_seconds));
    B(bind_u64(st, 10, l->memory_mb));
    B(bind_u64(st, 11, l->cpu_seconds));
    B(bind_u64(st, 12, l->max_processes));
    B(bind_u64(st, 13, l->max_file_size_mb));
    B(bind_u64(st, 14, l->max_open_files));
    B(bind_u64(st, 15, l->max_output_bytes));
    B(bind_text(st, 16, j->idempotency_key));
    B(bind_text(st, 17, digest));
    B(bind_u64(st, 18, bytes));
#undef B
    return rc;
}

/* Inside the write transaction: the job row, then its labels. */
static store_rc insert_rows(conn *c, job *j, const char *digest, uint64_t bytes)
{
    sqlite3_stmt *st = stmt(c, ST_INSERT_JOB);
    if (!st)
        return STORE_ERROR;
    int rc = bind_insert(st, j, digest, bytes);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_rc r = STORE_OK;
    if (rc != SQLITE_DONE) {
        /* Another writer (another process on this file) may have taken the key between
         * our check and this insert: the UNIQUE constraint is the final word. */
        bool key_taken = rc == SQLITE_CONSTRAINT_UNIQUE && j->idempotency_key;
        r = db_error(c, "inserting job");
        done(st);
        return key_taken ? STORE_CONFLICT /* resolved by the caller */ : r;
    }
    done(st);
    j->seq = sqlite3_last_insert_rowid(c->db);

    st = stmt(c, ST_INSERT_LABELS);
    if (!st)
        return STORE_ERROR;
    rc = sqlite3_bind_int64(st, 1, j->seq);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, j->labels_json ? j->labels_json : "{}");
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        r = db_error(c, "inserting job labels");
    done(st);
    return r;
}

/* One attempt at store_insert_job, in one transaction. Caller holds the writer's mutex. */
static store_rc insert_locked(store *s, job *j, const char *digest, uint64_t bytes,
                              int64_t max_queued, job *existing, uint64_t *shortfall)
{
    conn *c = &s->writer;
    store_rc r = begin_write(c);
    if (r != STORE_OK)
        return r;
    if (j->idempotency_key) {
        r = check_idempotency(c, j, digest, existing);
        if (r != STORE_NOT_FOUND)
            goto end; /* EXISTS, CONFLICT or ERROR: nothing to write */
    }
    if (max_queued > 0) {
        int64_t queued = 0;
        r = count_status_locked(c, JOB_QUEUED, &queued);
        if (r != STORE_OK)
            goto end;
        if (queued >= max_queued) {
            set_error("the queue is full (%lld jobs queued)", (long long)queued);
            r = STORE_FULL;
            goto end;
        }
    }
    if ((r = admit_locked(s, c, bytes, true, shortfall)) != STORE_OK)
        goto end;
    r = insert_rows(c, j, digest, bytes);
    if (r == STORE_CONFLICT) {
        /* The key exists after all: answer as if we had seen it first. */
        rollback(c);
        if ((r = begin_write(c)) != STORE_OK)
            return r;
        r = check_idempotency(c, j, digest, existing);
        if (r == STORE_NOT_FOUND)
            r = STORE_ERROR; /* another UNIQUE column failed; its message is recorded */
        goto end;
    }
    if (r == STORE_OK) {
        r = commit(c);
        if (r == STORE_OK)
            j->status = JOB_QUEUED;
        return r;
    }
end:
    rollback(c);
    return r;
}

store_rc store_insert_job(store *s, job *j, int64_t max_queued, job *existing)
{
    if (!job_id_valid(j->id)) {
        set_error("inserting job: '%s' is not a canonical job id", j->id);
        return STORE_ERROR;
    }
    if (!j->created_at_ms)
        j->created_at_ms = time_now_ms();
    char buf[2 * SHA256_DIGEST_SIZE + 1];
    const char *digest = request_digest(j, buf);
    /* What the quota counts of a queued job: its script and inputs. */
    uint64_t bytes = text_bytes(j->script) + text_bytes(j->inputs_json ? j->inputs_json : "{}");
    conn *c = &s->writer;
    lock(c);
    store_rc r;
    for (int attempt = 0;; attempt++) {
        uint64_t shortfall = 0;
        r = insert_locked(s, j, digest, bytes, max_queued, existing, &shortfall);
        if (r != STORE_NO_SPACE || attempt > 0 ||
            !make_room(s, shortfall ? shortfall : bytes, false))
            break;
    }
    note_refusal(s, r);
    unlock(c);
    return r;
}

store_rc store_get_job(store *s, const char *id, job *out)
{
    conn *c = s->reader;
    lock(c);
    store_rc r = get_job_locked(c, ST_GET_BY_ID, id, out);
    unlock(c);
    return r;
}

store_rc store_claim_next(store *s, int64_t started_at_ms, job *out)
{
    return store_claim_next_within(s, started_at_ms, UINT64_MAX, out, NULL);
}

/* The oldest queued job's id and memory_mb into *head. Caller holds c->mu. */
static store_rc queue_head(conn *c, store_queue_head *head)
{
    sqlite3_stmt *st = stmt(c, ST_QUEUE_HEAD);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_NOT_FOUND;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0);
        if (head) {
            snprintf(head->id, sizeof head->id, "%s", id ? (const char *)id : "");
            head->memory_mb = col_u64(st, 1);
        }
        r = STORE_CONFLICT;
    } else if (rc != SQLITE_DONE) {
        r = db_error(c, "reading the queue's head");
    }
    done(st);
    return r;
}

store_rc store_claim_next_within(store *s, int64_t started_at_ms, uint64_t max_memory_mb, job *out,
                                 store_queue_head *head)
{
    conn *c = &s->writer;
    lock(c);
    /* A job that starts writes output: none starts on a disk without room for some. The
     * quota does not hold jobs back: queued jobs may be what fills it, and only running
     * them (or deleting) frees anything. */
    uint64_t shortfall = 0;
    store_rc r = admit_locked(s, c, MIN_ROOM, false, &shortfall);
    if (r == STORE_NO_SPACE) {
        /* Finished jobs' output is evicted for a job that waits, never for an empty queue
         * (a worker looks whenever it wakes). */
        store_rc q = queue_head(c, NULL);
        if (q == STORE_NOT_FOUND)
            r = STORE_NOT_FOUND;
        else if (q == STORE_CONFLICT && make_room(s, shortfall, false))
            r = admit_locked(s, c, MIN_ROOM, false, &shortfall);
    }
    if (r == STORE_OK) {
        r = STORE_ERROR;
        sqlite3_stmt *st = stmt(c, ST_CLAIM);
        if (st) {
            if (sqlite3_bind_int64(st, 1, started_at_ms ? started_at_ms : time_now_ms()) == SQLITE_OK &&
                bind_u64(st, 2, max_memory_mb) == SQLITE_OK)
                r = step_job(c, st, out, "claiming a job");
            else
                r = db_error(c, "binding");
        }
        done(st);
        /* Nothing claimed: an empty queue, or a head that does not fit (same lock, so the
         * head read is the one the claim saw). */
        if (r == STORE_NOT_FOUND)
            r = queue_head(c, head);
    }
    if (r == STORE_OK || r == STORE_NO_SPACE)
        note_refusal(s, r);
    unlock(c);
    return r;
}

/* One attempt at store_finish_job (one statement). Caller holds the writer's mutex. */
static store_rc finish_locked(store *s, const job *j, uint64_t bytes)
{
    conn *c = &s->writer;
    store_rc r = STORE_ERROR;
    sqlite3_stmt *st = stmt(c, ST_FINISH);
    if (!st)
        return r;
    int rc = bind_text(st, 1, j->id);
#define B(call)                                                                             \
    do {                                                                                    \
        if (rc == SQLITE_OK)                                                                \
            rc = (call);                                                                    \
    } while (0)
    B(bind_text(st, 2, job_status_name(j->status)));
    B(sqlite3_bind_int64(st, 3, j->finished_at_ms ? j->finished_at_ms : time_now_ms()));
    B(bind_text(st, 4, j->result_json));
    B(bind_text(st, 5, j->error_type));
    B(bind_text(st, 6, j->error_message));
    B(bind_text(st, 7, j->error_traceback));
    B(j->has_exit_code ? sqlite3_bind_int(st, 8, j->exit_code) : sqlite3_bind_null(st, 8));
    B(j->signal ? sqlite3_bind_int(st, 9, j->signal) : sqlite3_bind_null(st, 9));
    B(bind_text(st, 10, j->usage_json));
    B(bind_u64(st, 11, j->stdout_bytes));
    B(bind_u64(st, 12, j->stderr_bytes));
    B(sqlite3_bind_int(st, 13, j->stdout_truncated ? 1 : 0));
    B(sqlite3_bind_int(st, 14, j->stderr_truncated ? 1 : 0));
    B(bind_u64(st, 15, bytes));
    B(bind_u64(st, 16, text_bytes(j->result_json)));
#undef B
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    bool finished = rc == SQLITE_ROW, had_env = finished && sqlite3_column_int(st, 0) != 0;
    if (finished)
        rc = sqlite3_step(st); /* completes the UPDATE ... RETURNING */
    if (rc != SQLITE_DONE) {
        r = db_error(c, "finishing job");
        done(st);
        return r;
    }
    done(st);
    if (finished) {
        if (had_env || s->scrub_pending)
            scrub_wal(s);
        return STORE_OK;
    }
    job_status cur;
    r = status_of(c, j->id, &cur);
    if (r == STORE_OK) {
        set_error("finishing job %s: it is %s, not running", j->id, job_status_name(cur));
        r = STORE_CONFLICT;
    }
    return r;
}

store_rc store_finish_job(store *s, const job *j)
{
    if (!job_status_is_final(j->status)) {
        set_error("finishing job %s: '%s' is not a final status", j->id,
                  job_status_name(j->status));
        return STORE_ERROR;
    }
    /* What the quota counts of the outcome: the result and the error's text. */
    uint64_t bytes = text_bytes(j->result_json) + text_bytes(j->error_message) +
                     text_bytes(j->error_traceback);
    conn *c = &s->writer;
    lock(c);
    store_rc r;
    for (int attempt = 0;; attempt++) {
        uint64_t shortfall = 0;
        /* A result must fit like any new data; a job without one always ends, on a full
         * disk through the reserve, so no job stays running for want of space. */
        r = j->result_json ? admit_locked(s, c, bytes, true, &shortfall) : STORE_OK;
        if (r == STORE_OK)
            r = finish_locked(s, j, bytes);
        if (r != STORE_NO_SPACE || attempt > 1 ||
            !make_room(s, shortfall ? shortfall : bytes, !j->result_json))
            break;
    }
    unlock(c);
    return r;
}

store_rc store_cancel_queued(store *s, const char *id, int64_t now_ms, job *out)
{
    conn *c = &s->writer;
    lock(c);
    store_rc r = STORE_ERROR;
    /* The cancelled row is read even when the caller does not want it: its (erased)
     * env_json tells whether the job had env values to scrub from the WAL. */
    job cancelled;
    job_init(&cancelled);
    for (int attempt = 0;; attempt++) {
        r = STORE_ERROR;
        sqlite3_stmt *st = stmt(c, ST_CANCEL);
        if (st) {
            int rc = bind_text(st, 1, id);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 2, now_ms ? now_ms : time_now_ms());
            r = rc == SQLITE_OK ? step_job(c, st, &cancelled, "cancelling job")
                                : db_error(c, "binding");
        }
        done(st);
        /* The row is rewritten whole (its script and inputs too): room for that. */
        if (r != STORE_NO_SPACE || attempt > 1 || !make_room(s, 0, true))
            break;
    }
    if (r == STORE_OK) {
        bool had_env = cancelled.env_json && strcmp(cancelled.env_json, "{}") != 0;
        if (had_env || s->scrub_pending)
            scrub_wal(s);
        if (out) {
            *out = cancelled;
            job_init(&cancelled);
        }
    }
    job_free(&cancelled);
    if (r == STORE_NOT_FOUND) {
        /* Not queued: tell apart "no such job" from "already running or final", and give
         * the caller the job as it is. */
        job cur;
        job_init(&cur);
        r = get_job_locked(c, ST_GET_BY_ID, id, &cur);
        if (r == STORE_OK) {
            set_error("cancelling job %s: it is %s, not queued", id, job_status_name(cur.status));
            r = STORE_CONFLICT;
            if (out) {
                *out = cur;
            } else {
                job_free(&cur);
            }
        }
    }
    unlock(c);
    return r;
}

/* One attempt at store_delete_job, in one transaction. Caller holds c->mu. */
static store_rc delete_locked(conn *c, const char *id)
{
    store_rc r = begin_write(c);
    if (r != STORE_OK)
        return r;
    job_status cur;
    r = status_of(c, id, &cur);
    if (r != STORE_OK)
        goto end;
    if (!job_status_is_final(cur)) {
        set_error("deleting job %s: it is %s, not finished", id, job_status_name(cur));
        r = STORE_CONFLICT;
        goto end;
    }
    /* Output rows go explicitly too: the cascade only works with foreign_keys on. */
    enum stmt_id steps[] = {ST_DELETE_OUTPUT, ST_DELETE_JOB};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st = stmt(c, steps[i]);
        if (!st) {
            r = STORE_ERROR;
            goto end;
        }
        int rc = bind_text(st, 1, id);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            r = db_error(c, "deleting job");
        done(st);
        if (r != STORE_OK)
            goto end;
    }
    return commit(c);
end:
    rollback(c);
    return r;
}

store_rc store_delete_job(store *s, const char *id)
{
    conn *c = &s->writer;
    lock(c);
    fast_delete(c, true);
    store_rc r = delete_locked(c, id);
    if (r == STORE_NO_SPACE && use_reserve(s))
        r = delete_locked(c, id);
    fast_delete(c, false);
    unlock(c);
    return r;
}

/* One attempt at store_recover_running (one statement). Caller holds c->mu. */
static int recover_locked(conn *c, int64_t now_ms, bool *had_env, store_rc *r)
{
    int n = -1;
    *r = STORE_ERROR;
    sqlite3_stmt *st = stmt(c, ST_RECOVER);
    if (st) {
        int rc = sqlite3_bind_int64(st, 1, now_ms ? now_ms : time_now_ms());
        int rows = 0;
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            rows++;
            *had_env |= sqlite3_column_int(st, 0) != 0;
            rc = SQLITE_OK;
        }
        if (rc == SQLITE_DONE) {
            n = rows;
            *r = STORE_OK;
        } else {
            *r = db_error(c, "recovering running jobs");
        }
    }
    done(st);
    return n;
}

int store_recover_running(store *s, int64_t now_ms)
{
    conn *c = &s->writer;
    lock(c);
    bool had_env = false;
    store_rc r;
    int n = recover_locked(c, now_ms, &had_env, &r);
    for (int attempt = 0; r == STORE_NO_SPACE && attempt < 2 && make_room(s, 0, true); attempt++)
        n = recover_locked(c, now_ms, &had_env, &r);
    if (n >= 0 && (had_env || s->scrub_pending))
        scrub_wal(s);
    unlock(c);
    return n;
}

int64_t store_count_status(store *s, job_status status)
{
    conn *c = s->reader;
    lock(c);
    int64_t n = -1;
    if (count_status_locked(c, status, &n) != STORE_OK)
        n = -1;
    unlock(c);
    return n;
}

static store_rc read_status_count(sqlite3_stmt *st, store_status_count *row)
{
    const char *status = (const char *)sqlite3_column_text(st, 0);
    const char *backend = (const char *)sqlite3_column_text(st, 1);
    if (!status || job_status_parse(status, &row->status) != 0) {
        set_error("counting jobs: unknown status '%s' in the database", status ? status : "(null)");
        return STORE_ERROR;
    }
    snprintf(row->backend, sizeof row->backend, "%s", backend ? backend : "");
    row->count = sqlite3_column_int64(st, 2);
    return STORE_OK;
}

int store_count_by_status_backend(store *s, store_status_count *out, int max)
{
    conn *c = s->reader;
    lock(c);
    sqlite3_stmt *st = stmt(c, ST_COUNT_BY_STATUS_BACKEND);
    int n = st ? 0 : -1;
    while (n >= 0) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            db_error(c, "counting jobs by status and backend");
            n = -1;
        } else if (n < max) {
            /* Rows beyond max are dropped: there are at most statuses x backends. */
            if (read_status_count(st, &out[n]) == STORE_OK)
                n++;
            else
                n = -1;
        }
    }
    done(st);
    unlock(c);
    return n;
}

/* ---- output -------------------------------------------------------------------- */

static store_rc check_stream(int stream)
{
    if (stream == SANDBOX_STDOUT || stream == SANDBOX_STDERR)
        return STORE_OK;
    set_error("output stream %d is neither stdout (1) nor stderr (2)", stream);
    return STORE_ERROR;
}

/* One attempt at store_append_output, in one transaction. Caller holds the writer's
 * mutex. */
static store_rc append_locked(store *s, const char *id, int stream, const char *data,
                              size_t len, uint64_t *shortfall)
{
    conn *c = &s->writer;
    store_rc r = begin_write(c);
    if (r != STORE_OK)
        return r;
    job_status cur;
    if ((r = status_of(c, id, &cur)) != STORE_OK || len == 0)
        goto end;
    if ((r = admit_locked(s, c, len, true, shortfall)) != STORE_OK)
        goto end;

    sqlite3_stmt *st = stmt(c, ST_OUTPUT_END);
    if (!st) {
        r = STORE_ERROR;
        goto end;
    }
    int64_t offset = 0;
    int rc = bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        offset = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        r = db_error(c, "appending output: reading the stream end");
    done(st);
    if (r != STORE_OK)
        goto end;

    st = stmt(c, ST_OUTPUT_INSERT);
    if (!st) {
        r = STORE_ERROR;
        goto end;
    }
    rc = bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, offset);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 4, data, (int)len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        r = db_error(c, "appending output");
    done(st);
    if (r != STORE_OK)
        goto end;

    st = stmt(c, ST_OUTPUT_BYTES);
    if (!st) {
        r = STORE_ERROR;
        goto end;
    }
    rc = bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, offset + (int64_t)len);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, (int64_t)len);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        r = db_error(c, "appending output: updating byte counts");
    done(st);
    if (r != STORE_OK)
        goto end;
    return commit(c);
end:
    rollback(c);
    return r;
}

store_rc store_append_output(store *s, const char *id, int stream, const char *data, size_t len)
{
    store_rc r = check_stream(stream);
    if (r != STORE_OK)
        return r;
    if (len > (size_t)INT32_MAX) {
        set_error("appending output: a chunk of %zu bytes is too large", len);
        return STORE_ERROR;
    }
    conn *c = &s->writer;
    lock(c);
    for (int attempt = 0;; attempt++) {
        uint64_t shortfall = 0;
        r = append_locked(s, id, stream, data, len, &shortfall);
        if (r != STORE_NO_SPACE || attempt > 0 || !make_room(s, shortfall ? shortfall : len, false))
            break;
    }
    if (r == STORE_NO_SPACE)
        note_refusal(s, r);
    unlock(c);
    return r;
}

typedef struct outbuf {
    char *p;
    size_t len, cap;
} outbuf;

static int buf_add(outbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Caller holds c->mu inside a read transaction. */
static store_rc read_chunks(conn *c, const char *id, int stream, uint64_t offset, size_t max,
                            outbuf *b)
{
    sqlite3_stmt *st = stmt(c, ST_OUTPUT_READ);
    if (!st)
        return STORE_ERROR;
    int64_t from = offset > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)offset;
    int rc = bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, from);
    store_rc r = STORE_OK;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if (max && b->len >= max)
            break;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        int64_t start = sqlite3_column_int64(st, 0);
        const char *data = sqlite3_column_blob(st, 1);
        int64_t n = sqlite3_column_bytes(st, 1);
        if (start + n <= from || !data)
            continue; /* ends before the offset (or empty) */
        int64_t skip = from > start ? from - start : 0;
        size_t take = (size_t)(n - skip);
        if (max && take > max - b->len)
            take = max - b->len;
        if (buf_add(b, data + skip, take) != 0) {
            set_error("reading output: out of memory");
            r = STORE_ERROR;
            break;
        }
    }
    if (r == STORE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = db_error(c, "reading output");
    done(st);
    return r;
}

store_rc store_read_output(store *s, const char *id, int stream, uint64_t offset, size_t max,
                           char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    store_rc r = check_stream(stream);
    if (r != STORE_OK)
        return r;
    conn *c = s->reader;
    job_status cur;
    outbuf b = {0};
    lock(c);
    /* One snapshot for "does the job exist" and its chunks. */
    if (exec(c, "BEGIN") != SQLITE_OK) {
        r = db_error(c, "BEGIN");
        goto out;
    }
    r = status_of(c, id, &cur);
    if (r == STORE_OK)
        r = read_chunks(c, id, stream, offset, max, &b);
    if (r == STORE_OK && !b.p && buf_add(&b, "", 0) != 0) {
        set_error("reading output: out of memory");
        r = STORE_ERROR;
    }
    rollback(c); /* read-only: ending it either way is the same */
    if (r == STORE_OK) {
        *data = b.p;
        *len = b.len;
    } else {
        free(b.p);
    }
out:
    unlock(c);
    return r;
}

/* ---- lists and retention --------------------------------------------------------- */

void job_list_free(job_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        job_free(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
    l->next_seq = 0;
}

store_rc store_list_jobs(store *s, const store_filter *f, int64_t before_seq, size_t limit,
                         job_list *out)
{
    out->items = NULL;
    out->count = 0;
    out->next_seq = 0;
    bool by_status = f && f->has_status;
    bool by_key = f && f->label_key;
    bool by_value = by_key && f->label_value;
    int variant = (by_status ? 1 : 0) | (by_key ? 2 : 0) | (by_value ? 4 : 0);
    /* One row past the page tells whether another page follows. 0 = no limit. */
    int64_t fetch = limit == 0 || limit > (size_t)INT32_MAX ? -1 : (int64_t)limit + 1;
    size_t cap = limit == 0 || limit > 1024 ? 16 : limit + 1;
    out->items = calloc(cap, sizeof *out->items);
    if (!out->items) {
        set_error("listing jobs: out of memory");
        return STORE_ERROR;
    }

    conn *c = s->reader;
    lock(c);
    store_rc r = STORE_OK;
    sqlite3_stmt *st = stmt(c, (enum stmt_id)(ST_LIST0 + variant));
    if (!st) {
        r = STORE_ERROR;
        goto out;
    }
    int rc = sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":before"),
                                before_seq > 0 ? before_seq : INT64_MAX);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":limit"), fetch);
    if (rc == SQLITE_OK && by_status)
        rc = bind_named_text(st, ":status", job_status_name(f->status));
    if (rc == SQLITE_OK && by_key)
        rc = bind_named_text(st, ":key", f->label_key);
    if (rc == SQLITE_OK && by_value)
        rc = bind_named_text(st, ":value", f->label_value);
    if (rc != SQLITE_OK) {
        r = db_error(c, "listing jobs: binding");
        goto out;
    }
    bool more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (limit && out->count == limit) {
            more = true;
            break;
        }
        if (out->count == cap) {
            job *p = realloc(out->items, cap * 2 * sizeof *p);
            if (!p) {
                set_error("listing jobs: out of memory");
                r = STORE_ERROR;
                goto out;
            }
            out->items = p;
            cap *= 2;
        }
        job_init(&out->items[out->count]);
        if ((r = read_job(c, st, &out->items[out->count], STORE_LIST_RESULT_MAX)) != STORE_OK)
            goto out;
        out->count++;
    }
    if (!more && rc != SQLITE_DONE) {
        r = db_error(c, "listing jobs");
        goto out;
    }
    if (more)
        out->next_seq = out->items[out->count - 1].seq;
out:
    done(st);
    unlock(c);
    if (r != STORE_OK)
        job_list_free(out);
    return r;
}

/* One attempt at store_delete_finished_before, in one transaction. Caller holds c->mu. */
static int64_t delete_before_locked(conn *c, int64_t cutoff_ms, store_rc *r)
{
    int64_t n = -1;
    if ((*r = begin_write(c)) != STORE_OK)
        return -1;
    enum stmt_id steps[] = {ST_DELETE_OLD_OUTPUT, ST_DELETE_OLD_JOBS};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st = stmt(c, steps[i]);
        if (!st) {
            *r = STORE_ERROR;
            goto fail;
        }
        int rc = sqlite3_bind_int64(st, 1, cutoff_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            *r = db_error(c, "deleting old jobs");
            done(st);
            goto fail;
        }
        n = sqlite3_changes(c->db);
        done(st);
    }
    if ((*r = commit(c)) != STORE_OK)
        n = -1;
    return n;
fail:
    rollback(c);
    return -1;
}

int64_t store_delete_finished_before(store *s, int64_t cutoff_ms)
{
    conn *c = &s->writer;
    lock(c);
    store_rc r;
    fast_delete(c, true);
    int64_t n = delete_before_locked(c, cutoff_ms, &r);
    if (r == STORE_NO_SPACE && use_reserve(s))
        n = delete_before_locked(c, cutoff_ms, &r);
    fast_delete(c, false);
    unlock(c);
    return n;
}

/* ---- bounded reads: results and output windows ------------------------------------ */

/* Reads [offset, offset + max) of the result of the job at rowid seq into a malloc'd,
 * NUL-terminated buffer, and the result's whole size. Blob I/O reads only the pages that
 * hold those bytes; a column read would load the whole value (up to max_output_bytes).
 * Caller holds c->mu, inside a transaction or a statement that read the row. */
static store_rc read_result_range(conn *c, int64_t seq, uint64_t offset, size_t max,
                                  char **data, size_t *len, uint64_t *total)
{
    *data = NULL;
    *len = 0;
    sqlite3_blob *b = NULL;
    if (sqlite3_blob_open(c->db, "main", "jobs", "result_json", seq, 0, &b) != SQLITE_OK) {
        store_rc r = db_error(c, "reading a result");
        sqlite3_blob_close(b);
        return r;
    }
    uint64_t size = (uint64_t)sqlite3_blob_bytes(b);
    size_t n = offset >= size ? 0 : size - offset < max ? (size_t)(size - offset) : max;
    char *p = malloc(n + 1);
    store_rc r = STORE_OK;
    if (!p) {
        set_error("reading a result: out of memory");
        r = STORE_ERROR;
    } else if (n > 0 && sqlite3_blob_read(b, p, (int)n, (int)offset) != SQLITE_OK) {
        r = db_error(c, "reading a result");
        free(p);
    } else {
        p[n] = '\0';
        *data = p;
        *len = n;
        *total = size;
    }
    sqlite3_blob_close(b);
    return r;
}

static store_rc read_result_prefix(conn *c, job *j, size_t max)
{
    size_t n;
    return read_result_range(c, j->seq, 0, max, &j->result_json, &n, &j->result_bytes);
}

store_rc store_read_result(store *s, const char *id, uint64_t offset, size_t max, char **data,
                           size_t *len, uint64_t *total)
{
    *data = NULL;
    *len = 0;
    *total = 0;
    if (offset > INT32_MAX || max > INT32_MAX) {
        set_error("reading a result: range beyond what SQLite holds in one value");
        return STORE_ERROR;
    }
    conn *c = s->reader;
    lock(c);
    store_rc r;
    if (exec(c, "BEGIN") != SQLITE_OK) {
        r = db_error(c, "BEGIN");
        goto out;
    }
    sqlite3_stmt *st = stmt(c, ST_RESULT_OF);
    if (!st) {
        r = STORE_ERROR;
        rollback(c);
        goto out;
    }
    int rc = bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    const char *type = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 1) : NULL;
    bool has_result = type && strcmp(type, "null") != 0;
    r = rc == SQLITE_ROW ? STORE_OK : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                                         : db_error(c, "reading a result");
    done(st);
    /* The transaction keeps the row as it was while its blob is read. */
    if (r == STORE_OK && has_result)
        r = read_result_range(c, seq, offset, max, data, len, total);
    rollback(c);
    if (r == STORE_OK && !*data && !(*data = calloc(1, 1))) {
        set_error("reading a result: out of memory");
        r = STORE_ERROR;
    }
out:
    unlock(c);
    return r;
}

store_rc store_output_size(store *s, const char *id, int stream, uint64_t *total)
{
    *total = 0;
    store_rc r = check_stream(stream);
    if (r != STORE_OK)
        return r;
    conn *c = s->reader;
    job_status cur;
    lock(c);
    if (exec(c, "BEGIN") != SQLITE_OK) {
        r = db_error(c, "BEGIN");
        goto out;
    }
    r = status_of(c, id, &cur);
    sqlite3_stmt *st = r == STORE_OK ? stmt(c, ST_OUTPUT_END) : NULL;
    if (r == STORE_OK && !st)
        r = STORE_ERROR;
    if (st) {
        int rc = bind_text(st, 1, id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 2, stream);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *total = col_u64(st, 0);
        else if (rc != SQLITE_DONE)
            r = db_error(c, "measuring output");
        done(st);
    }
    rollback(c);
out:
    unlock(c);
    return r;
}
