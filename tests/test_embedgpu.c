/*
 * tests/test_embedgpu.c - the BERT encoder on the GPU: gpu/'s encoder
 * kernels against CPU references in double precision, and retrieval/'s
 * embedder on the GPU against the same embedder on the CPU.
 *
 * main() probes for a GPU in a child process (the runner must not
 * initialise CUDA before Check forks) and exits 77, which meson shows as
 * SKIP, when there is none; tests/test_embed.c checks the "device gpu
 * requested, no GPU" error where CI runs.
 *
 * Kernels ("kernels" case): outputs are poisoned with NaN and followed by
 * sentinels, so an element not written, or one written past the end, fails.
 * bf16 inputs are taken as the exact values they hold. Tolerances, ref in
 * double:
 *   layernorm, embed  1e-5 (|ref| + 1) on the fp32 rows (fp32 statistics);
 *                     widths of both the 4-per-lane and the general kernel
 *   bias + GELU       1e-5 |ref| + 1e-6 (erff, fp32)
 *   attention         sum_u p_u |v_u| / 128 + 1e-5 (probabilities rounded
 *                     to bf16 for P V), padding rows exactly 0
 *   pool              1e-5 |ref| + 1e-6
 * plus 2^-8 |ref| wherever the output is bf16; NaN where a length or id is
 * invalid.
 *
 * Embedder ("model" and "minilm" cases): random-weight BERTs written by the
 * test (head size 32 with mean pooling, 64 with CLS pooling), texts of many
 * lengths, cosine >= 0.9999 between the GPU's and the CPU's vector of every
 * text; a repeated batch shape (eager run, graph capture, replay) gives
 * bitwise equal vectors; small passes and batches agree with one big
 * batch. The real all-MiniLM-L6-v2 ($RAG_MODELS or ~/.cache/rag/models) is
 * compared the same way on varied texts up to 512 tokens, and skipped when
 * its files are missing.
 *
 * The seed is new each run and printed; RAG_TEST_SEED=<n> repeats a run.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpu/gpu.h"
#include "retrieval/retrieval.h"
#include "tests/testutil.h"

#define GUARD    8 /* sentinel elements after each output */
#define SENTINEL 1234.5f
#define COS_MIN  0.9999

static uint64_t test_seed, rng_state;
static struct gpu *g;
static struct gpu_buf pool;
static size_t pool_off;

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

static uint16_t to_bf16(float v)
{
    uint32_t b;

    memcpy(&b, &v, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(b >> 16 | 0x40);
    b += 0x7fffu + (b >> 16 & 1);
    return (uint16_t)(b >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float v;

    memcpy(&v, &b, 4);
    return v;
}

/* ---- device helpers ---- */

static void device_setup(void)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_open(&g, 0, &err) == 0, "gpu_open: %s", err.msg);
    ck_assert_msg(gpu_buf_alloc(g, 64u << 20, &pool, &err) == 0, "alloc: %s", err.msg);
    pool_off = 0;
    rng_state = test_seed;
}

static void device_teardown(void)
{
    gpu_buf_free(g, &pool);
    gpu_close(g);
    g = NULL;
}

static struct gpu_buf carve(size_t bytes)
{
    struct rag_err err = { 0 };
    struct gpu_buf b;

    ck_assert_msg(gpu_buf_carve(&pool, &pool_off, bytes, &b, &err) == 0, "%s", err.msg);
    return b;
}

static void put(struct gpu_buf *b, const void *p, size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_upload(g, b, p, bytes, &err) == 0, "upload: %s", err.msg);
}

static void get(void *p, const struct gpu_buf *b, size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_download(g, p, b, bytes, &err) == 0, "download: %s", err.msg);
}

/* A device buffer of n elements of size bytes holding src (NULL: NaN), with sentinels after. */
static struct gpu_buf dev_buf(const void *src, size_t n, size_t size)
{
    size_t bytes = (n + GUARD) * size;
    unsigned char *host = xmalloc(bytes);
    struct gpu_buf b = carve(bytes);

    if (src)
        memcpy(host, src, n * size);
    else
        memset(host, 0xff, n * size); /* NaN in f32 and bf16 */
    for (size_t i = 0; i < GUARD; i++) {
        float f = SENTINEL;
        uint16_t h = to_bf16(SENTINEL);

        memcpy(host + (n + i) * size, size == 4 ? (void *)&f : (void *)&h, size);
    }
    put(&b, host, bytes);
    free(host);
    b.bytes = n * size; /* the kernel sees exactly n elements */
    return b;
}

/* Download n elements of b as floats, checking the sentinels after them. */
static float *fetch(const struct gpu_buf *b, size_t n, size_t size)
{
    struct gpu_buf full = { b->ptr, (n + GUARD) * size };
    unsigned char *raw = xmalloc(full.bytes);
    float *out = xmalloc_array(n + 1, sizeof(float));

    get(raw, &full, full.bytes);
    for (size_t i = 0; i < n + GUARD; i++) {
        float v;
        uint16_t h;

        if (size == 4) {
            memcpy(&v, raw + i * 4, 4);
        } else {
            memcpy(&h, raw + i * 2, 2);
            v = from_bf16(h);
        }
        if (i >= n)
            ck_assert_msg(v == from_bf16(to_bf16(SENTINEL)) || v == SENTINEL,
                          "element %zu past the end was overwritten", i);
        else
            out[i] = v;
    }
    free(raw);
    return out;
}

