/* A job's output, its result's windows and the job list in the PostgreSQL store: stdout
 * and stderr as chunks per stream (start_offset = the stream's bytes before the chunk),
 * read back by window without fetching the rest; the list newest first behind a seq
 * cursor, by status and by label, with neither script nor inputs. */
#include "src/store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- append ------------------------------------------------------------------------- */

#define SQL_OUTPUT_END                                                                      \
    "SELECT start_offset + octet_length(data) FROM job_output"                              \
    " WHERE job_id = $1 AND stream = $2 ORDER BY start_offset DESC LIMIT 1"
/* The chunk at the stream's end, then the job's live byte counts (finish writes the
 * backend's final ones) and what it adds to the storage total, whatever the status: one
 * statement. $1 id, $2 stream, $3 the bytes, $4 their length. */
#define SQL_APPEND                                                                          \
    "WITH e AS (SELECT COALESCE((SELECT start_offset + octet_length(data) FROM job_output"  \
    " WHERE job_id = $1 AND stream = $2::int ORDER BY start_offset DESC LIMIT 1), 0) AS off)," \
    " ins AS (INSERT INTO job_output (job_id, stream, start_offset, data)"                  \
    " SELECT $1, $2::int, e.off, $3 FROM e RETURNING start_offset + $4::bigint AS new_end)" \
    " UPDATE jobs SET"                                                                      \
    " stdout_bytes = CASE WHEN $2::int = 1 AND status = 'running'"                          \
    " THEN (SELECT new_end FROM ins) ELSE stdout_bytes END,"                                \
    " stderr_bytes = CASE WHEN $2::int = 2 AND status = 'running'"                          \
    " THEN (SELECT new_end FROM ins) ELSE stderr_bytes END,"                                \
    " output_stored_bytes = output_stored_bytes + $4::bigint,"                              \
    " stored_bytes = stored_bytes + $4::bigint WHERE id = $1"

typedef struct append_args {
    const char *id;
    int stream;
    const char *data;
    size_t len;
    uint64_t shortfall;
} append_args;

static store_rc append_chunk(pg_store *s, pg_conn *c, void *arg)
{
    append_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->id);
    /* Locks the job's row: appends to one job (and its finish) run one at a time, so
     * two chunks never take the same offset. */
    PGresult *r = pg_exec(s, c, "SELECT status FROM jobs WHERE id = $1 FOR UPDATE", &p,
                          "appending output");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    int rows = PQntuples(r);
    PQclear(r);
    if (rows == 0)
        return STORE_NOT_FOUND;
    if (a->len == 0)
        return STORE_OK;
    store_rc rc = pg_admit(s, c, a->len, &a->shortfall);
    if (rc != STORE_OK)
        return rc;
    /* A new statement, so it sees every chunk committed before the lock was ours. */
    pp_init(&p);
    pp_text(&p, a->id);
    pp_i64(&p, a->stream);
    pp_bytes(&p, a->data, a->len);
    pp_u64(&p, a->len);
    rc = pg_cmd(s, c, SQL_APPEND, &p, "appending output");
    pp_free(&p);
    return rc;
}

store_rc pg_append_output(void *self, const char *id, int stream, const char *data, size_t len)
{
    pg_store *s = self;
    if (len > (size_t)INT32_MAX) {
        store_set_error("appending output: a chunk of %zu bytes is too large", len);
        return STORE_ERROR;
    }
    append_args a = {id, stream, data, len, 0};
    store_rc r = pg_tx(s, append_chunk, &a);
    if (r == STORE_NO_SPACE && a.shortfall && pg_evict(s, a.shortfall))
        r = pg_tx(s, append_chunk, &a);
    return r;
}

/* ---- windows ------------------------------------------------------------------------ */

/* The chunks that hold bytes [$3, $3 + $4) ($4 = 0: to the end), each cut server-side to
 * its part of the window, so no byte outside it travels. */
#define SQL_OUTPUT_READ                                                                     \
    "WITH w AS (SELECT $3::bigint AS o, $4::bigint AS m)"                                   \
    " SELECT substring(data FROM (GREATEST(w.o - start_offset, 0) + 1)::int"                \
    " FOR (CASE WHEN w.m = 0 THEN octet_length(data) ELSE LEAST(octet_length(data),"        \
    " w.o + w.m - GREATEST(start_offset, w.o)) END)::int)"                                  \
    " FROM job_output, w WHERE job_id = $1 AND stream = $2::int"                            \
    " AND start_offset >= COALESCE((SELECT start_offset FROM job_output"                    \
    " WHERE job_id = $1 AND stream = $2::int AND start_offset <= w.o"                       \
    " ORDER BY start_offset DESC LIMIT 1), 0)"                                              \
    " AND start_offset + octet_length(data) > w.o"                                          \
    " AND (w.m = 0 OR start_offset < w.o + w.m) ORDER BY start_offset"

/* Appends each row's bytea in column col (a binary result) to b, at most max bytes in all
 * (0 = no bound). */
