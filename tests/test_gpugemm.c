/*
 * tests/test_gpugemm.c - gpu/: conversions between fp32, bf16 and fp16, the
 * GEMM (cuBLASLt) and the decode-step GEMVs, plain and with RMSNorm or
 * SwiGLU folded in, against a CPU reference in double precision on fresh
 * random inputs, and their argument checks (helpers: tests/gputest.h).
 *
 * The kernels take bf16 and fp16 inputs as the exact values they hold, so
 * only the kernel's own arithmetic and output rounding count:
 *   convert  exactly the host's round-to-nearest-even value (NaN stays NaN)
 *   gemm     1e-4 * sum_l |a w| + 1e-6 (fp32 accumulation over k terms), for
 *            a and w in bf16 and in fp16; a 16-bit output with bias or
 *            beta also half a step of A W^T and of the addend, which
 *            cuBLASLt may round before adding
 *   gemv     as gemm, and bitwise equal on a rerun; the fused variants
 *            against the rows gpu_rmsnorm / gpu_swiglu wrote, plus one step
 *            of the compute type at the row's largest |a w| twice (a last-bit
 *            difference of 1/rms may round an element the other way), or
 *            for one row against the exact unrounded x * gain / rms
 * plus half a step of the output type wherever it is 16-bit (gputest.h).
 * Without CUDA or without a device the suite exits 77 (SKIP).
 */
#include "gpu/gpu.h"

#include <math.h>
#include <string.h>

#include "tests/gputest.h"

/* ---- conversions ---- */

static const enum gpu_dtype all_types[] = { GPU_F32, GPU_BF16, GPU_F16 };

/* Random values plus ties, specials, fp16 subnormals and overflows. */
static float *convert_source(size_t n)
{
    static const float special[] = { 0.0f,      -0.0f,  1.0f,     -2.5f,       INFINITY,
                                     -INFINITY, NAN,    70000.0f, -65520.0f,   65504.0f,
                                     1e-6f,     -3e-8f, 1e-40f,   1.00390625f, 1.01171875f,
                                     2049.0f,   3.4e38f };
    float *x = random_floats(n, -100, 100);

    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]) && i < n; i++)
        x[i] = special[i];
    return x;
}

START_TEST(test_convert)
{
    size_t n = 10007, off = 0, bad = 0;
    float *x = convert_source(n);
    struct rag_err err = { 0 };
    struct gpu_buf src, dst;

    pool_alloc(2 * gpu_align(n * 4));
    src = carve_bytes(&off, n * 4);
    dst = carve_bytes(&off, n * 4);
    for (size_t s = 0; s < 3; s++) {
        enum gpu_dtype st = all_types[s];
        void *in = encode(st, x, n);

        put_bytes(&src, in, n * gpu_dtype_size(st));
        for (size_t d = 0; d < 3; d++) {
            enum gpu_dtype dt = all_types[d];
            void *out = xmalloc_array(n, gpu_dtype_size(dt));

            poison(&dst, n * 4);
            ck_assert_msg(gpu_convert(g, &src, st, &dst, dt, n, &err) == 0, "%s", err.msg);
            get_bytes(out, &dst, n * gpu_dtype_size(dt));
            for (size_t i = 0; i < n; i++)
                bad += !same_or_nan(decode_at(dt, out, i), round_to(dt, decode_at(st, in, i)));
            free(out);
        }
        free(in);
    }
    ck_assert_msg(bad == 0, "convert: %zu wrong (seed %llu)", bad, (unsigned long long)test_seed);
    free(x);
}
END_TEST

