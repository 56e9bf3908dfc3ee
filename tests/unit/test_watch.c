/*
** Watched folders (issue 18). The watcher alone, on real inotify events: a
** file written in chunks or held open is handed over once, when it settles;
** an editor's temp-and-rename ends as the one real name; deletes, moves,
** new and removed folders, a root that vanishes and comes back, a queue
** overflow (a rescan, once quiet), the watch limit (polling, said why).
** Then `cairn watch` end to end: the library follows two folders through
** all of that, 2,000 files dropped at once, and a restart.
*/
#include "test.h"
#include "watch/watch.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char out_buf[8 << 20], err_buf[1 << 16];

static int sh(const char *fmt, ...)
{
    char setup[1400];
    snprintf(setup, sizeof setup, "export CAIRN_HOME=%s/w-home; C=%s; R=%s/w", test_tmpdir(),
             test_cairn_bin(), test_tmpdir());
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Everything handed over, in order, with when. */
enum { K_CHANGED, K_GONE, K_GONE_DIR, K_RESCAN };
typedef struct seen {
    int n;
    struct { int kind; char path[512]; double at; } e[4096];
    int overflow; /* entries beyond e[] */
} seen;

static void record(seen *s, int kind, char **v, int n)
{
    for (int i = 0; i < n; i++) {
        if (s->n == (int)CN_ARRAY_LEN(s->e)) {
            s->overflow++;
            continue;
        }
        s->e[s->n].kind = kind;
        snprintf(s->e[s->n].path, sizeof s->e[s->n].path, "%s", v[i]);
        s->e[s->n].at = cn_now();
        s->n++;
    }
}

/* Poll for secs, recording every batch. */
static void drain(wat_watcher *w, seen *s, double secs)
{
    double end = cn_now() + secs;
    while (cn_now() < end) {
        wat_batch b;
        cn_err err = {0};
        if (wat_poll(w, 50, &b, &err)) {
            test_fail_at(__FILE__, __LINE__, "wat_poll: %s", err.msg);
            return;
        }
        record(s, K_CHANGED, b.changed, b.n_changed);
        record(s, K_GONE, b.gone, b.n_gone);
        record(s, K_GONE_DIR, b.gone_dirs, b.n_gone_dirs);
        record(s, K_RESCAN, b.rescan, b.n_rescan);
        wat_batch_free(&b);
    }
}

static int count(const seen *s, int kind, const char *path)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += s->e[i].kind == kind && (!path || !strcmp(s->e[i].path, path));
    return n;
}

static double first_at(const seen *s, int kind, const char *path)
{
    for (int i = 0; i < s->n; i++)
        if (s->e[i].kind == kind && !strcmp(s->e[i].path, path))
            return s->e[i].at;
    return -1;
}

static void put(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    if (!f) {
        test_fail_at(__FILE__, __LINE__, "%s: cannot write", path);
        return;
    }
    fputs(text, f);
    fclose(f);
}

