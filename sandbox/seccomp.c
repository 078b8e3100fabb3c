/* The sandbox's system-call policy (see seccomp.h): an allow-list of what CPython, its
 * standard library and common packages call, modelled on Docker's default profile; any
 * other call answers ENOSYS, the calls sandbox escapes have used answer EPERM. */
#include "sandbox/seccomp.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Socket families a job may open: every one below this but AF_VSOCK. Linux has 46
 * (AF_MAX); a higher number would get EAFNOSUPPORT from the kernel, here ENOSYS. */
#define SOCKET_FAMILY_LIMIT 64

/* Allowed, whatever the arguments. The reference is Docker's default profile
 * (deploy/docker/moby-default.json): its unconditional list without the denied calls
 * below and without the 32-bit ABIs' names (*32, *64 and *_time64 variants, socketcall,
 * ipc: only the native ABI gets past the architecture check). Names, not SCMP_SYS(), so a
 * call this architecture lacks (open, stat, ... on aarch64) is skipped.
 * Left out besides, so they answer ENOSYS: modify_ldt (16-bit segments for Wine and
 * DOSEMU, and a record of kernel bugs), set/get_thread_area (32-bit TLS),
 * epoll_ctl_old/epoll_wait_old (never implemented), fanotify_mark (useless without the
 * denied fanotify_init), the NUMA policy calls and sethostname/setdomainname (Docker too
 * grants them only with CAP_SYS_NICE or CAP_SYS_ADMIN; libnuma reads ENOSYS as "no
 * NUMA"), cachestat (page-cache residency of files the job did not write). */
static const char *const allowed_syscalls[] = {
    /* Starting a program and the C library's per-thread bookkeeping: the loader, TLS
     * (arch_prctl on x86_64), glibc's robust-futex list and rseq area. */
    "execve", "execveat", "brk", "arch_prctl", "set_tid_address", "set_robust_list",
    "get_robust_list", "rseq", "restart_syscall", "exit", "exit_group",
    /* What a process asks about itself and the machine: ids, the kernel (platform, pip's
     * tags), entropy (os.urandom, ssl, secrets), limits and usage (resource, the runner's
     * usage report), priorities. */
    "uname", "sysinfo", "getrandom", "getpid", "getppid", "gettid", "getuid", "geteuid",
    "getgid", "getegid", "getresuid", "getresgid", "getgroups", "getpgid", "getpgrp",
    "getsid", "getcpu", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times",
    "capget", "getpriority", "setpriority", "ioprio_get", "ioprio_set",
    /* Credentials and sessions: without capabilities a job can only shuffle the ids it
     * already holds (subprocess' user=/group=/start_new_session=/process_group=). */
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
    "setfsgid", "setgroups", "capset", "setpgid", "setsid",
    /* Process attributes (thread names, parent-death signal, ...) and the calls by which a
     * job can only narrow its own rights further (its own seccomp filter, Landlock). */
    "prctl", "seccomp", "landlock_create_ruleset", "landlock_add_rule",
    "landlock_restrict_self",
    /* Memory: the allocators, mapped files (mmap, numpy.memmap, sqlite), memfd shared
     * memory, executable pages for ctypes/cffi callbacks, protection keys; mlock is capped
     * by RLIMIT_MEMLOCK. map_shadow_stack is newer than Docker's list: glibc 2.39+ (a
     * newer --sandbox-rootfs) asks for a CET shadow stack. */
    "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "msync",
    "remap_file_pages", "mlock", "mlock2", "munlock", "mlockall", "munlockall",
    "memfd_create", "memfd_secret", "membarrier", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "map_shadow_stack",
    /* Descriptors and I/O: os, io, shutil (copy_file_range, sendfile), sqlite3 (pread,
     * fdatasync, fcntl locks), zipfile, terminals' ioctls. */
    "open", "openat", "openat2", "creat", "close", "close_range", "read", "write", "readv",
    "writev", "pread64", "pwrite64", "preadv", "preadv2", "pwritev", "pwritev2", "lseek",
    "dup", "dup2", "dup3", "fcntl", "flock", "ioctl", "fsync", "fdatasync", "sync", "syncfs",
    "sync_file_range", "fallocate", "truncate", "ftruncate", "fadvise64", "readahead",
    "copy_file_range", "sendfile", "splice", "tee", "vmsplice",
    /* Paths and metadata in a root that is read-only but for /tmp, /work and /dev/shm:
     * pathlib, os.walk, tempfile, shutil.rmtree. fchmodat2 is newer than Docker's list
     * (glibc 2.39+ uses it for lchmod). */
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
    "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link", "linkat",
    "symlink", "symlinkat", "unlink", "unlinkat", "readlink", "readlinkat", "chmod",
    "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown", "umask",
    "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat",
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    /* Child processes and threads: subprocess (vfork), multiprocessing, concurrent.futures,
     * os.sched_getaffinity. clone itself is allowed in add_rules, without namespace flags. */
    "fork", "vfork", "wait4", "waitid", "kill", "tkill", "tgkill", "pidfd_open",
    "pidfd_send_signal", "process_mrelease", "sched_yield", "sched_getaffinity",
    "sched_setaffinity", "sched_getparam", "sched_setparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_getattr", "sched_setattr",
    /* Signals: handlers, masks and waits (signal, asyncio's wakeup fd, faulthandler's
     * alternate stack). */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "signalfd",
    "signalfd4", "pause", "alarm",
    /* Clocks and timers, read and armed; setting the clocks is denied. */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
    "time", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_gettime",
    "timer_settime", "timer_getoverrun", "timerfd_create", "timerfd_gettime",
    "timerfd_settime",
    /* Waiting: futexes (locks, threads, queues; futex_wake/wait/requeue are the newer
     * futex2 calls), readiness (select, selectors, asyncio), event fds, pipes. */
    "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "poll", "ppoll",
    "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "pipe", "pipe2",
    /* Sockets once open (socket itself is in add_rules): loopback and UNIX sockets in the
     * job's own network namespace, the network with allow_network. */
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown",
    /* IPC private to the job's IPC namespace (System V shared memory, semaphores and
     * queues; POSIX message queues) and Linux AIO (libaio). */
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr", "io_setup", "io_destroy", "io_submit",
    "io_cancel", "io_getevents", "io_pgetevents",
};

