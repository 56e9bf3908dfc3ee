/*
** store.c: opening the library, writing and removing documents, listing,
** pruning, statistics and checks. Keyword search is in search.c, vectors in
** embed.c, tables and migrations in schema.c.
**
** Every write is one BEGIN IMMEDIATE ... COMMIT: the write lock is taken up
** front, so a second process waits (busy timeout) instead of failing halfway
** with SQLITE_BUSY, and a failure anywhere rolls back the whole unit.
*/
#include "store/store_int.h"
#include "vault/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The statements store_stmt() caches, by Q_* index. */
static const char *const sql_table[Q_COUNT] = {
    [Q_DOC_BY_PATH] = "SELECT id, hash, size, mtime_ns, status FROM documents WHERE path = ?1",
    [Q_DOC_INSERT] = "INSERT INTO documents (path, hash, size, mtime_ns, kind, title, n_pages,"
                     " n_passages, status, error, added_at, indexed_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
    [Q_DOC_UPDATE] = "UPDATE documents SET hash = ?2, size = ?3, mtime_ns = ?4, kind = ?5,"
                     " title = ?6, n_pages = ?7, n_passages = ?8, status = ?9, error = ?10,"
                     " indexed_at = ?11 WHERE id = ?1",
    [Q_PAGES_DELETE] = "DELETE FROM pages WHERE doc_id = ?1",
    [Q_PAGE_INSERT] = "INSERT INTO pages (doc_id, number, text, lang, ocr)"
                      " VALUES (?1, ?2, ?3, cairn_lang(?3), ?4)",
    [Q_PASSAGE_MAX] = "SELECT max(id) FROM passages WHERE doc_id = ?1",
    [Q_PASSAGE_INSERT] = "INSERT INTO passages (doc_id, page_start, page_end, off_start, off_end,"
                         " heading, text, locator) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [Q_PASSAGES_DELETE_OLD] = "DELETE FROM passages WHERE doc_id = ?1 AND id <= ?2",
    [Q_OLD_WITH_EMBEDDING] = "SELECT p.id, p.heading, p.text FROM passages AS p"
                             " WHERE p.doc_id = ?1 AND p.id <= ?2 AND EXISTS"
                             " (SELECT 1 FROM embeddings AS e WHERE e.passage_id = p.id)",
    [Q_EMBEDDING_COPY] = "INSERT OR IGNORE INTO embeddings (passage_id, model_id, format, vector)"
                         " SELECT ?1, model_id, format, vector FROM embeddings"
                         " WHERE passage_id = ?2",
    [Q_DOC_DELETE] = "DELETE FROM documents WHERE id = ?1",
    [Q_SEARCH] = "SELECT p.id, p.doc_id, d.path, d.title, p.page_start, p.page_end, p.heading,"
                 " p.text, f.rank, p.locator, p.ocr_conf FROM"
                 " (SELECT rowid, rank FROM passages_fts WHERE passages_fts MATCH ?1"
                 "  ORDER BY rank LIMIT ?2) AS f"
                 " JOIN passages AS p ON p.id = f.rowid JOIN documents AS d ON d.id = p.doc_id"
                 " ORDER BY f.rank",
    [Q_PASSAGE_GET] = "SELECT p.id, p.doc_id, d.path, d.title, p.page_start, p.page_end,"
                      " p.heading, p.text, NULL, p.locator, p.ocr_conf FROM passages AS p"
                      " JOIN documents AS d ON d.id = p.doc_id WHERE p.id = ?1",
    [Q_PAGE_GET] = "SELECT text FROM pages WHERE doc_id = ?1 AND number = ?2",
    [Q_MODEL_GET] = "SELECT id, dim FROM models WHERE name = ?1",
    [Q_MODEL_INSERT] = "INSERT INTO models (name, dim, added_at) VALUES (?1, ?2, ?3)",
    [Q_EMBEDDING_PUT] = "INSERT OR REPLACE INTO embeddings (passage_id, model_id, format, vector)"
                        " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS"
                        " (SELECT 1 FROM passages WHERE id = ?1)",
    [Q_WITHOUT_EMBEDDING] = "SELECT p.id, p.heading, p.text FROM passages AS p"
                            " WHERE p.id > ?2 AND NOT EXISTS (SELECT 1 FROM embeddings AS e"
                            "  WHERE e.passage_id = p.id AND e.model_id = ?1)"
                            " ORDER BY p.id LIMIT ?3",
    /* temp.store_vocab is created by search.c before first use */
    [Q_VOCAB_DF] = "SELECT doc FROM temp.store_vocab WHERE term = ?1",
    [Q_PASSAGE_COUNT] = "SELECT count(*) FROM passages",
    [Q_LANGS] = "SELECT DISTINCT lang FROM pages WHERE lang IS NOT NULL",
    [Q_PAGE_SEARCH] = "SELECT p.doc_id, p.number, f.rank FROM"
                      " (SELECT rowid, rank FROM pages_fts WHERE pages_fts MATCH ?1"
                      "  ORDER BY rank LIMIT ?2) AS f"
                      " JOIN pages AS p ON p.id = f.rowid ORDER BY f.rank",
};

/* ---- helpers shared with search.c and embed.c -------------------------- */

