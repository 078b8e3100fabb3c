/* Building responses: JSON documents, error bodies, plain text and extra headers, in one
 * shape the server turns into an MHD_Response. A failure to serialise becomes a JSON 500,
 * never an empty or non-JSON error. */
#include "api/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/render.h"
#include "src/log.h"

static const char JSON_TYPE[] = "application/json";

/* Used when even building an error document failed (out of memory). */
static const char FALLBACK_500[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

void api_response_init(api_response *rs)
{
    memset(rs, 0, sizeof *rs);
    rs->content_type = JSON_TYPE;
}

void api_response_free(api_response *rs)
{
    free(rs->body);
    rs->body = NULL;
    rs->len = 0;
    api_body_free(rs->stream);
    rs->stream = NULL;
}

static void set_body(api_response *rs, unsigned int status, char *body, size_t len,
                     const char *type)
{
    api_response_free(rs);
    rs->status = status;
    rs->body = body;
    rs->len = len;
    rs->content_type = type;
}

api_result api_respond_json(api_response *rs, unsigned int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        /* The fallback is copied so the body is always malloc'd (MHD frees it). */
        set_body(rs, 500, strdup(FALLBACK_500), sizeof FALLBACK_500 - 1, JSON_TYPE);
        if (!rs->body)
            rs->len = 0;
        rs->n_headers = 0;
        return API_RESPOND;
    }
    set_body(rs, status, text, strlen(text), JSON_TYPE);
    return API_RESPOND;
}

api_result api_respond_error(api_response *rs, const api_error *e)
{
    return api_respond_json(rs, e->status ? e->status : 500, api_render_error(e));
}

api_result api_respond_errorf(api_response *rs, unsigned int status, const char *code,
                              const char *fmt, ...)
{
    api_error e;
    api_error_clear(&e);
    e.status = status;
    e.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return api_respond_error(rs, &e);
}

api_result api_respond_text(api_response *rs, unsigned int status, char *data, size_t len)
{
    set_body(rs, status, data, data ? len : 0, "text/plain; charset=utf-8");
    return API_RESPOND;
}

api_result api_respond_empty(api_response *rs, unsigned int status)
{
    set_body(rs, status, NULL, 0, JSON_TYPE);
    return API_RESPOND;
}

api_result api_respond_stream(api_response *rs, unsigned int status, const char *content_type,
                              api_body *body)
{
    set_body(rs, status, NULL, 0, content_type);
    rs->stream = body;
    return API_RESPOND;
}

void api_response_header(api_response *rs, const char *name, const char *fmt, ...)
{
    if (rs->n_headers >= API_MAX_HEADERS)
        return;
    rs->headers[rs->n_headers].name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rs->headers[rs->n_headers].value, sizeof rs->headers[0].value, fmt, ap);
    va_end(ap);
    rs->n_headers++;
}

const char *api_query(const api_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *api_header(const api_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

api_result api_respond_store_error(api_response *rs, store *st, const char *what)
{
    const char *why = store_last_error(st);
    if (store_error_is_outage()) {
        log_warn("%s: the job store is unavailable: %s", what, why);
        api_respond_errorf(rs, 503, "store_unavailable", "%s failed: the job store is unavailable; "
                           "retry", what);
        api_response_header(rs, MHD_HTTP_HEADER_RETRY_AFTER, "%d", API_STORE_RETRY_AFTER_S);
        return API_RESPOND;
    }
    log_error("%s: store error: %s", what, why);
    return api_respond_errorf(rs, 500, "internal", "%s failed: store error", what);
}
