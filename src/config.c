/* Configuration: one table lists every option with its flag, environment variable,
 * default and parser, so --help, the environment and the flags can never disagree.
 * Precedence: embedded default < EXECUTORD_* environment variable < command-line flag. */
#include "src/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "sandbox/egress.h"
#include "src/log.h"

typedef enum opt_kind { OPT_STRING, OPT_PATH_OR_EMPTY, OPT_TEXT_OR_EMPTY, OPT_WHEN_EMPTY, OPT_DURABILITY, OPT_LISTEN, OPT_INT, OPT_U64, OPT_SECONDS, OPT_LEVEL, OPT_BACKEND, OPT_MODE, OPT_FLAG, OPT_HOSTS, OPT_BACKENDS, OPT_CIDRS, OPT_URL, OPT_URLS } opt_kind;

typedef struct option_def {
    const char *flag;    /* without the leading "--" */
    const char *env;     /* NULL: command line only (OPT_MODE: a mode, not a setting) */
    opt_kind kind;
    const char *def;     /* embedded default, parsed like any other value */
    const char *help;
    size_t offset;       /* field in struct config */
    size_t size;         /* buffer size for strings */
    int64_t min, max;    /* bounds for numbers */
} option_def;

#define FIELD(f) offsetof(config, f), sizeof(((config *)0)->f)
#define STR(x) #x
#define XSTR(x) STR(x) /* a default of sandbox/limits.h as the text the table parses */
#define OPT_KIND_U64 OPT_U64
#define OPT_KIND_SECONDS OPT_SECONDS

