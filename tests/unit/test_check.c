/*
** `cairn check retrieval`: the report's shape, and that its recall is a
** real measurement -- each probe's rank is where `cairn search` puts the
** probe's passage -- with and without a reranker and an embedding model.
*/
#include "test.h"

#include <jansson.h>
#include <stdarg.h>

static char out_buf[1 << 17], err_buf[1 << 14];

static int sh(const char *fmt, ...)
{
    char setup[1200];
    const char *t = test_tmpdir();
    snprintf(setup, sizeof setup, "export CAIRN_HOME=%s/ck-home CAIRN_CONFIG=%s/ck-config; "
             "unset CAIRN_EMBED_MODEL CAIRN_CHAT_MODEL; C=%s; D=%s/ck-docs", t, t,
             test_cairn_bin(), t);
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

/* Ten one-passage documents that share words in pairs, so every passage has
** words some other passage also uses. */
static int make_library(void)
{
    static const char *const docs[] = {
        "The centrifugal pump must be primed with water before the motor starts.",
        "Priming the pump: open the vent valve and fill the casing with water.",
        "The pressure gauge reads the outlet pressure of the compressor in bar.",
        "A compressor overheats when the intake filter is clogged with dust.",
        "Replace the drive belt when cracks appear on its inner surface.",
        "Belt tension is checked by pressing midway between the pulleys.",
        "The thermostat opens the coolant circuit above eighty degrees.",
        "Coolant leaks are found by pressurising the circuit and watching the hoses.",
        "Lubricate the bearings every five hundred hours with lithium grease.",
        "Grease nipples sit on both bearings housings of the fan shaft.",
    };
    char cmd[4096];
    size_t o = (size_t)snprintf(cmd, sizeof cmd, "rm -rf $CAIRN_HOME $D && mkdir -p $D");
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        o += (size_t)snprintf(cmd + o, sizeof cmd - o, " && printf '%s\\n' > $D/d%zu.txt",
                              docs[i], i);
    snprintf(cmd + o, sizeof cmd - o, " && $C add $D");
    return sh("%s", cmd);
}

/* Rank (1..5, 0: absent) of file base among `cairn search --json` results in out_buf. */
static int rank_in_search(const char *base)
{
    json_error_t je;
    json_t *arr = json_loads(out_buf, 0, &je);
    int r = 0;
    for (size_t i = 0; !r && i < json_array_size(arr) && i < 5; i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(arr, i), "doc")) ?: "", base))
            r = (int)i + 1;
    json_decref(arr);
    return r;
}

static json_t *mode_row(json_t *report, const char *name)
{
    json_t *modes = json_object_get(report, "modes");
    for (size_t i = 0; i < json_array_size(modes); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(modes, i), "mode")) ?: "",
                    name))
            return json_array_get(modes, i);
    return NULL;
}

/* Each probe's rank for mode equals what `cairn search` (with extra, the
** options that select the mode) gives the probe; returns how many probes
** found their passage in the top 5. */
static int check_ranks(json_t *report, const char *mode, const char *extra)
{
    json_t *probes = json_object_get(report, "probes");
    int found = 0;
    for (size_t i = 0; i < json_array_size(probes); i++) {
        json_t *p = json_array_get(probes, i);
        const char *probe = json_string_value(json_object_get(p, "probe"));
        const char *path = json_string_value(json_object_get(p, "path"));
        EXPECT(probe && path && *probe);
        if (!probe || !path)
            continue;
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        EXPECT(strstr(probe, " ") != NULL); /* several words */
        EXPECT_EQ_INT(sh("$C search --json -k 5 %s -- %s", extra, probe), 0);
        json_t *rk = json_object_get(json_object_get(p, "rank"), mode);
        EXPECT_EQ_INT(json_is_integer(rk) ? json_integer_value(rk) : 0, rank_in_search(base));
        found += json_is_integer(rk);
    }
    return found;
}

