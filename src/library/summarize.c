/*
** summarize.c: a whole document summarised within a model's context (see
** library.h). The pages are packed into groups that fit the context with
** room for the reply; each group is summarised; the summaries are packed
** and summarised again, level by level, until one call holds everything:
** that call is told to write the summary of the whole document at the
** length asked. Every call's result is committed at once under its place
** in the tree, and the tree is the same on every run (the same pages, the
** same tokenizer, the same stored results), so a second run finds what the
** first one made and calls the model only for what is missing.
*/
#include "library/lib_int.h"

#include <stdlib.h>
#include <string.h>

static const char sum_system[] =
    "You write faithful summaries of documents. Use only the text you are given; never add "
    "facts. Write plain sentences in the language of the text: no lists, no headings, no "
    "preamble.";

/* Sentences asked for, and tokens allowed, per length: the final summary,
** then each partial one. */
static const struct {
    const char *name;
    int sentences, tokens, part_sentences, part_tokens;
} lengths[] = {
    {"short", 3, 160, 3, 128},
    {"medium", 7, 320, 4, 192},
    {"long", 15, 640, 6, 256},
};

int lib_sum_length_of(const char *name)
{
    for (int i = 0; i < (int)CN_ARRAY_LEN(lengths); i++)
        if (!strcmp(name, lengths[i].name))
            return i;
    return -1;
}

/* One input of a level: a page (or a piece of one too long for a call), or
** a summary of the level below. */
typedef struct item {
    int first, last;
    char *text; /* malloc'd */
    size_t len;
    int tokens;
    rag_sents sents; /* a summary's sentences (levels above 0) */
} item;

typedef struct items {
    item *v;
    int n, cap;
} items;

static void items_free(items *it)
{
    for (int i = 0; i < it->n; i++) {
        free(it->v[i].text);
        rag_sents_free(&it->v[i].sents);
    }
    free(it->v);
    *it = (items){0};
}

static item *items_add(items *it)
{
    if (it->n == it->cap) {
        int cap = it->cap ? it->cap * 2 : 32;
        item *v = cn_realloc_array(it->v, (size_t)cap, sizeof *v);
        if (!v)
            return NULL;
        it->v = v;
        it->cap = cap;
    }
    item *x = &it->v[it->n++];
    *x = (item){0};
    return x;
}

typedef struct run {
    lib *l;
    const lib_llm *m;
    int length;
    lib_sum_fn fn;
    void *ctx;
    store_sum_key key;
    int budget;      /* tokens of input per call */
    int part_tokens; /* a partial summary's reply */
    int final_tokens;
    int done, total;
    int generated;
    double t_generated; /* seconds spent in calls that ran */
    double t0;
    lib_summary *out;
} run;

static void event(run *r, int kind, int level, int first, int last, bool cached, const char *text,
                  size_t len)
{
    if (!r->fn)
        return;
    double eta = -1;
    if (r->generated > 0)
        eta = r->t_generated / r->generated * (r->total - r->done);
    lib_sum_event ev = {kind, r->done, r->total, level, first, last, cached, eta, text, len};
    r->fn(r->ctx, &ev);
}

/* ---- cutting the pages into the first level's items --------------------- */

/* Cut an over-long page into pieces of about budget tokens, between words. */
static int add_page(run *r, items *it, int number, const char *text, size_t len, cn_err *err)
{
    size_t off = 0;
    while (off < len) {
        while (off < len && (text[off] == ' ' || text[off] == '\n' || text[off] == '\t'))
            off++;
        if (off == len)
            break;
        size_t n = len - off;
        int tokens = r->m->count(r->m->ctx, text + off, n);
        while (tokens > r->budget && n > 64) {
            size_t want = (size_t)((double)n * r->budget / tokens * 0.9);
            want = cn_utf8_valid_prefix(text + off, CN_MAX(want, 32));
            size_t cut = want;
            while (cut > want / 2 && text[off + cut] != ' ' && text[off + cut] != '\n')
                cut--;
            n = cut > want / 2 ? cut : want;
            tokens = r->m->count(r->m->ctx, text + off, n);
        }
        item *x = items_add(it);
        char *copy = cn_malloc(n + 1);
        if (!x || !copy) {
            free(copy);
            return cn_fail(err, CN_ENOMEM, "out of memory reading the pages");
        }
        memcpy(copy, text + off, n);
        copy[n] = 0;
        *x = (item){number, number, copy, n, tokens + 8, {0}};
        off += n;
    }
    return CN_OK;
}

