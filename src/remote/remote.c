/*
** remote.c: endpoints in the settings file, the OpenAI chat-completions
** client (libcurl, server-sent events), and the audit log (remote.h).
*/
#include "remote/remote.h"
#include "models/models.h"
#include "vault/vault.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

bool rmt_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof((rmt_endpoint *)0)->name)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
            return false;
    return true;
}

/* ---- the settings file ------------------------------------------------------ */

/* The settings file's text (NULL and CN_OK when there is none). */
static int read_settings(char *path, size_t cap, char **text, cn_err *err)
{
    *text = NULL;
    if (cn_config_path(path, cap) != CN_OK)
        return cn_fail(err, CN_ENOTFOUND, "no settings file: set $CAIRN_CONFIG or $HOME");
    size_t len;
    int rc = cn_read_file(path, (size_t)1 << 20, text, &len, err);
    if (rc == CN_ENOTFOUND) /* no settings yet: no remotes */
        return CN_OK;
    return rc;
}

/* "remote.NAME.KEY = VALUE" in line: name, key and value, trimmed. */
static bool parse_line(char *line, char **name, char **key, char **value)
{
    while (isspace((unsigned char)*line))
        line++;
    if (strncmp(line, "remote.", 7))
        return false;
    char *eq = strchr(line, '=');
    if (!eq)
        return false;
    char *v = eq + 1;
    *eq = 0;
    while (eq > line && isspace((unsigned char)eq[-1]))
        *--eq = 0;
    while (isspace((unsigned char)*v))
        v++;
    size_t n = strlen(v);
    while (n && isspace((unsigned char)v[n - 1]))
        v[--n] = 0;
    char *dot = strrchr(line + 7, '.');
    if (!dot || dot == line + 7)
        return false;
    *dot = 0;
    *name = line + 7, *key = dot + 1, *value = v;
    return true;
}

static rmt_endpoint *find_or_add(rmt_endpoint *out, int *n, int cap, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(out[i].name, name))
            return &out[i];
    if (*n == cap)
        return NULL;
    rmt_endpoint *e = &out[(*n)++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->timeout_s = 60;
    return e;
}

int rmt_list(rmt_endpoint *out, int cap, cn_err *err)
{
    char path[4096], *text;
    int rc = read_settings(path, sizeof path, &text, err);
    if (rc || !text)
        return rc;
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *name, *key, *value;
        if (!parse_line(line, &name, &key, &value) || !rmt_name_ok(name))
            continue;
        rmt_endpoint *e = find_or_add(out, &n, cap, name);
        if (!e)
            break;
        if (!strcmp(key, "base_url"))
            snprintf(e->base_url, sizeof e->base_url, "%s", value);
        else if (!strcmp(key, "model"))
            snprintf(e->model, sizeof e->model, "%s", value);
        else if (!strcmp(key, "api_key_env"))
            snprintf(e->api_key_env, sizeof e->api_key_env, "%s", value);
        else if (!strcmp(key, "api_key_file"))
            snprintf(e->api_key_file, sizeof e->api_key_file, "%s", value);
        else if (!strcmp(key, "api_key_keyring"))
            e->api_key_keyring = !strcmp(value, "yes") || !strcmp(value, "true");
        else if (!strcmp(key, "timeout"))
            e->timeout_s = CN_MAX(1, CN_MIN(3600, atoi(value)));
    }
    free(text);
    return n;
}

int rmt_get(const char *name, rmt_endpoint *out, cn_err *err)
{
    rmt_endpoint all[RMT_MAX];
    int n = rmt_list(all, RMT_MAX, err);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++)
        if (!strcmp(all[i].name, name)) {
            *out = all[i];
            if (!out->base_url[0] || !out->model[0])
                return cn_fail(err, CN_EINVAL, "remote %s: the settings need both "
                                               "remote.%s.base_url and remote.%s.model",
                               name, name, name);
            return mdl_url_check(out->base_url, err);
        }
    return cn_fail(err, CN_ENOTFOUND, "no remote named %s (`cairn remote add %s --url URL "
                                      "--model M` sets one up; `cairn remote ls` lists them)",
                   name, name);
}

