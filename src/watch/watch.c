/*
** watch.c: the watcher -- inotify on every folder under each root, and the
** paths that changed, each handed over once it has settled.
**
** Why settle: a file being written (a download, a copy, an editor saving)
** sends a stream of events; indexing at the first would read half a file
** and index it again at each write. A path is handed over when no event
** came for settle_s and no writer holds it open (IN_MODIFY opens a
** "writing" state that IN_CLOSE_WRITE ends), or after max_wait_s of quiet
** whatever the writers do. An editor's temp-and-rename dance (write
** "f.tmp", rename it over "f") ends as one settled path, "f"; the temp's
** name is not a kind of document and never is.
**
** Folders: a folder created or moved in is watched at once and its files
** become pending (the events of files written into it before its watch was
** added would otherwise be lost); one deleted or moved away drops its
** watches and is handed over as gone. A root that vanishes is handed over
** as gone and followed again when it reappears (a USB disk, a network
** share). The kernel's queue overflowing loses events: then every root is
** rescanned once the events stop.
*/
#include "watch/watch.h"
#include "ingest/ingest.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MASK (IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | \
              IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
enum { MAX_DEPTH = 64, MAX_BATCH = 256 };
enum { ROOT_WATCHING, ROOT_MISSING, ROOT_POLLING };
static const char *const root_states[] = {"watching", "missing", "polling"};

/* A watched folder: slot of an open-addressing table keyed by wd. */
typedef struct wdir {
    int wd;    /* -1 empty, -2 deleted */
    int root;  /* index in roots */
    char *path;
} wdir;

/* A path that changed and has not settled yet. */
typedef struct pend {
    char *path; /* NULL empty, TOMB deleted */
    double last;
    bool writing;
    bool dir_gone; /* a folder deleted or moved away */
} pend;

typedef struct root {
    char *path;
    int state;
    char why[400];
    double next_poll; /* ROOT_POLLING: the next rescan; ROOT_MISSING: the next look */
    bool rescan;      /* hand over for a rescan once events are quiet */
} root;

struct wat_watcher {
    wat_opts o;
    int fd;
    wdir *dirs;
    int dirs_cap, n_dirs, n_dirs_used; /* used: live + deleted slots */
    pend *pend;
    int pend_cap, n_pend, n_pend_used;
    root *roots;
    int n_roots;
    double last_event;
    bool overflowed;
};

static char tomb[1];
#define TOMB tomb

/* ---- the two tables ------------------------------------------------------------ */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int dirs_grow(wat_watcher *w)
{
    int cap = w->dirs_cap ? w->dirs_cap * 2 : 64;
    while (w->n_dirs * 2 >= cap)
        cap *= 2;
    wdir *t = cn_malloc((size_t)cap * sizeof *t);
    if (!t)
        return CN_ENOMEM;
    for (int i = 0; i < cap; i++)
        t[i].wd = -1;
    for (int i = 0; i < w->dirs_cap; i++)
        if (w->dirs[i].wd >= 0) {
            unsigned j = (unsigned)w->dirs[i].wd & (unsigned)(cap - 1);
            while (t[j].wd != -1)
                j = (j + 1) & (unsigned)(cap - 1);
            t[j] = w->dirs[i];
        }
    free(w->dirs);
    w->dirs = t;
    w->dirs_cap = cap;
    w->n_dirs_used = w->n_dirs;
    return CN_OK;
}

static wdir *dir_find(const wat_watcher *w, int wd)
{
    if (!w->dirs_cap)
        return NULL;
    unsigned m = (unsigned)(w->dirs_cap - 1);
    for (unsigned j = (unsigned)wd & m;; j = (j + 1) & m) {
        if (w->dirs[j].wd == -1)
            return NULL;
        if (w->dirs[j].wd == wd)
            return &w->dirs[j];
    }
}

static int dir_put(wat_watcher *w, int wd, int root_i, const char *path)
{
    if (dir_find(w, wd))
        return CN_OK; /* the same folder by a second way (a bind mount): once */
    if ((w->n_dirs_used + 1) * 2 > w->dirs_cap && dirs_grow(w))
        return CN_ENOMEM;
    char *p = strdup(path);
    if (!p)
        return CN_ENOMEM;
    unsigned m = (unsigned)(w->dirs_cap - 1), j = (unsigned)wd & m;
    while (w->dirs[j].wd >= 0)
        j = (j + 1) & m;
    if (w->dirs[j].wd == -1)
        w->n_dirs_used++;
    w->dirs[j] = (wdir){wd, root_i, p};
    w->n_dirs++;
    return CN_OK;
}

