/*
** test_grammar.c: GBNF grammars and the matcher (issue 16, first part).
** Bad grammars are refused naming the rule or line; the matcher takes
** exactly the sentences of a grammar (JSON among them), repetition counts,
** classes, negation, escapes and Unicode, and bytes that tokens cut in the
** middle of a character.
*/
#include "test.h"

#include <math.h>
#include "grammar/grammar.h"

#include <stdlib.h>
#include <string.h>

/* Does grammar text accept s whole (every byte taken, and complete)? */
static int takes(const char *grammar, const char *s)
{
    gr_grammar *g;
    cn_err err = {0};
    if (gr_parse(grammar, &g, &err) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "parse: %s", err.msg);
        return -1;
    }
    gr_matcher *m;
    if (gr_matcher_new(g, &m, &err) != CN_OK) {
        gr_free(g);
        return -1;
    }
    bool ok = gr_accept(m, s, strlen(s)) && gr_complete(m);
    gr_matcher_free(m);
    gr_free(g);
    return ok;
}

static void refused(const char *grammar, const char *why)
{
    gr_grammar *g = NULL;
    cn_err err = {0};
    int rc = gr_parse(grammar, &g, &err);
    if (rc == CN_OK) {
        test_fail_at(__FILE__, __LINE__, "accepted a bad grammar: %s", grammar);
        gr_free(g);
    } else if (!strstr(err.msg, why))
        test_fail_at(__FILE__, __LINE__, "\"%s\" does not say \"%s\"", err.msg, why);
}

TEST(grammar_refuses_bad_grammars_naming_the_problem)
{
    refused("root ::= item", "rule item is used but never defined");
    refused("start ::= \"a\"", "no rule named root");
    refused("root ::= root \"a\" | \"b\"", "rule root recurses on the left");
    refused("root ::= x\nx ::= y? root \"a\"\ny ::= \"b\"", "recurses on the left");
    refused("root ::= \"abc", "unterminated string");
    refused("root ::= [abc", "unterminated character class");
    refused("root ::= \"\\q\"", "unknown escape \\q");
    refused("root ::= \"a\"\nroot ::= \"b\"", "rule root is defined twice");
    refused("root ::= * \"a\"", "nothing before it to repeat");
    refused("root ::= \"a\"{3,2}", "m <= n");
    refused("root ::= [z-a]", "runs backwards");
    refused("root ::= \"a\"\n\n  \"b\" ::= x", "line 3: expected a rule name");
    refused("root ::= (\"a\"", "expected )");
    refused("root ::= \"\\U99999999\"", "beyond Unicode");
    refused("root ::= \"a\"{2", "expected } after {m,n}");
    refused("root ::= \"\\", "unknown escape");
    /* groups nested past the limit: an error, not the stack run out */
    static char deep[2 * 1001 + 64];
    size_t n = (size_t)snprintf(deep, sizeof deep, "root ::= ");
    for (int i = 0; i < 1001; i++)
        deep[n++] = '(';
    deep[n++] = '"', deep[n++] = 'a', deep[n++] = '"';
    for (int i = 0; i < 1001; i++)
        deep[n++] = ')';
    deep[n] = 0;
    refused(deep, "groups nested more than 1000 deep");
}

