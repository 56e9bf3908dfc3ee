/*
** scanpdf.h: "scans" made from real PDFs, for the OCR tests and
** tools/ocrbench: pages rendered in grey by MuPDF (ingest_render), given
** noise if asked, and written back as an image-only PDF -- or the first one
** as a PNG. Header-only.
*/
#ifndef CN_TEST_SCANPDF_H
#define CN_TEST_SCANPDF_H

#include "ingest/ingest.h"

#include <mupdf/fitz.h>
#include <mupdf/pdf.h>
#include <stdio.h>

/* Grey-level noise: the sum of three uniforms in [-spread, spread], /3. */
static inline int scan_noise(unsigned *rng, int spread)
{
    int s = 0;
    for (int i = 0; i < 3; i++) {
        *rng = *rng * 1103515245u + 12345u;
        s += (int)((*rng >> 16) % (unsigned)(2 * spread + 1)) - spread;
    }
    return s / 3;
}

/* Pages (1-based) of src rendered at dpi with noise of spread grey levels
** (0: none) into out: an image-only PDF, or a PNG of the first page. */
static inline bool scan_write(const char *src, const int *pages, int n, int dpi, int spread,
                              const char *out, bool png)
{
    fz_context *ctx = fz_new_context(NULL, NULL, FZ_STORE_DEFAULT);
    pdf_document *volatile doc = NULL;
    volatile bool ok = true;
    unsigned rng = 12345;
    fz_try(ctx)
    {
        doc = pdf_create_document(ctx);
        for (int i = 0; i < n; i++) {
            ingest_pixmap px;
            cn_err err = {0};
            if (ingest_render(src, pages[i], dpi, &px, &err) != CN_OK)
                fz_throw(ctx, FZ_ERROR_GENERIC, "%s", err.msg);
            for (int y = 0; spread > 0 && y < px.h; y++)
                for (int x = 0; x < px.w; x++) {
                    unsigned char *g = &px.grey[(size_t)y * px.stride + x];
                    int v = *g + scan_noise(&rng, spread);
                    *g = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            fz_pixmap *pix = fz_new_pixmap_with_data(ctx, fz_device_gray(ctx), px.w, px.h, NULL, 0,
                                                     px.stride, px.grey);
            if (png) {
                fz_save_pixmap_as_png(ctx, pix, out);
                fz_drop_pixmap(ctx, pix);
                ingest_pixmap_free(&px);
                break;
            }
            fz_image *img = fz_new_image_from_pixmap(ctx, pix, NULL);
            float w = px.w * 72.0f / px.dpi, h = px.h * 72.0f / px.dpi;
            pdf_obj *res = pdf_new_dict(ctx, doc, 1);
            pdf_obj *xo = pdf_dict_put_dict(ctx, res, PDF_NAME(XObject), 1);
            pdf_dict_puts_drop(ctx, xo, "Im0", pdf_add_image(ctx, doc, img));
            fz_buffer *cs = fz_new_buffer(ctx, 64);
            fz_append_printf(ctx, cs, "q %g 0 0 %g 0 0 cm /Im0 Do Q", w, h);
            pdf_obj *page = pdf_add_page(ctx, doc, fz_make_rect(0, 0, w, h), 0, res, cs);
            pdf_insert_page(ctx, doc, -1, page);
            pdf_drop_obj(ctx, page);
            pdf_drop_obj(ctx, res);
            fz_drop_buffer(ctx, cs);
            fz_drop_image(ctx, img);
            fz_drop_pixmap(ctx, pix);
            ingest_pixmap_free(&px);
        }
        if (!png)
            pdf_save_document(ctx, doc, out, NULL);
    }
    fz_always(ctx)
    {
        pdf_drop_document(ctx, doc);
    }
    fz_catch(ctx)
    {
        fprintf(stderr, "scan_write: %s\n", fz_caught_message(ctx));
        ok = false;
    }
    fz_drop_context(ctx);
    return ok;
}

#endif
