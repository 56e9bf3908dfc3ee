/*
** tok.c: the vocab and everything around the three tokenizers. Start at
** tok_open(): model and token table, special ids, end-of-generation set,
** special-token cache; then tok_encode(): special-token partitioning, then
** spm.c, bpe.c or wpm.c for each stretch of plain text; tok_encode_trunc();
** then tok_piece() and the streaming decoder. The small helpers at the top
** include the merge queue (tok_bigram_heap) that spm.c and bpe.c share.
**
** The behaviour follows llama.cpp's llama-vocab.cpp (b4747) rule for rule, so
** that ids match exactly; where this file departs from it, a comment says why.
*/
#include "tok/tok_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY(k) "tokenizer.ggml." k

/* ---- small helpers ---------------------------------------------------- */

uint64_t tok_hash(const void *p, size_t n)
{
    /* FNV-1a, then a final mix so that both halves are usable */
    const unsigned char *s = p;
    uint64_t h = TOK_FNV_BASIS;
    for (size_t i = 0; i < n; i++)
        h = tok_fnv_step(h, s[i]);
    return tok_hash_final(h);
}

bool tok_cpt_is_space(uint32_t c)
{
    if (c < 0x80)
        return c == ' ' || (c >= '\t' && c <= '\r');
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

uint32_t tok_cpt_decode(const unsigned char *s, size_t n, size_t *adv)
{
    unsigned char c = s[0];
    *adv = 1;
    if (c < 0x80)
        return c;
    int len = (c & 0x40) == 0 ? 0 : (c & 0x20) == 0 ? 2 : (c & 0x10) == 0 ? 3
                                                      : (c & 0x08) == 0 ? 4 : 0;
    if (len == 0 || (size_t)len > n)
        return 0xFFFD;
    uint32_t cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0xFFFD;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp > 0x10FFFF)
        return 0xFFFD;
    *adv = (size_t)len;
    return cp;
}

size_t tok_cpt_encode(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | c >> 6);
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12);
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18);
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