/* n random values in [lo, hi), rounded to bf16 when bf16; host copy as floats and raw. */
static float *random_vals(size_t n, float lo, float hi, bool bf16, uint16_t **raw16)
{
    float *v = xmalloc_array(n + 1, sizeof(float));

    if (bf16)
        *raw16 = xmalloc_array(n + 1, sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        v[i] = rng_float(lo, hi);
        if (bf16) {
            (*raw16)[i] = to_bf16(v[i]);
            v[i] = from_bf16((*raw16)[i]);
        }
    }
    return v;
}

static bool within(double got, double ref, double tol)
{
    return fabs(got - ref) <= tol; /* false for NaN */
}

/* ---- kernels ---- */

/* LN of x (dim) in double into y. */
static void ref_layernorm(const double *x, const float *gam, const float *bet, size_t dim,
                          double eps, double *y)
{
    double mean = 0, var = 0;

    for (size_t j = 0; j < dim; j++)
        mean += x[j];
    mean /= (double)dim;
    for (size_t j = 0; j < dim; j++)
        var += (x[j] - mean) * (x[j] - mean);
    var /= (double)dim;
    for (size_t j = 0; j < dim; j++)
        y[j] = (x[j] - mean) / sqrt(var + eps) * gam[j] + bet[j];
}

/* Compare a LayerNorm row: h (fp32) and out (f32 or bf16) against ref. */
static void check_norm_row(const char *what, size_t row, const double *ref, const float *h,
                           const float *out, bool out16, size_t dim)
{
    for (size_t j = 0; j < dim; j++) {
        double tol = 1e-5 * (fabs(ref[j]) + 1);

        ck_assert_msg(within(h[j], ref[j], tol), "%s row %zu col %zu: h %g, ref %g", what, row, j,
                      h[j], ref[j]);
        ck_assert_msg(within(out[j], ref[j], tol + (out16 ? fabs(ref[j]) / 256 : 0)),
                      "%s row %zu col %zu: out %g, ref %g", what, row, j, out[j], ref[j]);
    }
}

static void layernorm_case(size_t rows, size_t dim, int t_kind, bool out16)
{
    struct rag_err err = { 0 };
    uint16_t *t16 = NULL, *unused = NULL;
    size_t n = rows * dim;
    float *h = random_vals(n, 1.0f, 5.0f, false, &unused);
    float *t = random_vals(n, -2.0f, 2.0f, t_kind == 2, &t16);
    float *gam = random_vals(dim, 0.5f, 1.5f, false, &unused);
    float *bet = random_vals(dim, -0.5f, 0.5f, false, &unused);
    struct gpu_buf dh = dev_buf(h, n, 4), dg = dev_buf(gam, dim, 4), db = dev_buf(bet, dim, 4);
    struct gpu_buf dt = t_kind == 2 ? dev_buf(t16, n, 2) : dev_buf(t, n, 4);
    struct gpu_buf dout = dev_buf(NULL, n, out16 ? 2 : 4);
    double *x = xmalloc_array(dim, sizeof(double)), *ref = xmalloc_array(dim, sizeof(double));
    float *gh, *go;

    ck_assert_msg(gpu_layernorm(g, &dh, t_kind ? &dt : NULL, t_kind == 2 ? GPU_BF16 : GPU_F32, &dg,
                                &db, &dout, out16 ? GPU_BF16 : GPU_F32, rows, dim, 1e-12f,
                                &err) == 0,
                  "%s", err.msg);
    gh = fetch(&dh, n, 4);
    go = fetch(&dout, n, out16 ? 2 : 4);
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < dim; j++)
            x[j] = (double)h[r * dim + j] + (t_kind ? t[r * dim + j] : 0.0);
        ref_layernorm(x, gam, bet, dim, 1e-12, ref);
        check_norm_row("layernorm", r, ref, gh + r * dim, go + r * dim, out16, dim);
    }
    free(h);
    free(t);
    free(t16);
    free(gam);
    free(bet);
    free(x);
    free(ref);
    free(gh);
    free(go);
}

START_TEST(test_layernorm)
{
    layernorm_case(77, 384, 1, true);
    layernorm_case(5, 100, 2, false);
    layernorm_case(3, 1024, 0, true);
    layernorm_case(1, 32, 1, false);
    layernorm_case(9, 1000, 2, true);
    layernorm_case(33, 768, 2, false);
    layernorm_case(4, 128, 2, true);
}
END_TEST

struct tables {
    float *tok, *pos, *type, *gam, *bet;
};

/* Random embedding tables on the host (t) and the device (returned). */
static struct gpu_bert_embeddings make_tables(struct tables *t, size_t n_vocab, size_t n_pos,
                                              size_t dim)
{
    struct gpu_bert_embeddings e = { .n_vocab = n_vocab, .n_pos = n_pos, .dim = dim, .eps = 1e-6f };
    uint16_t *unused = NULL;

    t->tok = random_vals(n_vocab * dim, -1, 1, false, &unused);
    t->pos = random_vals(n_pos * dim, -1, 1, false, &unused);
    t->type = random_vals(dim, -1, 1, false, &unused);
    t->gam = random_vals(dim, 0.5f, 1.5f, false, &unused);
    t->bet = random_vals(dim, -0.5f, 0.5f, false, &unused);
    e.tok = dev_buf(t->tok, n_vocab * dim, 4);
    e.pos = dev_buf(t->pos, n_pos * dim, 4);
    e.type = dev_buf(t->type, dim, 4);
    e.gamma = dev_buf(t->gam, dim, 4);
    e.beta = dev_buf(t->bet, dim, 4);
    return e;
}

