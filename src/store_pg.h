/* The PostgreSQL store (libpq), shared by several executord replicas: its state, its
 * connection pool and transactions (store_pg.c), the job rows (store_pg_row.c), jobs
 * (store_pg_jobs.c), output and listing (store_pg_output.c), the quota and retention
 * (store_pg_space.c), and the replicas' leases, events, cancels and roles
 * (store_pg_replica.c). Internal to those files. */
#ifndef EXECUTORD_STORE_PG_H
#define EXECUTORD_STORE_PG_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "src/migrations.h"
#include "src/store_backend.h"
#include "src/store_columns.h" /* JOB_COLUMNS, JOB_COL_*: the one list of a job's columns */

extern const store_ops store_pg_ops;       /* postgresql://... */
extern const store_ops store_postgres_ops; /* postgres://..., the same store */

/* migrations_pg/NNN_*.sql, embedded (CMakeLists.txt renames the generated table). */
extern const struct migration pg_migrations[];
extern const int pg_migrations_count;

/* The advisory lock keys (pg_advisory_xact_lock): constants every replica agrees on. */
#define PG_LOCK_MIGRATE 0x65786d31    /* "exm1": migrations */
#define PG_LOCK_INSERT 0x65786931     /* "exi1": the queue bound and idempotency keys */

#define PG_PREPARED_MAX 64

/* One pooled connection and what its last failure said. */
typedef struct pg_conn {
    PGconn *db;
    struct pg_conn *next;
    bool broken;      /* the connection failed: closed, not reused */
    bool retry;       /* the last failure was a deadlock or serialization failure */
    bool big;         /* read large values: closed after use to give its memory back */
    bool reused;      /* taken from the idle pool (it may have died there) */
    int execs;        /* statements that succeeded since it was taken */
    /* The statements prepared on this connection (named exd_<index>), by their text:
     * parsed once per connection, planned once they have a generic plan. */
    char *prepared[PG_PREPARED_MAX];
    int nprepared;
} pg_conn;

#define PG_ROLES_MAX 8
/* A connection that sent or read more than this in one statement is closed after use:
 * libpq keeps its buffers at their largest. */
#define PG_BIG_READ (1u << 20)

typedef struct pg_store {
    char *location;        /* the URL as given (it may hold a password: never logged) */
    char *password;        /* the URL's password, to withhold error texts quoting it */
    char redacted[512];    /* the URL for messages */

    pthread_mutex_t mu;    /* the pool */
    pthread_cond_t cv;
    pg_conn *idle;
    int total, cap;

    /* set_replica, before other threads */
    char replica_id[STORE_REPLICA_ID_MAX + 1];
    int64_t lease_ms;
    int64_t started_at_ms;

    uint64_t quota_bytes;  /* store_set_storage; 0 = none */
    atomic_uint_fast64_t evicted_outputs, evicted_results;

    /* wait_events: its own connection, LISTENing; one thread. */
    PGconn *listen;
    bool resync;           /* reconnected: RESYNC is owed */
    bool listened_once;

    /* hold_role: its own connection holding session advisory locks. */
    pthread_mutex_t role_mu;
    PGconn *role;
    char roles[PG_ROLES_MAX][64];
    int nroles;
} pg_store;

/* ---- parameters: text (or binary bytea), built in order as $1, $2, ... ------------- */

#define PG_PARAMS_MAX 40

typedef struct pg_params {
    int n;
    const char *v[PG_PARAMS_MAX];
    int len[PG_PARAMS_MAX];
    int fmt[PG_PARAMS_MAX];
    char num[PG_PARAMS_MAX][32];
    char *owned[PG_PARAMS_MAX];
    bool failed;           /* too many, or out of memory */
} pg_params;

void pp_init(pg_params *p);
void pp_free(pg_params *p);
/* Text (NULL binds NULL). PostgreSQL text must be valid UTF-8: text that is not (an error
 * message or traceback with odd bytes) is bound with each bad byte replaced by U+FFFD, so
 * that recording it never fails. */
void pp_text(pg_params *p, const char *v);
void pp_i64(pg_params *p, int64_t v);
void pp_u64(pg_params *p, uint64_t v); /* clamped to INT64_MAX */
void pp_bool(pg_params *p, bool v);
void pp_f64(pg_params *p, double v);
void pp_bytes(pg_params *p, const void *data, size_t len); /* bytea, binary */

/* ---- connections and transactions (store_pg.c) ------------------------------------ */