int tok_ids_push(tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        if (cap > ((size_t)1 << 31))
            return CN_ENOMEM;
        int32_t *p = cn_realloc_array(ids->v, cap, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        ids->v = p;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return CN_OK;
}

/* The merge queue: a binary heap ordered by before(). */
static bool before(const tok_bigram *a, const tok_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

int tok_bigram_push(tok_bigram_heap *h, tok_bigram g)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_bigram *p = cn_realloc_array(h->v, cap, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && before(&g, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = g;
    return CN_OK;
}

bool tok_bigram_pop(tok_bigram_heap *h, tok_bigram *out)
{
    if (h->n == 0)
        return false;
    *out = h->v[0];
    tok_bigram last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n)
        h->v[i] = last;
    return true;
}

void tok_add_warning(tok_vocab *v, const char *fmt, ...)
{
    size_t n = strlen(v->warning);
    if (n + 4 >= sizeof v->warning)
        return;
    if (n) {
        memcpy(v->warning + n, "; ", 3);
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->warning + n, sizeof v->warning - n, fmt, ap);
    va_end(ap);
}

static uint64_t pow2_at_least(uint64_t n)
{
    uint64_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

/* ---- the token map ---------------------------------------------------- */

int32_t tok_lookup_hashed(const tok_vocab *v, const char *text, size_t len, uint64_t h)
{
    uint64_t tag = h >> 32;
    for (uint64_t i = h & v->map.mask;; i = (i + 1) & v->map.mask) {
        uint64_t s = v->map.slots[i];
        if (!s)
            return -1;
        if ((s >> 32) != tag)
            continue;
        int32_t id = (int32_t)(uint32_t)s - 1;
        if (v->len[id] == len && memcmp(v->blob + v->off[id], text, len) == 0)
            return id;
    }
}

int32_t tok_lookup(const tok_vocab *v, const char *text, size_t len)
{
    return tok_lookup_hashed(v, text, len, tok_hash(text, len));
}

/* Insert id; returns the id already holding the same text, or -1. */
static int32_t map_insert(tok_vocab *v, int32_t id)
{
    const char *text = v->blob + v->off[id];
    size_t len = v->len[id];
    uint64_t h = tok_hash(text, len);
    uint64_t tag = h >> 32;
    uint64_t i;
    for (i = h & v->map.mask; v->map.slots[i]; i = (i + 1) & v->map.mask) {
        uint64_t s = v->map.slots[i];
        int32_t other = (int32_t)(uint32_t)s - 1;
        if ((s >> 32) == tag && v->len[other] == len &&
            memcmp(v->blob + v->off[other], text, len) == 0)
            return other;
    }
    v->map.slots[i] = tag << 32 | (uint32_t)(id + 1);
    return -1;
}

int32_t tok_spm_byte_token(const tok_vocab *v, unsigned char c)
{
    char buf[8];
    snprintf(buf, sizeof buf, "<0x%02X>", c);
    int32_t id = tok_lookup(v, buf, 6);
    if (id >= 0)
        return id;
    return tok_lookup(v, (const char *)&c, 1);
}

/* ---- open: token table ------------------------------------------------ */

static int read_tokens(tok_vocab *v, const gguf_file *g, cn_err *err)
{
    const gguf_value *toks;
    int rc = gguf_get_arr(g, KEY("tokens"), GGUF_T_STRING, &toks, err);
    if (rc == CN_ENOTFOUND)
        return cn_fail(err, CN_EFORMAT, "%s: missing metadata key '" KEY("tokens") "'", g->path);
    if (rc)
        return rc;
    if (toks->arr.n == 0 || toks->arr.n > TOK_MAX_VOCAB)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("tokens") "' has %" PRIu64
                       " tokens (expected 1 to %d)", g->path, toks->arr.n, TOK_MAX_VOCAB);
    uint64_t n = toks->arr.n;
    v->n_vocab = (int32_t)n;

    /* scores and types must describe exactly the same tokens */
    const gguf_value *scores = NULL, *types = NULL;
    rc = gguf_get_arr(g, KEY("scores"), GGUF_T_COUNT, &scores, err);
    if (rc && rc != CN_ENOTFOUND)
        return rc;
    if (scores && scores->arr.type != GGUF_T_FLOAT32 && scores->arr.type != GGUF_T_INT32)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("scores") "' is an array of %s, "
                       "expected f32", g->path, gguf_vtype_name(scores->arr.type));
    if (scores && scores->arr.n != n)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("scores") "' has %" PRIu64
                       " entries but '" KEY("tokens") "' has %" PRIu64, g->path, scores->arr.n, n);
    rc = gguf_get_arr(g, KEY("token_type"), GGUF_T_COUNT, &types, err);
    if (rc && rc != CN_ENOTFOUND)
        return rc;
    if (types && (types->arr.type == GGUF_T_STRING || types->arr.type == GGUF_T_ARRAY ||
                  types->arr.type == GGUF_T_FLOAT32 || types->arr.type == GGUF_T_FLOAT64))
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("token_type") "' is an array of "
                       "%s, expected i32", g->path, gguf_vtype_name(types->arr.type));
    if (types && types->arr.n != n)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("token_type") "' has %" PRIu64
                       " entries but '" KEY("tokens") "' has %" PRIu64, g->path, types->arr.n, n);

    uint64_t blob_len = 0;
    for (uint64_t i = 0; i < n; i++)
        blob_len += (toks->arr.strs[i].len ? toks->arr.strs[i].len : 24) + 1;
    if (blob_len >= UINT32_MAX)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("tokens") "' holds %" PRIu64
                       " bytes of text, too many", g->path, blob_len);

    v->blob = cn_malloc((size_t)blob_len);
    v->off = cn_calloc(n, sizeof *v->off);
    v->len = cn_calloc(n, sizeof *v->len);
    v->score = cn_calloc(n, sizeof *v->score);
    v->attr = cn_calloc(n, sizeof *v->attr);
    v->map.mask = pow2_at_least(n * 2) - 1;
    v->map.slots = cn_calloc(v->map.mask + 1, sizeof *v->map.slots);
    if (!v->blob || !v->off || !v->len || !v->score || !v->attr || !v->map.slots)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory for %" PRIu64 " tokens", g->path, n);

    uint32_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s = toks->arr.strs[i];
        v->off[i] = pos;
        if (s.len) {
            memcpy(v->blob + pos, s.ptr, s.len);
            v->len[i] = (uint32_t)s.len;
        } else { /* llama.cpp gives an empty token a unique name */
            v->len[i] = (uint32_t)snprintf(v->blob + pos, 25, "[EMPTY_%" PRIu64 "]", i);
        }
        pos += v->len[i];
        v->blob[pos++] = '\0';
        if ((int)v->len[i] > v->max_token_len)
            v->max_token_len = (int)v->len[i];

        v->score[i] = scores ? (float)gguf_arr_f64(scores, i) : 0.0f;
        int64_t t = types ? gguf_arr_i64(types, i) : 1;
        static const uint16_t by_type[7] = {TOK_A_UNDEFINED, TOK_A_NORMAL, TOK_A_UNKNOWN,
                                            TOK_A_CONTROL, TOK_A_USER_DEFINED, TOK_A_UNUSED,
                                            TOK_A_BYTE};
        v->attr[i] = t >= 0 && t <= 6 ? by_type[t] : TOK_A_UNDEFINED;

        int32_t dup = map_insert(v, (int32_t)i);
        if (dup >= 0)
            return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("tokens") "': token %" PRIu64
                           " '%.40s' duplicates token %d", g->path, i, v->blob + v->off[i], dup);
    }
    return CN_OK;
}

