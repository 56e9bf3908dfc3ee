/* Unit tests for src/base: errors, arena, buffers, UTF-8, half floats. */
#include "test.h"
#include "base/base.h"

#include <sys/stat.h>
#include <unistd.h>

TEST(base_fail_formats_message)
{
    cn_err e = {0};
    int rc = cn_fail(&e, CN_EFORMAT, "%s: bad %d", "x.gguf", 7);
    EXPECT_EQ_INT(rc, CN_EFORMAT);
    EXPECT_EQ_INT(e.code, CN_EFORMAT);
    EXPECT_STR(e.msg, "x.gguf: bad 7");
    EXPECT_EQ_INT(cn_fail(NULL, CN_EIO, "ignored"), CN_EIO);
}

TEST(base_arena_respects_limit)
{
    cn_arena a;
    cn_arena_init(&a, 1 << 20);
    char *p = cn_arena_alloc(&a, 100);
    EXPECT(p != NULL);
    EXPECT_EQ_INT((uintptr_t)p % 16, 0);
    EXPECT(cn_arena_alloc(&a, 2 << 20) == NULL);
    char *s = cn_arena_strndup(&a, "hello world", 5);
    EXPECT_STR(s, "hello");
    cn_arena_free(&a);
}

/* Sizes near SIZE_MAX used to wrap when rounded up to 16 (n + 15 == 0 for
** n = SIZE_MAX - 14) and came back as a 16-byte "success"; the running
** total could wrap too with an unlimited arena. */
TEST(base_arena_refuses_wrapping_sizes)
{
    cn_arena a;
    cn_arena_init(&a, SIZE_MAX);
    EXPECT(cn_arena_alloc(&a, 8) != NULL);
    EXPECT(cn_arena_alloc(&a, SIZE_MAX) == NULL);
    EXPECT(cn_arena_alloc(&a, SIZE_MAX - 14) == NULL);
    EXPECT(cn_arena_alloc(&a, SIZE_MAX - 100) == NULL);
    EXPECT(cn_arena_strndup(&a, "x", SIZE_MAX) == NULL);
    cn_arena_free(&a);
    /* count * size overflow in the array allocators */
    EXPECT(cn_malloc_array(SIZE_MAX / 2 + 2, 2) == NULL);
    EXPECT(cn_realloc_array(NULL, SIZE_MAX / 4 + 1, 8) == NULL);
    EXPECT(cn_calloc(SIZE_MAX / 2 + 2, 2) == NULL);
    void *p = cn_malloc_array(16, 4);
    EXPECT(p != NULL);
    free(p);
}

TEST(base_buf_caps_growth)
{
    cn_buf b;
    cn_buf_init(&b, 10);
    EXPECT_EQ_INT(cn_buf_append(&b, "12345", 5), CN_OK);
    EXPECT_EQ_INT(cn_buf_printf(&b, "%d", 678), CN_OK);
    EXPECT_STR(b.data, "12345678");
    EXPECT_EQ_INT(cn_buf_append(&b, "abc", 3), CN_ENOMEM);
    EXPECT_EQ_INT(b.len, 8);
    cn_buf_free(&b);
}

TEST(base_utf8_prefix)
{
    EXPECT_EQ_INT(cn_utf8_valid_prefix("abc", 3), 3);
    EXPECT_EQ_INT(cn_utf8_valid_prefix("a\xc3\xa9", 3), 3);  /* é complete */
    EXPECT_EQ_INT(cn_utf8_valid_prefix("a\xc3", 2), 1);      /* é cut */
    EXPECT_EQ_INT(cn_utf8_valid_prefix("\xe2\x82\xac!", 4), 4);
    EXPECT_EQ_INT(cn_utf8_valid_prefix("\xed\xa0\x80", 3), 0); /* surrogate */
    EXPECT_EQ_INT(cn_utf8_valid_prefix("\xc0\xaf", 2), 0);    /* overlong */
    EXPECT_EQ_INT(cn_utf8_valid_prefix("\xf0\x9f\xa6\x99", 4), 4);
}

