/*
** ingest: files to pages of text, and pages to passages. The module is pure:
** it reads files and returns memory; writing pages and passages to the store
** is the caller's job, so extraction can be tested and fuzzed alone.
**
** Start reading at ingest.c (size limits, content sniffing, dispatch); then
** pdf.c (MuPDF: PDF and EPUB), text.c (plain text and Markdown), html.c
** (gumbo), zip.c (ZIP archives and XML through MuPDF, for the office
** formats), office.c (Word, PowerPoint), odf.c (OpenDocument), rtf.c, man.c
** (roff man pages), build.c (paragraphs and headings to pages) and chunk.c
** (passages).
*/
#ifndef CN_INGEST_H
#define CN_INGEST_H

#include "base/base.h"

/* One page of extracted text. For PDFs a page is a page of the file. Text,
** Markdown and HTML files have no pages of their own: a form feed (\f) is
** taken as a page break, and otherwise the text is cut into pages of about
** INGEST_TEXT_PAGE_WORDS words at paragraph boundaries, so that a citation
** "p. 7" narrows a long text file down to a few screens. */
typedef struct ingest_page {
    int number; /* 1-based */
    char *text; /* valid UTF-8, NUL-terminated; paragraphs separated by "\n\n" */
    size_t len; /* bytes, without the NUL */
} ingest_page;

/* A heading the file marks as one (a Word "Heading 2" paragraph, an ODF
** <text:h>, a man page's .SH, an EPUB chapter): the start of its paragraph
** in the page's text, and its level (1 = top). Formats without such marks
** (PDF, plain text) have none; chunk.c then guesses from the text. */
typedef struct ingest_heading {
    int page;    /* 1-based */
    size_t off;  /* byte offset in that page's text */
    int level;   /* 1..INGEST_MAX_LEVEL */
    const char *text;
} ingest_heading;

#define INGEST_MAX_LEVEL 9

typedef struct ingest_doc {
    const char *kind; /* "pdf", "text", "markdown", "html", "docx", "odt", "pptx", "odp",
                         "epub", "rtf", "man", "image" (static strings) */
    char *title;      /* PDF metadata title, first Markdown heading, <title>, else file name */
    int n_pages;
    ingest_page *pages;
    int n_headings;   /* in text order */
    ingest_heading *headings;
    bool paged;       /* pages are the file's own (PDF pages, slides, recorded page breaks),
                         not cut by ingest to a length */
    int n_scanned;    /* pages without a usable text layer (scans, images, unmapped
                         glyphs): their text is empty until OCR reads them */
    int *scanned;     /* their page numbers, ascending */
    char notes[256]; /* non-fatal notes, "; "-separated, "" if none */
    cn_arena arena;  /* owns title, pages and their text */
} ingest_doc;

/* What a file is, as decided by ingest_kind_of(). */
enum {
    INGEST_KIND_PDF = 1,
    INGEST_KIND_TEXT = 2,
    INGEST_KIND_MARKDOWN = 3,
    INGEST_KIND_HTML = 4,
    INGEST_KIND_DOCX = 5,
    INGEST_KIND_ODT = 6,
    INGEST_KIND_PPTX = 7,
    INGEST_KIND_ODP = 8,
    INGEST_KIND_EPUB = 9,
    INGEST_KIND_RTF = 10,
    INGEST_KIND_MAN = 11,
    INGEST_KIND_IMAGE = 12, /* PNG, JPEG, TIFF (one page per frame), GIF, BMP: OCR only */
};

/* Default limits. A text file (plain, Markdown or HTML) above
** INGEST_MAX_TEXT_MB is refused: 32 MB of text is about five million words
** (some fifty books) in one "document"; beyond that a file is almost surely
** a log, a dump or a data export, it would hold three times its size in
** memory while ingesting and make some 30 000 passages (an hour of
** embedding on a laptop). The message names the limit; ingest_file_opts()
** raises it. */
#define INGEST_MAX_TEXT_MB 32
#define INGEST_MAX_PDF_MB 512
#define INGEST_MAX_PAGES 20000
#define INGEST_MAX_TEXT_TOTAL_MB 256 /* extracted text of one document, all pages */
#define INGEST_TEXT_PAGE_WORDS 3000
/* ZIP-based files (Word, OpenDocument, EPUB): the file itself, what its
** entries expand to in all (a "ZIP bomb" expands a few KB to gigabytes), and
** how many entries it may list. */
#define INGEST_MAX_ZIP_MB 256
#define INGEST_MAX_UNZIPPED_MB 512
#define INGEST_MAX_ZIP_ENTRIES 20000

