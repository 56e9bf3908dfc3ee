/*
** extract.c: a form filled from one document, each value with the page and
** the sentence that supports it (library.h). One model call per field of
** the schema:
**   1. the document's passages are ranked by the field's name and
**      description (rag_rank), and the best ones cut into sentences; a
**      sentence is offered only once it is found on a page of its passage,
**      so every sentence offered has a page;
**   2. the model answers {"quote": ..., "value": ...} under a grammar in
**      which quote can only be one of those sentences (or null) and value
**      only what the field's schema allows (or null);
**   3. the value is kept only if the quote supports it: every string and
**      number in it must occur in the quoted sentence. Otherwise the field
**      is null, with the reason.
** So a citation is never invented: its quote is verbatim from its page.
*/
#include "library/lib_int.h"
#include "grammar/grammar.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_FIELDS = 64,
    MAX_SENTENCES = 48,    /* offered per field */
    MAX_SENTENCE_BYTES = 600,
};

static const char ex_system[] =
    "You extract facts from a document. Use only the numbered sentences given. For \"quote\", "
    "copy the one sentence that states the value; for \"value\", give the value as that "
    "sentence states it. If no sentence states it, answer null for both.";

/* s with white space runs as one space, trimmed, ASCII letters lower-cased
** when fold; into out (reset). */
static int normalise(const char *s, size_t n, bool fold, cn_buf *out)
{
    out->len = 0;
    bool space = false;
    int rc = cn_buf_append(out, "", 0);
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            space = out->len > 0;
            continue;
        }
        if (space)
            rc = cn_buf_append(out, " ", 1);
        space = false;
        char d = fold ? (char)tolower(c) : (char)c;
        if (!rc)
            rc = cn_buf_append(out, &d, 1);
    }
    if (!rc)
        rc = cn_buf_append(out, "", 1), out->len--;
    return rc;
}

/* Does needle occur in hay, both normalised? */
static bool occurs(const char *hay, size_t hn, const char *needle, size_t nn, bool fold)
{
    cn_buf a, b;
    cn_buf_init(&a, (size_t)64 << 20);
    cn_buf_init(&b, (size_t)64 << 20);
    bool found = !normalise(hay, hn, fold, &a) && !normalise(needle, nn, fold, &b) && b.len > 0 &&
                 strstr(a.data, b.data) != NULL;
    cn_buf_free(&a);
    cn_buf_free(&b);
    return found;
}

/* Digits of a number as a sentence may write it: "2,000" and "2 000" are 2000. */
static bool number_in(const char *quote, const char *num)
{
    cn_buf q;
    cn_buf_init(&q, (size_t)64 << 20);
    size_t n = strlen(quote);
    for (size_t i = 0; i < n; i++) {
        bool sep = (quote[i] == ',' || quote[i] == ' ') && i > 0 && i + 1 < n &&
                   isdigit((unsigned char)quote[i - 1]) && isdigit((unsigned char)quote[i + 1]);
        if (!sep)
            cn_buf_append(&q, &quote[i], 1);
    }
    cn_buf_append(&q, "", 1);
    /* whole numbers only: 16 is not in 160 */
    bool found = false;
    size_t k = strlen(num);
    for (const char *p = q.data ? strstr(q.data, num) : NULL; p && !found; p = strstr(p + 1, num))
        found = (p == q.data || !isdigit((unsigned char)p[-1])) && !isdigit((unsigned char)p[k]);
    cn_buf_free(&q);
    return found;
}

/* Is every string and number in v stated in quote? why gets the first that is not. */
static bool supported(json_t *v, const char *quote, cn_buf *why)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        if (occurs(quote, strlen(quote), s, strlen(s), true))
            return true;
        cn_buf_printf(why, "the value \"%.80s\" is not in the quoted sentence", s);
        return false;
    }
    case JSON_INTEGER:
    case JSON_REAL:
        if (json_is_integer(v))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        else
            snprintf(num, sizeof num, "%.15g", json_real_value(v));
        if (number_in(quote, num))
            return true;
        cn_buf_printf(why, "the number %s is not in the quoted sentence", num);
        return false;
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (!supported(e, quote, why)) return false;
        return true;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) if (!supported(e, quote, why)) return false;
        return true;
    }
    default:
        return true; /* true, false: the quote is the evidence offered */
    }
}

