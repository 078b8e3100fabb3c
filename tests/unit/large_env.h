/* An environment execve could not carry, for the backend tests (test_direct.c,
 * test_ephemeral.c, test_pool.c): one value of 1 MiB (execve takes 128 KiB per string) and
 * 40 of 60 KB (2.4 MB together, beyond a quarter of an 8 MiB stack), with the script that
 * checks each arrived byte for byte, through Python (os.environ) and C (getenv). */
#ifndef EXECUTORD_TESTS_LARGE_ENV_H
#define EXECUTORD_TESTS_LARGE_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LARGE_ENV_BIG = 1 << 20, LARGE_ENV_COUNT = 40, LARGE_ENV_SMALL = 60000 };

/* Value k's byte i; '=' and '\n' included, as values may hold them. */
static const char large_env_alphabet[] = "abcdefghijklmnopqrstuvwxyz=\n";

static inline char *large_env_item(const char *name, size_t len, size_t k)
{
    size_t nl = strlen(name), a = sizeof large_env_alphabet - 1;
    char *s = malloc(nl + 1 + len + 1);
    if (!s)
        return NULL;
    memcpy(s, name, nl);
    s[nl] = '=';
    for (size_t i = 0; i < len; i++)
        s[nl + 1 + i] = large_env_alphabet[(i + k) % a];
    s[nl + 1 + len] = '\0';
    return s;
}

/* NULL-terminated "NAME=VALUE" array: BIG, then V00..V39; NULL when out of memory. */
static inline char **large_env_make(void)
{
    char **env = calloc(LARGE_ENV_COUNT + 2, sizeof *env);
    if (!env)
        return NULL;
    if (!(env[0] = large_env_item("BIG", LARGE_ENV_BIG, 0))) {
        free(env);
        return NULL;
    }
    for (int k = 1; k <= LARGE_ENV_COUNT; k++) {
        char name[8];
        snprintf(name, sizeof name, "V%02d", k - 1);
        if (!(env[k] = large_env_item(name, LARGE_ENV_SMALL, (size_t)k))) {
            for (int j = 0; j < k; j++)
                free(env[j]);
            free(env);
            return NULL;
        }
    }
    return env;
}

static inline void large_env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* Returns [every value exact in os.environ and getenv, the names exactly these plus the
 * contract's base (Tracecat's): HOME, LANG, LC_ALL, PATH, PYTHONDONTWRITEBYTECODE,
 * PYTHONUNBUFFERED]: expect [true, true]. */
#define LARGE_ENV_SCRIPT                                                                        \
    "import ctypes, os\n"                                                                       \
    "A = b'abcdefghijklmnopqrstuvwxyz=\\n'\n"                                                   \
    "def want(n, k):\n"                                                                         \
    "    return (A * (n // len(A) + 2))[k % len(A):k % len(A) + n]\n"                           \
    "def main():\n"                                                                             \
    "    libc = ctypes.CDLL(None)\n"                                                            \
    "    libc.getenv.restype = ctypes.c_char_p\n"                                               \
    "    names = ['BIG'] + ['V%02d' % i for i in range(40)]\n"                                  \
    "    ok = True\n"                                                                           \
    "    for k, n in enumerate(names):\n"                                                       \
    "        w = want(1 << 20 if k == 0 else 60000, k)\n"                                      \
    "        ok = ok and os.environb.get(n.encode()) == w and libc.getenv(n.encode()) == w\n"   \
    "    base = ['HOME', 'LANG', 'LC_ALL', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED']\n"   \
    "    return [ok, sorted(os.environ) == sorted(names + base)]\n"

#endif
