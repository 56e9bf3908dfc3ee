/*
** ollama.c: the part of Ollama's API its clients (Open WebUI, the ollama
** libraries, editor plugins) use. Chat and generate stream one JSON object
** per line by default, as Ollama does ("stream": false for one object);
** model names answer with or without ":latest".
*/
#include "server/srv_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const gguf_file *worker_gguf(const srv_worker *w)
{
    return w->kind == JOB_GENERATE ? eng_model_gguf(w->m) : eng_encoder_gguf(w->enc);
}

static void iso_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Ollama's "details" of a model: format, family, size, quantization. */
static json_t *details(const srv_worker *w)
{
    const gguf_file *g = worker_gguf(w);
    int64_t n_params = 0, by_type[64] = {0};
    for (int64_t i = 0; i < g->n_tensors; i++) {
        n_params += g->tensors[i].n_elem;
        if (g->tensors[i].type < 64)
            by_type[g->tensors[i].type] += g->tensors[i].n_elem;
    }
    int best = 0;
    for (int t = 1; t < 64; t++)
        if (by_type[t] > by_type[best])
            best = t;
    const char *q = gguf_ttype_name((uint32_t)best);
    char size[32];
    if (n_params >= 1000000000)
        snprintf(size, sizeof size, "%.1fB", n_params / 1e9);
    else if (n_params >= 1000000)
        snprintf(size, sizeof size, "%.1fM", n_params / 1e6);
    else
        snprintf(size, sizeof size, "%.0fK", n_params / 1e3);
    gguf_str arch = {0};
    gguf_get_str(g, "general.architecture", &arch, NULL);
    json_t *d = json_object(), *fams = json_array();
    json_t *fam = json_stringn(arch.ptr ? arch.ptr : "", arch.ptr ? (size_t)arch.len : 0);
    json_array_append_new(fams, json_copy(fam));
    json_object_set_new(d, "parent_model", json_string(""));
    json_object_set_new(d, "format", json_string("gguf"));
    json_object_set_new(d, "family", fam);
    json_object_set_new(d, "families", fams);
    json_object_set_new(d, "parameter_size", json_string(size));
    json_object_set_new(d, "quantization_level", json_string(q ? q : "unknown"));
    return d;
}

/* One model as /api/tags and /api/ps list it. The digest identifies the file
** (path, size, modification time): hashing gigabytes per listing would be
** too slow, and the model manager will record real checksums. */
static json_t *tag(const srv_worker *w, bool running)
{
    struct stat st = {0};
    stat(w->path, &st);
    char when[64], name[160], id[512];
    iso_time(st.st_mtime, when, sizeof when);
    snprintf(name, sizeof name, "%s:latest", w->name);
    snprintf(id, sizeof id, "%s:%lld:%lld", w->path, (long long)st.st_size,
             (long long)st.st_mtime);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)id, strlen(id));
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "model", json_string(name));
    if (!running)
        json_object_set_new(o, "modified_at", json_string(when));
    json_object_set_new(o, "size", json_integer((json_int_t)st.st_size));
    json_object_set_new(o, "digest", json_string(hex));
    json_object_set_new(o, "details", details(w));
    if (running) {
        json_object_set_new(o, "expires_at", json_string("2999-01-01T00:00:00Z"));
        json_object_set_new(o, "size_vram", json_integer(0));
    }
    return o;
}

static int list(srv_req *r, bool running)
{
    json_t *o = json_object(), *arr = json_array();
    if (r->s->chat.kind)
        json_array_append_new(arr, tag(&r->s->chat, running));
    if (r->s->embed.kind)
        json_array_append_new(arr, tag(&r->s->embed, running));
    json_object_set_new(o, "models", arr);
    return srv_reply_json(r, 200, o);
}

int srv_ollama_tags(srv_req *r) { return list(r, false); }
int srv_ollama_ps(srv_req *r) { return list(r, true); }

int srv_ollama_version(srv_req *r)
{
    json_t *o = json_object();
    /* the Ollama API level this server follows; Cairn's own version beside it */
    json_object_set_new(o, "version", json_string("0.6.0"));
    json_object_set_new(o, "cairn", json_string(SRV_VERSION));
    return srv_reply_json(r, 200, o);
}

