/*
** modelapi.c: the model manager's endpoints (list, pull with progress, use,
** remove): thin faces over src/models.
*/
#include "server/srv_int.h"

#include <stdio.h>
#include <string.h>

/* ---- the model manager (src/models) ----------------------------------------------- */

static const char *catalog_key(char *buf, size_t cap)
{
    return cn_config_get("catalog_key", buf, cap) && *buf ? buf : NULL;
}

static bool loaded_here(srv *s, const char *path)
{
    return (s->chat.kind && !strcmp(s->chat.path, path)) ||
           (s->embed.kind && !strcmp(s->embed.path, path));
}

int srv_models_list(srv_req *r)
{
    srv *s = r->s;
    cn_err err = {0};
    mdl_installed *ins = NULL;
    int n = 0;
    if (mdl_list(s->home, &ins, &n, &err))
        return srv_reply_errorf(r, 500, NULL, "%s", err.msg);
    char key[256];
    mdl_catalog *c = NULL;
    cn_err cerr = {0};
    mdl_catalog_load(s->home, catalog_key(key, sizeof key), &c, &cerr);
    mdl_hw hw;
    mdl_hw_detect(s->home, &hw);
    json_t *o = json_object(), *inst = json_array(), *avail = json_array(), *parts = json_array();
    for (int i = 0; i < n; i++) {
        json_t *m = json_pack("{s:s,s:s,s:s,s:I,s:b,s:b,s:b,s:b}", "name", ins[i].name, "role",
                              ins[i].role, "arch", ins[i].arch, "size", (json_int_t)ins[i].size,
                              "verified", ins[i].verified, "active", ins[i].active,
                              "rollback", ins[i].has_previous, "loaded",
                              loaded_here(s, ins[i].path));
        json_array_append_new(inst, m);
    }
    for (int i = 0; c && i < c->n; i++) {
        json_t *e = mdl_entry_json(&c->models[i], &hw);
        bool have = false;
        for (int k = 0; k < n; k++)
            have |= !strcmp(ins[k].name, c->models[i].name);
        json_object_set_new(e, "installed", json_boolean(have));
        json_array_append_new(avail, e);
    }
    mdl_partial part[16];
    int np = mdl_partials(s->home, part, 16);
    for (int i = 0; i < np; i++)
        json_array_append_new(parts, json_pack("{s:s,s:I,s:I}", "name", part[i].name, "done",
                                               (json_int_t)part[i].done, "size",
                                               (json_int_t)part[i].size));
    json_object_set_new(o, "installed", inst);
    json_object_set_new(o, "available", avail);
    json_object_set_new(o, "partial", parts);
    json_object_set_new(o, "catalog", c ? json_string(c->source) : json_null());
    if (!c)
        json_object_set_new(o, "catalog_error", json_string(cerr.msg));
    json_object_set_new(o, "machine",
                        json_pack("{s:I,s:I,s:I,s:i,s:s}", "ram_total", (json_int_t)hw.ram_total,
                                  "ram_avail", (json_int_t)hw.ram_avail, "disk_free",
                                  (json_int_t)hw.disk_free, "cores", hw.cores, "simd",
                                  hw.simd ? hw.simd : "none"));
    for (int k = 0; c && k < 2; k++) {
        const char *role = k ? "embed" : "chat";
        char why[256] = "";
        const mdl_entry *e = mdl_recommend(c, &hw, role, why, sizeof why);
        json_t *rec = json_object_get(o, "recommended");
        if (!rec)
            json_object_set_new(o, "recommended", rec = json_object());
        json_object_set_new(rec, role, e ? json_pack("{s:s,s:s}", "name", e->name, "why", why)
                                         : json_null());
    }
    free(ins);
    mdl_catalog_free(c);
    return srv_reply_json(r, 200, o);
}

/* The "name" field of a JSON body, or NULL after replying. */
static const char *body_name(srv_req *r, json_t **body, int *ret)
{
    srv_error e;
    if (srv_parse_body(r->body.data, r->body.len, &r->s->o.lim, body, &e)) {
        *ret = srv_reply_error(r, &e);
        return NULL;
    }
    json_t *n = json_object_get(*body, "name");
    if (!json_is_string(n) || !*json_string_value(n) || json_string_length(n) > 100) {
        json_decref(*body);
        *ret = srv_reply_errorf(r, 400, "name", "name: expected a model name");
        return NULL;
    }
    return json_string_value(n);
}

static void on_pull(void *ctx, const mdl_progress *p)
{
    srv_bg *g = ctx;
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:f,s:f,s:i}", "event", "progress", "model",
                          p->name ? p->name : g->name, "phase", p->phase, "done",
                          (json_int_t)p->done, "total", (json_int_t)p->total, "bytes_per_s",
                          p->bytes_per_s, "eta_s", p->eta_s, "parts", p->parts);
    if (p->note)
        json_object_set_new(o, "note", json_string(p->note));
    srv_bg_line(g, o);
}

