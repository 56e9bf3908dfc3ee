/*
** Rerankers (BERT cross-encoders): llama.cpp b4747's scores for the shared
** tiny reranker in its pair format; BERT's training format against the
** classification head applied by hand to the encoder's [CLS] state; pair
** layout, truncation, metadata, refusals; `cairn rerank`.
*/
#include "test.h"
#include "engine/engine_int.h"
#include "rerank_fixture.h"

#include <jansson.h>
#include <math.h>

/* A random-weight reranker made by mkmodel (128 wide, 2 layers, 2 token
** types, F16), with pair_format written as metadata when not NULL. */
static const char *make_reranker(const char *name, const char *pair_format)
{
    static char path[8][600];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 600, "%s/%s.gguf", test_tmpdir(), name);
    const char *tools = getenv("CAIRN_TOOLS");
    char cmd[2048], fmt[128] = "";
    if (pair_format)
        snprintf(fmt, sizeof fmt, "--pair-format %s", pair_format);
    snprintf(cmd, sizeof cmd,
             "%s/mkmodel --shape minilm --n-layer 2 --n-embd 128 --n-head 2 --n-head-kv 2 "
             "--n-ff 512 --type f16 --rerank %s --tokenizer %s -o %s 2>&1",
             tools && *tools ? tools : "build", fmt, test_data("vocab/ggml-vocab-bert-bge.gguf"), p);
    char out[1024], err[1024];
    int rc = test_shell(cmd, out, sizeof out, err, sizeof err);
    if (rc != 0) {
        test_fail_at(__FILE__, __LINE__, "mkmodel failed (%d): %s%s", rc, out, err);
        return NULL;
    }
    return p;
}

TEST(rerank_matches_llamacpp)
{
    const char *rel = "models/tiny-bert-rerank-f32.gguf";
    const char *mp = test_fixture(rel);
    if (!mp) {
        /* the reference scores belong to these exact weights (18 MB, too large
        ** for tests/data): this check truly needs the shared fixture */
        char why[512];
        snprintf(why, sizeof why, "needs the shared fixture %s/%s (set CAIRN_FIXTURES)",
                 test_fixtures(), rel);
        SKIP(why);
    }
    json_error_t je;
    json_t *root = json_load_file(test_data("vectors/tiny-bert-rerank-f32/rerank.json"), 0, &je);
    EXPECT(root != NULL);
    if (!root)
        return;
    eng_encoder *e = NULL;
    gguf_file *g = NULL;
    tok_vocab *v = NULL;
    cn_err err = {0};
    eng_opts o = {.n_threads = 2};
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, &o, &err), CN_OK);
    EXPECT_EQ_INT(gguf_open(&g, mp, &err), CN_OK);
    EXPECT_EQ_INT(tok_open(&v, g, &err), CN_OK);
    if (!e || !v) {
        fprintf(stderr, "  %s\n", err.msg);
        goto done;
    }
    EXPECT(eng_encoder_is_reranker(e));
    /* the file says nothing about its pair format: BERT's is the default */
    EXPECT_EQ_INT(eng_encoder_pair_format(e), ENG_PAIR_BERT);
    eng_encoder_set_pair_format(e, ENG_PAIR_SEP_SEP);

    json_t *items = json_object_get(root, "items");
    EXPECT_EQ_INT((int)json_array_size(items), 20);
    rr_report r;
    rr_compare(e, v, items, true, &r);
    printf("     tiny-bert-rerank-f32: %d pairs, ids differing %d, max abs diff %.3g (rel %.3g), "
           "from the fixture's ids %.3g\n", r.n, r.id_mismatch, r.worst_abs, r.worst_rel,
           r.worst_ids_path);
    EXPECT_EQ_INT(r.id_mismatch, 0);
    /* ggml's GELU table is computed the same way: the README's 1e-4 relative */
    EXPECT(r.worst_rel <= 1e-4);
    EXPECT(r.worst_ids_path <= 1e-4 * 0.0131);
done:
    tok_close(v);
    gguf_close(g);
    eng_encoder_close(e);
    json_decref(root);
}

