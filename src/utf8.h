/* UTF-8 hygiene for text that came from a script (its output) before it goes into JSON. */
#ifndef EXECUTORD_UTF8_H
#define EXECUTORD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool utf8_valid(const char *s, size_t len);
/* A malloc'd, NUL-terminated copy with every invalid sequence replaced by U+FFFD;
 * *outlen gets its length. NUL bytes are kept (JSON can carry them as \u0000). */
char *utf8_sanitize(const char *s, size_t len, size_t *outlen);
/* len without a trailing multi-byte sequence that is valid so far but cut short (by the end
 * of a window or of what a running job has written yet), so the next piece starts with the
 * whole character instead of two halves each repaired to U+FFFD. */
size_t utf8_complete_len(const char *s, size_t len);

#endif