/* A fresh root under the test's directory, resolved; a watcher on it whose
** first batch (the root's rescan) is taken. */
static wat_watcher *start(const char *name, char *root, size_t cap, const wat_opts *o, seen *s)
{
    char raw[600];
    snprintf(raw, sizeof raw, "%s/%s", test_tmpdir(), name);
    sh("rm -rf '%s' && mkdir -p '%s'", raw, raw);
    cn_err err = {0};
    wat_watcher *w = NULL;
    if (wat_resolve(raw, root, cap, &err) || wat_new(&w, o, &err) ||
        wat_add_root(w, root, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        wat_free(w);
        return NULL;
    }
    memset(s, 0, sizeof *s);
    drain(w, s, 0.5);
    if (count(s, K_RESCAN, root) != 1)
        test_fail_at(__FILE__, __LINE__, "a new root is rescanned once: %d", count(s, K_RESCAN, root));
    memset(s, 0, sizeof *s);
    return w;
}

static seen S;

TEST(watch_a_file_written_in_chunks_or_held_open_is_handed_over_once)
{
    char root[512], p[700], q[700];
    /* a settle time well above the writes' spacing: the suite runs beside
    ** the node suites on a busy machine */
    wat_opts o = {.settle_s = 0.6};
    wat_watcher *w = start("chunks", root, sizeof root, &o, &S);
    if (!w)
        return;
    /* appended in 8 chunks, 0.1 s apart: quiet never lasts 0.6 s */
    snprintf(p, sizeof p, "%s/report.txt", root);
    double last = 0;
    for (int i = 0; i < 8; i++) {
        put(p, "The pump needs priming. ", "a");
        last = cn_now();
        drain(w, &S, 0.1);
    }
    drain(w, &S, 1.5);
    EXPECT_EQ_INT(count(&S, K_CHANGED, p), 1);
    EXPECT(first_at(&S, K_CHANGED, p) >= last + 0.6);
    /* held open by its writer with pauses longer than settle_s: handed over
    ** when it is closed, not before */
    memset(&S, 0, sizeof S);
    snprintf(q, sizeof q, "%s/download.txt", root);
    int fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT(fd >= 0);
    for (int i = 0; i < 3 && fd >= 0; i++) {
        EXPECT_EQ_INT((int)write(fd, "chunk of text ", 14), 14);
        drain(w, &S, 0.9);
    }
    EXPECT_EQ_INT(count(&S, K_CHANGED, q), 0);
    double closed = cn_now();
    if (fd >= 0)
        close(fd);
    drain(w, &S, 1.5);
    EXPECT_EQ_INT(count(&S, K_CHANGED, q), 1);
    EXPECT(first_at(&S, K_CHANGED, q) >= closed);
    wat_free(w);
}

TEST(watch_temp_and_rename_ends_as_the_real_name_once)
{
    char root[512], p[700], tmp[700], bak[700], swp[700];
    wat_opts o = {.settle_s = 0.3};
    wat_watcher *w = start("rename", root, sizeof root, &o, &S);
    if (!w)
        return;
    snprintf(p, sizeof p, "%s/notes.md", root);
    put(p, "# Notes\n\nfirst version\n", "w");
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_CHANGED, p), 1);
    memset(&S, 0, sizeof S);
    /* an editor saving: a swap file, a backup by rename, the new text
    ** written beside and renamed over the old name */
    snprintf(swp, sizeof swp, "%s/.notes.md.swp", root);
    snprintf(bak, sizeof bak, "%s/notes.md~", root);
    snprintf(tmp, sizeof tmp, "%s/notes.md.tmp", root);
    put(swp, "swap", "w");
    EXPECT_EQ_INT(rename(p, bak), 0);
    put(tmp, "# Notes\n\nsecond version\n", "w");
    EXPECT_EQ_INT(rename(tmp, p), 0);
    unlink(bak);
    unlink(swp);
    drain(w, &S, 1.0);
    EXPECT_EQ_INT(count(&S, K_CHANGED, p), 1);
    EXPECT_EQ_INT(count(&S, K_GONE, p), 0);
    EXPECT_EQ_INT(count(&S, K_CHANGED, NULL), 1); /* nor the temp, backup or swap */
    wat_free(w);
}

TEST(watch_deletes_moves_and_folders)
{
    char root[512], a[700], b[700], dir[600], f1[700], f2[700];
    wat_opts o = {.settle_s = 0.3};
    wat_watcher *w = start("moves", root, sizeof root, &o, &S);
    if (!w)
        return;
    snprintf(a, sizeof a, "%s/a.txt", root);
    snprintf(dir, sizeof dir, "%s/new/deeper", root);
    snprintf(b, sizeof b, "%s/new/b.txt", root);
    put(a, "alpha", "w");
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_CHANGED, a), 1);
    /* a folder made and filled at once: its files were written before its
    ** watch existed, and are found all the same */
    memset(&S, 0, sizeof S);
    sh("mkdir -p '%s' && echo one > '%s/one.txt' && echo two > '%s/two.md'", dir, dir, dir);
    snprintf(f1, sizeof f1, "%s/one.txt", dir);
    snprintf(f2, sizeof f2, "%s/two.md", dir);
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_CHANGED, f1), 1);
    EXPECT_EQ_INT(count(&S, K_CHANGED, f2), 1);
    /* moved: gone from the old name, changed under the new */
    memset(&S, 0, sizeof S);
    EXPECT_EQ_INT(rename(a, b), 0);
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_GONE, a), 1);
    EXPECT_EQ_INT(count(&S, K_CHANGED, b), 1);
    /* deleted; then a folder removed whole */
    memset(&S, 0, sizeof S);
    unlink(b);
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_GONE, b), 1);
    memset(&S, 0, sizeof S);
    char gone[700];
    snprintf(gone, sizeof gone, "%s/new", root);
    sh("rm -rf '%s'", gone);
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_GONE_DIR, gone), 1);
    EXPECT_EQ_INT(count(&S, K_CHANGED, NULL), 0);
    /* its watches went with it: the new folder and its child */
    EXPECT_EQ_INT(wat_n_watches(w), 1);
    wat_free(w);
}

