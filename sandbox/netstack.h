/* The user-space network stack of one network-enabled job: a slirp4netns process that
 * joins the job's user and network namespaces, creates tap0 there and turns the job's
 * packets into sockets of the service's namespace. Why slirp4netns and not pasta:
 * bench/results/2026-12-05-netstack.md. Starting it, waiting until it is ready, and
 * stopping it; the service owns its lifetime (it does not end with the job). */
#ifndef EXECUTORD_SANDBOX_NETSTACK_H
#define EXECUTORD_SANDBOX_NETSTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Open files of one job's slirp4netns: its own dozen plus one per connection the job
 * has open at once. */
enum { NETSTACK_MAX_FILES = 4096 };

/* Once at start-up: the slirp4netns binary to use. Checks it runs and reads its version.
 * Returns 0, or -1 with the reason in why. */
int netstack_configure(const char *path, char *why, size_t whylen);

/* "1.2.0", or "" before configure succeeded. */
const char *netstack_version(void);

typedef struct netstack {
    pid_t pid;
    int pidfd;
    int ready_r;              /* slirp4netns writes "1" here once tap0 is configured */
    int exit_w;               /* closing it (or the service dying) makes slirp4netns exit */
    int log_fd;               /* its stdout and stderr (a memfd), for error messages */
} netstack;

/* A stack not started (what netstack_stop leaves too). */
void netstack_init(netstack *s);

/* Starts slirp4netns on the namespaces open at userns_fd and netns_fd (they are handed
 * over, not named by pid: no pid can be reused under it). host_loopback: 10.0.2.2 leads
 * to the host's 127.0.0.1 (only for a job whose ruleset opens exactly the ports it may
 * reach there); otherwise --disable-host-loopback. Returns at once; 0, or -1 with err. */
int netstack_start(netstack *s, int userns_fd, int netns_fd, bool host_loopback, char *err, size_t errlen);

/* Waits until it is ready, at most timeout_ms. Returns 0, or -1 with err (it exited, with
 * its last message, or it timed out). */
int netstack_wait_ready(netstack *s, int timeout_ms, char *err, size_t errlen);

/* Kills it and closes its fds; a detached thread reaps it once it has died, so the job's
 * answer does not wait for its teardown. Safe on a stack never started (pid <= 0). */
void netstack_stop(netstack *s);

#endif
