/* The durable job store's API, the same whichever store is behind it (src/store.c picks
 * it by location; the interface is src/store_backend.h; SQLite, in WAL mode, is
 * src/store_sqlite*.c): jobs and their output chunks; a job's env_vars values only while it
 * may run (every call that makes it final erases them, names kept, and scrubs them from the
 * files); the storage quota and what it evicts, and the disk space the store keeps free.
 * Thread-safe. */
#ifndef EXECUTORD_STORE_H
#define EXECUTORD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/job.h"

typedef struct store store;

typedef enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND,     /* no such job */
    STORE_CONFLICT,      /* wrong state for the operation, or idempotency key reused with another body */
    STORE_EXISTS,        /* idempotency key already used with the same body: *out is that job */
    STORE_FULL,          /* the queue is at its bound */
    STORE_ERROR,         /* SQLite failed; see store_last_error */
    STORE_NO_SPACE,      /* the storage quota or the disk is full even after evicting:
                          * nothing was written (store_last_error says which) */
} store_rc;

/* Opens (creating if needed) the database file, applies pending migrations in order.
 * Refuses (NULL, message in err) a database whose schema is newer than this binary, and a
 * location with a scheme ("...://...") that no built-in store takes. */
store *store_open(const char *path, char *err, size_t errlen);
void store_close(store *s);

/* What a write the store has returned keeps across a crash (--durability, docs/storage.md).
 * Either way a returned write is in the operating system's hands before the call returns,
 * so a crash of executord itself (kill -9, the OOM killer, a segfault) loses none. */
typedef enum store_durability {
    /* The default: not fsynced per commit. A power cut or a kernel crash may roll back the
     * last writes (never half of one: the database stays consistent). */
    STORE_DURABILITY_PROCESS_CRASH = 0,
    /* Every commit is fsynced before it returns: a returned write survives a power cut. */
    STORE_DURABILITY_POWER_LOSS,
} store_durability;

/* Once, after store_open and before any other thread uses the store; a store opens with
 * STORE_DURABILITY_PROCESS_CRASH. -1 with err when the store cannot apply it. A shared
 * store's durability is its server's (PostgreSQL: fsync, synchronous_commit): there it
 * does nothing and returns 0. */
int store_set_durability(store *s, store_durability d, char *err, size_t errlen);
/* "process-crash" or "power-loss" into *out: 0; -1 for anything else. */
int store_durability_parse(const char *name, store_durability *out);
const char *store_last_error(store *s);   /* thread-local copy of the last error text */
/* The last STORE_ERROR of this thread was an outage of a shared store's server or of the
 * connection to it (it may pass: retry later), not a failure of the request. */
bool store_error_is_outage(void);
int store_schema_version(store *s);      /* highest applied migration */
int store_ping(store *s, char *err, size_t errlen); /* 0 when a trivial query works */

/* Inserts a queued job (j->id, created_at_ms, request fields set by the caller; j->seq is
 * filled in). When j->idempotency_key is set and already used: STORE_EXISTS with the
 * existing job in *existing if the SHA-256 of j->request_json is the one stored with it,
 * else STORE_CONFLICT. Only that digest is stored, never the request.
 * STORE_FULL when max_queued > 0 and that many jobs are already queued. STORE_NO_SPACE
 * when its script and inputs do not fit (see the storage section below). */
store_rc store_insert_job(store *s, job *j, int64_t max_queued, job *existing);

/* A job read back carries at most this much of its result in result_json, and its whole
 * size in result_bytes; store_read_result reads the rest. */
#define STORE_RESULT_INLINE_MAX (64u << 10)
store_rc store_get_job(store *s, const char *id, job *out);

/* Atomically takes the oldest queued job, marks it running with started_at_ms.
 * STORE_NO_SPACE, leaving every job queued, while the disk has no room for what a job
 * writes (store_set_storage). */
store_rc store_claim_next(store *s, int64_t started_at_ms, job *out);

/* The queue's oldest job as store_claim_next_within found it when it did not fit. */
typedef struct store_queue_head {
    char id[JOB_ID_LEN + 1];
    uint64_t memory_mb;
} store_queue_head;

/* store_claim_next, but only when the oldest queued job's limits.memory_mb is at most
 * max_memory_mb; never a younger job in its place. STORE_CONFLICT when it asks for more
 * (its id and memory_mb in *head, when head is not NULL); STORE_NOT_FOUND when the queue
 * is empty. */
store_rc store_claim_next_within(store *s, int64_t started_at_ms, uint64_t max_memory_mb, job *out,
                                 store_queue_head *head);

