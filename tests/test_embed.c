/*
 * tests/test_embed.c - the embedder against sentence-transformers: token ids
 * and vectors from tests/golden/embed (scripts/golden/make_embed_golden.py),
 * the model-file errors, and the no-silent-truncation rule.
 *
 * The real model is read from $RAG_MODELS/all-minilm-l6-v2 (default
 * $HOME/.cache/rag/models), installed by the set-up. Broken model
 * directories are built in a scratch directory from a tiny model that the
 * test writes itself. The device choice is tested here, where CI runs
 * without a GPU: device gpu without one is a clear error; the parity tests
 * pin the CPU (tests/test_embedgpu.c compares the GPU against it).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu/gpu.h"
#include "retrieval/retrieval.h"
#include "tests/testutil.h"

/* ---- golden files ---- */

struct golden_item {
    unsigned flags; /* bit 0: the reference truncated the text */
    const char *text;
    size_t len, n_full, n_ids;
    int32_t *ids;
    float *vec;
};

struct golden {
    struct buf data;
    struct golden_item *item;
    size_t n, dim, max_seq;
};

static uint32_t rd_u32(const struct golden *g, size_t *pos)
{
    uint32_t v;

    ck_assert_msg(*pos + 4 <= g->data.len, "golden file truncated at %zu", *pos);
    memcpy(&v, g->data.data + *pos, 4);
    *pos += 4;
    return v;
}

static void *rd_copy(const struct golden *g, size_t *pos, size_t n)
{
    void *p = xmalloc(n ? n : 1);

    ck_assert_msg(*pos + n <= g->data.len, "golden file truncated at %zu", *pos);
    memcpy(p, g->data.data + *pos, n);
    *pos += n;
    return p;
}

static void golden_load(struct golden *g, const char *rel)
{
    char path[4096];
    struct rag_err err;
    size_t pos = 8;

    memset(g, 0, sizeof(*g));
    test_source_path(rel, path, sizeof(path));
    ck_assert_msg(file_read(path, 0, &g->data, &err) == 0, "%s", err.msg);
    ck_assert(g->data.len > 20 && !memcmp(g->data.data, "RAGEMB01", 8));
    g->n = rd_u32(g, &pos);
    g->dim = rd_u32(g, &pos);
    g->max_seq = rd_u32(g, &pos);
    g->item = xcalloc(g->n, sizeof(*g->item));
    for (size_t i = 0; i < g->n; i++) {
        struct golden_item *it = &g->item[i];

        it->flags = rd_u32(g, &pos);
        it->len = rd_u32(g, &pos);
        it->text = rd_copy(g, &pos, it->len);
        it->n_full = rd_u32(g, &pos);
        it->n_ids = rd_u32(g, &pos);
        it->ids = rd_copy(g, &pos, it->n_ids * 4);
        it->vec = rd_copy(g, &pos, g->dim * 4);
    }
    ck_assert_uint_eq(pos, g->data.len);
}

static void golden_release(struct golden *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free((void *)g->item[i].text);
        free(g->item[i].ids);
        free(g->item[i].vec);
    }
    free(g->item);
    buf_release(&g->data);
}

static const char *model_dir(void)
{
    static char path[4096];

    ck_assert_msg(test_model_path("all-minilm-l6-v2", path, sizeof(path)) != NULL,
                  "model directory '%s' missing (run the set-up)", path);
    return path;
}

static struct retr_embedder *open_model(const char *dir)
{
    struct retr_embedder_opts opts = { .n_threads = 2,
                                       .batch_tokens = 2048,
                                       .device = RETR_DEVICE_CPU };
    struct retr_embedder *e = NULL;
    struct rag_err err;

    ck_assert_msg(retr_embedder_open(&e, dir, &opts, &err) == 0, "%s", err.msg);
    return e;
}