TEST(grammar_matches_exactly_its_sentences)
{
    const char *rep = "root ::= \"ab\"{2,3} [0-9]?";
    EXPECT_EQ_INT(takes(rep, "abab"), 1);
    EXPECT_EQ_INT(takes(rep, "ababab7"), 1);
    EXPECT_EQ_INT(takes(rep, "ab"), 0);
    EXPECT_EQ_INT(takes(rep, "abababab"), 0);
    EXPECT_EQ_INT(takes(rep, "ababa"), 0);
    EXPECT_EQ_INT(takes("root ::= \"x\"{3}", "xxx"), 1);
    EXPECT_EQ_INT(takes("root ::= \"x\"{3}", "xx"), 0);
    EXPECT_EQ_INT(takes("root ::= \"x\"{2,}", "xxxxxxx"), 1);
    EXPECT_EQ_INT(takes("root ::= \"x\"{2,}", "x"), 0);
    EXPECT_EQ_INT(takes("root ::= (\"a\" | \"bc\")+ \"!\"", "abcabc!"), 1);
    EXPECT_EQ_INT(takes("root ::= (\"a\" | \"bc\")+ \"!\"", "!"), 0);
    EXPECT_EQ_INT(takes("root ::= (\"a\" | \"bc\")* \"!\"", "!"), 1);
    /* classes, negation, any, escapes, Unicode */
    const char *str = "root ::= \"\\\"\" ([^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\nt])* \"\\\"\"";
    EXPECT_EQ_INT(takes(str, "\"caf\xc3\xa9 \\\"ok\\\" \\n\""), 1);
    EXPECT_EQ_INT(takes(str, "\"raw\nnewline\""), 0);
    EXPECT_EQ_INT(takes(str, "\"bad \\q escape\""), 0);
    EXPECT_EQ_INT(takes("root ::= [\\u00e0-\\u00ff]+", "\xc3\xa9\xc3\xa0"), 1);
    EXPECT_EQ_INT(takes("root ::= [\\u00e0-\\u00ff]+", "e"), 0);
    EXPECT_EQ_INT(takes("root ::= . . .", "a\xe6\x97\xa5z"), 1);
    EXPECT_EQ_INT(takes("root ::= [^abc]", "b"), 0);
    EXPECT_EQ_INT(takes("root ::= [^abc]", "d"), 1);
    EXPECT_EQ_INT(takes("root ::= \"\\U0001F600\"", "\xf0\x9f\x98\x80"), 1);
    /* rules over lines, comments, alternatives carried on */
    const char *multi = "# a comment\n"
                        "root ::= greeting \" \" name   # trailing comment\n"
                        "greeting ::=\n"
                        "    \"hello\"\n"
                        "  | \"hi\" # two ways\n"
                        "name ::= [A-Z] [a-z]*\n";
    EXPECT_EQ_INT(takes(multi, "hello World"), 1);
    EXPECT_EQ_INT(takes(multi, "hi Ann"), 1);
    EXPECT_EQ_INT(takes(multi, "hey Ann"), 0);
    /* invalid UTF-8 is never taken */
    EXPECT_EQ_INT(takes("root ::= .+", "a\xff"), 0);
    EXPECT_EQ_INT(takes("root ::= .+", "a\xc3"), 0); /* cut short and never finished */
    EXPECT_EQ_INT(takes("root ::= .+", "\xf0\x80\x81\xbb"), 0); /* an overlong form */
    EXPECT_EQ_INT(takes("root ::= .+", "\xed\xa0\x80"), 0);     /* a surrogate */
    EXPECT_EQ_INT(takes("root ::= .+", "\xf4\x90\x80\x80"), 0); /* past U+10FFFF */
}

/* A JSON grammar of the kind schemas compile to. */
static const char json_gbnf[] =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" "
    "[0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] "
    "[1-9]{0,15})? ws\n"
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

TEST(grammar_json)
{
    const char *good[] = {
        "{}",
        "{\"a\": 1}",
        "{\"a\": [1, 2.5, -3e+7, true, null], \"b\": {\"c\": \"d\\u00e9\\n\"}}",
        "{\"k\":\n  \"v\"}",
        "{\"emoji\": \"\xf0\x9f\x98\x80\"}",
    };
    const char *bad[] = {
        "{",      "{\"a\" 1}",      "{\"a\": 01}",    "{\"a\": [1,]}",  "{\"a\": tru}",
        "[1, 2]", "{\"a\": \"\\x\"}", "{\"a\": 1}}",    "{'a': 1}",      "{\"a\": \"\n\"}",
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(good); i++)
        if (takes(json_gbnf, good[i]) != 1)
            test_fail_at(__FILE__, __LINE__, "refused valid JSON %s", good[i]);
    for (size_t i = 0; i < CN_ARRAY_LEN(bad); i++)
        if (takes(json_gbnf, bad[i]) != 0)
            test_fail_at(__FILE__, __LINE__, "took invalid JSON %s", bad[i]);
}