START_TEST(test_convert_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf a, b;

    pool_alloc(1024);
    a = (struct gpu_buf){ pool.ptr, 256 };
    b = (struct gpu_buf){ (char *)pool.ptr + 512, 100 };
    ck_assert_int_eq(gpu_convert(g, &a, GPU_F32, &b, GPU_F32, 26, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_convert: buffer 'dst' has 100 bytes, needs 104");
    ck_assert_int_eq(gpu_convert(g, &a, (enum gpu_dtype)7, &b, GPU_F32, 1, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_convert: unknown source type 7");
    b = (struct gpu_buf){ (char *)pool.ptr + 1, 100 };
    ck_assert_int_eq(gpu_convert(g, &a, GPU_F32, &b, GPU_BF16, 4, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_convert: buffer 'dst' is not 2-byte aligned");
    b = (struct gpu_buf){ (char *)pool.ptr + 128, 256 };
    ck_assert_int_eq(gpu_convert(g, &a, GPU_F32, &b, GPU_BF16, 40, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_convert: buffers 'src' and 'dst' overlap");
    ck_assert_int_eq(gpu_convert(g, &a, GPU_F32, &b, GPU_BF16, 0, &err), 0);
}
END_TEST

/* ---- GEMM ---- */

struct gemm_shape {
    size_t m, n, k;
    bool bias;
    float beta;
    enum gpu_dtype ab_type, c_type;
    size_t shift; /* bytes added to every pointer: misaligned views get their own plan */
};

/* Check c (m, n) against the double reference; returns the number wrong. */
static size_t gemm_check(const struct gemm_shape *s, const float *a, const float *w,
                         const float *bias, const float *c0, const void *got)
{
    size_t bad = 0;

    for (size_t i = 0; i < s->m; i++) {
        for (size_t j = 0; j < s->n; j++) {
            double ref = 0, mag = 0, add = (s->bias ? bias[j] : 0) + s->beta * c0[i * s->n + j];

            for (size_t l = 0; l < s->k; l++) {
                ref += (double)a[i * s->k + l] * w[j * s->k + l];
                mag += fabs((double)a[i * s->k + l] * w[j * s->k + l]);
            }
            /* 16-bit output: half a step of the result, and of the product when
             * something is added to it (cuBLASLt may round A W^T first) */
            double step = fabs(ref + add) + (add != 0 ? fabs(ref) + fabs(add) : 0);
            ref += add;
            mag += (s->bias ? fabs(bias[j]) : 0) + fabs(s->beta * c0[i * s->n + j]);
            double tol = 1e-4 * mag + 1e-6 + half_step(s->c_type, step);
            bad += !within(decode_at(s->c_type, got, i * s->n + j), ref, tol);
        }
    }
    return bad;
}

typedef int product_fn(struct gpu *g, const struct gpu_buf *a, const struct gpu_buf *w,
                       enum gpu_dtype ab_type, const struct gpu_buf *bias, struct gpu_buf *c,
                       enum gpu_dtype c_type, size_t m, size_t n, size_t k, float beta,
                       struct rag_err *err);

/* One product by fn (gpu_gemm or gpu_gemv) on fresh random data; c starts poisoned unless beta != 0. */
static void product_case(const struct gemm_shape *s, product_fn *fn)
{
    size_t cs = gpu_dtype_size(s->c_type), mn = s->m * s->n, off = 0;
    float *a = random_as(s->ab_type, s->m * s->k, -1, 1),
          *w = random_as(s->ab_type, s->n * s->k, -1, 1);
    float *bias = random_as(s->c_type, s->n, -1, 1), *c0 = random_as(s->c_type, mn, -1, 1);
    void *ea = encode(s->ab_type, a, s->m * s->k), *ew = encode(s->ab_type, w, s->n * s->k);
    void *eb = encode(s->c_type, bias, s->n), *ec = encode(s->c_type, c0, mn);
    unsigned char *got = xmalloc(mn * cs + 64);
    struct rag_err err = { 0 };
    struct gpu_buf ba, bw, bb, bc;

    pool_alloc(4 * GPU_ALIGN + gpu_align(s->m * s->k * 2) + gpu_align(s->n * s->k * 2) +
               gpu_align(s->n * cs) + gpu_align(mn * cs + 64));
    ba = carve_bytes(&off, s->m * s->k * 2 + s->shift);
    bw = carve_bytes(&off, s->n * s->k * 2 + s->shift);
    bb = carve_bytes(&off, s->n * cs + s->shift);
    bc = carve_bytes(&off, mn * cs + 64 + s->shift);
    poison(&bc, bc.bytes);
    ba.ptr = (char *)ba.ptr + s->shift;
    bw.ptr = (char *)bw.ptr + s->shift;
    bb.ptr = (char *)bb.ptr + s->shift;
    bc.ptr = (char *)bc.ptr + s->shift;
    put_bytes(&ba, ea, s->m * s->k * 2);
    put_bytes(&bw, ew, s->n * s->k * 2);
    put_bytes(&bb, eb, s->n * cs);
    if (s->beta != 0)
        put_bytes(&bc, ec, mn * cs);
    ck_assert_msg(fn(g, &ba, &bw, s->ab_type, s->bias ? &bb : NULL, &bc, s->c_type, s->m, s->n,
                     s->k, s->beta, &err) == 0,
                  "%s", err.msg);
    get_bytes(got, &bc, mn * cs + 64);
    size_t bad = gemm_check(s, a, w, bias, c0, got);
    if (fn == gpu_gemv && s->beta == 0) { /* a fixed order of sums: a rerun is bitwise equal */
        unsigned char *again = xmalloc(mn * cs + 64);

        ck_assert_msg(fn(g, &ba, &bw, s->ab_type, s->bias ? &bb : NULL, &bc, s->c_type, s->m, s->n,
                         s->k, s->beta, &err) == 0,
                      "%s", err.msg);
        get_bytes(again, &bc, mn * cs + 64);
        bad += memcmp(again, got, mn * cs + 64) != 0;
        free(again);
    }
    for (size_t i = mn * cs; i < mn * cs + 64; i++)
        bad += got[i] != 0xff;
    ck_assert_msg(
        bad == 0, "%s %zux%zux%zu bias=%d beta=%g %s -> %s shift=%zu: %zu wrong (seed %llu)",
        fn == gpu_gemv ? "gemv" : "gemm", s->m, s->n, s->k, s->bias, s->beta, type_str(s->ab_type),
        type_str(s->c_type), s->shift, bad, (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(a);
    free(w);
    free(bias);
    free(c0);
    free(ea);
    free(ew);
    free(eb);
    free(ec);
    free(got);
}

static void gemm_case(const struct gemm_shape *s)
{
    product_case(s, gpu_gemm);
}

START_TEST(test_gemm)
{
    /* Equal shapes follow each other with the other a/w type: plans are keyed on it. */
    static const struct gemm_shape shapes[] = {
        { 1, 576, 576, false, 0, GPU_BF16, GPU_F32, 0 },
        { 1, 576, 576, false, 0, GPU_F16, GPU_F32, 0 },
        { 7, 1536, 576, true, 0, GPU_BF16, GPU_BF16, 0 },
        { 7, 1536, 576, true, 0, GPU_F16, GPU_F16, 0 },
        { 33, 960, 576, true, 1, GPU_BF16, GPU_F32, 0 },
        { 33, 960, 576, true, 1, GPU_F16, GPU_F32, 0 },
        { 128, 384, 1536, false, 1, GPU_BF16, GPU_BF16, 0 },
        { 128, 384, 1536, false, 1, GPU_F16, GPU_F16, 0 },
        { 5, 17, 40, true, 0, GPU_BF16, GPU_F32, 0 },
        { 5, 17, 40, true, 0, GPU_F16, GPU_F32, 0 },
        { 64, 4096, 256, false, 0.5f, GPU_BF16, GPU_F32, 0 },
        { 64, 4096, 256, false, 0.5f, GPU_F16, GPU_F32, 0 },
        { 300, 200, 1024, true, 0, GPU_BF16, GPU_BF16, 0 },
        { 300, 200, 1024, true, 0, GPU_F16, GPU_F16, 0 },
        { 512, 1536, 576, false, 0, GPU_F16, GPU_F32, 0 },
        { 8, 49152, 576, false, 0, GPU_F16, GPU_F32, 0 },
        { 33, 960, 576, true, 1, GPU_BF16, GPU_F32, 0 },
        { 9, 96, 64, true, 1, GPU_BF16, GPU_F32, 4 },
        { 9, 96, 64, true, 1, GPU_F16, GPU_F32, 4 },
        { 9, 96, 64, false, 0, GPU_BF16, GPU_BF16, 2 },
        { 9, 96, 64, false, 0, GPU_F16, GPU_F16, 2 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        gemm_case(&shapes[i]);
}
END_TEST

/* More shapes than the plan table holds: plans are replaced, results stay right. */
START_TEST(test_gemm_many_shapes)
{
    for (size_t m = 1; m <= 70; m++) {
        enum gpu_dtype ab = m % 4 < 2 ? GPU_BF16 : GPU_F16;
        struct gemm_shape s = { m, 16 + 8 * (m % 3), 32, m % 2 == 0, 0, ab, GPU_F32, 0 };

        gemm_case(&s);
    }
}
END_TEST

START_TEST(test_gemm_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf a, w, c, b;

    pool_alloc(8192);
    a = (struct gpu_buf){ pool.ptr, 1024 };
    w = (struct gpu_buf){ (char *)pool.ptr + 1024, 1024 };
    c = (struct gpu_buf){ (char *)pool.ptr + 4096, 4096 };
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_BF16, NULL, &c, GPU_F32, 4, 4, 0, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: k is 0");
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_BF16, NULL, &c, GPU_F16, 4, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: 'c' must be f32 or bf16 (the type of 'a'), not f16");
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_F16, NULL, &c, GPU_BF16, 4, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: 'c' must be f32 or f16 (the type of 'a'), not bf16");
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_F32, NULL, &c, GPU_F32, 4, 4, 8, 0, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: 'a' and 'w' must be bf16 or f16, not f32");
    ck_assert_int_eq(gpu_gemm(g, &a, &w, (enum gpu_dtype)9, NULL, &c, GPU_F32, 4, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: 'a' and 'w' must be bf16 or f16, not unknown");
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 4, 4, 200, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: buffer 'a' has 1024 bytes, needs 1600");
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_BF16, &a, &c, GPU_F32, 1, 300, 1, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: buffer 'bias' has 1024 bytes, needs 1200");
    b = (struct gpu_buf){ (char *)pool.ptr + 2048, 100 };
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_F16, &b, &c, GPU_F16, 1, 64, 1, 0, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: buffer 'bias' has 100 bytes, needs 128");
    c = (struct gpu_buf){ (char *)pool.ptr + 32, 4096 }; /* a uses its first 64 bytes */
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_BF16, NULL, &c, GPU_F32, 4, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: buffers 'c' and 'a' overlap");
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_BF16, NULL, &c, GPU_F32, SIZE_MAX / 2, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemm: m * k overflows size_t");
    c = (struct gpu_buf){ (char *)pool.ptr + 4096, 4096 };
    ck_assert_int_eq(gpu_gemm(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 0, 4, 8, 0, &err), 0);
    ck_assert_int_eq(gpu_sync(g, &err), 0);
}
END_TEST

/* ---- GEMV: decode-step products, plain and with RMSNorm or SwiGLU folded in ---- */

START_TEST(test_gemv)
{
    /* m in {1, 2, 7, 32}; SmolLM2-135M and Llama-3-8B widths; ragged n and k; both types */
    static const struct gemm_shape shapes[] = {
        { 1, 576, 576, false, 0, GPU_BF16, GPU_F32, 0 },
        { 1, 576, 576, false, 0, GPU_F16, GPU_F32, 0 },
        { 2, 960, 576, true, 0, GPU_BF16, GPU_BF16, 0 },
        { 2, 960, 576, true, 0, GPU_F16, GPU_F16, 0 },
        { 7, 1536, 576, false, 1, GPU_BF16, GPU_F32, 0 },
        { 7, 1536, 576, false, 1, GPU_F16, GPU_F32, 0 },
        { 32, 576, 1536, true, 1, GPU_BF16, GPU_F32, 0 },
        { 32, 576, 1536, true, 1, GPU_F16, GPU_F32, 0 },
        { 32, 3072, 576, false, 0.5f, GPU_F16, GPU_F16, 0 },
        { 1, 6144, 4096, true, 0, GPU_BF16, GPU_F32, 0 },
        { 2, 512, 14336, false, 1, GPU_F16, GPU_F32, 0 },
        { 1, 49152, 576, false, 0, GPU_BF16, GPU_F32, 0 },
        { 32, 1024, 4096, true, 1, GPU_BF16, GPU_F32, 0 },
        { 5, 17, 40, true, 0, GPU_BF16, GPU_F32, 0 },
        { 9, 33, 8, false, 0, GPU_F16, GPU_F16, 0 },
        { 31, 100, 72, true, 1, GPU_F16, GPU_F32, 0 },
        { 17, 1, 264, false, 0, GPU_BF16, GPU_BF16, 0 },
        { 24, 48, 1000, false, 0, GPU_F16, GPU_F32, 0 },
        /* m = 1, k <= 2048: the one-row kernel; odd n, k not a multiple of 256 */
        { 1, 33, 264, true, 1, GPU_F16, GPU_F16, 0 },
        { 1, 1, 2048, false, 0, GPU_BF16, GPU_BF16, 0 },
        { 1, 101, 1000, true, 0.5f, GPU_BF16, GPU_F32, 0 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        product_case(&shapes[i], gpu_gemv);
}
END_TEST

struct fused_shape {
    size_t m, n, k;
    enum gpu_dtype ab_type, c_type;
    bool bias;
    float beta;
};

/*
 * The reference input rows (m, k) of a fused case. Several rows: those the
 * unfused kernel wrote (h, ab_type), which the tensor-core kernel rounds
 * the same way. One row: the exact x * gain / rms, since the one-row
 * kernel does not round its input (gpu.h).
 */
static double *fused_inputs(const struct fused_shape *s, const float *x, const float *gain,
                            const void *h)
{
    double *a = xmalloc_array(s->m * s->k, sizeof(double)), ss = 0;

    for (size_t l = 0; s->m == 1 && l < s->k; l++)
        ss += (double)x[l] * x[l];
    for (size_t l = 0; l < s->m * s->k; l++)
        a[l] = s->m == 1 ? (double)x[l] * gain[l] / sqrt(ss / (double)s->k + 1e-5) :
                           decode_at(s->ab_type, h, l);
    return a;
}

/*
 * c (m, n) of a fused GEMV against the product, in double, of the
 * reference input rows a and w. With several rows the fused kernel rounds
 * the same values as the unfused one, but its 1/rms may differ from
 * gpu_rmsnorm's in the last bit (another order of the sum of squares),
 * which moves a rare element by one step of ab_type: allowed for two
 * elements per row at the row's largest |a w|.
 */
static size_t fused_check(const struct fused_shape *s, const double *a, const float *w,
                          const float *bias, const float *c0, const void *got)
{
    double step = s->ab_type == GPU_BF16 ? ldexp(1.0, -7) : ldexp(1.0, -10);
    size_t bad = 0;

    for (size_t i = 0; i < s->m; i++) {
        for (size_t j = 0; j < s->n; j++) {
            double ref = 0, mag = 0, big = 0,
                   add = (s->bias ? bias[j] : 0) + s->beta * c0[i * s->n + j];

            for (size_t l = 0; l < s->k; l++) {
                double p = a[i * s->k + l] * w[j * s->k + l];

                ref += p;
                mag += fabs(p);
                big = fmax(big, fabs(p));
            }
            double rs = fabs(ref + add) + (add != 0 ? fabs(ref) + fabs(add) : 0);
            ref += add;
            mag += fabs(add);
            double tol = 1e-4 * mag + 1e-6 + 2 * step * big + half_step(s->c_type, rs);
            bad += !within(decode_at(s->c_type, got, i * s->n + j), ref, tol);
        }
    }
    return bad;
}

/* Device buffers of one fused case: input, gain, w, bias, c, and h for the unfused kernel. */
struct fused_bufs {
    struct gpu_buf src, norm, w, bias, c, h;
};

static void fused_alloc(const struct fused_shape *s, size_t src_bytes, struct fused_bufs *b)
{
    size_t cs = gpu_dtype_size(s->c_type), mn = s->m * s->n, off = 0;

    pool_alloc(gpu_align(src_bytes) + gpu_align(s->k * 4) + gpu_align(s->n * s->k * 2) +
               gpu_align(s->n * cs) + gpu_align(mn * cs + 64) + gpu_align(s->m * s->k * 2));
    b->src = carve_bytes(&off, src_bytes);
    b->norm = carve_bytes(&off, s->k * 4);
    b->w = carve_bytes(&off, s->n * s->k * 2);
    b->bias = carve_bytes(&off, s->n * cs);
    b->c = carve_bytes(&off, mn * cs + 64);
    b->h = carve_bytes(&off, s->m * s->k * 2);
}

/* Runs fused (the GEMV under test) after the unfused kernel filled b->h from x and gain; checks c. */
static void fused_run(const struct fused_shape *s, struct fused_bufs *b, const float *x,
                      const float *gain, const char *what)
{
    size_t cs = gpu_dtype_size(s->c_type), mn = s->m * s->n, hb = s->m * s->k * 2;
    float *w = random_as(s->ab_type, s->n * s->k, -1, 1), *bias = random_as(s->c_type, s->n, -1, 1);
    float *c0 = random_as(s->c_type, mn, -1, 1);
    void *ew = encode(s->ab_type, w, s->n * s->k), *eb = encode(s->c_type, bias, s->n);
    void *ec = encode(s->c_type, c0, mn), *h = xmalloc(hb ? hb : 1);
    unsigned char *got = xmalloc(mn * cs + 64);
    struct rag_err err = { 0 };
    const struct gpu_buf *pb = s->bias ? &b->bias : NULL;
    int rc;

    put_bytes(&b->w, ew, s->n * s->k * 2);
    put_bytes(&b->bias, eb, s->n * cs);
    poison(&b->c, b->c.bytes);
    if (s->beta != 0)
        put_bytes(&b->c, ec, mn * cs);
    rc = gpu_gemv_rmsnorm(g, &b->src, &b->norm, 1e-5f, &b->w, s->ab_type, pb, &b->c, s->c_type,
                          s->m, s->n, s->k, s->beta, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    get_bytes(got, &b->c, mn * cs + 64);
    get_bytes(h, &b->h, hb);
    double *a = fused_inputs(s, x, gain, h);
    size_t bad = fused_check(s, a, w, bias, c0, got);
    for (size_t i = mn * cs; i < mn * cs + 64; i++)
        bad += got[i] != 0xff;
    ck_assert_msg(bad == 0, "%s %zux%zux%zu %s -> %s bias=%d beta=%g: %zu wrong (seed %llu)", what,
                  s->m, s->n, s->k, type_str(s->ab_type), type_str(s->c_type), s->bias, s->beta,
                  bad, (unsigned long long)test_seed);
    free(w);
    free(bias);
    free(c0);
    free(ew);
    free(eb);
    free(ec);
    free(h);
    free(a);
    free(got);
}

/* gpu_gemv_rmsnorm against gpu_rmsnorm then the product; x is left as it was. */
static void gemv_rmsnorm_case(const struct fused_shape *s)
{
    size_t n = s->m * s->k;
    float *x = random_floats(n, -2, 2), *gain = random_floats(s->k, 0.5f, 1.5f);
    float *x_after = filled_floats(n, NAN);
    struct rag_err err = { 0 };
    struct fused_bufs b;

    fused_alloc(s, n * 4, &b);
    put(&b.src, x, n);
    put(&b.norm, gain, s->k);
    ck_assert_msg(
        gpu_rmsnorm(g, &b.src, NULL, &b.norm, &b.h, s->ab_type, s->m, s->k, 1e-5f, &err) == 0, "%s",
        err.msg);
    fused_run(s, &b, x, gain, "gemv_rmsnorm");
    get(x_after, &b.src, n);
    ck_assert_msg(memcmp(x, x_after, n * sizeof(float)) == 0, "gemv_rmsnorm wrote x");
    gpu_buf_free(g, &pool);
    free(x);
    free(gain);
    free(x_after);
}

/* Sum of a row i times w row j over k, with the sum of |terms| and the largest term. */
static double dot_row(const struct fused_shape *s, const double *a, size_t i, const float *w,
                      size_t j, double *mag, double *big)
{
    double sum = 0;

    *mag = *big = 0;
    for (size_t l = 0; l < s->k; l++) {
        double p = a[i * s->k + l] * w[j * s->k + l];

        sum += p;
        *mag += fabs(p);
        *big = fmax(*big, fabs(p));
    }
    return sum;
}

/*
 * gpu_gemv_rmsnorm_swiglu against both products of fused_inputs() and SwiGLU
 * in double: each product within the bound of fused_check() (the fused
 * norm may round an input element a step the other way), the SwiGLU within
 * what those bounds allow (|silu'| <= 1.1) plus half a step of c_type.
 */
static void gemv_rmsnorm_swiglu_case(const struct fused_shape *s)
{
    size_t n = s->m * s->k, wn = 2 * s->n * s->k, cs = gpu_dtype_size(s->c_type), off = 0;
    size_t mn = s->m * s->n, bad = 0;
    double step = s->ab_type == GPU_BF16 ? ldexp(1.0, -7) : ldexp(1.0, -10);
    float *x = random_floats(n, -2, 2), *gain = random_floats(s->k, 0.5f, 1.5f);
    float *w = random_as(s->ab_type, wn, -1, 1);
    void *ew = encode(s->ab_type, w, wn), *h = xmalloc(n * 2);
    unsigned char *got = xmalloc(mn * cs + 64);
    struct gpu_buf bx, bn, bw, bh, bc;
    struct rag_err err = { 0 };

    pool_alloc(gpu_align(n * 4) + gpu_align(s->k * 4) + gpu_align(wn * 2) + gpu_align(n * 2) +
               gpu_align(mn * cs + 64));
    bx = carve_floats(&off, n);
    bn = carve_floats(&off, s->k);
    bw = carve_bytes(&off, wn * 2);
    bh = carve_bytes(&off, n * 2);
    bc = carve_bytes(&off, mn * cs + 64);
    put(&bx, x, n);
    put(&bn, gain, s->k);
    put_bytes(&bw, ew, wn * 2);
    poison(&bc, bc.bytes);
    ck_assert_msg(gpu_rmsnorm(g, &bx, NULL, &bn, &bh, s->ab_type, s->m, s->k, 1e-5f, &err) == 0 &&
                      gpu_gemv_rmsnorm_swiglu(g, &bx, &bn, 1e-5f, &bw, s->ab_type, &bc, s->c_type,
                                              s->m, s->n, s->k, &err) == 0,
                  "%s", err.msg);
    get_bytes(h, &bh, n * 2);
    get_bytes(got, &bc, mn * cs + 64);
    double *a = fused_inputs(s, x, gain, h);
    for (size_t i = 0; i < s->m; i++)
        for (size_t j = 0; j < s->n; j++) {
            double mg, bg, mu, bu;
            double gate = dot_row(s, a, i, w, j, &mg, &bg),
                   up = dot_row(s, a, i, w, s->n + j, &mu, &bu);
            double tg = 1e-4 * mg + 1e-6 + 2 * step * bg, tu = 1e-4 * mu + 1e-6 + 2 * step * bu;
            double silu = gate / (1 + exp(-gate)), ref = silu * up;
            double tol =
                1.1 * fabs(up) * tg + fabs(silu) * tu + tg * tu + half_step(s->c_type, ref);

            bad += !within(decode_at(s->c_type, got, i * s->n + j), ref, tol);
        }
    for (size_t i = mn * cs; i < mn * cs + 64; i++)
        bad += got[i] != 0xff;
    ck_assert_msg(bad == 0, "gemv_rmsnorm_swiglu %zux%zux%zu %s -> %s: %zu wrong (seed %llu)", s->m,
                  s->n, s->k, type_str(s->ab_type), type_str(s->c_type), bad,
                  (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(x);
    free(gain);
    free(w);
    free(ew);
    free(h);
    free(a);
    free(got);
}

START_TEST(test_gemv_rmsnorm_swiglu)
{
    static const struct fused_shape shapes[] = {
        { 1, 1536, 576, GPU_F16, GPU_F16, false, 0 }, /* SmolLM2-135M: one-row kernel */
        { 1, 1536, 576, GPU_BF16, GPU_BF16, false, 0 },
        { 1, 37, 264, GPU_F16, GPU_F32, false, 0 },
        { 4, 1536, 576, GPU_F16, GPU_F16, false, 0 }, /* tensor-core kernel */
        { 32, 100, 40, GPU_BF16, GPU_F32, false, 0 },
        { 1, 300, 4096, GPU_BF16, GPU_BF16, false, 0 }, /* one-row kernel in rounds */
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        gemv_rmsnorm_swiglu_case(&shapes[i]);
}
END_TEST

START_TEST(test_gemv_rmsnorm)
{
    static const struct fused_shape shapes[] = {
        { 1, 960, 576, GPU_BF16, GPU_F32, true, 0 },
        { 1, 960, 576, GPU_F16, GPU_F32, true, 0 },
        { 2, 3072, 576, GPU_F16, GPU_F32, false, 0 },
        { 7, 3072, 576, GPU_BF16, GPU_F32, false, 0 },
        { 32, 576, 576, GPU_BF16, GPU_F32, false, 1 },
        { 32, 576, 576, GPU_F16, GPU_F16, true, 0 },
        { 2, 1024, 4096, GPU_F16, GPU_F32, true, 1 },
        { 1, 49152, 576, GPU_F16, GPU_F32, false, 0 },
        { 3, 100, 40, GPU_BF16, GPU_BF16, false, 0.5f },
        { 1, 33, 40, GPU_BF16, GPU_BF16, true, 0.5f },
        { 1, 7, 2048, GPU_F16, GPU_F32, false, 1 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        gemv_rmsnorm_case(&shapes[i]);
}
END_TEST

/*
 * ---- one input row past a single round (k > 2048): Llama-3-8B's decode shapes, and k not a
 * multiple of 256 with n not a multiple of a block's outputs, for one and two rows a warp ----
 */

START_TEST(test_gemv_one_row)
{
    /* QKV with bias; the output and down projections adding into the residual (beta = 1) */
    static const struct gemm_shape shapes[] = {
        { 1, 6144, 4096, true, 0, GPU_F16, GPU_F32, 0 },
        { 1, 4096, 4096, false, 1, GPU_BF16, GPU_F32, 0 },
        { 1, 4096, 4096, false, 1, GPU_F16, GPU_F32, 0 },
        { 1, 4096, 14336, false, 1, GPU_BF16, GPU_F32, 0 },
        { 1, 4096, 14336, false, 1, GPU_F16, GPU_F32, 0 },
        { 1, 2049, 4104, true, 0.5f, GPU_BF16, GPU_BF16, 0 },
        { 1, 2049, 4104, true, 0.5f, GPU_F16, GPU_F16, 0 },
        { 1, 45, 2056, true, 0, GPU_BF16, GPU_F32, 0 },
        { 1, 45, 2056, false, 1, GPU_F16, GPU_F32, 0 },
        { 1, 100, 14336, false, 0, GPU_BF16, GPU_BF16, 0 },
        { 1, 1, 4104, false, 0, GPU_F16, GPU_F16, 0 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        product_case(&shapes[i], gpu_gemv);
}
END_TEST

START_TEST(test_gemv_one_row_fused)
{
    /* QKV with the norm folded in, then narrower and ragged shapes */
    static const struct fused_shape norm[] = {
        { 1, 6144, 4096, GPU_BF16, GPU_F32, true, 0 },
        { 1, 6144, 4096, GPU_F16, GPU_F32, true, 0 },
        { 1, 2049, 4104, GPU_F16, GPU_F16, true, 0.5f },
        { 1, 2049, 4104, GPU_BF16, GPU_BF16, false, 1 },
        { 1, 45, 2056, GPU_BF16, GPU_F32, false, 1 },
        { 1, 77, 14336, GPU_F16, GPU_F32, true, 0 },
    };
    /* gate/up with SwiGLU: 14336 outputs of a gate and an up row each */
    static const struct fused_shape glu[] = {
        { 1, 14336, 4096, GPU_BF16, GPU_BF16, false, 0 },
        { 1, 14336, 4096, GPU_F16, GPU_F16, false, 0 },
        { 1, 37, 2056, GPU_F16, GPU_F32, false, 0 },
        { 1, 333, 4104, GPU_BF16, GPU_F32, false, 0 },
    };

    for (size_t i = 0; i < sizeof(norm) / sizeof(norm[0]); i++)
        gemv_rmsnorm_case(&norm[i]);
    for (size_t i = 0; i < sizeof(glu) / sizeof(glu[0]); i++)
        gemv_rmsnorm_swiglu_case(&glu[i]);
}
END_TEST

START_TEST(test_gemv_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf a, w, c, nb, nrm, bad;

    pool_alloc(16384);
    a = (struct gpu_buf){ pool.ptr, 1024 };
    w = (struct gpu_buf){ (char *)pool.ptr + 1024, 4096 };
    nb = (struct gpu_buf){ (char *)pool.ptr + 5120, 100 };
    nrm = (struct gpu_buf){ (char *)pool.ptr + 6144, 2048 };
    c = (struct gpu_buf){ (char *)pool.ptr + 8192, 4096 };
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_BF16, NULL, &c, GPU_F32, 33, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: m 33 exceeds 32");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_BF16, NULL, &c, GPU_F32, 1, 4, 100, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: k 100 is not a positive multiple of 8");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_BF16, NULL, &c, GPU_F32, 1, 4, 0, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: k 0 is not a positive multiple of 8");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_F32, NULL, &c, GPU_F32, 1, 4, 8, 0, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: 'a' and 'w' must be bf16 or f16, not f32");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_BF16, NULL, &c, GPU_F16, 1, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: 'c' must be f32 or bf16 (the type of 'a'), not f16");
    bad = (struct gpu_buf){ (char *)pool.ptr + 1032, 4000 };
    ck_assert_int_eq(gpu_gemv(g, &a, &bad, GPU_BF16, NULL, &c, GPU_F32, 1, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: buffer 'w' is not 16-byte aligned");
    bad = (struct gpu_buf){ (char *)pool.ptr + 8, 1000 };
    ck_assert_int_eq(gpu_gemv(g, &bad, &w, GPU_F16, NULL, &c, GPU_F32, 1, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: buffer 'a' is not 16-byte aligned");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 4, 4, 256, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: buffer 'a' has 1024 bytes, needs 2048");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 1, 16, 256, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: buffer 'w' has 4096 bytes, needs 8192");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_BF16, &nb, &c, GPU_F32, 1, 64, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: buffer 'bias' has 100 bytes, needs 256");
    bad = (struct gpu_buf){ (char *)pool.ptr + 8, 256 }; /* a uses its first 16 bytes */
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_BF16, NULL, &bad, GPU_F32, 1, 4, 8, 0, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: buffers 'c' and 'a' overlap");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_BF16, NULL, &c, GPU_F32, 1, 4, 8, NAN, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv: beta is not finite");
    ck_assert_int_eq(
        gpu_gemv_rmsnorm(g, &a, &nrm, -1.0f, &w, GPU_BF16, NULL, &c, GPU_F32, 1, 4, 8, 0, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv_rmsnorm: eps -1 is not a finite value >= 0");
    ck_assert_int_eq(
        gpu_gemv_rmsnorm(g, &a, &nb, 1e-5f, &w, GPU_BF16, NULL, &c, GPU_F32, 1, 4, 32, 0, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv_rmsnorm: buffer 'norm' has 100 bytes, needs 128");
    ck_assert_int_eq(
        gpu_gemv_rmsnorm(g, &a, &nrm, 1e-5f, &w, GPU_BF16, NULL, &c, GPU_F32, 2, 4, 256, 0, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv_rmsnorm: buffer 'x' has 1024 bytes, needs 2048");
    ck_assert_int_eq(
        gpu_gemv_rmsnorm_swiglu(g, &a, &nrm, 1e-5f, &w, GPU_BF16, &c, GPU_F32, 1, 16, 128, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv_rmsnorm_swiglu: buffer 'w' has 4096 bytes, needs 8192");
    ck_assert_int_eq(
        gpu_gemv_rmsnorm_swiglu(g, &a, &nrm, -1.0f, &w, GPU_BF16, &c, GPU_F32, 1, 4, 8, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv_rmsnorm_swiglu: eps -1 is not a finite value >= 0");
    ck_assert_int_eq(
        gpu_gemv_rmsnorm_swiglu(g, &a, &nrm, 1e-5f, &w, GPU_BF16, &c, GPU_F16, 1, 4, 8, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg,
                     "gpu_gemv_rmsnorm_swiglu: 'c' must be f32 or bf16 (the type of 'a'), not f16");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 0, 4, 8, 0, &err), 0);
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 1, 4, 8, 0, &err), 0);
    ck_assert_int_eq(
        gpu_gemv_rmsnorm(g, &a, &nrm, 1e-5f, &w, GPU_F16, NULL, &c, GPU_F32, 2, 4, 8, 0, &err), 0);
    ck_assert_int_eq(
        gpu_gemv_rmsnorm_swiglu(g, &a, &nrm, 1e-5f, &w, GPU_F16, &c, GPU_F16, 2, 4, 8, &err), 0);
    ck_assert_int_eq(gpu_sync(g, &err), 0);
}
END_TEST

static Suite *gpugemm_suite(bool have_gpu)
{
    Suite *s = suite_create("gpugemm");
    TCase *tc;

    if (!have_gpu)
        return s;
    tc = device_case(s, "device", 60);
    tcase_add_test(tc, test_convert_args);
    tcase_add_test(tc, test_gemm_args);
    tcase_add_test(tc, test_gemv_args);
    tc = device_case(s, "model", 300);
    tcase_add_test(tc, test_convert);
    tcase_add_test(tc, test_gemm);
    tcase_add_test(tc, test_gemm_many_shapes);
    tcase_add_test(tc, test_gemv);
    tcase_add_test(tc, test_gemv_rmsnorm);
    tcase_add_test(tc, test_gemv_rmsnorm_swiglu);
    tcase_add_test(tc, test_gemv_one_row);
    tcase_add_test(tc, test_gemv_one_row_fused);
    return s;
}

int main(void)
{
    return gputest_main("test_gpugemm", gpugemm_suite);
}
