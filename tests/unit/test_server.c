/*
** Tests of src/server: request parsing and its limits (in process), then
** the integration suites in tests/server/ (node's test runner with the
** official openai package, curl and playwright-core), whose counts join
** this run's final line.
*/
#include "test.h"
#include "vault/vault.h"
#include "server/srv_int.h"
#include "library/lib_int.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <sodium.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static srv_limits limits(void)
{
    srv_opts o;
    srv_opts_default(&o);
    return o.lim;
}

/* Parse body as a chat request; returns the status (0 = accepted). */
static int chat_status(const char *body, int api, srv_gen_req *out, srv_error *e)
{
    srv_limits lim = limits();
    cn_arena a;
    cn_arena_init(&a, 1 << 20);
    srv_gen_req r;
    int rc = srv_parse_chat(body, strlen(body), api, &lim, &a, &r, e);
    if (out && rc == 0) {
        *out = r;
        out->msgs = NULL; /* lives in the arena */
        out->root = NULL;
    }
    srv_gen_req_free(&r);
    cn_arena_free(&a);
    return rc ? e->status : 0;
}

TEST(server_parse_chat_accepts_openai_and_ollama_shapes)
{
    srv_error e;
    srv_gen_req r;
    EXPECT_EQ_INT(chat_status("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                              "{\"type\":\"text\",\"text\":\"b\"}]}],\"max_tokens\":7,"
                              "\"temperature\":0.5,\"top_p\":0.9,\"seed\":3,\"stop\":[\"x\",\"yy\"],"
                              "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                              SRV_API_OPENAI, &r, &e),
                  0);
    EXPECT_EQ_INT(r.n_msgs, 2);
    EXPECT_EQ_INT(r.max_tokens, 7);
    EXPECT_NEAR(r.temperature, 0.5, 1e-12);
    EXPECT_NEAR(r.top_p, 0.9, 1e-12);
    EXPECT(r.has_seed && r.seed == 3);
    EXPECT_EQ_INT(r.n_stop, 2);
    EXPECT(r.stream && r.include_usage);
    /* defaults: no stream for OpenAI, the server's token default, sampler unset */
    EXPECT_EQ_INT(chat_status("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                              SRV_API_OPENAI, &r, &e), 0);
    EXPECT(!r.stream);
    EXPECT_EQ_INT(r.max_tokens, limits().default_tokens);
    EXPECT(r.temperature < 0 && r.top_p < 0 && !r.has_seed);
    /* Ollama: streams by default, options hold the sampling fields */
    EXPECT_EQ_INT(chat_status("{\"model\":\"m:latest\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                              "\"options\":{\"num_predict\":9,\"top_k\":5,\"stop\":[\"\\n\"]}}",
                              SRV_API_OLLAMA, &r, &e), 0);
    EXPECT(r.stream);
    EXPECT_EQ_INT(r.max_tokens, 9);
    EXPECT_EQ_INT(r.top_k, 5);
    EXPECT_EQ_INT(r.n_stop, 1);
    EXPECT_EQ_INT(chat_status("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                              "\"options\":{\"num_predict\":-1}}", SRV_API_OLLAMA, &r, &e), 0);
    EXPECT_EQ_INT(r.max_tokens, limits().max_tokens);
}

TEST(server_parse_chat_rejects_bad_fields_naming_them)
{
    static const struct {
        const char *body, *param;
        int status;
    } cases[] = {
        {"", "", 400},
        {"{", "", 400},
        {"[]", "", 400},
        {"{\"model\":\"m\"}", "messages", 400},
        {"{\"model\":\"m\",\"messages\":{}}", "messages", 400},
        {"{\"model\":\"m\",\"messages\":[]}", "messages", 400},
        {"{\"model\":\"m\",\"messages\":[5]}", "messages", 400},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "messages[0].role", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages[0].role", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":{}}]}", "messages[0].content", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         "messages[0].content", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", "",
         400}, /* NUL: refused by the JSON parser */
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model", 400},
        {"{\"model\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-1}", "max_tokens", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", "max_tokens", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":99999999}", "max_tokens", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", "temperature", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":0}", "top_p", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":\"1\"}", "seed", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"\"]}", "stop", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "n", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", "stream", 400},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":3}", "stream_options", 400},
        {"{\"model\":\"m\",\"model\":\"n\",\"messages\":[]}", "", 400}, /* duplicate key */
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(cases); i++) {
        srv_error e = {0};
        int st = chat_status(cases[i].body, SRV_API_OPENAI, NULL, &e);
        if (st != cases[i].status || strcmp(e.param, cases[i].param) || !e.msg[0])
            test_fail_at(__FILE__, __LINE__, "case %zu %s: status %d param '%s' msg '%s'", i,
                         cases[i].body, st, e.param, e.msg);
    }
    srv_error e;
    EXPECT_EQ_INT(chat_status("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                              "\"options\":[]}", SRV_API_OLLAMA, NULL, &e), 400);
    EXPECT_STR(e.param, "options");
}

