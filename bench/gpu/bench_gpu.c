/*
 * bench/gpu/bench_gpu.c - timings of the gpu/ engine on one device: copy
 * bandwidth, the launch-overhead floor, cuBLASLt GEMMs at the SmolLM2-135M
 * and Llama-3-8B shapes, decode attention at several KV lengths and
 * prefill attention. Prints one line per measurement, then a short table.
 *
 * Method (.library METHOD.md): every kernel is run once before timing (so
 * module load and cuBLASLt's algorithm choice stay out), then R calls are
 * captured in a CUDA graph and the graph is replayed 5 times; the median
 * replay over R is the time per call, free of host launch cost. Inputs are
 * random (never zeros); GEMM weights rotate over enough copies to exceed
 * the 60 MB L2 when the weights are small (up to 64 copies). Launch
 * overhead is measured directly: eager launches of the empty kernel and of
 * a 256-element axpy, and the same kernels replayed from a graph.
 *
 * Usage: bench_gpu [--quick | --floor | --prefill | --decode | --gemv]
 * (--quick: fewer shapes and repetitions; --floor: the copy bandwidth and
 * the launch floor only, for bench/gpu/run.sh; --prefill: prefill attention
 * only; --decode: copy bandwidth and decode attention only; --gemv:
 * the decode linear layers of SmolLM2-135M and Llama-3-8B at m = 1 and 32
 * through cuBLASLt, gpu_gemv and gpu_gemv_rmsnorm, GB/s of weights read)
 * Exit status 0, 1 on any error, 77 without a GPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "gpu/gpu.h"

#define REPLAYS 5
#define PATTERN ((size_t)32 << 20) /* bytes of random data repeated into big buffers */

static struct gpu *g;
static unsigned char *pattern;
static bool quick;
static char table[96][96]; /* the summary rows printed last */
static int n_rows;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const struct rag_err *err)
{
    fprintf(stderr, "bench_gpu: %s: %s\n", what, err->msg);
    exit(1);
}

static void check(int rc, const char *what, const struct rag_err *err)
{
    if (rc)
        die(what, err);
}

static void row(const char *fmt, ...) RAG_PRINTF(1, 2);
static void row(const char *fmt, ...)
{
    va_list ap;

    if (n_rows == 96)
        return;
    va_start(ap, fmt);
    vsnprintf(table[n_rows++], sizeof(table[0]), fmt, ap);
    va_end(ap);
}

/* Random bf16 values in [-1, 1): no zeros, no NaN. */
static void pattern_init(void)
{
    uint64_t s = 0x9e3779b97f4a7c15ULL;

    pattern = xmalloc(PATTERN);
    for (size_t i = 0; i < PATTERN / 2; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        float f = (float)((double)(s >> 40) / 8388608.0 - 1.0);
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        uint16_t h = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
        memcpy(pattern + 2 * i, &h, sizeof(h));
    }
}

/* A new device buffer of bytes filled with the pattern (as bf16 or as bytes). */
static struct gpu_buf alloc_filled(size_t bytes)
{
    struct rag_err err = { 0 };
    struct gpu_buf b;

