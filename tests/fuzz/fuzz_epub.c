/*
** fuzz_epub.c: libFuzzer target for EPUB (pdf.c through MuPDF, chapters from the outline).
** The input is the whole file; the contract is fuzz_doc.h's. Built by `make
** fuzz`; the test build replays tests/fuzz/corpus/epub/.
*/
#include "fuzz_doc.h"

FUZZ_FORMAT(epub, "fuzz.epub")