typedef struct ingest_opts {
    size_t max_text_bytes;  /* text/markdown/html file size limit; 0: INGEST_MAX_TEXT_MB */
    size_t max_pdf_bytes;   /* PDF file size limit; 0: INGEST_MAX_PDF_MB */
    int max_pages;          /* PDF page count limit; 0: INGEST_MAX_PAGES */
    size_t max_mupdf_bytes; /* memory MuPDF may hold for one PDF; 0: 1 GiB */
    int text_page_words;    /* text formats: words per page; 0: INGEST_TEXT_PAGE_WORDS */
    size_t max_zip_bytes;      /* .docx/.odt/.pptx/.odp/.epub file size; 0: INGEST_MAX_ZIP_MB */
    size_t max_unzipped_bytes; /* what a ZIP's entries may expand to; 0: INGEST_MAX_UNZIPPED_MB */
    int max_zip_entries;       /* 0: INGEST_MAX_ZIP_ENTRIES */
} ingest_opts;

/*
** Read the file at path and extract its text into out (which the caller
** then releases with ingest_doc_free, on success only). Returns 0 or a
** CN_E* code with a message that names the file:
**   "x: not a regular file (a directory)"                 CN_EINVAL
**   "x: cannot read: Permission denied"                    CN_EIO
**   "x: empty file"                                        CN_EFORMAT
**   "x.txt: larger than 32 MB (limit for text files)"      CN_ELIMIT
**   "x.bin: unsupported file type (.bin, binary data)"     CN_EUNSUPPORTED
**   "x.pdf: not a PDF (the content is HTML)"               CN_EFORMAT
**   "x.pdf: password protected"                            CN_EUNSUPPORTED
**   "x.pdf: no extractable text (scanned? OCR is not available yet)"  CN_EFORMAT
**   "x.docx: expands to more than 512 MB (the limit for ZIP contents)" CN_ELIMIT
**   "x.docx: not a Word document (a ZIP archive without word/document.xml)" CN_EFORMAT
**   "x.pdf: damaged PDF: <MuPDF's reason>"                 CN_EFORMAT
** Each PDF gets its own fz_context, so calls on different threads share
** no MuPDF state.
*/
int ingest_file(const char *path, ingest_doc *out, cn_err *err);
int ingest_file_opts(const char *path, const ingest_opts *o, ingest_doc *out, cn_err *err);

/* The same from memory: name is used for messages, the extension and the
** fallback title. data need not be NUL-terminated; it is not kept. */
int ingest_memory(const char *name, const void *data, size_t len, const ingest_opts *o,
                  ingest_doc *out, cn_err *err);

void ingest_doc_free(ingest_doc *d);

/*
** Decide what a file is from its first n bytes (head; 4096 are enough) and
** its name. Returns an INGEST_KIND_* or a negative code: CN_EFORMAT when the
** name promises a PDF and the content is not one (never guessed at),
** CN_EUNSUPPORTED for a type Cairn does not read. Content decides for PDF
** (%PDF- in the first 1024 bytes) and for binary data; the extension decides
** between text, Markdown and HTML; a name without an extension is read as
** text, or HTML when it starts like HTML.
*/
int ingest_kind_of(const char *path, const unsigned char *head, size_t n);

/* Is path named like a file Cairn reads (.pdf, .docx, .epub, .1, .8.gz ...)?
** What a folder walk picks up; content still decides what a file is. */
bool ingest_known_name(const char *path);

