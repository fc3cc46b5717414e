/*
 * tests/test_gpu.c - gpu/: every kernel against a CPU reference in double
 * precision on fresh random inputs, device memory and copies, argument
 * checks, and the error paths.
 *
 * The "api" cases need no device and always run. main() first probes for a
 * GPU in a child process (so the runner never initialises CUDA before Check
 * forks, which CUDA does not survive); without CUDA or without a device it
 * runs the "api" cases only and then exits 77, which meson shows as SKIP.
 *
 * Outputs are poisoned with NaN (and followed by sentinel floats) before each
 * kernel, so an element the kernel fails to write, or one it writes past the
 * end, fails the comparison. Tolerances, with ref computed in double:
 *   axpy  |got - ref| <= 1e-6 * (|a*x| + |y|)  (fmaf rounds once: 6e-8)
 *   l2    |got - ref| <= 1e-5 * |ref| + 1e-6, and each non-zero row's
 *         squared norm within 1e-5 of 1 (STYLE.md 12: rel+abs 1e-5 for fp32)
 *   dot   |got - ref| <= 1e-5 * sum|x*y| + 1e-6, bitwise equal on a rerun
 * The model kernels ("model" case) take bf16 inputs as the exact values they
 * hold, so only the kernel's own arithmetic and output rounding count:
 *   convert  exactly the host's round-to-nearest-even value (NaN stays NaN)
 *   gemm     1e-4 * sum_l |a w| + 1e-6 (fp32 accumulation over k terms), for
 *            a and w in bf16 and in fp16; a 16-bit output with bias or
 *            beta also half a step of A W^T and of the addend, which
 *            cuBLASLt may round before adding
 *   gemv     as gemm, and bitwise equal on a rerun; the fused variants
 *            against the rows gpu_rmsnorm / gpu_swiglu wrote, plus one step
 *            of the compute type at the row's largest |a w| twice (a last-bit
 *            difference of 1/rms may round an element the other way)
 *   rmsnorm, swiglu   1e-5 * |ref| + 1e-6; the new residual bitwise
 *   softmax  2e-5 * ref + 1e-9; argmax, embed rows: exact
 *   rope     1e-5 * (|x0| + |x1|) + 1e-6 with the fp32 angle of the kernel;
 *            V copied exactly; untouched cache slots still NaN
 *   attention  1e-4 * sum_t p_t |v_t| + 1e-6 (fp32 sums over up to 1000
 *            keys, expf); NaN where a length or block id is invalid
 *   prefill on tensor cores (bf16/fp16 cache, head_dim 64 or 128): the
 *            reference takes q * scale * log2(e) rounded to the cache type
 *            as the kernel does, and the tolerance grows by twice the
 *            rounding of P before P V: 2^-8 (bf16) or 2^-10 (fp16) times
 *            sum_t p_t |v_t|
 * plus half a step of the output type wherever it is 16-bit: 2^-8 |ref| for
 * bf16 (8 significant bits), 2^-11 |ref| for fp16 (11 bits). fp16 outputs
 * of rmsnorm and swiglu past 65504 must be stored as +-65504 (saturated,
 * gpu.h). Caches are filled with NaN outside the written tokens, so a
 * kernel that reads a slot it must not fails.
 * The seed is new each run and printed; RAG_TEST_SEED=<n> repeats a run.
 */
#include "gpu/gpu.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/testutil.h"

#define GUARD    8 /* sentinel floats after each output */
#define SENTINEL 1234.5f

static uint64_t test_seed;
static uint64_t rng_state;
static struct gpu *g;
static struct gpu_buf pool;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_float(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next() >> 40) / 16777216.0);
}

static float *random_floats(size_t n, float lo, float hi)
{
    float *p = xmalloc_array(n ? n : 1, sizeof(float));

    for (size_t i = 0; i < n; i++)
        p[i] = rng_float(lo, hi);
    return p;
}

static float *filled_floats(size_t n, float v)
{
    float *p = xmalloc_array(n ? n : 1, sizeof(float));

    for (size_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

static void device_setup(void)
{
    struct rag_err err = { 0 };
    int rc = gpu_open(&g, 0, &err);

    ck_assert_msg(rc == 0, "gpu_open: %s", err.msg);
    rng_state = test_seed;
}

static void device_teardown(void)
{
    gpu_buf_free(g, &pool);
    gpu_close(g);
    g = NULL;
}

/* The test's one allocation, to be carved; freed by the teardown. */
static void pool_alloc(size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_buf_alloc(g, bytes, &pool, &err) == 0, "alloc: %s", err.msg);
}

static struct gpu_buf carve_floats(size_t *off, size_t n)
{
    struct rag_err err = { 0 };
    struct gpu_buf b;

    ck_assert_msg(gpu_buf_carve(&pool, off, n * sizeof(float), &b, &err) == 0, "%s", err.msg);
    return b;
}

static void put(struct gpu_buf *b, const float *p, size_t n)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_upload(g, b, p, n * sizeof(float), &err) == 0, "%s", err.msg);
}

static void get(float *p, const struct gpu_buf *b, size_t n)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_download(g, p, b, n * sizeof(float), &err) == 0, "%s", err.msg);
}

/* NaN fails: the comparison is written so that it must hold. */
static bool within(double got, double ref, double tol)
{
    return fabs(got - ref) <= tol;
}

/* ---- api: no device needed ---- */

START_TEST(test_open_without_or_with_device)
{
    struct rag_err err = { 0 };
    struct gpu *h = NULL;
    int rc = gpu_open(&h, 0, &err);
    int n = gpu_count();

    if (rc == 0) {
        ck_assert_int_gt(n, 0);
        gpu_close(h);
    } else if (rc == RAG_ENOSYS) {
        ck_assert_str_eq(err.msg, "gpu: built without CUDA");
        ck_assert_int_eq(n, 0);
    } else {
        ck_assert_int_eq(rc, RAG_EGPU);
        ck_assert_msg(strncmp(err.msg, "gpu: no CUDA device (", 21) == 0, "%s", err.msg);
        ck_assert_int_eq(n, 0);
    }
}
END_TEST

