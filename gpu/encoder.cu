/*
 * gpu/encoder.cu - the kernels of a BERT encoder besides its GEMMs:
 * embeddings with LayerNorm, LayerNorm with a residual add, bias + GELU,
 * bidirectional attention over a padded batch, and pooling with L2
 * normalisation. Contracts in gpu.h; arguments checked in gpu/encoder.c.
 *
 * Row kernels (embed, layernorm): one warp per row, 4 rows per 128-thread
 * block. Lane l holds the row's elements l, l + 32, ... (at most
 * GPU_ENC_DIM_MAX / 32 = 32) in registers, so the two-pass statistics
 * (mean, then the sum of squared deviations, as the CPU path computes them)
 * read the row from memory once. Loads are coalesced across the warp. For
 * the usual widths (128, 256, 384, 512, 768, 1024) with 16-byte aligned
 * buffers, layernorm_vec moves 4 elements per lane and access instead.
 *
 * bias + GELU: grid-stride loop; bf16 rows whose width is a multiple of 8
 * move 16 bytes per thread, everything else one element at a time. GELU is
 * the erf form 0.5 x (1 + erf(x / sqrt 2)) with CUDA's accurate erff.
 *
 * Attention (FlashAttention-2 scheme, Dao 2023, on mma.sync tensor cores):
 * grid (ceil(seq_len / 64), n_heads, n_seqs), 4 warps, each warp owning 16
 * query rows whose Q fragments stay in registers. The block walks the keys
 * of its sequence in tiles of 64, staging K and V in shared memory (rows
 * padded by 16 bytes, so ldmatrix's 8 row reads hit distinct banks; keys at
 * or past the length staged as zeros), double-buffered: cp.async copies
 * tile k + 1 while the warps compute on tile k. Per tile: S = Q K^T with
 * m16n8k16 bf16 MMAs (fp32 accumulators), keys past the length set to
 * -inf (last tile only), online softmax in log2 units with scale * log2(e)
 * applied in the exponent's FFMA (m' = max(m, scale rowmax), p = 2^(scale s
 * - m'), l' = l 2^(m - m') + sum p, O' = O 2^(m - m') + P V), and P V
 * with P rounded to bf16 straight from the S accumulators (their layout is
 * the A operand's) and V read by ldmatrix.trans. Key groups of 16 wholly
 * past the length, and warps whose rows are all padding, skip their MMAs.
 * Padding rows (t >= len) are written as zeros.
 *
 * Pool: one block of 128 threads per sequence; thread j sums column j over
 * the sequence's tokens (coalesced across threads, four independent sums),
 * then a block reduction gives the norm.
 */
#include "gpu/mma.cuh"

#define ROW_WARPS  4
#define ROW_VALS   (GPU_ENC_DIM_MAX / WARP)
#define GELU_BLOCK 256
#define ATT_WARPS  4
#define ATT_ROWS   (16 * ATT_WARPS) /* queries per block */
#define ATT_KEYS   MMA_TILE_KEYS
#define POOL_BLOCK 128

typedef __nv_bfloat16 bf16;

static __device__ inline float bf16_lo(uint32_t u)
{
    return __uint_as_float(u << 16);
}

static __device__ inline float bf16_hi(uint32_t u)
{
    return __uint_as_float(u & 0xffff0000u);
}

/* Four elements at p as floats, and back: 16 bytes of fp32 or 8 of bf16. */
static __device__ inline void load4(const float *p, float (&v)[4])
{
    float4 a = *(const float4 *)p;

    v[0] = a.x;
    v[1] = a.y;
    v[2] = a.z;
    v[3] = a.w;
}

static __device__ inline void load4(const bf16 *p, float (&v)[4])
{
    uint2 u = *(const uint2 *)p;

    v[0] = bf16_lo(u.x);
    v[1] = bf16_hi(u.x);
    v[2] = bf16_lo(u.y);
    v[3] = bf16_hi(u.y);
}