TEST(watch_a_root_that_vanishes_and_comes_back)
{
    char root[512], p[700];
    wat_opts o = {.settle_s = 0.3};
    wat_watcher *w = start("vanish", root, sizeof root, &o, &S);
    if (!w)
        return;
    sh("rm -rf '%s'", root);
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_GONE_DIR, root), 1);
    EXPECT(!strcmp(wat_root_state(w, root, NULL), "missing"));
    memset(&S, 0, sizeof S);
    sh("mkdir -p '%s' && echo back > '%s/back.txt'", root, root);
    snprintf(p, sizeof p, "%s/back.txt", root);
    drain(w, &S, 3.0); /* a missing root is looked at every 2 s */
    EXPECT(!strcmp(wat_root_state(w, root, NULL), "watching"));
    EXPECT_EQ_INT(count(&S, K_RESCAN, root), 1);
    /* and followed again */
    memset(&S, 0, sizeof S);
    put(p, "more", "a");
    drain(w, &S, 0.8);
    EXPECT_EQ_INT(count(&S, K_CHANGED, p), 1);
    wat_free(w);
}

TEST(watch_an_overflowed_queue_becomes_one_rescan_when_quiet)
{
    char root[512];
    wat_opts o = {.settle_s = 0.3};
    wat_watcher *w = start("flood", root, sizeof root, &o, &S);
    if (!w)
        return;
    long maxq = 16384;
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    if (f) {
        if (fscanf(f, "%ld", &maxq) != 1)
            maxq = 16384;
        fclose(f);
    }
    /* three events a file (create, modify, close): more than the queue holds
    ** while nobody reads */
    int n = (int)CN_MAX(10000, maxq / 3 + 2000);
    for (int i = 0; i < n; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/f%05d.txt", root, i);
        put(p, "a file among many", "w");
    }
    drain(w, &S, 1.5);
    EXPECT_EQ_INT(count(&S, K_RESCAN, root), 1);
    /* what was pending before the overflow is the rescan's job now */
    EXPECT(count(&S, K_CHANGED, NULL) + S.overflow < n);
    EXPECT_EQ_INT(wat_n_pending(w), 0);
    fprintf(stderr, "  %d files at once: one rescan, %d files handed over singly\n", n,
            count(&S, K_CHANGED, NULL) + S.overflow);
    wat_free(w);
}

TEST(watch_the_limit_of_watches_is_said_and_the_root_polled)
{
    char root[512], p[700];
    wat_opts o = {.settle_s = 0.2, .poll_s = 0.6, .max_watches = 2};
    char raw[600];
    snprintf(raw, sizeof raw, "%s/limit", test_tmpdir());
    sh("rm -rf '%s' && mkdir -p '%s/a' '%s/b' '%s/c' '%s/d'", raw, raw, raw, raw, raw);
    cn_err err = {0};
    wat_watcher *w = NULL;
    EXPECT_EQ_INT(wat_resolve(raw, root, sizeof root, &err), 0);
    EXPECT_EQ_INT(wat_new(&w, &o, &err), 0);
    EXPECT_EQ_INT(wat_add_root(w, root, &err), 0);
    const char *why = "";
    EXPECT(!strcmp(wat_root_state(w, root, &why), "polling"));
    EXPECT_CONTAINS(why, "limit of 2 watches");
    EXPECT_CONTAINS(why, "rescanned every");
    EXPECT_EQ_INT(wat_n_watches(w), 2);
    memset(&S, 0, sizeof S);
    drain(w, &S, 0.4);
    EXPECT_EQ_INT(count(&S, K_RESCAN, root), 1);
    /* a file in a folder that has no watch: found by the next rescan */
    snprintf(p, sizeof p, "%s/d/late.txt", root);
    put(p, "late", "w");
    memset(&S, 0, sizeof S);
    drain(w, &S, 1.2);
    EXPECT(count(&S, K_RESCAN, root) >= 1);
    wat_free(w);
}

