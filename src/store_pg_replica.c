/* Replicas sharing the PostgreSQL store: registration and leases (set_replica,
 * heartbeat: the survivors end a dead replica's running jobs failed/ExecutorLost), the
 * events replicas learn of each other's changes by (LISTEN on a connection of its own,
 * RESYNC after a reconnect), cancels asked of the replica running a job, and singleton
 * roles held as session advisory locks on another connection of its own. */
#include "src/store_pg.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/timeutil.h"

#define CHANNEL_QUEUE "executord_queue"
#define CHANNEL_FINAL "executord_final"
#define CHANNEL_CANCEL "executord_cancel"
/* Leases are written and judged by the database server's clock, never a replica's: the
 * replicas' hosts may disagree on the time, the server is one. */
#define PG_NOW_MS "(floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint"

/* ---- registration ------------------------------------------------------------------- */

typedef struct register_args {
    int64_t now_ms;
    int64_t seen_until;  /* the lease found on the id's row at the last attempt; 0: none */
    bool waited;         /* an earlier attempt found it held and waited for it to lapse */
    char *err;
    size_t errlen;
} register_args;

/* Takes the id's lease unless another live process holds it: a row with that id, an
 * unexpired lease and another start time. Such a lease may be a previous life of this
 * replica that died without a word (a restart within the lease): so the first time, the
 * caller waits for it to lapse and asks again; a lease renewed meanwhile is a live one. */
