/*
** catalog.c: what models exist. The built-in catalog is compiled in
** (catalog.json, through catalog_data.c); an updated one is accepted only
** with an ed25519 signature from a trusted key, and is verified again every
** time it is loaded, so a file changed on disk is never believed.
*/
#include "models/models_int.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The maintainers' catalog key (tools/catalog-sign.c; the secret half is
** kept offline, never in the repository). */
static const char builtin_key[] =
    "f8394ed2fe2370bb25fe03488133dd0698ee591b096afb594bdb3d384df31e3d";

const char *mdl_builtin_key(void) { return builtin_key; }

static int hex_decode(const char *hex, unsigned char *out, size_t n)
{
    size_t bin_len = 0;
    if (sodium_hex2bin(out, n, hex, strlen(hex), NULL, &bin_len, NULL) != 0 || bin_len != n)
        return -1;
    return 0;
}

int mdl_signature_check(const void *data, size_t len, const char *sig_hex, const char *key_hex,
                        const char *what, cn_err *err)
{
    unsigned char sig[crypto_sign_BYTES], pk[crypto_sign_PUBLICKEYBYTES];
    char s[2 * crypto_sign_BYTES + 1];
    /* the signature file may end with a newline or spaces */
    size_t k = 0;
    for (const char *p = sig_hex; *p && k < sizeof s - 1; p++)
        if (!strchr(" \t\r\n", *p))
            s[k++] = *p;
    s[k] = 0;
    if (hex_decode(key_hex, pk, sizeof pk) != 0)
        return cn_fail(err, CN_EINVAL, "catalog key '%.80s' is not 64 hex digits", key_hex);
    if (k != 2 * crypto_sign_BYTES || hex_decode(s, sig, sizeof sig) != 0)
        return cn_fail(err, CN_EVERIFY, "%s: signature is not 128 hex digits", what);
    if (sodium_init() < 0)
        return cn_fail(err, CN_EIO, "libsodium failed to initialise");
    if (crypto_sign_verify_detached(sig, data, len, pk) != 0)
        return cn_fail(err, CN_EVERIFY, "%s: signature does not verify against the trusted key",
                       what);
    return CN_OK;
}

/* ---- parsing -------------------------------------------------------------- */

static int get_str(json_t *o, const char *key, bool required, size_t max, const char **out,
                   const char *what, int i, cn_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v && !required) {
        *out = "";
        return CN_OK;
    }
    if (!json_is_string(v))
        return cn_fail(err, CN_EFORMAT, "%s: models[%d].%s: %s", what, i, key,
                       v ? "must be a string" : "missing");
    if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
        return cn_fail(err, CN_EFORMAT, "%s: models[%d].%s: longer than %zu bytes or has NUL",
                       what, i, key, max);
    *out = json_string_value(v);
    return CN_OK;
}

static int get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   const char *what, int i, cn_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return cn_fail(err, CN_EFORMAT, "%s: models[%d].%s: %s (expected an integer %lld..%lld)",
                       what, i, key, v ? "out of range or not an integer" : "missing",
                       (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return CN_OK;
}

bool mdl_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", s[i]))
            return false;
    return true;
}

bool mdl_sha_ok(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return false;
    return true;
}

static int parse_entry(json_t *o, mdl_entry *e, const char *what, int i, cn_err *err)
{
    if (!json_is_object(o))
        return cn_fail(err, CN_EFORMAT, "%s: models[%d] is not an object", what, i);
    int rc;
    if ((rc = get_str(o, "name", true, 64, &e->name, what, i, err)) ||
        (rc = get_str(o, "role", true, 16, &e->role, what, i, err)) ||
        (rc = get_str(o, "family", false, 64, &e->family, what, i, err)) ||
        (rc = get_str(o, "arch", true, 32, &e->arch, what, i, err)) ||
        (rc = get_str(o, "quant", false, 32, &e->quant, what, i, err)) ||
        (rc = get_str(o, "license", false, 200, &e->license, what, i, err)) ||
        (rc = get_str(o, "description", false, 300, &e->description, what, i, err)) ||
        (rc = get_str(o, "tier", false, 32, &e->tier, what, i, err)) ||
        (rc = get_str(o, "url", true, 2000, &e->url, what, i, err)) ||
        (rc = get_str(o, "sha256", false, 64, &e->sha256, what, i, err)))
        return rc;
    if (!mdl_name_ok(e->name))
        return cn_fail(err, CN_EFORMAT, "%s: models[%d].name '%s': use a-z, 0-9, '.', '-', '_'",
                       what, i, e->name);
    if (strcmp(e->role, "chat") && strcmp(e->role, "embed") && strcmp(e->role, "rerank"))
        return cn_fail(err, CN_EFORMAT, "%s: %s: role '%s' is not chat, embed or rerank", what,
                       e->name, e->role);
    if (*e->sha256 && !mdl_sha_ok(e->sha256))
        return cn_fail(err, CN_EFORMAT, "%s: %s: sha256 is not 64 lower-case hex digits", what,
                       e->name);
    if (mdl_url_check(e->url, NULL) != CN_OK)
        return cn_fail(err, CN_EFORMAT, "%s: %s: url must be https:// (or http:// to loopback)",
                       what, e->name);
    int64_t ctx = 0;
    if ((rc = get_int(o, "size", 1, (int64_t)1 << 42, &e->size, what, i, err)) ||
        (rc = get_int(o, "ram_mb", 1, (int64_t)1 << 24, &e->ram_mb, what, i, err)))
        return rc;
    json_t *c = json_object_get(o, "context");
    if (c && (rc = get_int(o, "context", 1, (int64_t)1 << 24, &ctx, what, i, err)))
        return rc;
    e->context = ctx;
    json_t *p = json_object_get(o, "params_b");
    e->params_b = json_is_number(p) ? json_number_value(p) : 0;
    if (e->params_b < 0 || e->params_b > 1e4)
        return cn_fail(err, CN_EFORMAT, "%s: %s: params_b out of range", what, e->name);
    e->pinned = json_is_true(json_object_get(o, "pinned"));
    json_t *x = json_object_get(o, "size_exact");
    if (x && !json_is_boolean(x))
        return cn_fail(err, CN_EFORMAT, "%s: models[%d].size_exact: must be true or false", what,
                       i);
    e->size_exact = !json_is_false(x);
    return CN_OK;
}

