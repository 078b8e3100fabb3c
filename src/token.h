/* The API token when the operator names no --api-token-file: generated once, at first
 * start, into <data-dir>/api-token (0600) and reused by every later start. */
#ifndef EXECUTORD_TOKEN_H
#define EXECUTORD_TOKEN_H

#include <stddef.h>

#include "src/config.h"

#define TOKEN_FILE_NAME "api-token"

/* Fills c->api_token unless --insecure-no-auth or --api-token-file already decided it:
 * reads <data_dir>/api-token, or creates it with 256 random bits (64 hex digits). A file
 * that is not a regular file of ours, or is readable by others, is refused. Returns 0
 * (path, when given, names the file used, or "" when none), or -1 with err set. */
int token_prepare(config *c, char *path, size_t pathlen, char *err, size_t errlen);

#endif
