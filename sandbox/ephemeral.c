/* The `ephemeral` backend (see ephemeral.h): glues userns, mnt, net, seccomp, caps and
 * cgroup onto process.c's cold run (the job's cgroup goes to the one supervisor). Any
 * step that fails fails the job with SandboxError ("step: strerror"); the script never
 * runs with less isolation. */
#include "sandbox/ephemeral.h"

#include <errno.h>
#include <fcntl.h>

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/cgroup.h"
#include "sandbox/jobnet.h"
#include "sandbox/mnt.h"
#include "sandbox/pkgmount.h"
#include "sandbox/policy.h"
#include "sandbox/process.h"
#include "sandbox/runtime.h"
#include "sandbox/seccomp.h"
#include "sandbox/userns.h"
#include "sandbox/workdir.h"

static struct {
    bool ready;
    sandbox_runtime rt;       /* the root and interpreter (runtime.c) */
    char base[PATH_MAX];      /* mount point of each job's new root (in its own ns) */
    struct sock_fprog seccomp;
    bool cgroups;
    uint64_t tmp_bytes, shm_bytes, work_bytes; /* resolved once, at init */
    char status[1200];
} eph;

static atomic_uint anon_counter;
static atomic_int active_jobs; /* shutdown waits for these before removing cgroups */

const char *ephemeral_status(void)
{
    return eph.status;
}

/* ---- per-job context shared with the hooks ---- */

typedef struct eph_job {
    uid_t host_id;
    cgroup_job *cg;
    mnt_plan plan;
    bool network;             /* allow_network: connected by jobnet */
    const char *const *egress_only; /* its own list instead of the policy, or NULL */
    jobnet net;
    const sandbox_packages *packages; /* mounted once the root is built */
    const struct sock_fprog *seccomp;
} eph_job;

/* Maps the ids, then starts connecting a network-enabled job (the stack and the policy
 * come up while init assembles its root; hook_parent_attach waits for them). */
static int hook_parent_setup(void *ctx, pid_t pid, char *err, size_t errlen)
{
    eph_job *j = ctx;
    if (sandbox_userns_write_maps(pid, j->host_id, err, errlen) != 0)
        return -1;
    if (j->network && jobnet_begin(&j->net, pid, -1, j->egress_only, err, errlen) != 0)
        return -1;
    return 0;
}

/* While init assembles its root: on cgroup v1 the write waits for an RCU grace period
 * (~10 ms on this kind of host), which this way overlaps the mounts. init forks nothing
 * before it is told this succeeded, so every process of the job is born inside, and a
 * network-enabled job's first packet already meets the policy. */
static int hook_parent_attach(void *ctx, pid_t pid, bool in_cgroup, char *err, size_t errlen)
{
    eph_job *j = ctx;
    if (!in_cgroup && j->cg && sandbox_cgroup_job_attach(j->cg, pid, err, errlen) != 0)
        return -1;
    if (j->network && jobnet_finish(&j->net, err, errlen) != 0)
        return -1;
    return 0;
}

/* Once init has built its root, before the runner exists: the job's packages onto its
 * empty /deps and /wheels (pkgmount.h). */
static int hook_parent_root_ready(void *ctx, pid_t pid, int pidfd, char *err, size_t errlen)
{
    eph_job *j = ctx;
    return pkgmount_attach(j->packages, pid, pidfd, err, errlen);
}

/* In init once attached, async-signal-safe (policy.h). */
static int hook_child_attached(void *ctx, const char **step)
{
    (void)ctx;
    return policy_enter_cgroup_ns(step);
}

/* In init (pid 1), async-signal-safe; runs while the service attaches init to its
 * cgroup (no cgroup namespace yet: see hook_child_attached). */
static int hook_child_setup(void *ctx, const char **step)
{
    eph_job *j = ctx;
    policy_init init = {.mounts = &j->plan};
    return policy_init_steps(&init, step);
}

/* In the runner right before execve, async-signal-safe. Its rlimits are set already
 * (runner_sandbox_rlimits, by spawn.c), so the policy's job steps start at the drop. */
static int hook_child_pre_exec(void *ctx, const char **step)
{
    eph_job *j = ctx;
    policy_job job = {.rlimits = NULL, .seccomp = j->seccomp, .no_exec_follows = false};
    return policy_job_steps(&job, step);
}

/* ---- init / run / shutdown ---- */

/* Builds the namespaces once and maps a job's uids into them, so a host that cannot
 * (no user namespaces, or no CAP_SETUID/CAP_SETGID for other uids' maps) is reported at
 * start-up instead of failing every job. The child waits until the maps are written. */