int store_sqlfail(sqlite3 *db, const char *path, int rc, const char *what, cn_err *err)
{
    const char *why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    /* the encrypting VFS says which file and page it refused; SQLite only
    ** says "disk I/O error" */
    const char *vfs = vault_vfs_last_error();
    if (vfs && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN ||
                (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", vfs);
        vault_vfs_clear_error();
        return cn_fail(err, rc == SQLITE_IOERR_DATA ? CN_EVERIFY : CN_EIO,
                       "%s: %s: %s; restore the library from a backup, or move it away and "
                       "re-add the documents",
                       path, what, msg);
    }
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return cn_fail(err, CN_ENOMEM, "%s: %s: out of memory", path, what);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return cn_fail(err, CN_EFORMAT,
                       "%s: %s: the library database is damaged (%s); restore it from a backup "
                       "or move it away and re-add the documents",
                       path, what, why);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return cn_fail(err, CN_EIO,
                       "%s: %s: the library is busy (another Cairn process kept it locked for "
                       "%d s)",
                       path, what, STORE_BUSY_MS / 1000);
    case SQLITE_FULL:
        return cn_fail(err, CN_EIO, "%s: %s: disk full", path, what);
    case SQLITE_CONSTRAINT:
        return cn_fail(err, CN_EINVAL, "%s: %s: %s", path, what, why);
    default:
        return cn_fail(err, CN_EIO, "%s: %s: %s", path, what, why);
    }
}

int store_fail(store *s, int rc, const char *what, cn_err *err)
{
    return store_sqlfail(s->db, s->path, rc, what, err);
}

sqlite3_stmt *store_stmt(store *s, int q, cn_err *err)
{
    sqlite3_stmt *st = s->stmt[q];
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    int rc = sqlite3_prepare_v3(s->db, sql_table[q], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        store_fail(s, rc, "preparing a query", err);
        return NULL;
    }
    s->stmt[q] = st;
    return st;
}

int store_exec(store *s, const char *sql, cn_err *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? CN_OK : store_fail(s, rc, sql, err);
}

int store_begin(store *s, cn_err *err)
{
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    return rc == SQLITE_OK ? CN_OK : store_fail(s, rc, "starting a write", err);
}

int store_commit(store *s, cn_err *err)
{
    int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return rc == SQLITE_OK ? CN_OK : store_fail(s, rc, "committing", err);
}

void store_rollback(store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Step a statement that returns no rows; reset it either way. */
static int step_done(store *s, sqlite3_stmt *st, const char *what, cn_err *err)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? CN_OK : store_fail(s, rc, what, err);
    sqlite3_reset(st);
    return r;
}

/* ---- open and close ---------------------------------------------------- */

static int pragma_set(store *s, const char *sql, const char *want, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, sql, err);
    rc = sqlite3_step(st);
    int r = CN_OK;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = store_fail(s, rc, sql, err);
    else if (want) {
        const char *got = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (!got || strcmp(got, want) != 0)
            r = cn_fail(err, CN_EIO, "%s: %s gave \"%s\", not \"%s\"", s->path, sql,
                        got ? got : "", want);
    }
    sqlite3_finalize(st);
    return r;
}

int store_open(store **out, const char *path, cn_err *err)
{
    return store_open_enc(out, path, false, err);
}