TEST(grammar_tokens_cut_characters_and_lookahead)
{
    gr_grammar *g;
    cn_err err = {0};
    EXPECT_EQ_INT(gr_parse("root ::= \"caf\" [\\u00e8-\\u00ea] \"!\"", &g, &err), CN_OK);
    gr_matcher *m;
    EXPECT_EQ_INT(gr_matcher_new(g, &m, &err), CN_OK);
    EXPECT(gr_allows(m, "ca", 2));
    EXPECT(!gr_allows(m, "cb", 2));
    EXPECT(!gr_complete(m));
    EXPECT(gr_accept(m, "caf", 3));
    /* é is C3 A9: a token may end after C3 */
    EXPECT(gr_allows(m, "\xc3", 1));
    EXPECT(!gr_allows(m, "\xc4", 1)); /* U+0100..: out of the class */
    EXPECT(!gr_allows(m, "\xc1", 1)); /* only overlong forms start so */
    EXPECT(gr_accept(m, "\xc3", 1));
    EXPECT(!gr_allows(m, "\xa0", 1)); /* U+00E0: not in è-ê */
    EXPECT(!gr_accept(m, "\xa0", 1)); /* refused: nothing changes */
    EXPECT(gr_accept(m, "\xa9!", 2));
    EXPECT(gr_complete(m));
    EXPECT(gr_finished(m));
    EXPECT(!gr_allows(m, "!", 1));
    gr_matcher *c = gr_matcher_clone(m);
    EXPECT(c && gr_complete(c));
    gr_matcher_free(c);
    gr_matcher_free(m);

    /* complete but not finished: more may follow */
    gr_free(g);
    EXPECT_EQ_INT(gr_parse("root ::= [0-9]+", &g, &err), CN_OK);
    EXPECT_EQ_INT(gr_matcher_new(g, &m, &err), CN_OK);
    EXPECT(gr_accept(m, "12", 2));
    EXPECT(gr_complete(m) && !gr_finished(m));
    char *txt = gr_print(g);
    EXPECT(txt && strstr(txt, "root ::="));
    free(txt);
    gr_matcher_free(m);
    gr_free(g);
}

/* ---- JSON Schema ---------------------------------------------------------------- */

static int schema_takes(const char *schema, const char *text)
{
    gr_grammar *g;
    cn_err err = {0};
    if (gr_from_schema(schema, strlen(schema), &g, &err) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", schema, err.msg);
        return -1;
    }
    gr_matcher *m;
    if (gr_matcher_new(g, &m, &err) != CN_OK) {
        gr_free(g);
        return -1;
    }
    bool ok = gr_accept(m, text, strlen(text)) && gr_complete(m);
    gr_matcher_free(m);
    gr_free(g);
    return ok;
}

typedef struct sc_case {
    const char *schema;
    const char *good[6];
    const char *bad[6];
} sc_case;

