/*
** cmd_library.c: the library commands — add, index, ls, rm, search, ask,
** doctor. Each is a thin face over src/library (and src/rag for ask).
*/
#include "cli/cli.h"
#include "library/library.h"
#include "store/store.h"
#include "ocr/ocr.h"
#include "models/models.h"
#include "rag/rag.h"
#include "grammar/grammar.h"
#include "remote/remote.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Options every library command takes. */
typedef struct lib_args {
    const char *home, *embed_model, *chat_model;
    const char *rerank_model; /* search: rescore the candidates with this cross-encoder */
    char chat_path[4096], embed_path[4096], rerank_path[4096]; /* resolved model names */
    char rerank_name[128];                  /* the active reranker's name */
    bool chat_active, embed_active, rerank_active; /* from `cairn models use`, not given */
    bool no_rerank;                         /* --no-rerank: not even the active one */
    int threads, k, max_tokens;
    int lookup;          /* ask: prompt-lookup draft length; -1: the default */
    const char *draft;   /* ask: draft model (--draft), or NULL */
    int draft_max;       /* ask: tokens the draft model proposes at most */
    int passage_tokens;  /* ask: budget for the passages' text (0: the default) */
    bool no_trim;        /* ask: whole passages */
    cli_run_args out;    /* ask: --schema, --json-output, --grammar (the answer's shape) */
    const char *remote;  /* ask: --remote NAME */
    bool yes;            /* ask: --yes, send without asking */
    bool network;        /* doctor: --network, see whether the remotes answer */
    bool json, prune;
    const char *ocr_lang; /* index: --ocr-lang eng+fra */
    bool no_ocr;          /* index: --no-ocr */
    char **rest; /* the operands: argv[optind..argc), however many */
    int n_rest;
} lib_args;

/* Models given by name (installed with `cairn models`) become paths; with
** none given, the active models of their roles are used. */
static int resolve_models(const char *cmd, lib_args *a)
{
    char home[4096];
    cn_err err = {0};
    if (cn_data_dir(home, sizeof home, a->home, &err))
        return 0; /* reported when the library opens */
    struct { const char **given; char *path; bool *active; const char *role; char *name; } m[3] = {
        {&a->chat_model, a->chat_path, &a->chat_active, "chat", NULL},
        {&a->embed_model, a->embed_path, &a->embed_active, "embed", NULL},
        {&a->rerank_model, a->rerank_path, &a->rerank_active, "rerank", a->rerank_name}};
    for (int i = 0; i < 3; i++) {
        if (i == 2 && a->no_rerank)
            break;
        if (*m[i].given) {
            if (mdl_resolve(home, *m[i].given, m[i].path, 4096, &err)) {
                fprintf(stderr, "cairn %s: %s\n", cmd, err.msg);
                return 1;
            }
            *m[i].given = m[i].path;
        } else if (mdl_active(home, m[i].role, m[i].path, 4096, m[i].name, 128, NULL) == CN_OK) {
            *m[i].given = m[i].path;
            *m[i].active = true;
        }
    }
    return 0;
}