int store_open_enc(store **out, const char *path, bool encrypted, cn_err *err)
{
    *out = NULL;
    int rc;
    store *s = cn_calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    }
    /* A new library is readable by its owner only: it holds the text of every
    ** document. SQLite gives the -wal and -shm files the same mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    else if (errno != EEXIST) {
        rc = cn_fail(err, CN_EIO, "%s: cannot create the library: %s", path, strerror(errno));
        store_close(s);
        return rc;
    }
    if (encrypted && (rc = vault_vfs_register(err)) != CN_OK) {
        store_close(s);
        return rc;
    }
    int src = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                              encrypted ? VAULT_VFS_NAME : NULL);
    if (src != SQLITE_OK) {
        rc = store_sqlfail(s->db, path, src, "cannot open the library", err);
        store_close(s);
        return rc;
    }
    /* SQLite has read nothing yet: a file that is not a sound library is
    ** refused before it does */
    rc = store_schema_check_file(path, s->db, encrypted, err);
    if (rc != CN_OK) {
        store_close(s);
        return rc;
    }
    s->encrypted = encrypted;
    if (encrypted) {
        /* room for each page's nonce and tag, before a new file's first
        ** write (an existing one has it already); and temporary tables and
        ** indexes in memory, where the VFS would put them anyway */
        int reserve = VAULT_VFS_RESERVE;
        sqlite3_file_control(s->db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
        rc = pragma_set(s, "PRAGMA temp_store = MEMORY", NULL, err);
        /* a page read again from SQLite's cache is not decrypted again: a
        ** larger cache than the default 2 MiB (bench/store.sh measures it) */
        if (rc == CN_OK)
            rc = pragma_set(s, "PRAGMA cache_size = -16384", NULL, err);
        if (rc != CN_OK) {
            store_close(s);
            return rc;
        }
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
    /* before any statement touches passages_fts, which needs it */
    src = store_tokenizer_register(s->db, &s->query_langs);
    if (src != SQLITE_OK) {
        rc = store_sqlfail(s->db, path, src, "registering the keyword tokenizer", err);
        store_close(s);
        return rc;
    }

    /* Look before writing anything: a newer schema or another program's
    ** database is refused while the file is still as we found it. */
    rc = store_schema_inspect(s->db, path, &s->version, err);
    /*
    ** synchronous=FULL: in WAL mode this syncs the WAL at every commit, so a
    ** document reported as added survives a power cut, not only a crash
    ** (NORMAL keeps the database consistent too but may forget the last
    ** commits). The cost is one fsync per document or embedding batch, small
    ** next to extracting a PDF or running the embedding model.
    ** secure_delete: the text of a removed document is overwritten, not left
    ** in free pages of the file.
    */
    if (rc == CN_OK)
        rc = pragma_set(s, "PRAGMA journal_mode = WAL", "wal", err);
    if (rc == CN_OK)
        rc = pragma_set(s, "PRAGMA synchronous = FULL", NULL, err);
    if (rc == CN_OK)
        rc = pragma_set(s, "PRAGMA foreign_keys = ON", NULL, err);
    if (rc == CN_OK)
        rc = pragma_set(s, "PRAGMA foreign_keys", "1", err);
    if (rc == CN_OK)
        rc = pragma_set(s, "PRAGMA secure_delete = ON", NULL, err);
    if (rc == CN_OK)
        rc = pragma_set(s, "PRAGMA journal_size_limit = 67108864", NULL, err);
    if (rc == CN_OK && s->version < STORE_SCHEMA_VERSION) {
        rc = store_schema_migrate(s->db, path, STORE_SCHEMA_VERSION, err);
        s->version = STORE_SCHEMA_VERSION;
    }
    if (rc != CN_OK) {
        store_close(s);
        return rc;
    }
    *out = s;
    return CN_OK;
}

void store_close(store *s)
{
    if (!s)
        return;
    store_search_release(s);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

int store_schema_version(const store *s) { return s->version; }
bool store_encrypted(const store *s) { return s->encrypted; }

/* ---- hashing ----------------------------------------------------------- */

int store_hash_file(const char *path, char hex[STORE_HASH_HEX + 1], int64_t *size, cn_err *err)
{
    if (sodium_init() < 0)
        return cn_fail(err, CN_EIO, "libsodium failed to initialise");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cn_fail(err, errno == ENOENT ? CN_ENOTFOUND : CN_EIO, "%s: %s", path,
                       strerror(errno));
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    unsigned char buf[1 << 16];
    int64_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return cn_fail(err, CN_EIO, "%s: read: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        crypto_generichash_update(&h, buf, (unsigned long long)r);
        total += r;
    }
    close(fd);
    unsigned char digest[32];
    crypto_generichash_final(&h, digest, sizeof digest);
    sodium_bin2hex(hex, STORE_HASH_HEX + 1, digest, sizeof digest);
    if (size)
        *size = total;
    return CN_OK;
}

/* ---- checking a document before writing it ----------------------------- */

static bool hash_ok(const char *h)
{
    if (!h || strlen(h) != STORE_HASH_HEX)
        return false;
    for (int i = 0; i < STORE_HASH_HEX; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

/* Valid UTF-8 without NUL bytes (they would cut the text short in C). */
static bool text_ok(const char *t, size_t len)
{
    if (len == 0)
        return true;
    return t && !memchr(t, 0, len) && cn_utf8_valid_prefix(t, len) == len;
}

static int find_page(const store_doc_in *d, int number)
{
    int lo = 0, hi = d->n_pages - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (d->pages[mid].number == number)
            return mid;
        if (d->pages[mid].number < number)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int check_meta(const store_doc_in *d, bool failed, cn_err *err)
{
    if (!d || !d->path || !*d->path)
        return cn_fail(err, CN_EINVAL, "store: document without a path");
    const char *p = d->path;
    if (!(failed && !d->hash) && !hash_ok(d->hash))
        return cn_fail(err, CN_EINVAL, "%s: content hash is not %d lower-case hex digits", p,
                       STORE_HASH_HEX);
    if (d->size < 0)
        return cn_fail(err, CN_EINVAL, "%s: negative size %lld", p, (long long)d->size);
    if (!d->kind || !*d->kind)
        return cn_fail(err, CN_EINVAL, "%s: document kind missing", p);
    if (d->title && !text_ok(d->title, strlen(d->title)))
        return cn_fail(err, CN_EINVAL, "%s: title is not valid UTF-8", p);
    return CN_OK;
}

static int check_doc(const store_doc_in *d, cn_err *err)
{
    int rc = check_meta(d, false, err);
    if (rc != CN_OK)
        return rc;
    const char *p = d->path;
    if (d->n_pages < 0 || d->n_passages < 0 || (d->n_pages && !d->pages) ||
        (d->n_passages && !d->passages))
        return cn_fail(err, CN_EINVAL, "%s: bad page or passage array", p);
    for (int i = 0; i < d->n_pages; i++) {
        const store_page_in *pg = &d->pages[i];
        if (pg->number < 1 || (i > 0 && pg->number <= d->pages[i - 1].number))
            return cn_fail(err, CN_EINVAL, "%s: page %d: numbers must start at 1 and increase", p,
                           pg->number);
        if (!text_ok(pg->text, pg->len))
            return cn_fail(err, CN_EINVAL, "%s: page %d: text is not valid UTF-8 (or holds NUL)",
                           p, pg->number);
    }
    for (int i = 0; i < d->n_passages; i++) {
        const store_passage_in *ps = &d->passages[i];
        int a = find_page(d, ps->page_start), b = find_page(d, ps->page_end);
        if (a < 0 || b < 0 || ps->page_end < ps->page_start)
            return cn_fail(err, CN_EINVAL, "%s: passage %d: pages %d-%d are not pages of the document",
                           p, i, ps->page_start, ps->page_end);
        if (ps->off_start > d->pages[a].len || ps->off_end > d->pages[b].len ||
            (a == b && ps->off_start > ps->off_end))
            return cn_fail(err, CN_EINVAL, "%s: passage %d: offsets %zu-%zu outside pages %d-%d", p,
                           i, ps->off_start, ps->off_end, ps->page_start, ps->page_end);
        if (ps->len == 0 || !text_ok(ps->text, ps->len))
            return cn_fail(err, CN_EINVAL, "%s: passage %d: text is empty, not valid UTF-8 or holds NUL",
                           p, i);
        if (ps->heading && !text_ok(ps->heading, strlen(ps->heading)))
            return cn_fail(err, CN_EINVAL, "%s: passage %d: heading is not valid UTF-8", p, i);
        if (ps->locator && !text_ok(ps->locator, strlen(ps->locator)))
            return cn_fail(err, CN_EINVAL, "%s: passage %d: locator is not valid UTF-8", p, i);
    }
    return CN_OK;
}

/* ---- writing a document ------------------------------------------------ */

static int bind_text(sqlite3_stmt *st, int i, const char *t, size_t len)
{
    if (!t)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text64(st, i, t, len, SQLITE_STATIC, SQLITE_UTF8);
}

static uint64_t passage_key(const char *heading, const char *text, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = heading ? heading : ""; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    h = (h ^ (heading ? 0xffu : 0xfeu)) * 1099511628211ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ull;
    return h;
}

/*
** A re-indexed document keeps the vectors of passages that did not change:
** each old passage with an embedding whose heading and text equal those of a
** new passage hands its vectors to the new one (embedding is the slow phase;
** a small edit should not cost the whole document). Matched by a hash table
** over the new passages, so this is linear in the passages.
*/
static int carry_embeddings(store *s, const store_doc_in *d, int64_t doc_id, int64_t old_max,
                            const int64_t *new_ids, cn_err *err)
{
    if (d->n_passages == 0)
        return CN_OK;
    size_t cap = 16;
    while (cap < 2 * (size_t)d->n_passages)
        cap *= 2;
    int *slot = cn_calloc(cap, sizeof *slot);
    uint64_t *key = cn_malloc((size_t)d->n_passages * sizeof *key);
    int64_t *pairs = NULL; /* (new id, old id) */
    size_t n_pairs = 0, pairs_cap = 0;
    int rc = CN_OK;
    if (!slot || !key) {
        rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", d->path);
        goto out;
    }
    for (int i = 0; i < d->n_passages; i++) {
        const store_passage_in *ps = &d->passages[i];
        key[i] = passage_key(ps->heading, ps->text, ps->len);
        size_t j = key[i] & (cap - 1);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = i + 1;
    }

    sqlite3_stmt *st = store_stmt(s, Q_OLD_WITH_EMBEDDING, err);
    if (!st) {
        rc = err ? err->code : CN_EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_int64(st, 2, old_max);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *heading = (const char *)sqlite3_column_text(st, 1);
        const char *text = (const char *)sqlite3_column_text(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        if (!text)
            continue;
        uint64_t k = passage_key(heading, text, len);
        for (size_t j = k & (cap - 1); slot[j]; j = (j + 1) & (cap - 1)) {
            const store_passage_in *ps = &d->passages[slot[j] - 1];
            if (key[slot[j] - 1] != k || ps->len != len || memcmp(ps->text, text, len) != 0 ||
                (ps->heading == NULL) != (heading == NULL) ||
                (heading && strcmp(ps->heading, heading) != 0))
                continue;
            if (n_pairs == pairs_cap) {
                pairs_cap = pairs_cap ? 2 * pairs_cap : 64;
                int64_t *np = cn_realloc_array(pairs, pairs_cap, 2 * sizeof *pairs);
                if (!np) {
                    sqlite3_reset(st);
                    rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", d->path);
                    goto out;
                }
                pairs = np;
            }
            pairs[2 * n_pairs] = new_ids[slot[j] - 1];
            pairs[2 * n_pairs + 1] = sqlite3_column_int64(st, 0);
            n_pairs++;
        }
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        rc = store_fail(s, src, "finding embeddings to keep", err);
        goto out;
    }
    for (size_t i = 0; i < n_pairs && rc == CN_OK; i++) {
        st = store_stmt(s, Q_EMBEDDING_COPY, err);
        if (!st)
            rc = err ? err->code : CN_EIO;
        else {
            sqlite3_bind_int64(st, 1, pairs[2 * i]);
            sqlite3_bind_int64(st, 2, pairs[2 * i + 1]);
            rc = step_done(s, st, "keeping embeddings", err);
        }
    }
out:
    free(slot);
    free(key);
    free(pairs);
    return rc;
}

static void bind_doc(sqlite3_stmt *st, const store_doc_in *d, const char *error, int64_t now)
{
    bind_text(st, 2, d->hash, d->hash ? strlen(d->hash) : 0);
    sqlite3_bind_int64(st, 3, d->size);
    sqlite3_bind_int64(st, 4, d->mtime_ns);
    bind_text(st, 5, d->kind, strlen(d->kind));
    bind_text(st, 6, d->title, d->title ? strlen(d->title) : 0);
    sqlite3_bind_int(st, 7, error ? 0 : d->n_pages);
    sqlite3_bind_int(st, 8, error ? 0 : d->n_passages);
    sqlite3_bind_text(st, 9, error ? "failed" : "ok", -1, SQLITE_STATIC);
    bind_text(st, 10, error, error ? strlen(error) : 0);
    sqlite3_bind_int64(st, 11, now);
}

#define STMT(q)                                                                                    \
    do {                                                                                           \
        if (!(st = store_stmt(s, (q), err)))                                                       \
            return err ? err->code : CN_EIO;                                                       \
    } while (0)

/* The body of the document transaction; the caller begins and commits. */
static int write_doc(store *s, const store_doc_in *d, const char *error, int64_t *new_ids,
                     int64_t *doc_id, cn_err *err)
{
    sqlite3_stmt *st;
    int rc, src;
    int64_t now = (int64_t)time(NULL), id = 0, old_max = 0;

    STMT(Q_DOC_BY_PATH);
    bind_text(st, 1, d->path, strlen(d->path));
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return store_fail(s, src, "looking up the document", err);

    if (id) {
        STMT(Q_DOC_UPDATE);
        sqlite3_bind_int64(st, 1, id);
        bind_doc(st, d, error, now);
        if ((rc = step_done(s, st, "updating the document", err)) != CN_OK)
            return rc;
        STMT(Q_PAGES_DELETE);
        sqlite3_bind_int64(st, 1, id);
        if ((rc = step_done(s, st, "removing old pages", err)) != CN_OK)
            return rc;
        STMT(Q_PASSAGE_MAX);
        sqlite3_bind_int64(st, 1, id);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            old_max = sqlite3_column_int64(st, 0); /* 0 for NULL: no passages */
        sqlite3_reset(st);
        if (src != SQLITE_ROW)
            return store_fail(s, src, "looking up old passages", err);
    } else {
        STMT(Q_DOC_INSERT);
        bind_text(st, 1, d->path, strlen(d->path));
        bind_doc(st, d, error, now);
        if ((rc = step_done(s, st, "adding the document", err)) != CN_OK)
            return rc;
        id = sqlite3_last_insert_rowid(s->db);
    }

    for (int i = 0; !error && i < d->n_pages; i++) {
        STMT(Q_PAGE_INSERT);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, d->pages[i].number);
        bind_text(st, 3, d->pages[i].len ? d->pages[i].text : "", d->pages[i].len);
        if (d->pages[i].ocr_pending)
            sqlite3_bind_text(st, 4, "pending", -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 4);
        if ((rc = step_done(s, st, "adding a page", err)) != CN_OK)
            return rc;
    }
    for (int i = 0; !error && i < d->n_passages; i++) {
        const store_passage_in *ps = &d->passages[i];
        STMT(Q_PASSAGE_INSERT);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, ps->page_start);
        sqlite3_bind_int(st, 3, ps->page_end);
        sqlite3_bind_int64(st, 4, (int64_t)ps->off_start);
        sqlite3_bind_int64(st, 5, (int64_t)ps->off_end);
        bind_text(st, 6, ps->heading, ps->heading ? strlen(ps->heading) : 0);
        bind_text(st, 7, ps->text, ps->len);
        if (ps->locator && ps->locator[0])
            bind_text(st, 8, ps->locator, strlen(ps->locator));
        else
            sqlite3_bind_null(st, 8);
        if ((rc = step_done(s, st, "adding a passage", err)) != CN_OK)
            return rc;
        new_ids[i] = sqlite3_last_insert_rowid(s->db);
    }
    if (old_max > 0) {
        if (!error && (rc = carry_embeddings(s, d, id, old_max, new_ids, err)) != CN_OK)
            return rc;
        STMT(Q_PASSAGES_DELETE_OLD);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, old_max);
        if ((rc = step_done(s, st, "removing old passages", err)) != CN_OK)
            return rc;
    }
    *doc_id = id;
    return CN_OK;
}

static int put_doc(store *s, const store_doc_in *d, const char *error, int64_t *doc_id,
                   cn_err *err)
{
    int rc = error ? check_meta(d, true, err) : check_doc(d, err);
    if (rc != CN_OK)
        return rc;
    int64_t *new_ids = NULL;
    if (!error && d->n_passages > 0 && !(new_ids = cn_malloc((size_t)d->n_passages * 8)))
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", d->path);
    int64_t id = 0;
    rc = store_begin(s, err);
    if (rc == CN_OK)
        rc = write_doc(s, d, error, new_ids, &id, err);
    if (rc == CN_OK)
        rc = store_commit(s, err);
    if (rc != CN_OK)
        store_rollback(s);
    free(new_ids);
    if (rc == CN_OK && doc_id)
        *doc_id = id;
    return rc;
}

int store_put_document(store *s, const store_doc_in *d, int64_t *doc_id, cn_err *err)
{
    return put_doc(s, d, NULL, doc_id, err);
}

int store_put_failed(store *s, const store_doc_in *d, const char *error, int64_t *doc_id,
                     cn_err *err)
{
    if (!error || !*error || !text_ok(error, strlen(error)))
        return cn_fail(err, CN_EINVAL, "%s: a failed document needs a UTF-8 error message",
                       d && d->path ? d->path : "store");
    return put_doc(s, d, error, doc_id, err);
}

/* ---- lookups and removal ----------------------------------------------- */

int store_find_by_path(store *s, const char *path, store_file_state *fs, cn_err *err)
{
    sqlite3_stmt *st;
    STMT(Q_DOC_BY_PATH);
    bind_text(st, 1, path, strlen(path));
    int src = sqlite3_step(st), rc = CN_OK;
    if (src == SQLITE_ROW) {
        memset(fs, 0, sizeof *fs);
        fs->id = sqlite3_column_int64(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1);
        snprintf(fs->hash, sizeof fs->hash, "%s", h ? h : "");
        fs->size = sqlite3_column_int64(st, 2);
        fs->mtime_ns = sqlite3_column_int64(st, 3);
        const char *status = (const char *)sqlite3_column_text(st, 4);
        fs->failed = status && strcmp(status, "failed") == 0;
    } else if (src == SQLITE_DONE)
        rc = CN_ENOTFOUND; /* not an error worth a message: the file is new */
    else
        rc = store_fail(s, src, "looking up a document", err);
    sqlite3_reset(st);
    if (rc == CN_ENOTFOUND)
        cn_fail(err, CN_ENOTFOUND, "%s: not in the library", path);
    return rc;
}

static int remove_where(store *s, const char *sql, int64_t id, const char *path, const char *name,
                        cn_err *err)
{
    int rc = store_begin(s, err);
    if (rc != CN_OK)
        return rc;
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        if (path)
            bind_text(st, 1, path, strlen(path));
        else
            sqlite3_bind_int64(st, 1, id);
        src = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    if (src != SQLITE_DONE)
        rc = store_fail(s, src, "removing a document", err);
    else if (sqlite3_changes(s->db) == 0)
        rc = cn_fail(err, CN_ENOTFOUND, "%s: not in the library", name);
    if (rc == CN_OK)
        rc = store_commit(s, err);
    if (rc != CN_OK)
        store_rollback(s);
    return rc;
}

int store_remove_path(store *s, const char *path, cn_err *err)
{
    return remove_where(s, "DELETE FROM documents WHERE path = ?1", 0, path, path, err);
}

int store_remove_id(store *s, int64_t doc_id, cn_err *err)
{
    char name[32];
    snprintf(name, sizeof name, "document %lld", (long long)doc_id);
    return remove_where(s, "DELETE FROM documents WHERE id = ?1", doc_id, NULL, name, err);
}

/* fn for each document (all of them, or the one with id when id > 0). */
static int list_docs(store *s, int64_t id, store_doc_fn fn, void *ctx, cn_err *err)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db,
                                 "SELECT id, path, title, kind, hash, size, mtime_ns, n_pages,"
                                 " n_passages, status, error, added_at, indexed_at"
                                 " FROM documents WHERE ?1 = 0 OR id = ?1 ORDER BY path",
                                 -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "listing documents", err);
    sqlite3_bind_int64(st, 1, id);
    int rc = CN_OK;
    while (rc == CN_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        store_doc_info di = {
            .id = sqlite3_column_int64(st, 0),
            .path = (const char *)sqlite3_column_text(st, 1),
            .title = (const char *)sqlite3_column_text(st, 2),
            .kind = (const char *)sqlite3_column_text(st, 3),
            .hash = (const char *)sqlite3_column_text(st, 4),
            .size = sqlite3_column_int64(st, 5),
            .mtime_ns = sqlite3_column_int64(st, 6),
            .n_pages = sqlite3_column_int(st, 7),
            .n_passages = sqlite3_column_int(st, 8),
            .error = (const char *)sqlite3_column_text(st, 10),
            .added_at = sqlite3_column_int64(st, 11),
            .indexed_at = sqlite3_column_int64(st, 12),
        };
        const char *status = (const char *)sqlite3_column_text(st, 9);
        di.failed = status && strcmp(status, "failed") == 0;
        if (!di.path || !di.kind)
            rc = store_fail(s, SQLITE_NOMEM, "listing documents", err);
        else
            rc = fn(ctx, &di);
    }
    if (rc == CN_OK && src != SQLITE_DONE)
        rc = store_fail(s, src, "listing documents", err);
    sqlite3_finalize(st);
    return rc;
}

int store_list(store *s, store_doc_fn fn, void *ctx, cn_err *err)
{
    return list_docs(s, 0, fn, ctx, err);
}

typedef struct doc_copy {
    cn_arena *a;
    store_doc_info *out;
    bool found, oom;
} doc_copy;

static const char *arena_str(doc_copy *c, const char *p)
{
    if (!p)
        return NULL;
    const char *r = cn_arena_strndup(c->a, p, strlen(p));
    c->oom |= r == NULL;
    return r;
}

static int copy_doc(void *ctx, const store_doc_info *d)
{
    doc_copy *c = ctx;
    *c->out = *d;
    c->out->path = arena_str(c, d->path);
    c->out->title = arena_str(c, d->title);
    c->out->kind = arena_str(c, d->kind);
    c->out->hash = arena_str(c, d->hash);
    c->out->error = arena_str(c, d->error);
    c->found = true;
    return CN_OK;
}

int store_doc_get(store *s, int64_t id, cn_arena *a, store_doc_info *out, cn_err *err)
{
    doc_copy c = {a, out, false, false};
    if (id <= 0)
        return cn_fail(err, CN_ENOTFOUND, "no document %lld in the library", (long long)id);
    int rc = list_docs(s, id, copy_doc, &c, err);
    if (rc)
        return rc;
    if (c.oom)
        return cn_fail(err, CN_ENOMEM, "%s: reading a document: arena full", s->path);
    return c.found ? CN_OK
                   : cn_fail(err, CN_ENOTFOUND, "no document %lld in the library", (long long)id);
}

static bool default_exists(void *ctx, const char *path)
{
    (void)ctx;
    struct stat st;
    return stat(path, &st) == 0 || !(errno == ENOENT || errno == ENOTDIR);
}

int store_prune(store *s, store_exists_fn exists, void *ctx, cn_err *err)
{
    if (!exists)
        exists = default_exists;
    /* First collect the documents, so that the callback (stat on a slow or
    ** sleeping disk) runs with no transaction open. */
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, "SELECT id, path FROM documents ORDER BY id", -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "listing documents", err);
    cn_arena a;
    cn_arena_init(&a, (size_t)1 << 30);
    int64_t *ids = NULL;
    const char **paths = NULL;
    size_t n = 0, cap = 0;
    int rc = CN_OK;
    while (rc == CN_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            int64_t *ni = cn_realloc_array(ids, cap, sizeof *ids);
            if (ni)
                ids = ni;
            const char **np = ni ? cn_realloc_array(paths, cap, sizeof *paths) : NULL;
            if (np)
                paths = np;
            if (!ni || !np) {
                rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", s->path);
                break;
            }
        }
        ids[n] = sqlite3_column_int64(st, 0);
        paths[n] = cn_arena_strndup(&a, (const char *)sqlite3_column_text(st, 1),
                                    (size_t)sqlite3_column_bytes(st, 1));
        if (!paths[n])
            rc = cn_fail(err, CN_ENOMEM, "%s: out of memory", s->path);
        n++;
    }
    if (rc == CN_OK && src != SQLITE_DONE)
        rc = store_fail(s, src, "listing documents", err);
    sqlite3_finalize(st);

    size_t n_gone = 0;
    for (size_t i = 0; rc == CN_OK && i < n; i++)
        if (!exists(ctx, paths[i]))
            ids[n_gone++] = ids[i];

    int removed = 0;
    if (rc == CN_OK && n_gone > 0) {
        rc = store_begin(s, err);
        for (size_t i = 0; rc == CN_OK && i < n_gone; i++) {
            if (!(st = store_stmt(s, Q_DOC_DELETE, err))) {
                rc = err ? err->code : CN_EIO;
                break;
            }
            sqlite3_bind_int64(st, 1, ids[i]);
            rc = step_done(s, st, "removing a document", err);
            removed += sqlite3_changes(s->db);
        }
        if (rc == CN_OK)
            rc = store_commit(s, err);
        if (rc != CN_OK)
            store_rollback(s);
    }
    free(ids);
    free(paths);
    cn_arena_free(&a);
    return rc == CN_OK ? removed : rc;
}

