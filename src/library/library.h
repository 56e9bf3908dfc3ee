/*
** library.h: the user's document library, one level above ingest, store,
** search and the engine. Each operation the faces offer (add, index,
** search, ask) is one function here, called by the CLI and the server alike.
**
** Levels of service: with no model, keyword search and extractive answers;
** with an embedding model, hybrid search over the passages that have vectors;
** with a language model, written answers with citations.
*/
#ifndef CN_LIBRARY_H
#define CN_LIBRARY_H

#include "base/base.h"
#include "store/store.h"
#include "rag/rag.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct lib lib;

/* Open (creating if needed) the library in data directory home (NULL: the
** default, see cn_data_dir): home/library.db. */
int lib_open(lib **out, const char *home, cn_err *err);
void lib_close(lib *l);

/* ---- encryption at rest (crypt.c) ---------------------------------------------
**
** A library with home/library.keys beside it is encrypted: lib_open unlocks
** it with, in this order, the key file set here or in $CAIRN_KEY_FILE, the
** passphrase in $CAIRN_PASSPHRASE, the desktop keyring (if it is one of the
** library's ways), or a passphrase asked through prompt. A wrong or
** missing key is CN_EVERIFY and nothing is written.
*/
typedef struct lib_unlock {
    const char *key_file; /* --key-file, or NULL */
    /* ask for a passphrase (question shown): 0 with it in out, else -1 */
    int (*prompt)(void *ctx, const char *question, char *out, size_t cap);
    void *ctx;
} lib_unlock;
void lib_set_unlock(const lib_unlock *u); /* process-wide; NULL resets */

/* Encrypted? and *how (if not NULL) says how it was unlocked. */
bool lib_encrypted(const lib *l, const char **how);

/* ---- copies of uploaded files (upload.c) ----------------------------------------
**
** The server keeps a copy of each uploaded file in home/LIB_UPLOADS_DIR. In
** an encrypted library the copy is sealed (libsodium secretstream, a key
** derived from the data key); lib_add and OCR read it back through
** lib_read_upload. Plain copies (uploaded before encryption) read as they are.
*/
typedef struct lib_sealkey lib_sealkey;
typedef struct lib_upfile lib_upfile;
/* The key upload copies are sealed with, or NULL for a plain library. */
lib_sealkey *lib_seal_key(const lib *l);
void lib_seal_key_free(lib_sealkey *k);
/* Write a copy at path (mode 0600), sealed with k, or plain when k is NULL;
** close reports a write error (a full disk) and frees; abort removes it. */
int lib_upfile_create(const lib_sealkey *k, const char *path, lib_upfile **out, cn_err *err);
int lib_upfile_write(lib_upfile *u, const void *data, size_t n, cn_err *err);
int lib_upfile_close(lib_upfile *u, cn_err *err);
void lib_upfile_abort(lib_upfile *u);
/* Does a file starting with head hold a sealed copy? */
bool lib_upload_sealed(const unsigned char *head, size_t n);
/* Unseal len bytes of a sealed copy (named path in messages) into *out. A
** damaged, cut or extended copy is CN_EVERIFY naming the file. */
int lib_open_sealed(const lib_sealkey *k, const char *path, const unsigned char *in, size_t len,
                    unsigned char **out, size_t *out_len, cn_err *err);
/* The contents of the upload copy at path (at most max bytes of plaintext),
** unsealed if it is sealed. */
int lib_read_upload(const lib *l, const char *path, size_t max, char **out, size_t *out_len,
                    cn_err *err);
/* Seal (or unseal) every upload copy in place, their documents' file state
** following; returns how many were converted. */
int lib_convert_uploads(lib *l, bool seal, cn_err *err);

/* Ways to unlock to enroll: at least one. */
typedef struct lib_enroll {
    const char *passphrase;   /* or NULL */
    const char *key_file;     /* an existing key file, or NULL */
    const char *new_key_file; /* a key file to create, or NULL */
    bool keyring;             /* the desktop keyring (Secret Service) */
    const struct vault_kdf *kdf; /* passphrase cost, NULL: tuned (~0.5 s) */
} lib_enroll;

