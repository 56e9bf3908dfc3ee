/*
** engine.h: Cairn's inference engine, public face.
**
** Open a GGUF decoder model (architectures llama and qwen2), feed it tokens,
** read logits, sample. The model file stays memory-mapped: quantized weights
** are used in place. Every buffer the forward pass needs is allocated when
** the model opens; decoding allocates nothing.
**
** The engine knows nothing of documents, the store, HTTP or terminals.
*/
#ifndef CN_ENGINE_H
#define CN_ENGINE_H

#include "base/base.h"
#include "gguf/gguf.h"
#include "tok/tok.h"

typedef struct eng_model eng_model;

/* Options for opening a model; zero means "default". */
typedef struct eng_opts {
    int n_ctx;      /* KV cache length; default min(training context, 4096) */
    int n_threads;  /* default: physical cores */
    int n_batch;    /* tokens per forward chunk when processing a prompt; default 256 */
    bool kv_f32;    /* KV cache in F32 instead of F16 */
    bool mlock;     /* lock the mapped weights in memory (never paged out) */
} eng_opts;

enum { ENG_ROPE_NORM = 0, ENG_ROPE_NEOX = 2 };

/* Hyper-parameters, all read from metadata. */
typedef struct eng_hparams {
    char arch[32];
    int n_vocab, n_ctx_train, n_embd, n_layer, n_ff;
    int n_head, n_head_kv, head_dim, n_rot;
    int rope_type;          /* ENG_ROPE_NORM or ENG_ROPE_NEOX */
    float rope_base, rope_freq_scale, rms_eps;
    bool has_qkv_bias, tied_output, has_rope_freqs;
} eng_hparams;

/* Open path as a decoder model. Checks the architecture, every hyper-parameter
** and the presence and shape of every tensor; errors name the file and the
** problem. */
int eng_model_open(eng_model **out, const char *path, const eng_opts *opts, cn_err *err);
void eng_model_close(eng_model *m);

const eng_hparams *eng_model_hparams(const eng_model *m);
const gguf_file *eng_model_gguf(const eng_model *m);
int eng_model_n_ctx(const eng_model *m);
int eng_model_n_threads(const eng_model *m);

/* Evaluate tokens[0..n) at positions n_past..n_past+n-1, appending their keys
** and values to the KV cache. Positions before n_past are kept, so calling
** with n_past smaller than before rewinds the cache. After success
** eng_model_logits() holds the logits of the last token. Fails with
** CN_ELIMIT if n_past + n exceeds the context, CN_EINVAL for a bad token id. */
int eng_decode(eng_model *m, const int32_t *tokens, int n, int n_past, cn_err *err);
/* Decode n tokens (at most ENG_SPEC_MAX + 1) in one pass and keep the
** logits after each in logits (n rows of n_vocab): a draft checked at once. */
#define ENG_SPEC_MAX 8
int eng_decode_all(eng_model *m, const int32_t *tokens, int n, int n_past, float *logits,
                   cn_err *err);
/* The kernels in use: "scalar", "avx2" or "avx512" (CAIRN_KERNELS may ask
** for a lower level). */
const char *eng_kernels(void);
/* n_vocab logits of the last token evaluated. */
const float *eng_model_logits(const eng_model *m);

/* ---- sampling ---------------------------------------------------------- */

typedef struct eng_sampler_opts {
    float temp;        /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 = off */
    float min_p;       /* 0 = off */
    float repeat_penalty; /* 1 = off */
    int repeat_last_n; /* window of recent tokens the penalty applies to */
    uint64_t seed;
} eng_sampler_opts;

typedef struct eng_sampler eng_sampler;

/* Default options: greedy-free sampling as llama.cpp defaults (temp 0.8,
** top-k 40, top-p 0.95, min-p 0.05, repeat penalty 1.0). */
eng_sampler_opts eng_sampler_defaults(void);
int eng_sampler_new(eng_sampler **out, int n_vocab, const eng_sampler_opts *o, cn_err *err);
void eng_sampler_free(eng_sampler *s);
/* Remember an accepted token (for the repetition penalty). */
void eng_sampler_accept(eng_sampler *s, int32_t id);
void eng_sampler_reset(eng_sampler *s);
/* Pick the next token from logits (not modified). */
int32_t eng_sample(eng_sampler *s, const float *logits);
/* Index of the largest logit, lowest index on ties. */
int32_t eng_argmax(const float *logits, int n);


