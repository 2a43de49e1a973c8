/* tj_patterns.h: the built-in grok library, compiled into the binary from patterns/ (*.grok)
 * by patterns/embed.c at build time. */
#ifndef TJ_PATTERNS_H
#define TJ_PATTERNS_H

#include <stddef.h>

struct tj_pattern_file {
    const char *name; /* file name, e.g. "base.grok" */
    const char *text;
    size_t len;
};

extern const struct tj_pattern_file tj_pattern_files[];
extern const size_t tj_pattern_files_count;

#endif