/* A new, empty, encrypted library in home_opt (resolved into home_out). */
int lib_init_encrypted(const char *home_opt, const lib_enroll *e, char *home_out,
                       size_t home_cap, cn_err *err);
/* Convert the library in place: a copy written beside it, checked, then
** swapped in; encrypting overwrites the plaintext file it replaces. No
** other process may have the library open. */
int lib_encrypt(const char *home_opt, const lib_enroll *e, cn_err *err);
int lib_decrypt(const char *home_opt, cn_err *err);
/* The envelope's entries; adding or removing one needs the library
** unlocked (as lib_open does); changing a passphrase needs the old one. */
int lib_key_list(const char *home_opt, void (*fn)(void *ctx, int i, const char *kind,
                                                  const char *label), void *ctx, cn_err *err);
int lib_key_add(const char *home_opt, const lib_enroll *e, cn_err *err);
int lib_key_remove(const char *home_opt, int i, cn_err *err);
int lib_key_passwd(const char *home_opt, const char *old_pass, const char *new_pass,
                   const struct vault_kdf *kdf, cn_err *err);
store *lib_store(lib *l);
const char *lib_home(const lib *l);

/* ---- add ------------------------------------------------------------------ */

enum lib_event_kind {
    LIB_EV_SCAN,      /* files found so far: files_total */
    LIB_EV_FILE,      /* a file done: path, outcome, pages, passages or error */
    LIB_EV_EMBED,     /* embedding progress: done/total, eta_s */
    LIB_EV_OCR,       /* OCR progress: pages embed_done/embed_total, eta_s; path, pages =
                         the page just read, error if it failed */
};

enum lib_outcome { LIB_ADDED = 1, LIB_UPDATED, LIB_UNCHANGED, LIB_FAILED, LIB_PRUNED };

typedef struct lib_event {
    int kind;               /* enum lib_event_kind */
    const char *path;
    int outcome;            /* enum lib_outcome, for LIB_EV_FILE */
    const char *error;      /* LIB_FAILED: why */
    const char *notes;      /* non-fatal notes from extraction, or "" */
    int pages, passages;
    int files_done, files_total;
    int64_t embed_done, embed_total;
    double eta_s;           /* estimated seconds left, < 0 if unknown */
} lib_event;

typedef void (*lib_progress_fn)(void *ctx, const lib_event *ev);

typedef struct lib_add_stats {
    int added, updated, unchanged, failed, pruned;
    int64_t pages, passages;
} lib_add_stats;

/* Add files and folders (recursively; symlink loops are detected) to the
** library: unchanged files (same size, mtime and content hash) are skipped,
** changed ones re-indexed, each document written in one transaction. A file
** that fails is recorded with its reason and the batch goes on. With prune,
** documents whose file is gone are removed. Keyword search works as soon as
** this returns; vectors come from lib_index. */
int lib_add(lib *l, const char *const *paths, int n, bool prune, lib_progress_fn fn, void *ctx,
            lib_add_stats *st, cn_err *err);

/* Size the passages of the documents lib_add reads from now on in tokens
** of the embedding model at model_path (at most its context), instead of
** the fixed word-based estimate. */
int lib_chunk_with(lib *l, const char *model_path, int threads, cn_err *err);

/* Compute embeddings for every passage that has none for the embedding model
** at model_path, in batches; resumable (interrupting loses at most a batch).
** Returns the number of passages embedded. */
int lib_index(lib *l, const char *model_path, int threads, lib_progress_fn fn, void *ctx,
              cn_err *err);

/* ---- OCR of scanned pages ------------------------------------------------- */

