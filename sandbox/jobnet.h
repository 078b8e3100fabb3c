/* A network-enabled job's way out: its own network namespace (every sandbox has one)
 * joined to the outside by the user-space stack (netstack.c) and closed by the egress
 * policy (egress.c) before the job's code runs. Set up by the service around a sandbox's
 * init; any failure fails the job (SandboxError "network: ..."), never runs it with the
 * service's network. See docs/network.md. */
#ifndef EXECUTORD_SANDBOX_JOBNET_H
#define EXECUTORD_SANDBOX_JOBNET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sandbox/egress.h"
#include "sandbox/netstack.h"
#include "sandbox/sandbox.h"

enum { JOBNET_READY_TIMEOUT_MS = 5000 };

/* Once at start-up (ephemeral's init; the pool builds on it): the stack and the policy.
 * Returns 0, or -1 with the reason in why: network-enabled jobs then fail with it, and
 * /v1/backends shows it. Jobs without network are not affected. */
int jobnet_configure(const sandbox_network_config *cfg, char *why, size_t whylen);

typedef struct jobnet {
    int userns_fd, netns_fd;  /* the sandbox's namespaces, pinned */
    netstack stack;
    egress_install policy;
    egress_only_list only;    /* the parsed egress_only list, when the job has one */
} jobnet;

/* Starts connecting the sandbox whose init is pid (pidfd: that process, to prove the
 * namespaces opened through /proc/<pid> are its own; -1 when init is our child, which
 * no one else can reap): spawns the stack and starts installing the policy, or with
 * egress_only (sandbox_spec.egress_only, non-NULL) that list's ruleset instead, the stack
 * reaching the host's loopback only when the list names 127.0.0.1. Returns at once; 0, or
 * -1 with err ("network: step: reason"; a malformed item is one). Call jobnet_end in
 * every case. */
int jobnet_begin(jobnet *n, pid_t pid, int pidfd, const char *const *egress_only, char *err, size_t errlen);

/* Waits until the policy is installed and the stack is ready. 0, or -1 with err. */
int jobnet_finish(jobnet *n, char *err, size_t errlen);

/* Stops the stack, closes everything. Safe after a failed or no begin (zeroed jobnet
 * with fds -1: see jobnet_init). */
void jobnet_init(jobnet *n);
void jobnet_end(jobnet *n);

#endif
