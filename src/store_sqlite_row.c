/* Reading a job row of the SQLite store by column name: each column of JOB_COLUMNS
 * (src/store_sqlite.h) is read into its job field by its kind, at the position its name
 * gives (JOB_COL_<column>), so SELECT lists and this reader come from one list. Also the
 * result's bytes, read through blob I/O rather than loaded whole. */
#include "src/store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies a text column (NULL stays NULL); -1 when out of memory. */
static int read_text(sqlite3_stmt *st, int i, char **dst)
{
    *dst = NULL;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return 0;
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    char *p = t ? malloc((size_t)n + 1) : NULL; /* t is NULL: the conversion ran out of memory */
    if (!p) {
        store_set_error("reading job: out of memory");
        return -1;
    }
    memcpy(p, t, (size_t)n);
    p[n] = '\0';
    *dst = p;
    return 0;
}

static int read_chars(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    snprintf(dst, size, "%s", t ? t : "");
    return 0;
}

static int read_status(sqlite3_stmt *st, int i, job_status *dst, const char *id)
{
    const char *name = (const char *)sqlite3_column_text(st, i);
    if (job_status_parse(name, dst) == 0)
        return 0;
    store_set_error("job %s has an unknown status '%s'", id, name ? name : "(null)");
    return -1;
}

/* NULL: the job has no exit code (yet). */
static int read_exit(sqlite3_stmt *st, int i, int *dst, bool *has)
{
    *has = sqlite3_column_type(st, i) != SQLITE_NULL;
    *dst = *has ? sqlite3_column_int(st, i) : -1;
    return 0;
}

/* The column holds typeof(result_json): whether there is a result to read. */
static int read_result_type(sqlite3_stmt *st, int i, bool *has)
{
    const char *type = (const char *)sqlite3_column_text(st, i);
    *has = type && strcmp(type, "null") != 0;
    return 0;
}

/* How each kind of JOB_COLUMNS is read: (st, column, the job's field) -> 0, or -1 with the
 * error recorded. They run inside sq_read_job, whose job is j. */
#define SQ_READ_I64(st, i, f) ((f) = sqlite3_column_int64(st, i), 0)
#define SQ_READ_U64(st, i, f) ((f) = sq_col_u64(st, i), 0)
#define SQ_READ_INT(st, i, f) ((f) = sqlite3_column_int(st, i), 0)
#define SQ_READ_BOOL(st, i, f) ((f) = sqlite3_column_int(st, i) != 0, 0)
#define SQ_READ_SECONDS(st, i, f) ((f) = sqlite3_column_double(st, i), 0)
#define SQ_READ_TEXT(st, i, f) read_text(st, i, &(f))
#define SQ_READ_JSON(st, i, f) read_text(st, i, &(f))
#define SQ_READ_CHARS(st, i, f) read_chars(st, i, f, sizeof(f))
#define SQ_READ_STATUS(st, i, f) read_status(st, i, &(f), j->id)
#define SQ_READ_EXIT(st, i, f) read_exit(st, i, &(f), &j->has_exit_code)
#define SQ_READ_RESULT(st, i, f) read_result_type(st, i, &has_result)

#define SQ_READ_COLUMN(col, form, kind, member)                                             \
    if (SQ_READ_##kind(st, JOB_COL_##col, j->member) != 0)                                  \
        goto fail;

store_rc sq_read_job(sq_conn *c, sqlite3_stmt *st, job *j, size_t result_max)
{
    job_init(j); /* overwrites: callers pass an empty job (job_init'ed or job_free'd) */
    bool has_result = false;
    JOB_COLUMNS(SQ_READ_COLUMN, SQ_READ_COLUMN)
    /* request_json stays NULL: only its digest is stored. The result comes last: its blob
     * is read once every column of the row has been. */
    if (has_result) {
        size_t n;
        if (sq_read_result_range(c, j->seq, 0, result_max, &j->result_json, &n,
                                 &j->result_bytes) != STORE_OK)
            goto fail;
    }
    return STORE_OK;
fail:
    job_free(j);
    return STORE_ERROR;
}

store_rc sq_step_job(sq_conn *c, sqlite3_stmt *st, job *out, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return STORE_NOT_FOUND;
    if (rc != SQLITE_ROW)
        return sq_error(c, what);
    store_rc r = STORE_OK;
    if (out)
        r = sq_read_job(c, st, out, STORE_RESULT_INLINE_MAX);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE)
        return sq_error(c, what);
    return r;
}

/* Blob I/O reads only the pages that hold those bytes; a column read would load the whole
 * value (up to max_output_bytes). */
store_rc sq_read_result_range(sq_conn *c, int64_t seq, uint64_t offset, size_t max,
                              char **data, size_t *len, uint64_t *total)
{
    *data = NULL;
    *len = 0;
    sqlite3_blob *b = NULL;
    if (sqlite3_blob_open(c->db, "main", "jobs", "result_json", seq, 0, &b) != SQLITE_OK) {
        store_rc r = sq_error(c, "reading a result");
        sqlite3_blob_close(b);
        return r;
    }
    uint64_t size = (uint64_t)sqlite3_blob_bytes(b);
    size_t n = offset >= size ? 0 : size - offset < max ? (size_t)(size - offset) : max;
    char *p = malloc(n + 1);
    store_rc r = STORE_OK;
    if (!p) {
        store_set_error("reading a result: out of memory");
        r = STORE_ERROR;
    } else if (n > 0 && sqlite3_blob_read(b, p, (int)n, (int)offset) != SQLITE_OK) {
        r = sq_error(c, "reading a result");
        free(p);
    } else {
        p[n] = '\0';
        *data = p;
        *len = n;
        *total = size;
    }
    sqlite3_blob_close(b);
    return r;
}
