/*
** The reranker as part of search: `cairn models import` of a cross-encoder
** installs it as the active "rerank" model (never as the embedding model);
** search and ask then rerank by default, --no-rerank turns it off, --rerank
** takes a file or an installed name; a damaged installed reranker is
** reported and left out, a named one is an error.
*/
#include "test.h"

#include <jansson.h>
#include <stdarg.h>

static char out_buf[1 << 16], err_buf[1 << 14];

static int sh(const char *fmt, ...)
{
    char setup[1200];
    const char *t = test_tmpdir();
    snprintf(setup, sizeof setup, "export CAIRN_HOME=%s/ru-home CAIRN_CONFIG=%s/ru-config; C=%s; "
             "D=%s/ru-docs", t, t, test_cairn_bin(), t);
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

/* A random-weight reranker made by mkmodel (the tests' usual tiny shape). */
static const char *make_reranker(const char *name)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s.gguf", test_tmpdir(), name);
    const char *tools = getenv("CAIRN_TOOLS");
    char cmd[2048], out[1024], err[1024];
    snprintf(cmd, sizeof cmd,
             "%s/mkmodel --shape minilm --n-layer 2 --n-embd 128 --n-head 2 --n-head-kv 2 "
             "--n-ff 512 --type f16 --rerank --tokenizer %s -o %s 2>&1",
             tools && *tools ? tools : "build", test_data("vocab/ggml-vocab-bert-bge.gguf"), path);
    if (test_shell(cmd, out, sizeof out, err, sizeof err) != 0) {
        test_fail_at(__FILE__, __LINE__, "mkmodel failed: %s%s", out, err);
        return NULL;
    }
    return path;
}

/* The texts of `cairn search --json` (in out_buf), joined by '|'. */
static void result_order(char *buf, size_t cap)
{
    json_error_t je;
    json_t *arr = json_loads(out_buf, 0, &je);
    buf[0] = 0;
    if (!json_is_array(arr)) {
        test_fail_at(__FILE__, __LINE__, "not a JSON array: %.200s", out_buf);
        json_decref(arr);
        return;
    }
    size_t len = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(arr, i), "text"));
        len += (size_t)snprintf(buf + len, cap - len, "%s|", t ? t : "?");
        if (len >= cap)
            break;
    }
    json_decref(arr);
}

/* `cairn ask --json`'s "search" (the mode), from out_buf. */
static void ask_mode(char *buf, size_t cap)
{
    json_error_t je;
    json_t *o = json_loads(out_buf, 0, &je);
    snprintf(buf, cap, "%s", json_string_value(json_object_get(o, "search")) ?: "(none)");
    json_decref(o);
}

