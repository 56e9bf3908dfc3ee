/*
** Unit tests for src/tok: llama.cpp's own tokenizer test strings, the prompt
** ids of the reference fixtures, WordPiece (normalization, edges, the embedding
** sentences), tok_encode_trunc, special-token parsing, pieces and the streaming
** decoder, invalid UTF-8, hostile metadata, and the merge queue.
*/
#include "test.h"
#include "tok/tok.h"
#include "tok/tok_int.h" /* tok_bigram_heap */

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
static char *decode(const tok_vocab *v, const int32_t *ids, int n, bool special, size_t *len)
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
        for (char *t = strtok_r(line, " ", &save); t && n_want < 4096;
             t = strtok_r(NULL, " ", &save))
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

/* The Llama 3 and Qwen2 vocabularies in tests/data are the tokenizer
** metadata of the reference models tiny-llama-q8_0 and tiny-qwen2-f32, alone
** (`mkmodel --vocab-only`): see tests/data/README.md. */
#define LLAMA_BPE "vocab/ggml-vocab-llama-bpe.gguf"
#define QWEN2 "vocab/ggml-vocab-qwen2.gguf"

TEST(tok_vocab_llama_bpe) { check_vocab_strings("llama-bpe", test_data(LLAMA_BPE)); }

TEST(tok_vocab_qwen2) { check_vocab_strings("qwen2", test_data(QWEN2)); }

TEST(tok_vocab_bert_bge)
{
    check_vocab_strings("bert-bge", test_data("vocab/ggml-vocab-bert-bge.gguf"));
}

/* ---- WordPiece ------------------------------------------------------------ */

#define BGE "vocab/ggml-vocab-bert-bge.gguf"

/* Do a and b hold the same token table? */
static bool same_vocab(const tok_vocab *a, const tok_vocab *b)
{
    if (tok_n_vocab(a) != tok_n_vocab(b))
        return false;
    for (int32_t i = 0; i < tok_n_vocab(a); i++) {
        size_t na, nb;
        const char *ta = tok_text(a, i, &na), *tb = tok_text(b, i, &nb);
        if (na != nb || memcmp(ta, tb, na) != 0)
            return false;
    }
    return true;
}

