/*
** install.c: installed models. A model is installed only after its bytes
** hash to the published sha256, its GGUF metadata matches what the catalog
** says it is, and a smoke test ran it (a few tokens, or one embedding).
** Installing is a rename within models/, then a manifest written
** atomically; the version it replaces stays on disk for rollback.
*/
#include "models/models_int.h"
#include "engine/engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define DISK_MARGIN ((int64_t)64 << 20)

static int models_dir(const char *home, char *out, size_t cap, cn_err *err)
{
    if (snprintf(out, cap, "%s/models", home) >= (int)cap)
        return cn_fail(err, CN_EINVAL, "%s: path too long", home);
    return cn_mkdirs(out, err);
}

static int check_name(const char *name, cn_err *err)
{
    return mdl_name_ok(name) ? CN_OK
                             : cn_fail(err, CN_EINVAL, "'%.80s' is not a model name (a-z, 0-9, "
                                       "'.', '-', '_'; at most 64)", name);
}

/* ---- hashing --------------------------------------------------------------- */

int mdl_hash_file(const char *path, char hex[65], const char *name, mdl_progress_fn fn,
                  void *ctx, cn_err *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return cn_fail(err, CN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    crypto_hash_sha256_state s;
    crypto_hash_sha256_init(&s);
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = cn_malloc(CHUNK);
    int64_t done = 0;
    double t0 = cn_now(), last = 0;
    int rc = buf ? CN_OK : cn_fail(err, CN_ENOMEM, "out of memory");
    ssize_t n;
    while (!rc && (n = read(fd, buf, CHUNK)) != 0) {
        if (n < 0) {
            rc = cn_fail(err, CN_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
        crypto_hash_sha256_update(&s, buf, (size_t)n);
        done += n;
        double now = cn_now();
        if (fn && now - last > 0.2) {
            double rate = done / CN_MAX(now - t0, 1e-3);
            mdl_progress p = {name, "verify", done, st.st_size, rate,
                              (st.st_size - done) / rate, 0, NULL};
            fn(ctx, &p);
            last = now;
        }
    }
    close(fd);
    free(buf);
    if (rc)
        return rc;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&s, h);
    sodium_bin2hex(hex, 65, h, sizeof h);
    return CN_OK;
}

/* ---- manifests --------------------------------------------------------------- */

static int write_json_atomic(const char *path, json_t *o, cn_err *err)
{
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    cn_buf b;
    cn_buf_init(&b, (size_t)16 << 20);
    int rc = s && cn_buf_printf(&b, "%s\n", s) == CN_OK
                 ? cn_write_atomic(path, b.data, b.len, 0600, err)
                 : cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    cn_buf_free(&b);
    free(s);
    return rc;
}

static json_t *read_json(const char *path)
{
    char *text;
    size_t len;
    if (cn_read_file(path, 1 << 20, &text, &len, NULL) != CN_OK)
        return NULL;
    json_t *o = json_loadb(text, len, 0, NULL);
    free(text);
    return json_is_object(o) ? o : (json_decref(o), NULL);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *read_manifest(const char *home, const char *name)
{
    char path[PATH_MAX + 200];
    snprintf(path, sizeof path, "%s/models/%s/manifest.json", home, name);
    return read_json(path);
}

static json_t *read_active(const char *home)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/models/active.json", home);
    json_t *o = read_json(path);
    return o ? o : json_object();
}

static int write_active(const char *home, json_t *o, cn_err *err)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/models/active.json", home);
    return write_json_atomic(path, o, err);
}

/* A manifest's version object ({file, size, sha256, ...}) -> the file's path. */
static void version_path(const char *home, const char *name, json_t *v, char *out, size_t cap)
{
    const char *file = jstr(v, "file");
    /* file names are ours (<sha>.gguf), but the manifest is a file on disk:
    ** never let it point outside the model's folder */
    if (!*file || strchr(file, '/') || file[0] == '.')
        file = "invalid";
    snprintf(out, cap, "%s/models/%s/%s", home, name, file);
}

static void fill_installed(const char *home, json_t *m, json_t *active, mdl_installed *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", jstr(m, "name"));
    snprintf(out->role, sizeof out->role, "%s", jstr(m, "role"));
    snprintf(out->arch, sizeof out->arch, "%s", jstr(m, "arch"));
    json_t *cur = json_object_get(m, "current"), *prev = json_object_get(m, "previous");
    version_path(home, out->name, cur, out->path, sizeof out->path);
    out->size = json_integer_value(json_object_get(cur, "size"));
    snprintf(out->sha256, sizeof out->sha256, "%s", jstr(cur, "sha256"));
    snprintf(out->source, sizeof out->source, "%s", jstr(cur, "source"));
    out->verified = json_is_true(json_object_get(cur, "verified"));
    out->active = !strcmp(jstr(active, out->role), out->name);
    if (json_is_object(prev)) {
        out->has_previous = true;
        version_path(home, out->name, prev, out->previous_path, sizeof out->previous_path);
        out->previous_size = json_integer_value(json_object_get(prev, "size"));
        snprintf(out->previous_sha256, sizeof out->previous_sha256, "%s", jstr(prev, "sha256"));
    }
    json_t *stg = json_object_get(m, "staged");
    if (json_is_object(stg)) {
        out->has_staged = true;
        version_path(home, out->name, stg, out->staged_path, sizeof out->staged_path);
        out->staged_size = json_integer_value(json_object_get(stg, "size"));
        snprintf(out->staged_sha256, sizeof out->staged_sha256, "%s", jstr(stg, "sha256"));
    }
}

int mdl_get(const char *home, const char *name, mdl_installed *out, cn_err *err)
{
    int rc = check_name(name, err);
    if (rc)
        return rc;
    json_t *m = read_manifest(home, name);
    if (!m)
        return cn_fail(err, CN_ENOTFOUND, "no installed model '%s' (see `cairn models list`)",
                       name);
    json_t *active = read_active(home);
    fill_installed(home, m, active, out);
    json_decref(m);
    json_decref(active);
    return CN_OK;
}

static int cmp_inst(const void *a, const void *b)
{
    return strcmp(((const mdl_installed *)a)->name, ((const mdl_installed *)b)->name);
}

int mdl_list(const char *home, mdl_installed **out, int *n, cn_err *err)
{
    *out = NULL;
    *n = 0;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/models", home);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? CN_OK
                               : cn_fail(err, CN_EIO, "%s: cannot read: %s", dir, strerror(errno));
    json_t *active = read_active(home);
    struct dirent *de;
    int cap = 0, rc = CN_OK;
    while ((de = readdir(d)) && !rc) {
        if (!mdl_name_ok(de->d_name))
            continue;
        json_t *m = read_manifest(home, de->d_name);
        if (!m)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            mdl_installed *p = cn_realloc_array(*out, (size_t)cap, sizeof **out);
            if (!p)
                rc = cn_fail(err, CN_ENOMEM, "out of memory");
            else
                *out = p;
        }
        if (!rc)
            fill_installed(home, m, active, &(*out)[(*n)++]);
        json_decref(m);
    }
    closedir(d);
    json_decref(active);
    if (*n > 1)
        qsort(*out, (size_t)*n, sizeof **out, cmp_inst);
    return rc;
}

