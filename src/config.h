/* Service configuration: embedded defaults, overridden by EXECUTORD_* environment
 * variables, overridden by command-line flags. Parsed once at start-up, then read-only. */
#ifndef EXECUTORD_CONFIG_H
#define EXECUTORD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

#define CONFIG_MAX_ALLOWED_HOSTS 16
#define CONFIG_MAX_CIDRS 32
#define CONFIG_MAX_URLS 8
#define CONFIG_URL_LEN 2048
#define CONFIG_MAX_OPTIONS 96 /* room in config.given; config.c checks its table fits */

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* A repeatable list of address ranges, canonical ("10.0.0.0/8"). */
typedef struct config_cidrs {
    char items[CONFIG_MAX_CIDRS][64];
    int n;
} config_cidrs;

/* A repeatable list of package index URLs (http:// or https://), as given. */
typedef struct config_urls {
    char items[CONFIG_MAX_URLS][CONFIG_URL_LEN];
    int n;
} config_urls;

typedef struct config {
    char listen_host[256];
    int listen_port;
    char data_dir[4096];
    char backend[16];            /* default backend for jobs that name none */
    int workers;
    char python[4096];
    char api_token_file[4096];   /* "" = the generated <data_dir>/api-token (src/token.c) */
    char api_token[512];         /* read from api_token_file, or generated, at start-up */
    int insecure_no_auth;        /* --insecure-no-auth: no token (loopback listeners only) */
    char allowed_hosts[CONFIG_MAX_ALLOWED_HOSTS][256]; /* --allowed-host, besides loopback */
    int n_allowed_hosts;
    char backends[64];           /* --backends: the comma-separated enabled backends */
    log_level log_level;
    int healthcheck;             /* --healthcheck: check the instance at listen_*, then exit */

    uint64_t max_body_bytes;     /* 413 above */
    int64_t max_queued;          /* 429 above */
    double shutdown_grace_seconds;
    int64_t retention_seconds;   /* finished jobs older than this are deleted */
    uint64_t max_storage_mb;     /* storage quota (0 = auto, see src/main.c) */
    char durability[16];         /* "process-crash" or "power-loss" (docs/storage.md) */
    /* replicas (docs/replicas.md): a shared store's URL ("" = SQLite in data_dir; may hold
     * a password: never logged as is), this replica's id ("" = derived at start-up) */
    char store_url[2048];
    char replica_id[64];
    uint64_t replica_lease_seconds;

    /* the sandboxes (ephemeral, pool) */
    char sandbox_rootfs[4096];     /* "" = the host's /usr, /lib, /bin, ... */
    uint64_t sandbox_uid_base;     /* first host uid of the per-job uid slots */
    char sandbox_uid_lock_dir[4096]; /* "" = instances do not coordinate uid slots */
    uint64_t sandbox_uid_count;    /* slots (two host ids each) */
    uint64_t sandbox_tmp_mb;       /* /tmp tmpfs size */
    uint64_t sandbox_shm_mb;       /* /dev/shm tmpfs size */
    uint64_t sandbox_work_mb;      /* /work tmpfs size */
    uint64_t sandbox_cpu_percent;  /* CPU quota per job (100 = one core) */
    char cgroup_root[4096];        /* cgroup filesystem mount point */

    /* the pool backend */
    uint64_t pool_size;            /* warm sandboxes kept ready (0 = workers) */
    char pool_when_empty[8];       /* "wait" or "cold" */
    uint64_t pool_recycle_jobs;    /* a zygote is replaced after this many jobs */
    uint64_t pool_recycle_seconds; /* ... or after this long */
    uint64_t pool_uid_base;        /* first host uid of the pool's sandboxes */

    sandbox_limits default_limits; /* used for a limit the request leaves out */
    sandbox_limits max_limits;     /* a request above these gets 422 */

    /* --memory-budget-mb: what the memory limits of all running jobs may add up to. 0 in
     * the flag means "automatic"; src/membudget.c then replaces it with the effective
     * budget at start-up (and fits max/default memory_mb to it). */
    uint64_t memory_budget_mb;
    config_cidrs egress_allow;     /* --egress-allow: exempt from the built-in blocks */
    config_cidrs egress_deny;      /* --egress-deny: blocked besides them */
    char slirp4netns[4096];        /* the user-space stack of network-enabled jobs */

    /* jobs' dependencies: where packages come from (none set = a job with dependencies
     * gets 422; nothing is fetched implicitly) and the cache and install they go through */
    char pip_index_url[CONFIG_URL_LEN]; /* --pip-index-url: "" = none */
    config_urls pip_extra_index_urls;   /* --pip-extra-index-url, in the order given */
    char pip_find_links[4096];     /* --pip-find-links: an existing absolute folder, "" = none */
    uint64_t deps_cache_mb;        /* bound of <data-dir>/deps/, least recently used evicted */
    uint64_t deps_install_timeout_seconds; /* an install's wall-clock limit */
    uint64_t deps_install_disk_mb; /* the tmpfs an install writes into */

    bool given[CONFIG_MAX_OPTIONS]; /* which options the environment or a flag set */
} config;

/* Parses env and argv into *c. Returns 0 to run, 1 when --help/--version printed and the
 * process should exit 0, 2 on a bad flag or value (one line already on stderr). */
int config_load(config *c, int argc, char **argv);

/* True when name is one of the items of a comma-separated list ("pool,ephemeral"). */
bool config_list_contains(const char *list, const char *name);
/* True when the operator set the option (by flag or environment variable), as opposed
 * to its embedded default. flag is without the leading "--". */
bool config_given(const config *c, const char *flag);

/* True when a package source is configured (--pip-index-url, --pip-extra-index-url or
 * --pip-find-links): without one, jobs with dependencies are refused. */
bool config_has_package_source(const config *c);

/* True when name is in --backends. */
bool config_backend_enabled(const config *c, const char *name);

/* True when host (a name or a numeric address, without brackets) is loopback:
 * "localhost", 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
bool config_host_is_loopback(const char *host);

/* One line describing the effective configuration (token redacted), for the start-up log. */
void config_describe(const config *c, char *buf, size_t len);

#endif
