/* Metrics: the exposition writer (escaping, values, HELP/TYPE), counter and histogram
 * families (cumulative buckets, _sum/_count, label sets, the series cap), the registry's
 * hooks, the route labels, and the store's (status, backend) count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "src/metrics.h"
#include "src/store.h"

/* The rendered text of one call, freed by the caller. */
static char *take(metrics_buf *b)
{
    size_t len = 0;
    char *text = metrics_buf_take(b, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void label_values_are_escaped(void **state)
{
    metrics_buf b;
    metrics_buf_init(&b);
    metrics_write_label_value(&b, "a\\b\"c\nd");
    char *text = take(&b);
    assert_string_equal(text, "a\\\\b\\\"c\\nd");
    free(text);
}

static void help_escapes_backslash_and_newline_only(void **state)
{
    metrics_buf b;
    metrics_buf_init(&b);
    metrics_write_family(&b, "x_total", "counter", "say \"hi\"\\\nbye");
    char *text = take(&b);
    assert_string_equal(text, "# HELP x_total say \"hi\"\\\\\\nbye\n# TYPE x_total counter\n");
    free(text);
}

static void values_are_formatted_for_prometheus(void **state)
{
    const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"}, {42, "42"}, {-3, "-3"}, {0.25, "0.25"}, {1e15, "1000000000000000"},
        {1e300, "1e+300"}, {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"},
        {0.1 + 0.2, "0.3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        metrics_buf b;
        metrics_buf_init(&b);
        metrics_write_value(&b, cases[i].v);
        char *text = take(&b);
        assert_string_equal(text, cases[i].want);
        free(text);
    }
}

static void samples_with_and_without_labels(void **state)
{
    metrics_buf b;
    metrics_buf_init(&b);
    const char *names[] = {"route", "code"};
    const char *values[] = {"/v1/jobs/{id}", "404"};
    metrics_write_sample(&b, "m_total", 2, names, values, 3);
    metrics_write_sample(&b, "g", 0, NULL, NULL, 1.5);
    char *text = take(&b);
    assert_string_equal(text, "m_total{route=\"/v1/jobs/{id}\",code=\"404\"} 3\ng 1.5\n");
    free(text);
}

static void names_are_validated(void **state)
{
    assert_true(metrics_name_valid("executord_jobs", false));
    assert_true(metrics_name_valid("a:b_c9", false));
    assert_false(metrics_name_valid("9a", false));
    assert_false(metrics_name_valid("a-b", false));
    assert_false(metrics_name_valid("", false));
    assert_true(metrics_name_valid("le", true));
    assert_false(metrics_name_valid("a:b", true));
    assert_false(metrics_name_valid("__name__", true));
}

static const double bounds[] = {0.1, 1, 10};

static metrics_family *new_histogram(void)
{
    metrics_family *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->name = "h_seconds";
    f->help = "a histogram";
    f->kind = METRICS_HISTOGRAM;
    f->n_labels = 1;
    f->label_names[0] = "backend";
    f->bounds = bounds;
    f->n_bounds = 3;
    return f;
}

static void histogram_buckets_are_cumulative(void **state)
{
    metrics_family *f = new_histogram();
    const char *pool[] = {"pool"};
    /* 0.1 is "le 0.1" (upper bounds are inclusive); a negative value counts as 0. */
    double obs[] = {0.05, 0.1, 0.5, 2, 20, -1};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_histogram_observe(f, pool, obs[i]);
    metrics_buf b;
    metrics_buf_init(&b);
    metrics_family_write(f, &b);
    char *text = take(&b);
    assert_string_equal(text, "# HELP h_seconds a histogram\n"
                              "# TYPE h_seconds histogram\n"
                              "h_seconds_bucket{backend=\"pool\",le=\"0.1\"} 3\n"
                              "h_seconds_bucket{backend=\"pool\",le=\"1\"} 4\n"
                              "h_seconds_bucket{backend=\"pool\",le=\"10\"} 5\n"
                              "h_seconds_bucket{backend=\"pool\",le=\"+Inf\"} 6\n"
                              "h_seconds_sum{backend=\"pool\"} 22.65\n"
                              "h_seconds_count{backend=\"pool\"} 6\n");
    free(text);
    free(f);
}

static void histogram_series_per_label_set(void **state)
{
    metrics_family *f = new_histogram();
    const char *a[] = {"direct"}, *b_[] = {"pool"};
    metrics_histogram_observe(f, a, 1);
    metrics_histogram_observe(f, b_, 100);
    metrics_histogram_observe(f, a, 1);
    assert_int_equal(f->n_series, 2);
    assert_int_equal(f->series[0].count, 2);
    assert_int_equal(f->series[1].buckets[3], 1); /* +Inf only */
    free(f);
}

static void counters_by_label_set_and_cap(void **state)
{
    metrics_family *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->name = "c_total";
    f->help = "h";
    f->kind = METRICS_COUNTER;
    f->n_labels = 2;
    f->label_names[0] = "route";
    f->label_names[1] = "code";
    const char *ok[] = {"/healthz", "200"}, *nf[] = {"other", "404"};
    metrics_counter_add(f, ok, 1);
    metrics_counter_add(f, ok, 2);
    metrics_family_touch(f, nf);
    assert_int_equal(metrics_counter_value(f, ok), 3);
    assert_int_equal(metrics_counter_value(f, nf), 0);
    metrics_buf b;
    metrics_buf_init(&b);
    metrics_family_write(f, &b);
    char *text = take(&b);
    assert_string_equal(text, "# HELP c_total h\n# TYPE c_total counter\n"
                              "c_total{route=\"/healthz\",code=\"200\"} 3\n"
                              "c_total{route=\"other\",code=\"404\"} 0\n");
    free(text);
    /* A flood of new label sets stops at the cap instead of growing without bound. */
    for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
        char code[16];
        snprintf(code, sizeof code, "%d", 1000 + i);
        const char *v[] = {"x", code};
        metrics_counter_add(f, v, 1);
    }
    assert_int_equal(f->n_series, METRICS_MAX_SERIES);
    assert_int_equal(f->dropped, 12);
    assert_int_equal(metrics_counter_value(f, ok), 3);
    free(f);
}

static void registry_hooks_feed_the_families(void **state)
{
    metrics_set_start_time(1700000000500);
    metrics_register_backend("ephemeral");
    metrics_http_request("GET", "/v1/jobs/{id}", 404);
    metrics_http_request("GET", "/v1/jobs/{id}", 404);
    metrics_http_request("BREW", "other", 405); /* unknown methods share one label */
    metrics_setup_failure("pool");
    metrics_job_finished("pool", "succeeded", 1000, 1250, 4250);
    const char *get404[] = {"GET", "/v1/jobs/{id}", "404"}, *brew[] = {"other", "other", "405"};
    assert_int_equal(metrics_counter_value(&metrics_http_requests, get404), 2);
    assert_int_equal(metrics_counter_value(&metrics_http_requests, brew), 1);
    const char *pool[] = {"pool"}, *eph[] = {"ephemeral"};
    assert_int_equal(metrics_counter_value(&metrics_setup_failures, pool), 1);
    assert_int_equal(metrics_counter_value(&metrics_setup_failures, eph), 0);
    const char *ps[] = {"pool", "succeeded"};
    assert_int_equal(metrics_counter_value(&metrics_jobs_finished, ps), 1);

    metrics_buf b;
    metrics_buf_init(&b);
    metrics_write_registry(&b);
    char *text = take(&b);
    assert_non_null(strstr(text, "# TYPE executord_build_info gauge\nexecutord_build_info{version=\""));
    assert_non_null(strstr(text, "\nexecutord_start_time_seconds 1700000000.5\n"));
    assert_non_null(strstr(text, "\nexecutord_sandbox_setup_failures_total{backend=\"ephemeral\"} 0\n"));
    /* queue wait 0.25 s, run time 3 s */
    assert_non_null(strstr(text, "\nexecutord_job_queue_wait_seconds_bucket{backend=\"pool\",le=\"0.1\"} 0\n"
                                 "executord_job_queue_wait_seconds_bucket{backend=\"pool\",le=\"0.25\"} 1\n"));
    assert_non_null(strstr(text, "\nexecutord_job_queue_wait_seconds_sum{backend=\"pool\"} 0.25\n"));
    assert_non_null(strstr(text, "\nexecutord_job_run_seconds_bucket{backend=\"pool\",le=\"2.5\"} 0\n"
                                 "executord_job_run_seconds_bucket{backend=\"pool\",le=\"5\"} 1\n"));
    assert_non_null(strstr(text, "\nexecutord_job_run_seconds_count{backend=\"pool\"} 1\n"));
    /* Every line is a comment or "name{labels} value", and every family is typed once. */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[128];
        assert_int_equal(sscanf(line, "%127[a-zA-Z0-9_:]", name), 1);
        assert_true(metrics_name_valid(name, false));
        assert_non_null(strrchr(line, ' '));
    }
    free(text);
}

static void route_labels_are_patterns(void **state)
{
    const struct {
        const char *method, *path, *label;
    } cases[] = {
        {"GET", "/v1/jobs/0b0c7ad8-6d5e-4c35-9d5b-1c0b4c7d2a10", "/v1/jobs/{id}"},
        {"POST", "/v1/jobs/0b0c7ad8-6d5e-4c35-9d5b-1c0b4c7d2a10/cancel", "/v1/jobs/{id}/cancel"},
        {"GET", "/v1/jobs/0b0c7ad8-6d5e-4c35-9d5b-1c0b4c7d2a10/logs", "/v1/jobs/{id}/logs"},
        {"GET", "/v1/jobs", "/v1/jobs"},
        {"GET", "/ui/app.js", "/ui/{file}"},
        {"GET", "/", "/"},
        {"GET", "/metrics", "/metrics"},
        {"PUT", "/metrics", "/metrics"},
        {"GET", "/v1/jobs/not-an-id", "other"},
        {"GET", "/etc/passwd", "other"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_route_match m;
        api_route_match_path(cases[i].method, cases[i].path, &m);
        assert_string_equal(api_route_label(&m), cases[i].label);
    }
    api_route_match m;
    api_route_match_path("GET", "/metrics", &m);
    assert_int_equal(m.endpoint, EP_METRICS);
    assert_true(m.needs_auth);
}

static void add_job(store *s, const char *backend, char id_out[JOB_ID_LEN + 1])
{
    job j;
    job_init(&j);
    job_new_id(j.id);
    snprintf(j.backend, sizeof j.backend, "%s", backend);
    j.created_at_ms = 1700000000000;
    j.script = strdup("def main():\n    return 1\n");
    j.inputs_json = strdup("{}");
    j.env_json = strdup("{}");
    j.limits = (sandbox_limits){.timeout_seconds = 1, .memory_mb = 64, .cpu_seconds = 1,
                                .max_processes = 8, .max_file_size_mb = 1, .max_open_files = 64,
                                .max_output_bytes = 1024};
    assert_int_equal(store_insert_job(s, &j, 0, NULL), STORE_OK);
    memcpy(id_out, j.id, JOB_ID_LEN + 1);
    job_free(&j);
}

static int64_t row_count(const store_status_count *rows, int n, job_status st, const char *backend)
{
    for (int i = 0; i < n; i++)
        if (rows[i].status == st && strcmp(rows[i].backend, backend) == 0)
            return rows[i].count;
    return 0;
}

static void store_counts_by_status_and_backend(void **state)
{
    char err[256];
    store *s = store_open(":memory:", err, sizeof err);
    assert_non_null(s);
    store_status_count rows[16];
    assert_int_equal(store_count_by_status_backend(s, rows, 16), 0);
    char id[JOB_ID_LEN + 1];
    add_job(s, "pool", id);
    add_job(s, "pool", id);
    add_job(s, "direct", id);
    job j;
    job_init(&j);
    assert_int_equal(store_cancel_queued(s, id, 1700000000001, &j), STORE_OK);
    job_free(&j);
    assert_int_equal(store_claim_next(s, 1700000000002, &j), STORE_OK); /* the oldest pool job */
    job_free(&j);
    int n = store_count_by_status_backend(s, rows, 16);
    assert_int_equal(n, 3);
    assert_int_equal(row_count(rows, n, JOB_QUEUED, "pool"), 1);
    assert_int_equal(row_count(rows, n, JOB_RUNNING, "pool"), 1);
    assert_int_equal(row_count(rows, n, JOB_CANCELLED, "direct"), 1);
    /* Never more rows than asked for. */
    assert_int_equal(store_count_by_status_backend(s, rows, 2), 2);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(help_escapes_backslash_and_newline_only),
        cmocka_unit_test(values_are_formatted_for_prometheus),
        cmocka_unit_test(samples_with_and_without_labels),
        cmocka_unit_test(names_are_validated),
        cmocka_unit_test(histogram_buckets_are_cumulative),
        cmocka_unit_test(histogram_series_per_label_set),
        cmocka_unit_test(counters_by_label_set_and_cap),
        cmocka_unit_test(registry_hooks_feed_the_families),
        cmocka_unit_test(route_labels_are_patterns),
        cmocka_unit_test(store_counts_by_status_and_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
