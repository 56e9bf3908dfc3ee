/*
** Model loading against damaged or incomplete files, the sampler, and the
** chat templates.
*/
#include "test.h"
#include "engine/engine.h"
#include "engine/engine_int.h"
#include "tok/tok.h"

/* Copy aidreams260K into a new file, leaving out key skip_key, tensor
** skip_tensor, and overriding one u32 key; returns the path. */
static const char *variant(const char *name, const char *skip_key, const char *skip_tensor,
                           const char *set_key, uint32_t set_val)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    gguf_file *src;
    cn_err e;
    if (gguf_open(&src, test_data("models/aidreams260K.gguf"), &e))
        return NULL;
    gguf_writer *w;
    gguf_writer_new(&w, &e);
    for (int64_t i = 0; i < src->n_kv; i++) {
        const char *k = src->kv[i].key;
        if (skip_key && !strcmp(k, skip_key))
            continue;
        if (set_key && !strcmp(k, set_key))
            gguf_w_u32(w, k, set_val);
        else
            gguf_w_copy(w, &src->kv[i]);
    }
    for (int64_t i = 0; i < src->n_tensors; i++)
        if (!skip_tensor || strcmp(src->tensors[i].name, skip_tensor))
            gguf_w_tensor(w, src->tensors[i].name, src->tensors[i].type, src->tensors[i].n_dims,
                          src->tensors[i].ne);
    gguf_writer_begin(w, path, &e);
    for (int64_t i = 0; i < src->n_tensors; i++)
        if (!skip_tensor || strcmp(src->tensors[i].name, skip_tensor))
            gguf_writer_data(w, src->tensors[i].data, src->tensors[i].size, &e);
    int rc = gguf_writer_finish(w, &e);
    gguf_writer_free(w);
    gguf_close(src);
    return rc ? NULL : path;
}

static void expect_open_error(const char *path, int code, const char *msg)
{
    EXPECT(path != NULL);
    if (!path)
        return;
    eng_model *m = NULL;
    cn_err e = {0};
    int rc = eng_model_open(&m, path, NULL, &e);
    EXPECT_EQ_INT(rc, code);
    EXPECT_CONTAINS(e.msg, msg);
    EXPECT(m == NULL);
    eng_model_close(m);
}

TEST(model_rejects_missing_tensor)
{
    expect_open_error(variant("no_ffn.gguf", NULL, "blk.2.ffn_down.weight", NULL, 0), CN_EFORMAT,
                      "missing tensor 'blk.2.ffn_down.weight'");
    expect_open_error(variant("no_embd.gguf", NULL, "token_embd.weight", NULL, 0), CN_EFORMAT,
                      "missing tensor 'token_embd.weight'");
}

TEST(model_rejects_missing_or_bad_metadata)
{
    expect_open_error(variant("no_heads.gguf", "llama.attention.head_count", NULL, NULL, 0),
                      CN_ENOTFOUND, "missing metadata key 'llama.attention.head_count'");
    expect_open_error(variant("no_arch.gguf", "general.architecture", NULL, NULL, 0),
                      CN_ENOTFOUND, "general.architecture");
    /* 64 wide with 5 heads: no whole head size */
    expect_open_error(variant("heads.gguf", NULL, NULL, "llama.attention.head_count", 5),
                      CN_EFORMAT, "not a multiple of the 5 attention heads");
    /* a shape that disagrees with the tensors */
    expect_open_error(variant("ff.gguf", NULL, NULL, "llama.feed_forward_length", 100), CN_EFORMAT,
                      "has shape [64, 172], expected [64, 100]");
    expect_open_error(variant("layers.gguf", NULL, NULL, "llama.block_count", 0), CN_EFORMAT,
                      "llama.block_count = 0 is out of range");
    expect_open_error(variant("kv.gguf", NULL, NULL, "llama.attention.head_count_kv", 3),
                      CN_EFORMAT, "cannot be grouped");
}

