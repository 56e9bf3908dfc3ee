/*
** store.h: the library database, public face.
**
** One SQLite file (library.db) holds every document Cairn has indexed: the
** document row (path, content hash, size, mtime, kind, title, status), the
** text of each page, the passages cut from it, an FTS5 keyword index over the
** passages, and passage embeddings per embedding model.
**
** Guarantees:
**   - A document is written in one transaction (store_put_document): after a
**     crash, kill -9 or power loss it is either fully present (row, every
**     page, every passage, every FTS entry) or absent; a re-index of a
**     changed file replaces the old version in the same transaction.
**   - A committed transaction survives power loss (WAL, synchronous=FULL).
**   - A database written by a newer Cairn, a file that is not a SQLite
**     database, a truncated or damaged one, or a SQLite database of some
**     other program is refused with a clear message and never modified.
**   - Removing a document removes all its rows (pages, passages, FTS entries,
**     embeddings); freed pages are zeroed (secure_delete). store_compact()
**     also purges the FTS index's history and shrinks the file.
**
** A store is used by one thread at a time. Several processes may open the
** same library: readers never wait; writers wait up to STORE_BUSY_MS for
** each other.
**
** Start reading at store.c (open, documents, listing), then schema.c (tables
** and migrations), search.c (keyword queries) and embed.c (vectors).
*/
#ifndef CN_STORE_H
#define CN_STORE_H

#include "base/base.h"

typedef struct store store;

/* Schema version this build writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 8
/* How long a writer waits for another process's write to finish. */
#define STORE_BUSY_MS 10000
/* Content hash: BLAKE2b-256 (libsodium crypto_generichash) as lower-case hex. */
#define STORE_HASH_HEX 64

/* ---- input: one document as ingest produces it ------------------------ */

typedef struct store_page_in {
    int number;       /* 1-based, strictly increasing within a document */
    const char *text; /* UTF-8, len bytes (need not be NUL-terminated) */
    size_t len;
    bool ocr_pending; /* no text layer: queued for OCR (text is empty) */
} store_page_in;

typedef struct store_passage_in {
    int page_start, page_end; /* 1-based, page_start <= page_end <= last page */
    size_t off_start, off_end; /* byte offsets: off_start in page_start's text,
                                  off_end in page_end's text */
    const char *text;          /* UTF-8, len bytes, not empty */
    size_t len;
    const char *heading;       /* NUL-terminated context ("3.2 Installation"), or NULL */
    const char *locator;       /* heading path ("3 Installing › 3.2 Disk space"), NULL or "" if none */
} store_passage_in;

typedef struct store_doc_in {
    const char *path;  /* as the user's file is known; unique in the library */
    const char *hash;  /* STORE_HASH_HEX lower-case hex digits (store_hash_file) */
    int64_t size;      /* bytes */
    int64_t mtime_ns;  /* modification time, nanoseconds since the epoch */
    const char *kind;  /* "pdf", "text", "markdown", "html", ... */
    const char *title; /* or NULL */
    const store_page_in *pages;
    int n_pages;
    const store_passage_in *passages;
    int n_passages;
} store_doc_in;

/* ---- open and close ---------------------------------------------------- */

/*
** Open the library at path, creating it (mode 0600: it holds the text of
** every document) if the file does not exist; its directory must. Sets WAL mode, foreign keys, synchronous=FULL, a busy
** timeout, and migrates an older schema forward, one transaction per step.
** Fails without touching the file when it is not a SQLite database
** (CN_EFORMAT), is truncated or damaged (CN_EFORMAT), belongs to another
** program (CN_EFORMAT) or comes from a newer Cairn (CN_EUNSUPPORTED).
** On failure *out is NULL.
*/
int store_open(store **out, const char *path, cn_err *err);
/*
** The same, for an encrypted library when encrypted is true: every page of
** the file and its WAL sealed by the vault's VFS under the key attached for
** path (vault_vfs_attach), which must be attached first. A plain library
** opened as encrypted, or an encrypted one as plain, is refused untouched.
** A page that fails authentication is CN_EVERIFY naming the file and page.
*/
int store_open_enc(store **out, const char *path, bool encrypted, cn_err *err);
bool store_encrypted(const store *s);

/*
** Copy the library at src (encrypted if src_enc) into a new file dst
** (encrypted if dst_enc; the key of each encrypted side attached first),
** then check the copy (SQLite's quick_check, the keyword index's own check,
** the row count of every table against the source). No other process may
** have src open (CN_EIO says so). Copying from a plain library overwrites
** its WAL with zeros once the copy is good. On failure dst is removed.
*/
int store_copy(const char *src, bool src_enc, const char *dst, bool dst_enc, cn_err *err);

