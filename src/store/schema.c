/*
** schema.c: the tables of library.db and the forward migrations between
** schema versions, and the checks that keep store_open from touching a file
** that is not a Cairn library it understands.
**
** The schema version lives in PRAGMA user_version; a Cairn library also sets
** PRAGMA application_id to STORE_APP_ID. Each entry of the migrations table
** moves the schema from version - 1 to version inside one transaction that
** also bumps user_version, so a crash mid-migration leaves the old version.
** To change the schema, append an entry; never edit a released one.
*/
#include "store/store_int.h"
#include "vault/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
** The tokenizer passages_fts was created with in versions 1 and 2:
** unicode61 cuts words at Unicode separators, folds case, and with
** remove_diacritics 2 folds accents ("résumé" = "resume"); porter on top maps
** English inflections to one stem. Version 3 replaces it with our own
** "cairn" tokenizer (tokenize.c: a Snowball stemmer per language, CJK
** bigrams), which search.c also cuts queries with. A released migration
** never changes, so version 1 still creates the old one.
*/
static const char tokenizer_v1[] = "porter unicode61 remove_diacritics 2";

/* Version 1: documents, their pages and passages, and the keyword index. */
static const char sql_v1[] =
    "CREATE TABLE documents ("
    "  id         INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  path       TEXT NOT NULL UNIQUE,"
    "  hash       TEXT CHECK (length(hash) = 64),"   /* NULL: a failed file we could not read */
    "  size       INTEGER NOT NULL CHECK (size >= 0),"
    "  mtime_ns   INTEGER NOT NULL,"
    "  kind       TEXT NOT NULL,"
    "  title      TEXT,"
    "  n_pages    INTEGER NOT NULL CHECK (n_pages >= 0),"
    "  n_passages INTEGER NOT NULL CHECK (n_passages >= 0),"
    "  status     TEXT NOT NULL CHECK (status IN ('ok', 'failed')),"
    "  error      TEXT,"
    "  added_at   INTEGER NOT NULL,"
    "  indexed_at INTEGER NOT NULL,"
    "  CHECK ((status = 'failed') = (error IS NOT NULL)),"
    "  CHECK (status = 'ok' OR (n_pages = 0 AND n_passages = 0)),"
    "  CHECK (status = 'failed' OR hash IS NOT NULL)"
    ");"
    "CREATE TABLE pages ("
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  number INTEGER NOT NULL CHECK (number >= 1),"
    "  text   TEXT NOT NULL,"
    "  UNIQUE (doc_id, number)"
    ");"
    /* AUTOINCREMENT: a passage id is never reused, so an id held by a slow
    ** embedding run or a loaded vector matrix can never name other text. */
    "CREATE TABLE passages ("
    "  id         INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  doc_id     INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  page_start INTEGER NOT NULL CHECK (page_start >= 1),"
    "  page_end   INTEGER NOT NULL CHECK (page_end >= page_start),"
    "  off_start  INTEGER NOT NULL CHECK (off_start >= 0),"
    "  off_end    INTEGER NOT NULL CHECK (off_end >= 0),"
    "  heading    TEXT,"
    "  text       TEXT NOT NULL CHECK (length(text) > 0)"
    ");"
    "CREATE INDEX passages_doc ON passages(doc_id);"
    /* External content: the index keeps no second copy of the text. The
    ** triggers keep it in step with passages -- including the rows a
    ** document's ON DELETE CASCADE removes, which fire them too. */
    "CREATE VIRTUAL TABLE passages_fts USING fts5(heading, text,"
    "  content='passages', content_rowid='id', tokenize='%s');"
    "INSERT INTO passages_fts(passages_fts, rank) VALUES ('rank', 'bm25(0.5, 1.0)');"
    "CREATE TRIGGER passages_fts_ai AFTER INSERT ON passages BEGIN"
    "  INSERT INTO passages_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text);"
    "END;"
    "CREATE TRIGGER passages_fts_ad AFTER DELETE ON passages BEGIN"
    "  INSERT INTO passages_fts(passages_fts, rowid, heading, text)"
    "    VALUES ('delete', old.id, old.heading, old.text);"
    "END;"
    "CREATE TRIGGER passages_fts_au AFTER UPDATE ON passages BEGIN"
    "  INSERT INTO passages_fts(passages_fts, rowid, heading, text)"
    "    VALUES ('delete', old.id, old.heading, old.text);"
    "  INSERT INTO passages_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text);"
    "END;";

