/* cgroup v2 half of job cgroups (see cgroup.h): a job folder below this instance's
 * parent with memory.max (swap off), pids.max and cpu.max; cgroup.kill ends the tree;
 * memory.peak, memory.events and cpu.stat report usage. */
#include "sandbox/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const needed[] = {"memory", "pids", "cpu"};

static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static bool has_all(const char *list)
{
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!has_word(list, needed[i]))
            return false;
    return true;
}

/* Turns the controllers on for dir's children. In v2 a non-root cgroup holding
 * processes cannot do that (EBUSY): the service then moves itself to a leaf, as nsjail
 * does, and tries again. */
static int enable_controllers(cgroup_state *s, const char *dir, bool may_move_self, char *why,
                              size_t whylen)
{
    char cur[512] = "";
    if (cg_read(dir, "cgroup.subtree_control", cur, sizeof cur) >= 0 && has_all(cur))
        return 0;
    if (cg_write(s->fake_fs, dir, "cgroup.subtree_control", "+memory +pids +cpu", why, whylen) == 0)
        return 0;
    if (!may_move_self || errno != EBUSY)
        return -1;
    char leaf[4400], pid[32];
    cg_fmt(leaf, sizeof leaf, "%s/executord-supervisor-%d", dir, (int)getpid());
    cg_fmt(pid, sizeof pid, "%d", (int)getpid());
    if (cg_mkdir(leaf, why, whylen) != 0 || cg_write(s->fake_fs, leaf, "cgroup.procs", pid, why, whylen) != 0)
        return -1;
    if (cg_write(s->fake_fs, dir, "cgroup.subtree_control", "+memory +pids +cpu", why, whylen) != 0) {
        size_t len = strlen(why);
        cg_fmt(why + len, whylen - len, " (other processes share executord's cgroup: delegate a cgroup of its own)");
        return -1;
    }
    return 0;
}

int cgroup2_detect(cgroup_state *s, const char *self_path, char *why, size_t whylen)
{
    char mnt[4200];
    cg_fmt(mnt, sizeof mnt, "%s", s->root);
    if (!cg_exists(mnt, "cgroup.controllers")) {
        cg_fmt(mnt, sizeof mnt, "%s/unified", s->root);
        if (!cg_exists(mnt, "cgroup.controllers")) {
            cg_fmt(why, whylen, "no cgroup2 hierarchy at %s or %s/unified", s->root, s->root);
            return -1;
        }
    }
    char self[2048], own[4400];
    if (cg_self_path("", self_path, self, sizeof self, why, whylen) != 0)
        return -1;
    cg_fmt(own, sizeof own, "%s%s", mnt, self);
    char ctl[512] = "";
    if (cg_read(own, "cgroup.controllers", ctl, sizeof ctl) < 0) {
        cg_fmt(why, whylen, "read %s/cgroup.controllers: %s", own, strerror(errno));
        return -1;
    }
    if (!has_all(ctl)) {
        ctl[strcspn(ctl, "\n")] = '\0';
        cg_fmt(why, whylen, "%s offers controllers '%s', needs memory, pids and cpu (not delegated, or held by v1)",
                 own, ctl);
        return -1;
    }
    if (access(own, W_OK) != 0) {
        cg_fmt(why, whylen, "%s: not writable (%s): no delegation", own, strerror(errno));
        return -1;
    }
    cg_remove_leftovers(s, own, cgroup2_kill_dir);
    if (enable_controllers(s, own, true, why, whylen) != 0)
        return -1;
    cg_fmt(s->parent[0], sizeof s->parent[0], "%s/executord-%d", own, (int)getpid());
    if (cg_mkdir(s->parent[0], why, whylen) != 0)
        return -1;
    s->nparents = 1;
    if (enable_controllers(s, s->parent[0], false, why, whylen) != 0) {
        cgroup2_shutdown(s);
        s->nparents = 0;
        return -1;
    }
    s->has_swap_max = s->fake_fs || cg_exists(own, "memory.swap.max") || cg_exists(s->parent[0], "memory.swap.max");
    cg_fmt(s->describe, sizeof s->describe, "cgroup v2: memory%s, pids, cpu under %s",
             s->has_swap_max ? " (swap off)" : " WITHOUT memory.swap.max (swap not limited: no swap accounting)",
             s->parent[0]);
    return 0;
}

