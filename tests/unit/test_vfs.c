/*
** test_vfs.c: the encrypting SQLite VFS (issue 15). A database written
** through it holds none of its text in the main file or the WAL; it reads
** back whole with its key and not at all with another; a flipped bit in any
** page or in a committed WAL frame is an error naming the file and the page,
** never other data; a crash leaves a WAL that recovers; temporary files
** never reach the disk.
*/
#include "test.h"
#include "vault/vault.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char test_id[VAULT_ID_BYTES] = "0123456789abcdef";

static vault_key *key_of_byte(unsigned char b)
{
    if (sodium_init() < 0)
        return NULL;
    vault_key *k = sodium_malloc(sizeof *k);
    memset(k->k, b, sizeof k->k);
    return k;
}

static sqlite3 *open_enc(const char *path, const vault_key *k)
{
    cn_err err = {0};
    if (vault_vfs_attach(path, k, test_id, &err) != CN_OK) {
        fprintf(stderr, "attach: %s\n", err.msg);
        return NULL;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VAULT_VFS_NAME) !=
        SQLITE_OK) {
        sqlite3_close(db);
        vault_vfs_detach(path);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    int n = VAULT_VFS_RESERVE;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA temp_store=MEMORY; PRAGMA synchronous=FULL",
                 NULL, NULL, NULL);
    return db;
}

static void close_enc(sqlite3 *db, const char *path)
{
    sqlite3_close(db);
    vault_vfs_detach(path);
}

/* Row i's text: distinctive words, long enough that some rows overflow. */
static void row_text(int i, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "quartz%05dmarker ", i);
    while (n + 40 < cap && n < (size_t)(200 + (i % 7) * 900))
        n += (size_t)snprintf(out + n, cap - n, "lorem%05d ipsum ", i);
}

static int fill(sqlite3 *db, int from, int to)
{
    char sql[64], txt[8192];
    sqlite3_stmt *st;
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body TEXT);"
                     "CREATE VIRTUAL TABLE IF NOT EXISTS f USING fts5(body);",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "  fill: %s (%s)\n", sqlite3_errmsg(db),
                vault_vfs_last_error() ? vault_vfs_last_error() : "");
        return -1;
    }
    (void)sql;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(db, "INSERT INTO t(id, body) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "  fill: insert: %s\n", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_stmt *ft;
    sqlite3_prepare_v2(db, "INSERT INTO f(rowid, body) VALUES (?, ?)", -1, &ft, NULL);
    int rc = 0;
    for (int i = from; i < to && !rc; i++) {
        row_text(i, txt, sizeof txt);
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_text(st, 2, txt, -1, SQLITE_STATIC);
        sqlite3_bind_int(ft, 1, i);
        sqlite3_bind_text(ft, 2, txt, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE || sqlite3_step(ft) != SQLITE_DONE) {
            fprintf(stderr, "  fill: row %d: %s (%s)\n", i, sqlite3_errmsg(db),
                    vault_vfs_last_error() ? vault_vfs_last_error() : "");
            rc = -1;
        }
        sqlite3_reset(st);
        sqlite3_reset(ft);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(ft);
    if (sqlite3_exec(db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "  fill: commit: %s (%s)\n", sqlite3_errmsg(db),
                vault_vfs_last_error() ? vault_vfs_last_error() : "");
        rc = -1;
    }
    return rc;
}

/* Every row present and whole: 0; a mismatch -1; an SQLite error its code. */
static int verify(sqlite3 *db, int n)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT id, body FROM t ORDER BY id", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    char txt[8192];
    int i = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row_text(i, txt, sizeof txt);
        if (sqlite3_column_int(st, 0) != i || strcmp((const char *)sqlite3_column_text(st, 1), txt))
            rc = -1;
        if (rc == -1)
            break;
        i++;
    }
    sqlite3_finalize(st);
    if (rc == -1)
        return -1;
    if (rc != SQLITE_DONE)
        return rc;
    if (i != n)
        return -2;
    rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM f WHERE f MATCH 'quartz00007marker'", -1, &st,
                            NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    int hits = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    if (hits != (n > 7))
        return -3;
    rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    bool ok = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    return ok ? 0 : rc == SQLITE_ROW ? -4 : rc;
}

