/* The job model: status names round-trip, id validation at its boundaries, and how each
 * sandbox verdict becomes a job status, error and usage document, and the one object of
 * the request fields the runner reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/job.h"

static void status_names_round_trip(void **state)
{
    const char *names[] = {"queued", "running", "succeeded", "failed", "timed_out", "cancelled"};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(job_status_name((job_status)i), names[i]);
        job_status st = JOB_QUEUED;
        assert_int_equal(job_status_parse(names[i], &st), 0);
        assert_int_equal(st, i);
    }
    job_status st = JOB_RUNNING;
    assert_int_equal(job_status_parse("Queued", &st), -1);
    assert_int_equal(job_status_parse("", &st), -1);
    assert_int_equal(job_status_parse("done", &st), -1);
    assert_int_equal(job_status_parse(NULL, &st), -1);
    assert_int_equal(st, JOB_RUNNING); /* untouched on failure */

    assert_false(job_status_is_final(JOB_QUEUED));
    assert_false(job_status_is_final(JOB_RUNNING));
    assert_true(job_status_is_final(JOB_SUCCEEDED));
    assert_true(job_status_is_final(JOB_FAILED));
    assert_true(job_status_is_final(JOB_TIMED_OUT));
    assert_true(job_status_is_final(JOB_CANCELLED));
}

static void id_validation_boundaries(void **state)
{
    assert_true(job_id_valid("0123abcd-4567-89ef-0123-456789abcdef"));
    assert_true(job_id_valid("00000000-0000-0000-0000-000000000000"));
    assert_false(job_id_valid(NULL));
    assert_false(job_id_valid(""));
    assert_false(job_id_valid("0123ABCD-4567-89ef-0123-456789abcdef"));  /* uppercase */
    assert_false(job_id_valid("0123abcd-4567-89ef-0123-456789abcde"));   /* 35 chars */
    assert_false(job_id_valid("0123abcd-4567-89ef-0123-456789abcdef0")); /* 37 chars */
    assert_false(job_id_valid("0123abcd04567-89ef-0123-456789abcdef"));  /* hyphen moved */
    assert_false(job_id_valid("0123abcd-4567-89ef-0123-456789abcdeg"));  /* not hex */
    assert_false(job_id_valid("0123abcd-4567-89ef-0123456789abcdef-"));
    assert_false(job_id_valid("{0123abcd-4567-89ef-0123-456789abcde}"));
    assert_false(job_id_valid("../../../../../../../../../etc/passwd"));
    assert_false(job_id_valid("0123abcd-4567-89ef-0123-456789abcde\n"));
}

static void new_ids_are_valid_and_distinct(void **state)
{
    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1];
    job_new_id(a);
    job_new_id(b);
    assert_int_equal(strlen(a), JOB_ID_LEN);
    assert_true(job_id_valid(a));
    assert_true(job_id_valid(b));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4'); /* random (version 4) UUIDs */
}

static void init_and_free(void **state)
{
    job j;
    memset(&j, 0x5a, sizeof j);
    job_init(&j);
    assert_int_equal(j.status, JOB_QUEUED);
    assert_false(j.has_exit_code);
    assert_int_equal(j.exit_code, -1);
    assert_int_equal(j.signal, 0);
    assert_null(j.script);
    assert_null(j.usage_json);
    j.script = strdup("print(1)");
    j.error_type = strdup("X");
    j.seq = 9;
    job_free(&j);
    assert_null(j.script);
    assert_null(j.error_type);
    assert_int_equal(j.seq, 0);
    job_free(&j); /* idempotent */
}

static void outcome_init(sandbox_outcome *o, sandbox_verdict v)
{
    memset(o, 0, sizeof *o);
    o->verdict = v;
    o->exit_code = -1;
    o->usage.memory_peak_bytes = -1;
    o->usage.cgroup_cpu_ms = -1;
    o->usage.oom_kills = -1;
}

static void job_with_limits(job *j)
{
    job_init(j);
    j->limits.timeout_seconds = 2.5;
    j->limits.max_output_bytes = 1024;
}

