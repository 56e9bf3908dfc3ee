/*
** cmd_check.c: `cairn check retrieval`, a self-test of search on the user's
** own library. It samples passages, turns each into a probe that does not
** quote it whole, searches with each kind of search that can run here
** (keyword; hybrid with an embedding model; either reranked with a
** reranker) and reports how often the passage's page comes back first and in
** the top 5: what an embedding model or a reranker would buy on these
** documents.
**
** With a language model (installed, or -m), each probe is a question the
** model writes about the passage in its own words (greedy, so a run is
** repeatable). Without one, the probes are keyword probes: the rarest words
** of each passage that some other passage also uses (a word no other passage
** has would give the passage away). Those are not questions a user would
** write; the output says so. A passage the model writes nothing usable for
** gets a keyword probe, and the count is reported.
*/
#include "cli/cli.h"
#include "library/library.h"
#include "models/models.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PROBE_WORDS = 4, MAX_SAMPLE = 1000, TOP_K = 5, WALK_BATCH = 256 };

/* ---- document frequency of words, over the whole library ------------------- */

/* Open-addressing table of word -> number of passages holding it. */
typedef struct df_table {
    char **keys;
    uint32_t *counts;
    int64_t *last; /* passage that counted it last: each passage counts a word once */
    size_t cap, n;
} df_table;

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void df_free(df_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->keys ? t->keys[i] : NULL);
    free(t->keys);
    free(t->counts);
    free(t->last);
    memset(t, 0, sizeof *t);
}

static size_t df_slot(const df_table *t, const char *w, size_t len)
{
    size_t i = hash_bytes(w, len) & (t->cap - 1);
    while (t->keys[i] && (strlen(t->keys[i]) != len || memcmp(t->keys[i], w, len)))
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int df_grow(df_table *t)
{
    df_table g = {0};
    g.cap = t->cap ? t->cap * 2 : 4096;
    g.keys = cn_calloc(g.cap, sizeof *g.keys);
    g.counts = cn_calloc(g.cap, sizeof *g.counts);
    g.last = cn_calloc(g.cap, sizeof *g.last);
    if (!g.keys || !g.counts || !g.last) {
        df_free(&g);
        return CN_ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->keys[i])
            continue;
        size_t j = df_slot(&g, t->keys[i], strlen(t->keys[i]));
        g.keys[j] = t->keys[i];
        g.counts[j] = t->counts[i];
        g.last[j] = t->last[i];
    }
    g.n = t->n;
    free(t->keys);
    free(t->counts);
    free(t->last);
    *t = g;
    return CN_OK;
}

/* Count word w (of passage pid) once per passage. */
static int df_add(df_table *t, const char *w, size_t len, int64_t pid)
{
    if ((t->n + 1) * 2 > t->cap && df_grow(t))
        return CN_ENOMEM;
    size_t i = df_slot(t, w, len);
    if (!t->keys[i]) {
        if (!(t->keys[i] = strndup(w, len)))
            return CN_ENOMEM;
        t->n++;
    }
    if (t->last[i] != pid) {
        t->last[i] = pid;
        t->counts[i]++;
    }
    return CN_OK;
}

static uint32_t df_get(const df_table *t, const char *w, size_t len)
{
    if (!t->cap)
        return 0;
    size_t i = df_slot(t, w, len);
    return t->keys[i] ? t->counts[i] : 0;
}

