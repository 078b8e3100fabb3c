/* Helper processes of the service (slirp4netns and its version query), spawned with
 * posix_spawn: default signal handling and an empty mask (the service's threads block
 * signals), chosen fds placed at 3.., nothing else of the service inherited. */
#ifndef EXECUTORD_SANDBOX_HELPER_PROC_H
#define EXECUTORD_SANDBOX_HELPER_PROC_H

#include <stddef.h>
#include <sys/types.h>

enum { HELPER_MAX_FDS = 4 };

typedef struct helper_fds {
    int in;                   /* becomes fd 0; -1 = /dev/null */
    int out;                  /* becomes fds 1 and 2 (a memfd, say); -1 = /dev/null */
    int extra[HELPER_MAX_FDS]; /* become fds 3, 4, ...: n_extra of them */
    int n_extra;
} helper_fds;

/* Starts path with argv and a minimal environment. Returns 0 with *pid, or an errno. */
int helper_spawn(const char *path, char *const argv[], const helper_fds *fds, pid_t *pid);

/* Waits for pid (our child), retrying on EINTR; *status as waitpid's. */
void helper_wait(pid_t pid, int *status);

/* The last non-empty line a helper wrote to its output memfd, for error messages. */
void helper_last_line(int fd, char *buf, size_t len);

#endif