/* Denied with EPERM, the answer of a kernel that refuses the caller: the kernel surface
 * a job never needs and that sandbox escapes have used. Not merely left off the
 * allow-list, so a job (and the attack suite) can tell "refused" from "unknown". */
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

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static int fail(char *err, size_t errlen, const char *step, int rc)
{
    snprintf(err, errlen, "seccomp: %s: %s", step, strerror(rc < 0 ? -rc : rc));
    return -1;
}

static int add_named(scmp_filter_ctx ctx, uint32_t action, const char *const *names, size_t n,
                     char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr < 0)
            continue; /* unknown, or a pseudo-number: not a system call on this architecture */
        int rc = seccomp_rule_add(ctx, action, nr, 0);
        if (rc < 0) {
            char step[96];
            snprintf(step, sizeof step, "seccomp_rule_add(%s)", names[i]);
            return fail(err, errlen, step, rc);
        }
    }
    return 0;
}

/* Allows syscall nr when its first argument lies in [lo, hi]. libseccomp takes one
 * comparison per argument and rule, so the range goes in as aligned power-of-two blocks,
 * one masked comparison each (over all 64 bits). */
static int allow_arg0_range(scmp_filter_ctx ctx, int nr, uint64_t lo, uint64_t hi)
{
    while (lo <= hi) {
        uint64_t size = lo ? lo & -lo : UINT64_C(1) << 63;
        while (size > 1 && lo + (size - 1) > hi)
            size >>= 1;
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, ~(size - 1), lo));
        if (rc < 0)
            return rc;
        if (lo + (size - 1) == UINT64_MAX)
            break;
        lo += size;
    }
    return 0;
}

/* The calls whose verdict depends on an argument. libseccomp silently drops argument
 * rules for a call that also has a rule without arguments (whatever the order and the
 * actions), so each of these is written as argument rules only, the allowing and the
 * denying ones covering disjoint sets of values. */
