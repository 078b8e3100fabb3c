/* What only the PostgreSQL store does, against a real server (EXECUTORD_TEST_PG_URL, a
 * fresh schema per case; ctest test_store_postgresql runs it beside tests/pg/with-cluster.sh's
 * throw-away cluster, and fails without one): migrations racing, replicas claiming side by
 * side, recovery of one's own jobs only, lease expiry, cancels across replicas, events,
 * roles, lost connections, odd bytes in text, and passwords kept out of messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "src/store.h"
#include "src/store_url.h"

static const char *g_url;

/* ---- the database, directly ---------------------------------------------------------- */

static PGconn *raw(void)
{
    PGconn *db = PQconnectdb(g_url);
    if (PQstatus(db) != CONNECTION_OK)
        fail_msg("connecting: %s", PQerrorMessage(db));
    return db;
}

static void raw_exec(const char *sql)
{
    PGconn *db = raw();
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(db);
}

static char *raw_text(const char *sql)
{
    PGconn *db = raw();
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(db);
    return v;
}

static long raw_long(const char *sql)
{
    char *v = raw_text(sql);
    long n = v ? strtol(v, NULL, 10) : -1;
    free(v);
    return n;
}

static int fresh_schema(void **state)
{
    (void)state;
    raw_exec("SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE;"
             " CREATE SCHEMA public");
    return 0;
}

static store *open_replica(const char *id, int64_t lease_ms)
{
    char err[512] = "";
    store *s = store_open(g_url, err, sizeof err);
    if (!s)
        fail_msg("store_open: %s", err);
    if (id && store_set_replica(s, id, lease_ms, err, sizeof err) != 0)
        fail_msg("store_set_replica: %s", err);
    return s;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- jobs ------------------------------------------------------------------------------ */

static void make_job(job *j)
{
    job_init(j);
    job_new_id(j->id);
    snprintf(j->backend, sizeof j->backend, "direct");
    j->created_at_ms = 1700000000000;
    j->script = strdup("def main():\n    return 1\n");
    j->inputs_json = strdup("{}");
    j->env_json = strdup("{\"TOKEN\":\"s3cret\",\"B\":\"x\"}");
    j->limits = (sandbox_limits){.timeout_seconds = 2.5, .memory_mb = 256, .cpu_seconds = 60,
                                 .max_processes = 64, .max_file_size_mb = 64,
                                 .max_open_files = 256, .max_output_bytes = 1048576};
}

static void add_job(store *s, char *id_out)
{
    job j;
    make_job(&j);
    assert_int_equal(store_insert_job(s, &j, 0, NULL), STORE_OK);
    memcpy(id_out, j.id, JOB_ID_LEN + 1);
    job_free(&j);
}

static void claim(store *s, char *id_out)
{
    job j;
    job_init(&j);
    store_rc rc = store_claim_next(s, 0, &j);
    if (rc != STORE_OK)
        fail_msg("claim: %d %s", rc, store_last_error(s));
    memcpy(id_out, j.id, JOB_ID_LEN + 1);
    job_free(&j);
}

static job get(store *s, const char *id)
{
    job j;
    job_init(&j);
    assert_int_equal(store_get_job(s, id, &j), STORE_OK);
    return j;
}

/* Waits up to ms for an event of kind (for job id, unless NULL). */
static bool await_event(store *s, store_event_kind kind, const char *id, int ms)
{
    for (int waited = 0; waited < ms; waited += 100) {
        store_event ev[16];
        int n = store_wait_events(s, 100, ev, 16);
        for (int i = 0; i < n; i++)
            if (ev[i].kind == kind && (!id || strcmp(ev[i].job_id, id) == 0))
                return true;
    }
    return false;
}

/* ---- migrations ------------------------------------------------------------------------ */

static void *open_and_close(void *arg)
{
    (void)arg;
    char err[512] = "";
    store *s = store_open(g_url, err, sizeof err);
    if (s)
        store_close(s);
    return s ? (void *)1 : NULL;
}

/* Replicas starting together on an empty database: every one opens, one migrates. */
static void concurrent_opens_migrate_once(void **state)
{
    (void)state;
    enum { N = 4 };
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, open_and_close, NULL), 0);
    for (int i = 0; i < N; i++) {
        void *ok = NULL;
        pthread_join(t[i], &ok);
        assert_non_null(ok);
    }
    assert_int_equal(raw_long("SELECT count(*) FROM schema_migrations"), 1);
    assert_int_equal(raw_long("SELECT count(*) FROM storage_usage"), 1);
}

