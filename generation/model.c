/*
 * generation/model.c - open a GGUF model of architecture llama or qwen2:
 * read the hyper-parameters, check every tensor's presence, type and shape,
 * choose the device, and carve the KV caches and all activation buffers
 * from one allocation (on the GPU: only the small vectors, which are
 * uploaded with the weights by forward_gpu.c). The evaluation entry points
 * (one sequence, a decode batch) check their arguments here and dispatch to
 * forward_cpu.c or forward_gpu.c.
 *
 * RoPE pairing: convert_hf_to_gguf permutes the Q/K rows of llama models so
 * that llama rotates adjacent pairs (x[2i], x[2i+1]); qwen2 is converted
 * without that permutation and rotates halves (x[i], x[i + n_rot/2]) (NEOX).
 * The cos/sin table for every position up to n_ctx is computed here once.
 */
#include "generation/model.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_N_CTX 4096
#define DECODE_PROBE  32
#define MAX_SEQS      4096

/* Positive integer key {arch}.{key}; an absent optional key keeps *ret. */
static int get_dim(const struct gguf *g, const char *arch, const char *key, bool required,
                   size_t *ret, struct rag_err *err)
{
    char full[128];
    uint32_t v;
    int rc;

    snprintf(full, sizeof(full), "%s.%s", arch, key);
    rc = gguf_get_u32(g, full, &v, err);
    if (rc == RAG_ENOTFOUND && !required)
        return 0;
    if (rc == RAG_ENOTFOUND)
        return rag_errf(err, RAG_EFORMAT, "'%s': missing key '%s'", gguf_path(g), full);
    if (rc)
        return rc;
    if (v == 0 || v > (1u << 24))
        return rag_errf(err, RAG_EFORMAT, "'%s': key '%s' has bad value %u", gguf_path(g), full, v);
    *ret = v;
    return 0;
}

/* Optional float key: keeps *ret when absent. */
static int get_float(const struct gguf *g, const char *arch, const char *key, float *ret,
                     struct rag_err *err)
{
    char full[128];
    int rc;

    snprintf(full, sizeof(full), "%s.%s", arch, key);
    rc = gguf_get_f32(g, full, ret, err);
    if (rc == RAG_ENOTFOUND)
        return 0;
    if (!rc && !(*ret > 0.0f && isfinite(*ret)))
        return rag_errf(err, RAG_EFORMAT, "'%s': key '%s' has bad value %g", gguf_path(g), full,
                        (double)*ret);
    return rc;
}

static int read_arch(struct gen_model *m, struct rag_err *err)
{
    const struct gguf *g = m->gguf;
    const char *arch, *name;
    int rc = gguf_get_str(g, "general.architecture", &arch, NULL, err);

    if (rc == RAG_ENOTFOUND)
        return rag_errf(err, RAG_EFORMAT, "'%s': missing key 'general.architecture'", gguf_path(g));
    if (rc)
        return rc;
    if (!strcmp(arch, "llama")) {
        m->info.arch = GEN_ARCH_LLAMA;
    } else if (!strcmp(arch, "qwen2")) {
        m->info.arch = GEN_ARCH_QWEN2;
        m->rope_neox = true;
    } else {
        return rag_errf(err, RAG_EFORMAT, "'%s': unsupported architecture '%.64s'", gguf_path(g),
                        arch);
    }
    m->info.arch_name = arch;
    m->info.name = gguf_get_str(g, "general.name", &name, NULL, NULL) ? "" : name;
    return 0;
}

