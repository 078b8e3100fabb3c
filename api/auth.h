/* Bearer-token authentication of API requests. */
#ifndef EXECUTORD_API_AUTH_H
#define EXECUTORD_API_AUTH_H

#include <stdbool.h>

/* True when no token is configured (token empty), or authorization is
 * "Bearer <token>" (scheme case-insensitive). The token comparison takes the same time
 * whatever the first differing byte. */
bool api_auth_ok(const char *token, const char *authorization);

#endif