/*
** Overwrite an open file's bytes with zeros and sync: 0 or -1. Best effort:
** an SSD remaps blocks and a copy-on-write filesystem (btrfs, ZFS) writes
** elsewhere, so the old blocks may survive on the device.
*/
int store_wipe_fd(int fd);
void store_close(store *s);

/* Schema version of the open database (always STORE_SCHEMA_VERSION). */
int store_schema_version(const store *s);

/*
** Hash a file by streaming it: BLAKE2b-256, hex into hex[STORE_HASH_HEX + 1].
** *size (if not NULL) receives the number of bytes hashed.
*/
int store_hash_file(const char *path, char hex[STORE_HASH_HEX + 1], int64_t *size, cn_err *err);

/* ---- documents --------------------------------------------------------- */

/*
** Write a whole document: its row, pages, passages and FTS entries, in one
** transaction. A document with the same path is replaced in that same
** transaction (it keeps its id; its embeddings are carried over to new
** passages whose heading and text are identical, the rest are dropped).
** Every field is checked first (page order, passage page ranges and offsets,
** valid UTF-8, hash format): bad input fails with CN_EINVAL and writes
** nothing; any later failure rolls the whole document back, leaving a
** previous version untouched. *doc_id (if not NULL) receives the id.
*/
int store_put_document(store *s, const store_doc_in *d, int64_t *doc_id, cn_err *err);

/*
** Record a file that could not be indexed (status "failed", the message in
** error), replacing any previous version of it in one transaction: a failed
** document never has pages or passages, so search never cites a version of
** the file that no longer exists. pages/passages of d are ignored; d->hash
** may be NULL (the file could not be read), and then the next add retries it.
*/
int store_put_failed(store *s, const store_doc_in *d, const char *error, int64_t *doc_id,
                     cn_err *err);

/* What an incremental add needs to decide whether a file changed. */
typedef struct store_file_state {
    int64_t id;
    char hash[STORE_HASH_HEX + 1];
    int64_t size, mtime_ns;
    bool failed;
} store_file_state;

/* Fill *st for the document at path: 0, CN_ENOTFOUND, or an error. */
int store_find_by_path(store *s, const char *path, store_file_state *st, cn_err *err);

/* Record that the file of the document at path now has this hash, size
** and modification time (its contents unchanged: an upload copy sealed or
** unsealed in place). CN_ENOTFOUND if no document has that path. */
int store_set_file_state(store *s, const char *path, const char *hash, int64_t size,
                         int64_t mtime_ns, cn_err *err);

/* Remove a document and all its rows. CN_ENOTFOUND if there is none. */
int store_remove_path(store *s, const char *path, cn_err *err);
int store_remove_id(store *s, int64_t doc_id, cn_err *err);

/* One document as listed; strings live until the callback returns. */
typedef struct store_doc_info {
    int64_t id;
    const char *path, *title, *kind; /* title may be NULL */
    const char *hash;                /* NULL for a failed file that could not be read */
    int64_t size, mtime_ns;
    int n_pages, n_passages;
    bool failed;
    const char *error;  /* NULL unless failed */
    int64_t added_at;   /* unix seconds, first added */
    int64_t indexed_at; /* unix seconds, last written */
} store_doc_info;

/* Call fn for every document in path order; a non-zero return from fn stops
** the walk and is returned. fn must not write to the store. */
typedef int (*store_doc_fn)(void *ctx, const store_doc_info *d);
int store_list(store *s, store_doc_fn fn, void *ctx, cn_err *err);

/* Does the file at path still exist? The default (exists == NULL) treats only
** ENOENT/ENOTDIR from stat() as gone, so an unreadable file or a failing
** disk is never pruned. */
typedef bool (*store_exists_fn)(void *ctx, const char *path);
/*
** Remove every document whose file is gone. The callback runs with no
** transaction open; the removals then happen in one transaction.
** Returns the number removed or a CN_E* code.
*/
int store_prune(store *s, store_exists_fn exists, void *ctx, cn_err *err);

/* ---- reading passages and pages ---------------------------------------- */

