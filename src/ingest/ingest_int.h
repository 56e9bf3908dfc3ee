/*
** ingest_int.h: internals shared by the files of src/ingest/. Never include
** this from outside the folder.
*/
#ifndef CN_INGEST_INT_H
#define CN_INGEST_INT_H

#include "ingest/ingest.h"

#include <stdint.h>

/* ingest_opts with every 0 replaced by its default. */
void ingest_opts_resolve(const ingest_opts *in, ingest_opts *out);

/* Append a note to d->notes ("; "-separated, truncated to fit). */
void ingest_note(ingest_doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The file name part of a path (after the last '/'). */
const char *ingest_basename(const char *path);

/* Decode the code point at s[0..n) (n >= 1). Returns its length in bytes and
** stores it in *cp; an invalid or truncated sequence decodes as one byte
** with *cp = -1 (the caller repairs it). */
int ingest_utf8_next(const unsigned char *s, size_t n, int32_t *cp);

/* Append code point cp as UTF-8 (surrogates and values past U+10FFFF become
** U+FFFD). CN_OK or CN_ENOMEM. */
int ingest_put_cp(cn_buf *b, int32_t cp);

/* Is cp a lower-case letter? An upper-case one? (Unicode categories) */
bool ingest_is_lower(int32_t cp);
bool ingest_is_upper(int32_t cp);

/* Turn the raw bytes of a text file into clean UTF-8 in out: a UTF-8 BOM is
** dropped, UTF-16 LE/BE with a BOM converted, invalid UTF-8 replaced by
** U+FFFD (one per maximal invalid sequence), CR LF and CR become LF, NUL and
** other control characters (but tab, LF and form feed) are dropped. Notes go
** into d. */
int ingest_decode_text(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                       cn_buf *out, cn_err *err);

/* Cut clean text into pages: a form feed is a page break, and pages longer
** than page_words words are cut at the last paragraph break (else line
** break, else space) before the limit. Whitespace runs inside a line are
** kept; blank-line runs become one "\n\n"; every page is trimmed; empty
** pages are dropped unless all are empty. The text is copied into
** d->arena. */
int ingest_set_pages(ingest_doc *d, const char *name, const char *text, size_t len, int page_words,
                     cn_err *err);

/* Set d->title to a trimmed, single-line, at most 200-byte copy of s. */
int ingest_set_title(ingest_doc *d, const char *s, size_t n);

/*
** build.c: documents made of paragraphs and headings (every format but PDF
** and plain text) are assembled here into pages, with their headings
** recorded where they fall. A reader calls ib_para / ib_heading in reading
** order and ib_page where the file itself breaks a page (a slide, a Word
** page break); with page_words > 0, a page is also closed at the first
** paragraph end past that many words. Text may be any bytes: it is
** repaired to UTF-8 (U+FFFD), control characters dropped, runs of spaces
** and tabs made one space, each line trimmed and blank lines dropped ("\n"
** in a paragraph is a line break). Errors stick: after the first, calls do
** nothing and ib_finish reports it.
*/
typedef struct ingest_builder {
    ingest_doc *d;
    const char *name;
    int page_words;   /* 0: only ib_page breaks pages */
    int max_pages;
    bool keep_empty;  /* an empty page still counts (slides keep their numbers) */
    bool keep_spaces; /* runs of spaces and tabs inside a line stay (HTML, whose <pre>
                         spacing matters and whose other spaces are already collapsed) */
    cn_buf page;      /* the current page's text */
    cn_buf pages;     /* ingest_page[] done */
    cn_buf heads;     /* ingest_heading[] */
    cn_buf tmp;       /* one cleaned paragraph */
    size_t words;     /* in the current page */
    int rc;           /* first error, CN_OK if none */
    char why[160];
} ingest_builder;

void ib_init(ingest_builder *b, ingest_doc *d, const char *name, int page_words, int max_pages);
void ib_para(ingest_builder *b, const char *s, size_t n);
void ib_heading(ingest_builder *b, int level, const char *s, size_t n);
void ib_page(ingest_builder *b);
/* The paragraph gathered in para (a heading when level > 0), then the notes
** it cited ("[1] ...", gathered in notes, may be NULL); both emptied. */
void ib_flush(ingest_builder *b, int level, cn_buf *para, cn_buf *notes);
/* Append a cell to a table row being built: " | " before all but the first,
** the cell's own line breaks made spaces (a row is one line). */
void ib_cell(cn_buf *row, cn_buf *cell);
/* A table row, cells joined by " | ": empty cells at its end are dropped. */
void ib_row(ingest_builder *b, const char *s, size_t n);
/* Pages and headings into b->d (its arena); frees b's buffers either way. */
int ib_finish(ingest_builder *b, cn_err *err);
void ib_free(ingest_builder *b);

/* HTML (already clean UTF-8, text[len]) into b; the <title> (else first
** <h1>) into title when not NULL. html.c, for .html files and EPUB chapters. */
int ingest_html_build(ingest_builder *b, const char *name, const char *text, size_t len,
                      cn_buf *title, cn_err *err);

/* The format readers. data/len are the whole file; d->arena is ready. */
int ingest_text(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                const ingest_opts *o, cn_err *err);
int ingest_markdown(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                    const ingest_opts *o, cn_err *err);
int ingest_html(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                const ingest_opts *o, cn_err *err);
int ingest_pdf(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err);
int ingest_image(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                 const ingest_opts *o, cn_err *err);
int ingest_epub(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
                const ingest_opts *o, cn_err *err);
/* docx, pptx (office.c), odt, odp (odf.c): kind is the INGEST_KIND_* */
int ingest_office(ingest_doc *d, int kind, const char *name, const unsigned char *data,
                  size_t len, const ingest_opts *o, cn_err *err);
int ingest_odf(ingest_doc *d, int kind, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err);
int ingest_rtf(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err);
int ingest_man(ingest_doc *d, const char *name, const unsigned char *data, size_t len,
               const ingest_opts *o, cn_err *err);

#endif
