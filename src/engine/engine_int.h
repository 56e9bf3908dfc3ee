/*
** engine_int.h: internals shared by the files of src/engine/. Never included
** from outside the module (tests excepted).
*/
#ifndef CN_ENGINE_INT_H
#define CN_ENGINE_INT_H

#include "engine/engine.h"

/* ---- kernels (kern.c) --------------------------------------------------
** The kernel table is chosen once by kern_init(); CAIRN_KERNELS=scalar,
** avx2 or avx512 asks for a level (the reference path, or less than the best
** this CPU has). Weight rows are read in place: in the mapping (encoders),
** or in the copies a language model makes at open (model.c). */

typedef void (*kern_dot_fn)(int n, float *s, const void *w, const void *a);
typedef void (*kern_from_float_fn)(const float *x, void *y, int64_t n);
typedef void (*kern_to_float_fn)(const void *x, float *y, int64_t n);
/* Tile of a matrix product: out[t * os + r] = dot(row r of w, row t of a)
** for r < nr, t < nt; rows of w are ws bytes apart, rows of a as bytes. */
typedef void (*kern_gemm_fn)(int n, const void *w, size_t ws, int nr, const void *a, size_t as,
                             int nt, float *out, size_t os);

/* The same over packed panels of weights (kern_avx512_panel.c), for many
** tokens: packing costs one pass over the rows, repaid by every token.
** For weights with Q8_0 activations, asum[t * (n / 32) + b] is the sum of
** the quants of token t's block b (kern_act_sums); other types ignore it. */
typedef void (*kern_pgemm_fn)(int n, const void *w, size_t ws, int nr, const void *a, size_t as,
                              const int32_t *asum, int nt, float *out, size_t os);

/* Weights repacked once at load into the panel layout the products read
** (kern_avx512_panel.c): engine-only tensor types after GGML's. A repacked
** matrix takes as many bytes as its file form, its rows in panels of 16:
** rows r0 .. r0 + 15 (r0 a multiple of 16) start at r0 times the file's row
** size, so row ranges split between threads as before.
**   KERN_Q8_0_R16  Q8_0; per panel, per pair of blocks: the 32 F16 scales
**                  (block 2j's 16 rows, then block 2j + 1's), then each
**                  block's quants as unsigned bytes (q + 128), 32-bit word
**                  g of row r at word 16 g + r: 1088 bytes, 64-aligned
**   KERN_Q4_K_R16  Q4_K; per panel, per super-block: d and dmin of the 16
**                  rows (F16), then the 3 words of scales and the 32 words
**                  of quants, word i of row r at word 16 i + r: 2304 bytes */
enum { KERN_Q8_0_R16 = GGML_TYPE_COUNT, KERN_Q4_K_R16, KERN_TYPE_COUNT };

/* Repack rows [r0, r1) (multiples of 16) of a matrix of n columns whose
** rows lie ws bytes apart at w into the repacked type's layout at dst
** (the whole matrix's). */
typedef void (*kern_repack_fn)(const void *w, size_t ws, int n, int r0, int r1, void *dst);

