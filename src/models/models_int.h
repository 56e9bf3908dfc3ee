/* models_int.h: internals shared by the files of src/models/. */
#ifndef CN_MODELS_INT_H
#define CN_MODELS_INT_H

#include "models/models.h"

#define MDL_CATALOG_MAX ((size_t)4 << 20) /* bytes of catalog JSON accepted */

bool mdl_name_ok(const char *s);
bool mdl_sha_ok(const char *s);
/* Verify sig over text with key_hex, parse, and refuse a serial below
** min_serial (a replayed old catalog). */
int mdl_catalog_verified(const char *text, size_t len, const char *sig, const char *key_hex,
                         const char *what, int64_t min_serial, mdl_catalog **out, cn_err *err);
/* May a download that started at origin follow a redirect to target:
** target passes mdl_url_check, and unless origin is on this machine
** (loopback), target is https:// and not this machine (loopback or the
** unspecified address). CN_OK, or a message saying why not. */
int mdl_redirect_check(const char *origin, const char *target, cn_err *err);
/* sha256 of a file as 64 hex digits, with progress. */
int mdl_hash_file(const char *path, char hex[65], const char *name, mdl_progress_fn fn,
                  void *ctx, cn_err *err);

/* Bytes free to this user on the filesystem holding path (or its nearest
** existing parent); -1 if unknown. */
int64_t mdl_free_bytes(const char *path);
/* Tests only: when set, mdl_free_bytes returns what it says (a full disk
** without filling one). NULL in the program: nothing in the environment
** can change what a user's binary believes about the disk. */
extern int64_t (*mdl_free_bytes_hook)(const char *path);

#endif
