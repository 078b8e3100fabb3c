/* Resource control of sandboxed jobs through cgroups: detection of what the host offers
 * (v2, v1, or nothing usable -- with the reason), one executord parent cgroup per
 * service instance, one cgroup per job (memory without swap, pids, CPU quota), killing
 * a job's whole tree, reading its usage, and removing leftovers of crashed instances.
 * cgroup1.c and cgroup2.c hold the version-specific halves. */
#ifndef EXECUTORD_SANDBOX_CGROUP_H
#define EXECUTORD_SANDBOX_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/cgroupfs.h"
#include "sandbox/sandbox.h"

typedef enum cgroup_mode { CGROUP_NONE = 0, CGROUP_V1, CGROUP_V2 } cgroup_mode;

typedef struct cgroup_options {
    const char *root;          /* where cgroupfs is mounted; NULL = "/sys/fs/cgroup" */
    const char *self_path;     /* our cgroup below each hierarchy's root; NULL = read
                                * /proc/self/cgroup */
    unsigned cpu_quota_percent; /* CPU bandwidth per job, 100 = one core; 0 = none */
    bool fake_fs;              /* unit tests only: root is a plain folder, so control
                                * files are created on write and unlinked on removal */
} cgroup_options;

/* Detects the hierarchy, creates this instance's parent cgroup and removes leftovers of
 * dead instances. Returns 0 when cgroups are usable; -1 with the reason in why when not
 * (the caller then falls back to rlimits and must say so). */
int sandbox_cgroup_init(const cgroup_options *o, char *why, size_t whylen);
/* Removes the parent cgroup (jobs must be gone). */
void sandbox_cgroup_shutdown(void);
cgroup_mode sandbox_cgroup_mode(void);
/* One line for the start-up log and /readyz: what is used, or why nothing is. */
const char *sandbox_cgroup_describe(void);
/* The parent cgroup of this instance (first hierarchy for v1), for tests and logs. */
const char *sandbox_cgroup_parent_path(void);

typedef struct cgroup_job cgroup_job;

/* Creates the job's cgroup with the job's limits. Returns 0 and *out, or -1 with
 * "step: strerror" in err. */
int sandbox_cgroup_job_create(const char *job_id, const sandbox_limits *lim, cgroup_job **out,
                              char *err, size_t errlen);
/* Applies a job's memory and process limits to a cgroup created without them (a pool's
 * warm sandbox, prepared before its job was known). 0, or -1 with err. */
int sandbox_cgroup_job_set_limits(cgroup_job *j, const sandbox_limits *lim, char *err, size_t errlen);
/* Moves pid (the job's init, not yet released) into the job's cgroup(s). */
int sandbox_cgroup_job_attach(cgroup_job *j, pid_t pid, char *err, size_t errlen);
/* cgroup v2 on a real cgroupfs: an fd of the job's cgroup folder for clone3's
 * CLONE_INTO_CGROUP (owned by j, closed by destroy); -1 where that does not apply (v1,
 * fake_fs) or the open failed -- the caller then attaches with sandbox_cgroup_job_attach. */
int sandbox_cgroup_job_clone_fd(cgroup_job *j);
/* Kills every process in the job's cgroup (cgroup.kill on v2, freezer on v1). */
void sandbox_cgroup_job_kill(cgroup_job *j);
/* Adds memory_peak_bytes, cgroup_cpu_ms, oom_kills (and says whether the pids limit
 * refused a fork) from the cgroup's counters. */
void sandbox_cgroup_job_usage(cgroup_job *j, sandbox_usage *u, bool *pids_limit_hit);
/* True when the cgroup enforces the memory limit (so RLIMIT_AS is not needed). */
bool sandbox_cgroup_job_limits_memory(const cgroup_job *j);
/* The job's cgroup folder (first hierarchy for v1). */
const char *sandbox_cgroup_job_path(const cgroup_job *j);
/* Kills what is left, removes the cgroup(s) and frees j. Returns 0 or -1 + err. */
int sandbox_cgroup_job_destroy(cgroup_job *j, char *err, size_t errlen);

/* ---- shared between cgroup.c, cgroup1.c and cgroup2.c (not for other callers) ---- */

typedef struct cgroup_state {
    cgroup_mode mode;
    cgroup_options opt;
    char root[4096];
    unsigned cpu_quota_percent;
    bool fake_fs;
    bool has_memsw;          /* v1: memory.memsw.* present (swap counted) */
    bool has_swap_max;       /* v2: memory.swap.max present */
    /* v1: one parent folder per controller; v2: parent[0] only. */
    char parent[5][4096];
    int nparents;
    char describe[512];
} cgroup_state;

enum { CG1_MEMORY = 0, CG1_PIDS, CG1_CPU, CG1_CPUACCT, CG1_FREEZER, CG1_COUNT };

struct cgroup_job {
    char path[5][4096];      /* v1: per controller (CG1_*); v2: path[0] */
    int npaths;
    bool limits_memory;
    int dirfd;               /* v2: open job folder for CLONE_INTO_CGROUP, -1 = none */
};

/* Removes leftovers "executord-<pid>" of dead instances below dir (killing first). */
void cg_remove_leftovers(const cgroup_state *s, const char *dir,
                         void (*kill_dir)(const cgroup_state *, const char *));

/* Version-specific halves. */
int cgroup1_detect(cgroup_state *s, const char *self_path, char *why, size_t whylen);
int cgroup1_job_create(const cgroup_state *s, const char *name, const sandbox_limits *lim,
                       cgroup_job *j, char *err, size_t errlen);
/* Memory (swap included) and process limits of lim (0 = leave as is); sets limits_memory. */
int cgroup1_job_set_limits(const cgroup_state *s, cgroup_job *j, const sandbox_limits *lim, char *err,
                           size_t errlen);
int cgroup1_job_attach(const cgroup_state *s, cgroup_job *j, pid_t pid, char *err, size_t errlen);
void cgroup1_job_kill(const cgroup_state *s, cgroup_job *j);
void cgroup1_job_usage(const cgroup_state *s, cgroup_job *j, sandbox_usage *u, bool *pids_hit);
int cgroup1_job_destroy(const cgroup_state *s, cgroup_job *j, char *err, size_t errlen);
void cgroup1_shutdown(const cgroup_state *s);
void cgroup1_kill_dir(const cgroup_state *s, const char *freezer_dir);

int cgroup2_detect(cgroup_state *s, const char *self_path, char *why, size_t whylen);
int cgroup2_job_create(const cgroup_state *s, const char *name, const sandbox_limits *lim,
                       cgroup_job *j, char *err, size_t errlen);
int cgroup2_job_set_limits(const cgroup_state *s, cgroup_job *j, const sandbox_limits *lim, char *err,
                           size_t errlen);
int cgroup2_job_attach(const cgroup_state *s, cgroup_job *j, pid_t pid, char *err, size_t errlen);
void cgroup2_job_kill(const cgroup_state *s, cgroup_job *j);
void cgroup2_job_usage(const cgroup_state *s, cgroup_job *j, sandbox_usage *u, bool *pids_hit);
int cgroup2_job_destroy(const cgroup_state *s, cgroup_job *j, char *err, size_t errlen);
void cgroup2_shutdown(const cgroup_state *s);
void cgroup2_kill_dir(const cgroup_state *s, const char *dir);

#endif
