/* The package install (see depinstall.h): the tmpfs it writes into, its egress (the index
 * hosts only), the sandbox run through the ephemeral backend, the mapping of its outcome
 * to PackageInstallError, and the copy into the cache. The copy walks a tree a sandbox
 * wrote, so it follows no symbolic link, keeps only folders, regular files and links, and
 * drops every permission bit but the read and execute ones. */
#include "src/depinstall.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/backends.h"
#include "src/log.h"

#define MAX_EGRESS 64
#define MAX_DEPTH 128

bool depinstall_has_source(const depinstall_config *cfg)
{
    return (cfg->index_url && *cfg->index_url) || (cfg->find_links && *cfg->find_links) ||
           (cfg->extra_index_urls && cfg->extra_index_urls[0]);
}

char *depinstall_sources_text(const depinstall_config *cfg)
{
    json_t *o = json_pack("{s:s?,s:[],s:s?}", "index_url", cfg->index_url, "extra_index_urls",
                          "find_links", cfg->find_links);
    json_t *extra = json_object_get(o, "extra_index_urls");
    for (size_t i = 0; extra && cfg->extra_index_urls && cfg->extra_index_urls[i]; i++)
        json_array_append_new(extra, json_string(cfg->extra_index_urls[i]));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return text;
}

/* --- the interpreter ---------------------------------------------------------------- */

static const char interpreter_probe[] =
    "import sys, sysconfig; print(sys.version.replace('\\n', ' '), sysconfig.get_platform(), "
    "sys.implementation.cache_tag)";

int depinstall_interpreter(const char *python, const char *rootfs, char *buf, size_t len)
{
    if (rootfs && *rootfs) {
        /* Not run on the host: it belongs to another root. Its file stands for it. */
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s%s", rootfs, python);
        if (stat(path, &st) != 0) {
            snprintf(buf, len, "stat %s: %s", path, strerror(errno));
            return -1;
        }
        snprintf(buf, len, "%s in %s: %lld bytes, modified %lld", python, rootfs, (long long)st.st_size,
                 (long long)st.st_mtim.tv_sec);
        return 0;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(buf, len, "pipe2: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char *argv[] = {(char *)python, "-I", "-S", "-c", (char *)interpreter_probe, NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, python, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        snprintf(buf, len, "cannot run %s: %s", python, strerror(rc));
        return -1;
    }
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && ((r = read(p[0], buf + n, len - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            n += (size_t)r;
    close(p[0]);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !buf[0]) {
        snprintf(buf, len, "%s could not tell its version (status %d)", python, status);
        return -1;
    }
    return 0;
}

/* --- the index hosts ----------------------------------------------------------------------- */

typedef struct url_parts {
    bool https;
    char host[256];
    unsigned port;
    const char *rest; /* from the path on ("" when none) */
    const char *host_start, *host_end; /* the host (and port) text in the URL */
} url_parts;

static int parse_url(const char *url, url_parts *u)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        u->https = true;
        p = url + 8;
    } else {
        return -1;
    }
    u->host_start = p;
    size_t hl = strcspn(p, ":/?#");
    if (hl == 0 || hl >= sizeof u->host || memchr(p, '@', strcspn(p, "/?#")))
        return -1; /* no host, or credentials (they would end up in logs) */
    memcpy(u->host, p, hl);
    u->host[hl] = '\0';
    p += hl;
    u->port = u->https ? 443 : 80;
    if (*p == ':') {
        char *end;
        unsigned long port = strtoul(p + 1, &end, 10);
        if (end == p + 1 || port == 0 || port > 65535)
            return -1;
        u->port = (unsigned)port;
        p = end;
    }
    u->host_end = p;
    u->rest = p;
    return 0;
}

int depinstall_check_config(const depinstall_config *cfg, char *err, size_t errlen)
{
    url_parts u;
    if (cfg->index_url && parse_url(cfg->index_url, &u) != 0) {
        snprintf(err, errlen, "--pip-index-url '%s': not an http:// or https:// URL with a host (and no "
                 "credentials)", cfg->index_url);
        return -1;
    }
    for (size_t i = 0; cfg->extra_index_urls && cfg->extra_index_urls[i]; i++)
        if (parse_url(cfg->extra_index_urls[i], &u) != 0) {
            snprintf(err, errlen, "--pip-extra-index-url '%s': not an http:// or https:// URL with a host "
                     "(and no credentials)", cfg->extra_index_urls[i]);
            return -1;
        }
    return 0;
}

typedef struct egress {
    char items[MAX_EGRESS][32];
    const char *list[MAX_EGRESS + 1];
    int n;
} egress;

static void egress_add(egress *e, const struct in_addr *a, unsigned port)
{
    char ip[INET_ADDRSTRLEN], item[32];
    inet_ntop(AF_INET, a, ip, sizeof ip);
    snprintf(item, sizeof item, "%s:%u", ip, port);
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->items[i], item) == 0)
            return;
    if (e->n < MAX_EGRESS)
        snprintf(e->items[e->n++], sizeof e->items[0], "%s", item);
}