static int add_argument_rules(scmp_filter_ctx ctx, char *err, size_t errlen)
{
    int rc;
    /* clone: allowed without any namespace flag (fork, threads, posix_spawn), EPERM with
     * one. The flags are an unsigned long: all 64 bits are compared. */
    unsigned long all_ns = 0;
    for (size_t i = 0; i < NELEMS(clone_ns_flags); i++) {
        all_ns |= clone_ns_flags[i];
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
        if (rc < 0)
            return fail(err, errlen, "seccomp_rule_add(clone)", rc);
    }
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, all_ns, 0));
    if (rc < 0)
        return fail(err, errlen, "seccomp_rule_add(clone)", rc);
    /* clone3 passes its flags in memory, out of a filter's reach: it stays off the list,
     * so it answers ENOSYS and glibc falls back to clone(), whose flags the rules above
     * see. (libseccomp refuses a rule whose action is the default's.) */

    /* personality: only PER_LINUX (0) and the 0xffffffff query; anything else (e.g.
     * ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) weakens the process. libseccomp allows one
     * comparison per argument and rule, so "0 < x < 0xffffffff" is written as: some bit i
     * is 1 and the next bit (cyclically) is 0 -- true exactly when the 32 bits are
     * neither all 0 nor all 1. Values with high bits set are denied separately. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                          SCMP_A0(SCMP_CMP_EQ, 0, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                              SCMP_A0(SCMP_CMP_EQ, 0xffffffffUL, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                              SCMP_A0(SCMP_CMP_GT, 0xffffffffUL, 0));
    for (unsigned i = 0; rc == 0 && i < 32; i++) {
        unsigned long one = 1UL << i, zero = 1UL << ((i + 1) % 32);
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, one | zero, one));
    }
    if (rc < 0)
        return fail(err, errlen, "seccomp_rule_add(personality)", rc);

    /* socket: every family but AF_VSOCK (the host's hypervisor sockets, outside any
     * network namespace). The kernel reads the family as an int, so AF_VSOCK is matched on
     * the low 32 bits whatever the high ones say. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffUL, AF_VSOCK));
    if (rc == 0)
        rc = allow_arg0_range(ctx, SCMP_SYS(socket), 0, AF_VSOCK - 1);
    if (rc == 0)
        rc = allow_arg0_range(ctx, SCMP_SYS(socket), AF_VSOCK + 1, SOCKET_FAMILY_LIMIT - 1);
    if (rc < 0)
        return fail(err, errlen, "seccomp_rule_add(socket)", rc);
    return 0;
}

/* Calls add_argument_rules decides (clone3 by staying off every list). */
static const char *const argument_checked[] = {"clone", "clone3", "personality", "socket"};

static bool listed(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

static int add_rules(scmp_filter_ctx ctx, char *err, size_t errlen)
{
    /* Of two rules for one call libseccomp keeps the argument-less one, or the first of
     * two argument-less ones, and drops the other without an error: a call on two lists
     * would lose its denial or its argument checks. */
    for (size_t i = 0; i < NELEMS(allowed_syscalls) + NELEMS(denied_syscalls); i++) {
        bool allowed = i < NELEMS(allowed_syscalls);
        const char *name = allowed ? allowed_syscalls[i] : denied_syscalls[i - NELEMS(allowed_syscalls)];
        if ((allowed && listed(name, denied_syscalls, NELEMS(denied_syscalls))) ||
            listed(name, argument_checked, NELEMS(argument_checked))) {
            snprintf(err, errlen, "seccomp: %s is on more than one list", name);
            return -1;
        }
    }
    if (add_named(ctx, SCMP_ACT_ERRNO(EPERM), denied_syscalls, NELEMS(denied_syscalls), err, errlen) < 0 ||
        add_named(ctx, SCMP_ACT_ALLOW, allowed_syscalls, NELEMS(allowed_syscalls), err, errlen) < 0)
        return -1;
    return add_argument_rules(ctx, err, errlen);
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
    /* ENOSYS, not EPERM, for what is not on the list: "this kernel lacks the call" is
     * what libraries probe for and fall back from (glibc's clone3, statx, ...). */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
    if (!ctx)
        return fail(err, errlen, "seccomp_init", ENOMEM);
    /* Only the native architecture is in the filter, so i386 (int 0x80) calls hit the
     * bad-arch action; libseccomp also sends x32 numbers (bit 30 set) there on x86_64. */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc < 0) {
        seccomp_release(ctx);
        return fail(err, errlen, "seccomp_attr_set(ACT_BADARCH)", rc);
    }
    /* Level 2 sorts the calls into a binary tree: a call is found in about nine jumps
     * instead of a walk down some 300 comparisons, on every system call of the job. */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc < 0) {
        seccomp_release(ctx);
        return fail(err, errlen, "seccomp_attr_set(CTL_OPTIMIZE)", rc);
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
