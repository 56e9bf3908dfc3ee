/*
** crypt.c: an encrypted library (issue 15) — unlocking it when it opens,
** creating one, converting a library either way, and the ways to unlock.
**
** Files in the data directory:
**   library.keys           the key envelope (vault.h): present = encrypted
**   library.keys.new       an encryption in progress (its new envelope)
**   library.keys.old       a decryption in progress (the old envelope)
**   library.db.encrypting  the copies being written
**   library.db.decrypting
**
** A conversion writes and checks the copy, then swaps it in with renames in
** an order that lib_open can finish or undo after a crash at any point:
**   encrypt: rename copy -> library.db, then keys.new -> keys
**   decrypt: rename keys -> keys.old, copy -> library.db, unlink keys.old
** so that whether library.db carries the encryption marker decides which
** envelope belongs with it.
*/
#include "library/lib_int.h"
#include "vault/vault.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static lib_unlock unlock_opts;

void lib_set_unlock(const lib_unlock *u)
{
    if (u)
        unlock_opts = *u;
    else
        memset(&unlock_opts, 0, sizeof unlock_opts);
}

static void path_of(char *out, size_t cap, const char *home, const char *name)
{
    snprintf(out, cap, "%s/%s", home, name);
}

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* Does the database file at path carry the encryption marker? */
static bool db_marked(const char *path)
{
    unsigned char h[100];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    return n == (ssize_t)sizeof h && memcmp(h + 72, VAULT_VFS_MARK, 8) == 0;
}

static void unlink_db(const char *path)
{
    char side[PATH_MAX + 32];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-journal", path);
    unlink(side);
}

/*
** Finish or undo a conversion a crash interrupted, before the library is
** opened.
*/
static int recover(const char *home, cn_err *err)
{
    char db[PATH_MAX + 32], keys[PATH_MAX + 32], knew[PATH_MAX + 32], kold[PATH_MAX + 32],
        tmp[PATH_MAX + 32];
    path_of(db, sizeof db, home, "library.db");
    path_of(keys, sizeof keys, home, "library.keys");
    path_of(knew, sizeof knew, home, "library.keys.new");
    path_of(kold, sizeof kold, home, "library.keys.old");
    /* only with a conversion's leftovers, which no open library has: closing
    ** a descriptor of library.db of our own drops every fcntl lock this
    ** process's connections hold on it */
    bool pending = exists(knew) || exists(kold);
    bool marked = pending && db_marked(db);
    if (exists(knew)) {
        if (marked && !exists(keys)) { /* the encrypted copy is in place */
            if (rename(knew, keys) != 0)
                return cn_fail(err, CN_EIO, "%s: %s", knew, strerror(errno));
        } else
            unlink(knew);
        cn_fsync_parent(keys, NULL);
    }
    if (exists(kold)) {
        if (marked && !exists(keys)) { /* the decrypted copy never went in */
            if (rename(kold, keys) != 0)
                return cn_fail(err, CN_EIO, "%s: %s", kold, strerror(errno));
        } else if (!marked)
            unlink(kold);
        cn_fsync_parent(keys, NULL);
    }
    path_of(tmp, sizeof tmp, home, "library.db.encrypting");
    if (exists(tmp))
        unlink_db(tmp);
    path_of(tmp, sizeof tmp, home, "library.db.decrypting");
    if (exists(tmp))
        unlink_db(tmp);
    return CN_OK;
}

