/*
** cmd_remote.c: `cairn remote add|rm|ls|log`: the endpoints a query may be
** sent to, with the user's consent each time (remote.h), and the record of
** every call that was made.
*/
#include "cli/cli.h"
#include "remote/remote.h"

#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char remote_help[] =
    "usage: cairn remote add NAME --url URL --model M [--api-key-env VAR | --api-key-file F]\n"
    "                        [--timeout S]\n"
    "       cairn remote rm NAME\n"
    "       cairn remote ls [--json]\n"
    "       cairn remote log [--json]\n\n"
    "A remote is a bigger model served elsewhere with the OpenAI chat API (vLLM,\n"
    "llama.cpp's server, Ollama, a hosted API). Nothing is sent to one unless you\n"
    "say so for that query: `cairn ask --remote NAME` shows exactly what would\n"
    "leave the machine and asks first (--yes for scripts). Your documents, the\n"
    "index and the search stay here; only the question and the passages found go.\n\n"
    "  --url URL           the API base, up to /v1 (https://; http:// only on this\n"
    "                      machine)\n"
    "  --model M           the model name the endpoint knows\n"
    "  --api-key-env VAR   read the key from this environment variable (a key is\n"
    "  --api-key-file F    never given on a command line), or from this file\n"
    "  --api-key-keyring   keep it in the desktop keyring (asked on the terminal, or\n"
    "                      read from one line of stdin)\n"
    "  --timeout S         give up after S seconds without a byte (default 60)\n\n"
    "Endpoints are kept as remote.NAME.* lines in the settings file ($CAIRN_CONFIG,\n"
    "else ~/.config/cairn/config). `remote log` lists every call made: when, where,\n"
    "which pages, bytes each way (not the text).\n";

static int remote_add(int argc, char **argv)
{
    enum { OPT_URL = CLI_OPT_FIRST_FREE, OPT_MODEL, OPT_KEY_ENV, OPT_KEY_FILE, OPT_TIMEOUT,
           OPT_KEY, OPT_KEY_KEYRING };
    static const struct option longs[] = {
        {"url", required_argument, NULL, OPT_URL}, {"model", required_argument, NULL, OPT_MODEL},
        {"api-key-env", required_argument, NULL, OPT_KEY_ENV},
        {"api-key-file", required_argument, NULL, OPT_KEY_FILE},
        {"api-key", required_argument, NULL, OPT_KEY},
        {"api-key-keyring", no_argument, NULL, OPT_KEY_KEYRING},
        {"timeout", required_argument, NULL, OPT_TIMEOUT}, {"help", no_argument, NULL, 'h'},
        {0}};
    rmt_endpoint e = {.timeout_s = 60};
    int c;
    long n;
    while ((c = cli_getopt("remote add", argc, argv, ":h", longs)) != -1) {
        switch (c) {
        case OPT_URL: snprintf(e.base_url, sizeof e.base_url, "%s", optarg); break;
        case OPT_MODEL: snprintf(e.model, sizeof e.model, "%s", optarg); break;
        case OPT_KEY_ENV: snprintf(e.api_key_env, sizeof e.api_key_env, "%s", optarg); break;
        case OPT_KEY_FILE: snprintf(e.api_key_file, sizeof e.api_key_file, "%s", optarg); break;
        case OPT_KEY_KEYRING: e.api_key_keyring = true; break;
        case OPT_KEY:
            return cli_usage("remote add", "a key is never given on the command line (shells "
                                           "keep history, ps shows it): --api-key-env VAR or "
                                           "--api-key-file F");
        case OPT_TIMEOUT:
            if (!cli_int(optarg, 1, 3600, &n))
                return cli_usage("remote add", "--timeout %s: expected 1 to 3600 seconds", optarg);
            e.timeout_s = (int)n;
            break;
        case 'h': printf("%s", remote_help); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1)
        return cli_usage("remote add", optind == argc ? "missing NAME" : "one NAME");
    if (!e.base_url[0] || !e.model[0])
        return cli_usage("remote add", "--url and --model are both needed");
    if ((e.api_key_env[0] != 0) + (e.api_key_file[0] != 0) + e.api_key_keyring > 1)
        return cli_usage("remote add", "--api-key-env, --api-key-file and --api-key-keyring: "
                                       "choose one");
    snprintf(e.name, sizeof e.name, "%s", argv[optind]);
    if (strlen(argv[optind]) >= sizeof e.name || !rmt_name_ok(argv[optind]))
        return cli_usage("remote add", "'%s': a name is letters, digits, - and _", argv[optind]);
    cn_err err = {0};
    if (e.api_key_keyring) {
        /* the key from the terminal (echo off), else one line of stdin: never argv */
        char key[4096] = "";
        if (cli_ask_secret(NULL, "API key (kept in the desktop keyring): ", key, sizeof key)) {
            if (!fgets(key, sizeof key, stdin))
                key[0] = 0;
            key[strcspn(key, "\r\n")] = 0;
        }
        int rc = key[0] ? rmt_keyring_store(e.name, key, &err)
                        : cn_fail(&err, CN_EINVAL, "no key given (type it, or pipe it in)");
        sodium_memzero(key, sizeof key);
        if (rc)
            return cli_error(&err);
    }
    if (rmt_save(&e, &err))
        return cli_error(&err);
    char path[4096] = "";
    cn_config_path(path, sizeof path);
    fprintf(stderr, "remote %s: %s, model %s (in %s). Nothing is sent until you ask with "
                    "`cairn ask --remote %s` and confirm.\n",
            e.name, e.base_url, e.model, path, e.name);
    return 0;
}

static void print_log(void *ctx, json_t *r)
{
    bool json = *(bool *)ctx;
    if (json) {
        char *s = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "{}");
        free(s);
        return;
    }
    cn_buf pages;
    cn_buf_init(&pages, 1 << 16);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r, "passages"), i, p)
        cn_buf_printf(&pages, "%s%s p. %lld", i ? "; " : "",
                      json_string_value(json_object_get(p, "doc")),
                      (long long)json_integer_value(json_object_get(p, "page")));
    const char *error = json_string_value(json_object_get(r, "error"));
    printf("%s  %s (%s)  sent %lld bytes, received %lld  %s%s%s\n    %s\n",
           json_string_value(json_object_get(r, "time")),
           json_string_value(json_object_get(r, "remote")),
           json_string_value(json_object_get(r, "url")),
           (long long)json_integer_value(json_object_get(r, "bytes_sent")),
           (long long)json_integer_value(json_object_get(r, "bytes_received")),
           error ? "FAILED: " : "ok", error ? error : "", "",
           pages.data ? pages.data : "(no passages)");
    cn_buf_free(&pages);
}

