/*
** BERT encoder against llama.cpp's embeddings of the fixture sentences, and
** batching invariance.
*/
#include "test.h"
#include "engine/engine.h"

#include <jansson.h>

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

typedef struct fixture {
    json_t *root;
    int n;
    int32_t *ids[16];
    int lens[16];
} fixture;

static bool load_fixture(const char *name, fixture *f)
{
    char rel[256];
    snprintf(rel, sizeof rel, "vectors/%s/embeddings.json", name);
    const char *p = test_fixture(rel);
    if (!p)
        return false;
    json_error_t je;
    f->root = json_load_file(p, 0, &je);
    if (!f->root)
        return false;
    json_t *items = json_object_get(f->root, "items");
    f->n = (int)CN_MIN(json_array_size(items), 16);
    for (int i = 0; i < f->n; i++) {
        json_t *ids = json_object_get(json_array_get(items, (size_t)i), "ids");
        f->lens[i] = (int)json_array_size(ids);
        f->ids[i] = malloc(sizeof(int32_t) * (size_t)f->lens[i]);
        for (int k = 0; k < f->lens[i]; k++)
            f->ids[i][k] = (int32_t)json_integer_value(json_array_get(ids, (size_t)k));
    }
    return true;
}

static void free_fixture(fixture *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->ids[i]);
    json_decref(f->root);
}

static void check_bert(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    const char *mp = test_fixture(rel);
    fixture f;
    if (!mp || !load_fixture(name, &f))
        SKIP("shared BERT fixture not found (set CAIRN_FIXTURES)");
    eng_encoder *e;
    cn_err err = {0};
    eng_opts o = {.n_threads = 2};
    int rc = eng_encoder_open(&e, mp, &o, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        free_fixture(&f);
        return;
    }
    int D = eng_encoder_dim(e);
    EXPECT_EQ_INT(D, 128);
    float *all = malloc(sizeof(float) * (size_t)(D * f.n));
    EXPECT_EQ_INT(eng_encoder_embed(e, (const int32_t *const *)f.ids, f.lens, f.n, all, &err),
                  CN_OK);
    json_t *items = json_object_get(f.root, "items");
    double worst = 1, worst_batch = 1;
    for (int i = 0; i < f.n; i++) {
        json_t *ref = json_object_get(json_array_get(items, (size_t)i), "embedding");
        float r[128];
        for (int d = 0; d < D; d++)
            r[d] = (float)json_real_value(json_array_get(ref, (size_t)d));
        double c = cosine(all + (size_t)i * D, r, D);
        worst = fmin(worst, c);
        /* one at a time: the same vector */
        float one[128];
        const int32_t *ids1[1] = {f.ids[i]};
        eng_encoder_embed(e, ids1, &f.lens[i], 1, one, &err);
        worst_batch = fmin(worst_batch, cosine(one, all + (size_t)i * D, D));
        double norm = 0;
        for (int d = 0; d < D; d++)
            norm += (double)one[d] * one[d];
        EXPECT_NEAR(norm, 1.0, 1e-5);
    }
    printf("     %s: %d sentences, worst cosine %.8f, batched vs single %.8f\n", name, f.n, worst,
           worst_batch);
    EXPECT(worst >= 0.9999);
    EXPECT(worst_batch >= 0.99999);
    free(all);
    free_fixture(&f);
    eng_encoder_close(e);
}

TEST(bert_matches_llamacpp_f32) { check_bert("tiny-bert-f32"); }
TEST(bert_matches_llamacpp_f16) { check_bert("tiny-bert-f16"); }

TEST(bert_rejects_bad_input)
{
    const char *mp = test_fixture("models/tiny-bert-f16.gguf");
    if (!mp)
        SKIP("shared BERT fixture not found");
    eng_encoder *e;
    cn_err err = {0};
    EXPECT_EQ_INT(eng_encoder_open(&e, mp, NULL, &err), CN_OK);
    if (!e)
        return;
    int32_t ids[3] = {101, 99999999, 102};
    const int32_t *p[1] = {ids};
    int len = 3;
    float out[128];
    EXPECT_EQ_INT(eng_encoder_embed(e, p, &len, 1, out, &err), CN_EINVAL);
    EXPECT_CONTAINS(err.msg, "outside the vocabulary");
    len = 0;
    EXPECT_EQ_INT(eng_encoder_embed(e, p, &len, 1, out, &err), CN_EINVAL);
    len = 513;
    EXPECT_EQ_INT(eng_encoder_embed(e, p, &len, 1, out, &err), CN_EINVAL);
    eng_encoder_close(e);
    /* a decoder is not an encoder */
    EXPECT_EQ_INT(eng_encoder_open(&e, test_data("models/aidreams260K.gguf"), NULL, &err),
                  CN_EUNSUPPORTED);
    EXPECT_CONTAINS(err.msg, "not an embedding model");
}
