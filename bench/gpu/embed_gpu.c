/*
 * bench/gpu/embed_gpu.c - embedding throughput of the retrieval/ embedder on
 * a random-weight encoder of the bge-small-en-v1.5 shape.
 *
 * usage: embed_gpu [DIR] [--shape bge-small|tiny] [--tokens 256] [--batch 128]
 *                  [--chunks 1024] [--reps 5] [--pass-tokens 0] [--device gpu|cpu|auto]
 *
 * Writes the model with our own code into DIR (default
 * $TMPDIR/rag-embed-bench): config.json, vocab.txt ([PAD] [UNK] [CLS] [SEP]
 * [MASK] then the words w0, w1, ...), sentence_bert_config.json
 * (max_seq_length = --tokens), 1_Pooling/config.json (CLS pooling) and
 * model.safetensors with random F32 weights: bge-small is 12 layers, hidden
 * 384, 12 heads, FFN 1536, a 30,522-token vocabulary and 512 positions; tiny
 * is bench/gpu/peers.py's tiny shape. Then it opens the folder with
 * retr_embedder_open() on the device, builds --chunks texts of exactly
 * --tokens model tokens ([CLS] + --tokens - 2 words + [SEP], the texts
 * peers.py gives sentence-transformers), and embeds all of them with
 * retr_embed() in batches of --batch texts (batch_tokens = batch * tokens):
 * once to warm up (first batch shape eager, second captured as a CUDA
 * graph), then --reps timed calls. Tokenizing is included, as in the peer.
 *
 * One JSON line on stdout: chunks_per_s and tokens_per_s of the median call,
 * the best call's chunks/s, batch, seq_len (model tokens per text),
 * device_bytes (GPU memory of the embedder), tokenize_s (one thread counting
 * the pieces of all texts once, the CPU side of a call) and open_s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval/retrieval.h"

struct shape {
    const char *name;
    size_t layers, dim, heads, ffn, vocab;
};

static const struct shape shapes[] = {
    { "bge-small", 12, 384, 12, 1536, 30522 },
    { "tiny", 2, 64, 4, 128, 1000 },
};

struct args {
    const char *dir;
    const struct shape *shape;
    size_t tokens, batch, chunks, reps, pass;
    enum retr_device device;
};

/* Writes tensors: pass 0 appends the header entries, pass 1 the data. */
struct writer {
    int pass;
    struct buf head;
    size_t offset;
    FILE *f;
    uint64_t rng;
    bool failed;
};

static float rnd(struct writer *w, float scale)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return scale * ((float)(w->rng >> 40) / 8388608.0f - 1.0f);
}

/* Tensor (d0, d1) (d1 0: a vector) of U(-scale, scale), or of ones when scale is 0. */
static void tensor(struct writer *w, const char *name, size_t d0, size_t d1, float scale)
{
    size_t n = d0 * (d1 ? d1 : 1);
    float chunk[1024];

    if (w->pass == 0) {
        buf_appendf(&w->head, ", \"%s\": {\"dtype\": \"F32\", \"shape\": [%zu", name, d0);
        if (d1)
            buf_appendf(&w->head, ", %zu", d1);
        buf_appendf(&w->head, "], \"data_offsets\": [%zu, %zu]}", w->offset, w->offset + n * 4);
        w->offset += n * 4;
        return;
    }
    for (size_t i = 0; i < n; i += 1024) {
        size_t m = n - i < 1024 ? n - i : 1024;

        for (size_t k = 0; k < m; k++)
            chunk[k] = scale > 0 ? rnd(w, scale) : 1.0f;
        w->failed |= fwrite(chunk, sizeof(float), m, w->f) != m;
    }
}