typedef struct lib_ocr_stats {
    int pages, failed;  /* read, and given up on (file gone or changed, unrenderable) */
    int low;            /* read with a mean confidence under STORE_OCR_LOW_CONF */
    double seconds;
    float mean_conf;
} lib_ocr_stats;

/* Read every page waiting for OCR (scans, images: lib_add queues them) with
** tesseract in langs (NULL: ocr_default_langs), threads pages at a time,
** each page's text and passages committed when it is read: resumable, an
** interruption loses only the pages in flight. A page whose file changed
** or went away since it was added is marked failed (`cairn add` queues it
** again). Returns the pages read, or a CN_E* code (CN_ENOTFOUND with what
** to install when tesseract's data is missing; pages stay queued). */
int lib_ocr(lib *l, const char *langs, int threads, lib_progress_fn fn, void *ctx,
            lib_ocr_stats *st, cn_err *err);

/* A document's (or the library's) OCR state as JSON: done, pending, failed,
** low_confidence (`cairn ls --json` and the server's documents list). */
json_t *lib_ocr_counts_json(const store_ocr_counts *c);

/* The same, for a long-lived process: at most max_pages pages (0: all), and
** none more once *stop (may be NULL) becomes true -- the pages in flight are
** finished and committed first. */
int lib_ocr_some(lib *l, const char *langs, int threads, int max_pages, const atomic_bool *stop,
                 lib_progress_fn fn, void *ctx, lib_ocr_stats *st, cn_err *err);

/* ---- remove ------------------------------------------------------------------ */

/* Uploads (the server's) are stored as files in home/LIB_UPLOADS_DIR/. */
#define LIB_UPLOADS_DIR "documents"

/* Remove a document with all its rows: by id, or (id 0) by path. When its
** file is an upload copy (a regular file directly in the uploads folder,
** written there by Cairn) that file is deleted too, after the rows are gone;
** a file the user added from anywhere else is never touched. *deleted (may
** be NULL) says whether a copy was deleted. CN_ENOTFOUND if no such document. */
int lib_remove(lib *l, int64_t id, const char *path, bool *deleted, cn_err *err);

/* ---- one embedding model for many handles ------------------------------------
** A handle opens the embedding model it is asked to use by itself, on first
** use: right for the CLI's one handle. A process with several handles (the
** server's pool) gives each the same embedder instead: the model is loaded
** once, its work goes wherever embed sends it (the server: that model's one
** worker and queue), and the vectors search reads are loaded once and shared
** by every handle (a snapshot each search holds until it is done). */

typedef struct lib_vectors lib_vectors;

typedef struct lib_embedder {
    const char *path;    /* the model file it stands for (what callers pass as model_path) */
    char name[320];      /* what the store files its vectors under: lib_model_name() */
    int dim;             /* floats per vector */
    /* Embed n texts into vecs (n x dim). Called from several threads at once. */
    int (*embed)(void *ctx, const char *const *texts, const size_t *lens, int n, float *vecs,
                 cn_err *err);
    void *ctx;
    /* the library's: the shared vector snapshot (lib_embedder_init) */
    pthread_mutex_t mu;
    lib_vectors *cur;
} lib_embedder;

/* The name the store gives vectors of the model at model_path:
** "file.gguf:<first 16 hex of its SHA-256>", so other weights never mix in. */
int lib_model_name(const char *model_path, char *out, size_t cap, cn_err *err);
/* Fill e's name from path (hashing the file) and set up its snapshot; the
** caller sets dim, embed and ctx. lib_embedder_free drops the snapshot. */
int lib_embedder_init(lib_embedder *e, const char *path, cn_err *err);
void lib_embedder_free(lib_embedder *e);
/* Use e (borrowed: it outlives l) whenever l is asked for e->path's model.
** Passages are then sized by the word estimate (lib_chunk_with still opens
** the model itself). */
void lib_share_embedder(lib *l, lib_embedder *e);
/* Embedding models this process's handles have loaded by themselves (for
** tests: a shared embedder loads none). */
int lib_encoder_loads(void);

