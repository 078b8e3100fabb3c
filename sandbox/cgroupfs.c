/* The cgroup filesystem's files: reading, writing, creating and removing cgroup folders,
 * our own cgroup's path, killing a folder's members. The bottom of the cgroup code
 * (cgroup.c, cgroup1.c, cgroup2.c build on it); it knows nothing of jobs. */
#include "sandbox/cgroupfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cg_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int cg_write(bool fake_fs, const char *dir, const char *file, const char *value,
             char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (fake_fs ? O_CREAT | O_TRUNC : 0);
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    int saved = errno;
    if (close(fd) != 0 && n == (ssize_t)len) {
        n = -1;
        saved = errno;
    }
    if (n != (ssize_t)len) {
        snprintf(err, errlen, "write %s to %s: %s", value, path, n < 0 ? strerror(saved) : "short write");
        return -1;
    }
    return 0;
}

int cg_read(const char *dir, const char *file, char *buf, size_t len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (int)got;
}

int64_t cg_read_key(const char *dir, const char *file, const char *key)
{
    char buf[8192];
    if (cg_read(dir, file, buf, sizeof buf) < 0)
        return -1;
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return strtoll(line + klen + 1, NULL, 10);
    }
    return -1;
}

int64_t cg_read_int(const char *dir, const char *file)
{
    char buf[64];
    if (cg_read(dir, file, buf, sizeof buf) <= 0 || !isdigit((unsigned char)buf[0]))
        return -1;
    return strtoll(buf, NULL, 10);
}

bool cg_exists(const char *dir, const char *file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

int cg_mkdir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) == 0)
        return 0;
    struct stat st;
    if (errno == EEXIST && lstat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
    return -1;
}

int cg_self_path(const char *controller, const char *override, char *buf, size_t len, char *why,
                 size_t whylen)
{
    if (override) {
        snprintf(buf, len, "%s", strcmp(override, "/") == 0 ? "" : override);
        return 0;
    }
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) {
        snprintf(why, whylen, "open /proc/self/cgroup: %s", strerror(errno));
        return -1;
    }
    char line[4400];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "ID:controller,controller:/path", v2 is "0::/path" */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *list = c1 + 1, *path = c2 + 1;
        bool match = false;
        if (!*controller) {
            match = *list == '\0';
        } else {
            char copy[256];
            snprintf(copy, sizeof copy, "%s", list);
            char *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && !match; t = strtok_r(NULL, ",", &save))
                match = strcmp(t, controller) == 0;
        }
        if (match) {
            snprintf(buf, len, "%s", strcmp(path, "/") == 0 ? "" : path);
            found = 0;
        }
    }
    fclose(f);
    if (found < 0)
        snprintf(why, whylen, "/proc/self/cgroup has no %s%s entry", *controller ? controller : "cgroup v2",
                 *controller ? " controller" : "");
    return found;
}

int cg_kill_listed(const char *dir)
{
    char buf[65536];
    if (cg_read(dir, "cgroup.procs", buf, sizeof buf) < 0)
        return 0;
    int n = 0;
    for (char *p = buf; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
            n++;
        p = end;
        while (*p == '\n' || *p == ' ')
            p++;
    }
    return n;
}

static bool procs_empty(const char *dir)
{
    char buf[64];
    int n = cg_read(dir, "cgroup.procs", buf, sizeof buf);
    return n <= 0;
}

static void unlink_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_type != DT_REG)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0)
            fprintf(stderr, "executord: cgroup: unlink %s/%s: %s\n", dir, e->d_name, strerror(errno));
    }
    closedir(d);
}

int cg_remove(bool fake_fs, const char *dir, char *err, size_t errlen)
{
    /* Processes die asynchronously after SIGKILL; a cgroup with members cannot go. */
    for (int i = 0; i < 200 && !procs_empty(dir); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (fake_fs)
        unlink_files(dir);
    if (rmdir(dir) == 0 || errno == ENOENT)
        return 0;
    snprintf(err, errlen, "rmdir %s: %s", dir, strerror(errno));
    return -1;
}