START_TEST(test_open_negative_index)
{
    struct rag_err err = { 0 };
    struct gpu *h = (struct gpu *)&err;

    ck_assert_int_eq(gpu_open(&h, -1, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu: device index -1 is negative");
    ck_assert_ptr_eq(h, (struct gpu *)&err);
}
END_TEST

START_TEST(test_null_and_empty)
{
    struct gpu_buf empty = { 0 };

    gpu_close(NULL);
    gpu_buf_free(NULL, NULL);
    gpu_buf_free(NULL, &empty);
    ck_assert_ptr_null(empty.ptr);
}
END_TEST

START_TEST(test_align)
{
    ck_assert_uint_eq(gpu_align(0), 0);
    ck_assert_uint_eq(gpu_align(1), GPU_ALIGN);
    ck_assert_uint_eq(gpu_align(GPU_ALIGN), GPU_ALIGN);
    ck_assert_uint_eq(gpu_align(GPU_ALIGN + 1), 2 * GPU_ALIGN);
    ck_assert_uint_eq(gpu_align(SIZE_MAX - 3), SIZE_MAX);
}
END_TEST

START_TEST(test_carve)
{
    char *base = (char *)(uintptr_t)0x10000;
    struct gpu_buf p = { base, 1024 }, b, keep;
    struct rag_err err = { 0 };
    size_t off = 0;

    ck_assert_int_eq(gpu_buf_carve(&p, &off, 10, &b, &err), 0);
    ck_assert_ptr_eq(b.ptr, base);
    ck_assert_uint_eq(b.bytes, 10);
    ck_assert_uint_eq(off, 10);
    ck_assert_int_eq(gpu_buf_carve(&p, &off, 512, &b, &err), 0);
    ck_assert_ptr_eq(b.ptr, base + 256);
    ck_assert_uint_eq(off, 768);
    ck_assert_int_eq(gpu_buf_carve(&p, &off, 0, &b, &err), 0);
    ck_assert_ptr_eq(b.ptr, base + 768);
    keep = b;
    ck_assert_int_eq(gpu_buf_carve(&p, &off, 257, &b, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu pool: no room for 257 bytes at offset 768 of 1024");
    ck_assert_uint_eq(off, 768);
    ck_assert_ptr_eq(b.ptr, keep.ptr);
    ck_assert_int_eq(gpu_buf_carve(&p, &off, 256, &b, &err), 0);
    ck_assert_uint_eq(off, 1024);
    ck_assert_int_eq(gpu_buf_carve(&p, &off, SIZE_MAX, &b, &err), RAG_EINVAL);
    off = SIZE_MAX - 5;
    ck_assert_int_eq(gpu_buf_carve(&p, &off, 1, &b, &err), RAG_EINVAL);
}
END_TEST

/* ---- device: context, memory, copies ---- */

START_TEST(test_info)
{
    struct rag_err err = { 0 };
    struct gpu_info info;

    ck_assert_int_eq(gpu_info(g, &info, &err), 0);
    ck_assert_int_gt((int)strlen(info.name), 0);
    ck_assert_int_eq(info.device, 0);
    ck_assert_int_ge(info.cc_major, 1);
    ck_assert_int_gt(info.n_sm, 0);
    ck_assert_uint_gt(info.mem_total, 0);
    ck_assert_uint_gt(info.mem_free, 0);
    ck_assert_uint_le(info.mem_free, info.mem_total);
    ck_assert_int_gt(info.runtime_version, 0);
    ck_assert_int_ge(info.driver_version, info.runtime_version);
}
END_TEST

START_TEST(test_open_out_of_range)
{
    struct rag_err err = { 0 };
    struct gpu *h = NULL;
    char want[128];
    int n = gpu_count();

    ck_assert_int_eq(gpu_open(&h, n, &err), RAG_EINVAL);
    snprintf(want, sizeof(want), "gpu: device index %d out of range (%d device%s)", n, n,
             n == 1 ? "" : "s");
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(test_alloc_copy_free)
{
    size_t n = 100000, off = 0;
    float *src = random_floats(n, -1, 1), *dst = filled_floats(n, NAN);
    struct rag_err err = { 0 };
    struct gpu_buf a, b, empty;

    pool_alloc(2 * gpu_align(n * sizeof(float)));
    ck_assert_uint_eq((uintptr_t)pool.ptr % GPU_ALIGN, 0);
    a = carve_floats(&off, n);
    b = carve_floats(&off, n);
    ck_assert_uint_eq((uintptr_t)b.ptr % GPU_ALIGN, 0);
    put(&a, src, n);
    put(&b, dst, n);
    get(dst, &a, n);
    ck_assert_int_eq(memcmp(src, dst, n * sizeof(float)), 0);
    ck_assert_int_eq(gpu_sync(g, &err), 0);
    ck_assert_int_eq(gpu_buf_alloc(g, 0, &empty, &err), 0);
    ck_assert_ptr_null(empty.ptr);
    ck_assert_uint_eq(empty.bytes, 0);
    gpu_buf_free(g, &empty);
    gpu_buf_free(g, &pool);
    ck_assert_ptr_null(pool.ptr);
    ck_assert_uint_eq(pool.bytes, 0);
    gpu_buf_free(g, &pool);
    free(src);
    free(dst);
}
END_TEST

START_TEST(test_alloc_too_big)
{
    struct rag_err err = { 0 };
    struct gpu_buf b = { 0 };

    ck_assert_int_eq(gpu_buf_alloc(g, (size_t)1 << 50, &b, &err), RAG_EGPU);
    ck_assert_msg(strstr(err.msg, "gpu alloc 1125899906842624 bytes: ") == err.msg, "%s", err.msg);
    ck_assert_ptr_null(b.ptr);
    pool_alloc(4096); /* the context is still usable */
}
END_TEST

START_TEST(test_copy_errors)
{
    float host[4] = { 1, 2, 3, 4 };
    struct rag_err err = { 0 };
    struct gpu_buf small;

    pool_alloc(256);
    small = (struct gpu_buf){ pool.ptr, 8 };
    ck_assert_int_eq(gpu_upload(g, &small, host, 12, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_upload: 12 bytes do not fit the 8-byte buffer");
    ck_assert_int_eq(gpu_download(g, host, &small, 16, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_download: 16 bytes do not fit the 8-byte buffer");
    ck_assert_int_eq(gpu_upload(g, &small, NULL, 4, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_upload: 4 bytes with a NULL pointer");
    ck_assert_int_eq(gpu_upload(g, &small, NULL, 0, &err), 0);
    ck_assert_int_eq(gpu_upload(g, &small, host, 8, &err), 0);
    host[0] = host[1] = 0;
    ck_assert_int_eq(gpu_download(g, host, &small, 8, &err), 0);
    ck_assert(host[0] == 1 && host[1] == 2 && host[2] == 3);
}
END_TEST

/* ---- kernels against the CPU ---- */

/*
 * One axpy case: x and y start off_x and off_y floats into their buffers
 * (1 breaks 16-byte alignment and takes the scalar path); the floats of y
 * before and after the n it owns must come back unchanged.
 */
static void axpy_case(size_t n, size_t off_x, size_t off_y)
{
    size_t m = n + 1 + GUARD, off = 0, bad = 0;
    float a = rng_float(0.5f, 2.0f) * (rng_next() & 1 ? 1 : -1);
    float *x = random_floats(m, -1, 1), *y = random_floats(m, -1, 1), *got;
    struct rag_err err = { 0 };
    struct gpu_buf bx, by, vx, vy;

    for (size_t i = off_y + n; i < m; i++)
        y[i] = SENTINEL;
    pool_alloc(2 * gpu_align(m * sizeof(float)));
    bx = carve_floats(&off, m);
    by = carve_floats(&off, m);
    put(&bx, x, m);
    put(&by, y, m);
    vx = (struct gpu_buf){ (float *)bx.ptr + off_x, n * sizeof(float) };
    vy = (struct gpu_buf){ (float *)by.ptr + off_y, n * sizeof(float) };
    ck_assert_msg(gpu_axpy(g, n, a, &vx, &vy, &err) == 0, "%s", err.msg);
    got = filled_floats(m, NAN);
    get(got, &by, m);
    for (size_t i = 0; i < m; i++) {
        bool mine = i >= off_y && i < off_y + n;
        double ax = mine ? (double)a * x[i - off_y + off_x] : 0;
        double ref = ax + y[i];

        bad += !within(got[i], ref, 1e-6 * (fabs(ax) + fabs(y[i])));
    }
    ck_assert_msg(bad == 0, "axpy n=%zu off_x=%zu off_y=%zu: %zu wrong (seed %llu)", n, off_x,
                  off_y, bad, (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(x);
    free(y);
    free(got);
}

START_TEST(test_axpy)
{
    static const size_t sizes[] = { 1, 3, 4, 5, 31, 1000, 4097, (1 << 20) + 3 };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        axpy_case(sizes[i], 0, 0);
        axpy_case(sizes[i], 1, 1);
        axpy_case(sizes[i], 1, 0);
    }
}
END_TEST

START_TEST(test_axpy_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf x, y, odd;
    float one = 1.0f, got = 0;

    pool_alloc(1024);
    x = (struct gpu_buf){ pool.ptr, 12 };
    y = (struct gpu_buf){ (char *)pool.ptr + 512, 16 };
    ck_assert_int_eq(gpu_axpy(g, 4, 1.0f, &x, &y, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_axpy: buffer 'x' has 12 bytes, needs 16");
    ck_assert_int_eq(gpu_axpy(g, 3, 1.0f, &y, &x, &err), 0);
    ck_assert_int_eq(gpu_axpy(g, SIZE_MAX / 2, 1.0f, &x, &y, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_axpy: 9223372036854775807 floats overflow size_t");
    odd = (struct gpu_buf){ (char *)pool.ptr + 2, 16 };
    ck_assert_int_eq(gpu_axpy(g, 2, 1.0f, &odd, &y, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_axpy: buffer 'x' is not 4-byte aligned");
    x = (struct gpu_buf){ (char *)pool.ptr + 504, 16 };
    ck_assert_int_eq(gpu_axpy(g, 4, 1.0f, &x, &y, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_axpy: buffers 'x' and 'y' overlap");
    x = (struct gpu_buf){ NULL, 0 };
    ck_assert_int_eq(gpu_axpy(g, 0, 1.0f, &x, &x, &err), 0);
    put(&y, &one, 1);
    ck_assert_int_eq(gpu_axpy(g, 0, 5.0f, &y, &y, &err), 0);
    get(&got, &y, 1);
    ck_assert(got == 1.0f);
}
END_TEST

/* CPU reference of one row and the check of the kernel's output for it. */
static size_t l2_check_row(const float *x, const float *y, size_t dim)
{
    double ss = 0, got_ss = 0;
    size_t bad = 0;

    for (size_t j = 0; j < dim; j++)
        ss += (double)x[j] * x[j];
    double scale = 1.0 / fmax(sqrt(ss), 1e-12);
    for (size_t j = 0; j < dim; j++) {
        double ref = x[j] * scale;

        bad += !within(y[j], ref, 1e-5 * fabs(ref) + 1e-6);
        got_ss += (double)y[j] * y[j];
    }
    if (ss > 0 && !within(got_ss, 1.0, 1e-5))
        bad++;
    return bad;
}

/* n_rows x dim, rows 4, 9, 14, ... zero; in place or into a poisoned y. */
static void l2_case(size_t n_rows, size_t dim, bool in_place)
{
    size_t n = n_rows * dim, m = n + GUARD, off = 0, bad = 0;
    float *x = random_floats(m, -3, 3), *got = filled_floats(m, NAN);
    struct rag_err err = { 0 };
    struct gpu_buf bx, by;

    for (size_t r = 4; r < n_rows; r += 5)
        memset(x + r * dim, 0, dim * sizeof(float));
    for (size_t i = n; i < m; i++)
        x[i] = SENTINEL;
    pool_alloc(2 * gpu_align(m * sizeof(float)));
    bx = carve_floats(&off, m);
    by = in_place ? bx : carve_floats(&off, m);
    put(&bx, x, m);
    if (!in_place)
        put(&by, got, m);
    ck_assert_msg(gpu_l2_normalize_rows(g, &bx, &by, n_rows, dim, &err) == 0, "%s", err.msg);
    get(got, &by, m);
    for (size_t r = 0; r < n_rows; r++)
        bad += l2_check_row(x + r * dim, got + r * dim, dim);
    for (size_t i = n; i < m; i++)
        bad += in_place ? got[i] != SENTINEL : !isnan(got[i]);
    ck_assert_msg(bad == 0, "l2 %zux%zu in_place=%d: %zu wrong (seed %llu)", n_rows, dim, in_place,
                  bad, (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(x);
    free(got);
}

START_TEST(test_l2_normalize_rows)
{
    static const size_t shapes[][2] = { { 1, 1 },    { 2, 3 },    { 7, 384 },   { 1000, 384 },
                                        { 33, 768 }, { 5, 4097 }, { 3000, 32 }, { 1, 100000 } };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        l2_case(shapes[i][0], shapes[i][1], false);
        l2_case(shapes[i][0], shapes[i][1], true);
    }
}
END_TEST

START_TEST(test_l2_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf x, y;

    pool_alloc(4096);
    x = (struct gpu_buf){ pool.ptr, 4096 };
    y = (struct gpu_buf){ pool.ptr, 100 };
    ck_assert_int_eq(gpu_l2_normalize_rows(g, &x, &y, 5, 6, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_l2_normalize_rows: buffer 'y' has 100 bytes, needs 120");
    ck_assert_int_eq(gpu_l2_normalize_rows(g, &x, &y, SIZE_MAX / 2, 3, &err), RAG_EINVAL);
    ck_assert_msg(strstr(err.msg, "overflow size_t") != NULL, "%s", err.msg);
    y = (struct gpu_buf){ (char *)pool.ptr + 64, 1024 };
    ck_assert_int_eq(gpu_l2_normalize_rows(g, &x, &y, 4, 8, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg,
                     "gpu_l2_normalize_rows: buffers 'x' and 'y' overlap without being equal");
    ck_assert_int_eq(gpu_l2_normalize_rows(g, &x, &x, 4, 0, &err), 0);
    ck_assert_int_eq(gpu_l2_normalize_rows(g, &x, &x, 0, 8, &err), 0);
    ck_assert_int_eq(gpu_sync(g, &err), 0);
}
END_TEST

/* One dot of n random floats, checked against double and against a rerun. */
static void dot_case(size_t n)
{
    float *x = random_floats(n, -1, 1), *y = random_floats(n, -1, 1);
    float *got = filled_floats(GUARD, NAN);
    float again;
    double ref = 0, mag = 0;
    struct rag_err err = { 0 };
    struct gpu_buf bx, by, out, out2;
    size_t off = 0;

    for (size_t i = 0; i < n; i++) {
        ref += (double)x[i] * y[i];
        mag += fabs((double)x[i] * y[i]);
    }
    pool_alloc(2 * gpu_align(n * sizeof(float)) + 2 * GPU_ALIGN);
    bx = carve_floats(&off, n);
    by = carve_floats(&off, n);
    out = carve_floats(&off, GUARD);
    out2 = carve_floats(&off, GUARD);
    put(&bx, x, n);
    put(&by, y, n);
    put(&out, got, GUARD);
    put(&out2, got, GUARD);
    ck_assert_msg(gpu_dot(g, n, &bx, &by, &out, &err) == 0, "%s", err.msg);
    ck_assert_msg(gpu_dot(g, n, &bx, &by, &out2, &err) == 0, "%s", err.msg);
    get(got, &out, GUARD);
    get(&again, &out2, 1);
    ck_assert_msg(within(got[0], ref, 1e-5 * mag + 1e-6),
                  "dot n=%zu: got %.9g want %.9g (seed %llu)", n, got[0], ref,
                  (unsigned long long)test_seed);
    ck_assert_msg(memcmp(&again, got, sizeof(float)) == 0, "dot n=%zu: rerun %.9g != %.9g", n,
                  again, got[0]);
    for (size_t i = 1; i < GUARD; i++)
        ck_assert_msg(isnan(got[i]), "dot n=%zu wrote out[%zu]", n, i);
    gpu_buf_free(g, &pool);
    free(x);
    free(y);
    free(got);
}

START_TEST(test_dot)
{
    static const size_t sizes[] = { 0, 1, 255, 2048, 2049, 100003, 1000003, 1 << 22 };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        dot_case(sizes[i]);
}
END_TEST

START_TEST(test_dot_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf x, out;

    pool_alloc(1024);
    x = (struct gpu_buf){ pool.ptr, 512 };
    out = (struct gpu_buf){ (char *)pool.ptr + 512, 2 };
    ck_assert_int_eq(gpu_dot(g, 128, &x, &x, &out, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_dot: buffer 'out' has 2 bytes, needs 4");
    out.bytes = 4;
    ck_assert_int_eq(gpu_dot(g, 129, &x, &x, &out, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_dot: buffer 'x' has 512 bytes, needs 516");
    ck_assert_int_eq(gpu_dot(g, 128, &x, &x, &out, &err), 0);
    ck_assert_int_eq(gpu_sync(g, &err), 0);
}
END_TEST

/* ---- host-side element types: references for bf16 and fp16 ---- */

/* bf16 bits of f, rounded to nearest even (NaN becomes a quiet NaN). */
static uint16_t bf16_of(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(0x7fc0 | ((u >> 16) & 0x8000));
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static float bf16_val(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

static double half_val(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);

    return h & 0x8000 ? -v : v;
}

/* The fp16 value nearest to f, ties to even, overflow to infinity. */
static double half_round(float f)
{
    double a = fabs((double)f), q;
    int e;

    if (isnan(f))
        return NAN;
    if (a >= 65520.0)
        return copysign(INFINITY, f);
    frexp(a, &e);
    e = e - 1 < -14 ? -14 : e - 1; /* exponent of the leading bit, at least the normal minimum */
    q = ldexp(1.0, e - 10);
    return copysign(nearbyint(a / q) * q, f);
}

/* Bits of an fp16 value v that half_round() returned. */
static uint16_t half_bits(double v)
{
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a = fabs(v);
    int e;

    if (isnan(v))
        return 0x7e00;
    if (isinf(v))
        return sign | 0x7c00;
    if (a < ldexp(1.0, -14))
        return sign | (uint16_t)(a * ldexp(1.0, 24));
    frexp(a, &e);
    return sign | (uint16_t)((e + 14) << 10) | (uint16_t)(a * ldexp(1.0, 11 - e) - 1024);
}

/* Element i of p (type t) as a double. */
static double decode_at(enum gpu_dtype t, const void *p, size_t i)
{
    if (t == GPU_F32)
        return ((const float *)p)[i];
    if (t == GPU_BF16)
        return bf16_val(((const uint16_t *)p)[i]);
    return half_val(((const uint16_t *)p)[i]);
}

/* v as type t would round it (v is a float value). */
static double round_to(enum gpu_dtype t, double v)
{
    if (t == GPU_F32)
        return (float)v;
    if (t == GPU_BF16)
        return bf16_val(bf16_of((float)v));
    return half_round((float)v);
}

/* n floats of src rounded and stored as type t in a new array. */
static void *encode(enum gpu_dtype t, const float *src, size_t n)
{
    void *p = xmalloc_array(n ? n : 1, gpu_dtype_size(t));

    for (size_t i = 0; i < n; i++) {
        if (t == GPU_F32)
            ((float *)p)[i] = src[i];
        else if (t == GPU_BF16)
            ((uint16_t *)p)[i] = bf16_of(src[i]);
        else
            ((uint16_t *)p)[i] = half_bits(half_round(src[i]));
    }
    return p;
}

/* n random floats already representable in type t. */
static float *random_as(enum gpu_dtype t, size_t n, float lo, float hi)
{
    float *p = random_floats(n, lo, hi);

    for (size_t i = 0; i < n; i++)
        p[i] = (float)round_to(t, p[i]);
    return p;
}

static int32_t *random_ints(size_t n, int32_t lo, int32_t hi)
{
    int32_t *p = xmalloc_array(n ? n : 1, sizeof(*p));

    for (size_t i = 0; i < n; i++)
        p[i] = lo + (int32_t)(rng_next() % (uint64_t)(hi - lo + 1));
    return p;
}

static struct gpu_buf carve_bytes(size_t *off, size_t bytes)
{
    struct rag_err err = { 0 };
    struct gpu_buf b;

    ck_assert_msg(gpu_buf_carve(&pool, off, bytes, &b, &err) == 0, "%s", err.msg);
    return b;
}

static void put_bytes(struct gpu_buf *b, const void *p, size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_upload(g, b, p, bytes, &err) == 0, "%s", err.msg);
}

static void get_bytes(void *p, const struct gpu_buf *b, size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_download(g, p, b, bytes, &err) == 0, "%s", err.msg);
}

/* Fill bytes of b with 0xff: NaN in fp32, bf16 and fp16 alike. */
static void poison(struct gpu_buf *b, size_t bytes)
{
    unsigned char *p = xmalloc(bytes ? bytes : 1);

    memset(p, 0xff, bytes);
    put_bytes(b, p, bytes);
    free(p);
}

static bool same_or_nan(double got, double want)
{
    return (isnan(got) && isnan(want)) || got == want;
}

/* Half a step of type t at ref: what rounding a result to t may add. */
static double half_step(enum gpu_dtype t, double ref)
{
    return t == GPU_BF16 ? ldexp(fabs(ref), -8) : t == GPU_F16 ? ldexp(fabs(ref), -11) : 0;
}

/* ref as a model kernel stores it in type t: fp16 saturates at +-65504 (gpu.h). */
static double act_ref(enum gpu_dtype t, double ref)
{
    return t == GPU_F16 && isfinite(ref) ? fmax(fmin(ref, 65504.0), -65504.0) : ref;
}

static const char *type_str(enum gpu_dtype t)
{
    return t == GPU_F32 ? "f32" : t == GPU_BF16 ? "bf16" : "f16";
}

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
    enum gpu_dtype src_type; /* SwiGLU's gu; RMSNorm: unused */
    bool bias;
    float beta;
};

/*
 * c (m, n) of a fused GEMV against the product, in double, of the input
 * rows the unfused kernel wrote (h, (m, k) of ab_type) and w. The fused
 * kernel rounds the same values, but its 1/rms may differ from gpu_rmsnorm's
 * in the last bit (another order of the sum of squares), which moves a
 * rare element by one step of ab_type: allowed for two elements per row
 * at the row's largest |h w|.
 */
static size_t fused_check(const struct fused_shape *s, const void *h, const float *w,
                          const float *bias, const float *c0, const void *got)
{
    double step = s->ab_type == GPU_BF16 ? ldexp(1.0, -7) : ldexp(1.0, -10);
    size_t bad = 0;

    for (size_t i = 0; i < s->m; i++) {
        for (size_t j = 0; j < s->n; j++) {
            double ref = 0, mag = 0, big = 0,
                   add = (s->bias ? bias[j] : 0) + s->beta * c0[i * s->n + j];

            for (size_t l = 0; l < s->k; l++) {
                double p = decode_at(s->ab_type, h, i * s->k + l) * w[j * s->k + l];

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

/* Runs fused (the GEMV under test) after the unfused kernel filled b->h; checks c. */
static void fused_run(const struct fused_shape *s, struct fused_bufs *b, bool rms, const char *what)
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
    if (rms)
        rc = gpu_gemv_rmsnorm(g, &b->src, &b->norm, 1e-5f, &b->w, s->ab_type, pb, &b->c, s->c_type,
                              s->m, s->n, s->k, s->beta, &err);
    else
        rc = gpu_gemv_swiglu(g, &b->src, s->src_type, &b->w, s->ab_type, pb, &b->c, s->c_type, s->m,
                             s->n, s->k, s->beta, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    get_bytes(got, &b->c, mn * cs + 64);
    get_bytes(h, &b->h, hb);
    size_t bad = fused_check(s, h, w, bias, c0, got);
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
    fused_run(s, &b, true, "gemv_rmsnorm");
    get(x_after, &b.src, n);
    ck_assert_msg(memcmp(x, x_after, n * sizeof(float)) == 0, "gemv_rmsnorm wrote x");
    gpu_buf_free(g, &pool);
    free(x);
    free(gain);
    free(x_after);
}

/* gpu_gemv_swiglu against gpu_swiglu then the product. */
static void gemv_swiglu_case(const struct fused_shape *s)
{
    size_t n = s->m * 2 * s->k, is = gpu_dtype_size(s->src_type);
    float *gu = random_as(s->src_type, n, -6, 6);
    struct rag_err err = { 0 };
    struct fused_bufs b;
    void *egu;

    gu[0] = -100.0f;               /* silu is -0 */
    gu[1] = gu[s->k + 1] = 300.0f; /* 90000: +65504 in an fp16 input row */
    egu = encode(s->src_type, gu, n);
    fused_alloc(s, n * is, &b);
    put_bytes(&b.src, egu, n * is);
    ck_assert_msg(gpu_swiglu(g, &b.src, s->src_type, &b.h, s->ab_type, s->m, s->k, &err) == 0, "%s",
                  err.msg);
    fused_run(s, &b, false, "gemv_swiglu");
    gpu_buf_free(g, &pool);
    free(gu);
    free(egu);
}

/* Sum of h row i times w row j over k, with the sum of |terms| and the largest term. */
static double dot_row(const struct fused_shape *s, const void *h, size_t i, const float *w,
                      size_t j, double *mag, double *big)
{
    double sum = 0;

    *mag = *big = 0;
    for (size_t l = 0; l < s->k; l++) {
        double p = decode_at(s->ab_type, h, i * s->k + l) * w[j * s->k + l];

        sum += p;
        *mag += fabs(p);
        *big = fmax(*big, fabs(p));
    }
    return sum;
}

/*
 * gpu_gemv_rmsnorm_swiglu against gpu_rmsnorm, then both products and SwiGLU
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
    for (size_t i = 0; i < s->m; i++)
        for (size_t j = 0; j < s->n; j++) {
            double mg, bg, mu, bu;
            double gate = dot_row(s, h, i, w, j, &mg, &bg),
                   up = dot_row(s, h, i, w, s->n + j, &mu, &bu);
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
    free(got);
}

START_TEST(test_gemv_rmsnorm_swiglu)
{
    static const struct fused_shape shapes[] = {
        { 1, 1536, 576, GPU_F16, GPU_F16, GPU_F32, false, 0 }, /* SmolLM2-135M: one-row kernel */
        { 1, 1536, 576, GPU_BF16, GPU_BF16, GPU_F32, false, 0 },
        { 1, 37, 264, GPU_F16, GPU_F32, GPU_F32, false, 0 },
        { 4, 1536, 576, GPU_F16, GPU_F16, GPU_F32, false, 0 }, /* tensor-core kernel */
        { 32, 100, 40, GPU_BF16, GPU_F32, GPU_F32, false, 0 },
        { 1, 300, 4096, GPU_BF16, GPU_BF16, GPU_F32, false, 0 }, /* k past the one-row kernel */
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        gemv_rmsnorm_swiglu_case(&shapes[i]);
}
END_TEST

START_TEST(test_gemv_rmsnorm)
{
    static const struct fused_shape shapes[] = {
        { 1, 960, 576, GPU_BF16, GPU_F32, GPU_F32, true, 0 },
        { 1, 960, 576, GPU_F16, GPU_F32, GPU_F32, true, 0 },
        { 2, 3072, 576, GPU_F16, GPU_F32, GPU_F32, false, 0 },
        { 7, 3072, 576, GPU_BF16, GPU_F32, GPU_F32, false, 0 },
        { 32, 576, 576, GPU_BF16, GPU_F32, GPU_F32, false, 1 },
        { 32, 576, 576, GPU_F16, GPU_F16, GPU_F32, true, 0 },
        { 2, 1024, 4096, GPU_F16, GPU_F32, GPU_F32, true, 1 },
        { 1, 49152, 576, GPU_F16, GPU_F32, GPU_F32, false, 0 },
        { 3, 100, 40, GPU_BF16, GPU_BF16, GPU_F32, false, 0.5f },
        { 1, 33, 40, GPU_BF16, GPU_BF16, GPU_F32, true, 0.5f },
        { 1, 7, 2048, GPU_F16, GPU_F32, GPU_F32, false, 1 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        gemv_rmsnorm_case(&shapes[i]);
}
END_TEST

START_TEST(test_gemv_swiglu)
{
    static const struct fused_shape shapes[] = {
        { 1, 576, 1536, GPU_BF16, GPU_F32, GPU_F32, false, 1 },
        { 1, 576, 1536, GPU_F16, GPU_F32, GPU_F32, false, 1 },
        { 7, 576, 1536, GPU_F16, GPU_F32, GPU_F16, false, 1 },
        { 32, 576, 1536, GPU_BF16, GPU_BF16, GPU_BF16, true, 0 },
        { 32, 576, 1536, GPU_F16, GPU_F32, GPU_F32, false, 1 },
        { 2, 1024, 14336, GPU_F16, GPU_F32, GPU_F32, false, 1 },
        { 5, 40, 24, GPU_F16, GPU_F32, GPU_F32, true, 0 },
        { 1, 41, 24, GPU_F16, GPU_F16, GPU_F16, true, 0 },
        { 1, 576, 1536, GPU_BF16, GPU_F32, GPU_BF16, false, 1 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        gemv_swiglu_case(&shapes[i]);
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
        gpu_gemv_swiglu(g, &a, GPU_F16, &w, GPU_BF16, NULL, &c, GPU_F32, 1, 4, 8, 0, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg,
                     "gpu_gemv_swiglu: 'gu' must be f32 or bf16 (the type of 'w'), not f16");
    ck_assert_int_eq(
        gpu_gemv_swiglu(g, &a, GPU_F32, &w, GPU_BF16, NULL, &c, GPU_F32, 2, 4, 128, 0, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_gemv_swiglu: buffer 'gu' has 1024 bytes, needs 2048");
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 0, 4, 8, 0, &err), 0);
    ck_assert_int_eq(gpu_gemv(g, &a, &w, GPU_F16, NULL, &c, GPU_F32, 1, 4, 8, 0, &err), 0);
    ck_assert_int_eq(
        gpu_gemv_rmsnorm(g, &a, &nrm, 1e-5f, &w, GPU_F16, NULL, &c, GPU_F32, 2, 4, 8, 0, &err), 0);
    ck_assert_int_eq(
        gpu_gemv_swiglu(g, &a, GPU_F16, &w, GPU_F16, NULL, &c, GPU_F16, 2, 4, 8, 0, &err), 0);
    ck_assert_int_eq(gpu_sync(g, &err), 0);
}
END_TEST

/* ---- RMSNorm, SwiGLU, softmax, argmax, embedding rows ---- */

static void rmsnorm_case(size_t n_rows, size_t dim, bool with_r, enum gpu_dtype ot)
{
    size_t n = n_rows * dim, os = gpu_dtype_size(ot), off = 0, bad = 0;
    float *x = random_floats(n, -2, 2), *r = random_floats(n, -1, 1),
          *w = random_floats(dim, 0.5f, 1.5f);
    float *got_x = filled_floats(n, NAN);
    void *got = xmalloc_array(n + GUARD, os);
    float eps = 1e-5f;
    struct rag_err err = { 0 };
    struct gpu_buf bx, br, bw, bo;

    w[0] = 1e6f; /* column 0 mostly past fp16's range: saturated there */
    pool_alloc(4 * gpu_align((n + GUARD) * 4));
    bx = carve_floats(&off, n);
    br = carve_floats(&off, n);
    bw = carve_floats(&off, dim);
    bo = carve_bytes(&off, (n + GUARD) * os);
    put(&bx, x, n);
    put(&br, r, n);
    put(&bw, w, dim);
    poison(&bo, bo.bytes);
    ck_assert_msg(gpu_rmsnorm(g, &bx, with_r ? &br : NULL, &bw, &bo, ot, n_rows, dim, eps, &err) ==
                      0,
                  "%s", err.msg);
    get(got_x, &bx, n);
    get_bytes(got, &bo, (n + GUARD) * os);
    for (size_t i = 0; i < n_rows; i++) {
        double ss = 0;

        for (size_t j = 0; j < dim; j++) {
            float v = with_r ? x[i * dim + j] + r[i * dim + j] : x[i * dim + j];

            bad += memcmp(&v, &got_x[i * dim + j], sizeof(v)) != 0;
            ss += (double)v * v;
        }
        double inv = 1.0 / sqrt(ss / dim + eps);
        for (size_t j = 0; j < dim; j++) {
            double ref = act_ref(ot, got_x[i * dim + j] * inv * w[j]);
            double tol = 1e-5 * fabs(ref) + 1e-6 + half_step(ot, ref);

            bad += !within(decode_at(ot, got, i * dim + j), ref, tol);
        }
    }
    for (size_t i = n; i < n + GUARD; i++)
        bad += !isnan(decode_at(ot, got, i));
    ck_assert_msg(bad == 0, "rmsnorm %zux%zu r=%d %s: %zu wrong (seed %llu)", n_rows, dim, with_r,
                  type_str(ot), bad, (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(x);
    free(r);
    free(w);
    free(got_x);
    free(got);
}

START_TEST(test_rmsnorm)
{
    rmsnorm_case(1, 576, true, GPU_F32);
    rmsnorm_case(7, 4096, true, GPU_BF16);
    rmsnorm_case(3, 384, false, GPU_F32);
    rmsnorm_case(32, 576, false, GPU_BF16);
    rmsnorm_case(5, 1000, true, GPU_F32);
    rmsnorm_case(9, 576, true, GPU_F16);
    rmsnorm_case(33, 4096, false, GPU_F16);
    rmsnorm_case(2, 100, true, GPU_F16);
    rmsnorm_case(2, 8200, true, GPU_BF16); /* more than one round of loads a thread */
}
END_TEST

START_TEST(test_rmsnorm_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf x, w, out;

    pool_alloc(4096);
    x = (struct gpu_buf){ pool.ptr, 1024 };
    w = (struct gpu_buf){ (char *)pool.ptr + 1024, 1024 };
    out = (struct gpu_buf){ (char *)pool.ptr + 2048, 2048 };
    ck_assert_int_eq(gpu_rmsnorm(g, &x, NULL, &w, &out, (enum gpu_dtype)3, 2, 8, 1e-5f, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_rmsnorm: unknown type 3 of 'out'");
    ck_assert_int_eq(gpu_rmsnorm(g, &x, NULL, &w, &out, GPU_F16, 2, 8, 1e-5f, &err), 0);
    ck_assert_int_eq(gpu_rmsnorm(g, &x, NULL, &w, &out, GPU_F16, 2, 1000, 1e-5f, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_rmsnorm: buffer 'x' has 1024 bytes, needs 8000");
    ck_assert_int_eq(gpu_rmsnorm(g, &x, NULL, &w, &out, GPU_F32, 2, 200, 1e-5f, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_rmsnorm: buffer 'x' has 1024 bytes, needs 1600");
    ck_assert_int_eq(gpu_rmsnorm(g, &x, &x, &w, &out, GPU_F32, 2, 8, 1e-5f, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_rmsnorm: buffers 'x' and 'r' overlap");
    ck_assert_int_eq(gpu_rmsnorm(g, &x, NULL, &w, &out, GPU_F32, 2, 8, -1.0f, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_rmsnorm: eps -1 is not a finite value >= 0");
    ck_assert_int_eq(gpu_rmsnorm(g, &x, NULL, &w, &x, GPU_F32, 2, 8, 1e-5f, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_rmsnorm: buffers 'out' and 'x' overlap");
}
END_TEST

static void swiglu_case(size_t n_rows, size_t ff, enum gpu_dtype it, enum gpu_dtype ot)
{
    size_t n = n_rows * ff, is = gpu_dtype_size(it), os = gpu_dtype_size(ot), off = 0, bad = 0;
    float *gu = random_as(it, 2 * n, -12, 12);
    void *egu = encode(it, gu, 2 * n), *got = xmalloc_array(n + GUARD, os);
    struct rag_err err = { 0 };
    struct gpu_buf bi, bo;

    gu[0] = -100.0f; /* exp(-g) overflows: silu is -0 */
    gu[1] = 0.0f;
    gu[2] = gu[ff + 2] = 300.0f; /* 90000: stored as +65504 in an fp16 out */
    gu[3] = 300.0f;
    gu[ff + 3] = -300.0f;
    free(egu);
    egu = encode(it, gu, 2 * n);
    pool_alloc(gpu_align(2 * n * is) + gpu_align((n + GUARD) * os));
    bi = carve_bytes(&off, 2 * n * is);
    bo = carve_bytes(&off, (n + GUARD) * os);
    put_bytes(&bi, egu, 2 * n * is);
    poison(&bo, bo.bytes);
    ck_assert_msg(gpu_swiglu(g, &bi, it, &bo, ot, n_rows, ff, &err) == 0, "%s", err.msg);
    get_bytes(got, &bo, (n + GUARD) * os);
    for (size_t i = 0; i < n_rows; i++) {
        for (size_t j = 0; j < ff; j++) {
            double gate = gu[i * 2 * ff + j], up = gu[i * 2 * ff + ff + j];
            double ref = act_ref(ot, gate / (1 + exp(-gate)) * up);
            double tol = 1e-5 * fabs(ref) + 1e-6 + half_step(ot, ref);

            bad += !within(decode_at(ot, got, i * ff + j), ref, tol);
        }
    }
    for (size_t i = n; i < n + GUARD; i++)
        bad += !isnan(decode_at(ot, got, i));
    ck_assert_msg(bad == 0, "swiglu %zux%zu %s -> %s: %zu wrong (seed %llu)", n_rows, ff,
                  type_str(it), type_str(ot), bad, (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(gu);
    free(egu);
    free(got);
}

START_TEST(test_swiglu)
{
    swiglu_case(5, 1536, GPU_F32, GPU_F32);
    swiglu_case(3, 1536, GPU_F32, GPU_BF16);
    swiglu_case(2, 14336, GPU_BF16, GPU_F32);
    swiglu_case(17, 100, GPU_BF16, GPU_BF16);
    swiglu_case(4, 1536, GPU_F32, GPU_F16);
    swiglu_case(3, 2000, GPU_F16, GPU_F32);
    swiglu_case(9, 100, GPU_F16, GPU_F16);
    swiglu_case(2, 640, GPU_BF16, GPU_F16);
    swiglu_case(2, 640, GPU_F16, GPU_BF16);
}
END_TEST

START_TEST(test_swiglu_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf gu, out;

    pool_alloc(4096);
    gu = (struct gpu_buf){ pool.ptr, 1024 };
    out = (struct gpu_buf){ (char *)pool.ptr + 2048, 2048 };
    ck_assert_int_eq(gpu_swiglu(g, &gu, GPU_F32, &out, GPU_F32, 2, 65, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_swiglu: buffer 'gu' has 1024 bytes, needs 1040");
    ck_assert_int_eq(gpu_swiglu(g, &gu, (enum gpu_dtype)4, &out, GPU_F32, 2, 8, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_swiglu: unknown type 4 of 'gu'");
    ck_assert_int_eq(gpu_swiglu(g, &gu, GPU_F16, &out, (enum gpu_dtype)5, 2, 8, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_swiglu: unknown type 5 of 'out'");
    ck_assert_int_eq(gpu_swiglu(g, &gu, GPU_F16, &out, GPU_F16, 2, 257, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_swiglu: buffer 'gu' has 1024 bytes, needs 2056");
    ck_assert_int_eq(gpu_swiglu(g, &gu, GPU_F16, &out, GPU_F16, 2, 128, &err), 0);
    ck_assert_int_eq(gpu_swiglu(g, &gu, GPU_F32, &gu, GPU_F32, 2, 8, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_swiglu: buffers 'out' and 'gu' overlap");
}
END_TEST

static void softmax_case(size_t n_rows, size_t n, float scale, bool in_place)
{
    size_t total = n_rows * n, off = 0, bad = 0;
    float *x = random_floats(total, -8, 8), *got = filled_floats(total + GUARD, NAN);
    struct rag_err err = { 0 };
    struct gpu_buf bx, by;

    pool_alloc(2 * gpu_align((total + GUARD) * 4));
    bx = carve_floats(&off, total);
    by = in_place ? bx : carve_floats(&off, total + GUARD);
    put(&bx, x, total);
    if (!in_place)
        put(&by, got, total + GUARD);
    ck_assert_msg(gpu_softmax_rows(g, &bx, &by, n_rows, n, scale, &err) == 0, "%s", err.msg);
    get(got, &by, in_place ? total : total + GUARD);
    for (size_t i = 0; i < n_rows; i++) {
        double m = -INFINITY, sum = 0;

        for (size_t j = 0; j < n; j++)
            m = fmax(m, (double)scale * x[i * n + j]);
        for (size_t j = 0; j < n; j++)
            sum += exp((double)scale * x[i * n + j] - m);
        for (size_t j = 0; j < n; j++) {
            double ref = exp((double)scale * x[i * n + j] - m) / sum;

            bad += !within(got[i * n + j], ref, 2e-5 * ref + 1e-9);
        }
    }
    for (size_t i = total; !in_place && i < total + GUARD; i++)
        bad += !isnan(got[i]);
    ck_assert_msg(bad == 0, "softmax %zux%zu: %zu wrong (seed %llu)", n_rows, n, bad,
                  (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(x);
    free(got);
}

START_TEST(test_softmax)
{
    softmax_case(3, 49152, 1.0f, false);
    softmax_case(2, 151936, 0.7f, true);
    softmax_case(5, 7, 2.0f, false);
}
END_TEST

START_TEST(test_argmax)
{
    size_t n_rows = 8, n = 49152, off = 0;
    float *x = random_floats(n_rows * n, -5, 5);
    int32_t want[8], got[8 + 1];
    struct rag_err err = { 0 };
    struct gpu_buf bx, bi;

    for (size_t i = 0; i < n_rows; i++) {
        size_t j = rng_next() % n;

        x[i * n + j] = 6.0f + (float)i;
        want[i] = (int32_t)j;
    }
    x[1 * n + 7] = x[1 * n + 9] = 100.0f; /* a tie: the lower index wins */
    want[1] = 7;
    x[2 * n + ((size_t)want[2] + 1) % n] = NAN; /* NaN is never the answer */
    for (size_t j = 0; j < n; j++)
        x[3 * n + j] = -INFINITY; /* nothing above -inf: 0 */
    want[3] = 0;
    x[4 * n + n - 1] = 50.0f; /* the last element */
    want[4] = (int32_t)n - 1;
    pool_alloc(gpu_align(n_rows * n * 4) + GPU_ALIGN);
    bx = carve_floats(&off, n_rows * n);
    bi = carve_bytes(&off, sizeof(got));
    put(&bx, x, n_rows * n);
    poison(&bi, sizeof(got));
    ck_assert_msg(gpu_argmax_rows(g, &bx, &bi, n_rows, n, &err) == 0, "%s", err.msg);
    get_bytes(got, &bi, sizeof(got));
    for (size_t i = 0; i < n_rows; i++)
        ck_assert_msg(got[i] == want[i], "argmax row %zu: %d, want %d", i, got[i], want[i]);
    ck_assert_int_eq(got[n_rows], -1);
    free(x);
}
END_TEST

static void embed_case(enum gpu_dtype t, size_t n_vocab, size_t dim, size_t n_ids, float scale)
{
    size_t ts = gpu_dtype_size(t), off = 0, bad = 0;
    float *table = random_floats(n_vocab * dim, -1, 1), *got = filled_floats(n_ids * dim, 0);
    void *et = encode(t, table, n_vocab * dim);
    int32_t *ids = random_ints(n_ids, 0, (int32_t)n_vocab - 1);
    struct rag_err err = { 0 };
    struct gpu_buf bt, bi, bo;

    ids[0] = (int32_t)n_vocab - 1;
    ids[1] = -1;               /* out of range: a NaN row */
    ids[2] = (int32_t)n_vocab; /* likewise */
    pool_alloc(gpu_align(n_vocab * dim * ts) + gpu_align(n_ids * 4) + gpu_align(n_ids * dim * 4));
    bt = carve_bytes(&off, n_vocab * dim * ts);
    bi = carve_bytes(&off, n_ids * 4);
    bo = carve_floats(&off, n_ids * dim);
    put_bytes(&bt, et, n_vocab * dim * ts);
    put_bytes(&bi, ids, n_ids * 4);
    poison(&bo, n_ids * dim * 4);
    ck_assert_msg(gpu_embed_rows(g, &bt, t, n_vocab, dim, &bi, n_ids, scale, &bo, &err) == 0, "%s",
                  err.msg);
    get(got, &bo, n_ids * dim);
    for (size_t i = 0; i < n_ids; i++) {
        bool ok = ids[i] >= 0 && (size_t)ids[i] < n_vocab;

        for (size_t j = 0; j < dim; j++) {
            double ref = ok ? scale * decode_at(t, et, (size_t)ids[i] * dim + j) : NAN;

            bad += !same_or_nan(got[i * dim + j], (float)ref);
        }
    }
    ck_assert_msg(bad == 0, "embed %zux%zu: %zu wrong (seed %llu)", n_vocab, dim, bad,
                  (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(table);
    free(got);
    free(et);
    free(ids);
}

START_TEST(test_embed_rows)
{
    embed_case(GPU_F32, 1000, 576, 37, 1.0f);
    embed_case(GPU_BF16, 49152, 64, 9, 1.0f);
    embed_case(GPU_F16, 300, 640, 5, 25.3f);
}
END_TEST

/* ---- RoPE + KV write ---- */

struct rope_shape {
    size_t n_tokens, n_heads, n_kv_heads, head_dim;
    enum gpu_rope_type type;
    enum gpu_dtype kv_type;
    double base;
};

/* Columns of pair i of a head for a rope type. */
static void rope_pair(enum gpu_rope_type t, size_t hd, size_t i, size_t *d0, size_t *d1)
{
    *d0 = t == GPU_ROPE_NEOX ? i : 2 * i;
    *d1 = t == GPU_ROPE_NEOX ? i + hd / 2 : 2 * i + 1;
}

/* x0, x1 turned by (float)pos * inv_freq, the angle rounded as fp32 like the kernel. */
static void rope_turn(double x0, double x1, int32_t pos, float inv_freq, double *y0, double *y1)
{
    float a = (float)pos * inv_freq;

    *y0 = x0 * cos((double)a) - x1 * sin((double)a);
    *y1 = x0 * sin((double)a) + x1 * cos((double)a);
}

/* Count cache elements unlike want: NaN must stay NaN, V is exact, K within tol. */
static size_t rope_check_cache(const struct rope_shape *s, const double *want, const void *got,
                               size_t n, bool exact)
{
    size_t bad = 0;

    for (size_t i = 0; i < n; i++) {
        double v = decode_at(s->kv_type, got, i);

        if (isnan(want[i]) || exact)
            bad += !same_or_nan(v, isnan(want[i]) ? NAN : round_to(s->kv_type, want[i]));
        else
            bad += !within(v, want[i], 1e-5 * 2 + 1e-6 + half_step(s->kv_type, want[i]));
    }
    return bad;
}

/* Reference: q rows and the cache contents after the kernel, in double. */
static void rope_reference(const struct rope_shape *s, const float *qkv, const int32_t *pos,
                           const int32_t *slots, const float *inv_freq, double *q, double *kc,
                           double *vc, size_t n_slots)
{
    size_t hd = s->head_dim, width = (s->n_heads + 2 * s->n_kv_heads) * hd;

    for (size_t t = 0; t < s->n_tokens; t++) {
        const float *row = qkv + t * width;
        bool bad = pos[t] < 0 || (slots[t] >= 0 && (size_t)slots[t] >= n_slots);
        bool write = slots[t] >= 0 && !bad;
        size_t blk = write ? (size_t)slots[t] / GPU_KV_BLOCK : 0, off = (size_t)slots[t] % 16;

        for (size_t h = 0; h < s->n_heads + s->n_kv_heads; h++) {
            for (size_t i = 0; i < hd / 2; i++) {
                size_t d0, d1;
                double y0, y1;

                rope_pair(s->type, hd, i, &d0, &d1);
                rope_turn(row[h * hd + d0], row[h * hd + d1], pos[t], inv_freq[i], &y0, &y1);
                if (h < s->n_heads) {
                    q[(t * s->n_heads + h) * hd + d0] = bad ? NAN : y0;
                    q[(t * s->n_heads + h) * hd + d1] = bad ? NAN : y1;
                } else if (write) {
                    size_t at = ((blk * s->n_kv_heads + h - s->n_heads) * 16 + off) * hd;
                    kc[at + d0] = y0;
                    kc[at + d1] = y1;
                }
            }
        }
        for (size_t h = 0; write && h < s->n_kv_heads; h++)
            for (size_t d = 0; d < hd; d++)
                vc[((blk * s->n_kv_heads + h) * 16 + off) * hd + d] =
                    row[(s->n_heads + s->n_kv_heads + h) * hd + d];
    }
}

/* Distinct random slots of n_slots, with padding, an invalid slot and a bad position. */
static void rope_indices(size_t n_tokens, size_t n_slots, int32_t *pos, int32_t *slots)
{
    int32_t *all = xmalloc_array(n_slots, sizeof(*all));

    for (size_t i = 0; i < n_slots; i++)
        all[i] = (int32_t)i;
    for (size_t i = n_slots - 1; i > 0; i--) {
        size_t j = rng_next() % (i + 1);
        int32_t tmp = all[i];
        all[i] = all[j];
        all[j] = tmp;
    }
    for (size_t t = 0; t < n_tokens; t++) {
        slots[t] = all[t];
        pos[t] = (int32_t)(rng_next() % 8192);
    }
    slots[0] = -1;               /* padding: nothing written */
    slots[1] = (int32_t)n_slots; /* past the cache: NaN q row */
    pos[2] = 0;
    pos[3] = -5; /* bad position: NaN q row, nothing written */
    free(all);
}

static void rope_case(const struct rope_shape *s)
{
    size_t hd = s->head_dim, n_blocks = s->n_tokens / 16 + 2, n_slots = n_blocks * 16;
    size_t width = (s->n_heads + 2 * s->n_kv_heads) * hd, n_q = s->n_tokens * s->n_heads * hd;
    size_t n_cache = n_slots * s->n_kv_heads * hd, ks = gpu_dtype_size(s->kv_type), off = 0;
    float *qkv = random_floats(s->n_tokens * width, -1, 1), *inv = filled_floats(hd / 2, 0);
    float *gq = filled_floats(n_q, 0), *nan_cache = filled_floats(n_cache, NAN);
    double *q = xmalloc_array(n_q, sizeof(double)), *kc = xmalloc_array(n_cache, sizeof(double));
    double *vc = xmalloc_array(n_cache, sizeof(double));
    int32_t *pos = xmalloc_array(s->n_tokens, 4), *slots = xmalloc_array(s->n_tokens, 4);
    void *enan = encode(s->kv_type, nan_cache, n_cache), *gk = xmalloc_array(n_cache, ks);
    void *gv = xmalloc_array(n_cache, ks);
    struct rag_err err = { 0 };
    struct gpu_buf bqkv, binv, bpos, bslots, bq;
    struct gpu_kv_cache kv = {
        .type = s->kv_type, .n_blocks = n_blocks, .n_kv_heads = s->n_kv_heads, .head_dim = hd
    };

    for (size_t i = 0; i < hd / 2; i++)
        inv[i] = (float)pow(s->base, -2.0 * (double)i / (double)hd);
    for (size_t i = 0; i < n_cache; i++)
        kc[i] = vc[i] = NAN;
    rope_indices(s->n_tokens, n_slots, pos, slots);
    rope_reference(s, qkv, pos, slots, inv, q, kc, vc, n_slots);
    pool_alloc(gpu_align(s->n_tokens * width * 4) + gpu_align(hd * 2) +
               2 * gpu_align(s->n_tokens * 4) + gpu_align(n_q * 4) + 2 * gpu_align(n_cache * ks));
    bqkv = carve_floats(&off, s->n_tokens * width);
    binv = carve_floats(&off, hd / 2);
    bpos = carve_bytes(&off, s->n_tokens * 4);
    bslots = carve_bytes(&off, s->n_tokens * 4);
    bq = carve_floats(&off, n_q);
    kv.k = carve_bytes(&off, n_cache * ks);
    kv.v = carve_bytes(&off, n_cache * ks);
    put(&bqkv, qkv, s->n_tokens * width);
    put(&binv, inv, hd / 2);
    put_bytes(&bpos, pos, s->n_tokens * 4);
    put_bytes(&bslots, slots, s->n_tokens * 4);
    poison(&bq, n_q * 4);
    put_bytes(&kv.k, enan, n_cache * ks);
    put_bytes(&kv.v, enan, n_cache * ks);
    ck_assert_msg(gpu_rope_kv(g, &bqkv, s->n_tokens, s->n_heads, s->type, &binv, &bpos, &bslots,
                              &bq, &kv, &err) == 0,
                  "%s", err.msg);
    get(gq, &bq, n_q);
    get_bytes(gk, &kv.k, n_cache * ks);
    get_bytes(gv, &kv.v, n_cache * ks);
    size_t bad = 0;
    for (size_t i = 0; i < n_q; i++)
        bad += isnan(q[i]) ? !isnan(gq[i]) : !within(gq[i], q[i], 1e-5 * 2 + 1e-6);
    bad += rope_check_cache(s, kc, gk, n_cache, false);
    bad += rope_check_cache(s, vc, gv, n_cache, true);
    ck_assert_msg(bad == 0, "rope_kv %zu tokens hd %zu type %d kv %s: %zu wrong (seed %llu)",
                  s->n_tokens, hd, s->type, type_str(s->kv_type), bad,
                  (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(qkv);
    free(inv);
    free(gq);
    free(nan_cache);
    free(q);
    free(kc);
    free(vc);
    free(pos);
    free(slots);
    free(enan);
    free(gk);
    free(gv);
}

START_TEST(test_rope_kv)
{
    static const struct rope_shape shapes[] = {
        { 37, 9, 3, 64, GPU_ROPE_NORM, GPU_F32, 100000 },
        { 37, 9, 3, 64, GPU_ROPE_NEOX, GPU_BF16, 100000 },
        { 20, 32, 8, 128, GPU_ROPE_NORM, GPU_BF16, 500000 },
        { 50, 14, 2, 64, GPU_ROPE_NEOX, GPU_F32, 1000000 },
        { 6, 12, 2, 128, GPU_ROPE_NEOX, GPU_F32, 1000000 },
        { 37, 9, 3, 64, GPU_ROPE_NORM, GPU_F16, 100000 },
        { 40, 14, 2, 64, GPU_ROPE_NEOX, GPU_F16, 1000000 },
        { 20, 32, 8, 128, GPU_ROPE_NEOX, GPU_F16, 500000 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        rope_case(&shapes[i]);
}
END_TEST

/* ---- attention over the paged cache ---- */

struct attn_shape {
    size_t n_heads, n_kv_heads, head_dim;
    enum gpu_dtype kv_type, out_type;
};

/* A host copy of a paged cache: values in double (NaN where nothing was written). */
struct host_cache {
    size_t n_blocks, n_kv_heads, head_dim;
    float *k, *v;
};

static void host_cache_init(struct host_cache *c, const struct attn_shape *s, size_t n_blocks)
{
    size_t n = n_blocks * GPU_KV_BLOCK * s->n_kv_heads * s->head_dim;

    c->n_blocks = n_blocks;
    c->n_kv_heads = s->n_kv_heads;
    c->head_dim = s->head_dim;
    c->k = filled_floats(n, NAN);
    c->v = filled_floats(n, NAN);
}

static size_t host_at(const struct host_cache *c, int32_t blk, size_t kvh, size_t t)
{
    return (((size_t)blk * c->n_kv_heads + kvh) * GPU_KV_BLOCK + t % GPU_KV_BLOCK) * c->head_dim;
}

/* Fill tokens 0..len-1 of a sequence with random K and V representable in type. */
static void host_cache_fill(struct host_cache *c, const int32_t *table, size_t len,
                            enum gpu_dtype type)
{
    for (size_t t = 0; t < len; t++) {
        for (size_t h = 0; h < c->n_kv_heads; h++) {
            size_t at = host_at(c, table[t / GPU_KV_BLOCK], h, t);

            for (size_t d = 0; d < c->head_dim; d++) {
                c->k[at + d] = (float)round_to(type, rng_float(-1, 1));
                c->v[at + d] = (float)round_to(type, rng_float(-1, 1));
            }
        }
    }
}

/* Upload the cache into kv (carved from the pool at *off). */
static void host_cache_put(const struct host_cache *c, struct gpu_kv_cache *kv, size_t *off)
{
    size_t n = c->n_blocks * GPU_KV_BLOCK * c->n_kv_heads * c->head_dim;
    size_t bytes = n * gpu_dtype_size(kv->type);
    void *ek = encode(kv->type, c->k, n), *ev = encode(kv->type, c->v, n);

    kv->n_blocks = c->n_blocks;
    kv->n_kv_heads = c->n_kv_heads;
    kv->head_dim = c->head_dim;
    kv->k = carve_bytes(off, bytes);
    kv->v = carve_bytes(off, bytes);
    put_bytes(&kv->k, ek, bytes);
    put_bytes(&kv->v, ev, bytes);
    free(ek);
    free(ev);
}

static size_t host_cache_bytes(const struct host_cache *c, enum gpu_dtype t)
{
    return 2 *
           gpu_align(c->n_blocks * GPU_KV_BLOCK * c->n_kv_heads * c->head_dim * gpu_dtype_size(t));
}

/*
 * Attention of one query row q (head_dim) over keys 0..n_keys-1 of kv head
 * kvh, checked against got (head_dim values of out_type); returns the
 * number of wrong values. Tolerance: 1e-4 of sum_t p_t |v_t[d]| plus 1e-6
 * (fp32 sums over up to thousands of keys), plus half a step of ot.
 */
static size_t attn_check_row(const struct host_cache *c, const int32_t *table, size_t kvh,
                             const float *q, size_t n_keys, float scale, enum gpu_dtype ot,
                             const void *got, size_t got_at)
{
    size_t hd = c->head_dim, bad = 0;
    double *p = xmalloc_array(n_keys ? n_keys : 1, sizeof(double)), m = -INFINITY, sum = 0;

    for (size_t t = 0; t < n_keys; t++) {
        const float *k = c->k + host_at(c, table[t / GPU_KV_BLOCK], kvh, t);
        double x = 0;

        for (size_t d = 0; d < hd; d++)
            x += (double)q[d] * k[d];
        p[t] = x * scale;
        m = fmax(m, p[t]);
    }
    for (size_t t = 0; t < n_keys; t++)
        sum += p[t] = exp(p[t] - m);
    for (size_t d = 0; d < hd; d++) {
        double ref = 0, mag = 0;

        for (size_t t = 0; t < n_keys; t++) {
            double v = c->v[host_at(c, table[t / GPU_KV_BLOCK], kvh, t) + d];
            ref += p[t] / sum * v;
            mag += p[t] / sum * fabs(v);
        }
        double tol = 1e-4 * mag + 1e-6 + half_step(ot, ref);
        bad += !within(decode_at(ot, got, got_at + d), ref, tol);
    }
    free(p);
    return bad;
}

/* A random permutation of n block ids. */
static int32_t *shuffled_blocks(size_t n)
{
    int32_t *b = xmalloc_array(n, sizeof(*b));

    for (size_t i = 0; i < n; i++)
        b[i] = (int32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_next() % (i + 1);
        int32_t tmp = b[i];
        b[i] = b[j];
        b[j] = tmp;
    }
    return b;
}

/* Check decode output of every sequence: valid lengths against the reference. */
static size_t decode_check(const struct attn_shape *s, const struct host_cache *c,
                           const int32_t *tables, size_t max_blocks, const int32_t *lens,
                           size_t n_seqs, const float *q, float scale, const void *got,
                           int32_t bad_seq)
{
    size_t hd = s->head_dim, group = s->n_heads / s->n_kv_heads, bad = 0;

    for (size_t i = 0; i < n_seqs; i++) {
        bool nan = lens[i] < 0 || (size_t)lens[i] > max_blocks * 16 || (int32_t)i == bad_seq;

        for (size_t h = 0; h < s->n_heads; h++) {
            size_t at = (i * s->n_heads + h) * hd;

            if (nan || lens[i] == 0) {
                for (size_t d = 0; d < hd; d++)
                    bad += !same_or_nan(decode_at(s->out_type, got, at + d), nan ? NAN : 0.0);
                continue;
            }
            bad += attn_check_row(c, tables + i * max_blocks, h / group, q + at, (size_t)lens[i],
                                  scale, s->out_type, got, at);
        }
    }
    return bad;
}

static void decode_case(const struct attn_shape *s, const int32_t *lens, size_t n_seqs,
                        size_t max_blocks, int32_t bad_seq)
{
    size_t hd = s->head_dim, n_q = n_seqs * s->n_heads * hd, os = gpu_dtype_size(s->out_type);
    size_t n_blocks = n_seqs * max_blocks + 3, off = 0, ws;
    int32_t *tables = shuffled_blocks(n_blocks);
    float *q = random_floats(n_q, -2, 2), scale = 2.0f / sqrtf((float)hd);
    void *got = xmalloc_array(n_q + GUARD, os);
    struct host_cache c;
    struct rag_err err = { 0 };
    struct gpu_kv_cache kv = {
        .type = s->kv_type, .n_blocks = n_blocks, .n_kv_heads = s->n_kv_heads, .head_dim = hd
    };
    struct gpu_seqs seqs = { .n_seqs = n_seqs, .max_blocks = max_blocks };
    struct gpu_buf bq, bo, work;

    host_cache_init(&c, s, n_blocks);
    for (size_t i = 0; i < n_seqs; i++)
        if (lens[i] > 0 && (size_t)lens[i] <= max_blocks * 16)
            host_cache_fill(&c, tables + i * max_blocks, (size_t)lens[i], s->kv_type);
    if (bad_seq >= 0)
        tables[(size_t)bad_seq * max_blocks] = (int32_t)n_blocks; /* outside the cache */
    ws = gpu_attn_decode_workspace(g, s->n_heads, &kv, &seqs);
    ck_assert_uint_gt(ws, 0);
    pool_alloc(host_cache_bytes(&c, s->kv_type) + gpu_align(n_seqs * max_blocks * 4) +
               gpu_align(n_seqs * 4) + gpu_align(n_q * 4) + gpu_align((n_q + GUARD) * os) +
               gpu_align(ws));
    host_cache_put(&c, &kv, &off);
    seqs.block_tables = carve_bytes(&off, n_seqs * max_blocks * 4);
    seqs.lens = carve_bytes(&off, n_seqs * 4);
    bq = carve_floats(&off, n_q);
    bo = carve_bytes(&off, (n_q + GUARD) * os);
    work = carve_bytes(&off, ws);
    put_bytes(&seqs.block_tables, tables, n_seqs * max_blocks * 4);
    put_bytes(&seqs.lens, lens, n_seqs * 4);
    put(&bq, q, n_q);
    poison(&bo, bo.bytes);
    poison(&work, ws);
    ck_assert_msg(
        gpu_attn_decode(g, &bq, s->n_heads, &kv, &seqs, scale, &work, &bo, s->out_type, &err) == 0,
        "%s", err.msg);
    get_bytes(got, &bo, (n_q + GUARD) * os);
    size_t bad = decode_check(s, &c, tables, max_blocks, lens, n_seqs, q, scale, got, bad_seq);
    for (size_t i = n_q; i < n_q + GUARD; i++)
        bad += !isnan(decode_at(s->out_type, got, i));
    ck_assert_msg(bad == 0, "attn_decode heads %zu/%zu hd %zu kv %s out %s: %zu wrong (seed %llu)",
                  s->n_heads, s->n_kv_heads, hd, type_str(s->kv_type), type_str(s->out_type), bad,
                  (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(tables);
    free(q);
    free(got);
    free(c.k);
    free(c.v);
}

START_TEST(test_attn_decode)
{
    static const struct attn_shape shapes[] = {
        { 9, 3, 64, GPU_BF16, GPU_F32 },  { 32, 8, 128, GPU_BF16, GPU_BF16 },
        { 14, 2, 64, GPU_F32, GPU_F32 },  { 12, 2, 128, GPU_F32, GPU_BF16 },
        { 12, 12, 32, GPU_F32, GPU_F32 }, { 9, 3, 64, GPU_F16, GPU_F16 },
        { 32, 8, 128, GPU_F16, GPU_F32 }, { 14, 2, 64, GPU_F16, GPU_BF16 },
        { 12, 12, 32, GPU_F16, GPU_F16 }, { 12, 2, 128, GPU_F32, GPU_F16 },
    };
    static const int32_t lens[] = { 1, 17, 300, 1000, 16, 0, 555, 999 };
    static const int32_t odd[] = { 5, -1, 2000, 64 }; /* -1 and past the table: NaN */
    static const int32_t short_lens[] = { 1, 17, 0, 255, 16, 100, 256, 3 };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        decode_case(&shapes[i], lens, 8, 63, -1);
    decode_case(&shapes[0], odd, 4, 20, 3);       /* sequence 3 has a block id past the cache */
    decode_case(&shapes[1], lens + 3, 1, 64, -1); /* batch 1, 1000 tokens */
    decode_case(&shapes[5], odd, 4, 20, 0);       /* the same in fp16 */
    decode_case(&shapes[6], lens + 3, 1, 64, -1);
    /* tables of up to 256 tokens: one split, out written without the combine pass */
    decode_case(&shapes[1], short_lens, 8, 16, -1);
    decode_case(&shapes[5], short_lens, 8, 16, 3);
    decode_case(&shapes[2], odd, 4, 16, 3);
}
END_TEST

/* Position p's cache slot of sequence i (table row i of width mb), -1 when p < 0. */
static int32_t slot_of(const int32_t *tables, size_t mb, size_t i, int32_t p)
{
    return p < 0 ? -1 : tables[i * mb + (size_t)p / 16] * 16 + p % 16;
}

/*
 * gpu_attn_decode_rope() against gpu_rope_kv() then gpu_attn_decode() on a
 * copy of the same cache: the same outputs and the same K and V written,
 * each within a step of its type (the fused RoPE may round differently).
 */
static void decode_rope_case(const struct attn_shape *s, enum gpu_rope_type rt, const int32_t *lens,
                             size_t n_seqs, size_t mb)
{
    size_t hd = s->head_dim, width = (s->n_heads + 2 * s->n_kv_heads) * hd;
    size_t n_q = n_seqs * s->n_heads * hd, os = gpu_dtype_size(s->out_type), ks;
    size_t n_blocks = n_seqs * mb + 2, n_cache = n_blocks * 16 * s->n_kv_heads * hd, off = 0, ws;
    int32_t *tables = shuffled_blocks(n_blocks), pos[8], slots[8];
    float *qkv = random_floats(n_seqs * width, -1, 1), *inv = filled_floats(hd / 2, 0);
    float *got[2], *cache[2][2], scale = 1.0f / sqrtf((float)hd);
    struct gpu_kv_cache kv[2];
    struct gpu_seqs seqs = { .n_seqs = n_seqs, .max_blocks = mb };
    struct gpu_buf bqkv, binv, bpos, bslots, bq, out[2], work;
    struct host_cache c;
    struct rag_err err = { 0 };

    ck_assert_uint_le(n_seqs, 8);
    for (size_t i = 0; i < hd / 2; i++)
        inv[i] = (float)pow(10000.0, -2.0 * (double)i / (double)hd);
    host_cache_init(&c, s, n_blocks);
    for (size_t i = 0; i < n_seqs; i++) {
        pos[i] = lens[i] > 0 ? lens[i] - 1 : 0;
        slots[i] = slot_of(tables, mb, i, lens[i] - 1);
        if (lens[i] > 1)
            host_cache_fill(&c, tables + i * mb, (size_t)lens[i] - 1, s->kv_type);
    }
    kv[0] = kv[1] = (struct gpu_kv_cache){
        .type = s->kv_type, .n_blocks = n_blocks, .n_kv_heads = s->n_kv_heads, .head_dim = hd
    };
    ws = gpu_attn_decode_workspace(g, s->n_heads, &kv[0], &seqs);
    ks = gpu_dtype_size(s->kv_type);
    pool_alloc(2 * host_cache_bytes(&c, s->kv_type) + gpu_align(n_seqs * width * 4) +
               gpu_align(hd * 2) + 4 * gpu_align(n_seqs * mb * 4) + gpu_align(n_q * 4) +
               2 * gpu_align(n_q * os) + gpu_align(ws));
    for (int i = 0; i < 2; i++)
        host_cache_put(&c, &kv[i], &off);
    bqkv = carve_floats(&off, n_seqs * width);
    binv = carve_floats(&off, hd / 2);
    seqs.block_tables = carve_bytes(&off, n_seqs * mb * 4);
    seqs.lens = carve_bytes(&off, n_seqs * 4);
    bpos = carve_bytes(&off, n_seqs * 4);
    bslots = carve_bytes(&off, n_seqs * 4);
    bq = carve_floats(&off, n_q);
    out[0] = carve_bytes(&off, n_q * os);
    out[1] = carve_bytes(&off, n_q * os);
    work = carve_bytes(&off, ws);
    put(&bqkv, qkv, n_seqs * width);
    put(&binv, inv, hd / 2);
    put_bytes(&seqs.block_tables, tables, n_seqs * mb * 4);
    put_bytes(&seqs.lens, lens, n_seqs * 4);
    put_bytes(&bpos, pos, n_seqs * 4);
    put_bytes(&bslots, slots, n_seqs * 4);
    ck_assert_msg(gpu_rope_kv(g, &bqkv, n_seqs, s->n_heads, rt, &binv, &bpos, &bslots, &bq, &kv[0],
                              &err) == 0 &&
                      gpu_attn_decode(g, &bq, s->n_heads, &kv[0], &seqs, scale, &work, &out[0],
                                      s->out_type, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(gpu_attn_decode_rope(g, &bqkv, s->n_heads, rt, &binv, &kv[1], &seqs, scale, &work,
                                       &out[1], s->out_type, &err) == 0,
                  "%s", err.msg);
    size_t bad = 0;
    for (int i = 0; i < 2; i++) {
        void *raw = xmalloc_array(n_q, os), *rk = xmalloc_array(n_cache, ks);
        void *rv = xmalloc_array(n_cache, ks);

        got[i] = xmalloc_array(n_q, sizeof(float));
        cache[i][0] = xmalloc_array(n_cache, sizeof(float));
        cache[i][1] = xmalloc_array(n_cache, sizeof(float));
        get_bytes(raw, &out[i], n_q * os);
        get_bytes(rk, &kv[i].k, n_cache * ks);
        get_bytes(rv, &kv[i].v, n_cache * ks);
        for (size_t j = 0; j < n_q; j++)
            got[i][j] = (float)decode_at(s->out_type, raw, j);
        for (size_t j = 0; j < n_cache; j++) {
            cache[i][0][j] = (float)decode_at(s->kv_type, rk, j);
            cache[i][1][j] = (float)decode_at(s->kv_type, rv, j);
        }
        free(raw);
        free(rk);
        free(rv);
    }
    for (size_t j = 0; j < n_q; j++)
        bad += !within(got[1][j], got[0][j], 1e-3 + 2 * half_step(s->out_type, got[0][j]));
    for (size_t j = 0; j < n_cache; j++)
        for (int kv_i = 0; kv_i < 2; kv_i++)
            bad += !(same_or_nan(cache[1][kv_i][j], cache[0][kv_i][j]) ||
                     within(cache[1][kv_i][j], cache[0][kv_i][j],
                            2 * half_step(s->kv_type, cache[0][kv_i][j]) + 1e-6));
    ck_assert_msg(bad == 0, "attn_decode_rope heads %zu/%zu hd %zu kv %s: %zu differ (seed %llu)",
                  s->n_heads, s->n_kv_heads, hd, type_str(s->kv_type), bad,
                  (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    for (int i = 0; i < 2; i++) {
        free(got[i]);
        free(cache[i][0]);
        free(cache[i][1]);
    }
    free(tables);
    free(qkv);
    free(inv);
    free(c.k);
    free(c.v);
}

START_TEST(test_attn_decode_rope)
{
    static const struct attn_shape shapes[] = {
        { 9, 3, 64, GPU_F16, GPU_F16 },    { 32, 8, 128, GPU_BF16, GPU_BF16 },
        { 14, 2, 64, GPU_F32, GPU_F32 },   { 12, 12, 32, GPU_F16, GPU_F32 },
        { 24, 2, 128, GPU_BF16, GPU_F32 }, /* 12 heads a kv head: two passes */
    };
    static const int32_t lens[] = { 1, 40, 300, 0, 17, 1000 };
    static const int32_t short_lens[] = { 1, 40, 256, 0, 17 };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        decode_rope_case(&shapes[i], GPU_ROPE_NORM, lens, 5, 20);
        decode_rope_case(&shapes[i], GPU_ROPE_NEOX, lens, 5, 20);
    }
    decode_rope_case(&shapes[1], GPU_ROPE_NEOX, lens + 5, 1, 64);   /* one long sequence: splits */
    decode_rope_case(&shapes[0], GPU_ROPE_NORM, short_lens, 5, 16); /* one split, no combine */
}
END_TEST

#define PREFILL_GUARD_ROWS 64 /* token rows after out that must stay NaN: a block's reach */

/* Whether gpu_attn_prefill() takes its tensor-core path (gpu.h): bf16/fp16 K/V, hd 64 or 128. */
static bool prefill_on_tc(const struct attn_shape *s)
{
    return s->kv_type != GPU_F32 && (s->head_dim == 64 || s->head_dim == 128);
}

/*
 * Query row q as the kernel multiplies it, in log2 units (scores q . k give
 * 2^x weights): on the tensor-core path q * (scale * log2 e), computed in
 * fp32 and rounded to the cache type, as the kernel does; else exact.
 */
static void prefill_query(const struct attn_shape *s, const float *q, float scale, double *qx)
{
    float sl2 = scale * 1.4426950408889634f;

    for (size_t d = 0; d < s->head_dim; d++)
        qx[d] = prefill_on_tc(s) ? round_to(s->kv_type, (float)(q[d] * sl2)) :
                                   (double)q[d] * scale * 1.4426950408889634;
}

/*
 * Attention of query qx (log2 units) over keys 0..n_keys-1 of kv head kvh,
 * checked against got (head_dim values of ot at got_at); returns the number
 * of values off by more than rel * sum_t p_t |v_t[d]| + 1e-6 plus half a
 * step of ot.
 */
static size_t prefill_check_row(const struct host_cache *c, const int32_t *table, size_t kvh,
                                const double *qx, size_t n_keys, double rel, enum gpu_dtype ot,
                                const void *got, size_t got_at)
{
    size_t hd = c->head_dim, bad = 0;
    double *p = xmalloc_array(n_keys, sizeof(double)), m = -INFINITY, sum = 0;
    double *ref = xcalloc(2 * hd, sizeof(double)), *mag = ref + hd;

    for (size_t t = 0; t < n_keys; t++) {
        const float *k = c->k + host_at(c, table[t / GPU_KV_BLOCK], kvh, t);

        p[t] = 0;
        for (size_t d = 0; d < hd; d++)
            p[t] += qx[d] * k[d];
        m = fmax(m, p[t]);
    }
    for (size_t t = 0; t < n_keys; t++)
        sum += p[t] = exp2(p[t] - m);
    for (size_t t = 0; t < n_keys; t++) {
        const float *v = c->v + host_at(c, table[t / GPU_KV_BLOCK], kvh, t);

        for (size_t d = 0; d < hd; d++) {
            ref[d] += p[t] / sum * v[d];
            mag[d] += p[t] / sum * fabs(v[d]);
        }
    }
    for (size_t d = 0; d < hd; d++)
        bad += !within(decode_at(ot, got, got_at + d), ref[d],
                       rel * mag[d] + 1e-6 + half_step(ot, ref[d]));
    free(p);
    free(ref);
    return bad;
}

/*
 * Tolerance per unit of sum_t p_t |v_t|: fp32 sums (1e-4), and on the
 * tensor-core path P rounded to the cache type before P V (relative error
 * at most 2^-9 in bf16, 2^-11 in fp16; twice that is allowed).
 */
static double prefill_rel(const struct attn_shape *s)
{
    if (!prefill_on_tc(s))
        return 1e-4;
    return (s->kv_type == GPU_BF16 ? 0x1p-8 : 0x1p-10) + 1e-4;
}

/*
 * Every output row of a prefill against the reference. With bad_block >= 0
 * (the table entry of that logical block points outside the cache), rows
 * that see the block must be NaN and rows at least 64 tokens before it
 * (out of reach of any thread block that stages it) must be right. The
 * PREFILL_GUARD_ROWS rows after the output must still be NaN.
 */
static size_t prefill_check(const struct attn_shape *s, const struct host_cache *c,
                            const int32_t *table, const float *q, float scale, size_t pos0,
                            size_t n_tokens, int32_t bad_block, const void *got)
{
    size_t hd = s->head_dim, group = s->n_heads / s->n_kv_heads, bad = 0;
    size_t n_q = n_tokens * s->n_heads * hd, guard = PREFILL_GUARD_ROWS * s->n_heads * hd;
    size_t nan_from = bad_block < 0 ? SIZE_MAX / 2 : (size_t)bad_block * GPU_KV_BLOCK;
    double *qx = xmalloc_array(hd, sizeof(double));

    for (size_t i = 0; i < n_tokens; i++) {
        for (size_t h = 0; h < s->n_heads; h++) {
            size_t at = (i * s->n_heads + h) * hd, last = pos0 + i;

            if (last >= nan_from) {
                for (size_t d = 0; d < hd; d++)
                    bad += !isnan(decode_at(s->out_type, got, at + d));
            } else if (last + 64 <= nan_from) {
                prefill_query(s, q + at, scale, qx);
                bad += prefill_check_row(c, table, h / group, qx, last + 1, prefill_rel(s),
                                         s->out_type, got, at);
            }
        }
    }
    for (size_t i = n_q; i < n_q + guard; i++)
        bad += !isnan(decode_at(s->out_type, got, i));
    free(qx);
    return bad;
}

/*
 * One prefill of n_tokens after pos0 cached tokens, over a shuffled block
 * table with two spare blocks (NaN, like the unwritten tail of the last
 * block), output poisoned with NaN; bad_block as for prefill_check().
 */
static void prefill_case(const struct attn_shape *s, size_t pos0, size_t n_tokens,
                         int32_t bad_block)
{
    size_t hd = s->head_dim, total = pos0 + n_tokens, n_log = (total + 15) / 16;
    size_t n_blocks = n_log + 2, n_q = n_tokens * s->n_heads * hd, os = gpu_dtype_size(s->out_type);
    size_t n_out = n_q + PREFILL_GUARD_ROWS * s->n_heads * hd, off = 0;
    int32_t *table = shuffled_blocks(n_blocks), *dev_table = xmalloc_array(n_log, 4);
    float *q = random_floats(n_q, -2, 2), scale = 2.0f / sqrtf((float)hd);
    void *got = xmalloc_array(n_out, os);
    struct host_cache c;
    struct rag_err err = { 0 };
    struct gpu_kv_cache kv = { .type = s->kv_type };
    struct gpu_buf bq, bo, bt, guarded;

    host_cache_init(&c, s, n_blocks);
    host_cache_fill(&c, table, total, s->kv_type);
    memcpy(dev_table, table, n_log * 4);
    if (bad_block >= 0)
        dev_table[bad_block] = (int32_t)n_blocks; /* outside the cache */
    pool_alloc(host_cache_bytes(&c, s->kv_type) + gpu_align(n_log * 4) + gpu_align(n_q * 4) +
               gpu_align(n_out * os));
    host_cache_put(&c, &kv, &off);
    bt = carve_bytes(&off, n_log * 4);
    bq = carve_floats(&off, n_q);
    guarded = carve_bytes(&off, n_out * os);
    put_bytes(&bt, dev_table, n_log * 4);
    put(&bq, q, n_q);
    poison(&guarded, guarded.bytes);
    bo = (struct gpu_buf){ guarded.ptr, n_q * os }; /* exactly n_tokens rows, then the guard */
    ck_assert_msg(gpu_attn_prefill(g, &bq, n_tokens, s->n_heads, pos0, &kv, &bt, scale, &bo,
                                   s->out_type, &err) == 0,
                  "%s", err.msg);
    get_bytes(got, &guarded, n_out * os);
    size_t bad = prefill_check(s, &c, table, q, scale, pos0, n_tokens, bad_block, got);
    ck_assert_msg(bad == 0,
                  "attn_prefill heads %zu/%zu hd %zu kv %s out %s pos0 %zu n %zu bad block %d: "
                  "%zu wrong (seed %llu)",
                  s->n_heads, s->n_kv_heads, hd, type_str(s->kv_type), type_str(s->out_type), pos0,
                  n_tokens, (int)bad_block, bad, (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(table);
    free(dev_table);
    free(q);
    free(got);
    free(c.k);
    free(c.v);
}

START_TEST(test_attn_prefill)
{
    static const struct attn_shape shapes[] = {
        { 9, 3, 64, GPU_BF16, GPU_F32 },
        { 32, 8, 128, GPU_BF16, GPU_BF16 },
        { 14, 2, 64, GPU_F32, GPU_BF16 },
        { 12, 12, 32, GPU_F32, GPU_F32 },
    };

    prefill_case(&shapes[0], 0, 300, -1);
    prefill_case(&shapes[0], 123, 77, -1); /* chunked: 123 tokens already cached */
    prefill_case(&shapes[1], 0, 70, -1);
    prefill_case(&shapes[1], 40, 1, -1);
    prefill_case(&shapes[2], 5, 200, -1);
    prefill_case(&shapes[3], 0, 129, -1);
}
END_TEST

/* ---- prefill on tensor cores ("prefill" case) ---- */

static const size_t prefill_lens[] = { 1, 15, 16, 17, 100, 600 };
static const size_t prefill_pos0[] = { 0, 37, 512 };

/* Every length with every pos0, the output type cycling through outs[0..n_outs-1]. */
static void prefill_grid(size_t n_heads, size_t n_kv, size_t hd, enum gpu_dtype kv_type,
                         const enum gpu_dtype *outs, size_t n_outs)
{
    size_t k = 0;

    for (size_t i = 0; i < sizeof(prefill_lens) / sizeof(prefill_lens[0]); i++) {
        for (size_t j = 0; j < sizeof(prefill_pos0) / sizeof(prefill_pos0[0]); j++) {
            struct attn_shape s = { n_heads, n_kv, hd, kv_type, outs[k++ % n_outs] };

            prefill_case(&s, prefill_pos0[j], prefill_lens[i], -1);
        }
    }
}

/* Llama-3-8B heads (32/8, 128): each length once (the reference is slow), pos0 rotating. */
static void prefill_8b(enum gpu_dtype kv_type, const enum gpu_dtype *outs, size_t n_outs)
{
    for (size_t i = 0; i < sizeof(prefill_lens) / sizeof(prefill_lens[0]); i++) {
        struct attn_shape s = { 32, 8, 128, kv_type, outs[i % n_outs] };

        prefill_case(&s, prefill_pos0[(i + 1) % 3], prefill_lens[i], -1);
    }
}

/* Query heads per kv head 1, 3, 4, 8 and 32 at both head sizes. */
static void prefill_groups(enum gpu_dtype kv_type, enum gpu_dtype out_type)
{
    static const size_t heads[][2] = { { 4, 4 }, { 6, 2 }, { 8, 2 }, { 16, 2 }, { 32, 1 } };

    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        struct attn_shape s64 = { heads[i][0], heads[i][1], 64, kv_type, out_type };
        struct attn_shape s128 = { heads[i][0], heads[i][1], 128, kv_type, out_type };

        prefill_case(&s64, 0, 17, -1);
        prefill_case(&s64, 37, 100, -1);
        prefill_case(&s128, 512, 15, -1);
        prefill_case(&s128, 37, 100, -1);
    }
}

START_TEST(test_prefill_bf16)
{
    static const enum gpu_dtype outs[] = { GPU_F32, GPU_BF16 };

    prefill_grid(9, 3, 64, GPU_BF16, outs, 2); /* SmolLM2-135M heads */
    prefill_8b(GPU_BF16, outs, 2);
    prefill_groups(GPU_BF16, GPU_BF16);
}
END_TEST

START_TEST(test_prefill_f16)
{
    static const enum gpu_dtype outs[] = { GPU_F16, GPU_F32, GPU_BF16 };
    static const struct attn_shape cuda_cores[] = {
        { 12, 4, 32, GPU_F16, GPU_F16 }, /* head_dim 32: the CUDA-core kernel */
        { 8, 2, 128, GPU_F32, GPU_F16 }, /* fp32 cache: the CUDA-core kernel */
    };

    prefill_grid(9, 3, 64, GPU_F16, outs, 3);
    prefill_8b(GPU_F16, outs, 3);
    prefill_groups(GPU_F16, GPU_F32);
    prefill_case(&cuda_cores[0], 37, 100, -1);
    prefill_case(&cuda_cores[1], 512, 17, -1);
}
END_TEST

/* A second chunk of a long prompt, and block ids outside the cache. */
START_TEST(test_prefill_chunk_and_bad_block)
{
    static const struct attn_shape shapes[] = {
        { 3, 1, 64, GPU_BF16, GPU_BF16 }, { 8, 2, 128, GPU_F16, GPU_F32 },
        { 9, 3, 64, GPU_BF16, GPU_F32 },  { 32, 8, 128, GPU_F16, GPU_BF16 },
        { 9, 3, 64, GPU_F32, GPU_F32 },
    };

    prefill_case(&shapes[0], 2048, 300, -1);
    prefill_case(&shapes[1], 2048, 64, -1);
    prefill_case(&shapes[2], 37, 300, 10); /* keys 160..175: rows 123.. NaN, rows ..59 right */
    prefill_case(&shapes[3], 0, 200, 9);
    prefill_case(&shapes[1], 512, 100, 20); /* every row sees keys 320..335 */
    prefill_case(&shapes[4], 37, 300, 10);  /* the CUDA-core kernel */
}
END_TEST

START_TEST(test_attn_args)
{
    struct rag_err err = { 0 };
    struct gpu_kv_cache kv = { .type = GPU_BF16, .n_blocks = 4, .n_kv_heads = 2, .head_dim = 64 };
    struct gpu_seqs seqs = { .n_seqs = 2, .max_blocks = 2 };
    struct gpu_buf q, out, work, small;

    pool_alloc(1 << 20);
    kv.k = (struct gpu_buf){ pool.ptr, 16384 };
    kv.v = (struct gpu_buf){ (char *)pool.ptr + 16384, 16384 };
    seqs.block_tables = (struct gpu_buf){ (char *)pool.ptr + 32768, 16 };
    seqs.lens = (struct gpu_buf){ (char *)pool.ptr + 33024, 8 };
    q = (struct gpu_buf){ (char *)pool.ptr + 65536, 65536 };
    out = (struct gpu_buf){ (char *)pool.ptr + 131072, 65536 };
    work = (struct gpu_buf){ (char *)pool.ptr + 262144, 65536 };
    put_bytes(&seqs.block_tables, (int32_t[]){ 0, 1, 2, 3 }, 16);
    put_bytes(&seqs.lens, (int32_t[]){ 3, 20 }, 8);
    poison(&q, q.bytes);
    ck_assert_uint_le(gpu_attn_decode_workspace(g, 4, &kv, &seqs), work.bytes);
    ck_assert_int_eq(gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &work, &out, GPU_F32, &err), 0);
    kv.type = GPU_F16;
    ck_assert_int_eq(gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &work, &out, GPU_F16, &err), 0);
    kv.type = (enum gpu_dtype)7;
    ck_assert_int_eq(gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode: unknown type 7 of 'kv'");
    kv.type = GPU_BF16;
    ck_assert_int_eq(
        gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &work, &out, (enum gpu_dtype)7, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode: unknown type 7 of 'out'");
    ck_assert_int_eq(gpu_attn_decode(g, &q, 5, &kv, &seqs, 0.125f, &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode: 5 heads do not share 2 kv heads evenly");
    ck_assert_int_eq(gpu_attn_decode(g, &q, 66, &kv, &seqs, 0.125f, &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode: 33 query heads per kv head exceed 32");
    small = (struct gpu_buf){ work.ptr, 64 };
    ck_assert_int_eq(gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &small, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_msg(strncmp(err.msg, "gpu_attn_decode: buffer 'work' has 64 bytes", 43) == 0, "%s",
                  err.msg);
    kv.head_dim = 96;
    ck_assert_int_eq(gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode: head_dim 96 is not 32, 64 or 128");
    kv.head_dim = 64;
    kv.n_blocks = 5;
    ck_assert_int_eq(gpu_attn_prefill(g, &q, 3, 4, 0, &kv, &seqs.lens, 0.125f, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_prefill: buffer 'k' has 16384 bytes, needs 20480");
    kv.n_blocks = 4;
    ck_assert_int_eq(
        gpu_attn_prefill(g, &q, 40, 4, 0, &kv, &seqs.lens, 0.125f, &out, GPU_F32, &err),
        RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_prefill: buffer 'block_table' has 8 bytes, needs 12");
    seqs.max_blocks = 0;
    ck_assert_int_eq(gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode: max_blocks is 0");
    ck_assert_int_eq(gpu_sync(g, &err), 0);
}
END_TEST

/* ---- graphs, device copies, the empty kernel ---- */

/* The buffers of a tiny decode step: ids -> embed -> rmsnorm -> lm_head -> argmax. */
struct step {
    size_t vocab, dim, n;
    enum gpu_dtype type; /* of normed and head: the GEMM inputs */
    struct gpu_buf table, ids, x, w, normed, head, logits, next;
};

static void step_init(struct step *s, size_t vocab, size_t dim, size_t n, enum gpu_dtype type)
{
    size_t off = 0;
    float *table = random_floats(vocab * dim, -1, 1), *w = random_floats(dim, 0.5f, 1.5f);
    void *head = encode(type, table, vocab * dim);

    *s = (struct step){ .vocab = vocab, .dim = dim, .n = n, .type = type };
    pool_alloc(2 * gpu_align(vocab * dim * 4) + gpu_align(n * dim * 4) * 3 + gpu_align(dim * 4) +
               gpu_align(n * vocab * 4) + 2 * gpu_align(n * 4));
    s->table = carve_floats(&off, vocab * dim);
    s->head = carve_bytes(&off, vocab * dim * 2);
    s->ids = carve_bytes(&off, n * 4);
    s->x = carve_floats(&off, n * dim);
    s->w = carve_floats(&off, dim);
    s->normed = carve_bytes(&off, n * dim * 2);
    s->logits = carve_floats(&off, n * vocab);
    s->next = carve_bytes(&off, n * 4);
    put(&s->table, table, vocab * dim);
    put(&s->w, w, dim);
    put_bytes(&s->head, head, vocab * dim * 2);
    free(table);
    free(w);
    free(head);
}

static void step_run(struct step *s)
{
    struct rag_err err = { 0 };
    int rc =
        gpu_embed_rows(g, &s->table, GPU_F32, s->vocab, s->dim, &s->ids, s->n, 1.0f, &s->x, &err);

    if (!rc)
        rc = gpu_rmsnorm(g, &s->x, NULL, &s->w, &s->normed, s->type, s->n, s->dim, 1e-5f, &err);
    if (!rc)
        rc = gpu_gemm(g, &s->normed, &s->head, s->type, NULL, &s->logits, GPU_F32, s->n, s->vocab,
                      s->dim, 0, &err);
    if (!rc)
        rc = gpu_argmax_rows(g, &s->logits, &s->next, s->n, s->vocab, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
}

/* Run the step eagerly on ids and return its logits and next ids. */
static void step_eager(struct step *s, const int32_t *ids, float *logits, int32_t *next)
{
    put_bytes(&s->ids, ids, s->n * 4);
    poison(&s->logits, s->logits.bytes);
    step_run(s);
    get(logits, &s->logits, s->n * s->vocab);
    get_bytes(next, &s->next, s->n * 4);
}

/* Capture a step with GEMM inputs of type, replay it with new ids, compare with eager runs. */
static void graph_replay(enum gpu_dtype type)
{
    size_t vocab = 1000, dim = 64, n = 4;
    int32_t ids[2][4] = { { 1, 2, 3, 4 }, { 999, 0, 500, 4 } }, next[4], next_g[4];
    float *logits = filled_floats(n * vocab, 0), *logits_g = filled_floats(n * vocab, 0);
    struct rag_err err = { 0 };
    struct gpu_graph *graph = NULL;
    struct step s;

    step_init(&s, vocab, dim, n, type);
    step_eager(&s, ids[0], logits, next); /* creates the GEMM plan before the capture */
    ck_assert_int_eq(gpu_capture_begin(g, &err), 0);
    ck_assert_int_eq(gpu_capture_begin(g, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_capture_begin: a capture is already running");
    ck_assert_int_eq(gpu_upload(g, &s.ids, ids[1], 16, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_upload: not allowed while a graph is being captured");
    ck_assert_int_eq(gpu_sync(g, &err), RAG_EINVAL);
    step_run(&s);
    ck_assert_msg(gpu_capture_end(g, &graph, &err) == 0, "%s", err.msg);
    for (int r = 0; r < 2; r++) { /* replay with new ids in device memory, twice */
        put_bytes(&s.ids, ids[1 - r], n * 4);
        poison(&s.logits, s.logits.bytes);
        ck_assert_msg(gpu_graph_launch(g, graph, &err) == 0, "%s", err.msg);
        get(logits_g, &s.logits, n * vocab);
        get_bytes(next_g, &s.next, n * 4);
        step_eager(&s, ids[1 - r], logits, next);
        ck_assert_int_eq(memcmp(logits, logits_g, n * vocab * 4), 0);
        ck_assert_int_eq(memcmp(next, next_g, sizeof(next)), 0);
    }
    for (size_t i = 0; i < n; i++) /* the embedding row of id itself scores highest */
        ck_assert_int_eq(next[i], ids[0][i]);
    gpu_graph_free(g, graph);
    gpu_graph_free(g, NULL);
    ck_assert_int_eq(gpu_capture_end(g, &graph, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_capture_end: no capture is running");
    free(logits);
    free(logits_g);
    gpu_buf_free(g, &pool);
}

START_TEST(test_graph_replay)
{
    graph_replay(GPU_BF16);
    graph_replay(GPU_F16);
}
END_TEST

START_TEST(test_copy_noop)
{
    size_t n = 5000, off = 0;
    float *src = random_floats(n, -1, 1), *dst = filled_floats(n, NAN);
    struct rag_err err = { 0 };
    struct gpu_buf a, b;

    pool_alloc(2 * gpu_align(n * 4));
    a = carve_floats(&off, n);
    b = carve_floats(&off, n);
    put(&a, src, n);
    poison(&b, n * 4);
    ck_assert_int_eq(gpu_copy(g, &b, &a, n * 4, &err), 0);
    ck_assert_int_eq(gpu_noop(g, &err), 0);
    get(dst, &b, n);
    ck_assert_int_eq(memcmp(src, dst, n * 4), 0);
    ck_assert_int_eq(gpu_copy(g, &b, &a, n * 4 + 1, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_copy: 20001 bytes do not fit the 20000-byte target buffer");
    b = (struct gpu_buf){ (char *)a.ptr + 8, 100 };
    ck_assert_int_eq(gpu_copy(g, &b, &a, 100, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_copy: source and target overlap");
    ck_assert_int_eq(gpu_copy(g, &b, &a, 0, &err), 0);
    free(src);
    free(dst);
}
END_TEST

/*
 * A kernel that faults is reported by the next gpu_sync() with CUDA's
 * message. The fault breaks the CUDA context, so this case runs only when
 * each test has its own process.
 */
START_TEST(test_sync_reports_fault)
{
    struct gpu_buf wild = { (void *)(uintptr_t)GPU_ALIGN, 1 << 20 };
    struct gpu_buf x = { 0 };
    struct rag_err err = { 0 };
    int rc;

    pool_alloc(1 << 20);
    x = pool;
    rc = gpu_axpy(g, 1 << 18, 1.0f, &x, &wild, &err);
    if (rc == 0)
        rc = gpu_sync(g, &err);
    ck_assert_int_eq(rc, RAG_EGPU);
    ck_assert_msg(strstr(err.msg, "illegal") != NULL, "%s", err.msg);
}
END_TEST

/* A case whose tests each open device 0 (checked fixture: in the test's process). */
static TCase *device_case(Suite *s, const char *name, double timeout)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, device_setup, device_teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *gpu_suite(bool have_gpu)
{
    Suite *s = suite_create("gpu");
    TCase *tc = tcase_create("api");
    const char *fork_mode = getenv("CK_FORK");

    tcase_add_test(tc, test_open_without_or_with_device);
    tcase_add_test(tc, test_open_negative_index);
    tcase_add_test(tc, test_null_and_empty);
    tcase_add_test(tc, test_align);
    tcase_add_test(tc, test_carve);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    if (!have_gpu)
        return s;
    tc = device_case(s, "device", 60);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_open_out_of_range);
    tcase_add_test(tc, test_alloc_copy_free);
    tcase_add_test(tc, test_alloc_too_big);
    tcase_add_test(tc, test_copy_errors);
    tcase_add_test(tc, test_axpy_args);
    tcase_add_test(tc, test_l2_args);
    tcase_add_test(tc, test_dot_args);
    tcase_add_test(tc, test_convert_args);
    tcase_add_test(tc, test_gemm_args);
    tcase_add_test(tc, test_gemv_args);
    tcase_add_test(tc, test_rmsnorm_args);
    tcase_add_test(tc, test_swiglu_args);
    tcase_add_test(tc, test_attn_args);
    tcase_add_test(tc, test_copy_noop);
    tc = device_case(s, "kernels", 120);
    tcase_add_test(tc, test_axpy);
    tcase_add_test(tc, test_l2_normalize_rows);
    tcase_add_test(tc, test_dot);
    tc = device_case(s, "model", 300);
    tcase_add_test(tc, test_convert);
    tcase_add_test(tc, test_gemm);
    tcase_add_test(tc, test_gemm_many_shapes);
    tcase_add_test(tc, test_gemv);
    tcase_add_test(tc, test_gemv_rmsnorm);
    tcase_add_test(tc, test_gemv_swiglu);
    tcase_add_test(tc, test_gemv_rmsnorm_swiglu);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_argmax);
    tcase_add_test(tc, test_embed_rows);
    tcase_add_test(tc, test_rope_kv);
    tcase_add_test(tc, test_attn_decode);
    tcase_add_test(tc, test_attn_decode_rope);
    tcase_add_test(tc, test_attn_prefill);
    tcase_add_test(tc, test_graph_replay);
    tc = device_case(s, "prefill", 300);
    tcase_add_test(tc, test_prefill_bf16);
    tcase_add_test(tc, test_prefill_f16);
    tcase_add_test(tc, test_prefill_chunk_and_bad_block);
    /* A faulted context is lost for the rest of the process: only with fork. */
    if (fork_mode && strcmp(fork_mode, "no") == 0)
        return s;
    tc = device_case(s, "fault", 60);
    tcase_add_test(tc, test_sync_reports_fault);
    return s;
}

/*
 * In test_probe()'s child: open device 0 and describe it on stderr. 0 with a
 * GPU, 2 without (no CUDA in the build, no driver or no device).
 */
static int describe_gpu(void)
{
    struct rag_err err = { 0 };
    struct gpu_info info;

    if (gpu_open(&g, 0, &err) || gpu_info(g, &info, &err)) {
        fprintf(stderr, "test_gpu: device tests skipped: %s\n", err.msg);
        return 2;
    }
    fprintf(stderr,
            "test_gpu: %s, compute %d.%d, %d SMs, %.1f GiB, bus %d bits, memory clock %d "
            "MHz, driver %d, runtime %d\n",
            info.name, info.cc_major, info.cc_minor, info.n_sm, info.mem_total / 1073741824.0,
            info.mem_bus_bits, info.mem_clock_khz / 1000, info.driver_version,
            info.runtime_version);
    gpu_close(g);
    return 0;
}

static void seed_init(void)
{
    const char *s = getenv("RAG_TEST_SEED");
    size_t v;

    if (s && parse_size(s, 0, SIZE_MAX, &v) == 0)
        test_seed = v;
    else
        test_seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    fprintf(stderr, "test_gpu: seed %llu (RAG_TEST_SEED repeats it)\n",
            (unsigned long long)test_seed);
}

int main(void)
{
    int have_gpu = test_probe(describe_gpu);
    int rc;

    if (have_gpu < 0) {
        fprintf(stderr, "test_gpu: the GPU probe crashed\n");
        return EXIT_FAILURE;
    }
    seed_init();
    rc = test_run_suite(gpu_suite(have_gpu));
    if (rc == EXIT_SUCCESS && !have_gpu)
        return 77;
    return rc;
}
