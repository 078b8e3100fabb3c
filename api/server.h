/* The HTTP server: libmicrohttpd glue that owns the listening socket and hands each
 * complete request to the router. The only entry points main() needs. */
#ifndef EXECUTORD_API_SERVER_H
#define EXECUTORD_API_SERVER_H

#include <stddef.h>

#include "src/config.h"
#include "src/scheduler.h"
#include "src/store.h"

typedef struct api_server api_server;

/* Binds cfg->listen_host:listen_port and starts serving. NULL with err set on failure. */
api_server *api_server_start(const config *cfg, store *st, scheduler *sch, char *err, size_t errlen);
/* New job submissions are refused with 503 from now on (shutdown began); reads still work. */
void api_server_refuse_new_jobs(api_server *srv);
/* Resumes every waiting request, stops the daemon, frees everything. */
void api_server_stop(api_server *srv);
/* The port actually bound (useful with port 0). */
int api_server_port(const api_server *srv);

#endif
