/* A warm sandbox of the pool: forked by a zygote for one job, with its own host uids,
 * namespaces, tmpfs mounts, cgroup, no capabilities and seccomp, its job process waiting
 * for a spec. Building one, checking it is still usable, and destroying it. */
#ifndef EXECUTORD_SANDBOX_POOL_WARM_H
#define EXECUTORD_SANDBOX_POOL_WARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/cgroup.h"
#include "sandbox/pool_job.h"
#include "sandbox/pool_zygote.h"

enum { POOL_READY_TIMEOUT_MS = 5000 }; /* a warm sandbox not ready by then: zygote wedged */
enum { POOL_EXIT_WAIT_MS = 1000 };    /* a killed sandbox's exit, before its cgroup goes */

struct pool_warm {
    pool_zygote *z;           /* NULL once its slot was released */
    unsigned slot;
    cgroup_job *cg;
    int out_r, err_r, spec_fd, result_r, status_fd, pidfd;
    pid_t host_pid;
    pool_warm *next;          /* the pool's lists */
};

typedef struct pool_warm_setup {
    bool cgroups;             /* give it a cgroup of its own (unlimited until a job) */
    uint64_t tmp_bytes, shm_bytes, work_bytes;
} pool_warm_setup;

/* Builds one warm sandbox through zygote z on slot (already reserved), asking on ctl (a
 * dup of the zygote's socket). NULL with err on failure; *zygote_broken then says the
 * zygote itself no longer answers and must be replaced. */
pool_warm *pool_warm_prepare(pool_zygote *z, unsigned slot, int ctl, const pool_warm_setup *s,
                             bool *zygote_broken, char *err, size_t errlen);

/* Usable while its init lives and has reported nothing. */
bool pool_warm_alive(const pool_warm *w);

/* Kills it, removes its cgroup, closes its fds and frees it; the caller releases its
 * zygote slot. */
void pool_warm_destroy(pool_warm *w);

#endif
