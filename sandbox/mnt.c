/* Assembly of the job's root filesystem (see mnt.h). The service turns the options into
 * a list of small operations; the child replays them. Keeping every decision (lstat,
 * readlink, string formatting, file contents) on the service side is what lets the
 * child stay async-signal-safe. */
#include "sandbox/mnt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/net.h"
#include "sandbox/sandbox.h"

enum mnt_kind { OP_MKDIR, OP_MOUNT, OP_SETATTR, OP_SYMLINK, OP_WRITE, OP_TOUCH, OP_PIVOT, OP_CHDIR, OP_SETIDS };

struct mnt_op {
    enum mnt_kind kind;
    const char *step;        /* "mount proc on /proc" */
    const char *src, *dst, *fstype, *data, *alt_data;
    unsigned long flags;     /* mount(2) flags */
    unsigned setattr_flags;  /* AT_RECURSIVE or 0 */
    uint64_t attr_set;       /* MOUNT_ATTR_* */
    const char *content;     /* OP_WRITE */
    size_t len;
    mode_t mode;
    unsigned uid, gid;       /* OP_SETIDS */
};

/* ---- plan building (service side) ---- */

static char *keep(mnt_plan *p, char *s)
{
    if (!s)
        return NULL;
    if (p->nstrings == p->capstrings) {
        size_t cap = p->capstrings ? p->capstrings * 2 : 64;
        char **n = realloc(p->strings, cap * sizeof *n);
        if (!n) {
            free(s);
            return NULL;
        }
        p->strings = n;
        p->capstrings = cap;
    }
    p->strings[p->nstrings++] = s;
    return s;
}

static char *fmt(mnt_plan *p, const char *f, ...) __attribute__((format(printf, 2, 3)));
static char *fmt(mnt_plan *p, const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    return n < 0 ? NULL : keep(p, s);
}

static mnt_op *add(mnt_plan *p, enum mnt_kind kind, const char *step)
{
    if (!step)
        return NULL;
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        mnt_op *n = realloc(p->ops, cap * sizeof *n);
        if (!n)
            return NULL;
        p->ops = n;
        p->cap = cap;
    }
    mnt_op *op = &p->ops[p->count++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->step = step;
    return op;
}

/* Each helper returns 0 or -1 (allocation failure); the inside path is relative to the
 * new root ("/usr"), dst becomes base + inside. */
static int op_mkdir(mnt_plan *p, const char *base, const char *inside, mode_t mode)
{
    mnt_op *op = add(p, OP_MKDIR, fmt(p, "mkdir %s", inside));
    if (!op || !(op->dst = fmt(p, "%s%s", base, inside)))
        return -1;
    op->mode = mode;
    return 0;
}

static int op_tmpfs(mnt_plan *p, const char *base, const char *inside, unsigned long flags,
                    const char *data)
{
    mnt_op *op = add(p, OP_MOUNT, fmt(p, "mount tmpfs on %s", inside));
    if (!op || !(op->dst = fmt(p, "%s%s", base, inside)))
        return -1;
    op->src = "tmpfs";
    op->fstype = "tmpfs";
    op->flags = flags;
    op->data = data;
    return data ? 0 : -1;
}

static int op_setattr(mnt_plan *p, const char *dst, const char *inside, uint64_t attrs, bool recursive)
{
    mnt_op *op = add(p, OP_SETATTR, fmt(p, "mount_setattr %s%s", inside, recursive ? " (recursive)" : ""));
    if (!op)
        return -1;
    op->dst = dst;
    op->attr_set = attrs;
    op->setattr_flags = recursive ? AT_RECURSIVE : 0;
    return 0;
}

/* A read-only, nosuid, nodev recursive bind of src at base+inside. is_dir decides
 * whether the mount point is a folder or an empty file. */
