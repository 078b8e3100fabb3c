/* The job's network. Default: a new network namespace in which only loopback exists and
 * is brought up, so nothing outside (executord's own port on 127.0.0.1 included) can be
 * reached. allow_network: the job stays in executord's network namespace (the
 * container's), as Tracecat does -- see sandbox_net_clone_flags. */
#ifndef EXECUTORD_SANDBOX_NET_H
#define EXECUTORD_SANDBOX_NET_H

#include <stdbool.h>

/* CLONE_NEWNET when the job has no network, 0 when it may use the service's. */
unsigned long sandbox_net_clone_flags(bool allow_network);

/* Child side (in the new network namespace), async-signal-safe: brings "lo" up.
 * Returns 0, or -1 with errno set and *step naming the failing call. */
int sandbox_net_loopback_up(const char **step);

#endif
