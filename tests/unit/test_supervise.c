/* sandbox/supervise.c against real child processes: a child in a PID namespace of its
 * own stands for a job's init and its tree. The timeout kills the whole tree (a grandchild too), a
 * cancel and a shutdown end it with their reasons, the polite kill request comes first
 * and SIGKILL follows when it is ignored, the output cap kills, a poll() failure kills
 * and stops, and exit codes, signals and result documents become the outcome. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/supervise.h"

/* What the child does once its fds are in place. */
typedef enum behaviour {
    EXIT_3,            /* exit(3) */
    SEGV,              /* dies of SIGSEGV */
    RESULT,            /* writes a result document, exits 0 */
    SLEEP_TREE,        /* forks a grandchild; both sleep (hold the witness pipe) */
    POLITE,            /* on SIGUSR1 writes "U" and exits 0; else sleeps */
    DEAF,              /* ignores SIGUSR1, sleeps */
    FLOOD,             /* writes 64 KiB to stdout, then sleeps */
    REPORT_AND_LINGER, /* reports its exit on the status socket, then sleeps */
} behaviour;

typedef struct kid {
    pid_t pid;
    int pidfd;
    int witness_r;    /* EOF once every process of the tree is gone */
    int status_r;     /* REPORT_AND_LINGER's status socket */
    sandbox_pump io;
    sandbox_outcome out;
    char seen[70000];
    size_t seen_len;
} kid;

static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    kid *k = ctx;
    assert_int_equal(stream, SANDBOX_STDOUT);
    assert_true(k->seen_len + len <= sizeof k->seen);
    memcpy(k->seen + k->seen_len, data, len);
    k->seen_len += len;
}

static void on_usr1(int sig)
{
    (void)sig;
    ssize_t n = write(1, "U", 1);
    _exit(n == 1 ? 0 : 1);
}

static _Noreturn void child_main(behaviour b, int out_w, int result_w, int witness_w, int status_w)
{
    if (dup2(out_w, 1) < 0)
        _exit(120);
    (void)witness_w; /* held open (not close-on-exec) until every process is gone */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    switch (b) {
    case EXIT_3:
        _exit(3);
    case SEGV:
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
        _exit(121);
    case RESULT: {
        static const char doc[] = "{\"ok\": true, \"result\": {\"answer\": 42}}";
        ssize_t n = write(result_w, doc, sizeof doc - 1);
        _exit(n == (ssize_t)sizeof doc - 1 ? 0 : 122);
    }
    case SLEEP_TREE:
        if (fork() < 0)
            _exit(123);
        for (;;)
            pause();
    case POLITE:
        signal(SIGUSR1, on_usr1);
        for (;;)
            pause();
    case DEAF:
        signal(SIGUSR1, SIG_IGN);
        for (;;)
            pause();
    case FLOOD: {
        static char buf[65536];
        memset(buf, 'x', sizeof buf);
        ssize_t n = write(1, buf, sizeof buf);
        (void)n;
        for (;;)
            pause();
    }
    case REPORT_AND_LINGER: {
        ssize_t n = write(status_w, "X 0 1000 2000 300", 17);
        (void)n;
        for (;;)
            pause();
    }
    }
    _exit(124);
}

/* Starts the child, with the pump on its pipes; a tree (SLEEP_TREE) as pid 1 of a new
 * PID namespace, so that its init's death takes it all down as a job's does. (Other
 * children stay outside: a namespace's init ignores its own raise().) */
