/* Shared by the tests that drive a sandboxing backend directly (test_isolation.c,
 * test_ephemeral.c, test_pool.c): starting and stopping a backend in a scratch folder
 * with uid ranges of the test's own, running one job, output capture, the checks on its
 * outcome, and counting what a job might leave behind on the host. Include after
 * <cmocka.h>; one backend under test per program (the `harness` global). */
#ifndef EXECUTORD_TESTS_SANDBOX_HARNESS_H
#define EXECUTORD_TESTS_SANDBOX_HARNESS_H

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "sandbox/ephemeral.h"
#include "sandbox/pool.h"
#include "sandbox/sandbox.h"
#include "sandbox/workdir.h"
#include "runner_fields.h"

/* What a test program asks for. The uid ranges must differ between the programs ctest
 * may run at once (ctest -j), or one's sandboxes would count as another's leftovers. */
typedef struct harness_options {
    const char *backend;       /* "ephemeral" or "pool" */
    uid_t uid_base;            /* ephemeral's slots: uid_count slots of two ids */
    unsigned uid_count;
    uid_t pool_uid_base;       /* pool only: its zygotes' blocks of 258 ids */
    unsigned pool_size;        /* pool only: warm sandboxes */
    const char *cgroup_root;   /* NULL = the host's; a missing folder = no cgroups */
} harness_options;

typedef struct harness_state {
    harness_options opt;
    const sandbox_backend *backend;
    char tmp_root[PATH_MAX];      /* /tmp/executord-test-<backend>-XXXXXX */
    char work_root[PATH_MAX + 16];
    char uid_locks[PATH_MAX + 16];
    char why[1024];               /* the last init's message (a caveat even on success) */
    int job_counter;
} harness_state;

static harness_state harness;

/* Backends take their settings through init's sandbox_config. ephemeral is always set
 * up first, as in the service's registry: it owns the cgroup parent; pool reuses it and
 * starts allow_network jobs through it. */
static inline int harness_init_backends(void)
{
    bool pool = strcmp(harness.opt.backend, "pool") == 0;
    sandbox_config cfg = {
        .python_path = "/usr/bin/python3",
        .work_root = harness.work_root,
        .sandbox = {.uid_base = harness.opt.uid_base, .uid_count = harness.opt.uid_count,
                    .uid_lock_dir = harness.uid_locks, .cgroup_root = harness.opt.cgroup_root},
        .pool = {.size = harness.opt.pool_size, .uid_base = harness.opt.pool_uid_base},
    };
    harness.why[0] = '\0';
    if (sandbox_backend_ephemeral.init(&cfg, harness.why, sizeof harness.why) != 0) {
        fprintf(stderr, "ephemeral init: %s\n", harness.why);
        return -1;
    }
    if (!pool)
        return 0;
    char why[sizeof harness.why] = "";
    if (sandbox_backend_pool.init(&cfg, why, sizeof why) != 0) {
        fprintf(stderr, "pool init: %s\n", why);
        sandbox_backend_ephemeral.shutdown();
        return -1;
    }
    return 0;
}

static inline void harness_shutdown_backends(void)
{
    if (harness.backend == &sandbox_backend_pool)
        sandbox_backend_pool.shutdown();
    sandbox_backend_ephemeral.shutdown();
}

/* A cmocka group setup: returns 0, or -1 (the group fails) with the reason on stderr. */
static inline int harness_start(const harness_options *o)
{
    memset(&harness, 0, sizeof harness);
    harness.opt = *o;
    if (strcmp(o->backend, "ephemeral") == 0)
        harness.backend = &sandbox_backend_ephemeral;
    else if (strcmp(o->backend, "pool") == 0)
        harness.backend = &sandbox_backend_pool;
    else {
        fprintf(stderr, "harness: unknown backend \"%s\" (ephemeral or pool)\n", o->backend);
        return -1;
    }
    snprintf(harness.tmp_root, sizeof harness.tmp_root, "/tmp/executord-test-%s-XXXXXX", o->backend);
    if (!mkdtemp(harness.tmp_root)) {
        perror("harness: mkdtemp");
        return -1;
    }
    snprintf(harness.work_root, sizeof harness.work_root, "%s/work", harness.tmp_root);
    snprintf(harness.uid_locks, sizeof harness.uid_locks, "%s/uid-locks", harness.tmp_root);
    /* Not for the job: the sandbox must not pass the service's environment on. */
    setenv("EXECUTORD_TEST_CANARY", "leaked", 1);
    return harness_init_backends();
}

/* Re-initialises the backends with another cgroup root (NULL = the host's). */
static inline int harness_restart(const char *cgroup_root)
{
    harness_shutdown_backends();
    harness.opt.cgroup_root = cgroup_root;
    return harness_init_backends();
}

/* A cmocka group teardown. */
static inline int harness_stop(void)
{
    harness_shutdown_backends();
    char err[512];
    if (workdir_remove("/tmp", strrchr(harness.tmp_root, '/') + 1, err, sizeof err) != 0)
        fprintf(stderr, "cleanup: %s\n", err);
    return 0;
}

/* ---- one job ---- */

typedef struct capture {
    char *buf[3];
    size_t len[3];
} capture;

static inline void on_output(void *ctx, int stream, const char *data, size_t len)
{
    capture *c = ctx;
    assert_true(stream == SANDBOX_STDOUT || stream == SANDBOX_STDERR);
    c->buf[stream] = realloc(c->buf[stream], c->len[stream] + len + 1);
    assert_non_null(c->buf[stream]);
    memcpy(c->buf[stream] + c->len[stream], data, len);
    c->len[stream] += len;
    c->buf[stream][c->len[stream]] = '\0';
}

