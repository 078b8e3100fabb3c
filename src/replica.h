/* The replica loop of a shared store (src/replica.c): the lease's heartbeat and the
 * store's events turned into the scheduler's wake-ups, cancels and claim pauses. Started
 * only when store_is_shared; a single instance on SQLite has none. */
#ifndef EXECUTORD_REPLICA_H
#define EXECUTORD_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "src/scheduler.h"
#include "src/store.h"

typedef struct replica replica;

/* Starts the thread; store_set_replica was called with the same lease. NULL with err. */
replica *replica_start(store *st, scheduler *sch, int64_t lease_ms, char *err, size_t errlen);
/* Stops and joins it (within a quarter of the lease). NULL is fine. */
void replica_stop(replica *r);

#endif
