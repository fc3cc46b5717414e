/*
 * tests/test_matmat.c - the integer matrix-matrix product of prefill
 * (generation/matmat.c): 16-bit activation quantization, and quant_matmat_q16
 * at every instruction set level this CPU has (the scalar reference forced
 * too) against two independent references computed here in double:
 *   exact: the dequantized weights times the dequantized 16-bit activations,
 *          which the kernels must match up to fp32 rounding;
 *   fp32:  quant_matmat (dequantized weights, sgemm on the unquantized
 *          activations), which they must match within the bound that 16-bit
 *          rounding allows: sum over blocks of (d_x / 2) · sum |w|.
 * Random blocks of every supported type and tensors of the default model,
 * with token counts that are not multiples of the micro-kernel's and row
 * counts that are not multiples of the tile's; the attention operands
 * (packed from fp32); and whole prefills of the default model on the
 * integer path against the fp32 path.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generation/generation.h"
#include "generation/gguf.h"
#include "generation/quant.h"
#include "tests/testutil.h"

static uint64_t lcg_state = 7;

static float frand(void) /* uniform in [-1, 1) */
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(lcg_state >> 40) / (float)(1 << 23) - 1.0f;
}

static void set_f16(uint8_t *p, float f)
{
    uint16_t h = quant_f32_to_f16(f);
    memcpy(p, &h, 2);
}

/* Random row bytes of type t with sane scales (offsets of the f16 scale and minimum). */
static void random_row(enum gguf_tensor_type t, uint8_t *row, size_t n)
{
    size_t bs = gguf_type_size(t), nb = n / gguf_type_block(t);
    bool with_min = t == GGUF_TENSOR_Q4_1 || t == GGUF_TENSOR_Q5_1 || t == GGUF_TENSOR_Q4_K ||
                    t == GGUF_TENSOR_Q5_K;

    for (size_t i = 0; i < nb * bs; i++)
        row[i] = (uint8_t)(frand() * 128 + 128);
    for (size_t b = 0; b < nb; b++) {
        set_f16(row + b * bs + (t == GGUF_TENSOR_Q6_K ? 208 : 0), 0.01f + 0.002f * frand());
        if (with_min)
            set_f16(row + b * bs + 2, 0.03f * frand());
    }
}

/* Activations: mostly small, some outliers, token 1's first block all zero. */
static void random_acts(float *x, size_t n_tok, size_t n)
{
    for (size_t i = 0; i < n_tok * n; i++)
        x[i] = frand() * (i % 97 == 3 ? 20.0f : 1.5f);
    if (n_tok > 1)
        memset(x + n, 0, 32 * sizeof(float));
}

/*
 * Check y (n_tok × w.rows) from quant_matmat_q16 against the exact and the fp32 references.
 * wf: the dequantized weights; a: the quantized activations of x.
 */
static void check_result(const char *what, const struct quant_mat *w, const float *wf,
                         const float *x, const struct quant_q16 *a, const float *y,
                         const float *y32)
{
    size_t n = w->n, nb = n / 32;

    for (size_t t = 0; t < a->n_tok; t++) {
        for (size_t r = 0; r < w->rows; r++) {
            const float *wr = wf + r * n;
            double exact = 0, mag = 0, bound = 0, fp = 0;
            for (size_t j = 0; j < n; j++) {
                double xq = (double)a->d[t * nb + j / 32] * a->q[t * n + j];
                exact += wr[j] * xq;
                fp += (double)wr[j] * x[t * n + j];
                mag += fabs(wr[j] * xq) + fabs((double)wr[j] * x[t * n + j]);
                bound += fabs(wr[j]) * a->d[t * nb + j / 32] / 2;
            }
            double got = y[t * w->rows + r];
            ck_assert_msg(fabs(got - exact) <= 2e-6 * mag + 1e-6, "%s t %zu r %zu: %.9g vs %.9g",
                          what, t, r, got, exact);
            ck_assert_msg(fabs(got - fp) <= bound + 2e-6 * mag + 1e-6,
                          "%s t %zu r %zu: %.9g vs fp32 %.9g (bound %g)", what, t, r, got, fp,
                          bound);
            ck_assert_msg(fabs(y32[t * w->rows + r] - fp) <= 1e-5 * mag + 1e-6,
                          "%s: fp32 path t %zu r %zu", what, t, r);
        }
    }
}

