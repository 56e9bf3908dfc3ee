/*
** vfs.c: page-level authenticated encryption inside SQLite (see vault.h).
**
** A VFS shim over the default one, on the design of SQLite's cksumvfs and
** SQLCipher: SQLite is told to leave VAULT_VFS_RESERVE bytes free at the end
** of every page (SQLITE_FCNTL_RESERVE_BYTES), and this layer fills them with
** a random 24-byte nonce and the 16-byte Poly1305 tag of the page, encrypted
** with XChaCha20-Poly1305 under the library's data key.
**
** What each file looks like on disk:
**   main database  page 1: bytes 0..100 (SQLite's header: sizes, counters and
**                  cookies, no user text) stay readable, so that SQLite can
**                  learn the page size before it can decrypt anything; the
**                  header is authenticated with the page, and bytes 72..80
**                  (reserved by SQLite, always zero there) carry the marker
**                  VAULT_VFS_MARK that says "encrypted".
**                  every page: [text, encrypted][nonce 24][tag 16].
**   WAL            the 32-byte header and each frame's 24-byte header stay
**                  readable (page numbers, salts, checksums); each frame's
**                  page is sealed as above.
**   -shm           the WAL index: page and frame numbers only, passed through.
**   temporary      sorter and statement-journal files, temp tables: kept in
**                  this process's memory, never on disk.
**   rollback       refused: an encrypted library runs in WAL mode. Only the
**   journal        first transaction of an empty file (the one that switches
**                  it to WAL) has one, with no page in it, kept in memory.
**
** The associated data of a page is "cairn-vfs-1", the database's random id,
** the file kind and the page number, plus for page 1 its readable header and
** for a WAL frame its place in the file: a page moved to another place,
** another file or another library fails to authenticate. (An old version of
** a page put back in its own place is not detected: that needs a write
** counter kept elsewhere, and stealing a disk does not do it.)
**
** SQLite computes its WAL checksums over the plaintext. A frame whose page
** fails to authenticate while SQLite recovers the WAL is a torn write of a
** crash when nothing committed follows it, and is handed to SQLite as it is
** (its checksum then fails and SQLite stops there, as it does for a plain
** WAL); when a committed frame of the same generation follows, the WAL was
** damaged or tampered with, and the read fails. The same holds for a frame
** whose readable header is damaged (wal_chain_breaks).
*/
#include "vault/vault.h"

#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES      /* 16 */
#define DB_HDR 100                                          /* SQLite's file header */
#define MARK_OFF 72
#define WAL_HDR 32
#define FRAME_HDR 24
#define AD_MAX 160

_Static_assert(NONCE + TAG == VAULT_VFS_RESERVE, "reserve holds nonce and tag");

/* ---- the keys of the databases this process has open ------------------- */

typedef struct keyent {
    struct keyent *next;
    char *path; /* as SQLite names the main file (xFullPathname) */
    vault_key *key;
    unsigned char id[VAULT_ID_BYTES];
    int refs;
    bool scratch; /* a copy being made: may switch journal modes in memory */
} keyent;

static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static keyent *keys;
static sqlite3_vfs *parent;
static sqlite3_vfs crypt_vfs;
static _Thread_local char last_err[512];

const char *vault_vfs_last_error(void) { return last_err[0] ? last_err : NULL; }
void vault_vfs_clear_error(void) { last_err[0] = 0; }

static int set_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_err(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_err, sizeof last_err, fmt, ap);
    va_end(ap);
    return rc;
}

static int full_name(const char *path, char *out, int cap)
{
    return parent->xFullPathname(parent, path, cap, out) == SQLITE_OK ? 0 : -1;
}

int vault_vfs_attach(const char *db_path, const vault_key *dk,
                     const unsigned char id[VAULT_ID_BYTES], cn_err *err)
{
    return vault_vfs_attach_ex(db_path, dk, id, false, err);
}