/* The settings without name's lines, then (e not NULL) e's. */
static int rewrite(const char *name, const rmt_endpoint *e, cn_err *err)
{
    char path[4096], *text;
    int rc = read_settings(path, sizeof path, &text, err);
    if (rc)
        return rc;
    cn_buf b;
    cn_buf_init(&b, (size_t)2 << 20);
    char prefix[96];
    snprintf(prefix, sizeof prefix, "remote.%s.", name);
    for (char *p = text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *q = p;
        while (q < p + n && isspace((unsigned char)*q))
            q++;
        if (!strncmp(q, prefix, strlen(prefix)))
            continue; /* this endpoint's old lines */
        cn_buf_append(&b, p, n);
        cn_buf_append(&b, "\n", 1);
    }
    free(text);
    if (e) {
        cn_buf_printf(&b, "remote.%s.base_url = %s\nremote.%s.model = %s\n", e->name, e->base_url,
                      e->name, e->model);
        if (e->api_key_env[0])
            cn_buf_printf(&b, "remote.%s.api_key_env = %s\n", e->name, e->api_key_env);
        if (e->api_key_file[0])
            cn_buf_printf(&b, "remote.%s.api_key_file = %s\n", e->name, e->api_key_file);
        if (e->api_key_keyring)
            cn_buf_printf(&b, "remote.%s.api_key_keyring = yes\n", e->name);
        if (e->timeout_s && e->timeout_s != 60)
            cn_buf_printf(&b, "remote.%s.timeout = %d\n", e->name, e->timeout_s);
    }
    rc = cn_config_write(b.data ? b.data : "", b.len, err);
    cn_buf_free(&b);
    return rc;
}

int rmt_save(const rmt_endpoint *e, cn_err *err)
{
    if (!rmt_name_ok(e->name))
        return cn_fail(err, CN_EINVAL, "'%s': a remote's name is letters, digits, - and _",
                       e->name);
    if (!e->model[0] || strpbrk(e->model, "\n\r") || strpbrk(e->base_url, "\n\r ") ||
        strpbrk(e->api_key_env, "\n\r =") || strpbrk(e->api_key_file, "\n\r"))
        return cn_fail(err, CN_EINVAL, "remote %s: a model name is needed, and no value may "
                                       "hold a line break", e->name);
    int rc = mdl_url_check(e->base_url, err);
    return rc ? rc : rewrite(e->name, e, err);
}

/* The keyring item of remote name: the vault's items, told apart by this
** attribute value. */
static void keyring_id(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "remote:%s", name);
}

int rmt_keyring_store(const char *name, const char *key, cn_err *err)
{
    char id[96], label[160];
    keyring_id(name, id, sizeof id);
    snprintf(label, sizeof label, "Cairn: API key of remote %s", name);
    return vault_keyring_store(id, label, key, err);
}

void rmt_keyring_forget(const char *name)
{
    char id[96];
    keyring_id(name, id, sizeof id);
    vault_keyring_clear(id);
}

int rmt_remove(const char *name, cn_err *err)
{
    rmt_endpoint e;
    int rc = rmt_get(name, &e, err);
    if (rc == CN_ENOTFOUND)
        return rc;
    if (e.api_key_keyring)
        rmt_keyring_forget(name);
    return rewrite(name, NULL, err);
}

int rmt_key(const rmt_endpoint *e, char *out, size_t cap, cn_err *err)
{
    out[0] = 0;
    if (e->api_key_env[0]) {
        const char *v = getenv(e->api_key_env);
        if (!v || !*v)
            return cn_fail(err, CN_ENOTFOUND, "remote %s: its key is read from $%s, which is "
                                              "not set", e->name, e->api_key_env);
        if (strlen(v) >= cap)
            return cn_fail(err, CN_ELIMIT, "remote %s: the key in $%s is too long", e->name,
                           e->api_key_env);
        snprintf(out, cap, "%s", v);
    } else if (e->api_key_file[0]) {
        char *t;
        size_t n;
        cn_err ferr = {0};
        int rc = cn_read_file(e->api_key_file, cap - 1, &t, &n, &ferr);
        if (rc)
            return cn_fail(err, rc, "remote %s: its key file: %s", e->name, ferr.msg);
        while (n && isspace((unsigned char)t[n - 1]))
            n--;
        memcpy(out, t, n);
        out[n] = 0;
        free(t);
    } else if (e->api_key_keyring) {
        char id[96];
        keyring_id(e->name, id, sizeof id);
        cn_err kerr = {0};
        int rc = vault_keyring_lookup(id, out, cap, &kerr);
        if (rc)
            return cn_fail(err, rc, "remote %s: its key is in the desktop keyring, which %s",
                           e->name, rc == CN_ENOTFOUND ? "holds no key for it (`cairn remote add "
                                                         "... --api-key-keyring` again)"
                                                       : "cannot be reached (no desktop session?)");
    }
    if (strpbrk(out, "\r\n"))
        return cn_fail(err, CN_EFORMAT, "remote %s: the key holds a line break", e->name);
    return CN_OK;
}

