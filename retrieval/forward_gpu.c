/*
 * retrieval/forward_gpu.c - the BERT encoder of forward.c on the GPU,
 * through gpu/'s kernels.
 *
 * Same model as the CPU pass, with these precisions: each layer's matrices
 * are bf16 and its GEMMs accumulate in fp32; the embedding tables and the
 * LayerNorm parameters stay fp32, and so does the FFN's first bias (added
 * by the GELU kernel); the other biases are bf16, as cuBLASLt adds them in
 * the GEMMs' bf16 output type. The residual stream h is fp32; each
 * LayerNorm (fp32 statistics) adds a sub-layer's bf16 output to it and
 * writes it back with a bf16 copy xb that feeds the next GEMM. Per layer,
 * on rows of padded tokens:
 *   qkv   = xb Wqkv^T + bqkv           bf16
 *   ctx   = attention(qkv, lens)       bf16, padding rows zero
 *   t     = ctx Wo^T + bo              bf16
 *   h, xb = LN1(h + t)
 *   f     = gelu(xb W1^T + b1)         bf16 (GEMM, then the bias + GELU kernel)
 *   t     = f W2^T + b2                bf16
 *   h, xb = LN2(h + t)
 * Emulating these roundings on all-MiniLM-L6-v2 in PyTorch gave cosines of
 * at least 0.99996 to the fp32 model; keeping t in fp32 gained nothing
 * measurable, and a bf16 residual stream lowered the worst case to 0.99994.
 * and finally pooling with L2 normalisation on the device, so only n_seq x
 * dim floats come back.
 *
 * Memory: two allocations. The weights, carved into the tensors below; and
 * the activations: ids, lengths and pooled vectors for a launch of
 * batch_tokens, and h, xb, qkv, ctx, t, f for one pass of pass_tokens
 * padded tokens. A launch runs its sequences in passes of equal size, which
 * bounds the activation memory. (Passes small enough for L2 were slower on
 * an H200: 8,192 tokens gave 14.5k chunks/s of bge-small shape, one pass of
 * 32,768 15.9k.)
 *
 * Graphs: a launch whose shape (n_seq, seq_len) equals the previous eager
 * launch's is captured (that eager run made cuBLASLt's plans) into one of
 * GRAPH_SLOTS slots, replaced round-robin, and later launches of that shape
 * replay it with one call. Every launch uploads its ids and lengths to the
 * same device buffers, which is where a graph reads them.
 */
#include "retrieval/bert.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "gpu/gpu.h"

#define GRAPH_SLOTS 8

struct gpu_layer {
    struct gpu_buf wqkv, bqkv;   /* (3 * dim, dim) bf16, (3 * dim) bf16 */
    struct gpu_buf wo, bo;       /* (dim, dim) bf16, (dim) bf16 */
    struct gpu_buf ln1_g, ln1_b; /* (dim) fp32 */
    struct gpu_buf w1, b1;       /* (ffn, dim) bf16, (ffn) fp32 */
    struct gpu_buf w2, b2;       /* (dim, ffn) bf16, (dim) bf16 */
    struct gpu_buf ln2_g, ln2_b; /* (dim) fp32 */
};

struct graph_slot {
    size_t n_seq, seq_len;
    struct gpu_graph *graph; /* NULL: free slot */
};

struct retr_bert_gpu {
    struct gpu *g;
    struct retr_bert_config c;
    struct retr_bert_gpu_opts o;
    struct gpu_buf weights, acts; /* the two allocations */
    struct gpu_bert_embeddings emb;
    struct gpu_layer *layer;       /* (n_layers) */
    struct gpu_buf ids, lens;      /* int32 (batch_tokens), (batch_tokens / 2) */
    struct gpu_buf pooled;         /* (batch_tokens / 2, dim) fp32 */
    struct gpu_buf h;              /* (pass_tokens, dim) fp32 */
    struct gpu_buf xb, ctx, t;     /* (pass_tokens, dim) bf16 */
    struct gpu_buf qkv;            /* (pass_tokens, 3 * dim) bf16 */
    struct gpu_buf f;              /* (pass_tokens, ffn) bf16 */
    uint16_t *stage;               /* host bf16 staging, only while uploading */
    size_t n_seq;                  /* sequences of the last launch */
    size_t eager_n_seq, eager_len; /* shape of the last eager launch */
    struct graph_slot slot[GRAPH_SLOTS];
    size_t next_slot;
};