int vault_vfs_attach_ex(const char *db_path, const vault_key *dk,
                        const unsigned char id[VAULT_ID_BYTES], bool scratch, cn_err *err)
{
    int rc = vault_vfs_register(err);
    if (rc != CN_OK)
        return rc;
    char name[4096];
    if (full_name(db_path, name, (int)sizeof name) != 0)
        return cn_fail(err, CN_EINVAL, "%s: cannot resolve the path", db_path);
    pthread_mutex_lock(&keys_mu);
    for (keyent *e = keys; e; e = e->next)
        if (!strcmp(e->path, name)) {
            bool same = !sodium_memcmp(e->key->k, dk->k, VAULT_KEY_BYTES) &&
                        !memcmp(e->id, id, VAULT_ID_BYTES);
            if (same)
                e->refs++;
            pthread_mutex_unlock(&keys_mu);
            return same ? CN_OK
                        : cn_fail(err, CN_EINVAL, "%s: already open with another key", db_path);
        }
    keyent *e = calloc(1, sizeof *e);
    vault_key *k = sodium_malloc(sizeof *k);
    char *p = strdup(name);
    if (!e || !k || !p) {
        pthread_mutex_unlock(&keys_mu);
        free(e), free(p);
        if (k)
            sodium_free(k);
        return cn_fail(err, CN_ENOMEM, "out of memory");
    }
    memcpy(k->k, dk->k, VAULT_KEY_BYTES);
    memcpy(e->id, id, VAULT_ID_BYTES);
    e->path = p, e->key = k, e->refs = 1, e->next = keys, e->scratch = scratch;
    keys = e;
    pthread_mutex_unlock(&keys_mu);
    return CN_OK;
}

void vault_vfs_detach(const char *db_path)
{
    char name[4096];
    if (!parent || full_name(db_path, name, (int)sizeof name) != 0)
        return;
    pthread_mutex_lock(&keys_mu);
    for (keyent **pp = &keys; *pp; pp = &(*pp)->next) {
        keyent *e = *pp;
        if (strcmp(e->path, name) != 0)
            continue;
        if (--e->refs == 0) {
            *pp = e->next;
            sodium_free(e->key);
            free(e->path);
            free(e);
        }
        break;
    }
    pthread_mutex_unlock(&keys_mu);
}

/* Copy the key of the database whose main file is name (n bytes of it);
** 1 if there is one (2 if it is a scratch copy), else 0. out may be NULL. */
static int key_of(const char *name, size_t n, vault_key *out, unsigned char id[VAULT_ID_BYTES])
{
    int found = 0;
    pthread_mutex_lock(&keys_mu);
    for (keyent *e = keys; e; e = e->next)
        if (strlen(e->path) == n && !memcmp(e->path, name, n)) {
            if (out) {
                memcpy(out->k, e->key->k, VAULT_KEY_BYTES);
                memcpy(id, e->id, VAULT_ID_BYTES);
            }
            found = e->scratch ? 2 : 1;
            break;
        }
    pthread_mutex_unlock(&keys_mu);
    return found;
}

/* ---- files ---------------------------------------------------------------- */

enum { K_DB, K_WAL, K_MEM };

typedef struct cfile {
    sqlite3_file base;
    sqlite3_file *real; /* the parent VFS's file, right after this struct */
    int kind;
    const char *name; /* for messages: SQLite keeps the string alive while open */
    vault_key *key;
    unsigned char id[VAULT_ID_BYTES];
    uint32_t pgsz;         /* 0 until learnt from the header */
    unsigned char *buf;    /* one page (and a frame header) of scratch */
    size_t buf_cap;
    unsigned char nonce_prefix[NONCE - 8]; /* random per open file ... */
    uint64_t nonce_count;                   /* ... then a counter: unique, no syscall */
    int64_t hdr_off;       /* WAL: the last frame header written, and where */
    int64_t ck_next;       /* WAL recovery: the frame the chain expects next */
    uint32_t ck[2];        /* ... SQLite's running checksum up to it */
    unsigned char ck_salts[8];
    bool ck_native;
    unsigned char hdr[FRAME_HDR];
    unsigned char *mem;    /* K_MEM: the contents */
    int64_t mem_len, mem_cap;
} cfile;

#define REAL_OFFSET ((sizeof(cfile) + 15) & ~(size_t)15)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t db_page_size(const unsigned char *h)
{
    uint32_t ps = (uint32_t)h[16] << 8 | h[17];
    return ps == 1 ? 65536 : ps;
}

static bool page_size_ok(uint32_t ps)
{
    return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

static int scratch(cfile *p, size_t n)
{
    if (p->buf_cap >= n)
        return 0;
    unsigned char *b = realloc(p->buf, n);
    if (!b)
        return -1;
    p->buf = b, p->buf_cap = n;
    return 0;
}

/* The associated data of one page. */
static size_t ad_of(const cfile *p, uint32_t pgno, const unsigned char *extra, size_t n_extra,
                    unsigned char ad[AD_MAX])
{
    size_t n = 0;
    memcpy(ad, "cairn-vfs-1", 11), n += 11;
    memcpy(ad + n, p->id, VAULT_ID_BYTES), n += VAULT_ID_BYTES;
    ad[n++] = p->kind == K_WAL ? 'W' : 'D';
    for (int i = 0; i < 4; i++)
        ad[n++] = (unsigned char)(pgno >> (8 * i));
    memcpy(ad + n, extra, n_extra), n += n_extra;
    return n;
}

/*
** Seal plain (len bytes, the page less its reserve and less any readable
** prefix) into out: ciphertext, then the nonce, then the tag.
*/
static void seal(cfile *p, const unsigned char *plain, size_t len, const unsigned char *ad,
                 size_t n_ad, unsigned char *out)
{
    unsigned char *nonce = out + len, *tag = out + len + NONCE;
    /* a nonce never repeats under one key: 128 random bits drawn when the
    ** file was opened, then a count of the pages sealed through it */
    memcpy(nonce, p->nonce_prefix, sizeof p->nonce_prefix);
    uint64_t c = p->nonce_count++;
    for (int i = 0; i < 8; i++)
        nonce[sizeof p->nonce_prefix + i] = (unsigned char)(c >> (8 * i));
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, tag, NULL, plain, len, ad, n_ad, NULL,
                                                        nonce, p->key->k);
}