static const option_def options[] = {
    {"listen", "EXECUTORD_LISTEN", OPT_LISTEN, "127.0.0.1:8080", "address to serve HTTP on (HOST:PORT; port 0 picks a free one)", FIELD(listen_host), 0, 0},
    {"data-dir", "EXECUTORD_DATA_DIR", OPT_STRING, "./executord-data", "folder for the SQLite database and per-job work folders", FIELD(data_dir), 0, 0},
    {"backend", "EXECUTORD_BACKEND", OPT_BACKEND, "pool", "default backend for jobs that name none (see --backends)", FIELD(backend), 0, 0},
    {"workers", "EXECUTORD_WORKERS", OPT_INT, "0", "jobs run at once (0 = number of CPUs)", FIELD(workers), 0, 1024},
    {"python", "EXECUTORD_PYTHON", OPT_STRING, "/usr/bin/python3", "Python interpreter that runs scripts", FIELD(python), 0, 0},
    {"backends", "EXECUTORD_BACKENDS", OPT_BACKENDS, "pool,ephemeral", "backends jobs may use, comma-separated (direct isolates no filesystem or network: add it only for trusted scripts)", FIELD(backends), 0, 0},
    {"api-token-file", "EXECUTORD_API_TOKEN_FILE", OPT_PATH_OR_EMPTY, "", "file holding the API bearer token (empty = a token generated at first start in <data-dir>/api-token)", FIELD(api_token_file), 0, 0},
    {"insecure-no-auth", "EXECUTORD_INSECURE_NO_AUTH", OPT_FLAG, "0", "INSECURE: serve the API without a token (refused unless --listen is a loopback address)", FIELD(insecure_no_auth), 0, 0},
    {"allowed-host", "EXECUTORD_ALLOWED_HOSTS", OPT_HOSTS, "", "a name clients may send in the Host header besides loopback names and the listen address (repeatable; the variable takes a comma-separated list; '*' accepts any name and needs a token)", FIELD(allowed_hosts), 0, 0},
    {"log-level", "EXECUTORD_LOG_LEVEL", OPT_LEVEL, "info", "debug, info, warn or error", FIELD(log_level), 0, 0},
    {"healthcheck", NULL, OPT_MODE, "0", "instead of serving: GET /readyz of the instance at --listen (a wildcard host means loopback), print one line, exit 0 if ready (200), 1 if not (the container's HEALTHCHECK)", FIELD(healthcheck), 0, 0},
    {"max-body-bytes", "EXECUTORD_MAX_BODY_BYTES", OPT_U64, "2097152", "largest request body accepted (413 above)", FIELD(max_body_bytes), 1024, INT64_MAX},
    {"max-queued", "EXECUTORD_MAX_QUEUED", OPT_U64, "10000", "queued jobs at most (429 above)", FIELD(max_queued), 1, INT64_MAX},
    {"shutdown-grace-seconds", "EXECUTORD_SHUTDOWN_GRACE_SECONDS", OPT_SECONDS, "10", "on SIGTERM, how long running jobs may finish", FIELD(shutdown_grace_seconds), 0, 86400},
    {"durability", "EXECUTORD_DURABILITY", OPT_DURABILITY, "process-crash", "what an acknowledged write of the SQLite store survives: process-crash (a crash or kill of executord; a power cut may roll back the last writes) or power-loss (every commit fsynced first: slower); a PostgreSQL store's durability is its server's (docs/storage.md)", FIELD(durability), 0, 0},
    {"store", "EXECUTORD_STORE", OPT_TEXT_OR_EMPTY, "", "the job store several replicas share: postgresql://user@host:port/db (or postgresql:///db?host=/socket/folder); empty = SQLite in --data-dir, for one instance (docs/replicas.md)", FIELD(store_url), 0, 0},
    {"replica-id", "EXECUTORD_REPLICA_ID", OPT_TEXT_OR_EMPTY, "", "this replica's name in a shared store (1-63 of A-Z a-z 0-9 . _ -; empty = <hostname>-<hash of --data-dir>)", FIELD(replica_id), 0, 0},
    {"replica-lease-seconds", "EXECUTORD_REPLICA_LEASE_SECONDS", OPT_U64, "10", "with a shared store: a replica renews its lease every quarter of this; when one stops renewing, the others end its running jobs failed/ExecutorLost after this long", FIELD(replica_lease_seconds), 1, 3600},
    {"retention-seconds", "EXECUTORD_RETENTION_SECONDS", OPT_U64, "604800", "finished jobs older than this are deleted", FIELD(retention_seconds), 1, INT64_MAX},
    {"max-storage-mb", "EXECUTORD_MAX_STORAGE_MB", OPT_U64, "0", "storage quota in MiB for jobs' scripts, inputs, results and output; past it the output of the oldest finished jobs is evicted, then their results, and new jobs get 507 when nothing is left (0 = the smaller of 1024 and half the data folder's filesystem)", FIELD(max_storage_mb), 0, 1 << 30},
    {"sandbox-rootfs", "EXECUTORD_SANDBOX_ROOTFS", OPT_PATH_OR_EMPTY, "", "runtime folder bound read-only into sandboxes (an unpacked python:slim image, say; empty = the host's /usr, /lib, /bin, /sbin)", FIELD(sandbox_rootfs), 0, 0},
    {"sandbox-uid-base", "EXECUTORD_SANDBOX_UID_BASE", OPT_U64, XSTR(SANDBOX_DEFAULT_UID_BASE), "first host uid of the per-job sandbox uids (two per concurrent job)", FIELD(sandbox_uid_base), 1, 4000000000LL},
    {"sandbox-uid-count", "EXECUTORD_SANDBOX_UID_COUNT", OPT_U64, XSTR(SANDBOX_DEFAULT_UID_COUNT), "concurrent sandbox uid slots", FIELD(sandbox_uid_count), 1, 1 << 20},
    {"sandbox-uid-lock-dir", "EXECUTORD_SANDBOX_UID_LOCK_DIR", OPT_PATH_OR_EMPTY, SANDBOX_DEFAULT_UID_LOCK_DIR, "folder of the flocks by which the instances of a host share the sandbox and pool uid ranges (empty = no coordination: one instance per range)", FIELD(sandbox_uid_lock_dir), 0, 0},
    {"sandbox-tmp-mb", "EXECUTORD_SANDBOX_TMP_MB", OPT_U64, XSTR(SANDBOX_DEFAULT_TMP_MB), "size of a sandbox's /tmp", FIELD(sandbox_tmp_mb), 1, 1 << 20},
    {"sandbox-shm-mb", "EXECUTORD_SANDBOX_SHM_MB", OPT_U64, XSTR(SANDBOX_DEFAULT_SHM_MB), "size of a sandbox's /dev/shm", FIELD(sandbox_shm_mb), 1, 1 << 20},
    {"sandbox-work-mb", "EXECUTORD_SANDBOX_WORK_MB", OPT_U64, XSTR(SANDBOX_DEFAULT_WORK_MB), "size of a sandbox's /work", FIELD(sandbox_work_mb), 1, 1 << 20},
    {"sandbox-cpu-percent", "EXECUTORD_SANDBOX_CPU_PERCENT", OPT_U64, XSTR(SANDBOX_DEFAULT_CPU_PERCENT), "CPU quota of one sandboxed job (100 = one core)", FIELD(sandbox_cpu_percent), 1, 100000},
    {"cgroup-root", "EXECUTORD_CGROUP_ROOT", OPT_STRING, "/sys/fs/cgroup", "where the cgroup filesystem is mounted", FIELD(cgroup_root), 0, 0},
    {"pool-size", "EXECUTORD_POOL_SIZE", OPT_U64, "0", "warm pool sandboxes kept ready (0 = --workers)", FIELD(pool_size), 0, 1024},
    {"pool-when-empty", "EXECUTORD_POOL_WHEN_EMPTY", OPT_WHEN_EMPTY, "wait", "a pool job with no warm sandbox ready: wait for one, or start it cold", FIELD(pool_when_empty), 0, 0},
    {"pool-recycle-jobs", "EXECUTORD_POOL_RECYCLE_JOBS", OPT_U64, XSTR(SANDBOX_DEFAULT_POOL_RECYCLE_JOBS), "a pool's zygote is replaced after this many sandboxes (they share its hash secret, address layout and stack canary: docs/security-model.md)", FIELD(pool_recycle_jobs), 1, 1 << 30},
    {"pool-recycle-seconds", "EXECUTORD_POOL_RECYCLE_SECONDS", OPT_U64, XSTR(SANDBOX_DEFAULT_POOL_RECYCLE_SECONDS), "... or after this many seconds", FIELD(pool_recycle_seconds), 1, 1 << 30},
    {"pool-uid-base", "EXECUTORD_POOL_UID_BASE", OPT_U64, XSTR(SANDBOX_DEFAULT_POOL_UID_BASE), "first host uid of the pool's sandboxes", FIELD(pool_uid_base), 1, 4000000000LL},
    /* Each job limit's --default-* and --max-*, from sandbox/limits.def. */
#define LIMIT_OPTIONS(ctx, name, type, flag, env, dflt, max, request_min, config_min, ceiling, runner) \
    {"default-" flag, "EXECUTORD_DEFAULT_" env, OPT_KIND_##type, #dflt,                                  \
     "a job's " #name " when the request sets none", FIELD(default_limits.name), config_min, ceiling},   \
    {"max-" flag, "EXECUTORD_MAX_" env, OPT_KIND_##type, #max, "the largest " #name " a request may ask for", \
     FIELD(max_limits.name), config_min, ceiling},
    SANDBOX_LIMITS(LIMIT_OPTIONS, )
    {"egress-allow", "EXECUTORD_EGRESS_ALLOW", OPT_CIDRS, "", "an address range (CIDR) network-enabled jobs may reach although a built-in block covers it, e.g. an internal API or package index (repeatable; the variable takes a comma-separated list; the host's own addresses and --egress-deny stay blocked)", FIELD(egress_allow), 0, 0},
    {"egress-deny", "EXECUTORD_EGRESS_DENY", OPT_CIDRS, "", "an address range (CIDR) network-enabled jobs may not reach, besides the built-in blocks (repeatable; the variable takes a comma-separated list)", FIELD(egress_deny), 0, 0},
    {"slirp4netns", "EXECUTORD_SLIRP4NETNS", OPT_STRING, "/usr/bin/slirp4netns", "the user-space network stack of network-enabled jobs (Debian package slirp4netns)", FIELD(slirp4netns), 0, 0},
    {"pip-index-url", "EXECUTORD_PIP_INDEX_URL", OPT_URL, "", "the package index jobs' dependencies are installed from (http:// or https://, pip's --index-url; empty = none: with no package source at all, a job with dependencies gets 422)", FIELD(pip_index_url), 0, 0},
    {"pip-extra-index-url", "EXECUTORD_PIP_EXTRA_INDEX_URL", OPT_URLS, "", "a further package index (http:// or https://; repeatable; the variable takes a space-separated list, as pip's PIP_EXTRA_INDEX_URL does)", FIELD(pip_extra_index_urls), 0, 0},
    {"pip-find-links", "EXECUTORD_PIP_FIND_LINKS", OPT_PATH_OR_EMPTY, "", "an existing absolute folder of wheels to install dependencies from (an offline wheelhouse; empty = none)", FIELD(pip_find_links), 0, 0},
    {"deps-cache-mb", "EXECUTORD_DEPS_CACHE_MB", OPT_U64, "2048", "bound of the cache of installed dependency environments in <data-dir>/deps (least recently used evicted first)", FIELD(deps_cache_mb), 1, 1 << 24},
    {"deps-install-timeout-seconds", "EXECUTORD_DEPS_INSTALL_TIMEOUT_SECONDS", OPT_U64, "300", "how long installing a job's dependencies may take", FIELD(deps_install_timeout_seconds), 1, 86400},
    {"deps-install-disk-mb", "EXECUTORD_DEPS_INSTALL_DISK_MB", OPT_U64, "1024", "size of the tmpfs an install of dependencies writes into (its memory limit is the job's limits.memory_mb)", FIELD(deps_install_disk_mb), 1, 1 << 20},
    {"memory-budget-mb", "EXECUTORD_MEMORY_BUDGET_MB", OPT_U64, "0", "what the memory limits of all running jobs may add up to; a job waits in the queue until its limits.memory_mb fits (0 = 80% of the host's memory, or of executord's cgroup limit when lower)", FIELD(memory_budget_mb), 0, 1 << 24},
};

#define N_OPTIONS (sizeof options / sizeof options[0])
_Static_assert(N_OPTIONS <= CONFIG_MAX_OPTIONS, "raise CONFIG_MAX_OPTIONS (config.given)");

/* Every value is parsed by one function whatever its source, so an error message can
 * say where the bad value came from. */
static int parse_number(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!*s || isspace((unsigned char)*s) || *s == '-')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > (unsigned long long)max || (int64_t)v < min)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_listen(const char *s, config *c)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -1;
    size_t hostlen = (size_t)(colon - s);
    /* [::1]:8080 */
    if (s[0] == '[' && hostlen >= 2 && s[hostlen - 1] == ']') {
        s++;
        hostlen -= 2;
    }
    if (hostlen == 0 || hostlen >= sizeof c->listen_host)
        return -1;
    int64_t port;
    if (parse_number(colon + 1, 0, 65535, &port) != 0)
        return -1;
    memcpy(c->listen_host, s, hostlen);
    c->listen_host[hostlen] = '\0';
    c->listen_port = (int)port;
    return 0;
}