TEST(check_retrieval_keyword)
{
    EXPECT_EQ_INT(make_library(), 0);
    EXPECT_EQ_INT(sh("$C check retrieval -n 6 --json"), 0);
    json_error_t je;
    json_t *r = json_loads(out_buf, 0, &je);
    EXPECT(json_is_object(r));
    EXPECT_EQ_INT(json_integer_value(json_object_get(r, "passages")), 10);
    EXPECT_EQ_INT(json_integer_value(json_object_get(r, "probed")), 6);
    EXPECT_CONTAINS(json_string_value(json_object_get(r, "probes_are")), "not real questions");
    EXPECT_STR(json_string_value(json_object_get(r, "current")), "keyword");
    EXPECT_EQ_INT(json_array_size(json_object_get(r, "modes")), 1);
    EXPECT_EQ_INT(json_array_size(json_object_get(r, "unavailable")), 3);
    json_t *kw = mode_row(r, "keyword");
    EXPECT(kw != NULL);
    /* the probes are words of their passage, not the passage */
    json_t *probes = json_object_get(r, "probes");
    EXPECT_EQ_INT(json_array_size(probes), 6);
    for (size_t i = 0; i < json_array_size(probes); i++) {
        json_t *p = json_array_get(probes, i);
        char file[4096];
        snprintf(file, sizeof file, "cat '%s'", json_string_value(json_object_get(p, "path")));
        const char *probe = json_string_value(json_object_get(p, "probe"));
        char words[400];
        snprintf(words, sizeof words, "%s", probe ? probe : "");
        EXPECT_EQ_INT(sh("%s", file), 0);
        for (char *w = strtok(words, " "); w; w = strtok(NULL, " ")) {
            for (char *c = out_buf; *c; c++) /* the passage, lower case */
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
            EXPECT_CONTAINS(out_buf, w);
        }
        EXPECT(probe && strlen(probe) < strlen(out_buf) - 10);
    }
    /* recall is what search does with each probe, and these probes mostly work */
    int found = check_ranks(r, "keyword", "--no-rerank");
    double r5 = json_real_value(json_object_get(kw, "recall_at_5"));
    EXPECT_NEAR(r5, found / 6.0, 1e-9);
    EXPECT(r5 >= 0.5);
    EXPECT(json_real_value(json_object_get(kw, "recall_at_1")) <= r5);
    json_decref(r);

    /* the same seed, the same sample; the text report says what it measured */
    EXPECT_EQ_INT(sh("$C check retrieval -n 6 --json --seed 7 | grep '\"probe\"' > $D/../ck1 && "
                     "$C check retrieval -n 6 --json --seed 7 | grep '\"probe\"' | "
                     "cmp - $D/../ck1 && wc -l < $D/../ck1"), 0);
    EXPECT_EQ_INT(atoi(out_buf), 6);
    EXPECT_EQ_INT(sh("$C check retrieval -n 6"), 0);
    EXPECT_CONTAINS(out_buf, "keyword probes from each passage's rarest words, not real questions");
    EXPECT_CONTAINS(out_buf, "<- what search uses now");
    EXPECT_CONTAINS(out_buf, "hybrid             not measured: no embedding model installed");
    EXPECT_CONTAINS(out_buf, "recall@5");

    /* usage and an empty library */
    EXPECT_EQ_INT(sh("$C check"), 2);
    EXPECT_EQ_INT(sh("$C check speed"), 2);
    EXPECT_CONTAINS(err_buf, "unknown check 'speed'");
    EXPECT_EQ_INT(sh("$C check retrieval -n 0"), 2);
    EXPECT_EQ_INT(sh("$C check --help"), 0);
    EXPECT_CONTAINS(out_buf, "usage: cairn check retrieval");
    EXPECT_EQ_INT(sh("$C --help"), 0);
    EXPECT_CONTAINS(out_buf, "check     retrieval");
    EXPECT_EQ_INT(sh("rm -rf $CAIRN_HOME && $C check retrieval"), 1);
    EXPECT_CONTAINS(err_buf, "the library is empty");
}

