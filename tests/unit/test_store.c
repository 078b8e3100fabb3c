/* The job store against a real database: SQLite in a fresh temp folder per test, and, with
 * --postgresql, the shared cases again against PostgreSQL (EXECUTORD_TEST_PG_URL, a fresh
 * schema per test; ctest test_store_postgresql runs it beside tests/pg/with-cluster.sh's
 * throw-away cluster). SQLite's cases:
 * migrations, state transitions, idempotency, the queue bound, output offsets, results
 * read in parts, cursor pagination under concurrent inserts, filters and retention; what
 * the files keep of secrets (env values after a job ends, requests, freed space, the WAL,
 * file modes); and the storage quota: its running total, eviction order, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "src/migrate.h"
#include "src/migrations.h"
#include "src/store.h"
#include "src/store_pg.h"
#include "src/store_sqlite.h"

/* Set (--postgresql): the shared cases run against this PostgreSQL database. */
static const char *g_pg_url;

typedef struct fixture {
    char dir[64];
    char path[128];
    store *s;
} fixture;

static void remove_db_files(const fixture *f)
{
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
}

/* PostgreSQL: an empty public schema (each case starts from nothing, as with a new file)
 * and the URL where SQLite's cases use the file's path. */
static int pg_fresh_schema(fixture *f)
{
    PGconn *db = PQconnectdb(g_pg_url);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "connecting to %s: %s", g_pg_url, PQerrorMessage(db));
        PQfinish(db);
        return -1;
    }
    PGresult *r = PQexec(db, "SET client_min_messages = warning;"
                             " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "resetting the schema: %s", PQerrorMessage(db));
    PQclear(r);
    PQfinish(db);
    if (snprintf(f->path, sizeof f->path, "%s", g_pg_url) >= (int)sizeof f->path) {
        fprintf(stderr, "EXECUTORD_TEST_PG_URL is too long for this test\n");
        return -1;
    }
    return rc;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(f->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/executord.db", f->dir);
    if (g_pg_url && pg_fresh_schema(f) != 0)
        return -1;
    char err[512] = "";
    f->s = store_open(f->path, err, sizeof err);
    if (!f->s) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    remove_db_files(f);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int latest_version(void)
{
    return g_pg_url ? pg_migrations[pg_migrations_count - 1].version
                    : migrations[migrations_count - 1].version;
}

/* ---- a direct connection to the same database, to check what the store wrote ------ */

/* The SQLite file's, or (--postgresql) one to the PostgreSQL database. */
typedef struct raw_db {
    sqlite3 *lite;
    PGconn *pg;
} raw_db;

static raw_db *raw_open(const fixture *f)
{
    raw_db *db = calloc(1, sizeof *db);
    assert_non_null(db);
    if (g_pg_url) {
        db->pg = PQconnectdb(g_pg_url);
        if (PQstatus(db->pg) != CONNECTION_OK)
            fail_msg("connecting: %s", PQerrorMessage(db->pg));
        return db;
    }
    assert_int_equal(sqlite3_open(f->path, &db->lite), SQLITE_OK);
    sqlite3_busy_timeout(db->lite, 5000);
    return db;
}

static void raw_close(raw_db *db)
{
    if (db->lite)
        sqlite3_close(db->lite);
    if (db->pg)
        PQfinish(db->pg);
    free(db);
}

/* Runs sql ("?1" written as in SQLite, becoming $1) with at most one text argument; the
 * result (expected to be ok), which the caller clears. */
static PGresult *raw_pg(raw_db *db, const char *sql, const char *arg)
{
    char *q = strdup(sql);
    assert_non_null(q);
    for (char *p = q; *p; p++)
        if (*p == '?')
            *p = '$';
    const char *v[1] = {arg};
    PGresult *r = PQexecParams(db->pg, q, arg ? 1 : 0, NULL, arg ? v : NULL, NULL, NULL, 0);
    free(q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

static int64_t raw_int(raw_db *rdb, const char *sql, const char *arg)
{
    if (rdb->pg) {
        PGresult *r = raw_pg(rdb, sql, arg);
        assert_int_equal(PQntuples(r), 1);
        int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        return v;
    }
    sqlite3 *db = rdb->lite;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void raw_exec(raw_db *rdb, const char *sql)
{
    if (rdb->pg) {
        PQclear(raw_pg(rdb, sql, NULL));
        return;
    }
    sqlite3 *db = rdb->lite;
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

static char *raw_text(raw_db *rdb, const char *sql, const char *arg)
{
    if (rdb->pg) {
        PGresult *r = raw_pg(rdb, sql, arg);
        assert_int_equal(PQntuples(r), 1);
        char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        return v;
    }
    sqlite3 *db = rdb->lite;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *t = (const char *)sqlite3_column_text(st, 0);
    char *v = t ? strdup(t) : NULL;
    sqlite3_finalize(st);
    return v;
}

static void make_job(job *j, const char *labels_json)
{
    job_init(j);
    job_new_id(j->id);
    snprintf(j->backend, sizeof j->backend, "direct");
    j->created_at_ms = 1700000000000;
    j->script = strdup("def main(x):\n    return x\n");
    j->inputs_json = strdup("{\"x\":1}");
    j->env_json = strdup("{\"A\":\"secret\"}");
    j->labels_json = labels_json ? strdup(labels_json) : NULL;
    j->allow_network = true;
    j->limits = (sandbox_limits){.timeout_seconds = 1.5, .memory_mb = 512, .cpu_seconds = 60,
                                 .max_processes = 64, .max_file_size_mb = 64,
                                 .max_open_files = 256, .max_output_bytes = 1048576};
}

/* Inserts a job; its id into id_out (if given); returns its seq. */
static int64_t add_job(store *s, const char *labels_json, char *id_out)
{
    job j;
    make_job(&j, labels_json);
    assert_int_equal(store_insert_job(s, &j, 0, NULL), STORE_OK);
    assert_true(j.seq > 0);
    if (id_out)
        memcpy(id_out, j.id, JOB_ID_LEN + 1);
    int64_t seq = j.seq;
    job_free(&j);
    return seq;
}

static job_status status_of(store *s, const char *id)
{
    job j;
    job_init(&j);
    assert_int_equal(store_get_job(s, id, &j), STORE_OK);
    job_status st = j.status;
    job_free(&j);
    return st;
}

/* Claims the next job, expecting it to be `id`. */
static void claim_expect(store *s, const char *id)
{
    job j;
    job_init(&j);
    store_rc crc = store_claim_next(s, 1700000001000, &j);
    if (crc != STORE_OK)
        fprintf(stderr, "claim: %s\n", store_last_error(s));
    assert_int_equal(crc, STORE_OK);
    assert_string_equal(j.id, id);
    job_free(&j);
}

static void finish_as(store *s, const char *id, job_status st, int64_t finished_at)
{
    job j;
    job_init(&j);
    memcpy(j.id, id, JOB_ID_LEN + 1);
    j.status = st;
    j.finished_at_ms = finished_at;
    assert_int_equal(store_finish_job(s, &j), STORE_OK);
}

/* ---- migrations ---------------------------------------------------------------- */

static void migrations_are_applied_and_recorded(void **state)
{
    fixture *f = *state;
    assert_true(migrations_count >= 1);
    assert_int_equal(store_schema_version(f->s), latest_version());
    char err[256] = "x";
    assert_int_equal(store_ping(f->s, err, sizeof err), 0);

    raw_db *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migrations", NULL), migrations_count);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migrations WHERE version = 1 AND"
                                 " name = '001_initial.sql' AND applied_at_ms > 0", NULL), 1);
    const char *tables[] = {"jobs", "job_output", "job_labels"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                     " AND name = ?1", tables[i]), 1);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db->lite, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* The status CHECK holds: no row can carry an unknown status. */
    assert_int_not_equal(sqlite3_exec(db->lite, "INSERT INTO jobs (id, status, backend, created_at_ms,"
                                          " script, timeout_seconds, memory_mb, cpu_seconds,"
                                          " max_processes, max_file_size_mb, max_open_files,"
                                          " max_output_bytes) VALUES ('x', 'done', 'direct', 1,"
                                          " 's', 1, 1, 1, 1, 1, 1, 1)", NULL, NULL, NULL),
                         SQLITE_OK);
    raw_close(db);
}

static void reopening_is_idempotent_and_durable(void **state)
{
    fixture *f = *state;
    char id[JOB_ID_LEN + 1];
    add_job(f->s, "{\"k\":\"v\"}", id);
    store_close(f->s);

    char err[512] = "";
    for (int round = 0; round < 2; round++) {
        f->s = store_open(f->path, err, sizeof err);
        assert_non_null(f->s);
        assert_int_equal(store_schema_version(f->s), latest_version());
        if (round == 0)
            store_close(f->s);
    }
    assert_int_equal(status_of(f->s, id), JOB_QUEUED);
    raw_db *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migrations", NULL), migrations_count);
    raw_close(db);
}

static void newer_schema_is_refused(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    f->s = NULL;
    raw_db *db = raw_open(f);
    raw_exec(db, "INSERT INTO schema_migrations VALUES (7, '007_future.sql', 1)");
    raw_close(db);

    char err[512] = "";
    store *s = store_open(f->path, err, sizeof err);
    assert_null(s);
    char want[256];
    snprintf(want, sizeof want,
             "database schema version 7 is newer than this executord supports (%d); "
             "upgrade executord", latest_version());
    assert_string_equal(err, want);

    /* Refusing must not touch the database: remove the future row and it opens again. */
    db = raw_open(f);
    raw_exec(db, "DELETE FROM schema_migrations WHERE version = 7");
    raw_close(db);
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
}

static void failed_migration_rolls_back(void **state)
{
    fixture *f = *state;
    raw_db *db = raw_open(f);
    /* The fixture's database is at the latest real version; two more follow it. */
    int v = latest_version();
    const struct migration list[] = {
        {v, "latest.sql", "SELECT 1"}, /* already recorded: must not run again */
        {v + 1, "next_ok.sql", "CREATE TABLE t2 (a INTEGER);"},
        {v + 2, "next_broken.sql", "CREATE TABLE t3 (a INTEGER); INSERT INTO nowhere VALUES (1);"},
    };
    char err[512] = "";
    assert_int_equal(migrate_apply(db->lite, list, 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "next_broken.sql"));
    assert_non_null(strstr(err, "nowhere"));
    assert_int_equal(migrate_current_version(db->lite), v + 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 't2'", NULL), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 't3'", NULL), 0);

    /* Out of order lists are a build mistake, refused before anything runs. */
    const struct migration bad[] = {{2, "002_a.sql", "SELECT 1"}, {2, "002_b.sql", "SELECT 1"}};
    assert_int_equal(migrate_apply(db->lite, bad, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "ascending"));
    raw_close(db);
}

/* ---- state transitions --------------------------------------------------------- */

static void insert_and_get_round_trip(void **state)
{
    fixture *f = *state;
    job j;
    make_job(&j, "{\"team\":\"red\"}");
    j.idempotency_key = strdup("key-1");
    j.request_json = strdup("{\"script\":\"x\"}");
    j.deps_json = strdup("[\"a-b<2,>=1\",\"requests==2.31.0\"]");
    assert_int_equal(store_insert_job(f->s, &j, 0, NULL), STORE_OK);
    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, j.id, &g), STORE_OK);
    assert_int_equal(g.seq, j.seq);
    assert_string_equal(g.id, j.id);
    assert_int_equal(g.status, JOB_QUEUED);
    assert_string_equal(g.backend, "direct");
    assert_int_equal(g.created_at_ms, 1700000000000);
    assert_int_equal(g.started_at_ms, 0);
    assert_int_equal(g.finished_at_ms, 0);
    assert_string_equal(g.script, j.script);
    assert_string_equal(g.inputs_json, "{\"x\":1}");
    assert_string_equal(g.env_json, "{\"A\":\"secret\"}");
    assert_string_equal(g.labels_json, "{\"team\":\"red\"}");
    assert_true(g.allow_network);
    assert_true(g.limits.timeout_seconds == 1.5);
    assert_int_equal(g.limits.memory_mb, 512);
    assert_int_equal(g.limits.cpu_seconds, 60);
    assert_int_equal(g.limits.max_processes, 64);
    assert_int_equal(g.limits.max_file_size_mb, 64);
    assert_int_equal(g.limits.max_open_files, 256);
    assert_int_equal(g.limits.max_output_bytes, 1048576);
    assert_string_equal(g.idempotency_key, "key-1");
    assert_null(g.request_json); /* only its digest is kept */
    assert_null(g.result_json);
    assert_null(g.error_type);
    assert_false(g.has_exit_code);
    assert_int_equal(g.signal, 0);
    assert_null(g.usage_json);
    assert_string_equal(g.deps_json, "[\"a-b<2,>=1\",\"requests==2.31.0\"]");
    assert_null(g.install_json); /* written when the job finishes */
    job_free(&g);

    char other[JOB_ID_LEN + 1];
    job_new_id(other);
    assert_int_equal(store_get_job(f->s, other, &g), STORE_NOT_FOUND);

    /* Missing JSON documents are stored as empty objects. */
    job k;
    make_job(&k, NULL);
    free(k.inputs_json);
    k.inputs_json = NULL;
    assert_int_equal(store_insert_job(f->s, &k, 0, NULL), STORE_OK);
    assert_int_equal(store_get_job(f->s, k.id, &g), STORE_OK);
    assert_string_equal(g.inputs_json, "{}");
    assert_string_equal(g.labels_json, "{}");
    job_free(&g);

    /* A job id that is not a canonical UUID never enters the store. */
    job bad;
    make_job(&bad, NULL);
    snprintf(bad.id, sizeof bad.id, "not-a-uuid");
    assert_int_equal(store_insert_job(f->s, &bad, 0, NULL), STORE_ERROR);
    assert_true(strlen(store_last_error(f->s)) > 0);
    job_free(&bad);
    job_free(&k);
    job_free(&j);
}

