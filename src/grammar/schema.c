/*
** schema.c: a JSON Schema compiled to a GBNF grammar (see grammar.h).
**
** The practical subset of issue 16: type (object, array, string, number,
** integer, boolean, null, or a list of them), properties, required,
** additionalProperties, items, minItems, maxItems, enum, const, anyOf,
** oneOf (as anyOf: the grammar cannot make alternatives exclusive),
** prefixItems (tuples), allOf of one schema (how Pydantic describes a
** $ref), minLength, maxLength, minimum, maximum, exclusiveMinimum,
** exclusiveMaximum (see "numeric bounds"), pattern (a regular expression without
** back-references or look-around), format (date, time, date-time, email,
** uri, uuid), $ref to #/$defs/... or #/definitions/... (recursion is
** fine: a reference is one rule). Annotations (title, description, default,
** examples, $schema, $id, $comment) are ignored. Any other keyword is
** refused, named, up front: never silently ignored.
**
** Choices the model sees: properties in the schema's order; an object has
** only its declared properties unless additionalProperties says otherwise;
** whitespace between tokens is at most one space: a small model otherwise
** spends its budget on newlines and indentation (one test model used half
** of it so) and JSON needs none; numbers have at most 16 digits before and
** after the point, and an exponent at most two (past e99, and beyond any
** double, a JSON reader would refuse it).
*/
#include "grammar/grammar.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct comp {
    json_t *root;
    cn_buf out;      /* the rules, in order */
    char **refs;     /* $ref targets compiled (or being compiled), as rule names */
    int n_refs;
    int n_rules;
    cn_err *err;
    int rc;
    int depth;
} comp;

