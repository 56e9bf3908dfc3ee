/*
** fuzz_server.c: libFuzzer target for the server's request parsers. The
** input is a request body, parsed as every kind of request in both
** dialects. These must hold:
**   - a refusal has a 4xx status and a message;
**   - an accepted request is within the limits: 1..max_messages messages
**     with a known role and content, max_tokens in range, 1..64-byte stop
**     strings, 1..max_inputs embedding inputs.
**
** Built with -DCAIRN_LIBFUZZER by `make fuzz` (build/fuzz/fuzz_server). In
** the plain test build the same file becomes the test fuzz_server_corpus,
** which replays tests/fuzz/corpus/server/.
*/
#include "server/server.h"
#include "fuzz_replay.h"

#include <string.h>

#ifdef CAIRN_LIBFUZZER
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#else
#define FUZZ_ENTRY fuzz_server_one
int fuzz_server_one(const uint8_t *data, size_t size);
#endif

static void check_gen(const srv_gen_req *r, const srv_limits *lim, bool chat)
{
    if (chat) {
        CHECK(r->n_msgs >= 1 && r->n_msgs <= lim->max_messages, "%d messages", r->n_msgs);
        for (int i = 0; i < r->n_msgs; i++) {
            const char *ro = r->msgs[i].role;
            CHECK(!strcmp(ro, "system") || !strcmp(ro, "user") || !strcmp(ro, "assistant"),
                  "message %d has role %s", i, ro);
            CHECK(r->msgs[i].content != NULL, "message %d has no content", i);
        }
    } else {
        CHECK(r->prompt != NULL, "completion without a prompt");
    }
    CHECK(r->max_tokens >= 0 && r->max_tokens <= lim->max_tokens, "max_tokens %d", r->max_tokens);
    CHECK(r->n_stop >= 0 && r->n_stop <= lim->max_stop, "%d stop strings", r->n_stop);
    for (int i = 0; i < r->n_stop; i++)
        CHECK(strlen(r->stop[i]) >= 1 && strlen(r->stop[i]) <= 64, "stop string %d", i);
}

static void check_refusal(const srv_error *e, const char *what)
{
    CHECK(e->status >= 400 && e->status < 500, "%s refused with status %d", what, e->status);
    CHECK(e->msg[0] != 0, "%s refused without a message", what);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    srv_opts o;
    srv_opts_default(&o);
    o.lim.max_body = 1 << 16;
    const char *body = (const char *)data;
    for (int api = SRV_API_OPENAI; api <= SRV_API_OLLAMA; api++) {
        cn_arena a;
        cn_arena_init(&a, 1 << 22);
        srv_gen_req r;
        srv_error e = {0};
        if (srv_parse_chat(body, size, api, &o.lim, &a, &r, &e) == 0)
            check_gen(&r, &o.lim, true);
        else
            check_refusal(&e, "chat");
        srv_gen_req_free(&r);
        memset(&e, 0, sizeof e);
        if (srv_parse_completion(body, size, api, &o.lim, &a, &r, &e) == 0)
            check_gen(&r, &o.lim, false);
        else
            check_refusal(&e, "completion");
        srv_gen_req_free(&r);
        srv_embed_req er;
        memset(&e, 0, sizeof e);
        if (srv_parse_embed(body, size, api, &o.lim, &a, &er, &e) == 0) {
            CHECK(er.n_inputs >= 1 && er.n_inputs <= o.lim.max_inputs, "%d inputs", er.n_inputs);
            for (int i = 0; i < er.n_inputs; i++)
                CHECK(er.inputs[i] != NULL, "input %d missing", i);
        } else {
            check_refusal(&e, "embed");
        }
        srv_embed_req_free(&er);
        cn_arena_free(&a);
    }
    return 0;
}

#ifndef CAIRN_LIBFUZZER
TEST(fuzz_server_corpus)
{
    int n = fuzz_replay_dir("tests/fuzz/corpus/server", fuzz_server_one);
    if (n < 0)
        SKIP("tests/fuzz/corpus/server not found");
    printf("     replayed %d corpus files\n", n);
    EXPECT(n > 0);
}
#endif
