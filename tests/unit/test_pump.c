/* sandbox/pump.c on real pipes and sockets: output delivered under the cap and the
 * overflow reported once per stream, the result held up to the cap and refused past it,
 * the spec written whole and then closed (EOF for the runner), what is left drained. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/pump.h"

typedef struct seen {
    char out[4096];
    size_t out_len;
    int output_over, result_over, over_stream;
} seen;

static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    seen *s = ctx;
    assert_true(stream == SANDBOX_STDOUT || stream == SANDBOX_STDERR);
    assert_true(s->out_len + len <= sizeof s->out);
    memcpy(s->out + s->out_len, data, len);
    s->out_len += len;
}

static void on_overflow(void *ctx, pump_overflow what, int stream_id)
{
    seen *s = ctx;
    if (what == PUMP_OUTPUT_OVER) {
        s->output_over++;
        s->over_stream = stream_id;
    } else {
        s->result_over++;
    }
}

/* A non-blocking pipe; returns the read end, *w the write end. */
static int nb_pipe(int *w)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    *w = p[1];
    return p[0];
}

static void pump_once(sandbox_pump *p)
{
    struct pollfd pf[4];
    int n = sandbox_pump_poll_fds(p, pf, 0);
    if (n > 0 && poll(pf, (nfds_t)n, 1000) > 0)
        sandbox_pump_on_poll(p, pf);
}

static void output_is_capped_and_reported_once(void **state)
{
    seen s = {0};
    sandbox_io io = {.ctx = &s, .on_output = on_output};
    sandbox_pump p;
    sandbox_pump_init(&p, &io, 10, on_overflow, &s);
    int w_err;
    p.streams[1].fd = nb_pipe(&w_err);
    assert_int_equal(write(w_err, "0123456", 7), 7);
    pump_once(&p);
    assert_int_equal(s.out_len, 7);
    assert_int_equal(s.output_over, 0);
    assert_int_equal(write(w_err, "789abcdef", 9), 9);
    pump_once(&p);
    assert_int_equal(write(w_err, "more", 4), 4);
    pump_once(&p);
    close(w_err);
    sandbox_pump_drain(&p);
    assert_int_equal(s.out_len, 10);
    assert_memory_equal(s.out, "0123456789", 10);
    assert_int_equal(s.output_over, 1);
    assert_int_equal(s.over_stream, SANDBOX_STDERR);
    sandbox_outcome out;
    memset(&out, 0, sizeof out);
    sandbox_pump_report(&p, &out);
    assert_int_equal(out.stderr_bytes, 10);
    assert_true(out.stderr_truncated);
    assert_int_equal(out.stdout_bytes, 0);
    assert_false(out.stdout_truncated);
    assert_int_equal(p.streams[1].fd, -1); /* EOF closed it */
    sandbox_pump_free(&p);
}

static void result_at_the_cap_is_kept_past_it_refused(void **state)
{
    for (int extra = 0; extra <= 1; extra++) {
        seen s = {0};
        sandbox_pump p;
        sandbox_pump_init(&p, NULL, 16, on_overflow, &s);
        int w;
        p.result_fd = nb_pipe(&w);
        char doc[17];
        memset(doc, 'r', sizeof doc);
        assert_int_equal(write(w, doc, 16 + (size_t)extra), 16 + extra);
        close(w);
        pump_once(&p);
        sandbox_pump_drain(&p);
        if (extra) {
            assert_int_equal(s.result_over, 1);
        } else {
            assert_int_equal(s.result_over, 0);
            assert_int_equal(p.result_len, 16);
            assert_memory_equal(p.result, doc, 16);
        }
        assert_int_equal(p.result_fd, -1);
        sandbox_pump_free(&p);
    }
}

static void spec_is_written_whole_then_closed(void **state)
{
    sandbox_pump p;
    seen s = {0};
    sandbox_pump_init(&p, NULL, 0, on_overflow, &s);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    size_t len = 1 << 20; /* more than a socket buffer: several rounds */
    p.spec = malloc(len);
    assert_non_null(p.spec);
    for (size_t i = 0; i < len; i++)
        p.spec[i] = (char)('a' + i % 26);
    p.spec_len = len;
    p.spec_fd = sv[0];
    size_t got = 0;
    char buf[65536];
    int rounds = 0;
    while (got < len) {
        pump_once(&p);
        ssize_t n;
        while ((n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                assert_int_equal(buf[i], (char)('a' + (got + (size_t)i) % 26));
            got += (size_t)n;
        }
        assert_true(++rounds < 10000);
    }
    assert_int_equal(got, len);
    assert_int_equal(p.spec_fd, -1);                   /* closed after the last byte */
    assert_int_equal(recv(sv[1], buf, sizeof buf, 0), 0); /* the runner sees EOF */
    close(sv[1]);
    assert_int_equal(s.output_over + s.result_over, 0);
    sandbox_pump_free(&p);
}

static void a_gone_runner_closes_the_spec(void **state)
{
    sandbox_pump p;
    seen s = {0};
    sandbox_pump_init(&p, NULL, 0, on_overflow, &s);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    p.spec = strdup("{\"script\": \"\"}");
    p.spec_len = strlen(p.spec);
    p.spec_fd = sv[0];
    pump_once(&p); /* EPIPE, no SIGPIPE */
    assert_int_equal(p.spec_fd, -1);
    sandbox_pump_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(output_is_capped_and_reported_once),
        cmocka_unit_test(result_at_the_cap_is_kept_past_it_refused),
        cmocka_unit_test(spec_is_written_whole_then_closed),
        cmocka_unit_test(a_gone_runner_closes_the_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
