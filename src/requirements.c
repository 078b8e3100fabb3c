/* Requirement strings: a deliberately small subset of PEP 508 (a name, extras, version
 * specifiers). Everything else pip understands in a requirement (options, URLs, paths,
 * markers) either fetches from somewhere the operator did not configure or changes how pip
 * runs, so it is refused by name before the grammar is even tried, to give a clear reason.
 * The normalized form is the cache's key: equal sets must give equal text. */
#include "src/requirements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#define MAX_PARTS (REQ_MAX_BYTES / 2 + 1) /* extras or specifiers: each takes >= 2 bytes */

static const char not_plain[] =
    "is not a plain requirement: expected a project name, optional [extras] and version "
    "specifiers such as ==1.0 or >=2,<3";

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_name_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static bool is_version_char(char c)
{
    return is_alnum(c) || c == '.' || c == '*' || c == '+' || c == '!' || c == '_' || c == '-';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool contains(const char *s, size_t len, const char *needle, bool nocase)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (nocase ? strncasecmp(s + i, needle, n) == 0 : memcmp(s + i, needle, n) == 0)
            return true;
    return false;
}

/* The forms pip would act on, each refused with its own reason; NULL when none. */
static const char *refused_form(const char *s, size_t len)
{
    size_t lead = 0;
    while (lead < len && s[lead] == ' ')
        lead++;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "contains a control character (newline, NUL, tab, ...)";
    if (lead < len && s[lead] == '-')
        return "options (starting with '-') are not allowed";
    if (contains(s, len, "://", false))
        return "URLs are not allowed: packages come only from the configured sources";
    if (memchr(s, '@', len))
        return "direct references ('name @ url') are not allowed";
    if (contains(s, len, "file:", true))
        return "file: references are not allowed";
    if (memchr(s, '/', len) || memchr(s, '\\', len) || (lead < len && s[lead] == '.'))
        return "paths are not allowed";
    if (memchr(s, ';', len))
        return "environment markers (';') are not allowed";
    if (memchr(s, '#', len))
        return "comments ('#') are not allowed";
    return NULL;
}

typedef struct cursor {
    const char *s;
    size_t len, i;
} cursor;

static void skip_spaces(cursor *c)
{
    while (c->i < c->len && c->s[c->i] == ' ')
        c->i++;
}

static bool at(const cursor *c, char ch)
{
    return c->i < c->len && c->s[c->i] == ch;
}

/* [A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])? at the cursor; its length, 0 when none. */
static size_t take_name(cursor *c)
{
    size_t start = c->i;
    if (c->i >= c->len || !is_alnum(c->s[c->i]))
        return 0;
    while (c->i < c->len && is_name_char(c->s[c->i]))
        c->i++;
    if (!is_alnum(c->s[c->i - 1]))
        return 0; /* "a-" then something: no name ends that way */
    return c->i - start;
}

/* Pieces of the normalized form, copied into a scratch buffer so they can be sorted. */
typedef struct parts {
    const char *item[MAX_PARTS];
    size_t n;
    char buf[2 * REQ_MAX_BYTES + 2];
    size_t used;
} parts;

static const char *parts_add(parts *p, const char *a, size_t alen, const char *b, size_t blen,
                             bool fold)
{
    if (p->n >= MAX_PARTS || p->used + alen + blen + 1 > sizeof p->buf)
        return NULL; /* cannot happen within REQ_MAX_BYTES, but never overflow */
    char *dst = p->buf + p->used;
    for (size_t k = 0; k < alen; k++)
        dst[k] = fold ? lower(a[k]) : a[k];
    memcpy(dst + alen, b, blen);
    dst[alen + blen] = '\0';
    p->used += alen + blen + 1;
    p->item[p->n++] = dst;
    return dst;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, each once. */
static void parts_sort_unique(parts *p)
{
    qsort(p->item, p->n, sizeof p->item[0], cmp_str);
    size_t out = 0;
    for (size_t k = 0; k < p->n; k++)
        if (out == 0 || strcmp(p->item[out - 1], p->item[k]) != 0)
            p->item[out++] = p->item[k];
    p->n = out;
}

/* "[a, b]" at the cursor (already known to be at '['); -1 when malformed. */
static int take_extras(cursor *c, parts *extras)
{
    c->i++; /* '[' */
    skip_spaces(c);
    if (at(c, ']')) {
        c->i++; /* "[]" names no extra: allowed by PEP 508, dropped */
        return 0;
    }
    for (;;) {
        skip_spaces(c);
        size_t start = c->i, n = take_name(c);
        if (!n || !parts_add(extras, c->s + start, n, "", 0, true))
            return -1;
        skip_spaces(c);
        if (at(c, ']')) {
            c->i++;
            return 0;
        }
        if (!at(c, ','))
            return -1;
        c->i++;
    }
}

/* Longest first, so "===" is not read as "==" and "=". */
static const char *const operators[] = {"===", "~=", "==", "!=", "<=", ">=", "<", ">"};

static size_t take_operator(cursor *c)
{
    for (size_t k = 0; k < sizeof operators / sizeof operators[0]; k++) {
        size_t n = strlen(operators[k]);
        if (c->len - c->i >= n && memcmp(c->s + c->i, operators[k], n) == 0) {
            c->i += n;
            return n;
        }
    }
    return 0;
}

/* ">=1, <2" at the cursor up to the end; -1 when malformed. */
static int take_specifiers(cursor *c, parts *specs)
{
    for (;;) {
        skip_spaces(c);
        size_t op_at = c->i, op = take_operator(c);
        if (!op)
            return -1;
        skip_spaces(c);
        size_t v_at = c->i;
        while (c->i < c->len && is_version_char(c->s[c->i]))
            c->i++;
        if (c->i == v_at || !parts_add(specs, c->s + op_at, op, c->s + v_at, c->i - v_at, false))
            return -1;
        skip_spaces(c);
        if (c->i == c->len)
            return 0;
        if (!at(c, ','))
            return -1;
        c->i++;
    }
}

/* PEP 503: lowercase, each run of '-', '_', '.' one '-'. */
static size_t canonical_name(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        char ch = s[k];
        if (ch == '-' || ch == '_' || ch == '.') {
            if (o == 0 || out[o - 1] != '-')
                out[o++] = '-';
        } else {
            out[o++] = lower(ch);
        }
    }
    out[o] = '\0';
    return o;
}