/* ---- open: special tokens ----------------------------------------------- */

/* Read an optional special-token id. Out-of-range values keep the default,
** with a warning, as llama.cpp does (some files store 0xFFFFFFFF for none). */
static int read_special(tok_vocab *v, const gguf_file *g, const char *key, int32_t *id,
                        cn_err *err)
{
    if (*id >= v->n_vocab)
        *id = -1;
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv)
        return CN_OK;
    uint32_t t = kv->val.type;
    bool is_unsigned = t == GGUF_T_UINT8 || t == GGUF_T_UINT16 || t == GGUF_T_UINT32 ||
                       t == GGUF_T_UINT64;
    bool is_signed = t == GGUF_T_INT8 || t == GGUF_T_INT16 || t == GGUF_T_INT32 ||
                     t == GGUF_T_INT64;
    if (!is_unsigned && !is_signed)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '%s' is %s, expected an integer",
                       g->path, key, gguf_vtype_name(t));
    bool ok = is_unsigned ? kv->val.u64 < (uint64_t)v->n_vocab
                          : kv->val.i64 >= 0 && kv->val.i64 < v->n_vocab;
    if (ok)
        *id = (int32_t)kv->val.u64;
    else if (is_unsigned)
        tok_add_warning(v, "%s = %" PRIu64 " is out of range, ignored", key, kv->val.u64);
    else
        tok_add_warning(v, "%s = %" PRId64 " is out of range, ignored", key, kv->val.i64);
    return CN_OK;
}

static int read_bool(const gguf_file *g, const char *key, bool *out, cn_err *err)
{
    int rc = gguf_get_bool(g, key, out, err);
    return rc == CN_ENOTFOUND ? CN_OK : rc;
}

/* Texts llama.cpp recognises when the metadata does not name the token. */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>",
    "<\uFF5Cend\u2581of\u2581sentence\uFF5C>", /* DeepSeek */
};
static const char *const eom_texts[] = {"<|eom_id|>"};
static const char *const fim_pre_texts[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                            "<\uFF5Cfim\u2581begin\uFF5C>",
                                            "<PRE>"};
static const char *const fim_suf_texts[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                            "<\uFF5Cfim\u2581hole\uFF5C>",
                                            "<SUF>"};
static const char *const fim_mid_texts[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                            "<\uFF5Cfim\u2581end\uFF5C>",
                                            "<MID>"};
static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"};
static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                            "<REPO>", "<reponame>"};
static const char *const fim_sep_texts[] = {"<|file_sep|>", "<fim-sep>", "<filename>"};
/* End-of-generation markers; llama.cpp also promotes them to control. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>",
};

static int32_t find_text(const tok_vocab *v, const char *t)
{
    return tok_lookup(v, t, strlen(t));
}

/* If *id is unset, the first listed text present in the vocab becomes it,
** and is made a control token. */
static void detect(tok_vocab *v, int32_t *id, const char *const *texts, size_t n)
{
    if (*id >= 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int32_t t = find_text(v, texts[i]);
        if (t >= 0) {
            *id = t;
            v->attr[t] |= TOK_A_CONTROL;
            return;
        }
    }
}

static void set_eog(tok_vocab *v, int32_t id)
{
    if (id >= 0 && id < v->n_vocab)
        v->attr[id] |= TOK_A_EOG;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool contains_ci(gguf_str s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++) {
        size_t j = 0;
        while (j < n && tolower((unsigned char)s.ptr[i + j]) == needle[j])
            j++;
        if (j == n)
            return true;
    }
    return false;
}

