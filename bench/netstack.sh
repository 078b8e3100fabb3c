#!/bin/bash
# bench/netstack.sh — issue 13's measurement: pasta (Debian package passt) vs slirp4netns
# as the user-space network stack of a job's own user+net namespace.
#
#   bench/netstack.sh                 # as root; 30 interleaved rounds, writes bench/results/<date>-netstack.md
#   bench/netstack.sh --rounds 60     # more samples
#   bench/netstack.sh --no-write      # print only
#
# Nothing leaves this machine's namespaces: the script creates two network namespaces of
# its own, "far" (test servers on 198.51.100.x, 10.9.0.1, 169.254.169.254, 100.64.0.1,
# 2001:db8:100::1, fd00:100::1, a UDP "DNS" on 198.51.100.53) and "host-like" (where the
# stacks and the probe run; 203.0.113.2 on a veth whose only peer is "far", plus 192.0.2.10
# on its lo standing for "another address of the host", a service on 127.0.0.1:7002
# standing for executord's own port, a "resolver" on 127.0.0.53, an abstract UNIX socket).
# Neither namespace has any link to the real host network; both are deleted on exit.
# Everything runs in a private mount namespace whose /etc/resolv.conf names the test
# resolver, so no tool ever learns the host's real resolver.
#
# Per sample (probe.c below, times taken in C with CLOCK_MONOTONIC): clone a child into a
# new user+net namespace (as executord's sandbox does), write its id maps, start the stack
# for it (pasta: -f, ready when its -P pid file is written; slirp4netns: ready when it
# writes "1" to --ready-fd), tell the child to go, and the child connects over TCP to
# 198.51.100.1:7001 in "far" and reads the server's greeting. t_total = clone .. greeting
# read. "none" is the same clone without a stack (the floor every job pays already);
# "+nft" rows also load the egress policy through libnftables in the child while the
# stack starts (as executord's sandbox init would, before dropping its capabilities).
# Configurations are interleaved in a new random order every round.
# Then a capability matrix: what each tool lets the job reach with default and with
# hardened flags, DNS forwarding, attach modes, run-as, exit when the namespace dies, and
# whether the job (uid 1000, no capabilities) can change the nftables policy.
set -euo pipefail

ROUNDS=30
WRITE=1
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds | -n) ROUNDS=$2; shift 2 ;;
    --no-write) WRITE=0; shift ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "netstack.sh: needs root (it creates network namespaces)" >&2; exit 2; }
for t in pasta slirp4netns ip cc unshare setpriv /usr/bin/python3; do
    command -v "$t" >/dev/null || { echo "netstack.sh: missing $t (apt-get install -y passt slirp4netns nftables libnftables-dev iproute2 util-linux gcc)" >&2; exit 2; }
done
[ -e /usr/include/nftables/libnftables.h ] || { echo "netstack.sh: missing libnftables-dev" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/nsbench.XXXXXX)
export NSB_TMP=$TMP
FAR=nsbench-far-$$
HOST=nsbench-host-$$
SERVER_PIDS=()
cleanup() {
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$FAR" 2>/dev/null || true
    ip netns del "$HOST" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the probe (C) -------------------------------------------------------------------
cat >"$TMP/probe.c" <<'EOF'
/* netstack probe (bench/netstack.sh): runs in the "host-like" namespace. Per sample it
 * clones a child into a fresh user+net namespace (as executord's sandbox does), writes
 * its id maps, starts the user-space stack (pasta or slirp4netns) against it, and lets
 * the child run operations (a TCP connect to the far test server, ...). Times are
 * CLOCK_MONOTONIC, measured here, not in the shell. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *nft_file; /* policy loaded by the "nftload" op / early load */
static char tmpdir[256];

/* ---- child side ---- */

typedef struct {
    int go_r, rep_w;
    int nft_early;
    int nops;
    char **ops;
} child_arg;

static void rep(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static int nft_cmd(const char *cmd, int from_file, char *err, size_t errlen)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) {
        snprintf(err, errlen, "nft_ctx_new");
        return -1;
    }
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    int rc = from_file ? nft_run_cmd_from_filename(ctx, cmd) : nft_run_cmd_from_buffer(ctx, cmd);
    const char *e = nft_ctx_get_error_buffer(ctx);
    snprintf(err, errlen, "%s", e ? e : "");
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    nft_ctx_free(ctx);
    return rc;
}

/* Returns a short result: ok:<tag>, err:<errno name>, timeout. */
static void do_stream_or_dgram(int type, const char *addr, int port, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    int fam;
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (void *)&ss;
        s6->sin6_family = fam = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        sl = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (void *)&ss;
        s4->sin_family = fam = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, addr, &s4->sin_addr);
        sl = sizeof *s4;
    }
    int fd = socket(fam, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(out, outlen, "err:socket:%s", strerror(errno));
        return;
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        snprintf(out, outlen, "err:%s", strerror(errno));
        close(fd);
        return;
    }
    if (type == SOCK_DGRAM && send(fd, "q", 1, 0) != 1) {
        snprintf(out, outlen, "err:send:%s", strerror(errno));
        close(fd);
        return;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 1500);
    if (r == 0) {
        snprintf(out, outlen, "timeout");
        close(fd);
        return;
    }
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
        snprintf(out, outlen, "err:%s", n == 0 ? "eof" : strerror(e ? e : errno));
    } else {
        buf[n] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
        snprintf(out, outlen, "ok:%s", buf);
    }
    close(fd);
}

