/*
 * gpu/attn_prefill.cu - causal attention of a prompt (or a chunk of one)
 * over the paged KV cache, with a tiled online softmax: no score matrix.
 *
 * Math: n_tokens queries of one sequence at positions pos0 + i; query i of
 * head h attends to cached tokens 0 .. pos0 + i of kv head h / G:
 *   out[i][h] = sum_{t <= pos0+i} e^(x_t - M) V_t / sum e^(x_t - M),
 *   x_t = scale * q[i][h] . K_t.
 * q (n_tokens, n_heads, head_dim) fp32, out the same in fp32, bf16 or fp16;
 * the cache as in gpu.h, one block table (at least ceil((pos0 + n_tokens)
 * / 16) ids). With pos0 > 0 this is chunked prefill: earlier tokens (a
 * system prompt, a cached RAG chunk) are attended to without being
 * recomputed. Two kernels:
 *
 * Tensor cores (bf16 or fp16 cache, head_dim 64 or 128): FlashAttention-2
 * (Dao 2023) on mma.sync m16n8k16 with fp32 accumulators, the scheme of
 * gpu/encoder.cu's attention. The G query heads of a kv head are packed:
 * row m = t * G + g of kv head j is token t, head j * G + g, so one block of
 * W warps (tc_shape: 4 at head_dim 64, 8 at 128) owns 16 W consecutive
 * packed rows (16 W / G tokens) and each K/V tile it loads serves all G
 * heads. Each warp owns 16 rows; their Q fragments are read from fp32 q,
 * multiplied by scale * log2(e) and rounded to the cache type once. The block walks keys 0 .. pos0 + (its last token) in
 * tiles of 64 (4 cache blocks), staged in shared memory (rows padded by 16
 * bytes so ldmatrix's 8 row reads hit distinct banks) by cp.async, double
 * buffered; keys at or past that end are staged as zeros, and a block id
 * outside the cache as NaN (written directly, never read). Per tile and
 * warp: S = Q K^T, skipping 16-key groups past the warp's last row; the
 * causal mask (key > pos0 + t to -inf) only where the tile reaches past
 * the warp's first row; online softmax in log2 units with ex2.approx; O += P V
 * with P rounded to the cache type from the S accumulators (their layout is
 * the A operand's) and V read by ldmatrix.trans. Warps whose rows lie past
 * the end, or whose rows see none of the tile, skip it. Blocks are numbered
 * heaviest (last rows) first, kv heads innermost, so the causal tail is
 * short. Shared memory: 4 * 64 * (head_dim + 8) * 2 bytes = 36 KiB at 64,
 * 68 KiB at 128 (opted in above 48 KiB).
 *
 * CUDA cores (fp32 caches, and head_dim 32 of any type): grid
 * (ceil(n_tokens / 32), n_heads), 256 threads = 8 warps, each warp owning 4
 * query rows of the block's 32. The block walks the keys one cache block (16
 * tokens) at a time, up to the last key its last row may see: it stages that
 * tile's K (rows padded to head_dim + 1 floats, so the 16 lanes reading 16
 * rows hit 16 banks) and V in shared memory as fp32. Per row and tile, lane l
 * computes half of the dot product of key l % 16 (halves split by l / 16)
 * and one shuffle completes it; then the online softmax: m' = max(m, max_j
 * x_j), l' = l e^(m - m') + sum_j e^(x_j - m'), acc' = acc e^(m - m') +
 * sum_j e^(x_j - m') V_j, where each lane keeps head_dim / 32 columns of
 * acc. Keys after a row's position are masked with -inf; keys past the
 * block's last position are staged as zeros, so unwritten cache slots are
 * never read into a sum. A block id outside the cache stages NaN.
 */
#include "gpu/mma.cuh"

typedef __nv_bfloat16 bf16;

/* ---- CUDA cores, fp32 ---- */

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

template <int HD, typename KV>
static void old_launch_kv(const struct gpu *g, const struct gpu_cuda_attn *a)
{
    dim3 grid((unsigned)CEIL_DIV(a->n_tokens, (size_t)PRE_ROWS), (unsigned)a->n_heads);
    cudaStream_t s = stream_of(g);

    if (a->out_type == GPU_BF16)
        prefill_kernel<HD, KV, bf16><<<grid, PRE_WARPS * WARP, 0, s>>>(*a);
    else if (a->out_type == GPU_F16)
        prefill_kernel<HD, KV, __half><<<grid, PRE_WARPS * WARP, 0, s>>>(*a);
    else
        prefill_kernel<HD, KV, float><<<grid, PRE_WARPS * WARP, 0, s>>>(*a);
}

