/* What clients see: a job rendered in full and list form with the contract's fields,
 * derived durations and RFC 3339 timestamps, env values never echoed, result previews,
 * log text escaped as JSON and the logs document's windows, error bodies; plus routing
 * (404/405/Allow) and the bearer-token check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/auth.h"
#include "api/render.h"
#include "api/router.h"
#include "src/utf8.h"

#define ID "0b7e3c1a-2f4d-4c5e-9a6b-7c8d9e0f1a2b"

/* 2026-11-27T04:05:58.123Z */
#define T0 1795752358123LL

static void finished_job(job *j)
{
    job_init(j);
    snprintf(j->id, sizeof j->id, ID);
    j->seq = 7;
    j->status = JOB_SUCCEEDED;
    snprintf(j->backend, sizeof j->backend, "direct");
    j->created_at_ms = T0;
    j->started_at_ms = T0 + 40;
    j->finished_at_ms = T0 + 1040;
    j->script = strdup("def main(x):\n    return {'y': x}\n");
    j->inputs_json = strdup("{\"x\":[1,2]}");
    j->env_json = strdup("{\"API_KEY\":\"s3cret\",\"MODE\":\"fast\"}");
    j->labels_json = strdup("{\"team\":\"sec\"}");
    j->allow_network = false;
    j->limits = (sandbox_limits){30, 512, 60, 64, 64, 256, 1048576};
    j->result_json = strdup("{\"y\":[1,2]}");
    j->has_exit_code = true;
    j->exit_code = 0;
    j->usage_json = strdup("{\"wall_ms\":1000,\"cpu_user_ms\":12,\"cpu_system_ms\":3,\"max_rss_kb\":9000}");
    j->stdout_bytes = 12;
    j->stderr_bytes = 0;
}

static char *dump(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    assert_non_null(s);
    return s;
}

static void full_form_has_contract_fields(void **state)
{
    job j;
    finished_job(&j);
    json_t *o = api_render_job(&j, true);
    assert_non_null(o);
    const char *keys[] = {"id", "status", "backend", "created_at", "started_at", "finished_at",
                          "queue_wait_ms", "run_ms", "result", "error", "exit_code", "signal",
                          "usage", "limits", "labels", "allow_network", "env_vars",
                          "stdout_bytes", "stderr_bytes", "stdout_truncated", "stderr_truncated",
                          "output_evicted", "result_evicted", "script", "inputs", "result_preview",
                          "result_bytes", "result_truncated", "install", "dependencies"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!json_object_get(o, keys[i]))
            fail_msg("missing %s", keys[i]);
    assert_int_equal(json_object_size(o), sizeof keys / sizeof keys[0]);

    assert_string_equal(json_string_value(json_object_get(o, "id")), ID);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(o, "backend")), "direct");
    assert_string_equal(json_string_value(json_object_get(o, "created_at")), "2026-11-27T04:05:58.123Z");
    assert_string_equal(json_string_value(json_object_get(o, "started_at")), "2026-11-27T04:05:58.163Z");
    assert_string_equal(json_string_value(json_object_get(o, "finished_at")), "2026-11-27T04:05:59.163Z");
    assert_int_equal(json_integer_value(json_object_get(o, "queue_wait_ms")), 40);
    assert_int_equal(json_integer_value(json_object_get(o, "run_ms")), 1000);
    assert_true(json_is_null(json_object_get(o, "error")));
    assert_true(json_is_null(json_object_get(o, "signal")));
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 0);
    assert_true(json_is_integer(json_object_get(o, "exit_code")));
    assert_true(json_is_false(json_object_get(o, "allow_network")));
    assert_int_equal(json_integer_value(json_object_get(o, "stdout_bytes")), 12);
    assert_true(json_is_false(json_object_get(o, "output_evicted")));
    assert_true(json_is_false(json_object_get(o, "result_evicted")));
    /* no dependencies: an empty list, and no install */
    assert_true(json_is_array(json_object_get(o, "dependencies")));
    assert_int_equal(json_array_size(json_object_get(o, "dependencies")), 0);
    assert_true(json_is_null(json_object_get(o, "install")));

    char *s = dump(json_object_get(o, "result"));
    assert_string_equal(s, "{\"y\":[1,2]}");
    free(s);
    s = dump(json_object_get(o, "usage"));
    assert_string_equal(s, "{\"cpu_system_ms\":3,\"cpu_user_ms\":12,\"max_rss_kb\":9000,\"wall_ms\":1000}");
    free(s);
    s = dump(json_object_get(o, "limits"));
    /* a whole number of seconds is an integer on the wire */
    assert_string_equal(s, "{\"cpu_seconds\":60,\"max_file_size_mb\":64,\"max_open_files\":256,"
                           "\"max_output_bytes\":1048576,\"max_processes\":64,\"memory_mb\":512,"
                           "\"timeout_seconds\":30}");
    free(s);
    s = dump(json_object_get(o, "labels"));
    assert_string_equal(s, "{\"team\":\"sec\"}");
    free(s);
    s = dump(json_object_get(o, "inputs"));
    assert_string_equal(s, "{\"x\":[1,2]}");
    free(s);
    assert_string_equal(json_string_value(json_object_get(o, "script")), j.script);

    /* env: names only, in request order; values never leave the service */
    s = dump(json_object_get(o, "env_vars"));
    assert_string_equal(s, "[\"API_KEY\",\"MODE\"]");
    free(s);
    char *all = dump(o);
    assert_null(strstr(all, "s3cret"));
    free(all);
    json_decref(o);
    job_free(&j);
}

