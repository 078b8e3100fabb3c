/* The data folder's emergency space: a file of preallocated blocks, given back to the
 * filesystem when the disk is full so the store can still delete jobs, evict output and
 * record how jobs ended, and taken again once the disk has room. Also what the disk has
 * free. */
#ifndef EXECUTORD_RESERVE_H
#define EXECUTORD_RESERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct reserve reserve;

/* Opens (creating it 0600, never through a symlink) the file at path and allocates bytes
 * in it. A disk too full for that is no error: the reserve then starts released. NULL,
 * with one line in err, when the file cannot be used at all. */
reserve *reserve_open(const char *path, uint64_t bytes, char *err, size_t errlen);
/* Closes the file; it stays on disk, so the space stays set aside across restarts. */
void reserve_close(reserve *r);

uint64_t reserve_size(const reserve *r);
bool reserve_held(reserve *r);
/* Frees the space (the file is emptied). True when it was held until now. Thread-safe. */
bool reserve_release(reserve *r);
/* Allocates the space again if the disk has it and keeps at least keep_free bytes free
 * besides. True when the reserve is held afterwards. Thread-safe. */
bool reserve_restore(reserve *r, uint64_t keep_free);

/* What the filesystem holding the reserve has: bytes free to unprivileged writers (root's
 * own share, e.g. ext4's 5%, is left to the system) and its size. 0, or -1 with errno. */
int reserve_disk(reserve *r, uint64_t *avail, uint64_t *total);
/* The same for any path (the data folder before the reserve exists). */
int reserve_disk_of(const char *path, uint64_t *avail, uint64_t *total);

#endif
