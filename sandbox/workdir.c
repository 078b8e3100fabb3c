/* Per-job work folder lifecycle. Removal is the delicate part: the folder's content was
 * written by an untrusted script (symlinks to /, FIFOs, 0000 directories, deep nests),
 * so nothing in it is opened by path; entries are unlinked relative to a directory fd,
 * and the walk keeps no fd per level (deep nests cannot exhaust fds): it climbs back
 * with "..", checking each parent's device/inode against what it saw on the way down. */
#include "sandbox/workdir.h"

#include "sandbox/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static int fail(char *err, size_t errlen, const char *call, const char *what)
{
    snprintf(err, errlen, "%s %s: %s", call, what, strerror(errno));
    return -1;
}

static int valid_name(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

int workdir_prepare_root(const char *work_root, char *err, size_t errlen)
{
    if (mkdir(work_root, 0700) != 0 && errno != EEXIST)
        return fail(err, errlen, "mkdir", work_root);
    struct stat st;
    if (stat(work_root, &st) != 0)
        return fail(err, errlen, "stat", work_root);
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return fail(err, errlen, "stat", work_root);
    }
    return 0;
}

int workdir_prepare_base(const char *work_root, const char *name, char *base, size_t baselen,
                         char *err, size_t errlen)
{
    if (!work_root) {
        snprintf(err, errlen, "no work folder configured");
        return -1;
    }
    if (workdir_prepare_root(work_root, err, errlen) != 0)
        return -1;
    int n = snprintf(base, baselen, "%s/%s", work_root, name);
    if (n < 0 || (size_t)n >= baselen) {
        snprintf(err, errlen, "work folder path too long");
        return -1;
    }
    if (mkdir(base, 0700) != 0 && errno != EEXIST)
        return fail(err, errlen, "mkdir", base);
    return 0;
}

int sandbox_prepare_work_root(const char *work_root, int *removed, char *err, size_t errlen)
{
    *removed = 0;
    if (workdir_prepare_root(work_root, err, errlen) != 0)
        return -1;
    /* Work folders left by a dead instance: no job runs yet, so every entry is stale. One
     * that cannot be removed only wastes space: go on, and say so. */
    DIR *d = opendir(work_root);
    if (!d) {
        fail(err, errlen, "opendir", work_root);
        return 1;
    }
    int failed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (workdir_remove(work_root, e->d_name, err, errlen) != 0)
            failed++;
        else
            (*removed)++;
    }
    closedir(d);
    return failed;
}

int workdir_create(const char *work_root, const char *name, char *path, size_t pathlen,
                   char *err, size_t errlen)
{
    if (!valid_name(name)) {
        errno = EINVAL;
        return fail(err, errlen, "workdir name", name);
    }
    int n = snprintf(path, pathlen, "%s/%s", work_root, name);
    if (n < 0 || (size_t)n >= pathlen) {
        errno = ENAMETOOLONG;
        return fail(err, errlen, "workdir path", name);
    }
    int rootfd = open(work_root, DIR_FLAGS);
    if (rootfd < 0)
        return fail(err, errlen, "open", work_root);
    int rc = 0;
    if (mkdirat(rootfd, name, 0700) != 0) {
        if (errno != EEXIST) {
            rc = fail(err, errlen, "mkdir", path);
        } else if (workdir_remove(work_root, name, err, errlen) != 0) {
            rc = -1; /* a leftover of a crashed run; err says why it could not go */
        } else if (mkdirat(rootfd, name, 0700) != 0) {
            rc = fail(err, errlen, "mkdir", path);
        }
    }
    /* mkdir's mode is filtered by the umask; 0700 must hold exactly. */
    if (rc == 0 && fchmodat(rootfd, name, 0700, 0) != 0)
        rc = fail(err, errlen, "chmod", path);
    close(rootfd);
    return rc;
}

typedef struct id_stack {
    struct { dev_t dev; ino_t ino; } *v;
    size_t n, cap;
} id_stack;

static int push_id(id_stack *s, int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void *v = realloc(s->v, cap * sizeof *s->v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].dev = st.st_dev;
    s->v[s->n].ino = st.st_ino;
    s->n++;
    return 0;
}

/* Unlinks one entry of dfd. Returns 0 when it is gone, 1 when it is a non-empty
 * directory (the caller descends into it), -1 on error. */