static const sc_case schema_cases[] = {
    {"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
     "\"integer\"}},\"required\":[\"name\"]}",
     {"{\"name\":\"Ann\",\"age\":41}", "{\"name\":\"Ann\"}", "{ \"name\" : \"Ann\" }",
      "{\"name\": \"\\u00e9\\n\", \"age\": -3}"},
     {"{\"age\":41}", "{\"name\":\"Ann\",\"extra\":1}", "{\"name\":5}", "{\"name\":\"Ann\",}",
      "{\"name\":\"Ann\",\"age\":4.5}"}},
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"}},"
     "\"additionalProperties\":{\"type\":\"null\"}}",
     {"{\"a\":true,\"x\":null}", "{}", "{\"x\":null,\"y\":null}", "{\"ab\":null}", "{\"\":null}"},
     {"{\"x\":1}", "{\"a\":null}", "{\"\\u0061\":null}"}},
    {"{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"minItems\":1,\"maxItems\":3}",
     {"[1]", "[1,2,3]", "[1e5, -2.5, 0.25E-3]"},
     {"[]", "[1,2,3,4]", "[01]", "[1,]", "[\"1\"]"}},
    {"{\"enum\":[\"red\",\"green\",3,null]}", {"\"red\"", "3", "null"}, {"\"blue\"", "\"Red\"", "4"}},
    {"{\"const\":{\"a\":[1,2]}}", {"{\"a\":[1,2]}"}, {"{\"a\":[1,3]}", "{\"a\": [1,2]}"}},
    {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", {"\"x\"", "5", "-12"},
     {"5.5", "true"}},
    {"{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"null\"}]}", {"true", "null"}, {"0"}},
    {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
     {"\"ab\"", "\"abc\"", "\"\\u00e9x\"", "\"\xe6\x97\xa5\xe6\x9c\xac\""},
     {"\"a\"", "\"abcd\"", "\"\""}},
    {"{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3}$\"}", {"\"AB-123\""},
     {"\"AB-12\"", "\"ab-123\"", "\"AB-1234\""}},
    {"{\"type\":\"string\",\"pattern\":\"^[\u00e9-\u00fc\\\\d\\\\]x-]{2}$\"}",
     {"\"\xc3\xa9x\"", "\"]-\"", "\"9\xc3\xbc\""}, {"\"\xc3\xa8x\"", "\"ab\"", "\"x\""}},
    {"{\"type\":\"string\",\"pattern\":\"(cat|dog)s?\"}", {"\"my cats\"", "\"dog\"", "\"hotdogs!\""},
     {"\"cow\""}},
    {"{\"type\":\"string\",\"format\":\"date\"}", {"\"2026-12-03\""},
     {"\"2026-13-03\"", "\"26-12-03\"", "\"2026-12-3\""}},
    {"{\"type\":\"string\",\"format\":\"date-time\"}",
     {"\"2026-12-03T11:58:00Z\"", "\"2026-12-03T11:58:00.5+01:00\""}, {"\"2026-12-03 11:58:00\""}},
    {"{\"type\":\"string\",\"format\":\"email\"}", {"\"ann.lee+x@example.co.uk\""},
     {"\"ann@\"", "\"ann.example.com\""}},
    {"{\"type\":\"string\",\"format\":\"uuid\"}", {"\"123e4567-e89b-12d3-a456-426614174000\""},
     {"\"123e4567e89b12d3a456426614174000\""}},
    {"{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
     "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
     "\"$ref\":\"#/$defs/node\"}",
     {"{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}", "{\"v\":0}"},
     {"{\"kids\":[]}", "{\"v\":1,\"kids\":[{}]}"}},
    {"{\"type\":[\"string\",\"null\"]}", {"null", "\"x\""}, {"1", "nul"}},
    {"{\"type\":\"number\"}", {"-1.5e-3", "0", "12.75"}, {"-", "1.", ".5", "1e"}},
    {"{}", {"{\"any\":[1,{\"x\":null}]}", "\"s\"", "true"}, {"{\"a\"}"}},
    {"{\"type\":\"string\"}", {"\"\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80 \\\"q\\\"\""},
     {"\"raw\ttab\"", "\"unclosed"}},
    {"{\"type\":\"integer\",\"minimum\":3,\"maximum\":250}", {"3", "250", "99", "100", "42"},
     {"2", "251", "-3", "1000", "03", "3.0"}},
    {"{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", {"0", "1", "0.5", "1.000", "0.0001"},
     {"1.01", "-0.5", "2", "-0", "10"}},
    {"{\"type\":\"number\",\"exclusiveMinimum\":-2,\"exclusiveMaximum\":0}",
     {"-1.5", "-0.001", "-1", "-1.99"}, {"0", "-2", "-2.0", "0.5", "-0", "-0.00"}},
    {"{\"type\":\"integer\",\"exclusiveMinimum\":0}", {"1", "12345", "9999999999999999"},
     {"0", "-1", "-0"}},
    {"{\"type\":\"integer\",\"minimum\":5,\"exclusiveMinimum\":true}", {"6", "70"}, {"5", "4"}},
    {"{\"type\":\"integer\",\"minimum\":-1.5,\"exclusiveMaximum\":2.5}", {"-1", "0", "2"},
     {"-2", "3"}},
    {"{\"type\":[\"number\",\"null\"],\"maximum\":-10}", {"-10", "-10.5", "-123456", "null"},
     {"-9.99", "0", "10"}},    {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],"
     "\"minItems\":2,\"maxItems\":2}",
     {"[1,\"a\"]", "[ -3, \"\" ]"}, {"[1]", "[1,\"a\",2]", "[\"a\",1]", "[]"}},
    {"{\"prefixItems\":[{\"type\":\"integer\"}],\"items\":{\"type\":\"boolean\"}}",
     {"[]", "[1]", "[1,true,false]"}, {"[true]", "[1,2]"}},
    {"{\"type\":\"array\",\"prefixItems\":[{\"const\":1},{\"const\":2}],\"items\":false}",
     {"[]", "[1]", "[1,2]"}, {"[1,2,3]", "[2]"}},
    {"{\"type\":\"array\",\"prefixItems\":[{\"const\":1}],\"minItems\":3,\"maxItems\":4}",
     {"[1,null,\"x\"]", "[1,2,3,4]"}, {"[1,2]", "[1,2,3,4,5]", "[2,2,3]"}},
    {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}],\"additionalItems\":false,"
     "\"minItems\":1}",
     {"[\"x\"]"}, {"[]", "[\"x\",1]"}},
    {"{\"type\":\"array\",\"items\":false}", {"[]", "[ ]"}, {"[1]"}},
    {"{\"$defs\":{\"c\":{\"enum\":[\"red\",\"blue\"]}},\"type\":\"object\",\"properties\":{"
     "\"color\":{\"allOf\":[{\"$ref\":\"#/$defs/c\"}],\"description\":\"d\",\"default\":\"red\"}}}",
     {"{\"color\":\"red\"}", "{}"}, {"{\"color\":\"green\"}"}},
};

