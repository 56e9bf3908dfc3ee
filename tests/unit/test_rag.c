/* Prompt assembly, citation filtering, extractive answers, passage trimming. */
#include "test.h"
#include "gguf/gguf.h"
#include "rag/rag.h"
#include "tok/tok.h"

#include <ctype.h>

static const rag_source SRC[] = {
    {"/docs/manual.pdf", "Manual", 12, 12,
     "The pump must be primed before the first start. Open the bleed valve until water flows.", NULL, false},
    {"/docs/safety.pdf", "Safety", 3, 4,
     "Always wear gloves. The maximum operating pressure is 16 bar at 20 degrees.", NULL, false},
};

TEST(rag_prompt_numbers_passages_and_respects_budget)
{
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    int used = rag_build_user("What is the maximum pressure?", SRC, 2, 4096, NULL, NULL, &b, NULL);
    EXPECT_EQ_INT(used, 2);
    EXPECT_CONTAINS(b.data, "[1] manual.pdf, p. 12\nThe pump must be primed");
    EXPECT_CONTAINS(b.data, "[2] safety.pdf, pp. 3-4\nAlways wear gloves");
    EXPECT_CONTAINS(b.data, "Question: What is the maximum pressure?");
    b.len = 0;
    /* room for one passage only: the first is kept, the second left out */
    used = rag_build_user("What is the maximum pressure?", SRC, 2, 70, NULL, NULL, &b, NULL);
    EXPECT_EQ_INT(used, 1);
    EXPECT(strstr(b.data, "safety.pdf") == NULL);
    cn_buf_free(&b);
}

static const char *filter_all(const char *const *pieces, int n, int n_sources, bool *used,
                              rag_cite_filter *f, cn_buf *out)
{
    rag_cite_init(f, n_sources, used);
    for (int i = 0; i < n; i++)
        rag_cite_feed(f, pieces[i], strlen(pieces[i]), out);
    rag_cite_flush(f, out);
    return out->data ? out->data : "";
}

TEST(rag_citations_checked_while_streaming)
{
    bool used[2] = {0};
    rag_cite_filter f;
    cn_buf o;
    cn_buf_init(&o, 1 << 20);
    /* a citation split across pieces; an invalid one dropped; brackets that are
    ** not citations pass through */
    const char *p1[] = {"Prime the pump [", "1]. Pressure max 16 bar [2, 1] or [7]", ". See [a] and [", "]"};
    EXPECT_STR(filter_all(p1, 4, 2, used, &f, &o),
               "Prime the pump [1]. Pressure max 16 bar [2, 1] or . See [a] and []");
    EXPECT(used[0] && used[1]);
    EXPECT_EQ_INT(f.n_invalid, 1);
    EXPECT_EQ_INT(f.invalid[0], 7);
    o.len = 0;
    bool u2[2] = {0};
    const char *p2[] = {"trailing [1"};
    EXPECT_STR(filter_all(p2, 1, 2, u2, &f, &o), "trailing [1");
    EXPECT(!u2[0]);
    o.len = 0;
    const char *p3[] = {"[[2]] [0] [3, 2]"};
    EXPECT_STR(filter_all(p3, 1, 2, u2, &f, &o), "[[2]]  ");
    EXPECT_EQ_INT(f.n_invalid, 2);
    cn_buf_free(&o);
}

TEST(rag_extractive_answer_cites_best_sentences)
{
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    bool used[2] = {0};
    int k = rag_extract("What is the maximum operating pressure?", SRC, 2, 1, &b, used);
    EXPECT_EQ_INT(k, 1);
    EXPECT_STR(b.data, "The maximum operating pressure is 16 bar at 20 degrees. [2]");
    EXPECT(!used[0] && used[1]);
    b.len = 0;
    EXPECT_EQ_INT(rag_extract("zebra giraffe", SRC, 2, 3, &b, used), 0);
    cn_buf_free(&b);
}