static int probe_namespaces(char *why, size_t whylen)
{
    unsigned long flags = policy_namespaces() | CLONE_NEWCGROUP;
    int hold[2];
    if (pipe2(hold, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "pipe2: %s", strerror(errno));
        return -1;
    }
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0) {
        snprintf(why, whylen, "clone (user/PID/mount/IPC/UTS/net/cgroup namespaces): %s", strerror(errno));
        close(hold[0]);
        close(hold[1]);
        return -1;
    }
    if (pid == 0) {
        char c;
        close(hold[1]);
        while (read(hold[0], &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0); /* EOF: the parent is done */
    }
    close(hold[0]);
    int rc = 0;
    uid_t slot;
    bool have_slot = sandbox_userns_acquire(&slot) == 0;
    char err[256];
    if (!have_slot) {
        snprintf(why, whylen, "no free sandbox uid: %s", strerror(errno));
        rc = -1;
    } else if (sandbox_userns_write_maps((pid_t)pid, slot, err, sizeof err) != 0) {
        snprintf(why, whylen, "mapping a job's uids: %s", err);
        rc = -1;
    }
    close(hold[1]);
    int st;
    while (waitpid((pid_t)pid, &st, __WALL) < 0 && errno == EINTR) {
    }
    if (have_slot)
        sandbox_userns_release(slot); /* its only user, the probe, is gone */
    return rc;
}

static int eph_init(const sandbox_config *cfg, char *why, size_t whylen)
{
    eph.ready = false;
    if (!cfg) {
        snprintf(why, whylen, "no configuration");
        return -1;
    }
    if (sandbox_runtime_resolve(cfg, &eph.rt, why, whylen) != 0)
        return -1;
    const sandbox_isolation_config *o = &cfg->sandbox;
    if (workdir_prepare_base(cfg->work_root, ".ephemeral-root", eph.base, sizeof eph.base, why, whylen) != 0)
        return -1;
    uid_t base = o->uid_base ? o->uid_base : SANDBOX_DEFAULT_UID_BASE;
    unsigned count = o->uid_count ? o->uid_count : SANDBOX_DEFAULT_UID_COUNT;
    if (sandbox_userns_configure(base, count, why, whylen) != 0)
        return -1;
    /* Instances on one host share the default range: coordinate through flocks. */
    const char *locks = o->uid_lock_dir ? o->uid_lock_dir : SANDBOX_DEFAULT_UID_LOCK_DIR;
    if (sandbox_userns_lock_dir(*locks ? locks : NULL, why, whylen) != 0)
        return -1;
    if (probe_namespaces(why, whylen) != 0)
        return -1;
    sandbox_seccomp_free(&eph.seccomp);
    if (sandbox_seccomp_build(&eph.seccomp, why, whylen) != 0)
        return -1;
    sandbox_tmpfs_bytes(o, &eph.tmp_bytes, &eph.shm_bytes, &eph.work_bytes);
    /* Jobs without network do not need it: a host without slirp4netns or nftables still
     * runs them, and network-enabled jobs fail with the reason (never run unfiltered). */
    char netwhy[512];
    if (jobnet_configure(&cfg->network, netwhy, sizeof netwhy) != 0)
        fprintf(stderr, "executord: ephemeral: network-enabled jobs will fail: %s\n", netwhy);

    cgroup_options co = {
        .root = o->cgroup_root,
        .self_path = o->cgroup_self,
        .cpu_quota_percent = o->cpu_quota_percent ? o->cpu_quota_percent : SANDBOX_DEFAULT_CPU_PERCENT,
        .fake_fs = o->cgroup_fake_fs,
    };
    char cgwhy[1024];
    eph.cgroups = sandbox_cgroup_init(&co, cgwhy, sizeof cgwhy) == 0;
    if (eph.cgroups) {
        snprintf(eph.status, sizeof eph.status, "%s", sandbox_cgroup_describe());
    } else {
        /* Still available, but never silently weaker: the caveat goes to the start-up
         * log and /readyz through why. */
        snprintf(eph.status, sizeof eph.status, "rlimits only, %s", cgwhy);
        snprintf(why, whylen, "%s", eph.status);
    }
    fprintf(stderr, "executord: ephemeral: %s\n", eph.status);
    /* Compile the runner now rather than in the first job (see runner_program);
     * with a rootfs the interpreter inside is another one and gets the source. */
    if (!eph.rt.rootfs[0])
        (void)runner_program(eph.rt.python);
    proc_set_shutting_down(false);
    eph.ready = true;
    return 0;
}

