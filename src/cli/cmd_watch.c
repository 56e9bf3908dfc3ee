/*
** cmd_watch.c: `cairn watch add|rm|ls|run`: folders the library follows
** (watch.h). `cairn serve` follows them too; `watch run` is for those who
** run no server.
*/
#include "cli/cli.h"
#include "models/models.h"
#include "store/store.h"
#include "watch/watch.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char watch_help[] =
    "usage: cairn watch add DIR...\n"
    "       cairn watch rm DIR...\n"
    "       cairn watch ls [--json]\n"
    "       cairn watch run [-e MODEL] [-t N] [--settle S]\n\n"
    "Folders the library keeps up to date by itself: files written, changed,\n"
    "renamed into place, deleted or moved away are reflected within seconds of\n"
    "settling (a file still being written is indexed once, when it is done).\n"
    "`cairn serve` follows the watched folders; `cairn watch run` does it in the\n"
    "foreground for those who run no server (Ctrl-C stops it). Both start with a\n"
    "rescan, so nothing that changed while they were stopped is missed.\n\n"
    "  add DIR...          follow these folders (and every folder under them)\n"
    "  rm DIR...           stop following them; their documents stay (`cairn rm`)\n"
    "  ls                  the watched folders, their documents, and whether they\n"
    "                      are there\n"
    "  run                 follow them now, printing what changes\n"
    "    -e MODEL          embed what is added with this model (default: the\n"
    "                      active embedding model, if any)\n"
    "    -t N              threads for OCR and embeddings (default 2)\n"
    "    --settle S        seconds a file must be quiet before it is read (default 1)\n\n"
    "  --home DIR          the data directory (default $CAIRN_HOME, else\n"
    "                      ~/.local/share/cairn)\n";

enum { OPT_SETTLE = CLI_OPT_FIRST_FREE };

typedef struct watch_args {
    const char *home, *embed;
    int threads;
    double settle;
    bool json;
} watch_args;

static int parse(const char *cmd, int argc, char **argv, watch_args *a)
{
    static const struct option longs[] = {
        {"home", required_argument, NULL, CLI_OPT_HOME}, {"json", no_argument, NULL, CLI_OPT_JSON},
        {"embed-model", required_argument, NULL, 'e'}, {"threads", required_argument, NULL, 't'},
        {"settle", required_argument, NULL, OPT_SETTLE}, {"help", no_argument, NULL, 'h'}, {0}};
    *a = (watch_args){.threads = 2, .settle = 1.0};
    int c;
    long n;
    while ((c = cli_getopt(cmd, argc, argv, ":he:t:", longs)) != -1) {
        switch (c) {
        case CLI_OPT_HOME: a->home = optarg; break;
        case CLI_OPT_JSON: a->json = true; break;
        case 'e': a->embed = optarg; break;
        case 't':
            if (!cli_int(optarg, 1, 256, &n))
                return cli_usage(cmd, "-t %s: expected 1 to 256 threads", optarg);
            a->threads = (int)n;
            break;
        case OPT_SETTLE:
            if (!cli_float(optarg, 0.05, 3600, &a->settle))
                return cli_usage(cmd, "--settle %s: expected 0.05 to 3600 seconds", optarg);
            break;
        case 'h': printf("%s", watch_help); return -1;
        default: return 2;
        }
    }
    return 0;
}

static int watch_add(lib *l, int argc, char **argv)
{
    cn_err err = {0};
    int ret = 0;
    for (int i = optind; i < argc; i++) {
        char dir[4096];
        bool already;
        if (wat_follow(l, argv[i], dir, sizeof dir, &already, &err)) {
            ret = cli_error(&err);
            continue;
        }
        printf("%s %s\n", already ? "watched already:" : "watching", dir);
    }
    fprintf(stderr, "`cairn serve` follows the watched folders (within seconds, if it is "
                    "running); without a server, `cairn watch run` does\n");
    return ret;
}