int mdl_catalog_parse(const char *text, size_t len, const char *what, mdl_catalog **out,
                      cn_err *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cn_fail(err, CN_EFORMAT, "%s: not valid JSON (line %d: %s)", what, je.line,
                       je.text);
    mdl_catalog *c = cn_calloc(1, sizeof *c);
    json_t *models = json_object_get(root, "models"), *serial = json_object_get(root, "serial");
    int rc = CN_OK;
    if (!c)
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
    else if (!json_is_array(models) || json_array_size(models) > 10000)
        rc = cn_fail(err, CN_EFORMAT, "%s: \"models\" must be an array (of at most 10 000)", what);
    else if (!json_is_integer(serial) || json_integer_value(serial) < 0)
        rc = cn_fail(err, CN_EFORMAT, "%s: \"serial\" must be a non-negative integer", what);
    if (!rc) {
        c->json = root;
        c->serial = json_integer_value(serial);
        snprintf(c->source, sizeof c->source, "%s", what);
        c->models = cn_calloc(json_array_size(models) + 1, sizeof *c->models);
        if (!c->models)
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && i < json_array_size(models); i++) {
        mdl_entry *e = &c->models[c->n];
        rc = parse_entry(json_array_get(models, i), e, what, (int)i, err);
        if (!rc && mdl_catalog_find(c, e->name))
            rc = cn_fail(err, CN_EFORMAT, "%s: model '%s' is listed twice", what, e->name);
        if (!rc)
            c->n++;
    }
    if (rc) {
        if (c) {
            free(c->models);
            free(c);
        }
        json_decref(root);
        return rc;
    }
    *out = c;
    return CN_OK;
}

void mdl_catalog_free(mdl_catalog *c)
{
    if (!c)
        return;
    json_decref(c->json);
    free(c->models);
    free(c);
}

const mdl_entry *mdl_catalog_find(const mdl_catalog *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->models[i].name, name))
            return &c->models[i];
    return NULL;
}

/* ---- loading ---------------------------------------------------------------- */

int mdl_catalog_verified(const char *text, size_t len, const char *sig, const char *key_hex,
                         const char *what, int64_t min_serial, mdl_catalog **out, cn_err *err)
{
    int rc = mdl_signature_check(text, len, sig, key_hex, what, err);
    if (!rc)
        rc = mdl_catalog_parse(text, len, what, out, err);
    if (!rc && (*out)->serial < min_serial) {
        rc = cn_fail(err, CN_EVERIFY, "%s: serial %lld is older than the catalog in use (%lld)",
                     what, (long long)(*out)->serial, (long long)min_serial);
        mdl_catalog_free(*out);
        *out = NULL;
    }
    return rc;
}

/* The stored signature file is the signature's hex, then a line "key HEX"
** naming the key it was accepted with. Cuts text at that line and points
** *key at the key (NULL if the file has none: written by an older Cairn). */
static void split_sig_file(char *text, const char **key)
{
    *key = NULL;
    char *k = strstr(text, "\nkey ");
    if (!k)
        return;
    *k = 0;
    k += 5;
    k[strcspn(k, " \t\r\n")] = 0;
    *key = k;
}

