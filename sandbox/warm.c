/* The warm library's entry points (see warm.h): the request of one warm sandbox parsed,
 * the clone and uid maps, the sandbox's init and job process running the isolation
 * policy (policy.h), and their reports to the service. Runs in the zygote, a
 * single-threaded Python interpreter: the forks may use libc freely. */
#include "sandbox/warm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/mnt.h"
#include "sandbox/policy.h"
#include "sandbox/rlimits.h"
#include "sandbox/userns.h"

enum { FD_OUT, FD_ERR, FD_SPEC, FD_RESULT, FD_STATUS, WARM_FDS };

static struct sock_fprog warm_seccomp; /* the service's program, copied at init */

typedef struct warm_request {
    unsigned root_uid, job_uid;
    uint64_t tmp_bytes, shm_bytes, work_bytes, inodes;
} warm_request;

int exd_warm_init(const void *bpf, size_t len)
{
    size_t insns = len / sizeof(struct sock_filter);
    if (!bpf || len == 0 || len % sizeof(struct sock_filter) != 0 || insns > BPF_MAXINSNS)
        return -1;
    struct sock_filter *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, bpf, len);
    free(warm_seccomp.filter);
    warm_seccomp.filter = copy;
    warm_seccomp.len = (unsigned short)insns;
    return 0;
}

/* "E <text>" on the status socket: the service logs it and discards the sandbox. */
static void report_error(int status_fd, const char *step, int err)
{
    char msg[400];
    int n = snprintf(msg, sizeof msg, "E %s%s%s", step, err ? ": " : "", err ? strerror(err) : "");
    if (n > 0)
        (void)send(status_fd, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, MSG_NOSIGNAL);
}

static int parse_request(const char *text, warm_request *r)
{
    char tail;
    return sscanf(text, "F %u %u %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %c", &r->root_uid, &r->job_uid,
                  &r->tmp_bytes, &r->shm_bytes, &r->work_bytes, &r->inodes, &tail) == 6
               ? 0
               : -1;
}

/* The fresh mounts of a sandbox on the zygote's root, made as the namespace's root. */
static int scratch_plan(const warm_request *r, mnt_plan *plan, char *err, size_t errlen)
{
    mnt_options o;
    memset(&o, 0, sizeof o);
    o.tmp_bytes = r->tmp_bytes;
    o.shm_bytes = r->shm_bytes;
    o.work_bytes = r->work_bytes;
    o.tmp_inodes = r->inodes;
    o.inside_uid = SANDBOX_INSIDE_UID;
    o.inside_gid = SANDBOX_INSIDE_GID;
    o.switch_ids = true;
    o.setup_uid = SANDBOX_INSIDE_ROOT;
    o.setup_gid = SANDBOX_INSIDE_ROOT;
    o.proc_read_only = true;
    return sandbox_mnt_plan_scratch(plan, &o, err, errlen);
}

