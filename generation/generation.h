/*
 * generation/generation.h - local text generation: GGUF model (llama and
 * qwen2 architectures) evaluated on the CPU or on a CUDA GPU, token
 * sampling, and the BPE tokenizer and chat templates.
 *
 * A struct gen_model owns one read-only mapping of the GGUF file (weights
 * are used in place, quantized) plus one allocation for the KV caches and
 * all activations, sized at open for opts.n_ctx tokens and opts.n_seqs
 * sequences; nothing is allocated per token. gen_eval() appends tokens to
 * the KV cache and returns the logits of the last one.
 *
 * On the GPU the weights are uploaded once in a 16-bit compute type: fp16,
 * or bf16 when the file stores matrices as BF16 (quantized blocks are
 * dequantized on the host and rounded), with GEMM inputs in that type
 * between fp32 GEMM accumulations and an fp32 residual stream, and a paged
 * KV cache of that type: logits agree with the CPU reference within 5e-3 of
 * their range in fp16 and 2e-2 in bf16 (tests/test_gengpu.c). A decode
 * step of n sequences is a CUDA graph replayed unchanged. A model is not
 * thread-safe: use it from one thread at a time (it runs its own OpenMP
 * threads inside gen_eval; single-token steps switch between 1 and
 * n_threads threads, whichever is measured faster, so that a busy machine
 * does not stall them at every barrier; results do not depend on the thread
 * count). Evaluating switches OpenBLAS to one thread for the whole process,
 * because OpenBLAS's own worker threads would compete with the OpenMP
 * threads for the cores.
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

enum gen_device {
    GEN_DEVICE_AUTO, /* the GPU when gpu_count() > 0 and it supports the model, else the CPU */
    GEN_DEVICE_CPU,
    GEN_DEVICE_GPU, /* fail when there is no GPU or it does not support the model */
};

struct gen_model_opts {
    /*
     * KV cache capacity in tokens per sequence; 0 = min(n_ctx_train, 4096)
     * on the CPU, min(n_ctx_train, 8192) on the GPU.
     */
    size_t n_ctx;
    int n_threads;          /* OpenMP threads; 0 = all available */
    enum gen_device device; /* where the model runs */
    size_t n_seqs;          /* sequences with their own KV cache (0 = 1), for gen_decode_batch */
};
#define GEN_MODEL_OPTS_DEFAULT                                       \
 {                                                                   \
  .n_ctx = 0, .n_threads = 0, .device = GEN_DEVICE_AUTO, .n_seqs = 0 \
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
    size_t n_seqs; /* sequences with their own KV cache */
};

/*
 * Open the GGUF model at path. opts may be NULL for the defaults. Returns
 * RAG_EIO (cannot read), RAG_EFORMAT (corrupt file, unsupported architecture
 * or tensor type, missing or mis-shaped tensor, a shape the GPU kernels do
 * not support with GEN_DEVICE_GPU), RAG_EINVAL (bad opts), and with
 * GEN_DEVICE_GPU also RAG_ENOSYS (built without CUDA) or RAG_EGPU (no
 * device, out of device memory, CUDA failure). Messages name the file.
 * Close with gen_model_close().
 */
int gen_model_open(struct gen_model **ret, const char *path, const struct gen_model_opts *opts,
                   struct rag_err *err);
void gen_model_close(struct gen_model *m); /* NULL is a no-op */

/* Valid until gen_model_close. */
const struct gen_model_info *gen_model_info(const struct gen_model *m);
/* The model's GGUF file (for the tokenizer); valid until gen_model_close. */
const struct gguf *gen_model_gguf(const struct gen_model *m);

/* True when the model runs on the GPU. */
bool gen_model_on_gpu(const struct gen_model *m);
/* Device memory held by the model (weights, KV caches, activations); 0 on the CPU. */
size_t gen_model_device_bytes(const struct gen_model *m);
/*
 * Kernels launched by the last decode step on the GPU (gen_decode_batch or
 * a one-token gen_eval; one CUDA graph replay of that many kernels), as
 * queued by this library (cuBLASLt may split a GEMM into more); 0 on the
 * CPU or before the first step.
 */
size_t gen_model_step_kernels(const struct gen_model *m);

/*
 * Evaluate tokens[0..n) of sequence seq (< n_seqs) at positions
 * pos..pos+n-1 and store their keys and values in that sequence's KV cache;
 * positions >= pos are overwritten, so pos may be below gen_seq_len() to
 * rewind. If logits is not NULL it receives the n_vocab logits of the last
 * token. Prompts are processed in batches (matrix-matrix; on the GPU in
 * chunks of up to 2048 tokens), single tokens as one decode step. Returns
 * RAG_EINVAL when seq is out of range, pos > gen_seq_len(), n == 0, pos + n
 * exceeds n_ctx, or a token id is out of range (the cache is unchanged
 * then), RAG_EGPU when the device fails (the model is then unusable).
 */
