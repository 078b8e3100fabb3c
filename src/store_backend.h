/* The interface a store implements behind the store_* API of src/store.h: one table of
 * operations per store (SQLite today, src/store_sqlite*.c; PostgreSQL next, issue 15),
 * and what src/store.c lends every store: the last error's text and the SHA-256 helper.
 * Arguments are checked by src/store.c before an operation runs (see each comment). */
#ifndef EXECUTORD_STORE_BACKEND_H
#define EXECUTORD_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "src/store.h"

/* Lowercase hex SHA-256: 64 characters. */
#define STORE_SHA256_HEX_LEN 64

typedef struct store_ops {
    const char *name;    /* for messages: "SQLite" */
    /* The URL scheme of the locations this store opens ("postgresql" for
     * postgresql://...); NULL: a file path (the default store). */
    const char *scheme;

    /* Opens the store at location, ready to use; NULL with a message in err. */
    void *(*open)(const char *location, char *err, size_t errlen);
    void (*close)(void *self);
    int (*schema_version)(void *self);
    /* NULL: the store's durability is its server's, not the client's to choose. */
    int (*set_durability)(void *self, store_durability d, char *err, size_t errlen);

    /* j->id is canonical and j->created_at_ms set; request_sha256 is the digest of
     * j->request_json (NULL without one). */
    store_rc (*insert_job)(void *self, job *j, const char *request_sha256, int64_t max_queued,
                           job *existing);
    store_rc (*get_job)(void *self, const char *id, job *out);
    store_rc (*claim_next_within)(void *self, int64_t started_at_ms, uint64_t max_memory_mb,
                                  job *out, store_queue_head *head);
    /* j->status is final. */
    store_rc (*finish_job)(void *self, const job *j);
    store_rc (*cancel_queued)(void *self, const char *id, int64_t now_ms, job *out);
    store_rc (*delete_job)(void *self, const char *id);
    int (*recover_running)(void *self, int64_t now_ms);
    int64_t (*count_status)(void *self, job_status status);
    int (*count_by_status_backend)(void *self, store_status_count *out, int max);

    /* stream is SANDBOX_STDOUT or SANDBOX_STDERR in the three below. */
    store_rc (*append_output)(void *self, const char *id, int stream, const char *data,
                              size_t len);
    store_rc (*read_output)(void *self, const char *id, int stream, uint64_t offset, size_t max,
                            char **data, size_t *len);
    store_rc (*output_size)(void *self, const char *id, int stream, uint64_t *total);
    store_rc (*read_result)(void *self, const char *id, uint64_t offset, size_t max,
                            char **data, size_t *len, uint64_t *total);

    /* out is empty; on failure the store leaves it empty (job_list_free). */
    store_rc (*list_jobs)(void *self, const store_filter *f, int64_t before_seq, size_t limit,
                          job_list *out);
    int64_t (*delete_finished_before)(void *self, int64_t cutoff_ms);

    int (*set_storage)(void *self, const store_storage_options *o, char *err, size_t errlen);
    store_rc (*make_room)(void *self, uint64_t bytes);
    /* out is zeroed. */
    int (*storage_state)(void *self, store_storage *out);
    /* Replicas (src/store.h): NULL in a store only one instance uses, and src/store.c
     * then answers as that section says. set_replica gets a checked id. */
    int (*set_replica)(void *self, const char *replica_id, int64_t lease_ms, char *err,
                       size_t errlen);
    int (*wait_events)(void *self, int timeout_ms, store_event *out, int max);
    int (*heartbeat)(void *self, int64_t now_ms, bool end_expired);
    store_rc (*request_cancel)(void *self, const char *id);
    int (*pending_cancels)(void *self, char (*ids)[JOB_ID_LEN + 1], int max);
    bool (*hold_role)(void *self, const char *role);
} store_ops;

/* Records the text store_last_error returns (per thread). */
void store_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *store_error_text(void);
/* store_set_error for a failure of the store's server or of the connection to it (a
 * shared store: PostgreSQL restarting, the network): store_error_is_outage then says true
 * until the next store_set_error, and the API answers 503 instead of 500. */
void store_set_outage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void store_sha256_hex(const void *data, size_t len, char out[STORE_SHA256_HEX_LEN + 1]);

/* What a text counts in the storage quota: its length, 0 for NULL. */
uint64_t store_text_bytes(const char *t);
/* What eviction frees beyond a shortfall, so that the next requests do not each evict
 * again: a sixteenth of the quota (at most 64 MiB), or 1 MiB without one (quota 0). */
uint64_t store_eviction_slack(uint64_t quota_bytes);

/* A growing, always NUL-terminated buffer of bytes read back (output windows). */
typedef struct store_outbuf {
    char *p;
    size_t len, cap;
} store_outbuf;
/* Appends n bytes (0 makes sure the buffer exists); -1 when out of memory. */
int store_outbuf_add(store_outbuf *b, const void *data, size_t n);

#endif
