/*
** parse.c: request bodies from the network into checked C structs. Nothing
** here trusts its input: sizes and nesting are bounded before jansson sees
** the text, and every field is checked for type and range, the error naming
** the parameter as OpenAI's API does ({"error": {"param": "max_tokens"}}).
*/
#include "server/srv_int.h"
#include "grammar/grammar.h"

#include <ctype.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int srv_fail(srv_error *e, int status, const char *param, const char *fmt, ...)
{
    if (!e)
        return -1;
    e->status = status;
    e->type = status == 401   ? "authentication_error"
              : status == 403 ? "permission_error"
              : status == 404 ? "not_found_error"
              : status == 429 ? "rate_limit_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    e->code = NULL;
    e->retry_after = 0;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int srv_json_depth(const char *s, size_t n, int max)
{
    int depth = 0, deepest = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest && (deepest = depth) > max)
                return max + 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
}

int srv_parse_body(const char *body, size_t len, const srv_limits *lim, json_t **out,
                   srv_error *e)
{
    *out = NULL;
    if (len > lim->max_body)
        return srv_fail(e, 413, NULL, "request body is %zu bytes; the limit is %zu", len,
                        lim->max_body);
    if (len == 0)
        return srv_fail(e, 400, NULL, "request body is empty; expected a JSON object");
    if (srv_json_depth(body, len, lim->max_depth) > lim->max_depth)
        return srv_fail(e, 400, NULL, "JSON nested deeper than %d levels", lim->max_depth);
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return srv_fail(e, 400, NULL, "malformed JSON at line %d, column %d: %s", je.line,
                        je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return srv_fail(e, 400, NULL, "expected a JSON object at the top level");
    }
    *out = j;
    return 0;
}