static int watch_rm(lib *l, int argc, char **argv)
{
    cn_err err = {0};
    int ret = 0;
    for (int i = optind; i < argc; i++) {
        char dir[4096];
        if (wat_unfollow(l, argv[i], dir, sizeof dir, &err)) {
            ret = cli_error(&err);
            continue;
        }
        printf("no longer watching %s (its documents stay in the library)\n", dir);
    }
    return ret;
}

typedef struct count_ctx {
    const char *dir;
    int docs;
} count_ctx;

static int count_doc(void *ctx, const store_doc_info *d)
{
    count_ctx *c = ctx;
    c->docs += wat_under(d->path, c->dir);
    return 0;
}

static int watch_ls(lib *l, const watch_args *a)
{
    cn_err err = {0};
    struct { wat_path *p; int n; } have;
    if (wat_roots(l, &have.p, &have.n, &err))
        return cli_error(&err);
    if (!a->json && have.n == 0)
        printf("no folder is watched (`cairn watch add DIR`)\n");
    for (int i = 0; i < have.n; i++) {
        count_ctx c = {have.p[i], 0};
        if (store_list(lib_store(l), count_doc, &c, &err) < 0) {
            free(have.p);
            return cli_error(&err);
        }
        struct stat st;
        bool there = stat(have.p[i], &st) == 0 && S_ISDIR(st.st_mode);
        if (a->json) {
            json_t *o = json_pack("{s:s, s:i, s:b}", "path", have.p[i], "documents", c.docs,
                                  "present", there);
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(o);
        } else
            printf("%s  %d document%s%s\n", have.p[i], c.docs, c.docs == 1 ? "" : "s",
                   there ? "" : "  (not there now: followed again when it is)");
    }
    free(have.p);
    return 0;
}

/* ---- watch run ------------------------------------------------------------------- */

static atomic_bool stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, true);
}

typedef struct run_ctx {
    lib *l;
    const char *embed; /* the embedding model's path, or NULL */
    int threads;
    char folders[8192]; /* the folders' states last printed */
} run_ctx;

static lib *run_acquire(void *ctx, bool write, cn_err *err)
{
    (void)write, (void)err;
    return ((run_ctx *)ctx)->l;
}

static void run_release(void *ctx, lib *l, bool wrote)
{
    (void)ctx;
    if (wrote)
        lib_reload_vectors(l);
}

static void stamp(void)
{
    char t[16];
    time_t now = time(NULL);
    strftime(t, sizeof t, "%H:%M:%S", localtime(&now));
    fprintf(stderr, "%s ", t);
}

static void run_file(void *ctx, const lib_event *ev)
{
    (void)ctx;
    if (ev->kind == LIB_EV_EMBED) {
        if (ev->embed_done == ev->embed_total) {
            stamp();
            fprintf(stderr, "embedded %lld passages\n", (long long)ev->embed_total);
        }
        return;
    }
    if (ev->kind == LIB_EV_OCR && ev->error) {
        stamp();
        fprintf(stderr, "OCR failed %s\n", ev->error);
    }
    if (ev->kind != LIB_EV_FILE || ev->outcome == LIB_UNCHANGED)
        return;
    stamp();
    if (ev->outcome == LIB_FAILED)
        fprintf(stderr, "failed    %s\n", ev->error ? ev->error : ev->path);
    else if (ev->outcome == LIB_PRUNED)
        fprintf(stderr, "removed   %s\n", ev->path);
    else
        fprintf(stderr, "%-9s %s (%d pages, %d passages)\n",
                ev->outcome == LIB_ADDED ? "added" : "updated", ev->path, ev->pages, ev->passages);
}

