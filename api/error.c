/* Filling an api_error: the one place that formats error messages, so every error body
 * has the same shape whatever layer noticed the problem. */
#include "api/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void api_error_clear(api_error *e)
{
    memset(e, 0, sizeof *e);
}

void api_error_set(api_error *e, unsigned int status, const char *code, const char *field,
                   const char *fmt, ...)
{
    e->status = status;
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}
