/* executord as PID 1 (a container's entrypoint): a minimal init in front of the service,
 * so orphans reparented to PID 1 are reaped and stop signals reach the service. */
#ifndef EXECUTORD_PID1_H
#define EXECUTORD_PID1_H

/* When getpid() is 1: forks; the parent stays PID 1 as the init (forwards SIGTERM, SIGINT,
 * SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 to the service, reaps every child, and exits with the
 * service's status; it never returns), the child returns 0 and runs the service with
 * SIGTERM and SIGINT already blocked. Returns 0 at once when not PID 1, -1 (message on
 * stderr) when the fork fails. Call before any thread exists. */
/* cgroup_root: the cgroup filesystem's mount point (--cgroup-root); on a pure cgroup v2
 * host the init moves itself out of the container's cgroup (see pid1.c). */
int pid1_init_if_needed(const char *cgroup_root);

#endif
