/* Metrics: the process-wide registry of counters and histograms that the scheduler and
 * the HTTP layer bump, and the Prometheus text exposition (format 0.0.4) writer. The
 * writer functions are pure (they only append to a buffer) and unit-tested. */
#ifndef EXECUTORD_METRICS_H
#define EXECUTORD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- the text writer ----------------------------------------------------------------- */

/* A growing text buffer. Once an allocation failed, `failed` stays set and further writes
 * are ignored, so callers check once at the end. */
typedef struct metrics_buf {
    char *data;
    size_t len, cap;
    bool failed;
} metrics_buf;

void metrics_buf_init(metrics_buf *b);
void metrics_buf_free(metrics_buf *b);
void metrics_buf_printf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the text (NUL-terminated, malloc'd) to the caller; NULL when a write failed. */
char *metrics_buf_take(metrics_buf *b, size_t *len);

/* A label value with \, " and newline escaped as the exposition format requires. */
void metrics_write_label_value(metrics_buf *b, const char *value);
/* A sample value: integers without exponent, +Inf, -Inf, NaN. */
void metrics_write_value(metrics_buf *b, double v);
/* "# HELP name help" (help escaped) and "# TYPE name type". */
void metrics_write_family(metrics_buf *b, const char *name, const char *type, const char *help);
/* name{l1="v1",...} value — no braces without labels. */
void metrics_write_sample(metrics_buf *b, const char *name, int n_labels,
                          const char *const *label_names, const char *const *label_values, double v);

/* True when name is a valid metric (or label, with label = true) name. */
bool metrics_name_valid(const char *name, bool label);

/* --- families -------------------------------------------------------------------------- */

#define METRICS_MAX_LABELS 3
#define METRICS_LABEL_LEN 48    /* longer label values are cut (ours are short) */
#define METRICS_MAX_SERIES 128  /* per family; beyond it new label sets are dropped */
#define METRICS_MAX_BOUNDS 16

typedef enum metrics_kind { METRICS_COUNTER, METRICS_HISTOGRAM } metrics_kind;

typedef struct metrics_series {
    char values[METRICS_MAX_LABELS][METRICS_LABEL_LEN];
    uint64_t count;                          /* counter value, or observations */
    uint64_t buckets[METRICS_MAX_BOUNDS + 1]; /* histogram: per bucket (not cumulative); last = +Inf */
    double sum;
} metrics_series;

/* One metric family: its label sets and their values. Every family is updated under one
 * process-wide mutex: updates are a few per request or job, the lock keeps a histogram's
 * buckets, sum and count consistent, and a scrape sees one state across families. */
typedef struct metrics_family {
    const char *name;
    const char *help;
    metrics_kind kind;
    int n_labels;
    const char *label_names[METRICS_MAX_LABELS];
    const double *bounds;                    /* histogram upper bounds, ascending */
    int n_bounds;
    int n_series;
    uint64_t dropped;                        /* updates refused because the family was full */
    metrics_series series[METRICS_MAX_SERIES];
} metrics_family;

/* Counters: adds n to the series with these label values (created at 0 when new). */
void metrics_counter_add(metrics_family *f, const char *const *values, uint64_t n);
/* Histograms: records one observation (negative values count as 0). */
void metrics_histogram_observe(metrics_family *f, const char *const *values, double v);
/* Makes the series exist (at 0) so it is exported before its first event. */
void metrics_family_touch(metrics_family *f, const char *const *values);
/* HELP, TYPE and every series; histograms as cumulative _bucket{le=...}, _sum, _count. */
void metrics_family_write(metrics_family *f, metrics_buf *b);
/* The counter value of one series (0 when absent); for tests. */
uint64_t metrics_counter_value(metrics_family *f, const char *const *values);

/* --- the registry: what executord measures -------------------------------------------- */

/* One answered HTTP request: route is the route pattern ("/v1/jobs/{id}", "other"). */
void metrics_http_request(const char *method, const char *route, unsigned int code);
/* n connections with an incomplete request were closed to make room (api/deadline.h);
 * n = 0 makes the counter exist before the first. */
void metrics_http_connections_evicted(uint64_t n);
/* A job a worker ran reached its final state (times in Unix ms). */
void metrics_job_finished(const char *backend, const char *status, int64_t created_ms,
                          int64_t started_ms, int64_t finished_ms);
/* n more jobs had to wait in the queue for memory (the budget was held by running jobs);
 * n = 0 makes the counter exist before the first. */
void metrics_jobs_waited_for_memory(uint64_t n);
/* A backend could not build the sandbox: the script never ran. */
void metrics_setup_failure(const char *backend);
/* Creates the backend's set-up failure series at 0, so it is exported before any failure. */
void metrics_register_backend(const char *backend);
/* The package environments (src/depcache.h): a lookup that found it published (hit) or
 * not; an install's end ("succeeded", "failed", "cancelled"); an eviction; what the
 * cache holds now. */
void metrics_deps_lookup(bool hit);
void metrics_deps_install(const char *result);
void metrics_deps_evicted(void);
void metrics_deps_cache_size(uint64_t bytes, unsigned envs);
/* When the instance started (Unix ms); exported as executord_start_time_seconds. */
void metrics_set_start_time(int64_t unix_ms);
/* Writes every family of the registry (plus build info and start time). */
void metrics_write_registry(metrics_buf *b);

/* The registry's families, exposed for tests. */
extern metrics_family metrics_http_requests;
extern metrics_family metrics_http_evictions;
extern metrics_family metrics_setup_failures;
extern metrics_family metrics_jobs_finished;
extern metrics_family metrics_queue_wait;
extern metrics_family metrics_run_time;
extern metrics_family metrics_memory_waits;
extern metrics_family metrics_deps_lookups;
extern metrics_family metrics_deps_installs;
extern metrics_family metrics_deps_evictions;

#endif