/* ---- reading ----------------------------------------------------------- */

/* Column i as a NUL-terminated copy in arena a; NULL stays NULL. */
void store_col_hit(sqlite3_stmt *st, cn_arena *a, store_hit *h, bool *oom)
{
    h->doc_id = sqlite3_column_int64(st, 1);
    h->path = store_col_str(st, 2, a, NULL, oom);
    h->title = store_col_str(st, 3, a, NULL, oom);
    h->page_start = sqlite3_column_int(st, 4);
    h->page_end = sqlite3_column_int(st, 5);
    h->heading = store_col_str(st, 6, a, NULL, oom);
    h->text = store_col_str(st, 7, a, &h->len, oom);
    h->locator = store_col_str(st, 9, a, NULL, oom);
    h->ocr = sqlite3_column_type(st, 10) != SQLITE_NULL;
    h->ocr_conf = h->ocr ? (float)sqlite3_column_double(st, 10) : 0;
}

const char *store_col_str(sqlite3_stmt *st, int i, cn_arena *a, size_t *len, bool *oom)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (len)
        *len = n;
    if (!t)
        return NULL;
    char *c = cn_arena_strndup(a, t, n);
    if (!c)
        *oom = true;
    return c;
}

int store_get_passages(store *s, const int64_t *ids, int n, cn_arena *a, store_hit *hits,
                       cn_err *err)
{
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st;
        STMT(Q_PASSAGE_GET);
        sqlite3_bind_int64(st, 1, ids[i]);
        memset(&hits[i], 0, sizeof hits[i]);
        int src = sqlite3_step(st);
        bool oom = false;
        if (src == SQLITE_ROW) {
            store_hit *h = &hits[i];
            h->passage_id = sqlite3_column_int64(st, 0);
            store_col_hit(st, a, h, &oom);
        }
        sqlite3_reset(st);
        if (src != SQLITE_ROW && src != SQLITE_DONE)
            return store_fail(s, src, "reading a passage", err);
        if (oom)
            return cn_fail(err, CN_ENOMEM, "%s: reading passages: arena full", s->path);
    }
    return CN_OK;
}