/* A new connection to the store's database (connect_timeout, keepalives, a statement
 * timeout, UTF-8); NULL with the outage recorded. */
PGconn *pg_connect(pg_store *s);
/* The error of a failed call on c (res may be NULL) as "what: message": an outage (the
 * server or the connection failed; c->broken set) or a plain error. Returns STORE_ERROR. */
store_rc pg_fail(pg_store *s, pg_conn *c, PGresult *res, const char *what);
/* Runs sql with p (NULL: none); the result when it succeeded (commands or rows), else
 * NULL with the error recorded. Caller PQclears. */
PGresult *pg_exec(pg_store *s, pg_conn *c, const char *sql, const pg_params *p,
                  const char *what);
/* pg_exec with every column in binary (result_format 1): bytea comes as its bytes, not
 * twice as many hex digits (output windows). */
PGresult *pg_exec_as(pg_store *s, pg_conn *c, const char *sql, const pg_params *p,
                     const char *what, int result_format);
/* pg_exec for a statement whose rows are not wanted. */
store_rc pg_cmd(pg_store *s, pg_conn *c, const char *sql, const pg_params *p, const char *what);

pg_conn *pg_acquire(pg_store *s);         /* NULL: cannot connect (outage recorded) */
void pg_release(pg_store *s, pg_conn *c);

/* One unit of work on a pooled connection. */
typedef store_rc (*pg_fn)(pg_store *s, pg_conn *c, void *arg);
/* fn inside BEGIN ... COMMIT (committed when it says STORE_OK, else rolled back); again,
 * a few times, after a deadlock or serialization failure. NOTIFYs sent in fn are
 * delivered only when it commits. */
store_rc pg_tx(pg_store *s, pg_fn fn, void *arg);
/* pg_tx holding the transaction-level advisory lock lock_key from its start (BEGIN and
 * the lock in one round trip). */
store_rc pg_tx_locked(pg_store *s, int lock_key, pg_fn fn, void *arg);
/* pg_exec of the last statement of a pg_tx transaction, and its COMMIT, sent together
 * (libpq's pipeline mode: one round trip). The result when both succeeded; else NULL
 * with the error recorded, the transaction failed (pg_tx rolls it back). */
PGresult *pg_exec_commit(pg_store *s, pg_conn *c, const char *sql, const pg_params *p,
                         const char *what);
/* fn statement by statement (autocommit): a write that is one statement. */
store_rc pg_once(pg_store *s, pg_fn fn, void *arg);
/* fn in one REPEATABLE READ READ ONLY transaction when snapshot (several statements see
 * one state), else statement by statement. */
store_rc pg_read(pg_store *s, bool snapshot, pg_fn fn, void *arg);

/* Text of a column (NULL when SQL NULL) and numbers read from it. */
const char *pg_val(const PGresult *r, int row, int col);
int64_t pg_i64(const PGresult *r, int row, int col);   /* NULL reads as 0 */
uint64_t pg_u64(const PGresult *r, int row, int col);  /* negative reads as 0 */
bool pg_bool(const PGresult *r, int row, int col);

/* ---- job rows (store_pg_row.c) ------------------------------------------------------ */

/* SELECT lists: a whole job (its first STORE_RESULT_INLINE_MAX result bytes) and a job in
 * a list (no script, no inputs, STORE_LIST_RESULT_MAX result bytes), from JOB_COLUMNS.
 * The result (form TYPEOF) is selected as its size in bytes; its first bytes come in one
 * more column after the list: left() takes at most n characters, which hold at least n
 * bytes when the text has them, so only that prefix is converted. */
#define PG_SEL_COL(col) #col
#define PG_SEL_HEAD(col) #col
#define PG_SEL_REQUEST(col) #col
#define PG_SEL_FULL(col) #col
#define PG_SEL_TYPEOF(col) "octet_length(" #col ")"
#define PG_LSEL_COL(col) #col
#define PG_LSEL_HEAD(col) #col
#define PG_LSEL_REQUEST(col) #col
#define PG_LSEL_FULL(col) "NULL"
#define PG_LSEL_TYPEOF(col) "octet_length(" #col ")"
#define PG_FIRST(col, form, kind, member) PG_SEL_##form(col)
#define PG_NEXT(col, form, kind, member) ", " PG_SEL_##form(col)
#define PG_LFIRST(col, form, kind, member) PG_LSEL_##form(col)
#define PG_LNEXT(col, form, kind, member) ", " PG_LSEL_##form(col)
#define PG_RESULT_PREFIX(n)                                                                 \
    ", substring(convert_to(left(result_json, " #n "), 'UTF8') FROM 1 FOR " #n ")"
