/* The composition root, the top of the dependency graph (api -> src -> sandbox): the one
 * place that knows every layer and wires them together; nothing includes it.
 * executord's entry point: load the configuration (or run the --healthcheck mode), decide
 * the memory budget (src/membudget.c), put a minimal init in front when PID 1
 * (src/pid1.c), open the store (recovering jobs a dead instance left running), initialise
 * the backends and the package cache (src/depcache.c), start the scheduler and the HTTP
 * server, then wait for SIGTERM/SIGINT and shut down gracefully. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/server.h"
#include "src/backends.h"
#include "src/config.h"
#include "src/datadir.h"
#include "src/depcache.h"
#include "src/depinstall.h"
#include "src/healthcheck.h"
#include "src/log.h"
#include "src/membudget.h"
#include "src/pid1.h"
#include "src/replica.h"
#include "src/reserve.h"
#include "src/retention.h"
#include "src/scheduler.h"
#include "src/store.h"
#include "src/timeutil.h"
#include "src/token.h"
#include "sandbox/sandbox.h"

/* A NULL-terminated view of a CIDR list (the texts stay in cfg). */
static const char *const *cidr_texts(const config_cidrs *l, const char **out)
{
    for (int i = 0; i < l->n; i++)
        out[i] = l->items[i];
    out[l->n] = NULL;
    return out;
}

/* The backends' one configuration, from the service's (strings stay in cfg, which lives
 * as long as main). */
static sandbox_config sandbox_config_from(const config *cfg, const char *work_root)
{
    static const char *allow[CONFIG_MAX_CIDRS + 1], *deny[CONFIG_MAX_CIDRS + 1];
    return (sandbox_config){
        .python_path = cfg->python,
        .work_root = work_root,
        .sandbox = {
            .rootfs = cfg->sandbox_rootfs,
            .cgroup_root = cfg->cgroup_root,
            .uid_base = (uid_t)cfg->sandbox_uid_base,
            .uid_count = (unsigned)cfg->sandbox_uid_count,
            .uid_lock_dir = cfg->sandbox_uid_lock_dir,
            .tmp_mb = cfg->sandbox_tmp_mb,
            .shm_mb = cfg->sandbox_shm_mb,
            .work_mb = cfg->sandbox_work_mb,
            .cpu_quota_percent = (unsigned)cfg->sandbox_cpu_percent,
        },
        .pool = {
            .size = (unsigned)(cfg->pool_size ? cfg->pool_size : (uint64_t)cfg->workers),
            .cold_when_empty = strcmp(cfg->pool_when_empty, "cold") == 0,
            .recycle_jobs = (unsigned)cfg->pool_recycle_jobs,
            .recycle_seconds = (unsigned)cfg->pool_recycle_seconds,
            .uid_base = (uid_t)cfg->pool_uid_base,
        },
        .network = {
            .slirp4netns = cfg->slirp4netns,
            .egress_allow = cidr_texts(&cfg->egress_allow, allow),
            .egress_deny = cidr_texts(&cfg->egress_deny, deny),
        },
    };
}

/* SIGTERM and SIGINT are blocked in every thread (threads inherit the mask) and taken
 * synchronously by main with sigwait, so no handler ever runs in an arbitrary thread. */
static void block_shutdown_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    /* A client that disconnects mid-response must not kill the service. */
    signal(SIGPIPE, SIG_IGN);
}

#define MIB (1ull << 20)
#define AUTO_QUOTA_MAX (1024 * MIB)

/* A shared store's server keeps its own disk, which no replica can watch: only the quota
 * applies (1 GiB unless --max-storage-mb says otherwise), the same for every replica. */