/* Appends src to dst (of REQ_MAX_BYTES + 1 bytes, *o used); false when it would not fit. */
static bool append(char *dst, size_t *o, const char *src)
{
    size_t n = strlen(src);
    if (*o + n > REQ_MAX_BYTES)
        return false;
    memcpy(dst + *o, src, n + 1);
    *o += n;
    return true;
}

static bool compose(requirement *out, size_t name_len, const parts *extras, const parts *specs)
{
    size_t o = name_len;
    memcpy(out->text, out->name, name_len + 1);
    for (size_t k = 0; k < extras->n; k++)
        if (!append(out->text, &o, k == 0 ? "[" : ",") || !append(out->text, &o, extras->item[k]))
            return false;
    if (extras->n && !append(out->text, &o, "]"))
        return false;
    for (size_t k = 0; k < specs->n; k++)
        if ((k && !append(out->text, &o, ",")) || !append(out->text, &o, specs->item[k]))
            return false;
    return true;
}

int requirement_parse(const char *s, size_t len, requirement *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (len > REQ_MAX_BYTES) {
        *why = "is longer than 256 bytes";
        return -1;
    }
    if ((*why = refused_form(s, len)))
        return -1;
    cursor c = {s, len, 0};
    skip_spaces(&c);
    if (c.i == len) {
        *why = "is empty";
        return -1;
    }
    parts extras = {.n = 0}, specs = {.n = 0}; /* ~1.5 KiB each */
    *why = not_plain;
    size_t name_at = c.i, name_len = take_name(&c);
    if (!name_len)
        goto fail;
    size_t canon_len = canonical_name(s + name_at, name_len, out->name);
    skip_spaces(&c);
    if (at(&c, '[') && take_extras(&c, &extras) < 0)
        goto fail;
    skip_spaces(&c);
    if (c.i < len && take_specifiers(&c, &specs) < 0)
        goto fail;
    parts_sort_unique(&extras);
    parts_sort_unique(&specs);
    if (!compose(out, canon_len, &extras, &specs))
        goto fail;
    *why = NULL;
    return 0;
fail:
    memset(out, 0, sizeof *out);
    return -1;
}

static int cmp_requirement(const void *a, const void *b)
{
    return strcmp(((const requirement *)a)->name, ((const requirement *)b)->name);
}

int requirements_normalize(const char *const *items, const size_t *lens, size_t n, char **json,
                           size_t *bad, char *why, size_t whylen)
{
    *json = NULL;
    *bad = n;
    if (n > REQ_MAX_ITEMS) {
        snprintf(why, whylen, "may hold at most %d items (got %zu)", REQ_MAX_ITEMS, n);
        return -1;
    }
    if (n == 0)
        return 0;
    requirement *reqs = calloc(n, sizeof *reqs);
    json_t *arr = json_array();
    int rc = -1;
    snprintf(why, whylen, "out of memory");
    if (!reqs || !arr)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const char *reason;
        if (requirement_parse(items[i], lens[i], &reqs[i], &reason) < 0) {
            *bad = i;
            snprintf(why, whylen, "%s", reason);
            goto done;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(reqs[k].name, reqs[i].name) == 0) {
                *bad = i;
                snprintf(why, whylen, "duplicates project '%s' (item %zu): name each project once",
                         reqs[i].name, k);
                goto done;
            }
    }
    qsort(reqs, n, sizeof *reqs, cmp_requirement);
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(arr, json_string(reqs[i].text)) != 0)
            goto done;
    if (!(*json = json_dumps(arr, JSON_COMPACT)))
        goto done;
    rc = 0;
    why[0] = '\0';
done:
    json_decref(arr);
    free(reqs);
    return rc;
}
