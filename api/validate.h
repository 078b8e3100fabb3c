/* Request parsing and validation: the POST /v1/jobs body into a job (effective limits,
 * defaults filled, canonical form for idempotency) and every query parameter the API
 * takes. Pure functions of their inputs, so they are unit-tested without HTTP. */
#ifndef EXECUTORD_API_VALIDATE_H
#define EXECUTORD_API_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/error.h"
#include "src/config.h"
#include "src/job.h"

#define API_MAX_ENV_VARS 128
#define API_MAX_LABELS 64
#define API_MAX_LABEL_KEY 128
#define API_MAX_LABEL_VALUE 256
#define API_MAX_WAIT_SECONDS 300.0
#define API_DEFAULT_LIST_LIMIT 50
#define API_MAX_LIST_LIMIT 200
#define API_MAX_IDEMPOTENCY_KEY 200

/* How validation learns which backends exist and which can be used; the service passes
 * api_backend_checks_default() (src/backends.c), tests pass their own. */
typedef struct api_backend_checks {
    /* The names the wire contract knows, NULL-terminated (listed by "unknown backend"
     * messages and GET /v1/backends). */
    const char *const *names;
    /* Whether a name is a backend at all; NULL = membership in names. */
    bool (*known)(const char *name);
    /* True when usable; otherwise *why says why not. */
    bool (*available)(const char *name, const char **why);
    /* For a usable backend, a caveat worth showing operators, or NULL. May be NULL. */
    const char *(*note)(const char *name);
    /* The backend's own state as malloc'd JSON object text, or NULL. May be NULL. */
    char *(*state_json)(const char *name);
    /* How network-enabled jobs reach the outside (stack, egress policy) as malloc'd JSON
     * object text, or NULL. May be NULL. */
    char *(*network_json)(void);
} api_backend_checks;

const api_backend_checks *api_backend_checks_default(void);

/* Parses and validates a POST /v1/jobs body. On success returns 0 and fills the request
 * fields of *out (backend, script, inputs_json, env_json, labels_json, allow_network,
 * limits; request_json = canonical form when idempotency_key is not NULL, which is copied
 * too). id, created_at_ms and status are left to the caller. On failure returns -1 with
 * *err set (400 malformed_json / invalid_body, 422 invalid_field) and *out untouched
 * apart from being job_init'ed. */
int api_parse_job_request(const config *cfg, const api_backend_checks *checks, const char *body,
                          size_t len, const char *idempotency_key, job *out, api_error *err);

/* The canonical text of a request body used to compare idempotent retries
 * (compact, keys sorted). malloc'd, NULL when body is not JSON. */
char *api_canonical_request(const char *body, size_t len);

/* Idempotency-Key header: 1..200 printable ASCII characters. 400 invalid_parameter else. */
int api_check_idempotency_key(const char *key, api_error *err);

/* Query parameters. value NULL means "not given" (the default is used); every parser
 * returns 0, or -1 with a 400 invalid_parameter error naming the parameter. */
int api_parse_wait(const char *value, double *seconds, api_error *err);
int api_parse_limit(const char *value, size_t *limit, api_error *err);
int api_parse_cursor(const char *value, int64_t *before_seq, api_error *err);
/* Writes the cursor that api_parse_cursor turns back into before_seq. buf >= 24 bytes. */
void api_format_cursor(int64_t before_seq, char *buf, size_t len);
int api_parse_status(const char *value, bool *has_status, job_status *status, api_error *err);
/* "key:value", split on the first colon; the key follows the label key rule. */
int api_parse_label(const char *value, char key[API_MAX_LABEL_KEY + 1],
                    char val[API_MAX_LABEL_VALUE + 1], bool *has_label, api_error *err);
/* "stdout" -> SANDBOX_STDOUT, "stderr" -> SANDBOX_STDERR, not given -> 0. */
int api_parse_stream(const char *value, int *stream, api_error *err);
int api_parse_offset(const char *value, uint64_t *offset, api_error *err);
/* A byte count or offset called name, from min to max; dflt when not given. */
int api_parse_bytes(const char *name, const char *value, uint64_t dflt, uint64_t min,
                    uint64_t max, uint64_t *out, api_error *err);

bool api_env_name_valid(const char *name, size_t len);
bool api_label_key_valid(const char *key, size_t len);

#endif
