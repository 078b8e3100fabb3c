/* A job's Python packages inside its sandbox (issue 14): the host folders of
 * sandbox_spec.packages mounted onto the empty /deps and /wheels of a sandbox that is
 * built already (an ephemeral one whose init assembled its root, a warm one), the same
 * code for both. The service clones each folder as a detached mount, sets its flags
 * there, and moves it in from a short-lived thread that entered the sandbox's mount
 * namespace. Any failure fails the job (SandboxError "packages: step: reason"). */
#ifndef EXECUTORD_SANDBOX_PKGMOUNT_H
#define EXECUTORD_SANDBOX_PKGMOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

/* True when p asks for anything to be mounted. */
bool pkgmount_wanted(const sandbox_packages *p);

/* Mounts p->dir at SANDBOX_DEPS_PATH (read-only unless p->writable) and p->wheels_dir at
 * SANDBOX_WHEELS_PATH (read-only), both nosuid and nodev, private (nothing propagates
 * either way), in the mount namespace of the sandbox whose init is pidfd, or, with pidfd
 * -1, pid (then our child, which no one else can reap). Call before any code of the job
 * runs. Returns 0 (also when nothing is wanted), or -1 with err ("packages: step:
 * reason"); the sandbox must then be destroyed. */
int pkgmount_attach(const sandbox_packages *p, pid_t pid, int pidfd, char *err, size_t errlen);

/* The folder the runner puts on sys.path, as the job sees it: SANDBOX_DEPS_PATH in a
 * sandbox, the host folder itself without filesystem isolation (direct); NULL when
 * there is none, and for the install sandbox (writable), which does not import from it. */
const char *pkgmount_runner_path(const sandbox_packages *p, bool sandboxed);

#endif