/* One tensor of an allocation: where its buffer goes, and its size. */
struct tensor {
    struct gpu_buf *buf;
    size_t bytes;
};

struct plan {
    struct tensor *item;
    size_t n, cap;
};

static void want(struct plan *p, struct gpu_buf *buf, size_t bytes)
{
    p->item = grow_array(p->item, &p->cap, p->n + 1, sizeof(*p->item));
    p->item[p->n++] = (struct tensor){ buf, bytes };
}

/* One allocation for the tensors of p, carved in order; p is emptied. */
static int carve_all(struct gpu *g, struct plan *p, struct gpu_buf *pool, struct rag_err *err)
{
    size_t total = 0, off = 0;
    int rc;

    for (size_t i = 0; i < p->n; i++)
        total += gpu_align(p->item[i].bytes);
    rc = gpu_buf_alloc(g, total, pool, err);
    for (size_t i = 0; !rc && i < p->n; i++)
        rc = gpu_buf_carve(pool, &off, p->item[i].bytes, p->item[i].buf, err);
    free(p->item);
    *p = (struct plan){ 0 };
    return rc;
}

static void plan_weights(struct retr_bert_gpu *r, struct plan *p)
{
    size_t d = r->c.dim, f = r->c.ffn;

    want(p, &r->emb.tok, r->c.vocab * d * 4);
    want(p, &r->emb.pos, r->c.n_pos * d * 4);
    want(p, &r->emb.type, d * 4);
    want(p, &r->emb.gamma, d * 4);
    want(p, &r->emb.beta, d * 4);
    for (size_t i = 0; i < r->c.n_layers; i++) {
        struct gpu_layer *l = &r->layer[i];

        want(p, &l->wqkv, 3 * d * d * 2);
        want(p, &l->bqkv, 3 * d * 2);
        want(p, &l->wo, d * d * 2);
        want(p, &l->bo, d * 2);
        want(p, &l->ln1_g, d * 4);
        want(p, &l->ln1_b, d * 4);
        want(p, &l->w1, f * d * 2);
        want(p, &l->b1, f * 4);
        want(p, &l->w2, d * f * 2);
        want(p, &l->b2, d * 2);
        want(p, &l->ln2_g, d * 4);
        want(p, &l->ln2_b, d * 4);
    }
}

static void plan_acts(struct retr_bert_gpu *r, struct plan *p)
{
    size_t d = r->c.dim, pt = r->o.pass_tokens, bt = r->o.batch_tokens;

    want(p, &r->ids, bt * 4);
    want(p, &r->lens, bt / 2 * 4);
    want(p, &r->pooled, bt / 2 * d * 4);
    want(p, &r->h, pt * d * 4);
    want(p, &r->t, pt * d * 2);
    want(p, &r->xb, pt * d * 2);
    want(p, &r->ctx, pt * d * 2);
    want(p, &r->qkv, pt * 3 * d * 2);
    want(p, &r->f, pt * r->c.ffn * 2);
}

/* fp32 to bf16, rounding to nearest even; NaN stays NaN. */
static uint16_t to_bf16(float v)
{
    uint32_t b;

    memcpy(&b, &v, sizeof(b));
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(b >> 16 | 0x40);
    b += 0x7fffu + (b >> 16 & 1);
    return (uint16_t)(b >> 16);
}

static int put_f32(struct retr_bert_gpu *r, struct gpu_buf *dst, const float *src, size_t n,
                   struct rag_err *err)
{
    return gpu_upload(r->g, dst, src, n * sizeof(float), err);
}

