/* User namespace of a job: the job runs as uid/gid 1000 inside, mapped to a host uid/gid
 * taken from a configurable range, one slot per running job, so no two concurrent jobs
 * share a host identity (RLIMIT_NPROC, kill(), /proc and file ownership stay per job).
 * A slot is two consecutive host ids: base+2i is root inside (only the sandbox's init
 * uses it, to assemble the root: files created on a tmpfs of the namespace need a mapped
 * owner), base+2i+1 is the job's uid 1000. */
#ifndef EXECUTORD_SANDBOX_USERNS_H
#define EXECUTORD_SANDBOX_USERNS_H

#include <stddef.h>
#include <sys/types.h>

#define SANDBOX_INSIDE_UID 1000
#define SANDBOX_INSIDE_GID 1000
#define SANDBOX_INSIDE_ROOT 0

/* count slots from host id base on (ids base .. base+2*count-1; uid and gid use the
 * same numbers).
 * Returns 0, or -1 with the reason in why (range empty, overlapping uid 0, overflow). */
int sandbox_userns_configure(uid_t base, unsigned count, char *why, size_t whylen);

/* Coordinates slots between executord instances sharing a uid range (several
 * services, or test instances, on one host): a slot is taken only while holding an
 * flock on <dir>/slot-<host_id>.lock; locks vanish with a crashed holder. dir is
 * created 0700 if missing and must be root's and not writable by others. NULL turns
 * coordination off. Returns 0 or -1 + why. */
int sandbox_userns_lock_dir(const char *dir, char *why, size_t whylen);

/* Takes a free slot. Returns 0 and *host_id (the slot's first id: inside root; the job's
 * uid 1000 is host_id+1), or -1 (errno EAGAIN) when all are in use. */
int sandbox_userns_acquire(uid_t *host_id);
/* Gives a slot back; call only when nothing of the job that used it remains. */
void sandbox_userns_release(uid_t host_id);

/* Parent side: "deny" into setgroups, then uid_map/gid_map "0 <host_id> 1" and
 * "1000 <host_id+1> 1" for pid.
 * Returns 0, or -1 with "step: strerror" in err. */
int sandbox_userns_write_maps(pid_t pid, uid_t host_id, char *err, size_t errlen);

/* The same with maps of the caller's own: "deny" into /proc/<pid>/setgroups, then the
 * given uid_map and gid_map texts. Returns 0, or -1 with "step: strerror" in err. */
int sandbox_userns_write_map_text(pid_t pid, const char *uid_map, const char *gid_map, char *err,
                                  size_t errlen);

#endif