/* quant_matmat_q16 at every isa (and 1-3 threads) on w against both references. */
static void check_matmat(const char *what, const struct quant_mat *w, size_t n_tok)
{
    size_t n = w->n;
    float *wf = xmalloc_array(w->rows * n, sizeof(float));
    float *x = xmalloc_array(n_tok * n, sizeof(float));
    float *y = xmalloc_array(n_tok * w->rows, sizeof(float));
    float *y32 = xmalloc_array(n_tok * w->rows, sizeof(float));
    float *tmp = xmalloc_array(3 * QUANT_TILE_ROWS * n, sizeof(float));
    struct quant_q16 a;
    char name[128];

    for (size_t r = 0; r < w->rows; r++)
        quant_dequant_row(w->type, w->data + r * w->row_bytes, wf + r * n, n);
    random_acts(x, n_tok, n);
    quant_matmat(w, x, n, n_tok, y32, w->rows, tmp, 2);
    quant_q16_init(&a, n_tok, n, QUANT_Q16_MAX);
    for (int isa = QUANT_ISA_SCALAR; isa <= (int)quant_isa_best(); isa++) {
        if (!quant_matmat_q16_supports(isa, w->type))
            continue;
        a.qmax = quant_matmat_q16_qmax(w->type);
        quant_q16_quantize(isa, &a, x, n, n_tok, n, 2);
        memset(y, 0xff, n_tok * w->rows * sizeof(float)); /* NaN: every output must be written */
        quant_matmat_q16(isa, w, &a, y, w->rows, tmp, 1 + isa % 3);
        snprintf(name, sizeof(name), "%s %s (%zu x %zu, %zu tokens)", what, quant_isa_name(isa),
                 w->rows, n, n_tok);
        check_result(name, w, wf, x, &a, y, y32);
    }
    quant_q16_release(&a);
    free(wf), free(x), free(y), free(y32), free(tmp);
}

/* Every isa quantizes to the same bytes as the scalar reference, within half a step. */
START_TEST(test_q16_quantize)
{
    enum { T = 5, N = 256 };
    static float x[T * N];
    struct quant_q16 a, ref;

    random_acts(x, T, N);
    quant_q16_init(&ref, T, N, QUANT_Q16_MAX);
    quant_q16_init(&a, T, N, QUANT_Q16_MAX);
    quant_q16_quantize(QUANT_ISA_SCALAR, &ref, x, N, T, N, 1);
    for (size_t t = 0; t < T; t++) {
        for (size_t b = 0; b < N / 32; b++) {
            float amax = 0, d = ref.d[t * N / 32 + b];
            int sum = 0;
            for (size_t j = 32 * b; j < 32 * b + 32; j++) {
                amax = fmaxf(amax, fabsf(x[t * N + j]));
                sum += ref.q[t * N + j];
                ck_assert_float_le(fabsf(d * ref.q[t * N + j] - x[t * N + j]), d * 0.51f);
            }
            ck_assert_float_eq(d, amax / 32767);
            ck_assert_float_eq_tol(ref.s[t * N / 32 + b], d * (float)sum, 1e-6f * (1 + fabsf(d)));
        }
    }
    ck_assert_float_gt(ref.d[0], 0);      /* token 0, block 0 */
    ck_assert_float_eq(ref.d[N / 32], 0); /* token 1, block 0: all zero */
    for (int isa = QUANT_ISA_AVX2; isa <= (int)quant_isa_best(); isa++) {
        quant_q16_quantize(isa, &a, x, N, T, N, 2);
        ck_assert_mem_eq(a.q, ref.q, T * N);
        ck_assert_mem_eq(a.d, ref.d, T * N / 32 * sizeof(float));
        ck_assert_mem_eq(a.s, ref.s, T * N / 32 * sizeof(float));
    }
    quant_q16_release(&a);
    quant_q16_release(&ref);
}
END_TEST

