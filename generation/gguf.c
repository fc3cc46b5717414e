/*
 * generation/gguf.c - GGUF v2/v3 reader over one read-only mmap.
 *
 * Parsing is a single pass with a bounds-checked cursor: every length, count
 * and offset is checked against the file size before it is used, so a
 * truncated or corrupt file yields an error naming the file, the byte offset
 * and the item being read. Keys and tensor names are copied into an arena
 * (NUL-terminated); string arrays get a table of element offsets so that
 * gguf_arr_str() is O(1); everything else is read from the mapping on demand.
 * Keys and tensors are sorted by name once to reject duplicates and to look
 * them up by binary search.
 */
#include "generation/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC     0x46554747u /* "GGUF" read as a little-endian u32 */
#define MAX_NEST       8
#define MAX_NAME_BYTES 65535

struct kv {
    const char *name;
    enum gguf_value_type type;
    size_t val_off;               /* scalar value, or first element of an array */
    enum gguf_value_type elem;    /* arrays */
    uint64_t n;                   /* arrays: element count */
    const char *str;              /* scalar strings: arena copy */
    size_t str_len;
    uint64_t *str_off;            /* string arrays: offset of each element's length */
};

struct gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version, alignment;
    struct kv *kv;
    size_t n_kv;
    size_t *kv_sorted; /* kv indices sorted by name */
    struct gguf_tensor *tensor;
    size_t n_tensors;
    size_t *tensor_sorted;
    struct arena arena;
};

/* Bounds-checked cursor over the mapping. */
struct cursor {
    struct gguf *g;
    size_t pos;
    char what[96]; /* item being read, for messages */
    struct rag_err *err;
};

struct type_traits {
    const char *name;
    size_t block, size;
};

static const struct type_traits *traits(uint32_t type)
{
    static const struct type_traits t[31] = {
        [GGUF_TENSOR_F32] = { "f32", 1, 4 },      [GGUF_TENSOR_F16] = { "f16", 1, 2 },
        [GGUF_TENSOR_Q4_0] = { "q4_0", 32, 18 },  [GGUF_TENSOR_Q4_1] = { "q4_1", 32, 20 },
        [GGUF_TENSOR_Q5_0] = { "q5_0", 32, 22 },  [GGUF_TENSOR_Q5_1] = { "q5_1", 32, 24 },
        [GGUF_TENSOR_Q8_0] = { "q8_0", 32, 34 },  [GGUF_TENSOR_Q4_K] = { "q4_k", 256, 144 },
        [GGUF_TENSOR_Q5_K] = { "q5_k", 256, 176 }, [GGUF_TENSOR_Q6_K] = { "q6_k", 256, 210 },
        [GGUF_TENSOR_BF16] = { "bf16", 1, 2 },
    };
    if (type >= 31 || !t[type].name)
        return NULL;
    return &t[type];
}

size_t gguf_type_block(uint32_t type)
{
    return traits(type) ? traits(type)->block : 0;
}

size_t gguf_type_size(uint32_t type)
{
    return traits(type) ? traits(type)->size : 0;
}

const char *gguf_type_name(uint32_t type)
{
    return traits(type) ? traits(type)->name : "?";
}

size_t gguf_row_size(enum gguf_tensor_type type, uint64_t n)
{
    return (size_t)(n / gguf_type_block(type)) * gguf_type_size(type);
}

size_t gguf_value_size(enum gguf_value_type t)
{
    static const size_t sz[13] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    return (unsigned)t < 13 ? sz[t] : 0;
}

const char *gguf_value_type_name(enum gguf_value_type t)
{
    static const char *const names[13] = { "uint8",  "int8",   "uint16", "int16", "uint32",
                                           "int32",  "float32", "bool",  "string", "array",
                                           "uint64", "int64",  "float64" };
    return (unsigned)t < 13 ? names[t] : "?";
}

/* "'path': <message> at offset N (item)" */
RAG_PRINTF(2, 3) static int bad(struct cursor *c, const char *fmt, ...)
{
    char msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return rag_errf(c->err, RAG_EFORMAT, "'%s': %s at offset %zu (%s)", c->g->path, msg, c->pos,
                    c->what);
}

static int need(struct cursor *c, uint64_t n)
{
    if (n > c->g->size - c->pos)
        return rag_errf(c->err, RAG_EFORMAT, "'%s': truncated at offset %zu (%s)", c->g->path,
                        c->pos, c->what);
    return 0;
}

