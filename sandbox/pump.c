/* The job's I/O pumps (see pump.h). Everything is non-blocking and bounded per call, so
 * one flooding stream cannot starve the other, the spec or the supervisor's timers. */
#include "sandbox/pump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { SLOT_OUT, SLOT_ERR, SLOT_SPEC, SLOT_RESULT };

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

void sandbox_pump_init(sandbox_pump *p, const sandbox_io *io, uint64_t max_output_bytes,
                       void (*overflow)(void *ctx, pump_overflow what, int stream_id), void *ctx)
{
    memset(p, 0, sizeof *p);
    p->io = io;
    p->cap = max_output_bytes ? max_output_bytes : UINT64_MAX - 1;
    p->streams[0] = (pump_stream){.fd = -1, .id = SANDBOX_STDOUT};
    p->streams[1] = (pump_stream){.fd = -1, .id = SANDBOX_STDERR};
    p->spec_fd = p->result_fd = -1;
    p->overflow = overflow;
    p->ctx = ctx;
}

/* Delivers a chunk of a stream under the cap; past it, the job dies. */
static void on_stream_data(sandbox_pump *p, pump_stream *s, const char *buf, size_t n)
{
    if (s->truncated)
        return; /* after the cap: drained and dropped */
    size_t keep = n;
    if (s->bytes + n > p->cap) {
        keep = (size_t)(p->cap - s->bytes);
        s->truncated = true;
    }
    if (keep > 0 && p->io && p->io->on_output)
        p->io->on_output(p->io->ctx, s->id, buf, keep);
    s->bytes += keep;
    if (s->truncated)
        p->overflow(p->ctx, PUMP_OUTPUT_OVER, s->id);
}

/* Reads what is available; at EOF or on error the fd is closed. */
static void read_stream(sandbox_pump *p, pump_stream *s)
{
    char buf[65536];
    for (int i = 0; i < 16; i++) { /* bounded, so one flooding stream cannot starve others */
        ssize_t n = read(s->fd, buf, sizeof buf);
        if (n > 0) {
            on_stream_data(p, s, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0)
            fprintf(stderr, "executord: sandbox: read output: %s\n", strerror(errno));
        close_fd(&s->fd);
        return;
    }
}

/* Grows the result buffer, at most to cap+1 bytes (one more than allowed, to tell "too
 * big" from "exactly at the cap"). False when it cannot grow: too big, or no memory. */
static bool grow_result(sandbox_pump *p)
{
    size_t size = p->result_size ? p->result_size * 2 : 8192;
    if (size > p->cap + 1)
        size = (size_t)p->cap + 1;
    if (size <= p->result_len)
        return false;
    char *grown = realloc(p->result, size);
    if (!grown)
        return false;
    p->result = grown;
    p->result_size = size;
    return true;
}

static void read_result(sandbox_pump *p)
{
    for (;;) {
        if (p->result_len == p->result_size && !grow_result(p)) {
            close_fd(&p->result_fd);
            p->overflow(p->ctx, PUMP_RESULT_OVER, -1);
            return;
        }
        ssize_t n = read(p->result_fd, p->result + p->result_len, p->result_size - p->result_len);
        if (n > 0) {
            p->result_len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close_fd(&p->result_fd);
        return;
    }
}

static void write_spec(sandbox_pump *p)
{
    while (p->spec_off < p->spec_len) {
        ssize_t n = send(p->spec_fd, p->spec + p->spec_off, p->spec_len - p->spec_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p->spec_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        break; /* EPIPE and friends: the runner is gone; its exit tells the story */
    }
    close_fd(&p->spec_fd); /* EOF tells the runner the spec is complete */
}

int sandbox_pump_poll_fds(sandbox_pump *p, struct pollfd *pf, int n)
{
    for (int i = 0; i < 4; i++)
        p->slot[i] = -1;
    for (int i = 0; i < 2; i++)
        if (p->streams[i].fd >= 0)
            pf[p->slot[SLOT_OUT + i] = n++] = (struct pollfd){.fd = p->streams[i].fd, .events = POLLIN};
    if (p->spec_fd >= 0)
        pf[p->slot[SLOT_SPEC] = n++] = (struct pollfd){.fd = p->spec_fd, .events = POLLOUT};
    if (p->result_fd >= 0)
        pf[p->slot[SLOT_RESULT] = n++] = (struct pollfd){.fd = p->result_fd, .events = POLLIN};
    return n;
}

static bool ready(const sandbox_pump *p, const struct pollfd *pf, int which)
{
    return p->slot[which] >= 0 && pf[p->slot[which]].revents;
}

void sandbox_pump_on_poll(sandbox_pump *p, const struct pollfd *pf)
{
    for (int i = 0; i < 2; i++)
        if (ready(p, pf, SLOT_OUT + i) && p->streams[i].fd >= 0)
            read_stream(p, &p->streams[i]);
    if (ready(p, pf, SLOT_SPEC) && p->spec_fd >= 0)
        write_spec(p);
    if (ready(p, pf, SLOT_RESULT) && p->result_fd >= 0)
        read_result(p);
}

void sandbox_pump_drain(sandbox_pump *p)
{
    for (int i = 0; i < 2; i++) {
        while (p->streams[i].fd >= 0) {
            struct pollfd pf = {.fd = p->streams[i].fd, .events = POLLIN};
            if (poll(&pf, 1, 0) <= 0)
                break;
            read_stream(p, &p->streams[i]);
        }
    }
    while (p->result_fd >= 0) {
        read_result(p);
        struct pollfd pf = {.fd = p->result_fd, .events = POLLIN};
        if (p->result_fd < 0 || poll(&pf, 1, 0) <= 0)
            break;
    }
}

void sandbox_pump_report(const sandbox_pump *p, sandbox_outcome *out)
{
    out->stdout_bytes = p->streams[0].bytes;
    out->stderr_bytes = p->streams[1].bytes;
    out->stdout_truncated = p->streams[0].truncated;
    out->stderr_truncated = p->streams[1].truncated;
}

void sandbox_pump_free(sandbox_pump *p)
{
    close_fd(&p->streams[0].fd);
    close_fd(&p->streams[1].fd);
    close_fd(&p->spec_fd);
    close_fd(&p->result_fd);
    free(p->spec);
    free(p->result);
    p->spec = p->result = NULL;
}