int store_get_page(store *s, int64_t doc_id, int number, cn_arena *a, const char **text,
                   size_t *len, cn_err *err)
{
    sqlite3_stmt *st;
    STMT(Q_PAGE_GET);
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_int(st, 2, number);
    int src = sqlite3_step(st), rc = CN_OK;
    bool oom = false;
    if (src == SQLITE_ROW)
        *text = store_col_str(st, 0, a, len, &oom);
    else if (src == SQLITE_DONE)
        rc = cn_fail(err, CN_ENOTFOUND, "document %lld has no page %d", (long long)doc_id, number);
    else
        rc = store_fail(s, src, "reading a page", err);
    sqlite3_reset(st);
    if (rc == CN_OK && oom)
        rc = cn_fail(err, CN_ENOMEM, "%s: reading a page: arena full", s->path);
    return rc;
}

int store_doc_passages(store *s, int64_t doc_id, cn_arena *a, store_hit **out, int *n,
                       cn_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db,
                                 "SELECT p.id, p.doc_id, d.path, d.title, p.page_start, p.page_end,"
                                 " p.heading, p.text, NULL, p.locator, p.ocr_conf FROM passages AS p"
                                 " JOIN documents AS d ON d.id = p.doc_id WHERE p.doc_id = ?1"
                                 " ORDER BY p.id",
                                 -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "listing a document's passages", err);
    sqlite3_bind_int64(st, 1, doc_id);
    int cap = 0, rc = CN_OK;
    bool oom = false;
    while (!oom && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            store_hit *v = cn_realloc_array(*out, (size_t)cap, sizeof *v);
            if (!v) {
                oom = true;
                break;
            }
            *out = v;
        }
        store_hit *h = &(*out)[(*n)++];
        memset(h, 0, sizeof *h);
        h->passage_id = sqlite3_column_int64(st, 0);
        store_col_hit(st, a, h, &oom);
    }
    if (!oom && src != SQLITE_DONE && src != SQLITE_ROW)
        rc = store_fail(s, src, "listing a document's passages", err);
    sqlite3_finalize(st);
    if (oom)
        rc = cn_fail(err, CN_ENOMEM, "%s: listing a document's passages: out of memory", s->path);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- statistics, checks, compaction ------------------------------------ */