/* ---- cairn watch, end to end ------------------------------------------------------ */

/* Wait (at most secs) until `cairn ls --json` has want documents, among
** them a path ending in each of must and none ending in must_not. */
static bool has_path(json_t *docs, const char *tail)
{
    size_t i, n = strlen(tail);
    json_t *d;
    json_array_foreach(docs, i, d) {
        const char *p = json_string_value(json_object_get(d, "path"));
        if (p && strlen(p) >= n && !strcmp(p + strlen(p) - n, tail))
            return true;
    }
    return false;
}

static bool library_is(int want, const char *const *must, int n_must, const char *const *must_not,
                       int n_not, double secs)
{
    double end = cn_now() + secs;
    int n = -1;
    for (;;) {
        if (sh("$C ls --json") == 0) {
            json_t *docs = json_loads(out_buf, 0, NULL);
            n = (int)json_array_size(docs);
            bool ok = n == want;
            for (int i = 0; ok && i < n_must; i++)
                ok = has_path(docs, must[i]);
            for (int i = 0; ok && i < n_not; i++)
                ok = !has_path(docs, must_not[i]);
            json_decref(docs);
            if (ok)
                return true;
        }
        if (cn_now() > end) {
            fprintf(stderr, "  library: %d documents, want %d, after %.0f s\n", n, want, secs);
            return false;
        }
        nap(0.25);
    }
}

