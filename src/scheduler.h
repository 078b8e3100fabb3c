/* The scheduler: a fixed set of worker threads that take queued jobs oldest first from
 * the store, run each through its sandbox backend, stream output into the store and
 * record the outcome; admission against the memory budget; plus cancellation, waiting
 * and graceful shutdown. */
#ifndef EXECUTORD_SCHEDULER_H
#define EXECUTORD_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/depcache.h"
#include "src/depinstall.h"
#include "src/store.h"

typedef struct scheduler scheduler;

/* Called (from a worker thread) each time a job reaches a final state. */
typedef void (*job_finished_fn)(void *ctx, const char *job_id);

typedef struct scheduler_options {
    int workers;
    double shutdown_grace_seconds;
    /* The memory limits of running jobs add up to at most this (src/membudget.h); the
     * oldest queued job waits until it fits. 0 = no budget. */
    uint64_t memory_budget_mb;
    /* Jobs' dependencies: the cache their environments are acquired from and how a
     * missing one is installed (src/depcache.h, src/depinstall.h). NULL = no package
     * source is configured: such a job fails (the API refuses new ones). */
    depcache *deps;
    const depinstall_config *deps_install;
} scheduler_options;

scheduler *scheduler_create(store *st, const scheduler_options *opt);
int scheduler_start(scheduler *s, char *err, size_t errlen);
/* Stops taking jobs, lets running ones finish within the grace period, then kills and
 * records the rest; joins the workers. */
void scheduler_stop(scheduler *s);
void scheduler_destroy(scheduler *s);

/* Wake a worker: a job was queued. */
void scheduler_notify(scheduler *s);

/* Several listeners may be registered before start. */
void scheduler_on_finished(scheduler *s, job_finished_fn fn, void *ctx);

typedef enum cancel_rc {
    CANCEL_DONE = 0,       /* the job is now cancelled; *out holds it */
    CANCEL_NOT_FOUND,
    CANCEL_FINISHED,       /* already in a final state; *out holds it */
    CANCEL_ERROR,
} cancel_rc;

/* Cancels a queued job (it never starts) or a running one (its whole tree is killed);
 * waits up to a few seconds for the running job's final state to be recorded. */
cancel_rc scheduler_cancel(scheduler *s, const char *id, job *out);

int scheduler_running_count(scheduler *s);

/* The memory budget and the sum of the memory limits of the jobs running now, in MB. */
void scheduler_memory(scheduler *s, uint64_t *budget_mb, uint64_t *committed_mb);

/* ---- replicas: what src/replica.c tells the scheduler of a shared store ---------- */

/* Another replica (or the lease sweep) made job id final: this replica's listeners (the
 * API's ?wait long-polls) hear of it as of a job ending here. */
void scheduler_job_final_elsewhere(scheduler *s, const char *id);
/* Kills job id if it runs here (its outcome is then recorded cancelled). True if it did. */
bool scheduler_cancel_local(scheduler *s, const char *id);
/* The ids of the jobs running here: at most max. */
int scheduler_running_ids(scheduler *s, char (*ids)[JOB_ID_LEN + 1], int max);
/* Stops, and starts again, taking jobs from the queue (running ones go on); why is shown
 * by scheduler_claims_paused (and /readyz). */
void scheduler_pause_claims(scheduler *s, const char *why);
void scheduler_resume_claims(scheduler *s);
bool scheduler_claims_paused(scheduler *s, char *why, size_t len);

#endif