static void run_after(void *ctx, lib *l)
{
    run_ctx *r = ctx;
    cn_err err = {0};
    lib_ocr_stats os;
    store_ocr_counts c;
    if (store_ocr_count(lib_store(l), 0, &c, &err) == CN_OK && c.pending &&
        lib_ocr(l, NULL, r->threads, run_file, r, &os, &err) < 0) {
        stamp();
        fprintf(stderr, "OCR: %s (the scanned pages stay queued)\n", err.msg);
    }
    if (r->embed && lib_index(l, r->embed, r->threads, run_file, r, &err) < 0) {
        stamp();
        fprintf(stderr, "embedding: %s\n", err.msg);
    }
}

static void run_status(void *ctx, json_t *status)
{
    run_ctx *r = ctx;
    json_t *f = json_object_get(status, "folders");
    char *s = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
    if (s && strcmp(s, r->folders) != 0) {
        snprintf(r->folders, sizeof r->folders, "%s", s);
        size_t i;
        json_t *v;
        json_array_foreach(f, i, v) {
            const char *note = json_string_value(json_object_get(v, "note"));
            stamp();
            fprintf(stderr, "%-9s %s%s%s\n", json_string_value(json_object_get(v, "state")),
                    json_string_value(json_object_get(v, "path")), note ? ": " : "",
                    note ? note : "");
        }
        if (json_array_size(f) == 0) {
            stamp();
            fprintf(stderr, "no folder is watched (`cairn watch add DIR`); waiting\n");
        }
    }
    free(s);
    const char *e = json_string_value(json_object_get(status, "error"));
    if (e) {
        stamp();
        fprintf(stderr, "cairn: %s\n", e);
    }
}

static int watch_run(lib *l, const watch_args *a)
{
    char path[4096];
    const char *embed = NULL;
    if (a->embed) {
        int st = cli_model_path("watch run", a->home, a->embed, "embed", path, sizeof path, &embed);
        if (st)
            return st;
    } else {
        char dir[4096];
        cn_err e = {0};
        if (!cn_data_dir(dir, sizeof dir, a->home, &e) &&
            mdl_active(dir, "embed", path, sizeof path, NULL, 0, NULL) == CN_OK)
            embed = path;
    }
    cn_err err = {0};
    if (embed && lib_chunk_with(l, embed, a->threads, &err))
        return cli_error(&err);
    run_ctx r = {.l = l, .embed = embed, .threads = a->threads};
    wat_host h = {.ctx = &r, .acquire = run_acquire, .release = run_release,
                  .after_add = run_after, .on_file = run_file, .on_status = run_status};
    wat_opts o = {.settle_s = a->settle};
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stamp();
    fprintf(stderr, "following the watched folders%s%s (Ctrl-C stops)\n",
            embed ? "; embedding with " : "", embed ? embed : "");
    int rc = wat_loop(&o, &h, &stop_flag, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc)
        return cli_error(&err);
    stamp();
    fprintf(stderr, "stopped\n");
    return 0;
}

int cmd_watch(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        printf("%s", watch_help);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    char cmd[32];
    snprintf(cmd, sizeof cmd, "watch %s", sub);
    bool add = !strcmp(sub, "add"), rm = !strcmp(sub, "rm"), ls = !strcmp(sub, "ls"),
         run = !strcmp(sub, "run");
    if (!add && !rm && !ls && !run)
        return cli_usage("watch", "unknown subcommand '%s' (add, rm, ls, run)", sub);
    watch_args a;
    int prc = parse(cmd, argc - 1, argv + 1, &a);
    if (prc)
        return prc < 0 ? 0 : prc;
    optind++; /* the operands, in argv's terms */
    if ((add || rm) && optind >= argc)
        return cli_usage(cmd, "missing DIR");
    if ((ls || run) && optind < argc)
        return cli_usage(cmd, "no operands expected ('%s')", argv[optind]);
    lib *l = NULL;
    cn_err err = {0};
    if (lib_open(&l, a.home, &err))
        return cli_error(&err);
    int ret = add ? watch_add(l, argc, argv) : rm ? watch_rm(l, argc, argv)
              : ls ? watch_ls(l, &a) : watch_run(l, &a);
    lib_close(l);
    return ret;
}
