/*
** constrain.c: decoding under a grammar (issue 16): at each step the tokens
** whose bytes would leave the grammar get no chance (their logits become
** -inf), and an end-of-generation token is allowed only where the grammar's
** sentence is complete. See engine.h, eng_gen_opts.grammar.
**
** The mask is computed by asking the matcher about every token's bytes;
** tokens are visited grouped by their first byte, and a first byte the
** grammar refuses rules out its whole group at once. Masks are cached under
** the matcher's state (gr_matcher_key): inside a JSON string, where nearly
** every token is allowed and the full check is slowest, each step comes
** back to the same state, and the mask is a copy.
*/
#include "engine/engine_int.h"
#include "grammar/grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 32

typedef struct mask_slot {
    unsigned char *key;
    size_t key_len;
    uint64_t *bits;  /* n_vocab bits: allowed tokens (end tokens included) */
    uint64_t used;   /* last use, for eviction */
} mask_slot;

struct eng_constraint {
    const tok_vocab *v;
    cn_pool *pool;        /* the model's threads, idle between decode steps */
    unsigned char *allowed; /* scratch: a byte per token, by place in order (threads write apart) */
    bool lead_ok[256];
    mask_slot cache[CACHE_SLOTS];
    uint64_t clock;
    unsigned char *key;
    size_t key_cap;
    int64_t hits, misses;
    gr_matcher *m;
    int n_vocab;
    char **piece; /* each token's bytes (NULL: a control token, never allowed) */
    int *len;
    bool *eog;
    int32_t *order;     /* token ids sorted by first, then second byte */
    int first[257];     /* order[first[b] .. first[b+1]) start with byte b */
    /* the pieces again, in that order and end to end, so that the full
    ** pass reads memory in sequence: token order[k] is blob[off[k] ..
    ** off[k + 1]) */
    char *blob;
    int *off;
};

void eng_constraint_free(eng_constraint *c)
{
    if (!c)
        return;
    gr_matcher_free(c->m);
    for (int i = 0; c->piece && i < c->n_vocab; i++)
        free(c->piece[i]);
    free(c->piece);
    free(c->len);
    free(c->eog);
    free(c->order);
    free(c->allowed);
    free(c->blob);
    free(c->off);
    for (int i = 0; i < CACHE_SLOTS; i++)
        free(c->cache[i].key), free(c->cache[i].bits);
    free(c->key);
    free(c);
}

/* The second byte of a token, -1 for a one-byte token; qsort's context is
** the pieces (set before sorting, one constraint built at a time per thread). */
static _Thread_local char **sort_piece;
static _Thread_local int *sort_len;

static int second_byte(int32_t id)
{
    return sort_len[id] > 1 ? (unsigned char)sort_piece[id][1] : -1;
}

static int by_second_byte(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int d = second_byte(x) - second_byte(y);
    return d ? d : (x > y) - (x < y);
}

