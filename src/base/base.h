/*
** base: the bottom layer every module builds on. Error codes and messages,
** a bump arena for per-job memory, small string and file helpers.
** Depends on libc only.
*/
#ifndef CN_BASE_H
#define CN_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Status codes: 0 is success, negative values are failures (libuv's style). */
enum {
    CN_OK = 0,
    CN_ENOMEM = -1,   /* an allocation failed or a size limit was hit */
    CN_EIO = -2,      /* reading or writing a file failed */
    CN_EFORMAT = -3,  /* input is malformed: bad magic, out-of-range field, ... */
    CN_ENOTFOUND = -4,/* a named thing (file, key, tensor, token) does not exist */
    CN_EVERIFY = -5,  /* a checksum, signature or consistency check failed */
    CN_EUNSUPPORTED = -6, /* well-formed input this build cannot handle */
    CN_EINVAL = -7,   /* the caller passed a bad argument (usage error) */
    CN_ELIMIT = -8,   /* a run-time limit was reached (context full, ...) */
    CN_ECANCELED = -9,/* stopped on request (the client went away) */
};

/* A status code and a sentence the caller can print. Any err may be NULL. */
typedef struct cn_err {
    int code;
    char msg[512];
} cn_err;

/* Fill err (if non-NULL) with code and a printf-style message; return code. */
int cn_fail(cn_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A short name for a status code ("out of memory", "bad format", ...). */
const char *cn_strerror(int code);

/* malloc/calloc/realloc wrappers: NULL on failure (the caller reports
** CN_ENOMEM), never NULL for a size of 0. The ones that take count and size
** (cn_malloc_array, cn_calloc, cn_realloc_array) return NULL when
** count * size overflows, so a caller multiplying a hostile count never gets
** a short buffer; cn_malloc takes a size already computed and checked. */
void *cn_malloc(size_t n);
void *cn_malloc_array(size_t count, size_t size);
void *cn_calloc(size_t count, size_t size);
void *cn_realloc_array(void *p, size_t count, size_t size);

/* Bump arena for per-job data: allocations live until cn_arena_free().
** max_bytes caps total growth so that a hostile input cannot exhaust memory. */
typedef struct cn_arena_block cn_arena_block;
typedef struct cn_arena {
    cn_arena_block *head;
    size_t used_total;
    size_t max_bytes;
} cn_arena;

void cn_arena_init(cn_arena *a, size_t max_bytes);
void *cn_arena_alloc(cn_arena *a, size_t n); /* 16-byte aligned; NULL on failure */
char *cn_arena_strndup(cn_arena *a, const char *s, size_t n);
void cn_arena_free(cn_arena *a);

/* Growable byte buffer (curl's dynbuf): appends fail once len would pass cap. */
typedef struct cn_buf {
    char *data;
    size_t len, alloc, max;
} cn_buf;

void cn_buf_init(cn_buf *b, size_t max);
int cn_buf_append(cn_buf *b, const void *p, size_t n); /* CN_OK or CN_ENOMEM */
int cn_buf_printf(cn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cn_buf_free(cn_buf *b);

/* Read a whole file into a NUL-terminated malloc'd buffer (at most max bytes). */
int cn_read_file(const char *path, size_t max, char **out, size_t *out_len, cn_err *err);

/* ---- writing a file whole or not at all (files.c) ------------------------
** The data goes to a temporary file beside path (same directory, so the
** rename cannot cross filesystems), which is fsync'd, renamed over path,
** and then the directory is fsync'd so the rename itself survives a crash.
** Readers see the old file or the new one, never a part. On any failure
** path is left as it was and the temporary file is removed. */
typedef struct cn_atomic_file {
    int fd;                  /* write to it (cn_atomic_write), or -1 */
    char path[4096];
    char tmp[4096 + 16];     /* path + ".tmp-XXXXXX" */
} cn_atomic_file;

/* Open a temporary file for path with permissions mode (e.g. 0600). */
int cn_atomic_open(cn_atomic_file *f, const char *path, int mode, cn_err *err);
/* Append n bytes (all of them, or an error naming path). */
int cn_atomic_write(cn_atomic_file *f, const void *p, size_t n, cn_err *err);
/* Sync, close and rename into place, then sync the directory. On failure
** the temporary file is removed and path is untouched. */
int cn_atomic_commit(cn_atomic_file *f, cn_err *err);
/* Give up: close and remove the temporary file (no-op after a commit). */
void cn_atomic_abort(cn_atomic_file *f);
/* The three steps for data already in memory. */
int cn_write_atomic(const char *path, const void *data, size_t len, int mode, cn_err *err);
/* fsync the directory that holds path (after a rename or unlink in it). */
int cn_fsync_parent(const char *path, cn_err *err);

/* ---- addresses (host.c) ---------------------------------------------------
** Is host (as a URL or a Host header gives it, IPv6 with or without
** brackets) this machine's loopback interface: "localhost" (any case), a
** dotted-quad IPv4 literal in 127.0.0.0/8, ::1, or ::ffff:127.x.y.z (the
** same addresses mapped into IPv6). Nothing else: no names that merely
** start with "127.", no trailing dots, no numeric shorthands (0x7f.1, 127.1:
** callers that accept those must normalise them first, as libcurl does).
** The server and the downloader both ask this one function, so they cannot
** disagree. */
bool cn_host_is_loopback(const char *host);

/* Length of the longest prefix of s[0..n) that is complete, valid UTF-8. */
size_t cn_utf8_valid_prefix(const char *s, size_t n);
/* Number of bytes of a UTF-8 sequence starting with lead byte c (1..4), 0 if
** c cannot start a sequence. */
int cn_utf8_seq_len(unsigned char c);

/* Monotonic clock in seconds. */
double cn_now(void);

/* IEEE half and bfloat16 conversion (scalar, exact, round-to-nearest-even). */
float cn_fp16_to_fp32(uint16_t h);
uint16_t cn_fp32_to_fp16(float f);
float cn_bf16_to_fp32(uint16_t h);
uint16_t cn_fp32_to_bf16(float f);

#define CN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))


/* ---- thread pool -------------------------------------------------------
** Threads are created once (cn_pool_new) and reused for every parallel
** section; the caller's thread takes part as thread 0. fn(ctx, ith, nth) is
** called once per thread with ith in [0, nth). cn_pool_run returns when all
** calls have finished. Not reentrant: one run at a time per pool. */
typedef struct cn_pool cn_pool;
typedef void (*cn_pool_fn)(void *ctx, int ith, int nth);

int cn_pool_new(cn_pool **out, int n_threads, cn_err *err);
void cn_pool_free(cn_pool *p);
int cn_pool_size(const cn_pool *p);
void cn_pool_run(cn_pool *p, cn_pool_fn fn, void *ctx);
/* Number of physical cores (best effort; falls back to online CPUs). */
int cn_physical_cores(void);

/* ---- where data lives ---------------------------------------------------- */

/* The settings file's path ($CAIRN_CONFIG, $XDG_CONFIG_HOME/cairn/config or
** ~/.config/cairn/config), and one `key = value` from it (false: not set). */
int cn_config_path(char *buf, size_t cap);
bool cn_config_get(const char *key, char *out, size_t cap);
/* fn(ctx, value) for every `key = value` line of the settings, in order (a
** key may be given on several lines); a non-zero return stops the walk and
** is returned. 0 when there is no settings file. */
int cn_config_each(const char *key, int (*fn)(void *ctx, const char *value), void *ctx);
/* Set key to value in the settings file (NULL: remove it), every other line
** kept as it was; written whole, atomically, mode 0600. */
int cn_config_set(const char *key, const char *value, cn_err *err);
/* Replace the whole settings file with text (its folder made if need be). */
int cn_config_write(const char *text, size_t len, cn_err *err);

/* The data directory: override (--home) if given, else $CAIRN_HOME, else
** $XDG_DATA_HOME/cairn, else ~/.local/share/cairn. Writes the path into buf. */
int cn_data_dir(char *buf, size_t cap, const char *override, cn_err *err);
/* mkdir -p with mode 0700 for the directories it creates. */
int cn_mkdirs(const char *path, cn_err *err);

#endif
