/*
** summary.c: the store's side of `cairn summarize`: partial summaries kept
** under their place in the map-reduce tree (store.h), each committed as it
** is made, so that a run killed at any moment loses at most the one in
** progress.
*/
#include "store/store_int.h"

#include <string.h>
#include <time.h>

static int prep(store *s, const char *sql, const store_sum_key *k, sqlite3_stmt **st, cn_err *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, "preparing a summary query", err);
    if (k) {
        sqlite3_bind_int64(*st, 1, k->doc_id);
        sqlite3_bind_text(*st, 2, k->doc_hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(*st, 3, k->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(*st, 4, k->length, -1, SQLITE_STATIC);
        sqlite3_bind_int(*st, 5, k->level);
        sqlite3_bind_int(*st, 6, k->part);
    }
    return CN_OK;
}

int store_summary_get(store *s, const store_sum_key *k, cn_arena *a, const char **body,
                      cn_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT body FROM summaries WHERE doc_id = ?1 AND doc_hash = ?2 AND model = ?3"
                  " AND length = ?4 AND level = ?5 AND part = ?6",
                  k, &st, err);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    bool oom = false;
    if (src == SQLITE_ROW)
        *body = store_col_str(st, 0, a, NULL, &oom);
    else if (src == SQLITE_DONE)
        rc = CN_ENOTFOUND;
    else
        rc = store_fail(s, src, "reading a partial summary", err);
    sqlite3_finalize(st);
    if (!rc && oom)
        rc = cn_fail(err, CN_ENOMEM, "%s: reading a partial summary: arena full", s->path);
    return rc;
}

int store_summary_put(store *s, const store_sum_key *k, const char *body, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(s,
                  "INSERT OR REPLACE INTO summaries (doc_id, doc_hash, model, length, level, part,"
                  " body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                  k, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 7, body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)time(NULL));
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? CN_OK : store_fail(s, src, "storing a partial summary", err);
}

int store_summary_forget(store *s, int64_t doc_id, const char *keep_hash, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(s, "DELETE FROM summaries WHERE doc_id = ?1 AND doc_hash <> ?2", NULL, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_text(st, 2, keep_hash, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? CN_OK : store_fail(s, src, "forgetting old summaries", err);
}
