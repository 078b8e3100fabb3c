/* A job's packages mounted into its sandbox (see pkgmount.h). The trees are cloned and
 * their flags set in the service, where the host paths resolve; only the final
 * move_mount needs the sandbox's mount namespace, which a multithreaded process can
 * enter only from a thread that stopped sharing its filesystem context: a thread of its
 * own, which ends right after, so no worker ever lives in a sandbox's namespace. */
#include "sandbox/pkgmount.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { MAX_TREES = 2 };

typedef struct tree {
    int fd;             /* detached mount (open_tree), -1 = none */
    const char *target; /* inside the sandbox: SANDBOX_DEPS_PATH, SANDBOX_WHEELS_PATH */
} tree;

bool pkgmount_wanted(const sandbox_packages *p)
{
    return p && ((p->dir && *p->dir) || (p->wheels_dir && *p->wheels_dir));
}

const char *pkgmount_runner_path(const sandbox_packages *p, bool sandboxed)
{
    if (!p || !p->dir || !*p->dir || p->writable)
        return NULL;
    return sandboxed ? SANDBOX_DEPS_PATH : p->dir;
}

/* A detached copy of the host folder dir (and what is mounted below it) with attrs set
 * on the whole copy and no propagation in or out: a peer of a shared host mount would
 * otherwise see the host's later mounts, and the host the sandbox's. */
static int clone_tree(const char *dir, uint64_t attrs, int *fd, char *err, size_t errlen)
{
    *fd = (int)syscall(SYS_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (*fd < 0) {
        snprintf(err, errlen, "packages: open_tree %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    errno = 0;
    if (fstat(*fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "packages: %s: %s", dir, errno ? strerror(errno) : "not a folder");
        return -1;
    }
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = attrs;
    attr.propagation = MS_PRIVATE;
    if (syscall(SYS_mount_setattr, *fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) {
        snprintf(err, errlen, "packages: mount_setattr %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

typedef struct attach_work {
    int ns_fd;          /* a pidfd of the sandbox's init, or its mount namespace */
    tree *trees;
    int count;
    char *err;
    size_t errlen;
    int rc;
} attach_work;

/* Moves one tree onto its mount point, which must be a folder of the sandbox's own
 * (opened without following a symlink, in the namespace this thread entered). */
static int move_in(const tree *t, char *err, size_t errlen)
{
    int dfd = open(t->target, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "packages: mount point %s: %s", t->target, strerror(errno));
        return -1;
    }
    int rc = (int)syscall(SYS_move_mount, t->fd, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    if (rc != 0)
        snprintf(err, errlen, "packages: move_mount onto %s: %s", t->target, strerror(errno));
    close(dfd);
    return rc;
}

static void *attach_main(void *arg)
{
    attach_work *w = arg;
    w->rc = -1;
    /* setns(CLONE_NEWNS) refuses a thread sharing its root and cwd with others. */
    if (unshare(CLONE_FS) != 0) {
        snprintf(w->err, w->errlen, "packages: unshare CLONE_FS: %s", strerror(errno));
        return NULL;
    }
    /* Root and cwd become the sandbox's root. */
    if (setns(w->ns_fd, CLONE_NEWNS) != 0) {
        snprintf(w->err, w->errlen, "packages: setns into the sandbox's mount namespace: %s", strerror(errno));
        return NULL;
    }
    for (int i = 0; i < w->count; i++)
        if (w->trees[i].fd >= 0 && move_in(&w->trees[i], w->err, w->errlen) != 0)
            return NULL;
    w->rc = 0;
    return NULL;
}

static int open_mnt_ns(pid_t pid, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        snprintf(err, errlen, "packages: open %s: %s", path, strerror(errno));
    return fd;
}

int pkgmount_attach(const sandbox_packages *p, pid_t pid, int pidfd, char *err, size_t errlen)
{
    if (!pkgmount_wanted(p))
        return 0;
    tree trees[MAX_TREES] = {{-1, SANDBOX_DEPS_PATH}, {-1, SANDBOX_WHEELS_PATH}};
    int rc = -1;
    int ns_fd = -1;
    const uint64_t ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    /* /deps stays executable: packages bring compiled extension modules (mmap PROT_EXEC).
     * The wheels are only read. */
    if (p->dir && *p->dir &&
        clone_tree(p->dir, p->writable ? ro & ~(uint64_t)MOUNT_ATTR_RDONLY : ro, &trees[0].fd, err, errlen) != 0)
        goto out;
    if (p->wheels_dir && *p->wheels_dir &&
        clone_tree(p->wheels_dir, ro | MOUNT_ATTR_NOEXEC, &trees[1].fd, err, errlen) != 0)
        goto out;
    ns_fd = pidfd >= 0 ? pidfd : open_mnt_ns(pid, err, errlen);
    if (ns_fd < 0)
        goto out;
    attach_work w = {.ns_fd = ns_fd, .trees = trees, .count = MAX_TREES, .err = err, .errlen = errlen, .rc = -1};
    pthread_t th;
    int e = pthread_create(&th, NULL, attach_main, &w);
    if (e != 0) {
        snprintf(err, errlen, "packages: pthread_create: %s", strerror(e));
        goto out;
    }
    if ((e = pthread_join(th, NULL)) != 0) {
        snprintf(err, errlen, "packages: pthread_join: %s", strerror(e));
        goto out;
    }
    rc = w.rc;
out:
    if (ns_fd >= 0 && ns_fd != pidfd)
        close(ns_fd);
    /* A tree that was not moved in is unmounted when its last fd closes. */
    for (int i = 0; i < MAX_TREES; i++)
        if (trees[i].fd >= 0)
            close(trees[i].fd);
    return rc;
}
