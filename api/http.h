/* What the api/ files share inside the HTTP layer: the server state, one request's state
 * across libmicrohttpd callbacks, and the response a handler builds. Not used outside api/. */
#ifndef EXECUTORD_API_HTTP_H
#define EXECUTORD_API_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api/body.h"
#include "api/deadline.h"
#include "api/error.h"
#include "api/router.h"
#include "api/server.h"
#include "api/validate.h"
#include "api/waiters.h"
#include "src/config.h"
#include "src/scheduler.h"
#include "src/store.h"

struct api_server {
    const config *cfg;
    store *st;
    scheduler *sch;
    struct MHD_Daemon *daemon;
    int port;
    atomic_bool refusing;          /* shutdown began: POST /v1/jobs gets 503 */
    atomic_int waiting_requests;   /* suspended (or resumed, not yet answered) requests */
    api_waiters *waiters;
    const api_backend_checks *backends;
    api_deadline *deadline;        /* the header deadline against slowloris clients */
};

typedef struct api_request {
    api_server *srv;
    struct MHD_Connection *conn;
    const char *method;            /* = method_buf */
    char method_buf[16];
    char path[96];                 /* for the access log (possibly cut) */
    api_route_match match;
    int64_t started_ms;            /* monotonic, for the access log */
    unsigned int status;           /* what we answered, for the access log */
    /* A refusal decided on the headers of a request without a body: sent on the final
     * call, so the connection can stay open. */
    struct api_response *early;

    char *body;                    /* POST /v1/jobs only; NUL-terminated */
    size_t body_len, body_cap;
    bool body_too_large;
    uint64_t discarded;            /* bytes dropped after body_too_large */

    /* ?wait=: the connection is suspended until the job ends or the deadline passes,
     * then the handler runs again and answers with the job as it is by then. */
    api_waiter waiter;
    bool suspended_once;
    unsigned int wait_status;      /* 200 or 201 once resumed */
} api_request;

#define API_MAX_HEADERS 8

/* Retry-After on 507 insufficient_storage (api/jobs.c). */
#define API_STORAGE_RETRY_AFTER_S 10

typedef struct api_response {
    unsigned int status;
    char *body;                    /* malloc'd; NULL with len 0 = no body */
    size_t len;
    api_body *stream;              /* instead of body: produced while it is sent */
    const char *content_type;      /* static */
    struct {
        const char *name;          /* static */
        char value[256];
    } headers[API_MAX_HEADERS];
    int n_headers;
} api_response;

typedef enum api_result {
    API_CONTINUE = 0,  /* nothing answered yet */
    API_RESPOND,       /* *rs holds the answer */
    API_SUSPENDED,     /* the connection is suspended; the handler runs again on resume */
} api_result;

/* --- response.c ------------------------------------------------------------------- */
void api_response_init(api_response *rs);
void api_response_free(api_response *rs);
/* Serialises doc (reference stolen); a NULL doc becomes a 500. Returns API_RESPOND. */
api_result api_respond_json(api_response *rs, unsigned int status, json_t *doc);
api_result api_respond_error(api_response *rs, const api_error *e);
api_result api_respond_errorf(api_response *rs, unsigned int status, const char *code,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A store operation failed with STORE_ERROR (logged with the store's text): 503
 * store_unavailable with Retry-After while a shared store's server or connection is out
 * (store_error_is_outage: the request may simply be sent again), else 500. */
#define API_STORE_RETRY_AFTER_S 1
api_result api_respond_store_error(api_response *rs, store *st, const char *what);
/* Takes ownership of the malloc'd data. */
api_result api_respond_text(api_response *rs, unsigned int status, char *data, size_t len);
api_result api_respond_empty(api_response *rs, unsigned int status);
/* Takes ownership of the body, which is read from the store as the client takes it. */
api_result api_respond_stream(api_response *rs, unsigned int status, const char *content_type,
                              api_body *body);
void api_response_header(api_response *rs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A query parameter of the request, NULL when absent. */
const char *api_query(const api_request *rq, const char *name);
const char *api_header(const api_request *rq, const char *name);

/* --- router.c --------------------------------------------------------------------- */
/* Checks done when the headers are in (route, auth, shutdown, media type, size):
 * API_RESPOND with the refusal, or API_CONTINUE. */
api_result api_router_precheck(api_request *rq, api_response *rs);
/* Runs the handler once the whole request is in. */
api_result api_router_dispatch(api_request *rq, api_response *rs);

#endif
