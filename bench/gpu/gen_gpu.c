/*
 * bench/gpu/gen_gpu.c - throughput of the generation/ engine on the GPU:
 * prefill, decode of one sequence and batched decode of many.
 *
 * Usage: gen_gpu [--device gpu|cpu|auto] [--reps N] [--steps N]
 *                [--prefill N] [--seqs N] MODEL
 * Defaults: gpu, 5 repetitions, 128 steps, a 4,096-token prefill, 32
 * sequences. The model is opened with n_seqs = --seqs and a KV cache per
 * sequence large enough for the longest run. Token ids are a fixed
 * pseudo-random sequence (throughput does not depend on the values).
 *
 * Each figure is the median of --reps timed runs after one untimed warm-up
 * run (which also captures the CUDA graphs); the wall clock is read on the
 * host, and every timed call returns only after its results are on the host.
 *   prefill      --prefill tokens of sequence 0 from an empty cache in one
 *                gen_eval_seq call, logits of the last token included;
 *   decode_b1    --steps greedy steps of sequence 0 after a 16-token prompt,
 *                each one gen_decode_batch call of one sequence with the
 *                argmax on the device (next != NULL, logits NULL), its token
 *                fed back; tok/s = steps / time;
 *   decode_b1_logits  the same steps through gen_eval_seq with all logits
 *                copied to the host and the argmax taken there (the path
 *                of a sampler);
 *   decode_batch --seqs sequences with prompts of 16, 32, ..., 16 * seqs
 *                tokens (evaluated before the clock starts), then --steps
 *                gen_decode_batch calls of all of them with the device
 *                argmax fed back; tok/s = seqs * steps / time.
 * Also reported: device bytes held by the model, kernels queued by the last
 * decode step of one and of --seqs sequences (gen_model_step_kernels), and
 * the open time (file read and upload), and how many of the greedy tokens
 * of decode_b1 and decode_b1_logits agree (the same steps by two paths).
 * Prints one JSON line on stdout. Exit status 0; 1 on an error; 77 when
 * --device gpu finds no GPU or the build has no CUDA.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generation/generation.h"

#define B1_PROMPT 16
#define MAX_REPS  50

struct bench {
    struct gen_model *m;
    size_t n_vocab, reps, steps, n_prefill, n_seqs;
    int32_t *tok;  /* pseudo-random ids, n_ctx of them */
    float *logits; /* n_vocab */
    size_t *seqs;  /* 0..n_seqs-1 */
    int32_t *cur, *next;
    int32_t *trace[2]; /* (steps) tokens of the last decode_b1 / decode_b1_logits run */
};

