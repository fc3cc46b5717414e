/*
 * tests/test_generation.c - the generation suite: GGUF reader on good,
 * truncated and corrupt files (written here by a small GGUF writer),
 * dequantization against hand-made blocks and against the gguf Python
 * package (tests/golden/generation/dequant_*.txt), SIMD kernels against the
 * scalar reference, a tiny random-weight model written by the suite
 * (llama and qwen2) against a naive float forward pass written here,
 * prefill/decode consistency, the sampler's statistics with a fixed seed,
 * and parity of the default model with HF transformers
 * (tests/golden/generation/hf_*.txt, from scripts/golden/make_generation_golden.py).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generation/generation.h"
#include "generation/gguf.h"
#include "generation/quant.h"
#include "tests/testutil.h"

/* ---- a small GGUF writer ---- */

struct gw {
    struct buf kv, ti, data;
    uint64_t n_kv, n_t;
    uint32_t align;
};

static void put(struct buf *b, const void *p, size_t n)
{
    buf_append(b, p, n);
}

static void put_u32(struct buf *b, uint32_t v)
{
    put(b, &v, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put(b, &v, 8);
}

static void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void gw_key(struct gw *g, const char *key, uint32_t type)
{
    put_str(&g->kv, key);
    put_u32(&g->kv, type);
    g->n_kv++;
}

static void gw_u32(struct gw *g, const char *key, uint32_t v)
{
    gw_key(g, key, GGUF_VALUE_UINT32);
    put_u32(&g->kv, v);
}

static void gw_f32(struct gw *g, const char *key, float v)
{
    gw_key(g, key, GGUF_VALUE_FLOAT32);
    put(&g->kv, &v, 4);
}

static void gw_str(struct gw *g, const char *key, const char *v)
{
    gw_key(g, key, GGUF_VALUE_STRING);
    put_str(&g->kv, v);
}

/* Scalar of any type from raw little-endian bytes. */
static void gw_raw(struct gw *g, const char *key, uint32_t type, const void *v, size_t n)
{
    gw_key(g, key, type);
    put(&g->kv, v, n);
}

static void gw_tensor(struct gw *g, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data, size_t nbytes)
{
    static const char zero[64];

    put_str(&g->ti, name);
    put_u32(&g->ti, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        put_u64(&g->ti, ne[d]);
    put_u32(&g->ti, type);
    put_u64(&g->ti, g->data.len);
    put(&g->data, data, nbytes);
    put(&g->data, zero, (g->align - g->data.len % g->align) % g->align);
    g->n_t++;
}

static void gw_finish(struct gw *g, struct buf *out, uint32_t version)
{
    static const char zero[64];

    put(out, "GGUF", 4);
    put_u32(out, version);
    put_u64(out, g->n_t);
    put_u64(out, g->n_kv);
    put(out, g->kv.data, g->kv.len);
    put(out, g->ti.data, g->ti.len);
    put(out, zero, (g->align - out->len % g->align) % g->align);
    put(out, g->data.data, g->data.len);
    buf_release(&g->kv);
    buf_release(&g->ti);
    buf_release(&g->data);
}

/* ---- GGUF reader ---- */

static char tmp_path[4200];

static const char *write_tmp(const char *name, const void *p, size_t n)
{
    snprintf(tmp_path, sizeof(tmp_path), "%s/%s", test_tmpdir(), name);
    test_write_file(tmp_path, p, n);
    return tmp_path;
}

/* A file with every metadata type, nested arrays and three tensors. */
static void good_file(struct buf *out)
{
    struct gw g = { .align = 32 };
    uint8_t u8 = 200, b = 1;
    int8_t i8 = -5;
    int16_t i16 = -300;
    uint16_t u16 = 60000;
    int32_t i32 = -70000;
    int64_t i64 = -5000000000LL, big = 5000000000LL;
    double f64 = 0.25;
    float f[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint16_t h[32];
    uint64_t ne2[2] = { 4, 2 }, ne1[1] = { 32 }, neq[2] = { 32, 1 };
    uint8_t q8[34] = { 0 };

    gw_u32(&g, "general.alignment", 32);
    gw_str(&g, "general.architecture", "test");
    gw_raw(&g, "t.u8", GGUF_VALUE_UINT8, &u8, 1);
    gw_raw(&g, "t.i8", GGUF_VALUE_INT8, &i8, 1);
    gw_raw(&g, "t.u16", GGUF_VALUE_UINT16, &u16, 2);
    gw_raw(&g, "t.i16", GGUF_VALUE_INT16, &i16, 2);
    gw_raw(&g, "t.i32", GGUF_VALUE_INT32, &i32, 4);
    gw_raw(&g, "t.i64", GGUF_VALUE_INT64, &i64, 8);
    gw_raw(&g, "t.u64big", GGUF_VALUE_UINT64, &big, 8);
    gw_raw(&g, "t.f64", GGUF_VALUE_FLOAT64, &f64, 8);
    gw_raw(&g, "t.bool", GGUF_VALUE_BOOL, &b, 1);
    gw_f32(&g, "t.f32", 1.5f);
    gw_key(&g, "t.strs", GGUF_VALUE_ARRAY);
    put_u32(&g.kv, GGUF_VALUE_STRING);
    put_u64(&g.kv, 3);
    put_str(&g.kv, "alpha");
    put_str(&g.kv, "");
    put_str(&g.kv, "g\xc3\xa9");
    gw_key(&g, "t.floats", GGUF_VALUE_ARRAY);
    put_u32(&g.kv, GGUF_VALUE_FLOAT32);
    put_u64(&g.kv, 3);
    put(&g.kv, f, 12);
    gw_key(&g, "t.nested", GGUF_VALUE_ARRAY); /* [[1, 2], [3]] of u8 */
    put_u32(&g.kv, GGUF_VALUE_ARRAY);
    put_u64(&g.kv, 2);
    put_u32(&g.kv, GGUF_VALUE_UINT8);
    put_u64(&g.kv, 2);
    put(&g.kv, "\x01\x02", 2);
    put_u32(&g.kv, GGUF_VALUE_UINT8);
    put_u64(&g.kv, 1);
    put(&g.kv, "\x03", 1);
    for (int i = 0; i < 32; i++)
        h[i] = quant_f32_to_f16((float)i);
    gw_tensor(&g, "w.f32", GGUF_TENSOR_F32, 2, ne2, f, 32);
    gw_tensor(&g, "w.f16", GGUF_TENSOR_F16, 1, ne1, h, 64);
    q8[0] = 0x00, q8[1] = 0x3c; /* d = 1.0 */
    for (int i = 0; i < 32; i++)
        q8[2 + i] = (uint8_t)(int8_t)(i - 16);
    gw_tensor(&g, "w.q8", GGUF_TENSOR_Q8_0, 2, neq, q8, 34);
    gw_finish(&g, out, 3);
}

START_TEST(test_gguf_good)
{
    struct buf b = BUF_INIT;
    struct gguf *g;
    struct rag_err err = { 0 };
    uint32_t u32;
    int32_t i32;
    uint64_t u64, n;
    float f;
    bool bo;
    const char *s;
    size_t len;
    enum gguf_value_type et;

    good_file(&b);
    ck_assert_int_eq(gguf_open(&g, write_tmp("good.gguf", b.data, b.len), &err), 0);
    ck_assert_uint_eq(gguf_version(g), 3);
    ck_assert_uint_eq(gguf_n_keys(g), 15);
    ck_assert_int_eq(gguf_get_u32(g, "t.u8", &u32, &err), 0);
    ck_assert_uint_eq(u32, 200);
    ck_assert_int_eq(gguf_get_u32(g, "t.u16", &u32, &err), 0);
    ck_assert_uint_eq(u32, 60000);
    ck_assert_int_eq(gguf_get_i32(g, "t.i8", &i32, &err), 0);
    ck_assert_int_eq(i32, -5);
    ck_assert_int_eq(gguf_get_i32(g, "t.i16", &i32, &err), 0);
    ck_assert_int_eq(i32, -300);
    ck_assert_int_eq(gguf_get_i32(g, "t.i32", &i32, &err), 0);
    ck_assert_int_eq(i32, -70000);
    ck_assert_int_eq(gguf_get_u64(g, "t.u64big", &u64, &err), 0);
    ck_assert_uint_eq(u64, 5000000000ULL);
    ck_assert_int_eq(gguf_get_u32(g, "t.u64big", &u32, &err), RAG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "good.gguf': "));
    ck_assert_ptr_nonnull(strstr(err.msg, "key 't.u64big': value 5000000000 out of range"));
    ck_assert_int_eq(gguf_get_u32(g, "t.i8", &u32, &err), RAG_EFORMAT);
    ck_assert_int_eq(gguf_get_i32(g, "t.i64", &i32, &err), RAG_EFORMAT);
    ck_assert_int_eq(gguf_get_f32(g, "t.f32", &f, &err), 0);
    ck_assert_float_eq(f, 1.5f);
    ck_assert_int_eq(gguf_get_f32(g, "t.f64", &f, &err), 0);
    ck_assert_float_eq(f, 0.25f);
    ck_assert_int_eq(gguf_get_bool(g, "t.bool", &bo, &err), 0);
    ck_assert(bo);
    ck_assert_int_eq(gguf_get_str(g, "general.architecture", &s, &len, &err), 0);
    ck_assert_str_eq(s, "test");
    ck_assert_int_eq(gguf_get_str(g, "t.u8", &s, &len, &err), RAG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "key 't.u8' has type uint8, expected string"));
    ck_assert_int_eq(gguf_get_u32(g, "t.missing", &u32, &err), RAG_ENOTFOUND);
    ck_assert_int_eq(gguf_find_key(g, "t.missing"), -1);
    ck_assert_int_eq(gguf_get_arr(g, "t.strs", &et, &n, &err), 0);
    ck_assert_int_eq(et, GGUF_VALUE_STRING);
    ck_assert_uint_eq(n, 3);
    s = gguf_arr_str(g, gguf_find_key(g, "t.strs"), 2, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(s, "g\xc3\xa9", 3);
    ck_assert_ptr_nonnull(gguf_arr_str(g, gguf_find_key(g, "t.strs"), 1, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(gguf_arr_str(g, gguf_find_key(g, "t.strs"), 3, &len));
    ck_assert_ptr_null(gguf_arr_data(g, gguf_find_key(g, "t.strs")));
    memcpy(&f, (const char *)gguf_arr_data(g, gguf_find_key(g, "t.floats")) + 8, 4);
    ck_assert_float_eq(f, 3.0f);
    ck_assert_int_eq(gguf_get_arr(g, "t.nested", &et, &n, &err), 0);
    ck_assert_int_eq(et, GGUF_VALUE_ARRAY);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(gguf_n_tensors(g), 3);
    const struct gguf_tensor *t = gguf_find_tensor(g, "w.f32");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->ne[0], 4);
    ck_assert_uint_eq(t->ne[1], 2);
    ck_assert_uint_eq(t->nbytes, 32);
    ck_assert_mem_eq(t->data, (float[8]){ 1, 2, 3, 4, 5, 6, 7, 8 }, 32);
    t = gguf_find_tensor(g, "w.q8");
    ck_assert_int_eq(t->type, GGUF_TENSOR_Q8_0);
    ck_assert_uint_eq((uintptr_t)t->data % 32, 0);
    ck_assert_ptr_null(gguf_find_tensor(g, "w.none"));
    gguf_close(g);
    buf_release(&b);
}
END_TEST

/* Open bytes as a file; expects failure with code, a one-line message naming the file
 * and containing want. */
static void expect_bad(const void *p, size_t n, int code, const char *want)
{
    struct gguf *g = NULL;
    struct rag_err err = { 0 };
    const char *path = write_tmp("bad.gguf", p, n);
    char prefix[4300];

    ck_assert_int_eq(gguf_open(&g, path, &err), code);
    ck_assert_ptr_null(g);
    snprintf(prefix, sizeof(prefix), "'%s': ", path);
    ck_assert_msg(!strncmp(err.msg, prefix, strlen(prefix)), "message '%s'", err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_msg(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
}

static size_t find(const struct buf *b, const char *needle, size_t from)
{
    const char *p = memmem(b->data + from, b->len - from, needle, strlen(needle));
    ck_assert_ptr_nonnull(p);
    return (size_t)(p - b->data);
}

static void patch32(struct buf *b, size_t off, uint32_t v)
{
    memcpy(b->data + off, &v, 4);
}

START_TEST(test_gguf_truncated)
{
    struct buf b = BUF_INIT;
    size_t ti, cuts[12];
    int n = 0;

    good_file(&b);
    ti = find(&b, "w.f32", find(&b, "t.nested", 0)) - 8;
    cuts[n++] = 1, cuts[n++] = 3, cuts[n++] = 7, cuts[n++] = 20, cuts[n++] = 30;
    cuts[n++] = find(&b, "t.strs", 0) + 20, cuts[n++] = find(&b, "t.nested", 0) + 30;
    cuts[n++] = ti + 3, cuts[n++] = ti + 20;
    cuts[n++] = find(&b, "w.q8", ti) + 10;
    for (int i = 0; i < n; i++)
        expect_bad(b.data, cuts[i], RAG_EFORMAT, "truncated at offset");
    expect_bad(b.data, b.len - 1, RAG_EFORMAT, "extends past the end of the file");
    expect_bad(b.data, b.len - 40, RAG_EFORMAT, "tensor 'w.q8': data at offset");
    buf_release(&b);
}
END_TEST

START_TEST(test_gguf_corrupt)
{
    struct buf b = BUF_INIT, c = BUF_INIT;
    size_t ti, q8;

    good_file(&b);
    ti = find(&b, "w.f32", find(&b, "t.nested", 0));
    q8 = find(&b, "w.q8", ti) + 4; /* n_dims, ne[2], type, offset follow */
#define MUTATE(stmt, code, want)                                                                  \
    do {                                                                                           \
        buf_reset(&c);                                                                             \
        buf_append(&c, b.data, b.len);                                                             \
        stmt;                                                                                      \
        expect_bad(c.data, c.len, code, want);                                                     \
    } while (0)
    MUTATE(c.data[0] = 'X', RAG_EFORMAT, "not a GGUF file (bad magic)");
    MUTATE(patch32(&c, 4, 1), RAG_EFORMAT, "unsupported GGUF version 1");
    MUTATE(patch32(&c, 4, 4), RAG_EFORMAT, "unsupported GGUF version 4");
    MUTATE(patch32(&c, 4, 0x03000000), RAG_EFORMAT, "big-endian GGUF files are not supported");
    MUTATE(patch32(&c, 16, 0x7fffffff), RAG_EFORMAT, "keys and 3 tensors exceed the file");
    MUTATE(patch32(&c, find(&b, "t.u8", 0) + 4, 13), RAG_EFORMAT,
           "unknown value type 13 at offset");
    MUTATE(patch32(&c, find(&b, "t.floats", 0) + 12, 77), RAG_EFORMAT,
           "unknown array element type 77");
    MUTATE(c.data[find(&b, "t.bool", 0) + 10] = 2, RAG_EFORMAT, "bool value 2");
    MUTATE(patch32(&c, find(&b, "general.alignment", 0) + 21, 3), RAG_EFORMAT,
           "general.alignment 3 is not a power of two");
    MUTATE(c.data[find(&b, "t.i8", 0) + 2] = 'u', RAG_EFORMAT, "duplicate key 't.u8'");
    MUTATE(memcpy(c.data + find(&b, "w.f16", ti), "w.f32", 5), RAG_EFORMAT,
           "duplicate tensor 'w.f32'");
    MUTATE(patch32(&c, q8, 5), RAG_EFORMAT, "5 dimensions at offset");
    MUTATE(patch32(&c, q8 + 20, 9), RAG_EFORMAT, "unsupported tensor type 9 at offset");
    MUTATE(patch32(&c, q8 + 20, 99), RAG_EFORMAT, "unsupported tensor type 99");
    MUTATE(patch32(&c, q8 + 4, 33), RAG_EFORMAT,
           "tensor 'w.q8': row of 33 elements is not a multiple of the q8_0 block (32)");
    MUTATE(c.data[q8 + 24] += 4, RAG_EFORMAT, "is not aligned to 32");
    MUTATE(c.data[q8 + 28] = 1, RAG_EFORMAT, "extends past the end of the file");
#undef MUTATE
    expect_bad("", 0, RAG_EFORMAT, "empty file");
    buf_release(&b);
    buf_release(&c);
}
END_TEST

START_TEST(test_gguf_nesting_and_missing)
{
    struct gw g = { .align = 32 };
    struct buf b = BUF_INIT;
    struct gguf *gg;
    struct rag_err err = { 0 };

    gw_key(&g, "deep", GGUF_VALUE_ARRAY);
    for (int i = 0; i < 9; i++) {
        put_u32(&g.kv, GGUF_VALUE_ARRAY);
        put_u64(&g.kv, 1);
    }
    put_u32(&g.kv, GGUF_VALUE_UINT8);
    put_u64(&g.kv, 1);
    put(&g.kv, "x", 1);
    gw_finish(&g, &b, 3);
    expect_bad(b.data, b.len, RAG_EFORMAT, "arrays nested deeper than 8");
    ck_assert_int_eq(gguf_open(&gg, "/nonexistent/x.gguf", &err), RAG_EIO);
    ck_assert_str_eq(err.msg, "open '/nonexistent/x.gguf': No such file or directory");
    buf_release(&b);
}
END_TEST

/* $RAG_MODELS/smollm2-135m-instruct-q4_1.gguf, else ~/.cache/rag/models/...; NULL if absent. */
static const char *model_path(void)
{
    static char path[4096];
    const char *dir = getenv("RAG_MODELS"), *home = getenv("HOME");

    if (dir && *dir)
        snprintf(path, sizeof(path), "%s/smollm2-135m-instruct-q4_1.gguf", dir);
    else
        snprintf(path, sizeof(path), "%s/.cache/rag/models/smollm2-135m-instruct-q4_1.gguf",
                 home ? home : "");
    return file_exists(path) ? path : NULL;
}

START_TEST(test_gguf_real_model)
{
    const char *path = model_path();
    struct gguf *g;
    struct rag_err err = { 0 };
    enum gguf_value_type et;
    uint64_t n;
    size_t len;
    const char *s;
    int32_t i32;

    if (!path)
        return; /* no model installed: covered by the synthetic files above */
    ck_assert_int_eq(gguf_open(&g, path, &err), 0);
    ck_assert_uint_eq(gguf_n_tensors(g), 272);
    ck_assert_int_eq(gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &err), 0);
    ck_assert_uint_eq(n, 49152);
    s = gguf_arr_str(g, gguf_find_key(g, "tokenizer.ggml.tokens"), 0, &len);
    ck_assert_uint_eq(len, 13);
    ck_assert_mem_eq(s, "<|endoftext|>", 13);
    ck_assert_int_eq(gguf_get_i32(g, "tokenizer.ggml.eos_token_id", &i32, &err), 0);
    ck_assert_int_eq(i32, 2);
    ck_assert_int_eq(gguf_find_tensor(g, "token_embd.weight")->type, GGUF_TENSOR_Q8_0);
    ck_assert_int_eq(gguf_find_tensor(g, "blk.29.ffn_down.weight")->type, GGUF_TENSOR_Q4_1);
    ck_assert_ptr_null(gguf_find_tensor(g, "output.weight"));
    gguf_close(g);
}
END_TEST
