/*
** models.h: the model manager. Models are handled like packages: a signed
** catalog says what exists (URL, size, sha256, what it needs), downloads
** resume and verify, installs are atomic with the previous version kept for
** rollback, and nothing reaches the network except mdl_pull and
** mdl_catalog_update.
**
** On disk, under the data directory (cn_data_dir):
**   models/NAME/manifest.json    what is installed: file, size, sha256, source,
**                                and the previous version (rollback)
**   models/NAME/<sha256:16>.gguf the model files (current, and previous)
**   models/.partial/NAME.gguf    a download in progress, with NAME.state
**   models/active.json           the active model of each role (chat, embed, rerank)
**   models/catalog.json (+.sig)  an updated catalog, re-verified at each load
**                                (.sig: the signature, then "key HEX")
*/
#ifndef CN_MODELS_H
#define CN_MODELS_H

#include "base/base.h"

#include <jansson.h>

#include <limits.h>

/* ---- catalog (catalog.c) ------------------------------------------------- */

/* Where `models update` fetches the catalog unless catalog_url says. */
#define MDL_CATALOG_URL "https://cairn-models.org/catalog/v1/catalog.json"

typedef struct mdl_entry {
    const char *name;        /* "llama3.2-1b" */
    const char *role;        /* "chat", "embed" or "rerank" */
    const char *family, *arch, *quant, *license, *description, *tier;
    double params_b;         /* parameters, billions */
    int64_t context;         /* tokens the model was trained for */
    int64_t ram_mb;          /* memory needed to run it (weights + cache + work) */
    const char *url;         /* https:// (pinned revision when pinned) */
    bool pinned;             /* url names a fixed revision */
    int64_t size;            /* bytes */
    bool size_exact;         /* false: size is the publisher's rounded figure (catalog
                             ** "size_exact": false); mdl_pull then asks the server for
                             ** the exact length, accepts it within 10 % of size, and
                             ** the sha256 alone verifies the bytes */
    const char *sha256;      /* 64 hex digits, or "" when none is published (then
                             ** mdl_pull refuses the entry) */
} mdl_entry;

typedef struct mdl_catalog {
    mdl_entry *models;
    int n;
    int64_t serial;          /* catalogs only move forward */
    char source[PATH_MAX];   /* "built-in" or the verified file it came from */
    char key[65];            /* hex of the key its signature verified with; "" built-in */
    void *json;              /* owns the strings */
} mdl_catalog;

/* Parse and validate catalog JSON (every field typed and bounded; names
** unique; sizes positive; sha256 64 hex digits or empty). what names the
** input in messages. */
int mdl_catalog_parse(const char *text, size_t len, const char *what, mdl_catalog **out,
                      cn_err *err);
/* The catalog in effect: home's updated one when its signature verifies
** (an invalid one is an error, never ignored), else the built-in one. The
** key is the one the catalog was accepted with, stored beside it by
** mdl_catalog_update; key_hex (NULL: the built-in key) is used only for a
** catalog stored without one (by an older Cairn). */
int mdl_catalog_load(const char *home, const char *key_hex, mdl_catalog **out, cn_err *err);
void mdl_catalog_free(mdl_catalog *c);
const mdl_entry *mdl_catalog_find(const mdl_catalog *c, const char *name);
const char *mdl_builtin_catalog(size_t *len);
const char *mdl_builtin_key(void); /* hex of the maintainers' ed25519 public key */

/* Fetch url and url + ".sig", verify the signature with key_hex (NULL: the
** built-in key), refuse a serial older than the catalog in use when it was
** signed by the same key, and store both in home/models/, the key in the
** signature file (one atomic write), so later loads verify with it. Sets
** the new catalog's model count and serial. */
int mdl_catalog_update(const char *home, const char *url, const char *key_hex, int *n_models,
                       int64_t *serial, cn_err *err);

/* Check an ed25519 detached signature (sig_hex: 128 hex digits, whitespace
** around it allowed) of data with the public key key_hex (64 hex digits). */
int mdl_signature_check(const void *data, size_t len, const char *sig_hex, const char *key_hex,
                        const char *what, cn_err *err);

/* ---- progress ------------------------------------------------------------ */

typedef struct mdl_progress {
    const char *name;        /* model */
    const char *phase;       /* "download", "verify", "smoke-test", "install" */
    int64_t done, total;     /* bytes */
    double bytes_per_s, eta_s; /* eta < 0: unknown */
    int parts;               /* connections in use */
    const char *note;        /* a retry, a restart, ...; NULL */
} mdl_progress;

typedef void (*mdl_progress_fn)(void *ctx, const mdl_progress *p);

/* ---- download (download.c) ----------------------------------------------- */

