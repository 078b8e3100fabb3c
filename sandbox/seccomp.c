/* The sandbox's system-call policy (see seccomp.h). Default allow keeps Python and its
 * extension modules working; the deny list removes the kernel surface a job never needs
 * and that sandbox escapes have used (namespaces, mounts, ptrace, bpf, io_uring, ...). */
#include "sandbox/seccomp.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/seccomp.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Denied outright with EPERM. Names, not SCMP_SYS(), so a call this architecture lacks
 * is skipped instead of breaking the build. */
static const char *const denied_syscalls[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "swapon", "swapoff", "reboot", "syslog", "acct", "quotactl", "quotactl_fd",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "iopl", "ioperm", "kcmp", "fanotify_init", "lookup_dcookie",
    "vhangup", "nfsservctl", "uselib", "_sysctl",
};

/* Namespace flags clone() must not carry. CLONE_NEWTIME is left out: in clone()'s
 * flags word 0x80 is part of the exit signal, and unshare/clone3 are denied anyway. */
static const unsigned long clone_ns_flags[] = {
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

static int fail(char *err, size_t errlen, const char *step, int rc)
{
    snprintf(err, errlen, "seccomp: %s: %s", step, strerror(rc < 0 ? -rc : rc));
    return -1;
}

static int add_rules(scmp_filter_ctx ctx, char *err, size_t errlen)
{
    int rc;
    for (size_t i = 0; i < sizeof denied_syscalls / sizeof denied_syscalls[0]; i++) {
        int nr = seccomp_syscall_resolve_name(denied_syscalls[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a system call on this architecture */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc < 0) {
            char step[96];
            snprintf(step, sizeof step, "seccomp_rule_add(%s)", denied_syscalls[i]);
            return fail(err, errlen, step, rc);
        }
    }
    for (size_t i = 0; i < sizeof clone_ns_flags / sizeof clone_ns_flags[0]; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
        if (rc < 0)
            return fail(err, errlen, "seccomp_rule_add(clone)", rc);
    }
    /* clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes glibc fall
     * back to clone(), whose flags the rules above can see. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc < 0)
        return fail(err, errlen, "seccomp_rule_add(clone3)", rc);
    /* personality: only PER_LINUX (0) and the 0xffffffff query; anything else (e.g.
     * ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) weakens the process. libseccomp allows one
     * comparison per argument and rule, so "0 < x < 0xffffffff" is written as: some bit i
     * is 1 and the next bit (cyclically) is 0 -- true exactly when the 32 bits are
     * neither all 0 nor all 1. Values with high bits set are denied separately. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                          SCMP_A0(SCMP_CMP_GT, 0xffffffffUL, 0));
    if (rc < 0)
        return fail(err, errlen, "seccomp_rule_add(personality)", rc);
    for (unsigned i = 0; i < 32; i++) {
        unsigned long one = 1UL << i, zero = 1UL << ((i + 1) % 32);
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, one | zero, one));
        if (rc < 0)
            return fail(err, errlen, "seccomp_rule_add(personality)", rc);
    }
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                          SCMP_A0(SCMP_CMP_EQ, AF_VSOCK, 0));
    if (rc < 0)
        return fail(err, errlen, "seccomp_rule_add(socket AF_VSOCK)", rc);
    return 0;
}

/* libseccomp 2.5 exports only to a file descriptor: go through a memfd. */
static int export_to_memory(scmp_filter_ctx ctx, struct sock_fprog *prog, char *err, size_t errlen)
{
    int fd = memfd_create("executord-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "memfd_create", errno);
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        close(fd);
        return fail(err, errlen, "seccomp_export_bpf", rc);
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        close(fd);
        return fail(err, errlen, "seccomp_export_bpf size", size < 0 ? errno : EINVAL);
    }
    struct sock_filter *insns = malloc((size_t)size);
    if (!insns) {
        close(fd);
        return fail(err, errlen, "malloc", ENOMEM);
    }
    ssize_t got = pread(fd, insns, (size_t)size, 0);
    int saved = errno;
    close(fd);
    if (got != size) {
        free(insns);
        return fail(err, errlen, "pread(seccomp bpf)", got < 0 ? saved : EIO);
    }
    prog->filter = insns;
    prog->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
    return 0;
}

int sandbox_seccomp_build(struct sock_fprog *prog, char *err, size_t errlen)
{
    prog->filter = NULL;
    prog->len = 0;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return fail(err, errlen, "seccomp_init", ENOMEM);
    /* Only the native architecture is in the filter, so i386 (int 0x80) calls hit the
     * bad-arch action; libseccomp also sends x32 numbers (bit 30 set) there on x86_64. */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc < 0) {
        seccomp_release(ctx);
        return fail(err, errlen, "seccomp_attr_set(ACT_BADARCH)", rc);
    }
    if (add_rules(ctx, err, errlen) < 0 || export_to_memory(ctx, prog, err, errlen) < 0) {
        seccomp_release(ctx);
        return -1;
    }
    seccomp_release(ctx);
    return 0;
}

void sandbox_seccomp_free(struct sock_fprog *prog)
{
    free(prog->filter);
    prog->filter = NULL;
    prog->len = 0;
}

int sandbox_seccomp_apply(const struct sock_fprog *prog, const char **step)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        *step = "prctl(PR_SET_NO_NEW_PRIVS)";
        return -1;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) != 0) {
        *step = "prctl(PR_SET_SECCOMP)";
        return -1;
    }
    return 0;
}
