/* The sandbox's seccomp policy, loaded for real in forked children: every denied call
 * answers EPERM, a call off the allow-list (clone3, numbers newer or beyond the table)
 * ENOSYS, ordinary calls, fork, threads and a Python interpreter still work, and system
 * calls of a foreign architecture (i386 int 0x80, x32) kill the process. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/seccomp.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static struct sock_fprog prog;
/* Where probes that read or write memory put it; the results are not looked at. */
static char probe_buf[4096] __attribute__((aligned(16)));

typedef struct probe {
    const char *name;
    long nr;
    long a[6];
    int expect; /* errno, or 0 for "succeeds" */
} probe;

static const probe probes[] = {
    {"ptrace", SYS_ptrace, {0 /* PTRACE_TRACEME */}, EPERM},
    {"process_vm_readv", SYS_process_vm_readv, {1, 0, 0, 0, 0, 0}, EPERM},
    {"process_vm_writev", SYS_process_vm_writev, {1, 0, 0, 0, 0, 0}, EPERM},
    {"pidfd_getfd", SYS_pidfd_getfd, {-1, 0, 0}, EPERM},
    {"process_madvise", SYS_process_madvise, {-1, 0, 0, 0, 0}, EPERM},
    {"mount", SYS_mount, {0, 0, 0, 0, 0}, EPERM},
    {"umount2", SYS_umount2, {0, 0}, EPERM},
    {"pivot_root", SYS_pivot_root, {0, 0}, EPERM},
    {"chroot", SYS_chroot, {0}, EPERM},
    {"unshare", SYS_unshare, {CLONE_NEWUSER}, EPERM},
    {"setns", SYS_setns, {-1, 0}, EPERM},
    {"clone NEWNS", SYS_clone, {CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0}, EPERM},
    {"clone NEWUSER", SYS_clone, {CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0}, EPERM},
    {"clone NEWPID", SYS_clone, {CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0}, EPERM},
    {"clone NEWNET", SYS_clone, {CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0}, EPERM},
    {"clone NEWCGROUP", SYS_clone, {CLONE_NEWCGROUP | SIGCHLD, 0, 0, 0, 0}, EPERM},
    {"bpf", SYS_bpf, {0, 0, 0}, EPERM},
    {"perf_event_open", SYS_perf_event_open, {0, 0, -1, -1, 0}, EPERM},
    {"userfaultfd", SYS_userfaultfd, {0}, EPERM},
    {"keyctl", SYS_keyctl, {0, 0, 0, 0, 0}, EPERM},
    {"add_key", SYS_add_key, {0, 0, 0, 0, 0}, EPERM},
    {"request_key", SYS_request_key, {0, 0, 0, 0}, EPERM},
    {"kexec_load", SYS_kexec_load, {0, 0, 0, 0}, EPERM},
    {"kexec_file_load", SYS_kexec_file_load, {0, 0, 0, 0, 0}, EPERM},
    {"init_module", SYS_init_module, {0, 0, 0}, EPERM},
    {"finit_module", SYS_finit_module, {-1, 0, 0}, EPERM},
    {"delete_module", SYS_delete_module, {0, 0}, EPERM},
    {"open_by_handle_at", SYS_open_by_handle_at, {-1, 0, 0}, EPERM},
    {"name_to_handle_at", SYS_name_to_handle_at, {-1, 0, 0, 0, 0}, EPERM},
    {"io_uring_setup", SYS_io_uring_setup, {1, 0}, EPERM},
    {"io_uring_enter", SYS_io_uring_enter, {-1, 0, 0, 0, 0, 0}, EPERM},
    {"io_uring_register", SYS_io_uring_register, {-1, 0, 0, 0}, EPERM},
    {"swapon", SYS_swapon, {0, 0}, EPERM},
    {"swapoff", SYS_swapoff, {0}, EPERM},
    {"reboot", SYS_reboot, {0, 0, 0, 0}, EPERM},
    {"syslog", SYS_syslog, {3, 0, 0}, EPERM},
    {"acct", SYS_acct, {0}, EPERM},
    {"quotactl", SYS_quotactl, {0, 0, 0, 0}, EPERM},
    {"settimeofday", SYS_settimeofday, {0, 0}, EPERM},
    {"clock_settime", SYS_clock_settime, {0, 0}, EPERM},
    {"adjtimex", SYS_adjtimex, {0}, EPERM},
    {"iopl", SYS_iopl, {0}, EPERM},
    {"ioperm", SYS_ioperm, {0, 0, 0}, EPERM},
    {"kcmp", SYS_kcmp, {0, 0, 0, 0, 0}, EPERM},
    {"fanotify_init", SYS_fanotify_init, {0, 0}, EPERM},
    {"lookup_dcookie", SYS_lookup_dcookie, {0, 0, 0}, EPERM},
    {"personality ADDR_NO_RANDOMIZE", SYS_personality, {ADDR_NO_RANDOMIZE}, EPERM},
    {"personality READ_IMPLIES_EXEC", SYS_personality, {READ_IMPLIES_EXEC}, EPERM},
    {"personality PER_LINUX32", SYS_personality, {PER_LINUX32}, EPERM},
    {"personality 0xfffffffe", SYS_personality, {0xfffffffeL}, EPERM},
    {"personality high bits", SYS_personality, {0x100000000L}, EPERM},
    {"socket AF_VSOCK", SYS_socket, {AF_VSOCK, SOCK_STREAM, 0}, EPERM},
    /* the kernel reads the family as an int: high bits must not hide AF_VSOCK */
    {"socket AF_VSOCK high bits", SYS_socket, {0x100000000L | AF_VSOCK, SOCK_STREAM, 0}, EPERM},
    {"clone NEWUSER high bits", SYS_clone, {0x100000000L | CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0}, EPERM},
    /* off the allow-list: ENOSYS */
    {"clone3", SYS_clone3, {0, 0}, ENOSYS},
    {"nr 467 (open_tree_attr, Linux 6.15)", 467, {-1, 0, 0, 0, 0}, ENOSYS},
    {"nr 1000", 1000, {0}, ENOSYS},
    {"nr 4095", 4095, {0}, ENOSYS},
    {"sethostname", SYS_sethostname, {0, -1}, ENOSYS},
    {"get_mempolicy", SYS_get_mempolicy, {0, 0, 0, 0, 0}, ENOSYS},
#ifdef SYS_modify_ldt
    {"modify_ldt", SYS_modify_ldt, {0, (long)probe_buf, sizeof probe_buf}, ENOSYS},
#endif
    {"socket family 64", SYS_socket, {64, SOCK_STREAM, 0}, ENOSYS},
    /* still allowed */
    {"personality query", SYS_personality, {0xffffffffL}, 0},
    {"personality PER_LINUX", SYS_personality, {0}, 0},
    {"getpid", SYS_getpid, {0}, 0},
    {"socket AF_UNIX", SYS_socket, {AF_UNIX, SOCK_STREAM, 0}, 0},
    {"socket AF_INET", SYS_socket, {AF_INET, SOCK_DGRAM, 0}, 0},
    {"socket AF_INET6", SYS_socket, {AF_INET6, SOCK_STREAM, 0}, 0},
    {"socket AF_NETLINK", SYS_socket, {AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */}, 0},
    {"openat /dev/null", SYS_openat, {AT_FDCWD, (long)"/dev/null", O_RDONLY}, 0},
    {"newfstatat /", SYS_newfstatat, {AT_FDCWD, (long)"/", (long)probe_buf, 0}, 0},
    {"uname", SYS_uname, {(long)probe_buf}, 0},
    {"getrandom", SYS_getrandom, {(long)probe_buf, 16, 0}, 0},
    {"clock_gettime", SYS_clock_gettime, {CLOCK_MONOTONIC, (long)probe_buf}, 0},
    {"sched_getaffinity", SYS_sched_getaffinity, {0, 128, (long)probe_buf}, 0},
    {"prlimit64 read", SYS_prlimit64, {0, RLIMIT_NOFILE, 0, (long)probe_buf}, 0},
    {"mmap anonymous", SYS_mmap, {0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0}, 0},
    {"pipe2", SYS_pipe2, {(long)probe_buf, O_CLOEXEC}, 0},
    {"socketpair", SYS_socketpair, {AF_UNIX, SOCK_STREAM, 0, (long)probe_buf}, 0},
    {"epoll_create1", SYS_epoll_create1, {0}, 0},
    {"eventfd2", SYS_eventfd2, {0, 0}, 0},
    {"memfd_create", SYS_memfd_create, {(long)"probe", 0}, 0},
    {"getcwd", SYS_getcwd, {(long)probe_buf, sizeof probe_buf}, 0},
};
enum { NPROBES = sizeof probes / sizeof probes[0] };

