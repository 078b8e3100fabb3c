/* The job model: status names, ids, the request fields' rows as data (and the ones the
 * runner reads as one JSON object), and how a sandbox outcome becomes a job's final
 * status and outcome fields (with default error texts when a backend left them out). */
#include "src/job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uuid/uuid.h>

static const char *const status_names[] = {
    [JOB_QUEUED] = "queued",       [JOB_RUNNING] = "running",
    [JOB_SUCCEEDED] = "succeeded", [JOB_FAILED] = "failed",
    [JOB_TIMED_OUT] = "timed_out", [JOB_CANCELLED] = "cancelled",
};
#define STATUS_COUNT (sizeof status_names / sizeof status_names[0])

const char *job_status_name(job_status s)
{
    if ((unsigned)s >= STATUS_COUNT)
        return "unknown";
    return status_names[s];
}

int job_status_parse(const char *name, job_status *out)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < STATUS_COUNT; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (job_status)i;
            return 0;
        }
    }
    return -1;
}

bool job_status_is_final(job_status s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_TIMED_OUT || s == JOB_CANCELLED;
}

#define JOB_KIND_TEXT JOB_FIELD_TEXT
#define JOB_KIND_OBJECT JOB_FIELD_OBJECT
#define JOB_KIND_BACKEND JOB_FIELD_BACKEND
#define JOB_KIND_TIMEOUT JOB_FIELD_TIMEOUT
#define JOB_KIND_BOOL JOB_FIELD_BOOL
#define JOB_KIND_ENV JOB_FIELD_ENV
#define JOB_KIND_LIMITS JOB_FIELD_LIMITS
#define JOB_KIND_LABELS JOB_FIELD_LABELS
#define JOB_KIND_DEPS JOB_FIELD_DEPS

#define JOB_SEEN_RUNNER true
#define JOB_SEEN_SERVICE false

#define FIELD_DESC(ctx, name, kind, member, render, rank, seen) \
    {#name, JOB_KIND_##kind, offsetof(job, member), JOB_RENDER_##render, rank, JOB_SEEN_##seen},
const job_field_desc job_field_descs[] = {JOB_FIELDS(FIELD_DESC, )};
const size_t job_field_count = sizeof job_field_descs / sizeof job_field_descs[0];

const job_field_desc *job_field_find(const char *name)
{
    for (size_t i = 0; i < job_field_count; i++)
        if (strcmp(job_field_descs[i].name, name) == 0)
            return &job_field_descs[i];
    return NULL;
}

void *job_field_slot(job *j, const job_field_desc *f)
{
    return (char *)j + f->offset;
}

const void *job_field_cslot(const job *j, const job_field_desc *f)
{
    return (const char *)j + f->offset;
}

#define FIELD_COUNT (sizeof job_field_descs / sizeof job_field_descs[0])

/* A runner field's value as JSON text: its stored text when it is JSON already (not
 * copied), else encoded into *owned. NULL with errno set when it cannot be. */
static const char *runner_value_text(const job *j, const job_field_desc *f, char **owned)
{
    const void *slot = job_field_cslot(j, f);
    json_t *v = NULL;
    *owned = NULL;
    switch (f->kind) {
    case JOB_FIELD_OBJECT:
    case JOB_FIELD_ENV:
    case JOB_FIELD_LABELS: {
        const char *text = *(char *const *)slot;
        return text && *text ? text : "{}";
    }
    case JOB_FIELD_DEPS: {
        const char *text = *(char *const *)slot;
        return text ? text : "[]";
    }
    case JOB_FIELD_BOOL:
        return *(const bool *)slot ? "true" : "false";
    case JOB_FIELD_TEXT: {
        const char *text = *(char *const *)slot;
        v = json_string(text ? text : "");
        break;
    }
    case JOB_FIELD_BACKEND:
        v = json_string((const char *)slot);
        break;
    case JOB_FIELD_TIMEOUT:
        v = json_real(*(const double *)slot);
        break;
    case JOB_FIELD_LIMITS: /* the runner gets the limits transformed (runner_build_spec) */
    default:
        errno = EINVAL;
        return NULL;
    }
    if (!v) {
        errno = EINVAL; /* not UTF-8 (allocation failures aside) */
        return NULL;
    }
    *owned = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!*owned)
        errno = ENOMEM;
    return *owned;
}

char *job_runner_fields_json(const job *j)
{
    const char *values[FIELD_COUNT] = {0};
    size_t lens[FIELD_COUNT] = {0};
    char *owned[FIELD_COUNT] = {0};
    char *text = NULL;
    size_t len = sizeof "{}";
    int err = 0;
    for (size_t i = 0; i < FIELD_COUNT; i++) {
        const job_field_desc *f = &job_field_descs[i];
        if (!f->runner)
            continue;
        if (!(values[i] = runner_value_text(j, f, &owned[i]))) {
            err = errno;
            goto done;
        }
        lens[i] = strlen(values[i]);
        len += strlen(f->name) + sizeof ",\"\":" - 1 + lens[i];
    }
    if (!(text = malloc(len))) {
        err = ENOMEM;
        goto done;
    }
    /* {"name":value,...}: names are identifiers, so they need no escaping. */
    char *p = text;
    *p++ = '{';
    for (size_t i = 0; i < FIELD_COUNT; i++) {
        if (!values[i])
            continue;
        p += sprintf(p, "%s\"%s\":", p == text + 1 ? "" : ",", job_field_descs[i].name);
        memcpy(p, values[i], lens[i]);
        p += lens[i];
    }
    *p++ = '}';
    *p = '\0';
done:
    for (size_t i = 0; i < FIELD_COUNT; i++)
        free(owned[i]);
    if (!text)
        errno = err;
    return text;
}

