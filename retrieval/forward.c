/*
 * retrieval/forward.c - CPU forward pass of a post-LN BERT encoder.
 *
 * h = LN(E_tok[id] + E_pos[i] + E_type[0]); per layer
 * h = LN(h + W_o attn(h) + b_o), h = LN(h + W_2 gelu(W_1 h + b_1) + b_2),
 * with GELU in its erf form. Sequences are packed back to back without
 * padding; attention runs per (sequence, head), so a sequence only sees its
 * own tokens, exactly what the padding mask of a padded batch achieves.
 *
 * Threads: one OpenMP team. The matrix products are split into row (or,
 * for a handful of tokens, column) blocks, each an OpenBLAS sgemm run with
 * OpenBLAS itself single-threaded, so the two thread pools never compete
 * for the cores. exp and erf use short polynomial forms that vectorize:
 * exp has a relative error near 1e-7, erf (Abramowitz-Stegun 7.1.26) an
 * absolute error below 1.5e-7, well inside float32 parity.
 */
#include "retrieval/bert.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define MIN_ROWS_PER_THREAD 32

static inline float fast_expf(float x)
{
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t, r, p, scale;
    uint32_t bits;

    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    t = (x * 1.44269504f + shift) - shift;
    r = x - t * 0.693145751953125f - t * 1.428606765330187e-6f;
    p = 1.0f +
        r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r / 720)))));
    bits = (uint32_t)((int32_t)t + 127) << 23;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

RETR_SIMD static void gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float z = x[i] * 0.70710678f, a = fabsf(z);
        float t = 1.0f / (1.0f + 0.3275911f * a);
        float poly =
            t * (0.254829592f +
                 t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
        float e = 1.0f - poly * fast_expf(-a * a);

        x[i] = 0.5f * x[i] * (1.0f + (z < 0 ? -e : e));
    }
}

/* Sum of x[0..n) in 16 independent lanes, so it vectorizes without -ffast-math. */
static inline float sum16(const float *x, size_t n)
{
    float acc[16] = { 0 }, sum = 0;
    size_t j = 0;

    for (; j + 16 <= n; j += 16)
        for (size_t l = 0; l < 16; l++)
            acc[l] += x[j + l];
    for (; j < n; j++)
        sum += x[j];
    for (size_t l = 0; l < 16; l++)
        sum += acc[l];
    return sum;
}

/* Maximum of x[0..n), n > 0, in 16 lanes like sum16. */
static inline float max16(const float *x, size_t n)
{
    float acc[16], max = x[0];
    size_t j = 0;

    for (size_t l = 0; l < 16; l++)
        acc[l] = x[0];
    for (; j + 16 <= n; j += 16)
        for (size_t l = 0; l < 16; l++)
            acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
    for (; j < n; j++)
        max = x[j] > max ? x[j] : max;
    for (size_t l = 0; l < 16; l++)
        max = acc[l] > max ? acc[l] : max;
    return max;
}

RETR_SIMD static void softmax_row(float *s, size_t n)
{
    float max = max16(s, n), inv;

    for (size_t j = 0; j < n; j++)
        s[j] = fast_expf(s[j] - max);
    inv = 1.0f / sum16(s, n);
    for (size_t j = 0; j < n; j++)
        s[j] *= inv;
}

/* h = LN(h + t) * g + b over one row of d values (t may be NULL). */
RETR_SIMD static void add_layernorm(float *h, const float *t, const float *g, const float *b,
                                    size_t d, float eps)
{
    float mean = 0, var = 0, rstd;

    for (size_t i = 0; i < d; i++) {
        h[i] += t ? t[i] : 0.0f;
        mean += h[i];
    }
    mean /= (float)d;
    for (size_t i = 0; i < d; i++)
        var += (h[i] - mean) * (h[i] - mean);
    rstd = 1.0f / sqrtf(var / (float)d + eps);
    for (size_t i = 0; i < d; i++)
        h[i] = (h[i] - mean) * rstd * g[i] + b[i];
}

/* y[r0..r1, c0..c1) = x W^T + b for rows r0..r1 and output columns c0..c1. */
static void linear_block(const float *x, size_t in, const float *w, const float *b, size_t out,
                         float *y, size_t r0, size_t r1, size_t c0, size_t c1)
{
    for (size_t i = r0; i < r1; i++)
        memcpy(y + i * out + c0, b + c0, (c1 - c0) * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)(c1 - c0), (int)in,
                1.0f, x + r0 * in, (int)in, w + c0 * in, (int)in, 1.0f, y + r0 * out + c0,
                (int)out);
}

/* y (n, out) = x (n, in) W^T + b, W (out, in), split over nt threads. */
static void linear(const float *x, size_t n, size_t in, const float *w, const float *b, size_t out,
                   float *y, size_t nt)
{
    bool by_rows = n >= MIN_ROWS_PER_THREAD * nt;
    size_t total = by_rows ? n : out, step = (total + nt - 1) / nt;

#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t p = 0; p < nt; p++) {
        size_t a = p * step, z = a + step < total ? a + step : total;

        if (a >= z)
            continue;
        if (by_rows)
            linear_block(x, in, w, b, out, y, a, z, 0, out);
        else
            linear_block(x, in, w, b, out, y, 0, n, a, z);
    }
}

