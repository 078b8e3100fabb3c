/* Event logging to stderr, one line per event, safe to call from any thread: each line is
 * formatted first and written with a single write(2) so lines never interleave. */
#include "src/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "src/timeutil.h"

static log_level current_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level level) { current_level = level; }

int log_parse_level(const char *name, log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(log_level level) { return level_names[level]; }

void log_msg(log_level level, const char *fmt, ...)
{
    if (level < current_level)
        return;
    char line[2048];
    char ts[32];
    time_format_rfc3339(time_now_ms(), ts, sizeof ts);
    int n = snprintf(line, sizeof line, "%s %-5s ", ts, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* A failed log write has nowhere better to be reported. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
