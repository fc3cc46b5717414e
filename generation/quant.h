/*
 * generation/quant.h - block formats of GGUF tensors: dequantization, the
 * 8-bit activation format, and matrix-vector / matrix-matrix products that
 * read quantized weights in place (internal to generation/; tests may include
 * it).
 *
 * Matrix-vector products (decode) read the weight blocks in place and
 * multiply them with fp32 activations (no activation quantization), with
 * SIMD kernels chosen at run time (AVX-512, AVX2, scalar reference) for
 * Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0; the other types (F16, BF16, Q4_K, Q5_K,
 * Q6_K) dequantize each row to fp32 and use a SIMD fp32 dot product.
 * Matrix-matrix products (prefill) dequantize tiles of weight rows to fp32
 * and call OpenBLAS sgemm, so their accuracy is that of fp32.
 */
#ifndef GENERATION_QUANT_H
#define GENERATION_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "generation/gguf.h"

#define QUANT_BLOCK 32 /* activation block, elements */

float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f); /* round to nearest even */
float quant_bf16_to_f32(uint16_t h);

/*
 * Dequantize n elements (a multiple of the type's block) starting at the
 * beginning of src into dst. Scalar reference implementation.
 */
void quant_dequant_row(enum gguf_tensor_type type, const void *src, float *dst, size_t n);

/* Sums of x over each block of 32: xsum[b] = x[32b] + ... + x[32b + 31] (n % 32 == 0). */
void quant_block_sums(const float *x, size_t n, float *xsum);

/* Instruction set levels, in increasing order. */
enum quant_isa { QUANT_ISA_SCALAR, QUANT_ISA_AVX2, QUANT_ISA_AVX512 };

/* Best level this CPU supports, lowered by env RAG_ISA=scalar|avx2 (for tests and benchmarks). */
enum quant_isa quant_isa_best(void);
const char *quant_isa_name(enum quant_isa isa);

/*
 * Dot product of one weight row of n elements with x (xsum = its block sums).
 * tmp (n floats) is scratch for the types without a SIMD kernel. isa must be
 * <= quant_isa_best(); QUANT_ISA_SCALAR is the reference.
 */
float quant_dot(enum quant_isa isa, enum gguf_tensor_type type, const void *row, size_t n,
                const float *x, const float *xsum, float *tmp);

/* Dot product of two fp32 vectors with the isa's SIMD width. */
float quant_dot_f32(enum quant_isa isa, const float *a, const float *b, size_t n);

/*
 * In place: s = softmax(s[0..n)), n >= 1; and gate[i] = silu(gate[i]) * up[i].
 * The SIMD versions use a polynomial exp (relative error ~2e-7).
 */
void quant_softmax(enum quant_isa isa, float *s, size_t n);
void quant_swiglu(enum quant_isa isa, float *gate, const float *up, size_t n);

/* One weight matrix of rows × n elements (a 2-D tensor viewed as rows). */
struct quant_mat {
    enum gguf_tensor_type type;
    const uint8_t *data;
    size_t n, rows;
    size_t row_bytes;
};

/*
 * y_k[r] = row r of w_k · x for k < n_mats, all matrices sharing the input
 * width n; the rows of all matrices are spread over n_threads OpenMP threads.
 * xsum holds quant_block_sums(x); tmp holds n_threads × n floats of scratch.
 */
void quant_matvec(enum quant_isa isa, const struct quant_mat *w, size_t n_mats, const float *x,
                  const float *xsum, float *const *y, float *tmp, int n_threads);

/*
 * Switch OpenBLAS to one thread for the whole process (once; later calls are
 * a cheap check): sgemm is called from inside OpenMP threads here.
 */
void quant_blas_single(void);

/* Most rows of a weight tile dequantized at once in quant_matmat. */
#define QUANT_TILE_ROWS 128

/*
 * Y (n_tok × w.rows, row stride ldy) = X (n_tok × w.n, row stride ldx) · Wᵀ,
 * by dequantizing QUANT_TILE_ROWS rows of w at a time into tmp and calling
 * sgemm; tiles are spread over n_threads threads, so tmp holds
 * n_threads × QUANT_TILE_ROWS × w.n floats.
 */
void quant_matmat(const struct quant_mat *w, const float *x, size_t ldx, size_t n_tok, float *y,
                  size_t ldy, float *tmp, int n_threads);

#endif
