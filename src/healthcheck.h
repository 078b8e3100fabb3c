/* `executord --healthcheck`: the container's HEALTHCHECK without curl in the image. Asks
 * the instance configured by the same flags/environment whether it is ready. */
#ifndef EXECUTORD_HEALTHCHECK_H
#define EXECUTORD_HEALTHCHECK_H

/* GETs /readyz from host:port over plain TCP (a wildcard host means this machine). Prints
 * one line (stdout when ready, stderr otherwise) and returns the exit status Docker
 * expects: 0 ready (HTTP 200), 1 not ready or unreachable. timeout_ms bounds the whole. */
int healthcheck_run(const char *host, int port, int timeout_ms);

#endif
