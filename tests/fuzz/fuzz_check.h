/* What every libFuzzer harness here shares: its entry point's prototype and CHECK, an
 * invariant that aborts (libFuzzer keeps the input) with where and what failed. */
#ifndef EXECUTORD_FUZZ_CHECK_H
#define EXECUTORD_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#endif
