/* Routing: which endpoint a method and path name, which methods each path allows, and
 * which endpoints need the bearer token. The matching is pure (unit-tested); dispatch
 * runs the checks every request passes before its handler. */
#ifndef EXECUTORD_API_ROUTER_H
#define EXECUTORD_API_ROUTER_H

#include <stdbool.h>

#include "src/job.h"

typedef enum api_route {
    ROUTE_NONE = 0, /* unknown path (404) */
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_BACKENDS,
    ROUTE_JOBS,        /* /v1/jobs */
    ROUTE_JOB,         /* /v1/jobs/{id} */
    ROUTE_JOB_LOGS,    /* /v1/jobs/{id}/logs */
    ROUTE_JOB_CANCEL,  /* /v1/jobs/{id}/cancel */
    ROUTE_DASHBOARD,   /* / and /ui/{file} */
    ROUTE_OPENAPI,     /* /openapi.yaml */
    ROUTE_METRICS,     /* /metrics */
} api_route;

typedef enum api_endpoint {
    EP_NONE = 0,
    EP_HEALTHZ,
    EP_READYZ,
    EP_BACKENDS,
    EP_JOBS_LIST,
    EP_JOBS_CREATE,
    EP_JOB_GET,
    EP_JOB_DELETE,
    EP_JOB_LOGS,
    EP_JOB_CANCEL,
    EP_DASHBOARD,
    EP_OPENAPI,
    EP_METRICS,
} api_endpoint;

typedef struct api_route_match {
    api_route route;          /* ROUTE_NONE: 404 */
    api_endpoint endpoint;    /* EP_NONE with a route: 405 */
    const char *allow;        /* the Allow header value of the route */
    bool needs_auth;
    char job_id[JOB_ID_LEN + 1];
    char asset[64];           /* ROUTE_DASHBOARD: the file name, "" for the page itself */
} api_route_match;

/* Matches an (already percent-decoded) path without its query string. */
void api_route_match_path(const char *method, const char *path, api_route_match *m);

/* The route's pattern ("/v1/jobs/{id}", "/ui/{file}"; "other" for unknown paths): a
 * metric label that never carries a raw path, so its values stay few. Static text. */
const char *api_route_label(const api_route_match *m);

#endif
