/*
** upload.c: the copies of uploaded files the library keeps (home/uploads/),
** sealed when the library is encrypted (issue 15).
**
** A sealed copy: "CAIRNUP1", libsodium's secretstream header (24 bytes),
** then the file in chunks of UP_CHUNK bytes, each sealed with
** XChaCha20-Poly1305 (17 bytes more); the last chunk, shorter or empty,
** carries the FINAL tag, so a copy cut short is an error, not a shorter
** document. The key is derived from the library's data key
** (crypto_kdf, context "cairnupl"); every file has its own random header.
** A copy without the magic is a plain file (a library that was not
** encrypted when it was uploaded): read as it is.
*/
#include "library/lib_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UP_MAGIC "CAIRNUP1"
#define UP_MAGIC_LEN 8
#define UP_CHUNK 65536
#define UP_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define UP_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES

struct lib_sealkey {
    unsigned char k[crypto_secretstream_xchacha20poly1305_KEYBYTES];
};

lib_sealkey *lib_seal_key(const lib *l)
{
    if (!l->dk)
        return NULL;
    lib_sealkey *k = sodium_malloc(sizeof *k);
    if (k && crypto_kdf_derive_from_key(k->k, sizeof k->k, 1, "cairnupl", l->dk->k) != 0) {
        sodium_free(k);
        k = NULL;
    }
    return k;
}

void lib_seal_key_free(lib_sealkey *k)
{
    if (k)
        sodium_free(k);
}

struct lib_upfile {
    FILE *f;
    bool sealed;
    size_t n; /* plaintext bytes waiting in buf */
    crypto_secretstream_xchacha20poly1305_state st;
    unsigned char buf[UP_CHUNK];
    unsigned char out[UP_CHUNK + UP_ABYTES];
    char path[];
};

int lib_upfile_create(const lib_sealkey *k, const char *path, lib_upfile **out, cn_err *err)
{
    *out = NULL;
    size_t pl = strlen(path) + 1;
    /* locked memory: the buffer holds plaintext, the state a key. (sodium_malloc
    ** aligns the end of a block on its guard page: the size is rounded up to
    ** keep the start aligned too.) */
    size_t size = (sizeof(lib_upfile) + pl + 15) & ~(size_t)15;
    lib_upfile *u = k ? sodium_malloc(size) : malloc(size);
    if (!u)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    memset(u, 0, sizeof *u);
    memcpy(u->path, path, pl);
    u->sealed = k != NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    u->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!u->f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        k ? sodium_free(u) : free(u);
        return cn_fail(err, CN_EIO, "cannot write %s: %s", path, strerror(e));
    }
    if (k) {
        unsigned char hdr[UP_HEADER];
        crypto_secretstream_xchacha20poly1305_init_push(&u->st, hdr, k->k);
        if (fwrite(UP_MAGIC, 1, UP_MAGIC_LEN, u->f) != UP_MAGIC_LEN ||
            fwrite(hdr, 1, sizeof hdr, u->f) != sizeof hdr) {
            lib_upfile_abort(u);
            return cn_fail(err, CN_EIO, "writing %s failed: %s", path, strerror(errno));
        }
    }
    *out = u;
    return CN_OK;
}

static int push(lib_upfile *u, unsigned char tag, cn_err *err)
{
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(&u->st, u->out, &clen, u->buf, u->n, NULL, 0, tag);
    sodium_memzero(u->buf, u->n);
    u->n = 0;
    if (fwrite(u->out, 1, (size_t)clen, u->f) != clen)
        return cn_fail(err, CN_EIO, "writing %s failed: %s", u->path, strerror(errno));
    return CN_OK;
}

int lib_upfile_write(lib_upfile *u, const void *data, size_t n, cn_err *err)
{
    if (!u->sealed)
        return n && fwrite(data, 1, n, u->f) != n
                   ? cn_fail(err, CN_EIO, "writing %s failed: %s", u->path, strerror(errno))
                   : CN_OK;
    const unsigned char *p = data;
    while (n) {
        if (u->n == UP_CHUNK) {
            int rc = push(u, 0, err);
            if (rc)
                return rc;
        }
        size_t take = CN_MIN(n, (size_t)UP_CHUNK - u->n);
        memcpy(u->buf + u->n, p, take);
        u->n += take, p += take, n -= take;
    }
    return CN_OK;
}

static void upfile_free(lib_upfile *u)
{
    if (u->sealed)
        sodium_free(u); /* wiped */
    else
        free(u);
}

int lib_upfile_close(lib_upfile *u, cn_err *err)
{
    int rc = u->sealed ? push(u, crypto_secretstream_xchacha20poly1305_TAG_FINAL, err) : CN_OK;
    /* the last buffered bytes are written now: a full disk shows here */
    if (fclose(u->f) != 0 && rc == CN_OK)
        rc = cn_fail(err, CN_EIO, "storing %s failed: %s", u->path, strerror(errno));
    upfile_free(u);
    return rc;
}

void lib_upfile_abort(lib_upfile *u)
{
    if (!u)
        return;
    fclose(u->f);
    unlink(u->path);
    upfile_free(u);
}

/* ---- reading ------------------------------------------------------------------ */

bool lib_upload_sealed(const unsigned char *head, size_t n)
{
    return n >= UP_MAGIC_LEN && memcmp(head, UP_MAGIC, UP_MAGIC_LEN) == 0;
}

