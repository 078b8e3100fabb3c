/* Linked into every cmocka test program: CMOCKA_TEST_FILTER=PATTERN runs only the test
 * cases whose name matches PATTERN (cmocka's wildcards: * and ?), e.g.
 *   CMOCKA_TEST_FILTER='*cancel*' build/tests/test_isolation pool */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

/* A constructor, so that no test's main has to remember it. */
__attribute__((constructor)) static void filter_tests_from_environment(void)
{
    const char *pattern = getenv("CMOCKA_TEST_FILTER");
    if (pattern && *pattern)
        cmocka_set_test_filter(pattern);
}