/* tensor name as doubles (the test's own reading of the head) */
static double *tensor_doubles(const gguf_file *g, const char *name, int64_t *n)
{
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t)
        return NULL;
    *n = t->n_elem;
    float *f = malloc(sizeof(float) * (size_t)t->n_elem);
    kern_get()->to_float[t->type](t->data, f, t->n_elem);
    double *d = malloc(sizeof(double) * (size_t)t->n_elem);
    for (int64_t i = 0; i < t->n_elem; i++)
        d[i] = f[i];
    free(f);
    return d;
}

TEST(rerank_training_format)
{
    const char *mp = make_reranker("rr-bert", NULL);
    if (!mp)
        return;
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, NULL, &err), CN_OK);
    if (!e)
        return;
    const gguf_file *g = eng_encoder_gguf(e);
    EXPECT_EQ_INT(tok_open(&v, g, &err), CN_OK);
    EXPECT_EQ_INT(eng_encoder_pair_format(e), ENG_PAIR_BERT);
    EXPECT_EQ_INT(eng_encoder_n_types(e), 2);
    const char *q = "How do I cancel a print job?";
    const char *docs[] = {"Use lprm with the job number to remove a queued job.",
                          "The printer supports duplex output.", "x"};
    size_t lens[3];
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(docs[i]);

    /* the expected layout, built by hand: [CLS] q [SEP] d [SEP], d and its [SEP] in segment 1 */
    int32_t qt[64], dt[64], want[160], want_t[160];
    int qn = tok_encode(v, q, strlen(q), false, false, qt, 64, &err);
    int dn = tok_encode(v, docs[0], lens[0], false, false, dt, 64, &err);
    int wn = 0;
    want_t[wn] = 0, want[wn++] = 101;
    for (int i = 0; i < qn; i++)
        want_t[wn] = 0, want[wn++] = qt[i];
    want_t[wn] = 0, want[wn++] = 102;
    for (int i = 0; i < dn; i++)
        want_t[wn] = 1, want[wn++] = dt[i];
    want_t[wn] = 1, want[wn++] = 102;
    int n_ctx = eng_encoder_n_ctx(e);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_ctx * 2), *types = ids + n_ctx;
    int c = eng_rerank_pair(e, v, q, strlen(q), docs[0], lens[0], ids, types, NULL, &err);
    EXPECT_EQ_INT(c, wn);
    for (int i = 0; i < wn && c == wn; i++) {
        EXPECT_EQ_INT(ids[i], want[i]);
        EXPECT_EQ_INT(types[i], want_t[i]);
    }

    /* scores: the head applied in double to the [CLS] state the encoder computes
    ** for the hand-built sequence */
    float got[3];
    EXPECT_EQ_INT(eng_rerank_texts(e, v, q, strlen(q), docs, lens, 3, got, NULL, &err), CN_OK);
    int D = eng_encoder_dim(e);
    float *h = malloc(sizeof(float) * (size_t)D);
    const int32_t *ip[1] = {want}, *tp[1] = {want_t};
    EXPECT_EQ_INT(eng_encoder_cls_states(e, ip, tp, &wn, 1, h, &err), CN_OK);
    int64_t nw, nb, now, nob;
    double *w = tensor_doubles(g, "cls.weight", &nw), *b = tensor_doubles(g, "cls.bias", &nb);
    double *ow = tensor_doubles(g, "cls.output.weight", &now);
    double *ob = tensor_doubles(g, "cls.output.bias", &nob);
    EXPECT(w && b && ow && ob && nw == (int64_t)D * D && nb == D && now == D && nob == 1);
    double ref = ob ? ob[0] : 0;
    for (int o = 0; w && b && ow && o < D; o++) {
        double a = b[o];
        for (int i = 0; i < D; i++)
            a += w[(size_t)o * D + i] * h[i];
        ref += ow[o] * tanh(a);
    }
    printf("     training format: score %.9g, by hand %.9g\n", got[0], ref);
    EXPECT_NEAR(got[0], ref, 1e-6 + 1e-5 * fabs(ref));
    /* the segment matters: the same ids all in segment 0 score differently */
    float s0;
    EXPECT_EQ_INT(eng_encoder_rerank(e, ip, NULL, &wn, 1, &s0, &err), CN_OK);
    EXPECT(fabs(s0 - got[0]) > 1e-6);
    /* and each document's score does not depend on its batch neighbours */
    for (int i = 0; i < 3; i++) {
        float one;
        EXPECT_EQ_INT(eng_rerank_texts(e, v, q, strlen(q), &docs[i], &lens[i], 1, &one, NULL, &err),
                      CN_OK);
        EXPECT_NEAR(one, got[i], 1e-6);
    }
    free(w), free(b), free(ow), free(ob), free(h);

    /* a pair longer than the context: the document is cut, the query kept,
    ** [SEP] closes it */
    size_t big_len = 20000;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++)
        big[i] = "lorem ipsum dolor "[i % 18];
    big[big_len] = 0;
    bool cut = false;
    c = eng_rerank_pair(e, v, q, strlen(q), big, big_len, ids, types, &cut, &err);
    EXPECT_EQ_INT(c, n_ctx);
    EXPECT(cut);
    EXPECT_EQ_INT(ids[c - 1], 102);
    EXPECT_EQ_INT(ids[qn + 1], 102);
    EXPECT_EQ_INT(ids[1], qt[0]);
    /* a huge query keeps half the context, the document the rest */
    c = eng_rerank_pair(e, v, big, big_len, docs[0], lens[0], ids, types, &cut, &err);
    EXPECT_EQ_INT(c, n_ctx);
    EXPECT(cut);
    EXPECT_EQ_INT(ids[n_ctx - 2 - dn], 102);
    /* empty query and document still make a pair */
    c = eng_rerank_pair(e, v, "", 0, "", 0, ids, types, &cut, &err);
    EXPECT_EQ_INT(c, 3);
    free(big);
    free(ids);
    tok_close(v);
    eng_encoder_close(e);
}

