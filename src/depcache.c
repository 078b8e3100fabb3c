/* The environment cache (see depcache.h). One mutex guards the index of environments and
 * the installs in flight; no file system work happens under it except renames. An
 * install in flight is a "flight": its waiters poll a pipe that the installer closes when
 * the outcome is known, so a waiter can also poll its job's cancel descriptor. The last
 * use of an environment is its folder's modification time, so LRU order survives a
 * restart. Layout: envs/<id> published, staging/<id>.<n> installs, trash/ evicted. */
#include "src/depcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "src/log.h"
#include "src/metrics.h"
#include "src/timeutil.h"

#define MIB ((uint64_t)1 << 20)

typedef struct flight {
    int done_pipe[2];      /* [1] closed by the installer when the outcome is known */
    bool done, ok, cancelled;
    unsigned waiters;      /* jobs waiting for it (each takes a hold when it succeeds) */
    unsigned refs;         /* the installer and the waiters still looking at it */
    sandbox_outcome failure;
} flight;

typedef struct env {
    char id[DEPCACHE_ID_LEN + 1];
    uint64_t bytes;
    int64_t last_used_ns;
    unsigned holds;        /* running jobs using it */
    flight *installing;    /* non-NULL while being installed (not yet published) */
    struct env *next;
} env;

struct depcache {
    char dir[PATH_MAX - 100];
    uint64_t max_bytes;
    pthread_mutex_t mu;
    env *envs;
    uint64_t bytes;        /* published environments */
    unsigned count;
    atomic_uint seq;       /* names staging and trash folders uniquely in this process */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- trees ------------------------------------------------------------------------------ */

static _Thread_local int64_t tree_total;

static int add_blocks(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)path, (void)flag, (void)f;
    tree_total += (int64_t)st->st_blocks * 512;
    return 0;
}

int64_t depcache_tree_bytes(const char *path)
{
    tree_total = 0;
    if (nftw(path, add_blocks, 32, FTW_PHYS) != 0)
        return -1;
    return tree_total;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)f;
    int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
    return rc != 0 && errno != ENOENT ? -1 : 0;
}

