/*
 * gpu/gemv.cu - decode-step linear layers for a few rows (gpu.h gpu_gemv):
 *   c[i][j] = sum_l a[i][l] * w[j][l] + bias[j] + beta * c[i][j],  i < m <= 32
 * with the input rows a either given (bf16/fp16), or made while loading
 * from the fp32 residual stream by RMSNorm, or from a gate/up pair by
 * SwiGLU, so the decode step needs no separate norm or activation kernel.
 *
 * The weights dominate the bytes (m is small), so the kernel is built to
 * stream w at HBM bandwidth, on tensor cores so that m = 32 costs no more
 * arithmetic time than m = 1:
 *
 * - A block of GEMV_WARPS warps owns 16 consecutive weight rows (output
 *   columns j0 .. j0 + 15); its warps split k into contiguous ranges of
 *   32-element steps, and a cross-warp sum in shared memory (fixed order,
 *   so results are deterministic) ends the block. Small n (576 columns,
 *   36 blocks) still has 288 warps streaming; large n has thousands of
 *   blocks.
 * - Each step is two mma.sync.m16n8k16 (fp32 accumulate) per 8 input rows,
 *   with the weight tile as the 16-row A operand and the input rows as
 *   the 8 columns of B ("swap AB"). The order of k inside a step is free
 *   as long as A and B agree, so lane (g, t) (g = lane / 4, t = lane % 4)
 *   takes physical k = 8t .. 8t + 7 of the step for both: one 16-byte
 *   load of weight row g, one of row g + 8, and one per 8 input rows,
 *   where the fragment layout of the mma puts logical k {2t, 2t+1, 2t+8,
 *   2t+9} of the first mma on physical 8t .. 8t + 3 and of the second on
 *   8t + 4 .. 8t + 7.
 * - Weights are read with ld.global.nc.L1::no_allocate (streamed once);
 *   GEMV_UNROLL steps of weights are loaded before their mmas, so each
 *   warp keeps 2 * GEMV_UNROLL 16-byte loads per lane in flight. The
 *   kernel starts as a programmatic dependent launch and issues its first
 *   weight loads before waiting for the kernel that writes its input, so
 *   in a decode graph the weight latency overlaps the previous kernel.
 * - Input rows are read from global memory (they are small and stay in L1
 *   and L2). RMSNorm: each block first computes 1/rms of its m rows (one
 *   warp per row), then a lane scales its 8 fp32 values by it and by the
 *   gain, x * inv * gain in that order as gpu_rmsnorm() does, and rounds to
 *   the compute type (fp16 saturating at +-65504, as gpu_rmsnorm's output).
 *   So a fused call equals the two-kernel sequence up to the order of the
 *   sums. With glu set the output is SwiGLU of a gate and an up row, as
 *   gpu_swiglu() computes it (gpu_gemv_rmsnorm_swiglu()).
 *
 * One input row with k <= GEMV1_K_MAX (the decode step of one sequence in
 * a small model) takes gemv1_kernel instead: no tensor cores, one or two
 * weight rows per warp, all of their weights loaded before the wait for the
 * previous kernel (below). The tensor-core kernel needs 16 weight
 * rows per block, so a 576-wide output had 36 blocks and its warps a few
 * steps each, latency-bound (SmolLM2-135M down projection: 9.8 us).
 *
 * Requirements (checked in launch.c): k a multiple of 8 and every pointer
 * 16-byte aligned, so a lane's 8 elements are one aligned vector; rows
 * past m and past n and steps past k load zeros.
 */
#include "gpu/mma.cuh"

#define GEMV_WARPS   8
#define GEMV_UNROLL  4
#define GEMV_COLS    16   /* weight rows per block: the mma's 16 rows */
#define GEMV_STEP    32   /* k per step: two mmas of k = 16 */
#define GEMV1_K_MAX  2048 /* widest input of the one-row kernel (8 loads per lane and row) */
#define GEMV1_WARPS  4    /* warps per block of the one-row kernel */
#define GEMV1_NARROW 2048 /* outputs up to this wide take one weight row per warp, else two */

enum gemv_mode { MODE_A, MODE_RMS };