static int open_sealed(const cfile *p, const unsigned char *in, size_t len, const unsigned char *ad,
                       size_t n_ad, unsigned char *out)
{
    return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL, in, len, in + len + NONCE,
                                                               ad, n_ad, in + len, p->key->k);
}

/* ---- main database -------------------------------------------------------- */

/* Page pgno of size ps, sealed in (on disk) to out (as SQLite sees it). */
static int db_open_page(cfile *p, uint32_t pgno, const unsigned char *in, unsigned char *out)
{
    uint32_t ps = p->pgsz, skip = pgno == 1 ? DB_HDR : 0;
    unsigned char ad[AD_MAX];
    size_t n_ad = ad_of(p, pgno, in, skip, ad);
    if (open_sealed(p, in + skip, ps - VAULT_VFS_RESERVE - skip, ad, n_ad, out + skip) != 0)
        return set_err(SQLITE_IOERR_DATA,
                       "%s: page %u fails authentication (damaged, or changed by something "
                       "other than Cairn)",
                       p->name, pgno);
    memcpy(out, in, skip);
    memset(out + ps - VAULT_VFS_RESERVE, 0, VAULT_VFS_RESERVE);
    return SQLITE_OK;
}

static int learn_db_page_size(cfile *p)
{
    if (p->pgsz)
        return SQLITE_OK;
    unsigned char h[DB_HDR];
    int rc = p->real->pMethods->xRead(p->real, h, DB_HDR, 0);
    if (rc == SQLITE_IOERR_SHORT_READ)
        return SQLITE_OK; /* a new, empty database */
    if (rc != SQLITE_OK)
        return rc;
    uint32_t ps = db_page_size(h);
    if (!page_size_ok(ps) || h[20] < VAULT_VFS_RESERVE)
        return set_err(SQLITE_IOERR_DATA, "%s: not an encrypted Cairn library (page size %u, %u "
                       "reserved bytes)", p->name, ps, h[20]);
    if (memcmp(h + MARK_OFF, VAULT_VFS_MARK, 8) != 0)
        return set_err(SQLITE_IOERR_DATA, "%s: not an encrypted Cairn library (no marker)",
                       p->name);
    p->pgsz = ps;
    return SQLITE_OK;
}

static int db_read(cfile *p, void *out, int amt, sqlite3_int64 off)
{
    /* SQLite reads the header alone to learn the page size and counters */
    if (off + amt <= DB_HDR)
        return p->real->pMethods->xRead(p->real, out, amt, off);
    int rc = learn_db_page_size(p);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t ps = p->pgsz;
    if (ps == 0) /* an empty file: nothing to decrypt */
        return p->real->pMethods->xRead(p->real, out, amt, off);
    if (scratch(p, 2 * (size_t)ps) != 0)
        return SQLITE_IOERR_NOMEM;
    unsigned char *o = out;
    while (amt > 0) {
        int64_t first = off - off % ps;
        uint32_t pgno = (uint32_t)(first / ps) + 1, in_page = (uint32_t)(off - first);
        int n = (int)CN_MIN((int64_t)amt, (int64_t)(ps - in_page));
        rc = p->real->pMethods->xRead(p->real, p->buf, (int)ps, first);
        if (rc == SQLITE_IOERR_SHORT_READ) {
            /* past the end: SQLite expects zeros; a page cut short is damage */
            bool empty = true;
            for (uint32_t i = 0; i < ps && empty; i++)
                empty = p->buf[i] == 0;
            if (!empty)
                return set_err(SQLITE_IOERR_DATA, "%s: page %u is cut short", p->name, pgno);
            memset(o, 0, (size_t)amt);
            return SQLITE_IOERR_SHORT_READ;
        }
        if (rc != SQLITE_OK)
            return rc;
        unsigned char *plain = p->buf + ps;
        rc = db_open_page(p, pgno, p->buf, plain);
        if (rc != SQLITE_OK)
            return rc;
        memcpy(o, plain + in_page, (size_t)n); /* (reads are whole pages but for the header) */
        o += n, off += n, amt -= n;
    }
    return SQLITE_OK;
}

