/*
** bpe.c: byte-level BPE (tokenizer.ggml.model "gpt2"), as llama.cpp does it.
**
** Encoding a stretch of text takes four steps:
**   1. decode the bytes to code points the lenient way llama.cpp does
**      (unicode_cpts_from_utf8: a bad byte becomes U+FFFD);
**   2. split the code points into words with the pre-tokenizer's regexes,
**      applied one after another, each to every piece the previous one left
**      (text a regex does not match stays a piece of its own);
**   3. write each word's UTF-8 bytes as GPT-2 "byte-level" characters
**      (bytes_to_unicode: printable bytes stand for themselves, the other 68
**      map to U+0100..U+0143);
**   4. merge each word's characters pairwise by the lowest merge rank
**      (ties: leftmost first) and look the pieces up in the vocab.
**
** About step 2. llama.cpp runs most regexes through std::regex on a
** "collapsed" copy of the text, in which every non-ASCII code point is
** replaced by one stand-in character per Unicode class (letter, number,
** punctuation, mark, symbol, other; any whitespace becomes \v), and \p{L} and
** friends are rewritten to match the stand-in plus the ASCII members of the
** class. For GPT-2 and Llama 3 it has hand-written splitters instead, which
** are equivalent to the regexes over the same classification. We do the same
** collapsing and hand the result to PCRE2 (UTF + UCP, JIT when available):
** the classes then come from one table (utf8proc's, Unicode 15) and not from
** PCRE2's own, and quirks such as '~' being in neither \p{P} nor \p{S} match
** llama.cpp. Regexes without \p{..} (literal CJK ranges and such) see the
** real text, with non-ASCII whitespace turned into \v as llama.cpp's
** std::wregex path does.
*/
#include "tok/tok_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY(k) "tokenizer.ggml." k

/* ---- pre-tokenizers ------------------------------------------------------ */

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RX_LLAMA3                                                                                  \
    RX_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"    \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                                   \
    RX_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"         \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_PUNCT "[\\p{P}\\$\\+<=>\\^~\\|]+"
/* " ?[^(\s|.,!?…。，、।۔،)]+" */
#define RX_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"

static const char *const rx_default[] = {RX_PUNCT, RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL};
static const char *const rx_gpt2[] = {RX_GPT2, NULL};
static const char *const rx_llama3[] = {RX_LLAMA3, NULL};
static const char *const rx_qwen2[] = {RX_QWEN2, NULL};
static const char *const rx_starcoder[] = {"\\p{N}", RX_GPT2, NULL};
static const char *const rx_falcon[] = {RX_PUNCT, RX_GPT2, "[0-9][0-9][0-9]", NULL};
static const char *const rx_poro[] = {RX_PORO, NULL};
static const char *const rx_viking[] = {RX_PORO, "\\p{N}", NULL};
static const char *const rx_deepseek_coder[] = {
    "[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", /* [一-龥ࠀ-一가-퟿]+ */
    "\\p{N}", NULL};
static const char *const rx_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+", /* [一-龥぀-ゟ゠-ヿ]+ */
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};

enum { PRE_IGNORE_MERGES = 1, PRE_ADD_BOS = 2, PRE_NO_BOS = 4 };

/* tokenizer.ggml.pre names llama.cpp b4747 knows, and what they mean. */
static const struct {
    const char *name;
    const char *const *rx;
    int flags;
} pretoks[] = {
    {"default", rx_default, 0},
    {"llama3", rx_llama3, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"llama-v3", rx_llama3, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"llama-bpe", rx_llama3, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"falcon3", rx_llama3, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"dbrx", rx_llama3, 0},
    {"smaug-bpe", rx_llama3, 0},
    {"chatglm-bpe", rx_llama3, PRE_NO_BOS},
    {"glm4", rx_llama3, PRE_NO_BOS},
    {"qwen2", rx_qwen2, 0},
    {"deepseek-r1-qwen", rx_qwen2, 0},
    {"stablelm2", rx_qwen2, 0},
    {"megrez", rx_qwen2, 0},
    {"gpt-2", rx_gpt2, 0},
    {"phi-2", rx_gpt2, 0},
    {"mpt", rx_gpt2, 0},
    {"olmo", rx_gpt2, 0},
    {"jais", rx_gpt2, 0},
    {"jina-es", rx_gpt2, 0},
    {"jina-de", rx_gpt2, 0},
    {"jina-v1-en", rx_gpt2, 0},
    {"jina-v2-es", rx_gpt2, 0},
    {"jina-v2-de", rx_gpt2, 0},
    {"jina-v2-code", rx_gpt2, 0},
    {"roberta-bpe", rx_gpt2, 0},
    {"gigachat", rx_gpt2, 0},
    {"starcoder", rx_starcoder, 0},
    {"refact", rx_starcoder, 0},
    {"command-r", rx_starcoder, 0},
    {"smollm", rx_starcoder, 0},
    {"codeshell", rx_starcoder, 0},
    {"exaone", rx_starcoder, 0},
    {"minerva-7b", rx_starcoder, 0},
    {"falcon", rx_falcon, 0},
    {"poro-chat", rx_poro, 0},
    {"bloom", rx_poro, 0},
    {"gpt3-finnish", rx_poro, 0},
    {"viking", rx_viking, 0},
    {"deepseek-coder", rx_deepseek_coder, 0},
    {"deepseek-v3", rx_deepseek3, 0},
};