TEST(grammar_schema_keywords)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(schema_cases); i++) {
        const sc_case *sc = &schema_cases[i];
        for (int j = 0; j < 6 && sc->good[j]; j++)
            if (schema_takes(sc->schema, sc->good[j]) != 1)
                test_fail_at(__FILE__, __LINE__, "%s refused %s", sc->schema, sc->good[j]);
        for (int j = 0; j < 6 && sc->bad[j]; j++)
            if (schema_takes(sc->schema, sc->bad[j]) != 0)
                test_fail_at(__FILE__, __LINE__, "%s took %s", sc->schema, sc->bad[j]);
    }
}

/* Numeric bounds, against arithmetic: 400 random sets of minimum/maximum
** (inclusive, exclusive, draft 4's boolean form, absent; integers with
** fractional bounds), and every text probed is taken exactly when its
** value is in range. Integers: every one from -1500 to 1500 and some of up
** to 7 digits; numbers: whole, halves and thousandths around every
** integer part from 0 to 1500 and both signs. "-0" may be refused (JSON's
** other spelling of 0); nothing out of range may be taken. */
/* Ranges tried: 400 (a sanitizer build, 10 times slower here, tries 60) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BOUND_SETS 60
#else
#define BOUND_SETS 400
#endif

typedef struct bnd {
    bool set, ex;
    double v;
} bnd;

static bool in_range(double v, const bnd *lo, const bnd *hi)
{
    return (!lo->set || (lo->ex ? v > lo->v : v >= lo->v)) &&
           (!hi->set || (hi->ex ? v < hi->v : v <= hi->v));
}

static int grammar_takes(gr_grammar *g, const char *text)
{
    gr_matcher *m;
    cn_err err = {0};
    if (gr_matcher_new(g, &m, &err) != CN_OK)
        return -1;
    int ok = gr_accept(m, text, strlen(text)) && gr_complete(m);
    gr_matcher_free(m);
    return ok;
}

TEST(grammar_schema_bounds_take_exactly_the_range)
{
    uint64_t r = 0x9e3779b97f4a7c15ull;
#define RND() (r ^= r << 13, r ^= r >> 7, r ^= r << 17, r)
    int sets = 0, probes = 0, wrong = 0, refused = 0;
    for (int it = 0; it < BOUND_SETS; it++) {
        bool integer = it % 2 == 0;
        bnd b[2];
        char sch[256];
        int n = snprintf(sch, sizeof sch, "{\"type\":\"%s\"", integer ? "integer" : "number");
        bool draft4 = RND() % 5 == 0;
        for (int k = 0; k < 2; k++) {
            b[k].set = RND() % 4 != 0;
            b[k].ex = RND() % 2;
            double span = RND() % 6 == 0 ? 1e6 : 1200;
            b[k].v = (double)((long long)(RND() % (uint64_t)(2 * span + 1)) - (long long)span);
            if (integer && RND() % 4 == 0)
                b[k].v += 0.5;
            if (!b[k].set)
                continue;
            const char *kw = k ? (b[k].ex && !draft4 ? "exclusiveMaximum" : "maximum")
                               : (b[k].ex && !draft4 ? "exclusiveMinimum" : "minimum");
            n += snprintf(sch + n, sizeof sch - (size_t)n, ",\"%s\":%.1f", kw, b[k].v);
            if (draft4 && b[k].ex)
                n += snprintf(sch + n, sizeof sch - (size_t)n, ",\"exclusive%s\":true",
                              k ? "Maximum" : "Minimum");
        }
        snprintf(sch + n, sizeof sch - (size_t)n, "}");
        /* an empty range is refused up front */
        bool empty = b[0].set && b[1].set &&
                     (integer ? !in_range(floor(b[0].v) + 1, &b[0], &b[1]) &&
                                    !in_range(ceil(b[0].v), &b[0], &b[1])
                              : (b[0].v > b[1].v || (b[0].v == b[1].v && (b[0].ex || b[1].ex))));
        gr_grammar *g = NULL;
        cn_err err = {0};
        int rc = gr_from_schema(sch, strlen(sch), &g, &err);
        if (empty) {
            refused++;
            if (rc == CN_OK || !strstr(err.msg, integer ? "no integer" : "no number"))
                test_fail_at(__FILE__, __LINE__, "%s: an empty range was not refused (%s)", sch,
                             err.msg);
            gr_free(g);
            continue;
        }
        if (rc != CN_OK) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", sch, err.msg);
            continue;
        }
        sets++;
        char t[64];
        if (integer) {
            for (long long v = -1500; v <= 1500 + 40; v++) {
                long long x = v <= 1500 ? v : (long long)(RND() % 4000001) - 2000000;
                snprintf(t, sizeof t, "%lld", x);
                int want = in_range((double)x, &b[0], &b[1]), got = grammar_takes(g, t);
                probes++;
                if (got != want && wrong++ < 10)
                    test_fail_at(__FILE__, __LINE__, "%s: %s %s", sch, t, got ? "taken" : "refused");
            }
        } else {
            static const char *const fr[] = {"", ".0", ".00", ".5", ".001", ".999", ".0500"};
            static const double fv[] = {0, 0, 0, 0.5, 0.001, 0.999, 0.05};
            for (int ip = 0; ip <= 1500 + 40; ip++) {
                long long I = ip <= 1500 ? ip : (long long)(RND() % 2000001);
                for (int sign = 0; sign < 2; sign++)
                    for (size_t f = 0; f < CN_ARRAY_LEN(fr); f++) {
                        if (f > 0 && f < 6 && ip % 7 && ip > 20 && ip <= 1500)
                            continue; /* every fraction on a seventh of the parts */
                        snprintf(t, sizeof t, "%s%lld%s", sign ? "-" : "", I, fr[f]);
                        double v = (sign ? -1 : 1) * ((double)I + fv[f]);
                        int want = in_range(v, &b[0], &b[1]), got = grammar_takes(g, t);
                        probes++;
                        if (got && !want && wrong++ < 10)
                            test_fail_at(__FILE__, __LINE__, "%s: %s taken", sch, t);
                        if (!got && want && !(sign && v == 0) && wrong++ < 10)
                            test_fail_at(__FILE__, __LINE__, "%s: %s refused", sch, t);
                    }
            }
        }
        gr_free(g);
    }