int mdl_catalog_load(const char *home, const char *key_hex, mdl_catalog **out, cn_err *err)
{
    size_t blen;
    const char *builtin = mdl_builtin_catalog(&blen);
    mdl_catalog *b;
    int rc = mdl_catalog_parse(builtin, blen, "built-in catalog", &b, err);
    if (rc)
        return rc;
    snprintf(b->source, sizeof b->source, "built-in");
    char path[PATH_MAX + 32], spath[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/models/catalog.json", home);
    snprintf(spath, sizeof spath, "%s/models/catalog.json.sig", home);
    char *text = NULL, *sig = NULL;
    size_t len = 0, slen = 0;
    if (cn_read_file(path, MDL_CATALOG_MAX, &text, &len, NULL) != CN_OK) {
        *out = b; /* no update installed */
        return CN_OK;
    }
    if ((rc = cn_read_file(spath, 4096, &sig, &slen, err)) == CN_OK) {
        const char *stored;
        split_sig_file(sig, &stored);
        const char *key = stored ? stored : key_hex ? key_hex : builtin_key;
        rc = mdl_catalog_verified(text, len, sig, key, path, 0, out, err);
        if (!rc)
            snprintf((*out)->key, sizeof (*out)->key, "%.64s", key);
    } else
        rc = cn_fail(err, CN_EVERIFY, "%s: signature file missing (%s): run `cairn models "
                     "update` again or delete the catalog to use the built-in one", path, spath);
    free(text);
    free(sig);
    if (rc == CN_OK && (*out)->serial < b->serial) {
        /* the binary is newer than the downloaded catalog */
        mdl_catalog_free(*out);
        *out = b;
        return CN_OK;
    }
    mdl_catalog_free(b);
    return rc;
}

int mdl_catalog_update(const char *home, const char *url, const char *key_hex, int *n_models,
                       int64_t *serial, cn_err *err)
{
    mdl_catalog *cur = NULL, *c = NULL;
    char sig_url[2100], *text = NULL, *sig = NULL;
    size_t len = 0, slen = 0;
    if (snprintf(sig_url, sizeof sig_url, "%s.sig", url) >= (int)sizeof sig_url)
        return cn_fail(err, CN_EINVAL, "catalog URL too long");
    /* a broken local catalog is replaced, not an obstacle */
    mdl_catalog_load(home, key_hex, &cur, NULL);
    int rc = mdl_fetch(url, MDL_CATALOG_MAX, &text, &len, err);
    if (!rc && (rc = mdl_fetch(sig_url, 4096, &sig, &slen, err)) && err) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        cn_fail(err, rc, "%s (a catalog without its signature is never used)", why);
    }
    /* replays are judged against the catalog of the same publisher: a new
    ** key (the user chose another mirror) starts its own serials */
    const char *key = key_hex ? key_hex : builtin_key;
    const char *cur_key = cur && cur->key[0] ? cur->key : builtin_key;
    int64_t floor = cur && !strcasecmp(cur_key, key) ? cur->serial : 0;
    if (!rc)
        rc = mdl_catalog_verified(text, len, sig, key, url, floor, &c, err);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/models", home);
    if (!rc)
        rc = cn_mkdirs(dir, err);
    /* the signature and the key it verified with in one file, so the next
    ** load checks against the key that was trusted here (one write); the
    ** signature first, then the catalog: a crash between the two leaves a
    ** pair that fails to verify and says so, never an unverified catalog */
    cn_buf sf;
    cn_buf_init(&sf, 4096);
    for (const char *p = sig; !rc && *p; p++) /* the hex digits that verified */
        if (!strchr(" \t\r\n", *p) && cn_buf_append(&sf, p, 1) != CN_OK)
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
    if (!rc && cn_buf_printf(&sf, "\nkey %s\n", key) != CN_OK)
        rc = cn_fail(err, CN_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < 2; k++) {
        snprintf(path, sizeof path, "%s/catalog.json%s", dir, k == 0 ? ".sig" : "");
        rc = cn_write_atomic(path, k == 0 ? sf.data : text, k == 0 ? sf.len : len, 0600, err);
    }
    cn_buf_free(&sf);
    if (!rc) {
        *n_models = c->n;
        *serial = c->serial;
    }
    free(text);
    free(sig);
    mdl_catalog_free(c);
    mdl_catalog_free(cur);
    return rc;
}

json_t *mdl_entry_json(const mdl_entry *e, const mdl_hw *hw)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:f,s:s,s:I,s:s,s:I,s:I,s:s,s:s,s:b,s:s,s:s}",
                          "name", e->name, "role", e->role, "family", e->family, "arch",
                          e->arch, "params_b", e->params_b, "quant", e->quant, "size",
                          (json_int_t)e->size, "sha256", e->sha256, "context",
                          (json_int_t)e->context, "ram_mb", (json_int_t)e->ram_mb, "license",
                          e->license, "tier", e->tier, "pinned", e->pinned, "description",
                          e->description, "url", e->url);
    if (o)
        json_object_set_new(o, "size_exact", json_boolean(e->size_exact));
    if (o && hw)
        json_object_set_new(o, "fit", json_string(mdl_fit(e, hw)));
    return o;
}