static void claim_takes_oldest_first(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1], c[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);
    add_job(f->s, NULL, b);
    add_job(f->s, NULL, c);
    job j;
    job_init(&j);
    assert_int_equal(store_claim_next(f->s, 1700000005000, &j), STORE_OK);
    assert_string_equal(j.id, a);
    assert_int_equal(j.status, JOB_RUNNING);
    assert_int_equal(j.started_at_ms, 1700000005000);
    assert_non_null(j.script); /* the worker needs the full job */
    assert_string_equal(j.inputs_json, "{\"x\":1}");
    job_free(&j);
    assert_int_equal(status_of(f->s, a), JOB_RUNNING);
    assert_int_equal(status_of(f->s, b), JOB_QUEUED);
    claim_expect(f->s, b);
    claim_expect(f->s, c);
    assert_int_equal(store_claim_next(f->s, 1, &j), STORE_NOT_FOUND);
    assert_int_equal(store_count_status(f->s, JOB_RUNNING), 3);
    assert_int_equal(store_count_status(f->s, JOB_QUEUED), 0);
}

static void finish_only_from_running(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);

    job j;
    job_init(&j);
    memcpy(j.id, a, sizeof j.id);
    j.status = JOB_SUCCEEDED;
    j.finished_at_ms = 1700000009000;
    assert_int_equal(store_finish_job(f->s, &j), STORE_CONFLICT); /* still queued */
    assert_non_null(strstr(store_last_error(f->s), "queued"));
    assert_int_equal(status_of(f->s, a), JOB_QUEUED);

    claim_expect(f->s, a);
    j.status = JOB_RUNNING;
    assert_int_equal(store_finish_job(f->s, &j), STORE_ERROR); /* not a final status */
    j.status = JOB_FAILED;
    j.result_json = strdup("null");
    j.error_type = strdup("ValueError");
    j.error_message = strdup("bad");
    j.error_traceback = strdup("Traceback...");
    j.has_exit_code = true;
    j.exit_code = 3;
    j.signal = 0;
    j.usage_json = strdup("{\"wall_ms\":5}");
    j.install_json = strdup("{\"environment\":\"ab\",\"cache_hit\":false,\"duration_ms\":7}");
    j.stdout_bytes = 10;
    j.stderr_bytes = 20;
    j.stdout_truncated = true;
    assert_int_equal(store_finish_job(f->s, &j), STORE_OK);

    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, a, &g), STORE_OK);
    assert_int_equal(g.status, JOB_FAILED);
    assert_int_equal(g.finished_at_ms, 1700000009000);
    assert_int_equal(g.started_at_ms, 1700000001000);
    assert_string_equal(g.error_type, "ValueError");
    assert_string_equal(g.error_message, "bad");
    assert_string_equal(g.error_traceback, "Traceback...");
    assert_true(g.has_exit_code);
    assert_int_equal(g.exit_code, 3);
    assert_int_equal(g.signal, 0);
    assert_string_equal(g.usage_json, "{\"wall_ms\":5}");
    assert_string_equal(g.install_json, "{\"environment\":\"ab\",\"cache_hit\":false,\"duration_ms\":7}");
    assert_null(g.deps_json); /* the job had none */
    assert_int_equal(g.stdout_bytes, 10);
    assert_int_equal(g.stderr_bytes, 20);
    assert_true(g.stdout_truncated);
    assert_false(g.stderr_truncated);
    job_free(&g);

    /* A final job is final: a second finish (e.g. a late cancel) cannot rewrite it. */
    j.status = JOB_CANCELLED;
    assert_int_equal(store_finish_job(f->s, &j), STORE_CONFLICT);
    assert_int_equal(status_of(f->s, a), JOB_FAILED);
    job_new_id(j.id);
    assert_int_equal(store_finish_job(f->s, &j), STORE_NOT_FOUND);
    job_free(&j);

    /* Killed by a signal: no exit code, the signal kept. */
    char b[JOB_ID_LEN + 1];
    add_job(f->s, NULL, b);
    claim_expect(f->s, b);
    job k;
    job_init(&k);
    memcpy(k.id, b, sizeof k.id);
    k.status = JOB_TIMED_OUT;
    k.signal = 9;
    k.finished_at_ms = 1700000010000;
    assert_int_equal(store_finish_job(f->s, &k), STORE_OK);
    assert_int_equal(store_get_job(f->s, b, &g), STORE_OK);
    assert_int_equal(g.status, JOB_TIMED_OUT);
    assert_false(g.has_exit_code);
    assert_int_equal(g.exit_code, -1);
    assert_int_equal(g.signal, 9);
    job_free(&g);
}

static void cancel_only_queued(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);
    add_job(f->s, NULL, b);
    job out;
    job_init(&out);
    assert_int_equal(store_cancel_queued(f->s, a, 1700000002000, &out), STORE_OK);
    assert_string_equal(out.id, a);
    assert_int_equal(out.status, JOB_CANCELLED);
    assert_int_equal(out.finished_at_ms, 1700000002000);
    assert_string_equal(out.error_type, "Cancelled");
    job_free(&out);

    claim_expect(f->s, b); /* the cancelled job never starts */
    assert_int_equal(store_claim_next(f->s, 1, &out), STORE_NOT_FOUND);

    assert_int_equal(store_cancel_queued(f->s, b, 1, &out), STORE_CONFLICT); /* running */
    assert_int_equal(out.status, JOB_RUNNING); /* the job as it is */
    job_free(&out);
    assert_int_equal(status_of(f->s, b), JOB_RUNNING);
    assert_int_equal(store_cancel_queued(f->s, a, 1, &out), STORE_CONFLICT); /* already final */
    assert_int_equal(out.status, JOB_CANCELLED);
    assert_int_equal(out.finished_at_ms, 1700000002000);
    job_free(&out);
    char none[JOB_ID_LEN + 1];
    job_new_id(none);
    assert_int_equal(store_cancel_queued(f->s, none, 1, &out), STORE_NOT_FOUND);
    assert_int_equal(store_cancel_queued(f->s, b, 1, NULL), STORE_CONFLICT);
}

