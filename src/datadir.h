/* The data folder (database, work folders): created owner-only when missing, and refused
 * when another user owns it or could write into it, before anything is stored there. */
#ifndef EXECUTORD_DATADIR_H
#define EXECUTORD_DATADIR_H

#include <stddef.h>

/* Creates path (mode 0700; its parent must exist) when missing. A symlink is followed:
 * the checks apply to the folder it names, the one every later path resolves to. Returns
 * 0, or -1 with one line naming the folder and the problem in err: not a folder, owned by
 * another uid than the effective one, or writable by its group or others. */
int datadir_prepare(const char *path, char *err, size_t errlen);

#endif