static __device__ inline void store4(float *p, const float (&v)[4])
{
    *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
}

static __device__ inline void store4(bf16 *p, const float (&v)[4])
{
    *(uint2 *)p = make_uint2(tc_ops<bf16>::pack(v[0], v[1]), tc_ops<bf16>::pack(v[2], v[3]));
}

/* ---- LayerNorm rows ---- */

/*
 * LayerNorm of the row whose elements lane + 32 i are v[i] (zero past dim),
 * written to h (fp32) and out.
 */
template <typename O>
static __device__ void norm_row(const float (&v)[ROW_VALS], int dim, float eps,
                                const float *__restrict__ gamma, const float *__restrict__ beta,
                                float *__restrict__ h, O *__restrict__ out)
{
    int lane = (int)(threadIdx.x % WARP);
    float sum = 0.0f, var = 0.0f;

#pragma unroll
    for (int i = 0; i < ROW_VALS; i++)
        sum += v[i];
    float mean = warp_sum(sum) / (float)dim;
#pragma unroll
    for (int i = 0; i < ROW_VALS; i++) {
        float dv = lane + i * WARP < dim ? v[i] - mean : 0.0f;

        var = fmaf(dv, dv, var);
    }
    float rstd = 1.0f / sqrtf(warp_sum(var) / (float)dim + eps);
#pragma unroll
    for (int i = 0; i < ROW_VALS; i++) {
        int j = lane + i * WARP;

        if (j < dim) {
            float y = (v[i] - mean) * rstd * gamma[j] + beta[j];

            h[j] = y;
            store(&out[j], y);
        }
    }
}

template <typename O>
static __global__ void embed_kernel(struct gpu_bert_embeddings e, const int32_t *__restrict__ ids,
                                    size_t n_rows, size_t seq_len, float *__restrict__ h,
                                    O *__restrict__ out)
{
    size_t row = (size_t)blockIdx.x * ROW_WARPS + threadIdx.x / WARP;
    int lane = (int)(threadIdx.x % WARP), dim = (int)e.dim;
    float v[ROW_VALS];

    if (row >= n_rows)
        return;
    int32_t id = ids[row];
    bool ok = id >= 0 && (size_t)id < e.n_vocab;
    const float *tok = (const float *)e.tok.ptr + (size_t)(ok ? id : 0) * e.dim;
    const float *pos = (const float *)e.pos.ptr + (row % seq_len) * e.dim;
    const float *type = (const float *)e.type.ptr;
#pragma unroll
    for (int i = 0; i < ROW_VALS; i++) {
        int j = lane + i * WARP;

        v[i] = j >= dim ? 0.0f : ok ? tok[j] + pos[j] + type[j] : NAN;
    }
    norm_row(v, dim, e.eps, (const float *)e.gamma.ptr, (const float *)e.beta.ptr, h + row * e.dim,
             out + row * e.dim);
}

template <typename T, typename O>
static __global__ void layernorm_kernel(float *__restrict__ h, const T *__restrict__ t,
                                        const float *__restrict__ gamma,
                                        const float *__restrict__ beta, O *__restrict__ out,
                                        size_t n_rows, int dim, float eps)
{
    size_t row = (size_t)blockIdx.x * ROW_WARPS + threadIdx.x / WARP;
    int lane = (int)(threadIdx.x % WARP);
    float v[ROW_VALS];

    if (row >= n_rows)
        return;
    float *hr = h + row * dim;
    const T *tr = t ? t + row * dim : NULL;
#pragma unroll
    for (int i = 0; i < ROW_VALS; i++) {
        int j = lane + i * WARP;

        v[i] = j < dim ? hr[j] + (tr ? to_float(tr[j]) : 0.0f) : 0.0f;
    }
    norm_row(v, dim, eps, gamma, beta, hr, out + row * dim);
}

