/* A cold job's run (see process.h): the runner's fds and program, the tree spawned
 * through the backend's hooks, the one supervisor, the reap and the outcome; and the
 * service-wide shutdown switch. */
#include "sandbox/process.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/pkgmount.h"
#include "sandbox/pump.h"
#include "sandbox/supervise.h"

/* ---- service-wide shutdown switch ---------------------------------------------- */

static pthread_once_t shutdown_once = PTHREAD_ONCE_INIT;
static int shutdown_efd = -1;
static atomic_bool shutting_down;

static void shutdown_fd_init(void)
{
    shutdown_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

void proc_set_shutting_down(bool on)
{
    pthread_once(&shutdown_once, shutdown_fd_init);
    atomic_store(&shutting_down, on);
    if (shutdown_efd < 0)
        return;
    uint64_t v = 1;
    if (on) {
        /* The counter stays non-zero, so every job's poll sees it until reset. */
        if (write(shutdown_efd, &v, sizeof v) < 0)
            fprintf(stderr, "executord: sandbox: eventfd write: %s\n", strerror(errno));
    } else if (read(shutdown_efd, &v, sizeof v) < 0 && errno != EAGAIN) {
        fprintf(stderr, "executord: sandbox: eventfd read: %s\n", strerror(errno));
    }
}

/* ---- one job ------------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void setup_error(sandbox_outcome *out, const char *call, int err)
{
    out->verdict = SANDBOX_SETUP_ERROR;
    sandbox_outcome_set_error(out, "SandboxError", "%s: %s", call, strerror(err));
}

static void setup_error_text(sandbox_outcome *out, const char *why)
{
    out->verdict = SANDBOX_SETUP_ERROR;
    sandbox_outcome_set_error(out, "SandboxError", "%s", why);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* The runner's fds 0-4 (child ends into fds, ours into the pump). Returns 0, or -1 with
 * *call naming what failed (errno set). */
static int open_runner_fds(sandbox_pump *io, int fds[SPAWN_RUNNER_FDS], const char **call)
{
    int p[2];
    if ((fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        *call = "open /dev/null";
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (pipe2(p, O_CLOEXEC) != 0) {
            *call = "pipe2 output";
            return -1;
        }
        io->streams[i].fd = p[0];
        fds[1 + i] = p[1];
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) {
        *call = "socketpair spec";
        return -1;
    }
    io->spec_fd = p[0];
    fds[3] = p[1];
    if (pipe2(p, O_CLOEXEC) != 0) {
        *call = "pipe2 result";
        return -1;
    }
    io->result_fd = p[0];
    fds[4] = p[1];
    if (set_nonblock(io->streams[0].fd) || set_nonblock(io->streams[1].fd) || set_nonblock(io->result_fd)) {
        *call = "fcntl O_NONBLOCK";
        return -1;
    }
    return 0;
}

static void fill_usage(sandbox_usage *u, const struct rusage *ru)
{
    u->cpu_user_ms = (int64_t)ru->ru_utime.tv_sec * 1000 + ru->ru_utime.tv_usec / 1000;
    u->cpu_system_ms = (int64_t)ru->ru_stime.tv_sec * 1000 + ru->ru_stime.tv_usec / 1000;
    u->max_rss_kb = ru->ru_maxrss;
}

/* After the tree was supervised (or its start failed) and reaped: the outcome. A set-up
 * failure wins: the service's own first, then init's, then a failed attach (late). */
static void finish(const proc_job *job, const spawn_tree *t, const sv_tree *tree, const sv_report *rep,
                   int spawn_rc, const char *spawn_err, sandbox_outcome *out)
{
    int status = 0, exit_status = 0;
    struct rusage ru, exit_ru;
    pid_t w = spawn_reap(t, &status, &ru);
    char init_err[256];
    memset(&exit_ru, 0, sizeof exit_ru);
    bool have_exit = spawn_read_records(t, &exit_status, &exit_ru, init_err, sizeof init_err);
    const char *why = spawn_rc == SPAWN_FAILED ? spawn_err
                      : init_err[0]                ? init_err
                      : spawn_rc == SPAWN_FAILED_LATE ? spawn_err
                                                   : NULL;
    if (why) {
        setup_error_text(out, why);
        sv_collect_usage(tree, &out->usage);
        return;
    }
    /* Prefer init's view (runner + reaped orphans); without it, init's own wait4. */
    fill_usage(&out->usage, have_exit ? &exit_ru : &ru);
    if (!have_exit && w == t->pid) {
        out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    sv_decide(tree, rep, have_exit, exit_status, &job->spec->limits, job->sandboxed, out);
}

int proc_run_job(const proc_job *job, sandbox_outcome *out)
{
    const sandbox_spec *spec = job->spec;
    if (atomic_load(&shutting_down)) {
        out->verdict = SANDBOX_CANCELLED;
        sandbox_outcome_set_error(out, "Cancelled", "Job cancelled: executord is shutting down");
        return 0;
    }
    pthread_once(&shutdown_once, shutdown_fd_init);
    int64_t t0 = now_ns();
    sandbox_pump io;
    sandbox_pump_init(&io, job->io, spec->limits.max_output_bytes, NULL, NULL);
    spawn_plan plan = {.python = job->python, .cwd = job->cwd, .hooks = &job->hooks};
    for (int i = 0; i < SPAWN_RUNNER_FDS; i++)
        plan.runner_fds[i] = -1;
    spawn_tree t = {.pid = -1, .pidfd = -1, .status_fd = -1};
    runner_exec x;
    memset(&x, 0, sizeof x);
    const char *call = NULL;

    io.spec = runner_build_spec(spec, job->home, pkgmount_runner_path(&spec->packages, job->sandboxed), NULL,
                                &io.spec_len);
    if (!io.spec) {
        setup_error(out, "encode spec", errno);
        goto done;
    }
    if (runner_exec_prepare(&x, job->python, job->home, job->runner_from_source) != 0) {
        setup_error(out, "environment", errno);
        goto done;
    }
    if (open_runner_fds(&io, plan.runner_fds, &call) != 0) {
        setup_error(out, call, errno);
        goto done;
    }
    plan.argv = x.argv;
    plan.envp = x.envp;
    if (job->sandboxed)
        runner_sandbox_rlimits(&spec->limits, sandbox_cgroup_job_limits_memory(job->cg), &plan.rl);
    else
        rlimits_from_limits(&spec->limits, &plan.rl);

    char err[512];
    int rc = spawn_start(&plan, &t, err, sizeof err);
    for (int i = 0; i < SPAWN_RUNNER_FDS; i++)
        close_fd(&plan.runner_fds[i]);
    sv_tree tree = {
        .pidfd = t.pidfd,
        /* With a cgroup the supervisor kills through it (init included) at once. */
        .kill_request = job->cg ? 0 : SPAWN_KILL_REQUEST,
        .cg = job->cg,
        .io = &io,
        .cancel_fd = spec->cancel_fd,
        .shutdown_fd = shutdown_efd,
        .timeout_seconds = spec->limits.timeout_seconds,
        .status_fd = -1,
    };
    sv_report rep;
    memset(&rep, 0, sizeof rep);
    if (rc != SPAWN_OK && t.pid < 0) {
        setup_error_text(out, err); /* nothing was spawned */
        goto done;
    }
    if (rc != SPAWN_OK)
        sv_kill_now(&tree);
    else
        sv_run(&tree, &rep);
    finish(job, &t, &tree, &rep, rc, err, out);
    out->usage.wall_ms = (now_ns() - t0) / 1000000;

done:
    sandbox_pump_report(&io, out);
    if (out->usage.wall_ms == 0)
        out->usage.wall_ms = (now_ns() - t0) / 1000000;
    for (int i = 0; i < SPAWN_RUNNER_FDS; i++)
        close_fd(&plan.runner_fds[i]);
    sandbox_pump_free(&io);
    runner_exec_free(&x);
    spawn_close(&t);
    return 0;
}