static void delete_only_finished(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1], keep[JOB_ID_LEN + 1];
    add_job(f->s, "{\"t\":\"1\"}", a);
    add_job(f->s, "{\"t\":\"1\"}", keep);
    assert_int_equal(store_delete_job(f->s, a), STORE_CONFLICT); /* queued */
    claim_expect(f->s, a);
    assert_int_equal(store_append_output(f->s, a, 1, "out", 3), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 2, "err", 3), STORE_OK);
    assert_int_equal(store_append_output(f->s, keep, 1, "kept", 4), STORE_OK);
    assert_int_equal(store_delete_job(f->s, a), STORE_CONFLICT); /* running */
    assert_int_equal(status_of(f->s, a), JOB_RUNNING);
    finish_as(f->s, a, JOB_SUCCEEDED, 1700000003000);
    assert_int_equal(store_delete_job(f->s, a), STORE_OK);

    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, a, &g), STORE_NOT_FOUND);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(store_read_output(f->s, a, 1, 0, 0, &data, &len), STORE_NOT_FOUND);
    assert_int_equal(store_delete_job(f->s, a), STORE_NOT_FOUND);

    raw_db *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM job_output WHERE job_id = ?1", a), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM job_output", NULL), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM job_labels", NULL), 1);
    raw_close(db);

    store_filter flt = {.label_key = "t", .label_value = "1"};
    job_list l;
    assert_int_equal(store_list_jobs(f->s, &flt, 0, 10, &l), STORE_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].id, keep);
    job_list_free(&l);
}

static void recover_marks_running_as_lost(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1], c[JOB_ID_LEN + 1], d[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);
    add_job(f->s, NULL, b);
    add_job(f->s, NULL, c);
    add_job(f->s, NULL, d);
    claim_expect(f->s, a);
    claim_expect(f->s, b);
    claim_expect(f->s, c);
    finish_as(f->s, c, JOB_SUCCEEDED, 1700000004000);

    /* As after a crash: a new instance opens the same file. */
    store_close(f->s);
    char err[256];
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    assert_int_equal(store_recover_running(f->s, 1700000099000), 2);

    const char *lost[] = {a, b};
    for (int i = 0; i < 2; i++) {
        job g;
        job_init(&g);
        assert_int_equal(store_get_job(f->s, lost[i], &g), STORE_OK);
        assert_int_equal(g.status, JOB_FAILED);
        assert_string_equal(g.error_type, "ExecutorLost");
        assert_string_equal(g.error_message, "executord stopped while the job was running");
        assert_int_equal(g.finished_at_ms, 1700000099000);
        job_free(&g);
    }
    assert_int_equal(status_of(f->s, c), JOB_SUCCEEDED);
    assert_int_equal(status_of(f->s, d), JOB_QUEUED);
    assert_int_equal(store_count_status(f->s, JOB_RUNNING), 0);
    assert_int_equal(store_count_status(f->s, JOB_FAILED), 2);
    assert_int_equal(store_recover_running(f->s, 1700000099000), 0);
}

/* ---- idempotency and the queue bound ------------------------------------------- */

static store_rc insert_keyed(store *s, const char *key, const char *body, int64_t max_queued,
                             job *existing, char *id_out)
{
    job j;
    make_job(&j, NULL);
    j.idempotency_key = strdup(key);
    j.request_json = strdup(body);
    store_rc rc = store_insert_job(s, &j, max_queued, existing);
    if (id_out)
        memcpy(id_out, j.id, JOB_ID_LEN + 1);
    job_free(&j);
    return rc;
}

static void idempotency_key_reuse(void **state)
{
    fixture *f = *state;
    char first[JOB_ID_LEN + 1], id[JOB_ID_LEN + 1];
    job ex;
    job_init(&ex);
    assert_int_equal(insert_keyed(f->s, "k1", "{\"script\":\"a\"}", 0, &ex, first), STORE_OK);
    assert_int_equal(insert_keyed(f->s, "k1", "{\"script\":\"a\"}", 0, &ex, id), STORE_EXISTS);
    assert_string_equal(ex.id, first);
    assert_null(ex.request_json);
    assert_non_null(ex.script);
    job_free(&ex);
    assert_int_equal(insert_keyed(f->s, "k1", "{\"script\":\"b\"}", 0, &ex, id), STORE_CONFLICT);
    assert_int_equal(store_get_job(f->s, id, &ex), STORE_NOT_FOUND);
    assert_int_equal(insert_keyed(f->s, "k2", "{\"script\":\"a\"}", 0, NULL, id), STORE_OK);
    assert_int_equal(store_count_status(f->s, JOB_QUEUED), 2);

    /* The key is remembered whatever became of its job, and even with a full queue. */
    claim_expect(f->s, first);
    finish_as(f->s, first, JOB_SUCCEEDED, 1700000005000);
    assert_int_equal(insert_keyed(f->s, "k2", "{\"script\":\"a\"}", 1, &ex, id), STORE_EXISTS);
    assert_int_equal(ex.status, JOB_QUEUED);
    job_free(&ex);
    assert_int_equal(insert_keyed(f->s, "k1", "{\"script\":\"a\"}", 1, &ex, id), STORE_EXISTS);
    assert_string_equal(ex.id, first);
    assert_int_equal(ex.status, JOB_SUCCEEDED);
    job_free(&ex);
}

typedef struct race_arg {
    const char *path;
    pthread_barrier_t *barrier;
    store_rc rc;
    char id[JOB_ID_LEN + 1];
} race_arg;

/* Each thread has its own store (as two executord processes on one file would), so the
 * UNIQUE constraint, not one mutex, has to keep the key single. */
static void *race_insert(void *p)
{
    race_arg *a = p;
    char err[256];
    store *s = store_open(a->path, err, sizeof err);
    if (!s) {
        a->rc = STORE_ERROR;
        return NULL;
    }
    job ex;
    job_init(&ex);
    pthread_barrier_wait(a->barrier);
    a->rc = insert_keyed(s, "race", "{\"same\":true}", 0, &ex, NULL);
    memcpy(a->id, ex.id, sizeof a->id);
    job_free(&ex);
    store_close(s);
    return NULL;
}

static void concurrent_inserts_with_one_key(void **state)
{
    fixture *f = *state;
    enum { N = 6 };
    pthread_t t[N];
    race_arg args[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        args[i] = (race_arg){.path = f->path, .barrier = &barrier, .rc = STORE_ERROR};
        assert_int_equal(pthread_create(&t[i], NULL, race_insert, &args[i]), 0);
    }
    int ok = 0, exists = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (args[i].rc == STORE_OK)
            ok++;
        else if (args[i].rc == STORE_EXISTS)
            exists++;
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(ok, 1);
    assert_int_equal(exists, N - 1);
    assert_int_equal(store_count_status(f->s, JOB_QUEUED), 1);
    for (int i = 0; i < N; i++)
        if (args[i].rc == STORE_EXISTS)
            assert_int_equal(status_of(f->s, args[i].id), JOB_QUEUED);
}

typedef struct claimer {
    store *s;
    char ids[64][JOB_ID_LEN + 1];
    int n;
    int errors;
} claimer;

static void *claim_all(void *p)
{
    claimer *c = p;
    for (;;) {
        job j;
        job_init(&j);
        store_rc rc = store_claim_next(c->s, 1700000001000, &j);
        if (rc == STORE_NOT_FOUND)
            break;
        if (rc != STORE_OK || c->n == 64) {
            c->errors++;
            break;
        }
        memcpy(c->ids[c->n++], j.id, JOB_ID_LEN + 1);
        /* Readers run alongside the writers. */
        job g;
        job_init(&g);
        if (store_get_job(c->s, j.id, &g) != STORE_OK || g.status != JOB_RUNNING)
            c->errors++;
        job_free(&g);
        job_list l;
        if (store_list_jobs(c->s, NULL, 0, 5, &l) != STORE_OK)
            c->errors++;
        job_list_free(&l);
        job_free(&j);
    }
    return NULL;
}

/* Workers share one store: every queued job is claimed by exactly one of them. */
static void concurrent_claims_take_each_job_once(void **state)
{
    fixture *f = *state;
    enum { JOBS = 60, THREADS = 4 };
    char ids[JOBS][JOB_ID_LEN + 1];
    for (int i = 0; i < JOBS; i++)
        add_job(f->s, NULL, ids[i]);
    claimer c[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].s = f->s;
        assert_int_equal(pthread_create(&t[i], NULL, claim_all, &c[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].errors, 0);
        total += c[i].n;
    }
    assert_int_equal(total, JOBS);
    for (int k = 0; k < JOBS; k++) {
        int seen = 0;
        for (int i = 0; i < THREADS; i++)
            for (int m = 0; m < c[i].n; m++)
                seen += strcmp(c[i].ids[m], ids[k]) == 0;
        assert_int_equal(seen, 1);
    }
    assert_int_equal(store_count_status(f->s, JOB_RUNNING), JOBS);
}

static void queue_bound_gives_full(void **state)
{
    fixture *f = *state;
    char ids[3][JOB_ID_LEN + 1];
    job j;
    for (int i = 0; i < 2; i++) {
        make_job(&j, NULL);
        assert_int_equal(store_insert_job(f->s, &j, 2, NULL), STORE_OK);
        memcpy(ids[i], j.id, sizeof ids[i]);
        job_free(&j);
    }
    make_job(&j, NULL);
    assert_int_equal(store_insert_job(f->s, &j, 2, NULL), STORE_FULL);
    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, j.id, &g), STORE_NOT_FOUND); /* nothing written */
    assert_int_equal(store_insert_job(f->s, &j, 0, NULL), STORE_OK);  /* 0 = unbounded */
    memcpy(ids[2], j.id, sizeof ids[2]);
    job_free(&j);
    assert_int_equal(store_count_status(f->s, JOB_QUEUED), 3);

    /* Only queued jobs count: running ones free their place. */
    claim_expect(f->s, ids[0]);
    make_job(&j, NULL);
    assert_int_equal(store_insert_job(f->s, &j, 2, NULL), STORE_FULL); /* still 2 queued */
    claim_expect(f->s, ids[1]);
    assert_int_equal(store_insert_job(f->s, &j, 2, NULL), STORE_OK);
    job_free(&j);
    make_job(&j, NULL);
    assert_int_equal(store_insert_job(f->s, &j, 2, NULL), STORE_FULL);
    job_free(&j);
    assert_int_equal(store_count_status(f->s, JOB_QUEUED), 2);
}

/* ---- output ------------------------------------------------------------------ */

static void expect_output(store *s, const char *id, int stream, uint64_t off, size_t max,
                          const char *want, size_t want_len)
{
    char *data = NULL;
    size_t len = 99;
    assert_int_equal(store_read_output(s, id, stream, off, max, &data, &len), STORE_OK);
    assert_non_null(data);
    assert_int_equal(len, want_len);
    assert_memory_equal(data, want, want_len);
    assert_int_equal(data[len], '\0');
    free(data);
}