static int db_write(cfile *p, const void *data, int amt, sqlite3_int64 off)
{
    const unsigned char *in = data;
    if (off == 0 && amt >= DB_HDR) {
        uint32_t ps = db_page_size(in);
        if (!page_size_ok(ps) || (uint32_t)amt != ps)
            return set_err(SQLITE_IOERR_WRITE, "%s: unexpected first page (%d bytes)", p->name, amt);
        if (in[20] < VAULT_VFS_RESERVE)
            return set_err(SQLITE_IOERR_WRITE, "%s: SQLite left %u bytes per page for encryption, "
                           "not %d", p->name, in[20], VAULT_VFS_RESERVE);
        p->pgsz = ps;
    }
    int rc = learn_db_page_size(p);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t ps = p->pgsz;
    if (!ps || (uint32_t)amt != ps || off % ps != 0)
        return set_err(SQLITE_IOERR_WRITE, "%s: a write of %d bytes at %lld is not one page",
                       p->name, amt, (long long)off);
    if (scratch(p, ps) != 0)
        return SQLITE_IOERR_NOMEM;
    uint32_t pgno = (uint32_t)(off / ps) + 1, skip = pgno == 1 ? DB_HDR : 0;
    unsigned char *out = p->buf;
    memcpy(out, in, skip);
    if (pgno == 1)
        memcpy(out + MARK_OFF, VAULT_VFS_MARK, 8);
    unsigned char ad[AD_MAX];
    size_t n_ad = ad_of(p, pgno, out, skip, ad);
    seal(p, in + skip, ps - VAULT_VFS_RESERVE - skip, ad, n_ad, out + skip);
    return p->real->pMethods->xWrite(p->real, out, (int)ps, off);
}

/* ---- WAL ------------------------------------------------------------------ */

static size_t wal_ad(const cfile *p, const unsigned char *fh, int64_t fo, unsigned char ad[AD_MAX])
{
    /* the page number in the frame's header, and where the frame is; not
    ** its salts or checksum, which SQLite writes as zeros first and fills in
    ** later when it rewrites a frame of the same transaction */
    unsigned char where[8];
    for (int i = 0; i < 8; i++)
        where[i] = (unsigned char)((uint64_t)fo >> (8 * i));
    return ad_of(p, be32(fh), where, sizeof where, ad);
}

static int wal_learn(cfile *p, const unsigned char *h)
{
    uint32_t ps = be32(h + 8);
    if (!page_size_ok(ps))
        return set_err(SQLITE_IOERR_DATA, "%s: damaged WAL header (page size %u)", p->name, ps);
    p->pgsz = ps;
    return SQLITE_OK;
}

static int wal_header(cfile *p)
{
    if (p->pgsz)
        return SQLITE_OK;
    unsigned char h[WAL_HDR];
    int rc = p->real->pMethods->xRead(p->real, h, WAL_HDR, 0);
    if (rc != SQLITE_OK)
        return rc == SQLITE_IOERR_SHORT_READ ? set_err(SQLITE_IOERR_DATA, "%s: no WAL header",
                                                       p->name)
                                             : rc;
    return wal_learn(p, h);
}

/*
** The page of frame at off failed to open during a read of the whole frame:
** is a committed frame of the same generation (salts) after it? Then the
** WAL is damaged; otherwise this is the torn tail of a crash.
*/
static bool wal_committed_after(cfile *p, const unsigned char salts[8], sqlite3_int64 off)
{
    size_t fsz = FRAME_HDR + (size_t)p->pgsz;
    unsigned char *f = malloc(fsz), *plain = malloc(p->pgsz);
    bool found = false;
    for (sqlite3_int64 o = off + (sqlite3_int64)fsz; f && plain && !found; o += (sqlite3_int64)fsz) {
        if (p->real->pMethods->xRead(p->real, f, (int)fsz, o) != SQLITE_OK)
            break;
        if (memcmp(f + 8, salts, 8) != 0 || be32(f + 4) == 0)
            continue;
        unsigned char ad[AD_MAX];
        size_t n_ad = wal_ad(p, f, o, ad);
        found = open_sealed(p, f + FRAME_HDR, p->pgsz - VAULT_VFS_RESERVE, ad, n_ad, plain) == 0;
    }
    free(f), free(plain);
    return found;
}

