/* What the runner program gets (see runner_program.h): the job spec sent to
 * sandbox/runner.py on fd 3 and the environment it carries, the interpreter's argv and
 * base environment, the runner compiled once per interpreter, and the rlimits a
 * sandboxed runner gets beyond rlimits.c. One copy for the cold and the warm paths. */
#include "sandbox/runner_program.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/limits.h"

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* The variables every job's environment starts from, Tracecat's base (its sandbox
 * executor's SANDBOX_BASE_ENV); HOME is added per job. */
static const char env_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
static const char env_lang[] = "LANG=C.UTF-8";
static const char env_lc_all[] = "LC_ALL=C.UTF-8";
static const char env_unbuffered[] = "PYTHONUNBUFFERED=1";
static const char env_no_bytecode[] = "PYTHONDONTWRITEBYTECODE=1";

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

/* The job's environment as a JSON array of "NAME=VALUE" (see runner_build_spec). */
static json_t *env_json(const char *home, const char *const *user_env)
{
    json_t *env = json_array();
    char *home_var = NULL;
    if (!env || asprintf(&home_var, "HOME=%s", home ? home : "/") < 0) {
        home_var = NULL;
        errno = ENOMEM;
        goto fail;
    }
    const char *base[] = {env_path, home_var, env_lang, env_lc_all, env_unbuffered, env_no_bytecode};
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

/* Whether text is a compact JSON object's text, "{}" or "{...}", as the splice needs. */
static bool is_object_text(const char *text, size_t len)
{
    return len >= 2 && text[0] == '{' && text[len - 1] == '}';
}

char *runner_build_spec(const sandbox_spec *s, const char *home, const char *packages, const rlimit_set *rl,
                        size_t *len)
{
    const char *fields = s->runner_fields_json;
    size_t flen = fields ? strlen(fields) : 0;
    if (!is_object_text(fields, flen)) {
        errno = EINVAL; /* no script to run: refuse rather than start an empty job */
        return NULL;
    }
    json_t *env = env_json(home, s->env);
    if (!env)
        return NULL;
    json_t *rls = NULL;
    if (rl && !(rls = rlimits_json(rl))) {
        json_decref(env);
        errno = ENOMEM;
        return NULL;
    }
    json_t *limits = sandbox_limits_runner_json(&s->limits);
    /* "o" steals limits and env, also when the pack fails ("o" of NULL fails it). */
    json_t *doc = json_pack("{s:o, s:o}", "limits", limits, "env", env);
    if (rls && (!doc || json_object_set_new(doc, "rlimits", rls) != 0)) {
        if (!doc)
            json_decref(rls); /* set_new frees it itself on failure */
        json_decref(doc);
        doc = NULL;
    }
    json_t *pkg = packages ? json_string(packages) : NULL;
    if (packages && (!pkg || !doc || json_object_set_new(doc, "packages", pkg) != 0)) {
        if (!doc)
            json_decref(pkg);
        json_decref(doc);
        doc = NULL;
    }
    char *rest = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!rest) {
        errno = ENOMEM;
        return NULL;
    }
    /* The runner's fields are spliced in as the JSON text the core built, rather than
     * parsed and encoded again (the inputs may be megabytes): the fields' members, then
     * the rest's, {<fields>,<rest>}. */
    size_t rlen = strlen(rest); /* rest is "{...}", never "{}" */
    char *text = malloc(flen + rlen); /* fields less '}', ',', rest less '{', NUL */
    if (!text) {
        free(rest);
        errno = ENOMEM;
        return NULL;
    }
    size_t n = flen - 1;
    memcpy(text, fields, n);
    if (flen > 2)
        text[n++] = ',';
    memcpy(text + n, rest + 1, rlen); /* with its NUL */
    n += rlen - 1;
    free(rest);
    *len = n;
    return text;
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

const char *runner_program(const char *python)
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

int runner_exec_prepare(runner_exec *x, const char *python, const char *home, bool from_source)
{
    memset(x, 0, sizeof *x);
    /* The interpreter's own environment: the fixed base only, whatever the job's size
     * (the runner installs the job's variables from the spec). */
    if (asprintf(&x->home_var, "HOME=%s", home ? home : "/") < 0) {
        x->home_var = NULL;
        errno = ENOMEM;
        return -1;
    }
    x->envp[0] = (char *)env_path;
    x->envp[1] = x->home_var;
    x->envp[2] = (char *)env_lang;
    x->envp[3] = (char *)env_lc_all;
    x->envp[4] = NULL;
    const char *program = from_source ? sandbox_runner_source : runner_program(python);
    char *argv[] = {(char *)python, "-I", "-u", "-c", (char *)program, NULL};
    memcpy(x->argv, argv, sizeof argv);
    return 0;
}

void runner_exec_free(runner_exec *x)
{
    free(x->home_var);
    x->home_var = NULL;
}

static void rl_append(rlimit_set *rl, int resource, const char *call, rlim_t value)
{
    if (rl->count < RLIMITS_MAX)
        rl->items[rl->count++] = (rlimit_item){resource, call, {value, value}};
}

void runner_sandbox_rlimits(const sandbox_limits *lim, bool cgroup_limits_memory, rlimit_set *rl)
{
    sandbox_limits own = *lim;
    if (cgroup_limits_memory)
        own.memory_mb = 0; /* the cgroup is the limit; RLIMIT_AS only the backstop below */
    rlimits_from_limits(&own, rl);
    rl_append(rl, RLIMIT_MEMLOCK, "setrlimit RLIMIT_MEMLOCK", 0);
    rl_append(rl, RLIMIT_STACK, "setrlimit RLIMIT_STACK", 8 << 20);
    if (!cgroup_limits_memory)
        return;
    /* With the cgroup enforcing memory, RLIMIT_AS at memory_mb would only break programs
     * that reserve large mappings (thread stacks, malloc arenas): the cgroup is the limit
     * and RLIMIT_AS a generous finite backstop (4x, at least 4 GiB) that the script still
     * cannot lift. */
    uint64_t mb = lim->memory_mb > UINT64_MAX / 4 ? UINT64_MAX / 4 : lim->memory_mb;
    uint64_t as_mb = mb * 4 < 4096 ? 4096 : mb * 4;
    rl_append(rl, RLIMIT_AS, "setrlimit RLIMIT_AS",
              as_mb > (uint64_t)RLIM_INFINITY >> 20 ? RLIM_INFINITY : (rlim_t)(as_mb << 20));
}
