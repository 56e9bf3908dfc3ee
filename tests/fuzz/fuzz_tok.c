/*
** fuzz_tok.c: libFuzzer target for the tokenizers. The first input byte
** picks the vocab (bit 3 set: bert-bge WordPiece; else bit 0: gpt-2
** byte-level BPE or llama SentencePiece), the flags (bit 1 add_special, bit 2
** parse_special) and a token budget for tok_encode_trunc() (bits 4-7, 1 to
** 16); the rest is the text. Every input is encoded, each id is decoded with
** tok_piece() and through the streaming decoder, and these must hold:
**   - the stream gives valid UTF-8;
**   - SPM without special parsing gives back " " + the input, byte for byte
**     (byte fallback covers every byte) once every "▁" is read as " " (see
**     unescape()), or nothing for no input;
**   - BPE without special parsing gives back a valid UTF-8 input exactly;
**   - WordPiece without special parsing and without [UNK]: the decoded text
**     (normalized words, each after a space) encodes to the same ids;
**   - tok_encode_trunc() gives the first ids of the full encoding (specials
**     added, none parsed), at most the budget, with the closing special last
**     when it cut, and says whether it cut.
**
** Built with -DCAIRN_LIBFUZZER by `make fuzz` (build/fuzz/fuzz_tok, run from
** the repository root). In the plain test build the same file becomes the
** test fuzz_tok_corpus, which replays tests/fuzz/corpus/tok/.
*/
#include "tok/tok.h"
#include "fuzz_replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CAIRN_LIBFUZZER
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#else
#define FUZZ_ENTRY fuzz_tok_one
int fuzz_tok_one(const uint8_t *data, size_t size);
#endif

#define N_VOCABS 3
static const char *const vocab_paths[N_VOCABS] = {
    "tests/data/vocab/ggml-vocab-gpt-2.gguf",
    "tests/data/vocab/ggml-vocab-llama-spm.gguf",
    "tests/data/vocab/ggml-vocab-bert-bge.gguf",
};
static gguf_file *files[N_VOCABS];
static tok_vocab *vocabs[N_VOCABS];

static tok_vocab *get_vocab(int k)
{
    if (!vocabs[k]) {
        cn_err e = {0};
        if (gguf_open(&files[k], vocab_paths[k], &e) || tok_open(&vocabs[k], files[k], &e)) {
            fprintf(stderr, "fuzz_tok: %s (run from the repository root)\n", e.msg);
            abort();
        }
    }
    return vocabs[k];
}

/* Every "▁" -> " ", in place; returns the new length. An invalid lead byte
** can swallow the first byte of an escaped space, which then comes back as
** raw bytes "▁" rather than " " (llama.cpp does the same), so SPM output is
** compared with the input after this on both sides. */
static size_t unescape(char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            s[k++] = ' ';
            i += 2;
        } else {
            s[k++] = s[i];
        }
    }
    return k;
}

/* Encode into a malloc'd array (specials added, none parsed); the count or
** a negative code. */
static int encode_all(const tok_vocab *v, const char *text, size_t len, bool add_special,
                      int32_t **ids)
{
    cn_err e = {0};
    *ids = NULL;
    int n = tok_encode(v, text, len, add_special, false, NULL, 0, &e);
    CHECK(n >= 0, "encode failed: %s", e.msg);
    if (n < 0)
        return n;
    *ids = malloc(((size_t)n + 1) * sizeof **ids);
    CHECK(tok_encode(v, text, len, add_special, false, *ids, n, &e) == n, "second encode differs");
    return n;
}

/* tok_encode_trunc() against the full encoding. */
static void check_trunc(const tok_vocab *v, const char *text, size_t len, int max)
{
    int32_t *full, *out = malloc((size_t)max * sizeof *out);
    int n = encode_all(v, text, len, true, &full);
    bool cut = false;
    cn_err e = {0};
    int t = tok_encode_trunc(v, text, len, max, out, &cut, &e);
    CHECK(t >= 0, "tok_encode_trunc failed: %s", e.msg);
    if (n >= 0 && t >= 0) {
        CHECK(t == (n < max ? n : max), "tok_encode_trunc gave %d of %d, budget %d", t, n, max);
        CHECK(cut == (n > max), "tok_encode_trunc: truncated is %d for %d of %d", cut, n, max);
        int32_t close = tok_add_sep(v) ? tok_sep(v) : tok_add_eos(v) ? tok_eos(v) : -1;
        for (int i = 0; i < t; i++) {
            int32_t want = cut && i == t - 1 && close >= 0 ? close : full[i];
            CHECK(out[i] == want, "tok_encode_trunc: id %d is %d, want %d", i, out[i], want);
        }
    }
    free(full);
    free(out);
}

