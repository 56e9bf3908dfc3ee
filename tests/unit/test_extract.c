/*
** lib_extract's citation contract, with a scripted model (it answers what a
** test tells it, and every answer is first checked against the grammar the
** library gave it, so the grammar is tested too): a value stated in the
** quoted sentence comes back with that sentence and its page; a value the
** sentence does not hold, no sentence, or a field nothing mentions comes
** back null with the reason. Then `cairn extract` with a random-weight
** model (two of them): whatever it says, the output is JSON, every field is there, and
** every citation's quote is on its page and holds its value.
*/
#include "test.h"
#include "grammar/grammar.h"
#include "library/library.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static char out_buf[1 << 20], err_buf[1 << 16];

static int sh(const char *fmt, ...)
{
    char setup[1200];
    const char *t = test_tmpdir();
    const char *tools = getenv("CAIRN_TOOLS");
    snprintf(setup, sizeof setup, "export CAIRN_HOME=%s/ex-home; CAIRN=%s; D=%s/ex-docs; T=%s", t,
             test_cairn_bin(), t, tools && *tools ? tools : "build");
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

/* Page 1 and page 2 (a form feed between), each fact on one page. */
static const char *const contract_pages[2] = {
    "SERVICE AGREEMENT\n\nThis agreement is made between Acme Pumps Ltd and Borealis Water "
    "Authority. The agreement starts on 1 March 2024.\n\nThe monthly fee is 4,500 euros, payable "
    "within 30 days of each invoice.\n",
    "Termination\n\nEither party may terminate this agreement with 90 days written notice. The "
    "agreement is governed by the laws of Finland.\n"};

static void write_docs(void)
{
    EXPECT_EQ_INT(sh("rm -rf $D $CAIRN_HOME && mkdir -p $D && printf '%%s\\f%%s' '%s' '%s' > "
                     "$D/contract.txt && $CAIRN add $D/contract.txt",
                     contract_pages[0], contract_pages[1]),
                  0);
}

/* ---- the scripted model -------------------------------------------------- */

typedef struct script {
    const char *pick;   /* answer with the offered sentence holding this, or NULL: quote null */
    const char *value;  /* the value's JSON */
    const char *forge;  /* answer with this quote (JSON) instead */
    int calls, refused; /* replies the grammar refused (must stay 0) */
    char prompt[8192];  /* the last user message */
} script;

static int fake_count(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    (void)s;
    return (int)(n / 4 + 1);
}

static int fake_chat(void *ctx, const char *system, const char *user, int max_tokens,
                     const struct gr_grammar *g, void (*text)(void *, const char *, size_t),
                     void *tctx, cn_buf *out, cn_err *err)
{
    script *s = ctx;
    (void)system, (void)max_tokens, (void)text, (void)tctx, (void)err;
    s->calls++;
    snprintf(s->prompt, sizeof s->prompt, "%s", user);
    /* the offered sentence: "[i] (p. N) sentence" lines of the prompt */
    char quote[1024] = "null";
    if (s->pick) {
        const char *hit = strstr(user, s->pick);
        const char *ls = hit;
        while (ls && ls > user && ls[-1] != '\n')
            ls--;
        const char *body = ls ? strstr(ls, ") ") : NULL, *le = hit ? strchr(hit, '\n') : NULL;
        if (body && le) {
            json_t *q = json_stringn(body + 2, (size_t)(le - body - 2));
            char *js = json_dumps(q, JSON_ENCODE_ANY);
            snprintf(quote, sizeof quote, "%s", js);
            free(js);
            json_decref(q);
        }
    }
    if (s->forge)
        snprintf(quote, sizeof quote, "%s", s->forge);
    char reply[2048];
    snprintf(reply, sizeof reply, "{\"quote\": %s, \"value\": %s}", quote, s->value);
    gr_matcher *m = NULL;
    if (gr_matcher_new(g, &m, NULL) != CN_OK || !gr_accept(m, reply, strlen(reply)) ||
        !gr_complete(m))
        s->refused++;
    gr_matcher_free(m);
    return cn_buf_append(out, reply, strlen(reply));
}

static json_t *extract_one(lib *l, int64_t id, const char *schema_text, script *s)
{
    lib_llm m = {"scripted", 4096, fake_count, fake_chat, s};
    json_t *schema = NULL, *out = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(lib_extract_check(schema_text, strlen(schema_text), &schema, &err), CN_OK);
    if (!schema)
        return NULL;
    EXPECT_EQ_INT(lib_extract(l, id, schema, 3, &m, NULL, NULL, &out, &err), CN_OK);
    json_decref(schema);
    return out;
}

static const char *reason_of(json_t *r, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(r, "citations"), field), "reason"));
}

