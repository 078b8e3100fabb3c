/* The sandbox's system-call filter: an allow-list, ENOSYS for other calls, EPERM for the
 * known-dangerous, foreign architectures (i386, x32) killed. Built once in the parent with
 * libseccomp; both backends' sandboxes load that program with plain (async-signal-safe) prctl. */
#ifndef EXECUTORD_SANDBOX_SECCOMP_H
#define EXECUTORD_SANDBOX_SECCOMP_H

#include <stddef.h>
#include <linux/filter.h>

/* Compiles the policy into classic BPF; prog->filter is malloc'd. Returns 0, or -1 with
 * the failing step in err. Call in the parent (libseccomp allocates). */
int sandbox_seccomp_build(struct sock_fprog *prog, char *err, size_t errlen);
void sandbox_seccomp_free(struct sock_fprog *prog);

/* Child side, async-signal-safe: sets no_new_privs and installs prog. Returns 0, or -1
 * with errno set and *step naming the call that failed. */
int sandbox_seccomp_apply(const struct sock_fprog *prog, const char **step);

#endif