TEST(server_limits_body_depth_messages)
{
    srv_limits lim = limits();
    srv_error e;
    json_t *j;
    /* size */
    size_t n = lim.max_body + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    EXPECT_EQ_INT(srv_parse_body(big, n, &lim, &j, &e), -1);
    EXPECT_EQ_INT(e.status, 413);
    free(big);
    /* depth: counted outside strings only */
    EXPECT_EQ_INT(srv_json_depth("{\"a\":[[{}]]}", 12, 32), 4);
    EXPECT_EQ_INT(srv_json_depth("{\"a\":\"[[[[[[\\\"[[[\"}", 19, 32), 1);
    EXPECT_EQ_INT(srv_json_depth("[[[[[[[[", 8, 3), 4); /* stops at max + 1 */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    EXPECT_EQ_INT(srv_parse_body(deep, 200, &lim, &j, &e), -1);
    EXPECT_EQ_INT(e.status, 400);
    EXPECT_CONTAINS(e.msg, "nested deeper than 32");
    /* messages */
    cn_buf b;
    cn_buf_init(&b, 1 << 20);
    cn_buf_printf(&b, "{\"model\":\"m\",\"messages\":[");
    for (int i = 0; i <= lim.max_messages; i++)
        cn_buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"x\"}", i ? "," : "");
    cn_buf_printf(&b, "]}");
    EXPECT_EQ_INT(chat_status(b.data, SRV_API_OPENAI, NULL, &e), 400);
    EXPECT_CONTAINS(e.msg, "the limit is 512");
    cn_buf_free(&b);
}

TEST(server_parse_completion_and_embeddings)
{
    srv_limits lim = limits();
    cn_arena a;
    cn_arena_init(&a, 1 << 20);
    srv_gen_req r;
    srv_error e;
    const char *ok = "{\"model\":\"m\",\"prompt\":[\"once\"],\"max_tokens\":3}";
    EXPECT_EQ_INT(srv_parse_completion(ok, strlen(ok), SRV_API_OPENAI, &lim, &a, &r, &e), 0);
    EXPECT_STR(r.prompt, "once");
    srv_gen_req_free(&r);
    const char *two = "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}";
    EXPECT_EQ_INT(srv_parse_completion(two, strlen(two), SRV_API_OPENAI, &lim, &a, &r, &e), -1);
    EXPECT_STR(e.param, "prompt");
    srv_gen_req_free(&r);
    const char *ol = "{\"model\":\"m\",\"prompt\":\"p\",\"system\":\"s\",\"raw\":true}";
    EXPECT_EQ_INT(srv_parse_completion(ol, strlen(ol), SRV_API_OLLAMA, &lim, &a, &r, &e), 0);
    EXPECT(r.raw && r.stream && !strcmp(r.system, "s"));
    srv_gen_req_free(&r);

    srv_embed_req er;
    const char *emb = "{\"model\":\"e\",\"input\":[\"a\",\"bc\"],\"encoding_format\":\"base64\"}";
    EXPECT_EQ_INT(srv_parse_embed(emb, strlen(emb), SRV_API_OPENAI, &lim, &a, &er, &e), 0);
    EXPECT_EQ_INT(er.n_inputs, 2);
    EXPECT_EQ_INT(er.lens[1], 2);
    EXPECT(er.base64);
    srv_embed_req_free(&er);
    static const char *const bad[] = {
        "{\"model\":\"e\"}", "{\"model\":\"e\",\"input\":[]}", "{\"model\":\"e\",\"input\":[1,2]}",
        "{\"model\":\"e\",\"input\":3}", "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"hex\"}",
    };
    for (size_t i = 0; i < CN_ARRAY_LEN(bad); i++) {
        EXPECT_EQ_INT(srv_parse_embed(bad[i], strlen(bad[i]), SRV_API_OPENAI, &lim, &a, &er, &e), -1);
        EXPECT_EQ_INT(e.status, 400);
        srv_embed_req_free(&er);
    }
    cn_arena_free(&a);
}

