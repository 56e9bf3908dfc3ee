/*
** tokenize.c: the "cairn" FTS5 tokenizer of passages_fts, and the language
** guess behind it (the SQL function cairn_lang(text), stored per page).
**
** A word is a run of letters, digits, marks and private-use characters
** (Unicode categories L*, N*, M*, Co); everything else separates words,
** as SQLite's unicode61 did before. Each word is mapped, code point by code
** point, through case folding, compatibility decomposition and mark
** stripping ("Résumé" = "resume", the "ﬁ" ligature of a PDF = "fi"), then
** stemmed with the Snowball stemmer of the text's language ("connecting" =
** "connection" = "connect"). Folding comes before stemming so that a query
** typed without accents stems exactly as the accented passage did.
**
** Chinese, Japanese and Korean write no spaces: a run of Han, Hiragana,
** Katakana or Hangul characters becomes its overlapping two-character
** tokens ("設定ファイル" = 設定 定フ ファ ァイ イル), so a two-character word
** inside a longer run is found. A single character stands alone.
**
** Which language: a document token stream (a passage's text, its heading)
** is stemmed with the language guessed from that same text (stop words;
** English when nothing is clear). The guess depends on the text alone, so
** deleting or re-checking a row re-creates exactly the tokens it indexed.
** A query cannot be guessed reliably from a few words, so each query word
** is stemmed in every language present in the library (the connection's
** query languages, set by search.c from pages.lang) and the distinct stems
** are emitted as FTS5 colocated tokens -- alternatives: the word matches a
** passage indexed under any of them. One stem per word in the index keeps
** it small; the few alternatives per query word cost little.
*/
#include "store/store_int.h"

#include <libstemmer.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD 256 /* folded bytes kept of one word; the rest is cut */

/* The languages we recognise, by STORE_LANG_*: Snowball's name (NULL: no
** stemmer) and a few frequent words that are rare in the other languages
** (written folded: no accents). No one-letter Latin words: "-o", "e" and
** "y" are everywhere in code and option lists. */
struct lang_def {
    const char *code, *snowball;
    const char *const *stop;
};

static const char *const stop_en[] = {"the", "and", "of", "to", "is", "that", "with", "for",
                                      "this", "are", "from", "which", "be", "by", "it", NULL};
static const char *const stop_fr[] = {"le", "la", "les", "des", "est", "et", "du", "une",
                                      "dans", "pour", "que", "qui", "sur", "au", "pas", NULL};
static const char *const stop_de[] = {"der", "die", "das", "und", "ist", "nicht", "mit", "den",
                                      "ein", "eine", "zu", "von", "sich", "auf", "fur", NULL};
static const char *const stop_es[] = {"el", "los", "las", "pero", "es", "una", "por", "con",
                                      "para", "del", "se", "que", "como", "al", "su", NULL};
static const char *const stop_it[] = {"il", "di", "che", "anche", "della", "per", "non", "sono",
                                      "gli", "con", "del", "una", "nel", "alla", "si", NULL};
static const char *const stop_pt[] = {"pelo", "os", "as", "da", "do", "mais", "em", "um",
                                      "para", "com", "nao", "uma", "dos", "ao", "que", NULL};
static const char *const stop_nl[] = {"de", "het", "een", "en", "van", "is", "niet", "dat",
                                      "op", "te", "zijn", "voor", "met", "die", "ook", NULL};
static const char *const stop_ru[] = {"и", "в", "не", "на", "что", "с", "по", "это",
                                      "как", "для", "из", "от", "или", "к", "то", NULL};

static const struct lang_def langs[STORE_N_LANGS] = {
    [STORE_LANG_EN] = {"en", "english", stop_en},    [STORE_LANG_FR] = {"fr", "french", stop_fr},
    [STORE_LANG_DE] = {"de", "german", stop_de},     [STORE_LANG_ES] = {"es", "spanish", stop_es},
    [STORE_LANG_IT] = {"it", "italian", stop_it},    [STORE_LANG_PT] = {"pt", "portuguese", stop_pt},
    [STORE_LANG_NL] = {"nl", "dutch", stop_nl},      [STORE_LANG_RU] = {"ru", "russian", stop_ru},
    [STORE_LANG_JA] = {"ja", NULL, NULL},            [STORE_LANG_ZH] = {"zh", NULL, NULL},
    [STORE_LANG_KO] = {"ko", NULL, NULL},
};

const char *store_lang_code(int lang)
{
    return lang >= 0 && lang < STORE_N_LANGS ? langs[lang].code : "en";
}

