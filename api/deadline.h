/* The header deadline: every request's headers must arrive within a fixed time of the
 * connection opening (or of the previous request on it ending). libmicrohttpd's own
 * timeout counts idle time only, so a slowloris client sending a header byte a second
 * would otherwise hold a connection, and with enough of them every connection, for ever. */
#ifndef EXECUTORD_API_DEADLINE_H
#define EXECUTORD_API_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

typedef struct api_deadline api_deadline;

/* Starts the thread that enforces it. NULL with err set on failure. */
api_deadline *api_deadline_start(int64_t header_ms, char *err, size_t errlen);
/* Stops the thread and frees what is left; call after MHD_stop_daemon. NULL is fine. */
void api_deadline_stop(api_deadline *d);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls = the api_deadline). */
void api_deadline_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe);
/* The request's headers are in: no deadline until the next request. */
void api_deadline_headers_done(api_deadline *d, struct MHD_Connection *conn);
/* A request ended: the next one's headers are due from now. */
void api_deadline_next_request(api_deadline *d, struct MHD_Connection *conn);

#endif
