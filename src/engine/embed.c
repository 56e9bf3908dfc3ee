/*
** embed.c: text in, sentence vectors out. Tokenizes each text (truncating
** to the encoder's context, and saying so), then hands the token sequences
** to the encoder, which packs them into batches.
*/
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

/* Texts are tokenized and encoded this many at a time, so memory stays
** bounded however many texts the caller passes. */
#define EMBED_GROUP 256

int eng_embed_texts(eng_encoder *e, const tok_vocab *v, const char *const *texts,
                    const size_t *lens, int n, float *out, bool *truncated, cn_err *err)
{
    int n_ctx = eng_encoder_n_ctx(e), dim = eng_encoder_dim(e);
    int group = CN_MIN(n, EMBED_GROUP);
    int32_t *buf = cn_malloc((size_t)group * (size_t)n_ctx * sizeof *buf);
    const int32_t **ids = cn_malloc((size_t)group * sizeof *ids);
    int *counts = cn_malloc((size_t)group * sizeof *counts);
    int rc = buf && ids && counts ? CN_OK : cn_fail(err, CN_ENOMEM, "out of memory");
    for (int g0 = 0; g0 < n && rc == CN_OK; g0 += group) {
        int gn = CN_MIN(group, n - g0);
        for (int i = 0; i < gn && rc == CN_OK; i++) {
            int32_t *dst = buf + (size_t)i * n_ctx;
            bool cut = false;
            int c = tok_encode_trunc(v, texts[g0 + i], lens[g0 + i], n_ctx, dst, &cut, err);
            if (c < 0) {
                rc = c;
                break;
            }
            if (c == 0) /* a vocabulary without [CLS]/[SEP]: nothing to embed */
                rc = cn_fail(err, CN_EINVAL, "text %d gives no tokens to embed", g0 + i);
            ids[i] = dst;
            counts[i] = c;
            if (truncated)
                truncated[g0 + i] = cut;
        }
        if (rc == CN_OK)
            rc = eng_encoder_embed(e, ids, counts, gn, out + (size_t)g0 * dim, err);
    }
    free(buf);
    free(ids);
    free(counts);
    return rc;
}

int eng_rerank_pair(const eng_encoder *e, const tok_vocab *v, const char *query, size_t qlen,
                    const char *doc, size_t dlen, int32_t *ids, int32_t *types, bool *truncated,
                    cn_err *err)
{
    int n_ctx = eng_encoder_n_ctx(e), fmt = eng_encoder_pair_format(e);
    int32_t cls = tok_bos(v), sep = tok_sep(v) >= 0 ? tok_sep(v) : tok_eos(v);
    if (cls < 0 || sep < 0)
        return cn_fail(err, CN_EFORMAT, "the vocabulary has no [CLS]/[SEP] tokens to join a "
                       "query and a document");
    int extra = fmt == ENG_PAIR_SEP_SEP ? 4 : 3, avail = n_ctx - extra;
    if (avail < 2)
        return cn_fail(err, CN_EINVAL, "a context of %d tokens is too short for a pair", n_ctx);
    /* both texts are tokenized straight into place, then the document moved
    ** after the query; each call writes at most avail ids but returns the
    ** full count */
    int32_t *q = ids + 1;
    int qn = tok_encode(v, query, qlen, false, false, q, avail, err);
    if (qn < 0)
        return qn;
    int32_t *dtmp = cn_malloc_array((size_t)avail, sizeof *dtmp);
    if (!dtmp)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int dn = tok_encode(v, doc, dlen, false, false, dtmp, avail, err);
    if (dn < 0) {
        free(dtmp);
        return dn;
    }
    int dkeep = CN_MIN(dn, avail - CN_MIN(qn, avail / 2));
    int qkeep = CN_MIN(qn, avail - dkeep);
    if (truncated)
        *truncated = qkeep < qn || dkeep < dn;
    int n = 0;
    ids[n++] = cls;
    n += qkeep;
    ids[n++] = sep;
    if (fmt == ENG_PAIR_SEP_SEP)
        ids[n++] = sep;
    int d0 = n;
    memcpy(ids + n, dtmp, (size_t)dkeep * sizeof *ids);
    n += dkeep;
    ids[n++] = sep;
    free(dtmp);
    /* the document is segment 1 in BERT's layout, if the model has one */
    int32_t doc_type = fmt == ENG_PAIR_BERT && eng_encoder_n_types(e) > 1 ? 1 : 0;
    for (int i = 0; i < n; i++)
        types[i] = i >= d0 ? doc_type : 0;
    return n;
}

int eng_rerank_texts(eng_encoder *e, const tok_vocab *v, const char *query, size_t qlen,
                     const char *const *docs, const size_t *lens, int n, float *scores,
                     bool *truncated, cn_err *err)
{
    int n_ctx = eng_encoder_n_ctx(e);
    int group = CN_MIN(n, EMBED_GROUP);
    int32_t *buf = cn_malloc_array((size_t)group * 2 * (size_t)n_ctx, sizeof *buf);
    const int32_t **ids = cn_malloc_array((size_t)group, sizeof *ids);
    const int32_t **types = cn_malloc_array((size_t)group, sizeof *types);
    int *counts = cn_malloc_array((size_t)group, sizeof *counts);
    int rc = group == 0 || (buf && ids && types && counts) ? CN_OK
                                                           : cn_fail(err, CN_ENOMEM, "out of memory");
    for (int g0 = 0; g0 < n && rc == CN_OK; g0 += group) {
        int gn = CN_MIN(group, n - g0);
        for (int i = 0; i < gn && rc == CN_OK; i++) {
            int32_t *di = buf + (size_t)i * 2 * n_ctx, *ti = di + n_ctx;
            int c = eng_rerank_pair(e, v, query, qlen, docs[g0 + i], lens[g0 + i], di, ti,
                                    truncated ? &truncated[g0 + i] : NULL, err);
            if (c < 0)
                rc = c;
            ids[i] = di;
            types[i] = ti;
            counts[i] = c;
        }
        if (rc == CN_OK)
            rc = eng_encoder_rerank(e, ids, types, counts, gn, scores + g0, err);
    }
    free(buf);
    free(ids);
    free(types);
    free(counts);
    return rc;
}
