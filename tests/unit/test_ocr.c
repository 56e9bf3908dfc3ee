/*
** test_ocr.c: scanned pages through OCR (issue 14). A "scan" is made here:
** a page of a text PDF rendered by MuPDF and written back as an image-only
** PDF (and as a PNG, and a two-frame TIFF is not needed: MuPDF's image
** reader is the same path). `add` must queue it, lib_ocr read it back with
** at least 95 % of the words of the original text layer, citations say
** (OCR), and an interrupted run (kill -9) must finish where it stopped.
** Needs tesseract's English data (tesseract-ocr-eng, which .ci/run installs).
*/
#include "ingest/ingest.h"
#include "scanpdf.h"
#include "library/library.h"
#include "ocr/ocr.h"
#include "store/store.h"
#include "test.h"

#include <ctype.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#define NEED_TESSERACT()                                                                           \
    do {                                                                                           \
        char inst_[256];                                                                           \
        if (ocr_installed(inst_, sizeof inst_) == 0 || !strstr(inst_, "eng"))                     \
            SKIP("tesseract's English data (tesseract-ocr-eng) is not installed");                 \
    } while (0)

/* Share of the words of want (letters and digits, lower-cased) found in got,
** each word counted as often as it occurs. */
static double word_recall(const char *want, const char *got)
{
    char w[64];
    int found = 0, total = 0;
    size_t n = strlen(want);
    /* got's words in a bag */
    char *bag = strdup(got);
    for (char *c = bag; *c; c++)
        *c = (char)(((unsigned char)*c < 0x80 && !isalnum((unsigned char)*c)) ? ' ' : tolower(*c));
    for (size_t i = 0; i < n;) {
        while (i < n && !isalnum((unsigned char)want[i]))
            i++;
        size_t k = 0;
        while (i < n && isalnum((unsigned char)want[i]) && k < sizeof w - 1)
            w[k++] = (char)tolower(want[i++]);
        while (i < n && isalnum((unsigned char)want[i]))
            i++;
        if (!k)
            continue;
        w[k] = 0;
        total++;
        /* find w as a whole word in bag and use it up */
        for (char *p = bag; (p = strstr(p, w)) != NULL; p++)
            if ((p == bag || p[-1] == ' ') && (p[k] == ' ' || p[k] == 0)) {
                memset(p, ' ', k);
                found++;
                break;
            }
    }
    free(bag);
    return total ? (double)found / total : 0;
}

static const char *page_text(lib *l, int64_t doc_id, int page, cn_arena *a)
{
    cn_err err = {0};
    const char *t = NULL;
    size_t len = 0;
    if (store_get_page(lib_store(l), doc_id, page, a, &t, &len, &err) != CN_OK || !t)
        return "";
    return t;
}

TEST(ocr_scanned_pdf_is_queued_then_read_back)
{
    NEED_TESSERACT();
    const char *src = test_data("docs/simple.pdf");
    char dir[600], scan[700], home[700];
    snprintf(dir, sizeof dir, "%s/scans", test_tmpdir());
    mkdir(dir, 0700);
    snprintf(scan, sizeof scan, "%s/scanned.pdf", dir);
    snprintf(home, sizeof home, "%s/h-ocr", test_tmpdir());
    int pages[] = {1};
    EXPECT(scan_write(src, pages, 1, 200, 0, scan, false));

    /* the scan has no text layer: ingest says so and queues the page */
    ingest_doc d;
    cn_err err = {0};
    EXPECT_EQ_INT(ingest_file(scan, &d, &err), CN_OK);
    EXPECT_EQ_INT(d.n_scanned, 1);
    EXPECT_EQ_INT(d.pages[0].len, 0);
    EXPECT_CONTAINS(d.notes, "1 of 1 pages have no text layer");
    ingest_doc_free(&d);

    lib *l;
    EXPECT_EQ_INT(lib_open(&l, home, &err), CN_OK);
    const char *paths[] = {scan};
    lib_add_stats st;
    EXPECT_EQ_INT(lib_add(l, paths, 1, false, NULL, NULL, &st, &err), CN_OK);
    EXPECT_EQ_INT(st.added, 1);
    store_ocr_counts c;
    EXPECT_EQ_INT(store_ocr_count(lib_store(l), 0, &c, &err), CN_OK);
    EXPECT_EQ_INT(c.pending, 1);

    lib_ocr_stats os;
    int n = lib_ocr(l, "eng", 2, NULL, NULL, &os, &err);
    EXPECT_EQ_INT(n, 1);
    EXPECT_EQ_INT(store_ocr_count(lib_store(l), 0, &c, &err), CN_OK);
    EXPECT_EQ_INT(c.pending, 0);
    EXPECT_EQ_INT(c.done, 1);

    /* the words of the original text layer come back */
    ingest_doc orig;
    EXPECT_EQ_INT(ingest_file(src, &orig, &err), CN_OK);
    cn_arena a;
    cn_arena_init(&a, (size_t)16 << 20);
    const char *got = page_text(l, 1, 1, &a);
    double r = word_recall(orig.pages[0].text, got);
    printf("     OCR word recall %.3f on simple.pdf p. 1 at 200 dpi (confidence %.0f %%), %.1fs\n",
           r, os.mean_conf, os.seconds);
    EXPECT(r >= 0.95);

    /* and they are searchable, cited as OCR */
    lib_result res[5];
    lib_search_info info;
    lib_search_opts so = {.k = 5};
    /* the first long word of the page as a query */
    char q[64] = "";
    for (const char *p = orig.pages[0].text; *p && !q[0]; p++) {
        size_t k = 0;
        while (isalpha((unsigned char)p[k]))
            k++;
        if (k >= 7 && k < sizeof q)
            snprintf(q, sizeof q, "%.*s", (int)k, p);
        if (k)
            p += k - 1;
    }
    n = lib_search(l, q, &so, &a, res, &info, &err);
    EXPECT(n >= 1);
    if (n >= 1) {
        EXPECT(res[0].ocr);
        EXPECT(res[0].ocr_conf > 50);
        json_t *j = lib_result_json(&res[0]);
        EXPECT(json_is_true(json_object_get(j, "ocr")));
        json_decref(j);
    }
    ingest_doc_free(&orig);
    cn_arena_free(&a);
    /* nothing left: a second run reads nothing */
    EXPECT_EQ_INT(lib_ocr(l, "eng", 2, NULL, NULL, &os, &err), 0);
    lib_close(l);
}

