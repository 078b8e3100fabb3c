/* A job's egress_only list (the package install's network), with real jobs of a backend
 * driven directly: what the job reaches is exactly the listed address:port pairs, the
 * service's loopback through 10.0.2.2 only for a listed port, and DNS; a malformed list
 * fails the job. Root. The program first moves into a network and mount namespace of its
 * own (no packet leaves them): "far" servers on addresses of its lo, the service's
 * loopback servers on 127.0.0.1, and a DNS server on 127.0.0.53 named by a resolv.conf
 * bound over /etc/resolv.conf for the slirp4netns the jobs get.
 *   test_egress_only [ephemeral|pool]   (ctest runs one per backend) */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/net.h"
#include "sandbox_harness.h"

/* Uid ranges apart from the other backend tests' (ctest -j). */
static const harness_options backends[] = {
    {.backend = "ephemeral", .uid_base = 2410000, .uid_count = 8},
    {.backend = "pool", .uid_base = 2460000, .uid_count = 8, .pool_uid_base = 3500000, .pool_size = 1},
};

/* Documentation addresses on the namespace's lo stand for far hosts. */
#define FAR "198.51.100.1"
#define FAR_OTHER "198.51.100.2"
#define RESOLVER "127.0.0.53"
#define RESOLVED "192.0.2.99" /* what every A query is answered */
enum { PORT_LISTED = 7101, PORT_OTHER = 7102, LOOP_LISTED = 7103, LOOP_OTHER = 7104 };

static const struct server {
    const char *addr;
    int port;
    const char *greeting;
} servers[] = {
    {FAR, PORT_LISTED, "far-listed"},
    {FAR, PORT_OTHER, "far-other-port"},
    {FAR_OTHER, PORT_LISTED, "far-other-address"},
    {"127.0.0.1", LOOP_LISTED, "loopback-listed"},
    {"127.0.0.1", LOOP_OTHER, "loopback-other"},
};
enum { N_SERVERS = sizeof servers / sizeof servers[0] };

static int listen_fds[N_SERVERS], dns_fd = -1;

/* ---- the topology ---- */

static int fail_setup(const char *what)
{
    fprintf(stderr, "test_egress_only: %s: %s\n", what, strerror(errno));
    return -1;
}

static int bound_socket(int type, const char *addr, int port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || (type == SOCK_STREAM && listen(fd, 16) != 0))
        return -1;
    return fd;
}

/* Answers every query with one A record (RESOLVED) when it asks for A, none otherwise. */
static void answer_dns(void)
{
    unsigned char q[512], r[600];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(dns_fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 12 + 5)
        return;
    size_t end = 12; /* the question's name, then type and class */
    while (end < (size_t)n && q[end])
        end += q[end] + 1u;
    end += 5;
    if (end > (size_t)n)
        return;
    bool a = q[end - 4] == 0 && q[end - 3] == 1;
    memcpy(r, q, end);
    r[2] = 0x81, r[3] = 0x80;                              /* a response, recursion available */
    r[4] = 0, r[5] = 1, r[6] = 0, r[7] = a ? 1 : 0;        /* one question, one answer or none */
    memset(r + 8, 0, 4);
    size_t len = end;
    if (a) {
        static const unsigned char rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
        memcpy(r + len, rr, sizeof rr);
        len += sizeof rr;
        inet_pton(AF_INET, RESOLVED, r + len);
        len += 4;
    }
    (void)sendto(dns_fd, r, len, 0, (struct sockaddr *)&from, fl);
}

/* Every server, one thread: a TCP connection gets its server's greeting and is closed. */
static void *serve(void *arg)
{
    (void)arg;
    struct pollfd p[N_SERVERS + 1];
    for (int i = 0; i < N_SERVERS; i++)
        p[i] = (struct pollfd){.fd = listen_fds[i], .events = POLLIN};
    p[N_SERVERS] = (struct pollfd){.fd = dns_fd, .events = POLLIN};
    for (;;) {
        if (poll(p, N_SERVERS + 1, -1) < 0)
            continue;
        for (int i = 0; i < N_SERVERS; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            int c = accept4(listen_fds[i], NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                char line[64];
                int len = snprintf(line, sizeof line, "%s\n", servers[i].greeting);
                (void)!write(c, line, (size_t)len);
                close(c);
            }
        }
        if (p[N_SERVERS].revents & POLLIN)
            answer_dns();
    }
    return NULL;
}