static int setup_specials(tok_vocab *v, const gguf_file *g, cn_err *err)
{
    static const struct {
        const char *key;
        size_t field; /* offset of the int32_t in tok_vocab */
    } keys[] = {
        {KEY("bos_token_id"), offsetof(tok_vocab, bos)},
        {KEY("eos_token_id"), offsetof(tok_vocab, eos)},
        {KEY("eot_token_id"), offsetof(tok_vocab, eot)},
        {KEY("eom_token_id"), offsetof(tok_vocab, eom)},
        {KEY("unknown_token_id"), offsetof(tok_vocab, unk)},
        {KEY("seperator_token_id"), offsetof(tok_vocab, sep)}, /* sic, as written by gguf-py */
        {KEY("padding_token_id"), offsetof(tok_vocab, pad)},
        {KEY("mask_token_id"), offsetof(tok_vocab, mask)},
        {KEY("fim_pre_token_id"), offsetof(tok_vocab, fim_pre)},
        {KEY("fim_suf_token_id"), offsetof(tok_vocab, fim_suf)},
        {KEY("fim_mid_token_id"), offsetof(tok_vocab, fim_mid)},
        {KEY("fim_pad_token_id"), offsetof(tok_vocab, fim_pad)},
        {KEY("fim_rep_token_id"), offsetof(tok_vocab, fim_rep)},
        {KEY("fim_sep_token_id"), offsetof(tok_vocab, fim_sep)},
        {KEY("prefix_token_id"), offsetof(tok_vocab, fim_pre)}, /* deprecated names */
        {KEY("suffix_token_id"), offsetof(tok_vocab, fim_suf)},
        {KEY("middle_token_id"), offsetof(tok_vocab, fim_mid)},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(keys); i++) {
        int rc = read_special(v, g, keys[i].key, (int32_t *)((char *)v + keys[i].field), err);
        if (rc)
            return rc;
    }

    int rc = read_bool(g, KEY("add_bos_token"), &v->add_bos, err);
    if (!rc)
        rc = read_bool(g, KEY("add_eos_token"), &v->add_eos, err);
    if (rc)
        return rc;
    /* WPM ignores both flags (tok_wpm_setup) */
    if (v->type != TOK_WPM && v->add_bos && v->bos < 0)
        return cn_fail(err, CN_EFORMAT, "%s: '" KEY("add_bos_token") "' is true but there is no "
                       "valid '" KEY("bos_token_id") "'", g->path);
    if (v->type != TOK_WPM && v->add_eos && v->eos < 0)
        return cn_fail(err, CN_EFORMAT, "%s: '" KEY("add_eos_token") "' is true but there is no "
                       "valid '" KEY("eos_token_id") "'", g->path);

    /* tokens the converter did not name, found by their text */
    detect(v, &v->eot, eot_texts, CN_ARRAY_LEN(eot_texts));
    detect(v, &v->eom, eom_texts, CN_ARRAY_LEN(eom_texts));
    detect(v, &v->fim_pre, fim_pre_texts, CN_ARRAY_LEN(fim_pre_texts));
    detect(v, &v->fim_suf, fim_suf_texts, CN_ARRAY_LEN(fim_suf_texts));
    detect(v, &v->fim_mid, fim_mid_texts, CN_ARRAY_LEN(fim_mid_texts));
    detect(v, &v->fim_pad, fim_pad_texts, CN_ARRAY_LEN(fim_pad_texts));
    detect(v, &v->fim_rep, fim_rep_texts, CN_ARRAY_LEN(fim_rep_texts));
    detect(v, &v->fim_sep, fim_sep_texts, CN_ARRAY_LEN(fim_sep_texts));

    /* the end-of-generation set */
    set_eog(v, v->fim_pad);
    set_eog(v, v->fim_rep);
    set_eog(v, v->fim_sep);
    for (size_t i = 0; i < CN_ARRAY_LEN(eog_texts); i++) {
        int32_t t = find_text(v, eog_texts[i]);
        if (t >= 0) {
            v->attr[t] |= TOK_A_CONTROL;
            set_eog(v, t);
        }
    }
    /* "</s>" ends generation too, but unlike the markers above it keeps its
    ** type: in some vocabs (Phi-3) it is a user-defined token */
    set_eog(v, find_text(v, "</s>"));
    set_eog(v, v->eos);
    set_eog(v, v->eot);
    set_eog(v, v->eom);

    /* the special-token cache: longest first, so that a longer token wins
    ** over a shorter one it contains (ties by id; llama.cpp leaves them in
    ** std::sort's unspecified order) */
    for (int32_t i = 0; i < v->n_vocab; i++)
        if (v->attr[i] & (TOK_A_CONTROL | TOK_A_USER_DEFINED | TOK_A_UNKNOWN))
            v->n_special++;
    v->special = cn_calloc((size_t)v->n_special + 1, sizeof *v->special);
    uint64_t *keys_sorted = cn_calloc((size_t)v->n_special + 1, sizeof *keys_sorted);
    if (!v->special || !keys_sorted) {
        free(keys_sorted);
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", g->path);
    }
    int k = 0;
    for (int32_t i = 0; i < v->n_vocab; i++)
        if (v->attr[i] & (TOK_A_CONTROL | TOK_A_USER_DEFINED | TOK_A_UNKNOWN))
            keys_sorted[k++] = (uint64_t)(UINT32_MAX - v->len[i]) << 32 | (uint32_t)i;
    qsort(keys_sorted, (size_t)v->n_special, sizeof *keys_sorted, cmp_u64);
    for (k = 0; k < v->n_special; k++)
        v->special[k] = (int32_t)(uint32_t)keys_sorted[k];
    free(keys_sorted);

    /* per-model token attributes llama.cpp sets by name */
    gguf_str name = {0}, pre = {0};
    gguf_get_str(g, "general.name", &name, NULL);
    gguf_get_str(g, KEY("pre"), &pre, NULL);
    if (contains_ci(pre, "jina-v2-de") || contains_ci(pre, "jina-v2-es") ||
        contains_ci(pre, "jina-v2-code")) {
        int32_t m = find_text(v, "<mask>");
        if (m >= 0)
            v->attr[m] |= TOK_A_LSTRIP;
    } else if (contains_ci(name, "phi-3") || contains_ci(name, "phi3")) {
        for (int i = 0; i < v->n_special; i++)
            v->attr[v->special[i]] |= TOK_A_RSTRIP;
        int32_t t = find_text(v, "</s>");
        if (t >= 0)
            v->attr[t] |= TOK_A_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < CN_ARRAY_LEN(keep); i++) {
            t = find_text(v, keep[i]);
            if (t >= 0)
                v->attr[t] &= (uint16_t)~TOK_A_RSTRIP;
        }
    }
    return CN_OK;
}

