/*
** test_vault.c: the key envelope of an encrypted library (issue 15): a data
** key unwraps with each enrolled passphrase or key file and with nothing
** else; changing a passphrase keeps the key; a tampered or moved envelope
** fails naming the file; the last way to unlock cannot be removed.
*/
#include "test.h"
#include "vault/vault.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const vault_kdf fast = {1, (size_t)8 << 20}; /* tests: no half-second per try */

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", test_tmpdir(), name);
}

static void count_entry(void *ctx, int i, const char *kind, const char *label)
{
    (void)i;
    (void)kind;
    (void)label;
    ++*(int *)ctx;
}

TEST(vault_wraps_the_data_key_for_each_way_to_unlock)
{
    char env[600], kf[600], kf2[600];
    path_in(env, sizeof env, "lib.keys");
    path_in(kf, sizeof kf, "a.key");
    path_in(kf2, sizeof kf2, "b.key");
    vault_key *dk = NULL, *k2 = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(vault_create(env, &dk, &err), CN_OK);
    EXPECT_EQ_INT(vault_create(env, &k2, &err), CN_EINVAL); /* never overwritten */
    EXPECT_CONTAINS(err.msg, "exists already");
    struct stat st;
    EXPECT(stat(env, &st) == 0 && (st.st_mode & 0777) == 0600);
    EXPECT_EQ_INT(vault_add_passphrase(env, dk, "correct horse", &fast, &err), CN_OK);
    EXPECT_EQ_INT(vault_new_keyfile(kf, &err), CN_OK);
    EXPECT(stat(kf, &st) == 0 && (st.st_mode & 0777) == 0600);
    EXPECT_EQ_INT(vault_add_keyfile(env, dk, kf, &err), CN_OK);
    EXPECT_EQ_INT(vault_add_passphrase(env, dk, "", &fast, &err), CN_EINVAL);

    EXPECT_EQ_INT(vault_unlock_passphrase(env, "correct horse", &k2, &err), CN_OK);
    EXPECT(k2 && memcmp(k2->k, dk->k, VAULT_KEY_BYTES) == 0);
    vault_key_free(k2);
    EXPECT_EQ_INT(vault_unlock_keyfile(env, kf, &k2, &err), CN_OK);
    EXPECT(k2 && memcmp(k2->k, dk->k, VAULT_KEY_BYTES) == 0);
    vault_key_free(k2);

    EXPECT_EQ_INT(vault_unlock_passphrase(env, "correct horse!", &k2, &err), CN_EVERIFY);
    EXPECT_STR(err.msg, "wrong passphrase");
    EXPECT(k2 == NULL);
    EXPECT_EQ_INT(vault_new_keyfile(kf2, &err), CN_OK);
    EXPECT_EQ_INT(vault_unlock_keyfile(env, kf2, &k2, &err), CN_EVERIFY);
    EXPECT_CONTAINS(err.msg, "wrong key file");
    FILE *f = fopen(kf2, "w");
    fputs("not a key\n", f);
    fclose(f);
    EXPECT_EQ_INT(vault_unlock_keyfile(env, kf2, &k2, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "not a Cairn key file");

    /* a new passphrase rewraps the same key; the old one stops working */
    EXPECT_EQ_INT(vault_change_passphrase(env, "correct horse", "battery staple", &fast, &err),
                  CN_OK);
    EXPECT_EQ_INT(vault_unlock_passphrase(env, "correct horse", &k2, &err), CN_EVERIFY);
    EXPECT_EQ_INT(vault_unlock_passphrase(env, "battery staple", &k2, &err), CN_OK);
    EXPECT(k2 && memcmp(k2->k, dk->k, VAULT_KEY_BYTES) == 0);
    vault_key_free(k2);
    EXPECT_EQ_INT(vault_change_passphrase(env, "nope", "x", &fast, &err), CN_EVERIFY);

    /* the last way to unlock cannot go */
    int n = 0;
    EXPECT_EQ_INT(vault_list(env, count_entry, &n, &err), 2);
    EXPECT_EQ_INT(n, 2);
    EXPECT_EQ_INT(vault_remove(env, 0, &err), CN_OK);
    EXPECT_EQ_INT(vault_remove(env, 0, &err), CN_EINVAL);
    EXPECT_CONTAINS(err.msg, "the only way to unlock");
    EXPECT_EQ_INT(vault_remove(env, 5, &err), CN_ENOTFOUND);
    vault_key_free(dk);
}

TEST(vault_tampered_or_foreign_envelopes_fail)
{
    char env[600], other[600];
    path_in(env, sizeof env, "t.keys");
    path_in(other, sizeof other, "o.keys");
    vault_key *dk, *k2, *ko;
    cn_err err = {0};
    EXPECT_EQ_INT(vault_create(env, &dk, &err), CN_OK);
    EXPECT_EQ_INT(vault_add_passphrase(env, dk, "pw", &fast, &err), CN_OK);
    EXPECT_EQ_INT(vault_create(other, &ko, &err), CN_OK);
    EXPECT_EQ_INT(vault_add_passphrase(other, ko, "pw", &fast, &err), CN_OK);
    char *txt;
    size_t len;
    EXPECT_EQ_INT(cn_read_file(env, 1 << 20, &txt, &len, &err), CN_OK);
    /* flip one hex digit of the wrapped key */
    char *w = strstr(txt, "\"wrapped\": \"");
    EXPECT(w != NULL);
    if (w) {
        w += 12;
        *w = *w == 'a' ? 'b' : 'a';
        EXPECT_EQ_INT(cn_write_atomic(env, txt, len, 0600, &err), CN_OK);
        EXPECT_EQ_INT(vault_unlock_passphrase(env, "pw", &k2, &err), CN_EVERIFY);
    }
    free(txt);
    /* an entry moved from another library: its associated data names the other id */
    char *ot;
    EXPECT_EQ_INT(cn_read_file(other, 1 << 20, &ot, &len, &err), CN_OK);
    char *id = strstr(ot, "\"id\": \"");
    EXPECT(id != NULL);
    if (id) {
        memcpy(id + 7, "00000000", 8);
        EXPECT_EQ_INT(cn_write_atomic(other, ot, len, 0600, &err), CN_OK);
        EXPECT_EQ_INT(vault_unlock_passphrase(other, "pw", &k2, &err), CN_EVERIFY);
    }
    free(ot);
    /* not an envelope at all */
    EXPECT_EQ_INT(cn_write_atomic(env, "{\"version\": 2}", 14, 0600, &err), CN_OK);
    EXPECT_EQ_INT(vault_unlock_passphrase(env, "pw", &k2, &err), CN_EFORMAT);
    EXPECT_CONTAINS(err.msg, "t.keys: not a Cairn key envelope");
    vault_key_free(dk);
    vault_key_free(ko);
}

TEST(vault_tune_reaches_its_target)
{
    cn_err err = {0};
    EXPECT_EQ_INT(vault_init(&err), CN_OK);
    vault_kdf k = vault_tune(0.05);
    EXPECT(k.ops >= 1 && k.ops < 64);
    EXPECT(k.mem == ((size_t)64 << 20));
}