TEST(extract_cites_the_sentence_and_page_or_gives_null)
{
    write_docs();
    lib *l = NULL;
    cn_err err = {0};
    char home[4096], path[4200];
    snprintf(home, sizeof home, "%s/ex-home", test_tmpdir());
    snprintf(path, sizeof path, "%s/ex-docs/contract.txt", test_tmpdir());
    if (lib_open(&l, home, &err) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "lib_open: %s", err.msg);
        return;
    }
    store_file_state st;
    char real[4096];
    EXPECT(realpath(path, real) != NULL);
    EXPECT_EQ_INT(store_find_by_path(lib_store(l), real, &st, &err), CN_OK);

    /* stated on page 2: the value, the sentence verbatim, page 2 */
    script s = {.pick = "90 days", .value = "90"};
    json_t *r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"notice_days\":{"
                                      "\"type\":\"integer\",\"description\":\"days of written "
                                      "notice to terminate\"}}}",
                            &s);
    EXPECT_EQ_INT(s.refused, 0);
    EXPECT_CONTAINS(s.prompt, "(p. 2) Either party may terminate this agreement with 90 days");
    EXPECT_EQ_INT((int)json_integer_value(json_object_get(json_object_get(r, "data"),
                                                          "notice_days")), 90);
    json_t *c = json_object_get(json_object_get(r, "citations"), "notice_days");
    EXPECT_EQ_INT((int)json_integer_value(json_object_get(c, "page")), 2);
    EXPECT_STR(json_string_value(json_object_get(c, "quote")),
               "Either party may terminate this agreement with 90 days written notice.");
    json_decref(r);

    /* a number written with a thousands separator is the number */
    s = (script){.pick = "4,500", .value = "4500"};
    r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"monthly_fee\":{\"type\":"
                              "\"number\",\"description\":\"fee paid each month\"}}}",
                    &s);
    EXPECT_EQ_INT(s.refused, 0);
    EXPECT_EQ_INT((int)json_integer_value(json_object_get(json_object_get(r, "data"),
                                                          "monthly_fee")), 4500);
    EXPECT_EQ_INT((int)json_integer_value(json_object_get(
                      json_object_get(json_object_get(r, "citations"), "monthly_fee"), "page")),
                  1);
    json_decref(r);

    /* a value the quoted sentence does not hold: null, with the reason */
    s = (script){.pick = "90 days", .value = "60"};
    r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"notice_days\":{"
                              "\"type\":\"integer\",\"description\":\"days of notice\"}}}",
                    &s);
    EXPECT_EQ_INT(s.refused, 0);
    EXPECT(json_is_null(json_object_get(json_object_get(r, "data"), "notice_days")));
    EXPECT_CONTAINS(reason_of(r, "notice_days"), "the number 60 is not in the quoted sentence");
    json_decref(r);

    /* strings: every item of an array must be in the sentence */
    s = (script){.pick = "made between", .value = "[\"Acme Pumps Ltd\", \"Borealis Water "
                                                  "Authority\"]"};
    r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"parties\":{\"type\":"
                              "\"array\",\"items\":{\"type\":\"string\"},\"description\":\"who "
                              "the agreement is made between\"}}}",
                    &s);
    EXPECT_EQ_INT(s.refused, 0);
    EXPECT_EQ_INT((int)json_array_size(json_object_get(json_object_get(r, "data"), "parties")), 2);
    json_decref(r);
    s = (script){.pick = "made between", .value = "[\"Acme Pumps Ltd\", \"Globex\"]"};
    r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"parties\":{\"type\":"
                              "\"array\",\"items\":{\"type\":\"string\"},\"description\":\"who "
                              "the agreement is made between\"}}}",
                    &s);
    EXPECT(json_is_null(json_object_get(json_object_get(r, "data"), "parties")));
    EXPECT_CONTAINS(reason_of(r, "parties"), "\"Globex\" is not in the quoted sentence");
    json_decref(r);

    /* the model finds no sentence: null */
    s = (script){.pick = NULL, .value = "null"};
    r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"start_date\":{\"type\":"
                              "\"string\",\"description\":\"when the agreement starts\"}}}",
                    &s);
    EXPECT_EQ_INT(s.refused, 0);
    EXPECT(json_is_null(json_object_get(json_object_get(r, "data"), "start_date")));
    EXPECT_CONTAINS(reason_of(r, "start_date"), "no sentence that states it");
    json_decref(r);

    /* nothing in the document mentions the field: null, and no model call */
    s = (script){.pick = NULL, .value = "null"};
    r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"arbitration_venue\":{"
                              "\"type\":\"string\",\"description\":\"city for arbitration\"}}}",
                    &s);
    EXPECT_EQ_INT(s.calls, 0);
    EXPECT_CONTAINS(reason_of(r, "arbitration_venue"), "no passage of the document mentions it");
    json_decref(r);

    /* a quote that is not one of the sentences offered: the grammar refuses
    ** it, and were a model to write it anyway, it is not a citation */
    s = (script){.forge = "\"The monthly fee is 1 euro.\"", .value = "1"};
    r = extract_one(l, st.id, "{\"type\":\"object\",\"properties\":{\"monthly_fee\":{\"type\":"
                              "\"number\",\"description\":\"fee paid each month\"}}}",
                    &s);
    EXPECT_EQ_INT(s.refused, 1);
    EXPECT(json_is_null(json_object_get(json_object_get(r, "data"), "monthly_fee")));
    EXPECT_CONTAINS(reason_of(r, "monthly_fee"), "not one of those offered");
    json_decref(r);
    lib_close(l);
}

