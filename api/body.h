/* A response body produced piece by piece as the client takes it: literal text, and ranges
 * of one job's stored output (raw, or as JSON string content) or result, each read from the
 * store in small pieces. No response holds a whole stream or result in memory. */
#ifndef EXECUTORD_API_BODY_H
#define EXECUTORD_API_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "src/store.h"

typedef struct api_body api_body;

/* NULL when out of memory. The store must outlive the body. */
api_body *api_body_new(store *st, const char *job_id);
void api_body_free(api_body *b);

/* Each appends one part; 0, or -1 when out of memory (the body is then unusable). */
int api_body_text(api_body *b, const char *text, size_t len);
/* Bytes [from, to) of a stream. json: as JSON string content (no quotes), repaired to
 * valid UTF-8; up to 6 bytes per byte (\u0000), so the body's size is no longer known. */
int api_body_output(api_body *b, int stream, uint64_t from, uint64_t to, bool json);
/* Bytes [from, to) of the job's result JSON text, as stored. */
int api_body_result(api_body *b, uint64_t from, uint64_t to);

/* The body's length, or UINT64_MAX when it is not known in advance. */
uint64_t api_body_size(const api_body *b);

/* Copies the next bytes into buf: how many (> 0), 0 at the end, -1 when the store failed
 * or the job's data went away meanwhile (the response must then end in error). */
ssize_t api_body_read(api_body *b, char *buf, size_t max);

#endif
