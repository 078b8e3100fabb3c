/* The package environment cache (src/depcache.c) on a real folder: ids, hits, LRU
 * eviction at the bound, environments in use kept, one install for concurrent jobs, a
 * failure shared and not kept, cancelled waits, atomic publication, a restart's index and
 * the removal of what a dead instance left. The installs here write plain files (the
 * cache's contract with its installer); pip's install is tested in test_depinstall.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "src/depcache.h"
#include "src/metrics.h"

#define KIB 1024

typedef struct installer {
    atomic_int calls;
    size_t bytes;          /* the size of the one file each install writes */
    int sleep_ms;          /* how long an install takes */
    const char *fail;      /* fail with PackageInstallError and this message */
    int cancelled;         /* the first this many installs end cancelled */
    depcache *cache;       /* to check that nothing is published during the install */
    const char *id;
    char root[320];
} installer;

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int install_files(void *ctx, const char *work, const char *dest, sandbox_outcome *out)
{
    installer *in = ctx;
    int call = atomic_fetch_add(&in->calls, 1);
    struct stat st;
    assert_int_equal(stat(work, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_not_equal(stat(dest, &st), 0); /* dest is the installer's to create */
    if (in->id) {                             /* not visible before it is complete */
        char published[512];
        snprintf(published, sizeof published, "%s/envs/%s", in->root, in->id);
        assert_int_not_equal(stat(published, &st), 0);
    }
    if (in->sleep_ms)
        sleep_ms(in->sleep_ms);
    if (in->fail) {
        out->verdict = SANDBOX_FAILED;
        sandbox_outcome_set_error(out, "PackageInstallError", "%s", in->fail);
        return -1;
    }
    if (call < in->cancelled) {
        out->verdict = SANDBOX_CANCELLED;
        sandbox_outcome_set_error(out, "Cancelled", "cancelled");
        return -1;
    }
    assert_int_equal(mkdir(dest, 0755), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/pkg.py", dest);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    char *buf = malloc(in->bytes + 1);
    memset(buf, 'x', in->bytes);
    assert_int_equal(write(fd, buf, in->bytes), (ssize_t)in->bytes);
    free(buf);
    close(fd);
    return 0;
}

static char root[] = "/tmp/test_depcache.XXXXXX";
static char dir[300];

static int setup(void **state)
{
    strcpy(root, "/tmp/test_depcache.XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof dir, "%s/deps", root);
    return 0;
}

static int teardown(void **state)
{
    depcache_unmount_below(root);
    assert_int_equal(depcache_remove_tree(root), 0);
    return 0;
}

static depcache *open_cache(uint64_t max_bytes)
{
    char err[512] = "";
    depcache *c = depcache_open(dir, max_bytes, err, sizeof err);
    if (!c)
        fail_msg("depcache_open: %s", err);
    return c;
}

static void make_id(const char *deps, char id[DEPCACHE_ID_LEN + 1])
{
    depcache_env_id(deps, "3.11.2 linux-x86_64 cpython-311", "{\"find_links\":\"/w\"}", id);
}

static void make_ids(char a[65], char b[65], char c[65])
{
    make_id("[\"a\"]", a);
    make_id("[\"b\"]", b);
    make_id("[\"c\"]", c);
}

static bool published(const char *id)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/envs/%s", dir, id);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int count_entries(const char *what)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, what);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* acquire that must succeed, then (unless keep) release. */
static depcache_lease use(depcache *c, const char *id, installer *in, bool keep)
{
    depcache_lease lease;
    sandbox_outcome out;
    sandbox_outcome_init(&out);
    int rc = depcache_acquire(c, id, install_files, in, -1, &lease, &out);
    if (rc != 0)
        fail_msg("acquire %s: %s", id, out.error_message ? out.error_message : "?");
    sandbox_outcome_free(&out);
    if (!keep)
        depcache_release(c, &lease);
    return lease;
}

static void ids_are_stable_and_cover_every_part(void **state)
{
    char a[65], b[65];
    depcache_env_id("[\"pyyaml>=6\"]", "3.11", "{}", a);
    /* sha256("13:[\"pyyaml>=6\"]4:3.112:{}"): the format is part of the cache's layout. */
    assert_string_equal(a, "7f2428e63909f573e353bfd9e914b046ece650ab8834e3ac0cce4af467eee77f");
    depcache_env_id("[\"pyyaml>=6\"]", "3.11", "{}", b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);
    depcache_env_id("[\"pyyaml>=7\"]", "3.11", "{}", b);
    assert_string_not_equal(a, b);
    depcache_env_id("[\"pyyaml>=6\"]", "3.12", "{}", b);
    assert_string_not_equal(a, b);
    depcache_env_id("[\"pyyaml>=6\"]", "3.11", "{\"index_url\":\"x\"}", b);
    assert_string_not_equal(a, b);
    /* The parts are delimited: moving text from one part to the next changes the id. */
    depcache_env_id("ab", "c", "", a);
    depcache_env_id("a", "bc", "", b);
    assert_string_not_equal(a, b);
}

static uint64_t counter(metrics_family *f, const char *value)
{
    const char *values[] = {value};
    return metrics_counter_value(f, value ? values : NULL);
}

static void a_miss_installs_once_then_hits(void **state)
{
    uint64_t hits = counter(&metrics_deps_lookups, "hit"), misses = counter(&metrics_deps_lookups, "miss");
    uint64_t installs = counter(&metrics_deps_installs, "succeeded");
    depcache *c = open_cache(10 * 1024 * KIB);
    char id[65];
    make_id("[\"a\"]", id);
    installer in = {.bytes = 10 * KIB, .id = id};
    snprintf(in.root, sizeof in.root, "%s", dir);
    depcache_lease l = use(c, id, &in, false);
    assert_false(l.cache_hit);
    assert_string_equal(l.id, id);
    char want[600];
    snprintf(want, sizeof want, "%s/envs/%s", dir, id);
    assert_string_equal(l.path, want);
    l = use(c, id, &in, false);
    assert_true(l.cache_hit);
    assert_int_equal(atomic_load(&in.calls), 1);
    uint64_t bytes;
    unsigned envs;
    depcache_usage(c, &bytes, &envs);
    assert_int_equal(envs, 1);
    assert_true(bytes >= 10 * KIB && bytes < 64 * KIB);
    assert_int_equal(counter(&metrics_deps_lookups, "hit"), hits + 1);
    assert_int_equal(counter(&metrics_deps_lookups, "miss"), misses + 1);
    assert_int_equal(counter(&metrics_deps_installs, "succeeded"), installs + 1);
    metrics_buf b;
    metrics_buf_init(&b);
    metrics_write_registry(&b);
    size_t len;
    char *text = metrics_buf_take(&b, &len);
    char gauge[64];
    snprintf(gauge, sizeof gauge, "\nexecutord_deps_cache_bytes %llu\n", (unsigned long long)bytes);
    assert_non_null(strstr(text, gauge));
    assert_non_null(strstr(text, "\nexecutord_deps_cache_environments 1\n"));
    free(text);
    /* Published readable by the job's user, nothing left in staging. */
    struct stat st;
    assert_int_equal(stat(l.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    assert_int_equal(count_entries("staging"), 0);
    depcache_close(c);
}

/* Each environment below takes ~ENV bytes; the bound holds three. */
#define ENV_FILE (100 * KIB)

static uint64_t env_bytes(depcache *c)
{
    uint64_t bytes;
    unsigned envs;
    depcache_usage(c, &bytes, &envs);
    return envs ? bytes / envs : 0;
}

static void the_least_recently_used_goes_first(void **state)
{
    installer in = {.bytes = ENV_FILE};
    char a[65], b[65], cc[65], d[65];
    make_ids(a, b, cc);
    make_id("[\"d\"]", d);
    depcache *c = open_cache(1024 * 1024 * KIB);
    use(c, a, &in, false);
    uint64_t one = env_bytes(c);
    depcache_close(c);
    uint64_t evictions = counter(&metrics_deps_evictions, NULL);
    c = open_cache(3 * one + one / 2);
    use(c, b, &in, false);
    use(c, cc, &in, false);
    use(c, a, &in, false); /* a is now the most recent, b the least */
    assert_int_equal(atomic_load(&in.calls), 3);
    use(c, d, &in, false);
    assert_false(published(b));
    assert_true(published(a) && published(cc) && published(d));
    uint64_t bytes;
    unsigned envs;
    depcache_usage(c, &bytes, &envs);
    assert_int_equal(envs, 3);
    assert_true(bytes <= 3 * one + one / 2);
    assert_int_equal(count_entries("trash"), 0);
    assert_int_equal(counter(&metrics_deps_evictions, NULL), evictions + 1);
    depcache_close(c);
}

static void an_environment_in_use_is_not_evicted(void **state)
{
    installer in = {.bytes = ENV_FILE};
    char a[65], b[65], cc[65];
    make_ids(a, b, cc);
    depcache *c = open_cache(1024 * 1024 * KIB);
    use(c, a, &in, false);
    uint64_t one = env_bytes(c);
    depcache_close(c);
    c = open_cache(one + one / 2); /* room for one */
    depcache_lease held = use(c, a, &in, true);
    depcache_lease held_b = use(c, b, &in, true);
    /* Both in use: over the bound until they are released. */
    assert_true(published(a) && published(b));
    depcache_release(c, &held); /* a is the older: it goes now */
    assert_false(published(a));
    assert_true(published(b));
    depcache_lease held_c = use(c, cc, &in, true); /* b still held: c is kept over the bound */
    assert_true(published(b) && published(cc));
    depcache_release(c, &held_b);
    assert_false(published(b));
    depcache_release(c, &held_c);
    uint64_t bytes;
    unsigned envs;
    depcache_usage(c, &bytes, &envs);
    assert_int_equal(envs, 1);
    assert_true(published(cc)); /* the most recent stays */
    depcache_close(c);
}

static void an_environment_larger_than_the_bound_fails(void **state)
{
    installer in = {.bytes = 300 * KIB};
    char a[65];
    make_id("[\"big\"]", a);
    depcache *c = open_cache(100 * KIB);
    depcache_lease l;
    sandbox_outcome out;
    sandbox_outcome_init(&out);
    assert_int_equal(depcache_acquire(c, a, install_files, &in, -1, &l, &out), -1);
    assert_int_equal(out.verdict, SANDBOX_FAILED);
    assert_string_equal(out.error_type, "PackageInstallError");
    assert_non_null(strstr(out.error_message, "--deps-cache-mb"));
    sandbox_outcome_free(&out);
    assert_false(published(a));
    assert_int_equal(count_entries("staging"), 0);
    assert_int_equal(count_entries("envs"), 0);
    depcache_close(c);
}

typedef struct racer {
    depcache *c;
    const char *id;
    installer *in;
    int cancel_fd;
    int rc;
    depcache_lease lease;
    sandbox_outcome out;
    pthread_t t;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    sandbox_outcome_init(&r->out);
    r->rc = depcache_acquire(r->c, r->id, install_files, r->in, r->cancel_fd, &r->lease, &r->out);
    return NULL;
}

static void start_racers(racer *r, int n, depcache *c, const char *id, installer *in)
{
    for (int i = 0; i < n; i++) {
        r[i] = (racer){.c = c, .id = id, .in = in, .cancel_fd = -1};
        assert_int_equal(pthread_create(&r[i].t, NULL, race, &r[i]), 0);
    }
}

static void concurrent_jobs_share_one_install(void **state)
{
    char a[65];
    make_id("[\"a\"]", a);
    installer in = {.bytes = 10 * KIB, .sleep_ms = 300};
    depcache *c = open_cache(1024 * 1024 * KIB);
    racer r[4];
    start_racers(r, 4, c, a, &in);
    int hits = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(r[i].t, NULL);
        assert_int_equal(r[i].rc, 0);
        hits += r[i].lease.cache_hit;
        assert_true(published(a));
        sandbox_outcome_free(&r[i].out);
    }
    assert_int_equal(atomic_load(&in.calls), 1);
    assert_true(hits <= 3); /* at least the installer missed; late starters may hit */
    /* Every job holds it: a tiny bound still keeps it until the last release. */
    for (int i = 0; i < 4; i++)
        depcache_release(c, &r[i].lease);
    depcache_close(c);
}

static void a_failure_is_shared_and_not_kept(void **state)
{
    char a[65];
    make_id("[\"broken\"]", a);
    installer in = {.sleep_ms = 300, .fail = "ERROR: No matching distribution found for broken"};
    depcache *c = open_cache(1024 * 1024 * KIB);
    racer r[3];
    start_racers(r, 3, c, a, &in);
    for (int i = 0; i < 3; i++) {
        pthread_join(r[i].t, NULL);
        assert_int_equal(r[i].rc, -1);
        assert_int_equal(r[i].out.verdict, SANDBOX_FAILED);
        assert_string_equal(r[i].out.error_type, "PackageInstallError");
        assert_string_equal(r[i].out.error_message, "ERROR: No matching distribution found for broken");
        sandbox_outcome_free(&r[i].out);
    }
    assert_int_equal(atomic_load(&in.calls), 1);
    assert_false(published(a));
    /* Not cached: the next job tries again. */
    in.fail = NULL;
    in.sleep_ms = 0;
    in.bytes = KIB;
    use(c, a, &in, false);
    assert_int_equal(atomic_load(&in.calls), 2);
    depcache_close(c);
}

static void a_waiting_job_can_be_cancelled(void **state)
{
    char a[65];
    make_id("[\"slow\"]", a);
    installer in = {.bytes = KIB, .sleep_ms = 3000};
    depcache *c = open_cache(1024 * 1024 * KIB);
    racer first, waiter;
    start_racers(&first, 1, c, a, &in);
    sleep_ms(100);
    int p[2];
    assert_int_equal(pipe(p), 0);
    waiter = (racer){.c = c, .id = a, .in = &in, .cancel_fd = p[0]};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pthread_create(&waiter.t, NULL, race, &waiter), 0);
    sleep_ms(100);
    assert_int_equal(write(p[1], "x", 1), 1);
    pthread_join(waiter.t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(waiter.rc, -1);
    assert_int_equal(waiter.out.verdict, SANDBOX_CANCELLED);
    int64_t waited_ms = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(waited_ms < 2000); /* did not wait for the install (3 s) */
    sandbox_outcome_free(&waiter.out);
    pthread_join(first.t, NULL);
    assert_int_equal(first.rc, 0);
    sandbox_outcome_free(&first.out);
    depcache_release(c, &first.lease);
    close(p[0]);
    close(p[1]);
    assert_int_equal(atomic_load(&in.calls), 1);
    depcache_close(c);
}

static void a_cancelled_install_is_taken_over_by_a_waiter(void **state)
{
    char a[65];
    make_id("[\"x\"]", a);
    installer in = {.bytes = KIB, .sleep_ms = 300, .cancelled = 1};
    depcache *c = open_cache(1024 * 1024 * KIB);
    racer first, waiter;
    start_racers(&first, 1, c, a, &in);
    sleep_ms(100);
    start_racers(&waiter, 1, c, a, &in);
    pthread_join(first.t, NULL);
    pthread_join(waiter.t, NULL);
    assert_int_equal(first.rc, -1);
    assert_int_equal(first.out.verdict, SANDBOX_CANCELLED);
    assert_int_equal(waiter.rc, 0);
    assert_int_equal(atomic_load(&in.calls), 2);
    depcache_release(c, &waiter.lease);
    sandbox_outcome_free(&first.out);
    sandbox_outcome_free(&waiter.out);
    depcache_close(c);
}

static void set_mtime(const char *id, time_t when)
{
    char path[600];
    snprintf(path, sizeof path, "%s/envs/%s", dir, id);
    struct timespec t[2] = {{.tv_sec = when}, {.tv_sec = when}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void a_restart_reuses_the_cache_in_lru_order(void **state)
{
    installer in = {.bytes = ENV_FILE};
    char a[65], b[65], cc[65];
    make_ids(a, b, cc);
    depcache *c = open_cache(1024 * 1024 * KIB);
    use(c, a, &in, false);
    use(c, b, &in, false);
    uint64_t bytes, bytes2;
    unsigned envs, envs2;
    depcache_usage(c, &bytes, &envs);
    uint64_t one = bytes / envs;
    depcache_close(c);
    /* b used long ago, a recently: the order a restart must read back. */
    time_t now = time(NULL);
    set_mtime(b, now - 3600);
    set_mtime(a, now - 60);
    c = open_cache(1024 * 1024 * KIB);
    depcache_usage(c, &bytes2, &envs2);
    assert_int_equal(envs2, 2);
    assert_int_equal(bytes2, bytes);
    assert_true(use(c, a, &in, false).cache_hit);
    assert_int_equal(atomic_load(&in.calls), 2);
    depcache_close(c);
    /* Reopened with room for two: installing a third evicts b, the least recent. */
    c = open_cache(2 * one + one / 2);
    use(c, cc, &in, false);
    assert_false(published(b));
    assert_true(published(a) && published(cc));
    depcache_close(c);
    /* Reopened with room for one: the older goes at start-up. */
    set_mtime(cc, now - 7200);
    c = open_cache(one + one / 2);
    assert_true(published(a));
    assert_false(published(cc));
    depcache_close(c);
}

static void what_a_dead_instance_left_is_removed(void **state)
{
    depcache *c = open_cache(1024 * 1024 * KIB);
    depcache_close(c);
    char path[700];
    snprintf(path, sizeof path, "%s/staging/%064d.3", dir, 0);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/staging/%064d.3/env", dir, 0);
    assert_int_equal(mkdir(path, 0755), 0);
    bool mounted = false;
    if (geteuid() == 0) { /* an install's tmpfs still mounted when it died */
        snprintf(path, sizeof path, "%s/staging/%064d.3/mnt", dir, 0);
        assert_int_equal(mkdir(path, 0700), 0);
        mounted = mount("test", path, "tmpfs", 0, "size=1m") == 0;
        if (mounted) {
            char f[800];
            snprintf(f, sizeof f, "%s/file", path);
            int fd = open(f, O_WRONLY | O_CREAT, 0600);
            assert_true(fd >= 0);
            close(fd);
        }
    }
    snprintf(path, sizeof path, "%s/trash/%064d.9", dir, 1);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/envs/not-an-id", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    c = open_cache(1024 * 1024 * KIB);
    assert_int_equal(count_entries("staging"), 0);
    assert_int_equal(count_entries("trash"), 0);
    assert_int_equal(count_entries("envs"), 0);
    uint64_t bytes;
    unsigned envs;
    depcache_usage(c, &bytes, &envs);
    assert_int_equal(envs, 0);
    depcache_close(c);
    (void)mounted;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_are_stable_and_cover_every_part),
        cmocka_unit_test_setup_teardown(a_miss_installs_once_then_hits, setup, teardown),
        cmocka_unit_test_setup_teardown(the_least_recently_used_goes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(an_environment_in_use_is_not_evicted, setup, teardown),
        cmocka_unit_test_setup_teardown(an_environment_larger_than_the_bound_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_jobs_share_one_install, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failure_is_shared_and_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(a_waiting_job_can_be_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_install_is_taken_over_by_a_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(a_restart_reuses_the_cache_in_lru_order, setup, teardown),
        cmocka_unit_test_setup_teardown(what_a_dead_instance_left_is_removed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
