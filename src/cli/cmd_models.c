/*
** cmd_models.c: `cairn models ...`, the model manager's face. The work is in
** src/models/; this file parses options and prints.
*/
#include "cli/cli.h"
#include "models/models.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where an updated catalog is published (the maintainers sign it with the
** key built into the binary). A mirror: --catalog-url / catalog_url. */

typedef struct models_args {
    char home[4096];
    const char *sub;
    const char *rest[8];
    int n_rest;
    bool json, all, check;
    int parts;
    int retries, retry_delay_ms, stall_s; /* pull's network tuning; 0: defaults */
    int64_t min_part;
    const char *name, *role;
    char catalog_url[2048], catalog_key[256];
} models_args;

static const char models_help[] =
    "usage: cairn models COMMAND [options]\n\n"
    "Models are managed like packages: listed in a signed catalog, downloaded with\n"
    "resume and verification (sha256, GGUF metadata, a smoke test), installed\n"
    "atomically with the previous version kept for rollback. Nothing is downloaded\n"
    "without one of these commands, and no other command uses the network.\n\n"
    "  list [--all] [--json]      installed models; --all: the catalog too, with fit\n"
    "  pull NAME [--parts N]      download, verify, smoke-test and install NAME\n"
    "                             (an interrupted pull resumes where it stopped)\n"
    "       [--retries N] [--retry-delay MS] [--stall-timeout S] [--min-part-size B]\n"
    "                             network tuning: attempts per part (default 5), first\n"
    "                             backoff, doubling (1000 ms), seconds without a byte\n"
    "                             before a part is retried (30), smallest part worth\n"
    "                             its own connection (32 MB)\n"
    "  use NAME                   make NAME the active model of its role\n"
    "  rm NAME                    remove NAME (and any partial download of it)\n"
    "  rollback NAME              switch back to the version NAME replaced\n"
    "  verify [NAME]              re-hash installed files against their manifests\n"
    "  recommend [--json]         what fits this machine, and why\n"
    "  import FILE [--name N] [--role chat|embed|rerank]\n"
    "                             install a GGUF you already have (checked the same way;\n"
    "                             the role comes from its metadata when not given)\n"
    "  export NAME DIR            copy NAME's file (+ NAME.sha256) to DIR\n"
    "  update                     fetch the latest catalog; accepted only if its\n"
    "                             ed25519 signature verifies\n"
    "  update --check             also download newer versions of installed models\n"
    "                             (verified like a pull, at update_rate, paused on a\n"
    "                             metered connection) and offer them: the current one\n"
    "                             stays in use until `cairn models use NAME@VERSION`,\n"
    "                             and then stays as the fallback. For cron or a systemd\n"
    "                             timer (docs/models.md); `cairn serve` does it by\n"
    "                             itself with `updates = daily|weekly` in the settings\n"
    "  use NAME@VERSION           switch NAME to an offered version (or back to its\n"
    "                             fallback)\n\n"
    "options:\n"
    "  --home DIR                 data directory (default $CAIRN_HOME, ...)\n"
    "  --json                     machine-readable output (pull: one event per line)\n"
    "  --catalog-url URL          catalog to fetch (config key catalog_url)\n"
    "  --catalog-key HEX          ed25519 public key that signs it (catalog_key)\n";