/* Mean and 1 / sqrt(variance + eps) of the warp's row held in v, in two passes. */
template <int N4>
static __device__ void stats4(const float (&v)[N4][4], float eps, float *mean, float *rstd)
{
    float sum = 0.0f, var = 0.0f;

#pragma unroll
    for (int i = 0; i < N4; i++)
#pragma unroll
        for (int k = 0; k < 4; k++)
            sum += v[i][k];
    *mean = warp_sum(sum) / (float)(N4 * 128);
#pragma unroll
    for (int i = 0; i < N4; i++)
#pragma unroll
        for (int k = 0; k < 4; k++)
            var = fmaf(v[i][k] - *mean, v[i][k] - *mean, var);
    *rstd = 1.0f / sqrtf(warp_sum(var) / (float)(N4 * 128) + eps);
}

/*
 * layernorm_kernel for rows of N4 * 128 elements in 16-byte aligned buffers:
 * lane l holds elements 4 (l + 32 i) .. 4 (l + 32 i) + 3 for i < N4, moved
 * as one 16-byte (fp32) or 8-byte (bf16) access each, with no idle lanes.
 */
template <int N4, typename T, typename O>
static __global__ void
layernorm_vec(float *__restrict__ h, const T *__restrict__ t, const float *__restrict__ gamma,
              const float *__restrict__ beta, O *__restrict__ out, size_t n_rows, float eps)
{
    const int dim = N4 * 128, lane = (int)(threadIdx.x % WARP);
    size_t row = (size_t)blockIdx.x * ROW_WARPS + threadIdx.x / WARP;
    float v[N4][4], mean, rstd;

    if (row >= n_rows)
        return;
    float *hr = h + row * dim;
#pragma unroll
    for (int i = 0; i < N4; i++) {
        float tv[4] = { 0.0f, 0.0f, 0.0f, 0.0f };

        load4(hr + 4 * (lane + WARP * i), v[i]);
        if (t)
            load4(t + row * dim + 4 * (lane + WARP * i), tv);
#pragma unroll
        for (int k = 0; k < 4; k++)
            v[i][k] += tv[k];
    }
    stats4<N4>(v, eps, &mean, &rstd);
#pragma unroll
    for (int i = 0; i < N4; i++) {
        int j = 4 * (lane + WARP * i);
        float g4[4], b4[4];

        load4(gamma + j, g4);
        load4(beta + j, b4);
#pragma unroll
        for (int k = 0; k < 4; k++)
            v[i][k] = (v[i][k] - mean) * rstd * g4[k] + b4[k];
        store4(hr + j, v[i]);
        store4(out + row * dim + j, v[i]);
    }
}

static unsigned row_blocks(size_t n_rows)
{
    return (unsigned)CEIL_DIV(n_rows, (size_t)ROW_WARPS);
}

int gpu_cuda_bert_embed(struct gpu *g, const struct gpu_bert_embeddings *emb, const int32_t *ids,
                        size_t n_seqs, size_t seq_len, float *h, void *out, enum gpu_dtype out_type,
                        struct rag_err *err)
{
    size_t n_rows = n_seqs * seq_len;

    if (n_rows == 0)
        return 0;
    if (use_device(g, "bert_embed", err))
        return RAG_EGPU;
    if (out_type == GPU_BF16)
        embed_kernel<<<row_blocks(n_rows), ROW_WARPS * WARP, 0, stream_of(g)>>>(
            *emb, ids, n_rows, seq_len, h, (bf16 *)out);
    else
        embed_kernel<<<row_blocks(n_rows), ROW_WARPS * WARP, 0, stream_of(g)>>>(
            *emb, ids, n_rows, seq_len, h, (float *)out);
    return launched(g, "bert_embed", err);
}