static store_rc add_rows(const PGresult *r, int col, size_t max, store_outbuf *b)
{
    /* One allocation for the whole window. */
    size_t want = 0;
    for (int i = 0; i < PQntuples(r); i++)
        want += (size_t)PQgetlength(r, i, col);
    if (max && want > max)
        want = max;
    if (want && store_outbuf_add(b, "", 0) == 0 && b->cap < want + 1) {
        char *p = realloc(b->p, want + 1);
        if (p) {
            b->p = p;
            b->cap = want + 1;
        }
    }
    for (int i = 0; i < PQntuples(r); i++) {
        size_t n = (size_t)PQgetlength(r, i, col);
        if (max && n > max - b->len)
            n = max - b->len;
        int rc = store_outbuf_add(b, PQgetvalue(r, i, col), n);
        if (rc != 0) {
            store_set_error("reading output: out of memory");
            return STORE_ERROR;
        }
    }
    return STORE_OK;
}

typedef struct window_args {
    const char *id;
    int stream;
    uint64_t offset;
    size_t max;
    store_outbuf b;
    uint64_t *total;
} window_args;

static store_rc read_window(pg_store *s, pg_conn *c, void *arg)
{
    window_args *a = arg;
    job_status cur;
    store_rc rc = pg_status_of(s, c, a->id, &cur);
    if (rc != STORE_OK)
        return rc;
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->id);
    pp_i64(&p, a->stream);
    pp_u64(&p, a->offset);
    pp_u64(&p, a->max);
    PGresult *r = pg_exec_as(s, c, SQL_OUTPUT_READ, &p, "reading output", 1);
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    rc = add_rows(r, 0, a->max, &a->b);
    PQclear(r);
    if (rc == STORE_OK && !a->b.p && store_outbuf_add(&a->b, "", 0) != 0) {
        store_set_error("reading output: out of memory");
        rc = STORE_ERROR;
    }
    return rc;
}

store_rc pg_read_output(void *self, const char *id, int stream, uint64_t offset, size_t max,
                        char **data, size_t *len)
{
    window_args a = {id, stream, offset, max, {0}, NULL};
    store_rc r = pg_read(self, true, read_window, &a);
    if (r == STORE_OK) {
        *data = a.b.p;
        *len = a.b.len;
    } else {
        free(a.b.p);
    }
    return r;
}

static store_rc read_size(pg_store *s, pg_conn *c, void *arg)
{
    window_args *a = arg;
    job_status cur;
    store_rc rc = pg_status_of(s, c, a->id, &cur);
    if (rc != STORE_OK)
        return rc;
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->id);
    pp_i64(&p, a->stream);
    PGresult *r = pg_exec(s, c, SQL_OUTPUT_END, &p, "measuring output");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    *a->total = PQntuples(r) > 0 ? pg_u64(r, 0, 0) : 0;
    PQclear(r);
    return STORE_OK;
}

store_rc pg_output_size(void *self, const char *id, int stream, uint64_t *total)
{
    window_args a = {id, stream, 0, 0, {0}, total};
    return pg_read(self, true, read_size, &a);
}

/* Bytes [$2, $2 + $3) of the result: left() converts only the characters that can hold
 * them (a character is at least one byte). */
#define SQL_RESULT_WINDOW                                                                   \
    "SELECT octet_length(result_json)::text, substring(convert_to(left(result_json,"              \
    " ($2::bigint + $3::bigint)::int), 'UTF8') FROM ($2::bigint + 1)::int FOR $3::int)"     \
    " FROM jobs WHERE id = $1"

typedef struct result_args {
    const char *id;
    uint64_t offset;
    size_t max;
    store_outbuf b;
    uint64_t total;
} result_args;

/* Under PG_BIG_READ, so the connection that read a step stays in the pool. */
#define PG_RESULT_STEP (PG_BIG_READ / 2)

/* Bytes [offset, offset + max - b.len) of the result into a->b (max: the buffer's length
 * after it, see pg_read_result), and the result's whole size. */
static store_rc read_result_window(pg_store *s, pg_conn *c, void *arg)
{
    result_args *a = arg;
    pg_params p;
    pp_init(&p);
    pp_text(&p, a->id);
    pp_u64(&p, a->offset);
    pp_u64(&p, a->max - a->b.len);
    PGresult *r = pg_exec_as(s, c, SQL_RESULT_WINDOW, &p, "reading a result", 1);
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    store_rc rc = PQntuples(r) == 0 ? STORE_NOT_FOUND : STORE_OK;
    if (rc == STORE_OK && !PQgetisnull(r, 0, 0)) {
        a->total = pg_u64(r, 0, 0);
        rc = add_rows(r, 1, a->max, &a->b);
    }
    PQclear(r);
    return rc;
}