/* The six sentences of embed_sentences.txt against the ids llama.cpp gave
** the tiny BERT model (add_special, parse_special as the fixture says). The
** ids are in tests/data; the model's vocabulary is bge's (tests/data too),
** and when the shared model is at hand the test also checks that it is. */
TEST(tok_wpm_embed_sentences)
{
    const char *m = test_fixture("models/tiny-bert-f32.gguf");
    const char *jp = test_data("vectors/tiny-bert-f32/embeddings.json");
    if (!m)
        m = test_data(BGE);
    char *text;
    size_t len;
    cn_err e = {0};
    if (cn_read_file(test_data("prompts/embed_sentences.txt"), 1 << 16, &text, &len, &e)) {
        test_fail_at(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    json_error_t je;
    json_t *j = json_load_file(jp, 0, &je);
    EXPECT(j != NULL);
    json_t *items = json_object_get(j, "items");
    bool parse = json_is_true(json_object_get(json_object_get(j, "tokenize"), "parse_special"));
    vocab_file f, bge;
    if (!j || !open_vocab(&f, m)) {
        json_decref(j);
        free(text);
        return;
    }
    if (!open_vocab(&bge, test_data(BGE)))
        bge.v = NULL;
    bool bge_same = bge.v && same_vocab(f.v, bge.v);
    /* the ids in tests/data are checked with bge's vocabulary: it must be the model's */
    EXPECT(bge_same);
    printf("     bert-bge vocab %s tiny-bert's\n", bge_same ? "is the same as" : "differs from");
    EXPECT_EQ_INT(tok_type(f.v), TOK_WPM);

    int n_lines = 0, n_ok = 0;
    for (char *line = text, *nl; line < text + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl)
            nl = text + len;
        json_t *item = json_array_get(items, (size_t)n_lines++);
        EXPECT(item != NULL);
        if (!item)
            break;
        const char *jt = json_string_value(json_object_get(item, "text"));
        EXPECT(jt && strlen(jt) == (size_t)(nl - line) && memcmp(jt, line, strlen(jt)) == 0);
        json_t *want = json_object_get(item, "ids");
        for (int k = 0; k < (bge_same ? 2 : 1); k++) {
            int32_t *got;
            int n = encode(k ? bge.v : f.v, line, (size_t)(nl - line), true, parse, &got);
            bool same = n > 0 && (size_t)n == json_array_size(want);
            for (int q = 0; same && q < n; q++)
                same = json_integer_value(json_array_get(want, (size_t)q)) == got[q];
            if (!same) {
                char a[1024];
                format_ids(a, sizeof a, got, n < 0 ? 0 : n);
                char *w = json_dumps(want, JSON_COMPACT);
                test_fail_at(__FILE__, __LINE__, "%s: \"%.*s\"\n    got  [%s]\n    want %s",
                             k ? "bert-bge" : "tiny-bert", (int)(nl - line), line, a, w);
                free(w);
            }
            n_ok += same && !k;
            free(got);
        }
    }
    printf("     tiny-bert: %d/%d sentences match\n", n_ok, n_lines);
    EXPECT_EQ_INT(n_lines, 6);
    EXPECT_EQ_INT(json_array_size(items), 6);
    if (bge.v)
        close_vocab(&bge);
    close_vocab(&f);
    json_decref(j);
    free(text);
}

static bool same_ids(const tok_vocab *v, const char *a, size_t na, const char *b, size_t nb);

/* Encode a string (no specials) and compare with the ids of another. */
static bool wpm_same(const tok_vocab *v, const char *a, size_t na, const char *b)
{
    return same_ids(v, a, na, b, strlen(b));
}
#define WPM_SAME(v, lit, b) wpm_same(v, lit, sizeof(lit) - 1, b)

/* ids of s without specials, as one string "1 2 3" */
static const char *wpm_ids(const tok_vocab *v, const char *s, size_t n, bool add_special)
{
    static char buf[4096];
    int32_t *ids;
    int k = encode(v, s, n, add_special, false, &ids);
    format_ids(buf, sizeof buf, ids, k < 0 ? 0 : k);
    free(ids);
    return buf;
}

TEST(tok_wpm_getters_and_pieces)
{
    vocab_file f;
    if (!open_vocab(&f, test_data(BGE)))
        return;
    EXPECT_EQ_INT(tok_type(f.v), TOK_WPM);
    EXPECT_STR(tok_model_name(f.v), "bert");
    EXPECT_STR(tok_pre_name(f.v), "bert-bge");
    EXPECT(tok_warning(f.v) == NULL);
    EXPECT_EQ_INT(tok_bos(f.v), 101);
    EXPECT_EQ_INT(tok_sep(f.v), 102);
    EXPECT_EQ_INT(tok_unk(f.v), 100);
    EXPECT_EQ_INT(tok_pad(f.v), 0);
    EXPECT_EQ_INT(tok_mask(f.v), 103);
    EXPECT_EQ_INT(tok_eos(f.v), -1);
    EXPECT(tok_add_bos(f.v) && tok_add_sep(f.v) && !tok_add_eos(f.v));
    EXPECT(tok_is_control(f.v, 101) && tok_is_control(f.v, 102) && tok_is_control(f.v, 100));
    EXPECT(!tok_is_eog(f.v, 102));

    /* "▁hello" is a word's first piece, "hrer" (vocab.txt "##hrer") a continuation */
    char piece[32];
    int n = tok_piece(f.v, 7592, false, piece, sizeof piece);
    EXPECT(n == 6 && memcmp(piece, " hello", 6) == 0);
    EXPECT_STR(wpm_ids(f.v, "F\xc3\xbchrer", 7, false), "11865 17875");
    n = tok_piece(f.v, 17875, false, piece, sizeof piece);
    EXPECT(n == 4 && memcmp(piece, "hrer", 4) == 0);
    EXPECT_EQ_INT(tok_piece(f.v, 101, false, piece, sizeof piece), 0);
    n = tok_piece(f.v, 101, true, piece, sizeof piece);
    EXPECT(n == 5 && memcmp(piece, "[CLS]", 5) == 0);

    /* decoding gives the normalized words back, each after a space */
    int32_t *ids;
    const char *s = "Hello, World! \xe6\x97\xa5\xe6\x9c\xac";
    int k = encode(f.v, s, strlen(s), true, false, &ids);
    size_t len;
    char *d = decode(f.v, ids, k, false, &len);
    EXPECT_STR(d, " hello , world ! \xe6\x97\xa5 \xe6\x9c\xac");
    free(d);
    free(ids);
    close_vocab(&f);
}

TEST(tok_wpm_normalization)
{
    vocab_file f;
    if (!open_vocab(&f, test_data(BGE)))
        return;
    const tok_vocab *v = f.v;
    /* lower-cased, accents folded (precomposed characters map to their base) */
    EXPECT(WPM_SAME(v, "H\xc3\xa9llo W\xc3\x96RLD", "hello world"));
    EXPECT_STR(wpm_ids(v, "hello world", 11, false), "7592 2088");
    EXPECT(WPM_SAME(v, "CAF\xc3\x89 na\xc3\xafve", "cafe naive"));
    EXPECT(WPM_SAME(v, "\xe1\xbb\xad", "u"));             /* ử: u + horn + hook */
    EXPECT(WPM_SAME(v, "\xe2\x84\xaa", "k"));             /* KELVIN SIGN */
    EXPECT(WPM_SAME(v, "\xcd\xbe", ";"));                  /* GREEK QUESTION MARK */
    /* but, as in llama.cpp, a combining mark of its own is not dropped */
    EXPECT(!WPM_SAME(v, "e\xcc\x81", "e"));
    /* CJK ideographs are words of their own, other scripts are not */
    EXPECT_STR(wpm_ids(v, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 9, false), "1864 1876 1950");
    EXPECT(wpm_same(v, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 9,
                    "\xe6\x97\xa5 \xe6\x9c\xac \xe8\xaa\x9e"));
    EXPECT(!WPM_SAME(v, "\xe3\x81\x82\xe3\x81\x84", "\xe3\x81\x82 \xe3\x81\x84")); /* kana */
    /* every punctuation character and ASCII symbol splits, '~' included */
    EXPECT(wpm_same(v, "a.b,c!d$e+f<g=h>i^j`k|l~m", 25,
                    "a . b , c ! d $ e + f < g = h > i ^ j ` k | l ~ m"));
    EXPECT(WPM_SAME(v, "x\xe2\x80\x94y\xc2\xbfz", "x \xe2\x80\x94 y \xc2\xbf z")); /* — ¿ */
    EXPECT(!WPM_SAME(v, "x\xe2\x82\xacy", "x \xe2\x82\xac y")); /* € is not ASCII: no split */
    /* any White_Space separates; controls and format characters vanish */
    EXPECT(WPM_SAME(v, "a\xc2\xa0" "b\xe3\x80\x80" "c\td\ne", "a b c d e"));
    EXPECT(WPM_SAME(v, "a\x01" "b\x7f" "c\xe2\x80\x8d" "d", "abcd"));
    EXPECT(WPM_SAME(v, "a\0b", "ab"));
    close_vocab(&f);
}

TEST(tok_wpm_edges)
{
    vocab_file f;
    if (!open_vocab(&f, test_data(BGE)))
        return;
    const tok_vocab *v = f.v;
    /* empty and whitespace-only text: [CLS] [SEP], or nothing */
    EXPECT_STR(wpm_ids(v, "", 0, true), "101 102");
    EXPECT_STR(wpm_ids(v, " \t\n\r\xc2\xa0 ", 7, true), "101 102");
    EXPECT_STR(wpm_ids(v, "", 0, false), "");
    EXPECT_STR(wpm_ids(v, "hello", 5, true), "101 7592 102");

    /* a word no token can start is [UNK], once, whatever its length */
    EXPECT_STR(wpm_ids(v, "\xf0\x9f\x9a\x80", 4, false), "100");
    EXPECT_STR(wpm_ids(v, "\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80x", 9, false), "100");
    /* one unmatched character spoils the whole word (llama.cpp drops the
    ** pieces already found) */
    EXPECT_STR(wpm_ids(v, "hello\xf0\x9f\x9a\x80", 9, false), "100");

    /* llama.cpp has no word-length limit (HF turns words over 100 characters
    ** into [UNK]): 101 'a' are pieces that spell the word */
    char word[160];
    memset(word, 'a', sizeof word);
    int32_t *ids;
    for (size_t wl = 99; wl <= 150; wl += 51 - 49 * (wl == 99)) { /* 99, 101, 150 */
        int n = encode(v, word, wl, false, false, &ids);
        EXPECT(n > 1);
        size_t len;
        char *d = decode(v, ids, n, false, &len);
        EXPECT(len == wl + 1 && d[0] == ' ' && memcmp(d + 1, word, wl) == 0);
        for (int i = 0; i < n; i++)
            EXPECT(ids[i] != 100);
        free(d);
        free(ids);
    }

    /* invalid UTF-8: every bad byte is U+FFFD and U+FFFD is dropped, so
    ** bad bytes vanish without splitting the word they are in */
    EXPECT(WPM_SAME(v, "a\xff" "b", "ab"));
    EXPECT(WPM_SAME(v, "hel\xc3lo", "hello"));
    EXPECT(WPM_SAME(v, "hello\xe2\x82", "hello"));
    EXPECT(WPM_SAME(v, "a\xef\xbf\xbd" "b", "ab"));  /* a real U+FFFD too */
    EXPECT(WPM_SAME(v, "\xf5\x80\x80\x80x", "x")); /* above U+10FFFF: 4 bad bytes */
    EXPECT(WPM_SAME(v, "a\xed\xa0\x80" "b", "ab")); /* a surrogate is category Cs */
    EXPECT(WPM_SAME(v, "a\xc0\xaf" "b", "a/b"));     /* lenient overlong "/" */
    EXPECT_STR(wpm_ids(v, "\xff\xfe\x80", 3, true), "101 102");

    /* special-token text: parsed only when asked */
    int n = encode(v, "[CLS] hi [SEP]", 14, false, true, &ids);
    EXPECT(n == 3 && ids[0] == 101 && ids[2] == 102);
    free(ids);
    n = encode(v, "[CLS]", 5, false, false, &ids);
    EXPECT(n > 1);
    for (int i = 0; i < n; i++)
        EXPECT(ids[i] != 101);
    free(ids);
    close_vocab(&f);
}

TEST(tok_wpm_speed)
{
    vocab_file f;
    if (!open_vocab(&f, test_data(BGE)))
        return;
    /* 100 000 characters: prose, numbers, accents, CJK, one long word */
    static const char *const parts[] = {
        "The quick brown fox jumps over the lazy dog. ", "3.14159 2,718 1e-9 ",
        "Caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 ", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e ",
        "supercalifragilisticexpialidocious ", "\xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe ",
    };
    size_t cap = 400000, n = 0, chars = 0;
    char *s = malloc(cap);
    for (size_t i = 0; chars < 100000; i++) {
        const char *p = parts[i % CN_ARRAY_LEN(parts)];
        for (; *p && chars < 100000; p++) {
            s[n++] = *p;
            chars += ((unsigned char)*p & 0xC0) != 0x80;
        }
    }
    double t0 = cn_now();
    cn_err e = {0};
    int k = tok_encode(f.v, s, n, true, false, NULL, 0, &e);
    double dt = cn_now() - t0;
    printf("     bert-bge: %zu characters (%zu bytes) -> %d tokens in %.1f ms\n", chars, n, k,
           dt * 1e3);
    EXPECT(k > 20000);
    EXPECT(dt < 1.0);
    /* one word of 100 000 characters */
    memset(s, 'q', 100000);
    t0 = cn_now();
    k = tok_encode(f.v, s, 100000, true, false, NULL, 0, &e);
    dt = cn_now() - t0;
    printf("     bert-bge: one 100000-character word -> %d tokens in %.1f ms\n", k, dt * 1e3);
    EXPECT(k > 2);
    EXPECT(dt < 1.0);
    free(s);
    close_vocab(&f);
}

TEST(tok_encode_trunc)
{
    vocab_file f;
    if (!open_vocab(&f, test_data(BGE)))
        return;
    const char *s = "Offline question answering over local PDF files keeps private documents on "
                    "the laptop, and it does so for every single page of every document.";
    int32_t *full;
    int n_full = encode(f.v, s, strlen(s), true, false, &full);
    EXPECT(n_full > 20);
    int32_t out[64];
    bool tr = false;
    cn_err e = {0};
    int n = tok_encode_trunc(f.v, s, strlen(s), 16, out, &tr, &e);
    EXPECT_EQ_INT(n, 16);
    EXPECT(tr);
    EXPECT_EQ_INT(out[0], 101);
    EXPECT_EQ_INT(out[15], 102);
    EXPECT(memcmp(out, full, 15 * sizeof *out) == 0);
    /* short enough: unchanged, not truncated */
    n = tok_encode_trunc(f.v, s, strlen(s), 64, out, &tr, &e);
    EXPECT_EQ_INT(n, n_full);
    EXPECT(!tr);
    EXPECT(n == n_full && memcmp(out, full, (size_t)n * sizeof *out) == 0);
    n = tok_encode_trunc(f.v, s, strlen(s), n_full, out, &tr, &e);
    EXPECT(n == n_full && !tr);
    n = tok_encode_trunc(f.v, s, strlen(s), n_full - 1, out, &tr, &e);
    EXPECT(n == n_full - 1 && tr && out[n - 1] == 102 && out[n - 2] == full[n - 2]);
    /* [CLS] [SEP] for no text; the smallest budget keeps the closing [SEP] */
    n = tok_encode_trunc(f.v, "", 0, 2, out, &tr, &e);
    EXPECT(n == 2 && !tr && out[0] == 101 && out[1] == 102);
    n = tok_encode_trunc(f.v, s, strlen(s), 1, out, NULL, &e);
    EXPECT(n == 1 && out[0] == 102);
    /* no special-token parsing */
    n = tok_encode_trunc(f.v, "[SEP]", 5, 64, out, &tr, &e);
    EXPECT(n > 3 && out[1] != 102);
    EXPECT_EQ_INT(tok_encode_trunc(f.v, s, strlen(s), 0, out, &tr, &e), CN_EINVAL);
    EXPECT_EQ_INT(tok_encode_trunc(f.v, s, strlen(s), 4, NULL, &tr, &e), CN_EINVAL);
    EXPECT_EQ_INT(tok_encode_trunc(f.v, NULL, 3, 4, out, &tr, &e), CN_EINVAL);
    free(full);
    close_vocab(&f);

    /* SPM adds a BOS and no EOS: a plain cut */
    if (!open_vocab(&f, test_data("vocab/ggml-vocab-llama-spm.gguf")))
        return;
    n_full = encode(f.v, s, strlen(s), true, false, &full);
    n = tok_encode_trunc(f.v, s, strlen(s), 8, out, &tr, &e);
    EXPECT(n == 8 && tr && memcmp(out, full, 8 * sizeof *out) == 0);
    free(full);
    close_vocab(&f);
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
        json_t *gen = json_object_get(j, "gen_ids");
        json_t *pieces = json_object_get(j, "gen_pieces_bytes");
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

/* A reference model's prompt ids (tests/data/vectors/NAME, the JSON part
** of llama.cpp's output) with its vocabulary from tests/data; when the shared
** model itself is at hand, with the model's own metadata as well. */
static void check_fixture_model(const char *name, const char *vocab)
{
    char rel[256], dir[1024];
    snprintf(rel, sizeof rel, "vectors/%s", name);
    snprintf(dir, sizeof dir, "%s", test_data(rel));
    check_model_vectors(test_data(vocab), dir);
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    const char *m = test_fixture(rel);
    if (m)
        check_model_vectors(m, dir);
}

TEST(tok_prompts_tiny_llama) { check_fixture_model("tiny-llama-q8_0", LLAMA_BPE); }
TEST(tok_prompts_tiny_llama_256) { check_fixture_model("tiny-llama-256-q4_k_m", LLAMA_BPE); }
TEST(tok_prompts_tiny_qwen2) { check_fixture_model("tiny-qwen2-f32", QWEN2); }
TEST(tok_prompts_tiny_qwen2_256) { check_fixture_model("tiny-qwen2-256-q4_k_m", QWEN2); }

/* ---- special tokens ----------------------------------------------------- */

TEST(tok_parse_special_llama3)
{
    const char *m = test_data(LLAMA_BPE);
    vocab_file f;
    if (!open_vocab(&f, m))
        return;
    const char *s = "<|eot_id|>";
    int32_t *ids;
    int n = encode(f.v, s, strlen(s), false, true, &ids);
    EXPECT_EQ_INT(n, 1);
    if (n == 1)
        EXPECT_EQ_INT(ids[0], 128009);
    free(ids);
    n = encode(f.v, s, strlen(s), false, false, &ids);
    EXPECT(n > 1);
    for (int i = 0; i < n; i++)
        EXPECT(ids[i] < 128000);
    free(ids);

    /* in context, with BOS added; text after a special token is ordinary */
    s = "Hi<|eot_id|>there";
    n = encode(f.v, s, strlen(s), true, true, &ids);
    EXPECT(n >= 4);
    if (n >= 4) {
        EXPECT_EQ_INT(ids[0], 128000);
        bool seen = false;
        for (int i = 1; i < n; i++)
            seen |= ids[i] == 128009;
        EXPECT(seen);
    }
    free(ids);

    EXPECT_EQ_INT(tok_type(f.v), TOK_BPE);
    EXPECT_STR(tok_pre_name(f.v), "llama-bpe");
    EXPECT(tok_warning(f.v) == NULL);
    EXPECT_EQ_INT(tok_bos(f.v), 128000);
    EXPECT_EQ_INT(tok_eos(f.v), 128001);
    EXPECT_EQ_INT(tok_eot(f.v), 128009);
    EXPECT(tok_add_bos(f.v));
    EXPECT(!tok_add_eos(f.v));
    EXPECT(tok_is_eog(f.v, 128001));
    EXPECT(tok_is_eog(f.v, 128009));
    EXPECT(tok_is_eog(f.v, 128008)); /* <|eom_id|> */
    EXPECT(!tok_is_eog(f.v, 128000));
    EXPECT(tok_is_control(f.v, 128000));
    EXPECT(!tok_is_control(f.v, 100));
    close_vocab(&f);
}

TEST(tok_eog_qwen2)
{
    const char *m = test_data(QWEN2);
    vocab_file f;
    if (!open_vocab(&f, m))
        return;
    int32_t im_end = tok_find(f.v, "<|im_end|>", 10), eot = tok_find(f.v, "<|endoftext|>", 13);
    EXPECT_EQ_INT(im_end, 151645);
    EXPECT_EQ_INT(eot, 151643);
    EXPECT_EQ_INT(tok_eot(f.v), 151645);
    EXPECT(tok_is_eog(f.v, im_end));
    EXPECT(tok_is_eog(f.v, eot));
    EXPECT(!tok_is_eog(f.v, tok_find(f.v, "<|im_start|>", 12)));
    EXPECT(!tok_add_bos(f.v));
    int32_t *ids;
    const char *s = "<|im_start|>user\nhi<|im_end|>";
    int n = encode(f.v, s, strlen(s), true, true, &ids);
    EXPECT(n >= 4);
    if (n >= 4) {
        EXPECT_EQ_INT(ids[0], 151644);
        EXPECT_EQ_INT(ids[n - 1], 151645);
    }
    free(ids);
    close_vocab(&f);
}

TEST(tok_spm_specials_and_getters)
{
    vocab_file f;
    if (!open_vocab(&f, test_data("vocab/ggml-vocab-llama-spm.gguf")))
        return;
    EXPECT_EQ_INT(tok_type(f.v), TOK_SPM);
    EXPECT_STR(tok_model_name(f.v), "llama");
    EXPECT_EQ_INT(tok_n_vocab(f.v), 32000);
    EXPECT_EQ_INT(tok_bos(f.v), 1);
    EXPECT_EQ_INT(tok_eos(f.v), 2);
    EXPECT_EQ_INT(tok_unk(f.v), 0);
    EXPECT_EQ_INT(tok_pad(f.v), -1);
    EXPECT_EQ_INT(tok_eot(f.v), -1);
    EXPECT(tok_add_bos(f.v));
    EXPECT(tok_is_eog(f.v, 2));
    EXPECT(!tok_is_eog(f.v, 1));
    EXPECT(!tok_is_eog(f.v, -5));
    EXPECT(!tok_is_eog(f.v, 999999));
    EXPECT(tok_is_control(f.v, 1));
    size_t len;
    EXPECT_STR(tok_text(f.v, 2, &len), "</s>");
    EXPECT_EQ_INT(len, 4);
    EXPECT(tok_text(f.v, 32000, NULL) == NULL);
    EXPECT_EQ_INT(tok_find(f.v, "<0x0A>", 6), 13);
    EXPECT_EQ_INT(tok_find(f.v, "no such token", 13), -1);

    /* "<s>" parses to BOS only with parse_special; text after a special
    ** token gets the SPM space prefix again */
    int32_t *a, *b;
    int na = encode(f.v, "<s>Hello", 8, false, true, &a);
    int nb = encode(f.v, "Hello", 5, false, false, &b);
    EXPECT(na == nb + 1 && na > 1);
    if (na == nb + 1 && na > 1) {
        EXPECT_EQ_INT(a[0], 1);
        EXPECT(memcmp(a + 1, b, (size_t)nb * 4) == 0);
    }
    free(a);
    free(b);
    na = encode(f.v, "<s>", 3, false, false, &a);
    EXPECT(na > 1);
    free(a);

    /* add_special: BOS first, no EOS */
    na = encode(f.v, "Hello", 5, true, false, &a);
    EXPECT_EQ_INT(na, nb + 1);
    if (na > 0)
        EXPECT_EQ_INT(a[0], 1);
    free(a);
    na = encode(f.v, "", 0, true, false, &a);
    EXPECT_EQ_INT(na, 1);
    free(a);
    na = encode(f.v, "", 0, false, false, &a);
    EXPECT_EQ_INT(na, 0);
    free(a);
    close_vocab(&f);
}

TEST(tok_phi3_rstrip)
{
    vocab_file f;
    if (!open_vocab(&f, test_data("vocab/ggml-vocab-phi-3.gguf")))
        return;
    /* Phi-3's special tokens swallow the whitespace after them */
    int32_t *a, *b;
    int na = encode(f.v, "<|user|>\n  Hi", 13, false, true, &a);
    int nb = encode(f.v, "<|user|>Hi", 10, false, true, &b);
    EXPECT(na > 1 && na == nb && memcmp(a, b, (size_t)na * 4) == 0);
    free(a);
    free(b);
    EXPECT(tok_is_eog(f.v, tok_find(f.v, "<|end|>", 7)));
    EXPECT(tok_is_eog(f.v, tok_find(f.v, "<|endoftext|>", 13)));
    close_vocab(&f);
}

TEST(tok_encode_reports_total)
{
    vocab_file f;
    if (!open_vocab(&f, test_data("vocab/ggml-vocab-gpt-2.gguf")))
        return;
    const char *s = "Hello world, this is a test.";
    int32_t buf[4] = {-7, -7, -7, -7};
    cn_err e = {0};
    int n = tok_encode(f.v, s, strlen(s), false, false, buf, 2, &e);
    EXPECT(n > 2);
    EXPECT(buf[0] >= 0 && buf[1] >= 0);
    EXPECT_EQ_INT(buf[2], -7);
    EXPECT_EQ_INT(tok_encode(f.v, s, strlen(s), false, false, NULL, 0, &e), n);
    EXPECT_EQ_INT(tok_encode(f.v, s, strlen(s), false, false, NULL, 5, &e), CN_EINVAL);
    EXPECT_EQ_INT(tok_encode(f.v, NULL, 3, false, false, NULL, 0, &e), CN_EINVAL);
    EXPECT_EQ_INT(tok_encode(f.v, s, (size_t)TOK_MAX_INPUT + 1, false, false, NULL, 0, &e),
                  CN_ELIMIT);
    EXPECT_EQ_INT(tok_piece(f.v, -1, true, NULL, 0), CN_EINVAL);
    EXPECT_EQ_INT(tok_piece(f.v, 50257, true, NULL, 0), CN_EINVAL);
    /* too small a buffer: the needed length, nothing written */
    char small[2] = {'x', 'x'};
    int32_t hello = tok_find(f.v, "Hello", 5);
    EXPECT_EQ_INT(tok_piece(f.v, hello, false, small, 2), 5);
    EXPECT_EQ_INT(small[0], 'x');
    /* gpt-2 byte-level: "Ġworld" is " world" */
    char piece[16];
    int m = tok_piece(f.v, tok_find(f.v, "\xc4\xa0world", 7), false, piece, sizeof piece);
    EXPECT_EQ_INT(m, 6);
    EXPECT(m == 6 && memcmp(piece, " world", 6) == 0);
    /* control tokens render only when asked */
    EXPECT_EQ_INT(tok_piece(f.v, 50256, false, piece, sizeof piece), 0);
    EXPECT_EQ_INT(tok_piece(f.v, 50256, true, piece, sizeof piece), 13);
    close_vocab(&f);
}

/* ---- invalid UTF-8 ------------------------------------------------------ */

static bool same_ids(const tok_vocab *v, const char *a, size_t na, const char *b, size_t nb)
{
    int32_t *x, *y;
    int n1 = encode(v, a, na, false, false, &x), n2 = encode(v, b, nb, false, false, &y);
    bool same = n1 >= 0 && n1 == n2 && memcmp(x, y, (size_t)n1 * 4) == 0;
    free(x);
    free(y);
    return same;
}

TEST(tok_invalid_utf8_bpe)
{
    vocab_file f;
    if (!open_vocab(&f, test_data("vocab/ggml-vocab-gpt-2.gguf")))
        return;
    /* a bad byte is U+FFFD */
    EXPECT(same_ids(f.v, "a\xff" "b", 3, "a\xef\xbf\xbd" "b", 5));
    EXPECT(same_ids(f.v, "x\xe2\x82", 3, "x\xef\xbf\xbd\xef\xbf\xbd", 7));
    EXPECT(same_ids(f.v, "\x80", 1, "\xef\xbf\xbd", 3));
    /* llama.cpp decodes overlong forms leniently */
    EXPECT(same_ids(f.v, "\xc0\xaf", 2, "/", 1));
    /* above U+10FFFF: four bad bytes */
    EXPECT(same_ids(f.v, "\xf5\x80\x80\x80", 4,
                    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12));
    /* a surrogate and NUL do not crash, and round-trip as bytes */
    int32_t *ids;
    int n = encode(f.v, "\xed\xa0\x80 a\0b", 7, false, false, &ids);
    EXPECT(n > 0);
    size_t len;
    char *s = decode(f.v, ids, n, false, &len);
    EXPECT(len == 7 && memcmp(s, "\xed\xa0\x80 a\0b", 7) == 0);
    free(s);
    free(ids);
    close_vocab(&f);
}

TEST(tok_invalid_utf8_spm_round_trips)
{
    vocab_file f;
    if (!open_vocab(&f, test_data("vocab/ggml-vocab-llama-spm.gguf")))
        return;
    static const char in[] = "caf\xc3\xa9 \xff\xfe\xe2\x82 x\xc3";
    int32_t *ids;
    int n = encode(f.v, in, sizeof in - 1, false, false, &ids);
    EXPECT(n > 0);
    size_t len;
    char *s = decode(f.v, ids, n, false, &len);
    /* SPM adds the leading space; every byte comes back */
    EXPECT(len == sizeof in && s[0] == ' ' && memcmp(s + 1, in, sizeof in - 1) == 0);
    free(s);
    free(ids);
    close_vocab(&f);
}

/* ---- streaming ---------------------------------------------------------- */

static int push(tok_stream *st, const tok_vocab *v, const char *tok, char *out)
{
    int32_t id = tok_find(v, tok, strlen(tok));
    if (id < 0) {
        test_fail_at(__FILE__, __LINE__, "no token '%s'", tok);
        return -1;
    }
    return tok_stream_push(st, v, id, false, out, 64);
}

TEST(tok_stream_utf8)
{
    vocab_file f;
    if (!open_vocab(&f, test_data("vocab/ggml-vocab-llama-spm.gguf")))
        return;
    tok_stream st;
    char out[64];
    tok_stream_init(&st);
    /* é split over two byte tokens comes out whole, once */
    EXPECT_EQ_INT(push(&st, f.v, "<0xC3>", out), 0);
    EXPECT_EQ_INT(push(&st, f.v, "<0xA9>", out), 2);
    EXPECT(memcmp(out, "\xc3\xa9", 2) == 0);
    EXPECT_EQ_INT(tok_stream_flush(&st, out, 64), 0);
    /* a 4-byte emoji over four tokens */
    EXPECT_EQ_INT(push(&st, f.v, "<0xF0>", out), 0);
    EXPECT_EQ_INT(push(&st, f.v, "<0x9F>", out), 0);
    EXPECT_EQ_INT(push(&st, f.v, "<0xA6>", out), 0);
    EXPECT_EQ_INT(push(&st, f.v, "<0x99>", out), 4);
    EXPECT(memcmp(out, "\xf0\x9f\xa6\x99", 4) == 0);
    /* a sequence cut short by a normal token: U+FFFD, then the token */
    EXPECT_EQ_INT(push(&st, f.v, "<0xC3>", out), 0);
    EXPECT_EQ_INT(push(&st, f.v, "a", out), 4);
    EXPECT(memcmp(out, "\xef\xbf\xbd" "a", 4) == 0);
    /* a byte that starts nothing */
    EXPECT_EQ_INT(push(&st, f.v, "<0xFF>", out), 3);
    EXPECT(memcmp(out, "\xef\xbf\xbd", 3) == 0);
    /* E0 80: E0 cannot be followed by 80, so two replacements */
    EXPECT_EQ_INT(push(&st, f.v, "<0xE0>", out), 0);
    EXPECT_EQ_INT(push(&st, f.v, "<0x80>", out), 6);
    /* left pending at the end: one U+FFFD from flush */
    EXPECT_EQ_INT(push(&st, f.v, "<0xE2>", out), 0);
    EXPECT_EQ_INT(push(&st, f.v, "<0x82>", out), 0);
    EXPECT_EQ_INT(tok_stream_flush(&st, out, 2), CN_ELIMIT);
    EXPECT_EQ_INT(tok_stream_flush(&st, out, 64), 3);
    EXPECT(memcmp(out, "\xef\xbf\xbd", 3) == 0);
    EXPECT_EQ_INT(tok_stream_flush(&st, out, 64), 0);
    /* too small a buffer leaves the stream as it was */
    int32_t hello = tok_find(f.v, "\xe2\x96\x81Hello", 8);
    EXPECT_EQ_INT(push(&st, f.v, "<0xC3>", out), 0);
    EXPECT_EQ_INT(tok_stream_push(&st, f.v, hello, false, out, 3), CN_ELIMIT);
    EXPECT_EQ_INT(st.n_pending, 1);
    EXPECT_EQ_INT(tok_stream_push(&st, f.v, hello, false, out, 64), 9);
    EXPECT(memcmp(out, "\xef\xbf\xbd Hello", 9) == 0);
    /* control tokens: nothing unless special */
    EXPECT_EQ_INT(tok_stream_push(&st, f.v, 2, false, out, 64), 0);
    EXPECT_EQ_INT(tok_stream_push(&st, f.v, 2, true, out, 64), 4);
    EXPECT_EQ_INT(tok_stream_push(&st, f.v, 32000, true, out, 64), CN_EINVAL);
    close_vocab(&f);
}

/* The generated ids of a fixture decode, streamed, to the concatenated
** reference pieces whenever those are valid UTF-8. */
TEST(tok_stream_fixture_pieces)
{
    const char *models[][2] = {
        {"models/aidreams260K.gguf", "vectors/aidreams260K/p4_unicode.json"},
        {"models/stories260K-rvspoc.gguf", "vectors/stories260K-rvspoc/p1_prose.json"},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(models); i++) {
        vocab_file f;
        if (!open_vocab(&f, test_data(models[i][0])))
            return;
        json_error_t je;
        json_t *j = json_load_file(test_data(models[i][1]), 0, &je);
        EXPECT(j != NULL);
        json_t *gen = json_object_get(j, "gen_ids");
        json_t *pieces = json_object_get(j, "gen_pieces_bytes");
        char want[8192], got[8192];
        size_t nw = 0, ng = 0;
        tok_stream st;
        tok_stream_init(&st);
        for (size_t k = 0; k < json_array_size(gen) && nw < 4096; k++) {
            json_t *b = json_array_get(pieces, k);
            for (size_t q = 0; q < json_array_size(b); q++)
                want[nw++] = (char)json_integer_value(json_array_get(b, q));
            int m = tok_stream_push(&st, f.v, (int32_t)json_integer_value(json_array_get(gen, k)),
                                    true, got + ng, 512);
            EXPECT(m >= 0);
            ng += m > 0 ? (size_t)m : 0;
        }
        int m = tok_stream_flush(&st, got + ng, 512);
        ng += m > 0 ? (size_t)m : 0;
        EXPECT_EQ_INT(cn_utf8_valid_prefix(got, ng), ng);
        if (cn_utf8_valid_prefix(want, nw) == nw)
            EXPECT(ng == nw && memcmp(got, want, nw) == 0);
        json_decref(j);
        close_vocab(&f);
    }
}

/* ---- hostile metadata ---------------------------------------------------- */

/* A GGUF image under construction, no tensors. */
typedef struct gb {
    unsigned char buf[1 << 14];
    size_t n;
    uint64_t n_kv;
} gb;

static void gb_raw(gb *b, const void *p, size_t n)
{
    if (b->n + n <= sizeof b->buf)
        memcpy(b->buf + b->n, p, n);
    b->n += n;
}
static void gb_u32v(gb *b, uint32_t x) { gb_raw(b, &x, 4); }
static void gb_u64v(gb *b, uint64_t x) { gb_raw(b, &x, 8); }
static void gb_strv(gb *b, const char *s)
{
    gb_u64v(b, strlen(s));
    gb_raw(b, s, strlen(s));
}
static void gb_key(gb *b, const char *key, uint32_t type)
{
    gb_strv(b, key);
    gb_u32v(b, type);
    b->n_kv++;
}
static void gb_init(gb *b)
{
    b->n = 0;
    b->n_kv = 0;
    gb_raw(b, "GGUF", 4);
    gb_u32v(b, 3);
    gb_u64v(b, 0); /* tensors */
    gb_u64v(b, 0); /* keys, patched by gb_open */
}
static void gb_str(gb *b, const char *key, const char *val)
{
    gb_key(b, key, GGUF_T_STRING);
    gb_strv(b, val);
}
static void gb_strs(gb *b, const char *key, const char *const *v, size_t n)
{
    gb_key(b, key, GGUF_T_ARRAY);
    gb_u32v(b, GGUF_T_STRING);
    gb_u64v(b, n);
    for (size_t i = 0; i < n; i++)
        gb_strv(b, v[i]);
}
static void gb_i32s(gb *b, const char *key, const int32_t *v, size_t n)
{
    gb_key(b, key, GGUF_T_ARRAY);
    gb_u32v(b, GGUF_T_INT32);
    gb_u64v(b, n);
    gb_raw(b, v, 4 * n);
}
static void gb_f32s(gb *b, const char *key, const float *v, size_t n)
{
    gb_key(b, key, GGUF_T_ARRAY);
    gb_u32v(b, GGUF_T_FLOAT32);
    gb_u64v(b, n);
    gb_raw(b, v, 4 * n);
}
static void gb_u32(gb *b, const char *key, uint32_t x)
{
    gb_key(b, key, GGUF_T_UINT32);
    gb_u32v(b, x);
}

/* Open the image as a vocab; returns tok_open's code, message in e. */
static int gb_open(gb *b, tok_vocab **v, gguf_file **g, cn_err *e)
{
    memcpy(b->buf + 16, &b->n_kv, 8);
    while (b->n % 32)
        gb_raw(b, "", 1);
    *v = NULL;
    int rc = gguf_open_buffer(g, b->buf, b->n, "hostile.gguf", e);
    if (rc) {
        test_fail_at(__FILE__, __LINE__, "gguf: %s", e->msg);
        return rc;
    }
    return tok_open(v, *g, e);
}

static const char *const spm_tokens[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b",
                                         "ab", "\u2581ab", "<0x41>"};
static const float spm_scores[] = {0, 0, 0, -1, -2, -2, -1.5f, -0.5f, 0, 0}; /* one spare */
static const int32_t spm_types[] = {2, 3, 3, 1, 1, 1, 1, 1, 6};

static void gb_spm(gb *b, size_t n_scores, size_t n_types)
{
    gb_init(b);
    gb_str(b, "tokenizer.ggml.model", "llama");
    gb_strs(b, "tokenizer.ggml.tokens", spm_tokens, 9);
    gb_f32s(b, "tokenizer.ggml.scores", spm_scores, n_scores);
    gb_i32s(b, "tokenizer.ggml.token_type", spm_types, n_types);
}

TEST(tok_hostile_metadata)
{
    static gb b;
    tok_vocab *v;
    gguf_file *g;
    cn_err e = {0};

    /* a well-formed little SPM vocab works */
    gb_spm(&b, 9, 9);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_OK);
    if (v) {
        int32_t ids[8];
        int n = tok_encode(v, "ab", 2, true, false, ids, 8, &e);
        EXPECT_EQ_INT(n, 2);
        EXPECT(n == 2 && ids[0] == 1 && ids[1] == 7); /* <s> ▁ab */
        /* no byte tokens for 'z': the unknown token; 'A' has <0x41> */
        n = tok_encode(v, "zA", 2, false, false, ids, 8, &e);
        EXPECT(n == 3 && ids[0] == 3 && ids[1] == 0 && ids[2] == 8);
    }
    tok_close(v);
    gguf_close(g);

    /* tokens missing */
    gb_init(&b);
    gb_str(&b, "tokenizer.ggml.model", "llama");
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "hostile.gguf");
    EXPECT_CONTAINS(e.msg, "tokenizer.ggml.tokens");
    gguf_close(g);

    /* token_type and scores of the wrong length */
    gb_spm(&b, 9, 8);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "tokenizer.ggml.token_type");
    EXPECT_CONTAINS(e.msg, "hostile.gguf");
    gguf_close(g);
    gb_spm(&b, 10, 9);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "tokenizer.ggml.scores");
    gguf_close(g);

    /* tokens of the wrong type */
    gb_init(&b);
    gb_str(&b, "tokenizer.ggml.model", "llama");
    gb_i32s(&b, "tokenizer.ggml.tokens", spm_types, 9);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "tokenizer.ggml.tokens");
    gguf_close(g);

    /* a duplicated token */
    static const char *const dup[] = {"<unk>", "a", "b", "a"};
    gb_init(&b);
    gb_str(&b, "tokenizer.ggml.model", "llama");
    gb_strs(&b, "tokenizer.ggml.tokens", dup, 4);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "duplicates");
    gguf_close(g);

    /* unknown model, no model */
    gb_init(&b);
    gb_str(&b, "tokenizer.ggml.model", "sentencepiece-9000");
    gb_strs(&b, "tokenizer.ggml.tokens", spm_tokens, 9);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EUNSUPPORTED);
    EXPECT_CONTAINS(e.msg, "sentencepiece-9000");
    gguf_close(g);
    gb_init(&b);
    gb_strs(&b, "tokenizer.ggml.tokens", spm_tokens, 9);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "tokenizer.ggml.model");
    gguf_close(g);

    /* add_bos without a usable bos id */
    gb_spm(&b, 9, 9);
    gb_u32(&b, "tokenizer.ggml.bos_token_id", 4000000000u);
    gb_key(&b, "tokenizer.ggml.add_bos_token", GGUF_T_BOOL);
    gb_raw(&b, "\1", 1);
    gb_u32(&b, "tokenizer.ggml.padding_token_id", 99);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_OK); /* the default bos (1) stays */
    if (v) {
        EXPECT_EQ_INT(tok_bos(v), 1);
        EXPECT_EQ_INT(tok_pad(v), -1);
        EXPECT_CONTAINS(tok_warning(v), "padding_token_id");
    }
    tok_close(v);
    gguf_close(g);
}