/* ---- typed field readers: absent is fine, a wrong type or range is not ---- */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Present and not null? */
static json_t *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_number(json_t *o, const char *key, double lo, double hi, double *out, srv_error *e)
{
    json_t *v = field(o, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return srv_fail(e, 400, key, "%s: expected a number, got %s", key, type_name(v));
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return srv_fail(e, 400, key, "%s: %g is out of range [%g, %g]", key, d, lo, hi);
    *out = d;
    return 1;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out,
                   srv_error *e)
{
    json_t *v = field(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return srv_fail(e, 400, key, "%s: expected an integer, got %s", key, type_name(v));
    long long n = json_integer_value(v);
    if (n < lo || n > hi)
        return srv_fail(e, 400, key, "%s: %lld is out of range [%lld, %lld]", key, n, lo, hi);
    *out = n;
    return 1;
}

static int get_bool(json_t *o, const char *key, bool *out, srv_error *e)
{
    json_t *v = field(o, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return srv_fail(e, 400, key, "%s: expected a boolean, got %s", key, type_name(v));
    *out = json_is_true(v);
    return 1;
}

static int get_string(json_t *o, const char *key, bool required, const char **out, srv_error *e)
{
    json_t *v = field(o, key);
    if (!v)
        return required ? srv_fail(e, 400, key, "%s: required", key) : 0;
    if (!json_is_string(v))
        return srv_fail(e, 400, key, "%s: expected a string, got %s", key, type_name(v));
    if (strlen(json_string_value(v)) != json_string_length(v))
        return srv_fail(e, 400, key, "%s: contains a NUL character", key);
    *out = json_string_value(v);
    return 1;
}

/* "stop": a string or an array of strings, each 1..64 bytes, at most lim->max_stop. */
static int get_stop(json_t *o, const char *key, const srv_limits *lim, srv_gen_req *r,
                    srv_error *e)
{
    json_t *v = field(o, key);
    if (!v)
        return 0;
    int max = CN_MIN(lim->max_stop, (int)CN_ARRAY_LEN(r->stop));
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > (size_t)max)
            return srv_fail(e, 400, key, "%s: at most %d stop strings", key, max);
        items = NULL;
    } else if (!json_is_string(v)) {
        return srv_fail(e, 400, key, "%s: expected a string or an array of strings, got %s", key,
                        type_name(v));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        if (!json_is_string(s))
            return srv_fail(e, 400, key, "%s[%zu]: expected a string, got %s", key, i,
                            type_name(s));
        size_t len = json_string_length(s);
        if (len == 0 || len > 64 || strlen(json_string_value(s)) != len)
            return srv_fail(e, 400, key, "%s: each stop string must be 1 to 64 bytes", key);
        r->stop[r->n_stop++] = json_string_value(s);
    }
    return 1;
}

/* Sampling fields, OpenAI names at the top level or Ollama's in "options". */
static int sampling(json_t *o, int api, const srv_limits *lim, srv_gen_req *r, srv_error *e)
{
    long long n;
    int rc;
    if (api == SRV_API_OLLAMA) {
        json_t *opt = field(o, "options");
        if (opt && !json_is_object(opt))
            return srv_fail(e, 400, "options", "options: expected an object, got %s",
                            type_name(opt));
        if (!opt)
            return 0;
        o = opt;
        if ((rc = get_int(o, "num_predict", -2, 1LL << 31, &n, e)) < 0)
            return -1;
        if (rc == 1 && n > lim->max_tokens)
            return srv_fail(e, 400, "num_predict", "num_predict: %lld is more than this server's "
                            "limit of %d tokens", n, lim->max_tokens);
        if (rc == 1)
            r->max_tokens = n < 0 ? lim->max_tokens : (int)n; /* -1, -2: as much as allowed */
        if ((rc = get_int(o, "top_k", 0, 1 << 20, &n, e)) < 0)
            return -1;
        if (rc == 1)
            r->top_k = (int)n;
    } else {
        const char *key = field(o, "max_completion_tokens") ? "max_completion_tokens"
                                                            : "max_tokens";
        if ((rc = get_int(o, key, 0, 1LL << 31, &n, e)) < 0)
            return -1;
        if (rc == 1 && n > lim->max_tokens)
            return srv_fail(e, 400, key, "%s: %lld is more than this server's limit of %d tokens",
                            key, n, lim->max_tokens);
        if (rc == 1)
            r->max_tokens = (int)n;
        if ((rc = get_int(o, "n", 1, 1, &n, e)) < 0) {
            snprintf(e->msg, sizeof e->msg, "n: only one choice per request is supported");
            return -1;
        }
    }
    if (get_number(o, "temperature", 0, 2, &r->temperature, e) < 0 ||
        get_number(o, "top_p", 1e-9, 1, &r->top_p, e) < 0)
        return -1;
    if ((rc = get_int(o, "seed", INT64_MIN, INT64_MAX, &n, e)) < 0)
        return -1;
    if (rc == 1) {
        r->has_seed = true;
        r->seed = (uint64_t)n;
    }
    return get_stop(o, "stop", lim, r, e) < 0 ? -1 : 0;
}

/* The schema text (compiled) that an answer must follow, or a 400 naming
** param with the schema compiler's reason. */
static int compile_schema(const json_t *schema, const char *param, srv_gen_req *r, srv_error *e)
{
    char *text = json_dumps(schema, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text)
        return srv_fail(e, 500, NULL, "out of memory");
    cn_err err = {0};
    int rc = gr_from_schema(text, strlen(text), &r->grammar, &err);
    free(text);
    if (rc)
        return srv_fail(e, 400, param, "%s: %s", param, err.msg);
    r->grammar_param = param;
    return 0;
}

/* OpenAI response_format {type: text | json_object | json_schema} and
** Ollama format ("json" or a JSON schema). */
static int output_format(json_t *o, int api, srv_gen_req *r, srv_error *e)
{
    if (api == SRV_API_OLLAMA) {
        json_t *f = field(o, "format");
        if (!f || json_is_null(f) || (json_is_string(f) && !*json_string_value(f)))
            return 0;
        if (json_is_string(f)) {
            if (strcmp(json_string_value(f), "json") != 0)
                return srv_fail(e, 400, "format", "format: \"json\" or a JSON schema, not "
                                "\"%.40s\"", json_string_value(f));
            static const char any[] = "{}";
            json_t *a = json_loads(any, 0, NULL);
            int rc = compile_schema(a, "format", r, e);
            json_decref(a);
            return rc;
        }
        if (!json_is_object(f))
            return srv_fail(e, 400, "format", "format: \"json\" or a JSON schema, got %s",
                            type_name(f));
        return compile_schema(f, "format", r, e);
    }
    json_t *rf = field(o, "response_format");
    if (!rf || json_is_null(rf))
        return 0;
    if (!json_is_object(rf))
        return srv_fail(e, 400, "response_format", "response_format: expected an object, got %s",
                        type_name(rf));
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!type)
        return srv_fail(e, 400, "response_format", "response_format: type is missing");
    if (!strcmp(type, "text"))
        return 0;
    if (!strcmp(type, "json_object")) {
        json_t *obj = json_pack("{s:s}", "type", "object");
        int rc = compile_schema(obj, "response_format", r, e);
        json_decref(obj);
        return rc;
    }
    if (!strcmp(type, "json_schema")) {
        json_t *js = json_object_get(rf, "json_schema");
        json_t *schema = json_is_object(js) ? json_object_get(js, "schema") : NULL;
        if (!json_is_object(schema))
            return srv_fail(e, 400, "response_format",
                            "response_format: json_schema.schema must be a JSON schema object");
        return compile_schema(schema, "response_format", r, e);
    }
    return srv_fail(e, 400, "response_format",
                    "response_format: type \"%.40s\" is not one of text, json_object, json_schema",
                    type);
}

