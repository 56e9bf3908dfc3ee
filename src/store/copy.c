/*
** copy.c: a whole library copied into a new file, encrypted or not: what
** `cairn encrypt` and `cairn decrypt` write beside the library before they
** swap it in (see store.h, store_copy); and the file state of a document
** whose stored copy they sealed or unsealed (store_set_file_state).
**
** SQLite's VACUUM INTO writes the copy page by page through whichever VFS
** the target's URI names, so the copy never exists in the other form. The
** source is held in EXCLUSIVE locking mode meanwhile: no other process may
** have the library open, so nothing it writes is lost with the old file.
*/
#include "store/store_int.h"
#include "vault/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "file:/a%20b?vfs=NAME": the path percent-encoded where a URI needs it. */
static char *uri_of(const char *path, const char *vfs)
{
    size_t n = strlen(path);
    char *u = malloc(3 * n + strlen(vfs) + 16);
    if (!u)
        return NULL;
    char *o = u + sprintf(u, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p == '%' || *p == '?' || *p == '#' || *p <= ' ' || *p >= 0x7f)
            o += sprintf(o, "%%%02X", *p);
        else
            *o++ = (char)*p;
    sprintf(o, "?vfs=%s", vfs);
    return u;
}

static int exec1(store *s, const char *sql, cn_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    return rc == SQLITE_OK ? CN_OK : store_fail(s, rc, sql, err);
}

/* Count the rows of every table of a, and compare with b. */
static int same_counts(store *a, store *b, cn_err *err)
{
    sqlite3_stmt *t;
    int rc = sqlite3_prepare_v2(a->db,
                                "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT "
                                "LIKE 'CREATE VIRTUAL%' ORDER BY name",
                                -1, &t, NULL);
    if (rc != SQLITE_OK)
        return store_fail(a, rc, "listing the tables", err);
    int r = CN_OK;
    while (r == CN_OK && (rc = sqlite3_step(t)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(t, 0);
        char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
        int64_t n[2] = {-1, -2};
        store *side[2] = {a, b};
        for (int i = 0; i < 2 && r == CN_OK; i++) {
            sqlite3_stmt *c;
            int crc = sqlite3_prepare_v2(side[i]->db, sql, -1, &c, NULL);
            if (crc == SQLITE_OK && (crc = sqlite3_step(c)) == SQLITE_ROW)
                n[i] = sqlite3_column_int64(c, 0);
            else
                r = store_fail(side[i], crc, "counting rows", err);
            sqlite3_finalize(c);
        }
        if (r == CN_OK && n[0] != n[1])
            r = cn_fail(err, CN_EVERIFY, "%s: the copy has %lld rows in %s, the library %lld",
                        b->path, (long long)n[1], name, (long long)n[0]);
        sqlite3_free(sql);
    }
    if (r == CN_OK && rc != SQLITE_DONE)
        r = store_fail(a, rc, "listing the tables", err);
    sqlite3_finalize(t);
    return r;
}

static int quick_check(store *s, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, "checking the copy", err);
    rc = sqlite3_step(st);
    int r = CN_OK;
    if (rc != SQLITE_ROW)
        r = store_fail(s, rc, "checking the copy", err);
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
        r = cn_fail(err, CN_EVERIFY, "%s: the copy fails its check: %s", s->path,
                    (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (r == CN_OK)
        r = exec1(s, "INSERT INTO passages_fts(passages_fts) VALUES ('integrity-check')", err);
    return r;
}

/* Overwrite a file's contents with zeros (best effort: see store.h). */
int store_wipe_fd(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    static const unsigned char zero[1 << 16];
    for (off_t off = 0; off < st.st_size;) {
        size_t n = (size_t)CN_MIN((off_t)sizeof zero, st.st_size - off);
        ssize_t w = pwrite(fd, zero, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += w;
    }
    return fsync(fd);
}

int store_copy(const char *src, bool src_enc, const char *dst, bool dst_enc, cn_err *err)
{
    struct stat st;
    if (stat(dst, &st) == 0)
        return cn_fail(err, CN_EINVAL, "%s: exists already; move it away first", dst);
    store *a = NULL, *b = NULL;
    int rc = store_open_enc(&a, src, src_enc, err);
    if (rc != CN_OK)
        return rc;
    char *uri = uri_of(dst, dst_enc ? VAULT_VFS_NAME : "unix");
    if (!uri)
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
    /* alone with the library, and everything of the WAL in the main file */
    if (rc == CN_OK)
        rc = exec1(a, "PRAGMA locking_mode = EXCLUSIVE", err);
    if (rc == CN_OK) {
        sqlite3_busy_timeout(a->db, 2000);
        rc = exec1(a, "BEGIN IMMEDIATE; COMMIT", err);
        if (rc != CN_OK)
            rc = cn_fail(err, CN_EIO,
                         "%s: another process has the library open (stop `cairn serve` and any "
                         "other cairn command first)",
                         src);
    }
    if (rc == CN_OK)
        rc = exec1(a, "PRAGMA wal_checkpoint(FULL)", err);
    if (rc == CN_OK) {
        /* the copy keeps room for each page's nonce and tag */
        int reserve = dst_enc ? VAULT_VFS_RESERVE : 0;
        sqlite3_file_control(a->db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
        sqlite3_stmt *v;
        int src_rc = sqlite3_prepare_v2(a->db, "VACUUM INTO ?1", -1, &v, NULL);
        if (src_rc == SQLITE_OK) {
            sqlite3_bind_text(v, 1, uri, -1, SQLITE_STATIC);
            src_rc = sqlite3_step(v);
            sqlite3_finalize(v);
        }
        if (src_rc != SQLITE_DONE && src_rc != SQLITE_OK)
            rc = store_fail(a, src_rc, "writing the copy", err);
    }
    free(uri);
    /* the copy: switched to WAL like any library, checked, and compared */
    if (rc == CN_OK)
        rc = store_open_enc(&b, dst, dst_enc, err);
    if (rc == CN_OK)
        rc = quick_check(b, err);
    if (rc == CN_OK)
        rc = same_counts(a, b, err);
    store_close(b);
    if (rc == CN_OK && !src_enc) {
        /* every page of the plaintext WAL is in the main file since the
        ** checkpoint: overwrite them before SQLite removes the file at close
        ** (which reads nothing more from it) */
        char wal[4200];
        snprintf(wal, sizeof wal, "%s-wal", src);
        int fd = open(wal, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)store_wipe_fd(fd);
            close(fd);
        }
    }
    store_close(a);
    if (rc != CN_OK) {
        char side[4200];
        unlink(dst);
        snprintf(side, sizeof side, "%s-wal", dst);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", dst);
        unlink(side);
    }
    return rc;
}

int store_set_file_state(store *s, const char *path, const char *hash, int64_t size,
                         int64_t mtime_ns, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                "UPDATE documents SET hash = ?1, size = ?2, mtime_ns = ?3 "
                                "WHERE path = ?4",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, "updating a file's state", err);
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    sqlite3_bind_text(st, 4, path, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return store_fail(s, rc, "updating a file's state", err);
    return sqlite3_changes(s->db) ? CN_OK : cn_fail(err, CN_ENOTFOUND, "%s: not in the library", path);
}