struct gemv_args {
    const void *w, *src, *bias;
    const float *norm;
    void *c;
    float beta, eps;
    int m, n, k;
    bool glu; /* c = silu(a . w[j]) * (a . w[n + j]): SwiGLU on the output */
};

/* SwiGLU of one gate and up value, as gpu_swiglu() computes it. */
static __device__ inline float silu_mul(float gate, float up)
{
    return gate / (1.0f + expf(-gate)) * up;
}

static __device__ inline uint4 load_stream(const void *p)
{
    uint4 v;

    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/* Two floats as a pair of T in one register, lower k in the low half, as store_act rounds. */
template <typename T> static __device__ inline uint32_t pack2(float lo, float hi)
{
    T h[2];
    uint32_t r;

    store_act(&h[0], lo);
    store_act(&h[1], hi);
    memcpy(&r, h, sizeof(r));
    return r;
}

template <typename T> static __device__ inline uint4 pack8(const float *v)
{
    return make_uint4(pack2<T>(v[0], v[1]), pack2<T>(v[2], v[3]), pack2<T>(v[4], v[5]),
                      pack2<T>(v[6], v[7]));
}

/* Eight consecutive floats at p (16-byte aligned). */
static __device__ inline void load8(const float *p, float *v)
{
    float4 a = __ldg((const float4 *)p), b = __ldg((const float4 *)p + 1);

    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

/*
 * The B fragment of input row i at physical k0 .. k0 + 7 (i < m, k0 < k):
 * 8 values of T in one vector, made as the mode says; inv holds each row's
 * 1/rms for MODE_RMS.
 */
template <typename T, int MODE>
static __device__ inline uint4 input8(const gemv_args &a, const float *inv, int i, int k0)
{
    size_t k = (size_t)a.k;

    if constexpr (MODE == MODE_A) {
        return __ldg((const uint4 *)((const T *)a.src + (size_t)i * k + k0));
    } else {
        float x[8], w[8];

        load8((const float *)a.src + (size_t)i * k + k0, x);
        load8(a.norm + k0, w);
        for (int e = 0; e < 8; e++)
            x[e] = x[e] * inv[i] * w[e];
        return pack8<T>(x);
    }
}

/* 1/rms of each of the m rows of x (k fp32 each) into inv: one warp per row. */
static __device__ void row_scales(const gemv_args &a, float *inv)
{
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;

    for (int i = (int)warp; i < a.m; i += GEMV_WARPS) {
        const float *x = (const float *)a.src + (size_t)i * a.k;
        float ss = 0.0f;

        for (int l = (int)lane * 4; l < a.k; l += WARP * 4) {
            float4 v = __ldg((const float4 *)(x + l));

            ss = fmaf(v.x, v.x, ss);
            ss = fmaf(v.y, v.y, ss);
            ss = fmaf(v.z, v.z, ss);
            ss = fmaf(v.w, v.w, ss);
        }
        ss = warp_sum(ss);
        if (lane == 0)
            inv[i] = rsqrtf(ss / (float)a.k + a.eps);
    }
}

/* Sum over the block's warps and the epilogue: c = acc + bias + beta * c. */
template <typename C, int NT>
static __device__ void finish(const gemv_args &a, const float (*acc)[4], float (*red)[17], int j0)
{
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, gid = lane / 4, tig = lane % 4;
    const C *bias = (const C *)a.bias;
    C *c = (C *)a.c;

    for (int t = 0; t < NT; t++) {
        int tok = t * 8 + (int)tig * 2;

        red[warp * 32 + tok][gid] = acc[t][0];
        red[warp * 32 + tok + 1][gid] = acc[t][1];
        red[warp * 32 + tok][gid + 8] = acc[t][2];
        red[warp * 32 + tok + 1][gid + 8] = acc[t][3];
    }
    __syncthreads();
    if (a.glu) { /* rows r and r + 8 of the tile are gate and up of output j0 + r */
        for (int e = (int)threadIdx.x; e < a.m * GEMV_COLS / 2; e += blockDim.x) {
            int i = e / (GEMV_COLS / 2), r = e % (GEMV_COLS / 2), j = j0 + r;
            float gate = 0.0f, up = 0.0f;

            for (int w = 0; w < GEMV_WARPS && j < a.n; w++) {
                gate += red[w * 32 + i][r];
                up += red[w * 32 + i][r + GEMV_COLS / 2];
            }
            if (j < a.n)
                store_act(&c[(size_t)i * a.n + j], silu_mul(gate, up));
        }
        return;
    }
    for (int e = (int)threadIdx.x; e < a.m * GEMV_COLS; e += blockDim.x) {
        int i = e / GEMV_COLS, r = e % GEMV_COLS, j = j0 + r;
        float s = 0.0f;

        if (j >= a.n)
            continue;
        for (int w = 0; w < GEMV_WARPS; w++)
            s += red[w * 32 + i][r];
        if (bias)
            s += to_float(bias[j]);
        if (a.beta != 0.0f)
            s += a.beta * to_float(c[(size_t)i * a.n + j]);
        store(&c[(size_t)i * a.n + j], s);
    }
}

/* The lane's weights of steps s .. s + GEMV_UNROLL - 1 (zeros past s1, k or n). */
template <typename T>
static __device__ inline void load_weights(const gemv_args &a, const T *w_lo, const T *w_hi,
                                           bool lo_ok, bool hi_ok, int s, int s1, uint4 *wl,
                                           uint4 *wh)
{
    int tig = (int)(threadIdx.x % WARP % 4);

#pragma unroll
    for (int u = 0; u < GEMV_UNROLL; u++) {
        int k0 = (s + u) * GEMV_STEP + tig * 8;
        bool in = s + u < s1 && k0 < a.k;

        wl[u] = in && lo_ok ? load_stream(w_lo + k0) : make_uint4(0, 0, 0, 0);
        wh[u] = in && hi_ok ? load_stream(w_hi + k0) : make_uint4(0, 0, 0, 0);
    }
}

/*
 * One block: 16 weight rows from j0 = blockIdx.x * 16, NT tiles of 8 input
 * rows. T is the weight and compute type, C the output type, G the SwiGLU
 * input type.
 */
template <typename T, typename C, int MODE, int NT>
static __global__ void __launch_bounds__(GEMV_WARPS *WARP) gemv_kernel(const gemv_args a)
{
    __shared__ float red[GEMV_WARPS * 32][17];
    __shared__ float inv[32];
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, gid = lane / 4, tig = lane % 4;
    int j0 = (int)blockIdx.x * (a.glu ? GEMV_COLS / 2 : GEMV_COLS);
    int steps = (a.k + GEMV_STEP - 1) / GEMV_STEP;
    int s0 = (int)((long long)steps * warp / GEMV_WARPS);
    int s1 = (int)((long long)steps * (warp + 1) / GEMV_WARPS);
    int hi = a.glu ? a.n + j0 + (int)gid : j0 + (int)gid + 8; /* up row, or the next 8 */
    bool lo_ok = j0 + (int)gid < a.n, hi_ok = a.glu ? lo_ok : hi < a.n;
    const T *w_lo = (const T *)a.w + (size_t)(lo_ok ? j0 + gid : 0) * a.k;
    const T *w_hi = (const T *)a.w + (size_t)(hi_ok ? hi : 0) * a.k;
    float acc[NT][4] = {};
    uint4 wl[GEMV_UNROLL], wh[GEMV_UNROLL];

    /* The first weights load before the previous kernel has finished (cuda_util.cuh). */
    load_weights<T>(a, w_lo, w_hi, lo_ok, hi_ok, s0, s1, wl, wh);
    pdl_wait();
    pdl_trigger();
    if constexpr (MODE == MODE_RMS) {
        row_scales(a, inv);
        __syncthreads();
    }
    for (int s = s0; s < s1; s += GEMV_UNROLL) {
        if (s > s0)
            load_weights<T>(a, w_lo, w_hi, lo_ok, hi_ok, s, s1, wl, wh);
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            int k0 = (s + u) * GEMV_STEP + (int)tig * 8;

            if (s + u >= s1)
                break;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                int i = t * 8 + (int)gid;
                uint4 b =
                    i < a.m && k0 < a.k ? input8<T, MODE>(a, inv, i, k0) : make_uint4(0, 0, 0, 0);

                const uint32_t a0[4] = { wl[u].x, wh[u].x, wl[u].y, wh[u].y };
                const uint32_t a1[4] = { wl[u].z, wh[u].z, wl[u].w, wh[u].w };

                tc_ops<T>::mma(acc[t], a0, b.x, b.y);
                tc_ops<T>::mma(acc[t], a1, b.z, b.w);
            }
        }
    }
    finish<C, NT>(a, acc, red, j0);
}

