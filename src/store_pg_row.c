/* A job row of the PostgreSQL store: the SELECT lists and their reader, from the one list
 * of columns the SQLite store uses too (JOB_COLUMNS in src/store_columns.h, built from
 * src/job_fields.def and sandbox/limits.def), so a new field needs only its migration
 * here. Values come back as text; the result comes as its size and a bounded prefix. */
#include "src/store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


_Static_assert(STORE_RESULT_INLINE_MAX == 65536, "PG_JOB_SELECT's prefix");
_Static_assert(STORE_LIST_RESULT_MAX == 256, "PG_LIST_SELECT's prefix");

static int read_text(const PGresult *r, int row, int i, char **dst)
{
    *dst = NULL;
    const char *v = pg_val(r, row, i);
    if (!v)
        return 0;
    if (!(*dst = strdup(v))) {
        store_set_error("reading job: out of memory");
        return -1;
    }
    return 0;
}

static int read_status(const PGresult *r, int row, int i, job_status *dst, const char *id)
{
    const char *name = pg_val(r, row, i);
    if (job_status_parse(name, dst) == 0)
        return 0;
    store_set_error("job %s has an unknown status '%s'", id, name ? name : "(null)");
    return -1;
}

static int read_exit(const PGresult *r, int row, int i, int *dst, bool *has)
{
    *has = !PQgetisnull(r, row, i);
    *dst = *has ? (int)pg_i64(r, row, i) : -1;
    return 0;
}

/* The result's size (NULL: none) and the prefix column after the list. */
static int read_result(const PGresult *r, int row, int i, job *j)
{
    if (PQgetisnull(r, row, i))
        return 0;
    j->result_bytes = pg_u64(r, row, i);
    size_t n = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, JOB_COL_COUNT), &n);
    char *p = raw ? malloc(n + 1) : NULL;
    if (!p) {
        PQfreemem(raw);
        store_set_error("reading a result: out of memory");
        return -1;
    }
    memcpy(p, raw, n);
    p[n] = '\0';
    PQfreemem(raw);
    j->result_json = p;
    return 0;
}

#define PG_READ_I64(i, f) ((f) = pg_i64(r, row, i), 0)
#define PG_READ_U64(i, f) ((f) = pg_u64(r, row, i), 0)
#define PG_READ_INT(i, f) ((f) = (int)pg_i64(r, row, i), 0)
#define PG_READ_BOOL(i, f) ((f) = pg_bool(r, row, i), 0)
#define PG_READ_SECONDS(i, f) ((f) = pg_val(r, row, i) ? strtod(pg_val(r, row, i), NULL) : 0, 0)
#define PG_READ_TEXT(i, f) read_text(r, row, i, &(f))
#define PG_READ_JSON(i, f) read_text(r, row, i, &(f))
#define PG_READ_CHARS(i, f) (snprintf(f, sizeof(f), "%s", pg_val(r, row, i) ? pg_val(r, row, i) : ""), 0)
#define PG_READ_STATUS(i, f) read_status(r, row, i, &(f), j->id)
#define PG_READ_EXIT(i, f) read_exit(r, row, i, &(f), &j->has_exit_code)
#define PG_READ_RESULT(i, f) read_result(r, row, i, j)

#define PG_READ_COLUMN(col, form, kind, member)                                             \
    if (PG_READ_##kind(JOB_COL_##col, j->member) != 0)                                      \
        goto fail;

store_rc pg_read_job(const PGresult *r, int row, job *j)
{
    job_init(j);
    /* Columns after the job's are the statement's own (a claim's queue head). */
    if (PQnfields(r) < JOB_COL_COUNT + 1) {
        store_set_error("reading job: %d columns, expected at least %d", PQnfields(r),
                        JOB_COL_COUNT + 1);
        return STORE_ERROR;
    }
    JOB_COLUMNS(PG_READ_COLUMN, PG_READ_COLUMN)
    return STORE_OK;
fail:
    job_free(j);
    return STORE_ERROR;
}

store_rc pg_one_job(pg_store *s, pg_conn *c, const char *sql, const pg_params *p, job *out,
                    const char *what)
{
    PGresult *r = pg_exec(s, c, sql, p, what);
    if (!r)
        return STORE_ERROR;
    store_rc rc = PQntuples(r) == 0 ? STORE_NOT_FOUND : STORE_OK;
    if (rc == STORE_OK && out)
        rc = pg_read_job(r, 0, out);
    PQclear(r);
    return rc;
}