/* ---- checking a model file before it is installed --------------------------- */

/* The encoder architectures the engine runs (bert.c): embedding models and
** rerankers; everything else is taken for a decoder. */
static bool encoder_arch(const char *arch)
{
    return !strcmp(arch, "bert") || !strcmp(arch, "jina-bert-v2");
}

/* The role of a file by what it is: an encoder with a classification head
** is a reranker. */
static const char *role_of_file(const char *path, const char *arch)
{
    if (!encoder_arch(arch))
        return "chat";
    eng_encoder *e = NULL;
    eng_opts eo = {.n_batch = 32};
    bool rr = eng_encoder_open(&e, path, &eo, NULL) == CN_OK && eng_encoder_is_reranker(e);
    eng_encoder_close(e);
    return rr ? "rerank" : "embed";
}

/* GGUF metadata against the catalog entry (arch, parameter count); *rank
** (may be NULL) says the file is a cross-encoder. */
static int check_gguf(const char *path, const char *what, const mdl_entry *e, char *arch,
                      size_t arch_cap, bool *rank, cn_err *err)
{
    gguf_file *g;
    int rc = gguf_open(&g, path, err);
    if (rc)
        return rc;
    gguf_str a = {0};
    if (gguf_get_str(g, "general.architecture", &a, NULL) != CN_OK) {
        gguf_close(g);
        return cn_fail(err, CN_EFORMAT, "%s: no general.architecture in its metadata", what);
    }
    snprintf(arch, arch_cap, "%.*s", (int)CN_MIN(a.len, (uint64_t)arch_cap - 1), a.ptr);
    if (rank) {
        char key[96];
        uint32_t pool = 0;
        snprintf(key, sizeof key, "%s.pooling_type", arch);
        *rank = (gguf_get_u32(g, key, &pool, NULL) == CN_OK && pool == 4) ||
                gguf_find_tensor(g, "cls.output.weight") != NULL;
    }
    int64_t params = 0;
    for (int64_t i = 0; i < g->n_tensors; i++)
        params += g->tensors[i].n_elem;
    gguf_close(g);
    if (e && strcmp(arch, e->arch))
        return cn_fail(err, CN_EVERIFY, "%s: architecture is '%s', the catalog says '%s'", what,
                       arch, e->arch);
    double b = params / 1e9;
    if (e && e->params_b > 0 && (b < e->params_b * 0.85 || b > e->params_b * 1.15))
        return cn_fail(err, CN_EVERIFY, "%s: holds %.3g billion parameters, the catalog says "
                       "%.3g", what, b, e->params_b);
    return CN_OK;
}

