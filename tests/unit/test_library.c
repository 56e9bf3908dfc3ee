/*
** The library end to end through the `cairn` binary: add (incremental,
** failures, symlink loops, prune), ls, rm, search, ask, doctor, in a
** private data directory.
*/
#include "test.h"
#include "base/base.h"
#include "gguf/gguf.h"
#include "library/library.h"
#include "tok/tok.h"

#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char out_buf[1 << 20], err_buf[1 << 16];

static int sh(const char *fmt, ...)
{
    char setup[1200];
    const char *t = test_tmpdir();
    snprintf(setup, sizeof setup, "export CAIRN_HOME=%s/home; CAIRN=%s; D=%s/docs", t,
             test_cairn_bin(), t);
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

static void make_docs(void)
{
    sh("rm -rf $D $CAIRN_HOME && mkdir -p $D/sub && "
       "printf 'Pump manual\\n\\nThe centrifugal pump must be primed before the first start. "
       "Open the bleed valve until water flows.\\n\\fMaintenance\\n\\nReplace the impeller seal "
       "every 2000 operating hours.\\n' > $D/pump.txt && "
       "printf '# Safety rules\\n\\nAlways wear insulated gloves near the transformer. The maximum "
       "operating pressure is 16 bar.\\n' > $D/sub/safety.md && "
       "printf '<html><head><title>Plant notes</title><style>p{color:red}</style>"
       "<script>var secret=1;</script></head><body><p>The cooling tower fan runs at 450 rpm."
       "</p></body></html>' > $D/notes.html && "
       ": > $D/empty.txt && head -c 3000 /dev/urandom > $D/garbage.pdf && "
       "printf '<html><body>not a pdf</body></html>' > $D/fake.pdf && "
       "ln -s .. $D/sub/loop && printf 'binary' > $D/data.bin");
}

TEST(library_add_search_ask)
{
    make_docs();
    EXPECT_EQ_INT(sh("$CAIRN add $D"), 0);
    EXPECT_CONTAINS(err_buf, "3 added, 0 updated, 0 unchanged, 3 failed");
    EXPECT_CONTAINS(err_buf, "empty.txt: empty file");
    EXPECT_CONTAINS(err_buf, "fake.pdf: not a PDF");
    EXPECT_CONTAINS(err_buf, "garbage.pdf");
    EXPECT(strstr(err_buf, "data.bin") == NULL); /* unsupported types in folders are skipped */
    EXPECT(strstr(err_buf, "loop") == NULL);      /* the symlink loop is walked once */

    /* keyword search finds the sentence's passage; the form feed starts page 2:
    ** this short file is one passage spanning both pages, cited where the words are */
    EXPECT_EQ_INT(sh("$CAIRN search --json impeller seal"), 0);
    json_error_t je;
    json_t *j = json_loads(out_buf, 0, &je);
    EXPECT(j && json_array_size(j) >= 1);
    json_t *h = json_array_get(j, 0);
    EXPECT_CONTAINS(json_string_value(json_object_get(h, "path")), "pump.txt");
    EXPECT_EQ_INT(json_integer_value(json_object_get(h, "page")), 2);
    EXPECT_EQ_INT(json_integer_value(json_object_get(h, "page_start")), 1);
    EXPECT_EQ_INT(json_integer_value(json_object_get(h, "page_end")), 2);
    EXPECT_CONTAINS(json_string_value(json_object_get(h, "text")), "impeller seal");
    json_decref(j);
    /* diacritics and case do not matter; scripts are not indexed */
    EXPECT_EQ_INT(sh("$CAIRN search --json centrifugal pump"), 0);
    j = json_loads(out_buf, 0, &je);
    EXPECT_EQ_INT(json_integer_value(json_object_get(json_array_get(j, 0), "page")), 1);
    json_decref(j);
    EXPECT_EQ_INT(sh("$CAIRN search TRANSFÖRMER"), 0);
    EXPECT_CONTAINS(out_buf, "safety.md, p. 1");
    EXPECT_EQ_INT(sh("$CAIRN search secret"), 0);
    EXPECT_CONTAINS(err_buf, "0 results");

    /* an extractive answer cites the page */
    EXPECT_EQ_INT(sh("$CAIRN ask 'What is the maximum operating pressure?'"), 0);
    EXPECT_CONTAINS(out_buf, "The maximum operating pressure is 16 bar. [1]");
    EXPECT_CONTAINS(out_buf, "[1] safety.md, p. 1");
    EXPECT_EQ_INT(sh("$CAIRN ask 'zebra giraffe okapi'"), 0);
    EXPECT_CONTAINS(out_buf, "Not found in your documents: no page mentions zebra, giraffe, okapi.");
    /* words that carry much of the question and are on no page: not found,
    ** and the closest passages are listed (the pressure page among them) */
    EXPECT_EQ_INT(sh("$CAIRN ask 'What is the maximum operating pressure of the flux capacitor?'"),
                  0);
    EXPECT_CONTAINS(out_buf, "Not found in your documents: no page mentions flux, capacitor.");
    EXPECT_CONTAINS(out_buf, "The closest passages:\n");
    EXPECT_CONTAINS(out_buf, "safety.md, p. 1\n    ");
    EXPECT_EQ_INT(sh("$CAIRN ask --json 'What is the maximum operating pressure of the flux "
                     "capacitor?'"), 0);
    json_t *nf2 = json_loads(out_buf, 0, &je);
    EXPECT_STR(json_string_value(json_object_get(nf2, "mode")), "not_found");
    EXPECT_STR(json_string_value(json_object_get(nf2, "missing")), "flux, capacitor");
    EXPECT(json_array_size(json_object_get(nf2, "sources")) >= 1);
    json_decref(nf2);
    /* --json stays JSON when nothing matches (it printed the sentence alone) */
    EXPECT_EQ_INT(sh("$CAIRN ask --json 'zebra giraffe okapi'"), 0);
    json_error_t nf_err;
    json_t *nf = json_loads(out_buf, 0, &nf_err);
    EXPECT(nf != NULL);
    EXPECT_STR(json_string_value(json_object_get(nf, "mode")), "not_found");
    EXPECT_EQ_INT(json_array_size(json_object_get(nf, "sources")), 0);
    json_decref(nf);

    /* unchanged files are skipped; a changed one is re-indexed */
    EXPECT_EQ_INT(sh("$CAIRN add $D/pump.txt $D/notes.html"), 0);
    EXPECT_CONTAINS(err_buf, "0 added, 0 updated, 2 unchanged");
    EXPECT_EQ_INT(sh("sleep 0.01; printf 'The fan runs at 300 rpm now.' > $D/notes.html; "
                     "$CAIRN add $D/notes.html"), 0);
    EXPECT_CONTAINS(err_buf, "0 added, 1 updated");
    EXPECT_EQ_INT(sh("$CAIRN search cooling tower"), 0);
    EXPECT_CONTAINS(err_buf, "0 results");

    /* ls, rm, prune */
    EXPECT_EQ_INT(sh("$CAIRN ls --json"), 0);
    j = json_loads(out_buf, 0, &je);
    EXPECT_EQ_INT(json_array_size(j), 6);
    json_decref(j);
    EXPECT_EQ_INT(sh("$CAIRN rm $D/sub/safety.md"), 0);
    EXPECT_EQ_INT(sh("$CAIRN search transformer"), 0);
    EXPECT_CONTAINS(err_buf, "0 results");
    EXPECT_EQ_INT(sh("$CAIRN rm $D/sub/safety.md"), 1);
    EXPECT_CONTAINS(err_buf, "no such document");
    EXPECT_EQ_INT(sh("rm $D/pump.txt && $CAIRN add --prune"), 0);
    EXPECT_EQ_INT(sh("$CAIRN search impeller"), 0);
    EXPECT_CONTAINS(err_buf, "0 results");
    /* sync: a changed file is re-indexed, a removed one dropped */
    EXPECT_EQ_INT(sh("sleep 0.01; printf 'The compressor hums at night.' > $D/notes.html; "
                     "$CAIRN sync"), 0);
    EXPECT_CONTAINS(err_buf, "1 updated");
    EXPECT_EQ_INT(sh("$CAIRN search compressor"), 0);
    EXPECT_CONTAINS(out_buf, "notes.html");
    EXPECT_EQ_INT(sh("$CAIRN doctor"), 0);
    EXPECT_CONTAINS(out_buf, "consistency      ok");
    EXPECT_CONTAINS(out_buf, "keyword search and extractive answers");
}

/* With a language model the passages are on screen before the model is
** even read (a model that cannot be opened fails after them), then the
** answer streams, then which sources it cited. */
static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ask --schema: the answer is JSON valid against the schema, alone on stdout */
TEST(library_ask_with_a_schema_answers_json)
{
    const char *tools = getenv("CAIRN_TOOLS");
    make_docs();
    EXPECT_EQ_INT(sh("$CAIRN add $D && %s/mkmodel --shape tiny --type f16 --ctx 1024 --untied "
                     "--seed 2 --tokenizer %s -o $D/../ask-schema.gguf && echo '{\"type\":"
                     "\"object\",\"properties\":{\"bar\":{\"type\":\"integer\"},\"unit\":{"
                     "\"enum\":[\"bar\",\"psi\"]}},\"required\":[\"bar\",\"unit\"]}' > "
                     "$D/../ask.schema.json",
                     tools && *tools ? tools : "build", test_data("vocab/ggml-vocab-llama-bpe.gguf")),
                  0);
    static const int budgets[] = {64, 48, 24};
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ_INT(sh("$CAIRN ask -n %d -m $D/../ask-schema.gguf --schema $D/../ask.schema.json "
                         "'What is the maximum operating pressure?'",
                         budgets[i]),
                      0);
        json_t *o = json_loads(out_buf, 0, NULL);
        EXPECT(json_is_object(o));
        EXPECT(json_is_integer(json_object_get(o, "bar")));
        const char *unit = json_string_value(json_object_get(o, "unit"));
        EXPECT(unit && (!strcmp(unit, "bar") || !strcmp(unit, "psi")));
        EXPECT_EQ_INT((int)json_object_size(o), 2);
        json_decref(o);
    }
    /* a budget too small for the shortest valid answer: a failure, said */
    EXPECT_EQ_INT(sh("$CAIRN ask -n 4 -m $D/../ask-schema.gguf --schema $D/../ask.schema.json "
                     "'What is the maximum operating pressure?'"),
                  1);
    EXPECT_CONTAINS(err_buf, "cut at 4 tokens before its JSON was complete");
    /* nothing found: no JSON to shape, so a failure with the reason on stderr */
    EXPECT_EQ_INT(sh("$CAIRN ask -m $D/../ask-schema.gguf --json-output 'zebra giraffe okapi'"), 1);
    EXPECT_STR(out_buf, "");
    EXPECT_CONTAINS(err_buf, "Not found in your documents");
    EXPECT_EQ_INT(sh("$CAIRN ask --json-output 'What is the maximum operating pressure?'"), 2);
    EXPECT_CONTAINS(err_buf, "need a language model");
    EXPECT_EQ_INT(sh("$CAIRN search --json-output pressure"), 2);
    EXPECT_CONTAINS(err_buf, "are for ask");
    EXPECT_EQ_INT(sh("echo '{\"type\":\"string\",\"format\":\"ipv4\"}' > $D/../bad.json && "
                     "$CAIRN ask -m $D/../ask-schema.gguf --schema $D/../bad.json 'pressure?'"),
                  1);
    EXPECT_CONTAINS(err_buf, "bad.json: schema:");
}