static void fill_mnt_options(mnt_options *mo, const sandbox_spec *spec)
{
    memset(mo, 0, sizeof *mo);
    mo->rootfs = eph.rt.rootfs;
    mo->base = eph.base;
    mo->work_source = NULL; /* private tmpfs: a disk fill never reaches the host */
    mo->tmp_bytes = eph.tmp_bytes;
    mo->shm_bytes = eph.shm_bytes;
    mo->work_bytes = eph.work_bytes;
    mo->tmp_inodes = 16384;
    mo->inside_uid = SANDBOX_INSIDE_UID;
    mo->inside_gid = SANDBOX_INSIDE_GID;
    mo->switch_ids = true;
    mo->setup_uid = SANDBOX_INSIDE_ROOT;
    mo->setup_gid = SANDBOX_INSIDE_ROOT;
    mo->proc_read_only = true;
}

static void setup_failed(sandbox_outcome *out, const char *prefix, const char *detail)
{
    out->verdict = SANDBOX_SETUP_ERROR;
    sandbox_outcome_set_error(out, "SandboxError", "%s%s", prefix, detail);
}

static int eph_run(const sandbox_spec *spec, const sandbox_io *io, sandbox_outcome *out)
{
    sandbox_outcome_init(out);
    if (!eph.ready) {
        setup_failed(out, "", "ephemeral backend is not initialised");
        return 0;
    }
    char err[1024];
    char anon[64];
    const char *job_id = spec->job_id;
    if (!job_id || !*job_id) {
        snprintf(anon, sizeof anon, "00000000-0000-0000-0000-%012x", atomic_fetch_add(&anon_counter, 1) + 1);
        job_id = anon;
    }
    atomic_fetch_add(&active_jobs, 1);
    eph_job j;
    memset(&j, 0, sizeof j);
    j.seccomp = &eph.seccomp;
    j.network = spec->allow_network;
    j.packages = &spec->packages;
    j.egress_only = spec->egress_only;
    jobnet_init(&j.net);
    if (sandbox_userns_acquire(&j.host_id) != 0) {
        setup_failed(out, "sandbox uid slot: ", strerror(errno));
        atomic_fetch_sub(&active_jobs, 1);
        return 0;
    }
    mnt_options mo;
    fill_mnt_options(&mo, spec);
    if (sandbox_mnt_plan_build(&j.plan, &mo, err, sizeof err) != 0) {
        setup_failed(out, "", err);
        goto release;
    }
    if (eph.cgroups && sandbox_cgroup_job_create(job_id, &spec->limits, &j.cg, err, sizeof err) != 0) {
        setup_failed(out, "", err);
        goto release;
    }
    proc_job pj = {
        .spec = spec,
        .io = io,
        .python = eph.rt.python,
        .cwd = "/work",
        .home = "/work",
        .runner_from_source = eph.rt.rootfs[0] != '\0', /* another interpreter inside */
        .hooks = {
            .clone_flags = policy_namespaces(),
            .ctx = &j,
            .parent_setup = hook_parent_setup,
            .parent_attach = hook_parent_attach,
            /* Only when there is something to mount: it waits for the root's assembly,
             * which the attach step otherwise overlaps. */
            .parent_root_ready = pkgmount_wanted(&spec->packages) ? hook_parent_root_ready : NULL,
            .child_setup = hook_child_setup,
            .child_attached = hook_child_attached,
            /* cgroup v2: born inside, no migration at all. */
            .clone_into_cgroup = sandbox_cgroup_job_clone_fd(j.cg) >= 0,
            .cgroup_fd = sandbox_cgroup_job_clone_fd(j.cg),
            .child_pre_exec = hook_child_pre_exec,
        },
        .cg = j.cg,
        .sandboxed = true,
    };
    proc_run_job(&pj, out);

release:
    jobnet_end(&j.net);
    if (j.cg && sandbox_cgroup_job_destroy(j.cg, err, sizeof err) != 0)
        fprintf(stderr, "executord: ephemeral: job %s: removing cgroup: %s\n", job_id, err);
    sandbox_mnt_plan_free(&j.plan);
    /* The PID namespace is gone (init was reaped), so the host uid is free again. */
    sandbox_userns_release(j.host_id);
    atomic_fetch_sub(&active_jobs, 1);
    return 0;
}

static void eph_shutdown(void)
{
    proc_set_shutting_down(true);
    /* Running jobs are being killed; let them remove their cgroups first (bounded: a
     * parent left behind is cleaned up at the next start). */
    for (int i = 0; i < 1000 && atomic_load(&active_jobs) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (eph.cgroups)
        sandbox_cgroup_shutdown();
    eph.cgroups = false;
    sandbox_seccomp_free(&eph.seccomp);
    eph.ready = false;
}

const sandbox_backend sandbox_backend_ephemeral = {
    .name = "ephemeral",
    .description = "a complete sandbox built for the job and destroyed after it",
    .init = eph_init,
    .run = eph_run,
    .shutdown = eph_shutdown,
};