/* Run it: a few greedy tokens, one embedding, or one scored pair. */
static int smoke_test(const char *path, const char *role, const char *what, cn_err *err)
{
    eng_opts eo = {.n_ctx = 128, .n_batch = 32};
    tok_vocab *v = NULL;
    int rc;
    if (!strcmp(role, "rerank")) {
        eng_encoder *e = NULL;
        rc = eng_encoder_open(&e, path, &eo, err);
        if (!rc) /* a file without a classification head is no reranker */
            rc = eng_encoder_expect(e, true, err);
        if (!rc)
            rc = tok_open(&v, eng_encoder_gguf(e), err);
        const char *doc = "Close the valve before the pump is opened.";
        size_t dlen = strlen(doc);
        float score = NAN;
        if (!rc)
            rc = eng_rerank_texts(e, v, "Where is the safety valve?", 26, &doc, &dlen, 1, &score,
                                  NULL, err);
        if (!rc && !isfinite(score))
            rc = cn_fail(err, CN_EVERIFY, "%s: smoke test: the reranker's score is not finite",
                         what);
        tok_close(v);
        eng_encoder_close(e);
    } else if (!strcmp(role, "embed")) {
        eng_encoder *e = NULL;
        rc = eng_encoder_open(&e, path, &eo, err);
        if (!rc) /* a reranker's [CLS] vector is no sentence embedding */
            rc = eng_encoder_expect(e, false, err);
        if (!rc)
            rc = tok_open(&v, eng_encoder_gguf(e), err);
        float *vec = e ? cn_malloc(sizeof(float) * (size_t)eng_encoder_dim(e)) : NULL;
        const char *text = "Where is the safety valve?";
        size_t len = strlen(text);
        if (!rc)
            rc = vec ? eng_embed_texts(e, v, &text, &len, 1, vec, NULL, err)
                     : cn_fail(err, CN_ENOMEM, "out of memory");
        if (!rc) {
            double ss = 0;
            for (int i = 0; i < eng_encoder_dim(e); i++)
                ss += (double)vec[i] * vec[i];
            if (!isfinite(ss) || fabs(ss - 1) > 1e-3)
                rc = cn_fail(err, CN_EVERIFY, "%s: smoke test: the embedding is not a unit "
                             "vector (norm² %g)", what, ss);
        }
        free(vec);
        tok_close(v);
        eng_encoder_close(e);
    } else {
        eng_model *m = NULL;
        rc = eng_model_open(&m, path, &eo, err);
        if (!rc)
            rc = tok_open(&v, eng_model_gguf(m), err);
        int32_t ids[32];
        int n = rc ? 0 : tok_encode(v, "The valve", 9, true, false, ids, 32, err);
        if (!rc && n <= 0)
            rc = n < 0 ? n : cn_fail(err, CN_EVERIFY, "%s: smoke test: empty prompt", what);
        if (!rc)
            rc = eng_decode(m, ids, n, 0, err);
        for (int step = 0; !rc && step < 4; step++) {
            const float *lg = eng_model_logits(m);
            int nv = eng_model_hparams(m)->n_vocab;
            for (int i = 0; i < nv; i++)
                if (!isfinite(lg[i])) {
                    rc = cn_fail(err, CN_EVERIFY, "%s: smoke test: the model computes "
                                 "non-finite logits", what);
                    break;
                }
            int32_t next = eng_argmax(lg, nv);
            if (!rc)
                rc = eng_decode(m, &next, 1, n + step, err);
        }
        tok_close(v);
        eng_model_close(m);
    }
    if (rc && err && !strstr(err->msg, "smoke test")) {
        char why[sizeof err->msg]; /* the message goes into the buffer it is read from */
        snprintf(why, sizeof why, "%s", err->msg);
        cn_fail(err, rc, "%s: smoke test failed: %s", what, why);
    }
    return rc;
}

/* ---- installing ----------------------------------------------------------------- */

static void iso_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Copy src to dst atomically (cn_atomic_*), so dst is either absent (or
** its old self) or whole. */
static int copy_file(const char *src, const char *dst, int mode, cn_err *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return cn_fail(err, CN_EIO, "%s: cannot open: %s", src, strerror(errno));
    cn_atomic_file f;
    int rc = cn_atomic_open(&f, dst, mode, err);
    char buf[1 << 16];
    ssize_t n = 0;
    while (!rc && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        rc = n < 0 ? cn_fail(err, CN_EIO, "%s: read error: %s", src, strerror(errno))
                   : cn_atomic_write(&f, buf, (size_t)n, err);
    }
    close(in);
    if (!rc)
        return cn_atomic_commit(&f, err);
    cn_atomic_abort(&f);
    return rc;
}

/* Move file (already verified) into models/NAME/ as the current version,
** the old current becoming previous; the old previous is deleted. */
static int install_file(const char *home, const char *name, const char *role, const char *arch,
                        const char *file, int64_t size, const char *sha, const char *source,
                        bool verified, bool copy, cn_err *err)
{
    char dir[PATH_MAX + 80], dest[PATH_MAX + 160], mpath[PATH_MAX + 180];
    snprintf(dir, sizeof dir, "%s/models/%s", home, name);
    int rc = cn_mkdirs(dir, err);
    if (rc)
        return rc;
    char fname[40];
    snprintf(fname, sizeof fname, "%.16s.gguf", sha);
    snprintf(dest, sizeof dest, "%s/%s", dir, fname);
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    if (copy) {
        rc = copy_file(file, dest, 0600, err);
    } else if (rename(file, dest) != 0) {
        rc = cn_fail(err, CN_EIO, "%s: cannot move into %s: %s", file, dir, strerror(errno));
    }
    if (rc)
        return rc;
    json_t *old = read_manifest(home, name);
    json_t *old_cur = old ? json_object_get(old, "current") : NULL;
    json_t *old_prev = old ? json_object_get(old, "previous") : NULL;
    char when[32], drop[PATH_MAX + 200] = "";
    iso_now(when, sizeof when);
    json_t *m = json_object(), *cur = json_object();
    json_object_set_new(m, "name", json_string(name));
    json_object_set_new(m, "role", json_string(role));
    json_object_set_new(m, "arch", json_string(arch));
    json_object_set_new(cur, "file", json_string(fname));
    json_object_set_new(cur, "size", json_integer(size));
    json_object_set_new(cur, "sha256", json_string(sha));
    json_object_set_new(cur, "source", json_string(source));
    json_object_set_new(cur, "verified", json_boolean(verified));
    json_object_set_new(cur, "installed", json_string(when));
    json_object_set_new(m, "current", cur);
    if (old_cur && strcmp(jstr(old_cur, "file"), fname)) {
        json_object_set(m, "previous", old_cur);
        if (old_prev && strcmp(jstr(old_prev, "file"), fname))
            version_path(home, name, old_prev, drop, sizeof drop);
    } else if (old_prev) {
        json_object_set(m, "previous", old_prev);
    }
    rc = write_json_atomic(mpath, m, err);
    if (!rc && *drop)
        unlink(drop); /* only after the manifest no longer names it */
    /* no manifest names the new file (a full disk, typically): it would sit
    ** there unlisted, gigabytes nobody can see or remove, so it goes */
    bool named = (old_cur && !strcmp(jstr(old_cur, "file"), fname)) ||
                 (old_prev && !strcmp(jstr(old_prev, "file"), fname));
    if (rc && !named) {
        unlink(dest);
        rmdir(dir); /* only if nothing else is in it */
    }
    json_decref(m);
    json_decref(old);
    if (rc)
        return rc;
    /* the first model of a role becomes the active one */
    json_t *active = read_active(home);
    char apath[PATH_MAX + 200];
    bool have = false;
    const char *cur_active = jstr(active, role);
    if (*cur_active) {
        snprintf(apath, sizeof apath, "%s/models/%s/manifest.json", home, cur_active);
        have = access(apath, F_OK) == 0;
    }
    if (!have) {
        json_object_set_new(active, role, json_string(name));
        rc = write_active(home, active, err);
    }
    json_decref(active);
    return rc;
}