/* With a reranker and an embedding model installed: four rows, the current
** one hybrid + rerank, each measured as search does it. */
TEST(check_retrieval_all_modes)
{
    const char *bert = test_tiny_bert();
    if (!bert)
        return;
    const char *tools = getenv("CAIRN_TOOLS");
    EXPECT_EQ_INT(make_library(), 0);
    EXPECT_EQ_INT(sh("%s/mkmodel --shape minilm --n-layer 2 --n-embd 128 --n-head 2 --n-head-kv 2 "
                     "--n-ff 512 --type f16 --rerank --tokenizer %s -o $D/../ck-rr.gguf && "
                     "$C models import $D/../ck-rr.gguf --name ck-rr && "
                     "$C models import %s --name ck-emb && $C index",
                     tools && *tools ? tools : "build",
                     test_data("vocab/ggml-vocab-bert-bge.gguf"), bert),
                  0);
    EXPECT_EQ_INT(sh("$C check retrieval -n 4 --json"), 0);
    json_error_t je;
    json_t *r = json_loads(out_buf, 0, &je);
    EXPECT_STR(json_string_value(json_object_get(r, "current")), "hybrid + rerank");
    EXPECT_EQ_INT(json_array_size(json_object_get(r, "modes")), 4);
    EXPECT_EQ_INT(json_array_size(json_object_get(r, "unavailable")), 0);
    /* the hybrid rows first; then, with the embedding model removed, search
    ** is keyword search again for the keyword rows */
    const char *modes[4][2] = {{"hybrid", "--no-rerank"},
                               {"hybrid + rerank", ""},
                               {"keyword", "--no-rerank"},
                               {"keyword + rerank", ""}};
    for (int m = 0; m < 4; m++) {
        if (m == 2)
            EXPECT_EQ_INT(sh("$C models rm ck-emb"), 0);
        json_t *row = mode_row(r, modes[m][0]);
        EXPECT(row != NULL);
        int found = check_ranks(r, modes[m][0], modes[m][1]);
        EXPECT_NEAR(json_real_value(json_object_get(row, "recall_at_5")), found / 4.0, 1e-9);
    }
    json_decref(r);
    /* --no-rerank: no reranked rows, said why */
    EXPECT_EQ_INT(sh("$C check retrieval -n 4 --no-rerank"), 0);
    EXPECT_CONTAINS(out_buf, "keyword + rerank   not measured: --no-rerank");
}

/* With a language model the probes are questions it writes (a random-weight
** model's are gibberish, but they are its output, searched as they are);
** a model whose context cannot hold a passage falls back to keyword probes,
** and says so. */
TEST(check_retrieval_model_questions)
{
    const char *tools = getenv("CAIRN_TOOLS");
    EXPECT_EQ_INT(make_library(), 0);
    /* untied output: a random model with tied embeddings repeats its last
    ** prompt token (a newline) */
    EXPECT_EQ_INT(sh("%s/mkmodel --shape tiny --type f16 --ctx 1024 --untied --seed 2 "
                     "--tokenizer %s -o $D/../ck-chat.gguf",
                     tools && *tools ? tools : "build", test_data("vocab/ggml-vocab-llama-bpe.gguf")),
                  0);
    EXPECT_EQ_INT(sh("$C check retrieval -n 4 --json --keyword-probes -m $D/../ck-chat.gguf"), 0);
    json_error_t je;
    json_t *kw = json_loads(out_buf, 0, &je);
    EXPECT_CONTAINS(json_string_value(json_object_get(kw, "probes_are")), "keyword probes");
    EXPECT_EQ_INT(sh("$C check retrieval -n 4 --json -m $D/../ck-chat.gguf"), 0);
    json_t *r = json_loads(out_buf, 0, &je);
    EXPECT_STR(json_string_value(json_object_get(r, "probes_are")),
               "questions the language model wrote about each passage");
    EXPECT_EQ_INT(json_integer_value(json_object_get(r, "questions")), 4);
    EXPECT_EQ_INT(json_integer_value(json_object_get(r, "keyword_fallbacks")), 0);
    json_t *pk = json_object_get(kw, "probes"), *pq = json_object_get(r, "probes");
    EXPECT_EQ_INT(json_array_size(pq), 4);
    for (size_t i = 0; i < json_array_size(pq); i++) {
        json_t *q = json_array_get(pq, i), *k = json_array_get(pk, i);
        EXPECT_STR(json_string_value(json_object_get(q, "kind")), "question");
        EXPECT_STR(json_string_value(json_object_get(k, "kind")), "keyword");
        /* the same passages, other probes */
        EXPECT_EQ_INT(json_integer_value(json_object_get(q, "passage_id")),
                      json_integer_value(json_object_get(k, "passage_id")));
        EXPECT(strcmp(json_string_value(json_object_get(q, "probe")) ?: "",
                      json_string_value(json_object_get(k, "probe")) ?: "") != 0);
    }
    json_decref(kw);
    json_decref(r);
    /* a context too small for the prompt: keyword probes, said so */
    EXPECT_EQ_INT(sh("$C check retrieval -n 2 -m %s", test_data("models/aidreams260K.gguf")), 0);
    EXPECT_CONTAINS(out_buf, "Probes: keyword probes from each passage's rarest words, not real "
                             "questions");
    EXPECT_CONTAINS(out_buf, "it wrote nothing usable for 2 of the 2 passages");
}
