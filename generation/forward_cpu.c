/*
 * generation/forward_cpu.c - the llama / qwen2 forward pass on the CPU.
 *
 * x = embed(token); per layer:
 *   x += Wo · attention(RoPE(Wq·n + bq), RoPE(Wk·n + bk), Wv·n + bv),  n = rmsnorm(x) ⊙ g_attn
 *   x += Wdown · (silu(Wgate·n2) ⊙ Wup·n2),                          n2 = rmsnorm(x) ⊙ g_ffn
 * logits = Wout · (rmsnorm(x) ⊙ g_out) for the last token only.
 *
 * A batch of several tokens (prefill) runs every projection as a
 * matrix-matrix product (quant_matmat: fp32 tiles + sgemm) and attention as
 * two sgemm calls per head and tile of query rows, with the causal mask
 * applied between them. A single token (decode) uses the matrix-vector
 * kernels and a direct loop over the cached keys. OpenBLAS is switched to
 * one thread (for the whole process; see generation.h), because the OpenMP
 * threads already share the work and OpenBLAS's own spinning workers would
 * compete with them for the cores. The KV cache is fp32, (n_ctx, kv_dim) per layer.
 */
#include "generation/model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

static void rmsnorm(float *out, const float *x, const float *w, size_t n, float eps)
{
    float ss = 0.0f;

    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    ss = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * ss * w[i];
}

static void rmsnorm_rows(const struct gen_model *m, float *out, const float *x, const float *w,
                         size_t n_tok)
{
    size_t dim = m->info.dim;

#pragma omp parallel for num_threads(m->nt) if (n_tok > 1)
    for (size_t t = 0; t < n_tok; t++)
        rmsnorm(out + t * dim, x + t * dim, w, dim, m->info.rms_eps);
}

/* x += out over n_tok rows (the residual connection). */
static void residual(const struct gen_model *m, float *x, const float *out, size_t n_tok)
{
    size_t dim = m->info.dim;

#pragma omp parallel for num_threads(m->nt) if (n_tok > 1)
    for (size_t t = 0; t < n_tok; t++)
        for (size_t i = 0; i < dim; i++)
            x[t * dim + i] += out[t * dim + i];
}

/* outs[k] = in · w[k]ᵀ for n_tok rows of input (width w[0].n). */
static void linear(struct gen_model *m, const struct quant_mat *w, size_t n_mats, const float *in,
                   size_t n_tok, float *const *outs)
{
    int nt = m->nt;

    if (n_tok > 1) {
        for (size_t k = 0; k < n_mats; k++)
            quant_matmat(&w[k], in, w[k].n, n_tok, outs[k], w[k].rows, m->act.tmp, nt);
        return;
    }
    quant_block_sums(in, w[0].n, m->act.xsum);
    quant_matvec(m->isa, w, n_mats, in, m->act.xsum, outs, m->act.tmp, nt);
}

/* Rotate n_heads heads of one token at position pos (adjacent pairs, or halves for NEOX). */
static void rope(const struct gen_model *m, float *v, size_t n_heads, size_t pos)
{
    size_t hd = m->info.head_dim, half = m->n_rot / 2;
    const float *c = m->act.rope_cos + pos * half, *s = m->act.rope_sin + pos * half;

    for (size_t h = 0; h < n_heads; h++) {
        float *x = v + h * hd;
        for (size_t i = 0; i < half; i++) {
            size_t a = m->rope_neox ? i : 2 * i, b = m->rope_neox ? i + half : 2 * i + 1;
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * c[i] - x1 * s[i];
            x[b] = x0 * s[i] + x1 * c[i];
        }
    }
}

/* One token at position pos attends to the cached positions 0..pos. */
static void attention_one(struct gen_model *m, const struct model_layer *L, size_t pos)
{
    size_t hd = m->info.head_dim, group = m->info.n_heads / m->info.n_kv_heads;
    size_t n_keys = pos + 1;
    float scale = 1.0f / sqrtf((float)hd);

#pragma omp parallel for num_threads(m->nt) schedule(static)
    for (size_t h = 0; h < m->info.n_heads; h++) {
        float *s = m->act.scores + (size_t)omp_get_thread_num() * MODEL_ATT_ROWS * m->info.n_ctx;
        const float *q = m->act.q + h * hd;
        size_t off = (h / group) * hd;
        float *out = m->act.att + h * hd;
        for (size_t j = 0; j < n_keys; j++)
            s[j] = quant_dot_f32(m->isa, q, L->k_cache + j * m->kv_dim + off, hd) * scale;
        quant_softmax(m->isa, s, n_keys);
        memset(out, 0, hd * sizeof(*out));
        for (size_t j = 0; j < n_keys; j++) {
            const float *v = L->v_cache + j * m->kv_dim + off;
            for (size_t i = 0; i < hd; i++)
                out[i] += s[j] * v[i];
        }
    }
}

