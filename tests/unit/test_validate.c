/* Request validation at its boundaries: every field's wrong type and range, unknown
 * fields, NUL characters, env and label rules, backend availability, defaults, the
 * idempotency canonical form, and every query parameter parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

/* --- fixtures -------------------------------------------------------------------- */

static config cfg;

static const char *const names[] = {"direct", "ephemeral", "pool", NULL};

static bool fake_available(const char *name, const char **why)
{
    if (strcmp(name, "direct") == 0)
        return true;
    *why = "unprivileged user namespaces are disabled";
    return false;
}

static const api_backend_checks checks = {.names = names, .available = fake_available};

static bool knows_gvisor_too(const char *name)
{
    return strcmp(name, "gvisor") == 0 || strcmp(name, "direct") == 0;
}

static int setup(void **state)
{
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.backend, sizeof cfg.backend, "direct");
    snprintf(cfg.backends, sizeof cfg.backends, "direct,ephemeral,pool");
    cfg.max_body_bytes = 1 << 20;
    cfg.max_queued = 100;
    cfg.default_limits = (sandbox_limits){30, 512, 60, 64, 64, 256, 1048576};
    cfg.max_limits = (sandbox_limits){3600, 65536, 3600, 4096, 4096, 65536, 67108864};
    return 0;
}

static int parse(const char *body, job *j, api_error *e)
{
    return api_parse_job_request(&cfg, &checks, body, strlen(body), NULL, j, e);
}

#define expect_invalid(body, fld) expect_invalid_at(body, fld, NULL, __LINE__)
#define expect_invalid_msg(body, fld, msg) expect_invalid_at(body, fld, msg, __LINE__)

static void expect_invalid_at(const char *body, const char *field, const char *msg, int line)
{
    job j;
    api_error e;
    int rc = parse(body, &j, &e);
    if (rc != -1 || e.status != 422 || strcmp(e.field, field) != 0 ||
        (msg && !strstr(e.message, msg))) {
        fprintf(stderr, "line %d: body %s: rc %d status %u field '%s' message '%s'\n", line, body,
                rc, e.status, e.field, e.message);
        fail();
    }
    assert_string_equal(e.code, "invalid_field");
    assert_null(j.script); /* nothing leaks out of a rejected request */
}

static void expect_400_at(const char *body, size_t len, const char *code, int line)
{
    job j;
    api_error e;
    int rc = api_parse_job_request(&cfg, &checks, body, len, NULL, &j, &e);
    if (rc != -1 || e.status != 400 || strcmp(e.code, code) != 0) {
        fprintf(stderr, "line %d: rc %d status %u code %s message '%s'\n", line, rc, e.status,
                e.code ? e.code : "-", e.message);
        fail();
    }
    assert_string_equal(e.field, "");
}
#define expect_400(body, code) expect_400_at(body, strlen(body), code, __LINE__)

static void expect_valid(const char *body, job *j)
{
    api_error e;
    int rc = parse(body, j, &e);
    if (rc != 0)
        fprintf(stderr, "body %s: %u %s '%s' %s\n", body, e.status, e.code, e.field, e.message);
    assert_int_equal(rc, 0);
}

/* --- the body -------------------------------------------------------------------- */

static void defaults_are_filled(void **state)
{
    job j;
    expect_valid("{\"script\":\"def main():\\n  return 1\\n\"}", &j);
    assert_string_equal(j.script, "def main():\n  return 1\n");
    assert_string_equal(j.backend, "direct");
    assert_string_equal(j.inputs_json, "{}");
    assert_string_equal(j.env_json, "{}");
    assert_string_equal(j.labels_json, "{}");
    assert_false(j.allow_network);
    assert_true(j.limits.timeout_seconds == 30.0);
    assert_int_equal(j.limits.memory_mb, 512);
    assert_int_equal(j.limits.cpu_seconds, 60);
    assert_int_equal(j.limits.max_processes, 64);
    assert_int_equal(j.limits.max_file_size_mb, 64);
    assert_int_equal(j.limits.max_open_files, 256);
    assert_int_equal(j.limits.max_output_bytes, 1048576);
    assert_null(j.idempotency_key);
    assert_null(j.request_json);
    job_free(&j);

    /* the configured default backend, not a hard-coded one */
    snprintf(cfg.backend, sizeof cfg.backend, "pool");
    api_error e;
    assert_int_equal(parse("{\"script\":\"x\"}", &j, &e), -1);
    assert_string_equal(e.field, "backend");
    assert_non_null(strstr(e.message, "backend 'pool' is not available"));
}

