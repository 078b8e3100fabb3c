/* Request validation: turns an untrusted POST /v1/jobs body into a job with every limit
 * effective, and query parameters into typed values. Every rejection names the field or
 * parameter and the rule, so a client can fix its request without reading our code. */
#include "api/validate.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/backends.h"
#include "src/requirements.h"

/* --- backends -------------------------------------------------------------------- */

/* The registry's backends (src/backends.c reads sandbox/sandbox.c), the one list. */
const api_backend_checks *api_backend_checks_default(void)
{
    static api_backend_checks checks = {
        .known = backends_known,
        .available = backends_available,
        .note = backends_note,
        .state_json = backends_state_json,
        .network_json = backends_network_json,
    };
    checks.names = backends_names();
    return &checks;
}

/* --- small helpers ---------------------------------------------------------------- */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

static bool has_nul(const json_t *str)
{
    return memchr(json_string_value(str), '\0', json_string_length(str)) != NULL;
}

static void invalid(api_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 422 invalid_field naming the field; an empty key is named as JSON spells it ("\"\""),
 * so the error always has a field. */
static void invalid(api_error *err, const char *field, const char *fmt, ...)
{
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_error_set(err, 422, "invalid_field", field && field[0] ? field : "\"\"", "%s", msg);
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool api_env_name_valid(const char *name, size_t len)
{
    if (len == 0 || !is_name_start(name[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_name_start(name[i]) && !is_digit(name[i]))
            return false;
    return true;
}

bool api_label_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > API_MAX_LABEL_KEY)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!is_name_start(c) && !is_digit(c) && c != '.' && c != '-' && c != '/')
            return false;
    }
    return true;
}

/* --- NUL in object keys -------------------------------------------------------------
 * jansson refuses "\u0000" inside an object key while parsing, so the parsed document
 * cannot tell us where it was. Walk the text up to the error position to name the field
 * (the contract wants a 422 naming it, not a 400). Keys are shown as written. */

typedef struct key_span {
    size_t start, end; /* raw text between the quotes */
    int depth;
} key_span;

static void locate_nul_key(const char *s, size_t len, size_t pos, char *field, size_t flen)
{
    enum { MAXD = 64 };
    bool is_obj[MAXD] = {false};
    bool expect_key[MAXD] = {false};
    int depth = 0;
    key_span top = {0, 0, 0}, last = {0, 0, 0};
    if (pos > len)
        pos = len;
    for (size_t i = 0; i < pos; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = i + 1;
            size_t j = start;
            while (j < len && s[j] != '"')
                j += s[j] == '\\' ? 2 : 1;
            if (j > len)
                j = len;
            if (depth > 0 && depth <= MAXD && is_obj[depth - 1] && expect_key[depth - 1]) {
                last = (key_span){start, j, depth};
                if (depth == 1)
                    top = last;
            }
            i = j;
        } else if (c == '{' || c == '[') {
            if (depth < MAXD) {
                is_obj[depth] = c == '{';
                expect_key[depth] = c == '{';
            }
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
        } else if (c == ':' && depth > 0 && depth <= MAXD) {
            expect_key[depth - 1] = false;
        } else if (c == ',' && depth > 0 && depth <= MAXD) {
            expect_key[depth - 1] = is_obj[depth - 1];
        }
    }
    int lastlen = (int)(last.end - last.start), toplen = (int)(top.end - top.start);
    if (last.depth <= 1) {
        snprintf(field, flen, "%.*s", lastlen, s + last.start);
        return;
    }
    if (toplen == 6 && memcmp(s + top.start, "limits", 6) == 0 && last.depth == 2)
        snprintf(field, flen, "limits.%.*s", lastlen, s + last.start);
    else
        snprintf(field, flen, "%.*s", toplen, s + top.start);
}

/* --- the body ---------------------------------------------------------------------- */

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

/* Each kind of field of src/job_fields.def: validated from the body's value v (NULL when
 * the request leaves it out) into its member. Messages name the field as the table does. */

