/*
** wpm.c: WordPiece (tokenizer.ggml.model "bert"), as llama.cpp's
** llm_tokenizer_wpm_session does it (b4747), so that ids match exactly.
**
** A GGUF does not hold BERT's vocab.txt as is: llama.cpp's converter writes a
** word-initial piece "x" as "▁x" (U+2581) and a continuation "##x" as plain
** "x"; bracketed tokens such as "[CLS]" stay. Encoding a stretch of text:
**
**   1. decode the bytes leniently (tok_cpt_decode: a bad byte is U+FFFD);
**   2. replace each code point by the first code point of its canonical
**      decomposition. This is llama.cpp's "NFD": a one-to-one map, so "é"
**      becomes "e", but a combining mark typed as its own code point stays
**      (HF's BertNormalizer would drop it; llama.cpp does not);
**   3. sort each code point into
**        - White_Space: ends the current word;
**        - U+0000, U+FFFD, categories Cc Cf Co Cs: dropped;
**        - punctuation (P*), the ASCII symbols $ + < = > ^ ` | ~ and CJK
**          ideographs: a word of its own;
**        - anything else (letters, digits, marks, other symbols, unassigned):
**          lower-cased by the simple Unicode mapping and added to the word.
**      Every BERT vocab is lower-cased: llama.cpp has no cased mode;
**   4. cut each word, "▁" in front, greedily: at each position the longest
**      vocab token that matches there. If some position matches nothing, the
**      whole word becomes [UNK]. Words have no length limit (HF's 100
**      characters per word is not in llama.cpp).
**
** Step 4 hashes every prefix at a position in one pass (FNV is incremental)
** and looks up only lengths some token has, so a position costs O(longest
** token) and the text O(length * longest token): never quadratic in the text.
*/
#include "tok/tok_int.h"

#include <utf8proc.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define KEY(k) "tokenizer.ggml." k
#define PHANTOM "\xe2\x96\x81" /* U+2581, before every word */
#define PHANTOM_LEN 3

/* ---- open ------------------------------------------------------------- */

/*
** After the common special-token setup: llama.cpp's defaults for "bert" are
** [CLS] = bos = 101, [UNK] = 100, [SEP] = 102, [PAD] = 0, [MASK] = 103 (set
** by tok_open), overridden by the *_token_id keys. With add_special, encoding
** is [CLS] ... [SEP] whatever add_bos_token / add_eos_token say, since
** llama.cpp's WPM path ignores them.
*/
int tok_wpm_setup(tok_vocab *v, const gguf_file *g, cn_err *err)
{
    if (v->bos < 0)
        return cn_fail(err, CN_EFORMAT, "%s: WordPiece vocab of %d tokens has no valid [CLS] id ('"
                       KEY("bos_token_id") "', default 101)", g->path, v->n_vocab);
    if (v->sep < 0)
        return cn_fail(err, CN_EFORMAT, "%s: WordPiece vocab of %d tokens has no valid [SEP] id ('"
                       KEY("seperator_token_id") "', default 102)", g->path, v->n_vocab);
    v->add_bos = true;
    v->add_eos = false;
    v->add_sep = true;

    /* gguf-py writes cls_token_id; llama.cpp b4747 never reads it and uses
    ** the bos id for [CLS]. Say so when the two disagree. */
    int64_t cls;
    if (gguf_get_i64(g, KEY("cls_token_id"), &cls, NULL) == CN_OK && cls != v->bos)
        tok_add_warning(v, KEY("cls_token_id") " = %" PRId64 " is not the BOS id %d that "
                        "llama.cpp adds as [CLS]; using %d", cls, v->bos, v->bos);

    v->len_used = cn_calloc((size_t)v->max_token_len + 1, 1);
    if (!v->len_used)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", g->path);
    for (int32_t i = 0; i < v->n_vocab; i++)
        v->len_used[v->len[i]] = 1;
    return CN_OK;
}

/* ---- normalization ------------------------------------------------------ */

enum { C_WORD, C_SPACE, C_DROP, C_ALONE };

/* llama.cpp's is_chinese_char, including its 0x2B920 (HF's value; the CJK
** block starts at 0x2B820). */
static bool is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* The first code point of c's full canonical decomposition. Nothing below
** U+00C0 decomposes canonically. */
static uint32_t nfd_first(uint32_t c)
{
    if (c < 0xC0)
        return c;
    utf8proc_int32_t d[32];
    int boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, d, 32, UTF8PROC_DECOMPOSE,
                                                 &boundclass);
    return n >= 1 && n <= 32 ? (uint32_t)d[0] : c;
}