/* Random blocks of each supported type, odd shapes. */
START_TEST(test_matmat_q16_random)
{
    const enum gguf_tensor_type types[] = { GGUF_TENSOR_Q4_0, GGUF_TENSOR_Q4_1, GGUF_TENSOR_Q5_0,
                                            GGUF_TENSOR_Q5_1, GGUF_TENSOR_Q8_0, GGUF_TENSOR_Q4_K,
                                            GGUF_TENSOR_Q5_K, GGUF_TENSOR_Q6_K };
    static const size_t shapes[][3] = {
        { 77, 256, 7 }, { 16, 512, 2 }, { 200, 256, 13 }, { 5, 256, 1 }
    };

    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            size_t rows = shapes[s][0], n = shapes[s][1];
            size_t rb = n / gguf_type_block(types[k]) * gguf_type_size(types[k]);
            uint8_t *data = xmalloc(rows * rb);
            for (size_t r = 0; r < rows; r++)
                random_row(types[k], data + r * rb, n);
            struct quant_mat w = { types[k], data, n, rows, rb };
            check_matmat(gguf_type_name(types[k]), &w, shapes[s][2]);
            free(data);
        }
    }
}
END_TEST

/*
 * The largest sums the int32 lanes must hold: Q6_K rows whose values are all 4096 (q = 0,
 * scales -128) against activations at their full range, and Q8_0 rows of -128.
 */
START_TEST(test_matmat_q16_extremes)
{
    enum { N = 256, T = 2 };
    static const enum gguf_tensor_type types[] = { GGUF_TENSOR_Q6_K, GGUF_TENSOR_Q8_0 };
    static float x[T * N], y[T * 2], tmp[QUANT_TILE_ROWS * N];
    static uint8_t data[2 * 272]; /* two rows of Q8_0 (Q6_K: 2 × 210) */

    for (size_t i = 0; i < T * N; i++)
        x[i] = i < N ? 1.0f : -3.0f;
    for (size_t k = 0; k < 2; k++) {
        enum gguf_tensor_type t = types[k];
        size_t rb = N / gguf_type_block(t) * gguf_type_size(t), bs = gguf_type_size(t);
        memset(data, t == GGUF_TENSOR_Q6_K ? 0 : 0x80, sizeof(data));
        for (size_t b = 0; b < 2 * rb / bs; b++) {
            if (t == GGUF_TENSOR_Q6_K)
                memset(data + b * bs + 192, 0x80, 16);
            set_f16(data + b * bs + (t == GGUF_TENSOR_Q6_K ? 208 : 0), 0.5f);
        }
        struct quant_mat w = { t, data, N, 2, rb };
        float want = (t == GGUF_TENSOR_Q6_K ? 4096.0f : -128.0f) * 0.5f * N;
        for (int isa = QUANT_ISA_SCALAR; isa <= (int)quant_isa_best(); isa++) {
            struct quant_q16 a;
            if (!quant_matmat_q16_supports(isa, t))
                continue;
            quant_q16_init(&a, T, N, quant_matmat_q16_qmax(t));
            quant_q16_quantize(isa, &a, x, N, T, N, 1);
            quant_matmat_q16(isa, &w, &a, y, 2, tmp, 1);
            for (int i = 0; i < 2; i++) {
                ck_assert_float_eq_tol(y[i], want, 1e-5f * fabsf(want));
                ck_assert_float_eq_tol(y[2 + i], -3.0f * want, 3e-5f * fabsf(want));
            }
            quant_q16_release(&a);
        }
    }
}
END_TEST

