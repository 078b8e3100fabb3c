/* The `pool` backend: the sandbox of `ephemeral`, prepared ahead of demand. A zygote (a
 * Python interpreter that imported the runner and the common stdlib, inside its own
 * user/PID/mount/IPC/UTS/net namespaces and the read-only root of mnt.c) forks one warm
 * sandbox per job: own host uid, own user/PID/mount/IPC/net/UTS/cgroup namespaces, fresh
 * /tmp, /work, /dev/shm, /proc, no capabilities, no_new_privs, seccomp, its own cgroup.
 * A job takes a ready one; background threads refill, recycle and replace them. */
#ifndef EXECUTORD_SANDBOX_POOL_H
#define EXECUTORD_SANDBOX_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

extern const sandbox_backend sandbox_backend_pool;

/* Settings; 0/NULL = default. The service fills them from its configuration (the flag's
 * variable is noted per field). */
typedef struct pool_options {
    unsigned size;             /* EXECUTORD_POOL_SIZE: warm sandboxes kept ready (CPUs) */
    bool cold_when_empty;      /* EXECUTORD_POOL_WHEN_EMPTY=cold|wait (wait): no warm one
                                * ready -> start the job cold (ephemeral) or wait for one */
    unsigned recycle_jobs;     /* EXECUTORD_POOL_RECYCLE_JOBS: zygote replaced after (1000) */
    unsigned recycle_seconds;  /* EXECUTORD_POOL_RECYCLE_SECONDS: ... or after (600) */
    uid_t uid_base;            /* EXECUTORD_POOL_UID_BASE: first host uid (3000000) */
    const char *uid_lock_dir;  /* EXECUTORD_SANDBOX_UID_LOCK_DIR: flocks shared by the
                                * instances of a host (/run/executord-uid-slots; ""=off) */
    unsigned refill_threads;   /* threads preparing warm sandboxes (2, at most 8) */
    uint64_t tmp_mb;           /* EXECUTORD_SANDBOX_TMP_MB: /tmp size (64), as ephemeral */
    uint64_t shm_mb;           /* EXECUTORD_SANDBOX_SHM_MB: /dev/shm size (64) */
    uint64_t work_mb;          /* EXECUTORD_SANDBOX_WORK_MB: /work size (128) */
    const char *rootfs;        /* EXECUTORD_SANDBOX_ROOTFS: as ephemeral ("" = host's) */
    const char *cgroup_root;   /* EXECUTORD_CGROUP_ROOT: used if ephemeral set up none */
    unsigned cpu_quota_percent; /* EXECUTORD_SANDBOX_CPU_PERCENT: likewise (100) */
} pool_options;

/* Call before init (the struct is copied). */
void pool_configure(const pool_options *o);

/* State for /readyz and GET /v1/backends: writes a JSON object
 * {"available":bool,"reason":str|null,"size":n,"ready":n,"busy":n,"started":n,
 *  "recycled":n,"failures":n,"cold_starts":n,"zygotes":n,"last_failure":str|null,
 *  "caveat":str|null}
 * into buf (size: warm sandboxes kept ready; ready/busy: now; started: warm sandboxes
 * built so far; recycled: zygotes retired by age or job count; failures: sandboxes or
 * zygotes that failed or died; cold_starts: jobs started through ephemeral because none
 * was ready; caveat: e.g. "rlimits only" without cgroups). Returns the length, or -1
 * when buf is too small. Thread-safe; valid before init (available false). */
int pool_status_json(char *buf, size_t len);

#endif