/* Before any thread: this process's own network and mount namespaces, lo up with the far
 * addresses, the resolver named for slirp4netns, and the servers. */
static int build_topology(void)
{
    const char *step;
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0)
        return fail_setup("unshare(CLONE_NEWNET | CLONE_NEWNS)");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return fail_setup("mount --make-rprivate /");
    if (sandbox_net_loopback_up(&step) != 0)
        return fail_setup(step);
    if (system("ip addr add " FAR "/32 dev lo && ip addr add " FAR_OTHER "/32 dev lo") != 0) {
        fprintf(stderr, "test_egress_only: ip addr add failed\n");
        return -1;
    }
    char conf[] = "/tmp/executord-test-resolv-XXXXXX";
    int fd = mkstemp(conf);
    if (fd < 0)
        return fail_setup("mkstemp");
    static const char text[] = "nameserver " RESOLVER "\n";
    bool written = write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1);
    close(fd);
    int bound = written ? mount(conf, "/etc/resolv.conf", NULL, MS_BIND, NULL) : -1;
    unlink(conf); /* the bind mount keeps it */
    if (bound != 0)
        return fail_setup("bind a resolv.conf over /etc/resolv.conf");
    for (int i = 0; i < N_SERVERS; i++)
        if ((listen_fds[i] = bound_socket(SOCK_STREAM, servers[i].addr, servers[i].port)) < 0)
            return fail_setup(servers[i].greeting);
    if ((dns_fd = bound_socket(SOCK_DGRAM, RESOLVER, 53)) < 0)
        return fail_setup("dns server");
    pthread_t t;
    if (pthread_create(&t, NULL, serve, NULL) != 0 || pthread_detach(t) != 0)
        return fail_setup("pthread_create");
    return 0;
}

/* ---- jobs ---- */

/* Connects to each "host:port" (3 s) and reads the greeting; resolves a name. */
static const char probe[] =
    "import errno, socket\n"
    "def main(targets, name):\n"
    "    out = {}\n"
    "    for t in targets:\n"
    "        host, port = t.rsplit(':', 1)\n"
    "        s = socket.socket()\n"
    "        s.settimeout(3)\n"
    "        try:\n"
    "            s.connect((host, int(port)))\n"
    "            out[t] = 'ok:' + s.recv(100).decode().strip()\n"
    "        except socket.timeout:\n"
    "            out[t] = 'timeout'\n"
    "        except OSError as e:\n"
    "            out[t] = errno.errorcode.get(e.errno, str(e))\n"
    "        finally:\n"
    "            s.close()\n"
    "    try:\n"
    "        out['dns'] = socket.gethostbyname(name)\n"
    "    except OSError as e:\n"
    "        out['dns'] = 'error:' + str(e)\n"
    "    return out\n";

static const char targets[] = "{\"name\": \"index.test\", \"targets\": ["
                              "\"" FAR ":7101\", \"" FAR ":7102\", \"" FAR_OTHER ":7101\", "
                              "\"10.0.2.2:7103\", \"10.0.2.2:7104\", \"10.0.2.5:7103\", \"127.0.0.1:7103\"]}";

/* Runs the probe with network and this egress_only list (NULL: the service's policy). */
static void run_probe(const char *const *egress_only, capture *cap, sandbox_outcome *out)
{
    char *fields = runner_fields_make(probe, targets);
    sandbox_spec spec = {
        .runner_fields_json = fields,
        .limits = default_limits(),
        .allow_network = true,
        .egress_only = egress_only,
        .cancel_fd = -1,
    };
    run_spec(&spec, cap, out);
    free(fields);
}

static void expect_probe(const char *const *egress_only, const char *want)
{
    capture cap = {0};
    sandbox_outcome out;
    run_probe(egress_only, &cap, &out);
    expect_result(&out, &cap, want);
    sandbox_outcome_free(&out);
    capture_free(&cap);
}

/* The servers answer this namespace: a refusal a job sees is its ruleset's. */
static void every_server_answers_the_service(void **state)
{
    for (int i = 0; i < N_SERVERS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)servers[i].port)};
        assert_int_equal(inet_pton(AF_INET, servers[i].addr, &sa.sin_addr), 1);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        char buf[64] = "";
        assert_true(read(fd, buf, sizeof buf - 1) > 0);
        buf[strcspn(buf, "\n")] = '\0';
        assert_string_equal(buf, servers[i].greeting);
        close(fd);
    }
}

