/*
** server.h: `cairn serve`, public face. A local HTTP server (libmicrohttpd,
** one thread per connection) offering:
**   - the OpenAI API: /v1/models, /v1/chat/completions, /v1/completions,
**     /v1/embeddings, with the virtual model "cairn-library" answering from
**     the user's documents with citations;
**   - the subset of the Ollama API its clients use: /api/tags, /api/chat,
**     /api/generate, /api/embed, /api/show, /api/version;
**   - JSON endpoints for the web UI (/api/library/..., /api/status) and the
**     web UI itself (web/, compiled into the binary).
**
** One worker thread per loaded model owns it (and its KV cache); requests
** wait in a bounded FIFO queue per model (429 when full). Every input from
** the network is bounded: body size, JSON depth, messages, tokens, headers.
**
** Start reading at http.c (the daemon, the route table, auth and limits),
** then parse.c (request bodies), worker.c (queues), openai.c, ollama.c,
** libapi.c, upload.c and modelapi.c (the endpoints), libpool.c (library
** handles) and progress.c (background work streamed as NDJSON).
*/
#ifndef CN_SERVER_H
#define CN_SERVER_H

#include "base/base.h"
#include "tok/tok.h"

#include <jansson.h>
#include <stdio.h>

typedef struct srv_limits {
    size_t max_body;     /* bytes of a JSON request body (default 1 MiB) */
    size_t max_upload;   /* bytes of one uploaded document (default 256 MiB) */
    size_t max_headers;  /* bytes of all request headers together (default 16 KiB) */
    int max_depth;       /* JSON nesting depth (default 32) */
    int max_messages;    /* chat messages per request (default 512) */
    int max_tokens;      /* largest max_tokens a request may ask for (default 4096) */
    int default_tokens;  /* max_tokens when the request gives none (default 512) */
    int max_inputs;      /* embedding inputs per request (default 512) */
    int max_stop;        /* stop strings per request (default 4) */
    int queue;           /* requests waiting per model beyond the running one (default 8) */
    int max_connections; /* open connections (default 512) */
    int max_per_address; /* open connections from one client address, on a
                          ** non-loopback bind (default 32) */
} srv_limits;

typedef struct srv_opts {
    const char *host;        /* default 127.0.0.1 */
    int port;                /* default 8377; 0 picks a free port */
    const char *api_key;     /* required for non-loopback hosts */
    const char *cors_origin; /* an extra allowed origin ("*" for any), or NULL */
    bool quiet;              /* no access log */
    const char *chat_model;  /* GGUF language model, or NULL */
    const char *draft_model; /* GGUF draft model for speculative decoding, or NULL */
    const char *embed_model; /* GGUF embedding model, or NULL */
    const char *rerank_model; /* GGUF reranker (cross-encoder), or NULL */
    const char *rerank_name; /* its API name; NULL: the file name without .gguf */
    const char *chat_name;   /* API names of the models (installed models' names); */
    const char *embed_name;  /* NULL: the file name without .gguf */
    const char *home;        /* data directory override, or NULL */
    int threads;             /* engine threads (0: physical cores) */
    int n_ctx;               /* chat model context (0: model default) */
    const char *port_file;   /* write the bound port here once listening (tests) */
    const char *allow_remote[8]; /* remotes a request may name (model "remote:NAME") */
    int n_allow_remote;
    bool no_watch;           /* do not follow the library's watched folders */
    double watch_settle;     /* seconds a changed file must be quiet (0: watch.h's default) */
    srv_limits lim;
} srv_opts;

/* Defaults for everything (host, port, limits). */
void srv_opts_default(srv_opts *o);

/* The API's routes, one a line (method, path, what it does). */
void srv_print_routes(FILE *f);

/* Is host a loopback address or name (127.0.0.0/8, ::1, localhost)? */
bool srv_host_is_loopback(const char *host);

/* Load the models, bind, serve until SIGINT or SIGTERM, then shut down
** cleanly (running generations are cancelled). Refuses a non-loopback host
** without an API key. Returns CN_OK or a CN_E* code with err filled. */
int srv_run(const srv_opts *o, cn_err *err);