/* ---- code point classes -------------------------------------------------- */

/* Stand-ins in the collapsed text, U+00D0 + class (llama.cpp uses the bytes
** 0xD0..0xD5 the same way). */
enum { CLS_OTHER = 0, CLS_NUMBER, CLS_LETTER, CLS_PUNCT, CLS_MARK, CLS_SYMBOL };

/* The members of each class in the rewritten regexes: the stand-in and the
** class's ASCII members as llama.cpp lists them. */
static const char *const cls_set[] = {
    [CLS_NUMBER] = "\\x{D1}0-9",
    [CLS_LETTER] = "\\x{D2}A-Za-z",
    [CLS_PUNCT] = "\\x{D3}!-#%-*,-/:;?@\\[-\\]_{}",
    [CLS_MARK] = "\\x{D4}",
    [CLS_SYMBOL] = "\\x{D5}$+<=>^`|",
};

static int cp_class(uint32_t c)
{
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return CLS_LETTER;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return CLS_MARK;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CLS_NUMBER;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return CLS_PUNCT;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        return CLS_SYMBOL;
    default:
        return CLS_OTHER;
    }
}

/* ---- GPT-2 bytes_to_unicode ---------------------------------------------- */

static uint32_t byte_to_cp(unsigned char b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    if (b <= 0x20)
        return 256 + b;          /* 0x00..0x20 -> U+0100..U+0120 */
    if (b == 0xAD)
        return 256 + 33 + 34;    /* U+0143 */
    return 256 + 33 + (b - 0x7F); /* 0x7F..0xA0 -> U+0121..U+0142 */
}

static int cp_to_byte(uint32_t c)
{
    if ((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))
        return (int)c;
    if (c >= 256 && c <= 256 + 0x20)
        return (int)(c - 256);
    if (c >= 256 + 33 && c < 256 + 33 + 34)
        return (int)(c - 256 - 33 + 0x7F);
    if (c == 256 + 33 + 34)
        return 0xAD;
    return -1;
}

size_t tok_bpe_decode_text(const char *text, size_t len, char *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        size_t adv;
        uint32_t c = tok_cpt_decode(s + i, len - i, &adv);
        i += adv;
        int b = cp_to_byte(c);
        if (b >= 0) {
            if (k < cap)
                out[k] = (char)b;
            k++;
            continue;
        }
        /* not a byte-level character: llama.cpp writes this marker */
        char tmp[32], u[4];
        size_t un = tok_cpt_encode(u, c), tn = (size_t)snprintf(tmp, sizeof tmp, "[UNK_BYTE_0x");
        for (size_t j = 0; j < un; j++)
            tn += (size_t)snprintf(tmp + tn, sizeof tmp - tn, "%02x", (unsigned char)u[j]);
        for (size_t j = 0; j < tn + len + 1; j++) {
            char ch = j < tn ? tmp[j] : j < tn + len ? text[j - tn] : ']';
            if (k < cap)
                out[k] = ch;
            k++;
        }
    }
    return k;
}

/* ---- setup ------------------------------------------------------------- */