static void do_abstract(const char *name, char *out, size_t outlen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un su;
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    size_t l = strlen(name);
    memcpy(su.sun_path + 1, name, l);
    if (connect(fd, (struct sockaddr *)&su, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + l)) != 0) {
        snprintf(out, outlen, "err:%s", strerror(errno));
    } else {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
        snprintf(out, outlen, "ok:%s", buf);
    }
    close(fd);
}

static void run_op(const char *op, int rep_w)
{
    char out[600] = "";
    double t = now_ms();
    char kind[16], addr[80];
    int port;
    if (!strcmp(op, "noop")) {
        snprintf(out, sizeof out, "ok");
    } else if (!strcmp(op, "nftload")) {
        char err[400];
        snprintf(out, sizeof out, nft_cmd(nft_file, 1, err, sizeof err) == 0 ? "ok" : "err:%s", err);
    } else if (!strcmp(op, "nftflush") || !strcmp(op, "nftlist")) {
        char err[400];
        int rc = nft_cmd(!strcmp(op, "nftflush") ? "flush ruleset" : "list ruleset", 0, err, sizeof err);
        snprintf(out, sizeof out, rc == 0 ? "ok" : "err:%s", err);
    } else if (!strcmp(op, "dropcaps")) {
        /* As executord's job: uid/gid 1000 in the user namespace, no capabilities. */
        /* The clone keeps the creator's kuid (host root) until it sets ids, so the
         * kernel would not clear capabilities on the uid change: drop them explicitly,
         * as sandbox/caps.c does, and show CapEff. */
        struct __user_cap_header_struct ch = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct cd[2];
        memset(cd, 0, sizeof cd);
        if (setgroups(0, NULL) != 0 || setresgid(1000, 1000, 1000) != 0 || setresuid(1000, 1000, 1000) != 0 ||
            syscall(SYS_capset, &ch, cd) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            snprintf(out, sizeof out, "err:%s", strerror(errno));
        else
            { char l[128] = ""; FILE *sf = fopen("/proc/self/status", "r"); char ln[256]; while (sf && fgets(ln, sizeof ln, sf)) if (!strncmp(ln, "CapEff", 6)) { ln[strcspn(ln, "\n")] = 0; snprintf(l, sizeof l, "CapEff=%s", ln + 8); } if (sf) fclose(sf); snprintf(out, sizeof out, "ok:uid=%d %s", (int)getuid(), l); }
    } else if (sscanf(op, "abstract,%79s", addr) == 1) {
        do_abstract(addr, out, sizeof out);
    } else if (sscanf(op, "%15[^,],%79[^,],%d", kind, addr, &port) == 3) {
        do_stream_or_dgram(!strcmp(kind, "udp") ? SOCK_DGRAM : SOCK_STREAM, addr, port, out, sizeof out);
    } else {
        snprintf(out, sizeof out, "err:unknown op");
    }
    rep(rep_w, "op\t%s\t%s\t%.3f\n", op, out, now_ms() - t);
}

static int child_main(void *p)
{
    child_arg *a = p;
    char c;
    if (read(a->go_r, &c, 1) != 1) /* 'm': id maps written */
        _exit(1);
    if (a->nft_early) {
        /* In executord this is the sandbox's init, still holding its capabilities in
         * the job's user namespace; it overlaps the stack's start. */
        char err[400];
        double t = now_ms();
        int rc = nft_cmd(nft_file, 1, err, sizeof err);
        rep(a->rep_w, "nft_ms\t%.3f\t%s\n", now_ms() - t, rc == 0 ? "ok" : err);
    }
    if (read(a->go_r, &c, 1) != 1 || c != 'g') /* stack ready */
        _exit(1);
    for (int i = 0; i < a->nops; i++)
        run_op(a->ops[i], a->rep_w);
    rep(a->rep_w, "END\n");
    while (read(a->go_r, &c, 1) == 1 && c != 'x')
        ;
    _exit(0);
}

/* ---- parent side ---- */

typedef struct {
    double t_total, t_stack, t_ready_child, nft_ms;
    long rss_kb;
    double cpu_ms;
    char uid_line[80], cap_line[80];
    char exit_test[80];
    char report[8192];
    int ok;
} sample;

static long clk_tck;

static void read_proc(pid_t pid, sample *s)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            if (!strncmp(line, "VmRSS:", 6))
                s->rss_kb = atol(line + 6);
            else if (!strncmp(line, "Uid:", 4))
                snprintf(s->uid_line, sizeof s->uid_line, "%s", line + 5);
            else if (!strncmp(line, "CapEff:", 7))
                snprintf(s->cap_line, sizeof s->cap_line, "%s", line + 8);
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        char *q = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        /* after ")": state(3) ... utime is field 14, stime 15 */
        if (q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            s->cpu_ms = (ut + st) * 1000.0 / clk_tck;
        fclose(f);
    }
    /* schedstat: ns on the CPU, finer than the 10 ms ticks of stat */
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    f = fopen(path, "r");
    if (f) {
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1)
            s->cpu_ms = ns / 1e6;
        fclose(f);
    }
    for (char *p = s->uid_line; *p; p++)
        if (*p == '\t')
            *p = ' ';
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* argv of the stack: words of spec, "{pid}" replaced; the pid is appended unless
 * "{pid}" appeared. */
