/* The `ephemeral` backend end to end, driven directly (no HTTP): the Python contract
 * holds inside the sandbox, and what the script can see of the machine is what the
 * sandbox promises (hostname, uid, read-only root, no host /etc, loopback only,
 * seccomp, limits mapped to the right error types, nothing left behind). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/cgroup.h"
#include "sandbox/ephemeral.h"
#include "sandbox/sandbox.h"
#include "sandbox/workdir.h"

static const sandbox_backend *backend = &sandbox_backend_ephemeral;
static char tmp_root[PATH_MAX];
static char work_root[PATH_MAX + 16];
static int job_counter;

enum { UID_BASE = 2100000, UID_COUNT = 16 };

#define HARNESS_JOB_PREFIX "eph"
#include "sandbox_harness.h"
#include "large_env.h"

/* Processes on the host running as one of the sandbox uids: none may outlive a job. */
static int count_sandbox_processes(void)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            unsigned ruid;
            if (sscanf(line, "Uid:\t%u", &ruid) == 1) {
                if (ruid >= UID_BASE && ruid < UID_BASE + 2 * UID_COUNT)
                    n++;
                break;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/executord-test-ephemeral-XXXXXX");
    if (!mkdtemp(tmp_root))
        return -1;
    snprintf(work_root, sizeof work_root, "%s/work", tmp_root);
    static char locks[PATH_MAX + 16];
    snprintf(locks, sizeof locks, "%s/uid-locks", tmp_root);
    ephemeral_options o = {.uid_base = UID_BASE, .uid_count = UID_COUNT, .uid_lock_dir = locks};
    ephemeral_configure(&o);
    sandbox_config cfg = {.python_path = "/usr/bin/python3", .work_root = work_root};
    char why[1024] = "";
    if (backend->init(&cfg, why, sizeof why) != 0) {
        fprintf(stderr, "ephemeral init: %s\n", why);
        return -1;
    }
    setenv("EXECUTORD_TEST_CANARY", "leaked", 1);
    return 0;
}

static int group_teardown(void **state)
{
    backend->shutdown();
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
               "    print('sum', a + b)\n"
               "    return {'sum': a + b, 'echo': r.stdout.strip()}\n",
               "{\"a\": 2, \"b\": 40}", &cap, &out);
    expect_result(&out, &cap, "{\"sum\": 42, \"echo\": \"hi from echo\"}");
    assert_non_null(cap.buf[1]);
    assert_non_null(strstr(cap.buf[1], "sum 42"));
    assert_true(out.usage.wall_ms > 0);
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_identity_hostname_env(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("import os, socket\n"
               "def main():\n"
               "    return [socket.gethostname(), os.getuid(), os.getgid(), os.geteuid(), os.getgroups(),\n"
               "            os.getcwd(), 'EXECUTORD_TEST_CANARY' in os.environ, os.environ.get('HOME')]\n",
               NULL, &cap, &out);
    expect_result(&out, &cap, "[\"sandbox\", 1000, 1000, 1000, [], \"/work\", false, \"/work\"]");
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
    snprintf(job_id, sizeof job_id, "eph-bigenv-%d", (int)getpid());
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
               "    r['old_root'] = os.path.exists('/tmp/' + 'executord-test-ephemeral') or os.path.exists('/root')\n"
               "    return r\n",
               NULL, &cap, &out);
    /* pid 1 (the sandbox's init) is hidden: hidepid=invisible; the runner is pid 2. */
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
    /* A listener of "the service" on the host's loopback: unreachable from the job. */
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

    /* allow_network: the service's namespace, so the listener is reachable. */
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
               "def main():\n"
               "    return {'unshare': sc(272, 0x10000000), 'ptrace': sc(101, 16, 1, 0, 0),\n"
               "            'mount': sc(165, 0, 0, 0, 0, 0), 'keyctl': sc(250, 0, 0, 0, 0, 0),\n"
               "            'bpf': sc(321, 0, 0, 0), 'setuid0': sc(105, 0),\n"
               "            'capeff': [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0],\n"
               "            'nnp': [l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0]}\n",
               NULL, &cap, &out);
    expect_result(&out, &cap,
                  "{\"unshare\": \"EPERM\", \"ptrace\": \"EPERM\", \"mount\": \"EPERM\", \"keyctl\": \"EPERM\","
                  " \"bpf\": \"EPERM\", \"setuid0\": \"EPERM\", \"capeff\": \"0000000000000000\", \"nnp\": \"1\"}");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* ---- limits and kills ---- */