static void every_field_accepted(void **state)
{
    job j;
    expect_valid("{\"script\":\"x\",\"inputs\":{\"a\":[1,2],\"b\":null},\"backend\":\"direct\","
                 "\"timeout_seconds\":2.5,\"allow_network\":true,"
                 "\"env_vars\":{\"API_KEY\":\"s3cret\",\"_x1\":\"\"},"
                 "\"limits\":{\"memory_mb\":65536,\"cpu_seconds\":1,\"max_processes\":4096,"
                 "\"max_file_size_mb\":1,\"max_open_files\":65536,\"max_output_bytes\":67108864},"
                 "\"labels\":{\"team\":\"sec\",\"a.b-c/d_e\":\"\"}}",
                 &j);
    assert_string_equal(j.inputs_json, "{\"a\":[1,2],\"b\":null}");
    assert_true(j.limits.timeout_seconds == 2.5);
    assert_true(j.allow_network);
    assert_string_equal(j.env_json, "{\"API_KEY\":\"s3cret\",\"_x1\":\"\"}");
    assert_string_equal(j.labels_json, "{\"team\":\"sec\",\"a.b-c/d_e\":\"\"}");
    assert_int_equal(j.limits.memory_mb, 65536);
    assert_int_equal(j.limits.cpu_seconds, 1);
    assert_int_equal(j.limits.max_processes, 4096);
    assert_int_equal(j.limits.max_file_size_mb, 1);
    assert_int_equal(j.limits.max_open_files, 65536);
    assert_int_equal(j.limits.max_output_bytes, 67108864);
    job_free(&j);

    /* inputs null means none; timeout at exactly the maximum is allowed */
    expect_valid("{\"script\":\"x\",\"inputs\":null,\"timeout_seconds\":3600}", &j);
    assert_string_equal(j.inputs_json, "{}");
    assert_true(j.limits.timeout_seconds == 3600.0);
    job_free(&j);
}

static void malformed_bodies(void **state)
{
    expect_400("", "malformed_json");
    expect_400("{", "malformed_json");
    expect_400("{\"script\":", "malformed_json");
    expect_400("{\"script\":\"x\"} trailing", "malformed_json");
    expect_400("{\"script\":\"\xff\xfe\"}", "malformed_json");          /* invalid UTF-8 */
    expect_400("{\"script\":\"\xc0\xaf\"}", "malformed_json");          /* overlong */
    expect_400("{\"script\":\"x\",\"script\":\"y\"}", "malformed_json"); /* duplicate key */
    expect_400("{\"script\":\"x\",\"timeout_seconds\":1e400}", "malformed_json");
    expect_400("{'script':'x'}", "malformed_json");
    /* an embedded NUL byte in the text itself (not \u0000) is not JSON */
    expect_400_at("{\"script\":\"x\"}\0", 15, "malformed_json", __LINE__);

    expect_400("[]", "invalid_body");
    expect_400("[{\"script\":\"x\"}]", "invalid_body");
    expect_400("\"script\"", "invalid_body");
    expect_400("42", "invalid_body");
    expect_400("null", "invalid_body");
    expect_400("true", "invalid_body");

    job j;
    api_error e;
    assert_int_equal(api_parse_job_request(&cfg, &checks, NULL, 0, NULL, &j, &e), -1);
    assert_string_equal(e.code, "malformed_json");
}

static void unknown_fields(void **state)
{
    expect_invalid_msg("{\"script\":\"x\",\"foo\":1}", "foo", "unknown field 'foo'");
    expect_invalid("{\"foo\":1,\"script\":\"x\"}", "foo");
    expect_invalid("{\"script\":\"x\",\"Script\":\"y\"}", "Script"); /* case matters */
    expect_invalid("{\"script\":\"x\",\"timeout\":5}", "timeout");
    expect_invalid_msg("{\"script\":\"x\",\"limits\":{\"memory\":5}}", "limits.memory",
                       "unknown field 'limits.memory'");
    /* timeout belongs at the top level, not in limits */
    expect_invalid("{\"script\":\"x\",\"limits\":{\"timeout_seconds\":5}}", "limits.timeout_seconds");
    /* an empty key is still named (found by fuzzing: the 422 had no field) */
    expect_invalid("{\"script\":\"x\",\"\":1}", "\"\"");
}

static void script_rules(void **state)
{
    expect_invalid_msg("{}", "script", "required");
    expect_invalid_msg("{\"inputs\":{}}", "script", "required");
    expect_invalid_msg("{\"script\":42}", "script", "must be a string");
    expect_invalid("{\"script\":null}", "script");
    expect_invalid("{\"script\":[\"x\"]}", "script");
    expect_invalid("{\"script\":{}}", "script");
    expect_invalid("{\"script\":true}", "script");
    expect_invalid_msg("{\"script\":\"\"}", "script", "empty");
    expect_invalid_msg("{\"script\":\"a\\u0000b\"}", "script", "NUL");
    expect_invalid("{\"script\":\"\\u0000\"}", "script");
}

static void inputs_rules(void **state)
{
    expect_invalid_msg("{\"script\":\"x\",\"inputs\":[]}", "inputs", "object");
    expect_invalid("{\"script\":\"x\",\"inputs\":\"{}\"}", "inputs");
    expect_invalid("{\"script\":\"x\",\"inputs\":5}", "inputs");
    expect_invalid("{\"script\":\"x\",\"inputs\":false}", "inputs");
}