    check(gpu_buf_alloc(g, bytes, &b, &err), "alloc", &err);
    for (size_t off = 0; off < bytes; off += PATTERN) {
        struct gpu_buf view = { (char *)b.ptr + off, bytes - off };
        size_t n = bytes - off < PATTERN ? bytes - off : PATTERN;
        check(gpu_upload(g, &view, pattern, n, &err), "upload", &err);
    }
    return b;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

typedef int op_fn(void *ctx, int i, struct rag_err *err);

/* Seconds per call of op: r calls captured in a graph, median of REPLAYS replays. */
static double time_graph(op_fn *op, void *ctx, int r)
{
    struct rag_err err = { 0 };
    struct gpu_graph *graph;
    double t[REPLAYS];

    check(op(ctx, 0, &err), "warm-up", &err);
    check(gpu_sync(g, &err), "warm-up", &err);
    check(gpu_capture_begin(g, &err), "capture", &err);
    for (int i = 0; i < r; i++)
        check(op(ctx, i, &err), "capture", &err);
    check(gpu_capture_end(g, &graph, &err), "capture", &err);
    check(gpu_graph_launch(g, graph, &err), "replay", &err);
    check(gpu_sync(g, &err), "replay", &err);
    for (int k = 0; k < REPLAYS; k++) {
        double t0 = now();
        check(gpu_graph_launch(g, graph, &err), "replay", &err);
        check(gpu_sync(g, &err), "replay", &err);
        t[k] = (now() - t0) / r;
    }
    gpu_graph_free(g, graph);
    qsort(t, REPLAYS, sizeof(t[0]), cmp_double);
    return t[REPLAYS / 2];
}

/* Seconds per call of op launched eagerly n times, then one sync. */
static double time_eager(op_fn *op, void *ctx, int n)
{
    struct rag_err err = { 0 };
    double t0;

    check(op(ctx, 0, &err), "warm-up", &err);
    check(gpu_sync(g, &err), "warm-up", &err);
    t0 = now();
    for (int i = 0; i < n; i++)
        check(op(ctx, i, &err), "eager", &err);
    check(gpu_sync(g, &err), "eager", &err);
    return (now() - t0) / n;
}

/* ---- copy bandwidth and launch floor ---- */

struct copy_ctx {
    struct gpu_buf a, b;
};

static int copy_op(void *ctx, int i, struct rag_err *err)
{
    struct copy_ctx *c = ctx;

    (void)i;
    return gpu_copy(g, &c->b, &c->a, c->a.bytes, err);
}

static int convert_op(void *ctx, int i, struct rag_err *err)
{
    struct copy_ctx *c = ctx;

    (void)i;
    return gpu_convert(g, &c->a, GPU_F32, &c->b, GPU_F32, c->a.bytes / 4, err);
}

static int noop_op(void *ctx, int i, struct rag_err *err)
{
    (void)ctx;
    (void)i;
    return gpu_noop(g, err);
}

static int axpy_op(void *ctx, int i, struct rag_err *err)
{
    struct copy_ctx *c = ctx;

    (void)i;
    return gpu_axpy(g, 256, 0.5f, &c->a, &c->b, err);
}

static double bench_copy(void)
{
    size_t bytes = (size_t)1 << 30;
    struct copy_ctx c = { alloc_filled(bytes), alloc_filled(bytes) };
    double s = time_graph(copy_op, &c, 4), gbs = 2.0 * (double)bytes / s / 1e9;
    double sk = time_graph(convert_op, &c, 4), gbk = 2.0 * (double)bytes / sk / 1e9;

    printf("copy     1 GiB device to device: cudaMemcpyAsync %.3f ms, %.0f GB/s; copy kernel "
           "(gpu_convert f32) %.3f ms, %.0f GB/s (read + write)\n",
           s * 1e3, gbs, sk * 1e3, gbk);
    row("copy 1 GiB memcpy / kernel (rd+wr)  %5.0f / %.0f GB/s", gbs, gbk);
    if (gbk > gbs)
        gbs = gbk;
    gpu_buf_free(g, &c.a);
    gpu_buf_free(g, &c.b);
    return gbs;
}

static void bench_launch(void)
{
    struct copy_ctx c = { alloc_filled(1 << 20), alloc_filled(1 << 20) };
    int n = quick ? 2000 : 20000, r = 1000;
    double e0 = time_eager(noop_op, NULL, n), g0 = time_graph(noop_op, NULL, r);
    double e1 = time_eager(axpy_op, &c, n), g1 = time_graph(axpy_op, &c, r);

    printf("launch   empty kernel: eager %.2f us/launch, graph of %d %.2f us/kernel\n", e0 * 1e6, r,
           g0 * 1e6);
    printf("launch   axpy n=256:   eager %.2f us/launch, graph of %d %.2f us/kernel\n", e1 * 1e6, r,
           g1 * 1e6);
    row("launch floor, empty kernel, eager       %8.2f us", e0 * 1e6);
    row("launch floor, empty kernel, graph       %8.2f us", g0 * 1e6);
    row("axpy(256) eager / graph                 %5.2f / %.2f us", e1 * 1e6, g1 * 1e6);
    gpu_buf_free(g, &c.a);
    gpu_buf_free(g, &c.b);
}

/* ---- GEMM ---- */

struct gemm_ctx {
    size_t m, n, k;
    enum gpu_dtype c_type;
    int n_w; /* weight copies rotated through */
    struct gpu_buf a, w, c;
};

static int gemm_op(void *ctx, int i, struct rag_err *err)
{
    struct gemm_ctx *c = ctx;
    size_t wb = c->n * c->k * 2;
    struct gpu_buf w = { (char *)c->w.ptr + (size_t)(i % c->n_w) * wb, wb };

    return gpu_gemm(g, &c->a, &w, GPU_BF16, NULL, &c->c, c->c_type, c->m, c->n, c->k, 0, err);
}

static void bench_gemm(const char *model, const char *name, size_t m, size_t n, size_t k,
                       enum gpu_dtype c_type)
{
    struct gemm_ctx c = { m, n, k, c_type, 1, { 0 }, { 0 }, { 0 } };
    size_t wb = n * k * 2;
    double s, tflops, gbs;

