/* JSON rendering of what the API returns: jobs (full and list forms), logs, backends'
 * states and error bodies. Builds jansson values; the response layer serialises them. */
#ifndef EXECUTORD_API_RENDER_H
#define EXECUTORD_API_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "api/error.h"
#include "src/job.h"

/* The job as the contract shows it. full = include "script" and "inputs". NULL only when
 * out of memory. */
json_t *api_render_job(const job *j, bool full);

/* {"job_id","status","stdout","stderr","stdout_bytes","stderr_bytes",...}: the text is
 * repaired to valid UTF-8 (U+FFFD) first. */
json_t *api_render_logs(const job *j, const char *out, size_t outlen, const char *err,
                        size_t errlen);

/* {"error": {"code","message"[,"field"]}} */
json_t *api_render_error(const api_error *e);

#endif
