/*
 * generation/generation.h - local text generation: GGUF model (llama and
 * qwen2 architectures) evaluated on the CPU, token sampling, and the BPE
 * tokenizer and chat templates.
 *
 * A struct gen_model owns one read-only mapping of the GGUF file (weights
 * are used in place, quantized) plus one allocation for the KV cache and all
 * activations, sized at open for opts.n_ctx tokens; nothing is allocated per
 * token. gen_eval() appends tokens to the KV cache and returns the logits of
 * the last one. A model is not thread-safe: use it from one thread at a time
 * (it runs its own OpenMP threads inside gen_eval). Evaluating switches
 * OpenBLAS to one thread for the whole process, because OpenBLAS's own
 * worker threads would compete with the OpenMP threads for the cores.
 */
#ifndef GENERATION_GENERATION_H
#define GENERATION_GENERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* ---- model ---- */

struct gen_model; /* opaque */
struct gguf;      /* opaque outside generation/ */

struct gen_model_opts {
    size_t n_ctx;  /* KV cache capacity in tokens; 0 = min(n_ctx_train, 4096) */
    int n_threads; /* OpenMP threads; 0 = all available */
};
#define GEN_MODEL_OPTS_DEFAULT \
 {                             \
  .n_ctx = 0, .n_threads = 0   \
 }

enum gen_arch { GEN_ARCH_LLAMA, GEN_ARCH_QWEN2 };

/* Shapes and hyper-parameters read from the GGUF metadata. */
struct gen_model_info {
    enum gen_arch arch;
    const char *arch_name; /* "llama", "qwen2" */
    const char *name;      /* general.name, "" when absent */
    size_t n_vocab;
    size_t n_ctx_train; /* {arch}.context_length */
    size_t n_ctx;       /* KV cache capacity chosen at open */
    size_t dim;         /* embedding length */
    size_t n_layers;
    size_t n_heads, n_kv_heads, head_dim;
    size_t ffn_dim;
    float rope_base;
    float rms_eps;
    bool tied_embeddings; /* token_embd doubles as the output matrix */
    int n_threads;
};

/*
 * Open the GGUF model at path. opts may be NULL for the defaults. Returns
 * RAG_EIO (cannot read), RAG_EFORMAT (corrupt file, unsupported architecture
 * or tensor type, missing or mis-shaped tensor), RAG_EINVAL (bad opts).
 * Messages name the file. Close with gen_model_close().
 */
int gen_model_open(struct gen_model **ret, const char *path, const struct gen_model_opts *opts,
                   struct rag_err *err);
void gen_model_close(struct gen_model *m); /* NULL is a no-op */

/* Valid until gen_model_close. */
const struct gen_model_info *gen_model_info(const struct gen_model *m);
/* The model's GGUF file (for the tokenizer); valid until gen_model_close. */
const struct gguf *gen_model_gguf(const struct gen_model *m);

/*
 * Evaluate tokens[0..n) at positions pos..pos+n-1 and store their keys and
 * values in the KV cache; positions >= pos are overwritten, so pos may be
 * below gen_kv_len() to rewind. If logits is not NULL it receives the
 * n_vocab logits of the last token. Prompts are processed in batches
 * (matrix-matrix), single tokens as matrix-vector. Returns RAG_EINVAL when
 * pos > gen_kv_len(), n == 0, pos + n exceeds n_ctx, or a token id is out of
 * range; the cache is unchanged then.
 */
int gen_eval(struct gen_model *m, const int32_t *tokens, size_t n, size_t pos, float *logits,
             struct rag_err *err);
/* Tokens currently in the KV cache. */
size_t gen_kv_len(const struct gen_model *m);
/* Forget everything / keep only the first n tokens (n > gen_kv_len is a no-op). */
void gen_kv_reset(struct gen_model *m);
void gen_kv_truncate(struct gen_model *m, size_t n);

/* ---- sampler ---- */

/*
 * Sampling pipeline, in order: repetition penalty over the last
 * repeat_last_n accepted tokens (positive logits divided by repeat_penalty,
 * negative ones multiplied; 1.0 = off), then greedy argmax when
 * temperature <= 0, otherwise temperature, top-k (0 = off), top-p (1.0 = off),
 * min-p relative to the most likely token (0 = off), and a draw from the
 * renormalised distribution with the sampler's own PRNG (xoshiro256**
 * seeded by splitmix64(seed)), so a seed reproduces a run on every platform.
 */
struct gen_sampler_opts {
    float temperature;
    size_t top_k;
    float top_p;
    float min_p;
    float repeat_penalty;
    size_t repeat_last_n;
    uint64_t seed;
};
#define GEN_SAMPLER_OPTS_DEFAULT                                                            \
 {                                                                                          \
  .temperature = 0.0f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f, \
  .repeat_last_n = 64, .seed = 0                                                            \
 }

/* Invariant: the scratch arrays hold n_vocab entries; history holds repeat_last_n. */
struct gen_sampler {
    struct gen_sampler_opts opts;
    size_t n_vocab;
    uint64_t rng[4];
    int32_t *history; /* ring buffer of accepted tokens */
    size_t n_history, history_pos;
    float *prob;  /* (n_vocab) scratch */
    int32_t *idx; /* (n_vocab) scratch */
};

