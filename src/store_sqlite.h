/* The SQLite store's insides, shared by its files and by nothing else: the store's state
 * (two connections to one file), the statement cache, the one write-transaction helper and
 * its read counterpart, the columns of a job row (JOB_COLUMNS), and what each file of the
 * store lends the others. src/store.c reaches the store only through store_sqlite_ops. */
#ifndef EXECUTORD_STORE_SQLITE_H
#define EXECUTORD_STORE_SQLITE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "src/job.h"
#include "src/reserve.h"
#include "src/store_backend.h"
#include "src/store_columns.h"

extern const store_ops store_sqlite_ops;

/* ---- statements --------------------------------------------------------------------
 * Every statement, prepared once per connection on first use. Its SQL sits beside the code
 * that runs it, as SQL_<NAME>; SQ_STMT(c, NAME) gives the cached statement. */
enum sq_stmt_id {
    SQ_SCHEMA_VERSION,     /* store_sqlite.c */
    SQ_GET_BY_ID,          /* store_sqlite_jobs.c */
    SQ_GET_BY_KEY,
    SQ_DIGEST_BY_KEY,
    SQ_COUNT_STATUS,
    SQ_INSERT_JOB,
    SQ_INSERT_LABELS,
    SQ_CLAIM,
    SQ_QUEUE_HEAD,
    SQ_FINISH,
    SQ_CANCEL,
    SQ_STATUS_OF,
    SQ_DELETE_OUTPUT,      /* jobs and eviction: SQL_DELETE_OUTPUT below */
    SQ_DELETE_JOB,
    SQ_RECOVER,
    SQ_COUNT_BY_STATUS_BACKEND,
    SQ_OUTPUT_END,         /* store_sqlite_output.c */
    SQ_OUTPUT_INSERT,
    SQ_OUTPUT_BYTES,
    SQ_OUTPUT_READ,
    SQ_RESULT_OF,
    SQ_DELETE_OLD_OUTPUT,  /* store_sqlite_space.c */
    SQ_DELETE_OLD_JOBS,
    SQ_STORAGE_USED,
    SQ_FREELIST,
    SQ_OLDEST_OUTPUTS,
    SQ_OLDEST_RESULTS,
    SQ_EVICT_OUTPUT,
    SQ_EVICT_RESULT,
    SQ_LIST0,              /* store_sqlite_list.c: SQ_LIST0 + its filter bits (8 ways) */
    SQ_STMT_COUNT = SQ_LIST0 + 8,
};

#define SQL_DELETE_OUTPUT "DELETE FROM job_output WHERE job_id = ?1"
#define FINAL_STATUSES "('succeeded', 'failed', 'timed_out', 'cancelled')"

#define SQ_STMT(c, NAME) sq_stmt((c), SQ_##NAME, SQL_##NAME)

/* ---- the store -------------------------------------------------------------------- */

typedef struct sq_conn {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *stmts[SQ_STMT_COUNT];
} sq_conn;

typedef struct sq_store {
    sq_conn writer;
    sq_conn reader_storage;
    sq_conn *reader; /* &reader_storage, or &writer for an in-memory database */
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
} sq_store;

/* store_sqlite.c: errors, statements, binding, locking. */

/* Records "what: <sqlite message>" and returns STORE_ERROR, or STORE_NO_SPACE when the
 * disk was full: the write helper then makes room (evicts, uses the reserve) and tries
 * again. */
store_rc sq_error(sq_conn *c, const char *what);
/* The cached statement, reset and unbound; NULL (error recorded) when it cannot be
 * prepared. Caller holds c->mu. */
sqlite3_stmt *sq_stmt(sq_conn *c, enum sq_stmt_id id, const char *sql);
void sq_done(sqlite3_stmt *st); /* resets and unbinds; NULL is fine */
int sq_bind_text(sqlite3_stmt *st, int i, const char *v); /* NULL binds NULL */
int sq_bind_u64(sqlite3_stmt *st, int i, uint64_t v);     /* clamped to INT64_MAX */
uint64_t sq_col_u64(sqlite3_stmt *st, int i);             /* negative reads as 0 */
void sq_lock(sq_conn *c);
void sq_unlock(sq_conn *c);
int sq_exec(sq_conn *c, const char *sql);