static int parse(int argc, char **argv, models_args *a)
{
    memset(a, 0, sizeof *a);
    a->parts = 4;
    const char *home = NULL;
    enum { OPT_ALL = CLI_OPT_FIRST_FREE, OPT_NAME, OPT_ROLE, OPT_PARTS, OPT_URL, OPT_KEY,
           OPT_RETRIES, OPT_RETRY_DELAY, OPT_STALL, OPT_MIN_PART, OPT_CHECK };
    static const struct option longs[] = {
        {"home", required_argument, NULL, CLI_OPT_HOME}, {"json", no_argument, NULL, CLI_OPT_JSON},
        {"all", no_argument, NULL, OPT_ALL}, {"name", required_argument, NULL, OPT_NAME},
        {"role", required_argument, NULL, OPT_ROLE}, {"parts", required_argument, NULL, OPT_PARTS},
        {"catalog-url", required_argument, NULL, OPT_URL},
        {"catalog-key", required_argument, NULL, OPT_KEY},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"retry-delay", required_argument, NULL, OPT_RETRY_DELAY},
        {"stall-timeout", required_argument, NULL, OPT_STALL},
        {"min-part-size", required_argument, NULL, OPT_MIN_PART},
        {"check", no_argument, NULL, OPT_CHECK},
        {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    long n;
    while ((c = cli_getopt("models", argc, argv, ":h", longs)) != -1) {
        switch (c) {
        case 'h': printf("%s", models_help); return -1;
        case CLI_OPT_HOME: home = optarg; break;
        case CLI_OPT_JSON: a->json = true; break;
        case OPT_ALL: a->all = true; break;
        case OPT_CHECK: a->check = true; break;
        case OPT_NAME: a->name = optarg; break;
        case OPT_ROLE: a->role = optarg; break;
        case OPT_PARTS:
            if (!cli_int(optarg, 1, 16, &n))
                return cli_usage("models", "--parts %s: expected 1 to 16", optarg);
            a->parts = (int)n;
            break;
        case OPT_RETRIES:
            if (!cli_int(optarg, 1, 100, &n))
                return cli_usage("models", "--retries %s: expected 1 to 100", optarg);
            a->retries = (int)n;
            break;
        case OPT_RETRY_DELAY:
            if (!cli_int(optarg, 1, 600000, &n))
                return cli_usage("models", "--retry-delay %s: expected 1 to 600000 ms", optarg);
            a->retry_delay_ms = (int)n;
            break;
        case OPT_STALL:
            if (!cli_int(optarg, 1, 3600, &n))
                return cli_usage("models", "--stall-timeout %s: expected 1 to 3600 s", optarg);
            a->stall_s = (int)n;
            break;
        case OPT_MIN_PART:
            if (!cli_int(optarg, 1, 1L << 40, &n))
                return cli_usage("models", "--min-part-size %s: expected a byte count", optarg);
            a->min_part = n;
            break;
        case OPT_URL:
            if (snprintf(a->catalog_url, sizeof a->catalog_url, "%s", optarg) >=
                (int)sizeof a->catalog_url)
                return cli_usage("models", "--catalog-url: longer than %zu bytes",
                                 sizeof a->catalog_url - 1);
            break;
        case OPT_KEY:
            if (snprintf(a->catalog_key, sizeof a->catalog_key, "%s", optarg) >=
                (int)sizeof a->catalog_key)
                return cli_usage("models", "--catalog-key: longer than %zu bytes",
                                 sizeof a->catalog_key - 1);
            break;
        default: return 2;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (!a->sub)
            a->sub = argv[i];
        else if (a->n_rest < (int)CN_ARRAY_LEN(a->rest))
            a->rest[a->n_rest++] = argv[i];
        else
            return cli_usage("models", "too many arguments");
    }
    if (!a->sub) {
        printf("%s", models_help);
        return -1;
    }
    if (!a->catalog_url[0] && !cn_config_get("catalog_url", a->catalog_url,
                                              sizeof a->catalog_url))
        snprintf(a->catalog_url, sizeof a->catalog_url, "%s", MDL_CATALOG_URL);
    if (!a->catalog_key[0])
        cn_config_get("catalog_key", a->catalog_key, sizeof a->catalog_key);
    cn_err err = {0};
    if (cn_data_dir(a->home, sizeof a->home, home, &err))
        return cli_error(&err);
    return 0;
}

static const char *key_of(const models_args *a)
{
    return a->catalog_key[0] ? a->catalog_key : NULL;
}

/* ---- progress ------------------------------------------------------------------ */

typedef struct pull_ui {
    bool json, tty;
    double last_line;
    const char *phase;
} pull_ui;

static void on_progress(void *ctx, const mdl_progress *p)
{
    pull_ui *u = ctx;
    if (u->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:f,s:f,s:i}", "event", "progress", "model",
                              p->name ? p->name : "", "phase", p->phase, "done",
                              (json_int_t)p->done, "total", (json_int_t)p->total, "bytes_per_s",
                              p->bytes_per_s, "eta_s", p->eta_s, "parts", p->parts);
        if (p->note)
            json_object_set_new(o, "note", json_string(p->note));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(o);
        return;
    }
    char a[32], b[32], c[32];
    if (p->note)
        fprintf(stderr, "%s%s: %s\n", u->tty ? "\r\033[K" : "", p->name, p->note);
    if (strcmp(p->phase, "download") && strcmp(p->phase, "verify")) {
        if (u->tty)
            fprintf(stderr, "\r\033[K");
        fprintf(stderr, "%s: %s\n", p->name, !strcmp(p->phase, "smoke-test")
                                                 ? "smoke test (loading it and running it once)"
                                                 : "installing");
        return;
    }
    double now = cn_now();
    bool phase_changed = !u->phase || strcmp(u->phase, p->phase);
    u->phase = p->phase;
    if (!u->tty && !phase_changed && now - u->last_line < 5 && p->done != p->total)
        return; /* a log: one line every 5 s */
    u->last_line = now;
    double frac = p->total > 0 ? (double)p->done / p->total : 0;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[30] = 0;
    char eta[32] = "";
    if (p->eta_s >= 0 && p->done < p->total)
        snprintf(eta, sizeof eta, " ETA %dm%02ds", (int)p->eta_s / 60, (int)p->eta_s % 60);
    fprintf(stderr, "%s%-8s [%s] %3.0f%% %s / %s  %s/s%s%s%s", u->tty ? "\r\033[K" : "",
            p->phase, bar, 100 * frac, cli_size((uint64_t)p->done, a),
            cli_size((uint64_t)p->total, b), cli_size((uint64_t)p->bytes_per_s, c), eta,
            p->parts > 1 ? " (" : "", p->parts > 1 ? "parallel)" : "");
    fprintf(stderr, "%s", u->tty ? "" : "\n");
}

