/*
 * tests/testutil.h - helpers shared by the Check suites: TEST_MAIN, scratch
 * directories, paths to the shared data, the source tree and the models, and
 * a GPU probe in a child process.
 */
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <check.h>
#include <stdlib.h>

#include "base/base.h"

/* Run the suite; exit status EXIT_FAILURE when any test failed. */
int test_run_suite(Suite *s);
#define TEST_MAIN(fn)          \
 int main(void)                \
 {                             \
  return test_run_suite(fn()); \
 }

/* A fresh directory under $TMPDIR; the returned path is static per process. */
const char *test_tmpdir(void);
/* Remove a directory tree (best effort). */
void test_rmtree(const char *path);
/* $RAG_DATA/<rel> (../shared/data); NULL when RAG_DATA is unset or missing. */
const char *test_data_path(const char *rel, char *out, size_t n);
/* $RAG_SOURCE_ROOT/<rel>, e.g. "tests/golden/x". */
const char *test_source_path(const char *rel, char *out, size_t n);
/*
 * The model file or folder name where scripts/setup puts it:
 * $RAG_MODELS/<name>, else $XDG_CACHE_HOME/rag/models/<name>, else
 * ~/.cache/rag/models/<name>, written to out; NULL when it cannot be read.
 */
const char *test_model_path(const char *name, char *out, size_t n);
/*
 * Run probe() in a child process, so that this one never starts CUDA (forked
 * tests could not use it afterwards): 1 when probe returned 0, 0 when it
 * returned 2 (no usable GPU), -1 when it crashed or returned anything else.
 */
int test_probe(int (*probe)(void));
/* Cosine similarity of a and b (n floats), in double. */
double test_cosine(const float *a, const float *b, size_t n);
/*
 * Finish a safetensors file and write it to path: head holds the JSON
 * header without its closing brace ("{\"__metadata__\": ..., \"name\": {...}"),
 * data the tensors' bytes at the offsets head gives. head is changed.
 */
void test_write_safetensors(const char *path, struct buf *head, const struct buf *data);
/*
 * A small GGUF writer for hand-made model files. Metadata goes to kv and
 * tensor infos to ti, counted; tensor data to data, each tensor padded to
 * align (0: 32). test_gguf_finish() appends the whole file to out and
 * releases the writer's buffers.
 */
struct test_gguf {
    struct buf kv, ti, data;
    uint64_t n_kv, n_t;
    uint32_t align;
};
void test_put_u32(struct buf *b, uint32_t v);
void test_put_u64(struct buf *b, uint64_t v);
void test_put_str(struct buf *b, const char *s); /* GGUF string: u64 length, bytes */
void test_gguf_key(struct test_gguf *g, const char *key, uint32_t type); /* value follows */
void test_gguf_u32(struct test_gguf *g, const char *key, uint32_t v);
void test_gguf_f32(struct test_gguf *g, const char *key, float v);
void test_gguf_str(struct test_gguf *g, const char *key, const char *v);
/* A scalar of any type from its raw little-endian bytes. */
void test_gguf_raw(struct test_gguf *g, const char *key, uint32_t type, const void *v, size_t n);
void test_gguf_tensor(struct test_gguf *g, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data, size_t nbytes);
void test_gguf_finish(struct test_gguf *g, struct buf *out, uint32_t version);
/* Write n bytes to path or fail the test. */
void test_write_file(const char *path, const void *data, size_t n);

#endif