/* The normalized list as stored, and the install next to usage, in both forms. */
static void dependencies_and_install(void **state)
{
    job j;
    finished_job(&j);
    j.deps_json = strdup("[\"pyyaml>=6\",\"requests[socks]==2.31.0\"]");
    j.install_json = strdup("{\"environment\":\"ab12\",\"cache_hit\":true,\"duration_ms\":3}");
    for (int full = 0; full <= 1; full++) {
        json_t *o = api_render_job(&j, full);
        char *s = dump(json_object_get(o, "dependencies"));
        assert_string_equal(s, "[\"pyyaml>=6\",\"requests[socks]==2.31.0\"]");
        free(s);
        s = dump(json_object_get(o, "install"));
        assert_string_equal(s, "{\"cache_hit\":true,\"duration_ms\":3,\"environment\":\"ab12\"}");
        free(s);
        json_decref(o);
    }
    job_free(&j);
    assert_null(j.deps_json);
    assert_null(j.install_json);
}

static void list_form_omits_script_and_inputs(void **state)
{
    job j;
    finished_job(&j);
    json_t *o = api_render_job(&j, false);
    assert_null(json_object_get(o, "script"));
    assert_null(json_object_get(o, "inputs"));
    assert_null(json_object_get(o, "result"));
    assert_non_null(json_object_get(o, "env_vars"));
    /* a small result: all of its text is the preview */
    assert_string_equal(json_string_value(json_object_get(o, "result_preview")), "{\"y\":[1,2]}");
    assert_int_equal(json_integer_value(json_object_get(o, "result_bytes")), 11);
    assert_true(json_is_false(json_object_get(o, "result_truncated")));
    json_decref(o);
    job_free(&j);
}

