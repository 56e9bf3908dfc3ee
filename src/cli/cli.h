/*
** cli.h: the faces of the `cairn` command. Each subcommand is one function
** cmd_NAME(argc, argv) (argv[0] is the subcommand name) returning the exit
** status: 0 success, 1 failure, 2 bad usage.
*/
#ifndef CN_CLI_H
#define CN_CLI_H

#include "base/base.h"
#include "engine/engine.h"
#include "library/library.h"

#include <getopt.h>

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_rerank(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_summarize(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_remote(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_setup(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_encrypt(int argc, char **argv);
int cmd_decrypt(int argc, char **argv);
int cmd_key(int argc, char **argv);

/* --key-file FILE, taken off any command line by main (cmd_crypt.c), and
** the unlocking it and a terminal prompt give lib_open. */
extern const char *cli_key_file;
void cli_setup_unlock(void);
int cli_ask_secret(void *ctx, const char *question, char *out, size_t cap);

/* ---- a language model for the library (llm.c) ---------------------------- */
typedef struct cli_llm {
    lib_llm api; /* what lib_summarize and lib_extract call */
    eng_model *m;
    tok_vocab *v;
    const char *family; /* chat template */
    int32_t *ids;
    int cap;
    char name[512];
} cli_llm;
int cli_llm_open(cli_llm *c, const char *path, int threads, cn_err *err);
void cli_llm_close(cli_llm *c);

/* The document arg names in l: its path (as given or resolved), its id,
** or a file name only one document has. CN_ENOTFOUND naming it if none. */
int cli_find_doc(lib *l, const char *arg, int64_t *id, cn_err *err);

/* Print "cairn: <msg>" to stderr and return 1. */
int cli_error(const cn_err *err);
/* Print "cairn CMD: <usage problem>" plus a hint and return 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a whole decimal integer in [lo, hi]; false if not. */
bool cli_int(const char *s, long lo, long hi, long *out);
/* Parse a float in [lo, hi]. */
bool cli_float(const char *s, double lo, double hi, double *out);
/* The model file to use: given (a path, or an installed model's name), else
** the active model of role, both looked up in the data directory home (NULL:
** $CAIRN_HOME, then the default); *out points into buf. Returns 0 or an exit
** status after printing the problem. */
int cli_model_path(const char *cmd, const char *home, const char *given, const char *role,
                   char *buf, size_t cap, const char **out);
/* Human size: "808.0 MB". buf must hold 32 bytes. */
const char *cli_size(uint64_t bytes, char *buf);

/* ---- option parsing (args.c) ------------------------------------------
** Every command parses with getopt_long, so all spell and order options
** alike: options may come before or after the operands, `--` ends the
** options (what follows is an operand even if it starts with '-'), and a
** value may be given as `--opt V` or `--opt=V`. Operands are then
** argv[optind..argc). Short option strings start with ':' so that a missing
** value is told apart from an unknown option. */

/* getopt_long with Cairn's usage messages. Returns the option, -1 after the
** last one, or '?' after printing the problem (the caller returns 2). */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Codes of long options without a short form. */
enum {
    CLI_OPT_HOME = 256,
    CLI_OPT_JSON,
    CLI_OPT_KV_TYPE,
    CLI_OPT_MLOCK,
    CLI_OPT_TEMP,
    CLI_OPT_TOP_K,
    CLI_OPT_TOP_P,
    CLI_OPT_MIN_P,
    CLI_OPT_REPEAT_PENALTY,
    CLI_OPT_REPEAT_LAST_N,
    CLI_OPT_SEED,
    CLI_OPT_STOP,
    CLI_OPT_LOOKUP,
    CLI_OPT_IGNORE_EOS,
    CLI_OPT_DRAFT,
    CLI_OPT_DRAFT_MAX,
    CLI_OPT_GRAMMAR,
    CLI_OPT_SCHEMA,
    CLI_OPT_JSON_OUTPUT,
    CLI_OPT_FIRST_FREE = 300 /* a command's own long-only options start here */
};

/* Open the encoder at path for one job (a reranker, or an embedding model
** when reranker is false: refused otherwise) and its tokenizer. On failure
** both are NULL and err says why. */
int cli_open_encoder(const char *path, const eng_opts *o, bool reranker, eng_encoder **e,
                     tok_vocab **v, cn_err *err);
/* The encoder commands' (embed, rerank) -t N and -b N: 1 if opt was one of
** them, 0 if not, 2 (after printing) for a bad value. */
int cli_encoder_option(const char *cmd, eng_opts *o, int opt, const char *v);

/* ---- reranking search results (cmd_library.c) ------------------------ */

/* Candidates a reranker rescores before the best k are kept. */
enum { CLI_RERANK_CANDIDATES = 30 };

struct lib_result;
/* Rescore res[0..n) against q with the reranker e (cli_open_encoder with
** reranker true) in one packed run and reorder them best first; each
** result's score becomes the reranker's raw score (ties keep their order). */
int cli_rerank_results(eng_encoder *e, const tok_vocab *v, const char *q, struct lib_result *res,
                       int n, cn_err *err);

/* ---- options shared by the model-running commands (args.c) ---------- */

#define CLI_MAX_STOP 8

typedef struct cli_run_args {
    const char *model;
    const char *home;     /* --home: where installed model names are looked up */
    eng_opts opts;
    bool kv_set;          /* --kv-type was given */
    eng_sampler_opts sampler;
    int n_predict;
    const char *stop[CLI_MAX_STOP];
    int n_stop;
    bool ignore_eos;
    int lookup; /* --lookup: prompt-lookup draft length (0 off) */
    const char *draft; /* --draft: draft model (file or installed name), or NULL */
    int draft_max;     /* --draft-max: tokens it proposes at most (default 4) */
    const char *grammar_file; /* --grammar: a GBNF file */
    const char *schema_file;  /* --schema: a JSON Schema file */
    bool json_output;         /* --json-output: any JSON object */
} cli_run_args;

extern const char cli_run_help[];
/* The shared options for getopt_long: short letters and long entries. */
#define CLI_RUN_SHORTOPTS "m:t:c:b:n:"
#define CLI_RUN_LONGOPTS                                                                           \
    {"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},          \
        {"ctx", required_argument, NULL, 'c'}, {"batch", required_argument, NULL, 'b'},          \
        {"n-predict", required_argument, NULL, 'n'}, {"home", required_argument, NULL, CLI_OPT_HOME}, \
        {"kv-type", required_argument, NULL, CLI_OPT_KV_TYPE},                                   \
        {"mlock", no_argument, NULL, CLI_OPT_MLOCK}, {"temp", required_argument, NULL, CLI_OPT_TEMP}, \
        {"top-k", required_argument, NULL, CLI_OPT_TOP_K},                                       \
        {"top-p", required_argument, NULL, CLI_OPT_TOP_P},                                       \
        {"min-p", required_argument, NULL, CLI_OPT_MIN_P},                                       \
        {"repeat-penalty", required_argument, NULL, CLI_OPT_REPEAT_PENALTY},                     \
        {"repeat-last-n", required_argument, NULL, CLI_OPT_REPEAT_LAST_N},                       \
        {"seed", required_argument, NULL, CLI_OPT_SEED},                                         \
        {"stop", required_argument, NULL, CLI_OPT_STOP},                                         \
        {"lookup", required_argument, NULL, CLI_OPT_LOOKUP},                                     \
        {"ignore-eos", no_argument, NULL, CLI_OPT_IGNORE_EOS},                                   \
        {"draft", required_argument, NULL, CLI_OPT_DRAFT},                                       \
        {"draft-max", required_argument, NULL, CLI_OPT_DRAFT_MAX},                               \
        {"grammar", required_argument, NULL, CLI_OPT_GRAMMAR},                                   \
        {"schema", required_argument, NULL, CLI_OPT_SCHEMA},                                     \
        {"json-output", no_argument, NULL, CLI_OPT_JSON_OUTPUT}
void cli_run_defaults(cli_run_args *a);
/* The grammar --grammar, --schema or --json-output ask for (*out NULL when
** none does); an error says which file and what is wrong. */
struct gr_grammar;
int cli_run_grammar(const cli_run_args *a, struct gr_grammar **out, cn_err *err);
/* Apply option opt (as cli_getopt returned it) with value arg. Returns 1 if
** it was one of the shared options, 0 if not, 2 (after printing) for a bad
** value. */
int cli_run_option(const char *cmd, cli_run_args *a, int opt, const char *arg);
/* Open a->model and its tokenizer, and tokenize text (special-token text
** parsed; BOS if add_bos and the model asks for one). */
int cli_open_and_tokenize(const cli_run_args *a, const char *text, size_t len, bool add_bos,
                          eng_model **m, tok_vocab **v, int32_t **ids, int *n_ids, cn_err *err);
/* Open the draft model named by --draft (a file, or an installed model in
** the data directory home_opt) for m, whose vocabulary is v: the same threads
** and context, and the same vocabulary token for token, else an error
** naming the first difference. *d is NULL when name is. */
int cli_open_draft(const char *home_opt, const char *name, const eng_model *m, const tok_vocab *v,
                   eng_model **d, cn_err *err);

#endif
