/* Process supervision shared by every backend: clone the job's process tree into fresh
 * namespaces, build it step by step through backend hooks, run the Python runner in it
 * with the fd protocol below, and supervise it (output caps, timeout, cancel, kill, reap).
 *
 * Shape of the tree (always a new PID namespace, so killing its init kills everything):
 *
 *   service thread ──clone(CLONE_NEWPID|hooks->clone_flags)──▶ init (pid 1, our code, no exec)
 *                                                               │ hooks->child_setup (mounts…)
 *                                                               └─fork──▶ runner (pid 2)
 *                                                                    setsid, chdir, fds 0-4,
 *                                                                    rlimits, hooks->child_pre_exec,
 *                                                                    execve(python -I -u -c runner)
 *
 * Release of init in two steps when the backend attaches it somewhere (parent_attach):
 * "go" after parent_setup (init runs child_setup meanwhile), "attached" once
 * parent_attach succeeded (init then runs child_attached and forks the runner). The
 * runner execs python with a bootstrap of the runner compiled once (proc_runner_program).
 *
 * init reaps everything, and when the runner is gone it reports the runner's wait status
 * and the tree's rusage to the service, then exits (which kills any leftover daemon).
 * To stop a job early (timeout, cancel, output cap, shutdown) the service sends init
 * SIGUSR1: init kills every process of the namespace, reaps them (so their CPU time is
 * still measured) and exits; if it has not within 2 s, the service SIGKILLs init.
 * A real init as pid 1 (instead of Python) keeps ordinary signal semantics for the
 * script: the kernel drops default-action signals (SIGXCPU, SIGTERM from inside …) sent
 * to a namespace's init.
 *
 * Runner fds: 0=/dev/null, 1=stdout pipe, 2=stderr pipe, 3=spec (socket; the service
 * writes proc_build_spec's document then shuts it down), 4=result pipe (one JSON doc).
 * The script's environment travels in the spec, not through execve: the interpreter
 * starts with the fixed base environment and the runner replaces it before the script
 * runs, so no size the API accepts can fail at exec (E2BIG).
 */
#ifndef EXECUTORD_SANDBOX_PROCESS_H
#define EXECUTORD_SANDBOX_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sandbox/rlimits.h"
#include "sandbox/sandbox.h"

/* Backend customisation points. Every callback may be NULL. */
typedef struct proc_hooks {
    /* Extra CLONE_NEW* flags (CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC,
     * CLONE_NEWUTS, CLONE_NEWCGROUP). CLONE_NEWPID is always added. */
    unsigned long clone_flags;
    void *ctx;
    /* In the service, after the clone but before init is released: write uid/gid maps
     * (see proc_write_id_maps), attach the pid to a cgroup, ... Return 0, or -1 with a
     * message ("call: strerror") in err; the job then fails with SANDBOX_SETUP_ERROR. */
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
     * parent_setup; a setup failure init reports itself takes precedence. Not called
     * when clone_into_cgroup placed init in its cgroup already. */
    int (*parent_attach)(void *ctx, pid_t init_pid, char *err, size_t errlen);
    /* In init once parent_attach succeeded, before the runner is forked (e.g.
     * unshare(CLONE_NEWCGROUP), which must see init in its final cgroup). Same rules as
     * child_setup. */
    int (*child_attached)(void *ctx, const char **step);
    /* cgroup v2: clone init straight into the cgroup open at cgroup_fd
     * (CLONE_INTO_CGROUP: no migration, so no grace period). When the kernel refuses
     * the flag, init is cloned as usual and parent_attach attaches it. */
    bool clone_into_cgroup;
    int cgroup_fd;
    /* Called when the tree must die (timeout, cancel, output cap, setup failure), right
     * after init got SIGKILL (when this hook is set, the polite SIGUSR1 request is
     * skipped: a cgroup kill reaches init anyway): e.g. write "1" to cgroup.kill. */
    void (*kill_all)(void *ctx);
    /* Called once after init was reaped, to add measurements (cgroup memory peak, OOM
     * kills, cgroup CPU time) to the usage. */
    void (*collect_usage)(void *ctx, sandbox_usage *usage);
} proc_hooks;

/* One job's run through the runner protocol. */
typedef struct proc_job {
    const sandbox_spec *spec;
    const sandbox_io *io;          /* may be NULL or have a NULL on_output */
    const char *python;            /* interpreter path, exec'd directly (no PATH search) */
    const char *cwd;               /* runner's working folder (as seen inside the tree) */
    const char *home;              /* HOME of the job's environment (inside the tree) */
    bool runner_from_source;       /* python inside is not the host's file at that path
                                    * (a rootfs): pass the runner's source, do not use
                                    * the code compiled by the host's (proc_runner_program) */
    proc_hooks hooks;
} proc_job;

/* Runs the job to completion and fills *out (verdict, exit code/signal, result or
 * error, usage, output counters). The caller did sandbox_outcome_init(out). Setup
 * failures (here or in a hook) give SANDBOX_SETUP_ERROR / "SandboxError" with the
 * failing step and errno text. Always returns 0. Thread-safe. */
int proc_run_job(const proc_job *job, sandbox_outcome *out);

/* The one description of a job for the runner (fd 3), a JSON object shared by the cold
 * (process.c) and warm (pool_job.c) paths:
 *   {"inputs": <inputs_json as given>, "script": "...", "limits": {"cpu_seconds",
 *    "memory_mb", "max_file_size_mb", "timeout_seconds"}, "env": ["NAME=VALUE", ...]
 *    [, "rlimits": [[resource, soft, hard], ...]]}
 * env is the script's whole environment: PATH=/usr/local/bin:/usr/bin:/bin, HOME=home,
 * LANG=C.UTF-8, then spec->env, which overrides those; nothing of the service's own. The
 * runner sets it (os.environ, so putenv too) before the script is compiled. rl: limits a
 * warm runner must apply itself (-1 = unlimited); NULL for a cold one, set before exec.
 * Returns malloc'd text (length in *len), or NULL with errno set (ENOMEM, or EINVAL for
 * text that is not UTF-8). */
char *proc_build_spec(const sandbox_spec *s, const char *home, const rlimit_set *rl, size_t *len);

/* Writes /proc/<pid>/setgroups ("deny"), uid_map and gid_map mapping uid/gid 0 inside
 * the user namespace to outside_uid/outside_gid. For parent_setup hooks. */
int proc_write_id_maps(pid_t pid, uid_t outside_uid, gid_t outside_gid, char *err, size_t errlen);

/* The program the runner's interpreter gets with -c: a bootstrap holding the runner
 * compiled once by python (saves 2.5-4 ms of every job's start), or the runner's source
 * when that is not possible. Compiling runs python once per interpreter file (a helper
 * process, ~30 ms) on the first call, and again if the file changes; backends may call
 * it at init so no job waits for it. Thread-safe; the text stays valid for the life of
 * the process. */
const char *proc_runner_program(const char *python);

/* Service shutdown: on=true kills every running job tree now (verdict SANDBOX_CANCELLED,
 * "Job cancelled: executord is shutting down") and refuses new ones until reset with
 * on=false. */
void proc_set_shutting_down(bool on);

/* Formats "Process exited with code N without returning a result" style texts need the
 * signal name: "SIGKILL", or "signal 42" for unnamed ones. Returns a static string. */
const char *proc_signal_name(int sig);

#endif