static void dir_drop(wat_watcher *w, wdir *d, bool rm_watch)
{
    if (rm_watch)
        inotify_rm_watch(w->fd, d->wd);
    free(d->path);
    d->path = NULL;
    d->wd = -2;
    w->n_dirs--;
}

bool wat_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/* Stop watching dir and every folder under it. */
static void drop_tree(wat_watcher *w, const char *dir)
{
    for (int i = 0; i < w->dirs_cap; i++)
        if (w->dirs[i].wd >= 0 && wat_under(w->dirs[i].path, dir))
            dir_drop(w, &w->dirs[i], true);
}

static int pend_grow(wat_watcher *w)
{
    int cap = w->pend_cap ? w->pend_cap * 2 : 256;
    while (w->n_pend * 2 >= cap)
        cap *= 2;
    pend *t = cn_calloc((size_t)cap, sizeof *t);
    if (!t)
        return CN_ENOMEM;
    for (int i = 0; i < w->pend_cap; i++)
        if (w->pend[i].path && w->pend[i].path != TOMB) {
            unsigned j = hash_str(w->pend[i].path) & (unsigned)(cap - 1);
            while (t[j].path)
                j = (j + 1) & (unsigned)(cap - 1);
            t[j] = w->pend[i];
        }
    free(w->pend);
    w->pend = t;
    w->pend_cap = cap;
    w->n_pend_used = w->n_pend;
    return CN_OK;
}

/* The pending entry of path, made if new (NULL when out of memory). */
static pend *pend_get(wat_watcher *w, const char *path)
{
    if ((w->n_pend_used + 1) * 2 > w->pend_cap && pend_grow(w))
        return NULL;
    unsigned m = (unsigned)(w->pend_cap - 1), j = hash_str(path) & m;
    pend *slot = NULL;
    for (;; j = (j + 1) & m) {
        pend *p = &w->pend[j];
        if (!p->path)
            break;
        if (p->path == TOMB) {
            if (!slot)
                slot = p;
        } else if (!strcmp(p->path, path))
            return p;
    }
    if (!slot) {
        slot = &w->pend[j];
        w->n_pend_used++;
    }
    if (!(slot->path = strdup(path))) {
        slot->path = TOMB;
        return NULL;
    }
    slot->writing = slot->dir_gone = false;
    w->n_pend++;
    return slot;
}

static void pend_drop(wat_watcher *w, pend *p)
{
    free(p->path);
    p->path = TOMB;
    w->n_pend--;
}

/* Forget what is pending in dir and under it. */
static void pend_drop_under(wat_watcher *w, const char *dir)
{
    for (int k = 0; k < w->pend_cap; k++)
        if (w->pend[k].path && w->pend[k].path != TOMB && wat_under(w->pend[k].path, dir))
            pend_drop(w, &w->pend[k]);
}

static void pend_clear(wat_watcher *w)
{
    for (int i = 0; i < w->pend_cap; i++)
        if (w->pend[i].path && w->pend[i].path != TOMB)
            free(w->pend[i].path);
    free(w->pend);
    w->pend = NULL;
    w->pend_cap = w->n_pend = w->n_pend_used = 0;
}

/* ---- watching folders ------------------------------------------------------------ */

static void limit_note(wat_watcher *w, root *r, const char *dir)
{
    long max = -1;
    FILE *f = fopen("/proc/sys/fs/inotify/max_user_watches", "r");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = -1;
        fclose(f);
    }
    if (w->o.max_watches)
        snprintf(r->why, sizeof r->why,
                 "%s: not watched: the limit of %d watches set for this process is reached; "
                 "the folder is rescanned every %.0f s instead", dir, w->o.max_watches,
                 w->o.poll_s);
    else
        snprintf(r->why, sizeof r->why,
                 "%s: not watched: the system's limit of inotify watches is reached "
                 "(fs.inotify.max_user_watches = %ld, %d of them Cairn's); the folder is "
                 "rescanned every %.0f s instead. Raise the limit: sudo sysctl "
                 "fs.inotify.max_user_watches=524288",
                 dir, max, w->n_dirs, w->o.poll_s);
    r->state = ROOT_POLLING;
}