static int fail(comp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(comp *c, const char *fmt, ...)
{
    if (c->rc)
        return c->rc;
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->rc = cn_fail(c->err, CN_EUNSUPPORTED, "schema: %s", msg);
    return c->rc;
}

static const char *const ignored[] = {"title",   "description", "default", "examples",
                                      "$schema", "$id",         "$comment", "$defs",
                                      "definitions", "readOnly", "writeOnly", "deprecated"};
static const char *const known[] = {"type",      "properties", "required", "additionalProperties",
                                    "items",     "minItems",   "maxItems", "enum",
                                    "const",     "anyOf",      "oneOf",    "minLength",
                                    "maxLength", "pattern",    "format",   "$ref",
                                    "minimum",   "maximum",    "exclusiveMinimum",
                                    "exclusiveMaximum", "prefixItems", "allOf",
                                    "additionalItems"};

/* A GBNF string literal of the bytes s (n of them). */
static void lit(cn_buf *b, const char *s, size_t n)
{
    cn_buf_printf(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            cn_buf_printf(b, "\\%c", ch);
        else if (ch == '\n')
            cn_buf_printf(b, "\\n");
        else if (ch < 0x20)
            cn_buf_printf(b, "\\x%02X", ch);
        else
            cn_buf_append(b, &ch, 1);
    }
    cn_buf_printf(b, "\"");
}

/* A new rule name "r<N>"; its body is written by the caller after "::=". */
static int rule_name(comp *c, char *name, size_t cap)
{
    return snprintf(name, cap, "r%d", c->n_rules++);
}

static int schema_rule(comp *c, const json_t *s, char *name, size_t cap);

/* JSON's fixed rules, written once at the end. */
static const char base_rules[] =
    "ws ::= | \" \"\n"
    "char ::= [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n"
    "string ::= \"\\\"\" char* \"\\\"\" ws\n"
    "keychar ::= [^\"\\\\\\x7F\\x00-\\x1F]\n"
    "integer ::= \"-\"? ([0-9] | [1-9] [0-9]{1,15}) ws\n"
    "number ::= \"-\"? ([0-9] | [1-9] [0-9]{1,15}) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})? ws\n"
    "boolean ::= (\"true\" | \"false\") ws\n"
    "null ::= \"null\" ws\n"
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n";

/* Formats, as the string's characters (inside the quotes). */
static const struct {
    const char *name, *gbnf;
} formats[] = {
    {"date", "[0-9]{4} \"-\" ([0] [1-9] | [1] [0-2]) \"-\" ([0] [1-9] | [1-2] [0-9] | [3] [0-1])"},
    {"time", "([01] [0-9] | [2] [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? "
             "(\"Z\" | [+-] ([01] [0-9] | [2] [0-3]) \":\" [0-5] [0-9])"},
    {"date-time", "[0-9]{4} \"-\" ([0] [1-9] | [1] [0-2]) \"-\" ([0] [1-9] | [1-2] [0-9] | [3] "
                  "[0-1]) \"T\" ([01] [0-9] | [2] [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] "
                  "(\".\" [0-9]{1,6})? (\"Z\" | [+-] ([01] [0-9] | [2] [0-3]) \":\" [0-5] [0-9])"},
    {"email", "[A-Za-z0-9._%+-]{1,64} \"@\" [A-Za-z0-9-]{1,63} (\".\" [A-Za-z0-9-]{1,63}){1,8}"},
    {"uri", "[a-zA-Z] [a-zA-Z0-9+.-]{0,30} \":\" [^\"\\\\\\x00-\\x20\\x7F]{1,2000}"},
    {"uuid", "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" "
             "[0-9a-fA-F]{12}"},
};

/* ---- regular expressions (pattern) ----------------------------------------------- */

typedef struct rx {
    const char *p;
    comp *c;
    cn_buf *b;
} rx;

static int rx_alt(rx *r);

/* One regex escape as GBNF, into b. */
static int rx_escape(rx *r, bool in_class)
{
    char e = *r->p++;
    const char *cls = NULL;
    switch (e) {
    case 'd': cls = in_class ? "0-9" : "[0-9]"; break;
    case 'w': cls = in_class ? "a-zA-Z0-9_" : "[a-zA-Z0-9_]"; break;
    case 's': cls = in_class ? " \\t\\n" : "[ \\t\\n]"; break;
    case 'D': cls = in_class ? NULL : "[^0-9\"\\\\\\x00-\\x1F]"; break;
    case 'W': cls = in_class ? NULL : "[^a-zA-Z0-9_\"\\\\\\x00-\\x1F]"; break;
    case 'S': cls = in_class ? NULL : "[^ \\t\\n\"\\\\\\x00-\\x1F]"; break;
    case 0: return fail(r->c, "pattern ends with a backslash");
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
            return fail(r->c, "pattern: \\%c is not supported", e);
        if (e == '"' || e == '\\')
            return fail(r->c, "pattern: a quote or backslash in the text is not supported");
        if (in_class)
            cn_buf_printf(r->b, "%s%c", (e == ']' || e == '-' || e == '^' || e == '[') ? "\\" : "",
                          e);
        else
            lit(r->b, &e, 1);
        return 0;
    }
    if (!cls)
        return fail(r->c, "pattern: \\%c inside [...] is not supported", e);
    cn_buf_printf(r->b, "%s", cls);
    return 0;
}

/* One member of a [...] class as a code point (an escaped character or a
** UTF-8 sequence; jansson gave valid UTF-8); -1 on failure, said. */
static int32_t rx_class_char(rx *r)
{
    const unsigned char *u = (const unsigned char *)r->p;
    unsigned char e = 0; /* an escaped character, which u then points at */
    if (u[0] == '\\') {
        e = u[1];
        if (!e)
            return fail(r->c, "pattern ends with a backslash"), -1;
        r->p += 2;
        switch (e) {
        case 'n': return '\n';
        case 't': return '\t';
        case 'r': return '\r';
        }
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
            return fail(r->c, "pattern: \\%c is not supported", e), -1;
        if (e >= 0x80)
            return fail(r->c, "pattern: an escaped non-ASCII character is not supported"), -1;
        u = &e;
    } else {
        r->p++;
    }
    if (u[0] == '"' || u[0] == '\\' || u[0] < 0x20)
        return fail(r->c, "pattern: a quote, backslash or control character in [...] is not "
                          "supported"), -1;
    if (u[0] < 0x80)
        return u[0];
    int n = u[0] >= 0xf0 ? 3 : u[0] >= 0xe0 ? 2 : 1;
    int32_t cp = u[0] & (0x3f >> n);
    for (int i = 1; i <= n; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return fail(r->c, "pattern: invalid UTF-8"), -1;
        cp = cp << 6 | (u[i] & 0x3f);
    }
    r->p += n;
    return cp;
}

static int rx_atom(rx *r)
{
    char ch = *r->p;
    if (ch == '(') {
        r->p++;
        if (r->p[0] == '?') {
            if (r->p[1] != ':')
                return fail(r->c, "pattern: look-around and named groups are not supported");
            r->p += 2;
        }
        cn_buf_printf(r->b, "(");
        if (rx_alt(r))
            return r->c->rc;
        if (*r->p++ != ')')
            return fail(r->c, "pattern: ( without )");
        cn_buf_printf(r->b, ")");
    } else if (ch == '[') {
        r->p++;
        cn_buf_printf(r->b, "[");
        if (*r->p == '^') {
            r->p++;
            cn_buf_printf(r->b, "^\"\\\\\\x00-\\x1F");
        }
        /* each member decoded and written anew as \U escapes, ranges checked
        ** (never bytes of the pattern copied into the grammar) */
        bool first = true;
        while (*r->p && (*r->p != ']' || first)) {
            first = false;
            if (*r->p == '\\' && r->p[1] && strchr("dwsDWS", r->p[1])) {
                r->p++;
                if (rx_escape(r, true))
                    return r->c->rc;
                if (*r->p == '-' && r->p[1] && r->p[1] != ']')
                    return fail(r->c, "pattern: a range from a class escape is not supported");
                continue;
            }
            int32_t lo = rx_class_char(r);
            if (lo < 0)
                return r->c->rc;
            int32_t hi = lo;
            if (*r->p == '-' && r->p[1] && r->p[1] != ']') {
                r->p++;
                if (*r->p == '\\' && r->p[1] && strchr("dwsDWS", r->p[1]))
                    return fail(r->c, "pattern: a range to a class escape is not supported");
                if ((hi = rx_class_char(r)) < 0)
                    return r->c->rc;
                if (hi < lo)
                    return fail(r->c, "pattern: a range in [...] runs backwards");
            }
            cn_buf_printf(r->b, "\\U%08X", (unsigned)lo);
            if (hi != lo)
                cn_buf_printf(r->b, "-\\U%08X", (unsigned)hi);
        }
        if (*r->p++ != ']')
            return fail(r->c, "pattern: [ without ]");
        cn_buf_printf(r->b, "]");
    } else if (ch == '.') {
        r->p++;
        cn_buf_printf(r->b, "char");
    } else if (ch == '\\') {
        r->p++;
        return rx_escape(r, false);
    } else if (ch == '"')
        return fail(r->c, "pattern: a quote in the text is not supported");
    else {
        int n = 1;
        const unsigned char u = (unsigned char)ch;
        if (u >= 0xc0)
            n = u >= 0xf0 ? 4 : u >= 0xe0 ? 3 : 2;
        lit(r->b, r->p, (size_t)n);
        r->p += n;
    }
    return 0;
}

static int rx_seq(rx *r)
{
    while (*r->p && *r->p != '|' && *r->p != ')') {
        if (*r->p == '^' || *r->p == '$')
            return fail(r->c, "pattern: ^ and $ only at the very start and end");
        cn_buf_printf(r->b, " ");
        if (rx_atom(r))
            return r->c->rc;
        char q = *r->p;
        if (q == '*' || q == '+' || q == '?') {
            cn_buf_append(r->b, r->p++, 1);
        } else if (q == '{') {
            /* {m} {m,} {m,n}, checked and written anew: never text of the
            ** pattern copied into the grammar */
            char *e;
            const char *p = r->p + 1;
            long lo = (*p >= '0' && *p <= '9') ? strtol(p, &e, 10) : -1, hi = lo;
            if (lo >= 0 && *e == ',') {
                p = e + 1;
                hi = (*p >= '0' && *p <= '9') ? strtol(p, &e, 10) : -2; /* -2: no bound */
                if (hi == -2)
                    e = (char *)p;
            }
            if (lo < 0 || *e != '}' || lo > 10000 || hi > 10000 || (hi >= 0 && hi < lo))
                return fail(r->c, "pattern: a quantifier must be {m}, {m,} or {m,n} with m <= n "
                                  "<= 10000");
            if (hi == -2)
                cn_buf_printf(r->b, "{%ld,}", lo);
            else
                cn_buf_printf(r->b, "{%ld,%ld}", lo, hi);
            r->p = e + 1;
        }
        if (*r->p == '?' || *r->p == '+')
            return fail(r->c, "pattern: lazy and possessive quantifiers are not supported");
    }
    return 0;
}

static int rx_alt(rx *r)
{
    if (rx_seq(r))
        return r->c->rc;
    while (*r->p == '|') {
        r->p++;
        cn_buf_printf(r->b, " |");
        if (rx_seq(r))
            return r->c->rc;
    }
    return 0;
}

/* The characters of a string matching pattern, as a GBNF sequence into b. */
static int pattern_body(comp *c, const char *pat, cn_buf *b)
{
    size_t n = strlen(pat);
    bool start = n && pat[0] == '^', end = n > (size_t)start && pat[n - 1] == '$' &&
                                          (n < 2 || pat[n - 2] != '\\');
    char *core = strndup(pat + start, n - start - end);
    if (!core)
        return fail(c, "out of memory");
    /* JSON Schema patterns are not anchored: anything may come around them */
    if (!start)
        cn_buf_printf(b, " char*");
    cn_buf_printf(b, " (");
    rx r = {.p = core, .c = c, .b = b};
    int rc = rx_alt(&r);
    if (!rc && *r.p)
        rc = fail(c, "pattern: unexpected %c", *r.p);
    free(core);
    if (rc)
        return rc;
    cn_buf_printf(b, ")");
    if (!end)
        cn_buf_printf(b, " char*");
    return 0;
}

/* ---- schemas ------------------------------------------------------------------------- */

static long get_count(comp *c, const json_t *s, const char *key, long dflt)
{
    const json_t *v = json_object_get(s, key);
    if (!v)
        return dflt;
    /* the grammar's limit of a repetition */
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000) {
        fail(c, "%s must be a whole number from 0 to 10000", key);
        return dflt;
    }
    return (long)json_integer_value(v);
}

