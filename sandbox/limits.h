/* The limits of a job (the rows of sandbox/limits.def) and the sandbox-wide settings'
 * defaults, each written once; the bottom of the sandbox layer: the service's
 * configuration, validation and rendering, and the spec sent to runner.py read them here. */
#ifndef EXECUTORD_SANDBOX_LIMITS_H
#define EXECUTORD_SANDBOX_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SANDBOX_LIMIT_CTYPE_U64 uint64_t
#define SANDBOX_LIMIT_CTYPE_SECONDS double

/* Resource limits of one job; the API layer always fills every member with an effective
 * value before a job reaches a backend. */
#include "sandbox/limits.def"

#define SANDBOX_LIMIT_MEMBER(ctx, name, type, ...) SANDBOX_LIMIT_CTYPE_##type name;
typedef struct sandbox_limits {
    SANDBOX_LIMITS(SANDBOX_LIMIT_MEMBER, )
} sandbox_limits;

typedef enum sandbox_limit_type { SANDBOX_LIMIT_U64, SANDBOX_LIMIT_SECONDS } sandbox_limit_type;

/* One row of limits.def, as data (the defaults and bounds also as text, for the
 * configuration's table, which parses every value from text). */
typedef struct sandbox_limit_desc {
    const char *name;
    sandbox_limit_type type;
    const char *flag, *env;
    const char *dflt_text, *max_text;
    uint64_t request_min;
    int64_t config_min, ceiling;
    bool runner;
    size_t offset; /* of the member in sandbox_limits */
} sandbox_limit_desc;

extern const sandbox_limit_desc sandbox_limit_descs[];
extern const size_t sandbox_limit_count;

/* The member d describes, as a number (SECONDS) or a whole number (U64). */
double sandbox_limit_seconds(const sandbox_limits *l, const sandbox_limit_desc *d);
uint64_t sandbox_limit_u64(const sandbox_limits *l, const sandbox_limit_desc *d);
void sandbox_limit_set_seconds(sandbox_limits *l, const sandbox_limit_desc *d, double v);
void sandbox_limit_set_u64(sandbox_limits *l, const sandbox_limit_desc *d, uint64_t v);
/* The row called name, or NULL. */
const sandbox_limit_desc *sandbox_limit_find(const char *name);

/* The embedded defaults (limits.def's dflt column). */
void sandbox_limits_defaults(sandbox_limits *l);
/* Every limit as a JSON object in the order of limits.def (whole seconds as integers), or
 * with runner_only the rows marked runner (seconds always as reals). New reference, NULL when out of memory. */
json_t *sandbox_limits_json(const sandbox_limits *l, bool runner_only);
/* The "limits" object of the spec sent to runner.py: the rows marked runner. New
 * reference, NULL when out of memory. */
json_t *sandbox_limits_runner_json(const sandbox_limits *l);

/* The sandbox-wide settings' defaults (struct sandbox_config; the service's flags show
 * the same values, stringified from these). */
#define SANDBOX_DEFAULT_TMP_MB 64           /* a sandbox's /tmp tmpfs */
#define SANDBOX_DEFAULT_SHM_MB 64           /* its /dev/shm */
#define SANDBOX_DEFAULT_WORK_MB 128         /* its /work */
#define SANDBOX_DEFAULT_CPU_PERCENT 100     /* CPU quota of one job: one core */
#define SANDBOX_DEFAULT_UID_BASE 2000000    /* first host uid of the per-job uid slots */
#define SANDBOX_DEFAULT_UID_COUNT 1024      /* slots, two host ids each */
#define SANDBOX_DEFAULT_UID_LOCK_DIR "/run/executord-uid-slots"
#define SANDBOX_DEFAULT_POOL_UID_BASE 3000000
#define SANDBOX_DEFAULT_POOL_RECYCLE_JOBS 100
#define SANDBOX_DEFAULT_POOL_RECYCLE_SECONDS 300
#define SANDBOX_DEFAULT_POOL_REFILL_THREADS 2

struct sandbox_isolation_config;
/* The sizes of a sandbox's /tmp, /dev/shm and /work in bytes, defaults filled. */
void sandbox_tmpfs_bytes(const struct sandbox_isolation_config *c, uint64_t *tmp, uint64_t *shm,
                         uint64_t *work);

#endif
