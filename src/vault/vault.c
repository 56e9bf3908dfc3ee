/*
** vault.c: the envelope of an encrypted library's data key (see vault.h).
**
** The envelope, JSON:
**   {"version": 1, "id": "<16 random bytes, hex>",
**    "entries": [{"kind": "passphrase", "label": "passphrase",
**                 "salt": hex, "ops": n, "mem": n, "nonce": hex, "wrapped": hex},
**                {"kind": "keyfile", "label": "key file /etc/cairn.key",
**                 "nonce": hex, "wrapped": hex}]}
** "wrapped" is the data key sealed with XChaCha20-Poly1305 under the
** entry's key-encryption key, with "cairn-vault-1:<id>:<kind>" as the
** associated data. A key file holds 32 random bytes as hex; its KEK is
** BLAKE2b keyed by them. A passphrase's KEK is Argon2id13 with the entry's
** salt and costs.
*/
#include "vault/vault.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>

#define WRAP_BYTES (VAULT_KEY_BYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SALT_BYTES crypto_pwhash_SALTBYTES
#define ENVELOPE_MAX (1 << 20)

int vault_init(cn_err *err)
{
    if (sodium_init() < 0)
        return cn_fail(err, CN_EIO, "cannot start libsodium");
    return CN_OK;
}

static vault_key *key_new(void)
{
    vault_key *k = sodium_malloc(sizeof *k);
    return k;
}

void vault_key_free(vault_key *k)
{
    if (k)
        sodium_free(k); /* wipes before freeing */
}

vault_kdf vault_tune(double target_s)
{
    vault_kdf kdf = {1, (size_t)64 << 20};
    unsigned char out[32], salt[SALT_BYTES] = {0};
    for (; kdf.ops < 64; kdf.ops++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (crypto_pwhash(out, sizeof out, "tune", 4, salt, kdf.ops, kdf.mem,
                          crypto_pwhash_ALG_ARGON2ID13) != 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        if (s >= target_s)
            break;
    }
    sodium_memzero(out, sizeof out);
    return kdf;
}

/* ---- the envelope file ------------------------------------------------- */

static int hex_to(const char *hex, unsigned char *out, size_t n)
{
    size_t got = 0;
    if (!hex || sodium_hex2bin(out, n, hex, strlen(hex), NULL, &got, NULL) != 0 || got != n)
        return -1;
    return 0;
}

static json_t *hex_of(const unsigned char *b, size_t n)
{
    char h[2 * 64 + 1];
    if (n > 64)
        return NULL;
    sodium_bin2hex(h, sizeof h, b, n);
    return json_string(h);
}

static int load(const char *path, json_t **out, cn_err *err)
{
    char *txt;
    size_t len;
    int rc = cn_read_file(path, ENVELOPE_MAX, &txt, &len, err);
    if (rc != CN_OK)
        return rc;
    json_error_t je;
    json_t *j = json_loadb(txt, len, 0, &je);
    free(txt);
    json_t *e = j ? json_object_get(j, "entries") : NULL;
    if (!j || !json_is_object(j) || json_integer_value(json_object_get(j, "version")) != 1 ||
        !json_is_string(json_object_get(j, "id")) || !json_is_array(e) ||
        json_array_size(e) > VAULT_MAX_ENTRIES) {
        json_decref(j);
        return cn_fail(err, CN_EFORMAT, "%s: not a Cairn key envelope, or a damaged one", path);
    }
    *out = j;
    return CN_OK;
}

static int save(const char *path, json_t *j, cn_err *err)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    int rc = cn_write_atomic(path, s, strlen(s), 0600, err);
    free(s);
    return rc;
}

static void ad_of(const json_t *j, const char *kind, char *ad, size_t cap)
{
    snprintf(ad, cap, "cairn-vault-1:%s:%s", json_string_value(json_object_get(j, "id")), kind);
}

/* ---- key-encryption keys ------------------------------------------------ */

