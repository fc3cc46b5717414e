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
 * Pass 1 (decode_split): grid (n_splits, n_kv_heads, n_seqs), 256 threads
 *   (measured against 128 and 512 on an H200, bench/gpu/NOTES.md).
 *   A block takes tokens [sp * split, min(L, (sp + 1) * split)) of one kv
 *   head and up to 8 of the G query heads that share it (more heads: the
 *   block repeats over them), so each K and V row is read once per group.
 *   When that grid would have fewer blocks than the GPU has SMs (one or a
 *   few short sequences), the grid is (n_splits, n_heads, n_seqs) instead,
 *   a block for each query head: the same bytes come from L2 G times, but
 *   each block does one head's arithmetic per token instead of G's, and G
 *   times as many SMs run the blocks side by side (SmolLM2-135M, one
 *   sequence: 2,261 tok/s against 1,798 with a block per kv head).
 *   The threads form row groups of R = head_dim / V lanes, V = 16 bytes of
 *   the cache type (8 bf16/fp16 elements, 4 fp32): each row group reads
 *   one token's K and V rows with one 16-byte load per lane, four tokens
 *   at once, and keeps for every query head an online softmax of its own
 *   tokens: a running max m, sum l and the lane's V columns of sum p V,
 *   rescaled by exp(m_old - m_new) when the max grows. Scores are summed
 *   over the R lanes with shuffles. At the end the row groups of a warp
 *   merge by shuffles and the warps through shared memory, in a fixed
 *   order (deterministic). Version 2 (a warp per token, the split's scores
 *   in shared memory, then a second pass over V) ran at 573 to 993 GB/s
 *   for 32 sequences and 13 us for one short one (bench/gpu/NOTES.md).
 *   With one split the block writes out itself (no pass 2); otherwise its
 *   partials go to work: acc (n_seqs, n_heads, n_splits, head_dim), then m
 *   and l (n_seqs, n_heads, n_splits).
 * Pass 2 (decode_combine): grid (n_heads, n_seqs), head_dim threads:
 *   M = max m_i, out = sum_i acc_i e^(m_i - M) / sum_i l_i e^(m_i - M)
 *   over the ceil(L / split) splits that had tokens (the log-sum-exp merge
 *   of llama.cpp's flash_attn_combine_results and vLLM's v2 kernel).
 *
 * Split size: a multiple of 16 chosen by gpu/launch.c from the shapes
 * alone (never from lens), so that about 4 blocks per SM run when every
 * sequence is as long as the table allows, but at least 256 tokens (or the
 * whole table): a block reads 64 to 128 tokens at once, and a table of up
 * to 256 tokens then needs no pass 2 (16- and 64-token minimums measured
 * no faster). Splits past a sequence's length return at once; one captured
 * graph therefore serves every step of a decode loop. Both passes start
 * through launch_pdl() (cuda_util.cuh).
 *
 * gpu_attn_decode_rope() (a.qkv set) is the same kernel with the decode
 * step's RoPE folded in: each block rotates its query heads from the
 * token's qkv row to position L - 1, and every block whose split ends at L
 * makes the new token's rotated K and its V, rounded to the cache type, in
 * shared memory and reads that token from there; the first such block of
 * each kv head also writes them to the cache. This saves gpu_rope_kv()'s
 * kernel a layer.
 *
 * Bad device-side values: a length outside [0, max_blocks * 16] gives NaN
 * for that sequence; a block id outside the cache gives NaN scores and
 * values, hence a NaN output; a length of 0 gives zeros.
 */
#include "gpu/cuda_util.cuh"

#define DEC_THREADS 256
#define DEC_HEADS   8 /* query heads a block keeps state for at once */
#define DEC_UNROLL  4 /* tokens a row group loads at once */

/* Whether lens value len is one the table can hold. */
static __device__ inline bool len_ok(int32_t len, size_t max_blocks)
{
    return len >= 0 && (size_t)len <= max_blocks * GPU_KV_BLOCK;
}

/* 16 bytes of a cache row as floats: 4 fp32 or 8 bf16 / fp16 (KV picks the type). */
static __device__ inline void unpack16(const float *, uint4 u, float *out)
{
    out[0] = __uint_as_float(u.x), out[1] = __uint_as_float(u.y);
    out[2] = __uint_as_float(u.z), out[3] = __uint_as_float(u.w);
}

