/* The store's front: the store_* API of src/store.h, the same for every caller and every
 * store. It picks the store a location names, checks what every store would check the
 * same way, and dispatches through the store's operations (src/store_backend.h). Also the
 * last error's text and the SHA-256 of requests, which every store shares. */
#include "src/store.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nettle/sha2.h>

#include "src/store_backend.h"
#include "src/store_pg.h"
#include "src/store_sqlite.h"
#include "src/timeutil.h"

struct store {
    const store_ops *ops;
    void *self; /* the store's own state, given back to each operation */
    char replica_id[STORE_REPLICA_ID_MAX + 1];
};

/* The stores built in: the first whose scheme starts the location opens it; a location
 * that names none (a file path) goes to the one without a scheme. */
static const store_ops *const stores[] = {&store_sqlite_ops, &store_pg_ops, &store_postgres_ops};

static __thread char tls_error[1024];
static __thread bool tls_outage;

void store_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_error, sizeof tls_error, fmt, ap);
    va_end(ap);
    tls_outage = false;
}

void store_set_outage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_error, sizeof tls_error, fmt, ap);
    va_end(ap);
    tls_outage = true;
}

bool store_error_is_outage(void)
{
    return tls_outage;
}

const char *store_error_text(void)
{
    return tls_error;
}

const char *store_last_error(store *s)
{
    (void)s;
    return tls_error;
}

/* nettle: already linked through libmicrohttpd's GnuTLS, so no new dependency and no
 * home-made hash. */
