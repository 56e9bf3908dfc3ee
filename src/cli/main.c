/*
** main.c: the `cairn` command. The table below is the list of subcommands;
** `cairn --help` prints from it.
*/
#include "cli/cli.h"
#include "models/models.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cmd_entry {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *args;
    const char *help;
} cmd_entry;

static const cmd_entry commands[] = {
    {"init", cmd_init, "[--encrypt]", "create a library (encrypted with --encrypt)"},
    {"add", cmd_add, "PATH... [--prune]", "add files and folders to the library"},
    {"setup", cmd_setup, "", "first run: what this machine can run, and the models for it"},
    {"sync", cmd_sync, "", "re-index changed files, remove the ones that are gone"},
    {"watch", cmd_watch, "add|rm|ls|run", "folders kept up to date by themselves"},
    {"index", cmd_index, "[-e MODEL]", "OCR scanned pages, embed passages for hybrid search (resumable)"},
    {"ls", cmd_ls, "[--json]", "list the documents in the library"},
    {"rm", cmd_rm, "DOC...", "remove documents from the library"},
    {"search", cmd_search, "QUERY [-k 5] [--json]", "ranked passages with document and page"},
    {"ask", cmd_ask, "QUESTION [-k 4] [-m MODEL]", "answer from your documents, with citations"},
    {"summarize", cmd_summarize, "DOC [--length short|medium|long]", "summarise a document, each sentence with its pages"},
    {"extract", cmd_extract, "--schema S.json DOC...", "fill a schema's fields from documents, each cited"},
    {"remote", cmd_remote, "add|rm|ls|log", "bigger models elsewhere, used only with your consent per query"},
    {"models", cmd_models, "list|pull|use|rm|rollback|verify|...", "manage models like packages (see --help)"},
    {"doctor", cmd_doctor, "", "paths, library health, models, service level"},
    {"encrypt", cmd_encrypt, "[--key-file F | --passphrase]", "encrypt an existing library in place"},
    {"decrypt", cmd_decrypt, "", "turn an encrypted library back into a plain one"},
    {"key", cmd_key, "list|add|remove N|passwd", "the ways to unlock an encrypted library"},
    {"check", cmd_check, "retrieval [-n 50] [--json]", "how well search finds your passages, per mode"},
    {"serve", cmd_serve, "[--host H] [--port N] [--api-key K]", "web UI + OpenAI/Ollama API"},
    {"inspect", cmd_inspect, "FILE [--json]", "describe a GGUF model file"},
    {"tokenize", cmd_tokenize, "-m FILE [--no-bos] [--json] TEXT", "print the token ids of TEXT"},
    {"generate", cmd_generate, "-m FILE -p TEXT [-n N] [options]", "continue a prompt, streamed"},
    {"chat", cmd_chat, "-m FILE [options]", "talk with a model in its chat format"},
    {"embed", cmd_embed, "-m FILE [--json] [TEXT...]", "print sentence embedding vectors"},
    {"rerank", cmd_rerank, "-m FILE [--json] QUERY DOC...", "score documents against a query"},
    {"logits", cmd_logits, "-m FILE -p TEXT -o OUT.f32", "write the last position's logits"},
    {"bench", cmd_bench, "-m FILE [-p 512] [-n 64] [-t N]", "prompt and generation speed, t/s"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cairn COMMAND [ARGS]\n\n"
               "Cairn runs GGUF language models locally. Commands:\n\n");
    for (size_t i = 0; i < CN_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-9s %-36s %s\n", commands[i].name, commands[i].args, commands[i].help);
    fprintf(f, "\nRun `cairn COMMAND --help` for the options of one command.\n"
               "Any command takes --key-file FILE to unlock an encrypted library (or\n"
               "$CAIRN_KEY_FILE, or $CAIRN_PASSPHRASE, or it asks on the terminal).\n");
}

int cli_error(const cn_err *err)
{
    fprintf(stderr, "cairn: %s\n", err->msg[0] ? err->msg : cn_strerror(err->code));
    return 1;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cairn %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see `cairn %s --help`)\n", cmd);
    va_end(ap);
    return 2;
}

bool cli_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool cli_float(const char *s, double lo, double hi, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi) || isnan(v))
        return false;
    *out = v;
    return true;
}

const char *cli_size(uint64_t bytes, char *buf)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(buf, 32, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

int cli_model_path(const char *cmd, const char *home_opt, const char *given, const char *role,
                   char *buf, size_t cap, const char **out)
{
    char home[4096];
    cn_err err = {0};
    int rc = cn_data_dir(home, sizeof home, home_opt, &err);
    if (!rc)
        rc = given ? mdl_resolve(home, given, buf, cap, &err)
                   : mdl_active(home, role, buf, cap, NULL, 0, &err);
    if (rc == CN_ENOTFOUND && !given)
        return cli_usage(cmd, "missing -m FILE (and no active %s model: `cairn models pull` one)",
                         role);
    if (rc)
        return cli_error(&err);
    *out = buf;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("cairn 0.1.0\n");
        return 0;
    }
    /* --key-file FILE belongs to every command: taken off here, before the
    ** command's own options are parsed (not after a `--`) */
    int n = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            while (i < argc)
                argv[n++] = argv[i++];
            break;
        }
        if (!strcmp(argv[i], "--key-file")) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fprintf(stderr, "cairn: --key-file needs a FILE\n");
                return 2;
            }
            cli_key_file = argv[++i];
        } else if (!strncmp(argv[i], "--key-file=", 11))
            cli_key_file = argv[i] + 11;
        else
            argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    cli_setup_unlock();
    for (size_t i = 0; i < CN_ARRAY_LEN(commands); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "cairn: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
