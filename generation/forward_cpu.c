/*
 * generation/forward_cpu.c - the llama / qwen2 forward pass on the CPU.
 *
 * x = embed(token); per layer:
 *   x += Wo · attention(RoPE(Wq·n + bq), RoPE(Wk·n + bk), Wv·n + bv),  n = rmsnorm(x) ⊙ g_attn
 *   x += Wdown · (silu(Wgate·n2) ⊙ Wup·n2),                          n2 = rmsnorm(x) ⊙ g_ffn
 * logits = Wout · (rmsnorm(x) ⊙ g_out) for the last token only.
 *
 * A batch of several tokens (prefill) runs every projection as a
 * matrix-matrix product. With AVX512_VNNI that is the integer path
 * (quant_matmat_q16: the batch's activations quantized once to 16 bits per
 * block of 32, integer dot products with the weights' own blocks), and
 * attention is integer too: per layer the keys and the transposed values
 * are packed once (quant_pack_f32), then per head and tile of query rows
 * S = Q·Kᵀ, the causal softmax in fp32, and P·V (struct prefill holds the
 * scratch). Otherwise the projections dequantize fp32 tiles for sgemm
 * (quant_matmat) and attention is two sgemm calls per head and tile. A
 * single token (decode) uses the matrix-vector kernels and a direct loop
 * over the cached keys. OpenBLAS is switched to
 * one thread (for the whole process; see generation.h), because the OpenMP
 * threads already share the work and OpenBLAS's own spinning workers would
 * compete with them for the cores. The KV cache is fp32, (n_ctx, kv_dim) per layer.
 */
#include "generation/model.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Ranges of the attention operands on the integer path, chosen so that 32 products fit in
 * int32 (32 · 4095 · 8191 and 32 · 16383 · 4095 < 2^31): queries 13 bits and keys 14 bits,
 * probabilities 15 bits (they are >= 0) and values 13 bits. Of the splits measured, this one
 * moved the logits of a 300-token prefill least (SmolLM2 0.008, Qwen2.5 0.033; 16-bit queries
 * with 12-bit keys: 0.03 and 0.19).
 */
#define ATT_QMAX 4095
#define ATT_KMAX 8191
#define ATT_PMAX 16383
#define ATT_VMAX 4095

/*
 * Scratch of one prefill step (n > 1), allocated per model_forward call: the batch's 16-bit
 * activations and, for integer attention, one layer's packed keys and transposed values and
 * each thread's tile (scores, and the quantized queries and probabilities).
 */
struct prefill {
    bool int_att;            /* attention on the integer path (VNNI) */
    struct quant_q16 a16;    /* (n, max width) */
    size_t n_keys;           /* pos + n */
    size_t n_pad;            /* n_keys rounded up to 32 */
    size_t pack_bytes;       /* of one packed K or Vᵀ */
    uint8_t *kv;             /* (n_kv_heads, 2, pack_bytes), 64-byte aligned: K, then Vᵀ */
    void *kv_mem;            /* the allocation of kv */
    float *s;                /* (nt, MODEL_ATT_ROWS, n_pad) */
    struct quant_q16 *q, *p; /* (nt): (MODEL_ATT_ROWS, head_dim), (MODEL_ATT_ROWS, n_pad) */
    float *kmean;            /* (n_kv_heads, head_dim): one layer's key means */
    int nt;
};

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

/*
 * outs[k] = in · w[k]ᵀ for n_tok rows of input (width w[0].n). A batch quantizes its input
 * into pf->a16 once for the matrices that have an integer kernel on this CPU; the others take the
 * fp32 tiles + sgemm path.
 */
