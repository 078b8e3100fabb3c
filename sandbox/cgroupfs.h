/* The cgroup filesystem's files (see cgroupfs.c): the helpers every cgroup user shares,
 * with no knowledge of jobs, versions or executord's own cgroups. */
#ifndef EXECUTORD_SANDBOX_CGROUPFS_H
#define EXECUTORD_SANDBOX_CGROUPFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* snprintf that is not a compiler builtin: paths here are bounded by PATH_MAX and
 * a truncated one fails at open/mkdir; returns -1 when the text did not fit. */
int cg_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes value to dir/file; fake_fs (unit tests: a plain folder) creates the file. */
int cg_write(bool fake_fs, const char *dir, const char *file, const char *value, char *err,
             size_t errlen);
int cg_read(const char *dir, const char *file, char *buf, size_t len);
/* Value of "key N" in a flat-keyed file, or -1. */
int64_t cg_read_key(const char *dir, const char *file, const char *key);
/* Whole-file integer, or -1. */
int64_t cg_read_int(const char *dir, const char *file);
bool cg_exists(const char *dir, const char *file);
/* Our own cgroup path for a v1 controller ("memory") or v2 (""), from /proc/self/cgroup
 * unless override is set. Returns 0 or -1 + why. */
int cg_self_path(const char *controller, const char *override, char *buf, size_t len, char *why,
                 size_t whylen);
/* mkdir that tolerates an existing folder (fake_fs or a co-mounted hierarchy). */
int cg_mkdir(const char *dir, char *err, size_t errlen);
/* SIGKILLs every pid listed in dir/cgroup.procs; returns how many were listed. */
int cg_kill_listed(const char *dir);
/* Waits (bounded) until dir/cgroup.procs is empty, then removes dir. */
int cg_remove(bool fake_fs, const char *dir, char *err, size_t errlen);

#endif