/* Token ids equal the reference for every golden text; counts equal the untruncated count. */
static void check_tokens(struct retr_embedder *e, const struct golden *g, unsigned flags)
{
    int32_t ids[1024];

    for (size_t i = 0; i < g->n; i++) {
        const struct golden_item *it = &g->item[i];
        unsigned f = flags | (it->flags & 1 ? RETR_EMBED_TRUNCATE : 0);
        struct rag_err err;
        size_t n;

        ck_assert_msg(retr_tokenize(e, it->text, it->len, f, ids, NULL, 1024, &n, &err) == 0, "%s",
                      err.msg);
        ck_assert_msg(n == it->n_ids, "text %zu: %zu ids, reference %zu", i, n, it->n_ids);
        for (size_t k = 0; k < n; k++)
            ck_assert_msg(ids[k] == it->ids[k],
                          "text %zu token %zu: %d ('%s'), reference %d ('%s')", i, k, ids[k],
                          retr_token_text(e, ids[k]), it->ids[k], retr_token_text(e, it->ids[k]));
        if (!flags)
            ck_assert_msg(retr_count_tokens(e, it->text, it->len) == it->n_full,
                          "text %zu: count %zu, reference %zu", i,
                          retr_count_tokens(e, it->text, it->len), it->n_full);
    }
}

/* Embed the golden texts (truncated ones with RETR_EMBED_TRUNCATE) and compare. */
static void check_vectors(struct retr_embedder *e, const struct golden *g, unsigned flags)
{
    const char **texts = xcalloc(g->n, sizeof(*texts));
    size_t *lens = xcalloc(g->n, sizeof(*lens)), dim = g->dim;
    float *out = xcalloc(g->n * dim, sizeof(*out));
    double min_cos = 1, max_abs = 0;
    struct rag_err err;

    for (int pass = 0; pass < 2; pass++) {
        size_t m = 0, where[512];

        for (size_t i = 0; i < g->n && m < 512; i++)
            if ((g->item[i].flags & 1) == (unsigned)pass) {
                where[m] = i;
                texts[m] = g->item[i].text;
                lens[m++] = g->item[i].len;
            }
        ck_assert_msg(
            retr_embed(e, texts, lens, m, flags | (pass ? RETR_EMBED_TRUNCATE : 0), out, &err) == 0,
            "%s", err.msg);
        for (size_t k = 0; k < m; k++) {
            const float *ref = g->item[where[k]].vec, *v = out + k * dim;
            double c = test_cosine(v, ref, dim);

            ck_assert_msg(c >= 0.999, "text %zu: cosine %.6f", where[k], c);
            min_cos = c < min_cos ? c : min_cos;
            for (size_t d = 0; d < dim; d++)
                max_abs = fmax(max_abs, fabs((double)v[d] - ref[d]));
        }
    }
    fprintf(stderr, "parity: %zu texts, min cosine %.7f, max abs error %.3g\n", g->n, min_cos,
            max_abs);
    ck_assert(max_abs < 1e-3);
    free(texts);
    free(lens);
    free(out);
}

START_TEST(test_golden_tokens)
{
    struct golden g;
    struct retr_embedder *e = open_model(model_dir());

    golden_load(&g, "tests/golden/embed/minilm.bin");
    ck_assert_uint_ge(g.n, 300);
    check_tokens(e, &g, 0);
    golden_release(&g);
    retr_embedder_close(e);
}
END_TEST

START_TEST(test_golden_vectors)
{
    struct golden g;
    struct retr_embedder *e = open_model(model_dir());
    const struct retr_embedder_info *info = retr_embedder_info(e);

    golden_load(&g, "tests/golden/embed/minilm.bin");
    ck_assert_uint_eq(info->dim, g.dim);
    ck_assert_uint_eq(info->max_seq, g.max_seq);
    check_vectors(e, &g, 0);
    golden_release(&g);
    retr_embedder_close(e);
}
END_TEST

/* Opened without weights: the same counts and fingerprint, but no embeddings. */
START_TEST(test_tokenizer_only)
{
    struct retr_embedder_opts opts = { .tokenizer_only = true };
    struct retr_embedder *full = open_model(model_dir()), *tok = NULL;
    static const char text[] = "Tokenizing needs only the vocabulary: Übergrößenträger 42!";
    const char *texts[1] = { text };
    struct rag_err err = { 0 };
    float v[384];

    ck_assert_int_eq(retr_embedder_open(&tok, model_dir(), &opts, &err), 0);
    ck_assert_uint_eq(retr_count_tokens(tok, text, strlen(text)),
                      retr_count_tokens(full, text, strlen(text)));
    ck_assert_str_eq(retr_embedder_info(tok)->fingerprint, retr_embedder_info(full)->fingerprint);
    ck_assert_uint_eq(retr_embedder_info(tok)->max_tokens, retr_embedder_info(full)->max_tokens);
    ck_assert_int_eq(retr_embed(tok, texts, NULL, 1, 0, v, &err), RAG_EINVAL);
    ck_assert_msg(strstr(err.msg, "tokenizing only") != NULL, "%s", err.msg);
    retr_embedder_close(tok);
    retr_embedder_close(full);
}
END_TEST

