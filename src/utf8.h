/* UTF-8 hygiene for text that came from a script (its output) before it goes into JSON. */
#ifndef EXECUTORD_UTF8_H
#define EXECUTORD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool utf8_valid(const char *s, size_t len);
/* A malloc'd, NUL-terminated copy with every invalid sequence replaced by U+FFFD;
 * *outlen gets its length. NUL bytes are kept (JSON can carry them as \u0000). */
char *utf8_sanitize(const char *s, size_t len, size_t *outlen);

#endif
