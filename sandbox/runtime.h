/* The runtime every sandboxed backend (ephemeral, pool) runs jobs on, resolved once from
 * the configuration at start-up: the root the sandbox's read-only filesystem comes from,
 * the interpreter inside it, and the service's host groups dropped. */
#ifndef EXECUTORD_SANDBOX_RUNTIME_H
#define EXECUTORD_SANDBOX_RUNTIME_H

#include <limits.h>
#include <stddef.h>

#include "sandbox/sandbox.h"

typedef struct sandbox_runtime {
    char rootfs[PATH_MAX]; /* "" = the host's /; never ends in '/' */
    char python[PATH_MAX]; /* absolute, under the runtime folders the sandbox mounts */
} sandbox_runtime;

/* Fills *rt from cfg: rootfs without trailing slashes, the interpreter (default
 * /usr/bin/python3), which must lie in the folders a sandbox's root mounts (/usr, /bin,
 * /sbin, /lib, /lib64) and be executable there. Then drops the service's supplementary
 * groups: they would follow every job into its namespace, where setgroups is denied.
 * Returns 0, or -1 with the reason in why. */
int sandbox_runtime_resolve(const sandbox_config *cfg, sandbox_runtime *rt, char *why, size_t whylen);

#endif
