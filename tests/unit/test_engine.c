/*
** Engine correctness against llama.cpp: last-position logits (cosine
** similarity and argmax) and greedy continuations, for every fixture model
** and prompt, with F32 and F16 KV caches.
*/
#include "test.h"
#include "engine/engine.h"

#include <jansson.h>
#include <unistd.h>

typedef struct fixture_model {
    const char *name;
    bool local;      /* in tests/data (always present) or in the shared fixtures (the
                     ** 128k-token vocabularies make these 25-28 MB: too large for the repo) */
    bool quantized;  /* any matrix quantized: activations are too, looser tolerance */
} fixture_model;

static const fixture_model models[] = {
    {"aidreams260K", true, false},
    {"stories260K-rvspoc", true, false},
    {"tiny-llama-q8_0", false, true},
    {"tiny-llama-256-q4_k_m", false, true},
    {"tiny-qwen2-f32", false, true}, /* the tied embedding table is Q8_0 */
    {"tiny-qwen2-256-q4_k_m", false, true},
};

static const char *const prompts[] = {"p1_prose", "p2_code", "p3_numbers", "p4_unicode",
                                      "p5_long", "p6_oneword"};

static const char *model_path(const fixture_model *fm)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "models/%s.gguf", fm->name);
    if (fm->local)
        return test_data(buf);
    return test_fixture(buf);
}

static const char *vec_path(const fixture_model *fm, const char *kv, const char *file)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    char rel[512];
    snprintf(rel, sizeof rel, "vectors/%s/%s%s", fm->name, kv, file);
    if (fm->local) {
        snprintf(p, 512, "%s", test_data(rel));
        return access(p, R_OK) == 0 ? p : NULL;
    }
    const char *f = test_fixture(rel);
    if (!f)
        return NULL;
    snprintf(p, 512, "%s", f);
    return p;
}

