/*
** fuzz_doc.h: the contract every document reader is fuzzed against. Any
** input either gives pages of valid UTF-8 (headings inside them, in order)
** that chunk_split cuts into passages whose offsets point at their text, or
** fails with a message naming the file; never a crash, a hang or a read
** outside the buffer. fuzz_ingest.c (all readers, the name chosen by the
** first byte) and one target per structured format (fuzz_docx.c, ...) use
** it; in the plain test build each replays its corpus directory.
*/
#ifndef CN_FUZZ_DOC_H
#define CN_FUZZ_DOC_H

#include "ingest/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_doc_check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
    }
}

/* Ingest data as a file called name, with limits small enough for a fuzzer,
** and check the result; max_tokens sizes the passages. */
static int fuzz_doc_one(const char *name, const uint8_t *data, size_t size, int page_words,
                        int max_tokens)
{
    /* copy so that ASan sees reads past the exact end */
    uint8_t *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    ingest_opts o = {.max_pages = 64,
                     .max_mupdf_bytes = (size_t)256 << 20,
                     .text_page_words = page_words,
                     .max_unzipped_bytes = (size_t)16 << 20,
                     .max_zip_entries = 512};
    ingest_doc d;
    cn_err err = {0};
    int rc = ingest_memory(name, buf, size, &o, &d, &err);
    if (rc != CN_OK) {
        fuzz_doc_check(strncmp(err.msg, name, strlen(name)) == 0,
                       "error message does not name the file");
        free(buf);
        return 0;
    }
    fuzz_doc_check(d.title && cn_utf8_valid_prefix(d.title, strlen(d.title)) == strlen(d.title),
                   "title is not valid UTF-8");
    fuzz_doc_check(cn_utf8_valid_prefix(d.notes, strlen(d.notes)) == strlen(d.notes), "notes");
    for (int i = 0; i < d.n_pages; i++) {
        const ingest_page *p = &d.pages[i];
        fuzz_doc_check(p->number == i + 1, "page numbers");
        fuzz_doc_check(strlen(p->text) == p->len, "page text has a NUL");
        fuzz_doc_check(cn_utf8_valid_prefix(p->text, p->len) == p->len,
                       "page text is not valid UTF-8");
    }
    for (int i = 0; i < d.n_headings; i++) {
        const ingest_heading *h = &d.headings[i];
        fuzz_doc_check(h->page >= 1 && h->page <= d.n_pages, "heading page");
        fuzz_doc_check(i == 0 || d.headings[i - 1].page < h->page ||
                           (d.headings[i - 1].page == h->page && d.headings[i - 1].off <= h->off),
                       "headings out of order");
        fuzz_doc_check(h->level >= 1 && h->level <= INGEST_MAX_LEVEL, "heading level");
        fuzz_doc_check(cn_utf8_valid_prefix(h->text, strlen(h->text)) == strlen(h->text),
                       "heading is not valid UTF-8");
    }
    cn_arena a;
    cn_arena_init(&a, (size_t)256 << 20);
    ingest_passage *ps;
    chunk_opts co = {.max_tokens = max_tokens};
    int n = chunk_split(&a, &d, &co, &ps, &err);
    fuzz_doc_check(n >= 0, "chunk_split failed");
    for (int i = 0; i < n; i++) {
        const ingest_passage *p = &ps[i];
        fuzz_doc_check(p->page_start >= 1 && p->page_start <= p->page_end &&
                           p->page_end <= d.n_pages,
                       "passage pages");
        const ingest_page *s = &d.pages[p->page_start - 1], *e = &d.pages[p->page_end - 1];
        fuzz_doc_check(p->off_start < s->len && p->off_end <= e->len, "passage offsets");
        fuzz_doc_check(cn_utf8_valid_prefix(p->text, p->len) == p->len,
                       "passage is not valid UTF-8");
        if (p->page_start == p->page_end)
            fuzz_doc_check(p->off_end - p->off_start == p->len &&
                               memcmp(s->text + p->off_start, p->text, p->len) == 0,
                           "passage text is not at its offsets");
        fuzz_doc_check(p->heading != NULL && p->locator != NULL, "heading and locator");
        fuzz_doc_check(cn_utf8_valid_prefix(p->locator, strlen(p->locator)) == strlen(p->locator),
                       "locator is not valid UTF-8");
    }
    cn_arena_free(&a);
    ingest_doc_free(&d);
    free(buf);
    return 0;
}

/* One target per structured format, the input being the whole file:
** FUZZ_FORMAT(docx, "fuzz.docx") defines fuzz_docx_one, and
** LLVMFuzzerTestOneInput under libFuzzer or, in the test build, the test
** fuzz_docx_corpus_replays over tests/fuzz/corpus/docx/. */
#ifdef CAIRN_LIBFUZZER
#define FUZZ_FORMAT(fmt, file)                                                                     \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                   \
    {                                                                                              \
        return fuzz_doc_one(file, data, size, 200, 48);                                            \
    }
#else
#include "fuzz_replay.h"
#include "test.h"
#define FUZZ_FORMAT(fmt, file)                                                                     \
    static int fuzz_##fmt##_one(const uint8_t *data, size_t size)                                  \
    {                                                                                              \
        return fuzz_doc_one(file, data, size, 200, 48);                                            \
    }                                                                                              \
    TEST(fuzz_##fmt##_corpus_replays)                                                              \
    {                                                                                              \
        int n = fuzz_replay_dir("tests/fuzz/corpus/" #fmt, fuzz_##fmt##_one);                      \
        if (n < 0)                                                                                 \
            SKIP("no corpus in tests/fuzz/corpus/" #fmt);                                          \
        EXPECT(n > 0);                                                                             \
    }
#endif

#endif
