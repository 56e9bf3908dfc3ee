/*
** test.h: a tiny test framework. TEST(name) defines and registers a test;
** EXPECT_* record a failure with file:line and both values but keep going;
** SKIP() marks a test skipped (a missing fixture), never passed.
** run_tests.c runs every registered test (or those matching argv[1]) and
** ends with the line "N passed, N failed, N skipped".
*/
#ifndef CN_TEST_H
#define CN_TEST_H

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

void test_register(const char *name, void (*fn)(void));
void test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void test_skip(const char *why);
int test_failed_now(void); /* has the running test failed so far? */
/* Count the results of an outside test runner (node's) that a test ran, so
** the final line covers them: each of its tests counts as one of ours. */
void test_add_external(int passed, int failed, int skipped);
/* Count the results in the TAP output of `node --test --test-reporter=tap`:
** its pass count as passed, fail and cancelled as failed, skipped and todo as
** skipped (each printed by name, like ours: "skip node: NAME (REASON)").
** Returns how many failed, or -1 (a failure recorded) when the summary is
** missing or its counts do not add up to its number of tests. */
int test_add_node_tap(const char *tap);
/* What test_add_node_tap reads, without counting it: the summary's numbers
** and one line "NAME (REASON)" per skipped or todo test. Returns 0, or -1 when
** the summary is missing or does not add up. */
typedef struct node_tap {
    int tests, pass, fail, cancelled, skipped, todo;
    char not_run[4096];
} node_tap;
int test_parse_node_tap(const char *tap, node_tap *r);

/* Where the shared fixtures live: $CAIRN_FIXTURES or ../shared/fixtures. */
const char *test_fixtures(void);
/* Path of a fixture file under test_fixtures(), or NULL if it does not exist. */
const char *test_fixture(const char *rel);
/* Path of a file under tests/data (always present in a clone). */
const char *test_data(const char *rel);
/* A small random-weight BERT embedding model (the shape of the shared
** tiny-bert fixture: 128 wide, 2 layers, 2 heads, F16) with the bge
** WordPiece vocabulary from tests/data, written by build/mkmodel into the
** temporary directory on first use. NULL, with a failure recorded, if it
** cannot be made. Tests that need an embedding model but no reference
** numbers use it, so they run in any clone. */
const char *test_tiny_bert(void);
/* A fresh temporary directory for this test run (removed at exit). */
const char *test_tmpdir(void);
/* Run cmd with sh; its stdout and stderr land in out and err (truncated,
** NUL-terminated). Returns the exit status, -1 if killed by a signal. */
int test_shell(const char *cmd, char *out, size_t out_cap, char *err, size_t err_cap);

/* test_shell of "setup; <fmt formatted>": the shell helpers of the CLI
** tests, each with its own variables in setup. */
int test_vshell(const char *setup, char *out, size_t out_cap, char *err, size_t err_cap,
                const char *fmt, va_list ap);

/* The cairn binary under test: $CAIRN_BIN, else build/cairn. */
const char *test_cairn_bin(void);

/* Cosine similarity of a[0..n) and b[0..n), summed in double. */
static inline double test_cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_reg_##name(void)                                 \
    {                                                                                              \
        test_register(#name, test_##name);                                                         \
    }                                                                                              \
    static void test_##name(void)

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail_at(__FILE__, __LINE__, "expected %s", #cond);                                \
    } while (0)

#define EXPECT_EQ_INT(a, b)                                                                        \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);            \
    } while (0)

#define EXPECT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            test_fail_at(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_,     \
                         (double)(tol));                                                           \
    } while (0)

#define EXPECT_STR(a, b)                                                                           \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            test_fail_at(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                 \
                         a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                  \
    } while (0)

/* Substring check: a must contain b. */
#define EXPECT_CONTAINS(a, b)                                                                      \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || !strstr(a_, b_))                                                         \
            test_fail_at(__FILE__, __LINE__, "\"%s\" should contain \"%s\"", a_ ? a_ : "(null)",  \
                         b_ ? b_ : "(null)");                                                      \
    } while (0)

#define SKIP(why)                                                                                  \
    do {                                                                                           \
        test_skip(why);                                                                            \
        return;                                                                                    \
    } while (0)

#endif