store_rc pg_read_result(void *self, const char *id, uint64_t offset, size_t max, char **data,
                        size_t *len, uint64_t *total)
{
    if (offset > INT32_MAX / 2 || max > INT32_MAX / 2) {
        store_set_error("reading a result: range beyond what one value holds");
        return STORE_ERROR;
    }
    result_args a = {id, offset, max, {0}, 0};
    store_rc r = STORE_OK;
    /* The window in steps of PG_RESULT_STEP into one buffer reserved up front: libpq holds
     * a whole answer (and its connection's buffer grows to it), so a 4 MiB window read at
     * once held three copies of it per client (tests/integration/test_bounded_responses). */
    if (max && !(a.b.p = malloc(max + 1))) {
        store_set_error("reading a result: out of memory");
        return STORE_ERROR;
    }
    if (a.b.p)
        a.b.p[0] = '\0';
    a.b.cap = max ? max + 1 : 0;
    for (size_t done = 0;;) {
        size_t step = max - done > PG_RESULT_STEP ? PG_RESULT_STEP : max - done;
        size_t before = a.b.len;
        a.offset = offset + done;
        a.max = before + step; /* add_rows bounds the buffer's whole length */
        r = pg_read(self, false, read_result_window, &a);
        if (r != STORE_OK)
            break;
        done += a.b.len - before;
        if (done >= max || a.b.len - before < step)
            break; /* all asked for, or the value's end */
    }
    if (r == STORE_OK && !a.b.p && store_outbuf_add(&a.b, "", 0) != 0) {
        store_set_error("reading a result: out of memory");
        r = STORE_ERROR;
    }
    if (r != STORE_OK) {
        free(a.b.p);
        return r;
    }
    *data = a.b.p;
    *len = a.b.len;
    *total = a.total;
    return STORE_OK;
}

/* ---- the list ----------------------------------------------------------------------- */

/* $1 before (exclusive), $2 how many rows (one past the page), then the filter's values in
 * order: status, label key, label value. */
static void list_sql(char *sql, size_t size, const store_filter *f)
{
    int n = 2;
    char status[64] = "", key[96] = "", value[64] = "";
    if (f && f->has_status)
        snprintf(status, sizeof status, " AND jobs.status = $%d", ++n);
    if (f && f->label_key) {
        snprintf(key, sizeof key, " AND job_labels.key = $%d", ++n);
        if (f->label_value)
            snprintf(value, sizeof value, " AND job_labels.value = $%d", ++n);
        snprintf(sql, size, "SELECT " PG_LIST_SELECT " FROM job_labels JOIN jobs ON jobs.seq ="
                 " job_labels.job_seq WHERE job_labels.job_seq < $1%s%s%s"
                 " ORDER BY job_labels.job_seq DESC LIMIT $2", key, value, status);
        return;
    }
    snprintf(sql, size, "SELECT " PG_LIST_SELECT " FROM jobs WHERE seq < $1%s"
             " ORDER BY seq DESC LIMIT $2", status);
}

typedef struct list_args {
    const store_filter *f;
    int64_t before_seq;
    size_t limit;
    job_list *out;
} list_args;

static store_rc read_page(pg_store *s, pg_conn *c, void *arg)
{
    list_args *a = arg;
    char sql[4096];
    list_sql(sql, sizeof sql, a->f);
    pg_params p;
    pp_init(&p);
    pp_i64(&p, a->before_seq > 0 ? a->before_seq : INT64_MAX);
    /* One row past the page tells whether another page follows. 0 = no limit. */
    if (a->limit == 0 || a->limit > (size_t)INT32_MAX)
        pp_text(&p, NULL);
    else
        pp_u64(&p, a->limit + 1);
    if (a->f && a->f->has_status)
        pp_text(&p, job_status_name(a->f->status));
    if (a->f && a->f->label_key) {
        pp_text(&p, a->f->label_key);
        if (a->f->label_value)
            pp_text(&p, a->f->label_value);
    }
    PGresult *r = pg_exec(s, c, sql, &p, "listing jobs");
    pp_free(&p);
    if (!r)
        return STORE_ERROR;
    size_t rows = (size_t)PQntuples(r);
    bool more = a->limit && rows > a->limit;
    size_t n = more ? a->limit : rows;
    store_rc rc = STORE_OK;
    a->out->items = calloc(n ? n : 1, sizeof *a->out->items);
    if (!a->out->items) {
        store_set_error("listing jobs: out of memory");
        rc = STORE_ERROR;
    }
    for (size_t i = 0; rc == STORE_OK && i < n; i++) {
        rc = pg_read_job(r, (int)i, &a->out->items[i]);
        if (rc == STORE_OK)
            a->out->count++;
    }
    PQclear(r);
    if (rc == STORE_OK && more)
        a->out->next_seq = a->out->items[n - 1].seq;
    return rc;
}

store_rc pg_list_jobs(void *self, const store_filter *f, int64_t before_seq, size_t limit,
                      job_list *out)
{
    list_args a = {f, before_seq, limit, out};
    store_rc r = pg_read(self, false, read_page, &a);
    if (r != STORE_OK)
        job_list_free(out);
    return r;
}
