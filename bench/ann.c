/*
 * bench/ann.c - approximate against exact vector search through the
 * retrieval/ index (FAISS C API): N random unit vectors of dimension D
 * (the embedder's 384 by default), Q queries drawn near stored vectors,
 * exact "Flat" inner product as the peer. Prints build time, p50/p95 search
 * latency of single queries and recall@10 of the approximate index against
 * the exact one, as one JSON object on stdout.
 *
 * usage: ann [N [D [Q [FACTORY [EF,EF,...]]]]]   (1000000 384 1000 HNSW32,Flat 64,128,256)
 * One JSON line per efSearch value (HNSW only; other factories get one line).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "retrieval/retrieval.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double gauss(void)
{
    double u = uniform() + 1e-12, v = uniform();

    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void unit(float *x, size_t d, const float *near, double noise)
{
    double s = 0;
    size_t i;

    for (i = 0; i < d; i++) {
        x[i] = (float)((near ? near[i] : 0) + noise * gauss());
        s += (double)x[i] * x[i];
    }
    for (i = 0; i < d; i++)
        x[i] = (float)(x[i] / sqrt(s));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Search the queries one at a time; per-query latencies in ms go to lat. */
static int timed_search(struct retr_index *x, const float *q, size_t n_q, size_t d, int64_t *ids,
                        double *lat, struct rag_err *err)
{
    float scores[10];
    size_t i;
    int rc = 0;

    for (i = 0; i < n_q && !rc; i++) {
        double t0 = time_now();

        rc = retr_index_search(x, q + i * d, 1, 10, ids + i * 10, scores, err);
        lat[i] = 1e3 * (time_now() - t0);
    }
    qsort(lat, n_q, sizeof(*lat), cmp_double);
    return rc;
}

static double recall10(const int64_t *exact, const int64_t *approx, size_t n_q)
{
    size_t i, j, k, hit = 0;

    for (i = 0; i < n_q; i++)
        for (j = 0; j < 10; j++)
            for (k = 0; k < 10; k++)
                hit += approx[i * 10 + j] == exact[i * 10 + k];
    return (double)hit / (double)(n_q * 10);
}

static void report(const char *factory, double ef, size_t n, size_t d, size_t n_q, double t_ann,
                   double t_flat, const double *lat_ap, const double *lat_ex, double recall)
{
    printf("{\"benchmark\": \"ann\", \"n_vectors\": %zu, \"dim\": %zu, \"queries\": %zu, "
           "\"factory\": \"%s\", \"ef_search\": %g, \"build_s\": %.2f, \"flat_build_s\": %.2f, "
           "\"p50_ms\": %.4f, \"p95_ms\": %.4f, \"flat_p50_ms\": %.4f, \"flat_p95_ms\": %.4f, "
           "\"recall_at_10\": %.4f, \"speedup_p50\": %.1f}\n",
           n, d, n_q, factory, ef, t_ann, t_flat, lat_ap[n_q / 2], lat_ap[n_q * 95 / 100],
           lat_ex[n_q / 2], lat_ex[n_q * 95 / 100], recall, lat_ex[n_q / 2] / lat_ap[n_q / 2]);
    fflush(stdout);
}

static int build(struct retr_index **x, const char *factory, const float *v, const int64_t *ids,
                 size_t n, size_t d, double *secs, struct rag_err *err)
{
    double t0 = time_now();
    int rc = retr_index_new(x, d, factory, err);

    rc = rc ? rc : retr_index_add(*x, ids, v, n, err);
    *secs = time_now() - t0;
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    size_t d = argc > 2 ? strtoull(argv[2], NULL, 10) : 384;
    size_t n_q = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000;
    const char *factory = argc > 4 ? argv[4] : "HNSW32,Flat";
    const char *efs = argc > 5 ? argv[5] : "64,128,256";
    float *v = xmalloc_array(n * d, sizeof(float)), *q = xmalloc_array(n_q * d, sizeof(float));
    int64_t *ids = xmalloc_array(n, sizeof(*ids)), *ex = xmalloc_array(n_q * 10, sizeof(*ex));
    int64_t *ap = xmalloc_array(n_q * 10, sizeof(*ap));
    double *lat_ex = xmalloc_array(n_q, sizeof(double)),
           *lat_ap = xmalloc_array(n_q, sizeof(double));
    struct retr_index *flat = NULL, *ann = NULL;
    struct rag_err err = { 0 };
    double t_flat, t_ann;
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        unit(v + i * d, d, NULL, 1);
        ids[i] = (int64_t)i + 1;
    }
    /* Queries near stored vectors, as real queries sit near their answers. */
    for (i = 0; i < n_q; i++)
        unit(q + i * d, d, v + (size_t)(uniform() * (double)n) * d, 0.5 / sqrt((double)d));
    rc = build(&flat, "Flat", v, ids, n, d, &t_flat, &err);
    rc = rc ? rc : build(&ann, factory, v, ids, n, d, &t_ann, &err);
    rc = rc ? rc : timed_search(flat, q, n_q, d, ex, lat_ex, &err);
    for (const char *p = efs; !rc && *p;) {
        double ef = strtod(p, NULL);

        if (strstr(factory, "HNSW"))
            rc = retr_index_set_param(ann, "efSearch", ef, &err);
        rc = rc ? rc : timed_search(ann, q, n_q, d, ap, lat_ap, &err);
        if (!rc)
            report(factory, ef, n, d, n_q, t_ann, t_flat, lat_ap, lat_ex, recall10(ex, ap, n_q));
        p = strchr(p, ',') ? strchr(p, ',') + 1 : "";
    }
    if (rc) {
        fprintf(stderr, "ann: %s\n", err.msg);
        return 1;
    }
    retr_index_close(flat);
    retr_index_close(ann);
    return 0;
}
