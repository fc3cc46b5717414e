/*
 * generation/quant.c - scalar reference code for the GGUF block formats:
 * half-precision conversions, dequantization of every supported type
 * (formulas in docs MODELS.md §2.4, after ggml-quants.c). This is the
 * reference that the SIMD kernels of matmul.c and the prefill tiles use.
 * The 32-element types are unpacked to unsigned values u and an offset
 * (8 for Q4_0, 16 for Q5_0, 128 for Q8_0 whose bytes are flipped with ^0x80,
 * 0 for Q4_1/Q5_1): y = (u - off) * d + m.
 *
 * Also here: the scalar parts of the integer matrix-matrix product, which the
 * SIMD kernels of matmat.c must match: 16-bit quantization of an activation
 * row, packing of weight rows into the QUANT_PACK_BYTES layout (every
 * supported type reduced to w = d * v + m per block of 32, v a small signed
 * integer), and the reference kernel on a packed tile.
 */
#include "generation/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

float quant_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    float f;

    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else {
        f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t quant_f32_to_f16(float f)
{
    uint32_t x, sign, mant;
    int exp;

    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000;
    if ((x & 0x7fffffff) > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00); /* NaN */
    exp = (int)((x >> 23) & 0xff) - 127 + 15;
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        /* subnormal half: value = mant * 2^-24 */
        float a = fabsf(f) * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)nearbyintf(a));
    }
    mant = x & 0x7fffff;
    x = sign | ((uint32_t)exp << 10) | (mant >> 13);
    /* round to nearest even on the dropped 13 bits; a carry may bump the exponent */
    if ((mant & 0x1fff) > 0x1000 || ((mant & 0x1fff) == 0x1000 && (x & 1)))
        x++;
    return (uint16_t)x;
}

float quant_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;

    memcpy(&f, &bits, 4);
    return f;
}

static float f16_at(const uint8_t *p)
{
    uint16_t h;

    memcpy(&h, p, 2);
    return quant_f16_to_f32(h);
}

/* Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: the 32 unsigned values of a block and its offset. */
static int unpack32(enum gguf_tensor_type type, const uint8_t *b, uint8_t u[32])
{
    uint32_t qh;

    switch (type) {
    case GGUF_TENSOR_Q4_0:
    case GGUF_TENSOR_Q4_1: {
        const uint8_t *qs = b + (type == GGUF_TENSOR_Q4_0 ? 2 : 4);
        for (int j = 0; j < 16; j++) {
            u[j] = qs[j] & 0x0f;
            u[j + 16] = qs[j] >> 4;
        }
        return type == GGUF_TENSOR_Q4_0 ? 8 : 0;
    }
    case GGUF_TENSOR_Q5_0:
    case GGUF_TENSOR_Q5_1: {
        const uint8_t *p = b + (type == GGUF_TENSOR_Q5_0 ? 2 : 4);
        memcpy(&qh, p, 4);
        for (int j = 0; j < 16; j++) {
            u[j] = (uint8_t)((p[4 + j] & 0x0f) | ((qh >> j) & 1) << 4);
            u[j + 16] = (uint8_t)((p[4 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
        }
        return type == GGUF_TENSOR_Q5_0 ? 16 : 0;
    }
    default: /* Q8_0 */
        for (int j = 0; j < 32; j++)
            u[j] = (uint8_t)(b[2 + j] ^ 0x80);
        return 128;
    }
}

static int has_min(enum gguf_tensor_type type)
{
    return type == GGUF_TENSOR_Q4_1 || type == GGUF_TENSOR_Q5_1;
}

static void dequant_small(enum gguf_tensor_type type, const uint8_t *b, float *y)
{
    uint8_t u[32];
    int off = unpack32(type, b, u);
    float d = f16_at(b), m = has_min(type) ? f16_at(b + 2) : 0.0f;

    for (int j = 0; j < 32; j++)
        y[j] = (float)((int)u[j] - off) * d + m;
}

/* 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (get_scale_min_k4). */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K (qh == NULL) and Q5_K super-block of 256. */
static void dequant_k45(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y)
{
    float d = f16_at(b), dmin = f16_at(b + 2);
    uint8_t sc, mn;

    for (int c = 0; c < 4; c++) {
        for (int half = 0; half < 2; half++) {
            int s = 2 * c + half;
            scale_min_k4(s, b + 4, &sc, &mn);
            for (int l = 0; l < 32; l++) {
                uint8_t byte = qs[32 * c + l];
                int v = half ? byte >> 4 : byte & 0x0f;
                if (qh)
                    v += ((qh[l] >> s) & 1) << 4;
                y[64 * c + 32 * half + l] = d * sc * (float)v - dmin * mn;
            }
        }
    }
}

static void dequant_q6k(const uint8_t *b, float *y)
{
    float d = f16_at(b + 208);

    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
        for (int l = 0; l < 32; l++) {
            int t = l / 16;
            int q0 = (ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4;
            int q1 = (ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4;
            int q2 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
            int q3 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
            y[128 * h + l] = d * sc[t] * (float)(q0 - 32);
            y[128 * h + l + 32] = d * sc[t + 2] * (float)(q1 - 32);
            y[128 * h + l + 64] = d * sc[t + 4] * (float)(q2 - 32);
            y[128 * h + l + 96] = d * sc[t + 6] * (float)(q3 - 32);
        }
    }
}

static void dequant_elems(enum gguf_tensor_type type, const uint8_t *p, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        if (type == GGUF_TENSOR_F32) {
            memcpy(&dst[i], p + 4 * i, 4);
            continue;
        }
        memcpy(&h, p + 2 * i, 2);
        dst[i] = type == GGUF_TENSOR_F16 ? quant_f16_to_f32(h) : quant_bf16_to_f32(h);
    }
}

void quant_dequant_row(enum gguf_tensor_type type, const void *src, float *dst, size_t n)
{
    const uint8_t *p = src;
    size_t bs = gguf_type_size(type), nb = n / gguf_type_block(type);

    switch (type) {
    case GGUF_TENSOR_F32:
    case GGUF_TENSOR_F16:
    case GGUF_TENSOR_BF16:
        dequant_elems(type, p, dst, n);
        return;
    case GGUF_TENSOR_Q4_K:
    case GGUF_TENSOR_Q5_K:
        for (size_t i = 0; i < nb; i++, p += bs) {
            int k5 = type == GGUF_TENSOR_Q5_K;
            dequant_k45(p, k5 ? p + 16 : NULL, p + (k5 ? 48 : 16), dst + 256 * i);
        }
        return;
    case GGUF_TENSOR_Q6_K:
        for (size_t i = 0; i < nb; i++, p += bs)
            dequant_q6k(p, dst + 256 * i);
        return;
    default:
        for (size_t i = 0; i < nb; i++, p += bs)
            dequant_small(type, p, dst + 32 * i);
    }
}

/* ---- 16-bit activations and packed weight tiles (quant_matmat_q16) ---- */

void quant_q16_init(struct quant_q16 *a, size_t n_tok_max, size_t n_max, int qmax)
{
    size_t n = n_tok_max * n_max;

    a->q = xmalloc_array(n ? n : 1, sizeof(int16_t));
    a->d = xmalloc_array(n / QUANT_BLOCK + 1, sizeof(float));
    a->s = xmalloc_array(n / QUANT_BLOCK + 1, sizeof(float));
    a->n = a->n_tok = 0;
    a->cap = n;
    a->qmax = qmax;
}

void quant_q16_release(struct quant_q16 *a)
{
    free(a->q);
    free(a->d);
    free(a->s);
    memset(a, 0, sizeof(*a));
}

void quant_q16_row(const float *x, size_t n, int qmax, int16_t *q, float *d, float *s)
{
    for (size_t b = 0; b < n / QUANT_BLOCK; b++, x += QUANT_BLOCK, q += QUANT_BLOCK) {
        float amax = 0.0f, id;
        int32_t sum = 0;
        for (int j = 0; j < QUANT_BLOCK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        id = amax > 0.0f ? (float)qmax / amax : 0.0f;
        for (int j = 0; j < QUANT_BLOCK; j++) {
            q[j] = (int16_t)nearbyintf(x[j] * id);
            sum += q[j];
        }
        d[b] = amax / (float)qmax;
        s[b] = d[b] * (float)sum;
    }
}

/* Values v and constants (w = d * v + m) of 32-element block k of a Q4_K or Q5_K row. */
static void block_k45(enum gguf_tensor_type type, const uint8_t *row, size_t k, int16_t v[32],
                      float *d, float *m)
{
    const uint8_t *p = row + (k / 8) * gguf_type_size(type);
    int s = (int)(k % 8), k5 = type == GGUF_TENSOR_Q5_K;
    const uint8_t *qs = p + (k5 ? 48 : 16) + 32 * (s / 2);
    uint8_t sc, mn;

    for (int l = 0; l < 32; l++) {
        v[l] = (int16_t)(s & 1 ? qs[l] >> 4 : qs[l] & 0x0f);
        if (k5)
            v[l] = (int16_t)(v[l] | ((p[16 + l] >> s) & 1) << 4);
    }
    scale_min_k4(s, p + 4, &sc, &mn);
    *d = f16_at(p) * sc;
    *m = -f16_at(p + 2) * mn;
}

/*
 * Q6_K block k of 32 (quarter k % 4 of half k / 4 of a super-block of 256): the two 16-element
 * scales are folded into v = sc · (q - 32), |v| <= 4096, with d the super-block scale.
 */
static void block_q6k(const uint8_t *row, size_t k, int16_t v[32], float *d, float *m)
{
    const uint8_t *b = row + (k / 8) * gguf_type_size(GGUF_TENSOR_Q6_K);
    size_t h = (k % 8) / 4, quarter = k % 4;
    const uint8_t *ql = b + 64 * h + 32 * (quarter & 1), *qh = b + 128 + 32 * h;
    const int8_t *sc = (const int8_t *)(b + 192 + 8 * h + 2 * quarter);

    for (int l = 0; l < 32; l++) {
        int q = (quarter < 2 ? ql[l] & 0x0f : ql[l] >> 4) | ((qh[l] >> (2 * quarter)) & 3) << 4;
        v[l] = (int16_t)(sc[l / 16] * (q - 32));
    }
    *d = f16_at(b + 208);
    *m = 0.0f;
}

/* Values v and constants (w = d * v + m) of 32-element block k of a row of a supported type. */
static void block_v(enum gguf_tensor_type type, const uint8_t *row, size_t k, int16_t v[32],
                    float *d, float *m)
{
    const uint8_t *b = row + k * gguf_type_size(type);
    uint8_t u[32];
    int off;

    if (type == GGUF_TENSOR_Q4_K || type == GGUF_TENSOR_Q5_K) {
        block_k45(type, row, k, v, d, m);
        return;
    }
    if (type == GGUF_TENSOR_Q6_K) {
        block_q6k(row, k, v, d, m);
        return;
    }
    off = unpack32(type, b, u);
    for (int j = 0; j < 32; j++)
        v[j] = (int16_t)(u[j] - off);
    *d = f16_at(b);
    *m = has_min(type) ? f16_at(b + 2) : 0.0f;
}

void quant_pack_rows(const struct quant_mat *w, size_t r0, size_t r1, size_t n_groups,
                     uint8_t *pack)
{
    size_t nb = w->n / QUANT_BLOCK;
    int16_t v[32];
    float d, m;

    for (size_t g = 0; g < n_groups; g++) {
        for (size_t i = 0; i < QUANT_PACK_ROWS; i++) {
            size_t r = r0 + g * QUANT_PACK_ROWS + i;
            for (size_t k = 0; k < nb; k++) {
                uint8_t *p = pack + (g * nb + k) * QUANT_PACK_BYTES;
                memset(v, 0, sizeof(v));
                d = m = 0.0f;
                if (r < r1)
                    block_v(w->type, w->data + r * w->row_bytes, k, v, &d, &m);
                for (int ch = 0; ch < 16; ch++)
                    memcpy(p + 64 * ch + 4 * i, v + 2 * ch, 4);
                memcpy(p + 1024 + 4 * i, &d, 4);
                memcpy(p + 1088 + 4 * i, &m, 4);
            }
        }
    }
}

/* Row i of a packed group against token t of a: sum over blocks of d·dx·Σv·q + m·s. */
static float packed_dot(const uint8_t *group, size_t i, const struct quant_q16 *a, size_t t)
{
    size_t nb = a->n / QUANT_BLOCK;
    const int16_t *q = a->q + t * a->n;
    float acc = 0.0f;

    for (size_t k = 0; k < nb; k++, q += QUANT_BLOCK) {
        const uint8_t *p = group + k * QUANT_PACK_BYTES;
        int32_t sum = 0;
        int16_t v;
        float d, m;
        for (int j = 0; j < QUANT_BLOCK; j++) {
            memcpy(&v, p + 64 * (j / 2) + 4 * i + 2 * (j % 2), 2);
            sum += v * q[j];
        }
        memcpy(&d, p + 1024 + 4 * i, 4);
        memcpy(&m, p + 1088 + 4 * i, 4);
        acc += d * a->d[t * nb + k] * (float)sum;
        acc += m * a->s[t * nb + k];
    }
    return acc;
}

void quant_tile_ref(const uint8_t *pack, size_t n_rows, size_t stride, const struct quant_q16 *a,
                    size_t t0, size_t t1, float *y, size_t ldy)
{
    for (size_t t = t0; t < t1; t++)
        for (size_t r = 0; r < n_rows; r++)
            y[(t - t0) * ldy + r] =
                packed_dot(pack + (r / QUANT_PACK_ROWS) * stride * QUANT_PACK_BYTES,
                           r % QUANT_PACK_ROWS, a, t);
}