/* Every length and every byte value survives base64 and back (decoded by
** libsodium's strict decoder, standard alphabet, padding required, which is
** what OpenAI clients' base64 decoding accepts), and the length returned is
** the string's. */
TEST(server_base64_round_trip)
{
    unsigned char in[300], back[300];
    char out[4 * 100 + 8];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 167 + 13); /* every byte value appears */
    for (size_t n = 0; n <= 300; n += n < 12 ? 1 : 37) {
        size_t len = srv_base64(in, n, out);
        EXPECT_EQ_INT(len, 4 * ((n + 2) / 3));
        EXPECT_EQ_INT(strlen(out), len);
        size_t got = 0;
        EXPECT_EQ_INT(sodium_base642bin(back, sizeof back, out, len, NULL, &got, NULL,
                                        sodium_base64_VARIANT_ORIGINAL), 0);
        EXPECT_EQ_INT(got, n);
        EXPECT(memcmp(back, in, n) == 0);
        EXPECT(strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
               len);
    }
}

TEST(server_base64_and_filenames)
{
    char out[32];
    EXPECT_EQ_INT(srv_base64("", 0, out), 0);
    srv_base64("f", 1, out);
    EXPECT_STR(out, "Zg==");
    srv_base64("fo", 2, out);
    EXPECT_STR(out, "Zm8=");
    srv_base64("foobar", 6, out);
    EXPECT_STR(out, "Zm9vYmFy");
    float one = 1.0f; /* little-endian 00 00 80 3f */
    srv_base64(&one, 4, out);
    EXPECT_STR(out, "AACAPw==");
    char name[200];
    srv_safe_filename("../../etc/passwd", name, sizeof name);
    EXPECT_STR(name, "passwd");
    srv_safe_filename("C:\\Users\\x\\report (final).pdf", name, sizeof name);
    EXPECT_STR(name, "report (final).pdf");
    srv_safe_filename(".bashrc", name, sizeof name);
    EXPECT_STR(name, "bashrc");
    srv_safe_filename("a;b|c$(rm).pdf", name, sizeof name);
    EXPECT_STR(name, "a_b_c_(rm).pdf");
    srv_safe_filename("", name, sizeof name);
    EXPECT_STR(name, "upload");
    srv_safe_filename("/", name, sizeof name);
    EXPECT_STR(name, "upload");
    char longname[400];
    memset(longname, 'a', 399);
    longname[399] = 0;
    srv_safe_filename(longname, name, sizeof name);
    EXPECT_EQ_INT(strlen(name), 120);
    EXPECT(srv_host_is_loopback("127.0.0.1") && srv_host_is_loopback("127.9.8.7") &&
           srv_host_is_loopback("localhost") && srv_host_is_loopback("::1") &&
           srv_host_is_loopback("[::1]"));
    EXPECT(!srv_host_is_loopback("0.0.0.0") && !srv_host_is_loopback("192.168.1.2") &&
           !srv_host_is_loopback("example.com") && !srv_host_is_loopback("::"));
}

/* A reply buffer that cannot be allocated is an error, never the other
** encoding: base64 asked, base64 or nothing. */
static void *no_memory(size_t n)
{
    (void)n;
    return NULL;
}

TEST(server_embedding_reply_keeps_its_shape_or_fails)
{
    float v[6] = {1.0f, 0.0f, 0.0f, 0.0f, 0.5f, -2.0f};
    json_t *d = srv_embedding_data(v, 2, 3, true);
    EXPECT(d && json_array_size(d) == 2);
    json_t *e1 = json_object_get(json_array_get(d, 0), "embedding");
    EXPECT(json_is_string(e1));
    EXPECT_STR(json_string_value(e1), "AACAPwAAAAAAAAAA"); /* 1.0f, 0, 0 little-endian */
    EXPECT_EQ_INT(json_integer_value(json_object_get(json_array_get(d, 1), "index")), 1);
    json_decref(d);
    srv_alloc = no_memory;
    d = srv_embedding_data(v, 2, 3, true);
    srv_alloc = cn_malloc;
    EXPECT(d == NULL); /* before: float arrays, the shape the client did not ask for */
    json_decref(d);
    d = srv_embedding_data(v, 2, 3, false);
    json_t *e2 = json_object_get(json_array_get(d, 1), "embedding");
    EXPECT(json_is_array(e2) && json_array_size(e2) == 3);
    EXPECT_NEAR(json_real_value(json_array_get(e2, 2)), -2.0, 1e-9);
    json_decref(d);
}

