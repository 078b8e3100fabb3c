/* The PostgreSQL store's lifecycle: opening (the URL, the embedded migrations applied
 * once under an advisory lock), a small pool of connections so worker and HTTP threads
 * do not queue behind one, the transaction runner, parameters and errors. A failed server
 * or connection is an outage (503 upstream): the connection is dropped and a new one made
 * on the next use; nothing here blocks forever (connect_timeout, keepalives, a statement
 * timeout). The URL's password never reaches a log line or an error text. */
#include "src/store_pg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/store_url.h"
#include "src/timeutil.h"

/* Connections are made on demand up to this many per replica: a few replicas stay well
 * inside a server's default max_connections (100). */
#define POOL_MAX_CAP 16
#define TX_ATTEMPTS 5

/* ---- parameters --------------------------------------------------------------------- */

void pp_init(pg_params *p)
{
    memset(p, 0, sizeof *p);
}

void pp_free(pg_params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->owned[i]);
    p->n = 0;
}

static int pp_slot(pg_params *p)
{
    if (p->n >= PG_PARAMS_MAX) {
        p->failed = true;
        return -1;
    }
    int i = p->n++;
    p->v[i] = NULL;
    p->len[i] = 0;
    p->fmt[i] = 0;
    p->owned[i] = NULL;
    return i;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the byte there starts none. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        n = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        n = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        n = 4, min = 0x10000;
    else
        return 0;
    unsigned cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* text with every byte that starts no valid UTF-8 sequence replaced by U+FFFD; NULL when
 * it is valid already (or out of memory: *oom). A C string holds no NUL to replace. */
static char *utf8_sanitized(const char *text, bool *oom)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t bad = 0, len = 0;
    while (s[len]) {
        size_t n = utf8_seq(s + len);
        bad += n == 0;
        len += n ? n : 1;
    }
    *oom = false;
    if (!bad)
        return NULL;
    char *out = malloc(len + 2 * bad + 1);
    if (!out) {
        *oom = true;
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(s + i);
        if (n) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

void pp_text(pg_params *p, const char *v)
{
    int i = pp_slot(p);
    if (i < 0 || !v)
        return;
    bool oom;
    char *clean = utf8_sanitized(v, &oom);
    if (oom)
        p->failed = true;
    p->owned[i] = clean;
    p->v[i] = clean ? clean : v;
}

static void pp_num(pg_params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pp_num(pg_params *p, const char *fmt, ...)
{
    int i = pp_slot(p);
    if (i < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->num[i], sizeof p->num[i], fmt, ap);
    va_end(ap);
    p->v[i] = p->num[i];
}

void pp_i64(pg_params *p, int64_t v) { pp_num(p, "%lld", (long long)v); }
void pp_u64(pg_params *p, uint64_t v)
{
    pp_num(p, "%lld", (long long)(v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v));
}
void pp_bool(pg_params *p, bool v) { pp_num(p, "%s", v ? "true" : "false"); }
void pp_f64(pg_params *p, double v) { pp_num(p, "%.17g", v); }

void pp_bytes(pg_params *p, const void *data, size_t len)
{
    int i = pp_slot(p);
    if (i < 0)
        return;
    if (len > (size_t)INT32_MAX) {
        p->failed = true;
        return;
    }
    p->v[i] = len ? data : "";
    p->len[i] = (int)len;
    p->fmt[i] = 1;
}

/* ---- results ------------------------------------------------------------------------ */

const char *pg_val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

int64_t pg_i64(const PGresult *r, int row, int col)
{
    const char *v = pg_val(r, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

uint64_t pg_u64(const PGresult *r, int row, int col)
{
    int64_t v = pg_i64(r, row, col);
    return v < 0 ? 0 : (uint64_t)v;
}

bool pg_bool(const PGresult *r, int row, int col)
{
    const char *v = pg_val(r, row, col);
    return v && (v[0] == 't' || v[0] == '1');
}

/* ---- errors ------------------------------------------------------------------------- */

/* The server or the connection failed (rather than the statement): class 08 (connection
 * exceptions), 57P01-57P03 (shutting down, cannot connect now), or no SQLSTATE at all from
 * a connection that is gone. */
static bool is_outage(PGconn *db, const char *state)
{
    if (!db || PQstatus(db) != CONNECTION_OK)
        return true;
    if (!state)
        return false;
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* libpq's message without its trailing newline, withheld if it quotes the password. */
static void message_of(pg_store *s, PGconn *db, PGresult *res, char *out, size_t n)
{
    const char *m = res ? PQresultErrorMessage(res) : "";
    if ((!m || !*m) && db)
        m = PQerrorMessage(db);
    snprintf(out, n, "%s", m && *m ? m : "unknown error");
    size_t len = strlen(out);
    while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
        out[--len] = '\0';
    if (s->password && strstr(out, s->password))
        snprintf(out, n, "(the server's message is withheld: it quotes the password)");
}

store_rc pg_fail(pg_store *s, pg_conn *c, PGresult *res, const char *what)
{
    char msg[768];
    message_of(s, c ? c->db : NULL, res, msg, sizeof msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (c)
        c->retry = state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
    if (is_outage(c ? c->db : NULL, state)) {
        if (c)
            c->broken = true;
        store_set_outage("%s: PostgreSQL at %s is unavailable: %s", what, s->redacted, msg);
    } else {
        if (state)
            store_set_error("%s: %s (SQLSTATE %s)", what, msg, state);
        else
            store_set_error("%s: %s", what, msg);
    }
    return STORE_ERROR;
}

/* What a statement sends or receives: libpq keeps its buffers at the largest message a
 * connection ever carried, so one that carried a large one is closed after use (c->big)
 * rather than hold that memory for good. */
static size_t params_bytes(const pg_params *p)
{
    size_t n = 0;
    for (int i = 0; p && i < p->n; i++)
        n += p->fmt[i] ? (size_t)p->len[i] : p->v[i] ? strlen(p->v[i]) : 0;
    return n;
}

static size_t result_bytes(const PGresult *r)
{
    size_t n = 0;
    for (int i = 0; i < PQntuples(r) && n <= PG_BIG_READ; i++)
        for (int k = 0; k < PQnfields(r); k++)
            n += (size_t)PQgetlength(r, i, k);
    return n;
}

/* ---- prepared statements ------------------------------------------------------------ */

/* Parse and planning are most of a short statement's time on the server: each statement
 * a connection runs is prepared on it once (by its text, so that a statement built at run
 * time is one too) and executed by name after. Not BEGIN, COMMIT and the like, nor
 * anything past PG_PREPARED_MAX statements. */
static bool preparable(const char *sql)
{
    return strncmp(sql, "SELECT ", 7) == 0 || strncmp(sql, "WITH ", 5) == 0 ||
           strncmp(sql, "UPDATE ", 7) == 0 || strncmp(sql, "INSERT ", 7) == 0 ||
           strncmp(sql, "DELETE ", 7) == 0;
}

static int prepared_index(const pg_conn *c, const char *sql)
{
    for (int i = 0; i < c->nprepared; i++)
        if (strcmp(c->prepared[i], sql) == 0)
            return i;
    return -1;
}

static void prepared_name(char *out, size_t n, int index)
{
    snprintf(out, n, "exd_%d", index);
}

static void conn_free(pg_conn *c)
{
    if (!c)
        return;
    if (c->db)
        PQfinish(c->db);
    for (int i = 0; i < c->nprepared; i++)
        free(c->prepared[i]);
    free(c);
}

/* The statement's index among those prepared on c, preparing it now if it is new: -1
 * when it is not to be prepared (run it unnamed); -2 when preparing it failed (the error
 * recorded: the statement's own, as running it would have given). */
static int prepare(pg_store *s, pg_conn *c, const char *sql, const char *what)
{
    int i = prepared_index(c, sql);
    if (i >= 0 || !preparable(sql) || c->nprepared >= PG_PREPARED_MAX)
        return i;
    char *copy = strdup(sql);
    if (!copy)
        return -1;
    char name[32];
    prepared_name(name, sizeof name, c->nprepared);
    PGresult *r = PQprepare(c->db, name, sql, 0, NULL);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        free(copy);
        pg_fail(s, c, r, what);
        PQclear(r);
        return -2;
    }
    PQclear(r);
    c->prepared[c->nprepared] = copy;
    return c->nprepared++;
}

PGresult *pg_exec(pg_store *s, pg_conn *c, const char *sql, const pg_params *p,
                  const char *what)
{
    return pg_exec_as(s, c, sql, p, what, 0);
}

PGresult *pg_exec_as(pg_store *s, pg_conn *c, const char *sql, const pg_params *p,
                     const char *what, int result_format)
{
    if (p && p->failed) {
        store_set_error("%s: out of memory or too many parameters", what);
        return NULL;
    }
    if (params_bytes(p) > PG_BIG_READ)
        c->big = true;
    int prep = prepare(s, c, sql, what);
    if (prep == -2)
        return NULL;
    PGresult *r;
    if (prep >= 0) {
        char name[32];
        prepared_name(name, sizeof name, prep);
        r = PQexecPrepared(c->db, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                           p ? p->fmt : NULL, result_format);
    } else {
        r = PQexecParams(c->db, sql, p ? p->n : 0, NULL, p ? p->v : NULL,
                         p ? p->len : NULL, p ? p->fmt : NULL, result_format);
    }
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        c->retry = false;
        c->execs++;
        if (st == PGRES_TUPLES_OK && result_bytes(r) > PG_BIG_READ)
            c->big = true;
        return r;
    }
    /* A prepared statement whose tables changed under it (a newer replica's migration)
     * may fail with "cached plan must not change result type": the connection goes after
     * this use, its prepared statements with it. */
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (prep >= 0 && state && strcmp(state, "0A000") == 0)
        c->big = true;
    pg_fail(s, c, r, what);
    PQclear(r);
    return NULL;
}

store_rc pg_cmd(pg_store *s, pg_conn *c, const char *sql, const pg_params *p, const char *what)
{
    PGresult *r = pg_exec(s, c, sql, p, what);
    PQclear(r);
    return r ? STORE_OK : STORE_ERROR;
}

/* Several statements without parameters in one round trip (the simple query protocol). */
static store_rc pg_simple(pg_store *s, pg_conn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c->db, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        c->retry = false;
        c->execs++;
        PQclear(r);
        return STORE_OK;
    }
    pg_fail(s, c, r, what);
    PQclear(r);
    return STORE_ERROR;
}

/* The results of one statement sent in a pipeline, up to the NULL that ends them: the
 * first successful one into *ok, the first failure into *err (PIPELINE_ABORTED, a
 * statement not run after an earlier failure, is neither). */
static void pipeline_results(PGconn *db, PGresult **ok, PGresult **err)
{
    PGresult *r;
    while ((r = PQgetResult(db))) {
        ExecStatusType st = PQresultStatus(r);
        if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && !*ok)
            *ok = r;
        else if (st != PGRES_PIPELINE_ABORTED && st != PGRES_TUPLES_OK &&
                 st != PGRES_COMMAND_OK && !*err)
            *err = r;
        else
            PQclear(r);
    }
}

PGresult *pg_exec_commit(pg_store *s, pg_conn *c, const char *sql, const pg_params *p,
                         const char *what)
{
    if (p && p->failed) {
        store_set_error("%s: out of memory or too many parameters", what);
        return NULL;
    }
    if (params_bytes(p) > PG_BIG_READ)
        c->big = true;
    PGconn *db = c->db;
    if (!PQenterPipelineMode(db)) { /* not idle, say: one statement, then the other */
        PGresult *r = pg_exec(s, c, sql, p, what);
        if (r && pg_cmd(s, c, "COMMIT", NULL, "COMMIT") != STORE_OK) {
            PQclear(r);
            r = NULL;
        }
        return r;
    }
    PGresult *res = NULL, *commit = NULL, *err = NULL, *prepared = NULL;
    /* Prepared like pg_exec's statements: a new one in the same pipeline. */
    int prep = prepared_index(c, sql);
    bool new_prep = prep < 0 && preparable(sql) && c->nprepared < PG_PREPARED_MAX;
    char *copy = new_prep ? strdup(sql) : NULL;
    if (new_prep && copy)
        prep = c->nprepared;
    else
        new_prep = false;
    char name[32];
    prepared_name(name, sizeof name, prep < 0 ? 0 : prep);
    bool sent = (!new_prep || PQsendPrepare(db, name, sql, 0, NULL)) &&
                (prep >= 0 ? PQsendQueryPrepared(db, name, p ? p->n : 0, p ? p->v : NULL,
                                                 p ? p->len : NULL, p ? p->fmt : NULL, 0)
                           : PQsendQueryParams(db, sql, p ? p->n : 0, NULL, p ? p->v : NULL,
                                               p ? p->len : NULL, p ? p->fmt : NULL, 0)) &&
                PQsendQueryParams(db, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
                PQpipelineSync(db);
    if (sent) {
        if (new_prep) {
            pipeline_results(db, &prepared, &err);
            if (prepared) {
                c->prepared[c->nprepared++] = copy;
                copy = NULL;
                PQclear(prepared);
            }
        }
        pipeline_results(db, &res, &err);
        pipeline_results(db, &commit, &err);
        PGresult *r;
        while ((r = PQgetResult(db))) { /* up to the sync point */
            bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            PQclear(r);
            if (sync)
                break;
        }
    }
    free(copy);
    /* A connection that cannot leave pipeline mode (results pending after a failure)
     * is not reused. */
    if (!PQexitPipelineMode(db))
        c->broken = true;
    if (sent && res && commit && !err) {
        PQclear(commit);
        c->retry = false;
        c->execs += 2;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && result_bytes(res) > PG_BIG_READ)
            c->big = true;
        return res;
    }
    pg_fail(s, c, err, what);
    PQclear(err);
    PQclear(res);
    PQclear(commit);
    return NULL;
}

/* ---- connections -------------------------------------------------------------------- */

/* Server notices (e.g. "already exists, skipping") are not the service's log. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *pg_connect(pg_store *s)
{
    /* expand_dbname: the URL gives its parameters; the ones after it override them, so
     * that no URL can leave a connection without its timeouts. */
    const char *const keys[] = {"dbname", "connect_timeout", "keepalives", "keepalives_idle",
                                "keepalives_interval", "keepalives_count", "client_encoding",
                                "application_name", "options", NULL};
    const char *const vals[] = {s->location, "5", "1", "10", "5", "3", "UTF8", "executord",
                                "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=60000",
                                NULL};
    PGconn *db = PQconnectdbParams(keys, vals, 1);
    if (!db) {
        store_set_outage("connecting to PostgreSQL at %s: out of memory", s->redacted);
        return NULL;
    }
    if (PQstatus(db) != CONNECTION_OK) {
        char msg[768];
        message_of(s, db, NULL, msg, sizeof msg);
        store_set_outage("connecting to PostgreSQL at %s: %s", s->redacted, msg);
        PQfinish(db);
        return NULL;
    }
    PQsetNoticeProcessor(db, quiet, NULL);
    return db;
}

pg_conn *pg_acquire(pg_store *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->idle && s->total >= s->cap)
        pthread_cond_wait(&s->cv, &s->mu);
    pg_conn *c = s->idle;
    if (c) {
        s->idle = c->next;
        pthread_mutex_unlock(&s->mu);
        c->next = NULL;
        c->reused = true;
        c->execs = 0;
        return c;
    }
    s->total++; /* a slot for the connection made below, outside the lock */
    pthread_mutex_unlock(&s->mu);
    c = calloc(1, sizeof *c);
    if (c && !(c->db = pg_connect(s))) {
        free(c);
        c = NULL;
    } else if (!c) {
        store_set_error("connecting to PostgreSQL: out of memory");
    }
    if (!c) {
        pthread_mutex_lock(&s->mu);
        s->total--;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    return c;
}

void pg_release(pg_store *s, pg_conn *c)
{
    if (!c)
        return;
    bool broken = c->broken || PQstatus(c->db) != CONNECTION_OK;
    bool drop = broken || c->big || PQtransactionStatus(c->db) != PQTRANS_IDLE;
    if (drop)
        conn_free(c);
    pthread_mutex_lock(&s->mu);
    /* A connection that died (a server restart, a network cut) says the idle ones most
     * likely did too: they go, rather than each fail one more request. */
    pg_conn *stale = broken ? s->idle : NULL;
    if (broken)
        s->idle = NULL;
    for (pg_conn *n = stale; n; n = n->next)
        s->total--;
    if (drop) {
        s->total--;
    } else {
        c->retry = false;
        c->next = s->idle;
        s->idle = c;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    while (stale) {
        pg_conn *n = stale->next;
        conn_free(stale);
        stale = n;
    }
}

/* ---- transactions ------------------------------------------------------------------- */

static void rollback(pg_conn *c)
{
    if (PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE)
        PQclear(PQexec(c->db, "ROLLBACK"));
}

static store_rc tx_once(pg_store *s, pg_conn *c, const char *begin, pg_fn fn, void *arg)
{
    /* BEGIN with more statements (an advisory lock): one round trip. */
    store_rc b = strchr(begin, ';') ? pg_simple(s, c, begin, "BEGIN")
                                    : pg_cmd(s, c, begin, NULL, "BEGIN");
    if (b != STORE_OK)
        return STORE_ERROR;
    store_rc r = fn(s, c, arg);
    if (r == STORE_OK) {
        /* fn may have committed itself (pg_exec_commit). */
        if (PQtransactionStatus(c->db) == PQTRANS_IDLE)
            return r;
        r = pg_cmd(s, c, "COMMIT", NULL, "COMMIT");
        if (r == STORE_OK)
            return r;
    }
    rollback(c);
    return r;
}

/* How a unit of work runs: in a transaction (begin) or statement by statement, and
 * whether it only reads (so it may run again). */
typedef struct run_mode {
    const char *begin;
    bool reads;
} run_mode;

/* A pooled connection found dead before it did anything (its BEGIN failed), or during
 * reads: the work runs once more on a new connection, so a server that restarted costs no
 * request once it is back. A write outside a transaction is not repeated: it may have
 * committed before the connection died. */
static bool retry_fresh(const pg_conn *c, run_mode m, store_rc r)
{
    return r == STORE_ERROR && c->broken && c->reused &&
           (m.reads || (m.begin && c->execs == 0));
}

static store_rc run(pg_store *s, run_mode m, pg_fn fn, void *arg)
{
    const char *begin = m.begin;
    pg_conn *c = pg_acquire(s);
    if (!c)
        return STORE_ERROR;
    store_rc r;
    for (int attempt = 1;; attempt++) {
        c->retry = false;
        r = begin ? tx_once(s, c, begin, fn, arg) : fn(s, c, arg);
        if (retry_fresh(c, m, r)) {
            pg_release(s, c); /* drops it, and the idle ones with it */
            if (!(c = pg_acquire(s)))
                return STORE_ERROR;
            c->reused = false; /* once */
            continue;
        }
        if (r != STORE_ERROR || !c->retry || c->broken || attempt >= TX_ATTEMPTS)
            break;
    }
    pg_release(s, c);
    return r;
}

store_rc pg_tx(pg_store *s, pg_fn fn, void *arg)
{
    return run(s, (run_mode){"BEGIN", false}, fn, arg);
}

store_rc pg_tx_locked(pg_store *s, int lock_key, pg_fn fn, void *arg)
{
    char begin[80];
    snprintf(begin, sizeof begin, "BEGIN; SELECT pg_advisory_xact_lock(%d)", lock_key);
    return run(s, (run_mode){begin, false}, fn, arg);
}

store_rc pg_read(pg_store *s, bool snapshot, pg_fn fn, void *arg)
{
    return run(s, (run_mode){snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : NULL, true},
               fn, arg);
}

store_rc pg_once(pg_store *s, pg_fn fn, void *arg)
{
    return run(s, (run_mode){NULL, false}, fn, arg);
}

/* ---- migrations --------------------------------------------------------------------- */

#define SQL_MIGRATIONS_TABLE                                                                \
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"            \
    " name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)"

typedef struct migrate_args {
    char *err;
    size_t errlen;
} migrate_args;

static int highest_known(void)
{
    int known = 0;
    for (int i = 0; i < pg_migrations_count; i++)
        if (pg_migrations[i].version > known)
            known = pg_migrations[i].version;
    return known;
}

static store_rc apply_one(pg_store *s, pg_conn *c, const struct migration *m, int current)
{
    if (m->version <= current)
        return STORE_OK;
    char what[160];
    snprintf(what, sizeof what, "migration %s", m->name);
    /* A simple query: a migration is several statements. */
    PGresult *r = PQexec(c->db, m->sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pg_fail(s, c, r, what);
        PQclear(r);
        return STORE_ERROR;
    }
    PQclear(r);
    pg_params p;
    pp_init(&p);
    pp_i64(&p, m->version);
    pp_text(&p, m->name);
    pp_i64(&p, time_now_ms());
    store_rc rc = pg_cmd(s, c, "INSERT INTO schema_migrations (version, name, applied_at_ms)"
                         " VALUES ($1, $2, $3)", &p, what);
    pp_free(&p);
    return rc;
}

/* Under the advisory lock: replicas starting together on an empty database wait for the
 * first, then find its migrations recorded. */
static store_rc migrate_locked(pg_store *s, pg_conn *c, void *arg)
{
    migrate_args *a = arg;
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)", PG_LOCK_MIGRATE);
    if (pg_cmd(s, c, lock, NULL, "migrating: taking the lock") != STORE_OK ||
        pg_cmd(s, c, SQL_MIGRATIONS_TABLE, NULL, "creating schema_migrations") != STORE_OK)
        return STORE_ERROR;
    PGresult *r = pg_exec(s, c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                          NULL, "reading schema_migrations");
    if (!r)
        return STORE_ERROR;
    int current = (int)pg_i64(r, 0, 0);
    PQclear(r);
    int known = highest_known();
    /* A newer build may have changed tables this one would misread or corrupt. */
    if (current > known) {
        snprintf(a->err, a->errlen,
                 "database schema version %d is newer than this executord supports (%d); "
                 "upgrade executord",
                 current, known);
        return STORE_CONFLICT;
    }
    for (int i = 0; i < pg_migrations_count; i++) {
        if (i > 0 && pg_migrations[i].version <= pg_migrations[i - 1].version) {
            snprintf(a->err, a->errlen, "migration %s is out of order", pg_migrations[i].name);
            return STORE_CONFLICT;
        }
        if (apply_one(s, c, &pg_migrations[i], current) != STORE_OK)
            return STORE_ERROR;
    }
    return STORE_OK;
}

/* ---- open / close ------------------------------------------------------------------- */

static void pg_close(void *self)
{
    pg_store *s = self;
    if (!s)
        return;
    pg_replica_close(s);
    while (s->idle) {
        pg_conn *c = s->idle;
        s->idle = c->next;
        conn_free(c);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->role_mu);
    free(s->location);
    free(s->password);
    free(s);
}

static pg_store *pg_new(const char *location)
{
    pg_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->location = strdup(location);
    if (!s->location || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->location);
        free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0 || pthread_mutex_init(&s->role_mu, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s->location);
        free(s);
        return NULL;
    }
    s->password = store_location_password(location);
    store_location_redacted(location, s->redacted, sizeof s->redacted);
    s->cap = POOL_MAX_CAP;
    s->started_at_ms = time_now_ms();
    return s;
}

