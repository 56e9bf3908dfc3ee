/*
** chat.c: chat templates. GGUF files carry a Jinja template
** (tokenizer.chat_template); rather than run Jinja, Cairn recognises the
** family by its markers, as llama.cpp does, and renders that family's
** format in C. Unknown templates fall back to ChatML and say so.
*/
#include "tok/tok.h"

#include <string.h>

static bool has(const char *t, size_t len, const char *needle)
{
    return t && memmem(t, len, needle, strlen(needle)) != NULL;
}

const char *tok_chat_family(const char *t, size_t len, const char *arch)
{
    if (has(t, len, "<|im_start|>"))
        return "chatml";
    if (has(t, len, "<|start_header_id|>") && has(t, len, "<|end_header_id|>"))
        return "llama3";
    if (has(t, len, "[INST]"))
        return has(t, len, "<<SYS>>") ? "llama2" : "mistral";
    if (has(t, len, "<|user|>") && has(t, len, "<|end|>"))
        return "phi3";
    if (has(t, len, "<|user|>") && has(t, len, "<|assistant|>"))
        return "zephyr";
    (void)arch; /* no template: nothing reliable to go on (a base model, usually) */
    return "unknown";
}

typedef struct family_fmt {
    const char *name;
    /* prefix/suffix around each role's content; "" when the role has none */
    const char *sys_pre, *sys_suf, *user_pre, *user_suf, *asst_pre, *asst_suf;
    const char *gen; /* what opens the assistant's turn */
} family_fmt;

static const family_fmt formats[] = {
    {"chatml", "<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n", "<|im_end|>\n",
     "<|im_start|>assistant\n", "<|im_end|>\n", "<|im_start|>assistant\n"},
    {"llama3", "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>",
     "<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>",
     "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>",
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"zephyr", "<|system|>\n", "</s>\n", "<|user|>\n", "</s>\n", "<|assistant|>\n", "</s>\n",
     "<|assistant|>\n"},
    {"phi3", "<|system|>\n", "<|end|>\n", "<|user|>\n", "<|end|>\n", "<|assistant|>\n",
     "<|end|>\n", "<|assistant|>\n"},
};

/* [INST] families: the system prompt has no turn of its own. Llama 2 wraps
** it in <<SYS>> inside the first instruction; Mistral prepends it. */
static int render_inst(bool llama2, const tok_chat_msg *msgs, int n, cn_buf *out)
{
    const char *sys = NULL;
    bool first_user = true;
    int rc = CN_OK;
    for (int i = 0; i < n && rc == CN_OK; i++) {
        const char *role = msgs[i].role, *c = msgs[i].content;
        if (!strcmp(role, "system")) {
            sys = c;
        } else if (!strcmp(role, "user")) {
            if (!first_user)
                rc = cn_buf_printf(out, "%s", llama2 ? "<s>" : "");
            rc = rc ? rc : cn_buf_printf(out, "[INST] ");
            if (sys && first_user)
                rc = rc ? rc
                        : llama2 ? cn_buf_printf(out, "<<SYS>>\n%s\n<</SYS>>\n\n", sys)
                                 : cn_buf_printf(out, "%s\n\n", sys);
            rc = rc ? rc : cn_buf_printf(out, "%s [/INST]", c);
            first_user = false;
        } else {
            rc = cn_buf_printf(out, " %s</s>", c);
        }
    }
    return rc;
}

int tok_chat_render(const char *family, const tok_chat_msg *msgs, int n, bool add_assistant,
                    cn_buf *out, cn_err *err)
{
    for (int i = 0; i < n; i++)
        if (strcmp(msgs[i].role, "system") && strcmp(msgs[i].role, "user") &&
            strcmp(msgs[i].role, "assistant"))
            return cn_fail(err, CN_EINVAL, "chat message %d has unknown role '%s'", i,
                           msgs[i].role);
    int rc;
    if (!strcmp(family, "llama2") || !strcmp(family, "mistral")) {
        rc = render_inst(!strcmp(family, "llama2"), msgs, n, out);
    } else {
        const family_fmt *f = &formats[0]; /* chatml, also for "unknown" */
        for (size_t k = 0; k < CN_ARRAY_LEN(formats); k++)
            if (!strcmp(formats[k].name, family))
                f = &formats[k];
        rc = CN_OK;
        for (int i = 0; i < n && rc == CN_OK; i++) {
            const char *r = msgs[i].role;
            const char *pre = !strcmp(r, "system") ? f->sys_pre
                              : !strcmp(r, "user") ? f->user_pre
                                                   : f->asst_pre;
            const char *suf = !strcmp(r, "system") ? f->sys_suf
                              : !strcmp(r, "user") ? f->user_suf
                                                   : f->asst_suf;
            rc = cn_buf_printf(out, "%s%s%s", pre, msgs[i].content, suf);
        }
        if (rc == CN_OK && add_assistant)
            rc = cn_buf_printf(out, "%s", f->gen);
    }
    if (rc)
        return cn_fail(err, rc, "chat history is too long to render");
    return CN_OK;
}
