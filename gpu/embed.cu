/*
 * gpu/embed.cu - token embedding lookup:
 *   out[t][j] = scale * table[ids[t]][j],  j < dim
 * table (n_vocab, dim) fp32, bf16 or fp16; ids int32 (n_ids) in device
 * memory (so a captured decode graph reads each step's tokens); out
 * (n_ids, dim) fp32, the residual stream. scale is 1 for llama and qwen2,
 * sqrt(dim) for gemma.
 *
 * An id outside [0, n_vocab) cannot be returned as an error from here: the
 * row is written as NaN instead, which poisons every later result of that
 * token and so cannot pass unnoticed.
 *
 * Launch: one block of 128 threads per id, strided over dim (coalesced).
 * Bandwidth-bound and tiny in decode (one row per sequence).
 */
#include "gpu/cuda_util.cuh"

#define EMBED_THREADS 128

template <typename T>
static __global__ void embed_kernel(const T *__restrict__ table, size_t n_vocab, size_t dim,
                                    const int32_t *__restrict__ ids, float scale,
                                    float *__restrict__ out)
{
    int32_t id = ids[blockIdx.x];
    float *row = out + blockIdx.x * dim;
    bool ok = id >= 0 && (size_t)id < n_vocab;

    for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
        row[j] = ok ? scale * to_float(table[(size_t)id * dim + j]) : NAN;
}

int gpu_cuda_embed_rows(struct gpu *g, const void *table, enum gpu_dtype table_type, size_t n_vocab,
                        size_t dim, const int32_t *ids, size_t n_ids, float scale, float *out,
                        struct rag_err *err)
{
    cudaStream_t s = stream_of(g);
    unsigned grid = (unsigned)n_ids;

    if (n_ids == 0 || dim == 0)
        return 0;
    if (use_device(g, "embed_rows", err))
        return RAG_EGPU;
    if (table_type == GPU_BF16)
        embed_kernel<<<grid, EMBED_THREADS, 0, s>>>((const __nv_bfloat16 *)table, n_vocab, dim, ids,
                                                    scale, out);
    else if (table_type == GPU_F16)
        embed_kernel<<<grid, EMBED_THREADS, 0, s>>>((const __half *)table, n_vocab, dim, ids, scale,
                                                    out);
    else
        embed_kernel<<<grid, EMBED_THREADS, 0, s>>>((const float *)table, n_vocab, dim, ids, scale,
                                                    out);
    return launched(g, "embed_rows", err);
}
