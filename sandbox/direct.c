/* The `direct` backend: the trusted, low-isolation one. Each job runs in a new PID
 * namespace and a mount namespace with its own /proc (so killing the tree is complete and
 * the script sees only its own processes), under rlimits, in a fresh work folder; no
 * filesystem or network isolation. Unprivileged, it adds a user namespace. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/process.h"
#include "sandbox/sandbox.h"
#include "sandbox/workdir.h"

static char *python_path;
static char *work_root;

typedef struct direct_ctx {
    uid_t uid;
    gid_t gid;
} direct_ctx;

/* In init, before the runner exists (async-signal-safe). Private propagation first, so
 * the new /proc does not leak into the host's mount table. */
static int direct_child_setup(void *ctx, const char **step)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        *step = "mount --make-rprivate /";
        return -1;
    }
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
        *step = "mount proc on /proc";
        return -1;
    }
    return 0;
}

static int direct_parent_setup(void *ctx, pid_t pid, char *err, size_t errlen)
{
    const direct_ctx *c = ctx;
    return proc_write_id_maps(pid, c->uid, c->gid, err, errlen);
}

static unsigned long direct_clone_flags(void)
{
    return CLONE_NEWNS | (geteuid() != 0 ? CLONE_NEWUSER : 0);
}

/* Proves at start-up that the namespaces can be created here, so an unusable backend
 * is reported as unavailable instead of failing every job. */
static int probe_namespaces(char *why, size_t whylen)
{
    unsigned long flags = CLONE_NEWPID | direct_clone_flags();
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0) {
        snprintf(why, whylen, "clone (PID/mount%s namespaces): %s",
                 (flags & CLONE_NEWUSER) ? "/user" : "", strerror(errno));
        return -1;
    }
    if (pid == 0)
        _exit(0);
    int st;
    while (waitpid((pid_t)pid, &st, __WALL) < 0 && errno == EINTR) {
    }
    return 0;
}

static int direct_init(const sandbox_config *cfg, char *why, size_t whylen)
{
    const char *py = cfg && cfg->python_path ? cfg->python_path : "/usr/bin/python3";
    if (!cfg || !cfg->work_root) {
        snprintf(why, whylen, "no work folder configured");
        return -1;
    }
    if (access(py, X_OK) != 0) {
        snprintf(why, whylen, "python %s: %s", py, strerror(errno));
        return -1;
    }
    if (workdir_prepare_root(cfg->work_root, why, whylen) != 0)
        return -1;
    if (probe_namespaces(why, whylen) != 0)
        return -1;
    free(python_path);
    free(work_root);
    python_path = strdup(py);
    work_root = strdup(cfg->work_root);
    if (!python_path || !work_root) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    proc_set_shutting_down(false);
    return 0;
}

static int direct_run(const sandbox_spec *spec, const sandbox_io *io, sandbox_outcome *out)
{
    sandbox_outcome_init(out);
    if (!python_path || !work_root) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "direct backend is not initialised");
        return 0;
    }
    char workdir[PATH_MAX], err[512];
    if (workdir_create(work_root, spec->job_id ? spec->job_id : "", workdir, sizeof workdir,
                       err, sizeof err) != 0) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "work folder: %s", err);
        return 0;
    }
    char **env = proc_build_env(workdir, spec->env);
    if (!env) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "environment: %s", strerror(ENOMEM));
    } else {
        direct_ctx ctx = {.uid = geteuid(), .gid = getegid()};
        unsigned long flags = direct_clone_flags();
        proc_job job = {
            .spec = spec,
            .io = io,
            .python = python_path,
            .cwd = workdir,
            .envp = env,
            .hooks = {
                .clone_flags = flags,
                .ctx = &ctx,
                .parent_setup = (flags & CLONE_NEWUSER) ? direct_parent_setup : NULL,
                .child_setup = direct_child_setup,
            },
        };
        proc_run_job(&job, out);
        proc_free_env(env);
    }
    /* The tree is dead, so nothing can race the removal; a failure is logged, not the
     * job's fault. */
    if (workdir_remove(work_root, spec->job_id, err, sizeof err) != 0)
        fprintf(stderr, "executord: direct: removing work folder: %s\n", err);
    return 0;
}

static void direct_shutdown(void)
{
    proc_set_shutting_down(true);
}

const sandbox_backend sandbox_backend_direct = {
    .name = "direct",
    .init = direct_init,
    .run = direct_run,
    .shutdown = direct_shutdown,
};