static int build_argv(const char *spec, pid_t pid, char **argv, int max, char *store, size_t storelen)
{
    char pidstr[16];
    snprintf(pidstr, sizeof pidstr, "%d", (int)pid);
    int n = 0, had = 0;
    size_t used = 0;
    char *copy = strdup(spec), *save = NULL;
    for (char *w = strtok_r(copy, " ", &save); w && n < max - 2; w = strtok_r(NULL, " ", &save)) {
        char *dst = store + used;
        size_t left = storelen - used;
        char *at = strstr(w, "{pid}");
        int len;
        if (at) {
            had = 1;
            len = snprintf(dst, left, "%.*s%s%s", (int)(at - w), w, pidstr, at + 5);
        } else {
            len = snprintf(dst, left, "%s", w);
        }
        argv[n++] = dst;
        used += (size_t)len + 1;
    }
    if (!had && strcmp(spec, "") != 0) {
        /* slirp4netns wants PID then TAPNAME; a trailing "@tap0" word marks that. */
        if (n > 0 && argv[n - 1][0] == '@') {
            char *tap = argv[n - 1] + 1;
            argv[n - 1] = store + used;
            used += (size_t)snprintf(store + used, storelen - used, "%s", pidstr) + 1;
            argv[n++] = tap;
        } else {
            argv[n++] = store + used;
            used += (size_t)snprintf(store + used, storelen - used, "%s", pidstr) + 1;
        }
    }
    argv[n] = NULL;
    free(copy);
    return n;
}

/* A default route in the child's namespace: pasta --config-net adds it last. */
static int default_route(pid_t child)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/net/route", (int)child);
    FILE *f = fopen(path, "r");
    int found = 0;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        char ifn[32], dst[16];
        if (sscanf(line, "%31s %15s", ifn, dst) == 2 && !strcmp(dst, "00000000"))
            found = 1;
    }
    fclose(f);
    return found;
}

static int ready_by_route;

