/*
 * generation/matmul.c - SIMD dot products of quantized weight rows with fp32
 * activations, and the matrix-vector / matrix-matrix drivers built on them.
 *
 * Activations stay fp32 (no 8-bit activation quantization), so decode has the
 * accuracy of the prefill path and of an fp32 reference on the same weights.
 * For the 32-element block types a block contributes
 *     d * sum_j(u_j * x_j) + (m - off * d) * sum_j(x_j)
 * where u_j are the unsigned stored values (nibbles, 5-bit values, or signed
 * bytes for Q8_0 with off = 0), off = 8 (Q4_0) or 16 (Q5_0) and m the block
 * minimum (Q4_1, Q5_1); the block sums of x are computed once per vector
 * (quant_block_sums). Each kernel is compiled for its instruction set with a
 * target attribute (no global -m flags) and chosen at run time with
 * __builtin_cpu_supports; the scalar path (dequantize the row, then a plain
 * dot product) is the reference. Other types (F16, BF16, K-quants) dequantize
 * each row into scratch and use the SIMD fp32 dot product. Rows are spread
 * over OpenMP threads. The matrix-matrix products are in matmat.c.
 */
#include "generation/quant.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TARGET_AVX2   __attribute__((target("avx2,fma,f16c")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

enum quant_isa quant_isa_best(void)
{
    const char *env = getenv("RAG_ISA");
    enum quant_isa isa = QUANT_ISA_SCALAR;

    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        isa = QUANT_ISA_AVX2;
    if (isa == QUANT_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        isa = QUANT_ISA_AVX512;
    if (isa == QUANT_ISA_AVX512 && __builtin_cpu_supports("avx512vnni"))
        isa = QUANT_ISA_VNNI;
    if (env && !strcmp(env, "scalar"))
        isa = QUANT_ISA_SCALAR;
    else if (env && !strcmp(env, "avx2") && isa > QUANT_ISA_AVX2)
        isa = QUANT_ISA_AVX2;
    else if (env && !strcmp(env, "avx512") && isa > QUANT_ISA_AVX512)
        isa = QUANT_ISA_AVX512;
    return isa;
}

const char *quant_isa_name(enum quant_isa isa)
{
    static const char *const names[] = { "scalar", "avx2", "avx512", "avx512vnni" };
    return names[isa];
}

void quant_block_sums(const float *x, size_t n, float *xsum)
{
    for (size_t b = 0; b < n / QUANT_BLOCK; b++) {
        float s = 0.0f;
        for (int j = 0; j < QUANT_BLOCK; j++)
            s += x[QUANT_BLOCK * b + j];
        xsum[b] = s;
    }
}

/* ---- unpacking one block into low/high 16 stored values (AVX2 level) ---- */

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

/* Stored values of elements 0..15 (lo) and 16..31 (hi); Q8_0 values are signed. */
TARGET_AVX2 static inline void unpack16x2(enum gguf_tensor_type t, const uint8_t *b, __m128i *lo,
                                          __m128i *hi)
{
    __m128i m4 = _mm_set1_epi8(0x0f), v;
    const uint8_t *qs;

    if (t == GGUF_TENSOR_Q8_0) {
        *lo = _mm_loadu_si128((const __m128i *)(b + 2));
        *hi = _mm_loadu_si128((const __m128i *)(b + 18));
        return;
    }
    qs = b + (t == GGUF_TENSOR_Q4_0 ? 2 :
              t == GGUF_TENSOR_Q4_1 ? 4 :
              t == GGUF_TENSOR_Q5_0 ? 6 :
                                      8);
    v = _mm_loadu_si128((const __m128i *)qs);
    *lo = _mm_and_si128(v, m4);
    *hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
    if (t == GGUF_TENSOR_Q5_0 || t == GGUF_TENSOR_Q5_1) {
        __m256i h = _mm256_and_si256(bits_avx2(qs - 4), _mm256_set1_epi8(0x10));
        *lo = _mm_or_si128(*lo, _mm256_castsi256_si128(h));
        *hi = _mm_or_si128(*hi, _mm256_extracti128_si256(h, 1));
    }
}

/* Block constants: scale d and the coefficient of the block sum (m - off * d). */
TARGET_AVX2 static inline float block_consts(enum gguf_tensor_type t, const uint8_t *b, float *c)
{
    float d = _cvtsh_ss(*(const uint16_t *)b);

    switch (t) {
    case GGUF_TENSOR_Q4_0:
        *c = -8.0f * d;
        break;
    case GGUF_TENSOR_Q5_0:
        *c = -16.0f * d;
        break;
    case GGUF_TENSOR_Q4_1:
    case GGUF_TENSOR_Q5_1:
        *c = _cvtsh_ss(*(const uint16_t *)(b + 2));
        break;
    default:
        *c = 0.0f;
    }
    return d;
}

/* ---- AVX2 ---- */

TARGET_AVX2 static inline float hsum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET_AVX2 static inline __m256 widen256(enum gguf_tensor_type t, __m128i v)
{
    __m256i w = t == GGUF_TENSOR_Q8_0 ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
    return _mm256_cvtepi32_ps(w);
}

TARGET_AVX2 static inline float dot_avx2_t(enum gguf_tensor_type t, const uint8_t *p,
                                           const float *x, const float *xsum, size_t nb)
{
    size_t bs = gguf_type_size(t);
    __m256 acc = _mm256_setzero_ps();
    float corr = 0.0f, c;

    for (size_t b = 0; b < nb; b++, p += bs, x += 32) {
        __m128i lo, hi;
        float d = block_consts(t, p, &c);
        unpack16x2(t, p, &lo, &hi);
        __m256 s = _mm256_mul_ps(widen256(t, lo), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(widen256(t, _mm_srli_si128(lo, 8)), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(widen256(t, hi), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(widen256(t, _mm_srli_si128(hi, 8)), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(s, _mm256_set1_ps(d), acc);
        corr += c * xsum[b];
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

/* ---- AVX-512 ---- */

TARGET_AVX512 static inline __m512 widen512(enum gguf_tensor_type t, __m128i v)
{
    __m512i w = t == GGUF_TENSOR_Q8_0 ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v);
    return _mm512_cvtepi32_ps(w);
}

TARGET_AVX512 static inline float dot_avx512_t(enum gguf_tensor_type t, const uint8_t *p,
                                               const float *x, const float *xsum, size_t nb)
{
    size_t bs = gguf_type_size(t);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float corr0 = 0.0f, corr1 = 0.0f, c;

    for (size_t b = 0; b < nb; b++, p += bs, x += 32) {
        __m128i lo, hi;
        float d = block_consts(t, p, &c);
        unpack16x2(t, p, &lo, &hi);
        __m512 s = _mm512_mul_ps(widen512(t, lo), _mm512_loadu_ps(x));
        s = _mm512_fmadd_ps(widen512(t, hi), _mm512_loadu_ps(x + 16), s);
        if (b & 1) {
            acc1 = _mm512_fmadd_ps(s, _mm512_set1_ps(d), acc1);
            corr1 += c * xsum[b];
        } else {
            acc0 = _mm512_fmadd_ps(s, _mm512_set1_ps(d), acc0);
            corr0 += c * xsum[b];
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + corr0 + corr1;
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

/* ---- vector math: exp by range reduction to 2^n * e^r, |r| <= ln2/2, degree-6 polynomial ---- */

#define EXP_LO (-87.3f)
#define EXP_HI 88.3f

TARGET_AVX512 static inline __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

TARGET_AVX2 static inline __m256 exp256(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* s[i] = exp(s[i] - max); returns the sum. */
TARGET_AVX512 static float exp_sub_avx512(float *s, size_t n, float max)
{
    __m512 acc = _mm512_setzero_ps(), m = _mm512_set1_ps(max);
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + i), m));
        _mm512_storeu_ps(s + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + i), m));
        _mm512_mask_storeu_ps(s + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

TARGET_AVX2 static float exp_sub_avx2(float *s, size_t n, float max)
{
    __m256 acc = _mm256_setzero_ps(), m = _mm256_set1_ps(max);
    size_t i = 0;
    float sum;

    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + i), m));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    sum = hsum_avx2(acc);
    for (; i < n; i++) {
        s[i] = expf(s[i] - max);
        sum += s[i];
    }
    return sum;
}

/* max of s[0..n), and s[i] *= f, with AVX-512 (masked tails). */
TARGET_AVX512 static float max_avx512(const float *s, size_t n)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    size_t i = 0;

    for (; i + 16 <= n; i += 16)
        m = _mm512_max_ps(m, _mm512_loadu_ps(s + i));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, s + i));
    }
    return _mm512_reduce_max_ps(m);
}