/* The 8 elements of T in u as floats. */
template <typename T> static __device__ inline void unpack8(uint4 u, float *v)
{
    T h[8];

    memcpy(h, &u, sizeof(h));
    for (int e = 0; e < 8; e++)
        v[e] = to_float(h[e]);
}

/*
 * One input row (m = 1), k <= KC * 256: each warp owns RW weight rows (1 or
 * 2) and loads all of them (KC 16-byte loads per row and lane, k = 256 c +
 * 8 lane + e) before waiting for the previous kernel, so in a decode graph
 * the weight latency is hidden and what remains is one pass over the input
 * row (from L1/L2), the warp sums and the store. Blocks of GEMV1_WARPS
 * warps, so that even a 576-wide output spreads over the SMs. The input
 * elements are made and rounded as input8() does; products and sums are
 * fp32 (each lane's chunks in order, then the warp's shuffle tree:
 * deterministic).
 */
template <typename T, typename C, int MODE, int KC, int RW>
static __global__ void __launch_bounds__(GEMV1_WARPS *WARP) gemv1_kernel(const gemv_args a)
{
    unsigned lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    int j = ((int)blockIdx.x * GEMV1_WARPS + (int)warp) * (a.glu ? 1 : RW);
    uint4 w[RW][KC];
    float inv = 1.0f, dot[RW] = {};

#pragma unroll
    for (int r = 0; r < RW; r++) {
        int jr =
            (j + (a.glu ? 0 : r) < a.n ? j + (a.glu ? 0 : r) : a.n - 1) + (a.glu ? r * a.n : 0);
        const T *row = (const T *)a.w + (size_t)jr * a.k;
#pragma unroll
        for (int c = 0; c < KC; c++) {
            int k0 = c * WARP * 8 + (int)lane * 8;
            w[r][c] = k0 < a.k ? load_stream(row + k0) : make_uint4(0, 0, 0, 0);
        }
    }
    pdl_wait();
    pdl_trigger();
    if constexpr (MODE == MODE_RMS) {
        float ss = 0.0f, x[8];

#pragma unroll
        for (int c = 0; c < KC; c++) {
            int k0 = c * WARP * 8 + (int)lane * 8;

            if (k0 < a.k) {
                load8((const float *)a.src + k0, x);
                for (int e = 0; e < 8; e++)
                    ss = fmaf(x[e], x[e], ss);
            }
        }
        inv = rsqrtf(warp_sum(ss) / (float)a.k + a.eps);
    }
#pragma unroll
    for (int c = 0; c < KC; c++) {
        int k0 = c * WARP * 8 + (int)lane * 8;
        float b[8], wf[8], one[1] = { inv };

        if (k0 >= a.k)
            break;
        unpack8<T>(input8<T, MODE>(a, one, 0, k0), b);
#pragma unroll
        for (int r = 0; r < RW; r++) {
            unpack8<T>(w[r][c], wf);
            for (int e = 0; e < 8; e++)
                dot[r] = fmaf(b[e], wf[e], dot[r]);
        }
    }
#pragma unroll
    for (int r = 0; r < RW; r++)
        dot[r] = warp_sum(dot[r]);
    if (a.glu) {
        if (lane == 0 && j < a.n)
            store_act((C *)a.c + j, silu_mul(dot[0], dot[1]));
        return;
    }
    if (lane < RW && j + (int)lane < a.n) {
        int jj = j + (int)lane;
        float v = dot[0];
        C *c = (C *)a.c;

#pragma unroll
        for (int r = 1; r < RW; r++)
            v = (int)lane == r ? dot[r] : v;
        if (a.bias)
            v += to_float(((const C *)a.bias)[jj]);
        if (a.beta != 0.0f)
            v += a.beta * to_float(c[jj]);
        store(&c[jj], v);
    }
}

