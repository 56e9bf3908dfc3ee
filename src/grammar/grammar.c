/*
** grammar.c: GBNF parsing and matching (see grammar.h).
**
** A rule is an array of elements: the alternatives one after the other,
** each ended by E_ALT except the last, ended by E_END. A character class is
** a run of elements: E_CHAR (or E_CHAR_NOT for [^...]) with the first
** character, each further one as E_CHAR_ALT, any of them followed by
** E_RNG_UPPER when it starts a range. Repetition and parentheses become
** rules of their own, so the matcher sees only characters and references.
**
** The matcher keeps a set of stacks of positions (pointers into the rules):
** every way the text so far can go on. A stack's top is always a character
** element; advancing over a code point pops the tops that match it and
** expands what follows until characters are on top again.
*/
#include "grammar/grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { E_END, E_ALT, E_REF, E_CHAR, E_CHAR_NOT, E_RNG_UPPER, E_CHAR_ALT, E_ANY };

typedef struct elem {
    uint8_t t;
    uint32_t v;
    uint32_t suf; /* fewest characters from here to the end of the alternative */
} elem;

#define GR_INF 0x3fffffffu

typedef struct elist {
    elem *e;
    int n, cap;
} elist;

struct gr_grammar {
    elist *rules;
    char **names;
    bool *defined;
    int n_rules, cap_rules;
    int root;
};

#define GR_MAX_RULES 100000
#define GR_MAX_REPEAT 10000
#define GR_MAX_STACKS 65536
#define GR_MAX_DEPTH 4096
#define GR_MAX_NEST 1000 /* groups inside groups in one rule */
#define GR_MAX_WORK 1000000 /* expansions and stacks compared, for one step */

/* ---- building ---------------------------------------------------------------- */

static int push(elist *l, uint8_t t, uint32_t v)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        elem *e = realloc(l->e, (size_t)cap * sizeof *e);
        if (!e)
            return -1;
        l->e = e, l->cap = cap;
    }
    l->e[l->n++] = (elem){t, v, 0};
    return 0;
}

static int rule_id(gr_grammar *g, const char *name, size_t len)
{
    for (int i = 0; i < g->n_rules; i++)
        if (strlen(g->names[i]) == len && !memcmp(g->names[i], name, len))
            return i;
    if (g->n_rules == GR_MAX_RULES)
        return -1;
    if (g->n_rules == g->cap_rules) {
        int cap = g->cap_rules ? 2 * g->cap_rules : 16;
        elist *r = realloc(g->rules, (size_t)cap * sizeof *r);
        if (r)
            g->rules = r;
        char **nm = realloc(g->names, (size_t)cap * sizeof *nm);
        if (nm)
            g->names = nm;
        bool *d = realloc(g->defined, (size_t)cap * sizeof *d);
        if (d)
            g->defined = d;
        if (!r || !nm || !d)
            return -1;
        g->cap_rules = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, name, len);
    copy[len] = 0;
    g->rules[g->n_rules] = (elist){0};
    g->names[g->n_rules] = copy;
    g->defined[g->n_rules] = false;
    return g->n_rules++;
}

/* A new rule named after base: base_1, base_2, ... */
static int new_rule(gr_grammar *g, const char *base)
{
    char name[256];
    for (int k = g->n_rules;; k++) {
        snprintf(name, sizeof name, "%.200s_%d", base, k);
        bool taken = false;
        for (int i = 0; i < g->n_rules && !taken; i++)
            taken = !strcmp(g->names[i], name);
        if (!taken) {
            int id = rule_id(g, name, strlen(name));
            if (id >= 0)
                g->defined[id] = true;
            return id;
        }
    }
}

void gr_free(gr_grammar *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_rules; i++) {
        free(g->rules[i].e);
        free(g->names[i]);
    }
    free(g->rules);
    free(g->names);
    free(g->defined);
    free(g);
}

/* ---- parsing ------------------------------------------------------------------ */

typedef struct parser {
    gr_grammar *g;
    const char *p;
    int line;
    cn_err *err;
    int rc;
    int nest; /* groups open: each one is a recursion of the parser */
} parser;

static int fail(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *ps, const char *fmt, ...)
{
    if (ps->rc)
        return ps->rc;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ps->rc = cn_fail(ps->err, CN_EFORMAT, "grammar line %d: %s", ps->line, msg);
    return ps->rc;
}

static bool is_name(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Skip blanks and comments; newlines too when newlines. */
static void space(parser *ps, bool newlines)
{
    for (;;) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\r')
            ps->p++;
        else if (c == '#')
            while (*ps->p && *ps->p != '\n')
                ps->p++;
        else if (c == '\n' && newlines) {
            ps->p++;
            ps->line++;
        } else
            return;
    }
}