static int parse_text(const char *name, const json_t *v, char **dst, api_error *err)
{
    if (!v) {
        invalid(err, name, "%s is required", name);
        return -1;
    }
    if (!json_is_string(v)) {
        invalid(err, name, "%s must be a string (got %s)", name, json_type_name(v));
        return -1;
    }
    if (json_string_length(v) == 0) {
        invalid(err, name, "%s must not be empty", name);
        return -1;
    }
    if (has_nul(v)) {
        invalid(err, name, "%s must not contain NUL characters", name);
        return -1;
    }
    *dst = strdup(json_string_value(v));
    return *dst ? 0 : -1;
}

static int parse_object(const char *name, const json_t *v, char **dst, api_error *err)
{
    if (v && !json_is_object(v) && !json_is_null(v)) {
        invalid(err, name, "%s must be an object or null (got %s)", name, json_type_name(v));
        return -1;
    }
    *dst = v && json_is_object(v) ? json_dumps(v, JSON_COMPACT) : strdup("{}");
    return *dst ? 0 : -1;
}

/* "unknown backend 'x' (known: direct, ephemeral, pool)" */
static void unknown_backend(const api_backend_checks *checks, const char *name, api_error *err)
{
    char known[128] = "";
    for (const char *const *n = checks->names; *n; n++) {
        if (n != checks->names)
            strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, *n, sizeof known - strlen(known) - 1);
    }
    char shown[64];
    snprintf(shown, sizeof shown, "%s", name);
    invalid(err, "backend", "unknown backend '%s' (known: %s)", shown, known);
}

static int parse_backend(const config *cfg, const api_backend_checks *checks, const char *field,
                         const json_t *v, char dst[JOB_BACKEND_LEN], api_error *err)
{
    const char *name = cfg->backend;
    if (v) {
        if (!json_is_string(v)) {
            invalid(err, field, "%s must be a string (got %s)", field, json_type_name(v));
            return -1;
        }
        if (has_nul(v)) {
            invalid(err, field, "%s must not contain NUL characters", field);
            return -1;
        }
        name = json_string_value(v);
    }
    bool is_backend = checks->known ? checks->known(name) : in_list(name, checks->names);
    if (!is_backend || strlen(name) >= JOB_BACKEND_LEN) {
        unknown_backend(checks, name, err);
        return -1;
    }
    if (!config_backend_enabled(cfg, name)) {
        invalid(err, field, "backend '%s' is not enabled on this instance (enabled: %s; the "
                "operator chooses them with --backends)", name, cfg->backends);
        return -1;
    }
    const char *why = NULL;
    if (!checks->available(name, &why)) {
        invalid(err, field, "backend '%s' is not available: %s", name,
                why && why[0] ? why : "unknown reason");
        return -1;
    }
    snprintf(dst, JOB_BACKEND_LEN, "%s", name);
    return 0;
}

/* A limit (sandbox/limits.def) that requests set at the top level, in seconds. Left out,
 * it keeps the default api_parse_job_request filled. */
static int parse_timeout(const config *cfg, const char *name, const json_t *v, double *dst,
                         api_error *err)
{
    if (!v)
        return 0;
    if (!json_is_number(v)) {
        invalid(err, name, "%s must be a number (got %s)", name, json_type_name(v));
        return -1;
    }
    const sandbox_limit_desc *d = sandbox_limit_find(name);
    double t = json_number_value(v);
    double max = d ? sandbox_limit_seconds(&cfg->max_limits, d) : 0;
    if (!isfinite(t) || t <= 0 || t > max) {
        invalid(err, name, "%s must be greater than 0 and at most %g", name, max);
        return -1;
    }
    *dst = t;
    return 0;
}

static int parse_bool(const char *name, const json_t *v, bool *dst, api_error *err)
{
    *dst = false;
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        invalid(err, name, "%s must be a boolean (got %s)", name, json_type_name(v));
        return -1;
    }
    *dst = json_is_true(v);
    return 0;
}

/* One whole-number limit of the request's limits object, checked against its row of
 * sandbox/limits.def and the instance's maximum. */
