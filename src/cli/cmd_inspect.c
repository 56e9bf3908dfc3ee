/*
** cmd_inspect.c: `cairn inspect FILE [--json]` describes a GGUF file without
** loading the model: architecture, size, parameter count, tensor type mix,
** context length, vocabulary and tokenizer, chat template family.
*/
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tok/tok.h"

#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct type_share {
    uint32_t type;
    int64_t n_elem;
    uint64_t bytes;
} type_share;

static int cmp_share(const void *a, const void *b)
{
    const type_share *x = a, *y = b;
    return x->n_elem < y->n_elem ? 1 : x->n_elem > y->n_elem ? -1 : 0;
}

static void str_or(const gguf_file *g, const char *key, char *buf, size_t cap)
{
    gguf_str s;
    if (gguf_get_str(g, key, &s, NULL) == CN_OK)
        snprintf(buf, cap, "%.*s", (int)CN_MIN(s.len, cap - 1), s.ptr);
    else
        buf[0] = 0;
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    static const struct option longs[] = {
        {"json", no_argument, NULL, CLI_OPT_JSON}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt("inspect", argc, argv, ":h", longs)) != -1) {
        if (c == CLI_OPT_JSON)
            json = true;
        else if (c == 'h') {
            printf("usage: cairn inspect FILE [--json]\n\n"
                   "Describe a GGUF model file: architecture, parameter count, tensor type mix,\n"
                   "context length, vocabulary and tokenizer, chat template family, file size.\n"
                   "The model is not loaded; only its header is read.\n");
            return 0;
        } else
            return 2;
    }
    if (argc - optind > 1)
        return cli_usage("inspect", "one FILE at a time");
    path = optind < argc ? argv[optind] : NULL;
    if (!path)
        return cli_usage("inspect", "missing FILE");

    cn_err err = {0};
    gguf_file *g;
    if (gguf_open(&g, path, &err))
        return cli_error(&err);

    char arch[64], name[128], tok_model[32], tok_pre[32], key[128];
    str_or(g, "general.architecture", arch, sizeof arch);
    str_or(g, "general.name", name, sizeof name);
    str_or(g, "tokenizer.ggml.model", tok_model, sizeof tok_model);
    str_or(g, "tokenizer.ggml.pre", tok_pre, sizeof tok_pre);
    int64_t ctx = 0, n_vocab = 0, n_params = 0;
    snprintf(key, sizeof key, "%s.context_length", arch);
    gguf_get_i64(g, key, &ctx, NULL);
    const gguf_value *toks;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_T_STRING, &toks, NULL) == CN_OK)
        n_vocab = (int64_t)toks->arr.n;
    gguf_str tmpl = {0};
    gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL);
    const char *family = tok_chat_family(tmpl.ptr, (size_t)tmpl.len, arch);
    const char *family_note = strcmp(family, "unknown") ? ""
                              : tmpl.len ? " (not recognised: chat uses ChatML)"
                                         : " (the file has no template: chat uses ChatML)";

    type_share shares[GGML_TYPE_COUNT];
    int n_shares = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        n_params += t->n_elem;
        int k = 0;
        while (k < n_shares && shares[k].type != t->type)
            k++;
        if (k == n_shares)
            shares[n_shares++] = (type_share){t->type, 0, 0};
        shares[k].n_elem += t->n_elem;
        shares[k].bytes += t->size;
    }
    qsort(shares, (size_t)n_shares, sizeof shares[0], cmp_share);

    if (json) {
        json_t *o = json_object(), *mix = json_array();
        json_object_set_new(o, "file", json_string(path));
        json_object_set_new(o, "file_size", json_integer((json_int_t)g->file_size));
        json_object_set_new(o, "gguf_version", json_integer(g->version));
        json_object_set_new(o, "architecture", json_string(arch));
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "parameters", json_integer(n_params));
        json_object_set_new(o, "tensors", json_integer(g->n_tensors));
        json_object_set_new(o, "context_length", json_integer(ctx));
        json_object_set_new(o, "vocab_size", json_integer(n_vocab));
        json_object_set_new(o, "tokenizer", json_string(tok_model));
        json_object_set_new(o, "tokenizer_pre", json_string(tok_pre));
        json_object_set_new(o, "chat_template", json_string(family));
        for (int k = 0; k < n_shares; k++) {
            json_t *s = json_object();
            json_object_set_new(s, "type", json_string(gguf_ttype_name(shares[k].type)));
            json_object_set_new(s, "parameters", json_integer(shares[k].n_elem));
            json_object_set_new(s, "bytes", json_integer((json_int_t)shares[k].bytes));
            json_object_set_new(s, "percent",
                                json_real(n_params ? 100.0 * shares[k].n_elem / n_params : 0));
            json_array_append_new(mix, s);
        }
        json_object_set_new(o, "tensor_types", mix);
        char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
    } else {
        char sz[32];
        printf("file          %s (%s)\n", path, cli_size(g->file_size, sz));
        printf("format        GGUF v%u, %" PRId64 " tensors, %" PRId64 " metadata keys\n",
               g->version, g->n_tensors, g->n_kv);
        printf("architecture  %s\n", arch[0] ? arch : "(none)");
        if (name[0])
            printf("name          %s\n", name);
        if (n_params >= 1000000000)
            printf("parameters    %.2f B\n", n_params / 1e9);
        else
            printf("parameters    %.1f M\n", n_params / 1e6);
        printf("tensor types  ");
        for (int k = 0; k < n_shares; k++) {
            double pct = n_params ? 100.0 * shares[k].n_elem / n_params : 0;
            if (pct < 0.1)
                printf("%s%s <0.1%%", k ? ", " : "", gguf_ttype_name(shares[k].type));
            else
                printf("%s%s %.*f%%", k ? ", " : "", gguf_ttype_name(shares[k].type),
                       pct < 1 ? 1 : 0, pct);
        }
        printf(" (of parameters)\n");
        printf("context       %" PRId64 "\n", ctx);
        printf("vocabulary    %" PRId64 " tokens, tokenizer %s%s%s%s\n", n_vocab,
               tok_model[0] ? tok_model : "(none)", tok_pre[0] ? " (pre " : "", tok_pre,
               tok_pre[0] ? ")" : "");
        printf("chat template %s%s\n", tmpl.len || strcmp(family, "unknown") ? family : "none",
               family_note);
    }
    gguf_close(g);
    return 0;
}