TEST(library_ask_shows_sources_first)
{
    const char *tools = getenv("CAIRN_TOOLS");
    make_docs();
    EXPECT_EQ_INT(sh("$CAIRN add $D"), 0);
    EXPECT_EQ_INT(sh("%s/mkmodel --shape tiny --type f16 --ctx 1024 --untied --seed 2 "
                     "--tokenizer %s -o $D/../ask-chat.gguf",
                     tools && *tools ? tools : "build", test_data("vocab/ggml-vocab-llama-bpe.gguf")),
                  0);
    EXPECT_EQ_INT(sh("$CAIRN ask -n 6 -m $D/../ask-chat.gguf 'What is the maximum operating "
                     "pressure?'"),
                  0);
    EXPECT(starts_with(out_buf, "Sources:\n[1] safety.md, p. 1\n    Safety rules Always wear"));
    EXPECT(strstr(out_buf, "\n\nCited: ") || strstr(out_buf, "(The answer cites none"));
    EXPECT(strstr(out_buf, "upgrade") == NULL && strstr(err_buf, "extractive") == NULL);
    /* a file that is no model: the sources were shown before it was opened */
    EXPECT_EQ_INT(sh("head -c 4096 /dev/urandom > $D/../broken.gguf && "
                     "$CAIRN ask -m $D/../broken.gguf 'What is the maximum operating pressure?'"),
                  1);
    EXPECT(starts_with(out_buf, "Sources:\n[1] safety.md, p. 1\n"));
    EXPECT_CONTAINS(err_buf, "broken.gguf");
    /* --json: one object, the sources ready before the first token */
    EXPECT_EQ_INT(sh("$CAIRN ask --json -n 6 -m $D/../ask-chat.gguf 'What is the maximum "
                     "operating pressure?'"),
                  0);
    json_error_t je;
    json_t *j = json_loads(out_buf, 0, &je), *t = json_object_get(j, "timings");
    double src_s = json_real_value(json_object_get(t, "sources_s"));
    EXPECT(src_s > 0 && src_s <= json_real_value(json_object_get(t, "first_token_s")));
    EXPECT_STR(json_string_value(json_object_get(j, "mode")), "generated");
    /* prompt-lookup drafts (off by default) change how, not what */
    char *plain = strdup(json_string_value(json_object_get(j, "answer")) ?: "");
    EXPECT(json_integer_value(json_object_get(t, "forward_passes")) >= 1);
    EXPECT_EQ_INT(json_integer_value(json_object_get(t, "drafted_tokens")), 0);
    json_decref(j);
    EXPECT_EQ_INT(sh("$CAIRN ask --json --lookup 8 -n 6 -m $D/../ask-chat.gguf 'What is the "
                     "maximum operating pressure?'"),
                  0);
    j = json_loads(out_buf, 0, &je);
    t = json_object_get(j, "timings");
    EXPECT_STR(json_string_value(json_object_get(j, "answer")), plain);
    json_decref(j);
    /* so does a draft model (here a second copy of the model: greedy, it
    ** agrees with every token it is sure of) */
    EXPECT_EQ_INT(sh("$CAIRN ask --json --lookup 0 --draft $D/../ask-chat.gguf -n 6 -m "
                     "$D/../ask-chat.gguf 'What is the maximum operating pressure?'"),
                  0);
    j = json_loads(out_buf, 0, &je);
    t = json_object_get(j, "timings");
    EXPECT_STR(json_string_value(json_object_get(j, "answer")), plain);
    EXPECT_EQ_INT(json_integer_value(json_object_get(t, "draft_model_accepted")),
                  json_integer_value(json_object_get(t, "draft_model_tokens")));
    EXPECT(json_real_value(json_object_get(t, "draft_model_s")) > 0);
    json_decref(j);
    free(plain);
    EXPECT_EQ_INT(sh("$CAIRN ask --lookup 9 x"), 2);
    EXPECT_CONTAINS(err_buf, "--lookup 9: expected 0 to 8");
}

