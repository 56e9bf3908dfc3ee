/*
** embed.c: passage embeddings per model -- writing batches, finding the
** passages still to embed (the resumable phase of `cairn add`), and loading
** a model's vectors as one contiguous matrix for vector search.
**
** A vector is a BLOB of dim little-endian values, F16 (IEEE half) or F32,
** whichever the writer chose; the format is stored per row and loading
** always yields F32.
*/
#include "store/store_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DIM 65536

static void put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void pack(unsigned char *out, const float *v, int dim, bool f16)
{
    for (int i = 0; i < dim; i++) {
        if (f16)
            put_le16(out + 2 * i, cn_fp32_to_fp16(v[i]));
        else {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            put_le32(out + 4 * i, u);
        }
    }
}

static void unpack(float *out, const unsigned char *p, int dim, int format)
{
    for (int i = 0; i < dim; i++) {
        if (format == 16)
            out[i] = cn_fp16_to_fp32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        else {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&out[i], &u, 4);
        }
    }
}

/* Model id and dim for name: CN_OK, CN_ENOTFOUND (no message) or an error. */
static int model_lookup(store *s, const char *model, int64_t *id, int *dim, cn_err *err)
{
    sqlite3_stmt *st = store_stmt(s, Q_MODEL_GET, err);
    if (!st)
        return err ? err->code : CN_EIO;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    int src = sqlite3_step(st), rc = CN_OK;
    if (src == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *dim = sqlite3_column_int(st, 1);
    } else if (src == SQLITE_DONE)
        rc = CN_ENOTFOUND;
    else
        rc = store_fail(s, src, "looking up the embedding model", err);
    sqlite3_reset(st);
    return rc;
}

/* Inside a write transaction: the model's id, registering it on first use. */
static int model_get_or_add(store *s, const char *model, int dim, int64_t *id, cn_err *err)
{
    int have = 0;
    int rc = model_lookup(s, model, id, &have, err);
    if (rc == CN_OK && have != dim)
        return cn_fail(err, CN_EINVAL,
                       "%s: embedding model %s has %d dimensions in the library, not %d", s->path,
                       model, have, dim);
    if (rc != CN_ENOTFOUND)
        return rc;
    sqlite3_stmt *st = store_stmt(s, Q_MODEL_INSERT, err);
    if (!st)
        return err ? err->code : CN_EIO;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, dim);
    sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return store_fail(s, src, "registering the embedding model", err);
    *id = sqlite3_last_insert_rowid(s->db);
    return CN_OK;
}

int store_put_embeddings(store *s, const char *model, int dim, const int64_t *passage_ids,
                         const float *vecs, int n, bool f16, cn_err *err)
{
    if (!model || !*model)
        return cn_fail(err, CN_EINVAL, "%s: embeddings without a model name", s->path);
    if (dim < 1 || dim > MAX_DIM)
        return cn_fail(err, CN_EINVAL, "%s: embedding dimension %d out of range", s->path, dim);
    if (n < 0 || (n > 0 && (!passage_ids || !vecs)))
        return cn_fail(err, CN_EINVAL, "%s: bad embedding batch", s->path);
    for (size_t i = 0; i < (size_t)n * (size_t)dim; i++)
        if (!isfinite(vecs[i]))
            return cn_fail(err, CN_EINVAL, "%s: embedding of passage %lld holds %f", s->path,
                           (long long)passage_ids[i / (size_t)dim], (double)vecs[i]);
    if (n == 0)
        return 0;

    size_t bytes = (size_t)dim * (f16 ? 2 : 4);
    unsigned char *blob = cn_malloc(bytes);
    if (!blob)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", s->path);
    int64_t model_id = 0;
    int stored = 0;
    int rc = store_begin(s, err);
    if (rc == CN_OK)
        rc = model_get_or_add(s, model, dim, &model_id, err);
    for (int i = 0; rc == CN_OK && i < n; i++) {
        sqlite3_stmt *st = store_stmt(s, Q_EMBEDDING_PUT, err);
        if (!st) {
            rc = err ? err->code : CN_EIO;
            break;
        }
        pack(blob, vecs + (size_t)i * (size_t)dim, dim, f16);
        sqlite3_bind_int64(st, 1, passage_ids[i]);
        sqlite3_bind_int64(st, 2, model_id);
        sqlite3_bind_int(st, 3, f16 ? 16 : 32);
        sqlite3_bind_blob64(st, 4, blob, bytes, SQLITE_STATIC);
        int src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            rc = store_fail(s, src, "storing embeddings", err);
        else
            stored += sqlite3_changes(s->db); /* 0: the passage was removed meanwhile */
    }
    if (rc == CN_OK)
        rc = store_commit(s, err);
    if (rc != CN_OK)
        store_rollback(s);
    free(blob);
    return rc == CN_OK ? stored : rc;
}