/* Keep file (already verified) in models/NAME/ as the staged version: a
** newer one, offered and not used until `cairn models use NAME@VER`. A
** staged version it replaces is deleted. */
static int stage_file(const char *home, const char *name, const char *file, int64_t size,
                      const char *sha, const char *source, cn_err *err)
{
    char dir[PATH_MAX + 80], dest[PATH_MAX + 160], mpath[PATH_MAX + 180],
        drop[PATH_MAX + 200] = "";
    snprintf(dir, sizeof dir, "%s/models/%s", home, name);
    char fname[40];
    snprintf(fname, sizeof fname, "%.16s.gguf", sha);
    snprintf(dest, sizeof dest, "%s/%s", dir, fname);
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    json_t *m = read_manifest(home, name);
    if (!m)
        return cn_fail(err, CN_ENOTFOUND, "%s: not installed (it was removed meanwhile?)", name);
    if (rename(file, dest) != 0) {
        json_decref(m);
        return cn_fail(err, CN_EIO, "%s: cannot move into %s: %s", file, dir, strerror(errno));
    }
    json_t *old = json_object_get(m, "staged");
    if (json_is_object(old) && strcmp(jstr(old, "file"), fname))
        version_path(home, name, old, drop, sizeof drop);
    char when[32];
    iso_now(when, sizeof when);
    json_object_set_new(m, "staged", json_pack("{s:s, s:I, s:s, s:s, s:b, s:s}", "file", fname,
                                               "size", (json_int_t)size, "sha256", sha, "source",
                                               source, "verified", 1, "installed", when));
    int rc = write_json_atomic(mpath, m, err);
    if (rc)
        unlink(dest);
    else if (*drop)
        unlink(drop);
    json_decref(m);
    return rc;
}

/* Free space where dir lives; unknown counts as enough (the download's
** own reservation, posix_fallocate, still catches a full disk). */
static int64_t free_bytes(const char *dir)
{
    int64_t n = mdl_free_bytes(dir);
    return n < 0 ? INT64_MAX : n;
}

static void fmt_size(int64_t b, char *out, size_t cap)
{
    if (b >= (int64_t)1 << 30)
        snprintf(out, cap, "%.2f GB", b / 1e9);
    else
        snprintf(out, cap, "%.1f MB", b / 1e6);
}

