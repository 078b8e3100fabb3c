/* Spawning a cold job's process tree: the clone into fresh namespaces, its release step
 * by step through the backend's hooks, and the async-signal-safe child side: the
 * sandbox's PID 1 (init, our code, never execs) and the runner child it forks. Also the
 * uid/gid maps of a user namespace and the records init sends back.
 *
 *   service thread ──clone(CLONE_NEWPID|hooks->clone_flags)──▶ init (pid 1)
 *                                                               │ hooks->child_setup (mounts…)
 *                                                               └─fork──▶ runner (pid 2)
 *                                                                    setsid, chdir, fds 0-4,
 *                                                                    rlimits, hooks->child_pre_exec,
 *                                                                    execve(argv, envp)
 *
 * init is released in one or two steps: "go" after parent_setup (init runs child_setup
 * meanwhile), and, when the backend attaches it somewhere (parent_attach) or works on
 * its finished root (parent_root_ready, after init said "rooted"), "attached" once that
 * succeeded (init then runs child_attached and forks the runner).
 *
 * init reaps everything, and when the runner is gone it reports the runner's wait status
 * and the tree's rusage on its status pipe, then exits (which kills any leftover
 * daemon). On SPAWN_KILL_REQUEST it kills every process of the namespace, reaps them (so
 * their CPU time is still measured) and exits. A real init as pid 1 (instead of Python)
 * keeps ordinary signal semantics for the script: the kernel drops default-action
 * signals (SIGXCPU, SIGTERM from inside …) sent to a namespace's init.
 *
 * Runner fds: 0=/dev/null, 1=stdout pipe, 2=stderr pipe, 3=spec socket, 4=result pipe. */
#ifndef EXECUTORD_SANDBOX_SPAWN_H
#define EXECUTORD_SANDBOX_SPAWN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "sandbox/rlimits.h"

/* The signal asking init to kill and reap the whole tree itself. */
#define SPAWN_KILL_REQUEST SIGUSR1

enum { SPAWN_RUNNER_FDS = 5 };

/* Backend customisation points. Every callback may be NULL. */
typedef struct spawn_hooks {
    /* Extra CLONE_NEW* flags (CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC,
     * CLONE_NEWUTS, CLONE_NEWCGROUP). CLONE_NEWPID is always added. */
    unsigned long clone_flags;
    void *ctx;
    /* In the service, after the clone but before init is released: write uid/gid maps
     * (see spawn_write_id_maps), ... Return 0, or -1 with a message ("call: strerror")
     * in err; the job then fails with SANDBOX_SETUP_ERROR. */
    int (*parent_setup)(void *ctx, pid_t init_pid, char *err, size_t errlen);
    /* In init (pid 1 of the new namespaces), before the runner is forked: mounts,
     * pivot_root, hostname, loopback. ASYNC-SIGNAL-SAFE ONLY (the service is
     * multithreaded): raw syscalls, no malloc, no stdio. Return 0, or -1 with errno set
     * and *step naming what failed (a string literal, e.g. "mount /proc"). */
    int (*child_setup)(void *ctx, const char **step);
    /* In the runner, after setsid/chdir/fd layout/rlimits, right before execve:
     * setgroups/setuid, capabilities, no_new_privs, seccomp. Same rules as child_setup. */
    int (*child_pre_exec)(void *ctx, const char **step);
    /* Optional second phase of parent_setup, run while init already runs child_setup:
     * e.g. attach init to the job's cgroup (on cgroup v1 that write waits for an RCU
     * grace period, ~10 ms, which then overlaps the root's assembly instead of preceding
     * it). init waits for it to succeed before child_attached and before forking the
     * runner, so no process of the job starts outside. Same return rules as
     * parent_setup; a setup failure init reports itself takes precedence. in_cgroup:
     * clone_into_cgroup placed init in its cgroup already (nothing to attach); still
     * called, as the last step before the runner exists (e.g. the job's network). */
    int (*parent_attach)(void *ctx, pid_t init_pid, bool in_cgroup, char *err, size_t errlen);
    /* In init once parent_attach succeeded, before the runner is forked (e.g.
     * unshare(CLONE_NEWCGROUP), which must see init in its final cgroup). Same rules as
     * child_setup. */
    int (*child_attached)(void *ctx, const char **step);
    /* In the service once init has assembled its root (child_setup succeeded: it says so
     * on the sync socket), after parent_attach and before the runner is forked: e.g.
     * mounts into the finished root from outside (pkgmount.h). Same return rules as
     * parent_setup; a setup failure init reports itself takes precedence. */
    int (*parent_root_ready)(void *ctx, pid_t init_pid, int init_pidfd, char *err, size_t errlen);
    /* cgroup v2: clone init straight into the cgroup open at cgroup_fd
     * (CLONE_INTO_CGROUP: no migration, so no grace period). When the kernel refuses
     * the flag, init is cloned as usual and parent_attach attaches it. */
    bool clone_into_cgroup;
    int cgroup_fd;
} spawn_hooks;

/* Everything the child side needs, prepared before the clone (it may not allocate). */
typedef struct spawn_plan {
    int runner_fds[SPAWN_RUNNER_FDS]; /* service-side fds that become the runner's 0..4 */
    const char *python;               /* exec'd directly (no PATH search) */
    char *const *argv;
    char *const *envp;
    const char *cwd;                  /* runner's working folder; NULL: init's */
    rlimit_set rl;                    /* set in the runner before child_pre_exec */
    const spawn_hooks *hooks;
} spawn_plan;

/* A spawned tree, as the service holds it. */
typedef struct spawn_tree {
    pid_t pid;       /* init, in the service's PID namespace; -1 before the clone */
    int pidfd;
    int status_fd;   /* init's records (read end, non-blocking) */
} spawn_tree;

enum {
    SPAWN_OK = 0,
    SPAWN_FAILED = -1,      /* err says why; a tree may exist (pid > 0): kill and reap it */
    SPAWN_FAILED_LATE = -2, /* the attach step failed; if init reported a set-up failure
                             * of its own, that is the better reason (spawn_read_records) */
};

/* Clones the tree and releases it through the hooks (raising the OOM score of init
 * first). *t is filled as far as it got; close it with spawn_close. The caller's
 * runner_fds stay open (close them once this returned). */
int spawn_start(const spawn_plan *p, spawn_tree *t, char *err, size_t errlen);

/* Waits for init (EINTR-safe); returns wait4's result. */
pid_t spawn_reap(const spawn_tree *t, int *status, struct rusage *ru);

/* After init was reaped: reads its records. Returns true when the runner's exit arrived
 * (*status, *ru: init's RUSAGE_CHILDREN, the runner and every reaped orphan). A set-up
 * failure init reported is formatted into err ("step: strerror"), which is otherwise
 * left empty. */
bool spawn_read_records(const spawn_tree *t, int *status, struct rusage *ru, char *err, size_t errlen);

void spawn_close(spawn_tree *t);

/* Writes /proc/<pid>/setgroups ("deny"), uid_map and gid_map mapping uid/gid 0 inside
 * the user namespace to outside_uid/outside_gid. For parent_setup hooks. */
int spawn_write_id_maps(pid_t pid, uid_t outside_uid, gid_t outside_gid, char *err, size_t errlen);

#endif
