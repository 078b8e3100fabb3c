/* The `ephemeral` backend: a complete sandbox built for one job and destroyed after it
 * (user/PID/mount/IPC/UTS/network/cgroup namespaces, an assembled read-only root,
 * seccomp, no capabilities, a cgroup with the job's limits). */
#ifndef EXECUTORD_SANDBOX_EPHEMERAL_H
#define EXECUTORD_SANDBOX_EPHEMERAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

extern const sandbox_backend sandbox_backend_ephemeral;

/* How resources are controlled: the cgroup description, or why cgroups are unusable
 * and only rlimits apply. Valid after init. */
const char *ephemeral_status(void);

#endif