/* The extractive answer reads as prose: the question was "How do I cancel a
** print job?" and the best-ranked passage is an API listing (anchors, list
** fragments, a heading). Before, the answer ran those fragments together
** ("job/status: Reads the status of the job ID {#job-status} [1] - jobid -
** id of the job (integer). [1] ...") in passage order; now the sentence that
** answers comes first, whole, whichever passage holds it, and no anchor,
** bullet or heading is offered. */
TEST(rag_extractive_answer_reads_as_prose)
{
    static const rag_source src[] = {
        {"/docs/cups-api.md", "API", 7, 7,
         "3.2 Job status\n\njob/status: Reads the status of the job ID {#job-status}\n"
         "- jobid - id of the job (integer).\n- finished - boolean\n- duration - seconds the "
         "job took to print.\n\nThe job list shows every job with its id.", NULL, false},
        {"/docs/cups-guide.md", "Guide", 21, 21,
         "Printing from the shell\n\nYou can cancel a job that is waiting or printing with the "
         "cancel command followed by its id, e.g. cancel 42. The lpq command lists the queue.", NULL, false},
    };
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    bool used[2] = {0};
    int k = rag_extract("How do I cancel a print job?", src, 2, 3, &b, used);
    EXPECT(k >= 1);
    const char *want = "You can cancel a job that is waiting or printing with the cancel command "
                       "followed by its id, e.g. cancel 42. [2]";
    EXPECT(b.data && !strncmp(b.data, want, strlen(want)));
    EXPECT(used[1]);
    EXPECT(!strstr(b.data ? b.data : "", "{#"));
    EXPECT(!strstr(b.data ? b.data : "", "3.2 Job status"));
    EXPECT(!strstr(b.data ? b.data : "", "] - "));
    /* a list item is a unit of its own, its bullet gone */
    b.len = 0;
    memset(used, 0, sizeof used);
    EXPECT_EQ_INT(rag_extract("How many seconds did the job need?", src, 2, 1, &b, used), 1);
    EXPECT_STR(b.data, "duration - seconds the job took to print. [1]");
    /* the same sentence in two overlapping passages is said once */
    static const rag_source twice[] = {
        {"/d/a.txt", "A", 1, 1, "Close the valve before you remove the filter housing.", NULL, false},
        {"/d/a.txt", "A", 1, 2, "Close the valve before you remove the filter housing. Then wait.", NULL, false},
    };
    b.len = 0;
    EXPECT_EQ_INT(rag_extract("remove the filter housing", twice, 2, 3, &b, used), 1);
    EXPECT_STR(b.data, "Close the valve before you remove the filter housing. [1]");
    cn_buf_free(&b);
}

/* ---- passages trimmed to the question (trim.c) --------------------------- */

/* Tokens as words: a count a test can reason about. */
static int count_words(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    int w = 0;
    for (size_t i = 0; i < n; i++)
        w += !isspace((unsigned char)s[i]) && (i == 0 || isspace((unsigned char)s[i - 1]));
    return w;
}

static const char TRIM_PASSAGE[] =
    "Pressure limits\n\n"
    "The housing is cast in grey iron and painted blue. "
    "Its flanges follow the usual pattern for this size. "
    "The maximum operating pressure is 16 bar at 20 degrees. "
    "Above that the relief valve opens and vents to the drain. "
    "Spare gaskets ship in a bag taped to the frame. "
    "The nameplate lists the serial number and the year. "
    "Paint touch-ups use the colour code on the nameplate.";

TEST(rag_trim_keeps_the_sentences_with_the_question_terms_and_the_heading)
{
    rag_trim_opts o = rag_trim_defaults();
    o.fill = false; /* the matching units and their context only */
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    EXPECT_EQ_INT(rag_trim_passage("What is the maximum operating pressure?", TRIM_PASSAGE,
                                   strlen(TRIM_PASSAGE), &o, 60, count_words, NULL, &b),
                  CN_OK);
    /* the heading, then the cut shown, the sentence before, the match, the one after */
    EXPECT_STR(b.data, "Pressure limits \xE2\x80\xA6 Its flanges follow the usual pattern for "
                       "this size. The maximum operating pressure is 16 bar at 20 degrees. Above "
                       "that the relief valve opens and vents to the drain. \xE2\x80\xA6");
    /* with fill, the rest of the budget goes to the units nearest the match
    ** (the earlier of two as near): here the one sentence before */
    o.fill = true;
    b.len = 0;
    rag_trim_passage("What is the maximum operating pressure?", TRIM_PASSAGE,
                     strlen(TRIM_PASSAGE), &o, 55, count_words, NULL, &b);
    EXPECT(!strncmp(b.data, "Pressure limits\n\nThe housing is cast", 35));
    EXPECT_CONTAINS(b.data, "The maximum operating pressure is 16 bar");
    EXPECT(strstr(b.data, "Spare gaskets") == NULL && strstr(b.data, "colour code") == NULL);
    EXPECT(count_words(NULL, b.data, b.len) <= 55);
    /* within budget: the passage as it is */
    b.len = 0;
    rag_trim_passage("pressure", TRIM_PASSAGE, strlen(TRIM_PASSAGE), &o, 500, count_words, NULL,
                     &b);
    EXPECT_STR(b.data, TRIM_PASSAGE);
    cn_buf_free(&b);
}

