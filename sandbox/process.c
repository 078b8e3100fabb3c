/* Spawning and supervising one job's process tree (see process.h for its shape): the
 * clone into namespaces, the async-signal-safe child side, the poll loop that feeds the
 * spec, collects output and the result under their caps, enforces timeout/cancel/
 * shutdown by killing the namespace's init, and the mapping of all that to an outcome. */
#include "sandbox/process.h"
#include "sandbox/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/sched.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/oom.h"
#include "sandbox/policy.h"
#include "sandbox/pump.h"
#include "sandbox/result.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The service asks init to kill the tree with this signal (init then kills and reaps
 * every process, so their usage is accounted); SIGKILL of init is the fallback. */
#define SIG_KILL_REQUEST SIGUSR1
#define KILL_GRACE_NS (2 * 1000000000LL)

/* Fixed fd numbers inside the tree. 0-4 are the runner's protocol fds. */
enum { FD_RUNNER_COUNT = 5, FD_STATUS = 5, FD_SYNC = 6, FD_INIT_COUNT = 7 };

/* What init tells the service on the status pipe. Fixed size below PIPE_BUF, so each
 * write is atomic and a record is never torn. */
enum { REC_SETUP_ERROR = 1, REC_EXIT = 2 };
typedef struct proc_record {
    int kind;
    int err;          /* errno, REC_SETUP_ERROR */
    int status;       /* runner's wait status, REC_EXIT */
    struct rusage ru; /* init's RUSAGE_CHILDREN (runner and reaped orphans), REC_EXIT */
    char step[160];
} proc_record;

/* Everything the child side needs, prepared before the clone (the child may not
 * allocate). */
typedef struct child_plan {
    int fds[FD_INIT_COUNT]; /* service-side fd numbers to place at 0..6 */
    const char *python;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    rlimit_set rl;
    const proc_hooks *hooks;
    bool two_phase; /* a second byte on FD_SYNC releases the runner (parent_attach) */
} child_plan;

/* ---- service-wide shutdown switch ---------------------------------------------- */

static pthread_once_t shutdown_once = PTHREAD_ONCE_INIT;
static int shutdown_efd = -1;
static atomic_bool shutting_down;

