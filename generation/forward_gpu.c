/*
 * generation/forward_gpu.c - the llama / qwen2 forward pass on a CUDA GPU,
 * through the kernels of gpu/.
 *
 * Per layer, for n rows (the tokens of a prefill chunk, or one token of each
 * sequence of a decode batch), with x the fp32 residual stream and dt the
 * model's compute type (model_gpu_dtype: fp16, or bf16 for BF16 weights):
 *   xb = rmsnorm(x) (dt); qkv = xb Wqkv^T + bqkv (fp32, one stacked GEMM);
 *   RoPE of Q and K with K and V written to the paged dt cache, then
 *   att = attention (dt): gpu_rope_kv and gpu_attn_prefill over the
 *         sequence's block table row, or for a decode step both at once
 *         over the whole batch with gpu_attn_decode_rope;
 *   x += att Wo^T (GEMM with beta = 1);
 *   xb = rmsnorm(x); gu = xb Wgu^T (gate and up stacked; bf16 for a bf16
 *         model, else fp32); h = silu(g) * u;
 *   x += h Wdown^T.
 * Then the final norm and the output matrix on the last row (prefill) or
 * every row (decode, followed by an argmax per row on the device).
 *
 * One-row decode steps of every model size (decode_gemv()) use gpu_gemv()
 * instead of cuBLASLt, with each RMSNorm folded into the GEMV that reads its
 * output (QKV, gate/up, the output matrix) and SwiGLU into the gate/up
 * GEMV's output: 5 or 6 kernels a layer (the attention is two when its split
 * needs a combine pass) instead of 8 or 9. Prefill chunks and batches keep
 * gpu_gemm(). gen_model_step_kernels() reads the count from the captured
 * graph.
 *
 * Every per-step value (token ids, positions and cache slots of a prefill
 * chunk, the lengths and block table rows of a decode batch) is uploaded into device buffers before the
 * step, so a decode step of n sequences is captured once as a CUDA graph
 * (after one eager run that builds the cuBLASLt plans) and replayed for
 * every later step of n sequences. Nothing is allocated per token.
 */
#include "generation/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_GROUP 32 /* query heads per kv head the attention kernels take */

int model_gpu_supported(const struct gen_model *m, struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    const char *path = gguf_path(m->gguf);

    if (in->head_dim != 64 && in->head_dim != 128)
        return rag_errf(err, RAG_EFORMAT, "'%s': gpu: head dim %zu is not 64 or 128", path,
                        in->head_dim);
    if (in->n_heads / in->n_kv_heads > QUERY_GROUP)
        return rag_errf(err, RAG_EFORMAT, "'%s': gpu: %zu query heads per kv head exceed %d", path,
                        in->n_heads / in->n_kv_heads, QUERY_GROUP);
    if (m->rope_neox && m->n_rot != in->head_dim)
        return rag_errf(err, RAG_EFORMAT,
                        "'%s': gpu: NEOX rotary embedding of %zu of %zu head dims is not supported",
                        path, m->n_rot, in->head_dim);
    return 0;
}

/* Carves device buffers from pool; with pool.ptr NULL it only adds up the sizes. */
struct dcarver {
    struct gpu_buf pool;
    size_t off;
    int rc;
    struct rag_err *err;
};

static void dcarve(struct dcarver *c, size_t bytes, struct gpu_buf *ret)
{
    size_t a = gpu_align(bytes);

    if (c->rc)
        return;
    if (c->pool.ptr) {
        c->rc = gpu_buf_carve(&c->pool, &c->off, bytes, ret, c->err);
        return;
    }
    if (a == SIZE_MAX || c->off > SIZE_MAX - a)
        c->rc = rag_errf(c->err, RAG_EINVAL, "gpu: model buffers overflow size_t");
    else
        c->off += a;
    ret->ptr = NULL;
    ret->bytes = bytes;
}

