/*
 * tests/test_gpu.c - gpu/: the device context, memory and copies, argument
 * checks, the vector kernels (axpy, L2 normalisation, dot) against a CPU
 * reference in double precision on fresh random inputs, and a kernel fault.
 * The model kernels have suites of their own, which share tests/gputest.h
 * with this one: test_gpugemm (conversions, GEMM, GEMV), test_gpuops
 * (RMSNorm, SwiGLU, softmax, argmax, embedding rows, graphs), test_gpuattn
 * (RoPE, decode attention) and test_gpuprefill (prefill attention).
 *
 * The "api" cases need no device and always run; without CUDA or without a
 * device the suite runs them only and then exits 77, which meson shows as
 * SKIP (gputest_main). Tolerances, with ref computed in double:
 *   axpy  |got - ref| <= 1e-6 * (|a*x| + |y|)  (fmaf rounds once: 6e-8)
 *   l2    |got - ref| <= 1e-5 * |ref| + 1e-6, and each non-zero row's
 *         squared norm within 1e-5 of 1 (STYLE.md 12: rel+abs 1e-5 for fp32)
 *   dot   |got - ref| <= 1e-5 * sum|x*y| + 1e-6, bitwise equal on a rerun
 */
#include "gpu/gpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/gputest.h"

#define SENTINEL 1234.5f

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

/* ---- device copies, the empty kernel, a kernel fault ---- */

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
    tcase_add_test(tc, test_copy_noop);
    tc = device_case(s, "kernels", 120);
    tcase_add_test(tc, test_axpy);
    tcase_add_test(tc, test_l2_normalize_rows);
    tcase_add_test(tc, test_dot);
    /* A faulted context is lost for the rest of the process: only with fork. */
    if (fork_mode && strcmp(fork_mode, "no") == 0)
        return s;
    tc = device_case(s, "fault", 60);
    tcase_add_test(tc, test_sync_reports_fault);
    return s;
}

int main(void)
{
    return gputest_main("test_gpu", gpu_suite);
}
