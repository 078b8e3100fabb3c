/* What the runner program (sandbox/runner.py) gets, the same for every backend: the job
 * spec on its fd 3 (with the script's whole environment), the interpreter's argv and
 * base environment for the exec, the runner compiled once per interpreter, and the
 * rlimits a sandboxed runner gets beyond rlimits.c's. */
#ifndef EXECUTORD_SANDBOX_RUNNER_PROGRAM_H
#define EXECUTORD_SANDBOX_RUNNER_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox/rlimits.h"
#include "sandbox/sandbox.h"

/* The one description of a job for the runner (fd 3), a JSON object shared by the cold
 * (process.c) and warm (pool_job.c) paths:
 *   {<the members of spec->runner_fields_json as given: "script", "inputs", ...>,
 *    "limits": {"cpu_seconds", "memory_mb", "max_file_size_mb", "timeout_seconds"},
 *    "env": ["NAME=VALUE", ...] [, "rlimits": [[resource, soft, hard], ...]]
 *    [, "packages": "/deps"]}
 * env is the script's whole environment, Tracecat's base: PATH=/usr/local/bin:/usr/bin:/bin,
 * HOME=home, LANG=C.UTF-8, LC_ALL=C.UTF-8, PYTHONUNBUFFERED=1, PYTHONDONTWRITEBYTECODE=1,
 * then spec->env, which overrides those; nothing of the service's own. The runner sets it
 * (os.environ, so putenv too) before the script is compiled, and puts a PYTHONPATH in it
 * first on sys.path. packages: the folder of the job's packages as the runner sees it
 * (pkgmount_runner_path), put on sys.path right after the standard library; NULL =
 * none. rl: limits a warm runner must apply itself (-1 = unlimited); NULL for a cold one,
 * set before exec.
 * Returns malloc'd text (length in *len), or NULL with errno set (ENOMEM, or EINVAL for
 * text that is not UTF-8 or runner fields that are not a compact JSON object's text). */
char *runner_build_spec(const sandbox_spec *s, const char *home, const char *packages, const rlimit_set *rl,
                        size_t *len);

/* The program the runner's interpreter gets with -c: a bootstrap holding the runner
 * compiled once by python (saves 2.5-4 ms of every job's start), or the runner's source
 * when that is not possible. Compiling runs python once per interpreter file (a helper
 * process, ~30 ms) on the first call, and again if the file changes; backends may call
 * it at init so no job waits for it. Thread-safe; the text stays valid for the life of
 * the process. */
const char *runner_program(const char *python);

/* The cold runner's execve arguments, prepared before the clone (the child side may not
 * allocate): python -I -u -c <runner_program>, with the fixed base environment (PATH,
 * HOME=home, LANG, LC_ALL) whatever the job's size, since the runner installs the job's own
 * variables from the spec (no size the API accepts can fail at exec with E2BIG).
 * from_source: the interpreter inside is not the host's file at that path (a rootfs),
 * so it gets the runner's source. Returns 0, or -1 with errno set. */
typedef struct runner_exec {
    char *argv[6];
    char *envp[5];
    char *home_var; /* owned */
} runner_exec;
int runner_exec_prepare(runner_exec *x, const char *python, const char *home, bool from_source);
void runner_exec_free(runner_exec *x);

/* A sandboxed runner's rlimits (ephemeral's cold one, set before exec, and the pool's
 * warm one, which sets them itself): rlimits.c's, then a second wall: no locked memory,
 * a bounded stack. When the job's cgroup enforces its memory (cgroup_limits_memory),
 * RLIMIT_AS is not memory_mb but a generous backstop (4x, at least 4 GiB). */
void runner_sandbox_rlimits(const sandbox_limits *lim, bool cgroup_limits_memory, rlimit_set *rl);

#endif