static inline void capture_free(capture *c)
{
    free(c->buf[1]);
    free(c->buf[2]);
    memset(c, 0, sizeof *c);
}

static inline sandbox_limits default_limits(void)
{
    sandbox_limits l = {
        .timeout_seconds = 20,
        .memory_mb = 256,
        .cpu_seconds = 60,
        .max_processes = 64,
        .max_file_size_mb = 16,
        .max_open_files = 256,
        .max_output_bytes = 1048576,
    };
    return l;
}

/* A fresh job id naming the backend, the test program and the job. */
static inline void harness_job_id(char *buf, size_t len)
{
    snprintf(buf, len, "%s-%d-%d", harness.opt.backend, (int)getpid(), ++harness.job_counter);
}

/* Runs spec (its job_id and cancel_fd filled in when unset) through the backend. */
static inline void run_spec(sandbox_spec *spec, capture *cap, sandbox_outcome *out)
{
    char job_id[64];
    if (!spec->job_id) {
        harness_job_id(job_id, sizeof job_id);
        spec->job_id = job_id;
    }
    sandbox_io io = {.ctx = cap, .on_output = on_output};
    assert_int_equal(harness.backend->run(spec, cap ? &io : NULL, out), 0);
}

static inline void run_full(const char *script, const char *inputs, const sandbox_limits *lim, bool network,
                            capture *cap, sandbox_outcome *out)
{
    char *fields = runner_fields_make(script, inputs);
    sandbox_spec spec = {
        .runner_fields_json = fields,
        .limits = lim ? *lim : default_limits(),
        .allow_network = network,
        .cancel_fd = -1,
    };
    run_spec(&spec, cap, out);
    free(fields);
}

static inline void run_simple(const char *script, const char *inputs, capture *cap, sandbox_outcome *out)
{
    run_full(script, inputs, NULL, false, cap, out);
}

static inline void dump(const sandbox_outcome *out, const capture *cap)
{
    print_error("verdict=%d type=%s message=%s traceback=%s stderr=%s\n", out->verdict,
                out->error_type ? out->error_type : "(null)",
                out->error_message ? out->error_message : "(null)",
                out->error_traceback ? out->error_traceback : "(null)",
                cap && cap->buf[2] ? cap->buf[2] : "");
}

static inline void expect_result(const sandbox_outcome *out, const capture *cap, const char *expected_json)
{
    if (out->verdict != SANDBOX_SUCCEEDED)
        dump(out, cap);
    assert_int_equal(out->verdict, SANDBOX_SUCCEEDED);
    assert_non_null(out->result_json);
    json_error_t e1, e2;
    json_t *got = json_loads(out->result_json, JSON_DECODE_ANY, &e1);
    json_t *want = json_loads(expected_json, JSON_DECODE_ANY, &e2);
    assert_non_null(want);
    assert_non_null(got);
    if (!json_equal(got, want))
        print_error("result %s\nexpected %s\n", out->result_json, expected_json);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
}

static inline void expect_failure(const sandbox_outcome *out, const capture *cap, sandbox_verdict v,
                                  const char *type, const char *message_part)
{
    if (out->verdict != v || !out->error_type || strcmp(out->error_type, type) != 0 ||
        !out->error_message || !strstr(out->error_message, message_part))
        dump(out, cap);
    assert_int_equal(out->verdict, v);
    assert_string_equal(out->error_type, type);
    assert_non_null(strstr(out->error_message, message_part));
}

/* ---- what a job may leave behind ---- */

/* A process on the host, as the leftover checks see it. */
typedef struct host_process {
    pid_t pid;
    unsigned ruid;
    char state;          /* 'Z': a zombie */
    char cmdline[4096];  /* the arguments joined by spaces (cut) */
} host_process;

static inline bool read_host_process(const char *pid, host_process *p)
{
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false; /* gone meanwhile */
    p->pid = (pid_t)atoi(pid);
    p->state = '?';
    bool have_uid = false;
    while (!have_uid && fgets(line, sizeof line, f)) {
        if (sscanf(line, "State:\t%c", &p->state) == 1)
            continue;
        have_uid = sscanf(line, "Uid:\t%u", &p->ruid) == 1;
    }
    fclose(f);
    snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t len = fd >= 0 ? read(fd, p->cmdline, sizeof p->cmdline - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (len < 0)
        len = 0;
    for (ssize_t i = 0; i < len; i++)
        if (p->cmdline[i] == '\0')
            p->cmdline[i] = ' ';
    p->cmdline[len] = '\0';
    return have_uid;
}

/* Calls visit for every process on the host; returns how many it accepted. */
static inline int each_host_process(bool (*visit)(const host_process *p, void *ctx), void *ctx)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    host_process p;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if (read_host_process(e->d_name, &p) && visit(&p, ctx))
            n++;
    }
    closedir(d);
    return n;
}

typedef struct uid_range {
    unsigned first, end;
} uid_range;

static inline bool runs_as_uid_in(const host_process *p, void *ctx)
{
    const uid_range *r = ctx;
    return p->ruid >= r->first && p->ruid < r->end;
}

/* Host processes whose real uid is in [first, end): a sandbox's, after its job ended. */
static inline int count_processes_of_uids(unsigned first, unsigned end)
{
    uid_range r = {first, end};
    return each_host_process(runs_as_uid_in, &r);
}

static inline bool command_line_has(const host_process *p, void *ctx)
{
    return strstr(p->cmdline, ctx) != NULL;
}

/* Host processes whose command line contains needle (a job's own marker). */
static inline int count_processes_with(const char *needle)
{
    return each_host_process(command_line_has, (void *)needle);
}

#endif