    while (c.n_w < 64 && (size_t)c.n_w * wb < ((size_t)128 << 20))
        c.n_w++;
    c.a = alloc_filled(m * k * 2);
    c.w = alloc_filled(wb * (size_t)c.n_w);
    c.c = alloc_filled(m * n * gpu_dtype_size(c_type));
    s = time_graph(gemm_op, &c, quick ? 8 : 32);
    tflops = 2.0 * (double)m * (double)n * (double)k / s / 1e12;
    gbs = (double)(wb + m * k * 2 + m * n * gpu_dtype_size(c_type)) / s / 1e9;
    printf("gemm     %-5s %-9s m=%-5zu n=%-6zu k=%-5zu %s: %9.1f us %7.1f TFLOP/s %6.0f GB/s "
           "(%d weight copies)\n",
           model, name, m, n, k, c_type == GPU_F32 ? "f32" : "bf16", s * 1e6, tflops, gbs, c.n_w);
    row("gemm %-5s %-9s m=%-5zu %8.1f TFLOP/s %5.0f GB/s", model, name, m, tflops, gbs);
    gpu_buf_free(g, &c.a);
    gpu_buf_free(g, &c.w);
    gpu_buf_free(g, &c.c);
}

static void bench_gemms(void)
{
    /* SmolLM2-135M: hidden 576, QKV 960, FFN 1536, vocab 49152 */
    bench_gemm("135M", "qkv", 4096, 960, 576, GPU_BF16);
    bench_gemm("135M", "gate_up", 4096, 3072, 576, GPU_BF16);
    bench_gemm("135M", "down", 4096, 576, 1536, GPU_BF16);
    bench_gemm("135M", "lm_head", 1, 49152, 576, GPU_F32);
    bench_gemm("135M", "gate_up", 1, 3072, 576, GPU_BF16);
    bench_gemm("135M", "gate_up", 32, 3072, 576, GPU_BF16);
    /* Llama-3-8B: hidden 4096, QKV 6144, FFN 14336, vocab 128256 */
    bench_gemm("8B", "qkv", 4096, 6144, 4096, GPU_BF16);
    bench_gemm("8B", "gate_up", 4096, 28672, 4096, GPU_BF16);
    bench_gemm("8B", "down", 4096, 4096, 14336, GPU_BF16);
    bench_gemm("8B", "gate_up", 1, 28672, 4096, GPU_BF16);
    bench_gemm("8B", "gate_up", 32, 28672, 4096, GPU_BF16);
    if (!quick)
        bench_gemm("8B", "lm_head", 1, 128256, 4096, GPU_F32);
    bench_gemm("sq", "8192^3", 8192, 8192, 8192, GPU_BF16);
}

/* ---- decode GEMV ---- */

enum { RUN_GEMM, RUN_GEMV, RUN_GEMV_RMS };

struct gemv_ctx {
    struct gemm_ctx p;
    int run;
    struct gpu_buf norm;
};

static int gemv_op(void *ctx, int i, struct rag_err *err)
{
    struct gemv_ctx *c = ctx;
    size_t wb = c->p.n * c->p.k * 2;
    struct gpu_buf w = { (char *)c->p.w.ptr + (size_t)(i % c->p.n_w) * wb, wb };

    if (c->run == RUN_GEMM)
        return gpu_gemm(g, &c->p.a, &w, GPU_BF16, NULL, &c->p.c, GPU_F32, c->p.m, c->p.n, c->p.k, 0,
                        err);
    if (c->run == RUN_GEMV)
        return gpu_gemv(g, &c->p.a, &w, GPU_BF16, NULL, &c->p.c, GPU_F32, c->p.m, c->p.n, c->p.k, 0,
                        err);
    return gpu_gemv_rmsnorm(g, &c->p.a, &c->norm, 1e-5f, &w, GPU_BF16, NULL, &c->p.c, GPU_F32,
                            c->p.m, c->p.n, c->p.k, 0, err);
}

/* One decode shape (bf16 weights, f32 out) through each of the three paths. */
static void bench_gemv(const char *model, const char *name, size_t m, size_t n, size_t k)
{
    static const char *const runs[] = { "gemm", "gemv", "gemv+rms" };
    struct gemv_ctx c = { { m, n, k, GPU_F32, 1, { 0 }, { 0 }, { 0 } }, 0, { 0 } };
    size_t wb = n * k * 2;

    while (c.p.n_w < 64 && (size_t)c.p.n_w * wb < ((size_t)256 << 20))
        c.p.n_w++;
    c.p.a = alloc_filled(m * k * 4); /* x of the RMSNorm variant is fp32 */
    c.p.w = alloc_filled(wb * (size_t)c.p.n_w);
    c.p.c = alloc_filled(m * n * 4);
    c.norm = alloc_filled(k * 4);
    for (c.run = RUN_GEMM; c.run <= RUN_GEMV_RMS; c.run++) {
        double s = time_graph(gemv_op, &c, quick ? 8 : 32), gbs = (double)wb / s / 1e9;

        printf("gemv     %-5s %-8s m=%-3zu n=%-6zu k=%-5zu %-8s: %8.2f us %6.0f GB/s of weights "
               "(%d copies)\n",
               model, name, m, n, k, runs[c.run], s * 1e6, gbs, c.p.n_w);
        row("gemv %-5s %-8s m=%-3zu %-8s %8.2f us %5.0f GB/s", model, name, m, runs[c.run], s * 1e6,
            gbs);
    }
    gpu_buf_free(g, &c.p.a);
    gpu_buf_free(g, &c.p.w);
    gpu_buf_free(g, &c.p.c);
    gpu_buf_free(g, &c.norm);
}

static void bench_gemvs(void)
{
    static const struct {
        const char *model, *name;
        size_t n, k;
    } shapes[] = {
        { "135M", "qkv", 960, 576 },       { "135M", "o", 576, 576 },
        { "135M", "gate_up", 3072, 576 },  { "135M", "down", 576, 1536 },
        { "135M", "lm_head", 49152, 576 }, { "8B", "qkv", 6144, 4096 },
        { "8B", "o", 4096, 4096 },         { "8B", "gate_up", 28672, 4096 },
        { "8B", "down", 4096, 14336 },     { "8B", "lm_head", 128256, 4096 },
    };

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        bench_gemv(shapes[i].model, shapes[i].name, 1, shapes[i].n, shapes[i].k);
        bench_gemv(shapes[i].model, shapes[i].name, 32, shapes[i].n, shapes[i].k);
    }
}

