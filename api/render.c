/* Rendering jobs, logs and errors as the wire contract spells them. Stored JSON texts
 * (inputs, env, labels, result, usage) are parsed back so they nest as values, and
 * derived fields (timestamps, durations) are computed here, in one place. */
#include "api/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/timeutil.h"
#include "src/utf8.h"

static json_t *timestamp(int64_t unix_ms)
{
    if (unix_ms <= 0)
        return json_null();
    char buf[40];
    time_format_rfc3339(unix_ms, buf, sizeof buf);
    return json_string(buf);
}

/* Text that came from a script or a backend may not be valid UTF-8; jansson refuses
 * such strings, so repair them rather than drop the field. NULL renders as null. */
static json_t *textn_or_null(const char *s, size_t len)
{
    if (!s)
        return json_null();
    if (utf8_valid(s, len))
        return json_stringn_nocheck(s, len);
    size_t n = 0;
    char *clean = utf8_sanitize(s, len, &n);
    json_t *v = clean ? json_stringn_nocheck(clean, n) : json_null();
    free(clean);
    return v;
}

static json_t *text_or_null(const char *s)
{
    return textn_or_null(s, s ? strlen(s) : 0);
}

static json_t *int_or_null(bool known, int64_t v)
{
    return known ? json_integer(v) : json_null();
}

/* Parses stored JSON text; null when absent or (which should not happen) unreadable. */
static json_t *parsed(const char *text)
{
    if (!text)
        return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    return v ? v : json_null();
}

static json_t *parsed_object(const char *text)
{
    json_t *v = parsed(text);
    if (json_is_object(v))
        return v;
    json_decref(v);
    return json_object();
}

static json_t *object_or_null(const char *text)
{
    json_t *v = parsed(text);
    if (json_is_object(v))
        return v;
    json_decref(v);
    return json_null();
}

static json_t *render_error_field(const job *j)
{
    if (!j->error_type && !j->error_message)
        return json_null();
    return json_pack("{s:o, s:o, s:o}", "type", text_or_null(j->error_type ? j->error_type : "Error"),
                     "message", text_or_null(j->error_message ? j->error_message : ""),
                     "traceback", text_or_null(j->error_traceback));
}

/* Names only: the values may be secrets and are never echoed back. */
static json_t *env_names(const char *env_json)
{
    json_t *env = parsed_object(env_json);
    json_t *names = json_array();
    const char *name;
    json_t *v;
    json_object_foreach(env, name, v)
        json_array_append_new(names, json_string(name));
    json_decref(env);
    return names;
}

/* A request field (a row of src/job_fields.def) as the wire shows it. */
static json_t *render_field(const job *j, const job_field_desc *f)
{
    const void *slot = job_field_cslot(j, f);
    switch (f->kind) {
    case JOB_FIELD_TEXT:
        return text_or_null(*(char *const *)slot);
    case JOB_FIELD_OBJECT:
    case JOB_FIELD_LABELS:
        return parsed_object(*(char *const *)slot);
    case JOB_FIELD_BACKEND:
        return text_or_null(slot);
    case JOB_FIELD_BOOL:
        return json_boolean(*(const bool *)slot);
    case JOB_FIELD_ENV:
        return env_names(*(char *const *)slot);
    case JOB_FIELD_LIMITS:
        return sandbox_limits_json(slot, false);
    case JOB_FIELD_DEPS: { /* none renders as [], so clients always get a list */
        json_t *list = parsed(*(char *const *)slot);
        if (json_is_array(list))
            return list;
        json_decref(list);
        return json_array();
    }
    case JOB_FIELD_TIMEOUT:
        break; /* rendered inside limits */
    }
    return json_null();
}

/* The request fields shown at one spot of a rendered job, by their rank. */
static void set_request_fields(json_t *o, const job *j, job_field_render where)
{
    for (int rank = 1; rank <= (int)job_field_count; rank++)
        for (size_t i = 0; i < job_field_count; i++) {
            const job_field_desc *f = &job_field_descs[i];
            if (f->render == where && f->rank == rank)
                json_object_set_new(o, f->name, render_field(j, f));
        }
}

static bool has_result(const job *j)
{
    return j->status == JOB_SUCCEEDED && j->result_json;
}

/* The whole result's size: as stored, or for a job built in memory its text's length. */
static uint64_t result_size(const job *j)
{
    if (!has_result(j))
        return 0;
    return j->result_bytes ? j->result_bytes : strlen(j->result_json);
}

bool api_job_result_inline(const job *j)
{
    return !has_result(j) || result_size(j) <= strlen(j->result_json);
}

/* What a list shows of the result: its size and its first bytes (cut before a character
 * that does not fit), never the value, which may be as large as max_output_bytes. */
