/* The HTTP surface over a real socket: the server runs on a real store with a scheduler
 * that is never started, so jobs stay queued and ?wait= behaviour is deterministic.
 * Covers status codes and headers decided on the headers alone (404/405/401/413/415/503),
 * chunked bodies past the limit, waits that time out, are woken by a cancel, or are
 * released by api_server_stop, and the raw log stream's headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "api/server.h"
#include "src/backends.h"
#include "src/timeutil.h"

typedef struct fixture {
    char dir[64];
    config cfg;
    store *st;
    scheduler *sch;
    api_server *srv;
    int port;
} fixture;

static void fill_config(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 0;
    snprintf(c->backend, sizeof c->backend, "direct");
    snprintf(c->backends, sizeof c->backends, "direct,ephemeral,pool");
    snprintf(c->allowed_hosts[0], sizeof c->allowed_hosts[0], "exec.example.com");
    c->n_allowed_hosts = 1;
    c->workers = 1;
    snprintf(c->python, sizeof c->python, "/usr/bin/python3");
    c->max_body_bytes = 4096;
    c->max_queued = 3;
    c->shutdown_grace_seconds = 1;
    c->default_limits = (sandbox_limits){30, 512, 60, 64, 64, 256, 1048576};
    c->max_limits = (sandbox_limits){3600, 65536, 3600, 4096, 4096, 65536, 67108864};
}

static int start_server(fixture *f, const char *token)
{
    fill_config(&f->cfg);
    if (token)
        snprintf(f->cfg.api_token, sizeof f->cfg.api_token, "%s", token);
    snprintf(f->dir, sizeof f->dir, "/tmp/executord-test-api-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/executord.db", f->dir);
    f->st = store_open(path, err, sizeof err);
    if (!f->st) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    scheduler_options opt = {.workers = 1, .shutdown_grace_seconds = 1};
    f->sch = scheduler_create(f->st, &opt);
    f->srv = api_server_start(&f->cfg, f->st, f->sch, err, sizeof err);
    if (!f->srv) {
        fprintf(stderr, "api_server_start: %s\n", err);
        return -1;
    }
    f->port = api_server_port(f->srv);
    return f->port > 0 ? 0 : -1;
}

/* The default backend must be usable for submissions to validate. */
static int group_setup(void **state)
{
    sandbox_config scfg = {.python_path = "/usr/bin/python3", .work_root = "/tmp"};
    backends_init(&scfg, "direct,ephemeral,pool");
    return backends_available("direct", NULL) ? 0 : -1;
}

static int group_teardown(void **state)
{
    backends_shutdown();
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    return start_server(f, NULL);
}

static int setup_token(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    return start_server(f, "s3cret-token");
}

static int teardown(void **state)
{
    fixture *f = *state;
    api_server_stop(f->srv);
    scheduler_destroy(f->sch);
    store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", f->dir);
    free(f);
    return 0;
}

/* --- a tiny HTTP client ------------------------------------------------------------ */

typedef struct reply {
    int status;
    char head[4096];
    char *body;
    size_t body_len;
    json_t *json;
} reply;

static void reply_free(reply *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* The value of a response header (case-insensitive name) into buf; false when absent. */
static bool header(const reply *r, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            snprintf(buf, len, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
            return true;
        }
    }
    return false;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server may close early (413): the reply is still readable */
        data += n;
        len -= (size_t)n;
    }
}

/* A streamed answer of unknown length (the logs document) comes chunked: undo that in
 * place. A body without its last chunk (an answer cut short) fails the test. */
static void dechunk(reply *r)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end = NULL;
        unsigned long n = strtoul(r->body + in, &end, 16);
        char *crlf = strstr(r->body + in, "\r\n");
        assert_non_null(crlf);
        assert_true(end != r->body + in && end <= crlf);
        in = (size_t)(crlf + 2 - r->body);
        if (n == 0)
            break;
        assert_true(in + n + 2 <= r->body_len);
        memmove(r->body + out, r->body + in, n);
        out += n;
        in += n + 2; /* the chunk's CRLF */
    }
    r->body_len = out;
    r->body[out] = '\0';
}

