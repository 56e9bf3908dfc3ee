/*
** cmd_summary.c: `cairn summarize`, a face over lib_summarize: progress on
** stderr while the model works through the pages, then the summary, each
** sentence with the pages it came from.
*/
#include "cli/cli.h"
#include "models/models.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- naming a document -------------------------------------------------- */

typedef struct by_name {
    const char *name;
    int64_t id;
    int hits;
} by_name;

static int match_name(void *ctx, const store_doc_info *d)
{
    by_name *b = ctx;
    const char *base = strrchr(d->path, '/');
    if (!strcmp(base ? base + 1 : d->path, b->name) || !strcmp(d->path, b->name)) {
        b->id = d->id;
        b->hits++;
    }
    return 0;
}

int cli_find_doc(lib *l, const char *arg, int64_t *id, cn_err *err)
{
    store_file_state st;
    char real[PATH_MAX];
    if (realpath(arg, real) && store_find_by_path(lib_store(l), real, &st, NULL) == CN_OK) {
        *id = st.id;
        return CN_OK;
    }
    by_name b = {arg, 0, 0};
    int rc = store_list(lib_store(l), match_name, &b, err);
    if (rc)
        return rc;
    if (b.hits == 1) {
        *id = b.id;
        return CN_OK;
    }
    if (b.hits > 1)
        return cn_fail(err, CN_EINVAL, "%s: %d documents have this name; give the whole path "
                                       "(`cairn ls` lists them)", arg, b.hits);
    long n;
    if (cli_int(arg, 1, LONG_MAX, &n)) {
        cn_arena ar;
        cn_arena_init(&ar, (size_t)1 << 20);
        store_doc_info d;
        rc = store_doc_get(lib_store(l), n, &ar, &d, NULL);
        cn_arena_free(&ar);
        if (rc == CN_OK) {
            *id = n;
            return CN_OK;
        }
    }
    return cn_fail(err, CN_ENOTFOUND, "%s: no such document in the library (`cairn ls` lists "
                                      "them; `cairn add` adds one)", arg);
}

/* ---- summarize ----------------------------------------------------------- */

typedef struct sum_progress {
    bool tty;
    bool shown;
} sum_progress;

static void on_sum(void *ctx, const lib_sum_event *ev)
{
    sum_progress *p = ctx;
    if (ev->kind != LIB_SUM_STEP)
        return;
    char eta[32] = "";
    if (ev->eta_s >= 0)
        snprintf(eta, sizeof eta, ", about %.0f s left", ev->eta_s);
    const char *what = ev->level == 0 ? "pages" : "summaries of pages";
    if (p->tty)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "step %d of %s%d: %s %d-%d%s%s", ev->done + !ev->cached,
            ev->level > 0 || ev->done + 1 < ev->total ? "~" : "", ev->total, what, ev->first,
            ev->last, ev->cached ? " (done before)" : "", eta);
    if (!p->tty)
        fputc('\n', stderr);
    p->shown = true;
}

