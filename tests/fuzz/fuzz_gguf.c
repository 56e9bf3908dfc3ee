/*
** fuzz_gguf.c: libFuzzer target for the GGUF reader. Any byte string must
** either open cleanly or fail with a message; never crash or read outside
** the buffer. Built by `make fuzz` (clang, -DCAIRN_LIBFUZZER); in the plain
** test build the same entry point replays tests/fuzz/corpus/gguf/.
*/
#include "gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void touch_value(const gguf_value *v)
{
    if (v->type != GGUF_T_ARRAY) {
        sink += v->u64;
        return;
    }
    for (uint64_t i = 0; i < v->arr.n; i++) {
        if (v->arr.type == GGUF_T_STRING)
            sink += v->arr.strs[i].len ? (unsigned char)v->arr.strs[i].ptr[v->arr.strs[i].len - 1] : 0;
        else if (v->arr.type == GGUF_T_ARRAY)
            touch_value(&v->arr.vals[i]);
        else
            sink += (uint64_t)gguf_arr_i64(v, i);
    }
}

int fuzz_gguf_one(const uint8_t *data, size_t size)
{
    /* copy so that ASan sees reads past the exact end */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    gguf_file *f;
    cn_err err;
    if (gguf_open_buffer(&f, buf, size, "fuzz.gguf", &err) == CN_OK) {
        for (int64_t i = 0; i < f->n_kv; i++) {
            touch_value(&f->kv[i].val);
            sink += gguf_find(f, f->kv[i].key) != NULL;
        }
        for (int64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            const uint8_t *d = t->data;
            sink += d[0] + d[t->size - 1];
            sink += gguf_find_tensor(f, t->name) == t;
        }
        gguf_close(f);
    } else if (!strstr(err.msg, "fuzz.gguf")) {
        fprintf(stderr, "error message does not name the file: %s\n", err.msg);
        abort();
    }
    free(buf);
    return 0;
}

#ifdef CAIRN_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_gguf_one(data, size); }
#else
#include "test.h"
#include "fuzz_replay.h"

TEST(fuzz_gguf_corpus_replays)
{
    int n = fuzz_replay_dir("tests/fuzz/corpus/gguf", fuzz_gguf_one);
    if (n < 0)
        SKIP("no corpus");
    EXPECT(n > 0);
}
#endif
