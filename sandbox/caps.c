/* Privilege drop for the sandboxed process (see caps.h). Raw system calls throughout:
 * the caller is a clone of a multithreaded service, where glibc's set*id wrappers would
 * try to synchronise threads that do not exist in this process. */
#include "sandbox/caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int failed(const char **step, const char *what)
{
    *step = what;
    return -1;
}

static int drop_bounding_set(void)
{
    /* Walk until the kernel says the capability does not exist: no need to know
     * cap_last_cap of the running kernel. */
    for (unsigned long cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL && cap > 0)
                return 0;
            return -1;
        }
    }
    return 0;
}

int sandbox_caps_drop_to(uid_t uid, gid_t gid, const char **step)
{
    /* Host supplementary groups would keep their host rights on bound files (they show
     * up as the overflow gid inside). setgroups is denied in the namespace, so the only
     * safe state is an empty list inherited from the service. */
    long ngroups = syscall(SYS_getgroups, 0, NULL);
    if (ngroups < 0)
        return failed(step, "getgroups");
    if (ngroups > 0) {
        errno = EPERM;
        return failed(step, "supplementary groups present (service must drop them)");
    }
    if (drop_bounding_set() != 0)
        return failed(step, "prctl(PR_CAPBSET_DROP)");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        return failed(step, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
    if (syscall(SYS_setresgid, gid, gid, gid) != 0)
        return failed(step, "setresgid");
    if (syscall(SYS_setresuid, uid, uid, uid) != 0)
        return failed(step, "setresuid");
    /* Leaving uid 0 already cleared the permitted and effective sets; clear all three
     * explicitly so an inheritable bit cannot survive either. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &hdr, data) != 0)
        return failed(step, "capset");
    /* Fail closed: regaining root must be impossible now. */
    if (syscall(SYS_setresuid, 0, 0, 0) == 0) {
        errno = EPERM;
        return failed(step, "setresuid(0) still succeeds after the drop");
    }
    return 0;
}
