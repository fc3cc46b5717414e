/*
 * gpu/attn_decode.cu - decode attention over the paged KV cache, split over
 * the keys (flash-decoding), for a batch of sequences of different lengths.
 *
 * Math, per sequence s (length L = lens[s]) and query head h, with kv head
 * c = h / G (G = n_heads / n_kv_heads, grouped-query attention):
 *   out[s][h] = sum_{t<L} exp(x_t - M) V_t / sum_{t<L} exp(x_t - M),
 *   x_t = scale * q[s][h] . K_t,  M = max_t x_t
 * with K_t, V_t row t of kv head c in the cache (gpu.h: block table row s,
 * physical block table[t / 16], offset t % 16).
 *
 * Pass 1 (decode_split): grid (n_splits, n_kv_heads, n_seqs), 128 threads.
 *   A block takes tokens [sp * split, min(L, (sp + 1) * split)) of one kv
 *   head and all G query heads that share it, so each K and V row is read
 *   from memory once for the group. Shared memory: the G scaled query rows,
 *   a G x split score table and the split's physical block ids. Scores: one
 *   warp per token, each lane holding head_dim / 32 elements of K (lanes
 *   read consecutive elements), a warp-shuffle sum per query head. Softmax:
 *   one warp per query head finds the local max m and writes p = exp(x - m)
 *   over the scores and their sum l. Output: for each query head, each warp
 *   sums p[g][t] V_t over its tokens, lane l holding columns [l E, l E + E)
 *   (E = head_dim / 32, one 4- to 16-byte load per token), and the four
 *   warps' sums are added in shared memory. K and V rows are read with
 *   vector loads, so the cache must be 16-byte aligned (launch.c checks).
 *   The cache and out may be fp32, bf16 or fp16 (fp16 out saturates at
 *   +-65504, cuda_util.cuh); every sum is fp32.
 *   Version 1 read V one element per thread in a 512-step serial loop per
 *   thread: 132 GB/s at 8B shape, batch 1, 8192 tokens (bench/gpu).
 *   Partials go to work: acc (n_seqs, n_heads, n_splits, head_dim), then m
 *   and l (n_seqs, n_heads, n_splits).
 * Pass 2 (decode_combine): grid (n_heads, n_seqs), head_dim threads:
 *   M = max m_i, out = sum_i acc_i e^(m_i - M) / sum_i l_i e^(m_i - M)
 *   over the ceil(L / split) splits that had tokens (the log-sum-exp merge
 *   of llama.cpp's flash_attn_combine_results and vLLM's v2 kernel).
 *
 * Split size: a multiple of 16 chosen by gpu/launch.c from the shapes
 * alone (never from lens), so that about 2 blocks per SM run when every
 * sequence is as long as the table allows, at most 512 and at most
 * 6144 / G tokens (the score table stays under 24 KiB). Splits past a
 * sequence's length return at once; one captured graph therefore serves
 * every step of a decode loop.
 *
 * Bad device-side values: a length outside [0, max_blocks * 16] gives NaN
 * for that sequence; a block id outside the cache gives NaN scores and
 * values, hence a NaN output; a length of 0 gives zeros.
 */
#include "gpu/cuda_util.cuh"

#define DEC_THREADS 128

/* Whether lens value len is one the table can hold. */
static __device__ inline bool len_ok(int32_t len, size_t max_blocks)
{
    return len >= 0 && (size_t)len <= max_blocks * GPU_KV_BLOCK;
}

/* The query rows of the group (scaled), and the split's physical blocks (-1 = bad). */
template <int HD>
static __device__ void load_split(const struct gpu_cuda_attn &a, size_t seq, size_t kvh, size_t t0,
                                  size_t nt, size_t group, float *q_s, int *blk_s)
{
    for (size_t i = threadIdx.x; i < group * HD; i += blockDim.x)
        q_s[i] = a.q[(seq * a.n_heads + kvh * group + i / HD) * HD + i % HD] * a.scale;
    for (size_t b = threadIdx.x; b < CEIL_DIV(nt, (size_t)GPU_KV_BLOCK); b += blockDim.x) {
        int32_t pb = a.block_tables[seq * a.max_blocks + t0 / GPU_KV_BLOCK + b];

        blk_s[b] = pb >= 0 && (size_t)pb < a.n_blocks ? pb : -1;
    }
}

/* Element offset of token t's row of kv head kvh in a cache, given its block. */
static __device__ inline size_t row_at(const struct gpu_cuda_attn &a, int blk, size_t kvh, size_t t,
                                       int hd)
{
    return (((size_t)blk * a.n_kv_heads + kvh) * GPU_KV_BLOCK + t % GPU_KV_BLOCK) * hd;
}

/* E consecutive floats at p (aligned to E floats) in one load. */
template <int E> static __device__ inline void load_vec(const float *p, float *out)
{
    if constexpr (E == 4) {
        float4 v = *(const float4 *)p;
        out[0] = v.x;
        out[1] = v.y;
        out[2] = v.z;
        out[3] = v.w;
    } else if constexpr (E == 2) {
        float2 v = *(const float2 *)p;
        out[0] = v.x;
        out[1] = v.y;
    } else {
        out[0] = p[0];
    }
}