static int query_int(store *s, const char *sql, int64_t *out, cn_err *err)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            src = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return src == SQLITE_OK ? CN_OK : store_fail(s, src, sql, err);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

int store_stats_get(store *s, store_stats *st, cn_err *err)
{
    memset(st, 0, sizeof *st);
    st->schema_version = s->version;
    struct {
        const char *sql;
        int64_t *out;
    } q[] = {
        {"SELECT count(*) FROM documents", &st->n_documents},
        {"SELECT count(*) FROM documents WHERE status = 'failed'", &st->n_failed},
        {"SELECT count(*) FROM pages", &st->n_pages},
        {"SELECT count(*) FROM passages", &st->n_passages},
        {"SELECT count(*) FROM models", &st->n_models},
        {"SELECT count(*) FROM embeddings", &st->n_embeddings},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(q); i++) {
        int rc = query_int(s, q[i].sql, q[i].out, err);
        if (rc != CN_OK)
            return rc;
    }
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", s->path);
    st->db_bytes = file_size(s->path);
    st->wal_bytes = file_size(wal);
    return CN_OK;
}

/* Queries that must return no row in a consistent library, and what a row
** means. Each returns (id, detail) of the first offender. */
static const struct {
    const char *sql, *problem;
} invariants[] = {
    {"SELECT id, path FROM documents AS d WHERE n_pages !="
     " (SELECT count(*) FROM pages WHERE doc_id = d.id) LIMIT 1",
     "document %lld (%s) does not have all its pages"},
    {"SELECT id, path FROM documents AS d WHERE n_passages !="
     " (SELECT count(*) FROM passages WHERE doc_id = d.id) LIMIT 1",
     "document %lld (%s) does not have all its passages"},
    {"SELECT id, '' FROM passages_fts_docsize WHERE id NOT IN (SELECT id FROM passages) LIMIT 1",
     "keyword index entry %lld%s has no passage"},
    {"SELECT id, '' FROM passages WHERE id NOT IN (SELECT id FROM passages_fts_docsize) LIMIT 1",
     "passage %lld%s is missing from the keyword index"},
    {"SELECT id, '' FROM pages_fts_docsize WHERE id NOT IN (SELECT id FROM pages) LIMIT 1",
     "page index entry %lld%s has no page"},
    {"SELECT id, '' FROM pages WHERE id NOT IN (SELECT id FROM pages_fts_docsize) LIMIT 1",
     "page %lld%s is missing from the page index"},
    {"SELECT e.passage_id, m.name FROM embeddings AS e JOIN models AS m ON m.id = e.model_id"
     " WHERE length(e.vector) != m.dim * e.format / 8 LIMIT 1",
     "embedding of passage %lld for %s has the wrong size"},
};

