/* The pool's zygote: a Python interpreter that imported the runner and the common stdlib,
 * started inside its own user/PID/mount/IPC/UTS/net namespaces and the read-only root of
 * mnt.c, which serves the warm sandboxes (pool_warm.h) by calling the warm library
 * (warm.h) it gets as a sealed memfd. Starting, mapping and killing one; plus its program
 * (sandbox/pool_zygote.py, embedded), sent as its first message so the cold runner stays
 * small. */
#ifndef EXECUTORD_SANDBOX_POOL_ZYGOTE_H
#define EXECUTORD_SANDBOX_POOL_ZYGOTE_H

#include <errno.h>
#include <linux/filter.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/mnt.h"

extern const char pool_zygote_source[];
/* libexecutord_warm.so (sandbox/warm.h), embedded at build time. */
extern const unsigned char pool_warm_library[];
extern const size_t pool_warm_library_size;

enum {
    POOL_SLOTS = 128,             /* sandboxes per zygote (warm + busy at once) */
    POOL_ZYGOTE_START_MS = 20000, /* imports of the zygote */
    POOL_ZYGOTE_LIBRARY_FD = 5,   /* the warm library's memfd in the zygote (pool_zygote.py) */
};

/* A block of host uids per zygote: base (its root), then two per slot, then the owner of
 * its /work. */
#define POOL_BLOCK_UIDS (2 * POOL_SLOTS + 2)

typedef struct pool_zygote {
    bool used, retiring, dead;
    pid_t pid;
    int pidfd, ctl;
    uid_t base;               /* host uid of the zygote's root; slot i: base+1+2i (the
                               * sandbox's root), base+2+2i (its job) */
    unsigned block;           /* which block of the uid range base is */
    int lock_fd;              /* flock on the block, held while the zygote lives */
    unsigned forks;
    int64_t born_ns;
    int inflight;             /* forks not yet cleaned up */
    unsigned char slot_used[POOL_SLOTS];
    unsigned next_slot;
} pool_zygote;

/* What every zygote of a pool is started with. */
typedef struct pool_zygote_setup {
    const char *python;
    const mnt_plan *plan;               /* the zygote's root */
    const struct sock_fprog *seccomp;   /* loaded by each sandbox it forks */
} pool_zygote_setup;

/* Starts a zygote on uid block `block` whose first host uid is `base`; lock_fd (or -1)
 * becomes the zygote's and is closed with it, also on failure. 0, or -1 with err. */
int pool_zygote_start(pool_zygote *z, const pool_zygote_setup *s, unsigned block, uid_t base, int lock_fd,
                      char *err, size_t errlen);
/* Kills it, reaps it and releases its uid block. */
void pool_zygote_kill(pool_zygote *z);

/* --- small helpers shared by pool*.c ---------------------------------------------- */

static inline int64_t pool_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void pool_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Waits until fd is readable; returns 1, 0 on timeout, -1 on error. */
static inline int pool_wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t end = pool_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int left = (int)((end - pool_now_ns()) / 1000000);
        int rc = poll(&p, 1, left < 0 ? 0 : left);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc;
    }
}

#endif