static int put_bf16(struct retr_bert_gpu *r, struct gpu_buf *dst, const float *src, size_t n,
                    struct rag_err *err)
{
    for (size_t i = 0; i < n; i++)
        r->stage[i] = to_bf16(src[i]);
    return gpu_upload(r->g, dst, r->stage, n * sizeof(*r->stage), err);
}

static int upload_layer(struct retr_bert_gpu *r, const struct retr_bert_layer *s,
                        struct gpu_layer *l, struct rag_err *err)
{
    size_t d = r->c.dim, f = r->c.ffn;
    int rc = put_bf16(r, &l->wqkv, s->wqkv, 3 * d * d, err);

    rc = rc ? rc : put_bf16(r, &l->bqkv, s->bqkv, 3 * d, err);
    rc = rc ? rc : put_bf16(r, &l->wo, s->wo, d * d, err);
    rc = rc ? rc : put_bf16(r, &l->bo, s->bo, d, err);
    rc = rc ? rc : put_f32(r, &l->ln1_g, s->ln1_g, d, err);
    rc = rc ? rc : put_f32(r, &l->ln1_b, s->ln1_b, d, err);
    rc = rc ? rc : put_bf16(r, &l->w1, s->w1, f * d, err);
    rc = rc ? rc : put_f32(r, &l->b1, s->b1, f, err);
    rc = rc ? rc : put_bf16(r, &l->w2, s->w2, d * f, err);
    rc = rc ? rc : put_bf16(r, &l->b2, s->b2, d, err);
    rc = rc ? rc : put_f32(r, &l->ln2_g, s->ln2_g, d, err);
    return rc ? rc : put_f32(r, &l->ln2_b, s->ln2_b, d, err);
}

static int upload_weights(struct retr_bert_gpu *r, const struct retr_bert *m, struct rag_err *err)
{
    size_t d = r->c.dim, big = 3 * d > r->c.ffn ? 3 * d : r->c.ffn;
    int rc;

    r->stage = xmalloc_array(big * d, sizeof(*r->stage));
    rc = put_f32(r, &r->emb.tok, m->tok_emb, r->c.vocab * d, err);
    rc = rc ? rc : put_f32(r, &r->emb.pos, m->pos_emb, r->c.n_pos * d, err);
    rc = rc ? rc : put_f32(r, &r->emb.type, m->type_emb, d, err);
    rc = rc ? rc : put_f32(r, &r->emb.gamma, m->emb_ln_g, d, err);
    rc = rc ? rc : put_f32(r, &r->emb.beta, m->emb_ln_b, d, err);
    for (size_t i = 0; !rc && i < r->c.n_layers; i++)
        rc = upload_layer(r, &m->layer[i], &r->layer[i], err);
    free(r->stage);
    r->stage = NULL;
    r->emb.n_vocab = r->c.vocab;
    r->emb.n_pos = r->c.n_pos;
    r->emb.dim = d;
    r->emb.eps = r->c.ln_eps;
    return rc;
}

int retr_bert_gpu_check(const struct retr_bert_config *c, struct rag_err *err)
{
    size_t hd = c->dim / c->n_heads;

    if (hd != 32 && hd != 64)
        return rag_errf(err, RAG_EINVAL, "head size %zu is not supported on the GPU (32 or 64)",
                        hd);
    if (c->dim > GPU_ENC_DIM_MAX)
        return rag_errf(err, RAG_EINVAL, "hidden size %zu is over the GPU limit of %d", c->dim,
                        GPU_ENC_DIM_MAX);
    return 0;
}

