/*
** Unit tests for src/store: schema and migrations, refusing files that are
** not ours (newer, garbage, truncated, foreign), documents in and out with no
** orphan rows, keyword search, embeddings, atomicity under injected failures,
** and crash safety under SIGKILL.
**
** The tests include store_int.h to reach the SQLite handle: to count rows
** with SQL of their own, build old schemas and inject failures.
*/
#include "test.h"
#include "store/store.h"
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------- */

static const char *tmp_file(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    unlink(p);
    char side[1100];
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
    return p;
}

static int64_t q1(store *s, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "  sql error: %s: %s\n", sql, sqlite3_errmsg(s->db));
        return -999;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static uint32_t rng_next(uint64_t *r)
{
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*r >> 33);
}

static const char *const syllables[] = {"ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi",
                                        "bel", "cor", "dan", "fis", "gur", "hon", "jex", "pol"};

/* A document of n_pages pages of pseudo-words, each cut into per_page
** passages; everything lives in arena a. `extra` (if not NULL) is written
** into page extra_page as a sentence of its own. */
static store_doc_in make_doc(cn_arena *a, const char *path, uint64_t seed, int n_pages,
                             int per_page, const char *extra, int extra_page)
{
    store_doc_in d = {0};
    d.path = cn_arena_strndup(a, path, strlen(path));
    char *h = cn_arena_alloc(a, STORE_HASH_HEX + 1);
    uint64_t r = seed * 2654435761u + 1;
    for (int i = 0; i < STORE_HASH_HEX; i++)
        h[i] = "0123456789abcdef"[rng_next(&r) & 15];
    h[STORE_HASH_HEX] = 0;
    d.hash = h;
    d.size = 1000 + (int64_t)seed;
    d.mtime_ns = 1700000000000000000ll + (int64_t)seed;
    d.kind = "text";
    char title[64];
    snprintf(title, sizeof title, "doc %llu pages=%d passages=%d", (unsigned long long)seed,
             n_pages, n_pages * per_page);
    d.title = cn_arena_strndup(a, title, strlen(title));
    store_page_in *pages = cn_arena_alloc(a, sizeof *pages * (size_t)(n_pages ? n_pages : 1));
    store_passage_in *ps =
        cn_arena_alloc(a, sizeof *ps * (size_t)(n_pages * per_page > 0 ? n_pages * per_page : 1));
    for (int p = 0; p < n_pages; p++) {
        char buf[4096];
        size_t len = 0;
        for (int w = 0; w < 120 && len < sizeof buf - 64; w++) {
            int n_syl = 1 + (int)(rng_next(&r) % 3);
            for (int k = 0; k < n_syl; k++)
                len += (size_t)snprintf(buf + len, sizeof buf - len, "%s",
                                        syllables[rng_next(&r) % CN_ARRAY_LEN(syllables)]);
            buf[len++] = (w % 12 == 11) ? '.' : ' ';
        }
        if (extra && p + 1 == extra_page)
            len += (size_t)snprintf(buf + len, sizeof buf - len, " %s ", extra);
        pages[p].number = p + 1;
        pages[p].text = cn_arena_strndup(a, buf, len);
        pages[p].len = len;
        pages[p].ocr_pending = false;
        for (int q = 0; q < per_page; q++) {
            store_passage_in *x = &ps[p * per_page + q];
            size_t s0 = len * (size_t)q / (size_t)per_page, s1 = len * (size_t)(q + 1) / (size_t)per_page;
            x->page_start = x->page_end = p + 1;
            x->off_start = s0;
            x->off_end = s1;
            x->text = pages[p].text + s0;
            x->len = s1 - s0;
            x->heading = q == 0 ? "Chapter" : NULL;
            x->locator = q == 0 && p == 0 ? "1 Chapter \xE2\x80\xBA 1.1 Part" : NULL;
        }
    }
    d.pages = pages;
    d.n_pages = n_pages;
    d.passages = ps;
    d.n_passages = n_pages * per_page;
    return d;
}

static store *open_ok(const char *path)
{
    store *s = NULL;
    cn_err e = {0};
    int rc = store_open(&s, path, &e);
    if (rc != CN_OK)
        test_fail_at(__FILE__, __LINE__, "store_open(%s): %s", path, e.msg);
    return s;
}

/* Whole-file comparison, to prove a refused file was not touched. */
static char *slurp(const char *path, size_t *len)
{
    char *data = NULL;
    if (cn_read_file(path, 1 << 28, &data, len, NULL) != CN_OK)
        return NULL;
    return data;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len)
        test_fail_at(__FILE__, __LINE__, "cannot write %s", path);
    if (f)
        fclose(f);
}

/* Independent SQL checks: no orphan rows, every document whole, the FTS
** index in step with the passages. Returns the number of problems. */
static int consistency_problems(store *s)
{
    static const char *const zero[] = {
        "SELECT count(*) FROM pages WHERE doc_id NOT IN (SELECT id FROM documents)",
        "SELECT count(*) FROM passages WHERE doc_id NOT IN (SELECT id FROM documents)",
        "SELECT count(*) FROM embeddings WHERE passage_id NOT IN (SELECT id FROM passages)",
        "SELECT count(*) FROM documents AS d WHERE n_pages != (SELECT count(*) FROM pages"
        " WHERE doc_id = d.id) OR n_passages != (SELECT count(*) FROM passages WHERE doc_id = d.id)",
        "SELECT count(*) FROM passages_fts_docsize WHERE id NOT IN (SELECT id FROM passages)",
        "SELECT count(*) FROM passages WHERE id NOT IN (SELECT id FROM passages_fts_docsize)",
        "SELECT count(*) FROM documents WHERE status = 'failed' AND (n_pages OR n_passages)",
    };
    int bad = 0;
    for (size_t i = 0; i < CN_ARRAY_LEN(zero); i++) {
        int64_t v = q1(s, zero[i]);
        if (v != 0) {
            fprintf(stderr, "  inconsistent (%lld): %s\n", (long long)v, zero[i]);
            bad++;
        }
    }
    if (sqlite3_exec(s->db, "INSERT INTO passages_fts(passages_fts) VALUES ('integrity-check')",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "  fts integrity-check: %s\n", sqlite3_errmsg(s->db));
        bad++;
    }
    return bad;
}

/* ---- schema, migrations, refusing files -------------------------------- */