static void layout_layer(const struct gen_model *m, struct model_gpu_layer *L, struct dcarver *c)
{
    const struct gen_model_info *in = &m->info;
    const struct model_gpu *G = m->gpu;
    size_t dim = in->dim, ff = in->ffn_dim;
    size_t n_blocks = m->n_seqs * G->seq_blocks;
    size_t kv_bytes = n_blocks * GPU_KV_BLOCK * m->kv_dim * gpu_dtype_size(G->dtype);

    dcarve(c, G->qkv_dim * dim * 2, &L->w_qkv);
    dcarve(c, in->arch == GEN_ARCH_QWEN2 ? G->qkv_dim * 4 : 0, &L->b_qkv);
    dcarve(c, dim * m->q_dim * 2, &L->w_o);
    dcarve(c, 2 * ff * dim * 2, &L->w_gu);
    dcarve(c, dim * ff * 2, &L->w_down);
    dcarve(c, dim * 4, &L->attn_norm);
    dcarve(c, dim * 4, &L->ffn_norm);
    dcarve(c, kv_bytes, &L->kv.k);
    dcarve(c, kv_bytes, &L->kv.v);
    L->kv.type = G->dtype;
    L->kv.n_blocks = n_blocks;
    L->kv.n_kv_heads = in->n_kv_heads;
    L->kv.head_dim = in->head_dim;
}

/* Table width (blocks) of length bucket b. */
static size_t bucket_blocks(const struct model_gpu *G, size_t b)
{
    size_t w = (size_t)MODEL_GPU_BUCKET << b;

    return w < G->seq_blocks ? w : G->seq_blocks;
}

/* Workspace of gpu_attn_decode for the largest need over batches of 1..n_seqs and buckets. */
static size_t decode_workspace(const struct gen_model *m)
{
    const struct model_gpu *G = m->gpu;
    size_t best = 0;

    for (size_t b = 0; b < G->n_buckets; b++)
        for (size_t n = 1; n <= m->n_seqs; n++) {
            struct gpu_seqs s = { .n_seqs = n, .max_blocks = bucket_blocks(G, b) };
            size_t w = gpu_attn_decode_workspace(G->g, m->info.n_heads, &G->layer[0].kv, &s);
            best = w > best ? w : best;
        }
    return best;
}

static void layout(struct gen_model *m, struct dcarver *c)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = m->gpu;
    size_t dim = in->dim, nv = in->n_vocab, rows = G->rows, ns = m->n_seqs;

    for (size_t l = 0; l < in->n_layers; l++)
        layout_layer(m, &G->layer[l], c);
    dcarve(c, nv * dim * 2, &G->tok_embd);
    if (in->tied_embeddings)
        G->output = G->tok_embd;
    else
        dcarve(c, nv * dim * 2, &G->output);
    dcarve(c, dim * 4, &G->output_norm);
    dcarve(c, in->head_dim / 2 * 4, &G->inv_freq);
    dcarve(c, rows * dim * 4, &G->x);
    dcarve(c, rows * dim * 2, &G->xb);
    dcarve(c, rows * G->qkv_dim * 4, &G->qkv);
    dcarve(c, rows * m->q_dim * 4, &G->q);
    dcarve(c, rows * m->q_dim * 2, &G->att);
    dcarve(c, rows * 2 * in->ffn_dim * 4, &G->gu);
    dcarve(c, rows * in->ffn_dim * 2, &G->h);
    dcarve(c, ns * nv * 4, &G->logits);
    dcarve(c, ns * 4, &G->next);
    dcarve(c, decode_workspace(m), &G->work);
    dcarve(c, ns * G->seq_blocks * 4, &G->tables);
    dcarve(c, ns * G->seq_blocks * 4, &G->dec_tables);
    dcarve(c, 3 * G->ub * 4, &G->pre);
    dcarve(c, 2 * ns * 4, &G->dec);
}

/* RoPE frequencies and every sequence's block table row. */
static int upload_tables(struct gen_model *m, struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    size_t half = m->info.head_dim / 2, n = m->n_seqs * G->seq_blocks;
    float *inv = xcalloc(half, sizeof(float));
    int rc;

    for (size_t i = 0; i < m->n_rot / 2; i++)
        inv[i] = (float)pow((double)m->info.rope_base, -2.0 * (double)i / (double)m->n_rot);
    rc = gpu_upload(G->g, &G->inv_freq, inv, half * sizeof(float), err);
    free(inv);
    for (size_t i = 0; i < n; i++)
        G->table_host[i] = (int32_t)i;
    if (!rc)
        rc = gpu_upload(G->g, &G->tables, G->table_host, n * sizeof(int32_t), err);
    return rc;
}

