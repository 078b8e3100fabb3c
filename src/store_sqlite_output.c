/* A job's output in the SQLite store: stdout and stderr as chunks appended in order per
 * stream, read back by window (from a byte offset, at most so many bytes) without loading
 * the rest, the size of a stream so far, and windows of a job's result. */
#include "src/store_sqlite.h"

#include <stdlib.h>
#include <string.h>

/* The newest chunk ends where the stream ends: one index seek, not a sum. */
#define SQL_OUTPUT_END                                                                      \
    "SELECT start_offset + length(data) FROM job_output"                                    \
    " WHERE job_id = ?1 AND stream = ?2 ORDER BY start_offset DESC LIMIT 1"
#define SQL_OUTPUT_INSERT                                                                   \
    "INSERT INTO job_output (job_id, stream, start_offset, data) VALUES (?1, ?2, ?3, ?4)"
/* Live byte counts while running (store_finish_job writes the backend's final ones); what
 * the chunk adds to the storage total, whatever the status. */
#define SQL_OUTPUT_BYTES                                                                    \
    "UPDATE jobs SET"                                                                       \
    " stdout_bytes = CASE WHEN ?2 = 1 AND status = 'running' THEN ?3 ELSE stdout_bytes END," \
    " stderr_bytes = CASE WHEN ?2 = 2 AND status = 'running' THEN ?3 ELSE stderr_bytes END," \
    " output_stored_bytes = output_stored_bytes + ?4, stored_bytes = stored_bytes + ?4"     \
    " WHERE id = ?1"
/* From the chunk that holds byte ?3 (or the first one) on. */
#define SQL_OUTPUT_READ                                                                     \
    "SELECT start_offset, data FROM job_output WHERE job_id = ?1 AND stream = ?2"           \
    " AND start_offset >= COALESCE((SELECT start_offset FROM job_output"                    \
    " WHERE job_id = ?1 AND stream = ?2 AND start_offset <= ?3"                             \
    " ORDER BY start_offset DESC LIMIT 1), 0) ORDER BY start_offset"
#define SQL_RESULT_OF "SELECT seq, typeof(result_json) FROM jobs WHERE id = ?1"

/* Where a stream ends so far (0 when it has no chunk). Caller holds c->mu. */
static store_rc stream_end(sq_conn *c, const char *id, int stream, uint64_t *end,
                           const char *what)
{
    sqlite3_stmt *st = SQ_STMT(c, OUTPUT_END);
    if (!st)
        return STORE_ERROR;
    *end = 0;
    store_rc r = STORE_OK;
    int rc = sq_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *end = sq_col_u64(st, 0);
    else if (rc != SQLITE_DONE)
        r = sq_error(c, what);
    sq_done(st);
    return r;
}

/* The chunk's row, then the job's byte counts. Inside the write transaction. */
static store_rc insert_chunk(sq_conn *c, const char *id, int stream, int64_t offset,
                             const char *data, size_t len)
{
    sqlite3_stmt *st = SQ_STMT(c, OUTPUT_INSERT);
    if (!st)
        return STORE_ERROR;
    int rc = sq_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, offset);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 4, data, (int)len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_rc r = rc == SQLITE_DONE ? STORE_OK : sq_error(c, "appending output");
    sq_done(st);
    if (r != STORE_OK)
        return r;

    if (!(st = SQ_STMT(c, OUTPUT_BYTES)))
        return STORE_ERROR;
    rc = sq_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, offset + (int64_t)len);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, (int64_t)len);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    r = rc == SQLITE_DONE ? STORE_OK : sq_error(c, "appending output: updating byte counts");
    sq_done(st);
    return r;
}

typedef struct append_args {
    const char *id;
    int stream;
    const char *data;
    size_t len;
} append_args;

/* One attempt at appending, in the write transaction. */
static store_rc append_chunk(sq_store *s, sq_conn *c, void *arg, uint64_t *shortfall)
{
    append_args *a = arg;
    job_status cur;
    store_rc r = sq_status_of(c, a->id, &cur);
    if (r != STORE_OK || a->len == 0)
        return r;
    if ((r = sq_admit(s, c, a->len, true, shortfall)) != STORE_OK)
        return r;
    uint64_t offset = 0;
    r = stream_end(c, a->id, a->stream, &offset, "appending output: reading the stream end");
    if (r == STORE_OK)
        r = insert_chunk(c, a->id, a->stream, (int64_t)offset, a->data, a->len);
    return r;
}

store_rc sq_append_output(void *self, const char *id, int stream, const char *data, size_t len)
{
    sq_store *s = self;
    if (len > (size_t)INT32_MAX) {
        store_set_error("appending output: a chunk of %zu bytes is too large", len);
        return STORE_ERROR;
    }
    append_args a = {id, stream, data, len};
    sq_write_plan plan = {SQ_ROOM_EVICT, 2, len};
    sq_lock(&s->writer);
    store_rc r = sq_write(s, &plan, append_chunk, &a);
    if (r == STORE_NO_SPACE)
        sq_note_refusal(s, r);
    sq_unlock(&s->writer);
    return r;
}