/* The passages a model reads are trimmed to the question, within a budget
** the user sets (--passage-tokens) or turns off (--no-trim); `ask --json`
** says how many tokens were kept. The document is dense in tokens (serial
** numbers), so four of its passages are over the default budget. */
static json_t *ask_timings(const char *opts, json_t **whole)
{
    if (sh("$CAIRN ask --json -n 1 -m $D/../trim-chat.gguf %s 'pressure reading of valve 3?'",
           opts) != 0)
        return NULL;
    json_error_t je;
    *whole = json_loads(out_buf, 0, &je);
    return json_object_get(*whole, "timings");
}

static long long timing(json_t *t, const char *key)
{
    return json_integer_value(json_object_get(t, key));
}

TEST(library_ask_trims_passages_to_a_budget)
{
    const char *tools = getenv("CAIRN_TOOLS");
    EXPECT_EQ_INT(sh("rm -rf $D $CAIRN_HOME && mkdir -p $D"), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/valves.md", test_tmpdir());
    FILE *f = fopen(path, "w");
    EXPECT(f != NULL);
    if (!f)
        return;
    unsigned x = 12345;
    for (int sec = 0; sec < 6; sec++) {
        fprintf(f, "# Valve %d\n\n", sec);
        for (int s = 0; s < 24; s++) {
            fprintf(f, "Valve %d pressure reading %d:", sec, s);
            for (int k = 0; k < 6; k++) {
                x = x * 1103515245u + 12345u;
                fprintf(f, " %04x-%03x", (x >> 8) & 0xffff, (x >> 3) & 0xfff);
            }
            fprintf(f, ".%s", s % 4 == 3 ? "\n\n" : " ");
        }
    }
    fclose(f);
    EXPECT_EQ_INT(sh("$CAIRN add $D"), 0);
    EXPECT_EQ_INT(sh("%s/mkmodel --shape tiny --type f16 --ctx 4096 --untied --seed 2 "
                     "--tokenizer %s -o $D/../trim-chat.gguf",
                     tools && *tools ? tools : "build", test_data("vocab/ggml-vocab-llama-bpe.gguf")),
                  0);
    json_t *j1 = NULL, *j2 = NULL, *j3 = NULL;
    json_t *def = ask_timings("", &j1), *whole = ask_timings("--no-trim", &j2),
           *small = ask_timings("--passage-tokens 64", &j3);
    EXPECT(def && whole && small);
    if (def && whole && small) {
        /* whole passages: nothing cut, and over the default budget */
        EXPECT_EQ_INT(timing(whole, "passage_tokens_after"), timing(whole, "passage_tokens_before"));
        EXPECT(timing(whole, "passage_tokens_before") > 1024);
        /* the default: at most 1024 of them, and a shorter prompt */
        EXPECT(timing(def, "passage_tokens_after") <= 1024);
        EXPECT_EQ_INT(timing(def, "passage_tokens_before"), timing(whole, "passage_tokens_before"));
        EXPECT(timing(def, "prompt_tokens") < timing(whole, "prompt_tokens"));
        /* the budget given is honoured */
        EXPECT(timing(small, "passage_tokens_after") <= 64);
        EXPECT(timing(small, "prompt_tokens") < timing(def, "prompt_tokens"));
        /* the same sources, numbered the same, whatever the trim */
        EXPECT_EQ_INT((int)json_array_size(json_object_get(j3, "sources")),
                      (int)json_array_size(json_object_get(j2, "sources")));
    }
    json_decref(j1);
    json_decref(j2);
    json_decref(j3);
    /* without --json the cut is said on stderr */
    EXPECT_EQ_INT(sh("$CAIRN ask -n 1 -m $D/../trim-chat.gguf --passage-tokens 64 "
                     "'pressure reading of valve 3?'"),
                  0);
    EXPECT_CONTAINS(err_buf, "note: passages trimmed to the question: ");
    EXPECT_CONTAINS(err_buf, "--no-trim");
    EXPECT_EQ_INT(sh("$CAIRN ask --passage-tokens 3 'pressure?'"), 2);
    EXPECT_CONTAINS(err_buf, "--passage-tokens 3");
}

TEST(library_hybrid_search_with_an_embedding_model)
{
    const char *bert = test_tiny_bert();
    if (!bert)
        return;
    make_docs();
    EXPECT_EQ_INT(sh("$CAIRN add $D -e %s", bert), 0);
    EXPECT_CONTAINS(err_buf, "passages embedded");
    EXPECT_EQ_INT(sh("$CAIRN search -e %s --json cooling tower fan", bert), 0);
    json_error_t je;
    json_t *j = json_loads(out_buf, 0, &je);
    EXPECT(j && json_array_size(j) >= 1);
    EXPECT_CONTAINS(json_string_value(json_object_get(json_array_get(j, 0), "path")), "notes.html");
    json_decref(j);
    EXPECT_EQ_INT(sh("$CAIRN search -e %s cooling", bert), 0);
    EXPECT_CONTAINS(err_buf, "(hybrid search)");
    /* indexing again has nothing to do */
    EXPECT_EQ_INT(sh("$CAIRN index -e %s", bert), 0);
    EXPECT_CONTAINS(err_buf, "0 passages embedded");
}

/* Documents in the library at $CAIRN_HOME (from `cairn ls --json`), -1 on error. */
static int library_documents(void)
{
    if (sh("$CAIRN ls --json") != 0)
        return -1;
    json_error_t je;
    json_t *j = json_loads(out_buf, 0, &je);
    int n = j ? (int)json_array_size(j) : -1;
    json_decref(j);
    return n;
}

/* kill -9 during `cairn add`, twenty times, each time once the run has
** reported 1 to 3 more documents added: every kill must land mid-batch (the
** process was still running, had not printed its summary, had committed some
** of this run's documents and not all of them), and after every kill the
** library passes its full consistency check (integrity, FTS against
** passages, page and passage counts of every document). A final add then
** completes the batch. */
TEST(library_add_survives_sigkill)
{
    /* 200 documents: enough that twenty kills, each a few documents late
    ** (the shell polls), still leave the batch unfinished */
    sh("rm -rf $D $CAIRN_HOME && mkdir -p $D && for i in $(seq 1 200); do "
       "for j in $(seq 1 60); do echo \"Document $i paragraph $j talks about valves, pumps "
       "and pressure number $((i * j)) in some detail.\"; echo; done > $D/doc$i.txt; done");
    int bad = 0, mid_batch = 0, before = 0;
    for (int k = 0; k < 20; k++) {
        int want = 1 + k % 3; /* kill after this many "added" lines */
        sh("$CAIRN add $D >$D.log 2>&1 & pid=$!; "
           "while [ $(grep -c '^added' $D.log) -lt %d ] && kill -0 $pid 2>/dev/null; do "
           "sleep 0.001; done; kill -9 $pid 2>/dev/null; wait $pid; echo \"status $?\"",
           want);
        bool killed = strstr(out_buf, "status 137") != NULL;
        sh("cat $D.log");
        bool summary = strstr(out_buf, " failed: ") != NULL;
        int after = library_documents();
        if (killed && !summary && after > before && after < 200)
            mid_batch++;
        else if (after < 200)
            fprintf(stderr, "  kill %d did not land mid-batch: %s, %d -> %d documents\n", k,
                    killed ? "killed" : "not killed", before, after);
        if (sh("$CAIRN doctor") != 0 || !strstr(out_buf, "consistency      ok")) {
            bad++;
            fprintf(stderr, "  after kill %d: %s%s\n", k, out_buf, err_buf);
        }
        before = after;
        if (after == 200)
            break; /* the batch is complete: no write left to interrupt */
    }
    EXPECT_EQ_INT(bad, 0);
    /* nearly every kill landed between two of the batch's commits (polling can
    ** overshoot one now and then); none of this means anything otherwise */
    EXPECT(mid_batch >= 15);
    EXPECT_EQ_INT(sh("$CAIRN add $D"), 0);
    EXPECT_CONTAINS(err_buf, "0 failed");
    EXPECT_EQ_INT(library_documents(), 200);
    /* 11741 = 199 x 59 is in no other document */
    EXPECT_EQ_INT(sh("$CAIRN search --json -k 1 pressure number 11741"), 0);
    EXPECT_CONTAINS(out_buf, "doc199.txt");
}

/* Longest passage of the library at home, in tokens of the vocab v. */
static int longest_passage(const char *home, tok_vocab *v)
{
    lib *l;
    cn_err err = {0};
    if (lib_open(&l, home, &err))
        return -1;
    cn_arena a;
    cn_arena_init(&a, (size_t)1 << 26);
    store_passage ps[64];
    int n = 0, longest = 0;
    int64_t after = 0;
    static int32_t ids[1 << 16];
    while (store_passages_without_embedding(lib_store(l), "no-such-model", after, 64, &a, ps, &n,
                                            &err) > 0) {
        for (int i = 0; i < n; i++) {
            int k = tok_encode(v, ps[i].text, ps[i].len, false, false, ids, 1 << 16, NULL);
            longest = CN_MAX(longest, k);
        }
        after = ps[n - 1].id;
    }
    cn_arena_free(&a);
    lib_close(l);
    return longest;
}

/* With an embedding model, passages are measured in its own tokens: words
** the fixed estimate under-counts (letters the model's vocabulary splits into
** many pieces) still give passages of at most 256 model tokens. */
TEST(library_chunks_in_embedding_model_tokens)
{
    const char *bert = test_tiny_bert();
    if (!bert)
        return;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/chunkdocs", test_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/words.txt", dir);
    FILE *f = fopen(path, "w");
    uint32_t r = 12345;
    for (int w = 0; w < 4000; w++) { /* pseudo-words of 8-12 letters */
        int len = 8 + (int)((r >> 8) % 5);
        for (int c = 0; c < len; c++) {
            r = r * 1103515245u + 12345u;
            fputc('a' + (int)((r >> 16) % 26), f);
        }
        fputs(w % 15 == 14 ? ".\n" : " ", f);
    }
    fclose(f);
    gguf_file *g;
    tok_vocab *v;
    cn_err err = {0};
    EXPECT_EQ_INT(gguf_open(&g, bert, &err), CN_OK);
    EXPECT_EQ_INT(tok_open(&v, g, &err), CN_OK);

    char home1[700], home2[700];
    snprintf(home1, sizeof home1, "%s/h-estimate", test_tmpdir());
    snprintf(home2, sizeof home2, "%s/h-model", test_tmpdir());
    const char *paths[] = {path};
    lib_add_stats st;
    lib *l;
    EXPECT_EQ_INT(lib_open(&l, home1, &err), CN_OK);
    EXPECT_EQ_INT(lib_add(l, paths, 1, false, NULL, NULL, &st, &err), CN_OK);
    lib_close(l);
    EXPECT_EQ_INT(lib_open(&l, home2, &err), CN_OK);
    EXPECT_EQ_INT(lib_chunk_with(l, bert, 1, &err), CN_OK);
    EXPECT_EQ_INT(lib_add(l, paths, 1, false, NULL, NULL, &st, &err), CN_OK);
    lib_close(l);
    int est = longest_passage(home1, v), model = longest_passage(home2, v);
    EXPECT(est > 300);   /* the estimate lets these passages run long... */
    EXPECT(model <= 256); /* ...the model's tokenizer does not */
    EXPECT(model > 200);  /* and the passages are still full-sized */
    tok_close(v);
    gguf_close(g);
}

