/* Requirement strings (src/requirements.c): the plain forms accepted and normalized, every
 * form that would steer pip refused with its reason, the length and count bounds, and a
 * whole list's canonical text (sorted, duplicates of a project refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/requirements.h"

#define expect_normal(in, out) expect_normal_at(in, sizeof(in) - 1, out, __LINE__)
#define expect_refused(in, reason) expect_refused_at(in, sizeof(in) - 1, reason, __LINE__)

static void expect_normal_at(const char *in, size_t len, const char *out, int line)
{
    requirement r;
    const char *why = "unset";
    if (requirement_parse(in, len, &r, &why) != 0)
        fail_msg("line %d: '%s' refused: %s", line, in, why);
    if (strcmp(r.text, out) != 0)
        fail_msg("line %d: '%s' normalized to '%s', expected '%s'", line, in, r.text, out);
    assert_null(why);
}

/* reason: a part of the sentence expected */
static void expect_refused_at(const char *in, size_t len, const char *reason, int line)
{
    requirement r;
    const char *why = NULL;
    if (requirement_parse(in, len, &r, &why) == 0)
        fail_msg("line %d: '%.*s' accepted as '%s'", line, (int)len, in, r.text);
    if (!why || !strstr(why, reason))
        fail_msg("line %d: '%.*s' refused with '%s', expected '%s'", line, (int)len, in,
                 why ? why : "(null)", reason);
    assert_string_equal(r.text, ""); /* nothing half-parsed is left behind */
}

static void plain_requirements(void **state)
{
    expect_normal("requests", "requests");
    expect_normal("requests==2.31.0", "requests==2.31.0");
    expect_normal("PyYAML>=6", "pyyaml>=6");
    expect_normal("  pyyaml >= 6  ", "pyyaml>=6");
    expect_normal("a", "a");
    expect_normal("A1", "a1");
    expect_normal("x~=1.4.2", "x~=1.4.2");
    expect_normal("x===1.0+local", "x===1.0+local");
    expect_normal("x!=1.*", "x!=1.*");
    expect_normal("x<2", "x<2");
    expect_normal("x>1", "x>1");
    expect_normal("x<=2!1.0.post1.dev3", "x<=2!1.0.post1.dev3");
    expect_normal("x==1.0_rc-1", "x==1.0_rc-1");
}

static void names_are_canonical(void **state)
{
    /* PEP 503: lowercase, each run of - _ . one - */
    expect_normal("Foo_Bar", "foo-bar");
    expect_normal("foo.bar", "foo-bar");
    expect_normal("FOO-_.-bar", "foo-bar");
    expect_normal("zope.interface==6", "zope-interface==6");
}

static void extras_and_specifiers_sorted(void **state)
{
    expect_normal("requests[socks]", "requests[socks]");
    expect_normal("requests [ Socks , security ] ", "requests[security,socks]");
    expect_normal("requests[socks,socks]", "requests[socks]");
    expect_normal("requests[]", "requests");
    expect_normal("requests[]==1", "requests==1");
    expect_normal("x<3, >=2", "x<3,>=2");
    expect_normal("x >=2 , <3", "x<3,>=2");
    expect_normal("x>=2,>=2", "x>=2");
    expect_normal("x[b,a]>=1,!=1.5,<2", "x[a,b]!=1.5,<2,>=1");
}

static void options_urls_paths_refused(void **state)
{
    expect_refused("-e x", "options");
    expect_refused("-e .", "options");
    expect_refused("--index-url=http://x", "options");
    expect_refused("  --no-deps", "options");
    expect_refused("-r requirements.txt", "options");
    expect_refused("pkg @ https://x", "URLs");
    expect_refused("pkg@git+ssh", "direct references");
    expect_refused("git+https://github.com/x/y", "URLs");
    expect_refused("file:///etc", "URLs");
    expect_refused("file:x", "file:");
    expect_refused("FILE:x", "file:");
    expect_refused("../x", "paths");
    expect_refused("./x", "paths");
    expect_refused(".x", "paths");
    expect_refused("/tmp/x", "paths");
    expect_refused("x/y", "paths");
    expect_refused("C:\\x", "paths");
}

static void markers_comments_control_refused(void **state)
{
    expect_refused("x; os_name==\"nt\"", "markers");
    expect_refused("x;python_version<'3'", "markers");
    expect_refused("x # c", "comments");
    expect_refused("x#c", "comments");
    expect_refused("x\n-e .", "control character");
    expect_refused("x\r", "control character");
    expect_refused("x\t==1", "control character");
    expect_refused("x\x7f", "control character");
    expect_refused("x\0y", "control character");
    expect_refused("", "empty");
    expect_refused("   ", "empty");
}

