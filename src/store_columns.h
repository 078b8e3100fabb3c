/* The columns of a job row, the one list both stores read and write a job by (SQLite:
 * src/store_sqlite*.c; PostgreSQL: src/store_pg*.c), built from src/job_fields.def and
 * sandbox/limits.def: X(column, form, kind, member) and each column's position. */
#ifndef EXECUTORD_STORE_COLUMNS_H
#define EXECUTORD_STORE_COLUMNS_H

#include "sandbox/limits.h"
#include "src/job.h"

/* The columns a job is read back from, in SELECT order: X(column, form, kind, member).
 * The request's columns come from src/job_fields.def (each named as its member of struct
 * job) and the limits' from sandbox/limits.def (each named as the limit), so a new field
 * or limit needs only its migrations (migrations/ and migrations_pg/). form: how it is
 * selected: COL, HEAD and REQUEST (the column), FULL (the column, NULL in lists: the
 * script and inputs, which only the full form of a job shows, keep pages small), TYPEOF
 * (not the value: the result, which each store reads in windows up to the size the caller
 * wants). kind: how each store reads it into job.member and binds it. The request itself
 * is never stored, only its digest, which only the idempotency check reads. The first
 * column goes to FIRST so that the SELECT list needs no leading comma. */
#define JOB_COLUMNS(FIRST, X)                                                               \
    FIRST(seq, COL, I64, seq)                                                               \
    X(id, COL, CHARS, id)                                                                   \
    X(status, COL, STATUS, status)                                                          \
    X(created_at_ms, COL, I64, created_at_ms)                                               \
    X(started_at_ms, COL, I64, started_at_ms) /* NULL reads as 0 */                         \
    X(finished_at_ms, COL, I64, finished_at_ms)                                             \
    JOB_REQUEST_COLUMNS(X)                                                                  \
    X(idempotency_key, COL, TEXT, idempotency_key)                                          \
    X(result_json, TYPEOF, RESULT, result_json)                                             \
    X(error_type, COL, TEXT, error_type)                                                    \
    X(error_message, COL, TEXT, error_message)                                              \
    X(error_traceback, COL, TEXT, error_traceback)                                          \
    X(exit_code, COL, EXIT, exit_code)                                                      \
    X(signal, COL, INT, signal)                                                             \
    X(usage_json, COL, TEXT, usage_json)                                                    \
    X(install, COL, TEXT, install_json)                                                     \
    X(stdout_bytes, COL, U64, stdout_bytes)                                                 \
    X(stderr_bytes, COL, U64, stderr_bytes)                                                 \
    X(stdout_truncated, COL, BOOL, stdout_truncated)                                        \
    X(stderr_truncated, COL, BOOL, stderr_truncated)                                        \
    X(output_evicted, COL, BOOL, output_evicted)                                            \
    X(result_evicted, COL, BOOL, result_evicted)

/* The columns of the request: one per row of src/job_fields.def, by its kind (JSON: text
 * stored as "{}" when absent), and one per limit for its LIMITS row. Columns are named as
 * the member, but for the kinds added later (DEPS), named as the field. */
#define JOB_REQUEST_COLUMNS(X) JOB_FIELDS(STORE_FIELD_COLUMNS, X)
#define STORE_FIELD_COLUMNS(X, name, kind, member, render, rank, seen) STORE_FIELD_##kind(X, name, member, render)
#define STORE_FIELD_TEXT(X, n, m, render) X(m, render, TEXT, m)
#define STORE_FIELD_OBJECT(X, n, m, render) X(m, render, JSON, m)
#define STORE_FIELD_BACKEND(X, n, m, render) X(m, render, CHARS, m)
#define STORE_FIELD_TIMEOUT(X, n, m, render) /* a limit: a column of the LIMITS row */
#define STORE_FIELD_BOOL(X, n, m, render) X(m, render, BOOL, m)
#define STORE_FIELD_ENV(X, n, m, render) X(m, render, JSON, m)
#define STORE_FIELD_LABELS(X, n, m, render) X(m, render, JSON, m)
#define STORE_FIELD_DEPS(X, n, m, render) X(n, render, TEXT, m) /* NULL when none */
#define STORE_FIELD_LIMITS(X, n, m, render) SANDBOX_LIMITS(STORE_LIMIT_COLUMN, X)
/* kind U64 or SECONDS; struct job holds them in its member limits (job_fields.def). */
#define STORE_LIMIT_COLUMN(X, name, type, ...) X(name, COL, type, limits.name)

/* Each column's position in those lists: JOB_COL_seq, JOB_COL_id, ... */
#define STORE_JOB_COL_ENUM(col, form, kind, member) JOB_COL_##col,
enum job_column { JOB_COLUMNS(STORE_JOB_COL_ENUM, STORE_JOB_COL_ENUM) JOB_COL_COUNT };

#endif
