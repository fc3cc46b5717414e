/*
 * gpu/gemm.cu - linear layers through cuBLASLt: C = A * W^T + bias + beta * C.
 *
 * Layouts (gpu.h gpu_gemm): row-major a (m, k) and w (n, k) both bf16 or
 * both fp16 (w a PyTorch Linear weight, or a GGUF matrix with ne0 = k),
 * c (m, n) fp32 or the type of a and w, bias (n) of c's type (cuBLASLt's
 * default bias type is D's). cuBLASLt is column-major, and a row-major
 * (r, s) matrix is the column-major (s, r) one with the same bytes, so we
 * ask for D^T (n, m) = W (n, k) * A^T (k, m): cuBLASLt's A is w seen as a
 * column-major (k, n) matrix with ld = k and op T, its B is a seen as
 * (k, m) with ld = k and op N, and C = D is (n, m) with ld = n. That is the
 * "TN" layout every tensor-core kernel supports; the bias epilogue adds
 * bias[j] to each of D^T's rows j. Compute type CUBLAS_COMPUTE_32F (fp32
 * accumulation), scale type fp32, alpha = 1.
 *
 * Plans: the first call for a (m, n, k, a/w type, c type, bias, alignments)
 * builds the operation and layout descriptors, asks
 * cublasLtMatmulAlgoGetHeuristic() for the best algorithm within the
 * workspace, and keeps all of it in a table of GEMM_PLANS entries (replaced
 * round-robin once full). Later calls only set the bias pointer and call
 * cublasLtMatmul(), which is host work plus one or two kernels and can be
 * captured in a graph. Alignments (largest power of two up to 256 dividing
 * each pointer) are part of the key because the algorithm chosen depends on
 * them.
 *
 * Workspace: GEMM_WORKSPACE bytes (32 MiB, what NVIDIA recommends for
 * Hopper), allocated once per context at gpu_open().
 */
#include "gpu/cuda_util.cuh"

#include <cublasLt.h>

#include <stdlib.h>
#include <string.h>

#define GEMM_PLANS     64
#define GEMM_WORKSPACE ((size_t)32 << 20)

struct plan {
    bool used;
    size_t m, n, k;
    enum gpu_dtype ab_type, c_type;
    bool bias;
    unsigned align[4]; /* a, w, c, bias */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t lw, la, lc;
    cublasLtMatmulAlgo_t algo;
};

struct gemm_state {
    cublasLtHandle_t lt;
    void *workspace;
    unsigned next; /* plan to replace when the table is full */
    struct plan plan[GEMM_PLANS];
};

static struct gemm_state *state_of(const struct gpu *g)
{
    return (struct gemm_state *)g->gemm;
}

static int lt_errf(struct rag_err *err, cublasStatus_t st, const char *what)
{
    return rag_errf(err, RAG_EGPU, "gpu gemm: %s: %s", what, cublasLtGetStatusString(st));
}

int gpu_cuda_gemm_init(struct gpu *g, struct rag_err *err)
{
    struct gemm_state *s = (struct gemm_state *)xcalloc(1, sizeof(*s));
    cublasStatus_t st;
    cudaError_t e;

    g->gemm = s;
    st = cublasLtCreate(&s->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        s->lt = NULL;
        return lt_errf(err, st, "create cuBLASLt handle");
    }
    e = cudaMalloc(&s->workspace, GEMM_WORKSPACE);
    if (e != cudaSuccess) {
        s->workspace = NULL;
        return gpu_cuda_errf(err, e, "gpu gemm: workspace of %zu bytes", GEMM_WORKSPACE);
    }
    return 0;
}

static void plan_release(struct plan *p)
{
    if (p->lw)
        (void)cublasLtMatrixLayoutDestroy(p->lw);
    if (p->la)
        (void)cublasLtMatrixLayoutDestroy(p->la);
    if (p->lc)
        (void)cublasLtMatrixLayoutDestroy(p->lc);
    if (p->op)
        (void)cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof(*p));
}

void gpu_cuda_gemm_release(struct gpu *g)
{
    struct gemm_state *s = state_of(g);

    if (!s)
        return;
    for (int i = 0; i < GEMM_PLANS; i++)
        plan_release(&s->plan[i]);
    if (s->workspace)
        (void)cudaFree(s->workspace);
    if (s->lt)
        (void)cublasLtDestroy(s->lt);
    (void)cudaGetLastError();
    free(s);
    g->gemm = NULL;
}

static unsigned alignment(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    unsigned a = 1;

    while (a < 256 && v % (2 * a) == 0)
        a *= 2;
    return a;
}

static cudaDataType_t cuda_type(enum gpu_dtype t)
{
    return t == GPU_BF16 ? CUDA_R_16BF : t == GPU_F16 ? CUDA_R_16F : CUDA_R_32F;
}