/* ---- reading windows ---------------------------------------------------------------- */

/* Caller holds c->mu inside a read transaction. */
static store_rc read_chunks(sq_conn *c, const char *id, int stream, uint64_t offset, size_t max,
                            store_outbuf *b)
{
    sqlite3_stmt *st = SQ_STMT(c, OUTPUT_READ);
    if (!st)
        return STORE_ERROR;
    int64_t from = offset > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)offset;
    int rc = sq_bind_text(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, stream);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, from);
    store_rc r = STORE_OK;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if (max && b->len >= max)
            break;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        int64_t start = sqlite3_column_int64(st, 0);
        const char *data = sqlite3_column_blob(st, 1);
        int64_t n = sqlite3_column_bytes(st, 1);
        if (start + n <= from || !data)
            continue; /* ends before the offset (or empty) */
        int64_t skip = from > start ? from - start : 0;
        size_t take = (size_t)(n - skip);
        if (max && take > max - b->len)
            take = max - b->len;
        if (store_outbuf_add(b, data + skip, take) != 0) {
            store_set_error("reading output: out of memory");
            r = STORE_ERROR;
            break;
        }
    }
    if (r == STORE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = sq_error(c, "reading output");
    sq_done(st);
    return r;
}

typedef struct window_args {
    const char *id;
    int stream;
    uint64_t offset;
    size_t max;
    store_outbuf b;
} window_args;

/* One snapshot for "does the job exist" and its chunks. */
static store_rc read_window(sq_conn *c, void *arg)
{
    window_args *a = arg;
    job_status cur;
    store_rc r = sq_status_of(c, a->id, &cur);
    if (r == STORE_OK)
        r = read_chunks(c, a->id, a->stream, a->offset, a->max, &a->b);
    if (r == STORE_OK && !a->b.p && store_outbuf_add(&a->b, "", 0) != 0) {
        store_set_error("reading output: out of memory");
        r = STORE_ERROR;
    }
    return r;
}

store_rc sq_read_output(void *self, const char *id, int stream, uint64_t offset, size_t max,
                        char **data, size_t *len)
{
    window_args a = {id, stream, offset, max, {0}};
    store_rc r = sq_read(self, true, read_window, &a);
    if (r == STORE_OK) {
        *data = a.b.p;
        *len = a.b.len;
    } else {
        free(a.b.p);
    }
    return r;
}

typedef struct size_args {
    const char *id;
    int stream;
    uint64_t *total;
} size_args;

static store_rc read_size(sq_conn *c, void *arg)
{
    size_args *a = arg;
    job_status cur;
    store_rc r = sq_status_of(c, a->id, &cur);
    if (r == STORE_OK)
        r = stream_end(c, a->id, a->stream, a->total, "measuring output");
    return r;
}

store_rc sq_output_size(void *self, const char *id, int stream, uint64_t *total)
{
    size_args a = {id, stream, total};
    return sq_read(self, true, read_size, &a);
}

typedef struct result_args {
    const char *id;
    uint64_t offset;
    size_t max;
    char **data;
    size_t *len;
    uint64_t *total;
} result_args;

/* The transaction keeps the row as it was while its blob is read. */
static store_rc read_result_window(sq_conn *c, void *arg)
{
    result_args *a = arg;
    sqlite3_stmt *st = SQ_STMT(c, RESULT_OF);
    if (!st)
        return STORE_ERROR;
    int rc = sq_bind_text(st, 1, a->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    const char *type = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 1) : NULL;
    bool has_result = type && strcmp(type, "null") != 0;
    store_rc r = rc == SQLITE_ROW    ? STORE_OK
                 : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                     : sq_error(c, "reading a result");
    sq_done(st);
    if (r == STORE_OK && has_result)
        r = sq_read_result_range(c, seq, a->offset, a->max, a->data, a->len, a->total);
    return r;
}

store_rc sq_read_result(void *self, const char *id, uint64_t offset, size_t max, char **data,
                        size_t *len, uint64_t *total)
{
    if (offset > INT32_MAX || max > INT32_MAX) {
        store_set_error("reading a result: range beyond what SQLite holds in one value");
        return STORE_ERROR;
    }
    result_args a = {id, offset, max, data, len, total};
    store_rc r = sq_read(self, true, read_result_window, &a);
    if (r == STORE_OK && !*data && !(*data = calloc(1, 1))) {
        store_set_error("reading a result: out of memory");
        r = STORE_ERROR;
    }
    return r;
}
