/* The logs endpoint: bounded windows of a job's stored stdout and stderr. */
#ifndef EXECUTORD_API_LOGS_H
#define EXECUTORD_API_LOGS_H

#include "api/http.h"

api_result api_jobs_logs(api_request *rq, api_response *rs);

#endif
