/*
 * generation/quant.h - block formats of GGUF tensors: dequantization, the
 * 16-bit activation format, and matrix-vector / matrix-matrix products that
 * read quantized weights in place (internal to generation/; tests may include
 * it).
 *
 * Matrix-vector products (decode) read the weight blocks in place and
 * multiply them with fp32 activations (no activation quantization), with
 * SIMD kernels chosen at run time (AVX-512, AVX2, scalar reference) for
 * Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0; the other types (F16, BF16, Q4_K, Q5_K,
 * Q6_K) dequantize each row to fp32 and use a SIMD fp32 dot product.
 * Matrix-matrix products (prefill) have two paths. The integer path
 * (quant_matmat_q16, AVX512_VNNI) quantizes the batch's activations to 16 bits
 * per block of 32 and multiplies them with the weights' own 4-, 5- or 8-bit
 * values using integer dot products; its result is the fp32 product of the
 * dequantized weights with the dequantized 16-bit activations. (8-bit
 * activations, as llama.cpp's q8 formats, were measured first: they moved
 * SmolLM2's next-token logits by up to 0.9 and reordered the top 5 on 10 of
 * the 20 parity prompts; 16 bits move them by about 0.004.) The fp32 path
 * (quant_matmat) dequantizes tiles of weight rows and calls OpenBLAS sgemm;
 * it serves the types and CPUs the integer path does not.
 */
#ifndef GENERATION_QUANT_H
#define GENERATION_QUANT_H

#include <stdbool.h>
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

/* Instruction set levels, in increasing order (VNNI = AVX-512 with AVX512_VNNI). */
enum quant_isa { QUANT_ISA_SCALAR, QUANT_ISA_AVX2, QUANT_ISA_AVX512, QUANT_ISA_VNNI };

/*
 * Best level this CPU supports, lowered by env RAG_ISA=scalar|avx2|avx512 (for tests and
 * benchmarks).
 */
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

/*
 * Activations of a batch quantized to 16 bits per block of 32: element j of token t is
 * d[t * n / 32 + j / 32] * q[t * n + j], with d = max|x| / qmax over the block and q rounded
 * to nearest (|q| <= qmax <= 32767); s holds d times the sum of the block's q. Buffers are
 * sized at init for at most n_tok_max tokens of n_max elements; quantizing sets n and n_tok.
 */
struct quant_q16 {
    int16_t *q;   /* (n_tok, n) */
    float *d, *s; /* (n_tok, n / 32) */
    size_t n, n_tok;
    size_t cap; /* elements allocated for q */
    int qmax;
};

#define QUANT_Q16_MAX 32767

void quant_q16_init(struct quant_q16 *a, size_t n_tok_max, size_t n_max, int qmax);
void quant_q16_release(struct quant_q16 *a);

/*
 * Quantize x (n_tok rows of n floats, row stride ldx, n % 32 == 0, n_tok × n within the init
 * size) into a, tokens spread over n_threads threads. Every isa gives the same values.
 */
void quant_q16_quantize(enum quant_isa isa, struct quant_q16 *a, const float *x, size_t ldx,
                        size_t n_tok, size_t n, int n_threads);

/*
 * Whether quant_matmat_q16 takes weights of type at isa: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
 * Q5_K and Q6_K at QUANT_ISA_VNNI and QUANT_ISA_SCALAR (the reference). Without VNNI, 16-bit
 * products (vpmaddwd) do no more work per instruction than fp32 FMA, so those CPUs and the
 * other types keep the fp32 path.
 */
bool quant_matmat_q16_supports(enum quant_isa isa, enum gguf_tensor_type type);

/*
 * Largest activation range (quant_q16.qmax) for weights of type, so that 32 products fit in
 * int32: QUANT_Q16_MAX, or half of it for Q6_K (whose packed values reach ±4096).
 */
int quant_matmat_q16_qmax(enum gguf_tensor_type type);

/*
 * Y (a.n_tok × w.rows, row stride ldy) = A · Wᵀ with A the dequantized 16-bit activations and
 * W the dequantized weights (w.n == a.n), computed with integer dot products per block of 32
 * and scaled in fp32; QUANT_ISA_SCALAR is the plain C reference. The type must be supported at
 * isa (quant_matmat_q16_supports) and a.qmax at most quant_matmat_q16_qmax(type). Tiles of weight rows are repacked into tmp (n_threads ×
 * QUANT_TILE_ROWS × w.n floats of scratch, as quant_matmat) and spread over n_threads threads.
 */