TEST(model_rejects_unsupported_architecture)
{
    gguf_writer *w;
    cn_err e;
    gguf_writer_new(&w, &e);
    gguf_w_str(w, "general.architecture", "mamba");
    char path[512];
    snprintf(path, sizeof path, "%s/mamba.gguf", test_tmpdir());
    gguf_writer_begin(w, path, &e);
    gguf_writer_finish(w, &e);
    gguf_writer_free(w);
    expect_open_error(path, CN_EUNSUPPORTED, "architecture 'mamba' is not supported");
}

TEST(model_context_overflow_is_an_error)
{
    eng_model *m;
    cn_err e = {0};
    eng_opts o = {.n_ctx = 16, .n_threads = 1};
    EXPECT_EQ_INT(eng_model_open(&m, test_data("models/aidreams260K.gguf"), &o, &e), CN_OK);
    if (!m)
        return;
    int32_t ids[20] = {1};
    for (int i = 1; i < 20; i++)
        ids[i] = 300 + i;
    EXPECT_EQ_INT(eng_decode(m, ids, 17, 0, &e), CN_ELIMIT);
    EXPECT_CONTAINS(e.msg, "context is full");
    EXPECT_EQ_INT(eng_decode(m, ids, 16, 0, &e), CN_OK);
    EXPECT_EQ_INT(eng_decode(m, ids, 1, 16, &e), CN_ELIMIT);
    int32_t bad = 512;
    EXPECT_EQ_INT(eng_decode(m, &bad, 1, 0, &e), CN_EINVAL);
    EXPECT_CONTAINS(e.msg, "outside the vocabulary");
    eng_model_close(m);
}

TEST(model_batch_equals_one_at_a_time)
{
    eng_model *m;
    cn_err e = {0};
    eng_opts o = {.n_ctx = 64, .n_threads = 2, .n_batch = 7, .kv_f32 = true};
    EXPECT_EQ_INT(eng_model_open(&m, test_data("models/aidreams260K.gguf"), &o, &e), CN_OK);
    if (!m)
        return;
    int32_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = 1 + (i * 37) % 500;
    EXPECT_EQ_INT(eng_decode(m, ids, 20, 0, &e), CN_OK);
    float a[512];
    memcpy(a, eng_model_logits(m), sizeof a);
    for (int i = 0; i < 20; i++)
        eng_decode(m, &ids[i], 1, i, &e);
    double md = 0;
    for (int i = 0; i < 512; i++)
        md = fmax(md, fabs(a[i] - eng_model_logits(m)[i]));
    EXPECT_NEAR(md, 0, 1e-5);
    eng_model_close(m);
}

/* ---- sampler ----------------------------------------------------------- */

TEST(sampler_greedy_and_seeded)
{
    float logits[8] = {0.1f, 2.0f, 1.9f, -1, 0, 0.5f, 1.95f, 0.2f};
    eng_sampler *s;
    eng_sampler_opts o = eng_sampler_defaults();
    o.temp = 0;
    EXPECT_EQ_INT(eng_sampler_new(&s, 8, &o, NULL), CN_OK);
    EXPECT_EQ_INT(eng_sample(s, logits), 1);
    eng_sampler_free(s);

    /* top-k 1 is greedy whatever the temperature */
    o = eng_sampler_defaults();
    o.top_k = 1;
    o.temp = 5;
    eng_sampler_new(&s, 8, &o, NULL);
    for (int i = 0; i < 20; i++)
        EXPECT_EQ_INT(eng_sample(s, logits), 1);
    eng_sampler_free(s);

    /* the same seed gives the same sequence; top-k 3 never leaves the top 3 */
    o = eng_sampler_defaults();
    o.top_k = 3;
    o.temp = 2;
    o.min_p = 0;
    o.seed = 42;
    int seq[2][50];
    for (int run = 0; run < 2; run++) {
        eng_sampler_new(&s, 8, &o, NULL);
        for (int i = 0; i < 50; i++)
            seq[run][i] = eng_sample(s, logits);
        eng_sampler_free(s);
    }
    int counts[8] = {0};
    for (int i = 0; i < 50; i++) {
        EXPECT_EQ_INT(seq[0][i], seq[1][i]);
        counts[seq[0][i]]++;
    }
    EXPECT_EQ_INT(counts[1] + counts[2] + counts[6], 50);
    EXPECT(counts[1] > 0 && counts[2] > 0 && counts[6] > 0);

    /* min-p keeps only tokens within that fraction of the best probability */
    o = eng_sampler_defaults();
    o.min_p = 0.93f; /* 1.9 is exp(-0.1) = 0.905 of the best: out */
    o.seed = 7;
    eng_sampler_new(&s, 8, &o, NULL);
    for (int i = 0; i < 30; i++) {
        int t = eng_sample(s, logits);
        EXPECT(t == 1 || t == 6);
    }
    eng_sampler_free(s);
}