/* SQLite's WAL checksum (the Fletcher-like sum of its wal.c) over n bytes,
** carried on from s. Native order is the host's, little-endian here. */
static void wal_cksum(bool native, const unsigned char *a, size_t n, uint32_t s[2])
{
    uint32_t s1 = s[0], s2 = s[1];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint32_t x0, x1;
        if (native)
            memcpy(&x0, a + i, 4), memcpy(&x1, a + i + 4, 4);
        else
            x0 = be32(a + i), x1 = be32(a + i + 4);
        s1 += x0 + s2;
        s2 += x1 + s1;
    }
    s[0] = s1, s[1] = s2;
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wal_cksum's native order");

/*
** SQLite recovers a WAL by reading its frames in order, keeping a running
** checksum, and ends it at the first frame whose salts or checksum do not
** match: a torn write of a crash, or an older generation. The frame headers
** are readable (not sealed), so a damaged one would end the WAL there in
** silence and lose the transactions after it. Follow the same chain over
** the frames as they are read whole (frame, the decrypted frame at fo), and
** when it breaks while a committed frame of the current generation, which
** authenticates, comes later, say so: true.
*/
static bool wal_chain_breaks(cfile *p, const unsigned char *frame, int64_t fo)
{
    unsigned char wh[WAL_HDR];
    if (fo == WAL_HDR) { /* recovery starts: the chain from the header's checksum */
        if (p->real->pMethods->xRead(p->real, wh, WAL_HDR, 0) != SQLITE_OK)
            return false;
        memcpy(p->ck_salts, wh + 16, 8);
        p->ck[0] = be32(wh + 24), p->ck[1] = be32(wh + 28);
        p->ck_native = (be32(wh) & 1) == 0;
        p->ck_next = fo;
    }
    if (fo != p->ck_next) /* not SQLite's sequential recovery read */
        return false;
    uint32_t s[2] = {p->ck[0], p->ck[1]};
    wal_cksum(p->ck_native, frame, 8, s);
    wal_cksum(p->ck_native, frame + FRAME_HDR, p->pgsz, s);
    if (!memcmp(frame + 8, p->ck_salts, 8) && be32(frame + 16) == s[0] &&
        be32(frame + 20) == s[1]) {
        p->ck[0] = s[0], p->ck[1] = s[1];
        p->ck_next = fo + FRAME_HDR + p->pgsz;
        return false;
    }
    p->ck_next = -1; /* SQLite stops here */
    return wal_committed_after(p, p->ck_salts, fo);
}

static int wal_read(cfile *p, void *out, int amt, sqlite3_int64 off)
{
    unsigned char *o = out;
    if (off + amt <= WAL_HDR) {
        int rc = p->real->pMethods->xRead(p->real, out, amt, off);
        if (rc == SQLITE_OK && off == 0 && amt == WAL_HDR && !p->pgsz)
            (void)wal_learn(p, o);
        return rc;
    }
    int rc = wal_header(p);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t ps = p->pgsz;
    int64_t fsz = FRAME_HDR + (int64_t)ps, r = off < WAL_HDR ? -1 : (off - WAL_HDR) % fsz;
    if (r >= 0 && r + amt <= FRAME_HDR) /* a frame header or part of one: its checksum */
        return p->real->pMethods->xRead(p->real, out, amt, off);
    bool whole = r == 0 && amt == fsz, page = r == FRAME_HDR && amt == (int)ps;
    if (!whole && !page)
        return set_err(SQLITE_IOERR_READ, "%s: a read of %d bytes at %lld is not a frame",
                       p->name, amt, (long long)off);
    int64_t fo = whole ? off : off - FRAME_HDR;
    if (scratch(p, (size_t)fsz) != 0)
        return SQLITE_IOERR_NOMEM;
    rc = p->real->pMethods->xRead(p->real, p->buf, (int)fsz, fo);
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_IOERR_SHORT_READ)
            memset(out, 0, (size_t)amt);
        return rc;
    }
    unsigned char ad[AD_MAX];
    size_t n_ad = wal_ad(p, p->buf, fo, ad);
    unsigned char *dst = whole ? o + FRAME_HDR : o;
    if (open_sealed(p, p->buf + FRAME_HDR, ps - VAULT_VFS_RESERVE, ad, n_ad, dst) != 0) {
        unsigned char wh[WAL_HDR];
        bool current = p->real->pMethods->xRead(p->real, wh, WAL_HDR, 0) == SQLITE_OK &&
                       !memcmp(wh + 16, p->buf + 8, 8);
        if (whole && (!current || !wal_committed_after(p, p->buf + 8, fo))) {
            /* the torn tail of a crash, or a frame of an older generation:
            ** SQLite's salt or checksum test rejects it */
            memcpy(out, p->buf, (size_t)fsz);
            return SQLITE_OK;
        }
        return set_err(SQLITE_IOERR_DATA,
                       "%s: frame %lld (page %u) fails authentication (damaged, or changed by "
                       "something other than Cairn)",
                       p->name, (long long)((fo - WAL_HDR) / fsz + 1), be32(p->buf));
    }
    memset(dst + ps - VAULT_VFS_RESERVE, 0, VAULT_VFS_RESERVE);
    if (whole) {
        memcpy(o, p->buf, FRAME_HDR);
        if (wal_chain_breaks(p, o, fo))
            return set_err(SQLITE_IOERR_DATA,
                           "%s: the header of frame %lld is damaged, and committed frames follow "
                           "it",
                           p->name, (long long)((fo - WAL_HDR) / fsz + 1));
    }
    return SQLITE_OK;
}