static int allocate(struct gen_model *m, struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    struct dcarver c = { .err = err };
    int rc;

    layout(m, &c);
    if (c.rc)
        return c.rc;
    if ((rc = gpu_buf_alloc(G->g, c.off, &G->pool, err)))
        return rc;
    c.pool = G->pool;
    c.off = 0;
    layout(m, &c);
    return c.rc;
}

int model_gpu_open(struct gen_model *m, struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = xcalloc(1, sizeof(*G));
    size_t ns = m->n_seqs;
    int rc;

    m->gpu = G;
    G->layer = xcalloc(in->n_layers, sizeof(*G->layer));
    G->ub = in->n_ctx < MODEL_GPU_UBATCH ? in->n_ctx : MODEL_GPU_UBATCH;
    G->rows = G->ub > ns ? G->ub : ns;
    G->seq_blocks = (in->n_ctx + GPU_KV_BLOCK - 1) / GPU_KV_BLOCK;
    G->qkv_dim = m->q_dim + 2 * m->kv_dim;
    G->dtype = model_gpu_dtype(m);
    if (G->seq_blocks > INT32_MAX / GPU_KV_BLOCK / ns)
        return rag_errf(err, RAG_EINVAL,
                        "gpu: %zu sequences of %zu tokens exceed the cache's %d slots", ns,
                        in->n_ctx, INT32_MAX);
    G->pre_host = xcalloc(3 * G->ub, sizeof(int32_t));
    G->dec_host = xcalloc(2 * ns, sizeof(int32_t));
    G->table_host = xmalloc_array(ns * G->seq_blocks, sizeof(int32_t));
    G->dec_seqs = xmalloc_array(ns, sizeof(size_t));
    while (bucket_blocks(G, G->n_buckets) < G->seq_blocks)
        G->n_buckets++;
    G->n_buckets++;
    G->graph = xcalloc(G->n_buckets * (ns + 1), sizeof(*G->graph));
    if ((rc = gpu_open(&G->g, 0, err)) || (rc = allocate(m, err)) ||
        (rc = model_gpu_upload(m, err)) || (rc = upload_tables(m, err)))
        return rc;
    RAG_DEBUG("gpu: %.1f MiB of device memory, prefill chunks of %zu tokens, compute type %s",
              (double)G->pool.bytes / (1 << 20), G->ub, G->dtype == GPU_F16 ? "f16" : "bf16");
    return 0;
}

void model_gpu_close(struct gen_model *m)
{
    struct model_gpu *G = m->gpu;

    if (!G)
        return;
    for (size_t i = 0; G->g && G->graph && i < G->n_buckets * (m->n_seqs + 1); i++)
        gpu_graph_free(G->g, G->graph[i]);
    if (G->g)
        gpu_buf_free(G->g, &G->pool);
    gpu_close(G->g);
    free(G->graph);
    free(G->dec_seqs);
    free(G->table_host);
    free(G->dec_host);
    free(G->pre_host);
    free(G->layer);
    free(G);
    m->gpu = NULL;
}

/* The per-step inputs of one forward pass. */
struct step {
    size_t n;                       /* rows */
    struct gpu_buf ids, pos, slots; /* int32 (n) each; pos and slots for prefill only */
    bool decode;
    bool gemv;            /* decode through gpu_gemv() and its fused variants */
    struct gpu_seqs seqs; /* decode: the batch's table rows and lengths */
    struct gpu_buf table; /* prefill: the sequence's block table row */
    size_t pos0;          /* prefill: position of the first row */
};

