/* The SQLite store's lifecycle and transactions (WAL; synchronous=NORMAL or FULL, by
 * --durability: see "durability" below). Two connections to one file: a writer for every change and a reader for
 * look-ups, each used by one thread at a time under its own mutex, so reads never wait
 * behind an fsync. Every write goes through sq_write (BEGIN IMMEDIATE, COMMIT or ROLLBACK,
 * and a full disk's retries in one place), every read through sq_read. Also what the files
 * keep of secrets: owner-only files, freed space zeroed, the WAL emptied once a job that
 * carried env values has ended. */
#include "src/store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/log.h"
#include "src/migrate.h"
#include "src/migrations.h"

#define BUSY_TIMEOUT_MS 5000

/* ---- errors and statements ---------------------------------------------------------- */

/* The last failure of c was for lack of space: SQLITE_FULL, or an I/O error whose
 * system call said ENOSPC or EDQUOT (growing the WAL or its index). */
static bool no_space(sq_conn *c)
{
    int rc = sqlite3_extended_errcode(c->db);
    if ((rc & 0xff) == SQLITE_FULL)
        return true;
    int e = sqlite3_system_errno(c->db);
    return (rc & 0xff) == SQLITE_IOERR && (e == ENOSPC || e == EDQUOT);
}

store_rc sq_error(sq_conn *c, const char *what)
{
    store_set_error("%s: %s (sqlite error %d)", what, sqlite3_errmsg(c->db),
                    sqlite3_extended_errcode(c->db));
    return no_space(c) ? STORE_NO_SPACE : STORE_ERROR;
}

sqlite3_stmt *sq_stmt(sq_conn *c, enum sq_stmt_id id, const char *sql)
{
    if (!c->stmts[id] &&
        sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL) !=
            SQLITE_OK) {
        sq_error(c, "preparing a statement");
        c->stmts[id] = NULL;
        return NULL;
    }
    return c->stmts[id];
}

void sq_done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

int sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int sq_bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    return sqlite3_bind_int64(st, i, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

uint64_t sq_col_u64(sqlite3_stmt *st, int i)
{
    int64_t v = sqlite3_column_int64(st, i);
    return v < 0 ? 0 : (uint64_t)v;
}

void sq_lock(sq_conn *c) { pthread_mutex_lock(&c->mu); }
void sq_unlock(sq_conn *c) { pthread_mutex_unlock(&c->mu); }

int sq_exec(sq_conn *c, const char *sql) { return sqlite3_exec(c->db, sql, NULL, NULL, NULL); }

/* ---- transactions --------------------------------------------------------------------- */

static void rollback(sq_conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        sq_exec(c, "ROLLBACK");
}

/* One attempt: fn inside BEGIN IMMEDIATE, committed when it says STORE_OK. */
static store_rc write_once(sq_store *s, sq_write_fn fn, void *arg, uint64_t *shortfall)
{
    sq_conn *c = &s->writer;
    if (sq_exec(c, "BEGIN IMMEDIATE") != SQLITE_OK)
        return sq_error(c, "BEGIN");
    store_rc r = fn(s, c, arg, shortfall);
    if (r == STORE_OK) {
        if (sq_exec(c, "COMMIT") == SQLITE_OK)
            return STORE_OK;
        r = sq_error(c, "COMMIT");
    }
    rollback(c);
    return r;
}

/* Before another attempt of a write that met a full quota or disk: true when it may now
 * fit. */
static bool room_for_retry(sq_store *s, const sq_write_plan *plan, uint64_t shortfall)
{
    uint64_t want = shortfall ? shortfall : plan->need;
    switch (plan->room) {
    case SQ_ROOM_EVICT:
        return want > 0 && sq_make_room(s, want, false);
    case SQ_ROOM_ESSENTIAL:
        return sq_make_room(s, want, true);
    case SQ_ROOM_RESERVE:
        return sq_use_reserve(s);
    case SQ_ROOM_NONE:
        break;
    }
    return false;
}

store_rc sq_write(sq_store *s, const sq_write_plan *plan, sq_write_fn fn, void *arg)
{
    store_rc r;
    for (int attempt = 1;; attempt++) {
        uint64_t shortfall = 0;
        r = write_once(s, fn, arg, &shortfall);
        if (r != STORE_NO_SPACE || attempt >= plan->attempts ||
            !room_for_retry(s, plan, shortfall))
            return r;
    }
}

store_rc sq_read(sq_store *s, bool snapshot, sq_read_fn fn, void *arg)
{
    sq_conn *c = s->reader;
    sq_lock(c);
    store_rc r;
    if (snapshot && sq_exec(c, "BEGIN") != SQLITE_OK) {
        r = sq_error(c, "BEGIN");
    } else {
        r = fn(c, arg);
        if (snapshot)
            rollback(c); /* read-only: ending it either way is the same */
    }
    sq_unlock(c);
    return r;
}

/* ---- secrets at rest ------------------------------------------------------------------ */

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
    char hex[STORE_SHA256_HEX_LEN + 1];
    store_sha256_hex(t, (size_t)sqlite3_value_bytes(argv[0]), hex);
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
 * mutex (or is opening the store), outside a transaction. */
void sq_scrub_wal(sq_store *s)
{
    sq_conn *c = &s->writer;
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
static int vacuum_if_pending(sq_conn *c, char *err, size_t errlen)
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
    if (sq_exec(c, "VACUUM") != SQLITE_OK) {
        snprintf(err, errlen, "VACUUM after migration 003 (it needs free space about the size of"
                 " the database): %s", sqlite3_errmsg(c->db));
        return -1;
    }
    /* The WAL written before the VACUUM may hold old pages: the store empties it next. */
    if (sq_exec(c, "DROP TABLE vacuum_pending") != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "scrubbing the database after migration 003: %s", sqlite3_errmsg(c->db));
    return -1;
}

/* ---- open / close -------------------------------------------------------------------- */

/* Runs the connection's pragmas. WAL: readers see the last commit while a writer works.
 * NORMAL: STORE_DURABILITY_PROCESS_CRASH, the default (sq_set_durability may raise it).
 * secure_delete: deleted content (a job's old row after an UPDATE rewrote it, freed pages)
 * is overwritten with zeros, not left in the file's free space. */
static int set_pragmas(sq_conn *c, const char *path, char *err, size_t errlen)
{
    static const char *const pragmas[] = {
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
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
    return 0;
fail:
    snprintf(err, errlen, "configuring database %s: %s", path, sqlite3_errmsg(c->db));
    return -1;
}

/* ---- durability ------------------------------------------------------------------------
 * In WAL mode a commit appends its pages to the -wal file with write(2); `synchronous` only
 * decides whether the commit also fsyncs that file before it returns (FULL) or not
 * (NORMAL). Either way a returned commit is in the kernel's page cache, which outlives
 * executord: after a kill -9 the next open finds it in the WAL. Unsynced commits can be lost
 * only with the kernel (a power cut, a kernel crash), and then only the last ones, whole and
 * in order: the WAL is a log, never a torn page of the database. What each commit needs:
 *  - the insert that a 201/202 acknowledges: the client holds the job's id;
 *  - the claim: once a script may have started, a restart must find the job running (and
 *    end it failed/ExecutorLost), never queued again to run twice;
 *  - the finish: a waiter was told the outcome, and it erases the env values;
 *  - output chunks, cancel, delete, retention and eviction: what the API showed or answered.
 * Every one of them is something a caller acted on, and none is safe to lose in one case and
 * not in the other, so one level serves all: NORMAL (process-crash) keeps all of them across
 * a crash of the process, which is what the kill -9 tests check; FULL (power-loss) keeps all
 * of them across a power cut. (Only output chunks could go unsynced under FULL, since the
 * finish's fsync of the WAL covers every frame before it; switching the level per commit
 * would cost a statement per commit for a saving only while a job prints: not done.)
 * Checkpoints fsync the WAL before and the database after at both levels, so the TRUNCATE
 * checkpoint that follows an erasure of env values (sq_scrub_wal) makes that erasure durable
 * in either mode. The reader connection never commits; it gets the same level anyway, so a
 * checkpoint it might run when it closes last follows the same rule. */
static int set_synchronous(sq_conn *c, store_durability d)
{
    sq_lock(c);
    int rc = sq_exec(c, d == STORE_DURABILITY_POWER_LOSS ? "PRAGMA synchronous=FULL"
                                                         : "PRAGMA synchronous=NORMAL");
    sq_unlock(c);
    return rc;
}

static int sq_set_durability(void *self, store_durability d, char *err, size_t errlen)
{
    sq_store *s = self;
    sq_conn *conns[] = {&s->writer, s->reader};
    for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
        if (i > 0 && conns[i] == conns[0])
            break; /* an in-memory database: one connection */
        if (set_synchronous(conns[i], d) != SQLITE_OK) {
            snprintf(err, errlen, "setting the durability: %s", sqlite3_errmsg(conns[i]->db));
            return -1;
        }
    }
    return 0;
}

static int conn_open(sq_conn *c, const char *path, bool writer, char *err, size_t errlen)
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
    if (set_pragmas(c, path, err, errlen) != 0)
        return -1;
    if (!writer && sq_exec(c, "PRAGMA query_only=ON") != SQLITE_OK)
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

static void conn_close(sq_conn *c)
{
    for (int i = 0; i < SQ_STMT_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    if (c->db)
        sqlite3_close_v2(c->db);
    c->db = NULL;
    pthread_mutex_destroy(&c->mu);
}

static void sq_close(void *self)
{
    sq_store *s = self;
    if (!s)
        return;
    if (s->reader && s->reader != &s->writer)
        conn_close(s->reader);
    conn_close(&s->writer);
    reserve_close(s->rsv);
    free(s);
}

/* Locations with a scheme belong to other stores: "postgresql://..." must never become a
 * file of that name in the working directory. */
static bool is_url(const char *location)
{
    return strstr(location, "://") != NULL;
}

static void *sq_open(const char *path, char *err, size_t errlen)
{
    if (is_url(path)) {
        snprintf(err, errlen, "store location %s is a URL: the SQLite store takes a file path "
                 "(or :memory:), and no store for that scheme is built in", path);
        return NULL;
    }
    sq_store *s = calloc(1, sizeof *s);
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
        sq_close(s);
        return NULL;
    }
    /* Migrate before the reader connects, so it sees the final schema. */
    if (migrate_apply(s->writer.db, migrations, migrations_count, err, errlen) < 0 ||
        vacuum_if_pending(&s->writer, err, errlen) != 0) {
        sq_close(s);
        return NULL;
    }
    sq_scrub_wal(s);
    if (memory) {
        s->reader = &s->writer;
    } else {
        s->reader = &s->reader_storage;
        if (conn_open(&s->reader_storage, path, false, err, errlen) != 0) {
            sq_close(s);
            return NULL;
        }
    }
    return s;
}

#define SQL_SCHEMA_VERSION "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"

static store_rc read_schema_version(sq_conn *c, void *arg)
{
    int *v = arg;
    sqlite3_stmt *st = SQ_STMT(c, SCHEMA_VERSION);
    if (!st)
        return STORE_ERROR;
    store_rc r = STORE_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    else
        r = sq_error(c, "reading schema version");
    sq_done(st);
    return r;
}

int sq_schema_version(void *self)
{
    int v = -1;
    return sq_read(self, false, read_schema_version, &v) == STORE_OK ? v : -1;
}

const store_ops store_sqlite_ops = {
    .name = "SQLite",
    .scheme = NULL,
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .set_durability = sq_set_durability,
    .insert_job = sq_insert_job,
    .get_job = sq_get_job,
    .claim_next_within = sq_claim_next_within,
    .finish_job = sq_finish_job,
    .cancel_queued = sq_cancel_queued,
    .delete_job = sq_delete_job,
    .recover_running = sq_recover_running,
    .count_status = sq_count_status,
    .count_by_status_backend = sq_count_by_status_backend,
    .append_output = sq_append_output,
    .read_output = sq_read_output,
    .output_size = sq_output_size,
    .read_result = sq_read_result,
    .list_jobs = sq_list_jobs,
    .delete_finished_before = sq_delete_finished_before,
    .set_storage = sq_set_storage,
    .make_room = sq_make_room_op,
    .storage_state = sq_storage_state,
};
