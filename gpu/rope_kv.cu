/*
 * gpu/rope_kv.cu - rotary position embedding of Q and K, fused with the
 * write of K and V into the paged KV cache.
 *
 * Input: qkv (n_tokens, (n_heads + 2 n_kv_heads) head_dim) fp32, each row
 * Q heads, K heads, V heads, as one stacked QKV GEMM writes it. Token t at
 * position p = pos[t] turns each pair (x0, x1) of every Q and K head by
 * a = p * inv_freq[i] (one fp32 multiply, then sincosf):
 *   y0 = x0 cos a - x1 sin a,  y1 = x0 sin a + x1 cos a
 * with the pairs (x[2i], x[2i+1]) for GPU_ROPE_NORM (GGUF llama) or
 * (x[i], x[i + head_dim/2]) for GPU_ROPE_NEOX (qwen2, HF llama), i <
 * head_dim/2. Rotated Q goes to q_out (n_tokens, n_heads, head_dim) fp32;
 * rotated K and unrotated V go to cache slot s = slots[t]: physical block
 * s / 16, offset s % 16, element ((block * n_kv_heads + h) * 16 + offset)
 * * head_dim + d of k_cache / v_cache (fp32 or bf16, rounded to nearest).
 *
 * Bad device-side values: s < 0 is padding (nothing written); s past the
 * cache or p < 0 writes no K/V and turns the token's q_out row into NaN.
 *
 * Launch: grid (n_tokens, parts) of 128 threads, with enough parts (at most
 * 64) that each thread has one element of the token: its (n_heads +
 * n_kv_heads) head_dim/2 pairs, then its n_kv_heads head_dim V elements,
 * neighbouring threads on neighbouring elements. (One block per token made
 * each thread walk 28 elements one load at a time: 18 us at 8B shape.)
 * Indices within a token are 32-bit: with 64-bit divisions the kernel was
 * compute-bound (72 us for 2,048 tokens at 8B shape, 1.3 TB/s).
 * sincosf is the accurate one (no fast-math), so angles of thousands of
 * radians keep about 1e-7 absolute error; the angle's own fp32 rounding is
 * the same as on the CPU when both multiply p by the same inv_freq table.
 * Started through launch_pdl() (cuda_util.cuh).
 */
#include "gpu/cuda_util.cuh"

#define ROPE_THREADS 128
#define ROPE_PARTS   64 /* blocks per token at most (grid y) */

template <typename T> static __global__ void rope_kv_kernel(struct gpu_cuda_rope a)
{
    size_t t = blockIdx.x;
    unsigned hd = (unsigned)a.head_dim, half = hd / 2, n_heads = (unsigned)a.n_heads;
    unsigned n_pairs = (n_heads + (unsigned)a.n_kv_heads) * half, n_v = (unsigned)a.n_kv_heads * hd;
    const float *row = a.qkv + t * (a.n_heads + 2 * a.n_kv_heads) * hd;
    float *q_row = a.q_out + t * a.n_heads * hd;

    pdl_wait();
    pdl_trigger();
    int32_t p = a.pos[t], s = a.slots[t];
    bool bad = p < 0 || (s >= 0 && (size_t)s >= a.n_blocks * GPU_KV_BLOCK);
    bool write_kv = s >= 0 && !bad;
    size_t cache_tok = write_kv ? ((size_t)s / GPU_KV_BLOCK) * a.n_kv_heads * GPU_KV_BLOCK : 0;
    size_t off = write_kv ? (size_t)s % GPU_KV_BLOCK : 0;

    for (unsigned e = blockIdx.y * blockDim.x + threadIdx.x; e < n_pairs + n_v;
         e += gridDim.y * blockDim.x) {
        if (e >= n_pairs) { /* V: copy */
            unsigned h = (e - n_pairs) / hd, d = (e - n_pairs) % hd;
            if (write_kv)
                store_act(&((T *)a.v_cache)[((cache_tok + h * GPU_KV_BLOCK + off) * hd) + d],
                          row[(n_heads + a.n_kv_heads + h) * hd + d]);
            continue;
        }
        unsigned h = e / half, i = e % half;
        unsigned d0 = a.rope_type == GPU_ROPE_NEOX ? i : 2 * i;
        unsigned d1 = a.rope_type == GPU_ROPE_NEOX ? i + half : 2 * i + 1;
        float x0 = row[h * hd + d0], x1 = row[h * hd + d1], sn, cs;

        sincosf((float)p * a.inv_freq[i], &sn, &cs);
        float y0 = x0 * cs - x1 * sn, y1 = x0 * sn + x1 * cs;
        if (h < n_heads) {
            q_row[h * hd + d0] = bad ? NAN : y0;
            q_row[h * hd + d1] = bad ? NAN : y1;
        } else if (write_kv) {
            T *k = (T *)a.k_cache + (cache_tok + (h - n_heads) * GPU_KV_BLOCK + off) * hd;
            store_act(&k[d0], y0);
            store_act(&k[d1], y1);
        }
    }
}

int gpu_cuda_rope_kv(struct gpu *g, const struct gpu_cuda_rope *a, struct rag_err *err)
{
    if (a->n_tokens == 0)
        return 0;
    if (use_device(g, "rope_kv", err))
        return RAG_EGPU;
    with_type(a->kv_type, [&](auto tag) {
        using T = typename decltype(tag)::type;
        size_t per_token =
            (a->n_heads + a->n_kv_heads) * a->head_dim / 2 + a->n_kv_heads * a->head_dim;
        size_t parts = CEIL_DIV(per_token, (size_t)ROPE_THREADS);

        launch_pdl(g, rope_kv_kernel<T>,
                   dim3((unsigned)a->n_tokens, (unsigned)(parts < ROPE_PARTS ? parts : ROPE_PARTS)),
                   dim3(ROPE_THREADS), 0, *a);
    });
    return launched(g, "rope_kv", err);
}