int retr_bert_gpu_open(struct retr_bert_gpu **ret, const struct retr_bert *m,
                       const struct retr_bert_gpu_opts *o, struct rag_err *err)
{
    struct retr_bert_gpu *r = xcalloc(1, sizeof(*r));
    struct plan p = { 0 };
    int rc;

    assert(o->max_seq >= 2 && o->max_seq <= m->c.n_pos && o->pass_tokens >= o->max_seq &&
           o->batch_tokens >= o->max_seq);
    r->c = m->c;
    r->o = *o;
    r->layer = xcalloc(m->c.n_layers, sizeof(*r->layer));
    rc = gpu_open(&r->g, 0, err);
    rc = rc ? rc : retr_bert_gpu_check(&m->c, err);
    if (!rc) {
        plan_weights(r, &p);
        rc = carve_all(r->g, &p, &r->weights, err);
    }
    rc = rc ? rc : upload_weights(r, m, err);
    if (!rc) {
        plan_acts(r, &p);
        rc = carve_all(r->g, &p, &r->acts, err);
    }
    if (rc) {
        retr_bert_gpu_close(r);
        return rc;
    }
    *ret = r;
    return 0;
}

void retr_bert_gpu_close(struct retr_bert_gpu *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < GRAPH_SLOTS; i++)
        gpu_graph_free(r->g, r->slot[i].graph);
    if (r->g) {
        gpu_buf_free(r->g, &r->acts);
        gpu_buf_free(r->g, &r->weights);
        gpu_close(r->g);
    }
    free(r->stage);
    free(r->layer);
    free(r);
}

size_t retr_bert_gpu_bytes(const struct retr_bert_gpu *r)
{
    return r->weights.bytes + r->acts.bytes;
}

/* ---- the forward pass ---- */

/* One pass: n_seq sequences from s0 of the launch, as views of its buffers. */
struct pass {
    size_t n_seq, seq_len, rows;
    struct gpu_buf ids, lens, pooled;
};

static struct gpu_buf view(const struct gpu_buf *b, size_t off, size_t bytes)
{
    return (struct gpu_buf){ (char *)b->ptr + off, bytes };
}

static int layer(struct retr_bert_gpu *r, const struct gpu_layer *l, const struct pass *p,
                 struct rag_err *err)
{
    struct gpu *g = r->g;
    size_t d = r->c.dim, f = r->c.ffn, m = p->rows, hd = d / r->c.n_heads;
    float eps = r->c.ln_eps, scale = 1.0f / sqrtf((float)hd);
    int rc = gpu_gemm(g, &r->xb, &l->wqkv, GPU_BF16, &l->bqkv, &r->qkv, GPU_BF16, m, 3 * d, d, 0.0f,
                      err);

    rc = rc ? rc :
              gpu_attn_encoder(g, &r->qkv, &p->lens, p->n_seq, p->seq_len, r->c.n_heads, hd, scale,
                               &r->ctx, err);
    rc = rc ? rc :
              gpu_gemm(g, &r->ctx, &l->wo, GPU_BF16, &l->bo, &r->t, GPU_BF16, m, d, d, 0.0f, err);
    rc = rc ? rc :
              gpu_layernorm(g, &r->h, &r->t, GPU_BF16, &l->ln1_g, &l->ln1_b, &r->xb, GPU_BF16, m, d,
                            eps, err);
    rc = rc ? rc : gpu_gemm(g, &r->xb, &l->w1, GPU_BF16, NULL, &r->f, GPU_BF16, m, f, d, 0.0f, err);
    rc = rc ? rc : gpu_bias_gelu(g, &r->f, GPU_BF16, &l->b1, m, f, err);
    rc =
        rc ? rc : gpu_gemm(g, &r->f, &l->w2, GPU_BF16, &l->b2, &r->t, GPU_BF16, m, d, f, 0.0f, err);
    return rc ? rc :
                gpu_layernorm(g, &r->h, &r->t, GPU_BF16, &l->ln2_g, &l->ln2_b, &r->xb, GPU_BF16, m,
                              d, eps, err);
}

