/* libFuzzer harness: the request line as the API sees it. Input "METHOD /path?query"
 * (no space: GET). The path is percent-decoded (as libmicrohttpd does) and routed with
 * api_route_match_path; the query is split on '&' and '=' and every value goes through
 * its parser in api/validate.h (unknown names through all of them). Asserts that
 * accepted values are in range and round-trip, and that refusals are 400s. */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "api/validate.h"
#include "tests/fuzz/fuzz_check.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* In-place %XX decoding (a malformed escape is kept as is); "%00" ends the C string, as
 * it would for the service. */
static void percent_decode(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

static void check_param_error(int rc, const api_error *e, const char *name)
{
    CHECK(rc == 0 || rc == -1);
    if (rc == 0)
        return;
    CHECK(e->status == 400);
    CHECK(e->code && strcmp(e->code, "invalid_parameter") == 0);
    CHECK(e->field[0] == '\0');
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", name);
    CHECK(strstr(e->message, quoted) != NULL);
}

static void check_route(const char *method, const char *path)
{
    api_route_match m;
    api_route_match_path(method, path, &m);
    if (m.route == ROUTE_NONE) {
        CHECK(m.endpoint == EP_NONE && m.allow == NULL && !m.needs_auth);
        CHECK(m.job_id[0] == '\0');
        return;
    }
    CHECK(m.allow != NULL);
    CHECK(strstr(path, "..") == NULL && strchr(path, '?') == NULL);
    CHECK(m.needs_auth == !(m.route == ROUTE_HEALTHZ || m.route == ROUTE_READYZ ||
                            m.route == ROUTE_DASHBOARD || m.route == ROUTE_OPENAPI));
    if (m.endpoint != EP_NONE) {
        /* the method is one of the Allow header's tokens */
        size_t ml = strlen(method);
        const char *p = m.allow;
        bool found = false;
        while ((p = strstr(p, method)) != NULL) {
            if ((p == m.allow || p[-1] == ' ') && (p[ml] == '\0' || p[ml] == ','))
                found = true;
            p++;
        }
        CHECK(found);
    }
    char expect[128];
    switch (m.route) {
    case ROUTE_HEALTHZ: CHECK(strcmp(path, "/healthz") == 0); break;
    case ROUTE_READYZ: CHECK(strcmp(path, "/readyz") == 0); break;
    case ROUTE_BACKENDS: CHECK(strcmp(path, "/v1/backends") == 0); break;
    case ROUTE_JOBS: CHECK(strcmp(path, "/v1/jobs") == 0); break;
    case ROUTE_JOB:
    case ROUTE_JOB_LOGS:
    case ROUTE_JOB_CANCEL:
        CHECK(job_id_valid(m.job_id));
        snprintf(expect, sizeof expect, "/v1/jobs/%s%s", m.job_id,
                 m.route == ROUTE_JOB ? "" : m.route == ROUTE_JOB_LOGS ? "/logs" : "/cancel");
        CHECK(strcmp(path, expect) == 0);
        break;
    case ROUTE_METRICS: CHECK(strcmp(path, "/metrics") == 0); break;
    case ROUTE_OPENAPI: CHECK(strcmp(path, "/openapi.yaml") == 0); break;
    case ROUTE_DASHBOARD:
        /* the page itself, or one plain file name: never a path, never hidden */
        snprintf(expect, sizeof expect, "%s%s", m.asset[0] ? "/ui/" : "/", m.asset);
        CHECK(strcmp(path, expect) == 0);
        CHECK(strchr(m.asset, '/') == NULL && m.asset[0] != '.');
        CHECK(m.asset[0] == '\0' || strchr(m.asset, '.') == strrchr(m.asset, '.'));
        break;
    case ROUTE_NONE: break;
    }
}

static bool is_decimal(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void check_value(const char *name, const char *value)
{
    bool all = !(strcmp(name, "wait") == 0 || strcmp(name, "limit") == 0 ||
                 strcmp(name, "cursor") == 0 || strcmp(name, "status") == 0 ||
                 strcmp(name, "label") == 0 || strcmp(name, "stream") == 0 ||
                 strcmp(name, "offset") == 0);
    api_error e;
    int rc;

    if (all || strcmp(name, "wait") == 0) {
        double s = -1;
        api_error_clear(&e);
        rc = api_parse_wait(value, &s, &e);
        check_param_error(rc, &e, "wait");
        if (rc == 0)
            CHECK(isfinite(s) && s >= 0 && s <= API_MAX_WAIT_SECONDS);
        if (rc == 0 && value)
            CHECK(strspn(value, "0123456789.") == strlen(value));
        if (!value)
            CHECK(rc == 0 && s == 0);
    }
    if (all || strcmp(name, "limit") == 0) {
        size_t lim = 0;
        api_error_clear(&e);
        rc = api_parse_limit(value, &lim, &e);
        check_param_error(rc, &e, "limit");
        if (rc == 0)
            CHECK(lim >= 1 && lim <= API_MAX_LIST_LIMIT);
        if (rc == 0 && value)
            CHECK(is_decimal(value) && strtoull(value, NULL, 10) == lim);
        if (!value)
            CHECK(rc == 0 && lim == API_DEFAULT_LIST_LIMIT);
    }
    if (all || strcmp(name, "cursor") == 0) {
        int64_t before = -1;
        api_error_clear(&e);
        rc = api_parse_cursor(value, &before, &e);
        check_param_error(rc, &e, "cursor");
        if (rc == 0 && value) {
            CHECK(before > 0);
            char buf[24];
            api_format_cursor(before, buf, sizeof buf);
            CHECK(strcmp(buf, value) == 0); /* a cursor is canonical: it round-trips */
        }
        if (!value)
            CHECK(rc == 0 && before == 0);
    }
    if (all || strcmp(name, "status") == 0) {
        bool has = true;
        job_status st = JOB_QUEUED;
        api_error_clear(&e);
        rc = api_parse_status(value, &has, &st, &e);
        check_param_error(rc, &e, "status");
        if (rc == 0 && value)
            CHECK(has && strcmp(job_status_name(st), value) == 0);
        if (!value || rc < 0)
            CHECK(!has);
    }
    if (all || strcmp(name, "label") == 0) {
        char key[API_MAX_LABEL_KEY + 1], val[API_MAX_LABEL_VALUE + 1];
        bool has = true;
        api_error_clear(&e);
        rc = api_parse_label(value, key, val, &has, &e);
        check_param_error(rc, &e, "label");
        if (rc == 0 && value) {
            CHECK(has);
            size_t kl = strlen(key);
            CHECK(api_label_key_valid(key, kl));
            CHECK(strlen(val) <= API_MAX_LABEL_VALUE);
            CHECK(strncmp(value, key, kl) == 0 && value[kl] == ':' &&
                  strcmp(value + kl + 1, val) == 0);
        }
        if (!value || rc < 0)
            CHECK(!has);
    }
    if (all || strcmp(name, "stream") == 0) {
        int stream = -1;
        api_error_clear(&e);
        rc = api_parse_stream(value, &stream, &e);
        check_param_error(rc, &e, "stream");
        if (rc == 0 && value)
            CHECK((stream == SANDBOX_STDOUT && strcmp(value, "stdout") == 0) ||
                  (stream == SANDBOX_STDERR && strcmp(value, "stderr") == 0));
        if (!value)
            CHECK(rc == 0 && stream == 0);
    }
    if (all || strcmp(name, "offset") == 0) {
        uint64_t off = UINT64_MAX;
        api_error_clear(&e);
        rc = api_parse_offset(value, &off, &e);
        check_param_error(rc, &e, "offset");
        if (rc == 0 && value)
            CHECK(off <= INT64_MAX && is_decimal(value) &&
                  strtoull(value, NULL, 10) == off);
        if (!value)
            CHECK(rc == 0 && off == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *line = malloc(size + 1);
    CHECK(line != NULL);
    memcpy(line, data, size);
    line[size] = '\0';

    /* "METHOD target": the method is what comes before the first space, if any. */
    const char *method = "GET";
    char *target = line;
    char *sp = strchr(line, ' ');
    if (sp) {
        *sp = '\0';
        method = line;
        target = sp + 1;
    }
    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    percent_decode(target);
    check_route(method, target);
    check_route(NULL, target);

    /* Every parser's default (parameter absent). */
    check_value("", NULL);

    if (query) {
        char *save = NULL;
        for (char *pair = strtok_r(query, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(pair, '=');
            char none[1] = "";
            char *value = none;
            if (eq) {
                *eq = '\0';
                value = eq + 1;
            }
            percent_decode(pair);
            percent_decode(value);
            check_value(pair, value);
        }
    }

    /* A cursor the API hands out always parses back to itself. */
    if (size >= 8) {
        int64_t seq;
        memcpy(&seq, data, sizeof seq);
        if (seq > 0) {
            char buf[24];
            api_format_cursor(seq, buf, sizeof buf);
            int64_t back = 0;
            api_error e;
            api_error_clear(&e);
            CHECK(api_parse_cursor(buf, &back, &e) == 0 && back == seq);
        }
    }
    free(line);
    return 0;
}