int lib_open_sealed(const lib_sealkey *k, const char *path, const unsigned char *in, size_t len,
                    unsigned char **out, size_t *out_len, cn_err *err)
{
    *out = NULL, *out_len = 0;
    if (!k)
        return cn_fail(err, CN_EVERIFY, "%s: an encrypted upload copy, and the library is not "
                       "unlocked", path);
    if (len < UP_MAGIC_LEN + UP_HEADER + UP_ABYTES)
        return cn_fail(err, CN_EVERIFY, "%s: the encrypted upload copy is cut short", path);
    crypto_secretstream_xchacha20poly1305_state st;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&st, in + UP_MAGIC_LEN, k->k) != 0)
        return cn_fail(err, CN_EVERIFY, "%s: damaged encrypted upload copy (header)", path);
    size_t pos = UP_MAGIC_LEN + UP_HEADER, cap = len - pos, n = 0;
    unsigned char *m = malloc(cap ? cap : 1);
    if (!m)
        return cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    bool final = false;
    while (pos < len && !final) {
        size_t c = CN_MIN(len - pos, (size_t)UP_CHUNK + UP_ABYTES);
        unsigned long long mlen = 0;
        unsigned char tag = 0;
        if (crypto_secretstream_xchacha20poly1305_pull(&st, m + n, &mlen, &tag, in + pos, c, NULL,
                                                       0) != 0) {
            free(m);
            return cn_fail(err, CN_EVERIFY,
                           "%s: the encrypted upload copy fails authentication at byte %zu "
                           "(damaged, or changed by something other than Cairn)",
                           path, pos);
        }
        n += (size_t)mlen, pos += c;
        final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    }
    if (!final || pos != len) {
        sodium_memzero(m, n);
        free(m);
        return cn_fail(err, CN_EVERIFY, "%s: the encrypted upload copy is %s", path,
                       final ? "followed by extra bytes" : "cut short");
    }
    *out = m, *out_len = n;
    return CN_OK;
}

int lib_read_upload(const lib *l, const char *path, size_t max, char **out, size_t *out_len,
                    cn_err *err)
{
    char *raw;
    size_t len;
    int rc = cn_read_file(path, max + UP_MAGIC_LEN + UP_HEADER + (max / UP_CHUNK + 1) * UP_ABYTES,
                          &raw, &len, err);
    if (rc)
        return rc;
    if (!lib_upload_sealed((unsigned char *)raw, len)) {
        *out = raw, *out_len = len;
        return CN_OK;
    }
    lib_sealkey *k = lib_seal_key(l);
    unsigned char *m;
    rc = lib_open_sealed(k, path, (unsigned char *)raw, len, &m, out_len, err);
    lib_seal_key_free(k);
    free(raw);
    *out = (char *)m;
    return rc;
}

/* ---- converting the copies ------------------------------------------------------ */

/* Rewrite the upload copy at path sealed (seal) or plain, beside it then
** renamed over it; the old plaintext overwritten first when sealing. */
static int convert_one(const lib_sealkey *k, const char *path, bool seal, cn_err *err)
{
    char *raw;
    size_t len;
    int rc = cn_read_file(path, (size_t)1 << 34, &raw, &len, err);
    if (rc)
        return rc;
    bool sealed = lib_upload_sealed((unsigned char *)raw, len);
    if (sealed == seal) {
        free(raw);
        return 0; /* done already */
    }
    unsigned char *plain = (unsigned char *)raw;
    size_t plen = len;
    if (sealed) {
        rc = lib_open_sealed(k, path, (unsigned char *)raw, len, &plain, &plen, err);
        free(raw);
        if (rc)
            return rc;
    }
    /* beside it, named with a dot: never taken for an upload itself */
    char tmp[PATH_MAX + 340];
    const char *slash = strrchr(path, '/');
    snprintf(tmp, sizeof tmp, "%.*s/.converting-%s", (int)(slash - path), path, slash + 1);
    lib_upfile *u = NULL;
    rc = lib_upfile_create(seal ? k : NULL, tmp, &u, err);
    if (!rc)
        rc = lib_upfile_write(u, plain, plen, err);
    if (!rc) {
        fflush(u->f);
        fsync(fileno(u->f));
        rc = lib_upfile_close(u, err);
        u = NULL;
    }
    if (u)
        lib_upfile_abort(u);
    sodium_memzero(plain, plen);
    free(plain);
    int old = seal ? open(path, O_RDWR | O_CLOEXEC) : -1;
    if (!rc && rename(tmp, path) != 0)
        rc = cn_fail(err, CN_EIO, "%s: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    if (!rc && old >= 0)
        store_wipe_fd(old);
    if (old >= 0)
        close(old);
    return rc ? rc : 1;
}

int lib_convert_uploads(lib *l, bool seal, cn_err *err)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/" LIB_UPLOADS_DIR, l->home);
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* no uploads */
    lib_sealkey *k = lib_seal_key(l);
    int n = 0, rc = 0;
    for (struct dirent *e; rc >= 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        rc = convert_one(k, p, seal, err);
        if (rc > 0) {
            n++;
            /* the stored size, time and hash follow, so the next add does not
            ** read it again as a changed file */
            char hash[STORE_HASH_HEX + 1];
            int64_t size;
            if (stat(p, &st) == 0 && store_hash_file(p, hash, &size, err) == CN_OK)
                store_set_file_state(l->st, p, hash, size,
                                     (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                                     NULL);
        }
    }
    closedir(d);
    lib_seal_key_free(k);
    return rc < 0 ? rc : n;
}
