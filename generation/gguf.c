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

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
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
    size_t val_off;            /* scalar value, or first element of an array */
    enum gguf_value_type elem; /* arrays */
    uint64_t n;                /* arrays: element count */
    const char *str;           /* scalar strings: arena copy */
    size_t str_len;
    uint64_t *str_off; /* string arrays: offset of each element's length */
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
        [GGUF_TENSOR_F32] = { "f32", 1, 4 },       [GGUF_TENSOR_F16] = { "f16", 1, 2 },
        [GGUF_TENSOR_Q4_0] = { "q4_0", 32, 18 },   [GGUF_TENSOR_Q4_1] = { "q4_1", 32, 20 },
        [GGUF_TENSOR_Q5_0] = { "q5_0", 32, 22 },   [GGUF_TENSOR_Q5_1] = { "q5_1", 32, 24 },
        [GGUF_TENSOR_Q8_0] = { "q8_0", 32, 34 },   [GGUF_TENSOR_Q4_K] = { "q4_k", 256, 144 },
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
    static const char *const names[13] = { "uint8",  "int8",    "uint16", "int16",  "uint32",
                                           "int32",  "float32", "bool",   "string", "array",
                                           "uint64", "int64",   "float64" };
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

static int cmp_kv(const void *a, const void *b, void *ctx)
{
    const struct kv *kv = ctx;
    return strcmp(kv[*(const size_t *)a].name, kv[*(const size_t *)b].name);
}

static int cmp_tensor(const void *a, const void *b, void *ctx)
{
    const struct gguf_tensor *t = ctx;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* Sort indices 0..n-1 by name; returns the first duplicated name or NULL. */
static const char *sort_names(size_t **ret, size_t n, void *items,
                              const char *(*name)(const void *items, size_t i),
                              int (*cmp)(const void *, const void *, void *))
{
    size_t *idx = xmalloc_array(n ? n : 1, sizeof(*idx));

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), cmp, items);
    *ret = idx;
    for (size_t i = 1; i < n; i++)
        if (!strcmp(name(items, idx[i - 1]), name(items, idx[i])))
            return name(items, idx[i]);
    return NULL;
}

static const char *kv_name(const void *items, size_t i)
{
    return ((const struct kv *)items)[i].name;
}

static const char *tensor_name(const void *items, size_t i)
{
    return ((const struct gguf_tensor *)items)[i].name;
}

static int parse_header(struct cursor *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    uint32_t magic;

    snprintf(c->what, sizeof(c->what), "header");
    if (rd_u32(c, &magic))
        return RAG_EFORMAT;
    if (magic != GGUF_MAGIC)
        return rag_errf(c->err, RAG_EFORMAT, "'%s': not a GGUF file (bad magic)", c->g->path);
    if (rd_u32(c, &c->g->version))
        return RAG_EFORMAT;
    if (c->g->version == 0x02000000u || c->g->version == 0x03000000u)
        return rag_errf(c->err, RAG_EFORMAT, "'%s': big-endian GGUF files are not supported",
                        c->g->path);
    if (c->g->version != 2 && c->g->version != 3)
        return rag_errf(c->err, RAG_EFORMAT, "'%s': unsupported GGUF version %u", c->g->path,
                        c->g->version);
    if (rd_u64(c, n_tensors) || rd_u64(c, n_kv))
        return RAG_EFORMAT;
    /* A key takes at least 12 bytes, a tensor info at least 24: bound the counts. */
    if (*n_kv > (c->g->size - c->pos) / 12 || *n_tensors > (c->g->size - c->pos) / 24)
        return rag_errf(c->err, RAG_EFORMAT,
                        "'%s': truncated at offset %zu (header: %" PRIu64 " keys and %" PRIu64
                        " tensors do not fit)",
                        c->g->path, c->pos, *n_kv, *n_tensors);
    return 0;
}

static int parse_kvs(struct cursor *c, uint64_t n)
{
    struct gguf *g = c->g;
    const char *dup;

    g->kv = xcalloc(n ? n : 1, sizeof(*g->kv));
    for (uint64_t i = 0; i < n; i++) {
        g->n_kv = i + 1;
        if (parse_kv(c, &g->kv[i], i))
            return RAG_EFORMAT;
    }
    dup = sort_names(&g->kv_sorted, g->n_kv, g->kv, kv_name, cmp_kv);
    if (dup)
        return rag_errf(c->err, RAG_EFORMAT, "'%s': duplicate key '%.64s'", g->path, dup);
    return 0;
}