template <int N4, typename T>
static void launch_vec(struct gpu *g, float *h, const void *t, const float *gamma,
                       const float *beta, void *out, enum gpu_dtype out_type, size_t n_rows,
                       float eps)
{
    unsigned grid = row_blocks(n_rows);

    if (out_type == GPU_BF16)
        layernorm_vec<N4, T, bf16><<<grid, ROW_WARPS * WARP, 0, stream_of(g)>>>(
            h, (const T *)t, gamma, beta, (bf16 *)out, n_rows, eps);
    else
        layernorm_vec<N4, T, float><<<grid, ROW_WARPS * WARP, 0, stream_of(g)>>>(
            h, (const T *)t, gamma, beta, (float *)out, n_rows, eps);
}

template <typename T>
static void launch_layernorm(struct gpu *g, float *h, const void *t, const float *gamma,
                             const float *beta, void *out, enum gpu_dtype out_type, size_t n_rows,
                             int dim, float eps)
{
    unsigned grid = row_blocks(n_rows);
    bool aligned =
        ((uintptr_t)h | (uintptr_t)t | (uintptr_t)gamma | (uintptr_t)beta | (uintptr_t)out) % 16 ==
        0;

    if (aligned && dim == 384)
        launch_vec<3, T>(g, h, t, gamma, beta, out, out_type, n_rows, eps);
    else if (aligned && dim == 768)
        launch_vec<6, T>(g, h, t, gamma, beta, out, out_type, n_rows, eps);
    else if (aligned && dim == 1024)
        launch_vec<8, T>(g, h, t, gamma, beta, out, out_type, n_rows, eps);
    else if (aligned && dim == 512)
        launch_vec<4, T>(g, h, t, gamma, beta, out, out_type, n_rows, eps);
    else if (aligned && dim == 256)
        launch_vec<2, T>(g, h, t, gamma, beta, out, out_type, n_rows, eps);
    else if (aligned && dim == 128)
        launch_vec<1, T>(g, h, t, gamma, beta, out, out_type, n_rows, eps);
    else if (out_type == GPU_BF16)
        layernorm_kernel<T, bf16><<<grid, ROW_WARPS * WARP, 0, stream_of(g)>>>(
            h, (const T *)t, gamma, beta, (bf16 *)out, n_rows, dim, eps);
    else
        layernorm_kernel<T, float><<<grid, ROW_WARPS * WARP, 0, stream_of(g)>>>(
            h, (const T *)t, gamma, beta, (float *)out, n_rows, dim, eps);
}

int gpu_cuda_layernorm(struct gpu *g, float *h, const void *t, enum gpu_dtype t_type,
                       const float *gamma, const float *beta, void *out, enum gpu_dtype out_type,
                       size_t n_rows, size_t dim, float eps, struct rag_err *err)
{
    if (n_rows == 0)
        return 0;
    if (use_device(g, "layernorm", err))
        return RAG_EGPU;
    if (t && t_type == GPU_BF16)
        launch_layernorm<bf16>(g, h, t, gamma, beta, out, out_type, n_rows, (int)dim, eps);
    else
        launch_layernorm<float>(g, h, t, gamma, beta, out, out_type, n_rows, (int)dim, eps);
    return launched(g, "layernorm", err);
}

/* ---- bias + GELU ---- */

static __device__ inline float gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

static __device__ inline uint32_t gelu_pair(uint32_t u, const float *b)
{
    return tc_ops<bf16>::pack(gelu_erf(bf16_lo(u) + b[0]), gelu_erf(bf16_hi(u) + b[1]));
}

/* bf16 rows of n % 8 == 0 elements, 8 at a time. */
static __global__ void bias_gelu_vec8(uint4 *__restrict__ x, const float *__restrict__ bias,
                                      size_t n8, size_t n)
{
    for (size_t e = thread_index(); e < n8; e += thread_count()) {
        uint4 u = x[e];
        const float *b = bias + e * 8 % n;

        u.x = gelu_pair(u.x, b);
        u.y = gelu_pair(u.y, b + 2);
        u.z = gelu_pair(u.z, b + 4);
        u.w = gelu_pair(u.w, b + 6);
        x[e] = u;
    }
}

