/* Requests waiting for a job to end (?wait=): their connections are suspended, listed by
 * job id with a deadline, and resumed when the scheduler reports the job final, when the
 * deadline passes (a timer thread) or when the server stops. No thread per request. */
#ifndef EXECUTORD_API_WAITERS_H
#define EXECUTORD_API_WAITERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "src/job.h"

/* One waiting request; lives inside the request state, linked while suspended. */
typedef struct api_waiter {
    struct api_waiter *prev, *next;
    struct MHD_Connection *conn;
    char job_id[JOB_ID_LEN + 1];
    int64_t deadline_ms;   /* monotonic */
    atomic_bool linked;
} api_waiter;

typedef struct api_waiters api_waiters;

api_waiters *api_waiters_create(char *err, size_t errlen);
/* Call after api_waiters_shutdown and after the daemon stopped. */
void api_waiters_destroy(api_waiters *w);

/* True when the job is final (or gone) now, so there is nothing to wait for. */
typedef bool (*api_waiter_check_fn)(void *ctx);

/* Suspends conn until job_id ends or deadline_ms (monotonic) passes, unless check(ctx),
 * run under the registry lock, says the job is already final: then returns false and
 * nothing is suspended. Running the check under the lock closes the race with a job that
 * ends between the caller's first look and the registration. Must be called from the
 * connection's access handler. */
bool api_waiters_suspend(api_waiters *w, api_waiter *node, struct MHD_Connection *conn,
                         const char *job_id, int64_t deadline_ms, api_waiter_check_fn check,
                         void *ctx);

/* Resumes every request waiting for job_id; NULL: every waiting request (it answers
 * with its job as it is: events about jobs ending were missed). */
void api_waiters_job_finished(api_waiters *w, const char *job_id);

/* A scheduler_on_finished listener (ctx = the api_waiters). Safe to be called after the
 * registry was destroyed: it then does nothing. */
void api_waiters_on_job_finished(void *ctx, const char *job_id);

/* Resumes everything and makes later api_waiters_suspend calls return false. */
void api_waiters_shutdown(api_waiters *w);

/* Unlinks node if it is still linked (request torn down while suspended). */
void api_waiters_forget(api_waiters *w, api_waiter *node);

#endif