static void test_memory_limit(void **state)
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
    if (sandbox_cgroup_mode() != CGROUP_NONE) {
        assert_true(out.usage.memory_peak_bytes > 32 << 20);
        assert_true(out.usage.memory_peak_bytes <= (64 << 20) + (1 << 20));
    }
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_process_limit(void **state)
{
    sandbox_limits l = default_limits();
    l.max_processes = 6;
    capture cap = {0};
    sandbox_outcome out;
    run_full("import subprocess\n"
             "def main():\n"
             "    ps = [subprocess.Popen(['sleep', '5']) for _ in range(20)]\n"
             "    return len(ps)\n",
             NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "ResourceLimitExceeded", "max_processes");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    assert_int_equal(count_sandbox_processes(), 0);
}

static void test_daemon_and_timeout_leave_nothing(void **state)
{
    sandbox_limits l = default_limits();
    l.timeout_seconds = 1.5;
    capture cap = {0};
    sandbox_outcome out;
    run_full("import os, time, signal\n"
             "def main():\n"
             "    if os.fork() == 0:\n"
             "        os.setsid()\n"
             "        if os.fork() == 0:\n"
             "            signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "            time.sleep(60)\n"
             "        os._exit(0)\n"
             "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "    time.sleep(60)\n",
             NULL, &l, false, &cap, &out);
    assert_int_equal(out.verdict, SANDBOX_TIMED_OUT);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    assert_int_equal(count_sandbox_processes(), 0);
    /* the job's cgroup is gone too */
    if (sandbox_cgroup_mode() != CGROUP_NONE) {
        DIR *d = opendir(sandbox_cgroup_parent_path());
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)))
            assert_true(strncmp(e->d_name, "job-", 4) != 0);
        closedir(d);
    }
}

