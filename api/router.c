/* Dispatch by endpoint and the checks every request passes before its handler: a Host
 * that does not name us 421, unknown path 404, wrong method 405 with Allow, a browser
 * request from another origin 403, missing or wrong token 401, and for submissions the
 * shutdown, media-type and size rules that can be decided from the headers alone. */
#include "api/router.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/auth.h"
#include "api/health.h"
#include "api/http.h"
#include "api/jobs.h"
#include "api/logs.h"
#include "api/metrics.h"
#include "api/origin.h"
#include "api/static.h"

/* application/json or application/<x>+json; parameters such as charset are ignored.
 * Never a type a web page may send without a CORS preflight (form-urlencoded,
 * multipart/form-data, text/plain): the body is JSON, and only JSON is read as JSON. */
static bool media_type_accepted(const char *value)
{
    char type[128];
    size_t n = 0;
    while (*value == ' ' || *value == '\t')
        value++;
    for (; *value && *value != ';' && n < sizeof type - 1; value++)
        type[n++] = (char)tolower((unsigned char)*value);
    while (n > 0 && (type[n - 1] == ' ' || type[n - 1] == '\t'))
        n--;
    type[n] = '\0';
    if (strcmp(type, "application/json") == 0)
        return true;
    static const char app[] = "application/", suffix[] = "+json";
    size_t la = sizeof app - 1, ls = sizeof suffix - 1;
    return n > la + ls && strncmp(type, app, la) == 0 && strcmp(type + n - ls, suffix) == 0;
}

/* Seconds a client is asked to wait before resubmitting to an instance that is stopping. */
#define SHUTDOWN_RETRY_AFTER_S 5

static api_result precheck_submission(api_request *rq, api_response *rs)
{
    const config *cfg = rq->srv->cfg;
    if (atomic_load(&rq->srv->refusing)) {
        api_respond_errorf(rs, 503, "shutting_down",
                           "the service is shutting down and accepts no new jobs");
        /* A restarted instance (or another behind the same address) usually answers by
         * then; the job was not stored, so the retry is safe. */
        api_response_header(rs, MHD_HTTP_HEADER_RETRY_AFTER, "%d", SHUTDOWN_RETRY_AFTER_S);
        return API_RESPOND;
    }
    const char *ctype = api_header(rq, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ctype || !media_type_accepted(ctype))
        return api_respond_errorf(rs, 415, "unsupported_media_type",
                                  "Content-Type must be application/json (curl: --json '{...}')");
    const char *clen = api_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen) {
        char *end = NULL;
        unsigned long long n = strtoull(clen, &end, 10);
        if (end != clen && n > cfg->max_body_bytes)
            return api_respond_errorf(rs, 413, "body_too_large",
                                      "request body is larger than %" PRIu64 " bytes",
                                      cfg->max_body_bytes);
    }
    return API_CONTINUE;
}

api_result api_router_precheck(api_request *rq, api_response *rs)
{
    const api_route_match *m = &rq->match;
    const config *cfg = rq->srv->cfg;
    const char *host = api_header(rq, MHD_HTTP_HEADER_HOST);
    if (!api_host_allowed(cfg, host))
        return api_respond_errorf(rs, 421, "host_not_allowed",
                                  "this service does not answer to the host name in the Host header; "
                                  "the operator can allow it with --allowed-host NAME");
    if (m->route == ROUTE_NONE)
        return api_respond_errorf(rs, 404, "not_found", "no such resource");
    if (m->endpoint == EP_NONE) {
        api_respond_errorf(rs, 405, "method_not_allowed", "method %s is not allowed here (allowed: %s)",
                           rq->method, m->allow);
        api_response_header(rs, MHD_HTTP_HEADER_ALLOW, "%s", m->allow);
        return API_RESPOND;
    }
    /* Before the token check: a page must not even learn whether its guess was right. */
    if (m->needs_auth && api_cross_origin(host, api_header(rq, "Origin"), api_header(rq, "Sec-Fetch-Site")))
        return api_respond_errorf(rs, 403, "cross_origin",
                                  "requests from another web origin are refused: the API answers its "
                                  "own dashboard and clients that are not browsers");
    if (m->needs_auth && !api_auth_ok(cfg->api_token, api_header(rq, MHD_HTTP_HEADER_AUTHORIZATION))) {
        api_respond_errorf(rs, 401, "unauthorized",
                           "a valid token is required: Authorization: Bearer <token>");
        api_response_header(rs, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        return API_RESPOND;
    }
    if (m->endpoint == EP_JOBS_CREATE)
        return precheck_submission(rq, rs);
    return API_CONTINUE;
}

api_result api_router_dispatch(api_request *rq, api_response *rs)
{
    if (rq->suspended_once)
        return api_jobs_resumed(rq, rs);
    switch (rq->match.endpoint) {
    case EP_HEALTHZ: return api_health_healthz(rq, rs);
    case EP_READYZ: return api_health_readyz(rq, rs);
    case EP_BACKENDS: return api_health_backends(rq, rs);
    case EP_JOBS_LIST: return api_jobs_list(rq, rs);
    case EP_JOBS_CREATE: return api_jobs_create(rq, rs);
    case EP_JOB_GET: return api_jobs_get(rq, rs);
    case EP_JOB_DELETE: return api_jobs_delete(rq, rs);
    case EP_JOB_LOGS: return api_jobs_logs(rq, rs);
    case EP_JOB_CANCEL: return api_jobs_cancel(rq, rs);
    case EP_DASHBOARD: return api_static_get(rq, rs, rq->match.asset);
    case EP_OPENAPI: return api_static_openapi(rq, rs);
    case EP_METRICS: return api_metrics_get(rq, rs);
    case EP_NONE: break;
    }
    return api_respond_errorf(rs, 404, "not_found", "no such resource");
}