TEST(sampler_repetition_penalty)
{
    float logits[4] = {1.0f, 0.9f, -0.5f, 0.0f};
    eng_sampler *s;
    eng_sampler_opts o = eng_sampler_defaults();
    o.temp = 0;
    o.repeat_penalty = 2.0f;
    eng_sampler_new(&s, 4, &o, NULL);
    EXPECT_EQ_INT(eng_sample(s, logits), 0);
    eng_sampler_accept(s, 0); /* 1.0 -> 0.5: now 0.9 wins */
    EXPECT_EQ_INT(eng_sample(s, logits), 1);
    eng_sampler_free(s);
    o.top_p = 0; /* out of range */
    EXPECT_EQ_INT(eng_sampler_new(&s, 4, &o, NULL), CN_EINVAL);
}

/* ---- chat templates ------------------------------------------------------ */

TEST(chat_family_detection)
{
    const char *llama3 = "{% set loop_messages = messages %}<|start_header_id|>' + message['role'] "
                         "+ '<|end_header_id|>\n\n'";
    EXPECT_STR(tok_chat_family(llama3, strlen(llama3), "llama"), "llama3");
    const char *qwen = "{% for message in messages %}{{'<|im_start|>' + message['role']";
    EXPECT_STR(tok_chat_family(qwen, strlen(qwen), "qwen2"), "chatml");
    const char *l2 = "[INST] <<SYS>>\\n' + system_message";
    EXPECT_STR(tok_chat_family(l2, strlen(l2), "llama"), "llama2");
    const char *mis = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]";
    EXPECT_STR(tok_chat_family(mis, strlen(mis), "llama"), "mistral");
    const char *zep = "<|user|>\n{{ message['content'] + eos_token }}<|assistant|>";
    EXPECT_STR(tok_chat_family(zep, strlen(zep), "llama"), "zephyr");
    EXPECT_STR(tok_chat_family(NULL, 0, "llama"), "unknown");
}

TEST(chat_render_formats)
{
    tok_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."},
                           {"user", "Why?"}};
    struct {
        const char *family, *want;
    } cases[] = {
        {"chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                   "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
                   "<|im_start|>assistant\n"},
        {"llama3", "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                   "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
                   "<|start_header_id|>user<|end_header_id|>\n\nWhy?<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"llama2", "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello.</s><s>[INST] Why? "
                   "[/INST]"},
        {"mistral", "[INST] Be brief.\n\nHi [/INST] Hello.</s>[INST] Why? [/INST]"},
        {"zephyr", "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n"
                   "<|user|>\nWhy?</s>\n<|assistant|>\n"},
        {"unknown", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
                    "<|im_start|>assistant\n"},
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(cases); i++) {
        cn_buf b;
        cn_buf_init(&b, 1 << 20);
        EXPECT_EQ_INT(tok_chat_render(cases[i].family, msgs, 4, true, &b, NULL), CN_OK);
        EXPECT_STR(b.data, cases[i].want);
        cn_buf_free(&b);
    }
    tok_chat_msg bad = {"robot", "x"};
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    cn_err e;
    EXPECT_EQ_INT(tok_chat_render("chatml", &bad, 1, true, &b, &e), CN_EINVAL);
    EXPECT_CONTAINS(e.msg, "unknown role 'robot'");
    cn_buf_free(&b);
}