/* ---- open ------------------------------------------------------------- */

int tok_open(tok_vocab **out, const gguf_file *g, cn_err *err)
{
    *out = NULL;
    gguf_str model, pre = {"", 0};
    int rc = gguf_get_str(g, KEY("model"), &model, err);
    if (rc)
        return rc == CN_ENOTFOUND ? cn_fail(err, CN_EFORMAT, "%s: missing metadata key '"
                                            KEY("model") "'", g->path) : rc;
    rc = gguf_get_str(g, KEY("pre"), &pre, err);
    if (rc && rc != CN_ENOTFOUND)
        return rc;
    if (rc == CN_ENOTFOUND)
        pre = (gguf_str){"", 0};

    tok_vocab *v = cn_calloc(1, sizeof *v);
    if (!v)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", g->path);
    snprintf(v->model, sizeof v->model, "%.*s", (int)CN_MIN(model.len, 15), model.ptr);
    snprintf(v->pre, sizeof v->pre, "%.*s", (int)CN_MIN(pre.len, 63), pre.ptr);

    if (gguf_str_eq(model, "llama")) {
        v->type = TOK_SPM;
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else if (gguf_str_eq(model, "gpt2")) {
        v->type = TOK_BPE;
        v->bos = 11, v->eos = 11, v->unk = -1; /* llama.cpp's defaults */
    } else if (gguf_str_eq(model, "bert")) {
        v->type = TOK_WPM;
        v->bos = 101, v->eos = -1, v->unk = 100; /* llama.cpp's defaults, with sep etc. below */
    } else {
        /* "t5" is SentencePiece unigram, what llama.cpp's converter writes for
        ** XLM-RoBERTa models (bge-m3, bge-reranker-v2-m3): name it, since such
        ** a file otherwise looks like a BERT Cairn runs */
        rc = cn_fail(err, CN_EUNSUPPORTED, "%s: unknown tokenizer model '%.*s' in '" KEY("model")
                     "'%s (Cairn reads llama, gpt2 and bert tokenizers)", g->path,
                     (int)CN_MIN(model.len, 64), model.ptr,
                     gguf_str_eq(model, "t5") ? ": SentencePiece unigram, as XLM-RoBERTa models "
                                                "such as bge-reranker-v2-m3 use, is not supported"
                                              : "");
        goto fail;
    }
    v->eot = v->eom = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (v->type == TOK_WPM)
        v->sep = 102, v->pad = 0, v->mask = 103;

    rc = read_tokens(v, g, err);
    if (rc)
        goto fail;
    if (v->type == TOK_BPE) {
        rc = tok_bpe_setup(v, g, err); /* may set add_bos, ignore_merges, bos */
        if (rc)
            goto fail;
    }
    rc = read_bool(g, KEY("add_space_prefix"), &v->add_space_prefix, err);
    if (rc)
        goto fail;
    rc = setup_specials(v, g, err);
    if (!rc && v->type == TOK_WPM)
        rc = tok_wpm_setup(v, g, err);
    if (rc)
        goto fail;
    *out = v;
    return CN_OK;
fail:
    tok_close(v);
    return rc;
}

void tok_close(tok_vocab *v)
{
    if (!v)
        return;
    tok_bpe_release(v);
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->attr);
    free(v->map.slots);
    free(v->special);
    free(v->len_used);
    free(v);
}

/* ---- getters ---------------------------------------------------------- */