static volatile int interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- subcommands ------------------------------------------------------------------ */

static int do_list(models_args *a)
{
    cn_err err = {0};
    mdl_installed *ins;
    int n;
    mdl_catalog *c = NULL;
    if (mdl_list(a->home, &ins, &n, &err) ||
        (a->all && mdl_catalog_load(a->home, key_of(a), &c, &err)))
        return cli_error(&err);
    mdl_hw hw;
    mdl_hw_detect(a->home, &hw);
    if (a->json) {
        json_t *o = json_object(), *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(
                arr, json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:b,s:b,s:b}", "name", ins[i].name,
                               "role", ins[i].role, "arch", ins[i].arch, "path", ins[i].path,
                               "size", (json_int_t)ins[i].size, "sha256", ins[i].sha256,
                               "source", ins[i].source, "verified", ins[i].verified, "active",
                               ins[i].active, "rollback", ins[i].has_previous));
        for (int i = 0; i < n; i++)
            if (ins[i].has_staged)
                json_object_set_new(json_array_get(arr, (size_t)i), "update_ready",
                                    json_sprintf("%.12s", ins[i].staged_sha256));
        json_object_set_new(o, "installed", arr);
        if (c) {
            json_t *av = json_array();
            for (int i = 0; i < c->n; i++)
                json_array_append_new(av, mdl_entry_json(&c->models[i], &hw));
            json_object_set_new(o, "available", av);
            json_object_set_new(o, "catalog", json_string(c->source));
        }
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        char b[32];
        if (n == 0)
            printf("No models installed. Keyword search and extractive answers work without "
                   "one;\n`cairn models recommend` says what to pull for this machine.\n");
        else
            printf("%-22s %-6s %-10s %-10s %s\n", "installed", "role", "size", "status", "");
        for (int i = 0; i < n; i++)
            printf("%-22s %-6s %-10s %-10s%s%s\n", ins[i].name, ins[i].role,
                   cli_size((uint64_t)ins[i].size, b), ins[i].active ? "active" : "",
                   ins[i].verified ? "" : " (hash not published: unverified)",
                   ins[i].has_previous ? " (rollback available)" : "");
        for (int i = 0; i < n; i++)
            if (ins[i].has_staged)
                printf("%s: an updated version is ready — `cairn models use %s@%.12s` (the "
                       "current one stays as the fallback)\n", ins[i].name, ins[i].name,
                       ins[i].staged_sha256);
        mdl_partial part[16];
        int np = mdl_partials(a->home, part, 16);
        char b2[32];
        for (int i = 0; i < np; i++)
            printf("%-22s interrupted download: %s of %s (`cairn models pull %s` resumes it, "
                   "`cairn models rm %s` discards it)\n", part[i].name,
                   cli_size((uint64_t)part[i].done, b), cli_size((uint64_t)part[i].size, b2),
                   part[i].name, part[i].name);
        if (c) {
            printf("\n%-22s %-6s %-8s %-10s %-8s %-8s %s\n", "available", "role", "params",
                   "size", "memory", "fit", "description");
            for (int i = 0; i < c->n; i++) {
                const mdl_entry *e = &c->models[i];
                char mem[32], par[32], size[40];
                snprintf(mem, sizeof mem, "%.1f GB", e->ram_mb / 1024.0);
                snprintf(par, sizeof par, "%.3gB", e->params_b);
                /* "~": the catalog knows the size only roughly (size_exact false) */
                snprintf(size, sizeof size, "%s%s", e->size_exact ? "" : "~",
                         cli_size((uint64_t)e->size, b));
                printf("%-22s %-6s %-8s %-10s %-8s %-8s %s\n", e->name, e->role, par, size, mem,
                       mdl_fit(e, &hw), e->description);
            }
            printf("\ncatalog: %s (serial %lld)\n", c->source, (long long)c->serial);
        } else {
            printf("\n(`cairn models list --all` shows the catalog)\n");
        }
    }
    free(ins);
    mdl_catalog_free(c);
    return 0;
}

