/* What every isolating backend promises, checked the same way on each: one table of
 * checks (the Python contract, identity, filesystem, network, seccomp and capabilities,
 * limits and kills, nothing shared between jobs or left on the host) run per backend.
 *   test_isolation [ephemeral|pool]...   (no argument: both; ctest runs one per backend)
 * What only one backend does stays in test_ephemeral.c and test_pool.c. */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/cgroup.h"
#include "sandbox_harness.h"
#include "large_env.h"

/* Each backend's uid ranges, apart from test_ephemeral's and test_pool's (ctest -j). */
static const harness_options backends[] = {
    {.backend = "ephemeral", .uid_base = 2200000, .uid_count = 16},
    {.backend = "pool", .uid_base = 2250000, .uid_count = 16, .pool_uid_base = 3300000, .pool_size = 2},
};
static const harness_options *current;

/* One row: a script with its inputs, environment and limits, and what must come out. */
typedef struct isolation_check {
    const char *script;
    const char *inputs;              /* NULL: "{}"; with pass_host_dir, ignored */
    bool pass_host_dir;              /* inputs {"host_dir": the test's host folder} */
    const char *const *env;
    double timeout_seconds;          /* 0 = default_limits()'s, likewise below */
    int64_t memory_mb, max_processes, max_file_size_mb, max_output_bytes;
    const char *result;              /* success with this JSON result, or: */
    sandbox_verdict verdict;         /* ... this failure */
    const char *error_type, *error_part;
    const char *stdout_has[3];       /* substrings stdout must hold */
    const char *traceback_has;
    void (*after)(const sandbox_outcome *out); /* further checks on the outcome */
} isolation_check;

/* ---- further checks on an outcome ---- */

static bool cgroups_on(void)
{
    return sandbox_cgroup_mode() != CGROUP_NONE;
}

static void wall_time_measured(const sandbox_outcome *out)
{
    assert_true(out->usage.wall_ms > 0);
}

static void memory_peak_near_limit(const sandbox_outcome *out)
{
    if (!cgroups_on())
        return;
    assert_true(out->usage.memory_peak_bytes > 32 << 20);
    assert_true(out->usage.memory_peak_bytes <= (64 << 20) + (1 << 20));
}

static void usage_from_cgroup(const sandbox_outcome *out)
{
    if (cgroups_on()) {
        assert_true(out->usage.memory_peak_bytes >= 20 << 20);
        assert_true(out->usage.cgroup_cpu_ms >= 0);
        assert_int_equal(out->usage.oom_kills, 0);
    } else {
        assert_int_equal(out->usage.memory_peak_bytes, -1);
    }
}

static void output_cut_at_cap(const sandbox_outcome *out)
{
    assert_int_equal(out->stdout_bytes, 1000);
    assert_true(out->stdout_truncated);
}

/* Nothing of a finished job runs on as the job's (ephemeral) uids, and no job cgroup is
 * left: only the pool's warm sandboxes ("job-warm-*") wait there between jobs. */
static void nothing_left_on_host(void)
{
    unsigned first = (unsigned)current->uid_base;
    assert_int_equal(count_processes_of_uids(first, first + 2 * current->uid_count), 0);
    if (!cgroups_on())
        return;
    DIR *d = opendir(sandbox_cgroup_parent_path());
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "job-", 4) == 0 && strncmp(e->d_name, "job-warm-", 9) != 0)
            fail_msg("job cgroup left behind: %s", e->d_name);
    }
    closedir(d);
}

/* ---- the table ---- */

static const char *const identity_env[] = {"API_KEY=secret", "HOME=/elsewhere", NULL};

#define SCRIPT_SYSCALLS                                                                       \
    "import ctypes, errno, os\n"                                                              \
    "libc = ctypes.CDLL(None, use_errno=True)\n"                                              \
    "def sc(nr, *a):\n"                                                                       \
    "    r = libc.syscall(nr, *[ctypes.c_long(x) for x in a])\n"                              \
    "    return errno.errorcode.get(ctypes.get_errno(), '?') if r == -1 else 'ok'\n"          \
    "def st(k):\n"                                                                            \
    "    return [l.split()[1] for l in open('/proc/self/status') if l.startswith(k)][0]\n"    \
    "def main():\n"                                                                           \
    "    return {'unshare': sc(272, 0x10000000), 'ptrace': sc(101, 16, 1, 0, 0),\n"           \
    "            'mount': sc(165, 0, 0, 0, 0, 0), 'keyctl': sc(250, 0, 0, 0, 0, 0),\n"        \
    "            'bpf': sc(321, 0, 0, 0), 'setuid0': sc(105, 0), 'kill_init': sc(62, 1, 9),\n" \
    "            'capeff': st('CapEff'), 'capprm': st('CapPrm'), 'capbnd': st('CapBnd'),\n"   \
    "            'nnp': st('NoNewPrivs'), 'seccomp': st('Seccomp:')}\n"

