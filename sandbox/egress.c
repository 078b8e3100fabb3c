/* The egress policy (see egress.h): the built-in block list, the ruleset text decided
 * once at start-up, and its installation into a job's network namespace by a short-lived
 * thread that enters that namespace alone. */
#include "sandbox/egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Destinations no job reaches unless --egress-allow exempts them: "this" network,
 * private ranges, loopback, link-local (cloud metadata at 169.254.169.254), CGNAT,
 * IETF protocol assignments, benchmarking, multicast and reserved; for IPv6 loopback and
 * unspecified, every IPv4-mapped and NAT64 form (so an AF_INET6 socket cannot reach a
 * blocked IPv4 host another way), unique-local, link-local and multicast. */
static const char *const builtin_blocks[] = {
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/127", "::ffff:0.0.0.0/96", "64:ff9b::/96", "fc00::/7", "fe80::/10", "ff00::/8",
    NULL,
};

enum { MAX_CIDRS = 256 };

typedef struct cidr_list {
    egress_cidr items[MAX_CIDRS];
    int n;
} cidr_list;

/* Decided at configure; host and ruleset change when the host's addresses do (mu). */
static struct {
    bool configured;
    cidr_list blocks, host, deny, allow;
    char *ruleset;
} eg;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- CIDRs ---- */

static void clear_host_bits(egress_cidr *c)
{
    unsigned bytes = c->family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < bytes; i++) {
        unsigned keep = c->prefix > i * 8 ? c->prefix - i * 8 : 0;
        if (keep < 8)
            c->addr[i] &= (unsigned char)(0xff00u >> keep);
    }
}

int egress_cidr_parse(const char *text, egress_cidr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t hostlen = slash ? (size_t)(slash - text) : strlen(text);
    if (hostlen == 0 || hostlen >= sizeof host)
        return -1;
    memcpy(host, text, hostlen);
    host[hostlen] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -1;
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || strlen(p) > 3)
            return -1;
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (*end || v > max)
            return -1;
        out->prefix = (unsigned)v;
    }
    clear_host_bits(out);
    return 0;
}

void egress_cidr_format(const egress_cidr *c, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (!inet_ntop(c->family, c->addr, host, sizeof host))
        snprintf(host, sizeof host, "?");
    /* nftables reads "::ffff:a.b.c.d" in the mapped range the way inet_ntop writes it. */
    snprintf(buf, len, "%s/%u", host, c->prefix);
}

static int list_add_text(cidr_list *l, const char *text, char *why, size_t whylen)
{
    if (l->n >= MAX_CIDRS) {
        snprintf(why, whylen, "egress policy: more than %d ranges", MAX_CIDRS);
        return -1;
    }
    if (egress_cidr_parse(text, &l->items[l->n]) != 0) {
        snprintf(why, whylen, "egress policy: '%s' is not an address range (CIDR)", text);
        return -1;
    }
    l->n++;
    return 0;
}

static int list_add_all(cidr_list *l, const char *const *texts, char *why, size_t whylen)
{
    for (; texts && *texts; texts++)
        if (list_add_text(l, *texts, why, whylen) != 0)
            return -1;
    return 0;
}

/* Every address of the service's network namespace: past the user-space stack a job's
 * connection leaves from here, so these would reach the host's own services. */
static int read_host_addresses(cidr_list *l, char *why, size_t whylen)
{
    struct ifaddrs *all;
    if (getifaddrs(&all) != 0) {
        snprintf(why, whylen, "egress policy: getifaddrs: %s", strerror(errno));
        return -1;
    }
    int rc = 0;
    for (struct ifaddrs *a = all; a && rc == 0; a = a->ifa_next) {
        if (!a->ifa_addr || (a->ifa_addr->sa_family != AF_INET && a->ifa_addr->sa_family != AF_INET6))
            continue;
        if (l->n >= MAX_CIDRS) {
            snprintf(why, whylen, "egress policy: more than %d host addresses", MAX_CIDRS);
            rc = -1;
            break;
        }
        egress_cidr *c = &l->items[l->n];
        memset(c, 0, sizeof *c);
        c->family = a->ifa_addr->sa_family;
        if (c->family == AF_INET) {
            memcpy(c->addr, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, 4);
            c->prefix = 32;
        } else {
            memcpy(c->addr, &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, 16);
            c->prefix = 128;
        }
        bool dup = false;
        for (int i = 0; i < l->n && !dup; i++)
            dup = l->items[i].family == c->family && memcmp(l->items[i].addr, c->addr, 16) == 0;
        if (!dup)
            l->n++;
    }
    freeifaddrs(all);
    return rc;
}

/* ---- the ruleset text ---- */

