/* Per-process resource limits of a job's runner (setrlimit), computed in the service
 * from the job's limits and applied in the child before exec. */
#ifndef EXECUTORD_SANDBOX_RLIMITS_H
#define EXECUTORD_SANDBOX_RLIMITS_H

#include <sys/resource.h>

#include "sandbox/sandbox.h"

enum { RLIMITS_MAX = 8 };

typedef struct rlimit_item {
    int resource;            /* RLIMIT_* */
    const char *step;        /* "setrlimit RLIMIT_CPU", for the child's error report */
    struct rlimit lim;
} rlimit_item;

typedef struct rlimit_set {
    int count;
    rlimit_item items[RLIMITS_MAX];
} rlimit_set;

/* RLIMIT_CPU soft=cpu_seconds (SIGXCPU), hard=cpu_seconds+1 (SIGKILL if SIGXCPU is
 * handled); RLIMIT_AS=memory_mb; RLIMIT_FSIZE=max_file_size_mb; RLIMIT_NOFILE;
 * RLIMIT_NPROC=max_processes; RLIMIT_CORE=0. A 0 limit leaves that resource alone. */
void rlimits_from_limits(const sandbox_limits *l, rlimit_set *out);

/* Applies the set to the calling process. Async-signal-safe. Returns 0, or -1 with errno
 * set and *step naming the limit that failed. */
int rlimits_apply(const rlimit_set *s, const char **step);

#endif