/* The pull itself, under the model's download lock (mdl_pull); with stage,
** the new version is kept beside the current one instead (mdl_stage). */
static int pull_locked(const char *home, const mdl_entry *e, const mdl_dl_opts *o, bool stage,
                       cn_err *err)
{
    char dir[PATH_MAX], part_dir[PATH_MAX + 16], partial[PATH_MAX + 120], state[PATH_MAX + 130];
    int rc = models_dir(home, dir, sizeof dir, err);
    if (rc)
        return rc;
    if (!strcmp(e->role, "rerank") && !encoder_arch(e->arch))
        return cn_fail(err, CN_EUNSUPPORTED, "%s: a reranker of architecture '%s', which Cairn's "
                       "engine cannot run (it runs bert and jina-bert-v2 cross-encoders): refused "
                       "before downloading", e->name, e->arch);
    /* the digest is what ties the bytes to the signed catalog: without one
    ** anything the server (or a redirect) sends would be installed */
    if (!mdl_sha_ok(e->sha256))
        return cn_fail(err, CN_EVERIFY, "%s: the catalog publishes no sha256 for this model, so "
                       "a download could not be verified: refused (a file you trust can be "
                       "installed with `cairn models import FILE`)", e->name);
    mdl_installed inst;
    int have_it = mdl_get(home, e->name, &inst, NULL);
    if (have_it == CN_OK && !strcmp(inst.sha256, e->sha256))
        return CN_OK; /* this exact file is installed */
    if (stage && have_it != CN_OK)
        return cn_fail(err, CN_ENOTFOUND, "%s: not installed, so there is nothing to update "
                       "(`cairn models pull %s`)", e->name, e->name);
    if (stage && inst.has_staged && !strcmp(inst.staged_sha256, e->sha256))
        return CN_OK; /* ready already */
    snprintf(part_dir, sizeof part_dir, "%s/.partial", dir);
    if ((rc = cn_mkdirs(part_dir, err)))
        return rc;
    snprintf(partial, sizeof partial, "%s/%s.gguf", part_dir, e->name);
    snprintf(state, sizeof state, "%s.state", partial);
    /* A size the publisher only rounded (size_exact false): the server says
    ** the exact length, which must be close to it. That length is used for
    ** the download (ranges, resume) and the size check; the sha256 is what
    ** ties the bytes to the catalog, and the space check counts the larger
    ** of the two sizes. */
    int64_t size = e->size;
    if (!e->size_exact) {
        if ((rc = mdl_probe_size(e->url, &size, err)))
            return rc;
        if ((double)size < (double)e->size * 0.9 || (double)size > (double)e->size * 1.1)
            return cn_fail(err, CN_EVERIFY, "%s: the server's file is %lld bytes, not about "
                           "%lld as the catalog says (it gives an approximate size): refused "
                           "before downloading", e->name, (long long)size, (long long)e->size);
    }
    /* space: a resumed download has reserved its file already */
    int64_t need = (access(state, F_OK) == 0 ? 0 : CN_MAX(size, e->size)) + DISK_MARGIN;
    int64_t have = free_bytes(dir);
    if (have < need) {
        char a[32], b[32];
        fmt_size(need, a, sizeof a);
        fmt_size(have, b, sizeof b);
        return cn_fail(err, CN_EIO, "not enough disk space in %s for %s: %s needed, %s free",
                       dir, e->name, a, b);
    }
    mdl_dl_opts d = o ? *o : (mdl_dl_opts){0};
    d.name = e->name;
    if ((rc = mdl_download(e->url, size, partial, &d, err))) {
        if (rc == CN_EVERIFY) { /* the server's file is not this one: nothing to resume */
            unlink(partial);
            unlink(state);
        }
        return rc; /* otherwise the partial data stays for the next attempt */
    }

    /* verify: size, hash, metadata, smoke test; any failure removes the file */
    char sha[65], arch[32] = "", what[PATH_MAX + 200];
    snprintf(what, sizeof what, "%s (downloaded from %s)", e->name, e->url);
    struct stat st;
    if (stat(partial, &st) != 0)
        rc = cn_fail(err, CN_EIO, "%s: cannot stat: %s", partial, strerror(errno));
    else if (st.st_size != size)
        rc = cn_fail(err, CN_EVERIFY, "%s: size is %lld bytes, %s %lld", what,
                     (long long)st.st_size, e->size_exact ? "the catalog says" : "the server said",
                     (long long)size);
    if (!rc)
        rc = mdl_hash_file(partial, sha, e->name, d.fn, d.ctx, err);
    if (!rc && strcmp(sha, e->sha256))
        rc = cn_fail(err, CN_EVERIFY, "%s: sha256 mismatch: expected %s, got %s (corrupted or "
                     "tampered with%s)", what, e->sha256, sha,
                     e->pinned ? "" : "; the URL is not pinned, so the file may have been "
                                      "re-uploaded");
    if (!rc)
        rc = check_gguf(partial, what, e, arch, sizeof arch, NULL, err);
    if (!rc && d.fn) {
        mdl_progress p = {e->name, "smoke-test", 0, 0, 0, 0, 0, NULL};
        d.fn(d.ctx, &p);
    }
    if (!rc)
        rc = smoke_test(partial, e->role, what, err);
    if (rc) {
        unlink(partial);
        unlink(state);
        return rc;
    }
    if (d.fn) {
        mdl_progress p = {e->name, "install", size, size, 0, 0, 0, NULL};
        d.fn(d.ctx, &p);
    }
    rc = stage ? stage_file(home, e->name, partial, size, sha, e->url, err)
               : install_file(home, e->name, e->role, arch, partial, size, sha, e->url, true,
                              false, err);
    if (rc)
        unlink(partial);
    return rc;
}