typedef struct text {
    char *buf;
    size_t len, cap;
    bool oom;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->oom = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

/* "set NAME { type ...; flags interval; auto-merge; elements = { ... } }" for the ranges
 * of one family (an empty set when there are none: it then matches nothing). */
static void add_set(text *t, const char *name, const cidr_list *l, int family)
{
    add(t, "  set %s { type %s; flags interval; auto-merge;", name, family == AF_INET ? "ipv4_addr" : "ipv6_addr");
    int n = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->items[i].family != family)
            continue;
        char c[INET6_ADDRSTRLEN + 8];
        egress_cidr_format(&l->items[i], c, sizeof c);
        add(t, "%s%s", n++ ? ", " : " elements = { ", c);
    }
    add(t, "%s }\n", n ? " }" : "");
}

static void add_verdict(text *t, const char *set, const char *verdict)
{
    add(t, "    ip daddr @%s4 %s\n    ip6 daddr @%s6 %s\n", set, verdict, set, verdict);
}

/* Every ruleset starts alike: loopback; neighbour discovery (ff02::/16 is in ff00::/8 of
 * the built-in blocks, and IPv6 would otherwise die silently); DNS to the stack's
 * forwarder only. Sets are declared before the chain that names them. */
static void add_table_start(text *t)
{
    add(t, "table inet executord_egress {\n");
}

static void add_chain_start(text *t)
{
    add(t, "  chain output {\n"
           "    type filter hook output priority filter; policy accept;\n"
           "    oif \"lo\" accept\n"
           "    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept\n"
           "    ip daddr " EGRESS_DNS_ADDRESS " meta l4proto { tcp, udp } th dport 53 accept\n");
}

static const char reject[] = "reject with icmpx type admin-prohibited";

static char *finish_text(text *t)
{
    add(t, "  }\n}\n");
    if (t->oom) {
        free(t->buf);
        return NULL;
    }
    return t->buf;
}

/* The service's policy. The order is the policy: after the common start, the host's
 * addresses and --egress-deny refused whatever else says; then --egress-allow; then the
 * built-in blocks. Everything else (the internet) is accepted. */
static char *build_ruleset(void)
{
    text t = {0};
    add_table_start(&t);
    static const struct {
        const char *name;
        size_t offset;
    } sets[] = {
        {"host", offsetof(__typeof__(eg), host)},
        {"deny", offsetof(__typeof__(eg), deny)},
        {"allow", offsetof(__typeof__(eg), allow)},
        {"block", offsetof(__typeof__(eg), blocks)},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        const cidr_list *l = (const cidr_list *)((const char *)&eg + sets[i].offset);
        char name[16];
        snprintf(name, sizeof name, "%s4", sets[i].name);
        add_set(&t, name, l, AF_INET);
        snprintf(name, sizeof name, "%s6", sets[i].name);
        add_set(&t, name, l, AF_INET6);
    }
    add_chain_start(&t);
    add_verdict(&t, "host", reject);
    add_verdict(&t, "deny", reject);
    add_verdict(&t, "allow", "accept");
    add_verdict(&t, "block", reject);
    return finish_text(&t);
}

/* An egress_only job's: after the common start, TCP to each listed place, and nothing
 * else (no built-in block or --egress-allow applies: the list replaces the policy). */
static char *build_only_ruleset(const egress_only_list *only)
{
    text t = {0};
    add_table_start(&t);
    add_chain_start(&t);
    for (int i = 0; i < only->n; i++) {
        char a[INET_ADDRSTRLEN];
        const egress_dest *d = &only->items[i];
        if (d->host_loopback)
            snprintf(a, sizeof a, "%s", SANDBOX_NET_HOST_LOOPBACK);
        else if (!inet_ntop(AF_INET, d->addr, a, sizeof a))
            t.oom = true; /* cannot happen (4 bytes always format), but never a wrong rule */
        add(&t, "    ip daddr %s tcp dport %u accept\n", a, d->port);
    }
    add(&t, "    %s\n", reject);
    return finish_text(&t);
}

/* ---- egress_only items ---- */

/* True when the IPv4 address a lies in cidr (a valid CIDR text). */
static bool within(const unsigned char a[4], const char *cidr)
{
    egress_cidr range, addr = {.family = AF_INET};
    if (egress_cidr_parse(cidr, &range) != 0)
        return false;
    memcpy(addr.addr, a, 4);
    addr.prefix = range.prefix;
    clear_host_bits(&addr);
    return memcmp(addr.addr, range.addr, 4) == 0;
}

