/* Interpreting the runner's result document: {"ok": true, "result": ...} or
 * {"ok": false, "error": {"type", "message", "traceback"}}, plus "max_rss_kb". The text
 * comes from inside the sandbox, so anything else is a failed job, never a crash. */
#include "sandbox/result.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char *dup_json_string(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? strdup(s) : NULL;
}

bool sandbox_apply_result(const char *text, size_t len, sandbox_outcome *out)
{
    if (len == 0)
        return false;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (!doc || !json_is_object(doc)) {
        out->verdict = SANDBOX_FAILED;
        sandbox_outcome_set_error(out, "SandboxExecutionError",
                                  "Invalid result document from the runner: %s",
                                  doc ? "not an object" : jerr.text);
        json_decref(doc);
        return true;
    }
    json_t *ok = json_object_get(doc, "ok");
    if (json_is_true(ok)) {
        json_t *res = json_object_get(doc, "result");
        out->result_json = json_dumps(res ? res : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
        if (!out->result_json) {
            out->verdict = SANDBOX_FAILED;
            sandbox_outcome_set_error(out, "SandboxExecutionError", "Out of memory encoding the result");
        } else {
            out->verdict = SANDBOX_SUCCEEDED;
        }
    } else {
        json_t *e = json_object_get(doc, "error");
        out->verdict = SANDBOX_FAILED;
        free(out->error_type);
        free(out->error_message);
        free(out->error_traceback);
        out->error_type = dup_json_string(e, "type");
        out->error_message = dup_json_string(e, "message");
        out->error_traceback = dup_json_string(e, "traceback");
        if (!out->error_type)
            out->error_type = strdup("SandboxExecutionError");
    }
    json_t *rss = json_object_get(doc, "max_rss_kb");
    if (json_is_integer(rss) && json_integer_value(rss) > 0)
        out->usage.max_rss_kb = json_integer_value(rss);
    json_decref(doc);
    return true;
}
