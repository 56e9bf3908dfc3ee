/*
** watch.c: the folders `cairn watch` follows, one row each (schema v8).
*/
#include "store/store_int.h"

#include <string.h>
#include <time.h>

int store_watch_add(store *s, const char *path, cn_err *err)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, "INSERT INTO watched (path, added_at) VALUES (?1, ?2)",
                                 -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "adding a watched folder", err);
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src == SQLITE_CONSTRAINT)
        return cn_fail(err, CN_EINVAL, "%s: watched already", path);
    return src == SQLITE_DONE ? CN_OK : store_fail(s, src, "adding a watched folder", err);
}

int store_watch_remove(store *s, const char *path, cn_err *err)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, "DELETE FROM watched WHERE path = ?1", -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "removing a watched folder", err);
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return store_fail(s, src, "removing a watched folder", err);
    return sqlite3_changes(s->db) ? CN_OK : cn_fail(err, CN_ENOTFOUND, "%s: not watched", path);
}

int store_watch_list(store *s, int (*fn)(void *ctx, const char *path, int64_t added_at),
                     void *ctx, cn_err *err)
{
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, "SELECT path, added_at FROM watched ORDER BY added_at, path",
                                 -1, &st, NULL);
    if (src != SQLITE_OK)
        return store_fail(s, src, "listing watched folders", err);
    int n = 0, rc = CN_OK;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0);
        if (fn && (rc = fn(ctx, p ? p : "", sqlite3_column_int64(st, 1))) != 0)
            break;
        n++;
    }
    if (rc == CN_OK && src != SQLITE_DONE)
        rc = store_fail(s, src, "listing watched folders", err);
    sqlite3_finalize(st);
    return rc ? rc : n;
}
