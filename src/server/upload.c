/*
** upload.c: POST /api/library/documents. Uploads (multipart/form-data) are
** streamed to <home>/documents/ as they arrive, never held in memory, put
** in place under a name no other file has, then added and embedded by a
** thread that reports progress to the client as one JSON object per line
** (progress.c).
*/
#include "server/srv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- uploads -------------------------------------------------------------------- */

#define MAX_UPLOAD_FILES 32

struct srv_upload {
    struct MHD_PostProcessor *pp;
    char dir[PATH_MAX];
    char names[MAX_UPLOAD_FILES][128];
    char tmp[MAX_UPLOAD_FILES][PATH_MAX];
    int n;
    lib_upfile *f;   /* the file being received: sealed when the library is encrypted */
    lib_sealkey *key;
    size_t bytes;
    srv_error err;
    bool failed;
};

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    srv_req *r = cls;
    srv_upload *u = r->up;
    (void)kind;
    (void)key;
    (void)content_type;
    (void)transfer_encoding;
    if (!filename)
        return MHD_YES; /* a plain form field: nothing to keep */
    if (off == 0) {
        if (u->f) {
            cn_err ce = {0};
            int rc = lib_upfile_close(u->f, &ce); /* the previous file's last bytes: a full
                                                    disk shows here */
            u->f = NULL;
            if (rc != 0) {
                srv_fail(&u->err, 507, "file", "storing %s failed: %s", u->names[u->n - 1],
                         ce.msg);
                return MHD_NO;
            }
        }
        if (u->n == MAX_UPLOAD_FILES) {
            srv_fail(&u->err, 400, "file", "at most %d files per upload", MAX_UPLOAD_FILES);
            return MHD_NO;
        }
        srv_safe_filename(filename, u->names[u->n], sizeof u->names[u->n]);
        snprintf(u->tmp[u->n], sizeof u->tmp[u->n], "%.3900s/.upload-%d-%p-%d", u->dir,
                 (int)getpid(), (void *)u, u->n);
        cn_err ce = {0};
        if (lib_upfile_create(u->key, u->tmp[u->n], &u->f, &ce) != CN_OK) {
            srv_fail(&u->err, 500, NULL, "%s", ce.msg);
            return MHD_NO;
        }
        u->n++;
        u->bytes = 0;
    }
    if (!u->f)
        return MHD_YES;
    u->bytes += size;
    if (u->bytes > r->s->o.lim.max_upload) {
        srv_fail(&u->err, 413, "file", "%s is larger than the upload limit of %zu bytes",
                 u->names[u->n - 1], r->s->o.lim.max_upload);
        return MHD_NO;
    }
    cn_err ce = {0};
    if (size && lib_upfile_write(u->f, data, size, &ce) != CN_OK) {
        srv_fail(&u->err, 500, NULL, "writing the upload failed: %s", ce.msg);
        return MHD_NO;
    }
    return MHD_YES;
}

int srv_upload_begin(srv_req *r, srv_error *e)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "multipart/form-data", 19))
        return srv_fail(e, 415, NULL, "upload documents as multipart/form-data (field 'file')");
    srv_upload *u = cn_calloc(1, sizeof *u);
    if (!u)
        return srv_fail(e, 500, NULL, "out of memory");
    r->up = u;
    snprintf(u->dir, sizeof u->dir, "%.4000s/" LIB_UPLOADS_DIR, r->s->home);
    cn_err err = {0};
    if (cn_mkdirs(u->dir, &err))
        return srv_fail(e, 500, NULL, "%s", err.msg);
    /* an encrypted library's copies are sealed as they arrive, with a key
    ** held for this upload only; a handle's data key is set when it opens and
    ** only read after, so the writer's is read here without taking it */
    const lib *l = r->s->writer;
    u->key = l ? lib_seal_key(l) : NULL;
    if (l && lib_encrypted(l, NULL) && !u->key)
        return srv_fail(e, 500, NULL, "out of (locked) memory");
    u->pp = MHD_create_post_processor(r->conn, 65536, on_part, r);
    if (!u->pp)
        return srv_fail(e, 400, NULL, "malformed multipart/form-data header (no boundary?)");
    return 0;
}