/* ---- the generation loop (generate.c) ----------------------------------
** Prompt in, streamed text out. The model remembers which tokens its KV
** cache holds, so a prompt that extends the previous one (a chat turn)
** only evaluates the new tokens. */


enum eng_stop {
    ENG_STOP_LENGTH = 1, /* n_predict tokens generated */
    ENG_STOP_EOG,        /* an end-of-generation token */
    ENG_STOP_STRING,     /* a stop string appeared */
    ENG_STOP_CONTEXT,    /* the context is full */
    ENG_STOP_CANCEL,     /* the callback asked to stop */
};

typedef struct eng_gen_opts {
    int n_predict;                 /* maximum new tokens */
    eng_sampler_opts sampler;
    const char *const *stop;       /* stop strings (not included in the output) */
    int n_stop;
    bool ignore_eos;               /* do not stop at end-of-generation tokens */
    bool render_special;           /* print control tokens' text */
    /* speculative decoding with prompt-lookup drafts: when the text so far
    ** ends with words seen earlier (an answer quoting its passages), the
    ** tokens that followed them there, up to this many (at most 8), are
    ** checked in one pass, and those the model agrees with are kept. The
    ** output is the same token for token, greedy or sampled: each position
    ** draws once from the same distribution as plain decoding, and a draft
    ** token is kept only when the draw is that token (for a draft that is
    ** one token for certain, this is the standard acceptance rule of
    ** speculative sampling); a draw that differs is the next token. 0: off */
    int lookup;
    /* speculative decoding with a draft model: a smaller model with the
    ** same vocabulary proposes up to draft_max tokens (at most 8), greedily,
    ** while its top token's probability is at least ENG_DRAFT_P_MIN; they
    ** are checked in one pass and kept by the rule above, so the output is
    ** plain decoding's. Prompt lookup goes first where it finds a match
    ** (its drafts cost nothing). The draft model keeps its own cache,
    ** brought up to the text before each draft. NULL: off */
    eng_model *draft;
    int draft_max;
    /* constrained decoding: only text the grammar accepts (gr_from_schema
    ** for JSON), ending where its sentence may end; speculative decoding is
    ** off under a grammar. NULL: free text */
    const struct gr_grammar *grammar;
} eng_gen_opts;

/* ---- decoding under a grammar (constrain.c) ----------------------------- */
/* Under a grammar, a token drawn from the free distribution that the grammar
** allows is kept, and the mask is computed only when it does not (see
** generate.c). A variable so that a test can compare with masking at every
** step; nothing in the program changes it. */
extern bool eng_grammar_lazy;
typedef struct eng_constraint eng_constraint;
/* pool (may be NULL): threads to split each mask over (the model's). */
int eng_constraint_new(const struct gr_grammar *g, const tok_vocab *v, cn_pool *pool,
                       eng_constraint **out, cn_err *err);
void eng_constraint_free(eng_constraint *c);
/* out = logits with every token the grammar refuses at -inf; how many remain. */
int eng_constraint_mask(eng_constraint *c, const float *logits, float *out);
/* Would the grammar take token id here (end tokens: where it is complete)? */
bool eng_constraint_allows(const eng_constraint *c, int32_t id);
/* Move past token id; false if the grammar refuses it. */
bool eng_constraint_accept(eng_constraint *c, int32_t id);
/* The grammar's sentence is complete and nothing may follow. */
bool eng_constraint_finished(const eng_constraint *c);
/* Fewest characters that complete the text (gr_distance). */
size_t eng_constraint_distance(const eng_constraint *c);
/* Closing, as the budget runs out: of the tokens masked allows, the most
** likely one that brings the end nearer (an end token once complete); -1
** if none does. */
int32_t eng_constraint_closer(const eng_constraint *c, const float *masked);

/* Open the GGUF file path as a draft model for m, whose vocabulary is v:
** m's context and threads, and the same vocabulary token for token, else an
** error naming the first token that differs. */
int eng_draft_open(eng_model **d, const char *path, const eng_model *m, const tok_vocab *v,
                   cn_err *err);
