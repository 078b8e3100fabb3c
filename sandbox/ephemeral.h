/* The `ephemeral` backend: a complete sandbox built for one job and destroyed after it
 * (user/PID/mount/IPC/UTS/network/cgroup namespaces, an assembled read-only root,
 * seccomp, no capabilities, a cgroup with the job's limits). */
#ifndef EXECUTORD_SANDBOX_EPHEMERAL_H
#define EXECUTORD_SANDBOX_EPHEMERAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

extern const sandbox_backend sandbox_backend_ephemeral;

/* Settings beyond sandbox_config. Every field has a default (0/NULL = default); the
 * service fills them from its configuration (the flag or variable noted per field). */
typedef struct ephemeral_options {
    const char *rootfs;        /* EXECUTORD_SANDBOX_ROOTFS: runtime folder; "" = host / */
    const char *cgroup_root;   /* EXECUTORD_CGROUP_ROOT: default /sys/fs/cgroup */
    bool cgroup_fake_fs;       /* unit tests: cgroup_root is a plain folder */
    const char *cgroup_self;   /* our cgroup below the hierarchy root; NULL = detect */
    uid_t uid_base;            /* EXECUTORD_SANDBOX_UID_BASE: first host uid (2000000) */
    unsigned uid_count;        /* EXECUTORD_SANDBOX_UID_COUNT: slots (1024), 2 ids each */
    const char *uid_lock_dir;  /* EXECUTORD_SANDBOX_UID_LOCK_DIR: flocks shared by the
                                * instances of a host (/run/executord-uid-slots; ""=off) */
    uint64_t tmp_mb;           /* EXECUTORD_SANDBOX_TMP_MB: /tmp size (64) */
    uint64_t shm_mb;           /* EXECUTORD_SANDBOX_SHM_MB: /dev/shm size (64) */
    uint64_t work_mb;          /* EXECUTORD_SANDBOX_WORK_MB: /work size (128) */
    unsigned cpu_quota_percent; /* EXECUTORD_SANDBOX_CPU_PERCENT: per job (100 = a core) */
} ephemeral_options;

/* Call before init to override the defaults (the struct is copied; strings must stay
 * valid until shutdown). */
void ephemeral_configure(const ephemeral_options *o);

/* How resources are controlled: the cgroup description, or why cgroups are unusable
 * and only rlimits apply. Valid after init. */
const char *ephemeral_status(void);

#endif