/* Every file of a known kind under dir (not hidden) becomes pending, and
** every folder watched: for a folder created or moved in, whose files may
** have been written before its watch existed. */
static int watch_tree(wat_watcher *w, int root_i, const char *dir, int depth, bool files)
{
    root *r = &w->roots[root_i];
    int wd = w->o.max_watches && w->n_dirs >= w->o.max_watches
                 ? (errno = ENOSPC, -1)
                 : inotify_add_watch(w->fd, dir, MASK | (depth ? IN_DONT_FOLLOW : 0));
    if (wd < 0) {
        if (errno == ENOSPC) {
            if (r->state != ROOT_POLLING)
                limit_note(w, r, dir);
            return CN_OK;
        }
        return CN_OK; /* gone since, unreadable, not a folder: its parent's scan says so */
    }
    if (dir_put(w, wd, root_i, dir))
        return CN_ENOMEM;
    DIR *d = opendir(dir);
    if (!d)
        return CN_OK;
    struct dirent *e;
    int rc = CN_OK;
    double now = cn_now();
    while (rc == CN_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char child[PATH_MAX];
        if (snprintf(child, sizeof child, "%s/%s", dir, e->d_name) >= (int)sizeof child)
            continue;
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            type = lstat(child, &st) != 0 ? DT_UNKNOWN : S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
        }
        if (type == DT_DIR && depth < MAX_DEPTH)
            rc = watch_tree(w, root_i, child, depth + 1, files);
        else if (files && type == DT_REG && ingest_known_name(child)) {
            pend *p = pend_get(w, child);
            if (!p)
                rc = CN_ENOMEM;
            else
                p->last = now, p->dir_gone = false;
        }
    }
    closedir(d);
    return rc;
}

static int root_index(const wat_watcher *w, const char *path)
{
    for (int i = 0; i < w->n_roots; i++)
        if (!strcmp(w->roots[i].path, path))
            return i;
    return -1;
}

/* (Re)start watching root i: all of its folders, or as many as the limit
** allows; missing if it is not a folder now. */
static int start_root(wat_watcher *w, int i)
{
    root *r = &w->roots[i];
    struct stat st;
    r->why[0] = '\0';
    r->rescan = true;
    if (stat(r->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        r->state = ROOT_MISSING;
        snprintf(r->why, sizeof r->why, "%s: %s", r->path,
                 stat(r->path, &st) != 0 ? strerror(errno) : "not a folder");
        r->next_poll = cn_now() + 2;
        return CN_OK;
    }
    r->state = ROOT_WATCHING;
    int rc = watch_tree(w, i, r->path, 0, false);
    if (r->state == ROOT_POLLING)
        r->next_poll = cn_now() + w->o.poll_s;
    return rc;
}

int wat_new(wat_watcher **out, const wat_opts *o, cn_err *err)
{
    *out = NULL;
    wat_watcher *w = cn_calloc(1, sizeof *w);
    if (!w)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    if (o)
        w->o = *o;
    if (w->o.settle_s <= 0)
        w->o.settle_s = 1.0;
    if (w->o.max_wait_s <= 0)
        w->o.max_wait_s = 30.0;
    if (w->o.poll_s <= 0)
        w->o.poll_s = 60.0;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        if (e == EMFILE)
            return cn_fail(err, CN_ELIMIT, "cannot watch folders: the system's limit of inotify "
                                           "instances is reached (fs.inotify.max_user_instances)");
        return cn_fail(err, CN_EIO, "cannot watch folders: inotify: %s", strerror(e));
    }
    *out = w;
    return CN_OK;
}

void wat_free(wat_watcher *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->dirs_cap; i++)
        if (w->dirs[i].wd >= 0)
            free(w->dirs[i].path);
    free(w->dirs);
    pend_clear(w);
    for (int i = 0; i < w->n_roots; i++)
        free(w->roots[i].path);
    free(w->roots);
    close(w->fd);
    free(w);
}

int wat_add_root(wat_watcher *w, const char *path, cn_err *err)
{
    if (root_index(w, path) >= 0)
        return CN_OK;
    root *nr = cn_realloc_array(w->roots, (size_t)w->n_roots + 1, sizeof *nr);
    if (!nr)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    w->roots = nr;
    root *r = &w->roots[w->n_roots];
    memset(r, 0, sizeof *r);
    if (!(r->path = strdup(path)))
        return cn_fail(err, CN_ENOMEM, "out of memory");
    w->n_roots++;
    if (start_root(w, w->n_roots - 1))
        return cn_fail(err, CN_ENOMEM, "%s: out of memory watching its folders", path);
    return CN_OK;
}

