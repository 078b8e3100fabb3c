/* The jobs' oom_score_adj (see oom.h): written from the service through /proc/<pid>, read
 * back, every call checked. When the writer holds CAP_SYS_RESOURCE (root on a host) the
 * kernel also makes the value the process's floor, so the job cannot lower it again. */
#include "sandbox/oom.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sandbox_oom_raise(pid_t pid, char *err, size_t errlen)
{
    char path[64], want[16], got[16];
    snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)pid);
    int wlen = snprintf(want, sizeof want, "%d\n", SANDBOX_OOM_SCORE_ADJ);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "oom_score_adj: open %s: %s", path, strerror(errno));
        return -1;
    }
    const char *step = NULL, *why = NULL;
    ssize_t n = write(fd, want, (size_t)wlen);
    if (n != wlen) {
        step = "write";
        why = n < 0 ? strerror(errno) : "short write";
    } else if ((n = pread(fd, got, sizeof got - 1, 0)) < 0) {
        step = "read back";
        why = strerror(errno);
    }
    if (close(fd) != 0 && !step) {
        step = "close";
        why = strerror(errno);
    }
    if (step) {
        snprintf(err, errlen, "oom_score_adj: %s %s: %s", step, path, why);
        return -1;
    }
    got[n] = '\0';
    if (atoi(got) != SANDBOX_OOM_SCORE_ADJ) {
        snprintf(err, errlen, "oom_score_adj: %s reads %.8s after writing %d", path, got, SANDBOX_OOM_SCORE_ADJ);
        return -1;
    }
    return 0;
}