static int attn_block(struct gen_model *m, struct model_gpu_layer *L, const struct step *st,
                      struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = m->gpu;
    struct gpu *g = G->g;
    float scale = 1.0f / sqrtf((float)in->head_dim);
    enum gpu_rope_type rt = m->rope_neox ? GPU_ROPE_NEOX : GPU_ROPE_NORM;
    const struct gpu_buf *bias = L->b_qkv.bytes ? &L->b_qkv : NULL;
    enum gpu_dtype dt = G->dtype;
    size_t n = st->n;
    int rc;

    if (st->gemv) {
        rc = gpu_gemv_rmsnorm(g, &G->x, &L->attn_norm, in->rms_eps, &L->w_qkv, dt, bias, &G->qkv,
                              GPU_F32, n, G->qkv_dim, in->dim, 0.0f, err);
    } else {
        rc = gpu_rmsnorm(g, &G->x, NULL, &L->attn_norm, &G->xb, dt, n, in->dim, in->rms_eps, err);
        if (!rc)
            rc = gpu_gemm(g, &G->xb, &L->w_qkv, dt, bias, &G->qkv, GPU_F32, n, G->qkv_dim, in->dim,
                          0.0f, err);
    }
    if (!rc && st->decode)
        rc = gpu_attn_decode_rope(g, &G->qkv, in->n_heads, rt, &G->inv_freq, &L->kv, &st->seqs,
                                  scale, &G->work, &G->att, dt, err);
    if (!rc && !st->decode)
        rc = gpu_rope_kv(g, &G->qkv, n, in->n_heads, rt, &G->inv_freq, &st->pos, &st->slots, &G->q,
                         &L->kv, err);
    if (!rc && !st->decode)
        rc = gpu_attn_prefill(g, &G->q, n, in->n_heads, st->pos0, &L->kv, &st->table, scale,
                              &G->att, dt, err);
    if (!rc && st->gemv)
        rc = gpu_gemv(g, &G->att, &L->w_o, dt, NULL, &G->x, GPU_F32, n, in->dim, m->q_dim, 1.0f,
                      err);
    else if (!rc)
        rc = gpu_gemm(g, &G->att, &L->w_o, dt, NULL, &G->x, GPU_F32, n, in->dim, m->q_dim, 1.0f,
                      err);
    return rc;
}

/* The FFN of a decode step through the fused GEMVs: norm and SwiGLU in gate/up, then down. */
static int ffn_gemv(struct gen_model *m, struct model_gpu_layer *L, size_t n, struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = m->gpu;
    size_t ff = in->ffn_dim;
    int rc;

    rc = gpu_gemv_rmsnorm_swiglu(G->g, &G->x, &L->ffn_norm, in->rms_eps, &L->w_gu, G->dtype, &G->h,
                                 G->dtype, n, ff, in->dim, err);
    if (!rc)
        rc = gpu_gemv(G->g, &G->h, &L->w_down, G->dtype, NULL, &G->x, GPU_F32, n, in->dim, ff, 1.0f,
                      err);
    return rc;
}

/*
 * The FFN through cuBLASLt. Gate and up are kept in bf16 for a bf16 model
 * (half the bytes of the widest activation; bf16 has fp32's range) and in
 * fp32 for an fp16 one, whose range ends at 65504.
 */
static int ffn_block(struct gen_model *m, struct model_gpu_layer *L, size_t n, struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = m->gpu;
    struct gpu *g = G->g;
    enum gpu_dtype dt = G->dtype, gt = dt == GPU_BF16 ? GPU_BF16 : GPU_F32;
    size_t ff = in->ffn_dim;
    int rc;

    rc = gpu_rmsnorm(g, &G->x, NULL, &L->ffn_norm, &G->xb, dt, n, in->dim, in->rms_eps, err);
    if (!rc)
        rc = gpu_gemm(g, &G->xb, &L->w_gu, dt, NULL, &G->gu, gt, n, 2 * ff, in->dim, 0.0f, err);
    if (!rc)
        rc = gpu_swiglu(g, &G->gu, gt, &G->h, dt, n, ff, err);
    if (!rc)
        rc = gpu_gemm(g, &G->h, &L->w_down, dt, NULL, &G->x, GPU_F32, n, in->dim, ff, 1.0f, err);
    return rc;
}

/* Embedding and every layer: leaves the n rows of the residual stream in G->x. */
static int forward(struct gen_model *m, const struct step *st, struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = m->gpu;
    int rc = gpu_embed_rows(G->g, &G->tok_embd, G->dtype, in->n_vocab, in->dim, &st->ids, st->n,
                            1.0f, &G->x, err);

    for (size_t l = 0; !rc && l < in->n_layers; l++) {
        rc = attn_block(m, &G->layer[l], st, err);
        if (!rc && st->gemv)
            rc = ffn_gemv(m, &G->layer[l], st->n, err);
        else if (!rc)
            rc = ffn_block(m, &G->layer[l], st->n, err);
    }
    return rc;
}

