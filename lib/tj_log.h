/* tj_log.h: the one logging call. Self-logs go to stderr, one line per event:
 *   2026-11-25T17:56:16.123Z tailjet[1234] warn: message
 * A message is never split across calls, so every event stays greppable. Thread-safe. */
#ifndef TJ_LOG_H
#define TJ_LOG_H

#include "tj_common.h"

enum tj_log_level { TJ_LOG_DEBUG, TJ_LOG_INFO, TJ_LOG_WARN, TJ_LOG_ERROR };

/* Set once at start-up, before any thread starts (read-only configuration). */
void tj_log_set_level(enum tj_log_level level);

/* JSON lines instead ({"time":...,"level":...,"pid":...,"msg":...}). Set once at start-up. */
void tj_log_set_json(bool json);

void tj_log(enum tj_log_level level, const char *fmt, ...) TJ_PRINTF(2, 3);

#endif
