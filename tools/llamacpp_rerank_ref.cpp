/*
** llamacpp_rerank_ref: the reference scores for tests/data/vectors/jina-rr*,
** computed by llama.cpp itself. Not part of the build: it links against a
** llama.cpp b4747 (commit c392e509) build made outside the repository.
**
**   cmake -S /work/ref-llama -B /work/ref-llama/build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
**   make -C /work/ref-llama/build -j2 llama-embedding     # builds libllama too
**   g++ -O2 -std=c++17 tools/llamacpp_rerank_ref.cpp -I/work/ref-llama/include \
**       -I/work/ref-llama/ggml/include -L/work/ref-llama/build/bin -lllama -lggml \
**       -lggml-base -Wl,-rpath,/work/ref-llama/build/bin -o /tmp/rerank_ref
**   /tmp/rerank_ref MODEL.gguf PAIRS.tsv > rerank.json
**
** PAIRS.tsv: one "query<TAB>document" per line. Each pair is laid out as
** llama-server b4747 does it (format_rerank in examples/server/utils.hpp):
** BOS + tok(query) + EOS + SEP + tok(document) + EOS, tok() without specials
** and with special-token text parsed, positions 0..n-1, and evaluated alone
** (one sequence per llama_decode) with rank pooling; the score is the one
** float llama.cpp returns for the sequence, printed with 9 digits.
*/
#include "llama.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static std::vector<llama_token> tokenize(const llama_vocab *v, const std::string &s)
{
    int n = -llama_tokenize(v, s.data(), (int32_t)s.size(), nullptr, 0, false, true);
    std::vector<llama_token> out(n);
    if (llama_tokenize(v, s.data(), (int32_t)s.size(), out.data(), n, false, true) != n)
        out.clear();
    return out;
}

static void json_str(const std::string &s)
{
    putchar('"');
    for (unsigned char c : s) {
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PAIRS.tsv\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model)
        return 1;
    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.pooling_type = LLAMA_POOLING_TYPE_RANK;
    cp.n_ctx = cp.n_batch = cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = 2;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx)
        return 1;
    const llama_vocab *v = llama_model_get_vocab(model);
    FILE *f = fopen(argv[2], "r");
    if (!f)
        return 1;
    printf("{\"llama_cpp\": \"b4747 c392e509\", \"special_ids\": {\"bos\": %d, \"eos\": %d, "
           "\"sep\": %d},\n \"items\": [",
           llama_vocab_bos(v), llama_vocab_eos(v), llama_vocab_sep(v));
    char line[4096];
    int k = 0;
    while (fgets(line, sizeof line, f)) {
        std::string l(line);
        while (!l.empty() && (l.back() == '\n' || l.back() == '\r'))
            l.pop_back();
        size_t tab = l.find('\t');
        if (tab == std::string::npos)
            continue;
        std::string q = l.substr(0, tab), d = l.substr(tab + 1);
        std::vector<llama_token> ids;
        std::vector<llama_token> qt = tokenize(v, q), dt = tokenize(v, d);
        ids.push_back(llama_vocab_bos(v));
        ids.insert(ids.end(), qt.begin(), qt.end());
        ids.push_back(llama_vocab_eos(v));
        ids.push_back(llama_vocab_sep(v));
        ids.insert(ids.end(), dt.begin(), dt.end());
        ids.push_back(llama_vocab_eos(v));
        llama_batch b = llama_batch_init((int32_t)ids.size(), 0, 1);
        for (size_t i = 0; i < ids.size(); i++) {
            b.token[i] = ids[i];
            b.pos[i] = (llama_pos)i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = true;
        }
        b.n_tokens = (int32_t)ids.size();
        llama_kv_cache_clear(ctx);
        if (llama_decode(ctx, b) != 0) // BERT-family encoders go through decode in b4747
            return 1;
        const float *s = llama_get_embeddings_seq(ctx, 0);
        if (!s)
            return 1;
        printf("%s\n  {\"query\": ", k++ ? "," : "");
        json_str(q);
        printf(", \"document\": ");
        json_str(d);
        printf(", \"ids\": [");
        for (size_t i = 0; i < ids.size(); i++)
            printf("%s%d", i ? ", " : "", ids[i]);
        printf("], \"score\": %.9g}", s[0]);
        llama_batch_free(b);
    }
    printf("\n]}\n");
    fclose(f);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