static void set_result_summary(json_t *o, const job *j)
{
    uint64_t size = result_size(j);
    size_t n = has_result(j) ? strlen(j->result_json) : 0;
    if (n > API_RESULT_PREVIEW_BYTES)
        n = API_RESULT_PREVIEW_BYTES;
    if (n < size)
        n = utf8_complete_len(j->result_json, n);
    json_object_set_new(o, "result_preview",
                        has_result(j) ? textn_or_null(j->result_json, n) : json_null());
    json_object_set_new(o, "result_bytes", json_integer((json_int_t)size));
    json_object_set_new(o, "result_truncated", json_boolean(n < size));
}

json_t *api_render_job(const job *j, bool full)
{
    bool started = j->started_at_ms > 0, finished = j->finished_at_ms > 0;
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "status", json_string(job_status_name(j->status)));
    set_request_fields(o, j, JOB_RENDER_HEAD);
    json_object_set_new(o, "created_at", timestamp(j->created_at_ms));
    json_object_set_new(o, "started_at", timestamp(j->started_at_ms));
    json_object_set_new(o, "finished_at", timestamp(j->finished_at_ms));
    json_object_set_new(o, "queue_wait_ms",
                        int_or_null(started && j->created_at_ms > 0,
                                    j->started_at_ms - j->created_at_ms));
    json_object_set_new(o, "run_ms",
                        int_or_null(started && finished, j->finished_at_ms - j->started_at_ms));
    /* The value only in the full form, and only when it is all here (else the caller
     * streams it from the store). */
    if (full && api_job_result_inline(j))
        json_object_set_new(o, "result", has_result(j) ? parsed(j->result_json) : json_null());
    set_result_summary(o, j);
    json_object_set_new(o, "error", render_error_field(j));
    json_object_set_new(o, "exit_code", int_or_null(j->has_exit_code, j->exit_code));
    json_object_set_new(o, "signal", int_or_null(j->signal > 0, j->signal));
    json_object_set_new(o, "usage", object_or_null(j->usage_json));
    json_object_set_new(o, "install", object_or_null(j->install_json));
    set_request_fields(o, j, JOB_RENDER_REQUEST);
    json_object_set_new(o, "stdout_bytes", json_integer((json_int_t)j->stdout_bytes));
    json_object_set_new(o, "stderr_bytes", json_integer((json_int_t)j->stderr_bytes));
    json_object_set_new(o, "stdout_truncated", json_boolean(j->stdout_truncated));
    json_object_set_new(o, "stderr_truncated", json_boolean(j->stderr_truncated));
    json_object_set_new(o, "output_evicted", json_boolean(j->output_evicted));
    json_object_set_new(o, "result_evicted", json_boolean(j->result_evicted));
    if (full)
        set_request_fields(o, j, JOB_RENDER_FULL);
    return o;
}

size_t api_json_escape(const char *s, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f" : NULL;
        if (esc) {
            out[o++] = esc[0];
            out[o++] = esc[1];
        } else if (c < 0x20) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

static json_t *log_window(const api_log_window *w)
{
    return json_pack("{s:I, s:I, s:b}", "offset", (json_int_t)w->offset, "next_offset",
                     (json_int_t)w->next_offset, "truncated", w->next_offset < w->total);
}

json_t *api_render_logs_head(const job *j, const api_log_window *out, const api_log_window *err,
                             uint64_t limit)
{
    /* While the job runs, the job row's byte counts lag behind the stored output. */
    uint64_t out_bytes = j->stdout_bytes > out->total ? j->stdout_bytes : out->total;
    uint64_t err_bytes = j->stderr_bytes > err->total ? j->stderr_bytes : err->total;
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "job_id", json_string(j->id));
    json_object_set_new(o, "status", json_string(job_status_name(j->status)));
    json_object_set_new(o, "stdout_bytes", json_integer((json_int_t)out_bytes));
    json_object_set_new(o, "stderr_bytes", json_integer((json_int_t)err_bytes));
    json_object_set_new(o, "stdout_truncated", json_boolean(j->stdout_truncated));
    json_object_set_new(o, "stderr_truncated", json_boolean(j->stderr_truncated));
    json_object_set_new(o, "output_evicted", json_boolean(j->output_evicted));
    json_t *w = json_pack("{s:I, s:o, s:o}", "limit", (json_int_t)limit, "stdout",
                          log_window(out), "stderr", log_window(err));
    if (!w) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "window", w);
    return o;
}

json_t *api_render_error(const api_error *e)
{
    /* Messages quote user input and may have been cut inside a UTF-8 sequence. */
    json_t *inner = json_pack("{s:s, s:o}", "code", e->code ? e->code : "internal", "message",
                              text_or_null(e->message[0] ? e->message : "error"));
    if (!inner)
        return NULL;
    if (e->field[0])
        json_object_set_new(inner, "field", text_or_null(e->field));
    return json_pack("{s:o}", "error", inner);
}