/* ---- replicas -------------------------------------------------------------------------- */

typedef struct claimer {
    store *s;
    char ids[64][JOB_ID_LEN + 1];
    int n, errors;
} claimer;

static void *claim_all(void *arg)
{
    claimer *c = arg;
    for (;;) {
        job j;
        job_init(&j);
        store_rc rc = store_claim_next(c->s, 0, &j);
        if (rc == STORE_OK && c->n < 64)
            memcpy(c->ids[c->n++], j.id, JOB_ID_LEN + 1);
        job_free(&j);
        if (rc == STORE_NOT_FOUND) {
            /* Nothing claimable now: skipped rows may still be in another's claim. */
            if (store_count_status(c->s, JOB_QUEUED) == 0)
                break;
            continue;
        }
        if (rc != STORE_OK) {
            c->errors++;
            break;
        }
    }
    return NULL;
}

/* Two replicas claim side by side: each job once, each recorded as the claimer's. */
static void two_replicas_never_claim_a_job_twice(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000), *b = open_replica("rb", 10000);
    enum { JOBS = 60 };
    char ids[JOBS][JOB_ID_LEN + 1];
    for (int i = 0; i < JOBS; i++)
        add_job(a, ids[i]);
    claimer ca = {.s = a}, cb = {.s = b};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, claim_all, &ca), 0);
    assert_int_equal(pthread_create(&tb, NULL, claim_all, &cb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(ca.errors + cb.errors, 0);
    assert_int_equal(ca.n + cb.n, JOBS);
    for (int i = 0; i < ca.n; i++)
        for (int k = 0; k < cb.n; k++)
            assert_string_not_equal(ca.ids[i], cb.ids[k]);
    assert_int_equal(raw_long("SELECT count(*) FROM jobs WHERE status = 'running'"), JOBS);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE running_on = 'ra'");
    assert_int_equal(raw_long(sql), ca.n);
    store_close(a);
    store_close(b);
}

/* At start-up a replica ends only the jobs its previous life left running. */
static void recover_ends_only_own_jobs(void **state)
{
    (void)state;
    store *a = open_replica("ra", 300), *b = open_replica("rb", 10000);
    char ja[JOB_ID_LEN + 1], jb[JOB_ID_LEN + 1], tmp[JOB_ID_LEN + 1];
    add_job(a, tmp);
    add_job(a, tmp);
    claim(a, ja);
    claim(b, jb);
    store_close(a);
    /* As if it had died instead: its row stays, with a lease that still runs 300 ms. */
    raw_exec("INSERT INTO replicas VALUES ('ra', (extract(epoch FROM clock_timestamp()) * 1000)"
             "::bigint + 300, 1)");
    store *a2 = open_replica("ra", 300); /* waits for that lease to lapse */
    assert_int_equal(raw_long("SELECT count(*) FROM replicas WHERE id = 'ra' AND started_at_ms <> 1"), 1);
    assert_int_equal(store_recover_running(a2, 1700000099000), 1);
    job g = get(a2, ja);
    assert_int_equal(g.status, JOB_FAILED);
    assert_string_equal(g.error_type, "ExecutorLost");
    assert_string_equal(g.env_json, "{\"TOKEN\":null,\"B\":null}");
    job_free(&g);
    g = get(a2, jb);
    assert_int_equal(g.status, JOB_RUNNING);
    job_free(&g);
    store_close(a2);
    store_close(b);
}

static void *renew_for_a_while(void *arg)
{
    store *s = arg;
    for (int i = 0; i < 20; i++) {
        store_heartbeat(s, 0, true);
        sleep_ms(100);
    }
    return NULL;
}

/* A replica that stops gives its id back: the next one with it starts at once. */
static void closing_gives_the_replica_id_back(void **state)
{
    (void)state;
    store *a = open_replica("ra", 60000);
    assert_int_equal(raw_long("SELECT count(*) FROM replicas"), 1);
    store_close(a);
    assert_int_equal(raw_long("SELECT count(*) FROM replicas"), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    a = open_replica("ra", 60000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
    store_close(a);
}

/* An id a live replica holds (it renews its lease) is refused to another process. */
static void renewed_replica_id_is_refused(void **state)
{
    (void)state;
    store *a = open_replica("same", 1000);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, renew_for_a_while, a), 0);
    char err[512] = "";
    store *b = store_open(g_url, err, sizeof err);
    assert_non_null(b);
    assert_int_equal(store_set_replica(b, "same", 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "in use by another live executord"));
    pthread_join(t, NULL);
    store_close(b);
    store_close(a);
}

/* A replica whose lease lapsed: a survivor's heartbeat ends its running jobs (and only
 * them) failed/ExecutorLost, tells the waiters, and forgets it. */
static void heartbeat_ends_a_dead_replicas_jobs(void **state)
{
    (void)state;
    store *a = open_replica("dies", 1000), *b = open_replica("lives", 10000);
    char ja[JOB_ID_LEN + 1], jb[JOB_ID_LEN + 1], queued[JOB_ID_LEN + 1];
    add_job(a, ja);
    add_job(a, jb);
    add_job(a, queued);
    claim(a, ja);
    claim(b, jb);
    store_event ev[4];
    assert_true(store_wait_events(b, 0, ev, 4) >= 0); /* b listens from now on */
    assert_int_equal(store_heartbeat(b, 0, true), 0);       /* a's lease still runs */
    sleep_ms(1200);
    /* Not judging (the caller was out of touch with the store lately): renews only. */
    assert_int_equal(store_heartbeat(b, 0, false), 0);
    assert_int_equal(raw_long("SELECT count(*) FROM jobs WHERE status = 'running'"), 2);
    assert_int_equal(store_heartbeat(b, 0, true), 1);
    assert_true(await_event(b, STORE_EVENT_FINAL, ja, 3000));
    job g = get(b, ja);
    assert_int_equal(g.status, JOB_FAILED);
    assert_string_equal(g.error_type, "ExecutorLost");
    assert_string_equal(g.env_json, "{\"TOKEN\":null,\"B\":null}");
    job_free(&g);
    g = get(b, jb);
    assert_int_equal(g.status, JOB_RUNNING);
    job_free(&g);
    g = get(b, queued);
    assert_int_equal(g.status, JOB_QUEUED); /* runs elsewhere */
    job_free(&g);
    assert_int_equal(raw_long("SELECT count(*) FROM replicas WHERE id = 'dies'"), 0);
    assert_int_equal(store_heartbeat(b, 0, true), 0);
    /* The dead replica's late report of its job is refused. */
    job late;
    job_init(&late);
    memcpy(late.id, ja, sizeof late.id);
    late.status = JOB_SUCCEEDED;
    assert_int_equal(store_finish_job(a, &late), STORE_CONFLICT);
    store_close(a);
    store_close(b);
}

/* A cancel asked through any replica reaches the one running the job. */
static void request_cancel_reaches_the_running_replica(void **state)
{
    (void)state;
    store *a = open_replica("runs", 10000), *b = open_replica("asks", 10000);
    char id[JOB_ID_LEN + 1], queued[JOB_ID_LEN + 1];
    add_job(a, id);
    add_job(a, queued);
    claim(a, id);
    store_event ev[4];
    assert_true(store_wait_events(a, 0, ev, 4) >= 0);
    assert_int_equal(store_request_cancel(b, id), STORE_OK);
    assert_true(await_event(a, STORE_EVENT_CANCEL, id, 3000));
    char ids[4][JOB_ID_LEN + 1];
    assert_int_equal(store_pending_cancels(a, ids, 4), 1);
    assert_string_equal(ids[0], id);
    assert_int_equal(store_pending_cancels(b, ids, 4), 0);
    assert_int_equal(store_request_cancel(b, queued), STORE_CONFLICT);
    char unknown[JOB_ID_LEN + 1];
    job_new_id(unknown);
    assert_int_equal(store_request_cancel(b, unknown), STORE_NOT_FOUND);
    store_close(a);
    store_close(b);
}

static void roles_are_held_by_one_replica(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000), *b = open_replica("rb", 10000);
    assert_true(store_hold_role(a, "retention"));
    assert_false(store_hold_role(b, "retention"));
    assert_true(store_hold_role(a, "retention"));
    assert_true(store_hold_role(b, "other"));
    store_close(a);
    /* The server frees a's locks when its session ends, a moment after a hangs up. */
    bool held = false;
    for (int i = 0; i < 40 && !held; i++) {
        held = store_hold_role(b, "retention");
        if (!held)
            sleep_ms(50);
    }
    assert_true(held);
    store_close(b);
}

