/* cgroup detection and the version-independent half of per-job cgroups (see cgroup.h):
 * picks v2 when its controllers are usable, else v1, else records why neither is. The
 * cgroupfs file helpers are below, in cgroupfs.c. */
#include "sandbox/cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static cgroup_state state;

/* "executord-<pid>" (or "executord-supervisor-<pid>") whose process is gone, or is us (a restarted container often gets
 * the same pid): a crashed instance's parent cgroup. */
static bool is_leftover(const char *name)
{
    if (strncmp(name, "executord-", 10) != 0)
        return false;
    name += 10;
    if (strncmp(name, "supervisor-", 11) == 0) /* where a v2 service moved itself */
        name += 11;
    if (!isdigit((unsigned char)name[0]))
        return false;
    char *end;
    long pid = strtol(name, &end, 10);
    if (*end != '\0' || pid <= 0)
        return false;
    if ((pid_t)pid == getpid())
        return true;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void cg_remove_leftovers(const cgroup_state *s, const char *dir,
                         void (*kill_dir)(const cgroup_state *, const char *))
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_type != DT_DIR || !is_leftover(e->d_name))
            continue;
        char parent[4400], err[512];
        snprintf(parent, sizeof parent, "%s/%s", dir, e->d_name);
        DIR *jobs = opendir(parent);
        if (jobs) {
            struct dirent *j;
            while ((j = readdir(jobs))) {
                if (j->d_type != DT_DIR || j->d_name[0] == '.')
                    continue;
                char job[4700];
                snprintf(job, sizeof job, "%s/%s", parent, j->d_name);
                kill_dir(s, job);
                if (cg_remove(s->fake_fs, job, err, sizeof err) != 0)
                    fprintf(stderr, "executord: cgroup: leftover %s\n", err);
            }
            closedir(jobs);
        }
        kill_dir(s, parent);
        if (cg_remove(s->fake_fs, parent, err, sizeof err) != 0)
            fprintf(stderr, "executord: cgroup: leftover %s\n", err);
    }
    closedir(d);
}

/* ---- detection and dispatch ---- */

int sandbox_cgroup_init(const cgroup_options *o, char *why, size_t whylen)
{
    memset(&state, 0, sizeof state);
    state.opt = *o;
    snprintf(state.root, sizeof state.root, "%s", o->root ? o->root : "/sys/fs/cgroup");
    state.cpu_quota_percent = o->cpu_quota_percent;
    state.fake_fs = o->fake_fs;
    char why2[512] = "", why1[512] = "";
    /* v2 first: it is what container hosts have, and on hybrid hosts it is used only
     * when the controllers were moved to it. */
    if (cgroup2_detect(&state, o->self_path, why2, sizeof why2) == 0) {
        state.mode = CGROUP_V2;
        return 0;
    }
    memset(state.parent, 0, sizeof state.parent);
    state.nparents = 0;
    if (cgroup1_detect(&state, o->self_path, why1, sizeof why1) == 0) {
        state.mode = CGROUP_V1;
        return 0;
    }
    state.mode = CGROUP_NONE;
    cg_fmt(state.describe, sizeof state.describe, "no usable cgroups (v2: %s; v1: %s)", why2, why1);
    snprintf(why, whylen, "%s", state.describe);
    return -1;
}

void sandbox_cgroup_shutdown(void)
{
    if (state.mode == CGROUP_V1)
        cgroup1_shutdown(&state);
    else if (state.mode == CGROUP_V2)
        cgroup2_shutdown(&state);
    state.mode = CGROUP_NONE;
}

cgroup_mode sandbox_cgroup_mode(void)
{
    return state.mode;
}

const char *sandbox_cgroup_describe(void)
{
    return state.describe[0] ? state.describe : "cgroups not initialised";
}

const char *sandbox_cgroup_parent_path(void)
{
    return state.nparents > 0 ? state.parent[0] : "";
}

int sandbox_cgroup_job_create(const char *job_id, const sandbox_limits *lim, cgroup_job **out,
                              char *err, size_t errlen)
{
    *out = NULL;
    if (state.mode == CGROUP_NONE) {
        snprintf(err, errlen, "cgroups: %s", sandbox_cgroup_describe());
        return -1;
    }
    /* The name becomes a path component: letters, digits, '-' and '_' only. */
    static const char ok[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
    if (!job_id || !*job_id || strlen(job_id) > 64 || strspn(job_id, ok) != strlen(job_id)) {
        snprintf(err, errlen, "cgroup: job id '%.80s' is not a valid cgroup name", job_id ? job_id : "");
        return -1;
    }
    cgroup_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "cgroup: calloc: %s", strerror(errno));
        return -1;
    }
    j->dirfd = -1;
    char name[80];
    snprintf(name, sizeof name, "job-%s", job_id);
    int rc = state.mode == CGROUP_V2 ? cgroup2_job_create(&state, name, lim, j, err, errlen)
                                     : cgroup1_job_create(&state, name, lim, j, err, errlen);
    if (rc != 0) {
        char ignored[256];
        if (j->npaths > 0)
            (void)sandbox_cgroup_job_destroy(j, ignored, sizeof ignored);
        else
            free(j);
        return -1;
    }
    *out = j;
    return 0;
}

int sandbox_cgroup_job_set_limits(cgroup_job *j, const sandbox_limits *lim, char *err, size_t errlen)
{
    return state.mode == CGROUP_V2 ? cgroup2_job_set_limits(&state, j, lim, err, errlen)
                                   : cgroup1_job_set_limits(&state, j, lim, err, errlen);
}

int sandbox_cgroup_job_attach(cgroup_job *j, pid_t pid, char *err, size_t errlen)
{
    return state.mode == CGROUP_V2 ? cgroup2_job_attach(&state, j, pid, err, errlen)
                                   : cgroup1_job_attach(&state, j, pid, err, errlen);
}

int sandbox_cgroup_job_clone_fd(cgroup_job *j)
{
    if (!j || state.mode != CGROUP_V2 || state.fake_fs || j->npaths < 1)
        return -1;
    if (j->dirfd < 0)
        j->dirfd = open(j->path[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    return j->dirfd;
}

void sandbox_cgroup_job_kill(cgroup_job *j)
{
    if (state.mode == CGROUP_V2)
        cgroup2_job_kill(&state, j);
    else if (state.mode == CGROUP_V1)
        cgroup1_job_kill(&state, j);
}

void sandbox_cgroup_job_usage(cgroup_job *j, sandbox_usage *u, bool *pids_limit_hit)
{
    *pids_limit_hit = false;
    if (state.mode == CGROUP_V2)
        cgroup2_job_usage(&state, j, u, pids_limit_hit);
    else if (state.mode == CGROUP_V1)
        cgroup1_job_usage(&state, j, u, pids_limit_hit);
}

bool sandbox_cgroup_job_limits_memory(const cgroup_job *j)
{
    return j && j->limits_memory;
}

const char *sandbox_cgroup_job_path(const cgroup_job *j)
{
    return j->path[0];
}

int sandbox_cgroup_job_destroy(cgroup_job *j, char *err, size_t errlen)
{
    if (!j)
        return 0;
    if (j->dirfd >= 0)
        close(j->dirfd);
    j->dirfd = -1;
    int rc = state.mode == CGROUP_V2 ? cgroup2_job_destroy(&state, j, err, errlen)
                                     : cgroup1_job_destroy(&state, j, err, errlen);
    free(j);
    return rc;
}
