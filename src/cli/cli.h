/*
** cli.h: the faces of the `cairn` command. Each subcommand is one function
** cmd_NAME(argc, argv) (argv[0] is the subcommand name) returning the exit
** status: 0 success, 1 failure, 2 bad usage.
*/
#ifndef CN_CLI_H
#define CN_CLI_H

#include "base/base.h"

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);

/* Print "cairn: <msg>" to stderr and return 1. */
int cli_error(const cn_err *err);
/* Print "cairn CMD: <usage problem>" plus a hint and return 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a whole decimal integer in [lo, hi]; false if not. */
bool cli_int(const char *s, long lo, long hi, long *out);
/* Parse a float in [lo, hi]. */
bool cli_float(const char *s, double lo, double hi, double *out);
/* Human size: "808.0 MB". buf must hold 32 bytes. */
const char *cli_size(uint64_t bytes, char *buf);

#endif