/* Query rows t0..t1 of head h (tokens at pos + t) against the cache, via sgemm. */
static void attention_tile(struct gen_model *m, const struct model_layer *L, size_t h, size_t t0,
                           size_t t1, size_t pos, float *s)
{
    size_t hd = m->info.head_dim, off = (h / (m->info.n_heads / m->info.n_kv_heads)) * hd;
    size_t nr = t1 - t0, n_keys = pos + t1;
    float scale = 1.0f / sqrtf((float)hd);

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)n_keys, (int)hd, scale,
                m->act.q + t0 * m->q_dim + h * hd, (int)m->q_dim, L->k_cache + off, (int)m->kv_dim,
                0.0f, s, (int)n_keys);
    for (size_t r = 0; r < nr; r++) {
        size_t visible = pos + t0 + r + 1;
        quant_softmax(m->isa, s + r * n_keys, visible);
        memset(s + r * n_keys + visible, 0, (n_keys - visible) * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)hd, (int)n_keys, 1.0f, s,
                (int)n_keys, L->v_cache + off, (int)m->kv_dim, 0.0f,
                m->act.att + t0 * m->q_dim + h * hd, (int)m->q_dim);
}

static void attention_batch(struct gen_model *m, const struct model_layer *L, size_t n, size_t pos)
{
    size_t n_tiles = (n + MODEL_ATT_ROWS - 1) / MODEL_ATT_ROWS;
    size_t n_items = m->info.n_heads * n_tiles;

#pragma omp parallel for num_threads(m->nt) schedule(dynamic, 1)
    for (size_t it = 0; it < n_items; it++) {
        /* largest tiles first: they see the most keys */
        size_t tile = n_tiles - 1 - it / m->info.n_heads, h = it % m->info.n_heads;
        size_t t0 = tile * MODEL_ATT_ROWS, t1 = t0 + MODEL_ATT_ROWS < n ? t0 + MODEL_ATT_ROWS : n;
        float *s = m->act.scores + (size_t)omp_get_thread_num() * MODEL_ATT_ROWS * m->info.n_ctx;
        attention_tile(m, L, h, t0, t1, pos, s);
    }
}

/* Token t of the batch: biases, RoPE at position pos + t, keys and values into the cache. */
static void qkv_finish(const struct gen_model *m, const struct model_layer *L, size_t t, size_t pos)
{
    float *q = m->act.q + t * m->q_dim, *k = m->act.k + t * m->kv_dim;
    float *v = m->act.v + t * m->kv_dim;

    for (size_t i = 0; L->bq && i < m->q_dim; i++)
        q[i] += L->bq[i];
    for (size_t i = 0; L->bk && i < m->kv_dim; i++) {
        k[i] += L->bk[i];
        v[i] += L->bv[i];
    }
    rope(m, q, m->info.n_heads, pos + t);
    rope(m, k, m->info.n_kv_heads, pos + t);
    memcpy(L->k_cache + (pos + t) * m->kv_dim, k, m->kv_dim * sizeof(float));
    memcpy(L->v_cache + (pos + t) * m->kv_dim, v, m->kv_dim * sizeof(float));
}

static void attention_block(struct gen_model *m, const struct model_layer *L, size_t n, size_t pos)
{
    struct model_act *a = &m->act;
    const struct quant_mat qkv[3] = { L->wq, L->wk, L->wv };
    float *const outs[3] = { a->q, a->k, a->v };
    float *const o[1] = { a->out };

    rmsnorm_rows(m, a->xn, a->x, L->attn_norm, n);
    linear(m, qkv, 3, a->xn, n, outs);
#pragma omp parallel for num_threads(m->nt) if (n > 1)
    for (size_t t = 0; t < n; t++)
        qkv_finish(m, L, t, pos);
    if (n == 1)
        attention_one(m, L, pos);
    else
        attention_batch(m, L, n, pos);
    linear(m, &L->wo, 1, a->att, n, o);
    residual(m, a->x, a->out, n);
}

static void ffn_block(struct gen_model *m, const struct model_layer *L, size_t n)
{
    struct model_act *a = &m->act;
    const struct quant_mat gu[2] = { L->w_gate, L->w_up };
    float *const outs[2] = { a->gate, a->up };
    float *const o[1] = { a->out };
    size_t ffn = m->info.ffn_dim;

    rmsnorm_rows(m, a->xn, a->x, L->ffn_norm, n);
    linear(m, gu, 2, a->xn, n, outs);
#pragma omp parallel for num_threads(m->nt) if (n > 1)
    for (size_t t = 0; t < n; t++)
        quant_swiglu(m->isa, a->gate + t * ffn, a->up + t * ffn, ffn);
    linear(m, &L->w_down, 1, a->gate, n, o);
    residual(m, a->x, a->out, n);
}

void model_forward(struct gen_model *m, const int32_t *tokens, size_t n, size_t pos, float *logits)
{
    struct model_act *a = &m->act;
    size_t dim = m->info.dim;

    quant_blas_single();
    for (size_t t = 0; t < n; t++)
        quant_dequant_row(m->tok_embd.type, m->tok_embd.data + tokens[t] * m->tok_embd.row_bytes,
                          a->x + t * dim, dim);
    for (size_t l = 0; l < m->info.n_layers; l++) {
        attention_block(m, &m->layer[l], n, pos);
        ffn_block(m, &m->layer[l], n);
    }
    if (logits) {
        float *const out[1] = { logits };
        rmsnorm(a->xn, a->x + (n - 1) * dim, m->output_norm, dim, m->info.rms_eps);
        linear(m, &m->output, 1, a->xn, 1, out);
    }
}