static const char *expectation(const option_def *o)
{
    static __thread char buf[128];
    switch (o->kind) {
    case OPT_LISTEN:
        return "HOST:PORT";
    case OPT_LEVEL:
        return "one of debug, info, warn, error";
    case OPT_BACKEND:
        snprintf(buf, sizeof buf, "one of %s", sandbox_backend_names());
        return buf;
    case OPT_SECONDS:
        snprintf(buf, sizeof buf, "a number of seconds from %lld to %lld", (long long)o->min, (long long)o->max);
        return buf;
    case OPT_INT:
    case OPT_U64:
        snprintf(buf, sizeof buf, "a whole number from %lld to %lld", (long long)o->min, (long long)o->max);
        return buf;
    case OPT_STRING:
        return "a non-empty path";
    case OPT_PATH_OR_EMPTY:
        return "a path, or empty";
    case OPT_TEXT_OR_EMPTY:
        return "a value (see --help), or empty";
    case OPT_WHEN_EMPTY:
        return "wait or cold";
    case OPT_DURABILITY:
        return "process-crash or power-loss";
    case OPT_MODE:
        return "no value";
    case OPT_FLAG:
        return "1, 0, true, false, yes or no";
    case OPT_HOSTS:
        return "host names or addresses (letters, digits, '.', '-', ':'; or '*')";
    case OPT_CIDRS:
        return "address ranges such as 10.1.0.0/16 or fd00::/8, comma-separated";
    case OPT_URL:
        return "an http:// or https:// URL, or empty";
    case OPT_URLS:
        return "http:// or https:// URLs, space-separated";
    case OPT_BACKENDS:
        snprintf(buf, sizeof buf, "a comma-separated list of %s, each at most once", sandbox_backend_names());
        return buf;
    }
    return "a valid value";
}

