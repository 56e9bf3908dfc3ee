/*
** watch: folders the library follows (issue 18). New and changed files are
** indexed once they settle, deleted and moved ones leave the library; an
** overflowed event queue, a restart or a folder that comes back falls back
** to a rescan (the logic of `cairn sync`, limited to the folder).
**
** Two parts:
**   - the watcher (watch.c): inotify on every folder under each root, and a
**     table of the paths that changed, each handed over once it is quiet
**     (no event for settle_s, and no writer holding it open -- or quiet for
**     max_wait_s whatever the writers do). Knows nothing of the library.
**   - the loop (loop.c): the folders from the library's `watched` table,
**     the watcher's batches applied to the library through a host (the
**     server and `cairn watch run` each give their own: how to get a
**     handle to write with, and what to do after: OCR, embeddings).
**
** Prefix wat_.
*/
#ifndef CAIRN_WATCH_H
#define CAIRN_WATCH_H

#include "base/base.h"
#include "library/library.h"

#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>

/* ---- the watcher ------------------------------------------------------------- */

typedef struct wat_opts {
    double settle_s;   /* quiet this long before a path is handed over (0: 1 s) */
    double max_wait_s; /* ... or this long even with a writer holding it (0: 30 s) */
    double poll_s;     /* folders that cannot be watched whole are rescanned this often (0: 60 s) */
    int max_watches;   /* stop adding watches here as if the system's limit were hit (0: none) */
} wat_opts;

typedef struct wat_watcher wat_watcher;

/* What settled since the last batch. Paths are absolute, malloc'd. */
typedef struct wat_batch {
    char **changed;   int n_changed;   /* files (known kinds) new or changed */
    char **gone;      int n_gone;      /* files deleted or moved away */
    char **gone_dirs; int n_gone_dirs; /* folders deleted or moved away */
    char **rescan;    int n_rescan;    /* roots to rescan whole */
} wat_batch;

int wat_new(wat_watcher **out, const wat_opts *o, cn_err *err);
void wat_free(wat_watcher *w);

/* Follow root and every folder under it (hidden ones aside). A root that
** does not exist is kept and followed once it appears; one that hits the
** system's limit of watches is rescanned every poll_s instead, and
** wat_root_state says why. The root is handed over for a rescan in the
** next batch. */
int wat_add_root(wat_watcher *w, const char *root, cn_err *err);
void wat_remove_root(wat_watcher *w, const char *root);

/* The root's state: "watching", "missing" (not there), "polling" (some
** folders not watched: *why says which limit). NULL if not a root. */
const char *wat_root_state(const wat_watcher *w, const char *root, const char **why);
int wat_n_watches(const wat_watcher *w);
/* Rescan every root once events are quiet (a batch could not be applied). */
void wat_rescan_all(wat_watcher *w);
int wat_n_pending(const wat_watcher *w);

/* Read the events that came (waiting at most timeout_ms for the first) and
** fill b with what settled. b is empty when nothing did. */
int wat_poll(wat_watcher *w, int timeout_ms, wat_batch *b, cn_err *err);
bool wat_batch_empty(const wat_batch *b);
void wat_batch_free(wat_batch *b);

/* ---- the loop ------------------------------------------------------------------ */

typedef struct wat_host {
    void *ctx;
    /* A library handle, to write with or only to read the watched folders
    ** (NULL and err: the loop says so and tries again later). */
    lib *(*acquire)(void *ctx, bool write, cn_err *err);
    void (*release)(void *ctx, lib *l, bool wrote);
    /* After files were added or changed, with the handle still held: OCR,
    ** embeddings. Optional. */
    void (*after_add)(void *ctx, lib *l);
    /* Each file done (lib_event), for progress. Optional. */
    lib_progress_fn on_file;
    /* The loop's state changed (the JSON of wat_status_json). Optional. */
    void (*on_status)(void *ctx, json_t *status);
} wat_host;

/* Follow the library's watched folders until *stop: their list is read
** again every few seconds (`cairn watch add` while this runs is followed
** within seconds). Starts with a rescan of each. */
int wat_loop(const wat_opts *o, const wat_host *h, const atomic_bool *stop, cn_err *err);

/* Apply a batch to the library: add the changed files and new folders,
** remove what is gone, rescan roots (with the documents under them whose
** file is gone removed). *wrote says whether anything changed. */
typedef struct wat_stats {
    int added, updated, removed, failed;
} wat_stats;
int wat_apply(lib *l, const wat_batch *b, lib_progress_fn fn, void *ctx, wat_stats *st,
              cn_err *err);

/* Is path dir itself or inside it (whole components: /a/bc is not in /a/b)? */
bool wat_under(const char *path, const char *dir);

/* Resolve dir (must be a folder) to the absolute path the library keeps. */
int wat_resolve(const char *dir, char *out, size_t cap, cn_err *err);

/* Add dir to the library's watched folders (resolved into out). Refused
** (CN_EINVAL, naming it) if it is inside a watched folder or holds one: a
** folder is watched under one root. CN_EEXIST-like: *already set, CN_OK. */
int wat_follow(lib *l, const char *dir, char *out, size_t cap, bool *already, cn_err *err);
/* The watched folders, oldest first (*out malloc'd: free it). */
typedef char wat_path[PATH_MAX];
int wat_roots(lib *l, wat_path **out, int *n, cn_err *err);
/* Remove dir from them (resolved, or as given when it is gone); its
** documents stay. CN_ENOTFOUND if it was not watched. */
int wat_unfollow(lib *l, const char *dir, char *out, size_t cap, cn_err *err);

#endif
