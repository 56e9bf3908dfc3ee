/*
** test_harness.c: the test runner's own counting. node's TAP summary must
** count every test it reports: cancelled ones as failures, skipped and todo
** ones as skips, each named.
*/
#include "test.h"

/* What `node --test --test-reporter=tap` (node 20) printed for a file with a
** passing test, two skips, two todos (one failing) and a test whose subtest
** was cancelled by its parent. */
static const char tap[] =
    "TAP version 13\n"
    "# Subtest: grp\n"
    "    # Subtest: a pass\n"
    "    ok 1 - a pass\n"
    "    # Subtest: a skip\n"
    "    ok 2 - a skip # SKIP no chromium\n"
    "    # Subtest: a todo\n"
    "    ok 3 - a todo # TODO later\n"
    "    # Subtest: a todo failing\n"
    "    not ok 4 - a todo failing # TODO\n"
    "      ---\n"
    "      error: 'x'\n"
    "      ...\n"
    "    # Subtest: plain skip\n"
    "    ok 5 - plain skip # SKIP absent input X\n"
    "    1..5\n"
    "ok 1 - grp\n"
    "# Subtest: cancelled parent\n"
    "    # Subtest: child\n"
    "    not ok 1 - child\n"
    "      ---\n"
    "      failureType: 'cancelledByParent'\n"
    "      ...\n"
    "    1..1\n"
    "not ok 2 - cancelled parent\n"
    "1..2\n"
    "# tests 7\n"
    "# suites 1\n"
    "# pass 1\n"
    "# fail 1\n"
    "# cancelled 1\n"
    "# skipped 2\n"
    "# todo 2\n"
    "# duration_ms 400.747948\n";

TEST(harness_node_tap_counts_everything)
{
    node_tap r;
    EXPECT_EQ_INT(test_parse_node_tap(tap, &r), 0);
    EXPECT_EQ_INT(r.tests, 7);
    EXPECT_EQ_INT(r.pass, 1);
    EXPECT_EQ_INT(r.fail, 1);
    EXPECT_EQ_INT(r.cancelled, 1);
    EXPECT_EQ_INT(r.skipped, 2);
    EXPECT_EQ_INT(r.todo, 2);
    EXPECT_STR(r.not_run, "a skip (no chromium)\n"
                          "a todo (todo: later)\n"
                          "a todo failing (todo: )\n"
                          "plain skip (absent input X)\n");
}

TEST(harness_node_tap_refuses_a_summary_that_does_not_add_up)
{
    node_tap r;
    /* a count the parser does not know about would hide tests */
    EXPECT_EQ_INT(test_parse_node_tap("ok 1 - a\n# tests 3\n# pass 1\n# fail 0\n# cancelled 0\n"
                                      "# skipped 0\n# todo 0\n", &r), -1);
    /* no summary at all: node crashed before the end */
    EXPECT_EQ_INT(test_parse_node_tap("TAP version 13\nok 1 - a\n", &r), -1);
    EXPECT_EQ_INT(test_parse_node_tap("# tests 2\n# pass 1\n# fail 0\n# cancelled 1\n"
                                      "# skipped 0\n# todo 0\n", &r), 0);
}
