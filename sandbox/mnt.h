/* The job's filesystem: a root assembled on a tmpfs in the job's mount namespace, then
 * pivot_root into it. Read-only, nosuid, nodev binds of the runtime (/usr, /lib, ...
 * of the host or of a configured rootfs folder), a generated /etc (never the host's),
 * a fresh /proc, a minimal /dev, size-capped tmpfs /tmp, /dev/shm and /work, the empty
 * mount points of a job's packages (pkgmount.h); the root itself ends read-only. The plan is computed in the service (paths, file contents,
 * what is a symlink) and replayed in the child with system calls only. */
#ifndef EXECUTORD_SANDBOX_MNT_H
#define EXECUTORD_SANDBOX_MNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct mnt_options {
    const char *rootfs;        /* runtime source folder; NULL or "" = the host's / */
    const char *base;          /* existing empty folder used as the mount point of the
                                * new root inside the job's mount namespace */
    const char *work_source;   /* host folder bound at /work; NULL = a private tmpfs */
    uint64_t tmp_bytes;        /* size caps of the tmpfs mounts */
    uint64_t shm_bytes;
    uint64_t work_bytes;
    uint64_t tmp_inodes;       /* inode caps (inode exhaustion stays inside the job) */
    unsigned inside_uid, inside_gid;
    /* Right after the new root's tmpfs is mounted, switch to these ids (the user
     * namespace's root): files created on a namespace's tmpfs need a mapped owner. */
    bool switch_ids;
    unsigned setup_uid, setup_gid;
    /* /proc mounted read-only: a job cannot write its own /proc files, oom_score_adj
     * among them (sandbox/oom.h), whatever capabilities the service has. The pool's
     * zygote needs a writable one (it writes its sandboxes' uid maps). */
    bool proc_read_only;
} mnt_options;

typedef struct mnt_op mnt_op;

typedef struct mnt_plan {
    mnt_op *ops;
    size_t count, cap;
    char **strings;            /* every string the ops point to, owned here */
    size_t nstrings, capstrings;
} mnt_plan;

/* Builds the plan in the service. Returns 0, or -1 with "step: reason" in err. */
int sandbox_mnt_plan_build(mnt_plan *p, const mnt_options *o, char *err, size_t errlen);
/* The mounts a sandbox gets fresh on a root that exists already (a warm sandbox on its
 * zygote's): after the id switch when o->switch_ids, /proc, /tmp, /work and /dev/shm as
 * in the whole plan. rootfs and base are not used. Same return rules. */
int sandbox_mnt_plan_scratch(mnt_plan *p, const mnt_options *o, char *err, size_t errlen);
void sandbox_mnt_plan_free(mnt_plan *p);

/* Child side (new mount namespace, capable in its user namespace), async-signal-safe:
 * replays the plan, ending inside the new root with the old one detached. Returns 0, or
 * -1 with errno set and *step describing the operation that failed. */
int sandbox_mnt_apply(const mnt_plan *p, const char **step);

#endif
