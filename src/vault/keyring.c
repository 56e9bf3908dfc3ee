/*
** keyring.c: the desktop keyring as a way to unlock (vault.h): a random
** secret kept by the Secret Service (GNOME Keyring, KWallet) through
** libsecret, under the envelope's id, so that a logged-in user is not asked
** for a passphrase. Nothing here runs unless an envelope has a keyring
** entry: a library without one never talks to D-Bus.
*/
#include "vault/vault.h"

#include <libsecret/secret.h>
#include <string.h>

static const SecretSchema schema = {
    "org.cairn.Library",
    SECRET_SCHEMA_NONE,
    {{"library", SECRET_SCHEMA_ATTRIBUTE_STRING}, {NULL, 0}},
    0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};

int vault_keyring_store(const char *id_hex, const char *label, const char *secret, cn_err *err)
{
    GError *e = NULL;
    gboolean ok = secret_password_store_sync(&schema, SECRET_COLLECTION_DEFAULT, label, secret,
                                             NULL, &e, "library", id_hex, NULL);
    int rc = ok ? CN_OK
                : cn_fail(err, CN_EIO, "cannot store the key in the desktop keyring: %s",
                          e ? e->message : "unknown error");
    if (e)
        g_error_free(e);
    return rc;
}

int vault_keyring_lookup(const char *id_hex, char *out, size_t cap, cn_err *err)
{
    GError *e = NULL;
    gchar *p = secret_password_lookup_sync(&schema, NULL, &e, "library", id_hex, NULL);
    int rc = CN_OK;
    if (e)
        rc = cn_fail(err, CN_EIO, "no desktop keyring to ask (%s)", e->message);
    else if (!p)
        rc = cn_fail(err, CN_ENOTFOUND, "the desktop keyring holds no key for this library");
    else if (strlen(p) + 1 > cap)
        rc = cn_fail(err, CN_EFORMAT, "the desktop keyring's item for this library is damaged");
    else
        memcpy(out, p, strlen(p) + 1);
    if (e)
        g_error_free(e);
    if (p)
        secret_password_free(p); /* wiped */
    return rc;
}

void vault_keyring_clear(const char *id_hex)
{
    secret_password_clear_sync(&schema, NULL, NULL, "library", id_hex, NULL);
}