/* ---- one call ---------------------------------------------------------------- */

/* Sentences as JSON: [{text, pages: [[first, last], ...]}]. */
static json_t *sents_json(const rag_sents *ss)
{
    json_t *a = json_array();
    for (int i = 0; i < ss->n; i++) {
        const rag_sent *s = &ss->v[i];
        json_t *pp = json_array();
        for (int k = 0; k < s->n_spans; k++)
            json_array_append_new(pp, json_pack("[ii]", s->spans[k].first, s->spans[k].last));
        json_array_append_new(a, json_pack("{s:s, s:o}", "text", s->text, "pages", pp));
    }
    return a;
}

/* The body stored for a partial summary: its pages and its sentences. */
static char *body_json(const item *x)
{
    json_t *o = json_pack("{s:i, s:i, s:o}", "first", x->first, "last", x->last, "sentences",
                          sents_json(&x->sents));
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return js;
}

/* Read a stored body back into x; false if it is not one (then the call is
** made again). */
static bool body_parse(const char *body, item *x)
{
    json_t *o = json_loads(body, 0, NULL), *ss = json_object_get(o, "sentences");
    bool ok = json_is_array(ss) && json_is_integer(json_object_get(o, "first")) &&
              json_is_integer(json_object_get(o, "last"));
    size_t i;
    json_t *e;
    json_array_foreach(ss, i, e) {
        const char *t = json_string_value(json_object_get(e, "text"));
        json_t *pp = json_object_get(e, "pages");
        rag_span sp[RAG_SPANS];
        int n = 0;
        size_t k;
        json_t *p;
        json_array_foreach(pp, k, p) {
            if (n < RAG_SPANS && json_is_integer(json_array_get(p, 0)) &&
                json_is_integer(json_array_get(p, 1)))
                sp[n++] = (rag_span){(int)json_integer_value(json_array_get(p, 0)),
                                     (int)json_integer_value(json_array_get(p, 1))};
        }
        if (!ok || !t || rag_sents_add(&x->sents, t, strlen(t), sp, n))
            ok = false;
    }
    json_decref(o);
    return ok;
}

typedef struct stream_ctx {
    run *r;
    int level, first, last;
} stream_ctx;

static void final_text(void *ctx, const char *s, size_t n)
{
    stream_ctx *c = ctx;
    event(c->r, LIB_SUM_TEXT, c->level, c->first, c->last, false, s, n);
}