/* Check one model against one prompt's reference. The model is present, so
** its reference files must be too: a missing one is a failure. */
static bool check_prompt(eng_model *m, const fixture_model *fm, const char *prompt, bool kv16,
                         int greedy_steps, double *worst_cos)
{
    char file[128];
    const char *kvdir = kv16 ? "kvf16/" : "";
    snprintf(file, sizeof file, "%s.json", prompt);
    const char *jp = vec_path(fm, kvdir, file);
    snprintf(file, sizeof file, "%s.logits.f32", prompt);
    const char *lp = vec_path(fm, kvdir, file);
    if (!jp || !lp) {
        test_fail_at(__FILE__, __LINE__, "%s: reference %s%s.json or .logits.f32 missing",
                     fm->name, kvdir, prompt);
        return false;
    }
    json_error_t je;
    json_t *j = json_load_file(jp, 0, &je);
    EXPECT(j != NULL);
    if (!j)
        return false;
    json_t *jids = json_object_get(j, "prompt_ids");
    int n = (int)json_array_size(jids);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n + 64));
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(jids, (size_t)i));

    const eng_hparams *hp = eng_model_hparams(m);
    cn_err e = {0};
    eng_model_reset(m);
    int rc = eng_decode(m, ids, n, 0, &e);
    EXPECT_EQ_INT(rc, CN_OK);
    char *ref_bytes;
    size_t ref_len;
    EXPECT_EQ_INT(cn_read_file(lp, 64 << 20, &ref_bytes, &ref_len, &e), CN_OK);
    EXPECT_EQ_INT(ref_len, (size_t)hp->n_vocab * 4);
    const float *ref = (const float *)ref_bytes;
    const float *got = eng_model_logits(m);
    double cos = test_cosine(got, ref, hp->n_vocab);
    double need = fm->quantized ? 0.9999 : 0.99999;
    if (cos < *worst_cos)
        *worst_cos = cos;
    if (!(cos >= need))
        test_fail_at(__FILE__, __LINE__, "%s %s%s: cosine %.7f < %g", fm->name, kvdir, prompt,
                     cos, need);
    // argmax must agree where the reference's top two are clearly apart
    json_t *t5 = json_object_get(json_object_get(j, "last_logits"), "top5_vals");
    double gap = json_real_value(json_array_get(t5, 0)) - json_real_value(json_array_get(t5, 1));
    int ref_arg = (int)json_integer_value(json_object_get(json_object_get(j, "last_logits"),
                                                          "argmax"));
    if (gap > (fm->quantized ? 2e-2 : 1e-3) && eng_argmax(got, hp->n_vocab) != ref_arg)
        test_fail_at(__FILE__, __LINE__, "%s %s%s: argmax %d, reference %d (gap %g)", fm->name,
                     kvdir, prompt, eng_argmax(got, hp->n_vocab), ref_arg, gap);

    // greedy continuation, free-running, compared while the reference is unambiguous:
    // its top two must be further apart than our logit noise (F32: 1e-3; quantized:
    // 2e-2, the largest difference measured, from activation rounding flips)
    double tol = fm->quantized ? 2e-2 : 1e-3;
    json_t *steps = json_object_get(j, "greedy_steps");
    int n_steps = CN_MIN((int)json_array_size(steps), greedy_steps);
    int pos = n;
    for (int s = 0; s < n_steps; s++) {
        json_t *st = json_array_get(steps, (size_t)s);
        int want = (int)json_integer_value(json_object_get(st, "id"));
        json_t *tv = json_object_get(st, "top5_vals");
        double g = json_real_value(json_array_get(tv, 0)) - json_real_value(json_array_get(tv, 1));
        int have = eng_argmax(eng_model_logits(m), hp->n_vocab);
        if (have != want) {
            if (g > tol)
                test_fail_at(__FILE__, __LINE__, "%s %s%s: greedy step %d: %d, reference %d "
                             "(gap %g)", fm->name, kvdir, prompt, s, have, want, g);
            break; /* a legitimate flip: the rest is no longer comparable */
        }
        if (s + 1 < n_steps && eng_decode(m, &have, 1, pos++, &e) != CN_OK) {
            test_fail_at(__FILE__, __LINE__, "decode failed: %s", e.msg);
            break;
        }
    }
    free(ref_bytes);
    free(ids);
    json_decref(j);
    return true;
}

static void check_model(const fixture_model *fm, bool kv16, int greedy_steps)
{
    const char *path = model_path(fm);
    if (!path) {
        char why[512];
        snprintf(why, sizeof why, "needs the shared fixture %s/models/%s.gguf (set CAIRN_FIXTURES)",
                 test_fixtures(), fm->name);
        SKIP(why);
    }
    eng_model *m;
    cn_err e = {0};
    eng_opts o = {.n_ctx = 1024, .n_threads = 2, .kv_f32 = !kv16};
    int rc = eng_model_open(&m, path, &o, &e);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    int checked = 0;
    double worst = 1;
    for (size_t p = 0; p < CN_ARRAY_LEN(prompts); p++)
        checked += check_prompt(m, fm, prompts[p], kv16, greedy_steps, &worst);
    EXPECT_EQ_INT(checked, (int)CN_ARRAY_LEN(prompts));
    printf("     %s%s: %d prompts, worst cosine %.8f\n", fm->name, kv16 ? " (F16 KV)" : "",
           checked, worst);
    eng_model_close(m);
}

#define MODEL_TESTS(idx, id)                                                                       \
    TEST(engine_matches_llamacpp_##id) { check_model(&models[idx], false, 32); }                   \
    TEST(engine_matches_llamacpp_kvf16_##id) { check_model(&models[idx], true, 8); }

MODEL_TESTS(0, aidreams260K)
MODEL_TESTS(1, stories260K)
MODEL_TESTS(2, tiny_llama_q8_0)
MODEL_TESTS(3, tiny_llama_q4_k_m)
MODEL_TESTS(4, tiny_qwen2_f32)
MODEL_TESTS(5, tiny_qwen2_q4_k_m)
