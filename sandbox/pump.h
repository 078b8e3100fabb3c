/* A running job's I/O as the service sees it while supervising: stdout and stderr read
 * under the output cap and handed to the core, the spec written to the runner, the result
 * document read under the same cap. Driven by the one supervisor (supervise.c) for cold and
 * warm sandboxes alike. */
#ifndef EXECUTORD_SANDBOX_PUMP_H
#define EXECUTORD_SANDBOX_PUMP_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/sandbox.h"

typedef enum pump_overflow {
    PUMP_OUTPUT_OVER, /* a stream passed the cap: the rest is dropped */
    PUMP_RESULT_OVER, /* the result document passed the cap (or could not be held) */
} pump_overflow;

typedef struct pump_stream {
    int fd;           /* read end, -1 once at EOF */
    int id;           /* SANDBOX_STDOUT or SANDBOX_STDERR */
    uint64_t bytes;   /* delivered to the core */
    bool truncated;
} pump_stream;

typedef struct sandbox_pump {
    const sandbox_io *io;
    uint64_t cap;                 /* max_output_bytes, per stream and for the result */
    pump_stream streams[2];
    int spec_fd;                  /* our end of the runner's spec socket; closed = EOF */
    char *spec;                   /* owned */
    size_t spec_len, spec_off;
    int result_fd;
    char *result;                 /* owned; result_len bytes, not NUL-terminated */
    size_t result_len, result_size;
    /* Called when a cap is passed (once per stream for output): the supervisor kills. */
    void (*overflow)(void *ctx, pump_overflow what, int stream_id);
    void *ctx;
    int slot[4];                  /* poll slots of the last sandbox_pump_poll_fds */
} sandbox_pump;

/* Every fd -1, buffers empty; a cap of 0 means unlimited. */
void sandbox_pump_init(sandbox_pump *p, const sandbox_io *io, uint64_t max_output_bytes,
                       void (*overflow)(void *ctx, pump_overflow what, int stream_id), void *ctx);

/* Puts the descriptors that still need attention into pf from index n; returns the new
 * count (at most n + 4). */
int sandbox_pump_poll_fds(sandbox_pump *p, struct pollfd *pf, int n);
/* Moves data for every descriptor poll found ready (pf as filled above). */
void sandbox_pump_on_poll(sandbox_pump *p, const struct pollfd *pf);
/* After the sandbox is gone: reads what is left in the pipes (nothing more will come). */
void sandbox_pump_drain(sandbox_pump *p);

/* Output sizes and truncation into the outcome. */
void sandbox_pump_report(const sandbox_pump *p, sandbox_outcome *out);
/* Closes what is open and frees the buffers. */
void sandbox_pump_free(sandbox_pump *p);

#endif