typedef struct kern_table {
    const char *name;
    kern_dot_fn dot[KERN_TYPE_COUNT];   /* weight row . activation row */
    kern_gemm_fn gemm[KERN_TYPE_COUNT]; /* many tokens at once; NULL: dot per pair */
    /* prompts of KERN_PANEL_TOKENS or more; every product for repacked types */
    kern_pgemm_fn pgemm[KERN_TYPE_COUNT];
    /* activations are converted once per product into act_type rows by
    ** act_from_float (NULL: the float rows are used as they are) */
    uint32_t act_type[KERN_TYPE_COUNT];
    kern_from_float_fn act_from_float[KERN_TYPE_COUNT];
    kern_to_float_fn to_float[KERN_TYPE_COUNT]; /* type -> float (embeddings, norms) */
    /* the repacked type a file type's matrices take at load (0: none) and
    ** the function that repacks them */
    uint32_t repack_type[GGML_TYPE_COUNT];
    kern_repack_fn repack[GGML_TYPE_COUNT];
    /* bidirectional attention of one head: out_i = softmax(scale * q_i . K^T
    ** - alibi * |i - j|) V over n_kv keys j (alibi: the head's ALiBi slope,
    ** 0 for none; query i and key j sit at positions i and j); rows q/out are
    ** qs/os floats apart, keys and values kvs floats apart; work holds
    ** kern_attn_work(hd, n_kv) floats */
    void (*attn)(const float *q, size_t qs, int n_q, const float *k, const float *v, size_t kvs,
                 int n_kv, int hd, float scale, float alibi, float *out, size_t os, float *work);
    /* causal attention of n_q queries that share one KV head over the
    ** cache: the query heads of a group (per of them) at n_q / per
    ** consecutive positions, the last of which sees n cached positions
    ** (query g sees kern_attn_len(n, n_q, per, g)); queries (hd floats) are
    ** qs floats apart, outputs os apart; keys and values are rows kvs
    ** elements apart, F16 (f16) or F32, read once for all the queries;
    ** work holds kern_attn_cached_work(n_q, n, hd) floats */
    void (*attn_cached)(const float *q, size_t qs, int n_q, int per, const void *k,
                        const void *v, size_t kvs, int n, int hd, bool f16, float scale,
                        float *out, size_t os, float *work);
    void (*gelu)(float *x, int n);
    void (*silu_mul)(float *g, const float *u, int n); /* g = silu(g) * u */
} kern_table;

/* ALiBi: add -slope * |i - j| to the scores sc[0..n_kv) of query i. */
void kern_alibi(float *sc, int n_kv, int i, float slope);
/* Floats of scratch the attn kernel needs. */
size_t kern_attn_work(int hd, int n_kv);
/* Floats of scratch the attn_cached kernel needs. */
size_t kern_attn_cached_work(int n_q, int n, int hd);
/* Consecutive positions whose queries one attn_cached call takes in a
** prompt: up to 64 queries, so that each key and value read from the
** cache serves many (the work buffer grows with them). */
static inline int kern_attn_positions(int group) { return group >= 64 ? 1 : 64 / group; }
/* Floats of scratch one thread of the decoder's attention needs: the
** kernel's work, and the queries and outputs of a call side by side. */
static inline size_t kern_attn_thread_work(int group, int n_ctx, int hd)
{
    int nq = group * kern_attn_positions(group);
    return kern_attn_cached_work(nq, n_ctx, hd) + 2 * (size_t)nq * (size_t)hd;
}
/* Positions query g of an attn_cached call sees. */
static inline int kern_attn_len(int n, int n_q, int per, int g)
{
    return n - (n_q / per - 1 - g / per);
}

/* The active table. */
const kern_table *kern_get(void);
/* Select kernels for this CPU (idempotent); CAIRN_KERNELS names a level. */
void kern_init(void);
/* The reference table, whatever the CPU (for differential tests). */
const kern_table *kern_scalar(void);
/* A level's table ("scalar", "avx2", "avx512"), or NULL when this CPU
** lacks it (for differential tests and benchmarks). */
const kern_table *kern_variant(const char *name);
/* Fill in the AVX2 entries (kern_avx2.c); then, on CPUs with AVX-512BW and
** VNNI, the prompt products that use them (kern_avx512_quant.c). */
void kern_avx2_install(kern_table *k);
void kern_avx512_install(kern_table *k);
void kern_avx512_attn_install(kern_table *k); /* kern_avx512.c */
void kern_avx512_panel_install(kern_table *k); /* kern_avx512_panel.c */
/* Tokens from which a product takes the packed panels, where the table has
** them: below it, packing would cost more than it saves. */
#define KERN_PANEL_TOKENS 16
/* The block sums kern_pgemm_fn wants for Q8_0 activation rows a (as bytes
** apart, n elements each) of nt tokens. */
void kern_act_sums(const void *a, size_t as, int n, int nt, int32_t *asum);
/* Can the engine multiply with weights of this type? */
bool kern_supports(uint32_t type);
/* Bytes of a row of n elements of type, repacked types included. */
size_t kern_row_size(uint32_t type, int64_t n);
/* The repacked type the active table gives a matrix of type with n columns
** and nr rows, or 0 when it stays as it is (no repacking kernels, or a
** shape the layout does not take). */
uint32_t kern_repack_type(uint32_t type, int64_t n, int64_t nr);