/* {m,n} (n < 0: no bound) after an element, in GBNF. */
static void counts(cn_buf *b, long lo, long hi)
{
    if (lo == 0 && hi < 0)
        cn_buf_printf(b, "*");
    else if (lo == 1 && hi < 0)
        cn_buf_printf(b, "+");
    else if (hi < 0)
        cn_buf_printf(b, "{%ld,}", lo);
    else if (lo == hi)
        cn_buf_printf(b, "{%ld}", lo);
    else
        cn_buf_printf(b, "{%ld,%ld}", lo, hi);
}

static int string_rule(comp *c, const json_t *s, cn_buf *b)
{
    const char *fmt = json_string_value(json_object_get(s, "format"));
    const char *pat = json_string_value(json_object_get(s, "pattern"));
    if (json_object_get(s, "pattern") && !pat)
        return fail(c, "pattern must be a string");
    cn_buf_printf(b, "\"\\\"\"");
    if (fmt) {
        size_t i = 0;
        while (i < CN_ARRAY_LEN(formats) && strcmp(formats[i].name, fmt))
            i++;
        if (i == CN_ARRAY_LEN(formats))
            return fail(c, "format \"%s\" is not supported (date, time, date-time, email, uri, "
                           "uuid are)",
                        fmt);
        if (pat)
            return fail(c, "format and pattern together are not supported");
        cn_buf_printf(b, " %s", formats[i].gbnf);
    } else if (pat) {
        if (json_object_get(s, "minLength") || json_object_get(s, "maxLength"))
            return fail(c, "pattern with minLength or maxLength is not supported");
        if (pattern_body(c, pat, b))
            return c->rc;
    } else {
        long lo = get_count(c, s, "minLength", 0), hi = get_count(c, s, "maxLength", -1);
        if (hi >= 0 && hi < lo)
            return fail(c, "maxLength is below minLength");
        cn_buf_printf(b, " char");
        counts(b, lo, hi);
    }
    cn_buf_printf(b, " \"\\\"\" ws");
    return c->rc;
}

/* ---- numeric bounds ------------------------------------------------------------------
**
** minimum, maximum, exclusiveMinimum, exclusiveMaximum (a number, or draft
** 4's boolean beside minimum/maximum). The grammar spells the allowed
** decimal texts: an integer range is a union of digit ranges (numbers of
** each length, split at the first digit where the bounds differ, as
** regular-expression generators for ranges do); a number in a range is its
** integer part's range with the fraction each part may have (any, none but
** zeros at an included upper bound, some non-zero digit at an excluded
** lower bound). Bounded numbers are written without an exponent. Bounds of
** a number must be whole (0 to 1, -5 to 100: the common ones); a fraction
** there is refused by name. */

#define NUM_MAX 9999999999999999ULL /* 16 digits: the integer part's limit in base_rules */

typedef struct bound {
    bool set, ex; /* ex: exclusive */
    double v;
} bound;

static bool all_same(const char *s, int n, char ch)
{
    for (int i = 0; i < n; i++)
        if (s[i] != ch)
            return false;
    return true;
}