/* Embeddings count from `cairn doctor`'s output, -1 if absent. */
static long long doctor_vectors(void)
{
    const char *p = strstr(out_buf, "embeddings ");
    return p ? strtoll(p + strlen("embeddings "), NULL, 10) : -1;
}

/* kill -9 during the embedding phase, at varied moments: the library stays
** consistent, vectors already written are kept (each run resumes where the
** last stopped), and a final `cairn index` embeds exactly the rest. */
TEST(library_index_survives_sigkill)
{
    const char *bert = test_tiny_bert();
    if (!bert)
        return;
    sh("rm -rf $D $CAIRN_HOME && mkdir -p $D && for i in $(seq 1 120); do "
       "for j in $(seq 1 60); do echo \"Document $i paragraph $j talks about valves, pumps "
       "and pressure number $((i * j)) in some detail.\"; echo; done > $D/doc$i.txt; done");
    EXPECT_EQ_INT(sh("$CAIRN add $D"), 0);
    EXPECT_CONTAINS(err_buf, "720 passages");
    /* how long a whole run takes here (sanitizers slow it down), on a copy */
    double t0 = cn_now();
    EXPECT_EQ_INT(sh("cp -r $CAIRN_HOME $CAIRN_HOME.cal && CAIRN_HOME=$CAIRN_HOME.cal "
                     "$CAIRN index -e %s && rm -rf $CAIRN_HOME.cal", bert), 0);
    double full_ms = 1e3 * (cn_now() - t0);
    int bad = 0;
    long long last = 0;
    for (int k = 0; k < 8; k++) {
        int ms = (int)(full_ms * (0.04 + 0.02 * (k % 5)));
        sh("$CAIRN index -e %s >/dev/null 2>&1 & pid=$!; sleep %d.%03d; kill -9 $pid 2>/dev/null; "
           "wait $pid 2>/dev/null; true", bert, ms / 1000, ms % 1000);
        long long now = -1;
        if (sh("$CAIRN doctor") != 0 || !strstr(out_buf, "consistency      ok") ||
            (now = doctor_vectors()) < last) {
            bad++;
            fprintf(stderr, "  after kill %d (%d ms): %lld vectors (had %lld)\n%s%s\n", k, ms, now,
                    last, out_buf, err_buf);
        }
        last = now;
    }
    EXPECT_EQ_INT(bad, 0);
    EXPECT(last > 0);   /* the killed runs made progress that was kept */
    EXPECT(last < 720); /* and were really interrupted */
    EXPECT_EQ_INT(sh("$CAIRN index -e %s", bert), 0);
    char want[64];
    snprintf(want, sizeof want, "%lld passages embedded", 720 - last);
    EXPECT_CONTAINS(err_buf, want);
    EXPECT_EQ_INT(sh("$CAIRN doctor"), 0);
    EXPECT_EQ_INT((int)doctor_vectors(), 720);
    EXPECT_CONTAINS(out_buf, "consistency      ok");
}
