/*
** test_ingest_docs.c: real PDFs written by others, from Debian documentation
** packages (tests/fetch_docs.sh DIR downloads them; point $CAIRN_DOCS at
** DIR). Each document must give its page count, pages of valid UTF-8, and
** known sentences on the page where they are printed (checked by hand
** against `pdftotext -f N -l N` when the test was written). Skipped, with
** the missing files named, when $CAIRN_DOCS is unset or lacks a document:
** never passed. A document that is there and fails to ingest is a failure.
*/
#include "ingest/ingest.h"
#include "test.h"

#include <unistd.h>

typedef struct doc_fact {
    const char *file;
    int n_pages;
    struct {
        int page;
        const char *text;
    } said[4];
} doc_fact;

static const doc_fact facts[] = {
    {"why3-manual.pdf",
     184,
     {{12, "The graphical interface makes it possible to browse into a file or a set of files, "
           "and check the validity of goals with external provers, in a friendly way."},
      {20, "Five persons, of five different nationalities, live in five houses in a row, all "
           "painted with different colors."},
      {150, "This generates two goals which are easily provable with hypotheses ac and cb."}}},
    {"siscone-refman.pdf",
     337,
     {{40, "set just the position without resetting the begin and end elements"},
      {100, "final class: gather everything to compute the jet contents."},
      {150, "The following flag indicates that identical protocones are to be merged "
            "automatically each time around the splitmerge loop and before anything else "
            "happens."}}},
    {"camlidl.pdf",
     26,
     {{3, "Integer literals, character literals and string literals have the same syntax as in C."},
      {20, "Under Windows, a bash script called camlidldll is provided to automate the "
           "construction of a DLL containing a COM component written in Caml."},
      {20, "Use regsvr32 /s file.dll to record the components in the system registry once it is "
           "compiled to a DLL."}}},
    {"amc-fr.pdf",
     95,
     {{10, "Les utilitaires AMC ont \xC3\xA9t\xC3\xA9 \xC3\xA9"
           "crits pour Linux."},
      {10, "Ce bug a \xC3\xA9t\xC3\xA9 corrig\xC3\xA9 \xC3\xA0 partir de la version 0.61 de "
           "Net::CUPS."},
      {40, "Cette commande affiche l\xE2\x80\x99"
           "argument dans le corrig\xC3\xA9 et en dehors "
           "de l\xE2\x80\x99"
           "environnement question."}}},
    {"amc-ja.pdf",
     78,
     /* 設問ごとの選択肢数は 199 個までに限定されています（このデフォルト値は変更できません）。 */
     {{10, "\xE8\xA8\xAD\xE5\x95\x8F\xE3\x81\x94\xE3\x81\xA8\xE3\x81\xAE\xE9\x81\xB8\xE6\x8A\x9E"
           "\xE8\x82\xA2\xE6\x95\xB0\xE3\x81\xAF 199 \xE5\x80\x8B\xE3\x81\xBE\xE3\x81\xA7\xE3\x81"
           "\xAB\xE9\x99\x90\xE5\xAE\x9A\xE3\x81\x95\xE3\x82\x8C\xE3\x81\xA6\xE3\x81\x84\xE3\x81"
           "\xBE\xE3\x81\x99\xEF\xBC\x88\xE3\x81\x93\xE3\x81\xAE\xE3\x83\x87\xE3\x83\x95\xE3\x82"
           "\xA9\xE3\x83\xAB\xE3\x83\x88\xE5\x80\xA4\xE3\x81\xAF\xE5\xA4\x89\xE6\x9B\xB4\xE3\x81"
           "\xA7\xE3\x81\x8D\xE3\x81\xBE\xE3\x81\x9B\xE3\x82\x93\xEF\xBC\x89\xE3\x80\x82"},
      /* アコンカグアはアンデス山脈にあり、モンブランはアルプスにあります。 */
      {30, "\xE3\x82\xA2\xE3\x82\xB3\xE3\x83\xB3\xE3\x82\xAB\xE3\x82\xB0\xE3\x82\xA2\xE3\x81\xAF"
           "\xE3\x82\xA2\xE3\x83\xB3\xE3\x83\x87\xE3\x82\xB9\xE5\xB1\xB1\xE8\x84\x88\xE3\x81\xAB"
           "\xE3\x81\x82\xE3\x82\x8A\xE3\x80\x81\xE3\x83\xA2\xE3\x83\xB3\xE3\x83\x96\xE3\x83\xA9"
           "\xE3\x83\xB3\xE3\x81\xAF\xE3\x82\xA2\xE3\x83\xAB\xE3\x83\x97\xE3\x82\xB9\xE3\x81\xAB"
           "\xE3\x81\x82\xE3\x82\x8A\xE3\x81\xBE\xE3\x81\x99\xE3\x80\x82"},
      /* 5.4.5 選択肢を複数カラムに配置 */
      {30, "5.4.5 \xE9\x81\xB8\xE6\x8A\x9E\xE8\x82\xA2\xE3\x82\x92\xE8\xA4\x87\xE6\x95\xB0\xE3\x82"
           "\xAB\xE3\x83\xA9\xE3\x83\xA0\xE3\x81\xAB\xE9\x85\x8D\xE7\xBD\xAE"}}},
    {"octave-refcard.pdf",
     3,
     {{1, "Specify a range of values beginning with base with no elements greater than limit."},
      {1, "If beg is greater than end, reverse the list of commands before editing."},
      {2, "These operators work on an element-by-element basis. Both arguments are always "
          "evaluated."},
      {3, "Three files are preconnected when Octave starts: stdin, stdout, and stderr."}}},
};