/* Rewrite \p{L}, \p{N}, \p{P}, \p{S}, \p{M} to the collapsed classes. */
static int collapse_regex(const char *rx, char *out, size_t cap)
{
    size_t k = 0;
    bool in_class = false;
    for (size_t i = 0; rx[i]; i++) {
        const char *add = NULL;
        char one[3] = {rx[i], 0, 0};
        if (rx[i] == '\\' && rx[i + 1] == 'p' && rx[i + 2] == '{' && rx[i + 3] &&
            rx[i + 4] == '}') {
            int c = rx[i + 3] == 'L' ? CLS_LETTER : rx[i + 3] == 'N' ? CLS_NUMBER
                  : rx[i + 3] == 'P' ? CLS_PUNCT : rx[i + 3] == 'S' ? CLS_SYMBOL
                  : rx[i + 3] == 'M' ? CLS_MARK : -1;
            if (c < 0)
                return -1;
            char buf[64];
            snprintf(buf, sizeof buf, in_class ? "%s" : "[%s]", cls_set[c]);
            size_t n = strlen(buf);
            if (k + n >= cap)
                return -1;
            memcpy(out + k, buf, n);
            k += n;
            i += 4;
            continue;
        }
        if (rx[i] == '\\' && rx[i + 1]) {
            one[1] = rx[++i]; /* an escape is copied whole */
        } else if (rx[i] == '[' && !in_class) {
            in_class = true;
        } else if (rx[i] == ']' && in_class) {
            in_class = false;
        }
        add = one;
        size_t n = strlen(add);
        if (k + n >= cap)
            return -1;
        memcpy(out + k, add, n);
        k += n;
    }
    out[k] = '\0';
    return 0;
}

static int compile_regexes(tok_vocab *v, const char *const *rx, cn_err *err)
{
    for (int i = 0; rx[i]; i++) {
        if (i >= TOK_MAX_REGEX)
            return cn_fail(err, CN_EUNSUPPORTED, "tokenizer: too many pre-tokenizer regexes");
        char buf[1024];
        bool raw = strstr(rx[i], "\\p{") == NULL;
        if (raw)
            snprintf(buf, sizeof buf, "%s", rx[i]);
        else if (collapse_regex(rx[i], buf, sizeof buf) != 0)
            return cn_fail(err, CN_EUNSUPPORTED, "tokenizer: cannot rewrite regex '%s'", rx[i]);
        int code;
        PCRE2_SIZE at;
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)buf, PCRE2_ZERO_TERMINATED,
                                      PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &code, &at, NULL);
        if (!c) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(code, msg, sizeof msg);
            return cn_fail(err, CN_EUNSUPPORTED, "tokenizer: regex '%s' does not compile at %zu: "
                           "%s", rx[i], (size_t)at, (const char *)msg);
        }
        pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* the interpreter runs if this fails */
        v->rx[i] = (tok_regex){c, raw};
        v->n_rx = i + 1;
    }
    return CN_OK;
}

static uint64_t merge_hash(const char *s, size_t left_len, size_t right_len)
{
    return tok_hash(s, left_len + right_len) ^ ((uint64_t)left_len * 0x9E3779B97F4A7C15ull);
}

/* Rank of the merge (left, right) where right follows left at s; -1 if none. */
static int32_t merge_rank(const tok_vocab *v, const char *s, size_t left_len, size_t right_len)
{
    uint64_t h = merge_hash(s, left_len, right_len), tag = h >> 32;
    for (uint64_t i = h & v->merge_map.mask;; i = (i + 1) & v->merge_map.mask) {
        uint64_t slot = v->merge_map.slots[i];
        if (!slot)
            return -1;
        if ((slot >> 32) != tag)
            continue;
        int32_t r = (int32_t)(uint32_t)slot - 1;
        const tok_merge *m = &v->merges[r];
        if (m->left_len == left_len && m->right_len == right_len &&
            memcmp(v->merge_blob + m->off, s, left_len + right_len) == 0)
            return r;
    }
}

