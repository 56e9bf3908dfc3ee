/* Unit tests for the GGUF reader and writer, including hostile files. */
#include "test.h"
#include "gguf/gguf.h"

#include <unistd.h>

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static char *slurp(const char *path, size_t *len)
{
    char *data;
    cn_err e;
    if (cn_read_file(path, 1 << 30, &data, len, &e))
        return NULL;
    return data;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

/* A one-tensor file: no metadata, tensor "w" [32, 2] F32 filled with i*0.5.
** Layout: header 24 bytes; tensor info at 24 (name len 8, name 1, n_dims 4,
** ne0 @37, ne1 @45, type @53, offset @57); data at 96, 256 bytes. */
static char *tiny_file(size_t *len)
{
    gguf_writer *w;
    cn_err e;
    gguf_writer_new(&w, &e);
    int64_t ne[2] = {32, 2};
    gguf_w_tensor(w, "w", GGML_F32, 2, ne);
    const char *p = tmp_path("tiny.gguf");
    gguf_writer_begin(w, p, &e);
    float v[64];
    for (int i = 0; i < 64; i++)
        v[i] = i * 0.5f;
    gguf_writer_data(w, v, sizeof v, &e);
    EXPECT_EQ_INT(gguf_writer_finish(w, &e), CN_OK);
    gguf_writer_free(w);
    return slurp(p, len);
}

/* Open an image from memory; return the code and leave the message in e. */
static int open_image(const void *img, size_t len, cn_err *e)
{
    gguf_file *f;
    int rc = gguf_open_buffer(&f, img, len, "bad.gguf", e);
    gguf_close(f);
    return rc;
}

TEST(gguf_reads_real_fixture)
{
    gguf_file *f;
    cn_err e = {0};
    int rc = gguf_open(&f, test_data("models/aidreams260K.gguf"), &e);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    EXPECT_EQ_INT(f->version, 3);
    EXPECT_EQ_INT(f->n_kv, 19);
    EXPECT_EQ_INT(f->n_tensors, 39);
    uint32_t n_embd = 0;
    EXPECT_EQ_INT(gguf_get_u32(f, "llama.embedding_length", &n_embd, &e), CN_OK);
    EXPECT_EQ_INT(n_embd, 64);
    float eps = 0;
    EXPECT_EQ_INT(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, &e), CN_OK);
    EXPECT_NEAR(eps, 1e-5, 1e-12);
    const gguf_value *toks;
    EXPECT_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_T_STRING, &toks, &e), CN_OK);
    EXPECT_EQ_INT(toks->arr.n, 512);
    EXPECT(gguf_str_eq(toks->arr.strs[1], "<s>"));
    const gguf_value *types;
    EXPECT_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_T_INT32, &types, &e), CN_OK);
    EXPECT_EQ_INT(gguf_arr_i64(types, 1), 3); /* <s> is a control token */
    /* a string asked for as a number names the key and both types */
    EXPECT_EQ_INT(gguf_get_u32(f, "general.architecture", &n_embd, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "general.architecture");
    EXPECT_CONTAINS(e.msg, "string");
    EXPECT_EQ_INT(gguf_get_u32(f, "no.such.key", &n_embd, &e), CN_ENOTFOUND);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    EXPECT(t != NULL);
    if (t) {
        EXPECT_EQ_INT(t->ne[0], 172);
        EXPECT_EQ_INT(t->ne[1], 64);
        EXPECT_EQ_INT(t->type, GGML_F32);
        EXPECT_EQ_INT(t->size, 172 * 64 * 4);
        EXPECT_EQ_INT(((uintptr_t)t->data - (uintptr_t)f->tensors[0].data) % 32, 0);
    }
    EXPECT(gguf_find_tensor(f, "blk.9.ffn_down.weight") == NULL);
    gguf_close(f);
}