void wat_remove_root(wat_watcher *w, const char *path)
{
    int i = root_index(w, path);
    if (i < 0)
        return;
    for (int k = 0; k < w->dirs_cap; k++)
        if (w->dirs[k].wd >= 0 && w->dirs[k].root == i)
            dir_drop(w, &w->dirs[k], true);
    pend_drop_under(w, path);
    free(w->roots[i].path);
    w->roots[i] = w->roots[--w->n_roots];
    for (int k = 0; k < w->dirs_cap; k++) /* the root that moved into slot i */
        if (w->dirs[k].wd >= 0 && w->dirs[k].root == w->n_roots)
            w->dirs[k].root = i;
}

const char *wat_root_state(const wat_watcher *w, const char *path, const char **why)
{
    int i = root_index(w, path);
    if (i < 0)
        return NULL;
    if (why)
        *why = w->roots[i].why;
    return root_states[w->roots[i].state];
}

int wat_n_watches(const wat_watcher *w) { return w->n_dirs; }

void wat_rescan_all(wat_watcher *w)
{
    for (int i = 0; i < w->n_roots; i++)
        w->roots[i].rescan = w->roots[i].state != ROOT_MISSING;
}
int wat_n_pending(const wat_watcher *w) { return w->n_pend; }

/* ---- events ---------------------------------------------------------------------- */

static int on_event(wat_watcher *w, const struct inotify_event *ev, double now)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        /* events were lost: what is pending is no longer the whole story */
        w->overflowed = true;
        pend_clear(w);
        for (int i = 0; i < w->n_roots; i++)
            w->roots[i].rescan = true;
        return CN_OK;
    }
    wdir *d = dir_find(w, ev->wd);
    if (!d)
        return CN_OK; /* a watch dropped already (IN_IGNORED and its like) */
    if (ev->mask & IN_IGNORED) {
        dir_drop(w, d, false);
        return CN_OK;
    }
    int ri = d->root;
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        /* only a root's own: other folders are handled by their parent's event */
        if (strcmp(d->path, w->roots[ri].path) != 0)
            return CN_OK;
        char rp[PATH_MAX];
        snprintf(rp, sizeof rp, "%s", d->path);
        drop_tree(w, rp);
        pend *p = pend_get(w, rp);
        if (!p)
            return CN_ENOMEM;
        p->last = now, p->dir_gone = true, p->writing = false;
        start_root(w, ri); /* missing now, or (moved back at once) watched again */
        w->roots[ri].rescan = w->roots[ri].state != ROOT_MISSING;
        return CN_OK;
    }
    if (!ev->len || ev->name[0] == '.')
        return CN_OK; /* hidden files and folders are not documents (nor are lock files) */
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", d->path, ev->name) >= (int)sizeof path)
        return CN_OK;
    if (ev->mask & IN_ISDIR) {
        if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
            drop_tree(w, path); /* a folder moved over one that was watched */
            return watch_tree(w, ri, path, 1, true);
        }
        if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
            drop_tree(w, path);
            pend_drop_under(w, path); /* its files: the folder says it */
            pend *p = pend_get(w, path);
            if (!p)
                return CN_ENOMEM;
            p->last = now, p->dir_gone = true, p->writing = false;
        }
        return CN_OK;
    }
    pend *p = pend_get(w, path);
    if (!p)
        return CN_ENOMEM;
    p->last = now;
    p->dir_gone = false;
    if (ev->mask & (IN_CREATE | IN_MODIFY))
        p->writing = true;
    if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))
        p->writing = false;
    return CN_OK;
}

static int read_events(wat_watcher *w, cn_err *err)
{
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return CN_OK;
            return cn_fail(err, CN_EIO, "reading folder events: %s", strerror(errno));
        }
        double now = cn_now();
        w->last_event = now;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (on_event(w, ev, now))
                return cn_fail(err, CN_ENOMEM, "out of memory following folder events");
            p += sizeof *ev + ev->len;
        }
    }
}

/* ---- batches --------------------------------------------------------------------- */

static int push(char ***v, int *n, const char *s)
{
    char **nv = cn_realloc_array(*v, (size_t)*n + 1, sizeof *nv);
    if (!nv)
        return CN_ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return CN_ENOMEM;
    (*n)++;
    return CN_OK;
}