static int model_changed(srv *s, const mdl_installed *m, bool *changed, char *note, size_t cap,
                         cn_err *err);

static void *pull_main(void *arg)
{
    srv_bg *g = arg;
    srv *s = g->s;
    cn_err err = {0};
    mdl_dl_opts o = {.fn = on_pull, .ctx = g, .name = g->name, .cancel = &g->cancel};
    int rc = mdl_pull(s->home, &g->entry, &o, &err);
    json_t *fin = json_pack("{s:s,s:s}", "event", rc ? "error" : "done", "model", g->name);
    if (rc)
        json_object_set_new(fin, "message", json_string(err.msg));
    mdl_installed m;
    if (!rc && mdl_get(s->home, g->name, &m, NULL) == CN_OK) {
        json_object_set_new(fin, "size", json_integer(m.size));
        json_object_set_new(fin, "active", json_boolean(m.active));
        /* the first model of its role, or a new version of the running one:
        ** in use at once */
        char note[600];
        bool changed = false;
        cn_err lerr = {0};
        pthread_mutex_lock(&s->change_mu);
        if (model_changed(s, &m, &changed, note, sizeof note, &lerr))
            json_object_set_new(fin, "load_error", json_string(lerr.msg));
        json_object_set_new(fin, "loaded", json_boolean(loaded_here(s, m.path)));
        pthread_mutex_unlock(&s->change_mu);
    }
    atomic_store(&s->pulling, 0);
    srv_bg_finish(g, fin);
    return NULL;
}

int srv_models_pull(srv_req *r)
{
    srv *s = r->s;
    json_t *body;
    int ret;
    const char *name = body_name(r, &body, &ret);
    if (!name)
        return ret;
    char key[256];
    cn_err err = {0};
    srv_bg *g = srv_bg_new(s);
    if (!g) {
        json_decref(body);
        return srv_reply_errorf(r, 500, NULL, "out of memory");
    }
    snprintf(g->name, sizeof g->name, "%s", name);
    json_decref(body);
    if (mdl_catalog_load(s->home, catalog_key(key, sizeof key), &g->cat, &err)) {
        g->refs = 1;
        srv_bg_unref(g);
        return srv_reply_errorf(r, 500, NULL, "%s", err.msg);
    }
    const mdl_entry *e = mdl_catalog_find(g->cat, g->name);
    if (!e) {
        ret = srv_reply_errorf(r, 404, "name", "no model '%s' in the catalog", g->name);
        g->refs = 1;
        srv_bg_unref(g);
        return ret;
    }
    g->entry = *e;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&s->pulling, &idle, 1)) {
        g->refs = 1;
        srv_bg_unref(g);
        return srv_reply_errorf(r, 409, "name", "another model is downloading; one at a time");
    }
    return srv_bg_start(r, g, pull_main);
}

/* Index the library with the embedding model that just arrived (first
** run: search becomes hybrid as the vectors come). */
static void *index_main(void *arg)
{
    srv *s = arg;
    srv_gate_enter(&s->model_gate);
    srv_error e;
    lib *l = srv_lib_acquire_writer(s, -1, &e);
    if (l) {
        cn_err err = {0};
        double t0 = cn_now();
        int n = lib_index(l, s->o.embed_model, s->o.threads, NULL, NULL, &err);
        srv_lib_release(s, l, n > 0);
        pthread_mutex_lock(&s->log_mu);
        if (n < 0)
            fprintf(stderr, "cairn serve: embedding the library: %s\n", err.msg);
        else
            fprintf(stderr, "cairn serve: %d passages embedded in %.1f s: hybrid search is on\n",
                    n, cn_now() - t0);
        pthread_mutex_unlock(&s->log_mu);
    }
    srv_gate_leave(&s->model_gate);
    atomic_fetch_sub(&s->n_background, 1);
    return NULL;
}

