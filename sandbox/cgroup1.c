/* cgroup v1 half of job cgroups (see cgroup.h): one folder per job in each of the
 * memory, pids, cpu, cpuacct and freezer hierarchies. Swap is counted through memsw
 * when the kernel accounts it; killing freezes the group first so nothing forks away
 * between reading the member list and the SIGKILLs. */
#include "sandbox/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const controller_names[CG1_COUNT] = {"memory", "pids", "cpu", "cpuacct", "freezer"};

static void kill_listed_dir(const cgroup_state *s, const char *dir)
{
    (void)s;
    cg_kill_listed(dir);
}

int cgroup1_detect(cgroup_state *s, const char *self_path, char *why, size_t whylen)
{
    char self[CG1_COUNT][2048];
    for (int c = 0; c < CG1_COUNT; c++) {
        char hier[4200];
        cg_fmt(hier, sizeof hier, "%s/%s", s->root, controller_names[c]);
        if (!cg_exists(hier, "cgroup.procs")) {
            cg_fmt(why, whylen, "no %s hierarchy mounted at %s", controller_names[c], hier);
            return -1;
        }
        if (cg_self_path(controller_names[c], self_path, self[c], sizeof self[c], why, whylen) != 0)
            return -1;
        char own[4400];
        cg_fmt(own, sizeof own, "%s%s", hier, self[c]);
        if (access(own, W_OK) != 0) {
            cg_fmt(why, whylen, "%s: not writable (%s): no delegation", own, strerror(errno));
            return -1;
        }
    }
    char mem_own[4400];
    cg_fmt(mem_own, sizeof mem_own, "%s/memory%s", s->root, self[CG1_MEMORY]);
    if (!cg_exists(mem_own, "memory.limit_in_bytes")) {
        cg_fmt(why, whylen, "%s has no memory.limit_in_bytes", mem_own);
        return -1;
    }
    s->has_memsw = cg_exists(mem_own, "memory.memsw.limit_in_bytes");
    /* Leftovers: the freezer hierarchy first (freeze + kill), then the others only
     * need their (by then empty) folders removed. */
    static const int order[CG1_COUNT] = {CG1_FREEZER, CG1_MEMORY, CG1_PIDS, CG1_CPU, CG1_CPUACCT};
    for (int i = 0; i < CG1_COUNT; i++) {
        int c = order[i];
        char own[4400];
        cg_fmt(own, sizeof own, "%s/%s%s", s->root, controller_names[c], self[c]);
        cg_remove_leftovers(s, own, c == CG1_FREEZER ? cgroup1_kill_dir : kill_listed_dir);
    }
    for (int c = 0; c < CG1_COUNT; c++) {
        char own[4400];
        cg_fmt(own, sizeof own, "%s/%s%s", s->root, controller_names[c], self[c]);
        cg_fmt(s->parent[c], sizeof s->parent[c], "%s/executord-%d", own, (int)getpid());
        if (cg_mkdir(s->parent[c], why, whylen) != 0) {
            s->nparents = c;
            cgroup1_shutdown(s);
            return -1;
        }
        s->nparents = c + 1;
    }
    cg_fmt(s->describe, sizeof s->describe,
             "cgroup v1: memory%s, pids, cpu, cpuacct, freezer under %s",
             s->has_memsw ? "+memsw (swap counted)"
                          : " WITHOUT memsw (swap not counted: kernel lacks swap accounting)",
             s->parent[CG1_MEMORY]);
    return 0;
}