static const char *docs_dir(void)
{
    const char *d = getenv("CAIRN_DOCS");
    return d && *d && access(d, F_OK) == 0 ? d : NULL;
}

#define NO_DOCS_DIR "the Debian PDFs: CAIRN_DOCS is unset or absent (bash tests/fetch_docs.sh build/docs)"


/* Names of the documents a test wanted and did not find, for its skip. */
typedef struct missing {
    char names[512];
} missing;

/* Ingest CAIRN_DOCS/file into d. Returns true when it did; false when the
** file is absent (noted in *m) or when ingesting failed (a test failure). */
static bool open_doc(const char *file, ingest_doc *d, missing *m)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", docs_dir(), file);
    if (access(path, F_OK) != 0) {
        size_t n = strlen(m->names);
        snprintf(m->names + n, sizeof m->names - n, "%s%s", n ? ", " : "", file);
        return false;
    }
    cn_err err = {0};
    int rc = ingest_file(path, d, &err);
    if (rc != CN_OK)
        test_fail_at(__FILE__, __LINE__, "%s: ingest failed (%d): %s", path, rc, err.msg);
    return rc == CN_OK;
}

/* Skip naming the absent documents, if any (a failure still wins). */
static void skip_if_missing(const missing *m)
{
    if (!m->names[0])
        return;
    char why[700];
    snprintf(why, sizeof why, "not in CAIRN_DOCS=%s: %s", docs_dir(), m->names);
    test_skip(why);
}

TEST(ingest_docs_known_sentences_on_known_pages)
{
    const char *dir = docs_dir();
    if (!dir)
        SKIP(NO_DOCS_DIR);
    int pages = 0;
    double secs = 0;
    missing m = {{0}};
    for (size_t i = 0; i < CN_ARRAY_LEN(facts); i++) {
        const doc_fact *f = &facts[i];
        ingest_doc d;
        double t0 = cn_now();
        if (!open_doc(f->file, &d, &m))
            continue;
        double dt = cn_now() - t0;
        secs += dt;
        pages += d.n_pages;
        fprintf(stderr, "     %-20s %4d pages  %6.0f pages/s  %s\n", f->file, d.n_pages,
                d.n_pages / dt, d.notes);
        EXPECT_EQ_INT(d.n_pages, f->n_pages);
        for (int p = 0; p < d.n_pages; p++)
            EXPECT_EQ_INT(cn_utf8_valid_prefix(d.pages[p].text, d.pages[p].len), d.pages[p].len);
        for (size_t k = 0; k < CN_ARRAY_LEN(f->said) && f->said[k].text; k++) {
            int pg = f->said[k].page;
            if (pg > d.n_pages) {
                EXPECT(pg <= d.n_pages);
                continue;
            }
            if (!strstr(d.pages[pg - 1].text, f->said[k].text))
                test_fail_at(__FILE__, __LINE__, "%s p. %d lacks \"%s\"", f->file, pg,
                             f->said[k].text);
        }
        ingest_doc_free(&d);
    }
    if (pages)
        fprintf(stderr, "     all: %d pages in %.2f s: %.0f pages/s\n", pages, secs,
                pages / secs);
    skip_if_missing(&m);
}

TEST(ingest_docs_layout)
{
    const char *dir = docs_dir();
    if (!dir)
        SKIP(NO_DOCS_DIR);
    ingest_doc d;
    missing m = {{0}};
    /* the Sphinx manual: running headers and footers are gone */
    if (open_doc("why3-manual.pdf", &d, &m)) {
        EXPECT_STR(d.title, "Why3 Documentation");
        for (int p = 0; p < d.n_pages; p++) {
            EXPECT(!strstr(d.pages[p].text, "Why3 Documentation, Release 1.5.1"));
            EXPECT(!strstr(d.pages[p].text, "Chapter 2. Getting Started"));
        }
        ingest_doc_free(&d);
    }
    /* the three-column card: columns read one after the other, each top to
    ** bottom, and a command beside its description */
    if (open_doc("octave-refcard.pdf", &d, &m)) {
        const char *t = d.pages[0].text;
        const char *a = strstr(t, "Starting Octave"), *b = strstr(t, "Stopping Octave");
        const char *c = strstr(t, "Killing and Yanking"), *e = strstr(t, "Sparse Matrices");
        EXPECT(a && b && c && e && a < b && b < c && c < e);
        EXPECT_CONTAINS(t, "octave --eval code Evaluate code using Octave");
        ingest_doc_free(&d);
    }
    /* French and Japanese: paragraphs, and CJK lines joined without spaces */
    if (open_doc("amc-fr.pdf", &d, &m)) {
        EXPECT_STR(d.title, "Auto Multiple Choice");
        EXPECT(d.n_pages >= 10);
        if (d.n_pages >= 10)
            EXPECT_CONTAINS(d.pages[9].text, "2.1 Syst\xC3\xA8me d\xE2\x80\x99"
                                             "exploitation\n\n");
        ingest_doc_free(&d);
    }
    skip_if_missing(&m);
}