static void layer(struct writer *w, const struct shape *s, size_t i)
{
    static const char *const lin[] = { "attention.self.query", "attention.self.key",
                                       "attention.self.value", "attention.output.dense" };
    char name[128];

    for (size_t k = 0; k < 4; k++) {
        snprintf(name, sizeof(name), "encoder.layer.%zu.%s.weight", i, lin[k]);
        tensor(w, name, s->dim, s->dim, 0.05f);
        snprintf(name, sizeof(name), "encoder.layer.%zu.%s.bias", i, lin[k]);
        tensor(w, name, s->dim, 0, 0.02f);
    }
    snprintf(name, sizeof(name), "encoder.layer.%zu.attention.output.LayerNorm.weight", i);
    tensor(w, name, s->dim, 0, 0);
    snprintf(name, sizeof(name), "encoder.layer.%zu.attention.output.LayerNorm.bias", i);
    tensor(w, name, s->dim, 0, 0.02f);
    snprintf(name, sizeof(name), "encoder.layer.%zu.intermediate.dense.weight", i);
    tensor(w, name, s->ffn, s->dim, 0.05f);
    snprintf(name, sizeof(name), "encoder.layer.%zu.intermediate.dense.bias", i);
    tensor(w, name, s->ffn, 0, 0.02f);
    snprintf(name, sizeof(name), "encoder.layer.%zu.output.dense.weight", i);
    tensor(w, name, s->dim, s->ffn, 0.05f);
    snprintf(name, sizeof(name), "encoder.layer.%zu.output.dense.bias", i);
    tensor(w, name, s->dim, 0, 0.02f);
    snprintf(name, sizeof(name), "encoder.layer.%zu.output.LayerNorm.weight", i);
    tensor(w, name, s->dim, 0, 0);
    snprintf(name, sizeof(name), "encoder.layer.%zu.output.LayerNorm.bias", i);
    tensor(w, name, s->dim, 0, 0.02f);
}

static void all_tensors(struct writer *w, const struct shape *s)
{
    tensor(w, "embeddings.word_embeddings.weight", s->vocab, s->dim, 0.1f);
    tensor(w, "embeddings.position_embeddings.weight", 512, s->dim, 0.1f);
    tensor(w, "embeddings.token_type_embeddings.weight", 2, s->dim, 0.1f);
    tensor(w, "embeddings.LayerNorm.weight", s->dim, 0, 0);
    tensor(w, "embeddings.LayerNorm.bias", s->dim, 0, 0.02f);
    for (size_t i = 0; i < s->layers; i++)
        layer(w, s, i);
}

static int write_weights(const char *path, const struct shape *s)
{
    struct writer w = { .head = BUF_INIT, .rng = 0x9e3779b97f4a7c15ULL };
    uint64_t n;

    buf_appends(&w.head, "{\"__metadata__\": {\"format\": \"pt\"}");
    all_tensors(&w, s);
    buf_appendc(&w.head, '}');
    while (w.head.len % 8)
        buf_appendc(&w.head, ' ');
    n = w.head.len;
    w.f = fopen(path, "wb");
    if (w.f) {
        w.failed = fwrite(&n, 8, 1, w.f) != 1 || fwrite(w.head.data, 1, n, w.f) != n;
        w.pass = 1;
        all_tensors(&w, s);
        w.failed |= fclose(w.f) != 0;
    }
    buf_release(&w.head);
    if (!w.f || w.failed) {
        fprintf(stderr, "embed_gpu: cannot write '%s'\n", path);
        return 1;
    }
    return 0;
}

static int write_text(const char *dir, const char *file, const char *text)
{
    struct buf path = BUF_INIT;
    FILE *f;
    int bad;

    buf_appendf(&path, "%s/%s", dir, file);
    f = fopen(buf_cstr(&path), "w");
    bad = !f || fputs(text, f) == EOF;
    bad |= f && fclose(f) != 0;
    if (bad)
        fprintf(stderr, "embed_gpu: cannot write '%s'\n", buf_cstr(&path));
    buf_release(&path);
    return bad;
}