int eng_constraint_new(const gr_grammar *g, const tok_vocab *v, cn_pool *pool,
                       eng_constraint **out, cn_err *err)
{
    *out = NULL;
    eng_constraint *c = calloc(1, sizeof *c);
    if (!c)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    c->v = v;
    c->n_vocab = tok_n_vocab(v);
    int n = c->n_vocab;
    c->piece = calloc((size_t)n, sizeof *c->piece);
    c->len = calloc((size_t)n, sizeof *c->len);
    c->eog = calloc((size_t)n, sizeof *c->eog);
    c->order = malloc((size_t)n * sizeof *c->order);
    c->allowed = malloc((size_t)n);
    c->pool = pool;
    int rc = !c->piece || !c->len || !c->eog || !c->order || !c->allowed
                 ? cn_fail(err, CN_ENOMEM, "out of memory")
                                                           : gr_matcher_new(g, &c->m, err);
    int count[257] = {0};
    for (int id = 0; !rc && id < n; id++) {
        c->eog[id] = tok_is_eog(v, id);
        char buf[512];
        int k = tok_piece(v, id, false, buf, (int)sizeof buf);
        if (k <= 0 || k > (int)sizeof buf || c->eog[id])
            continue; /* control tokens and the end: no text */
        if (!(c->piece[id] = malloc((size_t)k)))
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
        else {
            memcpy(c->piece[id], buf, (size_t)k);
            c->len[id] = k;
            count[(unsigned char)buf[0]]++;
        }
    }
    sort_piece = c->piece;
    sort_len = c->len;
    if (!rc) {
        /* counting sort by first byte; textless tokens (256) last */
        for (int id = 0; id < n; id++)
            if (!c->piece[id])
                count[256]++;
        c->first[0] = 0;
        for (int b = 0; b < 256; b++)
            c->first[b + 1] = c->first[b] + count[b];
        int pos[257];
        memcpy(pos, c->first, sizeof pos);
        pos[256] = c->first[256];
        for (int id = 0; id < n; id++)
            c->order[pos[c->piece[id] ? (unsigned char)c->piece[id][0] : 256]++] = id;
        /* within a first byte, by second byte (one-byte tokens first), so
        ** that the tokens sharing their first two bytes are one run */
        for (int b = 0; b < 256; b++)
            qsort(c->order + c->first[b], (size_t)(c->first[b + 1] - c->first[b]),
                  sizeof *c->order, by_second_byte);
        size_t total = 0;
        for (int k = 0; k < c->first[256]; k++)
            total += (size_t)c->len[c->order[k]];
        c->blob = malloc(total + 1);
        c->off = malloc(sizeof *c->off * ((size_t)c->first[256] + 1));
        if (!c->blob || !c->off || total > INT32_MAX)
            rc = cn_fail(err, CN_ENOMEM, "out of memory");
        for (int k = 0, o = 0; !rc && k < c->first[256]; k++) {
            c->off[k] = o;
            memcpy(c->blob + o, c->piece[c->order[k]], (size_t)c->len[c->order[k]]);
            o += c->len[c->order[k]];
            c->off[k + 1] = o;
        }
    }
    if (rc) {
        eng_constraint_free(c);
        return rc;
    }
    *out = c;
    return CN_OK;
}

/* One thread's share of the tokens (in first- then second-byte order), into
** allowed[]. The first two bytes of a run of tokens are asked about once: a
** prefix the grammar refuses rules out the run (after `{`, the 50,000
** tokens that start with a space and a letter go at once). */
static void mask_part(void *ctx, int ith, int nth)
{
    eng_constraint *c = ctx;
    int n = c->first[256]; /* tokens with text */
    int from = (int)((int64_t)n * ith / nth), to = (int)((int64_t)n * (ith + 1) / nth);
    int run_lead = -1, run_second = -2;
    bool run_ok = false;
    for (int k = from; k < to; k++) {
        const char *p = c->blob + c->off[k];
        int len = c->off[k + 1] - c->off[k];
        int lead = (unsigned char)p[0];
        if (!c->lead_ok[lead]) {
            k = c->first[lead + 1] - 1; /* the whole group */
            continue;
        }
        if (len == 1) {
            c->allowed[k] = 1;
            continue;
        }
        int second = (unsigned char)p[1];
        if (lead != run_lead || second != run_second) {
            run_lead = lead, run_second = second;
            run_ok = gr_allows(c->m, p, 2);
        }
        if (run_ok)
            c->allowed[k] = len == 2 || gr_allows(c->m, p, (size_t)len);
    }
}

/* The full check: the allowed tokens into bits (n_vocab bits, cleared). A
** first byte the grammar refuses rules out its tokens at once; the rest are
** asked one by one, split across the model's threads. */
static void mask_full(eng_constraint *c, uint64_t *bits)
{
    for (int b = 0; b < 256; b++) {
        char lead = (char)b;
        c->lead_ok[b] = c->first[b] < c->first[b + 1] && gr_allows(c->m, &lead, 1);
    }
    memset(c->allowed, 0, (size_t)c->n_vocab);
    if (c->pool && cn_pool_size(c->pool) > 1)
        cn_pool_run(c->pool, mask_part, c);
    else
        mask_part(c, 0, 1);
    for (int k = 0; k < c->first[256]; k++)
        if (c->allowed[k])
            bits[c->order[k] >> 6] |= (uint64_t)1 << (c->order[k] & 63);
    if (gr_complete(c->m))
        for (int id = 0; id < c->n_vocab; id++)
            if (c->eog[id])
                bits[id >> 6] |= (uint64_t)1 << (id & 63);
}