TEST(ingest_docs_passages)
{
    const char *dir = docs_dir();
    if (!dir)
        SKIP(NO_DOCS_DIR);
    ingest_doc d;
    missing m = {{0}};
    if (!open_doc("why3-manual.pdf", &d, &m)) {
        skip_if_missing(&m);
        return;
    }
    cn_arena a;
    cn_arena_init(&a, 256 << 20);
    ingest_passage *p;
    double t0 = cn_now();
    int n = chunk_split(&a, &d, NULL, &p, NULL);
    double dt = cn_now() - t0;
    EXPECT(n > 300);
    int with_heading = 0;
    for (int i = 0; i < n; i++) {
        EXPECT(chunk_estimate_tokens(NULL, p[i].text, p[i].len) <= 256);
        EXPECT(cn_utf8_valid_prefix(p[i].text, p[i].len) == p[i].len);
        with_heading += p[i].heading[0] != 0;
        if (strstr(p[i].text, "Five persons, of five different nationalities"))
            EXPECT_EQ_INT(p[i].page_start <= 20 && p[i].page_end >= 20, 1);
    }
    EXPECT(with_heading > n * 3 / 4);
    fprintf(stderr, "     why3 manual: %d passages in %.3f s\n", n, dt);
    cn_arena_free(&a);
    ingest_doc_free(&d);
}

/* ---- the other formats (issue 14): real files from Debian packages ---------- */

#include "docgen.h"

static const struct {
    const char *file, *kind;
    int n_pages;
    int page;            /* where text is */
    const char *text;    /* verbatim on that page */
    const char *at;      /* a phrase whose heading path is locator */
    const char *locator;
} format_facts[] = {
    {"officer-example.docx", "docx", 1, 1, "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
     "Quisque tristique", "Title 2"},
    {"officer-example.pptx", "pptx", 3, 2, "This is an ordered", NULL, NULL},
    {"officer-example.pptx", "pptx", 3, 1, "A | 12.23 | blah blah", NULL, NULL},
    {"officer-table.docx", "docx", 1, 1, "Column head | column head | column head", NULL, NULL},
    {"relatorio-complicated.odt", "odt", 1, 1,
     "This is the last reminder before we swarm you with our mighty lawyers.", NULL, NULL},
    {"relatorio-presentation.odp", "odp", 1, 1, "Example Sheet for Customer", NULL, NULL},
    {"live-manual-en.epub", "epub", 49, 26,
     "we are adding the label persistence so that the device is mounted as persistence store at "
     "boot time.",
     "label persistence", "10. Customizing run time behaviours"},
    {"live-manual-fr.epub", "epub", 49, 26,
     "nous avons besoin de monter le dispositif, par exemple dans /mnt.", "monter le dispositif",
     "10. Personnalisation des comportements pendant l'" "ex\xC3\xA9" "cution"},
    {"ls.1.gz", "man", 1, 1, "ls - list directory contents", "list directory contents", "NAME"},
    {"ls.1.gz", "man", 1, 1, "do not ignore entries starting with .", "do not ignore entries",
     "DESCRIPTION"},
};

TEST(ingest_docs_formats_known_text_at_known_locators)
{
    const char *dir = docs_dir();
    if (!dir)
        SKIP(NO_DOCS_DIR);
    missing m = {{0}};
    for (size_t i = 0; i < CN_ARRAY_LEN(format_facts); i++) {
        const __typeof__(format_facts[0]) *f = &format_facts[i];
        ingest_doc d;
        if (!open_doc(f->file, &d, &m))
            continue;
        EXPECT_STR(d.kind, f->kind);
        EXPECT_EQ_INT(d.n_pages, f->n_pages);
        if (f->page <= d.n_pages && !strstr(d.pages[f->page - 1].text, f->text))
            test_fail_at(__FILE__, __LINE__, "%s p. %d lacks \"%s\"", f->file, f->page, f->text);
        if (f->at) {
            cn_arena a;
            cn_arena_init(&a, (size_t)64 << 20);
            const char *loc = docgen_locator_of(&d, f->at, &a);
            if (strcmp(loc, f->locator) != 0)
                test_fail_at(__FILE__, __LINE__, "%s: \"%s\" is cited at \"%s\", not \"%s\"",
                             f->file, f->at, loc, f->locator);
            cn_arena_free(&a);
        }
        ingest_doc_free(&d);
    }
    skip_if_missing(&m);
}
