/*
 * generation/gguf.h - read-only access to a GGUF v2/v3 model file (internal
 * to generation/; tests may include it).
 *
 * gguf_open() maps the file and validates it completely before returning:
 * magic, version (2 or 3), every metadata value (nested arrays included),
 * the tensor table (names unique, known types, dims[0] a multiple of the
 * block size, offsets aligned to general.alignment (default 32) and inside
 * the file). After that every getter is a bounds-safe lookup; nothing in the
 * file is trusted twice. Errors are one line naming the file:
 * "'model.gguf': truncated at offset 123 (tensor info 4)".
 *
 * Lifetimes: every pointer returned (strings, array data, tensors, tensor
 * data) points into the struct gguf or its mapping and stays valid until
 * gguf_close(). Strings inside arrays are NOT NUL-terminated (use the length);
 * scalar string values and tensor names are. Numeric array data is the raw
 * little-endian file content and may be unaligned: read it with memcpy.
 */
#ifndef GENERATION_GGUF_H
#define GENERATION_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* Metadata value types (u32 in the file). */
enum gguf_value_type {
    GGUF_VALUE_UINT8 = 0,
    GGUF_VALUE_INT8 = 1,
    GGUF_VALUE_UINT16 = 2,
    GGUF_VALUE_INT16 = 3,
    GGUF_VALUE_UINT32 = 4,
    GGUF_VALUE_INT32 = 5,
    GGUF_VALUE_FLOAT32 = 6,
    GGUF_VALUE_BOOL = 7,
    GGUF_VALUE_STRING = 8,
    GGUF_VALUE_ARRAY = 9,
    GGUF_VALUE_UINT64 = 10,
    GGUF_VALUE_INT64 = 11,
    GGUF_VALUE_FLOAT64 = 12,
};

/* Tensor element types (ggml_type ids); only these are accepted by gguf_open. */
enum gguf_tensor_type {
    GGUF_TENSOR_F32 = 0,
    GGUF_TENSOR_F16 = 1,
    GGUF_TENSOR_Q4_0 = 2,
    GGUF_TENSOR_Q4_1 = 3,
    GGUF_TENSOR_Q5_0 = 6,
    GGUF_TENSOR_Q5_1 = 7,
    GGUF_TENSOR_Q8_0 = 8,
    GGUF_TENSOR_Q4_K = 12,
    GGUF_TENSOR_Q5_K = 13,
    GGUF_TENSOR_Q6_K = 14,
    GGUF_TENSOR_BF16 = 30,
};

#define GGUF_MAX_DIMS          4
#define GGUF_DEFAULT_ALIGNMENT 32

struct gguf_tensor {
    const char *name; /* NUL-terminated */
    enum gguf_tensor_type type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint64_t offset;            /* relative to the data section, multiple of the alignment */
    const void *data;           /* into the mapping */
    size_t nbytes;
};

struct gguf; /* opaque */

/*
 * Map and validate the file at path. On success *ret owns the mapping; close
 * it with gguf_close(). Returns RAG_EIO (open/stat/mmap failure) or
 * RAG_EFORMAT (anything wrong with the content, including unsupported tensor
 * types and big-endian or v1 files).
 */
int gguf_open(struct gguf **ret, const char *path, struct rag_err *err);
void gguf_close(struct gguf *g); /* NULL is a no-op */

const char *gguf_path(const struct gguf *g); /* as passed to gguf_open */
uint32_t gguf_version(const struct gguf *g);
uint32_t gguf_alignment(const struct gguf *g);
size_t gguf_file_size(const struct gguf *g);

/* ---- metadata ---- */

size_t gguf_n_keys(const struct gguf *g);
const char *gguf_key_name(const struct gguf *g, int64_t key_idx); /* NUL-terminated */
enum gguf_value_type gguf_key_type(const struct gguf *g, int64_t key_idx);
/* Index of key, or -1 when absent. */
int64_t gguf_find_key(const struct gguf *g, const char *key);

/*
 * Typed getters. Each returns 0 and sets *ret, RAG_ENOTFOUND when the key is
 * absent, or RAG_EFORMAT when it has an incompatible type or the value does
 * not fit (err may be NULL; messages name the file and the key).
 * Integer getters accept any integer type whose value is in range; f32 accepts
 * float32 and float64; bool accepts only bool. The string is NUL-terminated
 * (it may contain NUL bytes if the file does; *ret_len, if not NULL, is the
 * byte length).
 */
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *ret, struct rag_err *err);
int gguf_get_i32(const struct gguf *g, const char *key, int32_t *ret, struct rag_err *err);
int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *ret, struct rag_err *err);
int gguf_get_f32(const struct gguf *g, const char *key, float *ret, struct rag_err *err);
int gguf_get_bool(const struct gguf *g, const char *key, bool *ret, struct rag_err *err);
int gguf_get_str(const struct gguf *g, const char *key, const char **ret, size_t *ret_len,
                 struct rag_err *err);

/*
 * Array at key: element type and count. RAG_ENOTFOUND when absent,
 * RAG_EFORMAT when the value is not an array.
 */
int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_value_type *ret_type,
                 uint64_t *ret_n, struct rag_err *err);
/*
 * Element i of the string array at key_idx (from gguf_find_key): pointer into
 * the mapping, not NUL-terminated, length in *ret_len. NULL when key_idx is
 * not a string array or i is out of range.
 */
const char *gguf_arr_str(const struct gguf *g, int64_t key_idx, uint64_t i, size_t *ret_len);
/*
 * First element of the numeric (non-string, non-array) array at key_idx:
 * count × gguf_value_size(type) raw little-endian bytes, possibly unaligned.
 * NULL when key_idx is not such an array.
 */
const void *gguf_arr_data(const struct gguf *g, int64_t key_idx);
/* Size in bytes of a scalar value type; 0 for string and array. */
size_t gguf_value_size(enum gguf_value_type t);
const char *gguf_value_type_name(enum gguf_value_type t); /* "uint32", ...; "?" if unknown */

/* ---- tensors ---- */

size_t gguf_n_tensors(const struct gguf *g);
const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, size_t i);
/* Tensor by name, or NULL when absent. */
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

/* Type traits: elements per block, bytes per block, name ("q4_1"); 0 / "?" if unknown. */
size_t gguf_type_block(uint32_t type);
size_t gguf_type_size(uint32_t type);
const char *gguf_type_name(uint32_t type);
/* Bytes of one row of n elements (n must be a multiple of the block). */
size_t gguf_row_size(enum gguf_tensor_type type, uint64_t n);

#endif