/* The claim's one statement also tells why it took nothing: an empty queue (NOT_FOUND),
 * or a head too big for the memory given (CONFLICT, with the head's id and memory_mb). */
static void claim_within_reports_a_head_that_does_not_fit(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000);
    job j;
    job_init(&j);
    store_queue_head head = {.memory_mb = 0};
    assert_int_equal(store_claim_next_within(a, 0, 1024, &j, &head), STORE_NOT_FOUND);
    char id[JOB_ID_LEN + 1], id2[JOB_ID_LEN + 1];
    add_job(a, id); /* 256 MB */
    add_job(a, id2);
    assert_int_equal(store_claim_next_within(a, 0, 128, &j, &head), STORE_CONFLICT);
    assert_string_equal(head.id, id);
    assert_int_equal(head.memory_mb, 256);
    job g = get(a, id);
    assert_int_equal(g.status, JOB_QUEUED); /* never a younger job in its place */
    job_free(&g);
    g = get(a, id2);
    assert_int_equal(g.status, JOB_QUEUED);
    job_free(&g);
    assert_int_equal(store_claim_next_within(a, 0, 256, &j, &head), STORE_OK);
    assert_string_equal(j.id, id);
    assert_int_equal(j.status, JOB_RUNNING);
    job_free(&j);
    job_init(&j);
    assert_int_equal(store_claim_next_within(a, 0, UINT64_MAX, &j, NULL), STORE_OK);
    assert_string_equal(j.id, id2);
    job_free(&j);
    job_init(&j);
    assert_int_equal(store_claim_next_within(a, 0, 1, &j, &head), STORE_NOT_FOUND);
    store_close(a);
}

