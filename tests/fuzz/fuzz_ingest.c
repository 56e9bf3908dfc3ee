/*
** fuzz_ingest.c: libFuzzer target for ingestion and chunking. The first
** byte picks the file name (and so the reader: .pdf through MuPDF, .txt,
** .md, .html, or no extension) and the passage size; the rest is the file.
** Any input must either give pages of valid UTF-8 that chunk_split cuts
** into passages whose offsets point at their text, or fail with a message
** naming the file; never crash, hang or read outside the buffer. Built by
** `make fuzz` (clang, -DCAIRN_LIBFUZZER); in the plain test build the same
** entry point replays tests/fuzz/corpus/ingest/.
*/
#include "ingest/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"fuzz.pdf", "fuzz.txt", "fuzz.md", "fuzz.html", "FUZZ"};

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ingest: %s\n", what);
        abort();
    }
}

int fuzz_ingest_one(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *name = names[data[0] % 5];
    /* copy so that ASan sees reads past the exact end */
    uint8_t *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    ingest_opts o = {.max_pages = 64,
                     .max_mupdf_bytes = (size_t)256 << 20,
                     .text_page_words = 1 + data[0] % 200};
    ingest_doc d;
    cn_err err = {0};
    int rc = ingest_memory(name, buf, size - 1, &o, &d, &err);
    if (rc != CN_OK) {
        check(strncmp(err.msg, name, strlen(name)) == 0, "error message does not name the file");
        free(buf);
        return 0;
    }
    check(d.title && cn_utf8_valid_prefix(d.title, strlen(d.title)) == strlen(d.title),
          "title is not valid UTF-8");
    check(cn_utf8_valid_prefix(d.notes, strlen(d.notes)) == strlen(d.notes), "notes");
    for (int i = 0; i < d.n_pages; i++) {
        const ingest_page *p = &d.pages[i];
        check(p->number == i + 1, "page numbers");
        check(strlen(p->text) == p->len, "page text has a NUL");
        check(cn_utf8_valid_prefix(p->text, p->len) == p->len, "page text is not valid UTF-8");
    }
    cn_arena a;
    cn_arena_init(&a, (size_t)256 << 20);
    ingest_passage *ps;
    chunk_opts co = {.max_tokens = 1 + (data[0] >> 2) % 96};
    int n = chunk_split(&a, &d, &co, &ps, &err);
    check(n >= 0, "chunk_split failed");
    for (int i = 0; i < n; i++) {
        const ingest_passage *p = &ps[i];
        check(p->page_start >= 1 && p->page_start <= p->page_end && p->page_end <= d.n_pages,
              "passage pages");
        const ingest_page *s = &d.pages[p->page_start - 1], *e = &d.pages[p->page_end - 1];
        check(p->off_start < s->len && p->off_end <= e->len, "passage offsets");
        check(cn_utf8_valid_prefix(p->text, p->len) == p->len, "passage is not valid UTF-8");
        if (p->page_start == p->page_end)
            check(p->off_end - p->off_start == p->len &&
                      memcmp(s->text + p->off_start, p->text, p->len) == 0,
                  "passage text is not at its offsets");
        check(p->heading != NULL, "heading");
    }
    cn_arena_free(&a);
    ingest_doc_free(&d);
    free(buf);
    return 0;
}

#ifdef CAIRN_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_ingest_one(data, size);
}
#else
#include "test.h"
#include "fuzz_replay.h"

TEST(fuzz_ingest_corpus_replays)
{
    int n = fuzz_replay_dir("tests/fuzz/corpus/ingest", fuzz_ingest_one);
    if (n < 0)
        SKIP("no corpus");
    EXPECT(n > 0);
}
#endif
