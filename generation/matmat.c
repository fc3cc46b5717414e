/*
 * generation/matmat.c - matrix-matrix products for prefill: the integer path
 * (16-bit activations times the weights' own 4-, 5- or 8-bit values) and the
 * fp32 path (dequantized tiles and OpenBLAS sgemm).
 *
 * Integer path (after llama.cpp's repacked CPU kernels, with 16-bit instead of
 * 8-bit activations for accuracy, see quant.h): the activations of a batch are
 * quantized once per block of 32 (quant_q16_quantize). Each OpenMP thread
 * takes a tile of weight rows, repacks it (quant_pack_rows) so that one 64-byte
 * load holds 2 consecutive values of 16 rows, and runs a register-blocked
 * micro-kernel over 32 rows × MT tokens: per block, 16 loads of each group's
 * weights feed 16 × 2 × MT vpdpwssd (pairs of int16 products summed into one
 * int32 lane per row, the activation pair broadcast from memory), and the
 * block's int32 sums are scaled in fp32: y += d_w·d_x·Σv·q + m_w·(d_x·Σq),
 * where w = d_w·v + m_w. Each weight load serves MT tokens and each activation
 * load 32 rows; one vpdpwssd does 32 multiply-adds against 16 for an fp32 FMA.
 * The result matches quant_tile_ref (quant.c) up to fp32 rounding; the model
 * takes this path per weight type and CPU (quant_matmat_q16_supports), and the
 * fp32 path otherwise. The same micro-kernel multiplies prefill attention's
 * operands: keys and transposed values quantized from fp32 into the packed
 * layout (quant_pack_f32) with ranges that keep the int32 sums exact.
 */
#include "generation/quant.h"

#include <assert.h>
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/base.h"

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define TARGET_VNNI   __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define INLINE        inline __attribute__((always_inline))

/* Tokens per micro-kernel call. */
#define MT 4

/* ---- activation quantization ---- */

TARGET_AVX512 static void q16_row_avx512(const float *x, size_t n, int qmax, int16_t *q, float *d,
                                         float *s)
{
    for (size_t b = 0; b < n / QUANT_BLOCK; b++, x += QUANT_BLOCK, q += QUANT_BLOCK) {
        __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        __m512 id = _mm512_set1_ps(amax > 0.0f ? (float)qmax / amax : 0.0f);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, id));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, id));
        _mm256_storeu_si256((__m256i *)q, _mm512_cvtsepi32_epi16(q0));
        _mm256_storeu_si256((__m256i *)(q + 16), _mm512_cvtsepi32_epi16(q1));
        d[b] = amax / (float)qmax;
        s[b] = d[b] * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* Token t of x (row stride ldx) into a (a->n set). */
static void quantize_token(enum quant_isa isa, struct quant_q16 *a, const float *x, size_t ldx,
                           size_t t)
{
    size_t n = a->n, nb = n / QUANT_BLOCK;

    if (isa >= QUANT_ISA_AVX512)
        q16_row_avx512(x + t * ldx, n, a->qmax, a->q + t * n, a->d + t * nb, a->s + t * nb);
    else
        quant_q16_row(x + t * ldx, n, a->qmax, a->q + t * n, a->d + t * nb, a->s + t * nb);
}

void quant_q16_quantize(enum quant_isa isa, struct quant_q16 *a, const float *x, size_t ldx,
                        size_t n_tok, size_t n, int n_threads)
{
    assert(n % QUANT_BLOCK == 0 && n_tok * n <= a->cap);
    a->n = n;
    a->n_tok = n_tok;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n_tok > 1)
    for (size_t t = 0; t < n_tok; t++)
        quantize_token(isa, a, x, ldx, t);
}

/* ---- packing (AVX-512) of the 32-element block types; quant_pack_rows is the reference ---- */

