/* fuzz_check.h: checks shared by the fuzz targets. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Aborts, printing the record, unless s[0..n) is one strict-JSON object ending in "}\n" (and
 * holding no other '\n' when one_line). */
void fuzz_check_record(const char *s, size_t n, bool one_line);

#endif