/* Words as the probes use them: runs of ASCII letters and digits and of
** non-ASCII bytes (so accented and non-Latin words stay whole), ASCII lower
** case. Words of under 3 bytes or over 40, numbers and keyword search's stop
** words are no use in a probe and are skipped. Calls fn for each; stops at
** the first non-zero return. */
typedef int (*word_fn)(void *ctx, const char *w, size_t len, size_t pos);

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int for_words(const char *text, size_t len, word_fn fn, void *ctx)
{
    char w[41];
    size_t i = 0;
    while (i < len) {
        while (i < len && !word_byte((unsigned char)text[i]))
            i++;
        size_t s = i;
        bool digits = true;
        while (i < len && word_byte((unsigned char)text[i])) {
            digits &= text[i] >= '0' && text[i] <= '9';
            i++;
        }
        size_t n = i - s;
        if (n < 3 || n > 40 || digits)
            continue;
        for (size_t k = 0; k < n; k++) {
            char c = text[s + k];
            w[k] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        w[n] = 0;
        if (store_is_stop_word(w, n))
            continue;
        int rc = fn(ctx, w, n, s);
        if (rc)
            return rc;
    }
    return 0;
}

typedef struct count_ctx {
    df_table *t;
    int64_t pid;
} count_ctx;

static int count_word(void *ctx, const char *w, size_t len, size_t pos)
{
    count_ctx *c = ctx;
    (void)pos;
    return df_add(c->t, w, len, c->pid);
}

/* ---- the probe of one passage ------------------------------------------------ */

typedef struct cand {
    char w[41];
    uint32_t df;
    size_t pos;
} cand;

typedef struct probe_ctx {
    const df_table *t;
    cand c[256];
    int n;
} probe_ctx;

static int probe_word(void *ctx, const char *w, size_t len, size_t pos)
{
    probe_ctx *p = ctx;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->c[i].w, w))
            return 0;
    if (p->n == (int)CN_ARRAY_LEN(p->c))
        return 1; /* enough words to choose from */
    cand *c = &p->c[p->n++];
    memcpy(c->w, w, len + 1);
    c->df = df_get(p->t, w, len);
    c->pos = pos;
    return 0;
}