static void *pg_open(const char *location, char *err, size_t errlen)
{
    pg_store *s = pg_new(location);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    migrate_args a = {err, errlen};
    err[0] = '\0';
    store_rc r = pg_tx(s, migrate_locked, &a);
    if (r != STORE_OK) {
        if (!err[0])
            snprintf(err, errlen, "opening the PostgreSQL store: %s", store_error_text());
        pg_close(s);
        return NULL;
    }
    return s;
}

static store_rc read_version(pg_store *s, pg_conn *c, void *arg)
{
    PGresult *r = pg_exec(s, c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                          NULL, "reading schema version");
    if (!r)
        return STORE_ERROR;
    *(int *)arg = (int)pg_i64(r, 0, 0);
    PQclear(r);
    return STORE_OK;
}

int pg_schema_version(void *self)
{
    int v = -1;
    return pg_read(self, false, read_version, &v) == STORE_OK ? v : -1;
}

#define PG_OPS(SCHEME)                                                                      \
    {                                                                                       \
        .name = "PostgreSQL", .scheme = SCHEME, .open = pg_open, .close = pg_close,         \
        .schema_version = pg_schema_version, .insert_job = pg_insert_job,                   \
        .get_job = pg_get_job, .claim_next_within = pg_claim_next_within,                   \
        .finish_job = pg_finish_job, .cancel_queued = pg_cancel_queued,                     \
        .delete_job = pg_delete_job, .recover_running = pg_recover_running,                 \
        .count_status = pg_count_status,                                                    \
        .count_by_status_backend = pg_count_by_status_backend,                              \
        .append_output = pg_append_output, .read_output = pg_read_output,                   \
        .output_size = pg_output_size, .read_result = pg_read_result,                       \
        .list_jobs = pg_list_jobs, .delete_finished_before = pg_delete_finished_before,     \
        .set_storage = pg_set_storage, .make_room = pg_make_room,                           \
        .storage_state = pg_storage_state, .set_replica = pg_set_replica,                   \
        .wait_events = pg_wait_events, .heartbeat = pg_heartbeat,                           \
        .request_cancel = pg_request_cancel, .pending_cancels = pg_pending_cancels,         \
        .hold_role = pg_hold_role,                                                          \
    }

const store_ops store_pg_ops = PG_OPS("postgresql");
const store_ops store_postgres_ops = PG_OPS("postgres");
