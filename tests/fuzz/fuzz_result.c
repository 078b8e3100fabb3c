/* libFuzzer harness: the JSON-safe result path on the service side. The input is what the
 * runner wrote to the result pipe: sandbox_apply_result turns it into an outcome,
 * job_apply_outcome into the job, api_render_job into the response, which must be valid
 * UTF-8 JSON that parses back with the same result. The same bytes also go through
 * utf8_valid/utf8_sanitize (checked against jansson's own UTF-8 check), as stored error
 * text of a job, as log output (utf8_sanitize + api_json_escape, as a log window streams
 * it) and as an API error message. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/render.h"
#include "sandbox/result.h"
#include "src/job.h"
#include "src/utf8.h"
#include "tests/fuzz/fuzz_check.h"

/* Serialises v, asserts valid UTF-8 JSON that parses back equal; returns the parse. */
static json_t *round_trip(const json_t *v)
{
    CHECK(v != NULL);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    CHECK(text != NULL);
    CHECK(utf8_valid(text, strlen(text)));
    json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(back != NULL);
    CHECK(json_equal(back, v));
    free(text);
    return back;
}

static void check_utf8(const char *s, size_t len)
{
    bool valid = utf8_valid(s, len);
    /* jansson's own validator agrees (json_stringn accepts NUL, refuses bad UTF-8) */
    json_t *js = json_stringn(s, len);
    CHECK(valid == (js != NULL));
    json_decref(js);

    size_t n = (size_t)-1;
    char *clean = utf8_sanitize(s, len, &n);
    CHECK(clean != NULL);
    CHECK(n <= len * 3);
    CHECK(clean[n] == '\0');
    CHECK(utf8_valid(clean, n));
    if (valid)
        CHECK(n == len && memcmp(clean, s, len) == 0); /* valid input comes back unchanged */
    else
        CHECK(n > len); /* each invalid byte became a 3-byte U+FFFD */
    /* sanitising is idempotent */
    size_t n2 = 0;
    char *again = utf8_sanitize(clean, n, &n2);
    CHECK(again && n2 == n && memcmp(again, clean, n) == 0);
    free(again);
    free(clean);
}

static void base_job(job *j, job_status st)
{
    job_init(j);
    snprintf(j->id, sizeof j->id, "0f8fad5b-d9cb-469f-a165-70867728950e");
    snprintf(j->backend, sizeof j->backend, "direct");
    j->status = st;
    j->created_at_ms = 1700000000000;
    j->started_at_ms = 1700000000100;
    j->finished_at_ms = 1700000001100;
    j->limits = (sandbox_limits){30, 512, 60, 64, 64, 256, 1048576};
    j->script = strdup("def main():\n    return 1\n");
    j->inputs_json = strdup("{\"a\":1}");
    j->env_json = strdup("{\"API_KEY\":\"secret\"}");
    j->labels_json = strdup("{\"workflow\":\"triage\"}");
}