static void check(int rc, const struct rag_err *err)
{
    if (rc) {
        fprintf(stderr, "gen_gpu: %s\n", err->msg);
        exit(1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median of reps timed runs of fn after one warm-up run; fn returns seconds. */
static double median(struct bench *b, double (*fn)(struct bench *))
{
    double t[MAX_REPS];

    fn(b);
    for (size_t r = 0; r < b->reps; r++)
        t[r] = fn(b);
    qsort(t, b->reps, sizeof(t[0]), cmp_double);
    return b->reps % 2 ? t[b->reps / 2] : 0.5 * (t[b->reps / 2 - 1] + t[b->reps / 2]);
}

static double run_prefill(struct bench *b)
{
    struct rag_err err = { 0 };
    double t;

    gen_seq_truncate(b->m, 0, 0);
    t = time_now();
    check(gen_eval_seq(b->m, 0, b->tok, b->n_prefill, 0, b->logits, &err), &err);
    return time_now() - t;
}

static double run_decode_b1(struct bench *b)
{
    struct rag_err err = { 0 };
    int32_t cur = b->tok[B1_PROMPT], next;
    double t;

    gen_seq_truncate(b->m, 0, 0);
    check(gen_eval_seq(b->m, 0, b->tok, B1_PROMPT, 0, NULL, &err), &err);
    t = time_now();
    for (size_t i = 0; i < b->steps; i++) {
        check(gen_decode_batch(b->m, b->seqs, &cur, 1, NULL, &next, &err), &err);
        cur = b->trace[0][i] = next;
    }
    return time_now() - t;
}

static double run_decode_b1_logits(struct bench *b)
{
    struct rag_err err = { 0 };
    int32_t cur = b->tok[B1_PROMPT];
    double t;

    gen_seq_truncate(b->m, 0, 0);
    check(gen_eval_seq(b->m, 0, b->tok, B1_PROMPT, 0, NULL, &err), &err);
    t = time_now();
    for (size_t i = 0; i < b->steps; i++) {
        check(gen_eval_seq(b->m, 0, &cur, 1, B1_PROMPT + i, b->logits, &err), &err);
        cur = b->trace[1][i] = gen_argmax(b->logits, b->n_vocab);
    }
    return time_now() - t;
}

static double run_decode_batch(struct bench *b)
{
    struct rag_err err = { 0 };
    double t;

    for (size_t s = 0; s < b->n_seqs; s++) {
        size_t len = B1_PROMPT * (s + 1);
        gen_seq_truncate(b->m, s, 0);
        check(gen_eval_seq(b->m, s, b->tok + s, len, 0, NULL, &err), &err);
        b->cur[s] = b->tok[s + len];
    }
    t = time_now();
    for (size_t i = 0; i < b->steps; i++) {
        check(gen_decode_batch(b->m, b->seqs, b->cur, b->n_seqs, NULL, b->next, &err), &err);
        memcpy(b->cur, b->next, b->n_seqs * sizeof(*b->cur));
    }
    return time_now() - t;
}

static void usage(void)
{
    fprintf(stderr, "usage: gen_gpu [--device gpu|cpu|auto] [--reps N] [--steps N] "
                    "[--prefill N] [--seqs N] MODEL\n");
    exit(2);
}

static int parse_device(const char *s, enum gen_device *ret)
{
    static const char *const names[] = { "auto", "cpu", "gpu" };

    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *ret = (enum gen_device)i;
            return 0;
        }
    return -1;
}

/* Parse the options into b and o; returns the index of MODEL. */
static int parse_args(int argc, char **argv, struct bench *b, struct gen_model_opts *o)
{
    int i = 1;

    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--device") && !parse_device(v, &o->device))
            continue;
        if (!strcmp(k, "--reps") && !parse_size(v, 1, MAX_REPS, &b->reps))
            continue;
        if (!strcmp(k, "--steps") && !parse_size(v, 1, 4096, &b->steps))
            continue;
        if (!strcmp(k, "--prefill") && !parse_size(v, 1, 1 << 20, &b->n_prefill))
            continue;
        if (!strcmp(k, "--seqs") && !parse_size(v, 1, 1024, &b->n_seqs))
            continue;
        usage();
    }
    if (argc - i != 1)
        usage();
    return i;
}

/* Open the model with a KV cache per sequence for the longest run, rounded up to 256 tokens. */
static void open_model(struct bench *b, const char *path, struct gen_model_opts *o)
{
    struct rag_err err = { 0 };
    size_t need = B1_PROMPT * b->n_seqs + b->steps + 1;
    int rc;

    need = need > b->n_prefill ? need : b->n_prefill;
    o->n_ctx = (need + 255) / 256 * 256;
    o->n_seqs = b->n_seqs;
    rc = gen_model_open(&b->m, path, o, &err);
    if (rc) {
        fprintf(stderr, "gen_gpu: %s\n", err.msg);
        exit(rc == RAG_ENOSYS || (rc == RAG_EGPU && strstr(err.msg, "no CUDA device")) ? 77 : 1);
    }
    b->n_vocab = gen_model_info(b->m)->n_vocab;
    b->tok = xmalloc_array(o->n_ctx, sizeof(*b->tok));
    for (size_t i = 0; i < o->n_ctx; i++)
        b->tok[i] = (int32_t)((i * 7919 + 13) % (b->n_vocab - b->n_vocab / 8) + b->n_vocab / 8);
    b->logits = xmalloc_array(b->n_vocab, sizeof(*b->logits));
    b->seqs = xmalloc_array(b->n_seqs, sizeof(*b->seqs));
    b->cur = xmalloc_array(b->n_seqs, sizeof(*b->cur));
    b->next = xmalloc_array(b->n_seqs, sizeof(*b->next));
    for (size_t s = 0; s < b->n_seqs; s++)
        b->seqs[s] = s;
    b->trace[0] = xmalloc_array(b->steps, sizeof(*b->trace[0]));
    b->trace[1] = xmalloc_array(b->steps, sizeof(*b->trace[1]));
}

static size_t n_agree(const struct bench *b)
{
    size_t n = 0;

    for (size_t i = 0; i < b->steps; i++)
        n += b->trace[0][i] == b->trace[1][i];
    return n;
}

int main(int argc, char **argv)
{
    struct bench b = { .reps = 5, .steps = 128, .n_prefill = 4096, .n_seqs = 32 };
    struct gen_model_opts o = GEN_MODEL_OPTS_DEFAULT;
    const struct gen_model_info *in;
    double t_open, t_pre, t_b1, t_b1l, t_bn;
    size_t k_b1, k_bn;
    int i;

    o.device = GEN_DEVICE_GPU;
    i = parse_args(argc, argv, &b, &o);
    t_open = time_now();
    open_model(&b, argv[i], &o);
    t_open = time_now() - t_open;
    in = gen_model_info(b.m);
    t_pre = median(&b, run_prefill);
    t_b1 = median(&b, run_decode_b1);
    k_b1 = gen_model_step_kernels(b.m);
    t_b1l = median(&b, run_decode_b1_logits);
    t_bn = median(&b, run_decode_batch);
    k_bn = gen_model_step_kernels(b.m);
    printf("{\"bench\": \"gen_gpu\", \"model\": \"%s\", \"on_gpu\": %s, \"layers\": %zu, "
           "\"dim\": %zu, \"vocab\": %zu, \"n_ctx\": %zu, \"reps\": %zu, \"statistic\": "
           "\"median\", \"open_s\": %.3f, \"prefill_tokens\": %zu, \"prefill_ms\": %.3f, "
           "\"prefill_tok_per_s\": %.1f, \"decode_steps\": %zu, \"decode_b1_tok_per_s\": %.1f, "
           "\"decode_b1_logits_tok_per_s\": %.1f, \"decode_seqs\": %zu, "
           "\"decode_batch_tok_per_s\": %.1f, \"device_bytes\": %zu, "
           "\"kernels_per_step_b1\": %zu, \"kernels_per_step_batch\": %zu, "
           "\"b1_greedy_agree\": %zu}\n",
           argv[i], gen_model_on_gpu(b.m) ? "true" : "false", in->n_layers, in->dim, in->n_vocab,
           in->n_ctx, b.reps, t_open, b.n_prefill, t_pre * 1e3, (double)b.n_prefill / t_pre,
           b.steps, (double)b.steps / t_b1, (double)b.steps / t_b1l, b.n_seqs,
           (double)(b.n_seqs * b.steps) / t_bn, gen_model_device_bytes(b.m), k_b1, k_bn,
           n_agree(&b));
    free(b.tok);
    free(b.logits);
    free(b.seqs);
    free(b.cur);
    free(b.next);
    free(b.trace[0]);
    free(b.trace[1]);
    gen_model_close(b.m);
    return 0;
}