static void insert_wakes_other_replicas(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000), *b = open_replica("rb", 10000);
    store_event ev[4];
    assert_int_equal(store_wait_events(b, 0, ev, 4), 0);
    assert_int_equal(store_wait_events(a, 0, ev, 4), 0);
    char id[JOB_ID_LEN + 1];
    add_job(a, id);
    assert_true(await_event(b, STORE_EVENT_QUEUED, NULL, 3000));
    /* The inserting replica is not woken by its own insert (its API woke it already). */
    int n = store_wait_events(a, 300, ev, 4);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++)
        assert_int_not_equal(ev[i].kind, STORE_EVENT_QUEUED);
    claim(a, id);
    job j;
    job_init(&j);
    memcpy(j.id, id, sizeof j.id);
    j.status = JOB_SUCCEEDED;
    assert_int_equal(store_finish_job(a, &j), STORE_OK);
    assert_true(await_event(b, STORE_EVENT_FINAL, id, 3000));
    assert_int_equal(store_delete_job(a, id), STORE_OK);
    assert_true(await_event(b, STORE_EVENT_FINAL, id, 3000));
    store_close(a);
    store_close(b);
}

/* ---- lost connections ------------------------------------------------------------------ */

static void kill_store_connections(void)
{
    raw_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE application_name = 'executord' AND pid <> pg_backend_pid()");
}

