/*
 * generation/weights_gpu.c - upload a model's weights to the GPU once, at
 * open, into the buffers forward_gpu.c carved.
 *
 * Every matrix goes up in the model's compute type (model_gpu_dtype): fp16
 * (11 significant bits) unless a matrix is stored as BF16, whose range fp16
 * may not hold, then bf16 (8 bits). A tensor already in that type goes up
 * as it is in the file; any other type is dequantized on the host with the
 * CPU reference code (quant_dequant_row) and rounded to nearest even (fp16:
 * a finite value past +-65504 becomes +-65504), a slice of rows at a time
 * through a fixed staging buffer, spread over OpenMP threads. Q, K and
 * V are stacked into one (q_dim + 2 kv_dim, dim) matrix, gate and up into
 * one (2 ffn_dim, dim) matrix, so each is one GEMM; the qwen2 biases are
 * stacked the same way. Norm gains and biases are already fp32 on the host.
 */
#include "generation/model.h"

#include <stdlib.h>
#include <string.h>

#define STAGE_ELEMS ((size_t)1 << 22) /* elements converted per upload, at least one row */

struct stage {
    float *f;    /* (cap) dequantized rows */
    uint16_t *h; /* (cap) the same rounded to type */
    size_t cap;
    int n_threads;
    enum gpu_dtype type; /* GPU_BF16 or GPU_F16 */
};

/* fp32 to bf16, round to nearest even; NaN stays a (quiet) NaN. */
static uint16_t bf16_round(float x)
{
    uint32_t u;

    memcpy(&u, &x, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* fp32 to fp16, round to nearest even; a finite value past the range saturates. */
static uint16_t f16_round(float x)
{
    if (x > 65504.0f)
        x = 65504.0f;
    else if (x < -65504.0f)
        x = -65504.0f;
    return quant_f32_to_f16(x);
}

/* Rows [r0, r0 + nr) of w as s->type into s->h. */
static void rows_16(const struct quant_mat *w, size_t r0, size_t nr, struct stage *s)
{
    size_t n = w->n;
    bool f16 = s->type == GPU_F16;

#pragma omp parallel for num_threads(s->n_threads) schedule(static)
    for (size_t r = 0; r < nr; r++) {
        float *f = s->f + r * n;
        uint16_t *h = s->h + r * n;
        quant_dequant_row(w->type, w->data + (r0 + r) * w->row_bytes, f, n);
        for (size_t i = 0; i < n; i++)
            h[i] = f16 ? f16_round(f[i]) : bf16_round(f[i]);
    }
}

/* The rows of w into dst (rows of w->n elements of s->type) from row `at` on. */
static int put_mat(struct gpu *g, const struct quant_mat *w, const struct gpu_buf *dst, size_t at,
                   struct stage *s, struct rag_err *err)
{
    size_t row = w->n * 2, step = s->cap / w->n;
    bool same = (w->type == GGUF_TENSOR_BF16 && s->type == GPU_BF16) ||
                (w->type == GGUF_TENSOR_F16 && s->type == GPU_F16);
    struct gpu_buf d;
    int rc = 0;

    if (same) {
        d = model_gpu_view(dst, at * row, w->rows * row);
        return gpu_upload(g, &d, w->data, w->rows * row, err);
    }
    for (size_t r = 0; !rc && r < w->rows; r += step) {
        size_t nr = w->rows - r < step ? w->rows - r : step;
        rows_16(w, r, nr, s);
        d = model_gpu_view(dst, (at + r) * row, nr * row);
        rc = gpu_upload(g, &d, s->h, nr * row, err);
    }
    return rc;
}

enum gpu_dtype model_gpu_dtype(const struct gen_model *m)
{
    bool bf16 = m->tok_embd.type == GGUF_TENSOR_BF16 || m->output.type == GGUF_TENSOR_BF16;

    for (size_t l = 0; !bf16 && l < m->info.n_layers; l++) {
        const struct model_layer *L = &m->layer[l];
        const struct quant_mat *w[7] = { &L->wq,     &L->wk,   &L->wv,    &L->wo,
                                         &L->w_gate, &L->w_up, &L->w_down };

        for (int i = 0; i < 7; i++)
            bf16 |= w[i]->type == GGUF_TENSOR_BF16;
    }
    return bf16 ? GPU_BF16 : GPU_F16;
}

/* n floats of src into dst from element `at` on. */
static int put_vec(struct gpu *g, const struct gpu_buf *dst, size_t at, const float *src, size_t n,
                   struct rag_err *err)
{
    struct gpu_buf d = model_gpu_view(dst, at * sizeof(float), n * sizeof(float));

    return gpu_upload(g, &d, src, n * sizeof(float), err);
}

static int put_layer(struct gen_model *m, size_t l, struct stage *s, struct rag_err *err)
{
    const struct model_layer *L = &m->layer[l];
    struct model_gpu_layer *D = &m->gpu->layer[l];
    struct gpu *g = m->gpu->g;
    size_t qd = m->q_dim, kd = m->kv_dim, ff = m->info.ffn_dim, dim = m->info.dim;
    int rc;

    if ((rc = put_mat(g, &L->wq, &D->w_qkv, 0, s, err)) ||
        (rc = put_mat(g, &L->wk, &D->w_qkv, qd, s, err)) ||
        (rc = put_mat(g, &L->wv, &D->w_qkv, qd + kd, s, err)) ||
        (rc = put_mat(g, &L->wo, &D->w_o, 0, s, err)) ||
        (rc = put_mat(g, &L->w_gate, &D->w_gu, 0, s, err)) ||
        (rc = put_mat(g, &L->w_up, &D->w_gu, ff, s, err)) ||
        (rc = put_mat(g, &L->w_down, &D->w_down, 0, s, err)) ||
        (rc = put_vec(g, &D->attn_norm, 0, L->attn_norm, dim, err)) ||
        (rc = put_vec(g, &D->ffn_norm, 0, L->ffn_norm, dim, err)))
        return rc;
    if (!L->bq)
        return 0;
    if ((rc = put_vec(g, &D->b_qkv, 0, L->bq, qd, err)) ||
        (rc = put_vec(g, &D->b_qkv, qd, L->bk, kd, err)))
        return rc;
    return put_vec(g, &D->b_qkv, qd + kd, L->bv, kd, err);
}

int model_gpu_upload(struct gen_model *m, struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = m->gpu;
    size_t wmax = in->dim > m->q_dim ? in->dim : m->q_dim;
    struct stage s = { .n_threads = in->n_threads, .type = G->dtype };
    int rc = 0;

    wmax = wmax > in->ffn_dim ? wmax : in->ffn_dim;
    s.cap = STAGE_ELEMS > wmax ? STAGE_ELEMS : wmax;
    s.f = xmalloc_array(s.cap, sizeof(float));
    s.h = xmalloc_array(s.cap, sizeof(uint16_t));
    for (size_t l = 0; !rc && l < in->n_layers; l++)
        rc = put_layer(m, l, &s, err);
    if (!rc)
        rc = put_mat(G->g, &m->tok_embd, &G->tok_embd, 0, &s, err);
    if (!rc && !in->tied_embeddings)
        rc = put_mat(G->g, &m->output, &G->output, 0, &s, err);
    if (!rc)
        rc = put_vec(G->g, &G->output_norm, 0, m->output_norm, in->dim, err);
    free(s.f);
    free(s.h);
    return rc;
}