/* Tokens a draft model proposes at most, unless told otherwise. */
#define ENG_DRAFT_MAX_DEFAULT 4

/* A draft model stops proposing below this probability of its top token:
** an unsure draft is usually rejected, and each drafted token costs a pass
** of the draft model and a share of the check. */
#define ENG_DRAFT_P_MIN 0.75f

typedef struct eng_gen_stats {
    int n_prompt, n_prompt_eval;   /* prompt tokens, of which evaluated (not cached) */
    int n_gen;                     /* tokens generated */
    double t_prompt, t_gen;        /* seconds */
    int stop;                      /* enum eng_stop */
    int n_drafted, n_accepted;     /* drafted tokens (lookup and draft model), and kept */
    int n_model_drafted, n_model_accepted; /* of which from the draft model */
    double t_draft;                /* seconds in the draft model (within t_prompt, t_gen) */
    int n_passes;                  /* forward passes for the answer */
    int n_masked;                  /* under a grammar: steps that needed the whole mask */
    double t_mask;                 /* seconds computing masks (within t_gen) */
} eng_gen_stats;

/* Called with each token and the text it completes (possibly empty while a
** UTF-8 sequence or a possible stop string is held back). Return non-zero
** to stop. */
typedef int (*eng_on_token)(void *ctx, int32_t id, const char *text, size_t len);

int eng_generate(eng_model *m, const tok_vocab *v, const int32_t *prompt, int n_prompt,
                 const eng_gen_opts *o, eng_on_token cb, void *ctx, eng_gen_stats *st,
                 cn_err *err);

/* Forget what the KV cache holds (the next prompt is evaluated whole). */
void eng_model_reset(eng_model *m);

/* A copy of what the KV cache holds (its first n_cached positions and the
** tokens there), to bring a conversation back after other prompts have used
** the model: the server keeps a few, so that a follow-up evaluates only its
** own tokens even when other conversations came in between. */
typedef struct eng_kv_snap eng_kv_snap;
/* Copy the cache (NULL *out and CN_OK when it holds nothing). */
int eng_kv_save(const eng_model *m, eng_kv_snap **out, cn_err *err);
/* Make the cache hold the snapshot again (taken from this model). */
void eng_kv_restore(eng_model *m, const eng_kv_snap *s);
void eng_kv_snap_free(eng_kv_snap *s);
size_t eng_kv_snap_bytes(const eng_kv_snap *s);
/* The tokens a snapshot (s) or the model's cache (m, s NULL) holds. */
const int32_t *eng_kv_tokens(const eng_model *m, const eng_kv_snap *s, int *n);

/* ---- sentence embeddings: BERT-family encoders (bert.c) ----------------
** Token + position + token-type embeddings, post-LayerNorm transformer with
** bidirectional attention, GELU feed-forward, mean or CLS pooling, L2
** normalisation. Architectures "bert" and "jina-bert-v2" (ALiBi instead of
** positions, gated GELU feed-forward). Many texts per call are packed into one batch so the
** matrix kernels see many tokens at once; buffers are allocated at open. */

typedef struct eng_encoder eng_encoder;

/* ENG_POOL_RANK: a cross-encoder (reranker); embedding with one gives its
** [CLS] vector, normalised */
enum { ENG_POOL_NONE = 0, ENG_POOL_MEAN = 1, ENG_POOL_CLS = 2, ENG_POOL_RANK = 4 };

int eng_encoder_open(eng_encoder **out, const char *path, const eng_opts *opts, cn_err *err);
void eng_encoder_close(eng_encoder *e);
const gguf_file *eng_encoder_gguf(const eng_encoder *e);
int eng_encoder_dim(const eng_encoder *e);   /* embedding size */
int eng_encoder_n_ctx(const eng_encoder *e); /* longest sequence (tokens, with [CLS]/[SEP]) */
int eng_encoder_pooling(const eng_encoder *e);
/* Embed n token sequences (ids[i] of lens[i] tokens, 1 <= lens[i] <= n_ctx)
** into out[i * dim .. (i+1) * dim), L2-normalised. Any n: sequences are packed
** into batches of at most n_batch tokens internally. */
int eng_encoder_embed(eng_encoder *e, const int32_t *const *ids, const int *lens, int n,
                      float *out, cn_err *err);