/* Version 2: embedding models and one vector per passage per model. */
static const char sql_v2[] =
    "CREATE TABLE models ("
    "  id       INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name     TEXT NOT NULL UNIQUE,"
    "  dim      INTEGER NOT NULL CHECK (dim > 0 AND dim <= 65536),"
    "  added_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE embeddings ("
    "  passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,"
    "  model_id   INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  format     INTEGER NOT NULL CHECK (format IN (16, 32)),"  /* F16 or F32, little-endian */
    "  vector     BLOB NOT NULL,"
    "  PRIMARY KEY (passage_id, model_id)"
    ");"
    /* (model_id, passage_id): a model's vectors load in passage order, no sort */
    "CREATE INDEX embeddings_model ON embeddings(model_id, passage_id);";

/*
** Version 3: keyword search that survives inflection and other languages.
** Each page gets its language (cairn_lang, a stop-word guess), and the
** keyword index is rebuilt with the "cairn" tokenizer. passages_fts is an
** external-content table, so dropping it loses no text: 'rebuild' re-reads
** every passage. The triggers on passages name the table, not its
** tokenizer, and keep working. Needs the connection's tokenizer and
** cairn_lang (store_open registers both first).
*/
static const char sql_v3[] =
    "ALTER TABLE pages ADD COLUMN lang TEXT;"
    "UPDATE pages SET lang = cairn_lang(text);"
    "CREATE INDEX pages_lang ON pages(lang);"
    "DROP TABLE passages_fts;"
    "CREATE VIRTUAL TABLE passages_fts USING fts5(heading, text,"
    "  content='passages', content_rowid='id', tokenize='%s');"
    "INSERT INTO passages_fts(passages_fts, rank) VALUES ('rank', 'bm25(0.5, 1.0)');"
    "INSERT INTO passages_fts(passages_fts) VALUES ('rebuild');";

/*
** Version 4: a keyword index of whole pages beside the passages' one. A
** question's words are often spread over a page's passages (the answer in
** one, the topic in the heading or the one before): bm25 over the page sees
** them together, and search.c lets a page's score support its passages.
** pages gets an INTEGER PRIMARY KEY first: an external-content index maps
** rows by rowid, and VACUUM may renumber the rowids of a table without one.
*/
static const char sql_v4[] =
    "CREATE TABLE pages_v4 ("
    "  id     INTEGER PRIMARY KEY,"
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  number INTEGER NOT NULL CHECK (number >= 1),"
    "  text   TEXT NOT NULL,"
    "  lang   TEXT,"
    "  UNIQUE (doc_id, number)"
    ");"
    "INSERT INTO pages_v4 (doc_id, number, text, lang)"
    "  SELECT doc_id, number, text, lang FROM pages ORDER BY doc_id, number;"
    "DROP TABLE pages;"
    "ALTER TABLE pages_v4 RENAME TO pages;"
    "CREATE INDEX pages_lang ON pages(lang);"
    "CREATE VIRTUAL TABLE pages_fts USING fts5(text,"
    "  content='pages', content_rowid='id', tokenize='%s');"
    "CREATE TRIGGER pages_fts_ai AFTER INSERT ON pages BEGIN"
    "  INSERT INTO pages_fts(rowid, text) VALUES (new.id, new.text);"
    "END;"
    "CREATE TRIGGER pages_fts_ad AFTER DELETE ON pages BEGIN"
    "  INSERT INTO pages_fts(pages_fts, rowid, text) VALUES ('delete', old.id, old.text);"
    "END;"
    "CREATE TRIGGER pages_fts_au AFTER UPDATE ON pages BEGIN"
    "  INSERT INTO pages_fts(pages_fts, rowid, text) VALUES ('delete', old.id, old.text);"
    "  INSERT INTO pages_fts(rowid, text) VALUES (new.id, new.text);"
    "END;"
    "INSERT INTO pages_fts(pages_fts) VALUES ('rebuild');";

/* Version 5: where a passage is by its file's own headings ("3 Installing ›
** 3.2 Disk space"), for formats whose page numbers mean little (Word,
** OpenDocument, EPUB chapters, man page sections). NULL for older rows and
** for files without marked headings. */
static const char sql_v5[] = "ALTER TABLE passages ADD COLUMN locator TEXT;";

/* Version 6: scanned pages read by OCR in the background. A page without a
** text layer is stored empty with ocr = 'pending'; the OCR phase fills its
** text, sets 'done' (or 'failed', with the reason in ocr_error) and its mean
** confidence, and adds its passages with that confidence, so citations can
** say "p. 3 (OCR)". */
static const char sql_v6[] =
    "ALTER TABLE pages ADD COLUMN ocr TEXT CHECK (ocr IN ('pending', 'done', 'failed'));"
    "ALTER TABLE pages ADD COLUMN ocr_conf REAL;"
    "ALTER TABLE pages ADD COLUMN ocr_error TEXT;"
    "CREATE INDEX pages_ocr ON pages(ocr) WHERE ocr = 'pending';"
    "ALTER TABLE passages ADD COLUMN ocr_conf REAL;";

