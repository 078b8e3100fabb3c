/* The replica loop, for a store several executord instances share (src/store.h,
 * "replicas"; docs/replicas.md): one thread keeps this replica's lease (a heartbeat every
 * quarter of it) and turns the store's events into wake-ups: a queued job wakes the
 * scheduler, a job final elsewhere its ?wait long-polls, a cancel the job if it runs here.
 * While the store cannot be reached, or the lease not renewed, the replica takes no job. */
#include "src/replica.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/log.h"
#include "src/timeutil.h"

#define EVENTS_PER_WAIT 64
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define RUNNING_MAX 1024

struct replica {
    store *st;
    scheduler *sch;
    int64_t lease_ms;
    int64_t beat_every_ms;
    pthread_t thread;
    atomic_bool stop;
    /* monotonic ms of the last heartbeat that worked; 0 = none yet */
    int64_t last_beat_ok;
    /* monotonic ms since when every heartbeat worked (0 = the last one failed): others'
     * leases are judged only once this covers a whole lease, so that after an outage of
     * the store, when every lease looks expired, each live replica has renewed its own
     * first (the backoff never waits longer than a heartbeat's interval) */
    int64_t healthy_since;
    int backoff_ms;       /* the wait before the next try while the store is unreachable */
    bool listening;       /* the event connection worked last time */
};

/* What a cancel event, or a missed one found at a heartbeat, asks of this replica. */
static void cancel_here(replica *r, const char *id)
{
    if (scheduler_cancel_local(r->sch, id))
        log_info("job %s: cancelled at another replica's request", id);
}

static void dispatch(replica *r, const store_event *ev)
{
    switch (ev->kind) {
    case STORE_EVENT_QUEUED:
        scheduler_notify(r->sch);
        break;
    case STORE_EVENT_FINAL:
        scheduler_job_final_elsewhere(r->sch, ev->job_id);
        break;
    case STORE_EVENT_CANCEL:
        cancel_here(r, ev->job_id);
        break;
    case STORE_EVENT_RESYNC:
        log_info("replica: listening to the store again");
        scheduler_notify(r->sch);
        scheduler_job_final_elsewhere(r->sch, NULL); /* long-polls answer with the job as it is */
        break;
    }
}

/* After a gap longer than the lease, the others may have ended this replica's running
 * jobs ExecutorLost: those still running here are killed, not left to compete with the
 * record (their outcome would be refused anyway). */
static void stop_jobs_ended_elsewhere(replica *r)
{
    static char ids[RUNNING_MAX][JOB_ID_LEN + 1];
    int n = scheduler_running_ids(r->sch, ids, RUNNING_MAX);
    for (int i = 0; i < n; i++) {
        job j;
        job_init(&j);
        if (store_get_job(r->st, ids[i], &j) == STORE_OK && job_status_is_final(j.status)) {
            log_warn("job %s ended %s while this replica's lease had lapsed: stopping it here",
                     ids[i], job_status_name(j.status));
            scheduler_cancel_local(r->sch, ids[i]);
        }
        job_free(&j);
    }
}

static void run_pending_cancels(replica *r)
{
    char ids[32][JOB_ID_LEN + 1];
    int n = store_pending_cancels(r->st, ids, 32);
    for (int i = 0; i < n; i++)
        cancel_here(r, ids[i]);
}

static void heartbeat(replica *r)
{
    int64_t now = time_monotonic_ms();
    bool judge = r->healthy_since && now - r->healthy_since >= r->lease_ms;
    int ended = store_heartbeat(r->st, time_now_ms(), judge);
    if (ended < 0) {
        char why[256];
        snprintf(why, sizeof why, "the lease in the job store cannot be renewed: %s",
                 store_last_error(r->st));
        scheduler_pause_claims(r->sch, why);
        r->healthy_since = 0;
        return;
    }
    if (!r->healthy_since)
        r->healthy_since = now;
    bool lapsed = r->last_beat_ok && now - r->last_beat_ok >= r->lease_ms;
    r->last_beat_ok = now;
    if (ended > 0)
        log_warn("replica: %d job(s) of replicas whose lease expired ended failed/ExecutorLost",
                 ended);
    if (lapsed)
        stop_jobs_ended_elsewhere(r);
    run_pending_cancels(r);
    if (r->listening)
        scheduler_resume_claims(r->sch);
    scheduler_notify(r->sch); /* the safety net for a missed QUEUED event */
}

/* The store's events until the next heartbeat is due; backs off while it cannot listen. */
static void listen_until(replica *r, int64_t until)
{
    store_event ev[EVENTS_PER_WAIT];
    int64_t now;
    while (!atomic_load(&r->stop) && (now = time_monotonic_ms()) < until) {
        int wait = (int)(until - now);
        if (!r->listening && wait > r->backoff_ms)
            wait = r->backoff_ms;
        int n = store_wait_events(r->st, r->listening ? wait : 0, ev, EVENTS_PER_WAIT);
        if (n < 0) {
            if (r->listening)
                log_warn("replica: the job store's events cannot be heard: %s",
                         store_last_error(r->st));
            r->listening = false;
            scheduler_pause_claims(r->sch, "the job store cannot be reached");
            struct timespec ts = {wait / 1000, (long)(wait % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !atomic_load(&r->stop))
                ;
            int cap = r->beat_every_ms < BACKOFF_MAX_MS ? (int)r->beat_every_ms : BACKOFF_MAX_MS;
            r->backoff_ms = r->backoff_ms * 2 > cap ? cap : r->backoff_ms * 2;
            return; /* a heartbeat is tried at once: it tells whether the store is back */
        }
        if (!r->listening) {
            r->listening = true;
            r->backoff_ms = BACKOFF_MIN_MS;
            return; /* heartbeat now: it resumes claims */
        }
        for (int i = 0; i < n; i++)
            dispatch(r, &ev[i]);
    }
}

static void *replica_main(void *arg)
{
    replica *r = arg;
    while (!atomic_load(&r->stop)) {
        heartbeat(r);
        listen_until(r, time_monotonic_ms() + r->beat_every_ms);
    }
    return NULL;
}

replica *replica_start(store *st, scheduler *sch, int64_t lease_ms, char *err, size_t errlen)
{
    replica *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->st = st;
    r->sch = sch;
    r->lease_ms = lease_ms;
    r->beat_every_ms = lease_ms / 4 > 0 ? lease_ms / 4 : 1;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->listening = true;
    atomic_init(&r->stop, false);
    int rc = pthread_create(&r->thread, NULL, replica_main, r);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        free(r);
        return NULL;
    }
    return r;
}

void replica_stop(replica *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    free(r);
}