static int parse_alignment(struct cursor *c)
{
    struct gguf *g = c->g;
    int rc = gguf_get_u32(g, "general.alignment", &g->alignment, c->err);

    if (rc == RAG_ENOTFOUND) {
        g->alignment = GGUF_DEFAULT_ALIGNMENT;
        return 0;
    }
    if (rc)
        return rc;
    if (g->alignment == 0 || (g->alignment & (g->alignment - 1)))
        return rag_errf(c->err, RAG_EFORMAT, "'%s': general.alignment %u is not a power of two",
                        g->path, g->alignment);
    return 0;
}

static int parse_tensor_info(struct cursor *c, struct gguf_tensor *t, uint64_t i)
{
    size_t off, len;
    uint32_t type;

    snprintf(c->what, sizeof(c->what), "tensor info %" PRIu64, i);
    if (rd_str(c, &off, &len))
        return RAG_EFORMAT;
    if (len == 0 || len > 64)
        return bad(c, "tensor name of %zu bytes", len);
    t->name = arena_strndup(&c->g->arena, (const char *)c->g->map + off, len);
    snprintf(c->what, sizeof(c->what), "tensor '%s'", t->name);
    if (rd_u32(c, &t->n_dims))
        return RAG_EFORMAT;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return bad(c, "%u dimensions", t->n_dims);
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        if (rd_u64(c, &t->ne[d]))
            return RAG_EFORMAT;
    if (rd_u32(c, &type))
        return RAG_EFORMAT;
    if (!traits(type))
        return bad(c, "unsupported tensor type %u", type);
    t->type = type;
    return rd_u64(c, &t->offset);
}

/* Size and placement of a tensor whose info was read; data_start is aligned. */
static int place_tensor(struct cursor *c, struct gguf_tensor *t, size_t data_start)
{
    size_t avail = c->g->size - data_start;
    uint64_t rows = 1, row;

    snprintf(c->what, sizeof(c->what), "tensor '%s'", t->name);
    if (t->ne[0] % gguf_type_block(t->type))
        return rag_errf(c->err, RAG_EFORMAT,
                        "'%s': tensor '%s': row of %" PRIu64
                        " elements is not a multiple of the %s block (%zu)",
                        c->g->path, t->name, t->ne[0], gguf_type_name(t->type),
                        gguf_type_block(t->type));
    row = t->ne[0] / gguf_type_block(t->type) * gguf_type_size(t->type);
    for (int d = 1; d < GGUF_MAX_DIMS; d++) {
        if (t->ne[d] && rows > UINT64_MAX / t->ne[d])
            return rag_errf(c->err, RAG_EFORMAT, "'%s': tensor '%s': shape overflows", c->g->path,
                            t->name);
        rows *= t->ne[d];
    }
    if (t->ne[0] > avail || (row && rows > avail / row))
        return rag_errf(c->err, RAG_EFORMAT, "'%s': tensor '%s': larger than the file", c->g->path,
                        t->name);
    t->nbytes = (size_t)(row * rows);
    if (t->offset % c->g->alignment)
        return rag_errf(c->err, RAG_EFORMAT,
                        "'%s': tensor '%s': offset %" PRIu64 " is not aligned to %u", c->g->path,
                        t->name, t->offset, c->g->alignment);
    if (t->offset > avail || t->nbytes > avail - t->offset)
        return rag_errf(c->err, RAG_EFORMAT,
                        "'%s': tensor '%s': data at offset %" PRIu64
                        " (%zu bytes) extends past the end of the file",
                        c->g->path, t->name, t->offset, t->nbytes);
    t->data = c->g->map + data_start + t->offset;
    return 0;
}

static int parse_tensors(struct cursor *c, uint64_t n)
{
    struct gguf *g = c->g;
    size_t data_start;
    const char *dup;

    g->tensor = xcalloc(n ? n : 1, sizeof(*g->tensor));
    for (uint64_t i = 0; i < n; i++) {
        g->n_tensors = i + 1;
        if (parse_tensor_info(c, &g->tensor[i], i))
            return RAG_EFORMAT;
    }
    dup = sort_names(&g->tensor_sorted, g->n_tensors, g->tensor, tensor_name, cmp_tensor);
    if (dup)
        return rag_errf(c->err, RAG_EFORMAT, "'%s': duplicate tensor '%s'", g->path, dup);
    data_start = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (n && data_start > g->size)
        return rag_errf(c->err, RAG_EFORMAT, "'%s': truncated before the tensor data (%zu bytes)",
                        g->path, g->size);
    for (uint64_t i = 0; i < n; i++)
        if (place_tensor(c, &g->tensor[i], data_start))
            return RAG_EFORMAT;
    return 0;
}