static int kek_passphrase(const char *pass, const unsigned char *salt, unsigned long long ops,
                          size_t mem, unsigned char kek[VAULT_KEY_BYTES], cn_err *err)
{
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > 64 || mem < crypto_pwhash_MEMLIMIT_MIN ||
        mem > ((size_t)4 << 30))
        return cn_fail(err, CN_EFORMAT, "key envelope: passphrase costs out of range");
    if (crypto_pwhash(kek, VAULT_KEY_BYTES, pass, strlen(pass), salt, ops, mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return cn_fail(err, CN_ENOMEM, "deriving the key from the passphrase: out of memory");
    return CN_OK;
}

/* A KEK from 64 hex digits of secret (a key file's, or the keyring's). */
static int kek_hex(const char *txt, size_t len, const char *what, bool file,
                   unsigned char kek[VAULT_KEY_BYTES], cn_err *err)
{
    unsigned char raw[VAULT_KEY_BYTES];
    size_t got = 0;
    while (len && (txt[len - 1] == '\n' || txt[len - 1] == '\r' || txt[len - 1] == ' '))
        len--;
    int rc = len == 2 * VAULT_KEY_BYTES &&
                     sodium_hex2bin(raw, sizeof raw, txt, len, NULL, &got, NULL) == 0 &&
                     got == sizeof raw
                 ? CN_OK
                 : cn_fail(err, CN_EFORMAT, "%s: not a Cairn key%s (64 hex digits)", what,
                           file ? " file" : "");
    if (rc == CN_OK)
        crypto_generichash(kek, VAULT_KEY_BYTES, (const unsigned char *)"cairn keyfile kek", 17,
                           raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    return rc;
}

static int kek_keyfile(const char *keyfile, unsigned char kek[VAULT_KEY_BYTES], cn_err *err)
{
    char *txt;
    size_t len;
    int rc = cn_read_file(keyfile, 4096, &txt, &len, err);
    if (rc != CN_OK)
        return rc;
    rc = kek_hex(txt, len, keyfile, true, kek, err);
    sodium_memzero(txt, len);
    free(txt);
    return rc;
}

/* ---- wrapping ----------------------------------------------------------- */

static int wrap_into(json_t *j, json_t *entry, const char *kind, const vault_key *dk,
                     const unsigned char kek[VAULT_KEY_BYTES])
{
    unsigned char nonce[NONCE_BYTES], c[WRAP_BYTES];
    char ad[128];
    ad_of(j, kind, ad, sizeof ad);
    randombytes_buf(nonce, sizeof nonce);
    unsigned long long cl;
    crypto_aead_xchacha20poly1305_ietf_encrypt(c, &cl, dk->k, VAULT_KEY_BYTES,
                                               (const unsigned char *)ad, strlen(ad), NULL, nonce,
                                               kek);
    json_object_set_new(entry, "nonce", hex_of(nonce, sizeof nonce));
    json_object_set_new(entry, "wrapped", hex_of(c, sizeof c));
    return CN_OK;
}

static int unwrap(const json_t *j, const json_t *entry, const unsigned char kek[VAULT_KEY_BYTES],
                  vault_key *dk)
{
    unsigned char nonce[NONCE_BYTES], c[WRAP_BYTES];
    const char *kind = json_string_value(json_object_get(entry, "kind"));
    if (!kind || hex_to(json_string_value(json_object_get(entry, "nonce")), nonce, sizeof nonce) ||
        hex_to(json_string_value(json_object_get(entry, "wrapped")), c, sizeof c))
        return CN_EFORMAT;
    char ad[128];
    ad_of(j, kind, ad, sizeof ad);
    unsigned long long ml;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(dk->k, &ml, NULL, c, sizeof c,
                                                   (const unsigned char *)ad, strlen(ad), nonce,
                                                   kek) != 0)
        return CN_EVERIFY;
    return CN_OK;
}

/* ---- public ------------------------------------------------------------- */

int vault_create(const char *path, vault_key **dk, cn_err *err)
{
    *dk = NULL;
    int rc = vault_init(err);
    if (rc != CN_OK)
        return rc;
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return cn_fail(err, CN_EINVAL, "%s: exists already; not overwritten", path);
    }
    vault_key *k = key_new();
    if (!k)
        return cn_fail(err, CN_ENOMEM, "out of (locked) memory");
    randombytes_buf(k->k, sizeof k->k);
    unsigned char id[16];
    randombytes_buf(id, sizeof id);
    json_t *j = json_object();
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "id", hex_of(id, sizeof id));
    json_object_set_new(j, "entries", json_array());
    rc = save(path, j, err);
    json_decref(j);
    if (rc != CN_OK) {
        vault_key_free(k);
        return rc;
    }
    *dk = k;
    return CN_OK;
}

