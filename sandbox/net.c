/* Network isolation of a job (see net.h). */
#include "sandbox/net.h"

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int sandbox_net_loopback_up(const char **step)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *step = "socket(AF_INET) for loopback";
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
        *step = "ioctl(SIOCGIFFLAGS lo)";
        goto fail;
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
        *step = "ioctl(SIOCSIFFLAGS lo)";
        goto fail;
    }
    close(fd);
    return 0;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}