/* The 32 signed values v of one block (w = d * v + m), as int16. */
TARGET_AVX512 static INLINE __m512i block_v512(enum gguf_tensor_type t, const uint8_t *b)
{
    __m128i x, m4 = _mm_set1_epi8(0x0f);
    __m256i u;
    uint32_t qh;

    if (t == GGUF_TENSOR_Q8_0)
        return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(b + 2)));
    x = _mm_loadu_si128((const __m128i *)(b + (t == GGUF_TENSOR_Q4_0 ? 2 :
                                               t == GGUF_TENSOR_Q4_1 ? 4 :
                                               t == GGUF_TENSOR_Q5_0 ? 6 :
                                                                       8)));
    u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m4), _mm_and_si128(x, m4));
    if (t == GGUF_TENSOR_Q5_0 || t == GGUF_TENSOR_Q5_1) {
        memcpy(&qh, b + (t == GGUF_TENSOR_Q5_0 ? 2 : 4), 4);
        u = _mm256_mask_add_epi8(u, (__mmask32)qh, u, _mm256_set1_epi8(16));
    }
    __m512i v = _mm512_cvtepu8_epi16(u);
    if (t == GGUF_TENSOR_Q4_0 || t == GGUF_TENSOR_Q5_0)
        v = _mm512_sub_epi16(v, _mm512_set1_epi16(t == GGUF_TENSOR_Q4_0 ? 8 : 16));
    return v;
}

/* In place: r[i] holds 16 dwords of row i; afterwards r[c] holds dword c of the 16 rows. */
TARGET_AVX512 static INLINE void transpose16(__m512i r[16])
{
    __m512i t[16], u[16];

    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++) {
        u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    /* u[4q + j], 128-bit lane l: rows 4q..4q+3 of column 4l + j */
    for (int j = 0; j < 4; j++) {
        __m512i e0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44);
        __m512i e1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee);
        __m512i f0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        __m512i f1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
        r[j] = _mm512_shuffle_i32x4(e0, f0, 0x88);
        r[4 + j] = _mm512_shuffle_i32x4(e0, f0, 0xdd);
        r[8 + j] = _mm512_shuffle_i32x4(e1, f1, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(e1, f1, 0xdd);
    }
}

/* Group g of rows r0 + 16g.. (rows from r1 on are zero) into pack, as quant_pack_rows. */
TARGET_AVX512 static void pack_group_avx512(const struct quant_mat *w, size_t r0, size_t r1,
                                            size_t g, uint8_t *pack)
{
    size_t nb = w->n / QUANT_BLOCK, bs = gguf_type_size(w->type);
    bool with_min = w->type == GGUF_TENSOR_Q4_1 || w->type == GGUF_TENSOR_Q5_1;
    float d[QUANT_PACK_ROWS], m[QUANT_PACK_ROWS];
    __m512i v[QUANT_PACK_ROWS];

    for (size_t k = 0; k < nb; k++) {
        uint8_t *p = pack + (g * nb + k) * QUANT_PACK_BYTES;
        for (size_t i = 0; i < QUANT_PACK_ROWS; i++) {
            size_t r = r0 + g * QUANT_PACK_ROWS + i;
            const uint8_t *b = w->data + r * w->row_bytes + k * bs;
            v[i] = r < r1 ? block_v512(w->type, b) : _mm512_setzero_si512();
            d[i] = r < r1 ? quant_f16_to_f32(*(const uint16_t *)b) : 0.0f;
            m[i] = r < r1 && with_min ? quant_f16_to_f32(*(const uint16_t *)(b + 2)) : 0.0f;
        }
        transpose16(v);
        for (int c = 0; c < 16; c++)
            _mm512_store_si512(p + 64 * c, v[c]);
        memcpy(p + 1024, d, sizeof(d));
        memcpy(p + 1088, m, sizeof(m));
    }
}

/* Pack a tile with the SIMD packer where it has the type, else with the reference. */
static void pack_tile(enum quant_isa isa, const struct quant_mat *w, size_t r0, size_t r1,
                      size_t n_groups, uint8_t *pack)
{
    enum gguf_tensor_type t = w->type;

    if (isa == QUANT_ISA_SCALAR || t == GGUF_TENSOR_Q4_K || t == GGUF_TENSOR_Q5_K ||
        t == GGUF_TENSOR_Q6_K) {
        quant_pack_rows(w, r0, r1, n_groups, pack);
        return;
    }
    for (size_t g = 0; g < n_groups; g++)
        pack_group_avx512(w, r0, r1, g, pack);
}

/* ---- VNNI micro-kernel: 32 rows (two packed groups) × mt tokens ---- */

static int32_t load32(const int16_t *p)
{
    int32_t v;

    memcpy(&v, p, 4);
    return v;
}

