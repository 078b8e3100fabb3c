/* Resolving the sandboxed backends' runtime (see runtime.h): one check of the root and
 * the interpreter for ephemeral and pool alike, so both refuse the same configurations. */
#include "sandbox/runtime.h"

#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The folders a sandbox's root mounts from the runtime (sandbox/mnt.c): an interpreter
 * elsewhere would not exist inside the sandbox. */
static bool inside_sandbox_runtime(const char *path)
{
    static const char *const prefixes[] = {"/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(path, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static int drop_host_groups(char *why, size_t whylen)
{
    int n = getgroups(0, NULL);
    if (n < 0) {
        snprintf(why, whylen, "getgroups: %s", strerror(errno));
        return -1;
    }
    if (n > 0 && setgroups(0, NULL) != 0) {
        snprintf(why, whylen, "setgroups(0) to keep host groups out of sandboxes: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int sandbox_runtime_resolve(const sandbox_config *cfg, sandbox_runtime *rt, char *why, size_t whylen)
{
    if (!cfg) {
        snprintf(why, whylen, "no configuration");
        return -1;
    }
    const char *rootfs = cfg->sandbox.rootfs ? cfg->sandbox.rootfs : "";
    const char *python = cfg->python_path ? cfg->python_path : "/usr/bin/python3";
    if ((size_t)snprintf(rt->rootfs, sizeof rt->rootfs, "%s", rootfs) >= sizeof rt->rootfs ||
        (size_t)snprintf(rt->python, sizeof rt->python, "%s", python) >= sizeof rt->python) {
        snprintf(why, whylen, "sandbox rootfs or python path too long");
        return -1;
    }
    size_t rl = strlen(rt->rootfs);
    while (rl > 0 && rt->rootfs[rl - 1] == '/')
        rt->rootfs[--rl] = '\0';
    if (!inside_sandbox_runtime(rt->python)) {
        snprintf(why, whylen, "python %s is outside the sandbox's runtime (/usr, /bin, /sbin, /lib, /lib64)",
                 rt->python);
        return -1;
    }
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s%s", rt->rootfs, rt->python);
    if (access(path, X_OK) != 0) {
        snprintf(why, whylen, "python %s: %s", path, strerror(errno));
        return -1;
    }
    return drop_host_groups(why, whylen);
}