static void output_append_and_read_with_offsets(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);
    expect_output(f->s, a, 1, 0, 0, "", 0); /* no output yet */
    claim_expect(f->s, a);
    assert_int_equal(store_append_output(f->s, a, 1, "hello ", 6), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 2, "err", 3), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 1, "world", 5), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 1, "", 0), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 1, "!\0!", 3), STORE_OK); /* binary */

    const char all[] = "hello world!\0!";
    expect_output(f->s, a, 1, 0, 0, all, 14);
    expect_output(f->s, a, 1, 3, 0, all + 3, 11);       /* inside the first chunk */
    expect_output(f->s, a, 1, 6, 0, all + 6, 8);        /* at a chunk boundary */
    expect_output(f->s, a, 1, 8, 2, "rl", 2);           /* inside a chunk, capped */
    expect_output(f->s, a, 1, 2, 6, "llo wo", 6);       /* across chunks, capped */
    expect_output(f->s, a, 1, 13, 0, "!", 1);           /* last byte */
    expect_output(f->s, a, 1, 14, 0, "", 0);            /* at the end */
    expect_output(f->s, a, 1, 1000, 0, "", 0);          /* past the end */
    expect_output(f->s, a, 1, UINT64_MAX, 0, "", 0);
    expect_output(f->s, a, 2, 0, 0, "err", 3);
    expect_output(f->s, a, 2, 1, 1, "r", 1);

    /* The running job's counts follow the output as it arrives. */
    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, a, &g), STORE_OK);
    assert_int_equal(g.stdout_bytes, 14);
    assert_int_equal(g.stderr_bytes, 3);
    job_free(&g);

    char *data = NULL;
    size_t len = 0;
    char none[JOB_ID_LEN + 1];
    job_new_id(none);
    assert_int_equal(store_append_output(f->s, none, 1, "x", 1), STORE_NOT_FOUND);
    assert_int_equal(store_read_output(f->s, none, 1, 0, 0, &data, &len), STORE_NOT_FOUND);
    assert_null(data);
    assert_int_equal(store_append_output(f->s, a, 3, "x", 1), STORE_ERROR);
    assert_int_equal(store_read_output(f->s, a, 0, 0, 0, &data, &len), STORE_ERROR);
}

static void output_many_chunks(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);
    claim_expect(f->s, a);
    char expect[200 * 7];
    size_t total = 0;
    for (int i = 0; i < 200; i++) {
        char chunk[8];
        int n = snprintf(chunk, sizeof chunk, "%d,", i);
        assert_int_equal(store_append_output(f->s, a, 1, chunk, (size_t)n), STORE_OK);
        memcpy(expect + total, chunk, (size_t)n);
        total += (size_t)n;
    }
    expect_output(f->s, a, 1, 0, 0, expect, total);
    for (size_t off = 0; off <= total; off += 37)
        expect_output(f->s, a, 1, off, 0, expect + off, total - off);
    expect_output(f->s, a, 1, 100, 50, expect + 100, 50);
}

/* ---- lists ------------------------------------------------------------------- */

/* A job with a result as large as max_output_bytes allows: gets carry its first 64 KiB,
 * lists its first 256 bytes, each with its whole size, and the rest is read by range;
 * none of that loads the whole value into SQLite's memory. */
static void large_results_read_in_parts(void **state)
{
    fixture *f = *state;
    const size_t big = 8u << 20;
    char *text = malloc(big + 1);
    assert_non_null(text);
    for (size_t i = 0; i < big; i++)
        text[i] = (char)('a' + i % 26);
    text[0] = text[big - 1] = '"';
    text[big] = '\0';
    char a[JOB_ID_LEN + 1], none[JOB_ID_LEN + 1], small[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);
    claim_expect(f->s, a);
    job j;
    job_init(&j);
    memcpy(j.id, a, sizeof j.id);
    j.status = JOB_SUCCEEDED;
    j.finished_at_ms = 1700000009000;
    j.result_json = text;
    assert_int_equal(store_finish_job(f->s, &j), STORE_OK);

    /* SQLite's memory (PostgreSQL's reads are bounded by the query: none to measure here). */
    sqlite3_int64 before = sqlite3_memory_used();
    sqlite3_memory_highwater(1);
    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, a, &g), STORE_OK);
    assert_int_equal(g.result_bytes, big);
    assert_int_equal(strlen(g.result_json), STORE_RESULT_INLINE_MAX);
    assert_memory_equal(g.result_json, text, STORE_RESULT_INLINE_MAX);
    assert_non_null(g.script);
    job_free(&g);
    job_list l;
    assert_int_equal(store_list_jobs(f->s, NULL, 0, 10, &l), STORE_OK);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.items[0].result_bytes, big);
    assert_int_equal(strlen(l.items[0].result_json), STORE_LIST_RESULT_MAX);
    assert_memory_equal(l.items[0].result_json, text, STORE_LIST_RESULT_MAX);
    assert_null(l.items[0].script); /* the list form leaves the request out */
    assert_null(l.items[0].inputs_json);
    job_list_free(&l);
    char *data = NULL;
    size_t len = 0;
    uint64_t total = 0;
    store_rc rrc = store_read_result(f->s, a, big - 10, 100, &data, &len, &total);
    if (rrc != STORE_OK)
        fprintf(stderr, "read_result: %s\n", store_last_error(f->s));
    assert_int_equal(rrc, STORE_OK);
    assert_int_equal(len, 10);
    assert_int_equal(total, big);
    assert_memory_equal(data, text + big - 10, 10);
    assert_int_equal(data[len], '\0');
    free(data);
    /* Reading the whole value would have taken 8 MiB; the page cache (2 MB) is the rest. */
    if (!g_pg_url)
        assert_in_range(sqlite3_memory_highwater(0) - before, 0, 4 << 20);

    /* Read back by ranges, it is the text stored. */
    size_t got = 0;
    while (got < big) {
        assert_int_equal(store_read_result(f->s, a, got, 3u << 20, &data, &len, &total), STORE_OK);
        assert_true(len > 0);
        assert_memory_equal(data, text + got, len);
        got += len;
        free(data);
    }
    assert_int_equal(got, big);
    assert_int_equal(store_read_result(f->s, a, big, 5, &data, &len, &total), STORE_OK);
    assert_int_equal(len, 0); /* past the end */
    free(data);
    job_free(&j);

    /* A small result is all there; no result reads as empty; no job is not found. */
    add_job(f->s, NULL, small);
    assert_int_equal(store_read_result(f->s, small, 0, 5, &data, &len, &total), STORE_OK);
    assert_true(len == 0 && total == 0 && data && !data[0]);
    free(data);
    claim_expect(f->s, small);
    job_init(&j);
    memcpy(j.id, small, sizeof j.id);
    j.status = JOB_SUCCEEDED;
    j.finished_at_ms = 1700000009000;
    j.result_json = strdup("42");
    assert_int_equal(store_finish_job(f->s, &j), STORE_OK);
    job_free(&j);
    assert_int_equal(store_get_job(f->s, small, &g), STORE_OK);
    assert_string_equal(g.result_json, "42");
    assert_int_equal(g.result_bytes, 2);
    job_free(&g);
    job_new_id(none);
    assert_int_equal(store_read_result(f->s, none, 0, 5, &data, &len, &total), STORE_NOT_FOUND);
    assert_null(data);
}

static void output_size_without_reading_output(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1], none[JOB_ID_LEN + 1];
    add_job(f->s, NULL, a);
    uint64_t total = 99;
    assert_int_equal(store_output_size(f->s, a, 1, &total), STORE_OK);
    assert_int_equal(total, 0);
    claim_expect(f->s, a);
    assert_int_equal(store_append_output(f->s, a, 1, "hello ", 6), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 2, "e", 1), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 1, "world", 5), STORE_OK);
    assert_int_equal(store_output_size(f->s, a, 1, &total), STORE_OK);
    assert_int_equal(total, 11);
    assert_int_equal(store_output_size(f->s, a, 2, &total), STORE_OK);
    assert_int_equal(total, 1);
    job_new_id(none);
    assert_int_equal(store_output_size(f->s, none, 1, &total), STORE_NOT_FOUND);
    assert_int_equal(store_output_size(f->s, a, 3, &total), STORE_ERROR);
}

static void pagination_is_stable_under_inserts(void **state)
{
    fixture *f = *state;
    enum { N = 10 };
    char ids[N][JOB_ID_LEN + 1];
    for (int i = 0; i < N; i++)
        add_job(f->s, NULL, ids[i]);

    int seen = 0, pages = 0;
    int64_t cursor = 0;
    int64_t last_seq = INT64_MAX;
    do {
        job_list l;
        assert_int_equal(store_list_jobs(f->s, NULL, cursor, 3, &l), STORE_OK);
        pages++;
        assert_true(l.count <= 3);
        for (size_t i = 0; i < l.count; i++) {
            assert_true(l.items[i].seq < last_seq); /* newest first, strictly */
            last_seq = l.items[i].seq;
            assert_true(seen < N);
            /* Pre-existing jobs in reverse insertion order, each exactly once. */
            assert_string_equal(l.items[i].id, ids[N - 1 - seen]);
            assert_null(l.items[i].script);       /* list form */
            assert_null(l.items[i].request_json);
            assert_null(l.items[i].inputs_json);
            assert_non_null(l.items[i].env_json);   /* the rest is read */
            seen++;
        }
        cursor = l.next_seq;
        if (cursor)
            assert_int_equal(cursor, l.items[l.count - 1].seq);
        job_list_free(&l);
        /* New jobs arrive between pages: none of them may appear in the walk. */
        add_job(f->s, NULL, NULL);
        add_job(f->s, NULL, NULL);
    } while (cursor != 0);
    assert_int_equal(seen, N);
    assert_int_equal(pages, 4); /* 3+3+3+1: no empty trailing page */

    /* Exactly the limit left: the last page says there is no more. */
    job_list l;
    assert_int_equal(store_list_jobs(f->s, NULL, 0, 0, &l), STORE_OK); /* 0 = all */
    assert_int_equal(l.count, N + 8);
    assert_int_equal(l.next_seq, 0);
    int64_t third = l.items[l.count - 3].seq;
    job_list_free(&l);
    assert_int_equal(store_list_jobs(f->s, NULL, third, 2, &l), STORE_OK);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.next_seq, 0);
    assert_string_equal(l.items[1].id, ids[0]);
    job_list_free(&l);
}