static void linear(struct gen_model *m, struct prefill *pf, const struct quant_mat *w,
                   size_t n_mats, const float *in, size_t n_tok, float *const *outs)
{
    struct quant_mat wi[QUANT_LINEAR_MAX];
    float *yi[QUANT_LINEAR_MAX];
    size_t n_int = 0;
    int nt = m->nt;

    assert(n_mats <= QUANT_LINEAR_MAX);
    if (n_tok == 1) {
        quant_block_sums(in, w[0].n, m->act.xsum);
        quant_matvec(m->isa, w, n_mats, in, m->act.xsum, outs, m->act.tmp, nt);
        return;
    }
    pf->a16.qmax = QUANT_Q16_MAX;
    for (size_t k = 0; k < n_mats; k++) {
        if (m->isa == QUANT_ISA_SCALAR || !quant_matmat_q16_supports(m->isa, w[k].type)) {
            quant_matmat(&w[k], in, w[k].n, n_tok, outs[k], w[k].rows, m->act.tmp, nt);
            continue;
        }
        if (quant_matmat_q16_qmax(w[k].type) < pf->a16.qmax)
            pf->a16.qmax = quant_matmat_q16_qmax(w[k].type);
        wi[n_int] = w[k];
        yi[n_int++] = outs[k];
    }
    if (n_int)
        quant_linear_q16(m->isa, wi, n_int, in, w[0].n, n_tok, &pf->a16, yi, m->act.tmp, nt);
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

/*
 * Integer path of attention_tile: S = Q·Kᵀ from the packed keys (scaled by 1/√head_dim at
 * packing), the causal softmax in fp32, then P·V from the packed transposed values, with Q and
 * P quantized per block of 32 within ATT_QMAX and ATT_PMAX.
 */
static void attention_tile_q16(struct gen_model *m, const struct prefill *pf, size_t h, size_t t0,
                               size_t t1, size_t pos)
{
    size_t hd = m->info.head_dim, kvh = h / (m->info.n_heads / m->info.n_kv_heads);
    size_t nr = t1 - t0, n_keys = pos + t1, n_pad = (n_keys + 31) / 32 * 32;
    int th = omp_get_thread_num();
    float *s = pf->s + (size_t)th * MODEL_ATT_ROWS * pf->n_pad;
    const uint8_t *kp = pf->kv + 2 * kvh * pf->pack_bytes;

    quant_q16_quantize(m->isa, &pf->q[th], m->act.q + t0 * m->q_dim + h * hd, m->q_dim, nr, hd, 1);
    quant_matmat_packed(m->isa, kp, n_keys, hd, &pf->q[th], s, n_pad);
    for (size_t r = 0; r < nr; r++) {
        size_t visible = pos + t0 + r + 1;
        quant_softmax(m->isa, s + r * n_pad, visible);
        memset(s + r * n_pad + visible, 0, (n_pad - visible) * sizeof(float));
    }
    quant_q16_quantize(m->isa, &pf->p[th], s, n_pad, nr, n_pad, 1);
    quant_matmat_packed(m->isa, kp + pf->pack_bytes, hd, pf->n_keys, &pf->p[th],
                        m->act.att + t0 * m->q_dim + h * hd, m->q_dim);
}

/*
 * Per-channel mean of n keys (row stride kv) into mean[0..hd). Subtracting it from every key
 * shifts all the scores of a query by the same amount, which the softmax cancels, and it
 * removes the large constant channels (qwen2's key biases) before quantization.
 */
static void key_mean(const float *k, size_t kv, size_t n, size_t hd, float *mean)
{
    for (size_t i = 0; i < hd; i++)
        mean[i] = 0.0f;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < hd; i++)
            mean[i] += k[j * kv + i];
    for (size_t i = 0; i < hd; i++)
        mean[i] /= (float)n;
}

/* Pack this layer's keys 0..n_keys (K less its mean, scaled by 1/√head_dim) and values (Vᵀ). */
static void pack_kv(const struct gen_model *m, const struct model_layer *L, struct prefill *pf)
{
    size_t hd = m->info.head_dim, kv = m->kv_dim;

#pragma omp parallel for num_threads(m->nt) schedule(dynamic, 1)
    for (size_t it = 0; it < 2 * m->info.n_kv_heads; it++) {
        size_t kvh = it / 2;
        float *mean = pf->kmean + kvh * hd;
        struct quant_f32_src k = { L->k_cache + kvh * hd,   kv,      1, pf->n_keys, hd, mean,
                                   1.0f / sqrtf((float)hd), ATT_KMAX };
        struct quant_f32_src v = {
            L->v_cache + kvh * hd, 1, kv, hd, pf->n_keys, NULL, 1.0f, ATT_VMAX
        };
        if (it % 2 == 0)
            key_mean(k.data, kv, pf->n_keys, hd, mean);
        quant_pack_f32(m->isa, it % 2 ? &v : &k, pf->kv + it * pf->pack_bytes);
    }
}