static int parse_flag(const char *s, int *out)
{
    if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes"))
        *out = 1;
    else if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no"))
        *out = 0;
    else
        return -1;
    return 0;
}

/* "pool,ephemeral": known names, each once, at least one; kept as given. */
static int parse_backends(const char *s, char *field, size_t size)
{
    if (!*s || strlen(s) >= size)
        return -1;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        if (!sandbox_backend_known(p, len))
            return -1;
        for (const char *q = s; q < p; q += strcspn(q, ",") + 1)
            if (strcspn(q, ",") == len && strncmp(q, p, len) == 0)
                return -1; /* named twice */
        p += len;
        if (*p == ',' && *++p == '\0')
            return -1; /* trailing comma */
    }
    memcpy(field, s, strlen(s) + 1);
    return 0;
}

/* One or more comma-separated names; each lower-cased (Host is case-insensitive) and
 * checked for the characters a host name or an address literal can hold. */
static int add_allowed_hosts(config *c, const char *s)
{
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof c->allowed_hosts[0] || c->n_allowed_hosts >= CONFIG_MAX_ALLOWED_HOSTS)
            return -1;
        char *h = c->allowed_hosts[c->n_allowed_hosts];
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (!isalnum(ch) && ch != '.' && ch != '-' && ch != ':' && !(ch == '*' && len == 1))
                return -1;
            h[i] = (char)tolower(ch);
        }
        h[len] = '\0';
        c->n_allowed_hosts++;
        p += len;
        if (*p == ',' && *++p == '\0')
            return -1;
    }
    return 0;
}

