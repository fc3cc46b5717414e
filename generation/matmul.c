/*
 * generation/matmul.c - SIMD dot products over quantized weight rows and the
 * matrix-vector / matrix-matrix drivers built on them.
 *
 * Each kernel is compiled for its instruction set with a target attribute
 * (no global -m flags) and chosen at run time with __builtin_cpu_supports.
 * One block of 32 weights is unpacked to 32 unsigned bytes in element order
 * and multiplied with the 8-bit activations: AVX-512 VNNI uses vpdpbusd on
 * 256-bit registers (no intermediate saturation), AVX2 uses vpmaddubsw +
 * vpmaddwd (Q8_0 there uses the sign trick, because flipped bytes up to 255
 * would saturate the 16-bit pair sums). Per-block scales are applied in fp32,
 * as in quant_dot_int8_scalar(), which is the reference the tests compare
 * against. Rows are spread over OpenMP threads; the matrix-matrix product
 * dequantizes tiles of rows to fp32 and calls single-threaded sgemm from
 * each thread.
 */
#include "generation/quant.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TARGET_AVX2   __attribute__((target("avx2,fma,f16c")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

enum quant_isa quant_isa_best(void)
{
    const char *env = getenv("RAG_ISA");
    enum quant_isa isa = QUANT_ISA_SCALAR;

    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        isa = QUANT_ISA_AVX2;
    if (isa == QUANT_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni"))
        isa = QUANT_ISA_AVX512;
    if (env && !strcmp(env, "scalar"))
        isa = QUANT_ISA_SCALAR;
    else if (env && !strcmp(env, "avx2") && isa > QUANT_ISA_AVX2)
        isa = QUANT_ISA_AVX2;
    return isa;
}

const char *quant_isa_name(enum quant_isa isa)
{
    static const char *const names[] = { "scalar", "avx2", "avx512" };
    return names[isa];
}

/* ---- AVX2 ---- */

TARGET_AVX2 static inline __m256i nibbles_avx2(const uint8_t *qs)
{
    __m128i v = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

/* 32 bytes, byte j = 0xff when bit j of the 32-bit word at p is set (llama.cpp's trick). */
TARGET_AVX2 static inline __m256i bits_avx2(const uint8_t *p)
{
    uint32_t x;
    __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101,
                                     0x0000000000000000);
    __m256i bytes;

    memcpy(&x, p, 4);
    bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

TARGET_AVX2 static inline __m256i unpack_avx2_q5(enum gguf_tensor_type t, const uint8_t *b)
{
    const uint8_t *p = b + (t == GGUF_TENSOR_Q5_0 ? 2 : 4);
    __m256i u = nibbles_avx2(p + 4);

    return _mm256_or_si256(u, _mm256_and_si256(bits_avx2(p), _mm256_set1_epi8(0x10)));
}

/* Unsigned values of one block in element order (Q8_0: flipped bytes); sets offset and min. */
TARGET_AVX2 static inline __m256i unpack_avx2(enum gguf_tensor_type t, const uint8_t *b, int *off,
                                              float *m)
{
    __m256i u;

    *m = (t == GGUF_TENSOR_Q4_1 || t == GGUF_TENSOR_Q5_1) ? _cvtsh_ss(*(const uint16_t *)(b + 2))
                                                          : 0.0f;
    switch (t) {
    case GGUF_TENSOR_Q4_0:
        *off = 8;
        return nibbles_avx2(b + 2);
    case GGUF_TENSOR_Q4_1:
        *off = 0;
        return nibbles_avx2(b + 4);
    case GGUF_TENSOR_Q5_0:
    case GGUF_TENSOR_Q5_1: {
        const uint8_t *p = b + (t == GGUF_TENSOR_Q5_0 ? 2 : 4);
        *off = t == GGUF_TENSOR_Q5_0 ? 16 : 0;
        u = nibbles_avx2(p + 4);
        return _mm256_or_si256(u, _mm256_and_si256(bits_avx2(p), _mm256_set1_epi8(0x10)));
    }
    default:
        *off = 128;
        u = _mm256_loadu_si256((const __m256i *)(b + 2));
        return _mm256_xor_si256(u, _mm256_set1_epi8((char)0x80));
    }
}

TARGET_AVX2 static inline float hsum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET_AVX2 static inline float dot_avx2_t(enum gguf_tensor_type t, const uint8_t *p,
                                           const struct quant_q8 *x)
{
    size_t bs = gguf_type_size(t), nb = x->n / QUANT_BLOCK;
    __m256 acc = _mm256_setzero_ps();
    __m256i ones = _mm256_set1_epi16(1);
    float corr = 0.0f;

    for (size_t b = 0; b < nb; b++, p += bs) {
        __m256i xq = _mm256_loadu_si256((const __m256i *)(x->q + QUANT_BLOCK * b)), u, s16;
        float d = _cvtsh_ss(*(const uint16_t *)p), m;
        int off;
        if (t == GGUF_TENSOR_Q8_0) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(p + 2));
            s16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w));
            off = 0;
            m = 0.0f;
        } else {
            u = unpack_avx2(t, p, &off, &m);
            s16 = _mm256_maddubs_epi16(u, xq);
        }
        __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
        acc = _mm256_fmadd_ps(f, _mm256_set1_ps(d * x->d[b]), acc);
        corr += (m - (float)off * d) * x->sx[b];
    }
    return hsum_avx2(acc) + corr;
}

