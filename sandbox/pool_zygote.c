/* The pool's zygote (see pool_zygote.h): cloning it into its namespaces, writing its uid
 * maps, handing it its program, the warm library (a sealed memfd) and the seccomp filter,
 * and killing it. Its parent-death signal
 * is tied to the thread that starts it: the pool's manager thread. */
#include "sandbox/pool_zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/oom.h"
#include "sandbox/policy.h"
#include "sandbox/process.h"
#include "sandbox/userns.h"

typedef struct zchild {
    int ctl, sync, devnull, logfd, library;
    const mnt_plan *plan;
    const char *python;
    char *const *argv;
    char *const *envp;
} zchild;

/* In the clone (new user/PID/mount/IPC/UTS/net namespaces): async-signal-safe only. The
 * step that failed goes to stderr as a fixed string; the service sees the zygote die. */
static _Noreturn void zygote_fail(const char *step)
{
    int e = errno;
    const char *msg = "executord: pool: zygote setup failed: ";
    ssize_t n = write(2, msg, strlen(msg));
    n = write(2, step, strlen(step));
    const char *es = strerrordesc_np(e);
    if (es) {
        n = write(2, ": ", 2);
        n = write(2, es, strlen(es));
    }
    n = write(2, "\n", 1);
    (void)n;
    _exit(127);
}

static _Noreturn void zygote_child(const zchild *c)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        (void)sigaction(sig, &sa, NULL);
    }
    /* 0-2 and the control socket survive the exec of python, and so does the warm
     * library, which it loads from /proc/self/fd/POOL_ZYGOTE_LIBRARY_FD; not the sync. */
    int fds[6] = {c->devnull, c->devnull, c->logfd, c->ctl, c->sync, c->library};
    const char *step = NULL;
    if (policy_place_fds(fds, 6, 0x2f, &step) != 0)
        zygote_fail(step);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        zygote_fail("prctl(PR_SET_PDEATHSIG)");
    char go;
    ssize_t n;
    do {
        n = read(4, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125);
    close(4);
    /* A sandbox's init steps on the zygote's root (the execve below makes it dumpable
     * again: it writes its own sandboxes' uid maps). */
    policy_init init = {.mounts = c->plan};
    if (policy_init_steps(&init, &step) != 0)
        zygote_fail(step ? step : "sandbox init steps");
    if (chdir("/work") != 0)
        zygote_fail("chdir /work");
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        zygote_fail("sigprocmask");
    execve(c->python, c->argv, c->envp);
    zygote_fail("execve python");
}

/* The warm library embedded in the binary, in a memfd sealed against every change: the
 * zygote maps what the service built, byte for byte. -1 with err on failure. */
