/* Spawning the service's helper processes (see helper_proc.h). */
#include "sandbox/helper_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *const helper_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

static int set_attributes(posix_spawnattr_t *at)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    int e = posix_spawnattr_setsigmask(at, &none);
    if (e == 0)
        e = posix_spawnattr_setsigdefault(at, &all);
    if (e == 0)
        e = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    return e;
}

int helper_spawn(const char *path, char *const argv[], const helper_fds *fds, pid_t *pid)
{
    if (fds->n_extra < 0 || fds->n_extra > HELPER_MAX_FDS)
        return EINVAL;
    int first_free = 3 + fds->n_extra;
    /* The sources above every target first, so placing one never overwrites another. */
    int src[2 + HELPER_MAX_FDS];
    const int from[2 + HELPER_MAX_FDS] = {fds->in, fds->out, fds->extra[0], fds->extra[1], fds->extra[2],
                                          fds->extra[3]};
    int n = 2 + fds->n_extra, e = 0;
    for (int i = 0; i < n; i++)
        src[i] = -1;
    for (int i = 0; i < n && e == 0; i++)
        if (from[i] >= 0 && (src[i] = fcntl(from[i], F_DUPFD_CLOEXEC, first_free)) < 0)
            e = errno;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    bool fa_ok = false, at_ok = false;
    if (e == 0 && (e = posix_spawn_file_actions_init(&fa)) == 0)
        fa_ok = true;
    if (e == 0 && (e = posix_spawnattr_init(&at)) == 0)
        at_ok = true;
    if (e == 0)
        e = set_attributes(&at);
    if (e == 0)
        e = src[0] >= 0 ? posix_spawn_file_actions_adddup2(&fa, src[0], 0)
                        : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    for (int k = 1; k <= 2 && e == 0; k++)
        e = src[1] >= 0 ? posix_spawn_file_actions_adddup2(&fa, src[1], k)
                        : posix_spawn_file_actions_addopen(&fa, k, "/dev/null", O_WRONLY, 0);
    for (int i = 0; i < fds->n_extra && e == 0; i++)
        e = posix_spawn_file_actions_adddup2(&fa, src[2 + i], 3 + i);
    /* Nothing else of the service (other jobs' pipes, the database) reaches it. */
    if (e == 0)
        e = posix_spawn_file_actions_addclosefrom_np(&fa, first_free);
    if (e == 0)
        e = posix_spawn(pid, path, &fa, &at, argv, helper_env);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (at_ok)
        posix_spawnattr_destroy(&at);
    for (int i = 0; i < n; i++)
        if (src[i] >= 0)
            close(src[i]);
    return e;
}

void helper_wait(pid_t pid, int *status)
{
    while (waitpid(pid, status, __WALL) < 0 && errno == EINTR) {
    }
}

void helper_last_line(int fd, char *buf, size_t len)
{
    char text[4096];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof text - 1 ? size - (off_t)(sizeof text - 1) : 0;
    ssize_t n = pread(fd, text, sizeof text - 1, from);
    if (n <= 0) {
        snprintf(buf, len, "(it printed nothing)");
        return;
    }
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    char *line = strrchr(text, '\n');
    snprintf(buf, len, "%.*s", (int)(len > 1 ? len - 1 : 0), line ? line + 1 : text);
}