int store_lang_of_code(const char *code, size_t len)
{
    for (int i = 0; i < STORE_N_LANGS; i++)
        if (strlen(langs[i].code) == len && memcmp(langs[i].code, code, len) == 0)
            return i;
    return -1;
}

/* ---- characters -------------------------------------------------------- */

typedef enum { CH_SEP, CH_WORD, CH_HAN, CH_KANA, CH_HANGUL } ch_class;

static ch_class classify(utf8proc_int32_t c)
{
    if ((c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
        (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x2FFFF))
        return CH_HAN;
    if ((c >= 0x3041 && c <= 0x30FF) || (c >= 0x31F0 && c <= 0x31FF) ||
        (c >= 0xFF66 && c <= 0xFF9F))
        return CH_KANA;
    if ((c >= 0xAC00 && c <= 0xD7AF) || (c >= 0x1100 && c <= 0x11FF) ||
        (c >= 0x3131 && c <= 0x318E))
        return CH_HANGUL;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_CO:
        return CH_WORD;
    default:
        return CH_SEP;
    }
}

static bool is_cjk(ch_class k) { return k == CH_HAN || k == CH_KANA || k == CH_HANGUL; }

/* Next code point of s[*i..len): invalid bytes come back as U+FFFD (a
** separator) one byte at a time, so hostile input only splits words. */
static utf8proc_int32_t next_cp(const char *s, int len, int *i)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + *i, len - *i, &c);
    if (n <= 0) {
        (*i)++;
        return 0xFFFD;
    }
    *i += (int)n;
    return c;
}

/* Append c case-folded, decomposed and without marks to buf; false when the
** buffer is full (the word is cut there). */
static bool fold_append(utf8proc_int32_t c, char *buf, int *n)
{
    utf8proc_int32_t out[8];
    int bc = 0;
    utf8proc_ssize_t k = utf8proc_decompose_char(
        c, out, 8, UTF8PROC_CASEFOLD | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_STRIPMARK,
        &bc);
    if (k < 0 || k > 8) {
        out[0] = c;
        k = 1;
    }
    for (utf8proc_ssize_t j = 0; j < k; j++) {
        if (*n + 4 > MAX_WORD)
            return false;
        *n += (int)utf8proc_encode_char(out[j], (utf8proc_uint8_t *)buf + *n);
    }
    return true;
}

/* ---- walking the words of a text --------------------------------------- */

/* Called per word with its folded form (not NUL-terminated) and its byte
** span in the text; per CJK run with the run's code points. */
typedef struct walker {
    int (*word)(void *ctx, const char *folded, int n, int start, int end);
    int (*cjk)(void *ctx, const utf8proc_int32_t *cp, const int *off, int n);
    void *ctx;
} walker;

#define MAX_RUN 64 /* a CJK run is handed over in pieces of this many characters */

static int walk(const char *text, int len, const walker *w)
{
    int i = 0, rc = SQLITE_OK;
    while (i < len && rc == SQLITE_OK) {
        int start = i;
        utf8proc_int32_t c = next_cp(text, len, &i);
        ch_class k = classify(c);
        if (k == CH_SEP)
            continue;
        if (is_cjk(k)) {
            /* cp[n] and off[n + 1]: off[j] is where cp[j] starts, off[n] the end */
            utf8proc_int32_t cp[MAX_RUN + 1];
            int off[MAX_RUN + 2], n = 0;
            cp[n] = c;
            off[n++] = start;
            off[n] = i;
            while (i < len) {
                int at = i;
                utf8proc_int32_t d = next_cp(text, len, &i);
                if (!is_cjk(classify(d))) {
                    i = at;
                    break;
                }
                if (n == MAX_RUN + 1) { /* hand over, keep the last one for the bigram */
                    if ((rc = w->cjk(w->ctx, cp, off, n)) != SQLITE_OK)
                        return rc;
                    cp[0] = cp[n - 1];
                    off[0] = off[n - 1];
                    n = 1;
                }
                cp[n] = d;
                off[n++] = at;
                off[n] = i;
            }
            rc = w->cjk(w->ctx, cp, off, n);
            continue;
        }
        char buf[MAX_WORD];
        int n = 0;
        bool room = fold_append(c, buf, &n);
        int end = i;
        while (i < len) {
            int at = i;
            utf8proc_int32_t d = next_cp(text, len, &i);
            if (classify(d) != CH_WORD) {
                i = at;
                break;
            }
            if (room)
                room = fold_append(d, buf, &n);
            end = i;
        }
        if (n > 0) /* a word of marks only folds to nothing */
            rc = w->word(w->ctx, buf, n, start, end);
    }
    return rc;
}