/* Version 7: the partial summaries of `cairn summarize`, kept so that an
** interrupted run takes up where it stopped. Keyed by the document's
** content hash and the model (a new version of either starts afresh), the
** summary's length, and its place in the map-reduce tree (level, part). */
static const char sql_v7[] =
    "CREATE TABLE summaries ("
    "  doc_id     INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  doc_hash   TEXT NOT NULL,"
    "  model      TEXT NOT NULL,"
    "  length     TEXT NOT NULL,"
    "  level      INTEGER NOT NULL CHECK (level >= 0),"
    "  part       INTEGER NOT NULL CHECK (part >= 0),"
    "  body       TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (doc_id, doc_hash, model, length, level, part)"
    ");";

/* Version 8: the folders `cairn watch` follows (issue 18). In the library,
** not the settings file: each library has its own, and the server and
** `cairn watch run` read them from where the documents are. */
static const char sql_v8[] =
    "CREATE TABLE watched ("
    "  path     TEXT PRIMARY KEY,"
    "  added_at INTEGER NOT NULL"
    ");";

typedef struct migration {
    int version;
    const char *what;
    const char *sql;                          /* may hold one %s: tokenizer */
    const char *tokenizer;                    /* the FTS tokenizer for sql's %s, or NULL */
    int (*fn)(sqlite3 *db, cn_err *err);      /* after sql, or NULL */
} migration;

static const migration migrations[] = {
    {1, "documents, pages, passages and their keyword index", sql_v1, tokenizer_v1, NULL},
    {2, "embeddings per passage and model", sql_v2, NULL, NULL},
    {3, "page languages; keyword index with stemming per language and CJK bigrams", sql_v3,
     STORE_TOKENIZER, NULL},
    {4, "a keyword index of whole pages", sql_v4, STORE_TOKENIZER, NULL},
    {5, "heading paths of passages (locators)", sql_v5, NULL, NULL},
    {6, "OCR of scanned pages", sql_v6, NULL, NULL},
    {7, "partial summaries", sql_v7, NULL, NULL},
    {8, "watched folders", sql_v8, NULL, NULL},
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- the file before SQLite opens it ----------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int store_schema_check_file(const char *path, sqlite3 *db, bool encrypted, cn_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return CN_OK;
        return cn_fail(err, CN_EIO, "%s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return cn_fail(err, CN_EIO, "%s: not a regular file", path);
    if (st.st_size == 0)
        return CN_OK;

    /* Read through SQLite's own descriptor: fcntl locks belong to the
    ** process, and closing any other descriptor of the file drops every lock
    ** this process's connections hold on it. Another process would then take
    ** itself for the last user and delete the WAL under them. */
    unsigned char h[100] = {0};
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
        !f->pMethods)
        return cn_fail(err, CN_EIO, "%s: cannot read the database header", path);
    int src = f->pMethods->xRead(f, h, (int)sizeof h, 0);
    if (src != SQLITE_OK && src != SQLITE_IOERR_SHORT_READ)
        return cn_fail(err, CN_EIO, "%s: reading the header: %s", path, sqlite3_errstr(src));
    ssize_t got = src == SQLITE_OK ? (ssize_t)sizeof h : (ssize_t)CN_MIN(st.st_size, 100);
    if (got < (ssize_t)sizeof h || memcmp(h, "SQLite format 3", 16) != 0)
        return cn_fail(err, CN_EFORMAT,
                       "%s: not a SQLite database (a Cairn library is one); left untouched", path);

    bool marked = memcmp(h + 72, VAULT_VFS_MARK, 8) == 0;
    if (marked && !encrypted)
        return cn_fail(err, CN_EVERIFY,
                       "%s: an encrypted library, and no key to open it with; left untouched", path);
    if (!marked && encrypted)
        return cn_fail(err, CN_EFORMAT,
                       "%s: not an encrypted library (its key envelope belongs to another); left "
                       "untouched",
                       path);

    uint32_t page_size = (uint32_t)h[16] << 8 | h[17];
    if (page_size == 1)
        page_size = 65536;
    if (page_size < 512 || (page_size & (page_size - 1)) != 0)
        return cn_fail(err, CN_EFORMAT, "%s: damaged SQLite header (page size %u); left untouched",
                       path, page_size);

    /* With a WAL beside it the main file may legitimately be shorter than
    ** its header says (a checkpoint was interrupted); SQLite's recovery
    ** finishes the job. Without one, a short file lost its tail. */
    char wal[4096];
    if (snprintf(wal, sizeof wal, "%s-wal", path) >= (int)sizeof wal)
        return cn_fail(err, CN_EINVAL, "%s: path too long", path);
    struct stat ws;
    if (stat(wal, &ws) == 0 && ws.st_size > 0)
        return CN_OK;

    uint64_t n_pages = be32(h + 28);
    bool count_valid = n_pages != 0 && memcmp(h + 24, h + 92, 4) == 0;
    uint64_t size = (uint64_t)st.st_size;
    if (size % page_size != 0 || (count_valid && size < n_pages * page_size))
        return cn_fail(err, CN_EFORMAT,
                       "%s: truncated library database (%llu bytes, the header says %llu pages of "
                       "%u bytes); left untouched -- restore it from a backup or move it away "
                       "and re-add the documents",
                       path, (unsigned long long)size,
                       (unsigned long long)(count_valid ? n_pages : (size + page_size - 1) / page_size),
                       page_size);
    return CN_OK;
}

/* ---- version checks ---------------------------------------------------- */

static int pragma_int(sqlite3 *db, const char *path, const char *sql, int64_t *out, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, path, rc, "reading the database header", err);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        int r = store_sqlfail(db, path, rc, "reading the database header", err);
        sqlite3_finalize(st);
        return r;
    }
    sqlite3_finalize(st);
    return CN_OK;
}