/* RAG_EINVAL for n_vocab == 0 or out-of-range options (negative p, ...). */
int gen_sampler_init(struct gen_sampler *s, const struct gen_sampler_opts *opts, size_t n_vocab,
                     struct rag_err *err);
void gen_sampler_release(struct gen_sampler *s);
/*
 * Pick a token from logits[0..n_vocab) (the array is used as scratch and
 * modified). Does not record the token: call gen_sampler_accept() with the
 * token actually used (the prompt tokens too, for the repetition penalty).
 */
int32_t gen_sampler_sample(struct gen_sampler *s, float *logits);
void gen_sampler_accept(struct gen_sampler *s, int32_t token);
/* Clear the history and reseed with opts.seed. */
void gen_sampler_reset(struct gen_sampler *s);

/* ======== tokenizer and chat templates (generation/tokenizer.c, generation/chat.c) ======== */
/* ---- owned by the tokenizer engineer: declarations below this line ---- */

/*
 * Byte-level BPE tokenizer (tokenizer.ggml.model "gpt2") built from a GGUF
 * file's tokens, token types and merges (merge rank = index), giving the
 * same ids as Hugging Face tokenizers on the model's tokenizer.json. The
 * pre-tokenizer is chosen by tokenizer.ggml.pre:
 *   "smollm", "starcoder", "refact", "command-r", "codeshell": every numeric
 *       character on its own, then the GPT-2 pattern on the text between;
 *   "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral": the Llama 3
 *       pattern (numbers in groups of up to 3); a piece that is itself a
 *       vocabulary entry is one token (ignore_merges);
 *   "qwen2", "deepseek-r1-qwen", "megrez": the Qwen2 pattern (single digits);
 *   "gpt2", an absent key and any other name: the GPT-2 pattern (an unknown
 *       name is reported with RAG_DEBUG only).
 * Invalid UTF-8 in the input is never an error: each invalid byte run is a
 * piece of its own. Bytes the vocabulary has no token for are dropped, as
 * Hugging Face does without an unknown token.
 *
 * A tokenizer owns scratch buffers and a cache of recent pieces, so it is
 * not thread-safe: use one per thread. It keeps no pointer into the GGUF.
 */
struct gen_tokenizer; /* opaque */

/* tokenizer.ggml.token_type values. */
enum gen_tok_type {
    GEN_TOK_NORMAL = 1,
    GEN_TOK_UNKNOWN = 2,
    GEN_TOK_CONTROL = 3,
    GEN_TOK_USER_DEFINED = 4,
    GEN_TOK_UNUSED = 5,
    GEN_TOK_BYTE = 6,
};

enum gen_tok_pre { GEN_TOK_PRE_GPT2, GEN_TOK_PRE_SMOLLM, GEN_TOK_PRE_LLAMA3, GEN_TOK_PRE_QWEN2 };

/*
 * A vocabulary as plain arrays: what the GGUF tokenizer keys hold. Strings
 * are not NUL-terminated (lengths in *_len) and are copied by
 * gen_tokenizer_new.
 */
struct gen_tok_vocab {
    const char *name; /* for messages, e.g. the file path */
    size_t n_tokens;
    const char *const *token; /* byte-level spelling ("Ġthe") */
    const size_t *token_len;
    const int32_t *token_type; /* enum gen_tok_type per token; NULL = all normal */
    size_t n_merges;
    const char *const *merge; /* "Ġ t": left and right spelling, one space between */
    const size_t *merge_len;
    const char *pre;           /* tokenizer.ggml.pre, NUL-terminated; NULL = "gpt2" */
    int32_t bos_id, eos_id;    /* -1 = none */
    bool add_bos;              /* tokenizer.ggml.add_bos_token */
    const char *chat_template; /* tokenizer.chat_template, NUL-terminated; NULL = none */
};

/*
 * Build a tokenizer from v. RAG_EFORMAT when the vocabulary is empty or a
 * BOS/EOS id is out of range; a merge naming an absent token is skipped
 * (RAG_DEBUG). Free with gen_tokenizer_free().
 */
int gen_tokenizer_new(struct gen_tokenizer **ret, const struct gen_tok_vocab *v,
                      struct rag_err *err);
/*
 * Build a tokenizer from an open GGUF file (see gen_model_gguf). RAG_EFORMAT
 * with a one-line message naming the file when the tokenizer keys are missing
 * or malformed, or tokenizer.ggml.model is not "gpt2".
 */
int gen_tokenizer_load(struct gen_tokenizer **ret, const struct gguf *g, struct rag_err *err);
/* Open the GGUF file at path, load its tokenizer and close the file. */
int gen_tokenizer_open(struct gen_tokenizer **ret, const char *path, struct rag_err *err);
void gen_tokenizer_free(struct gen_tokenizer *t); /* NULL is a no-op */

