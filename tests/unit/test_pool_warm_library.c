/* The warm library (sandbox/warm.h) as the pool's zygote gets it: the blob embedded in
 * the binary, in a sealed memfd, loaded through /proc/self/fd. Its entry points are the
 * only symbols it exports; it refuses bad input; a sandbox whose job process fails a step
 * of the policy reports that step and never reports "set up"; a sandbox that succeeds
 * runs its job as uid 1000 with no capabilities, no_new_privs and the filter. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/pool_zygote.h"
#include "sandbox/seccomp.h"
#include "sandbox/warm.h"

typedef int (*init_fn)(const void *, size_t);
typedef long (*spawn_fn)(const char *, const int *, int);
typedef int (*rlimits_fn)(const long long *, int);

static void *lib;
static init_fn warm_init;
static spawn_fn warm_spawn;
static rlimits_fn warm_rlimits;

/* The way pool_zygote.c hands it over. */
static int setup(void **state)
{
    (void)state;
    int fd = memfd_create("test-warm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, pool_warm_library, pool_warm_library_size), (ssize_t)pool_warm_library_size);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        fprintf(stderr, "dlopen: %s\n", dlerror());
    assert_non_null(lib);
    close(fd);
    warm_init = (init_fn)dlsym(lib, "exd_warm_init");
    warm_spawn = (spawn_fn)dlsym(lib, "exd_warm_spawn");
    warm_rlimits = (rlimits_fn)dlsym(lib, "exd_warm_rlimits");
    return 0;
}

static void test_embedded_library_exports_only_its_entry_points(void **state)
{
    (void)state;
    assert_true(pool_warm_library_size > 4096);
    assert_memory_equal(pool_warm_library, "\177ELF", 4);
    assert_non_null(warm_init);
    assert_non_null(warm_spawn);
    assert_non_null(warm_rlimits);
    /* The policy's internals stay hidden: nothing else in the zygote binds to them. */
    assert_null(dlsym(lib, "policy_job_steps"));
    assert_null(dlsym(lib, "sandbox_mnt_apply"));
    assert_null(dlsym(lib, "sandbox_caps_drop_to"));
}

/* fds of one request: the service's ends in svc, the sandbox's in req. */
typedef struct request_fds {
    int req[5];
    int out, err, spec, result, status;
} request_fds;

static void open_request(request_fds *r)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    r->out = p[0], r->req[0] = p[1];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    r->err = p[0], r->req[1] = p[1];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
    r->spec = p[0], r->req[2] = p[1];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    r->result = p[0], r->req[3] = p[1];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p), 0);
    r->status = p[0], r->req[4] = p[1];
}

static void close_request(request_fds *r)
{
    for (int i = 0; i < 5; i++)
        if (r->req[i] >= 0)
            close(r->req[i]);
    close(r->out), close(r->err), close(r->spec), close(r->result), close(r->status);
}

static void close_sandbox_ends(request_fds *r)
{
    for (int i = 0; i < 5; i++) {
        close(r->req[i]);
        r->req[i] = -1;
    }
}

/* One message from the status socket (NUL-terminated), with a pidfd closed if one came. */
static ssize_t recv_status(int fd, char *buf, size_t len)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = buf, .iov_len = len - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
        int pidfd;
        memcpy(&pidfd, CMSG_DATA(cm), sizeof pidfd);
        close(pidfd);
    }
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

static void test_refuses_bad_input(void **state)
{
    (void)state;
    request_fds r;
    open_request(&r);
    char msg[512];
    /* No filter yet: nothing starts, the reason goes to the service. */
    assert_int_equal(warm_spawn("F 1 2 1048576 1048576 1048576 64", r.req, 5), -1);
    assert_true(recv_status(r.status, msg, sizeof msg) > 0);
    assert_string_equal(msg, "E warm library not initialised");
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    assert_int_equal(warm_init(NULL, 8), -1);
    assert_int_equal(warm_init(&allow, 0), -1);
    assert_int_equal(warm_init(&allow, 7), -1);
    assert_int_equal(warm_init(&allow, (BPF_MAXINSNS + 1) * sizeof allow), -1);
    assert_int_equal(warm_init(&allow, sizeof allow), 0);
    assert_int_equal(warm_spawn("F 1 2 3", r.req, 5), -1);
    assert_true(recv_status(r.status, msg, sizeof msg) > 0);
    assert_string_equal(msg, "E bad request");
    assert_int_equal(warm_spawn("F 1 2 1048576 1048576 1048576 64", r.req, 4), -1);
    long long bad[3] = {RLIMIT_NOFILE, 10, 5}; /* soft above hard */
    assert_int_equal(warm_rlimits(bad, 1), -1);
    assert_int_equal(warm_rlimits(bad, 99), -1);
    close_request(&r);
}