/* The kinds held as an owned string (JSON text or plain). */
static bool field_owns_string(const job_field_desc *f)
{
    return f->kind == JOB_FIELD_TEXT || f->kind == JOB_FIELD_OBJECT || f->kind == JOB_FIELD_ENV ||
           f->kind == JOB_FIELD_LABELS || f->kind == JOB_FIELD_DEPS;
}

void job_init(job *j)
{
    memset(j, 0, sizeof *j);
    j->status = JOB_QUEUED;
    j->has_exit_code = false;
    j->exit_code = -1;
    j->signal = 0;
}

void job_free(job *j)
{
    for (size_t i = 0; i < job_field_count; i++)
        if (field_owns_string(&job_field_descs[i]))
            free(*(char **)job_field_slot(j, &job_field_descs[i]));
    char **owned[] = {&j->idempotency_key, &j->request_json, &j->result_json, &j->error_type,
                      &j->error_message,   &j->error_traceback, &j->usage_json,
                      &j->install_json};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        free(*owned[i]);
    job_init(j);
}

void job_new_id(char buf[JOB_ID_LEN + 1])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, buf);
}

bool job_id_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < JOB_ID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false; /* also stops at a NUL before 36 characters */
        }
    }
    return s[JOB_ID_LEN] == '\0';
}

/* Replaces *dst with a copy of src (NULL stays NULL). */
static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

static char *usage_to_json(const sandbox_usage *u)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "wall_ms", json_integer(u->wall_ms));
    json_object_set_new(o, "cpu_user_ms", json_integer(u->cpu_user_ms));
    json_object_set_new(o, "cpu_system_ms", json_integer(u->cpu_system_ms));
    json_object_set_new(o, "max_rss_kb", json_integer(u->max_rss_kb));
    /* -1 means the backend could not measure it: leave the key out rather than lie. */
    if (u->memory_peak_bytes >= 0)
        json_object_set_new(o, "memory_peak_bytes", json_integer(u->memory_peak_bytes));
    if (u->cgroup_cpu_ms >= 0)
        json_object_set_new(o, "cgroup_cpu_ms", json_integer(u->cgroup_cpu_ms));
    if (u->oom_kills >= 0)
        json_object_set_new(o, "oom_kills", json_integer(u->oom_kills));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static void failed_default_message(const job *j, char *buf, size_t len)
{
    if (j->has_exit_code)
        snprintf(buf, len, "Script execution failed (exit code %d)", j->exit_code);
    else if (j->signal > 0)
        snprintf(buf, len, "Script execution failed (killed by signal %d)", j->signal);
    else
        snprintf(buf, len, "Script execution failed");
}

void job_apply_outcome(job *j, const sandbox_outcome *o)
{
    bool ok = o->verdict == SANDBOX_SUCCEEDED;
    /* result only for a success, error only for anything else, as the API shows them. */
    set_str(&j->result_json, ok ? o->result_json : NULL);
    set_str(&j->error_type, ok ? NULL : o->error_type);
    set_str(&j->error_message, ok ? NULL : o->error_message);
    set_str(&j->error_traceback, ok ? NULL : o->error_traceback);
    j->has_exit_code = o->exit_code >= 0;
    j->exit_code = o->exit_code >= 0 ? o->exit_code : -1;
    j->signal = o->signal > 0 ? o->signal : 0;
    j->stdout_bytes = o->stdout_bytes;
    j->stderr_bytes = o->stderr_bytes;
    j->stdout_truncated = o->stdout_truncated;
    j->stderr_truncated = o->stderr_truncated;
    free(j->usage_json);
    j->usage_json = usage_to_json(&o->usage);

    const char *type = NULL;
    char msg[256] = "";
    switch (o->verdict) {
    case SANDBOX_SUCCEEDED:
        j->status = JOB_SUCCEEDED;
        return;
    case SANDBOX_TIMED_OUT:
        j->status = JOB_TIMED_OUT;
        type = "SandboxTimeoutError";
        snprintf(msg, sizeof msg, "Script execution timed out after %g seconds",
                 j->limits.timeout_seconds);
        break;
    case SANDBOX_CANCELLED:
        j->status = JOB_CANCELLED;
        type = "Cancelled";
        snprintf(msg, sizeof msg, "Job cancelled");
        break;
    case SANDBOX_OUTPUT_LIMIT:
        j->status = JOB_FAILED;
        type = "OutputLimitExceeded";
        snprintf(msg, sizeof msg, "Output exceeded the limit of %llu bytes per stream",
                 (unsigned long long)j->limits.max_output_bytes);
        break;
    case SANDBOX_SETUP_ERROR:
        j->status = JOB_FAILED;
        type = "SandboxError";
        snprintf(msg, sizeof msg, "The sandbox could not be set up");
        break;
    case SANDBOX_FAILED:
    default:
        j->status = JOB_FAILED;
        type = "SandboxExecutionError";
        failed_default_message(j, msg, sizeof msg);
        break;
    }
    /* Backends name their errors; these defaults only cover one that did not. */
    if (!j->error_type)
        j->error_type = strdup(type);
    if (!j->error_message)
        j->error_message = strdup(msg);
}
