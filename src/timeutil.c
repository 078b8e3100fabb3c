/* Clock readings and RFC 3339 formatting. */
#include "src/timeutil.h"

#include <stdio.h>
#include <time.h>

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    /* clock_gettime cannot fail for these clock ids on Linux. */
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_now_ms(void) { return clock_ms(CLOCK_REALTIME); }

int64_t time_monotonic_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

void time_format_rfc3339(int64_t unix_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}