/* ---- unlocking ---------------------------------------------------------------- */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/*
** The data key of the envelope at keys, from (in this order) the key file of
** --key-file or $CAIRN_KEY_FILE, the passphrase in $CAIRN_PASSPHRASE, or a
** passphrase asked on the terminal. how names the way, for doctor.
*/
static int unlock(const char *keys, vault_key **dk, char *how, size_t how_cap, cn_err *err)
{
    const char *kf = unlock_opts.key_file ? unlock_opts.key_file : env("CAIRN_KEY_FILE");
    if (kf) {
        snprintf(how, how_cap, "key file %s", kf);
        return vault_unlock_keyfile(keys, kf, dk, err);
    }
    const char *pass = env("CAIRN_PASSPHRASE");
    if (pass) {
        snprintf(how, how_cap, "passphrase from $CAIRN_PASSPHRASE");
        return vault_unlock_passphrase(keys, pass, dk, err);
    }
    /* the desktop keyring, when it is among the ways: a logged-in user is
    ** not asked */
    char kr_why[sizeof err->msg] = "";
    if (vault_has(keys, "keyring")) {
        cn_err ke = {0};
        if (vault_unlock_keyring(keys, dk, &ke) == CN_OK) {
            snprintf(how, how_cap, "the desktop keyring");
            return CN_OK;
        }
        snprintf(kr_why, sizeof kr_why, "%s", ke.msg);
        if (!vault_has(keys, "passphrase"))
            return cn_fail(err, CN_EVERIFY,
                           "%s: %s; give a key file with --key-file FILE, or a passphrase if the "
                           "library has one",
                           keys, kr_why);
    }
    if (unlock_opts.prompt) {
        char buf[1024];
        int got = unlock_opts.prompt(unlock_opts.ctx, "Passphrase for the library: ", buf,
                                     sizeof buf);
        if (got == 0) {
            snprintf(how, how_cap, "passphrase");
            int rc = vault_unlock_passphrase(keys, buf, dk, err);
            sodium_memzero(buf, sizeof buf);
            return rc;
        }
    }
    return cn_fail(err, CN_EVERIFY,
                   "%s: the library is encrypted; give its key file with --key-file FILE or "
                   "$CAIRN_KEY_FILE, its passphrase in $CAIRN_PASSPHRASE, or run from a terminal "
                   "to be asked%s%s",
                   keys, kr_why[0] ? " (" : "", kr_why[0] ? kr_why : "");
}

static int new_envelope(const char *path, const lib_enroll *e, vault_key **dk, cn_err *err);
static int unlock_cached(const char *keys, vault_key **dk, char *how, size_t how_cap, cn_err *err);

/*
** $CAIRN_ENCRYPT=1: a library created now is created encrypted, with the key
** file of --key-file or $CAIRN_KEY_FILE (made if it does not exist) as its
** way to unlock. For servers and scripts that make libraries, and for
** running the whole test suite on encrypted libraries.
*/
static int encrypt_new(const char *home, const char *db, const char *keys, cn_err *err)
{
    struct stat st;
    if (stat(db, &st) == 0 && st.st_size > 0)
        return CN_OK; /* an existing plain library stays as it is */
    const char *kf = unlock_opts.key_file ? unlock_opts.key_file : env("CAIRN_KEY_FILE");
    if (!kf)
        return cn_fail(err, CN_EINVAL,
                       "%s: $CAIRN_ENCRYPT=1 makes new libraries encrypted, and needs a key file "
                       "(--key-file FILE or $CAIRN_KEY_FILE)",
                       home);
    /* several processes may make the library at once: each writes its own
    ** envelope, and the first to link it in place wins */
    char knew[PATH_MAX + 64];
    snprintf(knew, sizeof knew, "%s/library.keys.%ld", home, (long)getpid());
    lib_enroll e = {.key_file = kf};
    vault_key *dk = NULL;
    int rc = vault_init(err);
    if (!rc && stat(kf, &st) != 0) {
        cn_err ignored = {0};
        vault_new_keyfile(kf, &ignored); /* or another process just made it */
    }
    if (!rc)
        rc = new_envelope(knew, &e, &dk, err);
    vault_key_free(dk);
    if (!rc) {
        if (link(knew, keys) != 0 && errno != EEXIST)
            rc = cn_fail(err, CN_EIO, "%s: %s", keys, strerror(errno));
        unlink(knew);
        cn_fsync_parent(keys, NULL);
    }
    return rc;
}