static void embed_case(size_t dim, bool out16)
{
    const size_t n_vocab = 50, seq_len = 13, n = 3 * seq_len;
    struct rag_err err = { 0 };
    struct tables t;
    struct gpu_bert_embeddings e = make_tables(&t, n_vocab, 40, dim);
    int32_t ids[3 * 13];
    struct gpu_buf dids, dh = dev_buf(NULL, n * dim, 4),
                         dout = dev_buf(NULL, n * dim, out16 ? 2 : 4);
    double *x = xmalloc_array(dim, sizeof(double)), *ref = xmalloc_array(dim, sizeof(double));
    float *gh, *go;

    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)(rng_next() % n_vocab);
    ids[4] = (int32_t)n_vocab; /* invalid: NaN rows */
    ids[20] = -1;
    dids = dev_buf(ids, n, 4);
    ck_assert_msg(
        gpu_bert_embed(g, &e, &dids, 3, seq_len, &dh, &dout, out16 ? GPU_BF16 : GPU_F32, &err) == 0,
        "%s", err.msg);
    gh = fetch(&dh, n * dim, 4);
    go = fetch(&dout, n * dim, out16 ? 2 : 4);
    for (size_t r = 0; r < n; r++) {
        for (size_t j = 0; j < dim && (r == 4 || r == 20); j++)
            ck_assert_msg(isnan(gh[r * dim + j]) && isnan(go[r * dim + j]), "row %zu", r);
        if (r == 4 || r == 20)
            continue;
        for (size_t j = 0; j < dim; j++)
            x[j] = (double)t.tok[ids[r] * dim + j] + t.pos[r % seq_len * dim + j] + t.type[j];
        ref_layernorm(x, t.gam, t.bet, dim, 1e-6, ref);
        check_norm_row("embed", r, ref, gh + r * dim, go + r * dim, out16, dim);
    }
    free(t.tok);
    free(t.pos);
    free(t.type);
    free(t.gam);
    free(t.bet);
    free(x);
    free(ref);
    free(gh);
    free(go);
}

START_TEST(test_bert_embed)
{
    embed_case(96, true);
    embed_case(200, false);
    embed_case(384, true);
}
END_TEST

static void gelu_case(size_t rows, size_t n, bool bf16)
{
    struct rag_err err = { 0 };
    uint16_t *x16 = NULL, *unused = NULL;
    float *x = random_vals(rows * n, -6, 6, bf16, &x16);
    float *bias = random_vals(n, -1, 1, false, &unused);
    struct gpu_buf dx = bf16 ? dev_buf(x16, rows * n, 2) : dev_buf(x, rows * n, 4);
    struct gpu_buf db = dev_buf(bias, n, 4);
    float *got;

    ck_assert_msg(gpu_bias_gelu(g, &dx, bf16 ? GPU_BF16 : GPU_F32, &db, rows, n, &err) == 0, "%s",
                  err.msg);
    got = fetch(&dx, rows * n, bf16 ? 2 : 4);
    for (size_t i = 0; i < rows * n; i++) {
        double v = (double)x[i] + bias[i % n], ref = 0.5 * v * (1 + erf(v / sqrt(2.0)));
        double tol = 1e-5 * fabs(ref) + 1e-6 + (bf16 ? fabs(ref) / 256 : 0);

        ck_assert_msg(within(got[i], ref, tol), "gelu %zu: %g, ref %g (x %g)", i, got[i], ref, v);
    }
    free(x);
    free(x16);
    free(bias);
    free(got);
}

START_TEST(test_bias_gelu)
{
    gelu_case(9, 1536, true);
    gelu_case(7, 37, true);
    gelu_case(5, 100, false);
    gelu_case(1, 8, true);
    gelu_case(3000, 1536, true); /* more rows than grid rows: each block loops */
}
END_TEST

struct attn_case {
    size_t n_heads, head_dim, seq_len, n_seqs;
    int32_t lens[4];
};

/* Reference output of (s, t, head) into o (head_dim); returns sum_u p_u |v_u| (max over dims). */
static double ref_attn(const float *qkv, const struct attn_case *c, size_t s, size_t t, size_t hh,
                       double *o)
{
    size_t hd = c->head_dim, d = c->n_heads * hd, len = (size_t)c->lens[s];
    const float *base = qkv + s * c->seq_len * 3 * d;
    double *p = xmalloc_array(len, sizeof(double)), mx = -INFINITY, sum = 0, spread = 0;

    for (size_t u = 0; u < len; u++) {
        double dot = 0;

        for (size_t k = 0; k < hd; k++)
            dot += (double)base[t * 3 * d + hh * hd + k] * base[u * 3 * d + d + hh * hd + k];
        p[u] = dot / sqrt((double)hd);
        mx = p[u] > mx ? p[u] : mx;
    }
    for (size_t u = 0; u < len; u++)
        sum += p[u] = exp(p[u] - mx);
    for (size_t k = 0; k < hd; k++) {
        double acc = 0, abs_acc = 0;

        for (size_t u = 0; u < len; u++) {
            double v = base[u * 3 * d + 2 * d + hh * hd + k];

            acc += p[u] / sum * v;
            abs_acc += p[u] / sum * fabs(v);
        }
        o[k] = acc;
        spread = abs_acc > spread ? abs_acc : spread;
    }
    free(p);
    return spread;
}