/* A generation whose text passes the answer limit fails with an error;
** before, the text was cut there and the answer looked complete. */
TEST(server_answer_over_the_limit_is_an_error)
{
    srv_worker w;
    cn_err err = {0};
    eng_opts eo = {.n_threads = 1};
    if (srv_worker_open(&w, JOB_GENERATE, test_data("models/aidreams260K.gguf"), &eo, 2, &err)) {
        test_fail_at(__FILE__, __LINE__, "worker: %s", err.msg);
        return;
    }
    w.name = "aidreams260K";
    size_t saved = srv_answer_limit;
    for (int round = 0; round < 2; round++) {
        srv_answer_limit = round == 0 ? 8 : saved; /* 8 bytes: a few tokens */
        srv_job j;
        srv_job_init(&j, JOB_GENERATE);
        srv_gen_req req = {.max_tokens = 48, .temperature = 0, .top_p = -1};
        srv_error e;
        EXPECT_EQ_INT(srv_prepare_prompt(&w, &req, "Once upon a time", true, &j, &e), 0);
        j.go.sampler.seed = 1;
        EXPECT_EQ_INT(srv_job_submit(&w, &j), CN_OK);
        EXPECT(srv_job_wait(&w, &j, NULL));
        if (round == 0) {
            EXPECT_EQ_INT(j.rc, CN_ELIMIT);
            EXPECT_CONTAINS(j.err.msg, "limit of 8 bytes");
            EXPECT(j.st.stop != ENG_STOP_CANCEL); /* so the stream shows the error */
        } else {
            EXPECT_EQ_INT(j.rc, CN_OK); /* the same request under the real limit */
            EXPECT(j.text.len > 8);
        }
        srv_job_free(&j);
    }
    srv_answer_limit = saved;
    srv_worker_close(&w);
}

/* One greedy completion of text on worker w: its text (malloc'd) and the
** prompt tokens it evaluated. */
static char *complete_on(srv_worker *w, const char *text, int max_tokens, int *evaluated)
{
    srv_job j;
    srv_job_init(&j, JOB_GENERATE);
    srv_gen_req req = {.max_tokens = max_tokens, .temperature = 0, .top_p = -1};
    srv_error e;
    char *out = NULL;
    if (srv_prepare_prompt(w, &req, text, true, &j, &e) == 0 && srv_job_submit(w, &j) == CN_OK &&
        srv_job_wait(w, &j, NULL) && j.rc == CN_OK) {
        out = strndup(j.text.data ? j.text.data : "", j.text.len);
        *evaluated = j.st.n_prompt_eval;
    }
    srv_job_free(&j);
    return out;
}

/* Conversations that take turns on one model: a follow-up evaluates only
** its own new tokens, though another conversation used the cache in between
** (its cache was kept and comes back), and answers as a fresh model would. */
TEST(server_conversations_keep_their_cache)
{
    srv_worker w, fresh;
    cn_err err = {0};
    eng_opts eo = {.n_threads = 1};
    const char *model = test_data("models/aidreams260K.gguf");
    if (srv_worker_open(&w, JOB_GENERATE, model, &eo, 2, &err) ||
        srv_worker_open(&fresh, JOB_GENERATE, model, &eo, 2, &err)) {
        test_fail_at(__FILE__, __LINE__, "worker: %s", err.msg);
        return;
    }
    w.name = fresh.name = "aidreams260K";
    const char *a = "I dreamed of a long river under the stars, and the water sang to me of the "
                    "places it had been, the mountains and the sea";
    const char *b = "The machine woke before dawn and counted the lights of the city one by one "
                    "until the sun rose over the hills";
    char a2[512], b2[512];
    snprintf(a2, sizeof a2, "%s, and then it asked me where I was going", a);
    snprintf(b2, sizeof b2, "%s, and it began again", b);
    int ev[4] = {0}, fev = 0;
    char *t[4] = {complete_on(&w, a, 8, &ev[0]), complete_on(&w, b, 8, &ev[1]),
                  complete_on(&w, a2, 8, &ev[2]), complete_on(&w, b2, 8, &ev[3])};
    for (int i = 0; i < 4; i++)
        EXPECT(t[i] != NULL);
    /* each follow-up evaluates its few new tokens, not its whole prompt */
    /* (the tokens at the seam may change as the text grows: a few more) */
    EXPECT(ev[0] > 30 && ev[1] > 30);
    EXPECT(ev[2] > 0 && ev[2] < ev[0] / 2);
    EXPECT(ev[3] > 0 && ev[3] < ev[1] / 2);
    EXPECT_EQ_INT(w.n_kv, 1); /* a2's conversation, kept when b2's came back */
    /* the same answers as a model that saw nothing else */
    char *f2 = complete_on(&fresh, a2, 8, &fev);
    EXPECT(fev > 2 * ev[2]);
    if (f2 && t[2])
        EXPECT_STR(t[2], f2);
    free(f2);
    char *f3 = complete_on(&fresh, b2, 8, &fev);
    if (f3 && t[3])
        EXPECT_STR(t[3], f3);
    free(f3);
    for (int i = 0; i < 4; i++)
        free(t[i]);
    srv_worker_close(&fresh);
    srv_worker_close(&w);
}

