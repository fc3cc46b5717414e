/*
 * tests/gputest.h - what the gpu suites (test_gpu, test_gpugemm, test_gpuops,
 * test_gpuattn, test_gpuprefill) share: the device and pool of the running
 * test, seeded random inputs, copies to and from the device, host references
 * of bf16 and fp16, comparisons, a host copy of a paged KV cache, the device
 * cases and main().
 *
 * gputest_main() first probes for a GPU in a child process (so the runner
 * never initialises CUDA before Check forks, which CUDA does not survive);
 * without CUDA or without a device it runs only the cases that need no
 * device and then exits 77, which meson shows as SKIP.
 *
 * Outputs are poisoned with NaN (and followed by GUARD sentinel values)
 * before each kernel, so an element the kernel fails to write, or one it
 * writes past the end, fails the comparison. References are computed in
 * double; wherever an output is 16-bit the tolerance adds half a step of
 * its type (half_step): 2^-8 |ref| for bf16 (8 significant bits), 2^-11
 * |ref| for fp16 (11 bits). The seed is new each run and printed;
 * RAG_TEST_SEED=<n> repeats a run.
 */
#ifndef TESTS_GPUTEST_H
#define TESTS_GPUTEST_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu/gpu.h"

#define GUARD 8 /* sentinel floats after each output */

extern uint64_t test_seed;  /* this run's seed */
extern struct gpu *g;       /* device 0, open during each test of a device_case() */
extern struct gpu_buf pool; /* the test's one allocation, freed by the teardown */

/* Random inputs: the generator restarts from test_seed in each device test. */
uint64_t rng_next(void);
float rng_float(float lo, float hi);
float *random_floats(size_t n, float lo, float hi);
float *filled_floats(size_t n, float v);
float *random_as(enum gpu_dtype t, size_t n, float lo, float hi);
int32_t *shuffled_blocks(size_t n);

/* The pool and copies; each fails the test on an error. */
void pool_alloc(size_t bytes);
struct gpu_buf carve_floats(size_t *off, size_t n);
struct gpu_buf carve_bytes(size_t *off, size_t bytes);
void put(struct gpu_buf *b, const float *p, size_t n);
void get(float *p, const struct gpu_buf *b, size_t n);
void put_bytes(struct gpu_buf *b, const void *p, size_t bytes);
void get_bytes(void *p, const struct gpu_buf *b, size_t bytes);
void poison(struct gpu_buf *b, size_t bytes);

/* Host-side element types and comparisons. */
double decode_at(enum gpu_dtype t, const void *p, size_t i);
double round_to(enum gpu_dtype t, double v);
void *encode(enum gpu_dtype t, const float *src, size_t n);
double half_step(enum gpu_dtype t, double ref);
const char *type_str(enum gpu_dtype t);
bool within(double got, double ref, double tol);
bool same_or_nan(double got, double want);
size_t guard_broken(enum gpu_dtype t, const void *out, size_t n); /* GUARD after n not NaN */

/* ---- attention: shapes and a host copy of the paged cache ---- */

struct attn_shape {
    size_t n_heads, n_kv_heads, head_dim;
    enum gpu_dtype kv_type, out_type;
};

/* A host copy of a paged cache: values as floats (NaN where nothing was written). */
struct host_cache {
    size_t n_blocks, n_kv_heads, head_dim;
    float *k, *v;
};

void host_cache_init(struct host_cache *c, const struct attn_shape *s, size_t n_blocks);
void host_cache_free(struct host_cache *c);
size_t host_at(const struct host_cache *c, int32_t blk, size_t kvh, size_t t);
void host_cache_fill(struct host_cache *c, const int32_t *table, size_t len, enum gpu_dtype type);
void host_cache_put(const struct host_cache *c, struct gpu_kv_cache *kv, size_t *off);
size_t host_cache_bytes(const struct host_cache *c, enum gpu_dtype t);

/* ---- cases and main ---- */

TCase *device_case(Suite *s, const char *name, double timeout);
/*
 * main() of a gpu suite: probe for a GPU, print the device and the seed
 * (name leads each line), run suite_fn(have_gpu); 77 when it passed without
 * a GPU, else EXIT_SUCCESS or EXIT_FAILURE.
 */
int gputest_main(const char *name, Suite *(*suite_fn)(bool have_gpu));

#endif
