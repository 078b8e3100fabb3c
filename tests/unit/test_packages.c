/* A job's packages (sandbox_spec.packages, sandbox/pkgmount.h) in each isolating backend,
 * through real sandboxes: the folder is seen at /deps, read-only, nosuid, nodev, and the
 * job can neither write, remount nor unmount it; writable only when asked; the find-links
 * folder at /wheels; the runner puts /deps after the standard library and a PYTHONPATH of
 * env_vars first on sys.path; the next job (a new warm sandbox) sees none of it; a folder
 * that cannot be mounted fails the job with SandboxError, and the backend goes on.
 *   test_packages [ephemeral|pool]...   (no argument: both; ctest runs one per backend) */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox_harness.h"

/* Each backend's uid ranges, apart from the other backend tests' (ctest -j). */
static const harness_options backends[] = {
    {.backend = "ephemeral", .uid_base = 2300000, .uid_count = 16},
    {.backend = "pool", .uid_base = 2350000, .uid_count = 16, .pool_uid_base = 3400000, .pool_size = 2},
};
static const harness_options *current;

/* ---- host folders ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

static void make_dir(const char *path, mode_t mode)
{
    assert_int_equal(mkdir(path, mode), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* <tmp_root>/<name>: a package folder as pip --target leaves it, with the package
 * exdpkg of that version and a setuid-bit file (which nosuid must neutralise). */
static void make_packages(char *dir, size_t len, const char *name, const char *version, mode_t mode)
{
    assert_true((size_t)snprintf(dir, len, "%s/%s", harness.tmp_root, name) < len);
    make_dir(dir, mode);
    char path[PATH_MAX + 128], text[64];
    snprintf(path, sizeof path, "%s/exdpkg", dir);
    make_dir(path, 0755);
    snprintf(path, sizeof path, "%s/exdpkg/__init__.py", dir);
    snprintf(text, sizeof text, "VERSION = '%s'\n", version);
    write_file(path, text, 0644);
    snprintf(path, sizeof path, "%s/suid", dir);
    write_file(path, "", 04755);
}

static void run_with(const char *script, const sandbox_packages *pkgs, const char *const *env, capture *cap,
                     sandbox_outcome *out)
{
    char *fields = runner_fields_make(script, NULL);
    sandbox_spec spec = {
        .runner_fields_json = fields,
        .env = env,
        .packages = *pkgs,
        .limits = default_limits(),
        .cancel_fd = -1,
    };
    run_spec(&spec, cap, out);
    free(fields);
}

/* What the job sees of /deps and /wheels, and what it cannot do to them: writes, a
 * remount read-write (mount(2) and mount_setattr), an unmount. Then whether the mount is
 * still there and read-only: the attempts changed nothing. */
#define SCRIPT_PROBE                                                                             \
    "import ctypes, errno, os, sys\n"                                                            \
    "libc = ctypes.CDLL(None, use_errno=True)\n"                                                 \
    "def err(r):\n"                                                                              \
    "    return 'ok' if r == 0 else errno.errorcode.get(ctypes.get_errno(), '?')\n"              \
    "def tryw(p):\n"                                                                             \
    "    try:\n"                                                                                 \
    "        with open(p, 'w') as f: f.write('x')\n"                                             \
    "        return 'written'\n"                                                                 \
    "    except OSError as e:\n"                                                                 \
    "        return errno.errorcode[e.errno]\n"                                                  \
    "class Attr(ctypes.Structure):\n"                                                            \
    "    _fields_ = [('set', ctypes.c_uint64), ('clr', ctypes.c_uint64),\n"                      \
    "                ('prop', ctypes.c_uint64), ('userns', ctypes.c_uint64)]\n"                  \
    "def mountinfo(p):\n"                                                                        \
    "    for line in open('/proc/self/mountinfo'):\n"                                            \
    "        f = line.split()\n"                                                                 \
    "        if f[4] == p:\n"                                                                    \
    "            return sorted(o for o in f[5].split(',') if o in ('ro', 'rw', 'nosuid', 'nodev', 'noexec'))\n" \
    "    return None\n"                                                                          \
    "def main():\n"                                                                              \
    "    r = {}\n"                                                                               \
    "    import exdpkg\n"                                                                        \
    "    r['version'] = exdpkg.VERSION\n"                                                        \
    "    r['file'] = exdpkg.__file__\n"                                                          \
    "    r['suid'] = bool(os.stat('/deps/suid').st_mode & 0o4000)\n"                            \
    "    r['write'] = tryw('/deps/new')\n"                                                       \
    "    r['write_pkg'] = tryw('/deps/exdpkg/__init__.py')\n"                                    \
    "    r['remount'] = err(libc.mount(None, b'/deps', None, 32 | 4096, None))\n"                \
    "    a = Attr(0, 1, 0, 0)\n"                                                                 \
    "    r['setattr'] = err(libc.syscall(442, -100, b'/deps', 0, ctypes.byref(a), 32))\n"        \
    "    r['umount'] = err(libc.umount2(b'/deps', 2))\n"                                        \
    "    r['deps'] = mountinfo('/deps')\n"                                                       \
    "    r['wheels'] = mountinfo('/wheels')\n"                                                   \
    "    r['wheel_files'] = sorted(os.listdir('/wheels'))\n"                                     \
    "    r['write_wheels'] = tryw('/wheels/new')\n"                                              \
    "    return r\n"

