/*
** ocr.c: libtesseract behind a small interface (see ocr.h).
**
** Tesseract writes diagnostics to stderr ("Estimating resolution", "Empty
** page"): its debug_file goes to /dev/null, and the resolution is always
** given, so Cairn's output stays its own.
*/
#include "ocr/ocr.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tesseract/capi.h>

struct ocr_engine {
    TessBaseAPI *api;
    char langs[256];
};

const char *ocr_datadir(char *out, size_t cap)
{
    const char *env = getenv("TESSDATA_PREFIX");
    snprintf(out, cap, "%s", env && env[0] ? env : "/usr/share/tesseract-ocr/5/tessdata");
    return out;
}

int ocr_installed(char *out, size_t cap)
{
    char dir[1024];
    out[0] = 0;
    DIR *d = opendir(ocr_datadir(dir, sizeof dir));
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    /* sorted for a stable default: collect, then order */
    char names[64][32];
    while ((e = readdir(d)) != NULL && n < 64) {
        const char *dot = strstr(e->d_name, ".traineddata");
        size_t l = dot ? (size_t)(dot - e->d_name) : 0;
        if (!dot || dot[12] || l == 0 || l >= 32 || strcmp(e->d_name, "osd.traineddata") == 0)
            continue;
        memcpy(names[n], e->d_name, l);
        names[n++][l] = 0;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[32];
            memcpy(t, names[j], 32);
            memcpy(names[j], names[j - 1], 32);
            memcpy(names[j - 1], t, 32);
        }
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + o, cap - o, "%s%s", i ? "+" : "", names[i]);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
    return n;
}

static bool has_lang(const char *list, const char *lang)
{
    size_t l = strlen(lang);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, '+');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == l && strncmp(p, lang, l) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

void ocr_default_langs(char *out, size_t cap)
{
    static const struct {
        const char *loc, *lang;
    } map[] = {{"fr", "fra"}, {"de", "deu"}, {"es", "spa"}, {"it", "ita"}, {"pt", "por"},
               {"nl", "nld"}, {"ja", "jpn"}, {"zh", "chi_sim"}, {"ru", "rus"}, {"pl", "pol"},
               {"sv", "swe"}, {"da", "dan"}, {"fi", "fin"}, {"nb", "nor"}, {"cs", "ces"},
               {"ko", "kor"}, {"ar", "ara"}, {"he", "heb"}, {"tr", "tur"}, {"uk", "ukr"}};
    char inst[1024];
    ocr_installed(inst, sizeof inst);
    out[0] = 0;
    const char *loc = getenv("LC_ALL");
    if (!loc || !loc[0])
        loc = getenv("LC_MESSAGES");
    if (!loc || !loc[0])
        loc = getenv("LANG");
    size_t o = 0;
    for (size_t i = 0; loc && i < CN_ARRAY_LEN(map); i++)
        if (strncmp(loc, map[i].loc, 2) == 0 && has_lang(inst, map[i].lang))
            o += (size_t)snprintf(out + o, cap - o, "%s", map[i].lang);
    if (has_lang(inst, "eng") && o < cap)
        snprintf(out + o, cap - o, "%seng", o ? "+" : "");
    if (!out[0] && inst[0]) { /* neither the locale's nor English: the first installed */
        const char *e = strchr(inst, '+');
        snprintf(out, cap, "%.*s", e ? (int)(e - inst) : (int)strlen(inst), inst);
    }
}

int ocr_open(ocr_engine **out, const char *langs, cn_err *err)
{
    *out = NULL;
    char dir[1024], inst[1024], dflt[256];
    ocr_datadir(dir, sizeof dir);
    if (ocr_installed(inst, sizeof inst) == 0)
        return cn_fail(err, CN_ENOTFOUND,
                       "OCR needs tesseract's language data, and %s has none: "
                       "apt-get install tesseract-ocr-eng (and tesseract-ocr-fra, -deu, ... for "
                       "other languages)",
                       dir);
    if (!langs || !langs[0]) {
        ocr_default_langs(dflt, sizeof dflt);
        langs = dflt;
    }
    /* name the first language that is missing, with its package */
    for (const char *p = langs; *p;) {
        const char *e = strchr(p, '+');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char one[64];
        snprintf(one, sizeof one, "%.*s", (int)CN_MIN(n, sizeof one - 1), p);
        bool ok = n > 0 && n < 32;
        for (size_t i = 0; ok && i < n; i++)
            ok = (one[i] >= 'a' && one[i] <= 'z') || one[i] == '_' ||
                 (one[i] >= 'A' && one[i] <= 'Z') || (one[i] >= '0' && one[i] <= '9');
        if (!ok)
            return cn_fail(err, CN_EINVAL, "--ocr-lang %s: not a list of language names (eng+fra)",
                           langs);
        if (!has_lang(inst, one)) {
            char pkg[80];
            snprintf(pkg, sizeof pkg, "tesseract-ocr-%s", one);
            for (char *c = pkg; *c; c++)
                if (*c == '_')
                    *c = '-';
            return cn_fail(err, CN_ENOTFOUND,
                           "OCR language %s is not installed (installed: %s): apt-get install %s",
                           one, inst, pkg);
        }
        p = e ? e + 1 : p + n;
    }
    ocr_engine *o = calloc(1, sizeof *o);
    if (!o)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    snprintf(o->langs, sizeof o->langs, "%s", langs);
    o->api = TessBaseAPICreate();
    if (!o->api) {
        free(o);
        return cn_fail(err, CN_ENOMEM, "cannot start tesseract (out of memory)");
    }
    TessBaseAPISetVariable(o->api, "debug_file", "/dev/null");
    if (TessBaseAPIInit3(o->api, dir, o->langs) != 0) {
        TessBaseAPIDelete(o->api);
        free(o);
        return cn_fail(err, CN_EFORMAT, "tesseract could not load %s from %s (damaged data?)",
                       langs, dir);
    }
    TessBaseAPISetVariable(o->api, "debug_file", "/dev/null");
    TessBaseAPISetPageSegMode(o->api, PSM_AUTO);
    *out = o;
    return CN_OK;
}

void ocr_close(ocr_engine *e)
{
    if (!e)
        return;
    TessBaseAPIEnd(e->api);
    TessBaseAPIDelete(e->api);
    free(e);
}

const char *ocr_langs(const ocr_engine *e)
{
    return e->langs;
}

int ocr_recognize(ocr_engine *e, const unsigned char *grey, int w, int h, int stride, int dpi,
                  char **text, float *conf, cn_err *err)
{
    *text = NULL;
    *conf = 0;
    if (w <= 0 || h <= 0 || stride < w)
        return cn_fail(err, CN_EINVAL, "OCR: bad image size %d x %d", w, h);
    TessBaseAPISetImage(e->api, grey, w, h, 1, stride);
    TessBaseAPISetSourceResolution(e->api, dpi);
    if (TessBaseAPIRecognize(e->api, NULL) != 0) {
        TessBaseAPIClear(e->api);
        return cn_fail(err, CN_EFORMAT, "OCR: tesseract could not read the page");
    }
    char *t = TessBaseAPIGetUTF8Text(e->api);
    int c = TessBaseAPIMeanTextConf(e->api);
    TessBaseAPIClear(e->api);
    if (!t)
        return cn_fail(err, CN_ENOMEM, "OCR: out of memory");
    *text = strdup(t);
    TessDeleteText(t);
    if (!*text)
        return cn_fail(err, CN_ENOMEM, "OCR: out of memory");
    *conf = (float)(c < 0 ? 0 : c > 100 ? 100 : c);
    return CN_OK;
}