TEST(base_fp16_roundtrip)
{
    /* every finite half converts to float and back exactly */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00)
            continue;
        if (cn_fp32_to_fp16(cn_fp16_to_fp32((uint16_t)h)) != h)
            bad++;
    }
    EXPECT_EQ_INT(bad, 0);
    EXPECT_NEAR(cn_fp16_to_fp32(0x3C00), 1.0, 0);
    EXPECT_NEAR(cn_fp16_to_fp32(0xC000), -2.0, 0);
    EXPECT_NEAR(cn_fp16_to_fp32(0x0001), 5.9604644775390625e-8, 0);
    EXPECT_EQ_INT(cn_fp32_to_fp16(65504.0f), 0x7BFF);
    EXPECT_EQ_INT(cn_fp32_to_fp16(1e6f), 0x7C00);
    EXPECT_EQ_INT(cn_fp32_to_fp16(1.0f + 1.0f / 2048), 0x3C00); /* tie to even */
    EXPECT_EQ_INT(cn_fp32_to_fp16(1.0f + 3.0f / 2048), 0x3C02);
    EXPECT_EQ_INT(cn_fp32_to_fp16(2.98023224e-8f), 0x0000); /* half of smallest: to even */
    EXPECT_EQ_INT(cn_fp32_to_bf16(1.0f), 0x3F80);
    EXPECT_NEAR(cn_bf16_to_fp32(0x4049), 3.140625, 0);
}

TEST(base_data_dir_precedence)
{
    char buf[512], old_home[512] = "", old_c[512] = "";
    const char *h = getenv("HOME"), *c = getenv("CAIRN_HOME");
    if (h)
        snprintf(old_home, sizeof old_home, "%s", h);
    if (c)
        snprintf(old_c, sizeof old_c, "%s", c);
    setenv("HOME", "/home/u", 1);
    unsetenv("CAIRN_HOME");
    unsetenv("XDG_DATA_HOME");
    EXPECT_EQ_INT(cn_data_dir(buf, sizeof buf, NULL, NULL), CN_OK);
    EXPECT_STR(buf, "/home/u/.local/share/cairn");
    setenv("XDG_DATA_HOME", "/x", 1);
    cn_data_dir(buf, sizeof buf, NULL, NULL);
    EXPECT_STR(buf, "/x/cairn");
    setenv("CAIRN_HOME", "/c", 1);
    cn_data_dir(buf, sizeof buf, NULL, NULL);
    EXPECT_STR(buf, "/c");
    cn_data_dir(buf, sizeof buf, "/override", NULL);
    EXPECT_STR(buf, "/override");
    unsetenv("XDG_DATA_HOME");
    if (old_home[0])
        setenv("HOME", old_home, 1);
    if (old_c[0])
        setenv("CAIRN_HOME", old_c, 1);
    else
        unsetenv("CAIRN_HOME");
    /* mkdirs creates nested private directories, and refuses a file in the way */
    char p[600];
    snprintf(p, sizeof p, "%s/a/b/c", test_tmpdir());
    EXPECT_EQ_INT(cn_mkdirs(p, NULL), CN_OK);
    struct stat st;
    EXPECT_EQ_INT(stat(p, &st), 0);
    EXPECT_EQ_INT(st.st_mode & 0777, 0700);
    snprintf(p, sizeof p, "%s/file", test_tmpdir());
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/file/sub", test_tmpdir());
    cn_err e;
    EXPECT_EQ_INT(cn_mkdirs(p, &e), CN_EIO);
    EXPECT_CONTAINS(e.msg, "not a directory");
}