TEST(rerank_use_active_by_default)
{
    const char *rr = make_reranker("ru-rr");
    if (!rr)
        return;
    char keyword[4096], reranked[4096], other[4096], mode[64];
    EXPECT_EQ_INT(sh("rm -rf $CAIRN_HOME $D && mkdir -p $D && "
                     "printf 'The printer queue is emptied with lprm.\\n' > $D/a.txt && "
                     "printf 'A printer driver is installed with lpadmin.\\n' > $D/b.txt && "
                     "printf 'The printer prints on both sides of the sheet.\\n' > $D/c.txt && "
                     "printf 'Paper jams: open the printer cover and pull gently.\\n' > $D/d.txt "
                     "&& printf 'The printer status page lists the ink levels.\\n' > $D/e.txt "
                     "&& $C add $D"), 0);
    /* no reranker installed: keyword search */
    EXPECT_EQ_INT(sh("$C search --json -k 5 printer"), 0);
    result_order(keyword, sizeof keyword);
    EXPECT_EQ_INT(sh("$C ask --json printer"), 0);
    ask_mode(mode, sizeof mode);
    EXPECT_STR(mode, "keyword");

    /* a cross-encoder is imported as the reranker, and becomes the active one */
    EXPECT_EQ_INT(sh("$C models import %s --name tiny-rr", rr), 0);
    EXPECT_CONTAINS(out_buf, "(rerank, bert), active");
    EXPECT_EQ_INT(sh("$C models list"), 0);
    EXPECT_CONTAINS(out_buf, "tiny-rr                rerank");
    EXPECT_EQ_INT(sh("$C doctor"), 0);
    EXPECT_CONTAINS(out_buf, "reranker         tiny-rr (");
    EXPECT_CONTAINS(out_buf, "embedding model  (none");

    /* search and ask now rerank, as the explicit --rerank FILE does */
    EXPECT_EQ_INT(sh("$C search --json -k 5 printer"), 0);
    result_order(reranked, sizeof reranked);
    EXPECT(strcmp(reranked, keyword) != 0);
    EXPECT_EQ_INT(sh("$C search --json -k 5 --rerank %s printer", rr), 0);
    result_order(other, sizeof other);
    EXPECT_STR(other, reranked);
    EXPECT_EQ_INT(sh("$C search --json -k 5 --rerank tiny-rr printer"), 0); /* by name */
    result_order(other, sizeof other);
    EXPECT_STR(other, reranked);
    EXPECT_EQ_INT(sh("$C search -k 2 printer"), 0);
    EXPECT_CONTAINS(err_buf, "(keyword + rerank search)");
    EXPECT_EQ_INT(sh("$C ask --json printer"), 0);
    ask_mode(mode, sizeof mode);
    EXPECT_STR(mode, "keyword + rerank");

    /* --no-rerank: the keyword order again */
    EXPECT_EQ_INT(sh("$C search --json -k 5 --no-rerank printer"), 0);
    result_order(other, sizeof other);
    EXPECT_STR(other, keyword);
    EXPECT_EQ_INT(sh("$C ask --json --no-rerank printer"), 0);
    ask_mode(mode, sizeof mode);
    EXPECT_STR(mode, "keyword");
    EXPECT_EQ_INT(sh("$C search --no-rerank --rerank tiny-rr printer"), 2);
    EXPECT_EQ_INT(sh("$C search --rerank no-such-model printer"), 1);
    EXPECT_CONTAINS(err_buf, "'no-such-model' is neither a file nor an installed model");

    /* the installed file damaged: search still answers, says the reranker
    ** was left out and why; named explicitly, it is an error */
    EXPECT_EQ_INT(sh("f=$(ls $CAIRN_HOME/models/tiny-rr/*.gguf) && head -c 100000 %s > $f.cut && "
                     "mv $f.cut $f && $C search --json -k 5 printer", rr), 0);
    result_order(other, sizeof other);
    EXPECT_STR(other, keyword);
    EXPECT_CONTAINS(err_buf, "the active reranker 'tiny-rr' cannot be used (");
    EXPECT_CONTAINS(err_buf, "not reranked");
    EXPECT_EQ_INT(sh("$C ask --json printer"), 0);
    ask_mode(mode, sizeof mode);
    EXPECT_STR(mode, "keyword");
    EXPECT_EQ_INT(sh("$C search --rerank tiny-rr printer"), 1);
    EXPECT_CONTAINS(err_buf, "tiny-rr");
}

/* A reranker never becomes the embedding model (its [CLS] vectors are no
** sentence embeddings), and an embedding model is no reranker. */
TEST(rerank_use_import_roles)
{
    const char *rr = make_reranker("ru-rr2");
    if (!rr)
        return;
    EXPECT_EQ_INT(sh("rm -rf $CAIRN_HOME && $C models import %s --role embed --name as-embed", rr),
                  1);
    EXPECT_CONTAINS(err_buf, "is a reranker");
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT(!strstr(out_buf, "as-embed"));
    EXPECT_EQ_INT(sh("$C models import %s --role nonsense", rr), 1);
    EXPECT_CONTAINS(err_buf, "expected chat, embed or rerank");
    const char *bert = test_tiny_bert();
    if (!bert)
        return;
    EXPECT_EQ_INT(sh("$C models import %s --role rerank --name emb-as-rr", bert), 1);
    EXPECT_CONTAINS(err_buf, "is not a reranker");
    /* both installed: each in its role, both active */
    EXPECT_EQ_INT(sh("$C models import %s --name emb && $C models import %s --name rr", bert, rr),
                  0);
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    json_error_t je;
    json_t *root = json_loads(out_buf, 0, &je), *arr = json_object_get(root, "installed");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *m = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *role = json_string_value(json_object_get(m, "role"));
        EXPECT(json_is_true(json_object_get(m, "active")));
        if (name && !strcmp(name, "emb")) {
            EXPECT_STR(role, "embed");
            seen |= 1;
        } else if (name && !strcmp(name, "rr")) {
            EXPECT_STR(role, "rerank");
            seen |= 2;
        }
    }
    EXPECT_EQ_INT(seen, 3);
    json_decref(root);
    /* `cairn add` embeds with the embedding model, and search is hybrid + rerank */
    EXPECT_EQ_INT(sh("rm -rf $D && mkdir -p $D && printf 'The pump needs priming.' > $D/p.txt && "
                     "printf 'The valve is red.' > $D/v.txt && $C add $D && $C search pump"), 0);
    EXPECT_CONTAINS(err_buf, "(hybrid + rerank search)");
}
