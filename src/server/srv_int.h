/* srv_int.h: internals shared by the files of src/server/. */
#ifndef CN_SRV_INT_H
#define CN_SRV_INT_H

#include "server/server.h"
#include "engine/engine.h"
#include "library/library.h"
#include "rag/rag.h"
#include "models/models.h"
#include "remote/remote.h"

#include <microhttpd.h>
#include <pthread.h>
#include <limits.h>
#include <stdatomic.h>

/* The virtual model that answers from the library. */
#define SRV_LIBRARY_MODEL "cairn-library"
#define SRV_VERSION "0.1.0"
/* Library handles kept open for concurrent searches. */
#define SRV_LIB_POOL 4

typedef struct srv srv;
typedef struct srv_req srv_req;

/* ---- jobs and workers (worker.c) ----------------------------------------
** A job is owned by the connection that made it. The worker touches it from
** the moment it takes it off the queue until it sets done; the connection
** never frees a job a worker might still touch (srv_job_cancel waits). */

enum { JOB_GENERATE = 1, JOB_EMBED = 2, JOB_RERANK = 3 };

typedef struct srv_job {
    int kind;
    /* JOB_GENERATE */
    int32_t *ids;              /* prompt, malloc'd, owned by the job */
    int n_ids;
    eng_gen_opts go;
    const char *stop[8];
    rag_cite_filter cite;      /* grounded answers: citations checked as they stream */
    bool use_cite;
    bool used[64];
    /* JOB_EMBED */
    const char *const *texts;
    const size_t *lens;
    int n_texts;
    float *vecs;               /* n_texts x dim, malloc'd by the submitter */
    bool *truncated;
    /* JOB_RERANK: texts are the documents; vecs gets n_texts scores */
    const char *query;
    size_t query_len;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    cn_buf text;               /* text produced so far (checked for citations) */
    bool queued, running, done;
    bool overflow;             /* text passed srv_answer_limit: the job fails */
    atomic_bool cancel;
    int rc;
    cn_err err;
    eng_gen_stats st;
    double t_queued, t_start;
} srv_job;

/* Conversations whose KV cache a language model's worker keeps besides the
** one its cache holds, and the bytes they may take in all. */
#define SRV_KV_KEEP 4
#define SRV_KV_BYTES ((size_t)512 << 20)

typedef struct srv_worker {
    const char *name;          /* model name as the API shows it */
    const char *path;
    int kind;                  /* JOB_GENERATE or JOB_EMBED */
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_job **q;               /* ring buffer of cap waiting jobs */
    int cap, head, len;
    bool stop;
    /* the model it owns */
    eng_model *m;
    eng_model *draft;          /* speculative decoding's draft model, or NULL */
    char draft_path[PATH_MAX];
    /* conversations the cache held before, most recent first (worker.c) */
    eng_kv_snap *kv[SRV_KV_KEEP];
    int n_kv;
    eng_encoder *enc;
    tok_vocab *v;
    const char *family;        /* chat template family */
    int n_ctx, dim;
} srv_worker;

/* The most text one generation may produce (16 MiB); past it the job stops
** with an error. A variable so that a test can lower it; nothing in the
** program changes it. */
extern size_t srv_answer_limit;

int srv_worker_open(srv_worker *w, int kind, const char *path, const eng_opts *eo, int queue,
                    cn_err *err);
/* Give a language model's worker (not started yet: before its first job)
** the draft model at path, checked against its vocabulary. */
int srv_worker_draft(srv_worker *w, const char *path, cn_err *err);
void srv_worker_close(srv_worker *w);
/* Run the language model at path instead (another version of it), the
** worker idle (its gate closed): the new one is opened first, so on failure
** the old one runs on. The draft model follows if its vocabulary still
** matches, else it is dropped (said in *note). */
int srv_worker_reload(srv_worker *w, const char *path, const eng_opts *eo, char *note,
                      size_t note_cap, cn_err *err);
