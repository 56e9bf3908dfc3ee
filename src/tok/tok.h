/*
** tok.h: tokenizers that give the same token ids as llama.cpp (b4747).
**
** A tok_vocab is built once from a GGUF file's tokenizer.* metadata and is
** read-only afterwards, so one vocab may serve many threads at once. It copies
** what it needs: the gguf_file may be closed after tok_open() returns.
**
** Three tokenizers:
**   TOK_SPM  tokenizer.ggml.model "llama": SentencePiece-style bigram merges
**            by score, "▁" for spaces, byte fallback (<0xNN> tokens).
**   TOK_BPE  tokenizer.ggml.model "gpt2": byte-level BPE; the text is first
**            split by the pre-tokenizer regexes named by tokenizer.ggml.pre,
**            then each word is merged by the ranks in tokenizer.ggml.merges.
**   TOK_WPM  tokenizer.ggml.model "bert": WordPiece; lower-cased, accents
**            folded, split at whitespace, punctuation and CJK ideographs, each
**            word cut by greedy longest match ("▁" starts a word in the
**            vocab, as llama.cpp's converter writes it), [CLS] ... [SEP].
**
** Start reading at tok.c (vocab, special tokens, encode driver, pieces,
** streaming), then spm.c, bpe.c and wpm.c.
*/
#ifndef CN_TOK_H
#define CN_TOK_H

#include "base/base.h"
#include "gguf/gguf.h"

typedef struct tok_vocab tok_vocab;

/* tokenizer.ggml.model "llama" / "gpt2" / "bert". */
enum { TOK_SPM = 1, TOK_BPE = 2, TOK_WPM = 3 };

/* The largest input tok_encode() accepts, in bytes (larger: CN_ELIMIT). */
#define TOK_MAX_INPUT (16u << 20)

/*
** Read the tokenizer.* metadata of g and build the vocab: token table and
** its hash map, scores, token types, special tokens, end-of-generation set,
** and for BPE the merge-rank map and the compiled pre-tokenizer regexes.
** Missing or malformed metadata (no tokens, arrays of different lengths,
** duplicate tokens, a merge without a space, ...) fails with CN_EFORMAT and
** a message naming g->path and the key; an unknown tokenizer model fails with
** CN_EUNSUPPORTED. An unknown pre-tokenizer falls back to "default" and says
** so through tok_warning(). On failure *out is NULL.
*/
int tok_open(tok_vocab **out, const gguf_file *g, cn_err *err);
void tok_close(tok_vocab *v);

/* NULL, or a note about something tolerated at open, such as
** "unknown pre-tokenizer 'x', using default". Lives as long as v. */
const char *tok_warning(const tok_vocab *v);

int tok_n_vocab(const tok_vocab *v);
int tok_type(const tok_vocab *v);            /* TOK_SPM, TOK_BPE or TOK_WPM */
const char *tok_model_name(const tok_vocab *v); /* "llama", "gpt2", "bert" */
const char *tok_pre_name(const tok_vocab *v);   /* tokenizer.ggml.pre as stored, or "" */

/* Special token ids, -1 if the vocab has none. For WordPiece, BOS is [CLS]
** (tokenizer.ggml.bos_token_id, default 101: llama.cpp does not read
** cls_token_id), SEP [SEP] (tokenizer.ggml.seperator_token_id, sic, default
** 102), UNK [UNK] (100), PAD [PAD] (0), MASK [MASK] (103); EOS is -1. */
int32_t tok_bos(const tok_vocab *v);
int32_t tok_eos(const tok_vocab *v);
int32_t tok_eot(const tok_vocab *v);
int32_t tok_pad(const tok_vocab *v);
int32_t tok_unk(const tok_vocab *v);
int32_t tok_sep(const tok_vocab *v);
int32_t tok_mask(const tok_vocab *v);

/* Does encoding with add_special put a BOS first / an EOS last / a SEP last?
** WordPiece: BOS and SEP always (as llama.cpp, whatever add_bos_token and
** add_eos_token say), never EOS. The others: never SEP. */
bool tok_add_bos(const tok_vocab *v);
bool tok_add_eos(const tok_vocab *v);
bool tok_add_sep(const tok_vocab *v);

/* End of generation: eos, eot, eom, the FIM pad/repo/file-separator tokens,
** and tokens whose text is a known end marker ("<|eot_id|>", "<|im_end|>",
** "<|end|>", "<|endoftext|>", "<end_of_turn>", "</s>", ...). False for ids
** out of range. */
bool tok_is_eog(const tok_vocab *v, int32_t id);
/* Is id a control token (type CONTROL, or promoted to it like llama.cpp
** does for the end markers above)? False for ids out of range. */
bool tok_is_control(const tok_vocab *v, int32_t id);

