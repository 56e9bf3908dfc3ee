/*
** fuzz_query.c: libFuzzer target for keyword search. The input (up to its
** first NUL) is a user's query, run against a small library made once per
** process in a temporary directory. These must hold:
**   - the search never fails (no FTS5 syntax error, whatever the bytes);
**   - at most k hits, each with a passage id, path and text, distinct;
**   - hits holding every word come first, and within each tier the scores
**     never rise.
**
** Built with -DCAIRN_LIBFUZZER by `make fuzz` (build/fuzz/fuzz_query). In the
** plain test build the same file becomes the test fuzz_query_corpus, which
** replays tests/fuzz/corpus/query/.
*/
#include "store/store.h"
#include "fuzz_replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CAIRN_LIBFUZZER
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#else
#define FUZZ_ENTRY fuzz_query_one
int fuzz_query_one(const uint8_t *data, size_t size);
#endif

static store *lib;
static char lib_dir[256];

static const char *const sentences[] = {
    "The printer must be reset before the toner is replaced.",
    "Envoyez votre résumé et la lettre de candidature avant le 3 mars.",
    "NEAR the AND gate, OR the NOT gate: \"quoted\" text (with parentheses) and col:umn*.",
    "Straße, naïve café, Ærø, Ελληνικά, русский текст, 日本語のテキスト, emoji 😀 here.",
    "Printing twice costs more; printers print pages at 20 pages per minute.",
    "x y z a b c 1 2 3 - + * ^ : ( ) \" ' \\ %",
};

static store *get_lib(void)
{
    if (lib)
        return lib;
    const char *t = getenv("TMPDIR");
    snprintf(lib_dir, sizeof lib_dir, "%s/cairn-fuzz-query-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(lib_dir))
        abort();
    char path[512];
    snprintf(path, sizeof path, "%s/library.db", lib_dir);
    cn_err e = {0};
    if (store_open(&lib, path, &e) != CN_OK) {
        fprintf(stderr, "fuzz_query: %s\n", e.msg);
        abort();
    }
    for (size_t i = 0; i < CN_ARRAY_LEN(sentences); i++) {
        const char *txt = sentences[i];
        store_page_in pg = {1, txt, strlen(txt), false};
        store_passage_in ps = {1, 1, 0, pg.len, txt, pg.len, i % 2 ? "Heading" : NULL, NULL};
        char p[32];
        snprintf(p, sizeof p, "/fuzz/%zu.txt", i);
        store_doc_in d = {.path = p,
                          .hash = "00000000000000000000000000000000"
                                  "00000000000000000000000000000000",
                          .kind = "text",
                          .pages = &pg,
                          .n_pages = 1,
                          .passages = &ps,
                          .n_passages = 1};
        if (store_put_document(lib, &d, NULL, &e) != CN_OK) {
            fprintf(stderr, "fuzz_query: %s\n", e.msg);
            abort();
        }
    }
    return lib;
}

static void drop_lib(void)
{
    store_close(lib);
    lib = NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lib_dir);
    if (lib_dir[0] && system(cmd) != 0)
        fprintf(stderr, "fuzz_query: could not remove %s\n", lib_dir);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    store *s = get_lib();
    char *q = malloc(size + 1);
    memcpy(q, data, size);
    q[size] = 0;
    enum { K = 4 };
    store_hit hits[K];
    cn_arena a;
    cn_arena_init(&a, 1 << 20);
    cn_err e = {0};
    store_query_info qi;
    int n = store_search_keyword(s, q, K, &a, hits, NULL, &qi, &e);
    CHECK(n >= 0, "query of %zu bytes failed: %s", size, e.msg);
    CHECK(n <= K, "%d hits for k = %d", n, K);
    CHECK(qi.absent >= 0 && qi.absent <= 1, "absent share %g", qi.absent);
    CHECK(strlen(qi.missing) < sizeof qi.missing, "missing words not terminated");
    for (int i = 0; i < n; i++) {
        CHECK(hits[i].passage_id > 0 && hits[i].path && hits[i].text, "hit %d incomplete", i);
        for (int j = 0; j < i; j++)
            CHECK(hits[j].passage_id != hits[i].passage_id, "hit %d repeats hit %d", i, j);
        if (i > 0)
            CHECK(hits[i - 1].all_terms || !hits[i].all_terms, "all-words hit %d after others", i);
    }
    /* within a tier: each page's best passage first, best score first; the
    ** passages of a page already shown after them */
    bool rep[K] = {0};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i && !rep[i]; j++)
            rep[i] = !rep[j] && hits[j].doc_id == hits[i].doc_id &&
                     hits[j].page_start == hits[i].page_start;
    for (int i = 1; i < n; i++) {
        if (hits[i - 1].all_terms != hits[i].all_terms)
            continue;
        CHECK(!rep[i - 1] || rep[i], "hit %d, a page's first, after a repeated page", i);
        if (rep[i - 1] == rep[i])
            CHECK(hits[i].score <= hits[i - 1].score, "hit %d scores above hit %d", i, i - 1);
    }
    cn_arena_free(&a);
    free(q);
    return 0;
}

#ifndef CAIRN_LIBFUZZER
TEST(fuzz_query_corpus)
{
    int n = fuzz_replay_dir("tests/fuzz/corpus/query", fuzz_query_one);
    drop_lib();
    if (n < 0)
        SKIP("tests/fuzz/corpus/query not found");
    printf("     replayed %d corpus files\n", n);
    EXPECT(n > 0);
}
#endif