/* The descriptors of p for its key; on failure the caller releases p. */
static cublasStatus_t plan_describe(struct plan *p, const void *bias)
{
    cublasOperation_t tw = CUBLAS_OP_T, ta = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    cublasStatus_t st;

    st = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &tw, sizeof(tw));
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &ta, sizeof(ta));
    if (st == CUBLAS_STATUS_SUCCESS && p->bias)
        st =
            cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
    if (st == CUBLAS_STATUS_SUCCESS && p->bias)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                            sizeof(bias));
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&p->lw, cuda_type(p->ab_type), p->k, p->n, (int64_t)p->k);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&p->la, cuda_type(p->ab_type), p->k, p->m, (int64_t)p->k);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&p->lc, cuda_type(p->c_type), p->n, p->m, (int64_t)p->n);
    return st;
}

/* Ask cuBLASLt for the best algorithm of p within the workspace and alignments. */
static int plan_choose(struct gemm_state *s, struct plan *p, struct rag_err *err)
{
    static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES
    };
    cublasLtMatmulHeuristicResult_t result;
    cublasLtMatmulPreference_t pref;
    uint64_t ws = GEMM_WORKSPACE;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulPreferenceCreate(&pref);

    if (st != CUBLAS_STATUS_SUCCESS)
        return lt_errf(err, st, "create preference");
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                              sizeof(ws));
    for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; i++) {
        uint32_t a = p->align[i < 3 ? i : 2]; /* D is C */

        st = cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &a, sizeof(a));
    }
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(s->lt, p->op, p->lw, p->la, p->lc, p->lc, pref, 1,
                                            &result, &found);
    (void)cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS)
        return lt_errf(err, st, "choose algorithm");
    if (found < 1)
        return rag_errf(err, RAG_EGPU, "gpu gemm: cuBLASLt has no algorithm for %zux%zux%zu", p->m,
                        p->n, p->k);
    p->algo = result.algo;
    return 0;
}

static bool plan_matches(const struct plan *p, const struct plan *key)
{
    return p->used && p->m == key->m && p->n == key->n && p->k == key->k &&
           p->ab_type == key->ab_type && p->c_type == key->c_type && p->bias == key->bias &&
           memcmp(p->align, key->align, sizeof(p->align)) == 0;
}

/* The cached plan for key, or a new one in a free or replaced slot. */
static int plan_get(struct gemm_state *s, const struct plan *key, const void *bias,
                    struct plan **ret, struct rag_err *err)
{
    struct plan *p = NULL;
    cublasStatus_t st;
    int rc;

    for (int i = 0; i < GEMM_PLANS; i++) {
        if (plan_matches(&s->plan[i], key)) {
            *ret = &s->plan[i];
            return 0;
        }
        if (!p && !s->plan[i].used)
            p = &s->plan[i];
    }
    if (!p) {
        p = &s->plan[s->next];
        s->next = (s->next + 1) % GEMM_PLANS;
        plan_release(p);
    }
    *p = *key;
    st = plan_describe(p, bias);
    rc = st == CUBLAS_STATUS_SUCCESS ? plan_choose(s, p, err) : lt_errf(err, st, "describe");
    p->used = true;
    if (rc) {
        plan_release(p);
        return rc;
    }
    *ret = p;
    return 0;
}

int gpu_cuda_gemm(struct gpu *g, const void *a, const void *w, enum gpu_dtype ab_type,
                  const void *bias, void *c, enum gpu_dtype c_type, size_t m, size_t n, size_t k,
                  float beta, struct rag_err *err)
{
    struct gemm_state *s = state_of(g);
    struct plan key = { false, m, n, k, ab_type, c_type, bias != NULL, { 0 } }, *p;
    const float alpha = 1.0f;
    cublasStatus_t st;
    int rc;

    if (m == 0)
        return 0;
    key.align[0] = alignment(a);
    key.align[1] = alignment(w);
    key.align[2] = alignment(c);
    key.align[3] = bias ? alignment(bias) : 0;
    if (use_device(g, "gemm", err))
        return RAG_EGPU;
    rc = plan_get(s, &key, bias, &p, err);
    if (rc)
        return rc;
    if (bias) {
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                            sizeof(bias));
        if (st != CUBLAS_STATUS_SUCCESS)
            return lt_errf(err, st, "set bias");
    }
    st = cublasLtMatmul(s->lt, p->op, &alpha, w, p->lw, a, p->la, &beta, c, p->lc, c, p->lc,
                        &p->algo, s->workspace, GEMM_WORKSPACE, stream_of(g));
    if (st != CUBLAS_STATUS_SUCCESS)
        return lt_errf(err, st, "matmul");
    return launched(g, "gemm", err);
}