static void check_attn_row(const struct attn_case *c, const float *qkv, const float *got, size_t s,
                           size_t t)
{
    size_t hd = c->head_dim, d = c->n_heads * hd;
    bool bad = c->lens[s] < 1 || (size_t)c->lens[s] > c->seq_len;
    double o[64];

    for (size_t hh = 0; hh < c->n_heads; hh++) {
        const float *row = got + (s * c->seq_len + t) * d + hh * hd;
        double spread = 0;

        if (!bad && t < (size_t)c->lens[s])
            spread = ref_attn(qkv, c, s, t, hh, o);
        for (size_t k = 0; k < hd; k++) {
            if (bad)
                ck_assert_msg(isnan(row[k]), "seq %zu (bad length) row %zu: %g", s, t, row[k]);
            else if (t >= (size_t)c->lens[s])
                ck_assert_msg(row[k] == 0.0f, "seq %zu padding row %zu: %g", s, t, row[k]);
            else
                ck_assert_msg(within(row[k], o[k], spread / 128 + fabs(o[k]) / 256 + 1e-5),
                              "hd %zu seq %zu row %zu head %zu col %zu: %g, ref %g", hd, s, t, hh,
                              k, row[k], o[k]);
        }
    }
}

static void attn_case(const struct attn_case *c)
{
    struct rag_err err = { 0 };
    size_t d = c->n_heads * c->head_dim, rows = c->n_seqs * c->seq_len;
    uint16_t *q16 = NULL;
    float *qkv = random_vals(rows * 3 * d, -2, 2, true, &q16), *got;
    struct gpu_buf dq = dev_buf(q16, rows * 3 * d, 2), dl = dev_buf(c->lens, c->n_seqs, 4);
    struct gpu_buf dout = dev_buf(NULL, rows * d, 2);

    ck_assert_msg(gpu_attn_encoder(g, &dq, &dl, c->n_seqs, c->seq_len, c->n_heads, c->head_dim,
                                   1.0f / sqrtf((float)c->head_dim), &dout, &err) == 0,
                  "%s", err.msg);
    got = fetch(&dout, rows * d, 2);
    for (size_t s = 0; s < c->n_seqs; s++)
        for (size_t t = 0; t < c->seq_len; t++)
            check_attn_row(c, qkv, got, s, t);
    free(qkv);
    free(q16);
    free(got);
}

START_TEST(test_attn_encoder)
{
    static const struct attn_case cases[] = {
        { 3, 32, 77, 4, { 77, 1, 40, 65 } },
        { 2, 64, 130, 3, { 130, 64, 129 } },
        { 1, 64, 1, 1, { 1 } },
        { 2, 32, 200, 4, { 200, 17, 128, 129 } },
        { 2, 64, 70, 4, { 70, 0, 71, 2 } }, /* lengths 0 and 71 are invalid: NaN */
        { 12, 32, 258, 2, { 258, 255 } },
        { 1, 64, 512, 2, { 512, 300 } }, /* the longest staged all at once */
        { 2, 64, 600, 2, { 600, 333 } }, /* longer: two tiles double-buffered */
        { 1, 32, 1000, 1, { 999 } },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        attn_case(&cases[i]);
}
END_TEST

static void pool_case(size_t dim, enum gpu_pooling pooling)
{
    const size_t n_seqs = 5, seq_len = 9;
    const int32_t lens[5] = { 9, 1, 5, 0, 10 }; /* 0 and 10 invalid: NaN */
    struct rag_err err = { 0 };
    uint16_t *unused = NULL;
    float *h = random_vals(n_seqs * seq_len * dim, -3, 3, false, &unused), *got;
    struct gpu_buf dh = dev_buf(h, n_seqs * seq_len * dim, 4), dl = dev_buf(lens, n_seqs, 4);
    struct gpu_buf dout = dev_buf(NULL, n_seqs * dim, 4);
    double *ref = xmalloc_array(dim, sizeof(double));

    ck_assert_msg(gpu_bert_pool(g, &dh, &dl, n_seqs, seq_len, dim, pooling, &dout, &err) == 0, "%s",
                  err.msg);
    got = fetch(&dout, n_seqs * dim, 4);
    for (size_t s = 0; s < n_seqs; s++) {
        size_t n = pooling == GPU_POOL_CLS ? 1 : (size_t)lens[s];
        double norm = 0;

        for (size_t j = 0; j < dim && s < 3; j++) {
            ref[j] = 0;
            for (size_t t = 0; t < n; t++)
                ref[j] += h[(s * seq_len + t) * dim + j] / (double)n;
            norm += ref[j] * ref[j];
        }
        for (size_t j = 0; j < dim; j++) {
            double r = s < 3 ? ref[j] / sqrt(norm) : NAN;

            ck_assert_msg(s < 3 ? within(got[s * dim + j], r, 1e-5 * fabs(r) + 1e-6) :
                                  isnan(got[s * dim + j]),
                          "pool seq %zu col %zu: %g, ref %g", s, j, got[s * dim + j], r);
        }
    }
    free(h);
    free(got);
    free(ref);
}

START_TEST(test_bert_pool)
{
    pool_case(384, GPU_POOL_MEAN);
    pool_case(200, GPU_POOL_CLS);
    pool_case(33, GPU_POOL_MEAN);
}
END_TEST

/* op fails with RAG_EINVAL and exactly msg. */
static void expect_einval(int rc, const struct rag_err *err, const char *msg)
{
    ck_assert_int_eq(rc, RAG_EINVAL);
    ck_assert_str_eq(err->msg, msg);
}

START_TEST(test_encoder_args)
{
    struct rag_err err = { 0 };
    struct gpu_buf a = carve(1 << 20), b = carve(1 << 20), lens = carve(64);
    struct gpu_buf odd = { (char *)a.ptr + 2, 1000 }, small = { b.ptr, 100 };
    struct gpu_bert_embeddings e = { a, a, a, a, a, 10, 40, 32, 1e-12f };
    struct gpu_buf half = { (char *)a.ptr + 256, 1024 };

    expect_einval(gpu_attn_encoder(g, &a, &lens, 1, 4, 2, 48, 0.1f, &b, &err), &err,
                  "gpu_attn_encoder: head_dim 48 is not 32 or 64");
    expect_einval(gpu_attn_encoder(g, &odd, &lens, 1, 4, 1, 32, 0.1f, &b, &err), &err,
                  "gpu_attn_encoder: buffer 'qkv' is not 16-byte aligned");
    expect_einval(gpu_attn_encoder(g, &a, &lens, 1, 4, 1, 32, NAN, &b, &err), &err,
                  "gpu_attn_encoder: scale is not finite");
    expect_einval(gpu_layernorm(g, &a, NULL, GPU_F32, &b, &b, &b, GPU_F32, 1, 1025, 0, &err), &err,
                  "gpu_layernorm: dim 1025 is not in 1..1024");
    expect_einval(gpu_layernorm(g, &a, NULL, GPU_F32, &b, &b, &half, GPU_F32, 2, 64, 0, &err), &err,
                  "gpu_layernorm: buffers 'h' and 'out' overlap");
    expect_einval(gpu_bias_gelu(g, &a, GPU_F16, &b, 1, 8, &err), &err,
                  "gpu_bias_gelu: 'x' must be f32 or bf16");
    expect_einval(gpu_bert_embed(g, &e, &lens, 1, 41, &b, &b, GPU_BF16, &err), &err,
                  "gpu_bert_embed: seq_len 41 exceeds n_pos 40");
    expect_einval(gpu_bert_pool(g, &a, &lens, 1, 4, 8, (enum gpu_pooling)5, &b, &err), &err,
                  "gpu_bert_pool: unknown pooling 5");
    expect_einval(gpu_bert_pool(g, &a, &lens, 2, 4, 32, GPU_POOL_MEAN, &small, &err), &err,
                  "gpu_bert_pool: buffer 'out' has 100 bytes, needs 256");
}
END_TEST

/* ---- random-weight BERT model directories ---- */

struct tiny {
    size_t dim, n_heads, n_layers, ffn, n_pos;
    bool cls;
};

#define N_WORDS 60
#define VOCAB   (5 + N_WORDS + 4)

static void write_str(const char *dir, const char *file, const char *text)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    test_write_file(path, text, strlen(text));
}

