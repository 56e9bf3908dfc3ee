/*
** store_int.h: internals shared by the files of src/store/. Never include
** this from outside src/store/ (the unit tests do, to build old schemas and
** to inject failures).
*/
#ifndef CN_STORE_INT_H
#define CN_STORE_INT_H

#include "store/store.h"

#include <sqlite3.h>

/* PRAGMA application_id of a Cairn library: "Crn1". */
#define STORE_APP_ID 0x43726e31

/* ---- tokenize.c --------------------------------------------------------- */

/* Languages of the texts, as pages.lang stores them (store_lang_code). */
enum {
    STORE_LANG_EN, STORE_LANG_FR, STORE_LANG_DE, STORE_LANG_ES, STORE_LANG_IT,
    STORE_LANG_PT, STORE_LANG_NL, STORE_LANG_RU, STORE_LANG_JA, STORE_LANG_ZH,
    STORE_LANG_KO, STORE_N_LANGS
};

/* The name passages_fts is created with (schema version 3 on). */
#define STORE_TOKENIZER "cairn"

/* What every "cairn" tokenizer of a connection stems queries with: a bit
** per STORE_LANG_* (0: English). */
typedef struct store_tok_langs {
    unsigned mask;
} store_tok_langs;

/* Register the "cairn" FTS5 tokenizer and the SQL function cairn_lang(text)
** on db; *langs receives the connection's query languages. An SQLite code. */
int store_tokenizer_register(sqlite3 *db, store_tok_langs **langs);
/* The FTS5 extension API of db (SQLite's documented `SELECT fts5(?1)`
** handshake), or NULL. */
fts5_api *store_fts5_api(sqlite3 *db);

/* Guess the language of text (STORE_LANG_*; English when unsure). */
int store_guess_lang(const char *text, size_t len);
const char *store_lang_code(int lang);
/* STORE_LANG_* of a code ("fr"), or -1. */
int store_lang_of_code(const char *code, size_t len);

/* Cached statements, one per entry of store.c's sql table. */
enum {
    Q_DOC_BY_PATH,
    Q_DOC_INSERT,
    Q_DOC_UPDATE,
    Q_PAGES_DELETE,
    Q_PAGE_INSERT,
    Q_PASSAGE_MAX,
    Q_PASSAGE_INSERT,
    Q_PASSAGES_DELETE_OLD,
    Q_OLD_WITH_EMBEDDING,
    Q_EMBEDDING_COPY,
    Q_DOC_DELETE,
    Q_SEARCH,
    Q_PASSAGE_GET,
    Q_PAGE_GET,
    Q_MODEL_GET,
    Q_MODEL_INSERT,
    Q_EMBEDDING_PUT,
    Q_WITHOUT_EMBEDDING,
    Q_VOCAB_DF,
    Q_PASSAGE_COUNT,
    Q_LANGS,
    Q_PAGE_SEARCH,
    Q_COUNT
};

struct store {
    sqlite3 *db;
    char *path;
    int version;
    bool encrypted; /* opened through the vault's encrypting VFS */
    sqlite3_stmt *stmt[Q_COUNT];
    /* search.c: the index's own tokenizer, to cut queries exactly as the
    ** passages were cut, and the passage count for document frequencies,
    ** valid while data_version and total_changes stay as recorded. */
    fts5_tokenizer fts_tok;
    Fts5Tokenizer *fts_tokenizer;
    int64_t n_rows, n_rows_data_version, n_rows_changes;
    bool n_rows_valid;
    /* tokenize.c: the languages queries are stemmed in, shared with every
    ** "cairn" tokenizer of this connection (the connection owns it). */
    store_tok_langs *query_langs;
};

/* The cached statement q, prepared on first use; reset and unbound. NULL
** with err filled on failure. */
sqlite3_stmt *store_stmt(store *s, int q, cn_err *err);

/* Turn a SQLite result code into a CN_E* code and a message
** "<path>: <what>: <sqlite's reason>" (damaged files and busy databases get
** sentences of their own). */
int store_sqlfail(sqlite3 *db, const char *path, int rc, const char *what, cn_err *err);
int store_fail(store *s, int rc, const char *what, cn_err *err);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK (rollback never fails). */
int store_begin(store *s, cn_err *err);
int store_commit(store *s, cn_err *err);
void store_rollback(store *s);

/* Run one statement of SQL with no result rows. */
int store_exec(store *s, const char *sql, cn_err *err);

/* Column i of st copied into arena a (NUL-terminated; *len its length if
** len is not NULL); a NULL column gives NULL. Sets *oom when a is full. */
const char *store_col_str(sqlite3_stmt *st, int i, cn_arena *a, size_t *len, bool *oom);

/* A passage row into h: columns 1..7 are doc id, path, title, page start,
** page end, heading, text, 9 the locator and 10 the OCR confidence (the passage queries all
** select them so; 8 is the query's own, bm25's rank for search);
** strings go into a. Fields it does not read are left as they are. */
void store_col_hit(sqlite3_stmt *st, cn_arena *a, store_hit *h, bool *oom);

/* search.c: free what keyword search set up (called by store_close). */
void store_search_release(store *s);

/* ---- schema.c ---------------------------------------------------------- */

/* Check the first bytes of the file at path, just opened as db, before any
** statement reads it: not a SQLite file, a damaged header, or a file shorter
** than its header says (with no WAL that could hold the rest) fail with
** CN_EFORMAT. A missing or empty file passes. */
int store_schema_check_file(const char *path, sqlite3 *db, bool encrypted, cn_err *err);

/* Read user_version and application_id and decide whether db is a Cairn
** library this build can open: *version receives the schema version (0 for
** a new, empty database). */
int store_schema_inspect(sqlite3 *db, const char *path, int *version, cn_err *err);

/* Migrate db forward to version target (<= STORE_SCHEMA_VERSION), one
** transaction per step. The tests call it with an older target to build a
** library as an older Cairn left it. */
int store_schema_migrate(sqlite3 *db, const char *path, int target, cn_err *err);

#endif