/* The n-digit strings from lo to hi (n digits each, leading zeros kept). */
static void digit_range(cn_buf *b, const char *lo, const char *hi, int n)
{
    if (lo[0] == hi[0]) {
        cn_buf_printf(b, "[%c]", lo[0]);
        if (n > 1) {
            cn_buf_printf(b, " ");
            digit_range(b, lo + 1, hi + 1, n - 1);
        }
        return;
    }
    char nines[20], zeros[20];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    bool lo_whole = all_same(lo + 1, n - 1, '0'), hi_whole = all_same(hi + 1, n - 1, '9');
    char a = lo_whole ? lo[0] : (char)(lo[0] + 1), z = hi_whole ? hi[0] : (char)(hi[0] - 1);
    const char *sep = "";
    cn_buf_printf(b, "(");
    if (!lo_whole) {
        cn_buf_printf(b, "[%c] ", lo[0]);
        digit_range(b, lo + 1, nines, n - 1);
        sep = " | ";
    }
    if (a <= z) {
        cn_buf_printf(b, "%s[%c-%c]", sep, a, z);
        if (n > 1)
            cn_buf_printf(b, " [0-9]{%d}", n - 1);
        sep = " | ";
    }
    if (!hi_whole) {
        cn_buf_printf(b, "%s[%c] ", sep, hi[0]);
        digit_range(b, zeros, hi + 1, n - 1);
    }
    cn_buf_printf(b, ")");
}

/* The integers lo..hi (0 <= lo <= hi <= NUM_MAX), without leading zeros. */
static void uint_range(cn_buf *b, unsigned long long lo, unsigned long long hi)
{
    char los[24], his[24];
    int nlo = snprintf(los, sizeof los, "%llu", lo), nhi = snprintf(his, sizeof his, "%llu", hi);
    cn_buf_printf(b, "(");
    unsigned long long first = 1; /* 10^(k-1) */
    for (int k = 1; k <= nhi; k++, first *= 10) {
        if (k < nlo)
            continue;
        unsigned long long a = k == nlo ? lo : first, z = k == nhi ? hi : first * 10 - 1;
        char as[24], zs[24];
        snprintf(as, sizeof as, "%llu", a);
        snprintf(zs, sizeof zs, "%llu", z);
        if (k > nlo)
            cn_buf_printf(b, " | ");
        digit_range(b, as, zs, k);
    }
    cn_buf_printf(b, ")");
}

/* Fractions: any, only zeros (the value is the integer part), or at least
** one digit that is not zero (the value is past the integer part). */
#define FRAC_ANY "(\".\" [0-9]{1,16})?"
#define FRAC_ZERO "(\".\" [0]{1,16})?"
#define FRAC_POS "\".\" [0]{0,15} [1-9] [0-9]{0,15}"

/* Non-negative numbers from lo to hi (hi_set false: no upper bound), the
** bounds whole, as alternatives each starting with sep. Returns how many. */
static int unsigned_numbers(cn_buf *b, const char *sep, unsigned long long lo, bool lo_ex, bool hi_set,
                            unsigned long long hi, bool hi_ex)
{
    int n = 0;
    if (hi_set && lo == hi) {
        if (!lo_ex && !hi_ex) {
            cn_buf_printf(b, "%s", sep);
            uint_range(b, lo, lo);
            cn_buf_printf(b, " " FRAC_ZERO);
            n++;
        }
        return n;
    }
    unsigned long long top = hi_set ? hi - 1 : NUM_MAX;
    if (lo + 1 <= top) { /* the integer parts strictly inside: any fraction */
        cn_buf_printf(b, "%s", n ? " | " : sep);
        uint_range(b, lo + 1, top);
        cn_buf_printf(b, " " FRAC_ANY);
        n++;
    }
    cn_buf_printf(b, "%s", n ? " | " : sep);
    uint_range(b, lo, lo);
    cn_buf_printf(b, lo_ex ? " " FRAC_POS : " " FRAC_ANY);
    n++;
    if (hi_set && !hi_ex) {
        cn_buf_printf(b, " | ");
        uint_range(b, hi, hi);
        cn_buf_printf(b, " " FRAC_ZERO);
        n++;
    }
    return n;
}

/* A bound keyword's value, checked: finite; whole and at most 1e15 when
** whole (a number's bounds). */
static bool bound_value(comp *c, const char *key, const json_t *v, bool whole)
{
    double d = json_number_value(v);
    if (!isfinite(d))
        fail(c, "%s must be a finite number", key);
    else if (whole && (d != floor(d) || fabs(d) > 1e15))
        fail(c, "keyword \"%s\" of a number is supported for whole bounds up to 1e15, not %g "
                "(an integer's may have a fraction)",
             key, d);
    return !c->rc;
}

/* Read one bound keyword: a number, or (exclusive*, draft 4) a boolean. */
static void read_bound(comp *c, const json_t *s, const char *key, const char *ex_key, bool upper,
                       bool whole, bound *out)
{
    const json_t *v = json_object_get(s, key), *x = json_object_get(s, ex_key);
    *out = (bound){0};
    if (v && !json_is_number(v)) {
        fail(c, "%s must be a number", key);
        return;
    }
    if (x && !json_is_number(x) && !json_is_boolean(x)) {
        fail(c, "%s must be a number", ex_key);
        return;
    }
    if ((v && !bound_value(c, key, v, whole)) ||
        (x && json_is_number(x) && !bound_value(c, ex_key, x, whole)))
        return;
    if (v)
        *out = (bound){.set = true, .ex = json_is_true(x), .v = json_number_value(v)};
    if (x && json_is_number(x)) {
        double e = json_number_value(x);
        /* both given: the stricter */
        if (!out->set || (upper ? e <= out->v : e >= out->v))
            *out = (bound){.set = true, .ex = true, .v = e};
    }
}

static const char *const bound_keys[] = {"minimum", "maximum", "exclusiveMinimum",
                                         "exclusiveMaximum"};

/* The first bound keyword s has, or NULL. */
static const char *has_bounds(const json_t *s)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(bound_keys); i++)
        if (json_object_get(s, bound_keys[i]))
            return bound_keys[i];
    return NULL;
}