/* Tensor name of shape (d0, d1) (d1 0: a vector) filled from U(lo, hi). */
static void add_tensor(struct buf *head, struct buf *data, const char *name, size_t d0, size_t d1,
                       float lo, float hi)
{
    size_t begin = data->len, n = d0 * (d1 ? d1 : 1);

    for (size_t i = 0; i < n; i++) {
        float v = rng_float(lo, hi);

        buf_append(data, &v, 4);
    }
    buf_appendf(head, ", \"%s\": {\"dtype\": \"F32\", \"shape\": [%zu", name, d0);
    if (d1)
        buf_appendf(head, ", %zu", d1);
    buf_appendf(head, "], \"data_offsets\": [%zu, %zu]}", begin, data->len);
}

static void add_layer(struct buf *head, struct buf *data, const struct tiny *m, size_t i)
{
    static const char *const dd[] = { "attention.self.query", "attention.self.key",
                                      "attention.self.value", "attention.output.dense" };
    size_t d = m->dim, f = m->ffn;
    float wd = 1.5f / sqrtf((float)d), wf = 1.5f / sqrtf((float)f);
    char name[160];

    for (size_t k = 0; k < 4; k++) {
        snprintf(name, sizeof(name), "encoder.layer.%zu.%s.weight", i, dd[k]);
        add_tensor(head, data, name, d, d, -wd, wd);
        snprintf(name, sizeof(name), "encoder.layer.%zu.%s.bias", i, dd[k]);
        add_tensor(head, data, name, d, 0, -0.1f, 0.1f);
    }
    snprintf(name, sizeof(name), "encoder.layer.%zu.intermediate.dense.weight", i);
    add_tensor(head, data, name, f, d, -wd, wd);
    snprintf(name, sizeof(name), "encoder.layer.%zu.intermediate.dense.bias", i);
    add_tensor(head, data, name, f, 0, -0.1f, 0.1f);
    snprintf(name, sizeof(name), "encoder.layer.%zu.output.dense.weight", i);
    add_tensor(head, data, name, d, f, -wf, wf);
    snprintf(name, sizeof(name), "encoder.layer.%zu.output.dense.bias", i);
    add_tensor(head, data, name, d, 0, -0.1f, 0.1f);
    for (size_t k = 0; k < 2; k++) {
        const char *ln = k ? "output.LayerNorm" : "attention.output.LayerNorm";

        snprintf(name, sizeof(name), "encoder.layer.%zu.%s.weight", i, ln);
        add_tensor(head, data, name, d, 0, 0.8f, 1.2f);
        snprintf(name, sizeof(name), "encoder.layer.%zu.%s.bias", i, ln);
        add_tensor(head, data, name, d, 0, -0.1f, 0.1f);
    }
}