static int common(const char *body, size_t len, int api, const srv_limits *lim, srv_gen_req *r,
                  srv_error *e)
{
    memset(r, 0, sizeof *r);
    r->max_tokens = lim->default_tokens;
    r->temperature = -1; /* not given: the server's default */
    r->top_p = -1;
    r->stream = api == SRV_API_OLLAMA; /* Ollama streams unless told not to */
    if (srv_parse_body(body, len, lim, &r->root, e))
        return -1;
    if (get_string(r->root, "model", api == SRV_API_OPENAI, &r->model, e) < 0 ||
        get_bool(r->root, "stream", &r->stream, e) < 0 || sampling(r->root, api, lim, r, e) < 0)
        return -1;
    json_t *so = field(r->root, "stream_options");
    if (so && !json_is_object(so))
        return srv_fail(e, 400, "stream_options", "stream_options: expected an object, got %s",
                        type_name(so));
    if (so && get_bool(so, "include_usage", &r->include_usage, e) < 0)
        return -1;
    return output_format(r->root, api, r, e);
}

/* A message's content: a string, null, or (OpenAI) an array of parts whose
** "text" parts are joined. */
static int content_of(json_t *m, size_t i, cn_arena *a, const char **out, srv_error *e)
{
    char param[48];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    json_t *c = json_object_get(m, "content");
    if (!c || json_is_null(c)) {
        *out = "";
        return 0;
    }
    if (json_is_string(c)) {
        if (strlen(json_string_value(c)) != json_string_length(c))
            return srv_fail(e, 400, param, "%s: contains a NUL character", param);
        *out = json_string_value(c);
        return 0;
    }
    if (!json_is_array(c))
        return srv_fail(e, 400, param, "%s: expected a string or an array of parts, got %s",
                        param, type_name(c));
    size_t total = 1, k;
    json_t *p;
    json_array_foreach(c, k, p)
    {
        json_t *t = json_is_object(p) ? json_object_get(p, "type") : NULL;
        json_t *x = json_is_object(p) ? json_object_get(p, "text") : NULL;
        if (!json_is_string(t) || strcmp(json_string_value(t), "text") || !json_is_string(x))
            return srv_fail(e, 400, param, "%s[%zu]: only {\"type\": \"text\", \"text\": ...} "
                            "parts are supported", param, k);
        total += json_string_length(x) + 1;
    }
    char *s = cn_arena_alloc(a, total), *w = s;
    if (!s)
        return srv_fail(e, 413, param, "%s: too large", param);
    json_array_foreach(c, k, p)
    {
        json_t *x = json_object_get(p, "text");
        size_t n = strnlen(json_string_value(x), json_string_length(x));
        if (k)
            *w++ = '\n';
        memcpy(w, json_string_value(x), n);
        w += n;
    }
    *w = 0;
    *out = s;
    return 0;
}

int srv_parse_chat(const char *body, size_t len, int api, const srv_limits *lim, cn_arena *a,
                   srv_gen_req *r, srv_error *e)
{
    if (common(body, len, api, lim, r, e))
        return -1;
    json_t *ms = json_object_get(r->root, "messages");
    if (!ms)
        return srv_fail(e, 400, "messages", "messages: required");
    if (!json_is_array(ms))
        return srv_fail(e, 400, "messages", "messages: expected an array, got %s", type_name(ms));
    size_t n = json_array_size(ms);
    if (n == 0)
        return srv_fail(e, 400, "messages", "messages: must hold at least one message");
    if (n > (size_t)lim->max_messages)
        return srv_fail(e, 400, "messages", "messages: %zu messages; the limit is %d", n,
                        lim->max_messages);
    r->msgs = cn_arena_alloc(a, sizeof *r->msgs * n);
    if (!r->msgs)
        return srv_fail(e, 413, "messages", "messages: too large");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(ms, i);
        char param[48];
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_object(m))
            return srv_fail(e, 400, "messages", "messages[%zu]: expected an object, got %s", i,
                            type_name(m));
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role))
            return srv_fail(e, 400, param, "%s: expected a string", param);
        const char *ro = json_string_value(role);
        if (!strcmp(ro, "developer"))
            ro = "system";
        if (strcmp(ro, "system") && strcmp(ro, "user") && strcmp(ro, "assistant"))
            return srv_fail(e, 400, param, "%s: '%.40s' is not one of system, developer, user, "
                            "assistant", param, ro);
        r->msgs[i].role = ro;
        if (content_of(m, i, a, &r->msgs[i].content, e))
            return -1;
    }
    r->n_msgs = (int)n;
    return 0;
}