START_TEST(test_info)
{
    struct retr_embedder *e = open_model(model_dir());
    const struct retr_embedder_info *info = retr_embedder_info(e);

    ck_assert_str_eq(info->name, "all-minilm-l6-v2");
    ck_assert_uint_eq(info->dim, 384);
    ck_assert_uint_eq(info->n_layers, 6);
    ck_assert_uint_eq(info->n_heads, 12);
    ck_assert_uint_eq(info->vocab, 30522);
    ck_assert_uint_eq(info->max_seq, 256);
    ck_assert_uint_eq(info->max_tokens, 254);
    ck_assert_int_eq(info->pooling, RETR_POOLING_MEAN);
    ck_assert(info->lowercase);
    ck_assert_str_eq(info->query_prefix, "");
    retr_embedder_close(e);
}
END_TEST

START_TEST(test_spans)
{
    struct retr_embedder *e = open_model(model_dir());
    const char *text = "Hello, wörld!";
    static const char *want[] = { "[CLS]", "hello", ",", "world", "!", "[SEP]" };
    static const size_t start[] = { 0, 0, 5, 7, 13, 0 }, end[] = { 0, 5, 6, 13, 14, 0 };
    struct retr_span spans[8];
    int32_t ids[8];
    struct rag_err err;
    size_t n;

    ck_assert_int_eq(retr_tokenize(e, text, strlen(text), 0, ids, spans, 8, &n, &err), 0);
    ck_assert_uint_eq(n, 6);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(retr_token_text(e, ids[i]), want[i]);
        ck_assert_uint_eq(spans[i].start, start[i]);
        ck_assert_uint_eq(spans[i].end, end[i]);
    }
    /* cap smaller than the input: the full length is still reported */
    ck_assert_int_eq(retr_tokenize(e, text, strlen(text), 0, ids, NULL, 2, &n, &err), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_str_eq(retr_token_text(e, ids[1]), "hello");
    ck_assert_ptr_null(retr_token_text(e, 30522));
    ck_assert_ptr_null(retr_token_text(e, -1));
    retr_embedder_close(e);
}
END_TEST

/* A text of n_words distinct words: "w0 w1 ..." gives well over n_words pieces. */
static char *long_text(size_t n_words)
{
    struct buf b = BUF_INIT;

    for (size_t i = 0; i < n_words; i++)
        buf_appendf(&b, "word%zu ", i);
    return buf_detach(&b, NULL);
}

START_TEST(test_no_silent_truncation)
{
    struct retr_embedder *e = open_model(model_dir());
    char *text = long_text(300);
    const char *texts[3] = { "short one", text, "another" };
    float *out = xcalloc(3 * 384, sizeof(float)), one[384];
    size_t n_tok = retr_count_tokens(e, text, strlen(text)), n;
    char want[160];
    struct rag_err err;

    ck_assert_uint_gt(n_tok, 254);
    ck_assert_int_eq(retr_embed(e, texts, NULL, 3, 0, out, &err), RAG_EINVAL);
    snprintf(want, sizeof(want),
             "text 1 has %zu tokens, more than the limit of 254 of model 'all-minilm-l6-v2'",
             n_tok);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(retr_tokenize(e, text, strlen(text), 0, NULL, NULL, 0, &n, &err), RAG_EINVAL);
    /* explicit truncation: the first 254 pieces, same as embedding them alone */
    ck_assert_int_eq(retr_embed(e, texts, NULL, 3, RETR_EMBED_TRUNCATE, out, &err), 0);
    ck_assert_int_eq(
        retr_tokenize(e, text, strlen(text), RETR_EMBED_TRUNCATE, NULL, NULL, 0, &n, &err), 0);
    ck_assert_uint_eq(n, 256);
    ck_assert_int_eq(retr_embed(e, texts, NULL, 1, 0, one, &err), 0);
    ck_assert_float_eq_tol(test_cosine(one, out, 384), 1.0, 1e-6);
    free(text);
    free(out);
    retr_embedder_close(e);
}
END_TEST

