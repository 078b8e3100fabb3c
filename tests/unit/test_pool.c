/* The `pool` backend end to end, driven directly (no HTTP): the Python contract holds
 * in a warm sandbox, the sandbox is the one `ephemeral` promises (hostname, uid,
 * read-only root, loopback only, seccomp, no capabilities, limits), nothing passes from
 * one job to the next (modules, builtins, files), and the pool heals itself (a killed
 * zygote is replaced; jobs beyond the warm ones wait and still run). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/cgroup.h"
#include "sandbox/ephemeral.h"
#include "sandbox/pool.h"
#include "sandbox/pool_zygote.h"
#include "sandbox/sandbox.h"
#include "sandbox/workdir.h"

static const sandbox_backend *backend = &sandbox_backend_pool;
static char tmp_root[PATH_MAX];
static char work_root[PATH_MAX + 16];
static int job_counter;

enum { UID_BASE = 2150000, UID_COUNT = 16, POOL_UID_BASE = 3200000 }; /* apart from test_ephemeral (ctest -j) */

#define HARNESS_JOB_PREFIX "pool"
#include "sandbox_harness.h"
#include "large_env.h"


/* Host processes whose command line contains needle (the job's own marker). */
static int count_processes_with(const char *needle)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        for (ssize_t i = 0; i < len; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[len] = '\0';
        if (strstr(buf, needle) && !strstr(buf, "count_processes"))
            n++;
    }
    closedir(d);
    return n;
}

/* Host pids of the zygotes: the processes running the runner with --zygote as the
 * zygotes' root uid (the first id of each zygote's block). */