/* Close and delete the files of an upload not (yet) moved into place. */
static void discard_files(srv_upload *u)
{
    if (u->f)
        lib_upfile_abort(u->f); /* removes its file */
    u->f = NULL;
    for (int i = 0; i < u->n; i++)
        if (u->tmp[i][0])
            unlink(u->tmp[i]);
    u->n = 0;
}

int srv_upload_data(srv_req *r, const char *data, size_t n, srv_error *e)
{
    srv_upload *u = r->up;
    if (u->failed)
        return -1;
    if (MHD_post_process(u->pp, data, n) != MHD_YES) {
        u->failed = true;
        discard_files(u); /* gone before the error is answered */
        if (u->err.status)
            *e = u->err;
        else
            srv_fail(e, 400, NULL, "malformed multipart/form-data body");
        return -1;
    }
    return 0;
}

void srv_upload_free(srv_req *r)
{
    srv_upload *u = r->up;
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    discard_files(u); /* not moved into place: an upload that failed */
    lib_seal_key_free(u->key);
    free(u);
    r->up = NULL;
}

static void on_ingest(void *ctx, const lib_event *ev)
{
    static const char *const outcomes[] = {"", "added", "updated", "unchanged", "failed",
                                           "pruned"};
    srv_bg *g = ctx;
    json_t *o = json_object();
    if (ev->kind == LIB_EV_FILE) {
        const char *b = strrchr(ev->path, '/');
        json_object_set_new(o, "event", json_string("file"));
        json_object_set_new(o, "name", json_string(b ? b + 1 : ev->path));
        json_object_set_new(o, "outcome", json_string(ev->outcome > 0 && ev->outcome <= 5
                                                          ? outcomes[ev->outcome]
                                                          : "?"));
        json_object_set_new(o, "pages", json_integer(ev->pages));
        json_object_set_new(o, "passages", json_integer(ev->passages));
        json_object_set_new(o, "error", ev->error ? json_string(ev->error) : json_null());
        json_object_set_new(o, "files_done", json_integer(ev->files_done));
        json_object_set_new(o, "files_total", json_integer(ev->files_total));
    } else if (ev->kind == LIB_EV_OCR) {
        const char *b = strrchr(ev->path, '/');
        json_object_set_new(o, "event", json_string("ocr"));
        json_object_set_new(o, "name", json_string(b ? b + 1 : ev->path));
        json_object_set_new(o, "page", json_integer(ev->pages));
        json_object_set_new(o, "done", json_integer(ev->embed_done));
        json_object_set_new(o, "total", json_integer(ev->embed_total));
        json_object_set_new(o, "eta_s", json_real(ev->eta_s));
        json_object_set_new(o, "error", ev->error ? json_string(ev->error) : json_null());
    } else if (ev->kind == LIB_EV_EMBED) {
        json_object_set_new(o, "event", json_string("embed"));
        json_object_set_new(o, "done", json_integer(ev->embed_done));
        json_object_set_new(o, "total", json_integer(ev->embed_total));
        json_object_set_new(o, "eta_s", json_real(ev->eta_s));
    } else {
        json_object_set_new(o, "event", json_string("scan"));
        json_object_set_new(o, "files_total", json_integer(ev->files_total));
    }
    srv_bg_line(g, o);
}