static int parse_limit(const config *cfg, const sandbox_limit_desc *d, const char *field,
                       const json_t *v, sandbox_limits *dst, api_error *err)
{
    if (!json_is_integer(v)) {
        invalid(err, field, "%s must be an integer (got %s)", field, json_type_name(v));
        return -1;
    }
    json_int_t n = json_integer_value(v);
    uint64_t max = sandbox_limit_u64(&cfg->max_limits, d);
    if (strcmp(d->name, "memory_mb") == 0 && cfg->memory_budget_mb && n > 0 &&
        (uint64_t)n > cfg->memory_budget_mb) {
        /* Not just "too big": no amount of waiting would let it run here. */
        invalid(err, field,
                "%s must be an integer from %" PRIu64 " to %" PRIu64 ": %lld MB is above this instance's "
                "memory budget of %" PRIu64 " MB (--memory-budget-mb), what all running jobs together may use",
                field, d->request_min, max, (long long)n, cfg->memory_budget_mb);
        return -1;
    }
    if (n <= 0 || (uint64_t)n < d->request_min || (uint64_t)n > max) {
        invalid(err, field, "%s must be an integer from %" PRIu64 " to %" PRIu64, field, d->request_min, max);
        return -1;
    }
    sandbox_limit_set_u64(dst, d, (uint64_t)n);
    return 0;
}

/* The limits object, over the defaults api_parse_job_request filled. */
static int parse_limits(const config *cfg, const char *name, const json_t *obj,
                        sandbox_limits *dst, api_error *err)
{
    if (!obj)
        return 0;
    if (!json_is_object(obj)) {
        invalid(err, name, "%s must be an object (got %s)", name, json_type_name(obj));
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char field[sizeof err->field];
        snprintf(field, sizeof field, "%s.%s", name, key);
        const sandbox_limit_desc *d = sandbox_limit_find(key);
        /* timeout_seconds is a limit too, but requests give it at the top level. */
        if (!d || d->type != SANDBOX_LIMIT_U64) {
            invalid(err, field, "unknown field '%s'", field);
            return -1;
        }
        if (parse_limit(cfg, d, field, v, dst, err) < 0)
            return -1;
    }
    return 0;
}

/* The rules of a string map's keys and values (env_vars, labels). */
typedef struct string_map_rules {
    size_t max_entries;
    bool (*key_ok)(const char *key, size_t len);
    /* In Tracecat's words, which its callers match on ("Invalid environment variable
     * key: 'X'. Keys must match pattern ..."): "label key", "[A-Za-z0-9_.-/]{1,128}" */
    const char *key_what, *key_rule;
    int key_shown;                   /* at most this many bytes of a bad key are quoted */
    size_t max_value;                /* bytes; 0 = unbounded */
} string_map_rules;

static const string_map_rules env_rules = {API_MAX_ENV_VARS, api_env_name_valid, "environment variable key",
                                           "[A-Za-z_][A-Za-z0-9_]*", INT_MAX, 0};
static const string_map_rules label_rules = {API_MAX_LABELS, api_label_key_valid, "label key",
                                             "[A-Za-z0-9_.-/]{1,128}", API_MAX_LABEL_KEY + 7,
                                             API_MAX_LABEL_VALUE};

/* An object whose values are strings without NUL: the checks env_vars and labels share. */
static int check_string_map(const char *name, const json_t *obj, const string_map_rules *r,
                            api_error *err)
{
    if (!json_is_object(obj)) {
        invalid(err, name, "%s must be an object of strings (got %s)", name, json_type_name(obj));
        return -1;
    }
    if (json_object_size(obj) > r->max_entries) {
        invalid(err, name, "%s may hold at most %zu entries", name, r->max_entries);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char field[sizeof err->field];
        snprintf(field, sizeof field, "%s.%s", name, key);
        if (!r->key_ok(key, strlen(key))) {
            invalid(err, name, "Invalid %s: '%.*s'. Keys must match pattern %s (%s)", r->key_what, r->key_shown, key,
                    r->key_rule, name);
            return -1;
        }
        if (!json_is_string(v)) {
            invalid(err, field, "%s must be a string (got %s)", field, json_type_name(v));
            return -1;
        }
        if (has_nul(v)) {
            invalid(err, field, "%s must not contain NUL characters", field);
            return -1;
        }
        if (r->max_value && json_string_length(v) > r->max_value) {
            invalid(err, field, "%s must be at most %zu bytes", field, r->max_value);
            return -1;
        }
    }
    return 0;
}

