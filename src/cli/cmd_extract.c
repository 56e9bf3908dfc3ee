/*
** cmd_extract.c: `cairn extract`, a face over lib_extract: a schema's
** fields filled from each document named, as JSON, JSON lines, CSV (one row
** per document) or a table for people.
*/
#include "cli/cli.h"
#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FMT_JSON, FMT_JSONL, FMT_CSV, FMT_TABLE };

/* A value as one cell: strings as they are, anything else as compact JSON. */
static char *cell(json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (!v || json_is_null(v))
        return strdup("");
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void csv_field(const char *s, bool first)
{
    if (!first)
        putchar(',');
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void csv_header(json_t *schema)
{
    csv_field("document", true);
    const char *name;
    json_t *fs;
    char buf[512];
    json_object_foreach(json_object_get(schema, "properties"), name, fs) {
        csv_field(name, false);
        snprintf(buf, sizeof buf, "%s.page", name);
        csv_field(buf, false);
        snprintf(buf, sizeof buf, "%s.quote", name);
        csv_field(buf, false);
    }
    putchar('\n');
}

static void csv_row(json_t *schema, json_t *r)
{
    csv_field(json_string_value(json_object_get(r, "document")), true);
    const char *name;
    json_t *fs;
    json_object_foreach(json_object_get(schema, "properties"), name, fs) {
        json_t *c = json_object_get(json_object_get(r, "citations"), name);
        char *v = cell(json_object_get(json_object_get(r, "data"), name));
        char *p = cell(json_object_get(c, "page"));
        char *q = cell(json_object_get(c, "quote"));
        csv_field(v ? v : "", false);
        csv_field(p ? p : "", false);
        csv_field(q ? q : "", false);
        free(v);
        free(p);
        free(q);
    }
    putchar('\n');
}

static void table(json_t *schema, json_t *r)
{
    printf("%s\n", json_string_value(json_object_get(r, "document")));
    const char *name;
    json_t *fs;
    int w = 0;
    json_object_foreach(json_object_get(schema, "properties"), name, fs)
        w = CN_MAX(w, (int)strlen(name));
    json_object_foreach(json_object_get(schema, "properties"), name, fs) {
        json_t *c = json_object_get(json_object_get(r, "citations"), name);
        json_t *v = json_object_get(json_object_get(r, "data"), name);
        char *s = cell(v);
        if (json_is_null(v) || !v)
            printf("  %-*s  -    (%s)\n", w, name, json_string_value(json_object_get(c, "reason")));
        else
            printf("  %-*s  %s    p. %lld: \"%s\"\n", w, name, s ? s : "",
                   (long long)json_integer_value(json_object_get(c, "page")),
                   json_string_value(json_object_get(c, "quote")));
        free(s);
    }
}

static void on_field(void *ctx, const char *doc, const char *field, int done, int total)
{
    bool tty = *(bool *)ctx;
    const char *base = strrchr(doc, '/');
    if (tty)
        fprintf(stderr, "\r\033[K%s: field %d of %d (%s)", base ? base + 1 : doc, done + 1, total,
                field);
}

int cmd_extract(int argc, char **argv)
{
    static const char help[] =
        "usage: cairn extract --schema S.json [--format F] [-m MODEL] DOC...\n\n"
        "Fill the fields of a JSON Schema (an object with properties) from each\n"
        "document. For each field, the document's passages that mention its name and\n"
        "description are found, and the model answers under the schema with the\n"
        "sentence that states the value. Every value comes with a citation: the page\n"
        "and that sentence, verbatim (it is checked to be on the page). A value the\n"
        "sentence does not contain, or a field no sentence states, is null, with the\n"
        "reason. Needs a language model.\n\n"
        "DOC is a document's path, its file name, or its id (`cairn ls --json`).\n\n"
        "  --schema FILE       the fields (JSON Schema; the subset `cairn generate\n"
        "                      --help` lists; description helps find each field)\n"
        "  --format F          json (one document; the default), jsonl (one line per\n"
        "                      document; the default for several), csv (a row per\n"
        "                      document: each field, its page, its quote), table\n"
        "  -m, --model M       language model (a GGUF file or an installed name;\n"
        "                      default $CAIRN_CHAT_MODEL, then the active chat model)\n"
        "  -k N                passages read per field (default 3)\n"
        "  -t, --threads N     threads for the model (default: physical cores)\n"
        "  --home DIR          data directory\n";
    enum { OPT_SCHEMA = CLI_OPT_FIRST_FREE, OPT_FORMAT };
    static const struct option longs[] = {
        {"home", required_argument, NULL, CLI_OPT_HOME}, {"model", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'}, {"schema", required_argument, NULL, OPT_SCHEMA},
        {"format", required_argument, NULL, OPT_FORMAT}, {"help", no_argument, NULL, 'h'}, {0}};
    const char *home = NULL, *model = getenv("CAIRN_CHAT_MODEL"), *schema_file = NULL;
    int threads = 0, k = 3, fmt = -1, c;
    long n;
    while ((c = cli_getopt("extract", argc, argv, ":m:t:k:h", longs)) != -1) {
        switch (c) {
        case CLI_OPT_HOME: home = optarg; break;
        case 'm': model = optarg; break;
        case 't':
            if (!cli_int(optarg, 1, 512, &n))
                return cli_usage("extract", "-t %s: expected 1 to 512", optarg);
            threads = (int)n;
            break;
        case 'k':
            if (!cli_int(optarg, 1, 20, &n))
                return cli_usage("extract", "-k %s: expected 1 to 20", optarg);
            k = (int)n;
            break;
        case OPT_SCHEMA: schema_file = optarg; break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "json")) fmt = FMT_JSON;
            else if (!strcmp(optarg, "jsonl")) fmt = FMT_JSONL;
            else if (!strcmp(optarg, "csv")) fmt = FMT_CSV;
            else if (!strcmp(optarg, "table")) fmt = FMT_TABLE;
            else
                return cli_usage("extract", "--format %s: expected json, jsonl, csv or table",
                                 optarg);
            break;
        case 'h': printf("%s", help); return 0;
        default: return 2;
        }
    }
    if (!schema_file)
        return cli_usage("extract", "missing --schema FILE");
    if (model && !*model)
        model = NULL; /* CAIRN_CHAT_MODEL= */
    if (optind == argc)
        return cli_usage("extract", "missing DOC");
    int n_docs = argc - optind;
    if (fmt < 0)
        fmt = n_docs == 1 ? FMT_JSON : FMT_JSONL;
    if (fmt == FMT_JSON && n_docs > 1)
        return cli_usage("extract", "--format json is for one document; jsonl or csv for several");

    cn_err err = {0};
    char *text = NULL;
    size_t len = 0;
    json_t *schema = NULL;
    if (cn_read_file(schema_file, (size_t)4 << 20, &text, &len, &err) ||
        lib_extract_check(text, len, &schema, &err)) {
        free(text);
        if (!strncmp(err.msg, "schema:", 7)) { /* name the file the problem is in */
            cn_err e2 = err;
            cn_fail(&err, e2.code, "%s: %s", schema_file, e2.msg);
        }
        return cli_error(&err);
    }
    free(text);
    char path[4096];
    const char *model_path = NULL;
    if (model) {
        int st = cli_model_path("extract", home, model, "chat", path, sizeof path, &model_path);
        if (st) {
            json_decref(schema);
            return st;
        }
    } else {
        char dir[4096];
        if (!cn_data_dir(dir, sizeof dir, home, &err) &&
            mdl_active(dir, "chat", path, sizeof path, NULL, 0, NULL) == CN_OK)
            model_path = path;
    }
    if (!model_path) {
        json_decref(schema);
        return cli_usage("extract", "needs a language model: -m FILE.gguf, or `cairn models "
                                    "recommend` and `cairn models pull NAME`");
    }
    lib *l = NULL;
    cli_llm llm = {0};
    int ret = 0;
    if (lib_open(&l, home, &err) || cli_llm_open(&llm, model_path, threads, &err)) {
        ret = cli_error(&err);
        goto done;
    }
    bool tty = isatty(2);
    if (fmt == FMT_CSV)
        csv_header(schema);
    for (int i = optind; i < argc; i++) {
        int64_t id;
        json_t *r = NULL;
        if (cli_find_doc(l, argv[i], &id, &err) ||
            lib_extract(l, id, schema, k, &llm.api, on_field, &tty, &r, &err)) {
            if (tty)
                fprintf(stderr, "\r\033[K");
            ret = cli_error(&err); /* the other documents still get their row */
            continue;
        }
        if (tty)
            fprintf(stderr, "\r\033[K");
        if (fmt == FMT_CSV) {
            csv_row(schema, r);
        } else if (fmt == FMT_TABLE) {
            table(schema, r);
        } else {
            char *js = json_dumps(r, (fmt == FMT_JSON ? JSON_INDENT(2) : JSON_COMPACT) |
                                         JSON_PRESERVE_ORDER);
            printf("%s\n", js ? js : "{}");
            free(js);
        }
        fflush(stdout);
        json_decref(r);
    }
done:
    cli_llm_close(&llm);
    lib_close(l);
    json_decref(schema);
    return ret;
}
