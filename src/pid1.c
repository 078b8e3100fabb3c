/* The init executord becomes when it is PID 1 (see pid1.h). Why a separate process and not
 * reaping inside the service: the service waits for its own children by pid (sandbox
 * inits, zygotes, probes) and needs their statuses; a waitpid(-1) reaper thread in the
 * same process would steal them, and SIGCHLD=SIG_IGN would discard them. A parent that
 * does nothing but reap can wait for anything without racing the service (tini's model). */
#include "src/pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/cgroupfs.h"

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* The shell convention (and tini's): 128+N for a service killed by signal N. */
static int exit_code_of(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

/* Reaps every child that has ended; returns true once the service is among them. */
static bool reap_all(pid_t service, int *service_status)
{
    bool service_done = false;
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) /* 0: children left, none ended; ECHILD: none left */
            return service_done;
        if (w == service) {
            *service_status = st;
            service_done = true;
        }
    }
}

/* cgroup v2 lets a non-root cgroup hand controllers to children only while it holds no
 * process itself; the service moves itself to a leaf for that (sandbox/cgroup2.c), but
 * this init would still sit in the container's cgroup. So the init moves to a leaf of
 * its own, executord-init, before the service looks. Best effort: without a writable
 * cgroup v2 there is nothing to move out of, and the service reports what it found. */
static void leave_service_cgroup(const char *cgroup_root)
{
    char line[PATH_MAX], dir[PATH_MAX * 2], err[PATH_MAX * 2 + 128];
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return;
    bool v2_only = fgets(line, sizeof line, f) && strncmp(line, "0::/", 4) == 0 && fgetc(f) == EOF;
    fclose(f);
    if (!v2_only || !cgroup_root || !*cgroup_root)
        return;
    line[strcspn(line, "\n")] = '\0';
    snprintf(dir, sizeof dir, "%s%s/executord-init", cgroup_root, strcmp(line + 3, "/") == 0 ? "" : line + 3);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return; /* read-only or not delegated: the usual container, nothing to do */
    /* "0": the writing process itself */
    if (cg_write(false, dir, "cgroup.procs", "0", err, sizeof err) != 0)
        fprintf(stderr, "executord: init: moving to %s: %s\n", dir, err);
}

static _Noreturn void run_init(pid_t service, const sigset_t *wanted)
{
    /* Shows up as "executord-init" in ps/top inside the container. */
    if (prctl(PR_SET_NAME, "executord-init", 0, 0, 0) != 0)
        fprintf(stderr, "executord: init: prctl(PR_SET_NAME): %s\n", strerror(errno));
    int status = 0;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(wanted, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            /* Cannot wait for signals any more: give the service a clean stop rather than
             * leave it under an init that no longer reaps. */
            fprintf(stderr, "executord: init: sigwaitinfo: %s\n", strerror(errno));
            if (kill(service, SIGTERM) != 0 && errno != ESRCH)
                fprintf(stderr, "executord: init: kill: %s\n", strerror(errno));
            while (waitpid(service, &status, 0) < 0 && errno == EINTR) {
            }
            _exit(exit_code_of(status));
        }
        if (sig == SIGCHLD) {
            /* Orphans of the whole container land here; the service is one child among
             * them. Once it ends, so does the container: the kernel kills whatever else
             * is left in the PID namespace when its init exits. */
            if (reap_all(service, &status))
                _exit(exit_code_of(status));
            continue;
        }
        if (kill(service, sig) != 0 && errno != ESRCH)
            fprintf(stderr, "executord: init: forwarding signal %d: %s\n", sig, strerror(errno));
    }
}

int pid1_init_if_needed(const char *cgroup_root)
{
    if (getpid() != 1)
        return 0;
    /* Blocked before the fork, so nothing sent in between is lost: the init takes them
     * with sigwaitinfo (a PID 1 ignores signals it neither handles nor blocks). */
    sigset_t wanted, old;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&wanted, forwarded[i]);
    if (sigprocmask(SIG_BLOCK, &wanted, &old) != 0) {
        fprintf(stderr, "executord: init: sigprocmask: %s\n", strerror(errno));
        return -1;
    }
    /* The service waits on this until the init has left its cgroup (EOF = go). */
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) {
        fprintf(stderr, "executord: init: pipe2: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "executord: init: fork: %s\n", strerror(errno));
        close(go[0]);
        close(go[1]);
        return -1;
    }
    if (pid > 0) {
        close(go[0]);
        leave_service_cgroup(cgroup_root);
        close(go[1]);
        run_init(pid, &wanted);
    }
    close(go[1]);
    char b;
    while (read(go[0], &b, 1) < 0 && errno == EINTR) {
    }
    close(go[0]);
    /* The service: its original mask, plus SIGTERM/SIGINT that main takes with sigwait
     * (kept blocked from here so a stop forwarded during start-up is not fatal). */
    sigset_t mask = old;
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_SETMASK, &mask, NULL) != 0) {
        fprintf(stderr, "executord: sigprocmask: %s\n", strerror(errno));
        _exit(1);
    }
    return 0;
}