/*
** m was installed, switched to or made active while the server runs. A new
** version of the language model it runs is switched to in place; a model of
** a role it has none of is loaded now (first run: the level of service rises
** as the downloads land), an embedding model then indexes the library. Both
** behind the closed gate: requests using models finish first, new ones
** wait, none is refused. Anything else waits for the next start (*note).
*/
static int model_changed(srv *s, const mdl_installed *m, bool *changed, char *note, size_t cap,
                         cn_err *err)
{
    *changed = false;
    note[0] = '\0';
    bool chat = !strcmp(m->role, "chat"), embed = !strcmp(m->role, "embed");
    bool reload = chat && s->chat.kind && !strcmp(s->chat_name, m->name) &&
                  strcmp(s->chat_path, m->path) != 0;
    bool load = m->active && ((chat && !s->chat.kind) || (embed && !s->embed.kind));
    if (!reload && !load)
        return CN_OK;
    double t0 = cn_now();
    int running = srv_gate_close(&s->model_gate);
    double t1 = cn_now();
    int rc;
    if (reload) {
        rc = srv_worker_reload(&s->chat, m->path, &s->eo, note, cap, err);
        if (!rc)
            snprintf(s->chat_path, sizeof s->chat_path, "%s", m->path);
    } else if (chat) {
        snprintf(s->chat_name, sizeof s->chat_name, "%s", m->name);
        snprintf(s->chat_path, sizeof s->chat_path, "%s", m->path);
        rc = srv_worker_open(&s->chat, JOB_GENERATE, s->chat_path, &s->eo, s->o.lim.queue, err);
        s->chat.name = s->chat_name;
        s->chat.path = s->chat_path;
    } else {
        srv_lib_acquire_all(s); /* every handle is given the embedder */
        eng_opts ee = {.n_threads = s->o.threads};
        snprintf(s->embed_name, sizeof s->embed_name, "%s", m->name);
        snprintf(s->embed_path, sizeof s->embed_path, "%s", m->path);
        rc = srv_worker_open(&s->embed, JOB_EMBED, s->embed_path, &ee, s->o.lim.queue, err);
        s->embed.name = s->embed_name;
        if (!rc) {
            s->o.embed_model = s->embed_path;
            rc = srv_lib_share_embedder(s, err);
            if (rc) {
                srv_worker_close(&s->embed);
                s->embed.kind = 0;
                s->o.embed_model = NULL;
            }
        }
        srv_lib_release_all(s);
    }
    srv_gate_open(&s->model_gate);
    *changed = rc == CN_OK;
    pthread_mutex_lock(&s->log_mu);
    if (rc)
        fprintf(stderr, "cairn serve: %s did not load (%s)%s\n", m->name, err->msg,
                reload ? "; the previous version runs on" : "");
    else
        fprintf(stderr, "cairn serve: %s: %s %s (%.2f s waiting for the %d requests using "
                        "models to finish, %.2f s loading)%s%s\n", m->name,
                reload ? "switched to" : "loaded", m->path, t1 - t0, running, cn_now() - t1,
                note[0] ? "; " : "", note);
    pthread_mutex_unlock(&s->log_mu);
    if (!rc && load && embed) {
        pthread_t th;
        atomic_fetch_add(&s->n_background, 1);
        if (pthread_create(&th, NULL, index_main, s) != 0)
            atomic_fetch_sub(&s->n_background, 1);
        else
            pthread_detach(th);
    }
    return rc;
}

int srv_models_use(srv_req *r)
{
    srv *s = r->s;
    json_t *body;
    int ret;
    const char *name = body_name(r, &body, &ret);
    if (!name)
        return ret;
    cn_err err = {0};
    mdl_installed m;
    char base[128]; /* NAME@VERSION switches NAME to an offered version too */
    snprintf(base, sizeof base, "%.*s", (int)strcspn(name, "@"), name);
    pthread_mutex_lock(&s->change_mu);
    int rc = mdl_get(s->home, base, &m, &err);
    if (!rc)
        rc = mdl_use(s->home, name, &err);
    if (!rc)
        rc = mdl_get(s->home, base, &m, &err); /* the version now current */
    char note[600] = "";
    bool changed = false;
    if (!rc && (rc = model_changed(s, &m, &changed, note, sizeof note, &err)) &&
        strchr(name, '@')) {
        cn_err ignored = {0}; /* the manifest back to what runs */
        mdl_rollback(s->home, m.name, &ignored);
    }
    bool here = !rc && loaded_here(s, m.path);
    pthread_mutex_unlock(&s->change_mu);
    if (rc) {
        ret = srv_reply_errorf(r, rc == CN_ENOTFOUND ? 404 : 500, "name", "%s", err.msg);
    } else {
        json_t *o = json_pack("{s:s,s:s,s:b,s:b,s:b}", "name", m.name, "role", m.role, "active", 1,
                              "loaded", here, "switched", changed);
        if (!here)
            json_object_set_new(o, "note", json_string("loaded when cairn serve starts again: "
                                                       "restart it to use this one"));
        else if (note[0])
            json_object_set_new(o, "note", json_string(note));
        ret = srv_reply_json(r, 200, o);
    }
    json_decref(body);
    return ret;
}

int srv_models_remove(srv_req *r)
{
    srv *s = r->s;
    const char *name = r->path + strlen("/api/models/");
    cn_err err = {0};
    mdl_installed m;
    int rc = mdl_get(s->home, name, &m, &err);
    if (rc == CN_OK && loaded_here(s, m.path))
        return srv_reply_errorf(r, 409, "name", "%s is loaded by this server; stop it first", name);
    rc = mdl_remove(s->home, name, &err); /* also a partial download only */
    if (rc)
        return srv_reply_errorf(r,
                                rc == CN_ENOTFOUND ? 404
                                : rc == CN_EINVAL  ? 400
                                : rc == CN_ELIMIT  ? 409 /* being downloaded */
                                                   : 500,
                                "name", "%s", err.msg);
    json_t *o = json_object();
    json_object_set_new(o, "removed", json_string(name));
    return srv_reply_json(r, 200, o);
}
