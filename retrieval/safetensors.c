/*
 * retrieval/safetensors.c - map a .safetensors file and index its tensors.
 *
 * The header is parsed with the small JSON reader in json.c. Every tensor
 * entry is validated at open (dtype known or recorded as other, shape
 * product, offsets inside the data section and consistent with the size),
 * so later lookups never touch bytes outside the mapping.
 */
#include "retrieval/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retrieval/json.h"

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

static int map_file(struct retr_st *st, const char *path, struct rag_err *err)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return rag_errno(err, "open '%s'", path);
    if (fstat(fd, &sb) < 0) {
        rc = rag_errno(err, "stat '%s'", path);
    } else if (sb.st_size < 8) {
        rc = rag_errf(err, RAG_EFORMAT, "'%s': truncated safetensors file (%lld bytes)", path,
                      (long long)sb.st_size);
    } else {
        st->size = (size_t)sb.st_size;
        st->map = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (st->map == MAP_FAILED) {
            st->map = NULL;
            rc = rag_errno(err, "mmap '%s'", path);
        }
    }
    close(fd);
    return rc;
}

static enum retr_st_dtype dtype_of(const char *s, size_t *ret_size)
{
    static const struct {
        const char *name;
        size_t size;
    } other[] = { { "F64", 8 }, { "I64", 8 }, { "U64", 8 }, { "I32", 4 }, { "U32", 4 },
                  { "I16", 2 }, { "U16", 2 }, { "I8", 1 },  { "U8", 1 },  { "BOOL", 1 } };

    *ret_size = 4;
    if (!strcmp(s, "F32"))
        return RETR_ST_F32;
    *ret_size = 2;
    if (!strcmp(s, "F16"))
        return RETR_ST_F16;
    if (!strcmp(s, "BF16"))
        return RETR_ST_BF16;
    *ret_size = 0;
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        if (!strcmp(s, other[i].name))
            *ret_size = other[i].size;
    return RETR_ST_OTHER;
}

static int bad(const struct retr_st *st, const char *name, const char *why, struct rag_err *err)
{
    return rag_errf(err, RAG_EFORMAT, "'%s': tensor '%s': %s", st->path, name, why);
}

/* Shape of entry e into t; checks the element count does not overflow. */
static int read_shape(const struct retr_st *st, const struct retr_json *e, struct retr_st_tensor *t,
                      struct rag_err *err)
{
    const struct retr_json *shape = retr_json_get(e, "shape");
    uint64_t d;

    if (!shape || shape->type != RETR_JSON_ARRAY || shape->n > RETR_ST_MAX_DIMS)
        return bad(st, t->name, "missing or bad shape", err);
    t->n_dims = 0;
    t->n_elems = 1;
    for (const struct retr_json *c = shape->child; c; c = c->next) {
        if (retr_json_u64(c, &d) || (d && t->n_elems > SIZE_MAX / d))
            return bad(st, t->name, "bad shape", err);
        t->shape[t->n_dims++] = (size_t)d;
        t->n_elems *= (size_t)d;
    }
    return 0;
}

static int read_entry(struct retr_st *st, const struct retr_json *e, size_t data_start,
                      struct retr_st_tensor *t, struct rag_err *err)
{
    const struct retr_json *dt = retr_json_get(e, "dtype");
    const struct retr_json *off = retr_json_get(e, "data_offsets");
    uint64_t begin, end;
    size_t esize;
    int rc;

    t->name = e->key;
    if (e->type != RETR_JSON_OBJECT || !dt || dt->type != RETR_JSON_STRING)
        return bad(st, t->name, "missing dtype", err);
    t->dtype = dtype_of(dt->str, &esize);
    if (!esize)
        return bad(st, t->name, "unknown dtype", err);
    rc = read_shape(st, e, t, err);
    if (rc)
        return rc;
    if (!off || off->type != RETR_JSON_ARRAY || off->n != 2 || retr_json_u64(off->child, &begin) ||
        retr_json_u64(off->child->next, &end) || end < begin)
        return bad(st, t->name, "bad data_offsets", err);
    if (end > st->size - data_start)
        return bad(st, t->name, "data offsets past the end of the file", err);
    t->nbytes = (size_t)(end - begin);
    if (t->n_elems > SIZE_MAX / esize || t->nbytes != t->n_elems * esize)
        return bad(st, t->name, "data size does not match the shape", err);
    t->data = (const char *)st->map + data_start + begin;
    return 0;
}

