/*
** zip.h: internals of src/ingest/ shared by the readers of ZIP-based
** formats (office.c, odf.c) and of MuPDF (pdf.c): a MuPDF context whose
** memory is counted and capped, and ZIP entries read within the limits of
** ingest_opts. Never include this from outside the folder.
**
** Every function here catches MuPDF's exceptions itself; none throws.
*/
#ifndef CN_INGEST_ZIP_H
#define CN_INGEST_ZIP_H

#include "ingest/ingest_int.h"

#include <mupdf/fitz.h>

typedef struct ingest_mu_mem {
    size_t used, max;
    fz_alloc_context alloc;
} ingest_mu_mem;

/* A new MuPDF context that may hold at most max bytes; m must outlive it. */
fz_context *ingest_mu_new(ingest_mu_mem *m, size_t max);

typedef struct zip_reader {
    fz_context *ctx;
    ingest_mu_mem mem;
    fz_archive *arch;
    const char *name;
    const ingest_opts *o;
    int n_entries;
    size_t unzipped; /* bytes expanded so far, against o->max_unzipped_bytes */
    cn_buf docs;     /* fz_xml * parsed, dropped by zip_close */
    char why[160];
} zip_reader;

/* Open the archive in data (kept, not copied) with its own MuPDF context.
** Fails on a damaged directory or more than o->max_zip_entries entries. */
int zip_open(zip_reader *z, const char *name, const unsigned char *data, size_t len,
             const ingest_opts *o, cn_err *err);
void zip_close(zip_reader *z);

bool zip_has(zip_reader *z, const char *entry);

/* Read a whole entry into out (emptied first), counting it against the
** archive's unzipped budget: CN_ELIMIT names the limit. */
int zip_read(zip_reader *z, const char *entry, cn_buf *out, cn_err *err);

/* Read and parse an entry; *root is its root element, valid until
** zip_close. */
int zip_xml(zip_reader *z, const char *entry, fz_xml **root, cn_err *err);

/* Parsed parts pile up until zip_close; a reader going part by part (slides)
** drops those parsed since a mark: zip_release(z, zip_mark(z)) after each. */
size_t zip_mark(zip_reader *z);
void zip_release(zip_reader *z, size_t mark);

/* Pre-order walk without recursion: the node after x within top's subtree
** (into x's children when descend), or NULL when the subtree is done. */
fz_xml *zip_xml_next(fz_xml *x, fz_xml *top, bool descend);

bool zip_is(fz_xml *x, const char *tag);         /* element with this local name */
fz_xml *zip_child(fz_xml *x, const char *tag);   /* first child element so named */
void zip_text(fz_xml *x, cn_buf *out);           /* all text below x, appended */

/* target relative to the part base ("word/document.xml" + "media/a.png" =
** "word/media/a.png"; "/x" is from the root; ".." folded). */
int zip_resolve(const char *base, const char *target, char *out, size_t cap);

#endif
