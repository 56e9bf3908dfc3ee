/*
** ocr.c: the store's side of OCR (see store.h): which pages wait for it,
** and each page's text and passages written when it is read, one
** transaction per page, so that an OCR run killed at any moment loses at
** most the pages in flight and the next run takes up the rest.
*/
#include "store/store_int.h"

#include <string.h>

static int prep(store *s, const char *sql, sqlite3_stmt **st, cn_err *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK)
        return store_fail(s, rc, "preparing an OCR query", err);
    return CN_OK;
}

int store_ocr_pending(store *s, int limit, cn_arena *a, store_ocr_page *out, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT d.id, d.path, d.hash, d.size, d.mtime_ns, p.number FROM pages AS p"
                  " JOIN documents AS d ON d.id = p.doc_id WHERE p.ocr = 'pending'"
                  " ORDER BY d.id, p.number LIMIT ?1",
                  &st, err);
    if (rc != CN_OK)
        return rc;
    sqlite3_bind_int(st, 1, limit);
    int n = 0, src = SQLITE_DONE;
    bool oom = false;
    while (n < limit && !oom && (src = sqlite3_step(st)) == SQLITE_ROW) {
        store_ocr_page *p = &out[n++];
        p->doc_id = sqlite3_column_int64(st, 0);
        p->path = store_col_str(st, 1, a, NULL, &oom);
        p->hash = store_col_str(st, 2, a, NULL, &oom);
        p->size = sqlite3_column_int64(st, 3);
        p->mtime_ns = sqlite3_column_int64(st, 4);
        p->number = sqlite3_column_int(st, 5);
    }
    if (!oom && n < limit && src != SQLITE_DONE)
        rc = store_fail(s, src, "listing pages to OCR", err);
    sqlite3_finalize(st);
    if (oom)
        return cn_fail(err, CN_ENOMEM, "%s: listing pages to OCR: out of memory", s->path);
    return rc == CN_OK ? n : rc;
}

static int exec_bound(store *s, sqlite3_stmt *st, const char *what, cn_err *err)
{
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? CN_OK : store_fail(s, src, what, err);
}

int store_ocr_put(store *s, int64_t doc_id, int number, const char *text, size_t len, float conf,
                  const store_passage_in *ps, int n, cn_err *err)
{
    if (cn_utf8_valid_prefix(text, len) != len)
        return cn_fail(err, CN_EINVAL, "%s: OCR text is not valid UTF-8", s->path);
    int rc = store_begin(s, err);
    if (rc != CN_OK)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = prep(s,
              "UPDATE pages SET text = ?3, lang = cairn_lang(?3), ocr = 'done', ocr_conf = ?4"
              " WHERE doc_id = ?1 AND number = ?2 AND ocr = 'pending'",
              &st, err);
    if (rc == CN_OK) {
        sqlite3_bind_int64(st, 1, doc_id);
        sqlite3_bind_int(st, 2, number);
        sqlite3_bind_text(st, 3, len ? text : "", (int)len, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 4, conf);
        rc = exec_bound(s, st, "storing an OCR'd page", err);
    }
    if (rc == CN_OK && sqlite3_changes(s->db) == 0)
        rc = cn_fail(err, CN_ENOTFOUND, "%s: page %d of document %lld is no longer waiting for OCR",
                     s->path, number, (long long)doc_id);
    for (int i = 0; rc == CN_OK && i < n; i++) {
        const store_passage_in *p = &ps[i];
        if (p->page_start != number || p->page_end != number || !p->len ||
            cn_utf8_valid_prefix(p->text, p->len) != p->len) {
            rc = cn_fail(err, CN_EINVAL, "%s: OCR passage %d is not on page %d", s->path, i,
                         number);
            break;
        }
        rc = prep(s,
                  "INSERT INTO passages (doc_id, page_start, page_end, off_start, off_end,"
                  " heading, text, ocr_conf) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)",
                  &st, err);
        if (rc != CN_OK)
            break;
        sqlite3_bind_int64(st, 1, doc_id);
        sqlite3_bind_int(st, 2, number);
        sqlite3_bind_int64(st, 3, (int64_t)p->off_start);
        sqlite3_bind_int64(st, 4, (int64_t)p->off_end);
        if (p->heading && p->heading[0])
            sqlite3_bind_text(st, 5, p->heading, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, 5);
        sqlite3_bind_text(st, 6, p->text, (int)p->len, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 7, conf);
        rc = exec_bound(s, st, "adding an OCR passage", err);
    }
    if (rc == CN_OK && n > 0) {
        rc = prep(s, "UPDATE documents SET n_passages = n_passages + ?2 WHERE id = ?1", &st, err);
        if (rc == CN_OK) {
            sqlite3_bind_int64(st, 1, doc_id);
            sqlite3_bind_int(st, 2, n);
            rc = exec_bound(s, st, "counting OCR passages", err);
        }
    }
    if (rc == CN_OK)
        rc = store_commit(s, err);
    if (rc != CN_OK)
        store_rollback(s);
    return rc;
}

int store_ocr_fail(store *s, int64_t doc_id, int number, const char *why, cn_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(s,
                  "UPDATE pages SET ocr = 'failed', ocr_error = ?3"
                  " WHERE doc_id = ?1 AND number = ?2 AND ocr = 'pending'",
                  &st, err);
    if (rc != CN_OK)
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_int(st, 2, number);
    size_t wl = cn_utf8_valid_prefix(why, strlen(why));
    sqlite3_bind_text(st, 3, why, (int)wl, SQLITE_TRANSIENT);
    return exec_bound(s, st, "marking a page's OCR as failed", err);
}

int store_ocr_count(store *s, int64_t doc_id, store_ocr_counts *c, cn_err *err)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st;
    int rc = prep(s,
                  "SELECT ocr, count(*), sum(ocr_conf < ?2) FROM pages"
                  " WHERE ocr IS NOT NULL AND (?1 = 0 OR doc_id = ?1) GROUP BY ocr",
                  &st, err);
    if (rc != CN_OK)
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_double(st, 2, STORE_OCR_LOW_CONF);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        if (k && strcmp(k, "pending") == 0)
            c->pending = n;
        else if (k && strcmp(k, "done") == 0) {
            c->done = n;
            c->low = sqlite3_column_int64(st, 2);
        } else if (k && strcmp(k, "failed") == 0)
            c->failed = n;
    }
    if (src != SQLITE_DONE)
        rc = store_fail(s, src, "counting OCR pages", err);
    sqlite3_finalize(st);
    return rc;
}