static const char *const bpe_tokens[] = {"a", "b", "c", "ab", "abc", "\xc4\xa0", "\u0120a",
                                         "<|end|>"};

static void gb_bpe(gb *b, const char *pre, const char *const *merges, size_t n_merges)
{
    static const int32_t types[] = {1, 1, 1, 1, 1, 1, 1, 3};
    gb_init(b);
    gb_str(b, "tokenizer.ggml.model", "gpt2");
    if (pre)
        gb_str(b, "tokenizer.ggml.pre", pre);
    gb_strs(b, "tokenizer.ggml.tokens", bpe_tokens, 8);
    gb_i32s(b, "tokenizer.ggml.token_type", types, 8);
    if (merges)
        gb_strs(b, "tokenizer.ggml.merges", merges, n_merges);
    gb_u32(b, "tokenizer.ggml.eos_token_id", 7);
}

TEST(tok_hostile_merges)
{
    static gb b;
    tok_vocab *v;
    gguf_file *g;
    cn_err e = {0};
    static const char *const good[] = {"a b", "ab c", "\xc4\xa0 a"};
    static const char *const bad[] = {"a b", "abc", "\xc4\xa0 a"};

    gb_bpe(&b, "gpt-2", good, 3);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_OK);
    if (v) {
        int32_t ids[8];
        int n = tok_encode(v, "abcab a", 7, false, false, ids, 8, &e);
        EXPECT(n == 3 && ids[0] == 4 && ids[1] == 3 && ids[2] == 6); /* abc ab Ġa */
        EXPECT(tok_is_eog(v, 7));
        EXPECT(tok_is_control(v, 7));
        EXPECT(!tok_add_bos(v));
    }
    tok_close(v);
    gguf_close(g);

    gb_bpe(&b, "gpt-2", bad, 3);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "tokenizer.ggml.merges");
    EXPECT_CONTAINS(e.msg, "abc");
    gguf_close(g);

    gb_bpe(&b, "gpt-2", NULL, 0);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "tokenizer.ggml.merges");
    gguf_close(g);

    /* an unknown pre-tokenizer works, with a warning */
    gb_bpe(&b, "mystery-9", good, 3);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_OK);
    if (v) {
        EXPECT_CONTAINS(tok_warning(v), "unknown pre-tokenizer 'mystery-9', using default");
        EXPECT_STR(tok_pre_name(v), "mystery-9");
    }
    tok_close(v);
    gguf_close(g);
    gb_bpe(&b, NULL, good, 3);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_OK);
    if (v) {
        EXPECT_CONTAINS(tok_warning(v), "using default");
        EXPECT_STR(tok_pre_name(v), "");
    }
    tok_close(v);
    gguf_close(g);
}