int depcache_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    /* FTW_MOUNT: never into a file system mounted below (a stale install's tmpfs is
     * unmounted first; should that fail, its files are not ours to walk). */
    return nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_mountinfo(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
            r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

int depcache_unmount_below(const char *prefix)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -1;
    char *line = NULL, **found = NULL;
    size_t cap = 0, n = 0, plen = strlen(prefix);
    int rc = 0;
    while (getline(&line, &cap, f) > 0) {
        char point[PATH_MAX];
        /* id parent major:minor root mount-point ... */
        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1)
            continue;
        unescape_mountinfo(point);
        if (strncmp(point, prefix, plen) != 0 || (point[plen] != '/' && point[plen] != '\0'))
            continue;
        char **grown = realloc(found, (n + 1) * sizeof *found);
        char *copy = strdup(point);
        if (!grown || !copy) {
            free(copy);
            if (grown)
                found = grown;
            rc = -1;
            break;
        }
        found = grown;
        found[n++] = copy;
    }
    free(line);
    fclose(f);
    /* Newest first: a mount on top of another goes before it. */
    for (size_t i = n; i-- > 0;) {
        if (umount2(found[i], MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
            rc = -1;
        free(found[i]);
    }
    free(found);
    return rc;
}

/* --- the index ------------------------------------------------------------------------- */

static bool is_env_id(const char *name)
{
    if (strlen(name) != DEPCACHE_ID_LEN)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* c->dir leaves 100 bytes for what and name: never cut. */
static void sub(const depcache *c, char *buf, size_t len, const char *what, const char *name)
{
    if (snprintf(buf, len, "%s/%s%s%s", c->dir, what, name ? "/" : "", name ? name : "") >= (int)len)
        buf[0] = '\0';
}

static env *find_env(depcache *c, const char *id)
{
    for (env *e = c->envs; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void unlink_env(depcache *c, env *gone)
{
    for (env **p = &c->envs; *p; p = &(*p)->next)
        if (*p == gone) {
            *p = gone->next;
            return;
        }
}

static void publish_gauges(depcache *c)
{
    metrics_deps_cache_size(c->bytes, c->count);
}

/* Picks what to evict, with c->mu held: the least recently used environments no job holds
 * until the published ones fit; each is renamed into trash/ at once (it is gone from
 * envs/ for everyone) and its removal, which may be long, happens after the lock, in
 * trash_remove. Returns how many names it put in trash (each malloc'd). */
static size_t evict_locked(depcache *c, char ***trash)
{
    size_t n = 0;
    *trash = NULL;
    while (c->bytes > c->max_bytes) {
        env *lru = NULL;
        for (env *e = c->envs; e; e = e->next)
            if (!e->installing && e->holds == 0 && (!lru || e->last_used_ns < lru->last_used_ns))
                lru = e;
        if (!lru)
            break; /* the rest is in use: over the bound until those jobs end */
        char from[PATH_MAX], to[PATH_MAX], name[DEPCACHE_ID_LEN + 32];
        snprintf(name, sizeof name, "%s.%u", lru->id, atomic_fetch_add(&c->seq, 1));
        sub(c, from, sizeof from, "envs", lru->id);
        sub(c, to, sizeof to, "trash", name);
        if (rename(from, to) != 0) {
            log_error("deps cache: cannot evict %s: rename: %s", lru->id, strerror(errno));
            break;
        }
        char **grown = realloc(*trash, (n + 1) * sizeof **trash);
        if (grown) {
            *trash = grown;
            (*trash)[n++] = strdup(to);
        }
        log_info("deps cache: evicted environment %s (%" PRIu64 " bytes, least recently used)", lru->id,
                 lru->bytes);
        metrics_deps_evicted();
        c->bytes -= lru->bytes;
        c->count--;
        unlink_env(c, lru);
        free(lru);
    }
    publish_gauges(c);
    return n;
}

static void trash_remove(char **trash, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (trash[i] && depcache_remove_tree(trash[i]) != 0)
            log_warn("deps cache: cannot remove %s: %s", trash[i], strerror(errno));
        free(trash[i]);
    }
    free(trash);
}

/* Empties staging/ or trash/ of what a dead instance left, unmounting first. */
static int sweep(depcache *c, const char *what)
{
    char dir[PATH_MAX];
    sub(c, dir, sizeof dir, what, NULL);
    if (depcache_unmount_below(dir) != 0)
        log_warn("deps cache: cannot unmount everything below %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        sub(c, path, sizeof path, what, de->d_name);
        if (depcache_remove_tree(path) != 0)
            log_warn("deps cache: cannot remove %s: %s", path, strerror(errno));
        else
            removed++;
    }
    closedir(d);
    return removed;
}

static int make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a folder", path);
        return -1;
    }
    return 0;
}

/* Reads envs/ into the index: each folder named as an id, its size and last use. */
static int index_envs(depcache *c, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    sub(c, dir, sizeof dir, "envs", NULL);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "opendir %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        sub(c, path, sizeof path, "envs", de->d_name);
        struct stat st;
        int64_t bytes = -1;
        if (!is_env_id(de->d_name) || lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
            (bytes = depcache_tree_bytes(path)) < 0) {
            log_warn("deps cache: removing %s: not an environment", path);
            if (depcache_remove_tree(path) != 0)
                log_warn("deps cache: cannot remove %s: %s", path, strerror(errno));
            continue;
        }
        env *e = calloc(1, sizeof *e);
        if (!e) {
            closedir(d);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        memcpy(e->id, de->d_name, DEPCACHE_ID_LEN + 1);
        e->bytes = (uint64_t)bytes;
        e->last_used_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        e->next = c->envs;
        c->envs = e;
        c->bytes += e->bytes;
        c->count++;
    }
    closedir(d);
    return 0;
}

depcache *depcache_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
    depcache *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strlen(dir) >= sizeof c->dir) {
        snprintf(err, errlen, "%s: path too long", dir);
        free(c);
        return NULL;
    }
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    c->max_bytes = max_bytes;
    pthread_mutex_init(&c->mu, NULL);
    char path[PATH_MAX];
    static const char *const parts[] = {"envs", "staging", "trash"};
    if (make_dir(c->dir, 0700, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        sub(c, path, sizeof path, parts[i], NULL);
        if (make_dir(path, 0700, err, errlen) != 0)
            goto fail;
    }
    int stale = sweep(c, "staging");
    int trashed = sweep(c, "trash");
    if (stale > 0 || trashed > 0)
        log_info("deps cache: removed %d unfinished install(s) and %d evicted environment(s) left by a "
                 "previous instance", stale > 0 ? stale : 0, trashed > 0 ? trashed : 0);
    if (index_envs(c, err, errlen) != 0)
        goto fail;
    pthread_mutex_lock(&c->mu);
    char **trash;
    size_t n = evict_locked(c, &trash);
    pthread_mutex_unlock(&c->mu);
    trash_remove(trash, n);
    log_info("deps cache %s: %u environment(s), %.1f MiB of %.1f MiB", c->dir, c->count,
             (double)c->bytes / MIB, (double)c->max_bytes / MIB);
    return c;
fail:
    depcache_close(c);
    return NULL;
}