/* Final norm and output matrix on n rows of x, into the first n rows of G->logits. */
static int lm_head(struct gen_model *m, struct gpu_buf *x, size_t n, bool gemv, struct rag_err *err)
{
    const struct gen_model_info *in = &m->info;
    struct model_gpu *G = m->gpu;
    int rc;

    if (gemv)
        return gpu_gemv_rmsnorm(G->g, x, &G->output_norm, in->rms_eps, &G->output, G->dtype, NULL,
                                &G->logits, GPU_F32, n, in->n_vocab, in->dim, 0.0f, err);
    rc =
        gpu_rmsnorm(G->g, x, NULL, &G->output_norm, &G->xb, G->dtype, n, in->dim, in->rms_eps, err);
    if (!rc)
        rc = gpu_gemm(G->g, &G->xb, &G->output, G->dtype, NULL, &G->logits, GPU_F32, n, in->n_vocab,
                      in->dim, 0.0f, err);
    return rc;
}

/* One prefill chunk of k tokens of sequence seq at positions pos0..; logits of the last one. */
static int prefill_chunk(struct gen_model *m, size_t seq, const int32_t *tokens, size_t k,
                         size_t pos0, float *logits, struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    size_t ub = G->ub, sb = G->seq_blocks, dim = m->info.dim;
    size_t base = seq * sb * GPU_KV_BLOCK;
    struct step st = { .n = k, .pos0 = pos0 };
    struct gpu_buf last;
    int rc;

    for (size_t t = 0; t < k; t++) {
        G->pre_host[t] = tokens[t];
        G->pre_host[ub + t] = (int32_t)(pos0 + t);
        G->pre_host[2 * ub + t] = (int32_t)(base + pos0 + t);
    }
    st.ids = model_gpu_view(&G->pre, 0, k * 4);
    st.pos = model_gpu_view(&G->pre, ub * 4, k * 4);
    st.slots = model_gpu_view(&G->pre, 2 * ub * 4, k * 4);
    st.table = model_gpu_view(&G->tables, seq * sb * 4, sb * 4);
    rc = gpu_upload(G->g, &G->pre, G->pre_host, 3 * ub * sizeof(int32_t), err);
    if (!rc)
        rc = forward(m, &st, err);
    if (rc || !logits)
        return rc;
    last = model_gpu_view(&G->x, (k - 1) * dim * 4, dim * 4);
    rc = lm_head(m, &last, 1, false, err);
    if (!rc)
        rc = gpu_download(G->g, logits, &G->logits, m->info.n_vocab * sizeof(float), err);
    return rc;
}

int model_gpu_prefill(struct gen_model *m, size_t seq, const int32_t *tokens, size_t n, size_t pos,
                      float *logits, struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    int rc = 0;

    for (size_t i = 0; !rc && i < n; i += G->ub) {
        size_t k = n - i < G->ub ? n - i : G->ub;
        rc = prefill_chunk(m, seq, tokens + i, k, pos + i, i + k == n ? logits : NULL, err);
        if (!rc)
            m->seq_len[seq] = pos + i + k;
    }
    if (!rc && !logits)
        rc = gpu_sync(G->g, err);
    return rc;
}

/*
 * Whether a decode step of n rows goes through gpu_gemv() and its fused
 * variants: every one-row step, whatever the model's size. Measured on an
 * H200 (docs/BENCHMARKS.md) for a small model, they beat cuBLASLt plus the
 * separate norm and SwiGLU kernels (SmolLM2-135M: 979 against 861 tok/s
 * when this was chosen; 1,739 after the one-row GEMV kernel). With 32 rows
 * cuBLASLt is faster (6,066 against 5,333 tok/s), because the tensor-core
 * GEMV re-reads every input row per block. At 8B the one-row kernel now
 * streams any k in double-buffered rounds (gpu/gemv.cu) and wins too: 235.0
 * against 221.4 tok/s with cuBLASLt, 163 kernels a step against 324.
 */
static bool decode_gemv(const struct gen_model *m, size_t n)
{
    return n == 1 && m->info.dim % 8 == 0 && m->q_dim % 8 == 0 && m->info.ffn_dim % 8 == 0;
}

