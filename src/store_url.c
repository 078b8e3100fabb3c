/* Store locations given as URLs (src/store_url.h): recognising PostgreSQL's, and hiding
 * a password before a location reaches a log line or an error text, so that the only
 * place the password goes is the connection itself. */
#include "src/store_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

bool store_url_is_postgres(const char *location)
{
    return location && (has_prefix(location, "postgresql://") || has_prefix(location, "postgres://"));
}

/* Appends n bytes of s to out (size cap, used *len), cutting at the end. */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (cap == 0)
        return;
    size_t room = cap - 1 - *len;
    if (n > room)
        n = room;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
}

/* The password's span in location: after "user:" in the authority, or the value of a
 * password= query parameter (the first of either). False when there is none. */
static bool password_span(const char *loc, size_t from, size_t *start, size_t *end)
{
    const char *auth = strstr(loc, "://");
    if (!auth)
        return false;
    auth += 3;
    size_t auth_end = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + auth_end; p++)
        if (*p == '@')
            at = p;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        size_t s = colon ? (size_t)(colon + 1 - loc) : 0;
        if (colon && s >= from) {
            *start = s;
            *end = (size_t)(at - loc);
            return true;
        }
    }
    const char *q = strchr(auth + auth_end, '?');
    for (const char *p = q; p && *p;) {
        p++; /* past '?' or '&' */
        if (has_prefix(p, "password=") && (size_t)(p - loc) + 9 >= from) {
            *start = (size_t)(p - loc) + 9;
            *end = *start + strcspn(loc + *start, "&#");
            return true;
        }
        p = strchr(p, '&');
    }
    return false;
}

void store_location_redacted(const char *location, char *out, size_t n)
{
    if (n == 0)
        return;
    out[0] = '\0';
    if (!location)
        return;
    size_t len = 0, done = 0, s, e;
    /* Each password span in turn (the authority's, then password= parameters). */
    while (password_span(location, done, &s, &e)) {
        put(out, n, &len, location + done, s - done);
        put(out, n, &len, "***", 3);
        done = e;
    }
    put(out, n, &len, location + done, strlen(location + done));
}

char *store_location_password(const char *location)
{
    size_t s, e;
    if (!location || !password_span(location, 0, &s, &e) || e == s)
        return NULL;
    return strndup(location + s, e - s);
}