static int read_hparams(struct gen_model *m, struct rag_err *err)
{
    const struct gguf *g = m->gguf;
    struct gen_model_info *in = &m->info;
    const char *a;
    int rc = read_arch(m, err);

    if (rc)
        return rc;
    a = in->arch_name;
    in->rope_base = 10000.0f;
    in->rms_eps = 1e-5f;
    if ((rc = get_dim(g, a, "context_length", true, &in->n_ctx_train, err)) ||
        (rc = get_dim(g, a, "embedding_length", true, &in->dim, err)) ||
        (rc = get_dim(g, a, "block_count", true, &in->n_layers, err)) ||
        (rc = get_dim(g, a, "feed_forward_length", true, &in->ffn_dim, err)) ||
        (rc = get_dim(g, a, "attention.head_count", true, &in->n_heads, err)) ||
        (rc = get_float(g, a, "rope.freq_base", &in->rope_base, err)) ||
        (rc = get_float(g, a, "attention.layer_norm_rms_epsilon", &in->rms_eps, err)))
        return rc;
    in->n_kv_heads = in->n_heads;
    in->head_dim = in->dim / in->n_heads;
    if ((rc = get_dim(g, a, "attention.head_count_kv", false, &in->n_kv_heads, err)) ||
        (rc = get_dim(g, a, "attention.key_length", false, &in->head_dim, err)))
        return rc;
    m->n_rot = in->head_dim;
    if ((rc = get_dim(g, a, "rope.dimension_count", false, &m->n_rot, err)))
        return rc;
    if (in->n_heads % in->n_kv_heads || m->n_rot > in->head_dim || m->n_rot % 2 || in->head_dim % 2)
        return rag_errf(err, RAG_EFORMAT,
                        "'%s': inconsistent heads (%zu heads, %zu kv heads, head dim %zu, "
                        "rope dim %zu)",
                        gguf_path(g), in->n_heads, in->n_kv_heads, in->head_dim, m->n_rot);
    m->q_dim = in->n_heads * in->head_dim;
    m->kv_dim = in->n_kv_heads * in->head_dim;
    return 0;
}

