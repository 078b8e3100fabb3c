/* Interpreting the runner's result document: {"ok": true, "result": ...} or
 * {"ok": false, "error": {"type", "message", "traceback"}}, plus "max_rss_kb". The text
 * comes from inside the sandbox, so anything else is a failed job, never a crash. */
#include "sandbox/result.h"

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sandbox/supervise.h"

static char *dup_json_string(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? strdup(s) : NULL;
}

bool sandbox_apply_result(const char *text, size_t len, sandbox_outcome *out)
{
    if (len == 0)
        return false;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (!doc || !json_is_object(doc)) {
        out->verdict = SANDBOX_FAILED;
        sandbox_outcome_set_error(out, "SandboxExecutionError",
                                  "Invalid result document from the runner: %s",
                                  doc ? "not an object" : jerr.text);
        json_decref(doc);
        return true;
    }
    json_t *ok = json_object_get(doc, "ok");
    if (json_is_true(ok)) {
        json_t *res = json_object_get(doc, "result");
        out->result_json = json_dumps(res ? res : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
        if (!out->result_json) {
            out->verdict = SANDBOX_FAILED;
            sandbox_outcome_set_error(out, "SandboxExecutionError", "Out of memory encoding the result");
        } else {
            out->verdict = SANDBOX_SUCCEEDED;
        }
    } else {
        json_t *e = json_object_get(doc, "error");
        out->verdict = SANDBOX_FAILED;
        free(out->error_type);
        free(out->error_message);
        free(out->error_traceback);
        out->error_type = dup_json_string(e, "type");
        out->error_message = dup_json_string(e, "message");
        out->error_traceback = dup_json_string(e, "traceback");
        if (!out->error_type)
            out->error_type = strdup("SandboxExecutionError");
    }
    json_t *rss = json_object_get(doc, "max_rss_kb");
    if (json_is_integer(rss) && json_integer_value(rss) > 0)
        out->usage.max_rss_kb = json_integer_value(rss);
    json_decref(doc);
    return true;
}

bool sandbox_outcome_killed(sandbox_outcome *out, sandbox_kill why, const sandbox_limits *lim, int stream,
                            uint64_t cap)
{
    switch (why) {
    case SANDBOX_KILL_TIMEOUT:
        out->verdict = SANDBOX_TIMED_OUT;
        sandbox_outcome_set_error(out, "SandboxTimeoutError", "Script execution timed out after %.15g seconds",
                                  lim->timeout_seconds);
        return true;
    case SANDBOX_KILL_CANCEL:
        out->verdict = SANDBOX_CANCELLED;
        sandbox_outcome_set_error(out, "Cancelled", "Job cancelled");
        return true;
    case SANDBOX_KILL_SHUTDOWN:
        out->verdict = SANDBOX_CANCELLED;
        sandbox_outcome_set_error(out, "Cancelled", "Job cancelled: executord is shutting down");
        return true;
    case SANDBOX_KILL_OUTPUT:
        out->verdict = SANDBOX_OUTPUT_LIMIT;
        sandbox_outcome_set_error(out, "OutputLimitExceeded", "%s exceeded the output limit of %llu bytes",
                                  stream == SANDBOX_STDERR ? "stderr" : "stdout", (unsigned long long)cap);
        return true;
    case SANDBOX_KILL_RESULT:
        out->verdict = SANDBOX_FAILED;
        sandbox_outcome_set_error(out, "SandboxExecutionError", "Result exceeds the output limit of %llu bytes",
                                  (unsigned long long)cap);
        return true;
    case SANDBOX_KILL_NONE:
        break;
    }
    return false;
}

void sandbox_outcome_no_result(sandbox_outcome *out, const sandbox_limits *lim, bool have_exit, int st)
{
    out->verdict = SANDBOX_FAILED;
    int64_t cpu_ms = out->usage.cpu_user_ms + out->usage.cpu_system_ms;
    if (!have_exit) {
        sandbox_outcome_set_error(out, "SandboxExecutionError",
                                  "Process tree ended without reporting the runner's exit");
    } else if (WIFSIGNALED(st) &&
               (WTERMSIG(st) == SIGXCPU ||
                (WTERMSIG(st) == SIGKILL && lim->cpu_seconds > 0 && cpu_ms >= (int64_t)lim->cpu_seconds * 1000))) {
        /* SIGKILL past the limit is the kernel's hard-limit backstop (SIGXCPU caught). */
        sandbox_outcome_set_error(out, "ResourceLimitExceeded", "CPU time limit of %llu seconds exceeded (killed by %s)",
                                  (unsigned long long)lim->cpu_seconds, sv_signal_name(WTERMSIG(st)));
    } else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ) {
        sandbox_outcome_set_error(out, "ResourceLimitExceeded", "File size limit of %llu MB exceeded (killed by SIGXFSZ)",
                                  (unsigned long long)lim->max_file_size_mb);
    } else if (WIFSIGNALED(st)) {
        sandbox_outcome_set_error(out, "SandboxExecutionError", "Process killed by signal %s without returning a result",
                                  sv_signal_name(WTERMSIG(st)));
    } else {
        sandbox_outcome_set_error(out, "SandboxExecutionError", "Process exited with code %d without returning a result",
                                  WEXITSTATUS(st));
    }
}

static bool contains(const char *s, const char *needle)
{
    return s && strstr(s, needle);
}

/* The runner maps MemoryError and EFBIG itself; the kernel's OOM kill and a fork refused
 * by the process limit are only visible from outside. */
void sandbox_outcome_name_limit(sandbox_outcome *out, const sandbox_limits *lim, bool oom_killed, bool pids_hit)
{
    if (out->verdict != SANDBOX_FAILED)
        return;
    if (oom_killed) {
        sandbox_outcome_set_error(out, "MemoryLimitExceeded",
                                  "Memory limit of %" PRIu64 " MB exceeded (killed by the kernel's OOM killer)",
                                  lim->memory_mb);
        return;
    }
    if (contains(out->error_type, "MemoryLimitExceeded")) {
        sandbox_outcome_set_error(out, "MemoryLimitExceeded", "MemoryError: memory limit of %" PRIu64 " MB exceeded",
                                  lim->memory_mb);
        return;
    }
    bool fork_failed = contains(out->error_message, "[Errno 11]") &&
                       (pids_hit || contains(out->error_traceback, "fork") ||
                        contains(out->error_traceback, "_execute_child") || contains(out->error_traceback, "spawn"));
    if (fork_failed) {
        char *orig = out->error_message ? strdup(out->error_message) : NULL;
        sandbox_outcome_set_error(out, "ResourceLimitExceeded", "Process limit of %" PRIu64 " (max_processes) exceeded: %s",
                                  lim->max_processes, orig ? orig : "fork failed");
        free(orig);
    }
}