static int parse_string_map(const char *name, const json_t *obj, const string_map_rules *r,
                            char **dst, api_error *err)
{
    if (!obj) {
        *dst = strdup("{}");
        return *dst ? 0 : -1;
    }
    if (check_string_map(name, obj, r, err) < 0)
        return -1;
    *dst = json_dumps(obj, JSON_COMPACT);
    return *dst ? 0 : -1;
}

/* An item shown in a message: its first bytes, so a 256-byte string does not crowd out
 * the reason (the renderer escapes what JSON must). */
#define SHOWN_ITEM 64

/* dependencies: an array of plain requirement strings (src/requirements.c), normalized;
 * [] and null mean none (*dst stays NULL). Only with a package source: nothing is ever
 * fetched from a place the operator did not name. */
static int parse_deps(const config *cfg, const char *name, const json_t *v, char **dst,
                      api_error *err)
{
    *dst = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        invalid(err, name, "%s must be an array of requirement strings or null (got %s)", name,
                json_type_name(v));
        return -1;
    }
    size_t n = json_array_size(v);
    if (n > REQ_MAX_ITEMS) {
        invalid(err, name, "%s may hold at most %d items (got %zu)", name, REQ_MAX_ITEMS, n);
        return -1;
    }
    const char *items[REQ_MAX_ITEMS];
    size_t lens[REQ_MAX_ITEMS];
    char field[sizeof err->field];
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(v, i);
        if (!json_is_string(item)) {
            snprintf(field, sizeof field, "%s[%zu]", name, i);
            invalid(err, field, "%s must be a string (got %s)", field, json_type_name(item));
            return -1;
        }
        items[i] = json_string_value(item);
        lens[i] = json_string_length(item);
    }
    char why[160];
    size_t bad;
    if (requirements_normalize(items, lens, n, dst, &bad, why, sizeof why) < 0) {
        if (bad >= n) {
            api_error_set(err, 500, "internal", NULL, "%s: %s", name, why);
            return -1;
        }
        snprintf(field, sizeof field, "%s[%zu]", name, bad);
        char shown[SHOWN_ITEM + 1];
        size_t k = 0;
        for (; k < lens[bad] && k < SHOWN_ITEM; k++) /* NUL would end the message */
            shown[k] = items[bad][k] ? items[bad][k] : '?';
        shown[k] = '\0';
        invalid(err, field, "%s '%s%s' %s", field, shown, lens[bad] > SHOWN_ITEM ? "..." : "", why);
        return -1;
    }
    if (*dst && !config_has_package_source(cfg)) {
        free(*dst);
        *dst = NULL;
        invalid(err, name,
                "%s needs a package source, and this instance has none: the operator configures "
                "one with --pip-index-url URL, --pip-extra-index-url URL or --pip-find-links DIR "
                "(EXECUTORD_PIP_INDEX_URL, EXECUTORD_PIP_EXTRA_INDEX_URL, EXECUTORD_PIP_FIND_LINKS)",
                name);
        return -1;
    }
    return 0;
}

static int parse_field(const config *cfg, const api_backend_checks *checks, const json_t *body,
                       const job_field_desc *f, job *out, api_error *err)
{
    const json_t *v = json_object_get(body, f->name);
    void *slot = job_field_slot(out, f);
    switch (f->kind) {
    case JOB_FIELD_TEXT:
        return parse_text(f->name, v, slot, err);
    case JOB_FIELD_OBJECT:
        return parse_object(f->name, v, slot, err);
    case JOB_FIELD_BACKEND:
        return parse_backend(cfg, checks, f->name, v, slot, err);
    case JOB_FIELD_TIMEOUT:
        return parse_timeout(cfg, f->name, v, slot, err);
    case JOB_FIELD_BOOL:
        return parse_bool(f->name, v, slot, err);
    case JOB_FIELD_LIMITS:
        return parse_limits(cfg, f->name, v, slot, err);
    case JOB_FIELD_ENV:
        return parse_string_map(f->name, v, &env_rules, slot, err);
    case JOB_FIELD_LABELS:
        return parse_string_map(f->name, v, &label_rules, slot, err);
    case JOB_FIELD_DEPS:
        return parse_deps(cfg, f->name, v, slot, err);
    }
    return -1;
}

