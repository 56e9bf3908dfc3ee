/*
** Unit tests for src/tok: llama.cpp's own tokenizer test strings, the prompt
** ids of the reference fixtures, special-token parsing, pieces and the
** streaming decoder, invalid UTF-8, and hostile metadata.
*/
#include "test.h"
#include "tok/tok.h"

#include <jansson.h>

/* ---- helpers ------------------------------------------------------------- */

typedef struct vocab_file {
    gguf_file *g;
    tok_vocab *v;
} vocab_file;

static bool open_vocab(vocab_file *f, const char *path)
{
    cn_err e = {0};
    f->g = NULL;
    f->v = NULL;
    if (gguf_open(&f->g, path, &e) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", e.msg);
        return false;
    }
    if (tok_open(&f->v, f->g, &e) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", e.msg);
        gguf_close(f->g);
        f->g = NULL;
        return false;
    }
    return true;
}

static void close_vocab(vocab_file *f)
{
    tok_close(f->v);
    gguf_close(f->g);
}

/* Encode into a malloc'd array; returns the count or a negative code. */
static int encode(const tok_vocab *v, const char *s, size_t n, bool add_special, bool parse_special,
                  int32_t **ids)
{
    cn_err e = {0};
    int k = tok_encode(v, s, n, add_special, parse_special, NULL, 0, &e);
    *ids = NULL;
    if (k < 0)
        return k;
    *ids = malloc(((size_t)k + 1) * sizeof **ids);
    int k2 = tok_encode(v, s, n, add_special, parse_special, *ids, k, &e);
    if (k2 != k)
        test_fail_at(__FILE__, __LINE__, "second encode gave %d, first %d", k2, k);
    return k;
}

static void format_ids(char *buf, size_t cap, const int32_t *ids, int n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k + 16 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? " " : "", ids[i]);
}

/* Concatenated pieces of ids. */
__attribute__((unused)) static char *decode(const tok_vocab *v, const int32_t *ids, int n, bool special, size_t *len)
{
    size_t cap = 64, k = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        int m = tok_piece(v, ids[i], special, NULL, 0);
        if (m < 0) {
            test_fail_at(__FILE__, __LINE__, "tok_piece(%d) = %d", ids[i], m);
            continue;
        }
        while (k + (size_t)m + 1 > cap)
            s = realloc(s, cap *= 2);
        int m2 = tok_piece(v, ids[i], special, s + k, m);
        if (m2 != m)
            test_fail_at(__FILE__, __LINE__, "tok_piece(%d) wrote %d, said %d", ids[i], m2, m);
        k += (size_t)m;
    }
    s[k] = '\0';
    *len = k;
    return s;
}

/* ---- llama.cpp's vocab test strings ------------------------------------- */