static void backend_rules(void **state)
{
    expect_invalid_msg("{\"script\":\"x\",\"backend\":\"nope\"}", "backend",
                       "unknown backend 'nope' (known: direct, ephemeral, pool)");
    expect_invalid_msg("{\"script\":\"x\",\"backend\":\"Direct\"}", "backend", "unknown backend");
    expect_invalid_msg("{\"script\":\"x\",\"backend\":\"\"}", "backend", "unknown backend");
    expect_invalid_msg("{\"script\":\"x\",\"backend\":\"ephemeral\"}", "backend",
                       "backend 'ephemeral' is not available: "
                       "unprivileged user namespaces are disabled");
    expect_invalid_msg("{\"script\":\"x\",\"backend\":5}", "backend", "must be a string");
    expect_invalid("{\"script\":\"x\",\"backend\":null}", "backend");
    expect_invalid_msg("{\"script\":\"x\",\"backend\":\"direct\\u0000\"}", "backend", "NUL");
    job j;
    expect_valid("{\"script\":\"x\",\"backend\":\"direct\"}", &j);
    assert_string_equal(j.backend, "direct");
    job_free(&j);

    /* a known() callback decides what exists, beyond the listed names */
    api_backend_checks wider = checks;
    wider.known = knows_gvisor_too;
    api_error e;
    const char *body = "{\"script\":\"x\",\"backend\":\"gvisor\"}";
    assert_int_equal(api_parse_job_request(&cfg, &wider, body, strlen(body), NULL, &j, &e), -1);
    assert_string_equal(e.field, "backend");
    assert_non_null(strstr(e.message, "backend 'gvisor' is not enabled on this instance"));
    assert_int_equal(api_parse_job_request(&cfg, &checks, body, strlen(body), NULL, &j, &e), -1);
    assert_non_null(strstr(e.message, "unknown backend 'gvisor'"));

    /* --backends: a known, available backend outside the list is refused, naming the list */
    snprintf(cfg.backends, sizeof cfg.backends, "pool,ephemeral");
    body = "{\"script\":\"x\",\"backend\":\"direct\"}";
    assert_int_equal(api_parse_job_request(&cfg, &checks, body, strlen(body), NULL, &j, &e), -1);
    assert_string_equal(e.field, "backend");
    assert_non_null(strstr(e.message, "backend 'direct' is not enabled on this instance (enabled: pool,ephemeral"));
    /* enabled but not available here: the availability reason */
    body = "{\"script\":\"x\",\"backend\":\"ephemeral\"}";
    assert_int_equal(api_parse_job_request(&cfg, &checks, body, strlen(body), NULL, &j, &e), -1);
    assert_non_null(strstr(e.message, "backend 'ephemeral' is not available"));
    snprintf(cfg.backends, sizeof cfg.backends, "pool,ephemeral,direct");
    body = "{\"script\":\"x\",\"backend\":\"direct\"}";
    assert_int_equal(api_parse_job_request(&cfg, &checks, body, strlen(body), NULL, &j, &e), 0);
    job_free(&j);
}

static void timeout_rules(void **state)
{
    const char *bad[] = {"0", "-1", "-0.5", "0.0", "3600.001", "3601", "1e300", "\"30\"", "true",
                         "null", "[30]", "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"script\":\"x\",\"timeout_seconds\":%s}", bad[i]);
        expect_invalid(body, "timeout_seconds");
    }
    expect_invalid_msg("{\"script\":\"x\",\"timeout_seconds\":0}", "timeout_seconds",
                       "greater than 0 and at most 3600");
    job j;
    expect_valid("{\"script\":\"x\",\"timeout_seconds\":0.001}", &j);
    assert_true(j.limits.timeout_seconds == 0.001);
    job_free(&j);
    expect_valid("{\"script\":\"x\",\"timeout_seconds\":1}", &j);
    assert_true(j.limits.timeout_seconds == 1.0);
    job_free(&j);
}

static void allow_network_rules(void **state)
{
    expect_invalid_msg("{\"script\":\"x\",\"allow_network\":\"true\"}", "allow_network", "boolean");
    expect_invalid("{\"script\":\"x\",\"allow_network\":1}", "allow_network");
    expect_invalid("{\"script\":\"x\",\"allow_network\":null}", "allow_network");
    job j;
    expect_valid("{\"script\":\"x\",\"allow_network\":false}", &j);
    assert_false(j.allow_network);
    job_free(&j);
}