static int parse_lib_args(const char *cmd, int argc, char **argv, lib_args *a, const char *help)
{
    memset(a, 0, sizeof *a);
    a->embed_model = getenv("CAIRN_EMBED_MODEL");
    a->chat_model = getenv("CAIRN_CHAT_MODEL");
    enum { OPT_PRUNE = CLI_OPT_FIRST_FREE, OPT_RERANK, OPT_NO_RERANK, OPT_LOOKUP,
           OPT_PASSAGE_TOKENS, OPT_NO_TRIM, OPT_DRAFT, OPT_DRAFT_MAX, OPT_OCR_LANG, OPT_NO_OCR,
           OPT_REMOTE, OPT_YES, OPT_NETWORK };
    bool is_ask = !strcmp(cmd, "ask");
    a->lookup = -1;
    a->draft_max = ENG_DRAFT_MAX_DEFAULT;
    static const struct option longs[] = {
        {"home", required_argument, NULL, CLI_OPT_HOME},
        {"embed-model", required_argument, NULL, 'e'}, {"model", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'}, {"max-tokens", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, CLI_OPT_JSON}, {"prune", no_argument, NULL, OPT_PRUNE},
        {"ocr-lang", required_argument, NULL, OPT_OCR_LANG},
        {"no-ocr", no_argument, NULL, OPT_NO_OCR},
        {"rerank", required_argument, NULL, OPT_RERANK},
        {"no-rerank", no_argument, NULL, OPT_NO_RERANK},
        {"lookup", required_argument, NULL, OPT_LOOKUP},
        {"passage-tokens", required_argument, NULL, OPT_PASSAGE_TOKENS},
        {"no-trim", no_argument, NULL, OPT_NO_TRIM},
        {"draft", required_argument, NULL, OPT_DRAFT},
        {"draft-max", required_argument, NULL, OPT_DRAFT_MAX},
        {"grammar", required_argument, NULL, CLI_OPT_GRAMMAR},
        {"schema", required_argument, NULL, CLI_OPT_SCHEMA},
        {"json-output", no_argument, NULL, CLI_OPT_JSON_OUTPUT},
        {"remote", required_argument, NULL, OPT_REMOTE}, {"yes", no_argument, NULL, OPT_YES},
        {"network", no_argument, NULL, OPT_NETWORK},
        {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    long n;
    while ((c = cli_getopt(cmd, argc, argv, ":e:m:t:k:n:h", longs)) != -1) {
        switch (c) {
        case CLI_OPT_HOME: a->home = optarg; break;
        case 'e': a->embed_model = optarg; break;
        case 'm': a->chat_model = optarg; break;
        case 't':
            if (!cli_int(optarg, 1, 512, &n))
                return cli_usage(cmd, "-t %s: expected 1 to 512", optarg);
            a->threads = (int)n;
            break;
        case 'k':
            if (!cli_int(optarg, 1, 100, &n))
                return cli_usage(cmd, "-k %s: expected 1 to 100", optarg);
            a->k = (int)n;
            break;
        case 'n':
            if (!cli_int(optarg, 1, 1 << 20, &n))
                return cli_usage(cmd, "-n %s: expected a positive number", optarg);
            a->max_tokens = (int)n;
            break;
        case CLI_OPT_JSON: a->json = true; break;
        case OPT_PRUNE: a->prune = true; break;
        case OPT_OCR_LANG: a->ocr_lang = optarg; break;
        case OPT_NO_OCR: a->no_ocr = true; break;
        case OPT_RERANK: a->rerank_model = optarg; break;
        case OPT_NO_RERANK: a->no_rerank = true; break;
        case OPT_LOOKUP:
            if (!cli_int(optarg, 0, 8, &n))
                return cli_usage(cmd, "--lookup %s: expected 0 to 8", optarg);
            a->lookup = (int)n;
            break;
        case OPT_PASSAGE_TOKENS:
            if (!cli_int(optarg, 16, 1 << 20, &n))
                return cli_usage(cmd, "--passage-tokens %s: expected 16 or more", optarg);
            a->passage_tokens = (int)n;
            break;
        case OPT_NO_TRIM: a->no_trim = true; break;
        case OPT_NETWORK:
            if (strcmp(cmd, "doctor"))
                return cli_usage(cmd, "--network is for doctor");
            a->network = true;
            break;
        case OPT_REMOTE:
        case OPT_YES:
            if (!is_ask)
                return cli_usage(cmd, "--remote and --yes are for ask");
            if (c == OPT_REMOTE)
                a->remote = optarg;
            else
                a->yes = true;
            break;
        case CLI_OPT_GRAMMAR:
        case CLI_OPT_SCHEMA:
        case CLI_OPT_JSON_OUTPUT:
            if (!is_ask)
                return cli_usage(cmd, "--schema, --grammar and --json-output are for ask");
            if (c == CLI_OPT_GRAMMAR)
                a->out.grammar_file = optarg;
            else if (c == CLI_OPT_SCHEMA)
                a->out.schema_file = optarg;
            else
                a->out.json_output = true;
            break;
        case OPT_DRAFT: a->draft = optarg; break;
        case OPT_DRAFT_MAX:
            if (!cli_int(optarg, 1, 8, &n))
                return cli_usage(cmd, "--draft-max %s: expected 1 to 8", optarg);
            a->draft_max = (int)n;
            break;
        case 'h':
            printf("%s", help);
            printf("\ncommon options:\n"
                   "  --home DIR          data directory (default $CAIRN_HOME, else\n"
                   "                      $XDG_DATA_HOME/cairn, else ~/.local/share/cairn)\n"
                   "  -e, --embed-model F embedding model (GGUF) for hybrid search\n"
                   "                      (default $CAIRN_EMBED_MODEL)\n"
                   "  -m, --model F       language model (GGUF) for written answers\n"
                   "                      (default $CAIRN_CHAT_MODEL)\n"
                   "  -t N                threads\n"
                   "Options may come before or after the operands; an operand that starts\n"
                   "with '-' goes after `--`.\n");
            return -1;
        default: return 2;
        }
    }
    a->rest = argv + optind;
    a->n_rest = argc - optind;
    if (a->embed_model && !*a->embed_model)
        a->embed_model = NULL;
    if (a->chat_model && !*a->chat_model)
        a->chat_model = NULL;
    if (a->rerank_model && a->no_rerank)
        return cli_usage(cmd, "--rerank and --no-rerank together: choose one");
    if (a->remote && (a->out.schema_file || a->out.grammar_file || a->out.json_output))
        return cli_usage(cmd, "--remote with --schema, --grammar or --json-output: a remote "
                              "model's answer cannot be held to a JSON shape; ask a local model "
                              "for that");
    return resolve_models(cmd, a);
}

#define PARSE(cmd, help)                                                                           \
    lib_args a;                                                                                    \
    int prc_ = parse_lib_args(cmd, argc, argv, &a, help);                                          \
    if (prc_)                                                                                      \
        return prc_ < 0 ? 0 : prc_;

static int open_lib(const lib_args *a, lib **l)
{
    cn_err err = {0};
    if (lib_open(l, a->home, &err))
        return cli_error(&err);
    return 0;
}

/* ---- add / index ------------------------------------------------------------ */

typedef struct progress {
    bool tty;
    double t0;
    int64_t pages, passages; /* running totals for the progress line */
} progress;

static const char *outcome_name(int o)
{
    static const char *const names[] = {"", "added", "updated", "unchanged", "failed", "pruned"};
    return o > 0 && o <= LIB_PRUNED ? names[o] : "?";
}

static void on_progress(void *ctx, const lib_event *ev)
{
    progress *p = ctx;
    if (ev->kind == LIB_EV_SCAN) {
        fprintf(stderr, "%d file%s to check\n", ev->files_total, ev->files_total == 1 ? "" : "s");
    } else if (ev->kind == LIB_EV_FILE) {
        double el = cn_now() - p->t0, eta = el / ev->files_done * (ev->files_total - ev->files_done);
        if (p->tty)
            fprintf(stderr, "\r\033[K");
        if (ev->outcome == LIB_FAILED)
            fprintf(stderr, "failed    %s\n", ev->error ? ev->error : ev->path);
        else if (ev->outcome == LIB_UNCHANGED && !p->tty)
            fprintf(stderr, "unchanged %s\n", ev->path);
        else if (ev->outcome != LIB_UNCHANGED)
            fprintf(stderr, "%-9s %s (%d pages, %d passages)%s%s\n", outcome_name(ev->outcome),
                    ev->path, ev->pages, ev->passages, ev->notes && *ev->notes ? ": " : "",
                    ev->notes ? ev->notes : "");
        p->pages += ev->pages;
        p->passages += ev->passages;
        if (p->tty && ev->files_done < ev->files_total) {
            int w = 24, fill = (int)((double)w * ev->files_done / ev->files_total);
            fprintf(stderr, "[%.*s%.*s] %d/%d files, %lld pages, %lld passages, ETA %.0fs", fill,
                    "########################", w - fill, "                        ",
                    ev->files_done, ev->files_total, (long long)p->pages, (long long)p->passages,
                    eta);
        }
    } else if (ev->kind == LIB_EV_OCR) {
        const char *b = strrchr(ev->path, '/');
        b = b ? b + 1 : ev->path;
        if (p->tty)
            fprintf(stderr, "\r\033[K");
        if (ev->error)
            fprintf(stderr, "OCR failed %s\n", ev->error);
        else if (!p->tty)
            fprintf(stderr, "OCR %lld/%lld  %s p. %d: confidence %d %%\n",
                    (long long)ev->embed_done, (long long)ev->embed_total, b, ev->pages,
                    ev->passages);
        if (p->tty && ev->embed_done < ev->embed_total) {
            int w = 24, fill = (int)((double)w * ev->embed_done / ev->embed_total);
            fprintf(stderr, "[%.*s%.*s] OCR %lld/%lld pages (%s p. %d), ETA %.0fs", fill,
                    "########################", w - fill, "                        ",
                    (long long)ev->embed_done, (long long)ev->embed_total, b, ev->pages,
                    ev->eta_s);
        }
    } else if (ev->kind == LIB_EV_EMBED) {
        if (p->tty)
            fprintf(stderr, "\r\033[Kembedding %lld/%lld passages, ETA %.0fs",
                    (long long)ev->embed_done, (long long)ev->embed_total, ev->eta_s);
        else if (ev->embed_done == ev->embed_total || ev->embed_done % 256 < 32)
            fprintf(stderr, "embedding %lld/%lld passages\n", (long long)ev->embed_done,
                    (long long)ev->embed_total);
    }
}

static int run_index(lib *l, const lib_args *a, progress *p)
{
    cn_err err = {0};
    p->t0 = cn_now();
    int n = lib_index(l, a->embed_model, a->threads, on_progress, p, &err);
    if (p->tty)
        fprintf(stderr, "\n");
    if (n < 0)
        return cli_error(&err);
    fprintf(stderr, "%d passages embedded in %.1fs; hybrid search is on for them\n", n,
            cn_now() - p->t0);
    return 0;
}

int cmd_add(int argc, char **argv)
{
    PARSE("add", "usage: cairn add [--prune] [options] PATH...\n\n"
                 "Add files and folders (recursively) to the library: PDF, Word (.docx),\n"
                 "PowerPoint (.pptx), OpenDocument (.odt, .odp), EPUB, RTF, man pages (.1-.9,\n"
                 "also gzip'd), text, Markdown, HTML, and images (.png .jpg .tif). Scanned pages\n"
                 "and images are queued for OCR, which `cairn index` runs.\n"
                 "Unchanged files are skipped, changed ones re-indexed; a file that fails is\n"
                 "reported and the rest go on. Keyword search works as soon as this ends; with\n"
                 "an embedding model, passages are then embedded for hybrid search (resumable:\n"
                 "`cairn index` continues an interrupted run).\n\n"
                 "  --prune             also remove documents whose file is gone\n");
    if (a.n_rest == 0 && !a.prune)
        return cli_usage("add", "missing PATH");
    lib *l;
    if (open_lib(&a, &l))
        return 1;
    progress p = {isatty(2), cn_now(), 0, 0};
    lib_add_stats st;
    cn_err err = {0};
    /* passages sized in the embedding model's own tokens */
    int rc = a.embed_model ? lib_chunk_with(l, a.embed_model, a.threads, &err) : CN_OK;
    if (rc == CN_OK)
        rc = lib_add(l, (const char *const *)a.rest, a.n_rest, a.prune, on_progress, &p, &st,
                     &err);
    if (p.tty)
        fprintf(stderr, "\r\033[K");
    if (rc) {
        lib_close(l);
        return cli_error(&err);
    }
    fprintf(stderr, "%d added, %d updated, %d unchanged, %d failed%s: %lld pages, %lld passages "
                    "in %.1fs\n",
            st.added, st.updated, st.unchanged, st.failed, st.pruned ? ", some pruned" : "",
            (long long)st.pages, (long long)st.passages, cn_now() - p.t0);
    if (st.pruned)
        fprintf(stderr, "%d documents removed (file gone)\n", st.pruned);
    store_ocr_counts oc;
    if (store_ocr_count(lib_store(l), 0, &oc, &err) == CN_OK && oc.pending)
        fprintf(stderr, "%lld scanned page%s (no text layer) wait for OCR: `cairn index` reads "
                        "them\n",
                (long long)oc.pending, oc.pending == 1 ? "" : "s");
    int ret = 0;
    if (a.embed_model)
        ret = run_index(l, &a, &p);
    lib_close(l);
    return ret ? ret : st.failed && !st.added && !st.updated && !st.unchanged ? 1 : 0;
}

typedef struct path_list {
    char **paths;
    int n, cap;
} path_list;

static int collect_path(void *ctx, const store_doc_info *d)
{
    path_list *pl = ctx;
    if (pl->n == pl->cap) {
        int cap = pl->cap ? pl->cap * 2 : 64;
        char **p = cn_realloc_array(pl->paths, (size_t)cap, sizeof *p);
        if (!p)
            return CN_ENOMEM;
        pl->paths = p;
        pl->cap = cap;
    }
    pl->paths[pl->n] = strdup(d->path);
    return pl->paths[pl->n++] ? 0 : CN_ENOMEM;
}

int cmd_sync(int argc, char **argv)
{
    PARSE("sync", "usage: cairn sync [options]\n\n"
                  "Bring the library up to date with the files it holds: re-index the ones that\n"
                  "changed, remove the ones that are gone (like `cairn add --prune` over every\n"
                  "document's path).\n");
    lib *l;
    if (open_lib(&a, &l))
        return 1;
    path_list pl = {0};
    cn_err err = {0};
    int rc = store_list(lib_store(l), collect_path, &pl, &err);
    if (rc == CN_OK && a.embed_model)
        rc = lib_chunk_with(l, a.embed_model, a.threads, &err);
    progress p = {isatty(2), cn_now(), 0, 0};
    lib_add_stats st = {0};
    if (rc == CN_OK) {
        /* files that are gone are left to the prune, not reported as failures */
        int k = 0;
        for (int i = 0; i < pl.n; i++)
            if (access(pl.paths[i], F_OK) == 0)
                pl.paths[k++] = pl.paths[i];
            else
                free(pl.paths[i]);
        pl.n = k;
        rc = lib_add(l, (const char *const *)pl.paths, pl.n, true, on_progress, &p, &st, &err);
    }
    if (p.tty)
        fprintf(stderr, "\r\033[K");
    if (rc == CN_OK)
        fprintf(stderr, "%d updated, %d unchanged, %d failed, %d removed (file gone)\n",
                st.updated, st.unchanged, st.failed, st.pruned);
    for (int i = 0; i < pl.n; i++)
        free(pl.paths[i]);
    free(pl.paths);
    int ret = rc ? cli_error(&err) : 0;
    if (!ret && a.embed_model)
        ret = run_index(l, &a, &p);
    lib_close(l);
    return ret;
}

/* The OCR phase: pages queued by `add` read by tesseract. Returns 0, or 1
** after printing why OCR could not run (the pages stay queued). */
static int run_ocr(lib *l, const lib_args *a, progress *p)
{
    cn_err err = {0};
    store_ocr_counts c;
    if (store_ocr_count(lib_store(l), 0, &c, &err))
        return cli_error(&err);
    if (c.pending == 0)
        return 0;
    if (a->no_ocr) {
        fprintf(stderr, "%lld scanned pages wait for OCR (left for later: --no-ocr)\n",
                (long long)c.pending);
        return 0;
    }
    fprintf(stderr, "OCR of %lld scanned page%s (%d at a time)\n", (long long)c.pending,
            c.pending == 1 ? "" : "s", a->threads > 0 ? a->threads : 2);
    lib_ocr_stats st;
    p->t0 = cn_now();
    int n = lib_ocr(l, a->ocr_lang, a->threads, on_progress, p, &st, &err);
    if (p->tty)
        fprintf(stderr, "\r\033[K");
    if (n < 0) {
        fprintf(stderr, "cairn: %s\n", err.msg);
        fprintf(stderr, "(%lld scanned pages stay queued; the rest of the library works)\n",
                (long long)c.pending);
        return 1;
    }
    fprintf(stderr, "%d page%s read by OCR in %.1fs (%.1f s a page), mean confidence %.0f %%%s",
            st.pages, st.pages == 1 ? "" : "s", st.seconds, st.pages ? st.seconds / st.pages : 0,
            st.mean_conf, st.failed ? "" : "\n");
    if (st.failed)
        fprintf(stderr, "; %d could not be read (see above)\n", st.failed);
    if (st.low)
        fprintf(stderr, "%d page%s below %.0f %% confidence: `cairn ls` flags them\n", st.low,
                st.low == 1 ? "" : "s", STORE_OCR_LOW_CONF);
    return 0;
}

int cmd_index(int argc, char **argv)
{
    PARSE("index", "usage: cairn index [-e MODEL.gguf] [--ocr-lang eng+fra] [--no-ocr] [options]\n\n"
                   "Finish indexing in the background phases `cairn add` leaves:\n"
                   "  1. OCR: scanned pages and images (no text layer) are read by tesseract, two\n"
                   "     pages at a time (-t), each committed when read (resumable);\n"
                   "  2. with an embedding model, vectors for every passage that has none for it\n"
                   "     (resumable; committed in batches).\n\n"
                   "  --ocr-lang L        tesseract languages, '+'-joined (default: the installed\n"
                   "                      ones that match the locale, and eng)\n"
                   "  --no-ocr            leave scanned pages queued\n");
    lib *l;
    if (open_lib(&a, &l))
        return 1;
    cn_err err = {0};
    store_ocr_counts c;
    if (store_ocr_count(lib_store(l), 0, &c, &err)) {
        lib_close(l);
        return cli_error(&err);
    }
    if (!a.embed_model && (c.pending == 0 || a.no_ocr)) {
        lib_close(l);
        if (c.pending)
            fprintf(stderr, "%lld scanned pages wait for OCR (--no-ocr given)\n",
                    (long long)c.pending);
        return cli_usage("index", "nothing to do: no page waits for OCR; give -e MODEL (or "
                                  "CAIRN_EMBED_MODEL) to embed passages");
    }
    progress p = {isatty(2), cn_now(), 0, 0};
    int rc = run_ocr(l, &a, &p);
    if (a.embed_model) {
        int r2 = run_index(l, &a, &p);
        rc = rc ? rc : r2;
    }
    lib_close(l);
    return rc;
}

/* ---- ls / rm ------------------------------------------------------------------ */

typedef struct ls_ctx {
    json_t *arr;
    store *st;
} ls_ctx;

static int print_doc(void *ctx, const store_doc_info *d)
{
    ls_ctx *lc = ctx;
    json_t *arr = lc->arr;
    store_ocr_counts oc = {0};
    cn_err e2 = {0};
    if (!d->failed)
        store_ocr_count(lc->st, d->id, &oc, &e2);
    char ocr[160] = "";
    if (oc.pending || oc.done || oc.failed) {
        int k = snprintf(ocr, sizeof ocr, "  [OCR: %lld read", (long long)oc.done);
        if (oc.low)
            k += snprintf(ocr + k, sizeof ocr - (size_t)k, ", %lld LOW CONFIDENCE",
                          (long long)oc.low);
        if (oc.pending)
            k += snprintf(ocr + k, sizeof ocr - (size_t)k, ", %lld waiting (cairn index)",
                          (long long)oc.pending);
        if (oc.failed)
            k += snprintf(ocr + k, sizeof ocr - (size_t)k, ", %lld failed", (long long)oc.failed);
        snprintf(ocr + k, sizeof ocr - (size_t)k, "]");
    }
    if (arr) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(d->id));
        json_object_set_new(o, "path", json_string(d->path));
        json_object_set_new(o, "title", d->title ? json_string(d->title) : json_null());
        json_object_set_new(o, "kind", json_string(d->kind ? d->kind : ""));
        json_object_set_new(o, "pages", json_integer(d->n_pages));
        json_object_set_new(o, "passages", json_integer(d->n_passages));
        json_object_set_new(o, "status", json_string(d->failed ? "failed" : "indexed"));
        if (d->failed)
            json_object_set_new(o, "error", json_string(d->error ? d->error : ""));
        if (oc.pending || oc.done || oc.failed)
            json_object_set_new(o, "ocr", lib_ocr_counts_json(&oc));
        json_array_append_new(arr, o);
    } else if (d->failed) {
        printf("%4lld  failed   %s: %s\n", (long long)d->id, d->path, d->error ? d->error : "");
    } else {
        printf("%4lld  %-6s %4d p. %5d psg  %s%s%s%s%s\n", (long long)d->id,
               d->kind ? d->kind : "", d->n_pages, d->n_passages, d->path, d->title ? " (" : "",
               d->title ? d->title : "", d->title ? ")" : "", ocr);
    }
    return 0;
}

int cmd_ls(int argc, char **argv)
{
    PARSE("ls", "usage: cairn ls [--json] [options]\n\nList the documents in the library.\n");
    lib *l;
    if (open_lib(&a, &l))
        return 1;
    cn_err err = {0};
    json_t *arr = a.json ? json_array() : NULL;
    ls_ctx lc = {arr, lib_store(l)};
    int rc = store_list(lib_store(l), print_doc, &lc, &err);
    if (arr) {
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "[]");
        free(s);
        json_decref(arr);
    }
    lib_close(l);
    return rc ? cli_error(&err) : 0;
}

