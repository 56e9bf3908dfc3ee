/*
** run_tests.c: runs every test registered with TEST() and prints a summary.
** Usage: run_tests [SUBSTRING]   (only tests whose name contains SUBSTRING)
*/
#include "test.h"

#include <stdarg.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MAX_TESTS 2048

static test_case tests[MAX_TESTS];
static int n_tests;
static int cur_failed, cur_skipped;
static char skip_reason[256];
static char tmp_root[256];

void test_register(const char *name, void (*fn)(void))
{
    if (n_tests < MAX_TESTS)
        tests[n_tests++] = (test_case){name, fn};
}

void test_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cur_failed++;
}

void test_skip(const char *why)
{
    cur_skipped = 1;
    snprintf(skip_reason, sizeof skip_reason, "%s", why);
}

int test_failed_now(void) { return cur_failed > 0; }

static int ext_passed, ext_failed, ext_skipped;

void test_add_external(int passed, int failed, int skipped)
{
    ext_passed += passed;
    ext_failed += failed;
    ext_skipped += skipped;
}

const char *test_fixtures(void)
{
    const char *e = getenv("CAIRN_FIXTURES");
    return e && *e ? e : "../shared/fixtures";
}

const char *test_fixture(const char *rel)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 1024, "%s/%s", test_fixtures(), rel);
    return access(p, R_OK) == 0 ? p : NULL;
}

const char *test_data(const char *rel)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 1024, "tests/data/%s", rel);
    return p;
}

static void rm_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

const char *test_tmpdir(void)
{
    if (!tmp_root[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp_root, sizeof tmp_root, "%s/cairn-test-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmp_root)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return tmp_root;
}

/* Read a captured output file into buf (NUL-terminated, truncated to cap). */
static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

int test_shell(const char *cmd, char *out, size_t out_cap, char *err, size_t err_cap)
{
    const char *t = test_tmpdir();
    size_t len = strlen(cmd) + 2 * strlen(t) + 64;
    char *full = malloc(len);
    if (!full)
        return -1;
    snprintf(full, len, "{ %s\n} >%s/sh.out 2>%s/sh.err", cmd, t, t);
    int st = system(full);
    free(full);
    char p[1100];
    snprintf(p, sizeof p, "%s/sh.out", t);
    slurp(p, out, out_cap);
    snprintf(p, sizeof p, "%s/sh.err", t);
    slurp(p, err, err_cap);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int cmp_test(const void *a, const void *b)
{
    return strcmp(((const test_case *)a)->name, ((const test_case *)b)->name);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    qsort(tests, (size_t)n_tests, sizeof tests[0], cmp_test);
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        cur_failed = cur_skipped = 0;
        tests[i].fn();
        if (cur_failed) {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        } else if (cur_skipped) {
            printf("skip %s (%s)\n", tests[i].name, skip_reason);
            skipped++;
        } else {
            printf("ok   %s\n", tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    if (tmp_root[0])
        rm_tree(tmp_root);
    if (ext_passed + ext_failed + ext_skipped)
        printf("(%d passed, %d failed, %d skipped of them in node's test runner)\n", ext_passed,
               ext_failed, ext_skipped);
    passed += ext_passed;
    failed += ext_failed;
    skipped += ext_skipped;
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
