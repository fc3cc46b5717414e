/*
 * tests/test_gpuops.c - gpu/: the model's row kernels (RMSNorm, SwiGLU,
 * softmax, argmax, embedding rows) against a CPU reference in double
 * precision on fresh random inputs, their argument checks, and a tiny
 * decode step (embed, RMSNorm, GEMM, argmax) captured as a graph and
 * replayed (helpers: tests/gputest.h). Tolerances:
 *   rmsnorm, swiglu   1e-5 * |ref| + 1e-6; the new residual bitwise
 *   softmax  2e-5 * ref + 1e-9; argmax, embed rows: exact
 *   graph    the replay bitwise equal to the same step run eagerly
 * plus half a step of the output type wherever it is 16-bit (gputest.h).
 * fp16 outputs of rmsnorm and swiglu past 65504 must be stored as +-65504
 * (saturated, gpu.h). Without CUDA or without a device the suite exits 77
 * (SKIP).
 */
#include "gpu/gpu.h"

#include <math.h>
#include <string.h>

#include "tests/gputest.h"

static int32_t *random_ints(size_t n, int32_t lo, int32_t hi)
{
    int32_t *p = xmalloc_array(n ? n : 1, sizeof(*p));

    for (size_t i = 0; i < n; i++)
        p[i] = lo + (int32_t)(rng_next() % (uint64_t)(hi - lo + 1));
    return p;
}

/* ref as a model kernel stores it in type t: fp16 saturates at +-65504 (gpu.h). */
static double act_ref(enum gpu_dtype t, double ref)
{
    return t == GPU_F16 && isfinite(ref) ? fmax(fmin(ref, 65504.0), -65504.0) : ref;
}

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
    bad += guard_broken(ot, got, n);
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
    bad += guard_broken(ot, got, n);
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
    swiglu_case(400, 3000, GPU_BF16, GPU_BF16); /* fewer grid rows than rows: each block loops */
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
    bad += in_place ? 0 : guard_broken(GPU_F32, got, total);
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

/* ---- graphs ---- */

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

static Suite *gpuops_suite(bool have_gpu)
{
    Suite *s = suite_create("gpuops");
    TCase *tc;

    if (!have_gpu)
        return s;
    tc = device_case(s, "device", 60);
    tcase_add_test(tc, test_rmsnorm_args);
    tcase_add_test(tc, test_swiglu_args);
    tc = device_case(s, "model", 300);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_argmax);
    tcase_add_test(tc, test_embed_rows);
    tcase_add_test(tc, test_graph_replay);
    return s;
}

int main(void)
{
    return gputest_main("test_gpuops", gpuops_suite);
}
