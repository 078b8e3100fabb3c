/* Host-uid slots and id maps of the job's user namespace (see userns.h). */
#include "sandbox/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static uid_t slots_base = 2000000;   /* far from distribution and subuid ranges */
static unsigned slots_count = 1024;
static unsigned char *slots_used;    /* one byte per slot, allocated on first use */
static unsigned slots_next;          /* round robin: a just-freed uid rests a while */
static int *slots_lock_fd;           /* flock held per slot in use, -1 = none */
static int lock_dirfd = -1;          /* cross-instance coordination, -1 = off */

int sandbox_userns_configure(uid_t base, unsigned count, char *why, size_t whylen)
{
    if (count == 0 || base == 0 || (uint64_t)base + 2 * (uint64_t)count > (uint64_t)UINT32_MAX - 1) {
        snprintf(why, whylen, "invalid sandbox uid range %u+%u", (unsigned)base, count);
        return -1;
    }
    pthread_mutex_lock(&slots_lock);
    for (unsigned i = 0; slots_used && i < slots_count; i++) {
        if (slots_used[i]) {
            pthread_mutex_unlock(&slots_lock);
            snprintf(why, whylen, "sandbox uid range changed while slots are in use");
            return -1;
        }
    }
    free(slots_used);
    slots_used = NULL;
    free(slots_lock_fd);
    slots_lock_fd = NULL;
    slots_base = base;
    slots_count = count;
    slots_next = 0;
    pthread_mutex_unlock(&slots_lock);
    return 0;
}

int sandbox_userns_lock_dir(const char *dir, char *why, size_t whylen)
{
    pthread_mutex_lock(&slots_lock);
    if (lock_dirfd >= 0)
        close(lock_dirfd);
    lock_dirfd = -1;
    pthread_mutex_unlock(&slots_lock);
    if (!dir)
        return 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, whylen, "open %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Someone else's folder could hand us planted files or deny us every slot. */
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        close(fd);
        snprintf(why, whylen, "%s: not owned by us or writable by others", dir);
        return -1;
    }
    pthread_mutex_lock(&slots_lock);
    lock_dirfd = fd;
    pthread_mutex_unlock(&slots_lock);
    return 0;
}

/* Called with slots_lock held. Returns the lock fd (or -2 when coordination is off), or
 * -1 when another instance holds the slot or the lock file cannot be made. */
static int lock_slot(uid_t host_id)
{
    if (lock_dirfd < 0)
        return -2;
    char name[64];
    snprintf(name, sizeof name, "slot-%u.lock", (unsigned)host_id);
    int fd = openat(lock_dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int sandbox_userns_acquire(uid_t *host_id)
{
    pthread_mutex_lock(&slots_lock);
    if (!slots_used) {
        slots_used = calloc(slots_count, 1);
        slots_lock_fd = malloc(slots_count * sizeof *slots_lock_fd);
        if (!slots_used || !slots_lock_fd) {
            free(slots_used);
            free(slots_lock_fd);
            slots_used = NULL;
            slots_lock_fd = NULL;
            pthread_mutex_unlock(&slots_lock);
            errno = ENOMEM;
            return -1;
        }
        for (unsigned i = 0; i < slots_count; i++)
            slots_lock_fd[i] = -1;
    }
    for (unsigned n = 0; n < slots_count; n++) {
        unsigned i = (slots_next + n) % slots_count;
        if (!slots_used[i]) {
            int fd = lock_slot(slots_base + 2 * i);
            if (fd == -1)
                continue; /* in use by another instance */
            slots_lock_fd[i] = fd;
            slots_used[i] = 1;
            slots_next = (i + 1) % slots_count;
            *host_id = slots_base + 2 * i;
            pthread_mutex_unlock(&slots_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&slots_lock);
    errno = EAGAIN;
    return -1;
}

void sandbox_userns_release(uid_t host_id)
{
    pthread_mutex_lock(&slots_lock);
    if (slots_used && host_id >= slots_base && (host_id - slots_base) / 2 < slots_count) {
        unsigned i = (host_id - slots_base) / 2;
        slots_used[i] = 0;
        if (slots_lock_fd[i] >= 0)
            close(slots_lock_fd[i]); /* drops the flock */
        slots_lock_fd[i] = -1;
    }
    pthread_mutex_unlock(&slots_lock);
}

static int write_proc_file(int dirfd, const char *name, const char *text, char *err, size_t errlen)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "open /proc/<pid>/%s: %s", name, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)len) {
        snprintf(err, errlen, "write /proc/<pid>/%s: %s", name, n < 0 ? strerror(saved) : "short write");
        return -1;
    }
    return 0;
}

int sandbox_userns_write_map_text(pid_t pid, const char *uid_map, const char *gid_map, char *err,
                                  size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    int dirfd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = write_proc_file(dirfd, "setgroups", "deny", err, errlen);
    if (rc == 0)
        rc = write_proc_file(dirfd, "uid_map", uid_map, err, errlen);
    if (rc == 0)
        rc = write_proc_file(dirfd, "gid_map", gid_map, err, errlen);
    close(dirfd);
    return rc;
}

int sandbox_userns_write_maps(pid_t pid, uid_t host_id, char *err, size_t errlen)
{
    char uid_map[64], gid_map[64];
    snprintf(uid_map, sizeof uid_map, "%u %u 1\n%u %u 1\n", SANDBOX_INSIDE_ROOT, (unsigned)host_id,
             SANDBOX_INSIDE_UID, (unsigned)host_id + 1);
    snprintf(gid_map, sizeof gid_map, "%u %u 1\n%u %u 1\n", SANDBOX_INSIDE_ROOT, (unsigned)host_id,
             SANDBOX_INSIDE_GID, (unsigned)host_id + 1);
    return sandbox_userns_write_map_text(pid, uid_map, gid_map, err, errlen);
}