struct tile_args {
    const uint8_t *pack; /* the first of two groups; the second follows after stride blocks */
    size_t nb;           /* blocks of 32 columns used (a->n / 32) */
    size_t stride;       /* blocks per group in the pack (>= nb) */
    const struct quant_q16 *a;
    size_t t0;
    float *y; /* row t0, column of the first group */
    size_t ldy;
    unsigned valid[2]; /* rows of each group to store (0..16) */
};

/* f + cvt(i) · (d · dx) + m · sx: a block's int32 sums, scaled, into the fp32 sums. */
TARGET_VNNI static INLINE __m512 scale_block(__m512 f, __m512i i, const uint8_t *p, float dx,
                                             float sx, const bool with_min)
{
    __m512 d = _mm512_mul_ps(_mm512_load_ps(p + 1024), _mm512_set1_ps(dx));

    f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), d, f);
    if (with_min)
        f = _mm512_fmadd_ps(_mm512_load_ps(p + 1088), _mm512_set1_ps(sx), f);
    return f;
}

TARGET_VNNI static INLINE void tile_vnni(const struct tile_args *g, const int mt,
                                         const bool with_min)
{
    const uint8_t *p0 = g->pack, *p1 = g->pack + g->stride * QUANT_PACK_BYTES;
    const int16_t *xq = g->a->q + g->t0 * g->a->n;
    const float *xd = g->a->d + g->t0 * g->nb, *xs = g->a->s + g->t0 * g->nb;
    size_t n = g->a->n;
    __m512 f0[MT], f1[MT];

#pragma GCC unroll 8
    for (int t = 0; t < mt; t++)
        f0[t] = f1[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < g->nb; b++, p0 += QUANT_PACK_BYTES, p1 += QUANT_PACK_BYTES) {
        __m512i i0[MT], i1[MT];
#pragma GCC unroll 8
        for (int t = 0; t < mt; t++)
            i0[t] = i1[t] = _mm512_setzero_si512();
        for (int c = 0; c < 16; c++) {
            __m512i w0 = _mm512_load_si512(p0 + 64 * c), w1 = _mm512_load_si512(p1 + 64 * c);
#pragma GCC unroll 8
            for (int t = 0; t < mt; t++) {
                __m512i xb = _mm512_set1_epi32(load32(xq + t * n + 32 * b + 2 * c));
                i0[t] = _mm512_dpwssd_epi32(i0[t], w0, xb);
                i1[t] = _mm512_dpwssd_epi32(i1[t], w1, xb);
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < mt; t++) {
            float dx = xd[t * g->nb + b], sx = xs[t * g->nb + b];
            f0[t] = scale_block(f0[t], i0[t], p0, dx, sx, with_min);
            f1[t] = scale_block(f1[t], i1[t], p1, dx, sx, with_min);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < mt; t++) {
        _mm512_mask_storeu_ps(g->y + t * g->ldy, (__mmask16)((1u << g->valid[0]) - 1), f0[t]);
        _mm512_mask_storeu_ps(g->y + t * g->ldy + 16, (__mmask16)((1u << g->valid[1]) - 1), f1[t]);
    }
}

/* The instances: MT tokens or one, with or without the minimum term. */
TARGET_VNNI static void tile_full_min(const struct tile_args *g)
{
    tile_vnni(g, MT, true);
}

TARGET_VNNI static void tile_one_min(const struct tile_args *g)
{
    tile_vnni(g, 1, true);
}

TARGET_VNNI static void tile_full(const struct tile_args *g)
{
    tile_vnni(g, MT, false);
}

TARGET_VNNI static void tile_one(const struct tile_args *g)
{
    tile_vnni(g, 1, false);
}

/* ---- driver ---- */

bool quant_matmat_q16_supports(enum quant_isa isa, enum gguf_tensor_type type)
{
    if (isa != QUANT_ISA_SCALAR && isa != QUANT_ISA_VNNI)
        return false;
    switch (type) {
    case GGUF_TENSOR_Q4_0:
    case GGUF_TENSOR_Q4_1:
    case GGUF_TENSOR_Q5_0:
    case GGUF_TENSOR_Q5_1:
    case GGUF_TENSOR_Q8_0:
    case GGUF_TENSOR_Q4_K:
    case GGUF_TENSOR_Q5_K:
    case GGUF_TENSOR_Q6_K:
        return true;
    default:
        return false;
    }
}

int quant_matmat_q16_qmax(enum gguf_tensor_type type)
{
    return type == GGUF_TENSOR_Q6_K ? QUANT_Q16_MAX / 2 : QUANT_Q16_MAX;
}

/* Rows of a group starting at row r of a tile of n_rows to store (0..16). */
static unsigned clamp16(size_t n_rows, size_t r)
{
    return r >= n_rows ? 0 : n_rows - r >= 16 ? 16 : (unsigned)(n_rows - r);
}

/*
 * All tokens of a against the first a->n columns of a packed tile of n_rows rows (n_groups
 * groups, even; stride blocks per group); with_min: whether the tile has minimums (m != 0).
 */
static void run_tile(enum quant_isa isa, const uint8_t *pack, size_t n_groups, size_t stride,
                     size_t n_rows, bool with_min, const struct quant_q16 *a, float *y, size_t ldy)
{
    size_t nb = a->n / QUANT_BLOCK;
    struct tile_args g = { .nb = nb, .stride = stride, .a = a, .ldy = ldy };
    void (*full_fn)(const struct tile_args *) = with_min ? tile_full_min : tile_full;
    void (*one_fn)(const struct tile_args *) = with_min ? tile_one_min : tile_one;

    if (isa == QUANT_ISA_SCALAR) {
        quant_tile_ref(pack, n_rows, stride, a, 0, a->n_tok, y, ldy);
        return;
    }
    for (g.t0 = 0; g.t0 < a->n_tok; g.t0 += g.t0 + MT <= a->n_tok ? MT : 1) {
        bool full = g.t0 + MT <= a->n_tok;
        for (size_t k = 0; k < n_groups; k += 2) {
            g.pack = pack + k * stride * QUANT_PACK_BYTES;
            g.y = y + g.t0 * ldy + k * QUANT_PACK_ROWS;
            g.valid[0] = clamp16(n_rows, k * QUANT_PACK_ROWS);
            g.valid[1] = clamp16(n_rows, (k + 1) * QUANT_PACK_ROWS);
            if (full)
                full_fn(&g);
            else
                one_fn(&g);
        }
    }
}

/* Rows per tile: at most QUANT_TILE_ROWS, a multiple of 32, tiles a multiple of n_threads. */
static size_t tile_rows(size_t rows, int n_threads)
{
    size_t n_tiles = (rows + QUANT_TILE_ROWS - 1) / QUANT_TILE_ROWS, tile;

    n_tiles = (n_tiles + (size_t)n_threads - 1) / (size_t)n_threads * (size_t)n_threads;
    tile = (rows + n_tiles - 1) / n_tiles;
    return (tile + 31) / 32 * 32;
}

static bool has_min(enum gguf_tensor_type t)
{
    return t == GGUF_TENSOR_Q4_1 || t == GGUF_TENSOR_Q5_1 || t == GGUF_TENSOR_Q4_K ||
           t == GGUF_TENSOR_Q5_K;
}

/* Rows [r0, r1) of w against a into y (row stride ldy), on the calling thread. */
static void matmat_tile(enum quant_isa isa, const struct quant_mat *w, size_t r0, size_t r1,
                        const struct quant_q16 *a, float *y, size_t ldy, float *tmp)
{
    size_t n_groups = (r1 - r0 + 31) / 32 * 2;
    uintptr_t p = (uintptr_t)(tmp + (size_t)omp_get_thread_num() * QUANT_TILE_ROWS * w->n);
    uint8_t *pack = (uint8_t *)((p + 63) & ~(uintptr_t)63);

    assert(w->n == a->n && quant_matmat_q16_supports(isa, w->type));
    assert(a->qmax <= quant_matmat_q16_qmax(w->type));
    pack_tile(isa, w, r0, r1, n_groups, pack);
    run_tile(isa, pack, n_groups, w->n / QUANT_BLOCK, r1 - r0, has_min(w->type), a, y + r0, ldy);
}

void quant_matmat_q16(enum quant_isa isa, const struct quant_mat *w, const struct quant_q16 *a,
                      float *y, size_t ldy, float *tmp, int n_threads)
{
    size_t tile = tile_rows(w->rows, n_threads);

#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
    for (size_t r0 = 0; r0 < w->rows; r0 += tile)
        matmat_tile(isa, w, r0, r0 + tile < w->rows ? r0 + tile : w->rows, a, y, ldy, tmp);
}

/* Tile it of the matrices w[0..n_mats) with tile[k] rows each: the matrix and the rows. */
static size_t tile_at(const struct quant_mat *w, const size_t *tile, size_t it, size_t *r0,
                      size_t *r1)
{
    size_t k = 0;

    while (it >= (w[k].rows + tile[k] - 1) / tile[k]) {
        it -= (w[k].rows + tile[k] - 1) / tile[k];
        k++;
    }
    *r0 = it * tile[k];
    *r1 = *r0 + tile[k] < w[k].rows ? *r0 + tile[k] : w[k].rows;
    return k;
}

void quant_linear_q16(enum quant_isa isa, const struct quant_mat *w, size_t n_mats, const float *x,
                      size_t ldx, size_t n_tok, struct quant_q16 *a, float *const *y, float *tmp,
                      int n_threads)
{
    size_t tile[QUANT_LINEAR_MAX], n_items = 0;

    assert(n_mats <= QUANT_LINEAR_MAX && w[0].n % QUANT_BLOCK == 0 && n_tok * w[0].n <= a->cap);
    for (size_t k = 0; k < n_mats; k++) {
        tile[k] = tile_rows(w[k].rows, n_threads);
        n_items += (w[k].rows + tile[k] - 1) / tile[k];
    }
    a->n = w[0].n;
    a->n_tok = n_tok;
#pragma omp parallel num_threads(n_threads)
    {
#pragma omp for schedule(static)
        for (size_t t = 0; t < n_tok; t++)
            quantize_token(isa, a, x, ldx, t);
#pragma omp for schedule(dynamic, 1)
        for (size_t it = 0; it < n_items; it++) {
            size_t r0, r1, k = tile_at(w, tile, it, &r0, &r1);
            matmat_tile(isa, &w[k], r0, r1, a, y[k], w[k].rows, tmp);
        }
    }
}

/* ---- packed fp32 operands (attention) ---- */

size_t quant_pack_size(size_t n_rows, size_t n_cols)
{
    return (n_rows + 31) / 32 * 2 * ((n_cols + 31) / 32) * QUANT_PACK_BYTES;
}

/* Block k of row r (zero past n_rows / n_cols) quantized into p's lane i: the reference. */
static void pack_f32_block(const struct quant_f32_src *m, size_t r, size_t k, uint8_t *p, size_t i)
{
    float x[32], amax = 0.0f, id, d;

    for (size_t j = 0; j < 32; j++) {
        size_t c = 32 * k + j;
        x[j] = 0.0f;
        if (r < m->n_rows && c < m->n_cols)
            x[j] = m->data[r * m->rs + c * m->cs] - (m->sub ? m->sub[c] : 0.0f);
        amax = fmaxf(amax, fabsf(x[j]));
    }
    id = amax > 0.0f ? (float)m->vmax / amax : 0.0f;
    d = m->scale * amax / (float)m->vmax;
    for (int c = 0; c < 16; c++) {
        int16_t v[2] = { (int16_t)nearbyintf(x[2 * c] * id),
                         (int16_t)nearbyintf(x[2 * c + 1] * id) };
        memcpy(p + 64 * c + 4 * i, v, 4);
    }
    memcpy(p + 1024 + 4 * i, &d, 4);
    memset(p + 1088 + 4 * i, 0, 4);
}

/* Row r's block k minus sub, quantized: 32 int16 values and the scale. */
TARGET_AVX512 static INLINE __m512i row_block(const struct quant_f32_src *m, size_t r, size_t k,
                                              float *d)
{
    const float *x = m->data + r * m->rs + 32 * k;
    __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);

    if (m->sub) {
        x0 = _mm512_sub_ps(x0, _mm512_loadu_ps(m->sub + 32 * k));
        x1 = _mm512_sub_ps(x1, _mm512_loadu_ps(m->sub + 32 * k + 16));
    }
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    __m512 id = _mm512_set1_ps(amax > 0.0f ? (float)m->vmax / amax : 0.0f);
    __m256i lo = _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(x0, id)));
    __m256i hi = _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(x1, id)));
    *d = m->scale * amax / (float)m->vmax;
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* Rows along lanes (the keys: cs == 1, n_cols % 32 == 0): quantize, then transpose. */
TARGET_AVX512 static void pack_rows_f32(const struct quant_f32_src *m, size_t nb, size_t g,
                                        uint8_t *pack)
{
    for (size_t k = 0; k < nb; k++) {
        uint8_t *p = pack + (g * nb + k) * QUANT_PACK_BYTES;
        float d[QUANT_PACK_ROWS];
        __m512i v[QUANT_PACK_ROWS];
        for (size_t i = 0; i < QUANT_PACK_ROWS; i++) {
            size_t r = g * QUANT_PACK_ROWS + i;
            d[i] = 0.0f;
            v[i] = r < m->n_rows ? row_block(m, r, k, &d[i]) : _mm512_setzero_si512();
        }
        transpose16(v);
        for (int c = 0; c < 16; c++)
            _mm512_store_si512(p + 64 * c, v[c]);
        memcpy(p + 1024, d, sizeof(d));
        memset(p + 1088, 0, 64);
    }
}