typedef struct mdl_dl_opts {
    int parts;               /* parallel ranged connections for large files (default 4) */
    int stall_s;             /* no byte for this long: retry the part (default 30) */
    int retries;             /* per part, then fail keeping the data (default 5) */
    int retry_base_ms;       /* first backoff, doubling (default 1000) */
    int64_t min_part;        /* smallest part worth its own connection (default 32 MB) */
    mdl_progress_fn fn;
    void *ctx;
    const char *name;        /* for progress events */
    volatile int *cancel;    /* set non-zero to stop (data is kept) */
    int64_t max_rate;        /* bytes per second at most, all parts together (0: no limit) */
} mdl_dl_opts;

/* Is this URL allowed: https://, or http:// to a loopback address. */
int mdl_url_check(const char *url, cn_err *err);

/* Download url (size bytes) to dest, resuming from dest's state file
** (dest + ".state") when it matches url and size. TLS is verified;
** redirects are followed (at most 10, each checked with mdl_url_check).
** On failure the data stays for the next attempt; the message says what
** failed. Does not hash: the caller verifies. */
int mdl_download(const char *url, int64_t size, const char *dest, const mdl_dl_opts *o,
                 cn_err *err);

/* The exact length of the file at url, as the server gives it to a HEAD
** request (redirects followed and checked as a download's are). */
int mdl_probe_size(const char *url, int64_t *size, cn_err *err);

/* Fetch a small document (a catalog, its signature) into memory. */
int mdl_fetch(const char *url, size_t max, char **out, size_t *len, cn_err *err);

/* ---- installed models (install.c) ---------------------------------------- */

typedef struct mdl_installed {
    char name[128];
    char role[16];
    char arch[32];
    char path[PATH_MAX];     /* the current file */
    int64_t size;
    char sha256[65];
    char source[512];        /* the URL, or "import:PATH" */
    bool verified;           /* the sha256 matched a published one */
    bool active;
    bool has_previous;       /* the fallback: the version the last switch replaced */
    char previous_path[PATH_MAX];
    int64_t previous_size;
    char previous_sha256[65];
    bool has_staged;         /* a newer version, downloaded and verified, not in use */
    char staged_path[PATH_MAX];
    int64_t staged_size;
    char staged_sha256[65];
} mdl_installed;

/* The installed models, sorted by name (*out malloc'd, free it). */
int mdl_list(const char *home, mdl_installed **out, int *n, cn_err *err);
int mdl_get(const char *home, const char *name, mdl_installed *out, cn_err *err);

/* Download, verify (size, sha256, GGUF metadata against the entry, a smoke
** test: a few tokens, one embedding or one reranker score) and install atomically; the version
** it replaces is kept for mdl_rollback. The first model of a role becomes
** the active one. An entry without a sha256, and a reranker of an
** architecture the engine cannot run, are refused before anything is
** downloaded. Any failure leaves the installed state as it was. */
int mdl_pull(const char *home, const mdl_entry *e, const mdl_dl_opts *o, cn_err *err);

/* The same download and checks for a newer version of an installed model,
** kept beside the current one as its staged version: offered, not used,
** until `mdl_use(NAME@VER)` switches to it. CN_ENOTFOUND if NAME is not
** installed; CN_OK at once if that version is current or staged already. */
int mdl_stage(const char *home, const mdl_entry *e, const mdl_dl_opts *o, cn_err *err);

/* Install a GGUF the user already has: copied in first, then the copy is
** hashed, inspected and smoke-tested (so what is recorded is what was
** installed, even if the file changes meanwhile) and moved into place.
** name NULL: from the file name; role NULL: from the metadata (a
** cross-encoder, rank pooling or a cls.output head, is "rerank"; a BERT
** otherwise "embed"; anything else "chat"). A cross-encoder is refused as
** "embed" and an embedding model as "rerank" (the smoke test runs the role).
** What was installed goes to *out (may be NULL). */
int mdl_import(const char *home, const char *file, const char *name, const char *role,
               const mdl_catalog *c, mdl_progress_fn fn, void *ctx, mdl_installed *out,
               cn_err *err);

/* Copy an installed model's file and manifest to dir (for another machine). */
int mdl_export(const char *home, const char *name, const char *dir, cn_err *err);

/* Downloads in progress (interrupted pulls): name, bytes on disk, size.
** Returns how many were found (at most cap). */
typedef struct mdl_partial {
    char name[80];
    int64_t done, size;
} mdl_partial;
int mdl_partials(const char *home, mdl_partial *out, int cap);

/* Remove a model (its files, its partial download) or only a partial one. */
int mdl_remove(const char *home, const char *name, cn_err *err);
/* Make the previous version current again (and the current one previous). */
int mdl_rollback(const char *home, const char *name, cn_err *err);
/* Re-hash an installed model's file against its manifest. */
int mdl_verify(const char *home, const char *name, mdl_progress_fn fn, void *ctx, cn_err *err);

