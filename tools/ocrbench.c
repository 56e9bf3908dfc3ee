/*
** ocrbench: OCR speed and accuracy on pages of a real PDF turned into scans.
**
**   ocrbench [--dpi 150] [--noise 12] [--threads 1,2] [--lang eng] PDF PAGE...
**
** Each page of PDF (which has a text layer) is rendered in grey at --dpi,
** given Gaussian-ish noise (--noise: the spread of grey levels added, 0 for
** none) and written into an image-only PDF: a scan without the paper. That
** scan goes through the library like a user's (lib_add queues the pages,
** lib_ocr reads them with --threads engines at a time), and the text read is
** compared with the original text layer: character error rate (edit
** distance over the reference length, white space folded, case kept) and
** seconds per page, for each thread count. Not paper: no skew, no bleed, no
** coffee stains -- the numbers are an upper bound on quality.
*/
#include "ingest/ingest.h"
#include "library/library.h"
#include "store/store.h"
#include "unit/scanpdf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

/* Text in NFKC (ligatures "ﬁ" become "fi", as OCR writes them) with white
** space runs folded to one space, trimmed. */
static char *fold(const char *s0)
{
    char *s = (char *)utf8proc_NFKC((const utf8proc_uint8_t *)s0);
    if (!s)
        s = strdup(s0);
    size_t n = strlen(s), k = 0;
    char *o = malloc(n + 1);
    bool sp = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f') {
            sp = k > 0;
            continue;
        }
        if (sp)
            o[k++] = ' ';
        sp = false;
        o[k++] = (char)c;
    }
    o[k] = 0;
    free(s);
    return o;
}

/* Edit distance between a and b, in bytes (two rows). */
static size_t edits(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    size_t *p = malloc((m + 1) * sizeof *p), *c = malloc((m + 1) * sizeof *c);
    for (size_t j = 0; j <= m; j++)
        p[j] = j;
    for (size_t i = 1; i <= n; i++) {
        c[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t sub = p[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = p[j] + 1, ins = c[j - 1] + 1;
            c[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        size_t *t = p;
        p = c;
        c = t;
    }
    size_t d = p[m];
    free(p);
    free(c);
    return d;
}

int main(int argc, char **argv)
{
    int dpi = 150, spread = 12, threads[4] = {1, 2}, nt = 2;
    const char *lang = "eng";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--dpi") && i + 1 < argc)
            dpi = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--noise") && i + 1 < argc)
            spread = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lang") && i + 1 < argc)
            lang = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nt = 0;
            for (char *t = strtok(argv[++i], ","); t && nt < 4; t = strtok(NULL, ","))
                threads[nt++] = atoi(t);
        } else {
            fprintf(stderr, "ocrbench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (argc - i < 2 || dpi < 50 || dpi > 600) {
        fprintf(stderr, "usage: ocrbench [--dpi 150] [--noise 12] [--threads 1,2] [--lang eng] "
                        "PDF PAGE...\n");
        return 2;
    }
    const char *src = argv[i++];
    int pages[256], np = 0;
    for (; i < argc && np < 256; i++)
        pages[np++] = atoi(argv[i]);
    char tmp[] = "/tmp/ocrbench-XXXXXX";
    if (!mkdtemp(tmp))
        return 1;
    char scan[256];
    snprintf(scan, sizeof scan, "%s/scan.pdf", tmp);
    if (!scan_write(src, pages, np, dpi, spread, scan, false))
        return 1;
    ingest_doc ref;
    cn_err err = {0};
    if (ingest_file(src, &ref, &err) != CN_OK) {
        fprintf(stderr, "ocrbench: %s\n", err.msg);
        return 1;
    }
    printf("%s, %d page%s rendered at %d dpi, noise +-%d grey levels, tesseract %s\n", src, np,
           np == 1 ? "" : "s", dpi, spread, lang);
    printf("%-8s %10s %10s %8s %8s\n", "threads", "s/page", "pages/min", "CER", "conf");
    int bad = 0;
    for (int t = 0; t < nt; t++) {
        char home[256];
        snprintf(home, sizeof home, "%s/lib%d", tmp, threads[t]);
        lib *l;
        lib_add_stats st;
        lib_ocr_stats os;
        const char *paths[] = {scan};
        if (lib_open(&l, home, &err) || lib_add(l, paths, 1, false, NULL, NULL, &st, &err) ||
            lib_ocr(l, lang, threads[t], NULL, NULL, &os, &err) < 0) {
            fprintf(stderr, "ocrbench: %s\n", err.msg);
            return 1;
        }
        size_t e = 0, total = 0;
        char per[1024] = "";
        size_t pl = 0;
        cn_arena a;
        cn_arena_init(&a, (size_t)64 << 20);
        for (int p = 0; p < np; p++) {
            const char *got = "";
            size_t len;
            store_get_page(lib_store(l), 1, p + 1, &a, &got, &len, &err);
            char *fr = fold(ref.pages[pages[p] - 1].text), *fg = fold(got);
            size_t pe = edits(fr, fg);
            e += pe;
            total += strlen(fr);
            pl += (size_t)snprintf(per + pl, sizeof per - pl, " p.%d %.1f%%", pages[p],
                                   strlen(fr) ? 100.0 * (double)pe / (double)strlen(fr) : 0);
            if (pl >= sizeof per)
                pl = sizeof per - 1;
            free(fr);
            free(fg);
        }
        cn_arena_free(&a);
        double cer = total ? (double)e / (double)total : 0;
        printf("%-8d %10.2f %10.1f %7.2f%% %7.0f%%  (per page:%s)\n", threads[t],
               os.seconds / np, 60.0 * np / os.seconds, 100 * cer, os.mean_conf, per);
        bad |= os.pages != np;
        lib_close(l);
    }
    ingest_doc_free(&ref);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "ocrbench: could not remove %s\n", tmp);
    return bad;
}