static int rd_u32(struct cursor *c, uint32_t *v)
{
    if (need(c, 4))
        return RAG_EFORMAT;
    memcpy(v, c->g->map + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(struct cursor *c, uint64_t *v)
{
    if (need(c, 8))
        return RAG_EFORMAT;
    memcpy(v, c->g->map + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* A gguf string: u64 length + bytes. Sets the byte offset and length. */
static int rd_str(struct cursor *c, size_t *ret_off, size_t *ret_len)
{
    uint64_t len;

    if (rd_u64(c, &len) || need(c, len))
        return RAG_EFORMAT;
    if (ret_off)
        *ret_off = c->pos;
    if (ret_len)
        *ret_len = (size_t)len;
    c->pos += (size_t)len;
    return 0;
}

static int skip_value(struct cursor *c, uint32_t type, int depth);

static int skip_array(struct cursor *c, uint32_t elem, uint64_t n, int depth)
{
    size_t size = gguf_value_size(elem);

    if (depth > MAX_NEST)
        return bad(c, "arrays nested deeper than %d", MAX_NEST);
    if (elem == GGUF_VALUE_STRING || elem == GGUF_VALUE_ARRAY) {
        for (uint64_t i = 0; i < n; i++)
            if (skip_value(c, elem, depth))
                return RAG_EFORMAT;
        return 0;
    }
    if (!size)
        return bad(c, "unknown array element type %u", elem);
    if (n > (c->g->size - c->pos) / size)
        return need(c, UINT64_MAX);
    for (uint64_t i = 0; elem == GGUF_VALUE_BOOL && i < n; i++)
        if (c->g->map[c->pos + i] > 1)
            return bad(c, "bool value %u", c->g->map[c->pos + i]);
    c->pos += (size_t)(n * size);
    return 0;
}

static int skip_value(struct cursor *c, uint32_t type, int depth)
{
    uint32_t elem;
    uint64_t n;

    if (type == GGUF_VALUE_STRING)
        return rd_str(c, NULL, NULL);
    if (type == GGUF_VALUE_ARRAY) {
        if (rd_u32(c, &elem) || rd_u64(c, &n))
            return RAG_EFORMAT;
        return skip_array(c, elem, n, depth + 1);
    }
    return skip_array(c, type, 1, depth);
}

/* String array: validate and record where each element's length prefix is. */
static int index_str_array(struct cursor *c, struct kv *kv)
{
    if (kv->n > (c->g->size - c->pos) / 8)
        return need(c, UINT64_MAX);
    kv->str_off = xmalloc_array(kv->n ? kv->n : 1, sizeof(*kv->str_off));
    for (uint64_t i = 0; i < kv->n; i++) {
        kv->str_off[i] = c->pos;
        if (rd_str(c, NULL, NULL))
            return RAG_EFORMAT;
    }
    return 0;
}

static int parse_value(struct cursor *c, struct kv *kv)
{
    uint32_t elem;
    size_t off;

    kv->val_off = c->pos;
    if (kv->type == GGUF_VALUE_STRING) {
        if (rd_str(c, &off, &kv->str_len))
            return RAG_EFORMAT;
        kv->str = arena_strndup(&c->g->arena, (const char *)c->g->map + off, kv->str_len);
        return 0;
    }
    if (kv->type != GGUF_VALUE_ARRAY)
        return skip_value(c, kv->type, 0);
    if (rd_u32(c, &elem) || rd_u64(c, &kv->n))
        return RAG_EFORMAT;
    kv->elem = elem;
    kv->val_off = c->pos;
    if (elem == GGUF_VALUE_STRING)
        return index_str_array(c, kv);
    return skip_array(c, elem, kv->n, 1);
}

static int parse_kv(struct cursor *c, struct kv *kv, uint64_t i)
{
    size_t off, len;
    uint32_t type;

    snprintf(c->what, sizeof(c->what), "key %" PRIu64, i);
    if (rd_str(c, &off, &len))
        return RAG_EFORMAT;
    if (len == 0 || len > MAX_NAME_BYTES)
        return bad(c, "key name of %zu bytes", len);
    kv->name = arena_strndup(&c->g->arena, (const char *)c->g->map + off, len);
    snprintf(c->what, sizeof(c->what), "key '%.64s'", kv->name);
    if (rd_u32(c, &type))
        return RAG_EFORMAT;
    if (type > GGUF_VALUE_FLOAT64)
        return bad(c, "unknown value type %u", type);
    kv->type = type;
    return parse_value(c, kv);
}
