/* The package install (src/depinstall.c) through the package cache, for real: pip in an
 * ephemeral sandbox from a wheelhouse the test builds, into the cache. An install and
 * its files; pip's failure as PackageInstallError with pip's message and its output in
 * the job's logs; a build script that attacks the host (reads its files, leaves links,
 * set-uid files and FIFOs in /deps) gets nothing of the host and what it leaves is made
 * harmless by the copy. Root: sandboxes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/backends.h"
#include "src/depcache.h"
#include "src/depinstall.h"

enum { UID_BASE = 2400000, UID_COUNT = 8 }; /* apart from the other backend tests (ctest -j) */

static char tmp[PATH_MAX] = "/tmp/test_depinstall.XXXXXX";
static char wheels[PATH_MAX + 16], work_root[PATH_MAX + 16], cache_dir[PATH_MAX + 16];
static char interpreter[512];
static depcache *cache;
static depinstall_config icfg;

__attribute__((format(printf, 1, 2))) static void sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* tinypkg 1.0 as a wheel; evilpkg 1.0 as an sdist whose setup.py attacks while it builds;
 * setuptools and wheel for pip's build isolation (there is no index). */
static void build_wheelhouse(void)
{
    char src[PATH_MAX + 64], path[PATH_MAX + 128];
    snprintf(src, sizeof src, "%s/src/tinypkg", tmp);
    sh("mkdir -p %s/tinypkg", src);
    snprintf(path, sizeof path, "%s/pyproject.toml", src);
    write_file(path, "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n"
                     "[project]\nname = \"tinypkg\"\nversion = \"1.0\"\n");
    snprintf(path, sizeof path, "%s/tinypkg/__init__.py", src);
    write_file(path, "VALUE = 42\n");
    sh("cd %s && /usr/bin/python3 -m pip wheel -q --no-build-isolation --no-deps -w %s . >/dev/null 2>&1", src,
       wheels);
    sh("cp /usr/share/python-wheels/setuptools-*.whl /usr/share/python-wheels/wheel-*.whl %s/", wheels);

    snprintf(src, sizeof src, "%s/src/evilpkg-1.0", tmp);
    sh("mkdir -p %s/evilpkg", src);
    snprintf(path, sizeof path, "%s/PKG-INFO", src);
    write_file(path, "Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n");
    snprintf(path, sizeof path, "%s/evilpkg/__init__.py", src);
    write_file(path, "");
    snprintf(path, sizeof path, "%s/setup.py", src);
    write_file(path,
               "import os, stat, sys\n"
               "from setuptools import setup\n"
               "def attempt(what, fn):\n"
               "    try:\n"
               "        fn()\n"
               "        result = 'worked'\n"
               "    except Exception as e:\n"
               "        result = 'failed'\n"
               "    with open('/deps/report.txt', 'a') as f:\n"
               "        f.write('%s: %s\\n' % (what, result))\n"
               "attempt('read /etc/shadow', lambda: open('/etc/shadow').read())\n"
               "attempt('read the host root', lambda: os.listdir('/root'))\n"
               "attempt('link to /etc/shadow', lambda: os.symlink('/etc/shadow', '/deps/shadow'))\n"
               "def suid():\n"
               "    with open('/deps/suid', 'w') as f: f.write('x')\n"
               "    os.chmod('/deps/suid', 0o6777)\n"
               "attempt('set-uid file', suid)\n"
               "attempt('fifo', lambda: os.mkfifo('/deps/fifo'))\n"
               "attempt('hard link', lambda: os.link('/usr/bin/python3', '/deps/python-hardlink'))\n"
               "setup(name='evilpkg', version='1.0', packages=['evilpkg'])\n");
    sh("cd %s/src && tar czf %s/evilpkg-1.0.tar.gz evilpkg-1.0", tmp, wheels);
}

