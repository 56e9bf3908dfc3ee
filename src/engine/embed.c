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