static int read_byte(int fd, char *c)
{
    ssize_t n;
    do {
        n = read(fd, c, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

/* "R" with a pidfd of init itself: the service puts it into the job's cgroup by pid. */
static int send_ready(int status_fd)
{
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd < 0)
        return -1;
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {.iov_base = "R", .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &pidfd, sizeof pidfd);
    ssize_t n = sendmsg(status_fd, &mh, MSG_NOSIGNAL);
    int saved = errno;
    close(pidfd);
    errno = saved;
    return n == 1 ? 0 : -1;
}

/* The job process (pid 2): its fds, the job steps, then "S" to init. Returns only set
 * up; on failure the reason goes to init as "E ..." and the process exits. */
static void job_main(int done)
{
    const char *step = "open /dev/null";
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* Init placed the job's fds at 0..3 (FD_OUT..FD_RESULT); 0-4 survive the exec of
     * anything the script starts, as for a cold runner. */
    int fds[6] = {null, FD_OUT, FD_ERR, FD_SPEC, FD_RESULT, done};
    if (null < 0 || policy_place_fds(fds, 6, 0x1f, &step) != 0)
        _exit(EXD_WARM_EXIT_FDS);
    done = 5;
    if (setsid() < 0) {
        step = "setsid";
        goto fail;
    }
    policy_job job = {.rlimits = NULL, .seccomp = &warm_seccomp, .no_exec_follows = true};
    if (policy_job_steps(&job, &step) != 0)
        goto fail;
    if (chdir("/work") != 0) {
        step = "chdir /work";
        goto fail;
    }
    umask(022);
    if (write(done, "S", 1) != 1)
        _exit(EXD_WARM_EXIT_JOB);
    close(done);
    return;
fail:;
    char msg[300];
    int e = errno;
    int n = snprintf(msg, sizeof msg, "E job process: %s: %s", step, strerror(e));
    ssize_t told = n > 0 ? write(done, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) : 0;
    (void)told; /* without it, init reports the bare exit */
    _exit(EXD_WARM_EXIT_JOB);
}

static _Noreturn void init_fail(const char *step, int err)
{
    report_error(FD_STATUS, step, err);
    _exit(EXD_WARM_EXIT_INIT);
}

/* Forwards the job process's "S" or "E ..." to the service. */
static void forward_setup_result(int done_r)
{
    char msg[320];
    ssize_t n;
    do {
        n = read(done_r, msg, sizeof msg);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && (msg[0] == 'S' || msg[0] == 'E'))
        (void)send(FD_STATUS, msg, (size_t)(msg[0] == 'S' ? 1 : n), MSG_NOSIGNAL);
}

/* Reaps the job process (and what it left), then reports its status and usage. */
static _Noreturn void reap_and_report(pid_t job)
{
    int status = -1;
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, __WALL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            break;
        if (w == job) {
            status = st;
            break;
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) != 0)
        memset(&ru, 0, sizeof ru);
    char msg[128];
    int n = snprintf(msg, sizeof msg, "X %d %lld %lld %ld", status,
                     (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
                     (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss);
    (void)send(FD_STATUS, msg, (size_t)n, MSG_NOSIGNAL);
    _exit(0);
}

/* pid 1 of the sandbox's namespaces and root of its user namespace. Returns only in the
 * job process, set up. */
static void init_main(const warm_request *r, const int *fds, int mapped_r)
{
    /* The zygote ignores SIGCHLD (the kernel reaps its forks); init waits for its own.
     * pid 1 must not take the zygote's Python SIGINT handler either. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    if (sigaction(SIGCHLD, &dfl, NULL) != 0 || sigaction(SIGINT, &dfl, NULL) != 0)
        _exit(EXD_WARM_EXIT_FDS);
    const char *step = NULL;
    int placed[WARM_FDS + 1] = {fds[FD_OUT], fds[FD_ERR], fds[FD_SPEC], fds[FD_RESULT], fds[FD_STATUS], mapped_r};
    if (policy_place_fds(placed, WARM_FDS + 1, 0, &step) != 0)
        _exit(EXD_WARM_EXIT_FDS);
    mapped_r = WARM_FDS;
    char c;
    if (read_byte(mapped_r, &c) != 0 || c != 'm')
        init_fail("the zygote did not write the uid map", 0);
    close(mapped_r);
    char err[256];
    mnt_plan plan;
    if (scratch_plan(r, &plan, err, sizeof err) != 0)
        init_fail(err, 0);
    policy_init init = {.mounts = &plan};
    if (policy_init_steps(&init, &step) != 0)
        init_fail(step, errno);
    sandbox_mnt_plan_free(&plan);
    if (send_ready(FD_STATUS) != 0)
        init_fail("report ready", errno);
    if (read_byte(FD_STATUS, &c) != 0 || c != 'G')
        _exit(0); /* the service gave this sandbox up */
    if (policy_enter_cgroup_ns(&step) != 0)
        init_fail(step, errno);
    int done[2];
    if (pipe2(done, O_CLOEXEC) != 0)
        init_fail("pipe2", errno);
    long job = syscall(SYS_clone, (unsigned long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (job < 0)
        init_fail("fork the job process", errno);
    if (job == 0) {
        close(done[0]);
        job_main(done[1]);
        return;
    }
    for (int fd = FD_OUT; fd <= FD_RESULT; fd++)
        close(fd);
    close(done[1]);
    forward_setup_result(done[0]);
    close(done[0]);
    reap_and_report((pid_t)job);
}

/* Its root and uid 1000 are host uids of its own, from the zygote's block. */
static int write_maps(pid_t pid, const warm_request *r, char *err, size_t errlen)
{
    char map[96];
    snprintf(map, sizeof map, "0 %u 1\n%u %u 1\n", r->root_uid, SANDBOX_INSIDE_UID, r->job_uid);
    return sandbox_userns_write_map_text(pid, map, map, err, errlen);
}

long exd_warm_spawn(const char *request, const int *fds, int nfds)
{
    if (nfds != WARM_FDS || !fds)
        return -1;
    warm_request r;
    if (!request || parse_request(request, &r) != 0 || !warm_seccomp.filter) {
        report_error(fds[FD_STATUS], warm_seccomp.filter ? "bad request" : "warm library not initialised", 0);
        return -1;
    }
    int mapped[2];
    if (pipe2(mapped, O_CLOEXEC) != 0) {
        report_error(fds[FD_STATUS], "pipe2", errno);
        return -1;
    }
    /* Without CLONE_VM this behaves like fork() and creates the namespaces itself: one
     * copy of the interpreter per sandbox. The zygote holds the GIL across the call
     * (PyDLL), so the job process returns to Python holding its copy of it. */
    long pid = syscall(SYS_clone, policy_namespaces() | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0) {
        int e = errno;
        close(mapped[0]);
        close(mapped[1]);
        report_error(fds[FD_STATUS], "clone (sandbox namespaces)", e);
        return -1;
    }
    if (pid == 0) {
        close(mapped[1]);
        init_main(&r, fds, mapped[0]);
        return 0; /* the job process, set up */
    }
    close(mapped[0]);
    char err[256];
    ssize_t told = write_maps((pid_t)pid, &r, err, sizeof err) == 0 ? write(mapped[1], "m", 1) : 0;
    (void)told; /* without the byte the sandbox reports "did not write the uid map" itself */
    close(mapped[1]);
    return pid;
}

int exd_warm_rlimits(const long long *triples, int count)
{
    rlimit_set set;
    if (count < 0 || count > RLIMITS_MAX || (count > 0 && !triples)) {
        errno = EINVAL;
        return -1;
    }
    set.count = count;
    for (int i = 0; i < count; i++) {
        const long long *t = triples + 3 * i;
        set.items[i].resource = (int)t[0];
        set.items[i].step = "setrlimit";
        set.items[i].lim.rlim_cur = t[1] < 0 ? RLIM_INFINITY : (rlim_t)t[1];
        set.items[i].lim.rlim_max = t[2] < 0 ? RLIM_INFINITY : (rlim_t)t[2];
    }
    const char *step;
    return rlimits_apply(&set, &step);
}
