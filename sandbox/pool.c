/* The `pool` backend (see pool.h): the zygote table (start, health, recycling), the
 * warm-sandbox queue and its refill threads, and running one job in a warm sandbox.
 * A zygote itself is pool_zygote.c, one warm sandbox pool_warm.c, one job pool_job.c.
 * The per-job isolation is built inside the zygote's fork (runner.py, warm mode); the
 * service side owns the host-side parts: uid maps, the cgroup and its limits, seccomp
 * program, supervision, and the kill. In the warm sandbox a job takes, its packages are
 * mounted (pkgmount.h) and a network-enabled job is connected (jobnet.h) before its
 * spec is sent. */
#include "sandbox/pool.h"

#include <errno.h>
#include <fcntl.h>

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/cgroup.h"
#include "sandbox/ephemeral.h"
#include "sandbox/jobnet.h"
#include "sandbox/mnt.h"
#include "sandbox/pkgmount.h"
#include "sandbox/pool_job.h"
#include "sandbox/pool_warm.h"
#include "sandbox/pool_zygote.h"
#include "sandbox/runtime.h"
#include "sandbox/seccomp.h"
#include "sandbox/userns.h"
#include "sandbox/workdir.h"

enum {
    MAX_ZYGOTES = 4,          /* one current + retiring ones still running jobs */
    BLOCKS = 32,              /* uid blocks of the range, shared by the instances of a host */
    BROKEN_AFTER = 5,         /* consecutive failures: jobs stop waiting for warm ones */
};

typedef pool_zygote zygote;

static struct {
    bool ready;
    sandbox_runtime rt; /* the root and interpreter (runtime.c) */
    char base[PATH_MAX];
    struct sock_fprog seccomp;
    mnt_plan zplan;
    bool cgroups, own_cgroups;
    uint64_t tmp_bytes, shm_bytes, work_bytes;
    unsigned size, recycle_jobs, recycle_seconds, refill_threads;
    bool cold_when_empty;
    uid_t uid_base;
    char why[512];
} pl;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static zygote zygotes[MAX_ZYGOTES];
static pool_warm *ready_head, *ready_tail, *garbage;
static unsigned n_ready, n_preparing, n_busy;
static uint64_t n_started, n_recycled, n_failures, n_cold, consecutive_failures;
static char last_failure[700];
static bool stopping;
static pthread_t manager_thread, refill_thread[8];
static unsigned n_refill;
static int lock_dirfd = -1;   /* uid-block flocks shared with other instances; -1 = off */
static int stop_efd = -1;

/* Called with mu held. */
static void note_failure(const char *what)
{
    n_failures++;
    consecutive_failures++;
    snprintf(last_failure, sizeof last_failure, "%s", what);
    fprintf(stderr, "executord: pool: %s\n", what);
}

/* A block of the uid range no zygote of ours uses and no other instance holds (flock in
 * the lock folder ephemeral uses for its slots). Called with mu held. Returns the block
 * and *lock_fd (-1 when coordination is off), or -1 when every block is taken. */