static int parse_dest(const char *item, egress_dest *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    const char *colon = strrchr(item, ':');
    char host[INET_ADDRSTRLEN];
    size_t hostlen = colon ? (size_t)(colon - item) : 0;
    const char *p = colon ? colon + 1 : "";
    size_t plen = strlen(p);
    bool digits = plen >= 1 && plen <= 5 && strspn(p, "0123456789") == plen && p[0] != '0';
    unsigned long port = digits ? strtoul(p, NULL, 10) : 0;
    if (hostlen == 0 || hostlen >= sizeof host || !digits || port > 65535) {
        snprintf(err, errlen, "egress_only item '%.80s' is not IPV4:PORT", item);
        return -1;
    }
    memcpy(host, item, hostlen);
    host[hostlen] = '\0';
    if (inet_pton(AF_INET, host, d->addr) != 1) {
        snprintf(err, errlen, "egress_only item '%.80s' is not IPV4:PORT", item);
        return -1;
    }
    d->port = (unsigned)port;
    if (within(d->addr, "127.0.0.0/8")) {
        /* The stack reaches the host's loopback at 127.0.0.1 only. */
        if (!within(d->addr, "127.0.0.1/32")) {
            snprintf(err, errlen, "egress_only item '%.80s': of the host's loopback only 127.0.0.1 can be reached",
                     item);
            return -1;
        }
        d->host_loopback = true;
    } else if (within(d->addr, "0.0.0.0/8") || within(d->addr, SANDBOX_NET_STACK_NETWORK)) {
        /* 0.0.0.0/8 means the local host; once the stack reaches the host's loopback, every
         * address of its network but the DNS forwarder leads to 127.0.0.1: an item there
         * would open more of the host than it says. */
        snprintf(err, errlen, "egress_only item '%.80s' names the local host or the stack's own network", item);
        return -1;
    }
    return 0;
}

int egress_only_parse(const char *const *items, egress_only_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (; items && *items; items++) {
        if (out->n >= EGRESS_ONLY_MAX) {
            snprintf(err, errlen, "egress_only: more than %d items", EGRESS_ONLY_MAX);
            return -1;
        }
        egress_dest *d = &out->items[out->n];
        if (parse_dest(*items, d, err, errlen) != 0)
            return -1;
        out->host_loopback |= d->host_loopback;
        out->n++;
    }
    return 0;
}

/* ---- libnftables ---- */

/* Runs the ruleset through a fresh context in the calling thread's network namespace
 * (the context's netlink socket is opened there). */
static int run_ruleset(const char *ruleset, char *err, size_t errlen)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) {
        snprintf(err, errlen, "nft_ctx_new failed");
        return -1;
    }
    if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0) {
        nft_ctx_free(ctx);
        snprintf(err, errlen, "nft_ctx_buffer_error failed");
        return -1;
    }
    int rc = nft_run_cmd_from_buffer(ctx, ruleset) == 0 ? 0 : -1;
    if (rc != 0) {
        const char *e = nft_ctx_get_error_buffer(ctx);
        /* The first line says what; the rest repeats the ruleset with a caret. */
        size_t n = e ? strcspn(e, "\n") : 0;
        snprintf(err, errlen, "%.*s", (int)(n ? n : 20), n ? e : "libnftables refused");
    }
    nft_ctx_free(ctx);
    return rc;
}

static struct {
    int rc;
    char err[512];
} check;

static void *check_main(void *arg)
{
    (void)arg;
    /* unshare(CLONE_NEWNET) in a thread moves that thread only. */
    if (unshare(CLONE_NEWNET) != 0) {
        int e = errno;
        snprintf(check.err, sizeof check.err, "unshare(CLONE_NEWNET) to check the ruleset: %s%s", strerror(e),
                 e == EPERM ? " (network-enabled jobs need CAP_SYS_ADMIN and CAP_NET_ADMIN, which the "
                              "container image does not keep)"
                            : "");
        check.rc = -1;
        return NULL;
    }
    char err[400];
    check.rc = run_ruleset(eg.ruleset, err, sizeof err);
    if (check.rc != 0)
        snprintf(check.err, sizeof check.err, "libnftables: %s", err);
    return NULL;
}

int egress_configure(const char *const *allow, const char *const *deny, char *why, size_t whylen)
{
    /* At start-up, before any job: no install runs meanwhile. */
    free(eg.ruleset);
    memset(&eg, 0, sizeof eg);
    if (list_add_all(&eg.blocks, builtin_blocks, why, whylen) != 0 ||
        list_add_all(&eg.deny, deny, why, whylen) != 0 || list_add_all(&eg.allow, allow, why, whylen) != 0 ||
        read_host_addresses(&eg.host, why, whylen) != 0)
        return -1;
    eg.ruleset = build_ruleset();
    if (!eg.ruleset) {
        snprintf(why, whylen, "egress policy: %s", strerror(ENOMEM));
        return -1;
    }
    /* Loaded for real once, into a network namespace of the checking thread's own that
     * vanishes with it: what the kernel, the library or our privileges refuse is known
     * now, not at the first network-enabled job. */
    pthread_t t;
    int e = pthread_create(&t, NULL, check_main, NULL);
    if (e != 0) {
        snprintf(why, whylen, "egress policy: pthread_create: %s", strerror(e));
        return -1;
    }
    pthread_join(t, NULL);
    if (check.rc != 0) {
        snprintf(why, whylen, "egress policy: %s", check.err);
        return -1;
    }
    eg.configured = true;
    return 0;
}