int cmd_summarize(int argc, char **argv)
{
    static const char help[] =
        "usage: cairn summarize [--length short|medium|long] [-m MODEL] [--json] DOC\n\n"
        "Summarise a whole document. With a language model (-m, $CAIRN_CHAT_MODEL or\n"
        "the active chat model) its pages are summarised in groups that fit the\n"
        "model's context, then the summaries combined (map-reduce); each sentence\n"
        "of the summary shows the pages it came from. Each step is kept in the\n"
        "library, so an interrupted run picks up where it stopped. Without a model,\n"
        "the most central sentences of the document are quoted (extractive).\n\n"
        "DOC is a document's path, its file name, or its id (`cairn ls --json`).\n\n"
        "  --length L          short (3 sentences), medium (7, the default), long (15)\n"
        "  -m, --model M       language model (a GGUF file or an installed name)\n"
        "  --extractive        quote the central sentences even with a model\n"
        "  -t, --threads N     threads for the model (default: physical cores)\n"
        "  --json              one JSON object: sentences with their pages, steps\n"
        "  --home DIR          data directory (default $CAIRN_HOME, else ~/.local/share/cairn)\n";
    enum { OPT_LENGTH = CLI_OPT_FIRST_FREE, OPT_EXTRACTIVE };
    static const struct option longs[] = {
        {"home", required_argument, NULL, CLI_OPT_HOME}, {"model", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'}, {"json", no_argument, NULL, CLI_OPT_JSON},
        {"length", required_argument, NULL, OPT_LENGTH},
        {"extractive", no_argument, NULL, OPT_EXTRACTIVE},
        {"help", no_argument, NULL, 'h'}, {0}};
    const char *home = NULL, *model = getenv("CAIRN_CHAT_MODEL");
    int threads = 0, length = LIB_SUM_MEDIUM, c;
    bool json = false, extractive = false;
    long n;
    while ((c = cli_getopt("summarize", argc, argv, ":m:t:h", longs)) != -1) {
        switch (c) {
        case CLI_OPT_HOME: home = optarg; break;
        case 'm': model = optarg; break;
        case 't':
            if (!cli_int(optarg, 1, 512, &n))
                return cli_usage("summarize", "-t %s: expected 1 to 512", optarg);
            threads = (int)n;
            break;
        case CLI_OPT_JSON: json = true; break;
        case OPT_EXTRACTIVE: extractive = true; break;
        case OPT_LENGTH:
            if ((length = lib_sum_length_of(optarg)) < 0)
                return cli_usage("summarize", "--length %s: expected short, medium or long", optarg);
            break;
        case 'h': printf("%s", help); return 0;
        default: return 2;
        }
    }
    if (model && !*model)
        model = NULL; /* CAIRN_CHAT_MODEL= */
    if (optind != argc - 1)
        return cli_usage("summarize", optind == argc ? "missing DOC" : "one DOC at a time");
    const char *doc = argv[optind];

    char path[4096];
    const char *model_path = NULL;
    cn_err err = {0};
    if (!extractive && model) {
        int st = cli_model_path("summarize", home, model, "chat", path, sizeof path, &model_path);
        if (st)
            return st;
    } else if (!extractive) {
        char dir[4096];
        if (!cn_data_dir(dir, sizeof dir, home, &err) &&
            mdl_active(dir, "chat", path, sizeof path, NULL, 0, NULL) == CN_OK)
            model_path = path;
    }
    lib *l = NULL;
    if (lib_open(&l, home, &err))
        return cli_error(&err);
    int64_t id;
    int ret = 0;
    cli_llm llm = {0};
    lib_summary s = {0};
    if (cli_find_doc(l, doc, &id, &err) ||
        (model_path && cli_llm_open(&llm, model_path, threads, &err))) {
        ret = cli_error(&err);
        goto done;
    }
    sum_progress p = {isatty(2), false};
    int rc = lib_summarize(l, id, length, model_path ? &llm.api : NULL, on_sum, &p, &s, &err);
    if (p.shown && p.tty)
        fprintf(stderr, "\n");
    if (rc) {
        ret = cli_error(&err);
        goto done;
    }
    if (json) {
        json_t *o = lib_summary_json(&s);
        json_object_set_new(o, "model", model_path ? json_string(llm.name) : json_null());
        char *js = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", js ? js : "{}");
        free(js);
        json_decref(o);
        goto done;
    }
    if (model_path)
        fprintf(stderr, "%d step%s (%d done before), %.1f s\n", s.steps, s.steps == 1 ? "" : "s",
                s.cached, s.seconds);
    else
        fprintf(stderr, "(extractive summary: the document's most central sentences, quoted%s)\n",
                extractive ? "" : ", since no language model is installed; `cairn models "
                                  "recommend` names one");
    cn_buf b;
    cn_buf_init(&b, 4096);
    for (int i = 0; i < s.s.n; i++) {
        b.len = 0;
        rag_format_spans(&s.s.v[i], &b);
        printf("%s (%s)\n", s.s.v[i].text, b.data ? b.data : "");
    }
    cn_buf_free(&b);
done:
    lib_summary_free(&s);
    cli_llm_close(&llm);
    lib_close(l);
    return ret;
}