static const char *const wpm_tokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                         "\u2581a", "b", "\u2581ab", "\u2581!"};

static void gb_wpm(gb *b, bool with_ids)
{
    static const int32_t types[] = {3, 3, 3, 3, 1, 1, 1, 1};
    gb_init(b);
    gb_str(b, "tokenizer.ggml.model", "bert");
    gb_strs(b, "tokenizer.ggml.tokens", wpm_tokens, 8);
    gb_i32s(b, "tokenizer.ggml.token_type", types, 8);
    if (with_ids) {
        gb_u32(b, "tokenizer.ggml.bos_token_id", 2);
        gb_u32(b, "tokenizer.ggml.seperator_token_id", 3);
    }
}

TEST(tok_hostile_wpm)
{
    static gb b;
    tok_vocab *v;
    gguf_file *g;
    cn_err e = {0};
    int32_t ids[16];

    /* the default ids 101/102 do not exist in an 8-token vocab */
    gb_wpm(&b, false);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "hostile.gguf");
    EXPECT_CONTAINS(e.msg, "bos_token_id");
    gguf_close(g);
    gb_wpm(&b, false);
    gb_u32(&b, "tokenizer.ggml.bos_token_id", 2);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, "seperator_token_id");
    gguf_close(g);

    /* named ids work; no [UNK] id: an unknown word gives nothing */
    gb_wpm(&b, true);
    gb_key(&b, "tokenizer.ggml.add_eos_token", GGUF_T_BOOL); /* ignored, as in llama.cpp */
    gb_raw(&b, "\1", 1);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_OK);
    if (v) {
        EXPECT_EQ_INT(tok_type(v), TOK_WPM);
        EXPECT(tok_add_bos(v) && tok_add_sep(v) && !tok_add_eos(v));
        int n = tok_encode(v, "AB a !", 6, true, false, ids, 16, &e);
        EXPECT(n == 5 && ids[0] == 2 && ids[1] == 6 && ids[2] == 4 && ids[3] == 7 && ids[4] == 3);
        n = tok_encode(v, "abb a!", 6, false, false, ids, 16, &e);
        EXPECT(n == 4 && ids[0] == 6 && ids[1] == 5 && ids[2] == 4 && ids[3] == 7);
        EXPECT_EQ_INT(tok_unk(v), -1);
        EXPECT_EQ_INT(tok_encode(v, "ba", 2, false, false, ids, 16, &e), 0);
        EXPECT(tok_warning(v) == NULL);
    }
    tok_close(v);
    gguf_close(g);

    /* with an [UNK] id; a cls_token_id llama.cpp would not use is reported */
    gb_wpm(&b, true);
    gb_u32(&b, "tokenizer.ggml.unknown_token_id", 1);
    gb_u32(&b, "tokenizer.ggml.cls_token_id", 5);
    EXPECT_EQ_INT(gb_open(&b, &v, &g, &e), CN_OK);
    if (v) {
        int n = tok_encode(v, "ba ab", 5, true, false, ids, 16, &e);
        EXPECT(n == 4 && ids[0] == 2 && ids[1] == 1 && ids[2] == 6 && ids[3] == 3);
        EXPECT_CONTAINS(tok_warning(v), "cls_token_id = 5");
    }
    tok_close(v);
    gguf_close(g);
}

