/* Loading the sandbox's system-call filter (see seccomp.h): no_new_privs, then the BPF
 * program the service compiled with libseccomp. Apart from seccomp.c so the warm library
 * (warm.c, libc only) carries this step without libseccomp. */
#include "sandbox/seccomp.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>

int sandbox_seccomp_apply(const struct sock_fprog *prog, const char **step)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        *step = "prctl(PR_SET_NO_NEW_PRIVS)";
        return -1;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) != 0) {
        *step = "prctl(PR_SET_SECCOMP)";
        return -1;
    }
    return 0;
}