static void limits_rules(void **state)
{
    static const struct {
        const char *name;
        const char *max;
        const char *above;
        const char *min;
        const char *below; /* NULL: the minimum is 1, and "0" is among always_bad */
    } lim[] = {
        {"memory_mb", "65536", "65537", "16", "15"},
        {"cpu_seconds", "3600", "3601", "1", NULL},
        {"max_processes", "4096", "4097", "1", NULL},
        {"max_file_size_mb", "4096", "4097", "1", NULL},
        {"max_open_files", "65536", "65537", "16", "15"},
        {"max_output_bytes", "67108864", "67108865", "1", NULL},
    };
    const char *always_bad[] = {"0", "-1", "1.5", "512.0", "\"512\"", "null", "true", "[1]",
                                "9223372036854775807", "-9223372036854775808"};
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
        char body[256], field[64];
        snprintf(field, sizeof field, "limits.%s", lim[i].name);
        for (size_t k = 0; k < sizeof always_bad / sizeof always_bad[0]; k++) {
            snprintf(body, sizeof body, "{\"script\":\"x\",\"limits\":{\"%s\":%s}}", lim[i].name,
                     always_bad[k]);
            expect_invalid(body, field);
        }
        char range[32];
        snprintf(range, sizeof range, "from %s to", lim[i].min);
        snprintf(body, sizeof body, "{\"script\":\"x\",\"limits\":{\"%s\":%s}}", lim[i].name,
                 lim[i].above);
        expect_invalid_msg(body, field, range);
        if (lim[i].below) {
            snprintf(body, sizeof body, "{\"script\":\"x\",\"limits\":{\"%s\":%s}}", lim[i].name,
                     lim[i].below);
            expect_invalid_msg(body, field, range);
        }
        /* exactly the maximum, and the minimum, are accepted */
        snprintf(body, sizeof body, "{\"script\":\"x\",\"limits\":{\"%s\":%s}}", lim[i].name,
                 lim[i].max);
        job j;
        expect_valid(body, &j);
        job_free(&j);
        snprintf(body, sizeof body, "{\"script\":\"x\",\"limits\":{\"%s\":%s}}", lim[i].name,
                 lim[i].min);
        expect_valid(body, &j);
        job_free(&j);
    }
    expect_invalid_msg("{\"script\":\"x\",\"limits\":{\"memory_mb\":1.5}}", "limits.memory_mb",
                       "must be an integer");
    expect_invalid_msg("{\"script\":\"x\",\"limits\":[]}", "limits", "object");
    expect_invalid("{\"script\":\"x\",\"limits\":null}", "limits");
    expect_invalid("{\"script\":\"x\",\"limits\":512}", "limits");

    /* a lower configured maximum is what counts */
    cfg.max_limits.memory_mb = 1024;
    expect_invalid_msg("{\"script\":\"x\",\"limits\":{\"memory_mb\":1025}}", "limits.memory_mb",
                       "from 16 to 1024");
    /* only the given limit changes; the others keep their defaults */
    job j;
    expect_valid("{\"script\":\"x\",\"limits\":{\"memory_mb\":1024}}", &j);
    assert_int_equal(j.limits.memory_mb, 1024);
    assert_int_equal(j.limits.cpu_seconds, 60);
    job_free(&j);

    /* above the memory budget (which the maximum never exceeds): the budget is named */
    cfg.memory_budget_mb = 1024;
    expect_invalid_msg("{\"script\":\"x\",\"limits\":{\"memory_mb\":1025}}", "limits.memory_mb",
                       "from 16 to 1024: 1025 MB is above this instance's memory budget of 1024 MB "
                       "(--memory-budget-mb)");
    cfg.max_limits.memory_mb = 512;
    expect_invalid_msg("{\"script\":\"x\",\"limits\":{\"memory_mb\":513}}", "limits.memory_mb",
                       "must be an integer from 16 to 512");
    expect_invalid("{\"script\":\"x\",\"limits\":{\"memory_mb\":0}}", "limits.memory_mb");
}

static void env_rules(void **state)
{
    const char *bad_names[] = {"1A", "A-B", "", "A B", "A=B", "\\u00e9", "A.B", "$A"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"script\":\"x\",\"env_vars\":{\"%s\":\"v\"}}", bad_names[i]);
        expect_invalid(body, "env_vars");
    }
    /* Tracecat's wording, which its callers match on. */
    expect_invalid_msg("{\"script\":\"x\",\"env_vars\":{\"9X\":\"v\"}}", "env_vars",
                       "Invalid environment variable key: '9X'. Keys must match pattern [A-Za-z_][A-Za-z0-9_]*");
    expect_invalid_msg("{\"script\":\"x\",\"env_vars\":{\"A\":1}}", "env_vars.A", "string");
    expect_invalid("{\"script\":\"x\",\"env_vars\":{\"A\":null}}", "env_vars.A");
    expect_invalid("{\"script\":\"x\",\"env_vars\":{\"A\":[\"v\"]}}", "env_vars.A");
    expect_invalid_msg("{\"script\":\"x\",\"env_vars\":{\"A\":\"a\\u0000b\"}}", "env_vars.A", "NUL");
    /* jansson refuses NUL in keys while parsing; still a 422 naming the field */
    expect_invalid_msg("{\"script\":\"x\",\"env_vars\":{\"A\\u0000B\":\"v\"}}", "env_vars", "NUL");
    expect_invalid("{\"script\":\"x\",\"env_vars\":[]}", "env_vars");
    expect_invalid("{\"script\":\"x\",\"env_vars\":\"A=B\"}", "env_vars");

    /* 128 entries accepted, 129 refused */
    char *body = malloc(8192);
    for (int n = 128; n <= 129; n++) {
        size_t off = (size_t)snprintf(body, 8192, "{\"script\":\"x\",\"env_vars\":{");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(body + off, 8192 - off, "%s\"V%d\":\"%d\"", i ? "," : "", i, i);
        snprintf(body + off, 8192 - off, "}}");
        if (n == 128) {
            job j;
            expect_valid(body, &j);
            job_free(&j);
        } else {
            expect_invalid_msg(body, "env_vars", "at most 128");
        }
    }
    free(body);
}