static int read_merges(tok_vocab *v, const gguf_file *g, cn_err *err)
{
    const gguf_value *arr;
    int rc = gguf_get_arr(g, KEY("merges"), GGUF_T_STRING, &arr, err);
    if (rc == CN_ENOTFOUND)
        return cn_fail(err, CN_EFORMAT, "%s: missing metadata key '" KEY("merges") "' (a BPE "
                       "vocab needs its merges)", g->path);
    if (rc)
        return rc;
    if (arr->arr.n > TOK_MAX_MERGES)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("merges") "' has %" PRIu64
                       " entries, more than %d", g->path, arr->arr.n, TOK_MAX_MERGES);
    uint64_t n = arr->arr.n, total = 0;
    for (uint64_t i = 0; i < n; i++)
        total += arr->arr.strs[i].len;
    if (total >= UINT32_MAX)
        return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("merges") "' is too large",
                       g->path);
    v->n_merges = (int32_t)n;
    v->merge_blob = cn_malloc((size_t)total + 1);
    v->merges = cn_calloc(n + 1, sizeof *v->merges);
    v->merge_map.mask = 15;
    while (v->merge_map.mask + 1 < n * 2)
        v->merge_map.mask = v->merge_map.mask * 2 + 1;
    v->merge_map.slots = cn_calloc(v->merge_map.mask + 1, sizeof *v->merge_map.slots);
    if (!v->merge_blob || !v->merges || !v->merge_map.slots)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory for %" PRIu64 " merges", g->path, n);

    uint32_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s = arr->arr.strs[i];
        /* "left right": llama.cpp splits at the first space after the first byte */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp)
            return cn_fail(err, CN_EFORMAT, "%s: metadata key '" KEY("merges") "': entry %" PRIu64
                           " '%.*s' is not two tokens separated by a space", g->path, i,
                           (int)CN_MIN(s.len, 40), s.ptr);
        size_t left = (size_t)(sp - s.ptr), right = s.len - left - 1;
        tok_merge *m = &v->merges[i];
        *m = (tok_merge){pos, (uint32_t)left, (uint32_t)right};
        memcpy(v->merge_blob + pos, s.ptr, left);
        memcpy(v->merge_blob + pos + left, sp + 1, right);
        pos += (uint32_t)(left + right);
        if (merge_rank(v, v->merge_blob + m->off, left, right) >= 0)
            continue; /* a repeated pair keeps its first (best) rank */
        uint64_t h = merge_hash(v->merge_blob + m->off, left, right);
        uint64_t j = h & v->merge_map.mask;
        while (v->merge_map.slots[j])
            j = (j + 1) & v->merge_map.mask;
        v->merge_map.slots[j] = (h >> 32) << 32 | (uint32_t)(i + 1);
    }
    return CN_OK;
}

int tok_bpe_setup(tok_vocab *v, const gguf_file *g, cn_err *err)
{
    int rc = read_merges(v, g, err);
    if (rc)
        return rc;
    int k = -1;
    for (size_t i = 0; i < CN_ARRAY_LEN(pretoks) && v->pre[0]; i++)
        if (strcmp(pretoks[i].name, v->pre) == 0)
            k = (int)i;
    if (k < 0 && v->pre[0])
        snprintf(v->warning, sizeof v->warning, "unknown pre-tokenizer '%s', using default",
                 v->pre);
    else if (k < 0)
        snprintf(v->warning, sizeof v->warning, "missing pre-tokenizer type, using default");
    if (k < 0)
        k = 0;
    v->ignore_merges = pretoks[k].flags & PRE_IGNORE_MERGES;
    if (pretoks[k].flags & PRE_ADD_BOS)
        v->add_bos = true;
    if (pretoks[k].flags & PRE_NO_BOS)
        v->bos = -1;
    return compile_regexes(v, pretoks[k].rx, err);
}

void tok_bpe_release(tok_vocab *v)
{
    for (int i = 0; i < v->n_rx; i++)
        pcre2_code_free(v->rx[i].code);
    v->n_rx = 0;
    free(v->merge_blob);
    free(v->merges);
    free(v->merge_map.slots);
}

/* ---- splitting ---------------------------------------------------------- */

/* The text of one stretch, three ways, with the byte offset of every code
** point in each (index n_cp holds the end). */
typedef struct subjects {
    size_t n_cp;
    char *text, *coll, *raw;       /* what BPE sees / collapsed / raw for PCRE2 */
    uint32_t *o_text, *o_coll, *o_raw;
} subjects;

static void subjects_free(subjects *s)
{
    free(s->text);
    free(s->coll);
    free(s->raw);
    free(s->o_text);
    free(s->o_coll);
    free(s->o_raw);
}