void store_sha256_hex(const void *data, size_t len, char out[STORE_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    _Static_assert(2 * SHA256_DIGEST_SIZE == STORE_SHA256_HEX_LEN, "SHA-256 is 32 bytes");
    uint8_t d[SHA256_DIGEST_SIZE];
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, sizeof d, d);
    for (size_t i = 0; i < sizeof d; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[STORE_SHA256_HEX_LEN] = '\0';
}

uint64_t store_text_bytes(const char *t)
{
    return t ? strlen(t) : 0;
}

#define EVICTION_SLACK_MAX (64u << 20)

uint64_t store_eviction_slack(uint64_t quota_bytes)
{
    if (!quota_bytes)
        return 1u << 20;
    return quota_bytes / 16 < EVICTION_SLACK_MAX ? quota_bytes / 16 : EVICTION_SLACK_MAX;
}

int store_outbuf_add(store_outbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static bool names_scheme(const char *location, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncmp(location, scheme, n) == 0 && strncmp(location + n, "://", 3) == 0;
}

static const store_ops *store_for(const char *location)
{
    const store_ops *fallback = NULL;
    for (size_t i = 0; i < sizeof stores / sizeof stores[0]; i++) {
        if (stores[i]->scheme && names_scheme(location, stores[i]->scheme))
            return stores[i];
        if (!stores[i]->scheme && !fallback)
            fallback = stores[i];
    }
    return fallback;
}

store *store_open(const char *path, char *err, size_t errlen)
{
    store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ops = store_for(path);
    s->self = s->ops->open(path, err, errlen);
    if (!s->self) {
        free(s);
        return NULL;
    }
    return s;
}

void store_close(store *s)
{
    if (!s)
        return;
    s->ops->close(s->self);
    free(s);
}

int store_set_durability(store *s, store_durability d, char *err, size_t errlen)
{
    if (!s->ops->set_durability)
        return 0;
    return s->ops->set_durability(s->self, d, err, errlen);
}

int store_durability_parse(const char *name, store_durability *out)
{
    if (strcmp(name, "process-crash") == 0)
        *out = STORE_DURABILITY_PROCESS_CRASH;
    else if (strcmp(name, "power-loss") == 0)
        *out = STORE_DURABILITY_POWER_LOSS;
    else
        return -1;
    return 0;
}

int store_schema_version(store *s)
{
    return s->ops->schema_version(s->self);
}

int store_ping(store *s, char *err, size_t errlen)
{
    if (store_schema_version(s) < 0) {
        snprintf(err, errlen, "%s", tls_error);
        return -1;
    }
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------ */

store_rc store_insert_job(store *s, job *j, int64_t max_queued, job *existing)
{
    if (!job_id_valid(j->id)) {
        store_set_error("inserting job: '%s' is not a canonical job id", j->id);
        return STORE_ERROR;
    }
    if (!j->created_at_ms)
        j->created_at_ms = time_now_ms();
    /* Idempotency compares this digest, never the request, which carries env_vars
     * values. No key, so no request: no digest. */
    char digest[STORE_SHA256_HEX_LEN + 1];
    if (j->request_json)
        store_sha256_hex(j->request_json, strlen(j->request_json), digest);
    return s->ops->insert_job(s->self, j, j->request_json ? digest : NULL, max_queued,
                              existing);
}

store_rc store_get_job(store *s, const char *id, job *out)
{
    return s->ops->get_job(s->self, id, out);
}

store_rc store_claim_next(store *s, int64_t started_at_ms, job *out)
{
    return store_claim_next_within(s, started_at_ms, UINT64_MAX, out, NULL);
}

store_rc store_claim_next_within(store *s, int64_t started_at_ms, uint64_t max_memory_mb, job *out,
                                 store_queue_head *head)
{
    return s->ops->claim_next_within(s->self, started_at_ms, max_memory_mb, out, head);
}

store_rc store_finish_job(store *s, const job *j)
{
    if (!job_status_is_final(j->status)) {
        store_set_error("finishing job %s: '%s' is not a final status", j->id,
                        job_status_name(j->status));
        return STORE_ERROR;
    }
    return s->ops->finish_job(s->self, j);
}

store_rc store_cancel_queued(store *s, const char *id, int64_t now_ms, job *out)
{
    return s->ops->cancel_queued(s->self, id, now_ms, out);
}

store_rc store_delete_job(store *s, const char *id)
{
    return s->ops->delete_job(s->self, id);
}

int store_recover_running(store *s, int64_t now_ms)
{
    return s->ops->recover_running(s->self, now_ms);
}

int64_t store_count_status(store *s, job_status status)
{
    return s->ops->count_status(s->self, status);
}

int store_count_by_status_backend(store *s, store_status_count *out, int max)
{
    return s->ops->count_by_status_backend(s->self, out, max);
}

/* ---- output and results ------------------------------------------------------------- */

static store_rc check_stream(int stream)
{
    if (stream == SANDBOX_STDOUT || stream == SANDBOX_STDERR)
        return STORE_OK;
    store_set_error("output stream %d is neither stdout (1) nor stderr (2)", stream);
    return STORE_ERROR;
}

store_rc store_append_output(store *s, const char *id, int stream, const char *data, size_t len)
{
    store_rc r = check_stream(stream);
    return r == STORE_OK ? s->ops->append_output(s->self, id, stream, data, len) : r;
}

store_rc store_read_output(store *s, const char *id, int stream, uint64_t offset, size_t max,
                           char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    store_rc r = check_stream(stream);
    return r == STORE_OK ? s->ops->read_output(s->self, id, stream, offset, max, data, len) : r;
}

store_rc store_output_size(store *s, const char *id, int stream, uint64_t *total)
{
    *total = 0;
    store_rc r = check_stream(stream);
    return r == STORE_OK ? s->ops->output_size(s->self, id, stream, total) : r;
}

store_rc store_read_result(store *s, const char *id, uint64_t offset, size_t max, char **data,
                           size_t *len, uint64_t *total)
{
    *data = NULL;
    *len = 0;
    *total = 0;
    return s->ops->read_result(s->self, id, offset, max, data, len, total);
}

/* ---- lists and retention ------------------------------------------------------------ */

void job_list_free(job_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        job_free(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
    l->next_seq = 0;
}

store_rc store_list_jobs(store *s, const store_filter *f, int64_t before_seq, size_t limit,
                         job_list *out)
{
    out->items = NULL;
    out->count = 0;
    out->next_seq = 0;
    return s->ops->list_jobs(s->self, f, before_seq, limit, out);
}

int64_t store_delete_finished_before(store *s, int64_t cutoff_ms)
{
    return s->ops->delete_finished_before(s->self, cutoff_ms);
}

/* ---- storage ------------------------------------------------------------------------ */

int store_set_storage(store *s, const store_storage_options *o, char *err, size_t errlen)
{
    return s->ops->set_storage(s->self, o, err, errlen);
}

store_rc store_make_room(store *s, uint64_t bytes)
{
    return s->ops->make_room(s->self, bytes);
}

int store_storage_state(store *s, store_storage *out)
{
    memset(out, 0, sizeof *out);
    return s->ops->storage_state(s->self, out);
}

/* ---- replicas ----------------------------------------------------------------------- */

static bool replica_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > STORE_REPLICA_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
            return false;
    return true;
}

int store_set_replica(store *s, const char *replica_id, int64_t lease_ms, char *err,
                      size_t errlen)
{
    if (!replica_id_valid(replica_id)) {
        snprintf(err, errlen, "replica id '%s': 1 to %d characters of A-Z a-z 0-9 . _ -",
                 replica_id, STORE_REPLICA_ID_MAX);
        return -1;
    }
    if (lease_ms <= 0) {
        snprintf(err, errlen, "a replica's lease must last longer than 0 ms");
        return -1;
    }
    snprintf(s->replica_id, sizeof s->replica_id, "%s", replica_id);
    return s->ops->set_replica ? s->ops->set_replica(s->self, replica_id, lease_ms, err, errlen)
                               : 0;
}

const char *store_replica_id(store *s)
{
    return s->replica_id;
}

bool store_is_shared(store *s)
{
    return s->ops->wait_events != NULL;
}

int store_wait_events(store *s, int timeout_ms, store_event *out, int max)
{
    if (s->ops->wait_events)
        return s->ops->wait_events(s->self, timeout_ms, out, max);
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

int store_heartbeat(store *s, int64_t now_ms, bool end_expired)
{
    return s->ops->heartbeat ? s->ops->heartbeat(s->self, now_ms, end_expired) : 0;
}

store_rc store_request_cancel(store *s, const char *id)
{
    return s->ops->request_cancel ? s->ops->request_cancel(s->self, id) : STORE_CONFLICT;
}

int store_pending_cancels(store *s, char (*ids)[JOB_ID_LEN + 1], int max)
{
    return s->ops->pending_cancels ? s->ops->pending_cancels(s->self, ids, max) : 0;
}

bool store_hold_role(store *s, const char *role)
{
    return s->ops->hold_role ? s->ops->hold_role(s->self, role) : true;
}