static int map_file(struct gguf *g, struct rag_err *err)
{
    struct stat st;
    int fd = open(g->path, O_RDONLY | O_CLOEXEC);
    void *p;

    if (fd < 0)
        return rag_errno(err, "open '%s'", g->path);
    if (fstat(fd, &st) < 0) {
        close(fd);
        return rag_errno(err, "stat '%s'", g->path);
    }
    g->size = (size_t)st.st_size;
    if (g->size == 0) {
        close(fd);
        return rag_errf(err, RAG_EFORMAT, "'%s': empty file", g->path);
    }
    p = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return rag_errno(err, "mmap '%s'", g->path);
    g->map = p;
    return 0;
}

int gguf_open(struct gguf **ret, const char *path, struct rag_err *err)
{
    struct gguf *g = xcalloc(1, sizeof(*g));
    struct cursor c = { .g = g, .err = err };
    uint64_t n_tensors, n_kv;
    int rc;

    g->path = xstrdup(path);
    arena_init(&g->arena, 0);
    rc = map_file(g, err);
    if (!rc)
        rc = parse_header(&c, &n_tensors, &n_kv);
    if (!rc)
        rc = parse_kvs(&c, n_kv);
    if (!rc)
        rc = parse_alignment(&c);
    if (!rc)
        rc = parse_tensors(&c, n_tensors);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *ret = g;
    return 0;
}

void gguf_close(struct gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_kv; i++)
        free(g->kv[i].str_off);
    free(g->kv);
    free(g->kv_sorted);
    free(g->tensor);
    free(g->tensor_sorted);
    if (g->map)
        munmap((void *)g->map, g->size);
    arena_release(&g->arena);
    free(g->path);
    free(g);
}

const char *gguf_path(const struct gguf *g)
{
    return g->path;
}

uint32_t gguf_version(const struct gguf *g)
{
    return g->version;
}

uint32_t gguf_alignment(const struct gguf *g)
{
    return g->alignment;
}

size_t gguf_file_size(const struct gguf *g)
{
    return g->size;
}

size_t gguf_n_keys(const struct gguf *g)
{
    return g->n_kv;
}

const char *gguf_key_name(const struct gguf *g, int64_t key_idx)
{
    assert(key_idx >= 0 && (size_t)key_idx < g->n_kv);
    return g->kv[key_idx].name;
}

enum gguf_value_type gguf_key_type(const struct gguf *g, int64_t key_idx)
{
    assert(key_idx >= 0 && (size_t)key_idx < g->n_kv);
    return g->kv[key_idx].type;
}

int64_t gguf_find_key(const struct gguf *g, const char *key)
{
    size_t lo = 0, hi = g->n_kv;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv[g->kv_sorted[mid]].name, key);
        if (c == 0)
            return (int64_t)g->kv_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static const struct kv *lookup(const struct gguf *g, const char *key, struct rag_err *err)
{
    int64_t i = gguf_find_key(g, key);

    if (i < 0) {
        rag_errf(err, RAG_ENOTFOUND, "'%s': key '%s' not found", g->path, key);
        return NULL;
    }
    return &g->kv[i];
}

static int wrong_type(const struct gguf *g, const struct kv *kv, const char *want,
                      struct rag_err *err)
{
    return rag_errf(err, RAG_EFORMAT, "'%s': key '%s' has type %s, expected %s", g->path, kv->name,
                    gguf_value_type_name(kv->type), want);
}

static bool is_int_type(enum gguf_value_type t)
{
    return t <= GGUF_VALUE_INT32 || t == GGUF_VALUE_UINT64 || t == GGUF_VALUE_INT64;
}

/* Integer value of kv widened: sets *neg and *mag (|value|). */
static int get_int(const struct gguf *g, const char *key, bool *neg, uint64_t *mag,
                   struct rag_err *err)
{
    const struct kv *kv = lookup(g, key, err);
    uint64_t u = 0;
    size_t size;
    bool is_signed;

    if (!kv)
        return RAG_ENOTFOUND;
    if (!is_int_type(kv->type))
        return wrong_type(g, kv, "integer", err);
    size = gguf_value_size(kv->type);
    is_signed = kv->type == GGUF_VALUE_INT8 || kv->type == GGUF_VALUE_INT16 ||
                kv->type == GGUF_VALUE_INT32 || kv->type == GGUF_VALUE_INT64;
    memcpy(&u, g->map + kv->val_off, size); /* little-endian file and host */
    if (is_signed && size < 8 && (u >> (8 * size - 1)) & 1)
        u |= ~(uint64_t)0 << (8 * size); /* sign-extend */
    *neg = is_signed && (u >> 63);
    *mag = *neg ? (uint64_t)0 - u : u;
    return 0;
}