TEST(rag_trim_respects_the_budget)
{
    rag_trim_opts o = rag_trim_defaults();
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    for (int fill = 0; fill < 2; fill++)
        for (int budget = 1; budget <= 90; budget++) {
            o.fill = fill;
            b.len = 0;
            EXPECT_EQ_INT(rag_trim_passage("relief valve serial number", TRIM_PASSAGE,
                                           strlen(TRIM_PASSAGE), &o, budget, count_words, NULL,
                                           &b),
                          CN_OK);
            EXPECT(count_words(NULL, b.data ? b.data : "", b.len) <= budget);
            b.len = 0; /* the default count (a token per 4 bytes) too */
            rag_trim_passage("relief valve serial number", TRIM_PASSAGE, strlen(TRIM_PASSAGE), &o,
                             budget, NULL, NULL, &b);
            EXPECT(b.len / 4 + 1 <= (size_t)budget || b.len == 0);
        }
    cn_buf_free(&b);
}

TEST(rag_trim_keeps_the_opening_of_a_passage_with_no_match)
{
    rag_trim_opts o = rag_trim_defaults();
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    for (int fill = 0; fill < 2; fill++) {
        o.fill = fill;
        b.len = 0;
        rag_trim_passage("zebra giraffe", TRIM_PASSAGE, strlen(TRIM_PASSAGE), &o, 40, count_words,
                         NULL, &b);
        /* retrieved for a reason: its opening, never nothing */
        EXPECT(b.data && !strncmp(b.data, "Pressure limits\n\nThe housing is cast", 35));
        EXPECT(b.len >= 3 && !memcmp(b.data + b.len - 3, "\xE2\x80\xA6", 3));
        EXPECT(count_words(NULL, b.data, b.len) <= (fill ? 40 : 20));
    }
    cn_buf_free(&b);
}

TEST(rag_trim_never_cuts_inside_a_code_point)
{
    /* one long run of two- and three-byte characters with no sentence end */
    cn_buf p, b;
    cn_buf_init(&p, 1 << 20);
    cn_buf_init(&b, 1 << 20);
    for (int i = 0; i < 300; i++)
        cn_buf_printf(&p, i % 7 == 6 ? "\xE6\x97\xA5\xE6\x9C\xAC " : "\xC3\xA9t\xC3\xA9");
    rag_trim_opts o = rag_trim_defaults();
    for (int budget = 1; budget < 200; budget += 7) {
        b.len = 0;
        rag_trim_passage("\xC3\xA9t\xC3\xA9", p.data, p.len, &o, budget, NULL, NULL, &b);
        EXPECT_EQ_INT((int)cn_utf8_valid_prefix(b.data ? b.data : "", b.len), (int)b.len);
        EXPECT(b.len / 4 + 1 <= (size_t)budget || b.len == 0);
    }
    cn_buf_free(&p);
    cn_buf_free(&b);
}

TEST(rag_trim_bounds_a_hostile_passage)
{
    /* 100 KB in one "sentence" with no punctuation, and 100 KB without a
    ** space: the opening words within the budget, quickly */
    cn_buf p, b;
    cn_buf_init(&p, 1 << 20);
    cn_buf_init(&b, 1 << 20);
    for (int i = 0; p.len < 100000; i++)
        cn_buf_printf(&p, "word%d pressure ", i);
    rag_trim_opts o = rag_trim_defaults();
    double t0 = cn_now();
    EXPECT_EQ_INT(rag_trim_passage("pressure", p.data, p.len, &o, 100, count_words, NULL, &b),
                  CN_OK);
    EXPECT(b.len > 0 && count_words(NULL, b.data, b.len) <= 100);
    EXPECT(!strncmp(b.data, "word0 pressure word1", 20));
    memset(p.data, 'x', p.len);
    b.len = 0;
    EXPECT_EQ_INT(rag_trim_passage("pressure", p.data, p.len, &o, 100, NULL, NULL, &b), CN_OK);
    EXPECT(b.len > 0 && b.len / 4 + 1 <= 100);
    EXPECT(cn_now() - t0 < 5.0);
    cn_buf_free(&p);
    cn_buf_free(&b);
}

