/*
** fuzz_rtf.c: libFuzzer target for RTF (rtf.c, our own scanner).
** The input is the whole file; the contract is fuzz_doc.h's. Built by `make
** fuzz`; the test build replays tests/fuzz/corpus/rtf/.
*/
#include "fuzz_doc.h"

FUZZ_FORMAT(rtf, "fuzz.rtf")