TEST(gguf_writer_roundtrip_all_value_types)
{
    gguf_writer *w;
    cn_err e = {0};
    EXPECT_EQ_INT(gguf_writer_new(&w, &e), CN_OK);
    gguf_w_u32(w, "a.u32", 4000000000u);
    gguf_w_i32(w, "a.i32", -7);
    gguf_w_f32(w, "a.f32", 0.25f);
    gguf_w_bool(w, "a.bool", true);
    gguf_w_str(w, "a.str", "héllo");
    int16_t shorts[3] = {-1, 2, -3};
    gguf_w_arr(w, "a.arr_i16", GGUF_T_INT16, shorts, 3);
    double dbl[2] = {1.5, -2.5};
    gguf_w_arr(w, "a.arr_f64", GGUF_T_FLOAT64, dbl, 2);
    gguf_str strs[2] = {{"x", 1}, {"yz", 2}};
    gguf_w_arr_str(w, "a.arr_str", strs, 2);
    int64_t ne[1] = {64};
    gguf_w_tensor(w, "t.q8", GGML_Q8_0, 1, ne);
    const char *p = tmp_path("rt.gguf");
    EXPECT_EQ_INT(gguf_writer_begin(w, p, &e), CN_OK);
    char block[68] = {0};
    gguf_writer_data(w, block, sizeof block, &e);
    EXPECT_EQ_INT(gguf_writer_finish(w, &e), CN_OK);
    gguf_writer_free(w);

    /* copy every key into a second file with a nested array added: the
    ** copy must read back identically */
    gguf_file *f;
    EXPECT_EQ_INT(gguf_open(&f, p, &e), CN_OK);
    if (!f)
        return;
    gguf_writer_new(&w, &e);
    for (int64_t i = 0; i < f->n_kv; i++)
        gguf_w_copy(w, &f->kv[i]);
    gguf_value inner[2] = {
        {.type = GGUF_T_ARRAY, .arr = {.type = GGUF_T_INT16, .n = 3, .data = shorts}},
        {.type = GGUF_T_ARRAY, .arr = {.type = GGUF_T_STRING, .n = 2, .strs = strs}},
    };
    gguf_kv nested = {"a.nested",
                      {.type = GGUF_T_ARRAY, .arr = {.type = GGUF_T_ARRAY, .n = 2, .vals = inner}}};
    gguf_w_copy(w, &nested);
    const char *p2 = tmp_path("rt2.gguf");
    gguf_writer_begin(w, p2, &e);
    EXPECT_EQ_INT(gguf_writer_finish(w, &e), CN_OK);
    gguf_writer_free(w);
    gguf_close(f);

    EXPECT_EQ_INT(gguf_open(&f, p2, &e), CN_OK);
    if (!f)
        return;
    uint32_t u;
    int64_t i64;
    float fl;
    bool b;
    gguf_str s;
    const gguf_value *a;
    EXPECT_EQ_INT(gguf_get_u32(f, "a.u32", &u, &e), CN_OK);
    EXPECT_EQ_INT(u, 4000000000u);
    EXPECT_EQ_INT(gguf_get_i64(f, "a.i32", &i64, &e), CN_OK);
    EXPECT_EQ_INT(i64, -7);
    EXPECT_EQ_INT(gguf_get_u32(f, "a.i32", &u, &e), CN_EFORMAT); /* negative */
    EXPECT_EQ_INT(gguf_get_f32(f, "a.f32", &fl, &e), CN_OK);
    EXPECT_NEAR(fl, 0.25, 0);
    EXPECT_EQ_INT(gguf_get_bool(f, "a.bool", &b, &e), CN_OK);
    EXPECT(b);
    EXPECT_EQ_INT(gguf_get_str(f, "a.str", &s, &e), CN_OK);
    EXPECT(gguf_str_eq(s, "héllo"));
    EXPECT_EQ_INT(gguf_get_arr(f, "a.arr_i16", GGUF_T_INT16, &a, &e), CN_OK);
    EXPECT_EQ_INT(gguf_arr_i64(a, 2), -3);
    EXPECT_EQ_INT(gguf_get_arr(f, "a.arr_f64", GGUF_T_FLOAT64, &a, &e), CN_OK);
    EXPECT_NEAR(gguf_arr_f64(a, 1), -2.5, 0);
    EXPECT_EQ_INT(gguf_get_arr(f, "a.arr_str", GGUF_T_STRING, &a, &e), CN_OK);
    EXPECT(gguf_str_eq(a->arr.strs[1], "yz"));
    EXPECT_EQ_INT(gguf_get_arr(f, "a.nested", GGUF_T_ARRAY, &a, &e), CN_OK);
    EXPECT_EQ_INT(a->arr.n, 2);
    EXPECT_EQ_INT(gguf_arr_i64(&a->arr.vals[0], 1), 2);
    EXPECT(gguf_str_eq(a->arr.vals[1].arr.strs[0], "x"));
    EXPECT_EQ_INT(f->n_tensors, 0);
    gguf_close(f);
}

TEST(gguf_every_truncation_fails_cleanly)
{
    size_t len;
    char *img = tiny_file(&len);
    EXPECT(img != NULL);
    if (!img)
        return;
    cn_err e;
    EXPECT_EQ_INT(open_image(img, len, &e), CN_OK);
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        char *cut = malloc(n ? n : 1); /* exact size so ASan sees any overread */
        memcpy(cut, img, n);
        e.msg[0] = 0;
        if (open_image(cut, n, &e) == CN_OK || !strstr(e.msg, "bad.gguf"))
            bad++;
        free(cut);
    }
    EXPECT_EQ_INT(bad, 0);
    open_image(img, 60, &e);
    EXPECT_CONTAINS(e.msg, "truncated");
    open_image(img, len - 1, &e);
    EXPECT_CONTAINS(e.msg, "tensor 'w' extends past end of file");
    free(img);
}