/* Open the library in home; an encrypted one with dk_given (a key just made)
** or else unlocked by the means of unlock(). */
static int open_lib(lib **out, const char *home, const vault_key *dk_given, cn_err *err)
{
    *out = NULL;
    lib *l = cn_calloc(1, sizeof *l);
    if (!l)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    int rc = cn_data_dir(l->home, sizeof l->home, home, err);
    if (!rc)
        rc = cn_mkdirs(l->home, err);
    if (!rc)
        rc = recover(l->home, err);
    char keys[PATH_MAX + 32];
    path_of(l->db, sizeof l->db, l->home, "library.db");
    path_of(keys, sizeof keys, l->home, "library.keys");
    if (!rc && !exists(keys) && env("CAIRN_ENCRYPT") && !strcmp(env("CAIRN_ENCRYPT"), "1"))
        rc = encrypt_new(l->home, l->db, keys, err);
    bool enc = !rc && exists(keys);
    unsigned char id[VAULT_ID_BYTES];
    if (enc) {
        rc = vault_init(err);
        if (!rc)
            rc = vault_read_id(keys, id, err);
        if (!rc && dk_given) {
            if (!(l->dk = sodium_malloc(sizeof *l->dk)))
                rc = cn_fail(err, CN_ENOMEM, "out of memory");
            else
                memcpy(l->dk->k, dk_given->k, VAULT_KEY_BYTES);
            snprintf(l->unlocked_by, sizeof l->unlocked_by, "the key just made");
        } else if (!rc)
            rc = unlock_cached(keys, &l->dk, l->unlocked_by, sizeof l->unlocked_by, err);
        if (!rc)
            rc = vault_vfs_attach(l->db, l->dk, id, err);
        l->attached = !rc;
    }
    if (!rc)
        rc = store_open_enc(&l->st, l->db, enc, err);
    if (rc) {
        lib_close(l);
        return rc;
    }
    *out = l;
    return CN_OK;
}

int lib_open(lib **out, const char *home, cn_err *err) { return open_lib(out, home, NULL, err); }

/*
** The data key last unlocked in this process, with the envelope it came
** from: the server opens several handles of one library, and each would
** otherwise ask for the passphrase (and spend half a second on Argon2id).
** Reused only while the envelope file is the same one, unchanged.
*/
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char keys[PATH_MAX + 32];
    struct stat st;
    vault_key *dk;
    char how[300];
} cache;

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int unlock_cached(const char *keys, vault_key **dk, char *how, size_t how_cap, cn_err *err)
{
    struct stat st;
    if (stat(keys, &st) != 0)
        return cn_fail(err, CN_EIO, "%s: %s", keys, strerror(errno));
    pthread_mutex_lock(&cache_mu);
    if (cache.dk && !strcmp(cache.keys, keys) && same_file(&cache.st, &st)) {
        *dk = sodium_malloc(sizeof **dk);
        if (*dk) {
            memcpy((*dk)->k, cache.dk->k, VAULT_KEY_BYTES);
            snprintf(how, how_cap, "%s", cache.how);
        }
        pthread_mutex_unlock(&cache_mu);
        return *dk ? CN_OK : cn_fail(err, CN_ENOMEM, "out of (locked) memory");
    }
    pthread_mutex_unlock(&cache_mu);
    int rc = unlock(keys, dk, how, how_cap, err);
    if (rc == CN_OK) {
        vault_key *copy = sodium_malloc(sizeof *copy);
        pthread_mutex_lock(&cache_mu);
        if (copy) {
            memcpy(copy->k, (*dk)->k, VAULT_KEY_BYTES);
            vault_key_free(cache.dk);
            cache.dk = copy;
            cache.st = st;
            snprintf(cache.keys, sizeof cache.keys, "%s", keys);
            snprintf(cache.how, sizeof cache.how, "%s", how);
        }
        pthread_mutex_unlock(&cache_mu);
    }
    return rc;
}

