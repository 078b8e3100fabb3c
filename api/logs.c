/* GET /v1/jobs/{id}/logs: a window of each stream as JSON, or of one stream as raw text.
 * A window is at most `limit` bytes of stored output; its bounds are decided from the
 * stream's size alone, then the bytes are streamed from the store (api/body.c), so an
 * answer never holds a stream in memory however large the output or the escaping. */
#include "api/logs.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api/render.h"
#include "src/log.h"
#include "src/utf8.h"

/* Bytes per stream and answer. The JSON form escapes a NUL as \u0000, so its body is at
 * most 2 streams x 6 x LOG_LIMIT_MAX (48 MiB), produced 16 KiB at a time. */
#define LOG_LIMIT_DEFAULT (1u << 20)
#define LOG_LIMIT_MAX (4u << 20)

/* The window [offset, offset + limit) clipped to what is stored. For JSON text (whole_chars)
 * it also ends before a character that it would cut or that the running job has not
 * finished writing, so that concatenated windows are the stream's text; the stream's very
 * end when the job is final is sent as it is (its repair shows the cut). */
static store_rc measure(store *st, const job *j, int stream, uint64_t offset, uint64_t limit,
                        bool whole_chars, api_log_window *w)
{
    store_rc rc = store_output_size(st, j->id, stream, &w->total);
    if (rc != STORE_OK)
        return rc;
    uint64_t end = offset;
    if (offset < w->total)
        end = w->total - offset > limit ? offset + limit : w->total;
    if (whole_chars && end > offset && (end < w->total || !job_status_is_final(j->status))) {
        uint64_t from = end - offset > 3 ? end - 3 : offset;
        char *tail = NULL;
        size_t len = 0;
        rc = store_read_output(st, j->id, stream, from, (size_t)(end - from), &tail, &len);
        if (rc == STORE_OK) {
            uint64_t cut = from + utf8_complete_len(tail, len);
            if (cut > offset) /* never an empty window: only a limit below 4 could do that */
                end = cut;
        }
        free(tail);
        if (rc != STORE_OK)
            return rc;
    }
    w->offset = offset;
    w->next_offset = end;
    return STORE_OK;
}

static api_result store_failed(api_request *rq, api_response *rs, store_rc rc, const char *id)
{
    if (rc == STORE_NOT_FOUND)
        return api_respond_errorf(rs, 404, "not_found", "job %s not found", id);
    return api_respond_store_error(rs, rq->srv->st, "reading output");
}

static api_result out_of_memory(api_response *rs, api_body *b)
{
    api_body_free(b);
    return api_respond_errorf(rs, 500, "internal", "out of memory");
}

/* text/plain: the raw bytes, with where to go on in the headers. */
static api_result raw_window(api_request *rq, api_response *rs, const job *j, int stream,
                             uint64_t offset, uint64_t limit)
{
    store *st = rq->srv->st;
    api_log_window w;
    store_rc rc = measure(st, j, stream, offset, limit, false, &w);
    if (rc != STORE_OK)
        return store_failed(rq, rs, rc, j->id);
    api_body *b = api_body_new(st, j->id);
    if (!b || api_body_output(b, stream, w.offset, w.next_offset, false) != 0)
        return out_of_memory(rs, b);
    api_respond_stream(rs, 200, "text/plain; charset=utf-8", b);
    /* A script's output opened as a page: no script, form, plugin or same-origin access
     * even if a browser were to render it (nosniff is on every answer, server.c). */
    api_response_header(rs, "Content-Security-Policy", "sandbox");
    api_response_header(rs, "X-Job-Status", "%s", job_status_name(j->status));
    api_response_header(rs, "X-Output-Bytes", "%" PRIu64, w.total);
    api_response_header(rs, "X-Next-Offset", "%" PRIu64, w.next_offset);
    api_response_header(rs, "X-Window-Truncated", "%s", w.next_offset < w.total ? "true" : "false");
    if (j->output_evicted)
        api_response_header(rs, "X-Output-Evicted", "true");
    return API_RESPOND;
}

