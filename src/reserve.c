/* The emergency reserve (see reserve.h). SQLite cannot delete on a full disk: even a
 * DELETE appends the pages it changes to the WAL, which must grow. Blocks set aside in
 * a file while the disk has room are the space such writes get when it has none. */
#include "src/reserve.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "src/log.h"

struct reserve {
    pthread_mutex_t mu;
    int fd;
    uint64_t bytes;
    bool held;
    char path[4096];
};

int reserve_disk_of(const char *path, uint64_t *avail, uint64_t *total)
{
    struct statvfs v;
    if (statvfs(path, &v) != 0)
        return -1;
    uint64_t unit = v.f_frsize ? v.f_frsize : v.f_bsize;
    *avail = (uint64_t)v.f_bavail * unit;
    *total = (uint64_t)v.f_blocks * unit;
    return 0;
}

int reserve_disk(reserve *r, uint64_t *avail, uint64_t *total)
{
    return reserve_disk_of(r->path, avail, total);
}

/* Allocates the blocks (not a sparse file: statvfs counts them as used). Caller holds mu.
 * On failure the file is emptied again, so a half-made reserve holds nothing. */
static bool allocate(reserve *r)
{
    int rc = posix_fallocate(r->fd, 0, (off_t)r->bytes);
    if (rc == 0)
        return true;
    if (rc != ENOSPC && rc != EDQUOT)
        log_warn("storage reserve %s: fallocate: %s", r->path, strerror(rc));
    if (ftruncate(r->fd, 0) != 0)
        log_warn("storage reserve %s: ftruncate: %s", r->path, strerror(errno));
    return false;
}

reserve *reserve_open(const char *path, uint64_t bytes, char *err, size_t errlen)
{
    reserve *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "storage reserve: out of memory");
        return NULL;
    }
    if ((size_t)snprintf(r->path, sizeof r->path, "%s", path) >= sizeof r->path) {
        snprintf(err, errlen, "storage reserve %s: path too long", path);
        free(r);
        return NULL;
    }
    r->bytes = bytes;
    r->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (r->fd < 0) {
        snprintf(err, errlen, "storage reserve %s: open: %s", path, strerror(errno));
        free(r);
        return NULL;
    }
    struct stat st;
    int rc = fstat(r->fd, &st);
    if (rc != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "storage reserve %s: %s", path,
                 rc != 0 ? strerror(errno) : "not a regular file");
        close(r->fd);
        free(r);
        return NULL;
    }
    /* A larger file left by another configuration gives back what is not needed. */
    if ((uint64_t)st.st_size > bytes && ftruncate(r->fd, (off_t)bytes) != 0) {
        snprintf(err, errlen, "storage reserve %s: ftruncate: %s", path, strerror(errno));
        close(r->fd);
        free(r);
        return NULL;
    }
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        snprintf(err, errlen, "storage reserve: pthread_mutex_init failed");
        close(r->fd);
        free(r);
        return NULL;
    }
    r->held = bytes > 0 && allocate(r);
    return r;
}

void reserve_close(reserve *r)
{
    if (!r)
        return;
    close(r->fd);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

uint64_t reserve_size(const reserve *r)
{
    return r ? r->bytes : 0;
}

bool reserve_held(reserve *r)
{
    if (!r)
        return false;
    pthread_mutex_lock(&r->mu);
    bool held = r->held;
    pthread_mutex_unlock(&r->mu);
    return held;
}

bool reserve_release(reserve *r)
{
    if (!r)
        return false;
    pthread_mutex_lock(&r->mu);
    bool was = r->held;
    if (was) {
        if (ftruncate(r->fd, 0) != 0) {
            log_error("storage reserve %s: ftruncate: %s", r->path, strerror(errno));
            was = false; /* nothing was freed; it is still held */
        } else {
            r->held = false;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return was;
}

bool reserve_restore(reserve *r, uint64_t keep_free)
{
    if (!r || r->bytes == 0)
        return false;
    pthread_mutex_lock(&r->mu);
    if (!r->held) {
        uint64_t avail = 0, total = 0;
        if (reserve_disk(r, &avail, &total) == 0 && avail >= r->bytes + keep_free)
            r->held = allocate(r);
    }
    bool held = r->held;
    pthread_mutex_unlock(&r->mu);
    return held;
}
