/* The backend registry, the one list of the backends executord has (their names,
 * descriptions and what each builds on live in each backend's descriptor), and the
 * outcome helpers every backend uses to report how a job ended. */
#include "sandbox/sandbox.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each backend's file defines its descriptor; they are listed here rather than in a
 * header so adding a backend is a one-line change in this file. Order matters: a backend
 * comes after the one it builds on (init runs in this order, shutdown in reverse). */
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

bool sandbox_backend_known(const char *name, size_t len)
{
    for (size_t i = 0; all_backends[i]; i++)
        if (strlen(all_backends[i]->name) == len && strncmp(all_backends[i]->name, name, len) == 0)
            return true;
    return false;
}

static char backend_names[128];

static void join_backend_names(void)
{
    size_t n = 0;
    for (size_t i = 0; all_backends[i]; i++) {
        int w = snprintf(backend_names + n, sizeof backend_names - n, "%s%s", i ? ", " : "",
                         all_backends[i]->name);
        if (w < 0 || (size_t)w >= sizeof backend_names - n)
            break; /* a longer list is cut, never overrun: it is only shown */
        n += (size_t)w;
    }
}

const char *sandbox_backend_names(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, join_backend_names);
    return backend_names;
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
