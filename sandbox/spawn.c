/* The cold tree's spawning (see spawn.h): the clone, the release of init through the
 * backend's hooks, and the child side (init and the runner), which is async-signal-safe
 * only: the service is multithreaded and the child a copy of one of its threads. */
#include "sandbox/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/oom.h"
#include "sandbox/policy.h"
#include "sandbox/userns.h"

/* Fixed fd numbers inside the tree. 0-4 are the runner's protocol fds. */
enum { FD_RUNNER_COUNT = SPAWN_RUNNER_FDS, FD_STATUS = 5, FD_SYNC = 6, FD_INIT_COUNT = 7 };

/* What init tells the service on the status pipe. Fixed size below PIPE_BUF, so each
 * write is atomic and a record is never torn. */
enum { REC_SETUP_ERROR = 1, REC_EXIT = 2 };

/* How long the service waits for init to build its root (parent_root_ready). */
enum { SPAWN_ROOTED_TIMEOUT_MS = 10000 };

typedef struct proc_record {
    int kind;
    int err;          /* errno, REC_SETUP_ERROR */
    int status;       /* runner's wait status, REC_EXIT */
    struct rusage ru; /* init's RUSAGE_CHILDREN (runner and reaped orphans), REC_EXIT */
    char step[160];
} proc_record;

/* The plan as the child side reads it: every fd it places at 0..6. */
typedef struct child_plan {
    int fds[FD_INIT_COUNT];
    const spawn_plan *p;
    bool two_phase; /* a second byte on FD_SYNC releases the runner (parent_attach) */
    bool say_rooted; /* init sends "r" on FD_SYNC once its root is built (parent_root_ready) */
} child_plan;

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

int spawn_write_id_maps(pid_t pid, uid_t outside_uid, gid_t outside_gid, char *err, size_t errlen)
{
    char uid_map[32], gid_map[32];
    snprintf(uid_map, sizeof uid_map, "0 %u 1\n", (unsigned)outside_uid);
    snprintf(gid_map, sizeof gid_map, "0 %u 1\n", (unsigned)outside_gid);
    return sandbox_userns_write_map_text(pid, uid_map, gid_map, err, errlen);
}

/* ---- child side: async-signal-safe only ---------------------------------------- */

static void child_report(const char *step, int err)
{
    proc_record r;
    memset(&r, 0, sizeof r);
    r.kind = REC_SETUP_ERROR;
    r.err = err;
    size_t i = 0;
    for (; step && step[i] && i < sizeof r.step - 1; i++)
        r.step[i] = step[i];
    r.step[i] = '\0';
    ssize_t n = write(FD_STATUS, &r, sizeof r);
    (void)n; /* nothing more can be done: the service sees an exit without a record */
}

static _Noreturn void child_fail(const char *step)
{
    child_report(step, errno);
    _exit(127);
}

static _Noreturn void runner_main(const spawn_plan *p)
{
    const char *step = NULL;
    /* The protocol fds were placed close-on-exec in init; these five must survive. */
    for (int i = 0; i < FD_RUNNER_COUNT; i++)
        if (fcntl(i, F_SETFD, 0) != 0)
            child_fail("fcntl F_SETFD runner fd");
    /* Own session and process group: job control signals from outside never reach it. */
    if (setsid() < 0)
        child_fail("setsid");
    if (p->cwd && chdir(p->cwd) != 0)
        child_fail("chdir work folder");
    if (rlimits_apply(&p->rl, &step) != 0)
        child_fail(step);
    if (p->hooks->child_pre_exec && p->hooks->child_pre_exec(p->hooks->ctx, &step) != 0)
        child_fail(step ? step : "child_pre_exec");
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        child_fail("sigprocmask");
    execve(p->python, p->argv, p->envp);
    child_fail("execve python");
}

/* pid 1 of the new PID namespace. Never execs: it runs the backend's namespace setup,
 * forks the runner, reaps every process that ends up under it, and reports the runner's
 * status; its exit then takes the whole namespace down. */
