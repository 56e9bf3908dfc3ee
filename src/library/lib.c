/*
** lib.c: the library operations. lib_add walks the user's paths and writes
** each file as one document (or one failure record); lib_index fills in the
** vectors; lib_search ranks passages by keyword, vector or both.
*/
#include "library/lib_int.h"
#include "ingest/ingest.h"
#include "search/search.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

store *lib_store(lib *l) { return l->st; }
const char *lib_home(const lib *l) { return l->home; }

/* ---- walking the user's paths ---------------------------------------------- */

typedef struct file_list {
    char **paths;
    int n, cap;
    int ignored;             /* files of types Cairn does not read, inside folders */
    struct { dev_t dev; ino_t ino; } *dirs;
    int n_dirs, cap_dirs;    /* folders visited: a symlink loop ends here */
    char **skipped;          /* "path: why" for what the walk could not enter */
    int n_skipped, cap_skipped;
} file_list;

#define MAX_DEPTH 64

/* Remember a place the walk could not go, so that lib_add reports it as a
** failure instead of leaving it out in silence. */
static int skip_path(file_list *fl, const char *path, const char *why)
{
    if (fl->n_skipped == fl->cap_skipped) {
        int cap = fl->cap_skipped ? fl->cap_skipped * 2 : 8;
        char **p = cn_realloc_array(fl->skipped, (size_t)cap, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        fl->skipped = p;
        fl->cap_skipped = cap;
    }
    size_t n = strlen(path) + strlen(why) + 3;
    char *s = cn_malloc(n);
    if (!s)
        return CN_ENOMEM;
    snprintf(s, n, "%s: %s", path, why);
    fl->skipped[fl->n_skipped++] = s;
    return CN_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int push_file(file_list *fl, const char *path)
{
    if (fl->n == fl->cap) {
        int cap = fl->cap ? fl->cap * 2 : 64;
        char **p = cn_realloc_array(fl->paths, (size_t)cap, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        fl->paths = p;
        fl->cap = cap;
    }
    fl->paths[fl->n] = strdup(path);
    return fl->paths[fl->n++] ? CN_OK : CN_ENOMEM;
}

static int walk(file_list *fl, const char *path, bool named, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) /* missing or dangling: report it as a file that fails */
        return push_file(fl, path);
    if (!S_ISDIR(st.st_mode)) {
        if (named || (S_ISREG(st.st_mode) && ingest_known_name(path)))
            return push_file(fl, path);
        fl->ignored += S_ISREG(st.st_mode);
        return CN_OK;
    }
    for (int i = 0; i < fl->n_dirs; i++)
        if (fl->dirs[i].dev == st.st_dev && fl->dirs[i].ino == st.st_ino)
            return CN_OK; /* seen: a symlink loop or a second way in */
    if (depth > MAX_DEPTH)
        return skip_path(fl, path, "folders nested more than 64 deep are not entered");
    if (fl->n_dirs == fl->cap_dirs) {
        int cap = fl->cap_dirs ? fl->cap_dirs * 2 : 64;
        void *p = cn_realloc_array(fl->dirs, (size_t)cap, sizeof *fl->dirs);
        if (!p)
            return CN_ENOMEM;
        fl->dirs = p;
        fl->cap_dirs = cap;
    }
    fl->dirs[fl->n_dirs].dev = st.st_dev;
    fl->dirs[fl->n_dirs].ino = st.st_ino;
    fl->n_dirs++;
    DIR *d = opendir(path);
    if (!d)
        return named ? push_file(fl, path) : CN_OK; /* the add reports why */
    struct dirent *e;
    int rc = CN_OK;
    char **names = NULL;
    int n = 0, cap = 0;
    while ((e = readdir(d)) && rc == CN_OK) {
        if (e->d_name[0] == '.') /* hidden files and folders, . and .. */
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **p = cn_realloc_array(names, (size_t)cap, sizeof *p);
            if (!p) {
                rc = CN_ENOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name)))
            rc = CN_ENOMEM;
        else
            n++;
    }
    closedir(d);
    /* sorted, so that a library is built in the same order every time */
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 0; i < n; i++) {
        char child[PATH_MAX];
        if (rc == CN_OK) {
            if (snprintf(child, sizeof child, "%s/%s", path, names[i]) < (int)sizeof child)
                rc = walk(fl, child, false, depth + 1);
            else if (snprintf(child, sizeof child, "%s/%.80s...", path, names[i]) > 0)
                rc = skip_path(fl, child, "path longer than the system's PATH_MAX");
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static void free_list(file_list *fl)
{
    for (int i = 0; i < fl->n; i++)
        free(fl->paths[i]);
    free(fl->paths);
    free(fl->dirs);
    for (int i = 0; i < fl->n_skipped; i++)
        free(fl->skipped[i]);
    free(fl->skipped);
}

/* ---- adding one file --------------------------------------------------------- */

int lib_chunk_with(lib *l, const char *model_path, int threads, cn_err *err)
{
    int rc = lib_use_encoder(l, model_path, threads, err);
    l->chunk_by_model = rc == CN_OK;
    return rc;
}

/* Tokens of one word in the embedding model's tokenizer (chunk_opts hook). */
static int count_model_tokens(void *ctx, const char *s, size_t n)
{
    lib *l = ctx;
    int32_t ids[256];
    int k = tok_encode(l->enc_tok, s, n, false, false, ids, 256, NULL);
    /* a word of more than 256 tokens (or one the tokenizer rejects): the
    ** estimate, which over-counts, keeps the passage within the limit */
    return k < 0 ? chunk_estimate_tokens(NULL, s, n) : k;
}

/* Add one file. A problem with the file itself is not an error of the
** batch: it goes to fe (and the file is recorded as failed); err is for
** the library failing (database write errors). */
static int add_one(lib *l, const char *given, lib_event *ev, char notes[256], cn_err *fe,
                   cn_err *err)
{
    char path[PATH_MAX];
    if (!realpath(given, path))
        snprintf(path, sizeof path, "%s", given);
    ev->path = given;
    ev->pages = ev->passages = 0;
    ev->error = NULL;
    ev->notes = "";
    struct stat st;
    store_doc_in d = {.path = path};
    char hash[STORE_HASH_HEX + 1] = "";
    if (stat(path, &st) != 0) {
        cn_fail(fe, CN_ENOTFOUND, "%s: %s", given, strerror(errno));
        ev->outcome = LIB_FAILED;
        ev->error = fe->msg;
        return CN_OK; /* nothing to record: there is no file */
    }
    d.size = st.st_size;
    d.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    store_file_state old;
    int found = store_find_by_path(l->st, path, &old, err);
    if (found != CN_OK && found != CN_ENOTFOUND)
        return found;
    if (found == CN_OK && !old.failed && old.size == d.size && old.mtime_ns == d.mtime_ns) {
        ev->outcome = LIB_UNCHANGED;
        return CN_OK;
    }
    int rc = S_ISREG(st.st_mode) ? store_hash_file(path, hash, NULL, fe)
                                 : cn_fail(fe, CN_EINVAL, "%s: not a regular file", given);
    d.hash = rc ? "0000000000000000000000000000000000000000000000000000000000000000" : hash;
    if (rc == CN_OK && found == CN_OK && !old.failed && !strcmp(old.hash, hash)) {
        ev->outcome = LIB_UNCHANGED;
        return CN_OK;
    }
    ingest_doc doc = {0};
    if (rc == CN_OK && l->dk && lib_is_upload_copy(l, path)) {
        /* a sealed copy of an encrypted library: unsealed in memory only */
        char *data;
        size_t len;
        rc = lib_read_upload(l, path, (size_t)INGEST_MAX_PDF_MB << 20, &data, &len, fe);
        if (rc == CN_OK) {
            rc = ingest_memory(path, data, len, NULL, &doc, fe);
            sodium_memzero(data, len);
            free(data);
        }
    } else if (rc == CN_OK)
        rc = ingest_file(path, &doc, fe);
    if (rc != CN_OK) {
        ev->outcome = LIB_FAILED;
        ev->error = fe->msg;
        d.kind = "unknown";
        return store_put_failed(l->st, &d, fe->msg, NULL, err);
    }
    snprintf(notes, 256, "%s", doc.notes); /* doc is freed before the caller reports */
    ev->notes = notes;
    cn_arena a;
    cn_arena_init(&a, (size_t)1 << 30);
    ingest_passage *ps = NULL;
    chunk_opts co = {0};
    if (l->chunk_by_model && l->enc_tok) {
        co.count_tokens = count_model_tokens;
        co.ctx = l;
        /* room for [CLS] and [SEP] in a short-context encoder */
        co.max_tokens = CN_MIN(CHUNK_DEFAULT_TOKENS, l->enc_ctx - 2);
    }
    int np = chunk_split(&a, &doc, &co, &ps, fe);
    store_page_in *pages = cn_calloc((size_t)doc.n_pages + 1, sizeof *pages);
    store_passage_in *pin = cn_calloc((size_t)(np > 0 ? np : 0) + 1, sizeof *pin);
    if (np < 0 || !pages || !pin) {
        rc = np < 0 ? np : cn_fail(fe, CN_ENOMEM, "%s: out of memory", given);
    } else {
        for (int i = 0; i < doc.n_pages; i++)
            pages[i] = (store_page_in){doc.pages[i].number, doc.pages[i].text, doc.pages[i].len,
                                       false};
        for (int i = 0; i < doc.n_scanned; i++)
            if (doc.scanned[i] >= 1 && doc.scanned[i] <= doc.n_pages)
                pages[doc.scanned[i] - 1].ocr_pending = true;
        for (int i = 0; i < np; i++)
            pin[i] = (store_passage_in){ps[i].page_start, ps[i].page_end, ps[i].off_start,
                                        ps[i].off_end, ps[i].text, ps[i].len, ps[i].heading,
                                        ps[i].locator};
        d.kind = doc.kind;
        d.title = doc.title;
        d.pages = pages;
        d.n_pages = doc.n_pages;
        d.passages = pin;
        d.n_passages = np;
        rc = store_put_document(l->st, &d, NULL, fe);
    }
    if (rc == CN_OK) {
        ev->outcome = found == CN_OK ? LIB_UPDATED : LIB_ADDED;
        ev->pages = doc.n_pages;
        ev->passages = np;
    } else {
        ev->outcome = LIB_FAILED;
        ev->error = fe->msg;
        d.kind = doc.kind;
        rc = store_put_failed(l->st, &d, fe->msg, NULL, err);
    }
    free(pages);
    free(pin);
    cn_arena_free(&a);
    ingest_doc_free(&doc);
    return rc;
}

int lib_add(lib *l, const char *const *paths, int n, bool prune, lib_progress_fn fn, void *ctx,
            lib_add_stats *st, cn_err *err)
{
    memset(st, 0, sizeof *st);
    file_list fl = {0};
    int rc = CN_OK;
    for (int i = 0; i < n && rc == CN_OK; i++)
        rc = walk(&fl, paths[i], true, 0);
    if (rc) {
        free_list(&fl);
        return cn_fail(err, rc, "out of memory listing files");
    }
    int total = fl.n + fl.n_skipped;
    lib_event ev = {.kind = LIB_EV_SCAN, .files_total = total, .eta_s = -1};
    if (fn)
        fn(ctx, &ev);
    for (int i = 0; i < fl.n_skipped; i++) { /* failures of the walk itself */
        ev = (lib_event){.kind = LIB_EV_FILE, .files_done = i + 1, .files_total = total,
                         .eta_s = -1, .path = fl.skipped[i], .outcome = LIB_FAILED,
                         .error = fl.skipped[i], .notes = ""};
        st->failed++;
        if (fn)
            fn(ctx, &ev);
    }
    for (int i = 0; i < fl.n && rc == CN_OK; i++) {
        ev = (lib_event){.kind = LIB_EV_FILE, .files_done = fl.n_skipped + i + 1,
                         .files_total = total, .eta_s = -1};
        cn_err fe = {0};
        char notes[256] = "";
        rc = add_one(l, fl.paths[i], &ev, notes, &fe, err);
        if (rc)
            break;
        switch (ev.outcome) {
        case LIB_ADDED: st->added++; break;
        case LIB_UPDATED: st->updated++; break;
        case LIB_UNCHANGED: st->unchanged++; break;
        default: st->failed++; break;
        }
        st->pages += ev.pages;
        st->passages += ev.passages;
        if (fn)
            fn(ctx, &ev);
    }
    if (rc == CN_OK && prune) {
        int r = store_prune(l->st, NULL, NULL, err);
        if (r < 0)
            rc = r;
        else
            st->pruned = r;
    }
    free_list(&fl);
    return rc;
}

/* ---- remove ------------------------------------------------------------------------ */

typedef struct find_id {
    int64_t id;
    char path[PATH_MAX];
    bool found;
} find_id;

static int match_id(void *ctx, const store_doc_info *d)
{
    find_id *f = ctx;
    if (d->id != f->id)
        return 0;
    snprintf(f->path, sizeof f->path, "%s", d->path);
    f->found = true;
    return 1; /* stop */
}

/* Is path a file Cairn stored: directly inside home/LIB_UPLOADS_DIR/? Both
** sides resolved, so a symlinked home or "a/../b" cannot pass for it. */
bool lib_is_upload_copy(const lib *l, const char *path)
{
    char dir[PATH_MAX + 32], real_dir[PATH_MAX], real_parent[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/" LIB_UPLOADS_DIR, l->home);
    if (!realpath(dir, real_dir))
        return false;
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path || !slash[1])
        return false;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - path), path);
    if (!realpath(parent, real_parent) || strcmp(real_parent, real_dir))
        return false;
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int lib_remove(lib *l, int64_t id, const char *path, bool *deleted, cn_err *err)
{
    if (deleted)
        *deleted = false;
    find_id f = {.id = id};
    if (id > 0) {
        int rc = store_list(l->st, match_id, &f, err);
        if (rc < 0)
            return rc;
        if (!f.found)
            return cn_fail(err, CN_ENOTFOUND, "document %lld: not in the library", (long long)id);
    } else {
        snprintf(f.path, sizeof f.path, "%s", path);
    }
    bool copy = lib_is_upload_copy(l, f.path); /* decided before: the rows say where it came from */
    int rc = id > 0 ? store_remove_id(l->st, id, err) : store_remove_path(l->st, f.path, err);
    if (rc || !copy)
        return rc;
    if (unlink(f.path) != 0 && errno != ENOENT)
        return cn_fail(err, CN_EIO, "removed from the library, but its stored upload %s could not "
                       "be deleted: %s", f.path, strerror(errno));
    if (deleted)
        *deleted = true;
    return CN_OK;
}