static void malformed_refused(void **state)
{
    const char *bad[] = {"x==", "x==1,", "x,", "==1", "x=1", "x 1", "x (>=1)", "x[", "x[a",
                         "x[a,]", "x[,a]", "x[-a]", "x-", "_x", "x y", "x[a]b", "x>=1 <2",
                         "x~1", "x=>1", "x==1 ,, <2", "x====1", "caf\xc3\xa9", "x==1\xc3\xa9",
                         "x[a b]", "x>= ", "x ===", "x!1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused_at(bad[i], strlen(bad[i]), "not a plain requirement", __LINE__);
}

static void length_bound(void **state)
{
    char s[REQ_MAX_BYTES + 2];
    memset(s, 'a', sizeof s);
    requirement r;
    const char *why;
    assert_int_equal(requirement_parse(s, REQ_MAX_BYTES, &r, &why), 0);
    assert_int_equal(strlen(r.text), REQ_MAX_BYTES);
    expect_refused_at(s, REQ_MAX_BYTES + 1, "longer than 256 bytes", __LINE__);
    /* spaces count towards the bound, and go */
    char t[REQ_MAX_BYTES + 1];
    memset(t, ' ', REQ_MAX_BYTES);
    t[0] = 'X';
    memcpy(t + REQ_MAX_BYTES - 3, ">=1", 3);
    assert_int_equal(requirement_parse(t, REQ_MAX_BYTES, &r, &why), 0);
    assert_string_equal(r.text, "x>=1");
    /* as many specifiers as fit: each kept, sorted */
    char u[REQ_MAX_BYTES + 1] = "x";
    size_t n = 1;
    for (int v = 100; n + 6 <= REQ_MAX_BYTES; v++)
        n += (size_t)snprintf(u + n, sizeof u - n, "!=%d,", v);
    u[n - 1] = '\0';
    assert_int_equal(requirement_parse(u, n - 1, &r, &why), 0);
    assert_string_equal(r.text, u);
}

/* --- lists --------------------------------------------------------------------- */

static int normalize(const char *const *items, size_t n, char **json, size_t *bad, char *why,
                     size_t whylen)
{
    size_t lens[REQ_MAX_ITEMS + 2];
    for (size_t i = 0; i < n && i < REQ_MAX_ITEMS + 2; i++)
        lens[i] = strlen(items[i]);
    return requirements_normalize(items, lens, n, json, bad, why, whylen);
}

static void list_sorted_canonical(void **state)
{
    const char *items[] = {"Requests[socks]==2.31.0", "pyyaml >= 6", "attrs", "zope.interface"};
    char *json = NULL, why[160];
    size_t bad = 99;
    assert_int_equal(normalize(items, 4, &json, &bad, why, sizeof why), 0);
    assert_string_equal(json, "[\"attrs\",\"pyyaml>=6\",\"requests[socks]==2.31.0\",\"zope-interface\"]");
    free(json);
    /* another spelling and order of the same set: the same text (the cache's key) */
    const char *again[] = {"zope_interface", "ATTRS", "requests [socks] == 2.31.0", "PyYAML>=6"};
    assert_int_equal(normalize(again, 4, &json, &bad, why, sizeof why), 0);
    assert_string_equal(json, "[\"attrs\",\"pyyaml>=6\",\"requests[socks]==2.31.0\",\"zope-interface\"]");
    free(json);
}

static void empty_list_is_none(void **state)
{
    char *json = (char *)"unset", why[160];
    size_t bad;
    assert_int_equal(requirements_normalize(NULL, NULL, 0, &json, &bad, why, sizeof why), 0);
    assert_null(json);
}

static void duplicates_refused(void **state)
{
    const char *items[] = {"a", "Foo_Bar==1", "b", "foo.bar>=2"};
    char *json = NULL, why[160];
    size_t bad;
    assert_int_equal(normalize(items, 4, &json, &bad, why, sizeof why), -1);
    assert_int_equal(bad, 3);
    assert_non_null(strstr(why, "duplicates project 'foo-bar' (item 1)"));
    assert_null(json);
    const char *same[] = {"x", "x"};
    assert_int_equal(normalize(same, 2, &json, &bad, why, sizeof why), -1);
    assert_int_equal(bad, 1);
}

static void bad_item_named(void **state)
{
    const char *items[] = {"ok==1", "fine", "-e .", "x # c"};
    char *json = NULL, why[160];
    size_t bad;
    assert_int_equal(normalize(items, 4, &json, &bad, why, sizeof why), -1);
    assert_int_equal(bad, 2);
    assert_non_null(strstr(why, "options"));
    assert_null(json);
}

static void count_bound(void **state)
{
    static char names[REQ_MAX_ITEMS + 1][8];
    const char *items[REQ_MAX_ITEMS + 1];
    for (int i = 0; i <= REQ_MAX_ITEMS; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        items[i] = names[i];
    }
    char *json = NULL, why[160];
    size_t bad;
    assert_int_equal(normalize(items, REQ_MAX_ITEMS, &json, &bad, why, sizeof why), 0);
    assert_non_null(json);
    assert_int_equal(strncmp(json, "[\"p0\",\"p1\",\"p10\",", 17), 0);
    free(json);
    json = NULL;
    assert_int_equal(normalize(items, REQ_MAX_ITEMS + 1, &json, &bad, why, sizeof why), -1);
    assert_int_equal(bad, REQ_MAX_ITEMS + 1);
    assert_non_null(strstr(why, "at most 64 items"));
    assert_null(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_requirements),
        cmocka_unit_test(names_are_canonical),
        cmocka_unit_test(extras_and_specifiers_sorted),
        cmocka_unit_test(options_urls_paths_refused),
        cmocka_unit_test(markers_comments_control_refused),
        cmocka_unit_test(malformed_refused),
        cmocka_unit_test(length_bound),
        cmocka_unit_test(list_sorted_canonical),
        cmocka_unit_test(empty_list_is_none),
        cmocka_unit_test(duplicates_refused),
        cmocka_unit_test(bad_item_named),
        cmocka_unit_test(count_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