/* E consecutive bf16 at p (aligned to E elements) in one load, as floats. */
template <int E> static __device__ inline void load_vec(const __nv_bfloat16 *p, float *out)
{
    if constexpr (E == 4) {
        uint2 u = *(const uint2 *)p;
        out[0] = __uint_as_float(u.x << 16);
        out[1] = __uint_as_float(u.x & 0xffff0000u);
        out[2] = __uint_as_float(u.y << 16);
        out[3] = __uint_as_float(u.y & 0xffff0000u);
    } else if constexpr (E == 2) {
        uint32_t u = *(const uint32_t *)p;
        out[0] = __uint_as_float(u << 16);
        out[1] = __uint_as_float(u & 0xffff0000u);
    } else {
        out[0] = to_float(p[0]);
    }
}

/* fp16 bits h as a float. */
static __device__ inline float half_bits(unsigned h)
{
    return __half2float(__ushort_as_half((unsigned short)h));
}

/* E consecutive fp16 at p (aligned to E elements) in one load, as floats. */
template <int E> static __device__ inline void load_vec(const __half *p, float *out)
{
    if constexpr (E == 4) {
        uint2 u = *(const uint2 *)p;
        out[0] = half_bits(u.x & 0xffffu);
        out[1] = half_bits(u.x >> 16);
        out[2] = half_bits(u.y & 0xffffu);
        out[3] = half_bits(u.y >> 16);
    } else if constexpr (E == 2) {
        uint32_t u = *(const uint32_t *)p;
        out[0] = half_bits(u & 0xffffu);
        out[1] = half_bits(u >> 16);
    } else {
        out[0] = to_float(p[0]);
    }
}

/* Lane's E = head_dim / 32 consecutive elements of token t's row, NaN for a bad block. */
template <int HD, typename KV>
static __device__ inline void load_row(const struct gpu_cuda_attn &a, const KV *cache, int blk,
                                       size_t kvh, size_t t, float *out)
{
    constexpr int E = HD / WARP;

    if (blk < 0) {
        for (int e = 0; e < E; e++)
            out[e] = NAN;
        return;
    }
    load_vec<E>(cache + row_at(a, blk, kvh, t, HD) + (threadIdx.x % WARP) * E, out);
}

/*
 * s_s[g][t] = q_g . K_t for the split's tokens: one warp per token, lane l
 * holding elements [l E, l E + E) of the row (one 4- to 16-byte load).
 */
template <int HD, typename KV>
static __device__ void split_scores(const struct gpu_cuda_attn &a, size_t kvh, size_t nt,
                                    size_t group, size_t split, const float *q_s, const int *blk_s,
                                    float *s_s)
{
    constexpr int E = HD / WARP;
    unsigned lane = threadIdx.x % WARP;

#pragma unroll 2
    for (size_t t = threadIdx.x / WARP; t < nt; t += blockDim.x / WARP) {
        float k[E], q[E];

        load_row<HD, KV>(a, (const KV *)a.k_cache, blk_s[t / GPU_KV_BLOCK], kvh, t, k);
        for (size_t g = 0; g < group; g++) {
            float dot = 0.0f;

            load_vec<E>(q_s + g * HD + lane * E, q);
            for (int e = 0; e < E; e++)
                dot = fmaf(q[e], k[e], dot);
            dot = warp_sum(dot);
            if (lane == 0)
                s_s[g * split + t] = dot;
        }
    }
}

/*
 * work acc of each query head g: sum_t p[g][t] V_t. Each warp sums its
 * tokens (t = warp, warp + 4, ...) with one vector load per token and lane,
 * then the warps' sums meet in red_s (n_warps x head_dim floats).
 */
template <int HD, typename KV>
static __device__ void split_values(const struct gpu_cuda_attn &a, size_t kvh, size_t t0, size_t nt,
                                    size_t group, size_t split, const float *s_s, const int *blk_s,
                                    float *red_s, float *acc_out, size_t stride)
{
    constexpr int E = HD / WARP;
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, n_warps = blockDim.x / WARP;

    for (size_t g = 0; g < group; g++) {
        float acc[E] = { 0 };

#pragma unroll 4
        for (size_t t = warp; t < nt; t += n_warps) {
            float v[E], p = s_s[g * split + t];

            load_row<HD, KV>(a, (const KV *)a.v_cache, blk_s[t / GPU_KV_BLOCK], kvh, t0 + t, v);
            for (int e = 0; e < E; e++)
                acc[e] = fmaf(p, v[e], acc[e]);
        }
        for (int e = 0; e < E; e++)
            red_s[warp * HD + lane * E + e] = acc[e];
        __syncthreads();
        for (size_t d = threadIdx.x; d < HD; d += blockDim.x) {
            float sum = 0.0f;

            for (unsigned w = 0; w < n_warps; w++)
                sum += red_s[w * HD + d];
            acc_out[g * stride + d] = sum;
        }
        __syncthreads();
    }
}