static void status_and_label_filters(void **state)
{
    fixture *f = *state;
    char red1[JOB_ID_LEN + 1], red2[JOB_ID_LEN + 1], blue[JOB_ID_LEN + 1];
    char dotted[JOB_ID_LEN + 1], quoted[JOB_ID_LEN + 1], plain_a[JOB_ID_LEN + 1];
    add_job(f->s, "{\"team\":\"red\",\"env\":\"prod\"}", red1);
    add_job(f->s, "{\"team\":\"blue\"}", blue);
    add_job(f->s, "{\"team\":\"red\"}", red2);
    add_job(f->s, "{\"a.b\":\"x\"}", dotted);
    add_job(f->s, "{\"a\":{\"b\":\"x\"},\"q\\\"k\":\"v'1\"}", quoted);
    add_job(f->s, "{\"a\":\"x\"}", plain_a);
    add_job(f->s, NULL, NULL);
    claim_expect(f->s, red1);

    struct {
        store_filter flt;
        int n;
        const char *ids[3];
    } cases[] = {
        {{.label_key = "team", .label_value = "red"}, 2, {red2, red1}},
        {{.label_key = "team", .label_value = "blue"}, 1, {blue}},
        {{.label_key = "team", .label_value = "green"}, 0, {NULL}},
        {{.label_key = "team", .label_value = "red", .has_status = 1, .status = JOB_QUEUED}, 1,
         {red2}},
        {{.label_key = "team", .label_value = "red", .has_status = 1, .status = JOB_RUNNING}, 1,
         {red1}},
        {{.has_status = 1, .status = JOB_RUNNING}, 1, {red1}},
        {{.has_status = 1, .status = JOB_FAILED}, 0, {NULL}},
        /* A dotted key is one key, not a path into {"a":{"b":..}}. */
        {{.label_key = "a.b", .label_value = "x"}, 1, {dotted}},
        {{.label_key = "a", .label_value = "x"}, 1, {plain_a}},
        {{.label_key = "q\"k", .label_value = "v'1"}, 1, {quoted}},
        {{.label_key = "q\"k", .label_value = "v'2"}, 0, {NULL}},
        {{.label_key = "team"}, 3, {red2, blue, red1}}, /* key only: any value */
        {{.label_key = "TEAM", .label_value = "red"}, 0, {NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        job_list l;
        assert_int_equal(store_list_jobs(f->s, &cases[c].flt, 0, 50, &l), STORE_OK);
        if ((int)l.count != cases[c].n)
            fail_msg("case %zu: %zu jobs, want %d", c, l.count, cases[c].n);
        for (int i = 0; i < cases[c].n; i++)
            assert_string_equal(l.items[i].id, cases[c].ids[i]);
        assert_int_equal(l.next_seq, 0);
        job_list_free(&l);
    }

    /* Filtered pages walk the same way. */
    store_filter team = {.label_key = "team"};
    job_list l;
    assert_int_equal(store_list_jobs(f->s, &team, 0, 2, &l), STORE_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[1].id, blue);
    int64_t next = l.next_seq;
    assert_true(next > 0);
    assert_string_equal(l.items[0].labels_json, "{\"team\":\"red\"}");
    job_list_free(&l);
    assert_int_equal(store_list_jobs(f->s, &team, next, 2, &l), STORE_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].id, red1);
    assert_int_equal(l.next_seq, 0);
    job_list_free(&l);
}

static void delete_finished_before_cutoff(void **state)
{
    fixture *f = *state;
    char old1[JOB_ID_LEN + 1], old2[JOB_ID_LEN + 1], recent[JOB_ID_LEN + 1];
    char queued[JOB_ID_LEN + 1], running[JOB_ID_LEN + 1];
    add_job(f->s, "{\"x\":\"1\"}", old1);
    add_job(f->s, NULL, old2);
    add_job(f->s, NULL, recent);
    add_job(f->s, NULL, running);
    claim_expect(f->s, old1);
    claim_expect(f->s, old2);
    claim_expect(f->s, recent);
    claim_expect(f->s, running);
    add_job(f->s, NULL, queued);
    assert_int_equal(store_append_output(f->s, old1, 1, "bye", 3), STORE_OK);
    assert_int_equal(store_append_output(f->s, recent, 1, "hi", 2), STORE_OK);
    finish_as(f->s, old1, JOB_SUCCEEDED, 1000);
    finish_as(f->s, old2, JOB_CANCELLED, 2000);
    finish_as(f->s, recent, JOB_FAILED, 3000);

    assert_int_equal(store_delete_finished_before(f->s, 2000), 1); /* strictly before */
    assert_int_equal(store_delete_finished_before(f->s, 2500), 1);
    assert_int_equal(store_delete_finished_before(f->s, 2500), 0);
    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, old1, &g), STORE_NOT_FOUND);
    assert_int_equal(store_get_job(f->s, old2, &g), STORE_NOT_FOUND);
    assert_int_equal(status_of(f->s, recent), JOB_FAILED);
    assert_int_equal(status_of(f->s, running), JOB_RUNNING);
    assert_int_equal(status_of(f->s, queued), JOB_QUEUED);
    expect_output(f->s, recent, 1, 0, 0, "hi", 2);

    raw_db *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM job_output", NULL), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM job_labels", NULL), 0);
    raw_close(db);
    /* Unfinished jobs survive any cutoff. */
    assert_int_equal(store_delete_finished_before(f->s, INT64_MAX), 1);
    assert_int_equal(status_of(f->s, running), JOB_RUNNING);
    assert_int_equal(status_of(f->s, queued), JOB_QUEUED);
}

/* ---- secrets at rest ------------------------------------------------------------ */

/* Simulates an SQLite built without SQLITE_SECURE_DELETE (upstream's default; Debian's
 * build turns it on): every connection opened while this is registered starts with
 * secure_delete off, so only the store's own PRAGMA can zero what it frees. */
static int secure_delete_off(sqlite3 *db, char **err, const void *api)
{
    (void)api;
    return sqlite3_exec(db, "PRAGMA secure_delete=OFF", NULL, NULL, err);
}

static int setup_upstream_sqlite(void **state)
{
    if (sqlite3_auto_extension((void (*)(void))secure_delete_off) != SQLITE_OK)
        return -1;
    return setup(state);
}

static int teardown_upstream_sqlite(void **state)
{
    int rc = teardown(state);
    sqlite3_reset_auto_extension();
    return rc;
}

/* The whole file, malloc'd (NULL with *len 0 when it does not exist). */
static char *slurp(const char *path, size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        assert_int_equal(errno, ENOENT);
        return NULL;
    }
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

/* Whether any of the database's files (database, WAL, shared memory) holds these bytes. */
static bool files_hold(const fixture *f, const char *needle)
{
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    bool found = false;
    for (int i = 0; i < 4 && !found; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        size_t len;
        char *data = slurp(p, &len);
        found = data && memmem(data, len, needle, strlen(needle)) != NULL;
        free(data);
    }
    return found;
}

typedef struct secret_job {
    char id[JOB_ID_LEN + 1];
    char secret[64];
} secret_job;

/* A queued job whose env carries a secret of its own (and one empty value). */
static void add_secret_job(store *s, secret_job *sj, const char *tag)
{
    job j;
    make_job(&j, NULL);
    snprintf(sj->secret, sizeof sj->secret, "%s-%08lx%08lx", tag, (unsigned long)random(),
             (unsigned long)random());
    char env[160];
    snprintf(env, sizeof env, "{\"API_KEY\":\"%s\",\"MODE\":\"\"}", sj->secret);
    free(j.env_json);
    j.env_json = strdup(env);
    assert_int_equal(store_insert_job(s, &j, 0, NULL), STORE_OK);
    memcpy(sj->id, j.id, sizeof sj->id);
    job_free(&j);
}

static void expect_env(store *s, const char *id, const char *env_json)
{
    job g;
    job_init(&g);
    assert_int_equal(store_get_job(s, id, &g), STORE_OK);
    assert_string_equal(g.env_json, env_json);
    job_free(&g);
}

#define ERASED_ENV "{\"API_KEY\":null,\"MODE\":null}"

/* Kept while the job may run, gone from the row and from every file the moment it is
 * final, by each path that ends a job. */