TARGET_AVX512 static void scale_avx512(float *s, size_t n, float f)
{
    __m512 v = _mm512_set1_ps(f);
    size_t i = 0;

    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(s + i, _mm512_mul_ps(_mm512_loadu_ps(s + i), v));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(s + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + i), v));
    }
}

void quant_softmax(enum quant_isa isa, float *s, size_t n)
{
    float max = s[0], sum = 0.0f;

    if (isa >= QUANT_ISA_AVX512) {
        sum = exp_sub_avx512(s, n, max_avx512(s, n));
        scale_avx512(s, n, 1.0f / sum);
        return;
    }
    for (size_t j = 1; j < n; j++)
        max = s[j] > max ? s[j] : max;
    if (isa == QUANT_ISA_AVX2) {
        sum = exp_sub_avx2(s, n, max);
    } else {
        for (size_t j = 0; j < n; j++) {
            s[j] = expf(s[j] - max);
            sum += s[j];
        }
    }
    for (size_t j = 0; j < n; j++)
        s[j] *= 1.0f / sum;
}

TARGET_AVX512 static void swiglu_avx512(float *g, const float *u, size_t n)
{
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        __m512 sig = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(sig, _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

TARGET_AVX2 static void swiglu_avx2(float *g, const float *u, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 sig = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(sig, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void quant_swiglu(enum quant_isa isa, float *gate, const float *up, size_t n)
{
    if (isa >= QUANT_ISA_AVX512) {
        swiglu_avx512(gate, up, n);
    } else if (isa == QUANT_ISA_AVX2) {
        swiglu_avx2(gate, up, n);
    } else {
        for (size_t i = 0; i < n; i++)
            gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
}

/* ---- dispatch ---- */

typedef float block_dot_fn(const uint8_t *row, const float *x, const float *xsum, size_t nb);

#define DOT_VARIANTS(attr, isa, fn)                                                        \
 attr static float isa##_q4_0(const uint8_t *r, const float *x, const float *s, size_t nb) \
 {                                                                                         \
  return fn(GGUF_TENSOR_Q4_0, r, x, s, nb);                                                \
 }                                                                                         \
 attr static float isa##_q4_1(const uint8_t *r, const float *x, const float *s, size_t nb) \
 {                                                                                         \
  return fn(GGUF_TENSOR_Q4_1, r, x, s, nb);                                                \
 }                                                                                         \
 attr static float isa##_q5_0(const uint8_t *r, const float *x, const float *s, size_t nb) \
 {                                                                                         \
  return fn(GGUF_TENSOR_Q5_0, r, x, s, nb);                                                \
 }                                                                                         \
 attr static float isa##_q5_1(const uint8_t *r, const float *x, const float *s, size_t nb) \
 {                                                                                         \
  return fn(GGUF_TENSOR_Q5_1, r, x, s, nb);                                                \
 }                                                                                         \
 attr static float isa##_q8_0(const uint8_t *r, const float *x, const float *s, size_t nb) \
 {                                                                                         \
  return fn(GGUF_TENSOR_Q8_0, r, x, s, nb);                                                \
 }

DOT_VARIANTS(TARGET_AVX2, avx2, dot_avx2_t)
DOT_VARIANTS(TARGET_AVX512, avx512, dot_avx512_t)

/* The SIMD block kernel for (isa, type), or NULL for the dequantize-then-dot path. */
static block_dot_fn *block_dot_for(enum quant_isa isa, enum gguf_tensor_type t)
{
    static block_dot_fn *const table[2][5] = {
        { avx2_q4_0, avx2_q4_1, avx2_q5_0, avx2_q5_1, avx2_q8_0 },
        { avx512_q4_0, avx512_q4_1, avx512_q5_0, avx512_q5_1, avx512_q8_0 },
    };
    int i = t == GGUF_TENSOR_Q4_0 ? 0 :
            t == GGUF_TENSOR_Q4_1 ? 1 :
            t == GGUF_TENSOR_Q5_0 ? 2 :
            t == GGUF_TENSOR_Q5_1 ? 3 :
            t == GGUF_TENSOR_Q8_0 ? 4 :
                                    -1;

    if (isa == QUANT_ISA_SCALAR || i < 0)
        return NULL;
    return table[isa >= QUANT_ISA_AVX512][i];
}

float quant_dot_f32(enum quant_isa isa, const float *a, const float *b, size_t n)
{
    float s = 0.0f;

    if (isa >= QUANT_ISA_AVX512)
        return dot_f32_avx512(a, b, n);
    if (isa == QUANT_ISA_AVX2)
        return dot_f32_avx2(a, b, n);
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

float quant_dot(enum quant_isa isa, enum gguf_tensor_type type, const void *row, size_t n,
                const float *x, const float *xsum, float *tmp)
{
    block_dot_fn *fn = block_dot_for(isa, type);

    if (fn)
        return fn(row, x, xsum, n / QUANT_BLOCK);
    if (type == GGUF_TENSOR_F32)
        return quant_dot_f32(isa, row, x, n);
    quant_dequant_row(type, row, tmp, n);
    return quant_dot_f32(isa, tmp, x, n);
}

void quant_matvec(enum quant_isa isa, const struct quant_mat *w, size_t n_mats, const float *x,
                  const float *xsum, float *const *y, float *tmp, int n_threads)
{
    size_t total = 0;

    for (size_t k = 0; k < n_mats; k++)
        total += w[k].rows;
#pragma omp parallel num_threads(n_threads)
    {
        float *t = tmp + (size_t)omp_get_thread_num() * w[0].n;
        size_t k = 0, base = 0, nb = w[0].n / QUANT_BLOCK;
        block_dot_fn *fn = block_dot_for(isa, w[0].type);
#pragma omp for schedule(static)
        for (size_t r = 0; r < total; r++) {
            if (r < base || r >= base + w[k].rows) {
                for (k = 0, base = 0; r >= base + w[k].rows; k++)
                    base += w[k].rows;
                fn = block_dot_for(isa, w[k].type);
            }
            const uint8_t *row = w[k].data + (r - base) * w[k].row_bytes;
            y[k][r - base] =
                fn ? fn(row, x, xsum, nb) : quant_dot(isa, w[k].type, row, w[k].n, x, xsum, t);
        }
    }
}
