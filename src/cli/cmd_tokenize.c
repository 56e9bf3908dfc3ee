/*
** cmd_tokenize.c: `cairn tokenize -m FILE [--no-bos] [--json] TEXT` prints
** token ids. Only the tokenizer is read from the file, not the weights.
*/
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: cairn tokenize -m FILE [options] TEXT...\n\n"
    "Print the token ids of TEXT (the words of TEXT joined by spaces) on one line.\n\n"
    "  -m, --model FILE      GGUF file whose tokenizer to use\n"
    "  -f, --file FILE       tokenize the contents of FILE instead of TEXT\n"
    "      --no-bos          do not add the BOS/EOS tokens the model asks for\n"
    "      --no-special      treat special-token text like <|eot_id|> as plain text\n"
    "      --pieces          print each token's text beside its id\n"
    "      --json            print a JSON array\n";

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *file = NULL;
    bool add_special = true, parse_special = true, json = false, pieces = false;
    cn_buf text;
    cn_buf_init(&text, (size_t)64 << 20);
    int n_words = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if ((!strcmp(o, "-m") || !strcmp(o, "--model")) && i + 1 < argc)
            model = argv[++i];
        else if ((!strcmp(o, "-f") || !strcmp(o, "--file")) && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(o, "--no-bos"))
            add_special = false;
        else if (!strcmp(o, "--no-special"))
            parse_special = false;
        else if (!strcmp(o, "--json"))
            json = true;
        else if (!strcmp(o, "--pieces"))
            pieces = true;
        else if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            printf("%s", help);
            cn_buf_free(&text);
            return 0;
        } else if (o[0] == '-' && o[1] && strcmp(o, "--") != 0) {
            cn_buf_free(&text);
            return cli_usage("tokenize", "unknown option or missing value: '%s'", o);
        } else {
            if (!strcmp(o, "--") && i + 1 < argc)
                o = argv[++i];
            if ((n_words++ && cn_buf_append(&text, " ", 1)) || cn_buf_append(&text, o, strlen(o)))
                break;
        }
    }
    if (!model || (!n_words == !file)) {
        cn_buf_free(&text);
        return cli_usage("tokenize", "need -m FILE and either TEXT or -f FILE");
    }
    cn_err err = {0};
    if (file) {
        char *data;
        size_t len;
        if (cn_read_file(file, (size_t)64 << 20, &data, &len, &err))
            return cli_error(&err);
        cn_buf_append(&text, data, len);
        free(data);
    }
    gguf_file *g = NULL;
    tok_vocab *v = NULL;
    int32_t *ids = NULL;
    int rc = gguf_open(&g, model, &err);
    if (!rc)
        rc = tok_open(&v, g, &err);
    int n = 0;
    if (!rc) {
        int cap = (int)text.len + 8;
        ids = cn_malloc((size_t)cap * sizeof *ids);
        n = ids ? tok_encode(v, text.data ? text.data : "", text.len, add_special, parse_special,
                             ids, cap, &err)
                : cn_fail(&err, CN_ENOMEM, "out of memory");
        if (n > cap)
            n = cn_fail(&err, CN_ELIMIT, "too many tokens");
        rc = n < 0 ? n : 0;
    }
    if (!rc) {
        char piece[512];
        if (pieces && !json) {
            for (int i = 0; i < n; i++) {
                int pl = tok_piece(v, ids[i], true, piece, sizeof piece);
                pl = pl < 0 || pl > (int)sizeof piece ? 0 : pl;
                printf("%d '%.*s'\n", (int)ids[i], pl, piece);
            }
        } else {
            printf(json ? "[" : "");
            for (int i = 0; i < n; i++)
                printf("%s%d", i ? (json ? ", " : " ") : "", (int)ids[i]);
            printf(json ? "]\n" : "\n");
        }
    }
    free(ids);
    tok_close(v);
    gguf_close(g);
    cn_buf_free(&text);
    return rc ? cli_error(&err) : 0;
}