template <int HD> static void old_launch(const struct gpu *g, const struct gpu_cuda_attn *a)
{
    if (a->kv_type == GPU_BF16)
        old_launch_kv<HD, bf16>(g, a);
    else if (a->kv_type == GPU_F16)
        old_launch_kv<HD, __half>(g, a);
    else
        old_launch_kv<HD, float>(g, a);
}

/* ---- tensor cores, bf16 or fp16 ---- */

/*
 * Warps a block (16 packed rows each): 8 at head_dim 128, where each K/V
 * tile then serves twice the rows (8B, 4,096 tokens: 0.78 against 0.86 ms
 * a layer with 4), and 4 at 64, where 8 measured slower (0.154 against
 * 0.147 ms). Both run 8 warps an SM (178 registers a thread at 128).
 */
template <int HD> struct tc_shape {
    static constexpr int WARPS = HD == 128 ? 8 : 4;
    static constexpr int ROWS = 16 * WARPS; /* packed (token, head) rows per block */
};
#define TC_KEYS MMA_TILE_KEYS /* 4 cache blocks */

/* Where one warp's rows are: packed rows m0 .. m0 + 15, lane's rows lo and lo + 8. */
struct tc_warp {
    size_t group, kvh, n_rows, row[2]; /* n_rows = n_tokens * group */
    int64_t lim[2];                    /* last key each of the lane's rows sees */
    int64_t lim_lo, lim_hi;            /* last key of the warp's first and last row */
    bool active;                       /* some row of the warp is real */
};

/* Per-warp state of 16 query rows: lane holds rows lane / 4 and lane / 4 + 8. */
/* Element offset of packed row m (token m / G, head kvh * G + m % G) in q and out. */
template <int HD>
static __device__ inline size_t tc_offset(const struct gpu_cuda_attn &a, const struct tc_warp &w,
                                          size_t m)
{
    size_t t = m / w.group;

    return (t * a.n_heads + w.kvh * w.group + (m - t * w.group)) * HD;
}

static __device__ struct tc_warp tc_warp_init(const struct gpu_cuda_attn &a, size_t m0)
{
    struct tc_warp w;
    size_t m_w = m0 + threadIdx.x / WARP * 16, lo = m_w + threadIdx.x % WARP / 4, last;
    int64_t pos0 = (int64_t)a.pos0;

    w.group = a.n_heads / a.n_kv_heads;
    w.kvh = blockIdx.x % a.n_kv_heads;
    w.n_rows = a.n_tokens * w.group;
    w.row[0] = lo;
    w.row[1] = lo + 8;
    w.lim[0] = pos0 + (int64_t)(lo / w.group);
    w.lim[1] = pos0 + (int64_t)((lo + 8) / w.group);
    last = m_w + 15 < w.n_rows ? m_w + 15 : w.n_rows - 1;
    w.lim_lo = pos0 + (int64_t)(m_w / w.group);
    w.lim_hi = pos0 + (int64_t)(last / w.group);
    w.active = m_w < w.n_rows;
    return w;
}

/* Q fragments of the lane's rows (zero past the end), scaled and rounded; empty accumulators. */
template <int HD, typename T>
static __device__ void tc_load_q(const struct gpu_cuda_attn &a, const struct tc_warp &w, float sl2,
                                 struct mma_rows<HD> &st)
{
    int tq = (int)(threadIdx.x % 4);

#pragma unroll
    for (int r = 0; r < 2; r++) {
        bool in = w.row[r] < w.n_rows;
        const float *p = a.q + (in ? tc_offset<HD>(a, w, w.row[r]) : 0) + tq * 2;

#pragma unroll
        for (int c = 0; c < HD / 16; c++) {
            float x0 = in ? p[c * 16] * sl2 : 0.0f, x1 = in ? p[c * 16 + 1] * sl2 : 0.0f;
            float x2 = in ? p[c * 16 + 8] * sl2 : 0.0f, x3 = in ? p[c * 16 + 9] * sl2 : 0.0f;

            st.q[c][r] = tc_ops<T>::pack(x0, x1);
            st.q[c][r + 2] = tc_ops<T>::pack(x2, x3);
        }
        st.m[r] = -INFINITY;
        st.l[r] = 0.0f;
    }
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
        st.o[n][0] = st.o[n][1] = st.o[n][2] = st.o[n][3] = 0.0f;
}