static int zygote_pids(pid_t *pids, int max)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        unsigned ruid = 0;
        char st = '?';
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "State:\t%c", &st) == 1)
                continue;
            if (sscanf(line, "Uid:\t%u", &ruid) == 1)
                break;
        }
        fclose(f);
        if (st == 'Z')
            continue;
        if (ruid >= POOL_UID_BASE && ruid < POOL_UID_BASE + 32 * 258 && (ruid - POOL_UID_BASE) % 258 == 0)
            pids[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static void status_field(const char *key, json_int_t *v)
{
    char buf[2048];
    assert_true(pool_status_json(buf, sizeof buf) > 0);
    json_error_t err;
    json_t *o = json_loads(buf, 0, &err);
    assert_non_null(o);
    assert_true(json_is_true(json_object_get(o, "available")));
    *v = json_integer_value(json_object_get(o, key));
    json_decref(o);
}

static void wait_ready(int want)
{
    for (int i = 0; i < 500; i++) {
        json_int_t ready;
        status_field("ready", &ready);
        if (ready >= want)
            return;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("pool never had %d warm sandboxes ready", want);
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/executord-test-pool-XXXXXX");
    if (!mkdtemp(tmp_root))
        return -1;
    snprintf(work_root, sizeof work_root, "%s/work", tmp_root);
    static char locks[PATH_MAX + 16];
    snprintf(locks, sizeof locks, "%s/uid-locks", tmp_root);
    ephemeral_options eo = {.uid_base = UID_BASE, .uid_count = UID_COUNT, .uid_lock_dir = locks};
    ephemeral_configure(&eo);
    pool_options po = {.size = 2, .uid_base = POOL_UID_BASE};
    pool_configure(&po);
    setenv("EXECUTORD_TEST_CANARY", "leaked", 1);
    sandbox_config cfg = {.python_path = "/usr/bin/python3", .work_root = work_root};
    char why[1024] = "";
    /* ephemeral first, as in the registry: it owns the cgroup parent; pool reuses it and
     * starts allow_network jobs through it. */
    if (sandbox_backend_ephemeral.init(&cfg, why, sizeof why) != 0) {
        fprintf(stderr, "ephemeral init: %s\n", why);
        return -1;
    }
    why[0] = '\0';
    if (backend->init(&cfg, why, sizeof why) != 0) {
        fprintf(stderr, "pool init: %s\n", why);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    backend->shutdown();
    sandbox_backend_ephemeral.shutdown();
    char err[512];
    if (workdir_remove("/tmp", strrchr(tmp_root, '/') + 1, err, sizeof err) != 0)
        fprintf(stderr, "cleanup: %s\n", err);
    return 0;
}

/* ---- the Python contract inside ---- */

static void test_main_and_subprocess(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("import subprocess\n"
               "def main(a, b):\n"
               "    r = subprocess.run(['echo', 'hi from echo'], capture_output=True, text=True)\n"
               "    subprocess.run(['echo', 'straight to stdout'])\n"
               "    print('sum', a + b)\n"
               "    return {'sum': a + b, 'echo': r.stdout.strip()}\n",
               "{\"a\": 2, \"b\": 40}", &cap, &out);
    expect_result(&out, &cap, "{\"sum\": 42, \"echo\": \"hi from echo\"}");
    assert_non_null(cap.buf[1]);
    assert_non_null(strstr(cap.buf[1], "sum 42"));
    assert_non_null(strstr(cap.buf[1], "straight to stdout"));
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_exception_and_validation(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("def main():\n    raise ValueError('boom')\n", NULL, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "SandboxExecutionError", "ValueError: boom");
    assert_non_null(out.error_traceback);
    assert_non_null(strstr(out.error_traceback, "<script>"));
    sandbox_outcome_free(&out);
    capture_free(&cap);
    run_simple("x = 1\n", NULL, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "SandboxValidationError", "function");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    run_simple("import asyncio\nasync def main(x):\n    await asyncio.sleep(0)\n    return x * 2\n", "{\"x\": 21}",
               &cap, &out);
    expect_result(&out, &cap, "42");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_identity_hostname_env(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    const char *env[] = {"API_KEY=secret", "HOME=/elsewhere", NULL};
    char job_id[64];
    snprintf(job_id, sizeof job_id, "pool-env-%d", (int)getpid());
    sandbox_spec spec = {
        .job_id = job_id,
        .script = "import os, socket\n"
                  "def main():\n"
                  "    return [socket.gethostname(), os.getuid(), os.getgid(), os.geteuid(), os.getgroups(),\n"
                  "            os.getcwd(), 'EXECUTORD_TEST_CANARY' in os.environ, os.environ.get('HOME'),\n"
                  "            os.environ.get('API_KEY'), os.getpid(), os.getppid(),\n"
                  "            int(open('/proc/self/uid_map').read().split()[1]) >= 3200000]\n",
        .inputs_json = "{}",
        .env = env,
        .limits = default_limits(),
        .cancel_fd = -1,
    };
    sandbox_io io = {.ctx = &cap, .on_output = on_output};
    assert_int_equal(backend->run(&spec, &io, &out), 0);
    expect_result(&out, &cap, "[\"sandbox\", 1000, 1000, 1000, [], \"/work\", false, \"/elsewhere\", \"secret\", 2, 1, true]");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* Sizes execve refuses (E2BIG) travel in the spec and reach the script whole. */
static void test_large_environment(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    char **env = large_env_make();
    assert_non_null(env);
    char job_id[64];
    snprintf(job_id, sizeof job_id, "pool-bigenv-%d", (int)getpid());
    sandbox_spec spec = {
        .job_id = job_id,
        .script = LARGE_ENV_SCRIPT,
        .inputs_json = "{}",
        .env = (const char *const *)env,
        .limits = default_limits(),
        .cancel_fd = -1,
    };
    sandbox_io io = {.ctx = &cap, .on_output = on_output};
    assert_int_equal(backend->run(&spec, &io, &out), 0);
    expect_result(&out, &cap, "[true, true]");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    large_env_free(env);
}

static void test_filesystem_is_locked_down(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("import os, errno\n"
               "def tryw(p):\n"
               "    try:\n"
               "        with open(p, 'w') as f: f.write('x')\n"
               "        return 'written'\n"
               "    except OSError as e:\n"
               "        return errno.errorcode[e.errno]\n"
               "def main():\n"
               "    r = {}\n"
               "    for p in ['/x', '/etc/passwd', '/usr/x', '/bin/x', '/proc/x', '/dev/x', '/etc/x']:\n"
               "        r[p] = tryw(p)\n"
               "    r['tmp'] = tryw('/tmp/ok')\n"
               "    r['shm'] = tryw('/dev/shm/ok')\n"
               "    r['work'] = tryw('/work/ok')\n"
               "    r['shadow'] = os.path.exists('/etc/shadow')\n"
               "    r['passwd'] = 'sandbox:x:1000:1000' in open('/etc/passwd').read()\n"
               "    r['resolv'] = os.path.exists('/etc/resolv.conf')\n"
               "    r['null'] = open('/dev/null', 'w').write('abc')\n"
               "    r['urandom'] = len(open('/dev/urandom', 'rb').read(8))\n"
               "    r['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
               "    r['old_root'] = os.path.exists('/tmp/' + 'executord-test-pool') or os.path.exists('/root')\n"
               "    return r\n",
               NULL, &cap, &out);
    /* Only the job itself (pid 2) is visible: not its init, not the zygote, not the
     * warm sandboxes waiting for other jobs. */
    expect_result(&out, &cap,
                  "{\"/x\": \"EROFS\", \"/etc/passwd\": \"EROFS\", \"/usr/x\": \"EROFS\", \"/bin/x\": \"EROFS\","
                  " \"/proc/x\": \"ENOENT\", \"/dev/x\": \"EROFS\", \"/etc/x\": \"EROFS\","
                  " \"tmp\": \"written\", \"shm\": \"written\", \"work\": \"written\", \"shadow\": false,"
                  " \"passwd\": true, \"resolv\": false, \"null\": 3, \"urandom\": 8, \"pids\": [2],"
                  " \"old_root\": false}");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

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
    if (out.verdict != SANDBOX_SUCCEEDED)
        dump(&out, &cap);
    assert_int_equal(out.verdict, SANDBOX_SUCCEEDED);
    assert_non_null(strstr(out.result_json, "\"connected\""));
    sandbox_outcome_free(&out);
    capture_free(&cap);
    close(ls);
}

static void test_seccomp_and_caps_inside(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("import ctypes, errno, os\n"
               "libc = ctypes.CDLL(None, use_errno=True)\n"
               "def sc(nr, *a):\n"
               "    r = libc.syscall(nr, *[ctypes.c_long(x) for x in a])\n"
               "    return errno.errorcode.get(ctypes.get_errno(), '?') if r == -1 else 'ok'\n"
               "def st(k):\n"
               "    return [l.split()[1] for l in open('/proc/self/status') if l.startswith(k)][0]\n"
               "def main():\n"
               "    return {'unshare': sc(272, 0x10000000), 'ptrace': sc(101, 16, 1, 0, 0),\n"
               "            'mount': sc(165, 0, 0, 0, 0, 0), 'keyctl': sc(250, 0, 0, 0, 0, 0),\n"
               "            'bpf': sc(321, 0, 0, 0), 'setuid0': sc(105, 0), 'kill_init': sc(62, 1, 9),\n"
               "            'capeff': st('CapEff'), 'capprm': st('CapPrm'), 'capbnd': st('CapBnd'),\n"
               "            'nnp': st('NoNewPrivs'), 'seccomp': st('Seccomp:')}\n",
               NULL, &cap, &out);
    /* The sandbox's init is root of the job's user namespace: the job cannot signal it. */
    expect_result(&out, &cap,
                  "{\"unshare\": \"EPERM\", \"ptrace\": \"EPERM\", \"mount\": \"EPERM\", \"keyctl\": \"EPERM\","
                  " \"bpf\": \"EPERM\", \"setuid0\": \"EPERM\", \"kill_init\": \"EPERM\", \"capeff\": \"0000000000000000\","
                  " \"capprm\": \"0000000000000000\", \"capbnd\": \"0000000000000000\", \"nnp\": \"1\", \"seccomp\": \"2\"}");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* ---- nothing passes between jobs ---- */

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
        "            'base64': type(sys.modules.get('base64')).__name__, 'path': '/tmp' in sys.path,\n"
        "            'env': 'PLANTED' in os.environ,\n"
        "            'files': [p for p in ['/tmp/planted', '/work/planted', '/dev/shm/planted', '/tmp/link']\n"
        "                      if os.path.lexists(p)], 'random': random.random()}\n";
    capture cap = {0};
    sandbox_outcome out;
    char first_random[64] = "";
    for (int round = 0; round < 3; round++) {
        run_simple(polluter, NULL, &cap, &out);
        assert_int_equal(out.verdict, SANDBOX_SUCCEEDED);
        /* Each fork reseeds random: two jobs never share a sequence. */
        if (round == 0)
            snprintf(first_random, sizeof first_random, "%s", out.result_json);
        else
            assert_string_not_equal(first_random, out.result_json);
        sandbox_outcome_free(&out);
        capture_free(&cap);
        run_simple(observer, NULL, &cap, &out);
        if (out.verdict != SANDBOX_SUCCEEDED)
            dump(&out, &cap);
        assert_int_equal(out.verdict, SANDBOX_SUCCEEDED);
        json_t *o = json_loads(out.result_json, 0, NULL);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "dumps")), "[1]");
        assert_int_equal(json_integer_value(json_object_get(o, "len")), 2);
        assert_true(json_is_false(json_object_get(o, "planted")));
        assert_string_equal(json_string_value(json_object_get(o, "base64")), "module");
        assert_true(json_is_false(json_object_get(o, "path")));
        assert_true(json_is_false(json_object_get(o, "env")));
        assert_int_equal(json_array_size(json_object_get(o, "files")), 0);
        json_decref(o);
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
}

/* ---- limits, kills ---- */

static void test_timeout_cancel_output_cap(void **state)
{
    sandbox_limits l = default_limits();
    l.timeout_seconds = 1;
    capture cap = {0};
    sandbox_outcome out;
    run_full("import os, time, signal, subprocess\n"
             "def main():\n"
             "    if os.fork() == 0:\n"
             "        os.setsid()\n"
             "        if os.fork() == 0:\n"
             "            signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "            subprocess.run(['sleep', '6171'])\n"
             "        os._exit(0)\n"
             "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "    time.sleep(60)\n",
             NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_TIMED_OUT, "SandboxTimeoutError", "timed out after 1 seconds");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(count_processes_with("sleep 6171"), 0);

    /* cancel */
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof one), (ssize_t)sizeof one);
    char job_id[64];
    snprintf(job_id, sizeof job_id, "pool-cancel-%d", (int)getpid());
    sandbox_spec spec = {.job_id = job_id, .script = "import time\ndef main():\n    time.sleep(30)\n",
                         .inputs_json = "{}", .limits = default_limits(), .cancel_fd = efd};
    sandbox_io io = {.ctx = &cap, .on_output = on_output};
    assert_int_equal(backend->run(&spec, &io, &out), 0);
    expect_failure(&out, &cap, SANDBOX_CANCELLED, "Cancelled", "cancelled");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    close(efd);

    /* output cap */
    l = default_limits();
    l.max_output_bytes = 1000;
    run_full("def main():\n    while True:\n        print('x' * 100)\n", NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_OUTPUT_LIMIT, "OutputLimitExceeded", "stdout exceeded the output limit of 1000");
    assert_int_equal(out.stdout_bytes, 1000);
    assert_true(out.stdout_truncated);
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_memory_and_process_limits(void **state)
{
    sandbox_limits l = default_limits();
    l.memory_mb = 64;
    capture cap = {0};
    sandbox_outcome out;
    run_full("def main():\n"
             "    blocks = []\n"
             "    for i in range(64):\n"
             "        blocks.append(bytearray(4 << 20))\n"
             "    return len(blocks)\n",
             NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "MemoryLimitExceeded", "64 MB");
    sandbox_outcome_free(&out);
    capture_free(&cap);

    l = default_limits();
    l.max_processes = 6;
    run_full("import subprocess\n"
             "def main():\n"
             "    ps = [subprocess.Popen(['sleep', '5']) for _ in range(20)]\n"
             "    return len(ps)\n",
             NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "ResourceLimitExceeded", "max_processes");
    sandbox_outcome_free(&out);
    capture_free(&cap);

    l = default_limits();
    l.max_file_size_mb = 1;
    run_full("def main():\n    open('/tmp/big', 'wb').write(b'x' * (3 << 20))\n", NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "ResourceLimitExceeded", "File size limit of 1 MB");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* ---- the pool heals and never refuses ---- */

typedef struct par_job {
    pthread_t t;
    sandbox_outcome out;
    int n;
} par_job;

static void *par_main(void *arg)
{
    par_job *p = arg;
    char job_id[64], inputs[64];
    snprintf(job_id, sizeof job_id, "pool-par-%d-%d", (int)getpid(), p->n);
    snprintf(inputs, sizeof inputs, "{\"n\": %d}", p->n);
    sandbox_spec spec = {.job_id = job_id, .script = "import time\ndef main(n):\n    time.sleep(0.3)\n    return n\n",
                         .inputs_json = inputs, .limits = default_limits(), .cancel_fd = -1};
    backend->run(&spec, NULL, &p->out);
    return NULL;
}

static void test_more_jobs_than_warm_sandboxes_still_run(void **state)
{
    par_job jobs[6];
    for (int i = 0; i < 6; i++) {
        jobs[i].n = i;
        assert_int_equal(pthread_create(&jobs[i].t, NULL, par_main, &jobs[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(jobs[i].t, NULL);
        if (jobs[i].out.verdict != SANDBOX_SUCCEEDED)
            dump(&jobs[i].out, NULL);
        assert_int_equal(jobs[i].out.verdict, SANDBOX_SUCCEEDED);
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal(jobs[i].out.result_json, want);
        sandbox_outcome_free(&jobs[i].out);
    }
}

static void test_killed_zygote_is_replaced(void **state)
{
    wait_ready(2);
    json_int_t failures_before;
    status_field("failures", &failures_before);
    pid_t pids[8];
    int n = zygote_pids(pids, 8);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], SIGKILL), 0);
    /* Jobs keep working: the dead warm sandboxes are dropped, a new zygote forks. */
    for (int i = 0; i < 3; i++) {
        capture cap = {0};
        sandbox_outcome out;
        run_simple("def main():\n    return 7\n", NULL, &cap, &out);
        expect_result(&out, &cap, "7");
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
    json_int_t failures_after;
    status_field("failures", &failures_after);
    assert_true(failures_after > failures_before);
    pid_t now[8];
    int m = zygote_pids(now, 8);
    assert_true(m >= 1);
    for (int i = 0; i < m; i++)
        for (int k = 0; k < n; k++)
            assert_true(now[i] != pids[k]);
}

typedef struct tp_arg {
    pthread_t t;
    int jobs, ok;
} tp_arg;

static void *tp_main(void *arg)
{
    tp_arg *a = arg;
    for (int i = 0; i < a->jobs; i++) {
        sandbox_outcome out;
        char job_id[64];
        snprintf(job_id, sizeof job_id, "pool-tp-%d-%p-%d", (int)getpid(), (void *)a, i);
        for (char *c = job_id; *c; c++)
            if (*c == 'x')
                *c = '0';
        sandbox_spec spec = {.job_id = job_id, .script = "def main():\n    return 1\n", .inputs_json = "{}",
                             .limits = default_limits(), .cancel_fd = -1};
        backend->run(&spec, NULL, &out);
        a->ok += out.verdict == SANDBOX_SUCCEEDED;
        sandbox_outcome_free(&out);
    }
    return NULL;
}

/* Informational: jobs per second through the backend at concurrency 4 (2x CPUs here). */
static void test_throughput(void **state)
{
    wait_ready(2);
    tp_arg a[4];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 4; i++) {
        a[i] = (tp_arg){.jobs = 15};
        assert_int_equal(pthread_create(&a[i].t, NULL, tp_main, &a[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(a[i].t, NULL);
        ok += a[i].ok;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("pool: throughput at concurrency 4: %.0f jobs/s\n", 60 / s);
    assert_int_equal(ok, 60);
}

static void test_status_and_latency(void **state)
{
    wait_ready(2);
    double total = 0, best = 1e9;
    for (int i = 0; i < 20; i++) {
        capture cap = {0};
        sandbox_outcome out;
        wait_ready(1);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        run_simple("def main():\n    return 1\n", NULL, &cap, &out);
        clock_gettime(CLOCK_MONOTONIC, &b);
        expect_result(&out, &cap, "1");
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        total += ms;
        if (ms < best)
            best = ms;
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
    print_message("pool: trivial job through the backend: mean %.2f ms, best %.2f ms\n", total / 20, best);
    char buf[2048];
    assert_true(pool_status_json(buf, sizeof buf) > 0);
    print_message("pool status: %s\n", buf);
    json_int_t started;
    status_field("started", &started);
    assert_true(started >= 20);
    assert_int_equal(pool_status_json(buf, 8), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_and_subprocess),
        cmocka_unit_test(test_exception_and_validation),
        cmocka_unit_test(test_identity_hostname_env),
        cmocka_unit_test(test_large_environment),
        cmocka_unit_test(test_filesystem_is_locked_down),
        cmocka_unit_test(test_network_is_loopback_only),
        cmocka_unit_test(test_seccomp_and_caps_inside),
        cmocka_unit_test(test_no_state_between_jobs),
        cmocka_unit_test(test_timeout_cancel_output_cap),
        cmocka_unit_test(test_memory_and_process_limits),
        cmocka_unit_test(test_more_jobs_than_warm_sandboxes_still_run),
        cmocka_unit_test(test_killed_zygote_is_replaced),
        cmocka_unit_test(test_status_and_latency),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