static store_rc register_replica(pg_store *s, pg_conn *c, void *arg)
{
    register_args *a = arg;
    pg_params p;
    pp_init(&p);
    PGresult *r = pg_exec(s, c, "SELECT " PG_NOW_MS, &p, "reading the server's clock");
    if (!r)
        return STORE_ERROR;
    a->now_ms = pg_i64(r, 0, 0);
    PQclear(r);
    pp_text(&p, s->replica_id);
    r = pg_exec(s, c, "SELECT lease_until_ms, started_at_ms FROM replicas WHERE id = $1"
                          " FOR UPDATE", &p, "registering the replica");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    int64_t until = PQntuples(r) > 0 ? pg_i64(r, 0, 0) : 0;
    bool held = PQntuples(r) > 0 && until >= a->now_ms && pg_i64(r, 0, 1) != s->started_at_ms;
    PQclear(r);
    if (held && (!a->waited || until != a->seen_until)) {
        a->seen_until = until;
        if (!a->waited)
            return STORE_EXISTS; /* wait for it to lapse, then again */
        snprintf(a->err, a->errlen,
                 "replica id '%s' is in use by another live executord (it renews its lease): "
                 "give each replica its own --replica-id", s->replica_id);
        return STORE_CONFLICT;
    }
    pp_init(&p);
    pp_text(&p, s->replica_id);
    pp_i64(&p, a->now_ms + s->lease_ms);
    pp_i64(&p, s->started_at_ms);
    store_rc rc = pg_cmd(s, c, "INSERT INTO replicas (id, lease_until_ms, started_at_ms)"
                         " VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET"
                         " lease_until_ms = EXCLUDED.lease_until_ms,"
                         " started_at_ms = EXCLUDED.started_at_ms", &p, "registering the replica");
    pp_free(&p);
    return rc;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int pg_set_replica(void *self, const char *replica_id, int64_t lease_ms, char *err,
                   size_t errlen)
{
    pg_store *s = self;
    snprintf(s->replica_id, sizeof s->replica_id, "%s", replica_id);
    s->lease_ms = lease_ms;
    err[0] = '\0';
    register_args a = {0, 0, false, err, errlen};
    store_rc r = pg_tx(s, register_replica, &a);
    if (r == STORE_EXISTS) {
        /* Until just past the lease found (at most one lease from now). */
        int64_t wait = a.seen_until - a.now_ms + 100;
        sleep_ms(wait < 0 ? 0 : wait > lease_ms + 100 ? lease_ms + 100 : wait);
        a.waited = true;
        r = pg_tx(s, register_replica, &a);
    }
    if (r == STORE_OK)
        return 0;
    if (!err[0])
        snprintf(err, errlen, "registering replica '%s': %s", replica_id, store_error_text());
    return -1;
}

/* ---- heartbeat ---------------------------------------------------------------------- */

/* Renews this replica's lease ($1 = its id, $2 = the lease's length, $3 = its start time;
 * re-registers a replica that was presumed dead and forgotten). */
#define SQL_RENEW                                                                           \
    "INSERT INTO replicas (id, lease_until_ms, started_at_ms) VALUES ($1, " PG_NOW_MS " + $2, $3)" \
    " ON CONFLICT (id) DO UPDATE SET lease_until_ms = EXCLUDED.lease_until_ms"
/* Replicas whose lease ended before now by the server's clock (not this one, $2; $1 is
 * the jobs' finish time, by this replica's clock like every other time of a job): forgotten, and their running
 * jobs ended ExecutorLost, each notified. SKIP LOCKED: a replica another survivor is
 * ending right now is left to it; the jobs' status condition, re-checked after any wait,
 * keeps a job from being ended twice. Jobs running on a replica with no row at all (it
 * was forgotten while one of its claims was committing) end the same way. */
#define SQL_EXPIRE                                                                          \
    "WITH dead AS (DELETE FROM replicas WHERE id IN (SELECT id FROM replicas"               \
    " WHERE lease_until_ms < " PG_NOW_MS " AND id <> $2 FOR UPDATE SKIP LOCKED) RETURNING id)," \
    " lost AS (UPDATE jobs SET " PG_LOST_SET " WHERE status = 'running'"                    \
    " AND running_on IS NOT NULL AND running_on <> $2 AND (running_on IN (SELECT id FROM dead)" \
    " OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = jobs.running_on))"               \
    " RETURNING id) SELECT pg_notify('" CHANNEL_FINAL "', id) FROM lost"

typedef struct beat_args {
    int64_t now_ms;
    bool end_expired;
    int ended;
} beat_args;

static store_rc beat(pg_store *s, pg_conn *c, void *arg)
{
    beat_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, s->replica_id);
    pp_i64(&p, s->lease_ms);
    pp_i64(&p, s->started_at_ms);
    store_rc rc = pg_cmd(s, c, SQL_RENEW, &p, "renewing the lease");
    pp_free(&p);
    if (rc != STORE_OK || !a->end_expired)
        return rc;
    pp_init(&p);
    pp_i64(&p, a->now_ms);
    pp_text(&p, s->replica_id);
    PGresult *r = pg_exec(s, c, SQL_EXPIRE, &p, "ending the jobs of expired replicas");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    a->ended = PQntuples(r);
    PQclear(r);
    return STORE_OK;
}

int pg_heartbeat(void *self, int64_t now_ms, bool end_expired)
{
    pg_store *s = self;
    if (!s->replica_id[0]) {
        store_set_error("heartbeat before store_set_replica");
        return -1;
    }
    beat_args a = {now_ms ? now_ms : time_now_ms(), end_expired, 0};
    return pg_tx(s, beat, &a) == STORE_OK ? a.ended : -1;
}

/* ---- cancels ------------------------------------------------------------------------ */

static store_rc ask_cancel(pg_store *s, pg_conn *c, void *arg)
{
    const char *id = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, id);
    PGresult *r = pg_exec(s, c, "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND"
                          " status = 'running' RETURNING pg_notify('" CHANNEL_CANCEL "', id)",
                          &p, "asking for a cancel");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    bool asked = PQntuples(r) > 0;
    PQclear(r);
    if (asked)
        return STORE_OK;
    job_status cur;
    store_rc rc = pg_status_of(s, c, id, &cur);
    if (rc == STORE_OK) {
        store_set_error("cancelling job %s: it is %s, not running", id, job_status_name(cur));
        rc = STORE_CONFLICT;
    }
    return rc;
}

store_rc pg_request_cancel(void *self, const char *id)
{
    return pg_tx(self, ask_cancel, (void *)id);
}

