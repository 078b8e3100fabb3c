/* The egress policy of network-enabled jobs: which destinations a job may reach, as one
 * nftables ruleset decided at start-up (built-in blocks, the host's own addresses re-read
 * for every job, --egress-deny, --egress-allow) and installed into each job's network
 * namespace by the service, where the job holds no capability to change it. See
 * docs/network.md. */
#ifndef EXECUTORD_SANDBOX_EGRESS_H
#define EXECUTORD_SANDBOX_EGRESS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "sandbox/net.h"
#include "sandbox/sandbox.h"

/* The user-space stack's DNS forwarder (slirp4netns): the one blocked address a job may
 * use, for DNS only. */
#define EGRESS_DNS_ADDRESS SANDBOX_NET_DNS_ADDRESS

typedef struct egress_cidr {
    int family;               /* AF_INET or AF_INET6 */
    unsigned char addr[16];   /* host bits cleared */
    unsigned prefix;
} egress_cidr;

/* Parses "10.0.0.0/8", "fd00::/8" or a plain address (a /32 or /128). Host bits are
 * cleared. Returns 0, or -1 when text is not a CIDR. */
int egress_cidr_parse(const char *text, egress_cidr *out);

/* The canonical text of c ("10.0.0.0/8"). */
void egress_cidr_format(const egress_cidr *c, char *buf, size_t len);

/* Decides the ruleset: the built-in blocks, every address of the service's own network
 * namespace (read now, and again before each install), deny (--egress-deny) and allow
 * (--egress-allow, exempting from the built-in blocks only: the host's addresses and deny
 * always win). Both lists are NULL-terminated CIDR texts, already validated. The ruleset
 * is loaded once into a throwaway network namespace, so a kernel, library or privilege
 * that cannot take it is reported now. Returns 0, or -1 with the reason in why. */
int egress_configure(const char *const *allow, const char *const *deny, char *why, size_t whylen);

/* The policy as JSON for /v1/backends and /readyz: {"deny": [built-in, then
 * --egress-deny], "allow": [...], "host_addresses": [...], "dns": "10.0.2.3:53"}. New
 * reference; NULL before configure. */
json_t *egress_describe(void);

/* A job's own list instead of the policy (sandbox_spec.egress_only, the package install):
 * TCP to exactly these places, DNS to the stack's forwarder, nothing else. */
enum { EGRESS_ONLY_MAX = 64 };

typedef struct egress_dest {
    unsigned char addr[4];    /* IPv4, network order */
    unsigned port;            /* 1-65535 */
    bool host_loopback;       /* 127.0.0.1: reached as SANDBOX_NET_HOST_LOOPBACK */
} egress_dest;

typedef struct egress_only_list {
    egress_dest items[EGRESS_ONLY_MAX];
    int n;
    bool host_loopback;       /* an item is the host's loopback: the stack must reach it */
} egress_only_list;

/* Parses "IPV4:PORT" items (NULL-terminated; NULL = none). Of 127.0.0.0/8 only 127.0.0.1
 * is accepted (the stack reaches the host's loopback there only); 0.0.0.0/8 (the local
 * host) and the stack's own 10.0.2.0/24 (all of it leads to the host's loopback) are
 * refused. Returns 0, or -1 with the reason in err. */
int egress_only_parse(const char *const *items, egress_only_list *out, char *err, size_t errlen);

/* Installing the policy into one job's network namespace runs on a thread of its own
 * (setns is per thread; the worker never changes namespace), so it overlaps the stack's
 * start: egress_install_start, then egress_install_finish to wait for it. */
typedef struct egress_install {
    pthread_t thread;
    bool started;
    int netns_fd;             /* borrowed: stays open until finish returned */
    char *ruleset;            /* this install's copy (the host's addresses may change) */
    int rc;
    char err[512];
} egress_install;

/* Starts installing into the namespace open at netns_fd the service's policy (only NULL)
 * or the ruleset of only. Returns 0, or -1 with err. */
int egress_install_start(egress_install *in, int netns_fd, const egress_only_list *only, char *err, size_t errlen);

/* Waits for the install. Returns 0 once the policy is in place, or -1 with err. Safe to
 * call on an install that was never started (returns 0). */
int egress_install_finish(egress_install *in, char *err, size_t errlen);

#endif