/* An integer or number with bounds. */
static int bounded_rule(comp *c, const json_t *s, bool integer, cn_buf *b)
{
    bound lo, hi;
    read_bound(c, s, "minimum", "exclusiveMinimum", false, !integer, &lo);
    read_bound(c, s, "maximum", "exclusiveMaximum", true, !integer, &hi);
    if (c->rc)
        return c->rc;
    if (integer) {
        /* inclusive whole bounds, clamped to 16 digits (in integers: a
        ** double does not hold 10^16 - 1) */
        const long long lim = (long long)NUM_MAX;
        double l = lo.set ? (lo.ex ? floor(lo.v) + 1 : ceil(lo.v)) : -1e17;
        double h = hi.set ? (hi.ex ? ceil(hi.v) - 1 : floor(hi.v)) : 1e17;
        long long il = l <= -1e16 ? -lim : l >= 1e16 ? lim + 1 : (long long)l;
        long long ih = h >= 1e16 ? lim : h <= -1e16 ? -lim - 1 : (long long)h;
        if (il > ih)
            return fail(c, "no integer of at most 16 digits is within minimum/maximum");
        cn_buf_printf(b, "(");
        const char *sep = "";
        if (ih >= 0) {
            uint_range(b, il > 0 ? (unsigned long long)il : 0, (unsigned long long)ih);
            sep = " | ";
        }
        if (il < 0) {
            cn_buf_printf(b, "%s\"-\" ", sep);
            uint_range(b, ih < 0 ? (unsigned long long)-ih : 1, (unsigned long long)-il);
        }
        cn_buf_printf(b, ") ws");
        return 0;
    }
    if (lo.set && hi.set && (lo.v > hi.v || (lo.v == hi.v && (lo.ex || hi.ex))))
        return fail(c, "no number is within minimum/maximum (%g to %g)", lo.v, hi.v);
    cn_buf part;
    cn_buf_init(&part, (size_t)1 << 20);
    int n = 0;
    cn_buf_printf(b, "(");
    /* v >= 0: from max(lo, 0) */
    if (!hi.set || hi.v > 0 || (hi.v == 0 && !hi.ex)) {
        bool from_lo = lo.set && lo.v >= 0;
        n += unsigned_numbers(b, "", from_lo ? (unsigned long long)lo.v : 0, from_lo && lo.ex,
                              hi.set, hi.set ? (unsigned long long)hi.v : 0, hi.ex);
    }
    /* v < 0: "-" y with y = -v, from -hi (or above 0) up to -lo */
    if (!lo.set || lo.v < 0) {
        bool from_hi = hi.set && hi.v < 0;
        if (unsigned_numbers(&part, "", from_hi ? (unsigned long long)-hi.v : 0,
                             from_hi ? hi.ex : true, lo.set,
                             lo.set ? (unsigned long long)-lo.v : 0, lo.ex) > 0) {
            cn_buf_printf(b, "%s\"-\" (%s)", n ? " | " : "", part.data);
            n++;
        }
    }
    cn_buf_free(&part);
    cn_buf_printf(b, ") ws");
    return n ? 0 : fail(c, "no number is within minimum/maximum");
}

/* An array with prefixItems (a tuple: Pydantic writes tuple[int, str] so):
** position i follows prefixItems[i], later ones items (none if items is
** false), lengths from minItems to maxItems. Each position is optional
** inside the one before it, from minItems on. */
static int tuple_rule(comp *c, const json_t *prefix, const json_t *items, long lo, long hi,
                      cn_buf *b)
{
    long np = (long)json_array_size(prefix);
    char item[32] = "value";
    bool more = !json_is_false(items);
    if (more && items && schema_rule(c, items, item, sizeof item))
        return c->rc;
    long m = hi >= 0 && hi < np ? hi : np; /* prefix positions that may be used */
    if (!more && lo > m)
        return fail(c, "minItems is more than prefixItems allow with items false");
    cn_buf_printf(b, "\"[\" ws");
    for (long i = 0; i < m; i++) {
        char p[32];
        if (schema_rule(c, json_array_get(prefix, (size_t)i), p, sizeof p))
            return c->rc;
        cn_buf_printf(b, " (%s%s", i ? "\",\" ws " : "", p);
    }
    if (more && m == np && (hi < 0 || hi > np)) {
        cn_buf_printf(b, " (\",\" ws %s)", item);
        counts(b, lo > np ? lo - np : 0, hi < 0 ? -1 : hi - np);
    }
    for (long i = m - 1; i >= 0; i--)
        cn_buf_printf(b, ")%s", i >= lo ? "?" : "");
    cn_buf_printf(b, " \"]\" ws");
    return c->rc;
}

static int array_rule(comp *c, const json_t *s, cn_buf *b)
{
    const json_t *items = json_object_get(s, "items");
    const json_t *prefix = json_object_get(s, "prefixItems");
    long lo = get_count(c, s, "minItems", 0), hi = get_count(c, s, "maxItems", -1);
    if (hi >= 0 && hi < lo)
        return fail(c, "maxItems is below minItems");
    if (prefix && (!json_is_array(prefix) || json_array_size(prefix) == 0))
        return fail(c, "prefixItems must be a list of schemas");
    /* each position nests a group in the grammar */
    if (json_array_size(prefix) > 256 || (json_is_array(items) && json_array_size(items) > 256))
        return fail(c, "a tuple of more than 256 positions is not supported");
    if (prefix && json_object_get(s, "additionalItems"))
        return fail(c, "additionalItems beside prefixItems is not supported (items says it)");
    if (prefix)
        return tuple_rule(c, prefix, items, lo, hi, b);
    if (json_is_array(items)) /* drafts 4 to 7 wrote tuples so */
        return json_array_size(items) ? tuple_rule(c, items, json_object_get(s, "additionalItems"),
                                                   lo, hi, b)
                                       : fail(c, "items must be a schema or a list of them");
    if (json_object_get(s, "additionalItems"))
        return fail(c, "additionalItems is supported beside a list of items only");
    if (json_is_false(items)) {
        if (lo > 0)
            return fail(c, "minItems is more than items false allows");
        hi = 0;
        items = NULL;
    }
    char item[32] = "value";
    if (items && schema_rule(c, items, item, sizeof item))
        return c->rc;
    cn_buf_printf(b, "\"[\" ws");
    if (hi == 0) {
        cn_buf_printf(b, " \"]\" ws");
        return c->rc;
    }
    /* first item, then the rest with commas */
    cn_buf_printf(b, " (%s (\",\" ws %s)", item, item);
    counts(b, lo > 0 ? lo - 1 : 0, hi < 0 ? -1 : hi - 1);
    cn_buf_printf(b, ")%s \"]\" ws", lo > 0 ? "" : "?");
    return c->rc;
}

