/*
** tok_int.h: internals shared by tok.c, spm.c, bpe.c and wpm.c. Never include
** this from outside src/tok/.
*/
#ifndef CN_TOK_INT_H
#define CN_TOK_INT_H

#include "tok/tok.h"

/* Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type
** (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte). */
enum {
    TOK_A_UNDEFINED = 0,
    TOK_A_UNKNOWN = 1 << 0,
    TOK_A_UNUSED = 1 << 1,
    TOK_A_NORMAL = 1 << 2,
    TOK_A_CONTROL = 1 << 3,
    TOK_A_USER_DEFINED = 1 << 4,
    TOK_A_BYTE = 1 << 5,
    TOK_A_LSTRIP = 1 << 7, /* eat whitespace left of the token when partitioning */
    TOK_A_RSTRIP = 1 << 8, /* ... and right of it */
    TOK_A_EOG = 1 << 12,   /* ours: member of the end-of-generation set */
};

#define TOK_MAX_VOCAB (1 << 24)
#define TOK_MAX_MERGES (1 << 24)
#define TOK_MAX_REGEX 6

/* An open-addressing hash set of indexes; the caller owns the keys. Each
** slot holds (high 32 bits of the hash) << 32 | (index + 1); 0 is empty. */
typedef struct tok_hmap {
    uint64_t *slots;
    uint64_t mask;
} tok_hmap;

/* One merge "left right" of tokenizer.ggml.merges, stored as left+right
** without the space; its rank is its index. */
typedef struct tok_merge {
    uint32_t off;       /* into merge_blob */
    uint32_t left_len;
    uint32_t right_len;
} tok_merge;

/* A pre-tokenizer regex: collapsed ones see each non-ASCII character as a
** stand-in for its Unicode class (as llama.cpp's do), raw ones the text. */
typedef struct tok_regex {
    void *code; /* pcre2_code_8 * */
    bool raw;
} tok_regex;

struct tok_vocab {
    int type; /* TOK_SPM, TOK_BPE, TOK_WPM */
    char model[16];
    char pre[64];
    int32_t n_vocab;

    /* token texts, NUL-terminated, back to back */
    char *blob;
    uint32_t *off; /* n_vocab */
    uint32_t *len; /* n_vocab */
    float *score;  /* n_vocab */
    uint16_t *attr; /* n_vocab, TOK_A_* */
    tok_hmap map;  /* text -> id */
    int max_token_len;

    /* special tokens */
    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix;
    bool add_sep; /* WPM: add_special closes with sep ([SEP]) */
    int32_t *special; /* control/user-defined/unknown ids, longest text first */
    int n_special;

    /* BPE */
    char *merge_blob;
    tok_merge *merges;
    int32_t n_merges;
    tok_hmap merge_map; /* (left, right) -> rank */
    tok_regex rx[TOK_MAX_REGEX];
    int n_rx;
    bool ignore_merges; /* a word that is itself a token is not merged (llama3) */

    /* WPM */
    uint8_t *len_used; /* max_token_len + 1 entries: is some token this many bytes long? */

    char warning[320];
};

/* Append "; " and a formatted note to v->warning (tok_warning()); notes
** that do not fit are dropped. */
void tok_add_warning(tok_vocab *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Growable id list with an upper bound on its length. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

int tok_ids_push(tok_ids *ids, int32_t id); /* CN_OK or CN_ENOMEM */

/* A candidate merge of two adjacent symbols in spm.c and bpe.c: their
** indexes and their size in bytes together, which tells a stale candidate
** (one side has changed since) from a live one. */
typedef struct tok_bigram {
    float score; /* SPM: the merged token's score; BPE: -rank (exact: ranks < 2^24) */
    int32_t left, right;
    uint32_t size;
} tok_bigram;

/* The merge queue, a binary heap: tok_bigram_pop gives the highest score
** first and, among equal scores, the leftmost pair, as llama.cpp's queues
** do. Free with free(h->v). */
typedef struct tok_bigram_heap {
    tok_bigram *v;
    size_t n, cap;
} tok_bigram_heap;

int tok_bigram_push(tok_bigram_heap *h, tok_bigram g);    /* CN_OK or CN_ENOMEM */
bool tok_bigram_pop(tok_bigram_heap *h, tok_bigram *out); /* false if empty */

/* The token map's hash: FNV-1a over the bytes, then a final mix. The steps
** are exposed so that a caller can hash every prefix of a string in one
** pass (wpm.c). */
#define TOK_FNV_BASIS 0xcbf29ce484222325ull
static inline uint64_t tok_fnv_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * 0x100000001b3ull;
}
static inline uint64_t tok_hash_final(uint64_t h)
{
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}
uint64_t tok_hash(const void *p, size_t n);
/* Length of the UTF-8 character led by c, judged by its top four bits alone
** (llama.cpp's unicode_len_utf8): 1 for ASCII and stray continuation bytes,
** 2 for 0xC0..0xDF, 3 for 0xE0..0xEF, 4 for 0xF0..0xFF. */
static inline size_t tok_utf8_len(unsigned char c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
/* Text -> id through v->map, -1 if absent; _hashed takes tok_hash(text). */
int32_t tok_lookup(const tok_vocab *v, const char *text, size_t len);
int32_t tok_lookup_hashed(const tok_vocab *v, const char *text, size_t len, uint64_t h);

/* Code points as llama.cpp's unicode.cpp sees them.
** tok_cpt_decode: unicode_cpt_from_utf8: a lead byte and enough continuation
** bytes make a code point (overlong forms and surrogates included); anything
** else is one bad byte, U+FFFD (*adv = 1). Unlike llama.cpp, which aborts
** later on them, 4-byte forms above U+10FFFF are bad bytes too. n >= 1.
** tok_cpt_encode: writes c (<= U+10FFFF) as 1 to 4 bytes, returns how many.
** tok_cpt_is_space: White_Space, the set llama.cpp's tables were built with. */
uint32_t tok_cpt_decode(const unsigned char *s, size_t n, size_t *adv);
size_t tok_cpt_encode(char *o, uint32_t c);
bool tok_cpt_is_space(uint32_t c);

/* The token for one byte in SPM (<0xNN>, else the 1-byte text); -1 if none. */
int32_t tok_spm_byte_token(const tok_vocab *v, unsigned char c);

/* spm.c: encode text[0..len) (already "▁"-escaped) and append to ids. */
int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *ids, cn_err *err);

/* bpe.c */
int tok_bpe_setup(tok_vocab *v, const gguf_file *g, cn_err *err); /* merges + regexes */
void tok_bpe_release(tok_vocab *v);
int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *ids, cn_err *err);
/* Map a byte-level BPE token text back to raw bytes (llama.cpp's
** llama_decode_text). Writes up to cap bytes, returns the length needed. */
size_t tok_bpe_decode_text(const char *text, size_t len, char *out, size_t cap);

/* wpm.c */
int tok_wpm_setup(tok_vocab *v, const gguf_file *g, cn_err *err); /* specials, length table */
int tok_wpm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *ids, cn_err *err);

#endif
