/*
** `cairn summarize` end to end through the binary: the extractive summary
** (sentences quoted from their pages), the map-reduce summary with a
** random-weight model (every page in exactly one first-level group, every
** sentence's pages inside the document), resumption after kill -9 (the
** same summary, with the steps done before found in the library), and the
** errors a user can meet.
*/
#include "test.h"
#include "base/base.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char out_buf[1 << 20], err_buf[1 << 16];

static int sh(const char *fmt, ...)
{
    char setup[1200];
    const char *t = test_tmpdir();
    const char *tools = getenv("CAIRN_TOOLS");
    snprintf(setup, sizeof setup, "export CAIRN_HOME=%s/sum-home; CAIRN=%s; D=%s/sum-docs; T=%s",
             t, test_cairn_bin(), t, tools && *tools ? tools : "build");
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

/* A 12-page manual (pages cut by form feeds), each page's sentences naming
** their page, and a random-weight chat model with a small context, so that
** the pages need several groups and a second level. */
static void setup_docs(void)
{
    sh("rm -rf $D $CAIRN_HOME && mkdir -p $D && python3 - $D/manual.txt <<'EOF'\n"
       "import random, sys\n"
       "random.seed(1)\n"
       "w = 'pump valve pressure seal impeller bearing motor flow water cooling tower fan speed "
       "gauge filter pipe operator maintenance schedule inspection torque bolt'.split()\n"
       "pages = []\n"
       "for p in range(1, 13):\n"
       "    pages.append(' '.join('Page %%d says the %%s.' %% (p, ' '.join(random.choice(w) for _ "
       "in range(random.randint(8, 16)))) for s in range(6)))\n"
       "open(sys.argv[1], 'w').write('\\f'.join(pages))\n"
       "EOF\n"
       "printf 'Short note.\\n' > $D/tiny.txt && $CAIRN add $D");
    EXPECT_EQ_INT(sh("$T/mkmodel --shape tiny --type f16 --ctx 512 --untied --seed 2 "
                     "--tokenizer %s -o $D/../sum-chat.gguf",
                     test_data("vocab/ggml-vocab-llama-bpe.gguf")),
                  0);
}

static json_t *summary_json(const char *opts)
{
    if (sh("$CAIRN summarize --json %s $D/manual.txt", opts) != 0) {
        test_fail_at(__FILE__, __LINE__, "summarize %s failed: %s", opts, err_buf);
        return NULL;
    }
    json_error_t je;
    json_t *o = json_loads(out_buf, 0, &je);
    if (!o)
        test_fail_at(__FILE__, __LINE__, "summarize --json is not JSON: %s", je.text);
    return o;
}

TEST(summarize_extractive_quotes_its_pages)
{
    setup_docs();
    json_t *o = summary_json("--length short");
    if (!o)
        return;
    EXPECT_STR(json_string_value(json_object_get(o, "mode")), "extractive");
    json_t *ss = json_object_get(o, "sentences");
    EXPECT_EQ_INT((int)json_array_size(ss), 3);
    size_t i;
    json_t *e;
    int prev = 0;
    json_array_foreach(ss, i, e) {
        const char *t = json_string_value(json_object_get(e, "text"));
        json_t *pp = json_array_get(json_object_get(e, "pages"), 0);
        int page = (int)json_integer_value(json_array_get(pp, 0));
        /* the sentence is on the page it is cited with (each names its page) */
        char want[32];
        snprintf(want, sizeof want, "Page %d says", page);
        EXPECT(t && strncmp(t, want, strlen(want)) == 0);
        EXPECT(page >= prev); /* in document order */
        prev = page;
    }
    json_decref(o);
    /* without --json: the label and each sentence with its page */
    EXPECT_EQ_INT(sh("$CAIRN summarize $D/manual.txt"), 0);
    EXPECT_CONTAINS(err_buf, "extractive summary");
    EXPECT_CONTAINS(out_buf, " (p. ");
    int lines = 0;
    for (const char *p = out_buf; *p; p++)
        lines += *p == '\n';
    EXPECT_EQ_INT(lines, 7); /* medium */
}

/* The pages of every sentence and group as [first, last] pairs inside 1..n. */
static bool spans_inside(json_t *pp, int n)
{
    size_t k;
    json_t *p;
    if (json_array_size(pp) == 0)
        return false;
    json_array_foreach(pp, k, p) {
        int a = (int)json_integer_value(json_array_get(p, 0));
        int b = (int)json_integer_value(json_array_get(p, 1));
        if (a < 1 || b < a || b > n)
            return false;
    }
    return true;
}

TEST(summarize_map_reduce_covers_every_page_and_resumes)
{
    setup_docs();
    /* kill -9 in the middle of a run, then run again: it picks up where it
    ** stopped */
    EXPECT_EQ_INT(sh("$CAIRN summarize -m $D/../sum-chat.gguf --length short $D/manual.txt "
                     "2> $D/../sum-progress & pid=$!; "
                     "for i in $(seq 1 400); do "
                     "  [ $(grep -c '^step' $D/../sum-progress) -ge 5 ] && break; sleep 0.05; done; "
                     "kill -9 $pid; wait $pid; echo killed"),
                  0);
    EXPECT_CONTAINS(out_buf, "killed");
    json_t *o = summary_json("-m $D/../sum-chat.gguf --length short");
    if (!o)
        return;
    int steps = (int)json_integer_value(json_object_get(o, "steps"));
    int cached = (int)json_integer_value(json_object_get(o, "cached"));
    EXPECT(cached >= 4);
    EXPECT(cached < steps);
    char *resumed = json_dumps(json_object_get(o, "sentences"), JSON_COMPACT);

    /* the same summary from nothing, in a second library with the same file:
    ** the resumed one is the one a run never stopped gives */
    EXPECT_EQ_INT(sh("rm -rf $CAIRN_HOME-2 && CAIRN_HOME=$CAIRN_HOME-2 $CAIRN add "
                     "$D/manual.txt && CAIRN_HOME=$CAIRN_HOME-2 $CAIRN summarize --json -m "
                     "$D/../sum-chat.gguf --length short $D/manual.txt"),
                  0);
    json_t *f = json_loads(out_buf, 0, NULL);
    EXPECT(f != NULL);
    if (f) {
        EXPECT_STR(json_string_value(json_object_get(f, "mode")), "generated");
        EXPECT_EQ_INT((int)json_integer_value(json_object_get(f, "cached")), 0);
        EXPECT_EQ_INT((int)json_integer_value(json_object_get(f, "steps")), steps);
        char *fresh = json_dumps(json_object_get(f, "sentences"), JSON_COMPACT);
        EXPECT_STR(resumed, fresh);
        free(fresh);
        EXPECT_EQ_INT((int)json_integer_value(json_object_get(f, "pages")), 12);
        /* the first level's groups cover pages 1..12 in order, no gap, no
        ** overlap (a page too long for one call is several pieces of it) */
        json_t *gs = json_object_get(f, "groups");
        EXPECT(json_array_size(gs) >= 2);
        int next = 1;
        size_t i;
        json_t *g;
        json_array_foreach(gs, i, g) {
            int a = (int)json_integer_value(json_array_get(g, 0));
            int b = (int)json_integer_value(json_array_get(g, 1));
            EXPECT(a == next || a == next - 1);
            EXPECT(b >= a);
            next = b + 1;
        }
        EXPECT_EQ_INT(next, 13);
        EXPECT(steps > (int)json_array_size(gs)); /* a level above the pages */
        json_t *ss = json_object_get(f, "sentences"), *e;
        EXPECT(json_array_size(ss) > 0);
        json_array_foreach(ss, i, e)
            EXPECT(spans_inside(json_object_get(e, "pages"), 12));
        json_decref(f);
    }

    /* run again: every step is found in the library, the summary is the same */
    json_t *o2 = summary_json("-m $D/../sum-chat.gguf --length short");
    if (o2) {
        EXPECT_EQ_INT((int)json_integer_value(json_object_get(o2, "cached")), steps);
        char *again = json_dumps(json_object_get(o2, "sentences"), JSON_COMPACT);
        EXPECT_STR(again, resumed);
        free(again);
        json_decref(o2);
    }
    free(resumed);
    json_decref(o);

    /* a changed document is summarised afresh: old partial results are not reused */
    EXPECT_EQ_INT(sh("printf '\\fPage 13 says the new pump is quieter than the old one.' >> "
                     "$D/manual.txt && $CAIRN add $D/manual.txt"),
                  0);
    json_t *o5 = summary_json("-m $D/../sum-chat.gguf --length short");
    if (o5) {
        EXPECT_EQ_INT((int)json_integer_value(json_object_get(o5, "cached")), 0);
        EXPECT_EQ_INT((int)json_integer_value(json_object_get(o5, "pages")), 13);
        json_decref(o5);
    }
}

TEST(summarize_errors_are_clear)
{
    setup_docs();
    EXPECT_EQ_INT(sh("$CAIRN summarize $D/nothere.pdf"), 1);
    EXPECT_CONTAINS(err_buf, "nothere.pdf: no such document in the library");
    EXPECT_EQ_INT(sh("$CAIRN summarize --length huge $D/manual.txt"), 2);
    EXPECT_CONTAINS(err_buf, "expected short, medium or long");
    EXPECT_EQ_INT(sh("$CAIRN summarize"), 2);
    EXPECT_CONTAINS(err_buf, "missing DOC");
    /* by file name alone, and by id */
    EXPECT_EQ_INT(sh("$CAIRN summarize --length short manual.txt"), 0);
    EXPECT_EQ_INT(sh("$CAIRN summarize -m $D/../nothere.gguf $D/manual.txt"), 1);
    /* a document with no full sentence: said, not an empty summary */
    EXPECT_EQ_INT(sh("$CAIRN summarize $D/tiny.txt"), 1);
    EXPECT_CONTAINS(err_buf, "no sentences to summarise");
}