int cmd_rm(int argc, char **argv)
{
    PARSE("rm", "usage: cairn rm DOC...\n\nRemove documents (by id, as `cairn ls` shows, or "
                "by path) and all their passages and vectors; a document uploaded\nthrough "
                "`cairn serve` also loses the copy stored in the data directory.\n");
    if (!a.n_rest)
        return cli_usage("rm", "missing DOC");
    lib *l;
    if (open_lib(&a, &l))
        return 1;
    int ret = 0;
    for (int i = 0; i < a.n_rest; i++) {
        cn_err err = {0};
        long id;
        char real[4096];
        int rc;
        /* an uploaded file (the server's copy) goes with its document */
        if (cli_int(a.rest[i], 1, 1L << 62, &id))
            rc = lib_remove(l, id, NULL, NULL, &err);
        else
            rc = lib_remove(l, 0, realpath(a.rest[i], real) ? real : a.rest[i], NULL, &err);
        if (rc) {
            if (rc == CN_ENOTFOUND)
                cn_fail(&err, rc, "%s: no such document in the library", a.rest[i]);
            ret = cli_error(&err);
        } else {
            fprintf(stderr, "removed %s\n", a.rest[i]);
        }
    }
    lib_close(l);
    return ret;
}

/* ---- search / ask --------------------------------------------------------------- */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int join_query(const lib_args *a, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < a->n_rest; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? " " : "", a->rest[i]);
        if (w < 0 || (size_t)w >= cap - len)
            return -2; /* a query is never cut silently */
        len += (size_t)w;
    }
    return buf[0] ? 0 : -1;
}

