/* The memory budget's inputs and rules against fake files: MemTotal, cgroup v2 memory.max
 * and v1 memory.limit_in_bytes ("max", v1's huge "no limit", limits set above executord's
 * own cgroup, paths outside the namespace's view), which one bounds the automatic budget,
 * and how --max-memory-mb and --default-memory-mb are fitted to it or refuse the start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sandbox/cgroup.h" /* cgroup_fake.h's teardown calls sandbox_cgroup_shutdown */
#include "src/config.h"
#include "src/membudget.h"
#include "tests/unit/cgroup_fake.h"

#define MIB (1024ULL * 1024ULL)
#define MEMINFO_24G "MemTotal:       24683748 kB\nMemFree:        23302188 kB\nMemAvailable:   24253004 kB\n"

static membudget_files files(void)
{
    static char meminfo[PATH_MAX + 16], self[PATH_MAX + 16], root[PATH_MAX + 16];
    snprintf(meminfo, sizeof meminfo, "%s/meminfo", fake_root);
    snprintf(self, sizeof self, "%s/self-cgroup", fake_root);
    snprintf(root, sizeof root, "%s/cg", fake_root);
    return (membudget_files){.meminfo = meminfo, .self_cgroup = self, .cgroup_root = root};
}

static void probe_ok(membudget_memory *m)
{
    membudget_files f = files();
    char why[256] = "";
    assert_int_equal(membudget_probe(&f, m, why, sizeof why), 0);
}

/* --- parsers ---------------------------------------------------------------------------- */

static void meminfo_is_parsed(void **state)
{
    uint64_t b = 0;
    assert_int_equal(membudget_parse_meminfo(MEMINFO_24G, &b), 0);
    assert_true(b == 24683748ULL * 1024);
    assert_int_equal(membudget_parse_meminfo("MemFree: 1 kB\nMemTotal: 2048 kB\n", &b), 0);
    assert_true(b == 2048ULL * 1024);
    assert_int_equal(membudget_parse_meminfo("MemFree: 1 kB\n", &b), -1);
    assert_int_equal(membudget_parse_meminfo("MemTotal: lots kB\n", &b), -1);
    assert_int_equal(membudget_parse_meminfo("MemTotal: 2048 MB\n", &b), -1);
    assert_int_equal(membudget_parse_meminfo("MemTotal: 0 kB\n", &b), -1);
    assert_int_equal(membudget_parse_meminfo("", &b), -1);
}

static void limits_are_parsed(void **state)
{
    uint64_t b = 0;
    assert_int_equal(membudget_parse_limit("max\n", &b), 0);
    assert_true(b == UINT64_MAX);
    assert_int_equal(membudget_parse_limit("9223372036854771712\n", &b), 0); /* v1: none */
    assert_true(b == UINT64_MAX);
    assert_int_equal(membudget_parse_limit("2147483648\n", &b), 0);
    assert_true(b == 2147483648ULL);
    assert_int_equal(membudget_parse_limit("536870912", &b), 0);
    assert_true(b == 536870912ULL);
    assert_int_equal(membudget_parse_limit("", &b), -1);
    assert_int_equal(membudget_parse_limit("maximum\n", &b), -1);
    assert_int_equal(membudget_parse_limit("12 34\n", &b), -1);
    assert_int_equal(membudget_parse_limit("-1\n", &b), -1);
}

/* --- probing ---------------------------------------------------------------------------- */

static void host_memory_without_cgroups(void **state)
{
    fake_write("meminfo", MEMINFO_24G);
    membudget_memory m;
    probe_ok(&m); /* no self-cgroup file at all */
    assert_true(m.host_bytes == 24683748ULL * 1024);
    assert_non_null(strstr(m.host_source, "MemTotal"));
    assert_true(m.cgroup_bytes == 0);
}

