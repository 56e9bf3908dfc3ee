/*
** fuzz_docx.c: libFuzzer target for Word and PowerPoint files (office.c over zip.c): docx and pptx seeds, since the parts decide which.
** The input is the whole file; the contract is fuzz_doc.h's. Built by `make
** fuzz`; the test build replays tests/fuzz/corpus/docx/.
*/
#include "fuzz_doc.h"

FUZZ_FORMAT(docx, "fuzz.docx")
