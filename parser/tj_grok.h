/* tj_grok.h: grok on PCRE2. A library maps pattern names to definitions (plain text files in
 * patterns/); an expression such as '%{IPORHOST:[source][address]} %{INT:code:int}' expands to
 * one PCRE2 regex, compiled once with the JIT and shared read-only by every worker. Field names
 * are not legal PCRE2 group names in general ("[dns][question][class]", "@x"), so every capture
 * gets a generated name (g1, g2, ...) and the compiled pattern keeps a table of field paths and
 * types. The regex dialect is PCRE2 with Oniguruma's meaning where the two differ and Logstash
 * users rely on it: "\h" is a hex digit, "(?m)" makes "." match newlines, and a class nested in a
 * class is a union ("[[[:alnum:]]_]" is "[[:alnum:]_]"). */
#ifndef TJ_GROK_H
#define TJ_GROK_H

#include "tj_common.h"

/* Compile flags of every grok regex (the bench's floor uses the same, see bench/floor.c). */
#define TJ_GROK_PCRE2_FLAGS                                                                        \
    (PCRE2_UTF | PCRE2_UCP | PCRE2_NO_AUTO_CAPTURE | PCRE2_MATCH_INVALID_UTF)

/* An expansion longer than this is refused (nested references can grow exponentially). */
#define TJ_GROK_MAX_REGEX       (512u * 1024u)
#define TJ_GROK_MAX_DEPTH       64
#define TJ_GROK_MAX_FIELD_DEPTH 16

/* Logstash's ecs_compatibility: the library's field names are ECS v1 ones, or under DISABLED
 * the legacy names (clientip, verb, response, ...). */
enum tj_ecs_mode { TJ_ECS_V1, TJ_ECS_DISABLED };

struct tj_grok_lib;

/* Returns an empty library, or NULL when out of memory. */
struct tj_grok_lib *tj_grok_lib_create(void);
void tj_grok_lib_destroy(struct tj_grok_lib *lib);

/* Adds the definitions in text[0..len) ("NAME regex" per line, '#' comments). `origin` names
 * the file in messages (copied). A name already defined is replaced
 * when `override` is true, else it is an error. Returns 0, or TJ_EPARSE / TJ_EINVAL with err
 * filled ("origin:line: ..."); definitions before the bad line stay added. */
int tj_grok_lib_load(struct tj_grok_lib *lib, const char *text, size_t len, const char *origin,
                     bool override, char *err, size_t errlen);

/* Adds every file of the built-in library (compiled into the binary from patterns/): the
 * definitions (*.grok), the legacy field names (legacy.names, see tj_grok_lib_load_legacy) and
 * the legacy-mode definitions of names a rename cannot turn legacy (legacy.defs). */
int tj_grok_lib_load_builtin(struct tj_grok_lib *lib, char *err, size_t errlen);

/* Adds legacy field names: lines "NAME<TAB>FIELD<TAB>LEGACY[:type]" (LEGACY "-": no capture in
 * legacy mode), '#' comments. Under TJ_ECS_DISABLED, a capture of FIELD written in the definition
 * of NAME is named LEGACY instead (and typed as it says: no type is text). Returns 0, or
 * TJ_EPARSE / TJ_ENOMEM with err filled ("origin:line: ..."). */
int tj_grok_lib_load_legacy(struct tj_grok_lib *lib, const char *text, size_t len,
                            const char *origin, char *err, size_t errlen);

/* Looks a name up. Returns its definition (borrowed, NUL-terminated) or NULL; sets *origin. */
const char *tj_grok_lib_get(const struct tj_grok_lib *lib, const char *name, size_t n,
                            const char **origin);

/* The definition a compile in mode ecs uses: under TJ_ECS_DISABLED, the library's legacy
 * definition of the name when it has one (patterns/legacy.defs), else tj_grok_lib_get's. */
const char *tj_grok_lib_get_ecs(const struct tj_grok_lib *lib, const char *name, size_t n,
                                enum tj_ecs_mode ecs, const char **origin);

/* Number of names. */
size_t tj_grok_lib_count(const struct tj_grok_lib *lib);

/* Every name, sorted: an array owned by the caller (free() it; the strings are borrowed from
 * the library). Returns NULL when out of memory; *n gets the count. */
const char **tj_grok_lib_names(const struct tj_grok_lib *lib, size_t *n);

/* A capture's conversion: %{NAME:field:int} (or :long, as Elasticsearch's ingest grok says),
 * :float (or :double), :boolean ("true" in any case is true, anything else false). Any other
 * conversion name keeps the text, as Elasticsearch does. */
enum tj_field_type { TJ_FIELD_STRING, TJ_FIELD_INT, TJ_FIELD_FLOAT, TJ_FIELD_BOOL };

struct tj_grok_field {
    char **seg; /* path segments ("http","request","method"); owned */
    size_t nseg;
    uint32_t group; /* PCRE2 capture group number */
    enum tj_field_type type;
};

