/* Jobs and the kernel's OOM killer: every job process gets a raised oom_score_adj, so
 * that when the host runs out of memory the kernel kills a job before executord or
 * anything else on the host. Written by the service into a process it just cloned,
 * before that process runs anything; its descendants inherit the value. */
#ifndef EXECUTORD_SANDBOX_OOM_H
#define EXECUTORD_SANDBOX_OOM_H

#include <stddef.h>
#include <sys/types.h>

/* The maximum. Jobs are the untrusted and restartable part of the host; with every job
 * at 1000, any job is chosen before any process at a lower value whatever their sizes
 * (at 500 a large database or the service could still go first), and among jobs the
 * kernel picks the largest: the one that ran the memory out. It changes nothing until
 * the host (not a job's own cgroup) is out of memory. */
#define SANDBOX_OOM_SCORE_ADJ 1000

/* Writes SANDBOX_OOM_SCORE_ADJ to /proc/<pid>/oom_score_adj and checks it took. Raising
 * needs no capability. Returns 0, or -1 with "oom_score_adj: call path: strerror" in err. */
int sandbox_oom_raise(pid_t pid, char *err, size_t errlen);

#endif