static void patch_u64(char *img, size_t at, uint64_t v) { memcpy(img + at, &v, 8); }
static void patch_u32(char *img, size_t at, uint32_t v) { memcpy(img + at, &v, 4); }

TEST(gguf_hostile_fields_are_named)
{
    size_t len;
    char *img = tiny_file(&len);
    if (!img)
        return;
    char *b = malloc(len);
    cn_err e;
    struct {
        size_t at;
        int width;
        uint64_t value;
        const char *expect;
    } cases[] = {
        {0, 4, 0x4C4D4747 /* "GGML" */, "not a GGUF file (magic 'GGML')"},
        {4, 4, 1, "version 1"},
        {4, 4, 0x03000000, "big-endian"},
        {4, 4, 77, "unknown GGUF version 77"},
        {8, 8, 1000000000000ull, "absurd tensor count"},
        {16, 8, 0xFFFFFFFFFFFFull, "absurd key count"},
        {24, 8, 1ull << 40, "length"},
        {33, 4, 0, "has 0 dimensions"},
        {33, 4, 7, "has 7 dimensions"},
        {37, 8, 0, "absurd dimension 0"},
        {45, 8, 1ull << 41, "absurd dimension 1"},
        {45, 8, 1ull << 40, "absurd dimension 1"}, /* 32 * 2^40 elements in all */
        {53, 4, 99, "unknown type 99"},
        {53, 4, GGML_Q4_K, "not a multiple of the Q4_K block size"},
        {57, 8, 64, "extends past end of file"},
        {57, 8, 3, "not aligned"},
        {57, 8, 0xFFFFFFFFFFFFFFE0ull, "extends past end of file"},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(cases); i++) {
        memcpy(b, img, len);
        if (cases[i].width == 4)
            patch_u32(b, cases[i].at, (uint32_t)cases[i].value);
        else
            patch_u64(b, cases[i].at, cases[i].value);
        e.msg[0] = 0;
        int rc = open_image(b, len, &e);
        if (rc == CN_OK || !strstr(e.msg, cases[i].expect))
            test_fail_at(__FILE__, __LINE__, "case %zu: rc %d, message '%s', wanted '%s'", i, rc,
                         e.msg, cases[i].expect);
    }
    free(b);
    free(img);
}

TEST(gguf_hostile_metadata)
{
    cn_err e;
    gguf_writer *w;
    /* duplicate key */
    gguf_writer_new(&w, &e);
    gguf_w_u32(w, "k", 1);
    gguf_w_u32(w, "k", 2);
    const char *p = tmp_path("dup.gguf");
    gguf_writer_begin(w, p, &e);
    gguf_writer_finish(w, &e);
    gguf_writer_free(w);
    gguf_file *f;
    EXPECT_EQ_INT(gguf_open(&f, p, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "duplicate key 'k'");
    /* bad alignment */
    gguf_writer_new(&w, &e);
    gguf_w_u32(w, "general.alignment", 48);
    p = tmp_path("align.gguf");
    gguf_writer_begin(w, p, &e);
    gguf_writer_finish(w, &e);
    gguf_writer_free(w);
    EXPECT_EQ_INT(gguf_open(&f, p, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "general.alignment = 48");
    /* an array that claims more elements than the file holds */
    unsigned char img[64] = "GGUF";
    uint32_t v3 = 3, t_arr = GGUF_T_ARRAY, t_str = GGUF_T_STRING;
    uint64_t one = 1, zero = 0, klen = 1, huge = 1ull << 60;
    memcpy(img + 4, &v3, 4);
    memcpy(img + 8, &zero, 8);
    memcpy(img + 16, &one, 8);
    memcpy(img + 24, &klen, 8);
    img[32] = 'a';
    memcpy(img + 33, &t_arr, 4);
    memcpy(img + 37, &t_str, 4);
    memcpy(img + 41, &huge, 8);
    EXPECT_EQ_INT(open_image(img, 49, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "key 'a': array of 1152921504606846976 string elements does not fit");
    /* nesting deeper than the limit */
    unsigned char deep[256];
    memcpy(deep, img, 37);
    size_t at = 37;
    for (int d = 0; d < 12; d++) {
        memcpy(deep + at, &t_arr, 4);
        memcpy(deep + at + 4, &one, 8);
        at += 12;
    }
    EXPECT_EQ_INT(open_image(deep, at, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "nested deeper");
    /* empty file and missing file */
    p = tmp_path("empty.gguf");
    spit(p, "", 0);
    EXPECT_EQ_INT(gguf_open(&f, p, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "empty file");
    EXPECT_EQ_INT(gguf_open(&f, tmp_path("nope.gguf"), &e), CN_ENOTFOUND);
    EXPECT_CONTAINS(e.msg, "nope.gguf: cannot open");
}