typedef struct status_poller {
    srv_worker *w;
    atomic_bool stop;
    atomic_int polls;
    int bad;
} status_poller;

static void *poll_status(void *arg)
{
    status_poller *p = arg;
    while (!atomic_load(&p->stop)) {
        json_t *m = srv_worker_json(p->w);
        json_int_t q = json_integer_value(json_object_get(m, "queued"));
        p->bad += q < 0 || q > p->w->cap;
        atomic_fetch_add(&p->polls, 1);
        json_decref(m);
    }
    return NULL;
}

/* /api/status reads a model's queue while requests join and leave it: under
** its lock (`make tsan` runs this; before, the length was read bare and
** ThreadSanitizer reported the race). */
TEST(server_status_reads_the_queue_under_its_lock)
{
    srv_worker w;
    cn_err err = {0};
    eng_opts eo = {.n_threads = 1};
    if (srv_worker_open(&w, JOB_GENERATE, test_data("models/aidreams260K.gguf"), &eo, 4, &err)) {
        test_fail_at(__FILE__, __LINE__, "worker: %s", err.msg);
        return;
    }
    w.name = "aidreams260K";
    status_poller p = {.w = &w};
    atomic_init(&p.stop, false);
    atomic_init(&p.polls, 0);
    pthread_t th;
    pthread_create(&th, NULL, poll_status, &p);
    /* the poller runs before the jobs start, so the two overlap even when a
    ** loaded machine is slow to schedule it (it once polled not at all) */
    for (int i = 0; i < 10000 && atomic_load(&p.polls) == 0; i++)
        usleep(1000);
    enum { N = 4 };
    for (int round = 0; round < 6; round++) {
        srv_job j[N];
        for (int i = 0; i < N; i++) {
            srv_job_init(&j[i], JOB_GENERATE);
            srv_gen_req req = {.max_tokens = 2, .temperature = 0, .top_p = -1};
            srv_error e;
            EXPECT_EQ_INT(srv_prepare_prompt(&w, &req, "Once", true, &j[i], &e), 0);
            EXPECT_EQ_INT(srv_job_submit(&w, &j[i]), CN_OK);
        }
        for (int i = 0; i < N; i++) {
            EXPECT(srv_job_wait(&w, &j[i], NULL));
            srv_job_free(&j[i]);
        }
    }
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    EXPECT(atomic_load(&p.polls) > 0);
    EXPECT_EQ_INT(p.bad, 0);
    json_t *m = srv_worker_json(&w);
    EXPECT_STR(json_string_value(json_object_get(m, "role")), "chat");
    EXPECT_EQ_INT(json_integer_value(json_object_get(m, "queued")), 0);
    json_decref(m);
    srv_worker_close(&w);
}

/* ---- library handles --------------------------------------------------------
** A server in process, without the HTTP part: its models and handles as
** srv_run sets them up. */

static srv *pool_server(const char *name, const char *embed)
{
    srv *s = cn_calloc(1, sizeof *s);
    srv_opts_default(&s->o);
    char *home = cn_malloc(600);
    snprintf(home, 600, "%.500s/%s", test_tmpdir(), name);
    s->o.home = home;
    s->o.threads = 1;
    s->o.embed_model = embed;
    pthread_mutex_init(&s->lib_mu, NULL);
    pthread_cond_init(&s->lib_cv, NULL);
    cn_err err = {0};
    eng_opts eo = {.n_threads = 1};
    if (embed && srv_worker_open(&s->embed, JOB_EMBED, embed, &eo, 8, &err))
        test_fail_at(__FILE__, __LINE__, "embedding worker: %s", err.msg);
    s->embed.name = "bert";
    if (srv_lib_open_all(s, &err))
        test_fail_at(__FILE__, __LINE__, "library: %s", err.msg);
    return s;
}

static void pool_server_free(srv *s)
{
    srv_worker_close(&s->embed);
    srv_lib_close_all(s);
    pthread_mutex_destroy(&s->lib_mu);
    pthread_cond_destroy(&s->lib_cv);
    free((char *)s->o.home);
    free(s);
}

