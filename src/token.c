/* The generated API token: authentication is on from the first start without the operator
 * doing anything. The file is created exclusively (O_EXCL) with mode 0600 and never
 * followed through a symlink; the token itself is never logged. */
#include "src/token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_RANDOM_BYTES 32 /* 256 bits */

static int fail(char *err, size_t errlen, const char *what, const char *path, int e)
{
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    return -1;
}

static int fill_random(unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Written to a temporary name and renamed, so a crash never leaves a half-written token
 * that a later start would accept. */
static int create_token_file(const char *path, char *token, size_t tokenlen, char *err, size_t errlen)
{
    unsigned char raw[TOKEN_RANDOM_BYTES];
    if (fill_random(raw, sizeof raw) != 0)
        return fail(err, errlen, "getrandom for", path, errno ? errno : EIO);
    static const char hex[] = "0123456789abcdef";
    char line[2 * TOKEN_RANDOM_BYTES + 2];
    for (size_t i = 0; i < sizeof raw; i++) {
        line[2 * i] = hex[raw[i] >> 4];
        line[2 * i + 1] = hex[raw[i] & 15];
    }
    line[2 * TOKEN_RANDOM_BYTES] = '\n';
    line[2 * TOKEN_RANDOM_BYTES + 1] = '\0';
    explicit_bzero(raw, sizeof raw);

    char tmp[4300];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.new", path) >= sizeof tmp)
        return fail(err, errlen, "name a temporary file beside", path, ENAMETOOLONG);
    if (unlink(tmp) != 0 && errno != ENOENT)
        return fail(err, errlen, "unlink", tmp, errno);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(err, errlen, "create", tmp, errno);
    if (write_all(fd, line, strlen(line)) != 0 || fsync(fd) != 0) {
        int e = errno ? errno : EIO;
        close(fd);
        unlink(tmp);
        return fail(err, errlen, "write", tmp, e);
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return fail(err, errlen, "close", tmp, e);
    }
    /* link() fails if the name exists: a concurrent first start keeps the other token. */
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return e == EEXIST ? 1 : fail(err, errlen, "link", path, e);
    }
    unlink(tmp);
    snprintf(token, tokenlen, "%.*s", 2 * TOKEN_RANDOM_BYTES, line);
    explicit_bzero(line, sizeof line);
    return 0;
}

/* Returns 0 with the token read, 1 when the file does not exist, -1 on a refusal. */
static int read_token_file(const char *path, char *token, size_t tokenlen, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : fail(err, errlen, "open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, "fstat", path, e);
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        close(fd);
        snprintf(err, errlen, "%s must be a regular file owned by uid %u and readable by it alone "
                 "(mode 0600); it is mode %04o owned by uid %u", path, (unsigned)geteuid(),
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        return -1;
    }
    ssize_t n = read(fd, token, tokenlen - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return fail(err, errlen, "read", path, e);
    token[n] = '\0';
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
        token[--n] = '\0';
    if (n < 2 * TOKEN_RANDOM_BYTES || strlen(token) != (size_t)n) {
        explicit_bzero(token, tokenlen);
        snprintf(err, errlen, "%s does not hold a token of at least %d characters (delete it to have "
                 "a new one generated)", path, 2 * TOKEN_RANDOM_BYTES);
        return -1;
    }
    return 0;
}

int token_prepare(config *c, char *path, size_t pathlen, char *err, size_t errlen)
{
    if (path && pathlen)
        path[0] = '\0';
    if (c->insecure_no_auth || c->api_token_file[0])
        return 0;
    char file[4200];
    snprintf(file, sizeof file, "%s/%s", c->data_dir, TOKEN_FILE_NAME);
    int rc = read_token_file(file, c->api_token, sizeof c->api_token, err, errlen);
    if (rc == 1) {
        rc = create_token_file(file, c->api_token, sizeof c->api_token, err, errlen);
        if (rc == 1) /* another instance created it first */
            rc = read_token_file(file, c->api_token, sizeof c->api_token, err, errlen);
    }
    if (rc == 1)
        snprintf(err, errlen, "%s vanished while it was being created", file);
    if (rc != 0)
        return -1;
    if (path)
        snprintf(path, pathlen, "%s", file);
    return 0;
}