static json_t *list_json(const cidr_list *l)
{
    json_t *a = json_array();
    for (int i = 0; a && i < l->n; i++) {
        char c[INET6_ADDRSTRLEN + 8];
        egress_cidr_format(&l->items[i], c, sizeof c);
        json_array_append_new(a, json_string(c));
    }
    return a;
}

static json_t *describe_locked(void);

json_t *egress_describe(void)
{
    pthread_mutex_lock(&mu);
    json_t *d = eg.configured ? describe_locked() : NULL;
    pthread_mutex_unlock(&mu);
    return d;
}

/* The host's addresses as they are now: an address the host gained since start-up (a
 * new interface, a DHCP lease) is blocked from the next job on. */
static int refresh_host_addresses(char *err, size_t errlen)
{
    static cidr_list now; /* large: not on the stack; used under mu only */
    pthread_mutex_lock(&mu);
    memset(&now, 0, sizeof now);
    int rc = read_host_addresses(&now, err, errlen);
    if (rc == 0 && (now.n != eg.host.n || memcmp(now.items, eg.host.items, sizeof now.items[0] * (size_t)now.n))) {
        cidr_list before = eg.host;
        eg.host = now;
        char *ruleset = build_ruleset();
        if (ruleset) {
            free(eg.ruleset);
            eg.ruleset = ruleset;
        } else {
            eg.host = before;
            snprintf(err, errlen, "egress policy: %s", strerror(ENOMEM));
            rc = -1;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static json_t *describe_locked(void)
{
    /* deny: the built-in blocks, then --egress-deny. */
    json_t *deny = list_json(&eg.blocks);
    json_t *extra = list_json(&eg.deny);
    if (deny && extra)
        json_array_extend(deny, extra);
    json_decref(extra);
    return json_pack("{s:o, s:o, s:o, s:s}", "deny", deny, "allow", list_json(&eg.allow), "host_addresses",
                     list_json(&eg.host), "dns", EGRESS_DNS_ADDRESS ":53");
}

/* ---- installing into a job's namespace ---- */

static void *install_main(void *arg)
{
    egress_install *in = arg;
    /* Only this thread enters the job's namespace, and it ends here: no thread of the
     * service ever goes back to work in the wrong one. */
    if (setns(in->netns_fd, CLONE_NEWNET) != 0) {
        snprintf(in->err, sizeof in->err, "setns into the job's network namespace: %s", strerror(errno));
        in->rc = -1;
        return NULL;
    }
    in->rc = run_ruleset(in->ruleset, in->err, sizeof in->err);
    return NULL;
}

int egress_install_start(egress_install *in, int netns_fd, const egress_only_list *only, char *err, size_t errlen)
{
    memset(in, 0, sizeof *in);
    if (!eg.configured) {
        snprintf(err, errlen, "egress policy: not configured");
        return -1;
    }
    in->netns_fd = netns_fd;
    if (only) {
        in->ruleset = build_only_ruleset(only);
    } else {
        if (refresh_host_addresses(err, errlen) != 0)
            return -1;
        pthread_mutex_lock(&mu);
        in->ruleset = strdup(eg.ruleset);
        pthread_mutex_unlock(&mu);
    }
    if (!in->ruleset) {
        snprintf(err, errlen, "egress policy: %s", strerror(ENOMEM));
        return -1;
    }
    int e = pthread_create(&in->thread, NULL, install_main, in);
    if (e != 0) {
        free(in->ruleset);
        in->ruleset = NULL;
        snprintf(err, errlen, "egress policy: pthread_create: %s", strerror(e));
        return -1;
    }
    in->started = true;
    return 0;
}

int egress_install_finish(egress_install *in, char *err, size_t errlen)
{
    if (!in->started)
        return 0;
    in->started = false;
    int e = pthread_join(in->thread, NULL);
    free(in->ruleset);
    in->ruleset = NULL;
    if (e != 0) {
        snprintf(err, errlen, "egress policy: pthread_join: %s", strerror(e));
        return -1;
    }
    if (in->rc != 0) {
        snprintf(err, errlen, "egress policy: %s", in->err);
        return -1;
    }
    return 0;
}