static int op_bind_ro(mnt_plan *p, const char *base, const char *src, const char *inside, bool is_dir)
{
    char *dst = fmt(p, "%s%s", base, inside);
    if (!dst)
        return -1;
    mnt_op *op = add(p, is_dir ? OP_MKDIR : OP_TOUCH, fmt(p, "create mount point %s", inside));
    if (!op)
        return -1;
    op->dst = dst;
    op->mode = is_dir ? 0755 : 0644;
    op = add(p, OP_MOUNT, fmt(p, "bind %s on %s", src, inside));
    if (!op || !(op->src = keep(p, strdup(src))))
        return -1;
    op->dst = dst;
    op->flags = MS_BIND | MS_REC;
    return op_setattr(p, dst, inside, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true);
}

static int op_symlink(mnt_plan *p, const char *base, const char *target, const char *inside)
{
    mnt_op *op = add(p, OP_SYMLINK, fmt(p, "symlink %s -> %s", inside, target));
    if (!op || !(op->src = keep(p, strdup(target))) || !(op->dst = fmt(p, "%s%s", base, inside)))
        return -1;
    return 0;
}

static int op_write(mnt_plan *p, const char *base, const char *inside, const char *content)
{
    mnt_op *op = add(p, OP_WRITE, fmt(p, "write %s", inside));
    if (!op || !(op->dst = fmt(p, "%s%s", base, inside)) || !(op->content = keep(p, strdup(content))))
        return -1;
    op->len = strlen(content);
    op->mode = 0644;
    return 0;
}

/* Mirrors rootfs+inside into the new root: a symlink stays a symlink (the /bin ->
 * usr/bin of merged-/usr systems), a folder or file becomes a read-only bind, a missing
 * entry is skipped when optional. */
static int mirror(mnt_plan *p, const mnt_options *o, const char *base, const char *inside,
                  bool optional, char *err, size_t errlen)
{
    char src[PATH_MAX];
    int n = snprintf(src, sizeof src, "%s%s", o->rootfs && *o->rootfs ? o->rootfs : "", inside);
    if (n < 0 || (size_t)n >= sizeof src) {
        snprintf(err, errlen, "rootfs path %s: too long", inside);
        return -1;
    }
    struct stat st;
    if (lstat(src, &st) != 0) {
        if (errno == ENOENT && optional)
            return 0;
        snprintf(err, errlen, "lstat %s: %s", src, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t len = readlink(src, target, sizeof target - 1);
        if (len < 0) {
            snprintf(err, errlen, "readlink %s: %s", src, strerror(errno));
            return -1;
        }
        target[len] = '\0';
        if (op_symlink(p, base, target, inside) < 0)
            goto oom;
        return 0;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: neither folder, file nor symlink", src);
        return -1;
    }
    if (op_bind_ro(p, base, src, inside, S_ISDIR(st.st_mode)) < 0)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "build mount plan: %s", strerror(ENOMEM));
    return -1;
}