int cmd_remote(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("%s", remote_help);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    cn_err err = {0};
    if (!strcmp(sub, "add"))
        return remote_add(argc - 1, argv + 1);
    bool json = argc > 2 && !strcmp(argv[argc - 1], "--json");
    if (!strcmp(sub, "rm")) {
        if (argc != 3)
            return cli_usage("remote rm", "expected one NAME");
        if (rmt_remove(argv[2], &err))
            return cli_error(&err);
        fprintf(stderr, "remote %s removed\n", argv[2]);
        return 0;
    }
    if (!strcmp(sub, "ls")) {
        rmt_endpoint all[RMT_MAX];
        int n = rmt_list(all, RMT_MAX, &err);
        if (n < 0)
            return cli_error(&err);
        if (json) {
            json_t *a = json_array();
            for (int i = 0; i < n; i++)
                json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:i}", "name",
                                                   all[i].name, "base_url", all[i].base_url,
                                                   "model", all[i].model, "key",
                                                   all[i].api_key_env[0] ? "env"
                                                   : all[i].api_key_file[0] ? "file"
                                                   : all[i].api_key_keyring ? "keyring" : "none",
                                                   "timeout", all[i].timeout_s));
            char *s = json_dumps(a, JSON_INDENT(2));
            printf("%s\n", s ? s : "[]");
            free(s);
            json_decref(a);
            return 0;
        }
        if (n == 0)
            fprintf(stderr, "no remotes: Cairn works offline (`cairn remote add --help`)\n");
        for (int i = 0; i < n; i++)
            printf("%-16s %s  model %s  key %s%s\n", all[i].name, all[i].base_url, all[i].model,
                   all[i].api_key_env[0] ? "from $" : all[i].api_key_file[0] ? "from file "
                   : all[i].api_key_keyring ? "in the desktop keyring" : "none",
                   all[i].api_key_env[0] ? all[i].api_key_env : all[i].api_key_file);
        return 0;
    }
    if (!strcmp(sub, "log")) {
        char home[4096];
        const char *h = NULL;
        for (int i = 2; i + 1 < argc; i++)
            if (!strcmp(argv[i], "--home"))
                h = argv[i + 1];
        if (cn_data_dir(home, sizeof home, h, &err) ||
            rmt_audit_read(home, print_log, &json, &err))
            return cli_error(&err);
        return 0;
    }
    return cli_usage("remote", "unknown subcommand '%s' (add, rm, ls, log)", sub);
}
