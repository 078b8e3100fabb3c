/* The isolation steps of every sandbox, in their order (see policy.h). Each step is one
 * call into the file that owns the mechanism (mnt.c, caps.c, net.c, rlimits.c,
 * seccomp_apply.c); what is decided here is which steps run, in which order. */
#include "sandbox/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/caps.h"
#include "sandbox/net.h"
#include "sandbox/seccomp.h"
#include "sandbox/userns.h"

static int failed(const char **step, const char *what)
{
    *step = what;
    return -1;
}

unsigned long policy_namespaces(void)
{
    /* CLONE_NEWNET always: a network-enabled job is connected from outside (jobnet.h),
     * it never shares the service's namespace. */
    return CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
}

int policy_init_steps(const policy_init *p, const char **step)
{
    if (sandbox_mnt_apply(p->mounts, step) != 0)
        return -1;
    /* init is a copy of the service's (or the zygote's) memory: nobody may read it
     * through /proc or ptrace. After the mount plan, whose id switch resets the flag to
     * fs.suid_dumpable. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return failed(step, "prctl(PR_SET_DUMPABLE)");
    if (sethostname("sandbox", 7) != 0)
        return failed(step, "sethostname");
    if (setdomainname("sandbox", 7) != 0)
        return failed(step, "setdomainname");
    if (sandbox_net_loopback_up(step) != 0)
        return -1;
    return 0;
}

int policy_enter_cgroup_ns(const char **step)
{
    if (unshare(CLONE_NEWCGROUP) != 0)
        return failed(step, "unshare(CLONE_NEWCGROUP)");
    return 0;
}

int policy_job_steps(const policy_job *p, const char **step)
{
    /* rlimits and the capability drop need privilege; seccomp comes last. */
    if (p->rlimits && rlimits_apply(p->rlimits, step) != 0)
        return -1;
    if (sandbox_caps_drop_to(SANDBOX_INSIDE_UID, SANDBOX_INSIDE_GID, step) != 0)
        return -1;
    /* The uid change made the process non-dumpable; with no execve to follow, the job
     * could not read its own /proc files. */
    if (p->no_exec_follows && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
        return failed(step, "prctl(PR_SET_DUMPABLE) for the job");
    return sandbox_seccomp_apply(p->seccomp, step);
}

int policy_place_fds(const int *fds, int n, unsigned survive_exec, const char **step)
{
    /* First out of the way (above n), so placing one never closes another still to be
     * placed; then into 0..n-1. */
    int moved[16];
    if (n < 0 || n > (int)(sizeof moved / sizeof moved[0])) {
        errno = EINVAL;
        return failed(step, "place fds: too many");
    }
    for (int i = 0; i < n; i++)
        if ((moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, n)) < 0)
            return failed(step, "fcntl(F_DUPFD_CLOEXEC) to place fds");
    for (int i = 0; i < n; i++)
        if (dup3(moved[i], i, (survive_exec >> i) & 1u ? 0 : O_CLOEXEC) < 0)
            return failed(step, "dup3 to place fds");
    if (syscall(SYS_close_range, (unsigned)n, ~0U, 0) != 0)
        return failed(step, "close_range");
    return 0;
}