static int check_unknown_fields(const json_t *body, api_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (!job_field_find(key)) {
            invalid(err, key, "unknown field '%s'", key);
            return -1;
        }
    }
    return 0;
}

static json_t *load_body(const char *body, size_t len, api_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                             &jerr);
    if (!doc) {
        if (json_error_code(&jerr) == json_error_null_byte_in_key) {
            char field[sizeof err->field];
            locate_nul_key(body, len, (size_t)(jerr.position > 0 ? jerr.position : 0), field,
                           sizeof field);
            invalid(err, field, "field names must not contain NUL characters");
        } else {
            api_error_set(err, 400, "malformed_json", NULL,
                          "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                          jerr.line, jerr.column);
        }
        return NULL;
    }
    if (!json_is_object(doc)) {
        api_error_set(err, 400, "invalid_body", NULL, "request body must be a JSON object (got %s)",
                      json_type_name(doc));
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int api_parse_job_request(const config *cfg, const api_backend_checks *checks, const char *body,
                          size_t len, const char *idempotency_key, job *out, api_error *err)
{
    job_init(out);
    api_error_clear(err);
    json_t *doc = load_body(body ? body : "", body ? len : 0, err);
    if (!doc)
        return -1;
    out->limits = cfg->default_limits; /* every limit the request leaves out */
    int rc = -1;
    if (check_unknown_fields(doc, err) < 0)
        goto done;
    for (size_t i = 0; i < job_field_count; i++)
        if (parse_field(cfg, checks, doc, &job_field_descs[i], out, err) < 0)
            goto done;
    if (idempotency_key) {
        /* Retries compare the dependencies as normalized: the same set, however written,
         * is the same request; [] and null are none, like leaving the field out. */
        json_t *deps = out->deps_json ? json_loads(out->deps_json, 0, NULL) : NULL;
        if (out->deps_json && (!deps || json_object_set_new(doc, "dependencies", deps) != 0))
            goto done;
        if (!out->deps_json)
            json_object_del(doc, "dependencies");
        out->idempotency_key = strdup(idempotency_key);
        out->request_json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        if (!out->idempotency_key || !out->request_json)
            goto done;
    }
    rc = 0;
done:
    json_decref(doc);
    if (rc < 0) {
        if (!err->status)
            api_error_set(err, 500, "internal", NULL, "out of memory while parsing the request");
        job_free(out);
    }
    return rc;
}

char *api_canonical_request(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                             NULL);
    if (!doc)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(doc);
    return text;
}

int api_check_idempotency_key(const char *key, api_error *err)
{
    size_t n = key ? strlen(key) : 0;
    bool ok = n >= 1 && n <= API_MAX_IDEMPOTENCY_KEY;
    for (size_t i = 0; ok && i < n; i++)
        ok = key[i] >= 0x20 && key[i] <= 0x7e;
    if (!ok) {
        api_error_set(err, 400, "invalid_parameter", NULL,
                      "Idempotency-Key must be 1 to %d printable ASCII characters",
                      API_MAX_IDEMPOTENCY_KEY);
        return -1;
    }
    return 0;
}

/* --- query parameters ------------------------------------------------------------- */

static int bad_param(api_error *err, const char *name, const char *rule)
{
    api_error_set(err, 400, "invalid_parameter", NULL, "invalid query parameter '%s': %s", name,
                  rule);
    return -1;
}

/* Plain decimal digits only (no sign, no spaces, no hex), at most max. */
static bool parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p))
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int api_parse_wait(const char *value, double *seconds, api_error *err)
{
    *seconds = 0;
    if (!value)
        return 0;
    /* digits with an optional fraction: no exponents, signs, "inf" or "nan" */
    const char *rule = "must be a number of seconds from 0 to 300";
    size_t n = strlen(value), digits = 0, dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_digit(value[i]))
            digits++;
        else if (value[i] == '.')
            dots++;
        else
            return bad_param(err, "wait", rule);
    }
    if (digits == 0 || dots > 1 || n > 32)
        return bad_param(err, "wait", rule);
    errno = 0;
    double v = strtod(value, NULL);
    if (errno || !isfinite(v) || v < 0 || v > API_MAX_WAIT_SECONDS)
        return bad_param(err, "wait", rule);
    *seconds = v;
    return 0;
}