static void success_maps_result_and_usage(void **state)
{
    job j;
    job_with_limits(&j);
    j.error_type = strdup("Stale"); /* from nowhere: a success has no error */
    sandbox_outcome o;
    outcome_init(&o, SANDBOX_SUCCEEDED);
    o.exit_code = 0;
    o.result_json = "{\"x\":1}";
    o.usage = (sandbox_usage){.wall_ms = 12, .cpu_user_ms = 3, .cpu_system_ms = 4,
                              .max_rss_kb = 9000, .memory_peak_bytes = -1,
                              .cgroup_cpu_ms = -1, .oom_kills = -1};
    o.stdout_bytes = 5;
    o.stderr_bytes = 7;
    o.stderr_truncated = true;
    job_apply_outcome(&j, &o);
    assert_int_equal(j.status, JOB_SUCCEEDED);
    assert_string_equal(j.result_json, "{\"x\":1}");
    assert_ptr_not_equal(j.result_json, o.result_json); /* a copy */
    assert_null(j.error_type);
    assert_null(j.error_message);
    assert_true(j.has_exit_code);
    assert_int_equal(j.exit_code, 0);
    assert_int_equal(j.signal, 0);
    assert_int_equal(j.stdout_bytes, 5);
    assert_int_equal(j.stderr_bytes, 7);
    assert_false(j.stdout_truncated);
    assert_true(j.stderr_truncated);
    assert_string_equal(j.usage_json,
                        "{\"wall_ms\":12,\"cpu_user_ms\":3,\"cpu_system_ms\":4,"
                        "\"max_rss_kb\":9000}");
    assert_int_equal(j.finished_at_ms, 0); /* the scheduler sets it */
    job_free(&j);
}

static void usage_includes_measured_extras(void **state)
{
    job j;
    job_with_limits(&j);
    sandbox_outcome o;
    outcome_init(&o, SANDBOX_SUCCEEDED);
    o.usage = (sandbox_usage){.wall_ms = 1, .cpu_user_ms = 2, .cpu_system_ms = 3,
                              .max_rss_kb = 4, .memory_peak_bytes = 5000000,
                              .cgroup_cpu_ms = 0, .oom_kills = 0};
    job_apply_outcome(&j, &o);
    json_error_t e;
    json_t *u = json_loads(j.usage_json, 0, &e);
    assert_non_null(u);
    assert_int_equal(json_object_size(u), 7);
    assert_int_equal(json_integer_value(json_object_get(u, "memory_peak_bytes")), 5000000);
    assert_non_null(json_object_get(u, "cgroup_cpu_ms"));
    assert_int_equal(json_integer_value(json_object_get(u, "oom_kills")), 0);
    assert_null(strchr(j.usage_json, ' ')); /* compact */
    json_decref(u);
    job_free(&j);
}

/* Each non-success verdict, with the backend leaving the error out: default type and
 * message, and the status the contract names. */
