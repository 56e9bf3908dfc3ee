/* placeholder until the tokenizer branch lands */
#ifndef CN_TOK_H
#define CN_TOK_H
#include "base/base.h"
#include "engine/gguf.h"
typedef struct tok_vocab tok_vocab;

/* ---- chat templates (chat.c) -------------------------------------------- */

typedef struct tok_chat_msg {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content;
} tok_chat_msg;

/* The family of a chat template ("llama3", "chatml", "llama2", "mistral",
** "zephyr", "phi3"), recognised by its markers; "unknown" when none match
** (callers fall back to ChatML and should say so). t may be NULL. */
const char *tok_chat_family(const char *t, size_t len, const char *arch);
/* Append the conversation msgs[0..n) in family's format to out; with
** add_assistant, also the opening of the assistant's reply. The text holds
** special-token markers: tokenize it with parse_special. */
int tok_chat_render(const char *family, const tok_chat_msg *msgs, int n, bool add_assistant,
                    cn_buf *out, cn_err *err);
#endif