/* quant_linear_q16 (one parallel region) gives the bytes of the separate calls. */
START_TEST(test_linear_q16)
{
    enum { N = 256, T = 11 };
    static const size_t rows[3] = { 77, 32, 130 };
    static const enum gguf_tensor_type types[3] = { GGUF_TENSOR_Q4_1, GGUF_TENSOR_Q6_K,
                                                    GGUF_TENSOR_Q8_0 };
    static float x[T * 300], tmp[3 * QUANT_TILE_ROWS * N], y[3][T * 130], want[T * 130];
    struct quant_mat w[3];
    float *const ys[3] = { y[0], y[1], y[2] };
    struct quant_q16 a;

    if (quant_isa_best() != QUANT_ISA_VNNI)
        return;
    random_acts(x, T, 300);
    for (int k = 0; k < 3; k++) {
        size_t rb = N / gguf_type_block(types[k]) * gguf_type_size(types[k]);
        uint8_t *data = xmalloc(rows[k] * rb);
        for (size_t r = 0; r < rows[k]; r++)
            random_row(types[k], data + r * rb, N);
        w[k] = (struct quant_mat){ types[k], data, N, rows[k], rb };
    }
    quant_q16_init(&a, T, N, quant_matmat_q16_qmax(GGUF_TENSOR_Q6_K));
    for (int nt = 1; nt <= 3; nt++) {
        quant_linear_q16(QUANT_ISA_VNNI, w, 3, x, 300, T, &a, ys, tmp, nt);
        for (int k = 0; k < 3; k++) {
            quant_matmat_q16(QUANT_ISA_VNNI, &w[k], &a, want, rows[k], tmp, 1);
            ck_assert_mem_eq(y[k], want, T * rows[k] * sizeof(float));
        }
        quant_q16_quantize(QUANT_ISA_VNNI, &a, x, 300, T, N, 1);
        quant_matmat_q16(QUANT_ISA_VNNI, &w[0], &a, want, rows[0], tmp, 1);
        ck_assert_mem_eq(y[0], want, T * rows[0] * sizeof(float));
    }
    quant_q16_release(&a);
    for (int k = 0; k < 3; k++)
        free((void *)w[k].data);
}
END_TEST

/* Which types each level takes; the rest keep the fp32 path. */
START_TEST(test_matmat_q16_supports)
{
    const enum gguf_tensor_type yes[] = { GGUF_TENSOR_Q4_0, GGUF_TENSOR_Q4_1, GGUF_TENSOR_Q5_0,
                                          GGUF_TENSOR_Q5_1, GGUF_TENSOR_Q8_0, GGUF_TENSOR_Q4_K,
                                          GGUF_TENSOR_Q5_K, GGUF_TENSOR_Q6_K };
    const enum gguf_tensor_type no[] = { GGUF_TENSOR_F32, GGUF_TENSOR_F16, GGUF_TENSOR_BF16 };

    for (size_t k = 0; k < sizeof(yes) / sizeof(yes[0]); k++) {
        ck_assert(quant_matmat_q16_supports(QUANT_ISA_SCALAR, yes[k]));
        ck_assert(quant_matmat_q16_supports(QUANT_ISA_VNNI, yes[k]));
        ck_assert(!quant_matmat_q16_supports(QUANT_ISA_AVX2, yes[k]));
        ck_assert(!quant_matmat_q16_supports(QUANT_ISA_AVX512, yes[k]));
    }
    for (size_t k = 0; k < sizeof(no) / sizeof(no[0]); k++)
        for (int isa = QUANT_ISA_SCALAR; isa <= QUANT_ISA_VNNI; isa++)
            ck_assert(!quant_matmat_q16_supports(isa, no[k]));
    ck_assert_int_eq(quant_matmat_q16_qmax(GGUF_TENSOR_Q4_1), 32767);
    ck_assert_int_eq(quant_matmat_q16_qmax(GGUF_TENSOR_Q6_K), 16383);
}
END_TEST

/* Element (r, c) of a packed matrix, dequantized (d · v). */
static double packed_at(const uint8_t *pack, size_t nb, size_t r, size_t c)
{
    const uint8_t *p = pack + ((r / 16) * nb + c / 32) * QUANT_PACK_BYTES;
    size_t i = r % 16, j = c % 32;
    int16_t v;
    float d;

    memcpy(&v, p + 64 * (j / 2) + 4 * i + 2 * (j % 2), 2);
    memcpy(&d, p + 1024 + 4 * i, 4);
    return (double)d * v;
}