static _Noreturn void init_main(const child_plan *c)
{
    /* Handlers belong to the service; keep every signal blocked here, runner unblocks. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        (void)sigaction(sig, &sa, NULL); /* fails harmlessly for KILL/STOP/reserved */
    }
    /* Place the fds we need at 0..6 (close-on-exec) and drop every other fd inherited
     * from the service: init never execs, so CLOEXEC alone would not close them. */
    const char *placing = NULL;
    if (policy_place_fds(c->fds, FD_INIT_COUNT, 0, &placing) != 0)
        _exit(126); /* no status fd yet: the service reports the bare exit */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_fail("prctl PR_SET_PDEATHSIG");

    char go;
    ssize_t n;
    do {
        n = read(FD_SYNC, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125); /* the service gave up on this job before releasing it */
    if (!c->two_phase)
        close(FD_SYNC);

    const char *step = NULL;
    if (c->p->hooks->child_setup && c->p->hooks->child_setup(c->p->hooks->ctx, &step) != 0)
        child_fail(step ? step : "child_setup");
    if (c->say_rooted && write(FD_SYNC, "r", 1) != 1)
        child_fail("tell the service the root is ready");
    if (c->two_phase) {
        /* The service attaches us meanwhile (parent_attach); nothing of the job may
         * start before it says so. */
        do {
            n = read(FD_SYNC, &go, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(125);
        close(FD_SYNC);
        if (c->p->hooks->child_attached && c->p->hooks->child_attached(c->p->hooks->ctx, &step) != 0)
            child_fail(step ? step : "child_attached");
    }
    /* A change of credentials in child_setup clears the parent-death signal: re-arm it,
     * then check the service did not die before that (its end of the status channel
     * would be closed), or this tree could outlive a killed service. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_fail("prctl PR_SET_PDEATHSIG after setup");
    struct pollfd alive = {.fd = FD_STATUS, .events = POLLOUT};
    if (poll(&alive, 1, 0) == 1 && (alive.revents & (POLLERR | POLLHUP)))
        _exit(125);

    /* Raw fork: glibc's fork() would run atfork handlers and take locks that another
     * service thread may have held at the time of our clone. */
    long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0)
        child_fail("fork runner");
    if (pid == 0)
        runner_main(c->p);
    for (int i = 0; i < FD_RUNNER_COUNT; i++)
        close(i);

    /* Every signal is blocked here, so SIGCHLD and the service's kill request stay
     * queued for sigwaitinfo (a namespace init would otherwise drop them). */
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SPAWN_KILL_REQUEST);
    int status = 0;
    bool runner_done = false, kill_requested = false;
    while (!runner_done) {
        siginfo_t si;
        int sig = sigwaitinfo(&wanted, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            child_fail("sigwaitinfo");
        }
        if (sig == SPAWN_KILL_REQUEST && !kill_requested) {
            kill_requested = true;
            if (kill(-1, SIGKILL) != 0 && errno != ESRCH)
                child_fail("kill -1");
        }
        for (;;) {
            int st;
            pid_t w = wait4(-1, &st, __WALL | WNOHANG, NULL);
            if (w <= 0)
                break;
            if (w == (pid_t)pid) {
                status = st;
                runner_done = true;
            }
        }
    }
    if (kill_requested) {
        /* Reap the whole tree, so its CPU time lands in our RUSAGE_CHILDREN; processes
         * the namespace teardown would reap are not accounted anywhere. */
        for (;;) {
            int st;
            (void)kill(-1, SIGKILL);
            pid_t w = wait4(-1, &st, __WALL, NULL);
            if (w < 0 && errno != EINTR)
                break; /* ECHILD: everyone is gone */
        }
    }
    proc_record r;
    memset(&r, 0, sizeof r);
    r.kind = REC_EXIT;
    r.status = status;
    if (getrusage(RUSAGE_CHILDREN, &r.ru) != 0)
        memset(&r.ru, 0, sizeof r.ru);
    n = write(FD_STATUS, &r, sizeof r);
    _exit(n == (ssize_t)sizeof r ? 0 : 124);
}