/* Set the active model of its role. NAME@VER (VER: the first hex digits of
** a version's sha256) also switches NAME to that version: the staged one
** (the current becomes the fallback, the old fallback is retired) or the
** fallback (a rollback). */
int mdl_use(const char *home, const char *name, cn_err *err);
/* Delete retired versions older than keep_s seconds (never the current,
** fallback or staged file); *removed counts them. */
int mdl_cleanup(const char *home, int64_t keep_s, int *removed, cn_err *err);
/* The active model's file for role ("chat", "embed", "rerank"): CN_ENOTFOUND
** if none. */
int mdl_active(const char *home, const char *role, char *path, size_t cap, char *name,
               size_t name_cap, cn_err *err);
/* A model given by the user: an existing file path as it is, else the name
** of an installed model. */
int mdl_resolve(const char *home, const char *given, char *path, size_t cap, cn_err *err);

/* ---- updates of installed models (update.c) ------------------------------
** Settings: updates = off|daily|weekly (the server's schedule; default off),
** update_rate = 2MB/s, update_keep_days = 7 (how long a retired version
** stays after a switch). `cairn models update --check` runs one check. */

typedef struct mdl_update {
    char name[128];
    char version[13];        /* the new version: its sha256's first 12 hex digits */
    char current[13];        /* the installed one's, likewise */
    char sha256[65];
    int64_t size;
    bool ready;              /* downloaded and verified: `cairn models use NAME@VERSION` */
    char note[520];          /* why it is not ready: paused (metered), a failed download... */
    const mdl_entry *entry;  /* into the catalog (mdl_updates only) */
} mdl_update;

/* The installed models the catalog c has another file for (*out malloc'd). */
int mdl_updates(const char *home, const mdl_catalog *c, mdl_update **out, int *n, cn_err *err);

typedef struct mdl_update_opts {
    bool download;           /* stage what is offered (else only look) */
    int64_t max_rate;        /* bytes per second (0: no limit) */
    int64_t keep_s;          /* retired versions older than this are deleted (-1: keep all) */
    int metered_override;    /* -2: ask NetworkManager; 1, 0, -1: yes, no, unknown */
    mdl_progress_fn fn;
    void *ctx;
    volatile int *cancel;
} mdl_update_opts;

/* One check: the signed catalog fetched (url, key_hex as mdl_catalog_update),
** the updates of installed models listed and, with o->download, each
** downloaded, verified and staged -- unless the connection is metered
** (then its note says it is paused). Old retired versions are cleaned up.
** The result is kept in models/updates.json (mdl_update_state). */
int mdl_update_check(const char *home, const char *url, const char *key_hex,
                     const mdl_update_opts *o, mdl_update **out, int *n, cn_err *err);
/* The last check's state: {checked_at, offers: [{name, version, current,
** size, ready, note}], error, metered, cleaned}; {} if none. */
json_t *mdl_update_state(const char *home);
/* Is the connection metered, as NetworkManager says over D-Bus: 1 yes, 0
** no, -1 cannot tell; why says which, in words. */
int mdl_metered(char *why, size_t cap);
/* The options of a check from the settings (update_rate, update_keep_days)
** and, if interval_s, the schedule of `updates` in seconds (0: off). */
int mdl_update_settings(mdl_update_opts *o, int64_t *interval_s, cn_err *err);
/* "off", "daily", "weekly" -> seconds between checks (0: off); CN_EINVAL
** for anything else. */
int mdl_schedule(const char *name, int64_t *every_s);
/* "2MB/s", "500 kB/s", "1G", "off" -> bytes per second (0: no limit). */
int mdl_parse_rate(const char *s, int64_t *out);

/* ---- this machine (hw.c) ------------------------------------------------- */

typedef struct mdl_hw {
    int64_t ram_total, ram_avail; /* bytes */
    int64_t disk_free;            /* bytes free where models live */
    int cores;                    /* physical */
    int threads;                  /* logical */
    const char *simd;             /* "avx512", "avx2", "sse4", "none" */
} mdl_hw;

void mdl_hw_detect(const char *home, mdl_hw *hw);
/* Bytes per second this machine reads from memory (measured: ~0.1 s), or 0.
** A language model reads its whole file per token: this over its size
** bounds tokens per second. */
double mdl_hw_bandwidth(void);
/* How an entry fits: "fits", "tight" (runs, little to spare) or "too big". */
const char *mdl_fit(const mdl_entry *e, const mdl_hw *hw);
/* The catalog's best pick of role for this machine, and why (one sentence). */
const mdl_entry *mdl_recommend(const mdl_catalog *c, const mdl_hw *hw, const char *role,
                               char *why, size_t cap);

/* A catalog entry as JSON (name, role, family, arch, params_b, quant, size,
** sha256, context, ram_mb, license, tier, pinned, description, url), with
** "fit" for this machine when hw is given: what `cairn models list --json`
** and the server's /api/models show. */
json_t *mdl_entry_json(const mdl_entry *e, const mdl_hw *hw);

#endif