TEST(rerank_pair_format_from_metadata)
{
    const char *mp = make_reranker("rr-sepsep", "sep-sep");
    if (!mp)
        return;
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, NULL, &err), CN_OK);
    if (!e)
        return;
    EXPECT_EQ_INT(tok_open(&v, eng_encoder_gguf(e), &err), CN_OK);
    EXPECT_EQ_INT(eng_encoder_pair_format(e), ENG_PAIR_SEP_SEP);
    int n_ctx = eng_encoder_n_ctx(e);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_ctx * 2), *types = ids + n_ctx;
    int c = eng_rerank_pair(e, v, "a", 1, "b", 1, ids, types, NULL, &err);
    EXPECT_EQ_INT(c, 6);
    if (c == 6) {
        EXPECT_EQ_INT(ids[0], 101);
        EXPECT_EQ_INT(ids[2], 102);
        EXPECT_EQ_INT(ids[3], 102);
        EXPECT_EQ_INT(ids[5], 102);
        for (int i = 0; i < c; i++)
            EXPECT_EQ_INT(types[i], 0);
    }
    free(ids);
    tok_close(v);
    eng_encoder_close(e);
    /* a format Cairn does not know is an error naming the file and the key */
    mp = make_reranker("rr-bad", "cls-first");
    if (!mp)
        return;
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, NULL, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "rr-bad.gguf");
    EXPECT_CONTAINS(err.msg, "cairn.rerank.pair_format");
}

TEST(rerank_refuses_an_embedding_model)
{
    const char *mp = test_tiny_bert();
    if (!mp)
        return;
    eng_encoder *e = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, NULL, &err), CN_OK);
    if (!e)
        return;
    EXPECT(!eng_encoder_is_reranker(e));
    int32_t ids[3] = {101, 2000, 102};
    const int32_t *p[1] = {ids};
    int len = 3;
    float s;
    EXPECT_EQ_INT(eng_encoder_rerank(e, p, NULL, &len, 1, &s, &err), CN_EUNSUPPORTED);
    EXPECT_CONTAINS(err.msg, "not a reranker");
    EXPECT_CONTAINS(err.msg, "tiny-bert-f16.gguf");
    eng_encoder_close(e);
}