template <int HD, typename KV>
static __global__ void decode_split(struct gpu_cuda_attn a, size_t split, size_t n_splits)
{
    extern __shared__ float smem[];
    size_t group = a.n_heads / a.n_kv_heads, seq = blockIdx.z, kvh = blockIdx.y;
    size_t t0 = blockIdx.x * split;
    int32_t len = a.lens[seq];
    float *q_s = smem, *s_s = smem + group * HD, *red_s = s_s + group * split;
    int *blk_s = (int *)(red_s + DEC_THREADS / WARP * HD);

    if (!len_ok(len, a.max_blocks) || t0 >= (size_t)len)
        return; /* the combine pass handles it */
    size_t nt = (size_t)len - t0 < split ? (size_t)len - t0 : split;
    size_t n_part = a.n_seqs * a.n_heads * n_splits;
    load_split<HD>(a, seq, kvh, t0, nt, group, q_s, blk_s);
    __syncthreads();
    split_scores<HD, KV>(a, kvh, nt, group, split, q_s, blk_s, s_s);
    __syncthreads();
    for (size_t g = threadIdx.x / WARP; g < group; g += blockDim.x / WARP) {
        float *s = s_s + g * split, m = -INFINITY, l = 0.0f;

        for (size_t t = threadIdx.x % WARP; t < nt; t += WARP)
            m = fmaxf(m, s[t]);
        m = warp_max(m);
        for (size_t t = threadIdx.x % WARP; t < nt; t += WARP) {
            s[t] = expf(s[t] - m);
            l += s[t];
        }
        l = warp_sum(l);
        size_t part = (seq * a.n_heads + kvh * group + g) * n_splits + blockIdx.x;
        if (threadIdx.x % WARP == 0) {
            a.work[n_part * HD + part] = m;
            a.work[n_part * HD + n_part + part] = l;
        }
    }
    __syncthreads();
    split_values<HD, KV>(a, kvh, t0, nt, group, split, s_s, blk_s, red_s,
                         a.work + ((seq * a.n_heads + kvh * group) * n_splits + blockIdx.x) * HD,
                         n_splits * HD);
}

template <int HD, typename O>
static __global__ void decode_combine(struct gpu_cuda_attn a, size_t split, size_t n_splits)
{
    size_t h = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
    size_t n_part = a.n_seqs * a.n_heads * n_splits, base = (seq * a.n_heads + h) * n_splits;
    O *out = (O *)a.out + (seq * a.n_heads + h) * HD;
    int32_t len = a.lens[seq];
    float big = -INFINITY, sum = 0.0f, acc = 0.0f;

    if (!len_ok(len, a.max_blocks) || len == 0) {
        store_act(&out[d], len == 0 ? 0.0f : NAN);
        return;
    }
    size_t ns = CEIL_DIV((size_t)len, split);
    const float *m = a.work + n_part * HD, *l = m + n_part;
    for (size_t i = 0; i < ns; i++)
        big = fmaxf(big, m[base + i]);
    for (size_t i = 0; i < ns; i++) {
        float w = expf(m[base + i] - big);

        sum = fmaf(l[base + i], w, sum);
        acc = fmaf(a.work[(base + i) * HD + d], w, acc);
    }
    store_act(&out[d], acc / sum);
}

template <int HD, typename KV, typename O>
static void launch(const struct gpu *g, const struct gpu_cuda_attn *a, size_t split,
                   size_t n_splits)
{
    size_t group = a->n_heads / a->n_kv_heads;
    size_t smem = (group * HD + group * split + DEC_THREADS / WARP * HD) * sizeof(float) +
                  split / GPU_KV_BLOCK * sizeof(int);
    dim3 grid1((unsigned)n_splits, (unsigned)a->n_kv_heads, (unsigned)a->n_seqs);
    dim3 grid2((unsigned)a->n_heads, (unsigned)a->n_seqs);

    decode_split<HD, KV><<<grid1, DEC_THREADS, smem, stream_of(g)>>>(*a, split, n_splits);
    decode_combine<HD, O><<<grid2, HD, 0, stream_of(g)>>>(*a, split, n_splits);
}

template <int HD>
static void launch_hd(const struct gpu *g, const struct gpu_cuda_attn *a, size_t split,
                      size_t n_splits)
{
    with_type(a->kv_type, [&](auto kv) {
        with_type(a->out_type, [&](auto o) {
            launch<HD, typename decltype(kv)::type, typename decltype(o)::type>(g, a, split,
                                                                                n_splits);
        });
    });
}

int gpu_cuda_attn_decode(struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err)
{
    size_t split = a->split, n_splits = a->n_splits;

    if (a->n_seqs == 0)
        return 0;
    if (use_device(g, "attn_decode", err))
        return RAG_EGPU;
    if (a->head_dim == 32)
        launch_hd<32>(g, a, split, n_splits);
    else if (a->head_dim == 64)
        launch_hd<64>(g, a, split, n_splits);
    else
        launch_hd<128>(g, a, split, n_splits);
    return launched(g, "attn_decode", err);
}
