/* The waiter registry: suspended connections keyed by job id with deadlines. Woken by the
 * scheduler's job-finished listener, by a timer thread for deadlines, and at shutdown.
 * MHD_resume_connection is thread-safe (it signals the daemon's polling thread). */
#include "api/waiters.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/log.h"
#include "src/timeutil.h"

struct api_waiters {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* the timer thread sleeps on it (CLOCK_MONOTONIC) */
    api_waiter head;          /* circular list sentinel */
    bool closed;              /* shutdown: nothing may suspend any more */
    bool stop_timer;
    pthread_t timer;
    struct api_waiters *next_live;
};

/* Registries still alive, so a listener called after destroy (the scheduler outlives
 * the server in some shutdown orders) can tell and do nothing. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static api_waiters *live_head;

static void unlink_node(api_waiter *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
    atomic_store(&n->linked, false);
}

/* Unlinks and resumes; the registry lock is held. */
static void wake(api_waiter *n)
{
    struct MHD_Connection *conn = n->conn;
    unlink_node(n);
    MHD_resume_connection(conn);
}

static void *timer_main(void *arg)
{
    api_waiters *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop_timer) {
        int64_t now = time_monotonic_ms();
        int64_t next = now + 60000;
        for (api_waiter *n = w->head.next, *nx; n != &w->head; n = nx) {
            nx = n->next;
            if (n->deadline_ms <= now)
                wake(n);
            else if (n->deadline_ms < next)
                next = n->deadline_ms;
        }
        struct timespec ts = {.tv_sec = (time_t)(next / 1000),
                              .tv_nsec = (long)(next % 1000) * 1000000L};
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (rc != 0 && rc != ETIMEDOUT)
            log_error("waiters: pthread_cond_timedwait: %s", strerror(rc));
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

api_waiters *api_waiters_create(char *err, size_t errlen)
{
    api_waiters *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "waiters: calloc: %s", strerror(errno));
        return NULL;
    }
    w->head.next = w->head.prev = &w->head;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&w->timer, NULL, timer_main, w);
    if (rc != 0) {
        snprintf(err, errlen, "waiters: pthread_create: %s", strerror(rc));
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    pthread_mutex_lock(&live_mu);
    w->next_live = live_head;
    live_head = w;
    pthread_mutex_unlock(&live_mu);
    return w;
}

void api_waiters_shutdown(api_waiters *w)
{
    pthread_mutex_lock(&w->mu);
    w->closed = true;
    while (w->head.next != &w->head)
        wake(w->head.next);
    pthread_mutex_unlock(&w->mu);
}

void api_waiters_destroy(api_waiters *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&live_mu);
    for (api_waiters **p = &live_head; *p; p = &(*p)->next_live) {
        if (*p == w) {
            *p = w->next_live;
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);

    api_waiters_shutdown(w);
    pthread_mutex_lock(&w->mu);
    w->stop_timer = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->timer, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

bool api_waiters_suspend(api_waiters *w, api_waiter *node, struct MHD_Connection *conn,
                         const char *job_id, int64_t deadline_ms, api_waiter_check_fn check,
                         void *ctx)
{
    pthread_mutex_lock(&w->mu);
    if (w->closed || deadline_ms <= time_monotonic_ms() || check(ctx)) {
        pthread_mutex_unlock(&w->mu);
        return false;
    }
    node->conn = conn;
    snprintf(node->job_id, sizeof node->job_id, "%s", job_id);
    node->deadline_ms = deadline_ms;
    /* Suspend before linking: anything that finds the node may resume it at once. */
    MHD_suspend_connection(conn);
    node->next = &w->head;
    node->prev = w->head.prev;
    w->head.prev->next = node;
    w->head.prev = node;
    atomic_store(&node->linked, true);
    pthread_cond_signal(&w->cv); /* the timer may need to wake earlier */
    pthread_mutex_unlock(&w->mu);
    return true;
}

void api_waiters_job_finished(api_waiters *w, const char *job_id)
{
    pthread_mutex_lock(&w->mu);
    for (api_waiter *n = w->head.next, *nx; n != &w->head; n = nx) {
        nx = n->next;
        if (!job_id || strcmp(n->job_id, job_id) == 0)
            wake(n);
    }
    pthread_mutex_unlock(&w->mu);
}

void api_waiters_on_job_finished(void *ctx, const char *job_id)
{
    pthread_mutex_lock(&live_mu);
    for (api_waiters *w = live_head; w; w = w->next_live) {
        if (w == ctx) {
            api_waiters_job_finished(w, job_id);
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

void api_waiters_forget(api_waiters *w, api_waiter *node)
{
    /* Normally never linked here: every waiter is resumed (and unlinked) before its
     * request can complete. Checked without the lock first so the common path does not
     * take it from MHD's completion callback. */
    if (!atomic_load(&node->linked))
        return;
    pthread_mutex_lock(&w->mu);
    if (atomic_load(&node->linked))
        unlink_node(node);
    pthread_mutex_unlock(&w->mu);
}