void quant_matmat_q16(enum quant_isa isa, const struct quant_mat *w, const struct quant_q16 *a,
                      float *y, size_t ldy, float *tmp, int n_threads);

/*
 * quant_q16_quantize and then quant_matmat_q16 for every matrix, in one parallel region: x
 * (n_tok rows of w[0].n floats, row stride ldx) is quantized into a (within its init size,
 * with its qmax), then y[k] (n_tok × w[k].rows) = A · W[k]ᵀ for k < n_mats <=
 * QUANT_LINEAR_MAX, all matrices of width w[0].n. Same results as the separate calls.
 */
#define QUANT_LINEAR_MAX 4
void quant_linear_q16(enum quant_isa isa, const struct quant_mat *w, size_t n_mats, const float *x,
                      size_t ldx, size_t n_tok, struct quant_q16 *a, float *const *y, float *tmp,
                      int n_threads);

/*
 * Packed weight tiles of quant_matmat_q16 (matmat.c, packed by quant.c): rows in groups of
 * QUANT_PACK_ROWS; group g, block b of 32 columns at byte (g * n / 32 + b) * QUANT_PACK_BYTES
 * holds 16 chunks of 64 bytes (chunk c, row i: the signed 16-bit values v of elements 2c and
 * 2c + 1 of the row), then the 16 block scales d and 16 minimums m as floats: w = d * v + m
 * (m = 0 for the types without a minimum; Q6_K's 16-element scales are folded into v).
 */
#define QUANT_PACK_ROWS  16
#define QUANT_PACK_BYTES 1152

/*
 * A fp32 operand to pack (prefill attention: the keys, and the values transposed): element
 * (r, c) of the n_rows × n_cols matrix is data[r * rs + c * cs] - sub[c] (sub may be NULL).
 * Each row's blocks of 32 columns are quantized to integers within ±vmax with d = scale ·
 * max|x| / vmax and m = 0; columns past n_cols (up to a multiple of 32) and rows past n_rows
 * are zero. Products with activations of range qmax fit in int32 when 32 · qmax · vmax < 2^31.
 */
struct quant_f32_src {
    const float *data;
    size_t rs, cs;
    size_t n_rows, n_cols;
    const float *sub; /* (n_cols) or NULL */
    float scale;
    int vmax;
};

/*
 * Bytes of a packed n_rows × n_cols operand, and the packing (pack 64-byte aligned). The keys
 * (cs == 1, n_cols % 32 == 0) and the values (rs == 1, n_rows % 32 == 0) have SIMD packers at
 * QUANT_ISA_VNNI with the same result; otherwise the scalar reference runs.
 */
size_t quant_pack_size(size_t n_rows, size_t n_cols);
void quant_pack_f32(enum quant_isa isa, const struct quant_f32_src *m, uint8_t *pack);

/*
 * Y (a.n_tok × n_rows, row stride ldy) = A · Wᵀ for the first n_rows rows and a.n columns of a
 * matrix packed with n_cols columns (a.n <= n_cols rounded up to 32), on the calling thread;
 * isa is QUANT_ISA_VNNI or QUANT_ISA_SCALAR.
 */
void quant_matmat_packed(enum quant_isa isa, const uint8_t *pack, size_t n_rows, size_t n_cols,
                         const struct quant_q16 *a, float *y, size_t ldy);

/* One row of n elements into q (|q| <= qmax), and d and s per block (the scalar quantizer). */
void quant_q16_row(const float *x, size_t n, int qmax, int16_t *q, float *d, float *s);

/* Pack rows [r0, r1) of w into n_groups groups (rows past r1 are zero). */
void quant_pack_rows(const struct quant_mat *w, size_t r0, size_t r1, size_t n_groups,
                     uint8_t *pack);

/*
 * The scalar reference on one packed tile (stride blocks of 32 columns per group, of which the
 * first a.n / 32 are used): y[t - t0, r] for tokens t0..t1 and n_rows rows.
 */
void quant_tile_ref(const uint8_t *pack, size_t n_rows, size_t stride, const struct quant_q16 *a,
                    size_t t0, size_t t1, float *y, size_t ldy);

#endif
