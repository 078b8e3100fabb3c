/* The job endpoints: submit, list, get, cancel, delete (logs: api/logs.h). */
#ifndef EXECUTORD_API_JOBS_H
#define EXECUTORD_API_JOBS_H

#include "api/http.h"

api_result api_jobs_create(api_request *rq, api_response *rs);
api_result api_jobs_list(api_request *rq, api_response *rs);
api_result api_jobs_get(api_request *rq, api_response *rs);
api_result api_jobs_delete(api_request *rq, api_response *rs);
api_result api_jobs_cancel(api_request *rq, api_response *rs);
/* Answers a request that ?wait= suspended, once resumed: the job as it is now. */
api_result api_jobs_resumed(api_request *rq, api_response *rs);

#endif
