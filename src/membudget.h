/* The memory budget: the most the memory limits of all running jobs may add up to. Found
 * at start-up from what executord may use (host RAM, or its cgroup's limit when lower)
 * unless --memory-budget-mb sets it, and fitted to the per-job maximum and default. */
#ifndef EXECUTORD_MEMBUDGET_H
#define EXECUTORD_MEMBUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "src/config.h"

/* The automatic budget's share of the memory found. The rest is for what the budget does
 * not count: executord itself, the pool's zygotes and warm sandboxes before they get a
 * job, the kernel and the page cache the database and the jobs' interpreters need. */
#define MEMBUDGET_PERCENT 80

/* Where the memory figures are read; NULL fields mean the real files. Tests point them
 * at fake ones. */
typedef struct membudget_files {
    const char *meminfo;     /* "/proc/meminfo" */
    const char *self_cgroup; /* "/proc/self/cgroup" */
    const char *cgroup_root; /* "/sys/fs/cgroup" */
} membudget_files;

/* What executord may use. */
typedef struct membudget_memory {
    uint64_t host_bytes;   /* MemTotal of meminfo, else sysinfo's total RAM */
    char host_source[64];  /* "MemTotal in /proc/meminfo" or "sysinfo" */
    uint64_t cgroup_bytes; /* the lowest memory limit from executord's cgroup up to the
                            * hierarchy's root (v2 memory.max, v1 memory.limit_in_bytes);
                            * 0 = no limit found */
    char cgroup_file[4352]; /* the file holding it */
} membudget_memory;

/* Fills *m. Never fails for want of a cgroup (then there is no cgroup limit); -1 with the
 * reason only when not even the host's memory can be found. */
int membudget_probe(const membudget_files *f, membudget_memory *m, char *why, size_t whylen);

/* MemTotal of a /proc/meminfo text, in bytes; -1 when absent or malformed. */
int membudget_parse_meminfo(const char *text, uint64_t *bytes);
/* A cgroup memory limit file's content: v2 "max" and v1's "no limit" (a number close to
 * 2^63) give UINT64_MAX. -1 when malformed. */
int membudget_parse_limit(const char *text, uint64_t *bytes);

/* Decides c->memory_budget_mb (when 0, MEMBUDGET_PERCENT of the lower of host and cgroup
 * memory) and fits the jobs' memory limits to it: a maximum or default the operator left
 * alone is lowered to the budget; one the operator set above it refuses the start (no job
 * that large could ever run). Returns 0 with one line for the start-up log in `how` and a
 * warning in `warn` ("" when none), or -1 with the reason in err. */
int membudget_apply(config *c, const membudget_memory *m, char *how, size_t howlen, char *warn,
                    size_t warnlen, char *err, size_t errlen);

#endif
