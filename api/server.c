/* The libmicrohttpd glue: the listening socket, the daemon (a small thread pool with
 * suspend/resume for ?wait=), per-request state across callbacks, body accumulation with
 * the size limit, and turning an api_response into an HTTP response. */
#include "api/server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/http.h"
#include "src/log.h"
#include "src/metrics.h"
#include "src/timeutil.h"

#define THREAD_POOL_SIZE 4
#define CONNECTION_TIMEOUT_S 30
/* Connections: MHD turns away whoever comes beyond its limit, so the limit is kept well
 * above the number of connections with an incomplete request that are tolerated (beyond
 * that the oldest of them are evicted, api/deadline.h): an eviction always makes room
 * before MHD would refuse a newcomer, and the difference is room for requests in progress
 * (long polls above all). Each connection is a descriptor, so RLIMIT_NOFILE bounds both. */
#define CONNECTION_LIMIT_MAX 4096u
#define INCOMPLETE_LIMIT_MAX 1024u
/* Descriptors kept for everything but connections: the store, jobs' pipes, the pool. */
#define FD_RESERVE 256u
/* The kernel caps it at net.core.somaxconn (4096 since Linux 5.4). Connections waiting to
 * be accepted wait in this queue; when it is full, a newcomer's SYN is dropped and its
 * retry comes a second later. */
#define LISTEN_BACKLOG 4096
/* After a body passed the limit we keep reading (to be able to answer 413) but only
 * this much more; a client streaming beyond it is disconnected. */
#define DISCARD_LIMIT (16u << 20)
/* A request's headers must all be in this long (see api/deadline.h). */
#define HEADER_DEADLINE_MS (CONNECTION_TIMEOUT_S * 1000LL)
/* How long stop waits for resumed ?wait= requests to be answered before closing. */
#define STOP_DRAIN_MS 2000

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* What any client can make MHD say about its own connection (it went away, it sent
 * garbage): one line per connection, so at warn a flood of connections, or the evictions
 * that answer it, would flood the log as well. */
static const char *const client_noise[] = {
    "Socket has been disconnected when reading request",
    "Connection socket is closed when reading request",
    "Connection was closed by remote side with incomplete request",
    "Failed to send ",
    "Error processing request",
    "Received HTTP/1.1 request without `Host' header",
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    for (size_t i = 0; i < sizeof client_noise / sizeof client_noise[0]; i++) {
        if (strncmp(line, client_noise[i], strlen(client_noise[i])) == 0) {
            log_debug("http: %s", line);
            return;
        }
    }
    log_warn("http: %s", line);
}

/* --- responses -------------------------------------------------------------------- */

/* MHD asks for the next bytes of a streamed body when the connection has room for them. */
static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    ssize_t n = api_body_read(cls, buf, max);
    if (n < 0) {
        log_warn("http: a streamed answer ended early: its job was deleted or the store failed");
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return n > 0 ? n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void free_stream(void *cls)
{
    api_body_free(cls);
}

/* The block MHD reads a streamed body in; the body itself keeps at most one piece. */
#define STREAM_BLOCK (32u << 10)

static enum MHD_Result send_response(api_request *rq, api_response *rs)
{
    struct MHD_Response *r;
    if (rs->stream) {
        uint64_t size = api_body_size(rs->stream);
        /* An unknown size goes out chunked (HTTP/1.1) or until the connection closes. */
        r = MHD_create_response_from_callback(size == UINT64_MAX ? MHD_SIZE_UNKNOWN : size,
                                              STREAM_BLOCK, read_stream, rs->stream, free_stream);
        if (r)
            rs->stream = NULL; /* MHD frees it (free_stream) */
    } else if (rs->len == 0) {
        api_response_free(rs);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE);
        if (r)
            rs->body = NULL; /* MHD owns it now */
    }
    if (!r) {
        log_error("http: cannot create a response (out of memory)");
        api_response_free(rs);
        return MHD_NO;
    }
    /* nosniff on every answer: a browser must never render job output it was told is text
     * or JSON as anything else. */
    bool ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type) == MHD_YES &&
              MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES &&
              MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") == MHD_YES;
    for (int i = 0; ok && i < rs->n_headers; i++)
        ok = MHD_add_response_header(r, rs->headers[i].name, rs->headers[i].value) == MHD_YES;
    enum MHD_Result q = ok ? MHD_queue_response(rq->conn, rs->status, r) : MHD_NO;
    MHD_destroy_response(r);
    rq->status = rs->status;
    /* Counted when queued rather than in on_completed: a client that has read an answer
     * then always finds it counted in its next scrape. */
    if (q == MHD_YES)
        metrics_http_request(rq->method, api_route_label(&rq->match), rs->status);
    return q;
}

/* --- request bodies --------------------------------------------------------------- */