/* quant_matmat_packed with 13-bit activations against the dequantized operands. */
static void check_packed_product(const uint8_t *pack, size_t rows, size_t cols)
{
    enum { T = 9 };
    size_t nb = (cols + 31) / 32, n = nb * 32;
    float *x = xmalloc_array(T * n, sizeof(float)), *y = xmalloc_array(T * rows, sizeof(float));
    struct quant_q16 a;

    quant_q16_init(&a, T, n, 4095);
    for (size_t i = 0; i < T * n; i++)
        x[i] = i % n < cols ? frand() : 0.0f;
    for (int isa = QUANT_ISA_SCALAR; isa <= (int)quant_isa_best(); isa++) {
        if (isa != QUANT_ISA_SCALAR && isa != QUANT_ISA_VNNI)
            continue;
        quant_q16_quantize(isa, &a, x, n, T, n, 1);
        quant_matmat_packed(isa, pack, rows, cols, &a, y, rows);
        for (size_t t = 0; t < T; t++) {
            for (size_t r = 0; r < rows; r++) {
                double e = 0, mag = 0;
                for (size_t c = 0; c < cols; c++) {
                    double w = packed_at(pack, nb, r, c), xq = (double)a.d[t * nb + c / 32];
                    e += w * xq * a.q[t * n + c];
                    mag += fabs(w * xq * a.q[t * n + c]);
                }
                ck_assert_double_le(fabs(y[t * rows + r] - e), 2e-6 * mag + 1e-7);
            }
        }
    }
    quant_q16_release(&a);
    free(x), free(y);
}

/*
 * Attention operands: keys less a per-column mean (rows along lanes) and transposed values
 * (columns along lanes), packed from fp32 by the SIMD packers byte for byte as by the scalar
 * reference, within half a step of the source, and multiplied with 13-bit activations exactly
 * as dequantized.
 */
START_TEST(test_pack_f32)
{
    enum { KV = 192, HD = 64, NK = 77 };
    static float src[NK * KV], sub[HD];

    for (size_t i = 0; i < NK * KV; i++)
        src[i] = frand() * (i % 61 == 5 ? 9.0f : 1.0f);
    for (size_t i = 0; i < HD; i++)
        sub[i] = 0.3f * frand();
    for (int v = 0; v < 2; v++) {
        struct quant_f32_src op = { src + 64,    v ? 1 : KV,     v ? KV : 1, v ? HD : NK,
                                    v ? NK : HD, v ? NULL : sub, 0.5f,       8191 };
        size_t nb = (op.n_cols + 31) / 32, bytes = quant_pack_size(op.n_rows, op.n_cols);
        uint8_t *ref = aligned_alloc(64, bytes), *got = aligned_alloc(64, bytes);
        quant_pack_f32(QUANT_ISA_SCALAR, &op, ref);
        for (size_t r = 0; r < op.n_rows; r++) {
            for (size_t c = 0; c < op.n_cols; c++) {
                double want = 0.5 * (op.data[r * op.rs + c * op.cs] - (v ? 0 : sub[c]));
                ck_assert_double_le(fabs(packed_at(ref, nb, r, c) - want), 0.5 * 9.3 / 8191 * 0.51);
            }
        }
        if (quant_isa_best() == QUANT_ISA_VNNI) {
            memset(got, 0x5a, bytes);
            quant_pack_f32(QUANT_ISA_VNNI, &op, got);
            ck_assert_mem_eq(got, ref, bytes);
        }
        check_packed_product(ref, op.n_rows, op.n_cols);
        free(ref);
        free(got);
    }
}
END_TEST

static const char *model_path(void)
{
    static char path[4096];

    return test_model_path("smollm2-135m-instruct-q4_1.gguf", path, sizeof(path));
}

/* The default model on the CPU; RAG_ISA=avx512 selects the fp32 prefill path at open. */
static struct gen_model *open_model(const char *path, bool fp32)
{
    struct gen_model_opts o = { .n_ctx = 1024, .n_threads = 2, .device = GEN_DEVICE_CPU };
    struct gen_model *m = NULL;
    struct rag_err err = { 0 };

    if (fp32)
        setenv("RAG_ISA", "avx512", 1);
    ck_assert_msg(gen_model_open(&m, path, &o, &err) == 0, "%s", err.msg);
    unsetenv("RAG_ISA");
    return m;
}

