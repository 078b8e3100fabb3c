/* The memory budget (see membudget.h): reading the host's memory and the memory limits of
 * executord's own cgroup (v2 and v1, from its cgroup up to the hierarchy's root, since a
 * limit anywhere above also bounds us), and fitting the jobs' memory limits to the budget. */
#include "src/membudget.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define MIB ((uint64_t)1 << 20)
/* limits.memory_mb's smallest value (config.c): a budget below it runs nothing. */
#define SMALLEST_JOB_MB 16
/* v1 writes "no limit" as the largest page-aligned count (2^63 - a page); nothing real
 * comes near this. */
#define UNLIMITED_FROM (1ULL << 62)

/* The whole (small) file as text; -1 when it cannot be read. */
static int read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n < len - 1) {
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return close(fd) == 0 ? 0 : -1;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Digits only (after leading blanks), as an unsigned number; -1 on anything else. */
static int parse_u64(const char *s, const char **end, uint64_t *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

int membudget_parse_meminfo(const char *text, uint64_t *bytes)
{
    const char *line = text;
    while (line && strncmp(line, "MemTotal:", 9) != 0) {
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    uint64_t kb;
    const char *end;
    if (!line || parse_u64(line + 9, &end, &kb) != 0 || strncmp(end, " kB", 3) != 0 || kb == 0 ||
        kb > UINT64_MAX / 1024)
        return -1;
    *bytes = kb * 1024;
    return 0;
}

int membudget_parse_limit(const char *text, uint64_t *bytes)
{
    size_t len = strcspn(text, "\n");
    if (len == 3 && strncmp(text, "max", 3) == 0) {
        *bytes = UINT64_MAX;
        return 0;
    }
    uint64_t v;
    const char *end;
    if (parse_u64(text, &end, &v) != 0 || (*end && *end != '\n'))
        return -1;
    *bytes = v >= UNLIMITED_FROM ? UINT64_MAX : v;
    return 0;
}

/* Reads `file` in base+path and in each ancestor up to base, keeping the lowest limit.
 * A path that climbs ("..": our cgroup lies outside the namespace's view) is not
 * followed; base itself (the namespace's root, a container's own cgroup) still counts. */
static void walk_up(membudget_memory *m, const char *base, const char *path, const char *file)
{
    char rel[4096];
    snprintf(rel, sizeof rel, "%s", strstr(path, "..") ? "" : path);
    for (;;) {
        size_t n = strlen(rel);
        while (n > 0 && rel[n - 1] == '/')
            rel[--n] = '\0';
        char full[sizeof m->cgroup_file], text[128];
        uint64_t v;
        if (snprintf(full, sizeof full, "%s%s/%s", base, rel, file) < (int)sizeof full &&
            read_text(full, text, sizeof text) == 0 && membudget_parse_limit(text, &v) == 0 &&
            v != UINT64_MAX && (m->cgroup_bytes == 0 || v < m->cgroup_bytes)) {
            m->cgroup_bytes = v;
            snprintf(m->cgroup_file, sizeof m->cgroup_file, "%s", full);
        }
        char *slash = strrchr(rel, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
}

/* One line of /proc/self/cgroup ("ID:controllers:/path"; v2 is "0::/path"). */
static void cgroup_line(membudget_memory *m, const char *root, char *line)
{
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
        return;
    *c2 = '\0';
    const char *list = c1 + 1, *path = c2 + 1;
    char base[4200], probe[4300];
    if (!*list) {
        /* v2: mounted at the root (unified) or at root/unified (hybrid). */
        snprintf(probe, sizeof probe, "%s/cgroup.controllers", root);
        if (exists(probe))
            snprintf(base, sizeof base, "%s", root);
        else if (snprintf(base, sizeof base, "%s/unified", root) < (int)sizeof base &&
                 snprintf(probe, sizeof probe, "%s/cgroup.controllers", base) < (int)sizeof probe &&
                 exists(probe))
            ;
        else
            return;
        walk_up(m, base, path, "memory.max");
        return;
    }
    bool memory = false;
    for (const char *t = list; *t && !memory;) {
        size_t n = strcspn(t, ",");
        memory = n == 6 && strncmp(t, "memory", 6) == 0;
        t += n;
        if (*t == ',')
            t++;
    }
    if (!memory)
        return;
    /* v1: the hierarchy is mounted under its controller list ("memory", or a co-mount). */
    snprintf(base, sizeof base, "%s/%s", root, list);
    if (!is_dir(base))
        snprintf(base, sizeof base, "%s/memory", root);
    walk_up(m, base, path, "memory.limit_in_bytes");
}

static void cgroup_limits(const membudget_files *f, membudget_memory *m)
{
    const char *self = f && f->self_cgroup ? f->self_cgroup : "/proc/self/cgroup";
    const char *root = f && f->cgroup_root ? f->cgroup_root : "/sys/fs/cgroup";
    char text[16384];
    if (read_text(self, text, sizeof text) != 0)
        return; /* no cgroups (or not Linux-like): the host's memory is the bound */
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        cgroup_line(m, root, line);
}

int membudget_probe(const membudget_files *f, membudget_memory *m, char *why, size_t whylen)
{
    memset(m, 0, sizeof *m);
    const char *meminfo = f && f->meminfo ? f->meminfo : "/proc/meminfo";
    char text[16384];
    if (read_text(meminfo, text, sizeof text) == 0 && membudget_parse_meminfo(text, &m->host_bytes) == 0) {
        snprintf(m->host_source, sizeof m->host_source, "MemTotal in %.40s", meminfo);
    } else {
        struct sysinfo si;
        if (sysinfo(&si) != 0) {
            snprintf(why, whylen, "cannot find the host's memory: %s unreadable and sysinfo: %s", meminfo,
                     strerror(errno));
            return -1;
        }
        m->host_bytes = (uint64_t)si.totalram * (si.mem_unit ? si.mem_unit : 1);
        snprintf(m->host_source, sizeof m->host_source, "sysinfo");
    }
    cgroup_limits(f, m);
    return 0;
}

int membudget_apply(config *c, const membudget_memory *m, char *how, size_t howlen, char *warn,
                    size_t warnlen, char *err, size_t errlen)
{
    warn[0] = '\0';
    uint64_t avail = m->host_bytes;
    char found[4500];
    snprintf(found, sizeof found, "%" PRIu64 " MB of host memory, %s", avail / MIB, m->host_source);
    if (m->cgroup_bytes && m->cgroup_bytes < avail) {
        avail = m->cgroup_bytes;
        snprintf(found, sizeof found, "%" PRIu64 " MB, the memory limit of executord's cgroup in %s", avail / MIB,
                 m->cgroup_file);
    }
    char source[4600];
    uint64_t budget = c->memory_budget_mb;
    if (budget == 0) {
        budget = avail / MIB * MEMBUDGET_PERCENT / 100;
        snprintf(source, sizeof source, "%d%% of %s", MEMBUDGET_PERCENT, found);
    } else {
        snprintf(source, sizeof source, "--memory-budget-mb");
        if (budget > avail / MIB)
            snprintf(warn, warnlen,
                     "--memory-budget-mb %" PRIu64 " is above the memory executord has (%s): running jobs "
                     "together may exhaust it, and the kernel's OOM killer then chooses (jobs first: "
                     "their oom_score_adj is raised)",
                     budget, found);
    }
    if (budget < SMALLEST_JOB_MB) {
        snprintf(err, errlen, "the memory budget is %" PRIu64 " MB (%s), below the smallest job (%d MB): %s",
                 budget, source, SMALLEST_JOB_MB,
                 c->memory_budget_mb ? "raise --memory-budget-mb" : "set --memory-budget-mb");
        return -1;
    }
    uint64_t *max = &c->max_limits.memory_mb, *def = &c->default_limits.memory_mb;
    bool max_lowered = false, def_lowered = false;
    if (*max > budget) {
        if (config_given(c, "max-memory-mb")) {
            snprintf(err, errlen,
                     "--max-memory-mb %" PRIu64 " is above the memory budget of %" PRIu64 " MB (%s): a job "
                     "that large could never run; lower --max-memory-mb or raise --memory-budget-mb",
                     *max, budget, source);
            return -1;
        }
        *max = budget;
        max_lowered = true;
    }
    if (*def > *max) {
        if (config_given(c, "default-memory-mb")) {
            snprintf(err, errlen,
                     "--default-memory-mb %" PRIu64 " is above the memory budget of %" PRIu64 " MB (%s): jobs "
                     "that leave limits.memory_mb out could never run; lower --default-memory-mb or raise "
                     "--memory-budget-mb",
                     *def, budget, source);
            return -1;
        }
        *def = *max;
        def_lowered = true;
    }
    c->memory_budget_mb = budget;
    snprintf(how, howlen,
             "memory budget %" PRIu64 " MB (%s): the memory limits of running jobs add up to at most "
             "this; limits.memory_mb default %" PRIu64 "%s, maximum %" PRIu64 "%s",
             budget, source, *def, def_lowered ? " (lowered to the budget)" : "", *max,
             max_lowered ? " (lowered to the budget)" : "");
    return 0;
}