static int wal_write(cfile *p, const void *data, int amt, sqlite3_int64 off)
{
    const unsigned char *in = data;
    p->ck_next = -1; /* recovery is over once SQLite writes */
    if (off == 0 && amt == WAL_HDR) {
        int rc = wal_learn(p, in);
        if (rc != SQLITE_OK)
            return rc;
        return p->real->pMethods->xWrite(p->real, data, amt, off);
    }
    int rc = wal_header(p);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t ps = p->pgsz;
    int64_t fsz = FRAME_HDR + (int64_t)ps, r = off < WAL_HDR ? -1 : (off - WAL_HDR) % fsz;
    if (r == 0 && amt == FRAME_HDR) {
        memcpy(p->hdr, in, FRAME_HDR);
        p->hdr_off = off;
        return p->real->pMethods->xWrite(p->real, data, amt, off);
    }
    bool whole = r == 0 && amt == fsz, page = r == FRAME_HDR && amt == (int)ps;
    if (!whole && !page)
        return set_err(SQLITE_IOERR_WRITE, "%s: a write of %d bytes at %lld is not a frame",
                       p->name, amt, (long long)off);
    int64_t fo = whole ? off : off - FRAME_HDR;
    if (scratch(p, (size_t)fsz) != 0)
        return SQLITE_IOERR_NOMEM;
    unsigned char *f = p->buf;
    if (whole)
        memcpy(f, in, FRAME_HDR);
    else if (p->hdr_off == fo && fo != 0)
        memcpy(f, p->hdr, FRAME_HDR);
    else { /* SQLite rewrites the page of a frame of this transaction in place */
        rc = p->real->pMethods->xRead(p->real, f, FRAME_HDR, fo);
        if (rc != SQLITE_OK)
            return set_err(SQLITE_IOERR_WRITE, "%s: no header for the frame at %lld", p->name,
                           (long long)fo);
    }
    unsigned char ad[AD_MAX];
    size_t n_ad = wal_ad(p, f, fo, ad);
    seal(p, whole ? in + FRAME_HDR : in, ps - VAULT_VFS_RESERVE, ad, n_ad, f + FRAME_HDR);
    return whole ? p->real->pMethods->xWrite(p->real, f, (int)fsz, fo)
                 : p->real->pMethods->xWrite(p->real, f + FRAME_HDR, (int)ps, off);
}

/* ---- the io methods of sealed files ---------------------------------------- */

static int c_close(sqlite3_file *f)
{
    cfile *p = (cfile *)f;
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    if (p->key)
        sodium_free(p->key);
    free(p->buf);
    p->key = NULL, p->buf = NULL;
    return rc;
}

static int c_read(sqlite3_file *f, void *out, int amt, sqlite3_int64 off)
{
    cfile *p = (cfile *)f;
    return p->kind == K_WAL ? wal_read(p, out, amt, off) : db_read(p, out, amt, off);
}

static int c_write(sqlite3_file *f, const void *data, int amt, sqlite3_int64 off)
{
    cfile *p = (cfile *)f;
    return p->kind == K_WAL ? wal_write(p, data, amt, off) : db_write(p, data, amt, off);
}

#define REAL(f) (((cfile *)(f))->real)