static int by_rarity(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    /* words no other passage has (df 1) last: they would give the passage away */
    bool xs = x->df < 2, ys = y->df < 2;
    if (xs != ys)
        return xs ? 1 : -1;
    if (x->df != y->df)
        return x->df < y->df ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int by_pos(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* The PROBE_WORDS rarest words of text that another passage also uses (its
** rarest words of all when fewer than 2 are shared), in the passage's order.
** Returns the probe's length, 0 when the passage has no usable word. */
static size_t make_probe(const df_table *t, const char *text, size_t len, char *out, size_t cap)
{
    probe_ctx p = {.t = t};
    for_words(text, len, probe_word, &p);
    qsort(p.c, (size_t)p.n, sizeof *p.c, by_rarity);
    int shared = 0;
    while (shared < p.n && p.c[shared].df >= 2)
        shared++;
    int k = CN_MIN(PROBE_WORDS, shared >= 2 ? shared : p.n);
    qsort(p.c, (size_t)k, sizeof *p.c, by_pos);
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        int w = snprintf(out + o, cap - o, "%s%s", i ? " " : "", p.c[i].w);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
    return o;
}

/* ---- questions written by a language model ------------------------------------ */

enum { QUESTION_TOKENS = 48, EXCERPT_BYTES = 1200 };

typedef struct qgen {
    eng_model *m;
    tok_vocab *v;
    const char *family;
    int n_ctx;
    int32_t *ids;
} qgen;

/* short, so that small contexts keep room for the passage */
static const char question_prompt[] =
    "Write one question this passage answers, in your own words, not its phrases. Reply with "
    "the question only.";

typedef struct qtext {
    char buf[512];
    size_t len;
} qtext;

/* Collect the reply; stop at the end of its first non-empty line. */
static int on_question_token(void *ctx, int32_t id, const char *text, size_t len)
{
    qtext *q = ctx;
    (void)id;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n' && q->len > 0)
            return 1;
        if (text[i] != '\n' && q->len + 1 < sizeof q->buf)
            q->buf[q->len++] = text[i];
    }
    return 0;
}

static int count_word_cb(void *ctx, const char *w, size_t len, size_t pos)
{
    (void)w, (void)len, (void)pos;
    ++*(int *)ctx;
    return 0;
}

static int qgen_open(qgen *g, const char *path, int threads, cn_err *err)
{
    memset(g, 0, sizeof *g);
    eng_opts eo = {.n_threads = threads};
    int rc = eng_model_open(&g->m, path, &eo, err);
    if (!rc)
        rc = tok_open(&g->v, eng_model_gguf(g->m), err);
    if (!rc) {
        gguf_str tmpl = {0};
        gguf_get_str(eng_model_gguf(g->m), "tokenizer.chat_template", &tmpl, NULL);
        g->family = tok_chat_family(tmpl.ptr, (size_t)tmpl.len, eng_model_hparams(g->m)->arch);
        g->n_ctx = eng_model_n_ctx(g->m);
        if (g->n_ctx < 64)
            rc = cn_fail(err, CN_EUNSUPPORTED, "%s: a context of %d tokens leaves no room for a "
                         "passage", path, g->n_ctx);
    }
    if (!rc && !(g->ids = cn_malloc_array((size_t)g->n_ctx, sizeof *g->ids)))
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
    return rc;
}

static void qgen_close(qgen *g)
{
    free(g->ids);
    tok_close(g->v);
    eng_model_close(g->m);
}

/* The prompt for the first n bytes of text, tokenized into g->ids; the
** count (which may exceed the room: then nothing was written past it) or a
** CN_E* code. */
static int question_prompt_ids(qgen *g, const char *text, size_t n, int room, cn_err *err)
{
    char user[EXCERPT_BYTES + 16];
    snprintf(user, sizeof user, "Passage:\n%.*s", (int)n, text);
    tok_chat_msg msgs[2] = {{"system", question_prompt}, {"user", user}};
    cn_buf b;
    cn_buf_init(&b, (size_t)1 << 20);
    int rc = tok_chat_render(g->family, msgs, 2, true, &b, err);
    int n_ids = rc ? rc : tok_encode(g->v, b.data ? b.data : "", b.len, true, true, g->ids, room,
                                     err);
    cn_buf_free(&b);
    return n_ids;
}

/* The model's question about text, trimmed (a leading "Question:" and
** surrounding quotes dropped), in out. The passage is cut to what fits the
** model's context with room for the answer. Returns the question's length;
** 0 when the model wrote no usable question (no word a search could use) or
** too little of the passage fits; or a CN_E* code. */
static int model_question(qgen *g, const char *text, size_t len, char *out, size_t cap,
                          cn_err *err)
{
    int n_predict = CN_MIN(QUESTION_TOKENS, g->n_ctx / 4);
    int room = g->n_ctx - n_predict;
    size_t n = cn_utf8_valid_prefix(text, CN_MIN(len, (size_t)EXCERPT_BYTES));
    int n_ids = question_prompt_ids(g, text, n, room, err);
    while (n_ids > room && n >= 64) { /* a small context: less of the passage */
        n = cn_utf8_valid_prefix(text, n * 2 / 3);
        n_ids = question_prompt_ids(g, text, n, room, err);
    }
    if (n_ids < 0)
        return n_ids;
    if (n_ids > room)
        return 0; /* too little of it fits: a keyword probe instead */
    qtext q = {0};
    eng_gen_opts go = {.n_predict = n_predict, .sampler = eng_sampler_defaults()};
    go.sampler.temp = 0; /* greedy: the same question on every run */
    eng_model_reset(g->m);
    eng_gen_stats st;
    int rc = eng_generate(g->m, g->v, g->ids, n_ids, &go, on_question_token, &q, &st, err);
    if (rc)
        return rc;
    q.buf[q.len] = 0;
    char *s = q.buf, *e = q.buf + q.len;
    while (s < e && isspace((unsigned char)*s))
        s++;
    if (!strncasecmp(s, "question:", 9))
        s += 9;
    while (s < e && (isspace((unsigned char)*s) || *s == '"'))
        s++;
    while (e > s && (isspace((unsigned char)e[-1]) || e[-1] == '"'))
        e--;
    int words = 0;
    for_words(s, (size_t)(e - s), count_word_cb, &words);
    if (!words)
        return 0;
    snprintf(out, cap, "%.*s", (int)(e - s), s);
    return (int)strlen(out);
}

/* ---- sampling ---------------------------------------------------------------- */

static uint64_t next_rand(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Walk every passage once: count its words into t and keep a uniform sample
** of n ids (reservoir sampling, so memory does not grow with the library).
** Returns the number of passages seen or a CN_E* code. */
static int64_t walk_library(lib *l, df_table *t, int n, uint64_t seed, int64_t *sample,
                            int *n_sample, cn_err *err)
{
    int64_t seen = 0, after = 0;
    uint64_t rng = seed;
    *n_sample = 0;
    store_passage batch[WALK_BATCH];
    for (;;) {
        cn_arena a;
        cn_arena_init(&a, (size_t)256 << 20);
        /* no embedding model is called "": every passage is listed */
        int got = store_passages_without_embedding(lib_store(l), "", after, WALK_BATCH, &a, batch,
                                                   NULL, err);
        int rc = got < 0 ? got : CN_OK;
        for (int i = 0; !rc && i < got; i++) {
            count_ctx c = {t, batch[i].id};
            if (for_words(batch[i].text, batch[i].len, count_word, &c))
                rc = cn_fail(err, CN_ENOMEM, "out of memory counting words");
            seen++;
            if (*n_sample < n) {
                sample[(*n_sample)++] = batch[i].id;
            } else {
                uint64_t j = next_rand(&rng) % (uint64_t)seen;
                if (j < (uint64_t)n)
                    sample[j] = batch[i].id;
            }
            after = batch[i].id;
        }
        cn_arena_free(&a);
        if (rc)
            return rc;
        if (got < WALK_BATCH)
            return seen;
    }
}

/* ---- the check ----------------------------------------------------------------- */

/* The kinds of search compared. */
enum { M_KEYWORD, M_KEYWORD_RR, M_HYBRID, M_HYBRID_RR, N_MODES };
static const char *const mode_names[N_MODES] = {"keyword", "keyword + rerank", "hybrid",
                                                "hybrid + rerank"};

typedef struct mode_stat {
    bool on;
    const char *why_not; /* when off */
    int at1, at5;
    double seconds;
} mode_stat;

typedef struct check_args {
    const char *home, *embed_model, *rerank_model, *chat_model;
    bool no_rerank, json, keyword_probes;
    int n, threads;
    uint64_t seed;
} check_args;

static const char check_help[] =
    "usage: cairn check retrieval [-n 50] [--seed S] [--json] [options]\n\n"
    "How well search finds passages of your own library. Samples n passages and\n"
    "makes a probe of each: with a language model, a question it writes about the\n"
    "passage in its own words (a few seconds each); without one, the passage's\n"
    "rarest words that other passages also use (keyword probes, not real\n"
    "questions). Searches with every kind of search that can run here -- keyword;\n"
    "hybrid with an embedding model; either reranked with a reranker -- and\n"
    "reports recall@1 and recall@5: how often the passage's page comes back\n"
    "first, and in the top 5. Compare the rows to see what an embedding model or\n"
    "a reranker buys on these documents.\n\n"
    "  -n N                passages to sample (default 50, at most 1000)\n"
    "  --seed S            which passages are sampled (default 1: the same each run)\n"
    "  --json              one JSON object: the table and every probe\n"
    "  -e, --embed-model M embedding model for the hybrid rows (default: the active\n"
    "                      one; the library's passages must be embedded with it)\n"
    "  --rerank M          reranker for the reranked rows (default: the active one)\n"
    "  --no-rerank         no reranked rows\n"
    "  -m, --model M       language model that writes the questions (default\n"
    "                      $CAIRN_CHAT_MODEL, else the active chat model)\n"
    "  --keyword-probes    keyword probes even with a language model (fast)\n"
    "  -t N                threads\n"
    "  --home DIR          data directory (default $CAIRN_HOME, ...)\n";

static int parse_check(int argc, char **argv, check_args *a)
{
    memset(a, 0, sizeof *a);
    a->n = 50;
    a->seed = 1;
    a->embed_model = getenv("CAIRN_EMBED_MODEL");
    a->chat_model = getenv("CAIRN_CHAT_MODEL");
    enum { OPT_RERANK = CLI_OPT_FIRST_FREE, OPT_NO_RERANK, OPT_KEYWORD };
    static const struct option longs[] = {
        {"home", required_argument, NULL, CLI_OPT_HOME},
        {"embed-model", required_argument, NULL, 'e'},
        {"threads", required_argument, NULL, 't'},
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {"seed", required_argument, NULL, CLI_OPT_SEED},
        {"rerank", required_argument, NULL, OPT_RERANK},
        {"no-rerank", no_argument, NULL, OPT_NO_RERANK},
        {"model", required_argument, NULL, 'm'},
        {"keyword-probes", no_argument, NULL, OPT_KEYWORD},
        {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    long v;
    while ((c = cli_getopt("check", argc, argv, ":e:m:t:n:h", longs)) != -1) {
        switch (c) {
        case CLI_OPT_HOME: a->home = optarg; break;
        case 'e': a->embed_model = optarg; break;
        case 'm': a->chat_model = optarg; break;
        case OPT_KEYWORD: a->keyword_probes = true; break;
        case 't':
            if (!cli_int(optarg, 1, 512, &v))
                return cli_usage("check", "-t %s: expected 1 to 512", optarg);
            a->threads = (int)v;
            break;
        case 'n':
            if (!cli_int(optarg, 1, MAX_SAMPLE, &v))
                return cli_usage("check", "-n %s: expected 1 to %d", optarg, MAX_SAMPLE);
            a->n = (int)v;
            break;
        case CLI_OPT_SEED:
            if (!cli_int(optarg, 0, 1L << 62, &v))
                return cli_usage("check", "--seed %s: expected a non-negative integer", optarg);
            a->seed = (uint64_t)v;
            break;
        case CLI_OPT_JSON: a->json = true; break;
        case OPT_RERANK: a->rerank_model = optarg; break;
        case OPT_NO_RERANK: a->no_rerank = true; break;
        case 'h': printf("%s", check_help); return -1;
        default: return 2;
        }
    }
    if (optind >= argc)
        return cli_usage("check", "missing what to check (retrieval)");
    if (strcmp(argv[optind], "retrieval"))
        return cli_usage("check", "unknown check '%s' (expected: retrieval)", argv[optind]);
    if (optind + 1 < argc)
        return cli_usage("check", "unexpected argument '%s'", argv[optind + 1]);
    if (a->rerank_model && a->no_rerank)
        return cli_usage("check", "--rerank and --no-rerank together: choose one");
    if (a->embed_model && !*a->embed_model)
        a->embed_model = NULL;
    if (a->chat_model && !*a->chat_model)
        a->chat_model = NULL;
    return 0;
}

/* Is r the sampled passage's page: the same document, overlapping pages. */
static bool is_source(const lib_result *r, const store_hit *src)
{
    return r->doc_id == src->doc_id && r->page_start <= src->page_end &&
           r->page_end >= src->page_start;
}

/* 1-based rank of the source among res[0..n) (at most TOP_K), 0 if absent. */
static int source_rank(const lib_result *res, int n, const store_hit *src)
{
    for (int i = 0; i < CN_MIN(n, TOP_K); i++)
        if (is_source(&res[i], src))
            return i + 1;
    return 0;
}

typedef struct models_here {
    char embed_path[4096], rerank_path[4096], chat_path[4096];
    char embed_name[128], rerank_name[128];
    const char *embed, *rerank, *chat;
    bool rerank_active;
} models_here;

/* The models to compare with: given, else the active ones. */
static int find_models(const check_args *a, models_here *m)
{
    memset(m, 0, sizeof *m);
    char home[4096];
    cn_err err = {0};
    if (cn_data_dir(home, sizeof home, a->home, &err))
        return cli_error(&err);
    if (a->chat_model && !a->keyword_probes) {
        if (mdl_resolve(home, a->chat_model, m->chat_path, sizeof m->chat_path, &err))
            return cli_error(&err);
        m->chat = m->chat_path;
    } else if (!a->keyword_probes && mdl_active(home, "chat", m->chat_path,
                                                sizeof m->chat_path, NULL, 0, NULL) == CN_OK) {
        m->chat = m->chat_path;
    }
    if (a->embed_model) {
        if (mdl_resolve(home, a->embed_model, m->embed_path, sizeof m->embed_path, &err))
            return cli_error(&err);
        m->embed = m->embed_path;
    } else if (mdl_active(home, "embed", m->embed_path, sizeof m->embed_path, m->embed_name,
                          sizeof m->embed_name, NULL) == CN_OK) {
        m->embed = m->embed_path;
    }
    if (a->no_rerank)
        return 0;
    if (a->rerank_model) {
        if (mdl_resolve(home, a->rerank_model, m->rerank_path, sizeof m->rerank_path, &err))
            return cli_error(&err);
        m->rerank = m->rerank_path;
    } else if (mdl_active(home, "rerank", m->rerank_path, sizeof m->rerank_path, m->rerank_name,
                          sizeof m->rerank_name, NULL) == CN_OK) {
        m->rerank = m->rerank_path;
        m->rerank_active = true;
    }
    return 0;
}

static const char probe_note[] =
    "keyword probes from each passage's rarest words, not real questions";
static const char question_note[] = "questions the language model wrote about each passage";
static const char mixed_note[] =
    "questions the language model wrote about each passage; keyword probes from their rarest "
    "words (not real questions) where it wrote none";

/* What a run measured, for the report. */
typedef struct check_run {
    const check_args *a;
    mode_stat st[N_MODES];
    int current;               /* the mode `cairn search` uses with these settings */
    int64_t n_passages;        /* in the library */
    int n_sample, n_probed, n_skipped, n_fallback, n_questions;
    const store_hit *src;      /* the probed passages, [0..n_probed) */
    const char (*probes)[400];
    const int *ranks;          /* n_probed x N_MODES: 1..TOP_K, 0 not found */
    const bool *by_model;      /* probe i is the model's question */
    bool model;                /* a language model wrote questions */
    const char *chat, *what;   /* its file; what the probes are */
    double t0;
} check_run;

/* One JSON object: the table, the modes not measured and why, every probe. */
static void report_json(const check_run *r)
{
    const mode_stat *st = r->st;
    const store_hit *src = r->src;
    int n_probed = r->n_probed, current = r->current;
    json_t *o = json_object(), *modes = json_array(), *off = json_array(), *jprobes = json_array();
    json_object_set_new(o, "check", json_string("retrieval"));
    json_object_set_new(o, "passages", json_integer(r->n_passages));
    json_object_set_new(o, "sampled", json_integer(r->n_sample));
    json_object_set_new(o, "probed", json_integer(n_probed));
    json_object_set_new(o, "seed", json_integer((json_int_t)r->a->seed));
    json_object_set_new(o, "probes_are", json_string(r->what));
    if (r->model) {
        json_object_set_new(o, "question_model", json_string(r->chat));
        json_object_set_new(o, "questions", json_integer(r->n_questions));
        json_object_set_new(o, "keyword_fallbacks", json_integer(r->n_fallback));
    }
    json_object_set_new(o, "current", json_string(mode_names[current]));
    for (int m = 0; m < N_MODES; m++) {
        json_t *row = json_object();
        json_object_set_new(row, "mode", json_string(mode_names[m]));
        if (!st[m].on) {
            json_object_set_new(row, "why", json_string(st[m].why_not ? st[m].why_not : ""));
            json_array_append_new(off, row);
            continue;
        }
        json_object_set_new(row, "current", json_boolean(m == current));
        json_object_set_new(row, "recall_at_1", json_real((double)st[m].at1 / n_probed));
        json_object_set_new(row, "recall_at_5", json_real((double)st[m].at5 / n_probed));
        json_object_set_new(row, "ms_per_query", json_real(1e3 * st[m].seconds / n_probed));
        json_array_append_new(modes, row);
    }
    json_object_set_new(o, "modes", modes);
    json_object_set_new(o, "unavailable", off);
    for (int i = 0; i < n_probed; i++) {
        json_t *p = json_object(), *rk = json_object();
        json_object_set_new(p, "path", json_string(src[i].path));
        json_object_set_new(p, "page", json_integer(src[i].page_start));
        json_object_set_new(p, "passage_id", json_integer(src[i].passage_id));
        json_object_set_new(p, "probe", json_string(r->probes[i]));
        json_object_set_new(p, "kind", json_string(r->by_model[i] ? "question" : "keyword"));
        for (int m = 0; m < N_MODES; m++) {
            int k = r->ranks[i * N_MODES + m];
            if (st[m].on) /* 1..5, or null: not in the top 5 */
                json_object_set_new(rk, mode_names[m], k ? json_integer(k) : json_null());
        }
        json_object_set_new(p, "rank", rk);
        json_array_append_new(jprobes, p);
    }
    json_object_set_new(o, "probes", jprobes);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
}

/* The table for a person: what the probes are, recall per mode, the modes
** not measured and why, a few probes. */
static void report_text(const check_run *r)
{
    const mode_stat *st = r->st;
    const store_hit *src = r->src;
    int n_probed = r->n_probed, current = r->current;
    printf("Retrieval check: %d passages sampled of %lld (seed %llu), in %.1fs\n", n_probed,
           (long long)r->n_passages, (unsigned long long)r->a->seed, cn_now() - r->t0);
    printf("Probes: %s\n", r->what);
    if (r->model) {
        printf("  (%s", r->chat);
        if (r->n_fallback)
            printf("; it wrote nothing usable for %d of the %d passages", r->n_fallback,
                   n_probed);
        printf(")\n");
    }
    printf("Found: the sampled passage's page among the results (recall@1: first; "
           "recall@5: top 5)\n\n");
    printf("  %-18s %9s %9s %12s\n", "search", "recall@1", "recall@5", "ms/query");
    for (int m = 0; m < N_MODES; m++)
        if (st[m].on)
            printf("  %-18s %9.2f %9.2f %12.1f%s\n", mode_names[m],
                   (double)st[m].at1 / n_probed, (double)st[m].at5 / n_probed,
                   1e3 * st[m].seconds / n_probed, m == current ? "   <- what search uses now"
                                                                : "");
    bool any = false;
    for (int m = 0; m < N_MODES; m++)
        if (!st[m].on) {
            printf("%s  %-18s not measured: %s\n", any ? "" : "\n", mode_names[m],
                   st[m].why_not ? st[m].why_not : "");
            any = true;
        }
    printf("\nFor example:\n");
    for (int i = 0; i < CN_MIN(n_probed, 3); i++) {
        const char *b = strrchr(src[i].path, '/');
        printf("  \"%s\"  <- %s, p. %d\n", r->probes[i], b ? b + 1 : src[i].path,
               src[i].page_start);
    }
    if (r->n_skipped)
        printf("(%d sampled passages had no usable words and were left out)\n", r->n_skipped);
}

int cmd_check(int argc, char **argv)
{
    check_args a;
    int prc = parse_check(argc, argv, &a);
    if (prc)
        return prc < 0 ? 0 : prc;
    models_here mh;
    if ((prc = find_models(&a, &mh)))
        return prc;
    lib *l;
    cn_err err = {0};
    if (lib_open(&l, a.home, &err))
        return cli_error(&err);
    int ret = 0;
    df_table t = {0};
    int64_t *sample = cn_malloc_array((size_t)a.n, sizeof *sample);
    store_hit *src = cn_calloc((size_t)a.n, sizeof *src);
    int *ranks = cn_calloc((size_t)a.n * N_MODES, sizeof *ranks);
    char(*probes)[400] = cn_calloc((size_t)a.n, sizeof *probes);
    eng_encoder *enc = NULL;
    tok_vocab *voc = NULL;
    qgen qg = {0};
    bool *by_model = cn_calloc((size_t)a.n, sizeof *by_model);
    cn_arena keep; /* the sampled passages */
    cn_arena_init(&keep, (size_t)256 << 20);
    if (!sample || !src || !ranks || !probes || !by_model) {
        ret = cli_error(&(cn_err){CN_ENOMEM, "out of memory"});
        goto done;
    }
    int n_sample = 0;
    double t0 = cn_now();
    int64_t n_passages = walk_library(l, &t, a.n, a.seed, sample, &n_sample, &err);
    if (n_passages < 0) {
        ret = cli_error(&err);
        goto done;
    }
    if (n_passages == 0) {
        fprintf(stderr, "cairn check: the library is empty: nothing to check (add documents "
                        "with `cairn add PATH`)\n");
        ret = 1;
        goto done;
    }
    if (store_get_passages(lib_store(l), sample, n_sample, &keep, src, &err)) {
        ret = cli_error(&err);
        goto done;
    }

    /* which kinds of search can run here */
    mode_stat st[N_MODES] = {{0}};
    st[M_KEYWORD].on = true;
    if (!mh.embed) {
        st[M_HYBRID].why_not = "no embedding model installed (`cairn models recommend`)";
    } else {
        int64_t done = 0, total = 0;
        if (lib_index_progress(l, mh.embed, a.threads, &done, &total, &err)) {
            ret = cli_error(&err);
            goto done;
        }
        st[M_HYBRID].on = done > 0;
        if (!done)
            st[M_HYBRID].why_not = "the passages have no vectors for the embedding model "
                                   "(`cairn index`)";
        else if (done < total && !a.json)
            fprintf(stderr, "note: %lld of %lld passages have vectors; hybrid search sees only "
                            "those (`cairn index` embeds the rest)\n",
                    (long long)done, (long long)total);
    }
    if (mh.rerank) {
        eng_opts eo = {.n_threads = a.threads};
        cn_err rerr = {0};
        if (cli_open_encoder(mh.rerank, &eo, true, &enc, &voc, &rerr) == CN_OK) {
            st[M_KEYWORD_RR].on = true;
            st[M_HYBRID_RR].on = st[M_HYBRID].on;
            st[M_HYBRID_RR].why_not = st[M_HYBRID].why_not;
        } else if (mh.rerank_active) {
            fprintf(stderr, "note: the active reranker '%s' cannot be used (%s): no reranked "
                            "rows\n", mh.rerank_name, rerr.msg);
            st[M_KEYWORD_RR].why_not = st[M_HYBRID_RR].why_not = "the reranker cannot be opened";
        } else {
            ret = cli_error(&rerr);
            goto done;
        }
    } else {
        st[M_KEYWORD_RR].why_not = st[M_HYBRID_RR].why_not =
            a.no_rerank ? "--no-rerank" : "no reranker installed (`cairn models import` one)";
    }
    /* what `cairn search` does with these settings */
    int current = st[M_HYBRID].on ? M_HYBRID : M_KEYWORD;
    if (st[current + 1].on)
        current++;

    if (mh.chat && qgen_open(&qg, mh.chat, a.threads, &err)) {
        ret = cli_error(&err);
        goto done;
    }
    bool tty = isatty(2);
    int n_probed = 0, n_skipped = 0, n_fallback = 0;
    for (int i = 0; i < n_sample; i++) {
        if (!src[i].text) { /* removed since the walk */
            n_skipped++;
            continue;
        }
        int qn = qg.m ? model_question(&qg, src[i].text, src[i].len, probes[n_probed],
                                       sizeof probes[0], &err)
                      : 0;
        if (qn < 0) {
            ret = cli_error(&err);
            goto done;
        }
        by_model[n_probed] = qn > 0;
        n_fallback += qg.m && !qn;
        if (!qn && !make_probe(&t, src[i].text, src[i].len, probes[n_probed], sizeof probes[0])) {
            n_skipped++;
            continue;
        }
        src[n_probed] = src[i];
        int *rk = &ranks[n_probed * N_MODES];
        const char *q = probes[n_probed];
        for (int base = M_KEYWORD; base <= M_HYBRID; base += 2) {
            if (!st[base].on)
                continue;
            cn_arena ar;
            cn_arena_init(&ar, (size_t)256 << 20);
            lib_result res[CLI_RERANK_CANDIDATES];
            lib_search_info info;
            lib_search_opts so = {.k = CLI_RERANK_CANDIDATES,
                                  .embed_model = base == M_HYBRID ? mh.embed : NULL,
                                  .threads = a.threads};
            double ts = cn_now();
            int n = lib_search(l, q, &so, &ar, res, &info, &err);
            double dt = cn_now() - ts;
            if (n >= 0) {
                st[base].seconds += dt;
                rk[base] = source_rank(res, n, &src[n_probed]);
            }
            if (n >= 0 && st[base + 1].on) {
                ts = cn_now();
                int rc = cli_rerank_results(enc, voc, q, res, n, &err);
                st[base + 1].seconds += dt + cn_now() - ts;
                if (rc)
                    n = rc;
                else
                    rk[base + 1] = source_rank(res, n, &src[n_probed]);
            }
            cn_arena_free(&ar);
            if (n < 0) {
                ret = cli_error(&err);
                goto done;
            }
        }
        for (int m = 0; m < N_MODES; m++) {
            st[m].at1 += rk[m] == 1;
            st[m].at5 += rk[m] >= 1;
        }
        n_probed++;
        if (tty)
            fprintf(stderr, "\r\033[Kchecking %d/%d probes", n_probed, n_sample);
        else if (n_probed % (qg.m ? 5 : 25) == 0) /* a model takes seconds a question */
            fprintf(stderr, "checked %d/%d probes\n", n_probed, n_sample);
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    if (n_probed == 0) {
        fprintf(stderr, "cairn check: none of the %d sampled passages has words to make a "
                        "probe of\n", n_sample);
        ret = 1;
        goto done;
    }

    int n_questions = 0;
    for (int i = 0; i < n_probed; i++)
        n_questions += by_model[i];
    const char *what = !n_questions ? probe_note : n_questions < n_probed ? mixed_note
                                                                          : question_note;
    check_run run = {.a = &a, .current = current, .n_passages = n_passages,
                     .n_sample = n_sample, .n_probed = n_probed, .n_skipped = n_skipped,
                     .n_fallback = n_fallback, .n_questions = n_questions, .src = src,
                     .probes = (const char(*)[400])probes, .ranks = ranks,
                     .by_model = by_model, .model = qg.m != NULL, .chat = mh.chat,
                     .what = what, .t0 = t0};
    memcpy(run.st, st, sizeof st);
    if (a.json)
        report_json(&run);
    else
        report_text(&run);
done:
    qgen_close(&qg);
    free(by_model);
    tok_close(voc);
    eng_encoder_close(enc);
    cn_arena_free(&keep);
    df_free(&t);
    free(sample);
    free(src);
    free(ranks);
    free(probes);
    lib_close(l);
    return ret;
}
