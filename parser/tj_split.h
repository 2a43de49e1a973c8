/* tj_split.h: a faster way to the same match. An expanded grok regex is mostly a chain of fields
 * joined by literal text ('%{IPORHOST} %{USER} [%{HTTPDATE}] "...'). tj_split compiles the
 * byte-mode regex, cut at its top-level concatenation, into segments matched one after the other
 * from offset 0, each in the cheapest way that gives PCRE2's own answer: literal runs compared,
 * a field followed by a literal byte it cannot contain cut at that byte with memchr and checked
 * alone (its alternatives in any order, since only whether one fits counts), a quoted string
 * scanned, and whatever else run as a small anchored PCRE2 sub-pattern.
 *
 * Why the result is PCRE2's: PCRE2 tries offset 0 first and, within it, the paths of the first
 * segment in order, each followed by the rest. When the first path of each segment (in order)
 * lets every later segment match, that combined path is the first successful path of the whole
 * regex, so its match and captures are PCRE2's. Segments never share a capture, and a regex with
 * anything that would make a segment depend on another's captures or on where the match began
 * (backreferences, conditionals, recursion, \K, \G, verbs, option settings, \Q...) gets no plan.
 * When a segment does not match where the one before ended, the plan says "don't know" and the
 * caller runs the whole regex: nothing is ever decided against it. The one difference left is
 * PCRE2's match limit: a line whose whole-regex match would stop at the limit may match here.
 *
 * A plan is immutable and shared by every thread; tj_split_match borrows the caller's match data
 * and context (per thread). */
#ifndef TJ_SPLIT_H
#define TJ_SPLIT_H

#include "tj_common.h"

struct tj_split;

/* Builds the plan for re[0..n) (borrowed), a regex as tj_grok compiles it in byte mode (flags:
 * `flags`, PCRE2_ANCHORED is added for sub-patterns) with `ngroups` capture groups. Returns the
 * plan, or NULL when the regex has no plan worth having (see above: anything in doubt, a single
 * segment, no literal to cut at) or out of memory: the caller then runs the regex alone. */
struct tj_split *tj_split_compile(const char *re, size_t n, uint32_t flags, uint32_t ngroups);
void tj_split_destroy(struct tj_split *sp);

/* Tries the plan on s[0..n) (pure ASCII). md (pcre2_match_data *, at least 1 + the largest
 * segment's groups pairs) and mctx (pcre2_match_context *, or NULL) are borrowed for the
 * sub-patterns. Returns 1 on a match, with ov[0..2 * (ngroups + 1)) filled as PCRE2 would fill
 * its ovector for the whole regex (unset groups SIZE_MAX); 0 when the plan cannot tell (the
 * caller must run the whole regex; ov may have been written). */
int tj_split_match(const struct tj_split *sp, void *md, void *mctx, const char *s, size_t n,
                   size_t *ov);

/* Writes a one-line description of the plan's segments to buf (for tests and debugging), e.g.
 * "member(pcre) lit member(lit,pcre) ... pcre lit first(lit,qs)". Returns snprintf's count. */
int tj_split_describe(const struct tj_split *sp, char *buf, size_t len);

#endif
