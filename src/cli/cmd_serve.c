/*
** cmd_serve.c: `cairn serve` starts the local web UI and the OpenAI- and
** Ollama-compatible API (src/server). This file only reads options.
*/
#include "cli/cli.h"
#include "remote/remote.h"
#include "server/server.h"
#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: cairn serve [--host 127.0.0.1] [--port 8377] [--api-key KEY] [options]\n\n"
    "Serve the web UI and an OpenAI- and Ollama-compatible API. Listens on loopback\n"
    "by default; any other address needs an API key, and then every API request\n"
    "needs 'Authorization: Bearer KEY'. Ctrl-C stops the server.\n\n"
    "  --host ADDR           address to listen on (default 127.0.0.1)\n"
    "  --port N              port (default 8377; 0 picks a free one)\n"
    "  --api-key KEY         require this key (default $CAIRN_API_KEY, else api_key in\n"
    "                        the settings file)\n"
    "  --cors-origin ORIGIN  also allow browser requests from ORIGIN (\"*\": any, which\n"
    "                        needs an API key)\n"
    "  -m, --model M         language model: a GGUF file or an installed model's name\n"
    "                        (default $CAIRN_CHAT_MODEL, else the active chat model)\n"
    "  -e, --embed-model M   embedding model, likewise (default $CAIRN_EMBED_MODEL, else\n"
    "                        the active embedding model)\n"
    "  --rerank-model M      reranker (a cross-encoder GGUF file or an installed model's\n"
    "                        name; default: the active reranker) for POST /v1/rerank;\n"
    "                        library search and answers rescore their top 30 with it\n"
    "  --no-rerank           no reranker, even with one installed\n"
    "  --draft M             draft model for speculative decoding (a smaller model with\n"
    "                        the language model's vocabulary; a GGUF file or installed\n"
    "                        name): the same answers, in fewer passes where it guesses\n"
    "                        right\n"
    "  --allow-remote NAME   let requests that name model \"remote:NAME\" (and the web\n"
    "                        UI's \"Ask a stronger model\", after its dialog) send their\n"
    "                        question and passages to that remote (`cairn remote add`);\n"
    "                        without it nothing is ever sent elsewhere. Repeatable\n"
    "  --no-watch            do not follow the watched folders (`cairn watch`); by\n"
    "                        default files written, changed or deleted there are\n"
    "                        indexed or removed within seconds\n"
    "  --watch-settle S      seconds a changed file must be quiet before it is read\n"
    "                        (default 1)\n"
    "  --home DIR            data directory (library) (default $CAIRN_HOME, ...)\n"
    "  -t, --threads N       engine threads per model (default: physical cores)\n"
    "  -c, --ctx N           language model context (default: min(model, 4096))\n"
    "  --queue N             requests waiting per model before 429 (default 8)\n"
    "  --max-body BYTES      largest JSON request body (default 1048576)\n"
    "  --max-upload BYTES    largest uploaded document (default 268435456)\n"
    "  --max-tokens N        largest max_tokens a request may ask (default 4096)\n"
    "  --port-file FILE      write the port here once listening\n"
    "  --quiet               no access log\n";

