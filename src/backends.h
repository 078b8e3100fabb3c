/* Which sandbox backends this instance can use: each is initialised once at start-up and
 * its availability (or the reason it is unavailable) recorded for validation and /readyz. */
#ifndef EXECUTORD_BACKENDS_H
#define EXECUTORD_BACKENDS_H

#include <stdbool.h>

#include "sandbox/sandbox.h"

/* Initialises the compiled-in backends named in enabled ("pool,ephemeral", --backends)
 * and those they build on (the pool starts cold jobs through ephemeral); the others are
 * recorded as not enabled. Logs each one's state. */
void backends_init(const sandbox_config *cfg, const char *enabled);
void backends_shutdown(void);
/* The backend when it is available, else NULL. */
const sandbox_backend *backends_get(const char *name);
/* True for every backend of the registry (sandbox/sandbox.c). */
bool backends_known(const char *name);
/* The registry's names, NULL-terminated, in its order. */
const char *const *backends_names(void);
/* True when usable; otherwise *why (if given) says why not. */
bool backends_available(const char *name, const char **why);
/* For an available backend, what the operator should know about how it runs here (e.g.
 * "no usable cgroups: rlimits only, because ..."); NULL when nothing. */
const char *backends_note(const char *name);
/* The backend's own state as a malloc'd JSON object text (a pool's counters), or NULL
 * when it reports none. */
char *backends_state_json(const char *name);

/* The network of network-enabled jobs (sandbox_network_json): malloc'd JSON text. */
char *backends_network_json(void);

#endif