/* A decode step of n sequences in bucket b: every pointer fixed, the same for every such step. */
static int decode_step(struct gen_model *m, size_t n, size_t b, struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    size_t ns = m->n_seqs, width = bucket_blocks(G, b);
    struct step st = { .n = n, .decode = true, .gemv = decode_gemv(m, n) };
    int rc;

    st.ids = model_gpu_view(&G->dec, 0, n * 4);
    st.seqs.lens = model_gpu_view(&G->dec, ns * 4, n * 4);
    st.seqs.block_tables = model_gpu_view(&G->dec_tables, 0, n * width * 4);
    st.seqs.n_seqs = n;
    st.seqs.max_blocks = width;
    rc = forward(m, &st, err);
    if (!rc)
        rc = lm_head(m, &G->x, n, st.gemv, err);
    if (!rc)
        rc = gpu_argmax_rows(G->g, &G->logits, &G->next, n, m->info.n_vocab, err);
    return rc;
}

/* Replay the graph of n sequences in bucket b; the first time run eagerly (GEMM plans), then capture. */
static int run_decode(struct gen_model *m, size_t n, size_t b, struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    struct gpu_graph *graph = NULL, **slot = &G->graph[b * (m->n_seqs + 1) + n];
    struct rag_err ignored;
    int rc;

    if (*slot) {
        G->step_kernels = gpu_graph_kernels(*slot);
        return gpu_graph_launch(G->g, *slot, err);
    }
    if ((rc = decode_step(m, n, b, err)) || (rc = gpu_capture_begin(G->g, err)))
        return rc;
    rc = decode_step(m, n, b, err);
    if (rc) {
        (void)gpu_capture_end(G->g, &graph, &ignored);
        gpu_graph_free(G->g, graph);
        return rc;
    }
    rc = gpu_capture_end(G->g, &graph, err);
    if (!rc)
        *slot = graph;
    if (!rc)
        G->step_kernels = gpu_graph_kernels(graph);
    return rc;
}

/*
 * The batch's block table rows, as wide as the smallest bucket that holds
 * its longest sequence after this step (*ret_b), uploaded when the batch or
 * the bucket differs from the last step's.
 */
static int batch_tables(struct gen_model *m, const size_t *seqs, size_t n, size_t *ret_b,
                        struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    size_t sb = G->seq_blocks, need = 0, b = 0, w;
    bool same;

    for (size_t i = 0; i < n; i++)
        need = m->seq_len[seqs[i]] + 1 > need ? m->seq_len[seqs[i]] + 1 : need;
    while (bucket_blocks(G, b) * GPU_KV_BLOCK < need)
        b++;
    *ret_b = b;
    same = G->n_dec_seqs >= n && G->dec_bucket == b;
    for (size_t i = 0; same && i < n; i++)
        same = G->dec_seqs[i] == seqs[i];
    if (same)
        return 0;
    w = bucket_blocks(G, b);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < w; j++)
            G->table_host[i * w + j] = (int32_t)(seqs[i] * sb + j);
        G->dec_seqs[i] = seqs[i];
    }
    G->n_dec_seqs = n;
    G->dec_bucket = b;
    return gpu_upload(G->g, &G->dec_tables, G->table_host, n * w * sizeof(int32_t), err);
}

int model_gpu_decode(struct gen_model *m, const size_t *seqs, const int32_t *tokens, size_t n,
                     float *logits, int32_t *next, struct rag_err *err)
{
    struct model_gpu *G = m->gpu;
    size_t ns = m->n_seqs, nv = m->info.n_vocab;
    int32_t *h = G->dec_host;
    size_t b = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        size_t p = m->seq_len[seqs[i]];
        h[i] = tokens[i];
        h[ns + i] = (int32_t)(p + 1); /* the new token is the last of the attention */
    }
    rc = batch_tables(m, seqs, n, &b, err);
    if (!rc)
        rc = gpu_upload(G->g, &G->dec, h, 2 * ns * sizeof(int32_t), err);
    if (!rc)
        rc = run_decode(m, n, b, err);
    if (!rc && next)
        rc = gpu_download(G->g, next, &G->next, n * sizeof(int32_t), err);
    if (!rc && logits)
        rc = gpu_download(G->g, logits, &G->logits, n * nv * sizeof(float), err);
    if (!rc && !next && !logits)
        rc = gpu_sync(G->g, err);
    if (rc) {
        G->n_dec_seqs = 0; /* the tables upload may not have happened */
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        m->seq_len[seqs[i]]++;
    return 0;
}
