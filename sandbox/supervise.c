/* The one supervision loop (see supervise.h): poll over init's pidfd, the I/O pumps, the
 * cancel and shutdown fds and the timers; the kill of the whole tree; and the mapping of
 * what was seen to an outcome. Backends differ only in the sv_tree they hand in. */
#include "sandbox/supervise.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILL_GRACE_NS ((int64_t)SV_KILL_GRACE_MS * 1000000LL)

typedef struct sv_state {
    const sv_tree *t;
    sv_report *rep;
    int64_t deadline;     /* the job's wall limit */
    int64_t give_up_at;   /* after a kill: next step (SIGKILL, then stop waiting) */
    bool done;
} sv_state;

const char *sv_signal_name(int sig)
{
    static __thread char buf[32];
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, sizeof buf, "SIG%s", abbrev);
    else
        snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void signal_init(const sv_tree *t, int sig)
{
    if (t->pidfd >= 0 && syscall(SYS_pidfd_send_signal, t->pidfd, sig, NULL, 0) != 0 && errno != ESRCH)
        fprintf(stderr, "executord: sandbox: pidfd_send_signal %s: %s\n", sv_signal_name(sig), strerror(errno));
}

void sv_kill_now(const sv_tree *t)
{
    signal_init(t, SIGKILL); /* init's death takes down the whole PID namespace */
    if (t->cg)
        sandbox_cgroup_job_kill(t->cg); /* and whatever escaped it into the cgroup */
}

static void hard_kill(sv_state *s)
{
    s->rep->hard_killed = true;
    s->give_up_at = now_ns() + KILL_GRACE_NS;
    sv_kill_now(s->t);
}

/* Ends the job for reason why (the first reason is the one reported). */
static void stop_tree(sv_state *s, sandbox_kill why)
{
    if (s->rep->killed != SANDBOX_KILL_NONE)
        return;
    s->rep->killed = why;
    /* A cgroup kill reaches init too: the polite request would only delay it. */
    if (s->t->cg || s->t->kill_request == 0) {
        hard_kill(s);
        return;
    }
    s->give_up_at = now_ns() + KILL_GRACE_NS;
    signal_init(s->t, s->t->kill_request);
}

/* The pump passed a cap: the job dies, with the reason recorded once. */
static void on_overflow(void *ctx, pump_overflow what, int stream_id)
{
    sv_state *s = ctx;
    if (s->rep->killed != SANDBOX_KILL_NONE)
        return;
    if (what == PUMP_OUTPUT_OVER)
        s->rep->killed_stream = stream_id;
    stop_tree(s, what == PUMP_OUTPUT_OVER ? SANDBOX_KILL_OUTPUT : SANDBOX_KILL_RESULT);
}

/* The timers: the wall limit, then the kill's escalation. Returns poll's timeout. */
static int fire_timers(sv_state *s)
{
    for (;;) {
        int64_t wake = s->rep->killed == SANDBOX_KILL_NONE ? s->deadline : s->give_up_at;
        if (wake == INT64_MAX)
            return -1;
        int64_t left = wake - now_ns();
        if (left > 0) {
            int64_t ms = (left + 999999) / 1000000;
            return ms > 60000 ? 60000 : (int)ms;
        }
        if (s->rep->killed == SANDBOX_KILL_NONE) {
            stop_tree(s, SANDBOX_KILL_TIMEOUT);
        } else if (!s->rep->hard_killed) {
            hard_kill(s); /* init did not finish the requested kill in time */
        } else {
            fprintf(stderr, "executord: sandbox: the job's init did not die after SIGKILL\n");
            s->done = true;
            return 0;
        }
    }
}

/* poll() itself failed: nothing can be supervised any more, so nothing may go on
 * running. Kill hard and wait (bounded) for init to go. */
static void fail_closed(sv_state *s)
{
    fprintf(stderr, "executord: sandbox: poll: %s\n", strerror(errno));
    if (s->rep->killed == SANDBOX_KILL_NONE)
        s->rep->killed = SANDBOX_KILL_CANCEL;
    hard_kill(s);
    struct pollfd p1 = {.fd = s->t->pidfd, .events = POLLIN};
    int64_t left;
    while ((left = s->give_up_at - now_ns()) > 0 && poll(&p1, 1, (int)(left / 1000000) + 1) < 0 && errno == EINTR) {
    }
    s->done = true;
}