static void sysinfo_when_meminfo_is_unreadable(void **state)
{
    membudget_memory m;
    probe_ok(&m);
    assert_string_equal(m.host_source, "sysinfo");
    assert_true(m.host_bytes > 16 * MIB);
}

static void v2_limit_of_our_cgroup_or_above(void **state)
{
    fake_write("meminfo", MEMINFO_24G);
    fake_write("self-cgroup", "0::/system.slice/executord.service\n");
    fake_mkdir("cg");
    fake_write("cg/cgroup.controllers", "cpu memory pids\n");
    fake_mkdir("cg/system.slice");
    fake_mkdir("cg/system.slice/executord.service");
    fake_write("cg/system.slice/executord.service/memory.max", "max\n");
    fake_write("cg/system.slice/memory.max", "4294967296\n");
    membudget_memory m;
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 4294967296ULL);
    assert_non_null(strstr(m.cgroup_file, "cg/system.slice/memory.max"));
    /* A lower limit on our own cgroup wins. */
    fake_write("cg/system.slice/executord.service/memory.max", "1073741824\n");
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 1073741824ULL);
    assert_non_null(strstr(m.cgroup_file, "executord.service/memory.max"));
}

static void v2_unlimited_everywhere(void **state)
{
    fake_write("meminfo", MEMINFO_24G);
    fake_write("self-cgroup", "0::/a\n");
    fake_mkdir("cg");
    fake_mkdir("cg/a");
    fake_write("cg/cgroup.controllers", "memory\n");
    fake_write("cg/a/memory.max", "max\n");
    membudget_memory m;
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 0);
}

static void v2_container_root_and_hybrid_layout(void **state)
{
    fake_write("meminfo", MEMINFO_24G);
    /* A container's private cgroup namespace: "/" is the container's own cgroup, whose
     * memory.max the runtime set; executord-init moved the service into a leaf. */
    fake_write("self-cgroup", "0::/executord-service\n");
    fake_mkdir("cg");
    fake_mkdir("cg/executord-service");
    fake_write("cg/cgroup.controllers", "memory pids\n");
    fake_write("cg/memory.max", "2147483648\n");
    membudget_memory m;
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 2147483648ULL);
    assert_string_equal(fake_read("cg/memory.max"), "2147483648\n"); /* only read */

    /* Hybrid: the unified hierarchy under root/unified. */
    rm_tree(fake_root);
    assert_int_equal(mkdir(fake_root, 0700), 0);
    fake_write("meminfo", MEMINFO_24G);
    fake_write("self-cgroup", "0::/svc\n");
    fake_mkdir("cg");
    fake_mkdir("cg/unified");
    fake_mkdir("cg/unified/svc");
    fake_write("cg/unified/cgroup.controllers", "memory\n");
    fake_write("cg/unified/svc/memory.max", "3221225472\n");
    assert_false(fake_exists("cg/cgroup.controllers"));
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 3221225472ULL);
}

static void v1_memory_limit_and_huge_no_limit(void **state)
{
    fake_write("meminfo", MEMINFO_24G);
    /* This machine's layout: v1 controllers, an empty unified hierarchy. */
    fake_write("self-cgroup", "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/0c4f\n1:cpu:/\n0::/\n");
    fake_mkdir("cg");
    fake_mkdir("cg/memory");
    fake_mkdir("cg/memory/process_api");
    fake_mkdir("cg/memory/process_api/0c4f");
    fake_write("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
    fake_write("cg/memory/process_api/memory.limit_in_bytes", "9223372036854771712\n");
    fake_write("cg/memory/process_api/0c4f/memory.limit_in_bytes", "9223372036854771712\n");
    membudget_memory m;
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 0); /* "no limit" is not a limit */
    fake_write("cg/memory/process_api/memory.limit_in_bytes", "805306368\n");
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 805306368ULL);
    assert_non_null(strstr(m.cgroup_file, "cg/memory/process_api/memory.limit_in_bytes"));
}