/* The listening connection dies: -1 (an outage), then a reconnect and RESYNC. */
static void lost_listen_connection_resyncs(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000);
    store_event ev[4];
    assert_int_equal(store_wait_events(a, 0, ev, 4), 0);
    kill_store_connections();
    int n = 0;
    for (int i = 0; i < 20 && n >= 0; i++)
        n = store_wait_events(a, 100, ev, 4);
    assert_int_equal(n, -1);
    assert_true(store_error_is_outage());
    n = store_wait_events(a, 100, ev, 4);
    assert_true(n >= 1);
    assert_int_equal(ev[0].kind, STORE_EVENT_RESYNC);
    store_close(a);
}

/* The pooled connections die (a server restart): the next calls run on new ones, no
 * request lost once the server is back. */
static void lost_pool_connections_are_replaced(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000);
    char id[JOB_ID_LEN + 1];
    add_job(a, id);
    kill_store_connections();
    sleep_ms(200); /* the server ends them asynchronously */
    job j;
    job_init(&j);
    assert_int_equal(store_get_job(a, id, &j), STORE_OK); /* a read */
    job_free(&j);
    kill_store_connections();
    sleep_ms(200);
    char id2[JOB_ID_LEN + 1];
    add_job(a, id2); /* a transaction */
    /* A claim is one statement outside a transaction: it may have committed when its
     * connection died, so it is not repeated; it fails as an outage, the next one works. */
    kill_store_connections();
    sleep_ms(200);
    job_init(&j);
    store_rc rc = store_claim_next(a, 0, &j);
    assert_true(rc == STORE_OK || (rc == STORE_ERROR && store_error_is_outage()));
    job_free(&j);
    if (rc != STORE_OK)
        claim(a, id);
    assert_int_equal(raw_long("SELECT count(*) FROM jobs WHERE status = 'running'"), 1);
    /* A finish is one statement too, but one that can tell whether it committed: it is
     * tried again on a new connection and succeeds. */
    char running[JOB_ID_LEN + 1];
    char *v = raw_text("SELECT id FROM jobs WHERE status = 'running'");
    assert_non_null(v);
    snprintf(running, sizeof running, "%s", v);
    free(v);
    kill_store_connections();
    sleep_ms(200);
    job_init(&j);
    memcpy(j.id, running, sizeof j.id);
    j.status = JOB_SUCCEEDED;
    j.result_json = strdup("1");
    assert_int_equal(store_finish_job(a, &j), STORE_OK);
    job_free(&j);
    job g = get(a, running);
    assert_int_equal(g.status, JOB_SUCCEEDED);
    job_free(&g);
    store_close(a);
}

/* Statements are prepared per connection: one whose result type a migration changed
 * fails once at most, and the connection holding it is replaced. */
static void prepared_statements_survive_a_changed_table(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000);
    char id[JOB_ID_LEN + 1];
    add_job(a, id);
    job g = get(a, id);
    job_free(&g);
    raw_exec("ALTER TABLE jobs ALTER COLUMN backend TYPE varchar(64)");
    job j;
    job_init(&j);
    store_rc rc = store_get_job(a, id, &j);
    job_free(&j);
    if (rc != STORE_OK)
        assert_non_null(strstr(store_last_error(a), "0A000"));
    g = get(a, id);
    assert_string_equal(g.backend, "direct");
    job_free(&g);
    store_close(a);
}

/* No server: an outage (503 upstream), with the location named, password hidden. */
static void unreachable_server_is_an_outage(void **state)
{
    (void)state;
    char err[512] = "";
    store *s = store_open("postgresql://u:pw-XYZ@/x?host=/nonexistent-executord-test", err,
                          sizeof err);
    assert_null(s);
    assert_true(store_error_is_outage());
    assert_non_null(strstr(err, "connecting to PostgreSQL at postgresql://u:***@/x"));
    assert_null(strstr(err, "pw-XYZ"));
}

/* ---- text and secrets ------------------------------------------------------------------ */