/* A short description of what head looks like ("HTML", "a ZIP archive",
** "binary data", ...), for messages. Static string. */
const char *ingest_describe(const unsigned char *head, size_t n);

/* ---- page images, for OCR ---------------------------------------------- */

/* A page rendered in 8-bit grey, rows of stride bytes. */
typedef struct ingest_pixmap {
    unsigned char *grey; /* malloc'd */
    int w, h, stride, dpi;
} ingest_pixmap;

/* Pixels a rendered page may have: beyond it (a poster, a 300-dpi scan of
** a drawing), the resolution is lowered to fit and *dpi says so. */
#define INGEST_MAX_RENDER_PIXELS (120 * 1000 * 1000)

/*
** Render page (1-based) of the PDF or image file at path at dpi (300 for
** OCR) in grey, through MuPDF. The file is sniffed as ingest_file does;
** errors name the file and page: "x.pdf: page 9: no such page (3 pages)",
** "x.tif: page 2: damaged image: ...".
*/
int ingest_render(const char *path, int page, int dpi, ingest_pixmap *out, cn_err *err);
/* The same from the file's bytes in memory (path names it in messages). */
int ingest_render_memory(const char *path, const void *data, size_t len, int page, int dpi,
                         ingest_pixmap *out, cn_err *err);
void ingest_pixmap_free(ingest_pixmap *p);

/* ---- passages --------------------------------------------------------- */

#define CHUNK_MAX_TOKENS 512
#define CHUNK_DEFAULT_TOKENS 256
#define CHUNK_DEFAULT_OVERLAP 15
#define CHUNK_NO_OVERLAP (-1)

typedef struct chunk_opts {
    int max_tokens;  /* 0: 256; at most 512 */
    int overlap_pct; /* 0: 15; CHUNK_NO_OVERLAP for none; at most 50 */
    /* Tokens of s[0..n) (one word, or a piece of a long unspaced run).
    ** NULL: chunk_estimate_tokens. */
    int (*count_tokens)(void *ctx, const char *s, size_t n);
    void *ctx;
} chunk_opts;

typedef struct ingest_passage {
    int page_start, page_end; /* 1-based */
    size_t off_start;         /* byte offset of the first byte in page_start's text */
    size_t off_end;           /* byte offset just past the last byte in page_end's text */
    const char *text;         /* the passage, NUL-terminated; pages joined by "\n" */
    size_t len;
    const char *heading; /* the last heading-like paragraph at or before the start, "" if none */
    const char *locator; /* where the passage is, by the file's own headings: lines
                            "OFFSET\tPATH", the heading path ("3 Installing › 3.2 Disk
                            space") in effect from byte OFFSET of the text on; the
                            first line's OFFSET is 0 when a heading precedes the
                            passage. "" when the file marks none. ingest_locator_at
                            reads it. */
} ingest_passage;

/*
** Split the document into passages of at most o->max_tokens tokens (a
** single word longer than that is cut at a code point), each starting with
** about o->overlap_pct % of the previous one's tokens. A passage ends at a
** paragraph boundary if one lies in its second half, else at a sentence
** boundary there, else between words; it never ends inside a UTF-8
** sequence, and may span a page break. o may be NULL (defaults). Memory
** comes from arena a. Returns the number of passages (0 for a document
** without text) or a CN_E* code.
*/
int chunk_split(cn_arena *a, const ingest_doc *d, const chunk_opts *o, ingest_passage **out,
                cn_err *err);

/* The heading path in effect at byte off of a passage whose locator is loc
** (see ingest_passage), into out; with off < 0, the one a citation of the
** whole passage names: the path at its start, or the first heading that
** starts in its first quarter (len: the passage's length). "" if none. */
void ingest_locator_at(const char *loc, long off, size_t len, char *out, size_t cap);

/* The fixed estimate used without a tokenizer: per word, one token per 6
** bytes of letters and digits (at least one) plus one per punctuation mark
** or symbol, and one per CJK character. Close to WordPiece counts on English
** prose and a little above them elsewhere, so passages stay within a model's
** limit. */
int chunk_estimate_tokens(void *ctx, const char *s, size_t n);

#endif
