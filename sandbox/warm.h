/* The warm library: the entry points of libexecutord_warm.so, the shared library the
 * pool's zygote (sandbox/pool_zygote.py) loads with ctypes.PyDLL from a sealed memfd the
 * service hands it (pool_zygote.c). It is built from the same sources as the service's
 * sandboxes (policy.c, mnt.c, caps.c, net.c, rlimits.c, seccomp_apply.c, userns.c), so a
 * warm sandbox is isolated by the very steps `ephemeral` runs; the zygote's Python only
 * imports, receives requests, calls these and runs the runner. libc only. */
#ifndef EXECUTORD_SANDBOX_WARM_H
#define EXECUTORD_SANDBOX_WARM_H

#include <stddef.h>

#define EXD_WARM_EXPORT __attribute__((visibility("default")))

/* Exit statuses of a warm sandbox's processes that failed their set-up; the reason went
 * to the service as "E <step>: <strerror>" on the status socket when it could. */
enum {
    EXD_WARM_EXIT_FDS = 120,   /* its fds could not be placed: nothing reported */
    EXD_WARM_EXIT_INIT = 121,  /* the sandbox's init failed a step */
    EXD_WARM_EXIT_JOB = 122,   /* the job process failed a step */
};

/* In the zygote, before any spawn: keeps a copy of the seccomp program (classic BPF, len
 * a multiple of 8 bytes, at most BPF_MAXINSNS instructions) every sandbox loads,
 * replacing an earlier one. 0, or -1 (the earlier program stays). */
EXD_WARM_EXPORT int exd_warm_init(const void *bpf, size_t len);

/* One warm sandbox for the request "F <root uid> <job uid> <tmp> <shm> <work> <inodes>"
 * with fds {stdout, stderr, spec, result, status} (the zygote closes its copies after
 * the call). Clones the sandbox into policy_namespaces() and writes its uid maps;
 * the sandbox's init runs policy_init_steps on a scratch mount plan, reports "R" (with a
 * pidfd of itself) on status, waits for "G", enters its cgroup namespace and forks the
 * job process, which places its fds (0 /dev/null, 1-4 the job's), runs policy_job_steps
 * and reports "S" (or "E ...") through init; init then reaps it and reports
 * "X <wait status> <utime us> <stime us> <maxrss KiB>".
 * Returns the sandbox's pid in the zygote, 0 in the job process (set up, /work its
 * folder: the caller runs the runner), or -1 when nothing was started (reported on
 * status as "E ..."). Never returns in the sandbox's init. */
EXD_WARM_EXPORT long exd_warm_spawn(const char *request, const int *fds, int nfds);

/* In the job process, for the job's spec: count triples {resource, soft, hard} (-1 =
 * unlimited) applied with setrlimit. 0, or -1 with errno set. */
EXD_WARM_EXPORT int exd_warm_rlimits(const long long *triples, int count);

#endif