static void kill_wait(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* mode: none | pasta | slirp. spec: the stack's command line (first word the binary).
 * setpriv_uid >= 0: exec the stack through setpriv as that uid (a "run as" test). */
static int run_sample(const char *mode, const char *spec, int nft_early, int exit_test, char **ops, int nops,
                      sample *s)
{
    memset(s, 0, sizeof *s);
    s->nft_ms = -1;
    int go[2], rp[2];
    if (pipe2(go, O_CLOEXEC) || pipe2(rp, O_CLOEXEC))
        return -1;
    static char *stk;
    if (!stk)
        stk = malloc(1 << 20);
    child_arg a = {.go_r = go[0], .rep_w = rp[1], .nft_early = nft_early, .nops = nops, .ops = ops};
    double t0 = now_ms();
    pid_t child = clone(child_main, stk + (1 << 20), CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD, &a);
    if (child < 0) {
        snprintf(s->report, sizeof s->report, "clone: %s\n", strerror(errno));
        return -1;
    }
    close(go[0]);
    close(rp[1]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
    int mrc = write_file(path, "0 100000 1\n1000 101000 1\n");
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
    mrc |= write_file(path, "0 100000 1\n1000 101000 1\n");
    if (mrc != 0 || write(go[1], "m", 1) != 1) {
        snprintf(s->report, sizeof s->report, "id maps: %s\n", strerror(errno));
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        return -1;
    }
    pid_t stack = -1;
    int ready_r = -1, exit_w = -1;
    char pidfile[300] = "";
    const char *fail = NULL;
    if (strcmp(mode, "none") != 0) {
        char *argv[64], store[4096];
        build_argv(spec, child, argv, 64, store, sizeof store);
        int rpipe[2] = {-1, -1}, epipe[2] = {-1, -1};
        int is_slirp = strstr(argv[0], "slirp4netns") != NULL ||
                       (argv[1] && strstr(argv[0], "setpriv") && strstr(spec, "slirp4netns"));
        if (is_slirp) {
            (void)!pipe2(rpipe, O_CLOEXEC);
            (void)!pipe2(epipe, O_CLOEXEC);
        } else {
            snprintf(pidfile, sizeof pidfile, "%s/pasta.%d.pid", tmpdir, (int)child);
            unlink(pidfile);
        }
        char logfile[300];
        snprintf(logfile, sizeof logfile, "%s/stack.log", tmpdir);
        stack = fork();
        if (stack == 0) {
            int lf = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (lf >= 0) {
                dup2(lf, 1);
                dup2(lf, 2);
            }
            int dn = open("/dev/null", O_RDONLY);
            dup2(dn, 0);
            if (is_slirp) {
                dup2(rpipe[1], 3); /* -r 3 */
                dup2(epipe[0], 4); /* -e 4 */
            } else {
                /* pasta: -P pidfile appended before the pid by the spec ({pidfile}) */
            }
            for (int i = 0; argv[i]; i++)
                if (!strcmp(argv[i], "{pidfile}"))
                    argv[i] = pidfile;
            execvp(argv[0], argv);
            _exit(127);
        }
        if (is_slirp) {
            close(rpipe[1]);
            close(epipe[0]);
            ready_r = rpipe[0];
            exit_w = epipe[1];
            struct pollfd pf = {.fd = ready_r, .events = POLLIN};
            char c = 0;
            if (poll(&pf, 1, 5000) != 1 || read(ready_r, &c, 1) != 1 || c != '1')
                fail = "slirp4netns not ready (see stack.log)";
        } else {
            double deadline = now_ms() + 5000;
            for (;;) {
                struct stat st;
                if (stat(pidfile, &st) == 0 && st.st_size > 0)
                    break;
                if (default_route(child)) { /* should -f not write the pid file */
                    ready_by_route = 1;
                    break;
                }
                if (waitpid(stack, NULL, WNOHANG) == stack) {
                    stack = -1;
                    fail = "pasta exited before ready (see stack.log)";
                    break;
                }
                if (now_ms() > deadline) {
                    fail = "pasta not ready in 5 s";
                    break;
                }
                usleep(100);
            }
        }
    }
    s->t_stack = now_ms() - t0;
    if (fail) {
        snprintf(s->report, sizeof s->report, "stack\t%s\n", fail);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        if (exit_w >= 0)
            close(exit_w);
        kill_wait(stack);
        close(go[1]);
        close(rp[0]);
        if (ready_r >= 0)
            close(ready_r);
        return -1;
    }
    (void)!write(go[1], "g", 1);
    /* Read the child's report up to END. */
    size_t used = 0;
    for (;;) {
        ssize_t n = read(rp[0], s->report + used, sizeof s->report - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        s->report[used] = 0;
        if (strstr(s->report, "END\n"))
            break;
    }
    s->t_total = now_ms() - t0;
    char *nl = strstr(s->report, "nft_ms\t");
    if (nl)
        s->nft_ms = atof(nl + 7);
    if (stack > 0)
        read_proc(stack, s);
    (void)!write(go[1], "x", 1);
    close(go[1]);
    waitpid(child, NULL, 0);
    if (exit_test && stack > 0) {
        /* The job's namespace holder is gone: does the stack exit on its own? */
        double t = now_ms();
        int gone = 0;
        while (now_ms() - t < 3000) {
            if (waitpid(stack, NULL, WNOHANG) == stack) {
                gone = 1;
                break;
            }
            usleep(2000);
        }
        snprintf(s->exit_test, sizeof s->exit_test, gone ? "exited after %.0f ms" : "still running after 3 s",
                 now_ms() - t);
        if (gone)
            stack = -1;
    }
    if (exit_w >= 0)
        close(exit_w); /* slirp4netns --exit-fd */
    kill_wait(stack);
    close(rp[0]);
    if (ready_r >= 0)
        close(ready_r);
    if (pidfile[0])
        unlink(pidfile);
    s->ok = 1;
    return 0;
}

static void print_sample(const char *label, const sample *s)
{
    printf("label\t%s\n", label);
    printf("t_total_ms\t%.3f\nt_stack_ms\t%.3f\nnft_ms\t%.3f\nrss_kb\t%ld\ncpu_ms\t%.1f\n", s->t_total, s->t_stack,
           s->nft_ms, s->rss_kb, s->cpu_ms);
    if (ready_by_route)
        printf("ready_by\tdefault route seen (no pid file)\n");
    printf("stack_uid\t%s\nstack_capeff\t%s\nexit_test\t%s\n", s->uid_line, s->cap_line, s->exit_test);
    printf("%s", s->report);
    printf("--\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    clk_tck = sysconf(_SC_CLK_TCK);
    const char *td = getenv("NSB_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s", td ? td : "/tmp");
    if (argc >= 2 && !strcmp(argv[1], "sample")) {
        /* probe sample LABEL MODE NFTFILE|- NFT_EARLY EXIT_TEST "SPEC" OP... */
        if (argc < 8) {
            fprintf(stderr, "usage\n");
            return 2;
        }
        nft_file = strcmp(argv[4], "-") ? argv[4] : NULL;
        sample s;
        run_sample(argv[3], argv[7], atoi(argv[5]), atoi(argv[6]), argv + 8, argc - 8, &s);
        print_sample(argv[2], &s);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "bench")) {
        /* probe bench ROUNDS LABEL=MODE|NFTFILE|SPEC ... ; one TSV line per sample,
         * the configurations in a new random order each round. */
        int rounds = atoi(argv[2]);
        int nc = argc - 3;
        char *ops_conn[] = {getenv("NSB_TARGET") ? getenv("NSB_TARGET") : "tcp,198.51.100.1,7001"};
        char *ops_none[] = {"noop"};
        srand((unsigned)getpid());
        printf("round\tlabel\tt_total_ms\tt_stack_ms\tnft_ms\trss_kb\tcpu_ms\tresult\n");
        for (int r = 0; r < rounds; r++) {
            int order[32];
            for (int i = 0; i < nc; i++)
                order[i] = i;
            for (int i = nc - 1; i > 0; i--) {
                int j = rand() % (i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            for (int k = 0; k < nc; k++) {
                char cfg[2048];
                snprintf(cfg, sizeof cfg, "%s", argv[3 + order[k]]);
                char *label = cfg, *mode = strchr(label, '=');
                if (!mode)
                    continue;
                *mode++ = 0;
                char *nft = strchr(mode, '|');
                *nft++ = 0;
                char *spec = strchr(nft, '|');
                *spec++ = 0;
                nft_file = strcmp(nft, "-") ? nft : NULL;
                sample s;
                int none = !strcmp(mode, "none");
                run_sample(mode, spec, nft_file != NULL, 0, none ? ops_none : ops_conn, 1, &s);
                char res[200] = "";
                char *op = strstr(s.report, "op\t");
                if (op) {
                    char *f = strchr(op + 3, '\t');
                    if (f) {
                        snprintf(res, sizeof res, "%s", f + 1);
                        res[strcspn(res, "\t\n")] = 0;
                    }
                } else {
                    snprintf(res, sizeof res, "%s", s.report);
                    res[strcspn(res, "\n")] = 0;
                }
                for (char *q = res; *q; q++)
                    if (*q == '\t')
                        *q = ' ';
                if (nft_file && s.nft_ms < 0)
                    snprintf(res, sizeof res, "nft failed");
                char *nfterr = strstr(s.report, "nft_ms\t");
                if (nfterr && !strstr(nfterr, "\tok\n"))
                    snprintf(res, sizeof res, "nft failed");
                printf("%d\t%s\t%.3f\t%.3f\t%.3f\t%ld\t%.1f\t%s\n", r, label, s.t_total, s.t_stack, s.nft_ms,
                       s.rss_kb, s.cpu_ms, res);
                fflush(stdout);
            }
        }
        return 0;
    }
    fprintf(stderr, "usage: probe sample|bench ...\n");
    return 2;
}
EOF
cc -O2 -w -o "$TMP/probe" "$TMP/probe.c" -lnftables

# ---- the test servers (Python, standard library) --------------------------------------
cat >"$TMP/servers.py" <<'EOF'
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[2:]:
    kind, rest = spec.split("=", 1)
    addr, port, tag = rest.split(",")
    if kind == "abstract":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0" + addr)
        s.listen(16)
        sel.register(s, selectors.EVENT_READ, ("tcp", tag))
        continue
    fam = socket.AF_INET6 if kind.endswith("6") else socket.AF_INET
    typ = socket.SOCK_DGRAM if kind.startswith("udp") else socket.SOCK_STREAM
    s = socket.socket(fam, typ)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, int(port)))
    if typ == socket.SOCK_STREAM:
        s.listen(256)
    sel.register(s, selectors.EVENT_READ, ("udp" if typ == socket.SOCK_DGRAM else "tcp", tag))
open(sys.argv[1], "w").write("ready")
while True:
    for key, _ in sel.select():
        kind, tag = key.data
        s = key.fileobj
        try:
            if kind == "udp":
                data, peer = s.recvfrom(4096)
                s.sendto(tag.encode(), peer)
            else:
                c, _ = s.accept()
                name = c.getsockname()
                ip = name[0] if isinstance(name, tuple) else ""
                c.sendall(("%s@%s\n" % (tag, ip)).encode())
                c.close()
        except OSError:
            pass
EOF

# ---- topology: far <-veth-> host-like; nothing else -----------------------------------
ip netns add "$FAR"
ip netns add "$HOST"
ip -n "$HOST" link add nsb-h type veth peer name nsb-f netns "$FAR"
ip -n "$FAR" link set lo up
ip -n "$FAR" link set nsb-f up
ip -n "$FAR" addr add 203.0.113.1/24 dev nsb-f
ip -n "$FAR" -6 addr add 2001:db8::1/64 dev nsb-f nodad
for a in 198.51.100.1/32 198.51.100.53/32 10.9.0.1/32 169.254.169.254/32 100.64.0.1/32; do
    ip -n "$FAR" addr add "$a" dev lo
done
ip -n "$FAR" -6 addr add 2001:db8:100::1/128 dev lo
ip -n "$FAR" -6 addr add fd00:100::1/128 dev lo
ip -n "$HOST" link set lo up
ip -n "$HOST" link set nsb-h up
ip -n "$HOST" addr add 203.0.113.2/24 dev nsb-h
ip -n "$HOST" -6 addr add 2001:db8::2/64 dev nsb-h nodad
ip -n "$HOST" route add default via 203.0.113.1
ip -n "$HOST" -6 route add default via 2001:db8::1
ip -n "$HOST" addr add 192.0.2.10/32 dev lo # "another address of the host" (no dummy driver needed)

ip netns exec "$FAR" /usr/bin/python3 "$TMP/servers.py" "$TMP/far.ready" \
    tcp4=0.0.0.0,7001,far tcp4=0.0.0.0,80,far tcp6=::,7001,far udp4=198.51.100.53,53,dns-far &
SERVER_PIDS+=($!)
ip netns exec "$HOST" /usr/bin/python3 "$TMP/servers.py" "$TMP/host.ready" \
    tcp4=127.0.0.1,7002,host-lo tcp4=0.0.0.0,7003,host tcp6=::1,7002,host-lo6 \
    udp4=127.0.0.53,53,dns-host-lo abstract=nsbench-abstract,0,host-abstract &
SERVER_PIDS+=($!)
for i in $(seq 100); do [ -e "$TMP/far.ready" ] && [ -e "$TMP/host.ready" ] && break; sleep 0.05; done
[ -e "$TMP/far.ready" ] && [ -e "$TMP/host.ready" ] || { echo "netstack.sh: test servers did not start" >&2; exit 1; }

echo "nameserver 198.51.100.53" >"$TMP/resolv-far.conf"
echo "nameserver 127.0.0.53" >"$TMP/resolv-lo.conf"

# In the host-like namespace, in a private mount namespace whose /etc/resolv.conf is $1.
inhost() {
    local resolv=$1
    shift
    ip netns exec "$HOST" unshare -m --propagation private \
        sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$resolv" "$@"
}

# ---- the egress policy (issue 13's default deny list + the host's own addresses) ------
host_addrs4=$(ip -n "$HOST" -o -4 addr show | awk '{print $4}' | cut -d/ -f1 | grep -v '^127\.' | paste -sd, -)
host_addrs6=$(ip -n "$HOST" -o -6 addr show | awk '{print $4}' | cut -d/ -f1 | grep -v -e '^::1$' -e '^fe80' | paste -sd, -)
policy() { # $1 = the stack's DNS address, the only blocked address allowed (UDP 53 only)
    cat <<EOF
table inet egress {
    set allow4 { type ipv4_addr; flags interval; }
    set allow6 { type ipv6_addr; flags interval; }
    set deny4 { type ipv4_addr; flags interval; auto-merge;
        elements = { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16,
                     172.16.0.0/12, 192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15,
                     224.0.0.0/4, 240.0.0.0/4, $host_addrs4 } }
    set deny6 { type ipv6_addr; flags interval; auto-merge;
        elements = { ::/127, ::ffff:0.0.0.0/96, 64:ff9b::/96, fc00::/7, fe80::/10,
                     ff00::/8, $host_addrs6 } }
    chain output {
        type filter hook output priority filter; policy accept;
        oif "lo" accept
        icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept
        ip daddr $1 udp dport 53 accept
        ip daddr @allow4 accept
        ip6 daddr @allow6 accept
        ip daddr @deny4 counter reject with icmpx type admin-prohibited
        ip6 daddr @deny6 counter reject with icmpx type admin-prohibited
    }
}
EOF
}
policy 169.254.1.1 >"$TMP/policy-pasta.nft"
policy 10.0.2.3 >"$TMP/policy-slirp.nft"

# ---- stack command lines ----------------------------------------------------------------
PASTA_HARD="pasta -f -q --config-net --no-map-gw -t none -u none -T none -U none -D 198.51.100.53 --dns-forward 169.254.1.1 -P {pidfile}"
PASTA_DEFAULT="pasta -f -q --config-net -P {pidfile}"
SLIRP_BASE="slirp4netns --configure --mtu=65520 -r 3"
SLIRP_HARD="$SLIRP_BASE -e 4 --disable-host-loopback --enable-sandbox --enable-seccomp @tap0"

# Which attach form works for pasta started as root (Debian 12's passt drops to "nobody"
# before joining the target user namespace: see the capability matrix).
echo "== preflight" >&2
PASTA_FORMS=(
    "$PASTA_HARD"
    "$PASTA_HARD --runas 0"
    "$PASTA_HARD --netns /proc/{pid}/ns/net --userns /proc/{pid}/ns/user"
    "$PASTA_HARD --netns /proc/{pid}/ns/net"
    "$PASTA_HARD --netns /proc/{pid}/ns/net --runas 0"
)
PASTA_SPEC=""
for f in "${PASTA_FORMS[@]}"; do
    if inhost "$TMP/resolv-far.conf" "$TMP/probe" sample pre pasta - 0 0 "$f" tcp,198.51.100.1,7001 |
        grep -q "ok:far@198.51.100.1"; then
        PASTA_SPEC=$f
        break
    fi
done
SLIRP_SPEC=""
for f in "$SLIRP_HARD" "$SLIRP_BASE -e 4 --disable-host-loopback @tap0"; do
    if inhost "$TMP/resolv-far.conf" "$TMP/probe" sample pre slirp - 0 0 "$f" tcp,198.51.100.1,7001 |
        grep -q "ok:far@198.51.100.1"; then
        SLIRP_SPEC=$f
        break
    fi
done
echo "pasta:       ${PASTA_SPEC:-NONE WORKS}" >&2
echo "slirp4netns: ${SLIRP_SPEC:-NONE WORKS}" >&2

# ---- timing -----------------------------------------------------------------------------
CONFIGS=("none=none|-|" "none+nft=none|$TMP/policy-pasta.nft|")
[ -n "$PASTA_SPEC" ] && CONFIGS+=("pasta=pasta|-|$PASTA_SPEC" "pasta+nft=pasta|$TMP/policy-pasta.nft|$PASTA_SPEC")
[ -n "$SLIRP_SPEC" ] && CONFIGS+=("slirp4netns=slirp|-|$SLIRP_SPEC" "slirp4netns+nft=slirp|$TMP/policy-slirp.nft|$SLIRP_SPEC")
echo "== timing: $ROUNDS rounds x ${#CONFIGS[@]} configurations" >&2
# warm-up (page cache, binaries), not counted
inhost "$TMP/resolv-far.conf" "$TMP/probe" bench 2 "${CONFIGS[@]}" >/dev/null
inhost "$TMP/resolv-far.conf" "$TMP/probe" bench "$ROUNDS" "${CONFIGS[@]}" >"$TMP/samples.tsv"

# ---- capability matrix ------------------------------------------------------------------
echo "== capabilities" >&2
PUB=tcp,198.51.100.1,7001
PUB6=tcp,2001:db8:100::1,7001
PRIV=tcp,10.9.0.1,7001
META=tcp,169.254.169.254,80
CGNAT=tcp,100.64.0.1,7001
ULA6=tcp,fd00:100::1,7001
MAPPED=tcp,::ffff:10.9.0.1,7001
HOSTADDR=tcp,192.0.2.10,7003
OWNLO=tcp,127.0.0.1,7002
PGW=tcp,203.0.113.1,7002
SGW=tcp,10.0.2.2,7002
ABS=abstract,nsbench-abstract
: >"$TMP/caps.txt"
cap() { # name resolv mode nft exit_test spec ops...
    local name=$1 resolv=$2 mode=$3 nft=$4 ex=$5 spec=$6
    shift 6
    echo "   $name" >&2
    inhost "$resolv" "$TMP/probe" sample "$name" "$mode" "$nft" 0 "$ex" "$spec" "$@" >>"$TMP/caps.txt" || true
}
RF=$TMP/resolv-far.conf
RL=$TMP/resolv-lo.conf
cap "pasta defaults (only --config-net)" "$RF" pasta - 1 "$PASTA_DEFAULT${PASTA_SPEC:+ ${PASTA_SPEC#"$PASTA_HARD"}}" $PUB $PGW $OWNLO $HOSTADDR $ABS $PUB6
for f in "${PASTA_FORMS[@]}"; do
    cap "pasta hardened, attach: ${f#"$PASTA_HARD"}" "$RF" pasta - 0 "$f" $PUB
done
if [ -n "$PASTA_SPEC" ]; then
    cap "pasta hardened (timed form)" "$RF" pasta - 1 "$PASTA_SPEC" $PUB $PGW $OWNLO $HOSTADDR $ABS $PUB6 $PRIV $META udp,169.254.1.1,53
    cap "pasta hardened, -D 127.0.0.53 (host resolver on loopback)" "$RL" pasta - 0 "${PASTA_SPEC/-D 198.51.100.53/-D 127.0.0.53}" udp,169.254.1.1,53
    cap "pasta hardened + nft policy" "$RF" pasta "$TMP/policy-pasta.nft" 0 "$PASTA_SPEC" nftload $PUB $PRIV $META $CGNAT $HOSTADDR $PGW udp,169.254.1.1,53 $PUB6 $ULA6 $MAPPED dropcaps nftlist nftflush $PRIV $META
fi
cap "slirp4netns defaults (no -e exit fd)" "$RF" slirp - 1 "$SLIRP_BASE @tap0" $PUB $SGW $OWNLO $HOSTADDR $ABS
cap "slirp4netns hardened (sandbox, seccomp, --disable-host-loopback)" "$RF" slirp - 0 "$SLIRP_HARD" $PUB $SGW $OWNLO $HOSTADDR $ABS $PRIV $META
cap "slirp4netns, DNS 10.0.2.3, resolv.conf -> 198.51.100.53 (no sandbox)" "$RF" slirp - 0 "$SLIRP_BASE -e 4 --disable-host-loopback @tap0" udp,10.0.2.3,53
cap "slirp4netns, DNS 10.0.2.3, resolv.conf -> 127.0.0.53 (no sandbox)" "$RL" slirp - 0 "$SLIRP_BASE -e 4 --disable-host-loopback @tap0" udp,10.0.2.3,53
cap "slirp4netns, attach by path (--netns-type=path --userns-path)" "$RF" slirp - 0 "$SLIRP_BASE -e 4 --disable-host-loopback --netns-type=path --userns-path=/proc/{pid}/ns/user /proc/{pid}/ns/net tap0" $PUB
cap "slirp4netns as uid 65534 (setpriv)" "$RF" slirp - 0 "setpriv --reuid 65534 --regid 65534 --clear-groups $SLIRP_HARD" $PUB
cap "slirp4netns -6 (IPv6)" "$RF" slirp - 0 "$SLIRP_BASE -e 4 --disable-host-loopback -6 @tap0" $PUB6
if [ -n "$SLIRP_SPEC" ]; then
    cap "slirp4netns hardened + nft policy" "$RF" slirp "$TMP/policy-slirp.nft" 0 "$SLIRP_SPEC" nftload $PUB $PRIV $META $CGNAT $HOSTADDR $SGW $MAPPED dropcaps nftlist nftflush $PRIV
fi

# ---- report -----------------------------------------------------------------------------
OUTFILE=""
if [ "$WRITE" = 1 ]; then
    OUTFILE=$REPO/bench/results/$(date -u +%F)-netstack.md
    [ -e "$OUTFILE" ] && OUTFILE=$REPO/bench/results/$(date -u +%F-%H%M)-netstack.md
fi
/usr/bin/python3 - "$TMP/samples.tsv" "$TMP/caps.txt" "$ROUNDS" "$PASTA_SPEC" "$SLIRP_SPEC" "$TMP/stack.log" >"$TMP/report.md" <<'EOF'
import collections, os, platform, statistics, subprocess, sys
samples, caps, rounds, pasta_spec, slirp_spec, stacklog = sys.argv[1:7]

def pct(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))  # nearest rank
    return v[int(k)]

rows = [l.rstrip("\n").split("\t") for l in open(samples)][1:]
by = collections.OrderedDict()
per_round = collections.defaultdict(dict)
fails = collections.Counter()
for r in rows:
    rnd, label, tot, stk, nft, rss, cpu, res = r
    ok = res.startswith("ok")
    if not ok:
        fails[label] += 1
        continue
    by.setdefault(label, []).append((float(tot), float(stk), float(nft), int(rss), float(cpu)))
    per_round[int(rnd)][label] = float(tot)

def ver(pkg):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True).stdout
    except OSError:
        return "?"

cpu = "?"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip()
        break
print("## Machine\n")
print("| | |\n|---|---|")
print("| kernel | %s |" % platform.release())
print("| CPUs | %d (%s) |" % (os.cpu_count(), cpu))
print("| passt (pasta) | %s |" % ver("passt"))
print("| slirp4netns / libslirp | %s / %s |" % (ver("slirp4netns"), ver("libslirp0")))
print("| nftables / libnftables | %s |" % ver("nftables"))
print("| rounds | %s, configurations interleaved in random order per round |" % rounds)
print()
print("pasta as timed: `%s`  " % pasta_spec)
print("slirp4netns as timed: `%s`\n" % slirp_spec)
print("## Time to a usable namespace (clone .. TCP greeting read from 198.51.100.1)\n")
print("| configuration | n | p50 ms | p90 ms | p50 extra vs none ms | stack ready p50 ms | nft load p50 ms | stack RSS p50 KiB | stack CPU p50 ms | failures |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, v in by.items():
    tot = [x[0] for x in v]
    stk = [x[1] for x in v]
    nft = [x[2] for x in v if x[2] >= 0]
    rss = [x[3] for x in v if x[3] > 0]
    cpu_ = [x[4] for x in v if x[3] > 0]
    extra = [d[label] - d["none"] for d in per_round.values() if label in d and "none" in d]
    f = lambda x, fmt="%.1f": (fmt % x) if x == x else "–"
    print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d |" % (
        label, len(v), f(pct(tot, 50)), f(pct(tot, 90)),
        f(statistics.median(extra)) if extra and label != "none" else "–",
        f(pct(stk, 50)) if label.split("+")[0] != "none" else "–",
        f(pct(nft, 50)) if nft else "–",
        f(pct(rss, 50), "%d") if rss else "–", f(pct(cpu_, 50)) if cpu_ else "–", fails[label]))