static int bad_shape(const struct gen_model *m, const struct gguf_tensor *t, size_t n, size_t rows,
                     struct rag_err *err)
{
    return rag_errf(err, RAG_EFORMAT,
                    "'%s': tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%zu, %zu]",
                    gguf_path(m->gguf), t->name, (unsigned long long)t->ne[0],
                    (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                    (unsigned long long)t->ne[3], n, rows);
}

/* Matrix of rows × n elements named name; a missing optional tensor leaves ret->data NULL. */
static int bind_mat(const struct gen_model *m, const char *name, size_t n, size_t rows,
                    bool required, struct quant_mat *ret, struct rag_err *err)
{
    const struct gguf_tensor *t = gguf_find_tensor(m->gguf, name);

    if (!t && !required)
        return 0;
    if (!t)
        return rag_errf(err, RAG_EFORMAT, "'%s': missing tensor '%s'", gguf_path(m->gguf), name);
    if (t->ne[0] != n || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return bad_shape(m, t, n, rows, err);
    ret->type = t->type;
    ret->data = t->data;
    ret->n = n;
    ret->rows = rows;
    ret->row_bytes = gguf_row_size(t->type, n);
    return 0;
}

/* Vector of n floats dequantized into dst; a missing optional one sets *dst = NULL. */
static int load_vec(const struct gen_model *m, const char *name, size_t n, bool required,
                    float **dst, struct rag_err *err)
{
    struct quant_mat v = { 0 };
    int rc = bind_mat(m, name, n, 1, required, &v, err);

    if (rc)
        return rc;
    if (!v.data)
        *dst = NULL;
    else
        quant_dequant_row(v.type, v.data, *dst, n);
    return 0;
}

static int bind_layer(struct gen_model *m, size_t l, struct rag_err *err)
{
    struct model_layer *L = &m->layer[l];
    size_t dim = m->info.dim, ffn = m->info.ffn_dim;
    char name[96];
    int rc = 0;
    struct {
        const char *suffix;
        struct quant_mat *w;
        size_t n, rows;
    } mats[] = {
        { "attn_q", &L->wq, dim, m->q_dim },  { "attn_k", &L->wk, dim, m->kv_dim },
        { "attn_v", &L->wv, dim, m->kv_dim }, { "attn_output", &L->wo, m->q_dim, dim },
        { "ffn_gate", &L->w_gate, dim, ffn }, { "ffn_up", &L->w_up, dim, ffn },
        { "ffn_down", &L->w_down, ffn, dim },
    };

    for (size_t i = 0; !rc && i < sizeof(mats) / sizeof(mats[0]); i++) {
        snprintf(name, sizeof(name), "blk.%zu.%s.weight", l, mats[i].suffix);
        rc = bind_mat(m, name, mats[i].n, mats[i].rows, true, mats[i].w, err);
    }
    return rc;
}

static int load_layer_vecs(struct gen_model *m, size_t l, struct rag_err *err)
{
    struct model_layer *L = &m->layer[l];
    bool bias = m->info.arch == GEN_ARCH_QWEN2;
    char name[96];
    int rc;

#define LAYER_VEC(suffix, dst, n, req) \
 (snprintf(name, sizeof(name), "blk.%zu.%s", l, suffix), load_vec(m, name, n, req, dst, err))
    if ((rc = LAYER_VEC("attn_norm.weight", &L->attn_norm, m->info.dim, true)) ||
        (rc = LAYER_VEC("ffn_norm.weight", &L->ffn_norm, m->info.dim, true)) ||
        (bias && (rc = LAYER_VEC("attn_q.bias", &L->bq, m->q_dim, true))) ||
        (bias && (rc = LAYER_VEC("attn_k.bias", &L->bk, m->kv_dim, true))) ||
        (bias && (rc = LAYER_VEC("attn_v.bias", &L->bv, m->kv_dim, true))))
        return rc;
#undef LAYER_VEC
    return 0;
}

static int bind_tensors(struct gen_model *m, struct rag_err *err)
{
    const struct gguf_tensor *t = gguf_find_tensor(m->gguf, "token_embd.weight");
    int rc;

    if (!t)
        return rag_errf(err, RAG_EFORMAT, "'%s': missing tensor 'token_embd.weight'",
                        gguf_path(m->gguf));
    m->info.n_vocab = t->ne[1];
    rc = bind_mat(m, "token_embd.weight", m->info.dim, m->info.n_vocab, true, &m->tok_embd, err);
    if (!rc)
        rc = bind_mat(m, "output.weight", m->info.dim, m->info.n_vocab, false, &m->output, err);
    if (rc)
        return rc;
    m->info.tied_embeddings = !m->output.data;
    if (!m->output.data)
        m->output = m->tok_embd;
    m->layer = xcalloc(m->info.n_layers, sizeof(*m->layer));
    for (size_t l = 0; l < m->info.n_layers; l++)
        if ((rc = bind_layer(m, l, err)))
            return rc;
    return 0;
}

/* Carves floats from base (count only when base is NULL), 64-byte aligned. */
struct carver {
    float *base;
    size_t used;
};

static float *carve(struct carver *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;

    c->used += (n + 15) / 16 * 16;
    return p;
}

static size_t width_max(const struct gen_model *m)
{
    size_t w = m->info.dim > m->q_dim ? m->info.dim : m->q_dim;
    return w > m->info.ffn_dim ? w : m->info.ffn_dim;
}

/* The small vectors; on the CPU also the KV caches, activations and RoPE table. */
static void layout(struct gen_model *m, struct carver *c, bool gpu)
{
    const struct gen_model_info *in = &m->info;
    struct model_act *a = &m->act;
    size_t ub = m->ub, nt = (size_t)in->n_threads, wmax = width_max(m);
    size_t kv = m->n_seqs * in->n_ctx * m->kv_dim;
    bool bias = in->arch == GEN_ARCH_QWEN2;

    for (size_t l = 0; l < in->n_layers; l++) {
        struct model_layer *L = &m->layer[l];
        L->attn_norm = carve(c, in->dim);
        L->ffn_norm = carve(c, in->dim);
        L->bq = bias ? carve(c, m->q_dim) : NULL;
        L->bk = bias ? carve(c, m->kv_dim) : NULL;
        L->bv = bias ? carve(c, m->kv_dim) : NULL;
        L->k_seqs = gpu ? NULL : carve(c, kv);
        L->v_seqs = gpu ? NULL : carve(c, kv);
    }
    m->output_norm = carve(c, in->dim);
    if (gpu)
        return;
    m->logits_tmp = carve(c, in->n_vocab);
    a->x = carve(c, ub * in->dim);
    a->xn = carve(c, ub * in->dim);
    a->out = carve(c, ub * in->dim);
    a->q = carve(c, ub * m->q_dim);
    a->att = carve(c, ub * m->q_dim);
    a->k = carve(c, ub * m->kv_dim);
    a->v = carve(c, ub * m->kv_dim);
    a->gate = carve(c, ub * in->ffn_dim);
    a->up = carve(c, ub * in->ffn_dim);
    a->scores = carve(c, nt * MODEL_ATT_ROWS * in->n_ctx);
    a->tmp = carve(c, nt * QUANT_TILE_ROWS * wmax);
    a->rope_cos = carve(c, in->n_ctx * m->n_rot / 2);
    a->rope_sin = carve(c, in->n_ctx * m->n_rot / 2);
    a->xsum = carve(c, wmax / QUANT_BLOCK);
}

static void rope_table(struct gen_model *m)
{
    size_t half = m->n_rot / 2;

    for (size_t p = 0; p < m->info.n_ctx; p++) {
        for (size_t i = 0; i < half; i++) {
            double theta = pow((double)m->info.rope_base, -2.0 * (double)i / (double)m->n_rot);
            double angle = (double)p * theta;
            m->act.rope_cos[p * half + i] = (float)cos(angle);
            m->act.rope_sin[p * half + i] = (float)sin(angle);
        }
    }
}

/* GEN_DEVICE_GPU without a device: gpu_open() says why (no CUDA in the build, no device). */
static int no_gpu(const struct gen_model *m, struct rag_err *err)
{
    struct gpu *g = NULL;
    int rc = gpu_open(&g, 0, err);

    gpu_close(g);
    if (rc)
        rag_err_prefix(err, "'%s'", gguf_path(m->gguf));
    return rc;
}

/*
 * AUTO takes the GPU when there is one and it supports the model; GPU
 * insists (the device itself is opened later, by model_gpu_open).
 */
static int choose_device(struct gen_model *m, const struct gen_model_opts *o, bool *gpu,
                         struct rag_err *err)
{
    struct rag_err why = { 0 };

    *gpu = false;
    if (o->device == GEN_DEVICE_CPU)
        return 0;
    if (o->device == GEN_DEVICE_GPU) {
        *gpu = true;
        return gpu_count() > 0 ? model_gpu_supported(m, err) : no_gpu(m, err);
    }
    if (o->device != GEN_DEVICE_AUTO)
        return rag_errf(err, RAG_EINVAL, "'%s': unknown device %d", gguf_path(m->gguf),
                        (int)o->device);
    if (gpu_count() <= 0)
        return 0;
    *gpu = model_gpu_supported(m, &why) == 0;
    if (!*gpu)
        RAG_DEBUG("%s; running on the CPU", why.msg);
    return 0;
}

static int check_opts(struct gen_model *m, const struct gen_model_opts *o, bool gpu,
                      struct rag_err *err)
{
    struct gen_model_info *in = &m->info;
    int max_threads = omp_get_max_threads();
    size_t cap = gpu ? MODEL_GPU_N_CTX : DEFAULT_N_CTX;

    in->n_ctx = o->n_ctx ? o->n_ctx : (in->n_ctx_train < cap ? in->n_ctx_train : cap);
    if (in->n_ctx > in->n_ctx_train)
        return rag_errf(err, RAG_EINVAL, "'%s': context of %zu tokens exceeds the model's %zu",
                        gguf_path(m->gguf), in->n_ctx, in->n_ctx_train);
    if (o->n_threads < 0 || o->n_threads > 1024)
        return rag_errf(err, RAG_EINVAL, "invalid thread count %d", o->n_threads);
    if (o->n_seqs > MAX_SEQS)
        return rag_errf(err, RAG_EINVAL, "invalid sequence count %zu (at most %d)", o->n_seqs,
                        MAX_SEQS);
    in->n_threads = o->n_threads ? o->n_threads : max_threads;
    m->ub = in->n_ctx < MODEL_UBATCH ? in->n_ctx : MODEL_UBATCH;
    m->n_seqs = o->n_seqs ? o->n_seqs : 1;
    in->n_seqs = m->n_seqs;
    m->seq_len = xcalloc(m->n_seqs, sizeof(*m->seq_len));
    return 0;
}

static int load(struct gen_model *m, const struct gen_model_opts *o, struct rag_err *err)
{
    struct carver c = { 0 };
    bool gpu;
    int rc;

    if ((rc = read_hparams(m, err)) || (rc = choose_device(m, o, &gpu, err)) ||
        (rc = check_opts(m, o, gpu, err)) || (rc = bind_tensors(m, err)))
        return rc;
    layout(m, &c, gpu);
    m->mem = xmalloc_array(c.used + 16, sizeof(float));
    c.base = (float *)(((uintptr_t)m->mem + 63) & ~(uintptr_t)63);
    c.used = 0;
    layout(m, &c, gpu);
    for (size_t l = 0; l < m->info.n_layers; l++)
        if ((rc = load_layer_vecs(m, l, err)))
            return rc;
    rc = load_vec(m, "output_norm.weight", m->info.dim, true, &m->output_norm, err);
    if (!rc && gpu && (rc = model_gpu_open(m, err)))
        rag_err_prefix(err, "'%s'", gguf_path(m->gguf));
    if (rc || gpu)
        return rc;
    rope_table(m);
    m->isa = quant_isa_best();
    m->tune.cur = m->info.n_threads;
    return 0;
}

int gen_model_open(struct gen_model **ret, const char *path, const struct gen_model_opts *opts,
                   struct rag_err *err)
{
    struct gen_model_opts def = GEN_MODEL_OPTS_DEFAULT;
    struct gen_model *m = xcalloc(1, sizeof(*m));
    int rc = gguf_open(&m->gguf, path, err);

    if (!rc)
        rc = load(m, opts ? opts : &def, err);
    if (rc) {
        gen_model_close(m);
        return rc;
    }
    RAG_DEBUG("model '%s': %s, %zu layers, dim %zu, n_ctx %zu, %zu sequences, %s", path,
              m->info.arch_name, m->info.n_layers, m->info.dim, m->info.n_ctx, m->n_seqs,
              m->gpu ? "gpu" : quant_isa_name(m->isa));
    *ret = m;
    return 0;
}

void gen_model_close(struct gen_model *m)
{
    if (!m)
        return;
    model_gpu_close(m);
    free(m->seq_len);
    free(m->mem);
    free(m->layer);
    gguf_close(m->gguf);
    free(m);
}

const struct gen_model_info *gen_model_info(const struct gen_model *m)
{
    return &m->info;
}

const struct gguf *gen_model_gguf(const struct gen_model *m)
{
    return m->gguf;
}

bool gen_model_on_gpu(const struct gen_model *m)
{
    return m->gpu != NULL;
}

size_t gen_model_device_bytes(const struct gen_model *m)
{
    return m->gpu ? m->gpu->pool.bytes : 0;
}

size_t gen_model_step_kernels(const struct gen_model *m)
{
    return m->gpu ? m->gpu->step_kernels : 0;
}

size_t gen_seq_len(const struct gen_model *m, size_t seq)
{
    assert(seq < m->n_seqs);
    return m->seq_len[seq];
}

void gen_seq_truncate(struct gen_model *m, size_t seq, size_t n)
{
    assert(seq < m->n_seqs);
    if (n < m->seq_len[seq])
        m->seq_len[seq] = n;
}

size_t gen_kv_len(const struct gen_model *m)
{
    return m->seq_len[0];
}

void gen_kv_reset(struct gen_model *m)
{
    m->seq_len[0] = 0;
}

void gen_kv_truncate(struct gen_model *m, size_t n)
{
    gen_seq_truncate(m, 0, n);
}

/* Point every layer's k_cache and v_cache at sequence seq's part of the caches. */
static void select_seq(struct gen_model *m, size_t seq)
{
    size_t off = seq * m->info.n_ctx * m->kv_dim;

    for (size_t l = 0; l < m->info.n_layers; l++) {
        m->layer[l].k_cache = m->layer[l].k_seqs + off;
        m->layer[l].v_cache = m->layer[l].v_seqs + off;
    }
}

/*
 * One decode step with the thread count chosen by m->tune (model.h). The
 * result does not depend on the thread count: every row and head is computed
 * by one thread in the same order either way.
 */
static void decode_tuned(struct gen_model *m, const int32_t *token, size_t pos, float *logits)
{
    bool probe = ++m->tune.step % DECODE_PROBE == 0;
    int full = m->tune.cur != 1;
    double t;

    if (probe)
        full = !full;
    m->nt = full ? m->info.n_threads : 1;
    t = time_now();
    model_forward(m, token, 1, pos, logits);
    t = time_now() - t;
    m->tune.avg[full] = m->tune.avg[full] > 0 ? 0.75 * m->tune.avg[full] + 0.25 * t : t;
    if (m->tune.avg[0] > 0 && m->tune.avg[1] > 0)
        m->tune.cur = m->tune.avg[0] < m->tune.avg[1] ? 1 : m->info.n_threads;
}

static int check_tokens(const struct gen_model *m, const int32_t *tokens, size_t n,
                        struct rag_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (size_t)tokens[i] >= m->info.n_vocab)
            return rag_errf(err, RAG_EINVAL, "token id %d out of range (vocabulary of %zu)",
                            (int)tokens[i], m->info.n_vocab);
    return 0;
}

static int check_seq(const struct gen_model *m, size_t seq, struct rag_err *err)
{
    if (seq >= m->n_seqs)
        return rag_errf(err, RAG_EINVAL, "sequence %zu out of range (%zu sequences)", seq,
                        m->n_seqs);
    return 0;
}

static void eval_cpu(struct gen_model *m, size_t seq, const int32_t *tokens, size_t n, size_t pos,
                     float *logits)
{
    select_seq(m, seq);
    if (n == 1 && m->info.n_threads > 1) {
        decode_tuned(m, tokens, pos, logits);
        m->seq_len[seq] = pos + 1;
        return;
    }
    m->nt = m->info.n_threads;
    for (size_t i = 0; i < n; i += m->ub) {
        size_t k = n - i < m->ub ? n - i : m->ub;
        model_forward(m, tokens + i, k, pos + i, i + k == n ? logits : NULL);
        m->seq_len[seq] = pos + i + k;
    }
}

int gen_eval_seq(struct gen_model *m, size_t seq, const int32_t *tokens, size_t n, size_t pos,
                 float *logits, struct rag_err *err)
{
    int rc = check_seq(m, seq, err);

    if (rc)
        return rc;
    if (n == 0 || pos > m->seq_len[seq] || n > m->info.n_ctx - pos)
        return rag_errf(err, RAG_EINVAL,
                        "cannot evaluate %zu tokens at position %zu (cache holds %zu of %zu)", n,
                        pos, m->seq_len[seq], m->info.n_ctx);
    if ((rc = check_tokens(m, tokens, n, err)))
        return rc;
    if (!m->gpu) {
        eval_cpu(m, seq, tokens, n, pos, logits);
        return 0;
    }
    if (n > 1)
        return model_gpu_prefill(m, seq, tokens, n, pos, logits, err);
    m->seq_len[seq] = pos;
    return model_gpu_decode(m, &seq, tokens, 1, logits, NULL, err);
}

int gen_eval(struct gen_model *m, const int32_t *tokens, size_t n, size_t pos, float *logits,
             struct rag_err *err)
{
    return gen_eval_seq(m, 0, tokens, n, pos, logits, err);
}

static int check_batch(const struct gen_model *m, const size_t *seqs, const int32_t *tokens,
                       size_t n, struct rag_err *err)
{
    int rc = 0;

    if (n == 0 || n > m->n_seqs)
        return rag_errf(err, RAG_EINVAL, "cannot decode a batch of %zu sequences (model has %zu)",
                        n, m->n_seqs);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = check_seq(m, seqs[i], err);
        for (size_t j = 0; !rc && j < i; j++)
            if (seqs[j] == seqs[i])
                rc = rag_errf(err, RAG_EINVAL, "sequence %zu appears twice in the batch", seqs[i]);
        if (!rc && m->seq_len[seqs[i]] >= m->info.n_ctx)
            rc = rag_errf(err, RAG_EINVAL, "sequence %zu is full (%zu tokens)", seqs[i],
                          m->info.n_ctx);
    }
    return rc ? rc : check_tokens(m, tokens, n, err);
}

/* Lowest index of the largest value; NaN is never chosen; 0 when nothing is above -inf. */
static int32_t argmax_row(const float *x, size_t n)
{
    float best = -INFINITY;
    size_t at = 0;

    for (size_t i = 0; i < n; i++)
        if (x[i] > best) {
            best = x[i];
            at = i;
        }
    return (int32_t)at;
}

int gen_decode_batch(struct gen_model *m, const size_t *seqs, const int32_t *tokens, size_t n,
                     float *logits, int32_t *next, struct rag_err *err)
{
    size_t nv = m->info.n_vocab;
    int rc = check_batch(m, seqs, tokens, n, err);

    if (rc)
        return rc;
    if (m->gpu)
        return model_gpu_decode(m, seqs, tokens, n, logits, next, err);
    for (size_t i = 0; i < n; i++) {
        float *row = logits ? logits + i * nv : m->logits_tmp;
        eval_cpu(m, seqs[i], tokens + i, 1, m->seq_len[seqs[i]], row);
        if (next)
            next[i] = argmax_row(row, nv);
    }
    return 0;
}