/* As the store reads it back: the first bytes of a large result and its whole size. */
static void large_results_are_previewed_not_rendered(void **state)
{
    job j;
    finished_job(&j);
    free(j.result_json);
    /* 300 bytes read of a 70000-byte string: "ééé..." (2 bytes each); the closing quote
     * only so that the text is whole JSON once result_bytes says it is all there */
    char text[301];
    text[0] = '"';
    for (int i = 1; i < 299; i += 2)
        memcpy(text + i, "\xc3\xa9", 2);
    text[299] = '"';
    text[300] = '\0';
    j.result_json = strdup(text);
    j.result_bytes = 70000;
    assert_false(api_job_result_inline(&j));
    json_t *o = api_render_job(&j, false);
    const char *preview = json_string_value(json_object_get(o, "result_preview"));
    /* 256 bytes would cut an é in two: the preview stops before it */
    assert_int_equal(strlen(preview), 255);
    assert_memory_equal(preview, text, 255);
    assert_int_equal(json_integer_value(json_object_get(o, "result_bytes")), 70000);
    assert_true(json_is_true(json_object_get(o, "result_truncated")));
    json_decref(o);
    /* full form: no "result" at all, the caller streams it */
    o = api_render_job(&j, true);
    assert_null(json_object_get(o, "result"));
    assert_non_null(json_object_get(o, "script"));
    json_decref(o);
    /* read whole: rendered as before */
    j.result_bytes = 300;
    assert_true(api_job_result_inline(&j));
    o = api_render_job(&j, true);
    assert_true(json_is_string(json_object_get(o, "result")));
    json_decref(o);
    /* a failed job shows no result, whatever is stored */
    j.status = JOB_FAILED;
    assert_true(api_job_result_inline(&j));
    o = api_render_job(&j, false);
    assert_true(json_is_null(json_object_get(o, "result_preview")));
    assert_int_equal(json_integer_value(json_object_get(o, "result_bytes")), 0);
    assert_true(json_is_false(json_object_get(o, "result_truncated")));
    json_decref(o);
    job_free(&j);
}

static void queued_and_failed_jobs(void **state)
{
    job j;
    job_init(&j);
    snprintf(j.id, sizeof j.id, ID);
    snprintf(j.backend, sizeof j.backend, "pool");
    j.created_at_ms = T0;
    j.limits = (sandbox_limits){2.5, 512, 60, 64, 64, 256, 1048576};
    json_t *o = api_render_job(&j, true);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "queued");
    const char *nulls[] = {"started_at", "finished_at", "queue_wait_ms", "run_ms", "result",
                           "error", "exit_code", "signal", "usage"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (!json_is_null(json_object_get(o, nulls[i])))
            fail_msg("%s should be null for a queued job", nulls[i]);
    assert_true(json_real_value(json_object_get(json_object_get(o, "limits"), "timeout_seconds")) == 2.5);
    /* stored texts absent: empty containers rather than nulls */
    assert_true(json_is_object(json_object_get(o, "labels")));
    assert_true(json_is_object(json_object_get(o, "inputs")));
    assert_int_equal(json_array_size(json_object_get(o, "env_vars")), 0);
    json_decref(o);

    /* failed: error object with traceback; a leftover result is not shown */
    j.status = JOB_FAILED;
    j.started_at_ms = T0 + 5;
    j.finished_at_ms = T0 + 10;
    j.result_json = strdup("42");
    j.error_type = strdup("ZeroDivisionError");
    j.error_message = strdup("division by zero \xff"); /* invalid UTF-8 from a script */
    j.has_exit_code = false;
    j.signal = 9;
    o = api_render_job(&j, true);
    assert_true(json_is_null(json_object_get(o, "result")));
    json_t *err = json_object_get(o, "error");
    assert_string_equal(json_string_value(json_object_get(err, "type")), "ZeroDivisionError");
    assert_string_equal(json_string_value(json_object_get(err, "message")), "division by zero \xef\xbf\xbd");
    assert_true(json_is_null(json_object_get(err, "traceback")));
    assert_true(json_is_null(json_object_get(o, "exit_code")));
    assert_int_equal(json_integer_value(json_object_get(o, "signal")), 9);
    assert_int_equal(json_integer_value(json_object_get(o, "run_ms")), 5);
    json_decref(o);

    /* cancelled while queued: never started, so no queue wait or run time */
    j.status = JOB_CANCELLED;
    j.started_at_ms = 0;
    o = api_render_job(&j, false);
    assert_true(json_is_null(json_object_get(o, "queue_wait_ms")));
    assert_true(json_is_null(json_object_get(o, "run_ms")));
    assert_string_equal(json_string_value(json_object_get(o, "finished_at")), "2026-11-27T04:05:58.133Z");
    json_decref(o);
    job_free(&j);
}