typedef struct scored {
    lib_result r;
    float score;
    int rank;
} scored;

static int by_rerank(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->rank > y->rank) - (x->rank < y->rank); /* ties keep the search's order */
}

int cli_rerank_results(eng_encoder *e, const tok_vocab *v, const char *q, lib_result *res, int n,
                       cn_err *err)
{
    if (n == 0)
        return CN_OK;
    const char **texts = cn_malloc_array((size_t)n, sizeof *texts);
    size_t *lens = cn_malloc_array((size_t)n, sizeof *lens);
    float *sc = cn_malloc_array((size_t)n, sizeof *sc);
    scored *s = cn_malloc_array((size_t)n, sizeof *s);
    int rc = texts && lens && sc && s ? CN_OK : cn_fail(err, CN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        texts[i] = res[i].text;
        lens[i] = strlen(res[i].text);
    }
    if (!rc)
        rc = eng_rerank_texts(e, v, q, strlen(q), texts, lens, n, sc, NULL, err);
    if (!rc) {
        for (int i = 0; i < n; i++)
            s[i] = (scored){res[i], sc[i], i};
        qsort(s, (size_t)n, sizeof *s, by_rerank);
        for (int i = 0; i < n; i++) {
            res[i] = s[i].r;
            res[i].score = s[i].score;
        }
    }
    free(texts);
    free(lens);
    free(sc);
    free(s);
    return rc;
}

/* cli_rerank_results with the reranker at path, opened for this one run. */
static int rerank_results(const char *path, int threads, const char *q, lib_result *res, int n,
                          cn_err *err)
{
    if (n == 0)
        return CN_OK;
    eng_opts o = {.n_threads = threads};
    eng_encoder *e = NULL;
    tok_vocab *v = NULL;
    int rc = cli_open_encoder(path, &o, true, &e, &v, err);
    if (!rc)
        rc = cli_rerank_results(e, v, q, res, n, err);
    tok_close(v);
    eng_encoder_close(e);
    return rc;
}

/* The query from the command's words, the library opened and searched: what
** search and ask both start with. Returns the number of results, or -1 after
** reporting (usage problem or error) with *status set to the exit status.
** A reranker named on the command line that fails is an error; the active
** one (installed, not named) that fails is reported and left out, so a
** damaged model file never stops search itself. */
static int open_and_search(const char *cmd, const lib_args *a, int k_default, char *q, size_t qcap,
                           lib **l, cn_arena *ar, lib_result *res, lib_search_info *info,
                           cn_err *err, int *status)
{
    *l = NULL;
    cn_arena_init(ar, (size_t)1 << 30);
    int jq = join_query(a, q, qcap);
    if (jq) {
        const char *what = !strcmp(cmd, "ask") ? "QUESTION" : "QUERY";
        *status = jq == -2 ? cli_usage(cmd, "%s is longer than %zu bytes", what, qcap - 1)
                           : cli_usage(cmd, "missing %s", what);
        return -1;
    }
    if (open_lib(a, l)) {
        *status = 1;
        return -1;
    }
    int k = a->k ? a->k : k_default;
    lib_search_opts so = {.k = a->rerank_model ? CN_MAX(k, CLI_RERANK_CANDIDATES) : k,
                          .embed_model = a->embed_model, .threads = a->threads};
    int n = lib_search(*l, q, &so, ar, res, info, err);
    if (n >= 0 && a->rerank_model) {
        cn_err rerr = {0};
        if (rerank_results(a->rerank_model, a->threads, q, res, n, &rerr) == CN_OK) {
            info->mode = !strcmp(info->mode, "hybrid") ? "hybrid + rerank" : "keyword + rerank";
        } else if (a->rerank_active) {
            fprintf(stderr, "cairn %s: note: the active reranker '%s' cannot be used (%s); "
                            "these results are not reranked (`cairn models verify %s`, `cairn "
                            "models rm %s`, or --no-rerank)\n",
                    cmd, a->rerank_name, rerr.msg, a->rerank_name, a->rerank_name);
        } else {
            *err = rerr;
            n = -1;
        }
        if (n >= 0)
            n = CN_MIN(n, k);
    }
    if (n < 0)
        *status = cli_error(err);
    return n;
}

int cmd_search(int argc, char **argv)
{
    PARSE("search", "usage: cairn search [-k 5] [--json] [options] QUERY\n\n"
                    "Rank passages of the library: keyword (bm25), or hybrid (keyword + vector,\n"
                    "reciprocal rank fusion) with an embedding model; then, when a reranker is\n"
                    "installed (or given), the top 30 candidates are rescored by it and the best\n"
                    "k kept, their scores the reranker's.\n\n"
                    "  --rerank M          reranker (a cross-encoder GGUF file or an installed\n"
                    "                      model's name; default: the active reranker)\n"
                    "  --no-rerank         do not rerank, even with a reranker installed\n");
    char q[8192];
    lib *l;
    cn_arena ar;
    lib_result res[100];
    lib_search_info info;
    cn_err err = {0};
    int status = 0;
    int n = open_and_search("search", &a, 5, q, sizeof q, &l, &ar, res, &info, &err, &status);
    if (n >= 0 && a.json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, lib_result_json(&res[i]));
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "[]");
        free(s);
        json_decref(arr);
    } else if (n >= 0) {
        fprintf(stderr, "%d result%s (%s search)\n", n, n == 1 ? "" : "s", info.mode);
        for (int i = 0; i < n; i++) {
            printf("[%d] %s, p. %d%s%s%s  (score %.3f)\n", i + 1, base_name(res[i].path),
                   res[i].page, res[i].ocr ? " (OCR)" : "", res[i].locator ? ", " : "",
                   res[i].locator ? res[i].locator : "", res[i].score);
            printf("    %.300s%s\n\n", res[i].text, strlen(res[i].text) > 300 ? "..." : "");
        }
    }
    cn_arena_free(&ar);
    lib_close(l);
    return n < 0 ? status : 0;
}