/* Decode one UTF-8 code point at *s; -1 if malformed. */
static int32_t utf8_next(const char **s)
{
    const unsigned char *u = (const unsigned char *)*s;
    int n = u[0] < 0x80 ? 1 : (u[0] >> 5) == 6 ? 2 : (u[0] >> 4) == 14 ? 3 : (u[0] >> 3) == 30 ? 4 : 0;
    if (!n)
        return -1;
    int32_t c = n == 1 ? u[0] : u[0] & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return -1;
        c = c << 6 | (u[i] & 0x3f);
    }
    /* overlong forms, surrogates and code points past U+10FFFF are not UTF-8 */
    static const int32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return -1;
    *s += n;
    return c;
}

static int hex_digits(parser *ps, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        char c = *ps->p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                      : -1;
        if (d < 0)
            return fail(ps, "expected %d hex digits after \\x, \\u or \\U", n), -1;
        v = v * 16 + (uint32_t)d;
        ps->p++;
    }
    if (v > 0x10FFFF)
        return fail(ps, "\\U%08X is beyond Unicode (U+10FFFF)", v), -1;
    return (int)v;
}

/* One character of a literal or class, escapes decoded. */
static int32_t char_of(parser *ps)
{
    if (*ps->p == '\\') {
        ps->p++;
        char c = *ps->p;
        if (c) /* never past the end of the text */
            ps->p++;
        switch (c) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '\\': case '"': case '[': case ']': case '-': case '^': return c;
        case 'x': return hex_digits(ps, 2);
        case 'u': return hex_digits(ps, 4);
        case 'U': return hex_digits(ps, 8);
        default: return fail(ps, "unknown escape \\%c", c ? c : '0'), -1;
        }
    }
    int32_t c = utf8_next(&ps->p);
    if (c <= 0)
        return fail(ps, c == 0 ? "unexpected end of grammar" : "invalid UTF-8"), -1;
    if (c == '\n')
        ps->line++;
    return c;
}

static int alternates(parser *ps, int rule, elist *out, bool nested);

/* Replace the symbol at out[from..] by a reference to a rule holding it. */
static int wrap(parser *ps, elist *out, int from, int rule, uint32_t *ref)
{
    if (out->n - from == 1 && out->e[from].t == E_REF) {
        *ref = out->e[from].v;
        out->n = from;
        return 0;
    }
    int id = new_rule(ps->g, ps->g->names[rule]);
    if (id < 0)
        return fail(ps, "too many rules");
    elist *r = &ps->g->rules[id];
    for (int i = from; i < out->n; i++)
        if (push(r, out->e[i].t, out->e[i].v))
            return fail(ps, "out of memory");
    if (push(r, E_END, 0))
        return fail(ps, "out of memory");
    out->n = from;
    *ref = (uint32_t)id;
    return 0;
}

/* A rule R ::= X R | (empty): X zero or more times. */
static int star_of(parser *ps, int rule, uint32_t x)
{
    int id = new_rule(ps->g, ps->g->names[rule]);
    if (id < 0)
        return fail(ps, "too many rules"), -1;
    elist *r = &ps->g->rules[id];
    if (push(r, E_REF, x) || push(r, E_REF, (uint32_t)id) || push(r, E_ALT, 0) || push(r, E_END, 0))
        return fail(ps, "out of memory"), -1;
    return id;
}

/* The repetition after the symbol at out[from..]: * + ? {m} {m,} {m,n}. */
static int repeat(parser *ps, int rule, elist *out, int from)
{
    char op = *ps->p++;
    long lo = 0, hi = -1; /* -1: no upper bound */
    if (op == '*')
        lo = 0;
    else if (op == '+')
        lo = 1;
    else if (op == '?')
        lo = 0, hi = 1;
    else { /* { */
        space(ps, false);
        char *end;
        lo = strtol(ps->p, &end, 10);
        if (end == ps->p || lo < 0 || lo > GR_MAX_REPEAT)
            return fail(ps, "expected a count in {m,n}");
        ps->p = end;
        space(ps, false);
        hi = lo;
        if (*ps->p == ',') {
            ps->p++;
            space(ps, false);
            hi = -1;
            if (*ps->p != '}') {
                hi = strtol(ps->p, &end, 10);
                if (end == ps->p || hi < lo || hi > GR_MAX_REPEAT)
                    return fail(ps, "{m,n} needs m <= n <= %d", GR_MAX_REPEAT);
                ps->p = end;
                space(ps, false);
            }
        }
        if (*ps->p != '}')
            return fail(ps, "expected } after {m,n}");
        ps->p++;
    }
    uint32_t x = 0;
    if (wrap(ps, out, from, rule, &x))
        return ps->rc;
    for (long i = 0; i < lo; i++)
        if (push(out, E_REF, x))
            return fail(ps, "out of memory");
    if (hi < 0) {
        int s = star_of(ps, rule, x);
        if (s < 0 || push(out, E_REF, (uint32_t)s))
            return fail(ps, "out of memory");
    } else if (hi > lo) {
        /* (X (X (X)?)?)? : hi - lo optional copies, nested */
        int inner = -1;
        for (long k = 0; k < hi - lo; k++) {
            int id = new_rule(ps->g, ps->g->names[rule]);
            if (id < 0)
                return fail(ps, "too many rules");
            elist *r = &ps->g->rules[id];
            if (push(r, E_REF, x) || (inner >= 0 && push(r, E_REF, (uint32_t)inner)) ||
                push(r, E_ALT, 0) || push(r, E_END, 0))
                return fail(ps, "out of memory");
            inner = id;
        }
        if (push(out, E_REF, (uint32_t)inner))
            return fail(ps, "out of memory");
    }
    return 0;
}

