/* Who may call, as far as browsers are concerned: the Host header must name this service
 * (against DNS rebinding) and a request a web page sends on its own behalf from another
 * origin is refused (against cross-site request forgery). Pure string checks. */
#ifndef EXECUTORD_API_ORIGIN_H
#define EXECUTORD_API_ORIGIN_H

#include <stdbool.h>

#include "src/config.h"

/* True when a request with this Host header (NULL: none, as HTTP/1.0 clients send) may be
 * served: loopback names and addresses, the listen address, any --allowed-host ('*':
 * all), and address literals (a page cannot rebind a name to an address literal). */
bool api_host_allowed(const config *cfg, const char *host);

/* True when a browser sent this request from a page that is not the service's own:
 * an Origin other than http(s)://<Host>, the "null" origin, or Sec-Fetch-Site other than
 * same-origin or none (the user typed the address). Clients that are not browsers send
 * neither header and pass. */
bool api_cross_origin(const char *host, const char *origin, const char *sec_fetch_site);

#endif