/* The URL the sandbox uses for an index, and the places its egress policy lets it reach:
 * the host's IPv4 addresses (resolved now) at its port. An index on the service's
 * loopback is reached through slirp4netns's gateway: its URL names that instead. */
static char *index_for_sandbox(const char *url, egress *e, char *err, size_t errlen)
{
    url_parts u;
    if (parse_url(url, &u) != 0) {
        snprintf(err, errlen, "'%s' is not an http or https URL", url);
        return NULL;
    }
    struct in_addr lo;
    bool loopback = strcmp(u.host, "localhost") == 0 ||
                    (inet_pton(AF_INET, u.host, &lo) == 1 && (ntohl(lo.s_addr) >> 24) == 127);
    if (loopback) {
        if (strcmp(u.host, "localhost") == 0)
            inet_pton(AF_INET, "127.0.0.1", &lo);
        egress_add(e, &lo, u.port);
        char *out = NULL;
        if (asprintf(&out, "%.*s%s:%u%s", (int)(u.host_start - url), url, SANDBOX_NET_HOST_LOOPBACK, u.port,
                     u.rest) < 0)
            out = NULL;
        return out;
    }
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(u.host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the index host %s: %s", u.host, gai_strerror(rc));
        return NULL;
    }
    for (struct addrinfo *a = res; a; a = a->ai_next)
        egress_add(e, &((struct sockaddr_in *)a->ai_addr)->sin_addr, u.port);
    freeaddrinfo(res);
    return strdup(url);
}

/* --- the copy into the cache ------------------------------------------------------------ */

