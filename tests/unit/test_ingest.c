/*
** test_ingest.c: extraction from the fixtures in tests/data/docs (made by
** tests/data/docs/make_docs.py), every bad input of issue 4 with its own
** message, and chunk_split's contract.
*/
#include "ingest/ingest.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static bool all_valid_utf8(const ingest_doc *d)
{
    for (int i = 0; i < d->n_pages; i++)
        if (cn_utf8_valid_prefix(d->pages[i].text, d->pages[i].len) != d->pages[i].len ||
            strlen(d->pages[i].text) != d->pages[i].len)
            return false;
    return true;
}

/* Ingest a fixture, expecting success. */
static int load(const char *rel, ingest_doc *d)
{
    cn_err err = {0};
    int rc = ingest_file(test_data(rel), d, &err);
    if (rc != CN_OK)
        test_fail_at(__FILE__, __LINE__, "%s: %d %s", rel, rc, err.msg);
    return rc;
}

/* Ingest a path, expecting failure with code and a message containing want. */
#define EXPECT_INGEST_FAILS(path, code, want)                                                      \
    do {                                                                                           \
        ingest_doc d_;                                                                             \
        cn_err e_ = {0};                                                                           \
        int rc_ = ingest_file((path), &d_, &e_);                                                   \
        EXPECT_EQ_INT(rc_, (code));                                                                \
        EXPECT_CONTAINS(e_.msg, (want));                                                           \
        if (rc_ == CN_OK)                                                                          \
            ingest_doc_free(&d_);                                                                  \
    } while (0)

