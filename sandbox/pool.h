/* The `pool` backend: the sandbox of `ephemeral`, prepared ahead of demand. A zygote (a
 * Python interpreter that imported the runner and the common stdlib, inside its own
 * user/PID/mount/IPC/UTS/net namespaces and the read-only root of mnt.c) forks one warm
 * sandbox per job: own host uid, own user/PID/mount/IPC/net/UTS/cgroup namespaces, fresh
 * /tmp, /work, /dev/shm, /proc, no capabilities, no_new_privs, seccomp, its own cgroup.
 * A job takes a ready one; background threads refill, recycle and replace them. */
#ifndef EXECUTORD_SANDBOX_POOL_H
#define EXECUTORD_SANDBOX_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

extern const sandbox_backend sandbox_backend_pool;

/* State for /readyz and GET /v1/backends: writes a JSON object
 * {"available":bool,"reason":str|null,"size":n,"ready":n,"busy":n,"started":n,
 *  "recycled":n,"failures":n,"cold_starts":n,"zygotes":n,"last_failure":str|null,
 *  "caveat":str|null}
 * into buf (size: warm sandboxes kept ready; ready/busy: now; started: warm sandboxes
 * built so far; recycled: zygotes retired by age or job count; failures: sandboxes or
 * zygotes that failed or died; cold_starts: jobs started through ephemeral because none
 * was ready; caveat: e.g. "rlimits only" without cgroups). Returns the length, or -1
 * when buf is too small. Thread-safe; valid before init (available false). */
int pool_status_json(char *buf, size_t len);

#endif
