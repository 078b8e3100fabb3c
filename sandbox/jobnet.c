/* A network-enabled job's connection (see jobnet.h): the state decided at start-up, the
 * order of the steps around one sandbox, and the /v1/backends description. */
#include "sandbox/jobnet.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    bool available;
    char reason[512];
} net;

int jobnet_configure(const sandbox_network_config *cfg, char *why, size_t whylen)
{
    net.available = false;
    char err[512];
    if (netstack_configure(cfg ? cfg->slirp4netns : NULL, err, sizeof err) != 0 ||
        egress_configure(cfg ? cfg->egress_allow : NULL, cfg ? cfg->egress_deny : NULL, err, sizeof err) != 0) {
        snprintf(net.reason, sizeof net.reason, "%s", err);
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    net.reason[0] = '\0';
    net.available = true;
    return 0;
}

void jobnet_init(jobnet *n)
{
    memset(n, 0, sizeof n[0]);
    n->userns_fd = n->netns_fd = -1;
    netstack_init(&n->stack);
}

static int open_ns(pid_t pid, const char *which, int *fd, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, which);
    if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "network: open %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The namespaces were opened by pid: if the process of pidfd still lives afterwards, the
 * pid was still its own when they were opened. */
static int check_still_alive(int pidfd, char *err, size_t errlen)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, 0)) < 0 && errno == EINTR) {
    }
    if (r != 0) {
        snprintf(err, errlen, "network: the sandbox ended while it was being connected");
        return -1;
    }
    return 0;
}

int jobnet_begin(jobnet *n, pid_t pid, int pidfd, const char *const *egress_only, char *err, size_t errlen)
{
    if (!net.available) {
        snprintf(err, errlen, "network: unavailable on this host: %s", net.reason);
        return -1;
    }
    char why[512];
    /* Parsed before anything starts: a malformed list fails the job, never widens it. */
    if (egress_only && egress_only_parse(egress_only, &n->only, why, sizeof why) != 0) {
        snprintf(err, errlen, "network: %s", why);
        return -1;
    }
    if (open_ns(pid, "user", &n->userns_fd, err, errlen) != 0 || open_ns(pid, "net", &n->netns_fd, err, errlen) != 0)
        return -1;
    if (pidfd >= 0 && check_still_alive(pidfd, err, errlen) != 0)
        return -1;
    bool host_loopback = egress_only && n->only.host_loopback;
    if (netstack_start(&n->stack, n->userns_fd, n->netns_fd, host_loopback, why, sizeof why) != 0) {
        snprintf(err, errlen, "network: start slirp4netns: %s", why);
        return -1;
    }
    if (egress_install_start(&n->policy, n->netns_fd, egress_only ? &n->only : NULL, why, sizeof why) != 0) {
        snprintf(err, errlen, "network: %s", why);
        return -1;
    }
    return 0;
}

int jobnet_finish(jobnet *n, char *err, size_t errlen)
{
    char why[512];
    if (egress_install_finish(&n->policy, why, sizeof why) != 0) {
        snprintf(err, errlen, "network: %s", why);
        return -1;
    }
    if (netstack_wait_ready(&n->stack, JOBNET_READY_TIMEOUT_MS, why, sizeof why) != 0) {
        snprintf(err, errlen, "network: %s", why);
        return -1;
    }
    return 0;
}

void jobnet_end(jobnet *n)
{
    /* The policy thread uses netns_fd: joined before it is closed. */
    char ignored[64];
    (void)egress_install_finish(&n->policy, ignored, sizeof ignored);
    netstack_stop(&n->stack);
    if (n->userns_fd >= 0)
        close(n->userns_fd);
    if (n->netns_fd >= 0)
        close(n->netns_fd);
    n->userns_fd = n->netns_fd = -1;
}

char *sandbox_network_json(void)
{
    json_t *o = json_pack("{s:s, s:s, s:b}", "stack", "slirp4netns", "version", netstack_version(), "available",
                          net.available);
    if (!o)
        return NULL;
    if (!net.available)
        json_object_set_new(o, "reason", json_string(net.reason[0] ? net.reason : "not configured"));
    json_t *policy = egress_describe();
    if (policy) {
        json_object_set_new(o, "dns", json_incref(json_object_get(policy, "dns")));
        json_object_del(policy, "dns");
        json_object_set_new(o, "egress", policy);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}