/* After a newline at the top level: does the rule go on ("|" next)? */
static bool continues(const parser *ps)
{
    const char *q = ps->p;
    for (;;) {
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (*q == '#') {
            while (*q && *q != '\n')
                q++;
            continue;
        }
        return *q == '|';
    }
}

static int sequence(parser *ps, int rule, elist *out, bool nested)
{
    int last = -1; /* where the last symbol starts, for a repetition */
    for (;;) {
        space(ps, nested);
        char c = *ps->p;
        if (c == '"') {
            ps->p++;
            last = out->n;
            while (*ps->p != '"') {
                if (!*ps->p)
                    return fail(ps, "unterminated string");
                int32_t ch = char_of(ps);
                if (ch < 0 || push(out, E_CHAR, (uint32_t)ch))
                    return fail(ps, "out of memory");
            }
            ps->p++;
            if (out->n == last) /* "" matches nothing: no symbol */
                last = -1;
        } else if (c == '[') {
            ps->p++;
            last = out->n;
            bool neg = *ps->p == '^';
            if (neg)
                ps->p++;
            uint8_t t = neg ? E_CHAR_NOT : E_CHAR;
            while (*ps->p != ']') {
                if (!*ps->p)
                    return fail(ps, "unterminated character class");
                int32_t lo = char_of(ps);
                if (lo < 0 || push(out, t, (uint32_t)lo))
                    return ps->rc ? ps->rc : fail(ps, "out of memory");
                t = E_CHAR_ALT;
                if (ps->p[0] == '-' && ps->p[1] != ']' && ps->p[1]) {
                    ps->p++;
                    int32_t hi = char_of(ps);
                    if (hi < 0)
                        return ps->rc;
                    if (hi < lo)
                        return fail(ps, "range %c-%c runs backwards", (char)lo, (char)hi);
                    if (push(out, E_RNG_UPPER, (uint32_t)hi))
                        return fail(ps, "out of memory");
                }
            }
            if (out->n == last)
                return fail(ps, "empty character class []");
            ps->p++;
        } else if (is_name(c)) {
            const char *s = ps->p;
            while (is_name(*ps->p))
                ps->p++;
            int id = rule_id(ps->g, s, (size_t)(ps->p - s));
            if (id < 0)
                return fail(ps, "too many rules");
            last = out->n;
            if (push(out, E_REF, (uint32_t)id))
                return fail(ps, "out of memory");
        } else if (c == '(') {
            ps->p++;
            if (ps->nest >= GR_MAX_NEST) /* a hostile file must not exhaust the stack */
                return fail(ps, "groups nested more than %d deep", GR_MAX_NEST);
            int id = new_rule(ps->g, ps->g->names[rule]);
            if (id < 0)
                return fail(ps, "too many rules");
            elist body = {0};
            ps->nest++;
            int rc = alternates(ps, rule, &body, true);
            ps->nest--;
            ps->g->rules[id] = body; /* after: alternates may grow the rule table */
            if (rc)
                return rc;
            space(ps, true);
            if (*ps->p != ')')
                return fail(ps, "expected )");
            ps->p++;
            last = out->n;
            if (push(out, E_REF, (uint32_t)id))
                return fail(ps, "out of memory");
        } else if (c == '.') {
            ps->p++;
            last = out->n;
            if (push(out, E_ANY, 0))
                return fail(ps, "out of memory");
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last < 0)
                return fail(ps, "%c with nothing before it to repeat", c);
            if (repeat(ps, rule, out, last))
                return ps->rc;
            last = -1; /* x** is an error, as in llama.cpp */
        } else if (c == '\n' && !nested) {
            if (!continues(ps))
                return 0;
            space(ps, true);
        } else
            return 0;
    }
}

/* Alternatives into out, ended with E_END. */
static int alternates(parser *ps, int rule, elist *out, bool nested)
{
    if (sequence(ps, rule, out, nested))
        return ps->rc;
    while (*ps->p == '|') {
        ps->p++;
        if (push(out, E_ALT, 0))
            return fail(ps, "out of memory");
        space(ps, true);
        if (sequence(ps, rule, out, nested))
            return ps->rc;
    }
    if (push(out, E_END, 0))
        return fail(ps, "out of memory");
    return 0;
}

/* ---- checks: every rule defined, no left recursion ---------------------------- */