static void env_values_erased_on_every_final_transition(void **state)
{
    fixture *f = *state;
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));

    /* A job without env_vars ends without emptying the WAL (no per-job checkpoint). */
    char plain[JOB_ID_LEN + 1];
    job pj;
    make_job(&pj, NULL);
    free(pj.env_json);
    pj.env_json = strdup("{}");
    assert_int_equal(store_insert_job(f->s, &pj, 0, NULL), STORE_OK);
    memcpy(plain, pj.id, sizeof plain);
    job_free(&pj);
    claim_expect(f->s, plain);
    finish_as(f->s, plain, JOB_SUCCEEDED, 1700000002000);
    expect_env(f->s, plain, "{}");
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    assert_true(st.st_size > 0);

    enum { OK, FAILED, TIMED_OUT, CANCELLED_RUNNING, STAYS_RUNNING, LOST, STAYS_QUEUED,
           CANCELLED_QUEUED, CANCELLED_QUEUED_NO_OUT, N };
    static const char *const tags[N] = {"ok", "failed", "timedout", "cancelrun", "running",
                                        "lost", "queued", "cancelq", "cancelq2"};
    secret_job jobs[N];
    for (int i = 0; i < N; i++)
        add_secret_job(f->s, &jobs[i], tags[i]);
    for (int i = OK; i <= LOST; i++)
        claim_expect(f->s, jobs[i].id);
    /* The scan can see them: while a job may run, its values are there. */
    for (int i = 0; i < N; i++)
        assert_true(files_hold(f, jobs[i].secret));

    const job_status finals[] = {JOB_SUCCEEDED, JOB_FAILED, JOB_TIMED_OUT, JOB_CANCELLED};
    for (int i = OK; i <= CANCELLED_RUNNING; i++) {
        finish_as(f->s, jobs[i].id, finals[i], 1700000003000);
        expect_env(f->s, jobs[i].id, ERASED_ENV);
        assert_false(files_hold(f, jobs[i].secret));
    }

    job out;
    job_init(&out);
    assert_int_equal(store_cancel_queued(f->s, jobs[CANCELLED_QUEUED].id, 1700000004000, &out),
                     STORE_OK);
    assert_string_equal(out.env_json, ERASED_ENV); /* what the API answers with */
    job_free(&out);
    assert_false(files_hold(f, jobs[CANCELLED_QUEUED].secret));
    assert_int_equal(
        store_cancel_queued(f->s, jobs[CANCELLED_QUEUED_NO_OUT].id, 1700000004000, NULL),
        STORE_OK);
    expect_env(f->s, jobs[CANCELLED_QUEUED_NO_OUT].id, ERASED_ENV);
    assert_false(files_hold(f, jobs[CANCELLED_QUEUED_NO_OUT].secret));

    /* Still queued or running: intact, in the row and so in the files. */
    char kept[160];
    for (int i = STAYS_RUNNING; i <= STAYS_QUEUED; i++) {
        snprintf(kept, sizeof kept, "{\"API_KEY\":\"%s\",\"MODE\":\"\"}", jobs[i].secret);
        expect_env(f->s, jobs[i].id, kept);
        assert_true(files_hold(f, jobs[i].secret));
    }

    /* A crash: the next start ends the running jobs as ExecutorLost, values erased. */
    store_close(f->s);
    char err[256];
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    assert_int_equal(store_recover_running(f->s, 1700000005000), 2);
    for (int i = STAYS_RUNNING; i <= LOST; i++) {
        expect_env(f->s, jobs[i].id, ERASED_ENV);
        assert_false(files_hold(f, jobs[i].secret));
    }
    /* A queued job survives the restart with its values, and runs with them. */
    snprintf(kept, sizeof kept, "{\"API_KEY\":\"%s\",\"MODE\":\"\"}", jobs[STAYS_QUEUED].secret);
    job run;
    job_init(&run);
    assert_int_equal(store_claim_next(f->s, 1700000006000, &run), STORE_OK);
    assert_string_equal(run.id, jobs[STAYS_QUEUED].id);
    assert_string_equal(run.env_json, kept);
    job_free(&run);
    assert_true(files_hold(f, jobs[STAYS_QUEUED].secret));
    finish_as(f->s, jobs[STAYS_QUEUED].id, JOB_SUCCEEDED, 1700000007000);
    assert_false(files_hold(f, jobs[STAYS_QUEUED].secret));
    for (int i = 0; i < N; i++)
        assert_false(files_hold(f, jobs[i].secret));
}

/* A crash between a job's erasing commit and the checkpoint after it leaves old frames in
 * the WAL: the next start empties it. */
static void start_empties_a_wal_left_with_old_values(void **state)
{
    fixture *f = *state;
    secret_job sj;
    add_secret_job(f->s, &sj, "crash");
    /* Another connection keeps the WAL from being checkpointed away when the store
     * closes, as a crash would; through it the erasing commit lands without the store's
     * checkpoint. */
    raw_db *db = raw_open(f);
    raw_exec(db, "UPDATE jobs SET status = 'cancelled', finished_at_ms = 1, env_json = '{}'");
    store_close(f->s);
    f->s = NULL;
    assert_true(files_hold(f, sj.secret));

    char err[256];
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    assert_false(files_hold(f, sj.secret));
    raw_close(db);
}

/* Idempotency keeps the request's SHA-256, not the request (which carries env values). */
static void request_digest_stored_not_request(void **state)
{
    fixture *f = *state;
    char id[JOB_ID_LEN + 1], again[JOB_ID_LEN + 1];
    /* The standard test vector: the digest is a real SHA-256 of exactly the body's bytes. */
    assert_int_equal(insert_keyed(f->s, "vector", "abc", 0, NULL, id), STORE_OK);
    raw_db *db = raw_open(f);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db->lite, "SELECT request_sha256 FROM jobs WHERE id = ?1", -1,
                                        &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sqlite3_finalize(st);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_table_info('jobs')"
                                 " WHERE name = 'request_json'", NULL), 0);
    /* No key, no request: no digest. */
    char plain[JOB_ID_LEN + 1];
    add_job(f->s, NULL, plain);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM jobs WHERE id = ?1"
                                 " AND request_sha256 IS NULL", plain), 1);
    raw_close(db);

    /* A value only the request holds is in no file, even while its job is queued. */
    char body[160], secret[64];
    snprintf(secret, sizeof secret, "request-only-%08lx%08lx", (unsigned long)random(),
             (unsigned long)random());
    snprintf(body, sizeof body, "{\"env_vars\":{\"K\":\"%s\"},\"script\":\"a\"}", secret);
    assert_int_equal(insert_keyed(f->s, "k", body, 0, NULL, id), STORE_OK);
    assert_false(files_hold(f, secret));

    /* Same body: the same job; another body: conflict. */
    job ex;
    job_init(&ex);
    assert_int_equal(insert_keyed(f->s, "k", body, 0, &ex, again), STORE_EXISTS);
    assert_string_equal(ex.id, id);
    job_free(&ex);
    body[strlen(body) - 2] = 'b';
    assert_int_equal(insert_keyed(f->s, "k", body, 0, &ex, again), STORE_CONFLICT);
}

#define V2_JOB(id, status, finished, env, key, request)                                     \
    "INSERT INTO jobs (id, status, backend, created_at_ms, finished_at_ms, script,"         \
    " env_json, timeout_seconds, memory_mb, cpu_seconds, max_processes, max_file_size_mb,"  \
    " max_open_files, max_output_bytes, idempotency_key, request_json) VALUES ('" id "', '" \
    status "', 'pool', 1, " finished ", 's', '" env "', 30, 512, 60, 64, 64, 256, 1048576, " \
    key ", " request ")"
#define REQ_A "{\"env_vars\":{\"TOKEN\":\"v2-final-secret\"},\"script\":\"a\"}"
#define REQ_B "{\"env_vars\":{\"TOKEN\":\"v2-queued-secret\"},\"script\":\"b\"}"

/* A database written by the previous version (schema 2, requests stored whole, values
 * kept after the end, freed space not zeroed) is converted on open. */
static void migration_from_v2_erases_and_digests(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    f->s = NULL;
    remove_db_files(f);

    raw_db *db = raw_open(f);
    raw_exec(db, "PRAGMA journal_mode=WAL");
    char err[512] = "";
    assert_int_equal(migrate_apply(db->lite, migrations, 2, err, sizeof err), 2);
    raw_exec(db, V2_JOB("a", "succeeded", "2", "{\"TOKEN\":\"v2-final-secret\"}", "'ka'",
                        "'" REQ_A "'"));
    raw_exec(db, V2_JOB("b", "queued", "NULL", "{\"TOKEN\":\"v2-queued-secret\"}", "'kb'",
                        "'" REQ_B "'"));
    raw_exec(db, V2_JOB("c", "cancelled", "3", "{\"X\":\"v2-cancelled-secret\"}", "NULL", "NULL"));
    /* Deleted by retention before this version: a large env spills into overflow pages,
     * which go to the free list as they were, where no row rewrite reaches them. */
    raw_exec(db, V2_JOB("d", "failed", "4",
                        "{\"X\":\"v2-deleted-secret' || hex(zeroblob(3000)) || '\"}", "NULL",
                        "NULL"));
    raw_exec(db, "DELETE FROM jobs WHERE id = 'd'");
    raw_close(db);
    /* As the old build left it: the deleted row's bytes are still in the free space. */
    assert_true(files_hold(f, "v2-deleted-secret"));
    assert_true(files_hold(f, "v2-final-secret"));

    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    assert_int_equal(store_schema_version(f->s), latest_version());

    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_table_info('jobs')"
                                 " WHERE name = 'request_json'", NULL), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master"
                                 " WHERE name = 'vacuum_pending'", NULL), 0);
    char *digest = raw_text(db, "SELECT request_sha256 FROM jobs WHERE id = ?1", "a");
    assert_string_equal(digest, "5199b0faf92807301e31bb41c6d1622802a7a027803809c4312e51b4c536e97c");
    free(digest);
    digest = raw_text(db, "SELECT request_sha256 FROM jobs WHERE id = ?1", "c");
    assert_null(digest);
    char *env = raw_text(db, "SELECT env_json FROM jobs WHERE id = ?1", "a");
    assert_string_equal(env, "{\"TOKEN\":null}");
    free(env);
    env = raw_text(db, "SELECT env_json FROM jobs WHERE id = ?1", "c");
    assert_string_equal(env, "{\"X\":null}");
    free(env);
    env = raw_text(db, "SELECT env_json FROM jobs WHERE id = ?1", "b");
    assert_string_equal(env, "{\"TOKEN\":\"v2-queued-secret\"}"); /* may still run */
    free(env);
    raw_close(db);

    assert_false(files_hold(f, "v2-final-secret"));
    assert_false(files_hold(f, "v2-cancelled-secret"));
    assert_false(files_hold(f, "v2-deleted-secret"));
    assert_true(files_hold(f, "v2-queued-secret"));

    /* Idempotency over the converted rows answers as before. */
    job ex;
    job_init(&ex);
    char id[JOB_ID_LEN + 1];
    assert_int_equal(insert_keyed(f->s, "ka", REQ_A, 0, &ex, id), STORE_EXISTS);
    assert_string_equal(ex.id, "a");
    job_free(&ex);
    assert_int_equal(insert_keyed(f->s, "kb", REQ_B, 0, &ex, id), STORE_EXISTS);
    assert_string_equal(ex.id, "b");
    job_free(&ex);
    assert_int_equal(insert_keyed(f->s, "ka", REQ_B, 0, &ex, id), STORE_CONFLICT);
}

