/*
** loop.c: the library's watched folders followed -- the list read from the
** library, the watcher's batches applied to it, the state reported.
*/
#include "watch/watch.h"
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int wat_resolve(const char *dir, char *out, size_t cap, cn_err *err)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(dir, real) || stat(real, &st) != 0)
        return cn_fail(err, CN_ENOTFOUND, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cn_fail(err, CN_EINVAL, "%s: not a folder (`cairn add` takes single files)", dir);
    if (strlen(real) >= cap)
        return cn_fail(err, CN_ELIMIT, "%s: path too long", dir);
    snprintf(out, cap, "%s", real);
    return CN_OK;
}

typedef struct roots {
    wat_path *p;
    int n;
} roots;

static int collect_path(void *ctx, const char *path, int64_t added_at)
{
    (void)added_at;
    roots *r = ctx;
    void *np = realloc(r->p, (size_t)(r->n + 1) * sizeof *r->p);
    if (!np)
        return CN_ENOMEM;
    r->p = np;
    snprintf(r->p[r->n++], sizeof r->p[0], "%s", path);
    return 0;
}

int wat_roots(lib *l, wat_path **out, int *n, cn_err *err)
{
    roots have = {0};
    int rc = store_watch_list(lib_store(l), collect_path, &have, err);
    if (rc == CN_ENOMEM)
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
    if (rc < 0) {
        free(have.p);
        *out = NULL;
        *n = 0;
        return rc;
    }
    *out = have.p;
    *n = have.n;
    return CN_OK;
}

int wat_follow(lib *l, const char *dir, char *out, size_t cap, bool *already, cn_err *err)
{
    *already = false;
    int rc = wat_resolve(dir, out, cap, err);
    if (rc)
        return rc;
    roots have = {0};
    rc = wat_roots(l, &have.p, &have.n, err);
    for (int k = 0; rc >= 0 && k < have.n; k++) {
        if (!strcmp(have.p[k], out)) {
            *already = true;
            break;
        }
        /* one inotify watch per folder: one inside another followed would
        ** be watched twice, under two roots */
        if (wat_under(out, have.p[k]) || wat_under(have.p[k], out)) {
            bool inside = wat_under(out, have.p[k]);
            rc = cn_fail(err, CN_EINVAL, "%s: %s %s, which is watched already%s", out,
                         inside ? "it is inside" : "it holds", have.p[k],
                         inside ? "" : " (remove that one first to follow the larger folder)");
        }
    }
    free(have.p);
    if (rc < 0)
        return rc;
    return *already ? CN_OK : store_watch_add(lib_store(l), out, err);
}