int store_passages_without_embedding(store *s, const char *model, int64_t after_id, int limit,
                                     cn_arena *a, store_passage *out, int *n, cn_err *err)
{
    if (n)
        *n = 0;
    if (limit <= 0)
        return 0;
    int64_t model_id = -1; /* an unknown model has no vectors: every passage is listed */
    int dim = 0;
    int rc = model_lookup(s, model ? model : "", &model_id, &dim, err);
    if (rc != CN_OK && rc != CN_ENOTFOUND)
        return rc;
    sqlite3_stmt *st = store_stmt(s, Q_WITHOUT_EMBEDDING, err);
    if (!st)
        return err ? err->code : CN_EIO;
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int(st, 3, limit);
    int got = 0, src = SQLITE_DONE;
    bool oom = false;
    while (!oom && got < limit && (src = sqlite3_step(st)) == SQLITE_ROW) {
        store_passage *p = &out[got];
        p->id = sqlite3_column_int64(st, 0);
        p->heading = store_col_str(st, 1, a, NULL, &oom);
        p->text = store_col_str(st, 2, a, &p->len, &oom);
        if (!oom)
            got++;
    }
    sqlite3_reset(st);
    if (oom)
        return cn_fail(err, CN_ENOMEM, "%s: passages to embed: arena full", s->path);
    if (got < limit && src != SQLITE_DONE)
        return store_fail(s, src, "finding passages to embed", err);
    if (n)
        *n = got;
    return got;
}

int store_load_embeddings(store *s, const char *model, int64_t **ids_out, float **matrix_out,
                          int *n_out, int *dim_out, cn_err *err)
{
    *ids_out = NULL;
    *matrix_out = NULL;
    *n_out = *dim_out = 0;
    /* One read transaction: the count and the rows come from one snapshot,
    ** whatever another process writes meanwhile. */
    int rc = store_exec(s, "BEGIN", err);
    if (rc != CN_OK)
        return rc;
    int64_t model_id = 0, count = 0;
    int dim = 0;
    int64_t *ids = NULL;
    float *m = NULL;
    sqlite3_stmt *st = NULL;
    rc = model_lookup(s, model ? model : "", &model_id, &dim, err);
    if (rc == CN_ENOTFOUND) {
        rc = CN_OK;
        goto out;
    }
    if (rc != CN_OK)
        goto out;
    int src = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM embeddings WHERE model_id = ?1", -1,
                                 &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, model_id);
        src = sqlite3_step(st);
        count = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (src != SQLITE_ROW) {
        rc = store_fail(s, src, "counting embeddings", err);
        goto out;
    }
    if (count > INT32_MAX) {
        rc = cn_fail(err, CN_ELIMIT, "%s: %lld embeddings are more than one matrix holds", s->path,
                     (long long)count);
        goto out;
    }
    if (count == 0)
        goto out;
    ids = cn_malloc((size_t)count * sizeof *ids);
    m = cn_realloc_array(NULL, (size_t)count, (size_t)dim * sizeof *m);
    if (!ids || !m) {
        rc = cn_fail(err, CN_ENOMEM, "%s: out of memory for %lld x %d embeddings", s->path,
                     (long long)count, dim);
        goto out;
    }
    src = sqlite3_prepare_v2(s->db,
                             "SELECT passage_id, format, vector FROM embeddings"
                             " WHERE model_id = ?1 ORDER BY passage_id",
                             -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = store_fail(s, src, "loading embeddings", err);
        goto out;
    }
    sqlite3_bind_int64(st, 1, model_id);
    int64_t i = 0;
    while (rc == CN_OK && i < count && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int format = sqlite3_column_int(st, 1);
        const unsigned char *blob = sqlite3_column_blob(st, 2);
        int64_t bytes = sqlite3_column_bytes(st, 2);
        ids[i] = sqlite3_column_int64(st, 0);
        if ((format != 16 && format != 32) || !blob || bytes != (int64_t)dim * format / 8)
            rc = cn_fail(err, CN_EFORMAT,
                         "%s: embedding of passage %lld for %s is damaged (format %d, %lld bytes "
                         "for %d dimensions)",
                         s->path, (long long)ids[i], model, format, (long long)bytes, dim);
        else
            unpack(m + (size_t)i * (size_t)dim, blob, dim, format);
        i++;
    }
    if (rc == CN_OK && src != SQLITE_ROW && src != SQLITE_DONE)
        rc = store_fail(s, src, "loading embeddings", err);
    count = i;
out:
    sqlite3_finalize(st);
    store_exec(s, "COMMIT", NULL);
    if (rc != CN_OK || count == 0) {
        free(ids);
        free(m);
        return rc;
    }
    *ids_out = ids;
    *matrix_out = m;
    *n_out = (int)count;
    *dim_out = dim;
    return CN_OK;
}

int store_embedding_progress(store *s, const char *model, int64_t *done, int64_t *total,
                             cn_err *err)
{
    *done = *total = 0;
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db,
                                 "SELECT (SELECT count(*) FROM embeddings AS e JOIN models AS m"
                                 " ON m.id = e.model_id WHERE m.name = ?1),"
                                 " (SELECT count(*) FROM passages)",
                                 -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, model ? model : "", -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *done = sqlite3_column_int64(st, 0);
            *total = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    return src == SQLITE_ROW ? CN_OK : store_fail(s, src, "counting embeddings", err);
}

int store_drop_model(store *s, const char *model, cn_err *err)
{
    int rc = store_begin(s, err);
    if (rc != CN_OK)
        return rc;
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(s->db, "DELETE FROM models WHERE name = ?1", -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, model ? model : "", -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        rc = store_fail(s, src, "removing an embedding model", err);
    else if (sqlite3_changes(s->db) == 0)
        rc = cn_fail(err, CN_ENOTFOUND, "%s: no embedding model %s", s->path, model ? model : "");
    if (rc == CN_OK)
        rc = store_commit(s, err);
    if (rc != CN_OK)
        store_rollback(s);
    return rc;
}