const char *tok_warning(const tok_vocab *v) { return v->warning[0] ? v->warning : NULL; }
int tok_n_vocab(const tok_vocab *v) { return v->n_vocab; }
int tok_type(const tok_vocab *v) { return v->type; }
const char *tok_model_name(const tok_vocab *v) { return v->model; }
const char *tok_pre_name(const tok_vocab *v) { return v->pre; }
int32_t tok_bos(const tok_vocab *v) { return v->bos; }
int32_t tok_eos(const tok_vocab *v) { return v->eos; }
int32_t tok_eot(const tok_vocab *v) { return v->eot; }
int32_t tok_pad(const tok_vocab *v) { return v->pad; }
int32_t tok_unk(const tok_vocab *v) { return v->unk; }
int32_t tok_sep(const tok_vocab *v) { return v->sep; }
int32_t tok_mask(const tok_vocab *v) { return v->mask; }
bool tok_add_bos(const tok_vocab *v) { return v->add_bos; }
bool tok_add_eos(const tok_vocab *v) { return v->add_eos; }
bool tok_add_sep(const tok_vocab *v) { return v->add_sep; }

bool tok_is_eog(const tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_vocab && (v->attr[id] & TOK_A_EOG);
}

bool tok_is_control(const tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_vocab && (v->attr[id] & TOK_A_CONTROL);
}

int32_t tok_find(const tok_vocab *v, const char *text, size_t len)
{
    return text || !len ? tok_lookup(v, text ? text : "", len) : -1;
}

const char *tok_text(const tok_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n_vocab)
        return NULL;
    if (len)
        *len = v->len[id];
    return v->blob + v->off[id];
}

/* ---- encode ----------------------------------------------------------- */

/* A stretch of the input: plain text (id < 0) or one special token. */
typedef struct frag {
    int32_t id;
    uint32_t off, len;
} frag;

typedef struct frags {
    frag *v;
    size_t n, cap;
} frags;

static int frags_push(frags *f, int32_t id, size_t off, size_t len)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        frag *p = cn_realloc_array(f->v, cap, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        f->v = p;
        f->cap = cap;
    }
    f->v[f->n++] = (frag){id, (uint32_t)off, (uint32_t)len};
    return CN_OK;
}

/* memmem(), which not every C library has */
static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn)
{
    if (nn == 0 || hn < nn)
        return NULL;
    const char *last = h + (hn - nn);
    for (const char *p = h; p <= last;) {
        p = memchr(p, n[0], (size_t)(last - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p, n, nn) == 0)
            return p;
        p++;
    }
    return NULL;
}

