/* JSON rendering of what the API returns: jobs (full and list forms), logs, backends'
 * states and error bodies. Builds jansson values; the response layer serialises them. */
#ifndef EXECUTORD_API_RENDER_H
#define EXECUTORD_API_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "api/error.h"
#include "src/job.h"

/* The first bytes of a result that the list form shows (result_preview). */
#define API_RESULT_PREVIEW_BYTES 256

/* The job as the contract shows it. full = include "script", "inputs" and "result"; the
 * list form has only the result's size and first bytes. A full job whose result was read
 * only in part (see api_job_result_inline) has no "result": the caller appends it from the
 * store. NULL only when out of memory. */
json_t *api_render_job(const job *j, bool full);
/* False when j carries only the first bytes of its result (store_get_job reads at most
 * STORE_RESULT_INLINE_MAX). */
bool api_job_result_inline(const job *j);

/* One stream's window of GET /v1/jobs/{id}/logs: the bytes [offset, next_offset) of a
 * stream that has total bytes so far. */
typedef struct api_log_window {
    uint64_t total, offset, next_offset;
} api_log_window;

/* {"job_id","status","stdout_bytes","stderr_bytes","stdout_truncated","stderr_truncated",
 * "window":{"limit","stdout":{"offset","next_offset","truncated"},"stderr":{...}}}: the
 * logs document without the texts, which are streamed after it. */
json_t *api_render_logs_head(const job *j, const api_log_window *out, const api_log_window *err,
                             uint64_t limit);

/* Writes valid UTF-8 text as the content of a JSON string (quotes, backslashes and
 * control characters escaped as jansson does; NUL as \u0000) into out, which has room for
 * 6 * len bytes. Returns the bytes written. */
size_t api_json_escape(const char *s, size_t len, char *out);

/* {"error": {"code","message"[,"field"]}} */
json_t *api_render_error(const api_error *e);

#endif
