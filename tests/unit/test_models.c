/*
** The model manager end to end: a real HTTP server on 127.0.0.1
** (build/testhttpd, which supports Range and injects faults) serves a
** catalog signed with a key made for the test and small models; `cairn
** models` pulls, resumes, verifies, refuses, rolls back and removes.
** Plus the catalog parser and signature check on hostile input, and the
** promise that no other command touches the network (unshare -n).
*/
#include "test.h"
#include "base/base.h"
#include "models/models_int.h" /* mdl_redirect_check */

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static char out_buf[1 << 18], err_buf[1 << 16];
static int port;
static char pubkey[80];

static int sh(const char *fmt, ...)
{
    char setup[1600];
    const char *tools = getenv("CAIRN_TOOLS") ? getenv("CAIRN_TOOLS") : "build";
    const char *t = test_tmpdir();
    snprintf(setup, sizeof setup,
             "export CAIRN_HOME=%s/mhome CAIRN_CONFIG=%s/mconfig; "
             "C=%s; T=%s; R=%s/srv; U=http://127.0.0.1:%d",
             t, t, test_cairn_bin(), tools, t, port);
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

/* Start the test server on port p (0: any free one) serving $R. */
static void server_start(int p)
{
    /* up to 10 s for a busy machine; a server that does not start fails here,
    ** not as a puzzling failure of the catalog update after it */
    int rc = sh("mkdir -p $R && ($T/testhttpd $R --port %d --log $R/../srv.log > $R/../srv.port "
                "2>&1 &) && for i in $(seq 200); do grep -q port $R/../srv.port && break; "
                "sleep 0.05; done; cat $R/../srv.port",
                p);
    if (rc != 0 || sscanf(out_buf, "port %d", &port) != 1)
        test_fail_at(__FILE__, __LINE__, "testhttpd did not start: %s", out_buf);
}

/* The server's request log into out_buf, once it has n lines (a request is
** logged just after its last byte, which the client may see first). */
static int read_server_log(int n)
{
    return sh("for i in $(seq 60); do [ $(wc -l < $R/../srv.log) -ge %d ] && break; "
              "sleep 0.05; done; cat $R/../srv.log", n);
}

static void server_stop(void) { sh("pkill -f \"testhttpd $R \" ; sleep 0.1"); }

/* Write the catalog (models JSON array text) into $R, sign it with the
** test key, point the config at it, and `cairn models update`. */
static int publish(int serial, const char *models)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/srv/catalog.json", test_tmpdir());
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"catalog\": \"test\", \"serial\": %d, \"models\": %s}\n", serial, models);
    fclose(f);
    sh("$T/catalog-sign sign $R/../test.key $R/catalog.json && "
       "printf 'catalog_url = %%s/catalog.json\\ncatalog_key = %s\\n' $U > $CAIRN_CONFIG",
       pubkey);
    int rc = sh("$C models update");
    if (rc)
        fprintf(stderr, "  models update: %s", err_buf);
    return rc;
}

/* One catalog entry for a file under $R. */
static void entry(char *buf, size_t cap, const char *name, const char *role, const char *arch,
                  const char *path, const char *file, double params_b, const char *sha_override)
{
    char local[1100], sha[65] = "";
    snprintf(local, sizeof local, "%s/srv/%s", test_tmpdir(), file);
    struct stat st;
    long long size = stat(local, &st) == 0 ? (long long)st.st_size : 1;
    if (!sha_override) {
        sh("sha256sum $R/%s | cut -c1-64", file);
        snprintf(sha, sizeof sha, "%.64s", out_buf);
    }
    snprintf(buf, cap,
             "{\"name\": \"%s\", \"role\": \"%s\", \"arch\": \"%s\", \"params_b\": %g, "
             "\"url\": \"http://127.0.0.1:%d/%s%s\", \"size\": %lld, \"sha256\": \"%s\", "
             "\"ram_mb\": 64, \"license\": \"test\", \"description\": \"test model\"}",
             name, role, arch, params_b, port, path, file, size,
             sha_override ? sha_override : sha);
}

/* Publish a catalog of one entry (see entry) as serial; returns update's status. */
static int publish_one(int serial, const char *name, const char *path, const char *file,
                       double params_b, const char *sha)
{
    char e[2048], cat[2100];
    entry(e, sizeof e, name, "chat", "llama", path, file, params_b, sha);
    snprintf(cat, sizeof cat, "[%s]", e);
    return publish(serial, cat);
}

/* A fresh data directory, server root with the test models, key pair. */
static void setup(void)
{
    server_stop();
    sh("rm -rf $CAIRN_HOME $R $R/../srv.log && mkdir -p $R && cp %s $R/m1.gguf && cp %s "
       "$R/m2.gguf && head -c 500000 $R/m1.gguf > $R/trunc.gguf && cp $R/m1.gguf $R/nan.gguf && "
       "size=$(stat -c %%s $R/nan.gguf) && "
       "printf '\\377%%.0s' $(seq 1 4096) | dd of=$R/nan.gguf bs=1 seek=$((size - 4096)) "
       "conv=notrunc 2>/dev/null; rm -f $R/../test.key; "
       "$T/catalog-sign keygen $R/../test.key",
       test_data("models/aidreams260K.gguf"), test_data("models/stories260K-rvspoc.gguf"));
    snprintf(pubkey, sizeof pubkey, "%.64s", out_buf);
    server_start(0);
}

/* The free space mdl_free_bytes reports while fake_free is set. */
static int64_t fake_free;
static int64_t fake_free_bytes(const char *dir)
{
    (void)dir;
    return fake_free;
}

/* `models pull NAME` in this process, into home (NULL: the test's
** $CAIRN_HOME, whose catalog is loaded), with the disk pretending to have
** n_free bytes free: the test seam mdl_free_bytes_hook, which the shipped
** binary has no way to set. */
static int pull_with_free_bytes(const char *name, const char *home, int64_t n_free, cn_err *err)
{
    char mhome[1100];
    snprintf(mhome, sizeof mhome, "%s/mhome", test_tmpdir());
    mdl_catalog *c = NULL;
    int rc = mdl_catalog_load(mhome, pubkey, &c, err);
    const mdl_entry *e = rc ? NULL : mdl_catalog_find(c, name);
    if (!rc && !e)
        rc = cn_fail(err, CN_ENOTFOUND, "%s: not in the test catalog", name);
    if (!rc) {
        fake_free = n_free;
        mdl_free_bytes_hook = fake_free_bytes;
        mdl_dl_opts o = {.stall_s = 5, .retries = 1, .retry_base_ms = 50};
        rc = mdl_pull(home ? home : mhome, e, &o, err);
        mdl_free_bytes_hook = NULL;
    }
    mdl_catalog_free(c);
    return rc;
}

TEST(models_builtin_catalog)
{
    size_t len;
    const char *text = mdl_builtin_catalog(&len);
    mdl_catalog *c;
    cn_err err = {0};
    EXPECT_EQ_INT(mdl_catalog_parse(text, len, "built-in", &c, &err), CN_OK);
    if (!c)
        return;
    EXPECT(c->n >= 10);
    int chat = 0, embed = 0;
    for (int i = 0; i < c->n; i++) {
        const mdl_entry *e = &c->models[i];
        chat += !strcmp(e->role, "chat");
        embed += !strcmp(e->role, "embed");
        EXPECT(!strncmp(e->url, "https://huggingface.co/", 23));
        EXPECT_EQ_INT(strlen(e->sha256), 64); /* every default model has a published hash */
        EXPECT(e->size > 1000000 && e->ram_mb > 0);
    }
    EXPECT(chat >= 6 && embed >= 2);
    /* facts from model-catalog-facts.md */
    const mdl_entry *e = mdl_catalog_find(c, "llama3.2-1b");
    EXPECT(e && e->size == 807694464 && e->pinned &&
           !strcmp(e->sha256, "6f85a640a97cf2bf5b8e764087b1e83da0fdb51d7c9fab7d0fece9385611df83"));
    e = mdl_catalog_find(c, "qwen2.5-3b");
    EXPECT(e && strstr(e->license, "Research"));
    /* the reranker: its size is only known roughly, so it says so */
    e = mdl_catalog_find(c, "jina-reranker-v1-tiny");
    EXPECT(e && !strcmp(e->role, "rerank") && !strcmp(e->arch, "jina-bert-v2") && !e->size_exact &&
           !strcmp(e->sha256, "0defc1f8a1f4dd22183124a2a25a97765603e5a9e42258046c9b2c8a26d1f553"));
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->models[i].name, "jina-reranker-v1-tiny"))
            EXPECT(c->models[i].size_exact);
    mdl_catalog_free(c);
}