static int group_setup(void **state)
{
    char err[256];
    if (sandbox_seccomp_build(&prog, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    sandbox_seccomp_free(&prog);
    return 0;
}

/* Runs fn in a child under the filter (or without it); returns its wait status. */
static int in_child(void (*fn)(int fd), int *fd_out, bool filtered)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka's handlers would turn a crash of the child into a second test run. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        close(p[0]);
        const char *step = NULL;
        if (filtered && sandbox_seccomp_apply(&prog, &step) != 0)
            _exit(100);
        fn(p[1]);
        _exit(0);
    }
    close(p[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    *fd_out = p[0];
    return st;
}

static int in_filtered_child(void (*fn)(int fd), int *fd_out)
{
    return in_child(fn, fd_out, true);
}

static void run_probes(int fd)
{
    int results[NPROBES];
    for (size_t i = 0; i < NPROBES; i++) {
        const probe *pr = &probes[i];
        errno = 0;
        long r = syscall(pr->nr, pr->a[0], pr->a[1], pr->a[2], pr->a[3], pr->a[4], pr->a[5]);
        if (r >= 0 && pr->nr == SYS_clone && r == 0)
            _exit(0); /* a clone that wrongly succeeded: the child leaves at once */
        results[i] = r == -1 ? errno : 0;
    }
    ssize_t n = write(fd, results, sizeof results);
    (void)n;
}

static void test_each_call_gets_its_answer(void **state)
{
    int fd;
    int st = in_filtered_child(run_probes, &fd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    int results[NPROBES];
    assert_int_equal(read(fd, results, sizeof results), (ssize_t)sizeof results);
    close(fd);
    int bad = 0;
    for (size_t i = 0; i < NPROBES; i++) {
        if (results[i] != probes[i].expect) {
            print_error("%s: got %s, expected %s\n", probes[i].name,
                        results[i] ? strerror(results[i]) : "success",
                        probes[i].expect ? strerror(probes[i].expect) : "success");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void sethostname_unfiltered(int fd)
{
    /* len -1: refused before anything changes, even for root. */
    long r = syscall(SYS_sethostname, 0L, -1L);
    int err = r == -1 ? errno : 0;
    ssize_t n = write(fd, &err, sizeof err);
    (void)n;
}

/* The ENOSYS of an unlisted call comes from the filter: without it the kernel answers
 * sethostname (built into every kernel) with something else. */
static void test_unlisted_call_exists_without_filter(void **state)
{
    int fd, err = -1;
    int st = in_child(sethostname_unfiltered, &fd, false);
    assert_true(WIFEXITED(st));
    assert_int_equal(read(fd, &err, sizeof err), (ssize_t)sizeof err);
    close(fd);
    assert_int_not_equal(err, ENOSYS);
    assert_int_not_equal(err, 0);
}

static void fork_and_thread_work(int fd)
{
    /* An ordinary fork (clone without namespace flags) and exec still work. */
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(99);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    int ok = pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    ssize_t n = write(fd, &ok, sizeof ok);
    (void)n;
}

static void test_fork_and_exec_still_work(void **state)
{
    int fd;
    int st = in_filtered_child(fork_and_thread_work, &fd);
    assert_true(WIFEXITED(st));
    int ok = 0;
    assert_int_equal(read(fd, &ok, sizeof ok), (ssize_t)sizeof ok);
    close(fd);
    assert_int_equal(ok, 1);
}

static void *thread_main(void *arg)
{
    return (void *)((uintptr_t)arg * 2);
}

static void threads_work(int fd)
{
    /* glibc tries clone3 first (ENOSYS here) and falls back to clone with CLONE_VM,
     * CLONE_THREAD, ...: no namespace flag, so allowed. */
    int ok = 1;
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, thread_main, (void *)(i + 1)) != 0)
            ok = 0, t[i] = 0;
    for (uintptr_t i = 0; i < 4; i++) {
        void *ret = NULL;
        if (t[i] && (pthread_join(t[i], &ret) != 0 || (uintptr_t)ret != (i + 1) * 2))
            ok = 0;
    }
    ssize_t n = write(fd, &ok, sizeof ok);
    (void)n;
}

static void test_threads_still_work(void **state)
{
    int fd;
    int st = in_filtered_child(threads_work, &fd);
    assert_true(WIFEXITED(st));
    int ok = 0;
    assert_int_equal(read(fd, &ok, sizeof ok), (ssize_t)sizeof ok);
    close(fd);
    assert_int_equal(ok, 1);
}

/* What a job's interpreter does at start and in an ordinary script: imports (ssl and
 * sqlite3 load shared libraries), threads, a subprocess, a loopback socket, a temporary
 * file, hashing. It prints "ok" only if all of it worked. */
static const char python_workload[] =
    "import hashlib, os, socket, sqlite3, ssl, subprocess, sys, tempfile, threading\n"
    "ssl.create_default_context()\n"
    "db = sqlite3.connect(':memory:'); db.execute('create table t(x)'); db.execute('insert into t values (1)')\n"
    "assert db.execute('select sum(x) from t').fetchone() == (1,)\n"
    "out = []\n"
    "th = [threading.Thread(target=out.append, args=(i,)) for i in range(4)]\n"
    "[t.start() for t in th]; [t.join() for t in th]\n"
    "assert sorted(out) == [0, 1, 2, 3]\n"
    "assert subprocess.run(['/bin/sh', '-c', 'exit 3']).returncode == 3\n"
    "a, b = socket.socketpair(); a.sendall(b'x'); assert b.recv(1) == b'x'\n"
    "srv = socket.create_server(('127.0.0.1', 0)); c = socket.create_connection(srv.getsockname())\n"
    "s, _ = srv.accept(); c.sendall(b'y'); assert s.recv(1) == b'y'\n"
    "with tempfile.TemporaryFile() as f: f.write(b'z'); f.seek(0); assert f.read() == b'z'\n"
    "hashlib.sha256(os.urandom(16)).hexdigest()\n"
    "print('ok')\n";

static void python_works(int fd)
{
    int out = open("/dev/null", O_WRONLY);
    if (out < 0 || dup2(fd, 1) < 0 || dup2(out, 2) < 0)
        _exit(98);
    execl("/usr/bin/python3", "python3", "-I", "-c", python_workload, (char *)NULL);
    _exit(99);
}

static void test_python_runs_under_the_filter(void **state)
{
    int fd;
    int st = in_filtered_child(python_works, &fd);
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        print_error("python3 under the filter: wait status %#x, stdout \"%s\"\n", st, buf);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(n >= 2);
    assert_string_equal(buf, "ok\n");
}

static void x32_call(int fd)
{
    syscall(0x40000000L | SYS_getpid);
    _exit(0); /* reached only if the call was not killed */
}

static void i386_call(int fd)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) /* i386 getpid */ : "memory");
    (void)ret;
    _exit(0);
}

static void test_x32_calls_are_killed(void **state)
{
    int fd;
    int st = in_filtered_child(x32_call, &fd);
    close(fd);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_i386_calls_are_killed(void **state)
{
    int fd;
    /* Some hosts (kernels without IA32 emulation, some hypervisors) fault on int 0x80
     * before any filter runs: the test then proves nothing and says so. */
    int st = in_child(i386_call, &fd, false);
    close(fd);
    if (WIFSIGNALED(st)) {
        print_message("int 0x80 dies with signal %d without a filter on this host: not tested\n",
                      WTERMSIG(st));
        skip();
    }
    st = in_filtered_child(i386_call, &fd);
    close(fd);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_filter_is_exported(void **state)
{
    assert_non_null(prog.filter);
    assert_true(prog.len > 10);
    /* The kernel refuses a longer program. */
    assert_true(prog.len <= BPF_MAXINSNS);
    /* Without no_new_privs an unprivileged process cannot load it: apply sets it. */
    struct sock_fprog again;
    char err[256];
    assert_int_equal(sandbox_seccomp_build(&again, err, sizeof err), 0);
    assert_int_equal(again.len, prog.len);
    assert_memory_equal(again.filter, prog.filter, prog.len * sizeof *prog.filter);
    sandbox_seccomp_free(&again);
    assert_null(again.filter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_is_exported),
        cmocka_unit_test(test_each_call_gets_its_answer),
        cmocka_unit_test(test_unlisted_call_exists_without_filter),
        cmocka_unit_test(test_fork_and_exec_still_work),
        cmocka_unit_test(test_threads_still_work),
        cmocka_unit_test(test_python_runs_under_the_filter),
        cmocka_unit_test(test_x32_calls_are_killed),
        cmocka_unit_test(test_i386_calls_are_killed),
    };
    return cmocka_run_group_tests_name("seccomp", tests, group_setup, group_teardown);
}