/* Embed texts[0..n) (lens[i] bytes each): tokenize with the model's specials,
** truncate to its context (truncated[i] says so; may be NULL), encode in
** packed batches, write n * dim floats to out. Empty text embeds [CLS][SEP]. */
int eng_embed_texts(eng_encoder *e, const tok_vocab *v, const char *const *texts,
                    const size_t *lens, int n, float *out, bool *truncated, cn_err *err);

/* ---- rerankers: cross-encoders (bert.c, embed.c) ----------------------
** A BERT with llama.cpp's rank pooling (bert.pooling_type 4) and a
** classification head (cls.weight, cls.bias, cls.output.weight,
** cls.output.bias) reads a query and a document together and gives one raw
** score (a logit, no sigmoid): out_w . tanh(cls_w h + cls_b) + out_b, h the
** [CLS] state after the last layer. A jina-bert-v2 reranker (jina-reranker-v1:
** a one-row cls.weight, no cls.output; rank pooling whenever the file has the
** head and no pooling type says otherwise) scores tanh(cls_w h + cls_b), as
** llama.cpp b4747 does; its default pair format is ENG_PAIR_SEP_SEP.
**
** How a pair is laid out is a property of the model (metadata key
** cairn.rerank.pair_format), by default the layout BERT cross-encoders are
** trained with:
**   ENG_PAIR_BERT     [CLS] q [SEP] d [SEP], the document (and its closing
**                     [SEP]) in segment 1 when the model has two token types
**   ENG_PAIR_SEP_SEP  [CLS] q [SEP] [SEP] d [SEP], every token in segment 0:
**                     what llama.cpp b4747's server evaluates */
enum { ENG_PAIR_BERT = 0, ENG_PAIR_SEP_SEP = 1 };

bool eng_encoder_is_reranker(const eng_encoder *e);
/* CN_OK if e is the kind the caller needs (a reranker, or an embedding
** model when reranker is false), else CN_EUNSUPPORTED naming the file and
** where that kind of model goes instead. Every place that opens an encoder
** for one job checks through here, so they refuse alike. */
int eng_encoder_expect(const eng_encoder *e, bool reranker, cn_err *err);
int eng_encoder_n_types(const eng_encoder *e); /* token types (segments) the model has */
int eng_encoder_pair_format(const eng_encoder *e);
/* Override the model's pair format (ENG_PAIR_*). */
void eng_encoder_set_pair_format(eng_encoder *e, int format);
/* Score n token sequences (ids[i], token types types[i] or all 0 when types
** is NULL, lens[i] tokens) into scores[0..n); packed like eng_encoder_embed.
** CN_EUNSUPPORTED, naming the file, if the model is not a reranker. */
int eng_encoder_rerank(eng_encoder *e, const int32_t *const *ids, const int32_t *const *types,
                       const int *lens, int n, float *scores, cn_err *err);
/* Lay out one (query, document) pair in the model's format into ids and
** types (each room for eng_encoder_n_ctx() tokens). Text is tokenized
** without specials; a pair longer than the context loses the end of the
** document first, then of the query (which keeps at least half) and sets
** *truncated (may be NULL). Returns the count or a negative CN_E* code. */
int eng_rerank_pair(const eng_encoder *e, const tok_vocab *v, const char *query, size_t qlen,
                    const char *doc, size_t dlen, int32_t *ids, int32_t *types, bool *truncated,
                    cn_err *err);
/* Score query against docs[0..n) (lens[i] bytes each): one raw score per
** document, in input order; truncated[i] (may be NULL) says a pair was cut. */
int eng_rerank_texts(eng_encoder *e, const tok_vocab *v, const char *query, size_t qlen,
                     const char *const *docs, const size_t *lens, int n, float *scores,
                     bool *truncated, cn_err *err);

/* Dot product of two float vectors with the active kernels (SIMD when the
** CPU has it): for code above the engine, like vector search. */
float eng_dot(int n, const float *a, const float *b);

#endif