/* Decode UTF-8 s into code points (at most cap); how many. A sequence cut
** short by the end of s ends it. */
static int code_points(const char *s, uint32_t *out, int cap)
{
    const unsigned char *u = (const unsigned char *)s;
    int n = 0;
    while (*u && n < cap) {
        int len = *u < 0x80 ? 1 : *u >= 0xf0 ? 4 : *u >= 0xe0 ? 3 : 2;
        uint32_t c = len == 1 ? *u : *u & (0x7f >> len);
        for (int i = 1; i < len; i++) {
            if (!u[i])
                return n;
            c = c << 6 | (u[i] & 0x3f);
        }
        out[n++] = c;
        u += len;
    }
    return n;
}

/*
** A key that is none of the declared ones, with its closing quote: a rule
** per node of the keys' trie (what differs here, what follows each child,
** or the end if no key ends here). Extra keys are written without escapes,
** so that "\u0061" cannot spell a declared "a".
*/
static int key_except(comp *c, uint32_t **keys, const int *lens, int n, int depth, char *name,
                      size_t cap)
{
    uint32_t kids[256];
    int n_kids = 0;
    bool ends_here = false;
    for (int i = 0; i < n; i++) {
        if (lens[i] == depth) {
            ends_here = true;
            continue;
        }
        bool seen = false;
        for (int k = 0; k < n_kids && !seen; k++)
            seen = kids[k] == keys[i][depth];
        if (!seen && n_kids < 256)
            kids[n_kids++] = keys[i][depth];
    }
    cn_buf b;
    cn_buf_init(&b, (size_t)16 << 20);
    cn_buf_printf(&b, "[^\"\\\\\\x00-\\x1F");
    for (int k = 0; k < n_kids; k++)
        cn_buf_printf(&b, "\\U%08X", kids[k]);
    cn_buf_printf(&b, "] keychar* \"\\\"\"");
    for (int k = 0; k < n_kids && !c->rc; k++) {
        uint32_t **sub = malloc((size_t)n * sizeof *sub);
        int *sublen = malloc((size_t)n * sizeof *sublen);
        int m = 0;
        for (int i = 0; sub && sublen && i < n; i++)
            if (lens[i] > depth && keys[i][depth] == kids[k])
                sub[m] = keys[i], sublen[m++] = lens[i];
        char child[32];
        if (sub && sublen && !key_except(c, sub, sublen, m, depth + 1, child, sizeof child))
            cn_buf_printf(&b, " | [\\U%08X] %s", kids[k], child);
        else if (!sub || !sublen)
            fail(c, "out of memory");
        free(sub), free(sublen);
    }
    if (!ends_here)
        cn_buf_printf(&b, " | \"\\\"\"");
    if (!c->rc) {
        rule_name(c, name, cap);
        cn_buf_printf(&c->out, "%s ::= %s\n", name, b.data);
    }
    cn_buf_free(&b);
    return c->rc;
}