/* Which rules can match the empty text (fixed point). */
static void nullable(const gr_grammar *g, bool *nul)
{
    memset(nul, 0, (size_t)g->n_rules * sizeof *nul);
    for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < g->n_rules; r++) {
            if (nul[r])
                continue;
            const elem *e = g->rules[r].e;
            bool alt_ok = true;
            for (int i = 0; i < g->rules[r].n && !nul[r]; i++) {
                if (e[i].t == E_ALT || e[i].t == E_END) {
                    if (alt_ok)
                        nul[r] = changed = true;
                    alt_ok = true;
                } else if (e[i].t == E_REF) {
                    alt_ok = alt_ok && nul[e[i].v];
                } else if (e[i].t == E_CHAR || e[i].t == E_CHAR_NOT || e[i].t == E_ANY)
                    alt_ok = false;
            }
        }
    }
}

/* Is there a path from rule r back to itself without consuming a character? */
static bool left_cycle(const gr_grammar *g, const bool *nul, int r, uint8_t *mark)
{
    if (mark[r] == 1)
        return true;
    if (mark[r] == 2)
        return false;
    mark[r] = 1;
    const elem *e = g->rules[r].e;
    bool at_start = true;
    for (int i = 0; i < g->rules[r].n; i++) {
        if (e[i].t == E_ALT || e[i].t == E_END) {
            at_start = true;
            continue;
        }
        if (!at_start)
            continue;
        if (e[i].t == E_REF) {
            if (left_cycle(g, nul, (int)e[i].v, mark))
                return true;
            at_start = nul[e[i].v];
        } else if (e[i].t == E_CHAR || e[i].t == E_CHAR_NOT || e[i].t == E_ANY)
            at_start = false;
    }
    mark[r] = 2;
    return false;
}

/* The element after the one at e[i] (a class spans several). */
static int next_elem(const elem *e, int i)
{
    if (e[i].t == E_CHAR || e[i].t == E_CHAR_NOT) {
        i++;
        while (e[i].t == E_RNG_UPPER || e[i].t == E_CHAR_ALT)
            i++;
        return i;
    }
    return i + 1;
}

/*
** Fewest characters each rule can match, and from each element to the end
** of its alternative (elem.suf): what gr_distance adds up. A fixed point,
** since rules refer to each other.
*/
static void min_lengths(gr_grammar *g)
{
    uint32_t *minlen = malloc((size_t)g->n_rules * sizeof *minlen);
    if (!minlen)
        return;
    for (int r = 0; r < g->n_rules; r++)
        minlen[r] = GR_INF;
    for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < g->n_rules; r++) {
            elem *e = g->rules[r].e;
            int n = g->rules[r].n;
            /* backwards: each element's suffix from the next one's */
            for (int i = n - 1; i >= 0; i--) {
                if (e[i].t == E_END || e[i].t == E_ALT) {
                    e[i].suf = 0;
                    continue;
                }
                if (e[i].t == E_RNG_UPPER || e[i].t == E_CHAR_ALT)
                    continue;
                uint32_t self = e[i].t == E_REF ? minlen[e[i].v] : 1;
                uint32_t rest = e[next_elem(e, i)].suf;
                uint32_t sum = self + rest;
                e[i].suf = sum > GR_INF ? GR_INF : sum;
            }
            uint32_t best = GR_INF;
            for (int i = 0; i < n;) {
                best = e[i].suf < best ? e[i].suf : best; /* an alternative's start */
                while (e[i].t != E_END && e[i].t != E_ALT)
                    i++;
                i++;
            }
            if (best < minlen[r]) {
                minlen[r] = best;
                changed = true;
            }
        }
    }
    free(minlen);
}

int gr_parse(const char *text, gr_grammar **out, cn_err *err)
{
    *out = NULL;
    gr_grammar *g = calloc(1, sizeof *g);
    if (!g)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    parser ps = {.g = g, .p = text, .line = 1, .err = err};
    space(&ps, true);
    while (*ps.p && !ps.rc) {
        const char *s = ps.p;
        while (is_name(*ps.p))
            ps.p++;
        if (ps.p == s) {
            fail(&ps, "expected a rule name");
            break;
        }
        int id = rule_id(g, s, (size_t)(ps.p - s));
        if (id < 0) {
            fail(&ps, "too many rules");
            break;
        }
        if (g->defined[id]) {
            fail(&ps, "rule %s is defined twice", g->names[id]);
            break;
        }
        g->defined[id] = true;
        space(&ps, false);
        if (strncmp(ps.p, "::=", 3) != 0) {
            fail(&ps, "expected ::= after %s", g->names[id]);
            break;
        }
        ps.p += 3;
        space(&ps, true);
        elist body = {0};
        alternates(&ps, id, &body, false);
        g->rules[id] = body; /* after: alternates may grow the rule table */
        if (ps.rc)
            break;
        space(&ps, true);
    }
    g->root = -1;
    for (int i = 0; i < g->n_rules && !ps.rc; i++) {
        if (!g->defined[i])
            fail(&ps, "rule %s is used but never defined", g->names[i]);
        else if (!strcmp(g->names[i], "root"))
            g->root = i;
    }
    if (!ps.rc && g->root < 0)
        ps.rc = cn_fail(err, CN_EFORMAT, "grammar: no rule named root");
    if (!ps.rc) {
        bool *nul = malloc((size_t)g->n_rules * sizeof *nul);
        uint8_t *mark = calloc((size_t)g->n_rules, 1);
        if (!nul || !mark)
            ps.rc = cn_fail(err, CN_ENOMEM, "out of memory");
        else {
            nullable(g, nul);
            for (int r = 0; r < g->n_rules && !ps.rc; r++) {
                memset(mark, 0, (size_t)g->n_rules);
                if (left_cycle(g, nul, r, mark))
                    ps.rc = cn_fail(err, CN_EFORMAT,
                                    "grammar: rule %s recurses on the left (it can reach itself "
                                    "before matching a character)",
                                    g->names[r]);
            }
        }
        free(nul);
        free(mark);
    }
    if (ps.rc) {
        gr_free(g);
        return ps.rc;
    }
    min_lengths(g);
    *out = g;
    return CN_OK;
}