int srv_ollama_show(srv_req *r)
{
    json_t *body;
    srv_error e;
    if (srv_parse_body(r->body.data, r->body.len, &r->s->o.lim, &body, &e))
        return srv_reply_error(r, &e);
    json_t *m = json_object_get(body, "model");
    if (!m)
        m = json_object_get(body, "name");
    if (!json_is_string(m)) {
        json_decref(body);
        return srv_reply_errorf(r, 400, "model", "model: expected a string");
    }
    srv_worker *w = NULL;
    bool library;
    int rc = srv_pick_model(r->s, json_string_value(m), false, &w, &library, &e);
    if (rc && e.status == 400) /* an embedding model: show it too */
        rc = srv_pick_model(r->s, json_string_value(m), true, &w, &library, &e);
    json_decref(body);
    if (rc)
        return srv_reply_error(r, &e);
    if (!w)
        return srv_reply_errorf(r, 404, "model", "'%s' is a virtual model with no file (it "
                                "answers from the library)", SRV_LIBRARY_MODEL);
    const gguf_file *g = worker_gguf(w);
    gguf_str tmpl = {0}, arch = {0};
    gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL);
    gguf_get_str(g, "general.architecture", &arch, NULL);
    json_t *o = json_object(), *info = json_object(), *caps = json_array();
    json_object_set_new(o, "modelfile", json_string(""));
    json_object_set_new(o, "parameters", json_string(""));
    json_object_set_new(o, "template", tmpl.ptr ? json_stringn(tmpl.ptr, (size_t)tmpl.len)
                                                : json_string(""));
    json_object_set_new(o, "details", details(w));
    char key[128];
    json_object_set_new(info, "general.architecture",
                        json_stringn(arch.ptr ? arch.ptr : "", arch.ptr ? (size_t)arch.len : 0));
    snprintf(key, sizeof key, "%.*s.context_length", arch.ptr ? (int)arch.len : 0,
             arch.ptr ? arch.ptr : "");
    json_object_set_new(info, key, json_integer(w->n_ctx));
    json_object_set_new(o, "model_info", info);
    json_array_append_new(caps, json_string(w->kind == JOB_GENERATE ? "completion" : "embedding"));
    json_object_set_new(o, "capabilities", caps);
    struct stat st = {0};
    char when[64];
    stat(w->path, &st);
    iso_time(st.st_mtime, when, sizeof when);
    json_object_set_new(o, "modified_at", json_string(when));
    return srv_reply_json(r, 200, o);
}

int srv_ollama_chat(srv_req *r) { return srv_generate_route(r, DIALECT_OLLAMA_CHAT); }
int srv_ollama_generate(srv_req *r) { return srv_generate_route(r, DIALECT_OLLAMA_GENERATE); }

int srv_ollama_embed(srv_req *r)
{
    srv_embed_req req;
    float *vecs;
    bool *cut;
    int tokens, ret;
    srv_worker *w;
    double t0 = cn_now();
    if (srv_embed_request(r, SRV_API_OLLAMA, &req, &vecs, &cut, &tokens, &w, &ret))
        return ret;
    int dim = w->dim;
    bool any_cut = false;
    for (int i = 0; i < req.n_inputs; i++)
        any_cut |= cut[i];
    if (any_cut && !req.ollama_truncate) {
        ret = srv_reply_errorf(r, 400, "input", "input length exceeds the model's context of %d "
                               "tokens (truncate is false)", w->n_ctx);
    } else {
        json_t *o = json_object(), *arr = json_array();
        char name[160];
        snprintf(name, sizeof name, "%s:latest", w->name);
        json_object_set_new(o, "model", json_string(name));
        bool legacy = !strcmp(r->path, "/api/embeddings"); /* {"embedding": [...]}, one input */
        for (int i = 0; i < req.n_inputs && !(legacy && i > 0); i++) {
            json_t *v = json_array();
            for (int d = 0; d < dim; d++)
                json_array_append_new(v, json_real(vecs[(size_t)i * dim + d]));
            json_array_append_new(arr, v);
        }
        if (legacy) {
            json_object_set(o, "embedding", json_array_get(arr, 0));
            json_decref(arr);
        } else {
            json_object_set_new(o, "embeddings", arr);
        }
        json_object_set_new(o, "total_duration", json_integer((json_int_t)((cn_now() - t0) * 1e9)));
        json_object_set_new(o, "load_duration", json_integer(0));
        json_object_set_new(o, "prompt_eval_count", json_integer(tokens));
        r->tokens = tokens;
        ret = srv_reply_json(r, 200, o);
    }
    free(vecs);
    free(cut);
    srv_embed_req_free(&req);
    return ret;
}
