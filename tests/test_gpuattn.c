/*
 * tests/test_gpuattn.c - gpu/: RoPE with the KV-cache write, and decode
 * attention over the paged cache, plain and with RoPE and the cache write
 * fused in, against a CPU reference in double precision on fresh random
 * inputs, and the attention argument checks (helpers, the host copy of the
 * cache among them: tests/gputest.h). Tolerances:
 *   rope     1e-5 * (|x0| + |x1|) + 1e-6 with the fp32 angle of the kernel;
 *            V copied exactly; untouched cache slots still NaN
 *   attention  1e-4 * sum_t p_t |v_t| + 1e-6 (fp32 sums over up to 1000
 *            keys, expf); NaN where a length or block id is invalid
 *   decode with RoPE fused: against gpu_rope_kv then gpu_attn_decode, the
 *            output within 1e-3 and the cache within a step of its type
 * plus half a step of the output type wherever it is 16-bit (gputest.h).
 * Caches are filled with NaN outside the written tokens, so a kernel that
 * reads a slot it must not fails. Without CUDA or without a device the
 * suite exits 77 (SKIP).
 */
#include "gpu/gpu.h"

#include <math.h>

#include "tests/gputest.h"

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
    int32_t *all = shuffled_blocks(n_slots); /* a permutation of the slots */

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

/* ---- decode attention over the paged cache ---- */

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
    bad += guard_broken(s->out_type, got, n_q);
    ck_assert_msg(bad == 0, "attn_decode heads %zu/%zu hd %zu kv %s out %s: %zu wrong (seed %llu)",
                  s->n_heads, s->n_kv_heads, hd, type_str(s->kv_type), type_str(s->out_type), bad,
                  (unsigned long long)test_seed);
    gpu_buf_free(g, &pool);
    free(tables);
    free(q);
    free(got);
    host_cache_free(&c);
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
    static const struct attn_shape wide = { 96, 8, 64, GPU_F16, GPU_BF16 };

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
    decode_case(&wide, lens, 8, 63, 2); /* a block per kv head, two passes of 8 heads */
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
    host_cache_free(&c);
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
    static const int32_t eight[] = { 1, 40, 300, 0, 17, 1000, 777, 256 };
    static const struct attn_shape wide = { 96, 8, 64, GPU_BF16, GPU_F32 };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        decode_rope_case(&shapes[i], GPU_ROPE_NORM, lens, 5, 20);
        decode_rope_case(&shapes[i], GPU_ROPE_NEOX, lens, 5, 20);
    }
    decode_rope_case(&shapes[1], GPU_ROPE_NEOX, lens + 5, 1, 64);   /* one long sequence: splits */
    decode_rope_case(&shapes[0], GPU_ROPE_NORM, short_lens, 5, 16); /* one split, no combine */
    /*
     * Enough sequences and kv heads for a block per kv head on an H200 (132
     * SMs; the cases above run a block per query head): 8 x 8 kv heads x 4
     * splits, and 96 / 8 heads so that a block makes two passes of 8 heads.
     */
    decode_rope_case(&shapes[1], GPU_ROPE_NORM, eight, 8, 63);
    decode_rope_case(&wide, GPU_ROPE_NEOX, eight, 8, 63);
}
END_TEST

START_TEST(test_attn_args)
{
    struct rag_err err = { 0 };
    struct gpu_kv_cache kv = { .type = GPU_BF16, .n_blocks = 4, .n_kv_heads = 2, .head_dim = 64 };
    struct gpu_seqs seqs = { .n_seqs = 2, .max_blocks = 2 };
    struct gpu_buf q, out, work, small, inv;

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
    inv = (struct gpu_buf){ (char *)pool.ptr + 34816, 128 };
    ck_assert_int_eq(gpu_attn_decode_rope(g, &q, 4, (enum gpu_rope_type)9, &inv, &kv, &seqs, 0.125f,
                                          &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode_rope: unknown rope type 9");
    small = (struct gpu_buf){ q.ptr, 1000 };
    ck_assert_int_eq(gpu_attn_decode_rope(g, &small, 4, GPU_ROPE_NEOX, &inv, &kv, &seqs, 0.125f,
                                          &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode_rope: buffer 'qkv' has 1000 bytes, needs 4096");
    small = (struct gpu_buf){ inv.ptr, 100 };
    ck_assert_int_eq(gpu_attn_decode_rope(g, &q, 4, GPU_ROPE_NEOX, &small, &kv, &seqs, 0.125f,
                                          &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode_rope: buffer 'inv_freq' has 100 bytes, needs 128");
    ck_assert_int_eq(gpu_attn_decode_rope(g, &q, 4, GPU_ROPE_NEOX, &inv, &kv, &seqs, 0.125f, &work,
                                          &q, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode_rope: buffers 'out' and 'qkv' overlap");
    ck_assert_int_eq(gpu_attn_decode_rope(g, &q, 4, GPU_ROPE_NORM, &inv, &kv, &seqs, 0.125f, &work,
                                          &out, GPU_F16, &err),
                     0);
    seqs.max_blocks = 0;
    ck_assert_int_eq(gpu_attn_decode_rope(g, &q, 4, GPU_ROPE_NORM, &inv, &kv, &seqs, 0.125f, &work,
                                          &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode_rope: max_blocks is 0");
    ck_assert_int_eq(gpu_attn_decode(g, &q, 4, &kv, &seqs, 0.125f, &work, &out, GPU_F32, &err),
                     RAG_EINVAL);
    ck_assert_str_eq(err.msg, "gpu_attn_decode: max_blocks is 0");
    ck_assert_int_eq(gpu_sync(g, &err), 0);
}
END_TEST

static Suite *gpuattn_suite(bool have_gpu)
{
    Suite *s = suite_create("gpuattn");
    TCase *tc;

    if (!have_gpu)
        return s;
    tc = device_case(s, "device", 60);
    tcase_add_test(tc, test_attn_args);
    tc = device_case(s, "model", 300);
    tcase_add_test(tc, test_rope_kv);
    tcase_add_test(tc, test_attn_decode);
    tcase_add_test(tc, test_attn_decode_rope);
    return s;
}

int main(void)
{
    return gputest_main("test_gpuattn", gpuattn_suite);
}
