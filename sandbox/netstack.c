/* slirp4netns for one job (see netstack.h): its command line, the fds it is given, the
 * ready handshake and the kill. */
#include "sandbox/netstack.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/helper_proc.h"

/* The fds slirp4netns finds (helper_fds.extra, in this order): 3 ready pipe, 4 exit
 * pipe, 5 user namespace, 6 network namespace (named to it as /proc/self/fd/N). */
enum { FD_USERNS = 5, FD_NETNS = 6 };

static struct {
    char path[4096];
    char version[128];
} st;

const char *netstack_version(void)
{
    return st.version;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int netstack_configure(const char *path, char *why, size_t whylen)
{
    st.version[0] = '\0';
    snprintf(st.path, sizeof st.path, "%s", path && *path ? path : "/usr/bin/slirp4netns");
    if (access(st.path, X_OK) != 0) {
        snprintf(why, whylen, "slirp4netns: %s: %s (Debian package slirp4netns)", st.path, strerror(errno));
        return -1;
    }
    int out = memfd_create("slirp4netns-version", MFD_CLOEXEC);
    if (out < 0) {
        snprintf(why, whylen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    char *const argv[] = {st.path, "--version", NULL};
    helper_fds fds = {.in = -1, .out = out};
    pid_t pid;
    int e = helper_spawn(st.path, argv, &fds, &pid);
    if (e != 0) {
        close(out);
        snprintf(why, whylen, "slirp4netns: %s: %s", st.path, strerror(e));
        return -1;
    }
    int status;
    helper_wait(pid, &status);
    char text[256] = "";
    ssize_t n = pread(out, text, sizeof text - 1, 0);
    close(out);
    text[n > 0 ? n : 0] = '\0';
    text[strcspn(text, "\n")] = '\0';
    /* "slirp4netns version 1.2.0" */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strncmp(text, "slirp4netns version ", 20) != 0) {
        snprintf(why, whylen, "slirp4netns: %s --version did not answer as slirp4netns does (%s)", st.path,
                 text[0] ? text : "no output");
        return -1;
    }
    snprintf(st.version, sizeof st.version, "%.100s", text + 20);
    return 0;
}

/* The command line measured in bench/netstack.sh: tap0 configured (10.0.2.100/24), no way
 * to the host's loopback through 10.0.2.2 unless host_loopback (an egress_only job whose
 * list names 127.0.0.1: its ruleset then opens 10.0.2.2 for the listed ports only),
 * slirp4netns itself in its own mount namespace with capabilities dropped and a seccomp
 * filter, its lifetime tied to the exit pipe. */
static void build_argv(char *argv[], size_t n, bool host_loopback, char userns_arg[], size_t ulen, char netns_arg[],
                       size_t nlen)
{
    snprintf(userns_arg, ulen, "--userns-path=/proc/self/fd/%d", FD_USERNS);
    snprintf(netns_arg, nlen, "/proc/self/fd/%d", FD_NETNS);
    char *const words[] = {st.path, "--configure", "--mtu=65520", "--enable-sandbox", "--enable-seccomp",
                           "--ready-fd=3", "--exit-fd=4", "--netns-type=path", userns_arg, netns_arg, "tap0",
                           NULL};
    size_t i = 0;
    argv[i++] = words[0];
    if (!host_loopback)
        argv[i++] = "--disable-host-loopback";
    for (size_t w = 1; words[w] && i + 1 < n; w++)
        argv[i++] = words[w];
    argv[i] = NULL;
}

void netstack_init(netstack *s)
{
    s->pid = -1;
    s->pidfd = s->ready_r = s->exit_w = s->log_fd = -1;
}

int netstack_start(netstack *s, int userns_fd, int netns_fd, bool host_loopback, char *err, size_t errlen)
{
    netstack_init(s);
    if (!st.version[0]) {
        snprintf(err, errlen, "slirp4netns is not available");
        return -1;
    }
    int ready[2] = {-1, -1}, quit[2] = {-1, -1};
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(quit, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe2: %s", strerror(errno));
        goto fail;
    }
    s->ready_r = ready[0];
    s->exit_w = quit[1];
    if ((s->log_fd = memfd_create("slirp4netns-log", MFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        goto fail;
    }
    char *argv[16], userns_arg[64], netns_arg[64];
    build_argv(argv, sizeof argv / sizeof argv[0], host_loopback, userns_arg, sizeof userns_arg, netns_arg, sizeof netns_arg);
    helper_fds fds = {.in = -1, .out = s->log_fd, .extra = {ready[1], quit[0], userns_fd, netns_fd}, .n_extra = 4};
    int e = helper_spawn(st.path, argv, &fds, &s->pid);
    close_fd(&ready[1]);
    close_fd(&quit[0]);
    if (e != 0) {
        s->pid = -1;
        snprintf(err, errlen, "spawn %s: %s", st.path, strerror(e));
        goto fail;
    }
    /* Our child: nobody else reaps it, so the pid stays ours until we wait for it. */
    if ((s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0)) < 0) {
        snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
        goto fail;
    }
    /* Each connection of the job is a socket of slirp4netns on the host: bounded, so one
     * job cannot take the service's whole allowance (set before it is ready, so before
     * any of the job's code runs). */
    struct rlimit files = {NETSTACK_MAX_FILES, NETSTACK_MAX_FILES};
    if (prlimit(s->pid, RLIMIT_NOFILE, &files, NULL) != 0) {
        snprintf(err, errlen, "prlimit(RLIMIT_NOFILE) of slirp4netns: %s", strerror(errno));
        goto fail;
    }
    return 0;
fail:
    close_fd(&ready[1]);
    close_fd(&quit[0]);
    netstack_stop(s);
    return -1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int netstack_wait_ready(netstack *s, int timeout_ms, char *err, size_t errlen)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->ready_r, .events = POLLIN}, {.fd = s->pidfd, .events = POLLIN}};
        long long left = deadline - now_ms();
        if (left <= 0) {
            char why[512];
            helper_last_line(s->log_fd, why, sizeof why);
            snprintf(err, errlen, "slirp4netns not ready in %d ms: %s", timeout_ms, why);
            return -1;
        }
        int n = poll(p, 2, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return -1;
        }
        if (p[0].revents & POLLIN) {
            char c;
            ssize_t got = read(s->ready_r, &c, 1);
            if (got == 1 && c == '1')
                return 0;
        }
        if (p[0].revents & (POLLIN | POLLHUP) || p[1].revents) {
            /* EOF or an exit before "1": it gave up. */
            char why[512];
            helper_last_line(s->log_fd, why, sizeof why);
            snprintf(err, errlen, "slirp4netns exited before it was ready: %s", why);
            return -1;
        }
    }
}

/* Dying takes slirp4netns a while (closing its tap device unregisters it, which waits
 * for RCU grace periods: ~15-30 ms here), and the job's answer should not wait for that:
 * a detached thread reaps it. */
static void *reap_main(void *arg)
{
    int status;
    helper_wait((pid_t)(intptr_t)arg, &status);
    return NULL;
}

static void reap_later(pid_t pid)
{
    pthread_attr_t at;
    pthread_t t;
    bool started = false;
    if (pthread_attr_init(&at) == 0) {
        started = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0 &&
                  pthread_create(&t, &at, reap_main, (void *)(intptr_t)pid) == 0;
        pthread_attr_destroy(&at);
    }
    if (!started) { /* no thread: wait here rather than leave a zombie */
        int status;
        helper_wait(pid, &status);
    }
}

void netstack_stop(netstack *s)
{
    if (s->pid > 0) {
        if (s->pidfd >= 0)
            (void)syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
        else
            (void)kill(s->pid, SIGKILL);
        reap_later(s->pid);
        s->pid = -1;
    }
    close_fd(&s->pidfd);
    close_fd(&s->ready_r);
    close_fd(&s->exit_w);
    close_fd(&s->log_fd);
}