/* WordPiece: without [UNK], the decoded pieces are the normalized words,
** each after a space, and encode to the same ids. ids may hold [CLS] first
** and [SEP] last (add_special); they decode to nothing. */
static void check_wpm_roundtrip(const tok_vocab *v, const int32_t *ids, int n, bool add_special,
                                const char *pieces, size_t plen)
{
    int a = add_special ? 1 : 0, b = add_special ? n - 1 : n;
    for (int i = a; i < b; i++)
        if (ids[i] == tok_unk(v))
            return;
    int32_t *again;
    int m = encode_all(v, pieces, plen, false, &again);
    CHECK(m == b - a, "WPM: decoded text gives %d ids, not %d", m, b - a);
    if (m == b - a && m > 0)
        CHECK(memcmp(again, ids + a, (size_t)m * sizeof *again) == 0,
              "WPM: decoded text gives other ids");
    free(again);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int k = data[0] & 8 ? 2 : data[0] & 1;
    int max_trunc = 1 + (data[0] >> 4);
    bool add_special = data[0] & 2, parse_special = data[0] & 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    tok_vocab *v = get_vocab(k);

    cn_err e = {0};
    int n = tok_encode(v, text, len, add_special, parse_special, NULL, 0, &e);
    CHECK(n >= 0, "encode failed: %s", e.msg);
    if (n < 0)
        return 0;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    CHECK(tok_encode(v, text, len, add_special, parse_special, ids, n, &e) == n,
          "second encode differs");

    size_t cap = 0, plen = 0, slen = 0;
    for (int i = 0; i < n; i++) {
        int m = tok_piece(v, ids[i], false, NULL, 0);
        cap += m > 0 ? (size_t)m : 0;
    }
    char *pieces = malloc(cap + 1), *streamed = malloc(3 * (cap + 3) + 1);
    tok_stream st;
    tok_stream_init(&st);
    for (int i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && ids[i] < tok_n_vocab(v), "id %d out of range", ids[i]);
        int m = tok_piece(v, ids[i], false, NULL, 0);
        CHECK(m >= 0, "piece of %d: %d", ids[i], m);
        if (m > 0 && plen + (size_t)m <= cap)
            plen += (size_t)tok_piece(v, ids[i], false, pieces + plen, m);
        int s = tok_stream_push(&st, v, ids[i], false, streamed + slen, 3 * (m + 3));
        CHECK(s >= 0, "stream push of %d: %d", ids[i], s);
        if (s > 0)
            slen += (size_t)s;
    }
    int s = tok_stream_flush(&st, streamed + slen, 3);
    CHECK(s >= 0, "stream flush: %d", s);
    slen += s > 0 ? (size_t)s : 0;
    CHECK(cn_utf8_valid_prefix(streamed, slen) == slen, "stream output is not valid UTF-8");

    if (!parse_special) {
        if (k == 1 && len == 0) {
            CHECK(plen == 0, "SPM: no text, yet %zu bytes", plen);
        } else if (k == 1) { /* SPM: the space prefix, then every byte */
            char *want = malloc(len + 1);
            want[0] = ' ';
            memcpy(want + 1, text, len);
            size_t wlen = unescape(want, len + 1);
            plen = unescape(pieces, plen);
            CHECK(plen == wlen && memcmp(pieces, want, wlen) == 0, "SPM round trip differs");
            free(want);
        }
        else if (k == 2)
            check_wpm_roundtrip(v, ids, n, add_special, pieces, plen);
        else if (cn_utf8_valid_prefix(text, len) == len)
            CHECK(plen == len && memcmp(pieces, text, len) == 0, "BPE round trip differs");
    }
    check_trunc(v, text, len, max_trunc);
    free(pieces);
    free(streamed);
    free(ids);
    return 0;
}

#ifndef CAIRN_LIBFUZZER
/* Replay the saved corpus through the same checks. */
TEST(fuzz_tok_corpus)
{
    int n = fuzz_replay_dir("tests/fuzz/corpus/tok", fuzz_tok_one);
    if (n < 0)
        SKIP("tests/fuzz/corpus/tok not found");
    for (int k = 0; k < N_VOCABS; k++) {
        tok_close(vocabs[k]);
        gguf_close(files[k]);
        vocabs[k] = NULL;
        files[k] = NULL;
    }
    printf("     replayed %d corpus files\n", n);
    EXPECT(n > 0);
}
#endif