/* ---- search and ask ---------------------------------------------------------- */

typedef struct lib_result {
    int64_t passage_id, doc_id;
    const char *path, *title;
    int page_start, page_end; /* the pages the passage spans */
    int page;               /* the page to cite: where the query's words first appear */
    const char *text;
    double score;           /* keyword: -bm25; vector: cosine; hybrid: RRF */
    const char *locator;    /* heading path in files that mark headings, or NULL */
    bool ocr;               /* the text comes from OCR of a scanned page ... */
    float ocr_conf;         /* ... with this mean confidence (0..100) */
} lib_result;

typedef struct lib_search_opts {
    int k;                  /* results wanted (default 5) */
    const char *embed_model;/* GGUF path for hybrid search, or NULL: keyword only */
    int threads;
} lib_search_opts;

/* What a search did, for messages and for deciding that nothing matched. */
typedef struct lib_search_info {
    const char *mode;       /* "keyword" or "hybrid" */
    int n_keyword;          /* passages the keyword index matched */
    float best_cosine;      /* hybrid: similarity of the closest passage */
    float absent;           /* the idf-weighted share of the query's words no page
                               holds (store_query_info.absent) */
    char missing[160];      /* those words, ", "-separated */
} lib_search_info;

/* Below this cosine similarity, with no keyword match either, a hybrid search
** counts as having found nothing relevant. */
#define LIB_MIN_COSINE 0.30f

/* A keyword-only search whose absent words carry at least this share of the
** question's weight counts as "not found in your documents". Calibrated on
** bench/qa (123 paraphrased questions, 17 the documents cannot answer): 0.25
** refuses 9 of the 17 and 7 of the 106 answerable ones (bench/qa/README.md). */
#define LIB_MAX_ABSENT 0.25f

/* Did the search find nothing the documents say about the query? n results,
** info from lib_search. Hybrid search is judged by its cosine only: a
** question in other words than the pages' is what vectors are for. */
bool lib_not_found(int n, const lib_search_info *info);

/* What to tell the user then, into out: "Not found in your documents: no
** page mentions Kubernetes." (or that nothing matches at all). */
void lib_not_found_text(const lib_search_info *info, cn_buf *out);

/* Search: keyword (FTS5 bm25), and when an embedding model is given and the
** library has vectors for it, vector search fused by reciprocal rank fusion
** (k = 60). Strings live in arena a. Returns the number of results or a
** CN_E* code. */
int lib_search(lib *l, const char *query, const lib_search_opts *o, cn_arena *a, lib_result *out,
               lib_search_info *info, cn_err *err);

/* A search result as JSON: doc, doc_id, path, page, page_start, page_end,
** locator (null when the file marks no headings), ocr (and ocr_confidence
** when true), score, text (what `cairn search --json` and the server's search print). */
json_t *lib_result_json(const lib_result *r);

/* How many passages have a vector for the embedding model at model_path,
** out of how many. */
int lib_index_progress(lib *l, const char *model_path, int threads, int64_t *done,
                       int64_t *total, cn_err *err);

/* Forget the vectors loaded for hybrid search, so the next search reads them
** again: for a long-lived handle after another handle changed the library.
** With a shared embedder, every handle sharing it reads them again. */
void lib_reload_vectors(lib *l);

/* ---- summaries (summarize.c) ------------------------------------------------
**
** Map-reduce over a document's pages within a language model's context:
** groups of pages are summarised, then groups of those summaries, until
** one call holds everything and writes the summary. Each partial summary
** is committed to the library as it is made (keyed by the document's
** content hash, the model and the length), so a run that is stopped takes
** up where it left off. Each sentence carries the pages it came from,
** traced by the words it shares with what the model read (rag_attribute).
** Without a model, the extractive summary (rag_central) is given instead.
*/

/* A language model as summaries use it; the CLI and the server each supply
** one (the server's runs on its model worker). */
struct gr_grammar;