static int configure_shared_storage(const config *cfg, store *st)
{
    uint64_t quota = cfg->max_storage_mb ? cfg->max_storage_mb * MIB : AUTO_QUOTA_MAX;
    char err[512];
    store_storage_options o = {.quota_bytes = quota, .reserve_path = NULL, .reserve_bytes = 0};
    if (store_set_storage(st, &o, err, sizeof err) != 0) {
        log_error("storage: %s", err);
        return -1;
    }
    log_info("storage: quota %llu MiB%s in the shared store (its server's disk is not watched)",
             (unsigned long long)(quota / MIB), cfg->max_storage_mb ? "" : " (--max-storage-mb 0: 1 GiB)");
    return 0;
}

/* The storage quota and the disk's reserve (src/store.h, storage), set before anything is
 * written so that even the recovery below can use the reserve on a full disk.
 * The quota by default: 1 GiB (thousands of jobs' output at the default 1 MiB cap), but
 * at most half the filesystem, so that on a small volume the quota, not the disk, is what
 * jobs meet first. The reserve: room to rewrite the largest job row twice over (its new
 * copy and the WAL's) and to delete, i.e. 4 bodies + 1 MiB, at most an eighth of the disk. */
static int configure_storage(const config *cfg, store *st)
{
    if (cfg->store_url[0])
        return configure_shared_storage(cfg, st);
    uint64_t avail = 0, total = 0;
    if (reserve_disk_of(cfg->data_dir, &avail, &total) != 0) {
        log_error("storage: statvfs %s: %s", cfg->data_dir, strerror(errno));
        return -1;
    }
    uint64_t quota = cfg->max_storage_mb * MIB;
    if (!quota)
        quota = total / 2 < AUTO_QUOTA_MAX ? total / 2 : AUTO_QUOTA_MAX;
    uint64_t reserve_bytes = 4 * cfg->max_body_bytes + MIB;
    if (reserve_bytes > total / 8)
        reserve_bytes = total / 8;
    char path[4200], err[4400];
    snprintf(path, sizeof path, "%s/storage-reserve", cfg->data_dir);
    store_storage_options o = {.quota_bytes = quota, .reserve_path = path, .reserve_bytes = reserve_bytes};
    if (store_set_storage(st, &o, err, sizeof err) != 0) {
        log_error("storage: %s", err);
        return -1;
    }
    log_info("storage: quota %llu MiB%s; %llu MiB kept in reserve (%s) on a disk of %llu MiB "
             "with %llu MiB free", (unsigned long long)(quota / MIB),
             cfg->max_storage_mb ? "" : " (--max-storage-mb 0: automatic)",
             (unsigned long long)(reserve_bytes / MIB), path, (unsigned long long)(total / MIB),
             (unsigned long long)(avail / MIB));
    if (quota > total)
        log_warn("storage: the quota (%llu MiB) is larger than the disk (%llu MiB): a full disk "
                 "will be met first (new jobs then get 507 too)",
                 (unsigned long long)(quota / MIB), (unsigned long long)(total / MIB));
    return 0;
}

/* The replica's id when --replica-id is not given: the host's name and a hash of the data
 * folder, stable across restarts (so a restarted replica recovers its own jobs at once) and
 * distinct for two instances on one host. */
static void default_replica_id(const config *cfg, char *out, size_t len)
{
    char host[64] = "executord";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "executord");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            *p = '-';
    uint32_t h = 2166136261u; /* FNV-1a: a name, not a secret */
    for (const char *p = cfg->data_dir; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    host[STORE_REPLICA_ID_MAX - 9] = '\0';
    snprintf(out, len, "%s-%08x", host, h);
}

/* --durability; a shared store ignores it (its server's settings decide), so it is only
 * mentioned for SQLite. */
static int configure_durability(const config *cfg, store *st)
{
    char err[512] = "unknown mode";
    store_durability d = STORE_DURABILITY_PROCESS_CRASH;
    if (store_durability_parse(cfg->durability, &d) != 0 ||
        store_set_durability(st, d, err, sizeof err) != 0) {
        log_error("job store: --durability %s: %s", cfg->durability, err);
        return -1;
    }
    if (!cfg->store_url[0])
        log_info("job store durability: %s%s", cfg->durability,
                 d == STORE_DURABILITY_POWER_LOSS ? " (every commit fsynced)"
                                                  : " (a power cut may roll back the last writes)");
    return 0;
}