static void write_weights(const char *dir, const struct tiny *m)
{
    struct buf head = BUF_INIT, data = BUF_INIT, path = BUF_INIT;

    buf_appends(&head, "{\"__metadata__\": {\"format\": \"pt\"}");
    add_tensor(&head, &data, "embeddings.word_embeddings.weight", VOCAB, m->dim, -1, 1);
    add_tensor(&head, &data, "embeddings.position_embeddings.weight", m->n_pos, m->dim, -1, 1);
    add_tensor(&head, &data, "embeddings.token_type_embeddings.weight", 2, m->dim, -1, 1);
    add_tensor(&head, &data, "embeddings.LayerNorm.weight", m->dim, 0, 0.8f, 1.2f);
    add_tensor(&head, &data, "embeddings.LayerNorm.bias", m->dim, 0, -0.1f, 0.1f);
    for (size_t i = 0; i < m->n_layers; i++)
        add_layer(&head, &data, m, i);
    buf_appendf(&path, "%s/model.safetensors", dir);
    test_write_safetensors(buf_cstr(&path), &head, &data);
    buf_release(&head);
    buf_release(&data);
    buf_release(&path);
}

/* A fresh model directory with m's shape and random weights; the caller frees the path. */
static char *tiny_dir(const struct tiny *m)
{
    static int seq;
    struct buf dir = BUF_INIT, text = BUF_INIT;

    buf_appendf(&dir, "%s/bert%d", test_tmpdir(), seq++);
    ck_assert_int_eq(file_mkdirs(buf_cstr(&dir), NULL), 0);
    buf_appendf(&text,
                "{\"hidden_size\": %zu, \"num_hidden_layers\": %zu, \"num_attention_heads\": %zu,"
                " \"intermediate_size\": %zu, \"vocab_size\": %d, \"max_position_embeddings\": "
                "%zu, \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\"}",
                m->dim, m->n_layers, m->n_heads, m->ffn, VOCAB, m->n_pos);
    write_str(buf_cstr(&dir), "config.json", buf_cstr(&text));
    buf_reset(&text);
    buf_appends(&text, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (int i = 0; i < N_WORDS; i++)
        buf_appendf(&text, "w%d\n", i);
    buf_appends(&text, "##s\n,\n.\n!\n");
    write_str(buf_cstr(&dir), "vocab.txt", buf_cstr(&text));
    buf_reset(&text);
    buf_appendf(&text, "%s/1_Pooling", buf_cstr(&dir));
    ck_assert_int_eq(file_mkdirs(buf_cstr(&text), NULL), 0);
    write_str(buf_cstr(&text), "config.json",
              m->cls ? "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": false}" :
                       "{\"pooling_mode_cls_token\": false, \"pooling_mode_mean_tokens\": true}");
    write_weights(buf_cstr(&dir), m);
    buf_release(&text);
    return buf_detach(&dir, NULL);
}

/* n texts of the tiny vocabulary, of many lengths (some past the limit: use TRUNCATE). */
static char **tiny_texts(size_t n)
{
    static const size_t words[] = {
        0, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 32, 33, 47, 63, 64, 65, 90
    };
    char **texts = xcalloc(n, sizeof(*texts));

    for (size_t i = 0; i < n; i++) {
        struct buf b = BUF_INIT;
        size_t nw = words[i % (sizeof(words) / sizeof(words[0]))] + i / 18;

        for (size_t w = 0; w < nw; w++) {
            uint64_t r = rng_next();

            buf_appendf(&b, "%sw%d%s", w ? " " : "", (int)(r % N_WORDS), r % 7 == 0 ? "s" : "");
            if (r % 11 == 0)
                buf_appends(&b, r % 2 ? "," : "!");
        }
        texts[i] = buf_detach(&b, NULL);
    }
    return texts;
}

static void free_texts(char **texts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
}

static struct retr_embedder *open_dev(const char *dir, enum retr_device d, size_t batch,
                                      size_t pass)
{
    struct retr_embedder_opts o = { .device = d, .batch_tokens = batch, .gpu_pass_tokens = pass };
    struct retr_embedder *e = NULL;
    struct rag_err err = { 0 };

    ck_assert_msg(retr_embedder_open(&e, dir, &o, &err) == 0, "%s", err.msg);
    ck_assert(retr_embedder_on_gpu(e) == (d == RETR_DEVICE_GPU));
    ck_assert(d != RETR_DEVICE_GPU || retr_embedder_info(e)->device_bytes > 0);
    return e;
}

static float *embed_all(struct retr_embedder *e, char **texts, size_t n, unsigned flags)
{
    float *out = xmalloc_array(n * retr_embedder_info(e)->dim + 1, sizeof(float));
    struct rag_err err = { 0 };

    ck_assert_msg(retr_embed(e, (const char *const *)texts, NULL, n, flags, out, &err) == 0, "%s",
                  err.msg);
    return out;
}

/* Every text's vectors in a and b have cosine >= min_cos; returns the smallest. */
static double compare(const char *what, const float *a, const float *b, size_t n, size_t dim,
                      double min_cos)
{
    double worst = 1, sum = 0;

    for (size_t i = 0; i < n; i++) {
        double c = test_cosine(a + i * dim, b + i * dim, dim);

        ck_assert_msg(c >= min_cos, "%s: text %zu: cosine %.7f", what, i, c);
        worst = c < worst ? c : worst;
        sum += c;
    }
    fprintf(stderr, "%s: %zu texts, min cosine %.7f, mean %.7f\n", what, n, worst, sum / n);
    return worst;
}