static int add_entry(const char *path, const vault_key *dk, json_t *entry, const char *kind,
                     const unsigned char kek[VAULT_KEY_BYTES], cn_err *err)
{
    json_t *j;
    int rc = load(path, &j, err);
    if (rc != CN_OK) {
        json_decref(entry);
        return rc;
    }
    json_t *e = json_object_get(j, "entries");
    if (json_array_size(e) >= VAULT_MAX_ENTRIES) {
        json_decref(entry);
        json_decref(j);
        return cn_fail(err, CN_ELIMIT, "%s: %d ways to unlock already (the limit)", path,
                       VAULT_MAX_ENTRIES);
    }
    json_object_set_new(entry, "kind", json_string(kind));
    wrap_into(j, entry, kind, dk, kek);
    json_array_append_new(e, entry);
    rc = save(path, j, err);
    json_decref(j);
    return rc;
}

int vault_add_passphrase(const char *path, const vault_key *dk, const char *pass,
                         const vault_kdf *kdf, cn_err *err)
{
    int rc = vault_init(err);
    if (rc != CN_OK)
        return rc;
    if (!pass || !*pass)
        return cn_fail(err, CN_EINVAL, "an empty passphrase protects nothing");
    vault_kdf k = kdf && kdf->ops ? *kdf : vault_tune(0.5);
    unsigned char salt[SALT_BYTES], kek[VAULT_KEY_BYTES];
    randombytes_buf(salt, sizeof salt);
    if ((rc = kek_passphrase(pass, salt, k.ops, k.mem, kek, err)) != CN_OK)
        return rc;
    json_t *entry = json_object();
    json_object_set_new(entry, "label", json_string("passphrase"));
    json_object_set_new(entry, "salt", hex_of(salt, sizeof salt));
    json_object_set_new(entry, "ops", json_integer((json_int_t)k.ops));
    json_object_set_new(entry, "mem", json_integer((json_int_t)k.mem));
    rc = add_entry(path, dk, entry, "passphrase", kek, err);
    sodium_memzero(kek, sizeof kek);
    return rc;
}

int vault_add_keyfile(const char *path, const vault_key *dk, const char *keyfile, cn_err *err)
{
    int rc = vault_init(err);
    if (rc != CN_OK)
        return rc;
    unsigned char kek[VAULT_KEY_BYTES];
    if ((rc = kek_keyfile(keyfile, kek, err)) != CN_OK)
        return rc;
    json_t *entry = json_object();
    char label[4200];
    snprintf(label, sizeof label, "key file %s", keyfile);
    json_object_set_new(entry, "label", json_string(label));
    rc = add_entry(path, dk, entry, "keyfile", kek, err);
    sodium_memzero(kek, sizeof kek);
    return rc;
}