static int run_pass(struct retr_bert_gpu *r, size_t s0, size_t n_seq, size_t seq_len,
                    struct rag_err *err)
{
    struct pass p = { .n_seq = n_seq, .seq_len = seq_len, .rows = n_seq * seq_len };
    size_t d = r->c.dim;
    int rc;

    p.ids = view(&r->ids, s0 * seq_len * 4, p.rows * 4);
    p.lens = view(&r->lens, s0 * 4, n_seq * 4);
    p.pooled = view(&r->pooled, s0 * d * 4, n_seq * d * 4);
    rc = gpu_bert_embed(r->g, &r->emb, &p.ids, n_seq, seq_len, &r->h, &r->xb, GPU_BF16, err);
    for (size_t i = 0; !rc && i < r->c.n_layers; i++)
        rc = layer(r, &r->layer[i], &p, err);
    return rc ? rc :
                gpu_bert_pool(r->g, &r->h, &p.lens, n_seq, seq_len, d,
                              r->o.cls ? GPU_POOL_CLS : GPU_POOL_MEAN, &p.pooled, err);
}

/* The launch in passes of equal size, each at most pass_tokens tokens. */
static int forward(struct retr_bert_gpu *r, size_t n_seq, size_t seq_len, struct rag_err *err)
{
    size_t most = r->o.pass_tokens / seq_len, n_pass = (n_seq + most - 1) / most;
    size_t per = (n_seq + n_pass - 1) / n_pass;
    int rc = 0;

    for (size_t s0 = 0; !rc && s0 < n_seq; s0 += per)
        rc = run_pass(r, s0, n_seq - s0 < per ? n_seq - s0 : per, seq_len, err);
    return rc;
}

/* Capture the launch into the next slot and replay it once. */
static int capture(struct retr_bert_gpu *r, size_t n_seq, size_t seq_len, struct rag_err *err)
{
    struct graph_slot *slot = &r->slot[r->next_slot];
    struct gpu_graph *graph = NULL;
    struct rag_err end_err;
    int rc = gpu_capture_begin(r->g, err), end;

    if (rc)
        return rc;
    rc = forward(r, n_seq, seq_len, err);
    end = gpu_capture_end(r->g, &graph, rc ? &end_err : err);
    if (rc || end) {
        if (!end)
            gpu_graph_free(r->g, graph);
        return rc ? rc : end;
    }
    gpu_graph_free(r->g, slot->graph);
    *slot = (struct graph_slot){ n_seq, seq_len, graph };
    r->next_slot = (r->next_slot + 1) % GRAPH_SLOTS;
    return gpu_graph_launch(r->g, graph, err);
}

int retr_bert_gpu_launch(struct retr_bert_gpu *r, const int32_t *ids, const int32_t *lens,
                         size_t n_seq, size_t seq_len, struct rag_err *err)
{
    int rc;

    assert(n_seq >= 1 && seq_len >= 2 && seq_len <= r->o.max_seq &&
           n_seq * seq_len <= r->o.batch_tokens);
    rc = gpu_upload(r->g, &r->ids, ids, n_seq * seq_len * sizeof(*ids), err);
    rc = rc ? rc : gpu_upload(r->g, &r->lens, lens, n_seq * sizeof(*lens), err);
    if (rc)
        return rc;
    r->n_seq = n_seq;
    for (size_t i = 0; i < GRAPH_SLOTS; i++)
        if (r->slot[i].graph && r->slot[i].n_seq == n_seq && r->slot[i].seq_len == seq_len)
            return gpu_graph_launch(r->g, r->slot[i].graph, err);
    if (n_seq == r->eager_n_seq && seq_len == r->eager_len)
        return capture(r, n_seq, seq_len, err);
    r->eager_n_seq = n_seq;
    r->eager_len = seq_len;
    return forward(r, n_seq, seq_len, err);
}

int retr_bert_gpu_collect(struct retr_bert_gpu *r, float *out, struct rag_err *err)
{
    return gpu_download(r->g, out, &r->pooled, r->n_seq * r->c.dim * sizeof(float), err);
}
