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
    const char *locator; /* heading path ("Installing › Disk space"), or NULL */
    bool ocr;            /* read by OCR from a scan: cited "p. 3 (OCR)" */
} rag_source;

/* Counts tokens of s[0..n) (the language model's tokenizer); NULL in the
** calls below means a rough estimate of one token per 4 bytes. */
typedef int (*rag_count_fn)(void *ctx, const char *s, size_t n);

/* Prompt-lookup draft length for grounded answers (eng_gen_opts.lookup):
** answers quote their passages, so the words that followed a quoted phrase
** there are good guesses. Off by default for now: on the 1B shape, checking
** 2 drafted tokens costs 2.5x and 4 cost 3.3x one token (`cairn bench
** --verify`, 2026-12-03), so it pays only when most drafts are kept, which
** no real model here can show; `ask --lookup K` turns it on. */
#define RAG_LOOKUP 0

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

/* The (at most) k of texts[0..n) that best match query, by the query's
** content words each holds, a word weighing more the fewer texts hold it;
** their indices best first into best[]. Texts holding none of the words
** are never chosen: returns how many were (0: nothing mentions it). */
int rag_rank(const char *query, const char *const *texts, int n, int k, int *best);

/* ---- passages cut to the question (trim.c) ----------------------------- */

/* How passages are trimmed for a model's prompt. Each is cut into the units
** of the extractive answer; the units holding a term of the question are
** kept, with context units on each side, and the passage's heading line;
** what is left out shows as " … ". Passages keep their order and numbers. */
typedef struct rag_trim_opts {
    int budget;       /* tokens for the text of all passages; 0: whole passages */
    int context;      /* units kept on each side of one holding a term */
    bool fill;        /* then fill each passage's share, nearest units first */
    int no_match_pct; /* a passage holding no term keeps its opening: this % of its share */
} rag_trim_opts;

/* The defaults (`cairn ask` and the server): budget RAG_PASSAGE_TOKENS, one
** unit of context, fill. Chosen on bench/qa (bench/trim.sh): the answer's
** evidence survives in 101 of 101 passages at 1024; smaller budgets save
** more tokens but lose evidence (the questions are paraphrased, so their
** terms often miss the answering sentence). `cairn ask --help` says it. */
enum { RAG_PASSAGE_TOKENS = 1024 };
rag_trim_opts rag_trim_defaults(void);

/* Trim one passage p[0..len) to at most budget tokens (count; NULL: the
** estimate) and append it to out. A passage within budget is copied whole;
** a unit too long for any budget gives its opening words, cut between code
** points. CN_OK or CN_ENOMEM. */
int rag_trim_passage(const char *question, const char *p, size_t len, const rag_trim_opts *o,
                     int budget, rag_count_fn count, void *ctx, cn_buf *out);

/* Trim src[0..n) to o->budget tokens in all: each passage gets an equal
** share, and one shorter than its share is kept whole and leaves the rest
** to the others. out[i] (initialised by the caller) receives passage i,
** before[i] and after[i] its tokens whole and as kept. */
int rag_trim(const char *question, const rag_source *src, int n, const rag_trim_opts *o,
             rag_count_fn count, void *ctx, cn_buf *out, int *before, int *after);

/* ---- the whole prompt for a chat model (prompt.c) ---------------------- */

/* Tokens kept free for the answer in a context of n_ctx: min(512, n_ctx / 4). */
int rag_answer_reserve(int n_ctx);

/* What went into a grounded prompt. */
typedef struct rag_prompt_info {
    int n_used;          /* passages (the first n_used of those given) */
    int passage_tokens;  /* their text, whole */
    int passage_kept;    /* their text as trimmed (passage_tokens untrimmed) */
    int n_trimmed;       /* passages cut */
} rag_prompt_info;

/* The grounded prompt for a chat model: the system prompt and the user
** message of rag_build_user over src[0..n) trimmed by trim (NULL: whole
** passages; see rag_trim), as many as fit in n_ctx with
** rag_answer_reserve(n_ctx) tokens left for the answer, rendered in the
** chat template family and tokenized (BOS per the vocab, special-token text
** parsed). *ids is malloc'd for the caller to free; info says what went in.
** CN_ELIMIT if not even one passage fits. */
int rag_prompt_tokens(const tok_vocab *v, const char *family, int n_ctx, const char *question,
                      const rag_source *src, int n, const rag_trim_opts *trim, int32_t **ids,
                      int *n_ids, rag_prompt_info *info, cn_err *err);

/* ---- summaries: sentences, their pages, the extractive summary (summary.c) */

/* Pages first..last of a document. */
typedef struct rag_span {
    int first, last;
} rag_span;

enum { RAG_SPANS = 4 };

/* A sentence and the pages it came from (n_spans 0: not known). */
typedef struct rag_sent {
    char *text; /* malloc'd, white space runs as one space */
    rag_span spans[RAG_SPANS];
    int n_spans;
} rag_sent;

typedef struct rag_sents {
    rag_sent *v;
    int n, cap;
} rag_sents;

void rag_sents_free(rag_sents *s);
/* Append a copy of text[0..len) with spans. */
int rag_sents_add(rag_sents *s, const char *text, size_t len, const rag_span *spans, int n_spans);

/* Cut text[0..len) into sentences (rag_split_units' units) appended to out,
** each with spans; prose_only keeps only units that read as sentences of
** prose (no headings, no fragments of under 4 words). */
int rag_sentences(const char *text, size_t len, bool prose_only, const rag_span *spans,
                  int n_spans, rag_sents *out);

/* The pages sentence s came from, by the content words it shares with each
** of src[0..n) (whose spans are known): the best source's spans, and those
** of any source that holds nearly as many of its words. A sentence sharing
** under two words with every source gets fallback. */
void rag_attribute(rag_sent *s, const rag_sents *src, rag_span fallback);

/* "p. 3", "pp. 3-5", "pp. 3, 9-10" for s's spans into out. */
int rag_format_spans(const rag_sent *s, cn_buf *out);

/* The extractive summary: the want sentences of s most central to the whole
** (each sentence scored by the weight of its words in the document's
** centroid, rare words weighing more, then chosen greedily, each new one
** penalised by the words it shares with those already chosen). Writes
** their indices in document order into chosen; returns how many. */
int rag_central(const rag_sents *s, int want, int *chosen);

#endif