void depcache_close(depcache *c)
{
    if (!c)
        return;
    while (c->envs) {
        env *e = c->envs;
        c->envs = e->next;
        free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void depcache_usage(depcache *c, uint64_t *bytes, unsigned *envs)
{
    pthread_mutex_lock(&c->mu);
    *bytes = c->bytes;
    *envs = c->count;
    pthread_mutex_unlock(&c->mu);
}

void depcache_env_id(const char *deps_json, const char *interpreter, const char *sources,
                     char id[DEPCACHE_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    /* Each part with its length: no two different triples hash the same text. */
    const char *parts[] = {deps_json, interpreter, sources};
    for (size_t i = 0; i < 3; i++) {
        char len[24];
        const char *p = parts[i] ? parts[i] : "";
        int n = snprintf(len, sizeof len, "%zu:", strlen(p));
        sha256_update(&ctx, (size_t)n, (const uint8_t *)len);
        sha256_update(&ctx, strlen(p), (const uint8_t *)p);
    }
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof d, d);
    for (size_t i = 0; i < sizeof d; i++) {
        id[2 * i] = hex[d[i] >> 4];
        id[2 * i + 1] = hex[d[i] & 15];
    }
    id[DEPCACHE_ID_LEN] = '\0';
}

/* --- acquire and release ------------------------------------------------------------------ */

static void flight_unref_locked(flight *f)
{
    if (--f->refs > 0)
        return;
    if (f->done_pipe[0] >= 0)
        close(f->done_pipe[0]);
    if (f->done_pipe[1] >= 0)
        close(f->done_pipe[1]);
    sandbox_outcome_free(&f->failure);
    free(f);
}

static void copy_failure(sandbox_outcome *out, const sandbox_outcome *from)
{
    out->verdict = from->verdict;
    sandbox_outcome_set_error(out, from->error_type ? from->error_type : "PackageInstallError", "%s",
                              from->error_message ? from->error_message : "the install failed");
}

static void cancelled(sandbox_outcome *out)
{
    out->verdict = SANDBOX_CANCELLED;
    sandbox_outcome_set_error(out, "Cancelled", "cancelled while its packages were being installed");
}

/* Stamps the environment's last use on its folder (the LRU order a restart reads). */
static void touch(depcache *c, const char *id)
{
    char path[PATH_MAX];
    sub(c, path, sizeof path, "envs", id);
    if (utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW) != 0)
        log_warn("deps cache: cannot record the use of %s: %s", id, strerror(errno));
}

static void lease_fill(depcache *c, depcache_lease *lease, const char *id, bool hit, int64_t t0)
{
    memcpy(lease->id, id, DEPCACHE_ID_LEN + 1);
    sub(c, lease->path, sizeof lease->path, "envs", id);
    lease->cache_hit = hit;
    lease->duration_ms = time_monotonic_ms() - t0;
}

/* Waits for f to land or cancel_fd to fire. True when f landed. */
static bool wait_flight(flight *f, int cancel_fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = f->done_pipe[0], .events = POLLIN}, {.fd = cancel_fd, .events = POLLIN}};
        int n = poll(p, cancel_fd >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error("deps cache: poll: %s", strerror(errno));
            return false;
        }
        if (p[0].revents)
            return true;
        if (cancel_fd >= 0 && p[1].revents)
            return false;
    }
}

/* The installer's part: the install into staging, then publication. Called without the
 * lock, e (state installing, holding f) already in the index. Returns 0 when published. */
static int install_and_publish(depcache *c, env *e, depcache_install_fn install, void *ctx,
                               sandbox_outcome *out, uint64_t *bytes_out)
{
    char work[PATH_MAX], dest[PATH_MAX], name[DEPCACHE_ID_LEN + 32];
    snprintf(name, sizeof name, "%s.%u", e->id, atomic_fetch_add(&c->seq, 1));
    sub(c, work, sizeof work, "staging", name);
    if (snprintf(dest, sizeof dest, "%s/env", work) >= (int)sizeof dest)
        dest[0] = '\0';
    int rc = -1;
    if (mkdir(work, 0700) != 0) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "deps cache: mkdir %s: %s", work, strerror(errno));
        return -1;
    }
    if (install(ctx, work, dest, out) != 0)
        goto done;
    int64_t bytes = depcache_tree_bytes(dest);
    if (bytes < 0) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "deps cache: measuring %s: %s", dest, strerror(errno));
        goto done;
    }
    if ((uint64_t)bytes > c->max_bytes) {
        out->verdict = SANDBOX_FAILED;
        sandbox_outcome_set_error(out, "PackageInstallError",
                                  "the environment takes %.1f MB, more than the whole package cache "
                                  "(--deps-cache-mb %" PRIu64 "): it cannot be kept",
                                  (double)bytes / MIB, c->max_bytes / MIB);
        goto done;
    }
    /* Its last use is now: stamped before it becomes visible. */
    char published[PATH_MAX];
    sub(c, published, sizeof published, "envs", e->id);
    if (utimensat(AT_FDCWD, dest, NULL, AT_SYMLINK_NOFOLLOW) != 0 || chmod(dest, 0755) != 0 ||
        rename(dest, published) != 0) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "deps cache: publishing %s: %s", e->id, strerror(errno));
        goto done;
    }
    *bytes_out = (uint64_t)bytes;
    rc = 0;