/* ---- request parsing (parse.c): exposed for the tests and fuzzing ------- */

/* An HTTP status, an OpenAI error type, the offending parameter, a sentence. */
typedef struct srv_error {
    int status;
    const char *type; /* "invalid_request_error", "authentication_error", ... */
    const char *code; /* or NULL */
    char param[64];
    char msg[400];
    int retry_after;  /* seconds for a Retry-After header (503), or 0 */
} srv_error;

/* Fill e and return -1. */
int srv_fail(srv_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Deepest nesting of arrays/objects in JSON text s[0..n), strings skipped;
** stops counting (returns max + 1) once max is passed. */
int srv_json_depth(const char *s, size_t n, int max);

/* Parse a JSON body: size, depth, syntax and "an object at the top" are
** checked. The caller json_decref()s *out. Returns 0 or -1 with e filled. */
int srv_parse_body(const char *body, size_t len, const srv_limits *lim, json_t **out,
                   srv_error *e);

enum { SRV_API_OPENAI = 1, SRV_API_OLLAMA = 2 };

/* A generation request, chat or completion, OpenAI or Ollama dialect. Strings
** point into the parsed JSON (root) or the arena. */
typedef struct srv_gen_req {
    json_t *root;
    const char *model;
    tok_chat_msg *msgs; /* chat: n_msgs messages */
    int n_msgs;
    const char *prompt; /* completion */
    const char *system; /* Ollama /api/generate "system" */
    bool raw;           /* Ollama /api/generate "raw": no template */
    int max_tokens;     /* limited to lim->max_tokens; default lim->default_tokens */
    double temperature, top_p;
    int top_k;
    bool has_seed;
    uint64_t seed;
    const char *stop[8];
    int n_stop;
    bool stream, include_usage;
    /* OpenAI response_format (json_object, json_schema) or Ollama format
    ** ("json" or a schema): the grammar the answer must follow, owned */
    struct gr_grammar *grammar;
    const char *grammar_param; /* "response_format" or "format": where it came from */
} srv_gen_req;

/* Parse a chat request (OpenAI /v1/chat/completions or Ollama /api/chat)
** or a completion (OpenAI /v1/completions or Ollama /api/generate). Every
** field is type- and range-checked; unknown fields are ignored. Returns 0,
** or -1 with e filled (400 and the parameter at fault). On success the
** caller calls srv_gen_req_free. */
int srv_parse_chat(const char *body, size_t len, int api, const srv_limits *lim, cn_arena *a,
                   srv_gen_req *r, srv_error *e);
int srv_parse_completion(const char *body, size_t len, int api, const srv_limits *lim,
                         cn_arena *a, srv_gen_req *r, srv_error *e);
void srv_gen_req_free(srv_gen_req *r);

typedef struct srv_embed_req {
    json_t *root;
    const char *model;
    const char **inputs;
    size_t *lens;
    int n_inputs;
    bool base64;  /* encoding_format "base64" */
    bool ollama_truncate; /* Ollama "truncate" (default true) */
} srv_embed_req;

/* Parse an embeddings request (OpenAI "input": string or array of strings,
** "encoding_format" float|base64; Ollama "input" likewise). */
int srv_parse_embed(const char *body, size_t len, int api, const srv_limits *lim, cn_arena *a,
                    srv_embed_req *r, srv_error *e);
void srv_embed_req_free(srv_embed_req *r);

/* Standard base64 of data[0..n) into out (NUL-terminated); out must hold
** 4 * ((n + 2) / 3) + 1 bytes. Returns the length written. */
size_t srv_base64(const void *data, size_t n, char *out);

/* A file name for an upload: the last path component of name, with only
** letters, digits and ". _ - ( ) space" kept (others become '_'), no leading
** dot, at most 120 bytes; "upload" if nothing is left. */
void srv_safe_filename(const char *name, char *out, size_t cap);

#endif
