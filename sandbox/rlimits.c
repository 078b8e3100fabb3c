/* Turns a job's limits into setrlimit calls. Computed in the service (may use anything)
 * and applied in the forked child (async-signal-safe: only setrlimit). */
#include "sandbox/rlimits.h"

#include <stdint.h>

static void add(rlimit_set *s, int resource, const char *step, rlim_t soft, rlim_t hard)
{
    if (s->count >= RLIMITS_MAX)
        return;
    rlimit_item *it = &s->items[s->count++];
    it->resource = resource;
    it->step = step;
    it->lim.rlim_cur = soft;
    it->lim.rlim_max = hard;
}

/* MiB to bytes, saturating instead of wrapping for absurd values. */
static rlim_t mib(uint64_t mb)
{
    if (mb > (uint64_t)RLIM_INFINITY >> 20)
        return RLIM_INFINITY;
    return (rlim_t)(mb << 20);
}

void rlimits_from_limits(const sandbox_limits *l, rlimit_set *out)
{
    out->count = 0;
    add(out, RLIMIT_CORE, "setrlimit RLIMIT_CORE", 0, 0);
    if (l->cpu_seconds > 0)
        /* The hard limit one second later is the backstop when the script catches
         * or ignores SIGXCPU: the kernel then sends SIGKILL. */
        add(out, RLIMIT_CPU, "setrlimit RLIMIT_CPU", (rlim_t)l->cpu_seconds,
            (rlim_t)l->cpu_seconds + 1);
    if (l->memory_mb > 0)
        add(out, RLIMIT_AS, "setrlimit RLIMIT_AS", mib(l->memory_mb), mib(l->memory_mb));
    if (l->max_file_size_mb > 0)
        add(out, RLIMIT_FSIZE, "setrlimit RLIMIT_FSIZE", mib(l->max_file_size_mb),
            mib(l->max_file_size_mb));
    if (l->max_open_files > 0)
        add(out, RLIMIT_NOFILE, "setrlimit RLIMIT_NOFILE", (rlim_t)l->max_open_files,
            (rlim_t)l->max_open_files);
    if (l->max_processes > 0)
        add(out, RLIMIT_NPROC, "setrlimit RLIMIT_NPROC", (rlim_t)l->max_processes,
            (rlim_t)l->max_processes);
}

int rlimits_apply(const rlimit_set *s, const char **step)
{
    for (int i = 0; i < s->count; i++) {
        if (setrlimit(s->items[i].resource, &s->items[i].lim) != 0) {
            *step = s->items[i].step;
            return -1;
        }
    }
    return 0;
}