static void test_packages_read_only(void **state)
{
    char deps[PATH_MAX + 64], wheels[PATH_MAX + 64];
    make_packages(deps, sizeof deps, "env-ro", "2.0", 0755);
    snprintf(wheels, sizeof wheels, "%s/wheelhouse", harness.tmp_root);
    make_dir(wheels, 0755);
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/exdpkg-2.0-py3-none-any.whl", wheels);
    write_file(path, "not really a wheel", 0644);
    sandbox_packages p = {.dir = deps, .wheels_dir = wheels};
    capture cap = {0};
    sandbox_outcome out;
    run_with(SCRIPT_PROBE, &p, NULL, &cap, &out);
    /* The job holds no capability, and its system-call filter refuses mount calls with
     * EPERM: either alone would stop it. */
    expect_result(&out, &cap,
                  "{\"version\": \"2.0\", \"file\": \"/deps/exdpkg/__init__.py\", \"suid\": true,"
                  " \"write\": \"EROFS\", \"write_pkg\": \"EROFS\","
                  " \"remount\": \"EPERM\", \"setattr\": \"EPERM\", \"umount\": \"EPERM\","
                  " \"deps\": [\"nodev\", \"nosuid\", \"ro\"], \"wheels\": [\"nodev\", \"noexec\", \"nosuid\", \"ro\"],"
                  " \"wheel_files\": [\"exdpkg-2.0-py3-none-any.whl\"], \"write_wheels\": \"EROFS\"}");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* The install sandbox's case: writable, what it writes lands in the host folder, and the
 * folder is not on the runner's sys.path. */
static void test_packages_writable_when_asked(void **state)
{
    char deps[PATH_MAX + 64];
    make_packages(deps, sizeof deps, "env-rw", "3.0", 0777); /* the sandbox's uid is not the owner */
    sandbox_packages p = {.dir = deps, .writable = true};
    capture cap = {0};
    sandbox_outcome out;
    run_with("import os, sys\n"
             "def main():\n"
             "    with open('/deps/installed.txt', 'w') as f: f.write('pip was here')\n"
             "    opts = [l.split()[5] for l in open('/proc/self/mountinfo') if l.split()[4] == '/deps'][0]\n"
             "    return {'on_path': '/deps' in sys.path, 'rw': 'rw' in opts.split(','), 'wheels': os.listdir('/wheels')}\n",
             &p, NULL, &cap, &out);
    expect_result(&out, &cap, "{\"on_path\": false, \"rw\": true, \"wheels\": []}");
    sandbox_outcome_free(&out);
    capture_free(&cap);
    char path[PATH_MAX + 128], got[32] = "";
    snprintf(path, sizeof path, "%s/installed.txt", deps);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, got, sizeof got - 1), 12);
    close(fd);
    assert_string_equal(got, "pip was here");
}

/* sys.path: a PYTHONPATH of env_vars first, in order (an empty entry is the working
 * folder, a relative one absolute), then the standard library, then /deps, then the
 * interpreter's site-/dist-packages. */
static void test_sys_path_order(void **state)
{
    char deps[PATH_MAX + 64];
    make_packages(deps, sizeof deps, "env-path", "1.0", 0755);
    sandbox_packages p = {.dir = deps};
    const char *env[] = {"PYTHONPATH=/work/lib::rel", NULL};
    capture cap = {0};
    sandbox_outcome out;
    run_with("import os, sys\n"
             "def main():\n"
             "    os.makedirs('/work/lib', exist_ok=True)\n"
             "    with open('/work/lib/mine.py', 'w') as f: f.write('WHO = 1\\n')\n"
             "    import mine\n"
             "    p = sys.path\n"
             "    d = p.index('/deps')\n"
             "    std = os.path.dirname(os.__file__)\n"
             "    site = [i for i, e in enumerate(p) if os.path.basename(e) in ('site-packages', 'dist-packages')]\n"
             "    return {'head': p[:3], 'std_before': p.index(std) < d, 'site_after': all(i > d for i in site),\n"
             "            'next_is_site': not site or site[0] == d + 1, 'mine': mine.__file__,\n"
             "            'env': os.environ['PYTHONPATH'], 'bytecode': sys.dont_write_bytecode}\n",
             &p, env, &cap, &out);
    expect_result(&out, &cap,
                  "{\"head\": [\"/work/lib\", \"/work\", \"/work/rel\"], \"std_before\": true, \"site_after\": true,"
                  " \"next_is_site\": true, \"mine\": \"/work/lib/mine.py\", \"env\": \"/work/lib::rel\","
                  " \"bytecode\": true}");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* One job's packages are gone for the next (a fresh sandbox; in the pool a new warm one,
 * the used one destroyed), and two jobs with different folders each see their own. */
