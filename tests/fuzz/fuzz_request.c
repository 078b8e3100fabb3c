/* libFuzzer harness: the POST /v1/jobs body through api_parse_job_request (twice: without
 * and with an Idempotency-Key, with two kinds of backend checks), api_canonical_request,
 * api_check_idempotency_key, and the rendering of what came out (the job or the error).
 * Asserts the contract's invariants rather than only "no crash". */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/render.h"
#include "api/validate.h"
#include "src/utf8.h"
#include "tests/fuzz/fuzz_check.h"

static const char *const names[] = {"direct", "ephemeral", "pool", NULL};

static bool fake_available(const char *name, const char **why)
{
    if (strcmp(name, "direct") == 0)
        return true;
    *why = "unprivileged user namespaces are disabled";
    return false;
}

static bool fake_known(const char *name)
{
    return strcmp(name, "gvisor") == 0 || strcmp(name, "direct") == 0 ||
           strcmp(name, "pool") == 0;
}

static const api_backend_checks checks_plain = {.names = names, .available = fake_available};
static const api_backend_checks checks_known = {
    .names = names, .known = fake_known, .available = fake_available};

static void fill_config(config *cfg, bool default_pool)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->backend, sizeof cfg->backend, "%s", default_pool ? "pool" : "direct");
    snprintf(cfg->backends, sizeof cfg->backends, "direct,ephemeral,pool");
    cfg->max_body_bytes = 1 << 20;
    cfg->max_queued = 100;
    cfg->default_limits = (sandbox_limits){30, 512, 60, 64, 64, 256, 1048576};
    cfg->max_limits = (sandbox_limits){3600, 65536, 3600, 4096, 4096, 65536, 67108864};
}

/* Serialises v (stolen), asserts the text is valid UTF-8 JSON that parses back. */
static void check_rendered(json_t *v)
{
    CHECK(v != NULL);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    CHECK(text != NULL);
    CHECK(utf8_valid(text, strlen(text)));
    json_error_t jerr;
    json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    CHECK(back != NULL);
    CHECK(json_equal(back, v));
    json_decref(back);
    free(text);
    json_decref(v);
}

static json_t *parse_object(const char *text)
{
    CHECK(text != NULL);
    json_t *v = json_loads(text, JSON_ALLOW_NUL, NULL);
    CHECK(json_is_object(v));
    return v;
}

static void check_rejected(const job *j, const api_error *e)
{
    CHECK(e->status == 400 || e->status == 422);
    CHECK(e->code != NULL);
    if (e->status == 422) {
        CHECK(strcmp(e->code, "invalid_field") == 0);
        CHECK(e->field[0] != '\0'); /* a 422 always names the field */
    } else {
        CHECK(strcmp(e->code, "malformed_json") == 0 || strcmp(e->code, "invalid_body") == 0);
        CHECK(e->field[0] == '\0');
    }
    CHECK(e->message[0] != '\0');
    /* nothing leaks out of a rejected request */
    CHECK(!j->script && !j->inputs_json && !j->env_json && !j->labels_json &&
          !j->idempotency_key && !j->request_json);
    check_rendered(api_render_error(e));
}

