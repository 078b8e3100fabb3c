/* Shared by the tests that drive a sandboxing backend directly (test_ephemeral.c,
 * test_pool.c): output capture, default limits, running one job, and the checks on its
 * outcome. The including file defines `backend`, `job_counter` and HARNESS_JOB_PREFIX
 * before including this, after <cmocka.h>. */
#ifndef EXECUTORD_TESTS_SANDBOX_HARNESS_H
#define EXECUTORD_TESTS_SANDBOX_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

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

static inline void run_full(const char *script, const char *inputs, const sandbox_limits *lim, bool network,
                     capture *cap, sandbox_outcome *out)
{
    char job_id[64];
    snprintf(job_id, sizeof job_id, HARNESS_JOB_PREFIX "-%d-%d", (int)getpid(), ++job_counter);
    sandbox_spec spec = {
        .job_id = job_id,
        .script = script,
        .inputs_json = inputs ? inputs : "{}",
        .limits = lim ? *lim : default_limits(),
        .allow_network = network,
        .cancel_fd = -1,
    };
    sandbox_io io = {.ctx = cap, .on_output = on_output};
    assert_int_equal(backend->run(&spec, &io, out), 0);
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

#endif