/* Largest |a - b| over n, and whether the argmax agrees. */
static float logit_diff(const float *a, const float *b, size_t n, bool *same_top)
{
    size_t ia = 0, ib = 0;
    float d = 0;

    for (size_t i = 0; i < n; i++) {
        d = fmaxf(d, fabsf(a[i] - b[i]));
        ia = a[i] > a[ia] ? i : ia;
        ib = b[i] > b[ib] ? i : ib;
    }
    *same_top = ia == ib;
    return d;
}

/*
 * Whole prefills of the default model on the integer path against the fp32 path: 300 tokens
 * (several attention tiles, keys packed past the first tile), then 220 more at position 300
 * (a second step that attends to cached keys). Logits within 0.05 (measured 0.0094), same
 * argmax.
 */
START_TEST(test_prefill_q16_model)
{
    const char *path = model_path();
    struct gen_model *mi, *mf;
    struct rag_err err = { 0 };
    static int32_t tok[520];
    float *li, *lf;
    bool same;

    if (!path || quant_isa_best() != QUANT_ISA_VNNI)
        return;
    mi = open_model(path, false);
    mf = open_model(path, true);
    li = xmalloc_array(gen_model_info(mi)->n_vocab, sizeof(float));
    lf = xmalloc_array(gen_model_info(mi)->n_vocab, sizeof(float));
    for (size_t i = 0; i < 520; i++)
        tok[i] = (int32_t)((i * 7919 + 13) % 40000 + 100);
    for (int step = 0; step < 2; step++) {
        size_t pos = step ? 300 : 0, n = step ? 220 : 300;
        ck_assert_int_eq(gen_eval(mi, tok + pos, n, pos, li, &err), 0);
        ck_assert_int_eq(gen_eval(mf, tok + pos, n, pos, lf, &err), 0);
        float d = logit_diff(li, lf, gen_model_info(mi)->n_vocab, &same);
        ck_assert_msg(d <= 0.05f && same, "step %d: max logit difference %g", step, d);
    }
    free(li);
    free(lf);
    gen_model_close(mi);
    gen_model_close(mf);
}
END_TEST

/* Tensors of the default model (Q4_1 layers, the Q8_0 embedding), first max_rows rows. */
START_TEST(test_matmat_q16_model)
{
    static const struct {
        const char *name;
        size_t max_rows, n_tok;
    } cases[] = { { "blk.0.attn_q.weight", 576, 37 },
                  { "blk.0.attn_k.weight", 192, 9 },
                  { "blk.3.ffn_down.weight", 100, 21 },
                  { "blk.29.ffn_gate.weight", 1536, 4 },
                  { "token_embd.weight", 131, 6 } };
    const char *path = model_path();
    struct gguf *g;
    struct rag_err err = { 0 };

    if (!path)
        return;
    ck_assert_int_eq(gguf_open(&g, path, &err), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct gguf_tensor *t = gguf_find_tensor(g, cases[i].name);
        ck_assert_ptr_nonnull(t);
        size_t n = t->ne[0], rows = t->ne[1] < cases[i].max_rows ? t->ne[1] : cases[i].max_rows;
        struct quant_mat w = { t->type, t->data, n, rows, t->nbytes / t->ne[1] };
        ck_assert(quant_matmat_q16_supports(QUANT_ISA_SCALAR, t->type));
        check_matmat(cases[i].name, &w, cases[i].n_tok);
    }
    gguf_close(g);
}
END_TEST

static Suite *matmat_suite(void)
{
    Suite *s = suite_create("matmat");
    TCase *tc = tcase_create("q16");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_q16_quantize);
    tcase_add_test(tc, test_matmat_q16_supports);
    tcase_add_test(tc, test_matmat_q16_random);
    tcase_add_test(tc, test_matmat_q16_extremes);
    tcase_add_test(tc, test_linear_q16);
    tcase_add_test(tc, test_matmat_q16_model);
    tcase_add_test(tc, test_pack_f32);
    tcase_add_test(tc, test_prefill_q16_model);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(matmat_suite)
