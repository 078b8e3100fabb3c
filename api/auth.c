/* Bearer-token check. The comparison never exits early, so response timing does not
 * tell an attacker how many leading bytes of a guess were right. */
#include "api/auth.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Constant time in the content of both strings: every byte of the presented value is
 * compared (against the token cycled), and a length mismatch is folded into the result. */
static bool tokens_equal(const char *expected, size_t elen, const char *given, size_t glen)
{
    volatile unsigned char diff = (unsigned char)(elen != glen);
    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)((unsigned char)given[i] ^ (unsigned char)expected[i % elen]);
    return diff == 0;
}

bool api_auth_ok(const char *token, const char *authorization)
{
    if (!token || !token[0])
        return true;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    size_t glen = strlen(given);
    while (glen > 0 && (given[glen - 1] == ' ' || given[glen - 1] == '\t'))
        glen--;
    if (glen == 0)
        return false;
    return tokens_equal(token, strlen(token), given, glen);
}