/* Summarise in[a..b) (one group of a level) into x: from the library if a
** run made it before, else by the model. */
static int summarise_group(run *r, int level, int part, const items *in, int a, int b, bool final,
                           const char *title, item *x, cn_err *err)
{
    x->first = in->v[a].first;
    x->last = in->v[b - 1].last;
    r->key.level = level;
    r->key.part = part;
    cn_arena ar;
    cn_arena_init(&ar, (size_t)256 << 20);
    const char *body = NULL;
    int rc = store_summary_get(lib_store(r->l), &r->key, &ar, &body, err);
    bool found = rc == CN_OK && body_parse(body, x);
    cn_arena_free(&ar);
    if (rc && rc != CN_ENOTFOUND)
        return rc;
    if (found) {
        r->out->cached++;
        r->done++;
        event(r, LIB_SUM_STEP, level, x->first, x->last, true, NULL, 0);
        return CN_OK;
    }
    rag_sents_free(&x->sents);
    event(r, LIB_SUM_STEP, level, x->first, x->last, false, NULL, 0);

    const int want = final ? lengths[r->length].sentences : lengths[r->length].part_sentences;
    cn_buf user, reply;
    cn_buf_init(&user, (size_t)64 << 20);
    cn_buf_init(&reply, (size_t)16 << 20);
    if (level == 0)
        cn_buf_printf(&user, "%s \"%s\", pages %d to %d:\n\n", final ? "The document" : "Part of",
                      title, x->first, x->last);
    else
        cn_buf_printf(&user, "Summaries of consecutive parts of \"%s\":\n\n", title);
    for (int i = a; i < b; i++) {
        const item *y = &in->v[i];
        if (level == 0 && (i == a || y->first != in->v[i - 1].first))
            cn_buf_printf(&user, "[page %d]\n", y->first);
        else if (level > 0)
            cn_buf_printf(&user, y->first == y->last ? "[page %d]\n" : "[pages %d to %d]\n",
                          y->first, y->last);
        cn_buf_append(&user, y->text, y->len);
        cn_buf_append(&user, "\n\n", 2);
    }
    if (level == 0)
        cn_buf_printf(&user, "Summarise %s in at most %d sentences.",
                      final ? "the document" : "these pages", want);
    else
        cn_buf_printf(&user, "Combine them into one summary of %s in at most %d sentences.",
                      final ? "the whole document" : "these pages", want);
    rc = user.data ? CN_OK : cn_fail(err, CN_ENOMEM, "out of memory building a prompt");
    double t = cn_now();
    stream_ctx sc = {r, level, x->first, x->last};
    if (!rc)
        rc = r->m->chat(r->m->ctx, sum_system, user.data,
                        final ? r->final_tokens : r->part_tokens, NULL, final ? final_text : NULL,
                        &sc, &reply, err);
    r->t_generated += cn_now() - t;
    r->generated++;
    r->done++;
    cn_buf_free(&user);

    /* the sentences, each traced to the pages of what the model read */
    rag_sents src = {0};
    for (int i = a; !rc && i < b; i++) {
        const item *y = &in->v[i];
        if (level == 0) {
            rag_span sp = {y->first, y->last};
            rc = rag_sentences(y->text, y->len, false, &sp, 1, &src);
        } else {
            for (int k = 0; !rc && k < y->sents.n; k++)
                rc = rag_sents_add(&src, y->sents.v[k].text, strlen(y->sents.v[k].text),
                                   y->sents.v[k].spans, y->sents.v[k].n_spans);
        }
    }
    rag_span whole = {x->first, x->last};
    if (!rc && reply.len)
        rc = rag_sentences(reply.data, reply.len, false, NULL, 0, &x->sents);
    for (int i = 0; !rc && i < x->sents.n; i++)
        rag_attribute(&x->sents.v[i], &src, whole);
    rag_sents_free(&src);
    cn_buf_free(&reply);
    if (rc == CN_ENOMEM)
        return cn_fail(err, rc, "out of memory summarising pages %d-%d", x->first, x->last);
    if (rc)
        return rc;
    char *js = body_json(x);
    rc = js ? store_summary_put(lib_store(r->l), &r->key, js, err)
            : cn_fail(err, CN_ENOMEM, "out of memory");
    free(js);
    return rc;
}

/* The text a summary gives the level above: its sentences. */
static int item_text(item *x)
{
    cn_buf b;
    cn_buf_init(&b, (size_t)16 << 20);
    for (int i = 0; i < x->sents.n; i++)
        if (cn_buf_printf(&b, "%s%s", i ? " " : "", x->sents.v[i].text)) {
            cn_buf_free(&b);
            return CN_ENOMEM;
        }
    x->text = b.data ? b.data : cn_calloc(1, 1);
    x->len = b.len;
    return x->text ? CN_OK : CN_ENOMEM;
}

/* Greedy packing of in[] into groups of at most budget tokens: starts[]
** gets each group's first index (and in->n after the last). */
static int pack(const run *r, const items *in, int *starts)
{
    int g = 0, used = 0;
    for (int i = 0; i < in->n; i++) {
        if (i == 0 || used + in->v[i].tokens > r->budget) {
            starts[g++] = i;
            used = 0;
        }
        used += in->v[i].tokens;
    }
    starts[g] = in->n;
    return g;
}