static void *ingest_main(void *arg)
{
    srv_bg *g = arg;
    srv *s = g->s;
    srv_error e;
    json_t *fin = json_object();
    json_object_set_new(fin, "event", json_string("done"));
    lib *l = srv_lib_acquire_writer(s, -1, &e); /* after any earlier upload; reads go on */
    if (!l) {
        json_object_set_new(fin, "error", json_string(e.msg));
    } else {
        lib_add_stats st = {0};
        cn_err err = {0};
        int rc = lib_add(l, (const char *const *)g->paths, g->n, false, on_ingest, g, &st, &err);
        /* scanned pages: read now, in this background job; without tesseract's
        ** data they stay queued and the reply says what to install */
        lib_ocr_stats os = {0};
        if (!rc) {
            cn_err oe = {0};
            int n = lib_ocr(l, NULL, s->o.threads, on_ingest, g, &os, &oe);
            if (n < 0)
                json_object_set_new(fin, "ocr_error", json_string(oe.msg));
        }
        json_object_set_new(fin, "ocr_pages", json_integer(os.pages));
        int embedded = 0;
        if (!rc && s->o.embed_model) {
            embedded = lib_index(l, s->o.embed_model, s->o.threads, on_ingest, g, &err);
            rc = embedded < 0 ? embedded : 0;
        }
        srv_lib_release(s, l, true);
        json_object_set_new(fin, "added", json_integer(st.added));
        json_object_set_new(fin, "updated", json_integer(st.updated));
        json_object_set_new(fin, "unchanged", json_integer(st.unchanged));
        json_object_set_new(fin, "failed", json_integer(st.failed + g->not_stored));
        json_object_set_new(fin, "embedded", json_integer(CN_MAX(embedded, 0)));
        if (rc)
            json_object_set_new(fin, "error", json_string(err.msg));
    }
    srv_bg_finish(g, fin);
    return NULL;
}

/* Move an upload into dir under its name, never over an existing file: a
** name taken already (an earlier upload, or one in this batch) becomes
** "name (2).ext", "name (3).ext", ... so both documents stay; name is set to
** the one used. rename(2) would replace silently; RENAME_NOREPLACE (or
** link(2) where the file system lacks it) fails instead, with no window
** between a check and the move. */
static int place_upload(const char *tmp, const char *dir, char name[128], char *final,
                        size_t cap)
{
    char stem[128], try[160];
    snprintf(stem, sizeof stem, "%s", name);
    const char *dot = strrchr(name, '.');
    size_t ext_at = dot && dot != name ? (size_t)(dot - name) : strlen(name);
    stem[ext_at] = 0;
    for (int k = 1; k < 1000; k++) {
        if (k == 1)
            snprintf(try, sizeof try, "%s", name);
        else
            snprintf(try, sizeof try, "%.100s (%d)%.20s", stem, k, name + ext_at);
        snprintf(final, cap, "%s/%s", dir, try);
        int rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            rc = link(tmp, final);
            if (rc == 0)
                unlink(tmp);
        }
        if (rc == 0) {
            snprintf(name, 128, "%.127s", try); /* fits: 100 + " (999)" + 20 */
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

int srv_lib_upload(srv_req *r)
{
    srv_upload *u = r->up;
    if (!u || u->n == 0)
        return srv_reply_errorf(r, 400, "file", "no file in the upload (send multipart/form-data "
                                "with a file field)");
    if (u->f) {
        cn_err ce = {0};
        int rc = lib_upfile_close(u->f, &ce); /* the last buffered bytes are written now */
        u->f = NULL;
        if (rc != 0)
            return srv_reply_errorf(r, 507, "file", "storing %s failed: %s", u->names[u->n - 1],
                                    ce.msg);
    }
    srv_bg *g = srv_bg_new(r->s);
    if (!g)
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    json_t *o = json_object(), *names = json_array(), *left_out = json_array();
    for (int i = 0; i < u->n; i++) {
        char final[PATH_MAX + 200];
        if (place_upload(u->tmp[i], u->dir, u->names[i], final, sizeof final) != 0) {
            /* the rest of the batch goes on; this one is reported, not dropped */
            json_array_append_new(left_out, json_pack("{s:s,s:s}", "name", u->names[i], "error",
                                                      errno == EEXIST
                                                          ? "too many files of this name"
                                                          : strerror(errno)));
            unlink(u->tmp[i]); /* now, not when the connection is done */
            u->tmp[i][0] = 0;
            continue;
        }
        u->tmp[i][0] = 0;
        g->paths[g->n] = strdup(final);
        if (g->paths[g->n]) {
            g->n++;
            json_array_append_new(names, json_string(u->names[i]));
        }
    }
    g->not_stored = (int)json_array_size(left_out);
    json_object_set_new(o, "event", json_string("uploaded"));
    json_object_set_new(o, "files", names);
    json_object_set_new(o, "not_stored", left_out);
    srv_bg_line(g, o);
    return srv_bg_start(r, g, ingest_main);
}
