/* The cache of jobs' Python environments (issue 14): content-addressed folders under
 * <data-dir>/deps/envs/<id>, published by rename, bounded by --deps-cache-mb with
 * least-recently-used eviction, one install per id at a time, surviving restarts. */
#ifndef EXECUTORD_DEPCACHE_H
#define EXECUTORD_DEPCACHE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

#define DEPCACHE_ID_LEN 64 /* hex SHA-256 */

typedef struct depcache depcache;

/* Fills an empty folder with an environment. work: an empty folder of the cache's own for
 * the install's scratch (mount points and the like; the cache removes it, unmounting what
 * is left mounted below it). dest: the path to create the environment at (a folder that
 * does not exist yet). Returns 0 when dest holds the environment; otherwise fills *out
 * (verdict and error) and returns -1. */
typedef int (*depcache_install_fn)(void *ctx, const char *work, const char *dest, sandbox_outcome *out);

/* Opens (creating, 0700) the cache at dir: indexes the published environments (their
 * size, and their last use from the folder's modification time), removes what a dead
 * instance left in staging/ and trash/, then evicts down to max_bytes. NULL with the
 * reason in err. */
depcache *depcache_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);
void depcache_close(depcache *c);

/* The id of an environment: hex SHA-256 of the normalized requirement list (JSON array
 * text), the interpreter's identity (version and platform) and the package sources. */
void depcache_env_id(const char *deps_json, const char *interpreter, const char *sources,
                     char id[DEPCACHE_ID_LEN + 1]);

/* A job's hold on an environment: it is not evicted while held. */
typedef struct depcache_lease {
    char id[DEPCACHE_ID_LEN + 1];
    char path[PATH_MAX];   /* the published folder */
    bool cache_hit;        /* published before this job asked */
    int64_t duration_ms;   /* waiting and installing */
} depcache_lease;

/* Gives the job the environment id, installing it with install(ctx, ...) on a miss.
 * Concurrent callers with the same id wait for the one install and share its result (a
 * failure too, except a cancelled install, which the next waiter starts again); a
 * failed install is not kept. After publishing, least-recently-used environments that
 * no job holds are evicted until the cache fits max_bytes; an environment larger than
 * the whole bound fails (PackageInstallError). Waiting stops when cancel_fd (-1 = none)
 * becomes readable (SANDBOX_CANCELLED). Returns 0 with *lease filled (release it), or -1
 * with *out filled. */
int depcache_acquire(depcache *c, const char *id, depcache_install_fn install, void *ctx,
                     int cancel_fd, depcache_lease *lease, sandbox_outcome *out);
void depcache_release(depcache *c, const depcache_lease *lease);

/* What the cache holds now. */
void depcache_usage(depcache *c, uint64_t *bytes, unsigned *envs);

/* Disk use of a folder tree (allocated blocks; symlinks not followed). -1 on error. */
int64_t depcache_tree_bytes(const char *path);
/* Removes a folder tree (symlinks not followed, nor file systems mounted below); 0, or
 * -1 with errno. */
int depcache_remove_tree(const char *path);
/* Detaches every mount at or below prefix (newest first). 0, or -1 when one could not be. */
int depcache_unmount_below(const char *prefix);

#endif