#define PG_JOB_SELECT JOB_COLUMNS(PG_FIRST, PG_NEXT) PG_RESULT_PREFIX(65536)
#define PG_LIST_SELECT JOB_COLUMNS(PG_LFIRST, PG_LNEXT) PG_RESULT_PREFIX(256)
/* Fills *j (re-initialised) from row of r, selected by one of those lists. */
store_rc pg_read_job(const PGresult *r, int row, job *j);
/* Runs sql expected to yield at most one job row (into *out when not NULL).
 * STORE_NOT_FOUND when none. */
store_rc pg_one_job(pg_store *s, pg_conn *c, const char *sql, const pg_params *p, job *out,
                    const char *what);

/* ---- jobs (store_pg_jobs.c) -------------------------------------------------------- */

#define PG_FINAL_STATUSES "('succeeded', 'failed', 'timed_out', 'cancelled')"
/* What a job ending ExecutorLost gets (recover, heartbeat expiry), $1 = now. */
#define PG_LOST_SET                                                                         \
    "status = 'failed', finished_at_ms = $1, error_type = 'ExecutorLost',"                  \
    " error_message = 'executord stopped while the job was running',"                       \
    " error_traceback = NULL, result_json = NULL, running_on = NULL,"                       \
    " cancel_requested = false, env_json = executord_env_erased(env_json)"

store_rc pg_status_of(pg_store *s, pg_conn *c, const char *id, job_status *status);

/* ---- storage (store_pg_space.c) ---------------------------------------------------- */

/* Within the quota with add more bytes: STORE_OK, or STORE_NO_SPACE (reason recorded)
 * with *shortfall. */
store_rc pg_admit(pg_store *s, pg_conn *c, uint64_t add, uint64_t *shortfall);
/* pg_admit's decision from a usage row already read (used, evictable bytes). */
store_rc pg_admit_usage(pg_store *s, uint64_t used, uint64_t evictable, uint64_t add,
                        uint64_t *shortfall);
/* Evicts the output, then the results, of the oldest finished jobs until want bytes are
 * freed (each batch its own transaction); true when anything was freed. */
bool pg_evict(pg_store *s, uint64_t want);

/* The operations, by file. */
int pg_schema_version(void *self);
store_rc pg_insert_job(void *self, job *j, const char *digest, int64_t max_queued, job *existing);
store_rc pg_get_job(void *self, const char *id, job *out);
store_rc pg_claim_next_within(void *self, int64_t started_at_ms, uint64_t max_memory_mb,
                              job *out, store_queue_head *head);
store_rc pg_finish_job(void *self, const job *j);
store_rc pg_cancel_queued(void *self, const char *id, int64_t now_ms, job *out);
store_rc pg_delete_job(void *self, const char *id);
int pg_recover_running(void *self, int64_t now_ms);
int64_t pg_count_status(void *self, job_status status);
int pg_count_by_status_backend(void *self, store_status_count *out, int max);
store_rc pg_append_output(void *self, const char *id, int stream, const char *data, size_t len);
store_rc pg_read_output(void *self, const char *id, int stream, uint64_t offset, size_t max,
                        char **data, size_t *len);
store_rc pg_output_size(void *self, const char *id, int stream, uint64_t *total);
store_rc pg_read_result(void *self, const char *id, uint64_t offset, size_t max, char **data,
                        size_t *len, uint64_t *total);
store_rc pg_list_jobs(void *self, const store_filter *f, int64_t before_seq, size_t limit,
                      job_list *out);
int64_t pg_delete_finished_before(void *self, int64_t cutoff_ms);
int pg_set_storage(void *self, const store_storage_options *o, char *err, size_t errlen);
store_rc pg_make_room(void *self, uint64_t bytes);
int pg_storage_state(void *self, store_storage *out);
int pg_set_replica(void *self, const char *replica_id, int64_t lease_ms, char *err,
                   size_t errlen);
int pg_wait_events(void *self, int timeout_ms, store_event *out, int max);
int pg_heartbeat(void *self, int64_t now_ms, bool end_expired);
store_rc pg_request_cancel(void *self, const char *id);
int pg_pending_cancels(void *self, char (*ids)[JOB_ID_LEN + 1], int max);
bool pg_hold_role(void *self, const char *role);
void pg_replica_close(pg_store *s);

#endif
