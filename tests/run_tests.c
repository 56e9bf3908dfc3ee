/*
** run_tests.c: runs every test registered with TEST() and prints a summary.
** Usage: run_tests [SUBSTRING]   (only tests whose name contains SUBSTRING)
** Every skipped test is printed as "skip NAME (REASON)"; with
** $CAIRN_SKIP_LOG set, their names also go to that file, one a line (node's
** as "node: NAME"), so CI can compare them with the skips it expects.
*/
#include "test.h"
#include "base/base.h" /* CN_MIN */

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

static FILE *skip_log;

/* Note a skipped test's name in $CAIRN_SKIP_LOG, if set. */
static void log_skip(const char *prefix, const char *name, size_t len)
{
    if (skip_log)
        fprintf(skip_log, "%s%.*s\n", prefix, (int)len, name);
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

/* The number after "\n# KEY " in node's TAP summary, or -1. */
static int tap_count(const char *tap, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\n# %s ", key);
    if (!strncmp(tap, pat + 1, strlen(pat + 1))) /* the first line */
        return atoi(tap + strlen(pat + 1));
    const char *p = strstr(tap, pat);
    return p ? atoi(p + strlen(pat)) : -1;
}

int test_parse_node_tap(const char *tap, node_tap *r)
{
    memset(r, 0, sizeof *r);
    r->tests = tap_count(tap, "tests");
    r->pass = tap_count(tap, "pass");
    r->fail = tap_count(tap, "fail");
    r->cancelled = tap_count(tap, "cancelled");
    r->skipped = tap_count(tap, "skipped");
    r->todo = tap_count(tap, "todo");
    if (r->tests < 0 || r->pass < 0 || r->fail < 0 || r->cancelled < 0 || r->skipped < 0 ||
        r->todo < 0)
        return -1;
    /* every test that did not run: "ok 3 - NAME # SKIP REASON" (or # TODO) */
    size_t used = 0;
    for (const char *line = tap; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *dash = memmem(line, n, " - ", 3), *mark = NULL;
        for (const char *m = line; (m = memmem(m, (size_t)(line + n - m), " # ", 3)); m++)
            if (!strncmp(m, " # SKIP", 7) || !strncmp(m, " # TODO", 7))
                mark = m;
        const char *t = line;
        while (t < line + n && *t == ' ')
            t++;
        if (dash && mark && mark > dash && (!strncmp(t, "ok ", 3) || !strncmp(t, "not ok ", 7))) {
            const char *why = mark + 7;
            while (why < line + n && *why == ' ')
                why++;
            int k = snprintf(r->not_run + used, sizeof r->not_run - used, "%.*s (%s%.*s)\n",
                             (int)(mark - dash - 3), dash + 3, mark[3] == 'T' ? "todo: " : "",
                             (int)(line + n - why), why);
            if (k > 0)
                used = CN_MIN(used + (size_t)k, sizeof r->not_run - 1);
        }
        line += n + (end ? 1 : 0);
    }
    return r->pass + r->fail + r->cancelled + r->skipped + r->todo == r->tests ? 0 : -1;
}

int test_add_node_tap(const char *tap)
{
    node_tap r;
    if (test_parse_node_tap(tap, &r) != 0) {
        test_fail_at(__FILE__, __LINE__,
                     "node's TAP summary is missing or does not add up (%d tests: %d passed, "
                     "%d failed, %d cancelled, %d skipped, %d todo):\n%.4000s", r.tests, r.pass,
                     r.fail, r.cancelled, r.skipped, r.todo, tap);
        return -1;
    }
    for (const char *p = r.not_run; *p;) {
        const char *nl = strchr(p, '\n');
        printf("skip node: %.*s\n", (int)(nl - p), p);
        const char *paren = p;
        for (const char *q = p; q < nl; q++) /* the name ends at the last " (" */
            if (q[0] == ' ' && q[1] == '(')
                paren = q;
        log_skip("node: ", p, (size_t)(paren - p));
        p = nl + 1;
    }
    test_add_external(r.pass, r.fail + r.cancelled, r.skipped + r.todo);
    return r.fail + r.cancelled;
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

const char *test_tiny_bert(void)
{
    static char path[600];
    static int tried;
    if (tried) {
        if (!path[0])
            test_fail_at(__FILE__, __LINE__, "the tiny BERT model could not be made (see above)");
        return path[0] ? path : NULL;
    }
    tried = 1;
    const char *tools = getenv("CAIRN_TOOLS");
    snprintf(path, sizeof path, "%s/tiny-bert-f16.gguf", test_tmpdir());
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s/mkmodel --shape minilm --n-layer 2 --n-embd 128 --n-head 2 --n-head-kv 2 "
             "--n-ff 512 --type f16 --tokenizer %s -o %s 2>&1",
             tools && *tools ? tools : "build", test_data("vocab/ggml-vocab-bert-bge.gguf"), path);
    char out[1024], err[1024];
    int rc = test_shell(cmd, out, sizeof out, err, sizeof err);
    if (rc != 0) {
        test_fail_at(__FILE__, __LINE__, "mkmodel failed (%d): %s%s", rc, out, err);
        path[0] = 0;
    }
    return path[0] ? path : NULL;
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

int test_vshell(const char *setup, char *out, size_t out_cap, char *err, size_t err_cap,
                const char *fmt, va_list ap)
{
    char *cmd = NULL, *full = NULL;
    int rc = -1;
    if (vasprintf(&cmd, fmt, ap) >= 0 && asprintf(&full, "%s; %s", setup, cmd) >= 0)
        rc = test_shell(full, out, out_cap, err, err_cap);
    free(cmd);
    free(full);
    return rc;
}

const char *test_cairn_bin(void)
{
    const char *b = getenv("CAIRN_BIN");
    return b && *b ? b : "build/cairn";
}

static int cmp_test(const void *a, const void *b)
{
    return strcmp(((const test_case *)a)->name, ((const test_case *)b)->name);
}

/* Does name hold one of the comma-separated words of filter? */
static bool matches(const char *name, const char *filter)
{
    for (const char *f = filter; *f;) {
        const char *end = strchr(f, ',');
        size_t n = end ? (size_t)(end - f) : strlen(f);
        for (const char *p = name; n && *p; p++)
            if (!strncmp(p, f, n))
                return true;
        if (!end)
            break;
        f = end + 1;
    }
    return false;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    qsort(tests, (size_t)n_tests, sizeof tests[0], cmp_test);
    const char *sl = getenv("CAIRN_SKIP_LOG");
    if (sl && *sl && !(skip_log = fopen(sl, "w"))) {
        perror(sl);
        return 1;
    }
    for (int i = 0; i < n_tests; i++) {
        if (filter && !matches(tests[i].name, filter))
            continue;
        cur_failed = cur_skipped = 0;
        double t0 = cn_now();
        tests[i].fn();
        double took = cn_now() - t0;
        if (took >= 10) /* where the suite's time goes */
            printf("     %s took %.0f s\n", tests[i].name, took);
        if (cur_failed) {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        } else if (cur_skipped) {
            printf("skip %s (%s)\n", tests[i].name, skip_reason);
            log_skip("", tests[i].name, strlen(tests[i].name));
            skipped++;
        } else {
            printf("ok   %s\n", tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    if (tmp_root[0])
        rm_tree(tmp_root);
    if (skip_log)
        fclose(skip_log);
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
