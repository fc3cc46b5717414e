/*
 * gpu/gemv.cu - decode-step linear layers for a few rows (gpu.h gpu_gemv):
 *   c[i][j] = sum_l a[i][l] * w[j][l] + bias[j] + beta * c[i][j],  i < m <= 32
 * with the input rows a either given (bf16/fp16) or made while loading
 * from the fp32 residual stream by RMSNorm, and optionally SwiGLU of a
 * gate/up pair on the output, so the decode step needs no separate norm or
 * activation kernel.
 *
 * The weights dominate the bytes (m is small), so the kernels are built to
 * stream w at HBM bandwidth. Two or more rows take a tensor-core kernel, so
 * that m = 32 costs no more arithmetic time than m = 2:
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
 * One input row (the decode step of one sequence) takes gemv1_kernel, for
 * any k: CUDA cores, no split of k across warps, so no cross-warp sum. (The
 * tensor-core kernel needs 16 weight rows a block: a 576-wide output had 36
 * blocks, latency-bound, 9.8 us for SmolLM2-135M's down projection; and at
 * Llama-3-8B's shapes it streamed about 3.7 TB/s on an H200, cuBLASLt 4.2.)
 * A warp owns one weight row, or two for outputs wider than GEMV1_NARROW
 * and for the gate and up row of glu, so a 4096-wide output still has 2048
 * warps (15 or 16 an SM). It walks k in rounds of KC chunks of 256 elements
 * (chunk c, lane l: k = 256 c + 8 l .. + 7, one 16-byte load a row):
 * - k <= GEMV1_K_MAX: a single round of up to 8 chunks, every weight of the
 *   warp loaded before the wait for the previous kernel, so in a decode
 *   graph the weight latency hides behind that kernel and what remains is
 *   one pass over the input row, the warp sums and the store.
 * - larger k (8B: 4096 and 14336): register double buffering. Two buffers
 *   of GEMV1_LOADS loads a lane (KC = 8 / rows a warp) are filled before
 *   the wait; each is refilled with the round two ahead as soon as its
 *   products are done, so a lane keeps 8 to 16 loads in flight while it
 *   computes. Launch bounds keep it at 128 registers or fewer, so an SM
 *   holds at least 16 of its warps (ptxas: 128, at most 8 bytes spilled;
 *   168 registers with 12 warps an SM measured slower, bench/gpu/NOTES.md).
 * With RMSNorm the one-row kernel does not round its input: each product
 * takes x * gain in fp32, the warp gathers the sum of squares in the same
 * pass, and 1/rms scales the finished sums, so no pass over x delays the
 * first product (8B QKV with its norm: 25.2 us with that pass, 19.1
 * without; 15.8 with no norm). This
 * is closer to the exact product than the two-kernel sequence, which
 * rounds the normalised input to the compute type. Products and sums are
 * fp32 in a fixed order (each lane's chunks in order, then the warp's
 * shuffle tree), so results are deterministic.
 *
 * Requirements (checked in launch.c): k a multiple of 8 and every pointer
 * 16-byte aligned, so a lane's 8 elements are one aligned vector; rows
 * past m and past n and steps past k load zeros (the one-row kernel reads
 * row n - 1 for rows past n, and never stores them).
 */
#include "gpu/mma.cuh"

#define GEMV_WARPS       8
#define GEMV_UNROLL      4
#define GEMV_COLS        16   /* weight rows per block: the mma's 16 rows */
#define GEMV_STEP        32   /* k per step: two mmas of k = 16 */
#define GEMV1_CHUNK      256  /* k per chunk of the one-row kernel: 32 lanes of 8 elements */
#define GEMV1_K_MAX      2048 /* widest input the one-row kernel loads in a single round */
#define GEMV1_LOADS      8    /* 16-byte loads per lane in a round of the double-buffered kernel */
#define GEMV1_WARPS      4    /* warps per block of the one-row kernel */
#define GEMV1_BLOCKS_MIN 4    /* blocks an SM at least: at most 128 registers a thread */
#define GEMV1_NARROW     2048 /* outputs up to this wide take one weight row per warp, else two */

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
 * Weight row r of the warp whose first output is j: row j + r, or with glu
 * the gate row j (r = 0) and the up row n + j (r = 1). Rows past n are
 * clamped to row n - 1 (read, never stored), so every load stays inside w.
 */
template <typename T>
static __device__ inline const T *one_row_weights(const gemv_args &a, int j, int r)
{
    int jr = a.glu ? j : j + r;

    jr = (jr < a.n ? jr : a.n - 1) + (a.glu ? r * a.n : 0);
    return (const T *)a.w + (size_t)jr * a.k;
}