/* ---- speculative decoding with prompt-lookup drafts --------------------- */

typedef struct ids_out {
    int32_t ids[256];
    int n;
    char text[4096];
    size_t len;
} ids_out;

static int collect(void *ctx, int32_t id, const char *text, size_t len)
{
    ids_out *o = ctx;
    if (id >= 0 && o->n < 256)
        o->ids[o->n++] = id;
    if (o->len + len < sizeof o->text) {
        memcpy(o->text + o->len, text, len);
        o->len += len;
    }
    return 0;
}

/* Greedy generation of n tokens from text, with drafts of up to lookup
** tokens (0: plain). */
static int gen_ids(eng_model *m, const tok_vocab *v, const char *text, int n, int lookup,
                   float temp, float penalty, const char *stop, ids_out *out, eng_gen_stats *st)
{
    int32_t prompt[512];
    cn_err e = {0};
    int np = tok_encode(v, text, strlen(text), true, false, prompt, 512, &e);
    if (np <= 0)
        return -1;
    eng_gen_opts o = {.n_predict = n, .sampler = eng_sampler_defaults(), .lookup = lookup};
    o.sampler.temp = temp;
    o.sampler.seed = 20261203;
    o.sampler.repeat_penalty = penalty;
    const char *stops[1] = {stop};
    if (stop)
        o.stop = stops, o.n_stop = 1;
    memset(out, 0, sizeof *out);
    eng_model_reset(m);
    return eng_generate(m, v, prompt, np, &o, collect, out, st, &e);
}

/* The tokens kept from drafts are those plain decoding picks: the same
** ids, text and stop reason for every draft length, greedy and sampled
** (same seed: one draw per position either way), with and without a
** repetition penalty, up to a token budget or a stop string; and drafts
** do get accepted (fewer forward passes than tokens), sampled ones too. */
TEST(model_lookup_decoding_is_plain_decoding)
{
    static const char *models[] = {"models/aidreams260K.gguf", "models/stories260K-rvspoc.gguf"};
    static const char *prompts[] = {
        "Once upon a time, there was a little girl named Lily. She liked to play with her ball. "
        "One day, Lily went to the park with her mom. Once upon a time, there was a little",
        "The cat sat on the mat. The dog sat on the log. The cat sat on the",
        "Tom and Sue"};
    int accepted = 0, passes = 0, tokens = 0, accepted_sampled = 0;
    for (size_t mi = 0; mi < CN_ARRAY_LEN(models); mi++) {
        eng_model *m;
        tok_vocab *v;
        cn_err e = {0};
        eng_opts eo = {.n_ctx = 512, .n_threads = 2};
        EXPECT_EQ_INT(eng_model_open(&m, test_data(models[mi]), &eo, &e), CN_OK);
        if (!m)
            continue;
        EXPECT_EQ_INT(tok_open(&v, eng_model_gguf(m), &e), CN_OK);
        for (size_t pi = 0; pi < CN_ARRAY_LEN(prompts); pi++)
            for (int pen = 0; pen < 4; pen++)
                for (int budget = 7; budget <= 96; budget += 89) {
                    const char *stop = pi == 1 && budget > 7 ? "log." : NULL;
                    ids_out *plain = malloc(sizeof *plain), *spec = malloc(sizeof *spec);
                    eng_gen_stats s0, s1;
                    float penalty = pen % 2 ? 1.3f : 1.0f, temp = pen / 2 ? 0.7f : 0.0f;
                    EXPECT_EQ_INT(
                        gen_ids(m, v, prompts[pi], budget, 0, temp, penalty, stop, plain, &s0), 0);
                    for (int look = 1; look <= 8; look *= 2) {
                        EXPECT_EQ_INT(gen_ids(m, v, prompts[pi], budget, look, temp, penalty, stop,
                                              spec, &s1), 0);
                        EXPECT_EQ_INT(spec->n, plain->n);
                        EXPECT(memcmp(spec->ids, plain->ids, sizeof(int32_t) * (size_t)plain->n) == 0);
                        EXPECT(spec->len == plain->len && !memcmp(spec->text, plain->text, plain->len));
                        EXPECT_EQ_INT(s1.stop, s0.stop);
                        EXPECT_EQ_INT(s1.n_gen, s0.n_gen);
                        EXPECT(s1.n_accepted <= s1.n_drafted);
                        accepted += s1.n_accepted, passes += s1.n_passes, tokens += s1.n_gen;
                        if (temp > 0)
                            accepted_sampled += s1.n_accepted;
                    }
                    EXPECT_EQ_INT(s0.n_drafted, 0);
                    free(plain), free(spec);
                }
        tok_close(v);
        eng_model_close(m);
    }
    EXPECT(accepted > 0);
    EXPECT(accepted_sampled > 0);
    EXPECT(passes < tokens);
}