typedef struct ask_out {
    rag_cite_filter f;
    cn_buf text;
    bool json;
    bool raw; /* the answer's shape is the user's (--schema): no citation check */
    /* timings (seconds since the command started), for --json */
    double t0, t_search, t_sources, t_first;
    eng_gen_stats gen;
    rag_prompt_info prompt; /* passages used, their tokens whole and trimmed */
} ask_out;

static int ask_token(void *ctx, int32_t id, const char *text, size_t len)
{
    ask_out *o = ctx;
    (void)id;
    if (o->t_first == 0)
        o->t_first = cn_now() - o->t0;
    size_t before = o->text.len;
    if (o->raw)
        cn_buf_append(&o->text, text, len);
    else
        rag_cite_feed(&o->f, text, len, &o->text);
    if (!o->json) {
        fwrite(o->text.data + before, 1, o->text.len - before, stdout);
        fflush(stdout);
    }
    return 0;
}

/* Written answer with a language model; returns 0 or an exit status. */
static int ask_with_model(const lib_args *a, const char *q, rag_source *src, int n, bool *used,
                          ask_out *out, int *n_used, cn_err *err)
{
    eng_opts eo = {.n_threads = a->threads};
    eng_model *m = NULL;
    tok_vocab *v = NULL;
    int32_t *ids = NULL;
    int n_ids = 0;
    int rc = eng_model_open(&m, a->chat_model, &eo, err);
    if (!rc)
        rc = tok_open(&v, eng_model_gguf(m), err);
    int n_ctx = m ? eng_model_n_ctx(m) : 0;
    if (!rc) {
        gguf_str tmpl = {0};
        gguf_get_str(eng_model_gguf(m), "tokenizer.chat_template", &tmpl, NULL);
        const char *fam = tok_chat_family(tmpl.ptr, (size_t)tmpl.len, eng_model_hparams(m)->arch);
        rag_trim_opts trim = rag_trim_defaults();
        if (a->passage_tokens)
            trim.budget = a->passage_tokens;
        rc = rag_prompt_tokens(v, fam, n_ctx, q, src, n, a->no_trim ? NULL : &trim, &ids,
                               &n_ids, &out->prompt, err);
        *n_used = out->prompt.n_used;
    }
    if (!rc && *n_used < n)
        fprintf(stderr, "note: %d of %d passages fit the model's %d-token context\n", *n_used, n,
                n_ctx);
    if (!rc && out->prompt.n_trimmed && !a->json)
        fprintf(stderr, "note: passages trimmed to the question: %d of %d tokens kept "
                        "(--passage-tokens N to change, --no-trim for whole passages)\n",
                out->prompt.passage_kept, out->prompt.passage_tokens);
    gr_grammar *g = NULL;
    if (!rc)
        rc = cli_run_grammar(&a->out, &g, err);
    if (!rc) {
        rag_cite_init(&out->f, *n_used, used);
        out->raw = g != NULL; /* JSON: "[1]" may be an array, not a citation */
        int reserve = rag_answer_reserve(n_ctx);
        int n_predict = a->max_tokens ? CN_MIN(a->max_tokens, n_ctx - n_ids) : reserve;
        /* answers from documents: the most likely words, and where they quote
        ** the passages, several checked at once */
        eng_gen_opts go = {.n_predict = n_predict, .sampler = eng_sampler_defaults(),
                           .lookup = a->lookup >= 0 ? a->lookup : RAG_LOOKUP,
                           .draft_max = a->draft_max, .grammar = g};
        go.sampler.temp = 0;
        rc = cli_open_draft(a->home, a->draft, m, v, &go.draft, err);
        if (!rc)
            rc = eng_generate(m, v, ids, n_ids, &go, ask_token, out, &out->gen, err);
        rag_cite_flush(&out->f, &out->text);
        eng_model_close(go.draft);
    }
    gr_free(g);
    free(ids);
    tok_close(v);
    eng_model_close(m);
    return rc;
}

/* No language model: say what is used now and the one command that gets
** written answers (nothing is downloaded without it). */
static void upgrade_hint(const char *home)
{
    mdl_catalog *c;
    if (mdl_catalog_load(home, NULL, &c, NULL) != CN_OK) {
        fprintf(stderr, "(extractive answer: no language model installed; see `cairn models "
                        "recommend`)\n");
        return;
    }
    mdl_hw hw;
    mdl_hw_detect(home, &hw);
    char why[512], sz[32];
    const mdl_entry *e = mdl_recommend(c, &hw, "chat", why, sizeof why);
    if (e)
        fprintf(stderr, "(extractive answer: the best sentences of the best passages, since no "
                        "language model is installed.\n For written answers: cairn models pull "
                        "%s   (%s download, %.1f GB of memory; or -m FILE.gguf))\n",
                e->name, cli_size((uint64_t)e->size, sz), e->ram_mb / 1024.0);
    else
        fprintf(stderr, "(extractive answer: no language model installed, and none in the "
                        "catalog fits this machine: %s)\n", why);
    mdl_catalog_free(c);
}

/* "[n] file.pdf, p. 12" and, indented on the next line, the passage's first
** max bytes with each run of white space as one space. */
static void print_source_line(const rag_source *src, int i, size_t max)
{
    cn_buf b;
    cn_buf_init(&b, 4096);
    rag_format_source(src, i, &b);
    size_t len = strlen(src->text);
    size_t cut = cn_utf8_valid_prefix(src->text, CN_MIN(len, max));
    printf("%s\n    ", b.data ? b.data : "");
    for (size_t k = 0; k < cut; k++) {
        bool sp = isspace((unsigned char)src->text[k]);
        if (!sp || (k > 0 && !isspace((unsigned char)src->text[k - 1])))
            putchar(sp ? ' ' : src->text[k]);
    }
    printf("%s\n", cut < len ? "..." : "");
    cn_buf_free(&b);
}

/* Before a model writes: each passage it will read, flushed so that a pipe
** shows it too. */
static void print_sources_first(const rag_source *src, int n)
{
    printf("Sources:\n");
    for (int i = 0; i < n; i++)
        print_source_line(&src[i], i, 160);
    printf("\n");
    fflush(stdout);
}

/* After a written answer: which of the sources shown first it cites. */
static void print_cited(const rag_source *src, int n, const bool *used)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!used[i])
            continue;
        cn_buf b;
        cn_buf_init(&b, 4096);
        rag_format_source(&src[i], i, &b);
        printf("%s%s", k++ ? "; " : "\n\nCited: ", b.data ? b.data : "");
        cn_buf_free(&b);
    }
    printf(k ? "\n" : "\n\n(The answer cites none of the sources.)\n");
}

/* Source [i + 1] of an answer, as `ask --json` lists it. */
static json_t *source_json(const rag_source *src, int i, bool cited)
{
    json_t *s = json_object();
    json_object_set_new(s, "n", json_integer(i + 1));
    json_object_set_new(s, "cited", json_boolean(cited));
    json_object_set_new(s, "doc", json_string(base_name(src->path)));
    json_object_set_new(s, "path", json_string(src->path));
    json_object_set_new(s, "page", json_integer(src->page_start));
    json_object_set_new(s, "locator", src->locator ? json_string(src->locator) : json_null());
    json_object_set_new(s, "ocr", json_boolean(src->ocr));
    json_object_set_new(s, "text", json_string(src->text));
    return s;
}

/* ---- ask --remote: with the user's consent, a model elsewhere ---------------- */

/* Ask on the terminal itself (not stdin, which may be a pipe): true for y/yes.
** *no_tty when there is no terminal to ask on. */
static bool consent(const char *question, bool *no_tty)
{
    FILE *tty = fopen("/dev/tty", "r+");
    *no_tty = tty == NULL;
    if (!tty)
        return false;
    fprintf(tty, "%s", question);
    fflush(tty);
    char line[64] = "";
    bool yes = fgets(line, sizeof line, tty) &&
               (!strcmp(line, "y\n") || !strcmp(line, "Y\n") || !strncasecmp(line, "yes\n", 4));
    fclose(tty);
    return yes;
}