static bool readable(const struct pollfd *pf, int idx)
{
    return idx >= 0 && pf[idx].revents != 0;
}

void sv_run(const sv_tree *t, sv_report *rep)
{
    memset(rep, 0, sizeof *rep);
    sv_state s = {.t = t, .rep = rep, .deadline = INT64_MAX, .give_up_at = INT64_MAX};
    /* 0 or absurd values (beyond ~30 years, which would overflow) mean no wall limit. */
    if (t->timeout_seconds > 0 && t->timeout_seconds < 1e9)
        s.deadline = now_ns() + (int64_t)(t->timeout_seconds * 1e9);
    t->io->overflow = on_overflow;
    t->io->ctx = &s;

    while (!s.done) {
        struct pollfd pf[8];
        int n = 0, i_pid, i_status = -1, i_cancel = -1, i_shut = -1;
        pf[i_pid = n++] = (struct pollfd){.fd = t->pidfd, .events = POLLIN};
        if (t->status_fd >= 0 && t->read_status)
            pf[i_status = n++] = (struct pollfd){.fd = t->status_fd, .events = POLLIN};
        n = sandbox_pump_poll_fds(t->io, pf, n);
        if (rep->killed == SANDBOX_KILL_NONE && t->cancel_fd >= 0)
            pf[i_cancel = n++] = (struct pollfd){.fd = t->cancel_fd, .events = POLLIN};
        if (rep->killed == SANDBOX_KILL_NONE && t->shutdown_fd >= 0)
            pf[i_shut = n++] = (struct pollfd){.fd = t->shutdown_fd, .events = POLLIN};

        int timeout_ms = fire_timers(&s);
        if (s.done)
            break;
        if (poll(pf, (nfds_t)n, timeout_ms) < 0) {
            if (errno == EINTR)
                continue;
            fail_closed(&s);
            break;
        }
        sandbox_pump_on_poll(t->io, pf);
        if (readable(pf, i_status) && t->read_status(t->ctx))
            rep->exit_known = true;
        if (readable(pf, i_cancel))
            stop_tree(&s, SANDBOX_KILL_CANCEL);
        if (readable(pf, i_shut))
            stop_tree(&s, SANDBOX_KILL_SHUTDOWN);
        /* The runner has exited and everything it wrote is in the pipes: the answer need
         * not wait for the namespaces' teardown (an RCU grace period or more). */
        if (readable(pf, i_pid) || (rep->exit_known && t->io->result_fd < 0))
            s.done = true;
    }
    /* init is gone (or the runner is and its pipes are closed): what is still in the
     * pipes is all there will be. */
    sandbox_pump_drain(t->io);
    if (t->status_fd >= 0 && t->read_status && t->read_status(t->ctx))
        rep->exit_known = true;
    t->io->overflow = NULL;
    t->io->ctx = NULL;
}

bool sv_collect_usage(const sv_tree *t, sandbox_usage *u)
{
    bool pids_hit = false;
    if (t->cg)
        sandbox_cgroup_job_usage(t->cg, u, &pids_hit);
    return pids_hit;
}

void sv_decide(const sv_tree *t, const sv_report *rep, bool exit_known, int status, const sandbox_limits *lim,
               bool name_limits, sandbox_outcome *out)
{
    bool pids_hit = sv_collect_usage(t, &out->usage);
    if (exit_known) {
        out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    if (sandbox_outcome_killed(out, rep->killed, lim, rep->killed_stream, t->io->cap))
        return;
    bool have_result = sandbox_apply_result(t->io->result, t->io->result_len, out);
    if (!have_result)
        sandbox_outcome_no_result(out, lim, exit_known, status);
    if (!name_limits)
        return;
    /* The cgroup's OOM count covers the whole sandbox: it names the failure when the job
     * was killed or died without a result, or its own error already says memory. */
    bool oom_killed = out->usage.oom_kills > 0 &&
                      (!have_result || out->signal == SIGKILL || (out->error_type && strstr(out->error_type, "Memory")));
    sandbox_outcome_name_limit(out, lim, oom_killed, pids_hit);
}
