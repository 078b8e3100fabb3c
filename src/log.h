/* One line per event on stderr: "2026-11-27T04:05:58.123Z info  message". */
#ifndef EXECUTORD_LOG_H
#define EXECUTORD_LOG_H

#include "src/config.h"

void log_set_level(log_level level);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_parse_level(const char *name, log_level *out);
const char *log_level_name(log_level level);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