/* ---- language guess ---------------------------------------------------- */

typedef struct guess {
    int hits[STORE_N_LANGS];
    int words, han, kana, hangul;
} guess;

static int guess_word(void *ctx, const char *f, int n, int start, int end)
{
    (void)start, (void)end;
    guess *g = ctx;
    g->words++;
    for (int l = 0; l < STORE_N_LANGS; l++)
        for (const char *const *sw = langs[l].stop; sw && *sw; sw++)
            if ((int)strlen(*sw) == n && memcmp(*sw, f, (size_t)n) == 0)
                g->hits[l]++;
    return SQLITE_OK;
}

static int guess_cjk(void *ctx, const utf8proc_int32_t *cp, const int *off, int n)
{
    (void)off;
    guess *g = ctx;
    for (int j = 0; j < n; j++) {
        ch_class k = classify(cp[j]);
        g->han += k == CH_HAN;
        g->kana += k == CH_KANA;
        g->hangul += k == CH_HANGUL;
    }
    return SQLITE_OK;
}

/* The first 16 KB decide: enough words for the stop-word counts, and a
** long page costs no more than a short one. */
#define GUESS_BYTES 16384

int store_guess_lang(const char *text, size_t len)
{
    guess g = {0};
    int n = (int)CN_MIN(len, (size_t)GUESS_BYTES);
    walker w = {guess_word, guess_cjk, &g};
    walk(text, n, &w);
    /* CJK when those characters are at least as many as the words of other
    ** scripts: a Japanese manual's page is full of commands, options and
    ** LaTeX (and a CJK word is only two or three characters). Kana make it
    ** Japanese, Hangul Korean, Han alone Chinese. */
    int cjk = g.han + g.kana + g.hangul;
    if (cjk > 0 && cjk >= g.words) {
        if (g.kana > 0 && g.kana >= g.hangul)
            return STORE_LANG_JA;
        return g.hangul > 0 ? STORE_LANG_KO : STORE_LANG_ZH;
    }
    /* The language with the most stop-word hits, if it stands out: at least
    ** three hits and more than any other (ties, or almost no evidence, stay
    ** English: the default stemmer, as before). */
    int best = STORE_LANG_EN, second = 0;
    for (int l = 0; l < STORE_N_LANGS; l++) {
        if (g.hits[l] > g.hits[best]) {
            second = g.hits[best];
            best = l;
        } else if (l != best && g.hits[l] > second)
            second = g.hits[l];
    }
    if (best == STORE_LANG_EN || g.hits[best] < 3 || g.hits[best] <= second)
        return STORE_LANG_EN;
    return best;
}

/* cairn_lang(text): the code of store_guess_lang, for pages.lang. */
static void sql_lang(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *t = (const char *)sqlite3_value_text(argv[0]);
    int n = sqlite3_value_bytes(argv[0]);
    if (!t) {
        sqlite3_result_null(cx);
        return;
    }
    sqlite3_result_text(cx, store_lang_code(store_guess_lang(t, (size_t)n)), -1, SQLITE_STATIC);
}

/* ---- the tokenizer ----------------------------------------------------- */

typedef struct cairn_tok {
    store_tok_langs *query_langs; /* shared with the connection (search.c sets it) */
    struct sb_stemmer *stem[STORE_N_LANGS];  /* created on first use */
} cairn_tok;

typedef struct tok_run {
    cairn_tok *t;
    void *ctx;
    int (*emit)(void *, int, const char *, int, int, int);
    unsigned mask;  /* languages to stem with: the distinct stems are emitted,
                       the first as the token, the others colocated with it */
} tok_run;

static int tok_create(void *ud, const char **argv, int argc, Fts5Tokenizer **out)
{
    (void)argv;
    if (argc != 0)
        return SQLITE_ERROR; /* no options: the index must not depend on any */
    cairn_tok *t = sqlite3_malloc(sizeof *t);
    if (!t)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof *t);
    t->query_langs = ud;
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

static void tok_delete(Fts5Tokenizer *p)
{
    cairn_tok *t = (cairn_tok *)p;
    if (!t)
        return;
    for (int l = 0; l < STORE_N_LANGS; l++)
        sb_stemmer_delete(t->stem[l]);
    sqlite3_free(t);
}

