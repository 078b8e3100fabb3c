/* Listing jobs from the SQLite store: newest first, filtered by status and by a label,
 * one page at a time behind a cursor (the seq of the last job shown). A listed job carries
 * no script and no inputs, and only the first bytes of its result, so pages stay small. */
#include "src/store_sqlite.h"

#include <stdlib.h>

/* The four ways to list (by status or not, by a label's key or key and value), each one
 * statement. */
#define LIST_ALL(status)                                                                    \
    "SELECT " JOB_LIST_SELECT " FROM jobs WHERE seq < :before" status                       \
    " ORDER BY seq DESC LIMIT :limit"
#define LIST_BY_LABEL(value, status)                                                        \
    "SELECT " JOB_LIST_SELECT " FROM job_labels JOIN jobs ON jobs.seq ="                    \
    " job_labels.job_seq WHERE job_labels.key = :key" value " AND job_labels.job_seq"       \
    " < :before" status " ORDER BY job_labels.job_seq DESC LIMIT :limit"
#define BY_STATUS " AND status = :status"
#define BY_JOB_STATUS " AND jobs.status = :status"
#define BY_VALUE " AND job_labels.value = :value"

enum { BY_STATUS_BIT = 1, BY_KEY_BIT = 2, BY_VALUE_BIT = 4 };

/* Indexed by the filter's bits; a value filters only with a key (4 and 5 never run). */
static const char *const list_sql[8] = {
    [0] = LIST_ALL(""),
    [BY_STATUS_BIT] = LIST_ALL(BY_STATUS),
    [BY_KEY_BIT] = LIST_BY_LABEL("", ""),
    [BY_KEY_BIT | BY_STATUS_BIT] = LIST_BY_LABEL("", BY_JOB_STATUS),
    [BY_KEY_BIT | BY_VALUE_BIT] = LIST_BY_LABEL(BY_VALUE, ""),
    [BY_KEY_BIT | BY_VALUE_BIT | BY_STATUS_BIT] = LIST_BY_LABEL(BY_VALUE, BY_JOB_STATUS),
};

static int bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
    int i = sqlite3_bind_parameter_index(st, name);
    return i > 0 ? sq_bind_text(st, i, v) : SQLITE_OK;
}

static int bind_filter(sqlite3_stmt *st, const store_filter *f, int variant, int64_t before_seq,
                       int64_t fetch)
{
    int rc = sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":before"),
                                before_seq > 0 ? before_seq : INT64_MAX);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":limit"), fetch);
    if (rc == SQLITE_OK && (variant & BY_STATUS_BIT))
        rc = bind_named_text(st, ":status", job_status_name(f->status));
    if (rc == SQLITE_OK && (variant & BY_KEY_BIT))
        rc = bind_named_text(st, ":key", f->label_key);
    if (rc == SQLITE_OK && (variant & BY_VALUE_BIT))
        rc = bind_named_text(st, ":value", f->label_value);
    return rc;
}

/* Room for one more item in out (cap items allocated). */
static store_rc grow(job_list *out, size_t *cap)
{
    if (out->count < *cap)
        return STORE_OK;
    job *p = realloc(out->items, *cap * 2 * sizeof *p);
    if (!p) {
        store_set_error("listing jobs: out of memory");
        return STORE_ERROR;
    }
    out->items = p;
    *cap *= 2;
    return STORE_OK;
}

typedef struct list_args {
    const store_filter *f;
    int variant;
    int64_t before_seq;
    size_t limit, cap;
    job_list *out;
} list_args;

static store_rc read_page(sq_conn *c, void *arg)
{
    list_args *a = arg;
    job_list *out = a->out;
    sqlite3_stmt *st = sq_stmt(c, (enum sq_stmt_id)(SQ_LIST0 + a->variant), list_sql[a->variant]);
    if (!st)
        return STORE_ERROR;
    /* One row past the page tells whether another page follows. 0 = no limit. */
    int64_t fetch = a->limit == 0 || a->limit > (size_t)INT32_MAX ? -1 : (int64_t)a->limit + 1;
    store_rc r = STORE_OK;
    int rc = bind_filter(st, a->f, a->variant, a->before_seq, fetch);
    if (rc != SQLITE_OK) {
        r = sq_error(c, "listing jobs: binding");
        goto out;
    }
    bool more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (a->limit && out->count == a->limit) {
            more = true;
            break;
        }
        if ((r = grow(out, &a->cap)) != STORE_OK)
            goto out;
        job_init(&out->items[out->count]);
        if ((r = sq_read_job(c, st, &out->items[out->count], STORE_LIST_RESULT_MAX)) != STORE_OK)
            goto out;
        out->count++;
    }
    if (!more && rc != SQLITE_DONE) {
        r = sq_error(c, "listing jobs");
        goto out;
    }
    if (more)
        out->next_seq = out->items[out->count - 1].seq;
out:
    sq_done(st);
    return r;
}

store_rc sq_list_jobs(void *self, const store_filter *f, int64_t before_seq, size_t limit,
                      job_list *out)
{
    bool by_status = f && f->has_status;
    bool by_key = f && f->label_key;
    bool by_value = by_key && f->label_value;
    list_args a = {
        .f = f,
        .variant = (by_status ? BY_STATUS_BIT : 0) | (by_key ? BY_KEY_BIT : 0) |
                   (by_value ? BY_VALUE_BIT : 0),
        .before_seq = before_seq,
        .limit = limit,
        .cap = limit == 0 || limit > 1024 ? 16 : limit + 1,
        .out = out,
    };
    out->items = calloc(a.cap, sizeof *out->items);
    if (!out->items) {
        store_set_error("listing jobs: out of memory");
        return STORE_ERROR;
    }
    store_rc r = sq_read(self, false, read_page, &a);
    if (r != STORE_OK)
        job_list_free(out);
    return r;
}
