/* Clocks and timestamps: wall-clock Unix milliseconds, a monotonic clock for durations,
 * and RFC 3339 rendering (UTC, milliseconds) as the API shows them. */
#ifndef EXECUTORD_TIMEUTIL_H
#define EXECUTORD_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t time_now_ms(void);       /* CLOCK_REALTIME, Unix ms */
int64_t time_monotonic_ms(void); /* CLOCK_MONOTONIC */
/* "2026-11-27T04:05:58.123Z"; buf needs at least 25 bytes. */
void time_format_rfc3339(int64_t unix_ms, char *buf, size_t len);

#endif
