/* Prompt assembly, citation filtering, extractive answers. */
#include "test.h"
#include "rag/rag.h"

static const rag_source SRC[] = {
    {"/docs/manual.pdf", "Manual", 12, 12,
     "The pump must be primed before the first start. Open the bleed valve until water flows."},
    {"/docs/safety.pdf", "Safety", 3, 4,
     "Always wear gloves. The maximum operating pressure is 16 bar at 20 degrees."},
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
         "job took to print.\n\nThe job list shows every job with its id."},
        {"/docs/cups-guide.md", "Guide", 21, 21,
         "Printing from the shell\n\nYou can cancel a job that is waiting or printing with the "
         "cancel command followed by its id, e.g. cancel 42. The lpq command lists the queue."},
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
        {"/d/a.txt", "A", 1, 1, "Close the valve before you remove the filter housing."},
        {"/d/a.txt", "A", 1, 2, "Close the valve before you remove the filter housing. Then wait."},
    };
    b.len = 0;
    EXPECT_EQ_INT(rag_extract("remove the filter housing", twice, 2, 3, &b, used), 1);
    EXPECT_STR(b.data, "Close the valve before you remove the filter housing. [1]");
    cn_buf_free(&b);
}