/* Records the final state (status, finished_at_ms and outcome fields of j) and erases the
 * job's env values. Only a running job can be finished; else STORE_CONFLICT.
 * STORE_NO_SPACE when its result does not fit even after evicting: the caller records the
 * job again without it. A job without a result is recorded on a full disk too (the
 * reserve). */
store_rc store_finish_job(store *s, const job *j);

/* queued -> cancelled (finished now, env values erased). STORE_CONFLICT when the job is
 * not queued. */
store_rc store_cancel_queued(store *s, const char *id, int64_t now_ms, job *out);

/* Deletes a finished job and its output. STORE_CONFLICT when not finished. Works on a
 * full disk (the reserve); STORE_NO_SPACE only when even that is not enough. */
store_rc store_delete_job(store *s, const char *id);

/* At start-up: every job left running by a dead instance ends failed/ExecutorLost, env
 * values erased. Returns how many, or -1. */
int store_recover_running(store *s, int64_t now_ms);

int64_t store_count_status(store *s, job_status st); /* -1 on error */

/* One row of store_count_by_status_backend. */
typedef struct store_status_count {
    job_status status;
    char backend[16];
    int64_t count;
} store_status_count;

/* How many jobs there are per (status, backend): at most max rows into out. Returns the
 * number of rows, or -1 (see store_last_error). One scan of a covering index, for /metrics. */
int store_count_by_status_backend(store *s, store_status_count *out, int max);

/* Output: chunks appended in order per stream (1 = stdout, 2 = stderr). STORE_NO_SPACE
 * when the chunk does not fit even after evicting: nothing of it was stored. */
store_rc store_append_output(store *s, const char *id, int stream, const char *data, size_t len);
/* The bytes of one stream from byte `offset`, at most `max` bytes (0 = all), malloc'd
 * into *data / *len (NUL-terminated for convenience). */
store_rc store_read_output(store *s, const char *id, int stream, uint64_t offset, size_t max,
                           char **data, size_t *len);

/* The size of a stream so far (what a read from 0 would return), read from the last
 * chunk's end without reading any output. */
store_rc store_output_size(store *s, const char *id, int stream, uint64_t *total);
/* Bytes [offset, offset + max) of a job's result JSON text (fewer at its end; none when the
 * job has no result), malloc'd and NUL-terminated, and the text's whole size in *total.
 * Reads only those bytes from the database. */
store_rc store_read_result(store *s, const char *id, uint64_t offset, size_t max, char **data,
                           size_t *len, uint64_t *total);

typedef struct store_filter {
    int has_status;
    job_status status;
    const char *label_key;   /* NULL = any */
    const char *label_value;
} store_filter;

typedef struct job_list {
    job *items;
    size_t count;
    int64_t next_seq;        /* 0 when there is no further page; otherwise pass as before_seq */
} job_list;

/* Newest first. before_seq = 0 starts at the newest; otherwise only jobs with seq < before_seq.
 * Items carry every field except script and inputs, and only the first
 * STORE_LIST_RESULT_MAX bytes of the result (lists stay small). No job read back carries
 * request_json. */
#define STORE_LIST_RESULT_MAX 256u
store_rc store_list_jobs(store *s, const store_filter *f, int64_t before_seq, size_t limit,
                         job_list *out);
void job_list_free(job_list *l);

/* Finished jobs with finished_at_ms < cutoff are deleted with their output. Returns count or -1. */
int64_t store_delete_finished_before(store *s, int64_t cutoff_ms);

/* ---- storage ----
 * Every job counts what it holds: script and inputs, result and error text, output. New
 * data that would take the total past the quota, or leave the disk with less free than
 * the reserve's size, first evicts the output of the oldest finished jobs, then their
 * results (they keep their status and say output_evicted / result_evicted); if that is
 * not enough it is refused (STORE_NO_SPACE). Scripts and inputs are never evicted. When
 * SQLite meets a full disk anyway, the reserve is given back so deletes, evictions and
 * job endings still commit. */

typedef struct store_storage_options {
    uint64_t quota_bytes;    /* 0 = no quota */
    const char *reserve_path; /* NULL = the disk is not watched (no reserve) */
    uint64_t reserve_bytes;  /* set aside, and also kept free besides it */
} store_storage_options;

/* Once, before the store is used by other threads. -1 with err when the reserve file
 * cannot be used (a disk too full to hold it is not an error: it starts released). */
int store_set_storage(store *s, const store_storage_options *o, char *err, size_t errlen);