int gen_eval_seq(struct gen_model *m, size_t seq, const int32_t *tokens, size_t n, size_t pos,
                 float *logits, struct rag_err *err);
/* gen_eval_seq() of sequence 0. */
int gen_eval(struct gen_model *m, const int32_t *tokens, size_t n, size_t pos, float *logits,
             struct rag_err *err);
/* Tokens in the KV cache of sequence seq (< n_seqs). */
size_t gen_seq_len(const struct gen_model *m, size_t seq);
/* Keep only the first n tokens of sequence seq (n >= its length is a no-op). */
void gen_seq_truncate(struct gen_model *m, size_t seq, size_t n);
/* Sequence 0: tokens in its cache; forget them all; keep the first n. */
size_t gen_kv_len(const struct gen_model *m);
void gen_kv_reset(struct gen_model *m);
void gen_kv_truncate(struct gen_model *m, size_t n);

/*
 * One new token for each of n sequences seqs[0..n) (distinct), tokens[i]
 * appended to sequence seqs[i] at its current length (lengths may differ).
 * logits (n, n_vocab) may be NULL; next (n) may be NULL, else next[i]
 * receives the lowest index of the largest logit of row i (computed on the
 * device on the GPU, so greedy decoding needs no logits copy). On the GPU
 * the n sequences run as one batched step; on the CPU one after the other.
 * RAG_EINVAL (nothing changed) when n == 0, n > n_seqs, a sequence is out
 * of range, repeated or full (n_ctx tokens), or a token id is out of range.
 */