/* One or more comma-separated CIDRs, each kept in its canonical form (host bits
 * cleared) so that the same range given twice compares equal. */
static int add_cidrs(config_cidrs *l, const char *s)
{
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        char text[sizeof l->items[0]];
        egress_cidr cidr;
        if (len == 0 || len >= sizeof text || l->n >= CONFIG_MAX_CIDRS)
            return -1;
        memcpy(text, p, len);
        text[len] = '\0';
        if (egress_cidr_parse(text, &cidr) != 0)
            return -1;
        egress_cidr_format(&cidr, l->items[l->n++], sizeof l->items[0]);
        p += len;
        if (*p == ',' && *++p == '\0')
            return -1;
    }
    return 0;
}

/* http:// or https:// then a host: printable ASCII without spaces (pip reads it as one
 * argument). Its reachability is the install's business, not the configuration's. */
static bool url_valid(const char *s, size_t len)
{
    size_t scheme = strncasecmp(s, "http://", 7) == 0 ? 7 : strncasecmp(s, "https://", 8) == 0 ? 8 : 0;
    if (!scheme || len <= scheme || len >= CONFIG_URL_LEN || s[scheme] == '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* One or more space-separated URLs, each kept as given. */
static int add_urls(config_urls *l, const char *s)
{
    for (const char *p = s + strspn(s, " "); *p; p += strspn(p, " ")) {
        size_t len = strcspn(p, " ");
        if (l->n >= CONFIG_MAX_URLS || !url_valid(p, len))
            return -1;
        memcpy(l->items[l->n], p, len);
        l->items[l->n++][len] = '\0';
        p += len;
    }
    return 0;
}

static int apply_value(config *c, const option_def *o, const char *value)
{
    char *field = (char *)c + o->offset;
    switch (o->kind) {
    case OPT_STRING:
    case OPT_PATH_OR_EMPTY:
    case OPT_TEXT_OR_EMPTY:
        if (strlen(value) >= o->size || (!*value && o->kind == OPT_STRING))
            return -1;
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case OPT_LISTEN:
        return parse_listen(value, c);
    case OPT_BACKEND:
        if (!sandbox_backend_known(value, strlen(value)))
            return -1;
        snprintf(field, o->size, "%s", value);
        return 0;
    case OPT_LEVEL:
        return log_parse_level(value, (log_level *)field);
    case OPT_WHEN_EMPTY:
        if (strcmp(value, "wait") && strcmp(value, "cold"))
            return -1;
        snprintf(field, o->size, "%s", value);
        return 0;
    case OPT_DURABILITY:
        if (strcmp(value, "process-crash") && strcmp(value, "power-loss"))
            return -1;
        snprintf(field, o->size, "%s", value);
        return 0;
    case OPT_FLAG:
        return parse_flag(value, (int *)field);
    case OPT_HOSTS:
        return add_allowed_hosts(c, value);
    case OPT_BACKENDS:
        return parse_backends(value, field, o->size);
    case OPT_CIDRS:
        return add_cidrs((config_cidrs *)field, value);
    case OPT_URL:
        if (*value && !url_valid(value, strlen(value)))
            return -1;
        snprintf(field, o->size, "%s", value);
        return 0;
    case OPT_URLS:
        return add_urls((config_urls *)field, value);
    case OPT_MODE:
        /* Only the embedded default ("0") and the bare flag ("1") reach here. */
        *(int *)field = strcmp(value, "1") == 0;
        return 0;
    case OPT_INT: {
        int64_t v;
        if (parse_number(value, o->min, o->max, &v) != 0)
            return -1;
        *(int *)field = (int)v;
        return 0;
    }
    case OPT_U64: {
        int64_t v;
        if (parse_number(value, o->min, o->max, &v) != 0)
            return -1;
        *(uint64_t *)field = (uint64_t)v;
        return 0;
    }
    case OPT_SECONDS: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (!*value || errno || *end || !isfinite(v) || v < (double)o->min || v > (double)o->max)
            return -1;
        if (v <= 0 && strcmp(o->flag, "shutdown-grace-seconds") != 0)
            return -1;
        *(double *)field = v;
        return 0;
    }
    }
    return -1;
}

static void print_help(void)
{
    printf("Usage: executord [OPTION]...\n"
           "Runs untrusted Python scripts in Linux sandboxes behind a JSON HTTP API.\n\n"
           "Every option can also be set by the environment variable shown; a flag wins.\n\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option_def *o = &options[i];
        if (o->kind == OPT_MODE)
            printf("  --%-26s %s\n", o->flag, o->help);
        else if (o->kind == OPT_FLAG)
            printf("  --%-26s %s\n  %-28s env %s=1\n", o->flag, o->help, "", o->env);
        else
            printf("  --%-26s %s\n  %-28s env %s, default \"%s\"\n", o->flag, o->help, "", o->env, o->def);
    }
    printf("  --%-26s %s\n  --%-26s %s\n", "help", "show this help and exit", "version",
           "show the version and exit");
    printf("\nBackends (--backend, --backends):\n");
    for (const sandbox_backend *const *b = sandbox_backends_all(); *b; b++)
        printf("  %-28s %s%s%s\n", (*b)->name, (*b)->description, (*b)->builds_on ? "; builds on " : "",
               (*b)->builds_on ? (*b)->builds_on : "");
}

static const option_def *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, name, len) == 0)
            return &options[i];
    return NULL;
}