TEST(extract_refuses_schemas_it_cannot_honour)
{
    json_t *s = NULL;
    cn_err err = {0};
    const char *bad[][2] = {
        {"[1, 2]", "extract needs an object with \"properties\""},
        {"{\"type\":\"string\"}", "extract needs an object"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\",\"minimum\":0.5}}}",
         "minimum"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{}}}}", "not"},
        {"{not json", "not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (cn_err){0};
        EXPECT(lib_extract_check(bad[i][0], strlen(bad[i][0]), &s, &err) != CN_OK);
        EXPECT_CONTAINS(err.msg, bad[i][1]);
    }
}

/* Does page p of the contract hold quote (white space runs as one space)? */
static bool on_page(const char *quote, int p)
{
    if (p < 1 || p > 2)
        return false;
    char norm[2048];
    size_t n = 0;
    for (const char *c = contract_pages[p - 1]; *c && n + 1 < sizeof norm; c++)
        if (!(*c == ' ' || *c == '\n') || (n > 0 && norm[n - 1] != ' '))
            norm[n++] = *c == '\n' ? ' ' : *c;
    norm[n] = 0;
    return strstr(norm, quote) != NULL;
}

TEST(extract_cli_random_model_keeps_the_contract)
{
    write_docs();
    EXPECT_EQ_INT(sh("$T/mkmodel --shape tiny --type f16 --ctx 1024 --untied --seed 3 "
                     "--tokenizer %s -o $D/../ex-chat.gguf && "
                     "printf 'Pump manual\\n\\nThe pump must be primed before the first start.\\n' "
                     "> $D/pump.txt && $CAIRN add $D/pump.txt && cat > $D/../ex.json <<'EOF'\n"
                     "{\"type\":\"object\",\"properties\":{"
                     "\"parties\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
                     "\"description\":\"companies the agreement is made between\"},"
                     "\"start_date\":{\"type\":\"string\",\"description\":\"when the agreement "
                     "starts\"},"
                     "\"monthly_fee\":{\"type\":\"number\",\"description\":\"fee each month\"},"
                     "\"notice_days\":{\"type\":\"integer\",\"description\":\"days of notice to "
                     "terminate\"},"
                     "\"governing_law\":{\"enum\":[\"Finland\",\"Sweden\"],\"description\":\"laws "
                     "the agreement is governed by\"}},"
                     "\"required\":[\"parties\",\"start_date\"]}\n"
                     "EOF",
                     test_data("vocab/ggml-vocab-llama-bpe.gguf")),
                  0);
    static const char *fields[] = {"parties", "start_date", "monthly_fee", "notice_days",
                                   "governing_law"};
    for (int seed = 0; seed < 2; seed++) {
        EXPECT_EQ_INT(sh("$CAIRN extract --format jsonl --schema $D/../ex.json -m "
                         "$D/../ex-chat.gguf $D/contract.txt pump.txt"),
                      0);
        int rows = 0;
        for (char *line = strtok(out_buf, "\n"); line; line = strtok(NULL, "\n")) {
            json_t *r = json_loads(line, 0, NULL);
            EXPECT(r != NULL);
            rows++;
            for (size_t f = 0; r && f < 5; f++) {
                json_t *v = json_object_get(json_object_get(r, "data"), fields[f]);
                json_t *c = json_object_get(json_object_get(r, "citations"), fields[f]);
                EXPECT(v != NULL && c != NULL);
                if (v && !json_is_null(v)) { /* a value: its quote is on its page */
                    const char *q = json_string_value(json_object_get(c, "quote"));
                    int p = (int)json_integer_value(json_object_get(c, "page"));
                    EXPECT(q && on_page(q, p));
                } else {
                    EXPECT(json_string_value(json_object_get(c, "reason")) != NULL);
                }
            }
            json_decref(r);
        }
        EXPECT_EQ_INT(rows, 2);
        /* another random model for the next round */
        sh("$T/mkmodel --shape tiny --type f16 --ctx 1024 --untied --seed %d --tokenizer %s -o "
           "$D/../ex-chat.gguf",
           10 + seed, test_data("vocab/ggml-vocab-llama-bpe.gguf"));
    }
    /* CSV: a header and one row per document */
    EXPECT_EQ_INT(sh("$CAIRN extract --format csv --schema $D/../ex.json -m $D/../ex-chat.gguf "
                     "contract.txt pump.txt"),
                  0);
    EXPECT(strncmp(out_buf, "document,parties,parties.page,parties.quote,start_date,", 55) == 0);
    int lines = 0;
    for (char *p = out_buf; *p; p++)
        lines += *p == '\n';
    EXPECT_EQ_INT(lines, 3);
    /* errors: no schema, an unsupported keyword named, no model, a missing document */
    EXPECT_EQ_INT(sh("$CAIRN extract contract.txt"), 2);
    EXPECT_CONTAINS(err_buf, "missing --schema FILE");
    EXPECT_EQ_INT(sh("echo '{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
                     "\"format\":\"ipv4\"}}}' > $D/../bad.json && $CAIRN extract --schema "
                     "$D/../bad.json -m $D/../ex-chat.gguf contract.txt"),
                  1);
    EXPECT_CONTAINS(err_buf, "bad.json: schema:");
    EXPECT_CONTAINS(err_buf, "ipv4");
    EXPECT_EQ_INT(sh("CAIRN_CHAT_MODEL= $CAIRN extract --schema $D/../ex.json contract.txt"), 2);
    EXPECT_CONTAINS(err_buf, "needs a language model");
    EXPECT_EQ_INT(sh("$CAIRN extract --schema $D/../ex.json -m $D/../ex-chat.gguf nothere.txt"),
                  1);
    EXPECT_CONTAINS(err_buf, "nothere.txt: no such document");
}