/* PostgreSQL text takes only UTF-8: odd bytes in an error are replaced, never a failure. */
static void odd_bytes_in_text_do_not_fail_a_finish(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000);
    char id[JOB_ID_LEN + 1];
    add_job(a, id);
    claim(a, id);
    job j;
    job_init(&j);
    memcpy(j.id, id, sizeof j.id);
    j.status = JOB_FAILED;
    j.error_type = strdup("SandboxExecutionError");
    j.error_message = strdup("bad \xff\xfe bytes \xc3");
    j.error_traceback = strdup("ok \xe2\x82\xac end");
    assert_int_equal(store_finish_job(a, &j), STORE_OK);
    job_free(&j);
    job g = get(a, id);
    assert_string_equal(g.error_message, "bad \xef\xbf\xbd\xef\xbf\xbd bytes \xef\xbf\xbd");
    assert_string_equal(g.error_traceback, "ok \xe2\x82\xac end");
    job_free(&g);
    store_close(a);
}

/* A job's sandbox must never inherit a connection to the database: every socket the store
 * holds (pool, events, roles) is close-on-exec (libpq's doing; checked, not assumed). */
static void connections_are_close_on_exec(void **state)
{
    (void)state;
    store *a = open_replica("ra", 10000);
    char id[JOB_ID_LEN + 1];
    add_job(a, id);
    store_event ev[4];
    assert_int_equal(store_wait_events(a, 0, ev, 4), 0);
    assert_true(store_hold_role(a, "retention"));
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int sockets = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        sockets++;
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    }
    closedir(d);
    assert_true(sockets >= 3);
    store_close(a);
}

static void redacted(const char *in, const char *want)
{
    char out[256];
    store_location_redacted(in, out, sizeof out);
    assert_string_equal(out, want);
}

static void passwords_are_redacted(void **state)
{
    (void)state;
    redacted("postgresql://u:pw@db:5432/x", "postgresql://u:***@db:5432/x");
    redacted("postgres://u@db/x?password=pw&sslmode=require",
             "postgres://u@db/x?password=***&sslmode=require");
    redacted("postgresql://u:a@b@db/x?application_name=y&password=p2",
             "postgresql://u:***@db/x?application_name=y&password=***");
    redacted("postgresql:///x?host=/run/postgresql", "postgresql:///x?host=/run/postgresql");
    redacted("/var/lib/executord/executord.db", "/var/lib/executord/executord.db");
    /* A server that cannot be reached: the message names it, never the password. */
    char err[512] = "";
    store *s = store_open("postgresql://user:Hunter2pw@/x?host=/nonexistent-executord-test",
                          err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "user:***@"));
    assert_null(strstr(err, "Hunter2pw"));
}

int main(void)
{
    g_url = getenv("EXECUTORD_TEST_PG_URL");
    if (!g_url || !*g_url) {
        fprintf(stderr, "test_store_pg: EXECUTORD_TEST_PG_URL is not set "
                        "(run it through tests/pg/with-cluster.sh)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(concurrent_opens_migrate_once, fresh_schema),
        cmocka_unit_test_setup(two_replicas_never_claim_a_job_twice, fresh_schema),
        cmocka_unit_test_setup(recover_ends_only_own_jobs, fresh_schema),
        cmocka_unit_test_setup(renewed_replica_id_is_refused, fresh_schema),
        cmocka_unit_test_setup(closing_gives_the_replica_id_back, fresh_schema),
        cmocka_unit_test_setup(heartbeat_ends_a_dead_replicas_jobs, fresh_schema),
        cmocka_unit_test_setup(request_cancel_reaches_the_running_replica, fresh_schema),
        cmocka_unit_test_setup(roles_are_held_by_one_replica, fresh_schema),
        cmocka_unit_test_setup(claim_within_reports_a_head_that_does_not_fit, fresh_schema),
        cmocka_unit_test_setup(insert_wakes_other_replicas, fresh_schema),
        cmocka_unit_test_setup(lost_listen_connection_resyncs, fresh_schema),
        cmocka_unit_test_setup(lost_pool_connections_are_replaced, fresh_schema),
        cmocka_unit_test_setup(prepared_statements_survive_a_changed_table, fresh_schema),
        cmocka_unit_test_setup(unreachable_server_is_an_outage, fresh_schema),
        cmocka_unit_test_setup(odd_bytes_in_text_do_not_fail_a_finish, fresh_schema),
        cmocka_unit_test_setup(passwords_are_redacted, fresh_schema),
        cmocka_unit_test_setup(connections_are_close_on_exec, fresh_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