static void test_next_job_sees_nothing(void **state)
{
    char one[PATH_MAX + 64], two[PATH_MAX + 64];
    make_packages(one, sizeof one, "env-one", "1.1", 0755);
    make_packages(two, sizeof two, "env-two", "2.2", 0755);
    const char *script = "import os\n"
                         "def main():\n"
                         "    try:\n"
                         "        import exdpkg\n"
                         "        v = exdpkg.VERSION\n"
                         "    except ImportError:\n"
                         "        v = None\n"
                         "    mounted = any(l.split()[4] in ('/deps', '/wheels') for l in open('/proc/self/mountinfo'))\n"
                         "    return [v, sorted(os.listdir('/deps')), mounted]\n";
    capture cap = {0};
    sandbox_outcome out;
    for (int round = 0; round < 2; round++) {
        sandbox_packages p = {.dir = round ? two : one};
        run_with(script, &p, NULL, &cap, &out);
        expect_result(&out, &cap, round ? "[\"2.2\", [\"exdpkg\", \"suid\"], true]" : "[\"1.1\", [\"exdpkg\", \"suid\"], true]");
        sandbox_outcome_free(&out);
        capture_free(&cap);
        sandbox_packages none = {0};
        for (int i = 0; i < 3; i++) { /* every warm sandbox of the pool, and its refills */
            run_with(script, &none, NULL, &cap, &out);
            expect_result(&out, &cap, "[null, [], false]");
            sandbox_outcome_free(&out);
            capture_free(&cap);
        }
    }
}

/* A folder that cannot be mounted: the job never runs (SandboxError naming the step),
 * and the backend goes on with the next job. */
static void test_failed_mount_is_sandbox_error(void **state)
{
    char missing[PATH_MAX + 16], file[PATH_MAX + 16];
    snprintf(missing, sizeof missing, "%s/no-such-env", harness.tmp_root);
    snprintf(file, sizeof file, "%s/plain-file", harness.tmp_root);
    write_file(file, "", 0644);
    const char *script = "def main():\n    print('ran')\n    return 1\n";
    capture cap = {0};
    sandbox_outcome out;
    sandbox_packages cases[] = {{.dir = missing}, {.dir = file}, {.dir = NULL, .wheels_dir = missing}};
    const char *parts[] = {"packages: open_tree", "packages: ", "packages: open_tree"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_with(script, &cases[i], NULL, &cap, &out);
        expect_failure(&out, &cap, SANDBOX_SETUP_ERROR, "SandboxError", parts[i]);
        assert_null(cap.buf[SANDBOX_STDOUT]);
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
    sandbox_packages none = {0};
    run_with(script, &none, NULL, &cap, &out);
    expect_result(&out, &cap, "1");
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* ---- the suite ---- */

static const struct CMUnitTest package_tests[] = {
    cmocka_unit_test(test_packages_read_only),
    cmocka_unit_test(test_packages_writable_when_asked),
    cmocka_unit_test(test_sys_path_order),
    cmocka_unit_test(test_next_job_sees_nothing),
    cmocka_unit_test(test_failed_mount_is_sandbox_error),
};

static int group_setup(void **state)
{
    return harness_start(current);
}

static int group_teardown(void **state)
{
    return harness_stop();
}

static int run_for(const harness_options *o)
{
    char group[64];
    snprintf(group, sizeof group, "packages/%s", o->backend);
    current = o;
    return _cmocka_run_group_tests(group, package_tests, sizeof package_tests / sizeof package_tests[0], group_setup,
                                   group_teardown);
}

int main(int argc, char **argv)
{
    int failed = 0;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (argc < 2 || strcmp(argv[1], backends[i].backend) == 0)
            failed += run_for(&backends[i]);
    if (argc >= 2 && strcmp(argv[1], "ephemeral") != 0 && strcmp(argv[1], "pool") != 0) {
        fprintf(stderr, "test_packages: unknown backend \"%s\" (ephemeral, pool)\n", argv[1]);
        return 2;
    }
    return failed;
}