TEST(watch_cli_follows_two_folders_through_everything)
{
    sh("rm -rf $R $CAIRN_HOME; mkdir -p $R/a $R/b");
    EXPECT_EQ_INT(sh("$C watch ls"), 0);
    EXPECT_CONTAINS(out_buf, "no folder is watched");
    EXPECT_EQ_INT(sh("$C watch add $R/a $R/b"), 0);
    EXPECT_CONTAINS(out_buf, "watching ");
    EXPECT_EQ_INT(sh("$C watch add $R/a/"), 0);
    EXPECT_CONTAINS(out_buf, "watched already:");
    EXPECT_EQ_INT(sh("mkdir -p $R/a/in && $C watch add $R/a/in"), 1);
    EXPECT_CONTAINS(err_buf, "inside");
    EXPECT_EQ_INT(sh("$C watch add $R"), 1);
    EXPECT_CONTAINS(err_buf, "holds");
    EXPECT_EQ_INT(sh("echo x > $R/file.txt && $C watch add $R/file.txt"), 1);
    EXPECT_CONTAINS(err_buf, "not a folder");
    EXPECT_EQ_INT(sh("$C watch add $R/nowhere"), 1);
    EXPECT_EQ_INT(sh("$C watch frob"), 2);
    EXPECT_EQ_INT(sh("$C watch rm $R/nowhere"), 1);
    EXPECT_CONTAINS(err_buf, "not watched");

    /* a file there before the run starts: the first rescan finds it */
    sh("echo 'The boiler is serviced every spring.' > $R/a/before.txt");
    sh("$C watch run --settle 0.3 > $R/../w-run.log 2>&1 & echo $! > $R/../w-run.pid");
    const char *m0[] = {"/a/before.txt"};
    EXPECT(library_is(1, m0, 1, NULL, 0, 20));

    /* created; appended in chunks; renamed into place */
    sh("echo 'Pump P-101 needs priming.' > $R/a/pump.txt");
    sh("for i in 1 2 3 4 5 6; do echo \"chunk $i of the manual\" >> $R/b/manual.md; sleep 0.1; "
       "done");
    sh("echo 'Relief valve set to 6 bar.' > $R/a/.valve.txt.part && mv $R/a/.valve.txt.part "
       "$R/a/valve.txt");
    const char *m1[] = {"/a/pump.txt", "/b/manual.md", "/a/valve.txt"}, *n1[] = {".part"};
    EXPECT(library_is(4, m1, 3, n1, 1, 20));
    EXPECT_EQ_INT(sh("$C search 'chunk 6'"), 0);
    EXPECT_CONTAINS(out_buf, "manual.md");
    /* indexed once, when it settled */
    EXPECT_EQ_INT(sh("grep -c 'manual.md' $R/../w-run.log"), 0);
    EXPECT(!strcmp(out_buf, "1\n"));

    /* deleted; moved between the two folders */
    sh("rm $R/a/pump.txt && mv $R/a/valve.txt $R/b/valve.txt");
    const char *m2[] = {"/b/valve.txt"}, *n2[] = {"pump.txt", "/a/valve.txt"};
    EXPECT(library_is(3, m2, 1, n2, 2, 20));
    EXPECT_EQ_INT(sh("$C search 'relief valve'"), 0);
    EXPECT_CONTAINS(out_buf, "valve.txt");

    /* a watched folder removed whole: its documents leave */
    sh("rm -rf $R/b");
    const char *m3[] = {"/a/before.txt"}, *n3[] = {"/b/manual.md", "/b/valve.txt"};
    EXPECT(library_is(1, m3, 1, n3, 2, 20));

    /* 2,000 files dropped at once (10,000 go through the server in
    ** watch.test.mjs, and past the kernel's queue in the overflow test above) */
    double t0 = cn_now();
    EXPECT_EQ_INT(sh("mkdir $R/a/bulk && cd $R/a/bulk && for i in $(seq 1 2000); do "
                     "echo \"Record $i of the batch\" > r$i.txt; done"), 0);
    double t1 = cn_now();
    const char *m4[] = {"/bulk/r2000.txt", "/bulk/r1.txt"};
    EXPECT(library_is(2001, m4, 2, NULL, 0, 240));
    fprintf(stderr, "  2,000 files written in %.1f s, all in the library %.1f s later\n",
            t1 - t0, cn_now() - t1);
    EXPECT_EQ_INT(sh("ps -o rss= -p $(cat $R/../w-run.pid)"), 0);
    long rss = atol(out_buf);
    fprintf(stderr, "  cairn watch run: %ld kB resident\n", rss);
#ifdef __SANITIZE_ADDRESS__
    long limit_kb = 600 * 1024; /* ASan's quarantine and shadow memory: LSan checks leaks */
#else
    long limit_kb = 200 * 1024;
#endif
    EXPECT(rss > 0 && rss < limit_kb);

    /* stopped; changes meanwhile; started again: the rescan catches up */
    EXPECT_EQ_INT(sh("p=$(cat $R/../w-run.pid); kill $p && for i in $(seq 100); do "
                     "kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done; exit 1"), 0);
    EXPECT_EQ_INT(sh("grep -c stopped $R/../w-run.log"), 0);
    sh("rm -rf $R/a/bulk && echo 'Written while no one watched.' > $R/a/offline.txt");
    sh("$C watch run --settle 0.3 > $R/../w-run2.log 2>&1 & echo $! > $R/../w-run.pid");
    const char *m5[] = {"/a/offline.txt", "/a/before.txt"}, *n5[] = {"/bulk/r1.txt"};
    EXPECT(library_is(2, m5, 2, n5, 1, 60));
    /* stopped, and gone: closing checkpoints the log of 2,000 removals */
    EXPECT_EQ_INT(sh("p=$(cat $R/../w-run.pid); kill $p && for i in $(seq 600); do "
                     "kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done; exit 1"), 0);

    EXPECT_EQ_INT(sh("$C watch ls --json"), 0);
    if (test_failed_now())
        fprintf(stderr, "  watch ls: %s\n", err_buf);
    EXPECT_CONTAINS(out_buf, "\"documents\":2");
    EXPECT_CONTAINS(out_buf, "\"present\":false"); /* b is gone, and still watched */
    EXPECT_EQ_INT(sh("$C watch rm $R/b $R/a && $C watch ls"), 0);
    EXPECT_CONTAINS(out_buf, "no folder is watched");
    EXPECT_EQ_INT(sh("$C ls --json | grep -c offline.txt"), 0); /* documents stay */
}