typedef struct lib_llm {
    const char *name;  /* keys stored partial summaries: the model file's name, size, mtime */
    int n_ctx;         /* tokens the model sees at once */
    /* tokens of s[0..n) as the model counts them */
    int (*count)(void *ctx, const char *s, size_t n);
    /* the model's reply to system + user, at most max_tokens, under grammar
    ** (NULL: free text), appended to out; text (may be NULL) sees it as it
    ** comes */
    int (*chat)(void *ctx, const char *system, const char *user, int max_tokens,
                const struct gr_grammar *grammar, void (*text)(void *tctx, const char *s, size_t n),
                void *tctx, cn_buf *out, cn_err *err);
    void *ctx;
} lib_llm;

enum lib_sum_length { LIB_SUM_SHORT, LIB_SUM_MEDIUM, LIB_SUM_LONG };
/* "short", "medium", "long" -> LIB_SUM_*, or -1. */
int lib_sum_length_of(const char *name);

enum lib_sum_event_kind {
    LIB_SUM_STEP = 1, /* a model call starts (or is found done): done of total */
    LIB_SUM_TEXT,     /* the final call's text as it comes: text, len */
};

typedef struct lib_sum_event {
    int kind;
    int done, total;  /* model calls done, and all there will be (an estimate
                         until the last level) */
    int level;        /* 0: pages; 1 on: summaries of summaries */
    int first, last;  /* the pages this call covers */
    bool cached;      /* found in the library: no call */
    double eta_s;     /* seconds left, < 0 while unknown */
    const char *text;
    size_t len;
} lib_sum_event;

typedef void (*lib_sum_fn)(void *ctx, const lib_sum_event *ev);

typedef struct lib_summary {
    const char *mode;    /* "generated" or "extractive" */
    rag_sents s;         /* the summary: sentences and their pages */
    int n_pages;         /* of the document */
    int steps, cached;   /* model calls in all, of which found in the library */
    rag_span *groups;    /* the page groups of the first level (malloc'd) */
    int n_groups;
    double seconds;
} lib_summary;

/* Summarise document doc_id at length (LIB_SUM_*) with m, or extractively
** when m is NULL. CN_ENOTFOUND if no such document; CN_EINVAL if it has no
** text (scanned pages still waiting for OCR). */
int lib_summarize(lib *l, int64_t doc_id, int length, const lib_llm *m, lib_sum_fn fn, void *ctx,
                  lib_summary *out, cn_err *err);
void lib_summary_free(lib_summary *s);
/* The summary as JSON: mode, sentences [{text, pages: [[first, last], ...]}],
** groups, steps, cached. */
json_t *lib_summary_json(const lib_summary *s);

/* ---- extraction (extract.c) ------------------------------------------------
**
** A schema's fields filled from one document, each value with a citation:
** the page and the verbatim sentence that states it (found on that page
** before it is offered to the model, and the only thing the model may quote).
** A value the quoted sentence does not support -- a string or a number in it
** that the sentence does not contain -- or no sentence at all gives null,
** with the reason in the citation. The result:
**   {"document": path, "data": {field: value | null, ...},
**    "citations": {field: {"page": 3, "quote": "..."}
**                       | {"page": null, "quote": null, "reason": "..."}}}
*/

/* Parse and check a schema for extraction: an object with properties (the
** fields), every keyword one the grammar honours (else CN_EUNSUPPORTED
** naming it). *schema (a new reference) for lib_extract. */
int lib_extract_check(const char *text, size_t len, json_t **schema, cn_err *err);

/* Called before each field (done of total). */
typedef void (*lib_extract_fn)(void *ctx, const char *doc, const char *field, int done, int total);

/* Fill schema's fields from document doc_id with m; k passages per field
** (0: 3). *out (a new reference) as above. */
int lib_extract(lib *l, int64_t doc_id, json_t *schema, int k, const lib_llm *m,
                lib_extract_fn fn, void *ctx, json_t **out, cn_err *err);

#endif