static size_t read_all(const char *path, unsigned char **out)
{
    char *d = NULL;
    size_t n = 0;
    if (cn_read_file(path, (size_t)1 << 30, &d, &n, NULL) != CN_OK)
        d = NULL, n = 0;
    *out = (unsigned char *)d;
    return n;
}

static int count_hits(const char *path, const char *needle)
{
    unsigned char *b;
    size_t n = read_all(path, &b), m = strlen(needle);
    int hits = 0;
    for (size_t i = 0; i + m <= n; i++)
        hits += !memcmp(b + i, needle, m);
    free(b);
    return hits;
}

static void copy_file(const char *from, const char *to)
{
    unsigned char *b;
    size_t n = read_all(from, &b);
    FILE *f = fopen(to, "wb");
    if (f) {
        if (n)
            fwrite(b, 1, n, f);
        fclose(f);
    }
    free(b);
}

static void flip_bit(const char *path, long off, int bit)
{
    int fd = open(path, O_RDWR);
    unsigned char c;
    if (pread(fd, &c, 1, off) == 1) {
        c ^= (unsigned char)(1u << bit);
        (void)!pwrite(fd, &c, 1, off);
    }
    close(fd);
}

TEST(vfs_encrypted_database_holds_no_plaintext_and_reads_back)
{
    char path[600], wal[620];
    snprintf(path, sizeof path, "%s/vfs-enc.db", test_tmpdir());
    snprintf(wal, sizeof wal, "%s-wal", path);
    vault_key *k = key_of_byte(7);
    sqlite3 *db = open_enc(path, k);
    EXPECT(db != NULL);
    EXPECT_EQ_INT(sqlite3_exec(db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL), SQLITE_OK);
    EXPECT_EQ_INT(fill(db, 0, 600), 0);
    EXPECT_EQ_INT(verify(db, 600), 0);
    /* with the text in the WAL only (no checkpoint yet): neither file has it */
    struct stat st;
    EXPECT(stat(wal, &st) == 0 && st.st_size > 100000);
    EXPECT_EQ_INT(count_hits(wal, "quartz00042marker"), 0);
    EXPECT_EQ_INT(count_hits(wal, "lorem00042"), 0);
    EXPECT_EQ_INT(count_hits(wal, "ipsum"), 0);
    EXPECT_EQ_INT(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
    EXPECT_EQ_INT(fill(db, 600, 1200), 0);
    /* a big sort and an index build go through temporary files */
    EXPECT_EQ_INT(sqlite3_exec(db, "CREATE INDEX tb ON t(body); SELECT body FROM t ORDER BY "
                                   "substr(body, 9) DESC",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    close_enc(db, path);
    EXPECT(stat(wal, &st) != 0); /* checkpointed and removed at close */
    EXPECT_EQ_INT(count_hits(path, "quartz"), 0);
    EXPECT_EQ_INT(count_hits(path, "ipsum"), 0);
    EXPECT_EQ_INT(count_hits(path, "lorem0"), 0);
    EXPECT_EQ_INT(count_hits(path, "CREATE TABLE"), 0); /* the schema too */
    EXPECT_EQ_INT(count_hits(path, "SQLite format 3"), 1);
    EXPECT_EQ_INT(count_hits(path, VAULT_VFS_MARK), 1);

    db = open_enc(path, k);
    EXPECT_EQ_INT(verify(db, 1200), 0);
    close_enc(db, path);

    /* another key: refused, naming the file and the page */
    vault_key *other = key_of_byte(8);
    db = open_enc(path, other);
    vault_vfs_clear_error();
    EXPECT(verify(db, 1200) == SQLITE_IOERR_DATA);
    EXPECT(vault_vfs_last_error() != NULL);
    if (vault_vfs_last_error()) {
        EXPECT_CONTAINS(vault_vfs_last_error(), "enc.db: page 1 fails authentication");
    }
    close_enc(db, path);
    /* the default VFS sees no database in it */
    EXPECT_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    EXPECT(sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL) != SQLITE_OK);
    sqlite3_close(db);
    sodium_free(other);
    sodium_free(k);
}

TEST(vfs_flipped_bit_in_any_page_is_an_error_naming_the_file)
{
    char path[600], work[620];
    snprintf(path, sizeof path, "%s/vfs-flip.db", test_tmpdir());
    snprintf(work, sizeof work, "%s/vfs-flipw.db", test_tmpdir());
    vault_key *k = key_of_byte(3);
    sqlite3 *db = open_enc(path, k);
    EXPECT_EQ_INT(fill(db, 0, 300), 0);
    close_enc(db, path);
    struct stat st;
    EXPECT(stat(path, &st) == 0);
    long pages = st.st_size / 4096;
    EXPECT(pages > 20);
    int errors = 0, tries = 0;
    for (long pg = 0; pg < pages; pg++) {
        /* one spot in the readable header, the rest anywhere in the page */
        long off = pg * 4096 + (pg == 0 ? 28 : (long)(randombytes_uniform(4096)));
        copy_file(path, work);
        flip_bit(work, off, (int)randombytes_uniform(8));
        db = open_enc(work, k);
        vault_vfs_clear_error();
        int rc = db ? verify(db, 300) : SQLITE_CANTOPEN;
        tries++;
        /* a freed page is never read: it may not show; nothing may differ */
        /* -4: integrity_check reported the page it could not read */
        if (rc < 0 && rc != -4)
            test_fail_at(__FILE__, __LINE__, "page %ld: a flipped bit gave wrong data (%d)", pg + 1, rc);
        if (rc != 0) {
            errors++;
            const char *e = vault_vfs_last_error();
            if (!e || !strstr(e, "flipw.db"))
                test_fail_at(__FILE__, __LINE__, "page %ld: error %d without a message naming "
                             "the file", pg + 1, rc);
        }
        if (db)
            close_enc(db, work);
    }
    /* every page of this database is in use */
    EXPECT_EQ_INT(errors, tries);
    sodium_free(k);
}

TEST(vfs_wal_recovers_after_a_crash_and_rejects_damaged_frames)
{
    char path[600], wal[620], snap[620], snapwal[640];
    snprintf(path, sizeof path, "%s/vfs-crash.db", test_tmpdir());
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(snap, sizeof snap, "%s/vfs-snap.db", test_tmpdir());
    snprintf(snapwal, sizeof snapwal, "%s-wal", snap);
    vault_key *k = key_of_byte(9);
    sqlite3 *db = open_enc(path, k);
    EXPECT_EQ_INT(sqlite3_exec(db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL), SQLITE_OK);
    EXPECT_EQ_INT(fill(db, 0, 100), 0);
    EXPECT_EQ_INT(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
    EXPECT_EQ_INT(fill(db, 100, 200), 0);
    EXPECT_EQ_INT(fill(db, 200, 300), 0);
    /* the files as a kill -9 would leave them: committed frames in the WAL */
    copy_file(path, snap);
    copy_file(wal, snapwal);
    close_enc(db, path);

    struct stat st;
    EXPECT(stat(snapwal, &st) == 0 && st.st_size > 8 * 4120);
    char work[620], workwal[640];
    snprintf(work, sizeof work, "%s/vfs-crashw.db", test_tmpdir());
    snprintf(workwal, sizeof workwal, "%s-wal", work);
    copy_file(snap, work);
    copy_file(snapwal, workwal);
    db = open_enc(work, k);
    EXPECT_EQ_INT(verify(db, 300), 0);
    close_enc(db, work);

    /* a torn last frame (its page never written): the last transaction is
    ** dropped, as after a crash mid-commit, and the rest reads whole */
    copy_file(snap, work);
    copy_file(snapwal, workwal);
    long frames = (st.st_size - 32) / 4120;
    int fd = open(workwal, O_RDWR);
    unsigned char zero[4096] = {0};
    EXPECT_EQ_INT((int)pwrite(fd, zero, sizeof zero, 32 + (frames - 1) * 4120 + 24), 4096);
    close(fd);
    db = open_enc(work, k);
    EXPECT_EQ_INT(verify(db, 200), 0);
    close_enc(db, work);

    /* a flipped bit in a frame that a commit follows: an error, never a
    ** silently shorter library */
    for (long fr = 0; fr < frames - 1; fr += 3) {
        copy_file(snap, work);
        copy_file(snapwal, workwal);
        flip_bit(workwal, 32 + fr * 4120 + 24 + (long)randombytes_uniform(4096),
                 (int)randombytes_uniform(8));
        db = open_enc(work, k);
        vault_vfs_clear_error();
        int rc = db ? verify(db, 300) : SQLITE_CANTOPEN;
        if (rc == 0 || rc == -1)
            test_fail_at(__FILE__, __LINE__, "frame %ld: a flipped bit went unnoticed (%d)", fr + 1,
                         rc);
        const char *e = vault_vfs_last_error();
        if (!e || !strstr(e, "crashw.db-wal"))
            test_fail_at(__FILE__, __LINE__, "frame %ld: no message naming the WAL", fr + 1);
        if (db)
            close_enc(db, work);
    }
    /* the same for a frame's readable header (commit size, salts, checksum):
    ** SQLite would end the WAL there in silence */
    for (long fr = 1; fr < frames - 1; fr += 4) {
        copy_file(snap, work);
        copy_file(snapwal, workwal);
        flip_bit(workwal, 32 + fr * 4120 + 4 + (long)randombytes_uniform(20),
                 (int)randombytes_uniform(8));
        db = open_enc(work, k);
        vault_vfs_clear_error();
        int rc = db ? verify(db, 300) : SQLITE_CANTOPEN;
        if (rc == 0 || rc == -1)
            test_fail_at(__FILE__, __LINE__, "frame %ld's header: a flipped bit went unnoticed "
                         "(%d)", fr + 1, rc);
        const char *e = vault_vfs_last_error();
        if (!e || !strstr(e, "crashw.db-wal"))
            test_fail_at(__FILE__, __LINE__, "frame %ld's header: no message naming the WAL",
                         fr + 1);
        if (db)
            close_enc(db, work);
    }
    sodium_free(k);
}

TEST(vfs_temporary_files_stay_in_memory)
{
    char path[600], tmp[600];
    snprintf(path, sizeof path, "%s/vfs-temp.db", test_tmpdir());
    snprintf(tmp, sizeof tmp, "%s/vfs-sqlite-tmp", test_tmpdir());
    EXPECT_EQ_INT(mkdir(tmp, 0700), 0);
    char *saved = sqlite3_temp_directory;
    sqlite3_temp_directory = sqlite3_mprintf("%s", tmp);
    vault_key *k = key_of_byte(5);
    sqlite3 *db = open_enc(path, k);
    /* temp_store=FILE would put these on disk through any other VFS */
    EXPECT_EQ_INT(sqlite3_exec(db, "PRAGMA temp_store=FILE; PRAGMA cache_size=8", NULL, NULL, NULL),
                  SQLITE_OK);
    vault_vfs_clear_error();
    EXPECT_EQ_INT(fill(db, 0, 400), 0);
    EXPECT_EQ_INT(sqlite3_exec(db,
                               "CREATE TEMP TABLE x AS SELECT * FROM t; "
                               "SELECT body FROM x ORDER BY substr(body, 7) DESC; "
                               "CREATE INDEX tb ON t(substr(body, 5)); VACUUM;",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    if (vault_vfs_last_error())
        fprintf(stderr, "  %s\n", vault_vfs_last_error());
    EXPECT_EQ_INT(verify(db, 400), 0);
    /* SQLite unlinks its temporary files as it opens them: look for open
    ** descriptors into the folder instead (the temp table's file stays open) */
    int files = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) {
        char link[300], to[700];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, to, sizeof to - 1);
        if (n > 0) {
            to[n] = 0;
            files += strncmp(to, tmp, strlen(tmp)) == 0;
        }
    }
    if (d)
        closedir(d);
    EXPECT_EQ_INT(files, 0);
    close_enc(db, path);
    sqlite3_free(sqlite3_temp_directory);
    sqlite3_temp_directory = saved;
    EXPECT_EQ_INT(count_hits(path, "quartz"), 0);
    sodium_free(k);
}
