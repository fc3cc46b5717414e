/*
 * gpu/attn_prefill.cu - causal attention of a prompt (or a chunk of one)
 * over the paged KV cache, with a tiled online softmax: no score matrix.
 *
 * Math: n_tokens queries of one sequence at positions pos0 + i; query i of
 * head h attends to cached tokens 0 .. pos0 + i of kv head h / G:
 *   out[i][h] = sum_{t <= pos0+i} e^(x_t - M) V_t / sum e^(x_t - M),
 *   x_t = scale * q[i][h] . K_t.
 * q (n_tokens, n_heads, head_dim) fp32, out the same in fp32 or bf16; the
 * cache as in gpu.h, one block table (at least ceil((pos0 + n_tokens)/16)
 * ids). With pos0 > 0 this is chunked prefill: earlier tokens (a system
 * prompt, a cached RAG chunk) are attended to without being recomputed.
 *
 * Launch: grid (ceil(n_tokens / 32), n_heads), 256 threads = 8 warps, each
 * warp owning 4 query rows of the block's 32. The block walks the keys one
 * cache block (16 tokens) at a time, up to the last key its last row may
 * see: it stages that tile's K (rows padded to head_dim + 1 floats, so the
 * 16 lanes reading 16 rows hit 16 banks) and V in shared memory as fp32.
 * Per row and tile, lane l computes half of the dot product of key l % 16
 * (halves split by l / 16) and one shuffle completes it; then the online
 * softmax (FlashAttention-2, Dao 2023): m' = max(m, max_j x_j),
 * l' = l e^(m - m') + sum_j e^(x_j - m'), acc' = acc e^(m - m') +
 * sum_j e^(x_j - m') V_j, where each lane keeps head_dim / 32 columns of
 * acc. Keys after a row's position are masked with -inf; keys past the
 * block's last position are staged as zeros, so unwritten cache slots are
 * never read into a sum. A block id outside the cache stages NaN.
 *
 * Version 1 is CUDA-core fp32 (correctness first); a tensor-core version
 * (mma/wgmma on bf16 tiles) is the next step for long prompts.
 */
#include "gpu/cuda_util.cuh"

#define PRE_ROWS     32 /* query rows per block */
#define PRE_WARPS    8
#define PRE_PER_WARP (PRE_ROWS / PRE_WARPS)

template <int HD> struct prefill_smem {
    float q[PRE_ROWS][HD];
    float k[GPU_KV_BLOCK][HD + 1];
    float v[GPU_KV_BLOCK][HD];
};

/* Stage key tile `tile` (16 tokens) of kv head kvh; keys at or past kv_end are zeros. */
template <int HD, typename KV>
static __device__ void stage_tile(const struct gpu_cuda_attn &a, size_t tile, size_t kvh,
                                  size_t kv_end, struct prefill_smem<HD> &sm)
{
    int32_t blk = a.block_tables[tile];
    bool ok = blk >= 0 && (size_t)blk < a.n_blocks;
    const KV *kc = (const KV *)a.k_cache, *vc = (const KV *)a.v_cache;

    for (size_t i = threadIdx.x; i < GPU_KV_BLOCK * HD; i += blockDim.x) {
        size_t j = i / HD, d = i % HD;
        size_t off = (((size_t)blk * a.n_kv_heads + kvh) * GPU_KV_BLOCK + j) * HD + d;
        bool in = tile * GPU_KV_BLOCK + j < kv_end;

        sm.k[j][d] = !in ? 0.0f : ok ? to_float(kc[off]) : NAN;
        sm.v[j][d] = !in ? 0.0f : ok ? to_float(vc[off]) : NAN;
    }
}

/* Running state of one query row: max, sum and this lane's output columns. */
template <int HD> struct row_state {
    float m, l, acc[HD / WARP];
};

/* Fold one staged tile into row r's state (the whole warp calls this). */
template <int HD>
static __device__ void fold_tile(const struct prefill_smem<HD> &sm, size_t r, size_t qpos,
                                 size_t tile, struct row_state<HD> &st)
{
    unsigned lane = threadIdx.x % WARP, j = lane % GPU_KV_BLOCK, half = lane / GPU_KV_BLOCK;
    float x = 0.0f;

    for (int dd = 0; dd < HD / 2; dd++)
        x = fmaf(sm.q[r][half * (HD / 2) + dd], sm.k[j][half * (HD / 2) + dd], x);
    x += __shfl_xor_sync(FULL_MASK, x, GPU_KV_BLOCK);
    bool valid = tile * GPU_KV_BLOCK + j <= qpos;
    x = valid ? x : -INFINITY;
    float m_new = fmaxf(st.m, warp_max(x));
    if (m_new == -INFINITY && !__any_sync(FULL_MASK, isnan(x)))
        return; /* every key so far masked: nothing to add (NaN must go on) */
    float corr = expf(st.m - m_new);
    float p = valid ? expf(x - m_new) : 0.0f;
    st.l = st.l * corr + warp_sum(lane < GPU_KV_BLOCK ? p : 0.0f);
    for (int c = 0; c < HD / WARP; c++)
        st.acc[c] *= corr;
    for (int k = 0; k < GPU_KV_BLOCK; k++) {
        float pk = __shfl_sync(FULL_MASK, p, k);

        for (int c = 0; c < HD / WARP; c++)
            st.acc[c] = fmaf(pk, sm.v[k][lane + WARP * c], st.acc[c]);
    }
    st.m = m_new;
}

