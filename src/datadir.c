/* Prepares the data folder: 0700 when created here (jobs never reach it by path: see
 * sandbox/direct.c); an existing one must belong to executord's user and be writable by no
 * one else. Whoever can write there can swap the database, plant links where work folders
 * go, or read what a job was given. The umask is left alone: sandboxes inherit it. */
#include "src/datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int datadir_prepare(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "data folder %s: mkdir: %s", path, strerror(errno));
        return -1;
    }
    /* The folder's own inode, through a descriptor: what is checked is what was opened. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOTDIR)
            snprintf(err, errlen, "data folder %s: not a folder", path);
        else
            snprintf(err, errlen, "data folder %s: open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = fstat(fd, &st);
    int saved = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        snprintf(err, errlen, "data folder %s: fstat: %s", path, strerror(saved));
        return -1;
    }
    uid_t me = geteuid();
    unsigned mode = (unsigned)(st.st_mode & 07777);
    if (st.st_uid != me) {
        snprintf(err, errlen,
                 "data folder %s is owned by uid %u, not by uid %u that executord runs as: "
                 "refusing to start (chown it to uid %u, mode 0700)",
                 path, (unsigned)st.st_uid, (unsigned)me, (unsigned)me);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        const char *who = (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "its group and others"
                          : (st.st_mode & S_IWGRP)                        ? "its group"
                                                                          : "others";
        snprintf(err, errlen,
                 "data folder %s is writable by %s (mode %04o): refusing to start "
                 "(chmod 0700 it)",
                 path, who, mode);
        return -1;
    }
    return 0;
}
