/* Store locations given as URLs: which ones name PostgreSQL, and their form for logs and
 * error texts, with any password hidden (user:secret@ and password= parameters). */
#ifndef EXECUTORD_STORE_URL_H
#define EXECUTORD_STORE_URL_H

#include <stdbool.h>
#include <stddef.h>

/* postgresql://... or postgres://... */
bool store_url_is_postgres(const char *location);

/* location with its password replaced by "***" (user:***@host, password=***), into out
 * (always NUL-terminated, cut to n - 1 bytes). A location without one is copied as is. */
void store_location_redacted(const char *location, char *out, size_t n);

/* The password the location carries (raw, as written), malloc'd, or NULL when none (or
 * out of memory): so that an error text that quotes it can be withheld. */
char *store_location_password(const char *location);

#endif