/* ---- attention ---- */

struct attn_ctx {
    size_t n_heads, n_seqs, len, pos0; /* prefill: len new tokens after pos0 cached ones */
    struct gpu_kv_cache kv;
    struct gpu_seqs seqs;
    struct gpu_buf q, out, work, table;
};

static int decode_op(void *ctx, int i, struct rag_err *err)
{
    struct attn_ctx *c = ctx;

    (void)i;
    return gpu_attn_decode(g, &c->q, c->n_heads, &c->kv, &c->seqs,
                           1.0f / sqrtf((float)c->kv.head_dim), &c->work, &c->out, GPU_BF16, err);
}

static int prefill_op(void *ctx, int i, struct rag_err *err)
{
    struct attn_ctx *c = ctx;

    (void)i;
    return gpu_attn_prefill(g, &c->q, c->len, c->n_heads, c->pos0, &c->kv, &c->table,
                            1.0f / sqrtf((float)c->kv.head_dim), &c->out, GPU_BF16, err);
}

/* A bf16 cache of n_seqs sequences of len tokens, block i of the pool for table entry i. */
static void attn_init(struct attn_ctx *c, size_t n_heads, size_t n_kv, size_t hd, size_t n_seqs,
                      size_t len, size_t n_q)
{
    struct rag_err err = { 0 };
    size_t max_blocks = (len + 15) / 16, n_blocks = n_seqs * max_blocks, ws;
    int32_t *tables = xmalloc_array(n_blocks, sizeof(int32_t));
    int32_t *lens = xmalloc_array(n_seqs, sizeof(int32_t));

    *c = (struct attn_ctx){ .n_heads = n_heads, .n_seqs = n_seqs, .len = len };
    c->kv = (struct gpu_kv_cache){
        .type = GPU_BF16, .n_blocks = n_blocks, .n_kv_heads = n_kv, .head_dim = hd
    };
    c->kv.k = alloc_filled(n_blocks * 16 * n_kv * hd * 2);
    c->kv.v = alloc_filled(n_blocks * 16 * n_kv * hd * 2);
    for (size_t i = 0; i < n_blocks; i++)
        tables[i] = (int32_t)((i * 7919) % n_blocks); /* scattered blocks */
    for (size_t i = 0; i < n_seqs; i++)
        lens[i] = (int32_t)len;
    c->seqs = (struct gpu_seqs){ .n_seqs = n_seqs, .max_blocks = max_blocks };
    c->seqs.block_tables = alloc_filled(n_blocks * 4);
    c->seqs.lens = alloc_filled(n_seqs * 4);
    check(gpu_upload(g, &c->seqs.block_tables, tables, n_blocks * 4, &err), "upload", &err);
    check(gpu_upload(g, &c->seqs.lens, lens, n_seqs * 4, &err), "upload", &err);
    c->table = c->seqs.block_tables;
    c->q = alloc_filled(n_q * n_heads * hd * 4);
    c->out = alloc_filled(n_q * n_heads * hd * 4);
    ws = gpu_attn_decode_workspace(g, n_heads, &c->kv, &c->seqs);
    c->work = alloc_filled(ws ? ws : 4);
    free(tables);
    free(lens);
}

