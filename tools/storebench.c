/*
** storebench: measure the library store on a synthetic library -- writing
** documents (one transaction each), keyword search latency, storing and
** loading embeddings. Text is pseudo-words drawn from a Zipf distribution
** over a 30 000-word vocabulary, so posting lists look like real text.
**
**   storebench [--pages N] [--pages-per-doc N] [--sync full|normal] [--encrypt]
**              [-o library.db]
** --encrypt: the library encrypted at rest (the vault's VFS, a random key).
**
** Prints one line per measurement. Not a test: numbers depend on the disk.
*/
#include "store/store.h"
#include "vault/vault.h"
#include <sodium.h>
#include "store/store_int.h"
#include "search/search.h"

#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VOCAB 30000
#define PASSAGES_PER_PAGE 3
#define DIM 384

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static char *words[VOCAB];
static double cdf[VOCAB];

static void make_vocab(void)
{
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "bel", "cor",
                                "dan", "fis", "gur", "hon", "jex", "pol", "qua", "sen", "tri", "wem"};
    double sum = 0;
    for (int i = 0; i < VOCAB; i++) {
        char w[32];
        size_t len = 0;
        int n = 2 + (int)(next_u32() % 3);
        for (int k = 0; k < n; k++)
            len += (size_t)snprintf(w + len, sizeof w - len, "%s", syl[next_u32() % 20]);
        words[i] = strdup(w);
        sum += 1.0 / (i + 1); /* Zipf, s = 1 */
        cdf[i] = sum;
    }
    for (int i = 0; i < VOCAB; i++)
        cdf[i] /= sum;
}

static const char *zipf_word(void)
{
    double u = (next_u32() + 0.5) / 4294967296.0;
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return words[lo];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A random direction: what a normalised embedding looks like to the search. */
static void random_unit(float *v, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++) {
        v[i] = (float)((int)(next_u32() % 2001) - 1000) / 1000.0f;
        ss += (double)v[i] * v[i];
    }
    float inv = (float)(1.0 / sqrt(ss + 1e-30));
    for (int i = 0; i < n; i++)
        v[i] *= inv;
}

static void percentiles(const char *what, double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i];
    printf("%-34s p50 %7.3f ms  p99 %7.3f ms  mean %7.3f ms  (%d queries)\n", what,
           1e3 * t[n / 2], 1e3 * t[(int)(n * 0.99)], 1e3 * sum / n, n);
}