static void label_rules(void **state)
{
    expect_invalid_msg("{\"script\":\"x\",\"labels\":{\"a b\":\"v\"}}", "labels", "label key");
    expect_invalid("{\"script\":\"x\",\"labels\":{\"\":\"v\"}}", "labels");
    expect_invalid("{\"script\":\"x\",\"labels\":{\"a:b\":\"v\"}}", "labels");
    expect_invalid("{\"script\":\"x\",\"labels\":{\"\\u00e9\":\"v\"}}", "labels");
    expect_invalid_msg("{\"script\":\"x\",\"labels\":{\"k\":5}}", "labels.k", "string");
    expect_invalid("{\"script\":\"x\",\"labels\":{\"k\":null}}", "labels.k");
    expect_invalid_msg("{\"script\":\"x\",\"labels\":{\"k\":\"a\\u0000\"}}", "labels.k", "NUL");
    expect_invalid("{\"script\":\"x\",\"labels\":{\"k\\u0000\":\"v\"}}", "labels");
    expect_invalid("{\"script\":\"x\",\"labels\":[]}", "labels");

    char key[200], val[300], body[1024];
    job j;
    /* key of 128 characters accepted, 129 refused */
    memset(key, 'k', 128);
    key[128] = '\0';
    snprintf(body, sizeof body, "{\"script\":\"x\",\"labels\":{\"%s\":\"v\"}}", key);
    expect_valid(body, &j);
    job_free(&j);
    memset(key, 'k', 129);
    key[129] = '\0';
    snprintf(body, sizeof body, "{\"script\":\"x\",\"labels\":{\"%s\":\"v\"}}", key);
    expect_invalid(body, "labels");
    /* value of 256 bytes accepted, 257 refused (bytes, not characters) */
    memset(val, 'v', 256);
    val[256] = '\0';
    snprintf(body, sizeof body, "{\"script\":\"x\",\"labels\":{\"k\":\"%s\"}}", val);
    expect_valid(body, &j);
    job_free(&j);
    memset(val, 'v', 257);
    val[257] = '\0';
    snprintf(body, sizeof body, "{\"script\":\"x\",\"labels\":{\"k\":\"%s\"}}", val);
    expect_invalid_msg(body, "labels.k", "256");
    /* 128 two-byte characters = 256 bytes is fine; one more byte is not */
    size_t off = (size_t)snprintf(body, sizeof body, "{\"script\":\"x\",\"labels\":{\"k\":\"");
    for (int i = 0; i < 128; i++)
        off += (size_t)snprintf(body + off, sizeof body - off, "\xc3\xa9");
    snprintf(body + off, sizeof body - off, "\"}}");
    expect_valid(body, &j);
    job_free(&j);
    snprintf(body + off, sizeof body - off, "x\"}}");
    expect_invalid(body, "labels.k");

    /* 64 labels accepted, 65 refused */
    char *big = malloc(8192);
    for (int n = 64; n <= 65; n++) {
        off = (size_t)snprintf(big, 8192, "{\"script\":\"x\",\"labels\":{");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(big + off, 8192 - off, "%s\"l%d\":\"v\"", i ? "," : "", i);
        snprintf(big + off, 8192 - off, "}}");
        if (n == 64) {
            expect_valid(big, &j);
            job_free(&j);
        } else {
            expect_invalid_msg(big, "labels", "at most 64");
        }
    }
    free(big);
}

static void nul_in_field_names(void **state)
{
    expect_invalid_msg("{\"script\":\"x\",\"a\\u0000b\":1}", "a\\u0000b", "NUL");
    expect_invalid("{\"script\":\"x\",\"limits\":{\"memory_mb\\u0000\":1}}", "limits.memory_mb\\u0000");
    /* inside inputs: the contract cannot carry it either, so name the inputs */
    expect_invalid("{\"script\":\"x\",\"inputs\":{\"a\":{\"b\\u0000\":1}}}", "inputs");
    /* NUL inside input values is data and allowed */
    job j;
    expect_valid("{\"script\":\"x\",\"inputs\":{\"a\":\"\\u0000\"}}", &j);
    assert_string_equal(j.inputs_json, "{\"a\":\"\\u0000\"}");
    job_free(&j);
}