/* The other way round: a reranker given where an embedding model is wanted
** (`cairn embed -m`, `cairn add/index -e`) is refused by name. Before, its
** [CLS] vectors went into the library as if they were sentence embeddings. */
TEST(rerank_is_no_embedding_model)
{
    const char *mp = make_reranker("rr-as-embed", NULL);
    if (!mp)
        return;
    const char *bin = getenv("CAIRN_BIN") ? getenv("CAIRN_BIN") : "build/cairn";
    char cmd[2048], out[4096], err[4096];
    snprintf(cmd, sizeof cmd, "%s embed -m %s 'a pump'", bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 1);
    EXPECT_CONTAINS(err, "is a reranker (a cross-encoder), not an embedding model");
    snprintf(cmd, sizeof cmd,
             "d=%s/rr-lib && mkdir -p $d && echo 'The pump must be primed first.' > $d/p.txt && "
             "%s add --home $d/home -e %s $d/p.txt",
             test_tmpdir(), bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 1);
    EXPECT_CONTAINS(err, "rr-as-embed.gguf is a reranker");
}

/* Parse up to max numbers, one per line. */
static int read_scores(const char *txt, double *out, int max)
{
    int n = 0;
    char *end;
    for (const char *p = txt; n < max && *p;) {
        out[n] = strtod(p, &end);
        if (end == p || *end != '\n')
            return -1;
        n++;
        p = end + 1;
    }
    return n;
}

TEST(rerank_cli)
{
    const char *mp = make_reranker("rr-cli", NULL);
    if (!mp)
        return;
    const char *bin = getenv("CAIRN_BIN") ? getenv("CAIRN_BIN") : "build/cairn";
    char cmd[2048], out[4096], err[4096];
    /* one raw score per document, in input order: reversing the documents
    ** reverses the scores */
    snprintf(cmd, sizeof cmd, "%s rerank -m %s -t 1 'cancel a print job' 'lprm removes jobs' "
             "'the sky is blue' -- '-x'", bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 0);
    double fwd[4], rev[4];
    EXPECT_EQ_INT(read_scores(out, fwd, 4), 3);
    snprintf(cmd, sizeof cmd, "%s rerank -m %s 'cancel a print job' -- '-x' 'the sky is blue' "
             "'lprm removes jobs'", bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 0);
    EXPECT_EQ_INT(read_scores(out, rev, 4), 3);
    for (int i = 0; i < 3; i++)
        EXPECT_NEAR(fwd[i], rev[2 - i], 1e-6);
    EXPECT(fwd[0] != fwd[1] && fwd[1] != fwd[2]);
    /* --json: every index once, best first, the same scores */
    snprintf(cmd, sizeof cmd, "%s rerank -m %s --json 'cancel a print job' 'lprm removes jobs' "
             "'the sky is blue' -- '-x'", bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    EXPECT(j != NULL);
    json_t *res = json_object_get(j, "results");
    EXPECT_STR(json_string_value(json_object_get(j, "model")), mp);
    EXPECT_EQ_INT(json_array_size(res), 3);
    int seen = 0;
    double prev = INFINITY;
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_t *it = json_array_get(res, i);
        int idx = (int)json_integer_value(json_object_get(it, "index"));
        double s = json_real_value(json_object_get(it, "relevance_score"));
        EXPECT(idx >= 0 && idx < 3);
        if (idx < 0 || idx >= 3)
            continue;
        seen |= 1 << idx;
        EXPECT_NEAR(s, fwd[idx], 1e-6);
        EXPECT(s <= prev);
        prev = s;
    }
    EXPECT_EQ_INT(seen, 7);
    json_decref(j);
    /* an embedding model has no classification head: refused, naming the file */
    const char *emb = test_tiny_bert();
    if (emb) {
        snprintf(cmd, sizeof cmd, "%s rerank -m %s q d", bin, emb);
        EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 1);
        EXPECT_CONTAINS(err, "is not a reranker");
        EXPECT_CONTAINS(err, emb);
    }
    /* a query without documents is a usage error */
    snprintf(cmd, sizeof cmd, "%s rerank -m %s q", bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 2);
    snprintf(cmd, sizeof cmd, "%s rerank -m %s --pair-format other q d", bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 2);
    EXPECT_CONTAINS(err, "--pair-format other");
}

