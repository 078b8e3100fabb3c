/* The child side of a job's network: every sandbox gets a network namespace of its own,
 * in which loopback is brought up here. Nothing outside (executord's own port on
 * 127.0.0.1 included) can be reached from it unless the service connects it through
 * the user-space stack and the egress policy (allow_network: jobnet.h). */
#ifndef EXECUTORD_SANDBOX_NET_H
#define EXECUTORD_SANDBOX_NET_H


/* What a network-enabled job sees: tap0 10.0.2.100/24 with the gateway 10.0.2.2 (which
 * leads nowhere: --disable-host-loopback) and the user-space stack's DNS forwarder, the
 * only name server of every sandbox's generated /etc/resolv.conf. */
#define SANDBOX_NET_DNS_ADDRESS "10.0.2.3"
/* The stack's network, tap0's, the gateway's and the forwarder's. */
#define SANDBOX_NET_STACK_NETWORK "10.0.2.0/24"

/* Child side (in the new network namespace), async-signal-safe: brings "lo" up.
 * Returns 0, or -1 with errno set and *step naming the failing call. */
int sandbox_net_loopback_up(const char **step);

#endif
