/*
 * bench/gen_cpu.c - CPU throughput of the generation/ engine.
 *
 * usage: gen_cpu MODEL N_THREADS REPEAT
 * Prefill: 512 and 2048 tokens evaluated from an empty cache in one
 * gen_eval call (batches of 512), logits of the last token included.
 * Decode: 128 single-token steps after a 16-token prompt (the llama.cpp
 * "tg128" setting), logits every step. Token ids are a fixed pseudo-random
 * sequence (throughput does not depend on the values). Each figure is the
 * median of REPEAT runs after one warm-up (the machine is shared, so the
 * median is steadier than the best); peak RSS is the process maximum
 * (getrusage), with a KV cache of 2,048 + 128 tokens.
 * Prints one line: "prefill512_tok_s=... prefill2048_tok_s=... decode_tok_s=...
 * peak_rss_mb=... threads=..." on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "generation/generation.h"

#define N_DECODE 128

static double prefill(struct gen_model *m, const int32_t *tok, size_t n, float *logits)
{
    struct rag_err err = { 0 };
    double t;

    gen_kv_reset(m);
    t = time_now();
    if (gen_eval(m, tok, n, 0, logits, &err)) {
        fprintf(stderr, "gen_cpu: %s\n", err.msg);
        exit(1);
    }
    return (double)n / (time_now() - t);
}

static double decode(struct gen_model *m, const int32_t *tok, float *logits)
{
    struct rag_err err = { 0 };
    double t;

    gen_kv_reset(m);
    if (gen_eval(m, tok, 16, 0, logits, &err))
        return 0;
    t = time_now();
    for (size_t i = 0; i < N_DECODE; i++)
        if (gen_eval(m, tok + 16 + i, 1, 16 + i, logits, &err))
            return 0;
    return N_DECODE / (time_now() - t);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    struct gen_model_opts o = { .n_ctx = 2048 + N_DECODE };
    struct gen_model *m;
    struct rag_err err = { 0 };
    struct rusage ru;
    size_t threads, repeat;
    double p512[100], p2048[100], dec[100];
    static int32_t tok[2048 + N_DECODE];
    float *logits;

    if (argc != 4 || parse_size(argv[2], 1, 256, &threads) ||
        parse_size(argv[3], 1, 100, &repeat)) {
        fprintf(stderr, "usage: gen_cpu MODEL N_THREADS REPEAT\n");
        return 2;
    }
    o.n_threads = (int)threads;
    if (gen_model_open(&m, argv[1], &o, &err)) {
        fprintf(stderr, "gen_cpu: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < sizeof(tok) / sizeof(tok[0]); i++)
        tok[i] = (int32_t)((i * 7919 + 13) % (gen_model_info(m)->n_vocab - 100) + 100);
    logits = xmalloc_array(gen_model_info(m)->n_vocab, sizeof(float));
    prefill(m, tok, 512, logits); /* warm-up: page in the weights */
    for (size_t r = 0; r < repeat; r++) {
        p512[r] = prefill(m, tok, 512, logits);
        p2048[r] = prefill(m, tok, 2048, logits);
        dec[r] = decode(m, tok, logits);
    }
    getrusage(RUSAGE_SELF, &ru);
    printf("prefill512_tok_s=%.1f prefill2048_tok_s=%.1f decode_tok_s=%.1f peak_rss_mb=%.1f "
           "threads=%zu\n",
           median(p512, repeat), median(p2048, repeat), median(dec, repeat),
           (double)ru.ru_maxrss / 1024.0, threads);
    free(logits);
    gen_model_close(m);
    return 0;
}
