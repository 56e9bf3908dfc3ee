/*
** trimbench: passages trimmed to a question as `cairn ask` trims them, for
** bench/qa/trim.py (does the evidence survive the trim, and how many
** tokens does it save?). One JSON object a line on stdin:
**
**   {"q": QUESTION, "passages": [TEXT, ...], "budget": N,
**    "context": 1, "fill": true, "no_match_pct": 50,      (optional)
**    "trim_q": TEXT}   (optional: trim against this instead of the question)
**
** and one a line on stdout: {"texts": [TRIMMED, ...], "before": [TOKENS,
** ...], "after": [...], "prompt_before": N, "prompt_after": N}, tokens
** counted with VOCAB.gguf's tokenizer; the prompts are the whole grounded
** prompt (system message, template FAMILY, default llama3) with whole and
** with trimmed passages.
**
**   trimbench VOCAB.gguf [FAMILY] < questions.jsonl
*/
#include "gguf/gguf.h"
#include "rag/rag.h"
#include "tok/tok.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CAP = 1 << 20 };
static int32_t ids[CAP];

static int count(void *ctx, const char *s, size_t n)
{
    int k = tok_encode(ctx, s, n, false, false, ids, CAP, NULL);
    return k < 0 ? (int)(n / 2 + 1) : k;
}

static int prompt_len(const tok_vocab *v, const char *fam, const char *q, const rag_source *src,
                      int n, const rag_trim_opts *o)
{
    int32_t *p = NULL;
    int np = 0;
    rag_prompt_info pi;
    cn_err err = {0};
    if (rag_prompt_tokens(v, fam, 32768, q, src, n, o, &p, &np, &pi, &err)) {
        fprintf(stderr, "trimbench: %s\n", err.msg);
        np = -1;
    }
    free(p);
    return np;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: trimbench VOCAB.gguf [FAMILY] < questions.jsonl\n");
        return 2;
    }
    const char *fam = argc == 3 ? argv[2] : "llama3";
    gguf_file *g = NULL;
    tok_vocab *v = NULL;
    cn_err err = {0};
    if (gguf_open(&g, argv[1], &err) || tok_open(&v, g, &err)) {
        fprintf(stderr, "trimbench: %s\n", err.msg);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    while (getline(&line, &cap, stdin) > 0) {
        json_error_t je;
        json_t *in = json_loads(line, 0, &je), *ps = json_object_get(in, "passages");
        const char *q = json_string_value(json_object_get(in, "q"));
        int n = (int)json_array_size(ps);
        if (!q || n < 1 || n > 100) {
            fprintf(stderr, "trimbench: expected {\"q\": ..., \"passages\": [...]}: %s\n", je.text);
            json_decref(in);
            status = 1;
            continue;
        }
        rag_trim_opts o = rag_trim_defaults();
        json_t *x;
        if ((x = json_object_get(in, "budget")))
            o.budget = (int)json_integer_value(x);
        if ((x = json_object_get(in, "context")))
            o.context = (int)json_integer_value(x);
        if ((x = json_object_get(in, "fill")))
            o.fill = json_is_true(x);
        if ((x = json_object_get(in, "no_match_pct")))
            o.no_match_pct = (int)json_integer_value(x);
        rag_source src[100];
        cn_buf out[100];
        int before[100], after[100];
        for (int i = 0; i < n; i++) {
            const char *t = json_string_value(json_array_get(ps, (size_t)i));
            src[i] = (rag_source){.path = "doc.pdf", .page_start = 1, .page_end = 1, .text = t ? t : ""};
            cn_buf_init(&out[i], (size_t)64 << 20);
        }
        const char *tq = json_string_value(json_object_get(in, "trim_q"));
        int rc = rag_trim(tq ? tq : q, src, n, &o, count, v, out, before, after);
        json_t *res = json_object(), *texts = json_array(), *b = json_array(), *a = json_array();
        for (int i = 0; i < n; i++) {
            json_array_append_new(texts, json_string(out[i].data ? out[i].data : ""));
            json_array_append_new(b, json_integer(before[i]));
            json_array_append_new(a, json_integer(after[i]));
        }
        json_object_set_new(res, "texts", texts);
        json_object_set_new(res, "before", b);
        json_object_set_new(res, "after", a);
        json_object_set_new(res, "prompt_before", json_integer(prompt_len(v, fam, q, src, n, NULL)));
        json_object_set_new(res, "prompt_after", json_integer(prompt_len(v, fam, q, src, n, &o)));
        if (rc)
            json_object_set_new(res, "error", json_integer(rc));
        char *s = json_dumps(res, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        fflush(stdout);
        free(s);
        json_decref(res);
        json_decref(in);
        for (int i = 0; i < n; i++)
            cn_buf_free(&out[i]);
    }
    free(line);
    tok_close(v);
    gguf_close(g);
    return status;
}