static int copy_file(int from_dir, const char *name, int to_dir, const struct stat *st)
{
    int in = openat(from_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (in < 0)
        return -1;
    struct stat now;
    if (fstat(in, &now) != 0 || !S_ISREG(now.st_mode) || now.st_ino != st->st_ino) {
        close(in);
        errno = EPERM;
        return -1;
    }
    mode_t mode = (now.st_mode & 0111) ? 0755 : 0644;
    int out = openat(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (out < 0) {
        close(in);
        return -1;
    }
    int rc = 0;
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -1 : 0;
            break;
        }
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    /* The modification time kept: pip's compiled .pyc files are checked against it. */
    struct timespec times[2] = {now.st_atim, now.st_mtim};
    if (rc == 0 && (fchmod(out, mode) != 0 || futimens(out, times) != 0))
        rc = -1;
    int saved = errno;
    close(in);
    if (close(out) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

/* Copies the folder from_fd into the folder to_fd, depth levels down at most. */
static int copy_dir(int from_fd, int to_fd, int depth, char *err, size_t errlen)
{
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "folders nested deeper than %d", MAX_DEPTH);
        return -1;
    }
    int dup_fd = dup(from_fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        snprintf(err, errlen, "opendir: %s", strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(from_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            snprintf(err, errlen, "%s: stat: %s", name, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            int sub_from = openat(from_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int sub_to = -1;
            if (sub_from < 0 || mkdirat(to_fd, name, 0755) != 0 ||
                (sub_to = openat(to_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                snprintf(err, errlen, "%s: %s", name, strerror(errno));
                rc = -1;
            } else {
                rc = copy_dir(sub_from, sub_to, depth + 1, err, errlen);
                struct timespec times[2] = {st.st_atim, st.st_mtim};
                if (rc == 0 && futimens(sub_to, times) != 0) {
                    snprintf(err, errlen, "%s: futimens: %s", name, strerror(errno));
                    rc = -1;
                }
            }
            if (sub_from >= 0)
                close(sub_from);
            if (sub_to >= 0)
                close(sub_to);
        } else if (S_ISREG(st.st_mode)) {
            if (copy_file(from_fd, name, to_fd, &st) != 0) {
                snprintf(err, errlen, "%s: %s", name, strerror(errno));
                rc = -1;
            }
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(from_fd, name, target, sizeof target - 1);
            if (n < 0 || (target[n] = '\0', symlinkat(target, to_fd, name)) != 0) {
                snprintf(err, errlen, "%s: symlink: %s", name, strerror(errno));
                rc = -1;
            }
        }
        /* Anything else (a FIFO, a socket) is not part of a Python environment: left out. */
    }
    if (rc == 0 && errno != 0) {
        snprintf(err, errlen, "readdir: %s", strerror(errno));
        rc = -1;
    }
    closedir(d);
    return rc;
}

static int copy_tree(const char *from, const char *to, char *err, size_t errlen)
{
    int from_fd = open(from, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (from_fd < 0) {
        snprintf(err, errlen, "open %.200s: %s", from, strerror(errno));
        return -1;
    }
    int to_fd = -1;
    if (mkdir(to, 0755) != 0 || (to_fd = open(to, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%.200s: %s", to, strerror(errno));
        close(from_fd);
        return -1;
    }
    int rc = copy_dir(from_fd, to_fd, 0, err, errlen);
    close(from_fd);
    close(to_fd);
    return rc;
}

/* --- the run ---------------------------------------------------------------------------- */

/* The runner's fields: the script and main's inputs. */
static char *install_fields(const depinstall_job *j, const char *index_url, json_t *extras, char *err,
                            size_t errlen)
{
    json_error_t jerr;
    json_t *reqs = json_loads(j->deps_json, 0, &jerr);
    if (!json_is_array(reqs)) {
        json_decref(reqs);
        snprintf(err, errlen, "the job's dependencies are not a JSON array");
        return NULL;
    }
    json_t *fields = json_pack("{s:s,s:{s:o,s:s?,s:O,s:s?}}", "script", depinstall_script_source, "inputs",
                               "requirements", reqs, "index_url", index_url, "extra_index_urls", extras,
                               "find_links", j->cfg->find_links ? SANDBOX_WHEELS_PATH : NULL);
    char *text = fields ? json_dumps(fields, JSON_COMPACT) : NULL;
    json_decref(fields);
    if (!text)
        snprintf(err, errlen, "out of memory");
    return text;
}

/* The sandbox's outcome as the job's: only a failure of pip itself is PackageInstallError
 * with its message; the install running out of time or memory is too, said so. */
static void map_outcome(const depinstall_job *j, sandbox_outcome *out)
{
    static const char prefix[] = "PackageInstallError: ";
    const char *type = out->error_type ? out->error_type : "";
    const char *msg = out->error_message ? out->error_message : "";
    char *copy = NULL;
    switch (out->verdict) {
    case SANDBOX_SUCCEEDED:
    case SANDBOX_CANCELLED:
    case SANDBOX_SETUP_ERROR:
        return;
    case SANDBOX_TIMED_OUT:
        sandbox_outcome_set_error(out, "PackageInstallError",
                                  "the install did not finish within %" PRIu64
                                  " s (--deps-install-timeout-seconds)", j->cfg->timeout_seconds);
        break;
    case SANDBOX_OUTPUT_LIMIT:
        sandbox_outcome_set_error(out, "PackageInstallError",
                                  "the install's output passed limits.max_output_bytes (%" PRIu64 ")",
                                  j->limits->max_output_bytes);
        break;
    case SANDBOX_FAILED:
        if (strcmp(type, "SandboxExecutionError") == 0 && strncmp(msg, prefix, sizeof prefix - 1) == 0) {
            copy = strdup(msg + sizeof prefix - 1);
            sandbox_outcome_set_error(out, "PackageInstallError", "%s", copy ? copy : "pip failed");
        } else {
            copy = strdup(msg);
            sandbox_outcome_set_error(out, "PackageInstallError", "the install failed: %s: %s", type,
                                      copy ? copy : "");
        }
        break;
    }
    free(copy);
    free(out->error_traceback);
    out->error_traceback = NULL;
    out->verdict = SANDBOX_FAILED;
}

static int setup_error(sandbox_outcome *out, const char *what, const char *why)
{
    out->verdict = SANDBOX_SETUP_ERROR;
    sandbox_outcome_set_error(out, "SandboxError", "package install: %s: %s", what, why);
    return -1;
}

int depinstall_run(void *ctx, const char *work, const char *dest, sandbox_outcome *out)
{
    const depinstall_job *j = ctx;
    const depinstall_config *cfg = j->cfg;
    const char *why = NULL;
    const sandbox_backend *b = backends_get("ephemeral");
    if (!b) {
        backends_available("ephemeral", &why);
        return setup_error(out, "the ephemeral backend is not available", why ? why : "unknown");
    }
    char err[512] = "";
    egress eg = {.n = 0};
    char *index_url = NULL;
    json_t *extras = json_array();
    const char *const *extra = cfg->extra_index_urls;
    if (cfg->index_url && !(index_url = index_for_sandbox(cfg->index_url, &eg, err, sizeof err))) {
        json_decref(extras);
        return setup_error(out, "index", err);
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        char *u = index_for_sandbox(extra[i], &eg, err, sizeof err);
        if (!u || json_array_append_new(extras, json_string(u)) != 0) {
            free(u);
            free(index_url);
            json_decref(extras);
            return setup_error(out, "extra index", err[0] ? err : "out of memory");
        }
        free(u);
    }
    for (int i = 0; i < eg.n; i++)
        eg.list[i] = eg.items[i];
    eg.list[eg.n] = NULL;
    char *fields = install_fields(j, index_url, extras, err, sizeof err);
    free(index_url);
    json_decref(extras);
    if (!fields)
        return setup_error(out, "spec", err);

    /* The tmpfs the install writes: its size is the install's disk; 0777 because the
     * sandbox's user is a fresh uid (the cache's folders around it are 0700). */
    char mnt[PATH_MAX], opts[128];
    snprintf(mnt, sizeof mnt, "%s/mnt", work);
    snprintf(opts, sizeof opts, "size=%" PRIu64 "m,nr_inodes=%" PRIu64 ",mode=0777", cfg->disk_mb,
             cfg->disk_mb * 256);
    if (mkdir(mnt, 0700) != 0 || mount("executord-deps", mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        free(fields);
        return setup_error(out, mnt, strerror(errno));
    }
    char install_id[128];
    snprintf(install_id, sizeof install_id, "%s-deps", j->job_id);
    sandbox_limits limits = *j->limits;
    limits.timeout_seconds = (double)cfg->timeout_seconds;
    limits.cpu_seconds = cfg->timeout_seconds;
    /* A wheel is one file: the disk is the bound, not the job's file size limit. */
    if (limits.max_file_size_mb < cfg->disk_mb)
        limits.max_file_size_mb = cfg->disk_mb;
    sandbox_spec spec = {
        .job_id = install_id,
        .runner_fields_json = fields,
        .env = NULL,
        .allow_network = eg.n > 0,
        .egress_only = eg.n > 0 ? eg.list : NULL,
        .packages = {.dir = mnt, .writable = true, .wheels_dir = cfg->find_links},
        .limits = limits,
        .cancel_fd = j->cancel_fd,
    };
    log_info("job %s: installing its dependencies %s in sandbox %s", j->job_id, j->deps_json, install_id);
    sandbox_outcome run;
    sandbox_outcome_init(&run);
    b->run(&spec, j->io, &run);
    free(fields);
    map_outcome(j, &run);
    int rc = -1;
    if (run.verdict == SANDBOX_SUCCEEDED) {
        if (copy_tree(mnt, dest, err, sizeof err) == 0)
            rc = 0;
        else
            setup_error(out, "copying the environment into the cache", err);
    } else {
        out->verdict = run.verdict;
        sandbox_outcome_set_error(out, run.error_type ? run.error_type : "PackageInstallError", "%s",
                                  run.error_message ? run.error_message : "the install failed");
    }
    out->usage = run.usage;
    sandbox_outcome_free(&run);
    if (umount2(mnt, MNT_DETACH) != 0)
        log_warn("job %s: cannot unmount %s: %s", j->job_id, mnt, strerror(errno));
    return rc;
}
