/* The one isolation policy of a sandbox, shared by `ephemeral` (run in the job's own
 * process tree) and the pool's warm sandboxes (run by the warm library, warm.c, inside
 * the zygote's forks): the namespaces a sandbox is cloned into, the ordered steps its
 * init runs and the ordered steps its job process runs, and the placement of fds.
 *
 *   clone(policy_namespaces)                      the sandbox's init (pid 1)
 *     policy_init_steps: mount plan (mnt.c) -> not dumpable -> hostname -> loopback
 *     policy_enter_cgroup_ns: once the service attached it to the job's cgroup
 *   fork                                          the job process
 *     policy_place_fds, then policy_job_steps:
 *       rlimits -> capability drop to uid 1000 (caps.c) -> [dumpable again] ->
 *       no_new_privs + seccomp (seccomp_apply.c)
 *
 * Everything here is async-signal-safe and uses libc only: it is compiled both into the
 * service and into the warm library (libexecutord_warm.so). */
#ifndef EXECUTORD_SANDBOX_POLICY_H
#define EXECUTORD_SANDBOX_POLICY_H

#include <linux/filter.h>
#include <stdbool.h>

#include "sandbox/mnt.h"
#include "sandbox/rlimits.h"

/* CLONE_NEW* flags of a sandbox: user, PID, mount, IPC, UTS and network, whether or not
 * the job may use the network (the service connects it from outside: jobnet.h). The
 * cgroup namespace comes later (policy_enter_cgroup_ns), once the sandbox is in its
 * cgroup. */
unsigned long policy_namespaces(void);

/* What a sandbox's init sets up, in its fresh namespaces and as their root. */
typedef struct policy_init {
    const mnt_plan *mounts;  /* a whole root (sandbox_mnt_plan_build) or fresh scratch
                              * mounts on the zygote's root (sandbox_mnt_plan_scratch) */
} policy_init;

/* In the sandbox's init: the mount plan, then not dumpable (init is a copy of the
 * service's or the zygote's memory), hostname and domain name "sandbox", loopback.
 * Returns 0, or -1 with errno set and *step naming what failed. */
int policy_init_steps(const policy_init *p, const char **step);

/* In init once it is in its final cgroup: a cgroup namespace rooted there, so the job
 * sees "/" and nothing of the host's hierarchy. Same return rules. */
int policy_enter_cgroup_ns(const char **step);

/* What the job process gives up before the script runs. */
typedef struct policy_job {
    const rlimit_set *rlimits;          /* may be NULL */
    const struct sock_fprog *seccomp;   /* the service's compiled filter (seccomp.c) */
    bool no_exec_follows;               /* warm: the process stays the same image, so
                                         * it is made dumpable again (an execve would do
                                         * that for a cold runner) and may read its own
                                         * /proc */
} policy_job;

/* In the job process, with the privileges of the namespace's root: rlimits, the drop to
 * SANDBOX_INSIDE_UID/GID with no capabilities (checked), no_new_privs and the seccomp
 * filter last, so it never sees the set-up. Same return rules. */
int policy_job_steps(const policy_job *p, const char **step);

/* Places fds[i] at fd i for i < n and closes every other fd from n on. An fd whose bit
 * is set in survive_exec stays open across execve; the others get FD_CLOEXEC. fds may
 * already lie anywhere, also in 0..n-1. Returns 0, or -1 with errno set and *step. */
int policy_place_fds(const int *fds, int n, unsigned survive_exec, const char **step);

#endif