/* An exclusive lock on NAME's download, models/.partial/NAME.lock, held
** for a whole pull and by mdl_remove: a second pull of the same model (in
** another terminal, or the web UI) would otherwise truncate or race the
** first one's file, and a removal would pull it from under the download.
** flock: the kernel drops it when the process dies (kill -9 included).
** Fills path, sets *fd; CN_ELIMIT when someone else holds it. */
static int download_lock(const char *part_dir, const char *name, char *path, size_t cap,
                         int *fd, cn_err *err)
{
    snprintf(path, cap, "%s/%s.lock", part_dir, name);
    for (int tries = 0; tries < 8; tries++) {
        int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (f < 0)
            return cn_fail(err, CN_EIO, "%s: cannot create: %s", path, strerror(errno));
        if (flock(f, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(f);
            if (e == EWOULDBLOCK)
                return cn_fail(err, CN_ELIMIT, "%s is being downloaded right now (another "
                               "`cairn models pull`, or the web page): wait for it or stop it "
                               "first", name);
            return cn_fail(err, CN_EIO, "%s: cannot lock: %s", path, strerror(e));
        }
        /* the holder before us removes the file as it lets go: the lock
        ** counts only if it is on the file that is at path now */
        struct stat a, b;
        if (fstat(f, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            *fd = f;
            return CN_OK;
        }
        close(f);
    }
    return cn_fail(err, CN_EIO, "%s: cannot lock (it keeps being replaced)", path);
}

static void download_unlock(const char *path, int fd)
{
    unlink(path); /* before the close: nobody can take a lock on a file about to go */
    close(fd);
}

static int pull_or_stage(const char *home, const mdl_entry *e, const mdl_dl_opts *o, bool stage,
                         cn_err *err)
{
    char dir[PATH_MAX], part_dir[PATH_MAX + 16], lock[PATH_MAX + 100];
    int rc = check_name(e->name, err), fd = -1;
    if (!rc)
        rc = models_dir(home, dir, sizeof dir, err);
    if (rc)
        return rc;
    snprintf(part_dir, sizeof part_dir, "%s/.partial", dir);
    if ((rc = cn_mkdirs(part_dir, err)) ||
        (rc = download_lock(part_dir, e->name, lock, sizeof lock, &fd, err)))
        return rc;
    rc = pull_locked(home, e, o, stage, err);
    download_unlock(lock, fd);
    return rc;
}

int mdl_pull(const char *home, const mdl_entry *e, const mdl_dl_opts *o, cn_err *err)
{
    return pull_or_stage(home, e, o, false, err);
}

int mdl_stage(const char *home, const mdl_entry *e, const mdl_dl_opts *o, cn_err *err)
{
    return pull_or_stage(home, e, o, true, err);
}

int mdl_import(const char *home, const char *file, const char *name, const char *role,
               const mdl_catalog *c, mdl_progress_fn fn, void *ctx, mdl_installed *out,
               cn_err *err)
{
    char dir[PATH_MAX], nm[80], arch[32] = "", sha[65];
    int rc = models_dir(home, dir, sizeof dir, err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(file, &st) != 0)
        return cn_fail(err, CN_ENOTFOUND, "%s: %s", file, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return cn_fail(err, CN_EINVAL, "%s: not a regular file", file);
    if (!name) { /* from the file name: lower case, allowed characters only */
        const char *b = strrchr(file, '/');
        b = b ? b + 1 : file;
        size_t k = 0;
        for (const char *p = b; *p && k < 64; p++) {
            char ch = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            if (!strcmp(p, ".gguf") || !strcmp(p, ".GGUF"))
                break;
            nm[k++] = strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", ch) ? ch : '-';
        }
        nm[k] = 0;
        name = nm;
    }
    if ((rc = check_name(name, err)))
        return rc;
    /* a quick look first, so a file that is not a model is not copied */
    bool rank = false;
    if ((rc = check_gguf(file, file, NULL, arch, sizeof arch, &rank, err)))
        return rc;
    if (!role)
        role = rank ? "rerank" : role_of_file(file, arch);
    if (strcmp(role, "chat") && strcmp(role, "embed") && strcmp(role, "rerank"))
        return cn_fail(err, CN_EINVAL, "role '%s': expected chat, embed or rerank", role);
    if (free_bytes(dir) < st.st_size + DISK_MARGIN)
        return cn_fail(err, CN_EIO, "not enough disk space in %s to copy %s", dir, file);
    char part_dir[PATH_MAX + 16], lock[PATH_MAX + 100], staged[PATH_MAX + 120];
    int fd = -1;
    snprintf(part_dir, sizeof part_dir, "%s/.partial", dir);
    if ((rc = cn_mkdirs(part_dir, err)) ||
        (rc = download_lock(part_dir, name, lock, sizeof lock, &fd, err)))
        return rc;
    /* everything is checked on our own copy, which is what gets installed:
    ** the user's file may still be changing (a browser still saving it),
    ** and the recorded sha256 must be that of the installed bytes */
    snprintf(staged, sizeof staged, "%s/%s.import", part_dir, name);
    rc = copy_file(file, staged, 0600, err);
    if (!rc)
        rc = check_gguf(staged, file, NULL, arch, sizeof arch, NULL, err);
    if (!rc && stat(staged, &st) != 0)
        rc = cn_fail(err, CN_EIO, "%s: cannot stat: %s", staged, strerror(errno));
    if (!rc)
        rc = mdl_hash_file(staged, sha, name, fn, ctx, err);
    /* a file the catalog publishes: installed as verified */
    const mdl_entry *e = NULL;
    for (int i = 0; !rc && c && i < c->n; i++)
        if (!strcmp(c->models[i].sha256, sha))
            e = &c->models[i];
    if (!rc && fn) {
        mdl_progress p = {name, "smoke-test", 0, 0, 0, 0, 0, NULL};
        fn(ctx, &p);
    }
    if (!rc)
        rc = smoke_test(staged, role, file, err);
    char source[PATH_MAX + 8];
    snprintf(source, sizeof source, "import:%s", file);
    if (!rc)
        rc = install_file(home, name, role, arch, staged, st.st_size, sha, source, e != NULL,
                          false, err);
    unlink(staged); /* after a failure; gone already (renamed) after success */
    download_unlock(lock, fd);
    return rc || !out ? rc : mdl_get(home, name, out, err);
}

int mdl_export(const char *home, const char *name, const char *dir, cn_err *err)
{
    mdl_installed m;
    int rc = mdl_get(home, name, &m, err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cn_fail(err, CN_ENOTFOUND, "%s: not a directory", dir);
    char dest[PATH_MAX + 200], side[PATH_MAX + 220];
    snprintf(dest, sizeof dest, "%s/%s.gguf", dir, name);
    snprintf(side, sizeof side, "%s/%s.sha256", dir, name);
    if ((rc = copy_file(m.path, dest, 0644, err)))
        return rc;
    /* sha256sum's format, so the other machine can check the copy */
    char line[300];
    int n = snprintf(line, sizeof line, "%s  %s.gguf\n", m.sha256, name);
    return cn_write_atomic(side, line, (size_t)n, 0644, err);
}

int mdl_partials(const char *home, mdl_partial *out, int cap)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/models/.partial", home);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) && n < cap) {
        size_t len = strlen(de->d_name);
        if (len < 12 || strcmp(de->d_name + len - 11, ".gguf.state"))
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        json_t *o = read_json(path);
        json_t *parts = json_object_get(o, "parts");
        int64_t done = 0;
        for (size_t i = 0; i < json_array_size(parts); i++)
            done += json_integer_value(json_array_get(json_array_get(parts, i), 2));
        snprintf(out[n].name, sizeof out[n].name, "%.*s", (int)(len - 11), de->d_name);
        out[n].done = done;
        out[n].size = json_integer_value(json_object_get(o, "size"));
        n += o != NULL;
        json_decref(o);
    }
    closedir(d);
    return n;
}

static int rm_tree_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *de;
    int dfd = dirfd(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlinkat(dfd, de->d_name, 0);
    closedir(d);
    return rmdir(dir);
}

static int remove_locked(const char *home, const char *name, cn_err *err);

int mdl_remove(const char *home, const char *name, cn_err *err)
{
    int rc = check_name(name, err);
    if (rc)
        return rc;
    char part_dir[PATH_MAX + 32], lock[PATH_MAX + 100];
    int fd = -1;
    snprintf(part_dir, sizeof part_dir, "%s/models/.partial", home);
    if (access(part_dir, F_OK) == 0 &&
        (rc = download_lock(part_dir, name, lock, sizeof lock, &fd, err)))
        return rc; /* a pull of it is running */
    rc = remove_locked(home, name, err);
    if (fd >= 0)
        download_unlock(lock, fd);
    return rc;
}

static int remove_locked(const char *home, const char *name, cn_err *err)
{
    int rc;
    char dir[PATH_MAX + 80], partial[PATH_MAX + 120], state[PATH_MAX + 130];
    snprintf(dir, sizeof dir, "%s/models/%s", home, name);
    snprintf(partial, sizeof partial, "%s/models/.partial/%s.gguf", home, name);
    snprintf(state, sizeof state, "%s.state", partial);
    bool had_partial = access(partial, F_OK) == 0 || access(state, F_OK) == 0;
    unlink(partial);
    unlink(state);
    struct stat st;
    if (stat(dir, &st) != 0)
        return had_partial ? CN_OK
                           : cn_fail(err, CN_ENOTFOUND, "no installed model '%s' (see `cairn "
                                     "models list`)", name);
    /* the manifest goes first: a crash midway leaves no half-listed model */
    char mpath[PATH_MAX + 100];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    unlink(mpath);
    if (rm_tree_files(dir) != 0)
        return cn_fail(err, CN_EIO, "%s: cannot remove: %s", dir, strerror(errno));
    json_t *active = read_active(home);
    for (const char *r = "chat"; r; r = !strcmp(r, "chat") ? "embed" : NULL)
        if (!strcmp(jstr(active, r), name))
            json_object_del(active, r);
    rc = write_active(home, active, err);
    json_decref(active);
    return rc;
}

int mdl_rollback(const char *home, const char *name, cn_err *err)
{
    int rc = check_name(name, err);
    if (rc)
        return rc;
    json_t *m = read_manifest(home, name);
    if (!m)
        return cn_fail(err, CN_ENOTFOUND, "no installed model '%s'", name);
    json_t *cur = json_object_get(m, "current"), *prev = json_object_get(m, "previous");
    char ppath[PATH_MAX + 200];
    if (!json_is_object(prev)) {
        json_decref(m);
        return cn_fail(err, CN_ENOTFOUND, "%s: no previous version to roll back to", name);
    }
    version_path(home, name, prev, ppath, sizeof ppath);
    if (access(ppath, R_OK) != 0) {
        json_decref(m);
        return cn_fail(err, CN_ENOTFOUND, "%s: the previous version's file is missing (%s)", name,
                       ppath);
    }
    json_incref(cur);
    json_incref(prev);
    json_object_set_new(m, "current", prev);
    json_object_set_new(m, "previous", cur);
    char mpath[PATH_MAX + 100];
    snprintf(mpath, sizeof mpath, "%s/models/%s/manifest.json", home, name);
    rc = write_json_atomic(mpath, m, err);
    json_decref(m);
    return rc;
}

int mdl_verify(const char *home, const char *name, mdl_progress_fn fn, void *ctx, cn_err *err)
{
    mdl_installed m;
    int rc = mdl_get(home, name, &m, err);
    if (rc)
        return rc;
    char sha[65];
    struct stat st;
    if (stat(m.path, &st) != 0)
        return cn_fail(err, CN_ENOTFOUND, "%s: its file is missing (%s)", name, m.path);
    if (st.st_size != m.size)
        return cn_fail(err, CN_EVERIFY, "%s: %s is %lld bytes, the manifest says %lld", name,
                       m.path, (long long)st.st_size, (long long)m.size);
    if ((rc = mdl_hash_file(m.path, sha, name, fn, ctx, err)))
        return rc;
    if (strcmp(sha, m.sha256))
        return cn_fail(err, CN_EVERIFY, "%s: %s has changed since it was installed (sha256 %s, "
                       "expected %s): pull it again", name, m.path, sha, m.sha256);
    return CN_OK;
}

/* Does ver (hex digits) begin the version's sha256? */
static bool is_version(json_t *v, const char *ver)
{
    const char *sha = jstr(v, "sha256");
    return json_is_object(v) && *ver && !strncmp(sha, ver, strlen(ver));
}

/* NAME@VER: make that version of NAME current. The staged one: the current
** becomes the fallback (previous), and the old fallback is retired, its file
** kept until mdl_cleanup's time has passed. The fallback: as rollback. */
static int use_version(const char *home, const char *name, const char *ver, cn_err *err)
{
    size_t n = strlen(ver);
    if (n < 4 || n > 64 || strspn(ver, "0123456789abcdef") != n)
        return cn_fail(err, CN_EINVAL, "%s@%s: a version is 4 to 64 hex digits of its sha256 "
                       "(`cairn models list` shows them)", name, ver);
    json_t *m = read_manifest(home, name);
    if (!m)
        return cn_fail(err, CN_ENOTFOUND, "no installed model '%s'", name);
    json_t *cur = json_object_get(m, "current"), *prev = json_object_get(m, "previous"),
           *stg = json_object_get(m, "staged");
    int rc = CN_OK;
    if (is_version(cur, ver)) {
        /* current already */
    } else if (is_version(prev, ver)) {
        json_decref(m);
        return mdl_rollback(home, name, err);
    } else if (is_version(stg, ver)) {
        char spath[PATH_MAX + 200];
        version_path(home, name, stg, spath, sizeof spath);
        if (access(spath, R_OK) != 0)
            rc = cn_fail(err, CN_ENOTFOUND, "%s@%s: its file is missing (%s)", name, ver, spath);
        if (!rc && json_is_object(prev)) {
            json_t *retired = json_object_get(m, "retired");
            if (!json_is_array(retired)) {
                retired = json_array();
                json_object_set_new(m, "retired", retired);
            }
            json_t *r = json_deep_copy(prev);
            json_object_set_new(r, "retired_at", json_integer((json_int_t)time(NULL)));
            json_array_append_new(retired, r);
        }
        if (!rc) {
            json_object_set(m, "previous", cur);
            json_object_set(m, "current", stg);
            json_object_del(m, "staged");
            char mpath[PATH_MAX + 100];
            snprintf(mpath, sizeof mpath, "%s/models/%s/manifest.json", home, name);
            rc = write_json_atomic(mpath, m, err);
        }
    } else
        rc = cn_fail(err, CN_ENOTFOUND, "%s has no version %s (`cairn models list` shows the "
                     "current one, the fallback and an update ready)", name, ver);
    json_decref(m);
    return rc;
}

int mdl_use(const char *home, const char *name, cn_err *err)
{
    const char *at = strchr(name, '@');
    char base[128];
    if (at) {
        snprintf(base, sizeof base, "%.*s", (int)CN_MIN((size_t)(at - name), sizeof base - 1),
                 name);
        int r = check_name(base, err);
        if (!r)
            r = use_version(home, base, at + 1, err);
        if (r)
            return r;
        name = base;
    }
    mdl_installed m;
    int rc = mdl_get(home, name, &m, err);
    if (rc)
        return rc;
    json_t *active = read_active(home);
    json_object_set_new(active, m.role, json_string(name));
    rc = write_active(home, active, err);
    json_decref(active);
    return rc;
}

/* Delete the retired versions of every model whose time is up: never a
** file the current, fallback or staged version names. */
int mdl_cleanup(const char *home, int64_t keep_s, int *removed, cn_err *err)
{
    *removed = 0;
    mdl_installed *ins = NULL;
    int n = 0, rc = mdl_list(home, &ins, &n, err);
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < n && !rc; i++) {
        json_t *m = read_manifest(home, ins[i].name);
        json_t *retired = m ? json_object_get(m, "retired") : NULL;
        if (!json_is_array(retired) || json_array_size(retired) == 0) {
            json_decref(m);
            continue;
        }
        const char *keep[3] = {jstr(json_object_get(m, "current"), "file"),
                               jstr(json_object_get(m, "previous"), "file"),
                               jstr(json_object_get(m, "staged"), "file")};
        json_t *left = json_array();
        char drop[8][PATH_MAX + 200];
        int nd = 0;
        size_t k;
        json_t *r;
        json_array_foreach(retired, k, r) {
            int64_t at = json_integer_value(json_object_get(r, "retired_at"));
            const char *f = jstr(r, "file");
            bool named = !strcmp(f, keep[0]) || !strcmp(f, keep[1]) || !strcmp(f, keep[2]);
            if (named)
                continue; /* back in use (pulled again): not retired any more */
            if (now - at < keep_s || nd == 8)
                json_array_append(left, r);
            else
                version_path(home, ins[i].name, r, drop[nd++], sizeof drop[0]);
        }
        json_object_set_new(m, "retired", left);
        char mpath[PATH_MAX + 100];
        snprintf(mpath, sizeof mpath, "%s/models/%s/manifest.json", home, ins[i].name);
        rc = write_json_atomic(mpath, m, err);
        for (int d = 0; d < nd && !rc; d++) /* only once the manifest no longer names them */
            if (unlink(drop[d]) == 0 || errno == ENOENT)
                (*removed)++;
        json_decref(m);
    }
    free(ins);
    return rc;
}

int mdl_active(const char *home, const char *role, char *path, size_t cap, char *name,
               size_t name_cap, cn_err *err)
{
    json_t *active = read_active(home);
    const char *n = jstr(active, role);
    mdl_installed m;
    int rc = *n ? mdl_get(home, n, &m, err)
                : cn_fail(err, CN_ENOTFOUND, "no %s model installed", role);
    if (!rc) {
        snprintf(path, cap, "%s", m.path);
        if (name)
            snprintf(name, name_cap, "%s", m.name);
    }
    json_decref(active);
    return rc;
}

int mdl_resolve(const char *home, const char *given, char *path, size_t cap, cn_err *err)
{
    struct stat st;
    if (strchr(given, '/') || stat(given, &st) == 0 || !mdl_name_ok(given)) {
        snprintf(path, cap, "%s", given);
        return CN_OK;
    }
    mdl_installed m;
    int rc = mdl_get(home, given, &m, NULL);
    if (rc)
        return cn_fail(err, CN_ENOTFOUND, "'%s' is neither a file nor an installed model (see "
                       "`cairn models list`)", given);
    snprintf(path, cap, "%s", m.path);
    return CN_OK;
}
