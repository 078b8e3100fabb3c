/* Applies the numbered SQL migrations at start-up: each one in a transaction together
 * with its schema_migrations row, so a crash leaves either all of it or none. */
#include "src/migrate.h"

#include <stdio.h>

#include "src/timeutil.h"

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at_ms INTEGER NOT NULL)";

static void db_err(sqlite3 *db, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(db));
}

static void rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int migrate_current_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    int v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* 1 when recorded, 0 when not, -1 on error. */
static int is_recorded(sqlite3 *db, int version)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_bind_int(st, 1, version);
    int res = -1;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        res = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return res;
}

static int record(sqlite3 *db, const struct migration *m)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO schema_migrations (version, name, applied_at_ms)"
                           " VALUES (?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int ok = sqlite3_bind_int(st, 1, m->version) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 3, time_now_ms()) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* Applies one migration unless another process recorded it meanwhile: the check runs
 * inside the write transaction, so two instances starting together apply it once. */
static int apply_one(sqlite3 *db, const struct migration *m, char *err, size_t errlen)
{
    char what[512];
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(what, sizeof what, "migration %s: BEGIN", m->name);
        db_err(db, err, errlen, what);
        return -1;
    }
    int done = is_recorded(db, m->version);
    if (done < 0) {
        snprintf(what, sizeof what, "migration %s: reading schema_migrations", m->name);
        goto fail;
    }
    if (done == 0) {
        char *msg = NULL;
        if (sqlite3_exec(db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "migration %s failed: %s", m->name,
                     msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            rollback(db);
            return -1;
        }
        if (record(db, m) != 0) {
            snprintf(what, sizeof what, "migration %s: recording it", m->name);
            goto fail;
        }
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(what, sizeof what, "migration %s: COMMIT", m->name);
        goto fail;
    }
    return 0;
fail:
    db_err(db, err, errlen, what);
    rollback(db);
    return -1;
}

int migrate_apply(sqlite3 *db, const struct migration *list, int count, char *err, size_t errlen)
{
    int known = 0;
    for (int i = 0; i < count; i++) {
        if (list[i].version <= known) {
            snprintf(err, errlen, "migration %s: versions must be positive and ascending",
                     list[i].name);
            return -1;
        }
        known = list[i].version;
    }
    if (sqlite3_exec(db, create_table_sql, NULL, NULL, NULL) != SQLITE_OK) {
        db_err(db, err, errlen, "creating schema_migrations");
        return -1;
    }
    int current = migrate_current_version(db);
    if (current < 0) {
        db_err(db, err, errlen, "reading schema_migrations");
        return -1;
    }
    /* A newer build may have changed tables this one would misread or corrupt. */
    if (current > known) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this executord supports (%d); "
                 "upgrade executord",
                 current, known);
        return -1;
    }
    for (int i = 0; i < count; i++)
        if (apply_one(db, &list[i], err, errlen) != 0)
            return -1;
    return known;
}