char *rmt_body(const rmt_endpoint *e, const char *system, const char *user, int max_tokens,
               size_t *len)
{
    json_t *o = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:b, s:i}", "model", e->model,
                          "messages", "role", "system", "content", system, "role", "user",
                          "content", user, "stream", 1, "max_tokens", max_tokens);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

/* ---- the client ------------------------------------------------------------------ */

/* What every request to a remote shares: TLS verified, http(s) only, no
** redirect followed (one to elsewhere would carry the question there). */
static void setup_handle(CURL *h, const char *url, struct curl_slist *hd, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cairn/0.1");
}

enum { MAX_RESPONSE = 16 << 20, MAX_EVENT = 1 << 20 };

typedef struct sse {
    const rmt_endpoint *e;
    int (*fn)(void *ctx, const char *text, size_t n);
    void *ctx;
    cn_buf pending;   /* bytes of an event not ended yet */
    cn_buf body;      /* a non-stream (error) body, kept for the message */
    size_t received;
    bool texted;      /* some text went to fn: no retry after this */
    bool done;        /* [DONE] seen */
    bool stopped;     /* fn asked to stop */
    char finish[32];
    cn_err err;       /* a malformed stream, too large */
    bool failed;
    long status;
    long retry_after; /* seconds, -1: not said */
} sse;

/* One event's data lines. */
static int on_event(sse *s, char *ev)
{
    for (char *line = strtok(ev, "\n"); line; line = strtok(NULL, "\n")) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = 0;
        if (strncmp(line, "data:", 5))
            continue; /* comments, event names, ids */
        const char *d = line + 5;
        while (*d == ' ')
            d++;
        if (!strcmp(d, "[DONE]")) {
            s->done = true;
            continue;
        }
        json_error_t je;
        json_t *o = json_loads(d, 0, &je);
        if (!o) {
            cn_fail(&s->err, CN_EFORMAT, "remote %s: a malformed event in its answer (%s)",
                    s->e->name, je.text);
            s->failed = true;
            return -1;
        }
        json_t *err = json_object_get(o, "error");
        if (err) {
            const char *m = json_string_value(json_object_get(err, "message"));
            cn_fail(&s->err, CN_EIO, "remote %s: it reported an error: %.300s", s->e->name,
                    m ? m : json_string_value(err) ? json_string_value(err) : "(no message)");
            s->failed = true;
            json_decref(o);
            return -1;
        }
        json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
        const char *t = json_string_value(json_object_get(json_object_get(ch, "delta"), "content"));
        const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
        if (fr)
            snprintf(s->finish, sizeof s->finish, "%s", fr);
        int stop = 0;
        if (t && *t) {
            s->texted = true;
            stop = s->fn(s->ctx, t, strlen(t));
        }
        json_decref(o);
        if (stop) {
            s->stopped = true;
            return -1;
        }
    }
    return 0;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ctx)
{
    sse *s = ctx;
    size_t n = size * nmemb;
    s->received += n;
    if (s->received > MAX_RESPONSE) {
        cn_fail(&s->err, CN_ELIMIT, "remote %s: its answer passed %d MiB; stopped", s->e->name,
                MAX_RESPONSE >> 20);
        s->failed = true;
        return 0;
    }
    if (s->status != 200) { /* an error's body: kept (bounded) for the message */
        if (s->body.len < 4096)
            cn_buf_append(&s->body, p, CN_MIN(n, 4096 - s->body.len));
        return n;
    }
    if (cn_buf_append(&s->pending, p, n)) {
        cn_fail(&s->err, CN_ELIMIT, "remote %s: an event of its answer passed %d KiB",
                s->e->name, MAX_EVENT >> 10);
        s->failed = true;
        return 0;
    }
    for (;;) {
        char *d = s->pending.data;
        size_t len = s->pending.len;
        size_t cut = 0, skip = 0;
        for (size_t i = 0; i + 1 < len; i++) {
            if (d[i] == '\n' && d[i + 1] == '\n') {
                cut = i, skip = 2;
                break;
            }
            if (i + 3 < len && !memcmp(d + i, "\r\n\r\n", 4)) {
                cut = i, skip = 4;
                break;
            }
        }
        if (!skip)
            break;
        d[cut] = 0;
        int rc = on_event(s, d);
        memmove(d, d + cut + skip, len - cut - skip);
        s->pending.len = len - cut - skip;
        if (rc)
            return 0;
    }
    return n;
}

