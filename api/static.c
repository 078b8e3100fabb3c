/* Serves the files built into the binary (api/assets.h). The dashboard shows output of
 * untrusted scripts, so its pages go out with a strict Content-Security-Policy: only our
 * own scripts and styles, no inline code, no framing, requests to this origin only. */
#include "api/static.h"

#include <stdlib.h>
#include <string.h>

#include "api/assets.h"

#define DASHBOARD_CSP                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "      \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const struct api_asset *find_asset(const char *name)
{
    for (int i = 0; i < api_assets_count; i++)
        if (strcmp(api_assets[i].name, name) == 0)
            return &api_assets[i];
    return NULL;
}

/* The body is copied: the response layer frees what it sends. */
static api_result respond_copy(api_response *rs, const char *data, size_t len, const char *type)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return api_respond_errorf(rs, 500, "internal", "out of memory");
    memcpy(copy, data, len);
    api_respond_text(rs, 200, copy, len);
    rs->content_type = type;
    return API_RESPOND;
}

api_result api_static_get(api_request *rq, api_response *rs, const char *name)
{
    const struct api_asset *a = find_asset(name[0] ? name : "index.html");
    if (!a)
        return api_respond_errorf(rs, 404, "not_found", "no such resource");
    respond_copy(rs, a->data, a->len, a->content_type);
    api_response_header(rs, "Content-Security-Policy", "%s", DASHBOARD_CSP);
    api_response_header(rs, "Referrer-Policy", "no-referrer");
    return API_RESPOND;
}

api_result api_static_openapi(api_request *rq, api_response *rs)
{
    respond_copy(rs, api_openapi_yaml, strlen(api_openapi_yaml), "application/yaml; charset=utf-8");
    return API_RESPOND;
}