int wat_unfollow(lib *l, const char *dir, char *out, size_t cap, cn_err *err)
{
    /* a folder gone since is removed by the name it was added with */
    if (wat_resolve(dir, out, cap, err) != CN_OK) {
        char cwd[PATH_MAX];
        if (dir[0] == '/')
            snprintf(out, cap, "%s", dir);
        else
            snprintf(out, cap, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", dir);
        size_t n = strlen(out);
        while (n > 1 && out[n - 1] == '/')
            out[--n] = '\0';
    }
    return store_watch_remove(lib_store(l), out, err);
}

/* ---- applying a batch ---------------------------------------------------------- */

typedef struct dirset {
    char *const *dirs;
    int n;
    lib_progress_fn fn; /* told of each document found gone */
    void *ctx;
} dirset;

/* store_prune's question, limited to documents under the set's folders:
** others are kept whatever their state (a document elsewhere on a disk not
** mounted now is not this folder's business). Gone means ENOENT/ENOTDIR. */
static bool exists_outside(void *ctx, const char *path)
{
    const dirset *ds = ctx;
    bool mine = false;
    for (int i = 0; i < ds->n && !mine; i++)
        mine = wat_under(path, ds->dirs[i]);
    struct stat st;
    if (!mine || stat(path, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
        return true;
    if (ds->fn) {
        lib_event ev = {.kind = LIB_EV_FILE, .path = path, .outcome = LIB_PRUNED, .notes = "",
                        .eta_s = -1};
        ds->fn(ds->ctx, &ev);
    }
    return false;
}

static int add_paths(lib *l, char *const *paths, int n, lib_progress_fn fn, void *ctx,
                     wat_stats *st, cn_err *err)
{
    if (n == 0)
        return CN_OK;
    lib_add_stats as;
    int rc = lib_add(l, (const char *const *)paths, n, false, fn, ctx, &as, err);
    st->added += as.added;
    st->updated += as.updated;
    st->failed += as.failed;
    return rc;
}

static int prune_under(lib *l, char *const *dirs, int n, lib_progress_fn fn, void *ctx,
                       wat_stats *st, cn_err *err)
{
    if (n == 0)
        return CN_OK;
    dirset ds = {dirs, n, fn, ctx};
    int r = store_prune(lib_store(l), exists_outside, &ds, err);
    if (r < 0)
        return r;
    st->removed += r;
    return CN_OK;
}

int wat_apply(lib *l, const wat_batch *b, lib_progress_fn fn, void *ctx, wat_stats *st,
              cn_err *err)
{
    memset(st, 0, sizeof *st);
    int rc = add_paths(l, b->rescan, b->n_rescan, fn, ctx, st, err);
    if (!rc)
        rc = prune_under(l, b->rescan, b->n_rescan, fn, ctx, st, err);
    if (!rc)
        rc = add_paths(l, b->changed, b->n_changed, fn, ctx, st, err);
    for (int i = 0; i < b->n_gone && !rc; i++) {
        store_file_state fs;
        int f = store_find_by_path(lib_store(l), b->gone[i], &fs, err);
        if (f == CN_ENOTFOUND)
            continue;
        rc = f ? f : lib_remove(l, 0, b->gone[i], NULL, err);
        if (!rc) {
            st->removed++;
            if (fn) {
                lib_event ev = {.kind = LIB_EV_FILE, .path = b->gone[i], .outcome = LIB_PRUNED,
                                .notes = "", .eta_s = -1};
                fn(ctx, &ev);
            }
        }
    }
    if (!rc)
        rc = prune_under(l, b->gone_dirs, b->n_gone_dirs, fn, ctx, st, err);
    return rc;
}

/* ---- the loop -------------------------------------------------------------------- */

typedef struct loop {
    const wat_host *h;
    wat_watcher *w;
    wat_path *roots; /* as the library lists them */
    int n_roots;
    wat_stats total;
    char last_path[PATH_MAX];
    const char *last_outcome;
    int64_t last_at; /* unix seconds */
    char error[sizeof(((cn_err *)0)->msg)]; /* the last failure to write to the library, or "" */
    const char *activity;
    int reported_pending;
} loop;

static const char *outcome_name(int o)
{
    switch (o) {
    case LIB_ADDED: return "added";
    case LIB_UPDATED: return "updated";
    case LIB_UNCHANGED: return "unchanged";
    case LIB_PRUNED: return "removed";
    default: return "failed";
    }
}

static void report(loop *lp)
{
    if (!lp->h->on_status)
        return;
    json_t *folders = json_array();
    for (int i = 0; i < lp->n_roots; i++) {
        const char *why = "";
        const char *state = wat_root_state(lp->w, lp->roots[i], &why);
        json_t *f = json_pack("{s:s, s:s}", "path", lp->roots[i], "state", state ? state : "new");
        if (why && *why)
            json_object_set_new(f, "note", json_string(why));
        json_array_append_new(folders, f);
    }
    lp->reported_pending = wat_n_pending(lp->w);
    json_t *o = json_pack("{s:o, s:i, s:i, s:s, s:{s:i, s:i, s:i, s:i}}", "folders", folders,
                          "watches", wat_n_watches(lp->w), "pending", lp->reported_pending,
                          "activity", lp->activity, "totals", "added", lp->total.added,
                          "updated", lp->total.updated, "removed", lp->total.removed, "failed",
                          lp->total.failed);
    if (lp->last_path[0])
        json_object_set_new(o, "last", json_pack("{s:s, s:s, s:I}", "path", lp->last_path,
                                                 "outcome", lp->last_outcome, "at",
                                                 (json_int_t)lp->last_at));
    if (lp->error[0])
        json_object_set_new(o, "error", json_string(lp->error));
    lp->h->on_status(lp->h->ctx, o);
    json_decref(o);
}

static void on_file(void *ctx, const lib_event *ev)
{
    loop *lp = ctx;
    if (ev->kind == LIB_EV_FILE && ev->outcome != LIB_UNCHANGED) {
        snprintf(lp->last_path, sizeof lp->last_path, "%s", ev->path ? ev->path : "");
        lp->last_outcome = outcome_name(ev->outcome);
        lp->last_at = (int64_t)time(NULL);
    }
    if (lp->h->on_file)
        lp->h->on_file(lp->h->ctx, ev);
}

static bool in_list(const wat_path *v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

/* Read the library's list again: follow the new folders, drop the removed
** ones. Returns whether it changed. */
static bool refresh_roots(loop *lp)
{
    cn_err err = {0};
    lib *l = lp->h->acquire(lp->h->ctx, false, &err);
    if (!l) {
        snprintf(lp->error, sizeof lp->error, "%s", err.msg);
        return false;
    }
    wat_path *now = NULL;
    int n = 0, rc = wat_roots(l, &now, &n, &err);
    lp->h->release(lp->h->ctx, l, false);
    if (rc) {
        snprintf(lp->error, sizeof lp->error, "%s", err.msg);
        return false;
    }
    bool changed = false;
    for (int i = 0; i < lp->n_roots; i++)
        if (!in_list(now, n, lp->roots[i])) {
            wat_remove_root(lp->w, lp->roots[i]);
            changed = true;
        }
    for (int i = 0; i < n; i++)
        if (!in_list(lp->roots, lp->n_roots, now[i])) {
            if (wat_add_root(lp->w, now[i], &err))
                snprintf(lp->error, sizeof lp->error, "%s", err.msg);
            changed = true;
        }
    free(lp->roots);
    lp->roots = now;
    lp->n_roots = n;
    return changed;
}

/* Returns false when the batch could not be applied (then every folder is
** rescanned later). */
static bool apply(loop *lp, const wat_batch *b)
{
    cn_err err = {0};
    lib *l = lp->h->acquire(lp->h->ctx, true, &err);
    if (!l) { /* what the batch held is found again by a rescan */
        snprintf(lp->error, sizeof lp->error, "%s", err.msg);
        wat_rescan_all(lp->w);
        return false;
    }
    lp->activity = "indexing";
    report(lp);
    wat_stats st;
    int rc = wat_apply(l, b, on_file, lp, &st, &err);
    if (rc) {
        snprintf(lp->error, sizeof lp->error, "%s", err.msg);
        wat_rescan_all(lp->w);
    } else
        lp->error[0] = '\0';
    lp->total.added += st.added;
    lp->total.updated += st.updated;
    lp->total.removed += st.removed;
    lp->total.failed += st.failed;
    if ((st.added || st.updated) && lp->h->after_add)
        lp->h->after_add(lp->h->ctx, l);
    lp->h->release(lp->h->ctx, l, st.added || st.updated || st.removed);
    lp->activity = "idle";
    return rc == CN_OK;
}

int wat_loop(const wat_opts *o, const wat_host *h, const atomic_bool *stop, cn_err *err)
{
    loop lp = {.h = h, .activity = "idle"};
    int rc = wat_new(&lp.w, o, err);
    if (rc)
        return rc;
    double listed = -1e300;
    bool first = true;
    while (!atomic_load(stop)) {
        double now = cn_now();
        if (now - listed >= 2.0) {
            listed = now;
            if (refresh_roots(&lp) || first)
                report(&lp);
            first = false;
        }
        wat_batch b;
        rc = wat_poll(lp.w, 250, &b, err);
        if (rc)
            break;
        if (!wat_batch_empty(&b)) {
            bool ok = apply(&lp, &b);
            report(&lp);
            /* a library that fails (a full disk, say) is not hammered: the
            ** rescan waits a while */
            for (int i = 0; !ok && i < 40 && !atomic_load(stop); i++) {
                struct timespec ts = {0, 250 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        } else if (wat_n_pending(lp.w) != lp.reported_pending)
            report(&lp);
        wat_batch_free(&b);
    }
    free(lp.roots);
    wat_free(lp.w);
    return rc;
}
