/* Retention: a background thread deletes finished jobs (and their output) older than the
 * configured age, so the database stays bounded on a long-running instance. */
#ifndef EXECUTORD_RETENTION_H
#define EXECUTORD_RETENTION_H

#include <stdint.h>

#include "src/store.h"

typedef struct retention retention;

/* NULL (logged) when the thread cannot start; the service runs on without it. */
retention *retention_start(store *st, int64_t max_age_seconds);
void retention_stop(retention *r);

#endif
