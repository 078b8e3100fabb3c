/* Connections that do not finish their request: every request's headers must arrive within
 * a fixed time of the connection opening (or of the previous request on it ending), and
 * when more connections than a limit have a request not yet fully received (headers or
 * body still coming, or idle between keep-alive requests) the oldest of them are closed.
 * libmicrohttpd's own timeout counts idle time only, so a slowloris client sending a header
 * byte a second would otherwise hold a connection for ever; and its connection limit turns
 * away the newcomer, not the old: enough half-open connections would lock every client out.
 * A real client sends its request in milliseconds, so the oldest are the ones to let go. */
#ifndef EXECUTORD_API_DEADLINE_H
#define EXECUTORD_API_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

typedef struct api_deadline api_deadline;

/* Starts the thread that enforces the header deadline (header_ms) and reports evictions;
 * at most max_incomplete connections may have an incomplete request (at least 1).
 * NULL with err set on failure. */
api_deadline *api_deadline_start(int64_t header_ms, unsigned max_incomplete, char *err, size_t errlen);
/* Stops the thread and frees what is left; call after MHD_stop_daemon. NULL is fine. */
void api_deadline_stop(api_deadline *d);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls = the api_deadline). */
void api_deadline_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe);
/* The request's headers are in: no header deadline, but still evictable until the body is. */
void api_deadline_headers_done(api_deadline *d, struct MHD_Connection *conn);
/* The whole request is in: neither deadline nor eviction until the next request. */
void api_deadline_request_received(api_deadline *d, struct MHD_Connection *conn);
/* A request was answered and the connection stays open: the next one's headers are due
 * from now, and while it waits for them the connection is evictable. */
void api_deadline_next_request(api_deadline *d, struct MHD_Connection *conn);

#endif