/* out[t][r] = dot(W row r, x[t]) for t < n_tok, r < n_rows.
** x is n_tok rows of n_cols floats; scratch holds the activations converted
** to the weight's activation format (kern_act_bytes bytes). */
void kern_matmul(cn_pool *pool, float *out, const gguf_tensor *w, const float *x, int n_tok,
                 void *scratch);
size_t kern_act_bytes(uint32_t wtype, int n_cols, int n_tok);
/* Several products of the same input at once (q, k and v; gate and up):
** out[i] = W_i x. The input is converted once and the pool woken once,
** which matters in generation, where each product is a few microseconds. */
#define KERN_MAX_GROUP 4
void kern_matmul_group(cn_pool *pool, int n_mat, float *const *out, const gguf_tensor *const *w,
                       const float *x, int n_tok, void *scratch);

void kern_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void kern_softmax(float *x, int n);
void kern_silu_mul(float *g, const float *u, int n); /* g = silu(g) * u */
/* out = (x - mean) / sqrt(var + eps) * w + b */
void kern_layernorm(float *out, const float *x, const float *w, const float *b, int n, float eps);
/* GELU, tanh form, through an F16 table exactly as ggml computes it */
void kern_gelu(float *x, int n);
void kern_gelu_ref(float *x, int n);
const uint16_t *kern_gelu_table(void); /* GELU of every F16 value, as F16 */

/* The [CLS] (first) hidden state of each sequence after the last layer, not
** normalised: n * dim floats (bert.c; for tests of the reranker head). */
int eng_encoder_cls_states(eng_encoder *e, const int32_t *const *ids,
                           const int32_t *const *types, const int *lens, int n, float *out,
                           cn_err *err);

/* ---- the model (model.c, llama.c) -------------------------------------- */

typedef struct eng_layer {
    float *attn_norm, *ffn_norm;    /* (n_embd), owned */
    float *bq, *bk, *bv;            /* biases or NULL, owned */
    const gguf_tensor *wq;          /* (n_embd) -> (n_head * head_dim) */
    const gguf_tensor *wk, *wv;     /* (n_embd) -> (n_head_kv * head_dim) */
    const gguf_tensor *wo;          /* (n_head * head_dim) -> (n_embd) */
    const gguf_tensor *w_gate, *w_up; /* (n_embd) -> (n_ff) */
    const gguf_tensor *w_down;      /* (n_ff) -> (n_embd) */
} eng_layer;

struct eng_model {
    gguf_file *g;
    eng_hparams hp;
    int n_ctx, n_batch, n_threads;
    bool kv_f16;
    cn_pool *pool;

    const gguf_tensor *tok_embd;    /* (n_embd, n_vocab) */
    /* the weight matrices, copied at load out of the mapping (repacked where
    ** kern_repack_type says): tensors describing them, and their memory */
    gguf_tensor *copies;
    void **copy_mem;
    int n_copies;
    const gguf_tensor *output;      /* (n_embd, n_vocab); tok_embd when tied */
    float *output_norm;             /* (n_embd), owned */
    float *rope_freqs;              /* (n_rot/2) or NULL, owned */
    eng_layer *layers;

    /* KV cache: per layer, n_ctx rows of n_head_kv * head_dim (F16 or F32) */
    void *k_cache, *v_cache;

    /* activations for n_batch tokens, allocated at open */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
    float *rope_cs;                 /* (n_batch, n_rot) cos/sin pairs */
    float *scores; /* (n_threads, kern_attn_cached_work(group, n_ctx, head_dim)): attention scratch */
    void *act;                      /* activation scratch for kern_matmul */
    float *logits;                  /* (n_vocab) */

    int32_t *cached;                /* (n_ctx) tokens whose keys/values the cache holds */
    int n_cached;
};

/* Forward pass over one chunk of at most n_batch tokens (llama.c). */
/* all_logits: n rows of n_vocab logits, one per token (n at most n_batch);
** else want_logits: the last token's, in m->logits. */
int llama_forward(eng_model *m, const int32_t *tokens, int n, int n_past, bool want_logits,
                  float *all_logits);


#endif