int cgroup1_job_create(const cgroup_state *s, const char *name, const sandbox_limits *lim,
                       cgroup_job *j, char *err, size_t errlen)
{
    for (int c = 0; c < CG1_COUNT; c++) {
        cg_fmt(j->path[c], sizeof j->path[c], "%s/%s", s->parent[c], name);
        if (cg_mkdir(j->path[c], err, errlen) != 0)
            return -1;
        j->npaths = c + 1;
    }
    if (cgroup1_job_set_limits(s, j, lim, err, errlen) != 0)
        return -1;
    if (s->cpu_quota_percent > 0) {
        char v[64];
        cg_fmt(v, sizeof v, "%u", s->cpu_quota_percent * 1000);
        if (cg_write(s->fake_fs, j->path[CG1_CPU], "cpu.cfs_period_us", "100000", err, errlen) != 0 ||
            cg_write(s->fake_fs, j->path[CG1_CPU], "cpu.cfs_quota_us", v, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int cgroup1_job_set_limits(const cgroup_state *s, cgroup_job *j, const sandbox_limits *lim, char *err,
                           size_t errlen)
{
    char v[64];
    if (lim->memory_mb > 0) {
        cg_fmt(v, sizeof v, "%" PRIu64, lim->memory_mb * 1024 * 1024);
        /* memsw must never be below the plain limit: set the plain one first. */
        if (cg_write(s->fake_fs, j->path[CG1_MEMORY], "memory.limit_in_bytes", v, err, errlen) != 0)
            return -1;
        if (s->has_memsw && cg_write(s->fake_fs, j->path[CG1_MEMORY], "memory.memsw.limit_in_bytes", v, err, errlen) != 0)
            return -1;
        j->limits_memory = true;
    }
    if (lim->max_processes > 0) {
        /* +1: the sandbox's init lives in the cgroup too. */
        cg_fmt(v, sizeof v, "%" PRIu64, lim->max_processes + 1);
        if (cg_write(s->fake_fs, j->path[CG1_PIDS], "pids.max", v, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int cgroup1_job_attach(const cgroup_state *s, cgroup_job *j, pid_t pid, char *err, size_t errlen)
{
    char v[32];
    cg_fmt(v, sizeof v, "%d", (int)pid);
    for (int c = 0; c < j->npaths; c++)
        if (cg_write(s->fake_fs, j->path[c], "cgroup.procs", v, err, errlen) != 0)
            return -1;
    return 0;
}

/* Freeze, SIGKILL every member, thaw (a frozen task only dies once thawed). */
void cgroup1_kill_dir(const cgroup_state *s, const char *freezer_dir)
{
    char err[512];
    bool frozen = cg_write(s->fake_fs, freezer_dir, "freezer.state", "FROZEN", err, sizeof err) == 0;
    for (int i = 0; frozen && i < 50; i++) {
        char st[32];
        if (cg_read(freezer_dir, "freezer.state", st, sizeof st) <= 0 || strncmp(st, "FROZEN", 6) == 0)
            break;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cg_kill_listed(freezer_dir);
    if (frozen && cg_write(s->fake_fs, freezer_dir, "freezer.state", "THAWED", err, sizeof err) != 0)
        fprintf(stderr, "executord: cgroup: %s\n", err);
}

/* True when dir/cgroup.procs lists nobody (an unreadable list counts as not empty). */
static bool procs_listed_empty(const char *dir)
{
    char buf[16];
    return cg_read(dir, "cgroup.procs", buf, sizeof buf) == 0;
}

void cgroup1_job_kill(const cgroup_state *s, cgroup_job *j)
{
    /* After a normal end (init reaped: its PID namespace is empty) the group is empty;
     * an empty group cannot gain members (only a member could fork into it), so the
     * freeze/kill/thaw round trip is only needed when someone is listed. */
    if (j->npaths > CG1_FREEZER && !procs_listed_empty(j->path[CG1_FREEZER]))
        cgroup1_kill_dir(s, j->path[CG1_FREEZER]);
    if (j->npaths > CG1_MEMORY)
        cg_kill_listed(j->path[CG1_MEMORY]);
}

void cgroup1_job_usage(const cgroup_state *s, cgroup_job *j, sandbox_usage *u, bool *pids_hit)
{
    (void)s;
    int64_t peak = cg_read_int(j->path[CG1_MEMORY], "memory.max_usage_in_bytes");
    if (peak >= 0)
        u->memory_peak_bytes = peak;
    int64_t oom = cg_read_key(j->path[CG1_MEMORY], "memory.oom_control", "oom_kill");
    if (oom >= 0)
        u->oom_kills = oom;
    int64_t ns = cg_read_int(j->path[CG1_CPUACCT], "cpuacct.usage");
    if (ns >= 0)
        u->cgroup_cpu_ms = ns / 1000000;
    *pids_hit = cg_read_key(j->path[CG1_PIDS], "pids.events", "max") > 0;
}

int cgroup1_job_destroy(const cgroup_state *s, cgroup_job *j, char *err, size_t errlen)
{
    cgroup1_job_kill(s, j);
    int rc = 0;
    for (int c = j->npaths - 1; c >= 0; c--)
        if (cg_remove(s->fake_fs, j->path[c], err, errlen) != 0)
            rc = -1;
    return rc;
}

void cgroup1_shutdown(const cgroup_state *s)
{
    char err[512];
    for (int c = s->nparents - 1; c >= 0; c--)
        if (cg_remove(s->fake_fs, s->parent[c], err, sizeof err) != 0)
            fprintf(stderr, "executord: cgroup: %s\n", err);
}