static void v1_co_mounted_and_path_outside_the_mount(void **state)
{
    fake_write("meminfo", MEMINFO_24G);
    /* Docker on v1: /proc/self/cgroup names the host's path; the container's cgroup is
     * bound at the mount point itself. */
    fake_write("self-cgroup", "5:memory,hugetlb:/docker/abc123\n");
    fake_mkdir("cg");
    fake_mkdir("cg/memory,hugetlb");
    fake_write("cg/memory,hugetlb/memory.limit_in_bytes", "536870912\n");
    membudget_memory m;
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 536870912ULL);
    /* A path climbing out of the namespace's view is not followed above the mount. */
    fake_write("self-cgroup", "5:memory,hugetlb:/../../elsewhere\n");
    probe_ok(&m);
    assert_true(m.cgroup_bytes == 536870912ULL);
}

/* --- the rules ---------------------------------------------------------------------------- */

static config defaults(void)
{
    config c;
    memset(&c, 0, sizeof c);
    c.default_limits.memory_mb = 512;
    c.max_limits.memory_mb = 65536;
    return c;
}

static config parsed(int argc, const char **argv)
{
    config c;
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    int rc = config_load(&c, argc, (char **)argv);
    fclose(stderr);
    stderr = saved;
    assert_int_equal(rc, 0);
    return c;
}

static int apply(config *c, const membudget_memory *m, char *how, char *warn, char *err)
{
    return membudget_apply(c, m, how, 1024, warn, 1024, err, 1024);
}

static void automatic_budget_is_80_percent_of_the_lower_bound(void **state)
{
    char how[1024], warn[1024], err[1024];
    membudget_memory m = {.host_bytes = 24683748ULL * 1024, .host_source = "MemTotal in /proc/meminfo"};
    config c = defaults();
    assert_int_equal(apply(&c, &m, how, warn, err), 0);
    assert_true(c.memory_budget_mb == 24105 * 80 / 100); /* 19284 */
    assert_true(c.max_limits.memory_mb == 19284);     /* 65536 lowered to it */
    assert_true(c.default_limits.memory_mb == 512);
    assert_non_null(strstr(how, "memory budget 19284 MB (80% of 24105 MB of host memory, MemTotal"));
    assert_non_null(strstr(how, "maximum 19284 (lowered to the budget)"));
    assert_string_equal(warn, "");

    /* A cgroup limit below the host's memory bounds it instead. */
    m.cgroup_bytes = 2048 * MIB;
    snprintf(m.cgroup_file, sizeof m.cgroup_file, "/sys/fs/cgroup/memory.max");
    c = defaults();
    assert_int_equal(apply(&c, &m, how, warn, err), 0);
    assert_true(c.memory_budget_mb == 1638);
    assert_non_null(strstr(how, "80% of 2048 MB, the memory limit of executord's cgroup in /sys/fs/cgroup/memory.max"));
    /* ... and one above it does not. */
    m.cgroup_bytes = 64ULL * 1024 * MIB;
    c = defaults();
    assert_int_equal(apply(&c, &m, how, warn, err), 0);
    assert_true(c.memory_budget_mb == 19284);
}

static void a_small_budget_lowers_the_default_too(void **state)
{
    char how[1024], warn[1024], err[1024];
    membudget_memory m = {.host_bytes = 400 * MIB, .host_source = "sysinfo"};
    config c = defaults();
    assert_int_equal(apply(&c, &m, how, warn, err), 0);
    assert_true(c.memory_budget_mb == 320);
    assert_true(c.max_limits.memory_mb == 320 && c.default_limits.memory_mb == 320);
    assert_non_null(strstr(how, "default 320 (lowered to the budget)"));

    m.host_bytes = 16 * MIB; /* 80% of it is below the smallest job */
    c = defaults();
    assert_int_equal(apply(&c, &m, how, warn, err), -1);
    assert_non_null(strstr(err, "below the smallest job (16 MB): set --memory-budget-mb"));
}