static void expect_mode(const fixture *f, const char *suffix, mode_t mode)
{
    char p[160];
    snprintf(p, sizeof p, "%s%s", f->path, suffix);
    struct stat st;
    if (stat(p, &st) != 0)
        fail_msg("stat %s: %s", p, strerror(errno));
    if ((st.st_mode & 07777) != mode)
        fail_msg("%s has mode %04o, not %04o", p, (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

/* The database, WAL and shared-memory files are owner-only, new or left by an older build. */
static void db_files_are_owner_only(void **state)
{
    fixture *f = *state;
    mode_t old_umask = umask(022);
    store_close(f->s);
    remove_db_files(f);
    char err[512] = "";
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    add_job(f->s, NULL, NULL); /* the WAL exists once something was written */
    expect_mode(f, "", 0600);
    expect_mode(f, "-wal", 0600);
    expect_mode(f, "-shm", 0600);
    store_close(f->s);

    /* As a 0644 build left them: an open connection keeps -wal and -shm in place. */
    char p[160];
    assert_int_equal(chmod(f->path, 0644), 0);
    raw_db *db = raw_open(f);
    raw_exec(db, "UPDATE jobs SET backend = 'pool'");
    const char *suffixes[] = {"-wal", "-shm"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        assert_int_equal(chmod(p, 0644), 0);
    }
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    raw_close(db);
    expect_mode(f, "", 0600);
    expect_mode(f, "-wal", 0600);
    expect_mode(f, "-shm", 0600);

    /* Something that is not a regular file under the database's name is refused. */
    store_close(f->s);
    remove_db_files(f);
    assert_int_equal(mkfifo(f->path, 0600), 0);
    f->s = store_open(f->path, err, sizeof err);
    assert_null(f->s);
    assert_non_null(strstr(err, "not a regular file"));
    unlink(f->path);
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    umask(old_umask);
}

/* ---- storage quota ------------------------------------------------------------- */

/* make_job's script and inputs: what the quota counts of a queued job. */
#define REQUEST_BYTES (sizeof "def main(x):\n    return x\n" - 1 + sizeof "{\"x\":1}" - 1)

static uint64_t storage_used(store *s)
{
    store_storage st;
    assert_int_equal(store_storage_state(s, &st), 0);
    return st.used_bytes;
}

/* The running total is the sum over the jobs, in the file itself. */
static void total_matches_rows(const fixture *f, uint64_t want)
{
    raw_db *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT used_bytes FROM storage_usage", NULL), (int64_t)want);
    assert_int_equal(raw_int(db, "SELECT COALESCE(SUM(stored_bytes), 0) FROM jobs", NULL),
                     (int64_t)want);
    raw_close(db);
}

static void set_quota(fixture *f, uint64_t quota)
{
    char err[256] = "";
    store_storage_options o = {.quota_bytes = quota};
    assert_int_equal(store_set_storage(f->s, &o, err, sizeof err), 0);
}

static void finish_with(store *s, const char *id, job_status st, int64_t at, const char *result,
                        const char *message)
{
    job j;
    job_init(&j);
    memcpy(j.id, id, JOB_ID_LEN + 1);
    j.status = st;
    j.finished_at_ms = at;
    j.result_json = result ? strdup(result) : NULL;
    j.error_message = message ? strdup(message) : NULL;
    assert_int_equal(store_finish_job(s, &j), STORE_OK);
    job_free(&j);
}

static void storage_total_follows_every_change(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1];
    assert_int_equal(storage_used(f->s), 0);
    add_job(f->s, NULL, a);
    add_job(f->s, NULL, b);
    assert_int_equal(storage_used(f->s), 2 * REQUEST_BYTES);
    claim_expect(f->s, a);
    assert_int_equal(store_append_output(f->s, a, 1, "hello", 5), STORE_OK);
    assert_int_equal(store_append_output(f->s, a, 2, "err", 3), STORE_OK);
    finish_with(f->s, a, JOB_SUCCEEDED, 1000, "[1,2]", NULL);
    claim_expect(f->s, b);
    finish_with(f->s, b, JOB_FAILED, 2000, NULL, "boom");
    uint64_t want = 2 * REQUEST_BYTES + 5 + 3 + 5 + 4;
    assert_int_equal(storage_used(f->s), want);
    total_matches_rows(f, want);

    /* Kept in the file: a restart reads it, no sum needed. */
    store_close(f->s);
    char err[512] = "";
    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    assert_int_equal(storage_used(f->s), want);

    assert_int_equal(store_delete_job(f->s, a), STORE_OK);
    want -= REQUEST_BYTES + 5 + 3 + 5;
    assert_int_equal(storage_used(f->s), want);
    assert_int_equal(store_delete_finished_before(f->s, INT64_MAX), 1);
    assert_int_equal(storage_used(f->s), 0);
    total_matches_rows(f, 0);
}

/* Finished jobs lose their output oldest finish first (not oldest submitted), then their
 * results; running and queued jobs are never touched; when nothing is left, no room. */
static void eviction_takes_the_oldest_finished_first(void **state)
{
    fixture *f = *state;
    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1], c[JOB_ID_LEN + 1], d[JOB_ID_LEN + 1];
    char kb[1000], r100[101];
    memset(kb, 'o', sizeof kb);
    memset(r100, '1', 100);
    r100[100] = '\0';
    char *ids[] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        add_job(f->s, NULL, ids[i]);
        claim_expect(f->s, ids[i]);
        assert_int_equal(store_append_output(f->s, ids[i], 1, kb, sizeof kb), STORE_OK);
    }
    finish_with(f->s, b, JOB_SUCCEEDED, 1000, r100, NULL);
    finish_with(f->s, a, JOB_SUCCEEDED, 2000, r100, NULL);
    finish_with(f->s, c, JOB_SUCCEEDED, 3000, r100, NULL);
    uint64_t used = 4 * REQUEST_BYTES + 4 * 1000 + 3 * 100;
    assert_int_equal(storage_used(f->s), used);

    /* 600 bytes more for the running job d, 100 over the quota: b's output goes (b
     * finished first), and only it, though a was submitted before. */
    uint64_t quota = used + 100;
    set_quota(f, quota);
    assert_int_equal(store_append_output(f->s, d, 1, kb, 600), STORE_OK);
    job g;
    job_init(&g);
    assert_int_equal(store_get_job(f->s, b, &g), STORE_OK);
    assert_int_equal(g.status, JOB_SUCCEEDED);
    assert_true(g.output_evicted);
    assert_false(g.result_evicted);
    assert_int_equal(g.stdout_bytes, 0); /* finish_with recorded none; the flag tells */
    assert_string_equal(g.result_json, r100);
    job_free(&g);
    expect_output(f->s, b, 1, 0, 0, "", 0);
    expect_output(f->s, a, 1, 0, 0, kb, sizeof kb);
    for (int i = 0; i < 4; i++) {
        if (ids[i] == b)
            continue;
        assert_int_equal(store_get_job(f->s, ids[i], &g), STORE_OK);
        assert_false(g.output_evicted);
        job_free(&g);
    }
    used = used - 1000 + 600;
    assert_int_equal(storage_used(f->s), used);
    total_matches_rows(f, used);

    /* 2,500 more: every other finished output (a, then c) and then the results, oldest
     * finished first, until slack (a sixteenth of the quota) is free as well. */
    char big[2500];
    memset(big, 'p', sizeof big);
    assert_int_equal(store_append_output(f->s, d, 1, big, sizeof big), STORE_OK);
    const char *finished[] = {b, a, c};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_get_job(f->s, finished[i], &g), STORE_OK);
        assert_int_equal(g.status, JOB_SUCCEEDED);
        assert_true(g.output_evicted);
        assert_true(g.result_evicted);
        assert_null(g.result_json);
        job_free(&g);
    }
    assert_int_equal(store_get_job(f->s, d, &g), STORE_OK);
    assert_int_equal(g.status, JOB_RUNNING);
    assert_false(g.output_evicted);
    job_free(&g);
    used = used - 2 * 1000 - 3 * 100 + 2500;
    assert_int_equal(storage_used(f->s), used);
    total_matches_rows(f, used);
    store_storage st;
    assert_int_equal(store_storage_state(f->s, &st), 0);
    assert_int_equal(st.evicted_outputs, 3);
    assert_int_equal(st.evicted_results, 3);
    assert_true(st.full); /* within a quarter of the quota and nothing left to evict */

    /* Only the running job holds data now: no room, and nothing of the chunk stored. */
    assert_int_equal(store_append_output(f->s, d, 1, kb, sizeof kb), STORE_NO_SPACE);
    assert_non_null(strstr(store_last_error(f->s), "quota"));
    char want[4100];
    memset(want, 'o', 1600);
    memset(want + 1600, 'p', 2500);
    expect_output(f->s, d, 1, 0, 0, want, sizeof want);

    /* Once d has ended, its output is what goes next. */
    finish_with(f->s, d, JOB_SUCCEEDED, 4000, NULL, NULL);
    assert_int_equal(store_storage_state(f->s, &st), 0);
    assert_false(st.full);
}

/* Queued jobs' scripts and inputs are never evicted: with only them holding the quota a
 * new job is refused, nothing written, and a finished job's output too small to make
 * room is not thrown away for nothing; deleting makes room again. */
static void insert_refused_when_unfinished_jobs_hold_the_quota(void **state)
{
    fixture *f = *state;
    char done[JOB_ID_LEN + 1];
    add_job(f->s, NULL, done);
    claim_expect(f->s, done);
    assert_int_equal(store_append_output(f->s, done, 1, "evict me", 8), STORE_OK);
    finish_with(f->s, done, JOB_SUCCEEDED, 1000, NULL, NULL);
    set_quota(f, 3 * REQUEST_BYTES + 8 + 10);
    char ids[2][JOB_ID_LEN + 1];
    for (int i = 0; i < 2; i++)
        add_job(f->s, NULL, ids[i]);
    job j;
    make_job(&j, NULL);
    assert_int_equal(store_insert_job(f->s, &j, 0, NULL), STORE_NO_SPACE);
    assert_non_null(strstr(store_last_error(f->s), "quota"));
    assert_int_equal(store_count_status(f->s, JOB_QUEUED), 2);
    assert_int_equal(store_get_job(f->s, j.id, &(job){0}), STORE_NOT_FOUND);
    expect_output(f->s, done, 1, 0, 0, "evict me", 8);
    store_storage st;
    assert_int_equal(store_storage_state(f->s, &st), 0);
    assert_true(st.full);
    assert_int_equal(st.evictable_bytes, 8);
    assert_int_equal(st.evicted_outputs, 0);
    assert_non_null(strstr(st.reason, "quota"));

    job cancelled;
    job_init(&cancelled);
    assert_int_equal(store_cancel_queued(f->s, ids[0], 5, &cancelled), STORE_OK);
    job_free(&cancelled);
    assert_int_equal(store_insert_job(f->s, &j, 0, NULL), STORE_NO_SPACE); /* still held */
    assert_int_equal(store_delete_job(f->s, ids[0]), STORE_OK);
    assert_int_equal(store_insert_job(f->s, &j, 0, NULL), STORE_OK);
    job_free(&j);
}