/* The status line (each response's, after a 100 Continue too) and
** Retry-After, as they come: the body's handling depends on the status. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ctx)
{
    sse *s = ctx;
    size_t n = size * nmemb;
    if (n > 12 && !strncasecmp(p, "Retry-After:", 12))
        s->retry_after = strtol(p + 12, NULL, 10);
    else if (n > 9 && !strncmp(p, "HTTP/", 5)) {
        const char *sp = memchr(p, ' ', n);
        if (sp)
            s->status = strtol(sp + 1, NULL, 10);
    }
    return n;
}

/* A whole (not streamed) chat completion in s->pending: its text to fn. */
static void whole_answer(sse *s)
{
    json_t *o = json_loadb(s->pending.data, s->pending.len, 0, NULL);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    const char *t = json_string_value(json_object_get(json_object_get(ch, "message"), "content"));
    const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
    if (t) {
        if (fr)
            snprintf(s->finish, sizeof s->finish, "%s", fr);
        if (*t && s->fn(s->ctx, t, strlen(t)))
            s->stopped = true;
        s->texted = true;
        s->done = true;
    }
    json_decref(o);
}

/* While bytes come slowly or not at all, fn is asked (text NULL) whether
** the answer is still wanted: a client gone or a server stopping does not
** wait for the remote's timeout. */
static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    sse *s = ctx;
    if (!s->stopped && s->fn(s->ctx, NULL, 0))
        s->stopped = true;
    return s->stopped;
}

/* Wait seconds before the next attempt, asking fn (text NULL) every tenth of
** a second whether the answer is still wanted: false when not. */
static bool wait_wanted(long seconds, int (*fn)(void *ctx, const char *text, size_t n),
                        void *ctx)
{
    for (long i = 0; i < seconds * 10; i++) {
        if (fn(ctx, NULL, 0))
            return false;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return !fn(ctx, NULL, 0);
}

/* The one-line reason for a failed attempt. */
static int attempt_error(const rmt_endpoint *e, CURLcode cc, const char *errbuf, sse *s,
                         cn_err *err)
{
    if (s->failed) {
        *err = s->err;
        return s->err.code;
    }
    if (cc == CURLE_COULDNT_RESOLVE_HOST)
        return cn_fail(err, CN_EIO, "remote %s: cannot resolve its host (offline? DNS?): %s",
                       e->name, errbuf);
    if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
        cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE)
        return cn_fail(err, CN_EVERIFY, "remote %s: TLS failed (its certificate is not trusted "
                                        "here?): %s", e->name, errbuf);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return cn_fail(err, CN_EIO, "remote %s: no answer for %d s (timeout)", e->name,
                       e->timeout_s);
    if (cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING)
        return cn_fail(err, CN_EIO, "remote %s: the answer was cut off before its end (the "
                                    "connection closed)", e->name);
    if (cc == CURLE_COULDNT_CONNECT)
        return cn_fail(err, CN_EIO, "remote %s: cannot connect: %s", e->name, errbuf);
    if (cc != CURLE_OK)
        return cn_fail(err, CN_EIO, "remote %s: %s", e->name, errbuf[0] ? errbuf :
                       curl_easy_strerror(cc));
    if (s->status == 401 || s->status == 403)
        return cn_fail(err, CN_EVERIFY, "remote %s: refused (HTTP %ld): check its API key",
                       e->name, s->status);
    if (s->status == 429)
        return cn_fail(err, CN_ELIMIT, "remote %s: too many requests (HTTP 429), still after "
                                       "retrying", e->name);
    if (s->status != 200) {
        json_t *o = json_loadb(s->body.data ? s->body.data : "", s->body.len, 0, NULL);
        json_t *er = json_object_get(o, "error");
        const char *m = json_string_value(json_object_get(er, "message"));
        if (!m)
            m = json_string_value(er);
        int rc = cn_fail(err, CN_EIO, "remote %s: HTTP %ld%s%.300s", e->name, s->status,
                         m ? ": " : "", m ? m : "");
        json_decref(o);
        return rc;
    }
    if (!s->done && !s->stopped)
        return cn_fail(err, CN_EIO, "remote %s: the answer was cut off before its end", e->name);
    return CN_OK;
}

