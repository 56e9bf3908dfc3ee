/*
** fuzz_ingest.c: libFuzzer target for ingestion and chunking. The first
** byte picks the file name (and so the reader: .pdf through MuPDF, .txt,
** .md, .html, no extension, and the structured formats) and the passage
** size; the rest is the file. The contract is fuzz_doc.h's.
** Any input must either give pages of valid UTF-8 that chunk_split cuts
** into passages whose offsets point at their text, or fail with a message
** naming the file; never crash, hang or read outside the buffer. Built by
** `make fuzz` (clang, -DCAIRN_LIBFUZZER); in the plain test build the same
** entry point replays tests/fuzz/corpus/ingest/.
*/
#include "fuzz_doc.h"

static const char *const names[] = {"fuzz.pdf", "fuzz.txt", "fuzz.md",   "fuzz.html", "FUZZ",
                                    "fuzz.docx", "fuzz.odt", "fuzz.epub", "fuzz.rtf",  "fuzz.1"};

int fuzz_ingest_one(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *name = names[data[0] % 10];
    return fuzz_doc_one(name, data + 1, size - 1, 1 + data[0] % 200, 1 + (data[0] >> 2) % 96);
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