/* gemv1_kernel with KC chunks: one row a warp for narrow outputs, two for wide ones. */
template <typename T, typename C, int MODE, int KC>
static void launch_one_row_kc(const struct gpu *g, const gemv_args &a)
{
    dim3 block(GEMV1_WARPS * WARP);

    if (a.glu)
        launch_pdl(g, gemv1_kernel<T, C, MODE, KC, 2>,
                   dim3((unsigned)CEIL_DIV((size_t)a.n, (size_t)GEMV1_WARPS)), block, 0, a);
    else if (a.n <= GEMV1_NARROW)
        launch_pdl(g, gemv1_kernel<T, C, MODE, KC, 1>,
                   dim3((unsigned)CEIL_DIV((size_t)a.n, (size_t)GEMV1_WARPS)), block, 0, a);
    else
        launch_pdl(g, gemv1_kernel<T, C, MODE, KC, 2>,
                   dim3((unsigned)CEIL_DIV((size_t)a.n, (size_t)GEMV1_WARPS * 2)), block, 0, a);
}

/* One input row: gemv1_kernel with enough chunks for k (k <= GEMV1_K_MAX). */
template <typename T, typename C, int MODE>
static void launch_one_row(const struct gpu *g, const gemv_args &a)
{
    if (a.k <= 2 * WARP * 8)
        launch_one_row_kc<T, C, MODE, 2>(g, a);
    else if (a.k <= 4 * WARP * 8)
        launch_one_row_kc<T, C, MODE, 4>(g, a);
    else
        launch_one_row_kc<T, C, MODE, 8>(g, a);
}