/* Look at roots that are missing (back?) or polled (due?). */
static void check_roots(wat_watcher *w, double now)
{
    for (int i = 0; i < w->n_roots; i++) {
        root *r = &w->roots[i];
        if (r->state == ROOT_WATCHING || now < r->next_poll)
            continue;
        if (r->state == ROOT_MISSING) {
            start_root(w, i); /* still missing: looked at again in 2 s */
            if (r->state == ROOT_MISSING)
                r->rescan = false;
        } else { /* polling: a rescan, and another try at watching it whole */
            drop_tree(w, r->path);
            start_root(w, i);
        }
    }
}

bool wat_batch_empty(const wat_batch *b)
{
    return !b->n_changed && !b->n_gone && !b->n_gone_dirs && !b->n_rescan;
}

void wat_batch_free(wat_batch *b)
{
    char **v[] = {b->changed, b->gone, b->gone_dirs, b->rescan};
    int n[] = {b->n_changed, b->n_gone, b->n_gone_dirs, b->n_rescan};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < n[k]; i++)
            free(v[k][i]);
        free(v[k]);
    }
    memset(b, 0, sizeof *b);
}

/* The earliest moment a pending path can settle (for poll's timeout). */
static double next_due(const wat_watcher *w)
{
    double due = 1e300;
    for (int i = 0; i < w->pend_cap; i++) {
        const pend *p = &w->pend[i];
        if (p->path && p->path != TOMB)
            due = CN_MIN(due, p->last + (p->writing ? w->o.max_wait_s : w->o.settle_s));
    }
    for (int i = 0; i < w->n_roots; i++) {
        if (w->roots[i].rescan)
            due = CN_MIN(due, w->last_event + w->o.settle_s);
        if (w->roots[i].state != ROOT_WATCHING)
            due = CN_MIN(due, w->roots[i].next_poll);
    }
    return due;
}

static int collect(wat_watcher *w, double now, wat_batch *b)
{
    int rc = CN_OK;
    /* rescans first, and only once events are quiet (after an overflow the
    ** writing goes on: a rescan in the middle would read half-written files) */
    if (now - w->last_event >= w->o.settle_s)
        for (int i = 0; i < w->n_roots && !rc; i++)
            if (w->roots[i].rescan && w->roots[i].state != ROOT_MISSING) {
                w->roots[i].rescan = false;
                if (w->roots[i].state == ROOT_POLLING)
                    w->roots[i].next_poll = now + w->o.poll_s;
                rc = push(&b->rescan, &b->n_rescan, w->roots[i].path);
            }
    int taken = 0;
    for (int i = 0; i < w->pend_cap && !rc && taken < MAX_BATCH; i++) {
        pend *p = &w->pend[i];
        if (!p->path || p->path == TOMB)
            continue;
        double quiet = now - p->last;
        if (quiet < w->o.settle_s || (p->writing && quiet < w->o.max_wait_s))
            continue;
        /* what the path is now decides, not the last event: a file deleted
        ** and written again is a changed file */
        struct stat st;
        int s = stat(p->path, &st);
        if (p->dir_gone && (s != 0 || !S_ISDIR(st.st_mode)))
            rc = push(&b->gone_dirs, &b->n_gone_dirs, p->path);
        else if (s != 0 && (errno == ENOENT || errno == ENOTDIR))
            rc = push(&b->gone, &b->n_gone, p->path);
        else if (s == 0 && S_ISREG(st.st_mode) && ingest_known_name(p->path))
            rc = push(&b->changed, &b->n_changed, p->path);
        pend_drop(w, p);
        taken++;
    }
    return rc;
}

int wat_poll(wat_watcher *w, int timeout_ms, wat_batch *b, cn_err *err)
{
    memset(b, 0, sizeof *b);
    double now = cn_now();
    double due = next_due(w);
    int wait = timeout_ms;
    if (due < now + timeout_ms / 1000.0)
        wait = due <= now ? 0 : (int)((due - now) * 1000.0) + 1;
    struct pollfd pf = {w->fd, POLLIN, 0};
    int n = poll(&pf, 1, wait);
    if (n < 0 && errno != EINTR)
        return cn_fail(err, CN_EIO, "waiting for folder events: %s", strerror(errno));
    if (n > 0) {
        int rc = read_events(w, err);
        if (rc)
            return rc;
    }
    now = cn_now();
    check_roots(w, now);
    if (collect(w, now, b)) {
        wat_batch_free(b);
        return cn_fail(err, CN_ENOMEM, "out of memory following folder events");
    }
    return CN_OK;
}