/* "termination_clause" and "terminationClause" as "termination clause". */
static void field_words(const char *name, cn_buf *out)
{
    out->len = 0;
    for (const char *p = name; *p; p++) {
        char c = *p == '_' || *p == '-' ? ' ' : *p;
        if (p > name && isupper((unsigned char)*p) && islower((unsigned char)p[-1]))
            cn_buf_append(out, " ", 1);
        cn_buf_append(out, &c, 1);
    }
    cn_buf_append(out, "", 1);
    out->len--;
}

/* A sentence offered to the model, with its page. */
typedef struct offer {
    char *text;
    int page;
} offer;

typedef struct offers {
    offer v[MAX_SENTENCES];
    int n;
} offers;

static void offers_free(offers *o)
{
    for (int i = 0; i < o->n; i++)
        free(o->v[i].text);
    o->n = 0;
}

/* The sentences of passage h, each with the page it is on (not found on
** any page of the passage: not offered). */
static int offer_passage(lib *l, const store_hit *h, offers *o, cn_err *err)
{
    rag_sents ss = {0};
    int rc = rag_sentences(h->text, h->len, false, NULL, 0, &ss);
    cn_arena ar;
    cn_arena_init(&ar, (size_t)256 << 20);
    for (int i = 0; !rc && i < ss.n && o->n < MAX_SENTENCES; i++) {
        const char *t = ss.v[i].text;
        size_t n = strlen(t);
        int words = 1;
        for (size_t k = 0; k < n; k++)
            words += t[k] == ' ';
        if (n > MAX_SENTENCE_BYTES || words < 3)
            continue;
        bool dup = false;
        for (int k = 0; k < o->n && !dup; k++)
            dup = !strcmp(o->v[k].text, t);
        if (dup)
            continue;
        for (int p = h->page_start; !rc && p <= h->page_end; p++) {
            const char *pt;
            size_t pn;
            int grc = store_get_page(lib_store(l), h->doc_id, p, &ar, &pt, &pn, err);
            if (grc == CN_ENOTFOUND)
                continue;
            if (grc) {
                rc = grc;
                break;
            }
            if (occurs(pt, pn, t, n, false)) {
                o->v[o->n].text = ss.v[i].text;
                o->v[o->n++].page = p;
                ss.v[i].text = NULL; /* now the offer's */
                break;
            }
        }
    }
    cn_arena_free(&ar);
    rag_sents_free(&ss);
    return rc == CN_ENOMEM ? cn_fail(err, rc, "out of memory") : rc;
}

/* The schema of the reply for field fs: the quote one of the sentences
** (o->n > 0) or null, the value what fs allows (or null); defs carries the document
** schema's $defs for $ref. */
static char *reply_schema(json_t *fs, json_t *defs, const offers *o)
{
    json_t *quotes = json_array();
    for (int i = 0; i < o->n; i++)
        json_array_append_new(quotes, json_string(o->v[i].text));
    json_t *quote = json_pack("{s:[{s:o},{s:s}]}", "anyOf", "enum", quotes, "type", "null");
    json_t *value = json_pack("{s:[O,{s:s}]}", "anyOf", fs, "type", "null");
    json_t *root = json_pack("{s:s, s:{s:o, s:o}, s:[s,s], s:b}", "type", "object", "properties",
                             "quote", quote, "value", value, "required", "quote", "value",
                             "additionalProperties", 0);
    if (root && defs)
        json_object_set(root, "$defs", defs);
    char *js = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return js;
}

typedef struct field_out {
    json_t *value;    /* reference owned */
    json_t *citation; /* {page, quote} or {page: null, quote: null, reason} */
} field_out;

static json_t *no_citation(const char *why)
{
    return json_pack("{s:n, s:n, s:s}", "page", "quote", "reason", why);
}