int store_check(store *s, cn_err *err)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "checking integrity", err);
    src = sqlite3_step(st);
    int rc = CN_OK;
    if (src == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok") != 0)
            rc = cn_fail(err, CN_EVERIFY, "%s: integrity check: %s", s->path, r ? r : "?");
    } else
        rc = store_fail(s, src, "checking integrity", err);
    sqlite3_finalize(st);
    if (rc != CN_OK)
        return rc;

    src = sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "checking references", err);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = cn_fail(err, CN_EVERIFY, "%s: a row of %s refers to a missing %s row", s->path,
                     sqlite3_column_text(st, 0), sqlite3_column_text(st, 2));
    else if (src != SQLITE_DONE)
        rc = store_fail(s, src, "checking references", err);
    sqlite3_finalize(st);
    if (rc != CN_OK)
        return rc;

    src = sqlite3_exec(s->db, "INSERT INTO passages_fts(passages_fts) VALUES ('integrity-check');"
                              "INSERT INTO pages_fts(pages_fts) VALUES ('integrity-check')",
                       NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return cn_fail(err, CN_EVERIFY, "%s: keyword index check: %s", s->path,
                       sqlite3_errmsg(s->db));

    for (size_t i = 0; i < CN_ARRAY_LEN(invariants); i++) {
        src = sqlite3_prepare_v2(s->db, invariants[i].sql, -1, &st, NULL);
        if (src != SQLITE_OK)
            return store_fail(s, src, "checking consistency", err);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            char what[256];
            const char *detail = (const char *)sqlite3_column_text(st, 1);
            snprintf(what, sizeof what, invariants[i].problem,
                     (long long)sqlite3_column_int64(st, 0), detail ? detail : "");
            rc = cn_fail(err, CN_EVERIFY, "%s: %s", s->path, what);
        } else if (src != SQLITE_DONE)
            rc = store_fail(s, src, "checking consistency", err);
        sqlite3_finalize(st);
        if (rc != CN_OK)
            return rc;
    }
    return CN_OK;
}

int store_compact(store *s, cn_err *err)
{
    int rc = store_exec(s, "INSERT INTO passages_fts(passages_fts) VALUES ('optimize');"
                           "INSERT INTO pages_fts(pages_fts) VALUES ('optimize')", err);
    if (rc == CN_OK)
        rc = store_exec(s, "VACUUM", err);
    if (rc == CN_OK)
        rc = store_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)", err);
    return rc;
}