/* The value of "Name:" in a /proc status text ("-" when absent), into buf. */
static const char *status_field(const char *status, const char *name, char *buf, size_t len)
{
    const char *p = strstr(status, name);
    if (!p)
        return "-";
    p += strlen(name);
    p += strspn(p, " \t");
    size_t n = strcspn(p, "\n");
    snprintf(buf, len, "%.*s", (int)n, p);
    return buf;
}

/* In the job process of a sandbox: what the policy left, as "uid capeff nnp seccomp cwd"
 * on the result pipe (fd 4); then exits. */
static _Noreturn void report_job_state(void)
{
    char status[4096], cwd[256], out[600], cap[32], nnp[8], sc[8];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, status, sizeof status - 1) : -1;
    status[n > 0 ? n : 0] = '\0';
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, "?");
    int len = snprintf(out, sizeof out, "%u %s %s %s %s", (unsigned)getuid(),
                       status_field(status, "CapEff:", cap, sizeof cap), status_field(status, "NoNewPrivs:", nnp, sizeof nnp),
                       status_field(status, "Seccomp:", sc, sizeof sc), cwd);
    if (write(4, out, (size_t)len) < 0)
        _exit(3);
    _exit(0);
}

/* Runs one sandbox; fills setup (its second report: "S" or "E ...") and the result text.
 * Returns false when the host cannot build one at all (first report "E ..."). */
static bool run_sandbox(char *setup, size_t setuplen, char *result, size_t resultlen, int *exit_status)
{
    request_fds r;
    open_request(&r);
    long pid = warm_spawn("F 3300001 3300002 1048576 1048576 1048576 64", r.req, 5);
    if (pid == 0)
        report_job_state(); /* the job process: a fork of this test */
    close_sandbox_ends(&r);
    char msg[512];
    ssize_t n = recv_status(r.status, msg, sizeof msg);
    assert_true(n > 0);
    if (msg[0] == 'E') {
        /* Fail closed: a named step, never a sandbox reported ready. */
        fprintf(stderr, "warm sandbox not buildable here: %s\n", msg);
        assert_true(pid < 0 || strlen(msg) > 2);
        if (pid > 0)
            waitpid((pid_t)pid, NULL, __WALL);
        close_request(&r);
        return false;
    }
    assert_true(pid > 0);
    assert_string_equal(msg, "R");
    assert_int_equal(send(r.status, "G", 1, MSG_NOSIGNAL), 1);
    assert_true(recv_status(r.status, setup, setuplen) > 0);
    shutdown(r.spec, SHUT_WR);
    ssize_t got = read(r.result, result, resultlen - 1);
    result[got > 0 ? got : 0] = '\0';
    assert_true(recv_status(r.status, msg, sizeof msg) > 0);
    int st = -2;
    assert_int_equal(sscanf(msg, "X %d", &st), 1);
    *exit_status = st;
    int wst;
    assert_int_equal(waitpid((pid_t)pid, &wst, __WALL), (pid_t)pid);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    close_request(&r);
    return true;
}

static void test_job_step_failure_is_reported_and_nothing_runs(void **state)
{
    (void)state;
    /* A program the kernel refuses (a jump past its end): the last job step fails. */
    struct sock_filter broken[2] = {BPF_JUMP(BPF_JMP | BPF_JA, 5, 0, 0),
                                    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    assert_int_equal(warm_init(broken, sizeof broken), 0);
    char setup[512], result[512];
    int st;
    if (!run_sandbox(setup, sizeof setup, result, sizeof result, &st))
        skip();
    assert_string_equal(setup, "E job process: prctl(PR_SET_SECCOMP): Invalid argument");
    assert_string_equal(result, ""); /* the job never ran */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), EXD_WARM_EXIT_JOB);
}

static void test_job_runs_with_the_policy_applied(void **state)
{
    (void)state;
    struct sock_fprog prog;
    char err[256];
    assert_int_equal(sandbox_seccomp_build(&prog, err, sizeof err), 0);
    assert_int_equal(warm_init(prog.filter, prog.len * sizeof *prog.filter), 0);
    sandbox_seccomp_free(&prog);
    char setup[512], result[512];
    int st;
    if (!run_sandbox(setup, sizeof setup, result, sizeof result, &st))
        skip();
    assert_string_equal(setup, "S");
    assert_string_equal(result, "1000 0000000000000000 1 2 /work");
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_library_exports_only_its_entry_points),
        cmocka_unit_test(test_refuses_bad_input),
        cmocka_unit_test(test_job_step_failure_is_reported_and_nothing_runs),
        cmocka_unit_test(test_job_runs_with_the_policy_applied),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