/*
 * Start copying keys [k0, k0 + TC_KEYS) of kv head kvh into ks and vs:
 * zeros at or past kv_end, NaN for a block id outside the cache. They are
 * there after cp_async_wait_one() and a barrier.
 */
template <int HD, typename T>
static __device__ void tc_stage(const struct gpu_cuda_attn &a, T *ks, T *vs, size_t kvh, int64_t k0,
                                int64_t kv_end)
{
    const int chunks = HD / 8, ld = HD + 8;
    const T *kc = (const T *)a.k_cache, *vc = (const T *)a.v_cache;

    for (int i = (int)threadIdx.x; i < TC_KEYS * chunks; i += (int)blockDim.x) {
        int r = i / chunks, col = i % chunks * 8;
        int64_t key = k0 + r;
        bool in = key < kv_end;
        int32_t blk = in ? a.block_tables[key / GPU_KV_BLOCK] : 0;
        size_t off =
            (((size_t)blk * a.n_kv_heads + kvh) * GPU_KV_BLOCK + (size_t)(key % GPU_KV_BLOCK)) *
                HD +
            col;
        T *dk = ks + r * ld + col, *dv = vs + r * ld + col;

        if (in && (blk < 0 || (size_t)blk >= a.n_blocks)) {
            *(uint4 *)dk = make_uint4(~0u, ~0u, ~0u, ~0u); /* NaN in bf16 and fp16 */
            *(uint4 *)dv = make_uint4(~0u, ~0u, ~0u, ~0u);
            continue;
        }
        cp_async16(dk, in ? kc + off : kc, in);
        cp_async16(dv, in ? vc + off : vc, in);
    }
}

/* Keys k0 + j past a row's last key (j > lim - k0) get -inf. */
static __device__ void tc_mask(float (&s)[TC_KEYS / 8][4], const struct tc_warp &w, int64_t k0)
{
    int tq = (int)(threadIdx.x % 4), rel[2];

#pragma unroll
    for (int r = 0; r < 2; r++) {
        int64_t d = w.lim[r] - k0;
        rel[r] = d < 0 ? -1 : d > TC_KEYS ? TC_KEYS : (int)d;
    }
#pragma unroll
    for (int n = 0; n < TC_KEYS / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            if (n * 8 + tq * 2 + (e & 1) > rel[e >> 1])
                s[n][e] = -INFINITY;
}

/* One staged tile of keys [k0, k0 + TC_KEYS) for a warp that sees key k0 (k0 <= lim_hi). */
template <int HD, typename T>
static __device__ void tc_tile(struct mma_rows<HD> &st, const struct tc_warp &w, const T *ks,
                               const T *vs, int64_t k0)
{
    float s[TC_KEYS / 8][4];
    int64_t span = (w.lim_hi - k0) / 16 + 1;
    int n_groups = span < TC_KEYS / 16 ? (int)span : TC_KEYS / 16;

    mma_tile_scores<HD, T>(st, ks, n_groups, s);
    if (k0 + TC_KEYS - 1 > w.lim_lo)
        tc_mask(s, w, k0);
    mma_tile_softmax<HD>(st, s, 1.0f);
    mma_tile_pv<HD, T>(st, s, vs, n_groups);
}

/* Normalise and store the lane's real rows. */
template <int HD, typename O>
static __device__ void tc_store(const struct gpu_cuda_attn &a, const struct tc_warp &w,
                                struct mma_rows<HD> &st)
{
    int tq = (int)(threadIdx.x % 4);

    mma_rows_sum(st);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (w.row[r] >= w.n_rows)
            continue;
        O *out = (O *)a.out + tc_offset<HD>(a, w, w.row[r]) + tq * 2;
        float inv = 1.0f / st.l[r];

#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            store(&out[n * 8], st.o[n][2 * r] * inv);
            store(&out[n * 8 + 1], st.o[n][2 * r + 1] * inv);
        }
    }
}