/* A passage with its document, as search results and citations need it. */
typedef struct store_hit {
    int64_t passage_id, doc_id;
    const char *path, *title; /* title may be NULL */
    int page_start, page_end;
    const char *heading;      /* may be NULL */
    const char *locator;      /* heading path in files that mark headings; may be NULL */
    bool ocr;                 /* the text comes from OCR ... */
    float ocr_conf;           /* ... with this mean confidence, 0..100 */
    const char *text;
    size_t len;
    double score;             /* keyword: -bm25, higher is better; else 0 */
    bool all_terms;           /* keyword: holds every query word found in the library */
} store_hit;

/*
** Keyword search: the best k passages for a free-text query, ranked by
** FTS5 bm25 (score = -bm25: higher is better, > 0 for a match; passage text
** weighs 1, its heading 0.5). The query is never passed to FTS5 as syntax:
** it is cut into words by the index's own tokenizer and each word becomes a
** quoted string. Common English stop words (unless nothing else is left) and
** words that occur in no passage are dropped. Passages holding every
** remaining word come first (all_terms), then -- to fill k -- those holding
** any of them (words in more than half the passages, which bm25 gives no
** weight, do not count for this tier). A passage on one of the 20 pages
** that score best for the query as whole pages (pages_fts) adds that
** page's -bm25 to its own; a hit whose document title (else file name)
** holds a query word then scores 1.5 times that; hits are sorted again
** within their tier, each page's best passage before the page's others.
** Strings live in arena a. Returns the
** number of hits (0..k, also in *n if n is not NULL) or a CN_E* code; an
** empty or all-punctuation query gives 0 hits. qi (may be NULL) says how
** much of the query the library holds at all.
*/
typedef struct store_query_info {
    int n_words;   /* the query's content words (stop words out) */
    double absent; /* the idf-weighted share of them no passage holds: 1 when
                      none is in the library, 0 when all are */
    char missing[160]; /* those words, as the query spells them, ", "-separated
                          (cut at a word boundary if long) */
} store_query_info;

int store_search_keyword(store *s, const char *query, int k, cn_arena *a, store_hit *hits, int *n,
                         store_query_info *qi, cn_err *err);

/* Is w[0..len) one of the common English words keyword search leaves out
** ("the", "what", "does", ...)? ASCII case is ignored. */
bool store_is_stop_word(const char *w, size_t len);

/* Fill hits[i] for passage ids[i] (score 0). An id that does not exist
** (removed since) gets passage_id 0 and text NULL. Strings live in a. */
int store_get_passages(store *s, const int64_t *ids, int n, cn_arena *a, store_hit *hits,
                       cn_err *err);

/* Text of page number of document doc_id, in arena a. CN_ENOTFOUND if absent. */
int store_get_page(store *s, int64_t doc_id, int number, cn_arena *a, const char **text,
                   size_t *len, cn_err *err);

/* Every passage of document doc_id in order, into *out (malloc'd, strings
** in a), *n of them. */
int store_doc_passages(store *s, int64_t doc_id, cn_arena *a, store_hit **out, int *n,
                       cn_err *err);

/* The document with id (strings in a). CN_ENOTFOUND if there is none. */
int store_doc_get(store *s, int64_t id, cn_arena *a, store_doc_info *out, cn_err *err);

/* ---- watched folders (watch.c) ----------------------------------------- */

/* Follow path (absolute, resolved by the caller). CN_EINVAL if it is
** followed already. */
int store_watch_add(store *s, const char *path, cn_err *err);
/* Stop following path: CN_ENOTFOUND if it was not followed. */
int store_watch_remove(store *s, const char *path, cn_err *err);
/* Each followed folder, oldest first; a non-zero return of fn stops (and is
** returned). Returns the count, or an error. */
int store_watch_list(store *s, int (*fn)(void *ctx, const char *path, int64_t added_at),
                     void *ctx, cn_err *err);

/* ---- partial summaries (summary.c) ------------------------------------- */

/* Where a partial summary sits: the document version, the model, the
** length asked for, and its place in the map-reduce tree. */
typedef struct store_sum_key {
    int64_t doc_id;
    const char *doc_hash, *model, *length;
    int level, part;
} store_sum_key;

/* The body stored under k (in a), or CN_ENOTFOUND. */
int store_summary_get(store *s, const store_sum_key *k, cn_arena *a, const char **body,
                      cn_err *err);
/* Store (or replace) the body under k, committed at once. */
int store_summary_put(store *s, const store_sum_key *k, const char *body, cn_err *err);
/* Forget the document's partial summaries of other versions than keep_hash. */
int store_summary_forget(store *s, int64_t doc_id, const char *keep_hash, cn_err *err);