static void attention_batch(struct gen_model *m, struct prefill *pf, const struct model_layer *L,
                            size_t n, size_t pos)
{
    size_t n_tiles = (n + MODEL_ATT_ROWS - 1) / MODEL_ATT_ROWS;
    size_t n_items = m->info.n_heads * n_tiles;

    if (pf->int_att)
        pack_kv(m, L, pf);
#pragma omp parallel for num_threads(m->nt) schedule(dynamic, 1)
    for (size_t it = 0; it < n_items; it++) {
        /* largest tiles first: they see the most keys */
        size_t tile = n_tiles - 1 - it / m->info.n_heads, h = it % m->info.n_heads;
        size_t t0 = tile * MODEL_ATT_ROWS, t1 = t0 + MODEL_ATT_ROWS < n ? t0 + MODEL_ATT_ROWS : n;
        float *s = m->act.scores + (size_t)omp_get_thread_num() * MODEL_ATT_ROWS * m->info.n_ctx;
        if (pf->int_att)
            attention_tile_q16(m, pf, h, t0, t1, pos);
        else
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

static void attention_block(struct gen_model *m, struct prefill *pf, const struct model_layer *L,
                            size_t n, size_t pos)
{
    struct model_act *a = &m->act;
    const struct quant_mat qkv[3] = { L->wq, L->wk, L->wv };
    float *const outs[3] = { a->q, a->k, a->v };
    float *const o[1] = { a->out };

    rmsnorm_rows(m, a->xn, a->x, L->attn_norm, n);
    linear(m, pf, qkv, 3, a->xn, n, outs);
#pragma omp parallel for num_threads(m->nt) if (n > 1)
    for (size_t t = 0; t < n; t++)
        qkv_finish(m, L, t, pos);
    if (n == 1)
        attention_one(m, L, pos);
    else
        attention_batch(m, pf, L, n, pos);
    linear(m, pf, &L->wo, 1, a->att, n, o);
    residual(m, a->x, a->out, n);
}

static void ffn_block(struct gen_model *m, struct prefill *pf, const struct model_layer *L,
                      size_t n)
{
    struct model_act *a = &m->act;
    const struct quant_mat gu[2] = { L->w_gate, L->w_up };
    float *const outs[2] = { a->gate, a->up };
    float *const o[1] = { a->out };
    size_t ffn = m->info.ffn_dim;

    rmsnorm_rows(m, a->xn, a->x, L->ffn_norm, n);
    linear(m, pf, gu, 2, a->xn, n, outs);
#pragma omp parallel for num_threads(m->nt) if (n > 1)
    for (size_t t = 0; t < n; t++)
        quant_swiglu(m->isa, a->gate + t * ffn, a->up + t * ffn, ffn);
    linear(m, pf, &L->w_down, 1, a->gate, n, o);
    residual(m, a->x, a->out, n);
}

/* Scratch for a step of n tokens at pos (none for a single token). */
static void prefill_init(const struct gen_model *m, struct prefill *pf, size_t n, size_t pos)
{
    size_t wmax = m->info.dim > m->q_dim ? m->info.dim : m->q_dim, hd = m->info.head_dim, kb, vb;

    memset(pf, 0, sizeof(*pf));
    if (n < 2)
        return;
    wmax = wmax > m->info.ffn_dim ? wmax : m->info.ffn_dim;
    quant_q16_init(&pf->a16, n, wmax, QUANT_Q16_MAX);
    pf->int_att = m->isa == QUANT_ISA_VNNI && hd % 32 == 0;
    if (!pf->int_att)
        return;
    pf->nt = m->nt;
    pf->n_keys = pos + n;
    pf->n_pad = (pf->n_keys + 31) / 32 * 32;
    kb = quant_pack_size(pf->n_keys, hd); /* K: keys × head_dim */
    vb = quant_pack_size(hd, pf->n_keys); /* Vᵀ */
    pf->pack_bytes = kb > vb ? kb : vb;
    pf->kv_mem = xmalloc(2 * m->info.n_kv_heads * pf->pack_bytes + 63);
    pf->kv = (uint8_t *)(((uintptr_t)pf->kv_mem + 63) & ~(uintptr_t)63);
    pf->s = xmalloc_array((size_t)pf->nt * MODEL_ATT_ROWS * pf->n_pad, sizeof(float));
    pf->kmean = xmalloc_array(m->info.n_kv_heads * hd, sizeof(float));
    pf->q = xmalloc_array((size_t)pf->nt, sizeof(*pf->q));
    pf->p = xmalloc_array((size_t)pf->nt, sizeof(*pf->p));
    for (int t = 0; t < pf->nt; t++) {
        quant_q16_init(&pf->q[t], MODEL_ATT_ROWS, hd, ATT_QMAX);
        quant_q16_init(&pf->p[t], MODEL_ATT_ROWS, pf->n_pad, ATT_PMAX);
    }
}

static void prefill_release(struct prefill *pf)
{
    quant_q16_release(&pf->a16);
    for (int t = 0; t < pf->nt; t++) {
        quant_q16_release(&pf->q[t]);
        quant_q16_release(&pf->p[t]);
    }
    free(pf->q);
    free(pf->p);
    free(pf->s);
    free(pf->kmean);
    free(pf->kv_mem);
}

void model_forward(struct gen_model *m, const int32_t *tokens, size_t n, size_t pos, float *logits)
{
    struct model_act *a = &m->act;
    size_t dim = m->info.dim;
    struct prefill pf;

    prefill_init(m, &pf, n, pos);
    quant_blas_single();
    for (size_t t = 0; t < n; t++)
        quant_dequant_row(m->tok_embd.type, m->tok_embd.data + tokens[t] * m->tok_embd.row_bytes,
                          a->x + t * dim, dim);
    for (size_t l = 0; l < m->info.n_layers; l++) {
        attention_block(m, &pf, &m->layer[l], n, pos);
        ffn_block(m, &pf, &m->layer[l], n);
    }
    if (logits) {
        float *const out[1] = { logits };
        rmsnorm(a->xn, a->x + (n - 1) * dim, m->output_norm, dim, m->info.rms_eps);
        linear(m, &pf, &m->output, 1, a->xn, 1, out);
    }
    prefill_release(&pf);
}
