/* The rows of sandbox/limits.def as data, their embedded defaults, and the limits part
 * of the spec runner.py reads. */
#include "sandbox/limits.h"

#include <math.h>
#include <string.h>

#include "sandbox/sandbox.h"

#define SANDBOX_LIMIT_TYPE_U64 SANDBOX_LIMIT_U64
#define SANDBOX_LIMIT_TYPE_SECONDS SANDBOX_LIMIT_SECONDS

#define LIMIT_DESC(ctx, name, type, flag, env, dflt, max, request_min, config_min, ceiling, runner) \
    {#name, SANDBOX_LIMIT_TYPE_##type, flag, env, #dflt, #max, request_min, config_min, ceiling,    \
     runner, offsetof(sandbox_limits, name)},
const sandbox_limit_desc sandbox_limit_descs[] = {SANDBOX_LIMITS(LIMIT_DESC, )};
const size_t sandbox_limit_count = sizeof sandbox_limit_descs / sizeof sandbox_limit_descs[0];

double sandbox_limit_seconds(const sandbox_limits *l, const sandbox_limit_desc *d)
{
    double v;
    memcpy(&v, (const char *)l + d->offset, sizeof v);
    return v;
}

uint64_t sandbox_limit_u64(const sandbox_limits *l, const sandbox_limit_desc *d)
{
    uint64_t v;
    memcpy(&v, (const char *)l + d->offset, sizeof v);
    return v;
}

void sandbox_limit_set_seconds(sandbox_limits *l, const sandbox_limit_desc *d, double v)
{
    memcpy((char *)l + d->offset, &v, sizeof v);
}

void sandbox_limit_set_u64(sandbox_limits *l, const sandbox_limit_desc *d, uint64_t v)
{
    memcpy((char *)l + d->offset, &v, sizeof v);
}

const sandbox_limit_desc *sandbox_limit_find(const char *name)
{
    for (size_t i = 0; i < sandbox_limit_count; i++)
        if (strcmp(sandbox_limit_descs[i].name, name) == 0)
            return &sandbox_limit_descs[i];
    return NULL;
}

void sandbox_limits_defaults(sandbox_limits *l)
{
    memset(l, 0, sizeof *l);
#define SET_DEFAULT(ctx, name, type, flag, env, dflt, ...) ctx->name = dflt;
    SANDBOX_LIMITS(SET_DEFAULT, l)
}

/* A whole number of seconds as an integer (30, not 30.0), as the API always showed it.
 * isfinite is a macro: no libm, which the binary does not link. */
static json_t *seconds_json(double s)
{
    if (isfinite(s) && s > -9007199254740992.0 && s < 9007199254740992.0 && (double)(int64_t)s == s)
        return json_integer((json_int_t)s);
    return json_real(s);
}

json_t *sandbox_limits_json(const sandbox_limits *l, bool runner_only)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < sandbox_limit_count; i++) {
        const sandbox_limit_desc *d = &sandbox_limit_descs[i];
        if (runner_only && !d->runner)
            continue;
        /* The runner's spec has always carried seconds as a real (20.0). */
        double secs = d->type == SANDBOX_LIMIT_SECONDS ? sandbox_limit_seconds(l, d) : 0;
        json_t *v = d->type != SANDBOX_LIMIT_SECONDS ? json_integer((json_int_t)sandbox_limit_u64(l, d))
                    : runner_only                    ? json_real(secs)
                                                     : seconds_json(secs);
        if (json_object_set_new(o, d->name, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *sandbox_limits_runner_json(const sandbox_limits *l)
{
    return sandbox_limits_json(l, true);
}

void sandbox_tmpfs_bytes(const struct sandbox_isolation_config *c, uint64_t *tmp, uint64_t *shm,
                         uint64_t *work)
{
    *tmp = (c->tmp_mb ? c->tmp_mb : SANDBOX_DEFAULT_TMP_MB) << 20;
    *shm = (c->shm_mb ? c->shm_mb : SANDBOX_DEFAULT_SHM_MB) << 20;
    *work = (c->work_mb ? c->work_mb : SANDBOX_DEFAULT_WORK_MB) << 20;
}
