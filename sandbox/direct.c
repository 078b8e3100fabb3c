/* The `direct` backend: the trusted, low-isolation one. Each job runs in a new PID
 * namespace and a mount namespace with its own /proc (so killing the tree is complete and
 * the script sees only its own processes), under rlimits, in a fresh work folder; no
 * filesystem or network isolation. It always adds a user namespace: as root the job is
 * mapped to a host uid of its own (from the sandbox uid slots), so it is never root on
 * the host and RLIMIT_NPROC, which the kernel does not apply to root, holds. */
#include <errno.h>
#include <grp.h>
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
#include "sandbox/userns.h"
#include "sandbox/workdir.h"

static char *python_path;
static char *work_root;

typedef struct direct_ctx {
    uid_t uid;
    gid_t gid;
    const char *workdir;
} direct_ctx;

/* In init, before the runner exists (async-signal-safe). Private propagation first, so
 * the new /proc does not leak into the host's mount table. */
static int direct_child_setup(void *ctx, const char **step)
{
    const direct_ctx *c = ctx;
    /* Enter the work folder while still holding the service's host ids: its parents
     * (the data folder under /root, say) need not be searchable by the job's uid. The
     * runner inherits this working folder (proc_job.cwd is NULL). */
    if (chdir(c->workdir) != 0) {
        *step = "chdir to the work folder";
        return -1;
    }
    /* The clone kept the service's host ids, which the new namespace does not map; the
     * maps are written now, so become the mapped root: the job's host uid. Raw system
     * calls: glibc's setresuid would try to signal threads this process does not have. */
    if (syscall(SYS_setresgid, 0, 0, 0) != 0) {
        *step = "setresgid 0 in the user namespace";
        return -1;
    }
    if (syscall(SYS_setresuid, 0, 0, 0) != 0) {
        *step = "setresuid 0 in the user namespace";
        return -1;
    }
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
    return spawn_write_id_maps(pid, c->uid, c->gid, err, errlen);
}

static unsigned long direct_clone_flags(void)
{
    return CLONE_NEWNS | CLONE_NEWUSER;
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

/* As root, every job's work folder is handed to the job's own host uid (chown), which
 * takes CAP_CHOWN: a service without it (a container given only SETUID and SETGID) must
 * report direct unavailable rather than fail every job. Tried once on a scratch folder. */
static int probe_work_folder_handover(const char *root, char *why, size_t whylen)
{
    if (geteuid() != 0)
        return 0; /* unprivileged: jobs run as the service's own uid, nothing to hand over */
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/.direct-probe-XXXXXX", root);
    if (n < 0 || (size_t)n >= sizeof dir) {
        snprintf(why, whylen, "work folder path too long");
        return -1;
    }
    if (!mkdtemp(dir)) {
        snprintf(why, whylen, "mkdtemp %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (chown(dir, 65534, 65534) != 0) {
        snprintf(why, whylen, "cannot hand a job its work folder (chown to the job's uid: %s; "
                 "direct needs CAP_CHOWN)", strerror(errno));
        rc = -1;
    }
    if (rmdir(dir) != 0 && rc == 0) {
        snprintf(why, whylen, "rmdir %s: %s", dir, strerror(errno));
        rc = -1;
    }
    return rc;
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
    /* Supplementary groups survive into a user namespace whose setgroups is denied:
     * drop root's (group 0 would open root-group files to every job). */
    if (geteuid() == 0 && setgroups(0, NULL) != 0) {
        snprintf(why, whylen, "setgroups(0) to keep host groups out of jobs: %s", strerror(errno));
        return -1;
    }
    if (probe_namespaces(why, whylen) != 0 || probe_work_folder_handover(cfg->work_root, why, whylen) != 0)
        return -1;
    free(python_path);
    free(work_root);
    python_path = strdup(py);
    work_root = strdup(cfg->work_root);
    if (!python_path || !work_root) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    /* Compile the runner once now, not in the first job (see runner_program). */
    (void)runner_program(python_path);
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
    /* Its jobs share the service's network: no list of places can be enforced. */
    if (spec->egress_only) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError",
                                  "network: the direct backend cannot limit a job's network (egress_only)");
        return 0;
    }
    char workdir[PATH_MAX], err[512];
    if (workdir_create(work_root, spec->job_id ? spec->job_id : "", workdir, sizeof workdir,
                       err, sizeof err) != 0) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "work folder: %s", err);
        return 0;
    }
    direct_ctx ctx = {.uid = geteuid(), .gid = getegid(), .workdir = workdir};
    uid_t slot = 0;
    bool have_slot = false;
    if (geteuid() == 0) {
        if (sandbox_userns_acquire(&slot) != 0) {
            out->verdict = SANDBOX_SETUP_ERROR;
            sandbox_outcome_set_error(out, "SandboxError", "no free sandbox uid: %s", strerror(errno));
            goto cleanup;
        }
        have_slot = true;
        /* The slot's second id is the one a job runs as (see userns.h). */
        ctx.uid = slot + 1;
        ctx.gid = slot + 1;
        if (chown(workdir, ctx.uid, ctx.gid) != 0) {
            out->verdict = SANDBOX_SETUP_ERROR;
            sandbox_outcome_set_error(out, "SandboxError", "chown %s: %s", workdir, strerror(errno));
            goto cleanup;
        }
    }
    proc_job job = {
        .spec = spec,
        .io = io,
        .python = python_path,
        .cwd = NULL, /* entered by direct_child_setup */
        .home = workdir,
        .hooks = {
            .clone_flags = direct_clone_flags(),
            .ctx = &ctx,
            .parent_setup = direct_parent_setup,
            .child_setup = direct_child_setup,
        },
    };
    proc_run_job(&job, out);
cleanup:
    /* The tree is dead, so nothing can race the removal; a failure is logged, not the
     * job's fault. */
    if (workdir_remove(work_root, spec->job_id, err, sizeof err) != 0)
        fprintf(stderr, "executord: direct: removing work folder: %s\n", err);
    if (have_slot)
        sandbox_userns_release(slot);
    return 0;
}

static void direct_shutdown(void)
{
    proc_set_shutting_down(true);
}

const sandbox_backend sandbox_backend_direct = {
    .name = "direct",
    .description = "own PID and mount namespaces, a host uid of its own, rlimits; no filesystem or network isolation",
    .init = direct_init,
    .run = direct_run,
    .shutdown = direct_shutdown,
};
