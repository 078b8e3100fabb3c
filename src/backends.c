/* Backend availability: every backend of the registry (sandbox/sandbox.c) is initialised
 * once at start-up; the result (usable, or the reason it is not) is kept for request
 * validation, /readyz and /v1/backends. */
#include "src/backends.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/config.h"
#include "src/log.h"

#define MAX_BACKENDS 8

typedef struct backend_state {
    const sandbox_backend *backend;
    bool available;
    char why[256];
} backend_state;

static backend_state states[MAX_BACKENDS];
static int n_states;

/* A backend is started when enabled, or when an enabled one builds on it (the
 * registry's builds_on: the pool starts cold jobs through ephemeral). */
static bool needed(const char *enabled, const char *name)
{
    if (config_list_contains(enabled, name))
        return true;
    for (const sandbox_backend *const *b = sandbox_backends_all(); *b; b++)
        if ((*b)->builds_on && strcmp((*b)->builds_on, name) == 0 && needed(enabled, (*b)->name))
            return true;
    return false;
}

void backends_init(const sandbox_config *cfg, const char *enabled)
{
    n_states = 0;
    for (const sandbox_backend *const *b = sandbox_backends_all(); *b && n_states < MAX_BACKENDS; b++) {
        backend_state *s = &states[n_states++];
        s->backend = *b;
        s->why[0] = '\0';
        if (!needed(enabled, (*b)->name)) {
            s->available = false;
            snprintf(s->why, sizeof s->why, "not enabled on this instance (--backends)");
            log_info("backend %s: not enabled (--backends %s)", (*b)->name, enabled);
            continue;
        }
        s->available = (*b)->init(cfg, s->why, sizeof s->why) == 0;
        if (s->available && s->why[0])
            log_warn("backend %s: available with a caveat: %s", (*b)->name, s->why);
        else if (s->available)
            log_info("backend %s: available", (*b)->name);
        else
            log_warn("backend %s: not available: %s", (*b)->name, s->why);
    }
}

void backends_shutdown(void)
{
    /* Reverse order of init: a later backend may build on an earlier one's state (the
     * pool's cgroups live under the parent that ephemeral owns). */
    for (int i = n_states - 1; i >= 0; i--)
        if (states[i].available && states[i].backend->shutdown)
            states[i].backend->shutdown();
    n_states = 0;
}

static backend_state *find_state(const char *name)
{
    for (int i = 0; i < n_states; i++)
        if (strcmp(states[i].backend->name, name) == 0)
            return &states[i];
    return NULL;
}

const sandbox_backend *backends_get(const char *name)
{
    backend_state *s = find_state(name);
    return s && s->available ? s->backend : NULL;
}

bool backends_known(const char *name)
{
    return sandbox_backend_known(name, strlen(name));
}

static const char *names_list[MAX_BACKENDS + 1]; /* NULL-terminated */

static void list_names(void)
{
    size_t n = 0;
    for (const sandbox_backend *const *b = sandbox_backends_all(); *b && n < MAX_BACKENDS; b++)
        names_list[n++] = (*b)->name;
    names_list[n] = NULL;
}

const char *const *backends_names(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, list_names);
    return names_list;
}

const char *backends_note(const char *name)
{
    backend_state *s = find_state(name);
    return s && s->available && s->why[0] ? s->why : NULL;
}

char *backends_state_json(const char *name)
{
    backend_state *s = find_state(name);
    if (!s || !s->backend->status_json)
        return NULL;
    /* Grow until it fits: the state is small, but its reason texts are not bounded. */
    for (size_t len = 1024; len <= 65536; len *= 4) {
        char *buf = malloc(len);
        if (!buf)
            return NULL;
        if (s->backend->status_json(buf, len) >= 0)
            return buf;
        free(buf);
    }
    return NULL;
}

char *backends_network_json(void)
{
    return sandbox_network_json();
}

bool backends_available(const char *name, const char **why)
{
    backend_state *s = find_state(name);
    if (s && s->available) {
        if (why)
            *why = NULL;
        return true;
    }
    if (why)
        *why = s ? s->why : "this backend was not initialised";
    return false;
}