TEST(models_catalog_rejects_bad_input)
{
    static const struct { const char *json, *want; } cases[] = {
        {"not json", "not valid JSON"},
        {"{\"serial\": 1}", "\"models\" must be an array"},
        {"{\"serial\": -1, \"models\": []}", "serial"},
        {"{\"serial\": 1, \"models\": [1]}", "is not an object"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"a\"}]}", "role: missing"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"../x\", \"role\": \"chat\", \"arch\": \"llama\","
         " \"url\": \"https://h/x\", \"size\": 1, \"ram_mb\": 1}]}", "use a-z"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"a\", \"role\": \"chat\", \"arch\": \"llama\","
         " \"url\": \"http://example.com/x\", \"size\": 1, \"ram_mb\": 1}]}", "must be https"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"a\", \"role\": \"chat\", \"arch\": \"llama\","
         " \"url\": \"https://h/x\", \"size\": -5, \"ram_mb\": 1}]}", "size"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"a\", \"role\": \"chat\", \"arch\": \"llama\","
         " \"url\": \"https://h/x\", \"size\": 1, \"ram_mb\": 1, \"sha256\": \"XYZ\"}]}", "sha256"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"a\", \"role\": \"chat\", \"arch\": \"llama\","
         " \"url\": \"https://h/x\", \"size\": 1, \"ram_mb\": 1, \"size_exact\": \"no\"}]}",
         "size_exact: must be true or false"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"a\", \"role\": \"boss\", \"arch\": \"llama\","
         " \"url\": \"https://h/x\", \"size\": 1, \"ram_mb\": 1}]}", "not chat, embed or rerank"},
        {"{\"serial\": 1, \"models\": [{\"name\": \"a\", \"role\": \"chat\", \"arch\": \"llama\","
         " \"url\": \"https://h/x\", \"size\": 1, \"ram_mb\": 1}, {\"name\": \"a\", \"role\": "
         "\"chat\", \"arch\": \"llama\", \"url\": \"https://h/y\", \"size\": 1, \"ram_mb\": 1}]}",
         "listed twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mdl_catalog *c = NULL;
        cn_err err = {0};
        EXPECT(mdl_catalog_parse(cases[i].json, strlen(cases[i].json), "cat.json", &c, &err) < 0);
        EXPECT(c == NULL);
        EXPECT_CONTAINS(err.msg, cases[i].want);
        EXPECT_CONTAINS(err.msg, "cat.json");
    }
    /* URL policy: https anywhere, http only on this machine (userinfo tricks too) */
    EXPECT_EQ_INT(mdl_url_check("https://huggingface.co/x", NULL), CN_OK);
    EXPECT_EQ_INT(mdl_url_check("http://127.0.0.1:8080/x", NULL), CN_OK);
    EXPECT_EQ_INT(mdl_url_check("http://localhost/x", NULL), CN_OK);
    EXPECT(mdl_url_check("http://example.com/x", NULL) < 0);
    EXPECT(mdl_url_check("http://127.0.0.1@example.com/x", NULL) < 0);
    EXPECT(mdl_url_check("ftp://127.0.0.1/x", NULL) < 0);
    EXPECT(mdl_url_check("file:///etc/passwd", NULL) < 0);
}

/* Plain http only to this machine, decided on the host libcurl connects to:
** names that merely start with "127." or "localhost", and userinfo tricks,
** are refused; numeric shorthands curl turns into 127.0.0.1 really are
** loopback and are accepted. */
TEST(models_url_policy_hostile_hosts)
{
    static const char *ok[] = {
        "http://127.0.0.1:8080/x", "http://127.1.2.3/x", "http://localhost/x",
        "http://LOCALHOST:9/x", "http://[::1]:8080/x", "http://[::ffff:127.0.0.1]/x",
        "http://0x7f.1/x" /* curl: 127.0.0.1 */, "http://127.1/x", "https://example.com/x",
        "https://127.attacker.example/x"};
    static const char *refused[] = {
        "http://127.attacker.example/x", "http://127.0.0.1.evil.com/x", "http://localhost.evil/x",
        "http://evil.localhost.com/x", "http://127.0.0.1@evil.com/x",
        "http://127.0.0.1:80@evil.com:80/x", "http://evil.com#@127.0.0.1/x",
        "http://127.0.0.1%2f@evil/x", "http://localhost./x", "http://0.0.0.0/x", "http://[::]/x",
        "http://[::ffff:10.1.2.3]/x", "http://example.com/x", "ftp://127.0.0.1/x",
        "file:///etc/passwd", "gopher://127.0.0.1/x", "not a url", ""};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (mdl_url_check(ok[i], NULL) != CN_OK)
            test_fail_at(__FILE__, __LINE__, "'%s' should be accepted", ok[i]);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (mdl_url_check(refused[i], NULL) == CN_OK)
            test_fail_at(__FILE__, __LINE__, "'%s' must be refused", refused[i]);
    cn_err err = {0};
    EXPECT(mdl_url_check("http://127.attacker.example/m.gguf", &err) < 0);
    EXPECT_CONTAINS(err.msg, "127.attacker.example");
    EXPECT_CONTAINS(err.msg, "plain http:// is refused");
}

/* Redirects: a remote https server may send the downloader only to https
** on another machine; a mirror on this machine may send it anywhere it
** could have named itself. */
TEST(models_redirect_policy)
{
    static const struct { const char *from, *to; bool ok; } cases[] = {
        {"https://huggingface.co/m", "https://cdn-lfs.hf.co/m?sig=1", true},
        {"https://huggingface.co/m", "http://cdn-lfs.hf.co/m", false},  /* downgrade */
        {"https://huggingface.co/m", "http://127.0.0.1:8080/m", false}, /* a local port */
        {"https://huggingface.co/m", "http://localhost/m", false},
        {"https://huggingface.co/m", "https://127.0.0.1:8443/m", false},
        {"https://huggingface.co/m", "https://localhost/m", false},
        {"https://huggingface.co/m", "https://[::1]/m", false},
        {"https://huggingface.co/m", "https://0x7f.1/m", false},   /* curl: 127.0.0.1 */
        {"https://huggingface.co/m", "https://2130706433/m", false},
        {"https://huggingface.co/m", "https://0.0.0.0/m", false},  /* Linux: this host */
        {"https://huggingface.co/m", "https://[::]/m", false},
        {"https://huggingface.co/m", "https://[::ffff:127.0.0.1]/m", false},
        {"https://huggingface.co/m", "https://x@127.0.0.1/m", false},
        {"https://huggingface.co/m", "ftp://cdn.example/m", false},
        {"https://127.attacker.example/m", "http://127.0.0.1/m", false},
        {"http://127.0.0.1:9/m", "http://127.0.0.1:9/other", true},
        {"http://127.0.0.1:9/m", "http://localhost:10/m", true},
        {"http://localhost:9/m", "https://huggingface.co/m", true},
        {"https://localhost:9/m", "http://127.0.0.1:9/m", true},
        {"http://127.0.0.1:9/m", "http://example.com/m", false}, /* http stays local */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_err err = {0};
        int rc = mdl_redirect_check(cases[i].from, cases[i].to, &err);
        if ((rc == CN_OK) != cases[i].ok)
            test_fail_at(__FILE__, __LINE__, "%s -> %s: %s expected, got %d (%s)", cases[i].from,
                         cases[i].to, cases[i].ok ? "allowed" : "refused", rc, err.msg);
        if (!cases[i].ok)
            EXPECT(err.msg[0] != 0);
    }
}

TEST(models_signature_check)
{
    unsigned char pk[32], sk[64], sig[64];
    char pk_hex[65], sig_hex[129];
    EXPECT(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    const char *msg = "{\"serial\": 1, \"models\": []}";
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), sk);
    sodium_bin2hex(pk_hex, sizeof pk_hex, pk, 32);
    sodium_bin2hex(sig_hex, sizeof sig_hex, sig, 64);
    cn_err err = {0};
    EXPECT_EQ_INT(mdl_signature_check(msg, strlen(msg), sig_hex, pk_hex, "c", &err), CN_OK);
    char changed[64];
    snprintf(changed, sizeof changed, "%s", msg);
    changed[13] = '2'; /* serial 2 */
    EXPECT_EQ_INT(mdl_signature_check(changed, strlen(changed), sig_hex, pk_hex, "c", &err),
                  CN_EVERIFY);
    EXPECT_CONTAINS(err.msg, "does not verify");
    EXPECT_EQ_INT(mdl_signature_check(msg, strlen(msg), "abc", pk_hex, "c", &err), CN_EVERIFY);
    EXPECT_EQ_INT(mdl_signature_check(msg, strlen(msg), sig_hex, mdl_builtin_key(), "c", &err),
                  CN_EVERIFY);
    EXPECT(mdl_signature_check(msg, strlen(msg), sig_hex, "zz", "c", &err) < 0);
}