static void operator_settings_above_the_budget_refuse_the_start(void **state)
{
    char how[1024], warn[1024], err[1024];
    membudget_memory m = {.host_bytes = 24683748ULL * 1024, .host_source = "MemTotal in /proc/meminfo"};
    const char *max_above[] = {"executord", "--memory-budget-mb", "600", "--max-memory-mb", "700"};
    config c = parsed(5, max_above);
    assert_int_equal(apply(&c, &m, how, warn, err), -1);
    assert_non_null(strstr(err, "--max-memory-mb 700 is above the memory budget of 600 MB (--memory-budget-mb)"));

    const char *def_above[] = {"executord", "--memory-budget-mb", "600", "--default-memory-mb", "1000"};
    c = parsed(5, def_above);
    assert_int_equal(apply(&c, &m, how, warn, err), -1);
    assert_non_null(strstr(err, "--default-memory-mb 1000 is above the memory budget of 600 MB"));

    /* Set at or below the budget: kept as set. */
    const char *fits[] = {"executord", "--memory-budget-mb", "600", "--max-memory-mb", "600", "--default-memory-mb", "100"};
    c = parsed(7, fits);
    assert_int_equal(apply(&c, &m, how, warn, err), 0);
    assert_true(c.memory_budget_mb == 600 && c.max_limits.memory_mb == 600 && c.default_limits.memory_mb == 100);
    assert_non_null(strstr(how, "memory budget 600 MB (--memory-budget-mb)"));
    assert_string_equal(warn, "");

    /* Left alone, the same maximum is lowered rather than refused. */
    const char *auto_max[] = {"executord", "--memory-budget-mb", "600"};
    c = parsed(3, auto_max);
    assert_int_equal(apply(&c, &m, how, warn, err), 0);
    assert_true(c.max_limits.memory_mb == 600 && c.default_limits.memory_mb == 512);

    const char *tiny[] = {"executord", "--memory-budget-mb", "8"};
    c = parsed(3, tiny);
    assert_int_equal(apply(&c, &m, how, warn, err), -1);
    assert_non_null(strstr(err, "raise --memory-budget-mb"));
}

static void a_budget_above_the_memory_found_is_a_warning(void **state)
{
    char how[1024], warn[1024], err[1024];
    membudget_memory m = {.host_bytes = 1024 * MIB, .host_source = "sysinfo"};
    const char *argv[] = {"executord", "--memory-budget-mb", "4096"};
    config c = parsed(3, argv);
    assert_int_equal(apply(&c, &m, how, warn, err), 0);
    assert_true(c.memory_budget_mb == 4096);
    assert_non_null(strstr(warn, "--memory-budget-mb 4096 is above the memory executord has (1024 MB"));
}

int main(void)
{
    unsetenv("EXECUTORD_MEMORY_BUDGET_MB");
    unsetenv("EXECUTORD_MAX_MEMORY_MB");
    unsetenv("EXECUTORD_DEFAULT_MEMORY_MB");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meminfo_is_parsed),
        cmocka_unit_test(limits_are_parsed),
        cmocka_unit_test_setup_teardown(host_memory_without_cgroups, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(sysinfo_when_meminfo_is_unreadable, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(v2_limit_of_our_cgroup_or_above, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(v2_unlimited_everywhere, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(v2_container_root_and_hybrid_layout, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(v1_memory_limit_and_huge_no_limit, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(v1_co_mounted_and_path_outside_the_mount, fake_setup, fake_teardown),
        cmocka_unit_test(automatic_budget_is_80_percent_of_the_lower_bound),
        cmocka_unit_test(a_small_budget_lowers_the_default_too),
        cmocka_unit_test(operator_settings_above_the_budget_refuse_the_start),
        cmocka_unit_test(a_budget_above_the_memory_found_is_a_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
