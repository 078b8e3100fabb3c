/* Helpers shared by test_cgroup1.c and test_cgroup2.c: a fake cgroupfs is a plain folder
 * made with mkdtemp, with the control files the kernel would show written by hand. */
#ifndef EXECUTORD_TEST_CGROUP_FAKE_H
#define EXECUTORD_TEST_CGROUP_FAKE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fake_root[PATH_MAX];

static void fake_path(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", fake_root, rel);
}

static void fake_mkdir(const char *rel)
{
    char p[PATH_MAX * 2];
    fake_path(p, sizeof p, rel);
    assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
}

static void fake_write(const char *rel, const char *content)
{
    char p[PATH_MAX * 2];
    fake_path(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
}

/* Content of a file below fake_root, or NULL when missing (static buffer). */
static const char *fake_read(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *fake_read(const char *fmt, ...)
{
    static char buf[4096];
    char rel[PATH_MAX], p[PATH_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    fake_path(p, sizeof p, rel);
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static bool fake_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool fake_exists(const char *fmt, ...)
{
    char rel[PATH_MAX], p[PATH_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    fake_path(p, sizeof p, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[PATH_MAX * 2];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (e->d_type == DT_DIR)
                rm_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int fake_setup(void **state)
{
    snprintf(fake_root, sizeof fake_root, "/tmp/executord-test-cgroupfs-XXXXXX");
    return mkdtemp(fake_root) ? 0 : -1;
}

static int fake_teardown(void **state)
{
    sandbox_cgroup_shutdown();
    rm_tree(fake_root);
    return 0;
}

/* A pid that is certainly not running. */
#define DEAD_PID 2147483000

#endif