/* The lane's weights of round q: chunks q KC .. q KC + KC - 1 of each row, zeros past k. */
template <typename T, int KC, int RW>
static __device__ inline void load_round(const gemv_args &a, const T *const *row, int q,
                                         uint4 (&w)[RW][KC])
{
    int lane = (int)(threadIdx.x % WARP);

#pragma unroll
    for (int r = 0; r < RW; r++) {
#pragma unroll
        for (int c = 0; c < KC; c++) {
            int k0 = (q * KC + c) * GEMV1_CHUNK + lane * 8;

            w[r][c] = k0 < a.k ? load_stream(row[r] + k0) : make_uint4(0, 0, 0, 0);
        }
    }
}

/*
 * The 8 input elements at k0 as floats (zeros when in is false): with
 * MODE_A the given row's, with MODE_RMS x * gain, not yet scaled by 1/rms
 * and not rounded, while x^2 is added to ss.
 */
template <typename T, int MODE>
static __device__ inline void one_row_input(const gemv_args &a, int k0, bool in, float *b,
                                            float &ss)
{
    float x[8], gain[8];

    if constexpr (MODE == MODE_A) {
        unpack8<T>(__ldg((const uint4 *)((const T *)a.src + k0)), x);
        for (int e = 0; e < 8; e++)
            b[e] = in ? x[e] : 0.0f;
    } else {
        load8((const float *)a.src + k0, x);
        load8(a.norm + k0, gain);
        for (int e = 0; e < 8; e++) {
            b[e] = in ? x[e] * gain[e] : 0.0f;
            ss = in ? fmaf(x[e], x[e], ss) : ss;
        }
    }
}

/*
 * dot[r] += the lane's products of round q with row r, and ss the squares
 * of its inputs (MODE_RMS). Chunks past k add nothing; their loads are
 * clamped to k0 = 0 rather than skipped, so that the compiler may issue
 * every load of the round before the first product.
 */
template <typename T, int MODE, int KC, int RW>
static __device__ inline void dot_round(const gemv_args &a, int q, const uint4 (&w)[RW][KC],
                                        float *dot, float &ss)
{
    int lane = (int)(threadIdx.x % WARP);

#pragma unroll
    for (int c = 0; c < KC; c++) {
        int k0 = (q * KC + c) * GEMV1_CHUNK + lane * 8;
        bool in = k0 < a.k;
        float b[8], wf[8];

        one_row_input<T, MODE>(a, in ? k0 : 0, in, b, ss);
#pragma unroll
        for (int r = 0; r < RW; r++) {
            unpack8<T>(w[r][c], wf);
            for (int e = 0; e < 8; e++)
                dot[r] = fmaf(b[e], wf[e], dot[r]);
        }
    }
}

/* Warp sums of the RW dots times scale, then the store: SwiGLU with glu, else + bias + beta c. */
template <typename C, int RW>
static __device__ inline void one_row_store(const gemv_args &a, int j, float *dot, float scale)
{
    int lane = (int)(threadIdx.x % WARP);
    C *c = (C *)a.c;

#pragma unroll
    for (int r = 0; r < RW; r++)
        dot[r] = warp_sum(dot[r]) * scale;
    if (a.glu) {
        if (lane == 0 && j < a.n)
            store_act(c + j, silu_mul(dot[0], dot[RW - 1]));
        return;
    }
    if (lane < RW && j + lane < a.n) {
        float v = dot[0];

#pragma unroll
        for (int r = 1; r < RW; r++)
            v = lane == r ? dot[r] : v;
        if (a.bias)
            v += to_float(((const C *)a.bias)[j + lane]);
        if (a.beta != 0.0f)
            v += a.beta * to_float(c[j + lane]);
        store(&c[j + lane], v);
    }
}

/*
 * One input row (m = 1): each warp owns RW weight rows (with glu the gate
 * and up row of one output) and walks k in rounds of KC chunks of 256
 * (k = 256 chunk + 8 lane + e), one 16-byte load per chunk, row and lane.
 * NB buffers of a round's weights: the first NB rounds are loaded before
 * waiting for the previous kernel, and each buffer, once its products are
 * done, is reloaded with the round NB ahead, so a lane keeps up to NB KC RW
 * loads in flight while it computes. NB = 1 is a single round (the launcher
 * takes it only for k <= KC * 256): everything prefetched, then one pass
 * over the input row. With RMSNorm the products take x * gain unrounded
 * and the sum of squares is gathered in the same pass (the warp reads the
 * whole row), so the 1/rms scales the finished sums: no pass over x before
 * the first product. Products and sums are fp32 (each lane's chunks in
 * order, then the warp's shuffle tree: deterministic).
 */