/* Generation with a draft model d (and lookup drafts of up to lookup
** tokens) of n tokens from text. */
static int gen_draft(eng_model *m, eng_model *d, const tok_vocab *v, const char *text, int n,
                     int lookup, float temp, ids_out *out, eng_gen_stats *st, cn_err *e)
{
    int32_t prompt[512];
    int np = tok_encode(v, text, strlen(text), true, false, prompt, 512, e);
    if (np <= 0)
        return -1;
    eng_gen_opts o = {.n_predict = n, .sampler = eng_sampler_defaults(), .lookup = lookup,
                      .draft = d, .draft_max = 4};
    o.sampler.temp = temp;
    o.sampler.seed = 7;
    memset(out, 0, sizeof *out);
    eng_model_reset(m);
    return eng_generate(m, v, prompt, np, &o, collect, out, st, e);
}

/* A draft model changes how, not what: the same tokens as plain decoding,
** greedy and sampled, with and without lookup drafts, whether the draft is
** another model with the same vocabulary or a second copy of the model
** itself (then every greedy draft is kept: a check that its cache follows
** the text through rejections, kept runs and lookup turns); its cache
** carries over from one generation to the next. A draft of another
** vocabulary size, or the model itself, is refused. */
TEST(model_draft_decoding_is_plain_decoding)
{
    eng_model *m, *same, *other;
    tok_vocab *v;
    cn_err e = {0};
    eng_opts eo = {.n_ctx = 512, .n_threads = 2};
    EXPECT_EQ_INT(eng_model_open(&m, test_data("models/stories260K-rvspoc.gguf"), &eo, &e), CN_OK);
    EXPECT_EQ_INT(eng_model_open(&same, test_data("models/stories260K-rvspoc.gguf"), &eo, &e), CN_OK);
    EXPECT_EQ_INT(eng_model_open(&other, test_data("models/aidreams260K.gguf"), &eo, &e), CN_OK);
    if (!m || !same || !other)
        goto out;
    EXPECT_EQ_INT(tok_open(&v, eng_model_gguf(m), &e), CN_OK);
    static const char *prompts[] = {
        "Once upon a time, there was a little girl named Lily. She liked to",
        "The cat sat on the mat. The dog sat on the log. The cat sat on the", "Tom and Sue"};
    eng_model *drafts[] = {same, other};
    int kept_same = 0, drafted_same = 0, kept_other = 0, drafted_other = 0, passes = 0, tokens = 0;
    for (size_t di = 0; di < CN_ARRAY_LEN(drafts); di++)
        for (size_t pi = 0; pi < CN_ARRAY_LEN(prompts); pi++)
            for (int t = 0; t < 2; t++)
                for (int look = 0; look <= 4; look += 4) {
                    ids_out *plain = malloc(sizeof *plain), *spec = malloc(sizeof *spec);
                    eng_gen_stats s0, s1;
                    float temp = t ? 0.7f : 0.0f;
                    EXPECT_EQ_INT(gen_draft(m, NULL, v, prompts[pi], 80, 0, temp, plain, &s0, &e), 0);
                    EXPECT_EQ_INT(gen_draft(m, drafts[di], v, prompts[pi], 80, look, temp, spec, &s1,
                                            &e), 0);
                    EXPECT_EQ_INT(spec->n, plain->n);
                    EXPECT(memcmp(spec->ids, plain->ids, sizeof(int32_t) * (size_t)plain->n) == 0);
                    EXPECT(spec->len == plain->len && !memcmp(spec->text, plain->text, plain->len));
                    EXPECT(s1.n_model_accepted <= s1.n_model_drafted);
                    EXPECT(s1.n_model_drafted <= s1.n_drafted);
                    if (look == 0)
                        EXPECT(s1.t_draft > 0);
                    if (di == 0 && temp == 0) {
                        kept_same += s1.n_model_accepted, drafted_same += s1.n_model_drafted;
                        passes += s1.n_passes, tokens += s1.n_gen;
                    }
                    if (di == 1)
                        kept_other += s1.n_model_accepted, drafted_other += s1.n_model_drafted;
                    free(plain), free(spec);
                }
    EXPECT(drafted_same > 0);
    EXPECT_EQ_INT(kept_same, drafted_same);
    EXPECT(passes < tokens);
    EXPECT(drafted_other > kept_other); /* another model's drafts: some are rejected */
    ids_out *o = malloc(sizeof *o);
    eng_gen_stats st;
    EXPECT_EQ_INT(gen_draft(m, m, v, "Tom", 4, 0, 0, o, &st, &e), CN_EINVAL);
    EXPECT_CONTAINS(e.msg, "draft model must be opened on its own");
    free(o);
    tok_close(v);
out:
    eng_model_close(other);
    eng_model_close(same);
    eng_model_close(m);
}

