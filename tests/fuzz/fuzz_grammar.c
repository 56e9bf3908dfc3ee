/*
** fuzz_grammar.c: libFuzzer target for grammars, the one input of
** constrained decoding a user hands over whole (`--grammar FILE`, `--schema
** FILE`, a request's response_format). The first byte chooses: even, the
** rest is GBNF text; odd, a JSON Schema. These must hold:
**   - parsing or compiling returns OK or an error with a message, never
**     crashes, whatever the nesting or size;
**   - a schema the compiler took compiles to GBNF the parser takes (an
**     error there would be the compiler's bug, so it must say "schema:");
**   - on a grammar, a matcher fed the input's own bytes a piece at a time
**     agrees with its probe (gr_allows is what gr_accept then does, but
**     where gr_accept stops at the matcher's work limit and says so), and
**     its key, distance and completeness are answered.
**
** Built with -DCAIRN_LIBFUZZER by `make fuzz` (build/fuzz/fuzz_grammar). In
** the plain test build the same file becomes the test fuzz_grammar_corpus,
** which replays tests/fuzz/corpus/grammar/.
*/
#include "grammar/grammar.h"
#include "fuzz_replay.h"

#include <stdlib.h>
#include <string.h>

#ifdef CAIRN_LIBFUZZER
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#else
#define FUZZ_ENTRY fuzz_grammar_one
int fuzz_grammar_one(const uint8_t *data, size_t size);
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    bool schema = data[0] & 1;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    gr_grammar *g = NULL;
    cn_err err = {0};
    int rc = schema ? gr_from_schema(text, size - 1, &g, &err) : gr_parse(text, &g, &err);
    CHECK(rc == CN_OK || err.msg[0], "an error without a message");
    CHECK(rc != CN_OK || g, "OK without a grammar");
    if (schema && rc != CN_OK)
        CHECK(strncmp(err.msg, "schema:", 7) == 0, "the compiler wrote a grammar its parser refused: %s",
              err.msg);
    gr_matcher *m = NULL;
    if (g && gr_matcher_new(g, &m, &err) == CN_OK) {
        /* the input's own bytes, in pieces of 1 to 4: a schema's text is
        ** rarely its own sentence, but every step is asked both ways */
        char key[256];
        for (size_t i = 0; i + 1 < size && i < 4096;) {
            size_t n = 1 + (data[i] & 3);
            if (i + n > size - 1)
                n = size - 1 - i;
            bool probe = gr_allows(m, text + i, n);
            bool took = gr_accept(m, text + i, n);
            CHECK(probe == took || (probe && gr_limited(m)),
                  "gr_allows said %d, gr_accept did %d at byte %zu", probe, took, i);
            (void)gr_matcher_key(m, key, sizeof key);
            (void)gr_distance(m);
            (void)gr_complete(m);
            (void)gr_finished(m);
            i += n;
        }
        gr_matcher *c = gr_matcher_clone(m);
        gr_matcher_free(c);
        gr_matcher_free(m);
    }
    char *printed = g ? gr_print(g) : NULL;
    free(printed);
    gr_free(g);
    free(text);
    return 0;
}

#ifndef CAIRN_LIBFUZZER
TEST(fuzz_grammar_corpus)
{
    int n = fuzz_replay_dir("tests/fuzz/corpus/grammar", fuzz_grammar_one);
    if (n < 0)
        SKIP("tests/fuzz/corpus/grammar not found");
    printf("     replayed %d corpus files\n", n);
    EXPECT(n > 0);
}
#endif