/* `cairn search --rerank`: the candidates come back best first by the
** reranker's score, each the score `cairn rerank` gives that passage; -k
** keeps the best k of the 30 candidates; `cairn ask --rerank` answers from
** the best of them. */
TEST(rerank_search_cli)
{
    const char *mp = make_reranker("rr-search", NULL);
    if (!mp)
        return;
    const char *bin = getenv("CAIRN_BIN") ? getenv("CAIRN_BIN") : "build/cairn";
    const char *t = test_tmpdir();
    char cmd[4096], out[16384], err[4096];
    snprintf(cmd, sizeof cmd,
             "export CAIRN_HOME=%s/rr-home; rm -rf %s/rr-docs $CAIRN_HOME; mkdir -p %s/rr-docs && "
             "printf 'The printer queue is emptied with lprm.\\n' > %s/rr-docs/a.txt && "
             "printf 'A printer driver is installed with lpadmin.\\n' > %s/rr-docs/b.txt && "
             "printf 'The printer prints on both sides of the sheet.\\n' > %s/rr-docs/c.txt && "
             "%s add %s/rr-docs >/dev/null 2>&1 && %s search --json -k 3 --rerank %s printer",
             t, t, t, t, t, t, bin, t, bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 0);
    json_error_t je;
    json_t *arr = json_loads(out, 0, &je);
    EXPECT(json_is_array(arr));
    EXPECT_EQ_INT(json_array_size(arr), 3);
    double prev = INFINITY, best = NAN;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *it = json_array_get(arr, i);
        const char *text = json_string_value(json_object_get(it, "text"));
        if (i == 0)
            best = json_real_value(json_object_get(it, "score"));
        double s = json_real_value(json_object_get(it, "score"));
        EXPECT(text != NULL);
        if (!text)
            continue;
        EXPECT(s <= prev);
        prev = s;
        /* the same score as the reranker gives the passage on its own */
        char one[2048], o1[256], e1[1024];
        snprintf(one, sizeof one, "%s rerank -m %s printer -- '%s'", bin, mp, text);
        EXPECT_EQ_INT(test_shell(one, o1, sizeof o1, e1, sizeof e1), 0);
        EXPECT_NEAR(s, strtod(o1, NULL), 1e-5);
    }
    json_decref(arr);
    /* -k 1: the best of them */
    snprintf(cmd, sizeof cmd, "CAIRN_HOME=%s/rr-home %s search --json -k 1 --rerank %s printer",
             t, bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 0);
    arr = json_loads(out, 0, &je);
    EXPECT_EQ_INT(json_array_size(arr), 1);
    EXPECT_NEAR(json_real_value(json_object_get(json_array_get(arr, 0), "score")), best, 1e-6);
    char best_text[1024];
    snprintf(best_text, sizeof best_text, "%s",
             json_string_value(json_object_get(json_array_get(arr, 0), "text")) ?: "");
    json_decref(arr);
    /* `cairn ask --rerank` answers from the same best passage */
    snprintf(cmd, sizeof cmd, "CAIRN_HOME=%s/rr-home %s ask --json -k 1 --rerank %s printer", t,
             bin, mp);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 0);
    json_t *ans = json_loads(out, 0, &je);
    EXPECT_STR(json_string_value(json_object_get(ans, "search")), "keyword + rerank");
    json_t *srcs = json_object_get(ans, "sources");
    EXPECT_EQ_INT(json_array_size(srcs), 1);
    EXPECT_STR(json_string_value(json_object_get(json_array_get(srcs, 0), "text")) ?: "",
               best_text);
    json_decref(ans);
    /* an embedding model is not a reranker */
    const char *emb = test_tiny_bert();
    if (emb) {
        snprintf(cmd, sizeof cmd, "CAIRN_HOME=%s/rr-home %s search --rerank %s printer", t, bin,
                 emb);
        EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, err, sizeof err), 1);
        EXPECT_CONTAINS(err, "is not a reranker");
    }
}