int srv_parse_completion(const char *body, size_t len, int api, const srv_limits *lim,
                         cn_arena *a, srv_gen_req *r, srv_error *e)
{
    (void)a;
    if (common(body, len, api, lim, r, e))
        return -1;
    json_t *p = json_object_get(r->root, "prompt");
    if (api == SRV_API_OPENAI && json_is_array(p)) {
        if (json_array_size(p) != 1)
            return srv_fail(e, 400, "prompt", "prompt: only one prompt per request is supported");
        p = json_array_get(p, 0);
    }
    if (!p || json_is_null(p))
        return srv_fail(e, 400, "prompt", "prompt: required");
    if (!json_is_string(p) || strlen(json_string_value(p)) != json_string_length(p))
        return srv_fail(e, 400, "prompt", "prompt: expected a string, got %s", type_name(p));
    r->prompt = json_string_value(p);
    if (api == SRV_API_OLLAMA &&
        (get_string(r->root, "system", false, &r->system, e) < 0 ||
         get_bool(r->root, "raw", &r->raw, e) < 0))
        return -1;
    return 0;
}

void srv_gen_req_free(srv_gen_req *r)
{
    json_decref(r->root);
    r->root = NULL;
    gr_free(r->grammar);
    r->grammar = NULL;
}

int srv_parse_embed(const char *body, size_t len, int api, const srv_limits *lim, cn_arena *a,
                    srv_embed_req *r, srv_error *e)
{
    memset(r, 0, sizeof *r);
    r->ollama_truncate = true;
    if (srv_parse_body(body, len, lim, &r->root, e))
        return -1;
    if (get_string(r->root, "model", api == SRV_API_OPENAI, &r->model, e) < 0)
        return -1;
    json_t *in = json_object_get(r->root, "input");
    if (!in && api == SRV_API_OLLAMA)
        in = json_object_get(r->root, "prompt"); /* the older /api/embeddings name */
    if (!in || json_is_null(in))
        return srv_fail(e, 400, "input", "input: required");
    size_t n = 1;
    if (json_is_array(in)) {
        n = json_array_size(in);
        if (n == 0)
            return srv_fail(e, 400, "input", "input: must not be an empty array");
        if (n > (size_t)lim->max_inputs)
            return srv_fail(e, 400, "input", "input: %zu inputs; the limit is %d", n,
                            lim->max_inputs);
    } else if (!json_is_string(in)) {
        return srv_fail(e, 400, "input", "input: expected a string or an array of strings, got %s",
                        type_name(in));
    }
    r->inputs = cn_arena_alloc(a, sizeof *r->inputs * n);
    r->lens = cn_arena_alloc(a, sizeof *r->lens * n);
    if (!r->inputs || !r->lens)
        return srv_fail(e, 413, "input", "input: too large");
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(in) ? json_array_get(in, i) : in;
        if (!json_is_string(s))
            return srv_fail(e, 400, "input", "input[%zu]: expected a string, got %s (token "
                            "arrays are not supported)", i, type_name(s));
        r->inputs[i] = json_string_value(s);
        r->lens[i] = json_string_length(s);
    }
    r->n_inputs = (int)n;
    const char *fmt = NULL;
    if (get_string(r->root, "encoding_format", false, &fmt, e) < 0)
        return -1;
    if (fmt && strcmp(fmt, "float") && strcmp(fmt, "base64"))
        return srv_fail(e, 400, "encoding_format", "encoding_format: '%.40s' is not float or "
                        "base64", fmt);
    r->base64 = fmt && !strcmp(fmt, "base64");
    if (api == SRV_API_OLLAMA && get_bool(r->root, "truncate", &r->ollama_truncate, e) < 0)
        return -1;
    return 0;
}

void srv_embed_req_free(srv_embed_req *r)
{
    json_decref(r->root);
    r->root = NULL;
}

size_t srv_base64(const void *data, size_t n, char *out)
{
    /* libsodium's encoder: the standard alphabet with '=' padding, as the
    ** openai packages decode it */
    sodium_bin2base64(out, sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL), data, n,
                      sodium_base64_VARIANT_ORIGINAL);
    return strlen(out);
}

void srv_safe_filename(const char *name, char *out, size_t cap)
{
    const char *base = name;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    size_t o = 0, max = CN_MIN(cap - 1, (size_t)120);
    for (const char *p = base; *p && o < max; p++) {
        unsigned char c = (unsigned char)*p;
        bool ok = isalnum(c) || strchr("._-() ", c);
        if (o == 0 && (c == '.' || c == ' '))
            continue; /* no hidden files, no leading blanks */
        out[o++] = ok ? (char)c : '_';
    }
    out[o] = 0;
    if (o == 0)
        snprintf(out, cap, "upload");
}