/* --- idempotency ------------------------------------------------------------------- */

static void canonical_form_ignores_key_order_and_spacing(void **state)
{
    const char *a = "{\"script\":\"x\",\"labels\":{\"b\":\"2\",\"a\":\"1\"},\"timeout_seconds\":5}";
    const char *b = "{ \"timeout_seconds\" : 5 ,\n \"labels\":{\"a\":\"1\",\"b\":\"2\"}, \"script\":\"x\"}";
    const char *c = "{\"script\":\"y\",\"labels\":{\"b\":\"2\",\"a\":\"1\"},\"timeout_seconds\":5}";
    char *ca = api_canonical_request(a, strlen(a));
    char *cb = api_canonical_request(b, strlen(b));
    char *cc = api_canonical_request(c, strlen(c));
    assert_non_null(ca);
    assert_string_equal(ca, cb);
    assert_string_not_equal(ca, cc);
    assert_string_equal(ca, "{\"labels\":{\"a\":\"1\",\"b\":\"2\"},\"script\":\"x\",\"timeout_seconds\":5}");
    assert_null(api_canonical_request("{", 1));

    /* the parsed job carries the same canonical text when a key is given */
    job j;
    api_error e;
    assert_int_equal(api_parse_job_request(&cfg, &checks, b, strlen(b), "key-1", &j, &e), 0);
    assert_string_equal(j.idempotency_key, "key-1");
    assert_string_equal(j.request_json, ca);
    job_free(&j);
    free(ca);
    free(cb);
    free(cc);
}

static void idempotency_key_rules(void **state)
{
    api_error e;
    char key[256];
    assert_int_equal(api_check_idempotency_key("a", &e), 0);
    assert_int_equal(api_check_idempotency_key("order 42 / retry ~!", &e), 0);
    memset(key, 'k', 200);
    key[200] = '\0';
    assert_int_equal(api_check_idempotency_key(key, &e), 0);
    key[200] = 'k';
    key[201] = '\0';
    assert_int_equal(api_check_idempotency_key(key, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "invalid_parameter");
    assert_int_equal(api_check_idempotency_key("", &e), -1);
    assert_int_equal(api_check_idempotency_key("tab\there", &e), -1);
    assert_int_equal(api_check_idempotency_key("\x7f", &e), -1);
    assert_int_equal(api_check_idempotency_key("caf\xc3\xa9", &e), -1);
}

/* --- query parameters ----------------------------------------------------------------- */

static void wait_parameter(void **state)
{
    api_error e;
    double w = -1;
    assert_int_equal(api_parse_wait(NULL, &w, &e), 0);
    assert_true(w == 0);
    assert_int_equal(api_parse_wait("0", &w, &e), 0);
    assert_true(w == 0);
    assert_int_equal(api_parse_wait("0.5", &w, &e), 0);
    assert_true(w == 0.5);
    assert_int_equal(api_parse_wait("300", &w, &e), 0);
    assert_true(w == 300);
    assert_int_equal(api_parse_wait("300.0", &w, &e), 0);
    assert_int_equal(api_parse_wait("5.", &w, &e), 0);
    assert_true(w == 5);
    const char *bad[] = {"300.001", "301", "-1", "-0", "", "abc", "1e2", "inf", "nan", "1.2.3",
                         " 1", "1 ", "+1", "0x10", ".", "1,5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        api_error_clear(&e);
        if (api_parse_wait(bad[i], &w, &e) != -1)
            fail_msg("wait=%s accepted", bad[i]);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.code, "invalid_parameter");
        assert_non_null(strstr(e.message, "wait"));
    }
}

static void limit_parameter(void **state)
{
    api_error e;
    size_t n = 0;
    assert_int_equal(api_parse_limit(NULL, &n, &e), 0);
    assert_int_equal(n, 50);
    assert_int_equal(api_parse_limit("1", &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(api_parse_limit("200", &n, &e), 0);
    assert_int_equal(n, 200);
    const char *bad[] = {"0", "201", "-1", "", "abc", "1.5", "10x", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_limit(bad[i], &n, &e) != -1)
            fail_msg("limit=%s accepted", bad[i]);
        assert_non_null(strstr(e.message, "limit"));
    }
}

static void cursor_parameter(void **state)
{
    api_error e;
    int64_t before = -1;
    assert_int_equal(api_parse_cursor(NULL, &before, &e), 0);
    assert_int_equal(before, 0);
    char buf[32];
    int64_t seqs[] = {1, 42, INT64_MAX};
    for (size_t i = 0; i < 3; i++) {
        api_format_cursor(seqs[i], buf, sizeof buf);
        assert_int_equal(api_parse_cursor(buf, &before, &e), 0);
        assert_true(before == seqs[i]);
    }
    const char *bad[] = {"0", "-1", "", "abc", "9223372036854775808", "1.0", "01", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_cursor(bad[i], &before, &e) != -1)
            fail_msg("cursor=%s accepted", bad[i]);
        assert_non_null(strstr(e.message, "cursor"));
    }
}