template <typename T, typename C, int MODE>
static void launch_rows(const struct gpu *g, const gemv_args &a)
{
    size_t cols = a.glu ? GEMV_COLS / 2 : GEMV_COLS; /* outputs a block */
    dim3 grid((unsigned)CEIL_DIV((size_t)a.n, cols)), block(GEMV_WARPS * WARP);

    if (a.m == 1 && a.k <= GEMV1_K_MAX)
        launch_one_row<T, C, MODE>(g, a);
    else if (a.m <= 8)
        launch_pdl(g, gemv_kernel<T, C, MODE, 1>, grid, block, 0, a);
    else if (a.m <= 16)
        launch_pdl(g, gemv_kernel<T, C, MODE, 2>, grid, block, 0, a);
    else if (a.m <= 24)
        launch_pdl(g, gemv_kernel<T, C, MODE, 3>, grid, block, 0, a);
    else
        launch_pdl(g, gemv_kernel<T, C, MODE, 4>, grid, block, 0, a);
}

/* Dispatch on the input mode and the output type (fp32 or T). */
template <typename T>
static void launch_mode(const struct gpu *g, const gemv_args &a, int mode, enum gpu_dtype c_type)
{
    bool c32 = c_type == GPU_F32;

    if (mode == MODE_RMS && c32)
        launch_rows<T, float, MODE_RMS>(g, a);
    else if (mode == MODE_RMS)
        launch_rows<T, T, MODE_RMS>(g, a);
    else if (c32)
        launch_rows<T, float, MODE_A>(g, a);
    else
        launch_rows<T, T, MODE_A>(g, a);
}

int gpu_cuda_gemv(struct gpu *g, const struct gpu_cuda_gemv *p, struct rag_err *err)
{
    gemv_args a = { p->w,   p->src,    p->bias,   p->norm,   p->c,  p->beta,
                    p->eps, (int)p->m, (int)p->n, (int)p->k, p->glu };
    int mode = p->input == GPU_CUDA_GEMV_RMSNORM ? MODE_RMS : MODE_A;

    if (p->m == 0 || p->n == 0)
        return 0;
    if (use_device(g, "gemv", err))
        return RAG_EGPU;
    if (p->ab_type == GPU_BF16)
        launch_mode<__nv_bfloat16>(g, a, mode, p->c_type);
    else
        launch_mode<__half>(g, a, mode, p->c_type);
    return launched(g, "gemv", err);
}