static int take_block(int *lock_fd)
{
    for (unsigned b = 0; b < BLOCKS; b++) {
        bool ours = false;
        for (int i = 0; i < MAX_ZYGOTES; i++)
            ours = ours || (zygotes[i].used && zygotes[i].block == b);
        if (ours)
            continue;
        *lock_fd = -1;
        if (lock_dirfd < 0)
            return (int)b;
        char name[64];
        snprintf(name, sizeof name, "pool-%u.lock", (unsigned)(pl.uid_base + b * POOL_BLOCK_UIDS));
        int fd = openat(lock_dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        *lock_fd = fd;
        return (int)b;
    }
    return -1;
}

static uid_t block_base(unsigned block)
{
    return pl.uid_base + block * POOL_BLOCK_UIDS;
}

static int start_zygote(zygote *z, unsigned block, int lock_fd, char *err, size_t errlen)
{
    pool_zygote_setup s = {.python = pl.rt.python, .plan = &pl.zplan, .seccomp = &pl.seccomp};
    return pool_zygote_start(z, &s, block, block_base(block), lock_fd, err, errlen);
}

static pool_warm *prepare_warm(zygote *z, unsigned slot, int ctl, char *err, size_t errlen)
{
    pool_warm_setup s = {.cgroups = pl.cgroups, .tmp_bytes = pl.tmp_bytes, .shm_bytes = pl.shm_bytes,
                         .work_bytes = pl.work_bytes};
    bool broken = false;
    pool_warm *w = pool_warm_prepare(z, slot, ctl, &s, &broken, err, errlen);
    if (broken) {
        pthread_mutex_lock(&mu);
        z->dead = true; /* the manager replaces it */
        pthread_mutex_unlock(&mu);
    }
    return w;
}

/* Destroys a warm sandbox and gives its slot back to its zygote. */
static void warm_free(pool_warm *w)
{
    if (!w)
        return;
    zygote *z = w->z;
    unsigned slot = w->slot;
    pool_warm_destroy(w);
    pthread_mutex_lock(&mu);
    if (z) {
        z->slot_used[slot] = 0;
        z->inflight--;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Called with mu held: sleeps until something changes (a broadcast on cv) or ms pass. */
static void wait_for_news_ms(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_cond_timedwait(&cv, &mu, &ts);
}

/* Called with mu held: destroys one used or broken warm sandbox, outside the lock.
 * Returns false when there was none. */
static bool free_one_garbage(void)
{
    if (!garbage)
        return false;
    pool_warm *w = garbage;
    garbage = w->next;
    pthread_mutex_unlock(&mu);
    warm_free(w);
    pthread_mutex_lock(&mu);
    return true;
}

/* ---- background threads ------------------------------------------------------------- */

static zygote *current_zygote(void)
{
    for (int i = 0; i < MAX_ZYGOTES; i++)
        if (zygotes[i].used && !zygotes[i].retiring && !zygotes[i].dead)
            return &zygotes[i];
    return NULL;
}

/* Background work (forks of the zygote, cgroup set-up and removal) must not slow the
 * jobs running meanwhile: these threads, and the zygotes they start, run at nice 10. */
static void lower_priority(void)
{
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        fprintf(stderr, "executord: pool: setpriority: %s\n", strerror(errno));
}

static void *refill_main(void *arg)
{
    (void)arg;
    lower_priority();
    pthread_mutex_lock(&mu);
    while (!stopping) {
        if (free_one_garbage())
            continue;
        zygote *z = current_zygote();
        if (!z || n_ready + n_preparing >= pl.size || z->inflight >= POOL_SLOTS) {
            wait_for_news_ms(200);
            continue;
        }
        unsigned slot = z->next_slot;
        while (z->slot_used[slot])
            slot = (slot + 1) % POOL_SLOTS;
        z->slot_used[slot] = 1;
        z->next_slot = (slot + 1) % POOL_SLOTS; /* a just-freed uid rests a while */
        z->inflight++;
        z->forks++;
        n_preparing++;
        int ctl = dup(z->ctl);
        pthread_mutex_unlock(&mu);
        char err[600];
        pool_warm *w = ctl >= 0 ? prepare_warm(z, slot, ctl, err, sizeof err) : NULL;
        if (ctl < 0)
            snprintf(err, sizeof err, "dup zygote socket: %s", strerror(errno));
        else
            close(ctl);
        if (!w) {
            pthread_mutex_lock(&mu);
            z->slot_used[slot] = 0;
            z->inflight--;
            pthread_mutex_unlock(&mu);
        }
        pthread_mutex_lock(&mu);
        n_preparing--;
        if (w) {
            w->next = NULL;
            if (ready_tail)
                ready_tail->next = w;
            else
                ready_head = w;
            ready_tail = w;
            n_ready++;
            n_started++;
            consecutive_failures = 0;
        } else if (!stopping) {
            note_failure(err);
        }
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Called with mu held: moves every ready sandbox of z to the garbage list. */
static void drop_ready_of(zygote *z)
{
    pool_warm **pp = &ready_head;
    ready_tail = NULL;
    while (*pp) {
        pool_warm *w = *pp;
        if (w->z == z) {
            *pp = w->next;
            w->next = garbage;
            garbage = w;
            n_ready--;
        } else {
            ready_tail = w;
            pp = &w->next;
        }
    }
}

static void *manager_main(void *arg)
{
    (void)arg;
    lower_priority();
    unsigned backoff_ms = 100;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        int64_t now = pool_now_ns();
        for (int i = 0; i < MAX_ZYGOTES; i++) {
            zygote *z = &zygotes[i];
            if (!z->used)
                continue;
            if (!z->dead && pool_wait_readable(z->pidfd, 0) != 0) {
                z->dead = true;
                if (!z->retiring)
                    note_failure("zygote died; replacing it");
            }
            if (!z->retiring && !z->dead &&
                ((pl.recycle_jobs && z->forks >= pl.recycle_jobs) ||
                 (pl.recycle_seconds && now - z->born_ns >= (int64_t)pl.recycle_seconds * 1000000000LL))) {
                z->retiring = true;
                n_recycled++;
            }
            if (z->retiring || z->dead)
                drop_ready_of(z);
            if ((z->retiring || z->dead) && z->inflight == 0) {
                pthread_mutex_unlock(&mu);
                pool_zygote_kill(z);
                pthread_mutex_lock(&mu);
                z->used = false;
            } else if (z->dead && z->pid > 0) {
                /* A dead or wedged zygote takes its sandboxes with it (its PID
                 * namespace); kill it now so busy jobs end instead of hanging. */
                int pidfd = z->pidfd;
                if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
                    fprintf(stderr, "executord: pool: kill zygote: %s\n", strerror(errno));
            }
        }
        if (!current_zygote()) {
            int free_index = -1;
            for (int i = 0; i < MAX_ZYGOTES && free_index < 0; i++)
                if (!zygotes[i].used)
                    free_index = i;
            int lock_fd = -1;
            int block = free_index >= 0 ? take_block(&lock_fd) : -1;
            if (free_index >= 0 && block < 0) {
                note_failure("every uid block of the pool's range is in use (EXECUTORD_POOL_UID_BASE)");
                free_index = -1;
            }
            if (free_index >= 0) {
                zygote nz;
                char err[600];
                /* Reserve the block until the zygote is in the table. */
                zygotes[free_index].used = true;
                zygotes[free_index].dead = true;
                zygotes[free_index].block = (unsigned)block;
                zygotes[free_index].pid = -1;
                zygotes[free_index].pidfd = zygotes[free_index].ctl = zygotes[free_index].lock_fd = -1;
                zygotes[free_index].inflight = 1; /* keeps the manager's loop off it */
                pthread_mutex_unlock(&mu);
                int rc = start_zygote(&nz, (unsigned)block, lock_fd, err, sizeof err);
                pthread_mutex_lock(&mu);
                zygotes[free_index].used = false;
                zygotes[free_index].inflight = 0;
                if (rc == 0) {
                    zygotes[free_index] = nz;
                    backoff_ms = 100;
                    pthread_cond_broadcast(&cv);
                } else {
                    note_failure(err);
                    pthread_cond_broadcast(&cv);
                    struct timespec ts = {(time_t)(backoff_ms / 1000), (long)(backoff_ms % 1000) * 1000000};
                    pthread_mutex_unlock(&mu);
                    nanosleep(&ts, NULL);
                    pthread_mutex_lock(&mu);
                    backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                }
                continue;
            }
        }
        if (free_one_garbage())
            continue;
        wait_for_news_ms(100);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* ---- taking and giving back --------------------------------------------------------- */

/* A ready warm sandbox, or NULL: *cancelled when cancel_fd fired while waiting, else the
 * job should start cold. */
static pool_warm *take_warm(int cancel_fd, bool *cancelled)
{
    *cancelled = false;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (ready_head) {
            pool_warm *w = ready_head;
            ready_head = w->next;
            if (!ready_head)
                ready_tail = NULL;
            n_ready--;
            pthread_cond_broadcast(&cv); /* refill */
            if (pool_warm_alive(w)) {
                n_busy++;
                pthread_mutex_unlock(&mu);
                return w;
            }
            note_failure("a warm sandbox died while waiting; replaced");
            w->next = garbage;
            garbage = w;
        }
        bool broken = consecutive_failures >= BROKEN_AFTER && !current_zygote();
        if (pl.cold_when_empty || broken || stopping) {
            pthread_mutex_unlock(&mu);
            return NULL;
        }
        wait_for_news_ms(50);
        if (cancel_fd >= 0 && pool_wait_readable(cancel_fd, 0) > 0) {
            *cancelled = true;
            pthread_mutex_unlock(&mu);
            return NULL;
        }
    }
}

static void give_back(pool_warm *w)
{
    pthread_mutex_lock(&mu);
    n_busy--;
    w->next = garbage;
    garbage = w;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- the backend -------------------------------------------------------------------- */

static int pool_init(const sandbox_config *cfg, char *why, size_t whylen)
{
    pl.ready = false;
    if (!cfg) {
        snprintf(why, whylen, "no configuration");
        return -1;
    }
    const sandbox_isolation_config *o = &cfg->sandbox;
    const sandbox_pool_config *po = &cfg->pool;
    if (sandbox_runtime_resolve(cfg, &pl.rt, why, whylen) != 0)
        return -1;
    /* Default: one warm sandbox per CPU, which is also the default number of workers. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pl.size = po->size ? po->size : cpus > 0 ? (unsigned)cpus : 2;
    if (pl.size == 0 || pl.size > POOL_SLOTS / 2)
        pl.size = pl.size ? POOL_SLOTS / 2 : 1;
    pl.cold_when_empty = po->cold_when_empty;
    pl.recycle_jobs = po->recycle_jobs ? po->recycle_jobs : SANDBOX_DEFAULT_POOL_RECYCLE_JOBS;
    pl.recycle_seconds = po->recycle_seconds ? po->recycle_seconds : SANDBOX_DEFAULT_POOL_RECYCLE_SECONDS;
    pl.refill_threads = po->refill_threads ? po->refill_threads : SANDBOX_DEFAULT_POOL_REFILL_THREADS;
    if (pl.refill_threads > 8)
        pl.refill_threads = 8;
    pl.uid_base = po->uid_base ? po->uid_base : SANDBOX_DEFAULT_POOL_UID_BASE;
    if (pl.uid_base == 0 || (uint64_t)pl.uid_base + BLOCKS * POOL_BLOCK_UIDS >= UINT32_MAX - 1) {
        snprintf(why, whylen, "invalid pool uid base %u", (unsigned)pl.uid_base);
        return -1;
    }
    sandbox_tmpfs_bytes(o, &pl.tmp_bytes, &pl.shm_bytes, &pl.work_bytes);
    if (workdir_prepare_base(cfg->work_root, ".pool-root", pl.base, sizeof pl.base, why, whylen) != 0)
        return -1;
    sandbox_seccomp_free(&pl.seccomp);
    if (sandbox_seccomp_build(&pl.seccomp, why, whylen) != 0)
        return -1;
    mnt_options mo;
    memset(&mo, 0, sizeof mo);
    mo.rootfs = pl.rt.rootfs;
    mo.base = pl.base;
    mo.tmp_bytes = mo.shm_bytes = mo.work_bytes = 1 << 20; /* covered by each job's own */
    mo.tmp_inodes = 64;
    mo.inside_uid = SANDBOX_INSIDE_UID;
    mo.inside_gid = SANDBOX_INSIDE_GID;
    mo.switch_ids = true;
    mo.setup_uid = SANDBOX_INSIDE_ROOT;
    mo.setup_gid = SANDBOX_INSIDE_ROOT;
    sandbox_mnt_plan_free(&pl.zplan);
    if (sandbox_mnt_plan_build(&pl.zplan, &mo, why, whylen) != 0)
        return -1;
    /* cgroups are shared with `ephemeral` (one parent per instance): initialise them only
     * when it has not (it is registered first). */
    pl.own_cgroups = false;
    char cgwhy[1024] = "";
    if (sandbox_cgroup_mode() == CGROUP_NONE) {
        cgroup_options co = {
            .root = o->cgroup_root,
            .cpu_quota_percent = o->cpu_quota_percent ? o->cpu_quota_percent : SANDBOX_DEFAULT_CPU_PERCENT,
        };
        pl.own_cgroups = sandbox_cgroup_init(&co, cgwhy, sizeof cgwhy) == 0;
    }
    pl.cgroups = sandbox_cgroup_mode() != CGROUP_NONE;
    pthread_mutex_lock(&mu);
    memset(zygotes, 0, sizeof zygotes);
    ready_head = ready_tail = garbage = NULL;
    n_ready = n_preparing = n_busy = 0;
    n_started = n_recycled = n_failures = n_cold = consecutive_failures = 0;
    last_failure[0] = '\0';
    stopping = false;
    pthread_mutex_unlock(&mu);
    if (stop_efd < 0 && (stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(why, whylen, "eventfd: %s", strerror(errno));
        return -1;
    }
    /* Instances on one host share the range: coordinate through flocks, in the folder
     * ephemeral uses for its uid slots. */
    if (lock_dirfd >= 0)
        close(lock_dirfd);
    lock_dirfd = -1;
    const char *locks = o->uid_lock_dir ? o->uid_lock_dir : SANDBOX_DEFAULT_UID_LOCK_DIR;
    if (*locks) {
        if (mkdir(locks, 0700) != 0 && errno != EEXIST) {
            snprintf(why, whylen, "mkdir %s: %s", locks, strerror(errno));
            return -1;
        }
        struct stat st;
        lock_dirfd = open(locks, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (lock_dirfd < 0 || fstat(lock_dirfd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
            snprintf(why, whylen, "%s: cannot open, or not ours, or writable by others", locks);
            if (lock_dirfd >= 0)
                close(lock_dirfd);
            lock_dirfd = -1;
            return -1;
        }
    }
    /* Prove the whole chain once, so a broken pool is reported at start-up. */
    char err[600];
    zygote z;
    int lock_fd = -1;
    pthread_mutex_lock(&mu);
    int block = take_block(&lock_fd);
    pthread_mutex_unlock(&mu);
    if (block < 0) {
        snprintf(why, whylen, "every uid block of the pool's range is held by other instances");
        return -1;
    }
    if (start_zygote(&z, (unsigned)block, lock_fd, err, sizeof err) != 0) {
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    z.slot_used[0] = 1;
    z.inflight = 1;
    pool_warm *w = prepare_warm(&z, 0, z.ctl, err, sizeof err);
    if (!w) {
        pool_zygote_kill(&z);
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    w->z = NULL;
    warm_free(w);
    pool_zygote_kill(&z);
    if (pthread_create(&manager_thread, NULL, manager_main, NULL) != 0) {
        snprintf(why, whylen, "pthread_create: %s", strerror(errno));
        return -1;
    }
    n_refill = 0;
    for (unsigned i = 0; i < pl.refill_threads; i++)
        if (pthread_create(&refill_thread[n_refill], NULL, refill_main, NULL) == 0)
            n_refill++;
    pl.ready = true;
    pl.why[0] = '\0';
    if (!pl.cgroups) {
        snprintf(pl.why, sizeof pl.why, "rlimits only, %s", cgwhy[0] ? cgwhy : sandbox_cgroup_describe());
        snprintf(why, whylen, "%s", pl.why);
    }
    fprintf(stderr, "executord: pool: %u warm sandboxes, %s\n", pl.size,
            pl.cgroups ? sandbox_cgroup_describe() : pl.why);
    return 0;
}

static void pool_run_once(const sandbox_spec *spec, const sandbox_io *io, sandbox_outcome *out, bool retry,
                          bool *lost);

static int pool_run(const sandbox_spec *spec, const sandbox_io *io, sandbox_outcome *out)
{
    sandbox_outcome_init(out);
    if (!pl.ready) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "pool backend is not initialised");
        return 0;
    }
    /* A zygote that dies takes every warm sandbox it prepared with it, each noticed only
     * when a job takes it: as many attempts as there can be such sandboxes, plus one. */
    for (unsigned attempt = 0;; attempt++) {
        bool lost = false, last = attempt >= pl.size;
        pool_run_once(spec, io, out, last, &lost);
        if (!lost || last)
            return 0;
        /* The sandbox died under the job before it ran (its zygote was killed, say):
         * nothing was shown, so run it again in another one. */
        sandbox_outcome_free(out);
        sandbox_outcome_init(out);
    }
}

static void pool_run_once(const sandbox_spec *spec, const sandbox_io *io, sandbox_outcome *out, bool retry,
                          bool *lost)
{
    bool cancelled;
    pool_warm *w = take_warm(spec->cancel_fd, &cancelled);
    if (cancelled) {
        out->verdict = SANDBOX_CANCELLED;
        sandbox_outcome_set_error(out, "Cancelled", "Job cancelled");
        return;
    }
    if (!w) {
        pthread_mutex_lock(&mu);
        n_cold++;
        pthread_mutex_unlock(&mu);
        sandbox_backend_ephemeral.run(spec, io, out);
        return;
    }
    /* Warm sandboxes are prepared at a low priority; the job runs at the normal one
     * (its two host uids are its own: exactly its init and its job). */
    for (unsigned id = 1; id <= 2; id++)
        if (setpriority(PRIO_USER, w->z->base + id + 2 * w->slot, 0) != 0)
            fprintf(stderr, "executord: pool: setpriority: %s\n", strerror(errno));
    /* The job process waits for its spec: nothing of the script runs before the policy
     * is in place and the stack is ready (bench: slirp4netns on a warm sandbox costs
     * less than starting the job cold). */
    jobnet net;
    jobnet_init(&net);
    char err[1024];
    /* Its packages too, in its own mount namespace (a copy of the zygote's: nothing
     * reaches the zygote or the next sandbox, and this one is never reused). */
    if (pkgmount_attach(&spec->packages, w->host_pid, w->pidfd, err, sizeof err) != 0 ||
        (spec->allow_network && (jobnet_begin(&net, w->host_pid, w->pidfd, spec->egress_only, err, sizeof err) != 0 ||
                                 jobnet_finish(&net, err, sizeof err) != 0))) {
        jobnet_end(&net);
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "%s", err);
        give_back(w); /* destroyed, never reused */
        return;
    }
    pool_job pj = {
        .spec = spec,
        .io = io,
        .cg = w->cg,
        .out_r = w->out_r,
        .err_r = w->err_r,
        .spec_fd = w->spec_fd,
        .result_r = w->result_r,
        .status_fd = w->status_fd,
        .pidfd = w->pidfd,
        .stop_fd = stop_efd,
        .lost = lost,
    };
    pool_job_run(&pj, out);
    jobnet_end(&net);
    /* pool_job_run closed what it consumed */
    w->out_r = w->err_r = w->spec_fd = w->result_r = -1;
    if (*lost) {
        pthread_mutex_lock(&mu);
        note_failure(retry ? "warm sandboxes kept dying under a job; job failed" : "a warm sandbox died under a job; retrying it");
        pthread_mutex_unlock(&mu);
    }
    give_back(w);
}

static void pool_shutdown(void)
{
    if (!pl.ready)
        return;
    uint64_t one = 1;
    if (write(stop_efd, &one, sizeof one) < 0)
        fprintf(stderr, "executord: pool: eventfd write: %s\n", strerror(errno));
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&mu);
        unsigned busy = n_busy;
        pthread_mutex_unlock(&mu);
        if (!busy)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    pthread_join(manager_thread, NULL);
    for (unsigned i = 0; i < n_refill; i++)
        pthread_join(refill_thread[i], NULL);
    pthread_mutex_lock(&mu);
    pool_warm *list = NULL;
    while (ready_head) {
        pool_warm *w = ready_head;
        ready_head = w->next;
        w->next = list;
        list = w;
    }
    ready_tail = NULL;
    while (garbage) {
        pool_warm *w = garbage;
        garbage = w->next;
        w->next = list;
        list = w;
    }
    n_ready = 0;
    pthread_mutex_unlock(&mu);
    while (list) {
        pool_warm *w = list;
        list = w->next;
        warm_free(w);
    }
    for (int i = 0; i < MAX_ZYGOTES; i++) {
        if (zygotes[i].used)
            pool_zygote_kill(&zygotes[i]);
        zygotes[i].used = false;
    }
    if (pl.own_cgroups)
        sandbox_cgroup_shutdown();
    sandbox_seccomp_free(&pl.seccomp);
    sandbox_mnt_plan_free(&pl.zplan);
    if (read(stop_efd, &one, sizeof one) < 0 && errno != EAGAIN)
        fprintf(stderr, "executord: pool: eventfd read: %s\n", strerror(errno));
    pl.ready = false;
}

int pool_status_json(char *buf, size_t len)
{
    pthread_mutex_lock(&mu);
    unsigned zs = 0;
    for (int i = 0; i < MAX_ZYGOTES; i++)
        zs += zygotes[i].used && !zygotes[i].dead;
    json_t *o = json_pack("{s:b, s:s?, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:i, s:s?, s:s?}", "available",
                          pl.ready, "reason", pl.ready ? NULL : "not initialised", "size", (int)pl.size,
                          "ready", (int)n_ready, "busy", (int)n_busy, "started", (json_int_t)n_started,
                          "recycled", (json_int_t)n_recycled, "failures", (json_int_t)n_failures,
                          "cold_starts", (json_int_t)n_cold, "zygotes", (int)zs, "last_failure",
                          last_failure[0] ? last_failure : NULL, "caveat", pl.why[0] ? pl.why : NULL);
    pthread_mutex_unlock(&mu);
    if (!o)
        return -1;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    size_t n = strlen(s);
    int rc = -1;
    if (n < len) {
        memcpy(buf, s, n + 1);
        rc = (int)n;
    }
    free(s);
    return rc;
}

const sandbox_backend sandbox_backend_pool = {
    .name = "pool",
    .description = "the ephemeral sandbox, prepared ahead of demand from a pre-imported zygote",
    .builds_on = "ephemeral",
    .init = pool_init,
    .run = pool_run,
    .shutdown = pool_shutdown,
    .status_json = pool_status_json,
};