typedef struct pool_reader {
    srv *s;
    const char *query; /* NULL: list the documents */
    double waited;     /* seconds spent getting a handle */
    int status;        /* 0, or the error's status */
    int n;             /* documents listed, or results found */
    int64_t ids[5];
    double scores[5];
    const char *mode;
    lib *l;
} pool_reader;

static int count_doc(void *ctx, const store_doc_info *d)
{
    (void)d;
    ++*(int *)ctx;
    return 0;
}

static void *pool_read(void *arg)
{
    pool_reader *p = arg;
    srv_error e = {0};
    double t0 = cn_now();
    lib *l = srv_lib_acquire(p->s, &e);
    p->waited = cn_now() - t0;
    if (!l) {
        p->status = e.status;
        return NULL;
    }
    p->l = l;
    cn_err err = {0};
    if (!p->query) {
        p->n = 0;
        if (store_list(lib_store(l), count_doc, &p->n, &err) < 0)
            p->status = 500;
    } else {
        cn_arena a;
        cn_arena_init(&a, 1 << 24);
        lib_result res[5];
        lib_search_info info;
        lib_search_opts so = {.k = 5, .embed_model = p->s->o.embed_model, .threads = 1};
        p->n = lib_search(l, p->query, &so, &a, res, &info, &err);
        p->mode = info.mode;
        for (int i = 0; i < p->n; i++) {
            p->ids[i] = res[i].passage_id;
            p->scores[i] = res[i].score;
        }
        if (p->n < 0)
            p->status = 500;
        cn_arena_free(&a);
    }
    srv_lib_release(p->s, l, false);
    return NULL;
}

static void *pool_write_wait(void *arg)
{
    srv *s = arg;
    srv_error e;
    lib *l = srv_lib_acquire_writer(s, -1, &e); /* as an upload's ingest does */
    if (l)
        srv_lib_release(s, l, false);
    return NULL;
}

