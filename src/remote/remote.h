/*
** remote.h: a bigger model served elsewhere (vLLM, llama.cpp's server,
** Ollama, a hosted API), spoken to with the OpenAI chat-completions API,
** only when the user says so for that one query (issue 17). Documents,
** index and retrieval stay on this machine; what is sent is built by the
** caller first (rmt_body), so that it can be shown byte for byte before it
** leaves, and the same bytes are what rmt_chat sends.
**
** Endpoints live in the settings file (cn_config_path), as lines
**   remote.NAME.base_url = https://host/v1
**   remote.NAME.model = some-model
**   remote.NAME.api_key_env = VAR      (or remote.NAME.api_key_file = PATH,
**                                       or remote.NAME.api_key_keyring = yes)
**   remote.NAME.timeout = 60           (seconds without a byte; optional)
** and never on a command line. TLS peers are always verified; plain http://
** only to this machine (the model downloads' rule). Every call is recorded
** in an audit log in the data directory: when, where, which pages, how many
** bytes each way -- not the text.
*/
#ifndef CN_REMOTE_H
#define CN_REMOTE_H

#include "base/base.h"

#include <jansson.h>

typedef struct rmt_endpoint {
    char name[64];
    char base_url[1024];     /* up to and including /v1 */
    char model[256];
    char api_key_env[128];   /* or "" */
    char api_key_file[1024]; /* or "" */
    bool api_key_keyring;    /* the key is in the desktop keyring (rmt_keyring_store) */
    int timeout_s;           /* without a byte before giving up (default 60) */
} rmt_endpoint;

enum { RMT_MAX = 32 };

/* Is name usable as an endpoint's name (letters, digits, - and _)? */
bool rmt_name_ok(const char *name);
/* Every endpoint in the settings file, at most cap; the count or CN_E*. */
int rmt_list(rmt_endpoint *out, int cap, cn_err *err);
/* The endpoint called name: CN_ENOTFOUND (saying how to add one) if none. */
int rmt_get(const char *name, rmt_endpoint *out, cn_err *err);
/* Write e into the settings file (replacing an endpoint of that name), or
** remove name's lines; the file is rewritten atomically, mode 0600. */
int rmt_save(const rmt_endpoint *e, cn_err *err);
int rmt_remove(const char *name, cn_err *err);
/* The API key e names (from its environment variable, file or the desktop
** keyring) into out; "" when e names none. A key named but missing is an
** error saying which. */
int rmt_key(const rmt_endpoint *e, char *out, size_t cap, cn_err *err);

/* Keep key in the desktop keyring (Secret Service) for remote name, or drop it. */
int rmt_keyring_store(const char *name, const char *key, cn_err *err);
void rmt_keyring_forget(const char *name);

/* The request body: a chat of system + user for e's model, streamed,
** with at most max_tokens. malloc'd JSON; *len its bytes. */
char *rmt_body(const rmt_endpoint *e, const char *system, const char *user, int max_tokens,
               size_t *len);

typedef struct rmt_result {
    long status;             /* the last HTTP status, 0 if no answer */
    size_t bytes_sent;       /* the request body, per attempt that reached the server */
    size_t bytes_received;   /* the response body */
    int attempts;
    char finish[32];         /* finish_reason of the last choice, or "" */
} rmt_result;

/* Send body to e's chat completions and stream the answer's text to fn (a
** non-zero return stops it: CN_ECANCELED). fn is also called with text NULL
** and n 0 while nothing comes and while waiting to retry: the same return
** asks whether the answer is still wanted, so that stopping is prompt. Retries (3 at most, backing off,
** Retry-After honoured up to 30 s) on a refused connection, 429 and 5xx --
** only before any text came. Errors are one line naming the endpoint and
** the cause: DNS, TLS, timeout, 401, 429, a cut or malformed stream, a
** response over 16 MiB. */
int rmt_chat(const rmt_endpoint *e, const char *body, size_t len,
             int (*fn)(void *ctx, const char *text, size_t n), void *ctx, rmt_result *res,
             cn_err *err);

/* Does e answer? GET its /models (10 s at most): *status the HTTP status;
** an error for DNS, TLS, a refused connection. Sends no question. */
int rmt_ping(const rmt_endpoint *e, long *status, cn_err *err);

/* ---- redaction (redact.c) ----------------------------------------------
** `redact = REGEX` lines in the settings file: matches are replaced by
** "[redacted]" in all that is sent (and shown in the preview). A pattern
** that does not compile is an error: nothing is sent until it is fixed. */
typedef struct rmt_redactor rmt_redactor;
int rmt_redactor_load(rmt_redactor **out, cn_err *err);
void rmt_redactor_free(rmt_redactor *r);
int rmt_redactor_count(const rmt_redactor *r); /* patterns */
/* in with every match replaced (malloc'd; NULL when out of memory or a
** match failed: send nothing); *count gets the replacements. */
char *rmt_redact(const rmt_redactor *r, const char *in, int *count);

/* ---- the audit log: home/remote-audit.jsonl ---------------------------- */

/* Append one record (the reference is taken): a line of JSON, with "time"
** added. Mode 0600; each line written whole. */
int rmt_audit(const char *home, json_t *record, cn_err *err);
/* The record of one call to e (passages: [{doc, page, bytes}], the
** reference taken; error NULL when it answered; via: "cli" or "serve"),
** appended as rmt_audit does. */
int rmt_audit_call(const char *home, const rmt_endpoint *e, const char *via, json_t *passages,
                   const rmt_result *res, const char *error, cn_err *err);
/* fn for each record, oldest first. */
int rmt_audit_read(const char *home, void (*fn)(void *ctx, json_t *record), void *ctx,
                   cn_err *err);

#endif
