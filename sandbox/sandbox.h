/* The one interface between the service core and everything that touches the kernel.
 * A backend receives a plain run specification and returns an outcome, streaming the
 * job's stdout/stderr through a callback. Nothing here knows about HTTP or SQLite. */
#ifndef EXECUTORD_SANDBOX_H
#define EXECUTORD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Resource limits of one job. 0 means "not limited" only where noted; the API layer
 * always fills every field with an effective value before a job reaches a backend. */
typedef struct sandbox_limits {
    double timeout_seconds;    /* wall clock */
    uint64_t memory_mb;        /* address space (direct), cgroup memory (sandboxes) */
    uint64_t cpu_seconds;      /* RLIMIT_CPU */
    uint64_t max_processes;    /* RLIMIT_NPROC / pids cgroup */
    uint64_t max_file_size_mb; /* RLIMIT_FSIZE */
    uint64_t max_open_files;   /* RLIMIT_NOFILE */
    uint64_t max_output_bytes; /* per stream; also caps the result document */
} sandbox_limits;

/* Everything a backend needs to run one job. All pointers stay valid for the call. */
typedef struct sandbox_spec {
    const char *job_id;       /* UUID text, used to name per-job folders/cgroups */
    const char *script;       /* Python source, UTF-8 */
    const char *inputs_json;  /* JSON object text ("{}" when none) */
    const char *const *env;   /* user env as "NAME=VALUE", NULL-terminated; may be NULL */
    bool allow_network;
    sandbox_limits limits;
    int cancel_fd;            /* becomes readable when the job must stop now; -1 = none */
} sandbox_spec;

/* How a run ended, as far as the backend can tell. The core maps it to a job status. */
typedef enum sandbox_verdict {
    SANDBOX_SUCCEEDED = 0,   /* result_json holds the function's JSON-safe return value */
    SANDBOX_FAILED,          /* script failed: error_* say why (validation, exception, crash) */
    SANDBOX_TIMED_OUT,       /* wall-clock limit hit; the whole tree was killed */
    SANDBOX_CANCELLED,       /* cancel_fd fired; the whole tree was killed */
    SANDBOX_OUTPUT_LIMIT,    /* a stream passed max_output_bytes; killed, output kept */
    SANDBOX_SETUP_ERROR,     /* the sandbox could not be built; the script never ran */
} sandbox_verdict;

typedef struct sandbox_usage {
    int64_t wall_ms;
    int64_t cpu_user_ms;
    int64_t cpu_system_ms;
    int64_t max_rss_kb;
    int64_t memory_peak_bytes; /* -1 when the backend cannot measure it */
    int64_t cgroup_cpu_ms;     /* -1 when the backend cannot measure it */
    int64_t oom_kills;         /* -1 when the backend cannot measure it */
} sandbox_usage;

typedef struct sandbox_outcome {
    sandbox_verdict verdict;
    int exit_code;          /* -1 when the process did not exit normally */
    int signal;             /* terminating signal, 0 when none */
    char *result_json;      /* malloc'd; set only for SANDBOX_SUCCEEDED */
    char *error_type;       /* malloc'd or NULL, e.g. "SandboxExecutionError" */
    char *error_message;    /* malloc'd or NULL */
    char *error_traceback;  /* malloc'd or NULL */
    sandbox_usage usage;
    uint64_t stdout_bytes, stderr_bytes;         /* bytes captured (after the cap) */
    bool stdout_truncated, stderr_truncated;
} sandbox_outcome;

enum { SANDBOX_STDOUT = 1, SANDBOX_STDERR = 2 };

/* Output streaming: called from the thread running the job, in order, with the bytes
 * the job wrote (already cut at the cap). */
typedef struct sandbox_io {
    void *ctx;
    void (*on_output)(void *ctx, int stream, const char *data, size_t len);
} sandbox_io;

/* Service-wide settings a backend may need. Filled by the core from its configuration. */
typedef struct sandbox_config {
    const char *python_path;  /* interpreter that runs the runner, e.g. /usr/bin/python3 */
    const char *work_root;    /* folder under which per-job work folders are created */
} sandbox_config;

typedef struct sandbox_backend {
    const char *name;
    /* Prepare the backend once at start-up. Returns 0, or -1 with the reason in why:
     * the backend is then reported unavailable and jobs asking for it are refused. */
    int (*init)(const sandbox_config *cfg, char *why, size_t whylen);
    /* Run one job to completion; thread-safe; always fills *out (call
     * sandbox_outcome_free afterwards). Returns 0 (see out->verdict). */
    int (*run)(const sandbox_spec *spec, const sandbox_io *io, sandbox_outcome *out);
    /* Release what init prepared. */
    void (*shutdown)(void);
    /* Optional: the backend's state as a JSON object text (e.g. a pool's ready/busy
     * counts) for /readyz and /v1/backends. Returns the length, or -1 when buf is too
     * small. Thread-safe. */
    int (*status_json)(char *buf, size_t len);
} sandbox_backend;

/* Registry: the backends compiled in. */
const sandbox_backend *sandbox_backend_find(const char *name);
const sandbox_backend *const *sandbox_backends_all(void); /* NULL-terminated */

/* The Python source of the in-sandbox runner, embedded at build time. */
extern const char sandbox_runner_source[];

void sandbox_outcome_init(sandbox_outcome *out);
void sandbox_outcome_free(sandbox_outcome *out);
/* Sets error_type/error_message on *out (copies), replacing earlier ones. */
void sandbox_outcome_set_error(sandbox_outcome *out, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