/* ---- service side ---------------------------------------------------------------- */

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* cgroup_fd < 0: no CLONE_INTO_CGROUP. */
static long do_clone(unsigned long flags, int *pidfd, int cgroup_fd)
{
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (cgroup_fd >= 0)
        return pid; /* the caller retries without the flag; no clone() fallback here */
    if (pid < 0 && errno == ENOSYS) /* clone3 filtered (older container runtimes) */
        pid = syscall(SYS_clone, flags | CLONE_PIDFD | SIGCHLD, 0L, pidfd, 0L, 0L);
    return pid;
}

static int fail(char *err, size_t errlen, const char *call, int e)
{
    snprintf(err, errlen, "%s: %s", call, strerror(e));
    return SPAWN_FAILED;
}

/* Clones init with every signal blocked, so no service handler runs in the child
 * before init has reset the dispositions. Sets t->pid/pidfd and *in_cgroup. */
static int clone_init(const child_plan *c, spawn_tree *t, bool *in_cgroup, char *err, size_t errlen)
{
    const spawn_hooks *h = c->p->hooks;
    sigset_t all, old;
    sigfillset(&all);
    int merr = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (merr != 0)
        return fail(err, errlen, "pthread_sigmask", merr);
    long pid = -1;
    if (h->clone_into_cgroup && h->cgroup_fd >= 0) {
        pid = do_clone(CLONE_NEWPID | h->clone_flags, &t->pidfd, h->cgroup_fd);
        if (pid == 0)
            init_main(c);
        *in_cgroup = pid > 0;
    }
    if (pid < 0) /* not asked for, or refused (kernel < 5.7, seccomp, ...): attach later */
        pid = do_clone(CLONE_NEWPID | h->clone_flags, &t->pidfd, -1);
    if (pid == 0)
        init_main(c);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        t->pidfd = -1;
        return fail(err, errlen, "clone3 (new PID namespace)", clone_errno);
    }
    t->pid = (pid_t)pid;
    return SPAWN_OK;
}

/* init says "r" once child_setup built its root; EOF: it failed (its record says why). */
static int wait_rooted(int sync_w, char *err, size_t errlen)
{
    struct pollfd p = {.fd = sync_w, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, SPAWN_ROOTED_TIMEOUT_MS)) < 0 && errno == EINTR) {
    }
    if (r == 0) {
        snprintf(err, errlen, "the sandbox's root was not ready within %d ms", SPAWN_ROOTED_TIMEOUT_MS);
        return -1;
    }
    char c = 0;
    ssize_t n;
    do {
        n = r > 0 ? recv(sync_w, &c, 1, 0) : -1;
    } while (n < 0 && errno == EINTR);
    if (n != 1 || c != 'r') {
        snprintf(err, errlen, "the sandbox's init ended while building its root");
        return -1;
    }
    return 0;
}

/* init waits on the sync socket: "g" after parent_setup, then (two phases) "a" once
 * parent_attach succeeded. Closing it instead makes init exit. */