struct tj_grok {
    void *code; /* pcre2_code_8 *, owned */
    bool jit;   /* JIT compiled (else the interpreter runs, with depth/heap limits) */
    /* pcre2_code_8 *, owned, or NULL: the same regex compiled for bytes (no UTF, no UCP) and
     * JIT compiled, run instead of code on subjects that are pure ASCII. On such a subject an
     * ASCII regex matches the same in both modes; the byte mode's JIT code is ~30% cheaper. Only
     * built when the regex text is ASCII and compiles without (*UTF)/(*UCP) or code points
     * above 0xFF, and has the same groups. */
    void *ascii_code;
    char *expr;  /* the user's expression, owned */
    char *regex; /* the expanded PCRE2 regex, owned */
    struct tj_grok_field *fields;
    size_t nfields;
    uint32_t ngroups; /* highest capture group number */
    int refs;         /* atomic reference count */
};

/* How an expression is compiled. A NULL opts is {TJ_ECS_V1, NULL}. */
struct tj_grok_opts {
    enum tj_ecs_mode ecs;
    /* Definitions of this expression only (a service's logPatternDefinitions), looked up before
     * the library's; borrowed during the call, or NULL. */
    const struct tj_grok_lib *defs;
};

/* Parses "v1" or "disabled" (also "legacy") into *mode. Returns 0 or TJ_EINVAL. */
int tj_ecs_mode_parse(const char *s, enum tj_ecs_mode *mode);
/* "v1" or "disabled". */
const char *tj_ecs_mode_name(enum tj_ecs_mode mode);

/* Expands expr[0..len) (borrowed; need not be NUL-terminated) against lib into a PCRE2 regex.
 * Returns it (owned, free()) or NULL with err filled: unknown pattern name (with its offset),
 * reference cycle (with the chain), malformed %{...}, a bad field name, or an expansion too long.
 */
char *tj_grok_expand(const struct tj_grok_lib *lib, const char *expr, size_t len, char *err,
                     size_t errlen);
char *tj_grok_expand_opts(const struct tj_grok_lib *lib, const char *expr, size_t len,
                          const struct tj_grok_opts *opts, char *err, size_t errlen);

/* Expands and compiles. Returns a pattern holding one reference, or NULL with err filled (the
 * expansion errors above, or PCRE2's message with the offset mapped back into expr). */
struct tj_grok *tj_grok_compile(const struct tj_grok_lib *lib, const char *expr, size_t len,
                                char *err, size_t errlen);
/* The same with options (opts borrowed during the call, or NULL). */
struct tj_grok *tj_grok_compile_opts(const struct tj_grok_lib *lib, const char *expr, size_t len,
                                     const struct tj_grok_opts *opts, char *err, size_t errlen);

/* The byte-mode twin of g's regex (see ascii_code), exactly as compiled, returned owned (free
 * it), or NULL when g has none (it then matches every line in UTF mode) or out of memory. */
char *tj_grok_byte_regex(const struct tj_grok *g);

/* Reference counting; any thread. tj_grok_unref(NULL) does nothing. */
struct tj_grok *tj_grok_ref(struct tj_grok *g);
void tj_grok_unref(struct tj_grok *g);

/* Per-thread match state: match data, match context with limits, JIT stack. */
struct tj_matcher;

struct tj_match_limits {
    uint32_t match_limit; /* PCRE2 match limit (backtracking steps) */
    uint32_t depth_limit; /* interpreter only */
    uint32_t heap_limit_kib;
};

#define TJ_MATCH_LIMITS_DEFAULT ((struct tj_match_limits){200000, 5000, 20480})

/* Returns a matcher, or NULL when out of memory. */
struct tj_matcher *tj_matcher_create(const struct tj_match_limits *lim);
void tj_matcher_destroy(struct tj_matcher *m);

/* Unanchored search of g in s[0..n) (any bytes: invalid UTF-8 never matches inside a code
 * point and never errors). Returns 1 on a match (offsets via tj_matcher_ovector), 0 on no
 * match, TJ_ELIMIT when a match or stack limit stopped the search (count it as no match), or
 * TJ_ENOMEM when the match data could not grow. */
int tj_grok_match(const struct tj_grok *g, struct tj_matcher *m, const char *s, size_t n);

/* The same, told that s holds no byte >= 0x80 when `ascii` (the json-file decoder knows it): the
 * byte-mode regex then runs without a scan of s first. With ascii false it is tj_grok_match. */
int tj_grok_match_hint(const struct tj_grok *g, struct tj_matcher *m, const char *s, size_t n,
                       bool ascii);

/* Offsets of the last match: pairs [start,end) per group; unset groups are SIZE_MAX. Valid
 * until the next tj_grok_match on this matcher. */
const size_t *tj_matcher_ovector(const struct tj_matcher *m);

#endif
