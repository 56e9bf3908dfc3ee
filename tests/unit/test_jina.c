/*
** jina-bert-v2 encoders (jina-reranker-v1): ALiBi instead of a position
** table, the gated GELU feed-forward, the optional q/k and second attention
** LayerNorms, the one-logit head. Random-weight models made by mkmodel in the
** real tensor names are scored and compared with llama.cpp b4747's scores
** for the very same bytes (tests/data/vectors/jina-rr and jina-rr-qk, made by
** tools/llamacpp_rerank_ref.cpp).
*/
#include "test.h"
#include "engine/engine_int.h"
#include "rerank_fixture.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>

/* mkmodel with the exact options the reference was made with (the JSON's
** model_command; "build/mkmodel", the vocabulary and the output adjusted). */
static const char *make_jina(const char *name, const char *type, const char *extra)
{
    static char path[4][600];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, 600, "%s/%s.gguf", test_tmpdir(), name);
    const char *tools = getenv("CAIRN_TOOLS");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s/mkmodel --arch jina-bert-v2 --n-layer 2 --n-embd 96 --n-head 6 --n-head-kv 6 "
             "--n-ff 256 --ctx 512 --type %s %s --pre jina-v1-en --tokenizer %s -o %s 2>&1",
             tools && *tools ? tools : "build", type, extra, test_data("vocab/ggml-vocab-gpt-2.gguf"), p);
    char out[1024], err[1024];
    int rc = test_shell(cmd, out, sizeof out, err, sizeof err);
    if (rc != 0) {
        test_fail_at(__FILE__, __LINE__, "mkmodel failed (%d): %s%s", rc, out, err);
        return NULL;
    }
    return p;
}

static bool file_sha256(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[1 << 16], h[32];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(&st, buf, n);
    fclose(f);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, 32);
    return true;
}

/* Score every pair of the reference with Cairn: ids first (Cairn's pair
** layout must give llama.cpp's ids), then the scores of each query's
** documents packed in one batch, against llama.cpp's. */
static void check_against_llamacpp(const char *name, const char *type, const char *extra,
                                   double tol)
{
    char rel[128];
    snprintf(rel, sizeof rel, "vectors/%s/rerank.json", name);
    json_error_t je;
    json_t *root = json_load_file(test_data(rel), 0, &je);
    EXPECT(root != NULL);
    const char *mp = make_jina(name, type, extra);
    if (!root || !mp) {
        json_decref(root);
        return;
    }
    /* the reference belongs to these bytes: if mkmodel's output changed, the
    ** comparison would be meaningless, so that is a failure of its own */
    char hex[65] = "";
    EXPECT(file_sha256(mp, hex));
    const char *want_sha = json_string_value(json_object_get(root, "model_sha256"));
    if (!want_sha || strcmp(hex, want_sha)) {
        test_fail_at(__FILE__, __LINE__, "%s: mkmodel wrote sha256 %s, the reference was made "
                     "on %s: regenerate it (see model_command and made_by in %s)",
                     name, hex, want_sha ? want_sha : "?", rel);
        json_decref(root);
        return;
    }
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    cn_err err = {0};
    eng_opts o = {.n_threads = 2};
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, &o, &err), CN_OK);
    if (e)
        EXPECT_EQ_INT(tok_open(&v, eng_encoder_gguf(e), &err), CN_OK);
    if (!e || !v) {
        fprintf(stderr, "  %s\n", err.msg);
        goto done;
    }
    /* no pooling key, a one-logit classifier: a reranker, which reads pairs
    ** as RoBERTa does, all in segment 0 */
    EXPECT(eng_encoder_is_reranker(e));
    EXPECT_EQ_INT(eng_encoder_expect(e, true, &err), CN_OK);
    EXPECT_EQ_INT(eng_encoder_pair_format(e), ENG_PAIR_SEP_SEP);
    EXPECT_EQ_INT(eng_encoder_n_types(e), 2);

    json_t *items = json_object_get(root, "items");
    EXPECT_EQ_INT((int)json_array_size(items), 20);
    rr_report r;
    rr_compare(e, v, items, false, &r);
    printf("     %s: %d pairs, ids differing %d, max abs diff %.3g (rel %.3g); the scores of one "
           "query's documents spread over %.3g\n", name, r.n, r.id_mismatch, r.worst_abs,
           r.worst_rel, r.spread);
    EXPECT_EQ_INT(r.id_mismatch, 0);
    /* F32 weights, GELU through the same F16 table as ggml: the fixtures
    ** README's 1e-4 relative; Q8_0 with activations quantized as ggml does,
    ** the same. The documents' scores differ by ~1e-3 (random weights) and
    ** a missing or wrong part of a layer moves them by 1e-3 or more. */
    EXPECT(r.worst_rel <= tol);