static const char *write_tmp(const char *name, const void *data, size_t n)
{
    static char path[8][512];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return p;
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

static long find(const char *hay, const char *needle)
{
    const char *p = strstr(hay, needle);
    return p ? p - hay : -1;
}

/* ---- PDF ---------------------------------------------------------------- */

TEST(ingest_pdf_pages_title_paragraphs)
{
    ingest_doc d;
    if (load("docs/simple.pdf", &d) != CN_OK)
        return;
    EXPECT_STR(d.kind, "pdf");
    EXPECT_STR(d.title, "Cairn Fixture");
    EXPECT_EQ_INT(d.n_pages, 3);
    EXPECT_STR(d.notes, "");
    EXPECT(all_valid_utf8(&d));
    EXPECT_EQ_INT(d.pages[0].number, 1);
    EXPECT_EQ_INT(d.pages[2].number, 3);
    EXPECT_CONTAINS(d.pages[0].text,
                    "1 Introduction\n\nCairn reads documents on your own machine.");
    EXPECT_CONTAINS(d.pages[0].text,
                    "The quick brown fox jumps over the lazy dog near the river bank.");
    EXPECT_CONTAINS(d.pages[0].text, "computer.\n\nEvery answer cites the page");
    EXPECT_CONTAINS(d.pages[1].text, "Passages are stored with their page numbers so that answers "
                                     "can cite the page.");
    EXPECT_CONTAINS(d.pages[1].text, "The caf\xC3\xA9 serves cr\xC3\xA8me br\xC3\xBBl\xC3\xA9"
                                     "e");
    EXPECT_CONTAINS(d.pages[2].text, "fused by reciprocal rank fusion.");
    ingest_doc_free(&d);
}

TEST(ingest_pdf_dehyphenates_only_before_lower_case)
{
    ingest_doc d;
    if (load("docs/simple.pdf", &d) != CN_OK)
        return;
    EXPECT_CONTAINS(d.pages[0].text, "It builds an information index");
    EXPECT(!strstr(d.pages[0].text, "infor-"));
    /* hyphens inside a line stay */
    EXPECT_CONTAINS(d.pages[1].text, "A well-known self-test runs at start-up");
    ingest_doc_free(&d);
}

TEST(ingest_pdf_drops_running_headers_and_page_numbers)
{
    ingest_doc d;
    if (load("docs/simple.pdf", &d) != CN_OK)
        return;
    for (int i = 0; i < d.n_pages; i++) {
        EXPECT(!strstr(d.pages[i].text, "Cairn Field Guide"));
        /* the footer was the page number alone */
        const char *t = d.pages[i].text;
        size_t n = d.pages[i].len;
        EXPECT(n > 2 && t[n - 1] == '.');
    }
    ingest_doc_free(&d);
}

TEST(ingest_pdf_columns_in_reading_order)
{
    ingest_doc d;
    if (load("docs/columns.pdf", &d) != CN_OK)
        return;
    const char *t = d.pages[0].text;
    long title = find(t, "Two Column Layout Test");
    long left =
        find(t, "The left column starts here and continues with a sentence that runs over "
                "several lines of text until it reaches the end of the first column of this page.");
    long left2 = find(t, "A second paragraph in the left column talks about apples");
    long right = find(t, "The right column begins with a different story about rivers");
    long right2 = find(t, "Its second paragraph mentions lighthouses");
    long bottom = find(t, "A full-width closing line");
    EXPECT(title == 0);
    EXPECT(left > title);
    EXPECT(left2 > left);
    EXPECT(right > left2);
    EXPECT(right2 > right);
    EXPECT(bottom > right2);
    if (test_failed_now())
        fprintf(stderr, "  text: %s\n", t);
    ingest_doc_free(&d);
}

TEST(ingest_pdf_password_protected)
{
    EXPECT_INGEST_FAILS(test_data("docs/encrypted.pdf"), CN_EUNSUPPORTED,
                        "docs/encrypted.pdf: password protected");
}

/* A page that is only a picture has no text now: it is queued for OCR. */
TEST(ingest_pdf_image_only_is_queued_for_ocr)
{
    ingest_doc d;
    cn_err err = {0};
    EXPECT_EQ_INT(ingest_file(test_data("docs/image-only.pdf"), &d, &err), CN_OK);
    EXPECT_EQ_INT(d.n_pages, 2);
    EXPECT_EQ_INT(d.n_scanned, 2);
    EXPECT_EQ_INT(d.scanned[0], 1);
    EXPECT_EQ_INT(d.scanned[1], 2);
    EXPECT_EQ_INT(d.pages[0].len, 0);
    EXPECT_CONTAINS(d.notes, "2 of 2 pages have no text layer: their text comes from OCR");
    ingest_doc_free(&d);
}

TEST(ingest_pdf_truncated_is_repaired_and_says_so)
{
    ingest_doc d;
    if (load("docs/truncated.pdf", &d) != CN_OK)
        return;
    EXPECT_CONTAINS(d.notes, "damaged PDF repaired by MuPDF");
    EXPECT_CONTAINS(d.pages[0].text, "information index");
    EXPECT(all_valid_utf8(&d));
    ingest_doc_free(&d);
}

TEST(ingest_pdf_damaged_gives_mupdf_reason)
{
    EXPECT_INGEST_FAILS(test_data("docs/damaged.pdf"), CN_EFORMAT, "damaged.pdf: damaged PDF: ");
    /* the page tree is its own kid: MuPDF's "cycle in page tree", no abort */
    EXPECT_INGEST_FAILS(test_data("docs/cyclic.pdf"), CN_EFORMAT, "cyclic.pdf: damaged PDF: ");
    EXPECT_INGEST_FAILS(test_data("docs/cyclic.pdf"), CN_EFORMAT, "cycle");
}

TEST(ingest_pdf_absurd_page_count)
{
    EXPECT_INGEST_FAILS(test_data("docs/two-billion.pdf"), CN_ELIMIT,
                        "two-billion.pdf: declares 2000000000 pages");
    /* within a raised limit, the missing pages are tried a bounded number of times */
    ingest_opts o = {.max_pages = 1000};
    char *data;
    size_t len;
    if (cn_read_file(test_data("docs/two-billion.pdf"), 1 << 20, &data, &len, NULL) != CN_OK)
        return;
    /* patch the count to 900: one real page, 899 missing */
    char *c = strstr(data, "/Count 2000000000");
    EXPECT(c != NULL);
    if (c) {
        memcpy(c, "/Count 900       ", 17);
        ingest_doc d;
        cn_err err = {0};
        int rc = ingest_memory("many.pdf", data, len, &o, &d, &err);
        EXPECT_EQ_INT(rc, CN_OK);
        if (rc == CN_OK) {
            EXPECT_EQ_INT(d.n_pages, 900);
            EXPECT_CONTAINS(d.pages[0].text, "Cairn reads documents");
            EXPECT_CONTAINS(d.notes, "stopped after 50 unreadable pages in a row");
            ingest_doc_free(&d);
        }
    }
    free(data);
}

TEST(ingest_pdf_named_files_that_are_not_pdfs)
{
    EXPECT_INGEST_FAILS(test_data("docs/garbage.pdf"), CN_EFORMAT,
                        "garbage.pdf: not a PDF (the content is binary data)");
    EXPECT_INGEST_FAILS(test_data("docs/html.pdf"), CN_EFORMAT,
                        "html.pdf: not a PDF (the content is HTML)");
}

TEST(ingest_pdf_from_memory_matches_file)
{
    char *data;
    size_t len;
    cn_err re = {0};
    if (cn_read_file(test_data("docs/simple.pdf"), 1 << 20, &data, &len, &re) != CN_OK) {
        /* checked in: unreadable is a broken clone or a broken reader, not a skip */
        test_fail_at(__FILE__, __LINE__, "%s", re.msg);
        return;
    }
    ingest_doc a, b;
    EXPECT_EQ_INT(ingest_memory("simple.pdf", data, len, NULL, &a, NULL), CN_OK);
    if (load("docs/simple.pdf", &b) == CN_OK) {
        EXPECT_EQ_INT(a.n_pages, b.n_pages);
        for (int i = 0; i < a.n_pages && i < b.n_pages; i++)
            EXPECT_STR(a.pages[i].text, b.pages[i].text);
        ingest_doc_free(&b);
    }
    ingest_doc_free(&a);
    free(data);
}

TEST(ingest_pdf_memory_cap_is_an_error_not_a_crash)
{
    ingest_opts o = {.max_mupdf_bytes = 400 << 10};
    ingest_doc d;
    cn_err err = {0};
    char *data;
    size_t len;
    cn_err re = {0};
    if (cn_read_file(test_data("docs/simple.pdf"), 1 << 20, &data, &len, &re) != CN_OK) {
        /* checked in: unreadable is a broken clone or a broken reader, not a skip */
        test_fail_at(__FILE__, __LINE__, "%s", re.msg);
        return;
    }
    int rc = ingest_memory("simple.pdf", data, len, &o, &d, &err);
    EXPECT_EQ_INT(rc, CN_ENOMEM);
    EXPECT_CONTAINS(err.msg, "simple.pdf: ");
    EXPECT_CONTAINS(err.msg, "of memory");
    if (rc == CN_OK)
        ingest_doc_free(&d);
    free(data);
}

/* ---- files that are not documents --------------------------------------- */

TEST(ingest_bad_paths)
{
    EXPECT_INGEST_FAILS(write_tmp("empty.txt", "", 0), CN_EFORMAT, "empty.txt: empty file");
    EXPECT_INGEST_FAILS(write_tmp("empty.pdf", "", 0), CN_EFORMAT, "empty.pdf: empty file");
    EXPECT_INGEST_FAILS(test_tmpdir(), CN_EINVAL, ": not a regular file (a directory)");
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-file.pdf", test_tmpdir());
    EXPECT_INGEST_FAILS(missing, CN_ENOTFOUND, "no-such-file.pdf: no such file");
    /* a FIFO must not block the batch waiting for a writer */
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/pipe.txt", test_tmpdir());
    if (mkfifo(fifo, 0600) == 0)
        EXPECT_INGEST_FAILS(fifo, CN_EINVAL, "pipe.txt: not a regular file");
}

TEST(ingest_symlinks)
{
    /* a link loop fails by name; a link to a directory is not a file */
    char a[512], b[512], dl[512];
    snprintf(a, sizeof a, "%s/loop-a.txt", test_tmpdir());
    snprintf(b, sizeof b, "%s/loop-b.txt", test_tmpdir());
    snprintf(dl, sizeof dl, "%s/dirlink", test_tmpdir());
    if (symlink(b, a) != 0 || symlink(a, b) != 0 || symlink(test_tmpdir(), dl) != 0)
        SKIP("cannot make symbolic links here");
    EXPECT_INGEST_FAILS(a, CN_EIO, "loop-a.txt: cannot read: Too many levels of symbolic links");
    EXPECT_INGEST_FAILS(dl, CN_EINVAL, "dirlink: not a regular file (a directory)");
    /* a link to a document is the document */
    char ok[512];
    snprintf(ok, sizeof ok, "%s/link.pdf", test_tmpdir());
    char target[1024];
    EXPECT(realpath(test_data("docs/simple.pdf"), target) != NULL);
    EXPECT_EQ_INT(symlink(target, ok), 0); /* links worked above */
    if (test_failed_now())
        return;
    ingest_doc d;
    EXPECT_EQ_INT(ingest_file(ok, &d, NULL), CN_OK);
    if (!test_failed_now()) {
        EXPECT_EQ_INT(d.n_pages, 3);
        ingest_doc_free(&d);
    }
}

/* A file the user may not read fails by name. Root reads through chmod 000,
** so as root the check runs in a child that has become nobody (65534): the
** same refusal a user sees, whoever runs the suite (CI may be root). */
TEST(ingest_unreadable_file)
{
    const char *p = write_tmp("secret.txt", "private words\n", 14);
    chmod(p, 0);
    if (access(p, R_OK) != 0) {
        EXPECT_INGEST_FAILS(p, CN_EIO, "secret.txt: cannot read: Permission denied");
        chmod(p, 0600);
        return;
    }
    /* a directory nobody may enter but not list, holding the unreadable file
    ** (the test's own temporary directory is private to root) */
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/open-dir", test_tmpdir());
    snprintf(path, sizeof path, "%s/secret.txt", dir);
    EXPECT(mkdir(dir, 0711) == 0 || errno == EEXIST);
    EXPECT_EQ_INT(chmod(test_tmpdir(), 0711), 0);
    EXPECT_EQ_INT(rename(p, path), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        ingest_doc d;
        cn_err e = {0};
        int rc = ingest_file(path, &d, &e);
        if (rc != CN_EIO || !strstr(e.msg, "secret.txt: cannot read: Permission denied")) {
            fprintf(stderr, "  as nobody: %d %s\n", rc, e.msg);
            _exit(1);
        }
        _exit(0);
    }
    int st = -1;
    EXPECT(pid > 0 && waitpid(pid, &st, 0) == pid);
    chmod(test_tmpdir(), 0700);
    chmod(path, 0600);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        SKIP("running as root without the right to become nobody (setuid 65534)");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(ingest_unsupported_types)
{
    unsigned char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i;
    EXPECT_INGEST_FAILS(write_tmp("x.bin", bin, sizeof bin), CN_EUNSUPPORTED,
                        "x.bin: unsupported file type (.bin, binary data)");
    EXPECT_INGEST_FAILS(write_tmp("report.docx", "PK\x03\x04junkjunk", 12), CN_EFORMAT,
                        "report.docx: damaged ZIP archive");
    EXPECT_INGEST_FAILS(write_tmp("bundle.zip", "PK\x03\x04junkjunk", 12), CN_EUNSUPPORTED,
                        "bundle.zip: unsupported file type (.zip, a ZIP archive)");
    EXPECT_INGEST_FAILS(write_tmp("notes.tar.gz", "\x1F\x8B\x08\x00rest", 8), CN_EUNSUPPORTED,
                        "gzip-compressed data");
    /* images are documents for OCR; a broken one says so */
    EXPECT_INGEST_FAILS(write_tmp("photo.jpg", "\xFF\xD8\xFF\xE0rest", 8), CN_EFORMAT,
                        "photo.jpg: damaged image");
    /* text with an extension Cairn does not read is not guessed at */
    EXPECT_INGEST_FAILS(write_tmp("data.csv", "a,b\n1,2\n", 8), CN_EUNSUPPORTED,
                        "data.csv: unsupported file type (.csv, text)");
}

TEST(ingest_kind_of_content_and_name)
{
    const unsigned char pdf[] = "%PDF-1.7\n...", html[] = "<!DOCTYPE html><p>x", txt[] = "hello\n";
    const unsigned char junk_then_pdf[] = "junk junk\n%PDF-1.4\n";
    EXPECT_EQ_INT(ingest_kind_of("a.pdf", pdf, sizeof pdf - 1), INGEST_KIND_PDF);
    EXPECT_EQ_INT(ingest_kind_of("a.txt", pdf, sizeof pdf - 1), INGEST_KIND_PDF);
    EXPECT_EQ_INT(ingest_kind_of("a.pdf", junk_then_pdf, sizeof junk_then_pdf - 1),
                  INGEST_KIND_PDF);
    EXPECT_EQ_INT(ingest_kind_of("a.pdf", html, sizeof html - 1), CN_EFORMAT);
    EXPECT_EQ_INT(ingest_kind_of("a.PDF", txt, sizeof txt - 1), CN_EFORMAT);
    EXPECT_EQ_INT(ingest_kind_of("a.html", html, sizeof html - 1), INGEST_KIND_HTML);
    EXPECT_EQ_INT(ingest_kind_of("README", html, sizeof html - 1), INGEST_KIND_HTML);
    EXPECT_EQ_INT(ingest_kind_of("README", txt, sizeof txt - 1), INGEST_KIND_TEXT);
    EXPECT_EQ_INT(ingest_kind_of("dir.d/notes.MD", txt, sizeof txt - 1), INGEST_KIND_MARKDOWN);
    EXPECT_EQ_INT(ingest_kind_of("a.txt", html, sizeof html - 1), INGEST_KIND_TEXT);
    EXPECT_EQ_INT(ingest_kind_of(".hidden", txt, sizeof txt - 1), INGEST_KIND_TEXT);
    EXPECT_EQ_INT(ingest_kind_of("a.txt", (const unsigned char *)"a\0b", 3), CN_EUNSUPPORTED);
    EXPECT_STR(ingest_describe((const unsigned char *)"\x89PNG\r\n", 6), "a PNG image");
}

TEST(ingest_text_size_limit)
{
    /* the issue's 50 MB text file: refused by size before it is read */
    char path[512];
    snprintf(path, sizeof path, "%s/big.txt", test_tmpdir());
    FILE *f = fopen(path, "wb");
    if (!f)
        SKIP("cannot write a temporary file");
    char line[100];
    memset(line, 'a', sizeof line);
    for (int i = 9; i < 100; i += 10)
        line[i] = ' ';
    line[99] = '\n';
    for (int i = 0; i < 50 * 10486; i++)
        fwrite(line, 1, sizeof line, f);
    fclose(f);
    double t0 = cn_now();
    EXPECT_INGEST_FAILS(path, CN_ELIMIT, "big.txt: larger than 32 MB (the limit for text files)");
    EXPECT(cn_now() - t0 < 1.0);
    unlink(path);
    /* the limit is an option */
    ingest_opts o = {.max_text_bytes = 10};
    ingest_doc d;
    cn_err err = {0};
    EXPECT_EQ_INT(ingest_file_opts(write_tmp("eleven.txt", "eleven byte", 11), &o, &d, &err),
                  CN_ELIMIT);
    EXPECT_CONTAINS(err.msg, "eleven.txt: larger than 10 bytes");
}

/* ---- text, Markdown, HTML ---------------------------------------------- */

static const char utf16_expect[] =
    "Plain text fixture.\n\nThe second paragraph has caf\xC3\xA9 and na\xC3\xAFve words, and "
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E too.";

TEST(ingest_text_utf16_with_bom)
{
    ingest_doc d;
    if (load("docs/utf16le.txt", &d) == CN_OK) {
        EXPECT_STR(d.kind, "text");
        EXPECT_STR(d.title, "utf16le.txt");
        EXPECT_EQ_INT(d.n_pages, 1);
        EXPECT_STR(d.pages[0].text, utf16_expect);
        EXPECT_STR(d.notes, "converted from UTF-16LE");
        ingest_doc_free(&d);
    }
    if (load("docs/utf16be.txt", &d) == CN_OK) {
        EXPECT_STR(d.pages[0].text, utf16_expect);
        EXPECT_STR(d.notes, "converted from UTF-16BE");
        ingest_doc_free(&d);
    }
    /* an unpaired surrogate is repaired and counted */
    const char bad[] = "\xFF\xFE"
                       "a\0\x00\xD8"
                       "b\0";
    if (ingest_memory("s.txt", bad, sizeof bad - 1, NULL, &d, NULL) == CN_OK) {
        EXPECT_STR(d.pages[0].text, "a\xEF\xBF\xBD"
                                    "b");
        EXPECT_CONTAINS(d.notes, "invalid UTF-16 repaired (1 place)");
        ingest_doc_free(&d);
    }
}

TEST(ingest_text_invalid_utf8_repaired_and_counted)
{
    ingest_doc d;
    if (load("docs/invalid-utf8.txt", &d) != CN_OK)
        return;
    EXPECT_STR(d.notes, "invalid UTF-8 repaired (3 places)");
    EXPECT_STR(d.pages[0].text, "Good start.\n\nBad bytes \xEF\xBF\xBD here, a lone \xEF\xBF\xBD "
                                "and a truncated \xEF\xBF\xBD sequence.");
    EXPECT(all_valid_utf8(&d));
    ingest_doc_free(&d);
}

TEST(ingest_text_line_ends_controls_and_pages)
{
    const char s[] =
        "\xEF\xBB\xBFOne\r\ntwo\rthree\x01\x7F\n\n\n\nfour  \n\fPage two\f\f\fPage three";
    ingest_doc d;
    if (ingest_memory("t.txt", s, sizeof s - 1, NULL, &d, NULL) != CN_OK) {
        EXPECT(0);
        return;
    }
    EXPECT_EQ_INT(d.n_pages, 3);
    EXPECT_STR(d.pages[0].text, "One\ntwo\nthree\n\nfour");
    EXPECT_STR(d.pages[1].text, "Page two");
    EXPECT_STR(d.pages[2].text, "Page three");
    EXPECT_EQ_INT(d.pages[2].number, 3);
    ingest_doc_free(&d);

    /* long text: pages of about text_page_words words, cut at paragraphs */
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    for (int p = 0; p < 40; p++) {
        for (int w = 0; w < 12; w++)
            cn_buf_printf(&b, "w%d_%d ", p, w);
        cn_buf_append(&b, "\n\n", 2);
    }
    ingest_opts o = {.text_page_words = 50};
    if (ingest_memory("long.txt", b.data, b.len, &o, &d, NULL) == CN_OK) {
        EXPECT(d.n_pages >= 10 && d.n_pages <= 20);
        for (int i = 0; i < d.n_pages; i++) {
            int words = 1;
            for (size_t k = 0; k < d.pages[i].len; k++)
                words += d.pages[i].text[k] == ' ' || d.pages[i].text[k] == '\n';
            EXPECT(words <= 60);
            EXPECT(strncmp(d.pages[i].text, "w", 1) == 0 &&
                   strstr(d.pages[i].text, "_0 ") ==
                       d.pages[i].text + strcspn(d.pages[i].text, "_"));
        }
        ingest_doc_free(&d);
    }
    cn_buf_free(&b);
    EXPECT_INGEST_FAILS(write_tmp("blank.txt", " \n\n\t \f \n", 8), CN_EFORMAT,
                        "blank.txt: no text (only whitespace)");
}

TEST(ingest_markdown_cleanup_and_title)
{
    ingest_doc d;
    if (load("docs/notes.md", &d) != CN_OK)
        return;
    EXPECT_STR(d.kind, "markdown");
    EXPECT_STR(d.title, "Cairn Markdown Guide");
    const char *t = d.pages[0].text;
    const char *start = "Intro line before any heading.\n\nCairn Markdown Guide\n\nSome";
    EXPECT(strncmp(t, start, strlen(start)) == 0);
    EXPECT_CONTAINS(t, "Some bold text, a link and inline code.");
    EXPECT_CONTAINS(t, "\n\nInstall\n\nmake && make test");
    EXPECT_CONTAINS(t, "key | value\none | two");
    EXPECT_CONTAINS(t, "diagram shows snake_case_names.");
    EXPECT(!strstr(t, "example.org"));
    EXPECT(!strstr(t, "layout"));
    EXPECT(!strstr(t, "```"));
    EXPECT(!strstr(t, "#"));
    EXPECT(!strstr(t, "---"));
    ingest_doc_free(&d);

    const char fm[] = "---\ntitle: \"Front Title\"\n---\nSetext Heading\n==============\n\n"
                      "> quoted *words* and \\*stars\\*\n\n<https://x.org/a> and <b>bold</b>\n";
    if (ingest_memory("fm.md", fm, sizeof fm - 1, NULL, &d, NULL) == CN_OK) {
        EXPECT_STR(d.title, "Front Title");
        EXPECT_CONTAINS(d.pages[0].text, "Setext Heading\n\nquoted words and *stars*");
        EXPECT_CONTAINS(d.pages[0].text, "https://x.org/a and  bold");
        ingest_doc_free(&d);
    }
    /* no heading: the file name */
    if (ingest_memory("dir/plain.md", "just words\n", 11, NULL, &d, NULL) == CN_OK) {
        EXPECT_STR(d.title, "plain.md");
        ingest_doc_free(&d);
    }
}

/* Markdown through libcmark: the cases a line-by-line parser gets wrong.
** Entities are decoded (a search for "AT&T" finds "AT&amp;T"), a setext
** heading may span lines, an indented code block is code (its "#" line is
** no heading, so not the title), a fence inside a list item is code, an
** HTML block's tags go, reference definitions and link targets go. */
TEST(ingest_markdown_commonmark_cases)
{
    const char md[] = "Plant &amp; Process &copy; AT&amp;T &#35;1\n"
                      "Guide\n"
                      "=====\n\n"
                      "    # not a heading, code\n\n"
                      "1. first step\n"
                      "   - nested *item*\n"
                      "     ```\n"
                      "     pump --prime\n"
                      "     ```\n"
                      "2. second step with [a link][ref]\n\n"
                      "<div class=\"note\">\n"
                      "Valve notes\n"
                      "</div>\n\n"
                      "[ref]: https://example.org/secret-target\n";
    ingest_doc d;
    cn_err err = {0};
    EXPECT_EQ_INT(ingest_memory("cm.md", md, sizeof md - 1, NULL, &d, &err), CN_OK);
    if (err.code)
        return;
    const char *t = d.pages[0].text;
    EXPECT_STR(d.title, "Plant & Process \xC2\xA9 AT&T #1 Guide");
    EXPECT_CONTAINS(t, "Plant & Process \xC2\xA9 AT&T #1\nGuide\n\n# not a heading, code\n\n");
    EXPECT_CONTAINS(t, "first step\nnested item\n\npump --prime\n\nsecond step with a link");
    EXPECT_CONTAINS(t, "Valve notes");
    EXPECT(!strstr(t, "div"));
    EXPECT(!strstr(t, "example.org"));
    EXPECT(!strstr(t, "&amp;"));
    EXPECT(!strstr(t, "```"));
    ingest_doc_free(&d);
}

TEST(ingest_html_text_only)
{
    ingest_doc d;
    if (load("docs/page.html", &d) != CN_OK)
        return;
    EXPECT_STR(d.kind, "html");
    EXPECT_STR(d.title, "Cairn & HTML");
    const char *t = d.pages[0].text;
    EXPECT(strncmp(t, "Heading One\n\nFirst paragraph with \xC3\xA9l\xC3\xA8ve and <tags>.", 52) ==
           0);
    EXPECT_CONTAINS(t,
                    "\n\nSecond block\nwith a break.\n\nitem one\nitem two\n\ncode  kept\n  as is");
    EXPECT(!strstr(t, "hidden"));
    EXPECT(!strstr(t, "color"));
    EXPECT(!strstr(t, "no script text"));
    EXPECT(!strstr(t, "Cairn & HTML"));
    ingest_doc_free(&d);
    /* no <title>: the first <h1> */
    const char h[] = "<html><body><h1>Only <i>Heading</i></h1><p>text</p></body></html>";
    if (ingest_memory("h.html", h, sizeof h - 1, NULL, &d, NULL) == CN_OK) {
        EXPECT_STR(d.title, "Only Heading");
        ingest_doc_free(&d);
    }
    const char only_script[] = "<html><script>x=1</script></html>";
    cn_err err = {0};
    EXPECT_EQ_INT(ingest_memory("s.html", only_script, sizeof only_script - 1, NULL, &d, &err),
                  CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "s.html: no text");
}

TEST(ingest_html_deep_nesting_refused_not_crashing)
{
    cn_buf b;
    cn_buf_init(&b, 64 << 20);
    for (int i = 0; i < 200000; i++)
        cn_buf_append(&b, "<div>", 5);
    cn_buf_append(&b, "deep", 4);
    ingest_doc d;
    cn_err err = {0};
    EXPECT_EQ_INT(ingest_memory("deep.html", b.data, b.len, NULL, &d, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "deep.html: HTML nested more than");
    /* thousands of unclosed <p> or <li> do not nest: fine */
    b.len = 0;
    for (int i = 0; i < 50000; i++)
        cn_buf_append(&b, "<p>para <li>item ", 17);
    int rc = ingest_memory("flat.html", b.data, b.len, NULL, &d, &err);
    EXPECT_EQ_INT(rc, CN_OK);
    if (rc == CN_OK)
        ingest_doc_free(&d);
    cn_buf_free(&b);
}

/* ---- chunk_split -------------------------------------------------------- */

/* A document from text with \f page breaks. */
static int mkdoc(const char *text, ingest_doc *d)
{
    cn_err err = {0};
    int rc = ingest_memory("doc.txt", text, strlen(text), NULL, d, &err);
    if (rc != CN_OK)
        test_fail_at(__FILE__, __LINE__, "mkdoc: %s", err.msg);
    return rc;
}

/* The passage text is where its offsets say. */
static void check_offsets(const ingest_doc *d, const ingest_passage *p)
{
    const ingest_page *a = &d->pages[p->page_start - 1], *z = &d->pages[p->page_end - 1];
    EXPECT(p->page_start >= 1 && p->page_end >= p->page_start && p->page_end <= d->n_pages);
    EXPECT_EQ_INT(strlen(p->text), p->len);
    if (p->page_start == p->page_end) {
        EXPECT(p->off_end - p->off_start == p->len);
        EXPECT(memcmp(a->text + p->off_start, p->text, p->len) == 0);
    } else {
        size_t head = a->len - p->off_start;
        EXPECT(memcmp(a->text + p->off_start, p->text, head) == 0);
        EXPECT(p->text[head] == '\n');
        EXPECT(memcmp(z->text, p->text + p->len - p->off_end, p->off_end) == 0);
    }
    EXPECT(cn_utf8_valid_prefix(p->text, p->len) == p->len);
}

static char *sentences(int n_para, int per_para, int words)
{
    cn_buf b;
    cn_buf_init(&b, 1 << 24);
    static const char *w[] = {"river",  "stone",  "path",  "cairn", "summit",
                              "valley", "marker", "hiker", "trail", "ridge"};
    int k = 0;
    for (int p = 0; p < n_para; p++) {
        for (int s = 0; s < per_para; s++) {
            cn_buf_printf(&b, "Sentence%d", k);
            for (int i = 1; i < words; i++)
                cn_buf_printf(&b, " %s", w[(k + i) % 10]);
            cn_buf_append(&b, ". ", 2);
            k++;
        }
        cn_buf_append(&b, "\n\n", 2);
    }
    return b.data;
}

TEST(chunk_sizes_overlap_and_offsets)
{
    char *text = sentences(30, 6, 9); /* paragraphs of ~60 estimated tokens */
    ingest_doc d;
    if (mkdoc(text, &d) != CN_OK) {
        free(text);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 64 << 20);
    ingest_passage *p;
    chunk_opts o = {.max_tokens = 100};
    int n = chunk_split(&a, &d, &o, &p, NULL);
    EXPECT(n > 10);
    int at_para = 0;
    for (int i = 0; i < n; i++) {
        int tok = chunk_estimate_tokens(NULL, p[i].text, p[i].len);
        EXPECT(tok <= 100);
        if (i + 1 < n)
            EXPECT(tok >= 50);
        check_offsets(&d, &p[i]);
        /* cut at paragraph ends when one is in the second half */
        const char *after = d.pages[0].text + p[i].off_end;
        at_para += strncmp(after, "\n\n", 2) == 0 || *after == 0;
        if (i > 0) {
            /* overlap: starts before the previous passage ended, at a sentence */
            EXPECT(p[i].off_start < p[i - 1].off_end);
            EXPECT(p[i].off_start > p[i - 1].off_start);
            EXPECT(strncmp(p[i].text, "Sentence", 8) == 0);
            int ov = chunk_estimate_tokens(NULL, p[i].text, p[i - 1].off_end - p[i].off_start);
            EXPECT(ov >= 5 && ov <= 15);
        }
    }
    EXPECT(at_para >= n - 1);
    EXPECT(p[n - 1].off_end == d.pages[0].len);

    /* no overlap: passages tile the text */
    o.overlap_pct = CHUNK_NO_OVERLAP;
    n = chunk_split(&a, &d, &o, &p, NULL);
    for (int i = 1; i < n; i++)
        EXPECT(p[i].off_start >= p[i - 1].off_end);
    cn_arena_free(&a);
    ingest_doc_free(&d);
    free(text);
}

TEST(chunk_cuts_at_sentences_inside_long_paragraphs)
{
    char *text = sentences(1, 80, 11); /* one paragraph of ~1000 tokens */
    ingest_doc d;
    if (mkdoc(text, &d) != CN_OK) {
        free(text);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 64 << 20);
    ingest_passage *p;
    int n = chunk_split(&a, &d, &(chunk_opts){.max_tokens = 64}, &p, NULL);
    EXPECT(n > 10);
    for (int i = 0; i < n; i++) {
        EXPECT(chunk_estimate_tokens(NULL, p[i].text, p[i].len) <= 64);
        EXPECT(p[i].text[p[i].len - 1] == '.');
        check_offsets(&d, &p[i]);
    }
    cn_arena_free(&a);
    ingest_doc_free(&d);
    free(text);
}

TEST(chunk_never_splits_utf8)
{
    /* Greek words, and CJK without spaces: pieces cut at code points */
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    for (int i = 0; i < 300; i++)
        cn_buf_append(&b, "\xCE\xBB\xCF\x8C\xCE\xB3\xCE\xBF\xCF\x82 ", 11); /* λόγος */
    cn_buf_append(&b, "\n\n", 2);
    for (int i = 0; i < 200; i++)
        cn_buf_append(&b, "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x80\x82", 12); /* 日本語。 */
    for (int i = 0; i < 500; i++)
        cn_buf_append(&b, "\xF0\x9F\x98\x80", 4); /* emoji, one long run */
    ingest_doc d;
    if (mkdoc(b.data, &d) != CN_OK) {
        cn_buf_free(&b);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 64 << 20);
    ingest_passage *p;
    for (int max = 3; max <= 48; max += 15) {
        int n = chunk_split(&a, &d, &(chunk_opts){.max_tokens = max}, &p, NULL);
        EXPECT(n > 5);
        for (int i = 0; i < n; i++) {
            check_offsets(&d, &p[i]);
            EXPECT(chunk_estimate_tokens(NULL, p[i].text, p[i].len) <= max);
            unsigned char c = (unsigned char)d.pages[0].text[p[i].off_start];
            EXPECT((c & 0xC0) != 0x80);
        }
    }
    cn_arena_free(&a);
    ingest_doc_free(&d);
    cn_buf_free(&b);
}

TEST(chunk_spans_pages)
{
    /* pages of 12 words: passages of 64 tokens run over page breaks */
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    for (int p = 0; p < 20; p++) {
        cn_buf_printf(&b, "Page%d opens with words and then carries on", p);
        cn_buf_append(&b, " into the next page without stopping\f", 37);
    }
    ingest_doc d;
    if (mkdoc(b.data, &d) != CN_OK) {
        cn_buf_free(&b);
        return;
    }
    EXPECT_EQ_INT(d.n_pages, 20);
    cn_arena a;
    cn_arena_init(&a, 64 << 20);
    ingest_passage *p;
    int n = chunk_split(&a, &d, &(chunk_opts){.max_tokens = 64}, &p, NULL);
    int spans = 0;
    for (int i = 0; i < n; i++) {
        check_offsets(&d, &p[i]);
        spans += p[i].page_end > p[i].page_start;
        if (i)
            EXPECT(p[i].page_start >= p[i - 1].page_start);
    }
    EXPECT(spans >= n / 2);
    EXPECT_EQ_INT(p[0].page_start, 1);
    EXPECT_EQ_INT(p[n - 1].page_end, 20);
    cn_arena_free(&a);
    ingest_doc_free(&d);
    cn_buf_free(&b);
}

TEST(chunk_heading_context)
{
    char *body = sentences(6, 5, 10);
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    cn_buf_printf(&b, "# Field Guide\n\n%s## Second Section\n\n%s", body, body);
    ingest_doc d;
    cn_err err = {0};
    if (ingest_memory("g.md", b.data, b.len, NULL, &d, &err) != CN_OK) {
        EXPECT(0);
        free(body);
        cn_buf_free(&b);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 64 << 20);
    ingest_passage *p;
    int n = chunk_split(&a, &d, &(chunk_opts){.max_tokens = 80}, &p, NULL);
    EXPECT_STR(p[0].heading, "Field Guide");
    EXPECT_STR(p[n - 1].heading, "Second Section");
    long second = find(d.pages[0].text, "Second Section");
    for (int i = 0; i < n; i++)
        EXPECT_STR(p[i].heading, (long)p[i].off_start >= second ? "Second Section" : "Field Guide");
    /* a text without heading-like paragraphs has none */
    ingest_doc d2;
    if (mkdoc("all lower case words. and more of them.", &d2) == CN_OK) {
        EXPECT_EQ_INT(chunk_split(&a, &d2, NULL, &p, NULL), 1);
        EXPECT_STR(p[0].heading, "");
        ingest_doc_free(&d2);
    }
    cn_arena_free(&a);
    ingest_doc_free(&d);
    free(body);
    cn_buf_free(&b);
}

static int count_bytes(void *ctx, const char *s, size_t n)
{
    (*(int *)ctx)++;
    (void)s;
    return (int)n;
}

static int count_fail(void *ctx, const char *s, size_t n)
{
    (void)ctx, (void)s, (void)n;
    return -1;
}

TEST(chunk_options_and_tokenizer_callback)
{
    char *text = sentences(4, 4, 8);
    ingest_doc d;
    if (mkdoc(text, &d) != CN_OK) {
        free(text);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 64 << 20);
    ingest_passage *p;
    int calls = 0;
    chunk_opts o = {.max_tokens = 200, .count_tokens = count_bytes, .ctx = &calls};
    int n = chunk_split(&a, &d, &o, &p, NULL);
    EXPECT(n > 3 && calls > 0);
    for (int i = 0; i < n; i++) {
        /* bytes of the words, without the spaces between them */
        size_t nonspace = 0;
        for (size_t k = 0; k < p[i].len; k++)
            nonspace += p[i].text[k] != ' ' && p[i].text[k] != '\n';
        EXPECT(nonspace <= 200);
    }
    cn_err err = {0};
    o.count_tokens = count_fail;
    EXPECT_EQ_INT(chunk_split(&a, &d, &o, &p, &err), CN_EINVAL);
    EXPECT_CONTAINS(err.msg, "count_tokens");
    EXPECT_EQ_INT(chunk_split(&a, &d, &(chunk_opts){.max_tokens = 513}, &p, &err), CN_EINVAL);
    EXPECT_EQ_INT(chunk_split(&a, &d, &(chunk_opts){.overlap_pct = 51}, &p, &err), CN_EINVAL);
    /* defaults: 256 tokens */
    n = chunk_split(&a, &d, NULL, &p, NULL);
    EXPECT(n >= 1);
    for (int i = 0; i < n; i++)
        EXPECT(chunk_estimate_tokens(NULL, p[i].text, p[i].len) <= 256);
    /* a document without pages */
    ingest_doc empty = {0};
    EXPECT_EQ_INT(chunk_split(&a, &empty, NULL, &p, NULL), 0);
    cn_arena_free(&a);
    ingest_doc_free(&d);
    free(text);
}

TEST(chunk_estimate_tokens_counts)
{
    EXPECT_EQ_INT(chunk_estimate_tokens(NULL, "", 0), 0);
    EXPECT_EQ_INT(chunk_estimate_tokens(NULL, "the cat sat.", 12), 4);
    EXPECT_EQ_INT(chunk_estimate_tokens(NULL, "internationalization", 20), 4);
    EXPECT_EQ_INT(chunk_estimate_tokens(NULL, "caf\xC3\xA9", 5), 1);
    EXPECT_EQ_INT(chunk_estimate_tokens(NULL, "\xE6\x97\xA5\xE6\x9C\xAC", 6), 2);
    EXPECT_EQ_INT(chunk_estimate_tokens(NULL,
                                        "a\xFF"
                                        "b",
                                        3),
                  3);
}

TEST(chunk_one_huge_word)
{
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    for (int i = 0; i < 100000; i++)
        cn_buf_append(&b, "x", 1);
    ingest_doc d;
    if (mkdoc(b.data, &d) != CN_OK) {
        cn_buf_free(&b);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 64 << 20);
    ingest_passage *p;
    int n = chunk_split(&a, &d, NULL, &p, NULL);
    EXPECT(n > 50);
    size_t covered = 0;
    for (int i = 0; i < n; i++) {
        EXPECT(chunk_estimate_tokens(NULL, p[i].text, p[i].len) <= 256 + 8);
        check_offsets(&d, &p[i]);
        covered = p[i].off_end;
    }
    EXPECT_EQ_INT(covered, 100000);
    cn_arena_free(&a);
    ingest_doc_free(&d);
    cn_buf_free(&b);
}

/* ---- dense pages ---------------------------------------------------------- */

/* A one-page PDF around content stream ops (Helvetica as /F1), with a
** correct cross-reference table. */
static void make_pdf(cn_buf *out, const char *ops, size_t ops_len)
{
    size_t off[5];
    cn_buf_append(out, "%PDF-1.4\n", 9);
    off[0] = out->len;
    cn_buf_printf(out, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    off[1] = out->len;
    cn_buf_printf(out, "2 0 obj\n<< /Type /Pages /Kids [4 0 R] /Count 1 >>\nendobj\n");
    off[2] = out->len;
    cn_buf_printf(out, "3 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n");
    off[3] = out->len;
    cn_buf_printf(out, "4 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       "/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>\nendobj\n");
    off[4] = out->len;
    cn_buf_printf(out, "5 0 obj\n<< /Length %zu >>\nstream\n", ops_len);
    cn_buf_append(out, ops, ops_len);
    cn_buf_printf(out, "\nendstream\nendobj\n");
    size_t x = out->len;
    cn_buf_printf(out, "xref\n0 6\n0000000000 65535 f \n");
    for (int i = 0; i < 5; i++)
        cn_buf_printf(out, "%010zu 00000 n \n", off[i]);
    cn_buf_printf(out, "trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", x);
}

TEST(ingest_pdf_dense_page_stays_fast)
{
    /* 20 000 words scattered as separate blocks over one page */
    cn_buf ops, pdf;
    cn_buf_init(&ops, 64 << 20);
    cn_buf_init(&pdf, 64 << 20);
    uint32_t r = 12345;
    for (int i = 0; i < 20000; i++) {
        r = r * 1103515245u + 12345u;
        int x = (int)(r >> 8) % 560, y = (int)(r >> 4) % 760;
        cn_buf_printf(&ops, "BT /F1 4 Tf %d %d Td (w%d) Tj ET\n", 20 + x, 20 + y, i);
    }
    make_pdf(&pdf, ops.data, ops.len);
    ingest_doc d;
    cn_err err = {0};
    double t0 = cn_now();
    int rc = ingest_memory("dense.pdf", pdf.data, pdf.len, NULL, &d, &err);
    double dt = cn_now() - t0;
    EXPECT_EQ_INT(rc, CN_OK);
    EXPECT(dt < 10.0);
    if (rc == CN_OK) {
        EXPECT_CONTAINS(d.pages[0].text, "w19999");
        EXPECT(all_valid_utf8(&d));
        ingest_doc_free(&d);
    }
    fprintf(stderr, "     20000 scattered words on one page: %.2f s\n", dt);
    cn_buf_free(&ops);
    cn_buf_free(&pdf);
}