/* The text of a log window as the server streams it: escaped like jansson, NUL included. */
static void output_is_escaped_as_json_string_content(void **state)
{
    const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f\0 \xc3\xa9 / \x7f";
    char out[6 * sizeof in];
    size_t n = api_json_escape(in, sizeof in - 1, out);
    const char want[] = "a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001F\\u0000 \xc3\xa9 / \x7f";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, n);
    /* what jansson writes for the same string, and what it reads back */
    json_t *str = json_stringn(in, sizeof in - 1);
    char *dumped = json_dumps(str, JSON_ENCODE_ANY);
    assert_int_equal(strlen(dumped), n + 2);
    assert_memory_equal(dumped + 1, out, n);
    free(dumped);
    json_decref(str);
    /* the bound the window sizes rely on: at most 6 bytes per byte */
    char nuls[64] = {0}, big[6 * 64];
    assert_int_equal(api_json_escape(nuls, sizeof nuls, big), 6 * sizeof nuls);
}

/* Where a window of script output may end: never inside a character still being written. */
static void windows_end_on_whole_characters(void **state)
{
    const struct {
        const char *s;
        size_t want;
    } cases[] = {
        {"abc", 3},
        {"ab\xc3", 2},              /* é cut after its lead byte */
        {"ab\xc3\xa9", 4},          /* whole */
        {"ab\xe2\x82", 2},          /* € cut after 2 of 3 */
        {"ab\xe2\x82\xac", 5},
        {"a\xf0\x9f\x98", 1},       /* an emoji cut after 3 of 4 */
        {"a\xf0\x9f\x98\x80", 5},
        {"ab\xff", 3},              /* invalid, not cut: repaired where it is */
        {"ab\x80\x80\x80", 5},      /* stray continuation bytes: no lead in reach */
        {"\xc3", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (utf8_complete_len(cases[i].s, strlen(cases[i].s)) != cases[i].want)
            fail_msg("case %zu: %zu, want %zu", i, utf8_complete_len(cases[i].s, strlen(cases[i].s)),
                     cases[i].want);
}

static void logs_head_describes_the_windows(void **state)
{
    job j;
    finished_job(&j);
    j.status = JOB_RUNNING;
    j.stdout_bytes = 10; /* the row lags behind what is stored */
    j.stderr_truncated = true;
    api_log_window out = {.total = 5000, .offset = 1000, .next_offset = 2000};
    api_log_window err = {.total = 7, .offset = 9, .next_offset = 9};
    json_t *o = api_render_logs_head(&j, &out, &err, 1000);
    char *s = dump(o);
    assert_string_equal(s, "{\"job_id\":\"" ID "\",\"output_evicted\":false,\"status\":\"running\",\"stderr_bytes\":7,"
                           "\"stderr_truncated\":true,\"stdout_bytes\":5000,\"stdout_truncated\":false,"
                           "\"window\":{\"limit\":1000,\"stderr\":{\"next_offset\":9,\"offset\":9,"
                           "\"truncated\":false},\"stdout\":{\"next_offset\":2000,\"offset\":1000,"
                           "\"truncated\":true}}}");
    free(s);
    json_decref(o);
    job_free(&j);
}

/* What the storage quota took is said, and the sizes of what there was stay. */
static void evicted_output_and_result(void **state)
{
    job j;
    finished_job(&j);
    free(j.result_json);
    j.result_json = NULL;
    j.output_evicted = j.result_evicted = true;
    json_t *o = api_render_job(&j, true);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "succeeded");
    assert_true(json_is_null(json_object_get(o, "result")));
    assert_true(json_is_null(json_object_get(o, "result_preview")));
    assert_int_equal(json_integer_value(json_object_get(o, "result_bytes")), 0);
    assert_true(json_is_true(json_object_get(o, "output_evicted")));
    assert_true(json_is_true(json_object_get(o, "result_evicted")));
    assert_int_equal(json_integer_value(json_object_get(o, "stdout_bytes")), 12);
    json_decref(o);
    api_log_window none = {.total = 0, .offset = 0, .next_offset = 0};
    o = api_render_logs_head(&j, &none, &none, 1024);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "stdout_bytes")), 12);
    assert_true(json_is_true(json_object_get(o, "output_evicted")));
    json_decref(o);
    job_free(&j);
}