template <typename T>
static __global__ void bias_gelu_scalar(T *__restrict__ x, const float *__restrict__ bias,
                                        size_t total, size_t n)
{
    for (size_t e = thread_index(); e < total; e += thread_count())
        store(&x[e], gelu_erf(to_float(x[e]) + bias[e % n]));
}

int gpu_cuda_bias_gelu(struct gpu *g, void *x, enum gpu_dtype type, const float *bias,
                       size_t n_rows, size_t n, struct rag_err *err)
{
    size_t total = n_rows * n, cap = (size_t)(g->info.n_sm > 0 ? g->info.n_sm : 1) * 16;
    bool vec = type == GPU_BF16 && n % 8 == 0 && (uintptr_t)x % 16 == 0;
    size_t blocks = CEIL_DIV(vec ? total / 8 : total, (size_t)GELU_BLOCK);
    cudaStream_t s = stream_of(g);

    if (total == 0)
        return 0;
    if (use_device(g, "bias_gelu", err))
        return RAG_EGPU;
    blocks = blocks < cap ? blocks : cap;
    if (vec)
        bias_gelu_vec8<<<(unsigned)blocks, GELU_BLOCK, 0, s>>>((uint4 *)x, bias, total / 8, n);
    else if (type == GPU_BF16)
        bias_gelu_scalar<<<(unsigned)blocks, GELU_BLOCK, 0, s>>>((bf16 *)x, bias, total, n);
    else
        bias_gelu_scalar<<<(unsigned)blocks, GELU_BLOCK, 0, s>>>((float *)x, bias, total, n);
    return launched(g, "bias_gelu", err);
}

/* ---- attention ---- */

struct attn_args {
    const bf16 *qkv;
    const int32_t *lens;
    bf16 *out;
    size_t seq_len, n_heads;
    float scale_log2; /* scale * log2(e) */
};

/* Fill rows [q0, q0 + ATT_ROWS) of the block's sequence and head with v. */
template <int HD>
static __device__ void fill_rows(const struct attn_args &a, bf16 *out, size_t q0, float v)
{
    size_t d = a.n_heads * HD;

    for (size_t i = threadIdx.x; i < (size_t)ATT_ROWS * HD; i += blockDim.x) {
        size_t r = q0 + i / HD;

        if (r < a.seq_len)
            out[r * d + i % HD] = __float2bfloat16_rn(v);
    }
}

/* Q fragments of rows r0 and r0 + 8 (zero at or past len), and empty accumulators. */
template <int HD>
static __device__ void load_q(struct mma_rows<HD> &st, const bf16 *q, size_t stride, int r0,
                              int len)
{
    int tq = (int)(threadIdx.x % 4);
    const bf16 *p0 = q + (size_t)r0 * stride + tq * 2, *p1 = p0 + 8 * stride;

#pragma unroll
    for (int c = 0; c < HD / 16; c++) {
        st.q[c][0] = r0 < len ? *(const uint32_t *)(p0 + c * 16) : 0u;
        st.q[c][1] = r0 + 8 < len ? *(const uint32_t *)(p1 + c * 16) : 0u;
        st.q[c][2] = r0 < len ? *(const uint32_t *)(p0 + c * 16 + 8) : 0u;
        st.q[c][3] = r0 + 8 < len ? *(const uint32_t *)(p1 + c * 16 + 8) : 0u;
    }
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
        st.o[n][0] = st.o[n][1] = st.o[n][2] = st.o[n][3] = 0.0f;
    st.m[0] = st.m[1] = -INFINITY;
    st.l[0] = st.l[1] = 0.0f;
}

/*
 * Start copying keys [k0, k0 + ATT_KEYS) of K and V to shared memory (zeros
 * at or past len); they are there after cp_async_wait and a barrier.
 */