static __device__ inline void unpack16(const __nv_bfloat16 *, uint4 u, float *out)
{
    uint32_t w[4] = { u.x, u.y, u.z, u.w };

    for (int i = 0; i < 4; i++) {
        out[2 * i] = __uint_as_float(w[i] << 16);
        out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

static __device__ inline void unpack16(const __half *, uint4 u, float *out)
{
    uint32_t w[4] = { u.x, u.y, u.z, u.w };

    for (int i = 0; i < 4; i++) {
        float2 f = __half22float2(*(const __half2 *)&w[i]);

        out[2 * i] = f.x;
        out[2 * i + 1] = f.y;
    }
}

/* 16 bytes of NaN of the cache type. */
static __device__ inline uint4 nan16(const float *)
{
    return make_uint4(0x7fc00000u, 0x7fc00000u, 0x7fc00000u, 0x7fc00000u);
}

static __device__ inline uint4 nan16(const __nv_bfloat16 *)
{
    return make_uint4(0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u);
}

static __device__ inline uint4 nan16(const __half *)
{
    return make_uint4(0x7e007e00u, 0x7e007e00u, 0x7e007e00u, 0x7e007e00u);
}

/* Per-lane state of a row group: for each of NH query heads the online softmax of its tokens. */
template <int NH, int V> struct dec_state {
    float acc[NH][V]; /* sum p V_t over the lane's columns */
    float m[NH], l[NH];
};

/*
 * Shared memory of a block: the scaled queries of the pass, the new token's
 * K and V rows as the cache stores them (gpu_attn_decode_rope() only; up to
 * 4 bytes an element), then each warp's merged state.
 */
template <int NH, int HD> struct dec_smem {
    static constexpr int WARPS = DEC_THREADS / WARP;
    float q[NH][HD];
    alignas(16) unsigned char k_new[HD * 4], v_new[HD * 4];
    float acc[WARPS][NH][HD];
    float m[WARPS][NH], l[WARPS][NH];
};

/* exp(m - big), 0 for an empty state (m = -inf), so that merging two empty states stays empty. */
static __device__ inline float rescale(float m, float big)
{
    return m == -INFINITY ? 0.0f : expf(m - big);
}

/*
 * One token (the lane's 16 bytes kr and vr of its K and V rows) into the
 * state of every head; a lane with on false only takes part in the shuffles.
 */
template <int NH, int HD, typename KV>
static __device__ inline void attend(dec_state<NH, 16 / sizeof(KV)> &st, const dec_smem<NH, HD> &sm,
                                     size_t col, bool on, uint4 kr, uint4 vr)
{
    constexpr int V = 16 / sizeof(KV), R = HD / V;
    float k[V], v[V];

    unpack16((const KV *)0, kr, k);
    unpack16((const KV *)0, vr, v);
#pragma unroll
    for (int g = 0; g < NH; g++) {
        float x = 0.0f;
#pragma unroll
        for (int e = 0; e < V; e++)
            x = fmaf(sm.q[g][col + e], k[e], x);
#pragma unroll
        for (int o = R / 2; o > 0; o /= 2)
            x += __shfl_xor_sync(FULL_MASK, x, o);
        if (!on)
            continue;
        float big = fmaxf(st.m[g], x), c = rescale(st.m[g], big), p = expf(x - big);
        st.l[g] = fmaf(st.l[g], c, p);
#pragma unroll
        for (int e = 0; e < V; e++)
            st.acc[g][e] = fmaf(st.acc[g][e], c, p * v[e]);
        st.m[g] = big;
    }
}

/* Merge the state of the lane o lanes away (same columns, other tokens) into st. */
template <int NH, int V> static __device__ inline void merge_lanes(dec_state<NH, V> &st, int o)
{
#pragma unroll
    for (int g = 0; g < NH; g++) {
        float m2 = __shfl_xor_sync(FULL_MASK, st.m[g], o);
        float l2 = __shfl_xor_sync(FULL_MASK, st.l[g], o);
        float big = fmaxf(st.m[g], m2), c1 = rescale(st.m[g], big), c2 = rescale(m2, big);

        st.l[g] = st.l[g] * c1 + l2 * c2;
#pragma unroll
        for (int e = 0; e < V; e++) {
            float a2 = __shfl_xor_sync(FULL_MASK, st.acc[g][e], o);
            st.acc[g][e] = st.acc[g][e] * c1 + a2 * c2;
        }
        st.m[g] = big;
    }
}

/*
 * The block's result for heads h0 .. h0 + nh - 1 of sequence seq: the
 * warps' states merged (warp order), written to out when the block is the
 * only split, else as the split's partial to work.
 */
template <int NH, int HD, int V, typename O>
static __device__ void block_result(const struct gpu_cuda_attn &a, dec_state<NH, V> &st,
                                    dec_smem<NH, HD> &sm, size_t seq, size_t h0, size_t nh,
                                    size_t n_splits)
{
    constexpr int R = HD / V;
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    size_t n_part = a.n_seqs * a.n_heads * n_splits;

    for (int o = R; o < WARP; o *= 2)
        merge_lanes<NH, V>(st, o);
    if (lane < R)
        for (int g = 0; g < NH; g++) {
            for (int e = 0; e < V; e++)
                sm.acc[warp][g][lane * V + e] = st.acc[g][e];
            sm.m[warp][g] = st.m[g];
            sm.l[warp][g] = st.l[g];
        }
    __syncthreads();
    for (size_t i = threadIdx.x; i < nh * HD; i += blockDim.x) {
        size_t g = i / HD, d = i % HD, h = h0 + g;
        size_t part = (seq * a.n_heads + h) * n_splits + blockIdx.x;
        float big = -INFINITY, l = 0.0f, acc = 0.0f;

        for (int w = 0; w < sm.WARPS; w++)
            big = fmaxf(big, sm.m[w][g]);
        for (int w = 0; w < sm.WARPS; w++) {
            float c = rescale(sm.m[w][g], big);
            l = fmaf(sm.l[w][g], c, l);
            acc = fmaf(sm.acc[w][g][d], c, acc);
        }
        if (n_splits == 1) {
            store_act((O *)a.out + (seq * a.n_heads + h) * HD + d, acc / l);
            continue;
        }
        a.work[part * HD + d] = acc;
        if (d == 0) {
            a.work[n_part * HD + part] = big;
            a.work[n_part * HD + n_part + part] = l;
        }
    }
    __syncthreads(); /* sm is reused by the next pass */
}

/*
 * The lane's 16 bytes from col of token t's K and V rows: NaN for a block id
 * outside the cache, zeros for t past t1 (no token). Token t_new (the one
 * gpu_attn_decode_rope() appends; SIZE_MAX for none) comes from sm, since
 * another block may be writing it to the cache.
 */
template <int NH, int HD, typename KV>
static __device__ inline void load_token(const struct gpu_cuda_attn &a, const dec_smem<NH, HD> &sm,
                                         size_t seq, size_t kvh, size_t t, size_t t1, size_t t_new,
                                         size_t col, uint4 *k, uint4 *v)
{
    int32_t blk = t < t1 ? __ldg(&a.block_tables[seq * a.max_blocks + t / GPU_KV_BLOCK]) : 0;

    if (t >= t1 || blk < 0 || (size_t)blk >= a.n_blocks) {
        *k = *v = t >= t1 ? make_uint4(0, 0, 0, 0) : nan16((const KV *)0);
        return;
    }
    if (t == t_new) {
        *k = *(const uint4 *)((const KV *)sm.k_new + col);
        *v = *(const uint4 *)((const KV *)sm.v_new + col);
        return;
    }
    size_t row = (((size_t)blk * a.n_kv_heads + kvh) * GPU_KV_BLOCK + t % GPU_KV_BLOCK) * HD + col;
    *k = *(const uint4 *)((const KV *)a.k_cache + row);
    *v = *(const uint4 *)((const KV *)a.v_cache + row);
}

/* No tokens to attend over: heads h1 .. h1 + hb - 1 of out get NaN (bad length) or zeros (0). */
template <int HD, typename O>
static __device__ void empty_result(const struct gpu_cuda_attn &a, size_t seq, size_t h1, size_t hb,
                                    bool bad)
{
    O *out = (O *)a.out + (seq * a.n_heads + h1) * HD;

    for (size_t i = threadIdx.x; i < hb * HD; i += blockDim.x)
        store_act(&out[i], bad ? NAN : 0.0f);
}

/*
 * Element d of head row x rotated to position p, as gpu_rope_kv() computes
 * it (rope_kv.cu).
 */
template <int HD>
static __device__ inline float rope_at(const struct gpu_cuda_attn &a, const float *x, int d,
                                       int32_t p)
{
    bool neox = a.rope_type == GPU_ROPE_NEOX;
    int i = neox ? d % (HD / 2) : d / 2;
    int d0 = neox ? i : 2 * i, d1 = neox ? i + HD / 2 : 2 * i + 1;
    float x0 = x[d0], x1 = x[d1], sn, cs;

    sincosf((float)p * a.inv_freq[i], &sn, &cs);
    return d == d0 ? x0 * cs - x1 * sn : x0 * sn + x1 * cs;
}

/*
 * Element d of query head h of sequence seq, scaled: from q, or with the
 * RoPE fused (a.qkv) rotated from the token's qkv row to position p, the
 * last token of the sequence.
 */
template <int HD>
static __device__ inline float query_at(const struct gpu_cuda_attn &a, size_t seq, size_t h, int d,
                                        size_t p)
{
    if (!a.qkv)
        return a.q[(seq * a.n_heads + h) * HD + d] * a.scale;
    const float *row = a.qkv + seq * (a.n_heads + 2 * a.n_kv_heads) * HD;
    return rope_at<HD>(a, row + h * HD, d, (int32_t)p) * a.scale;
}

/*
 * With the RoPE fused: the new token p of sequence seq, kv head kvh, K
 * rotated, as gpu_rope_kv() writes it: into sm (the block's reads of token
 * p take it from there, see load_token), and when write is set into the
 * cache too; nothing is written for a block id outside the cache (the
 * attention then reads NaN for it).
 */
template <int NH, int HD, typename KV>
static __device__ void new_token(const struct gpu_cuda_attn &a, dec_smem<NH, HD> &sm, size_t seq,
                                 size_t kvh, int32_t p, bool write)
{
    int32_t blk = a.block_tables[seq * a.max_blocks + (size_t)p / GPU_KV_BLOCK];
    const float *row = a.qkv + seq * (a.n_heads + 2 * a.n_kv_heads) * HD;
    size_t at = (((size_t)blk * a.n_kv_heads + kvh) * GPU_KV_BLOCK + (size_t)p % GPU_KV_BLOCK) * HD;
    KV *k = (KV *)sm.k_new, *v = (KV *)sm.v_new;

    write = write && blk >= 0 && (size_t)blk < a.n_blocks;
    for (int d = (int)threadIdx.x; d < HD; d += (int)blockDim.x) {
        store_act(&k[d], rope_at<HD>(a, row + (a.n_heads + kvh) * HD, d, p));
        store_act(&v[d], row[(a.n_heads + a.n_kv_heads + kvh) * HD + d]);
        if (write) {
            ((KV *)a.k_cache)[at + d] = k[d];
            ((KV *)a.v_cache)[at + d] = v[d];
        }
    }
}

/*
 * One pass over tokens t0 .. t1 - 1 of the split for heads h0 .. h0 + nh - 1
 * (nh <= NH) of the query at position pos.
 */
template <int NH, int HD, typename KV, typename O>
static __device__ void split_pass(const struct gpu_cuda_attn &a, dec_smem<NH, HD> &sm, size_t seq,
                                  size_t kvh, size_t h0, size_t nh, size_t t0, size_t t1,
                                  size_t pos, size_t n_splits)
{
    constexpr int V = 16 / sizeof(KV), R = HD / V;
    constexpr size_t rows = DEC_THREADS / R; /* tokens the block reads at once */
    size_t col = (threadIdx.x % R) * V;
    dec_state<NH, V> st;

    for (size_t i = threadIdx.x; i < NH * HD; i += blockDim.x)
        sm.q[i / HD][i % HD] = i / HD < nh ? query_at<HD>(a, seq, h0 + i / HD, i % HD, pos) : 0.0f;
    for (int g = 0; g < NH; g++) {
        for (int e = 0; e < V; e++)
            st.acc[g][e] = 0.0f;
        st.m[g] = -INFINITY;
        st.l[g] = 0.0f;
    }
    __syncthreads();
    /*
     * DEC_UNROLL tokens a step per row group, their loads issued together.
     * The loop is the same for the whole warp (its shuffles need every
     * lane); row groups past t1 load nothing and keep their state. With one
     * head a block, steps with no token for any row group of the warp are
     * skipped; with more, that branch costs more than it saves (it keeps
     * the compiler from interleaving the steps: 8B, 32 x 512 tokens, 67
     * against 54 us).
     */
    for (size_t tw = t0 + threadIdx.x / WARP * (WARP / R); tw < t1; tw += DEC_UNROLL * rows) {
        size_t t = tw + threadIdx.x % WARP / R, t_new = a.qkv ? pos : SIZE_MAX;
        int n_u = (int)CEIL_DIV(t1 - tw, rows); /* steps with a token for the warp */
        uint4 k[DEC_UNROLL], v[DEC_UNROLL];

#pragma unroll
        for (int u = 0; u < DEC_UNROLL; u++)
            load_token<NH, HD, KV>(a, sm, seq, kvh, t + u * rows, t1, t_new, col, &k[u], &v[u]);
#pragma unroll
        for (int u = 0; u < DEC_UNROLL; u++)
            if (NH > 1 || u < n_u)
                attend<NH, HD, KV>(st, sm, col, t + u * rows < t1, k[u], v[u]);
    }
    block_result<NH, HD, V, O>(a, st, sm, seq, h0, nh, n_splits);
}

/*
 * Grid (n_splits, n_heads / hb, n_seqs): the block serves query heads
 * blockIdx.y * hb .. + hb - 1, all of one kv head (hb = the group, or 1 when
 * the launcher spreads a group's heads over blocks), NH at a time.
 */
template <int NH, int HD, typename KV, typename O>
static __global__ void __launch_bounds__(DEC_THREADS)
    decode_split(struct gpu_cuda_attn a, size_t split, size_t n_splits, size_t hb)
{
    __shared__ dec_smem<NH, HD> sm;
    size_t group = a.n_heads / a.n_kv_heads, seq = blockIdx.z, h1 = blockIdx.y * hb;
    size_t kvh = h1 / group, t0 = blockIdx.x * split;

    pdl_wait();
    pdl_trigger();
    int32_t len = a.lens[seq];
    if (!len_ok(len, a.max_blocks) || t0 >= (size_t)len) {
        if (n_splits == 1)
            empty_result<HD, O>(a, seq, h1, hb, !len_ok(len, a.max_blocks));
        return; /* else the combine pass handles it */
    }
    size_t t1 = (size_t)len - t0 < split ? (size_t)len : t0 + split;
    /* The new token, in sm before split_pass's barrier; one block a kv head writes the cache. */
    if (a.qkv && t1 == (size_t)len)
        new_token<NH, HD, KV>(a, sm, seq, kvh, len - 1, h1 % group == 0);
    for (size_t h0 = h1; h0 < h1 + hb; h0 += NH) {
        size_t nh = h1 + hb - h0 < NH ? h1 + hb - h0 : NH;

        split_pass<NH, HD, KV, O>(a, sm, seq, kvh, h0, nh, t0, t1, (size_t)len - 1, n_splits);
    }
}

template <int HD, typename O>
static __global__ void decode_combine(struct gpu_cuda_attn a, size_t split, size_t n_splits)
{
    size_t h = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
    size_t n_part = a.n_seqs * a.n_heads * n_splits, base = (seq * a.n_heads + h) * n_splits;
    O *out = (O *)a.out + (seq * a.n_heads + h) * HD;
    float big = -INFINITY, sum = 0.0f, acc = 0.0f;

    pdl_wait();
    pdl_trigger();
    int32_t len = a.lens[seq];
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

/* Pass 1 with hb query heads a block, then pass 2 when the table has more than one split. */
template <int NH, int HD, typename KV, typename O>
static void launch(const struct gpu *g, const struct gpu_cuda_attn *a, size_t split,
                   size_t n_splits, size_t hb)
{
    dim3 grid1((unsigned)n_splits, (unsigned)(a->n_heads / hb), (unsigned)a->n_seqs);
    dim3 grid2((unsigned)a->n_heads, (unsigned)a->n_seqs);

    launch_pdl(g, decode_split<NH, HD, KV, O>, grid1, dim3(DEC_THREADS), 0, *a, split, n_splits,
               hb);
    if (n_splits > 1)
        launch_pdl(g, decode_combine<HD, O>, grid2, dim3((unsigned)HD), 0, *a, split, n_splits);
}

/*
 * A block for each query head when the kv heads alone would leave most SMs
 * idle (short batches: the block's time is latency, and one head's work is
 * a quarter of four heads'); else a block for each kv head, its group's
 * heads in passes of NH = the group rounded up to 1, 2, 4 or 8, so that
 * each K and V row is read once per group.
 */
template <int HD, typename KV, typename O>
static void launch_nh(const struct gpu *g, const struct gpu_cuda_attn *a, size_t split,
                      size_t n_splits)
{
    size_t group = a->n_heads / a->n_kv_heads;

    if (group == 1 || a->n_seqs * a->n_kv_heads * n_splits < (size_t)g->info.n_sm)
        launch<1, HD, KV, O>(g, a, split, n_splits, 1);
    else if (group == 2)
        launch<2, HD, KV, O>(g, a, split, n_splits, group);
    else if (group <= 4)
        launch<4, HD, KV, O>(g, a, split, n_splits, group);
    else
        launch<DEC_HEADS, HD, KV, O>(g, a, split, n_splits, group);
}

template <int HD>
static void launch_hd(const struct gpu *g, const struct gpu_cuda_attn *a, size_t split,
                      size_t n_splits)
{
    with_type(a->kv_type, [&](auto kv) {
        with_type(a->out_type, [&](auto o) {
            launch_nh<HD, typename decltype(kv)::type, typename decltype(o)::type>(g, a, split,
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
