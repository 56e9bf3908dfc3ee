/*
** mkdocs: write the sample documents of tests/unit/docgen.h -- Word,
** PowerPoint, OpenDocument text and slides, EPUB, RTF, a man page -- into
** a folder, for trying `cairn add` by hand, for bench/ingest.sh, and as the
** seeds of the format fuzzers (--fuzz-seeds DIR: tests/fuzz/corpus/<format>/,
** ZIP entries stored so that mutations land in the XML).
**
**   mkdocs DIR                 manual.docx manual-unpaged.docx manual.odt ...
**   mkdocs --fuzz-seeds DIR    DIR/docx/seed-*.docx, DIR/odt/..., DIR/rtf/...
*/
#include "unit/docgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int put(const char *dir, const char *sub, const char *name, const char *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, sub[0] ? "/" : "", sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkdocs: %s: %s\n", path, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s%s%s/%s", dir, sub[0] ? "/" : "", sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "mkdocs: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool seeds = argc == 3 && strcmp(argv[1], "--fuzz-seeds") == 0;
    if (!(argc == 2 && argv[1][0] != '-') && !seeds) {
        fprintf(stderr, "usage: mkdocs DIR | mkdocs --fuzz-seeds DIR\n");
        return 2;
    }
    const char *dir = argv[argc - 1];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkdocs: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    zipw_store_only = seeds;
    char *d;
    size_t n;
    int bad = 0;
    n = docgen_docx(&d, true);
    bad |= put(dir, seeds ? "docx" : "", seeds ? "seed-paged.docx" : "manual.docx", d, n);
    free(d);
    n = docgen_docx(&d, false);
    bad |= put(dir, seeds ? "docx" : "", seeds ? "seed-unpaged.docx" : "manual-unpaged.docx", d, n);
    free(d);
    n = docgen_pptx(&d);
    bad |= put(dir, seeds ? "docx" : "", seeds ? "seed-slides.pptx" : "talk.pptx", d, n);
    free(d);
    n = docgen_odt(&d, true);
    bad |= put(dir, seeds ? "odt" : "", seeds ? "seed-paged.odt" : "manual.odt", d, n);
    free(d);
    n = docgen_odt(&d, false);
    bad |= put(dir, seeds ? "odt" : "", seeds ? "seed-unpaged.odt" : "manual-unpaged.odt", d, n);
    free(d);
    n = docgen_odp(&d);
    bad |= put(dir, seeds ? "odt" : "", seeds ? "seed-slides.odp" : "talk.odp", d, n);
    free(d);
    n = docgen_epub(&d);
    bad |= put(dir, seeds ? "epub" : "", seeds ? "seed.epub" : "manual.epub", d, n);
    free(d);
    bad |= put(dir, seeds ? "rtf" : "", seeds ? "seed.rtf" : "manual.rtf", docgen_rtf,
               strlen(docgen_rtf));
    bad |= put(dir, seeds ? "man" : "", seeds ? "seed.8" : "pumpctl.8", docgen_man,
               strlen(docgen_man));
    return bad;
}