TEST(ocr_images_are_documents_and_missing_data_says_what_to_install)
{
    NEED_TESSERACT();
    char png[700], home[700], empty[700];
    snprintf(png, sizeof png, "%s/page.png", test_tmpdir());
    snprintf(home, sizeof home, "%s/h-ocr-png", test_tmpdir());
    snprintf(empty, sizeof empty, "%s/no-tessdata", test_tmpdir());
    mkdir(empty, 0700);
    int pages[] = {1};
    EXPECT(scan_write(test_data("docs/simple.pdf"), pages, 1, 150, 0, png, true));
    lib *l;
    cn_err err = {0};
    EXPECT_EQ_INT(lib_open(&l, home, &err), CN_OK);
    const char *paths[] = {png};
    lib_add_stats st;
    EXPECT_EQ_INT(lib_add(l, paths, 1, false, NULL, NULL, &st, &err), CN_OK);
    EXPECT_EQ_INT(st.added, 1);
    /* without the language data: a message naming the package; pages stay queued */
    const char *old = getenv("TESSDATA_PREFIX");
    char *saved = old ? strdup(old) : NULL;
    setenv("TESSDATA_PREFIX", empty, 1);
    lib_ocr_stats os;
    EXPECT_EQ_INT(lib_ocr(l, NULL, 2, NULL, NULL, &os, &err), CN_ENOTFOUND);
    EXPECT_CONTAINS(err.msg, "apt-get install tesseract-ocr-eng");
    if (saved) {
        setenv("TESSDATA_PREFIX", saved, 1);
        free(saved);
    } else {
        unsetenv("TESSDATA_PREFIX");
    }
    EXPECT_EQ_INT(lib_ocr(l, "xyz", 2, NULL, NULL, &os, &err), CN_ENOTFOUND);
    EXPECT_CONTAINS(err.msg, "OCR language xyz is not installed");
    EXPECT_CONTAINS(err.msg, "apt-get install tesseract-ocr-xyz");
    store_ocr_counts c;
    EXPECT_EQ_INT(store_ocr_count(lib_store(l), 0, &c, &err), CN_OK);
    EXPECT_EQ_INT(c.pending, 1);
    /* with it: read */
    EXPECT_EQ_INT(lib_ocr(l, "eng", 2, NULL, NULL, &os, &err), 1);
    EXPECT(os.mean_conf > 50);
    /* a page whose file changed since: failed with the reason, not read */
    lib_close(l);
}