static void attn_release(struct attn_ctx *c)
{
    gpu_buf_free(g, &c->kv.k);
    gpu_buf_free(g, &c->kv.v);
    gpu_buf_free(g, &c->seqs.block_tables);
    gpu_buf_free(g, &c->seqs.lens);
    gpu_buf_free(g, &c->q);
    gpu_buf_free(g, &c->out);
    gpu_buf_free(g, &c->work);
}

static void bench_decode(const char *model, size_t n_heads, size_t n_kv, size_t hd, size_t n_seqs,
                         size_t len, double copy_gbs)
{
    struct attn_ctx c;
    double s, bytes, gbs;

    attn_init(&c, n_heads, n_kv, hd, n_seqs, len, n_seqs);
    s = time_graph(decode_op, &c, quick ? 10 : 50);
    bytes = 2.0 * (double)n_seqs * (double)len * (double)n_kv * (double)hd * 2;
    gbs = bytes / s / 1e9;
    printf("decode   %-5s heads %2zu/%zu hd %3zu batch %2zu kv %5zu: %8.1f us %6.0f GB/s "
           "(%.0f%% of copy)\n",
           model, n_heads, n_kv, hd, n_seqs, len, s * 1e6, gbs, 100 * gbs / copy_gbs);
    row("attn decode %-4s b=%-2zu kv=%-5zu %8.1f us %5.0f GB/s", model, n_seqs, len, s * 1e6, gbs);
    attn_release(&c);
}

/*
 * Causal prefill of len tokens after pos0 cached ones, kv_type cache, bf16
 * out. FLOPs: 4 * n_heads * head_dim per (query, visible key) pair, and
 * query t sees pos0 + t + 1 keys.
 */