/* Columns along lanes (the values: rs == 1, n_rows % 32 == 0): lanes already hold rows. */
TARGET_AVX512 static void pack_cols_f32(const struct quant_f32_src *m, size_t nb, size_t g,
                                        uint8_t *pack)
{
    __m512 vmax = _mm512_set1_ps((float)m->vmax);

    for (size_t k = 0; k < nb; k++) {
        uint8_t *p = pack + (g * nb + k) * QUANT_PACK_BYTES;
        __m512 x[32], amax = _mm512_setzero_ps();
        for (size_t j = 0; j < 32; j++) {
            size_t c = 32 * k + j;
            x[j] = _mm512_setzero_ps();
            if (c < m->n_cols)
                x[j] = _mm512_sub_ps(_mm512_loadu_ps(m->data + c * m->cs + g * QUANT_PACK_ROWS),
                                     _mm512_set1_ps(m->sub ? m->sub[c] : 0.0f));
            amax = _mm512_max_ps(amax, _mm512_abs_ps(x[j]));
        }
        __mmask16 nz = _mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_GT_OQ);
        __m512 id = _mm512_maskz_div_ps(nz, vmax, amax);
        for (int c = 0; c < 16; c++) {
            __m512i lo = _mm512_cvtps_epi32(_mm512_mul_ps(x[2 * c], id));
            __m512i hi = _mm512_cvtps_epi32(_mm512_mul_ps(x[2 * c + 1], id));
            lo = _mm512_and_si512(lo, _mm512_set1_epi32(0xffff));
            _mm512_store_si512(p + 64 * c, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
        _mm512_store_ps(p + 1024,
                        _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(m->scale), amax), vmax));
        _mm512_store_ps(p + 1088, _mm512_setzero_ps());
    }
}