static int write_model(const struct args *a)
{
    const struct shape *s = a->shape;
    struct buf t = BUF_INIT, p = BUF_INIT;
    int rc;

    buf_appendf(&p, "%s/1_Pooling", a->dir);
    rc = file_mkdirs(buf_cstr(&p), NULL) != 0;
    buf_appendf(
        &t,
        "{\"hidden_size\": %zu, \"num_hidden_layers\": %zu, \"num_attention_heads\": %zu,"
        " \"intermediate_size\": %zu, \"vocab_size\": %zu, \"max_position_embeddings\":"
        " 512, \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\"}",
        s->dim, s->layers, s->heads, s->ffn, s->vocab);
    rc = rc ? rc : write_text(a->dir, "config.json", buf_cstr(&t));
    rc = rc ? rc :
              write_text(a->dir, "1_Pooling/config.json",
                         "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": false}");
    buf_reset(&t);
    buf_appendf(&t, "{\"max_seq_length\": %zu, \"do_lower_case\": true}", a->tokens);
    rc = rc ? rc : write_text(a->dir, "sentence_bert_config.json", buf_cstr(&t));
    buf_reset(&t);
    buf_appends(&t, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (size_t i = 0; i + 5 < s->vocab; i++)
        buf_appendf(&t, "w%zu\n", i);
    rc = rc ? rc : write_text(a->dir, "vocab.txt", buf_cstr(&t));
    buf_reset(&p);
    buf_appendf(&p, "%s/model.safetensors", a->dir);
    rc = rc ? rc : write_weights(buf_cstr(&p), s);
    buf_release(&t);
    buf_release(&p);
    return rc;
}

/* peers.py's texts: tokens - 2 words each, so tokens model tokens. */
static char **make_texts(const struct args *a)
{
    size_t n_words = a->shape->vocab - 5;
    char **texts = xcalloc(a->chunks, sizeof(*texts));

    for (size_t c = 0; c < a->chunks; c++) {
        struct buf b = BUF_INIT;

        for (size_t i = 0; i + 2 < a->tokens; i++)
            buf_appendf(&b, "%sw%zu", i ? " " : "", (c * 7919 + i * 104729) % n_words);
        texts[c] = buf_detach(&b, NULL);
    }
    return texts;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

/* Every vector is finite with unit norm: the run computed something. */
static int check_vectors(const float *v, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++) {
        double norm = 0;

        for (size_t k = 0; k < dim; k++)
            norm += (double)v[i * dim + k] * v[i * dim + k];
        if (!(norm > 0.999 && norm < 1.001)) {
            fprintf(stderr, "embed_gpu: vector %zu has squared norm %g\n", i, norm);
            return 1;
        }
    }
    return 0;
}

static void report(const struct args *a, struct retr_embedder *e, double *t, double tok_s,
                   double open_s)
{
    double med;

    qsort(t, a->reps, sizeof(*t), cmp_double);
    med = a->reps % 2 ? t[a->reps / 2] : (t[a->reps / 2 - 1] + t[a->reps / 2]) / 2;
    printf("{\"bench\": \"embed_gpu\", \"shape\": \"%s\", \"device\": \"%s\", "
           "\"chunks_per_s\": %.1f, \"tokens_per_s\": %.0f, \"best_chunks_per_s\": %.1f, "
           "\"batch\": %zu, \"seq_len\": %zu, \"chunks\": %zu, \"reps\": %zu, "
           "\"seconds_median\": %.5f, \"device_bytes\": %zu, \"pass_tokens\": %zu, "
           "\"tokenize_s\": %.5f, \"open_s\": %.3f, \"pooling\": \"cls\", \"dtype\": \"%s\"}\n",
           a->shape->name, retr_embedder_on_gpu(e) ? "gpu" : "cpu", (double)a->chunks / med,
           (double)(a->chunks * a->tokens) / med, (double)a->chunks / t[0], a->batch, a->tokens,
           a->chunks, a->reps, med, retr_embedder_info(e)->device_bytes, a->pass, tok_s, open_s,
           retr_embedder_on_gpu(e) ? "bf16" : "f32");
}

static int run(const struct args *a)
{
    struct retr_embedder_opts o = { .batch_tokens = a->batch * a->tokens,
                                    .gpu_pass_tokens = a->pass,
                                    .device = a->device };
    struct retr_embedder *e = NULL;
    struct rag_err err = { 0 };
    char **texts = make_texts(a);
    double open_s = time_now(), tok_s, *t = xcalloc(a->reps, sizeof(double));
    float *out = NULL;
    int rc = retr_embedder_open(&e, a->dir, &o, &err);

    open_s = time_now() - open_s;
    if (!rc && retr_count_tokens(e, texts[0], strlen(texts[0])) + 2 != a->tokens)
        rc = rag_errf(&err, RAG_EINVAL, "a text does not have %zu tokens", a->tokens);
    tok_s = time_now();
    for (size_t i = 0; !rc && i < a->chunks; i++)
        retr_count_tokens(e, texts[i], strlen(texts[i]));
    tok_s = time_now() - tok_s;
    if (!rc)
        out = xmalloc_array(a->chunks * retr_embedder_info(e)->dim, sizeof(float));
    for (size_t r = 0; !rc && r <= a->reps; r++) {
        double t0 = time_now();

        rc = retr_embed(e, (const char *const *)texts, NULL, a->chunks, 0, out, &err);
        if (r > 0)
            t[r - 1] = time_now() - t0;
    }
    if (rc)
        fprintf(stderr, "embed_gpu: %s\n", err.msg);
    else if (!(rc = check_vectors(out, a->chunks, retr_embedder_info(e)->dim)))
        report(a, e, t, tok_s, open_s);
    for (size_t i = 0; i < a->chunks; i++)
        free(texts[i]);
    free(texts);
    free(out);
    free(t);
    retr_embedder_close(e);
    return rc ? 1 : 0;
}

static int parse_option(struct args *a, const char *name, const char *v)
{
    if (!strcmp(name, "--shape")) {
        a->shape = NULL;
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            a->shape = !strcmp(v, shapes[i].name) ? &shapes[i] : a->shape;
        return !a->shape;
    }
    if (!strcmp(name, "--device")) {
        a->device = !strcmp(v, "gpu") ? RETR_DEVICE_GPU :
                    !strcmp(v, "cpu") ? RETR_DEVICE_CPU :
                                        RETR_DEVICE_AUTO;
        return strcmp(v, "gpu") && strcmp(v, "cpu") && strcmp(v, "auto");
    }
    if (!strcmp(name, "--tokens"))
        return parse_size(v, 3, 512, &a->tokens) != 0;
    if (!strcmp(name, "--batch"))
        return parse_size(v, 1, 65536, &a->batch) != 0;
    if (!strcmp(name, "--chunks"))
        return parse_size(v, 1, 10000000, &a->chunks) != 0;
    if (!strcmp(name, "--reps"))
        return parse_size(v, 1, 1000, &a->reps) != 0;
    if (!strcmp(name, "--pass-tokens"))
        return parse_size(v, 0, 1u << 24, &a->pass) != 0;
    return 1;
}

int main(int argc, char **argv)
{
    struct args a = { .shape = &shapes[0],
                      .tokens = 256,
                      .batch = 128,
                      .chunks = 1024,
                      .reps = 5,
                      .device = RETR_DEVICE_GPU };
    struct buf dir = BUF_INIT;
    const char *tmp = getenv("TMPDIR");
    int rc;

    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-' && !a.dir) {
            a.dir = argv[i];
        } else if (i + 1 >= argc || parse_option(&a, argv[i], argv[i + 1])) {
            fprintf(stderr, "usage: embed_gpu [DIR] [--shape bge-small|tiny] [--tokens 256] "
                            "[--batch 128] [--chunks 1024] [--reps 5] [--pass-tokens 0] "
                            "[--device gpu|cpu|auto]\n");
            return 2;
        } else {
            i++;
        }
    }
    buf_appendf(&dir, "%s/rag-embed-bench", tmp && *tmp ? tmp : "/tmp");
    a.dir = a.dir ? a.dir : buf_cstr(&dir);
    rc = write_model(&a) || run(&a);
    buf_release(&dir);
    return rc;
}
