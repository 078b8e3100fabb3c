/* The install of a job's dependencies (issue 14): pip, run by src/depinstall.py in an
 * `ephemeral` sandbox (the isolation, supervisor and limits of a job), writing into a
 * size-capped tmpfs executord mounts for it, copied afterwards into the cache's folder.
 * Its network reaches only the configured index hosts. */
#ifndef EXECUTORD_DEPINSTALL_H
#define EXECUTORD_DEPINSTALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

/* Where packages come from and the install's limits; strings stay valid while used. */
typedef struct depinstall_config {
    const char *index_url;                /* --pip-index-url, NULL = none */
    const char *const *extra_index_urls;  /* --pip-extra-index-url, NULL-terminated or NULL */
    const char *find_links;               /* --pip-find-links (a host folder), NULL = none */
    uint64_t disk_mb;                     /* --deps-install-disk-mb: the tmpfs's size */
    uint64_t timeout_seconds;             /* --deps-install-timeout-seconds */
    const char *interpreter;              /* depinstall_interpreter's text */
} depinstall_config;

/* True when at least one source is configured (else jobs with dependencies get 422). */
bool depinstall_has_source(const depinstall_config *cfg);

/* The package sources as one text, a part of an environment's id. malloc'd, NULL on ENOMEM. */
char *depinstall_sources_text(const depinstall_config *cfg);

/* The interpreter's version and platform (sys.version, sysconfig.get_platform() and the
 * implementation's cache tag), asked of python itself; with a rootfs, the interpreter's
 * file identity there. Returns 0, or -1 with the reason in buf. */
int depinstall_interpreter(const char *python, const char *rootfs, char *buf, size_t len);

/* Checks each URL (http or https with a host) so that a bad flag fails at start-up.
 * Returns 0, or -1 with the reason in err. */
int depinstall_check_config(const depinstall_config *cfg, char *err, size_t errlen);

/* One job's install, the context of depcache's install callback. */
typedef struct depinstall_job {
    const depinstall_config *cfg;
    const char *job_id;
    const char *deps_json;          /* the normalized requirement list, a JSON array */
    const sandbox_limits *limits;   /* the job's: memory_mb and the per-process limits */
    int cancel_fd;
    const sandbox_io *io;           /* pip's output goes to the job's logs */
} depinstall_job;

/* depcache_install_fn: mounts a tmpfs of disk_mb in work, runs pip in an ephemeral
 * sandbox with it writable at /deps, copies it into dest (folders, regular files and
 * symbolic links only, no set-id bits, readable by anyone), unmounts it. Returns 0, or
 * -1 with *out filled: PackageInstallError (pip's message) for a failed install,
 * SandboxError when the sandbox could not be built, SANDBOX_CANCELLED. */
int depinstall_run(void *job, const char *work, const char *dest, sandbox_outcome *out);

/* The install script (src/depinstall.py), embedded at build time. */
extern const char depinstall_script_source[];

#endif