static void start(kid *k, behaviour b, uint64_t cap, sandbox_io *io)
{
    unsigned long ns = b == SLEEP_TREE ? CLONE_NEWPID | (geteuid() != 0 ? CLONE_NEWUSER : 0) : 0;
    int out[2], res[2], wit[2], st[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(res, O_CLOEXEC), 0);
    assert_int_equal(pipe(wit), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, st), 0);
    io->ctx = k;
    io->on_output = on_output;
    k->seen_len = 0;
    sandbox_pump_init(&k->io, io, cap, NULL, NULL);
    sandbox_outcome_init(&k->out);
    int pidfd = -1;
    long pid = syscall(SYS_clone, ns | CLONE_PIDFD | SIGCHLD, 0L, &pidfd, 0L, 0L);
    assert_true(pid >= 0);
    if (pid == 0)
        child_main(b, out[1], res[1], wit[1], st[1]);
    k->pid = (pid_t)pid;
    k->pidfd = pidfd;
    close(out[1]);
    close(res[1]);
    close(wit[1]);
    close(st[1]);
    k->io.streams[0].fd = out[0];
    k->io.result_fd = res[0];
    assert_int_equal(fcntl(out[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(res[0], F_SETFL, O_NONBLOCK), 0);
    k->witness_r = wit[0];
    k->status_r = st[0];
}

static sv_tree tree_of(kid *k, double timeout)
{
    sv_tree t = {
        .pidfd = k->pidfd,
        .kill_request = 0,
        .io = &k->io,
        .cancel_fd = -1,
        .shutdown_fd = -1,
        .timeout_seconds = timeout,
        .status_fd = -1,
    };
    return t;
}

static int reap(kid *k)
{
    int st = 0;
    assert_int_equal(waitpid(k->pid, &st, __WALL), k->pid);
    return st;
}

/* True when every holder of the witness pipe is gone within 2 s. */
static bool tree_gone(kid *k)
{
    struct pollfd p = {.fd = k->witness_r, .events = POLLIN};
    if (poll(&p, 1, 2000) != 1)
        return false;
    char c;
    return read(k->witness_r, &c, 1) == 0;
}

static void finish(kid *k)
{
    sandbox_pump_free(&k->io);
    sandbox_outcome_free(&k->out);
    close(k->pidfd);
    close(k->witness_r);
    close(k->status_r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* sv_run, then the child's wait status; *took: how long supervision lasted. */
static int supervise(kid *k, const sv_tree *t, sv_report *rep, double *took)
{
    double t0 = now_s();
    sv_run(t, rep);
    if (took)
        *took = now_s() - t0;
    return reap(k);
}

static sandbox_limits limits(void)
{
    sandbox_limits l = {.timeout_seconds = 30, .cpu_seconds = 10, .max_output_bytes = 1 << 20};
    return l;
}

static void exit_code_becomes_the_outcome(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, EXIT_3, 0, &io);
    sv_tree t = tree_of(&k, 30);
    sv_report rep;
    int st = supervise(&k, &t, &rep, NULL);
    assert_int_equal(rep.killed, SANDBOX_KILL_NONE);
    assert_false(rep.hard_killed);
    assert_false(rep.exit_known);
    sandbox_limits lim = limits();
    sv_decide(&t, &rep, true, st, &lim, false, &k.out);
    assert_int_equal(k.out.verdict, SANDBOX_FAILED);
    assert_int_equal(k.out.exit_code, 3);
    assert_int_equal(k.out.signal, 0);
    assert_string_equal(k.out.error_type, "SandboxExecutionError");
    assert_string_equal(k.out.error_message, "Process exited with code 3 without returning a result");
    finish(&k);
}

static void signal_becomes_the_outcome(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, SEGV, 0, &io);
    sv_tree t = tree_of(&k, 30);
    sv_report rep;
    int st = supervise(&k, &t, &rep, NULL);
    sandbox_limits lim = limits();
    sv_decide(&t, &rep, true, st, &lim, false, &k.out);
    assert_int_equal(k.out.verdict, SANDBOX_FAILED);
    assert_int_equal(k.out.exit_code, -1);
    assert_int_equal(k.out.signal, SIGSEGV);
    assert_string_equal(k.out.error_message, "Process killed by signal SIGSEGV without returning a result");
    assert_string_equal(sv_signal_name(SIGKILL), "SIGKILL");
    assert_string_equal(sv_signal_name(200), "signal 200");
    finish(&k);
}

static void result_document_becomes_the_outcome(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, RESULT, 0, &io);
    sv_tree t = tree_of(&k, 30);
    sv_report rep;
    int st = supervise(&k, &t, &rep, NULL);
    sandbox_limits lim = limits();
    sv_decide(&t, &rep, true, st, &lim, true, &k.out);
    assert_int_equal(k.out.verdict, SANDBOX_SUCCEEDED);
    assert_int_equal(k.out.exit_code, 0);
    assert_non_null(strstr(k.out.result_json, "42"));
    finish(&k);
}

static void timeout_kills_the_whole_tree(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, SLEEP_TREE, 0, &io);
    sv_tree t = tree_of(&k, 0.3);
    sv_report rep;
    double took;
    int st = supervise(&k, &t, &rep, &took);
    assert_true(took >= 0.29);
    assert_true(took < 2.5);
    assert_int_equal(rep.killed, SANDBOX_KILL_TIMEOUT);
    assert_true(rep.hard_killed);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_true(tree_gone(&k)); /* the grandchild died with the namespace's init */
    sandbox_limits lim = limits();
    lim.timeout_seconds = 0.3;
    sv_decide(&t, &rep, false, 0, &lim, false, &k.out);
    assert_int_equal(k.out.verdict, SANDBOX_TIMED_OUT);
    assert_string_equal(k.out.error_type, "SandboxTimeoutError");
    finish(&k);
}

static void cancel_asks_init_first(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, POLITE, 0, &io);
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    sv_tree t = tree_of(&k, 30);
    t.kill_request = SIGUSR1;
    t.cancel_fd = efd;
    uint64_t one = 1;
    usleep(100 * 1000); /* the child's handler is installed */
    assert_int_equal(write(efd, &one, sizeof one), (ssize_t)sizeof one);
    sv_report rep;
    int st = supervise(&k, &t, &rep, NULL);
    assert_int_equal(rep.killed, SANDBOX_KILL_CANCEL);
    assert_false(rep.hard_killed); /* init did it itself */
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(k.seen_len, 1);
    assert_int_equal(k.seen[0], 'U');
    sandbox_limits lim = limits();
    sv_decide(&t, &rep, true, st, &lim, false, &k.out);
    assert_int_equal(k.out.verdict, SANDBOX_CANCELLED);
    assert_string_equal(k.out.error_message, "Job cancelled");
    close(efd);
    finish(&k);
}