int vault_new_keyfile(const char *keyfile, cn_err *err)
{
    int rc = vault_init(err);
    if (rc != CN_OK)
        return rc;
    FILE *f = fopen(keyfile, "r");
    if (f) {
        fclose(f);
        return cn_fail(err, CN_EINVAL, "%s: exists already; not overwritten", keyfile);
    }
    unsigned char raw[VAULT_KEY_BYTES];
    char hex[2 * VAULT_KEY_BYTES + 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    /* written whole beside it, then linked in: never over another process's */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", keyfile, (long)getpid());
    rc = cn_write_atomic(tmp, hex, n, 0600, err);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(hex, sizeof hex);
    if (rc == CN_OK && link(tmp, keyfile) != 0)
        rc = errno == EEXIST ? cn_fail(err, CN_EINVAL, "%s: exists already; not overwritten", keyfile)
                             : cn_fail(err, CN_EIO, "%s: %s", keyfile, strerror(errno));
    unlink(tmp);
    return rc;
}

/* Try every entry of kind with a KEK from make(); the first that opens. */
static int unlock(const char *path, const char *kind, const char *secret, vault_key **dk,
                  int *which, cn_err *err)
{
    *dk = NULL;
    int rc = vault_init(err);
    if (rc != CN_OK)
        return rc;
    json_t *j;
    if ((rc = load(path, &j, err)) != CN_OK)
        return rc;
    vault_key *k = key_new();
    if (!k) {
        json_decref(j);
        return cn_fail(err, CN_ENOMEM, "out of (locked) memory");
    }
    json_t *e = json_object_get(j, "entries");
    int tried = 0, opened = -1;
    unsigned char kek[VAULT_KEY_BYTES];
    bool have_kek = false;
    if (strcmp(kind, "keyfile") == 0) { /* a missing or bad key file says so first */
        rc = kek_keyfile(secret, kek, err);
        have_kek = rc == CN_OK;
    } else if (strcmp(kind, "keyring") == 0) {
        rc = kek_hex(secret, strlen(secret), "the desktop keyring's item", false, kek, err);
        have_kek = rc == CN_OK;
    }
    for (size_t i = 0; i < json_array_size(e) && opened < 0 && rc == CN_OK; i++) {
        json_t *en = json_array_get(e, i);
        const char *ek = json_string_value(json_object_get(en, "kind"));
        if (!ek || strcmp(ek, kind) != 0)
            continue;
        tried++;
        if (strcmp(kind, "passphrase") == 0) {
            unsigned char salt[SALT_BYTES];
            if (hex_to(json_string_value(json_object_get(en, "salt")), salt, sizeof salt)) {
                rc = cn_fail(err, CN_EFORMAT, "%s: entry %zu is damaged", path, i);
                break;
            }
            rc = kek_passphrase(secret, salt,
                                (unsigned long long)json_integer_value(json_object_get(en, "ops")),
                                (size_t)json_integer_value(json_object_get(en, "mem")), kek, err);
        } else if (!have_kek) {
            rc = kek_keyfile(secret, kek, err);
            have_kek = rc == CN_OK;
        }
        if (rc != CN_OK)
            break;
        int u = unwrap(j, en, kek, k);
        if (u == CN_OK)
            opened = (int)i;
        else if (u == CN_EFORMAT)
            rc = cn_fail(err, CN_EFORMAT, "%s: entry %zu is damaged", path, i);
    }
    sodium_memzero(kek, sizeof kek);
    json_decref(j);
    if (rc == CN_OK && tried == 0)
        rc = cn_fail(err, CN_EVERIFY,
                     "%s: no %s is among the ways to unlock this library (`cairn key list`)", path,
                     strcmp(kind, "passphrase") == 0 ? "passphrase"
                     : strcmp(kind, "keyring") == 0  ? "desktop keyring"
                                                     : "key file");
    else if (rc == CN_OK && opened < 0)
        rc = cn_fail(err, CN_EVERIFY, "%s",
                     strcmp(kind, "passphrase") == 0 ? "wrong passphrase"
                     : strcmp(kind, "keyring") == 0
                         ? "the desktop keyring's key does not unlock this library"
                         : "wrong key file: it does not unlock this library");
    if (rc != CN_OK) {
        vault_key_free(k);
        return rc;
    }
    if (which)
        *which = opened;
    *dk = k;
    return CN_OK;
}

int vault_unlock_passphrase(const char *path, const char *pass, vault_key **dk, cn_err *err)
{
    return unlock(path, "passphrase", pass ? pass : "", dk, NULL, err);
}

int vault_unlock_keyfile(const char *path, const char *keyfile, vault_key **dk, cn_err *err)
{
    return unlock(path, "keyfile", keyfile, dk, NULL, err);
}

int vault_change_passphrase(const char *path, const char *old_pass, const char *new_pass,
                            const vault_kdf *kdf, cn_err *err)
{
    vault_key *dk;
    int which;
    int rc = unlock(path, "passphrase", old_pass ? old_pass : "", &dk, &which, err);
    if (rc != CN_OK)
        return rc;
    /* the new entry first, then the old one goes: never a moment without */
    rc = vault_add_passphrase(path, dk, new_pass, kdf, err);
    if (rc == CN_OK)
        rc = vault_remove(path, which, err);
    vault_key_free(dk);
    return rc;
}

int vault_list(const char *path, vault_list_fn fn, void *ctx, cn_err *err)
{
    json_t *j;
    int rc = load(path, &j, err);
    if (rc != CN_OK)
        return rc;
    json_t *e = json_object_get(j, "entries");
    for (size_t i = 0; i < json_array_size(e); i++) {
        json_t *en = json_array_get(e, i);
        const char *kind = json_string_value(json_object_get(en, "kind"));
        const char *label = json_string_value(json_object_get(en, "label"));
        fn(ctx, (int)i, kind ? kind : "?", label ? label : "");
    }
    int n = (int)json_array_size(e);
    json_decref(j);
    return n;
}

int vault_remove(const char *path, int i, cn_err *err)
{
    json_t *j;
    int rc = load(path, &j, err);
    if (rc != CN_OK)
        return rc;
    json_t *e = json_object_get(j, "entries");
    if (i < 0 || (size_t)i >= json_array_size(e))
        rc = cn_fail(err, CN_ENOTFOUND, "%s: no entry %d", path, i);
    else if (json_array_size(e) == 1)
        rc = cn_fail(err, CN_EINVAL,
                     "%s: this is the only way to unlock the library; add another first", path);
    else {
        json_array_remove(e, (size_t)i);
        rc = save(path, j, err);
    }
    json_decref(j);
    return rc;
}

int vault_read_id(const char *path, unsigned char id[VAULT_ID_BYTES], cn_err *err)
{
    json_t *j;
    int rc = load(path, &j, err);
    if (rc != CN_OK)
        return rc;
    if (hex_to(json_string_value(json_object_get(j, "id")), id, VAULT_ID_BYTES) != 0)
        rc = cn_fail(err, CN_EFORMAT, "%s: damaged key envelope (id)", path);
    json_decref(j);
    return rc;
}

int vault_has(const char *path, const char *kind)
{
    json_t *j;
    if (load(path, &j, NULL) != CN_OK)
        return 0;
    json_t *e = json_object_get(j, "entries");
    int n = 0;
    for (size_t i = 0; i < json_array_size(e); i++) {
        const char *k = json_string_value(json_object_get(json_array_get(e, i), "kind"));
        n += k && !strcmp(k, kind);
    }
    json_decref(j);
    return n;
}

static int id_hex_of(const char *path, char hex[2 * VAULT_ID_BYTES + 1], cn_err *err)
{
    unsigned char id[VAULT_ID_BYTES];
    int rc = vault_read_id(path, id, err);
    if (rc == CN_OK)
        sodium_bin2hex(hex, 2 * VAULT_ID_BYTES + 1, id, sizeof id);
    return rc;
}

int vault_add_keyring(const char *path, const vault_key *dk, const char *label, cn_err *err)
{
    char id[2 * VAULT_ID_BYTES + 1], hex[2 * VAULT_KEY_BYTES + 1];
    int rc = vault_init(err);
    if (!rc)
        rc = id_hex_of(path, id, err);
    if (rc)
        return rc;
    unsigned char raw[VAULT_KEY_BYTES], kek[VAULT_KEY_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    rc = kek_hex(hex, strlen(hex), "keyring", false, kek, err);
    /* the keyring first: an entry whose secret is nowhere would be dead */
    if (!rc)
        rc = vault_keyring_store(id, label, hex, err);
    if (!rc) {
        json_t *entry = json_object();
        json_object_set_new(entry, "label", json_string("desktop keyring"));
        rc = add_entry(path, dk, entry, "keyring", kek, err);
    }
    sodium_memzero(hex, sizeof hex);
    sodium_memzero(kek, sizeof kek);
    return rc;
}

int vault_unlock_keyring(const char *path, vault_key **dk, cn_err *err)
{
    *dk = NULL;
    char id[2 * VAULT_ID_BYTES + 1], hex[256];
    int rc = vault_init(err);
    if (!rc)
        rc = id_hex_of(path, id, err);
    if (!rc)
        rc = vault_keyring_lookup(id, hex, sizeof hex, err);
    if (!rc)
        rc = unlock(path, "keyring", hex, dk, NULL, err);
    sodium_memzero(hex, sizeof hex);
    return rc;
}

void vault_forget_keyring(const char *path)
{
    char id[2 * VAULT_ID_BYTES + 1];
    if (id_hex_of(path, id, NULL) == CN_OK)
        vault_keyring_clear(id);
}