static int parse_header(struct retr_st *st, struct rag_err *err)
{
    const unsigned char *p = st->map;
    struct retr_json *root;
    uint64_t n = 0;
    int rc;

    for (int i = 7; i >= 0; i--)
        n = n << 8 | p[i];
    if (n < 2 || n > ST_MAX_HEADER || n > st->size - 8)
        return rag_errf(err, RAG_EFORMAT, "'%s': bad header length %llu (file has %zu bytes)",
                        st->path, (unsigned long long)n, st->size);
    rc = retr_json_parse((const char *)p + 8, (size_t)n, st->path, &st->arena, &root, err);
    if (rc)
        return rc;
    if (root->type != RETR_JSON_OBJECT)
        return rag_errf(err, RAG_EFORMAT, "'%s': header is not a json object", st->path);
    st->tensor = xcalloc(root->n ? root->n : 1, sizeof(*st->tensor));
    for (const struct retr_json *e = root->child; e; e = e->next) {
        if (!strcmp(e->key, "__metadata__"))
            continue;
        rc = read_entry(st, e, 8 + (size_t)n, &st->tensor[st->n], err);
        if (rc)
            return rc;
        st->n++;
    }
    return 0;
}

int retr_st_open(struct retr_st *st, const char *path, struct rag_err *err)
{
    int rc;

    memset(st, 0, sizeof(*st));
    arena_init(&st->arena, 0);
    st->path = xstrdup(path);
    rc = map_file(st, path, err);
    if (!rc)
        rc = parse_header(st, err);
    return rc;
}

void retr_st_close(struct retr_st *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->size);
    free(st->tensor);
    free(st->path);
    arena_release(&st->arena);
    memset(st, 0, sizeof(*st));
}

const struct retr_st_tensor *retr_st_find(const struct retr_st *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->tensor[i].name, name))
            return &st->tensor[i];
    return NULL;
}

static float half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    float f;

    if (e == 0x1f) {
        bits = sign | 0x7f800000u | m << 13;
    } else if (e) {
        bits = sign | (e + 112) << 23 | m << 13;
    } else {
        f = (float)m * 0x1p-24f; /* subnormal or zero */
        return sign ? -f : f;
    }
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static void convert(const struct retr_st_tensor *t, float *out)
{
    const unsigned char *p = t->data;

    if (t->dtype == RETR_ST_F32) {
        memcpy(out, p, t->nbytes);
        return;
    }
    for (size_t i = 0; i < t->n_elems; i++) {
        uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
        uint32_t bits = (uint32_t)h << 16;

        if (t->dtype == RETR_ST_F16)
            out[i] = half_to_f32(h);
        else
            memcpy(&out[i], &bits, sizeof(bits));
    }
}

int retr_st_read_f32(const struct retr_st *st, const char *name, const size_t *shape, size_t n_dims,
                     float *out, struct rag_err *err)
{
    const struct retr_st_tensor *t = retr_st_find(st, name);
    bool same;

    if (!t)
        return rag_errf(err, RAG_EFORMAT, "'%s': missing tensor '%s'", st->path, name);
    same = t->n_dims == n_dims;
    for (size_t i = 0; same && i < n_dims; i++)
        same = t->shape[i] == shape[i];
    if (!same)
        return bad(st, name, "unexpected shape", err);
    if (t->dtype == RETR_ST_OTHER)
        return bad(st, name, "unsupported dtype (want F32, F16 or BF16)", err);
    convert(t, out);
    return 0;
}

void retr_st_fingerprint(const char *path, struct buf *out)
{
    unsigned char len8[8];
    uint64_t n = 0;
    long size;
    FILE *f = fopen(path, "rb");
    int i;

    if (!f)
        return;
    if (fread(len8, 1, 8, f) == 8) {
        for (i = 7; i >= 0; i--)
            n = n << 8 | len8[i];
        buf_append(out, len8, 8);
    }
    if (n > 0 && n <= (8u << 20)) {
        char *h = xmalloc(n);

        buf_append(out, h, fread(h, 1, n, f));
        free(h);
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    buf_appendf(out, "size=%ld", size);
    fclose(f);
}
