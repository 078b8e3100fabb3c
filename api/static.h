/* The built-in files: the dashboard at / and /ui/<file>, and the spec at /openapi.yaml. */
#ifndef EXECUTORD_API_STATIC_H
#define EXECUTORD_API_STATIC_H

#include "api/http.h"

/* The dashboard's index.html when name is "", else the asset of that name (or 404). */
api_result api_static_get(api_request *rq, api_response *rs, const char *name);
api_result api_static_openapi(api_request *rq, api_response *rs);

#endif