int cgroup2_job_create(const cgroup_state *s, const char *name, const sandbox_limits *lim,
                       cgroup_job *j, char *err, size_t errlen)
{
    cg_fmt(j->path[0], sizeof j->path[0], "%s/%s", s->parent[0], name);
    if (cg_mkdir(j->path[0], err, errlen) != 0)
        return -1;
    j->npaths = 1;
    if (cgroup2_job_set_limits(s, j, lim, err, errlen) != 0)
        return -1;
    if (s->cpu_quota_percent > 0) {
        char v[64];
        cg_fmt(v, sizeof v, "%u 100000", s->cpu_quota_percent * 1000);
        if (cg_write(s->fake_fs, j->path[0], "cpu.max", v, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int cgroup2_job_set_limits(const cgroup_state *s, cgroup_job *j, const sandbox_limits *lim, char *err,
                           size_t errlen)
{
    char v[64];
    if (lim->memory_mb > 0) {
        cg_fmt(v, sizeof v, "%" PRIu64, lim->memory_mb * 1024 * 1024);
        if (cg_write(s->fake_fs, j->path[0], "memory.max", v, err, errlen) != 0)
            return -1;
        if (s->has_swap_max && cg_write(s->fake_fs, j->path[0], "memory.swap.max", "0", err, errlen) != 0)
            return -1;
        j->limits_memory = true;
    }
    if (lim->max_processes > 0) {
        cg_fmt(v, sizeof v, "%" PRIu64, lim->max_processes + 1); /* +1: the sandbox's init */
        if (cg_write(s->fake_fs, j->path[0], "pids.max", v, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int cgroup2_job_attach(const cgroup_state *s, cgroup_job *j, pid_t pid, char *err, size_t errlen)
{
    char v[32];
    cg_fmt(v, sizeof v, "%d", (int)pid);
    return cg_write(s->fake_fs, j->path[0], "cgroup.procs", v, err, errlen);
}

void cgroup2_kill_dir(const cgroup_state *s, const char *dir)
{
    char err[512];
    if (cg_exists(dir, "cgroup.kill") && cg_write(s->fake_fs, dir, "cgroup.kill", "1", err, sizeof err) == 0)
        return;
    /* Kernels before 5.14: freeze, kill the members, thaw. */
    bool frozen = cg_write(s->fake_fs, dir, "cgroup.freeze", "1", err, sizeof err) == 0;
    cg_kill_listed(dir);
    if (frozen && cg_write(s->fake_fs, dir, "cgroup.freeze", "0", err, sizeof err) != 0)
        fprintf(stderr, "executord: cgroup: %s\n", err);
}

void cgroup2_job_kill(const cgroup_state *s, cgroup_job *j)
{
    cgroup2_kill_dir(s, j->path[0]);
}

void cgroup2_job_usage(const cgroup_state *s, cgroup_job *j, sandbox_usage *u, bool *pids_hit)
{
    (void)s;
    int64_t peak = cg_read_int(j->path[0], "memory.peak");
    if (peak >= 0)
        u->memory_peak_bytes = peak;
    int64_t oom = cg_read_key(j->path[0], "memory.events", "oom_kill");
    if (oom >= 0)
        u->oom_kills = oom;
    int64_t usec = cg_read_key(j->path[0], "cpu.stat", "usage_usec");
    if (usec >= 0)
        u->cgroup_cpu_ms = usec / 1000;
    *pids_hit = cg_read_key(j->path[0], "pids.events", "max") > 0;
}

int cgroup2_job_destroy(const cgroup_state *s, cgroup_job *j, char *err, size_t errlen)
{
    cgroup2_job_kill(s, j);
    return cg_remove(s->fake_fs, j->path[0], err, errlen);
}

void cgroup2_shutdown(const cgroup_state *s)
{
    char err[512];
    if (s->nparents > 0 && cg_remove(s->fake_fs, s->parent[0], err, sizeof err) != 0)
        fprintf(stderr, "executord: cgroup: %s\n", err);
}
