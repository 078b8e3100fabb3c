/* libFuzzer harness: requirement strings (src/requirements.c). The bytes as one
 * requirement, then split on 0x1e (record separator) as a dependencies list. Asserts that
 * an accepted requirement is normalized text made only of the plain grammar's characters
 * (nothing pip reads as an option, URL, path, marker or comment), that normalizing is
 * idempotent, and that a normalized list normalizes again to itself. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/requirements.h"
#include "tests/fuzz/fuzz_check.h"

static void check_one(const char *s, size_t len)
{
    requirement r, again;
    const char *why = NULL;
    if (requirement_parse(s, len, &r, &why) != 0) {
        CHECK(why && *why);
        CHECK(r.text[0] == '\0');
        return;
    }
    size_t n = strlen(r.text);
    CHECK(n > 0 && n <= len && n <= REQ_MAX_BYTES);
    CHECK(strncmp(r.text, r.name, strlen(r.name)) == 0);
    CHECK(r.text[0] != '-' && r.text[0] != '.');
    for (size_t i = 0; i < n; i++) {
        char c = r.text[i];
        CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(".-_*+![],=<>~!", c));
    }
    for (const char *p = r.name; *p; p++)
        CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || (*p == '-' && p[1] != '-'));
    CHECK(requirement_parse(r.text, n, &again, &why) == 0);
    CHECK(strcmp(again.text, r.text) == 0 && strcmp(again.name, r.name) == 0);
}

static void check_list(const char *s, size_t len)
{
    const char *items[REQ_MAX_ITEMS + 1];
    size_t lens[REQ_MAX_ITEMS + 1], n = 0;
    for (size_t start = 0; n <= REQ_MAX_ITEMS;) {
        const char *end = memchr(s + start, 0x1e, len - start);
        size_t stop = end ? (size_t)(end - s) : len;
        items[n] = s + start;
        lens[n++] = stop - start;
        if (!end)
            break;
        start = stop + 1;
    }
    char *json = NULL, why[160];
    size_t bad;
    if (requirements_normalize(items, lens, n, &json, &bad, why, sizeof why) != 0) {
        CHECK(!json && bad <= n && why[0]);
        return;
    }
    CHECK(json);
    json_t *arr = json_loads(json, 0, NULL);
    CHECK(json_is_array(arr) && json_array_size(arr) == n);
    for (size_t i = 0; i < n; i++) {
        items[i] = json_string_value(json_array_get(arr, i));
        lens[i] = strlen(items[i]);
    }
    char *again = NULL;
    CHECK(requirements_normalize(items, lens, n, &again, &bad, why, sizeof why) == 0);
    CHECK(strcmp(again, json) == 0);
    free(again);
    json_decref(arr);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_one((const char *)data, size);
    check_list((const char *)data, size);
    return 0;
}