static const char *const runtime_dirs[] = {"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"};
static const char *const dev_nodes[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"};

static int build_etc(mnt_plan *p, const mnt_options *o, const char *base, char *err, size_t errlen)
{
    char passwd[256], group[128];
    snprintf(passwd, sizeof passwd,
             "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
             "sandbox:x:%u:%u:sandbox:/work:/bin/sh\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             o->inside_uid, o->inside_gid);
    snprintf(group, sizeof group, "root:x:0:\nsandbox:x:%u:\nnogroup:x:65534:\n", o->inside_gid);
    if (op_mkdir(p, base, "/etc", 0755) < 0 || op_write(p, base, "/etc/passwd", passwd) < 0 ||
        op_write(p, base, "/etc/group", group) < 0 ||
        op_write(p, base, "/etc/hostname", "sandbox\n") < 0 ||
        op_write(p, base, "/etc/hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n") < 0 ||
        op_write(p, base, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                                                "networks: files\nprotocols: files\nservices: files\n") < 0) {
        snprintf(err, errlen, "build mount plan: %s", strerror(ENOMEM));
        return -1;
    }
    /* Generated, never the host's: a network-enabled job resolves through the user-space
     * stack's forwarder (net.h; egress.h lets it through: blocked address it may use, port 53
     * only); without network the name simply does not resolve. */
    if (op_write(p, base, "/etc/resolv.conf", "nameserver " SANDBOX_NET_DNS_ADDRESS "\n") < 0) {
        snprintf(err, errlen, "build mount plan: %s", strerror(ENOMEM));
        return -1;
    }
    /* Public, non-secret runtime data of /etc: loader cache, CA certificates, time zone,
     * Debian's alternatives symlinks (so /usr/bin/awk and friends resolve). */
    if (mirror(p, o, base, "/etc/ld.so.cache", true, err, errlen) < 0 ||
        op_mkdir(p, base, "/etc/ssl", 0755) < 0 ||
        mirror(p, o, base, "/etc/ssl/certs", true, err, errlen) < 0 ||
        mirror(p, o, base, "/etc/localtime", true, err, errlen) < 0 ||
        mirror(p, o, base, "/etc/alternatives", true, err, errlen) < 0)
        return -1;
    return 0;
}

static int build_dev(mnt_plan *p, const char *base, const mnt_options *o, char *err, size_t errlen)
{
    if (op_mkdir(p, base, "/dev", 0755) < 0 ||
        op_tmpfs(p, base, "/dev", MS_NOSUID | MS_NOEXEC,
                 fmt(p, "size=64k,nr_inodes=64,mode=0755,uid=%u,gid=%u", o->setup_uid, o->setup_gid)) < 0)
        goto oom;
    for (size_t i = 0; i < sizeof dev_nodes / sizeof dev_nodes[0]; i++) {
        /* Device nodes cannot be created in a user namespace; bind the host's. The dev
         * tmpfs stays without nodev so these binds work; they carry their own flags. */
        char *dst = fmt(p, "%s%s", base, dev_nodes[i]);
        mnt_op *op = add(p, OP_TOUCH, fmt(p, "create %s", dev_nodes[i]));
        if (!dst || !op)
            goto oom;
        op->dst = dst;
        op->mode = 0666;
        op = add(p, OP_MOUNT, fmt(p, "bind %s", dev_nodes[i]));
        if (!op)
            goto oom;
        op->src = dev_nodes[i];
        op->dst = dst;
        op->flags = MS_BIND;
        if (op_setattr(p, dst, dev_nodes[i], MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false) < 0)
            goto oom;
    }
    if (op_symlink(p, base, "/proc/self/fd", "/dev/fd") < 0 ||
        op_symlink(p, base, "/proc/self/fd/0", "/dev/stdin") < 0 ||
        op_symlink(p, base, "/proc/self/fd/1", "/dev/stdout") < 0 ||
        op_symlink(p, base, "/proc/self/fd/2", "/dev/stderr") < 0 ||
        op_mkdir(p, base, "/dev/shm", 01777) < 0 ||
        /* Nothing more gets created in /dev: make its tmpfs read-only (the binds and
         * /dev/shm, mounted later by add_scratch_mounts, keep their own flags). */
        op_setattr(p, fmt(p, "%s/dev", base), "/dev", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false) < 0)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "build mount plan: %s", strerror(ENOMEM));
    return -1;
}

/* The mounts every sandbox gets fresh, also a warm one on its zygote's root: /proc of
 * its PID namespace, size-capped tmpfs /tmp, /work (or the bound job folder) and
 * /dev/shm. The mount points exist already. */
static int add_scratch_mounts(mnt_plan *p, const mnt_options *o, const char *base)
{
    /* subset=pid leaves out /proc/sys, /proc/kcore and friends, hidepid=invisible hides
     * processes of other uids (the sandbox's init). Older kernels without subset= get
     * hidepid alone. */
    mnt_op *op = add(p, OP_MOUNT, "mount proc on /proc");
    if (!op || !(op->dst = fmt(p, "%s/proc", base)))
        return -1;
    op->src = "proc";
    op->fstype = "proc";
    op->flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (o->proc_read_only ? MS_RDONLY : 0);
    op->data = "hidepid=invisible,subset=pid";
    op->alt_data = "hidepid=2";
    if (op_tmpfs(p, base, "/tmp", MS_NOSUID | MS_NODEV,
                 fmt(p, "size=%llu,nr_inodes=%llu,mode=1777,uid=%u,gid=%u", (unsigned long long)o->tmp_bytes,
                     (unsigned long long)o->tmp_inodes, o->setup_uid, o->setup_gid)) < 0)
        return -1;
    if (o->work_source) {
        if (!(op = add(p, OP_MOUNT, "bind the job folder on /work")) ||
            !(op->src = keep(p, strdup(o->work_source))) || !(op->dst = fmt(p, "%s/work", base)))
            return -1;
        op->flags = MS_BIND;
        if (op_setattr(p, op->dst, "/work", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false) < 0)
            return -1;
    } else if (op_tmpfs(p, base, "/work", MS_NOSUID | MS_NODEV,
                        fmt(p, "size=%llu,nr_inodes=%llu,mode=0700,uid=%u,gid=%u",
                            (unsigned long long)o->work_bytes, (unsigned long long)o->tmp_inodes,
                            o->inside_uid, o->inside_gid)) < 0) {
        return -1;
    }
    return op_tmpfs(p, base, "/dev/shm", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    fmt(p, "size=%llu,nr_inodes=%llu,mode=1777,uid=%u,gid=%u", (unsigned long long)o->shm_bytes,
                        (unsigned long long)o->tmp_inodes, o->setup_uid, o->setup_gid));
}

/* "become root of the user namespace" (see mnt_options.switch_ids). */
static int op_setids(mnt_plan *p, const mnt_options *o)
{
    mnt_op *op = add(p, OP_SETIDS, "become root of the user namespace");
    if (!op)
        return -1;
    op->uid = o->setup_uid;
    op->gid = o->setup_gid;
    return 0;
}

static int build(mnt_plan *p, const mnt_options *o, char *err, size_t errlen)
{
    const char *base = o->base;
    mnt_op *op;
    /* Nothing mounted from here on may propagate back to the service's namespace. */
    if (!(op = add(p, OP_MOUNT, "make / a recursive slave mount")))
        goto oom;
    op->dst = "/";
    op->flags = MS_REC | MS_SLAVE;
    /* Owned by the namespace's root (uid= is read in the namespace's terms): the
     * unprivileged root fills it after the switch below. */
    if (op_tmpfs(p, base, "", MS_NOSUID | MS_NODEV,
                 fmt(p, "size=1m,nr_inodes=1024,mode=0755,uid=%u,gid=%u", o->setup_uid, o->setup_gid)) < 0)
        goto oom;
    p->ops[p->count - 1].step = "mount tmpfs on the new root";
    /* From here on every path is relative to the new root: the folder holding it may
     * not be searchable once we are the namespace's unprivileged root. */
    if (!(op = add(p, OP_CHDIR, "chdir into the new root")))
        goto oom;
    op->dst = o->base;
    if (o->switch_ids && op_setids(p, o) < 0)
        goto oom;
    base = ".";
    for (size_t i = 0; i < sizeof runtime_dirs / sizeof runtime_dirs[0]; i++)
        if (mirror(p, o, base, runtime_dirs[i], strcmp(runtime_dirs[i], "/usr") != 0, err, errlen) < 0)
            return -1;
    if (build_etc(p, o, base, err, errlen) < 0)
        return -1;
    if (op_mkdir(p, base, "/proc", 0555) < 0)
        goto oom;
    if (build_dev(p, base, o, err, errlen) < 0)
        return -1;
    /* Empty mount points of a job's packages (pkgmount.h), in every root, so a warm
     * sandbox on its zygote's root has them too. */
    if (op_mkdir(p, base, "/tmp", 01777) < 0 || op_mkdir(p, base, "/work", 0755) < 0 ||
        op_mkdir(p, base, SANDBOX_DEPS_PATH, 0755) < 0 || op_mkdir(p, base, SANDBOX_WHEELS_PATH, 0755) < 0 ||
        add_scratch_mounts(p, o, base) < 0)
        goto oom;
    if (!(op = add(p, OP_PIVOT, "pivot_root into the new root")))
        goto oom;
    op->dst = ".";
    /* Last: the root tmpfs itself (mount points, /etc) becomes read-only. */
    if (op_setattr(p, "/", "/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false) < 0)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "build mount plan: %s", strerror(ENOMEM));
    return -1;
}

int sandbox_mnt_plan_build(mnt_plan *p, const mnt_options *o, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!o->base || o->base[0] != '/' || strcmp(o->base, "/") == 0) {
        snprintf(err, errlen, "mount plan: base folder must be an absolute path other than /");
        return -1;
    }
    if (o->rootfs && *o->rootfs && o->rootfs[0] != '/') {
        snprintf(err, errlen, "mount plan: rootfs must be an absolute path");
        return -1;
    }
    if (build(p, o, err, errlen) < 0) {
        sandbox_mnt_plan_free(p);
        return -1;
    }
    return 0;
}

int sandbox_mnt_plan_scratch(mnt_plan *p, const mnt_options *o, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if ((o->switch_ids && op_setids(p, o) < 0) || add_scratch_mounts(p, o, "") < 0) {
        sandbox_mnt_plan_free(p);
        snprintf(err, errlen, "build scratch mount plan: %s", strerror(ENOMEM));
        return -1;
    }
    return 0;
}

void sandbox_mnt_plan_free(mnt_plan *p)
{
    for (size_t i = 0; i < p->nstrings; i++)
        free(p->strings[i]);
    free(p->strings);
    free(p->ops);
    memset(p, 0, sizeof *p);
}

/* ---- replay (child side, async-signal-safe) ---- */

static int do_setattr(const mnt_op *op)
{
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = op->attr_set;
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, op->dst, op->setattr_flags, &attr, sizeof attr);
}

static int do_create(const mnt_op *op, const char *content, size_t len)
{
    int fd = open(op->dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, op->mode);
    if (fd < 0)
        return -1;
    /* The service's umask must not make /etc/passwd & co unreadable to the job. */
    if (fchmod(fd, op->mode) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    while (len > 0) {
        ssize_t n = write(fd, content, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        content += n;
        len -= (size_t)n;
    }
    return close(fd);
}

static int do_pivot(const mnt_op *op)
{
    /* pivot_root(".", "."): the old root ends up stacked under the new one and is then
     * detached, so no path leads back to the host's tree. */
    if (chdir(op->dst) != 0)
        return -1;
    if (syscall(SYS_pivot_root, ".", ".") != 0)
        return -1;
    if (umount2(".", MNT_DETACH) != 0)
        return -1;
    return chdir("/");
}

static int do_op(const mnt_op *op)
{
    switch (op->kind) {
    case OP_MKDIR:
        if (mkdir(op->dst, op->mode) != 0 && errno != EEXIST)
            return -1;
        /* the umask must not trim 1777 */
        return chmod(op->dst, op->mode);
    case OP_MOUNT:
        if (mount(op->src, op->dst, op->fstype, op->flags, op->data) == 0)
            return 0;
        if (op->alt_data && errno == EINVAL)
            return mount(op->src, op->dst, op->fstype, op->flags, op->alt_data);
        return -1;
    case OP_SETATTR:
        return do_setattr(op);
    case OP_SYMLINK:
        return symlink(op->src, op->dst);
    case OP_WRITE:
        return do_create(op, op->content, op->len);
    case OP_TOUCH:
        return do_create(op, "", 0);
    case OP_PIVOT:
        return do_pivot(op);
    case OP_CHDIR:
        return chdir(op->dst);
    case OP_SETIDS:
        if (syscall(SYS_setresgid, op->gid, op->gid, op->gid) != 0)
            return -1;
        if (syscall(SYS_setresuid, op->uid, op->uid, op->uid) != 0)
            return -1;
        /* A change of credentials clears the parent-death signal: re-arm it, or the
         * sandbox (and its whole namespace) would outlive a crashed service. */
        return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    }
    errno = EINVAL;
    return -1;
}

int sandbox_mnt_apply(const mnt_plan *p, const char **step)
{
    for (size_t i = 0; i < p->count; i++) {
        if (do_op(&p->ops[i]) != 0) {
            *step = p->ops[i].step;
            return -1;
        }
    }
    return 0;
}