void quant_pack_f32(enum quant_isa isa, const struct quant_f32_src *m, uint8_t *pack)
{
    size_t nb = (m->n_cols + 31) / 32, n_groups = (m->n_rows + 31) / 32 * 2;

    for (size_t g = 0; g < n_groups; g++) {
        if (isa == QUANT_ISA_VNNI && m->cs == 1 && m->n_cols % 32 == 0) {
            pack_rows_f32(m, nb, g, pack);
        } else if (isa == QUANT_ISA_VNNI && m->rs == 1 && m->n_rows % 32 == 0) {
            pack_cols_f32(m, nb, g, pack);
        } else {
            for (size_t k = 0; k < nb; k++)
                for (size_t i = 0; i < QUANT_PACK_ROWS; i++)
                    pack_f32_block(m, g * QUANT_PACK_ROWS + i, k,
                                   pack + (g * nb + k) * QUANT_PACK_BYTES, i);
        }
    }
}

void quant_matmat_packed(enum quant_isa isa, const uint8_t *pack, size_t n_rows, size_t n_cols,
                         const struct quant_q16 *a, float *y, size_t ldy)
{
    size_t stride = (n_cols + 31) / 32;

    assert(isa == QUANT_ISA_SCALAR || isa == QUANT_ISA_VNNI);
    assert(a->n % QUANT_BLOCK == 0 && a->n / QUANT_BLOCK <= stride);
    run_tile(isa, pack, (n_rows + 31) / 32 * 2, stride, n_rows, false, a, y, ldy);
}

/* ---- fp32 path ---- */

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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, (int)(r1 - r0), (int)w->n,
                    1.0f, x, (int)ldx, b, (int)w->n, 0.0f, y + r0, (int)ldy);
    }
}