done:
    tok_close(v);
    eng_encoder_close(e);
    json_decref(root);
}

TEST(jina_rerank_matches_llamacpp) { check_against_llamacpp("jina-rr", "f32", "--rerank", 1e-4); }

TEST(jina_rerank_qk_norm_matches_llamacpp)
{
    check_against_llamacpp("jina-rr-qk", "f32", "--rerank --qk-norm", 1e-4);
}

TEST(jina_rerank_q8_0_matches_llamacpp)
{
    check_against_llamacpp("jina-rr-q8_0", "q8_0", "--rerank", 1e-4);
}

/* Without a head a jina-bert-v2 file is an embedding model (Jina's
** embeddings v2): it embeds, and is refused as a reranker by name. */
TEST(jina_embedding_and_refusals)
{
    const char *mp = make_jina("jina-emb", "f16", "");
    if (!mp)
        return;
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, NULL, &err), CN_OK);
    if (!e)
        return;
    EXPECT(!eng_encoder_is_reranker(e));
    EXPECT_EQ_INT(eng_encoder_pooling(e), ENG_POOL_MEAN);
    EXPECT_EQ_INT(eng_encoder_expect(e, true, &err), CN_EUNSUPPORTED);
    EXPECT(strstr(err.msg, "jina-bert-v2.pooling_type") != NULL);
    EXPECT_EQ_INT(tok_open(&v, eng_encoder_gguf(e), &err), CN_OK);
    const char *texts[] = {"a cat on a mat", "the stock market"};
    size_t lens[] = {strlen(texts[0]), strlen(texts[1])};
    int D = eng_encoder_dim(e);
    float *out = malloc(sizeof(float) * (size_t)D * 2);
    EXPECT_EQ_INT(eng_embed_texts(e, v, texts, lens, 2, out, NULL, &err), CN_OK);
    double nn = 0;
    for (int i = 0; i < D; i++)
        nn += (double)out[i] * out[i];
    EXPECT_NEAR(nn, 1.0, 1e-5);
    EXPECT(test_cosine(out, out + D, D) < 0.99999);
    free(out);
    tok_close(v);
    eng_encoder_close(e);
}

/* An XLM-RoBERTa reranker (bge-reranker-v2-m3) converts to architecture
** "bert" with a SentencePiece-unigram ("t5") tokenizer: its weights load like
** a BERT's, but it is refused when its tokenizer is opened, with the tokenizer
** named, by the API and by `cairn rerank`. */
TEST(rerank_refuses_t5_tokenizer_by_name)
{
    char vocab[600], model[600];
    snprintf(vocab, sizeof vocab, "%s/t5-vocab.gguf", test_tmpdir());
    snprintf(model, sizeof model, "%s/xlmr-rr.gguf", test_tmpdir());
    gguf_writer *w;
    cn_err err = {0};
    EXPECT_EQ_INT(gguf_writer_new(&w, &err), CN_OK);
    gguf_w_str(w, "general.architecture", "bert");
    gguf_w_str(w, "tokenizer.ggml.model", "t5");
    gguf_str toks[4] = {{"<s>", 3}, {"<pad>", 5}, {"</s>", 4}, {"\xe2\x96\x81" "a", 4}};
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    EXPECT_EQ_INT(gguf_writer_begin(w, vocab, &err), CN_OK);
    EXPECT_EQ_INT(gguf_writer_finish(w, &err), CN_OK);
    gguf_writer_free(w);
    const char *tools = getenv("CAIRN_TOOLS"), *bin = getenv("CAIRN_BIN");
    char cmd[2048], out[2048], er[2048];
    snprintf(cmd, sizeof cmd,
             "%s/mkmodel --shape minilm --n-layer 1 --n-embd 32 --n-head 2 --n-head-kv 2 "
             "--n-ff 64 --type f32 --rerank --tokenizer %s -o %s 2>&1",
             tools && *tools ? tools : "build", vocab, model);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, er, sizeof er), 0);
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    EXPECT_EQ_INT(eng_encoder_open(&e, model, NULL, &err), CN_OK);
    if (!e)
        return;
    EXPECT(eng_encoder_is_reranker(e));
    EXPECT_EQ_INT(tok_open(&v, eng_encoder_gguf(e), &err), CN_EUNSUPPORTED);
    EXPECT(v == NULL);
    EXPECT(strstr(err.msg, "unknown tokenizer model 't5'") != NULL);
    EXPECT(strstr(err.msg, "XLM-RoBERTa") != NULL);
    eng_encoder_close(e);
    snprintf(cmd, sizeof cmd, "%s rerank -m %s 'a query' 'a document'",
             bin && *bin ? bin : "build/cairn", model);
    EXPECT_EQ_INT(test_shell(cmd, out, sizeof out, er, sizeof er), 1);
    EXPECT(strstr(er, "tokenizer model 't5'") != NULL);
}