/* A four-page scan; the OCR run is killed (SIGKILL) once a page is
** committed, and a second run reads exactly the rest. */
TEST(ocr_resumes_after_kill)
{
    NEED_TESSERACT();
    char scan[700], home[700];
    snprintf(scan, sizeof scan, "%s/scan4.pdf", test_tmpdir());
    snprintf(home, sizeof home, "%s/h-ocr-kill", test_tmpdir());
    int pages[] = {1, 1, 1, 1};
    EXPECT(scan_write(test_data("docs/simple.pdf"), pages, 4, 150, 0, scan, false));
    lib *l;
    cn_err err = {0};
    EXPECT_EQ_INT(lib_open(&l, home, &err), CN_OK);
    const char *paths[] = {scan};
    lib_add_stats st;
    EXPECT_EQ_INT(lib_add(l, paths, 1, false, NULL, NULL, &st, &err), CN_OK);
    lib_close(l);
    /* `cairn index` in a process of its own (tesseract in a forked copy of
    ** this one could hang on the locks its threads held) */
    const char *bin = getenv("CAIRN_BIN") ? getenv("CAIRN_BIN") : "build/cairn";
    pid_t pid = fork();
    if (pid == 0) {
        int dn = open("/dev/null", O_WRONLY);
        dup2(dn, 2);
        execl(bin, bin, "index", "--home", home, "--ocr-lang", "eng", "-t", "1", (char *)NULL);
        _exit(127);
    }
    /* wait for the first committed page, then kill */
    store_ocr_counts c = {0};
    for (int i = 0; i < 600 && c.done == 0; i++) {
        usleep(50000);
        lib *pl;
        if (lib_open(&pl, home, &err) == CN_OK) {
            if (store_ocr_count(lib_store(pl), 0, &c, &err) != CN_OK)
                fprintf(stderr, "poll: %s\n", err.msg);
            lib_close(pl);
        }
    }
    kill(pid, SIGKILL);
    int ws;
    waitpid(pid, &ws, 0);
    EXPECT(c.done >= 1);
    EXPECT_EQ_INT(lib_open(&l, home, &err), CN_OK);
    store_ocr_counts before;
    EXPECT_EQ_INT(store_ocr_count(lib_store(l), 0, &before, &err), CN_OK);
    EXPECT(before.done >= 1 && before.done + before.pending == 4);
    lib_ocr_stats os;
    EXPECT_EQ_INT(lib_ocr(l, "eng", 2, NULL, NULL, &os, &err), (int)before.pending);
    EXPECT_EQ_INT(store_ocr_count(lib_store(l), 0, &c, &err), CN_OK);
    EXPECT_EQ_INT(c.done, 4);
    EXPECT_EQ_INT(c.pending, 0);
    /* the library is consistent: passage counts match */
    EXPECT_EQ_INT(store_check(lib_store(l), &err), CN_OK);
    lib_close(l);
}

/* A TIFF of 10 000 one-pixel frames: counted, not decoded, at add time; a
** frame near the end renders on its own; a page limit refuses it by count. */
TEST(ocr_ten_thousand_page_tiff_is_counted_not_decoded)
{
    const int frames = 10000;
    cn_buf b;
    cn_buf_init(&b, (size_t)64 << 20);
    cn_buf_append(&b, "II*\0", 4);
    uint32_t first = 8;
    cn_buf_append(&b, &first, 4);
    for (int i = 0; i < frames; i++) {
        uint32_t at = (uint32_t)b.len, pixel = at + 2 + 8 * 12 + 4;
        uint32_t next = i + 1 < frames ? pixel + 1 : 0;
        const struct {
            uint16_t tag, type;
            uint32_t count, value;
        } e[8] = {{256, 4, 1, 1}, {257, 4, 1, 1},     {258, 3, 1, 8}, {259, 3, 1, 1},
                  {262, 3, 1, 1}, {273, 4, 1, pixel}, {278, 4, 1, 1}, {279, 4, 1, 1}};
        uint16_t n = 8;
        cn_buf_append(&b, &n, 2);
        cn_buf_append(&b, e, sizeof e);
        cn_buf_append(&b, &next, 4);
        cn_buf_append(&b, &(uint8_t){(uint8_t)(i * 7)}, 1);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/frames.tif", test_tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    cn_buf_free(&b);
    ingest_doc d;
    cn_err err = {0};
    double t0 = cn_now();
    int rc = ingest_file(path, &d, &err);
    double dt = cn_now() - t0;
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc == CN_OK) {
        EXPECT_STR(d.kind, "image");
        EXPECT_EQ_INT(d.n_pages, frames);
        EXPECT_EQ_INT(d.n_scanned, frames);
        ingest_doc_free(&d);
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
    printf("     10 000-frame TIFF counted in %.2f s\n", dt);
    EXPECT(dt < 10);
    ingest_opts o = {.max_pages = 5000};
    EXPECT_EQ_INT(ingest_file_opts(path, &o, &d, &err), CN_ELIMIT);
    EXPECT_CONTAINS(err.msg, "declares 10000 pages, more than the limit of 5000");
    ingest_pixmap px;
    EXPECT_EQ_INT(ingest_render(path, 9999, 300, &px, &err), CN_OK);
    EXPECT(px.w >= 1 && px.h >= 1);
    ingest_pixmap_free(&px);
    EXPECT_EQ_INT(ingest_render(path, 10001, 300, &px, &err), CN_ENOTFOUND);
    EXPECT_CONTAINS(err.msg, "page 10001: no such page (10000 pages)");
}