/* Hosts that only look like loopback are refused; the forms libcurl and a
** Host header give for the real ones are accepted. ::ffff:127.0.0.1 is
** accepted: a connection to it reaches 127.0.0.1. */
TEST(base_host_is_loopback)
{
    static const char *yes[] = {"127.0.0.1", "127.1.2.3", "127.255.255.254", "localhost",
                                "LocalHost", "::1", "[::1]", "0:0:0:0:0:0:0:1",
                                "::ffff:127.0.0.1", "[::ffff:127.9.9.9]"};
    static const char *no[] = {
        "127.attacker.example", "127.0.0.1.evil.com", "127.evil", "0x7f.1", "0x7f000001",
        "127.1", "2130706433", "0177.0.0.1", "127.0.0.1.", "localhost.", "localhost.evil",
        "evil.localhost", "127.0.0.1@evil.com", "evil.com", "0.0.0.0", "::", "[::]",
        "128.0.0.1", "126.255.255.255", "::ffff:10.0.0.1", "::ffff:7f00:1x", "[::1",
        "::1]", "[[::1]]", "::1%lo", "[::1%25lo]", " 127.0.0.1", "127.0.0.1 ", "", "[]",
        "::127.0.0.1"};
    for (size_t i = 0; i < CN_ARRAY_LEN(yes); i++)
        if (!cn_host_is_loopback(yes[i]))
            test_fail_at(__FILE__, __LINE__, "'%s' should be loopback", yes[i]);
    for (size_t i = 0; i < CN_ARRAY_LEN(no); i++)
        if (cn_host_is_loopback(no[i]))
            test_fail_at(__FILE__, __LINE__, "'%s' must not be loopback", no[i]);
    EXPECT(!cn_host_is_loopback(NULL));
}