static int subjects_build(subjects *s, const char *in, size_t len, bool need_raw)
{
    const unsigned char *u = (const unsigned char *)in;
    memset(s, 0, sizeof *s);
    s->text = cn_malloc(3 * len + 1);
    s->coll = cn_malloc(2 * len + 1);
    s->o_text = cn_calloc(len + 1, sizeof *s->o_text);
    s->o_coll = cn_calloc(len + 1, sizeof *s->o_coll);
    if (need_raw) {
        s->raw = cn_malloc(3 * len + 1);
        s->o_raw = cn_calloc(len + 1, sizeof *s->o_raw);
    }
    if (!s->text || !s->coll || !s->o_text || !s->o_coll || (need_raw && (!s->raw || !s->o_raw)))
        return CN_ENOMEM;
    size_t nt = 0, nc = 0, nr = 0, k = 0;
    for (size_t i = 0; i < len; k++) {
        size_t adv;
        uint32_t c = tok_cpt_decode(u + i, len - i, &adv);
        i += adv;
        s->o_text[k] = (uint32_t)nt;
        s->o_coll[k] = (uint32_t)nc;
        nt += tok_cpt_encode(s->text + nt, c);
        bool sp = tok_cpt_is_space(c);
        if (c < 0x80)
            s->coll[nc++] = (char)c;
        else
            nc += tok_cpt_encode(s->coll + nc, sp ? 0x0B : 0xD0 + (uint32_t)cp_class(c));
        if (need_raw) {
            s->o_raw[k] = (uint32_t)nr;
            uint32_t r = c > 0x7F && sp ? 0x0B : (c >= 0xD800 && c <= 0xDFFF) ? 0xFFFD : c;
            nr += tok_cpt_encode(s->raw + nr, r);
        }
    }
    s->n_cp = k;
    s->o_text[k] = (uint32_t)nt;
    s->o_coll[k] = (uint32_t)nc;
    if (need_raw)
        s->o_raw[k] = (uint32_t)nr;
    return CN_OK;
}

/* Piece boundaries: ends of consecutive pieces, in code points. */
typedef struct cuts {
    uint32_t *end;
    size_t n, cap;
} cuts;

static int cuts_push(cuts *c, size_t end)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint32_t *p = cn_realloc_array(c->end, cap, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        c->end = p;
        c->cap = cap;
    }
    c->end[c->n++] = (uint32_t)end;
    return CN_OK;
}

