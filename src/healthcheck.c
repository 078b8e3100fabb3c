/* The --healthcheck mode (see healthcheck.h): one HTTP/1.0 GET of /readyz on a plain
 * socket with a deadline, the status line parsed, the answer's reason reduced to one
 * line. Nothing of the service is started: no store, no backends, no threads. */
#include "src/healthcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc;
    }
}

/* Connects to one address with the deadline; returns the fd or -1 (reason in why). */
static int connect_one(const struct addrinfo *ai, int64_t deadline, char *why, size_t whylen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(why, whylen, "connect: %s", strerror(errno));
            close(fd);
            return -1;
        }
        int rc = wait_fd(fd, POLLOUT, deadline);
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (rc <= 0) {
            snprintf(why, whylen, "connect: %s", rc == 0 ? "timed out" : strerror(errno));
            close(fd);
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            snprintf(why, whylen, "connect: %s", strerror(soerr ? soerr : errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline, char *why, size_t whylen)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc <= 0) {
                snprintf(why, whylen, "send: %s", rc == 0 ? "timed out" : strerror(errno));
                return -1;
            }
            continue;
        }
        if (n < 0) {
            snprintf(why, whylen, "send: %s", strerror(errno));
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until EOF (HTTP/1.0 closes), the buffer is full or the deadline passes. */
static ssize_t recv_all(int fd, char *buf, size_t cap, int64_t deadline, char *why, size_t whylen)
{
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n == 0)
            break;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            int rc = wait_fd(fd, POLLIN, deadline);
            if (rc <= 0) {
                snprintf(why, whylen, "reading the answer: %s", rc == 0 ? "timed out" : strerror(errno));
                return -1;
            }
            continue;
        }
        if (n < 0) {
            snprintf(why, whylen, "recv: %s", strerror(errno));
            return -1;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

/* The body flattened to one printable line of at most ~300 bytes. */
static void one_line(const char *body, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; body[i] && j + 4 < outlen && j < 300; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[j++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    if (body[0] && j < strlen(body) && j + 4 < outlen) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

int healthcheck_run(const char *host, int port, int timeout_ms)
{
    char why[512] = "";
    /* The service listens on a wildcard in a container; this check runs in the same
     * network namespace, where loopback reaches it. */
    const char *target = host;
    if (strcmp(host, "0.0.0.0") == 0 || host[0] == '\0')
        target = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        target = "::1";
    if (port <= 0) {
        fprintf(stderr, "not ready: cannot check %s:%d (the listen port must be set, not 0)\n", target, port);
        return 1;
    }
    int64_t deadline = now_ms() + timeout_ms;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(target, portstr, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "not ready: resolving %s: %s\n", target, gai_strerror(gai));
        return 1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, deadline, why, sizeof why);
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "not ready: %s:%d: %s\n", target, port, why);
        return 1;
    }
    char req[600];
    bool v6 = strchr(target, ':') != NULL;
    snprintf(req, sizeof req, "GET /readyz HTTP/1.0\r\nHost: %s%s%s:%d\r\nUser-Agent: executord-healthcheck\r\n\r\n",
             v6 ? "[" : "", target, v6 ? "]" : "", port);
    static char answer[65536];
    ssize_t n = -1;
    if (send_all(fd, req, strlen(req), deadline, why, sizeof why) == 0)
        n = recv_all(fd, answer, sizeof answer, deadline, why, sizeof why);
    if (close(fd) != 0 && n >= 0)
        snprintf(why, sizeof why, "close: %s", strerror(errno));
    if (n < 0) {
        fprintf(stderr, "not ready: %s:%d: %s\n", target, port, why);
        return 1;
    }
    int major, minor, status;
    if (sscanf(answer, "HTTP/%d.%d %3d", &major, &minor, &status) != 3) {
        char line[400];
        one_line(answer, line, sizeof line);
        fprintf(stderr, "not ready: %s:%d answered something other than HTTP: %s\n", target, port, line);
        return 1;
    }
    const char *body = strstr(answer, "\r\n\r\n");
    char line[400];
    one_line(body ? body + 4 : "", line, sizeof line);
    if (status != 200) {
        fprintf(stderr, "not ready: GET /readyz on %s:%d answered %d: %s\n", target, port, status, line);
        return 1;
    }
    printf("ready: GET /readyz on %s:%d answered 200\n", target, port);
    return 0;
}