/* The same text alone, in a large batch, and in batches split by a small budget agree. */
START_TEST(test_batch_invariance)
{
    struct retr_embedder_opts opts = { .n_threads = 1,
                                       .batch_tokens = 64,
                                       .device = RETR_DEVICE_CPU };
    struct retr_embedder *e = open_model(model_dir()), *small = NULL;
    const char *texts[] = { "a", "The quick brown fox jumps over the lazy dog.", "",
                            "retrieval augmented generation", "中文字符测试 and émoji 😀" };
    float all[5 * 384], alone[384], split[5 * 384];
    struct rag_err err;

    ck_assert_int_eq(retr_embedder_open(&small, model_dir(), &opts, &err), 0);
    ck_assert_int_eq(retr_embed(e, texts, NULL, 5, 0, all, &err), 0);
    ck_assert_int_eq(retr_embed(small, texts, NULL, 5, 0, split, &err), 0);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(retr_embed(e, &texts[i], NULL, 1, 0, alone, &err), 0);
        for (size_t d = 0; d < 384; d++) {
            ck_assert_float_eq_tol(alone[d], all[i * 384 + d], 1e-5);
            ck_assert_float_eq_tol(split[i * 384 + d], all[i * 384 + d], 1e-5);
        }
    }
    ck_assert_int_eq(retr_embed(e, texts, NULL, 0, 0, all, &err), 0);
    retr_embedder_close(small);
    retr_embedder_close(e);
}
END_TEST

/* ---- model directories built by the test ---- */

static void write_str(const char *dir, const char *file, const char *text)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    test_write_file(path, text, strlen(text));
}

static void link_real(const char *dir, const char *file)
{
    char from[4200], to[4096];

    snprintf(from, sizeof(from), "%s/%s", model_dir(), file);
    snprintf(to, sizeof(to), "%s/%s", dir, file);
    ck_assert_int_eq(symlink(from, to), 0);
}