static void check_accepted(const config *cfg, const job *j, const char *key)
{
    CHECK(j->script && j->script[0]);
    CHECK(strcmp(j->backend, "direct") == 0); /* the only available one */
    const sandbox_limits *l = &j->limits, *max = &cfg->max_limits;
    CHECK(l->timeout_seconds > 0 && l->timeout_seconds <= max->timeout_seconds);
    CHECK(l->memory_mb >= 1 && l->memory_mb <= max->memory_mb);
    CHECK(l->cpu_seconds >= 1 && l->cpu_seconds <= max->cpu_seconds);
    CHECK(l->max_processes >= 1 && l->max_processes <= max->max_processes);
    CHECK(l->max_file_size_mb >= 1 && l->max_file_size_mb <= max->max_file_size_mb);
    CHECK(l->max_open_files >= 1 && l->max_open_files <= max->max_open_files);
    CHECK(l->max_output_bytes >= 1 && l->max_output_bytes <= max->max_output_bytes);

    json_t *inputs = parse_object(j->inputs_json);
    json_decref(inputs);

    json_t *env = parse_object(j->env_json);
    CHECK(json_object_size(env) <= API_MAX_ENV_VARS);
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        CHECK(api_env_name_valid(k, strlen(k)));
        CHECK(json_is_string(v));
        CHECK(strlen(json_string_value(v)) == json_string_length(v)); /* no NUL */
    }
    json_decref(env);

    json_t *labels = parse_object(j->labels_json);
    CHECK(json_object_size(labels) <= API_MAX_LABELS);
    json_object_foreach(labels, k, v) {
        CHECK(api_label_key_valid(k, strlen(k)));
        CHECK(json_is_string(v));
        CHECK(json_string_length(v) <= API_MAX_LABEL_VALUE);
        CHECK(strlen(json_string_value(v)) == json_string_length(v));
    }
    json_decref(labels);

    if (key) {
        CHECK(j->idempotency_key && strcmp(j->idempotency_key, key) == 0);
        CHECK(j->request_json != NULL);
    } else {
        CHECK(!j->idempotency_key && !j->request_json);
    }
    check_rendered(api_render_job(j, true));
    check_rendered(api_render_job(j, false));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: the parser is given (body, len) and must not read past len. */
    char *body = malloc(size ? size : 1);
    CHECK(body != NULL);
    if (size)
        memcpy(body, data, size);

    config cfg;
    fill_config(&cfg, size % 7 == 3);
    static const char key[] = "fuzz-key-1";

    job a, b;
    api_error ea, eb;
    int ra = api_parse_job_request(&cfg, &checks_plain, body, size, NULL, &a, &ea);
    int rb = api_parse_job_request(&cfg, &checks_known, body, size, key, &b, &eb);
    CHECK(ra == 0 || ra == -1);
    CHECK(ra == rb);
    if (ra == 0) {
        CHECK(ea.status == 0 && eb.status == 0);
        check_accepted(&cfg, &a, NULL);
        check_accepted(&cfg, &b, key);
        /* the stored canonical form is what api_canonical_request computes */
        char *canon = api_canonical_request(body, size);
        CHECK(canon != NULL);
        CHECK(strcmp(canon, b.request_json) == 0);
        free(canon);
        CHECK(strcmp(a.script, b.script) == 0);
        CHECK(strcmp(a.inputs_json, b.inputs_json) == 0);
        CHECK(memcmp(&a.limits, &b.limits, sizeof a.limits) == 0);
    } else {
        check_rejected(&a, &ea);
        check_rejected(&b, &eb);
        /* the two checks differ only in why a backend is refused, never in which field */
        CHECK(ea.status == eb.status);
        CHECK(strcmp(ea.code, eb.code) == 0);
        CHECK(strcmp(ea.field, eb.field) == 0);
        free(api_canonical_request(body, size));
    }
    job_free(&a);
    job_free(&b);

    /* The same bytes as an Idempotency-Key header value (cut at the first NUL, as a
     * header would be). */
    size_t klen = strnlen(body, size > 256 ? 256 : size);
    char hdr[257];
    memcpy(hdr, body, klen);
    hdr[klen] = '\0';
    bool printable = klen >= 1 && klen <= API_MAX_IDEMPOTENCY_KEY;
    for (size_t i = 0; printable && i < klen; i++)
        printable = (unsigned char)hdr[i] >= 0x20 && (unsigned char)hdr[i] <= 0x7e;
    api_error ek;
    api_error_clear(&ek);
    int rk = api_check_idempotency_key(hdr, &ek);
    CHECK((rk == 0) == printable);
    if (rk < 0)
        CHECK(ek.status == 400 && strcmp(ek.code, "invalid_parameter") == 0);

    free(body);
    return 0;
}