/* Returns false when the connection should be dropped. */
static bool accept_body(api_request *rq, const char *data, size_t n)
{
    uint64_t max = rq->srv->cfg->max_body_bytes;
    if (rq->status != 0 || rq->match.endpoint != EP_JOBS_CREATE || rq->body_too_large) {
        /* Bodies of other endpoints mean nothing to us; refused ones are drained. */
        rq->discarded += n;
        return rq->discarded <= (uint64_t)DISCARD_LIMIT + max;
    }
    if ((uint64_t)rq->body_len + n > max) {
        /* A chunked body (no Content-Length) grew past the limit: stop keeping it. */
        rq->body_too_large = true;
        free(rq->body);
        rq->body = NULL;
        rq->body_len = rq->body_cap = 0;
        rq->discarded = n;
        return true;
    }
    if (rq->body_len + n + 1 > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap : 4096;
        while (cap < rq->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = (size_t)max + 1;
        char *grown = realloc(rq->body, cap);
        if (!grown) {
            log_error("http: realloc of a %zu-byte request body: %s", cap, strerror(errno));
            return false;
        }
        rq->body = grown;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
    rq->body[rq->body_len] = '\0';
    return true;
}

/* --- MHD callbacks ---------------------------------------------------------------- */

/* The path goes into the log: MHD has already decoded %0A and friends, so keep one
 * request on one line. */
static void copy_printable(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < len; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* MHD's default unescaper turns %00 into a NUL that silently ends the path ("/v1/jobs%00"
 * would route as "/v1/jobs"): decode %HH as usual but leave %00 as it is, so such a path
 * is simply not found and such a query value is invalid. */
static size_t unescape_keep_nul(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *out = s;
    for (const char *in = s; *in; out++) {
        int hi, lo;
        if (in[0] == '%' && (hi = hexval(in[1])) >= 0 && (lo = hexval(in[2])) >= 0 && (hi | lo) != 0) {
            *out = (char)(hi * 16 + lo);
            in += 3;
        } else {
            *out = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

static bool has_body(const api_request *rq)
{
    if (api_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return true;
    const char *clen = api_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return clen && strtoull(clen, NULL, 10) > 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    api_server *srv = cls;
    api_request *rq = *con_cls;
    api_response rs;
    api_response_init(&rs);

    if (!rq) {
        /* Headers are in; the body (if any) has not been read. */
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        rq->srv = srv;
        rq->conn = conn;
        api_deadline_headers_done(srv->deadline, conn);
        snprintf(rq->method_buf, sizeof rq->method_buf, "%s", method);
        rq->method = rq->method_buf;
        rq->started_ms = time_monotonic_ms();
        copy_printable(rq->path, sizeof rq->path, url);
        api_route_match_path(method, url, &rq->match);
        *con_cls = rq;
        if (api_router_precheck(rq, &rs) != API_RESPOND)
            return MHD_YES;
        /* With a body on its way, answer now so it is never read (the connection then
         * closes); without one, answer on the final call and keep the connection. */
        if (has_body(rq))
            return send_response(rq, &rs);
        rq->early = malloc(sizeof *rq->early);
        if (!rq->early)
            return send_response(rq, &rs);
        *rq->early = rs;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return accept_body(rq, upload_data, n) ? MHD_YES : MHD_NO;
    }
    /* The final call: the whole request is in. */
    api_deadline_request_received(srv->deadline, conn);
    if (rq->status != 0)
        return MHD_YES; /* answered already (a refusal on the headers) */
    if (rq->early) {
        rs = *rq->early;
        free(rq->early);
        rq->early = NULL;
        return send_response(rq, &rs);
    }
    api_result r;
    if (rq->body_too_large)
        r = api_respond_errorf(&rs, 413, "body_too_large", "request body is larger than %llu bytes",
                               (unsigned long long)srv->cfg->max_body_bytes);
    else
        r = api_router_dispatch(rq, &rs);
    if (r == API_SUSPENDED)
        return MHD_YES;
    if (r != API_RESPOND)
        api_respond_errorf(&rs, 500, "internal", "the request was not answered");
    return send_response(rq, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    api_server *srv = cls;
    api_request *rq = *con_cls;
    /* Otherwise the connection is closing: it waits for no next request. */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        api_deadline_next_request(srv->deadline, conn);
    if (!rq)
        return;
    api_waiters_forget(srv->waiters, &rq->waiter);
    if (rq->suspended_once)
        atomic_fetch_sub(&srv->waiting_requests, 1);
    log_debug("http: %s %s -> %u in %lld ms%s", rq->method, rq->path, rq->status,
              (long long)(time_monotonic_ms() - rq->started_ms),
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    if (rq->early) {
        api_response_free(rq->early);
        free(rq->early);
    }
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* --- the listening socket --------------------------------------------------------- */

/* Binds host:port ourselves so errors carry the call and errno text. */
static int open_listener(const char *host, int port, char *err, size_t errlen)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            continue;
        }
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
            snprintf(err, errlen, "setsockopt SO_REUSEADDR: %s", strerror(errno));
        } else if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            snprintf(err, errlen, "bind %s:%d: %s", host, port, strerror(errno));
        } else if (listen(fd, LISTEN_BACKLOG) < 0) {
            snprintf(err, errlen, "listen %s:%d: %s", host, port, strerror(errno));
        } else {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(struct MHD_Daemon *d, int fd)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port)
        return info->port;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* --- connection limits ----------------------------------------------------------- */

typedef struct conn_limits {
    unsigned connections; /* MHD_OPTION_CONNECTION_LIMIT */
    unsigned incomplete;  /* connections with an incomplete request, at most */
} conn_limits;

/* Raises the soft RLIMIT_NOFILE to what the connection limit wants (at most the hard
 * limit: many hosts default to a soft 1024) and derives the limits from what it is then. */
static conn_limits connection_limits(void)
{
    const rlim_t want = CONNECTION_LIMIT_MAX + FD_RESERVE;
    struct rlimit rl;
    rlim_t fds = 1024; /* what a process usually gets, if even asking fails */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("http: getrlimit RLIMIT_NOFILE: %s", strerror(errno));
    } else {
        fds = rl.rlim_cur;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
            struct rlimit raised = {.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want, .rlim_max = rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
                fds = raised.rlim_cur;
            else
                log_warn("http: setrlimit RLIMIT_NOFILE to %llu: %s", (unsigned long long)raised.rlim_cur,
                         strerror(errno));
        }
    }
    conn_limits l;
    if (fds >= want)
        l.connections = CONNECTION_LIMIT_MAX;
    else if (fds >= 2 * FD_RESERVE)
        l.connections = (unsigned)(fds - FD_RESERVE);
    else
        l.connections = (unsigned)(fds / 2);
    if (l.connections < THREAD_POOL_SIZE)
        l.connections = THREAD_POOL_SIZE; /* MHD gives each thread a share; none may get 0 */
    l.incomplete = l.connections / 2 < INCOMPLETE_LIMIT_MAX ? l.connections / 2 : INCOMPLETE_LIMIT_MAX;
    if (l.incomplete == 0)
        l.incomplete = 1;
    if (l.connections < CONNECTION_LIMIT_MAX)
        log_warn("http: RLIMIT_NOFILE allows %llu descriptors: serving at most %u connections, %u of them "
                 "with an incomplete request (raise the hard limit to %llu for %u)",
                 (unsigned long long)fds, l.connections, l.incomplete, (unsigned long long)want,
                 CONNECTION_LIMIT_MAX);
    return l;
}

/* --- the server ------------------------------------------------------------------- */

api_server *api_server_start(const config *cfg, store *st, scheduler *sch, char *err, size_t errlen)
{
    api_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "calloc: %s", strerror(errno));
        return NULL;
    }
    srv->cfg = cfg;
    srv->st = st;
    srv->sch = sch;
    srv->backends = api_backend_checks_default();
    metrics_set_start_time(time_now_ms());
    for (const char *const *b = srv->backends->names; *b; b++)
        metrics_register_backend(*b);
    atomic_init(&srv->refusing, false);
    atomic_init(&srv->waiting_requests, 0);
    srv->waiters = api_waiters_create(err, errlen);
    conn_limits limits = connection_limits();
    metrics_http_connections_evicted(0);
    srv->deadline = srv->waiters ? api_deadline_start(HEADER_DEADLINE_MS, limits.incomplete, err, errlen) : NULL;
    if (!srv->deadline) {
        api_waiters_destroy(srv->waiters);
        free(srv);
        return NULL;
    }
    int fd = open_listener(cfg->listen_host, cfg->listen_port, err, errlen);
    if (fd < 0)
        goto fail;
    srv->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, srv,
        /* first, so MHD reports even option errors through our log */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)THREAD_POOL_SIZE,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, limits.connections,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_keep_nul, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, api_deadline_notify, srv->deadline,
        MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "MHD_start_daemon on %s:%d failed (see the log above)",
                 cfg->listen_host, cfg->listen_port);
        close(fd);
        goto fail;
    }
    srv->port = bound_port(srv->daemon, fd);
    if (sch)
        scheduler_on_finished(sch, api_waiters_on_job_finished, srv->waiters);
    bool v6 = strchr(cfg->listen_host, ':') != NULL;
    log_info("listening on %s%s%s:%d", v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "", srv->port);
    return srv;
fail:
    api_waiters_destroy(srv->waiters);
    api_deadline_stop(srv->deadline);
    free(srv);
    return NULL;
}

void api_server_refuse_new_jobs(api_server *srv)
{
    if (srv)
        atomic_store(&srv->refusing, true);
}

void api_server_stop(api_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->refusing, true);
    /* Waiting clients get the job as it is now rather than a dropped connection. */
    api_waiters_shutdown(srv->waiters);
    int64_t until = time_monotonic_ms() + STOP_DRAIN_MS;
    while (atomic_load(&srv->waiting_requests) > 0 && time_monotonic_ms() < until)
        usleep(10 * 1000);
    MHD_stop_daemon(srv->daemon);
    api_deadline_stop(srv->deadline);
    api_waiters_destroy(srv->waiters);
    free(srv);
}

int api_server_port(const api_server *srv)
{
    return srv ? srv->port : -1;
}