/* One head of one sequence: tokens [s0, s0 + len), head h; scores is (len, len) scratch. */
static void attend(const struct retr_bert *m, struct retr_bert_run *r, size_t s0, size_t len,
                   size_t h, float *scores)
{
    size_t d = m->c.dim, hd = d / m->c.n_heads;
    const float *q = r->qkv + s0 * 3 * d + h * hd;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)len, (int)len, (int)hd,
                1.0f / sqrtf((float)hd), q, (int)(3 * d), q + d, (int)(3 * d), 0.0f, scores,
                (int)len);
    for (size_t i = 0; i < len; i++)
        softmax_row(scores + i * len, len);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)len, (int)hd, (int)len, 1.0f,
                scores, (int)len, q + 2 * d, (int)(3 * d), 0.0f, r->ctx + s0 * d + h * hd, (int)d);
}

static void attention(const struct retr_bert *m, struct retr_bert_run *r, const size_t *start,
                      size_t n_seq)
{
    size_t n_heads = m->c.n_heads, tasks = n_seq * n_heads;

#pragma omp parallel for num_threads(r->n_threads) schedule(dynamic)
    for (size_t t = 0; t < tasks; t++) {
        size_t s = t / n_heads, len = start[s + 1] - start[s];
        float *scores = r->scores + (size_t)omp_get_thread_num() * r->max_seq * r->max_seq;

        attend(m, r, start[s], len, t % n_heads, scores);
    }
}

static void embed(const struct retr_bert *m, struct retr_bert_run *r, const int32_t *ids,
                  const size_t *start, size_t n_seq)
{
    size_t d = m->c.dim;

    for (size_t s = 0; s < n_seq; s++) {
#pragma omp parallel for num_threads(r->n_threads) schedule(static)
        for (size_t i = start[s]; i < start[s + 1]; i++) {
            const float *tok = m->tok_emb + (size_t)ids[i] * d;
            const float *pos = m->pos_emb + (i - start[s]) * d;
            float *h = r->h + i * d;

            for (size_t k = 0; k < d; k++)
                h[k] = tok[k] + pos[k] + m->type_emb[k];
            add_layernorm(h, NULL, m->emb_ln_g, m->emb_ln_b, d, m->c.ln_eps);
        }
    }
}

static void add_norm_rows(struct retr_bert_run *r, size_t n, size_t d, const float *g,
                          const float *b, float eps)
{
#pragma omp parallel for num_threads(r->n_threads) schedule(static)
    for (size_t i = 0; i < n; i++)
        add_layernorm(r->h + i * d, r->tmp + i * d, g, b, d, eps);
}

static void gelu_rows(struct retr_bert_run *r, size_t n, size_t f)
{
#pragma omp parallel for num_threads(r->n_threads) schedule(static)
    for (size_t i = 0; i < n; i++)
        gelu(r->ffn + i * f, f);
}

static void layer(const struct retr_bert *m, const struct retr_bert_layer *l,
                  struct retr_bert_run *r, size_t n, const size_t *start, size_t n_seq)
{
    size_t d = m->c.dim, f = m->c.ffn, nt = r->n_threads;

    linear(r->h, n, d, l->wqkv, l->bqkv, 3 * d, r->qkv, nt);
    attention(m, r, start, n_seq);
    linear(r->ctx, n, d, l->wo, l->bo, d, r->tmp, nt);
    add_norm_rows(r, n, d, l->ln1_g, l->ln1_b, m->c.ln_eps);
    linear(r->h, n, d, l->w1, l->b1, f, r->ffn, nt);
    gelu_rows(r, n, f);
    linear(r->ffn, n, f, l->w2, l->b2, d, r->tmp, nt);
    add_norm_rows(r, n, d, l->ln2_g, l->ln2_b, m->c.ln_eps);
}

void retr_bert_forward(const struct retr_bert *m, struct retr_bert_run *r, const int32_t *ids,
                       const size_t *start, size_t n_seq)
{
    size_t n = start[n_seq];
    int blas_threads = openblas_get_num_threads();

    assert(n <= r->max_tokens);
    openblas_set_num_threads(1);
    embed(m, r, ids, start, n_seq);
    for (size_t i = 0; i < m->c.n_layers; i++)
        layer(m, &m->layer[i], r, n, start, n_seq);
    openblas_set_num_threads(blas_threads);
}

void retr_bert_run_init(struct retr_bert_run *r, const struct retr_bert *m, size_t max_tokens,
                        size_t max_seq, size_t n_threads)
{
    size_t d = m->c.dim, t = max_tokens;

    memset(r, 0, sizeof(*r));
    r->max_tokens = max_tokens;
    r->max_seq = max_seq;
    r->n_threads = n_threads ? n_threads : (size_t)omp_get_max_threads();
    r->mem =
        xmalloc_array(t * (6 * d + m->c.ffn) + r->n_threads * max_seq * max_seq, sizeof(float));
    r->h = r->mem;
    r->qkv = r->h + t * d;
    r->ctx = r->qkv + t * 3 * d;
    r->tmp = r->ctx + t * d;
    r->ffn = r->tmp + t * d;
    r->scores = r->ffn + t * m->c.ffn;
}

void retr_bert_run_release(struct retr_bert_run *r)
{
    if (!r)
        return;
    free(r->mem);
    memset(r, 0, sizeof(*r));
}