size_t gen_tok_n_vocab(const struct gen_tokenizer *t);
enum gen_tok_pre gen_tok_pre(const struct gen_tokenizer *t);
int32_t gen_tok_bos(const struct gen_tokenizer *t); /* -1 when none */
int32_t gen_tok_eos(const struct gen_tokenizer *t); /* -1 when none */
/* enum gen_tok_type of id; 0 for an id out of range. */
int gen_tok_type(const struct gen_tokenizer *t, int32_t id);
/* Id of the token spelled s (NUL-terminated, plain text: "<|im_end|>", " the"), or -1. */
int32_t gen_tok_find(const struct gen_tokenizer *t, const char *s);

/* Token ids: a growable array with its own release. */
struct gen_tokens {
    int32_t *item;
    size_t n, cap;
};
void gen_tokens_release(struct gen_tokens *v);

enum gen_tokenize_flags {
    GEN_TOKENIZE_ADD_BOS = 1 << 0, /* prepend BOS when the model's add_bos_token says so */
    GEN_TOKENIZE_SPECIAL = 1 << 1, /* match control tokens ("<|im_start|>") as whole tokens */
};

/*
 * Append the ids of text[0..len) to out (text need not be NUL-terminated).
 * User-defined tokens are always matched whole; control tokens only with
 * GEN_TOKENIZE_SPECIAL, otherwise they are plain text. Cannot fail.
 */
void gen_tokenize(struct gen_tokenizer *t, const char *text, size_t len, unsigned flags,
                  struct gen_tokens *out);
/*
 * Number of tokens in text[0..len) as plain text (no BOS, no special
 * tokens): the counter for struct chunk_tokenizer, with ctx a
 * struct gen_tokenizer *.
 */
size_t gen_count_tokens(void *tokenizer, const char *text, size_t len);

enum gen_detok_flags {
    GEN_DETOK_SPECIAL = 1 << 0, /* render control tokens as their text; default: nothing */
};

/*
 * Raw bytes of token id: the byte of a <0xNN> token, a control token's text,
 * otherwise the token's bytes. Not NUL-terminated; valid until
 * gen_tokenizer_free. NULL for an id out of range.
 */
const char *gen_token_bytes(const struct gen_tokenizer *t, int32_t id, size_t *ret_len);
/*
 * Append the bytes of ids[0..n) to out, as they are (possibly invalid UTF-8
 * if the ids cut a character). Out-of-range ids are skipped.
 */
void gen_detokenize(const struct gen_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                    struct buf *out);

/*
 * Streaming decoder for generated tokens: gen_detok_push() appends only
 * complete UTF-8 characters and holds back the bytes of a character that the
 * next token may complete; bytes that can never form a character are written
 * as U+FFFD, so out stays valid UTF-8. gen_detok_flush() ends the stream
 * (held bytes become U+FFFD). Both return the number of bytes appended. The
 * tokenizer is borrowed and must outlive the decoder; nothing is allocated.
 */
struct gen_detok {
    const struct gen_tokenizer *tok;
    unsigned flags; /* enum gen_detok_flags */
    size_t n_held;
    char held[4]; /* an incomplete character, n_held < 4 */
};
void gen_detok_init(struct gen_detok *d, const struct gen_tokenizer *t, unsigned flags);
size_t gen_detok_push(struct gen_detok *d, int32_t id, struct buf *out);
size_t gen_detok_flush(struct gen_detok *d, struct buf *out);

/*
 * Chat templates. The family is detected from tokenizer.chat_template (its
 * Jinja is not run): "<|im_start|>" means ChatML (SmolLM2, Qwen), with the
 * default system prompt the template inserts when the conversation has none;
 * "<|start_header_id|>" means Llama 3. Without a template the vocabulary
 * decides (a "<|im_start|>" or "<|start_header_id|>" token).
 */
enum gen_chat_format { GEN_CHAT_NONE, GEN_CHAT_CHATML, GEN_CHAT_LLAMA3 };

struct gen_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
};

enum gen_chat_format gen_chat_format(const struct gen_tokenizer *t);
/* The template's default system prompt, or NULL; valid until gen_tokenizer_free. */
const char *gen_chat_default_system(const struct gen_tokenizer *t);
/*
 * Append the prompt for msg[0..n) to out, ending with the assistant header
 * when add_generation_prompt; tokenize it with GEN_TOKENIZE_SPECIAL.
 * RAG_EFORMAT when the model has no supported chat format, RAG_EINVAL for a
 * message with a NULL or empty role or a NULL content.
 */
int gen_chat_apply(const struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                   bool add_generation_prompt, struct buf *out, struct rag_err *err);
/* True when id ends a turn: EOS or a stop token of the chat format. */
bool gen_tok_is_stop(const struct gen_tokenizer *t, int32_t id);
/* Stop token ids / stop strings of the chat format; valid until gen_tokenizer_free. */
const int32_t *gen_chat_stop_ids(const struct gen_tokenizer *t, size_t *ret_n);
const char *const *gen_chat_stop_strings(const struct gen_tokenizer *t, size_t *ret_n);

/* ======== end of tokenizer and chat templates ======== */

#endif