static void shutdown_fd_init(void)
{
    shutdown_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

void proc_set_shutting_down(bool on)
{
    pthread_once(&shutdown_once, shutdown_fd_init);
    atomic_store(&shutting_down, on);
    if (shutdown_efd < 0)
        return;
    uint64_t v = 1;
    if (on) {
        /* The counter stays non-zero, so every job's poll sees it until reset. */
        if (write(shutdown_efd, &v, sizeof v) < 0)
            fprintf(stderr, "executord: sandbox: eventfd write: %s\n", strerror(errno));
    } else if (read(shutdown_efd, &v, sizeof v) < 0 && errno != EAGAIN) {
        fprintf(stderr, "executord: sandbox: eventfd read: %s\n", strerror(errno));
    }
}

/* ---- small helpers --------------------------------------------------------------- */

const char *proc_signal_name(int sig)
{
    static __thread char buf[32];
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, sizeof buf, "SIG%s", abbrev);
    else
        snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* The variables every job's environment starts from; HOME is added per job. */
static const char env_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
static const char env_lang[] = "LANG=C.UTF-8";

/* Whether the job's own variables set base's name ("NAME=..."), replacing it. */
static bool user_env_sets(const char *const *user_env, const char *base)
{
    size_t namelen = strcspn(base, "=") + 1; /* "NAME=" */
    for (size_t i = 0; user_env && user_env[i]; i++)
        if (strncmp(user_env[i], base, namelen) == 0)
            return true;
    return false;
}

/* Appends one "NAME=VALUE" to a JSON array; jansson refuses text that is not UTF-8. */
static int env_append(json_t *env, const char *item)
{
    json_t *s = json_string(item);
    if (!s) {
        errno = EINVAL;
        return -1;
    }
    if (json_array_append_new(env, s) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* The job's environment as a JSON array of "NAME=VALUE" (see proc_build_spec). */
static json_t *env_json(const char *home, const char *const *user_env)
{
    json_t *env = json_array();
    char *home_var = NULL;
    if (!env || asprintf(&home_var, "HOME=%s", home ? home : "/") < 0) {
        home_var = NULL;
        errno = ENOMEM;
        goto fail;
    }
    const char *base[] = {env_path, home_var, env_lang};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        if (!user_env_sets(user_env, base[i]) && env_append(env, base[i]) != 0)
            goto fail;
    for (size_t i = 0; user_env && user_env[i]; i++)
        if (env_append(env, user_env[i]) != 0)
            goto fail;
    free(home_var);
    return env;
fail:
    free(home_var);
    json_decref(env);
    return NULL;
}

static json_t *rlimits_json(const rlimit_set *rl)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < rl->count; i++) {
        const struct rlimit *r = &rl->items[i].lim;
        json_t *item = json_pack("[i, I, I]", rl->items[i].resource,
                                 r->rlim_cur == RLIM_INFINITY ? (json_int_t)-1 : (json_int_t)r->rlim_cur,
                                 r->rlim_max == RLIM_INFINITY ? (json_int_t)-1 : (json_int_t)r->rlim_max);
        if (!item || json_array_append_new(arr, item) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

char *proc_build_spec(const sandbox_spec *s, const char *home, const rlimit_set *rl, size_t *len)
{
    json_t *script = json_string(s->script ? s->script : "");
    if (!script) {
        errno = EINVAL; /* not UTF-8 (allocation failures aside) */
        return NULL;
    }
    json_t *env = env_json(home, s->env);
    if (!env) {
        json_decref(script);
        return NULL;
    }
    json_t *rls = NULL;
    if (rl && !(rls = rlimits_json(rl))) {
        json_decref(script);
        json_decref(env);
        errno = ENOMEM;
        return NULL;
    }
    json_t *limits = sandbox_limits_runner_json(&s->limits);
    /* "o" steals script, limits and env, also when the pack fails ("o" of NULL fails it). */
    json_t *doc = json_pack("{s:o, s:o, s:o}", "script", script, "limits", limits, "env", env);
    if (rls && (!doc || json_object_set_new(doc, "rlimits", rls) != 0)) {
        if (!doc)
            json_decref(rls); /* set_new frees it itself on failure */
        json_decref(doc);
        doc = NULL;
    }
    char *rest = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!rest) {
        errno = ENOMEM;
        return NULL;
    }
    /* The inputs are spliced in as the JSON text the core already validated, rather than
     * parsed and encoded again (they may be megabytes): {"inputs":<text>, + the rest. */
    static const char head[] = "{\"inputs\":";
    const char *inputs = s->inputs_json && *s->inputs_json ? s->inputs_json : "{}";
    size_t ilen = strlen(inputs), rlen = strlen(rest); /* rest is "{...}", never "{}" */
    char *text = malloc(sizeof head - 1 + ilen + rlen + 1);
    if (!text) {
        free(rest);
        errno = ENOMEM;
        return NULL;
    }
    size_t n = 0;
    memcpy(text + n, head, sizeof head - 1);
    n += sizeof head - 1;
    memcpy(text + n, inputs, ilen);
    n += ilen;
    text[n++] = ',';
    memcpy(text + n, rest + 1, rlen); /* with its NUL */
    n += rlen - 1;
    free(rest);
    *len = n;
    return text;
}

int proc_write_id_maps(pid_t pid, uid_t outside_uid, gid_t outside_gid, char *err,
                       size_t errlen)
{
    char uid_map[32], gid_map[32];
    snprintf(uid_map, sizeof uid_map, "0 %u 1\n", (unsigned)outside_uid);
    snprintf(gid_map, sizeof gid_map, "0 %u 1\n", (unsigned)outside_gid);
    return sandbox_userns_write_map_text(pid, uid_map, gid_map, err, errlen);
}

/* ---- the runner, compiled once ------------------------------------------------ */

/* Compiling the runner's ~450 lines costs every job 2.5-4 ms of its start-up (a bare
 * interpreter start is ~15 ms). So each interpreter compiles it once, in a helper run,
 * and jobs get a small bootstrap that unmarshals the code object instead. The cache is
 * keyed by the interpreter's path and file identity (an upgraded python is compiled
 * for again); the bootstrap still checks the bytecode magic of the interpreter it runs
 * in and refuses to go on with a clear message rather than misread the code. execve caps
 * one argument at 128 KiB: a runner too big for that keeps the plain source. */

#define RUNNER_ARG_MAX 126000
#define PRECOMPILE_OUT_MAX (1 << 20)

typedef struct runner_cache {
    char python[4096];
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    char *arg; /* NULL: precompiling failed, jobs pass the source */
} runner_cache;

static pthread_mutex_t runner_lock = PTHREAD_MUTEX_INITIALIZER;
static runner_cache runner_entries[4];
static int runner_nentries;

static const char precompile_program[] =
    "import importlib.util,marshal,sys\n"
    "src=sys.stdin.buffer.read().decode('utf-8')\n"
    "sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER+marshal.dumps(compile(src,'<string>','exec')))\n";

/* Runs python on precompile_program with the runner source on stdin; returns the
 * malloc'd output (magic + marshalled code) or NULL. */
static unsigned char *run_precompile(const char *python, size_t *outlen)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    unsigned char *buf = NULL;
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        goto fail;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        goto fail;
    if (posix_spawn_file_actions_adddup2(&fa, in[0], 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, out[1], 1) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        goto fail;
    }
    char *argv[] = {(char *)python, "-I", "-S", "-c", (char *)precompile_program, NULL};
    char *envp[] = {"LANG=C.UTF-8", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, python, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close_fd(&in[0]);
    close_fd(&out[1]);
    if (rc != 0)
        goto fail;
    /* The source (~25 KB) fits the pipe; write it all, then read the answer. */
    const char *src = sandbox_runner_source;
    size_t left = strlen(src);
    while (left > 0) {
        ssize_t n = write(in[1], src, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        src += n;
        left -= (size_t)n;
    }
    close_fd(&in[1]);
    size_t len = 0, cap = 65536;
    buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            unsigned char *nb = cap < PRECOMPILE_OUT_MAX ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(out[0], buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close_fd(&out[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!buf || left > 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || len <= 8) {
        free(buf);
        return NULL;
    }
    *outlen = len;
    return buf;
fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
    }
    return NULL;
}

static size_t put_hex(char *dst, const unsigned char *src, size_t len)
{
    static const char hexdig[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        dst[2 * i] = hexdig[src[i] >> 4];
        dst[2 * i + 1] = hexdig[src[i] & 15];
    }
    return 2 * len;
}

/* exec(unmarshalled code) once the magic (first 4 bytes of pyc) matches. */
static char *build_bootstrap(const unsigned char *pyc, size_t len)
{
    static const char head[] =
        "import sys,marshal\n"
        "if getattr(sys.modules.get('_frozen_importlib_external'),'MAGIC_NUMBER',None)!=bytes.fromhex('";
    static const char mid[] =
        "'):raise SystemExit('executord: this interpreter differs from the one that compiled the runner; "
        "restart executord')\n"
        "exec(marshal.loads(bytes.fromhex('";
    static const char tail[] = "')))\n";
    size_t size = sizeof head + sizeof mid + sizeof tail + 2 * len;
    if (size >= RUNNER_ARG_MAX)
        return NULL;
    char *s = malloc(size);
    if (!s)
        return NULL;
    size_t n = 0;
    memcpy(s + n, head, sizeof head - 1);
    n += sizeof head - 1;
    n += put_hex(s + n, pyc, 4);
    memcpy(s + n, mid, sizeof mid - 1);
    n += sizeof mid - 1;
    n += put_hex(s + n, pyc + 4, len - 4);
    memcpy(s + n, tail, sizeof tail); /* with its NUL */
    return s;
}

const char *proc_runner_program(const char *python)
{
    struct stat st;
    if (strlen(python) >= sizeof runner_entries[0].python || stat(python, &st) != 0)
        return sandbox_runner_source;
    pthread_mutex_lock(&runner_lock);
    runner_cache *e = NULL;
    for (int i = 0; i < runner_nentries && !e; i++)
        if (strcmp(runner_entries[i].python, python) == 0)
            e = &runner_entries[i];
    if (e && e->dev == st.st_dev && e->ino == st.st_ino && e->mtime.tv_sec == st.st_mtim.tv_sec &&
        e->mtime.tv_nsec == st.st_mtim.tv_nsec) {
        const char *arg = e->arg;
        pthread_mutex_unlock(&runner_lock);
        return arg ? arg : sandbox_runner_source;
    }
    if (!e && runner_nentries == (int)(sizeof runner_entries / sizeof runner_entries[0])) {
        pthread_mutex_unlock(&runner_lock);
        return sandbox_runner_source; /* more interpreters than slots: source */
    }
    if (!e) {
        e = &runner_entries[runner_nentries++];
        snprintf(e->python, sizeof e->python, "%s", python);
    }
    /* A changed interpreter file gets a new entry text; the old one is kept (never
     * freed) because jobs started before may still be about to exec with it. */
    size_t len = 0;
    unsigned char *pyc = run_precompile(python, &len);
    char *arg = pyc ? build_bootstrap(pyc, len) : NULL;
    free(pyc);
    if (!arg)
        fprintf(stderr, "executord: sandbox: could not precompile the runner with %s; jobs compile it at every start\n",
                python);
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->mtime = st.st_mtim;
    e->arg = arg;
    pthread_mutex_unlock(&runner_lock);
    return arg ? arg : sandbox_runner_source;
}

/* ---- child side: async-signal-safe only ---------------------------------------- */

static void child_report(const char *step, int err)
{
    proc_record r;
    memset(&r, 0, sizeof r);
    r.kind = REC_SETUP_ERROR;
    r.err = err;
    size_t i = 0;
    for (; step && step[i] && i < sizeof r.step - 1; i++)
        r.step[i] = step[i];
    r.step[i] = '\0';
    ssize_t n = write(FD_STATUS, &r, sizeof r);
    (void)n; /* nothing more can be done: the service sees an exit without a record */
}

static _Noreturn void child_fail(const char *step)
{
    child_report(step, errno);
    _exit(127);
}

static _Noreturn void runner_main(const child_plan *p)
{
    const char *step = NULL;
    /* The protocol fds were placed close-on-exec in init; these five must survive. */
    for (int i = 0; i < FD_RUNNER_COUNT; i++)
        if (fcntl(i, F_SETFD, 0) != 0)
            child_fail("fcntl F_SETFD runner fd");
    /* Own session and process group: job control signals from outside never reach it. */
    if (setsid() < 0)
        child_fail("setsid");
    if (p->cwd && chdir(p->cwd) != 0)
        child_fail("chdir work folder");
    if (rlimits_apply(&p->rl, &step) != 0)
        child_fail(step);
    if (p->hooks->child_pre_exec && p->hooks->child_pre_exec(p->hooks->ctx, &step) != 0)
        child_fail(step ? step : "child_pre_exec");
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        child_fail("sigprocmask");
    execve(p->python, p->argv, p->envp);
    child_fail("execve python");
}

/* pid 1 of the new PID namespace. Never execs: it runs the backend's namespace setup,
 * forks the runner, reaps every process that ends up under it, and reports the runner's
 * status; its exit then takes the whole namespace down. */
static _Noreturn void init_main(const child_plan *p)
{
    /* Handlers belong to the service; keep every signal blocked here, runner unblocks. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        (void)sigaction(sig, &sa, NULL); /* fails harmlessly for KILL/STOP/reserved */
    }
    /* Place the fds we need at 0..6 (close-on-exec) and drop every other fd inherited
     * from the service: init never execs, so CLOEXEC alone would not close them. */
    const char *placing = NULL;
    if (policy_place_fds(p->fds, FD_INIT_COUNT, 0, &placing) != 0)
        _exit(126); /* no status fd yet: the service reports the bare exit */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_fail("prctl PR_SET_PDEATHSIG");

    char go;
    ssize_t n;
    do {
        n = read(FD_SYNC, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125); /* the service gave up on this job before releasing it */
    if (!p->two_phase)
        close(FD_SYNC);

    const char *step = NULL;
    if (p->hooks->child_setup && p->hooks->child_setup(p->hooks->ctx, &step) != 0)
        child_fail(step ? step : "child_setup");
    if (p->two_phase) {
        /* The service attaches us meanwhile (parent_attach); nothing of the job may
         * start before it says so. */
        do {
            n = read(FD_SYNC, &go, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(125);
        close(FD_SYNC);
        if (p->hooks->child_attached && p->hooks->child_attached(p->hooks->ctx, &step) != 0)
            child_fail(step ? step : "child_attached");
    }
    /* A change of credentials in child_setup clears the parent-death signal: re-arm it,
     * then check the service did not die before that (its end of the status channel
     * would be closed), or this tree could outlive a killed service. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_fail("prctl PR_SET_PDEATHSIG after setup");
    struct pollfd alive = {.fd = FD_STATUS, .events = POLLOUT};
    if (poll(&alive, 1, 0) == 1 && (alive.revents & (POLLERR | POLLHUP)))
        _exit(125);

    /* Raw fork: glibc's fork() would run atfork handlers and take locks that another
     * service thread may have held at the time of our clone. */
    long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0)
        child_fail("fork runner");
    if (pid == 0)
        runner_main(p);
    for (int i = 0; i < FD_RUNNER_COUNT; i++)
        close(i);

    /* Every signal is blocked here, so SIGCHLD and the service's kill request stay
     * queued for sigwaitinfo (a namespace init would otherwise drop them). */
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIG_KILL_REQUEST);
    int status = 0;
    bool runner_done = false, kill_requested = false;
    while (!runner_done) {
        siginfo_t si;
        int sig = sigwaitinfo(&wanted, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            child_fail("sigwaitinfo");
        }
        if (sig == SIG_KILL_REQUEST && !kill_requested) {
            kill_requested = true;
            if (kill(-1, SIGKILL) != 0 && errno != ESRCH)
                child_fail("kill -1");
        }
        for (;;) {
            int st;
            pid_t w = wait4(-1, &st, __WALL | WNOHANG, NULL);
            if (w <= 0)
                break;
            if (w == (pid_t)pid) {
                status = st;
                runner_done = true;
            }
        }
    }
    if (kill_requested) {
        /* Reap the whole tree, so its CPU time lands in our RUSAGE_CHILDREN; processes
         * the namespace teardown would reap are not accounted anywhere. */
        for (;;) {
            int st;
            (void)kill(-1, SIGKILL);
            pid_t w = wait4(-1, &st, __WALL, NULL);
            if (w < 0 && errno != EINTR)
                break; /* ECHILD: everyone is gone */
        }
    }
    proc_record r;
    memset(&r, 0, sizeof r);
    r.kind = REC_EXIT;
    r.status = status;
    if (getrusage(RUSAGE_CHILDREN, &r.ru) != 0)
        memset(&r.ru, 0, sizeof r.ru);
    n = write(FD_STATUS, &r, sizeof r);
    _exit(n == (ssize_t)sizeof r ? 0 : 124);
}

/* ---- service side ---------------------------------------------------------------- */

typedef struct job_run {
    const proc_job *job;
    sandbox_outcome *out;
    pid_t pid;
    int pidfd;
    sandbox_pump io;      /* output, spec and result */
    int status_fd;
    sandbox_kill killed;
    int killed_stream;
    int64_t hard_kill_at; /* when the graceful kill request gives way to SIGKILL */
    bool hard_killed;
    bool exited;
} job_run;

static void setup_error(sandbox_outcome *out, const char *call, int err)
{
    out->verdict = SANDBOX_SETUP_ERROR;
    sandbox_outcome_set_error(out, "SandboxError", "%s: %s", call, strerror(err));
}

static void signal_init(job_run *r, int sig)
{
    if (r->pidfd >= 0 && syscall(SYS_pidfd_send_signal, r->pidfd, sig, NULL, 0) != 0 &&
        errno != ESRCH)
        fprintf(stderr, "executord: sandbox: pidfd_send_signal %s: %s\n", proc_signal_name(sig),
                strerror(errno));
}

static void hard_kill(job_run *r)
{
    r->hard_killed = true;
    signal_init(r, SIGKILL); /* init's death takes down the whole PID namespace */
    if (r->job->hooks.kill_all)
        r->job->hooks.kill_all(r->job->hooks.ctx);
}

/* Asks init to kill and reap the tree (usage stays accounted); if it has not finished
 * within KILL_GRACE_NS, supervise() falls back to hard_kill. */
static void kill_tree(job_run *r, sandbox_kill why)
{
    if (r->killed != SANDBOX_KILL_NONE)
        return;
    r->killed = why;
    r->hard_kill_at = now_ns() + KILL_GRACE_NS;
    if (r->job->hooks.kill_all) {
        hard_kill(r); /* a cgroup kill reaches init too: no point in the polite request */
        return;
    }
    signal_init(r, SIG_KILL_REQUEST);
}

/* The pump passed a cap: the job dies, with the reason recorded once. */
static void on_overflow(void *ctx, pump_overflow what, int stream_id)
{
    job_run *r = ctx;
    if (r->killed != SANDBOX_KILL_NONE)
        return;
    if (what == PUMP_OUTPUT_OVER)
        r->killed_stream = stream_id;
    kill_tree(r, what == PUMP_OUTPUT_OVER ? SANDBOX_KILL_OUTPUT : SANDBOX_KILL_RESULT);
}

static void supervise(job_run *r)
{
    const sandbox_spec *spec = r->job->spec;
    double limit = spec->limits.timeout_seconds;
    /* 0 or absurd values (beyond ~30 years, which would overflow) mean no wall limit. */
    int64_t deadline = limit > 0 && limit < 1e9 ? now_ns() + (int64_t)(limit * 1e9) : INT64_MAX;
    pthread_once(&shutdown_once, shutdown_fd_init);

    while (!r->exited) {
        struct pollfd pf[7];
        int idx_pid, idx_cancel = -1, idx_shut = -1, n = 0;
        pf[idx_pid = n++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
        n = sandbox_pump_poll_fds(&r->io, pf, n);
        if (r->killed == SANDBOX_KILL_NONE && spec->cancel_fd >= 0)
            pf[idx_cancel = n++] = (struct pollfd){.fd = spec->cancel_fd, .events = POLLIN};
        if (r->killed == SANDBOX_KILL_NONE && shutdown_efd >= 0)
            pf[idx_shut = n++] = (struct pollfd){.fd = shutdown_efd, .events = POLLIN};

        int64_t wake = INT64_MAX;
        if (r->killed == SANDBOX_KILL_NONE)
            wake = deadline;
        else if (!r->hard_killed)
            wake = r->hard_kill_at;
        int timeout_ms = -1;
        if (wake != INT64_MAX) {
            int64_t left = wake - now_ns();
            if (left <= 0) {
                if (r->killed == SANDBOX_KILL_NONE)
                    kill_tree(r, SANDBOX_KILL_TIMEOUT);
                else
                    hard_kill(r);
                continue;
            }
            int64_t ms = (left + 999999) / 1000000;
            timeout_ms = ms > 60000 ? 60000 : (int)ms;
        }
        int rc = poll(pf, (nfds_t)n, timeout_ms);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "executord: sandbox: poll: %s\n", strerror(errno));
            kill_tree(r, SANDBOX_KILL_CANCEL); /* cannot supervise: fail closed */
            hard_kill(r);
            struct pollfd p1 = {.fd = r->pidfd, .events = POLLIN};
            while (poll(&p1, 1, -1) < 0 && errno == EINTR) {
            }
            r->exited = true;
            break;
        }
        sandbox_pump_on_poll(&r->io, pf);
        if (idx_cancel >= 0 && pf[idx_cancel].revents && r->killed == SANDBOX_KILL_NONE)
            kill_tree(r, SANDBOX_KILL_CANCEL);
        if (idx_shut >= 0 && pf[idx_shut].revents && r->killed == SANDBOX_KILL_NONE)
            kill_tree(r, SANDBOX_KILL_SHUTDOWN);
        if (pf[idx_pid].revents)
            r->exited = true;
    }
    /* init is gone, and with it every process of the namespace: what is still in the
     * pipes is all there will be. */
    sandbox_pump_drain(&r->io);
}

static void fill_usage(sandbox_usage *u, const struct rusage *ru)
{
    u->cpu_user_ms = (int64_t)ru->ru_utime.tv_sec * 1000 + ru->ru_utime.tv_usec / 1000;
    u->cpu_system_ms = (int64_t)ru->ru_stime.tv_sec * 1000 + ru->ru_stime.tv_usec / 1000;
    u->max_rss_kb = ru->ru_maxrss;
}

/* Interprets the runner's result document. Returns false when there is none usable. */
static bool apply_result(job_run *r)
{
    return sandbox_apply_result(r->io.result, r->io.result_len, r->out);
}

static void decide(job_run *r, bool have_exit, const proc_record *exit_rec)
{
    sandbox_outcome *out = r->out;
    int st = exit_rec->status;
    if (have_exit) {
        out->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        out->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    }
    const sandbox_limits *lim = &r->job->spec->limits;
    if (!sandbox_outcome_killed(out, r->killed, lim, r->killed_stream, r->io.cap) && !apply_result(r))
        sandbox_outcome_no_result(out, lim, have_exit, st);
}

/* Reads init's records; returns true when an exit record arrived. */
static bool read_records(job_run *r, proc_record *exit_rec, bool *setup_failed)
{
    bool have_exit = false;
    proc_record rec;
    for (;;) {
        ssize_t n = read(r->status_fd, &rec, sizeof rec);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof rec)
            break;
        if (rec.kind == REC_SETUP_ERROR && !*setup_failed) {
            *setup_failed = true;
            rec.step[sizeof rec.step - 1] = '\0';
            setup_error(r->out, rec.step, rec.err);
        } else if (rec.kind == REC_EXIT) {
            *exit_rec = rec;
            have_exit = true;
        }
    }
    return have_exit;
}

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* cgroup_fd < 0: no CLONE_INTO_CGROUP. */
static long do_clone(unsigned long flags, int *pidfd, int cgroup_fd)
{
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (cgroup_fd >= 0)
        return pid; /* the caller retries without the flag; no clone() fallback here */
    if (pid < 0 && errno == ENOSYS) /* clone3 filtered (older container runtimes) */
        pid = syscall(SYS_clone, flags | CLONE_PIDFD | SIGCHLD, 0L, pidfd, 0L, 0L);
    return pid;
}

int proc_run_job(const proc_job *job, sandbox_outcome *out)
{
    const sandbox_spec *spec = job->spec;
    job_run r;
    memset(&r, 0, sizeof r);
    r.job = job;
    r.out = out;
    sandbox_pump_init(&r.io, job->io, spec->limits.max_output_bytes, on_overflow, &r);
    r.pid = -1;
    r.pidfd = r.status_fd = -1;
    int child_fds[FD_INIT_COUNT];
    for (int i = 0; i < FD_INIT_COUNT; i++)
        child_fds[i] = -1;
    int sync_w = -1;
    char *home_var = NULL;
    int64_t t0 = now_ns();

    if (atomic_load(&shutting_down)) {
        out->verdict = SANDBOX_CANCELLED;
        sandbox_outcome_set_error(out, "Cancelled", "Job cancelled: executord is shutting down");
        return 0;
    }
    r.io.spec = proc_build_spec(spec, job->home, NULL, &r.io.spec_len);
    if (!r.io.spec) {
        setup_error(out, "encode spec", errno);
        goto done;
    }
    /* The interpreter's own environment: the fixed base only, whatever the job's size
     * (the runner installs the job's variables from the spec). */
    if (asprintf(&home_var, "HOME=%s", job->home ? job->home : "/") < 0) {
        home_var = NULL;
        setup_error(out, "environment", ENOMEM);
        goto done;
    }
    char *envp[] = {(char *)env_path, home_var, (char *)env_lang, NULL};

    int p[2], sv[2];
    if ((child_fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        setup_error(out, "open /dev/null", errno);
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        if (pipe2(p, O_CLOEXEC) != 0) {
            setup_error(out, "pipe2 output", errno);
            goto done;
        }
        r.io.streams[i].fd = p[0];
        child_fds[1 + i] = p[1];
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        setup_error(out, "socketpair spec", errno);
        goto done;
    }
    r.io.spec_fd = sv[0];
    child_fds[3] = sv[1];
    if (pipe2(p, O_CLOEXEC) != 0) {
        setup_error(out, "pipe2 result", errno);
        goto done;
    }
    r.io.result_fd = p[0];
    child_fds[4] = p[1];
    if (pipe2(p, O_CLOEXEC) != 0) {
        setup_error(out, "pipe2 status", errno);
        goto done;
    }
    r.status_fd = p[0];
    child_fds[FD_STATUS] = p[1];
    /* A socket, not a pipe: if init is already gone, send(MSG_NOSIGNAL) fails with
     * EPIPE instead of raising SIGPIPE in the service. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) {
        setup_error(out, "socketpair sync", errno);
        goto done;
    }
    child_fds[FD_SYNC] = p[0];
    sync_w = p[1];
    if (set_nonblock(r.io.streams[0].fd) || set_nonblock(r.io.streams[1].fd) ||
        set_nonblock(r.io.result_fd) || set_nonblock(r.status_fd)) {
        setup_error(out, "fcntl O_NONBLOCK", errno);
        goto done;
    }

    const char *program = job->runner_from_source ? sandbox_runner_source : proc_runner_program(job->python);
    char *argv[] = {(char *)job->python, "-I", "-u", "-c", (char *)program, NULL};
    child_plan plan;
    memset(&plan, 0, sizeof plan);
    memcpy(plan.fds, child_fds, sizeof plan.fds);
    plan.python = job->python;
    plan.argv = argv;
    plan.envp = envp;
    plan.cwd = job->cwd;
    plan.hooks = &job->hooks;
    plan.two_phase = job->hooks.parent_attach || job->hooks.child_attached;
    rlimits_from_limits(&spec->limits, &plan.rl);

    /* Block every signal across the clone so no service handler runs in the child
     * before init has reset the dispositions. */
    sigset_t all, old;
    sigfillset(&all);
    int merr = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (merr != 0) {
        setup_error(out, "pthread_sigmask", merr);
        goto done;
    }
    long pid = -1;
    bool in_cgroup = false;
    if (job->hooks.clone_into_cgroup && job->hooks.cgroup_fd >= 0) {
        pid = do_clone(CLONE_NEWPID | job->hooks.clone_flags, &r.pidfd, job->hooks.cgroup_fd);
        if (pid == 0)
            init_main(&plan);
        in_cgroup = pid > 0;
    }
    if (pid < 0) /* not asked for, or refused (kernel < 5.7, seccomp, ...): attach later */
        pid = do_clone(CLONE_NEWPID | job->hooks.clone_flags, &r.pidfd, -1);
    if (pid == 0)
        init_main(&plan);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        r.pidfd = -1;
        setup_error(out, "clone3 (new PID namespace)", clone_errno);
        goto done;
    }
    r.pid = (pid_t)pid;
    for (int i = 0; i < FD_INIT_COUNT; i++)
        close_fd(&child_fds[i]);

    char why[512];
    bool late_failed = false; /* parent_attach failed: init's own report may say why */
    /* Before init is released: everything of the job descends from it and inherits it. */
    int setup_rc = sandbox_oom_raise(r.pid, why, sizeof why);
    if (setup_rc == 0 && job->hooks.parent_setup)
        setup_rc = job->hooks.parent_setup(job->hooks.ctx, r.pid, why, sizeof why);
    if (setup_rc != 0) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "%s", why);
        close_fd(&sync_w); /* init reads EOF and exits */
        hard_kill(&r);
    } else if (send(sync_w, "g", 1, MSG_NOSIGNAL) != 1) {
        setup_error(out, "send go to init", errno);
        hard_kill(&r);
    } else if (plan.two_phase) {
        /* init assembles its root meanwhile. */
        if (!in_cgroup && job->hooks.parent_attach &&
            job->hooks.parent_attach(job->hooks.ctx, r.pid, why, sizeof why) != 0) {
            late_failed = true;
            close_fd(&sync_w);
            hard_kill(&r);
        } else if (send(sync_w, "a", 1, MSG_NOSIGNAL) != 1) {
            /* EPIPE: init is gone already (its setup failed); its record says why. */
            snprintf(why, sizeof why, "send attached to init: %s", strerror(errno));
            late_failed = true;
            hard_kill(&r);
        }
    }
    close_fd(&sync_w);
    bool setup_failed = out->verdict == SANDBOX_SETUP_ERROR && out->error_type != NULL;

    if (!setup_failed && !late_failed)
        supervise(&r);

    int status;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t w;
    do {
        w = wait4(r.pid, &status, __WALL, &ru);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        fprintf(stderr, "executord: sandbox: wait4 %d: %s\n", (int)r.pid, strerror(errno));
    out->usage.wall_ms = (now_ns() - t0) / 1000000;

    proc_record exit_rec;
    memset(&exit_rec, 0, sizeof exit_rec);
    bool have_exit = read_records(&r, &exit_rec, &setup_failed);
    if (late_failed && !setup_failed) {
        out->verdict = SANDBOX_SETUP_ERROR;
        sandbox_outcome_set_error(out, "SandboxError", "%s", why);
        setup_failed = true;
    }
    if (setup_failed)
        goto done;
    /* Prefer init's view (runner + reaped orphans); without it, init's own wait4. */
    fill_usage(&out->usage, have_exit ? &exit_rec.ru : &ru);
    if (!have_exit && w == r.pid) {
        out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    decide(&r, have_exit, &exit_rec);

done:
    if (job->hooks.collect_usage && r.pid > 0)
        job->hooks.collect_usage(job->hooks.ctx, &out->usage);
    sandbox_pump_report(&r.io, out);
    if (out->usage.wall_ms == 0)
        out->usage.wall_ms = (now_ns() - t0) / 1000000;
    for (int i = 0; i < FD_INIT_COUNT; i++)
        close_fd(&child_fds[i]);
    close_fd(&sync_w);
    sandbox_pump_free(&r.io);
    free(home_var);
    close_fd(&r.status_fd);
    close_fd(&r.pidfd);
    return 0;
}