/* ---- printing ---------------------------------------------------------------- */

static void put_char(cn_buf *b, uint32_t c)
{
    if (c == '"' || c == '\\' || c == ']' || c == '[' || c == '-' || c == '^')
        cn_buf_printf(b, "\\%c", (char)c);
    else if (c == '\n')
        cn_buf_printf(b, "\\n");
    else if (c < 0x20 || c == 0x7f)
        cn_buf_printf(b, "\\x%02X", c);
    else if (c < 0x80)
        cn_buf_printf(b, "%c", (char)c);
    else
        cn_buf_printf(b, "\\U%08X", c);
}

char *gr_print(const gr_grammar *g)
{
    cn_buf b;
    cn_buf_init(&b, (size_t)64 << 20);
    for (int r = 0; r < g->n_rules; r++) {
        cn_buf_printf(&b, "%s ::=", g->names[r]);
        const elem *e = g->rules[r].e;
        for (int i = 0; i < g->rules[r].n; i++) {
            switch (e[i].t) {
            case E_END: break;
            case E_ALT: cn_buf_printf(&b, " |"); break;
            case E_REF: cn_buf_printf(&b, " %s", g->names[e[i].v]); break;
            case E_ANY: cn_buf_printf(&b, " ."); break;
            case E_CHAR:
            case E_CHAR_NOT:
                cn_buf_printf(&b, e[i].t == E_CHAR_NOT ? " [^" : " [");
                put_char(&b, e[i].v);
                while (e[i + 1].t == E_RNG_UPPER || e[i + 1].t == E_CHAR_ALT) {
                    i++;
                    if (e[i].t == E_RNG_UPPER)
                        cn_buf_printf(&b, "-");
                    put_char(&b, e[i].v);
                }
                cn_buf_printf(&b, "]");
                break;
            default: break;
            }
        }
        cn_buf_printf(&b, "\n");
    }
    return b.data ? b.data : strdup("");
}

/* ---- matching ------------------------------------------------------------------ */

typedef struct stk {
    const elem **p;
    int n;
} stk;

struct gr_matcher {
    const gr_grammar *g;
    stk *s;
    int n, cap;
    unsigned char part[4]; /* the start of a UTF-8 sequence a token cut */
    int n_part;
    bool limited; /* the last gr_accept refused at the work limit */
};

typedef struct stkset {
    stk *s;
    int n, cap;
    bool overflow;
    long work; /* expansions and comparisons so far: rules that match
               ** nothing, repeated, can make the ways to expand exponential
               ** (line{1,33} with an empty line) even where the stacks
               ** found are few, or the set quadratic to keep */
} stkset;

static void set_free(stkset *ss)
{
    for (int i = 0; i < ss->n; i++)
        free(ss->s[i].p);
    free(ss->s);
    *ss = (stkset){0};
}

/* Add a copy of positions p[0..n) to the set, unless it is there already. */
static void set_add(stkset *ss, const elem *const *p, int n)
{
    ss->work += ss->n; /* the scan below is work too */
    if (ss->work > GR_MAX_WORK) {
        ss->overflow = true;
        return;
    }
    for (int i = 0; i < ss->n; i++)
        if (ss->s[i].n == n && (n == 0 || !memcmp(ss->s[i].p, p, (size_t)n * sizeof *p)))
            return; /* (an empty stack's positions may be NULL) */
    if (ss->n >= GR_MAX_STACKS) {
        ss->overflow = true;
        return;
    }
    if (ss->n == ss->cap) {
        int cap = ss->cap ? 2 * ss->cap : 8;
        stk *s = realloc(ss->s, (size_t)cap * sizeof *s);
        if (!s) {
            ss->overflow = true;
            return;
        }
        ss->s = s, ss->cap = cap;
    }
    const elem **c = n ? malloc((size_t)n * sizeof *c) : NULL;
    if (n && !c) {
        ss->overflow = true;
        return;
    }
    if (n)
        memcpy(c, p, (size_t)n * sizeof *c);
    ss->s[ss->n++] = (stk){c, n};
}

static bool is_char(uint8_t t) { return t == E_CHAR || t == E_CHAR_NOT || t == E_ANY; }

