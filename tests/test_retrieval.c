/*
 * tests/test_retrieval.c - the FAISS index (round trip, exact search against
 * a brute-force dot product, removal, parameters, corrupt files, sync with
 * the store) and rank fusion on hand-worked examples.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "retrieval/retrieval.h"
#include "store/store.h"
#include "tests/testutil.h"

#define DIM 16

/* Deterministic unit vectors (xorshift). */
static void random_unit(float *v, size_t n, size_t dim, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < n; i++) {
        double norm = 0;

        for (size_t d = 0; d < dim; d++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v[i * dim + d] = (float)((double)x / 4294967296.0 - 0.5);
            norm += (double)v[i * dim + d] * v[i * dim + d];
        }
        for (size_t d = 0; d < dim; d++)
            v[i * dim + d] = (float)(v[i * dim + d] / sqrt(norm));
    }
}

static struct retr_index *filled(const char *factory, size_t n, float *vecs, int64_t *ids)
{
    struct retr_index *x = NULL;
    struct rag_err err;

    random_unit(vecs, n, DIM, 7);
    for (size_t i = 0; i < n; i++)
        ids[i] = 1000 + (int64_t)i * 3;
    ck_assert_msg(retr_index_new(&x, DIM, factory, &err) == 0, "%s", err.msg);
    ck_assert_msg(retr_index_add(x, ids, vecs, n, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(retr_index_count(x), n);
    ck_assert_uint_eq(retr_index_dim(x), DIM);
    return x;
}

/* Top k by brute force: ids and scores best first (ties by smaller position). */
static void brute_force(const float *vecs, const int64_t *ids, size_t n, const float *q, size_t k,
                        int64_t *out_ids, float *out_scores)
{
    bool *used = xcalloc(n, sizeof(*used));

    for (size_t r = 0; r < k; r++) {
        size_t best = n;
        float best_s = -INFINITY;

        for (size_t i = 0; i < n; i++) {
            float s = 0;

            for (size_t d = 0; d < DIM; d++)
                s += vecs[i * DIM + d] * q[d];
            if (!used[i] && s > best_s) {
                best_s = s;
                best = i;
            }
        }
        used[best] = true;
        out_ids[r] = ids[best];
        out_scores[r] = best_s;
    }
    free(used);
}

START_TEST(test_exact_equals_brute_force)
{
    float vecs[500 * DIM], q[20 * DIM], scores[20 * 10], bs[10];
    int64_t ids[500], got[20 * 10], bi[10];
    struct retr_index *x = filled(NULL, 500, vecs, ids);
    struct rag_err err;

    random_unit(q, 20, DIM, 99);
    ck_assert_int_eq(retr_index_search(x, q, 20, 10, got, scores, &err), 0);
    for (size_t i = 0; i < 20; i++) {
        brute_force(vecs, ids, 500, q + i * DIM, 10, bi, bs);
        for (size_t r = 0; r < 10; r++) {
            ck_assert_int_eq(got[i * 10 + r], bi[r]);
            ck_assert_float_eq_tol(scores[i * 10 + r], bs[r], 1e-5);
        }
    }
    retr_index_close(x);
}
END_TEST

START_TEST(test_round_trip)
{
    float vecs[300 * DIM], q[5 * DIM], s1[5 * 8], s2[5 * 8];
    int64_t ids[300], r1[5 * 8], r2[5 * 8];
    struct retr_index *x = filled("HNSW16,Flat", 300, vecs, ids), *y = NULL;
    char path[4096];
    struct rag_err err;

    snprintf(path, sizeof(path), "%s/vectors.faiss", test_tmpdir());
    random_unit(q, 5, DIM, 3);
    ck_assert_int_eq(retr_index_set_param(x, "efSearch", 64, &err), 0);
    ck_assert_int_eq(retr_index_search(x, q, 5, 8, r1, s1, &err), 0);
    ck_assert_int_eq(retr_index_save(x, path, &err), 0);
    ck_assert_int_eq(access(path, R_OK), 0);
    ck_assert_int_ne(access("vectors.faiss.tmp", F_OK), 0);
    ck_assert_int_eq(retr_index_open(&y, path, &err), 0);
    ck_assert_uint_eq(retr_index_count(y), 300);
    ck_assert_int_eq(retr_index_set_param(y, "efSearch", 64, &err), 0);
    ck_assert_int_eq(retr_index_search(y, q, 5, 8, r2, s2, &err), 0);
    ck_assert_mem_eq(r1, r2, sizeof(r1));
    ck_assert_mem_eq(s1, s2, sizeof(s1));
    retr_index_close(x);
    retr_index_close(y);
}
END_TEST

START_TEST(test_remove_and_missing)
{
    float vecs[50 * DIM], scores[60];
    int64_t ids[50], got[60], gone[3];
    struct retr_index *x = filled(NULL, 50, vecs, ids);
    struct rag_err err;
    size_t removed = 0;

    gone[0] = ids[0], gone[1] = ids[10], gone[2] = 5; /* 5 was never added */
    ck_assert_int_eq(retr_index_remove(x, gone, 3, &removed, &err), 0);
    ck_assert_uint_eq(removed, 2);
    ck_assert_uint_eq(retr_index_count(x), 48);
    /* k larger than the index: the tail is id -1, score 0 */
    ck_assert_int_eq(retr_index_search(x, vecs, 1, 60, got, scores, &err), 0);
    for (size_t r = 0; r < 60; r++) {
        ck_assert(got[r] != ids[0] && got[r] != ids[10]);
        if (r >= 48) {
            ck_assert_int_eq(got[r], -1);
            ck_assert_float_eq(scores[r], 0);
        }
    }
    retr_index_close(x);
}
END_TEST

START_TEST(test_ivf_and_params)
{
    float vecs[400 * DIM], scores[5];
    int64_t ids[400], got[5];
    struct retr_index *x = NULL;
    struct rag_err err;

    ck_assert(retr_index_new(&x, DIM, "IVF4,Flat", &err) == 0);
    ck_assert(retr_index_needs_training(x));
    retr_index_close(x);
    x = filled("IVF4,Flat", 400, vecs, ids);
    ck_assert(!retr_index_needs_training(x));
    ck_assert_int_eq(retr_index_set_param(x, "nprobe", 4, &err), 0);
    ck_assert_int_eq(retr_index_search(x, vecs + 17 * DIM, 1, 5, got, scores, &err), 0);
    ck_assert_int_eq(got[0], ids[17]); /* all lists probed: exact */
    ck_assert_float_eq_tol(scores[0], 1.0, 1e-5);
    ck_assert_int_eq(retr_index_set_param(x, "noSuchParameter", 1, &err), RAG_EINDEX);
    ck_assert_str_eq(err.msg, "set index parameter 'noSuchParameter': "
                              "ParameterSpace::set_index_parameter:could not set parameter "
                              "noSuchParameter");
    retr_index_close(x);
    ck_assert_int_eq(retr_index_new(&x, DIM, "NoSuchIndex", &err), RAG_EINDEX);
    ck_assert_ptr_nonnull(strstr(err.msg, "create index 'NoSuchIndex'"));
    ck_assert(!strchr(err.msg, '\n'));
    ck_assert_int_eq(retr_index_new(&x, 0, NULL, &err), RAG_EINVAL);
}
END_TEST

START_TEST(test_corrupt_files)
{
    float vecs[100 * DIM];
    int64_t ids[100];
    struct retr_index *x = filled(NULL, 100, vecs, ids), *y = NULL;
    char path[4096], missing[4200];
    struct buf file = BUF_INIT;
    struct rag_err err;

    snprintf(path, sizeof(path), "%s/vectors.faiss", test_tmpdir());
    snprintf(missing, sizeof(missing), "%s.none", path);
    ck_assert_int_eq(retr_index_save(x, path, &err), 0);
    ck_assert_int_eq(file_read(path, 0, &file, &err), 0);
    test_write_file(path, file.data, file.len - 100); /* truncated */
    ck_assert_int_eq(retr_index_open(&y, path, &err), RAG_EINDEX);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
    ck_assert(!strchr(err.msg, '\n'));
    file.data[file.len / 2] ^= 1; /* one flipped bit */
    test_write_file(path, file.data, file.len);
    ck_assert_int_eq(retr_index_open(&y, path, &err), RAG_EINDEX);
    ck_assert_ptr_nonnull(strstr(err.msg, "checksum mismatch"));
    memset(file.data, 'x', 16); /* not an index */
    test_write_file(path, file.data, file.len);
    ck_assert_int_eq(retr_index_open(&y, path, &err), RAG_EINDEX);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a rag index file"));
    test_write_file(path, "", 0);
    ck_assert_int_eq(retr_index_open(&y, path, &err), RAG_EINDEX);
    ck_assert_int_eq(retr_index_open(&y, missing, &err), RAG_ENOTFOUND);
    ck_assert_ptr_null(y);
    buf_release(&file);
    retr_index_close(x);
}
END_TEST

/* ---- sync with the store ---- */

static void store_fixture(struct store **ret, int64_t *ret_model, size_t n, const float *vecs)
{
    struct store_model m = { .role = "embed", .name = "test", .sha256 = "00", .dim = DIM };
    struct store_doc doc = {
        .path = "/doc.txt", .sha256 = "ab", .format = "text", .chunker = "fixed"
    };
    struct store_chunk *c = xcalloc(n, sizeof(*c));
    int64_t *ids = xcalloc(n, sizeof(*ids));
    struct rag_err err;

    ck_assert_msg(store_open(ret, test_tmpdir(), &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        c[i].ord = i;
        c[i].text = "chunk text";
        c[i].len = 10;
    }
    ck_assert_msg(store_put_doc(*ret, &doc, c, n, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(store_model_id(*ret, &m, ret_model, &err), 0);
    for (size_t i = 0; i < n; i++)
        ids[i] = c[i].id;
    ck_assert_msg(store_put_vectors(*ret, *ret_model, ids, vecs, n, DIM, &err) == 0, "%s", err.msg);
    free(c);
    free(ids);
}

static void sync_once(struct store *s, const char *path, int64_t model, const char *factory,
                      bool want_rebuilt, const char *why, size_t want_n)
{
    struct retr_sync_report rep;
    struct retr_index *x = NULL;
    struct rag_err err;

    ck_assert_msg(retr_index_sync(&x, path, s, model, DIM, factory, &rep, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(rep.rebuilt == want_rebuilt, "rebuilt %d: %s", rep.rebuilt, rep.reason);
    ck_assert_msg(!why || strstr(rep.reason, why), "reason '%s' lacks '%s'", rep.reason, why);
    ck_assert_uint_eq(rep.n, want_n);
    ck_assert_uint_eq(retr_index_count(x), want_n);
    retr_index_close(x);
}

START_TEST(test_sync)
{
    float vecs[40 * DIM];
    struct store *s;
    int64_t model;
    char path[4096];
    struct buf file = BUF_INIT;
    struct rag_err err;

    random_unit(vecs, 40, DIM, 11);
    store_fixture(&s, &model, 40, vecs);
    snprintf(path, sizeof(path), "%s/vectors.faiss", test_tmpdir());
    sync_once(s, path, model, NULL, true, "no such file", 40);
    sync_once(s, path, model, NULL, false, NULL, 40);
    sync_once(s, path, model, "HNSW8,Flat", true, "built as 'Flat'", 40);
    sync_once(s, path, model, "HNSW8,Flat", false, NULL, 40);
    ck_assert_int_eq(store_meta_set(s, "index.model_id", "999", &err), 0);
    sync_once(s, path, model, "HNSW8,Flat", true, "another model", 40);
    ck_assert_int_eq(file_read(path, 0, &file, &err), 0);
    test_write_file(path, file.data, file.len / 2);
    sync_once(s, path, model, "HNSW8,Flat", true, "truncated", 40);
    ck_assert_int_eq(store_remove_doc(s, "/doc.txt", &err), 0);
    sync_once(s, path, model, "HNSW8,Flat", true, "index has 40 vectors, store has 0", 0);
    buf_release(&file);
    store_close(s);
}
END_TEST

/* ---- fusion ---- */

static const struct retr_ranked list_a[] = { { 1, 3.0 }, { 2, 2.0 }, { 3, 1.0 } };
static const struct retr_ranked list_b[] = { { 3, 0.9 }, { 1, 0.5 }, { 4, 0.1 } };

START_TEST(test_rrf)
{
    struct retr_list lists[2] = { { list_a, 3 }, { list_b, 3 } };
    struct retr_fuse_opts o = { .method = RETR_FUSE_RRF };
    struct retr_fused out[6];
    struct rag_err err;
    size_t n;

    ck_assert_int_eq(retr_fuse(lists, 2, &o, out, &n, &err), 0);
    ck_assert_uint_eq(n, 4);
    /* 1: 1/61 + 1/62; 3: 1/63 + 1/61; 2: 1/62; 4: 1/63 */
    ck_assert_int_eq(out[0].id, 1);
    ck_assert_double_eq_tol(out[0].score, 1.0 / 61 + 1.0 / 62, 1e-12);
    ck_assert_int_eq(out[1].id, 3);
    ck_assert_double_eq_tol(out[1].score, 1.0 / 63 + 1.0 / 61, 1e-12);
    ck_assert_int_eq(out[2].id, 2);
    ck_assert_double_eq_tol(out[2].score, 1.0 / 62, 1e-12);
    ck_assert_int_eq(out[3].id, 4);
    ck_assert_uint_eq(out[1].rank[0], 3);
    ck_assert_uint_eq(out[1].rank[1], 1);
    ck_assert_double_eq(out[1].source_score[1], 0.9);
    ck_assert_uint_eq(out[2].rank[1], 0);
    ck_assert_double_eq(out[2].source_score[1], 0);
    o.k = 1; /* 1: 1/2 + 1/3; 3: 1/4 + 1/2 */
    ck_assert_int_eq(retr_fuse(lists, 2, &o, out, &n, &err), 0);
    ck_assert_double_eq_tol(out[0].score, 0.5 + 1.0 / 3, 1e-12);
    ck_assert_double_eq_tol(out[1].score, 0.75, 1e-12);
}
END_TEST

START_TEST(test_weighted)
{
    struct retr_list lists[2] = { { list_a, 3 }, { list_b, 3 } };
    struct retr_fuse_opts o = { .method = RETR_FUSE_WEIGHTED, .weight = { 0.5, 0.5 } };
    struct retr_fused out[6];
    struct rag_err err;
    size_t n;

    /* a: 1, .5, 0 for ids 1, 2, 3; b: 1, .5, 0 for ids 3, 1, 4 */
    ck_assert_int_eq(retr_fuse(lists, 2, &o, out, &n, &err), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(out[0].id, 1);
    ck_assert_double_eq_tol(out[0].score, 0.75, 1e-12);
    ck_assert_int_eq(out[1].id, 3);
    ck_assert_double_eq_tol(out[1].score, 0.5, 1e-12);
    ck_assert_int_eq(out[2].id, 2);
    ck_assert_double_eq_tol(out[2].score, 0.25, 1e-12);
    ck_assert_int_eq(out[3].id, 4);       /* 0, behind 2; tie-break by rank would not apply */
    o.weight[0] = 0.2, o.weight[1] = 0.8; /* 1: .2 + .4 = .6; 3: 0 + .8 = .8 */
    ck_assert_int_eq(retr_fuse(lists, 2, &o, out, &n, &err), 0);
    ck_assert_int_eq(out[0].id, 3);
    ck_assert_double_eq_tol(out[0].score, 0.8, 1e-12);
    ck_assert_int_eq(out[1].id, 1);
    ck_assert_double_eq_tol(out[1].score, 0.6, 1e-12);
}
END_TEST

START_TEST(test_fuse_edges)
{
    static const struct retr_ranked same[] = { { 7, 2.0 }, { 5, 2.0 }, { 7, 1.0 } };
    struct retr_list lists[5] = { { same, 3 }, { NULL, 0 } };
    struct retr_fuse_opts o = { .method = RETR_FUSE_RRF };
    struct retr_fused out[8];
    struct rag_err err;
    size_t n;

    /* the repeated 7 counts once, at rank 1; empty list contributes nothing */
    ck_assert_int_eq(retr_fuse(lists, 2, &o, out, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(out[0].id, 7);
    ck_assert_uint_eq(out[0].rank[0], 1);
    ck_assert_double_eq_tol(out[0].score, 1.0 / 61, 1e-12);
    o.method = RETR_FUSE_WEIGHTED; /* equal scores normalise to 1: tie broken by rank */
    o.weight[0] = 1;
    ck_assert_int_eq(retr_fuse(lists, 1, &o, out, &n, &err), 0);
    ck_assert_int_eq(out[0].id, 7);
    ck_assert_int_eq(out[1].id, 5);
    ck_assert_double_eq(out[1].score, 1.0);
    ck_assert_int_eq(retr_fuse(lists, 0, &o, out, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(retr_fuse(lists, 5, &o, out, &n, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "fusion: 5 lists, at most 4");
    o.weight[0] = -1;
    ck_assert_int_eq(retr_fuse(lists, 1, &o, out, &n, &err), RAG_EINVAL);
    o.weight[0] = 1;
    o.k = NAN;
    ck_assert_int_eq(retr_fuse(lists, 1, &o, out, &n, &err), RAG_EINVAL);
}
END_TEST

static Suite *retrieval_suite(void)
{
    Suite *s = suite_create("retrieval");
    TCase *index = tcase_create("index"), *sync = tcase_create("sync"),
          *fuse = tcase_create("fusion");

    tcase_set_timeout(index, 30);
    tcase_add_test(index, test_exact_equals_brute_force);
    tcase_add_test(index, test_round_trip);
    tcase_add_test(index, test_remove_and_missing);
    tcase_add_test(index, test_ivf_and_params);
    tcase_add_test(index, test_corrupt_files);
    tcase_set_timeout(sync, 30);
    tcase_add_test(sync, test_sync);
    tcase_add_test(fuse, test_rrf);
    tcase_add_test(fuse, test_weighted);
    tcase_add_test(fuse, test_fuse_edges);
    suite_add_tcase(s, index);
    suite_add_tcase(s, sync);
    suite_add_tcase(s, fuse);
    return s;
}

TEST_MAIN(retrieval_suite)
