/* Supervision of one job in a warm sandbox (see pool_job.h). Its I/O goes through
 * pump.c and its spec is process.c's, as a cold job's are; what differs is that the tree
 * already exists, so the spec also carries the rlimits a cold runner gets before exec,
 * the exit arrives as a record from the sandbox's init, and the kill goes to a pidfd of
 * that init plus the job's cgroup. */
#include "sandbox/pool_job.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/process.h"
#include "sandbox/pump.h"
#include "sandbox/result.h"
#include "sandbox/rlimits.h"

#define KILL_GRACE_NS (2 * 1000000000LL)

typedef struct run {
    const pool_job *j;
    sandbox_outcome *out;
    sandbox_pump io;      /* output, spec and result */
    sandbox_kill killed;
    int killed_stream;
    bool exited, have_exit;
    int status;
    int64_t utime_us, stime_us, maxrss;
} run;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void kill_tree(run *r, sandbox_kill why)
{
    if (r->killed == SANDBOX_KILL_NONE)
        r->killed = why;
    if (syscall(SYS_pidfd_send_signal, r->j->pidfd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
        fprintf(stderr, "executord: pool: pidfd_send_signal: %s\n", strerror(errno));
    if (r->j->cg)
        sandbox_cgroup_job_kill(r->j->cg);
}

/* The pump passed a cap: the job dies, with the reason recorded once. */
static void on_overflow(void *ctx, pump_overflow what, int stream_id)
{
    run *r = ctx;
    if (r->killed != SANDBOX_KILL_NONE)
        return;
    if (what == PUMP_OUTPUT_OVER)
        r->killed_stream = stream_id;
    kill_tree(r, what == PUMP_OUTPUT_OVER ? SANDBOX_KILL_OUTPUT : SANDBOX_KILL_RESULT);
}

static void read_status(run *r)
{
    char buf[256];
    ssize_t n;
    while ((n = recv(r->j->status_fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        long long st, ut, stt, rss;
        if (buf[0] == 'X' && sscanf(buf + 1, "%lld %lld %lld %lld", &st, &ut, &stt, &rss) == 4 && st >= 0) {
            r->have_exit = true;
            r->status = (int)st;
            r->utime_us = ut;
            r->stime_us = stt;
            r->maxrss = rss;
        }
    }
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

static void supervise(run *r)
{
    const sandbox_spec *spec = r->j->spec;
    double limit = spec->limits.timeout_seconds;
    int64_t deadline = limit > 0 && limit < 1e9 ? now_ns() + (int64_t)(limit * 1e9) : INT64_MAX;
    int64_t hard_deadline = INT64_MAX;
    while (!r->exited) {
        struct pollfd pf[8];
        int n = 0, i_pid, i_cancel = -1, i_stop = -1, i_st;
        pf[i_pid = n++] = (struct pollfd){.fd = r->j->pidfd, .events = POLLIN};
        pf[i_st = n++] = (struct pollfd){.fd = r->j->status_fd, .events = POLLIN};
        n = sandbox_pump_poll_fds(&r->io, pf, n);
        if (r->killed == SANDBOX_KILL_NONE && spec->cancel_fd >= 0)
            pf[i_cancel = n++] = (struct pollfd){.fd = spec->cancel_fd, .events = POLLIN};
        if (r->killed == SANDBOX_KILL_NONE && r->j->stop_fd >= 0)
            pf[i_stop = n++] = (struct pollfd){.fd = r->j->stop_fd, .events = POLLIN};
        int64_t wake = r->killed == SANDBOX_KILL_NONE ? deadline : hard_deadline;
        int timeout_ms = -1;
        if (wake != INT64_MAX) {
            int64_t left = wake - now_ns();
            if (left <= 0) {
                if (r->killed == SANDBOX_KILL_NONE) {
                    kill_tree(r, SANDBOX_KILL_TIMEOUT);
                    hard_deadline = now_ns() + KILL_GRACE_NS;
                } else {
                    /* init is not gone after SIGKILL: nothing more to wait for. */
                    fprintf(stderr, "executord: pool: sandbox did not die after SIGKILL\n");
                    r->exited = true;
                }
                continue;
            }
            int64_t ms = (left + 999999) / 1000000;
            timeout_ms = ms > 60000 ? 60000 : (int)ms;
        }
        int rc = poll(pf, (nfds_t)n, timeout_ms);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "executord: pool: poll: %s\n", strerror(errno));
            kill_tree(r, SANDBOX_KILL_CANCEL);
            hard_deadline = now_ns() + KILL_GRACE_NS;
            continue;
        }
        sandbox_pump_on_poll(&r->io, pf);
        if (pf[i_st].revents) {
            read_status(r);
            /* The job's process has exited and everything it wrote is in the pipes: the
             * answer need not wait for the namespaces' teardown (an RCU grace period or
             * more), which the init's own exit and the cleanup finish in the background. */
            if (r->have_exit && r->io.result_fd < 0)
                r->exited = true;
        }
        if (i_cancel >= 0 && pf[i_cancel].revents && r->killed == SANDBOX_KILL_NONE) {
            kill_tree(r, SANDBOX_KILL_CANCEL);
            hard_deadline = now_ns() + KILL_GRACE_NS;
        }
        if (i_stop >= 0 && pf[i_stop].revents && r->killed == SANDBOX_KILL_NONE) {
            kill_tree(r, SANDBOX_KILL_SHUTDOWN);
            hard_deadline = now_ns() + KILL_GRACE_NS;
        }
        if (pf[i_pid].revents)
            r->exited = true;
    }
    /* The namespace is gone: what is in the pipes is all there will be. */
    sandbox_pump_drain(&r->io);
    read_status(r);
}

static bool apply_result(run *r)
{
    return sandbox_apply_result(r->io.result, r->io.result_len, r->out);
}

static void decide(run *r, bool pids_hit)
{
    sandbox_outcome *out = r->out;
    const sandbox_limits *lim = &r->j->spec->limits;
    int st = r->status;
    if (r->have_exit) {
        out->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        out->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    }
    if (sandbox_outcome_killed(out, r->killed, lim, r->killed_stream, r->io.cap))
        return;
    bool have_result = apply_result(r);
    if (!have_result)
        sandbox_outcome_no_result(out, lim, r->have_exit, st);
    /* The cgroup's OOM count covers the whole sandbox: it names the failure when the job
     * was killed or died without a result, or its own error already says memory. */
    bool oom_killed = out->usage.oom_kills > 0 &&
                      (!have_result || out->signal == SIGKILL ||
                       (out->error_type && strstr(out->error_type, "Memory")));
    sandbox_outcome_name_limit(out, lim, oom_killed, pids_hit);
}

void pool_job_run(const pool_job *j, sandbox_outcome *out)
{
    const sandbox_spec *spec = j->spec;
    run r;
    memset(&r, 0, sizeof r);
    r.j = j;
    r.out = out;
    sandbox_pump_init(&r.io, j->io, spec->limits.max_output_bytes, on_overflow, &r);
    r.io.streams[0].fd = j->out_r;
    r.io.streams[1].fd = j->err_r;
    r.io.spec_fd = j->spec_fd;
    r.io.result_fd = j->result_r;
    int64_t t0 = now_ns();
    char err[1024];

    if (j->cg && sandbox_cgroup_job_set_limits(j->cg, &spec->limits, err, sizeof err) != 0) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "%s", err);
        goto done;
    }
    bool memory_limited = sandbox_cgroup_job_limits_memory(j->cg);
    rlimit_set rl;
    sandbox_limits rlim = spec->limits;
    if (memory_limited)
        rlim.memory_mb = 0; /* the cgroup is the limit; RLIMIT_AS only a backstop below */
    rlimits_from_limits(&rlim, &rl);
    if (rl.count < RLIMITS_MAX)
        rl.items[rl.count++] = (rlimit_item){RLIMIT_MEMLOCK, "setrlimit RLIMIT_MEMLOCK", {0, 0}};
    if (rl.count < RLIMITS_MAX)
        rl.items[rl.count++] = (rlimit_item){RLIMIT_STACK, "setrlimit RLIMIT_STACK", {8 << 20, 8 << 20}};
    if (memory_limited && rl.count < RLIMITS_MAX) {
        uint64_t mb = spec->limits.memory_mb > UINT64_MAX / 4 ? UINT64_MAX / 4 : spec->limits.memory_mb;
        uint64_t as_mb = mb * 4 < 4096 ? 4096 : mb * 4;
        rlim_t as = as_mb > (uint64_t)RLIM_INFINITY >> 20 ? RLIM_INFINITY : (rlim_t)(as_mb << 20);
        rl.items[rl.count++] = (rlimit_item){RLIMIT_AS, "setrlimit RLIMIT_AS", {as, as}};
    }
    /* The warm runner applies these rlimits itself: its process exists already. */
    r.io.spec = proc_build_spec(spec, "/work", &rl, &r.io.spec_len);
    if (!r.io.spec) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "encode spec: %s", strerror(errno));
        goto done;
    }
    if (set_nonblock(r.io.streams[0].fd) || set_nonblock(r.io.streams[1].fd) || set_nonblock(r.io.result_fd)) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "fcntl O_NONBLOCK: %s", strerror(errno));
        goto done;
    }
    supervise(&r);
    out->usage.wall_ms = (now_ns() - t0) / 1000000;
    out->usage.cpu_user_ms = r.utime_us / 1000;
    out->usage.cpu_system_ms = r.stime_us / 1000;
    out->usage.max_rss_kb = r.maxrss;
    bool pids_hit = false;
    if (j->cg)
        sandbox_cgroup_job_usage(j->cg, &out->usage, &pids_hit);
    if (j->lost)
        *j->lost = !r.have_exit && r.killed == SANDBOX_KILL_NONE && r.io.result_len == 0 && r.io.streams[0].bytes == 0 &&
                   r.io.streams[1].bytes == 0 && out->usage.oom_kills <= 0;
    decide(&r, pids_hit);

done:
    if (out->verdict == SANDBOX_SETUP_ERROR)
        kill_tree(&r, SANDBOX_KILL_CANCEL);
    sandbox_pump_report(&r.io, out);
    if (out->usage.wall_ms == 0)
        out->usage.wall_ms = (now_ns() - t0) / 1000000;
    sandbox_pump_free(&r.io);
}