int cmd_serve(int argc, char **argv)
{
    srv_opts o;
    bool no_rerank = false;
    srv_opts_default(&o);
    o.api_key = getenv("CAIRN_API_KEY");
    o.chat_model = getenv("CAIRN_CHAT_MODEL");
    o.embed_model = getenv("CAIRN_EMBED_MODEL");
    enum { OPT_HOST = CLI_OPT_FIRST_FREE, OPT_PORT, OPT_KEY, OPT_CORS, OPT_PORT_FILE, OPT_QUEUE,
           OPT_MAX_BODY, OPT_MAX_UPLOAD, OPT_MAX_TOKENS, OPT_QUIET, OPT_RERANK,
           OPT_NO_RERANK, OPT_DRAFT, OPT_ALLOW_REMOTE, OPT_NO_WATCH, OPT_WATCH_SETTLE };
    static const struct option longs[] = {
        {"host", required_argument, NULL, OPT_HOST}, {"port", required_argument, NULL, OPT_PORT},
        {"api-key", required_argument, NULL, OPT_KEY},
        {"cors-origin", required_argument, NULL, OPT_CORS},
        {"model", required_argument, NULL, 'm'}, {"embed-model", required_argument, NULL, 'e'},
        {"home", required_argument, NULL, CLI_OPT_HOME},
        {"rerank-model", required_argument, NULL, OPT_RERANK},
        {"no-rerank", no_argument, NULL, OPT_NO_RERANK},
        {"draft", required_argument, NULL, OPT_DRAFT},
        {"allow-remote", required_argument, NULL, OPT_ALLOW_REMOTE},
        {"no-watch", no_argument, NULL, OPT_NO_WATCH},
        {"watch-settle", required_argument, NULL, OPT_WATCH_SETTLE},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"threads", required_argument, NULL, 't'}, {"ctx", required_argument, NULL, 'c'},
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
        {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
        {"quiet", no_argument, NULL, OPT_QUIET}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    long n;
    while ((c = cli_getopt("serve", argc, argv, ":m:e:t:c:h", longs)) != -1) {
        const char *v = optarg;
        switch (c) {
        case 'h':
            printf("%s\nroutes:\n", help);
            srv_print_routes(stdout);
            return 0;
        case OPT_QUIET: o.quiet = true; break;
        case OPT_HOST: o.host = v; break;
        case OPT_KEY: o.api_key = v; break;
        case OPT_CORS: o.cors_origin = v; break;
        case 'm': o.chat_model = v; break;
        case 'e': o.embed_model = v; break;
        case OPT_RERANK: o.rerank_model = v; break;
        case OPT_NO_RERANK: no_rerank = true; break;
        case OPT_DRAFT: o.draft_model = v; break;
        case OPT_NO_WATCH: o.no_watch = true; break;
        case OPT_WATCH_SETTLE:
            if (!cli_float(v, 0.05, 3600, &o.watch_settle))
                return cli_usage("serve", "--watch-settle %s: expected 0.05 to 3600 seconds", v);
            break;
        case OPT_ALLOW_REMOTE: {
            rmt_endpoint ep;
            cn_err rerr = {0};
            if (o.n_allow_remote == (int)CN_ARRAY_LEN(o.allow_remote))
                return cli_usage("serve", "--allow-remote: at most %d",
                                 (int)CN_ARRAY_LEN(o.allow_remote));
            if (rmt_get(v, &ep, &rerr))
                return cli_error(&rerr);
            o.allow_remote[o.n_allow_remote++] = v;
            fprintf(stderr, "cairn serve: requests naming model \"remote:%s\" are sent to %s "
                            "(model %s); nothing else leaves this machine\n", v, ep.base_url,
                    ep.model);
            break;
        }
        case CLI_OPT_HOME: o.home = v; break;
        case OPT_PORT_FILE: o.port_file = v; break;
        case OPT_PORT:
            if (!cli_int(v, 0, 65535, &n))
                return cli_usage("serve", "--port %s: expected 0 to 65535", v);
            o.port = (int)n;
            break;
        case 't':
            if (!cli_int(v, 1, 512, &n))
                return cli_usage("serve", "-t %s: expected 1 to 512", v);
            o.threads = (int)n;
            break;
        case 'c':
            if (!cli_int(v, 16, 1 << 24, &n))
                return cli_usage("serve", "--ctx %s: expected an integer from 16", v);
            o.n_ctx = (int)n;
            break;
        case OPT_QUEUE:
            if (!cli_int(v, 1, 4096, &n))
                return cli_usage("serve", "--queue %s: expected 1 to 4096", v);
            o.lim.queue = (int)n;
            break;
        case OPT_MAX_BODY:
            if (!cli_int(v, 1024, 1L << 30, &n))
                return cli_usage("serve", "--max-body %s: expected 1024 to 2^30", v);
            o.lim.max_body = (size_t)n;
            break;
        case OPT_MAX_UPLOAD:
            if (!cli_int(v, 1024, 1L << 40, &n))
                return cli_usage("serve", "--max-upload %s: expected 1024 to 2^40", v);
            o.lim.max_upload = (size_t)n;
            break;
        case OPT_MAX_TOKENS:
            if (!cli_int(v, 1, 1 << 20, &n))
                return cli_usage("serve", "--max-tokens %s: expected 1 to 1048576", v);
            o.lim.max_tokens = (int)n;
            o.lim.default_tokens = (int)CN_MIN(n, o.lim.default_tokens);
            break;
        default: return 2;
        }
    }
    if (optind < argc)
        return cli_usage("serve", "unexpected argument '%s'", argv[optind]);
    if (o.chat_model && !*o.chat_model)
        o.chat_model = NULL;
    if (o.embed_model && !*o.embed_model)
        o.embed_model = NULL;
    if (o.api_key && !*o.api_key)
        o.api_key = NULL;
    char key[256];
    if (!o.api_key && cn_config_get("api_key", key, sizeof key) && *key)
        o.api_key = key; /* the settings file's api_key */
    if (o.cors_origin && !strcmp(o.cors_origin, "*") && !o.api_key)
        return cli_usage("serve", "--cors-origin '*' without an API key would let any web page "
                         "upload, delete and download through this server: set --api-key KEY "
                         "(or CAIRN_API_KEY), or name the one origin to allow");
    cn_err err = {0};
    char home[4096], paths[2][4096], names[2][128] = {"", ""};
    if (cn_data_dir(home, sizeof home, o.home, &err))
        return cli_error(&err);
    const char **given[2] = {&o.chat_model, &o.embed_model};
    const char *roles[2] = {"chat", "embed"};
    for (int k = 0; k < 2; k++) {
        if (*given[k]) { /* a file, or an installed model's name */
            if (mdl_resolve(home, *given[k], paths[k], sizeof paths[k], &err))
                return cli_error(&err);
            if (strcmp(paths[k], *given[k]))
                snprintf(names[k], sizeof names[k], "%s", *given[k]);
            *given[k] = paths[k];
        } else if (mdl_active(home, roles[k], paths[k], sizeof paths[k], names[k],
                              sizeof names[k], NULL) == CN_OK) {
            *given[k] = paths[k];
        }
    }
    char draft_path[4096];
    if (o.draft_model) {
        if (!o.chat_model)
            return cli_usage("serve", "--draft needs a language model (-m)");
        if (mdl_resolve(home, o.draft_model, draft_path, sizeof draft_path, &err))
            return cli_error(&err);
        o.draft_model = draft_path;
    }
    char rr_path[4096], rr_name[128] = "";
    if (o.rerank_model && no_rerank)
        return cli_usage("serve", "--rerank-model and --no-rerank together: choose one");
    if (o.rerank_model) { /* a file, or an installed model's name */
        if (mdl_resolve(home, o.rerank_model, rr_path, sizeof rr_path, &err))
            return cli_error(&err);
        if (strcmp(rr_path, o.rerank_model))
            o.rerank_name = o.rerank_model;
        o.rerank_model = rr_path;
    } else if (!no_rerank && mdl_active(home, "rerank", rr_path, sizeof rr_path, rr_name,
                                        sizeof rr_name, NULL) == CN_OK) {
        o.rerank_model = rr_path;
        o.rerank_name = rr_name;
    }
    o.chat_name = names[0][0] ? names[0] : NULL;
    o.embed_name = names[1][0] ? names[1] : NULL;
    if (srv_run(&o, &err))
        return cli_error(&err);
    return 0;
}