static void test_usage_reports_cgroup(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("def main():\n"
               "    x = bytearray(20 << 20)\n"
               "    return sum(range(2000000))\n",
               NULL, &cap, &out);
    assert_int_equal(out.verdict, SANDBOX_SUCCEEDED);
    if (sandbox_cgroup_mode() != CGROUP_NONE) {
        assert_true(out.usage.memory_peak_bytes >= 20 << 20);
        assert_true(out.usage.cgroup_cpu_ms >= 0);
        assert_int_equal(out.usage.oom_kills, 0);
    } else {
        assert_int_equal(out.usage.memory_peak_bytes, -1);
    }
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_jobs_do_not_share_tmp(void **state)
{
    capture cap = {0};
    sandbox_outcome out;
    run_simple("def main():\n"
               "    for p in ['/tmp/mark', '/dev/shm/mark', '/work/mark']:\n"
               "        open(p, 'w').write('x')\n"
               "    return 1\n",
               NULL, &cap, &out);
    expect_result(&out, &cap, "1");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    run_simple("import os\n"
               "def main():\n"
               "    return [os.path.exists(p) for p in ['/tmp/mark', '/dev/shm/mark', '/work/mark']]\n",
               NULL, &cap, &out);
    expect_result(&out, &cap, "[false, false, false]");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_file_size_limit(void **state)
{
    sandbox_limits l = default_limits();
    l.max_file_size_mb = 2;
    capture cap = {0};
    sandbox_outcome out;
    run_full("def main():\n"
             "    with open('/work/big', 'wb') as f:\n"
             "        f.write(b'x' * (3 << 20))\n",
             NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "ResourceLimitExceeded", "File size limit of 2 MB");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

static void test_uid_slots_held_by_another_instance_are_skipped(void **state)
{
    /* Another executord on this host holds every slot but one (its flocks). */
    int fds[UID_COUNT];
    const int free_slot = 5;
    for (int i = 0; i < UID_COUNT; i++) {
        fds[i] = -1;
        if (i == free_slot)
            continue;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/uid-locks/slot-%d.lock", tmp_root, UID_BASE + 2 * i);
        fds[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fds[i] >= 0);
        assert_int_equal(flock(fds[i], LOCK_EX | LOCK_NB), 0);
    }
    capture cap = {0};
    sandbox_outcome out;
    run_simple("def main():\n    return open('/proc/self/uid_map').read().split()\n", NULL, &cap, &out);
    char want[160];
    snprintf(want, sizeof want, "[\"0\", \"%d\", \"1\", \"1000\", \"%d\", \"1\"]", UID_BASE + 2 * free_slot,
             UID_BASE + 2 * free_slot + 1);
    expect_result(&out, &cap, want);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    for (int i = 0; i < UID_COUNT; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_setup_failure_fails_closed(void **state)
{
    /* The new root's mount point vanished (a /tmp cleaner, say): the job must fail with
     * the step and errno, and the script must not run at all. */
    char base[PATH_MAX * 2];
    snprintf(base, sizeof base, "%s/.ephemeral-root", work_root);
    assert_int_equal(rmdir(base), 0);
    capture cap = {0};
    sandbox_outcome out;
    run_simple("print('ran')\ndef main():\n    return 1\n", NULL, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_SETUP_ERROR, "SandboxError",
                   "mount tmpfs on the new root: No such file or directory");
    assert_null(cap.buf[1]);
    assert_null(out.result_json);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    assert_int_equal(mkdir(base, 0700), 0);
    assert_int_equal(count_sandbox_processes(), 0);
}

/* Last: re-initialises the backend without cgroups and back. */
static void test_without_cgroups_falls_back_to_rlimits_and_says_so(void **state)
{
    backend->shutdown();
    static char locks[PATH_MAX + 16];
    snprintf(locks, sizeof locks, "%s/uid-locks", tmp_root);
    ephemeral_options o = {.uid_base = UID_BASE, .uid_count = UID_COUNT, .uid_lock_dir = locks,
                           .cgroup_root = "/nonexistent-cgroupfs"};
    ephemeral_configure(&o);
    sandbox_config cfg = {.python_path = "/usr/bin/python3", .work_root = work_root};
    char why[1024] = "";
    assert_int_equal(backend->init(&cfg, why, sizeof why), 0); /* available ... */
    assert_non_null(strstr(why, "rlimits only"));                /* ... but never silently */
    assert_non_null(strstr(why, "/nonexistent-cgroupfs"));
    assert_string_equal(ephemeral_status(), why);
    assert_int_equal(sandbox_cgroup_mode(), CGROUP_NONE);

    sandbox_limits l = default_limits();
    l.memory_mb = 64;
    capture cap = {0};
    sandbox_outcome out;
    run_full("def main():\n"
             "    return len(bytearray(200 << 20))\n",
             NULL, &l, false, &cap, &out);
    expect_failure(&out, &cap, SANDBOX_FAILED, "MemoryLimitExceeded", "64 MB");
    assert_int_equal(out.usage.memory_peak_bytes, -1);
    assert_int_equal(out.usage.oom_kills, -1);
    sandbox_outcome_free(&out);
    capture_free(&cap);
    run_simple("def main():\n    return 7\n", NULL, &cap, &out);
    expect_result(&out, &cap, "7");
    sandbox_outcome_free(&out);
    capture_free(&cap);

    backend->shutdown();
    o.cgroup_root = NULL;
    ephemeral_configure(&o);
    assert_int_equal(backend->init(&cfg, why, sizeof why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_and_subprocess),
        cmocka_unit_test(test_identity_hostname_env),
        cmocka_unit_test(test_large_environment),
        cmocka_unit_test(test_filesystem_is_locked_down),
        cmocka_unit_test(test_network_is_loopback_only),
        cmocka_unit_test(test_seccomp_and_caps_inside),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_process_limit),
        cmocka_unit_test(test_daemon_and_timeout_leave_nothing),
        cmocka_unit_test(test_usage_reports_cgroup),
        cmocka_unit_test(test_jobs_do_not_share_tmp),
        cmocka_unit_test(test_file_size_limit),
        cmocka_unit_test(test_uid_slots_held_by_another_instance_are_skipped),
        cmocka_unit_test(test_setup_failure_fails_closed),
        cmocka_unit_test(test_without_cgroups_falls_back_to_rlimits_and_says_so),
    };
    return cmocka_run_group_tests_name("ephemeral", tests, group_setup, group_teardown);
}