static void error_bodies(void **state)
{
    api_error e;
    api_error_set(&e, 422, "invalid_field", "limits.memory_mb", "limits.memory_mb must be %s",
                  "an integer");
    json_t *o = api_render_error(&e);
    char *s = dump(o);
    assert_string_equal(s, "{\"error\":{\"code\":\"invalid_field\",\"field\":\"limits.memory_mb\","
                           "\"message\":\"limits.memory_mb must be an integer\"}}");
    free(s);
    json_decref(o);

    api_error_set(&e, 404, "not_found", NULL, "job %s not found", "x");
    o = api_render_error(&e);
    assert_null(json_object_get(json_object_get(o, "error"), "field"));
    json_decref(o);

    /* a message cut inside a UTF-8 sequence still renders */
    api_error_set(&e, 422, "invalid_field", "x", "%s", "bad \xc3");
    o = api_render_error(&e);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "message")),
                        "bad \xef\xbf\xbd");
    json_decref(o);
}

/* --- routing --------------------------------------------------------------------- */

static void routes_match(void **state)
{
    api_route_match m;
    api_route_match_path("GET", "/healthz", &m);
    assert_int_equal(m.endpoint, EP_HEALTHZ);
    assert_false(m.needs_auth);
    api_route_match_path("GET", "/readyz", &m);
    assert_int_equal(m.endpoint, EP_READYZ);
    assert_false(m.needs_auth);
    api_route_match_path("GET", "/v1/backends", &m);
    assert_int_equal(m.endpoint, EP_BACKENDS);
    assert_true(m.needs_auth);
    api_route_match_path("POST", "/v1/jobs", &m);
    assert_int_equal(m.endpoint, EP_JOBS_CREATE);
    assert_true(m.needs_auth);
    api_route_match_path("GET", "/v1/jobs", &m);
    assert_int_equal(m.endpoint, EP_JOBS_LIST);
    api_route_match_path("GET", "/v1/jobs/" ID, &m);
    assert_int_equal(m.endpoint, EP_JOB_GET);
    assert_string_equal(m.job_id, ID);
    api_route_match_path("DELETE", "/v1/jobs/" ID, &m);
    assert_int_equal(m.endpoint, EP_JOB_DELETE);
    api_route_match_path("GET", "/v1/jobs/" ID "/logs", &m);
    assert_int_equal(m.endpoint, EP_JOB_LOGS);
    assert_string_equal(m.job_id, ID);
    api_route_match_path("POST", "/v1/jobs/" ID "/cancel", &m);
    assert_int_equal(m.endpoint, EP_JOB_CANCEL);
    assert_string_equal(m.job_id, ID);
}

static void wrong_method_gives_allow(void **state)
{
    api_route_match m;
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"DELETE", "/v1/jobs", "GET, POST"},
        {"PUT", "/v1/jobs/" ID, "GET, DELETE"},
        {"POST", "/v1/jobs/" ID, "GET, DELETE"},
        {"POST", "/v1/jobs/" ID "/logs", "GET"},
        {"GET", "/v1/jobs/" ID "/cancel", "POST"},
        {"POST", "/healthz", "GET"},
        {"DELETE", "/readyz", "GET"},
        {"POST", "/v1/backends", "GET"},
        {"get", "/v1/jobs", "GET, POST"}, /* methods are case-sensitive */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_route_match_path(cases[i].method, cases[i].path, &m);
        if (m.route == ROUTE_NONE || m.endpoint != EP_NONE)
            fail_msg("%s %s: route %d endpoint %d", cases[i].method, cases[i].path, m.route,
                     m.endpoint);
        assert_string_equal(m.allow, cases[i].allow);
    }
}