int api_parse_limit(const char *value, size_t *limit, api_error *err)
{
    *limit = API_DEFAULT_LIST_LIMIT;
    if (!value)
        return 0;
    uint64_t v;
    if (!parse_decimal(value, UINT32_MAX, &v) || v < 1 || v > API_MAX_LIST_LIMIT)
        return bad_param(err, "limit", "must be an integer from 1 to 200");
    *limit = (size_t)v;
    return 0;
}

int api_parse_cursor(const char *value, int64_t *before_seq, api_error *err)
{
    *before_seq = 0;
    if (!value)
        return 0;
    uint64_t v;
    if (value[0] == '0' || !parse_decimal(value, INT64_MAX, &v))
        return bad_param(err, "cursor", "not a cursor returned by this API (next_cursor)");
    *before_seq = (int64_t)v;
    return 0;
}

void api_format_cursor(int64_t before_seq, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64, before_seq);
}

int api_parse_status(const char *value, bool *has_status, job_status *status, api_error *err)
{
    *has_status = false;
    if (!value)
        return 0;
    if (job_status_parse(value, status) < 0)
        return bad_param(err, "status",
                         "must be one of queued, running, succeeded, failed, timed_out, cancelled");
    *has_status = true;
    return 0;
}

int api_parse_label(const char *value, char key[API_MAX_LABEL_KEY + 1],
                    char val[API_MAX_LABEL_VALUE + 1], bool *has_label, api_error *err)
{
    *has_label = false;
    key[0] = val[0] = '\0';
    if (!value)
        return 0;
    const char *colon = strchr(value, ':');
    if (!colon)
        return bad_param(err, "label", "must be key:value");
    size_t klen = (size_t)(colon - value), vlen = strlen(colon + 1);
    if (!api_label_key_valid(value, klen))
        return bad_param(err, "label", "the key must match [A-Za-z0-9_.-/]{1,128}");
    if (vlen > API_MAX_LABEL_VALUE)
        return bad_param(err, "label", "the value must be at most 256 bytes");
    memcpy(key, value, klen);
    key[klen] = '\0';
    memcpy(val, colon + 1, vlen + 1);
    *has_label = true;
    return 0;
}

int api_parse_stream(const char *value, int *stream, api_error *err)
{
    *stream = 0;
    if (!value)
        return 0;
    if (strcmp(value, "stdout") == 0)
        *stream = SANDBOX_STDOUT;
    else if (strcmp(value, "stderr") == 0)
        *stream = SANDBOX_STDERR;
    else
        return bad_param(err, "stream", "must be stdout or stderr");
    return 0;
}

int api_parse_offset(const char *value, uint64_t *offset, api_error *err)
{
    *offset = 0;
    if (!value)
        return 0;
    if (!parse_decimal(value, INT64_MAX, offset))
        return bad_param(err, "offset", "must be a non-negative integer");
    return 0;
}

int api_parse_bytes(const char *name, const char *value, uint64_t dflt, uint64_t min,
                    uint64_t max, uint64_t *out, api_error *err)
{
    *out = dflt;
    if (!value)
        return 0;
    uint64_t v;
    if (!parse_decimal(value, max, &v) || v < min) {
        char rule[96];
        snprintf(rule, sizeof rule, "must be an integer from %" PRIu64 " to %" PRIu64, min, max);
        return bad_param(err, name, rule);
    }
    *out = v;
    return 0;
}
