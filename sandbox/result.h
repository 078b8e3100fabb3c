/* A job's outcome from what its supervisor saw: the runner's result document (the one
 * JSON object the in-sandbox runner writes to the result pipe), why the service killed
 * it, or how it ended without a result, and which limit a failure ran into. Pure (no
 * I/O), used by the one supervisor (supervise.c); the document
 * parser is fuzzed in tests/fuzz. */
#ifndef EXECUTORD_SANDBOX_RESULT_H
#define EXECUTORD_SANDBOX_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

/* Interprets doc[0..len) into *out. Returns false when there is no document (len 0) and
 * *out is untouched; otherwise true, with verdict SANDBOX_SUCCEEDED and result_json set,
 * or SANDBOX_FAILED and error_type set (a malformed document fails the job), and
 * usage.max_rss_kb taken from the document when it reports one. */
bool sandbox_apply_result(const char *doc, size_t len, sandbox_outcome *out);

/* Why the service ended a job early (the first reason wins). */
typedef enum sandbox_kill {
    SANDBOX_KILL_NONE = 0,
    SANDBOX_KILL_TIMEOUT,
    SANDBOX_KILL_CANCEL,
    SANDBOX_KILL_SHUTDOWN,
    SANDBOX_KILL_OUTPUT,   /* a stream passed max_output_bytes */
    SANDBOX_KILL_RESULT,   /* the result document did */
} sandbox_kill;

/* The verdict and error of a job the service killed. stream: which one passed the cap
 * (SANDBOX_KILL_OUTPUT); cap: max_output_bytes as applied. Returns false for
 * SANDBOX_KILL_NONE (nothing set). */
bool sandbox_outcome_killed(sandbox_outcome *out, sandbox_kill why, const sandbox_limits *lim, int stream,
                            uint64_t cap);

/* A job that ended without a result document: failed, saying how (the CPU or file-size
 * limit, a signal, an exit code, or no exit status at all when have_exit is false).
 * status is a wait status; out->usage holds the CPU time used. */
void sandbox_outcome_no_result(sandbox_outcome *out, const sandbox_limits *lim, bool have_exit, int status);

/* A failed job that ran into a memory or process limit: names the limit in its error.
 * oom_killed: the kernel's OOM killer ended it (the caller reads that from its cgroup);
 * pids_hit: the cgroup's process limit refused a fork. Other outcomes are left as they are. */
void sandbox_outcome_name_limit(sandbox_outcome *out, const sandbox_limits *lim, bool oom_killed, bool pids_hit);

#endif