#undef RND
    fprintf(stderr, "     %d ranges (%d empty ones refused), %d texts, %d wrong\n", sets, refused,
            probes, wrong);
    EXPECT_EQ_INT(wrong, 0);
    EXPECT(sets > BOUND_SETS / 2 && refused > BOUND_SETS / 40);
}

/* 257 schemas, for the tuple limit */
#define R8 "{},{},{},{},{},{},{},{},"
#define R64 R8 R8 R8 R8 R8 R8 R8 R8
#define R257 R64 R64 R64 R64 "{}"

TEST(grammar_schema_refuses_what_it_cannot_honour)
{
    static const struct {
        const char *schema, *why;
    } cases[] = {
        {"{\"type\":\"object\",\"patternProperties\":{}}", "keyword \"patternProperties\""},
        {"{\"type\":\"integer\",\"multipleOf\":3}", "keyword \"multipleOf\""},
        {"{\"type\":\"number\",\"minimum\":0.5}", "keyword \"minimum\" of a number"},
        {"{\"type\":\"number\",\"exclusiveMaximum\":1e300}", "keyword \"exclusiveMaximum\""},
        {"{\"minimum\":1}", "beside \"type\": \"number\" or \"integer\" only"},
        {"{\"enum\":[1,5],\"maximum\":3}", "keyword \"maximum\" is supported beside"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "no integer"},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":4,\"exclusiveMaximum\":5}", "no integer"},
        {"{\"type\":\"number\",\"exclusiveMinimum\":1,\"maximum\":1}", "no number"},
        {"{\"type\":\"integer\",\"minimum\":\"3\"}", "minimum must be a number"},
        {"{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":3}]}", "allOf is supported with exactly one"},
        {"{\"allOf\":[{\"type\":\"string\"}],\"maxLength\":3}", "keyword \"maxLength\" beside allOf"},
        {"{\"type\":\"array\",\"prefixItems\":[{}],\"items\":false,\"minItems\":2}",
         "minItems is more than prefixItems allow"},
        {"{\"type\":\"array\",\"prefixItems\":[{}],\"additionalItems\":false}", "additionalItems beside"},
        {"{\"type\":\"array\",\"additionalItems\":false}", "additionalItems is supported beside"},
        {"{\"type\":\"array\",\"prefixItems\":{}}", "prefixItems must be a list"},
        {"{\"type\":\"string\",\"pattern\":\"a{2\\u007f-b\"}", "a quantifier must be {m}"},
        {"{\"type\":\"string\",\"pattern\":\"a{1 | b}\"}", "a quantifier must be {m}"},
        {"{\"type\":\"string\",\"pattern\":\"[A{--}Z]\"}", "a range in [...] runs backwards"},
        {"{\"type\":\"string\",\"pattern\":\"[\\\\d-z]\"}", "a range from a class escape"},
        {"{\"type\":\"array\",\"prefixItems\":[" R257 "]}", "more than 256 positions"},
        {"{\"type\":\"string\",\"maxLength\":10001}", "from 0 to 10000"},
        {"{\"not\":{}}", "keyword \"not\""},
        {"{\"type\":\"string\",\"format\":\"ipv4\"}", "format \"ipv4\""},
        {"{\"type\":\"string\",\"pattern\":\"(?=a)b\"}", "look-around"},
        {"{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "\\1 is not supported"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "only references into this schema"},
        {"{\"$ref\":\"#/$defs/missing\"}", "points at nothing"},
        {"{\"$defs\":{\"a\":{}},\"$ref\":\"#/$defs/a\",\"type\":\"string\"}", "beside $ref"},
        {"{\"type\":\"tuple\"}", "type \"tuple\" is unknown"},
        {"{\"type\":\"object\",\"properties\":{},\"required\":[\"x\"]}", "\"x\" is not in properties"},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "maxItems is below minItems"},
        {"[1,2]", "must be an object"},
        {"{\"type\":", "not JSON"},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(cases); i++) {
        gr_grammar *g = NULL;
        cn_err err = {0};
        int rc = gr_from_schema(cases[i].schema, strlen(cases[i].schema), &g, &err);
        if (rc == CN_OK) {
            test_fail_at(__FILE__, __LINE__, "accepted %s", cases[i].schema);
            gr_free(g);
        } else if (!strstr(err.msg, cases[i].why))
            test_fail_at(__FILE__, __LINE__, "%s: \"%s\" does not say \"%s\"", cases[i].schema,
                         err.msg, cases[i].why);
    }
}