static int group_setup(void **state)
{
    if (!mkdtemp(tmp))
        return -1;
    snprintf(wheels, sizeof wheels, "%s/wheels", tmp);
    snprintf(work_root, sizeof work_root, "%s/work", tmp);
    snprintf(cache_dir, sizeof cache_dir, "%s/deps", tmp);
    if (mkdir(wheels, 0755) != 0 || chmod(tmp, 0755) != 0)
        return -1;
    build_wheelhouse();
    static sandbox_config cfg;
    cfg = (sandbox_config){
        .python_path = "/usr/bin/python3",
        .work_root = work_root,
        .sandbox = {.uid_base = UID_BASE, .uid_count = UID_COUNT, .uid_lock_dir = ""},
    };
    int removed;
    char err[512];
    if (sandbox_prepare_work_root(work_root, &removed, err, sizeof err) < 0) {
        fprintf(stderr, "work root: %s\n", err);
        return -1;
    }
    backends_init(&cfg, "ephemeral");
    const char *why = NULL;
    if (!backends_available("ephemeral", &why)) {
        fprintf(stderr, "ephemeral: %s\n", why);
        return -1;
    }
    if (depinstall_interpreter("/usr/bin/python3", NULL, interpreter, sizeof interpreter) != 0) {
        fprintf(stderr, "interpreter: %s\n", interpreter);
        return -1;
    }
    icfg = (depinstall_config){.find_links = wheels, .disk_mb = 64, .timeout_seconds = 120,
                               .interpreter = interpreter};
    cache = depcache_open(cache_dir, 256ull << 20, err, sizeof err);
    if (!cache) {
        fprintf(stderr, "cache: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    depcache_close(cache);
    backends_shutdown();
    depcache_unmount_below(tmp);
    depcache_remove_tree(tmp);
    return 0;
}

typedef struct logs {
    char text[3][65536];
    size_t len[3];
} logs;

static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    logs *l = ctx;
    size_t room = sizeof l->text[0] - 1 - l->len[stream];
    if (len > room)
        len = room;
    memcpy(l->text[stream] + l->len[stream], data, len);
    l->len[stream] += len;
    l->text[stream][l->len[stream]] = '\0';
}

/* One job's acquire with the real install. */
static int install(const char *deps_json, logs *l, depcache_lease *lease, sandbox_outcome *out)
{
    static int n;
    char job_id[64], id[DEPCACHE_ID_LEN + 1];
    snprintf(job_id, sizeof job_id, "depinstall-%d-%d", (int)getpid(), ++n);
    char *sources = depinstall_sources_text(&icfg);
    assert_non_null(sources);
    depcache_env_id(deps_json, interpreter, sources, id);
    free(sources);
    sandbox_limits limits = {.timeout_seconds = 30, .memory_mb = 512, .cpu_seconds = 60, .max_processes = 64,
                             .max_file_size_mb = 16, .max_open_files = 256, .max_output_bytes = 1 << 20};
    sandbox_io io = {.ctx = l, .on_output = on_output};
    depinstall_job job = {.cfg = &icfg, .job_id = job_id, .deps_json = deps_json, .limits = &limits,
                          .cancel_fd = -1, .io = &io};
    sandbox_outcome_init(out);
    return depcache_acquire(cache, id, depinstall_run, &job, -1, lease, out);
}

static void a_wheel_is_installed_into_the_cache(void **state)
{
    static logs l;
    depcache_lease lease;
    sandbox_outcome out;
    int rc = install("[\"tinypkg==1.0\"]", &l, &lease, &out);
    if (rc != 0)
        fail_msg("install: %s: %s\nstdout: %s\nstderr: %s", out.error_type, out.error_message, l.text[1],
                 l.text[2]);
    assert_false(lease.cache_hit);
    assert_non_null(strstr(l.text[1], "Successfully installed tinypkg-1.0"));
    char path[PATH_MAX + 64];
    struct stat st;
    snprintf(path, sizeof path, "%s/tinypkg/__init__.py", lease.path);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(st.st_uid, 0);
    snprintf(path, sizeof path, "%s/tinypkg-1.0.dist-info", lease.path);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    depcache_release(cache, &lease);
    sandbox_outcome_free(&out);
    /* Nothing left staged (nor mounted: a mount point would not be removed). */
    char staging[PATH_MAX + 32];
    snprintf(staging, sizeof staging, "%s/staging", cache_dir);
    assert_int_equal(rmdir(staging), 0);
    assert_int_equal(mkdir(staging, 0700), 0);
    /* The second job: a hit, no pip. */
    static logs again;
    assert_int_equal(install("[\"tinypkg==1.0\"]", &again, &lease, &out), 0);
    assert_true(lease.cache_hit);
    assert_int_equal(again.len[1] + again.len[2], 0);
    depcache_release(cache, &lease);
    sandbox_outcome_free(&out);
}

static void a_failed_install_is_a_package_install_error_with_pips_message(void **state)
{
    static logs l;
    depcache_lease lease;
    sandbox_outcome out;
    assert_int_equal(install("[\"nothere==1.0\"]", &l, &lease, &out), -1);
    assert_int_equal(out.verdict, SANDBOX_FAILED);
    assert_string_equal(out.error_type, "PackageInstallError");
    assert_non_null(strstr(out.error_message, "No matching distribution found for nothere==1.0"));
    assert_null(strstr(out.error_message, "Traceback"));
    assert_non_null(strstr(l.text[2], "No matching distribution found")); /* in the job's logs */
    sandbox_outcome_free(&out);
}

static void a_hostile_build_script_is_contained(void **state)
{
    static logs l;
    depcache_lease lease;
    sandbox_outcome out;
    int rc = install("[\"evilpkg==1.0\"]", &l, &lease, &out);
    if (rc != 0)
        fail_msg("install: %s: %s\nstderr: %s", out.error_type, out.error_message, l.text[2]);
    /* What the build script could do, as it wrote down (pip shows a build's output only
     * when it fails). */
    char path[PATH_MAX + 64], target[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/report.txt", lease.path);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char report[4096];
    size_t n = fread(report, 1, sizeof report - 1, f);
    report[n] = '\0';
    fclose(f);
    assert_non_null(strstr(report, "read /etc/shadow: failed"));
    assert_non_null(strstr(report, "read the host root: failed"));
    assert_non_null(strstr(report, "hard link: failed"));
    snprintf(path, sizeof path, "%s/shadow", lease.path);
    if (lstat(path, &st) == 0) { /* kept as a link (resolved in the job's own root), never followed */
        assert_true(S_ISLNK(st.st_mode));
        ssize_t len = readlink(path, target, sizeof target - 1);
        assert_true(len > 0);
        target[len] = '\0';
        assert_string_equal(target, "/etc/shadow");
    }
    snprintf(path, sizeof path, "%s/suid", lease.path);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07000, 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    snprintf(path, sizeof path, "%s/fifo", lease.path);
    assert_int_not_equal(lstat(path, &st), 0);
    snprintf(path, sizeof path, "%s/evilpkg/__init__.py", lease.path);
    assert_int_equal(lstat(path, &st), 0);
    depcache_release(cache, &lease);
    sandbox_outcome_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_wheel_is_installed_into_the_cache),
        cmocka_unit_test(a_failed_install_is_a_package_install_error_with_pips_message),
        cmocka_unit_test(a_hostile_build_script_is_contained),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