/* Exact token text -> id, -1 if absent. */
int32_t tok_find(const tok_vocab *v, const char *text, size_t len);
/* The raw vocab string of id (NUL-terminated; *len gets its length if len is
** not NULL), or NULL for an id out of range. An empty string in the file is
** stored as "[EMPTY_<id>]", as llama.cpp does. */
const char *tok_text(const tok_vocab *v, int32_t id, size_t *len);

/*
** Encode text[0..len). add_special: a BOS and/or EOS as the metadata says
** (WordPiece: [CLS] first and [SEP] last).
** parse_special: control and unknown-type token texts found in the input (such
** as "<|eot_id|>") become single tokens; user-defined token texts always do,
** as in llama.cpp. Writes up to max ids to out (out may be NULL when max is 0)
** and returns the total count, which may exceed max: call again with a larger
** buffer. Returns a negative CN_E* code on failure (CN_ELIMIT for input over
** TOK_MAX_INPUT, CN_ENOMEM).
**
** Invalid UTF-8 never crashes. SPM treats the input as bytes: a byte that is
** not part of a token is encoded by its <0xNN> byte token, so decoding gives
** the input back exactly. BPE decodes like llama.cpp: each byte that does not
** start a well-formed sequence becomes U+FFFD (lenient about overlong forms
** and surrogates, as llama.cpp is); a 4-byte form above U+10FFFF, on which
** llama.cpp aborts, is also treated as one bad byte. WordPiece decodes the
** same way and then drops every U+FFFD, as llama.cpp does: a bad byte inside
** a word disappears without splitting it ("a\xffb" encodes as "ab").
*/
int tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t *out, int max, cn_err *err);

/*
** Encode text[0..len) for a model with a fixed input size (embeddings):
** add_special true, parse_special false. If the result has more than
** max_tokens ids, keeps the first max_tokens but puts the closing special
** (WordPiece [SEP], else EOS when the vocab adds one) in the last slot, and
** sets *truncated (truncated may be NULL). out must hold max_tokens ids.
** Returns the count (<= max_tokens) or a negative CN_E* code (CN_EINVAL for
** max_tokens < 1). Memory used is proportional to len.
*/
int tok_encode_trunc(const tok_vocab *v, const char *text, size_t len, int max_tokens,
                     int32_t *out, bool *truncated, cn_err *err);

/*
** The bytes token id stands for: SPM "▁" -> " " and <0xNN> -> that byte; BPE
** byte-level characters mapped back to raw bytes; WordPiece like SPM, so a
** word's first piece ("▁hello") starts with a space and a continuation
** ("##llo" in BERT's vocab.txt, stored as "llo") does not. Control and unknown-type
** tokens render as their text only if special is true, else as nothing;
** user-defined tokens always render as their text. Returns the number of
** bytes written (<= cap), or the length needed (> cap, nothing written) if
** cap is too small, or CN_EINVAL for an id out of range. A piece may be an
** incomplete UTF-8 sequence: use tok_stream_push() to build text.
*/
int tok_piece(const tok_vocab *v, int32_t id, bool special, char *buf, int cap);

/*
** Streaming detokenizer: text comes out as valid UTF-8 only. A multi-byte
** character split across tokens is held back until it completes; a sequence
** that cannot complete becomes one U+FFFD per maximal bad subpart (the
** Unicode "substitution of maximal subparts" practice).
*/
typedef struct tok_stream {
    unsigned char pending[8];
    int n_pending;
} tok_stream;

void tok_stream_init(tok_stream *s);
/* Decode id and append it to the stream; writes the text that is now
** complete to out and returns its length. At most 3 * (3 + piece length)
** bytes come out (every bad byte could become a 3-byte U+FFFD), and a piece
** is never longer than its token's text: cap >= 3 * (token length + 3) is
** always enough, and cap >= 256 + token length is for tokens up to 120
** bytes. If cap is too small returns CN_ELIMIT and leaves s unchanged;
** CN_EINVAL for a bad id. */
int tok_stream_push(tok_stream *s, const tok_vocab *v, int32_t id, bool special, char *out,
                    int cap);
/* End of stream: an incomplete sequence still pending becomes U+FFFD.
** Returns bytes written (0 or 3), or CN_ELIMIT if cap < 3 and something is
** pending. */
int tok_stream_flush(tok_stream *s, char *out, int cap);

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
