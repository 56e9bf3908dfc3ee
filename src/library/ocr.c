/*
** ocr.c: the OCR phase of the library (lib_ocr in library.h).
**
** Pages come from the store's queue a batch at a time (as many as threads);
** each page is rendered at 300 dpi in grey by MuPDF and read by its own
** tesseract engine on its own thread, then written by this thread: the page
** text (lines of a paragraph joined, "infor-" + "mation" mended), its
** passages, the confidence. Two cores read two pages at once; tesseract
** itself runs single-threaded here.
*/
#include "library/lib_int.h"
#include "ingest/ingest.h"
#include "ocr/ocr.h"

#include <sodium.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OCR_DPI 300
#define OCR_MAX_THREADS 16

typedef struct job {
    const lib *l;
    const store_ocr_page *pg;
    ocr_engine *eng;
    char *text; /* malloc'd, cleaned */
    float conf;
    int rc;
    cn_err err;
} job;

/* Tesseract's text: paragraphs separated by blank lines, lines by "\n".
** Lines of a paragraph are joined with a space, a hyphen at a line's end
** before a lower-case letter dropped; form feeds go. */
static char *clean_text(const char *t)
{
    size_t n = strlen(t);
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '\f' || c == '\r')
            continue;
        if (c == '\n') {
            size_t j = i + 1;
            while (j < n && (t[j] == ' ' || t[j] == '\r'))
                j++;
            if (j < n && t[j] == '\n') { /* a paragraph break */
                while (j < n && (t[j] == '\n' || t[j] == ' ' || t[j] == '\r' || t[j] == '\f'))
                    j++;
                if (k) {
                    o[k++] = '\n';
                    o[k++] = '\n';
                }
                i = j - 1;
                continue;
            }
            int32_t nc = j < n ? (unsigned char)t[j] : 0;
            if (k >= 2 && o[k - 1] == '-' && o[k - 2] != ' ' && nc >= 'a' && nc <= 'z')
                k--; /* "infor-" + "mation" */
            else if (k && o[k - 1] != ' ')
                o[k++] = ' ';
            i = j - 1;
            continue;
        }
        o[k++] = c;
    }
    while (k && (o[k - 1] == '\n' || o[k - 1] == ' '))
        k--;
    o[k] = 0;
    size_t v = cn_utf8_valid_prefix(o, k); /* tesseract writes UTF-8; be sure */
    o[v] = 0;
    return o;
}

static void *run_job(void *arg)
{
    job *j = arg;
    ingest_pixmap px;
    if (j->l->dk && lib_is_upload_copy(j->l, j->pg->path)) {
        /* a sealed copy of an encrypted library: unsealed in memory only */
        char *data;
        size_t len;
        j->rc = lib_read_upload(j->l, j->pg->path, (size_t)INGEST_MAX_PDF_MB << 20, &data, &len,
                                &j->err);
        if (j->rc == CN_OK) {
            j->rc = ingest_render_memory(j->pg->path, data, len, j->pg->number, OCR_DPI, &px,
                                         &j->err);
            sodium_memzero(data, len);
            free(data);
        }
    } else
        j->rc = ingest_render(j->pg->path, j->pg->number, OCR_DPI, &px, &j->err);
    if (j->rc != CN_OK)
        return NULL;
    char *raw = NULL;
    j->rc = ocr_recognize(j->eng, px.grey, px.w, px.h, px.stride, px.dpi, &raw, &j->conf, &j->err);
    ingest_pixmap_free(&px);
    if (j->rc == CN_OK) {
        j->text = clean_text(raw);
        if (!j->text)
            j->rc = cn_fail(&j->err, CN_ENOMEM, "OCR: out of memory");
    }
    free(raw);
    return NULL;
}

/* Is the file still the one that was added? */
static const char *file_changed(const store_ocr_page *pg)
{
    struct stat s;
    if (stat(pg->path, &s) != 0)
        return "the file is gone since it was added";
    int64_t mt = (int64_t)s.st_mtim.tv_sec * 1000000000 + s.st_mtim.tv_nsec;
    if ((int64_t)s.st_size != pg->size || mt != pg->mtime_ns)
        return "the file changed since it was added (`cairn add` reads it again)";
    return NULL;
}

/* Cut one OCR'd page into passages and store them with it. */
static int store_page(lib *l, const store_ocr_page *pg, const job *j, cn_err *err)
{
    ingest_page page = {.number = 1, .text = j->text, .len = strlen(j->text)};
    ingest_doc d = {.kind = "ocr", .title = "", .n_pages = 1, .pages = &page};
    cn_arena a;
    cn_arena_init(&a, (size_t)64 << 20);
    ingest_passage *ps = NULL;
    int n = page.len ? chunk_split(&a, &d, NULL, &ps, err) : 0;
    store_passage_in *pin = n > 0 ? cn_calloc((size_t)n, sizeof *pin) : NULL;
    int rc = n < 0 ? n : (n > 0 && !pin) ? cn_fail(err, CN_ENOMEM, "out of memory") : CN_OK;
    for (int i = 0; rc == CN_OK && i < n; i++)
        pin[i] = (store_passage_in){.page_start = pg->number,
                                    .page_end = pg->number,
                                    .off_start = ps[i].off_start,
                                    .off_end = ps[i].off_end,
                                    .text = ps[i].text,
                                    .len = ps[i].len,
                                    .heading = ps[i].heading};
    if (rc == CN_OK)
        rc = store_ocr_put(l->st, pg->doc_id, pg->number, j->text, page.len, j->conf, pin,
                           n < 0 ? 0 : n, err);
    free(pin);
    cn_arena_free(&a);
    return rc;
}