template <int HD, typename KV, typename O>
static __global__ void __launch_bounds__(PRE_WARPS *WARP) prefill_kernel(struct gpu_cuda_attn a)
{
    __shared__ struct prefill_smem<HD> sm;
    size_t h = blockIdx.y, kvh = h / (a.n_heads / a.n_kv_heads), q0 = blockIdx.x * PRE_ROWS;
    size_t last = (q0 + PRE_ROWS < a.n_tokens ? q0 + PRE_ROWS : a.n_tokens) - 1;
    size_t kv_end = a.pos0 + last + 1, warp = threadIdx.x / WARP;
    struct row_state<HD> st[PRE_PER_WARP];

    for (size_t i = threadIdx.x; i < PRE_ROWS * HD; i += blockDim.x) {
        size_t tq = q0 + i / HD;
        sm.q[i / HD][i % HD] =
            tq < a.n_tokens ? a.q[(tq * a.n_heads + h) * HD + i % HD] * a.scale : 0.0f;
    }
#pragma unroll
    for (int r = 0; r < PRE_PER_WARP; r++) {
        st[r].m = -INFINITY;
        st[r].l = 0.0f;
        for (int c = 0; c < HD / WARP; c++)
            st[r].acc[c] = 0.0f;
    }
    for (size_t tile = 0; tile < CEIL_DIV(kv_end, (size_t)GPU_KV_BLOCK); tile++) {
        __syncthreads(); /* the previous tile is consumed */
        stage_tile<HD, KV>(a, tile, kvh, kv_end, sm);
        __syncthreads();
#pragma unroll
        for (int r = 0; r < PRE_PER_WARP; r++) {
            size_t row = warp * PRE_PER_WARP + r;
            if (q0 + row < a.n_tokens)
                fold_tile<HD>(sm, row, a.pos0 + q0 + row, tile, st[r]);
        }
    }
#pragma unroll
    for (int r = 0; r < PRE_PER_WARP; r++) {
        size_t tq = q0 + warp * PRE_PER_WARP + r;
        if (tq >= a.n_tokens)
            continue;
        O *out = (O *)a.out + (tq * a.n_heads + h) * HD;
        for (int c = 0; c < HD / WARP; c++)
            store(&out[threadIdx.x % WARP + WARP * c], st[r].acc[c] / st[r].l);
    }
}

template <int HD> static void launch_hd(const struct gpu *g, const struct gpu_cuda_attn *a)
{
    dim3 grid((unsigned)CEIL_DIV(a->n_tokens, (size_t)PRE_ROWS), (unsigned)a->n_heads);
    bool kv16 = a->kv_type == GPU_BF16, out16 = a->out_type == GPU_BF16;
    cudaStream_t s = stream_of(g);

    if (kv16 && out16)
        prefill_kernel<HD, __nv_bfloat16, __nv_bfloat16><<<grid, PRE_WARPS * WARP, 0, s>>>(*a);
    else if (kv16)
        prefill_kernel<HD, __nv_bfloat16, float><<<grid, PRE_WARPS * WARP, 0, s>>>(*a);
    else if (out16)
        prefill_kernel<HD, float, __nv_bfloat16><<<grid, PRE_WARPS * WARP, 0, s>>>(*a);
    else
        prefill_kernel<HD, float, float><<<grid, PRE_WARPS * WARP, 0, s>>>(*a);
}

int gpu_cuda_attn_prefill(struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err)
{
    if (a->n_tokens == 0)
        return 0;
    if (use_device(g, "attn_prefill", err))
        return RAG_EGPU;
    if (a->head_dim == 32)
        launch_hd<32>(g, a);
    else if (a->head_dim == 64)
        launch_hd<64>(g, a);
    else
        launch_hd<128>(g, a);
    return launched(g, "attn_prefill", err);
}
