/* For the sandbox tests: a spec's runner_fields_json for a script and its inputs, in the
 * shape src/job.c's job_runner_fields_json gives a job ({"script":...,"inputs":...}), so
 * the backends can be driven without the service core. */
#ifndef EXECUTORD_TEST_RUNNER_FIELDS_H
#define EXECUTORD_TEST_RUNNER_FIELDS_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* Malloc'd; inputs is JSON object text spliced as is (NULL: "{}"). Aborts on failure. */
static inline char *runner_fields_make(const char *script, const char *inputs)
{
    json_t *s = json_string(script ? script : "");
    char *stext = s ? json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(s);
    char *text = NULL;
    if (!stext || asprintf(&text, "{\"script\":%s,\"inputs\":%s}", stext, inputs ? inputs : "{}") < 0)
        abort();
    free(stext);
    return text;
}

#endif