template <typename T, typename C, int MODE, int KC, int RW, int NB>
static __global__ void __launch_bounds__(GEMV1_WARPS *WARP, GEMV1_BLOCKS_MIN)
    gemv1_kernel(const gemv_args a)
{
    int warp = (int)(threadIdx.x / WARP);
    int j = ((int)blockIdx.x * GEMV1_WARPS + warp) * (a.glu ? 1 : RW);
    int rounds = NB == 1 ? 1 : (a.k + KC * GEMV1_CHUNK - 1) / (KC * GEMV1_CHUNK);
    const T *row[RW];
    uint4 w[NB][RW][KC];
    float inv = 1.0f, ss = 0.0f, dot[RW] = {};

#pragma unroll
    for (int r = 0; r < RW; r++)
        row[r] = one_row_weights<T>(a, j, r);
#pragma unroll
    for (int b = 0; b < NB; b++)
        load_round<T, KC, RW>(a, row, b, w[b]);
    pdl_wait();
    pdl_trigger();
    for (int q = 0; q < rounds; q += NB) {
#pragma unroll
        for (int b = 0; b < NB; b++) {
            dot_round<T, MODE, KC, RW>(a, q + b, w[b], dot, ss);
            if constexpr (NB > 1)
                load_round<T, KC, RW>(a, row, q + b + NB, w[b]);
        }
    }
    if constexpr (MODE == MODE_RMS)
        inv = rsqrtf(warp_sum(ss) / (float)a.k + a.eps);
    one_row_store<C, RW>(a, j, dot, inv);
}

/* gemv1_kernel<KC, RW, NB>: blocks of GEMV1_WARPS warps, RW outputs a warp (one with glu). */
template <typename T, typename C, int MODE, int KC, int RW, int NB>
static void launch_one_row_as(const struct gpu *g, const gemv_args &a)
{
    size_t outs = a.glu ? GEMV1_WARPS : GEMV1_WARPS * RW; /* outputs a block */

    launch_pdl(g, gemv1_kernel<T, C, MODE, KC, RW, NB>, dim3((unsigned)CEIL_DIV((size_t)a.n, outs)),
               dim3(GEMV1_WARPS * WARP), 0, a);
}

/* A single round of KC chunks (k <= KC * 256), all prefetched: RW by the output's width. */
template <typename T, typename C, int MODE, int KC>
static void launch_one_round(const struct gpu *g, const gemv_args &a)
{
    if (a.glu || a.n > GEMV1_NARROW)
        launch_one_row_as<T, C, MODE, KC, 2, 1>(g, a);
    else
        launch_one_row_as<T, C, MODE, KC, 1, 1>(g, a);
}

/*
 * One input row. Up to GEMV1_K_MAX, a single round of the fewest chunks that
 * cover k; past it, double-buffered rounds of GEMV1_LOADS loads a lane. One
 * weight row a warp for narrow outputs, two for wide ones and with glu, so
 * a 4096-wide output still has 2048 warps (15 or 16 an SM on 132 SMs).
 */
template <typename T, typename C, int MODE>
static void launch_one_row(const struct gpu *g, const gemv_args &a)
{
    if (a.k <= 2 * GEMV1_CHUNK)
        launch_one_round<T, C, MODE, 2>(g, a);
    else if (a.k <= 4 * GEMV1_CHUNK)
        launch_one_round<T, C, MODE, 4>(g, a);
    else if (a.k <= GEMV1_K_MAX)
        launch_one_round<T, C, MODE, 8>(g, a);
    else if (a.glu || a.n > GEMV1_NARROW)
        launch_one_row_as<T, C, MODE, GEMV1_LOADS / 2, 2, 2>(g, a);
    else
        launch_one_row_as<T, C, MODE, GEMV1_LOADS, 1, 2>(g, a);
}

template <typename T, typename C, int MODE>
static void launch_rows(const struct gpu *g, const gemv_args &a)
{
    size_t cols = a.glu ? GEMV_COLS / 2 : GEMV_COLS; /* outputs a block */
    dim3 grid((unsigned)CEIL_DIV((size_t)a.n, cols)), block(GEMV_WARPS * WARP);

    if (a.m == 1)
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
