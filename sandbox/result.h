/* The runner's result document: the one JSON object the in-sandbox runner writes to the
 * result pipe, turned into an outcome's verdict, result_json or error fields. Pure (no
 * I/O), shared by the process and pool backends, and fuzzed in tests/fuzz. */
#ifndef EXECUTORD_SANDBOX_RESULT_H
#define EXECUTORD_SANDBOX_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox/sandbox.h"

/* Interprets doc[0..len) into *out. Returns false when there is no document (len 0) and
 * *out is untouched; otherwise true, with verdict SANDBOX_SUCCEEDED and result_json set,
 * or SANDBOX_FAILED and error_type set (a malformed document fails the job), and
 * usage.max_rss_kb taken from the document when it reports one. */
bool sandbox_apply_result(const char *doc, size_t len, sandbox_outcome *out);

#endif