static void status_parameter(void **state)
{
    api_error e;
    bool has = true;
    job_status st;
    assert_int_equal(api_parse_status(NULL, &has, &st, &e), 0);
    assert_false(has);
    assert_int_equal(api_parse_status("timed_out", &has, &st, &e), 0);
    assert_true(has);
    assert_int_equal(st, JOB_TIMED_OUT);
    assert_int_equal(api_parse_status("queued", &has, &st, &e), 0);
    assert_int_equal(st, JOB_QUEUED);
    assert_int_equal(api_parse_status("QUEUED", &has, &st, &e), -1);
    assert_int_equal(api_parse_status("done", &has, &st, &e), -1);
    assert_int_equal(api_parse_status("", &has, &st, &e), -1);
    assert_non_null(strstr(e.message, "status"));
}

static void label_parameter(void **state)
{
    api_error e;
    bool has;
    char k[API_MAX_LABEL_KEY + 1], v[API_MAX_LABEL_VALUE + 1];
    assert_int_equal(api_parse_label(NULL, k, v, &has, &e), 0);
    assert_false(has);
    assert_int_equal(api_parse_label("team:sec", k, v, &has, &e), 0);
    assert_true(has);
    assert_string_equal(k, "team");
    assert_string_equal(v, "sec");
    /* split on the first colon: values may contain colons */
    assert_int_equal(api_parse_label("url:http://x:8080/", k, v, &has, &e), 0);
    assert_string_equal(k, "url");
    assert_string_equal(v, "http://x:8080/");
    assert_int_equal(api_parse_label("k:", k, v, &has, &e), 0);
    assert_string_equal(v, "");
    const char *bad[] = {":v", "novalue", "bad key:v", "", "k\xc3\xa9:v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_label(bad[i], k, v, &has, &e) != -1)
            fail_msg("label=%s accepted", bad[i]);
        assert_non_null(strstr(e.message, "label"));
    }
    char long_label[600];
    memset(long_label, 'k', 128);
    snprintf(long_label + 128, sizeof long_label - 128, ":v");
    assert_int_equal(api_parse_label(long_label, k, v, &has, &e), 0);
    memset(long_label, 'k', 129);
    snprintf(long_label + 129, sizeof long_label - 129, ":v");
    assert_int_equal(api_parse_label(long_label, k, v, &has, &e), -1);
    long_label[0] = 'k';
    long_label[1] = ':';
    memset(long_label + 2, 'v', 257);
    long_label[259] = '\0';
    assert_int_equal(api_parse_label(long_label, k, v, &has, &e), -1);
    long_label[258] = '\0';
    assert_int_equal(api_parse_label(long_label, k, v, &has, &e), 0);
    assert_int_equal(strlen(v), 256);
}

static void stream_and_offset_parameters(void **state)
{
    api_error e;
    int s = -1;
    uint64_t off = 7;
    assert_int_equal(api_parse_stream(NULL, &s, &e), 0);
    assert_int_equal(s, 0);
    assert_int_equal(api_parse_stream("stdout", &s, &e), 0);
    assert_int_equal(s, SANDBOX_STDOUT);
    assert_int_equal(api_parse_stream("stderr", &s, &e), 0);
    assert_int_equal(s, SANDBOX_STDERR);
    assert_int_equal(api_parse_stream("both", &s, &e), -1);
    assert_int_equal(api_parse_stream("", &s, &e), -1);
    assert_non_null(strstr(e.message, "stream"));

    assert_int_equal(api_parse_offset(NULL, &off, &e), 0);
    assert_int_equal(off, 0);
    assert_int_equal(api_parse_offset("0", &off, &e), 0);
    assert_int_equal(api_parse_offset("123456", &off, &e), 0);
    assert_int_equal(off, 123456);
    assert_int_equal(api_parse_offset("9223372036854775807", &off, &e), 0);
    const char *bad[] = {"-1", "", "x", "1.5", "9223372036854775808", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_offset(bad[i], &off, &e) != -1)
            fail_msg("offset=%s accepted", bad[i]);
        assert_non_null(strstr(e.message, "offset"));
    }
}

static void name_rules(void **state)
{
    assert_true(api_env_name_valid("_", 1));
    assert_true(api_env_name_valid("PATH", 4));
    assert_true(api_env_name_valid("a1_B2", 5));
    assert_false(api_env_name_valid("", 0));
    assert_false(api_env_name_valid("1", 1));
    assert_true(api_label_key_valid("a/b.c-d_e9", 10));
    assert_false(api_label_key_valid("a b", 3));
    assert_false(api_label_key_valid("", 0));
}