static int c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int c_sync(sqlite3_file *f, int flags) { return REAL(f)->pMethods->xSync(REAL(f), flags); }
static int c_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int c_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int c_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int c_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int c_control(sqlite3_file *f, int op, void *arg)
{
    if (op == SQLITE_FCNTL_VFSNAME) {
        *(char **)arg = sqlite3_mprintf("%s", VAULT_VFS_NAME);
        return SQLITE_OK;
    }
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int c_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int c_device(sqlite3_file *f)
{
    /* writes are whole pages and whole frame parts: SQLite need not pad the
    ** WAL to sector boundaries (padding would split a page across writes) */
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)) | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}
static int c_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int c_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void c_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int c_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: no xFetch, so SQLite never maps the (encrypted) file. */
static const sqlite3_io_methods crypt_io = {
    .iVersion = 2,
    .xClose = c_close,
    .xRead = c_read,
    .xWrite = c_write,
    .xTruncate = c_truncate,
    .xSync = c_sync,
    .xFileSize = c_size,
    .xLock = c_lock,
    .xUnlock = c_unlock,
    .xCheckReservedLock = c_reserved,
    .xFileControl = c_control,
    .xSectorSize = c_sector,
    .xDeviceCharacteristics = c_device,
    .xShmMap = c_shm_map,
    .xShmLock = c_shm_lock,
    .xShmBarrier = c_shm_barrier,
    .xShmUnmap = c_shm_unmap,
};

/* ---- temporary files, in memory ------------------------------------------- */

static int m_close(sqlite3_file *f)
{
    cfile *p = (cfile *)f;
    if (p->mem) {
        sodium_memzero(p->mem, (size_t)p->mem_cap);
        free(p->mem);
    }
    p->mem = NULL;
    return SQLITE_OK;
}