static int read_token_file(config *c)
{
    c->api_token[0] = '\0';
    if (!c->api_token_file[0])
        return 0;
    int fd = open(c->api_token_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "executord: cannot read --api-token-file %s: %s\n", c->api_token_file, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, c->api_token, sizeof c->api_token - 1);
    int saved = errno;
    close(fd);
    if (n < 0) {
        fprintf(stderr, "executord: cannot read --api-token-file %s: %s\n", c->api_token_file, strerror(saved));
        return -1;
    }
    c->api_token[n] = '\0';
    /* Trailing newlines come from `echo token > file`; they are not part of the token. */
    while (n > 0 && (c->api_token[n - 1] == '\n' || c->api_token[n - 1] == '\r'))
        c->api_token[--n] = '\0';
    if (n == 0 || (size_t)n >= sizeof c->api_token - 1 || strlen(c->api_token) != (size_t)n) {
        fprintf(stderr, "executord: --api-token-file %s must hold one token of 1 to %zu bytes\n",
                c->api_token_file, sizeof c->api_token - 2);
        return -1;
    }
    return 0;
}

/* Cross-field rules: a default above its maximum would make every job invalid. */
static double limit_value(const sandbox_limits *l, const sandbox_limit_desc *d)
{
    return d->type == SANDBOX_LIMIT_SECONDS ? sandbox_limit_seconds(l, d) : (double)sandbox_limit_u64(l, d);
}

