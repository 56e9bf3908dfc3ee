/*
** rag.h: grounded answers. Builds the prompt from retrieved passages (each
** numbered, with document and page), checks the citations a model writes
** against the passages it was given, and, with no language model, composes
** an extractive answer from the best sentences.
*/
#ifndef CN_RAG_H
#define CN_RAG_H

#include "base/base.h"
#include "tok/tok.h"

typedef struct rag_source {
    const char *path;   /* document path (shown as its file name) */
    const char *title;
    int page_start, page_end;
    const char *text;   /* the passage */
} rag_source;

/* Counts tokens of s[0..n) (the language model's tokenizer); NULL in the
** calls below means a rough estimate of one token per 4 bytes. */
typedef int (*rag_count_fn)(void *ctx, const char *s, size_t n);

/* Prompt-lookup draft length for grounded answers (eng_gen_opts.lookup):
** answers quote their passages, so the words that followed a quoted phrase
** there are good guesses, checked four at a time. */
#define RAG_LOOKUP 4

/* The instructions given to the model (system message). */
extern const char rag_system_prompt[];

/* Write the user message: numbered passages, then the question, using as many
** of src[0..n) (best first) as fit in budget tokens. Returns how many passages
** were used (0 if not even one fits: the caller says so), or a CN_E* code. */
int rag_build_user(const char *question, const rag_source *src, int n, int budget,
                   rag_count_fn count, void *ctx, cn_buf *out, cn_err *err);

/* "[n] file.pdf, p. 12" (or "pp. 12-13") for source i (0-based) into out. */
int rag_format_source(const rag_source *s, int i, cn_buf *out);

/* Streaming citation check. Feed the model's text as it arrives; text comes
** out with citations [n] (also "[n, m]") that name no passage removed, and
** the valid ones noted in used[]. Text that might still become a citation is
** held back until it is decided. */
typedef struct rag_cite_filter {
    int n_sources;
    bool *used;          /* n_sources flags, set by valid citations */
    int n_invalid;       /* citations dropped */
    int invalid[16];     /* the first numbers dropped */
    char held[32];
    int n_held;
} rag_cite_filter;

void rag_cite_init(rag_cite_filter *f, int n_sources, bool *used);
/* Append the checked text to out. */
int rag_cite_feed(rag_cite_filter *f, const char *text, size_t len, cn_buf *out);
/* End of the answer: release anything still held. */
int rag_cite_flush(rag_cite_filter *f, cn_buf *out);

/* Extractive answer: the sentences of src[0..n) that share the most words
** with the question (at most max_sentences, in source order), each followed
** by its citation [i+1]; used[] marks the sources cited. */
int rag_extract(const char *question, const rag_source *src, int n, int max_sentences,
                cn_buf *out, bool *used);

/* ---- the whole prompt for a chat model (prompt.c) ---------------------- */

/* Tokens kept free for the answer in a context of n_ctx: min(512, n_ctx / 4). */
int rag_answer_reserve(int n_ctx);

/* The grounded prompt for a chat model: the system prompt and the user
** message of rag_build_user (as many of src[0..n) as fit in n_ctx with
** rag_answer_reserve(n_ctx) tokens left for the answer), rendered in the
** chat template family and tokenized (BOS per the vocab, special-token text
** parsed). *ids is malloc'd for the caller to free; *n_used says how many
** passages went in. CN_ELIMIT if not even one passage fits. */
int rag_prompt_tokens(const tok_vocab *v, const char *family, int n_ctx, const char *question,
                      const rag_source *src, int n, int32_t **ids, int *n_ids, int *n_used,
                      cn_err *err);

#endif
