/*
** ocr: text from page images, through libtesseract (Debian's 5.3, its C
** API) and the language data the user installed (tesseract-ocr-eng, -fra,
** ...). One engine per thread: an ocr_engine is not shared.
**
** Languages are named as tesseract names them ("eng", "fra", "eng+fra").
** Without an explicit choice, ocr_default_langs() takes the installed ones
** that match the system locale, and English when it is installed.
*/
#ifndef CN_OCR_H
#define CN_OCR_H

#include "base/base.h"

typedef struct ocr_engine ocr_engine;

/* Where the language data is: $TESSDATA_PREFIX, else Debian's
** /usr/share/tesseract-ocr/5/tessdata. Static or out (cap bytes). */
const char *ocr_datadir(char *out, size_t cap);

/* The installed languages, "+"-joined ("eng+fra"), into out; 0 if none. */
int ocr_installed(char *out, size_t cap);

/* The languages to use when the user names none: those installed that
** match $LC_ALL / $LC_MESSAGES / $LANG (fr_FR -> fra), plus eng when it is
** installed. "" when nothing is installed. */
void ocr_default_langs(char *out, size_t cap);

/* Start an engine for langs (NULL or "": ocr_default_langs). Fails with
** CN_ENOTFOUND and a message that says what to install when the data is
** missing ("OCR needs tesseract's language data: apt-get install
** tesseract-ocr-eng"), or names the language that is not installed. */
int ocr_open(ocr_engine **out, const char *langs, cn_err *err);
void ocr_close(ocr_engine *e);
const char *ocr_langs(const ocr_engine *e);

/* Recognise an 8-bit grey image (w x h, stride bytes a row) scanned at dpi.
** *text: malloc'd UTF-8, the caller frees; *conf: tesseract's mean word
** confidence, 0..100. */
int ocr_recognize(ocr_engine *e, const unsigned char *grey, int w, int h, int stride, int dpi,
                  char **text, float *conf, cn_err *err);

#endif
