/*
** vault: the keys of an encrypted library (issue 15), and nothing else. A
** random 256-bit data key encrypts the library; it is stored only wrapped
** (XChaCha20-Poly1305, libsodium) by key-encryption keys, one per way to
** unlock: a passphrase (Argon2id, parameters stored with it) or a key file
** (32 random bytes). The wrapped copies live in an envelope file beside the
** library ("library.keys", JSON, mode 0600, written atomically). Adding a
** way to unlock, removing one or changing a passphrase rewraps the data key
** only: the library itself is never re-encrypted for it.
**
** Keys in memory are in sodium_malloc'd pages (locked, guarded) and wiped
** when freed. The associated data of every wrap binds it to the envelope's
** random id and the entry's kind, so a wrapped key cannot be moved between
** libraries or entries unnoticed.
*/
#ifndef CN_VAULT_H
#define CN_VAULT_H

#include "base/base.h"

#define VAULT_KEY_BYTES 32
#define VAULT_MAX_ENTRIES 16

/* A data key, in locked memory. */
typedef struct vault_key {
    unsigned char k[VAULT_KEY_BYTES];
} vault_key;

/* Argon2id cost. 0s: the defaults (tuned at creation to about half a
** second here: vault_tune). */
typedef struct vault_kdf {
    unsigned long long ops;
    size_t mem;
} vault_kdf;

/* Argon2id parameters that take about target_s seconds on this machine
** (memory fixed at 64 MiB, passes raised until the time is reached). */
vault_kdf vault_tune(double target_s);

/* Start libsodium (idempotent). CN_EIO if it cannot. */
int vault_init(cn_err *err);

/* A new data key (random), and an envelope file at path with no way to
** unlock yet; refuses to overwrite an existing file. */
int vault_create(const char *path, vault_key **dk, cn_err *err);

/* Add a way to unlock to the envelope at path. kdf may be NULL (tuned). The
** label names the entry in vault_list ("passphrase", "key file /x/y"). */
int vault_add_passphrase(const char *path, const vault_key *dk, const char *pass,
                         const vault_kdf *kdf, cn_err *err);
int vault_add_keyfile(const char *path, const vault_key *dk, const char *keyfile, cn_err *err);

/* Write a new key file (32 random bytes as hex, mode 0600); refuses to
** overwrite. */
int vault_new_keyfile(const char *keyfile, cn_err *err);

/* Unwrap the data key. A wrong passphrase or key file is CN_EVERIFY with a
** message saying which ("wrong passphrase"); a damaged envelope CN_EFORMAT
** naming the file. */
int vault_unlock_passphrase(const char *path, const char *pass, vault_key **dk, cn_err *err);
int vault_unlock_keyfile(const char *path, const char *keyfile, vault_key **dk, cn_err *err);

/* Replace the passphrase old with new (the data key is only rewrapped). */
int vault_change_passphrase(const char *path, const char *old_pass, const char *new_pass,
                            const vault_kdf *kdf, cn_err *err);

/* The entries: their index, kind ("passphrase" or "keyfile") and label. */
typedef void (*vault_list_fn)(void *ctx, int i, const char *kind, const char *label);
int vault_list(const char *path, vault_list_fn fn, void *ctx, cn_err *err);

/* Remove entry i; the last one cannot go (the library would be lost). */
int vault_remove(const char *path, int i, cn_err *err);

void vault_key_free(vault_key *k);

/* ---- the desktop keyring (keyring.c, libsecret) --------------------------
** A random secret stored by the Secret Service under the envelope's id
** wraps the data key like a key file does; a logged-in user's keyring then
** unlocks the library without a question. */
int vault_add_keyring(const char *path, const vault_key *dk, const char *label, cn_err *err);
/* CN_ENOTFOUND when the keyring holds no item for this library, CN_EIO when
** there is no keyring to ask (no D-Bus session, no Secret Service). */
int vault_unlock_keyring(const char *path, vault_key **dk, cn_err *err);
/* Drop the keyring's item for the envelope at path (if any). */
void vault_forget_keyring(const char *path);
/* How many entries of kind ("passphrase", "keyfile", "keyring") path has. */
int vault_has(const char *path, const char *kind);
/* The Secret Service calls themselves; id_hex names the library. */
int vault_keyring_store(const char *id_hex, const char *label, const char *secret, cn_err *err);
int vault_keyring_lookup(const char *id_hex, char *out, size_t cap, cn_err *err);
void vault_keyring_clear(const char *id_hex);

/* The envelope's random id (it also binds the library's pages: vfs.c). */
#define VAULT_ID_BYTES 16
int vault_read_id(const char *path, unsigned char id[VAULT_ID_BYTES], cn_err *err);

/* ---- the encrypting SQLite VFS (vfs.c) ------------------------------------
**
** A database opened with the VFS named VAULT_VFS_NAME is sealed page by page
** with XChaCha20-Poly1305 under the data key attached for its path; so is its
** WAL. Temporary files stay in memory; rollback journals are refused. Before
** a new database is first written, SQLite must be told to reserve
** VAULT_VFS_RESERVE bytes per page (SQLITE_FCNTL_RESERVE_BYTES).
*/
#define VAULT_VFS_NAME "cairn-crypt"
#define VAULT_VFS_RESERVE 40
/* Bytes 72..80 of an encrypted database's readable header. */
#define VAULT_VFS_MARK "cairn-e1"

/* Register the VFS with SQLite (idempotent, thread-safe; not the default). */
int vault_vfs_register(cn_err *err);

/* Give the VFS the key of the database at db_path (counted: each attach
** needs a detach). Files of that database opened with the VFS use it. */
int vault_vfs_attach(const char *db_path, const vault_key *dk,
                     const unsigned char id[VAULT_ID_BYTES], cn_err *err);
/* The same for a scratch copy (cairn encrypt writes one beside the library):
** its rollback journal, used once to switch it to WAL, stays in memory, since
** a crash throws the copy away. */
int vault_vfs_attach_ex(const char *db_path, const vault_key *dk,
                        const unsigned char id[VAULT_ID_BYTES], bool scratch, cn_err *err);
void vault_vfs_detach(const char *db_path);

/* What the VFS last refused on this thread, naming the file and the page
** (SQLite reports only "disk I/O error"), or NULL; and clearing it. */
const char *vault_vfs_last_error(void);
void vault_vfs_clear_error(void);

#endif