static int remove_entry(int dfd, const char *name)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno == EACCES || errno == EPERM) {
        /* The script may have made its directory read-only; we own it, so reopen it. */
        if (fchmod(dfd, 0700) == 0 && (unlinkat(dfd, name, 0) == 0 || errno == ENOENT))
            return 0;
    }
    if (errno != EISDIR && errno != EPERM)
        return -1;
    if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
        return 0;
    if (errno == ENOTEMPTY || errno == EEXIST)
        return 1;
    return -1;
}

/* Removes everything inside the directory open as *dfd, walking down into non-empty
 * subdirectories and back up. On return *dfd is again the top directory (or closed on
 * error). */
static int empty_tree(int *dfd, const char *top, char *err, size_t errlen)
{
    id_stack ids = {0};
    int rc = 0;
    for (;;) {
        int sfd = openat(*dfd, ".", DIR_FLAGS);
        DIR *d = sfd >= 0 ? fdopendir(sfd) : NULL;
        if (!d) {
            if (sfd >= 0)
                close(sfd);
            rc = fail(err, errlen, "opendir in", top);
            break;
        }
        int descended = 0;
        struct dirent *e;
        errno = 0;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            int r = remove_entry(*dfd, e->d_name);
            if (r < 0) {
                rc = fail(err, errlen, "unlink in", top);
                break;
            }
            if (r == 1) {
                int child = openat(*dfd, e->d_name, DIR_FLAGS);
                if (child < 0 && errno == EACCES && fchmodat(*dfd, e->d_name, 0700, 0) == 0)
                    child = openat(*dfd, e->d_name, DIR_FLAGS);
                if (child < 0) {
                    rc = fail(err, errlen, "open subfolder in", top);
                    break;
                }
                if (push_id(&ids, *dfd) != 0) {
                    close(child);
                    rc = fail(err, errlen, "fstat in", top);
                    break;
                }
                close(*dfd);
                *dfd = child;
                descended = 1;
                break;
            }
            errno = 0;
        }
        if (rc == 0 && !descended && errno != 0)
            rc = fail(err, errlen, "readdir in", top);
        closedir(d);
        if (rc != 0)
            break;
        if (descended)
            continue;
        if (ids.n == 0)
            break; /* the top directory is empty */
        int up = openat(*dfd, "..", DIR_FLAGS);
        struct stat st;
        if (up < 0 || fstat(up, &st) != 0) {
            if (up >= 0)
                close(up);
            rc = fail(err, errlen, "open .. in", top);
            break;
        }
        ids.n--;
        if (st.st_dev != ids.v[ids.n].dev || st.st_ino != ids.v[ids.n].ino) {
            close(up);
            errno = EXDEV;
            rc = fail(err, errlen, "climb back (folder moved) in", top);
            break;
        }
        close(*dfd);
        *dfd = up; /* the rescan removes the subfolder we just emptied */
    }
    free(ids.v);
    if (rc != 0) {
        close(*dfd);
        *dfd = -1;
    }
    return rc;
}

int workdir_remove(const char *work_root, const char *name, char *err, size_t errlen)
{
    if (!valid_name(name)) {
        errno = EINVAL;
        return fail(err, errlen, "workdir name", name);
    }
    int rootfd = open(work_root, DIR_FLAGS);
    if (rootfd < 0)
        return fail(err, errlen, "open", work_root);
    int rc = 0;
    int dfd = openat(rootfd, name, DIR_FLAGS);
    if (dfd < 0) {
        if (errno == ENOENT) {
            rc = 0;
        } else if (errno == ENOTDIR || errno == ELOOP) {
            /* Not a directory (something replaced it): unlink the entry itself. */
            if (unlinkat(rootfd, name, 0) != 0 && errno != ENOENT)
                rc = fail(err, errlen, "unlink", name);
        } else if (errno == EACCES && fchmodat(rootfd, name, 0700, 0) == 0 &&
                   (dfd = openat(rootfd, name, DIR_FLAGS)) >= 0) {
            rc = 0;
        } else {
            rc = fail(err, errlen, "open", name);
        }
    }
    if (dfd >= 0) {
        if (fchmod(dfd, 0700) != 0) {
            rc = fail(err, errlen, "chmod", name);
            close(dfd);
        } else if (empty_tree(&dfd, name, err, errlen) != 0) {
            rc = -1;
        } else {
            close(dfd);
            if (unlinkat(rootfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
                rc = fail(err, errlen, "rmdir", name);
        }
    }
    close(rootfd);
    return rc;
}
