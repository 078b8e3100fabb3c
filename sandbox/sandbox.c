/* The backend registry (which backends are compiled in) and the outcome helpers every
 * backend uses to report how a job ended. */
#include "sandbox/sandbox.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each backend's file defines its descriptor; they are listed here rather than in a
 * header so adding a backend is a one-line change in this file. */
extern const sandbox_backend sandbox_backend_direct;
extern const sandbox_backend sandbox_backend_ephemeral;
extern const sandbox_backend sandbox_backend_pool;

static const sandbox_backend *const all_backends[] = {
    &sandbox_backend_direct,
    &sandbox_backend_ephemeral,
    &sandbox_backend_pool,
    NULL,
};

const sandbox_backend *sandbox_backend_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; all_backends[i]; i++)
        if (strcmp(all_backends[i]->name, name) == 0)
            return all_backends[i];
    return NULL;
}

const sandbox_backend *const *sandbox_backends_all(void)
{
    return all_backends;
}

void sandbox_outcome_init(sandbox_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->verdict = SANDBOX_SETUP_ERROR;
    out->exit_code = -1;
    out->signal = 0;
    out->usage.memory_peak_bytes = -1;
    out->usage.cgroup_cpu_ms = -1;
    out->usage.oom_kills = -1;
}

void sandbox_outcome_free(sandbox_outcome *out)
{
    free(out->result_json);
    free(out->error_type);
    free(out->error_message);
    free(out->error_traceback);
    sandbox_outcome_init(out);
}

void sandbox_outcome_set_error(sandbox_outcome *out, const char *type, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    free(out->error_type);
    free(out->error_message);
    out->error_type = type ? strdup(type) : NULL;
    /* Allocation failure leaves a NULL message; job_apply_outcome fills a default. */
    out->error_message = msg;
}