static bool c_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
** Cut the text at every occurrence of a special token, longest tokens first
** (llama.cpp's tokenizer_st_partition). Control and unknown-type tokens are
** cut only with parse_special; user-defined ones always. A token marked
** LSTRIP/RSTRIP also swallows the whitespace beside it.
*/
static int partition(const tok_vocab *v, const char *text, size_t len, bool parse_special,
                     frags *cur)
{
    frags next = {0};
    int rc = frags_push(cur, -1, 0, len);
    for (int k = 0; !rc && k < v->n_special; k++) {
        int32_t sid = v->special[k];
        uint16_t attr = v->attr[sid];
        if (!parse_special && (attr & (TOK_A_CONTROL | TOK_A_UNKNOWN)))
            continue;
        const char *stext = v->blob + v->off[sid];
        size_t slen = v->len[sid];
        next.n = 0;
        for (size_t i = 0; !rc && i < cur->n; i++) {
            frag f = cur->v[i];
            if (f.id >= 0 || f.len < slen) {
                rc = frags_push(&next, f.id, f.off, f.len);
                continue;
            }
            size_t pos = f.off, end = (size_t)f.off + f.len;
            while (!rc && pos < end) {
                const char *m = find_bytes(text + pos, end - pos, stext, slen);
                if (!m) {
                    rc = frags_push(&next, -1, pos, end - pos);
                    break;
                }
                size_t at = (size_t)(m - text), left = at - pos;
                if (attr & TOK_A_LSTRIP)
                    while (left > 0 && c_space(text[pos + left - 1]))
                        left--;
                if (left)
                    rc = frags_push(&next, -1, pos, left);
                if (!rc)
                    rc = frags_push(&next, sid, at, slen);
                pos = at + slen;
                if (attr & TOK_A_RSTRIP)
                    while (pos < end && c_space(text[pos]))
                        pos++;
            }
        }
        frags t = *cur;
        *cur = next;
        next = t;
    }
    free(next.v);
    return rc;
}

/* SPM: a space before the text after a special token (and at the start),
** then every space becomes "▁" (U+2581). */
static int spm_fragment(const tok_vocab *v, const char *text, size_t len, bool prefix,
                        tok_ids *ids, cn_err *err)
{
    size_t n_sp = prefix ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        n_sp += text[i] == ' ';
    size_t cap = len + (prefix ? 1 : 0) + 2 * n_sp;
    char *buf = cn_malloc(cap ? cap : 1);
    if (!buf)
        return cn_fail(err, CN_ENOMEM, "tokenizer: out of memory");
    size_t n = 0;
    for (size_t i = prefix ? 0 : 1; i <= len; i++) {
        char c = i == 0 ? ' ' : text[i - 1];
        if (c == ' ') {
            memcpy(buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = c;
        }
    }
    int rc = tok_spm_encode(v, buf, n, ids, err);
    free(buf);
    return rc;
}

/* Encode text[0..len) into ids (which the caller frees). CN_OK, or a code
** with err filled. */
static int encode_ids(const tok_vocab *v, const char *text, size_t len, bool add_special,
                      bool parse_special, tok_ids *ids, cn_err *err)
{
    if (len > TOK_MAX_INPUT)
        return cn_fail(err, CN_ELIMIT, "tokenizer: input of %zu bytes is over the limit of %u",
                       len, TOK_MAX_INPUT);
    frags fr = {0};
    int rc = CN_OK;
    if (len)
        rc = partition(v, text, len, parse_special, &fr);
    if (!rc && add_special && v->add_bos)
        rc = tok_ids_push(ids, v->bos);

    bool prev_special = true; /* SPM: the first stretch of text gets the space too */
    for (size_t i = 0; i < fr.n && !rc; i++) {
        const frag *f = &fr.v[i];
        if (f->id >= 0) {
            rc = tok_ids_push(ids, f->id);
            prev_special = true;
        } else if (v->type == TOK_SPM) {
            rc = spm_fragment(v, text + f->off, f->len, v->add_space_prefix && prev_special,
                              ids, err);
            prev_special = false;
        } else if (v->type == TOK_WPM) {
            rc = tok_wpm_encode(v, text + f->off, f->len, ids, err);
        } else {
            rc = tok_bpe_encode(v, text + f->off, f->len, ids, err);
        }
    }
    if (!rc && add_special && v->add_eos)
        rc = tok_ids_push(ids, v->eos);
    if (!rc && add_special && v->add_sep) /* WPM: [CLS] ... [SEP] */
        rc = tok_ids_push(ids, v->sep);
    free(fr.v);
    if (rc == CN_ENOMEM)
        return cn_fail(err, CN_ENOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    if (!rc && ids->n > INT32_MAX)
        return cn_fail(err, CN_ELIMIT, "tokenizer: too many tokens");
    return rc;
}

int tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t *out, int max, cn_err *err)
{
    if (!v || (!text && len) || max < 0 || (max > 0 && !out))
        return cn_fail(err, CN_EINVAL, "tok_encode: bad arguments");
    tok_ids ids = {0};
    int rc = encode_ids(v, text, len, add_special, parse_special, &ids, err);
    if (!rc) {
        if (max > 0 && ids.n)
            memcpy(out, ids.v, CN_MIN(ids.n, (size_t)max) * sizeof *out);
        rc = (int)ids.n;
    }
    free(ids.v);
    return rc;
}

int tok_encode_trunc(const tok_vocab *v, const char *text, size_t len, int max_tokens,
                     int32_t *out, bool *truncated, cn_err *err)
{
    if (truncated)
        *truncated = false;
    if (!v || (!text && len) || max_tokens < 1 || !out)
        return cn_fail(err, CN_EINVAL, "tok_encode_trunc: bad arguments");
    tok_ids ids = {0};
    int rc = encode_ids(v, text, len, true, false, &ids, err);
    if (!rc) {
        size_t n = CN_MIN(ids.n, (size_t)max_tokens);
        if (n)
            memcpy(out, ids.v, n * sizeof *out);
        if (ids.n > n) {
            /* the closing special the full encoding ended with stays last */
            int32_t close = v->add_sep ? v->sep : v->add_eos ? v->eos : -1;
            if (close >= 0)
                out[n - 1] = close;
            if (truncated)
                *truncated = true;
        }
        rc = (int)n;
    }
    free(ids.v);
    return rc;
}

/* ---- pieces ----------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Writes the piece of id into buf when it fits; returns its length. */
static size_t piece(const tok_vocab *v, int32_t id, bool special, char *buf, size_t cap)
{
    uint16_t attr = v->attr[id];
    const char *t = v->blob + v->off[id];
    size_t n = v->len[id];
    if (!special && (attr & (TOK_A_UNKNOWN | TOK_A_CONTROL)))
        return 0;
    if (attr & (TOK_A_UNKNOWN | TOK_A_CONTROL | TOK_A_USER_DEFINED)) {
        if (n && n <= cap)
            memcpy(buf, t, n);
        return n;
    }
    if (attr & TOK_A_NORMAL) {
        if (v->type == TOK_BPE)
            return tok_bpe_decode_text(t, n, buf, cap);
        size_t k = 0; /* SPM: "▁" -> " " */
        for (size_t i = 0; i < n; i++) {
            bool sp = i + 2 < n && memcmp(t + i, "\xe2\x96\x81", 3) == 0;
            if (k < cap)
                buf[k] = sp ? ' ' : t[i];
            k++;
            i += sp ? 2 : 0;
        }
        return k;
    }
    if (attr & TOK_A_BYTE) {
        /* "<0xNN>"; llama.cpp reads the two characters after "<0x" */
        int hi = n >= 5 ? hexval(t[3]) : -1, lo = n >= 5 ? hexval(t[4]) : -1;
        if (hi < 0 || lo < 0) {
            if (n && n <= cap)
                memcpy(buf, t, n);
            return n;
        }
        if (cap)
            buf[0] = (char)(hi << 4 | lo);
        return 1;
    }
    return 0; /* unused and undefined tokens render as nothing */
}

int tok_piece(const tok_vocab *v, int32_t id, bool special, char *buf, int cap)
{
    if (id < 0 || id >= v->n_vocab || cap < 0 || (cap && !buf))
        return CN_EINVAL;
    size_t n = piece(v, id, special, NULL, 0); /* measure, then write only if it fits */
    if (n > (size_t)INT32_MAX)
        return CN_ELIMIT;
    if (n && n <= (size_t)cap)
        piece(v, id, special, buf, (size_t)cap);
    return (int)n;
}

/* ---- streaming -------------------------------------------------------- */

/* How many bytes at s[0..n) form a valid UTF-8 prefix, and how long the
** sequence they start should be (Unicode Table 3-7). */
static int utf8_prefix(const unsigned char *s, size_t n, int *want)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *want = 1;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        *want = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        *want = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        *want = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else {
        *want = 1;
        return 0; /* cannot start a sequence */
    }
    int k = 1;
    while (k < *want && (size_t)k < n) {
        unsigned char b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
            break;
        k++;
    }
    return k;
}

/* Turn s[0..n) into valid UTF-8 in out (when it fits); an incomplete
** sequence at the end is kept back unless final. Returns the output length;
** *kept gets the number of trailing bytes kept back. */
static size_t utf8_clean(const unsigned char *s, size_t n, bool final, char *out, size_t cap,
                         size_t *kept)
{
    size_t i = 0, k = 0;
    *kept = 0;
    while (i < n) {
        int want, got = utf8_prefix(s + i, n - i, &want);
        if (got == want) {
            if (k + (size_t)got <= cap)
                memcpy(out + k, s + i, (size_t)got);
            k += (size_t)got;
            i += (size_t)got;
        } else if (!final && got > 0 && i + (size_t)got == n) {
            *kept = n - i;
            break;
        } else {
            if (k + 3 <= cap)
                memcpy(out + k, "\xef\xbf\xbd", 3);
            k += 3;
            i += got > 0 ? (size_t)got : 1;
        }
    }
    return k;
}

void tok_stream_init(tok_stream *s)
{
    memset(s, 0, sizeof *s);
}

int tok_stream_push(tok_stream *s, const tok_vocab *v, int32_t id, bool special, char *out,
                    int cap)
{
    if (id < 0 || id >= v->n_vocab || cap < 0 || (cap && !out))
        return CN_EINVAL;
    if (s->n_pending < 0 || s->n_pending > 3)
        s->n_pending = 0; /* a corrupted stream: start over */
    unsigned char small[256];
    size_t n = piece(v, id, special, NULL, 0);
    size_t total = (size_t)s->n_pending + n;
    unsigned char *b = total <= sizeof small ? small : cn_malloc(total);
    if (!b)
        return CN_ENOMEM;
    memcpy(b, s->pending, (size_t)s->n_pending);
    piece(v, id, special, (char *)b + s->n_pending, n);
    size_t kept, need = utf8_clean(b, total, false, out, (size_t)cap, &kept);
    int rc;
    if (need > (size_t)cap) {
        rc = CN_ELIMIT;
    } else {
        memcpy(s->pending, b + total - kept, kept);
        s->n_pending = (int)kept;
        rc = (int)need;
    }
    if (b != small)
        free(b);
    return rc;
}

int tok_stream_flush(tok_stream *s, char *out, int cap)
{
    if (s->n_pending <= 0 || s->n_pending > 3) {
        s->n_pending = 0;
        return 0;
    }
    if (cap < 3 || !out)
        return CN_ELIMIT;
    memcpy(out, "\xef\xbf\xbd", 3);
    s->n_pending = 0;
    return 3;
}