/* What step 3 does with c (already mapped by nfd_first). */
static int classify(uint32_t c)
{
    if (tok_cpt_is_space(c))
        return C_SPACE;
    if (c < 0x80) {
        if (c < 0x20 || c == 0x7F)
            return C_DROP;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            return C_WORD;
        return C_ALONE; /* every other printable ASCII character is P* or S* */
    }
    if (c == 0xFFFD)
        return C_DROP;
    if (is_cjk(c))
        return C_ALONE;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
        return C_DROP;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return C_ALONE;
    default:
        return C_WORD;
    }
}

static uint32_t lower(uint32_t c)
{
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

/* ---- cutting words ------------------------------------------------------ */

typedef struct wpm_work {
    char *word;   /* "▁" + the word's UTF-8 */
    size_t n, cap;
    uint64_t *h;  /* h[k]: FNV state after k bytes from the current position */
    size_t cap_h;
} wpm_work;

static int put_cpt(wpm_work *w, uint32_t c)
{
    if (w->n + 4 > w->cap) {
        size_t cap = w->cap * 2;
        char *p = cn_realloc_array(w->word, cap, 1);
        if (!p)
            return CN_ENOMEM;
        w->word = p;
        w->cap = cap;
    }
    w->n += tok_cpt_encode(w->word + w->n, c);
    return CN_OK;
}

/* Greedy longest match over w->word[0..n); the word is [UNK] if some
** position matches no token (llama.cpp then drops what it had matched). */
static int cut_word(const tok_vocab *v, wpm_work *w, tok_ids *ids)
{
    const unsigned char *s = (const unsigned char *)w->word;
    size_t n = w->n, start = ids->n, longest = (size_t)v->max_token_len;
    for (size_t i = 0; i < n;) {
        size_t m = CN_MIN(n - i, longest);
        if (m + 1 > w->cap_h) {
            uint64_t *p = cn_realloc_array(w->h, m + 1, sizeof *p);
            if (!p)
                return CN_ENOMEM;
            w->h = p;
            w->cap_h = m + 1;
        }
        uint64_t h = TOK_FNV_BASIS;
        for (size_t k = 1; k <= m; k++)
            w->h[k] = h = tok_fnv_step(h, s[i + k - 1]);
        int32_t id = -1;
        size_t k = m;
        for (; k >= 1; k--) {
            if (!v->len_used[k])
                continue;
            id = tok_lookup_hashed(v, w->word + i, k, tok_hash_final(w->h[k]));
            if (id >= 0)
                break;
        }
        if (id < 0) {
            ids->n = start;
            break;
        }
        if (tok_ids_push(ids, id))
            return CN_ENOMEM;
        i += k;
    }
    /* llama.cpp pushes token_unk() unchecked; a vocab without one gets nothing */
    if (ids->n == start && v->unk >= 0)
        return tok_ids_push(ids, v->unk);
    return CN_OK;
}

static int end_word(const tok_vocab *v, wpm_work *w, tok_ids *ids)
{
    if (w->n == PHANTOM_LEN)
        return CN_OK;
    int rc = cut_word(v, w, ids);
    w->n = PHANTOM_LEN;
    return rc;
}

int tok_wpm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *ids, cn_err *err)
{
    const unsigned char *u = (const unsigned char *)text;
    wpm_work w = {cn_malloc(64), PHANTOM_LEN, 64, NULL, 0};
    int rc = w.word ? CN_OK : CN_ENOMEM;
    if (w.word)
        memcpy(w.word, PHANTOM, PHANTOM_LEN);
    for (size_t i = 0; !rc && i < len;) {
        size_t adv;
        uint32_t c = nfd_first(tok_cpt_decode(u + i, len - i, &adv));
        i += adv;
        switch (classify(c)) {
        case C_SPACE:
            rc = end_word(v, &w, ids);
            break;
        case C_DROP:
            break;
        case C_ALONE:
            rc = end_word(v, &w, ids);
            if (!rc)
                rc = put_cpt(&w, lower(c));
            if (!rc)
                rc = end_word(v, &w, ids);
            break;
        default:
            rc = put_cpt(&w, lower(c));
        }
    }
    if (!rc)
        rc = end_word(v, &w, ids);
    free(w.word);
    free(w.h);
    if (rc)
        return cn_fail(err, rc, "tokenizer: out of memory for %zu bytes of text", len);
    return CN_OK;
}