int rmt_chat(const rmt_endpoint *e, const char *body, size_t len,
             int (*fn)(void *ctx, const char *text, size_t n), void *ctx, rmt_result *res,
             cn_err *err)
{
    memset(res, 0, sizeof *res);
    int rc = mdl_url_check(e->base_url, err);
    char key[4096];
    if (!rc)
        rc = rmt_key(e, key, sizeof key, err);
    if (rc)
        return rc;
    char url[1200], auth[4200];
    size_t bl = strlen(e->base_url);
    snprintf(url, sizeof url, "%.*s/chat/completions", (int)(bl && e->base_url[bl - 1] == '/'
                                                              ? bl - 1 : bl), e->base_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    for (int attempt = 0;; attempt++) {
        CURL *h = curl_easy_init();
        if (!h)
            return cn_fail(err, CN_ENOMEM, "out of memory");
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        hd = curl_slist_append(hd, "Accept: text/event-stream");
        if (key[0])
            hd = curl_slist_append(hd, auth);
        sse s = {.e = e, .fn = fn, .ctx = ctx, .retry_after = -1};
        cn_buf_init(&s.pending, MAX_EVENT);
        cn_buf_init(&s.body, 8192);
        char errbuf[CURL_ERROR_SIZE] = "";
        setup_handle(h, url, hd, errbuf);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)e->timeout_s);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        CURLcode cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
        res->attempts++;
        res->status = s.status;
        res->bytes_received += s.received;
        if (s.status > 0)
            res->bytes_sent += len;
        snprintf(res->finish, sizeof res->finish, "%s", s.finish);
        curl_easy_cleanup(h);
        curl_slist_free_all(hd);
        if (cc == CURLE_OK && s.status == 200 && !s.done && !s.failed && s.pending.len &&
            s.pending.data[0] == '{')
            whole_answer(&s); /* a server that ignored "stream": one JSON object */
        if (s.stopped && !s.failed) {
            rc = cn_fail(err, CN_ECANCELED, "stopped");
        } else {
            rc = attempt_error(e, cc, errbuf, &s, err);
        }
        bool again = rc && !s.texted && !s.stopped && attempt < 3 &&
                     (s.status == 429 || s.status >= 500 || cc == CURLE_COULDNT_CONNECT);
        cn_buf_free(&s.pending);
        cn_buf_free(&s.body);
        if (!again)
            return rc;
        long wait = s.retry_after >= 0 ? CN_MIN(s.retry_after, 30) : 1L << attempt;
        if (!wait_wanted(wait, fn, ctx))
            return cn_fail(err, CN_ECANCELED, "stopped");
    }
}

static size_t discard(char *p, size_t size, size_t nmemb, void *ctx)
{
    (void)p;
    size_t *got = ctx;
    *got += size * nmemb;
    return *got > ((size_t)1 << 20) ? 0 : size * nmemb; /* a model list, not more */
}

int rmt_ping(const rmt_endpoint *e, long *status, cn_err *err)
{
    *status = 0;
    char key[4096], url[1200], auth[4200];
    int rc = mdl_url_check(e->base_url, err);
    if (!rc)
        rc = rmt_key(e, key, sizeof key, err);
    if (rc)
        return rc;
    size_t bl = strlen(e->base_url);
    snprintf(url, sizeof url, "%.*s/models", (int)(bl && e->base_url[bl - 1] == '/' ? bl - 1 : bl),
             e->base_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    CURL *h = curl_easy_init();
    if (!h)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    struct curl_slist *hd = key[0] ? curl_slist_append(NULL, auth) : NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    size_t got = 0;
    setup_handle(h, url, hd, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    if (cc != CURLE_OK)
        return cn_fail(err, CN_EIO, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
    return CN_OK;
}

/* ---- the audit log ------------------------------------------------------------ */

int rmt_audit(const char *home, json_t *record, cn_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/remote-audit.jsonl", home);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s}", "time", when);
    json_object_update(o, record);
    json_decref(record);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int rc = CN_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    size_t n = strlen(line);
    line[n] = '\n'; /* the NUL becomes the line's end: written in one call */
    if (fd < 0 || write(fd, line, n + 1) != (ssize_t)(n + 1) || fsync(fd) != 0)
        rc = cn_fail(err, CN_EIO, "%s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(line);
    return rc;
}

int rmt_audit_call(const char *home, const rmt_endpoint *e, const char *via, json_t *passages,
                   const rmt_result *res, const char *error, cn_err *err)
{
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:i, s:I}", "via", via, "remote",
                            e->name, "url", e->base_url, "model", e->model, "passages", passages,
                            "bytes_sent", (json_int_t)res->bytes_sent, "bytes_received",
                            (json_int_t)res->bytes_received, "attempts", res->attempts, "status",
                            (json_int_t)res->status);
    if (!rec)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    if (error)
        json_object_set_new(rec, "error", json_string(error));
    return rmt_audit(home, rec, err);
}

int rmt_audit_read(const char *home, void (*fn)(void *ctx, json_t *record), void *ctx,
                   cn_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/remote-audit.jsonl", home);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? CN_OK : cn_fail(err, CN_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o) {
            fn(ctx, o);
            json_decref(o);
        }
    }
    free(line);
    fclose(f);
    return CN_OK;
}