/*
** Every string of NAME.gguf.inp must encode (no specials added, none parsed)
** to the ids on its line of NAME.gguf.out. Prints how many matched.
*/
static void check_vocab_strings(const char *name, const char *model_path)
{
    char rel[256];
    char *inp = NULL, *outp = NULL;
    size_t inp_len, out_len;
    cn_err e = {0};
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    if (cn_read_file(test_data(rel), 1 << 20, &inp, &inp_len, &e) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    if (cn_read_file(test_data(rel), 1 << 20, &outp, &out_len, &e) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", e.msg);
        free(inp);
        return;
    }
    vocab_file f;
    if (!open_vocab(&f, model_path)) {
        free(inp);
        free(outp);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *end = inp + inp_len;
    char *line = outp, *save = NULL;
    int n_tests = 0, n_ok = 0;
    while (p < end) {
        const char *q = strstr(p, sep);
        if (!q)
            break;
        /* the expected ids: one line of the .out file, possibly empty */
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        int32_t want[4096];
        int n_want = 0;
        for (char *t = strtok_r(line, " ", &save); t && n_want < 4096; t = strtok_r(NULL, " ", &save))
            want[n_want++] = (int32_t)atoi(t);
        line = nl + 1;

        int32_t *got;
        int n_got = encode(f.v, p, (size_t)(q - p), false, false, &got);
        n_tests++;
        if (n_got == n_want && (n_got == 0 || memcmp(got, want, (size_t)n_got * 4) == 0)) {
            n_ok++;
        } else {
            char a[2048], b[2048];
            format_ids(a, sizeof a, got, n_got < 0 ? 0 : n_got);
            format_ids(b, sizeof b, want, n_want);
            test_fail_at(__FILE__, __LINE__, "%s: \"%.*s\"\n    got  [%s]\n    want [%s]", name,
                         (int)(q - p), p, a, b);
        }
        free(got);
        p = q + strlen(sep);
    }
    printf("     %s: %d/%d strings match\n", name, n_ok, n_tests);
    EXPECT(n_tests >= 40);
    close_vocab(&f);
    free(inp);
    free(outp);
}

TEST(tok_vocab_gpt2) { check_vocab_strings("gpt-2", test_data("vocab/ggml-vocab-gpt-2.gguf")); }
TEST(tok_vocab_llama_spm)
{
    check_vocab_strings("llama-spm", test_data("vocab/ggml-vocab-llama-spm.gguf"));
}
TEST(tok_vocab_phi3) { check_vocab_strings("phi-3", test_data("vocab/ggml-vocab-phi-3.gguf")); }

TEST(tok_vocab_llama_bpe)
{
    const char *m = test_fixture("models/tiny-llama-q8_0.gguf");
    if (!m)
        SKIP("fixture models/tiny-llama-q8_0.gguf not found");
    check_vocab_strings("llama-bpe", m);
}

TEST(tok_vocab_qwen2)
{
    const char *m = test_fixture("models/tiny-qwen2-f32.gguf");
    if (!m)
        SKIP("fixture models/tiny-qwen2-f32.gguf not found");
    check_vocab_strings("qwen2", m);
}

TEST(tok_vocab_bert_bge)
{
    gguf_file *g;
    tok_vocab *v = NULL;
    cn_err e = {0};
    if (gguf_open(&g, test_data("vocab/ggml-vocab-bert-bge.gguf"), &e) != CN_OK)
        SKIP("ggml-vocab-bert-bge.gguf not readable");
    int rc = tok_open(&v, g, &e);
    gguf_close(g);
    EXPECT_EQ_INT(rc, CN_EUNSUPPORTED);
    EXPECT_CONTAINS(e.msg, "WordPiece");
    SKIP("WordPiece (bert) tokenizer not implemented yet");
}

/* ---- prompt ids of the reference fixtures ------------------------------ */

static const char *const prompts[] = {"p1_prose", "p2_code", "p3_numbers",
                                      "p4_unicode", "p5_long", "p6_oneword"};

/* For each prompt: encode with specials added and parsed, compare with
** prompt_ids; then decode gen_ids piece by piece against gen_pieces_bytes. */
static void check_model_vectors(const char *model_path, const char *vec_dir)
{
    vocab_file f;
    if (!open_vocab(&f, model_path))
        return;
    for (size_t i = 0; i < CN_ARRAY_LEN(prompts); i++) {
        char path[1024], rel[128];
        char *text;
        size_t len;
        cn_err e = {0};
        snprintf(rel, sizeof rel, "prompts/%s.txt", prompts[i]);
        if (cn_read_file(test_data(rel), 1 << 20, &text, &len, &e) != CN_OK) {
            test_fail_at(__FILE__, __LINE__, "%s", e.msg);
            continue;
        }
        snprintf(path, sizeof path, "%s/%s.json", vec_dir, prompts[i]);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        if (!j) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", path, je.text);
            free(text);
            continue;
        }
        json_t *want = json_object_get(j, "prompt_ids");
        int32_t *got;
        int n = encode(f.v, text, len, true, true, &got);
        bool same = json_is_array(want) && (size_t)n == json_array_size(want);
        for (int k = 0; same && k < n; k++)
            same = json_integer_value(json_array_get(want, (size_t)k)) == got[k];
        if (!same) {
            char a[4096];
            format_ids(a, sizeof a, got, n < 0 ? 0 : n);
            char *w = json_dumps(want, JSON_COMPACT);
            test_fail_at(__FILE__, __LINE__, "%s %s:\n    got  [%s]\n    want %s", model_path,
                         prompts[i], a, w);
            free(w);
        }
        free(got);

        /* pieces of the generated ids, byte for byte */
        json_t *gen = json_object_get(j, "gen_ids"), *pieces = json_object_get(j, "gen_pieces_bytes");
        for (size_t k = 0; k < json_array_size(gen); k++) {
            int32_t id = (int32_t)json_integer_value(json_array_get(gen, k));
            json_t *bytes = json_array_get(pieces, k);
            char buf[512];
            int m = tok_piece(f.v, id, true, buf, sizeof buf);
            bool ok = m >= 0 && (size_t)m == json_array_size(bytes);
            for (int b = 0; ok && b < m; b++)
                ok = json_integer_value(json_array_get(bytes, (size_t)b)) == (unsigned char)buf[b];
            if (!ok)
                test_fail_at(__FILE__, __LINE__, "%s %s: piece of gen id %d differs", model_path,
                             prompts[i], id);
        }
        json_decref(j);
        free(text);
    }
    close_vocab(&f);
}

TEST(tok_prompts_aidreams)
{
    check_model_vectors(test_data("models/aidreams260K.gguf"), test_data("vectors/aidreams260K"));
}

TEST(tok_prompts_stories)
{
    check_model_vectors(test_data("models/stories260K-rvspoc.gguf"),
                        test_data("vectors/stories260K-rvspoc"));
}

static void check_fixture_model(const char *name)
{
    char rel[256], dir[1024];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    const char *m = test_fixture(rel);
    snprintf(rel, sizeof rel, "vectors/%s/p1_prose.json", name);
    if (!m || !test_fixture(rel)) {
        char why[300];
        snprintf(why, sizeof why, "fixture %s or its vectors not found", name);
        test_skip(why);
        return;
    }
    snprintf(dir, sizeof dir, "%s/vectors/%s", test_fixtures(), name);
    check_model_vectors(m, dir);
}

TEST(tok_prompts_tiny_llama) { check_fixture_model("tiny-llama-q8_0"); }
TEST(tok_prompts_tiny_llama_256) { check_fixture_model("tiny-llama-256-q4_k_m"); }
TEST(tok_prompts_tiny_qwen2) { check_fixture_model("tiny-qwen2-f32"); }
TEST(tok_prompts_tiny_qwen2_256) { check_fixture_model("tiny-qwen2-256-q4_k_m"); }