/* The whole life of a model; its URL redirects once, as hub URLs do. */
TEST(models_pull_verify_use_rollback_rm)
{
    setup();
    EXPECT_EQ_INT(publish_one(2, "dreams", "redirect/", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_CONTAINS(out_buf, "signature verified");
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 --json dreams"), 0);
    EXPECT_CONTAINS(out_buf, "\"phase\":\"download\"");
    EXPECT_CONTAINS(out_buf, "\"event\":\"done\"");
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    json_t *j = json_loads(out_buf, 0, NULL);
    json_t *m = json_array_get(json_object_get(j, "installed"), 0);
    EXPECT_STR(json_string_value(json_object_get(m, "name")), "dreams");
    EXPECT(json_is_true(json_object_get(m, "active")));
    EXPECT(json_is_true(json_object_get(m, "verified")));
    /* the installed file is byte-identical */
    EXPECT_EQ_INT(sh("cmp %s '%s'", test_data("models/aidreams260K.gguf"),
                     json_string_value(json_object_get(m, "path"))), 0);
    json_decref(j);
    /* nothing left in .partial */
    EXPECT_EQ_INT(sh("ls -A $CAIRN_HOME/models/.partial | wc -l"), 0);
    EXPECT_CONTAINS(out_buf, "0");
    EXPECT_EQ_INT(sh("$C models verify"), 0);
    EXPECT_CONTAINS(out_buf, "ok      dreams");
    /* by name, or as the active model when -m is not given */
    EXPECT_EQ_INT(sh("$C generate -m dreams -p Once -n 4 && $C generate -p Once -n 4"), 0);
    EXPECT_CONTAINS(err_buf, "generated: 4 tokens");
    EXPECT_EQ_INT(sh("$C generate -m nosuchmodel -p Once -n 4"), 1);
    EXPECT_CONTAINS(err_buf, "neither a file nor an installed model");
    /* `cairn ask` uses the active model (this one's 128-token context is too
    ** small for a grounded prompt, which shows it was the model consulted) */
    EXPECT_EQ_INT(sh("printf 'The pump needs priming.' > $R/../doc.txt && $C add $R/../doc.txt "
                     "&& $C ask -n 4 'pump priming'"), 1);
    EXPECT_CONTAINS(err_buf, "128-token context");
    EXPECT_EQ_INT(sh("$C doctor"), 0);
    EXPECT_CONTAINS(out_buf, "(active)");
    EXPECT_CONTAINS(out_buf, "written answers");

    /* a new version of the same model: the old one is kept for rollback */
    EXPECT_EQ_INT(publish_one(3, "dreams", "", "m2.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 dreams"), 0);
    EXPECT_EQ_INT(sh("$C models list"), 0);
    EXPECT_CONTAINS(out_buf, "rollback available");
    EXPECT_EQ_INT(sh("cmp %s $CAIRN_HOME/models/dreams/$(sha256sum $R/m2.gguf | cut -c1-16).gguf",
                     test_data("models/stories260K-rvspoc.gguf")), 0);
    EXPECT_EQ_INT(sh("$C models rollback dreams"), 0);
    EXPECT_CONTAINS(out_buf, "previous version is current again");
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    j = json_loads(out_buf, 0, NULL);
    m = json_array_get(json_object_get(j, "installed"), 0);
    EXPECT_EQ_INT(sh("cmp %s '%s'", test_data("models/aidreams260K.gguf"),
                     json_string_value(json_object_get(m, "path"))), 0);
    json_decref(j);
    /* a model changed on disk is caught */
    EXPECT_EQ_INT(sh("f=$(ls $CAIRN_HOME/models/dreams/*.gguf | head -1); "
                     "printf 'X' | dd of=$CAIRN_HOME/models/dreams/$(sha256sum $R/m1.gguf | "
                     "cut -c1-16).gguf bs=1 seek=5000 conv=notrunc 2>/dev/null; $C models verify"),
                  1);
    EXPECT_CONTAINS(out_buf, "has changed since it was installed");
    /* rm leaves nothing behind */
    EXPECT_EQ_INT(sh("$C models rm dreams >/dev/null && ls -A $CAIRN_HOME/models $CAIRN_HOME/models/.partial"), 0);
    EXPECT(strstr(out_buf, "dreams") == NULL);
    EXPECT_EQ_INT(sh("$C models rm dreams"), 1);
    EXPECT_CONTAINS(err_buf, "no installed model 'dreams'");
    server_stop();
}

/* Updates (issue 18): a newer version in the signed catalog is downloaded,
** verified and offered -- never switched to by itself; `use NAME@VER`
** switches and keeps the old one as the fallback; a version beyond those
** two is retired and deleted once its time is up; a bad hash or an unsigned
** catalog never becomes an offer; a cut download resumes. */
TEST(models_update_offers_and_switches)
{
    setup();
    /* v3: the first file with 4096 bytes after its end (another sha256) */
    sh("cp $R/m1.gguf $R/m3.gguf && head -c 4096 /dev/zero >> $R/m3.gguf");
    EXPECT_EQ_INT(publish_one(2, "dreams", "", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 dreams"), 0);
    EXPECT_EQ_INT(sh("$C models update --check"), 0);
    EXPECT_CONTAINS(out_buf, "the catalog's latest");

    /* v2 published: the check downloads it (cut once on the way: resumed)
    ** and offers it; the current version stays the one in use */
    EXPECT_EQ_INT(publish_one(3, "dreams", "dropfirst=400000/", "m2.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("sha256sum $R/m1.gguf | cut -c1-12"), 0);
    char v1[16], v2[16], v3[16];
    snprintf(v1, sizeof v1, "%.12s", out_buf);
    EXPECT_EQ_INT(sh("sha256sum $R/m2.gguf | cut -c1-12"), 0);
    snprintf(v2, sizeof v2, "%.12s", out_buf);
    EXPECT_EQ_INT(sh("sha256sum $R/m3.gguf | cut -c1-12"), 0);
    snprintf(v3, sizeof v3, "%.12s", out_buf);
    EXPECT_EQ_INT(sh("printf 'update_rate = 50MB/s\n' >> $CAIRN_CONFIG && $C models update --check"), 0);
    char want[300];
    snprintf(want, sizeof want, "an updated version is ready — `cairn models use dreams@%s`", v2);
    EXPECT_CONTAINS(out_buf, want);
    EXPECT_EQ_INT(sh("$C models list"), 0);
    EXPECT_CONTAINS(out_buf, want);
    EXPECT_EQ_INT(sh("$C doctor"), 0);
    EXPECT_CONTAINS(out_buf, "an updated version is ready");
    EXPECT_CONTAINS(out_buf, "updates = off in the settings); last check: 2");
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT_CONTAINS(out_buf, "\"update_ready\": \"");
    EXPECT_EQ_INT(sh("cmp $R/m1.gguf \"$($C models list --json | grep '\"path\"' | cut -d'\"' -f4)\""), 0);
    /* offered in the state file doctor and the server read */
    EXPECT_EQ_INT(sh("cat $CAIRN_HOME/models/updates.json"), 0);
    EXPECT_CONTAINS(out_buf, "\"ready\": true");
    /* a second check has nothing more to fetch */
    EXPECT_EQ_INT(sh(": > $R/../srv.log; $C models update --check && grep -c m2.gguf $R/../srv.log"), 1);

    /* switched when told; the old one is the fallback */
    char cmd[200];
    snprintf(cmd, sizeof cmd, "$C models use dreams@%s", v2);
    EXPECT_EQ_INT(sh("%s", cmd), 0);
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT_CONTAINS(out_buf, "\"rollback\": true");
    EXPECT(strstr(out_buf, "update_ready") == NULL);
    EXPECT_EQ_INT(sh("cmp $R/m2.gguf \"$($C models list --json | grep '\"path\"' | cut -d'\"' -f4)\""), 0);
    EXPECT_EQ_INT(sh("$C generate -m dreams -p Once -n 2"), 0);
    EXPECT_EQ_INT(sh("$C models use dreams@%s", v3), 1);
    EXPECT_CONTAINS(err_buf, "has no version");
    EXPECT_EQ_INT(sh("$C models use dreams@xyz"), 1);

    /* a wrong hash in the catalog: downloaded, refused, never offered */
    EXPECT_EQ_INT(publish_one(4, "dreams", "", "m3.gguf", 0.00028,
                              "0000000000000000000000000000000000000000000000000000000000000000"),
                  0);
    EXPECT_EQ_INT(sh("$C models update --check"), 1);
    EXPECT_CONTAINS(out_buf, "sha256 mismatch");
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT(strstr(out_buf, "update_ready") == NULL);
    /* a catalog whose signature does not verify: nothing is looked at */
    EXPECT_EQ_INT(publish_one(5, "dreams", "", "m3.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("printf 'serial 6' >> $R/catalog.json && $C models update --check"), 1);
    EXPECT_CONTAINS(err_buf, "signature");
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT(strstr(out_buf, "update_ready") == NULL);

    /* v3 properly signed: offered, switched to; v1 (beyond current and
    ** fallback) is retired, kept while update_keep_days lasts, then deleted;
    ** current and fallback are never touched */
    EXPECT_EQ_INT(publish_one(7, "dreams", "", "m3.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("$C models update --check"), 0);
    EXPECT_EQ_INT(sh("$C models use dreams@%s", v3), 0);
    EXPECT_EQ_INT(sh("ls $CAIRN_HOME/models/dreams/ | grep -c gguf"), 0);
    EXPECT(!strcmp(out_buf, "3\n"));
    EXPECT_EQ_INT(sh("$C models update --check && ls $CAIRN_HOME/models/dreams/ | grep -c gguf"), 0);
    EXPECT_CONTAINS(out_buf, "3\n");
    EXPECT_EQ_INT(sh("printf 'update_keep_days = 0\n' >> $CAIRN_CONFIG && $C models update --check "
                     "&& ls $CAIRN_HOME/models/dreams/"), 0);
    char f1[40], f2[40], f3[40];
    snprintf(f1, sizeof f1, "%.12s", v1);
    snprintf(f2, sizeof f2, "%.12s", v2);
    snprintf(f3, sizeof f3, "%.12s", v3);
    EXPECT(strstr(out_buf, f1) == NULL);
    EXPECT_CONTAINS(out_buf, f2);
    EXPECT_CONTAINS(out_buf, f3);
    /* the fallback is still one command away */
    EXPECT_EQ_INT(sh("$C models use dreams@%s && $C generate -m dreams -p Once -n 2", v2), 0);
    EXPECT_EQ_INT(sh("printf 'update_rate = fast\n' >> $CAIRN_CONFIG && $C models update --check"), 1);
    EXPECT_CONTAINS(err_buf, "update_rate = fast");
    server_stop();
}

/* A metered connection pauses the download of an update, as NetworkManager
** says over D-Bus (tools/fakenm plays it on a private bus); when nothing can
** tell, the check says so and goes on. */
TEST(models_update_paused_on_a_metered_connection)
{
    if (sh("command -v dbus-run-session") != 0)
        SKIP("dbus-run-session is not installed (package dbus)");
    setup();
    EXPECT_EQ_INT(publish_one(2, "dreams", "", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 dreams"), 0);
    EXPECT_EQ_INT(publish_one(3, "dreams", "", "m2.gguf", 0.00028, NULL), 0);
    /* the inner shell sees C, T and R only exported */
    const char *bus = "export C T R; dbus-run-session -- sh -c 'export DBUS_SYSTEM_BUS_ADDRESS="
                      "$DBUS_SESSION_BUS_ADDRESS; %s $C models update --check; rc=$?; "
                      "kill $p 2>/dev/null; exit $rc'";
    char cmd[800];
    snprintf(cmd, sizeof cmd, bus, "$T/fakenm 1 > $R/../nm.out & p=$!; "
                                   "for i in $(seq 50); do grep -q ready $R/../nm.out && break; "
                                   "sleep 0.05; done;");
    EXPECT_EQ_INT(sh(": > $R/../srv.log; %s", cmd), 1);
    EXPECT_CONTAINS(out_buf, "paused: NetworkManager says the connection is metered");
    EXPECT_EQ_INT(sh("grep -c m2.gguf $R/../srv.log"), 1); /* not one byte of it */
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT(strstr(out_buf, "update_ready") == NULL);
    /* nobody to ask: said, and the setting is followed */
    snprintf(cmd, sizeof cmd, bus, "p=;");
    EXPECT_EQ_INT(sh("%s", cmd), 0);
    EXPECT_CONTAINS(out_buf, "an updated version is ready");
    EXPECT_EQ_INT(sh("cat $CAIRN_HOME/models/updates.json"), 0);
    EXPECT_CONTAINS(out_buf, "cannot tell whether the connection is metered");
    server_stop();
}

/* The first run from the command line: the machine, the recommendation from
** the (test) catalog, downloads only when agreed, the library's documents
** embedded once the embedding model is in; offline, what works and the USB
** route. */
TEST(models_setup_first_run)
{
    const char *bert = test_tiny_bert();
    if (!bert)
        SKIP("no tiny BERT model (build/mkmodel)");
    setup();
    sh("cp '%s' $R/bert.gguf", bert);
    char e1[2048], e2[2048], cat[4200];
    entry(e1, sizeof e1, "dreams", "chat", "llama", "", "m1.gguf", 0.00028, NULL);
    entry(e2, sizeof e2, "minibert", "embed", "bert", "", "bert.gguf", 0, NULL);
    snprintf(cat, sizeof cat, "[%s, %s]", e1, e2);
    EXPECT_EQ_INT(publish(2, cat), 0);
    EXPECT_EQ_INT(sh("printf 'The pump needs priming before the first start.' > $R/../p.txt && "
                     "$C add $R/../p.txt"), 0);
    EXPECT_EQ_INT(sh("$C setup --no-download"), 0);
    EXPECT_CONTAINS(out_buf, "This machine: ");
    EXPECT_CONTAINS(out_buf, "Language model: dreams");
    EXPECT_CONTAINS(out_buf, "Embedding model: minibert");
    EXPECT_CONTAINS(out_buf, "keyword search and quoted answers (no model yet)");
    /* no terminal, no --yes: nothing downloaded */
    EXPECT_EQ_INT(sh(": > $R/../srv.log; $C setup < /dev/null && grep -c gguf $R/../srv.log"), 1);
    EXPECT_CONTAINS(out_buf, "Not downloading without a terminal");
    EXPECT_EQ_INT(sh("$C setup --yes"), 0);
    EXPECT_CONTAINS(out_buf, "installed dreams");
    EXPECT_CONTAINS(out_buf, "installed minibert");
    EXPECT_CONTAINS(out_buf, "1 passages of your documents embedded");
    EXPECT_CONTAINS(out_buf, "written answers with citations");
    EXPECT_EQ_INT(sh("$C search pump"), 0);
    EXPECT_CONTAINS(err_buf, "hybrid");
    EXPECT_EQ_INT(sh("$C setup"), 0);
    EXPECT_CONTAINS(out_buf, "Nothing to download");
    /* offline: said, and the way with a USB stick */
    server_stop();
    EXPECT_EQ_INT(sh("rm -rf $CAIRN_HOME/models/minibert && $C setup --yes"), 0);
    EXPECT_CONTAINS(out_buf, "could not be fetched");
    EXPECT_CONTAINS(out_buf, "cairn models import /media/usb/NAME.gguf");
}

/* Resuming: a dropped connection (retried within the run), a server
** restart, and kill -9 of cairn; bytes already on disk are not fetched
** again, and the result is byte-identical. */
TEST(models_pull_resumes)
{
    setup();
    EXPECT_EQ_INT(publish_one(2, "dreams", "dropfirst=400000/", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh(": > $R/../srv.log; $C models pull --retry-delay 50 dreams"), 0);
    EXPECT_CONTAINS(err_buf, "retrying");
    /* two requests: the cut one, then a Range request from where it stopped */
    EXPECT_EQ_INT(read_server_log(2), 0);
    long long s1, e1, n1, s2, e2, n2;
    EXPECT(sscanf(out_buf, "%*s %lld %lld %lld\n%*s %lld %lld %lld", &s1, &e1, &n1, &s2, &e2,
                  &n2) == 6);
    EXPECT_EQ_INT(n1, 400000);
    EXPECT_EQ_INT(s2, 400000);
    EXPECT_EQ_INT(n1 + n2, 1068640);
    EXPECT_EQ_INT(sh("$C models verify dreams"), 0);

    /* kill -9 during a slow pull, four parallel parts; the rerun resumes */
    EXPECT_EQ_INT(publish_one(3, "slow", "slow=100000/", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh(": > $R/../srv.log; ($C models pull --retry-delay 50 --min-part-size 100000 slow & "
                     "pid=$!; sleep 2.5; kill -9 $pid; wait $pid; sleep 0.5; true) 2>/dev/null; "
                     "ls $CAIRN_HOME/models/.partial"), 0);
    EXPECT_CONTAINS(out_buf, "slow.gguf.state");
    EXPECT_EQ_INT(sh("$C models list"), 0);
    EXPECT_CONTAINS(out_buf, "slow                   interrupted download");
    /* what the state says is on disk (the server has logged the killed
    ** connections by now: the log is cleared before the rerun)... */
    EXPECT_EQ_INT(sh("cat $CAIRN_HOME/models/.partial/slow.gguf.state"), 0);
    json_t *st = json_loads(out_buf, 0, NULL);
    json_t *parts = json_object_get(st, "parts");
    EXPECT(json_array_size(parts) == 4);
    long long on_disk = 0, resume_at[4] = {0};
    int n_resume = 0;
    for (size_t i = 0; i < json_array_size(parts) && i < 4; i++) {
        json_t *pt = json_array_get(parts, i);
        long long a = json_integer_value(json_array_get(pt, 0)),
                  b = json_integer_value(json_array_get(pt, 1)),
                  d = json_integer_value(json_array_get(pt, 2));
        on_disk += d;
        if (a + d < b)
            resume_at[n_resume++] = a + d;
    }
    json_decref(st);
    EXPECT(on_disk > 0 && on_disk < 1068640);
    /* ...is not fetched again: the rerun asks for exactly the rest */
    EXPECT_EQ_INT(sh(": > $R/../srv.log; $C models pull --retry-delay 50 slow"), 0);
    EXPECT_EQ_INT(read_server_log(n_resume), 0);
    long long fetched = 0;
    int n_req = 0;
    for (char *line = out_buf; *line;) {
        long long a, b, n;
        if (sscanf(line, "%*s %lld %lld %lld", &a, &b, &n) == 3) {
            bool expected = false;
            for (int i = 0; i < n_resume; i++)
                expected |= resume_at[i] == a;
            EXPECT(expected);
            fetched += n;
            n_req++;
        }
        char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : line + strlen(line);
    }
    EXPECT_EQ_INT(n_req, n_resume);
    EXPECT_EQ_INT(fetched, 1068640 - on_disk);
    EXPECT_EQ_INT(sh("$C models verify slow"), 0);

    /* a server restart in the middle: the pull retries and completes */
    EXPECT_EQ_INT(publish_one(4, "restart", "slow=200000/", "m1.gguf", 0.00028, NULL), 0);
    int p = port;
    sh("($C models pull --retry-delay 50 restart > $R/../pull.out 2>&1; echo $? > $R/../pull.rc) & "
       "sleep 1.5; pkill -f \"testhttpd $R \"; sleep 0.5; "
       "($T/testhttpd $R --port %d --log $R/../srv.log >/dev/null 2>&1 &); "
       "for i in $(seq 200); do [ -s $R/../pull.rc ] && break; sleep 0.1; done; "
       "cat $R/../pull.rc $R/../pull.out", p);
    EXPECT(!strncmp(out_buf, "0\n", 2));
    EXPECT_EQ_INT(sh("$C models verify restart"), 0);

    /* a server that ignores Range: the resumed pull starts over cleanly */
    EXPECT_EQ_INT(publish_one(5, "norange", "norange/", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("mkdir -p $CAIRN_HOME/models/.partial && head -c 300000 $R/m1.gguf > "
                     "$CAIRN_HOME/models/.partial/norange.gguf && truncate -s 1068640 "
                     "$CAIRN_HOME/models/.partial/norange.gguf && printf '{\"url\":\"%%s/norange/"
                     "m1.gguf\",\"size\":1068640,\"parts\":[[0,1068640,300000]]}' $U > "
                     "$CAIRN_HOME/models/.partial/norange.gguf.state && $C models pull --retry-delay 50 norange"),
                  0);
    EXPECT_CONTAINS(err_buf, "ignores Range");
    EXPECT_EQ_INT(sh("$C models verify norange"), 0);
    server_stop();
}

/* One pull of a model at a time: a second `models pull` (or the web page's)
** of the same model, and `models rm` of it, are refused while the first
** runs, and the first completes untouched; the lock goes with it. */
TEST(models_pull_is_locked_while_running)
{
    setup();
    EXPECT_EQ_INT(publish_one(2, "locked", "slow=300000/", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("($C models pull --retry-delay 50 locked > $R/../pull1.out 2>&1; echo $? > $R/../pull1.rc) & "
                     "for i in $(seq 100); do [ -f $CAIRN_HOME/models/.partial/locked.gguf.state ]"
                     " && break; sleep 0.05; done; $C models pull --retry-delay 50 locked"), 1);
    EXPECT_CONTAINS(err_buf, "locked is being downloaded right now");
    EXPECT_EQ_INT(sh("$C models rm locked"), 1);
    EXPECT_CONTAINS(err_buf, "locked is being downloaded right now");
    EXPECT_EQ_INT(sh("for i in $(seq 200); do [ -s $R/../pull1.rc ] && break; sleep 0.05; done; "
                     "cat $R/../pull1.rc"), 0);
    EXPECT(!strncmp(out_buf, "0\n", 2));
    EXPECT_EQ_INT(sh("$C models verify locked && ls -A $CAIRN_HOME/models/.partial"), 0);
    EXPECT(strstr(out_buf, "locked.") == NULL); /* no lock, partial or state left */
    /* a pull killed with -9 leaves its lock file, but not the lock */
    EXPECT_EQ_INT(sh("$C models rm locked >/dev/null && ($C models pull --retry-delay 50 locked & pid=$!; "
                     "sleep 1; kill -9 $pid; wait $pid; true) 2>/dev/null; "
                     "ls $CAIRN_HOME/models/.partial"), 0);
    EXPECT_CONTAINS(out_buf, "locked.lock");
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 locked && $C models verify locked"), 0);
    server_stop();
}

/* A redirect whose body never ends (1 GB of zeros): the body is dropped
** and cut short, the Location followed, for a model and for the catalog. */
TEST(models_redirect_with_endless_body)
{
    setup();
    EXPECT_EQ_INT(publish_one(2, "fat", "fat302/", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("timeout 60 $C models pull --retry-delay 50 fat"), 0);
    EXPECT_EQ_INT(sh("$C models verify fat"), 0);
    EXPECT_EQ_INT(publish_one(3, "fat", "", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("timeout 60 $C models update --catalog-url $U/fat302/catalog.json"), 0);
    EXPECT_CONTAINS(out_buf, "serial 3");
    server_stop();
}

/* Every failure: its own message, nothing half-installed, the model that
** was active before still active. */
TEST(models_pull_failures)
{
    setup();
    char e[2048], cat[16384];
    cn_err err = {0};
    EXPECT_EQ_INT(publish_one(2, "good", "", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 good"), 0);

    static const struct { const char *path, *file, *sha; double params; const char *want; }
    cases[] = {
        {"", "m1.gguf", "0000000000000000000000000000000000000000000000000000000000000000",
         0.00028, "sha256 mismatch"},
        {"", "nan.gguf", NULL, 0.00028, "non-finite logits"},
        {"", "m2.gguf", NULL, 0.5, "billion parameters, the catalog says"},
        {"loop/", "m2.gguf", NULL, 0.00028, "more than 10 redirects"},
        {"status=404/", "m2.gguf", NULL, 0.00028, "HTTP 404"},
        {"status=500/", "m2.gguf", NULL, 0.00028, "HTTP 500"},
        {"stall/", "m2.gguf", NULL, 0.00028, "stalled"},
        {"tohttp/", "m2.gguf", NULL, 0.00028, "which is refused"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EXPECT_EQ_INT(publish_one(3 + (int)i, "good", cases[i].path, cases[i].file,
              cases[i].params, cases[i].sha), 0);
        EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 --stall-timeout 1 --retries 2 good"), 1);
        EXPECT_CONTAINS(err_buf, cases[i].want);
        /* no partial data is left when none arrived or it was found bad */
        EXPECT_EQ_INT(sh("ls -A $CAIRN_HOME/models/.partial"), 0);
        EXPECT(strstr(out_buf, "good.gguf") == NULL);
        /* the first version is still installed, active and intact */
        EXPECT_EQ_INT(sh("$C models verify good && $C models list"), 0);
        EXPECT_CONTAINS(out_buf, "active");
        EXPECT(strstr(out_buf, "rollback") == NULL);
    }
    /* a 206 for other bytes than those asked for: refused at the first
    ** byte, with the ranges named, instead of a hash mismatch at the end */
    EXPECT_EQ_INT(publish_one(14, "shifted", "shiftrange=1000/", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 --min-part-size 100000 shifted"), 1);
    EXPECT_CONTAINS(err_buf, "the server sent 'bytes ");
    EXPECT_CONTAINS(err_buf, "a broken server or cache");
    EXPECT_EQ_INT(sh("ls -A $CAIRN_HOME/models $CAIRN_HOME/models/.partial"), 0);
    EXPECT(strstr(out_buf, "shifted") == NULL); /* nothing arrived, nothing kept */
    /* an entry without a digest: refused by name before anything is
    ** downloaded (the server sees no request for it) */
    EXPECT_EQ_INT(publish_one(15, "nohash", "", "m2.gguf", 0.00028, ""), 0);
    EXPECT_EQ_INT(sh(": > $R/../srv.log; $C models pull --retry-delay 50 nohash"), 1);
    EXPECT_CONTAINS(err_buf, "nohash: the catalog publishes no sha256");
    EXPECT_EQ_INT(sh("cat $R/../srv.log; ls -A $CAIRN_HOME/models"), 0);
    EXPECT(strstr(out_buf, "m2.gguf") == NULL && strstr(out_buf, "nohash") == NULL);
    /* import, by contrast, hashes the local file itself */
    EXPECT_EQ_INT(sh("$C models import $R/m2.gguf --name nohash && $C models list --json"), 0);
    EXPECT_EQ_INT(sh("sha256sum $R/m2.gguf | cut -c1-64"), 0);
    char want[80];
    snprintf(want, sizeof want, "\"sha256\": \"%.64s\"", out_buf);
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT_CONTAINS(out_buf, want);
    EXPECT_EQ_INT(sh("$C models rm nohash"), 0);
    /* a truncated file on the server: refused before a byte lands */
    entry(e, sizeof e, "trunc", "chat", "llama", "", "trunc.gguf", 0.00028, NULL);
    char fixed[2048];
    snprintf(fixed, sizeof fixed, "%s", e);
    char *sz = strstr(fixed, "\"size\": 500000");
    EXPECT(sz != NULL);
    if (sz)
        memcpy(sz, "\"size\": 999999", 14); /* the catalog's size, not the server's */
    snprintf(cat, sizeof cat, "[%s]", fixed);
    EXPECT_EQ_INT(publish(20, cat), 0);
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 trunc"), 1);
    EXPECT_CONTAINS(err_buf, "not the 999999-byte file the catalog lists");
    EXPECT_EQ_INT(sh("ls -A $CAIRN_HOME/models/.partial"), 0);
    EXPECT(strstr(out_buf, "trunc") == NULL);
    /* a full disk: refused before a byte is requested, nothing installed */
    EXPECT_EQ_INT(publish_one(21, "big", "", "m1.gguf", 0.00028, NULL), 0);
    sh(": > $R/../srv.log");
    EXPECT_EQ_INT(pull_with_free_bytes("big", NULL, 1000000, &err), CN_EIO);
    EXPECT_CONTAINS(err.msg, "not enough disk space");
    EXPECT_EQ_INT(sh("$C models list; cat $R/../srv.log"), 0);
    EXPECT(strstr(out_buf, "big") == NULL && strstr(out_buf, "m1.gguf") == NULL);
    /* the hook lives in the test program only: the environment variable
    ** that once pretended the disk was full does nothing to the binary */
    EXPECT_EQ_INT(sh("CAIRN_TEST_FREE_BYTES=1000000 $C models pull --retry-delay 50 big"), 0);
    server_stop();
}

/* A real small filesystem: the space check refuses, and when the check is
** passed (a file written behind its back), reserving the file fails cleanly. */
TEST(models_pull_on_a_full_tmpfs)
{
    if (sh("mkdir -p $R/../small && mount -t tmpfs -o size=3m tmpfs $R/../small") != 0)
        SKIP("cannot mount a tmpfs here (not root, or no permission in this container)");
    setup();
    EXPECT_EQ_INT(publish_one(2, "good", "", "m1.gguf", 0.00028, NULL), 0);
    EXPECT_EQ_INT(sh("CAIRN_HOME=$R/../small/home $C models update && "
                     "CAIRN_HOME=$R/../small/home $C models pull --retry-delay 50 good"), 1);
    EXPECT_CONTAINS(err_buf, "not enough disk space");
    EXPECT_EQ_INT(sh("head -c 2500000 /dev/zero > $R/../small/fill"), 0);
    char home[1100];
    snprintf(home, sizeof home, "%s/small/home", test_tmpdir());
    cn_err err = {0};
    EXPECT_EQ_INT(pull_with_free_bytes("good", home, 999999999, &err), CN_EIO);
    EXPECT_CONTAINS(err.msg, "disk is full");
    EXPECT_EQ_INT(sh("ls -A $R/../small/home/models/.partial"), 0);
    EXPECT(strstr(out_buf, "good") == NULL); /* no reserved space left behind */
    sh("umount $R/../small");
    server_stop();
}

/* The disk fills between the model file and its manifest (a tmpfs with
** room for the file and not one page more): the import fails with the
** manifest named, and the unlisted model file does not stay behind. */
TEST(models_install_full_disk_leaves_no_orphan)
{
    sh("umount $R/../tiny 2>/dev/null; rm -rf $R/../tiny");
    /* aidreams260K.gguf: 1068640 bytes, 261 pages of 4 KiB */
    if (sh("mkdir -p $R/../tiny && mount -t tmpfs -o size=%d tmpfs $R/../tiny", 261 * 4096) != 0)
        SKIP("cannot mount a tmpfs here (not root, or no permission in this container)");
    char home[1100];
    snprintf(home, sizeof home, "%s/tiny/home", test_tmpdir());
    fake_free = (int64_t)1 << 40; /* past the up-front space check */
    mdl_free_bytes_hook = fake_free_bytes;
    cn_err err = {0};
    int rc = mdl_import(home, test_data("models/aidreams260K.gguf"), "tiny", NULL, NULL, NULL,
                        NULL, NULL, &err);
    mdl_free_bytes_hook = NULL;
    EXPECT_EQ_INT(rc, CN_EIO);
    EXPECT_CONTAINS(err.msg, "manifest.json");
    EXPECT_EQ_INT(sh("find $R/../tiny/home/models -type f; df -k $R/../tiny | tail -1"), 0);
    EXPECT(strstr(out_buf, ".gguf") == NULL);
    EXPECT_EQ_INT(sh("umount $R/../tiny"), 0);
}

/* Progress callback that appends to the file being imported once its
** checks begin: a file still being written while it is imported. */
static void grow_source(void *ctx, const mdl_progress *p)
{
    if (strcmp(p->phase, "smoke-test"))
        return;
    FILE *f = fopen((const char *)ctx, "ab");
    if (f) {
        fputs("appended while importing", f);
        fclose(f);
    }
}

/* What import records is what it installed: the checks run on Cairn's own
** copy, so a source file that changes meanwhile cannot leave a manifest
** whose sha256 and size describe other bytes. */
TEST(models_import_installs_the_bytes_it_checked)
{
    char src[1100], home[1100];
    snprintf(src, sizeof src, "%s/growing.gguf", test_tmpdir());
    snprintf(home, sizeof home, "%s/ihome", test_tmpdir());
    EXPECT_EQ_INT(sh("rm -rf %s && cp %s %s", home, test_data("models/aidreams260K.gguf"), src),
                  0);
    cn_err err = {0};
    mdl_installed m;
    EXPECT_EQ_INT(mdl_import(home, src, "growing", NULL, NULL, grow_source, src, &m, &err),
                  CN_OK);
    EXPECT_EQ_INT(mdl_verify(home, "growing", NULL, NULL, &err), CN_OK);
    EXPECT_EQ_INT(m.size, 1068640);
    EXPECT_EQ_INT(sh("cmp %s '%s' && ls -A %s/models/.partial",
                     test_data("models/aidreams260K.gguf"), m.path, home), 0);
    EXPECT_STR(out_buf, ""); /* no staged copy or lock left */
}

TEST(models_catalog_update_refuses_bad_signatures)
{
    setup();
    EXPECT_EQ_INT(publish_one(5, "good", "", "m1.gguf", 0.00028, NULL), 0);
    /* changed after signing */
    EXPECT_EQ_INT(sh("sed -i 's/test model/evil model/' $R/catalog.json && $C models update"), 1);
    EXPECT_CONTAINS(err_buf, "does not verify");
    /* missing signature */
    EXPECT_EQ_INT(sh("rm $R/catalog.json.sig && $C models update"), 1);
    EXPECT_CONTAINS(err_buf, "HTTP 404");
    EXPECT_CONTAINS(err_buf, "never used");
    /* signed by another key */
    EXPECT_EQ_INT(sh("$T/catalog-sign keygen $R/../other.key >/dev/null && $T/catalog-sign sign "
                     "$R/../other.key $R/catalog.json >/dev/null && $C models update"), 1);
    EXPECT_CONTAINS(err_buf, "does not verify");
    /* an older catalog, properly signed: a replay */
    EXPECT_EQ_INT(publish_one(4, "good", "", "m1.gguf", 0.00028, NULL), 1);
    EXPECT_CONTAINS(err_buf, "older than the catalog in use");
    /* the catalog in use is still the good one */
    EXPECT_EQ_INT(sh("$C models list --all --json"), 0);
    EXPECT_CONTAINS(out_buf, "\"good\"");
    /* tampering with the stored copy is caught at load, never believed */
    EXPECT_EQ_INT(sh("sed -i 's/test model/evil model/' $CAIRN_HOME/models/catalog.json; "
                     "$C models list --all"), 1);
    EXPECT_CONTAINS(err_buf, "does not verify");
    server_stop();
}

/* `update --catalog-key K` is remembered with the catalog: later loads
** (no key given) verify with K, tampering is still caught, and the key
** cannot be swapped for the built-in one by a plain `update`. */
TEST(models_catalog_key_is_remembered)
{
    setup();
    EXPECT_EQ_INT(publish_one(7, "keyed", "", "m1.gguf", 0.00028, NULL), 0);
    /* no catalog_key in the settings: only the command line names the key */
    EXPECT_EQ_INT(sh("rm -rf $CAIRN_HOME && printf 'catalog_url = %%s/catalog.json\\n' $U > "
                     "$CAIRN_CONFIG && $C models update --catalog-key %s", pubkey), 0);
    EXPECT_CONTAINS(out_buf, "signature verified");
    EXPECT_EQ_INT(sh("$C models list --all --json"), 0);
    EXPECT_CONTAINS(out_buf, "\"keyed\"");
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 keyed"), 0);
    /* the stored signature file names the key */
    EXPECT_EQ_INT(sh("cat $CAIRN_HOME/models/catalog.json.sig"), 0);
    EXPECT_CONTAINS(out_buf, pubkey);
    /* a plain update (the built-in key) is refused and changes nothing */
    EXPECT_EQ_INT(sh("$C models update"), 1);
    EXPECT_CONTAINS(err_buf, "does not verify");
    EXPECT_EQ_INT(sh("$C models list --all --json"), 0);
    EXPECT_CONTAINS(out_buf, "\"keyed\"");
    /* a replay under the same key is still refused */
    EXPECT_EQ_INT(sh("printf '{\"serial\": 3, \"models\": []}' > $R/catalog.json && "
                     "$T/catalog-sign sign $R/../test.key $R/catalog.json >/dev/null && "
                     "$C models update --catalog-key %s", pubkey), 1);
    EXPECT_CONTAINS(err_buf, "older than the catalog in use");
    /* tampering with the stored copy is caught with the stored key */
    EXPECT_EQ_INT(sh("sed -i 's/test model/evil model/' $CAIRN_HOME/models/catalog.json; "
                     "$C models list --all"), 1);
    EXPECT_CONTAINS(err_buf, "does not verify");
    server_stop();
}

TEST(models_import_export_embed)
{
    const char *bert = test_tiny_bert();
    sh("rm -rf $CAIRN_HOME $R/../exp && mkdir -p $R/../exp");
    EXPECT_EQ_INT(sh("$C models import %s --name my-dreams", test_data("models/aidreams260K.gguf")),
                  0);
    EXPECT_CONTAINS(out_buf, "imported");
    EXPECT_CONTAINS(out_buf, "chat");
    EXPECT_EQ_INT(sh("$C models export my-dreams $R/../exp && cd $R/../exp && sha256sum -c "
                     "my-dreams.sha256"), 0);
    EXPECT_CONTAINS(out_buf, "my-dreams.gguf: OK");
    EXPECT_EQ_INT(sh("$C models import /nonexistent.gguf"), 1);
    EXPECT_CONTAINS(err_buf, "/nonexistent.gguf");
    EXPECT_EQ_INT(sh("head -c 1000 /dev/urandom > $R/../junk.gguf && $C models import "
                     "$R/../junk.gguf"), 1);
    EXPECT_CONTAINS(err_buf, "junk.gguf");
    EXPECT_EQ_INT(sh("$C models import %s --name '../../etc'",
                     test_data("models/aidreams260K.gguf")), 1);
    EXPECT_CONTAINS(err_buf, "is not a model name");
    if (!bert)
        return;
    /* an embedding model becomes the active one, and `cairn add` uses it */
    EXPECT_EQ_INT(sh("$C models import %s", bert), 0);
    EXPECT_CONTAINS(out_buf, "embed");
    EXPECT_EQ_INT(sh("printf 'The pump needs priming.' > $R/../doc.txt && $C add $R/../doc.txt"),
                  0);
    EXPECT_CONTAINS(err_buf, "passages embedded");
    EXPECT_EQ_INT(sh("$C search pump"), 0);
    EXPECT_CONTAINS(err_buf, "(hybrid search)");
}

/* Rerankers the engine runs are pulled like any model (smoke test: one
** score), also from a catalog that knows their size only roughly
** ("size_exact": false, as for jina-reranker-v1-tiny-en): the server's
** length is taken when it is near the catalog's figure, the sha256 verifies
** the bytes, the space check counts the larger size. Rerankers the engine
** cannot run are refused by name, before a byte is downloaded. */
TEST(models_pull_rerankers)
{
    setup();
    /* a jina-bert-v2 reranker (the shape test_jina checks against llama.cpp)
    ** and a BERT without a head */
    EXPECT_EQ_INT(sh("$T/mkmodel --arch jina-bert-v2 --n-layer 2 --n-embd 96 --n-head 6 "
                     "--n-head-kv 6 --n-ff 256 --ctx 512 --type f16 --rerank --pre jina-v1-en "
                     "--tokenizer %s -o $R/jina.gguf && stat -c %%s $R/jina.gguf",
                     test_data("vocab/ggml-vocab-gpt-2.gguf")), 0);
    long long exact = atoll(out_buf);
    const char *bert = test_tiny_bert();
    EXPECT(exact > 1000000 && bert != NULL);
    if (exact <= 1000000 || !bert)
        return;
    sh("cp %s $R/bert.gguf", bert);
    char e1[2048], e2[2048], e3[2048], e4[2048], cat[9000];
    entry(e1, sizeof e1, "jina", "rerank", "jina-bert-v2", "", "jina.gguf", 0.0054, NULL);
    entry(e3, sizeof e3, "xlmr", "rerank", "xlm-roberta", "", "jina.gguf", 0.0054, NULL);
    entry(e4, sizeof e4, "headless", "rerank", "bert", "", "bert.gguf", 0, NULL);
    /* the catalog's size: about 3 % off the real one, marked approximate */
    char exact_s[64], approx_s[96];
    snprintf(exact_s, sizeof exact_s, "\"size\": %lld,", exact);
    snprintf(approx_s, sizeof approx_s, "\"size\": %lld, \"size_exact\": false,",
             exact + exact * 3 / 100);
    char *at = strstr(e1, exact_s);
    EXPECT(at != NULL);
    if (!at)
        return;
    snprintf(e2, sizeof e2, "%.*s%s%s", (int)(at - e1), e1, approx_s, at + strlen(exact_s));
    snprintf(cat, sizeof cat, "[%s, %s, %s]", e2, e3, e4);
    EXPECT_EQ_INT(publish(2, cat), 0);
    EXPECT_EQ_INT(sh("$C models list --all"), 0);
    EXPECT_CONTAINS(out_buf, "~"); /* the approximate size is shown as such */

    /* a full disk by the catalog's (larger) figure, though the file would
    ** fit: refused, nothing fetched but the length */
    cn_err err = {0};
    int64_t approx = exact + exact * 3 / 100, margin = (int64_t)64 << 20;
    EXPECT_EQ_INT(pull_with_free_bytes("jina", NULL, exact + margin + (approx - exact) / 2, &err),
                  CN_EIO);
    EXPECT_CONTAINS(err.msg, "not enough disk space");

    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 jina"), 0);
    EXPECT_EQ_INT(sh("$C models list --json"), 0);
    EXPECT_CONTAINS(out_buf, "\"role\": \"rerank\"");
    char want[64];
    snprintf(want, sizeof want, "\"size\": %lld", exact); /* what was installed, exactly */
    EXPECT_CONTAINS(out_buf, want);
    EXPECT_EQ_INT(sh("$C models verify jina"), 0);
    /* installed by name, it reranks */
    EXPECT_EQ_INT(sh("$C rerank -m jina --json 'what do cats eat' 'cats eat meat' 'stocks fell'"),
                  0);
    EXPECT_CONTAINS(out_buf, "score");

    /* the server's file far from the catalog's approximate size: refused
    ** after the HEAD alone */
    char e5[2048];
    snprintf(approx_s, sizeof approx_s, "\"size\": %lld, \"size_exact\": false,", exact * 2);
    snprintf(e5, sizeof e5, "%.*s%s%s", (int)(at - e1), e1, approx_s, at + strlen(exact_s));
    char *nm = strstr(e5, "\"jina\"");
    if (nm)
        memcpy(nm, "\"far1\"", 6);
    snprintf(cat, sizeof cat, "[%s]", e5);
    EXPECT_EQ_INT(publish(3, cat), 0);
    EXPECT_EQ_INT(sh(": > $R/../srv.log; $C models pull --retry-delay 50 far1"), 1);
    EXPECT_CONTAINS(err_buf, "not about");
    EXPECT_EQ_INT(read_server_log(1), 0);
    EXPECT_EQ_INT(sh("awk '{n++; s += $4} END {print n, s}' $R/../srv.log"), 0);
    EXPECT_STR(out_buf, "1 0\n"); /* one request, no body sent: the HEAD */

    /* an architecture the engine has no reranker for: refused by name, no request */
    snprintf(cat, sizeof cat, "[%s, %s]", e3, e4);
    EXPECT_EQ_INT(publish(4, cat), 0);
    EXPECT_EQ_INT(sh(": > $R/../srv.log; $C models pull --retry-delay 50 xlmr"), 1);
    EXPECT_CONTAINS(err_buf, "xlmr: a reranker of architecture 'xlm-roberta'");
    EXPECT_EQ_INT(sh("cat $R/../srv.log"), 0);
    EXPECT(strstr(out_buf, "jina.gguf") == NULL);
    /* listed as a reranker, but the file has no head: the smoke test says so */
    EXPECT_EQ_INT(sh("$C models pull --retry-delay 50 headless"), 1);
    EXPECT_CONTAINS(err_buf, "is not a reranker");
    EXPECT_EQ_INT(sh("ls -A $CAIRN_HOME/models/.partial; $C models list"), 0);
    EXPECT(strstr(out_buf, "headless") == NULL);
    /* import knows a reranker by its head */
    EXPECT_EQ_INT(sh("$C models import $R/jina.gguf --name jina2"), 0);
    EXPECT_CONTAINS(out_buf, "rerank");
    server_stop();
}

/* No command but `models pull` / `models update` touches the network: every
** other one works in a network namespace without interfaces. */
TEST(models_offline_commands_work_without_network)
{
    if (sh("unshare -n true") != 0)
        SKIP("unshare -n is not permitted here");
    const char *bert = test_tiny_bert();
    const char *m = test_data("models/aidreams260K.gguf");
    sh("rm -rf $CAIRN_HOME $R/../off && mkdir -p $R/../off && printf 'The pump needs priming. "
       "The valve is red.' > $R/../off/doc.txt");
    const char *cmds[] = {
        "$C add $R/../off",
        "$C search pump",
        "$C ask 'pump priming'",
        "$C ls",
        "$C sync",
        "$C doctor",
        "$C inspect %s",
        "$C tokenize -m %s hello",
        "$C generate -m %s -p Once -n 4",
        "$C models import %s --name d",
        "$C models list --all",
        "$C models recommend",
        "$C models use d",
        "$C models verify d",
        "$C models export d $R/../off",
        "$C rm $R/../off/doc.txt",
        "$C models rm d",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char c[512];
        snprintf(c, sizeof c, cmds[i], m);
        int rc = sh("unshare -n sh -c \"%s\"", c);
        if (rc != 0)
            fprintf(stderr, "  offline: %s -> %d: %s\n", c, rc, err_buf);
        EXPECT_EQ_INT(rc, 0);
    }
    if (bert) {
        EXPECT_EQ_INT(sh("unshare -n sh -c \"$C index -e %s && $C embed -m %s hello\"", bert,
                         bert), 0);
    }
    /* and pull, which needs the network, says so plainly */
    EXPECT_EQ_INT(sh("unshare -n $C models update --catalog-url https://example.com/c.json"), 1);
    EXPECT_CONTAINS(err_buf, "example.com");
}
