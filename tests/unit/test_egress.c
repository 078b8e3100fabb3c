/* The egress policy (sandbox/egress.c) and a job's connection (sandbox/jobnet.c): CIDR
 * parsing, the ruleset libnftables accepts, its installation into a fresh network
 * namespace (root: the test creates the namespace; no packet is sent anywhere), and
 * slirp4netns started and stopped on it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/egress.h"
#include "sandbox/jobnet.h"

static void cidrs_are_parsed_and_canonical(void **state)
{
    static const struct {
        const char *in, *out;
    } good[] = {
        {"10.0.0.0/8", "10.0.0.0/8"},       {"10.9.8.7/8", "10.0.0.0/8"},
        {"198.51.100.7", "198.51.100.7/32"}, {"0.0.0.0/0", "0.0.0.0/0"},
        {"fd00::1/8", "fd00::/8"},          {"::ffff:10.0.0.1/104", "::ffff:10.0.0.0/104"},
        {"2001:db8::1", "2001:db8::1/128"}, {"172.31.255.255/12", "172.16.0.0/12"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        egress_cidr c;
        char text[64];
        assert_int_equal(egress_cidr_parse(good[i].in, &c), 0);
        egress_cidr_format(&c, text, sizeof text);
        assert_string_equal(text, good[i].out);
    }
    static const char *const bad[] = {"", "/8", "10.0.0.0/33", "::/129", "10.0.0/8", "a.b.c.d",
                                      "10.0.0.0/8/8", "10.0.0.0/x", "10.0.0.0/0008", " 10.0.0.0/8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        egress_cidr c;
        assert_int_equal(egress_cidr_parse(bad[i], &c), -1);
    }
}

static bool json_list_has(json_t *list, const char *want)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (strcmp(json_string_value(v), want) == 0) return true;
    return false;
}

static void configure_describes_the_policy(void **state)
{
    const char *allow[] = {"10.9.0.0/24", NULL}, *deny[] = {"198.51.100.0/24", NULL};
    char why[512];
    assert_int_equal(egress_configure(allow, deny, why, sizeof why), 0);
    json_t *d = egress_describe();
    assert_non_null(d);
    json_t *dl = json_object_get(d, "deny");
    assert_true(json_list_has(dl, "10.0.0.0/8"));
    assert_true(json_list_has(dl, "169.254.0.0/16"));
    assert_true(json_list_has(dl, "::ffff:0.0.0.0/96"));
    assert_true(json_list_has(dl, "198.51.100.0/24"));
    assert_true(json_list_has(json_object_get(d, "allow"), "10.9.0.0/24"));
    /* Every host address: loopback at least. */
    assert_true(json_list_has(json_object_get(d, "host_addresses"), "127.0.0.1/32"));
    json_decref(d);
}

/* A child in a fresh network namespace, waiting to be killed. */
static pid_t namespace_holder(void)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        if (unshare(CLONE_NEWNET | CLONE_NEWUSER) != 0)
            _exit(1);
        (void)!write(ready[1], "r", 1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    return pid;
}

static void end_holder(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* What nft lists in pid's network namespace. */
static char *ruleset_of(pid_t pid)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "nsenter --net=/proc/%d/ns/net nft list ruleset 2>&1", (int)pid);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    pclose(f);
    return buf;
}

static void policy_is_installed_in_the_jobs_namespace_only(void **state)
{
    char why[512];
    assert_int_equal(egress_configure(NULL, NULL, why, sizeof why), 0);
    pid_t holder = namespace_holder();
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)holder);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    egress_install in;
    assert_int_equal(egress_install_start(&in, fd, why, sizeof why), 0);
    assert_int_equal(egress_install_finish(&in, why, sizeof why), 0);
    const char *rules = ruleset_of(holder);
    assert_non_null(strstr(rules, "table inet executord_egress"));
    assert_non_null(strstr(rules, "10.0.0.0/8"));
    assert_non_null(strstr(rules, "reject with icmpx admin-prohibited"));
    /* The service's own namespace is untouched. */
    assert_null(strstr(ruleset_of(getpid()), "executord_egress"));
    close(fd);
    end_holder(holder);
}

/* In a child standing for the host (its own network namespace, so the machine's network
 * is not touched): an address the "host" gains after start-up is blocked for the next job. */
static int host_address_added_later_child(void)
{
    char why[512];
    if (unshare(CLONE_NEWNET) != 0 || system("ip link set lo up") != 0)
        return 2;
    if (egress_configure(NULL, NULL, why, sizeof why) != 0)
        return 3;
    if (system("ip addr add 192.0.2.77/32 dev lo") != 0)
        return 4;
    pid_t holder = namespace_holder();
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)holder);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    egress_install in;
    int rc = fd >= 0 && egress_install_start(&in, fd, why, sizeof why) == 0 &&
                     egress_install_finish(&in, why, sizeof why) == 0
                 ? 0
                 : 5;
    if (rc == 0 && !strstr(ruleset_of(holder), "192.0.2.77"))
        rc = 6;
    json_t *d = egress_describe();
    if (rc == 0 && !json_list_has(json_object_get(d, "host_addresses"), "192.0.2.77/32"))
        rc = 7;
    json_decref(d);
    end_holder(holder);
    return rc;
}

static void host_addresses_are_reread_for_each_job(void **state)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(host_address_added_later_child());
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void slirp4netns_comes_up_and_goes(void **state)
{
    sandbox_network_config cfg = {0};
    char err[1024];
    if (jobnet_configure(&cfg, err, sizeof err) != 0)
        fail_msg("jobnet_configure: %s", err);
    pid_t holder = namespace_holder();
    jobnet n;
    jobnet_init(&n);
    if (jobnet_begin(&n, holder, -1, err, sizeof err) != 0 || jobnet_finish(&n, err, sizeof err) != 0)
        fail_msg("%s", err);
    pid_t stack = n.stack.pid;
    assert_true(stack > 0);
    const char *rules = ruleset_of(holder);
    assert_non_null(strstr(rules, "executord_egress"));
    /* Its open files are bounded (each of the job's connections is one). */
    char path[64], limits[4096];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)stack);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t got = fread(limits, 1, sizeof limits - 1, f);
    limits[got] = '\0';
    fclose(f);
    assert_non_null(strstr(limits, "Max open files            4096                 4096"));
    jobnet_end(&n);
    /* Killed at once, reaped by a thread of its own shortly after. */
    int gone = 0;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = kill(stack, 0) == -1 && errno == ESRCH;
        if (!gone)
            usleep(10 * 1000);
    }
    assert_true(gone);
    end_holder(holder);
}

static void a_stack_that_fails_fails_the_job(void **state)
{
    sandbox_network_config cfg = {.slirp4netns = "/bin/false"};
    char err[1024];
    assert_int_equal(jobnet_configure(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "/bin/false"));
    pid_t holder = namespace_holder();
    jobnet n;
    jobnet_init(&n);
    assert_int_equal(jobnet_begin(&n, holder, -1, err, sizeof err), -1);
    assert_int_equal(strncmp(err, "network: unavailable", 20), 0);
    jobnet_end(&n);
    end_holder(holder);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cidrs_are_parsed_and_canonical),
        cmocka_unit_test(configure_describes_the_policy),
        cmocka_unit_test(policy_is_installed_in_the_jobs_namespace_only),
        cmocka_unit_test(host_addresses_are_reread_for_each_job),
        cmocka_unit_test(slirp4netns_comes_up_and_goes),
        cmocka_unit_test(a_stack_that_fails_fails_the_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
