/* One job in a warm sandbox of the pool: the job's limits into its cgroup, the spec
 * (script, inputs, limits, environment, rlimits) to the waiting runner, and the one
 * supervisor (supervise.h) over the sandbox's init and cgroup, as for cold ones. */
#ifndef EXECUTORD_SANDBOX_POOL_JOB_H
#define EXECUTORD_SANDBOX_POOL_JOB_H

#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"

typedef struct pool_warm pool_warm;

typedef struct pool_job {
    const sandbox_spec *spec;
    const sandbox_io *io;
    cgroup_job *cg;         /* NULL without cgroups */
    int out_r, err_r;       /* job's stdout/stderr (read ends); closed here */
    int spec_fd;            /* runner's fd 3 (our end); closed here */
    int result_r;           /* runner's fd 4 (read end); closed here */
    int status_fd;          /* the sandbox init's records ("X status utime stime maxrss") */
    int pidfd;              /* the sandbox init (pid 1 of the job's PID namespace) */
    int stop_fd;            /* readable: executord shuts down, kill now */
    bool *lost;             /* set when the sandbox vanished before the job could have
                             * shown anything (no output, no result, no exit, not killed
                             * by us, no OOM): the caller may run it elsewhere */
} pool_job;

/* Runs the job to completion; *out was initialised by the caller. */
void pool_job_run(const pool_job *j, sandbox_outcome *out);

#endif