void lib_close(lib *l)
{
    if (!l)
        return;
    lib_drop_encoder(l);
    store_close(l->st);
    if (l->attached)
        vault_vfs_detach(l->db);
    vault_key_free(l->dk);
    free(l);
}

bool lib_encrypted(const lib *l, const char **how)
{
    if (how)
        *how = l->unlocked_by;
    return l->dk != NULL;
}

/* ---- enrolling, creating, converting ------------------------------------------ */

static int enroll(const char *keys, const vault_key *dk, const lib_enroll *e, cn_err *err)
{
    if (!e->passphrase && !e->key_file && !e->new_key_file && !e->keyring)
        return cn_fail(err, CN_EINVAL,
                       "no way to unlock the library given: a passphrase, --key-file FILE, "
                       "--new-key-file FILE or --keyring");
    int rc = CN_OK;
    if (e->new_key_file)
        rc = vault_new_keyfile(e->new_key_file, err);
    if (!rc && e->new_key_file)
        rc = vault_add_keyfile(keys, dk, e->new_key_file, err);
    if (!rc && e->key_file)
        rc = vault_add_keyfile(keys, dk, e->key_file, err);
    if (!rc && e->passphrase)
        rc = vault_add_passphrase(keys, dk, e->passphrase, e->kdf, err);
    if (!rc && e->keyring) {
        char label[PATH_MAX + 40];
        const char *slash = strrchr(keys, '/');
        snprintf(label, sizeof label, "Cairn library %.*s", slash ? (int)(slash - keys) : 0, keys);
        rc = vault_add_keyring(keys, dk, label, err);
    }
    return rc;
}

/* A new envelope at path with e's ways to unlock; *dk its data key. */
static int new_envelope(const char *path, const lib_enroll *e, vault_key **dk, cn_err *err)
{
    unlink(path);
    int rc = vault_init(err);
    if (!rc)
        rc = vault_create(path, dk, err);
    if (!rc)
        rc = enroll(path, *dk, e, err);
    if (rc) {
        unlink(path);
        vault_key_free(*dk);
        *dk = NULL;
    }
    return rc;
}

/* The files of a library's conversion (see the top of this file). */
typedef struct conv_paths {
    char home[PATH_MAX];
    char db[PATH_MAX + 32], keys[PATH_MAX + 32], knew[PATH_MAX + 32], kold[PATH_MAX + 32];
    char encrypting[PATH_MAX + 32], decrypting[PATH_MAX + 32];
} conv_paths;

/* Home resolved, its paths, and a conversion a crash interrupted finished
** or undone. */
static int prepare(const char *home_opt, conv_paths *p, cn_err *err)
{
    int rc = cn_data_dir(p->home, sizeof p->home, home_opt, err);
    if (!rc)
        rc = recover(p->home, err);
    path_of(p->db, sizeof p->db, p->home, "library.db");
    path_of(p->keys, sizeof p->keys, p->home, "library.keys");
    path_of(p->knew, sizeof p->knew, p->home, "library.keys.new");
    path_of(p->kold, sizeof p->kold, p->home, "library.keys.old");
    path_of(p->encrypting, sizeof p->encrypting, p->home, "library.db.encrypting");
    path_of(p->decrypting, sizeof p->decrypting, p->home, "library.db.decrypting");
    return rc;
}