static int get_ranged(const struct gguf *g, const char *key, int64_t min, uint64_t max, bool *neg,
                      uint64_t *mag, struct rag_err *err)
{
    int rc = get_int(g, key, neg, mag, err);

    if (rc)
        return rc;
    if ((*neg && *mag > (uint64_t)0 - (uint64_t)min) || (!*neg && *mag > max))
        return rag_errf(err, RAG_EFORMAT, "'%s': key '%s': value %s%" PRIu64 " out of range",
                        g->path, key, *neg ? "-" : "", *mag);
    return 0;
}

int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *ret, struct rag_err *err)
{
    bool neg;
    uint64_t mag;
    int rc = get_ranged(g, key, 0, UINT32_MAX, &neg, &mag, err);

    if (!rc)
        *ret = (uint32_t)mag;
    return rc;
}

int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *ret, struct rag_err *err)
{
    bool neg;
    uint64_t mag;
    int rc = get_ranged(g, key, 0, UINT64_MAX, &neg, &mag, err);

    if (!rc)
        *ret = mag;
    return rc;
}

int gguf_get_i32(const struct gguf *g, const char *key, int32_t *ret, struct rag_err *err)
{
    bool neg;
    uint64_t mag;
    int rc = get_ranged(g, key, INT32_MIN, INT32_MAX, &neg, &mag, err);

    if (!rc)
        *ret = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
    return rc;
}

int gguf_get_f32(const struct gguf *g, const char *key, float *ret, struct rag_err *err)
{
    const struct kv *kv = lookup(g, key, err);
    double d;
    float f;

    if (!kv)
        return RAG_ENOTFOUND;
    if (kv->type == GGUF_VALUE_FLOAT32) {
        memcpy(&f, g->map + kv->val_off, 4);
        *ret = f;
        return 0;
    }
    if (kv->type != GGUF_VALUE_FLOAT64)
        return wrong_type(g, kv, "float32", err);
    memcpy(&d, g->map + kv->val_off, 8);
    *ret = (float)d;
    return 0;
}

int gguf_get_bool(const struct gguf *g, const char *key, bool *ret, struct rag_err *err)
{
    const struct kv *kv = lookup(g, key, err);

    if (!kv)
        return RAG_ENOTFOUND;
    if (kv->type != GGUF_VALUE_BOOL)
        return wrong_type(g, kv, "bool", err);
    *ret = g->map[kv->val_off] != 0;
    return 0;
}

int gguf_get_str(const struct gguf *g, const char *key, const char **ret, size_t *ret_len,
                 struct rag_err *err)
{
    const struct kv *kv = lookup(g, key, err);

    if (!kv)
        return RAG_ENOTFOUND;
    if (kv->type != GGUF_VALUE_STRING)
        return wrong_type(g, kv, "string", err);
    *ret = kv->str;
    if (ret_len)
        *ret_len = kv->str_len;
    return 0;
}

int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_value_type *ret_type,
                 uint64_t *ret_n, struct rag_err *err)
{
    const struct kv *kv = lookup(g, key, err);

    if (!kv)
        return RAG_ENOTFOUND;
    if (kv->type != GGUF_VALUE_ARRAY)
        return wrong_type(g, kv, "array", err);
    *ret_type = kv->elem;
    *ret_n = kv->n;
    return 0;
}

const char *gguf_arr_str(const struct gguf *g, int64_t key_idx, uint64_t i, size_t *ret_len)
{
    const struct kv *kv;
    uint64_t len;

    if (key_idx < 0 || (size_t)key_idx >= g->n_kv)
        return NULL;
    kv = &g->kv[key_idx];
    if (kv->type != GGUF_VALUE_ARRAY || kv->elem != GGUF_VALUE_STRING || i >= kv->n)
        return NULL;
    memcpy(&len, g->map + kv->str_off[i], 8);
    *ret_len = (size_t)len;
    return (const char *)g->map + kv->str_off[i] + 8;
}

const void *gguf_arr_data(const struct gguf *g, int64_t key_idx)
{
    const struct kv *kv;

    if (key_idx < 0 || (size_t)key_idx >= g->n_kv)
        return NULL;
    kv = &g->kv[key_idx];
    if (kv->type != GGUF_VALUE_ARRAY || !gguf_value_size(kv->elem))
        return NULL;
    return g->map + kv->val_off;
}

size_t gguf_n_tensors(const struct gguf *g)
{
    return g->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, size_t i)
{
    assert(i < g->n_tensors);
    return &g->tensor[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
    size_t lo = 0, hi = g->n_tensors;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->tensor[g->tensor_sorted[mid]].name, name);
        if (c == 0)
            return &g->tensor[g->tensor_sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
