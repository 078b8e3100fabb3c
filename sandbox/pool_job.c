/* One job in a warm sandbox (see pool_job.h): its limits into its cgroup, the spec (with
 * the rlimits a cold runner gets before exec, since this runner exists already) to the
 * waiting runner, and the one supervisor (supervise.h) over the sandbox's init, which
 * reports the runner's exit as a text record on its status socket. */
#include "sandbox/pool_job.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sandbox/pkgmount.h"
#include "sandbox/pump.h"
#include "sandbox/runner_program.h"
#include "sandbox/supervise.h"

/* What the sandbox's init reported: "X status utime_us stime_us maxrss_kb". */
typedef struct warm_exit {
    int fd;
    bool known;
    int status;
    int64_t utime_us, stime_us, maxrss;
} warm_exit;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* sv_tree.read_status: reads init's records; true once the exit is known. */
static bool read_status(void *ctx)
{
    warm_exit *e = ctx;
    char buf[256];
    ssize_t n;
    while ((n = recv(e->fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        long long st, ut, stt, rss;
        if (buf[0] == 'X' && sscanf(buf + 1, "%lld %lld %lld %lld", &st, &ut, &stt, &rss) == 4 && st >= 0) {
            e->known = true;
            e->status = (int)st;
            e->utime_us = ut;
            e->stime_us = stt;
            e->maxrss = rss;
        }
    }
    return e->known;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

static void setup_error(sandbox_outcome *out, const char *call, const char *detail)
{
    out->verdict = SANDBOX_SETUP_ERROR;
    sandbox_outcome_set_error(out, "SandboxError", "%s%s", call, detail);
}

void pool_job_run(const pool_job *j, sandbox_outcome *out)
{
    const sandbox_spec *spec = j->spec;
    sandbox_pump io;
    sandbox_pump_init(&io, j->io, spec->limits.max_output_bytes, NULL, NULL);
    io.streams[0].fd = j->out_r;
    io.streams[1].fd = j->err_r;
    io.spec_fd = j->spec_fd;
    io.result_fd = j->result_r;
    warm_exit ex = {.fd = j->status_fd};
    sv_tree tree = {
        .pidfd = j->pidfd,
        .kill_request = 0, /* the sandbox's init is Python: SIGKILL, and the cgroup */
        .cg = j->cg,
        .io = &io,
        .cancel_fd = spec->cancel_fd,
        .shutdown_fd = j->stop_fd,
        .timeout_seconds = spec->limits.timeout_seconds,
        .status_fd = j->status_fd,
        .read_status = read_status,
        .ctx = &ex,
    };
    int64_t t0 = now_ns();
    char err[1024];

    if (j->cg && sandbox_cgroup_job_set_limits(j->cg, &spec->limits, err, sizeof err) != 0) {
        setup_error(out, err, "");
        goto done;
    }
    /* The warm runner applies these itself: its process exists already. */
    rlimit_set rl;
    runner_sandbox_rlimits(&spec->limits, sandbox_cgroup_job_limits_memory(j->cg), &rl);
    io.spec = runner_build_spec(spec, "/work", pkgmount_runner_path(&spec->packages, true), &rl, &io.spec_len);
    if (!io.spec) {
        setup_error(out, "encode spec: ", strerror(errno));
        goto done;
    }
    if (set_nonblock(io.streams[0].fd) || set_nonblock(io.streams[1].fd) || set_nonblock(io.result_fd)) {
        setup_error(out, "fcntl O_NONBLOCK: ", strerror(errno));
        goto done;
    }
    sv_report rep;
    sv_run(&tree, &rep);
    out->usage.wall_ms = (now_ns() - t0) / 1000000;
    out->usage.cpu_user_ms = ex.utime_us / 1000;
    out->usage.cpu_system_ms = ex.stime_us / 1000;
    out->usage.max_rss_kb = ex.maxrss;
    sv_decide(&tree, &rep, ex.known, ex.status, &spec->limits, true, out);
    if (j->lost)
        *j->lost = !ex.known && rep.killed == SANDBOX_KILL_NONE && io.result_len == 0 && io.streams[0].bytes == 0 &&
                   io.streams[1].bytes == 0 && out->usage.oom_kills <= 0;

done:
    if (out->verdict == SANDBOX_SETUP_ERROR)
        sv_kill_now(&tree);
    sandbox_pump_report(&io, out);
    if (out->usage.wall_ms == 0)
        out->usage.wall_ms = (now_ns() - t0) / 1000000;
    sandbox_pump_free(&io);
}
