/* A job's `dependencies`: what a plain pip requirement is, and its normalized form, so
 * that the same set of packages always yields the same text (the cache's key) and nothing
 * that steers pip (options, URLs, paths, markers) ever reaches it. Pure code, no I/O. */
#ifndef EXECUTORD_REQUIREMENTS_H
#define EXECUTORD_REQUIREMENTS_H

#include <stdbool.h>
#include <stddef.h>

#define REQ_MAX_ITEMS 64
#define REQ_MAX_BYTES 256 /* of one requirement string */

/* One requirement, normalized: "name[extra,...]spec,spec" with the name canonical as
 * PEP 503 says (lowercase, runs of '-', '_', '.' become '-'), the extras lowercased,
 * sorted and without repeats, the specifiers without spaces, sorted, without repeats. */
typedef struct requirement {
    char text[REQ_MAX_BYTES + 1];
    char name[REQ_MAX_BYTES + 1]; /* the canonical project name alone */
} requirement;

/* Parses s (len bytes, which may hold NUL) as NAME[EXTRAS] SPECIFIERS: a project name
 * [A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?, optional extras [a,b], optional specifiers
 * (== != <= >= < > ~= ===, each with a version [A-Za-z0-9.*+!_-]+, comma-separated),
 * spaces allowed between the parts. Returns 0 with *out filled, or -1 with *why a static
 * sentence saying what is refused ("options (starting with '-') are not allowed"). */
int requirement_parse(const char *s, size_t len, requirement *out, const char **why);

/* A whole list: items[i] of lens[i] bytes, n of them. Returns 0 and sets *json to the
 * malloc'd canonical JSON array text (normalized items, sorted; ["a","b==1"]), or to NULL
 * for an empty list (no dependencies). Returns -1 when the list is refused: *bad is the
 * index of the item at fault (n when the list as a whole is: too many items) and why
 * says why, as a sentence ("duplicates project 'x' (item 1)"); *json stays NULL. Also -1
 * with *bad = n and why "out of memory" when allocation fails. */
int requirements_normalize(const char *const *items, const size_t *lens, size_t n, char **json,
                           size_t *bad, char *why, size_t whylen);

#endif