typedef struct pending_args {
    char (*ids)[JOB_ID_LEN + 1];
    int max, n;
} pending_args;

static store_rc pending(pg_store *s, pg_conn *c, void *arg)
{
    pending_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, s->replica_id);
    pp_i64(&p, a->max);
    PGresult *r = pg_exec(s, c, "SELECT id FROM jobs WHERE status = 'running' AND running_on = $1"
                          " AND cancel_requested ORDER BY seq LIMIT $2", &p,
                          "reading the cancels asked");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(r) && a->n < a->max; i++)
        snprintf(a->ids[a->n++], JOB_ID_LEN + 1, "%s", pg_val(r, i, 0) ? pg_val(r, i, 0) : "");
    PQclear(r);
    return STORE_OK;
}

int pg_pending_cancels(void *self, char (*ids)[JOB_ID_LEN + 1], int max)
{
    pending_args a = {ids, max, 0};
    if (max <= 0)
        return 0;
    return pg_read(self, false, pending, &a) == STORE_OK ? a.n : -1;
}

/* ---- events ------------------------------------------------------------------------- */

static void drop_listen(pg_store *s)
{
    if (s->listen)
        PQfinish(s->listen);
    s->listen = NULL;
}

/* A new listening connection; a RESYNC is owed when it replaces a lost one. */
static int listen_connect(pg_store *s)
{
    PGconn *db = pg_connect(s);
    if (!db)
        return -1;
    PGresult *r = PQexec(db, "LISTEN " CHANNEL_QUEUE "; LISTEN " CHANNEL_FINAL "; LISTEN "
                         CHANNEL_CANCEL);
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        pg_conn c = {.db = db};
        pg_fail(s, &c, r, "listening for events");
        store_set_outage("%s", store_error_text());
    }
    PQclear(r);
    if (!ok || PQsetnonblocking(db, 1) != 0) {
        PQfinish(db);
        return -1;
    }
    s->listen = db;
    /* Events between the last one read and now were missed: but for the first
     * connection, which missed nothing anyone could have waited for. */
    s->resync = s->listened_once;
    s->listened_once = true;
    return 0;
}

static void to_event(const PGnotify *n, store_event *e)
{
    memset(e, 0, sizeof *e);
    if (strcmp(n->relname, CHANNEL_FINAL) == 0)
        e->kind = STORE_EVENT_FINAL;
    else if (strcmp(n->relname, CHANNEL_CANCEL) == 0)
        e->kind = STORE_EVENT_CANCEL;
    else
        e->kind = STORE_EVENT_QUEUED;
    if (e->kind != STORE_EVENT_QUEUED)
        snprintf(e->job_id, sizeof e->job_id, "%s", n->extra ? n->extra : "");
}

/* A QUEUED notification this replica's own insert sent (its payload is the inserting
 * replica's id): the API woke the local scheduler already, so it is not an event here. */
static bool own_queued(const pg_store *s, const PGnotify *n)
{
    return s->replica_id[0] && strcmp(n->relname, CHANNEL_QUEUE) == 0 && n->extra &&
           strcmp(n->extra, s->replica_id) == 0;
}

/* The notifications libpq has read, into out. QUEUED events are merged: one says it all;
 * this replica's own are dropped. */
static int drain(pg_store *s, store_event *out, int max, int n)
{
    PGnotify *note;
    bool queued = false;
    for (int i = 0; i < n; i++)
        queued |= out[i].kind == STORE_EVENT_QUEUED;
    while (n < max && (note = PQnotifies(s->listen))) {
        store_event e;
        bool own = own_queued(s, note);
        to_event(note, &e);
        PQfreemem(note);
        if (own || (e.kind == STORE_EVENT_QUEUED && queued))
            continue;
        queued |= e.kind == STORE_EVENT_QUEUED;
        out[n++] = e;
    }
    return n;
}