TEST(store_creates_schema_and_reopens)
{
    const char *path = tmp_file("create.db");
    store *s = open_ok(path);
    if (!s)
        return;
    EXPECT_EQ_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
    EXPECT_EQ_INT(q1(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    EXPECT_EQ_INT(q1(s, "PRAGMA application_id"), STORE_APP_ID);
    EXPECT_EQ_INT(q1(s, "PRAGMA foreign_keys"), 1);
    EXPECT_EQ_INT(q1(s, "PRAGMA synchronous"), 2); /* FULL */
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM sqlite_master WHERE name IN ('documents', 'pages',"
                        " 'passages', 'passages_fts', 'models', 'embeddings')"),
                  6);
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    store_doc_in d = make_doc(&a, "/docs/a.txt", 1, 3, 2, NULL, 0);
    int64_t id = 0;
    cn_err e = {0};
    EXPECT_EQ_INT(store_put_document(s, &d, &id, &e), CN_OK);
    EXPECT(id > 0);
    /* The library and its WAL are the owner's alone, whatever the umask. */
    struct stat fst;
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", path);
    EXPECT(stat(path, &fst) == 0 && (fst.st_mode & 0777) == 0600);
    EXPECT(stat(wal, &fst) == 0 && (fst.st_mode & 0777) == 0600);
    store_close(s);

    s = open_ok(path);
    if (!s) {
        cn_arena_free(&a);
        return;
    }
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL);
    EXPECT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    store_file_state fs;
    EXPECT_EQ_INT(store_find_by_path(s, "/docs/a.txt", &fs, &e), CN_OK);
    EXPECT_EQ_INT(fs.id, id);
    EXPECT_STR(fs.hash, d.hash);
    EXPECT_EQ_INT(fs.size, d.size);
    EXPECT_EQ_INT(fs.mtime_ns, d.mtime_ns);
    EXPECT(!fs.failed);
    EXPECT_EQ_INT(store_find_by_path(s, "/docs/none.txt", &fs, &e), CN_ENOTFOUND);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_migrates_older_schema)
{
    /* Version 1, as the first Cairn left it: no embedding tables. */
    const char *path = tmp_file("v1.db");
    sqlite3 *db;
    EXPECT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    cn_err e = {0};
    EXPECT_EQ_INT(store_schema_migrate(db, path, 1, &e), CN_OK);
    EXPECT_EQ_INT(sqlite3_exec(db,
                               "INSERT INTO documents (path, hash, size, mtime_ns, kind, title,"
                               " n_pages, n_passages, status, added_at, indexed_at) VALUES"
                               " ('/old.txt', printf('%064d', 7), 10, 1, 'text', 'Old', 1, 1,"
                               "  'ok', 1, 1);"
                               "INSERT INTO pages (doc_id, number, text) VALUES (1, 1,"
                               " 'The old library kept a résumé here.');"
                               "INSERT INTO passages (doc_id, page_start, page_end, off_start,"
                               " off_end, text) VALUES (1, 1, 1, 0, 35,"
                               " 'The old library kept a résumé here.');",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = 'embeddings'", -1, &st,
                       NULL);
    sqlite3_step(st);
    EXPECT_EQ_INT(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);

    store *s = open_ok(path);
    if (!s)
        return;
    EXPECT_EQ_INT(q1(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM documents"), 1);
    cn_arena a;
    cn_arena_init(&a, 1 << 20);
    store_hit hits[4];
    int n = store_search_keyword(s, "resume", 4, &a, hits, NULL, NULL, &e);
    EXPECT_EQ_INT(n, 1);
    float v[3] = {1, 2, 3};
    int64_t pid = 1;
    EXPECT_EQ_INT(store_put_embeddings(s, "m", 3, &pid, v, 1, false, &e), 1);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    store_close(s);

    /* Version 0: an empty SQLite database (no tables) becomes a library. */
    path = tmp_file("v0.db");
    EXPECT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA page_size = 4096; VACUUM", NULL, NULL, NULL);
    sqlite3_close(db);
    s = open_ok(path);
    if (s)
        EXPECT_EQ_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
    store_close(s);
    cn_arena_free(&a);
}

static store_doc_in text_doc(cn_arena *a, const char *path, uint64_t seed, const char *text);

TEST(store_migrates_v2_keyword_index)
{
    /* Version 2 indexed with porter/unicode61: a Japanese run was one token
    ** and pages had no language. Opening rebuilds the index (version 3). */
    const char *path = tmp_file("v2.db");
    sqlite3 *db;
    EXPECT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    cn_err e = {0};
    EXPECT_EQ_INT(store_schema_migrate(db, path, 2, &e), CN_OK);
    EXPECT_EQ_INT(sqlite3_exec(db,
                               "INSERT INTO documents (path, hash, size, mtime_ns, kind, title,"
                               " n_pages, n_passages, status, added_at, indexed_at) VALUES"
                               " ('/ja.txt', printf('%064d', 7), 10, 1, 'text', 'J', 1, 1,"
                               "  'ok', 1, 1);"
                               "INSERT INTO pages (doc_id, number, text) VALUES (1, 1,"
                               " '設定ファイルを編集してください');"
                               "INSERT INTO passages (doc_id, page_start, page_end, off_start,"
                               " off_end, text) VALUES (1, 1, 1, 0, 45,"
                               " '設定ファイルを編集してください');",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH '設定'", -1,
                       &st, NULL);
    EXPECT_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    EXPECT_EQ_INT(sqlite3_column_int(st, 0), 0); /* the old index: one token for the run */
    sqlite3_finalize(st);
    sqlite3_close(db);

    store *s = open_ok(path);
    if (!s)
        return;
    EXPECT_EQ_INT(q1(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages WHERE lang = 'ja'"), 1);
    cn_arena a;
    cn_arena_init(&a, 1 << 20);
    store_hit hits[4];
    EXPECT_EQ_INT(store_search_keyword(s, "設定", 4, &a, hits, NULL, NULL, &e), 1);
    EXPECT_EQ_INT(store_search_keyword(s, "編集", 4, &a, hits, NULL, NULL, &e), 1);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    /* version 4: the pages kept, each with an id, in a page index of its own */
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages WHERE id IS NOT NULL"), 1);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages_fts WHERE pages_fts MATCH '編集'"), 1);
    store_close(s);
    /* and it stays so when opened again */
    s = open_ok(path);
    if (s) {
        EXPECT_EQ_INT(store_search_keyword(s, "設定", 4, &a, hits, NULL, NULL, &e), 1);
        /* a VACUUM keeps the page index pointing at the right pages: the
        ** page of a document added after the first is removed still found */
        store_doc_in d = text_doc(&a, "/b.pdf", 701, "The valve seat is lapped by hand.");
        EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
        EXPECT_EQ_INT(store_remove_path(s, "/ja.txt", &e), CN_OK);
        EXPECT_EQ_INT(store_compact(s, &e), CN_OK);
        EXPECT_EQ_INT(store_check(s, &e), CN_OK);
        EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages_fts JOIN pages AS p"
                            " ON p.id = pages_fts.rowid JOIN documents AS d ON d.id = p.doc_id"
                            " WHERE pages_fts MATCH 'valve' AND d.path = '/b.pdf'"), 1);
    }
    store_close(s);
    cn_arena_free(&a);
}

/* Open must fail with code and a message containing want, leaving the file
** byte for byte as it was. */
static void expect_refused(const char *path, int code, const char *want)
{
    size_t len0 = 0, len1 = 0;
    char *before = slurp(path, &len0);
    store *s = NULL;
    cn_err e = {0};
    int rc = store_open(&s, path, &e);
    EXPECT_EQ_INT(rc, code);
    EXPECT(s == NULL);
    EXPECT_CONTAINS(e.msg, want);
    EXPECT_CONTAINS(e.msg, path);
    char *after = slurp(path, &len1);
    EXPECT(before && after && len0 == len1 && memcmp(before, after, len0) == 0);
    free(before);
    free(after);
    store_close(s);
}

TEST(store_refuses_newer_schema)
{
    const char *path = tmp_file("newer.db");
    store *s = open_ok(path);
    if (!s)
        return;
    EXPECT_EQ_INT(store_exec(s, "PRAGMA user_version = 99", NULL), CN_OK);
    store_close(s);
    expect_refused(path, CN_EUNSUPPORTED, "newer Cairn");
}

TEST(store_refuses_what_is_not_a_library)
{
    const char *path = tmp_file("garbage.db");
    unsigned char junk[10000];
    uint64_t r = 42;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rng_next(&r);
    write_file(path, junk, sizeof junk);
    expect_refused(path, CN_EFORMAT, "not a SQLite database");

    write_file(path, "hello", 5);
    expect_refused(path, CN_EFORMAT, "not a SQLite database");

    /* A SQLite header followed by garbage. */
    memcpy(junk, "SQLite format 3", 16);
    junk[16] = 0x10, junk[17] = 0x00; /* page size 4096 */
    write_file(path, junk, 8192);
    store *s = NULL;
    cn_err e = {0};
    size_t len0, len1;
    char *before = slurp(path, &len0);
    EXPECT_EQ_INT(store_open(&s, path, &e), CN_EFORMAT);
    EXPECT_CONTAINS(e.msg, path);
    char *after = slurp(path, &len1);
    EXPECT(before && after && len0 == len1 && memcmp(before, after, len0) == 0);
    free(before);
    free(after);

    /* Another program's SQLite database. */
    path = tmp_file("foreign.db");
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                     "INSERT INTO notes (body) VALUES ('mine')",
                 NULL, NULL, NULL);
    sqlite3_close(db);
    expect_refused(path, CN_EFORMAT, "another program");

    /* A directory is not a library either. */
    EXPECT_EQ_INT(store_open(&s, test_tmpdir(), &e), CN_EIO);
}

TEST(store_refuses_truncated_library)
{
    const char *path = tmp_file("trunc.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    for (int i = 0; i < 8; i++) {
        char p[32];
        snprintf(p, sizeof p, "/t/%d.txt", i);
        store_doc_in d = make_doc(&a, p, (uint64_t)i, 6, 3, NULL, 0);
        EXPECT_EQ_INT(store_put_document(s, &d, NULL, NULL), CN_OK);
    }
    store_close(s); /* checkpoints and removes the WAL */
    cn_arena_free(&a);
    size_t len;
    char *data = slurp(path, &len);
    EXPECT(data && len >= 16 * 4096);
    if (!data)
        return;
    write_file(path, data, len / 2 / 4096 * 4096); /* whole pages lost */
    expect_refused(path, CN_EFORMAT, "truncated");
    write_file(path, data, len / 2 + 100); /* cut mid-page */
    expect_refused(path, CN_EFORMAT, "truncated");
    write_file(path, data, 60); /* cut inside the header */
    expect_refused(path, CN_EFORMAT, "not a SQLite database");
    free(data);
}

/* ---- documents --------------------------------------------------------- */

static int64_t doc_rows(store *s, const char *table, int64_t id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE doc_id = %lld", table, (long long)id);
    return q1(s, sql);
}

TEST(store_put_replace_remove)
{
    const char *path = tmp_file("docs.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in da = make_doc(&a, "/d/a.pdf", 1, 3, 2, NULL, 0);
    store_doc_in db = make_doc(&a, "/d/b.pdf", 2, 4, 3, NULL, 0);
    int64_t ia = 0, ib = 0, ia2 = 0;
    EXPECT_EQ_INT(store_put_document(s, &da, &ia, &e), CN_OK);
    EXPECT_EQ_INT(store_put_document(s, &db, &ib, &e), CN_OK);
    EXPECT(ia != ib);
    EXPECT_EQ_INT(doc_rows(s, "pages", ia), 3);
    EXPECT_EQ_INT(doc_rows(s, "passages", ia), 6);
    EXPECT_EQ_INT(doc_rows(s, "passages", ib), 12);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM passages_fts_docsize"), 18);

    /* Re-index a changed a.pdf: same id, new content, old rows gone. */
    store_doc_in da2 = make_doc(&a, "/d/a.pdf", 3, 2, 2, "a changed sentence", 2);
    EXPECT_EQ_INT(store_put_document(s, &da2, &ia2, &e), CN_OK);
    EXPECT_EQ_INT(ia2, ia);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM documents"), 2);
    EXPECT_EQ_INT(doc_rows(s, "pages", ia), 2);
    EXPECT_EQ_INT(doc_rows(s, "passages", ia), 4);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM passages_fts_docsize"), 16);
    store_file_state fs;
    EXPECT_EQ_INT(store_find_by_path(s, "/d/a.pdf", &fs, &e), CN_OK);
    EXPECT_STR(fs.hash, da2.hash);
    EXPECT_EQ_INT(consistency_problems(s), 0);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);

    /* Reading back. */
    const char *text;
    size_t len;
    EXPECT_EQ_INT(store_get_page(s, ia, 2, &a, &text, &len, &e), CN_OK);
    EXPECT_EQ_INT(len, da2.pages[1].len);
    EXPECT(memcmp(text, da2.pages[1].text, len) == 0);
    EXPECT_EQ_INT(store_get_page(s, ia, 3, &a, &text, &len, &e), CN_ENOTFOUND);

    /* Remove: every row of a.pdf goes, b.pdf stays whole. */
    EXPECT_EQ_INT(store_remove_path(s, "/d/a.pdf", &e), CN_OK);
    EXPECT_EQ_INT(doc_rows(s, "pages", ia), 0);
    EXPECT_EQ_INT(doc_rows(s, "passages", ia), 0);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM passages_fts_docsize"), 12);
    EXPECT_EQ_INT(store_remove_path(s, "/d/a.pdf", &e), CN_ENOTFOUND);
    EXPECT_CONTAINS(e.msg, "/d/a.pdf");
    EXPECT_EQ_INT(consistency_problems(s), 0);
    EXPECT_EQ_INT(store_remove_id(s, ib, &e), CN_OK);
    EXPECT_EQ_INT(store_remove_id(s, ib, &e), CN_ENOTFOUND);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages") + q1(s, "SELECT count(*) FROM passages") +
                      q1(s, "SELECT count(*) FROM passages_fts_docsize"),
                  0);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);

    /* A removed document's passage ids are never handed out again. */
    store_doc_in dc = make_doc(&a, "/d/c.pdf", 4, 1, 1, NULL, 0);
    EXPECT_EQ_INT(store_put_document(s, &dc, NULL, &e), CN_OK);
    EXPECT(q1(s, "SELECT min(id) FROM passages") > 22);
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_rejects_bad_documents)
{
    const char *path = tmp_file("bad.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in good = make_doc(&a, "/b/x.txt", 5, 2, 2, NULL, 0);
    store_passage_in ps[4];
    store_page_in pg[2];
    store_doc_in d;
#define BAD(mutate, want)                                                                           \
    do {                                                                                           \
        d = good;                                                                                  \
        memcpy(ps, good.passages, sizeof ps);                                                      \
        memcpy(pg, good.pages, sizeof pg);                                                         \
        d.passages = ps;                                                                           \
        d.pages = pg;                                                                              \
        mutate;                                                                                    \
        EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_EINVAL);                             \
        EXPECT_CONTAINS(e.msg, want);                                                              \
    } while (0)
    BAD(ps[3].page_end = 3, "not pages of the document");
    BAD(ps[1].page_start = 0, "not pages of the document");
    BAD((ps[2].page_start = 2, ps[2].page_end = 1), "not pages of the document");
    BAD(ps[0].off_end = pg[0].len + 1, "offsets");
    BAD((ps[0].off_start = 10, ps[0].off_end = 5), "offsets");
    BAD(ps[1].len = 0, "empty");
    BAD(ps[1].text = "caf\xc3", "UTF-8");
    BAD((ps[1].text = "a\0b", ps[1].len = 3), "NUL");
    BAD(ps[0].heading = "\xff", "heading");
    BAD(pg[1].number = 1, "increase");
    BAD((pg[1].text = "\xe2\x82", pg[1].len = 2), "page 2");
    BAD(d.hash = "abc", "hash");
    BAD(d.hash = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "hash");
    BAD(d.kind = "", "kind");
    BAD(d.title = "\xc0\xaf", "title");
#undef BAD
    d = good;
    d.path = "";
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_EINVAL);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM documents"), 0);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM passages"), 0);
    /* The good one goes in. */
    EXPECT_EQ_INT(store_put_document(s, &good, NULL, &e), CN_OK);
    /* An empty but well-formed document is fine too. */
    d = good;
    d.path = "/b/empty.txt";
    d.n_pages = d.n_passages = 0;
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    /* So is a blank page (no text at all). */
    store_page_in blank = {1, NULL, 0, false};
    d.path = "/b/blank.txt";
    d.pages = &blank;
    d.n_pages = 1;
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    EXPECT_EQ_INT(consistency_problems(s), 0);
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_put_is_all_or_nothing)
{
    const char *path = tmp_file("atomic.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in keep = make_doc(&a, "/x/keep.txt", 10, 3, 3, "the original wording stays", 1);
    int64_t id = 0;
    EXPECT_EQ_INT(store_put_document(s, &keep, &id, &e), CN_OK);
    int64_t seq = q1(s, "SELECT seq FROM sqlite_sequence WHERE name = 'passages'");

    /* SQLite itself fails on the 6th passage (page 3's second), after the
    ** document row, all pages and 5 passages (and their FTS rows) were
    ** written. */
    EXPECT_EQ_INT(store_exec(s,
                             "CREATE TEMP TRIGGER inject BEFORE INSERT ON passages"
                             " WHEN new.page_start = 3 AND new.off_start > 0"
                             " BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                             &e),
                  CN_OK);
    store_doc_in fresh = make_doc(&a, "/x/new.txt", 11, 4, 2, NULL, 0);
    EXPECT_EQ_INT(store_put_document(s, &fresh, NULL, &e), CN_EINVAL);
    EXPECT_CONTAINS(e.msg, "injected failure");
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM documents WHERE path = '/x/new.txt'"), 0);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM documents"), 1);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages"), 3);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM passages"), 9);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM passages_fts_docsize"), 9);
    EXPECT_EQ_INT(q1(s, "SELECT seq FROM sqlite_sequence WHERE name = 'passages'"), seq);

    /* A failed re-index leaves the previous version exactly as it was. */
    store_doc_in changed = make_doc(&a, "/x/keep.txt", 12, 5, 2, "the new wording", 1);
    EXPECT_EQ_INT(store_put_document(s, &changed, NULL, &e), CN_EINVAL);
    store_file_state fs;
    EXPECT_EQ_INT(store_find_by_path(s, "/x/keep.txt", &fs, &e), CN_OK);
    EXPECT_STR(fs.hash, keep.hash);
    EXPECT_EQ_INT(doc_rows(s, "pages", id), 3);
    EXPECT_EQ_INT(doc_rows(s, "passages", id), 9);
    store_hit hits[4];
    EXPECT_EQ_INT(store_search_keyword(s, "original wording", 4, &a, hits, NULL, NULL, &e), 1);
    /* "new" is in no passage: it does not keep "wording" out of the AND tier. */
    EXPECT_EQ_INT(store_search_keyword(s, "new wording", 4, &a, hits, NULL, NULL, &e), 1);
    EXPECT(hits[0].all_terms);
    EXPECT_EQ_INT(consistency_problems(s), 0);

    EXPECT_EQ_INT(store_exec(s, "DROP TRIGGER inject", &e), CN_OK);
    EXPECT_EQ_INT(store_put_document(s, &changed, NULL, &e), CN_OK);
    EXPECT_EQ_INT(doc_rows(s, "passages", id), 10);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_records_failed_files)
{
    const char *path = tmp_file("failed.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in d = make_doc(&a, "/f/scan.pdf", 20, 2, 2, NULL, 0);
    int64_t id = 0, id2 = 0;
    EXPECT_EQ_INT(store_put_document(s, &d, &id, &e), CN_OK);
    /* The file became unreadable: no hash, an error, and none of the old
    ** passages may survive. */
    store_doc_in f = {.path = "/f/scan.pdf", .kind = "pdf", .size = 5};
    EXPECT_EQ_INT(store_put_failed(s, &f, "no extractable text (scanned? OCR is not available yet)",
                                   &id2, &e),
                  CN_OK);
    EXPECT_EQ_INT(id2, id);
    EXPECT_EQ_INT(doc_rows(s, "pages", id), 0);
    EXPECT_EQ_INT(doc_rows(s, "passages", id), 0);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM passages_fts_docsize"), 0);
    store_file_state fs;
    EXPECT_EQ_INT(store_find_by_path(s, "/f/scan.pdf", &fs, &e), CN_OK);
    EXPECT(fs.failed);
    EXPECT_STR(fs.hash, "");
    EXPECT_EQ_INT(store_put_failed(s, &f, "", NULL, &e), CN_EINVAL);
    store_stats st;
    EXPECT_EQ_INT(store_stats_get(s, &st, &e), CN_OK);
    EXPECT_EQ_INT(st.n_documents, 1);
    EXPECT_EQ_INT(st.n_failed, 1);
    /* Fixed: indexed again. */
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_find_by_path(s, "/f/scan.pdf", &fs, &e), CN_OK);
    EXPECT(!fs.failed);
    EXPECT_EQ_INT(consistency_problems(s), 0);
    store_close(s);
    cn_arena_free(&a);
}

