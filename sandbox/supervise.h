/* The one supervisor of a job's process tree, for every backend (cold trees from
 * process.c, warm sandboxes from pool_job.c): it polls, enforces the timeout, cancel,
 * service shutdown and output caps, kills the whole tree (its init, and its cgroup where
 * there is one), and turns what it saw into the job's outcome.
 *
 * How a job is killed: the first reason (timeout, cancel, shutdown, output or result cap)
 * is recorded once. A tree with a cgroup, or without a kill_request signal, is killed at
 * once (SIGKILL to init, which takes its PID namespace down, plus the cgroup's kill). A
 * tree without a cgroup is asked first (kill_request: its init kills and reaps every
 * process, so their CPU time stays accounted); after SV_KILL_GRACE_MS the supervisor
 * SIGKILLs init. If init is still not gone SV_KILL_GRACE_MS after that, or poll() itself
 * fails, the supervisor hard-kills and stops supervising (fail closed). */
#ifndef EXECUTORD_SANDBOX_SUPERVISE_H
#define EXECUTORD_SANDBOX_SUPERVISE_H

#include <stdbool.h>

#include "sandbox/cgroup.h"
#include "sandbox/pump.h"
#include "sandbox/result.h"
#include "sandbox/sandbox.h"

#define SV_KILL_GRACE_MS 2000

/* What is supervised, and how to stop it. */
typedef struct sv_tree {
    int pidfd;               /* the tree's init (pid 1 of its PID namespace) */
    int kill_request;        /* signal asking init to kill and reap the tree; 0 = none */
    cgroup_job *cg;          /* the job's cgroup: kill and usage; NULL without */
    sandbox_pump *io;        /* stdout/stderr, spec and result; sv_run takes its overflow */
    int cancel_fd;           /* readable: the client cancelled the job; -1 = none */
    int shutdown_fd;         /* readable: the service shuts down; -1 = none */
    double timeout_seconds;  /* wall limit; 0 (or absurd values) = none */
    /* Optional: init's records while it runs (a warm sandbox reports the runner's exit
     * before its namespaces are torn down). read_status reads what is there and returns
     * true once the exit is known; the job is then over as soon as the result pipe is
     * at EOF, without waiting for init's own exit. status_fd -1: not watched. */
    int status_fd;
    bool (*read_status)(void *ctx);
    void *ctx;
} sv_tree;

/* What the supervisor saw. */
typedef struct sv_report {
    sandbox_kill killed;     /* why the service ended the job, SANDBOX_KILL_NONE if not */
    int killed_stream;       /* the stream past the cap (SANDBOX_KILL_OUTPUT) */
    bool hard_killed;        /* init got SIGKILL */
    bool exit_known;         /* read_status reported the runner's exit */
} sv_report;

/* Supervises the tree until init is gone (or, with status_fd, the runner's exit is
 * known and its result read), then drains what is left in the pipes. */
void sv_run(const sv_tree *t, sv_report *rep);

/* Kills the tree now: SIGKILL to init, and the cgroup's kill. For set-up failures. */
void sv_kill_now(const sv_tree *t);

/* Adds the cgroup's counters to *u (nothing without one); returns whether the cgroup's
 * process limit refused a fork. */
bool sv_collect_usage(const sv_tree *t, sandbox_usage *u);

/* The job's outcome from the report: exit code and signal (when exit_known; wait status
 * status), then the kill reason, or else the runner's result, or else how it ended
 * without one; the cgroup's usage is added. name_limits: the job's limits are the
 * sandbox's own (not direct's best effort), so a failure that ran into one (the OOM
 * killer, MemoryError, a refused fork) says which. out->usage's CPU times must be set. */
void sv_decide(const sv_tree *t, const sv_report *rep, bool exit_known, int status, const sandbox_limits *lim,
               bool name_limits, sandbox_outcome *out);

/* "SIGKILL", or "signal 42" for unnamed ones; a thread-local static string. */
const char *sv_signal_name(int sig);

#endif
