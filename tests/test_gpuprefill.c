/*
 * tests/test_gpuprefill.c - gpu/: prefill attention over the paged cache
 * (causal, after pos0 cached tokens) against a CPU reference in double
 * precision on fresh random inputs: a few shapes in the "model" case, and
 * in the "prefill" case the tensor-core kernel (bf16/fp16 cache, head_dim
 * 64 or 128) over grids of lengths, offsets, head groups and output types
 * (helpers, the host copy of the cache among them: tests/gputest.h).
 * Tolerance: 1e-4 * sum_t p_t |v_t| + 1e-6 (fp32 sums, expf); on tensor
 * cores the reference takes q * scale * log2(e) rounded to the cache type
 * as the kernel does, and the tolerance grows by twice the rounding of P
 * before P V: 2^-8 (bf16) or 2^-10 (fp16) times sum_t p_t |v_t|; plus half
 * a step of the output type wherever it is 16-bit (gputest.h). Rows that
 * see a block id outside the cache must be NaN, and so must the rows after
 * the output. Without CUDA or without a device the suite exits 77 (SKIP).
 */
#include "gpu/gpu.h"

#include <math.h>
#include <string.h>

#include "tests/gputest.h"

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
    host_cache_free(&c);
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

static Suite *gpuprefill_suite(bool have_gpu)
{
    Suite *s = suite_create("gpuprefill");
    TCase *tc;

    if (!have_gpu)
        return s;
    tc = device_case(s, "model", 300);
    tcase_add_test(tc, test_attn_prefill);
    tc = device_case(s, "prefill", 300);
    tcase_add_test(tc, test_prefill_bf16);
    tcase_add_test(tc, test_prefill_f16);
    tcase_add_test(tc, test_prefill_chunk_and_bad_block);
    return s;
}

int main(void)
{
    return gputest_main("test_gpuprefill", gpuprefill_suite);
}