static int release_init(const child_plan *c, spawn_tree *t, bool in_cgroup, int sync_w, char *err, size_t errlen)
{
    const spawn_hooks *h = c->p->hooks;
    /* Before init is released: everything of the job descends from it and inherits it. */
    if (sandbox_oom_raise(t->pid, err, errlen) != 0)
        return SPAWN_FAILED;
    if (h->parent_setup && h->parent_setup(h->ctx, t->pid, err, errlen) != 0)
        return SPAWN_FAILED;
    /* A socket, not a pipe: if init is already gone, send(MSG_NOSIGNAL) fails with
     * EPIPE instead of raising SIGPIPE in the service. */
    if (send(sync_w, "g", 1, MSG_NOSIGNAL) != 1)
        return fail(err, errlen, "send go to init", errno);
    if (!c->two_phase)
        return SPAWN_OK;
    /* init assembles its root meanwhile. */
    if (h->parent_attach && h->parent_attach(h->ctx, t->pid, in_cgroup, err, errlen) != 0)
        return SPAWN_FAILED_LATE;
    if (c->say_rooted) {
        if (wait_rooted(sync_w, err, errlen) != 0)
            return SPAWN_FAILED_LATE;
        if (h->parent_root_ready(h->ctx, t->pid, t->pidfd, err, errlen) != 0)
            return SPAWN_FAILED_LATE;
    }
    if (send(sync_w, "a", 1, MSG_NOSIGNAL) != 1) {
        /* EPIPE: init is gone already (its setup failed); its record says why. */
        fail(err, errlen, "send attached to init", errno);
        return SPAWN_FAILED_LATE;
    }
    return SPAWN_OK;
}

int spawn_start(const spawn_plan *p, spawn_tree *t, char *err, size_t errlen)
{
    t->pid = -1;
    t->pidfd = t->status_fd = -1;
    child_plan c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.say_rooted = p->hooks->parent_root_ready != NULL;
    c.two_phase = p->hooks->parent_attach || p->hooks->child_attached || c.say_rooted;
    memcpy(c.fds, p->runner_fds, sizeof p->runner_fds);
    int status_w = -1, sync[2] = {-1, -1}, st[2];
    if (pipe2(st, O_CLOEXEC) != 0)
        return fail(err, errlen, "pipe2 status", errno);
    t->status_fd = st[0];
    status_w = st[1];
    int rc = SPAWN_OK;
    if (fcntl(t->status_fd, F_SETFL, O_NONBLOCK) != 0)
        rc = fail(err, errlen, "fcntl O_NONBLOCK", errno);
    else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0)
        rc = fail(err, errlen, "socketpair sync", errno);
    if (rc == SPAWN_OK) {
        c.fds[FD_STATUS] = status_w;
        c.fds[FD_SYNC] = sync[0];
        bool in_cgroup = false;
        rc = clone_init(&c, t, &in_cgroup, err, errlen);
        close_fd(&status_w);
        close_fd(&sync[0]);
        if (rc == SPAWN_OK)
            rc = release_init(&c, t, in_cgroup, sync[1], err, errlen);
    }
    close_fd(&status_w);
    close_fd(&sync[0]);
    close_fd(&sync[1]); /* after a failure: init reads EOF and exits */
    if (rc != SPAWN_OK && t->pidfd >= 0 && syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL, 0) != 0 &&
        errno != ESRCH)
        fprintf(stderr, "executord: sandbox: pidfd_send_signal SIGKILL: %s\n", strerror(errno));
    return rc;
}

pid_t spawn_reap(const spawn_tree *t, int *status, struct rusage *ru)
{
    memset(ru, 0, sizeof *ru);
    *status = 0;
    pid_t w;
    do {
        w = wait4(t->pid, status, __WALL, ru);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        fprintf(stderr, "executord: sandbox: wait4 %d: %s\n", (int)t->pid, strerror(errno));
    return w;
}

bool spawn_read_records(const spawn_tree *t, int *status, struct rusage *ru, char *err, size_t errlen)
{
    bool have_exit = false;
    if (errlen)
        err[0] = '\0';
    proc_record rec;
    for (;;) {
        ssize_t n = read(t->status_fd, &rec, sizeof rec);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof rec)
            break;
        if (rec.kind == REC_SETUP_ERROR && errlen && !err[0]) {
            rec.step[sizeof rec.step - 1] = '\0';
            snprintf(err, errlen, "%s: %s", rec.step, strerror(rec.err));
        } else if (rec.kind == REC_EXIT) {
            *status = rec.status;
            *ru = rec.ru;
            have_exit = true;
        }
    }
    return have_exit;
}

void spawn_close(spawn_tree *t)
{
    close_fd(&t->status_fd);
    close_fd(&t->pidfd);
}