done:
    if (depcache_unmount_below(work) != 0 || depcache_remove_tree(work) != 0)
        log_warn("deps cache: cannot remove %s: %s", work, strerror(errno));
    return rc;
}

int depcache_acquire(depcache *c, const char *id, depcache_install_fn install, void *ctx,
                     int cancel_fd, depcache_lease *lease, sandbox_outcome *out)
{
    int64_t t0 = time_monotonic_ms();
    bool waited = false;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        env *e = find_env(c, id);
        if (e && !e->installing) {
            e->holds++;
            e->last_used_ns = now_ns();
            pthread_mutex_unlock(&c->mu);
            touch(c, id);
            if (!waited)
                metrics_deps_lookup(true);
            lease_fill(c, lease, id, !waited, t0);
            return 0;
        }
        if (e) { /* being installed by another job: wait for it */
            flight *f = e->installing;
            f->waiters++;
            f->refs++;
            if (!waited)
                metrics_deps_lookup(false);
            waited = true;
            pthread_mutex_unlock(&c->mu);
            bool landed = wait_flight(f, cancel_fd);
            pthread_mutex_lock(&c->mu);
            (void)landed; /* a cancel that raced with the end: the outcome wins, the job sees the cancel next */
            if (!f->done) { /* cancelled before the install ended: no hold taken */
                f->waiters--;
                flight_unref_locked(f);
                pthread_mutex_unlock(&c->mu);
                cancelled(out);
                return -1;
            }
            if (f->ok) { /* published, and a hold taken for each waiter */
                flight_unref_locked(f);
                pthread_mutex_unlock(&c->mu);
                lease_fill(c, lease, id, false, t0);
                return 0;
            }
            if (f->cancelled) { /* the installing job was cancelled: try again ourselves */
                flight_unref_locked(f);
                continue;
            }
            copy_failure(out, &f->failure);
            flight_unref_locked(f);
            pthread_mutex_unlock(&c->mu);
            return -1;
        }
        break;
    }
    /* A miss: this job installs. */
    if (!waited)
        metrics_deps_lookup(false);
    env *e = calloc(1, sizeof *e);
    flight *f = calloc(1, sizeof *f);
    if (!e || !f || pipe2(f->done_pipe, O_CLOEXEC) != 0) {
        pthread_mutex_unlock(&c->mu);
        free(e);
        free(f);
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "deps cache: %s", strerror(errno ? errno : ENOMEM));
        return -1;
    }
    sandbox_outcome_init(&f->failure);
    f->refs = 1;
    memcpy(e->id, id, DEPCACHE_ID_LEN + 1);
    e->installing = f;
    e->next = c->envs;
    c->envs = e;
    pthread_mutex_unlock(&c->mu);

    uint64_t bytes = 0;
    int rc = install_and_publish(c, e, install, ctx, out, &bytes);
    metrics_deps_install(rc == 0 ? "succeeded" : out->verdict == SANDBOX_CANCELLED ? "cancelled" : "failed");

    pthread_mutex_lock(&c->mu);
    f->done = true;
    f->ok = rc == 0;
    f->cancelled = rc != 0 && out->verdict == SANDBOX_CANCELLED;
    char **trash = NULL;
    size_t n_trash = 0;
    if (rc == 0) {
        e->installing = NULL;
        e->bytes = bytes;
        e->last_used_ns = now_ns();
        e->holds = 1 + f->waiters;
        c->bytes += bytes;
        c->count++;
        n_trash = evict_locked(c, &trash);
    } else {
        f->failure.verdict = out->verdict;
        sandbox_outcome_set_error(&f->failure, out->error_type ? out->error_type : "PackageInstallError", "%s",
                                  out->error_message ? out->error_message : "the install failed");
        unlink_env(c, e);
        free(e);
    }
    close(f->done_pipe[1]); /* wakes every waiter */
    f->done_pipe[1] = -1;
    flight_unref_locked(f);
    pthread_mutex_unlock(&c->mu);
    trash_remove(trash, n_trash);
    if (rc != 0)
        return -1;
    lease_fill(c, lease, id, false, t0);
    return 0;
}

void depcache_release(depcache *c, const depcache_lease *lease)
{
    pthread_mutex_lock(&c->mu);
    env *e = find_env(c, lease->id);
    if (e && e->holds)
        e->holds--;
    /* An environment kept over the bound because it was in use may go now. */
    char **trash = NULL;
    size_t n = c->bytes > c->max_bytes ? evict_locked(c, &trash) : 0;
    pthread_mutex_unlock(&c->mu);
    trash_remove(trash, n);
}