/* ---- the engine under a schema --------------------------------------------------- */

#include <jansson.h>

/* A trained fixture model writes under a schema: whatever the seed, what
** it writes to the end is JSON of that schema's shape. (Outputs cut by the
** model's 128-token context are counted; steering toward a close as the
** budget nears is the next step of issue 16.) */
TEST(grammar_trained_model_writes_valid_json_under_a_schema)
{
    char schema[700], out[8192], err[4096];
    snprintf(schema, sizeof schema, "%s/person.schema.json", test_tmpdir());
    FILE *f = fopen(schema, "w");
    fputs("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
          "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\","
          "\"b\"]},\"maxItems\":3}},\"required\":[\"name\",\"age\"]}",
          f);
    fclose(f);
    int complete = 0, cut = 0;
    for (int seed = 1; seed <= 12; seed++) {
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "%s generate -m %s -p 'Once upon a time' --schema %s --seed %d "
                 "--temp 1 -n 400",
                 test_cairn_bin(), test_data("models/aidreams260K.gguf"), schema, seed);
        if (test_shell(cmd, out, sizeof out, err, sizeof err) != 0) {
            test_fail_at(__FILE__, __LINE__, "seed %d: %s", seed, err);
            continue;
        }
        if (strstr(err, "context is full") || strstr(err, "before the grammar's text")) {
            cut++;
            continue;
        }
        complete++;
        json_error_t je;
        json_t *j = json_loads(out, 0, &je);
        json_t *name = json_object_get(j, "name"), *age = json_object_get(j, "age");
        json_t *tags = json_object_get(j, "tags");
        bool ok = json_is_object(j) && json_is_string(name) &&
                  json_string_length(name) <= 12 * 4 && json_is_integer(age) &&
                  (!tags || (json_is_array(tags) && json_array_size(tags) <= 3)) &&
                  json_object_size(j) == 2u + (tags != NULL);
        for (size_t i = 0; ok && tags && i < json_array_size(tags); i++) {
            const char *t = json_string_value(json_array_get(tags, i));
            ok = t && (!strcmp(t, "a") || !strcmp(t, "b"));
        }
        if (!ok)
            test_fail_at(__FILE__, __LINE__, "seed %d wrote what the schema refuses: %s", seed, out);
        json_decref(j);
    }
    fprintf(stderr, "     %d of 12 seeds wrote a whole object, %d were cut by the context\n",
            complete, cut);
    EXPECT(complete >= 10);
}

