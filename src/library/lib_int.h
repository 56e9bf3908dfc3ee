/* lib_int.h: internals shared by the files of src/library/. */
#ifndef CN_LIB_INT_H
#define CN_LIB_INT_H

#include "library/library.h"
#include "engine/engine.h"
#include "vault/vault.h"

#include <limits.h>
#include <stdatomic.h>

struct lib {
    char home[PATH_MAX];
    char db[PATH_MAX + 32]; /* home/library.db */
    store *st;
    /* an encrypted library: its data key (locked memory), how it was
    ** unlocked, and whether the VFS holds the key for db (crypt.c) */
    vault_key *dk;
    char unlocked_by[300];
    bool attached;
    /* the embedding model last used, kept open for the next call */
    char enc_path[PATH_MAX];
    char enc_name[PATH_MAX + 80]; /* "file.gguf:<hash prefix>": identifies the weights */
    eng_encoder *enc;
    tok_vocab *enc_tok;
    int enc_ctx;           /* the encoder's context, in tokens */
    /* passages are sized in enc_tok's tokens (lib_chunk_with) */
    bool chunk_by_model;
    /* or, instead of enc/enc_tok, an embedder shared with other handles */
    lib_embedder *shared;
    bool using_shared;     /* enc_name is the shared embedder's */
    /* the library's vectors for enc_name, loaded on first vector search: this
    ** handle's own, or the shared embedder's snapshot (a reference) */
    lib_vectors *vs;
};

/* A loaded set of vectors, read-only once loaded; freed with its last
** reference. */
struct lib_vectors {
    int64_t *ids;
    float *m;
    int n, dim;
    atomic_int refs;
};

/* Is path a copy the server stored: directly inside home/LIB_UPLOADS_DIR? */
bool lib_is_upload_copy(const lib *l, const char *path);

/* Open (or keep) the embedding model at path; fills enc, enc_tok, enc_name. */
int lib_use_encoder(lib *l, const char *path, int threads, cn_err *err);
void lib_drop_encoder(lib *l);

#endif