/* Block i: kv head i % n_kv_heads, packed rows of tile (n_row_tiles - 1 - i / n_kv_heads). */
template <int HD, typename T, typename O>
static __global__ void __launch_bounds__(tc_shape<HD>::WARPS *WARP)
    tc_kernel(struct gpu_cuda_attn a, float sl2)
{
    extern __shared__ __align__(16) unsigned char tc_smem[];
    const int tile = TC_KEYS * (HD + 8);
    T *ks = (T *)tc_smem, *vs = ks + 2 * tile;
    const size_t rows = tc_shape<HD>::ROWS;
    size_t m0 = (gridDim.x / a.n_kv_heads - 1 - blockIdx.x / a.n_kv_heads) * rows;
    struct tc_warp w = tc_warp_init(a, m0);
    size_t last = m0 + rows < w.n_rows ? m0 + rows - 1 : w.n_rows - 1;
    int64_t kv_end = (int64_t)a.pos0 + (int64_t)(last / w.group) + 1;
    int n_tiles = (int)((kv_end + TC_KEYS - 1) / TC_KEYS);
    struct mma_rows<HD> st;

    tc_stage<HD, T>(a, ks, vs, w.kvh, 0, kv_end);
    cp_async_commit();
    tc_load_q<HD, T>(a, w, sl2, st);
    for (int kt = 0; kt < n_tiles; kt++) {
        int b = kt & 1;
        int64_t k0 = (int64_t)kt * TC_KEYS;

        if (kt + 1 < n_tiles) /* into the buffer the previous iteration has finished with */
            tc_stage<HD, T>(a, ks + (b ^ 1) * tile, vs + (b ^ 1) * tile, w.kvh, k0 + TC_KEYS,
                            kv_end);
        cp_async_commit();
        cp_async_wait_one(); /* tile kt has landed */
        __syncthreads();
        if (w.active && k0 <= w.lim_hi)
            tc_tile<HD, T>(st, w, ks + b * tile, vs + b * tile, k0);
        __syncthreads(); /* buffer b is free for tile kt + 2 */
    }
    if (w.active)
        tc_store<HD, O>(a, w, st);
}

template <int HD, typename T, typename O>
static int tc_launch(const struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err)
{
    size_t smem = 4 * TC_KEYS * (HD + 8) * sizeof(T);
    size_t row_tiles =
        CEIL_DIV(a->n_tokens * (a->n_heads / a->n_kv_heads), (size_t)tc_shape<HD>::ROWS);
    cudaError_t e = cudaSuccess;

    if (smem > 48 * 1024)
        e = cudaFuncSetAttribute(tc_kernel<HD, T, O>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)smem);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: launch '%s'", g->device, "attn_prefill");
    tc_kernel<HD, T, O>
        <<<(unsigned)(row_tiles * a->n_kv_heads), tc_shape<HD>::WARPS * WARP, smem, stream_of(g)>>>(
            *a, a->scale * 1.4426950408889634f);
    return 0;
}

template <int HD>
static int tc_launch_hd(const struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err)
{
    if (a->kv_type == GPU_BF16 && a->out_type == GPU_BF16)
        return tc_launch<HD, bf16, bf16>(g, a, err);
    if (a->kv_type == GPU_BF16 && a->out_type == GPU_F16)
        return tc_launch<HD, bf16, __half>(g, a, err);
    if (a->kv_type == GPU_BF16)
        return tc_launch<HD, bf16, float>(g, a, err);
    if (a->out_type == GPU_BF16)
        return tc_launch<HD, __half, bf16>(g, a, err);
    if (a->out_type == GPU_F16)
        return tc_launch<HD, __half, __half>(g, a, err);
    return tc_launch<HD, __half, float>(g, a, err);
}

/* Tensor cores for bf16 and fp16 caches of head_dim 64 and 128; CUDA cores otherwise. */
int gpu_cuda_attn_prefill(struct gpu *g, const struct gpu_cuda_attn *a, struct rag_err *err)
{
    bool tc = (a->head_dim == 64 || a->head_dim == 128) &&
              (a->kv_type == GPU_BF16 || a->kv_type == GPU_F16);
    int rc = 0;

    if (a->n_tokens == 0)
        return 0;
    if (use_device(g, "attn_prefill", err))
        return RAG_EGPU;
    if (tc && a->head_dim == 64)
        rc = tc_launch_hd<64>(g, a, err);
    else if (tc)
        rc = tc_launch_hd<128>(g, a, err);
    else if (a->head_dim == 32)
        old_launch<32>(g, a);
    else if (a->head_dim == 64)
        old_launch<64>(g, a);
    else
        old_launch<128>(g, a);
    return rc ? rc : launched(g, "attn_prefill", err);
}