#define SCRIPT_FILESYSTEM                                                                     \
    "import os, errno\n"                                                                      \
    "def tryw(p):\n"                                                                          \
    "    try:\n"                                                                              \
    "        with open(p, 'w') as f: f.write('x')\n"                                          \
    "        return 'written'\n"                                                              \
    "    except OSError as e:\n"                                                              \
    "        return errno.errorcode[e.errno]\n"                                               \
    "def main(host_dir):\n"                                                                   \
    "    r = {}\n"                                                                            \
    "    for p in ['/x', '/etc/passwd', '/usr/x', '/bin/x', '/proc/x', '/dev/x', '/etc/x']:\n" \
    "        r[p] = tryw(p)\n"                                                                \
    "    r['tmp'] = tryw('/tmp/ok')\n"                                                        \
    "    r['shm'] = tryw('/dev/shm/ok')\n"                                                    \
    "    r['work'] = tryw('/work/ok')\n"                                                      \
    "    r['shadow'] = os.path.exists('/etc/shadow')\n"                                       \
    "    r['passwd'] = 'sandbox:x:1000:1000' in open('/etc/passwd').read()\n"                 \
    "    r['resolv'] = open('/etc/resolv.conf').read()\n"                                  \
    "    r['null'] = open('/dev/null', 'w').write('abc')\n"                                   \
    "    r['urandom'] = len(open('/dev/urandom', 'rb').read(8))\n"                            \
    "    r['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"            \
    "    r['old_root'] = os.path.exists(host_dir) or os.path.exists('/root')\n"              \
    "    return r\n"

static const isolation_check main_and_subprocess = {
    .script = "import subprocess\n"
              "def main(a, b):\n"
              "    r = subprocess.run(['echo', 'hi from echo'], capture_output=True, text=True)\n"
              "    subprocess.run(['echo', 'straight to stdout'])\n"
              "    print('sum', a + b)\n"
              "    return {'sum': a + b, 'echo': r.stdout.strip()}\n",
    .inputs = "{\"a\": 2, \"b\": 40}",
    .result = "{\"sum\": 42, \"echo\": \"hi from echo\"}",
    .stdout_has = {"sum 42", "straight to stdout"},
    .after = wall_time_measured,
};
static const isolation_check exception_is_reported = {
    .script = "def main():\n    raise ValueError('boom')\n",
    .verdict = SANDBOX_FAILED, .error_type = "SandboxExecutionError", .error_part = "ValueError: boom",
    .traceback_has = "<script>",
};
static const isolation_check script_without_main = {
    .script = "x = 1\n",
    .verdict = SANDBOX_FAILED, .error_type = "SandboxValidationError", .error_part = "function",
};
static const isolation_check async_main = {
    .script = "import asyncio\nasync def main(x):\n    await asyncio.sleep(0)\n    return x * 2\n",
    .inputs = "{\"x\": 21}",
    .result = "42",
};
/* The job is pid 2 under the sandbox's init; the service's environment stays outside. */
static const isolation_check identity_hostname_env = {
    .script = "import os, socket\n"
              "def main():\n"
              "    return [socket.gethostname(), os.getuid(), os.getgid(), os.geteuid(), os.getgroups(),\n"
              "            os.getcwd(), 'EXECUTORD_TEST_CANARY' in os.environ, os.environ.get('HOME'),\n"
              "            os.environ.get('API_KEY'), os.getpid(), os.getppid()]\n",
    .env = identity_env,
    .result = "[\"sandbox\", 1000, 1000, 1000, [], \"/work\", false, \"/elsewhere\", \"secret\", 2, 1]",
};
/* pid 1 (the sandbox's init) is hidden (hidepid=invisible): only the job itself shows,
 * not the pool's zygote or the warm sandboxes waiting for other jobs. */