/* Empties the WAL after a job's env values were erased (see store_sqlite.c). Caller
 * holds the writer's mutex, outside a transaction. */
void sq_scrub_wal(sq_store *s);

/* ---- the write transaction: every write goes through sq_write -------------------- */

/* What a write that met a full store or disk (STORE_NO_SPACE) may do before its next
 * attempt. */
typedef enum sq_room {
    SQ_ROOM_NONE,      /* nothing: one attempt */
    SQ_ROOM_EVICT,     /* evict finished jobs' output and results, only when that can free
                        * the shortfall (new data: refused rather than evict in vain) */
    SQ_ROOM_ESSENTIAL, /* must commit (a job ending): whatever eviction frees, then the
                        * reserve */
    SQ_ROOM_RESERVE,   /* frees space itself (a delete, an eviction): the reserve only */
} sq_room;

typedef struct sq_write_plan {
    sq_room room;
    int attempts;      /* at most this many transactions */
    uint64_t need;     /* the bytes it adds, when an attempt does not say its shortfall */
} sq_write_plan;

/* One attempt on the writer c, inside the transaction: STORE_OK commits it, anything else
 * rolls it back. On STORE_NO_SPACE it may say what eviction would have to free in
 * *shortfall. */
typedef store_rc (*sq_write_fn)(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall);

/* Runs fn in BEGIN IMMEDIATE ... COMMIT on the writer, again after making room as the plan
 * says while it (or its COMMIT) meets a full disk or quota. Caller holds the writer's
 * mutex, outside a transaction. */
store_rc sq_write(sq_store *s, const sq_write_plan *plan, sq_write_fn fn, void *arg);

/* A read on the reader connection: under its mutex, and with snapshot in one read
 * transaction, so that several statements see the same commit. */
typedef store_rc (*sq_read_fn)(sq_conn *c, void *arg);
store_rc sq_read(sq_store *s, bool snapshot, sq_read_fn fn, void *arg);

/* ---- a job row (store_sqlite_row.c) ------------------------------------------------
 * The columns are src/store_columns.h's JOB_COLUMNS; here, how SQLite selects each form:
 * TYPEOF (only typeof(), which SQLite answers without loading a value: the result, read
 * by blob I/O up to the size the caller wants). kind: how it is read into job.member
 * (SQ_READ_<kind>, store_sqlite_row.c) and bound (SQ_BIND_<kind>, store_sqlite_jobs.c). */
#define SQ_JOB_SEL_COL(col) #col
#define SQ_JOB_SEL_HEAD(col) #col
#define SQ_JOB_SEL_REQUEST(col) #col
#define SQ_JOB_SEL_FULL(col) #col
#define SQ_JOB_SEL_TYPEOF(col) "typeof(" #col ")"
#define SQ_LIST_SEL_COL(col) #col
#define SQ_LIST_SEL_HEAD(col) #col
#define SQ_LIST_SEL_REQUEST(col) #col
#define SQ_LIST_SEL_FULL(col) "NULL"
#define SQ_LIST_SEL_TYPEOF(col) "typeof(" #col ")"
#define SQ_JOB_FIRST(col, form, kind, member) SQ_JOB_SEL_##form(col)
#define SQ_JOB_NEXT(col, form, kind, member) ", " SQ_JOB_SEL_##form(col)
#define SQ_LIST_FIRST(col, form, kind, member) SQ_LIST_SEL_##form(col)
#define SQ_LIST_NEXT(col, form, kind, member) ", " SQ_LIST_SEL_##form(col)

/* The SELECT list of a whole job, and of a job in a list (no script, no inputs). */
#define JOB_SELECT JOB_COLUMNS(SQ_JOB_FIRST, SQ_JOB_NEXT)
#define JOB_LIST_SELECT JOB_COLUMNS(SQ_LIST_FIRST, SQ_LIST_NEXT)



/* Fills *j (re-initialised first) from a row selected by JOB_SELECT or JOB_LIST_SELECT,
 * with at most result_max bytes of the result. Caller holds c->mu; the row is current. */