#include "gguf/gguf.h"
#include "tok/tok.h"

/* The mask's fast probe (gr_allows) and taking the bytes (gr_accept) agree
** on every token tried, at every state of a JSON text: a token the mask
** lets through is always taken, and none it refuses would have been. */
TEST(grammar_allows_agrees_with_accept_on_a_real_vocabulary)
{
    gguf_file *gf;
    tok_vocab *v;
    cn_err err = {0};
    EXPECT_EQ_INT(gguf_open(&gf, test_data("vocab/ggml-vocab-llama-bpe.gguf"), &err), CN_OK);
    EXPECT_EQ_INT(tok_open(&v, gf, &err), CN_OK);
    gr_grammar *g;
    static const char schema[] =
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":20},"
        "\"n\":{\"type\":\"number\"},\"when\":{\"type\":\"string\",\"format\":\"date\"},"
        "\"kind\":{\"enum\":[\"pump\",\"valve\"]}},\"required\":[\"name\"]}";
    EXPECT_EQ_INT(gr_from_schema(schema, sizeof schema - 1, &g, &err), CN_OK);
    gr_matcher *m;
    EXPECT_EQ_INT(gr_matcher_new(g, &m, &err), CN_OK);
    const char *text = "{\"name\": \"Caf\xc3\xa9 \xe6\x97\xa5\", \"n\": -1.5e3, \"when\": "
                       "\"2026-12-03\", \"kind\": \"valve\"}";
    uint64_t rng = 15;
    int n_vocab = tok_n_vocab(v), disagree = 0, tried = 0, yes = 0;
    for (const char *p = text; *p; p++) {
        for (int t = 0; t < 2500; t++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            int id = (int)((rng >> 33) % (uint64_t)n_vocab);
            char piece[256];
            int len = tok_piece(v, id, false, piece, (int)sizeof piece);
            if (len <= 0 || len > (int)sizeof piece)
                continue;
            gr_matcher *c = gr_matcher_clone(m);
            bool a = gr_allows(m, piece, (size_t)len), b = gr_accept(c, piece, (size_t)len);
            gr_matcher_free(c);
            tried++;
            yes += a;
            if (a != b && disagree++ < 5)
                test_fail_at(__FILE__, __LINE__, "at \"%.*s\": token %d \"%.*s\": allows %d, "
                             "accept %d", (int)(p - text), text, id, len, piece, a, b);
        }
        EXPECT(gr_accept(m, p, 1));
    }
    EXPECT(gr_complete(m));
    EXPECT_EQ_INT(disagree, 0);
    EXPECT(yes > 1000 && yes < tried); /* both answers happened */
    fprintf(stderr, "     %d tokens tried, %d allowed\n", tried, yes);
    gr_matcher_free(m);
    gr_free(g);
    tok_close(v);
    gguf_close(gf);
}
