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
    "      --json            print a JSON array\n\n"
    "A TEXT that starts with '-' goes after `--`.\n";

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *file = NULL;
    bool add_special = true, parse_special = true, json = false, pieces = false;
    cn_buf text;
    cn_buf_init(&text, (size_t)64 << 20);
    int n_words = 0;
    enum { OPT_NO_BOS = CLI_OPT_FIRST_FREE, OPT_NO_SPECIAL, OPT_PIECES };
    static const struct option longs[] = {
        {"model", required_argument, NULL, 'm'}, {"file", required_argument, NULL, 'f'},
        {"no-bos", no_argument, NULL, OPT_NO_BOS}, {"no-special", no_argument, NULL, OPT_NO_SPECIAL},
        {"json", no_argument, NULL, CLI_OPT_JSON}, {"pieces", no_argument, NULL, OPT_PIECES},
        {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt("tokenize", argc, argv, ":m:f:h", longs)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'f': file = optarg; break;
        case OPT_NO_BOS: add_special = false; break;
        case OPT_NO_SPECIAL: parse_special = false; break;
        case CLI_OPT_JSON: json = true; break;
        case OPT_PIECES: pieces = true; break;
        case 'h':
            printf("%s", help);
            cn_buf_free(&text);
            return 0;
        default:
            cn_buf_free(&text);
            return 2;
        }
    }
    for (int i = optind; i < argc; i++)
        if ((n_words++ && cn_buf_append(&text, " ", 1)) ||
            cn_buf_append(&text, argv[i], strlen(argv[i]))) {
            cn_buf_free(&text);
            return cli_usage("tokenize", "TEXT is longer than 64 MiB (use -f FILE)");
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