/* One regex over every piece of in, giving the finer pieces in out. */
static int split_once(const tok_regex *rx, const subjects *s, const cuts *in, cuts *out,
                      pcre2_match_data *md, cn_err *err)
{
    const char *subj = rx->raw ? s->raw : s->coll;
    const uint32_t *off = rx->raw ? s->o_raw : s->o_coll;
    out->n = 0;
    size_t a = 0, last = 0; /* last: where the previous piece ended */
    for (size_t p = 0; p < in->n; p++) {
        size_t b = in->end[p];
        const char *base = subj + off[a];
        size_t blen = off[b] - off[a], at = 0, cp = a; /* cp: code point cursor */
        while (at < blen) {
            uint32_t opts = PCRE2_NO_UTF_CHECK;
            int rc = pcre2_match(rx->code, (PCRE2_SPTR)base, blen, at, opts, md, NULL);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(rx->code, (PCRE2_SPTR)base, blen, at, opts | PCRE2_NO_JIT, md,
                                 NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0) {
                PCRE2_UCHAR msg[128];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return cn_fail(err, CN_ELIMIT, "tokenizer: pre-tokenizer regex failed: %s",
                               (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* an empty match: step over one character */
                while (cp < b && off[cp] - off[a] <= at)
                    cp++;
                at = off[cp] - off[a];
                continue;
            }
            size_t cs = cp;
            while (off[cs] - off[a] < ms)
                cs++;
            size_t ce = cs;
            while (off[ce] - off[a] < me)
                ce++;
            if (cs > last && cuts_push(out, cs)) /* the text before the match */
                return CN_ENOMEM;
            if (cuts_push(out, ce))
                return CN_ENOMEM;
            last = cp = ce;
            at = me;
        }
        if (b > last && cuts_push(out, b))
            return CN_ENOMEM;
        a = last = b;
    }
    return CN_OK;
}

/* ---- merging ------------------------------------------------------------- */

typedef struct sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the word */
} sym;

typedef struct bpe_work {
    sym *syms;
    size_t cap_syms;
    tok_bigram_heap heap;
    char *word;
    size_t cap_word;
} bpe_work;

static_assert(TOK_MAX_MERGES <= 1 << 24, "a rank must be exact as a float score");

static int add_bigram(const tok_vocab *v, bpe_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return CN_OK;
    const sym *l = &w->syms[left], *r = &w->syms[right];
    int32_t rank = merge_rank(v, w->word + l->start, l->n, r->n);
    if (rank < 0)
        return CN_OK;
    /* lowest rank first */
    return tok_bigram_push(&w->heap, (tok_bigram){-(float)rank, left, right, l->n + r->n});
}

static int emit(const tok_vocab *v, const char *s, size_t n, tok_ids *ids)
{
    int32_t id = tok_lookup(v, s, n);
    if (id >= 0)
        return tok_ids_push(ids, id);
    /* llama.cpp then tries each byte as a one-byte token and drops misses */
    for (size_t i = 0; i < n; i++) {
        id = tok_lookup(v, s + i, 1);
        if (id >= 0 && tok_ids_push(ids, id))
            return CN_ENOMEM;
    }
    return CN_OK;
}

/* BPE over one word of byte-level characters in w->word[0..n). */
static int bpe_word(const tok_vocab *v, bpe_work *w, size_t n, tok_ids *ids)
{
    if (v->ignore_merges) {
        int32_t id = tok_lookup(v, w->word, n);
        if (id >= 0)
            return tok_ids_push(ids, id);
    }
    if (n > w->cap_syms) {
        sym *p = cn_realloc_array(w->syms, n, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        w->syms = p;
        w->cap_syms = n;
    }
    int32_t n_sym = 0;
    for (size_t at = 0; at < n; n_sym++) {
        size_t l = CN_MIN(tok_utf8_len((unsigned char)w->word[at]), n - at);
        w->syms[n_sym] = (sym){n_sym - 1, at + l == n ? -1 : n_sym + 1, (uint32_t)at, (uint32_t)l};
        at += l;
    }
    w->heap.n = 0;
    for (int32_t i = 1; i < n_sym; i++)
        if (add_bigram(v, w, i - 1, i))
            return CN_ENOMEM;
    tok_bigram g;
    while (tok_bigram_pop(&w->heap, &g)) {
        sym *l = &w->syms[g.left], *r = &w->syms[g.right];
        /* stale if either side was merged away or has grown since */
        if (l->n == 0 || r->n == 0 || l->n + r->n != g.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = g.left;
        if (add_bigram(v, w, l->prev, g.left) || add_bigram(v, w, g.left, l->next))
            return CN_ENOMEM;
    }
    for (int32_t i = 0; i != -1 && n_sym > 0; i = w->syms[i].next)
        if (emit(v, w->word + w->syms[i].start, w->syms[i].n, ids))
            return CN_ENOMEM;
    return CN_OK;
}

int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *ids, cn_err *err)
{
    bool need_raw = false;
    for (int i = 0; i < v->n_rx; i++)
        need_raw |= v->rx[i].raw;
    subjects s = {0};
    cuts c1 = {0}, c2 = {0};
    bpe_work w = {0};
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int rc = md ? subjects_build(&s, text, len, need_raw) : CN_ENOMEM;
    if (!rc && s.n_cp)
        rc = cuts_push(&c1, s.n_cp);
    for (int i = 0; !rc && i < v->n_rx; i++) {
        rc = split_once(&v->rx[i], &s, &c1, &c2, md, err);
        cuts t = c1;
        c1 = c2;
        c2 = t;
    }
    /* each piece, written as byte-level characters, is one word */
    size_t a = 0;
    for (size_t p = 0; !rc && p < c1.n; p++) {
        size_t b = c1.end[p], from = s.o_text[a], to = s.o_text[b];
        if (2 * (to - from) > w.cap_word) {
            free(w.word);
            w.cap_word = 2 * (to - from);
            w.word = cn_malloc(w.cap_word);
            if (!w.word) {
                rc = CN_ENOMEM;
                break;
            }
        }
        size_t n = 0;
        for (size_t i = from; i < to; i++)
            n += tok_cpt_encode(w.word + n, byte_to_cp((unsigned char)s.text[i]));
        rc = bpe_word(v, &w, n, ids);
        a = b;
    }
    if (rc == CN_ENOMEM)
        rc = cn_fail(err, CN_ENOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    pcre2_match_data_free(md);
    subjects_free(&s);
    free(c1.end);
    free(c2.end);
    free(w.syms);
    free(w.heap.v);
    free(w.word);
    return rc;
}