/* A result over what is left is refused (the job stays running); the job then ends
 * without it, as the scheduler records it. */
static void result_that_does_not_fit_is_refused(void **state)
{
    fixture *f = *state;
    char id[JOB_ID_LEN + 1];
    add_job(f->s, NULL, id);
    claim_expect(f->s, id);
    set_quota(f, REQUEST_BYTES + 100);
    char result[201];
    memset(result, '7', 200);
    result[200] = '\0';
    job j;
    job_init(&j);
    memcpy(j.id, id, JOB_ID_LEN + 1);
    j.status = JOB_SUCCEEDED;
    j.result_json = strdup(result);
    assert_int_equal(store_finish_job(f->s, &j), STORE_NO_SPACE);
    assert_int_equal(status_of(f->s, id), JOB_RUNNING);
    assert_int_equal(store_make_room(f->s, 200), STORE_NO_SPACE);
    assert_int_equal(store_make_room(f->s, 50), STORE_OK);
    free(j.result_json);
    j.result_json = NULL;
    j.status = JOB_FAILED;
    j.error_type = strdup("StorageFull");
    assert_int_equal(store_finish_job(f->s, &j), STORE_OK);
    job_free(&j);
    assert_int_equal(status_of(f->s, id), JOB_FAILED);
}

/* Jobs stored before the quota existed are counted when the database is converted. */
static void migration_counts_what_older_builds_stored(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    f->s = NULL;
    remove_db_files(f);
    raw_db *db = raw_open(f);
    raw_exec(db, "PRAGMA journal_mode=WAL");
    char err[512] = "";
    assert_int_equal(migrate_apply(db->lite, migrations, 2, err, sizeof err), 2);
    raw_exec(db, "INSERT INTO jobs (id, status, backend, created_at_ms, started_at_ms,"
                 " finished_at_ms, script, inputs_json, timeout_seconds, memory_mb, cpu_seconds,"
                 " max_processes, max_file_size_mb, max_open_files, max_output_bytes, result_json,"
                 " error_message) VALUES ('a', 'succeeded', 'pool', 1, 2, 3, 'abc', '{}', 30, 512,"
                 " 60, 64, 64, 256, 1048576, '[1]', 'x')");
    raw_exec(db, "INSERT INTO jobs (id, status, backend, created_at_ms, script, inputs_json,"
                 " timeout_seconds, memory_mb, cpu_seconds, max_processes, max_file_size_mb,"
                 " max_open_files, max_output_bytes) VALUES ('b', 'queued', 'pool', 4, 'de',"
                 " '{\"k\":1}', 30, 512, 60, 64, 64, 256, 1048576)");
    raw_exec(db, "INSERT INTO job_output VALUES ('a', 1, 0, x'00112233'), ('a', 2, 0, x'44')");
    raw_close(db);

    f->s = store_open(f->path, err, sizeof err);
    assert_non_null(f->s);
    /* a: script 3 + inputs 2 + result 3 + error 1 + output 5; b: 2 + 7 */
    assert_int_equal(storage_used(f->s), 14 + 9);
    total_matches_rows(f, 23);
    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT output_stored_bytes FROM jobs WHERE id = ?1", "a"), 5);
    raw_close(db);
    store_storage st;
    assert_int_equal(store_storage_state(f->s, &st), 0);
    assert_int_equal(st.evictable_bytes, 5 + 3); /* a's output and result; b is queued */
}

/* A location with a scheme no store takes: the SQLite store refuses it rather than
 * create a file called "mysql:" in the working directory. */
static void url_location_is_refused(void **state)
{
    (void)state;
    char cwd_file[] = "mysql:";
    unlink(cwd_file);
    char err[512] = "";
    store *s = store_open("mysql://db.example/executord", err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "mysql://db.example/executord is a URL"));
    assert_non_null(strstr(err, "SQLite store takes a file path"));
    assert_int_equal(access(cwd_file, F_OK), -1);
    assert_int_equal(errno, ENOENT);
}

/* Every store takes both durability modes (a shared store ignores them: its server
 * decides) and keeps working after the switch. */
static void durability_is_accepted(void **state)
{
    fixture *f = *state;
    char err[256] = "";
    assert_int_equal(store_set_durability(f->s, STORE_DURABILITY_POWER_LOSS, err, sizeof err), 0);
    char id[JOB_ID_LEN + 1];
    add_job(f->s, NULL, id);
    assert_int_equal(store_set_durability(f->s, STORE_DURABILITY_PROCESS_CRASH, err, sizeof err),
                     0);
    assert_int_equal(status_of(f->s, id), JOB_QUEUED);
    store_durability d;
    assert_int_equal(store_durability_parse("process-crash", &d), 0);
    assert_int_equal(d, STORE_DURABILITY_PROCESS_CRASH);
    assert_int_equal(store_durability_parse("power-loss", &d), 0);
    assert_int_equal(d, STORE_DURABILITY_POWER_LOSS);
    assert_int_equal(store_durability_parse("FULL", &d), -1);
    assert_int_equal(store_durability_parse("", &d), -1);
}

static int synchronous_of(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The pragma is what the mode says, on both connections (the level is per connection, so
 * only the store's own can tell): 1 NORMAL for process-crash, the default, 2 FULL for
 * power-loss. */
static void durability_sets_synchronous(void **state)
{
    fixture *f = *state;
    char err[512] = "";
    sq_store *s = store_sqlite_ops.open(f->path, err, sizeof err);
    assert_non_null(s);
    assert_ptr_not_equal(s->reader, &s->writer);
    assert_int_equal(synchronous_of(s->writer.db), 1);
    assert_int_equal(synchronous_of(s->reader->db), 1);
    assert_int_equal(store_sqlite_ops.set_durability(s, STORE_DURABILITY_POWER_LOSS, err,
                                                     sizeof err), 0);
    assert_int_equal(synchronous_of(s->writer.db), 2);
    assert_int_equal(synchronous_of(s->reader->db), 2);
    assert_int_equal(store_sqlite_ops.set_durability(s, STORE_DURABILITY_PROCESS_CRASH, err,
                                                     sizeof err), 0);
    assert_int_equal(synchronous_of(s->writer.db), 1);
    assert_int_equal(synchronous_of(s->reader->db), 1);
    store_sqlite_ops.close(s);
}

/* The cases that hold for every store (the rest look at SQLite's files). */
#define SHARED_CASES                                                                        \
    cmocka_unit_test_setup_teardown(newer_schema_is_refused, setup, teardown),              \
    cmocka_unit_test_setup_teardown(durability_is_accepted, setup, teardown),               \
    cmocka_unit_test_setup_teardown(insert_and_get_round_trip, setup, teardown),            \
    cmocka_unit_test_setup_teardown(claim_takes_oldest_first, setup, teardown),             \
    cmocka_unit_test_setup_teardown(finish_only_from_running, setup, teardown),             \
    cmocka_unit_test_setup_teardown(cancel_only_queued, setup, teardown),                   \
    cmocka_unit_test_setup_teardown(delete_only_finished, setup, teardown),                 \
    cmocka_unit_test_setup_teardown(recover_marks_running_as_lost, setup, teardown),        \
    cmocka_unit_test_setup_teardown(idempotency_key_reuse, setup, teardown),                \
    cmocka_unit_test_setup_teardown(concurrent_inserts_with_one_key, setup, teardown),      \
    cmocka_unit_test_setup_teardown(concurrent_claims_take_each_job_once, setup, teardown), \
    cmocka_unit_test_setup_teardown(queue_bound_gives_full, setup, teardown),               \
    cmocka_unit_test_setup_teardown(output_append_and_read_with_offsets, setup, teardown),  \
    cmocka_unit_test_setup_teardown(output_many_chunks, setup, teardown),                   \
    cmocka_unit_test_setup_teardown(large_results_read_in_parts, setup, teardown),          \
    cmocka_unit_test_setup_teardown(output_size_without_reading_output, setup, teardown),   \
    cmocka_unit_test_setup_teardown(pagination_is_stable_under_inserts, setup, teardown),   \
    cmocka_unit_test_setup_teardown(status_and_label_filters, setup, teardown),             \
    cmocka_unit_test_setup_teardown(delete_finished_before_cutoff, setup, teardown),        \
    cmocka_unit_test_setup_teardown(storage_total_follows_every_change, setup, teardown),   \
    cmocka_unit_test_setup_teardown(eviction_takes_the_oldest_finished_first, setup, teardown), \
    cmocka_unit_test_setup_teardown(insert_refused_when_unfinished_jobs_hold_the_quota, setup, \
                                    teardown),                                              \
    cmocka_unit_test_setup_teardown(result_that_does_not_fit_is_refused, setup, teardown)

static int run_postgresql(void)
{
    g_pg_url = getenv("EXECUTORD_TEST_PG_URL");
    if (!g_pg_url || !*g_pg_url) {
        /* Run on purpose (ctest test_store_postgresql): a missing cluster is a failure. */
        fprintf(stderr, "test_store --postgresql: EXECUTORD_TEST_PG_URL is not set "
                        "(run it through tests/pg/with-cluster.sh)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {SHARED_CASES};
    return cmocka_run_group_tests_name("store_postgresql", tests, NULL, NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--postgresql") == 0)
        return run_postgresql();
    const struct CMUnitTest tests[] = {
        SHARED_CASES,
        cmocka_unit_test_setup_teardown(migrations_are_applied_and_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(reopening_is_idempotent_and_durable, setup, teardown),
        cmocka_unit_test(url_location_is_refused),
        cmocka_unit_test_setup_teardown(durability_sets_synchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_migration_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(env_values_erased_on_every_final_transition,
                                        setup_upstream_sqlite, teardown_upstream_sqlite),
        cmocka_unit_test_setup_teardown(start_empties_a_wal_left_with_old_values,
                                        setup_upstream_sqlite, teardown_upstream_sqlite),
        cmocka_unit_test_setup_teardown(request_digest_stored_not_request, setup, teardown),
        cmocka_unit_test_setup_teardown(migration_from_v2_erases_and_digests,
                                        setup_upstream_sqlite, teardown_upstream_sqlite),
        cmocka_unit_test_setup_teardown(db_files_are_owner_only, setup, teardown),
        cmocka_unit_test_setup_teardown(migration_counts_what_older_builds_stored, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