/* Reads one response (Connection: close was asked, so until EOF) and parses it. */
static void read_reply(int fd, reply *r)
{
    memset(r, 0, sizeof *r);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    snprintf(r->head, sizeof r->head, "%.*s", (int)(sep - buf), buf);
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
    r->body_len = len - (size_t)(sep + 4 - buf);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    char te[32];
    if (header(r, "Transfer-Encoding", te, sizeof te) && strcmp(te, "chunked") == 0)
        dechunk(r);
    r->json = json_loadb(r->body, r->body_len, 0, NULL);
    free(buf);
}

static void http(int port, const char *method, const char *path, const char *extra_headers,
                 const char *body, reply *r)
{
    int fd = connect_to(port);
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s", method, path,
                     extra_headers ? extra_headers : "");
    if (body)
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    send_all(fd, head, (size_t)n);
    if (body)
        send_all(fd, body, strlen(body));
    read_reply(fd, r);
    close(fd);
}

static const char *error_code(const reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

/* Every answer, success or not, is JSON (except the raw log stream) and not cacheable. */
static void assert_common_headers(const reply *r)
{
    char v[256];
    assert_true(header(r, "Cache-Control", v, sizeof v));
    assert_string_equal(v, "no-store");
    assert_true(header(r, "Content-Type", v, sizeof v));
    assert_string_equal(v, "application/json");
    if (r->status != 204)
        assert_non_null(r->json);
}

static char *submit(fixture *f, const char *body)
{
    reply r;
    http(f->port, "POST", "/v1/jobs", NULL, body, &r);
    assert_int_equal(r.status, 201);
    char *id = strdup(json_string_value(json_object_get(r.json, "id")));
    reply_free(&r);
    return id;
}

/* --- tests -------------------------------------------------------------------------- */

static void routes_and_methods(void **state)
{
    fixture *f = *state;
    reply r;
    http(f->port, "GET", "/nope", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(error_code(&r), "not_found");
    assert_common_headers(&r);
    reply_free(&r);

    http(f->port, "GET", "/v1/jobs/not-a-uuid", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    reply_free(&r);

    http(f->port, "GET", "/v1/jobs/0b7e3c1a-2f4d-4c5e-9a6b-7c8d9e0f1a2b", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(error_code(&r), "not_found");
    reply_free(&r);

    char allow[64];
    http(f->port, "PUT", "/v1/jobs", NULL, "{}", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(error_code(&r), "method_not_allowed");
    assert_true(header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "GET, POST");
    assert_common_headers(&r);
    reply_free(&r);

    http(f->port, "POST", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_true(header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "GET");
    reply_free(&r);

    http(f->port, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ok");
    assert_common_headers(&r);
    reply_free(&r);

    http(f->port, "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ready");
    assert_string_equal(json_string_value(json_object_get(r.json, "default_backend")), "direct");
    reply_free(&r);

    http(f->port, "GET", "/v1/backends", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "default")), "direct");
    assert_int_equal(json_array_size(json_object_get(r.json, "backends")), 3);
    reply_free(&r);
}

static void token_required(void **state)
{
    fixture *f = *state;
    reply r;
    char v[64];
    http(f->port, "GET", "/v1/jobs", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(error_code(&r), "unauthorized");
    assert_true(header(&r, "WWW-Authenticate", v, sizeof v));
    assert_string_equal(v, "Bearer");
    assert_common_headers(&r);
    reply_free(&r);

    http(f->port, "POST", "/v1/jobs", "Authorization: Bearer wrong\r\n", "{\"script\":\"x\"}", &r);
    assert_int_equal(r.status, 401);
    reply_free(&r);

    http(f->port, "GET", "/v1/jobs", "Authorization: Bearer s3cret-token\r\n", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(json_object_get(r.json, "jobs")));
    reply_free(&r);

    /* probes never need the token */
    http(f->port, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    http(f->port, "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

static void submission_refusals(void **state)
{
    fixture *f = *state;
    reply r;

    /* Content-Length above the limit: answered from the headers, body never sent */
    int fd = connect_to(f->port);
    const char *big = "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                      "Content-Length: 1000000\r\n\r\n";
    send_all(fd, big, strlen(big));
    read_reply(fd, &r);
    close(fd);
    assert_int_equal(r.status, 413);
    assert_string_equal(error_code(&r), "body_too_large");
    assert_common_headers(&r);
    reply_free(&r);

    /* chunked body that grows past the limit */
    fd = connect_to(f->port);
    const char *chunked = "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(fd, chunked, strlen(chunked));
    char chunk[1100];
    memset(chunk, ' ', sizeof chunk);
    for (int i = 0; i < 6; i++) {
        char size[16];
        snprintf(size, sizeof size, "%zx\r\n", sizeof chunk);
        send_all(fd, size, strlen(size));
        send_all(fd, chunk, sizeof chunk);
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    read_reply(fd, &r);
    close(fd);
    assert_int_equal(r.status, 413);
    assert_string_equal(error_code(&r), "body_too_large");
    reply_free(&r);

    /* a chunked body under the limit is fine */
    fd = connect_to(f->port);
    send_all(fd, chunked, strlen(chunked));
    const char *small = "{\"script\":\"def main(): return 1\"}";
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", strlen(small));
    send_all(fd, size, strlen(size));
    send_all(fd, small, strlen(small));
    send_all(fd, "\r\n0\r\n\r\n", 7);
    read_reply(fd, &r);
    close(fd);
    assert_int_equal(r.status, 201);
    reply_free(&r);

    http(f->port, "POST", "/v1/jobs", "Content-Type: text/plain\r\n", NULL, &r);
    assert_int_equal(r.status, 415);
    assert_string_equal(error_code(&r), "unsupported_media_type");
    reply_free(&r);

    http(f->port, "POST", "/v1/jobs", NULL, "{\"script\":\"x\",\"limits\":{\"memory_mb\":0}}", &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(error_code(&r), "invalid_field");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "error"), "field")),
        "limits.memory_mb");
    assert_common_headers(&r);
    reply_free(&r);

    http(f->port, "POST", "/v1/jobs", NULL, "{\"script\":", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code(&r), "malformed_json");
    reply_free(&r);

    http(f->port, "POST", "/v1/jobs?wait=301", NULL, "{\"script\":\"x\"}", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code(&r), "invalid_parameter");
    reply_free(&r);

    /* the queue bound (3; one job is already queued above) */
    free(submit(f, "{\"script\":\"x\"}"));
    free(submit(f, "{\"script\":\"x\"}"));
    http(f->port, "POST", "/v1/jobs", NULL, "{\"script\":\"x\"}", &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(error_code(&r), "queue_full");
    char v[16];
    assert_true(header(&r, "Retry-After", v, sizeof v));
    assert_string_equal(v, "1");
    reply_free(&r);

    /* shutdown began: submissions 503, reads still work */
    api_server_refuse_new_jobs(f->srv);
    http(f->port, "POST", "/v1/jobs", NULL, "{\"script\":\"x\"}", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(error_code(&r), "shutting_down");
    assert_true(header(&r, "Retry-After", v, sizeof v));
    assert_string_equal(v, "5");
    reply_free(&r);
    http(f->port, "GET", "/v1/jobs", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 3);
    reply_free(&r);
}

/* Sends one complete request as written (its own Host, Origin, ...) and reads the reply. */
static int raw_status(int port, const char *request, char *code, size_t codelen)
{
    int fd = connect_to(port);
    send_all(fd, request, strlen(request));
    reply r;
    read_reply(fd, &r);
    close(fd);
    int status = r.status;
    if (code) {
        const char *c = r.json ? error_code(&r) : NULL;
        snprintf(code, codelen, "%s", c ? c : "");
    }
    reply_free(&r);
    return status;
}

/* DNS rebinding and cross-site requests: a Host that does not name us gets 421 on every
 * route; a browser request from another origin gets 403 on the API; a body a page can
 * send without a preflight (form, text, no type) gets 415. */
static void browser_and_host_refusals(void **state)
{
    fixture *f = *state;
    char code[64];
    static const char *const ours[] = {"localhost", "LOCALHOST:8080", "127.0.0.1", "127.1.2.3:80",
                                       "[::1]:8080", "exec.example.com", "192.0.2.7:8080", "localhost."};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        char rq[256];
        snprintf(rq, sizeof rq, "GET /v1/jobs HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", ours[i]);
        assert_int_equal(raw_status(f->port, rq, code, sizeof code), 200);
    }
    static const char *const theirs[] = {"evil.example", "evil.example:8080", "localhost.evil.example",
                                         "127.0.0.1.nip.io", "exec.example.com.evil", "a b", "::1"};
    static const char *const paths[] = {"/v1/jobs", "/healthz", "/", "/metrics", "/nope"};
    for (size_t i = 0; i < sizeof theirs / sizeof theirs[0]; i++) {
        for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
            char rq[256];
            snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", paths[k],
                     theirs[i]);
            assert_int_equal(raw_status(f->port, rq, code, sizeof code), 421);
            assert_string_equal(code, "host_not_allowed");
        }
    }

    struct { const char *headers; int status; } origins[] = {
        {"Origin: http://localhost\r\nSec-Fetch-Site: same-origin\r\n", 200},
        {"Origin: https://localhost:443\r\n", 200},
        {"Sec-Fetch-Site: none\r\n", 200},
        {"Origin: http://localhost:8081\r\n", 403},
        {"Origin: http://127.0.0.1\r\n", 403},
        {"Origin: null\r\n", 403},
        {"Origin: http://evil.example\r\n", 403},
        {"Origin: file://\r\n", 403},
        {"Sec-Fetch-Site: cross-site\r\n", 403},
        {"Sec-Fetch-Site: same-site\r\n", 403},
    };
    static const char *const api[] = {"GET /v1/jobs", "GET /metrics", "GET /v1/backends",
                                      "POST /v1/jobs/00000000-0000-4000-8000-000000000000/cancel"};
    for (size_t i = 0; i < sizeof origins / sizeof origins[0]; i++) {
        for (size_t k = 0; k < sizeof api / sizeof api[0]; k++) {
            char rq[512];
            snprintf(rq, sizeof rq, "%s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n", api[k],
                     origins[i].headers);
            int want = origins[i].status == 200 && k == 3 ? 404 : origins[i].status;
            assert_int_equal(raw_status(f->port, rq, code, sizeof code), want);
            if (want == 403)
                assert_string_equal(code, "cross_origin");
        }
    }
    /* The dashboard's files and the probes carry no data: a cross-origin GET is harmless. */
    assert_int_equal(raw_status(f->port, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                                         "Origin: http://evil.example\r\n\r\n", NULL, 0), 200);

    static const char *const types[] = {"Content-Type: application/x-www-form-urlencoded\r\n",
                                        "Content-Type: text/plain;charset=UTF-8\r\n",
                                        "Content-Type: multipart/form-data; boundary=x\r\n", ""};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char rq[512];
        const char *body = "{\"script\":\"def main(): return 1\"}";
        snprintf(rq, sizeof rq, "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s"
                 "Content-Length: %zu\r\n\r\n%s", types[i], strlen(body), body);
        assert_int_equal(raw_status(f->port, rq, code, sizeof code), 415);
        assert_string_equal(code, "unsupported_media_type");
    }
    char rq[512];
    const char *body = "{\"script\":\"def main(): return 1\"}";
    snprintf(rq, sizeof rq, "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
             "Content-Type: application/vnd.executord+json; charset=utf-8\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    assert_int_equal(raw_status(f->port, rq, code, sizeof code), 201);
}

static void submit_idempotency_and_location(void **state)
{
    fixture *f = *state;
    reply a, b, c;
    http(f->port, "POST", "/v1/jobs", "Idempotency-Key: abc\r\n",
         "{\"script\":\"x\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}}", &a);
    assert_int_equal(a.status, 201);
    const char *id = json_string_value(json_object_get(a.json, "id"));
    char loc[128], want[128];
    assert_true(header(&a, "Location", loc, sizeof loc));
    snprintf(want, sizeof want, "/v1/jobs/%s", id);
    assert_string_equal(loc, want);
    assert_string_equal(json_string_value(json_object_get(a.json, "status")), "queued");

    /* same body, keys reordered: the same job, 200 */
    http(f->port, "POST", "/v1/jobs", "Idempotency-Key: abc\r\n",
         "{\"labels\":{\"b\":\"2\",\"a\":\"1\"}, \"script\":\"x\"}", &b);
    assert_int_equal(b.status, 200);
    assert_string_equal(json_string_value(json_object_get(b.json, "id")), id);

    http(f->port, "POST", "/v1/jobs", "Idempotency-Key: abc\r\n", "{\"script\":\"y\"}", &c);
    assert_int_equal(c.status, 409);
    assert_string_equal(error_code(&c), "idempotency_conflict");
    reply_free(&a);
    reply_free(&b);
    reply_free(&c);
}

static void wait_times_out_with_the_current_state(void **state)
{
    fixture *f = *state;
    reply r;
    int64_t t0 = time_monotonic_ms();
    http(f->port, "POST", "/v1/jobs?wait=0.4", NULL, "{\"script\":\"x\"}", &r);
    int64_t took = time_monotonic_ms() - t0;
    assert_int_equal(r.status, 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "queued");
    char loc[128];
    assert_true(header(&r, "Location", loc, sizeof loc));
    assert_in_range(took, 350, 3000);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=0.3",
             json_string_value(json_object_get(r.json, "id")));
    reply_free(&r);

    t0 = time_monotonic_ms();
    http(f->port, "GET", path, NULL, NULL, &r);
    took = time_monotonic_ms() - t0;
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "queued");
    assert_in_range(took, 250, 3000);
    reply_free(&r);

    /* wait=0 answers at once */
    path[strlen(path) - 3] = '0';
    path[strlen(path) - 2] = '\0';
    t0 = time_monotonic_ms();
    http(f->port, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_in_range(time_monotonic_ms() - t0, 0, 200);
    reply_free(&r);
}

typedef struct waiter_arg {
    int port;
    char path[128];
    reply r;
    int64_t took_ms;
} waiter_arg;

static void *waiting_client(void *p)
{
    waiter_arg *w = p;
    int64_t t0 = time_monotonic_ms();
    http(w->port, "GET", w->path, NULL, NULL, &w->r);
    w->took_ms = time_monotonic_ms() - t0;
    return NULL;
}

static void cancel_wakes_waiters(void **state)
{
    fixture *f = *state;
    char *id = submit(f, "{\"script\":\"x\"}");
    enum { N = 5 };
    waiter_arg w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].port = f->port;
        snprintf(w[i].path, sizeof w[i].path, "/v1/jobs/%s?wait=30", id);
        assert_int_equal(pthread_create(&th[i], NULL, waiting_client, &w[i]), 0);
    }
    usleep(300 * 1000);
    /* the daemon still answers while they wait (no thread is blocked by them) */
    reply r;
    http(f->port, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);

    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    http(f->port, "POST", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "cancelled");
    reply_free(&r);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].r.status, 200);
        assert_string_equal(json_string_value(json_object_get(w[i].r.json, "status")), "cancelled");
        assert_in_range(w[i].took_ms, 200, 5000);
        reply_free(&w[i].r);
    }

    http(f->port, "POST", path, NULL, NULL, &r);
    assert_int_equal(r.status, 409);
    assert_string_equal(error_code(&r), "job_finished");
    reply_free(&r);

    /* finished now: a wait returns at once */
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", id);
    int64_t t0 = time_monotonic_ms();
    http(f->port, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_in_range(time_monotonic_ms() - t0, 0, 1000);
    reply_free(&r);

    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    http(f->port, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    reply_free(&r);
    http(f->port, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    reply_free(&r);
    free(id);
}

static void delete_of_queued_job_conflicts(void **state)
{
    fixture *f = *state;
    char *id = submit(f, "{\"script\":\"x\"}");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    reply r;
    http(f->port, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 409);
    assert_string_equal(error_code(&r), "job_not_finished");
    reply_free(&r);
    free(id);
}

static void logs_of_a_queued_job(void **state)
{
    fixture *f = *state;
    char *id = submit(f, "{\"script\":\"x\"}");
    char path[160];
    reply r;
    snprintf(path, sizeof path, "/v1/jobs/%s/logs", id);
    http(f->port, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "job_id")), id);
    assert_string_equal(json_string_value(json_object_get(r.json, "stdout")), "");
    assert_int_equal(json_integer_value(json_object_get(r.json, "stdout_bytes")), 0);
    reply_free(&r);

    snprintf(path, sizeof path, "/v1/jobs/%s/logs?stream=stderr&offset=5", id);
    http(f->port, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    char v[64];
    assert_true(header(&r, "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/plain; charset=utf-8");
    assert_true(header(&r, "X-Job-Status", v, sizeof v));
    assert_string_equal(v, "queued");
    assert_true(header(&r, "X-Output-Bytes", v, sizeof v));
    assert_string_equal(v, "0");
    /* past the end: an empty window that does not move backwards */
    assert_true(header(&r, "X-Next-Offset", v, sizeof v));
    assert_string_equal(v, "5");
    assert_true(header(&r, "X-Window-Truncated", v, sizeof v));
    assert_string_equal(v, "false");
    assert_int_equal(r.body_len, 0);
    reply_free(&r);

    snprintf(path, sizeof path, "/v1/jobs/%s/logs?stdout_offset=3&limit=10", id);
    http(f->port, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *w = json_object_get(r.json, "window");
    assert_int_equal(json_integer_value(json_object_get(w, "limit")), 10);
    json_t *wo = json_object_get(w, "stdout"), *we = json_object_get(w, "stderr");
    assert_int_equal(json_integer_value(json_object_get(wo, "offset")), 3);
    assert_int_equal(json_integer_value(json_object_get(wo, "next_offset")), 3);
    assert_true(json_is_false(json_object_get(wo, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(we, "next_offset")), 0);
    reply_free(&r);

    const char *bad[] = {"limit=0", "limit=4194305", "stream=stdout&stdout_offset=1",
                         "offset=1", "stderr_offset=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s/logs?%s", id, bad[i]);
        http(f->port, "GET", path, NULL, NULL, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(error_code(&r), "invalid_parameter");
        reply_free(&r);
    }

    snprintf(path, sizeof path, "/v1/jobs/%s/logs?stream=both", id);
    http(f->port, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code(&r), "invalid_parameter");
    reply_free(&r);
    free(id);
}

static void list_pages_and_filters(void **state)
{
    fixture *f = *state;
    free(submit(f, "{\"script\":\"x\",\"labels\":{\"team\":\"a\"}}"));
    free(submit(f, "{\"script\":\"x\",\"labels\":{\"team\":\"b\"}}"));
    free(submit(f, "{\"script\":\"x\",\"labels\":{\"team\":\"a\"}}"));
    reply r;
    http(f->port, "GET", "/v1/jobs?limit=2", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 2);
    /* list form: no script, no inputs */
    json_t *first = json_array_get(json_object_get(r.json, "jobs"), 0);
    assert_null(json_object_get(first, "script"));
    assert_null(json_object_get(first, "inputs"));
    const char *cursor = json_string_value(json_object_get(r.json, "next_cursor"));
    assert_non_null(cursor);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs?limit=2&cursor=%s", cursor);
    reply r2;
    http(f->port, "GET", path, NULL, NULL, &r2);
    assert_int_equal(r2.status, 200);
    assert_int_equal(json_array_size(json_object_get(r2.json, "jobs")), 1);
    assert_true(json_is_null(json_object_get(r2.json, "next_cursor")));
    reply_free(&r);
    reply_free(&r2);

    http(f->port, "GET", "/v1/jobs?label=team:a&status=queued", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 2);
    reply_free(&r);
    http(f->port, "GET", "/v1/jobs?status=running", NULL, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 0);
    reply_free(&r);
    http(f->port, "GET", "/v1/jobs?cursor=abc", NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    reply_free(&r);
}

static void stop_releases_waiters(void **state)
{
    fixture *f = *state;
    char *id = submit(f, "{\"script\":\"x\"}");
    waiter_arg w;
    memset(&w, 0, sizeof w);
    w.port = f->port;
    snprintf(w.path, sizeof w.path, "/v1/jobs/%s?wait=60", id);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiting_client, &w), 0);
    usleep(300 * 1000);
    int64_t t0 = time_monotonic_ms();
    api_server_stop(f->srv);
    f->srv = NULL;
    assert_in_range(time_monotonic_ms() - t0, 0, 3000);
    pthread_join(th, NULL);
    /* answered with the job as it is, not dropped */
    assert_int_equal(w.r.status, 200);
    assert_string_equal(json_string_value(json_object_get(w.r.json, "status")), "queued");
    assert_in_range(w.took_ms, 200, 3500);
    reply_free(&w.r);
    free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(routes_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(token_required, setup_token, teardown),
        cmocka_unit_test_setup_teardown(submission_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(browser_and_host_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(submit_idempotency_and_location, setup, teardown),
        cmocka_unit_test_setup_teardown(wait_times_out_with_the_current_state, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_wakes_waiters, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_of_queued_job_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(logs_of_a_queued_job, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pages_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_releases_waiters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
