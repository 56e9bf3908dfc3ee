/*
** cli.h: the faces of the `cairn` command. Each subcommand is one function
** cmd_NAME(argc, argv) (argv[0] is the subcommand name) returning the exit
** status: 0 success, 1 failure, 2 bad usage.
*/
#ifndef CN_CLI_H
#define CN_CLI_H

#include "base/base.h"
#include "engine/engine.h"

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_models(int argc, char **argv);

/* Print "cairn: <msg>" to stderr and return 1. */
int cli_error(const cn_err *err);
/* Print "cairn CMD: <usage problem>" plus a hint and return 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a whole decimal integer in [lo, hi]; false if not. */
bool cli_int(const char *s, long lo, long hi, long *out);
/* Parse a float in [lo, hi]. */
bool cli_float(const char *s, double lo, double hi, double *out);
/* The model file to use: given (a path, or an installed model's name), else
** the active model of role; *out points into buf. Returns 0 or an exit
** status after printing the problem. */
int cli_model_path(const char *cmd, const char *given, const char *role, char *buf, size_t cap,
                   const char **out);
/* Human size: "808.0 MB". buf must hold 32 bytes. */
const char *cli_size(uint64_t bytes, char *buf);

/* ---- options shared by the model-running commands (args.c) ---------- */

#define CLI_MAX_STOP 8

typedef struct cli_run_args {
    const char *model;
    eng_opts opts;
    bool kv_set;          /* --kv-type was given */
    eng_sampler_opts sampler;
    int n_predict;
    const char *stop[CLI_MAX_STOP];
    int n_stop;
    bool ignore_eos;
} cli_run_args;

extern const char cli_run_help[];
void cli_run_defaults(cli_run_args *a);
int cli_run_option(const char *cmd, cli_run_args *a, int argc, char **argv, int *i);
/* Open a->model and its tokenizer, and tokenize text (special-token text
** parsed; BOS if add_bos and the model asks for one). */
int cli_open_and_tokenize(const cli_run_args *a, const char *text, size_t len, bool add_bos,
                          eng_model **m, tok_vocab **v, int32_t **ids, int *n_ids, cn_err *err);

#endif
