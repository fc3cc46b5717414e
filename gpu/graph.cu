/*
 * gpu/graph.cu - CUDA graphs of the context's stream, and the empty kernel
 * that measures the launch floor.
 *
 * Capture: cudaStreamBeginCapture() in thread-local mode (only this
 * thread's unsafe calls are refused while capturing), the kernels queued by
 * the gpu_* functions are recorded, cudaStreamEndCapture() returns the
 * graph, which is instantiated once (cudaGraphInstantiate) and the plain
 * graph dropped. A replay is one cudaGraphLaunch() on the stream. Kernel
 * arguments are frozen at capture; values in device memory are read at
 * replay, which is what the decode step relies on (gpu.h).
 *
 * noop: an empty kernel of one thread; launching it eagerly or replaying a
 * graph of many of them gives the per-launch overhead with no work at all.
 */
#include "gpu/cuda_util.cuh"

#include <stdlib.h>

struct gpu_graph {
    cudaGraphExec_t exec;
    size_t kernels; /* kernel nodes of the captured graph */
};

/* Kernel nodes of graph (0 when they cannot be listed). */
static size_t kernel_nodes(cudaGraph_t graph)
{
    size_t n = 0, kernels = 0;
    cudaGraphNode_t *nodes;

    if (cudaGraphGetNodes(graph, NULL, &n) != cudaSuccess || n == 0)
        return 0;
    nodes = (cudaGraphNode_t *)xmalloc_array(n, sizeof(*nodes));
    if (cudaGraphGetNodes(graph, nodes, &n) == cudaSuccess)
        for (size_t i = 0; i < n; i++) {
            cudaGraphNodeType t;

            if (cudaGraphNodeGetType(nodes[i], &t) == cudaSuccess && t == cudaGraphNodeTypeKernel)
                kernels++;
        }
    free(nodes);
    return kernels;
}

static __global__ void noop_kernel(void)
{
}

int gpu_cuda_noop(struct gpu *g, struct rag_err *err)
{
    if (use_device(g, "noop", err))
        return RAG_EGPU;
    noop_kernel<<<1, 1, 0, stream_of(g)>>>();
    return launched(g, "noop", err);
}

int gpu_cuda_capture_begin(struct gpu *g, struct rag_err *err)
{
    cudaError_t e;

    if (use_device(g, "capture", err))
        return RAG_EGPU;
    e = cudaStreamBeginCapture(stream_of(g), cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu capture: begin");
    return 0;
}

int gpu_cuda_capture_end(struct gpu *g, struct gpu_graph **ret, struct rag_err *err)
{
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    struct gpu_graph *gr;
    size_t kernels;
    cudaError_t e;

    e = cudaStreamEndCapture(stream_of(g), &graph);
    if (e != cudaSuccess) {
        if (graph)
            (void)cudaGraphDestroy(graph);
        return gpu_cuda_errf(err, e, "gpu capture: end");
    }
    e = cudaGraphInstantiate(&exec, graph, 0);
    kernels = kernel_nodes(graph);
    (void)cudaGraphDestroy(graph);
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu capture: instantiate");
    gr = (struct gpu_graph *)xcalloc(1, sizeof(*gr));
    gr->exec = exec;
    gr->kernels = kernels;
    *ret = gr;
    return 0;
}

int gpu_cuda_graph_launch(struct gpu *g, const struct gpu_graph *graph, struct rag_err *err)
{
    cudaError_t e;

    if (use_device(g, "graph", err))
        return RAG_EGPU;
    e = cudaGraphLaunch(graph->exec, stream_of(g));
    if (e != cudaSuccess)
        return gpu_cuda_errf(err, e, "gpu device %d: launch graph", g->device);
    return 0;
}

size_t gpu_cuda_graph_kernels(const struct gpu_graph *graph)
{
    return graph->kernels;
}

void gpu_cuda_graph_free(struct gpu *g, struct gpu_graph *graph)
{
    int cur = -1;

    if (cudaGetDevice(&cur) == cudaSuccess && cur != g->device)
        (void)cudaSetDevice(g->device);
    (void)cudaGraphExecDestroy(graph->exec);
    (void)cudaGetLastError();
    free(graph);
}
