/* Per-job work folders: <work_root>/<job_id>, created 0700 before the job and removed
 * afterwards without ever following a link the script planted. */
#ifndef EXECUTORD_SANDBOX_WORKDIR_H
#define EXECUTORD_SANDBOX_WORKDIR_H

#include <stddef.h>

/* Creates work_root (0700, parents must exist) when missing. Returns 0 or -1 + err. */
int workdir_prepare_root(const char *work_root, char *err, size_t errlen);

/* Prepares work_root and a backend's own folder <work_root>/<name> (0700; its path into
 * base). Returns 0, or -1 with the reason in err. */
int workdir_prepare_base(const char *work_root, const char *name, char *base, size_t baselen,
                         char *err, size_t errlen);

/* Creates <work_root>/<name> with mode 0700 and writes its path into path. name must be
 * a single path component (no '/', not "." or ".."). A leftover folder of that name is
 * removed first. Returns 0, or -1 with "call path: strerror" in err. */
int workdir_create(const char *work_root, const char *name, char *path, size_t pathlen,
                   char *err, size_t errlen);

/* Removes <work_root>/<name> and everything in it. Symlinks, FIFOs, sockets and devices
 * are unlinked, never opened; directories are entered with O_NOFOLLOW|O_DIRECTORY and
 * checked on the way back up. A missing folder is not an error. Returns 0 or -1 + err. */
int workdir_remove(const char *work_root, const char *name, char *err, size_t errlen);

#endif