TEST(rag_trim_shares_the_budget_and_keeps_the_numbering)
{
    rag_source src[3] = {
        {"/docs/a.pdf", NULL, 3, 3, TRIM_PASSAGE, NULL, false},
        {"/docs/b.pdf", NULL, 7, 7, "Short and whole.", NULL, false},
        {"/docs/c.pdf", NULL, 9, 9, TRIM_PASSAGE, NULL, false},
    };
    cn_buf out[3];
    int before[3], after[3];
    for (int i = 0; i < 3; i++)
        cn_buf_init(&out[i], 1 << 20);
    rag_trim_opts o = rag_trim_defaults();
    o.budget = 83; /* 3 for the short one, 40 each for the others */
    EXPECT_EQ_INT(rag_trim("What is the maximum operating pressure?", src, 3, &o, count_words,
                           NULL, out, before, after),
                  CN_OK);
    EXPECT_STR(out[1].data, "Short and whole.");
    EXPECT_EQ_INT(after[1], 3);
    EXPECT_EQ_INT(before[0], count_words(NULL, TRIM_PASSAGE, strlen(TRIM_PASSAGE)));
    for (int i = 0; i < 3; i += 2) {
        EXPECT(after[i] <= 40 && after[i] < before[i]);
        EXPECT_CONTAINS(out[i].data, "The maximum operating pressure is 16 bar");
    }
    /* in the prompt: the same numbers and citations, the trimmed text */
    rag_source t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = src[i];
        t[i].text = out[i].data;
    }
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    EXPECT_EQ_INT(rag_build_user("What is the maximum operating pressure?", t, 3, 4096, NULL, NULL,
                                 &b, NULL),
                  3);
    EXPECT_CONTAINS(b.data, "[1] a.pdf, p. 3\nPressure limits");
    EXPECT_CONTAINS(b.data, "[2] b.pdf, p. 7\nShort and whole.");
    EXPECT_CONTAINS(b.data, "[3] c.pdf, p. 9\nPressure limits");
    EXPECT(strstr(b.data, "colour code") == NULL);
    /* budget 0: whole passages */
    o.budget = 0;
    rag_trim("pressure", src, 3, &o, count_words, NULL, out, before, after);
    EXPECT_STR(out[2].data, TRIM_PASSAGE);
    EXPECT_EQ_INT(after[2], before[2]);
    /* a passage with no text is an empty one, trimmed or not */
    src[1].text = NULL;
    for (int budget = 0; budget <= 40; budget += 40) {
        o.budget = budget;
        EXPECT_EQ_INT(rag_trim("pressure", src, 3, &o, count_words, NULL, out, before, after),
                      CN_OK);
        EXPECT_STR(out[1].data, "");
        EXPECT_EQ_INT(before[1] + after[1], 0);
    }
    for (int i = 0; i < 3; i++)
        cn_buf_free(&out[i]);
    cn_buf_free(&b);
}

TEST(rag_prompt_tokens_trims_and_says_how_much)
{
    gguf_file *g = NULL;
    tok_vocab *v = NULL;
    EXPECT_EQ_INT(gguf_open(&g, test_data("vocab/ggml-vocab-llama-bpe.gguf"), NULL), CN_OK);
    EXPECT_EQ_INT(tok_open(&v, g, NULL), CN_OK);
    if (!v) {
        gguf_close(g);
        return;
    }
    rag_source src[2] = {{"/docs/a.pdf", NULL, 3, 3, TRIM_PASSAGE, NULL, false},
                         {"/docs/b.pdf", NULL, 7, 7, TRIM_PASSAGE, NULL, false}};
    const char *q = "What is the maximum operating pressure?";
    int32_t *whole = NULL, *cut = NULL;
    int n_whole = 0, n_cut = 0;
    rag_prompt_info wi, ci;
    EXPECT_EQ_INT(rag_prompt_tokens(v, "llama3", 4096, q, src, 2, NULL, &whole, &n_whole, &wi,
                                    NULL),
                  CN_OK);
    EXPECT_EQ_INT(wi.n_used, 2);
    EXPECT_EQ_INT(wi.n_trimmed, 0);
    EXPECT(wi.passage_tokens > 100 && wi.passage_kept == wi.passage_tokens);
    rag_trim_opts o = rag_trim_defaults();
    o.budget = 60;
    EXPECT_EQ_INT(rag_prompt_tokens(v, "llama3", 4096, q, src, 2, &o, &cut, &n_cut, &ci, NULL),
                  CN_OK);
    EXPECT_EQ_INT(ci.n_used, 2);
    EXPECT_EQ_INT(ci.n_trimmed, 2);
    EXPECT_EQ_INT(ci.passage_tokens, wi.passage_tokens);
    EXPECT(ci.passage_kept <= 60 && ci.passage_kept > 20);
    /* the prompt is shorter by about what the passages lost */
    EXPECT(n_cut < n_whole && n_whole - n_cut >= ci.passage_tokens - ci.passage_kept - 8);
    /* the default budget holds these two whole */
    o = rag_trim_defaults();
    free(cut);
    EXPECT_EQ_INT(rag_prompt_tokens(v, "llama3", 4096, q, src, 2, &o, &cut, &n_cut, &ci, NULL),
                  CN_OK);
    EXPECT_EQ_INT(n_cut, n_whole);
    free(whole);
    free(cut);
    tok_close(v);
    gguf_close(g);
}
