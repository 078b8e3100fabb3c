/* The job model: one submitted script, its request, its lifecycle and what it produced.
 * Plain data shared by the store, the scheduler and the API; no I/O here. */
#ifndef EXECUTORD_JOB_H
#define EXECUTORD_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

typedef enum job_status {
    JOB_QUEUED = 0,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_TIMED_OUT,
    JOB_CANCELLED,
} job_status;

#define JOB_ID_LEN 36 /* canonical lowercase UUID text */
#define JOB_BACKEND_LEN 16 /* room for a backend's name and its NUL */

/* How each kind of request field (src/job_fields.def) is held in struct job. */
#define JOB_MEMBER_TEXT(m) char *m;           /* owned */
#define JOB_MEMBER_OBJECT(m) char *m;         /* owned JSON object text */
#define JOB_MEMBER_BACKEND(m) char m[JOB_BACKEND_LEN];
#define JOB_MEMBER_TIMEOUT(m)                 /* a member of limits */
#define JOB_MEMBER_BOOL(m) bool m;
#define JOB_MEMBER_ENV(m) char *m;            /* owned JSON object text {name: value} */
#define JOB_MEMBER_LIMITS(m) sandbox_limits m; /* effective limits */
#define JOB_MEMBER_LABELS(m) char *m;         /* owned JSON object text {key: value} */
#define JOB_MEMBER_DEPS(m) char *m;           /* owned JSON array text ["name==1"]; NULL = none */

#include "src/job_fields.def"
#define JOB_FIELD_MEMBER(ctx, name, kind, member, render, rank, seen) JOB_MEMBER_##kind(member)

typedef struct job {
    int64_t seq;                 /* store's insertion order; cursor and queue order */
    char id[JOB_ID_LEN + 1];
    job_status status;
    int64_t created_at_ms;       /* Unix ms; 0 = not set */
    int64_t started_at_ms;
    int64_t finished_at_ms;

    /* the request, as accepted: one member per row of src/job_fields.def */
    JOB_FIELDS(JOB_FIELD_MEMBER, )
    char *idempotency_key;       /* NULL when none */
    char *request_json;          /* canonical request, for idempotency comparison; NULL when no key */

    /* the outcome; NULL / -1 until known */
    char *result_json;           /* JSON text of the return value; read back from the store,
                                  * only its first bytes when it is large (see result_bytes) */
    uint64_t result_bytes;       /* size of the whole result_json as stored; 0 = not read from
                                  * the store (then result_json, if set, is all of it) */
    char *error_type;
    char *error_message;
    char *error_traceback;
    bool has_exit_code;
    int exit_code;
    int signal;                  /* 0 = none */
    char *usage_json;            /* JSON object text, e.g. {"wall_ms":..} */
    char *install_json;          /* the dependencies' install: JSON object text
                                  * {"environment","cache_hit","duration_ms"}; NULL = none */
    uint64_t stdout_bytes, stderr_bytes;
    bool stdout_truncated, stderr_truncated;
    /* the storage quota (or a full disk) took the stored output / the result back */
    bool output_evicted, result_evicted;
} job;

typedef enum job_field_kind {
    JOB_FIELD_TEXT, JOB_FIELD_OBJECT, JOB_FIELD_BACKEND, JOB_FIELD_TIMEOUT,
    JOB_FIELD_BOOL, JOB_FIELD_ENV, JOB_FIELD_LIMITS, JOB_FIELD_LABELS, JOB_FIELD_DEPS,
} job_field_kind;

/* Where a rendered job shows a request field (see src/job_fields.def). */
typedef enum job_field_render {
    JOB_RENDER_NONE, JOB_RENDER_HEAD, JOB_RENDER_REQUEST, JOB_RENDER_FULL,
} job_field_render;

/* One row of src/job_fields.def, as data. */
typedef struct job_field_desc {
    const char *name;
    job_field_kind kind;
    size_t offset; /* of its member in struct job */
    job_field_render render;
    int rank;
    bool runner; /* seen RUNNER: a member of the runner's spec */
} job_field_desc;

extern const job_field_desc job_field_descs[];
extern const size_t job_field_count;
/* The row called name, or NULL. */
const job_field_desc *job_field_find(const char *name);
/* The member a row describes, in j. */
void *job_field_slot(job *j, const job_field_desc *f);
const void *job_field_cslot(const job *j, const job_field_desc *f);

/* The request fields the runner reads (rows seen RUNNER), as one JSON object text for
 * sandbox_spec.runner_fields_json, e.g. {"script":"...","inputs":{...}}: TEXT and BACKEND
 * as strings, OBJECT/ENV/LABELS/DEPS as their stored JSON text spliced as is ("{}" or
 * "[]" when none; inputs may be megabytes, so never parsed again), BOOL as true/false,
 * TIMEOUT as a number. Returns malloc'd text, or NULL with errno set: ENOMEM, or EINVAL for text that
 * is not UTF-8 or a kind the runner gets another way (LIMITS). */
char *job_runner_fields_json(const job *j);

const char *job_status_name(job_status s);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int job_status_parse(const char *name, job_status *out);
bool job_status_is_final(job_status s);

void job_init(job *j);            /* zeroes, sets exit/signal "unknown" */
void job_free(job *j);            /* frees owned strings, leaves *j re-initialised */

/* Copies a sandbox outcome into the job's outcome fields and picks its final status. */
void job_apply_outcome(job *j, const sandbox_outcome *o);

/* A fresh random UUID (lowercase text) into buf[JOB_ID_LEN + 1]. */
void job_new_id(char buf[JOB_ID_LEN + 1]);
/* True when s is a canonical lowercase UUID. */
bool job_id_valid(const char *s);

#endif