/* One pass over a drafted run gives, after each token, the logits the
** tokens decoded one at a time give. */
TEST(model_decode_all_equals_one_at_a_time)
{
    eng_model *m;
    cn_err e = {0};
    eng_opts o = {.n_ctx = 64, .n_threads = 2, .kv_f32 = true};
    EXPECT_EQ_INT(eng_model_open(&m, test_data("models/aidreams260K.gguf"), &o, &e), CN_OK);
    if (!m)
        return;
    int32_t ids[14];
    for (int i = 0; i < 14; i++)
        ids[i] = 1 + (i * 37) % 500;
    int nv = eng_model_hparams(m)->n_vocab;
    float *all = malloc(sizeof(float) * (size_t)nv * 9);
    EXPECT_EQ_INT(eng_decode(m, ids, 5, 0, &e), CN_OK);
    EXPECT_EQ_INT(eng_decode_all(m, ids + 5, 9, 5, all, &e), CN_OK);
    EXPECT_EQ_INT(eng_decode_all(m, ids + 5, 10, 5, all, &e), CN_EINVAL);
    double md = 0;
    for (int i = 0; i < 9; i++) {
        eng_decode(m, &ids[5 + i], 1, 5 + i, &e);
        for (int j = 0; j < nv; j++)
            md = fmax(md, fabs(all[(size_t)i * nv + j] - eng_model_logits(m)[j]));
    }
    EXPECT_NEAR(md, 0, 1e-5);
    free(all);
    eng_model_close(m);
}
