/*
 * tests/gputest.c - the helpers of tests/gputest.h: seeded random inputs,
 * the device fixture and its pool, copies, the host references of bf16 and
 * fp16, the host copy of a paged KV cache, and main()'s GPU probe and seed.
 */
#include "tests/gputest.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/testutil.h"

uint64_t test_seed;
static uint64_t rng_state;
struct gpu *g;
struct gpu_buf pool;

uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float rng_float(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next() >> 40) / 16777216.0);
}

float *random_floats(size_t n, float lo, float hi)
{
    float *p = xmalloc_array(n ? n : 1, sizeof(float));

    for (size_t i = 0; i < n; i++)
        p[i] = rng_float(lo, hi);
    return p;
}

float *filled_floats(size_t n, float v)
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
void pool_alloc(size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_buf_alloc(g, bytes, &pool, &err) == 0, "alloc: %s", err.msg);
}

struct gpu_buf carve_floats(size_t *off, size_t n)
{
    struct rag_err err = { 0 };
    struct gpu_buf b;

    ck_assert_msg(gpu_buf_carve(&pool, off, n * sizeof(float), &b, &err) == 0, "%s", err.msg);
    return b;
}

void put(struct gpu_buf *b, const float *p, size_t n)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_upload(g, b, p, n * sizeof(float), &err) == 0, "%s", err.msg);
}

void get(float *p, const struct gpu_buf *b, size_t n)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_download(g, p, b, n * sizeof(float), &err) == 0, "%s", err.msg);
}

/* NaN fails: the comparison is written so that it must hold. */
bool within(double got, double ref, double tol)
{
    return fabs(got - ref) <= tol;
}
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
double decode_at(enum gpu_dtype t, const void *p, size_t i)
{
    if (t == GPU_F32)
        return ((const float *)p)[i];
    if (t == GPU_BF16)
        return bf16_val(((const uint16_t *)p)[i]);
    return half_val(((const uint16_t *)p)[i]);
}

/* v as type t would round it (v is a float value). */
double round_to(enum gpu_dtype t, double v)
{
    if (t == GPU_F32)
        return (float)v;
    if (t == GPU_BF16)
        return bf16_val(bf16_of((float)v));
    return half_round((float)v);
}

/* n floats of src rounded and stored as type t in a new array. */
void *encode(enum gpu_dtype t, const float *src, size_t n)
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
float *random_as(enum gpu_dtype t, size_t n, float lo, float hi)
{
    float *p = random_floats(n, lo, hi);

    for (size_t i = 0; i < n; i++)
        p[i] = (float)round_to(t, p[i]);
    return p;
}
struct gpu_buf carve_bytes(size_t *off, size_t bytes)
{
    struct rag_err err = { 0 };
    struct gpu_buf b;

    ck_assert_msg(gpu_buf_carve(&pool, off, bytes, &b, &err) == 0, "%s", err.msg);
    return b;
}

void put_bytes(struct gpu_buf *b, const void *p, size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_upload(g, b, p, bytes, &err) == 0, "%s", err.msg);
}

void get_bytes(void *p, const struct gpu_buf *b, size_t bytes)
{
    struct rag_err err = { 0 };

    ck_assert_msg(gpu_download(g, p, b, bytes, &err) == 0, "%s", err.msg);
}

/* Fill bytes of b with 0xff: NaN in fp32, bf16 and fp16 alike. */
void poison(struct gpu_buf *b, size_t bytes)
{
    unsigned char *p = xmalloc(bytes ? bytes : 1);

    memset(p, 0xff, bytes);
    put_bytes(b, p, bytes);
    free(p);
}

bool same_or_nan(double got, double want)
{
    return (isnan(got) && isnan(want)) || got == want;
}

/* How many of the GUARD elements of type t after out[n - 1] a kernel overwrote (no longer NaN). */
size_t guard_broken(enum gpu_dtype t, const void *out, size_t n)
{
    size_t bad = 0;

    for (size_t i = n; i < n + GUARD; i++)
        bad += !isnan(decode_at(t, out, i));
    return bad;
}

