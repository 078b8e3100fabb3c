/* GET /metrics: the Prometheus text exposition of the registry (src/metrics.c) plus the
 * gauges read at scrape time: jobs per status and backend from the store, running jobs,
 * backend availability and the warm pool's state. */
#ifndef EXECUTORD_API_METRICS_H
#define EXECUTORD_API_METRICS_H

#include "api/http.h"

/* The exposition's media type (Prometheus text format 0.0.4). */
#define API_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

api_result api_metrics_get(api_request *rq, api_response *rs);

#endif