static int extract_field(lib *l, const store_doc_info *d, const char *name, json_t *fs,
                         json_t *defs, const store_hit *ps, int n_ps, int k, const lib_llm *m,
                         field_out *fo, cn_err *err)
{
    fo->value = json_null();
    cn_buf q, why;
    cn_buf_init(&q, (size_t)1 << 20);
    cn_buf_init(&why, 4096);
    field_words(name, &q);
    const char *desc = json_string_value(json_object_get(fs, "description"));
    const char *title = json_string_value(json_object_get(fs, "title"));
    cn_buf_printf(&q, " %s %s", title ? title : "", desc ? desc : "");

    const char **texts = cn_malloc_array((size_t)CN_MAX(n_ps, 1), sizeof *texts);
    int *best = cn_malloc_array((size_t)CN_MAX(k, 1), sizeof *best);
    offers o = {.n = 0};
    int rc = texts && best && q.data ? CN_OK : cn_fail(err, CN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n_ps; i++)
        texts[i] = ps[i].text;
    int nb = rc ? 0 : rag_rank(q.data, texts, n_ps, k, best);
    if (nb < 0)
        rc = cn_fail(err, CN_ENOMEM, "out of memory ranking passages");
    for (int i = 0; !rc && i < nb; i++)
        rc = offer_passage(l, &ps[best[i]], &o, err);
    if (!rc && o.n == 0) {
        fo->citation = no_citation(nb ? "no sentence of the passages that mention it could be "
                                        "found on its page"
                                      : "no passage of the document mentions it");
        goto done;
    }

    /* the reply must have room for the longest sentence it may quote; a
    ** sentence too long for a third of the context is not offered */
    int longest = 0;
    for (int i = 0; i < o.n; i++) {
        int t = m->count(m->ctx, o.v[i].text, strlen(o.v[i].text));
        if (t + 96 > m->n_ctx / 3) {
            free(o.v[i].text);
            o.v[i--] = o.v[--o.n];
            continue;
        }
        longest = CN_MAX(longest, t);
    }
    if (o.n == 0) {
        fo->citation = no_citation("the sentences that mention it are too long for the model's "
                                   "context");
        goto done;
    }
    int reply_tokens = longest + 96;
    int room = m->n_ctx - reply_tokens - m->count(m->ctx, ex_system, strlen(ex_system)) - 160;
    /* the prompt: the sentences that fit, numbered with their pages */
    cn_buf user, reply;
    cn_buf_init(&user, (size_t)64 << 20);
    cn_buf_init(&reply, (size_t)16 << 20);
    cn_buf_printf(&user, "Document: \"%s\"\n\nSentences:\n",
                  d->title && *d->title ? d->title : d->path);
    int used = 0;
    for (int i = 0; i < o.n; i++) {
        size_t before = user.len;
        cn_buf_printf(&user, "[%d] (p. %d) %s\n", i + 1, o.v[i].page, o.v[i].text);
        int t = m->count(m->ctx, user.data + before, user.len - before);
        if (used + t > room && i > 0) {
            user.len = before; /* does not fit: neither offered nor allowed */
            for (int j = i; j < o.n; j++)
                free(o.v[j].text);
            o.n = i;
            break;
        }
        used += t;
    }
    cn_buf_printf(&user, "\nField: \"%s\"%s%s\nReply with a JSON object {\"quote\": ..., "
                         "\"value\": ...}.",
                  name, desc ? " - " : "", desc ? desc : "");
    char *schema = reply_schema(fs, defs, &o);
    gr_grammar *g = NULL;
    rc = schema && user.data ? gr_from_schema(schema, strlen(schema), &g, err)
                             : cn_fail(err, CN_ENOMEM, "out of memory");
    if (!rc)
        rc = m->chat(m->ctx, ex_system, user.data, reply_tokens, g, NULL, NULL, &reply, err);
    gr_free(g);
    free(schema);
    cn_buf_free(&user);
    json_error_t je;
    json_t *r = rc ? NULL : json_loadb(reply.data ? reply.data : "", reply.len, 0, &je);
    cn_buf_free(&reply);
    if (rc) {
        json_decref(r);
        goto done;
    }
    json_t *quote = json_object_get(r, "quote"), *value = json_object_get(r, "value");
    if (!r) { /* the grammar keeps it JSON; a number past double's range is not */
        cn_buf_printf(&why, "the model's reply could not be read (%s)", je.text);
        fo->citation = no_citation(why.data);
    } else if (!json_is_string(quote)) {
        fo->citation = no_citation("the model found no sentence that states it");
    } else if (!value || json_is_null(value)) {
        fo->citation = no_citation("the model gave no value from the quoted sentence");
    } else if (json_is_string(value) && !*json_string_value(value)) {
        fo->citation = no_citation("the model gave an empty value");
    } else if (!supported(value, json_string_value(quote), &why)) {
        fo->citation = no_citation(why.data);
    } else {
        int page = 0;
        for (int i = 0; i < o.n && !page; i++)
            if (!strcmp(o.v[i].text, json_string_value(quote)))
                page = o.v[i].page;
        if (page) {
            json_decref(fo->value);
            fo->value = json_incref(value);
            fo->citation = json_pack("{s:i, s:s}", "page", page, "quote", json_string_value(quote));
        } else { /* the grammar allows only offered sentences: never here */
            fo->citation = no_citation("the quoted sentence is not one of those offered");
        }
    }
    json_decref(r);
done:
    offers_free(&o);
    free(texts);
    free(best);
    cn_buf_free(&q);
    cn_buf_free(&why);
    return rc;
}

