/*
** fuzz_man.c: libFuzzer target for man pages (man.c), plain and gzip-compressed.
** The input is the whole file; the contract is fuzz_doc.h's. Built by `make
** fuzz`; the test build replays tests/fuzz/corpus/man/.
*/
#include "fuzz_doc.h"

FUZZ_FORMAT(man, "fuzz.8")
