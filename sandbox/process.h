/* Running one job in a cold process tree, for the backends that build a tree per job
 * (direct, ephemeral): the glue that prepares the runner's program and fds
 * (runner_program.h), spawns the tree through the backend's hooks (spawn.h), hands it to
 * the one supervisor (supervise.h) and reaps it. Also the service-wide shutdown switch
 * that stops every such job.
 *
 * To stop a job early (timeout, cancel, output cap, shutdown) the supervisor kills the
 * tree: through the job's cgroup when it has one, else by asking init to kill and reap
 * every process (SPAWN_KILL_REQUEST), with SIGKILL of init after 2 s as the fallback. */
#ifndef EXECUTORD_SANDBOX_PROCESS_H
#define EXECUTORD_SANDBOX_PROCESS_H

#include <stdbool.h>

#include "sandbox/cgroup.h"
#include "sandbox/runner_program.h"
#include "sandbox/sandbox.h"
#include "sandbox/spawn.h"

/* One job's run through the runner protocol. */
typedef struct proc_job {
    const sandbox_spec *spec;
    const sandbox_io *io;          /* may be NULL or have a NULL on_output */
    const char *python;            /* interpreter path, exec'd directly (no PATH search) */
    const char *cwd;               /* runner's working folder (as seen inside the tree) */
    const char *home;              /* HOME of the job's environment (inside the tree) */
    bool runner_from_source;       /* python inside is not the host's file at that path
                                    * (a rootfs): pass the runner's source, do not use
                                    * the code compiled by the host's (runner_program) */
    spawn_hooks hooks;
    cgroup_job *cg;                /* the job's cgroup (kill, usage), NULL without; the
                                    * backend creates it and attaches init in its hooks */
    bool sandboxed;                /* the sandbox's limits are the job's own: the runner
                                    * gets runner_sandbox_rlimits (not rlimits.c's alone),
                                    * and a failure that ran into one says which
                                    * (sv_decide's name_limits) */
} proc_job;

/* Runs the job to completion and fills *out (verdict, exit code/signal, result or
 * error, usage, output counters). The caller did sandbox_outcome_init(out). Setup
 * failures (here or in a hook) give SANDBOX_SETUP_ERROR / "SandboxError" with the
 * failing step and errno text. Always returns 0. Thread-safe. */
int proc_run_job(const proc_job *job, sandbox_outcome *out);

/* Service shutdown: on=true kills every running job tree now (verdict SANDBOX_CANCELLED,
 * "Job cancelled: executord is shutting down") and refuses new ones until reset with
 * on=false. */
void proc_set_shutting_down(bool on);

#endif