static const isolation_check filesystem_is_locked_down = {
    .script = SCRIPT_FILESYSTEM,
    .pass_host_dir = true,
    .result = "{\"/x\": \"EROFS\", \"/etc/passwd\": \"EROFS\", \"/usr/x\": \"EROFS\", \"/bin/x\": \"EROFS\","
              " \"/proc/x\": \"ENOENT\", \"/dev/x\": \"EROFS\", \"/etc/x\": \"EROFS\","
              " \"tmp\": \"written\", \"shm\": \"written\", \"work\": \"written\", \"shadow\": false,"
              " \"passwd\": true, \"resolv\": \"nameserver 10.0.2.3\\n\", \"null\": 3, \"urandom\": 8, \"pids\": [2],"
              " \"old_root\": false}",
};
/* The sandbox's init is root of the job's user namespace: the job cannot signal it. */
static const isolation_check seccomp_and_caps_inside = {
    .script = SCRIPT_SYSCALLS,
    .result = "{\"unshare\": \"EPERM\", \"ptrace\": \"EPERM\", \"mount\": \"EPERM\", \"keyctl\": \"EPERM\","
              " \"bpf\": \"EPERM\", \"setuid0\": \"EPERM\", \"kill_init\": \"EPERM\","
              " \"capeff\": \"0000000000000000\", \"capprm\": \"0000000000000000\","
              " \"capbnd\": \"0000000000000000\", \"nnp\": \"1\", \"seccomp\": \"2\"}",
};
static const isolation_check memory_limit = {
    .script = "def main():\n"
              "    blocks = []\n"
              "    for i in range(64):\n"
              "        blocks.append(bytearray(4 << 20))\n"
              "    return len(blocks)\n",
    .memory_mb = 64,
    .verdict = SANDBOX_FAILED, .error_type = "MemoryLimitExceeded", .error_part = "64 MB",
    .after = memory_peak_near_limit,
};
static const isolation_check process_limit = {
    .script = "import subprocess\n"
              "def main():\n"
              "    ps = [subprocess.Popen(['sleep', '5']) for _ in range(20)]\n"
              "    return len(ps)\n",
    .max_processes = 6,
    .verdict = SANDBOX_FAILED, .error_type = "ResourceLimitExceeded", .error_part = "max_processes",
};
static const isolation_check file_size_limit_work = {
    .script = "def main():\n"
              "    with open('/work/big', 'wb') as f:\n"
              "        f.write(b'x' * (3 << 20))\n",
    .max_file_size_mb = 2,
    .verdict = SANDBOX_FAILED, .error_type = "ResourceLimitExceeded", .error_part = "File size limit of 2 MB",
};
static const isolation_check file_size_limit_tmp = {
    .script = "def main():\n    open('/tmp/big', 'wb').write(b'x' * (3 << 20))\n",
    .max_file_size_mb = 1,
    .verdict = SANDBOX_FAILED, .error_type = "ResourceLimitExceeded", .error_part = "File size limit of 1 MB",
};
static const isolation_check output_limit = {
    .script = "def main():\n    while True:\n        print('x' * 100)\n",
    .max_output_bytes = 1000,
    .verdict = SANDBOX_OUTPUT_LIMIT, .error_type = "OutputLimitExceeded",
    .error_part = "stdout exceeded the output limit of 1000",
    .after = output_cut_at_cap,
};
static const isolation_check usage_reports_cgroup = {
    .script = "def main():\n"
              "    x = bytearray(20 << 20)\n"
              "    return sum(range(2000000))\n",
    .result = "1999999000000",
    .after = usage_from_cgroup,
};

static sandbox_limits limits_of(const isolation_check *c)
{
    sandbox_limits l = default_limits();
    if (c->timeout_seconds)
        l.timeout_seconds = c->timeout_seconds;
    if (c->memory_mb)
        l.memory_mb = c->memory_mb;
    if (c->max_processes)
        l.max_processes = c->max_processes;
    if (c->max_file_size_mb)
        l.max_file_size_mb = c->max_file_size_mb;
    if (c->max_output_bytes)
        l.max_output_bytes = c->max_output_bytes;
    return l;
}

static void expect_outcome(const isolation_check *c, const sandbox_outcome *out, const capture *cap)
{
    if (c->result)
        expect_result(out, cap, c->result);
    else
        expect_failure(out, cap, c->verdict, c->error_type, c->error_part);
    for (size_t i = 0; i < sizeof c->stdout_has / sizeof c->stdout_has[0] && c->stdout_has[i]; i++) {
        assert_non_null(cap->buf[SANDBOX_STDOUT]);
        assert_non_null(strstr(cap->buf[SANDBOX_STDOUT], c->stdout_has[i]));
    }
    if (c->traceback_has) {
        assert_non_null(out->error_traceback);
        assert_non_null(strstr(out->error_traceback, c->traceback_has));
    }
    if (c->after)
        c->after(out);
}