/* The store's location is checked again by the store; this catches a typo before
 * anything starts. */
static int check_replicas(const config *c)
{
    const char *u = c->store_url;
    if (u[0] && strncmp(u, "postgresql://", 13) != 0 && strncmp(u, "postgres://", 11) != 0) {
        fprintf(stderr, "executord: --store must be a postgresql:// URL (or empty for SQLite in "
                        "--data-dir)\n");
        return -1;
    }
    size_t n = strlen(c->replica_id);
    for (size_t i = 0; i < n; i++) {
        if (n > 63 || (!isalnum((unsigned char)c->replica_id[i]) && !strchr("._-", c->replica_id[i]))) {
            fprintf(stderr, "executord: --replica-id '%s': 1 to 63 characters of A-Z a-z 0-9 . _ -\n",
                    c->replica_id);
            return -1;
        }
    }
    return 0;
}

static int check_consistency(const config *c)
{
    if (check_replicas(c) != 0)
        return -1;
    for (size_t i = 0; i < sandbox_limit_count; i++) {
        const sandbox_limit_desc *d = &sandbox_limit_descs[i];
        double def = limit_value(&c->default_limits, d), max = limit_value(&c->max_limits, d);
        if (def > max) {
            fprintf(stderr, "executord: --default-%s (%g) is above --max-%s (%g)\n", d->flag, def,
                    d->flag, max);
            return -1;
        }
    }
    return 0;
}

/* The wheelhouse is read by every install: a relative path would depend on the working
 * folder, a missing one would fail every job with dependencies much later. */
static int check_packages(const config *c)
{
    const char *dir = c->pip_find_links;
    struct stat st;
    if (!dir[0])
        return 0;
    if (dir[0] != '/') {
        fprintf(stderr, "executord: --pip-find-links %s must be an absolute path\n", dir);
        return -1;
    }
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "executord: --pip-find-links %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "executord: --pip-find-links %s is not a folder\n", dir);
        return -1;
    }
    return 0;
}

bool config_has_package_source(const config *c)
{
    return c->pip_index_url[0] || c->pip_extra_index_urls.n > 0 || c->pip_find_links[0];
}

bool config_host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) != 1)
        return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

bool config_given(const config *c, const char *flag)
{
    const option_def *o = find_flag(flag, strlen(flag));
    return o && c->given[o - options];
}

bool config_list_contains(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p; p += *p == ',') {
        size_t n = strcspn(p, ",");
        if (n == len && strncmp(p, name, len) == 0)
            return true;
        p += n;
    }
    return false;
}

bool config_backend_enabled(const config *c, const char *name)
{
    return config_list_contains(c->backends, name);
}

/* The rules that keep a default install safe: weaker settings are refused unless they
 * cannot expose the API beyond this machine. */
static int check_security(const config *c)
{
    if (c->insecure_no_auth && c->api_token_file[0]) {
        fprintf(stderr, "executord: --insecure-no-auth and --api-token-file contradict each other: choose one\n");
        return -1;
    }
    if (c->insecure_no_auth && !config_host_is_loopback(c->listen_host)) {
        fprintf(stderr, "executord: refusing --insecure-no-auth on %s: without a token anyone who can reach "
                        "that address could run code here; listen on a loopback address "
                        "(--listen 127.0.0.1:PORT) or drop --insecure-no-auth (a token is then generated)\n",
                c->listen_host);
        return -1;
    }
    for (int i = 0; i < c->n_allowed_hosts; i++) {
        if (strcmp(c->allowed_hosts[i], "*") == 0 && c->insecure_no_auth) {
            fprintf(stderr, "executord: refusing --allowed-host '*' with --insecure-no-auth: accepting any "
                            "Host name leaves the token as the only protection against DNS rebinding\n");
            return -1;
        }
    }
    for (int i = 0; i < c->egress_allow.n; i++)
        for (int k = 0; k < c->egress_deny.n; k++)
            if (strcmp(c->egress_allow.items[i], c->egress_deny.items[k]) == 0) {
                fprintf(stderr, "executord: %s is in both --egress-allow and --egress-deny: choose one\n",
                        c->egress_allow.items[i]);
                return -1;
            }
    if (!config_backend_enabled(c, c->backend)) {
        fprintf(stderr, "executord: the default backend '%s' (--backend) is not in --backends %s\n",
                c->backend, c->backends);
        return -1;
    }
    return 0;
}

