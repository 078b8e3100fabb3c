/* The Host and Origin checks (see origin.h). A browser attaches Origin to every
 * cross-origin request and to every POST, and Sec-Fetch-Site to every request since
 * 2020-2023 (Chromium, Firefox, Safari), so a page cannot make either say "same origin". */
#include "api/origin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The host part of a Host header ("name:port", "[v6]:port", "name"), lower-cased, with
 * one trailing dot removed ("localhost." names the same host). False when malformed. */
static bool host_part(const char *host, char *out, size_t outlen)
{
    const char *start = host, *end;
    if (host[0] == '[') {
        start = host + 1;
        end = strchr(start, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return false;
    } else {
        end = strchr(host, ':');
        if (!end)
            end = host + strlen(host);
        else if (strchr(end + 1, ':'))
            return false; /* an IPv6 address must be bracketed */
    }
    size_t n = (size_t)(end - start);
    if (n > 0 && start[n - 1] == '.')
        n--;
    if (n == 0 || n >= outlen)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)start[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '_')
            return false;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return true;
}

static bool is_address_literal(const char *h)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

bool api_host_allowed(const config *cfg, const char *host)
{
    if (!host)
        return true;
    char h[256];
    if (!host_part(host, h, sizeof h))
        return false;
    if (config_host_is_loopback(h) || is_address_literal(h) || strcasecmp(h, cfg->listen_host) == 0)
        return true;
    for (int i = 0; i < cfg->n_allowed_hosts; i++)
        if (strcmp(cfg->allowed_hosts[i], "*") == 0 || strcmp(cfg->allowed_hosts[i], h) == 0)
            return true;
    return false;
}

/* "example:80" and "example" are one authority for http, ":443" for https. */
static void authority_without_default_port(const char *authority, const char *scheme, char *out,
                                           size_t outlen)
{
    size_t n = strlen(authority);
    const char *dflt = strcmp(scheme, "https") == 0 ? ":443" : ":80";
    size_t dl = strlen(dflt);
    if (n > dl && strcmp(authority + n - dl, dflt) == 0)
        n -= dl;
    snprintf(out, outlen, "%.*s", (int)n, authority);
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

static bool same_origin(const char *host, const char *origin)
{
    const char *sep = strstr(origin, "://");
    if (!sep)
        return false;
    char scheme[8];
    size_t sl = (size_t)(sep - origin);
    if (sl == 0 || sl >= sizeof scheme)
        return false;
    for (size_t i = 0; i < sl; i++)
        scheme[i] = (char)tolower((unsigned char)origin[i]);
    scheme[sl] = '\0';
    /* Behind a TLS-terminating proxy the page is https and the hop to us is http: the
     * authority is what identifies the service. */
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        return false;
    const char *authority = sep + 3;
    if (strchr(authority, '/'))
        return false; /* an Origin has no path */
    char a[300], b[300];
    authority_without_default_port(authority, scheme, a, sizeof a);
    authority_without_default_port(host, scheme, b, sizeof b);
    return a[0] != '\0' && strcmp(a, b) == 0;
}

bool api_cross_origin(const char *host, const char *origin, const char *sec_fetch_site)
{
    if (sec_fetch_site && strcasecmp(sec_fetch_site, "same-origin") != 0 &&
        strcasecmp(sec_fetch_site, "none") != 0)
        return true;
    if (!origin)
        return false;
    return !host || !same_origin(host, origin);
}