typedef struct list_ctx {
    int n, n_failed;
    char first_path[64], error[128];
    int pages, passages;
} list_ctx;

static int list_cb(void *ctx, const store_doc_info *d)
{
    list_ctx *c = ctx;
    if (c->n++ == 0) {
        snprintf(c->first_path, sizeof c->first_path, "%s", d->path);
        c->pages = d->n_pages;
        c->passages = d->n_passages;
    }
    if (d->failed) {
        c->n_failed++;
        snprintf(c->error, sizeof c->error, "%s", d->error ? d->error : "(null)");
    }
    return 0;
}

static bool exists_in_set(void *ctx, const char *path)
{
    (void)ctx;
    return strstr(path, "keep") != NULL;
}

TEST(store_list_and_prune)
{
    const char *path = tmp_file("prune.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    /* Real files for the default check: two exist, two are gone. */
    char real[4][512];
    for (int i = 0; i < 4; i++) {
        snprintf(real[i], sizeof real[i], "%s/prune-%c.txt", test_tmpdir(), 'a' + i);
        write_file(real[i], "x", 1);
        store_doc_in d = make_doc(&a, real[i], (uint64_t)(30 + i), 2, 1, NULL, 0);
        EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    }
    store_doc_in f = {.path = "/zz/failed.pdf", .kind = "pdf"};
    EXPECT_EQ_INT(store_put_failed(s, &f, "password protected", NULL, &e), CN_OK);
    list_ctx lc = {0};
    EXPECT_EQ_INT(store_list(s, list_cb, &lc, &e), CN_OK);
    EXPECT_EQ_INT(lc.n, 5);
    EXPECT_EQ_INT(lc.n_failed, 1);
    EXPECT_STR(lc.first_path, real[0]);
    EXPECT_EQ_INT(lc.pages, 2);
    EXPECT_EQ_INT(lc.passages, 2);
    EXPECT_STR(lc.error, "password protected");

    unlink(real[1]);
    unlink(real[3]);
    EXPECT_EQ_INT(store_prune(s, NULL, NULL, &e), 3); /* b, d and /zz/failed.pdf */
    store_file_state fs;
    EXPECT_EQ_INT(store_find_by_path(s, real[0], &fs, &e), CN_OK);
    EXPECT_EQ_INT(store_find_by_path(s, real[1], &fs, &e), CN_ENOTFOUND);
    EXPECT_EQ_INT(store_prune(s, NULL, NULL, &e), 0);
    EXPECT_EQ_INT(consistency_problems(s), 0);

    /* A caller's own notion of existence. */
    store_doc_in k = make_doc(&a, "/keep/me.txt", 40, 1, 1, NULL, 0);
    EXPECT_EQ_INT(store_put_document(s, &k, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_prune(s, exists_in_set, NULL, &e), 2);
    memset(&lc, 0, sizeof lc);
    EXPECT_EQ_INT(store_list(s, list_cb, &lc, &e), CN_OK);
    EXPECT_EQ_INT(lc.n, 1);
    EXPECT_STR(lc.first_path, "/keep/me.txt");
    store_close(s);
    cn_arena_free(&a);
}

/* ---- keyword search ---------------------------------------------------- */

/* A one-page, one-passage document whose only text is text. */
static store_doc_in text_doc(cn_arena *a, const char *path, uint64_t seed, const char *text)
{
    store_doc_in d = make_doc(a, path, seed, 1, 1, NULL, 0);
    store_page_in *pg = (store_page_in *)d.pages;
    store_passage_in *ps = (store_passage_in *)d.passages;
    pg->text = ps->text = cn_arena_strndup(a, text, strlen(text));
    pg->len = ps->len = ps->off_end = strlen(text);
    ps->off_start = 0;
    ps->heading = NULL;
    return d;
}

/* Does one of hits[0..n) come from path? */
static bool hits_have(const store_hit *hits, int n, const char *path)
{
    for (int i = 0; i < n; i++)
        if (strcmp(hits[i].path, path) == 0)
            return true;
    return false;
}

TEST(store_keyword_search_languages)
{
    const char *path = tmp_file("langs.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 22);
    cn_err e = {0};
    static const char *const docs[][2] = {
        {"/en.pdf", "The pump connection must be tightened before the system is started, and the "
                    "valve is checked. Send the résumé to the office."},
        {"/fr.pdf", "L'installation du logiciel est simple : lancez le programme et suivez les "
                    "instructions de la fenêtre."},
        {"/de.pdf", "Die Installation der Software ist einfach und dauert nicht lange mit dem "
                    "Assistenten."},
        {"/ja.pdf", "設定ファイルを編集してから、サーバーを再起動してください。"},
        {"/ru.pdf", "Для установки программы запустите файл и следуйте инструкциям на экране."},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(docs); i++) {
        store_doc_in d = text_doc(&a, docs[i][0], 300 + i, docs[i][1]);
        EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    }
    /* Each page's language is guessed and stored. */
    static const char *const want_lang[] = {"en", "fr", "de", "ja", "ru"};
    for (size_t i = 0; i < CN_ARRAY_LEN(docs); i++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pages JOIN documents AS d ON d.id = doc_id"
                 " WHERE d.path = '%s' AND lang = '%s'", docs[i][0], want_lang[i]);
        if (q1(s, sql) != 1)
            test_fail_at(__FILE__, __LINE__, "%s: page language is not %s", docs[i][0],
                         want_lang[i]);
    }

    store_hit hits[8];
    int n = 0;
    static const char *const finds[][2] = {
        {"connecting", "/en.pdf"},     /* English inflections (Snowball English) */
        {"pumps", "/en.pdf"},
        {"resume", "/en.pdf"},         /* accents folded */
        {"installer", "/fr.pdf"},      /* French: installation = installer = installez */
        {"installez", "/fr.pdf"},
        {"Installationen", "/de.pdf"}, /* German plural */
        {"設定", "/ja.pdf"},            /* a 2-character word inside a longer run */
        {"再起動", "/ja.pdf"},
        {"サーバー", "/ja.pdf"},
        {"установка", "/ru.pdf"},      /* Russian: установки = установка */
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(finds); i++) {
        e.msg[0] = 0;
        int got = store_search_keyword(s, finds[i][0], 8, &a, hits, &n, NULL, &e);
        if (got < 1 || !hits_have(hits, n, finds[i][1]))
            test_fail_at(__FILE__, __LINE__, "query [%s]: %d hits, none from %s (%s)",
                         finds[i][0], got, finds[i][1], e.msg);
    }
    /* A bigram that is not in the text finds nothing; nor does a stem that
    ** only looks alike. */
    EXPECT_EQ_INT(store_search_keyword(s, "動作", 8, &a, hits, &n, NULL, &e), 0);
    EXPECT_EQ_INT(store_search_keyword(s, "pumpkin", 8, &a, hits, &n, NULL, &e), 0);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_keyword_search_boosts_named_documents)
{
    /* Two manuals say the same about the prompt; the Bash one says it a
    ** little more strongly (shorter passage). A question naming Octave gets
    ** Octave's page first (title), one naming neither keeps bm25's order,
    ** and a document without a title is named by its file name. */
    const char *path = tmp_file("titles.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 22);
    cn_err e = {0};
    store_doc_in d1 = text_doc(&a, "/docs/b.pdf", 401, "The prompt colour is set with an escape.");
    d1.title = "Bash Reference Manual";
    store_doc_in d2 = text_doc(&a, "/docs/o.pdf", 402,
                               "The prompt colour is set with an escape sequence in the "
                               "startup file of the interpreter.");
    d2.title = "GNU Octave";
    store_doc_in d3 = text_doc(&a, "/docs/zshguide.pdf", 403,
                               "The prompt colour is set with an escape sequence in the "
                               "startup file of the interpreter, like the others do it.");
    d3.title = NULL;
    EXPECT_EQ_INT(store_put_document(s, &d1, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_put_document(s, &d2, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_put_document(s, &d3, NULL, &e), CN_OK);
    store_hit hits[8];
    int n = 0;
    EXPECT_EQ_INT(store_search_keyword(s, "prompt colour escape", 8, &a, hits, &n, NULL, &e), 3);
    EXPECT_STR(hits[0].path, "/docs/b.pdf"); /* no name: bm25 alone */
    double plain = hits[0].score;
    EXPECT_EQ_INT(store_search_keyword(s, "prompt colour escape in octave", 8, &a, hits, &n, NULL, &e), 3);
    EXPECT_STR(hits[0].path, "/docs/o.pdf");
    EXPECT_STR(hits[1].path, "/docs/b.pdf");
    EXPECT(hits[1].score == plain); /* unnamed documents keep their score */
    EXPECT_EQ_INT(store_search_keyword(s, "zshguide prompt colour escape", 8, &a, hits, &n, NULL, &e), 3);
    EXPECT_STR(hits[0].path, "/docs/zshguide.pdf");
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_keyword_search_absent_words)
{
    /* absent: the idf-weighted share of the query's words no page holds,
    ** and which words those are */
    const char *path = tmp_file("absent.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 22);
    cn_err e = {0};
    store_doc_in d1 = text_doc(&a, "/a.pdf", 501, "The pump impeller is replaced after the seal.");
    store_doc_in d2 = text_doc(&a, "/b.pdf", 502, "The pump runs quietly in the basement.");
    store_doc_in d3 = text_doc(&a, "/c.pdf", 503, "Fans are cleaned every spring.");
    store_doc_in d4 = text_doc(&a, "/d.pdf", 504, "Valves are greased in the autumn.");
    store_doc_in *docs[] = {&d1, &d2, &d3, &d4};
    for (size_t i = 0; i < CN_ARRAY_LEN(docs); i++)
        EXPECT_EQ_INT(store_put_document(s, docs[i], NULL, &e), CN_OK);
    store_hit hits[4];
    int n = 0;
    store_query_info qi;
    EXPECT_EQ_INT(store_search_keyword(s, "replacing the pump impeller", 4, &a, hits, &n, &qi, &e),
                  2);
    EXPECT_STR(hits[0].path, "/a.pdf");
    EXPECT_EQ_INT(qi.n_words, 3); /* "the" is a stop word */
    EXPECT_NEAR(qi.absent, 0.0, 1e-9);
    EXPECT_STR(qi.missing, "");
    EXPECT_EQ_INT(store_search_keyword(s, "pump impeller for Kubernetes", 4, &a, hits, &n, &qi, &e),
                  2);
    EXPECT(qi.absent > 0.3 && qi.absent < 1); /* the rarest word, on no page */
    EXPECT_STR(qi.missing, "Kubernetes");
    EXPECT_EQ_INT(store_search_keyword(s, "Kubernetes WireGuard", 4, &a, hits, &n, &qi, &e), 0);
    EXPECT_NEAR(qi.absent, 1.0, 1e-9);
    EXPECT_STR(qi.missing, "Kubernetes, WireGuard");
    store_close(s);
    cn_arena_free(&a);
}

/* A one-page document whose page is cut into the passages given. */
static store_doc_in page_doc(cn_arena *a, const char *path, uint64_t seed,
                             const char *const *parts, int n)
{
    store_doc_in d = make_doc(a, path, seed, 1, n, NULL, 0);
    store_page_in *pg = (store_page_in *)d.pages;
    store_passage_in *ps = (store_passage_in *)d.passages;
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    char *t = cn_arena_alloc(a, len + 1);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(t + at, parts[i], l);
        ps[i].text = t + at;
        ps[i].len = l;
        ps[i].off_start = at;
        ps[i].off_end = at + l;
        ps[i].heading = NULL;
        at += l;
        t[at++] = ' ';
    }
    t[at] = 0;
    pg->text = t;
    pg->len = at;
    return d;
}

TEST(store_keyword_search_pages_support_passages)
{
    /* The question's words are split over two passages of one page: the
    ** other document's passage repeats two of them and wins passage against
    ** passage, but the page that holds them all supports its passages and
    ** comes first; its second passage comes after the other page's. */
    const char *path = tmp_file("pages.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 22);
    cn_err e = {0};
    static const char *const pa[] = {
        "The feed pump has an impeller of bronze, checked every year by the plant crew.",
        "A worn gasket is changed with the pump stopped; the gasket kit is in the store room."};
    static const char *const pb[] = {
        "Order a gasket kit early."};
    static const char *const pc[] = {"Fans are cleaned every spring by the crew."};
    static const char *const pd[] = {"Valves are greased in the autumn, before the frost."};
    static const char *const pe[] = {"The cooling tower runs at night in the summer."};
    store_doc_in d1 = page_doc(&a, "/pump.pdf", 601, pa, 2);
    store_doc_in d2 = page_doc(&a, "/kits.pdf", 602, pb, 1);
    store_doc_in d3 = page_doc(&a, "/fans.pdf", 603, pc, 1);
    store_doc_in d4 = page_doc(&a, "/valves.pdf", 604, pd, 1);
    store_doc_in d5 = page_doc(&a, "/tower.pdf", 605, pe, 1);
    store_doc_in *docs[] = {&d1, &d2, &d3, &d4, &d5};
    for (size_t i = 0; i < CN_ARRAY_LEN(docs); i++)
        EXPECT_EQ_INT(store_put_document(s, docs[i], NULL, &e), CN_OK);
    for (int i = 0; i < 10; i++) { /* pages about other things */
        char p[32];
        snprintf(p, sizeof p, "/other%d.pdf", i);
        store_doc_in o = make_doc(&a, p, 610 + (uint64_t)i, 1, 1, NULL, 0);
        EXPECT_EQ_INT(store_put_document(s, &o, NULL, &e), CN_OK);
    }
    EXPECT_EQ_INT(store_check(s, &e), CN_OK); /* the page index too */
    store_hit hits[8];
    int n = 0;
    EXPECT_EQ_INT(store_search_keyword(s, "impeller gasket kit", 8, &a, hits, &n, NULL, &e), 3);
    EXPECT_STR(hits[0].path, "/pump.pdf");
    EXPECT_STR(hits[1].path, "/kits.pdf");
    EXPECT_STR(hits[2].path, "/pump.pdf"); /* the same page's other passage, after */
    /* the same when the title ("doc 601 ...") lifts both of the page's passages */
    EXPECT_EQ_INT(store_search_keyword(s, "impeller gasket kit 601", 8, &a, hits, &n, NULL, &e),
                  3);
    EXPECT_STR(hits[0].path, "/pump.pdf");
    EXPECT_STR(hits[1].path, "/kits.pdf");
    EXPECT_STR(hits[2].path, "/pump.pdf");
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_keyword_search_passage_language)
{
    /* A French page whose passage is a few English words: the page is
    ** guessed French, the passage (too little to tell) is indexed in
    ** English, so queries are stemmed in English too, whatever the
    ** library's pages are. */
    const char *path = tmp_file("passlang.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 20);
    cn_err e = {0};
    const char *fr = "Le programme est lancé et la fenêtre de la configuration s'ouvre dans le "
                     "coin. ";
    char text[512];
    snprintf(text, sizeof text, "%sPrinting pumps.", fr);
    store_doc_in d = text_doc(&a, "/mixed.pdf", 400, text);
    store_passage_in *ps = (store_passage_in *)d.passages;
    ps->off_start = strlen(fr);
    ps->text = d.pages[0].text + ps->off_start;
    ps->len = ps->off_end - ps->off_start;
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages WHERE lang = 'fr'"), 1);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM pages WHERE lang <> 'fr'"), 0);
    store_hit hits[4];
    EXPECT_EQ_INT(store_search_keyword(s, "printed", 4, &a, hits, NULL, NULL, &e), 1);
    EXPECT_EQ_INT(store_search_keyword(s, "pump", 4, &a, hits, NULL, NULL, &e), 1);
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_keyword_search_long_runs)
{
    /* A CJK run longer than the tokenizer's piece (64 characters) keeps
    ** every bigram, across the cut too; a 3000-letter word is cut, not a
    ** failure. */
    const char *path = tmp_file("runs.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 22);
    cn_err e = {0};
    char text[8192];
    size_t len = 0;
    for (int i = 0; i < 63; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "あ");
    len += (size_t)snprintf(text + len, sizeof text - len, "編設定");
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "い");
    len += (size_t)snprintf(text + len, sizeof text - len, "終わり ");
    for (int i = 0; i < 3000 && len < sizeof text - 16; i++)
        text[len++] = "abc"[i % 3];
    len += (size_t)snprintf(text + len, sizeof text - len, " tail");
    store_doc_in d = text_doc(&a, "/long.txt", 500, text);
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    store_hit hits[4];
    static const char *const q[] = {"あ編", "編設", "設定", "定い", "終わり", "tail"};
    for (size_t i = 0; i < CN_ARRAY_LEN(q); i++)
        if (store_search_keyword(s, q[i], 4, &a, hits, NULL, NULL, &e) != 1)
            test_fail_at(__FILE__, __LINE__, "query [%s] did not find the passage (%s)", q[i],
                         e.msg);
    EXPECT_EQ_INT(store_search_keyword(s, "設い", 4, &a, hits, NULL, NULL, &e), 0);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    store_close(s);
    cn_arena_free(&a);
}

TEST(store_guesses_languages)
{
    static const struct { const char *text; int lang; } cases[] = {
        {"The cat is on the table and the dog is in the garden.", STORE_LANG_EN},
        {"Le chat est sur la table et le chien est dans le jardin.", STORE_LANG_FR},
        {"Die Katze ist auf dem Tisch und der Hund ist im Garten.", STORE_LANG_DE},
        {"El gato está en la mesa y el perro está en el jardín con los niños.", STORE_LANG_ES},
        {"Il gatto è sul tavolo e il cane non è nel giardino della casa.", STORE_LANG_IT},
        {"De kat is op de tafel en het is niet de hond van de buren.", STORE_LANG_NL},
        {"Кошка на столе, и собака в саду, что не удивительно.", STORE_LANG_RU},
        {"設定ファイルを編集してから再起動してください。", STORE_LANG_JA},
        {"配置文件位于系统目录中。", STORE_LANG_ZH},
        {"설정 파일을 편집한 후 다시 시작하십시오.", STORE_LANG_KO},
        {"kalo mine ruta", STORE_LANG_EN}, /* no evidence: English */
        {"", STORE_LANG_EN},
        {"\xff\xfe\xc3", STORE_LANG_EN},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(cases); i++) {
        int got = store_guess_lang(cases[i].text, strlen(cases[i].text));
        if (got != cases[i].lang)
            test_fail_at(__FILE__, __LINE__, "[%s]: guessed %s, want %s", cases[i].text,
                         store_lang_code(got), store_lang_code(cases[i].lang));
    }
}

TEST(store_keyword_search)
{
    const char *path = tmp_file("search.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 26);
    cn_err e = {0};
    for (int i = 0; i < 20; i++) {
        char p[32];
        snprintf(p, sizeof p, "/lib/%02d.pdf", i);
        const char *extra = i == 7    ? "The printer must be reset before the toner is replaced."
                            : i == 12 ? "Envoyez votre résumé et la lettre de candidature."
                            : i == 15 ? "Printers print; printing is what a printer does."
                                      : NULL;
        store_doc_in d = make_doc(&a, p, (uint64_t)(100 + i), 5, 3, extra, 4);
        EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    }
    store_hit hits[10];
    int n = 0;
    EXPECT_EQ_INT(store_search_keyword(s, "How do I reset the printer before replacing toner?", 5,
                                       &a, hits, &n, NULL, &e),
                  2); /* all the words in doc 7, "printer" alone in doc 15 */
    EXPECT_EQ_INT(n, 2);
    EXPECT_STR(hits[1].path, "/lib/15.pdf");
    EXPECT_STR(hits[0].path, "/lib/07.pdf");
    EXPECT_EQ_INT(hits[0].page_start, 4);
    EXPECT_EQ_INT(hits[0].page_end, 4);
    EXPECT_STR(hits[0].title, "doc 107 pages=5 passages=15");
    EXPECT_CONTAINS(hits[0].text, "toner");
    EXPECT(hits[0].all_terms);
    EXPECT(hits[0].score > 0);
    for (int i = 1; i < n; i++) {
        EXPECT(hits[i].passage_id != hits[0].passage_id);
        EXPECT(!hits[i].all_terms);
        if (hits[i].all_terms == hits[i - 1].all_terms)
            EXPECT(hits[i].score <= hits[i - 1].score);
    }
    /* Folded accents and case. */
    EXPECT_EQ_INT(store_search_keyword(s, "RESUME candidature", 3, &a, hits, &n, NULL, &e), 1);
    EXPECT_STR(hits[0].path, "/lib/12.pdf");
    EXPECT_EQ_INT(store_search_keyword(s, "résumé", 3, &a, hits, &n, NULL, &e), 1);
    EXPECT_EQ_INT(store_search_keyword(s, "Résumé", 3, &a, hits, &n, NULL, &e), 1);
    /* Inflections (Snowball English): "printed" = "print" = "printing"; "printers" = "printer". */
    EXPECT_EQ_INT(store_search_keyword(s, "printed", 10, &a, hits, &n, NULL, &e), 1);
    EXPECT_STR(hits[0].path, "/lib/15.pdf");
    EXPECT_EQ_INT(store_search_keyword(s, "printers", 10, &a, hits, &n, NULL, &e), 2);
    /* Nothing there. */
    EXPECT_EQ_INT(store_search_keyword(s, "xylophone", 3, &a, hits, &n, NULL, &e), 0);
    EXPECT_EQ_INT(store_search_keyword(s, "", 3, &a, hits, &n, NULL, &e), 0);

    /* Hostile input never errors. */
    static const char *const hostile[] = {
        "\"", "\"\"\"", "AND (", "NEAR(", "NEAR(a b, 3)", "OR", "NOT printer", "*", "print*",
        "text:printer", "{heading text}: toner", "^printer", "a AND OR NOT", "(((", ")", "'",
        "-toner", "+toner", "\xff\xfe printer \xc3", "😀 — «»", "toner\"", "NEAR",
        "\"printer\" OR", "x AND", "..", "a -- b", "%", "\\", "\x01\x02",
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(hostile); i++) {
        e.msg[0] = 0;
        int rc = store_search_keyword(s, hostile[i], 5, &a, hits, &n, NULL, &e);
        if (rc < 0)
            test_fail_at(__FILE__, __LINE__, "query [%s] failed: %s", hostile[i], e.msg);
    }
    EXPECT_EQ_INT(store_search_keyword(s, "NOT printer", 5, &a, hits, &n, NULL, &e), 2);
    EXPECT_EQ_INT(store_search_keyword(s, "\xff\xfe toner \xc3", 5, &a, hits, &n, NULL, &e), 1);
    /* A long query (many words, 10 kB) is cut, not refused. */
    char longq[10000];
    for (size_t i = 0; i < sizeof longq - 1; i++)
        longq[i] = "toner x "[i % 8];
    longq[sizeof longq - 1] = 0;
    EXPECT(store_search_keyword(s, longq, 5, &a, hits, &n, NULL, &e) >= 1);

    /* Fetch by id, as vector search does. */
    int64_t ids[2] = {hits[0].passage_id, 999999};
    store_hit got[2];
    EXPECT_EQ_INT(store_get_passages(s, ids, 2, &a, got, &e), CN_OK);
    EXPECT_EQ_INT(got[0].passage_id, ids[0]);
    EXPECT_STR(got[0].text, hits[0].text);
    EXPECT_EQ_INT(got[1].passage_id, 0);
    EXPECT(got[1].text == NULL);
    store_close(s);
    cn_arena_free(&a);
}

/* ---- embeddings -------------------------------------------------------- */

TEST(store_embeddings_roundtrip)
{
    const char *path = tmp_file("emb.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in d = make_doc(&a, "/e/a.txt", 50, 3, 2, NULL, 0); /* 6 passages */
    store_doc_in d2 = make_doc(&a, "/e/b.txt", 51, 1, 2, NULL, 0); /* 2 passages */
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_put_document(s, &d2, NULL, &e), CN_OK);

    store_passage todo[16];
    int n = store_passages_without_embedding(s, "mini", 0, 16, &a, todo, NULL, &e);
    EXPECT_EQ_INT(n, 8);
    EXPECT_STR(todo[0].heading, "Chapter");
    EXPECT(todo[1].heading == NULL);
    EXPECT_EQ_INT(todo[0].len, d.passages[0].len);
    EXPECT(memcmp(todo[0].text, d.passages[0].text, todo[0].len) == 0);
    for (int i = 1; i < n; i++)
        EXPECT(todo[i].id > todo[i - 1].id);

    enum { DIM = 5 };
    int64_t ids[8];
    float v[8 * DIM];
    for (int i = 0; i < 8; i++) {
        ids[i] = todo[i].id;
        for (int j = 0; j < DIM; j++)
            v[i * DIM + j] = (float)(i + 1) * 0.1f + (float)j * 1.0001f - 2.0f;
    }
    /* First four in F32, the rest in F16, in two calls (the resumable way). */
    EXPECT_EQ_INT(store_put_embeddings(s, "mini", DIM, ids, v, 4, false, &e), 4);
    int64_t done, total;
    EXPECT_EQ_INT(store_embedding_progress(s, "mini", &done, &total, &e), CN_OK);
    EXPECT_EQ_INT(done, 4);
    EXPECT_EQ_INT(total, 8);
    n = store_passages_without_embedding(s, "mini", 0, 16, &a, todo, NULL, &e);
    EXPECT_EQ_INT(n, 4);
    EXPECT_EQ_INT(todo[0].id, ids[4]);
    EXPECT_EQ_INT(store_passages_without_embedding(s, "mini", ids[5], 16, &a, todo, NULL, &e), 2);
    EXPECT_EQ_INT(store_passages_without_embedding(s, "mini", 0, 1, &a, todo, NULL, &e), 1);
    EXPECT_EQ_INT(store_put_embeddings(s, "mini", DIM, ids + 4, v + 4 * DIM, 4, true, &e), 4);
    EXPECT_EQ_INT(store_passages_without_embedding(s, "mini", 0, 16, &a, todo, NULL, &e), 0);
    EXPECT_EQ_INT(store_passages_without_embedding(s, "other", 0, 16, &a, todo, NULL, &e), 8);

    int64_t *lid = NULL;
    float *m = NULL;
    int ln = 0, ldim = 0;
    EXPECT_EQ_INT(store_load_embeddings(s, "mini", &lid, &m, &ln, &ldim, &e), CN_OK);
    EXPECT_EQ_INT(ln, 8);
    EXPECT_EQ_INT(ldim, DIM);
    for (int i = 0; i < ln && m; i++) {
        EXPECT_EQ_INT(lid[i], ids[i]);
        for (int j = 0; j < DIM; j++) {
            float want = v[i * DIM + j];
            if (i < 4)
                EXPECT(m[i * DIM + j] == want); /* F32: every bit */
            else
                EXPECT_NEAR(m[i * DIM + j], cn_fp16_to_fp32(cn_fp32_to_fp16(want)), 0);
        }
    }
    free(lid);
    free(m);
    EXPECT_EQ_INT(store_load_embeddings(s, "unknown", &lid, &m, &ln, &ldim, &e), CN_OK);
    EXPECT_EQ_INT(ln, 0);
    EXPECT(lid == NULL && m == NULL);

    /* Wrong dimension, bad values. */
    EXPECT_EQ_INT(store_put_embeddings(s, "mini", DIM + 1, ids, v, 1, false, &e), CN_EINVAL);
    EXPECT_CONTAINS(e.msg, "dimensions");
    float nan_v[DIM] = {0, NAN, 0, 0, 0};
    EXPECT_EQ_INT(store_put_embeddings(s, "mini", DIM, ids, nan_v, 1, false, &e), CN_EINVAL);
    /* A passage removed meanwhile is skipped, the rest stored. */
    int64_t gone[2] = {ids[0], 987654321};
    EXPECT_EQ_INT(store_put_embeddings(s, "mini", DIM, gone, v, 2, false, &e), 1);

    /* Re-index with the first four passages unchanged: their vectors stay,
    ** the changed ones are dropped, nothing dangles. */
    store_doc_in d3 = d;
    store_passage_in ps[6];
    memcpy(ps, d.passages, sizeof ps);
    ps[4].len -= 1;
    ps[5].heading = "Other";
    d3.passages = ps;
    EXPECT_EQ_INT(store_put_document(s, &d3, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_embedding_progress(s, "mini", &done, &total, &e), CN_OK);
    EXPECT_EQ_INT(done, 4 + 2); /* four carried over + b.txt's two */
    EXPECT_EQ_INT(total, 8);
    n = store_passages_without_embedding(s, "mini", 0, 16, &a, todo, NULL, &e);
    EXPECT_EQ_INT(n, 2);
    EXPECT_EQ_INT(todo[0].len, ps[4].len);
    EXPECT_EQ_INT(store_load_embeddings(s, "mini", &lid, &m, &ln, &ldim, &e), CN_OK);
    EXPECT_EQ_INT(ln, 6);
    bool carried = false; /* the first passage's F32 vector came along */
    for (int i = 0; i < ln && m; i++)
        carried |= memcmp(m + i * DIM, v, sizeof(float) * DIM) == 0;
    EXPECT(carried);
    free(lid);
    free(m);
    EXPECT_EQ_INT(consistency_problems(s), 0);

    /* Removing a document removes its vectors; dropping a model all of its. */
    EXPECT_EQ_INT(store_remove_path(s, "/e/b.txt", &e), CN_OK);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM embeddings"), 4);
    EXPECT_EQ_INT(store_drop_model(s, "mini", &e), CN_OK);
    EXPECT_EQ_INT(q1(s, "SELECT count(*) FROM embeddings"), 0);
    EXPECT_EQ_INT(store_drop_model(s, "mini", &e), CN_ENOTFOUND);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    store_close(s);
    cn_arena_free(&a);
}

/* ---- two processes on one library -------------------------------------- */

TEST(store_two_connections)
{
    const char *path = tmp_file("two.db");
    store *w = open_ok(path), *r = open_ok(path);
    if (!w || !r) {
        store_close(w);
        store_close(r);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_hit hits[4];
    EXPECT_EQ_INT(store_search_keyword(r, "toner", 4, &a, hits, NULL, NULL, &e), 0);
    store_doc_in d = make_doc(&a, "/two/a.txt", 80, 2, 2, "replace the toner", 2);
    EXPECT_EQ_INT(store_put_document(w, &d, NULL, &e), CN_OK);
    /* The reader sees the commit at once (and its cached passage count is
    ** refreshed: "toner" is rare enough for the any-word tier). */
    EXPECT_EQ_INT(store_search_keyword(r, "toner", 4, &a, hits, NULL, NULL, &e), 1);
    EXPECT_EQ_INT(store_search_keyword(r, "toner cartridge", 4, &a, hits, NULL, NULL, &e), 1);

    /* A writer holding the lock: the other waits, then gives a clear error. */
    EXPECT_EQ_INT(store_begin(w, &e), CN_OK);
    sqlite3_busy_timeout(r->db, 200);
    double t0 = cn_now();
    store_doc_in d2 = make_doc(&a, "/two/b.txt", 81, 1, 1, NULL, 0);
    EXPECT_EQ_INT(store_put_document(r, &d2, NULL, &e), CN_EIO);
    EXPECT(cn_now() - t0 >= 0.15);
    EXPECT_CONTAINS(e.msg, "busy");
    /* Readers are not blocked by the writer. */
    EXPECT_EQ_INT(store_search_keyword(r, "toner", 4, &a, hits, NULL, NULL, &e), 1);
    store_rollback(w);
    EXPECT_EQ_INT(store_put_document(r, &d2, NULL, &e), CN_OK);
    EXPECT_EQ_INT(q1(w, "SELECT count(*) FROM documents"), 2);
    store_close(w);
    store_close(r);
    cn_arena_free(&a);
}

/* ---- maintenance ------------------------------------------------------- */

TEST(store_hash_file_blake2b)
{
    const char *p = tmp_file("hash.txt");
    write_file(p, "abc", 3);
    char hex[STORE_HASH_HEX + 1];
    int64_t size = -1;
    cn_err e = {0};
    EXPECT_EQ_INT(store_hash_file(p, hex, &size, &e), CN_OK);
    /* known answers from coreutils: printf abc | b2sum -l 256 (and the empty input) */
    EXPECT_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    EXPECT_EQ_INT(size, 3);
    write_file(p, "", 0);
    EXPECT_EQ_INT(store_hash_file(p, hex, &size, &e), CN_OK);
    EXPECT_STR(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    EXPECT_EQ_INT(size, 0);
    /* Larger than one read buffer. */
    size_t big = 200000;
    char *buf = malloc(big);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)(i * 7);
    write_file(p, buf, big);
    EXPECT_EQ_INT(store_hash_file(p, hex, &size, &e), CN_OK);
    EXPECT_EQ_INT(size, (int64_t)big);
    free(buf);
    EXPECT_EQ_INT(store_hash_file(tmp_file("nope.txt"), hex, &size, &e), CN_ENOTFOUND);
    EXPECT_CONTAINS(e.msg, "nope.txt");
}

TEST(store_check_finds_damage)
{
    const char *path = tmp_file("check.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in d = make_doc(&a, "/c/a.txt", 60, 3, 2, NULL, 0);
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    /* A page lost behind the store's back. */
    EXPECT_EQ_INT(store_exec(s, "DELETE FROM pages WHERE number = 2", &e), CN_OK);
    EXPECT_EQ_INT(store_check(s, &e), CN_EVERIFY);
    EXPECT_CONTAINS(e.msg, "does not have all its pages");
    store_stats st;
    EXPECT_EQ_INT(store_stats_get(s, &st, &e), CN_OK);
    EXPECT_EQ_INT(st.n_pages, 2);
    EXPECT_EQ_INT(st.n_passages, 6);
    EXPECT(st.db_bytes > 0);
    EXPECT_EQ_INT(st.schema_version, STORE_SCHEMA_VERSION);

    /* A passage dropped from the keyword index behind the store's back. */
    store_doc_in d2 = make_doc(&a, "/c/b.txt", 61, 1, 1, NULL, 0);
    EXPECT_EQ_INT(store_remove_path(s, "/c/a.txt", &e), CN_OK);
    EXPECT_EQ_INT(store_put_document(s, &d2, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    EXPECT_EQ_INT(store_exec(s,
                             "INSERT INTO passages_fts(passages_fts, rowid, heading, text)"
                             " SELECT 'delete', id, heading, text FROM passages",
                             &e),
                  CN_OK);
    EXPECT_EQ_INT(store_check(s, &e), CN_EVERIFY);
    EXPECT_CONTAINS(e.msg, "keyword index");
    store_close(s);
    cn_arena_free(&a);
}

static bool file_contains(const char *path, const char *needle)
{
    size_t len = 0;
    char *data = slurp(path, &len);
    bool found = data && memmem(data, len, needle, strlen(needle)) != NULL;
    free(data);
    return found;
}

TEST(store_remove_and_compact_leave_no_trace)
{
    const char *path = tmp_file("purge.db");
    store *s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in keep = make_doc(&a, "/p/keep.txt", 70, 4, 2, NULL, 0);
    store_doc_in secret = make_doc(&a, "/p/secret.txt", 71, 2, 2, "qwertysecretword diagnosis", 1);
    EXPECT_EQ_INT(store_put_document(s, &keep, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_put_document(s, &secret, NULL, &e), CN_OK);
    EXPECT_EQ_INT(store_remove_path(s, "/p/secret.txt", &e), CN_OK);
    EXPECT_EQ_INT(store_compact(s, &e), CN_OK);
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", path);
    EXPECT(!file_contains(path, "qwertysecretword"));
    EXPECT(!file_contains(wal, "qwertysecretword"));
    EXPECT_EQ_INT(consistency_problems(s), 0);
    store_hit hits[2];
    EXPECT_EQ_INT(store_search_keyword(s, "qwertysecretword", 2, &a, hits, NULL, NULL, &e), 0);
    store_close(s);
    EXPECT(!file_contains(path, "qwertysecretword"));
    cn_arena_free(&a);
}

/* ---- crash safety ------------------------------------------------------ */

/* The child: write, replace and remove documents and store embeddings until
** killed. Document i of round r has 2 + i % 7 pages of 4 passages. */
static void crash_writer(const char *path, int round)
{
    store *s = NULL;
    if (store_open(&s, path, NULL) != CN_OK)
        _exit(3);
    cn_arena a;
    cn_arena_init(&a, 1 << 26);
    float vec[16 * 8];
    for (int i = 0; i < 16 * 8; i++)
        vec[i] = (float)i / 7.0f;
    for (int i = 0;; i++) {
        char p[64];
        int target = i % 3 == 2 ? i / 2 : i; /* every third write replaces an earlier one */
        snprintf(p, sizeof p, "/crash/%d-%d.txt", round, target);
        store_doc_in d = make_doc(&a, p, (uint64_t)(round * 1000 + i), 2 + i % 7, 4, NULL, 0);
        if (store_put_document(s, &d, NULL, NULL) != CN_OK)
            _exit(4);
        if (i % 5 == 4) {
            snprintf(p, sizeof p, "/crash/%d-%d.txt", round, i - 3);
            store_remove_path(s, p, NULL); /* may have been removed already */
        }
        if (i % 4 == 3) {
            store_passage todo[16];
            int n = store_passages_without_embedding(s, "m", 0, 16, &a, todo, NULL, NULL);
            int64_t ids[16];
            for (int k = 0; k < n; k++)
                ids[k] = todo[k].id;
            if (n < 0 || store_put_embeddings(s, "m", 8, ids, vec, n, i % 8 == 3, NULL) < 0)
                _exit(5);
        }
        if (i % 8 == 7) {
            cn_arena_free(&a);
            cn_arena_init(&a, 1 << 26);
        }
    }
}

/* Every document present must be whole: the counts its title promises. */
static int64_t partial_documents(store *s)
{
    return q1(s, "SELECT count(*) FROM documents AS d WHERE title NOT LIKE"
                 " printf('%% pages=%d passages=%d', (SELECT count(*) FROM pages WHERE doc_id = d.id),"
                 "  (SELECT count(*) FROM passages WHERE doc_id = d.id))");
}

TEST(store_survives_sigkill)
{
    const char *path = tmp_file("crash.db");
    store *s = open_ok(path);
    if (!s)
        return;
    store_close(s);
    const char *env = getenv("CAIRN_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    uint64_t r = seed;
    int kills = 0, rounds = 24;
    int64_t max_docs = 0;
    double t0 = cn_now();
    for (int round = 0; round < rounds; round++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            test_fail_at(__FILE__, __LINE__, "fork: %s", strerror(errno));
            return;
        }
        if (pid == 0)
            crash_writer(path, round);
        /* From just after start-up to well into the writing. */
        useconds_t delay = 1000 + rng_next(&r) % 90000;
        usleep(delay);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            kills++;
        else
            test_fail_at(__FILE__, __LINE__, "seed %llu round %d: writer exited with %d",
                         (unsigned long long)seed, round, WEXITSTATUS(status));

        s = NULL;
        cn_err e = {0};
        if (store_open(&s, path, &e) != CN_OK) {
            test_fail_at(__FILE__, __LINE__, "seed %llu round %d: reopen: %s",
                         (unsigned long long)seed, round, e.msg);
            return;
        }
        int rc = store_check(s, &e);
        if (rc != CN_OK)
            test_fail_at(__FILE__, __LINE__, "seed %llu round %d (killed after %u us): %s",
                         (unsigned long long)seed, round, (unsigned)delay, e.msg);
        int bad = consistency_problems(s);
        int64_t partial = partial_documents(s);
        if (bad || partial)
            test_fail_at(__FILE__, __LINE__, "seed %llu round %d: %d inconsistencies, %lld partial "
                         "documents", (unsigned long long)seed, round, bad, (long long)partial);
        int64_t n_docs = q1(s, "SELECT count(*) FROM documents");
        max_docs = CN_MAX(max_docs, n_docs);
        store_close(s);
        if (test_failed_now())
            return;
    }
    EXPECT(kills >= 20);
    EXPECT(max_docs > 0);

    /* And the library goes on working. */
    s = open_ok(path);
    if (!s)
        return;
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    cn_err e = {0};
    store_doc_in d = make_doc(&a, "/crash/after.txt", 7, 2, 2, "life goes on", 1);
    EXPECT_EQ_INT(store_put_document(s, &d, NULL, &e), CN_OK);
    store_hit hits[1];
    EXPECT_EQ_INT(store_search_keyword(s, "life goes on", 1, &a, hits, NULL, NULL, &e), 1);
    EXPECT_EQ_INT(store_check(s, &e), CN_OK);
    store_close(s);
    cn_arena_free(&a);
    if (getenv("CAIRN_TEST_VERBOSE"))
        printf("     %d kills in %.1f s, up to %lld documents\n", kills, cn_now() - t0,
               (long long)max_docs);
}

/* Killed while creating the library (schema, migrations) or writing its
** first documents: the next open finishes the job. */
TEST(store_survives_sigkill_while_creating)
{
    uint64_t r = (uint64_t)time(NULL) * 7 + 1;
    for (int round = 0; round < 12; round++) {
        char name[32];
        snprintf(name, sizeof name, "create-%d.db", round);
        const char *path = tmp_file(name);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) { /* never kill(-1, ...) */
            test_fail_at(__FILE__, __LINE__, "fork: %s", strerror(errno));
            return;
        }
        if (pid == 0)
            crash_writer(path, round);
        usleep((useconds_t)(rng_next(&r) % 80000)); /* creation takes 30-60 ms */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        store *s = NULL;
        cn_err e = {0};
        if (store_open(&s, path, &e) != CN_OK) {
            test_fail_at(__FILE__, __LINE__, "round %d: reopen: %s", round, e.msg);
            continue;
        }
        EXPECT_EQ_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
        if (store_check(s, &e) != CN_OK)
            test_fail_at(__FILE__, __LINE__, "round %d: %s", round, e.msg);
        EXPECT_EQ_INT(consistency_problems(s) + partial_documents(s), 0);
        store_close(s);
    }
}