/* Reads never wait behind writes: with the writer taken (an upload being
** indexed), three more uploads queued for it and another process holding
** SQLite's write lock, four reads run at once and answer at once; a wait
** that cannot end in time is a 503 with Retry-After. Before: an upload
** held a pool handle through its ingest, four of them took every handle,
** and the next read waited forever. */
TEST(server_library_reads_never_wait_behind_writes)
{
    srv *s = pool_server("pool-rw", NULL);
    int saved = srv_lib_wait_ms;
    srv_lib_wait_ms = 2000; /* a read that waited behind the writer would end in 503 */
    srv_error e;
    lib *w = srv_lib_acquire_writer(s, 0, &e);
    EXPECT(w != NULL);
    pthread_t queued[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&queued[i], NULL, pool_write_wait, s);
    /* SQLite's write lock held by another connection, as during a commit */
    char db[700];
    snprintf(db, sizeof db, "%s/library.db", s->o.home);
    sqlite3 *other = NULL;
    /* through the encrypting VFS when the library is encrypted (make
    ** test-encrypted): the pool's handles hold its key */
    EXPECT_EQ_INT(sqlite3_open_v2(db, &other, SQLITE_OPEN_READWRITE,
                                  lib_encrypted(w, NULL) ? VAULT_VFS_NAME : NULL),
                  SQLITE_OK);
    EXPECT_EQ_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    pool_reader rd[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        rd[i] = (pool_reader){.s = s};
        pthread_create(&th[i], NULL, pool_read, &rd[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        EXPECT_EQ_INT(rd[i].status, 0);
        EXPECT(rd[i].waited < 1.0);
        EXPECT_EQ_INT(rd[i].n, 0);
    }
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    srv_lib_wait_ms = 300;
    /* a remove waits for the writer at most srv_lib_wait_ms */
    double t0 = cn_now();
    EXPECT(srv_lib_acquire_writer(s, srv_lib_wait_ms, &e) == NULL);
    EXPECT_EQ_INT(e.status, 503);
    EXPECT(e.retry_after >= 1);
    EXPECT(cn_now() - t0 >= 0.25 && cn_now() - t0 < 3);
    srv_lib_release(s, w, false);
    for (int i = 0; i < 3; i++)
        pthread_join(queued[i], NULL); /* the queued uploads each had their turn */
    /* every reading handle taken: the next read is a 503 after the deadline */
    lib *held[SRV_LIB_POOL];
    for (int i = 0; i < SRV_LIB_POOL; i++)
        held[i] = srv_lib_acquire(s, &e);
    t0 = cn_now();
    pool_reader late = {.s = s};
    pool_read(&late);
    EXPECT_EQ_INT(late.status, 503);
    EXPECT(late.waited >= 0.25 && late.waited < 3);
    srv_lib_release(s, held[0], false);
    pool_reader next = {.s = s};
    pool_read(&next);
    EXPECT_EQ_INT(next.status, 0);
    for (int i = 1; i < SRV_LIB_POOL; i++)
        srv_lib_release(s, held[i], false);
    srv_lib_wait_ms = saved;
    pool_server_free(s);
}

/* The server's handles share the embedding worker's model: N handles
** searching in hybrid mode load no model of their own, read the vectors
** once (one matrix for all), and find exactly what a handle with its own
** copy of the model finds. Before: every pooled handle loaded the model,
** its thread pool and its own copy of the vectors. */
TEST(server_one_embedding_model_for_every_handle)
{
    const char *bert = test_tiny_bert(); /* made by mkmodel: never absent */
    if (!bert)
        return; /* test_tiny_bert reported the failure */
    srv *s = pool_server("pool-emb", bert);
    int loads0 = lib_encoder_loads();
    srv_error e;
    cn_err err = {0};
    lib *w = srv_lib_acquire_writer(s, -1, &e);
    const char *paths[2] = {test_data("docs/simple.pdf"), test_data("docs/notes.md")};
    lib_add_stats st;
    EXPECT_EQ_INT(lib_add(w, paths, 2, false, NULL, NULL, &st, &err), CN_OK);
    int embedded = lib_index(w, bert, 1, NULL, NULL, &err);
    EXPECT(embedded > 0);
    srv_lib_release(s, w, true);
    const char *q = "When is creme brulee served?";
    enum { N = 8 };
    pool_reader rd[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        rd[i] = (pool_reader){.s = s, .query = q};
        pthread_create(&th[i], NULL, pool_read, &rd[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    EXPECT_EQ_INT(lib_encoder_loads(), loads0); /* the worker's copy is the only one */
    /* one vector matrix, shared by every handle that searched */
    const lib_vectors *vs = NULL;
    for (int k = 0; k < SRV_LIB_POOL; k++) {
        if (!s->libs[k]->vs)
            continue;
        if (!vs)
            vs = s->libs[k]->vs;
        EXPECT(s->libs[k]->vs == vs);
    }
    EXPECT(vs != NULL);
    /* a handle with its own model: the reference */
    lib *own;
    EXPECT_EQ_INT(lib_open(&own, s->o.home, &err), CN_OK);
    cn_arena a;
    cn_arena_init(&a, 1 << 24);
    lib_result ref[5];
    lib_search_info info;
    lib_search_opts so = {.k = 5, .embed_model = bert, .threads = 1};
    int n = lib_search(own, q, &so, &a, ref, &info, &err);
    EXPECT_EQ_INT(lib_encoder_loads(), loads0 + 1);
    EXPECT_STR(info.mode, "hybrid");
    EXPECT(n > 0);
    for (int i = 0; i < N; i++) {
        EXPECT_EQ_INT(rd[i].status, 0);
        EXPECT_STR(rd[i].mode, "hybrid");
        EXPECT_EQ_INT(rd[i].n, n);
        for (int k = 0; k < n && k < rd[i].n; k++) {
            EXPECT_EQ_INT(rd[i].ids[k], ref[k].passage_id);
            EXPECT_NEAR(rd[i].scores[k], ref[k].score, 1e-6);
        }
    }
    cn_arena_free(&a);
    lib_close(own);
    /* a write makes every handle read the vectors again, once */
    w = srv_lib_acquire_writer(s, -1, &e);
    srv_lib_release(s, w, true);
    pool_reader again = {.s = s, .query = q};
    pool_read(&again);
    EXPECT(again.l->vs != NULL && again.l->vs != vs);
    EXPECT_EQ_INT(again.n, n);
    pool_server_free(s);
}

/* Another process writing the library while the server runs (`cairn add`)
** is seen by the server's handles, and its exit leaves the WAL the server
** uses in place. Before: opening a handle read the file's header through a
** descriptor of its own and closed it, which dropped every fcntl lock the
** server's other connections held, so the other process took itself for
** the last user and deleted the WAL under them: its writes were invisible
** to the server and the server's later writes were lost to everyone. */
TEST(server_handles_see_other_processes_writes)
{
    srv *s = pool_server("pool-procs", NULL);
    pool_reader before = {.s = s};
    pool_read(&before);
    EXPECT_EQ_INT(before.n, 0);
    /* a process of its own (exec'd: a forked child would share SQLite's
    ** record of this process's locks) */
    const char *bin = getenv("CAIRN_BIN");
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "%.300s add %.500s --home %.600s >/dev/null 2>&1",
             bin ? bin : "build/cairn", test_data("docs/notes.md"), s->o.home);
    EXPECT_EQ_INT(system(cmd), 0);
    char wal[700];
    snprintf(wal, sizeof wal, "%s/library.db-wal", s->o.home);
    struct stat sb;
    EXPECT(stat(wal, &sb) == 0); /* still there for the server's connections */
    for (int i = 0; i < SRV_LIB_POOL; i++) {
        pool_reader after = {.s = s};
        pool_read(&after);
        EXPECT_EQ_INT(after.n, 1);
    }
    pool_server_free(s);
}

/* Garbage of every kind never crashes the parsers. */
TEST(server_parse_survives_garbage)
{
    srv_limits lim = limits();
    uint64_t x = 99;
    char buf[512];
    const char *alphabet = "{}[]\":,0123456789.eE-+truefalsnl \\u\"messagesroleuser";
    size_t an = strlen(alphabet);
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(round % 500);
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            buf[i] = round & 1 ? (char)(x >> 56) : alphabet[(x >> 33) % an];
        }
        cn_arena a;
        cn_arena_init(&a, 1 << 20);
        srv_gen_req r;
        srv_embed_req er;
        srv_error e;
        for (int api = SRV_API_OPENAI; api <= SRV_API_OLLAMA; api++) {
            if (srv_parse_chat(buf, n, api, &lim, &a, &r, &e) && !e.status)
                test_fail_at(__FILE__, __LINE__, "round %d: failure without a status", round);
            srv_gen_req_free(&r);
            srv_parse_completion(buf, n, api, &lim, &a, &r, &e);
            srv_gen_req_free(&r);
            srv_parse_embed(buf, n, api, &lim, &a, &er, &e);
            srv_embed_req_free(&er);
        }
        cn_arena_free(&a);
    }
}

/* The integration suites: real clients against a real `cairn serve`, run
** after the C tests (beside them, the extra load made the desktop-keyring
** test's daemon miss its start). */
TEST(server_integration_node)
{
    if (access("tests/server/node_modules/openai", R_OK) != 0)
        SKIP("tests/server/node_modules missing: run `npm ci --prefix tests/server`");
    if (system("node --version >/dev/null 2>&1") != 0)
        SKIP("node is not installed");
    char node_log[400];
    snprintf(node_log, sizeof node_log, "%.300s/node-tests.log", test_tmpdir());
    const char *bin = getenv("CAIRN_BIN");
    /* CAIRN_NODE_TESTS: the suites to run (`make tsan` picks the ones that
    ** load the server from every side; a TSan build is too slow for all) */
    const char *which = getenv("CAIRN_NODE_TESTS");
#ifdef __SANITIZE_ADDRESS__
    /* the suites' memory checks: an ASan server keeps per-thread caches and
    ** freed memory in quarantine, so its RSS says little about leaks (LSan
    ** checks those when it exits) */
    setenv("CAIRN_SANITIZER", "address", 1);
#endif
    /* two suites at a time: more than half of a suite's time is waiting
    ** (servers starting, settle times, timeouts it provokes), and two at
    ** once took 62-64 s here where one at a time took 92 */
    const char *conc = getenv("CAIRN_NODE_CONCURRENCY");
    int nconc = conc && atoi(conc) > 0 ? atoi(conc) : 2;
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             /* a suite that hangs (a helper left running) fails, never blocks CI */
             "CAIRN_BIN=%.300s timeout -k 10 1500 node --test --test-reporter=tap "
             "--test-concurrency=%d %.400s >%s 2>&1",
             bin ? bin : "build/cairn", nconc, which && *which ? which : "tests/server/*.test.mjs",
             node_log);
    fflush(NULL);
    int st = system(cmd);
    if (st == -1) {
        test_fail_at(__FILE__, __LINE__, "node could not be started");
        return;
    }
    char *out = NULL;
    size_t len = 0;
    if (cn_read_file(node_log, 64 << 20, &out, &len, NULL) != CN_OK) {
        test_fail_at(__FILE__, __LINE__, "no output from node");
        return;
    }
    int failed = test_add_node_tap(out);
    if (failed > 0 || (failed == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))) {
        /* show the failures */
        for (const char *q = out; (q = strstr(q, "not ok ")); q++)
            fprintf(stderr, "  node: %.600s\n", q);
        test_fail_at(__FILE__, __LINE__, "node tests: %d failed or cancelled (log above)", failed);
    }
    const char *pass = strstr(out, "\n# pass ");
    if (failed >= 0 && (!pass || atoi(pass + 8) == 0))
        test_fail_at(__FILE__, __LINE__, "node ran no test");
    free(out);
}
