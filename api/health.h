/* Liveness, readiness and backend-state endpoints. */
#ifndef EXECUTORD_API_HEALTH_H
#define EXECUTORD_API_HEALTH_H

#include "api/http.h"

api_result api_health_healthz(api_request *rq, api_response *rs);
api_result api_health_readyz(api_request *rq, api_response *rs);
api_result api_health_backends(api_request *rq, api_response *rs);

#endif