static int listen_lost(pg_store *s, const char *what)
{
    store_set_outage("waiting for events: %s: the connection to PostgreSQL at %s was lost",
                     what, s->redacted);
    drop_listen(s);
    s->listened_once = true;
    return -1;
}

int pg_wait_events(void *self, int timeout_ms, store_event *out, int max)
{
    pg_store *s = self;
    if (max <= 0)
        return 0;
    if (!s->listen && listen_connect(s) != 0)
        return -1;
    int n = 0;
    if (s->resync) {
        s->resync = false;
        memset(&out[0], 0, sizeof out[0]);
        out[n++].kind = STORE_EVENT_RESYNC;
    }
    if (!PQconsumeInput(s->listen))
        return listen_lost(s, "reading");
    n = drain(s, out, max, n);
    if (n > 0)
        return n;
    int64_t deadline = time_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = deadline - time_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = PQsocket(s->listen), .events = POLLIN};
        if (pfd.fd < 0)
            return listen_lost(s, "no socket");
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return listen_lost(s, strerror(errno));
        if (rc == 0)
            return 0;
        if (!PQconsumeInput(s->listen) || PQstatus(s->listen) != CONNECTION_OK)
            return listen_lost(s, "reading");
        n = drain(s, out, max, 0);
        if (n > 0)
            return n;
    }
}

/* ---- roles -------------------------------------------------------------------------- */

static void drop_roles(pg_store *s)
{
    if (s->role)
        PQfinish(s->role);
    s->role = NULL;
    s->nroles = 0;
}

static int held_index(pg_store *s, const char *role)
{
    for (int i = 0; i < s->nroles; i++)
        if (strcmp(s->roles[i], role) == 0)
            return i;
    return -1;
}

/* One statement on the role connection: its single value, or NULL (the connection is then
 * dropped: every role it held is lost with it). Caller holds role_mu. */
static PGresult *role_query(pg_store *s, const char *sql, const char *role)
{
    const char *v[1] = {role};
    PGresult *r = PQexecParams(s->role, sql, role ? 1 : 0, NULL, role ? v : NULL, NULL, NULL, 0);
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        return r;
    pg_conn c = {.db = s->role};
    pg_fail(s, &c, r, "holding a role");
    PQclear(r);
    drop_roles(s);
    return NULL;
}

bool pg_hold_role(void *self, const char *role)
{
    pg_store *s = self;
    bool held = false;
    pthread_mutex_lock(&s->role_mu);
    if (s->role && held_index(s, role) >= 0) {
        /* Still held while the session lives: a cheap round trip says it does. */
        PGresult *r = role_query(s, "SELECT 1", NULL);
        held = r != NULL;
        PQclear(r);
        if (held)
            goto out;
    }
    if (!s->role && !(s->role = pg_connect(s)))
        goto out;
    PGresult *r = role_query(s, "SELECT pg_try_advisory_lock(hashtext('executord-role:' || $1))",
                             role);
    held = r && pg_bool(r, 0, 0);
    PQclear(r);
    if (held && s->nroles < PG_ROLES_MAX) {
        snprintf(s->roles[s->nroles], sizeof s->roles[0], "%s", role);
        s->nroles++;
    }
out:
    pthread_mutex_unlock(&s->role_mu);
    return held;
}

static store_rc leave(pg_store *s, pg_conn *c, void *arg)
{
    (void)arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, s->replica_id);
    pp_i64(&p, s->started_at_ms);
    store_rc rc = pg_cmd(s, c, "DELETE FROM replicas WHERE id = $1 AND started_at_ms = $2", &p,
                         "leaving the replicas");
    pp_free(&p);
    return rc;
}

void pg_replica_close(pg_store *s)
{
    /* A replica that stops gives its id back at once (its next life need not wait for the
     * lease to lapse); a job it left running is then ended by the others' next heartbeat. */
    if (s->replica_id[0] && s->lease_ms > 0)
        (void)pg_once(s, leave, NULL);
    drop_listen(s);
    pthread_mutex_lock(&s->role_mu);
    drop_roles(s);
    pthread_mutex_unlock(&s->role_mu);
}