static void verdicts_map_to_status_and_default_errors(void **state)
{
    struct {
        sandbox_verdict v;
        job_status st;
        const char *type;
        const char *message;
    } cases[] = {
        {SANDBOX_FAILED, JOB_FAILED, "SandboxExecutionError",
         "Script execution failed (exit code 1)"},
        {SANDBOX_TIMED_OUT, JOB_TIMED_OUT, "SandboxTimeoutError",
         "Script execution timed out after 2.5 seconds"},
        {SANDBOX_CANCELLED, JOB_CANCELLED, "Cancelled", "Job cancelled"},
        {SANDBOX_OUTPUT_LIMIT, JOB_FAILED, "OutputLimitExceeded",
         "Output exceeded the limit of 1024 bytes per stream"},
        {SANDBOX_SETUP_ERROR, JOB_FAILED, "SandboxError", "The sandbox could not be set up"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        job j;
        job_with_limits(&j);
        sandbox_outcome o;
        outcome_init(&o, cases[i].v);
        o.exit_code = cases[i].v == SANDBOX_FAILED ? 1 : -1;
        o.result_json = "42"; /* ignored unless succeeded */
        job_apply_outcome(&j, &o);
        assert_int_equal(j.status, cases[i].st);
        assert_string_equal(j.error_type, cases[i].type);
        assert_string_equal(j.error_message, cases[i].message);
        assert_null(j.error_traceback);
        assert_null(j.result_json);
        assert_non_null(j.usage_json);
        job_free(&j);
    }
}

static void timeout_message_uses_g_format(void **state)
{
    job j;
    job_init(&j);
    j.limits.timeout_seconds = 30;
    sandbox_outcome o;
    outcome_init(&o, SANDBOX_TIMED_OUT);
    o.signal = 9;
    job_apply_outcome(&j, &o);
    assert_string_equal(j.error_message, "Script execution timed out after 30 seconds");
    assert_false(j.has_exit_code);
    assert_int_equal(j.exit_code, -1);
    assert_int_equal(j.signal, 9);
    job_free(&j);
}

static void backend_errors_are_kept(void **state)
{
    job j;
    job_with_limits(&j);
    sandbox_outcome o;
    outcome_init(&o, SANDBOX_FAILED);
    o.exit_code = 1;
    o.error_type = "ZeroDivisionError";
    o.error_message = "division by zero";
    o.error_traceback = "Traceback (most recent call last):\n...";
    job_apply_outcome(&j, &o);
    assert_int_equal(j.status, JOB_FAILED);
    assert_string_equal(j.error_type, "ZeroDivisionError");
    assert_string_equal(j.error_message, "division by zero");
    assert_string_equal(j.error_traceback, "Traceback (most recent call last):\n...");
    assert_ptr_not_equal(j.error_type, o.error_type);

    /* Applying again (e.g. a retried record) replaces, and a type without message gets
     * the default message. */
    sandbox_outcome o2;
    outcome_init(&o2, SANDBOX_SETUP_ERROR);
    o2.error_type = "SandboxError";
    job_apply_outcome(&j, &o2);
    assert_string_equal(j.error_type, "SandboxError");
    assert_string_equal(j.error_message, "The sandbox could not be set up");
    assert_null(j.error_traceback);
    assert_false(j.has_exit_code);
    job_free(&j);
}

static void failed_by_signal_default_message(void **state)
{
    job j;
    job_with_limits(&j);
    sandbox_outcome o;
    outcome_init(&o, SANDBOX_FAILED);
    o.signal = 11;
    job_apply_outcome(&j, &o);
    assert_string_equal(j.error_type, "SandboxExecutionError");
    assert_string_equal(j.error_message, "Script execution failed (killed by signal 11)");
    job_free(&j);
}

/* The fields the runner reads, as one object: script encoded, inputs spliced as stored,
 * nothing of the service's own fields (backend, allow_network, labels, ...). */
static void runner_fields_json_of_a_job(void **state)
{
    job j;
    job_init(&j);
    j.script = strdup("print(\"h\xc3\xa9 \\\\ \xe2\x9c\x93\")\n");
    j.inputs_json = strdup("{\"a\":[1,2.50],\"b\":\"\\u00e9\"}");
    strcpy(j.backend, "direct");
    j.allow_network = true;
    j.labels_json = strdup("{\"team\":\"x\"}");
    j.env_json = strdup("{\"SECRET\":\"v\"}");
    char *text = job_runner_fields_json(&j);
    assert_non_null(text);
    /* UTF-8 kept as is; the inputs' own text (2.50, \u00e9), never parsed again. */
    assert_string_equal(text, "{\"script\":\"print(\\\"h\xc3\xa9 \\\\\\\\ \xe2\x9c\x93\\\")\\n\","
                              "\"inputs\":{\"a\":[1,2.50],\"b\":\"\\u00e9\"}}");
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "script")), j.script);
    json_decref(doc);
    free(text);

    /* No inputs stored: an empty object, as the runner expects. */
    free(j.inputs_json);
    j.inputs_json = NULL;
    text = job_runner_fields_json(&j);
    assert_non_null(text);
    assert_non_null(strstr(text, ",\"inputs\":{}}"));
    free(text);

    /* A script that is not UTF-8 cannot be encoded: refused, not passed on. */
    free(j.script);
    j.script = strdup("print('\xff')");
    errno = 0;
    assert_null(job_runner_fields_json(&j));
    assert_int_equal(errno, EINVAL);
    job_free(&j);
}

/* Which rows the runner sees is the def's column, as data. */
static void runner_rows_are_script_and_inputs(void **state)
{
    size_t n = 0;
    for (size_t i = 0; i < job_field_count; i++)
        n += job_field_descs[i].runner;
    assert_int_equal(n, 2);
    assert_true(job_field_find("script")->runner);
    assert_true(job_field_find("inputs")->runner);
    assert_false(job_field_find("allow_network")->runner);
    assert_false(job_field_find("env_vars")->runner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_names_round_trip),
        cmocka_unit_test(id_validation_boundaries),
        cmocka_unit_test(new_ids_are_valid_and_distinct),
        cmocka_unit_test(init_and_free),
        cmocka_unit_test(success_maps_result_and_usage),
        cmocka_unit_test(usage_includes_measured_extras),
        cmocka_unit_test(verdicts_map_to_status_and_default_errors),
        cmocka_unit_test(timeout_message_uses_g_format),
        cmocka_unit_test(backend_errors_are_kept),
        cmocka_unit_test(failed_by_signal_default_message),
        cmocka_unit_test(runner_fields_json_of_a_job),
        cmocka_unit_test(runner_rows_are_script_and_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