/* The calls a level of n groups will still lead to, by the partial
** summaries' length. */
static int estimate_above(const run *r, int n)
{
    int total = 0, per = CN_MAX(1, r->budget / (r->part_tokens + 16));
    while (n > 1) {
        n = (n + per - 1) / per;
        total += n;
    }
    return total;
}

static int generated(lib *l, const store_doc_info *d, int length, const lib_llm *m,
                     lib_summary *out, lib_sum_fn fn, void *ctx, cn_err *err)
{
    int sys = m->count(m->ctx, sum_system, strlen(sum_system));
    int avail = m->n_ctx - sys - 96; /* the template, the headings, the instruction */
    run r = {.l = l, .m = m, .length = length, .fn = fn, .ctx = ctx, .out = out,
             .key = {d->id, d->hash, m->name, lengths[length].name, 0, 0}};
    r.part_tokens = CN_MIN(lengths[length].part_tokens, avail / 4);
    r.final_tokens = CN_MIN(lengths[length].tokens, avail / 3);
    r.budget = avail - CN_MAX(r.part_tokens, r.final_tokens);
    if (r.part_tokens < 16 || r.budget < 64)
        return cn_fail(err, CN_ELIMIT,
                       "the model's %d-token context is too small to summarise with", m->n_ctx);
    int rc = store_summary_forget(lib_store(l), d->id, d->hash, err);
    if (rc)
        return rc;

    items in = {0}, next = {0};
    cn_arena ar;
    cn_arena_init(&ar, (size_t)1 << 30);
    for (int p = 1; !rc && p <= d->n_pages; p++) {
        const char *text;
        size_t len;
        rc = store_get_page(lib_store(l), d->id, p, &ar, &text, &len, err);
        if (rc == CN_ENOTFOUND) {
            rc = CN_OK; /* a page with no row: nothing to read on it */
            continue;
        }
        if (!rc)
            rc = add_page(&r, &in, p, text, len, err);
    }
    cn_arena_free(&ar);
    if (!rc && in.n == 0)
        rc = cn_fail(err, CN_EINVAL, "%s has no text to summarise%s", d->path,
                     d->n_pages ? " (are its pages scans waiting for OCR? see `cairn ocr`)" : "");
    const char *title = d->title && *d->title ? d->title : d->path;
    for (int level = 0; !rc; level++) {
        int *starts = cn_malloc_array((size_t)in.n + 1, sizeof *starts);
        if (!starts) {
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
            break;
        }
        int g = pack(&r, &in, starts);
        if (level > 0 && g >= in.n && in.n > 1) {
            free(starts); /* no progress: a reply longer than the model was asked for */
            rc = cn_fail(err, CN_ELIMIT, "the partial summaries do not get shorter; the "
                                         "model's %d-token context is too small",
                         m->n_ctx);
            break;
        }
        if (level == 0) {
            out->groups = cn_malloc_array((size_t)g, sizeof *out->groups);
            if (!out->groups) {
                free(starts);
                rc = cn_fail(err, CN_ENOMEM, "out of memory");
                break;
            }
            for (int k = 0; k < g; k++)
                out->groups[k] = (rag_span){in.v[starts[k]].first, in.v[starts[k + 1] - 1].last};
            out->n_groups = g;
        }
        r.total = r.done + g + estimate_above(&r, g);
        for (int k = 0; !rc && k < g; k++) {
            item *x = items_add(&next);
            rc = x ? summarise_group(&r, level, k, &in, starts[k], starts[k + 1], g == 1, title,
                                     x, err)
                   : cn_fail(err, CN_ENOMEM, "out of memory");
            if (!rc)
                rc = item_text(x);
            if (!rc)
                x->tokens = m->count(m->ctx, x->text, x->len) + 8;
        }
        free(starts);
        items_free(&in);
        in = next;
        next = (items){0};
        if (!rc && g == 1) {
            out->s = in.v[0].sents;
            in.v[0].sents = (rag_sents){0};
            if (out->s.n == 0)
                rc = cn_fail(err, CN_EINVAL, "the model wrote no summary of %s (the "
                                             "extractive summary needs none)", d->path);
            break;
        }
    }
    out->steps = r.done;
    items_free(&in);
    items_free(&next);
    return rc;
}