/* Expand the stack p[0..n) until characters are on top; into ss. buf has
** room for GR_MAX_DEPTH positions and p may point into it. */
static void expand(const gr_grammar *g, const elem **p, int n, stkset *ss, int depth)
{
    if (ss->overflow || ++ss->work > GR_MAX_WORK) {
        ss->overflow = true;
        return;
    }
    if (n == 0 || is_char(p[n - 1]->t)) {
        set_add(ss, p, n);
        return;
    }
    if (depth > GR_MAX_DEPTH || n + 2 > GR_MAX_DEPTH) {
        ss->overflow = true;
        return;
    }
    const elem *ref = p[n - 1];
    const elem *after = ref + 1;
    const elem *body = g->rules[ref->v].e;
    const elem **q = malloc((size_t)(n + 2) * sizeof *q);
    if (!q) {
        ss->overflow = true;
        return;
    }
    for (const elem *a = body;;) {
        int m = n - 1;
        memcpy(q, p, (size_t)m * sizeof *q);
        if (after->t != E_END && after->t != E_ALT)
            q[m++] = after;
        if (a->t != E_END && a->t != E_ALT)
            q[m++] = a;
        expand(g, q, m, ss, depth + 1);
        while (a->t != E_END && a->t != E_ALT)
            a++;
        if (a->t == E_END)
            break;
        a++;
    }
    free(q);
}

/* Does the class at pos take c? *next gets the element after the class. */
static bool class_takes(const elem *pos, uint32_t c, const elem **next)
{
    if (pos->t == E_ANY) {
        *next = pos + 1;
        return true;
    }
    bool neg = pos->t == E_CHAR_NOT, found = false;
    do {
        if (pos[1].t == E_RNG_UPPER) {
            found |= pos->v <= c && c <= pos[1].v;
            pos += 2;
        } else {
            found |= pos->v == c;
            pos++;
        }
    } while (pos->t == E_CHAR_ALT);
    *next = pos;
    return found != neg;
}

/* Could the class at pos take some code point in [lo, hi]? */
static bool class_takes_range(const elem *pos, uint32_t lo, uint32_t hi)
{
    if (pos->t == E_ANY || pos->t == E_CHAR_NOT)
        return true; /* a negated class leaves most of any range open */
    do {
        uint32_t a = pos->v, b = pos[1].t == E_RNG_UPPER ? pos[1].v : pos->v;
        if (a <= hi && lo <= b)
            return true;
        pos += pos[1].t == E_RNG_UPPER ? 2 : 1;
    } while (pos->t == E_CHAR_ALT);
    return false;
}

/* Advance every stack of cur over code point c into next. */
static void step(const gr_grammar *g, const stk *cur, int n_cur, uint32_t c, stkset *next)
{
    const elem **tmp = NULL;
    int cap = 0;
    for (int i = 0; i < n_cur; i++) {
        const stk *s = &cur[i];
        if (s->n == 0)
            continue;
        const elem *after;
        if (!class_takes(s->p[s->n - 1], c, &after))
            continue;
        if (s->n + 1 > cap) {
            cap = s->n + 1;
            const elem **t = realloc(tmp, (size_t)cap * sizeof *t);
            if (!t) {
                next->overflow = true;
                break;
            }
            tmp = t;
        }
        int m = s->n - 1;
        memcpy(tmp, s->p, (size_t)m * sizeof *tmp);
        if (after->t != E_END && after->t != E_ALT)
            tmp[m++] = after;
        expand(g, tmp, m, next, 0);
    }
    free(tmp);
}

int gr_matcher_new(const gr_grammar *g, gr_matcher **out, cn_err *err)
{
    *out = NULL;
    gr_matcher *m = calloc(1, sizeof *m);
    if (!m)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    m->g = g;
    stkset ss = {0};
    const elem *start[1];
    /* the root's alternatives, each a stack of its own */
    for (const elem *a = g->rules[g->root].e;;) {
        if (a->t != E_END && a->t != E_ALT) {
            start[0] = a;
            expand(g, start, 1, &ss, 0);
        } else
            set_add(&ss, start, 0); /* an empty alternative: done at once */
        while (a->t != E_END && a->t != E_ALT)
            a++;
        if (a->t == E_END)
            break;
        a++;
    }
    if (ss.overflow) {
        set_free(&ss);
        free(m);
        return cn_fail(err, CN_ELIMIT, "grammar: too many ways to start (over %d, or over %d "
                                       "steps to find them: a repetition of a rule that may match "
                                       "nothing?)",
                       GR_MAX_STACKS, GR_MAX_WORK);
    }
    m->s = ss.s, m->n = ss.n, m->cap = ss.cap;
    *out = m;
    return CN_OK;
}

