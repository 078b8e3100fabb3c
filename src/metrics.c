/* The metrics registry (counters and histograms keyed by label values, one process-wide
 * lock) and the Prometheus text exposition writer: escaping, value formatting, HELP/TYPE
 * lines and cumulative histogram buckets. Knows nothing of HTTP or SQLite. */
#include "src/metrics.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EXECUTORD_VERSION
#define EXECUTORD_VERSION "unknown"
#endif

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;

/* --- the text buffer --------------------------------------------------------------------- */

void metrics_buf_init(metrics_buf *b)
{
    memset(b, 0, sizeof *b);
}

void metrics_buf_free(metrics_buf *b)
{
    free(b->data);
    metrics_buf_init(b);
}

static bool buf_reserve(metrics_buf *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = true;
        return false;
    }
    b->data = grown;
    b->cap = cap;
    return true;
}

static void buf_add(metrics_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(metrics_buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void metrics_buf_printf(metrics_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *metrics_buf_take(metrics_buf *b, size_t *len)
{
    if (b->failed || !buf_reserve(b, 0)) {
        metrics_buf_free(b);
        return NULL;
    }
    char *out = b->data;
    *len = b->len;
    metrics_buf_init(b);
    return out;
}

/* --- the exposition format --------------------------------------------------------------- */

/* Label values escape \, " and newline; HELP text only \ and newline. */
static void write_escaped(metrics_buf *b, const char *s, bool quotes)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(b, "\\\\");
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else if (*s == '"' && quotes)
            buf_puts(b, "\\\"");
        else
            buf_add(b, s, 1);
    }
}

void metrics_write_label_value(metrics_buf *b, const char *value)
{
    write_escaped(b, value ? value : "", true);
}

void metrics_write_value(metrics_buf *b, double v)
{
    if (isnan(v))
        buf_puts(b, "NaN");
    else if (isinf(v))
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* exact in a double: no exponent */
        metrics_buf_printf(b, "%.0f", v);
    else
        metrics_buf_printf(b, "%.15g", v);
}

void metrics_write_family(metrics_buf *b, const char *name, const char *type, const char *help)
{
    metrics_buf_printf(b, "# HELP %s ", name);
    write_escaped(b, help, false);
    metrics_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

void metrics_write_sample(metrics_buf *b, const char *name, int n_labels,
                          const char *const *label_names, const char *const *label_values, double v)
{
    buf_puts(b, name);
    for (int i = 0; i < n_labels; i++) {
        metrics_buf_printf(b, "%s%s=\"", i == 0 ? "{" : ",", label_names[i]);
        metrics_write_label_value(b, label_values[i]);
        buf_puts(b, "\"");
    }
    buf_puts(b, n_labels > 0 ? "} " : " ");
    metrics_write_value(b, v);
    buf_puts(b, "\n");
}

bool metrics_name_valid(const char *name, bool label)
{
    if (!name || !*name || isdigit((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && (label || *p != ':'))
            return false;
    return !(label && strncmp(name, "__", 2) == 0); /* reserved for Prometheus itself */
}

/* --- families -------------------------------------------------------------------------- */

/* The series with these label values, created when new; NULL when the family is full.
 * Caller holds registry_mu. */
static metrics_series *find_series(metrics_family *f, const char *const *values, bool create)
{
    for (int i = 0; i < f->n_series; i++) {
        metrics_series *s = &f->series[i];
        int k = 0;
        while (k < f->n_labels && strncmp(s->values[k], values[k] ? values[k] : "",
                                          METRICS_LABEL_LEN - 1) == 0)
            k++;
        if (k == f->n_labels)
            return s;
    }
    if (!create)
        return NULL;
    if (f->n_series >= METRICS_MAX_SERIES) {
        f->dropped++;
        return NULL;
    }
    metrics_series *s = &f->series[f->n_series++];
    memset(s, 0, sizeof *s);
    for (int k = 0; k < f->n_labels; k++)
        snprintf(s->values[k], sizeof s->values[k], "%s", values[k] ? values[k] : "");
    return s;
}

void metrics_counter_add(metrics_family *f, const char *const *values, uint64_t n)
{
    pthread_mutex_lock(&registry_mu);
    metrics_series *s = find_series(f, values, true);
    if (s)
        s->count += n;
    pthread_mutex_unlock(&registry_mu);
}

void metrics_histogram_observe(metrics_family *f, const char *const *values, double v)
{
    if (isnan(v) || v < 0)
        v = 0; /* a wall clock stepped back: record "no time" rather than poison the sum */
    int bucket = 0;
    while (bucket < f->n_bounds && v > f->bounds[bucket])
        bucket++;
    pthread_mutex_lock(&registry_mu);
    metrics_series *s = find_series(f, values, true);
    if (s) {
        s->buckets[bucket]++;
        s->count++;
        s->sum += v;
    }
    pthread_mutex_unlock(&registry_mu);
}

void metrics_family_touch(metrics_family *f, const char *const *values)
{
    pthread_mutex_lock(&registry_mu);
    find_series(f, values, true);
    pthread_mutex_unlock(&registry_mu);
}

uint64_t metrics_counter_value(metrics_family *f, const char *const *values)
{
    pthread_mutex_lock(&registry_mu);
    metrics_series *s = find_series(f, values, false);
    uint64_t n = s ? s->count : 0;
    pthread_mutex_unlock(&registry_mu);
    return n;
}

static void write_histogram_series(metrics_family *f, const metrics_series *s, metrics_buf *b)
{
    char name[128];
    const char *names[METRICS_MAX_LABELS + 1];
    const char *values[METRICS_MAX_LABELS + 1];
    for (int k = 0; k < f->n_labels; k++) {
        names[k] = f->label_names[k];
        values[k] = s->values[k];
    }
    names[f->n_labels] = "le";
    snprintf(name, sizeof name, "%s_bucket", f->name);
    uint64_t cumulative = 0;
    for (int i = 0; i <= f->n_bounds; i++) {
        char le[32] = "+Inf";
        if (i < f->n_bounds)
            snprintf(le, sizeof le, "%.15g", f->bounds[i]);
        cumulative += s->buckets[i];
        values[f->n_labels] = le;
        metrics_write_sample(b, name, f->n_labels + 1, names, values, (double)cumulative);
    }
    snprintf(name, sizeof name, "%s_sum", f->name);
    metrics_write_sample(b, name, f->n_labels, names, values, s->sum);
    snprintf(name, sizeof name, "%s_count", f->name);
    metrics_write_sample(b, name, f->n_labels, names, values, (double)s->count);
}

/* Caller holds registry_mu. */
static void family_write_locked(metrics_family *f, metrics_buf *b)
{
    metrics_write_family(b, f->name, f->kind == METRICS_HISTOGRAM ? "histogram" : "counter", f->help);
    for (int i = 0; i < f->n_series; i++) {
        const metrics_series *s = &f->series[i];
        if (f->kind == METRICS_HISTOGRAM) {
            write_histogram_series(f, s, b);
            continue;
        }
        const char *values[METRICS_MAX_LABELS];
        for (int k = 0; k < f->n_labels; k++)
            values[k] = s->values[k];
        metrics_write_sample(b, f->name, f->n_labels, f->label_names, values, (double)s->count);
    }
}

void metrics_family_write(metrics_family *f, metrics_buf *b)
{
    pthread_mutex_lock(&registry_mu);
    family_write_locked(f, b);
    pthread_mutex_unlock(&registry_mu);
}

/* --- the registry ------------------------------------------------------------------------ */

/* Seconds: from a warm pool's few milliseconds to the longest wait a client may hold. */
static const double duration_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,    10,    30,   60,  120, 300};
#define N_DURATION_BOUNDS ((int)(sizeof duration_bounds / sizeof duration_bounds[0]))

metrics_family metrics_http_requests = {
    .name = "executord_http_requests_total",
    .help = "HTTP requests answered, by method, route pattern (\"other\" for unknown paths) and status code.",
    .kind = METRICS_COUNTER,
    .n_labels = 3,
    .label_names = {"method", "route", "code"},
};

metrics_family metrics_http_evictions = {
    .name = "executord_http_connections_evicted_total",
    .help = "Connections with an incomplete request (headers or body still coming, or idle) closed, "
            "oldest first, because too many were open.",
    .kind = METRICS_COUNTER,
};

metrics_family metrics_setup_failures = {
    .name = "executord_sandbox_setup_failures_total",
    .help = "Jobs whose sandbox could not be set up (the script never ran), by backend.",
    .kind = METRICS_COUNTER,
    .n_labels = 1,
    .label_names = {"backend"},
};

metrics_family metrics_jobs_finished = {
    .name = "executord_jobs_finished_total",
    .help = "Jobs run by this instance that reached a final state since it started, by backend and status.",
    .kind = METRICS_COUNTER,
    .n_labels = 2,
    .label_names = {"backend", "status"},
};

metrics_family metrics_queue_wait = {
    .name = "executord_job_queue_wait_seconds",
    .help = "Time jobs spent queued (started - created), observed when they finish, by backend.",
    .kind = METRICS_HISTOGRAM,
    .n_labels = 1,
    .label_names = {"backend"},
    .bounds = duration_bounds,
    .n_bounds = N_DURATION_BOUNDS,
};

metrics_family metrics_run_time = {
    .name = "executord_job_run_seconds",
    .help = "Time jobs spent running (finished - started), observed when they finish, by backend.",
    .kind = METRICS_HISTOGRAM,
    .n_labels = 1,
    .label_names = {"backend"},
    .bounds = duration_bounds,
    .n_bounds = N_DURATION_BOUNDS,
};

metrics_family metrics_memory_waits = {
    .name = "executord_jobs_waited_for_memory_total",
    .help = "Jobs that reached the head of the queue while running jobs held too much of the memory "
            "budget for them, and waited.",
    .kind = METRICS_COUNTER,
};

metrics_family metrics_deps_lookups = {
    .name = "executord_deps_cache_lookups_total",
    .help = "Jobs with dependencies that looked up their environment, by result: hit (published "
            "already) or miss (installed for them, or waited for another job's install).",
    .kind = METRICS_COUNTER,
    .n_labels = 1,
    .label_names = {"result"},
};

metrics_family metrics_deps_installs = {
    .name = "executord_deps_installs_total",
    .help = "Package installs (one per environment missing from the cache), by result: succeeded, "
            "failed or cancelled.",
    .kind = METRICS_COUNTER,
    .n_labels = 1,
    .label_names = {"result"},
};

metrics_family metrics_deps_evictions = {
    .name = "executord_deps_cache_evictions_total",
    .help = "Environments removed from the package cache, least recently used first, to keep it "
            "within --deps-cache-mb.",
    .kind = METRICS_COUNTER,
};

static metrics_family *const registry[] = {
    &metrics_http_requests, &metrics_http_evictions, &metrics_jobs_finished, &metrics_setup_failures,
    &metrics_queue_wait, &metrics_run_time, &metrics_memory_waits, &metrics_deps_lookups,
    &metrics_deps_installs, &metrics_deps_evictions,
};

static _Atomic int64_t start_time_ms;
/* The package cache's size; -1 until it is opened (then exported). */
static _Atomic int64_t deps_cache_bytes = -1, deps_cache_envs = -1;

/* Methods outside this set would let any client mint new series. */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; method && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "other";
}

void metrics_http_request(const char *method, const char *route, unsigned int code)
{
    char code_text[16];
    snprintf(code_text, sizeof code_text, "%u", code);
    const char *values[] = {method_label(method), route ? route : "other", code_text};
    metrics_counter_add(&metrics_http_requests, values, 1);
}

void metrics_http_connections_evicted(uint64_t n)
{
    metrics_counter_add(&metrics_http_evictions, NULL, n);
}

void metrics_job_finished(const char *backend, const char *status, int64_t created_ms,
                          int64_t started_ms, int64_t finished_ms)
{
    const char *by_backend[] = {backend};
    const char *by_backend_status[] = {backend, status};
    metrics_counter_add(&metrics_jobs_finished, by_backend_status, 1);
    metrics_histogram_observe(&metrics_queue_wait, by_backend, (double)(started_ms - created_ms) / 1000.0);
    metrics_histogram_observe(&metrics_run_time, by_backend, (double)(finished_ms - started_ms) / 1000.0);
}

void metrics_jobs_waited_for_memory(uint64_t n)
{
    metrics_counter_add(&metrics_memory_waits, NULL, n);
}

void metrics_setup_failure(const char *backend)
{
    const char *values[] = {backend};
    metrics_counter_add(&metrics_setup_failures, values, 1);
}

void metrics_register_backend(const char *backend)
{
    const char *values[] = {backend};
    metrics_family_touch(&metrics_setup_failures, values);
}

void metrics_deps_lookup(bool hit)
{
    const char *values[] = {hit ? "hit" : "miss"};
    metrics_counter_add(&metrics_deps_lookups, values, 1);
}

void metrics_deps_install(const char *result)
{
    const char *values[] = {result};
    metrics_counter_add(&metrics_deps_installs, values, 1);
}

void metrics_deps_evicted(void)
{
    metrics_counter_add(&metrics_deps_evictions, NULL, 1);
}

void metrics_deps_cache_size(uint64_t bytes, unsigned envs)
{
    atomic_store(&deps_cache_bytes, (int64_t)bytes);
    atomic_store(&deps_cache_envs, (int64_t)envs);
}

void metrics_set_start_time(int64_t unix_ms)
{
    atomic_store(&start_time_ms, unix_ms);
}

void metrics_write_registry(metrics_buf *b)
{
    const char *version[] = {EXECUTORD_VERSION};
    static const char *const version_name[] = {"version"};
    metrics_write_family(b, "executord_build_info", "gauge", "Always 1; the version executord was built as.");
    metrics_write_sample(b, "executord_build_info", 1, version_name, version, 1);
    int64_t started = atomic_load(&start_time_ms);
    if (started > 0) {
        metrics_write_family(b, "executord_start_time_seconds", "gauge",
                             "When this instance started serving, in seconds since the Unix epoch.");
        metrics_write_sample(b, "executord_start_time_seconds", 0, NULL, NULL, (double)started / 1000.0);
    }
    int64_t deps_bytes = atomic_load(&deps_cache_bytes), deps_envs = atomic_load(&deps_cache_envs);
    if (deps_bytes >= 0) {
        metrics_write_family(b, "executord_deps_cache_bytes", "gauge",
                             "Disk space the published package environments take (--deps-cache-mb bounds it).");
        metrics_write_sample(b, "executord_deps_cache_bytes", 0, NULL, NULL, (double)deps_bytes);
        metrics_write_family(b, "executord_deps_cache_environments", "gauge",
                             "Package environments in the cache.");
        metrics_write_sample(b, "executord_deps_cache_environments", 0, NULL, NULL, (double)deps_envs);
    }
    pthread_mutex_lock(&registry_mu);
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        family_write_locked(registry[i], b);
    pthread_mutex_unlock(&registry_mu);
}