/* GPU against CPU on the tiny model m, for many text lengths. */
static void tiny_parity(const struct tiny *m, const char *what)
{
    const size_t n = 60;
    char *dir = tiny_dir(m), **texts = tiny_texts(n);
    struct retr_embedder *cpu = open_dev(dir, RETR_DEVICE_CPU, 0, 0);
    struct retr_embedder *gpu = open_dev(dir, RETR_DEVICE_GPU, 0, 0);
    float *vc = embed_all(cpu, texts, n, RETR_EMBED_TRUNCATE);
    float *vg = embed_all(gpu, texts, n, RETR_EMBED_TRUNCATE);

    ck_assert_int_eq(retr_embedder_info(gpu)->pooling,
                     m->cls ? RETR_POOLING_CLS : RETR_POOLING_MEAN);
    compare(what, vg, vc, n, m->dim, COS_MIN);
    free(vc);
    free(vg);
    retr_embedder_close(cpu);
    retr_embedder_close(gpu);
    free_texts(texts, n);
    free(dir);
}

START_TEST(test_tiny_mean_hd32)
{
    struct tiny m = { .dim = 64, .n_heads = 2, .n_layers = 2, .ffn = 128, .n_pos = 80 };

    tiny_parity(&m, "tiny mean, head size 32");
}
END_TEST

START_TEST(test_tiny_cls_hd64)
{
    struct tiny m = {
        .dim = 128, .n_heads = 2, .n_layers = 3, .ffn = 256, .n_pos = 72, .cls = true
    };

    tiny_parity(&m, "tiny cls, head size 64");
}
END_TEST

/* Eager run, capture, replay: bitwise equal; passes and small batches agree with one batch. */
START_TEST(test_graphs_and_passes)
{
    const size_t n = 40;
    struct tiny m = { .dim = 64, .n_heads = 2, .n_layers = 2, .ffn = 128, .n_pos = 80 };
    char *dir = tiny_dir(&m), **texts = tiny_texts(n);
    struct retr_embedder *one = open_dev(dir, RETR_DEVICE_GPU, 0, 0);
    struct retr_embedder *split = open_dev(dir, RETR_DEVICE_GPU, 300, 80);
    float *v[3], *vs;

    for (int r = 0; r < 3; r++)
        v[r] = embed_all(one, texts, n, RETR_EMBED_TRUNCATE);
    ck_assert_msg(!memcmp(v[0], v[1], n * m.dim * sizeof(float)), "eager and captured differ");
    ck_assert_msg(!memcmp(v[0], v[2], n * m.dim * sizeof(float)), "eager and replayed differ");
    for (int r = 0; r < 2; r++) {
        vs = embed_all(split, texts, n, RETR_EMBED_TRUNCATE);
        compare("passes of 80 tokens, batches of 300", vs, v[0], n, m.dim, COS_MIN);
        free(vs);
    }
    for (int r = 0; r < 3; r++)
        free(v[r]);
    retr_embedder_close(one);
    retr_embedder_close(split);
    free_texts(texts, n);
    free(dir);
}
END_TEST

START_TEST(test_unsupported_head_size)
{
    struct tiny m = { .dim = 48, .n_heads = 3, .n_layers = 1, .ffn = 64, .n_pos = 32 };
    struct retr_embedder_opts o = { .device = RETR_DEVICE_GPU };
    struct retr_embedder *e = NULL;
    char *dir = tiny_dir(&m), want[256];
    struct rag_err err = { 0 };

    ck_assert_int_eq(retr_embedder_open(&e, dir, &o, &err), RAG_EINVAL);
    snprintf(want, sizeof(want),
             "embedder '%s': device gpu requested: head size 16 is not supported on the GPU "
             "(32 or 64)",
             strrchr(dir, '/') + 1);
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(e);
    o.device = RETR_DEVICE_AUTO; /* falls back to the CPU */
    ck_assert_int_eq(retr_embedder_open(&e, dir, &o, &err), 0);
    ck_assert(!retr_embedder_on_gpu(e));
    retr_embedder_close(e);
    free(dir);
}
END_TEST

/* ---- the real model ---- */

/* The model cache's all-minilm-l6-v2 (test_model_path); NULL when its weights are missing. */
static const char *minilm_dir(void)
{
    static char path[4096], file[4200];

    if (!test_model_path("all-minilm-l6-v2/model.safetensors", file, sizeof(file)))
        return NULL;
    return test_model_path("all-minilm-l6-v2", path, sizeof(path));
}

/* A directory of links to the real model with max_seq_length 512 and the given pooling. */
static char *long_dir(const char *real, bool cls)
{
    static const char *files[] = { "config.json", "model.safetensors", "vocab.txt",
                                   "tokenizer_config.json" };
    struct buf dir = BUF_INIT, from = BUF_INIT, to = BUF_INIT;

    buf_appendf(&dir, "%s/minilm512%s", test_tmpdir(), cls ? "cls" : "");
    ck_assert_int_eq(file_mkdirs(buf_cstr(&dir), NULL), 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        buf_reset(&from), buf_reset(&to);
        buf_appendf(&from, "%s/%s", real, files[i]);
        buf_appendf(&to, "%s/%s", buf_cstr(&dir), files[i]);
        ck_assert_int_eq(symlink(buf_cstr(&from), buf_cstr(&to)), 0);
    }
    write_str(buf_cstr(&dir), "sentence_bert_config.json", "{\"max_seq_length\": 512}");
    buf_reset(&to);
    buf_appendf(&to, "%s/1_Pooling", buf_cstr(&dir));
    ck_assert_int_eq(file_mkdirs(buf_cstr(&to), NULL), 0);
    write_str(buf_cstr(&to), "config.json",
              cls ? "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": false}" :
                    "{\"pooling_mode_cls_token\": false, \"pooling_mode_mean_tokens\": true}");
    buf_release(&from);
    buf_release(&to);
    return buf_detach(&dir, NULL);
}