gr_matcher *gr_matcher_clone(const gr_matcher *m)
{
    gr_matcher *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = *m;
    c->s = NULL, c->n = c->cap = 0;
    /* m's stacks are distinct already: copied, not compared again */
    stkset ss = {.s = m->n ? malloc((size_t)m->n * sizeof *ss.s) : NULL, .cap = m->n};
    if (m->n && !ss.s) {
        free(c);
        return NULL;
    }
    for (int i = 0; i < m->n; i++) {
        int n = m->s[i].n;
        const elem **p = n ? malloc((size_t)n * sizeof *p) : NULL;
        if (n && !p) {
            set_free(&ss);
            free(c);
            return NULL;
        }
        if (n)
            memcpy(p, m->s[i].p, (size_t)n * sizeof *p);
        ss.s[ss.n++] = (stk){p, n};
    }
    c->s = ss.s, c->n = ss.n, c->cap = ss.cap;
    return c;
}

void gr_matcher_free(gr_matcher *m)
{
    if (!m)
        return;
    stkset ss = {m->s, m->n, m->cap, false, 0};
    set_free(&ss);
    free(m);
}

/* Length of the UTF-8 sequence a lead byte starts (0: not a lead byte). */
static int utf8_len(unsigned char b)
{
    return b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
}

/*
** The code points that could complete a UTF-8 sequence cut after n of its
** bytes, as [*lo, *hi]; only those that are UTF-8 (no overlong form,
** nothing past U+10FFFF). false if there are none.
*/
static bool completions(const unsigned char *part, int n, uint32_t *lo, uint32_t *hi)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t max[5] = {0, 0x7f, 0x7ff, 0xffff, 0x10ffff};
    int need = utf8_len(part[0]);
    uint32_t a = part[0] & (0x7f >> need), b = a;
    for (int k = 1; k < need; k++) {
        a = a << 6 | (k < n ? (part[k] & 0x3f) : 0);
        b = b << 6 | (k < n ? (part[k] & 0x3f) : 0x3f);
    }
    *lo = CN_MAX(a, min[need]);
    *hi = CN_MIN(b, max[need]);
    return *lo <= *hi;
}

/*
** Run bytes through a copy of the state (stacks s[0..n), partial sequence
** part): into *res when res is not NULL. false when the grammar refuses.
*/
static bool run(const gr_matcher *m, const char *bytes, size_t len, gr_matcher *res)
{
    unsigned char part[4];
    int n_part = m->n_part;
    memcpy(part, m->part, sizeof part);
    stkset cur = {0};
    bool own = false; /* cur holds stacks of our own (else m's) */
    const stk *s = m->s;
    int n = m->n;
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++) {
        unsigned char b = (unsigned char)bytes[i];
        if (n_part == 0) {
            if (!utf8_len(b)) {
                ok = false;
                break;
            }
        } else if ((b & 0xc0) != 0x80) {
            ok = false;
            break;
        }
        part[n_part++] = b;
        if (n_part < utf8_len(part[0]))
            continue;
        const char *q = (const char *)part;
        int32_t c = utf8_next(&q);
        n_part = 0;
        if (c < 0) {
            ok = false;
            break;
        }
        stkset next = {0};
        step(m->g, s, n, (uint32_t)c, &next);
        if (own)
            set_free(&cur);
        cur = next;
        own = true;
        s = cur.s, n = cur.n;
        ok = n > 0 && !cur.overflow;
        if (cur.overflow && res)
            res->limited = true;
    }
    if (ok && n_part) {
        /* a sequence cut short: allowed if some completion could be taken */
        uint32_t lo, hi;
        bool any = false;
        if (!completions(part, n_part, &lo, &hi))
            n = 0; /* nothing can complete it */
        for (int k = 0; k < n && !any; k++)
            any = s[k].n && class_takes_range(s[k].p[s[k].n - 1], lo, hi);
        ok = any;
    }
    if (ok && res) {
        stkset ss = {m->s, m->n, m->cap, false, 0};
        if (own) {
            set_free(&ss);
            res->s = cur.s, res->n = cur.n, res->cap = cur.cap;
            own = false;
        }
        memcpy(res->part, part, sizeof part);
        res->n_part = n_part;
    }
    if (own)
        set_free(&cur);
    return ok;
}

bool gr_accept(gr_matcher *m, const char *bytes, size_t n)
{
    m->limited = false;
    return run(m, bytes, n, m);
}

bool gr_limited(const gr_matcher *m) { return m->limited; }

/*
** gr_allows without building stack sets: depth first, stopping at the first
** way through. A stack is the matcher's array (untouched) with a linked
** list of the positions pushed since on top of it, the nodes taken from one
** scratch array like a stack allocator: taking a character replaces the top
** without copying what is below. The mask asks this of every token of the
** vocabulary, so it must not allocate or copy per character.
*/
typedef struct lnode {
    const elem *e;
    const struct lnode *up; /* NULL: the array below */
} lnode;

typedef struct lstack {
    const lnode *top;      /* pushed positions, or NULL */
    const elem *const *arr; /* then arr[0 .. n) */
    int n;
} lstack;

typedef struct probe {
    const gr_grammar *g;
    const uint32_t *cp; /* the code points to take */
    int k;
    bool partial;       /* then a cut sequence, completed by one in [lo, hi] */
    uint32_t lo, hi;
    lnode *scratch;
    int used, cap;
    bool overflow;
    long work; /* steps so far, bounded as expand's are */
} probe;