int store_schema_inspect(sqlite3 *db, const char *path, int *version, cn_err *err)
{
    int64_t ver = 0, app = 0, n_objects = 0;
    int rc = pragma_int(db, path, "PRAGMA user_version", &ver, err);
    if (rc == CN_OK)
        rc = pragma_int(db, path, "PRAGMA application_id", &app, err);
    /* Reading sqlite_master parses the whole schema: a damaged one fails here. */
    if (rc == CN_OK)
        rc = pragma_int(db, path, "SELECT count(*) FROM sqlite_master", &n_objects, err);
    if (rc != CN_OK)
        return rc;

    if (app != STORE_APP_ID && !(app == 0 && ver == 0 && n_objects == 0))
        return cn_fail(err, CN_EFORMAT,
                       "%s: a SQLite database of another program (application_id 0x%08llx, "
                       "%lld schema objects), not a Cairn library; left untouched",
                       path, (unsigned long long)(uint32_t)app, (long long)n_objects);
    if (ver > STORE_SCHEMA_VERSION)
        return cn_fail(err, CN_EUNSUPPORTED,
                       "%s: library written by a newer Cairn (schema version %lld, this Cairn "
                       "knows up to %d); upgrade Cairn to open it -- the file was left untouched",
                       path, (long long)ver, STORE_SCHEMA_VERSION);
    if (ver < 0)
        return cn_fail(err, CN_EFORMAT, "%s: bad schema version %lld; left untouched", path,
                       (long long)ver);
    *version = (int)ver;
    return CN_OK;
}

/* ---- migrations -------------------------------------------------------- */

static int exec_sql(sqlite3 *db, const char *path, const char *sql, const char *what, cn_err *err)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? CN_OK : store_sqlfail(db, path, rc, what, err);
}

static int migrate_one(sqlite3 *db, const char *path, const migration *m, cn_err *err)
{
    char what[160];
    snprintf(what, sizeof what, "migrating the schema to version %d (%s)", m->version, m->what);

    /* BEGIN IMMEDIATE takes the write lock at once, so two processes opening
    ** an old library migrate it one after the other, and the second finds
    ** the work done when it re-reads the version below. */
    int rc = exec_sql(db, path, "BEGIN IMMEDIATE", what, err);
    if (rc != CN_OK)
        return rc;
    int64_t ver = 0;
    rc = pragma_int(db, path, "PRAGMA user_version", &ver, err);
    if (rc == CN_OK && ver < m->version) {
        char *sql = sqlite3_mprintf(m->sql, m->tokenizer ? m->tokenizer : "");
        if (!sql)
            rc = cn_fail(err, CN_ENOMEM, "%s: %s: out of memory", path, what);
        else
            rc = exec_sql(db, path, sql, what, err);
        sqlite3_free(sql);
        if (rc == CN_OK && m->fn)
            rc = m->fn(db, err);
        if (rc == CN_OK) {
            char set[96];
            snprintf(set, sizeof set, "PRAGMA user_version = %d; PRAGMA application_id = %d",
                     m->version, STORE_APP_ID);
            rc = exec_sql(db, path, set, what, err);
        }
    }
    if (rc == CN_OK)
        rc = exec_sql(db, path, "COMMIT", what, err);
    if (rc != CN_OK)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int store_schema_migrate(sqlite3 *db, const char *path, int target, cn_err *err)
{
    if (target < 0 || target > STORE_SCHEMA_VERSION)
        return cn_fail(err, CN_EINVAL, "%s: no schema version %d", path, target);
    int version = 0;
    int rc = store_schema_inspect(db, path, &version, err);
    for (size_t i = 0; rc == CN_OK && i < CN_ARRAY_LEN(migrations); i++)
        if (migrations[i].version > version && migrations[i].version <= target)
            rc = migrate_one(db, path, &migrations[i], err);
    return rc;
}