static void ignored_request_gives_way_to_sigkill(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, DEAF, 0, &io);
    int efd = eventfd(1, EFD_CLOEXEC); /* the service is shutting down already */
    assert_true(efd >= 0);
    sv_tree t = tree_of(&k, 30);
    t.kill_request = SIGUSR1;
    t.shutdown_fd = efd;
    usleep(100 * 1000);
    sv_report rep;
    double took;
    int st = supervise(&k, &t, &rep, &took);
    assert_int_equal(rep.killed, SANDBOX_KILL_SHUTDOWN);
    assert_true(rep.hard_killed);
    assert_true(took >= SV_KILL_GRACE_MS / 1000.0 - 0.05);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    sandbox_limits lim = limits();
    sv_decide(&t, &rep, true, st, &lim, false, &k.out);
    assert_int_equal(k.out.verdict, SANDBOX_CANCELLED);
    assert_string_equal(k.out.error_message, "Job cancelled: executord is shutting down");
    close(efd);
    finish(&k);
}

static void output_cap_kills(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, FLOOD, 100, &io);
    sv_tree t = tree_of(&k, 30);
    sv_report rep;
    int st = supervise(&k, &t, &rep, NULL);
    assert_int_equal(rep.killed, SANDBOX_KILL_OUTPUT);
    assert_int_equal(rep.killed_stream, SANDBOX_STDOUT);
    assert_true(rep.hard_killed);
    assert_int_equal(k.seen_len, 100);
    sandbox_limits lim = limits();
    lim.max_output_bytes = 100;
    sv_decide(&t, &rep, true, st, &lim, false, &k.out);
    sandbox_pump_report(&k.io, &k.out);
    assert_int_equal(k.out.verdict, SANDBOX_OUTPUT_LIMIT);
    assert_string_equal(k.out.error_type, "OutputLimitExceeded");
    assert_true(k.out.stdout_truncated);
    assert_int_equal(k.out.stdout_bytes, 100);
    finish(&k);
}

typedef struct status_seen {
    int fd;
    int calls;
} status_seen;

static bool read_x(void *ctx)
{
    status_seen *s = ctx;
    char buf[64];
    s->calls++;
    ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 && buf[0] == 'X';
}

/* A warm sandbox reports the runner's exit before its init is gone: the job is over
 * then, without waiting for the teardown. */
static void reported_exit_ends_supervision(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, REPORT_AND_LINGER, 0, &io);
    /* The result pipe at EOF stands for a runner that is gone. */
    close(k.io.result_fd);
    k.io.result_fd = -1;
    status_seen s = {.fd = k.status_r};
    sv_tree t = tree_of(&k, 30);
    t.status_fd = k.status_r;
    t.read_status = read_x;
    t.ctx = &s;
    sv_report rep;
    double t0 = now_s();
    sv_run(&t, &rep);
    assert_true(now_s() - t0 < 2);
    assert_true(rep.exit_known);
    assert_int_equal(rep.killed, SANDBOX_KILL_NONE);
    assert_true(s.calls >= 1);
    assert_int_equal(waitpid(k.pid, NULL, WNOHANG), 0); /* init still there */
    sv_kill_now(&t);
    int st = reap(&k);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    finish(&k);
}

/* poll() refusing (more fds than RLIMIT_NOFILE allows): nothing can be supervised, so
 * the tree is killed and supervision stops. */
static void poll_failure_kills_and_stops(void **state)
{
    (void)state;
    kid k;
    sandbox_io io;
    start(&k, SLEEP_TREE, 0, &io);
    sv_tree t = tree_of(&k, 30);
    struct rlimit old, tight = {1, 1};
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    tight.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    sv_report rep;
    double t0 = now_s();
    sv_run(&t, &rep);
    double took = now_s() - t0;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_true(took < 2.5);
    assert_true(rep.hard_killed);
    assert_int_equal(rep.killed, SANDBOX_KILL_CANCEL);
    int st = reap(&k);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_true(tree_gone(&k));
    finish(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exit_code_becomes_the_outcome),
        cmocka_unit_test(signal_becomes_the_outcome),
        cmocka_unit_test(result_document_becomes_the_outcome),
        cmocka_unit_test(timeout_kills_the_whole_tree),
        cmocka_unit_test(cancel_asks_init_first),
        cmocka_unit_test(ignored_request_gives_way_to_sigkill),
        cmocka_unit_test(output_cap_kills),
        cmocka_unit_test(reported_exit_ends_supervision),
        cmocka_unit_test(poll_failure_kills_and_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