/* The test function of every scripted row (its state: the row). */
static void run_check(void **state)
{
    const isolation_check *c = *state;
    char inputs[PATH_MAX + 32];
    if (c->pass_host_dir)
        snprintf(inputs, sizeof inputs, "{\"host_dir\": \"%s\"}", harness.tmp_root);
    char *fields = runner_fields_make(c->script, c->pass_host_dir ? inputs : c->inputs);
    sandbox_spec spec = {
        .runner_fields_json = fields,
        .env = c->env,
        .limits = limits_of(c),
        .cancel_fd = -1,
    };
    capture cap = {0};
    sandbox_outcome out;
    run_spec(&spec, &cap, &out);
    free(fields);
    expect_outcome(c, &out, &cap);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    nothing_left_on_host();
}

/* ---- rows that need more than one script ---- */

/* Sizes execve refuses (E2BIG) travel in the spec and reach the script whole. */
static void test_large_environment(void **state)
{
    char **env = large_env_make();
    assert_non_null(env);
    char *fields = runner_fields_make(LARGE_ENV_SCRIPT, NULL);
    sandbox_spec spec = {.runner_fields_json = fields, .env = (const char *const *)env,
                         .limits = default_limits(), .cancel_fd = -1};
    capture cap = {0};
    sandbox_outcome out;
    run_spec(&spec, &cap, &out);
    free(fields);
    expect_result(&out, &cap, "[true, true]");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    large_env_free(env);
}

/* A listener of "the service" on the host's loopback: unreachable from a job, with or
 * without allow_network (its own namespace behind slirp4netns and the egress policy: only
 * its own loopback is tried here, no packet leaves the machine). */
static void test_network_is_loopback_only(void **state)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 4), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    char script[1024];
    snprintf(script, sizeof script,
             "import socket, errno\n"
             "def main():\n"
             "    names = sorted(n for _, n in socket.if_nameindex())\n"
             "    s = socket.socket()\n"
             "    s.settimeout(2)\n"
             "    try:\n"
             "        s.connect(('127.0.0.1', %d)); r = 'connected'\n"
             "    except OSError as e:\n"
             "        r = errno.errorcode.get(e.errno, str(e))\n"
             "    return [names, r]\n",
             ntohs(a.sin_port));
    capture cap = {0};
    sandbox_outcome out;
    run_simple(script, NULL, &cap, &out);
    expect_result(&out, &cap, "[[\"lo\"], \"ECONNREFUSED\"]");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    run_full(script, NULL, NULL, true, &cap, &out);
    expect_result(&out, &cap, "[[\"lo\", \"tap0\"], \"ECONNREFUSED\"]");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    close(ls);
    nothing_left_on_host();
}

/* A job that forks a session leader ignoring SIGTERM, whose child ignores it too: on
 * timeout all of them die, with the job's cgroup. The sleep's length marks this
 * program's job among the host's processes. */
static void test_timeout_kills_every_process(void **state)
{
    char marker[32], script[1024];
    snprintf(marker, sizeof marker, "sleep %d", 600000 + (int)getpid() % 100000);
    snprintf(script, sizeof script,
             "import os, time, signal, subprocess\n"
             "def main():\n"
             "    if os.fork() == 0:\n"
             "        os.setsid()\n"
             "        if os.fork() == 0:\n"
             "            signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "            subprocess.run(['sleep', '%s'])\n"
             "        os._exit(0)\n"
             "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "    time.sleep(60)\n",
             marker + strlen("sleep "));
    sandbox_limits l = default_limits();
    l.timeout_seconds = 1;
    capture cap = {0};
    sandbox_outcome out;
    run_full(script, NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_TIMED_OUT, "SandboxTimeoutError", "timed out after 1 seconds");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(count_processes_with(marker), 0);
    nothing_left_on_host();
}

static void test_cancel(void **state)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof one), (ssize_t)sizeof one);
    char *fields = runner_fields_make("import time\ndef main():\n    time.sleep(30)\n", NULL);
    sandbox_spec spec = {.runner_fields_json = fields, .limits = default_limits(), .cancel_fd = efd};
    capture cap = {0};
    sandbox_outcome out;
    run_spec(&spec, &cap, &out);
    free(fields);
    expect_failure(&out, &cap, SANDBOX_CANCELLED, "Cancelled", "cancelled");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    close(efd);
    nothing_left_on_host();
}