/* ---- the merge queue ------------------------------------------------- */

TEST(tok_bigram_heap_order)
{
    tok_bigram_heap h = {0};
    tok_bigram g;
    EXPECT(!tok_bigram_pop(&h, &g));
    /* BPE queues -rank: rank 0 first, then the leftmost of the two rank 3 */
    int32_t rank[] = {5, 3, 0, 3};
    for (int i = 0; i < 4; i++)
        EXPECT_EQ_INT(tok_bigram_push(&h, (tok_bigram){-(float)rank[i], i, i + 1, 2}), CN_OK);
    int32_t want[] = {2, 1, 3, 0};
    for (int i = 0; i < 4; i++) {
        EXPECT(tok_bigram_pop(&h, &g));
        EXPECT_EQ_INT(g.left, want[i]);
    }
    EXPECT(!tok_bigram_pop(&h, &g));

    /* many ties, some pops among the pushes; the rest comes out highest score
    ** first, leftmost first among equal scores */
    uint32_t x = 12345, n_out = 0;
    tok_bigram prev = {0};
    for (int i = 0; i < 5000; i++) {
        x = x * 1103515245u + 12345u;
        tok_bigram b = {(float)(x >> 28), (int32_t)(x >> 8 & 1023), 0, 0}; /* 16 scores */
        EXPECT_EQ_INT(tok_bigram_push(&h, b), CN_OK);
        if (i % 3 == 2) {
            EXPECT(tok_bigram_pop(&h, &g));
            n_out++;
        }
    }
    for (bool first = true; tok_bigram_pop(&h, &g); first = false, n_out++) {
        if (!first && (g.score > prev.score || (g.score == prev.score && g.left < prev.left)))
            test_fail_at(__FILE__, __LINE__, "(%g, %d) popped after (%g, %d)", g.score, g.left,
                         prev.score, prev.left);
        prev = g;
    }
    EXPECT_EQ_INT(n_out, 5000);
    free(h.v);
}