/* s with e pushed (unless e ends its alternative); false when out of scratch. */
static bool lpush(probe *pr, lstack *s, const elem *e)
{
    if (e->t == E_END || e->t == E_ALT)
        return true;
    if (pr->used == pr->cap) {
        pr->overflow = true;
        return false;
    }
    lnode *nd = &pr->scratch[pr->used++];
    nd->e = e;
    nd->up = s->top;
    s->top = nd;
    return true;
}

static bool can_take(probe *pr, lstack s, int i, int depth)
{
    if (i == pr->k && !pr->partial)
        return true;
    if (++pr->work > GR_MAX_WORK) {
        pr->overflow = true;
        return false;
    }
    const elem *top;
    lstack rest = s;
    if (s.top) {
        top = s.top->e;
        rest.top = s.top->up;
    } else if (s.n > 0) {
        top = s.arr[s.n - 1];
        rest.n--;
    } else {
        return false; /* the sentence is complete: nothing more may come */
    }
    if (depth > GR_MAX_DEPTH) {
        pr->overflow = true;
        return false;
    }
    int mark = pr->used;
    if (top->t == E_REF) {
        bool ok = false;
        for (const elem *a = pr->g->rules[top->v].e; !ok;) {
            lstack q = rest;
            if (lpush(pr, &q, top + 1) && lpush(pr, &q, a))
                ok = can_take(pr, q, i, depth + 1);
            pr->used = mark;
            if (pr->overflow)
                return false;
            while (a->t != E_END && a->t != E_ALT)
                a++;
            if (a->t == E_END)
                break;
            a++;
        }
        return ok;
    }
    if (i == pr->k) /* only the cut sequence is left */
        return class_takes_range(top, pr->lo, pr->hi);
    const elem *after;
    if (!class_takes(top, pr->cp[i], &after))
        return false;
    lstack q = rest;
    bool ok = lpush(pr, &q, after) && can_take(pr, q, i + 1, depth + 1);
    pr->used = mark;
    return ok;
}

bool gr_allows(const gr_matcher *m, const char *bytes, size_t n)
{
    /* decode the matcher's cut sequence and the bytes into code points */
    uint32_t cps[256];
    int k = 0;
    unsigned char part[4];
    int n_part = m->n_part;
    memcpy(part, m->part, sizeof part);
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)bytes[i];
        if (n_part == 0 ? !utf8_len(b) : (b & 0xc0) != 0x80)
            return false;
        part[n_part++] = b;
        if (n_part < utf8_len(part[0]))
            continue;
        const char *q = (const char *)part;
        int32_t c = utf8_next(&q);
        n_part = 0;
        if (c < 0)
            return false;
        if (k == (int)CN_ARRAY_LEN(cps))
            return run(m, bytes, n, NULL); /* a very long token: the general way */
        cps[k++] = (uint32_t)c;
    }
    probe pr = {.g = m->g, .cp = cps, .k = k, .partial = n_part > 0};
    if (n_part && !completions(part, n_part, &pr.lo, &pr.hi))
        return false;
    static _Thread_local lnode scratch[1 << 15];
    pr.scratch = scratch;
    pr.cap = (int)CN_ARRAY_LEN(scratch);
    for (int s = 0; s < m->n; s++)
        if (can_take(&pr, (lstack){NULL, m->s[s].p, m->s[s].n}, 0, 0))
            return true;
    if (pr.overflow)
        return run(m, bytes, n, NULL); /* too deep for the scratch: the general way */
    return false;
}

bool gr_complete(const gr_matcher *m)
{
    if (m->n_part)
        return false;
    for (int i = 0; i < m->n; i++)
        if (m->s[i].n == 0)
            return true;
    return false;
}

bool gr_finished(const gr_matcher *m) { return gr_complete(m) && m->n == 1; }

size_t gr_matcher_key(const gr_matcher *m, void *buf, size_t cap)
{
    size_t need = 1 + (size_t)m->n_part;
    for (int i = 0; i < m->n; i++)
        need += sizeof(int) + (size_t)m->s[i].n * sizeof(const elem *);
    if (need > cap)
        return need;
    unsigned char *o = buf;
    *o++ = (unsigned char)m->n_part;
    memcpy(o, m->part, (size_t)m->n_part), o += m->n_part;
    for (int i = 0; i < m->n; i++) {
        memcpy(o, &m->s[i].n, sizeof(int)), o += sizeof(int);
        if (m->s[i].n) /* an empty stack has no positions (and p is NULL) */
            memcpy(o, m->s[i].p, (size_t)m->s[i].n * sizeof(const elem *));
        o += (size_t)m->s[i].n * sizeof(const elem *);
    }
    return need;
}

size_t gr_distance(const gr_matcher *m)
{
    size_t best = (size_t)-1;
    for (int i = 0; i < m->n; i++) {
        size_t d = 0;
        for (int k = 0; k < m->s[i].n; k++)
            d += m->s[i].p[k]->suf;
        best = d < best ? d : best;
    }
    return best;
}
