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
 * Launch: grid (n_ids, parts) of 128 threads, parts = dim / 128 up to 64,
 * so that in decode (one row per sequence) each thread copies one element
 * or a few instead of walking the row.
 */
#include "gpu/cuda_util.cuh"

#define EMBED_THREADS 128
#define EMBED_PARTS   64 /* blocks per id at most (grid y) */

template <typename T>
static __global__ void embed_kernel(const T *__restrict__ table, size_t n_vocab, size_t dim,
                                    const int32_t *__restrict__ ids, float scale,
                                    float *__restrict__ out)
{
    float *row = out + blockIdx.x * dim;

    pdl_wait();
    pdl_trigger();
    int32_t id = ids[blockIdx.x];
    bool ok = id >= 0 && (size_t)id < n_vocab;

    for (size_t j = blockIdx.y * blockDim.x + threadIdx.x; j < dim; j += gridDim.y * blockDim.x)
        row[j] = ok ? scale * to_float(table[(size_t)id * dim + j]) : NAN;
}

int gpu_cuda_embed_rows(struct gpu *g, const void *table, enum gpu_dtype table_type, size_t n_vocab,
                        size_t dim, const int32_t *ids, size_t n_ids, float scale, float *out,
                        struct rag_err *err)
{
    size_t parts = CEIL_DIV(dim, (size_t)EMBED_THREADS);
    dim3 grid((unsigned)n_ids, (unsigned)(parts < EMBED_PARTS ? parts : EMBED_PARTS));
    dim3 block(EMBED_THREADS);

    if (n_ids == 0 || dim == 0)
        return 0;
    if (use_device(g, "embed_rows", err))
        return RAG_EGPU;
    with_type(table_type, [&](auto tag) {
        using T = typename decltype(tag)::type;
        launch_pdl(g, embed_kernel<T>, grid, block, 0, (const T *)table, n_vocab, dim, ids, scale,
                   out);
    });
    return launched(g, "embed_rows", err);
}