typedef struct remote_out {
    rag_cite_filter f;
    cn_buf text;
    bool json;
} remote_out;

static int remote_text(void *ctx, const char *t, size_t n)
{
    remote_out *o = ctx;
    if (!t)
        return 0; /* still wanted: Ctrl-C ends the whole command */
    size_t before = o->text.len;
    rag_cite_feed(&o->f, t, n, &o->text);
    if (!o->json) {
        fwrite(o->text.data + before, 1, o->text.len - before, stdout);
        fflush(stdout);
    }
    return 0;
}

/* The question and the passages to the remote a->remote, after showing
** exactly what leaves and asking (or --yes). Returns 0 when it answered,
** an exit status to stop with, or -1: nothing (more) from the remote, the
** local answer follows. Every call made is in the audit log. */
static int ask_remote(const lib_args *a, const char *home, const char *q, rag_source *src, int n,
                      bool *used)
{
    rmt_endpoint e;
    cn_err err = {0};
    if (rmt_get(a->remote, &e, &err))
        return cli_error(&err);
    /* the settings' redact patterns, applied before anything is shown or sent */
    rmt_redactor *red = NULL;
    if (rmt_redactor_load(&red, &err))
        return cli_error(&err);
    int n_red = 0, k;
    char *rq = rmt_redact(red, q, &k);
    n_red += k;
    rag_source rsrc[100];
    char *rtext[100] = {0};
    size_t rlen[100] = {0}; /* the sizes sent */
    bool oom = !rq;
    for (int i = 0; i < n && !oom; i++) {
        rsrc[i] = src[i];
        rsrc[i].text = rtext[i] = rmt_redact(red, src[i].text, &k);
        oom = !rtext[i];
        rlen[i] = rtext[i] ? strlen(rtext[i]) : 0;
        n_red += k;
    }
    int n_patterns = rmt_redactor_count(red);
    rmt_redactor_free(red);
    /* whole passages, as many as fit a generous budget: the remote's
    ** context is larger than ours, and its tokenizer is not known here */
    cn_buf user;
    cn_buf_init(&user, (size_t)16 << 20);
    int used_n = oom ? cn_fail(&err, CN_ENOMEM, "redacting: out of memory; nothing sent")
                     : rag_build_user(rq, rsrc, n, 6000, NULL, NULL, &user, &err);
    for (int i = 0; i < n; i++)
        free(rtext[i]);
    if (used_n <= 0) {
        cn_buf_free(&user);
        free(rq);
        return used_n < 0 ? cli_error(&err) : -1;
    }
    size_t blen;
    char *body = rmt_body(&e, rag_system_prompt, user.data, a->max_tokens ? a->max_tokens : 1024,
                          &blen);
    cn_buf_free(&user);
    if (!body) {
        cn_fail(&err, CN_ENOMEM, "out of memory");
        return cli_error(&err);
    }
    fprintf(stderr, "This would leave the machine, to remote %s (%s, model %s):\n", e.name,
            e.base_url, e.model);
    fprintf(stderr, "  the question: %s\n", rq);
    free(rq);
    for (int i = 0; i < used_n; i++)
        fprintf(stderr, "  passage [%d] %s, p. %d (%zu bytes)\n", i + 1, base_name(src[i].path),
                src[i].page_start, rlen[i]);
    if (n_patterns)
        fprintf(stderr, "  redacted: %d match%s of the %d pattern%s in the settings, each sent as "
                        "[redacted]\n", n_red, n_red == 1 ? "" : "es", n_patterns,
                n_patterns == 1 ? "" : "s");
    fprintf(stderr, "  with the instructions: %zu bytes in all, about %zu tokens, one request\n",
            blen, blen / 4);
    bool no_tty = false;
    if (!a->yes && !consent("Send? [y/N] ", &no_tty)) {
        free(body);
        if (no_tty) {
            fprintf(stderr, "cairn ask: nothing sent: no terminal to ask on (--yes sends "
                            "without asking, for scripts)\n");
            return 1;
        }
        fprintf(stderr, "Not sent. The local answer:\n");
        return -1;
    }
    if (!a->json)
        print_sources_first(src, used_n);
    remote_out o = {.json = a->json};
    cn_buf_init(&o.text, (size_t)16 << 20);
    rag_cite_init(&o.f, used_n, used);
    rmt_result res;
    int rc = rmt_chat(&e, body, blen, remote_text, &o, &res, &err);
    rag_cite_flush(&o.f, &o.text);
    free(body);
    /* the record: where, which pages, how much -- never the text */
    json_t *pages = json_array();
    for (int i = 0; i < used_n; i++)
        json_array_append_new(pages, json_pack("{s:s, s:i, s:I}", "doc", base_name(src[i].path),
                                               "page", src[i].page_start, "bytes",
                                               (json_int_t)rlen[i]));
    cn_err aerr = {0};
    if (rmt_audit_call(home, &e, "cli", pages, &res, rc ? err.msg : NULL, &aerr))
        fprintf(stderr, "cairn ask: note: the audit log: %s\n", aerr.msg);
    if (rc) {
        fprintf(stderr, "%scairn ask: %s. The local answer:\n", o.text.len && !a->json ? "\n" : "",
                err.msg);
        cn_buf_free(&o.text);
        memset(used, 0, sizeof *used * (size_t)n);
        return -1;
    }
    if (a->json) {
        json_t *js = json_object(), *srcs = json_array(), *bad = json_array();
        json_object_set_new(js, "answer", json_string(o.text.data ? o.text.data : ""));
        json_object_set_new(js, "mode", json_string("remote"));
        json_object_set_new(js, "remote", json_string(e.name));
        for (int i = 0; i < used_n; i++)
            json_array_append_new(srcs, source_json(&src[i], i, used[i]));
        for (int i = 0; i < CN_MIN(o.f.n_invalid, 16); i++)
            json_array_append_new(bad, json_integer(o.f.invalid[i]));
        json_object_set_new(js, "sources", srcs);
        json_object_set_new(js, "dropped_citations", bad);
        json_object_set_new(js, "bytes_sent", json_integer((json_int_t)res.bytes_sent));
        char *s2 = json_dumps(js, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s2 ? s2 : "{}");
        free(s2);
        json_decref(js);
    } else {
        print_cited(src, used_n, used);
    }
    cn_buf_free(&o.text);
    return 0;
}

