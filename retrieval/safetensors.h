/*
 * retrieval/safetensors.h - read-only access to a .safetensors file
 * (internal to retrieval/).
 *
 * File format (little-endian):
 *  1. u64 N: length of the JSON header in bytes;
 *  2. N bytes of JSON: an object mapping each tensor name to
 *     {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
 *      "data_offsets": [begin, end]}, plus an optional "__metadata__" object
 *     of strings;
 *  3. the data section: tensor bytes at [8 + N + begin, 8 + N + end).
 * The file is mapped once; every offset is checked against its size and
 * end - begin must equal the product of the shape times the dtype size.
 */
#ifndef RETRIEVAL_SAFETENSORS_H
#define RETRIEVAL_SAFETENSORS_H

#include "base/base.h"

#define RETR_ST_MAX_DIMS 8

enum retr_st_dtype { RETR_ST_F32, RETR_ST_F16, RETR_ST_BF16, RETR_ST_OTHER };

struct retr_st_tensor {
    const char *name;
    enum retr_st_dtype dtype;
    size_t n_dims;
    size_t shape[RETR_ST_MAX_DIMS];
    size_t n_elems;
    const void *data; /* in the mapping; nbytes long */
    size_t nbytes;
};

struct retr_st {
    char *path;
    void *map;
    size_t size;
    struct retr_st_tensor *tensor;
    size_t n;
    struct arena arena; /* names and the parsed header */
};

/*
 * Map path and parse its header. RAG_EIO when it cannot be opened or
 * mapped, RAG_EFORMAT for a bad header length, bad JSON, an unknown layout
 * or an offset past the end ("'<path>': tensor '<name>': ..."). Release
 * with retr_st_close (also after a failure).
 */
int retr_st_open(struct retr_st *st, const char *path, struct rag_err *err);
void retr_st_close(struct retr_st *st);
/*
 * Append what identifies the file without reading its data: the header
 * bytes and the file size. Appends nothing for an unreadable file.
 */
void retr_st_fingerprint(const char *path, struct buf *out);

/* The tensor called name, or NULL. */
const struct retr_st_tensor *retr_st_find(const struct retr_st *st, const char *name);

/*
 * Copy the tensor called name into out (n_elems floats) converting F16 and
 * BF16 to F32, after checking its shape equals shape[0..n_dims).
 * RAG_EFORMAT names the file and the tensor when it is missing, has another
 * shape or an unsupported dtype.
 */
int retr_st_read_f32(const struct retr_st *st, const char *name, const size_t *shape, size_t n_dims,
                     float *out, struct rag_err *err);

#endif