static void bench_prefill(const char *model, size_t n_heads, size_t n_kv, size_t hd, size_t pos0,
                          size_t len, enum gpu_dtype kv_type)
{
    const char *kv_name = kv_type == GPU_F16 ? "f16" : kv_type == GPU_BF16 ? "bf16" : "f32";
    struct attn_ctx c;
    double s, pairs, tflops;

    attn_init(&c, n_heads, n_kv, hd, 1, pos0 + len, len);
    c.len = len;
    c.pos0 = pos0;
    c.kv.type = kv_type; /* the bf16 pattern read as fp16 is finite, within +-2 */
    s = time_graph(prefill_op, &c, 3);
    pairs = (double)len * (double)pos0 + (double)len * (double)(len + 1) / 2;
    tflops = 4.0 * (double)n_heads * (double)hd * pairs / s / 1e12;
    printf("prefill  %-5s heads %2zu/%zu hd %3zu kv %-4s pos0 %4zu tokens %5zu: %8.3f ms per "
           "layer, %.1f TFLOP/s\n",
           model, n_heads, n_kv, hd, kv_name, pos0, len, s * 1e3, tflops);
    row("attn prefill %-4s %-4s %4zu+%-4zu %7.3f ms/layer %5.1f TFLOP/s", model, kv_name, pos0, len,
        s * 1e3, tflops);
    attn_release(&c);
}

/* 4,096 tokens at both model shapes, bf16 and fp16 caches, and as two chunks of 2,048. */
static void bench_prefills(void)
{
    bench_prefill("135M", 9, 3, 64, 0, 4096, GPU_BF16);
    bench_prefill("135M", 9, 3, 64, 0, 4096, GPU_F16);
    bench_prefill("135M", 9, 3, 64, 2048, 2048, GPU_BF16);
    bench_prefill("8B", 32, 8, 128, 0, 4096, GPU_BF16);
    bench_prefill("8B", 32, 8, 128, 0, 4096, GPU_F16);
    bench_prefill("8B", 32, 8, 128, 2048, 2048, GPU_BF16);
}

/* Decode attention at both model shapes, one and 32 sequences, 128 to 8,192 cached tokens. */
static void bench_decodes(double copy_gbs)
{
    static const size_t lens[] = { 128, 512, 2048, 8192 };

    for (size_t i = 0; i < 4; i++) {
        bench_decode("135M", 9, 3, 64, 1, lens[i], copy_gbs);
        bench_decode("135M", 9, 3, 64, 32, lens[i], copy_gbs);
        bench_decode("8B", 32, 8, 128, 1, lens[i], copy_gbs);
        bench_decode("8B", 32, 8, 128, 32, lens[i], copy_gbs);
    }
}

int main(int argc, char **argv)
{
    struct rag_err err = { 0 };
    struct gpu_info info;
    double copy_gbs;
    bool floor_only = argc > 1 && strcmp(argv[1], "--floor") == 0;
    bool prefill_only = argc > 1 && strcmp(argv[1], "--prefill") == 0;
    bool gemv_only = argc > 1 && strcmp(argv[1], "--gemv") == 0;
    bool decode_only = argc > 1 && strcmp(argv[1], "--decode") == 0;

    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (gpu_open(&g, 0, &err)) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        return err.code == RAG_ENOSYS || err.code == RAG_EGPU ? 77 : 1;
    }
    check(gpu_info(g, &info, &err), "info", &err);
    printf("device   %s, compute %d.%d, %d SMs, %.0f GiB, L2 %zu MiB\n", info.name, info.cc_major,
           info.cc_minor, info.n_sm, info.mem_total / 1073741824.0, info.l2_bytes >> 20);
    pattern_init();
    if (prefill_only) {
        bench_prefills();
    } else if (gemv_only) {
        bench_gemvs();
    } else {
        copy_gbs = bench_copy();
        if (!decode_only)
            bench_launch();
        if (!floor_only && !decode_only)
            bench_gemms();
        if (!floor_only)
            bench_decodes(copy_gbs);
        if (!floor_only && !decode_only)
            bench_prefills();
    }
    printf("\n%-48s\n", "summary");
    for (int i = 0; i < n_rows; i++)
        printf("%s\n", table[i]);
    free(pattern);
    gpu_close(g);
    return 0;
}