/* ---- embeddings -------------------------------------------------------- */

/*
** Store n vectors of dim floats (vecs is n x dim, row-major) for the passages
** ids[0..n) under model -- a name that identifies the weights, such as
** "all-MiniLM-L6-v2:<file sha256>", since different weights give different
** vectors. F16 halves the space; F32 keeps every bit. One transaction.
** The first call for a model records its dim; a later dim mismatch fails with
** CN_EINVAL. A vector replaces an existing one for the same passage and model.
** Passages removed in the meantime are skipped. Returns the number stored.
*/
int store_put_embeddings(store *s, const char *model, int dim, const int64_t *passage_ids,
                         const float *vecs, int n, bool f16, cn_err *err);

/* A passage still to embed. */
typedef struct store_passage {
    int64_t id;
    const char *heading; /* may be NULL */
    const char *text;
    size_t len;
} store_passage;

/*
** Up to limit passages with id > after_id that have no embedding for model,
** in id order, strings in arena a. Passage ids only grow, so passing the
** last id seen as after_id walks the library once; 0 starts over.
** Returns the number found (also in *n if not NULL) or a CN_E* code.
*/
int store_passages_without_embedding(store *s, const char *model, int64_t after_id, int limit,
                                     cn_arena *a, store_passage *out, int *n, cn_err *err);

/*
** Load every embedding of model: *ids (n) and *matrix (n x dim floats,
** contiguous, row i is the vector of ids[i]), both malloc'd for the caller to
** free(). An unknown model gives n = 0, dim = 0 and NULL arrays.
*/
int store_load_embeddings(store *s, const char *model, int64_t **ids, float **matrix, int *n,
                          int *dim, cn_err *err);

/* How many passages have an embedding for model, out of how many. */
int store_embedding_progress(store *s, const char *model, int64_t *done, int64_t *total,
                             cn_err *err);

/* Forget a model and all its vectors. CN_ENOTFOUND if unknown. */
int store_drop_model(store *s, const char *model, cn_err *err);

/* ---- maintenance ------------------------------------------------------- */

typedef struct store_stats {
    int schema_version;
    int64_t n_documents, n_failed; /* n_documents counts failed ones too */
    int64_t n_pages, n_passages, n_models, n_embeddings;
    int64_t db_bytes, wal_bytes; /* library.db and library.db-wal on disk */
} store_stats;

int store_stats_get(store *s, store_stats *st, cn_err *err);

/*
** Full consistency check for `cairn doctor` and the tests: SQLite's
** integrity_check, the FTS index against the passages, and every document's
** page and passage counts against its rows. CN_EVERIFY names the first
** problem found.
*/
int store_check(store *s, cn_err *err);

/*
** Purge and shrink: merge the FTS index (dropping the traces of removed
** passages), VACUUM, and truncate the WAL. Slow on a large library.
*/
int store_compact(store *s, cn_err *err);

/* ---- OCR of scanned pages (ocr.c) ------------------------------------- */

/* A page waiting for OCR, with what is needed to find its file again. */
typedef struct store_ocr_page {
    int64_t doc_id;
    const char *path, *hash;
    int64_t size, mtime_ns;
    int number;
} store_ocr_page;

/* Up to limit pending pages, in document and page order, strings in a.
** Returns how many (or a CN_E* code). */
int store_ocr_pending(store *s, int limit, cn_arena *a, store_ocr_page *out, cn_err *err);

/* OCR of a page is done: its text (conf: mean confidence 0..100) and its
** passages, one transaction; the document's passage count grows by n. A
** page no longer pending (the document changed meanwhile) is left alone
** and CN_ENOTFOUND returned. */
int store_ocr_put(store *s, int64_t doc_id, int number, const char *text, size_t len, float conf,
                  const store_passage_in *ps, int n, cn_err *err);

/* OCR of a page failed for good (its file is gone or changed, the page
** cannot be rendered): it stops being pending and keeps why. */
int store_ocr_fail(store *s, int64_t doc_id, int number, const char *why, cn_err *err);

typedef struct store_ocr_counts {
    int64_t pending, done, failed;
    int64_t low; /* done below STORE_OCR_LOW_CONF */
} store_ocr_counts;

/* Mean word confidence under which an OCR'd page is flagged in `cairn ls`. */
#define STORE_OCR_LOW_CONF 60.0f

/* For the whole library (doc_id 0) or one document. */
int store_ocr_count(store *s, int64_t doc_id, store_ocr_counts *c, cn_err *err);

#endif