/* The listed far place and the listed loopback port (as 10.0.2.2) only; DNS answers. The
 * job's own 127.0.0.1 is its sandbox's loopback, where nothing listens. */
static void only_the_listed_places_are_reached(void **state)
{
    const char *only[] = {FAR ":7101", "127.0.0.1:7103", NULL};
    expect_probe(only, "{\"" FAR ":7101\": \"ok:far-listed\", \"" FAR ":7102\": \"EHOSTUNREACH\", "
                       "\"" FAR_OTHER ":7101\": \"EHOSTUNREACH\", \"10.0.2.2:7103\": \"ok:loopback-listed\", "
                       "\"10.0.2.2:7104\": \"EHOSTUNREACH\", \"10.0.2.5:7103\": \"EHOSTUNREACH\", "
                       "\"127.0.0.1:7103\": \"ECONNREFUSED\", \"dns\": \"" RESOLVED "\"}");
}

/* Without a loopback item no port of the service's loopback is open. */
static void no_loopback_item_no_loopback(void **state)
{
    const char *only[] = {FAR ":7101", NULL};
    expect_probe(only, "{\"" FAR ":7101\": \"ok:far-listed\", \"" FAR ":7102\": \"EHOSTUNREACH\", "
                       "\"" FAR_OTHER ":7101\": \"EHOSTUNREACH\", \"10.0.2.2:7103\": \"EHOSTUNREACH\", "
                       "\"10.0.2.2:7104\": \"EHOSTUNREACH\", \"10.0.2.5:7103\": \"EHOSTUNREACH\", "
                       "\"127.0.0.1:7103\": \"ECONNREFUSED\", \"dns\": \"" RESOLVED "\"}");
}

/* The contrast: the service's policy refuses the far addresses (they are this host's) and
 * the loopback, so what the lists opened above was their doing. */
static void the_service_policy_refuses_them_all(void **state)
{
    expect_probe(NULL, "{\"" FAR ":7101\": \"EHOSTUNREACH\", \"" FAR ":7102\": \"EHOSTUNREACH\", "
                       "\"" FAR_OTHER ":7101\": \"EHOSTUNREACH\", \"10.0.2.2:7103\": \"EHOSTUNREACH\", "
                       "\"10.0.2.2:7104\": \"EHOSTUNREACH\", \"10.0.2.5:7103\": \"EHOSTUNREACH\", "
                       "\"127.0.0.1:7103\": \"ECONNREFUSED\", \"dns\": \"" RESOLVED "\"}");
}

static void a_malformed_list_fails_the_job(void **state)
{
    const char *bad[][3] = {
        {FAR ":7101", "index.test:443", NULL},
        {"127.0.0.2:7103", NULL, NULL},
        {"10.0.2.2:7104", NULL, NULL},
        {FAR ":0", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        capture cap = {0};
        sandbox_outcome out;
        run_probe(bad[i], &cap, &out);
        expect_failure(&out, &cap, SANDBOX_SETUP_ERROR, "SandboxError", "network: egress_only item");
        assert_int_equal(cap.len[SANDBOX_STDOUT] + cap.len[SANDBOX_STDERR], 0);
        sandbox_outcome_free(&out);
        capture_free(&cap);
    }
}

static const harness_options *current;

static int group_setup(void **state)
{
    return harness_start(current);
}

static int group_teardown(void **state)
{
    return harness_stop();
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "ephemeral";
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i].backend, name) == 0)
            current = &backends[i];
    if (!current) {
        fprintf(stderr, "test_egress_only: unknown backend \"%s\" (ephemeral, pool)\n", name);
        return 2;
    }
    if (build_topology() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_server_answers_the_service),
        cmocka_unit_test(only_the_listed_places_are_reached),
        cmocka_unit_test(no_loopback_item_no_loopback),
        cmocka_unit_test(the_service_policy_refuses_them_all),
        cmocka_unit_test(a_malformed_list_fails_the_job),
    };
    return cmocka_run_group_tests_name(current->backend, tests, group_setup, group_teardown);
}
