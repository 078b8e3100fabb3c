/* Dropping privilege in the sandboxed process right before exec: every capability
 * (bounding, ambient, effective/permitted/inheritable), the switch to the job's uid/gid,
 * and a check that no host supplementary group came along. Async-signal-safe. */
#ifndef EXECUTORD_SANDBOX_CAPS_H
#define EXECUTORD_SANDBOX_CAPS_H

#include <sys/types.h>

/* Child side. Returns 0, or -1 with errno set and *step naming the failing call. */
int sandbox_caps_drop_to(uid_t uid, gid_t gid, const char **step);

#endif