void srv_job_init(srv_job *j, int kind);
void srv_job_free(srv_job *j);
/* Queue j; CN_ELIMIT when the queue is full. */
int srv_job_submit(srv_worker *w, srv_job *j);
/* Ask j to stop (dequeued if waiting, stopped at the next token if running)
** and wait until the worker has let go of it. */
void srv_job_cancel(srv_worker *w, srv_job *j);
/* Wait until j is done; while waiting, poll r's socket and cancel j if the
** client went away. Returns true if done, false if cancelled. */
bool srv_job_wait(srv_worker *w, srv_job *j, srv_req *r);
/* pthread_cond_wait for at most ms milliseconds. */
void srv_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms);
/* Seconds a client should wait before retrying, for Retry-After. */
int srv_worker_retry_after(srv_worker *w);

/* ---- the server ---------------------------------------------------------- */

/* The models' gate: requests that use a model pass through it (any number
** at once); switching the language model (`models use NAME@VERSION`) or
** loading one that arrived while the server runs (first run) closes it,
** which waits for those inside to finish and holds new ones at the door --
** they wait, none is refused -- until the change is made (worker.c). */
typedef struct srv_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside;
    int closing; /* switches waiting to close it */
    bool closed;
} srv_gate;
void srv_gate_init(srv_gate *g);
void srv_gate_destroy(srv_gate *g);
void srv_gate_enter(srv_gate *g);
/* One more for a caller inside already (a background thread it starts):
** never waits, so a closing gate cannot deadlock against it. */
void srv_gate_enter_more(srv_gate *g);
void srv_gate_leave(srv_gate *g);
int srv_gate_close(srv_gate *g); /* returns how many were inside when it began */
void srv_gate_open(srv_gate *g);

struct srv {
    srv_opts o;
    char home[PATH_MAX];       /* the data directory: library and models */
    struct MHD_Daemon *d;
    int port;
    char origin_a[96], origin_b[96]; /* http://127.0.0.1:PORT, http://localhost:PORT */
    bool loopback;
    srv_worker chat, embed, rerank; /* kind 0 when no such model */
    srv_gate model_gate;       /* around every use of a model (see srv_gate) */
    pthread_mutex_t change_mu; /* one model change (use, a pull landing) at a time */
    char chat_path[PATH_MAX];  /* the file chat runs: changes at a switch */
    eng_opts eo;               /* how chat was opened, for a switch */
    char embed_path[PATH_MAX]; /* the file embed runs (o.embed_model points here) */
    char chat_name[128], embed_name[128], rerank_name[128];
    /* library handles: SRV_LIB_POOL readers side by side, one writer (SQLite
    ** has one writer at a time; in WAL mode readers never wait for it) */
    pthread_mutex_t lib_mu;
    pthread_cond_t lib_cv;
    lib *libs[SRV_LIB_POOL];
    bool lib_busy[SRV_LIB_POOL];
    lib *writer;
    bool writer_busy;
    /* the embedding model every handle uses: the embed worker's */
    lib_embedder emb;
    bool has_emb;
    atomic_int n_background;   /* ingest, pull and OCR threads still running */
    atomic_bool stopping;      /* shutting down: background OCR stops after its pages */
    atomic_int pulling;        /* a model download is running */
    pthread_mutex_t log_mu;
    /* the watched folders' thread reports here (watchapi.c) */
    pthread_mutex_t watch_mu;
    json_t *watch_status;
    /* model updates in the background (updates.c) */
    _Atomic int64_t update_interval; /* seconds between checks; 0: off */
    volatile int update_cancel; /* set at shutdown: a download stops, keeping its data */
};

/* One request: created at its first callback, freed when MHD says it is done. */
typedef int (*srv_handler)(srv_req *r);

typedef struct srv_route {
    const char *method, *path;
    srv_handler fn;
    int flags;
    const char *help;
} srv_route;

enum { ROUTE_PREFIX = 1, ROUTE_UPLOAD = 2, ROUTE_OLLAMA = 4, ROUTE_PUBLIC = 8,
       ROUTE_MODEL = 16 /* may use a model: through model_gate */ };

typedef struct srv_upload srv_upload;