/* Names of the entries of dir (space-separated) into out. */
static void list_dir(const char *dir, char *out, size_t cap)
{
    char cmd[700], err[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | tr '\\n' ' '", dir);
    test_shell(cmd, out, cap, err, sizeof err);
}

TEST(base_write_atomic_replaces_whole_file)
{
    char dir[600], path[700], ls[1024], *text = NULL;
    snprintf(dir, sizeof dir, "%s/atomic", test_tmpdir());
    snprintf(path, sizeof path, "%s/f.json", dir);
    EXPECT_EQ_INT(cn_mkdirs(dir, NULL), CN_OK);
    cn_err e = {0};
    EXPECT_EQ_INT(cn_write_atomic(path, "first", 5, 0600, &e), CN_OK);
    EXPECT_EQ_INT(cn_write_atomic(path, "second!", 7, 0640, &e), CN_OK);
    size_t len = 0;
    EXPECT_EQ_INT(cn_read_file(path, 100, &text, &len, NULL), CN_OK);
    EXPECT_STR(text, "second!");
    free(text);
    struct stat st;
    EXPECT_EQ_INT(stat(path, &st), 0);
    EXPECT_EQ_INT(st.st_mode & 0777, 0640);
    list_dir(dir, ls, sizeof ls);
    EXPECT_STR(ls, "f.json "); /* no temporary file left behind */

    /* streamed: the old content stays until the commit, and an abort keeps it */
    cn_atomic_file f;
    EXPECT_EQ_INT(cn_atomic_open(&f, path, 0600, &e), CN_OK);
    EXPECT_EQ_INT(cn_atomic_write(&f, "half", 4, &e), CN_OK);
    EXPECT_EQ_INT(cn_read_file(path, 100, &text, &len, NULL), CN_OK);
    EXPECT_STR(text, "second!");
    free(text);
    cn_atomic_abort(&f);
    list_dir(dir, ls, sizeof ls);
    EXPECT_STR(ls, "f.json ");
    EXPECT_EQ_INT(cn_atomic_open(&f, path, 0600, &e), CN_OK);
    EXPECT_EQ_INT(cn_atomic_write(&f, "third", 5, &e), CN_OK);
    EXPECT_EQ_INT(cn_atomic_write(&f, "+more", 5, &e), CN_OK);
    EXPECT_EQ_INT(cn_atomic_commit(&f, &e), CN_OK);
    EXPECT_EQ_INT(cn_read_file(path, 100, &text, &len, NULL), CN_OK);
    EXPECT_STR(text, "third+more");
    free(text);
    cn_atomic_abort(&f); /* after a commit: nothing to undo */
    EXPECT_EQ_INT(access(path, F_OK), 0);
}

TEST(base_write_atomic_failure_keeps_old_file)
{
    char dir[600], path[700], ls[1024], *text = NULL;
    size_t len;
    snprintf(dir, sizeof dir, "%s/atomic2", test_tmpdir());
    snprintf(path, sizeof path, "%s/keep", dir);
    EXPECT_EQ_INT(cn_mkdirs(dir, NULL), CN_OK);
    EXPECT_EQ_INT(cn_write_atomic(path, "old", 3, 0600, NULL), CN_OK);
    cn_err e = {0};
    /* a directory that does not exist, and one that is a file: an error
    ** naming the path (root ignores permissions, so no chmod here) */
    char bad[800];
    snprintf(bad, sizeof bad, "%s/nodir/x", dir);
    EXPECT_EQ_INT(cn_write_atomic(bad, "new", 3, 0600, &e), CN_EIO);
    EXPECT_CONTAINS(e.msg, bad);
    snprintf(bad, sizeof bad, "%s/x", path);
    EXPECT_EQ_INT(cn_write_atomic(bad, "new", 3, 0600, &e), CN_EIO);
    EXPECT_CONTAINS(e.msg, bad);
    /* the rename fails (the target is a directory with something in it):
    ** the directory is untouched and the temporary file is gone */
    char sub[800], inner[900];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(inner, sizeof inner, "%s/sub/inner", dir);
    EXPECT_EQ_INT(cn_mkdirs(sub, NULL), CN_OK);
    EXPECT_EQ_INT(cn_write_atomic(inner, "i", 1, 0600, NULL), CN_OK);
    EXPECT_EQ_INT(cn_write_atomic(sub, "new", 3, 0600, &e), CN_EIO);
    EXPECT_CONTAINS(e.msg, "cannot replace");
    EXPECT_EQ_INT(access(inner, F_OK), 0);
    list_dir(dir, ls, sizeof ls);
    EXPECT_STR(ls, "keep sub ");
    EXPECT_EQ_INT(cn_read_file(path, 100, &text, &len, NULL), CN_OK);
    EXPECT_STR(text, "old");
    free(text);
}

/* Each run: every thread adds its index + 1 to its own slot, once. */
typedef struct pool_probe {
    long slot[8];
    int nth_seen;
} pool_probe;

static void pool_probe_fn(void *ctx, int ith, int nth)
{
    pool_probe *p = ctx;
    p->slot[ith] += ith + 1;
    if (ith == 0)
        p->nth_seen = nth;
}

/* Back-to-back runs take the spinning path, runs after a pause longer than
** the spin the sleeping one; in both every thread runs every job exactly
** once, and the caller sees the workers' writes when cn_pool_run returns. */
TEST(base_pool_runs_every_job_once)
{
    for (int n = 1; n <= 4; n++) {
        cn_pool *pool;
        EXPECT_EQ_INT(cn_pool_new(&pool, n, NULL), CN_OK);
        EXPECT_EQ_INT(cn_pool_size(pool), n);
        pool_probe pr = {0};
        const int runs = 3000;
        for (int r = 0; r < runs; r++) {
            cn_pool_run(pool, pool_probe_fn, &pr);
            for (int i = 0; i < n; i++)
                if (pr.slot[i] != (long)(r + 1) * (i + 1)) {
                    test_fail_at(__FILE__, __LINE__, "%d threads, run %d: slot %d is %ld", n, r, i,
                                 pr.slot[i]);
                    r = runs;
                    break;
                }
        }
        EXPECT_EQ_INT(pr.nth_seen, n);
        for (int r = 0; r < 3; r++) {
            usleep(20000); /* everyone asleep */
            cn_pool_run(pool, pool_probe_fn, &pr);
        }
        for (int i = 0; i < n; i++)
            EXPECT_EQ_INT(pr.slot[i], (long)(runs + 3) * (i + 1));
        cn_pool_free(pool);
    }
    EXPECT_EQ_INT(cn_pool_new(&(cn_pool *){NULL}, 0, NULL), CN_EINVAL);
}