static void check_result_path(const char *doc, size_t len)
{
    sandbox_outcome o;
    sandbox_outcome_init(&o);
    o.exit_code = 0;
    bool have = sandbox_apply_result(doc, len, &o);
    CHECK(have == (len > 0));
    if (!have) {
        CHECK(o.verdict == SANDBOX_SETUP_ERROR && !o.result_json && !o.error_type);
        sandbox_outcome_free(&o);
        return;
    }
    CHECK(o.verdict == SANDBOX_SUCCEEDED || o.verdict == SANDBOX_FAILED);
    json_t *result = NULL;
    if (o.verdict == SANDBOX_SUCCEEDED) {
        CHECK(o.result_json != NULL && o.error_type == NULL);
        result = json_loads(o.result_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        CHECK(result != NULL);
    } else {
        CHECK(o.result_json == NULL && o.error_type != NULL);
    }

    job j;
    base_job(&j, JOB_RUNNING);
    job_apply_outcome(&j, &o);
    CHECK(j.status == (o.verdict == SANDBOX_SUCCEEDED ? JOB_SUCCEEDED : JOB_FAILED));
    CHECK(j.usage_json != NULL);
    for (int full = 0; full < 2; full++) {
        json_t *r = api_render_job(&j, full);
        json_t *back = round_trip(r);
        json_t *res = json_object_get(back, "result"), *err = json_object_get(back, "error");
        CHECK(json_is_object(json_object_get(back, "usage")));
        /* Both forms: the result's size and first bytes, cut at a character. */
        json_t *preview = json_object_get(back, "result_preview");
        json_int_t bytes = json_integer_value(json_object_get(back, "result_bytes"));
        if (o.verdict == SANDBOX_SUCCEEDED) {
            size_t plen = json_string_length(preview);
            CHECK(json_is_string(preview) && plen <= API_RESULT_PREVIEW_BYTES);
            CHECK(bytes == (json_int_t)strlen(j.result_json));
            CHECK(memcmp(json_string_value(preview), j.result_json, plen) == 0);
            CHECK(json_is_boolean(json_object_get(back, "result_truncated")) &&
                  json_is_true(json_object_get(back, "result_truncated")) == ((json_int_t)plen < bytes));
        } else {
            CHECK(json_is_null(preview) && bytes == 0);
        }
        if (!full) {
            CHECK(res == NULL); /* the list form never carries the value */
        }
        if (o.verdict == SANDBOX_SUCCEEDED) {
            CHECK(!full || json_equal(res, result)); /* the result survives, value for value */
            CHECK(json_is_null(err));
        } else {
            CHECK(!full || json_is_null(res));
            CHECK(json_is_object(err));
            CHECK(json_is_string(json_object_get(err, "type")));
            CHECK(json_is_string(json_object_get(err, "message")));
        }
        json_decref(back);
        json_decref(r);
    }
    json_decref(result);
    job_free(&j);
    sandbox_outcome_free(&o);
}

/* Arbitrary bytes as stored text of a job (error fields, script, backend name, result),
 * as log output and as an error message: the rendering is valid JSON whatever they are. */
static void check_raw_text(const char *s, size_t len)
{
    char *cstr = malloc(len + 1);
    CHECK(cstr != NULL);
    memcpy(cstr, s, len);
    cstr[len] = '\0';

    job j;
    base_job(&j, JOB_FAILED);
    j.error_type = strdup(cstr);
    j.error_message = strdup(cstr);
    j.error_traceback = strdup(cstr);
    free(j.script);
    j.script = strdup(cstr);
    snprintf(j.backend, sizeof j.backend, "%s", cstr);
    j.has_exit_code = true;
    j.exit_code = 1;
    json_t *r = api_render_job(&j, true);
    json_decref(round_trip(r));
    json_decref(r);

    /* a stored result text that is not JSON renders as null, not garbage */
    j.status = JOB_SUCCEEDED;
    free(j.result_json);
    j.result_json = strdup(cstr);
    free(j.usage_json);
    j.usage_json = strdup(cstr);
    r = api_render_job(&j, false);
    json_decref(round_trip(r));
    json_decref(r);

    /* Log output as a window streams it: repaired, escaped, between quotes it is a JSON
     * string jansson reads back as the repaired text, in at most 6 bytes per byte. */
    size_t clean_len = 0;
    char *clean = utf8_sanitize(s, len, &clean_len);
    char *quoted = clean ? malloc(clean_len * 6 + 2) : NULL;
    CHECK(quoted != NULL);
    size_t n = api_json_escape(clean, clean_len, quoted + 1);
    CHECK(n <= clean_len * 6);
    quoted[0] = quoted[n + 1] = '"';
    json_t *back = json_loadb(quoted, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(json_is_string(back) && json_string_length(back) == clean_len &&
          memcmp(json_string_value(back), clean, clean_len) == 0);
    if (utf8_valid(s, len))
        CHECK(clean_len == len && memcmp(clean, s, len) == 0);
    /* a window cut where utf8_complete_len says leaves no half character behind */
    size_t keep = utf8_complete_len(s, len);
    CHECK(keep <= len && len - keep <= 3);
    if (utf8_valid(s, len))
        CHECK(keep == len); /* whole characters are never held back */
    json_decref(back);
    free(quoted);
    free(clean);
    job_free(&j);

    api_error e;
    api_error_set(&e, 422, "invalid_field", cstr, "bad field '%s'", cstr);
    r = api_render_error(&e);
    json_decref(round_trip(r));
    json_decref(r);
    free(cstr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading past len is caught. */
    char *buf = malloc(size ? size : 1);
    CHECK(buf != NULL);
    if (size)
        memcpy(buf, data, size);
    check_utf8(buf, size);
    check_result_path(buf, size);
    check_raw_text(buf, size);
    free(buf);
    return 0;
}
