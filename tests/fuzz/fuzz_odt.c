/*
** fuzz_odt.c: libFuzzer target for OpenDocument text and presentations (odf.c over zip.c).
** The input is the whole file; the contract is fuzz_doc.h's. Built by `make
** fuzz`; the test build replays tests/fuzz/corpus/odt/.
*/
#include "fuzz_doc.h"

FUZZ_FORMAT(odt, "fuzz.odt")