static void dashboard_and_spec_routes(void **state)
{
    api_route_match m;
    api_route_match_path("GET", "/", &m);
    assert_int_equal(m.route, ROUTE_DASHBOARD);
    assert_int_equal(m.endpoint, EP_DASHBOARD);
    assert_string_equal(m.asset, "");
    assert_false(m.needs_auth);
    api_route_match_path("GET", "/ui/app.js", &m);
    assert_int_equal(m.endpoint, EP_DASHBOARD);
    assert_string_equal(m.asset, "app.js");
    assert_false(m.needs_auth);
    api_route_match_path("POST", "/ui/app.js", &m);
    assert_int_equal(m.route, ROUTE_DASHBOARD);
    assert_int_equal(m.endpoint, EP_NONE);
    assert_string_equal(m.allow, "GET");
    api_route_match_path("GET", "/openapi.yaml", &m);
    assert_int_equal(m.endpoint, EP_OPENAPI);
    assert_false(m.needs_auth);
}

static void unknown_paths_and_bad_ids(void **state)
{
    const char *paths[] = {
        "", "//", "/ui", "/ui/", "/ui/a/b.js", "/ui/../x.js", "/ui/.x.js", "/ui/a.b.js", "/ui/x",
        "/openapi.yml", "/metrics/", "/v1", "/v1/", "/v1/jobs/", "/v1/jobs//logs", "/v1/job", "/v2/jobs",
        "/healthz/", "/v1/jobs/" ID "/", "/v1/jobs/" ID "/log", "/v1/jobs/" ID "/logs/",
        "/v1/jobs/" ID "x", "/v1/jobs/0B7E3C1A-2F4D-4C5E-9A6B-7C8D9E0F1A2B", /* not canonical */
        "/v1/jobs/0b7e3c1a2f4d4c5e9a6b7c8d9e0f1a2b", "/v1/jobs/0b7e3c1a-2f4d-4c5e-9a6b-7c8d9e0f1a2",
        "/v1/jobs/not-a-uuid", "/v1/jobs/../healthz", "/V1/JOBS",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        api_route_match m;
        api_route_match_path("GET", paths[i], &m);
        if (m.route != ROUTE_NONE)
            fail_msg("%s matched route %d", paths[i], m.route);
        assert_int_equal(m.endpoint, EP_NONE);
    }
}

static void bearer_token(void **state)
{
    /* no token configured: everything passes */
    assert_true(api_auth_ok("", NULL));
    assert_true(api_auth_ok(NULL, "Bearer x"));
    assert_true(api_auth_ok("s3cret", "Bearer s3cret"));
    assert_true(api_auth_ok("s3cret", "bearer s3cret"));
    assert_true(api_auth_ok("s3cret", "BEARER  s3cret "));
    assert_false(api_auth_ok("s3cret", NULL));
    assert_false(api_auth_ok("s3cret", ""));
    assert_false(api_auth_ok("s3cret", "Bearer"));
    assert_false(api_auth_ok("s3cret", "Bearer "));
    assert_false(api_auth_ok("s3cret", "s3cret"));
    assert_false(api_auth_ok("s3cret", "Basic s3cret"));
    assert_false(api_auth_ok("s3cret", "Bearer s3cre"));   /* prefix */
    assert_false(api_auth_ok("s3cret", "Bearer s3crett")); /* longer */
    assert_false(api_auth_ok("s3cret", "Bearer s3creT"));
    assert_false(api_auth_ok("s3cret", "Bearer s3crets3cret")); /* the token repeated */
    assert_false(api_auth_ok("s3cret", "Bearer S3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_form_has_contract_fields),
        cmocka_unit_test(list_form_omits_script_and_inputs),
        cmocka_unit_test(dependencies_and_install),
        cmocka_unit_test(queued_and_failed_jobs),
        cmocka_unit_test(evicted_output_and_result),
        cmocka_unit_test(large_results_are_previewed_not_rendered),
        cmocka_unit_test(output_is_escaped_as_json_string_content),
        cmocka_unit_test(windows_end_on_whole_characters),
        cmocka_unit_test(logs_head_describes_the_windows),
        cmocka_unit_test(error_bodies),
        cmocka_unit_test(routes_match),
        cmocka_unit_test(wrong_method_gives_allow),
        cmocka_unit_test(dashboard_and_spec_routes),
        cmocka_unit_test(unknown_paths_and_bad_ids),
        cmocka_unit_test(bearer_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