static int object_rule(comp *c, const json_t *s, cn_buf *b)
{
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    const json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props))
        return fail(c, "properties must be an object");
    if (req && !json_is_array(req))
        return fail(c, "required must be an array");
    size_t n = props ? json_object_size(props) : 0;
    if (!props && !addl) { /* {"type": "object"}: any object */
        cn_buf_printf(b, "object");
        return 0;
    }
    /* the extra pairs additionalProperties lets in */
    char extra[32] = "";
    if (addl && !json_is_false(addl)) {
        char val[32] = "value";
        if (json_is_object(addl) && schema_rule(c, addl, val, sizeof val))
            return c->rc;
        if (!json_is_object(addl) && !json_is_true(addl))
            return fail(c, "additionalProperties must be a boolean or a schema");
        /* its key: any but the declared ones */
        size_t nk = props ? json_object_size(props) : 0;
        uint32_t **keys = calloc(nk + 1, sizeof *keys);
        int *lens = calloc(nk + 1, sizeof *lens);
        const char *k;
        json_t *unused;
        size_t i = 0;
        if (keys && lens && props)
            json_object_foreach((json_t *)props, k, unused) {
                keys[i] = malloc(256 * sizeof **keys);
                lens[i] = keys[i] ? code_points(k, keys[i], 256) : 0;
                i++;
            }
        char key[32];
        if (!keys || !lens)
            fail(c, "out of memory");
        else
            key_except(c, keys, lens, (int)nk, 0, key, sizeof key);
        for (size_t j = 0; keys && j < nk; j++)
            free(keys[j]);
        free(keys), free(lens);
        if (c->rc)
            return c->rc;
        rule_name(c, extra, sizeof extra);
        cn_buf_printf(&c->out, "%s ::= \"\\\"\" %s ws \":\" ws %s\n", extra, key, val);
    }
    for (size_t i = 0; req && i < json_array_size(req); i++) {
        const char *k = json_string_value(json_array_get(req, i));
        if (!k)
            return fail(c, "required holds a non-string");
        if (!json_object_get(props, k) && !extra[0])
            return fail(c, "required property \"%s\" is not in properties", k);
    }
    /*
    ** S_i: what may follow when no property is written yet, from the i-th
    ** on; C_i: the same after one was (so a comma comes first). An optional
    ** property may be skipped; the extras come last.
    */
    char (*S)[32] = calloc(n + 1, sizeof *S), (*C)[32] = calloc(n + 1, sizeof *C);
    char (*kv)[32] = calloc(n + 1, sizeof *kv);
    bool *needed = calloc(n + 1, sizeof *needed);
    if (!S || !C || !kv || !needed) {
        free(S), free(C), free(kv), free(needed);
        return fail(c, "out of memory");
    }
    size_t i = 0;
    const char *key;
    json_t *sub;
    json_object_foreach((json_t *)props, key, sub) {
        char val[32];
        if (schema_rule(c, sub, val, sizeof val))
            break;
        rule_name(c, kv[i], sizeof kv[i]);
        cn_buf tmp;
        cn_buf_init(&tmp, (size_t)16 << 20);
        cn_buf_printf(&tmp, "%s ::= ", kv[i]);
        /* the key as JSON writes it: quoted, escaped */
        json_t *js = json_string(key);
        char *k = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        json_decref(js);
        lit(&tmp, k ? k : "\"\"", k ? strlen(k) : 2);
        free(k);
        cn_buf_printf(&tmp, " ws \":\" ws %s\n", val);
        cn_buf_append(&c->out, tmp.data, tmp.len);
        cn_buf_free(&tmp);
        for (size_t r = 0; req && r < json_array_size(req); r++)
            needed[i] |= json_string_value(json_array_get(req, r)) &&
                         !strcmp(json_string_value(json_array_get(req, r)), key);
        i++;
    }
    for (size_t j = 0; j <= n && !c->rc; j++) {
        rule_name(c, S[j], sizeof S[j]);
        rule_name(c, C[j], sizeof C[j]);
    }
    for (size_t j = 0; j <= n && !c->rc; j++) {
        cn_buf tmp;
        cn_buf_init(&tmp, (size_t)16 << 20);
        if (j == n) {
            if (extra[0]) {
                cn_buf_printf(&tmp, "%s ::= (%s (\",\" ws %s)*)?\n", S[j], extra, extra);
                cn_buf_printf(&tmp, "%s ::= (\",\" ws %s)*\n", C[j], extra);
            } else {
                cn_buf_printf(&tmp, "%s ::= \"\"\n", S[j]);
                cn_buf_printf(&tmp, "%s ::= \"\"\n", C[j]);
            }
        } else {
            cn_buf_printf(&tmp, "%s ::= %s %s%s%s\n", S[j], kv[j], C[j + 1],
                          needed[j] ? "" : " | ", needed[j] ? "" : S[j + 1]);
            cn_buf_printf(&tmp, "%s ::= \",\" ws %s %s%s%s\n", C[j], kv[j], C[j + 1],
                          needed[j] ? "" : " | ", needed[j] ? "" : C[j + 1]);
        }
        cn_buf_append(&c->out, tmp.data, tmp.len);
        cn_buf_free(&tmp);
    }
    if (!c->rc)
        cn_buf_printf(b, "\"{\" ws %s \"}\" ws", S[0]);
    free(S), free(C), free(kv), free(needed);
    return c->rc;
}

/* A JSON value as a GBNF literal (enum, const): JSON's compact text. */
static int literal_value(comp *c, const json_t *v, cn_buf *b)
{
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!t)
        return fail(c, "out of memory");
    lit(b, t, strlen(t));
    free(t);
    cn_buf_printf(b, " ws");
    return 0;
}

static int typed(comp *c, const json_t *s, const char *type, cn_buf *b)
{
    if (!strcmp(type, "string"))
        return string_rule(c, s, b);
    if (!strcmp(type, "object"))
        return object_rule(c, s, b);
    if (!strcmp(type, "array"))
        return array_rule(c, s, b);
    if ((!strcmp(type, "number") || !strcmp(type, "integer")) && has_bounds(s))
        return bounded_rule(c, s, !strcmp(type, "integer"), b);
    if (!strcmp(type, "number") || !strcmp(type, "integer") || !strcmp(type, "boolean") ||
        !strcmp(type, "null")) {
        cn_buf_printf(b, "%s", type);
        return 0;
    }
    return fail(c, "type \"%s\" is unknown", type);
}

/* Resolve "#/$defs/x" (or any JSON pointer into the root). */
static const json_t *resolve(comp *c, const char *ref)
{
    if (strncmp(ref, "#/", 2) != 0) {
        fail(c, "$ref \"%s\": only references into this schema (#/...) are supported", ref);
        return NULL;
    }
    const json_t *cur = c->root;
    char part[256];
    for (const char *p = ref + 2; *p && cur;) {
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof part) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                part[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else
                part[n++] = *p++;
        }
        part[n] = 0;
        if (*p == '/')
            p++;
        cur = json_object_get(cur, part);
    }
    if (!cur)
        fail(c, "$ref \"%s\" points at nothing", ref);
    return cur;
}

/* Is every keyword of s but `keyword` an annotation? If not, fails naming it. */
static bool only_annotations_beside(comp *c, const json_t *s, const char *keyword)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v) {
        bool annotation = !strcmp(key, keyword);
        for (size_t i = 0; i < CN_ARRAY_LEN(ignored) && !annotation; i++)
            annotation = !strcmp(key, ignored[i]);
        if (!annotation) {
            fail(c, "keyword \"%s\" beside %s is not supported", key, keyword);
            return false;
        }
    }
    return true;
}