static store *open_store(const config *cfg)
{
    char path[4200], err[512];
    const char *shown = cfg->store_url[0] ? "in PostgreSQL (--store)" : path;
    if (cfg->store_url[0])
        snprintf(path, sizeof path, "%s", cfg->store_url);
    else
        snprintf(path, sizeof path, "%s/executord.db", cfg->data_dir);
    store *st = store_open(path, err, sizeof err);
    if (!st) {
        log_error("cannot open the job store %s: %s", shown, err);
        return NULL;
    }
    if (configure_durability(cfg, st) != 0) {
        store_close(st);
        return NULL;
    }
    char id[STORE_REPLICA_ID_MAX + 1];
    if (cfg->replica_id[0])
        snprintf(id, sizeof id, "%s", cfg->replica_id);
    else
        default_replica_id(cfg, id, sizeof id);
    if (store_set_replica(st, id, (int64_t)cfg->replica_lease_seconds * 1000, err, sizeof err) != 0) {
        log_error("job store: replica %s: %s", id, err);
        store_close(st);
        return NULL;
    }
    if (configure_storage(cfg, st) != 0) {
        store_close(st);
        return NULL;
    }
    int lost = store_recover_running(st, time_now_ms());
    if (lost < 0) {
        log_error("cannot recover jobs left running: %s", store_last_error(st));
        store_close(st);
        return NULL;
    }
    if (lost > 0)
        log_warn("%d job(s) were running when executord last stopped; they ended failed/ExecutorLost", lost);
    if (store_is_shared(st))
        log_info("job store %s ready (schema version %d, %lld job(s) queued); replica %s, lease %llu s",
                 shown, store_schema_version(st), (long long)store_count_status(st, JOB_QUEUED), id,
                 (unsigned long long)cfg->replica_lease_seconds);
    else
        log_info("job store %s ready (schema version %d, %lld job(s) queued)", shown,
                 store_schema_version(st), (long long)store_count_status(st, JOB_QUEUED));
    return st;
}

/* Authentication is on unless the operator said --insecure-no-auth (config.c allows that
 * on loopback listeners only). The token's location is logged, never the token. */
static int prepare_authentication(config *cfg)
{
    char path[4200], err[4400];
    if (token_prepare(cfg, path, sizeof path, err, sizeof err) != 0) {
        log_error("API token: %s", err);
        return -1;
    }
    if (cfg->insecure_no_auth)
        log_warn("INSECURE: --insecure-no-auth: the API needs no token; any local process or user can "
                 "run code through it");
    else if (path[0])
        log_info("API token: %s (send it as \"Authorization: Bearer <token>\")", path);
    else
        log_info("API token: from %s", cfg->api_token_file);
    return 0;
}

/* depinstall.py trusts a configured http index (pip would ignore it otherwise). */
static void warn_if_plain_http(const char *flag, const char *url)
{
    if (strncmp(url, "http://", 7) == 0)
        log_warn("%s %s is plain http: pip trusts it as configured, and anyone on the path can "
                 "change the packages jobs install", flag, url);
}

static void warn_about_weak_settings(const config *cfg)
{
    if (config_backend_enabled(cfg, "direct") && !config_host_is_loopback(cfg->listen_host))
        log_warn("the 'direct' backend (no filesystem or network isolation) is enabled on %s, a "
                 "non-loopback listener: any token holder can run code with this host's files and "
                 "network", cfg->listen_host);
    for (int i = 0; i < cfg->n_allowed_hosts; i++)
        if (strcmp(cfg->allowed_hosts[i], "*") == 0)
            log_warn("--allowed-host '*': any Host name is accepted; the token is the only protection "
                     "against DNS rebinding");
    warn_if_plain_http("--pip-index-url", cfg->pip_index_url);
    for (int i = 0; i < cfg->pip_extra_index_urls.n; i++)
        warn_if_plain_http("--pip-extra-index-url", cfg->pip_extra_index_urls.items[i]);
}