/* --- dependencies ---------------------------------------------------------------- */

static void dependencies_need_a_package_source(void **state)
{
    expect_invalid_msg("{\"script\":\"x\",\"dependencies\":[\"requests\"]}", "dependencies",
                       "--pip-index-url URL, --pip-extra-index-url URL or --pip-find-links DIR");
    job j;
    expect_valid("{\"script\":\"x\",\"dependencies\":[]}", &j); /* none needs no source */
    assert_null(j.deps_json);
    job_free(&j);
    expect_valid("{\"script\":\"x\",\"dependencies\":null}", &j);
    assert_null(j.deps_json);
    job_free(&j);
}

static void dependencies_normalized_or_named(void **state)
{
    snprintf(cfg.pip_find_links, sizeof cfg.pip_find_links, "/srv/wheels");
    job j;
    expect_valid("{\"script\":\"x\",\"dependencies\":[\"Requests == 2.31.0\",\"a_b>=1,<2\"]}", &j);
    assert_string_equal(j.deps_json, "[\"a-b<2,>=1\",\"requests==2.31.0\"]");
    job_free(&j);
    expect_invalid_msg("{\"script\":\"x\",\"dependencies\":\"requests\"}", "dependencies",
                       "must be an array");
    expect_invalid_msg("{\"script\":\"x\",\"dependencies\":[\"a\",1]}", "dependencies[1]",
                       "must be a string (got integer)");
    expect_invalid_msg("{\"script\":\"x\",\"dependencies\":[\"a\",\"-e .\"]}", "dependencies[1]",
                       "dependencies[1] '-e .' options");
    expect_invalid_msg("{\"script\":\"x\",\"dependencies\":[\"x\\u0000y\"]}", "dependencies[0]",
                       "'x?y' contains a control character");
    expect_invalid_msg("{\"script\":\"x\",\"dependencies\":[\"A\",\"a\"]}", "dependencies[1]",
                       "duplicates project 'a' (item 0)");
    /* a long item is shown cut, with its reason */
    char body[600];
    snprintf(body, sizeof body, "{\"script\":\"x\",\"dependencies\":[\"%0300d\"]}", 0);
    expect_invalid_msg(body, "dependencies[0]", "...' is longer than 256 bytes");
    /* an equal set however written is the same request for an idempotent retry */
    api_error e;
    const char *a = "{\"script\":\"x\",\"dependencies\":[\"B\",\"a==1\"]}";
    const char *b = "{\"dependencies\":[\"a == 1\",\"b\"],\"script\":\"x\"}";
    const char *none = "{\"script\":\"x\",\"dependencies\":[]}";
    job ja, jb, jn;
    assert_int_equal(api_parse_job_request(&cfg, &checks, a, strlen(a), "k", &ja, &e), 0);
    assert_int_equal(api_parse_job_request(&cfg, &checks, b, strlen(b), "k", &jb, &e), 0);
    assert_int_equal(api_parse_job_request(&cfg, &checks, none, strlen(none), "k", &jn, &e), 0);
    assert_string_equal(ja.request_json, jb.request_json);
    assert_string_equal(jn.request_json, "{\"script\":\"x\"}");
    job_free(&ja);
    job_free(&jb);
    job_free(&jn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(defaults_are_filled, setup),
        cmocka_unit_test_setup(dependencies_need_a_package_source, setup),
        cmocka_unit_test_setup(dependencies_normalized_or_named, setup),
        cmocka_unit_test_setup(every_field_accepted, setup),
        cmocka_unit_test_setup(malformed_bodies, setup),
        cmocka_unit_test_setup(unknown_fields, setup),
        cmocka_unit_test_setup(script_rules, setup),
        cmocka_unit_test_setup(inputs_rules, setup),
        cmocka_unit_test_setup(backend_rules, setup),
        cmocka_unit_test_setup(timeout_rules, setup),
        cmocka_unit_test_setup(allow_network_rules, setup),
        cmocka_unit_test_setup(limits_rules, setup),
        cmocka_unit_test_setup(env_rules, setup),
        cmocka_unit_test_setup(label_rules, setup),
        cmocka_unit_test_setup(nul_in_field_names, setup),
        cmocka_unit_test_setup(canonical_form_ignores_key_order_and_spacing, setup),
        cmocka_unit_test_setup(idempotency_key_rules, setup),
        cmocka_unit_test_setup(wait_parameter, setup),
        cmocka_unit_test_setup(limit_parameter, setup),
        cmocka_unit_test_setup(cursor_parameter, setup),
        cmocka_unit_test_setup(status_parameter, setup),
        cmocka_unit_test_setup(label_parameter, setup),
        cmocka_unit_test_setup(stream_and_offset_parameters, setup),
        cmocka_unit_test_setup(name_rules, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