store_rc sq_read_job(sq_conn *c, sqlite3_stmt *st, job *j, size_t result_max);
/* Runs a statement expected to yield at most one job row (into *out when not NULL).
 * STORE_NOT_FOUND when none. Steps to the end so an UPDATE ... RETURNING completes. */
store_rc sq_step_job(sq_conn *c, sqlite3_stmt *st, job *out, const char *what);
/* Bytes [offset, offset + max) of the result of the job at rowid seq, malloc'd and
 * NUL-terminated, and the result's whole size. Caller holds c->mu, inside a transaction
 * or a statement that read the row. */
store_rc sq_read_result_range(sq_conn *c, int64_t seq, uint64_t offset, size_t max,
                              char **data, size_t *len, uint64_t *total);

/* ---- jobs (store_sqlite_jobs.c) --------------------------------------------------- */

/* The job's status: STORE_OK, STORE_NOT_FOUND, or STORE_ERROR. Caller holds c->mu. */
store_rc sq_status_of(sq_conn *c, const char *id, job_status *status);

/* ---- storage (store_sqlite_space.c) ------------------------------------------------ */

/* The room a job should find: below it the store counts as full (/readyz) and queued jobs
 * wait rather than start and fail for want of room for their output. */
#define SQ_MIN_ROOM (1u << 20)

/* Whether add more bytes may be stored: within the quota (when check_quota), and leaving
 * the disk the reserve's size free besides the reserve. STORE_OK, or STORE_NO_SPACE with
 * the reason recorded and *shortfall = what eviction would have to free. Caller holds
 * c->mu (inside a transaction or not). */
store_rc sq_admit(sq_store *s, sq_conn *c, uint64_t add, bool check_quota, uint64_t *shortfall);
/* New data was refused (STORE_NO_SPACE), or stored again (STORE_OK): said once per episode
 * in the log. Caller holds the writer's mutex. */
void sq_note_refusal(sq_store *s, store_rc r);
/* After a write failed for lack of room (want: the shortfall): evicts, then for an
 * essential write uses the reserve. True when another attempt may succeed. Caller holds
 * the writer's mutex, outside a transaction. */
bool sq_make_room(sq_store *s, uint64_t want, bool essential);
/* A write that must commit met a full disk: the reserve goes back to the filesystem. True
 * when that freed space just now. Caller holds the writer's mutex, outside a transaction. */
bool sq_use_reserve(sq_store *s);
/* Deleting a finished job's data frees its pages without zeroing them (see
 * store_sqlite_space.c). Caller holds c->mu, outside a transaction. */
void sq_fast_delete(sq_conn *c, bool fast);

/* The operations of store_sqlite_ops, by file. */
int sq_schema_version(void *self);
store_rc sq_insert_job(void *self, job *j, const char *digest, int64_t max_queued, job *existing);
store_rc sq_get_job(void *self, const char *id, job *out);
store_rc sq_claim_next_within(void *self, int64_t started_at_ms, uint64_t max_memory_mb,
                              job *out, store_queue_head *head);
store_rc sq_finish_job(void *self, const job *j);
store_rc sq_cancel_queued(void *self, const char *id, int64_t now_ms, job *out);
store_rc sq_delete_job(void *self, const char *id);
int sq_recover_running(void *self, int64_t now_ms);
int64_t sq_count_status(void *self, job_status status);
int sq_count_by_status_backend(void *self, store_status_count *out, int max);
store_rc sq_append_output(void *self, const char *id, int stream, const char *data, size_t len);
store_rc sq_read_output(void *self, const char *id, int stream, uint64_t offset, size_t max,
                        char **data, size_t *len);
store_rc sq_output_size(void *self, const char *id, int stream, uint64_t *total);
store_rc sq_read_result(void *self, const char *id, uint64_t offset, size_t max, char **data,
                        size_t *len, uint64_t *total);
store_rc sq_list_jobs(void *self, const store_filter *f, int64_t before_seq, size_t limit,
                      job_list *out);
int64_t sq_delete_finished_before(void *self, int64_t cutoff_ms);
int sq_set_storage(void *self, const store_storage_options *o, char *err, size_t errlen);
store_rc sq_make_room_op(void *self, uint64_t bytes);
int sq_storage_state(void *self, store_storage *out);

#endif