json_t *lib_ocr_counts_json(const store_ocr_counts *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "done", json_integer(c->done));
    json_object_set_new(o, "pending", json_integer(c->pending));
    json_object_set_new(o, "failed", json_integer(c->failed));
    json_object_set_new(o, "low_confidence", json_integer(c->low));
    return o;
}

int lib_ocr(lib *l, const char *langs, int threads, lib_progress_fn fn, void *ctx,
            lib_ocr_stats *st, cn_err *err)
{
    return lib_ocr_some(l, langs, threads, 0, NULL, fn, ctx, st, err);
}

int lib_ocr_some(lib *l, const char *langs, int threads, int max_pages, const atomic_bool *stop,
                 lib_progress_fn fn, void *ctx, lib_ocr_stats *st, cn_err *err)
{
    memset(st, 0, sizeof *st);
    store_ocr_counts c;
    int rc = store_ocr_count(l->st, 0, &c, err);
    if (rc != CN_OK || c.pending == 0)
        return rc;
    if (threads <= 0)
        threads = 2;
    if (threads > OCR_MAX_THREADS)
        threads = OCR_MAX_THREADS;
    if (max_pages > 0 && c.pending > max_pages)
        c.pending = max_pages;
    if (threads > c.pending)
        threads = (int)c.pending;
    ocr_engine *eng[OCR_MAX_THREADS] = {0};
    for (int t = 0; t < threads && rc == CN_OK; t++)
        rc = ocr_open(&eng[t], langs, err);
    double t0 = cn_now(), conf_sum = 0;
    int64_t total = c.pending, done = 0;
    while (rc == CN_OK && done < total && !(stop && atomic_load(stop))) {
        cn_arena a;
        cn_arena_init(&a, (size_t)1 << 20);
        store_ocr_page pgs[OCR_MAX_THREADS];
        int want = (int)CN_MIN((int64_t)threads, total - done);
        int n = store_ocr_pending(l->st, want, &a, pgs, err);
        if (n <= 0) {
            rc = n < 0 ? n : CN_OK;
            cn_arena_free(&a);
            break;
        }
        job jobs[OCR_MAX_THREADS];
        pthread_t tid[OCR_MAX_THREADS];
        bool started[OCR_MAX_THREADS] = {0};
        for (int i = 0; i < n; i++) {
            jobs[i] = (job){.l = l, .pg = &pgs[i], .eng = eng[i]};
            const char *why = file_changed(&pgs[i]);
            if (why) {
                jobs[i].rc = cn_fail(&jobs[i].err, CN_ENOTFOUND, "%s: page %d: %s", pgs[i].path,
                                     pgs[i].number, why);
                continue;
            }
            started[i] = i > 0 && pthread_create(&tid[i], NULL, run_job, &jobs[i]) == 0;
            if (i > 0 && !started[i])
                run_job(&jobs[i]);
        }
        if (n > 0 && !jobs[0].rc && !file_changed(&pgs[0]))
            run_job(&jobs[0]); /* this thread reads one page too */
        for (int i = 1; i < n; i++)
            if (started[i])
                pthread_join(tid[i], NULL);
        for (int i = 0; i < n && rc == CN_OK; i++) {
            job *j = &jobs[i];
            lib_event ev = {.kind = LIB_EV_OCR, .path = pgs[i].path, .pages = pgs[i].number};
            if (j->rc == CN_OK) {
                cn_err e2 = {0};
                int r = store_page(l, &pgs[i], j, &e2);
                if (r == CN_OK) {
                    st->pages++;
                    conf_sum += j->conf;
                    st->low += j->conf < STORE_OCR_LOW_CONF;
                    ev.passages = (int)j->conf;
                } else if (r != CN_ENOTFOUND) {
                    rc = r;
                    *err = e2;
                }
            } else if (j->rc == CN_ENOMEM) {
                rc = cn_fail(err, CN_ENOMEM, "%s", j->err.msg);
            } else {
                /* this page cannot be read: say why and go on */
                store_ocr_fail(l->st, pgs[i].doc_id, pgs[i].number, j->err.msg, NULL);
                st->failed++;
                ev.error = j->err.msg;
            }
            free(j->text);
            j->text = NULL;
            done++;
            double el = cn_now() - t0;
            ev.embed_done = done;
            ev.embed_total = total;
            ev.eta_s = el / (double)done * (double)(total - done);
            if (fn && rc == CN_OK)
                fn(ctx, &ev);
        }
        for (int i = 0; i < n; i++)
            free(jobs[i].text);
        cn_arena_free(&a);
    }
    for (int t = 0; t < threads; t++)
        ocr_close(eng[t]);
    st->seconds = cn_now() - t0;
    st->mean_conf = st->pages ? (float)(conf_sum / st->pages) : 0;
    return rc == CN_OK ? st->pages : rc;
}