int cmd_ask(int argc, char **argv)
{
    PARSE("ask", "usage: cairn ask [-k 4] [--json] [options] QUESTION\n\n"
                 "Answer from your documents, citing them as [n] -> file, page. With a language\n"
                 "model (-m FILE or CAIRN_CHAT_MODEL) the passages found are listed at once,\n"
                 "then the model's answer streams; without one, the best sentences of the best\n"
                 "passages are quoted.\n\n"
                 "  -k N                passages to retrieve (default 4)\n"
                 "  -n, --max-tokens N  longest answer, in tokens (default: a quarter of the\n"
                 "                      model's context, at most 512)\n"
                 "  --passage-tokens N  the passages a model reads are trimmed to the\n"
                 "                      sentences that bear on the question (and their\n"
                 "                      neighbours), N tokens in all (default 1024)\n"
                 "  --no-trim           give the model the whole passages\n"
                 "  --json              one JSON object: answer, sources, timings\n"
                 "  --rerank M          rescore the top 30 candidates with this reranker (a\n"
                 "                      cross-encoder GGUF file or an installed model's name;\n"
                 "                      default: the active reranker) and answer from the best k\n"
                 "  --no-rerank         do not rerank, even with a reranker installed\n"
                 "  --lookup K          speculative decoding with the passages as drafts: check\n"
                 "                      up to K tokens at once (1-8; the answer is the same;\n"
                 "                      default 0 = off, see `cairn bench --verify` for its cost)\n"
                 "  --draft M           speculative decoding with a draft model: a smaller model\n"
                 "                      with the same vocabulary (a GGUF file or installed name)\n"
                 "                      proposes tokens while it is sure; the answer is the same\n"
                 "  --draft-max N       tokens the draft model proposes at most (1-8, default 4)\n"
                 "  --schema FILE       the answer is JSON valid against this JSON Schema\n"
                 "                      (decoding is constrained; stdout holds only the JSON)\n"
                 "  --json-output       the answer is a JSON object\n"
                 "  --grammar FILE      the answer follows this GBNF grammar\n"
                 "  --remote NAME       ask a bigger model elsewhere (`cairn remote add`): what\n"
                 "                      would leave the machine -- the question, each passage\n"
                 "                      with its document, page and size, the bytes in all --\n"
                 "                      is shown first, and nothing is sent until you say y;\n"
                 "                      if it fails, the local answer is given\n"
                 "  --yes               send to the remote without asking (scripts; without a\n"
                 "                      terminal and without --yes, nothing is sent)\n");
    char q[8192];
    lib *l;
    cn_arena ar;
    lib_result res[100];
    lib_search_info info;
    cn_err err = {0};
    int ret = 0;
    double t0 = cn_now();
    int n = open_and_search("ask", &a, 4, q, sizeof q, &l, &ar, res, &info, &err, &ret);
    double t_search = cn_now() - t0;
    if (n < 0)
        goto done;
    rag_source src[100];
    bool used[100] = {0};
    for (int i = 0; i < n; i++)
        src[i] = (rag_source){res[i].path, res[i].title, res[i].page, res[i].page,
                              res[i].text, res[i].locator, res[i].ocr};
    /* nothing the documents say: no keyword match and no passage close in
    ** meaning, or the question's rarest words are on no page (lib_not_found);
    ** the model is not called, the closest passages are listed */
    if (lib_not_found(n, &info)) {
        cn_buf msg;
        cn_buf_init(&msg, 4096);
        lib_not_found_text(&info, &msg);
        if (!a.json && (a.out.schema_file || a.out.grammar_file || a.out.json_output)) {
            /* stdout is for the JSON asked for: nothing to shape, a failure */
            fprintf(stderr, "cairn ask: %s\n", msg.data ? msg.data : "not found");
            ret = 1;
        } else if (a.json) { /* --json is JSON whatever the outcome */
            json_t *o = json_object(), *srcs = json_array();
            json_object_set_new(o, "answer", json_string(msg.data ? msg.data : ""));
            json_object_set_new(o, "mode", json_string("not_found"));
            json_object_set_new(o, "search", json_string(info.mode));
            json_object_set_new(o, "missing", json_string(info.missing));
            for (int i = 0; i < n; i++)
                json_array_append_new(srcs, source_json(&src[i], i, false));
            json_object_set_new(o, "sources", srcs);
            json_object_set_new(o, "dropped_citations", json_array());
            char *js = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            printf("%s\n", js ? js : "{}");
            free(js);
            json_decref(o);
        } else {
            printf("%s\n", msg.data ? msg.data : "");
            if (n > 0)
                printf("\nThe closest passages:\n");
            for (int i = 0; i < n; i++)
                print_source_line(&src[i], i, 200);
        }
        cn_buf_free(&msg);
        goto done;
    }
    if (!a.chat_model && (a.out.schema_file || a.out.grammar_file || a.out.json_output)) {
        ret = cli_usage("ask", "--schema, --grammar and --json-output need a language model "
                               "(-m FILE.gguf or an active chat model)");
        goto done;
    }
    if (a.remote) {
        int rs = ask_remote(&a, lib_home(l), q, src, n, used);
        if (rs >= 0) {
            ret = rs;
            goto done;
        }
    }
    ask_out out = {.json = a.json, .t0 = t0, .t_search = t_search};
    cn_buf_init(&out.text, (size_t)64 << 20);
    int n_used = n;
    const char *how;
    if (a.chat_model) {
        how = "generated";
        /* the passages are known now and the model's answer is seconds away
        ** (load, then the prompt): show what it will read at once */
        bool shaped = a.out.schema_file || a.out.grammar_file || a.out.json_output;
        if (!a.json && !shaped)
            print_sources_first(src, n);
        out.t_sources = cn_now() - t0;
        if (ask_with_model(&a, q, src, n, used, &out, &n_used, &err)) {
            ret = cli_error(&err);
            cn_buf_free(&out.text);
            goto done;
        }
    } else {
        how = "extractive";
        int k = rag_extract(q, src, n, 3, &out.text, used);
        if (k <= 0)
            cn_buf_printf(&out.text, "The best passages do not contain sentences that match the "
                                     "question; see the sources below.");
        if (!a.json)
            printf("%s", out.text.data);
    }
    if (a.json) {
        json_t *o = json_object(), *srcs = json_array(), *bad = json_array();
        json_object_set_new(o, "answer", json_string(out.text.data ? out.text.data : ""));
        json_object_set_new(o, "mode", json_string(how));
        json_object_set_new(o, "search", json_string(info.mode));
        for (int i = 0; i < n_used; i++)
            json_array_append_new(srcs, source_json(&src[i], i, used[i]));
        for (int i = 0; i < CN_MIN(out.f.n_invalid, 16); i++)
            json_array_append_new(bad, json_integer(out.f.invalid[i]));
        json_object_set_new(o, "sources", srcs);
        json_object_set_new(o, "dropped_citations", bad);
        json_t *t = json_object(); /* seconds from the start of the command */
        json_object_set_new(t, "search_s", json_real(out.t_search));
        if (a.chat_model) {
            json_object_set_new(t, "sources_s", json_real(out.t_sources));
            json_object_set_new(t, "first_token_s", json_real(out.t_first));
            json_object_set_new(t, "prompt_tokens", json_integer(out.gen.n_prompt));
            json_object_set_new(t, "passage_tokens_before",
                                json_integer(out.prompt.passage_tokens));
            json_object_set_new(t, "passage_tokens_after", json_integer(out.prompt.passage_kept));
            json_object_set_new(t, "prompt_s", json_real(out.gen.t_prompt));
            json_object_set_new(t, "answer_tokens", json_integer(out.gen.n_gen));
            json_object_set_new(t, "answer_s", json_real(out.gen.t_gen));
            json_object_set_new(t, "drafted_tokens", json_integer(out.gen.n_drafted));
            json_object_set_new(t, "accepted_tokens", json_integer(out.gen.n_accepted));
            json_object_set_new(t, "forward_passes", json_integer(out.gen.n_passes));
            json_object_set_new(t, "draft_model_tokens", json_integer(out.gen.n_model_drafted));
            json_object_set_new(t, "draft_model_accepted", json_integer(out.gen.n_model_accepted));
            json_object_set_new(t, "draft_model_s", json_real(out.gen.t_draft));
        }
        json_object_set_new(o, "timings", t);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else if (a.chat_model && out.raw) {
        printf("\n"); /* the answer is the JSON the user asked for, alone on stdout */
        /* a budget below the shortest text the schema allows cuts it: said, and a failure */
        json_t *whole = json_loadb(out.text.data ? out.text.data : "", out.text.len,
                                   JSON_DECODE_ANY, NULL);
        if ((a.out.schema_file || a.out.json_output) && !whole) {
            fprintf(stderr, "cairn ask: the answer was cut at %d tokens before its JSON was "
                            "complete (-n to allow more)\n", out.gen.n_gen);
            ret = 1;
        }
        json_decref(whole);
    } else if (a.chat_model) {
        print_cited(src, n_used, used);
    } else { /* extractive: at once, so the sources follow the answer */
        printf("\n\nSources:\n");
        for (int i = 0; i < n_used; i++) {
            cn_buf b;
            cn_buf_init(&b, 4096);
            rag_format_source(&src[i], i, &b);
            printf("%s%s\n", b.data, used[i] ? "" : " (not cited)");
            cn_buf_free(&b);
        }
        upgrade_hint(lib_home(l));
    }
    if (!a.json && out.f.n_invalid)
        fprintf(stderr, "note: %d citation%s naming no passage dropped from the answer\n",
                out.f.n_invalid, out.f.n_invalid == 1 ? "" : "s");
    /* a weak local answer: suggest a remote, never call it */
    rmt_endpoint rem[1];
    if (!a.json && rmt_list(rem, 1, NULL) > 0) {
        bool cited = false;
        for (int i = 0; i < n_used; i++)
            cited |= used[i];
        const char *why = !a.chat_model ? "no language model is installed here"
                          : n_used < n ? "not all the passages fit this model's context"
                          : !cited && !out.raw ? "the answer cites none of the passages"
                                               : NULL;
        if (why)
            fprintf(stderr, "note: %s; a stronger model may do better: `cairn ask --remote %s "
                            "...` shows what would be sent and asks first\n",
                    why, rem[0].name);
    }
    cn_buf_free(&out.text);
done:
    cn_arena_free(&ar);
    lib_close(l);
    return ret;
}

/* ---- doctor --------------------------------------------------------------------- */

int cmd_doctor(int argc, char **argv)
{
    PARSE("doctor", "usage: cairn doctor [--network] [options]\n\nShow where data lives, what "
                    "the library holds, which models are set, and what level of service is "
                    "active.\n\n  --network           see whether the remotes (`cairn remote ls`) "
                    "answer\n                      (asks each for its model list; sends no "
                    "question)\n");
    bool network = a.network;
    lib *l;
    if (open_lib(&a, &l))
        return 1;
    cn_err err = {0};
    store_stats st = {0};
    int rc = store_stats_get(lib_store(l), &st, &err);
    printf("data directory   %s\n", lib_home(l));
    const char *how = NULL;
    if (lib_encrypted(l, &how))
        printf("encrypted        yes (XChaCha20-Poly1305 per page), unlocked with %s\n", how);
    else
        printf("encrypted        no (`cairn encrypt` to encrypt it at rest)\n");
    printf("library          %s/library.db (schema %d, %.1f MB + %.1f MB WAL)\n", lib_home(l),
           st.schema_version, st.db_bytes / 1e6, st.wal_bytes / 1e6);
    printf("documents        %lld (%lld failed), %lld pages, %lld passages\n",
           (long long)st.n_documents, (long long)st.n_failed, (long long)st.n_pages,
           (long long)st.n_passages);
    printf("embeddings       %lld vectors for %lld model(s)\n", (long long)st.n_embeddings,
           (long long)st.n_models);
    cn_err ck = {0};
    int crc = store_check(lib_store(l), &ck);
    printf("consistency      %s\n", crc ? ck.msg : "ok");
    {
        char inst[256], dflt[128], dir[512];
        store_ocr_counts oc = {0};
        cn_err oe = {0};
        store_ocr_count(lib_store(l), 0, &oc, &oe);
        if (ocr_installed(inst, sizeof inst) > 0) {
            ocr_default_langs(dflt, sizeof dflt);
            printf("OCR              tesseract, languages %s (default %s)", inst, dflt);
        } else {
            printf("OCR              not available: no language data in %s (apt-get install "
                   "tesseract-ocr-eng)",
                   ocr_datadir(dir, sizeof dir));
        }
        printf("; %lld pages read, %lld waiting%s, %lld failed, %lld low confidence\n",
               (long long)oc.done, (long long)oc.pending, oc.pending ? " (cairn index)" : "",
               (long long)oc.failed, (long long)oc.low);
    }
    char cfg[4096] = "(none)";
    cn_config_path(cfg, sizeof cfg);
    printf("settings         %s%s\n", cfg, access(cfg, R_OK) == 0 ? "" : " (not present: defaults)");
    printf("models           %s/models\n", lib_home(l));
    mdl_installed *ins = NULL;
    int n_ins = 0;
    mdl_list(lib_home(l), &ins, &n_ins, NULL);
    for (int i = 0; i < n_ins; i++) {
        char b[32];
        printf("  %-20s %-6s %-10s %s%s\n", ins[i].name, ins[i].role,
               cli_size((uint64_t)ins[i].size, b), ins[i].active ? "active" : "",
               ins[i].has_previous ? ", rollback available" : "");
        if (ins[i].has_staged)
            printf("  %-20s an updated version is ready — `cairn models use %s@%.12s` (the "
                   "current one stays as the fallback)\n", "", ins[i].name,
                   ins[i].staged_sha256);
    }
    if (n_ins == 0)
        printf("  (none installed: `cairn models recommend`)\n");
    free(ins);
    printf("embedding model  %s%s\n", a.embed_model ? a.embed_model : "(none: `cairn models pull` one, or -e FILE)",
           a.embed_active ? " (active)" : "");
    printf("language model   %s%s\n", a.chat_model ? a.chat_model : "(none: `cairn models pull` one, or -m FILE)",
           a.chat_active ? " (active)" : "");
    if (a.rerank_active)
        printf("reranker         %s (%s, active): search and ask rescore their top %d\n",
               a.rerank_name, a.rerank_model, CLI_RERANK_CANDIDATES);
    else
        printf("reranker         %s\n", a.no_rerank ? "(--no-rerank)"
               : a.rerank_model ? a.rerank_model
               : "(none: search is not reranked; `cairn models import` a cross-encoder)");
    mdl_hw hw;
    mdl_hw_detect(lib_home(l), &hw);
    char b1[32], b2[32], b3[32];
    printf("machine          %d cores (%d threads), %s, memory %s (%s available), disk %s free\n",
           hw.cores, hw.threads, hw.simd, cli_size((uint64_t)hw.ram_total, b1),
           cli_size((uint64_t)hw.ram_avail, b2), cli_size((uint64_t)CN_MAX(hw.disk_free, 0), b3));
    rmt_endpoint rem[RMT_MAX];
    int n_rem = rmt_list(rem, RMT_MAX, NULL);
    int64_t every = 0;
    {
        mdl_update_opts uo;
        cn_err ue = {0};
        json_t *us = mdl_update_state(lib_home(l));
        int64_t at = json_integer_value(json_object_get(us, "checked_at"));
        char when[64] = "never";
        if (at > 0) {
            time_t t = (time_t)at;
            strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&t));
        }
        if (mdl_update_settings(&uo, &every, &ue))
            printf("model updates    %s\n", ue.msg);
        else
            printf("model updates    %s (updates = %s in the settings); last check: %s%s%s\n",
                   every ? "checked by `cairn serve` on schedule" : "off: nothing is checked by "
                   "itself (`cairn models update --check` once)",
                   every == 0 ? "off" : every <= 86400 ? "daily" : "weekly", when,
                   json_string_value(json_object_get(us, "error")) ? ", failed: " : "",
                   json_string_value(json_object_get(us, "error"))
                       ? json_string_value(json_object_get(us, "error")) : "");
        json_decref(us);
    }
    {
        int n_w = store_watch_list(lib_store(l), NULL, NULL, NULL);
        printf("watched folders  %d%s\n", n_w > 0 ? n_w : 0,
               n_w > 0 ? " (`cairn watch ls`; `cairn serve` or `cairn watch run` follows them)"
                       : " (`cairn watch add DIR` keeps a folder's documents current)");
    }
    printf("network          used only by `cairn models pull` and `cairn models update`%s%s\n",
           n_rem > 0 ? ", and by `ask --remote` when you confirm" : "",
           every ? ", and by `cairn serve` for model updates" : "");
    for (int i = 0; i < n_rem; i++) {
        long status = 0;
        cn_err perr = {0};
        if (!network) {
            printf("  remote %-12s %s, model %s (not contacted: `cairn doctor --network` "
                   "checks it)\n", rem[i].name, rem[i].base_url, rem[i].model);
        } else if (rmt_ping(&rem[i], &status, &perr)) {
            printf("  remote %-12s %s, model %s: does not answer: %s\n", rem[i].name,
                   rem[i].base_url, rem[i].model, perr.msg);
        } else {
            printf("  remote %-12s %s, model %s: answers (HTTP %ld%s)\n", rem[i].name,
                   rem[i].base_url, rem[i].model, status,
                   status == 401 || status == 403 ? ": check its API key" : "");
        }
    }
    printf("service level    %s%s\n",
           a.chat_model ? "written answers with citations"
           : a.embed_model ? "hybrid search (keyword + vectors), extractive answers"
                           : "keyword search and extractive answers (no model)",
           a.rerank_model ? "; search reranked" : "");
    lib_close(l);
    return rc ? cli_error(&err) : crc ? 1 : 0;
}