/* Whatever one job changes (modules, builtins, sys.path, environment, files in /tmp,
 * /work and /dev/shm, the random seed), the next job does not see it. */
static void test_no_state_between_jobs(void **state)
{
    const char *polluter =
        "import builtins, json, sys, os, random\n"
        "def main():\n"
        "    json.dumps = lambda *a, **k: 'patched'\n"
        "    builtins.len = lambda x: -1\n"
        "    builtins.PLANTED = 1\n"
        "    sys.modules['base64'] = 'planted'\n"
        "    sys.path.insert(0, '/tmp')\n"
        "    os.environ['PLANTED'] = '1'\n"
        "    for p in ['/tmp/planted', '/work/planted', '/dev/shm/planted']:\n"
        "        open(p, 'w').write('x')\n"
        "    os.symlink('/etc/passwd', '/tmp/link')\n"
        "    return random.random()\n";
    const char *observer =
        "import builtins, json, sys, os, random\n"
        "def main():\n"
        "    return {'dumps': json.dumps([1]), 'len': len([1, 2]), 'planted': hasattr(builtins, 'PLANTED'),\n"
        "            'base64': isinstance(sys.modules.get('base64'), str), 'path': '/tmp' in sys.path,\n"
        "            'env': 'PLANTED' in os.environ,\n"
        "            'files': [p for p in ['/tmp/planted', '/work/planted', '/dev/shm/planted', '/tmp/link']\n"
        "                      if os.path.lexists(p)]}\n";
    const char *clean = "{\"dumps\": \"[1]\", \"len\": 2, \"planted\": false, \"base64\": false,"
                        " \"path\": false, \"env\": false, \"files\": []}";
    capture cap = {0};
    sandbox_outcome out;
    char first_random[64] = "";
    for (int round = 0; round < 3; round++) {
        run_simple(polluter, NULL, &cap, &out);
        if (out.verdict != SANDBOX_SUCCEEDED)
            dump(&out, &cap);
        assert_int_equal(out.verdict, SANDBOX_SUCCEEDED);
        /* Two jobs never share a random sequence (the pool reseeds each fork). */
        if (round == 0)
            snprintf(first_random, sizeof first_random, "%s", out.result_json);
        else
            assert_string_not_equal(first_random, out.result_json);
        sandbox_outcome_free(&out);
        capture_free(&cap);
        run_simple(observer, NULL, &cap, &out);
        expect_result(&out, &cap, clean);
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
}

/* ---- the suite ---- */

#define ROW(check) {#check, run_check, NULL, NULL, (void *)&check}
#define FN(fn) {#fn, fn, NULL, NULL, NULL}

static const struct CMUnitTest isolation_checks[] = {
    ROW(main_and_subprocess),
    ROW(exception_is_reported),
    ROW(script_without_main),
    ROW(async_main),
    ROW(identity_hostname_env),
    FN(test_large_environment),
    ROW(filesystem_is_locked_down),
    FN(test_network_is_loopback_only),
    ROW(seccomp_and_caps_inside),
    FN(test_no_state_between_jobs),
    ROW(memory_limit),
    ROW(process_limit),
    ROW(file_size_limit_work),
    ROW(file_size_limit_tmp),
    ROW(output_limit),
    ROW(usage_reports_cgroup),
    FN(test_timeout_kills_every_process),
    FN(test_cancel),
};

static int group_setup(void **state)
{
    return harness_start(current);
}

static int group_teardown(void **state)
{
    return harness_stop();
}

static const harness_options *backend_named(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i].backend, name) == 0)
            return &backends[i];
    return NULL;
}

static int run_for(const harness_options *o)
{
    char group[64];
    snprintf(group, sizeof group, "isolation/%s", o->backend);
    current = o;
    return _cmocka_run_group_tests(group, isolation_checks, sizeof isolation_checks / sizeof isolation_checks[0],
                                   group_setup, group_teardown);
}

int main(int argc, char **argv)
{
    int failed = 0;
    if (argc < 2) {
        for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
            failed += run_for(&backends[i]);
        return failed;
    }
    for (int i = 1; i < argc; i++) {
        const harness_options *o = backend_named(argv[i]);
        if (!o) {
            fprintf(stderr, "test_isolation: unknown backend \"%s\" (ephemeral, pool)\n", argv[i]);
            return 2;
        }
        failed += run_for(o);
    }
    return failed;
}
