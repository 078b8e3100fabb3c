/* The egress policy (sandbox/egress.c) and a job's connection (sandbox/jobnet.c): CIDR
 * parsing, the ruleset libnftables accepts, its installation into a fresh network
 * namespace (root: the test creates the namespace; no packet is sent anywhere), and
 * slirp4netns started and stopped on it; a job's egress_only list: its items, its
 * ruleset, and the stack reaching the host's loopback only when the list names it. */
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

/* A fresh namespace with the policy (only NULL) or only's ruleset installed; returns its
 * holder. */
static pid_t namespace_with_ruleset(const egress_only_list *only)
{
    char why[512];
    pid_t holder = namespace_holder();
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)holder);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    egress_install in;
    if (egress_install_start(&in, fd, only, why, sizeof why) != 0 || egress_install_finish(&in, why, sizeof why) != 0)
        fail_msg("%s", why);
    close(fd);
    return holder;
}

static void policy_is_installed_in_the_jobs_namespace_only(void **state)
{
    char why[512];
    assert_int_equal(egress_configure(NULL, NULL, why, sizeof why), 0);
    pid_t holder = namespace_with_ruleset(NULL);
    const char *rules = ruleset_of(holder);
    assert_non_null(strstr(rules, "table inet executord_egress"));
    assert_non_null(strstr(rules, "10.0.0.0/8"));
    assert_non_null(strstr(rules, "reject with icmpx admin-prohibited"));
    /* The service's own namespace is untouched. */
    assert_null(strstr(ruleset_of(getpid()), "executord_egress"));
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
    int rc = fd >= 0 && egress_install_start(&in, fd, NULL, why, sizeof why) == 0 &&
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

static void configure_default_network(void)
{
    sandbox_network_config cfg = {0};
    char err[1024];
    if (jobnet_configure(&cfg, err, sizeof err) != 0)
        fail_msg("jobnet_configure: %s", err);
}

/* A fresh namespace connected as a job's (items: its egress_only list, or NULL); returns
 * the holder of the namespace. */
static pid_t connected_namespace(jobnet *n, const char *const *items)
{
    configure_default_network();
    pid_t holder = namespace_holder();
    char err[1024];
    jobnet_init(n);
    if (jobnet_begin(n, holder, -1, items, err, sizeof err) != 0 || jobnet_finish(n, err, sizeof err) != 0)
        fail_msg("%s", err);
    return holder;
}

static void slirp4netns_comes_up_and_goes(void **state)
{
    jobnet n;
    pid_t holder = connected_namespace(&n, NULL);
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
    assert_int_equal(jobnet_begin(&n, holder, -1, NULL, err, sizeof err), -1);
    assert_int_equal(strncmp(err, "network: unavailable", 20), 0);
    jobnet_end(&n);
    end_holder(holder);
}

static void egress_only_items_are_parsed(void **state)
{
    const char *good[] = {"198.51.100.1:443", "127.0.0.1:8080", "1.2.3.4:65535", "10.9.0.1:1", NULL};
    egress_only_list l;
    char err[256];
    assert_int_equal(egress_only_parse(good, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 4);
    assert_true(l.host_loopback);
    assert_false(l.items[0].host_loopback);
    assert_int_equal(l.items[0].port, 443);
    assert_true(l.items[1].host_loopback);
    assert_int_equal(l.items[1].port, 8080);
    assert_int_equal(l.items[2].port, 65535);
    const char *none[] = {NULL};
    assert_int_equal(egress_only_parse(none, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    assert_false(l.host_loopback);
    static const char *const bad[] = {
        "", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:08", "1.2.3.4:+80", "1.2.3.4:80 ",
        " 1.2.3.4:80", ":80", "::1:80", "[::1]:80", "pypi.org:443", "1.2.3:80", "1.2.3.4:123456",
        /* only 127.0.0.1 of the loopback; the local host; the stack's network (its DNS too) */
        "127.0.0.2:80", "127.1.0.1:80", "0.0.0.0:80", "0.1.2.3:80", "10.0.2.2:80", "10.0.2.3:53", "10.0.2.100:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *items[] = {"198.51.100.1:443", bad[i], NULL};
        err[0] = '\0';
        if (egress_only_parse(items, &l, err, sizeof err) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "egress_only"));
    }
    const char *many[EGRESS_ONLY_MAX + 2];
    for (int i = 0; i <= EGRESS_ONLY_MAX; i++)
        many[i] = "198.51.100.1:443";
    many[EGRESS_ONLY_MAX + 1] = NULL;
    assert_int_equal(egress_only_parse(many, &l, err, sizeof err), -1);
    many[EGRESS_ONLY_MAX] = NULL;
    assert_int_equal(egress_only_parse(many, &l, err, sizeof err), 0);
}

/* The list replaces the policy: the common start (loopback, ND, DNS), one rule per item,
 * then a reject of everything else; no set of the service's policy. */
static void egress_only_ruleset_is_the_list_alone(void **state)
{
    const char *allow[] = {"198.51.100.0/24", NULL};
    char why[512];
    assert_int_equal(egress_configure(allow, NULL, why, sizeof why), 0);
    const char *items[] = {"198.51.100.1:443", "127.0.0.1:8080", NULL};
    egress_only_list l;
    assert_int_equal(egress_only_parse(items, &l, why, sizeof why), 0);
    pid_t holder = namespace_with_ruleset(&l);
    const char *rules = ruleset_of(holder);
    static const char *const in_order[] = {
        "oif \"lo\" accept",
        "nd-neighbor-solicit",
        "ip daddr 10.0.2.3 meta l4proto { tcp, udp } th dport 53 accept",
        "ip daddr 198.51.100.1 tcp dport 443 accept",
        "ip daddr 10.0.2.2 tcp dport 8080 accept",
        "reject with icmpx admin-prohibited",
    };
    const char *at = rules;
    for (size_t i = 0; i < sizeof in_order / sizeof in_order[0]; i++) {
        const char *next = strstr(at, in_order[i]);
        if (!next)
            fail_msg("'%s' missing or out of order in:\n%s", in_order[i], rules);
        at = next + strlen(in_order[i]);
    }
    /* Nothing of the service's policy: no sets, no --egress-allow, no 127.0.0.1 itself. */
    assert_null(strstr(rules, "@"));
    assert_null(strstr(rules, "198.51.100.0/24"));
    assert_null(strstr(rules, "127.0.0.1"));
    end_holder(holder);
}

/* slirp4netns's command line of a job connected with items. */
static void stack_command_line(const char *const *items, char *cmdline, size_t len)
{
    jobnet n;
    pid_t holder = connected_namespace(&n, items);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)n.stack.pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t got = read(fd, cmdline, len - 1);
    assert_true(got > 0);
    close(fd);
    for (ssize_t i = 0; i < got; i++)
        if (cmdline[i] == '\0')
            cmdline[i] = ' ';
    cmdline[got] = '\0';
    jobnet_end(&n);
    end_holder(holder);
}

static void host_loopback_is_opened_only_for_a_list_naming_it(void **state)
{
    char cmdline[4096];
    const char *far[] = {"198.51.100.1:443", NULL};
    stack_command_line(NULL, cmdline, sizeof cmdline);
    assert_non_null(strstr(cmdline, "--disable-host-loopback"));
    stack_command_line(far, cmdline, sizeof cmdline);
    assert_non_null(strstr(cmdline, "--disable-host-loopback"));
    const char *loop[] = {"198.51.100.1:443", "127.0.0.1:8080", NULL};
    stack_command_line(loop, cmdline, sizeof cmdline);
    assert_null(strstr(cmdline, "--disable-host-loopback"));
    assert_non_null(strstr(cmdline, "--enable-seccomp"));
}

static void a_malformed_item_fails_before_anything_starts(void **state)
{
    configure_default_network();
    char err[1024];
    pid_t holder = namespace_holder();
    jobnet n;
    jobnet_init(&n);
    const char *items[] = {"127.0.0.1:8080", "pypi.org:443", NULL};
    assert_int_equal(jobnet_begin(&n, holder, -1, items, err, sizeof err), -1);
    assert_int_equal(strncmp(err, "network: egress_only item 'pypi.org:443'", 40), 0);
    assert_true(n.stack.pid <= 0);
    assert_null(strstr(ruleset_of(holder), "executord_egress"));
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
        cmocka_unit_test(egress_only_items_are_parsed),
        cmocka_unit_test(egress_only_ruleset_is_the_list_alone),
        cmocka_unit_test(host_loopback_is_opened_only_for_a_list_naming_it),
        cmocka_unit_test(a_malformed_item_fails_before_anything_starts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