int lib_init_encrypted(const char *home_opt, const lib_enroll *e, char *home_out,
                       size_t home_cap, cn_err *err)
{
    conv_paths p;
    int rc = prepare(home_opt, &p, err);
    if (!rc)
        rc = cn_mkdirs(p.home, err);
    if (rc)
        return rc;
    const char *home = p.home, *db = p.db, *keys = p.keys, *knew = p.knew;
    snprintf(home_out, home_cap, "%s", home);
    struct stat st;
    if (exists(keys))
        return cn_fail(err, CN_EINVAL, "%s: the library is encrypted already", home);
    if (stat(db, &st) == 0 && st.st_size > 0)
        return cn_fail(err, CN_EINVAL,
                       "%s: a library exists there already; `cairn encrypt` converts it", db);
    unlink_db(db);
    vault_key *dk = NULL;
    rc = new_envelope(knew, e, &dk, err);
    if (rc)
        return rc;
    /* the envelope goes in place first: library.db is created through the
    ** VFS at the first open, and a crash before that leaves no database */
    if (rename(knew, keys) != 0)
        rc = cn_fail(err, CN_EIO, "%s: %s", keys, strerror(errno));
    cn_fsync_parent(keys, NULL);
    lib *l = NULL;
    if (!rc)
        rc = open_lib(&l, home, dk, err);
    lib_close(l);
    vault_key_free(dk);
    return rc;
}


int lib_encrypt(const char *home_opt, const lib_enroll *e, cn_err *err)
{
    conv_paths p;
    int rc = prepare(home_opt, &p, err);
    if (rc)
        return rc;
    const char *home = p.home, *db = p.db, *keys = p.keys, *knew = p.knew, *tmp = p.encrypting;
    if (exists(keys)) {
        /* an encryption cut short after the swap may have left upload
        ** copies plain: seal them now */
        lib *l = NULL;
        rc = open_lib(&l, home, NULL, err);
        int n = rc ? rc : lib_convert_uploads(l, true, err);
        lib_close(l);
        if (n < 0)
            return n;
        if (n == 0)
            return cn_fail(err, CN_EINVAL, "%s: the library is encrypted already", home);
        return CN_OK;
    }
    if (!exists(db))
        return cn_fail(err, CN_ENOTFOUND,
                       "%s: no library there (`cairn init --encrypt` makes a new, encrypted one)",
                       db);
    vault_key *dk = NULL;
    unsigned char id[VAULT_ID_BYTES];
    rc = new_envelope(knew, e, &dk, err);
    if (!rc)
        rc = vault_read_id(knew, id, err);
    if (!rc)
        rc = vault_vfs_attach_ex(tmp, dk, id, true, err);
    if (!rc) {
        rc = store_copy(db, false, tmp, true, err);
        vault_vfs_detach(tmp);
    }
    if (rc) {
        vault_key_free(dk);
        unlink(knew);
        return rc;
    }
    /* the plaintext file: kept open to be overwritten once it is replaced */
    int old = open(db, O_RDWR | O_CLOEXEC);
    if (rename(tmp, db) != 0)
        rc = cn_fail(err, CN_EIO, "%s: cannot put the encrypted copy in place: %s", db,
                     strerror(errno));
    cn_fsync_parent(db, NULL);
    if (!rc && rename(knew, keys) != 0)
        rc = cn_fail(err, CN_EIO, "%s: %s (the next open finishes the job)", keys,
                     strerror(errno));
    cn_fsync_parent(keys, NULL);
    if (!rc && old >= 0 && store_wipe_fd(old) != 0)
        rc = cn_fail(err, CN_EIO, "%s: the library is encrypted, but overwriting the old "
                     "plaintext file failed: %s", db, strerror(errno));
    if (old >= 0)
        close(old);
    /* then the copies of uploaded files, each sealed in place (a crash
    ** leaves some plain: `cairn encrypt` again seals them) */
    if (!rc) {
        lib *l = NULL;
        rc = open_lib(&l, home, dk, err);
        int n = rc ? rc : lib_convert_uploads(l, true, err);
        rc = n < 0 ? n : CN_OK;
        lib_close(l);
    }
    vault_key_free(dk);
    return rc;
}