static int do_pull(models_args *a)
{
    if (a->n_rest != 1)
        return cli_usage("models", "pull takes one NAME (see `cairn models list --all`)");
    cn_err err = {0};
    mdl_catalog *c;
    if (mdl_catalog_load(a->home, key_of(a), &c, &err))
        return cli_error(&err);
    const mdl_entry *e = mdl_catalog_find(c, a->rest[0]);
    if (!e) {
        fprintf(stderr, "cairn: '%s' is not in the catalog; available:", a->rest[0]);
        for (int i = 0; i < c->n; i++)
            fprintf(stderr, " %s", c->models[i].name);
        fprintf(stderr, "\n");
        mdl_catalog_free(c);
        return 1;
    }
    pull_ui u = {a->json, isatty(2), 0, NULL};
    char sz[32];
    if (!a->json)
        fprintf(stderr, "pulling %s (%s%s%s%s) from %s\n", e->name, e->size_exact ? "" : "~",
                cli_size((uint64_t)e->size, sz),
                *e->license ? ", license: " : "", e->license, e->url);
    struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    mdl_dl_opts o = {.parts = a->parts, .fn = on_progress, .ctx = &u, .cancel = &interrupted};
    o.stall_s = a->stall_s; /* 0: the library's defaults */
    o.retry_base_ms = a->retry_delay_ms;
    o.retries = a->retries;
    o.min_part = a->min_part;
    int rc = mdl_pull(a->home, e, &o, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (u.tty && !a->json)
        fprintf(stderr, "\r\033[K");
    mdl_installed m;
    if (!rc)
        rc = mdl_get(a->home, e->name, &m, &err);
    if (a->json) {
        json_t *ev = rc ? json_pack("{s:s,s:s,s:s}", "event", "error", "model", e->name,
                                    "message", err.msg)
                        : json_pack("{s:s,s:s,s:s,s:b}", "event", "done", "model", e->name,
                                    "path", m.path, "active", m.active);
        char *t = json_dumps(ev, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
        json_decref(ev);
    } else if (!rc) {
        fprintf(stderr, "installed %s: %s%s\n", e->name, m.path,
                m.active ? " (active)" : "");
        if (!m.active)
            fprintf(stderr, "`cairn models use %s` makes it the active %s model\n", e->name,
                    e->role);
    }
    mdl_catalog_free(c);
    if (rc && !a->json)
        return cli_error(&err);
    return rc ? 1 : 0;
}

static int do_recommend(models_args *a)
{
    cn_err err = {0};
    mdl_catalog *c;
    if (mdl_catalog_load(a->home, key_of(a), &c, &err))
        return cli_error(&err);
    mdl_hw hw;
    mdl_hw_detect(a->home, &hw);
    char why_chat[512], why_embed[512];
    const mdl_entry *chat = mdl_recommend(c, &hw, "chat", why_chat, sizeof why_chat);
    const mdl_entry *emb = mdl_recommend(c, &hw, "embed", why_embed, sizeof why_embed);
    if (a->json) {
        json_t *o = json_pack("{s:{s:I,s:I,s:I,s:i,s:i,s:s}}", "machine", "ram_total",
                              (json_int_t)hw.ram_total, "ram_available",
                              (json_int_t)hw.ram_avail, "disk_free", (json_int_t)hw.disk_free,
                              "cores", hw.cores, "threads", hw.threads, "simd", hw.simd);
        json_object_set_new(o, "chat", chat ? mdl_entry_json(chat, &hw) : json_null());
        json_object_set_new(o, "chat_reason", json_string(why_chat));
        json_object_set_new(o, "embed", emb ? mdl_entry_json(emb, &hw) : json_null());
        json_object_set_new(o, "embed_reason", json_string(why_embed));
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        char b[32], d[32], f[32];
        printf("this machine: %d cores (%d threads), %s, memory %s (%s available), %s free "
               "for models\n\n",
               hw.cores, hw.threads, hw.simd, cli_size((uint64_t)hw.ram_total, b),
               cli_size((uint64_t)hw.ram_avail, d),
               hw.disk_free >= 0 ? cli_size((uint64_t)hw.disk_free, f) : "?");
        printf("written answers:  %s\n  %s\n", chat ? chat->name : "(none fits)", why_chat);
        printf("hybrid search:    %s\n  %s\n\n", emb ? emb->name : "(none fits)", why_embed);
        if (chat || emb)
            printf("get them with:  cairn models pull %s%s%s\n", chat ? chat->name : "",
                   chat && emb ? " && cairn models pull " : "", emb ? emb->name : "");
    }
    mdl_catalog_free(c);
    return 0;
}

static int do_check(models_args *a)
{
    cn_err err = {0};
    mdl_update_opts o;
    if (mdl_update_settings(&o, NULL, &err))
        return cli_error(&err);
    pull_ui u = {false, isatty(2), 0, NULL};
    o.fn = u.tty ? on_progress : NULL;
    o.ctx = &u;
    fprintf(stderr, "checking %s for newer versions of the installed models\n", a->catalog_url);
    mdl_update *up = NULL;
    int n = 0;
    int rc = mdl_update_check(a->home, a->catalog_url, key_of(a), &o, &up, &n, &err);
    if (u.tty)
        fprintf(stderr, "\r\033[K");
    if (rc) {
        free(up);
        return cli_error(&err);
    }
    if (a->json) {
        json_t *st = mdl_update_state(a->home);
        char *s = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(st);
    } else if (n == 0)
        printf("the installed models are the catalog's latest\n");
    int waiting = 0;
    for (int i = 0; i < n && !a->json; i++) {
        if (up[i].ready)
            printf("%s: an updated version is ready — `cairn models use %s@%s` (the current "
                   "one, %s, stays as the fallback)\n", up[i].name, up[i].name, up[i].version,
                   up[i].current);
        else {
            printf("%s: a newer version (%s) is in the catalog, not downloaded: %s\n",
                   up[i].name, up[i].version, up[i].note[0] ? up[i].note : "?");
            waiting++;
        }
    }
    free(up);
    return waiting ? 1 : 0;
}

static int do_update(models_args *a)
{
    if (a->check)
        return do_check(a);
    cn_err err = {0};
    fprintf(stderr, "fetching %s\n", a->catalog_url);
    int n = 0;
    int64_t serial = 0;
    if (mdl_catalog_update(a->home, a->catalog_url, key_of(a), &n, &serial, &err))
        return cli_error(&err);
    printf("catalog updated: %d models, serial %lld (signature verified)\n", n,
           (long long)serial);
    return 0;
}

static int do_verify(models_args *a)
{
    cn_err err = {0};
    mdl_installed *ins;
    int n, bad = 0;
    if (mdl_list(a->home, &ins, &n, &err))
        return cli_error(&err);
    pull_ui u = {false, isatty(2), 0, NULL};
    int checked = 0;
    for (int i = 0; i < n; i++) {
        if (a->n_rest && strcmp(a->rest[0], ins[i].name))
            continue;
        checked++;
        cn_err e = {0};
        int rc = mdl_verify(a->home, ins[i].name, u.tty ? on_progress : NULL, &u, &e);
        if (u.tty)
            fprintf(stderr, "\r\033[K");
        if (rc) {
            bad++;
            printf("FAILED  %s: %s\n", ins[i].name, e.msg);
        } else {
            printf("ok      %s (%s)\n", ins[i].name, ins[i].sha256);
        }
    }
    free(ins);
    if (a->n_rest && !checked) {
        cn_fail(&err, CN_ENOTFOUND, "no installed model '%s'", a->rest[0]);
        return cli_error(&err);
    }
    return bad ? 1 : 0;
}

int cmd_models(int argc, char **argv)
{
    models_args a;
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    cn_err err = {0};
    const char *s = a.sub;
    bool one = a.n_rest == 1;
    mdl_installed imported;
    if (!strcmp(s, "list") || !strcmp(s, "ls"))
        return do_list(&a);
    if (!strcmp(s, "pull"))
        return do_pull(&a);
    if (!strcmp(s, "recommend"))
        return do_recommend(&a);
    if (!strcmp(s, "update"))
        return do_update(&a);
    if (!strcmp(s, "verify"))
        return do_verify(&a);
    if (!strcmp(s, "use") && one)
        rc = mdl_use(a.home, a.rest[0], &err);
    else if ((!strcmp(s, "rm") || !strcmp(s, "remove")) && one)
        rc = mdl_remove(a.home, a.rest[0], &err);
    else if (!strcmp(s, "rollback") && one)
        rc = mdl_rollback(a.home, a.rest[0], &err);
    else if (!strcmp(s, "export") && a.n_rest == 2)
        rc = mdl_export(a.home, a.rest[0], a.rest[1], &err);
    else if (!strcmp(s, "import") && one) {
        mdl_catalog *c = NULL;
        mdl_catalog_load(a.home, key_of(&a), &c, NULL);
        pull_ui u = {false, isatty(2), 0, NULL};
        rc = mdl_import(a.home, a.rest[0], a.name, a.role, c, on_progress, &u, &imported, &err);
        if (u.tty)
            fprintf(stderr, "\r\033[K");
        mdl_catalog_free(c);
    } else if (!strcmp(s, "use") || !strcmp(s, "rm") || !strcmp(s, "rollback") ||
               !strcmp(s, "export") || !strcmp(s, "import"))
        return cli_usage("models", "%s: wrong number of arguments", s);
    else
        return cli_usage("models", "unknown command '%s'", s);
    if (rc)
        return cli_error(&err);
    if (!strcmp(s, "use"))
        printf("%s is now the active model of its role\n", a.rest[0]);
    else if (!strcmp(s, "rm") || !strcmp(s, "remove"))
        printf("removed %s\n", a.rest[0]);
    else if (!strcmp(s, "rollback"))
        printf("%s: the previous version is current again (`cairn models rollback %s` undoes "
               "it)\n", a.rest[0], a.rest[0]);
    else if (!strcmp(s, "export"))
        printf("exported %s to %s/%s.gguf (+ %s.sha256)\n", a.rest[0], a.rest[1], a.rest[0],
               a.rest[0]);
    else if (!strcmp(s, "import"))
        printf("imported %s as '%s' (%s, %s)%s\n", a.rest[0], imported.name, imported.role,
               imported.arch, imported.active ? ", active" : "");
    return 0;
}

/* ---- cairn setup: the first run -------------------------------------------------- */

static const char setup_help[] =
    "usage: cairn setup [--yes] [--no-download] [--home DIR] [--catalog-url URL]\n\n"
    "The first run: shows this machine, recommends a language model and an\n"
    "embedding model for it (download size, memory, expected speed here), and\n"
    "downloads them once you agree (each verified like `cairn models pull`), then\n"
    "embeds the documents already in the library. Keyword search and quoted\n"
    "answers work before any model; the embedding model adds search by meaning,\n"
    "the language model written answers with citations. Offline, it says what\n"
    "works now and how to bring models on a USB stick (`cairn models import`).\n\n"
    "  --yes           download without asking (scripts)\n"
    "  --no-download   only show the machine and the recommendation\n";

static void setup_embed_progress(void *ctx, const lib_event *ev)
{
    bool *tty = ctx;
    if (ev->kind == LIB_EV_EMBED && *tty)
        fprintf(stderr, "\r\033[Kembedding %lld/%lld passages", (long long)ev->embed_done,
                (long long)ev->embed_total);
}

static void offline_help(void)
{
    printf("\nWithout the network Cairn works as it is: keyword search and answers quoted "
           "from your documents.\nTo bring models on a USB stick: on a connected machine\n"
           "  cairn models pull NAME && cairn models export NAME /media/usb\n"
           "then here\n"
           "  cairn models import /media/usb/NAME.gguf\n"
           "(checked the same way: sha256 against the catalog, metadata, a smoke test).\n");
}

int cmd_setup(int argc, char **argv)
{
    enum { OPT_YES = CLI_OPT_FIRST_FREE, OPT_NO_DL, OPT_URL, OPT_KEY };
    static const struct option longs[] = {
        {"home", required_argument, NULL, CLI_OPT_HOME}, {"yes", no_argument, NULL, OPT_YES},
        {"no-download", no_argument, NULL, OPT_NO_DL},
        {"catalog-url", required_argument, NULL, OPT_URL},
        {"catalog-key", required_argument, NULL, OPT_KEY}, {"help", no_argument, NULL, 'h'}, {0}};
    const char *home_opt = NULL;
    bool yes = false, no_dl = false;
    models_args a;
    memset(&a, 0, sizeof a);
    a.parts = 4;
    int c;
    while ((c = cli_getopt("setup", argc, argv, ":h", longs)) != -1) {
        switch (c) {
        case 'h': printf("%s", setup_help); return 0;
        case CLI_OPT_HOME: home_opt = optarg; break;
        case OPT_YES: yes = true; break;
        case OPT_NO_DL: no_dl = true; break;
        case OPT_URL: snprintf(a.catalog_url, sizeof a.catalog_url, "%s", optarg); break;
        case OPT_KEY: snprintf(a.catalog_key, sizeof a.catalog_key, "%s", optarg); break;
        default: return 2;
        }
    }
    if (optind < argc)
        return cli_usage("setup", "no operands expected ('%s')", argv[optind]);
    cn_err err = {0};
    if (cn_data_dir(a.home, sizeof a.home, home_opt, &err) || cn_mkdirs(a.home, &err))
        return cli_error(&err);
    if (!a.catalog_url[0] && !cn_config_get("catalog_url", a.catalog_url, sizeof a.catalog_url))
        snprintf(a.catalog_url, sizeof a.catalog_url, "%s", MDL_CATALOG_URL);
    if (!a.catalog_key[0])
        cn_config_get("catalog_key", a.catalog_key, sizeof a.catalog_key);

    mdl_hw hw;
    mdl_hw_detect(a.home, &hw);
    double bw = mdl_hw_bandwidth();
    char b1[32], b2[32], b3[32];
    printf("This machine: %d cores (%s), %s memory (%s available), %s free disk",
           hw.cores, hw.simd, cli_size((uint64_t)hw.ram_total, b1),
           cli_size((uint64_t)hw.ram_avail, b2), cli_size((uint64_t)CN_MAX(hw.disk_free, 0), b3));
    if (bw > 0)
        printf(", memory read at %.1f GB/s", bw / 1e9);
    printf(".\nData directory: %s\n\n", a.home);

    /* the latest signed catalog; offline, the one in effect */
    int n_models = 0;
    int64_t serial = 0;
    cn_err ue = {0};
    bool online = mdl_catalog_update(a.home, a.catalog_url, key_of(&a), &n_models, &serial,
                                     &ue) == CN_OK;
    if (!online)
        printf("The catalog could not be fetched (%s): using the one already here.\n\n", ue.msg);
    mdl_catalog *cat = NULL;
    if (mdl_catalog_load(a.home, key_of(&a), &cat, &err))
        return cli_error(&err);
    const mdl_entry *pick[2] = {NULL, NULL};
    int want = 0;
    for (int k = 0; k < 2; k++) {
        const char *role = k ? "embed" : "chat";
        char why[300] = "";
        pick[k] = mdl_recommend(cat, &hw, role, why, sizeof why);
        if (!pick[k]) {
            printf("%s model: %s\n", k ? "Embedding" : "Language", why);
            continue;
        }
        mdl_installed m;
        bool have = mdl_get(a.home, pick[k]->name, &m, NULL) == CN_OK;
        printf("%s model: %s — %s to download, %s of memory to run", k ? "Embedding" : "Language",
               pick[k]->name, cli_size((uint64_t)pick[k]->size, b1),
               cli_size((uint64_t)pick[k]->ram_mb * 1000000, b2));
        if (!k && bw > 0)
            printf(", about %.0f words a second here (estimated from the memory speed)",
                   bw / (double)pick[k]->size * 0.75 * 0.75);
        printf("%s\n  %s\n", have ? " — installed" : "", why);
        if (have)
            pick[k] = NULL;
        else
            want++;
    }
    int ret = 0;
    if (want == 0) {
        printf("\nNothing to download: the models recommended here are installed.\n");
    } else if (no_dl) {
        printf("\nTo download them: cairn setup (or cairn models pull NAME).\n");
    } else if (!online) {
        offline_help(); /* the downloads would fail the same way */
    } else {
        bool go = yes;
        if (!yes && isatty(0) && isatty(1)) {
            printf("\nDownload %s? [Y/n] ", want == 2 ? "both" : "it");
            fflush(stdout);
            char line[16] = "";
            go = fgets(line, sizeof line, stdin) && (line[0] == '\n' || line[0] == 'y' ||
                                                       line[0] == 'Y');
        } else if (!yes) {
            printf("\nNot downloading without a terminal to ask on: `cairn setup --yes` does, "
                   "or `cairn models pull NAME`.\n");
        }
        struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        for (int k = 0; k < 2 && go && !interrupted; k++) {
            if (!pick[k])
                continue;
            pull_ui u = {false, isatty(2), 0, NULL};
            mdl_dl_opts o = {.parts = 4, .fn = on_progress, .ctx = &u, .cancel = &interrupted};
            fprintf(stderr, "downloading %s (%s)\n", pick[k]->name,
                    cli_size((uint64_t)pick[k]->size, b1));
            cn_err pe = {0};
            int rc = mdl_pull(a.home, pick[k], &o, &pe);
            if (u.tty)
                fprintf(stderr, "\r\033[K");
            if (rc) {
                fprintf(stderr, "cairn: %s\n", pe.msg);
                ret = 1;
            } else {
                printf("installed %s\n", pick[k]->name);
            }
        }
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        if (interrupted)
            printf("\nStopped: `cairn setup` again resumes the download.\n");
    }
    mdl_catalog_free(cat);
    /* the documents already here, embedded by the embedding model that came */
    char embed[PATH_MAX], chat[PATH_MAX];
    bool has_embed = mdl_active(a.home, "embed", embed, sizeof embed, NULL, 0, NULL) == CN_OK;
    bool has_chat = mdl_active(a.home, "chat", chat, sizeof chat, NULL, 0, NULL) == CN_OK;
    if (has_embed && !interrupted) {
        lib *l = NULL;
        cn_err le = {0};
        if (lib_open(&l, a.home, &le) == CN_OK) {
            bool tty = isatty(2);
            int n = lib_index(l, embed, 0, setup_embed_progress, &tty, &le);
            if (tty)
                fprintf(stderr, "\r\033[K");
            if (n > 0)
                printf("%d passages of your documents embedded: search by meaning is on\n", n);
            else if (n < 0)
                fprintf(stderr, "cairn: embedding the library: %s (`cairn index` tries again)\n",
                        le.msg);
            lib_close(l);
        }
    }
    printf("Level of service: %s\n",
           has_chat ? "written answers with citations"
           : has_embed ? "hybrid search (keyword + meaning), quoted answers"
                       : "keyword search and quoted answers (no model yet)");
    printf("Next: cairn add ~/Documents, then cairn ask \"...\" — or cairn serve for the web UI.\n");
    return ret;
}