int gen_decode_batch(struct gen_model *m, const size_t *seqs, const int32_t *tokens, size_t n,
                     float *logits, int32_t *next, struct rag_err *err);

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
/* Greedy choice: the lowest index of the largest of logits[0..n), n > 0. */
int32_t gen_argmax(const float *logits, size_t n);
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
 * when add_generation_prompt; tokenize it with gen_chat_tokenize (or
 * gen_tokenize with GEN_TOKENIZE_SPECIAL, which also parses control-token
 * text inside the messages, as transformers' apply_chat_template does).
 * RAG_EFORMAT when the model has no supported chat format, RAG_EINVAL for a
 * message with a NULL or empty role or a NULL content.
 */
int gen_chat_apply(const struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                   bool add_generation_prompt, struct buf *out, struct rag_err *err);
/*
 * Append the ids of the prompt gen_chat_apply() builds: the template's
 * control tokens are parsed, while roles and contents are always plain text,
 * so a "<|im_end|>" quoted in a retrieved document cannot end a turn. Equal
 * to gen_tokenize(prompt, GEN_TOKENIZE_SPECIAL) when no message contains
 * control-token text. Errors as gen_chat_apply.
 */
int gen_chat_tokenize(struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                      bool add_generation_prompt, struct gen_tokens *out, struct rag_err *err);
/* True when id ends a turn: EOS or a stop token of the chat format. */
bool gen_tok_is_stop(const struct gen_tokenizer *t, int32_t id);
/* Stop token ids / stop strings of the chat format; valid until gen_tokenizer_free. */
const int32_t *gen_chat_stop_ids(const struct gen_tokenizer *t, size_t *ret_n);
const char *const *gen_chat_stop_strings(const struct gen_tokenizer *t, size_t *ret_n);

/* ======== end of tokenizer and chat templates ======== */

/* ======== prompt and citations (generation/prompt.c, generation/cite.c) ======== */
/* ---- owned by the prompt engineer: declarations below this line ---- */

/*
 * Token counter passed in by the caller (cmd/ wires in gen_count_tokens with
 * a struct gen_tokenizer * as ctx; tests pass a trivial counter). count()
 * returns the number of tokens in text[0..len) and must be deterministic;
 * ctx is passed through unchanged and stays owned by the caller.
 */
struct gen_token_counter {
    size_t (*count)(void *ctx, const char *text, size_t len);
    void *ctx;
};

/* The fixed phrase of an abstention, asked for by the default instructions. */
#define GEN_NOT_FOUND "not found in the indexed documents"

/* Default system message: compact instructions for small instruction-tuned models. */
#define GEN_PROMPT_SYSTEM_DEFAULT                                                              \
 "Answer the question using only the numbered sources provided. Cite the sources you use "     \
 "with their numbers in square brackets, like [1] or [2][3]. Copy quotations exactly. If the " \
 "sources do not contain the answer, reply only: " GEN_NOT_FOUND ". Be brief."

/* A first source that must be cut to fit is kept only if this many tokens of it fit. */
#define GEN_PROMPT_MIN_TRUNCATED 64

/* A retrieved chunk offered to the prompt. All pointers are borrowed. */
struct gen_source {
    const char *text; /* chunk text, len bytes, need not be NUL-terminated */
    size_t len;
    const char *path;    /* document path or title, NUL-terminated; NULL = none */
    const char *heading; /* heading path ("Install > Linux"), NUL-terminated; NULL = none */
    unsigned page_first; /* 1-based pages of the chunk; 0 = no page numbers */
    unsigned page_last;
};

struct gen_prompt_opts {
    /*
     * Tokens for the two message texts together: n_ctx minus the answer
     * reserve, minus the chat template's own tokens around the messages.
     */
    size_t budget;
    const char *system;           /* instructions; NULL = GEN_PROMPT_SYSTEM_DEFAULT */
    struct gen_token_counter tok; /* required */
};

/*
 * An assembled prompt: plain message texts, to be wrapped by gen_chat_apply
 * as a "system" and a "user" message. The user message lists the included
 * sources as "[n] path > heading (p. 3)" header lines, each followed by the
 * chunk text, then "Question: ...". Invariant: n_tokens = count(system) +
 * count(user) <= opts.budget.
 */
struct gen_prompt {
    char *system; /* NUL-terminated, owned */
    char *user;   /* NUL-terminated, owned */
    size_t n_tokens;
    /*
     * (n_source) included sources in prompt order: source[k] is [k+1]. These
     * are copies of the input structs (pointers still borrowed from the
     * caller's sources), with text and len narrowed to the bytes included
     * (whitespace trimmed; cut at a sentence or word boundary when truncated).
     */
    struct gen_source *source;
    size_t *index; /* (n_source) position of source[k] in the input list */
    size_t n_source;
    bool truncated; /* source[0] was cut to fit (then it is the only source) */
};

/*
 * Build the prompt for question from the candidates src[0..n_src), best
 * first. Sources are taken greedily in order while the whole prompt fits
 * opts->budget; one that does not fit is skipped, except that when nothing
 * is included yet it is cut to fit if at least GEN_PROMPT_MIN_TRUNCATED of
 * its tokens fit. Empty sources are skipped. p is overwritten (zeroed on
 * failure); release it with gen_prompt_release. Returns RAG_EINVAL for an
 * empty question, or when the question with the instructions alone exceeds
 * the budget ("question too long for the context window (N tokens, budget M)").
 */
int gen_prompt_build(struct gen_prompt *p, const char *question, const struct gen_source *src,
                     size_t n_src, const struct gen_prompt_opts *opts, struct rag_err *err);
void gen_prompt_release(struct gen_prompt *p);

/*
 * Default for gen_evidence_weak: a dense cosine similarity (L2-normalised
 * embeddings). Rank-fusion scores (RRF) cannot be thresholded: pass the
 * candidates' dense scores. To be calibrated on data.
 */
#define GEN_WEAK_EVIDENCE_DEFAULT 0.30

/*
 * True when the evidence is too weak to answer from: n == 0, no finite
 * score, or the best finite score of score[0..n) is below threshold.
 */
bool gen_evidence_weak(const double *score, size_t n, double threshold);

/* Quotes of at least this many words are checked against the cited source. */
#define GEN_CITE_QUOTE_MIN_WORDS 4

/* One source number of a citation; "[1-3]" gives three, all at the '['. */
struct gen_citation {
    size_t number; /* as written: 1-based */
    size_t offset; /* byte offset of the '[' in the answer */
    bool valid;    /* 1 <= number <= n_src */
};

enum gen_cite_kind {
    GEN_CITE_NO_SOURCE,       /* [n] with no source n */
    GEN_CITE_BAD_RANGE,       /* [5-2], or a range of more than 64 numbers */
    GEN_CITE_QUOTE_NOT_FOUND, /* a quoted span absent from every source it cites */
};

struct gen_cite_problem {
    enum gen_cite_kind kind;
    size_t offset; /* the '[' of the citation, or the opening quotation mark */
    size_t number; /* the source number concerned */
    char msg[96];  /* "no such source [7]", "quote not found in [2]" */
};

/*
 * Citations found in an answer. Only valid citations mark a source as
 * cited. The arrays are owned; release with gen_cite_report_release.
 */
struct gen_cite_report {
    struct {
        struct gen_citation *item;
        size_t n, cap;
    } cites;
    struct {
        struct gen_cite_problem *item;
        size_t n, cap;
    } problems;
    bool *cited; /* (n_src) cited[k]: source [k+1] is cited */
    size_t n_src;
    size_t n_cited; /* distinct sources cited */
    bool abstained; /* gen_is_abstention(answer) */
};

/*
 * Check the citations of answer[0..len) against src[0..n_src), where
 * src[k] is source [k+1] (pass gen_prompt.source). Recognised: "[1]",
 * "[2, 3]", "[1][2]", "[1-3]" (also with an en dash); not citations: "[x]",
 * Markdown links "[text](url)", anything in `code` spans or fences. A quote
 * ("..." or curly) of GEN_CITE_QUOTE_MIN_WORDS words or more is attached to
 * the next citation in the same sentence, else to the previous one in the
 * same paragraph, and must occur in one of its sources, compared without
 * ASCII case and with quotes, dashes and whitespace runs unified; "..." in a
 * quote separates parts that must occur in order. out is overwritten.
 */
void gen_cite_check(const char *answer, size_t len, const struct gen_source *src, size_t n_src,
                    struct gen_cite_report *out);
void gen_cite_report_release(struct gen_cite_report *r);

/*
 * True when answer[0..len) says that the answer is not in the sources:
 * GEN_NOT_FOUND and common variants ("I don't know", "the sources do not
 * contain", "no information", ...), without ASCII case.
 */
bool gen_is_abstention(const char *answer, size_t len);

/* ======== end of prompt and citations ======== */

/* ======== generation loop (generation/generate.c) ======== */

/* Why generation ended. */
enum gen_stop {
    GEN_STOP_NONE,
    GEN_STOP_EOS,       /* a stop token or stop string of the chat format */
    GEN_STOP_LIMIT,     /* max_tokens generated */
    GEN_STOP_CONTEXT,   /* the context window is full */
    GEN_STOP_INTERRUPT, /* *interrupt became non-zero (Ctrl-C) */
    GEN_STOP_CALLER,    /* on_text returned non-zero */
};

struct gen_generate_opts {
    size_t max_tokens;           /* tokens to generate at most */
    struct gen_sampler *sampler; /* required; borrowed */
    /* Streamed text: complete UTF-8, never part of a stop string. Non-zero stops. */
    int (*on_text)(void *ctx, const char *text, size_t len);
    void *ctx;
    const volatile int *interrupt; /* optional: checked before each token */
};

struct gen_generate_stats {
    size_t n_prompt, n_reused, n_gen;   /* prompt tokens, of them found in the cache, generated */
    double prefill_s, decode_s, ttft_s; /* ttft: prompt start to the first token */
    enum gen_stop stopped;
};

/*
 * Generate the answer to prompt[0..n) (chat-formatted ids) and append its
 * text to answer, streaming it through opts->on_text. cached tracks the
 * tokens in the model's KV cache across calls (start with an empty list;
 * the caller owns it): the common prefix with the new prompt is reused,
 * the rest evaluated. RAG_EINVAL when the prompt does not fit the context;
 * errors of gen_eval are passed on.
 */
int gen_generate(struct gen_model *m, struct gen_tokenizer *t, const int32_t *prompt, size_t n,
                 const struct gen_generate_opts *opts, struct gen_tokens *cached,
                 struct buf *answer, struct gen_generate_stats *st, struct rag_err *err);

/* One answer of gen_generate_batch(). */
struct gen_batch_item {
    const int32_t *prompt;        /* chat-formatted ids, borrowed */
    size_t n;                     /* prompt tokens */
    struct gen_sampler *sampler;  /* borrowed; one per item, since their states differ */
    struct buf *answer;           /* the answer's text is appended here */
    struct gen_generate_stats st; /* out; ttft_s counts from the start of the batch */
};

/*
 * Answer items[0..n) together, n <= the model's n_seqs: item i's prompt is
 * evaluated into KV sequence i (whatever it held is dropped), then each step
 * decodes one token of every unfinished item with gen_decode_batch(), which
 * on the GPU costs about as much as one sequence. Items stop as in
 * gen_generate(): a stop token or string, max_tokens, the context window;
 * nothing is streamed. RAG_EINVAL when n is 0 or above n_seqs or a prompt
 * does not fit the context; errors of the model are passed on.
 */
int gen_generate_batch(struct gen_model *m, struct gen_tokenizer *t, struct gen_batch_item *items,
                       size_t n, size_t max_tokens, struct rag_err *err);

/* ======== end of generation loop ======== */

#endif
