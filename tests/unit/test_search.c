/* Vector ranking and reciprocal rank fusion. */
#include "test.h"
#include "search/search.h"

TEST(search_vector_exact_topk)
{
    enum { N = 1000, D = 24 };
    static float m[N * D];
    int64_t ids[N];
    float q[D] = {0};
    uint32_t x = 1;
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int d = 0; d < D; d++) {
            x = x * 1664525u + 1013904223u;
            m[i * D + d] = (float)((x >> 8) / 16777216.0 - 0.5);
            ss += m[i * D + d] * m[i * D + d];
        }
        for (int d = 0; d < D; d++)
            m[i * D + d] /= (float)sqrt(ss);
        ids[i] = 1000 + i;
    }
    memcpy(q, &m[417 * D], sizeof q); /* the query is row 417 itself */
    search_hit h[10];
    int n = search_vector(m, N, D, ids, q, 10, h);
    EXPECT_EQ_INT(n, 10);
    EXPECT_EQ_INT(h[0].id, 1417);
    EXPECT_NEAR(h[0].score, 1.0, 1e-5);
    /* best first, and equal to a brute-force ranking */
    for (int i = 1; i < n; i++)
        EXPECT(h[i - 1].score >= h[i].score);
    int better = 0;
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int d = 0; d < D; d++)
            s += (double)m[i * D + d] * q[d];
        better += s > h[9].score + 1e-6;
    }
    EXPECT_EQ_INT(better, 9);
    EXPECT_EQ_INT(search_vector(m, 3, D, ids, q, 10, h), 3);
    EXPECT_EQ_INT(search_vector(m, 0, D, ids, q, 10, h), 0);
}

TEST(search_rrf_fuses_rankings)
{
    search_hit kw[3] = {{1, 9}, {2, 8}, {3, 7}};
    search_hit vec[3] = {{3, 0.9f}, {4, 0.8f}, {1, 0.7f}};
    search_hit out[4];
    int n = search_fuse_rrf(kw, 3, vec, 3, 60, 4, out);
    EXPECT_EQ_INT(n, 4);
    /* 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tie, lower id first); 2: 1/62; 4: 1/62 */
    EXPECT_EQ_INT(out[0].id, 1);
    EXPECT_EQ_INT(out[1].id, 3);
    EXPECT_EQ_INT(out[2].id, 2);
    EXPECT_EQ_INT(out[3].id, 4);
    EXPECT_NEAR(out[0].score, 1.0 / 61 + 1.0 / 63, 1e-7);
    EXPECT_EQ_INT(search_fuse_rrf(kw, 3, NULL, 0, 60, 2, out), 2);
    EXPECT_EQ_INT(out[0].id, 1);
}
