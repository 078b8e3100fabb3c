/* The route table: each path pattern, the methods it allows (its Allow header) and
 * whether it needs the bearer token. Pure string matching, no HTTP library involved. */
#include "api/router.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct route_def {
    api_route route;
    const char *pattern; /* the metric label; "/" and "/ui/{file}" share ROUTE_DASHBOARD */
    const char *allow;
    bool needs_auth;
    struct {
        const char *method;
        api_endpoint endpoint;
    } methods[2];
} route_def;

static const route_def routes[] = {
    {ROUTE_HEALTHZ, "/healthz", "GET", false, {{"GET", EP_HEALTHZ}, {NULL, EP_NONE}}},
    {ROUTE_READYZ, "/readyz", "GET", false, {{"GET", EP_READYZ}, {NULL, EP_NONE}}},
    {ROUTE_BACKENDS, "/v1/backends", "GET", true, {{"GET", EP_BACKENDS}, {NULL, EP_NONE}}},
    {ROUTE_JOBS, "/v1/jobs", "GET, POST", true, {{"GET", EP_JOBS_LIST}, {"POST", EP_JOBS_CREATE}}},
    {ROUTE_JOB, "/v1/jobs/{id}", "GET, DELETE", true, {{"GET", EP_JOB_GET}, {"DELETE", EP_JOB_DELETE}}},
    {ROUTE_JOB_LOGS, "/v1/jobs/{id}/logs", "GET", true, {{"GET", EP_JOB_LOGS}, {NULL, EP_NONE}}},
    {ROUTE_JOB_CANCEL, "/v1/jobs/{id}/cancel", "POST", true, {{"POST", EP_JOB_CANCEL}, {NULL, EP_NONE}}},
    /* The dashboard's files carry no data; the page asks for the token itself. */
    {ROUTE_DASHBOARD, "/", "GET", false, {{"GET", EP_DASHBOARD}, {NULL, EP_NONE}}},
    {ROUTE_OPENAPI, "/openapi.yaml", "GET", false, {{"GET", EP_OPENAPI}, {NULL, EP_NONE}}},
    /* Job counts and rates are operational data: behind the token like /v1 (Prometheus
     * sends it with `authorization: {credentials_file: ...}`). */
    {ROUTE_METRICS, "/metrics", "GET", true, {{"GET", EP_METRICS}, {NULL, EP_NONE}}},
};

/* "/ui/<name>": a plain file name (letters, digits, '-', '_', one '.'), never a path. */
static bool asset_name(const char *name, char out[64])
{
    size_t n = strnlen(name, 64);
    if (n == 0 || n >= 64)
        return false;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.')
            dots++;
        else if (!isalnum((unsigned char)c) && c != '-' && c != '_')
            return false;
    }
    if (dots != 1 || name[0] == '.')
        return false;
    memcpy(out, name, n + 1);
    return true;
}

static api_route path_route(const char *path, char job_id[JOB_ID_LEN + 1], char asset[64])
{
    if (strcmp(path, "/") == 0)
        return ROUTE_DASHBOARD;
    if (strncmp(path, "/ui/", 4) == 0)
        return asset_name(path + 4, asset) ? ROUTE_DASHBOARD : ROUTE_NONE;
    if (strcmp(path, "/openapi.yaml") == 0)
        return ROUTE_OPENAPI;
    if (strcmp(path, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(path, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strcmp(path, "/readyz") == 0)
        return ROUTE_READYZ;
    if (strcmp(path, "/v1/backends") == 0)
        return ROUTE_BACKENDS;
    if (strcmp(path, "/v1/jobs") == 0)
        return ROUTE_JOBS;
    static const char prefix[] = "/v1/jobs/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return ROUTE_NONE;
    const char *id = path + sizeof prefix - 1;
    /* A canonical UUID is exactly JOB_ID_LEN characters; anything else is not a job. */
    if (strnlen(id, JOB_ID_LEN + 1) < JOB_ID_LEN)
        return ROUTE_NONE;
    char candidate[JOB_ID_LEN + 1];
    memcpy(candidate, id, JOB_ID_LEN);
    candidate[JOB_ID_LEN] = '\0';
    if (!job_id_valid(candidate))
        return ROUTE_NONE;
    const char *rest = id + JOB_ID_LEN;
    api_route r;
    if (*rest == '\0')
        r = ROUTE_JOB;
    else if (strcmp(rest, "/logs") == 0)
        r = ROUTE_JOB_LOGS;
    else if (strcmp(rest, "/cancel") == 0)
        r = ROUTE_JOB_CANCEL;
    else
        return ROUTE_NONE;
    memcpy(job_id, candidate, JOB_ID_LEN + 1);
    return r;
}

void api_route_match_path(const char *method, const char *path, api_route_match *m)
{
    memset(m, 0, sizeof *m);
    m->route = path_route(path ? path : "", m->job_id, m->asset);
    if (m->route == ROUTE_NONE)
        return;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (routes[i].route != m->route)
            continue;
        m->allow = routes[i].allow;
        m->needs_auth = routes[i].needs_auth;
        for (int k = 0; k < 2; k++)
            if (routes[i].methods[k].method && method &&
                strcmp(routes[i].methods[k].method, method) == 0)
                m->endpoint = routes[i].methods[k].endpoint;
    }
}

const char *api_route_label(const api_route_match *m)
{
    if (m->route == ROUTE_DASHBOARD && m->asset[0])
        return "/ui/{file}";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (routes[i].route == m->route)
            return routes[i].pattern;
    return "other";
}