/* Compile schema s into a rule; its name into name. */
static int schema_rule(comp *c, const json_t *s, char *name, size_t cap)
{
    if (c->rc)
        return c->rc;
    if (++c->depth > 64) {
        c->depth--;
        return fail(c, "nested more than 64 deep");
    }
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        snprintf(name, cap, "value");
        c->depth--;
        return 0;
    }
    if (!json_is_object(s)) {
        c->depth--;
        return fail(c, "a schema must be an object (or true)");
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v) {
        bool ok = false;
        for (size_t i = 0; i < CN_ARRAY_LEN(known) && !ok; i++)
            ok = !strcmp(key, known[i]);
        for (size_t i = 0; i < CN_ARRAY_LEN(ignored) && !ok; i++)
            ok = !strcmp(key, ignored[i]);
        if (!ok) {
            c->depth--;
            return fail(c, "keyword \"%s\" is not supported", key);
        }
    }
    const json_t *all = json_object_get(s, "allOf");
    if (all) {
        /* one schema, annotations beside: how Pydantic describes a $ref */
        if (!json_is_array(all) || json_array_size(all) != 1) {
            c->depth--;
            return fail(c, "allOf is supported with exactly one schema");
        }
        if (!only_annotations_beside(c, s, "allOf")) {
            c->depth--;
            return c->rc;
        }
        int rc = schema_rule(c, json_array_get(all, 0), name, cap);
        c->depth--;
        return rc;
    }
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (ref) {
        if (!only_annotations_beside(c, s, "$ref")) {
            c->depth--;
            return c->rc;
        }
        for (int i = 0; i < c->n_refs; i++)
            if (!strcmp(c->refs[i] + 32, ref)) { /* compiled, or being compiled */
                snprintf(name, cap, "%s", c->refs[i]);
                c->depth--;
                return 0;
            }
        const json_t *target = resolve(c, ref);
        char **r = realloc(c->refs, (size_t)(c->n_refs + 1) * sizeof *r);
        char *ent = r ? malloc(32 + strlen(ref) + 1) : NULL;
        if (!target || !ent) {
            if (r)
                c->refs = r;
            free(ent);
            c->depth--;
            return c->rc ? c->rc : fail(c, "out of memory");
        }
        c->refs = r;
        rule_name(c, ent, 32);
        strcpy(ent + 32, ref);
        c->refs[c->n_refs++] = ent;
        char inner[32];
        int rc = schema_rule(c, target, inner, sizeof inner);
        if (!rc)
            cn_buf_printf(&c->out, "%s ::= %s\n", ent, inner);
        snprintf(name, cap, "%s", ent);
        c->depth--;
        return rc;
    }
    cn_buf b;
    cn_buf_init(&b, (size_t)16 << 20);
    const json_t *en = json_object_get(s, "enum"), *cst = json_object_get(s, "const");
    const json_t *any = json_object_get(s, "anyOf");
    if (!any)
        any = json_object_get(s, "oneOf");
    const json_t *type = json_object_get(s, "type");
    if (has_bounds(s) && (cst || en || any || !type)) {
        fail(c, "keyword \"%s\" is supported beside \"type\": \"number\" or \"integer\" only",
             has_bounds(s));
    } else if (cst) {
        literal_value(c, cst, &b);
    } else if (en) {
        if (!json_is_array(en) || json_array_size(en) == 0)
            fail(c, "enum must be a list of values");
        for (size_t i = 0; i < json_array_size(en) && !c->rc; i++) {
            if (i)
                cn_buf_printf(&b, " | ");
            literal_value(c, json_array_get(en, i), &b);
        }
    } else if (any) {
        if (!json_is_array(any) || json_array_size(any) == 0)
            fail(c, "anyOf/oneOf must be a list of schemas");
        for (size_t i = 0; i < json_array_size(any) && !c->rc; i++) {
            char alt[32];
            if (schema_rule(c, json_array_get(any, i), alt, sizeof alt))
                break;
            cn_buf_printf(&b, "%s%s", i ? " | " : "", alt);
        }
    } else if (json_is_string(type)) {
        typed(c, s, json_string_value(type), &b);
    } else if (json_is_array(type)) {
        for (size_t i = 0; i < json_array_size(type) && !c->rc; i++) {
            const char *t = json_string_value(json_array_get(type, i));
            if (!t) {
                fail(c, "type lists hold type names");
                break;
            }
            if (i)
                cn_buf_printf(&b, " | ");
            cn_buf_printf(&b, "(");
            typed(c, s, t, &b);
            cn_buf_printf(&b, ")");
        }
    } else if (json_object_get(s, "properties") || json_object_get(s, "additionalProperties")) {
        object_rule(c, s, &b);
    } else if (json_object_get(s, "items") || json_object_get(s, "prefixItems")) {
        array_rule(c, s, &b);
    } else if (type) {
        fail(c, "type must be a name or a list of names");
    } else {
        cn_buf_printf(&b, "value");
    }
    if (!c->rc) {
        rule_name(c, name, cap);
        cn_buf_printf(&c->out, "%s ::= %s\n", name, b.data ? b.data : "\"\"");
    }
    cn_buf_free(&b);
    c->depth--;
    return c->rc;
}

int gr_schema_to_gbnf(const char *schema, size_t len, char **out, cn_err *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(schema, len, 0, &je);
    if (!root)
        return cn_fail(err, CN_EFORMAT, "schema: not JSON (line %d: %s)", je.line, je.text);
    comp c = {.root = root, .err = err};
    cn_buf_init(&c.out, (size_t)64 << 20);
    char top[32];
    int rc = schema_rule(&c, root, top, sizeof top);
    if (!rc) {
        cn_buf_printf(&c.out, "root ::= ws %s\n%s", top, base_rules);
        *out = c.out.data;
        c.out.data = NULL;
    }
    cn_buf_free(&c.out);
    for (int i = 0; i < c.n_refs; i++)
        free(c.refs[i]);
    free(c.refs);
    json_decref(root);
    return rc;
}

int gr_from_schema(const char *schema, size_t len, gr_grammar **out, cn_err *err)
{
    *out = NULL;
    char *gbnf;
    int rc = gr_schema_to_gbnf(schema, len, &gbnf, err);
    if (rc)
        return rc;
    rc = gr_parse(gbnf, out, err);
    free(gbnf);
    return rc;
}
