/* An API error as the wire contract spells it: HTTP status, machine code, human message
 * and (for 422 only) the JSON path of the offending field. Filled by parsers and
 * handlers, rendered once by the response layer. */
#ifndef EXECUTORD_API_ERROR_H
#define EXECUTORD_API_ERROR_H

#include <stddef.h>

typedef struct api_error {
    unsigned int status;   /* 0 = no error */
    const char *code;      /* static string, e.g. "invalid_field" */
    char field[192];       /* "" when the error names no field */
    char message[512];
} api_error;

void api_error_clear(api_error *e);
/* Sets every member; field may be NULL. */
void api_error_set(api_error *e, unsigned int status, const char *code, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
