/* Configuration precedence and validation: default < environment < flag, and every bad
 * value refused with exit code 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "src/config.h"

static int load(config *c, int argc, const char **argv)
{
    /* Silence the one-line errors the failing cases print. */
    fflush(stderr);
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    int rc = config_load(c, argc, (char **)argv);
    fclose(stderr);
    stderr = saved;
    return rc;
}

static int setup(void **state)
{
    unsetenv("EXECUTORD_LISTEN");
    unsetenv("EXECUTORD_WORKERS");
    unsetenv("EXECUTORD_DEFAULT_MEMORY_MB");
    unsetenv("EXECUTORD_ALLOWED_HOSTS");
    unsetenv("EXECUTORD_INSECURE_NO_AUTH");
    unsetenv("EXECUTORD_BACKENDS");
    unsetenv("EXECUTORD_DURABILITY");
    return 0;
}

static void store_and_replica_flags(void **state)
{
    config c;
    const char *plain[] = {"executord"};
    assert_int_equal(load(&c, 1, plain), 0);
    assert_string_equal(c.store_url, "");   /* SQLite in --data-dir */
    assert_string_equal(c.replica_id, "");  /* derived at start-up */
    assert_int_equal(c.replica_lease_seconds, 10);

    setenv("EXECUTORD_STORE", "postgres://u@db/x", 1);
    assert_int_equal(load(&c, 1, plain), 0);
    unsetenv("EXECUTORD_STORE");
    assert_string_equal(c.store_url, "postgres://u@db/x");
    const char *flags[] = {"executord", "--store", "postgresql:///executord?host=/run/postgresql",
                           "--replica-id", "web-1.a_b", "--replica-lease-seconds", "3"};
    assert_int_equal(load(&c, 7, flags), 0);
    assert_string_equal(c.store_url, "postgresql:///executord?host=/run/postgresql");
    assert_string_equal(c.replica_id, "web-1.a_b");
    assert_int_equal(c.replica_lease_seconds, 3);

    const char *bad[][3] = {
        {"executord", "--store", "mysql://db/x"},       {"executord", "--store", "/var/lib/x.db"},
        {"executord", "--replica-id", "a b"},           {"executord", "--replica-id", "a/b"},
        {"executord", "--replica-id", "0123456789012345678901234567890123456789012345678901234567890123"},
        {"executord", "--replica-lease-seconds", "0"},  {"executord", "--replica-lease-seconds", "3601"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(load(&c, 3, bad[i]), 2);
    /* the description names the store's kind, never its URL (it may hold a password) */
    const char *secret[] = {"executord", "--store", "postgresql://u:hunter2@db/x"};
    assert_int_equal(load(&c, 3, secret), 0);
    char desc[2048];
    config_describe(&c, desc, sizeof desc);
    assert_non_null(strstr(desc, "store=postgresql durability=server's"));
    assert_null(strstr(desc, "hunter2"));
}

static void durability_flag(void **state)
{
    config c;
    const char *plain[] = {"executord"};
    assert_int_equal(load(&c, 1, plain), 0);
    assert_string_equal(c.durability, "process-crash");
    setenv("EXECUTORD_DURABILITY", "power-loss", 1);
    assert_int_equal(load(&c, 1, plain), 0);
    assert_string_equal(c.durability, "power-loss");
    const char *flag[] = {"executord", "--durability", "process-crash"};
    assert_int_equal(load(&c, 3, flag), 0); /* the flag wins */
    assert_string_equal(c.durability, "process-crash");
    unsetenv("EXECUTORD_DURABILITY");
    const char *bad[][3] = {
        {"executord", "--durability", "full"},  {"executord", "--durability", ""},
        {"executord", "--durability", "Power-Loss"}, {"executord", "--durability", "normal"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(load(&c, 3, bad[i]), 2);
    setenv("EXECUTORD_DURABILITY", "sometimes", 1);
    assert_int_equal(load(&c, 1, plain), 2);
    unsetenv("EXECUTORD_DURABILITY");
}

static void package_sources_and_install_limits(void **state)
{
    config c;
    const char *plain[] = {"executord"};
    assert_int_equal(load(&c, 1, plain), 0);
    assert_false(config_has_package_source(&c));
    assert_int_equal(c.deps_cache_mb, 2048);
    assert_int_equal(c.deps_install_timeout_seconds, 300);
    assert_int_equal(c.deps_install_disk_mb, 1024);

    setenv("EXECUTORD_PIP_EXTRA_INDEX_URL", "http://a/simple  https://b/simple", 1);
    assert_int_equal(load(&c, 1, plain), 0);
    assert_int_equal(c.pip_extra_index_urls.n, 2);
    assert_string_equal(c.pip_extra_index_urls.items[1], "https://b/simple");
    assert_true(config_has_package_source(&c));
    /* the flags replace the variable's list, each flag one more */
    const char *flags[] = {"executord", "--pip-extra-index-url", "https://c/", "--pip-extra-index-url=HTTP://d:8080/x",
                           "--pip-index-url", "https://user:pw@idx/simple", "--pip-find-links", "/",
                           "--deps-cache-mb", "10", "--deps-install-timeout-seconds", "5",
                           "--deps-install-disk-mb", "64"};
    assert_int_equal(load(&c, 14, flags), 0);
    unsetenv("EXECUTORD_PIP_EXTRA_INDEX_URL");
    assert_int_equal(c.pip_extra_index_urls.n, 2);
    assert_string_equal(c.pip_extra_index_urls.items[0], "https://c/");
    assert_string_equal(c.pip_extra_index_urls.items[1], "HTTP://d:8080/x");
    assert_string_equal(c.pip_index_url, "https://user:pw@idx/simple");
    assert_string_equal(c.pip_find_links, "/");
    assert_int_equal(c.deps_cache_mb, 10);
    assert_int_equal(c.deps_install_timeout_seconds, 5);
    assert_int_equal(c.deps_install_disk_mb, 64);

    const char *bad[][3] = {
        {"executord", "--pip-index-url", "ftp://x/"},  {"executord", "--pip-index-url", "x/simple"},
        {"executord", "--pip-index-url", "http://"},   {"executord", "--pip-index-url", "http:///x"},
        {"executord", "--pip-index-url", "http://a b"}, {"executord", "--pip-extra-index-url", ""},
        {"executord", "--pip-extra-index-url", "file:///x"}, {"executord", "--pip-find-links", "wheels"},
        {"executord", "--pip-find-links", "/nonexistent/wheels"}, {"executord", "--pip-find-links", "/etc/hostname"},
        {"executord", "--deps-cache-mb", "0"}, {"executord", "--deps-install-timeout-seconds", "0"},
        {"executord", "--deps-install-disk-mb", "0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (load(&c, 3, bad[i]) != 2)
            fail_msg("%s %s accepted", bad[i][1], bad[i][2]);
}

static void defaults_are_embedded(void **state)
{
    config c;
    const char *argv[] = {"executord"};
    assert_int_equal(load(&c, 1, argv), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.backend, "pool");
    assert_string_equal(c.python, "/usr/bin/python3");
    assert_int_equal(c.workers, sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024);
    assert_true(c.default_limits.timeout_seconds == 30.0);
    assert_int_equal(c.default_limits.max_output_bytes, 1048576);
    assert_string_equal(c.api_token, "");
    assert_int_equal(c.insecure_no_auth, 0);
    assert_string_equal(c.backends, "pool,ephemeral");
    assert_false(config_backend_enabled(&c, "direct"));
    assert_int_equal(c.n_allowed_hosts, 0);
}

static void environment_overrides_default_and_flag_overrides_environment(void **state)
{
    config c;
    setenv("EXECUTORD_LISTEN", "0.0.0.0:9000", 1);
    setenv("EXECUTORD_WORKERS", "3", 1);
    const char *argv[] = {"executord", "--workers", "5"};
    assert_int_equal(load(&c, 3, argv), 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 9000);
    assert_int_equal(c.workers, 5);
    const char *argv2[] = {"executord", "--listen=[::1]:0"};
    assert_int_equal(load(&c, 2, argv2), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
}

static void bad_flags_and_values_exit_2(void **state)
{
    config c;
    const char *unknown[] = {"executord", "--bogus", "1"};
    assert_int_equal(load(&c, 3, unknown), 2);
    const char *missing[] = {"executord", "--workers"};
    assert_int_equal(load(&c, 2, missing), 2);
    const char *notnum[] = {"executord", "--workers", "two"};
    assert_int_equal(load(&c, 3, notnum), 2);
    const char *negative[] = {"executord", "--workers", "-1"};
    assert_int_equal(load(&c, 3, negative), 2);
    const char *port[] = {"executord", "--listen", "127.0.0.1:70000"};
    assert_int_equal(load(&c, 3, port), 2);
    const char *noport[] = {"executord", "--listen", "localhost"};
    assert_int_equal(load(&c, 3, noport), 2);
    const char *backend[] = {"executord", "--backend", "docker"};
    assert_int_equal(load(&c, 3, backend), 2);
    const char *level[] = {"executord", "--log-level", "loud"};
    assert_int_equal(load(&c, 3, level), 2);
    const char *timeout[] = {"executord", "--default-timeout-seconds", "0"};
    assert_int_equal(load(&c, 3, timeout), 2);
    const char *positional[] = {"executord", "serve"};
    assert_int_equal(load(&c, 2, positional), 2);
    setenv("EXECUTORD_WORKERS", "many", 1);
    const char *plain[] = {"executord"};
    assert_int_equal(load(&c, 1, plain), 2);
    unsetenv("EXECUTORD_WORKERS");
}

static void default_above_maximum_is_refused(void **state)
{
    config c;
    const char *argv[] = {"executord", "--default-memory-mb", "2048", "--max-memory-mb", "1024"};
    assert_int_equal(load(&c, 5, argv), 2);
    const char *ok[] = {"executord", "--default-memory-mb", "1024", "--max-memory-mb", "1024"};
    assert_int_equal(load(&c, 5, ok), 0);
    assert_int_equal(c.default_limits.memory_mb, 1024);
}

static void memory_budget_flag_and_what_the_operator_set(void **state)
{
    config c;
    const char *plain[] = {"executord"};
    assert_int_equal(load(&c, 1, plain), 0);
    assert_true(c.memory_budget_mb == 0); /* automatic: src/membudget.c decides */
    assert_false(config_given(&c, "max-memory-mb"));
    assert_false(config_given(&c, "memory-budget-mb"));
    setenv("EXECUTORD_MEMORY_BUDGET_MB", "600", 1);
    const char *argv[] = {"executord", "--max-memory-mb", "512"};
    assert_int_equal(load(&c, 3, argv), 0);
    unsetenv("EXECUTORD_MEMORY_BUDGET_MB");
    assert_true(c.memory_budget_mb == 600);
    assert_true(config_given(&c, "memory-budget-mb"));   /* from the environment */
    assert_true(config_given(&c, "max-memory-mb"));      /* from a flag */
    assert_false(config_given(&c, "default-memory-mb")); /* the embedded default */
    assert_false(config_given(&c, "no-such-option"));
    const char *bad[] = {"executord", "--memory-budget-mb", "-1"};
    assert_int_equal(load(&c, 3, bad), 2);
}

static void token_file_is_read_without_trailing_newline(void **state)
{
    char path[] = "/tmp/executord-token-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\n", 7), 7);
    close(fd);
    config c;
    const char *argv[] = {"executord", "--api-token-file", path};
    assert_int_equal(load(&c, 3, argv), 0);
    assert_string_equal(c.api_token, "s3cret");

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(load(&c, 3, argv), 2); /* an empty token would authenticate anyone */
    unlink(path);

    const char *missing[] = {"executord", "--api-token-file", "/nonexistent/token"};
    assert_int_equal(load(&c, 3, missing), 2);
}

/* The weaker settings are explicit and refused where they would expose the API. */
static void insecure_settings_are_refused_beyond_loopback(void **state)
{
    config c;
    const char *lo[] = {"executord", "--insecure-no-auth", "--listen", "127.0.0.2:1"};
    assert_int_equal(load(&c, 4, lo), 0);
    assert_int_equal(c.insecure_no_auth, 1);
    const char *lo6[] = {"executord", "--insecure-no-auth", "--listen", "[::1]:1"};
    assert_int_equal(load(&c, 4, lo6), 0);
    const char *name[] = {"executord", "--insecure-no-auth", "--listen", "localhost:1"};
    assert_int_equal(load(&c, 4, name), 0);
    static const char *const exposed[] = {"0.0.0.0:1", "[::]:1", "192.0.2.1:1", "example.com:1",
                                          "[::ffff:10.0.0.1]:1"};
    for (size_t i = 0; i < sizeof exposed / sizeof exposed[0]; i++) {
        const char *argv[] = {"executord", "--insecure-no-auth", "--listen", exposed[i]};
        assert_int_equal(load(&c, 4, argv), 2);
    }
    setenv("EXECUTORD_INSECURE_NO_AUTH", "1", 1);
    const char *env_exposed[] = {"executord", "--listen", "0.0.0.0:1"};
    assert_int_equal(load(&c, 3, env_exposed), 2);
    const char *flag_off[] = {"executord", "--listen", "0.0.0.0:1", "--insecure-no-auth=0"};
    assert_int_equal(load(&c, 4, flag_off), 0);
    unsetenv("EXECUTORD_INSECURE_NO_AUTH");
    const char *both[] = {"executord", "--insecure-no-auth", "--api-token-file", "/dev/null"};
    assert_int_equal(load(&c, 4, both), 2);
    const char *star[] = {"executord", "--insecure-no-auth", "--allowed-host", "*"};
    assert_int_equal(load(&c, 4, star), 2);
    const char *star_token[] = {"executord", "--allowed-host", "*"};
    assert_int_equal(load(&c, 3, star_token), 0);
}

static void backends_and_allowed_hosts_are_parsed(void **state)
{
    config c;
    const char *all[] = {"executord", "--backends", "direct,pool,ephemeral", "--backend", "direct"};
    assert_int_equal(load(&c, 5, all), 0);
    assert_true(config_backend_enabled(&c, "direct") && config_backend_enabled(&c, "pool"));
    assert_false(config_backend_enabled(&c, "poo"));
    static const char *const bad[] = {"", "pool,", ",pool", "pool,pool", "docker", "pool,,ephemeral", "Pool"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {"executord", "--backends", bad[i]};
        assert_int_equal(load(&c, 3, argv), 2);
    }
    const char *outside[] = {"executord", "--backend", "direct"};
    assert_int_equal(load(&c, 3, outside), 2); /* the default backend must be enabled */

    setenv("EXECUTORD_ALLOWED_HOSTS", "a.example,B.example", 1);
    const char *none[] = {"executord"};
    assert_int_equal(load(&c, 1, none), 0);
    assert_int_equal(c.n_allowed_hosts, 2);
    assert_string_equal(c.allowed_hosts[1], "b.example");
    const char *flags[] = {"executord", "--allowed-host", "c.example", "--allowed-host=d.example"};
    assert_int_equal(load(&c, 4, flags), 0);
    assert_int_equal(c.n_allowed_hosts, 2); /* the flags replace the variable's list */
    assert_string_equal(c.allowed_hosts[0], "c.example");
    unsetenv("EXECUTORD_ALLOWED_HOSTS");
    static const char *const bad_hosts[] = {"", "a b", "a/b", "x*", "a,", "**"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        const char *argv[] = {"executord", "--allowed-host", bad_hosts[i]};
        assert_int_equal(load(&c, 3, argv), 2);
    }
}

/* --egress-allow / --egress-deny: CIDRs in canonical form, the variable's comma list
 * replaced by the flags, bad ranges and a range in both lists refused. */
static void egress_ranges_are_parsed(void **state)
{
    config c;
    setenv("EXECUTORD_EGRESS_ALLOW", "10.1.2.3/16,fd00::1/8", 1);
    const char *none[] = {"executord"};
    assert_int_equal(load(&c, 1, none), 0);
    assert_int_equal(c.egress_allow.n, 2);
    assert_string_equal(c.egress_allow.items[0], "10.1.0.0/16"); /* host bits cleared */
    assert_string_equal(c.egress_allow.items[1], "fd00::/8");
    const char *flags[] = {"executord", "--egress-allow", "192.168.7.0/24", "--egress-deny=198.51.100.7",
                           "--egress-deny", "2001:db8::/32"};
    assert_int_equal(load(&c, 6, flags), 0);
    assert_int_equal(c.egress_allow.n, 1); /* the flags replace the variable's list */
    assert_string_equal(c.egress_allow.items[0], "192.168.7.0/24");
    assert_int_equal(c.egress_deny.n, 2);
    assert_string_equal(c.egress_deny.items[0], "198.51.100.7/32");
    assert_string_equal(c.egress_deny.items[1], "2001:db8::/32");
    unsetenv("EXECUTORD_EGRESS_ALLOW");
    static const char *const bad[] = {"", "10.0.0.0/33", "fd00::/129", "10.0.0/8", "example.com", "10.0.0.0/",
                                      "10.0.0.0/-1", "10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {"executord", "--egress-deny", bad[i]};
        assert_int_equal(load(&c, 3, argv), 2);
    }
    /* The same range allowed and denied: a contradiction, said at start-up. */
    const char *both[] = {"executord", "--egress-allow", "10.9.0.0/24", "--egress-deny", "10.9.0.7/24"};
    assert_int_equal(load(&c, 5, both), 2);
}

static void help_and_version_ask_to_exit_zero(void **state)
{
    config c;
    fflush(stdout);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    const char *help[] = {"executord", "--help"};
    int rc_help = load(&c, 2, help);
    const char *version[] = {"executord", "--version"};
    int rc_version = load(&c, 2, version);
    fclose(stdout);
    stdout = saved;
    assert_int_equal(rc_help, 1);
    assert_int_equal(rc_version, 1);
}

/* Each row of sandbox/limits.def has its two flags, defaulting to the table's values. */
static void every_limit_has_default_and_max_flags(void **state)
{
    config c;
    const char *argv[] = {"executord"};
    assert_int_equal(load(&c, 1, argv), 0);
    sandbox_limits embedded;
    sandbox_limits_defaults(&embedded);
    for (size_t i = 0; i < sandbox_limit_count; i++) {
        const sandbox_limit_desc *d = &sandbox_limit_descs[i];
        char def[96], max[96], arg_def[128], arg_max[128];
        snprintf(def, sizeof def, "default-%s", d->flag);
        snprintf(max, sizeof max, "max-%s", d->flag);
        if (d->type == SANDBOX_LIMIT_SECONDS)
            assert_true(sandbox_limit_seconds(&c.default_limits, d) == sandbox_limit_seconds(&embedded, d));
        else
            assert_int_equal(sandbox_limit_u64(&c.default_limits, d), sandbox_limit_u64(&embedded, d));
        assert_false(config_given(&c, def));
        /* The smallest value the flag takes sets both ends; a default above the max is refused. */
        snprintf(arg_def, sizeof arg_def, "--%s=%lld", def, (long long)(d->config_min ? d->config_min : 1));
        snprintf(arg_max, sizeof arg_max, "--%s=%lld", max, (long long)(d->config_min ? d->config_min : 1));
        const char *both[] = {"executord", arg_def, arg_max};
        assert_int_equal(load(&c, 3, both), 0);
        assert_true(config_given(&c, def));
        assert_true(config_given(&c, max));
        snprintf(arg_def, sizeof arg_def, "--%s=%lld", def, (long long)(d->config_min ? d->config_min : 1) + 1);
        const char *above[] = {"executord", arg_def, arg_max};
        assert_int_equal(load(&c, 3, above), 2);
    }
}

/* The sandbox-wide defaults are the sandbox layer's, and backend names its registry's. */
static void sandbox_defaults_and_backend_names_come_from_the_sandbox_layer(void **state)
{
    config c;
    const char *argv[] = {"executord"};
    assert_int_equal(load(&c, 1, argv), 0);
    assert_int_equal(c.sandbox_tmp_mb, SANDBOX_DEFAULT_TMP_MB);
    assert_int_equal(c.sandbox_shm_mb, SANDBOX_DEFAULT_SHM_MB);
    assert_int_equal(c.sandbox_work_mb, SANDBOX_DEFAULT_WORK_MB);
    assert_int_equal(c.sandbox_uid_base, SANDBOX_DEFAULT_UID_BASE);
    assert_int_equal(c.pool_uid_base, SANDBOX_DEFAULT_POOL_UID_BASE);
    assert_string_equal(c.sandbox_uid_lock_dir, SANDBOX_DEFAULT_UID_LOCK_DIR);
    for (const sandbox_backend *const *b = sandbox_backends_all(); *b; b++) {
        char arg[64];
        snprintf(arg, sizeof arg, "--backends=%s", (*b)->name);
        const char *one[] = {"executord", arg, "--backend", (*b)->name};
        assert_int_equal(load(&c, 4, one), 0);
        assert_non_null((*b)->description);
        if ((*b)->builds_on)
            assert_non_null(sandbox_backend_find((*b)->builds_on));
    }
    const char *unknown[] = {"executord", "--backends=pool,nosuch"};
    assert_int_equal(load(&c, 2, unknown), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(defaults_are_embedded, setup),
        cmocka_unit_test_setup(package_sources_and_install_limits, setup),
        cmocka_unit_test_setup(store_and_replica_flags, setup),
        cmocka_unit_test_setup(durability_flag, setup),
        cmocka_unit_test_setup(environment_overrides_default_and_flag_overrides_environment, setup),
        cmocka_unit_test_setup(bad_flags_and_values_exit_2, setup),
        cmocka_unit_test_setup(default_above_maximum_is_refused, setup),
        cmocka_unit_test_setup(memory_budget_flag_and_what_the_operator_set, setup),
        cmocka_unit_test_setup(token_file_is_read_without_trailing_newline, setup),
        cmocka_unit_test_setup(help_and_version_ask_to_exit_zero, setup),
        cmocka_unit_test_setup(insecure_settings_are_refused_beyond_loopback, setup),
        cmocka_unit_test_setup(backends_and_allowed_hosts_are_parsed, setup),
        cmocka_unit_test_setup(egress_ranges_are_parsed, setup),
        cmocka_unit_test_setup(every_limit_has_default_and_max_flags, setup),
        cmocka_unit_test_setup(sandbox_defaults_and_backend_names_come_from_the_sandbox_layer, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