/* A directory around the real MiniLM weights with CLS pooling, named like BGE. */
static char *cls_dir(const char *name, const char *st_config)
{
    static const char *files[] = { "config.json", "model.safetensors", "vocab.txt",
                                   "tokenizer_config.json", "sentence_bert_config.json" };
    struct buf dir = BUF_INIT;

    buf_appendf(&dir, "%s/%s", test_tmpdir(), name);
    ck_assert_int_eq(file_mkdirs(buf_cstr(&dir), NULL), 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        link_real(buf_cstr(&dir), files[i]);
    buf_appends(&dir, "/1_Pooling");
    ck_assert_int_eq(file_mkdirs(buf_cstr(&dir), NULL), 0);
    write_str(buf_cstr(&dir), "config.json",
              "{\"word_embedding_dimension\": 384, \"pooling_mode_cls_token\": true,"
              " \"pooling_mode_mean_tokens\": false}");
    dir.len -= strlen("/1_Pooling");
    dir.data[dir.len] = '\0';
    if (st_config)
        write_str(buf_cstr(&dir), "config_sentence_transformers.json", st_config);
    return buf_detach(&dir, NULL);
}

START_TEST(test_cls_query_golden)
{
    char *dir = cls_dir("bge-small-en-v1.5", NULL);
    struct retr_embedder *e = open_model(dir);
    const struct retr_embedder_info *info = retr_embedder_info(e);
    struct golden g;

    ck_assert_int_eq(info->pooling, RETR_POOLING_CLS);
    ck_assert_str_eq(info->query_prefix,
                     "Represent this sentence for searching relevant passages: ");
    golden_load(&g, "tests/golden/embed/minilm_cls_query.bin");
    check_tokens(e, &g, RETR_EMBED_QUERY);
    check_vectors(e, &g, RETR_EMBED_QUERY);
    golden_release(&g);
    retr_embedder_close(e);
    free(dir);
}
END_TEST

START_TEST(test_prompt_from_config)
{
    char *dir = cls_dir("plain", "{\"prompts\": {\"query\": \"query: \", \"passage\": \"\"}}");
    struct retr_embedder *e = open_model(dir);
    int32_t ids[16];
    size_t n;
    struct rag_err err;

    ck_assert_str_eq(retr_embedder_info(e)->query_prefix, "query: ");
    ck_assert_int_eq(retr_tokenize(e, "cats", 4, RETR_EMBED_QUERY, ids, NULL, 16, &n, &err), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_str_eq(retr_token_text(e, ids[1]), "query");
    ck_assert_str_eq(retr_token_text(e, ids[2]), ":");
    ck_assert_str_eq(retr_token_text(e, ids[3]), "cats");
    ck_assert_uint_eq(retr_count_tokens(e, "cats", 4), 1); /* counts never include the prefix */
    retr_embedder_close(e);
    free(dir);
}
END_TEST

/*
 * A tiny BERT: dim 8, 2 heads, 1 layer, FFN 16, 12-token vocabulary, 16
 * positions. Weights are k/64 for small k, exact in F16 and BF16.
 */
#define TINY_VOCAB "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n##s\n,\n!\na\nb\n##c\n"
#define TINY_CONFIG                                                                 \
 "{\"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"       \
 " \"intermediate_size\": 16, \"vocab_size\": 12, \"max_position_embeddings\": 16," \
 " \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\"}"

struct tiny_opts {
    const char *dtype;   /* "F32", "F16", "BF16" */
    const char *omit;    /* tensor left out */
    const char *reshape; /* tensor given a wrong shape */
    bool offsets_past_end;
};

static const struct {
    const char *name;
    size_t d0, d1;
} tiny_tensors[] = {
    { "embeddings.word_embeddings.weight", 12, 8 },
    { "embeddings.position_embeddings.weight", 16, 8 },
    { "embeddings.token_type_embeddings.weight", 2, 8 },
    { "embeddings.LayerNorm.weight", 8, 0 },
    { "embeddings.LayerNorm.bias", 8, 0 },
    { "encoder.layer.0.attention.self.query.weight", 8, 8 },
    { "encoder.layer.0.attention.self.query.bias", 8, 0 },
    { "encoder.layer.0.attention.self.key.weight", 8, 8 },
    { "encoder.layer.0.attention.self.key.bias", 8, 0 },
    { "encoder.layer.0.attention.self.value.weight", 8, 8 },
    { "encoder.layer.0.attention.self.value.bias", 8, 0 },
    { "encoder.layer.0.attention.output.dense.weight", 8, 8 },
    { "encoder.layer.0.attention.output.dense.bias", 8, 0 },
    { "encoder.layer.0.attention.output.LayerNorm.weight", 8, 0 },
    { "encoder.layer.0.attention.output.LayerNorm.bias", 8, 0 },
    { "encoder.layer.0.intermediate.dense.weight", 16, 8 },
    { "encoder.layer.0.intermediate.dense.bias", 16, 0 },
    { "encoder.layer.0.output.dense.weight", 8, 16 },
    { "encoder.layer.0.output.dense.bias", 8, 0 },
    { "encoder.layer.0.output.LayerNorm.weight", 8, 0 },
    { "encoder.layer.0.output.LayerNorm.bias", 8, 0 },
};
#define N_TINY (sizeof(tiny_tensors) / sizeof(tiny_tensors[0]))

/* Append value k/64 in dtype to data. */
static void put_value(struct buf *data, const char *dtype, int k)
{
    float f = (float)k / 64.0f;
    uint32_t bits;
    uint16_t h;

    memcpy(&bits, &f, 4);
    if (!strcmp(dtype, "F32")) {
        buf_append(data, &f, 4);
        return;
    }
    if (!strcmp(dtype, "BF16")) {
        h = (uint16_t)(bits >> 16);
    } else { /* F16: exact for these normal values */
        int e = (int)((bits >> 23) & 0xff) - 127 + 15;

        h = f == 0 ? 0 :
                     (uint16_t)((bits >> 16 & 0x8000) | (uint32_t)e << 10 | (bits >> 13 & 0x3ff));
    }
    buf_append(data, &h, 2);
}

static void write_safetensors(const char *path, const struct tiny_opts *o)
{
    struct buf head = BUF_INIT, data = BUF_INIT;
    size_t esize = strcmp(o->dtype, "F32") ? 2 : 4;

    buf_appends(&head, "{\"__metadata__\": {\"format\": \"pt\"}");
    for (size_t t = 0; t < N_TINY; t++) {
        size_t d0 = tiny_tensors[t].d0, d1 = tiny_tensors[t].d1, count = d0 * (d1 ? d1 : 1);
        size_t begin = data.len;
        bool norm_gain = strstr(tiny_tensors[t].name, "LayerNorm.weight") != NULL;

        if (o->omit && !strcmp(o->omit, tiny_tensors[t].name))
            continue;
        for (size_t i = 0; i < count; i++)
            put_value(&data, o->dtype, norm_gain ? 64 : (int)((i * 7 + t * 3) % 17) - 8);
        if (o->reshape && !strcmp(o->reshape, tiny_tensors[t].name))
            d0++;
        buf_appendf(&head, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [%zu", tiny_tensors[t].name,
                    o->dtype, d0);
        if (d1)
            buf_appendf(&head, ", %zu", d1);
        buf_appendf(
            &head, "], \"data_offsets\": [%zu, %zu]}", begin,
            begin +
                (o->reshape && !strcmp(o->reshape, tiny_tensors[t].name) ? count + d1 : count) *
                    esize +
                (o->offsets_past_end && t == N_TINY - 1 ? 4096 : 0));
    }
    test_write_safetensors(path, &head, &data);
    buf_release(&head);
    buf_release(&data);
}

/* A fresh tiny model directory; the caller frees the path. */
static char *tiny_dir(const struct tiny_opts *o)
{
    static int seq;
    struct buf dir = BUF_INIT, st = BUF_INIT;

    buf_appendf(&dir, "%s/tiny%d", test_tmpdir(), seq++);
    ck_assert_int_eq(file_mkdirs(buf_cstr(&dir), NULL), 0);
    write_str(buf_cstr(&dir), "config.json", TINY_CONFIG);
    write_str(buf_cstr(&dir), "vocab.txt", TINY_VOCAB);
    buf_appendf(&st, "%s/model.safetensors", buf_cstr(&dir));
    write_safetensors(buf_cstr(&st), o);
    buf_release(&st);
    return buf_detach(&dir, NULL);
}

static void embed_tiny(const char *dir, float out[2 * 8])
{
    struct retr_embedder *e = open_model(dir);
    const char *texts[] = { "hello, worlds!", "a bc b" };
    struct rag_err err;

    ck_assert_uint_eq(retr_embedder_info(e)->max_tokens, 14);
    ck_assert_int_eq(retr_embed(e, texts, NULL, 2, 0, out, &err), 0);
    retr_embedder_close(e);
}

START_TEST(test_tiny_dtypes)
{
    struct tiny_opts o32 = { .dtype = "F32" }, o16 = { .dtype = "F16" }, ob = { .dtype = "BF16" };
    char *d32 = tiny_dir(&o32), *d16 = tiny_dir(&o16), *db = tiny_dir(&ob);
    float v32[16], v16[16], vb[16];
    double norm = 0;

    embed_tiny(d32, v32);
    embed_tiny(d16, v16);
    embed_tiny(db, vb);
    for (size_t i = 0; i < 16; i++) {
        ck_assert(isfinite(v32[i]));
        ck_assert_float_eq(v32[i], v16[i]);
        ck_assert_float_eq(v32[i], vb[i]);
        norm += i < 8 ? (double)v32[i] * v32[i] : 0;
    }
    ck_assert_double_eq_tol(norm, 1.0, 1e-5);
    ck_assert(test_cosine(v32, v32 + 8, 8) < 0.9999); /* different texts, different vectors */
    free(d32);
    free(d16);
    free(db);
}
END_TEST

/* Opening dir fails with code, and the one-line message contains every part. */
static void expect_open_error(const char *dir, int code, const char *part1, const char *part2)
{
    struct retr_embedder *e = NULL;
    struct rag_err err;

    ck_assert_int_eq(retr_embedder_open(&e, dir, NULL, &err), code);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(!strchr(err.msg, '\n'), "multi-line message: %s", err.msg);
    ck_assert_msg(strstr(err.msg, part1), "'%s' lacks '%s'", err.msg, part1);
    ck_assert_msg(!part2 || strstr(err.msg, part2), "'%s' lacks '%s'", err.msg, part2);
}

static char *path_in(const char *dir, const char *file)
{
    struct buf b = BUF_INIT;

    buf_appendf(&b, "%s/%s", dir, file);
    return buf_detach(&b, NULL);
}

START_TEST(test_missing_files)
{
    struct tiny_opts o = { .dtype = "F32" };
    char *dir = tiny_dir(&o), *p;

    p = path_in(dir, "vocab.txt");
    ck_assert_int_eq(unlink(p), 0);
    expect_open_error(dir, RAG_EIO, p, "No such file");
    free(p);
    p = path_in(dir, "model.safetensors");
    ck_assert_int_eq(unlink(p), 0);
    expect_open_error(dir, RAG_EIO, p, "No such file");
    free(p);
    p = path_in(dir, "config.json");
    ck_assert_int_eq(unlink(p), 0);
    expect_open_error(dir, RAG_EIO, p, "No such file");
    free(p);
    free(dir);
}
END_TEST

START_TEST(test_bad_config)
{
    struct tiny_opts o = { .dtype = "F32" };
    char *dir = tiny_dir(&o), *p = path_in(dir, "config.json");

    write_str(dir, "config.json", "{\"hidden_size\": 8,, }");
    expect_open_error(dir, RAG_EFORMAT, p, "invalid json at byte 18");
    write_str(dir, "config.json", "{\"hidden_size\": \"eight\"}");
    expect_open_error(dir, RAG_EFORMAT, p, "'hidden_size'");
    write_str(dir, "config.json", "{\"hidden_size\": 8}");
    expect_open_error(dir, RAG_EFORMAT, p, "missing 'num_hidden_layers'");
    write_str(dir, "config.json", TINY_CONFIG);
    write_str(dir, "vocab.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
    free(p);
    p = path_in(dir, "vocab.txt");
    expect_open_error(dir, RAG_EFORMAT, p, "no [UNK] token");
    write_str(dir, "vocab.txt", TINY_VOCAB);
    free(p);
    p = path_in(dir, "1_Pooling");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    write_str(dir, "1_Pooling/config.json", "{\"pooling_mode_max_tokens\": true}");
    expect_open_error(dir, RAG_EFORMAT, "1_Pooling/config.json", "unsupported pooling");
    free(p);
    free(dir);
}
END_TEST

/* Replace model.safetensors of dir with bytes[0..n). */
static void put_st(const char *dir, const void *bytes, size_t n)
{
    char *p = path_in(dir, "model.safetensors");

    test_write_file(p, bytes, n);
    free(p);
}

START_TEST(test_bad_safetensors)
{
    struct tiny_opts o = { .dtype = "F32" };
    char *dir = tiny_dir(&o), *p = path_in(dir, "model.safetensors");
    struct buf good = BUF_INIT;
    uint64_t huge = 1ull << 40;
    char hdr[64];

    ck_assert_int_eq(file_read(p, 0, &good, NULL), 0);
    put_st(dir, good.data, good.len / 2); /* truncated: data past the end */
    expect_open_error(dir, RAG_EFORMAT, p, "data offsets past the end of the file");
    put_st(dir, good.data, 5);
    expect_open_error(dir, RAG_EFORMAT, p, "truncated safetensors file (5 bytes)");
    put_st(dir, good.data, 100); /* header cut */
    expect_open_error(dir, RAG_EFORMAT, p, "bad header length");
    memcpy(good.data, &huge, 8);
    put_st(dir, good.data, good.len);
    expect_open_error(dir, RAG_EFORMAT, p, "bad header length 1099511627776");
    memcpy(hdr, "\x10\0\0\0\0\0\0\0{\"a\": [1, 2}   ", 24);
    put_st(dir, hdr, 24);
    expect_open_error(dir, RAG_EFORMAT, p, "invalid json at byte 11: expected ',' or ']'");
    buf_release(&good);
    free(p);
    free(dir);
}
END_TEST

START_TEST(test_bad_tensors)
{
    struct tiny_opts past = { .dtype = "F32", .offsets_past_end = true };
    struct tiny_opts omit = { .dtype = "F32", .omit = "encoder.layer.0.output.dense.bias" };
    struct tiny_opts shape = { .dtype = "F32",
                               .reshape = "encoder.layer.0.attention.self.key.weight" };
    struct tiny_opts dtype = { .dtype = "F32" };
    char *d1 = tiny_dir(&past), *d2 = tiny_dir(&omit), *d3 = tiny_dir(&shape),
         *d4 = tiny_dir(&dtype);
    char *p = path_in(d1, "model.safetensors");

    expect_open_error(d1, RAG_EFORMAT, p,
                      "tensor 'encoder.layer.0.output.LayerNorm.bias': data offsets past the end");
    free(p);
    p = path_in(d2, "model.safetensors");
    expect_open_error(d2, RAG_EFORMAT, p, "missing tensor 'encoder.layer.0.output.dense.bias'");
    free(p);
    p = path_in(d3, "model.safetensors");
    expect_open_error(d3, RAG_EFORMAT, p,
                      "tensor 'encoder.layer.0.attention.self.key.weight': unexpected shape");
    write_str(d4, "config.json",
              "{\"hidden_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
              " \"intermediate_size\": 16, \"vocab_size\": 12, \"max_position_embeddings\": 16}");
    free(p);
    p = path_in(d4, "model.safetensors");
    expect_open_error(d4, RAG_EFORMAT, p, "missing tensor 'encoder.layer.1.");
    free(p);
    free(d1);
    free(d2);
    free(d3);
    free(d4);
}
END_TEST

/* CPU and AUTO open the tiny model (head size 4) on the CPU; GPU fails clearly. */
START_TEST(test_device_choice)
{
    struct tiny_opts o = { .dtype = "F32" };
    struct retr_embedder_opts opts = { .device = RETR_DEVICE_CPU };
    struct retr_embedder *e = NULL;
    char *dir = tiny_dir(&o), want[256];
    struct rag_err err = { 0 };
    int rc;

    for (int d = 0; d < 2; d++) {
        opts.device = d ? RETR_DEVICE_AUTO : RETR_DEVICE_CPU;
        ck_assert_int_eq(retr_embedder_open(&e, dir, &opts, &err), 0);
        ck_assert(!retr_embedder_on_gpu(e));
        ck_assert_uint_eq(retr_embedder_info(e)->device_bytes, 0);
        retr_embedder_close(e);
    }
    opts.device = (enum retr_device)7;
    e = NULL;
    ck_assert_int_eq(retr_embedder_open(&e, dir, &opts, &err), RAG_EINVAL);
    ck_assert_str_eq(err.msg, "embedder: unknown device 7");
    opts.device = RETR_DEVICE_GPU;
    rc = retr_embedder_open(&e, dir, &opts, &err);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(err.code, rc);
    snprintf(want, sizeof(want), "embedder '%s': device gpu requested: ", strrchr(dir, '/') + 1);
    ck_assert_msg(!strncmp(err.msg, want, strlen(want)), "%s", err.msg);
    if (gpu_count() == 0 && rc == RAG_ENOSYS)
        ck_assert_str_eq(err.msg + strlen(want), "gpu: built without CUDA");
    else if (gpu_count() == 0)
        ck_assert_msg(rc == RAG_EGPU &&
                          !strncmp(err.msg + strlen(want), "gpu: no CUDA device (", 21),
                      "%s", err.msg);
    else
        ck_assert_str_eq(err.msg + strlen(want),
                         "head size 4 is not supported on the GPU (32 or 64)");
    free(dir);
}
END_TEST

static Suite *embed_suite(void)
{
    Suite *s = suite_create("embed");
    TCase *parity = tcase_create("parity"), *model = tcase_create("model"),
          *files = tcase_create("files");

    tcase_set_timeout(parity, 300);
    tcase_add_test(parity, test_golden_tokens);
    tcase_add_test(parity, test_golden_vectors);
    tcase_add_test(parity, test_cls_query_golden);
    tcase_set_timeout(model, 60);
    tcase_add_test(model, test_info);
    tcase_add_test(model, test_tokenizer_only);
    tcase_add_test(model, test_spans);
    tcase_add_test(model, test_no_silent_truncation);
    tcase_add_test(model, test_batch_invariance);
    tcase_add_test(model, test_prompt_from_config);
    tcase_add_test(files, test_tiny_dtypes);
    tcase_add_test(files, test_missing_files);
    tcase_add_test(files, test_bad_config);
    tcase_add_test(files, test_bad_safetensors);
    tcase_add_test(files, test_bad_tensors);
    tcase_add_test(files, test_device_choice);
    suite_add_tcase(s, parity);
    suite_add_tcase(s, model);
    suite_add_tcase(s, files);
    return s;
}

TEST_MAIN(embed_suite)