/* Varied texts: short, Unicode, code, and long ones (cut to the limit with TRUNCATE). */
static char **real_texts(size_t *ret_n)
{
    static const char *const fixed[] = {
        "",
        "a",
        "The quick brown fox jumps over the lazy dog.",
        "Retrieval-augmented generation grounds a language model in retrieved passages.",
        "中文字符测试：检索增强生成。",
        "Ünïcödé wörds, émoji 😀🚀 and ligatures ﬁ ﬂ — dashes – “quotes”.",
        "int main(void) { for (int i = 0; i < 10; i++) printf(\"%d\\n\", i); return 0; }",
        "def f(x):\n    return {k: v ** 2 for k, v in x.items() if v > 0}\n",
        "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC LIMIT 10;",
        "Ελληνικά, русский текст, العربية, עברית, हिन्दी, 日本語のテキスト。",
        "   leading and trailing spaces\t\twith tabs\nand newlines   ",
        "1234567890 3.14159 2.71828 6.022e23 -42 +17 0x1F 1,000,000",
    };
    static const size_t longs[] = { 20, 50, 80, 100, 150, 250 };
    size_t nf = sizeof(fixed) / sizeof(fixed[0]), nl = sizeof(longs) / sizeof(longs[0]);
    char **t = xcalloc(nf + nl, sizeof(*t));

    for (size_t i = 0; i < nf; i++)
        t[i] = xstrdup(fixed[i]);
    for (size_t i = 0; i < nl; i++) {
        struct buf b = BUF_INIT;

        for (size_t w = 0; w < longs[i]; w++)
            buf_appendf(&b, "%s%zu ", w % 3 ? "token" : "Über", w);
        t[nf + i] = buf_detach(&b, NULL);
    }
    *ret_n = nf + nl;
    return t;
}

static void minilm_case(const char *dir, const char *what)
{
    size_t n;
    char **texts = real_texts(&n);
    struct retr_embedder *cpu = open_dev(dir, RETR_DEVICE_CPU, 0, 0);
    struct retr_embedder *gpu = open_dev(dir, RETR_DEVICE_GPU, 0, 0);
    size_t dim = retr_embedder_info(gpu)->dim;
    float *vc = embed_all(cpu, texts, n, RETR_EMBED_TRUNCATE);
    float *vg = embed_all(gpu, texts, n, RETR_EMBED_TRUNCATE);

    compare(what, vg, vc, n, dim, COS_MIN);
    free(vc);
    free(vg);
    retr_embedder_close(cpu);
    retr_embedder_close(gpu);
    free_texts(texts, n);
}

START_TEST(test_minilm)
{
    const char *real = minilm_dir();
    char *d;

    if (!real) {
        fprintf(stderr, "minilm: model files missing, GPU/CPU comparison skipped\n");
        return;
    }
    minilm_case(real, "all-MiniLM-L6-v2 (256 tokens, mean)");
    d = long_dir(real, false);
    minilm_case(d, "all-MiniLM-L6-v2 (512 tokens, mean)");
    free(d);
    d = long_dir(real, true);
    minilm_case(d, "all-MiniLM-L6-v2 (512 tokens, cls)");
    free(d);
}
END_TEST

/* ---- main ---- */

static TCase *device_case(Suite *s, const char *name, int timeout)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, device_setup, device_teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *embedgpu_suite(void)
{
    Suite *s = suite_create("embedgpu");
    TCase *k = device_case(s, "kernels", 60), *m = tcase_create("model");
    TCase *real = tcase_create("minilm");

    tcase_add_test(k, test_layernorm);
    tcase_add_test(k, test_bert_embed);
    tcase_add_test(k, test_bias_gelu);
    tcase_add_test(k, test_attn_encoder);
    tcase_add_test(k, test_bert_pool);
    tcase_add_test(k, test_encoder_args);
    tcase_set_timeout(m, 120);
    tcase_add_test(m, test_tiny_mean_hd32);
    tcase_add_test(m, test_tiny_cls_hd64);
    tcase_add_test(m, test_graphs_and_passes);
    tcase_add_test(m, test_unsupported_head_size);
    suite_add_tcase(s, m);
    tcase_set_timeout(real, 300);
    tcase_add_test(real, test_minilm);
    suite_add_tcase(s, real);
    return s;
}

/* In test_probe()'s child: 0 with a GPU, 2 without. */
static int has_gpu(void)
{
    return gpu_count() > 0 ? 0 : 2;
}

int main(void)
{
    const char *s = getenv("RAG_TEST_SEED");
    int have_gpu = test_probe(has_gpu);
    size_t v;

    if (have_gpu < 0) {
        fprintf(stderr, "test_embedgpu: the GPU probe crashed\n");
        return EXIT_FAILURE;
    }
    if (!have_gpu) {
        fprintf(stderr, "test_embedgpu: no GPU, skipped\n");
        return 77;
    }
    if (s && parse_size(s, 0, SIZE_MAX, &v) == 0)
        test_seed = v;
    else
        test_seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    fprintf(stderr, "test_embedgpu: seed %llu (RAG_TEST_SEED repeats it)\n",
            (unsigned long long)test_seed);
    rng_state = test_seed;
    return test_run_suite(embedgpu_suite());
}