int config_load(config *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (apply_value(c, &options[i], options[i].def) != 0) {
            fprintf(stderr, "executord: internal error: bad default for --%s\n", options[i].flag);
            return 2;
        }
    }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *v = options[i].env ? getenv(options[i].env) : NULL;
        if (v && apply_value(c, &options[i], v) != 0) {
            fprintf(stderr, "executord: invalid %s=\"%s\": expected %s\n", options[i].env, v,
                    expectation(&options[i]));
            return 2;
        }
        if (v)
            c->given[i] = true;
    }
    bool hosts_from_flags = false, list_from_flags[N_OPTIONS];
    memset(list_from_flags, 0, sizeof list_from_flags);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help();
            return 1;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("executord %s\n", EXECUTORD_VERSION);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "executord: unexpected argument \"%s\" (see --help)\n", arg);
            return 2;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const option_def *o = find_flag(name, len);
        if (!o) {
            fprintf(stderr, "executord: unknown option \"--%.*s\" (see --help)\n", (int)len, name);
            return 2;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (o->kind == OPT_HOSTS && !hosts_from_flags) {
            /* The flags replace the variable's list rather than adding to it. */
            c->n_allowed_hosts = 0;
            hosts_from_flags = true;
        }
        if ((o->kind == OPT_CIDRS || o->kind == OPT_URLS) && !list_from_flags[o - options]) {
            /* likewise */
            if (o->kind == OPT_CIDRS)
                ((config_cidrs *)((char *)c + o->offset))->n = 0;
            else
                ((config_urls *)((char *)c + o->offset))->n = 0;
            list_from_flags[o - options] = true;
        }
        if (o->kind == OPT_FLAG && !value) {
            value = "1";
        } else if (o->kind == OPT_MODE) {
            if (value) {
                fprintf(stderr, "executord: option --%s takes no value\n", o->flag);
                return 2;
            }
            value = "1";
        } else if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "executord: option --%s needs a value: %s\n", o->flag, expectation(o));
                return 2;
            }
            value = argv[++i];
        }
        if (((o->kind == OPT_HOSTS || o->kind == OPT_CIDRS || o->kind == OPT_URLS) && !*value) || apply_value(c, o, value) != 0) {
            fprintf(stderr, "executord: invalid value \"%s\" for --%s: expected %s\n", value, o->flag,
                    expectation(o));
            return 2;
        }
        c->given[o - options] = true;
    }
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n > 0 ? (int)n : 1;
    }
    /* The health check needs no token (/readyz never asks for one) and must not fail on
     * a token file it has no business reading. */
    if (check_consistency(c) != 0 || check_security(c) != 0 ||
        (!c->healthcheck && (read_token_file(c) != 0 || check_packages(c) != 0)))
        return 2;
    return 0;
}

void config_describe(const config *c, char *buf, size_t len)
{
    snprintf(buf, len,
             "listen=%s:%d data_dir=%s store=%s durability=%s backend=%s backends=%s workers=%d python=%s auth=%s "
             "allowed_hosts=%d log_level=%s "
             "max_body_bytes=%llu max_queued=%lld grace=%gs retention=%llds "
             "default_timeout=%gs max_timeout=%gs default_memory_mb=%llu max_output_bytes=%llu",
             c->listen_host, c->listen_port, c->data_dir, c->store_url[0] ? "postgresql" : "sqlite",
             c->store_url[0] ? "server's" : c->durability, c->backend, c->backends, c->workers, c->python,
             c->insecure_no_auth ? "NONE" : c->api_token_file[0] ? "token-file" : "generated-token",
             c->n_allowed_hosts, log_level_name(c->log_level),
             (unsigned long long)c->max_body_bytes, (long long)c->max_queued, c->shutdown_grace_seconds,
             (long long)c->retention_seconds, c->default_limits.timeout_seconds,
             c->max_limits.timeout_seconds, (unsigned long long)c->default_limits.memory_mb,
             (unsigned long long)c->default_limits.max_output_bytes);
}