int lib_extract_check(const char *text, size_t len, json_t **schema, cn_err *err)
{
    json_error_t je;
    json_t *s = json_loadb(text, len, 0, &je);
    if (!s)
        return cn_fail(err, CN_EFORMAT, "schema: not JSON (line %d: %s)", je.line, je.text);
    json_t *props = json_object_get(s, "properties");
    const char *type = json_string_value(json_object_get(s, "type"));
    int rc = CN_OK;
    if (!json_is_object(props) || (type && strcmp(type, "object")) || json_object_size(props) == 0)
        rc = cn_fail(err, CN_EINVAL, "schema: extract needs an object with \"properties\" (one "
                                     "value per field)");
    else if (json_object_size(props) > MAX_FIELDS)
        rc = cn_fail(err, CN_ELIMIT, "schema: %zu fields; at most %d", json_object_size(props),
                     MAX_FIELDS);
    gr_grammar *g = NULL;
    if (!rc) /* a keyword Cairn cannot honour is refused before any work */
        rc = gr_from_schema(text, len, &g, err);
    gr_free(g);
    if (rc)
        json_decref(s);
    else
        *schema = s;
    return rc;
}

int lib_extract(lib *l, int64_t doc_id, json_t *schema, int k, const lib_llm *m,
                lib_extract_fn fn, void *ctx, json_t **out, cn_err *err)
{
    *out = NULL;
    cn_arena ar;
    cn_arena_init(&ar, (size_t)1 << 30);
    store_doc_info d;
    store_hit *ps = NULL;
    int n_ps = 0;
    int rc = store_doc_get(lib_store(l), doc_id, &ar, &d, err);
    if (!rc && d.failed)
        rc = cn_fail(err, CN_EINVAL, "%s could not be read when it was added: %s", d.path,
                     d.error ? d.error : "failed");
    if (!rc)
        rc = store_doc_passages(lib_store(l), doc_id, &ar, &ps, &n_ps, err);
    json_t *props = json_object_get(schema, "properties");
    json_t *defs = json_object_get(schema, "$defs");
    if (!defs)
        defs = json_object_get(schema, "definitions");
    json_t *data = json_object(), *cites = json_object();
    const char *name;
    json_t *fs;
    int i = 0, total = (int)json_object_size(props);
    json_object_foreach(props, name, fs) {
        if (rc)
            break;
        if (fn)
            fn(ctx, d.path, name, i, total);
        field_out fo = {0};
        rc = extract_field(l, &d, name, fs, defs, ps, n_ps, k > 0 ? k : 3, m, &fo, err);
        json_object_set_new(data, name, fo.value);
        if (fo.citation)
            json_object_set_new(cites, name, fo.citation);
        i++;
    }
    if (!rc)
        *out = json_pack("{s:s, s:O, s:O}", "document", d.path, "data", data, "citations", cites);
    json_decref(data);
    json_decref(cites);
    free(ps);
    cn_arena_free(&ar);
    return rc;
}