template <int HD>
static __device__ void stage_kv(bf16 *ks, bf16 *vs, const bf16 *k, const bf16 *v, size_t stride,
                                int k0, int len)
{
    const int chunks = HD / 8, ld = HD + 8;

    for (int i = (int)threadIdx.x; i < 2 * ATT_KEYS * chunks; i += (int)blockDim.x) {
        int which = i / (ATT_KEYS * chunks), r = i % (ATT_KEYS * chunks) / chunks;
        int col = i % chunks * 8;
        bool in = k0 + r < len;

        cp_async16((which ? vs : ks) + r * ld + col,
                   (which ? v : k) + (size_t)(in ? k0 + r : 0) * stride + col, in);
    }
}

/*
 * S = Q K^T for the tile's keys (groups of 16 past len skipped), keys past
 * len set to -inf (only the last tile has any); the softmax scales it.
 */
template <int HD>
static __device__ void tile_scores(const struct mma_rows<HD> &st, const bf16 *ks, int k0, int len,
                                   float (&s)[ATT_KEYS / 8][4])
{
    int tq = (int)(threadIdx.x % 4);

    mma_tile_scores<HD, bf16>(st, ks, CEIL_DIV(len - k0, 16), s);
    if (k0 + ATT_KEYS <= len)
        return;
#pragma unroll
    for (int n = 0; n < ATT_KEYS / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            if (k0 + n * 8 + tq * 2 + (e & 1) >= len)
                s[n][e] = -INFINITY;
}

/* Normalise and store rows r0 and r0 + 8 (zeros at or past len, nothing past seq_len). */
template <int HD>
static __device__ void store_rows(struct mma_rows<HD> &st, bf16 *out, size_t d, int r0, int len,
                                  int seq_len)
{
    int tq = (int)(threadIdx.x % 4);

    mma_rows_sum(st);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = r0 + 8 * r;
        float inv = row < len ? 1.0f / st.l[r] : 0.0f;

        if (row >= seq_len)
            continue;
#pragma unroll
        for (int n = 0; n < HD / 8; n++)
            *(uint32_t *)(out + (size_t)row * d + n * 8 + tq * 2) =
                tc_ops<bf16>::pack(st.o[n][2 * r] * inv, st.o[n][2 * r + 1] * inv);
    }
}

template <int HD>
static __global__ void __launch_bounds__(ATT_WARPS *WARP) attn_kernel(struct attn_args a)
{
    __shared__ __align__(16) bf16 ks[2][ATT_KEYS * (HD + 8)], vs[2][ATT_KEYS * (HD + 8)];
    size_t s = blockIdx.z, h = blockIdx.y, q0 = (size_t)blockIdx.x * ATT_ROWS;
    size_t d = a.n_heads * HD, stride = 3 * d;
    const bf16 *q = a.qkv + s * a.seq_len * stride + h * HD;
    bf16 *out = a.out + s * a.seq_len * d + h * HD;
    int len = a.lens[s], warp = (int)(threadIdx.x / WARP);
    int r0 = (int)q0 + warp * 16 + (int)(threadIdx.x % WARP) / 4;
    struct mma_rows<HD> st;

    if (len < 1 || (size_t)len > a.seq_len || q0 >= (size_t)len) {
        fill_rows<HD>(a, out, q0, len < 1 || (size_t)len > a.seq_len ? NAN : 0.0f);
        return;
    }
    bool active = (int)q0 + warp * 16 < len;
    int n_tiles = (len + ATT_KEYS - 1) / ATT_KEYS;
    stage_kv<HD>(ks[0], vs[0], q + d, q + 2 * d, stride, 0, len);
    cp_async_commit();
    load_q<HD>(st, q, stride, r0, len);
    for (int kt = 0; kt < n_tiles; kt++) {
        float sc[ATT_KEYS / 8][4];
        int k0 = kt * ATT_KEYS, b = kt & 1;

        if (kt + 1 < n_tiles) /* into the buffer the previous iteration has finished with */
            stage_kv<HD>(ks[b ^ 1], vs[b ^ 1], q + d, q + 2 * d, stride, k0 + ATT_KEYS, len);
        cp_async_commit();
        cp_async_wait_one(); /* tile kt has landed */
        __syncthreads();
        if (active) {
            tile_scores<HD>(st, ks[b], k0, len, sc);
            mma_tile_softmax<HD>(st, sc, a.scale_log2);
            mma_tile_pv<HD, bf16>(st, sc, vs[b], CEIL_DIV(len - k0, 16));
        }
        __syncthreads(); /* buffer b is free for tile kt + 2 */
    }
    store_rows<HD>(st, out, d, r0, len, (int)a.seq_len);
}