struct srv_req {
    srv *s;
    struct MHD_Connection *conn;
    const srv_route *route;
    char method[16];
    char path[512];
    const char *origin_ok;     /* the Origin to echo in CORS headers, or NULL */
    double t0;
    int status;
    int tokens;
    cn_buf body;
    size_t received;           /* body bytes so far, whatever the framing */
    size_t limit;              /* the most this route's body may have */
    bool too_large;
    srv_error early;           /* an error found while the body arrived */
    bool gated;                /* inside model_gate until the request completes */
    bool has_early;
    srv_upload *up;
    cn_arena arena;
    /* a streamed response */
    srv_job *job;
    srv_worker *worker;
    void *stream;
};

/* ---- responses (http.c) -------------------------------------------------- */

/* Send JSON (the reference is taken). Returns an MHD_Result. */
int srv_reply_json(srv_req *r, int status, json_t *j);
/* Error object: OpenAI style {"error": {message, type, param, code}}, or
** Ollama style {"error": "message"} on Ollama routes. */
int srv_reply_error(srv_req *r, const srv_error *e);
int srv_reply_errorf(srv_req *r, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 429 with Retry-After. */
int srv_reply_busy(srv_req *r, srv_worker *w);
/* A streamed response: MHD pulls from fn until it returns
** MHD_CONTENT_READER_END_OF_STREAM; done(cls) runs when it is finished or
** the client went away. */
int srv_reply_stream(srv_req *r, const char *content_type, MHD_ContentReaderCallback fn,
                     void *cls, MHD_ContentReaderFreeCallback done);
/* Has the client closed its connection? */
bool srv_client_gone(srv_req *r);

/* Log line fields. */
void srv_req_tokens(srv_req *r, int n);

/* ---- model names and generation (openai.c) ------------------------------ */

/* Which worker serves model name (NULL = the chat model); *library set for
** "cairn-library". Returns 0 or -1 with e filled (404 unknown model). */
int srv_pick_model(srv *s, const char *name, bool embedding, srv_worker **w, bool *library,
                   srv_error *e);
/* Tokenize a chat (in the model's template) or a raw prompt for w, and fill
** job's generation options from req. Returns 0 or -1 with e filled. */
int srv_prepare_chat(srv_worker *w, const srv_gen_req *req, srv_job *j, srv_error *e);
int srv_prepare_prompt(srv_worker *w, const srv_gen_req *req, const char *text, bool add_bos,
                       srv_job *j, srv_error *e);

enum { DIALECT_OPENAI_CHAT = 1, DIALECT_OPENAI_COMPLETION, DIALECT_OLLAMA_CHAT,
       DIALECT_OLLAMA_GENERATE };

/* A parsed generation request end to end: pick the model, build the prompt
** (or the grounded answer), queue it, reply streamed (SSE or NDJSON by
** dialect) or whole. Takes ownership of req. Returns an MHD_Result. */
int srv_generate(srv_req *r, srv_gen_req *req, int dialect);
/* A route's whole work for a generation endpoint: parse the body in the
** dialect's shape, then srv_generate. */
int srv_generate_route(srv_req *r, int dialect);

/* Run an embedding request on the embedding worker (*w gets it). Returns 0
** with *vecs (n x dim) and *cut (n flags), both malloc'd, and the token
** count; -1 with e filled; -2 when the queue is full; -3 when the client
** went away. */
int srv_embed_run(srv_req *r, const srv_embed_req *req, float **vecs, bool **cut, int *tokens,
                  srv_worker **w, srv_error *e);

/* The "data" array of an OpenAI embeddings reply: n vectors of dim floats,
** as float arrays or base64 (little-endian float32). NULL when memory runs
** out: the caller answers an error, never the other encoding. */
json_t *srv_embedding_data(const float *vecs, int n, int dim, bool base64);
/* The allocator of srv_embedding_data's buffer. A variable so that a test
** can make it fail; nothing in the program changes it. */
extern void *(*srv_alloc)(size_t n);

/* An embeddings endpoint's first half: parse the body (api's shape) and run
** it. Returns 0 with the results as srv_embed_run gives them, or -1 when a
** reply (or a closed connection) is already decided: *ret is the MHD result. */
int srv_embed_request(srv_req *r, int api, srv_embed_req *req, float **vecs, bool **cut,
                      int *tokens, srv_worker **w, int *ret);

/* Grounded answer from the library for question: search, then a generation
** job (chat model) or an extractive answer written straight into j->text
** (j->done set). The sources found go to *src (in r's arena), with n_src.
** Returns 0 or -1 with e filled. */
int srv_grounded(srv_req *r, const char *question, const srv_gen_req *req, srv_job *j,
                 rag_source **src, int *n_src, srv_error *e);
/* Candidates the server's reranker rescores before the best k are kept
** (as `cairn search` does). */
enum { SRV_RERANK_CANDIDATES = 30 };
/* Rescore res[0..n) against q with the server's reranker (one job on its
** worker) and reorder them best first, each score the reranker's; *mode
** becomes "keyword + rerank" or "hybrid + rerank". Returns 0, 1 if the
** client went away, or -1 with e filled (queue full: 429). */
int srv_rerank_results(srv_req *r, const char *q, lib_result *res, int n, const char **mode,
                       srv_error *e);
/* The citations array for a grounded answer. */
json_t *srv_citations_json(const rag_source *src, int n, const bool *used);
/* finish_reason of a finished job: "stop", "length" or "cancelled". */
const char *srv_finish_reason(const srv_job *j);
/* The library's best passages for question (at most 4; reranked when the
** server has a reranker), strings in r's arena; *res (may be NULL) gets the
** search results they came from. Returns 0 or -1 with e filled. */
int srv_search_sources(srv_req *r, const char *question, rag_source **src, int *n,
                       lib_search_info *info, lib_result **res, srv_error *e);

/* ---- answers from a remote (remoteapi.c) ---------------------------------- */
/* model "remote:NAME": 1 with *ep when NAME is allowed (--allow-remote) and
** configured, 0 for any other model, -1 with e filled (403, 404). */
int srv_remote_pick(srv *s, const char *model, rmt_endpoint *ep, srv_error *e);
/* The grounded question for ep: its passages (the client's "cairn_passages"
** ids, or the search's), j fed by a thread (*th, joined by the caller) that
** streams the remote's answer through j's citation check. Nothing found: j
** done with the not-found text, no thread, nothing sent. */
int srv_remote_begin(srv_req *r, const rmt_endpoint *ep, const char *question,
                     const srv_gen_req *req, srv_job *j, rag_source **src, int *n_src,
                     pthread_t *th, srv_error *e);

/* ---- library handles (libpool.c) -----------------------------------------
** Reads (list, search, status, grounded answers) take one of the pool's
** handles; writes (ingest, remove) take the writer, so a long upload never
** holds up a read. Waits end: after srv_lib_wait_ms a request gets 503 with
** Retry-After instead of hanging. */

/* Open every handle (and share the embedding worker's model with them), so
** a damaged library is reported at start. */
int srv_lib_open_all(srv *s, cn_err *err);
/* A reading handle, or NULL with e filled (503 + retry_after after waiting
** srv_lib_wait_ms). */
lib *srv_lib_acquire(srv *s, srv_error *e);
/* Every handle (readers and writer), for a change to all of them: waits
** without a deadline. */
void srv_lib_acquire_all(srv *s);
void srv_lib_release_all(srv *s);
/* Make every handle use the embedding worker (it was just loaded). */
int srv_lib_share_embedder(srv *s, cn_err *err);
/* The writing handle; wait_ms < 0 waits as long as it takes (an ingest
** thread, whose client sees its progress), else NULL with e filled (503). */
lib *srv_lib_acquire_writer(srv *s, int wait_ms, srv_error *e);
/* Give back l; wrote: the library changed (the shared vectors reload). */
void srv_lib_release(srv *s, lib *l, bool wrote);
void srv_lib_close_all(srv *s);
/* How long a request waits for a handle before 503 (10 s). A variable so
** that a test can shorten it; nothing in the program changes it. */
extern int srv_lib_wait_ms;
/* Requests waiting in w's queue now (read under its lock: the worker and
** the submitters change it). */
int srv_worker_queued(srv_worker *w);
/* w as /api/status shows it: name, role, path, size, context, queued. */
json_t *srv_worker_json(srv_worker *w);

/* ---- routes ----------------------------------------------------------- */

int srv_openai_models(srv_req *r);
int srv_openai_model(srv_req *r);
int srv_openai_chat(srv_req *r);
int srv_openai_completions(srv_req *r);
int srv_openai_embeddings(srv_req *r);
int srv_rerank(srv_req *r); /* rerank.c */
int srv_ollama_tags(srv_req *r);
int srv_ollama_chat(srv_req *r);
int srv_ollama_generate(srv_req *r);
int srv_ollama_embed(srv_req *r);
int srv_ollama_show(srv_req *r);
int srv_ollama_version(srv_req *r);
int srv_ollama_ps(srv_req *r);
int srv_lib_docs(srv_req *r);
int srv_lib_remove(srv_req *r);
int srv_lib_upload(srv_req *r);
int srv_lib_search(srv_req *r);
int srv_lib_ask(srv_req *r);
int srv_lib_passage(srv_req *r);
int srv_lib_summarize(srv_req *r); /* docsapi.c */
int srv_remote_preview(srv_req *r); /* remoteapi.c */
int srv_lib_extract(srv_req *r);
int srv_status(srv_req *r);
int srv_watch_get(srv_req *r);    /* watchapi.c */
int srv_watch_change(srv_req *r);
void srv_watch_start(srv *s);
void srv_watch_free(srv *s);
json_t *srv_watch_json(srv *s);   /* the watched folders' state, for /api/status too */
void srv_updates_start(srv *s);   /* updates.c */
json_t *srv_updates_json(srv *s); /* the last check: offers, schedule */
int srv_updates_set(srv_req *r);  /* POST /api/updates */
int srv_models_list(srv_req *r);
int srv_models_pull(srv_req *r);
int srv_models_use(srv_req *r);
int srv_models_remove(srv_req *r);

/* ---- background work streamed as NDJSON (progress.c) ---------------------
** An upload's ingest and a model's download run in a thread of their own and
** report progress as one JSON object per line to the response, which MHD
** pulls as the lines come. If the client leaves, cancel is set (a download stops,
** keeping its data; an ingest finishes anyway) and the thread frees the run. */

typedef struct srv_bg {
    srv *s;
    char *paths[32];           /* ingest: the files */
    int n;
    int not_stored;            /* ingest: uploaded files that could not be put in place */
    char name[128];            /* pull: the model */
    mdl_entry entry;           /* pull: the catalog entry (strings owned by cat) */
    mdl_catalog *cat;
    int64_t ids[32];           /* summarize, extract: the documents */
    int n_ids;
    int length;                /* summarize: LIB_SUM_* */
    bool extractive;           /* summarize: no model even if there is one */
    json_t *schema;            /* extract: the checked schema (a reference) */
    volatile int cancel;
    bool gated;                /* the thread is inside model_gate until it finishes */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cn_buf out;
    size_t off;
    bool done;
    int refs; /* the thread and the response */
} srv_bg;

/* A run for s (two references: the thread's and the response's), or NULL. */
srv_bg *srv_bg_new(srv *s);
/* Drop a reference; the last frees the run. */
void srv_bg_unref(srv_bg *g);
/* Send o (the reference is taken) as one line. */
void srv_bg_line(srv_bg *g, json_t *o);
/* The thread's last words: the final line fin, then the end of the stream. */
void srv_bg_finish(srv_bg *g, json_t *fin);
/* Start fn(g) in a thread and stream its lines as r's response. */
int srv_bg_start(srv_req *r, srv_bg *g, void *(*fn)(void *));

/* Upload plumbing: called by http.c as the body arrives. */
int srv_upload_begin(srv_req *r, srv_error *e);
int srv_upload_data(srv_req *r, const char *data, size_t n, srv_error *e);
void srv_upload_free(srv_req *r);

/* Embedded web UI files (generated from web/ at build time). */
typedef struct srv_asset {
    const char *path, *type;
    const unsigned char *data;
    size_t len;
} srv_asset;
extern const srv_asset srv_assets[];
extern const int srv_n_assets;

#endif