static int warm_library_memfd(char *err, size_t errlen)
{
    int fd = memfd_create("executord-warm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create (warm library): %s", strerror(errno));
        return -1;
    }
    const unsigned char *p = pool_warm_library;
    size_t left = pool_warm_library_size;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "write the warm library: %s", strerror(n < 0 ? errno : EIO));
            close(fd);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        snprintf(err, errlen, "seal the warm library: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* uid/gid 0 of the zygote -> base; base+1 .. base+2*SLOTS -> themselves (slot i: the
 * job namespace's root base+1+2i and its uid 1000 base+2+2i, so the job's own uid_map
 * shows real host uids, as in ephemeral); 1000 (owner of the zygote's /work) -> the id
 * after the block. */
static int zygote_maps(pid_t pid, uid_t base, char *err, size_t errlen)
{
    char map[160];
    snprintf(map, sizeof map, "0 %u 1\n%u %u 1\n%u %u %u\n", (unsigned)base, SANDBOX_INSIDE_UID,
             (unsigned)base + 1 + 2 * POOL_SLOTS, (unsigned)base + 1, (unsigned)base + 1, 2 * POOL_SLOTS);
    return sandbox_userns_write_map_text(pid, map, map, err, errlen);
}

void pool_zygote_kill(pool_zygote *z)
{
    pool_close_fd(&z->ctl);
    if (z->pidfd >= 0 && syscall(SYS_pidfd_send_signal, z->pidfd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
        fprintf(stderr, "executord: pool: kill zygote: %s\n", strerror(errno));
    if (z->pid > 0) {
        while (waitpid(z->pid, NULL, __WALL) < 0 && errno == EINTR) {
        }
    }
    pool_close_fd(&z->pidfd);
    pool_close_fd(&z->lock_fd); /* the uid block is free again: nothing of the zygote remains */
    z->pid = -1;
}

/* A block of the uid range no zygote of ours uses and no other instance holds (flock in
 * the lock folder ephemeral uses for its slots). Called with mu held. Returns the block
 * and *lock_fd (-1 when coordination is off), or -1 when every block is taken. */
int pool_zygote_start(pool_zygote *z, const pool_zygote_setup *s, unsigned block, uid_t base, int lock_fd,
                      char *err, size_t errlen)
{
    memset(z, 0, sizeof *z);
    z->pid = -1;
    z->pidfd = z->ctl = -1;
    z->block = block;
    z->lock_fd = lock_fd;
    z->base = base;
    int ctl[2] = {-1, -1}, sync[2] = {-1, -1}, devnull = -1, library = -1, rc = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        goto out;
    }
    if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "open /dev/null: %s", strerror(errno));
        goto out;
    }
    if ((library = warm_library_memfd(err, errlen)) < 0)
        goto out;
    char *argv[] = {(char *)s->python, "-I", "-u", "-c", (char *)sandbox_runner_source, "--zygote", NULL};
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work", "LANG=C.UTF-8", NULL};
    zchild c = {.ctl = ctl[1], .sync = sync[1], .devnull = devnull, .logfd = 2, .library = library, .plan = s->plan, .python = s->python,
                .argv = argv, .envp = envp};
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = policy_namespaces() | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&z->pidfd;
    args.exit_signal = SIGCHLD;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        zygote_child(&c);
    int cerr = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        z->pidfd = -1;
        snprintf(err, errlen, "clone3 (zygote namespaces): %s", strerror(cerr));
        goto out;
    }
    z->pid = (pid_t)pid;
    pool_close_fd(&ctl[1]);
    pool_close_fd(&sync[1]);
    /* The zygote's value is its sandboxes' (they are its forks), so every pool job carries
     * it; the zygote itself is then also killed before executord, and replaced. */
    if (sandbox_oom_raise(z->pid, err, errlen) != 0 || zygote_maps(z->pid, z->base, err, errlen) != 0)
        goto out;
    if (send(sync[0], "g", 1, MSG_NOSIGNAL) != 1) {
        snprintf(err, errlen, "release zygote: %s", strerror(errno));
        goto out;
    }
    /* First its program (kept out of runner.py, which every cold job parses), then the
     * seccomp filter its sandboxes load. */
    if (send(ctl[0], pool_zygote_source, strlen(pool_zygote_source), MSG_NOSIGNAL) < 0) {
        snprintf(err, errlen, "send the zygote's program: %s", strerror(errno));
        goto out;
    }
    if (send(ctl[0], s->seccomp->filter, s->seccomp->len * sizeof *s->seccomp->filter, MSG_NOSIGNAL) < 0) {
        snprintf(err, errlen, "send seccomp program to zygote: %s", strerror(errno));
        goto out;
    }
    char hello[4];
    int w = pool_wait_readable(ctl[0], POOL_ZYGOTE_START_MS);
    ssize_t n = w > 0 ? recv(ctl[0], hello, sizeof hello, 0) : -1;
    if (n != 1 || hello[0] != 'Z') {
        snprintf(err, errlen, "zygote did not start (%s; see its stderr above)",
                 w == 0 ? "timed out" : n == 0 ? "exited" : "no greeting");
        goto out;
    }
    z->ctl = ctl[0];
    ctl[0] = -1;
    z->used = true;
    z->born_ns = pool_now_ns();
    rc = 0;
out:
    pool_close_fd(&ctl[0]);
    pool_close_fd(&ctl[1]);
    pool_close_fd(&sync[0]);
    pool_close_fd(&sync[1]);
    pool_close_fd(&devnull);
    pool_close_fd(&library);
    if (rc != 0) {
        if (z->pid > 0)
            pool_zygote_kill(z);
        pool_close_fd(&z->lock_fd);
    }
    return rc;
}