/* Half a step of type t at ref: what rounding a result to t may add. */
double half_step(enum gpu_dtype t, double ref)
{
    return t == GPU_BF16 ? ldexp(fabs(ref), -8) : t == GPU_F16 ? ldexp(fabs(ref), -11) : 0;
}
const char *type_str(enum gpu_dtype t)
{
    return t == GPU_F32 ? "f32" : t == GPU_BF16 ? "bf16" : "f16";
}

/* ---- a host copy of a paged KV cache ---- */

void host_cache_init(struct host_cache *c, const struct attn_shape *s, size_t n_blocks)
{
    size_t n = n_blocks * GPU_KV_BLOCK * s->n_kv_heads * s->head_dim;

    c->n_blocks = n_blocks;
    c->n_kv_heads = s->n_kv_heads;
    c->head_dim = s->head_dim;
    c->k = filled_floats(n, NAN);
    c->v = filled_floats(n, NAN);
}

void host_cache_free(struct host_cache *c)
{
    free(c->k);
    free(c->v);
}

size_t host_at(const struct host_cache *c, int32_t blk, size_t kvh, size_t t)
{
    return (((size_t)blk * c->n_kv_heads + kvh) * GPU_KV_BLOCK + t % GPU_KV_BLOCK) * c->head_dim;
}

/* Fill tokens 0..len-1 of a sequence with random K and V representable in type. */
void host_cache_fill(struct host_cache *c, const int32_t *table, size_t len, enum gpu_dtype type)
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
void host_cache_put(const struct host_cache *c, struct gpu_kv_cache *kv, size_t *off)
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

size_t host_cache_bytes(const struct host_cache *c, enum gpu_dtype t)
{
    return 2 *
           gpu_align(c->n_blocks * GPU_KV_BLOCK * c->n_kv_heads * c->head_dim * gpu_dtype_size(t));
}
/* A random permutation of n block ids. */
int32_t *shuffled_blocks(size_t n)
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

/* ---- cases and main ---- */

/* A case whose tests each open device 0 (checked fixture: in the test's process). */
TCase *device_case(Suite *s, const char *name, double timeout)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, device_setup, device_teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

/* The program's name in messages, as given to gputest_main(). */
static const char *prog_name = "test_gpu";

/*
 * In test_probe()'s child: open device 0 and describe it on stderr. 0 with a
 * GPU, 2 without (no CUDA in the build, no driver or no device).
 */
static int describe_gpu(void)
{
    struct rag_err err = { 0 };
    struct gpu_info info;

    if (gpu_open(&g, 0, &err) || gpu_info(g, &info, &err)) {
        fprintf(stderr, "%s: device tests skipped: %s\n", prog_name, err.msg);
        return 2;
    }
    fprintf(stderr,
            "%s: %s, compute %d.%d, %d SMs, %.1f GiB, bus %d bits, memory clock %d "
            "MHz, driver %d, runtime %d\n",
            prog_name, info.name, info.cc_major, info.cc_minor, info.n_sm,
            info.mem_total / 1073741824.0, info.mem_bus_bits, info.mem_clock_khz / 1000,
            info.driver_version, info.runtime_version);
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
    fprintf(stderr, "%s: seed %llu (RAG_TEST_SEED repeats it)\n", prog_name,
            (unsigned long long)test_seed);
}

int gputest_main(const char *name, Suite *(*suite_fn)(bool have_gpu))
{
    int have_gpu;
    int rc;

    prog_name = name;
    have_gpu = test_probe(describe_gpu);
    if (have_gpu < 0) {
        fprintf(stderr, "%s: the GPU probe crashed\n", name);
        return EXIT_FAILURE;
    }
    seed_init();
    rc = test_run_suite(suite_fn(have_gpu));
    if (rc == EXIT_SUCCESS && !have_gpu)
        return 77;
    return rc;
}