typedef struct store_storage {
    uint64_t used_bytes;        /* what the jobs hold */
    uint64_t evictable_bytes;   /* of which the output and results of finished jobs */
    uint64_t quota_bytes;       /* 0 = none */
    bool disk_watched;          /* the fields below are known */
    uint64_t disk_free_bytes;   /* the filesystem's, plus the database's free pages */
    uint64_t disk_total_bytes;
    uint64_t reserve_bytes;
    bool reserve_held;
    bool full;                  /* not even a small job fits, evicting all there is */
    char reason[192];           /* why full, or why degraded (the reserve is in use) */
    uint64_t evicted_outputs;   /* jobs whose output / result was evicted, since start */
    uint64_t evicted_results;
} store_storage;

/* Makes room for bytes more of new data (evicting as needed). STORE_OK when they fit
 * now; STORE_NO_SPACE (the reason recorded) when they do not. */
store_rc store_make_room(store *s, uint64_t bytes);

/* The state /readyz and /metrics show. Takes the reserve again when the disk has room.
 * 0, or -1 when the store cannot be read. */
int store_storage_state(store *s, store_storage *out);

/* ---- replicas ----------------------------------------------------------------------
 * A store that several executord instances share (PostgreSQL, docs/replicas.md) is one
 * queue for all of them: each claim records the claiming replica; a replica holds a
 * lease it renews (store_heartbeat), and the survivors end the running jobs of a replica
 * whose lease expired failed/ExecutorLost; replicas learn of each other's changes through
 * store_wait_events instead of polling. A store only one instance uses (SQLite) has none of
 * this: store_is_shared says false, store_set_replica only records the id, the others do
 * nothing (see each). */

/* Once, after store_open and before store_recover_running or any other thread: this
 * instance's replica id (at most STORE_REPLICA_ID_MAX bytes of [A-Za-z0-9._-]) and how
 * long its lease lasts without a renewal. A shared store registers the replica and takes
 * its first lease (refused, -1 with err, while another live replica holds that id). */
#define STORE_REPLICA_ID_MAX 63
int store_set_replica(store *s, const char *replica_id, int64_t lease_ms, char *err,
                      size_t errlen);
bool store_is_shared(store *s);

typedef enum store_event_kind {
    STORE_EVENT_QUEUED = 1, /* a job was queued (by any replica): a worker may claim it */
    STORE_EVENT_FINAL,      /* job_id reached a final state, or was deleted */
    STORE_EVENT_CANCEL,     /* job_id, running, is to be cancelled by the replica running it */
    STORE_EVENT_RESYNC,     /* events may have been missed (the connection was lost and is
                             * back): treat as QUEUED, and recheck waits and cancels */
} store_event_kind;

typedef struct store_event {
    store_event_kind kind;
    char job_id[JOB_ID_LEN + 1]; /* "" for QUEUED and RESYNC */
} store_event;

/* Waits up to timeout_ms for events: how many it put in out (at most max), 0 when none
 * came in time, -1 when the store cannot listen now (connection lost: the next call tries
 * to reconnect; a successful reconnect yields STORE_EVENT_RESYNC). One thread only. Not
 * shared: sleeps timeout_ms and returns 0. */
int store_wait_events(store *s, int timeout_ms, store_event *out, int max);

/* Renews this replica's lease for the lease's length (by the store server's clock), then,
 * with end_expired, ends the running jobs of every replica whose lease expired
 * failed/ExecutorLost at now_ms (their waiters are told through STORE_EVENT_FINAL) and
 * forgets those replicas; also jobs running on a replica the store no longer knows (one
 * that closed its store). Returns how many jobs it ended, -1 on error (the lease may then
 * lapse: the caller stops claiming until a heartbeat works). The caller asks end_expired
 * only after a whole lease of working heartbeats: after an outage of the store every
 * lease looks expired until each live replica had its chance to renew. Not shared: 0. */
int store_heartbeat(store *s, int64_t now_ms, bool end_expired);

/* A running job another replica may be running: asks that replica to cancel it (recorded in
 * the job, and STORE_EVENT_CANCEL). STORE_OK when the job is running and was asked;
 * STORE_CONFLICT when it is not running; STORE_NOT_FOUND. Not shared: STORE_CONFLICT. */
store_rc store_request_cancel(store *s, const char *id);

/* The jobs running on this replica whose cancel was asked: at most max ids into ids. The
 * safety net for a missed STORE_EVENT_CANCEL. Returns the count, -1 on error. Not shared: 0. */
int store_pending_cancels(store *s, char (*ids)[JOB_ID_LEN + 1], int max);

/* True while this replica holds the named singleton role (e.g. "retention"); the first
 * call takes it when free. A replica that loses its connection loses its roles. Not
 * shared: always true. */
bool store_hold_role(store *s, const char *role);

/* The replica id given to store_set_replica ("" before). */
const char *store_replica_id(store *s);

#endif