for label in fails:
    if label not in by:
        print("| %s | 0 | – | – | – | – | – | – | – | %d |" % (label, fails[label]))
print()
print("\"p50 extra vs none\": per round, this configuration's time minus the same round's `none`; median over rounds.")
print("\"stack ready\": clone .. the stack said ready (slirp4netns: \"1\" on --ready-fd; pasta: its -P pid file, or the default route appearing in the job's namespace, whichever first: Debian 12's pasta does not write the pid file with -f, and keeps initialising after the route is there, so its first connect waits). CPU: the stack process's own on-CPU time (schedstat) up to the connect; RSS: its VmRSS then.\n")
print("## Capability matrix (what the job in the namespace gets)\n")
print("Result `ok:TAG@ADDR` = connected and got that server's greeting (`far` = the far namespace; `host*` = the host-like namespace where the stack runs: a leak); `err:…`/`timeout` = refused.\n")
block = {}
for line in open(caps):
    line = line.rstrip("\n")
    if line == "--":
        label = block.get("label", "?")
        print("### %s\n" % label)
        print("stack uid (r e s f): `%s`, CapEff `%s`%s\n" % (block.get("stack_uid", ""), block.get("stack_capeff", ""),
              (", when the job's namespace holder exits: **%s**" % block["exit_test"]) if block.get("exit_test") else ""))
        if "stack" in block:
            print("stack failed: %s\n" % block["stack"])
        if block.get("ops"):
            print("| probe | result |\n|---|---|")
            for op, res in block["ops"]:
                print("| `%s` | `%s` |" % (op, res[:160].replace("|", "\\|")))
            print()
        block = {}
        continue
    parts = line.split("\t")
    if parts[0] == "op" and len(parts) >= 3:
        block.setdefault("ops", []).append((parts[1], parts[2]))
    elif len(parts) >= 2:
        block[parts[0]] = parts[1]
EOF
if [ -s "$TMP/stack.log" ]; then
    { echo "## Stack messages (stderr of the stacks, first 40 distinct lines)"; echo; echo '```'
      sort -u "$TMP/stack.log" | head -40; echo '```'; } >>"$TMP/report.md"
fi
cat "$TMP/report.md"
if [ -n "$OUTFILE" ]; then
    { echo "# pasta vs slirp4netns for issue 13 — $(date -u '+%F %H:%M UTC')"; echo
      echo "Generated by \`bench/netstack.sh --rounds $ROUNDS\`; see the script's header for the method."; echo
      cat "$TMP/report.md"; } >"$OUTFILE"
    echo "written: $OUTFILE" >&2
fi