int gpu_cuda_attn_encoder(struct gpu *g, const void *qkv, const int32_t *lens, size_t n_seqs,
                          size_t seq_len, size_t n_heads, size_t head_dim, float scale, void *out,
                          struct rag_err *err)
{
    struct attn_args a = { (const bf16 *)qkv, lens,    (bf16 *)out,
                           seq_len,           n_heads, scale * 1.4426950408889634f };
    dim3 grid((unsigned)CEIL_DIV(seq_len, (size_t)ATT_ROWS), (unsigned)n_heads, (unsigned)n_seqs);

    if (n_seqs == 0 || seq_len == 0)
        return 0;
    if (use_device(g, "attn_encoder", err))
        return RAG_EGPU;
    if (head_dim == 32)
        attn_kernel<32><<<grid, ATT_WARPS * WARP, 0, stream_of(g)>>>(a);
    else
        attn_kernel<64><<<grid, ATT_WARPS * WARP, 0, stream_of(g)>>>(a);
    return launched(g, "attn_encoder", err);
}

/* ---- pooling ---- */

static __global__ void pool_kernel(const float *__restrict__ h, const int32_t *__restrict__ lens,
                                   size_t seq_len, size_t dim, bool cls, float *__restrict__ out)
{
    __shared__ float red[WARP];
    int32_t len = lens[blockIdx.x];
    bool ok = len >= 1 && (size_t)len <= seq_len;
    size_t n = !ok ? 0 : cls ? 1 : (size_t)len;
    const float *base = h + (size_t)blockIdx.x * seq_len * dim;
    float *o = out + (size_t)blockIdx.x * dim, ss = 0.0f;

    for (size_t j = threadIdx.x; j < dim; j += blockDim.x) {
        float acc[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
        size_t t = 0;

        for (; t + 4 <= n; t += 4)
#pragma unroll
            for (int u = 0; u < 4; u++)
                acc[u] += base[(t + u) * dim + j];
        for (; t < n; t++)
            acc[0] += base[t * dim + j];
        float v = ((acc[0] + acc[1]) + (acc[2] + acc[3])) / (float)(n ? n : 1);
        o[j] = v;
        ss = fmaf(v, v, ss);
    }
    ss = block_reduce(ss, red, false);
    float inv = 1.0f / fmaxf(sqrtf(ss), 1e-12f);
    for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
        o[j] = ok ? o[j] * inv : NAN;
}

int gpu_cuda_bert_pool(struct gpu *g, const float *h, const int32_t *lens, size_t n_seqs,
                       size_t seq_len, size_t dim, enum gpu_pooling pooling, float *out,
                       struct rag_err *err)
{
    if (n_seqs == 0 || dim == 0)
        return 0;
    if (use_device(g, "bert_pool", err))
        return RAG_EGPU;
    pool_kernel<<<(unsigned)n_seqs, POOL_BLOCK, 0, stream_of(g)>>>(h, lens, seq_len, dim,
                                                                   pooling == GPU_POOL_CLS, out);
    return launched(g, "bert_pool", err);
}