/* The stem of f[0..n) in language l, or f itself (no stemmer for l, or the
** stemmer failed: a word indexed unstemmed is still found when typed so). */
static const char *stem_of(cairn_tok *t, int l, const char *f, int n, int *out_n)
{
    *out_n = n;
    if (!langs[l].snowball)
        return f;
    if (!t->stem[l] && !(t->stem[l] = sb_stemmer_new(langs[l].snowball, NULL)))
        return f;
    const sb_symbol *s = sb_stemmer_stem(t->stem[l], (const sb_symbol *)f, n);
    if (!s)
        return f;
    *out_n = sb_stemmer_length(t->stem[l]);
    return *out_n > 0 ? (const char *)s : f;
}

static int tok_word(void *ctx, const char *f, int n, int start, int end)
{
    tok_run *r = ctx;
    char seen[STORE_N_LANGS][MAX_WORD];
    int seen_n[STORE_N_LANGS], n_seen = 0;
    for (int l = 0; l < STORE_N_LANGS; l++) {
        if (!(r->mask & 1u << l))
            continue;
        int sn;
        const char *s = stem_of(r->t, l, f, n, &sn);
        if (sn > MAX_WORD)
            sn = MAX_WORD;
        bool dup = false;
        for (int j = 0; j < n_seen && !dup; j++)
            dup = seen_n[j] == sn && memcmp(seen[j], s, (size_t)sn) == 0;
        if (dup)
            continue;
        int rc = r->emit(r->ctx, n_seen ? FTS5_TOKEN_COLOCATED : 0, s, sn, start, end);
        if (rc != SQLITE_OK)
            return rc;
        memcpy(seen[n_seen], s, (size_t)sn); /* s lives until the stemmer's next call */
        seen_n[n_seen++] = sn;
    }
    return SQLITE_OK;
}

static int tok_cjk(void *ctx, const utf8proc_int32_t *cp, const int *off, int n)
{
    tok_run *r = ctx;
    for (int j = 0; j < (n == 1 ? 1 : n - 1); j++) {
        char buf[16];
        int len = 0;
        for (int k = j; k < j + 2 && k < n; k++) {
            /* fold too: half-width katakana becomes full-width */
            utf8proc_int32_t out[4];
            int bc = 0;
            utf8proc_ssize_t m = utf8proc_decompose_char(
                cp[k], out, 4, UTF8PROC_COMPAT | UTF8PROC_COMPOSE, &bc);
            if (m != 1) /* decomposed (voiced kana) or failed: keep it as written */
                out[0] = cp[k];
            len += (int)utf8proc_encode_char(out[0], (utf8proc_uint8_t *)buf + len);
        }
        int end = off[j + 2 <= n ? j + 2 : n];
        int rc = r->emit(r->ctx, 0, buf, len, off[j], end);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static int tok_tokenize(Fts5Tokenizer *p, void *ctx, int flags, const char *text, int len,
                        int (*emit)(void *, int, const char *, int, int, int))
{
    cairn_tok *t = (cairn_tok *)p;
    tok_run r = {t, ctx, emit, 0};
    if ((flags & 0x0f) == FTS5_TOKENIZE_QUERY) {
        /* English always: it is what a passage with no clear language was
        ** indexed in, whatever its page was guessed as */
        r.mask = (t->query_langs ? t->query_langs->mask : 0) | 1u << STORE_LANG_EN;
    } else {
        r.mask = 1u << store_guess_lang(text, (size_t)CN_MAX(len, 0));
    }
    walker w = {tok_word, tok_cjk, &r};
    return walk(text, CN_MAX(len, 0), &w);
}

static void langs_free(void *p) { sqlite3_free(p); }

fts5_api *store_fts5_api(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return api;
}

int store_tokenizer_register(sqlite3 *db, store_tok_langs **langs_out)
{
    *langs_out = NULL;
    fts5_api *api = store_fts5_api(db);
    if (!api)
        return SQLITE_ERROR;
    store_tok_langs *ql = sqlite3_malloc(sizeof *ql);
    if (!ql)
        return SQLITE_NOMEM;
    memset(ql, 0, sizeof *ql);
    fts5_tokenizer tk = {tok_create, tok_delete, tok_tokenize};
    /* the connection owns ql from here: FTS5 frees it when the db closes */
    int rc = api->xCreateTokenizer(api, STORE_TOKENIZER, ql, &tk, langs_free);
    if (rc != SQLITE_OK) {
        sqlite3_free(ql); /* not registered: FTS5 did not take it */
        return rc;
    }
    rc = sqlite3_create_function(db, "cairn_lang", 1,
                                 SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                 sql_lang, NULL, NULL);
    if (rc == SQLITE_OK)
        *langs_out = ql;
    return rc;
}