/* Jobs' dependencies (docs/dependencies.md): with a package source configured, the
 * install's settings (checked now, so a bad URL stops the start) and the cache at
 * <data-dir>/deps. Returns 0 (*cache stays NULL without a source), or -1 (logged). */
static int prepare_dependencies(const config *cfg, depinstall_config *icfg, depcache **cache)
{
    static const char *extra[CONFIG_MAX_URLS + 1];
    static char interpreter[1024];
    *cache = NULL;
    if (!config_has_package_source(cfg)) {
        log_info("dependencies: no package source configured (--pip-index-url, --pip-extra-index-url, "
                 "--pip-find-links): jobs with dependencies are refused");
        return 0;
    }
    for (int i = 0; i < cfg->pip_extra_index_urls.n; i++)
        extra[i] = cfg->pip_extra_index_urls.items[i];
    extra[cfg->pip_extra_index_urls.n] = NULL;
    *icfg = (depinstall_config){
        .index_url = cfg->pip_index_url[0] ? cfg->pip_index_url : NULL,
        .extra_index_urls = extra,
        .find_links = cfg->pip_find_links[0] ? cfg->pip_find_links : NULL,
        .disk_mb = cfg->deps_install_disk_mb,
        .timeout_seconds = cfg->deps_install_timeout_seconds,
        .interpreter = interpreter,
    };
    char err[1024];
    if (depinstall_check_config(icfg, err, sizeof err) != 0) {
        log_error("dependencies: %s", err);
        return -1;
    }
    if (depinstall_interpreter(cfg->python, cfg->sandbox_rootfs, interpreter, sizeof interpreter) != 0) {
        log_error("dependencies: the interpreter names every environment, and %s", interpreter);
        return -1;
    }
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/deps", cfg->data_dir);
    if (!(*cache = depcache_open(dir, cfg->deps_cache_mb * MIB, err, sizeof err))) {
        log_error("dependencies: the package cache: %s", err);
        return -1;
    }
    const char *why = NULL;
    if (!backends_available("ephemeral", &why))
        log_warn("dependencies: installs run in an ephemeral sandbox, and that backend is not available "
                 "(%s): jobs with dependencies will fail with SandboxError", why);
    log_info("dependencies: interpreter %s; installs time out after %llu s, write at most %llu MB",
             interpreter, (unsigned long long)cfg->deps_install_timeout_seconds,
             (unsigned long long)cfg->deps_install_disk_mb);
    return 0;
}

/* Docker reserves health-check exit status 2: in that mode every failure is 1. */
static bool healthcheck_requested(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--healthcheck") == 0)
            return true;
    return false;
}

/* Bounded below Docker's default HEALTHCHECK --timeout (30s) and compose's usual 5s, so
 * the reason is printed before the check is killed. */
enum { HEALTHCHECK_TIMEOUT_MS = 4000 };