/* ---- speed ------------------------------------------------------------ */

/* About 100 kB of prose, code, numbers and non-Latin text. */
static char *big_text(size_t *len)
{
    size_t cap = 110000, n = 0;
    char *s = malloc(cap);
    for (size_t i = 0; n + 2048 < cap - 1; i++) {
        char *t;
        size_t tl;
        char rel[64];
        snprintf(rel, sizeof rel, "prompts/%s.txt", prompts[i % CN_ARRAY_LEN(prompts)]);
        if (cn_read_file(test_data(rel), 1 << 16, &t, &tl, NULL) != CN_OK)
            break;
        tl = CN_MIN(tl, cap - 1 - n);
        memcpy(s + n, t, tl);
        n += tl;
        s[n++] = '\n';
        free(t);
    }
    *len = n;
    return s;
}

static void time_encode(const char *path, const char *what)
{
    vocab_file f;
    if (!open_vocab(&f, path))
        return;
    size_t len;
    char *s = big_text(&len);
    double t0 = cn_now();
    cn_err e = {0};
    int n = tok_encode(f.v, s, len, true, true, NULL, 0, &e);
    double dt = cn_now() - t0;
    printf("     %s: %zu bytes -> %d tokens in %.1f ms\n", what, len, n, dt * 1e3);
    EXPECT(n > (int)(len / 10));
    EXPECT(dt < 10.0); /* generous: sanitizer builds are slow */
    free(s);
    close_vocab(&f);
}

TEST(tok_speed_100k)
{
    time_encode(test_data("vocab/ggml-vocab-gpt-2.gguf"), "gpt-2");
    time_encode(test_data("vocab/ggml-vocab-llama-spm.gguf"), "llama-spm");
    time_encode(test_data(LLAMA_BPE), "llama-bpe");
    time_encode(test_data(QWEN2), "qwen2");
    time_encode(test_data("vocab/ggml-vocab-bert-bge.gguf"), "bert-bge");
}
