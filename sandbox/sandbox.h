/* The one interface between the service core and everything that touches the kernel.
 * A backend receives a plain run specification and returns an outcome, streaming the
 * job's stdout/stderr through a callback. Nothing here knows about HTTP or SQLite. */
#ifndef EXECUTORD_SANDBOX_H
#define EXECUTORD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/limits.h"


/* Where a job's Python packages live inside its sandbox (issue 14): a cached environment
 * (pip's --target folder) mounted here read-only, and first after the standard library on
 * the runner's sys.path; the install sandbox gets it writable and a find-links folder. */
#define SANDBOX_DEPS_PATH "/deps"
#define SANDBOX_WHEELS_PATH "/wheels"
/* The service's own loopback as a network-enabled sandbox reaches it, when an egress_only
 * item names 127.0.0.1 (slirp4netns's gateway mapped to the host's loopback). */
#define SANDBOX_NET_HOST_LOOPBACK "10.0.2.2"

typedef struct sandbox_packages {
    const char *dir;        /* host folder mounted at SANDBOX_DEPS_PATH; NULL = none */
    bool writable;          /* the install sandbox only: the folder is writable */
    const char *wheels_dir; /* the install sandbox only: host folder mounted read-only at
                             * SANDBOX_WHEELS_PATH (--pip-find-links); NULL = none */
} sandbox_packages;

/* Everything a backend needs to run one job. All pointers stay valid for the call. */
typedef struct sandbox_spec {
    const char *job_id;       /* UUID text, used to name per-job folders/cgroups */
    /* The request fields the runner reads (script, inputs, ...), one JSON object text
     * spliced into its spec as is: {"script":"...","inputs":{...}}; see
     * src/job_fields.def (seen RUNNER) and runner_build_spec. */
    const char *runner_fields_json;
    const char *const *env;   /* user env as "NAME=VALUE", NULL-terminated; may be NULL */
    bool allow_network;
    /* With allow_network: NULL = the service's egress policy (sandbox_network_config).
     * Otherwise the only places the job may reach besides DNS, "IPV4:PORT" items,
     * NULL-terminated, everything else refused (the package install reaches only the
     * index hosts). An item at 127.0.0.1 is the service's own loopback: the sandbox reaches
     * it as SANDBOX_NET_HOST_LOOPBACK:PORT and nothing else of the host's loopback (other
     * 127.0.0.0/8 addresses, which slirp4netns cannot reach, are refused). */
    const char *const *egress_only;
    sandbox_packages packages;
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

/* Settings of the sandboxes (ephemeral, pool): 0 / NULL = the default of sandbox/limits.h. */
typedef struct sandbox_isolation_config {
    const char *rootfs;         /* runtime folder bound read-only; NULL or "" = the host's */
    const char *cgroup_root;    /* cgroup filesystem; NULL = /sys/fs/cgroup */
    bool cgroup_fake_fs;        /* unit tests: cgroup_root is a plain folder */
    const char *cgroup_self;    /* our cgroup below the hierarchy root; NULL = detect */
    uid_t uid_base;             /* first host uid of the per-job uid slots */
    unsigned uid_count;         /* slots, two host ids each */
    const char *uid_lock_dir;   /* flocks shared by a host's instances; NULL = default, "" = off */
    uint64_t tmp_mb, shm_mb, work_mb; /* sizes of a sandbox's /tmp, /dev/shm, /work */
    unsigned cpu_quota_percent; /* CPU quota of one job (100 = a core) */
} sandbox_isolation_config;

/* Settings of the pool: 0 = the default. */
typedef struct sandbox_pool_config {
    unsigned size;              /* warm sandboxes kept ready (0 = one per CPU) */
    bool cold_when_empty;       /* none ready: start the job cold (ephemeral), else wait */
    unsigned recycle_jobs;      /* a zygote is replaced after this many sandboxes ... */
    unsigned recycle_seconds;   /* ... or after this long */
    unsigned refill_threads;    /* threads preparing warm sandboxes (at most 8) */
    uid_t uid_base;             /* first host uid of the pool's sandboxes */
} sandbox_pool_config;

/* Network-enabled jobs (sandbox/jobnet.h): their user-space stack and egress policy. */
typedef struct sandbox_network_config {
    const char *slirp4netns;          /* the binary; NULL = /usr/bin/slirp4netns */
    const char *const *egress_allow;  /* CIDRs exempt from the built-in blocks, NULL-terminated */
    const char *const *egress_deny;   /* CIDRs blocked besides them, NULL-terminated */
} sandbox_network_config;

/* Everything a backend is configured with: the one way in, passed to every init. The
 * service fills it from its configuration (src/main.c); strings stay valid until
 * shutdown. */
typedef struct sandbox_config {
    const char *python_path;  /* interpreter that runs the runner, e.g. /usr/bin/python3 */
    const char *work_root;    /* folder under which per-job work folders are created */
    sandbox_isolation_config sandbox; /* ephemeral and pool */
    sandbox_pool_config pool;
    sandbox_network_config network;
} sandbox_config;

typedef struct sandbox_backend {
    const char *name;
    const char *description;  /* one line for GET /v1/backends and --help */
    const char *builds_on;    /* a backend whose init must run first and which this one
                               * runs jobs through (pool: ephemeral), or NULL */
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

/* The registry (sandbox/sandbox.c): every backend executord has, in the order they are
 * initialised; the one list of their names. */
const sandbox_backend *sandbox_backend_find(const char *name);
const sandbox_backend *const *sandbox_backends_all(void); /* NULL-terminated */
/* True when name is a backend; len: compare that many bytes of name (items of a list). */
bool sandbox_backend_known(const char *name, size_t len);
/* The names, comma-separated ("direct, ephemeral, pool"), for messages and --help. */
const char *sandbox_backend_names(void);

/* The per-job work folders' root: created when missing, and emptied of what a dead
 * instance left (call before any job runs; *removed counts those). Returns -1 when the
 * root is unusable, else the number of stale folders it could not remove (the last
 * reason in err). */
int sandbox_prepare_work_root(const char *work_root, int *removed, char *err, size_t errlen);

/* How network-enabled jobs reach the outside (stack, version, availability, the egress
 * policy), a JSON object text for /v1/backends and /readyz; malloc'd, NULL on ENOMEM. */
char *sandbox_network_json(void);

/* The Python source of the in-sandbox runner, embedded at build time. */
extern const char sandbox_runner_source[];

void sandbox_outcome_init(sandbox_outcome *out);
void sandbox_outcome_free(sandbox_outcome *out);
/* Sets error_type/error_message on *out (copies), replacing earlier ones. */
void sandbox_outcome_set_error(sandbox_outcome *out, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
