/*
 * gpu/mma.cuh - internal to gpu/'s tensor-core kernels (attn_prefill.cu,
 * encoder.cu, gemv.cu): the pieces of a FlashAttention-2-style tile loop,
 * written once. m16n8k16 products with fp32 accumulators for bf16 or
 * fp16 inputs, ldmatrix loads of shared-memory tiles, cp.async copies into
 * them, and for a warp's 16 query rows (struct mma_rows) the online-softmax
 * update of a tile of MMA_TILE_KEYS keys and the P V product. The layout of
 * K and V tiles in shared memory is HD + 8 elements a key row (the padding
 * keeps ldmatrix free of bank conflicts). Scores times the softmax's scale
 * are in log2 units (scale * log2(e) in the encoder; 1 in prefill, whose
 * queries carry it), so 2^x gives the weights: ex2.approx, one instruction,
 * since the softmax's few instructions a score bound these kernels at small
 * head_dim (ncu: bge-small's attention issued instructions 72 % of cycles).
 */
#ifndef GPU_MMA_CUH
#define GPU_MMA_CUH

#include "gpu/cuda_util.cuh"

#define MMA_TILE_KEYS 64 /* keys per shared-memory tile */

/* Packing and m16n8k16 MMA (fp32 accumulators) for element type T. */
template <typename T> struct tc_ops;

template <> struct tc_ops<__nv_bfloat16> {
    static __device__ inline uint32_t pack(float lo, float hi)
    {
        return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
               (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16;
    }
    static __device__ inline void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                      uint32_t b1)
    {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <> struct tc_ops<__half> {
    static __device__ inline uint32_t pack(float lo, float hi)
    {
        return (uint32_t)__half_as_ushort(__float2half_rn(lo)) |
               (uint32_t)__half_as_ushort(__float2half_rn(hi)) << 16;
    }
    static __device__ inline void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                      uint32_t b1)
    {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

static __device__ inline void ldsm_x4(uint32_t (&r)[4], const void *p)
{
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);

    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

static __device__ inline void ldsm_x4_trans(uint32_t (&r)[4], const void *p)
{
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);

    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* 16 bytes from global src to shared dst without waiting; zeros when !valid (src not read). */
static __device__ inline void cp_async16(void *dst, const void *src, bool valid)
{
    unsigned addr = (unsigned)__cvta_generic_to_shared(dst);

    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :
                 : "r"(addr), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}

static __device__ inline void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Wait until at most one committed group of this thread is still in flight. */
static __device__ inline void cp_async_wait_one(void)
{
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

/* Per-warp state of 16 query rows: lane holds rows g = lane / 4 and g + 8. */
template <int HD> struct mma_rows {
    uint32_t q[HD / 16][4]; /* A fragments of the scaled queries */
    float o[HD / 8][4];     /* output accumulators, n-tiles of 8 columns */
    float m[2], l[2];       /* running max (log2 units) and partial sum per row */
};

/* S = Q K^T over the tile's first n_groups groups of 16 keys (the rest stay 0). */
template <int HD, typename T>
static __device__ void mma_tile_scores(const struct mma_rows<HD> &st, const T *ks, int n_groups,
                                       float (&s)[MMA_TILE_KEYS / 8][4])
{
    const int ld = HD + 8, lane = (int)(threadIdx.x % WARP);

#pragma unroll
    for (int n = 0; n < MMA_TILE_KEYS / 8; n++)
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int np = 0; np < MMA_TILE_KEYS / 16; np++) {
        if (np >= n_groups)
            break;
#pragma unroll
        for (int c = 0; c < HD / 16; c++) {
            uint32_t b[4];

            ldsm_x4(b, ks + (np * 16 + (lane & 7) + (lane >> 4 << 3)) * ld + c * 16 +
                           ((lane >> 3) & 1) * 8);
            tc_ops<T>::mma(s[2 * np], st.q[c], b[0], b[1]);
            tc_ops<T>::mma(s[2 * np + 1], st.q[c], b[2], b[3]);
        }
    }
}

/* 2^x on the special-function unit: ex2.approx.ftz, relative error 2^-22, 0 below 2^-126. */
static __device__ inline float mma_exp2(float x)
{
    float y;

    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/*
 * Online softmax update with the tile's scores, which become probabilities:
 * scale (> 0) times s is in log2 units, applied in the exponent's FFMA
 * (m is kept scaled), so a caller that scaled Q passes 1.
 */
template <int HD>
static __device__ void mma_tile_softmax(struct mma_rows<HD> &st, float (&s)[MMA_TILE_KEYS / 8][4],
                                        float scale)
{
    float mx[2] = { -INFINITY, -INFINITY }, corr[2];

#pragma unroll
    for (int n = 0; n < MMA_TILE_KEYS / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            mx[e >> 1] = fmaxf(mx[e >> 1], s[n][e]);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(FULL_MASK, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(FULL_MASK, mx[r], 2));
        mx[r] = fmaxf(st.m[r], mx[r] * scale);
        corr[r] = mma_exp2(st.m[r] - mx[r]);
        st.m[r] = mx[r];
        st.l[r] *= corr[r];
    }
#pragma unroll
    for (int n = 0; n < MMA_TILE_KEYS / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            s[n][e] = mma_exp2(fmaf(s[n][e], scale, -st.m[e >> 1]));
            st.l[e >> 1] += s[n][e];
        }
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            st.o[n][e] *= corr[e >> 1];
}

/* The row sums l, split over the four lanes of a row, summed: before normalising o. */
template <int HD> static __device__ inline void mma_rows_sum(struct mma_rows<HD> &st)
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        st.l[r] += __shfl_xor_sync(FULL_MASK, st.l[r], 1);
        st.l[r] += __shfl_xor_sync(FULL_MASK, st.l[r], 2);
    }
}

/* O += P V over the tile's first n_groups groups of 16 keys (P is 0 past them). */
template <int HD, typename T>
static __device__ void mma_tile_pv(struct mma_rows<HD> &st, const float (&p)[MMA_TILE_KEYS / 8][4],
                                   const T *vs, int n_groups)
{
    const int ld = HD + 8, lane = (int)(threadIdx.x % WARP);

#pragma unroll
    for (int kc = 0; kc < MMA_TILE_KEYS / 16; kc++) {
        if (kc >= n_groups)
            break;
        uint32_t a[4] = { tc_ops<T>::pack(p[2 * kc][0], p[2 * kc][1]),
                          tc_ops<T>::pack(p[2 * kc][2], p[2 * kc][3]),
                          tc_ops<T>::pack(p[2 * kc + 1][0], p[2 * kc + 1][1]),
                          tc_ops<T>::pack(p[2 * kc + 1][2], p[2 * kc + 1][3]) };
#pragma unroll
        for (int dp = 0; dp < HD / 16; dp++) {
            uint32_t b[4];

            ldsm_x4_trans(b, vs + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + dp * 16 +
                                 (lane >> 4) * 8);
            tc_ops<T>::mma(st.o[2 * dp], a, b[0], b[1]);
            tc_ops<T>::mma(st.o[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

#endif
