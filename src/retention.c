/* Retention sweeps: one at start-up, then periodically. Each sweep is a single DELETE in
 * the store, so it never holds the store for long. */
#include "src/retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/log.h"
#include "src/timeutil.h"

#define SWEEP_INTERVAL_MAX_S 300

struct retention {
    store *st;
    int64_t max_age_ms;
    int64_t interval_s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void sweep(retention *r)
{
    /* Replicas of a shared store take turns: one sweep at a time is enough. */
    if (!store_hold_role(r->st, "retention"))
        return;
    int64_t n = store_delete_finished_before(r->st, time_now_ms() - r->max_age_ms);
    if (n < 0)
        log_error("retention: cannot delete old jobs: %s", store_last_error(r->st));
    else if (n > 0)
        log_info("retention: deleted %lld finished job(s) older than %llds", (long long)n,
                 (long long)(r->max_age_ms / 1000));
}

static void *retention_main(void *arg)
{
    retention *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        pthread_mutex_unlock(&r->mu);
        sweep(r);
        pthread_mutex_lock(&r->mu);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += r->interval_s;
        while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

retention *retention_start(store *st, int64_t max_age_seconds)
{
    retention *r = calloc(1, sizeof *r);
    if (!r) {
        log_error("retention: out of memory; old jobs will not be deleted");
        return NULL;
    }
    r->st = st;
    r->max_age_ms = max_age_seconds * 1000;
    /* Sweep about ten times per retention period, at most every five minutes. */
    r->interval_s = max_age_seconds / 10;
    if (r->interval_s < 1)
        r->interval_s = 1;
    if (r->interval_s > SWEEP_INTERVAL_MAX_S)
        r->interval_s = SWEEP_INTERVAL_MAX_S;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&r->thread, NULL, retention_main, r);
    if (rc != 0) {
        log_error("retention: pthread_create: %s; old jobs will not be deleted", strerror(rc));
        free(r);
        return NULL;
    }
    return r;
}

void retention_stop(retention *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