static int m_read(sqlite3_file *f, void *out, int amt, sqlite3_int64 off)
{
    cfile *p = (cfile *)f;
    int64_t have = off >= p->mem_len ? 0 : CN_MIN((int64_t)amt, p->mem_len - off);
    if (have > 0)
        memcpy(out, p->mem + off, (size_t)have);
    if (have < amt) {
        memset((unsigned char *)out + have, 0, (size_t)(amt - have));
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int m_reserve(cfile *p, int64_t need)
{
    if (need <= p->mem_cap)
        return SQLITE_OK;
    if (need > ((int64_t)1 << 40))
        return SQLITE_FULL;
    int64_t cap = CN_MAX(need, p->mem_cap * 2);
    cap = CN_MAX(cap, (int64_t)65536);
    unsigned char *m = malloc((size_t)cap);
    if (!m)
        return SQLITE_IOERR_NOMEM;
    if (p->mem) {
        memcpy(m, p->mem, (size_t)p->mem_len);
        sodium_memzero(p->mem, (size_t)p->mem_cap);
        free(p->mem);
    }
    memset(m + p->mem_len, 0, (size_t)(cap - p->mem_len));
    p->mem = m, p->mem_cap = cap;
    return SQLITE_OK;
}

static int m_write(sqlite3_file *f, const void *data, int amt, sqlite3_int64 off)
{
    cfile *p = (cfile *)f;
    int rc = m_reserve(p, off + amt);
    if (rc != SQLITE_OK)
        return rc;
    if (off > p->mem_len)
        memset(p->mem + p->mem_len, 0, (size_t)(off - p->mem_len));
    memcpy(p->mem + off, data, (size_t)amt);
    p->mem_len = CN_MAX(p->mem_len, off + amt);
    return SQLITE_OK;
}

static int m_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    cfile *p = (cfile *)f;
    if (size < p->mem_len) {
        sodium_memzero(p->mem + size, (size_t)(p->mem_len - size));
        p->mem_len = size;
    }
    return SQLITE_OK;
}

static int m_sync(sqlite3_file *f, int flags)
{
    (void)f, (void)flags;
    return SQLITE_OK;
}
static int m_size(sqlite3_file *f, sqlite3_int64 *size)
{
    *size = ((cfile *)f)->mem_len;
    return SQLITE_OK;
}
static int m_lock(sqlite3_file *f, int l)
{
    (void)f, (void)l;
    return SQLITE_OK;
}
static int m_reserved(sqlite3_file *f, int *out)
{
    (void)f;
    *out = 0;
    return SQLITE_OK;
}
static int m_control(sqlite3_file *f, int op, void *arg)
{
    (void)f, (void)op, (void)arg;
    return SQLITE_NOTFOUND;
}
static int m_sector(sqlite3_file *f)
{
    (void)f;
    return 4096;
}
static int m_device(sqlite3_file *f)
{
    (void)f;
    return SQLITE_IOCAP_ATOMIC | SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_SAFE_APPEND |
           SQLITE_IOCAP_SEQUENTIAL;
}

static const sqlite3_io_methods mem_io = {
    .iVersion = 1,
    .xClose = m_close,
    .xRead = m_read,
    .xWrite = m_write,
    .xTruncate = m_truncate,
    .xSync = m_sync,
    .xFileSize = m_size,
    .xLock = m_lock,
    .xUnlock = m_lock,
    .xCheckReservedLock = m_reserved,
    .xFileControl = m_control,
    .xSectorSize = m_sector,
    .xDeviceCharacteristics = m_device,
};

/* ---- the VFS ---------------------------------------------------------------- */

/* Is name the rollback journal of a main file that is still empty, or of a
** scratch copy (vault_vfs_attach_ex)? */
static bool journal_of_empty(const char *name, size_t n)
{
    const char *suffix = "-journal";
    size_t m = strlen(suffix);
    if (n <= m || strcmp(name + n - m, suffix) != 0 || n - m >= 4096)
        return false;
    if (key_of(name, n - m, NULL, NULL) == 2)
        return true;
    char main_name[4096];
    memcpy(main_name, name, n - m);
    main_name[n - m] = 0;
    struct stat st;
    return stat(main_name, &st) == 0 && st.st_size == 0;
}

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    cfile *p = (cfile *)f;
    memset(p, 0, sizeof *p);
    p->real = (sqlite3_file *)((char *)f + REAL_OFFSET);
    const int temp = SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_TRANSIENT_DB |
                     SQLITE_OPEN_SUBJOURNAL;
    if (!name || (flags & temp)) {
        p->kind = K_MEM;
        p->name = "temporary file";
        p->base.pMethods = &mem_io;
        if (out)
            *out = flags;
        return SQLITE_OK;
    }
    size_t n = strlen(name);
    if ((flags & SQLITE_OPEN_MAIN_JOURNAL) && journal_of_empty(name, n)) {
        /* the first transaction of a new database (it switches to WAL) has
        ** no page to save: its journal need not outlive the process. Nor
        ** does a scratch copy's: a crash leaves a copy that is thrown away */
        p->kind = K_MEM;
        p->name = name;
        p->base.pMethods = &mem_io;
        if (out)
            *out = flags;
        return SQLITE_OK;
    }
    if (flags & SQLITE_OPEN_MAIN_DB)
        p->kind = K_DB;
    else if ((flags & SQLITE_OPEN_WAL) && n > 4 && !strcmp(name + n - 4, "-wal"))
        p->kind = K_WAL, n -= 4;
    else
        return set_err(SQLITE_CANTOPEN, "%s: an encrypted library keeps no rollback journal "
                       "(it runs in WAL mode)", name);
    p->name = name;
    p->key = sodium_malloc(sizeof *p->key);
    if (!p->key)
        return SQLITE_NOMEM;
    if (!key_of(name, n, p->key, p->id)) {
        sodium_free(p->key);
        p->key = NULL;
        return set_err(SQLITE_CANTOPEN, "%s: no key for this encrypted library", name);
    }
    int rc = parent->xOpen(parent, name, p->real, flags, out);
    if (rc != SQLITE_OK) {
        if (p->real->pMethods)
            p->real->pMethods->xClose(p->real);
        sodium_free(p->key);
        p->key = NULL;
        return rc;
    }
    randombytes_buf(p->nonce_prefix, sizeof p->nonce_prefix);
    p->base.pMethods = &crypt_io;
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync)
{
    (void)v;
    int rc = parent->xDelete(parent, name, sync);
    /* a journal kept in memory was never on disk: gone all the same */
    return rc == SQLITE_IOERR_DELETE_NOENT ? SQLITE_OK : rc;
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return parent->xAccess(parent, name, flags, out);
}
static int v_full(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return parent->xFullPathname(parent, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return parent->xDlOpen(parent, name);
}
static void v_dlerror(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    parent->xDlError(parent, n, out);
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return parent->xDlSym(parent, h, sym);
}
static void v_dlclose(sqlite3_vfs *v, void *h)
{
    (void)v;
    parent->xDlClose(parent, h);
}
static int v_random(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return parent->xRandomness(parent, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return parent->xSleep(parent, us);
}
static int v_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return parent->xCurrentTime(parent, out);
}
static int v_lasterr(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return parent->xGetLastError(parent, n, out);
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return parent->xCurrentTimeInt64(parent, out);
}

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static int reg_rc = SQLITE_ERROR;

static void do_register(void)
{
    if (sodium_init() < 0 || sqlite3_initialize() != SQLITE_OK)
        return;
    parent = sqlite3_vfs_find(NULL);
    if (!parent || parent->iVersion < 2)
        return;
    crypt_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)(REAL_OFFSET + (size_t)parent->szOsFile),
        .mxPathname = parent->mxPathname,
        .zName = VAULT_VFS_NAME,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_lasterr,
        .xCurrentTimeInt64 = v_time64,
    };
    reg_rc = sqlite3_vfs_register(&crypt_vfs, 0);
}

int vault_vfs_register(cn_err *err)
{
    pthread_once(&reg_once, do_register);
    if (reg_rc != SQLITE_OK)
        return cn_fail(err, CN_EIO, "cannot register the encrypting SQLite VFS");
    return CN_OK;
}