/* Sentences per extractive summary, by length. */
static int extractive(lib *l, const store_doc_info *d, int length, lib_summary *out, cn_err *err)
{
    rag_sents all = {0};
    cn_arena ar;
    cn_arena_init(&ar, (size_t)1 << 30);
    int rc = CN_OK;
    for (int p = 1; !rc && p <= d->n_pages; p++) {
        const char *text;
        size_t len;
        rc = store_get_page(lib_store(l), d->id, p, &ar, &text, &len, err);
        if (rc == CN_ENOTFOUND) {
            rc = CN_OK;
            continue;
        }
        rag_span sp = {p, p};
        if (!rc && rag_sentences(text, len, true, &sp, 1, &all))
            rc = cn_fail(err, CN_ENOMEM, "out of memory reading the pages");
    }
    cn_arena_free(&ar);
    if (!rc && all.n == 0)
        rc = cn_fail(err, CN_EINVAL, "%s has no sentences to summarise%s", d->path,
                     d->n_pages ? " (are its pages scans waiting for OCR? see `cairn ocr`)" : "");
    int want = lengths[length].sentences;
    int *chosen = rc ? NULL : cn_malloc_array((size_t)want, sizeof *chosen);
    if (!rc && !chosen)
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
    int k = rc ? 0 : rag_central(&all, want, chosen);
    if (k < 0)
        rc = cn_fail(err, CN_ENOMEM, "out of memory choosing sentences");
    for (int i = 0; !rc && i < k; i++) {
        const rag_sent *s = &all.v[chosen[i]];
        if (rag_sents_add(&out->s, s->text, strlen(s->text), s->spans, s->n_spans))
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
    }
    free(chosen);
    rag_sents_free(&all);
    return rc;
}

int lib_summarize(lib *l, int64_t doc_id, int length, const lib_llm *m, lib_sum_fn fn, void *ctx,
                  lib_summary *out, cn_err *err)
{
    *out = (lib_summary){.mode = m ? "generated" : "extractive"};
    if (length < 0 || length >= (int)CN_ARRAY_LEN(lengths))
        return cn_fail(err, CN_EINVAL, "no summary length %d", length);
    double t0 = cn_now();
    cn_arena ar;
    cn_arena_init(&ar, (size_t)1 << 20);
    store_doc_info d;
    int rc = store_doc_get(lib_store(l), doc_id, &ar, &d, err);
    if (!rc && d.failed)
        rc = cn_fail(err, CN_EINVAL, "%s could not be read when it was added: %s", d.path,
                     d.error ? d.error : "failed");
    out->n_pages = rc ? 0 : d.n_pages;
    if (!rc)
        rc = m ? generated(l, &d, length, m, out, fn, ctx, err) : extractive(l, &d, length, out, err);
    cn_arena_free(&ar);
    out->seconds = cn_now() - t0;
    if (rc)
        lib_summary_free(out);
    return rc;
}

void lib_summary_free(lib_summary *s)
{
    rag_sents_free(&s->s);
    free(s->groups);
    s->groups = NULL;
    s->n_groups = 0;
}

json_t *lib_summary_json(const lib_summary *s)
{
    json_t *o = json_object(), *gs = json_array();
    json_object_set_new(o, "mode", json_string(s->mode));
    json_object_set_new(o, "sentences", sents_json(&s->s));
    for (int i = 0; i < s->n_groups; i++)
        json_array_append_new(gs, json_pack("[ii]", s->groups[i].first, s->groups[i].last));
    json_object_set_new(o, "groups", gs);
    json_object_set_new(o, "pages", json_integer(s->n_pages));
    json_object_set_new(o, "steps", json_integer(s->steps));
    json_object_set_new(o, "cached", json_integer(s->cached));
    json_object_set_new(o, "seconds", json_real(s->seconds));
    return o;
}