int lib_decrypt(const char *home_opt, cn_err *err)
{
    conv_paths p;
    char how[300];
    int rc = prepare(home_opt, &p, err);
    if (rc)
        return rc;
    const char *home = p.home, *db = p.db, *keys = p.keys, *kold = p.kold, *tmp = p.decrypting;
    if (!exists(keys))
        return cn_fail(err, CN_EINVAL, "%s: the library is not encrypted", home);
    vault_key *dk = NULL;
    unsigned char id[VAULT_ID_BYTES];
    rc = vault_init(err);
    if (!rc)
        rc = vault_read_id(keys, id, err);
    if (!rc)
        rc = unlock(keys, &dk, how, sizeof how, err);
    /* the copies of uploaded files first, unsealed in place while the
    ** library is still encrypted (plain copies read in either) */
    if (!rc) {
        lib *l = NULL;
        rc = open_lib(&l, home, dk, err);
        int n = rc ? rc : lib_convert_uploads(l, false, err);
        rc = n < 0 ? n : CN_OK;
        lib_close(l);
    }
    if (!rc)
        rc = vault_vfs_attach(db, dk, id, err);
    if (!rc) {
        rc = store_copy(db, true, tmp, false, err);
        vault_vfs_detach(db);
    }
    vault_key_free(dk);
    if (rc)
        return rc;
    if (rename(keys, kold) != 0)
        return cn_fail(err, CN_EIO, "%s: %s", keys, strerror(errno));
    cn_fsync_parent(keys, NULL);
    if (rename(tmp, db) != 0)
        return cn_fail(err, CN_EIO, "%s: cannot put the decrypted copy in place: %s (the next "
                       "open puts the key envelope back)", db, strerror(errno));
    cn_fsync_parent(db, NULL);
    if (vault_has(kold, "keyring"))
        vault_forget_keyring(kold);
    unlink(kold);
    cn_fsync_parent(kold, NULL);
    return CN_OK;
}

/* ---- the ways to unlock -------------------------------------------------------- */

static int keys_path(const char *home_opt, char *keys, size_t cap, cn_err *err)
{
    conv_paths p;
    int rc = prepare(home_opt, &p, err);
    if (rc)
        return rc;
    snprintf(keys, cap, "%s", p.keys);
    if (!exists(keys))
        return cn_fail(err, CN_EINVAL, "%s: the library is not encrypted (`cairn encrypt`)",
                       p.home);
    return vault_init(err);
}

int lib_key_list(const char *home_opt, vault_list_fn fn, void *ctx, cn_err *err)
{
    char keys[PATH_MAX + 32];
    int rc = keys_path(home_opt, keys, sizeof keys, err);
    return rc ? rc : vault_list(keys, fn, ctx, err);
}

int lib_key_add(const char *home_opt, const lib_enroll *e, cn_err *err)
{
    char keys[PATH_MAX + 32], how[300];
    vault_key *dk = NULL;
    int rc = keys_path(home_opt, keys, sizeof keys, err);
    if (!rc)
        rc = unlock(keys, &dk, how, sizeof how, err);
    if (!rc)
        rc = enroll(keys, dk, e, err);
    vault_key_free(dk);
    return rc;
}

int lib_key_remove(const char *home_opt, int i, cn_err *err)
{
    char keys[PATH_MAX + 32], how[300];
    vault_key *dk = NULL;
    /* only someone who can unlock the library may take a way out */
    int rc = keys_path(home_opt, keys, sizeof keys, err);
    if (!rc)
        rc = unlock(keys, &dk, how, sizeof how, err);
    vault_key_free(dk);
    int had = rc ? 0 : vault_has(keys, "keyring");
    if (!rc)
        rc = vault_remove(keys, i, err);
    if (!rc && had && !vault_has(keys, "keyring"))
        vault_forget_keyring(keys); /* its secret leaves the keyring too */
    return rc;
}

int lib_key_passwd(const char *home_opt, const char *old_pass, const char *new_pass,
                   const vault_kdf *kdf, cn_err *err)
{
    char keys[PATH_MAX + 32];
    int rc = keys_path(home_opt, keys, sizeof keys, err);
    return rc ? rc : vault_change_passphrase(keys, old_pass, new_pass, kdf, err);
}
