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
/*
 * Finish a safetensors file and write it to path: head holds the JSON
 * header without its closing brace ("{\"__metadata__\": ..., \"name\": {...}"),
 * data the tensors' bytes at the offsets head gives. head is changed.
 */
void test_write_safetensors(const char *path, struct buf *head, const struct buf *data);
/* Write n bytes to path or fail the test. */
void test_write_file(const char *path, const void *data, size_t n);

#endif