int main(int argc, char **argv)
{
    config cfg;
    int rc = config_load(&cfg, argc, argv);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return healthcheck_requested(argc, argv) ? 1 : 2;
    if (cfg.healthcheck)
        return healthcheck_run(cfg.listen_host, cfg.listen_port, HEALTHCHECK_TIMEOUT_MS);
    /* Before anything starts: a maximum that cannot fit the budget is a configuration
     * error, refused like a bad flag. */
    char budget_how[8192], budget_warn[8192], budget_err[8192];
    membudget_memory mem;
    if (membudget_probe(NULL, &mem, budget_err, sizeof budget_err) != 0 ||
        membudget_apply(&cfg, &mem, budget_how, sizeof budget_how, budget_warn, sizeof budget_warn,
                        budget_err, sizeof budget_err) != 0) {
        fprintf(stderr, "executord: %s\n", budget_err);
        return 2;
    }
    /* Before any thread or child exists: from here on this process is the service. */
    if (pid1_init_if_needed(cfg.cgroup_root) != 0)
        return 1;
    log_set_level(cfg.log_level);

    sigset_t sigs;
    block_shutdown_signals(&sigs);

    char desc[2048];
    config_describe(&cfg, desc, sizeof desc);
    log_info("executord %s starting: %s", EXECUTORD_VERSION, desc);
    log_info("%s", budget_how);
    if (budget_warn[0])
        log_warn("%s", budget_warn);

    char err[512];
    if (datadir_prepare(cfg.data_dir, err, sizeof err) != 0) {
        log_error("%s", err);
        return 1;
    }
    /* Absolute from here on: sandboxes mount paths below it from other namespaces. */
    char abs_data_dir[PATH_MAX];
    if (!realpath(cfg.data_dir, abs_data_dir)) {
        log_error("realpath %s: %s", cfg.data_dir, strerror(errno));
        return 1;
    }
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", abs_data_dir);
    char work_root[PATH_MAX + 8];
    snprintf(work_root, sizeof work_root, "%s/work", cfg.data_dir);
    int stale_removed = 0, stale_left = sandbox_prepare_work_root(work_root, &stale_removed, err, sizeof err);
    if (stale_left < 0) {
        log_error("work folder: %s", err);
        return 1;
    }
    if (stale_left > 0)
        log_warn("cannot remove %d stale work folder(s), the last: %s", stale_left, err);
    if (stale_removed)
        log_info("removed %d work folder(s) left by a previous instance", stale_removed);
    if (prepare_authentication(&cfg) != 0)
        return 1;
    warn_about_weak_settings(&cfg);

    store *st = open_store(&cfg);
    if (!st)
        return 1;

    sandbox_config scfg = sandbox_config_from(&cfg, work_root);
    backends_init(&scfg, cfg.backends);
    const char *why = NULL;
    if (!backends_available(cfg.backend, &why)) {
        log_error("the default backend '%s' is not available: %s (choose another with --backend; "
                  "'direct' also runs unprivileged, without sandboxing)", cfg.backend, why);
        backends_shutdown();
        store_close(st);
        return 1;
    }

    depinstall_config icfg;
    depcache *deps = NULL;
    if (prepare_dependencies(&cfg, &icfg, &deps) != 0) {
        backends_shutdown();
        store_close(st);
        return 1;
    }

    scheduler_options sopt = {.workers = cfg.workers,
                              .shutdown_grace_seconds = cfg.shutdown_grace_seconds,
                              .memory_budget_mb = cfg.memory_budget_mb,
                              .deps = deps,
                              .deps_install = deps ? &icfg : NULL};
    scheduler *sch = scheduler_create(st, &sopt);
    api_server *srv = sch ? api_server_start(&cfg, st, sch, err, sizeof err) : NULL;
    if (!srv) {
        log_error("cannot start the HTTP server: %s", sch ? err : "out of memory");
        scheduler_destroy(sch);
        depcache_close(deps);
        backends_shutdown();
        store_close(st);
        return 1;
    }
    if (scheduler_start(sch, err, sizeof err) != 0) {
        log_error("cannot start workers: %s", err);
        return 1;
    }
    replica *rep = NULL;
    if (store_is_shared(st) &&
        !(rep = replica_start(st, sch, (int64_t)cfg.replica_lease_seconds * 1000, err, sizeof err))) {
        log_error("cannot start the replica's heartbeat: %s", err);
        return 1;
    }
    retention *ret = retention_start(st, cfg.retention_seconds);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("received %s: shutting down (grace period %gs)", strsignal(sig), cfg.shutdown_grace_seconds);
    api_server_refuse_new_jobs(srv);
    retention_stop(ret);
    scheduler_stop(sch);
    replica_stop(rep); /* after the jobs' outcomes: its lease covers them until recorded */
    api_server_stop(srv);
    scheduler_destroy(sch);
    depcache_close(deps);
    backends_shutdown();
    store_close(st);
    log_info("executord stopped");
    return 0;
}
