/*
 * retrieval/vindex.h - the FAISS C API calls the project uses (internal to
 * retrieval/, STYLE.md 12). Every function returns 0 or RAG_EINDEX with
 * FAISS's last error copied into err at once; subject names the file or
 * index in the message.
 */
#ifndef RETRIEVAL_VINDEX_H
#define RETRIEVAL_VINDEX_H

#include <stdio.h>

#include "base/base.h"

struct retr_vindex; /* a FaissIndex */

/* Inner-product index from a factory string; IDMap2-wrapped unless it starts with "IDMap". */
int retr_vindex_new(struct retr_vindex **ret, size_t dim, const char *factory, struct rag_err *err);
/* Read an index from the stream's position (path names it in messages). */
int retr_vindex_read(struct retr_vindex **ret, FILE *f, const char *path, struct rag_err *err);
/* Write to an open stream (the caller fsyncs and renames). */
int retr_vindex_write(const struct retr_vindex *x, FILE *f, const char *path, struct rag_err *err);
void retr_vindex_free(struct retr_vindex *x);

size_t retr_vindex_dim(const struct retr_vindex *x);
size_t retr_vindex_ntotal(const struct retr_vindex *x);
bool retr_vindex_is_trained(const struct retr_vindex *x);

int retr_vindex_train(struct retr_vindex *x, const float *vecs, size_t n, struct rag_err *err);
int retr_vindex_add(struct retr_vindex *x, const int64_t *ids, const float *vecs, size_t n,
                    struct rag_err *err);
int retr_vindex_remove(struct retr_vindex *x, const int64_t *ids, size_t n, size_t *ret_removed,
                       struct rag_err *err);
int retr_vindex_search(const struct retr_vindex *x, const float *q, size_t n_q, size_t k,
                       float *dist, int64_t *labels, struct rag_err *err);
int retr_vindex_set_param(struct retr_vindex *x, const char *name, double value,
                          struct rag_err *err);

#endif