int main(int argc, char **argv)
{
    int n_pages = 10000, per_doc = 50;
    const char *sync = "full", *path = "/tmp/storebench.db";
    static const struct option longs[] = {{"pages", required_argument, NULL, 'p'},
                                          {"pages-per-doc", required_argument, NULL, 'd'},
                                          {"sync", required_argument, NULL, 's'},
                                          {"encrypt", no_argument, NULL, 'e'}, {0}};
    bool encrypt = false;
    int c;
    while ((c = getopt_long(argc, argv, "o:", longs, NULL)) != -1) {
        switch (c) {
        case 'p': n_pages = atoi(optarg); break;
        case 'd': per_doc = atoi(optarg); break;
        case 's': sync = optarg; break;
        case 'o': path = optarg; break;
        case 'e': encrypt = true; break;
        default:
            fprintf(stderr, "usage: storebench [--pages N] [--pages-per-doc N] "
                            "[--sync full|normal] [--encrypt] [-o library.db]\n");
            return 2;
        }
    }
    if (n_pages < 1 || per_doc < 1)
        return 2;
    char side[4096];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);

    make_vocab();
    store *s;
    cn_err err = {0};
    if (encrypt) {
        vault_key *k = NULL;
        unsigned char id[VAULT_ID_BYTES];
        if (vault_init(&err) != CN_OK || !(k = sodium_malloc(sizeof *k))) {
            fprintf(stderr, "storebench: %s\n", err.msg);
            return 1;
        }
        randombytes_buf(k->k, sizeof k->k);
        randombytes_buf(id, sizeof id);
        if (vault_vfs_attach(path, k, id, &err) != CN_OK) {
            fprintf(stderr, "storebench: %s\n", err.msg);
            return 1;
        }
        sodium_free(k);
    }
    if (store_open_enc(&s, path, encrypt, &err) != CN_OK) {
        fprintf(stderr, "storebench: %s\n", err.msg);
        return 1;
    }
    if (!strcmp(sync, "normal") && store_exec(s, "PRAGMA synchronous = NORMAL", &err) != CN_OK) {
        fprintf(stderr, "storebench: %s\n", err.msg);
        return 1;
    }
    if (getenv("CACHE")) { char q[64]; snprintf(q, sizeof q, "PRAGMA cache_size = %s", getenv("CACHE")); store_exec(s, q, NULL); }
    int n_docs = (n_pages + per_doc - 1) / per_doc;
    printf("library: %d pages in %d documents, %d passages per page, synchronous=%s, %s%s\n",
           n_pages, n_docs, PASSAGES_PER_PAGE, sync, encrypt ? "encrypted, " : "", path);

    /* ---- documents ---- */
    store_page_in *pages = calloc((size_t)per_doc, sizeof *pages);
    store_passage_in *ps = calloc((size_t)per_doc * PASSAGES_PER_PAGE, sizeof *ps);
    char *text = malloc((size_t)per_doc * 4096);
    double t_put = 0, bytes = 0;
    int64_t n_passages = 0;
    for (int d = 0; d < n_docs; d++) {
        int np = CN_MIN(per_doc, n_pages - d * per_doc);
        size_t off = 0;
        for (int p = 0; p < np; p++) {
            char *t = text + off;
            size_t len = 0;
            while (len < 2000) {
                len += (size_t)sprintf(t + len, "%s", zipf_word());
                t[len++] = next_u32() % 14 == 0 ? '.' : ' ';
            }
            pages[p] = (store_page_in){.number = p + 1, .text = t, .len = len};
            for (int q = 0; q < PASSAGES_PER_PAGE; q++) {
                size_t a = len * (size_t)q / PASSAGES_PER_PAGE;
                size_t b = len * (size_t)(q + 1) / PASSAGES_PER_PAGE;
                ps[p * PASSAGES_PER_PAGE + q] = (store_passage_in){
                    .page_start = p + 1, .page_end = p + 1, .off_start = a, .off_end = b,
                    .text = t + a, .len = b - a, .heading = "Section"};
            }
            off += len;
            bytes += (double)len;
        }
        char p_name[64], hash[STORE_HASH_HEX + 1];
        snprintf(p_name, sizeof p_name, "/bench/doc-%05d.pdf", d);
        for (int i = 0; i < STORE_HASH_HEX; i++)
            hash[i] = "0123456789abcdef"[next_u32() & 15];
        hash[STORE_HASH_HEX] = 0;
        store_doc_in doc = {.path = p_name, .hash = hash, .size = (int64_t)off, .kind = "pdf",
                            .title = p_name, .pages = pages, .n_pages = np, .passages = ps,
                            .n_passages = np * PASSAGES_PER_PAGE};
        double t0 = cn_now();
        if (store_put_document(s, &doc, NULL, &err) != CN_OK) {
            fprintf(stderr, "storebench: %s\n", err.msg);
            return 1;
        }
        t_put += cn_now() - t0;
        n_passages += doc.n_passages;
    }
    printf("%-34s %8.1f docs/s  %8.0f pages/s  %8.0f passages/s  %6.1f MB/s of page text\n",
           "store_put_document", n_docs / t_put, n_pages / t_put, n_passages / t_put,
           bytes / t_put / 1e6);

    /* ---- keyword search ---- */
    enum { NQ = 300 };
    static double lat[NQ];
    cn_arena a;
    store_hit hits[10];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < NQ; i++) {
            char q[256];
            size_t len = 0;
            if (pass == 0) {
                /* A question about one passage: four of its words among stop words. */
                int64_t id = 1 + (int64_t)(next_u32() % (uint32_t)n_passages);
                store_hit h;
                cn_arena_init(&a, 1 << 20);
                store_get_passages(s, &id, 1, &a, &h, NULL);
                len += (size_t)snprintf(q, sizeof q, "what is the");
                for (int w = 0; w < 4 && h.text; w++) {
                    size_t at = next_u32() % h.len;
                    while (at > 0 && h.text[at - 1] != ' ' && h.text[at - 1] != '.')
                        at--;
                    size_t end = at;
                    while (end < h.len && h.text[end] != ' ' && h.text[end] != '.')
                        end++;
                    len += (size_t)snprintf(q + len, sizeof q - len, " %.*s", (int)(end - at),
                                            h.text + at);
                }
                cn_arena_free(&a);
            } else {
                /* Words that need not co-occur: the OR tier does the work. */
                for (int w = 0; w < 5; w++)
                    len += (size_t)snprintf(q + len, sizeof q - len, "%s ", zipf_word());
            }
            cn_arena_init(&a, 1 << 22);
            double t0 = cn_now();
            int n = store_search_keyword(s, q, 10, &a, hits, NULL, NULL, &err);
            lat[i] = cn_now() - t0;
            cn_arena_free(&a);
            if (n < 0) {
                fprintf(stderr, "storebench: %s\n", err.msg);
                return 1;
            }
        }
        percentiles(pass == 0 ? "keyword search, k=10 (AND hits)" : "keyword search, k=10 (5 words, OR)",
                    lat, NQ);
    }

    /* ---- embeddings ---- */
    enum { BATCH = 64 };
    store_passage todo[BATCH];
    int64_t ids[BATCH];
    float *vec = malloc(sizeof *vec * BATCH * DIM);
    double t_find = 0, t_emb = 0;
    int64_t after = 0, n_emb = 0;
    for (;;) {
        cn_arena_init(&a, 1 << 24);
        double t0 = cn_now();
        int n = store_passages_without_embedding(s, "bench-model", after, BATCH, &a, todo, NULL, &err);
        t_find += cn_now() - t0;
        if (n <= 0) {
            cn_arena_free(&a);
            break;
        }
        for (int i = 0; i < n; i++)
            ids[i] = todo[i].id;
        after = ids[n - 1];
        for (int i = 0; i < n; i++)
            random_unit(vec + (size_t)i * DIM, DIM);
        t0 = cn_now();
        if (store_put_embeddings(s, "bench-model", DIM, ids, vec, n, true, &err) < 0) {
            fprintf(stderr, "storebench: %s\n", err.msg);
            return 1;
        }
        t_emb += cn_now() - t0;
        n_emb += n;
        cn_arena_free(&a);
    }
    printf("%-34s %8.0f vectors/s (%d-d F16, batches of %d; finding them: %.0f/s)\n",
           "store_put_embeddings", n_emb / t_emb, DIM, BATCH, n_emb / t_find);
    int64_t *lid;
    float *m;
    int ln, ldim;
    double t0 = cn_now();
    if (store_load_embeddings(s, "bench-model", &lid, &m, &ln, &ldim, &err) != CN_OK) {
        fprintf(stderr, "storebench: %s\n", err.msg);
        return 1;
    }
    printf("%-34s %8.3f s for %d x %d (%.0f MB as F32)\n", "store_load_embeddings", cn_now() - t0,
           ln, ldim, (double)ln * ldim * 4 / 1e6);
    free(lid);
    free(m);
    /* as the first query after start-up sees it: SQLite's cache empty, every
    ** page read (and, encrypted, decrypted) again */
    store_close(s);
    if (store_open_enc(&s, path, encrypt, &err) != CN_OK) {
        fprintf(stderr, "storebench: %s\n", err.msg);
        return 1;
    }
    t0 = cn_now();
    if (store_load_embeddings(s, "bench-model", &lid, &m, &ln, &ldim, &err) != CN_OK) {
        fprintf(stderr, "storebench: %s\n", err.msg);
        return 1;
    }
    printf("%-34s %8.3f s for %d x %d (%.0f MB as F32)\n", "store_load_embeddings (reopened)",
           cn_now() - t0, ln, ldim, (double)ln * ldim * 4 / 1e6);

    /* ---- vector and hybrid search, as lib_search does them: 4k candidates
    ** from each list, fused by RRF (k = 60), then the winners' passages.
    ** (Embedding the query is the model's cost, measured by bench/embed.sh.) */
    enum { POOL = 40, K = 10 };
    search_hit vh[POOL], kh[POOL], fused[POOL];
    store_hit kw[POOL], got[K];
    float qv[DIM];
    for (int i = 0; i < NQ; i++) {
        random_unit(qv, DIM);
        double t1 = cn_now();
        search_vector(m, ln, ldim, lid, qv, POOL, vh);
        lat[i] = cn_now() - t1;
    }
    percentiles("vector search, k=10 (exact)", lat, NQ);
    for (int i = 0; i < NQ; i++) {
        char q[256];
        size_t len = 0;
        for (int w = 0; w < 5; w++)
            len += (size_t)snprintf(q + len, sizeof q - len, "%s ", zipf_word());
        random_unit(qv, DIM);
        cn_arena_init(&a, 1 << 22);
        double t1 = cn_now();
        int nk = 0;
        if (store_search_keyword(s, q, POOL, &a, kw, &nk, NULL, &err) < 0) {
            fprintf(stderr, "storebench: %s\n", err.msg);
            return 1;
        }
        for (int j = 0; j < nk; j++)
            kh[j] = (search_hit){kw[j].passage_id, (float)kw[j].score};
        int nv = search_vector(m, ln, ldim, lid, qv, POOL, vh);
        int nf = search_fuse_rrf(kh, nk, vh, nv, 60, K, fused);
        int64_t fid[K];
        for (int j = 0; j < nf; j++)
            fid[j] = fused[j].id;
        store_get_passages(s, fid, nf, &a, got, NULL);
        lat[i] = cn_now() - t1;
        cn_arena_free(&a);
    }
    percentiles("hybrid search, k=10 (kw+vec+RRF)", lat, NQ);
    free(lid);
    free(m);

    /* ---- re-index and remove ---- */
    t0 = cn_now();
    int n_rm = CN_MIN(20, n_docs);
    for (int d = 0; d < n_rm; d++) {
        char p_name[64];
        snprintf(p_name, sizeof p_name, "/bench/doc-%05d.pdf", d);
        if (store_remove_path(s, p_name, &err) != CN_OK) {
            fprintf(stderr, "storebench: %s\n", err.msg);
            return 1;
        }
    }
    printf("%-34s %8.1f ms per document of %d pages (with its vectors)\n", "store_remove_path",
           1e3 * (cn_now() - t0) / n_rm, per_doc);
    t0 = cn_now();
    if (store_check(s, &err) != CN_OK) {
        fprintf(stderr, "storebench: %s\n", err.msg);
        return 1;
    }
    printf("%-34s %8.3f s\n", "store_check", cn_now() - t0);
    store_stats st;
    store_stats_get(s, &st, &err);
    printf("%-34s %8.1f MB (+ %.1f MB WAL) for %lld pages, %lld passages, %lld vectors\n",
           "library.db", st.db_bytes / 1e6, st.wal_bytes / 1e6, (long long)st.n_pages,
           (long long)st.n_passages, (long long)st.n_embeddings);
    store_close(s);
    free(vec);
    free(pages);
    free(ps);
    free(text);
    for (int i = 0; i < VOCAB; i++)
        free(words[i]);
    return 0;
}
