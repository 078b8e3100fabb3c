/* Warm sandboxes (see pool_warm.h): the pipes and sockets of one, the request to the
 * zygote with its uids and tmpfs sizes, its cgroup joined before the job process exists,
 * and the two-step handshake (sandbox ready, job process confirmed its privilege drop). */
#include "sandbox/pool_warm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

static atomic_uint warm_counter; /* names of the warm sandboxes' cgroups */

static int send_fds(int sock, const char *msg, const int *fds, int nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 8)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Receives one message and at most one fd (-1 when none). Returns the length or -1. */
static ssize_t recv_fd(int sock, char *buf, size_t len, int *fd)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    *fd = -1;
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int got[4];
        memcpy(got, CMSG_DATA(cm), sizeof(int) * (count > 4 ? 4 : count));
        for (size_t i = 0; i < count && i < 4; i++) {
            if (*fd < 0)
                *fd = got[i];
            else
                close(got[i]);
        }
    }
    return n;
}

/* The pid of a pidfd in our PID namespace, from its fdinfo. */
static pid_t pidfd_pid(int pidfd)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strstr(buf, "\nPid:");
    if (!p)
        return -1;
    long pid = strtol(p + 5, NULL, 10);
    return pid > 1 ? (pid_t)pid : -1;
}

/* Init's pidfd turns readable only once init has exited, and a PID namespace's init
 * finishes exiting only after the kernel has killed and reaped every other process of the
 * namespace: from then on the sandbox's cgroup is empty. Removing an empty cgroup needs no
 * freeze/kill/thaw round trip, which on cgroup v1 switches a kernel static key on and off
 * (code patched on every CPU: most of executord's own CPU per pool job on a VM, bench/
 * results/2026-12-06-teardown-freezer.md). Past the bound the removal freezes and kills
 * whatever is still listed, as before. */
static void wait_for_init_exit(int pidfd)
{
    if (pidfd >= 0 && pool_wait_readable(pidfd, POOL_EXIT_WAIT_MS) < 0)
        fprintf(stderr, "executord: pool: waiting for a warm sandbox to exit: %s\n", strerror(errno));
}

void pool_warm_destroy(pool_warm *w)
{
    if (!w)
        return;
    if (w->pidfd >= 0 && syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
        fprintf(stderr, "executord: pool: kill warm sandbox: %s\n", strerror(errno));
    wait_for_init_exit(w->pidfd);
    char err[512];
    if (w->cg && sandbox_cgroup_job_destroy(w->cg, err, sizeof err) != 0)
        fprintf(stderr, "executord: pool: removing cgroup: %s\n", err);
    pool_close_fd(&w->out_r);
    pool_close_fd(&w->err_r);
    pool_close_fd(&w->spec_fd);
    pool_close_fd(&w->result_r);
    pool_close_fd(&w->status_fd);
    pool_close_fd(&w->pidfd);
    free(w);
}

pool_warm *pool_warm_prepare(pool_zygote *z, unsigned slot, int ctl, const pool_warm_setup *s,
                             bool *zygote_broken, char *err, size_t errlen)
{
    *zygote_broken = false;
    pool_warm *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "calloc: %s", strerror(errno));
        return NULL;
    }
    w->z = z;
    w->slot = slot;
    w->out_r = w->err_r = w->spec_fd = w->result_r = w->status_fd = w->pidfd = -1;
    int child[5] = {-1, -1, -1, -1, -1};
    int p[2];
    bool ok = false;
    if (pipe2(p, O_CLOEXEC) != 0)
        goto sys;
    w->out_r = p[0], child[0] = p[1];
    if (pipe2(p, O_CLOEXEC) != 0)
        goto sys;
    w->err_r = p[0], child[1] = p[1];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
        goto sys;
    w->spec_fd = p[0], child[2] = p[1];
    if (pipe2(p, O_CLOEXEC) != 0)
        goto sys;
    w->result_r = p[0], child[3] = p[1];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) != 0)
        goto sys;
    w->status_fd = p[0], child[4] = p[1];
    if (s->cgroups) {
        char name[64];
        snprintf(name, sizeof name, "warm-%d-%u", (int)getpid(), atomic_fetch_add(&warm_counter, 1) + 1);
        sandbox_limits none;
        memset(&none, 0, sizeof none);
        if (sandbox_cgroup_job_create(name, &none, &w->cg, err, errlen) != 0)
            goto fail;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "F %u %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %u", (unsigned)z->base + 1 + 2 * slot,
             (unsigned)z->base + 2 + 2 * slot,
             s->tmp_bytes, s->shm_bytes, s->work_bytes, 16384u);
    if (send_fds(ctl, msg, child, 5) != 0) {
        snprintf(err, errlen, "request a warm sandbox from the zygote: %s", strerror(errno));
        *zygote_broken = true; /* its socket is gone */
        goto fail;
    }
    for (int i = 0; i < 5; i++)
        pool_close_fd(&child[i]);
    int r = pool_wait_readable(w->status_fd, POOL_READY_TIMEOUT_MS);
    char reply[512];
    ssize_t n = r > 0 ? recv_fd(w->status_fd, reply, sizeof reply - 1, &w->pidfd) : -1;
    if (n > 0 && reply[0] == 'E') {
        reply[n] = '\0';
        snprintf(err, errlen, "warm sandbox setup: %s", reply + (n > 2 ? 2 : 1));
        goto fail;
    }
    if (n != 1 || reply[0] != 'R' || w->pidfd < 0) {
        snprintf(err, errlen, "warm sandbox not ready (%s)", r == 0 ? "timed out: zygote wedged" : "zygote gone");
        *zygote_broken = r == 0;
        goto fail;
    }
    if ((w->host_pid = pidfd_pid(w->pidfd)) < 0) {
        snprintf(err, errlen, "pid of the warm sandbox: %s", strerror(errno ? errno : ESRCH));
        goto fail;
    }
    /* Before the job's process exists, so it and all it starts are born inside. */
    if (w->cg && sandbox_cgroup_job_attach(w->cg, w->host_pid, err, errlen) != 0)
        goto fail;
    if (send(w->status_fd, "G", 1, MSG_NOSIGNAL) != 1) {
        snprintf(err, errlen, "release the warm sandbox: %s", strerror(errno));
        goto fail;
    }
    /* The job process confirms its privilege drop and seccomp; only then is it ready. */
    r = pool_wait_readable(w->status_fd, POOL_READY_TIMEOUT_MS);
    n = r > 0 ? recv(w->status_fd, reply, sizeof reply - 1, 0) : -1;
    if (n > 1 && reply[0] == 'E') {
        reply[n] = '\0';
        snprintf(err, errlen, "warm sandbox setup: %s", reply + 2);
        goto fail;
    }
    if (n != 1 || reply[0] != 'S') {
        snprintf(err, errlen, "warm sandbox: the job process failed its setup (%s; see the log)",
                 r == 0 ? "timed out" : "exited");
        goto fail;
    }
    ok = true;
    goto done;
sys:
    snprintf(err, errlen, "pipes for a warm sandbox: %s", strerror(errno));
fail:
done:
    for (int i = 0; i < 5; i++)
        pool_close_fd(&child[i]);
    if (!ok) {
        pool_warm_destroy(w);
        return NULL;
    }
    return w;
}

bool pool_warm_alive(const pool_warm *w)
{
    struct pollfd p[2] = {{.fd = w->pidfd, .events = POLLIN}, {.fd = w->status_fd, .events = POLLIN}};
    int rc = poll(p, 2, 0);
    return rc == 0;
}