/* The slot holding the mask of the matcher's present state, computed and
** cached (least recently used slot) on a miss; NULL when out of memory. */
static mask_slot *slot_for(eng_constraint *c)
{
    size_t need = gr_matcher_key(c->m, c->key, c->key_cap);
    if (need > c->key_cap) {
        unsigned char *k = realloc(c->key, need);
        if (!k)
            return NULL;
        c->key = k, c->key_cap = need;
        gr_matcher_key(c->m, c->key, c->key_cap);
    }
    c->clock++;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        mask_slot *sl = &c->cache[i];
        if (sl->bits && sl->key_len == need && !memcmp(sl->key, c->key, need)) {
            sl->used = c->clock;
            c->hits++;
            return sl;
        }
    }
    c->misses++;
    mask_slot *sl = &c->cache[0];
    for (int i = 1; i < CACHE_SLOTS; i++)
        if (c->cache[i].used < sl->used)
            sl = &c->cache[i];
    size_t words = ((size_t)c->n_vocab + 63) / 64;
    unsigned char *k = realloc(sl->key, need);
    if (k)
        sl->key = k;
    if (!sl->bits)
        sl->bits = malloc(words * sizeof *sl->bits);
    if (!k || !sl->bits)
        return NULL;
    memcpy(sl->key, c->key, need);
    sl->key_len = need;
    sl->used = c->clock;
    memset(sl->bits, 0, words * sizeof *sl->bits);
    mask_full(c, sl->bits);
    return sl;
}

int eng_constraint_mask(eng_constraint *c, const float *logits, float *out)
{
    mask_slot *sl = slot_for(c);
    if (!sl)
        return 0; /* out of memory: nothing allowed, the caller stops */
    int allowed = 0;
    for (int id = 0; id < c->n_vocab; id++) {
        bool on = sl->bits[id >> 6] >> (id & 63) & 1;
        out[id] = on ? logits[id] : -INFINITY;
        allowed += on;
    }
    return allowed;
}

bool eng_constraint_allows(const eng_constraint *c, int32_t id)
{
    if (id < 0 || id >= c->n_vocab)
        return false;
    if (c->eog[id])
        return gr_complete(c->m);
    return c->piece[id] && gr_allows(c->m, c->piece[id], (size_t)c->len[id]);
}

bool eng_constraint_accept(eng_constraint *c, int32_t id)
{
    if (id < 0 || id >= c->n_vocab)
        return false;
    if (c->eog[id])
        return gr_complete(c->m);
    return c->piece[id] && gr_accept(c->m, c->piece[id], (size_t)c->len[id]);
}

bool eng_constraint_finished(const eng_constraint *c) { return gr_finished(c->m); }

size_t eng_constraint_distance(const eng_constraint *c) { return gr_distance(c->m); }

/* Does taking token id bring the end nearer than d characters? */
static bool closer(const eng_constraint *c, int32_t id, size_t d)
{
    if (c->eog[id])
        return gr_complete(c->m);
    if (!c->piece[id])
        return false;
    gr_matcher *t = gr_matcher_clone(c->m);
    bool ok = t && gr_accept(t, c->piece[id], (size_t)c->len[id]) && gr_distance(t) < d;
    gr_matcher_free(t);
    return ok;
}

int32_t eng_constraint_closer(const eng_constraint *c, const float *masked)
{
    size_t d = gr_distance(c->m);
    if (d == 0) /* complete: the end, if the vocabulary has one */
        for (int id = 0; id < c->n_vocab; id++)
            if (c->eog[id] && masked[id] != -INFINITY)
                return id;
    /* the model's favourites first: the best 64 allowed tokens */
    enum { TOP = 64 };
    int32_t top[TOP];
    int n = 0;
    for (int id = 0; id < c->n_vocab; id++) {
        if (masked[id] == -INFINITY)
            continue;
        int k;
        if (n < TOP)
            k = n++; /* a free slot at the end */
        else if (masked[id] > masked[top[TOP - 1]])
            k = TOP - 1; /* replaces the worst */
        else
            continue;
        while (k > 0 && masked[top[k - 1]] < masked[id]) {
            top[k] = top[k - 1];
            k--;
        }
        top[k] = id;
    }
    for (int i = 0; i < n; i++)
        if (closer(c, top[i], d))
            return top[i];
    for (int id = 0; id < c->n_vocab; id++) /* then any */
        if (masked[id] != -INFINITY && closer(c, id, d))
            return id;
    return -1;
}
