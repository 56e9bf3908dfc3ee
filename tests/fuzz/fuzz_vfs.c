/*
** fuzz_vfs.c: libFuzzer target for the encrypting VFS (src/vault/vfs.c). A
** small encrypted database and a WAL holding two committed transactions
** after it are made once per process; each input is a list of mutations
** (6 bytes each: which file, a 32-bit offset, a byte to XOR there) applied
** to copies of them, which are then opened and read through the VFS. These
** must hold, whatever the bytes:
**   - no crash, no sanitizer report, no hang;
**   - every query either fails cleanly or returns exactly the rows written:
**     all of them, or the rows of a prefix of the transactions (SQLite drops
**     the WAL from a damaged frame header on, as after a crash mid-commit);
**     never a row that differs.
**
** Built with -DCAIRN_LIBFUZZER by `make fuzz` (build/fuzz/fuzz_vfs). In the
** plain test build the same file becomes the test fuzz_vfs_corpus, which
** replays tests/fuzz/corpus/vfs/.
*/
#include "vault/vault.h"
#include "fuzz_replay.h"

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CAIRN_LIBFUZZER
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#else
#define FUZZ_ENTRY fuzz_vfs_one
int fuzz_vfs_one(const uint8_t *data, size_t size);
#endif

/* rows [0, N0) checkpointed, [N0, N1) and [N1, N2) in the WAL */
enum { N0 = 40, N1 = 60, N2 = 80 };

static char dir[256], work[400], work_wal[420];
static unsigned char *img[2];
static size_t img_len[2];
static vault_key *key;
static const unsigned char id[VAULT_ID_BYTES] = "fuzz-vfs-id-0001";

static void row_text(int i, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "row %d:", i);
    /* some rows long enough for overflow pages */
    while (n + 24 < cap && n < (size_t)(60 + (i % 5) * 700))
        n += (size_t)snprintf(out + n, cap - n, " w%d-%zu", i, n);
}

static int insert(sqlite3 *db, int from, int to)
{
    char txt[4096];
    sqlite3_stmt *st;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
        return -1;
    for (int i = from; i < to; i++) {
        row_text(i, txt, sizeof txt);
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_text(st, 2, txt, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            return -1;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static size_t slurp(const char *path, unsigned char **out)
{
    char *d;
    size_t n;
    if (cn_read_file(path, (size_t)64 << 20, &d, &n, NULL) != CN_OK)
        abort();
    *out = (unsigned char *)d;
    return n;
}

static sqlite3 *open_work(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(work, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VAULT_VFS_NAME) !=
        SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    int n = VAULT_VFS_RESERVE;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n);
    return db;
}

static void setup(void)
{
    if (img[0])
        return;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cairn-fuzz-vfs-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir) || sodium_init() < 0)
        abort();
    snprintf(work, sizeof work, "%s/work.db", dir);
    snprintf(work_wal, sizeof work_wal, "%s/work.db-wal", dir);
    key = sodium_malloc(sizeof *key);
    randombytes_buf(key->k, sizeof key->k);
    cn_err err = {0};
    if (vault_vfs_attach(work, key, id, &err) != CN_OK)
        abort();
    sqlite3 *db = open_work();
    if (!db ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                     "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT);",
                     NULL, NULL, NULL) != SQLITE_OK ||
        insert(db, 0, N0) || sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
                                          NULL) != SQLITE_OK ||
        insert(db, N0, N1) || insert(db, N1, N2)) {
        fprintf(stderr, "fuzz_vfs: %s %d (%s)\n", db ? sqlite3_errmsg(db) : "open", db ? sqlite3_extended_errcode(db) : 0,
                vault_vfs_last_error() ? vault_vfs_last_error() : "");
        abort();
    }
    /* the files as a crash would leave them */
    img_len[0] = slurp(work, &img[0]);
    img_len[1] = slurp(work_wal, &img[1]);
    sqlite3_close(db);
}

static void put(const char *path, const unsigned char *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, b, n) != (ssize_t)n)
        abort();
    close(fd);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    setup();
    unsigned char *f[2] = {malloc(img_len[0]), malloc(img_len[1])};
    memcpy(f[0], img[0], img_len[0]);
    memcpy(f[1], img[1], img_len[1]);
    for (size_t i = 0; i + 6 <= size && i < 6 * 64; i += 6) {
        int which = data[i] & 1;
        uint32_t off = (uint32_t)data[i + 1] | (uint32_t)data[i + 2] << 8 |
                       (uint32_t)data[i + 3] << 16 | (uint32_t)data[i + 4] << 24;
        f[which][off % img_len[which]] ^= data[i + 5] ? data[i + 5] : 1;
    }
    char side[440];
    snprintf(side, sizeof side, "%s-shm", work);
    unlink(side);
    put(work, f[0], img_len[0]);
    put(work_wal, f[1], img_len[1]);
    free(f[0]);
    free(f[1]);

    sqlite3 *db = open_work();
    if (!db)
        return 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT id, body FROM t ORDER BY id", -1, &st, NULL) == SQLITE_OK) {
        char want[4096];
        int n = 0, rc;
        bool differs = false;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            row_text(n, want, sizeof want);
            const char *got = (const char *)sqlite3_column_text(st, 1);
            if (sqlite3_column_int(st, 0) != n || !got || strcmp(got, want) != 0)
                differs = true;
            n++;
        }
        CHECK(!differs, "fuzz_vfs: a row read back differs from the one written");
        if (rc == SQLITE_DONE)
            CHECK(n == N0 || n == N1 || n == N2, "fuzz_vfs: %d rows, not a whole transaction", n);
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "PRAGMA integrity_check", NULL, NULL, NULL);
    sqlite3_close(db);
    vault_vfs_clear_error();
    return 0;
}

#ifndef CAIRN_LIBFUZZER
TEST(fuzz_vfs_corpus)
{
    int n = fuzz_replay_dir("tests/fuzz/corpus/vfs", fuzz_vfs_one);
    if (n < 0)
        SKIP("tests/fuzz/corpus/vfs not found");
    printf("     replayed %d corpus files\n", n);
    EXPECT(n > 0);
}
#endif
