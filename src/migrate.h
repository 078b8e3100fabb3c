/* Schema migrations: applies the embedded migrations/NNN_*.sql in order, each in its own
 * transaction and recorded in schema_migrations; refuses a database from a newer build. */
#ifndef EXECUTORD_MIGRATE_H
#define EXECUTORD_MIGRATE_H

#include <stddef.h>

#include <sqlite3.h>

#include "src/migrations.h"

/* A migration runs inside BEGIN IMMEDIATE ... COMMIT with foreign_keys already on, so its
 * SQL must not contain BEGIN/COMMIT or PRAGMA foreign_keys (use defer_foreign_keys).
 *
 * Applies every migration of list[0..count) (ascending versions) not yet recorded in
 * schema_migrations, which it creates when missing. Returns the highest applied version
 * (0 for an empty list), or -1 with the reason in err: the database is newer than the
 * list knows, the list is out of order, or a migration failed (rolled back). */
int migrate_apply(sqlite3 *db, const struct migration *list, int count, char *err, size_t errlen);

/* Highest recorded version; 0 when none; -1 on error. */
int migrate_current_version(sqlite3 *db);

#endif