TARGET_AVX2 static float dot_f32_avx2(const float *a, const float *b, size_t n)
{
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    float s;

    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    s = hsum_avx2(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- AVX-512 (VNNI on 256-bit registers) ---- */

TARGET_AVX512 static inline float dot_avx512_t(enum gguf_tensor_type t, const uint8_t *p,
                                               const struct quant_q8 *x)
{
    size_t bs = gguf_type_size(t), nb = x->n / QUANT_BLOCK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float corr = 0.0f;

    for (size_t b = 0; b < nb; b++, p += bs) {
        __m256i xq = _mm256_loadu_si256((const __m256i *)(x->q + QUANT_BLOCK * b));
        float d = _cvtsh_ss(*(const uint16_t *)p), m;
        int off;
        __m256i u = unpack_avx2(t, p, &off, &m);
        __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, xq);
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * x->d[b]));
        if (b & 1)
            acc1 = _mm256_add_ps(acc1, f);
        else
            acc0 = _mm256_add_ps(acc0, f);
        corr += (m - (float)off * d) * x->sx[b];
    }
    return hsum_avx2(_mm256_add_ps(acc0, acc1)) + corr;
}

TARGET_AVX512 static float dot_f32_avx512(const float *a, const float *b, size_t n)
{
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    float s;

    for (; i + 16 <= n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    s = _mm512_reduce_add_ps(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- float activations: d * sum(u * x) + (m - off * d) * sum(x) per block ---- */

/* Low and high 16 unsigned values of a 4/5-bit or Q8_0 block (Q8_0 signed: *sgn = 1). */
TARGET_AVX2 static inline void unpack16x2(enum gguf_tensor_type t, const uint8_t *b, __m128i *lo,
                                          __m128i *hi)
{
    __m128i m4 = _mm_set1_epi8(0x0f), v;

    if (t == GGUF_TENSOR_Q8_0) {
        *lo = _mm_loadu_si128((const __m128i *)(b + 2));
        *hi = _mm_loadu_si128((const __m128i *)(b + 18));
        return;
    }
    if (t == GGUF_TENSOR_Q4_0 || t == GGUF_TENSOR_Q4_1) {
        v = _mm_loadu_si128((const __m128i *)(b + (t == GGUF_TENSOR_Q4_0 ? 2 : 4)));
        *lo = _mm_and_si128(v, m4);
        *hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
        return;
    }
    __m256i u = unpack_avx2_q5(t, b);
    *lo = _mm256_castsi256_si128(u);
    *hi = _mm256_extracti128_si256(u, 1);
}

TARGET_AVX512 static inline __m512 widen512(enum gguf_tensor_type t, __m128i v)
{
    __m512i w = t == GGUF_TENSOR_Q8_0 ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v);
    return _mm512_cvtepi32_ps(w);
}

TARGET_AVX512 static inline float dotf_avx512_t(enum gguf_tensor_type t, const uint8_t *p,
                                                const float *x, const float *xsum, size_t nb)
{
    size_t bs = gguf_type_size(t);
    int off = t == GGUF_TENSOR_Q4_0 ? 8 : t == GGUF_TENSOR_Q5_0 ? 16 : 0;
    int has_m = t == GGUF_TENSOR_Q4_1 || t == GGUF_TENSOR_Q5_1;
    __m512 acc = _mm512_setzero_ps();
    float corr = 0.0f;

    for (size_t b = 0; b < nb; b++, p += bs, x += 32) {
        __m128i lo, hi;
        float d = _cvtsh_ss(*(const uint16_t *)p);
        unpack16x2(t, p, &lo, &hi);
        __m512 s = _mm512_mul_ps(widen512(t, lo), _mm512_loadu_ps(x));
        s = _mm512_fmadd_ps(widen512(t, hi), _mm512_loadu_ps(x + 16), s);
        acc = _mm512_fmadd_ps(s, _mm512_set1_ps(d), acc);
        if (has_m || off)
            corr += ((has_m ? _cvtsh_ss(*(const uint16_t *)(p + 2)) : 0.0f) - (float)off * d) *
                    xsum[b];
    }
    return _mm512_reduce_add_ps(acc) + corr;
}

typedef float dot8_fn(const uint8_t *row, const struct quant_q8 *x);

#define DOT_VARIANTS(attr, isa, fn)                                                                      \
    attr static float isa##_q4_0(const uint8_t *r, const struct quant_q8 *x)                            \
    {                                                                                              \
        return fn(GGUF_TENSOR_Q4_0, r, x);                                                         \
    }                                                                                              \
    attr static float isa##_q4_1(const uint8_t *r, const struct quant_q8 *x)                            \
    {                                                                                              \
        return fn(GGUF_TENSOR_Q4_1, r, x);                                                         \
    }                                                                                              \
    attr static float isa##_q5_0(const uint8_t *r, const struct quant_q8 *x)                            \
    {                                                                                              \
        return fn(GGUF_TENSOR_Q5_0, r, x);                                                         \
    }                                                                                              \
    attr static float isa##_q5_1(const uint8_t *r, const struct quant_q8 *x)                            \
    {                                                                                              \
        return fn(GGUF_TENSOR_Q5_1, r, x);                                                         \
    }                                                                                              \
    attr static float isa##_q8_0(const uint8_t *r, const struct quant_q8 *x)                            \
    {                                                                                              \
        return fn(GGUF_TENSOR_Q8_0, r, x);                                                         \
    }

DOT_VARIANTS(TARGET_AVX2, avx2, dot_avx2_t)
DOT_VARIANTS(TARGET_AVX512, avx512, dot_avx512_t)

static dot8_fn *dot8_for(enum quant_isa isa, enum gguf_tensor_type t)
{
    static dot8_fn *const table[2][5] = {
        { avx2_q4_0, avx2_q4_1, avx2_q5_0, avx2_q5_1, avx2_q8_0 },
        { avx512_q4_0, avx512_q4_1, avx512_q5_0, avx512_q5_1, avx512_q8_0 },
    };
    int i = t == GGUF_TENSOR_Q4_0 ? 0
          : t == GGUF_TENSOR_Q4_1 ? 1
          : t == GGUF_TENSOR_Q5_0 ? 2
          : t == GGUF_TENSOR_Q5_1 ? 3
                                  : 4;

    if (isa == QUANT_ISA_SCALAR)
        return NULL;
    return table[isa == QUANT_ISA_AVX512][i];
}

float quant_dot_f32(enum quant_isa isa, const float *a, const float *b, size_t n)
{
    float s = 0.0f;

    if (isa == QUANT_ISA_AVX512)
        return dot_f32_avx512(a, b, n);
    if (isa == QUANT_ISA_AVX2)
        return dot_f32_avx2(a, b, n);
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

float quant_dot(enum quant_isa isa, enum gguf_tensor_type type, const void *row, size_t n,
                const struct quant_q8 *x8, const float *xf, float *tmp)
{
    dot8_fn *fn;

    if (quant_type_int8(type)) {
        fn = dot8_for(isa, type);
        return fn ? fn(row, x8) : quant_dot_int8_scalar(type, row, x8);
    }
    if (type == GGUF_TENSOR_F32)
        return quant_dot_f32(isa, row, xf, n);
    quant_dequant_row(type, row, tmp, n);
    return quant_dot_f32(isa, tmp, xf, n);
}

void quant_matvec(enum quant_isa isa, const struct quant_mat *w, size_t n_mats,
                  const struct quant_q8 *x8, const float *x, float *const *y, float *tmp,
                  int n_threads)
{
    size_t total = 0;

    for (size_t k = 0; k < n_mats; k++)
        total += w[k].rows;
#pragma omp parallel num_threads(n_threads)
    {
        float *t = tmp + (size_t)omp_get_thread_num() * w[0].n;
        size_t k = 0, base = 0;
        dot8_fn *fn = NULL;
        ptrdiff_t cur = -1;
#pragma omp for schedule(static)
        for (size_t r = 0; r < total; r++) {
            while (r >= base + w[k].rows)
                base += w[k++].rows;
            while (r < base)
                base -= w[--k].rows;
            if (cur != (ptrdiff_t)k) {
                cur = (ptrdiff_t)k;
                fn = quant_type_int8(w[k].type) ? dot8_for(isa, w[k].type) : NULL;
            }
            const uint8_t *row = w[k].data + (r - base) * w[k].row_bytes;
            y[k][r - base] = fn ? fn(row, x8) : quant_dot(isa, w[k].type, row, w[k].n, x8, x, t);
        }
    }
}

void quant_blas_single(void)
{
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

/* Dequantize rows [r0, r1) of w into t (row-major, w->n floats per row). */
static void dequant_rows(const struct quant_mat *w, size_t r0, size_t r1, float *t)
{
    for (size_t r = r0; r < r1; r++)
        quant_dequant_row(w->type, w->data + r * w->row_bytes, t + (r - r0) * w->n, w->n);
}

void quant_matmat(const struct quant_mat *w, const float *x, size_t ldx, size_t n_tok, float *y,
                  size_t ldy, float *tmp, int n_threads)
{
    size_t n_tiles = (w->rows + QUANT_TILE_ROWS - 1) / QUANT_TILE_ROWS, tile;

    n_tiles = (n_tiles + (size_t)n_threads - 1) / (size_t)n_threads * (size_t)n_threads;
    tile = (w->rows + n_tiles - 1) / n_tiles;
    tile = (tile + 15) / 16 * 16;
    quant_blas_single();
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
    for (size_t r0 = 0; r0 < w->rows; r0 += tile) {
        size_t r1 = r0 + tile < w->rows ? r0 + tile : w->rows;
        const float *b = (const float *)(w->data + r0 * w->row_bytes);
        if (w->type != GGUF_TENSOR_F32) {
            float *t = tmp + (size_t)omp_get_thread_num() * QUANT_TILE_ROWS * w->n;
            dequant_rows(w, r0, r1, t);
            b = t;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, (int)(r1 - r0),
                    (int)w->n, 1.0f, x, (int)ldx, b, (int)w->n, 0.0f, y + r0, (int)ldy);
    }
}
TARGET_AVX512 float dotf_q41(const uint8_t *p, const float *x, const float *xs, size_t nb);
TARGET_AVX512 float dotf_q41(const uint8_t *p, const float *x, const float *xs, size_t nb)
{
    return dotf_avx512_t(GGUF_TENSOR_Q4_1, p, x, xs, nb);
}