/* JSON: the document's fields first, then the two texts streamed into it. */
static api_result json_windows(api_request *rq, api_response *rs, const job *j,
                               const uint64_t offsets[2], uint64_t limit)
{
    store *st = rq->srv->st;
    api_log_window w[2];
    const int streams[2] = {SANDBOX_STDOUT, SANDBOX_STDERR};
    for (int i = 0; i < 2; i++) {
        store_rc rc = measure(st, j, streams[i], offsets[i], limit, true, &w[i]);
        if (rc != STORE_OK)
            return store_failed(rq, rs, rc, j->id);
    }
    json_t *head_doc = api_render_logs_head(j, &w[0], &w[1], limit);
    char *head = head_doc ? json_dumps(head_doc, JSON_COMPACT) : NULL;
    json_decref(head_doc);
    api_body *b = head ? api_body_new(st, j->id) : NULL;
    static const char mid[] = "\",\"stderr\":\"", end[] = "\"}";
    static const char open_out[] = ",\"stdout\":\"";
    /* head is "{...}": its closing brace makes way for the texts. */
    bool ok = b && api_body_text(b, head, strlen(head) - 1) == 0 &&
              api_body_text(b, open_out, sizeof open_out - 1) == 0 &&
              api_body_output(b, streams[0], w[0].offset, w[0].next_offset, true) == 0 &&
              api_body_text(b, mid, sizeof mid - 1) == 0 &&
              api_body_output(b, streams[1], w[1].offset, w[1].next_offset, true) == 0 &&
              api_body_text(b, end, sizeof end - 1) == 0;
    free(head);
    if (!ok)
        return out_of_memory(rs, b);
    return api_respond_stream(rs, 200, "application/json", b);
}

/* Which parameters go with which form: a name from the other form is refused rather than
 * ignored, so a client mixing them up learns it at once. */
static int parse_params(api_request *rq, int *stream, uint64_t offsets[2], uint64_t *limit,
                        api_error *e)
{
    if (api_parse_stream(api_query(rq, "stream"), stream, e) < 0)
        return -1;
    const char *wrong = NULL, *rule = NULL;
    if (*stream) {
        if (api_query(rq, "stdout_offset"))
            wrong = "stdout_offset";
        else if (api_query(rq, "stderr_offset"))
            wrong = "stderr_offset";
        rule = "goes without stream; with stream, use offset";
    } else if (api_query(rq, "offset")) {
        wrong = "offset";
        rule = "goes with stream; without it, use stdout_offset and stderr_offset";
    }
    if (wrong) {
        api_error_set(e, 400, "invalid_parameter", NULL, "invalid query parameter '%s': %s",
                      wrong, rule);
        return -1;
    }
    offsets[0] = offsets[1] = 0;
    if (*stream && api_parse_offset(api_query(rq, "offset"), &offsets[0], e) < 0)
        return -1;
    if (!*stream && (api_parse_bytes("stdout_offset", api_query(rq, "stdout_offset"), 0, 0,
                                     INT64_MAX, &offsets[0], e) < 0 ||
                     api_parse_bytes("stderr_offset", api_query(rq, "stderr_offset"), 0, 0,
                                     INT64_MAX, &offsets[1], e) < 0))
        return -1;
    return api_parse_bytes("limit", api_query(rq, "limit"), LOG_LIMIT_DEFAULT, 1, LOG_LIMIT_MAX,
                           limit, e);
}

api_result api_jobs_logs(api_request *rq, api_response *rs)
{
    api_error e;
    api_error_clear(&e);
    int stream;
    uint64_t offsets[2], limit;
    if (parse_params(rq, &stream, offsets, &limit, &e) < 0)
        return api_respond_error(rs, &e);
    const char *id = rq->match.job_id;
    /* The job first, then its output: when the job is already final the output measured
     * next is complete, so a client never sees a final status with a missing tail. */
    job j;
    job_init(&j);
    store_rc rc = store_get_job(rq->srv->st, id, &j);
    api_result r;
    if (rc != STORE_OK) {
        if (rc == STORE_NOT_FOUND)
            r = api_respond_errorf(rs, 404, "not_found", "job %s not found", id);
        else
            r = store_failed(rq, rs, rc, id);
    } else if (stream) {
        r = raw_window(rq, rs, &j, stream, offsets[0], limit);
    } else {
        r = json_windows(rq, rs, &j, offsets, limit);
    }
    job_free(&j);
    return r;
}
