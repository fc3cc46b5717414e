/*
 * retrieval/embed.c - the sentence embedder: model directory, batching,
 * pooling and normalisation around the BERT forward pass.
 *
 * Texts are tokenized once to learn their lengths, sorted longest first and
 * packed into batches of at most batch_tokens tokens; each batch is
 * tokenized again straight into the planned id buffer, so a call allocates
 * only its index arrays. Both tokenizing passes run on n_threads threads
 * (one text per task) once a call has PARALLEL_MIN texts. The
 * sentence-transformers choices (pooling, input limit, lowercasing, query
 * prompt) are read from the model's own files.
 *
 * On the GPU (forward_gpu.c) a batch is n_seq texts padded to the longest
 * one's length, with n_seq * length <= batch_tokens, and the batches are
 * pipelined: while the GPU encodes batch k, this thread tokenizes batch
 * k + 1, then waits for batch k's pooled vectors.
 */
#include "retrieval/retrieval.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "retrieval/bert.h"
#include "retrieval/json.h"
#include "retrieval/safetensors.h"
#include "retrieval/wordpiece.h"

#define BGE_QUERY_PREFIX "Represent this sentence for searching relevant passages: "
#define CPU_BATCH_TOKENS 4096
#define GPU_BATCH_TOKENS 65536
#define GPU_PASS_TOKENS  32768
#define PARALLEL_MIN     32 /* texts per call below which tokenizing stays on one thread */

struct retr_embedder {
    struct retr_embedder_info info;
    struct retr_bert model;
    struct retr_wp wp;
    struct retr_bert_run run;
    struct retr_bert_gpu *gpu; /* NULL on the CPU */
    struct retr_embedder_opts opts;
    int32_t *ids;  /* (batch_tokens): packed on the CPU, (n_seq, seq_len) on the GPU */
    size_t *start; /* (batch_tokens + 1) */
    int32_t *lens; /* GPU: (batch_tokens / 2) sequence lengths */
    float *pooled; /* GPU: (batch_tokens / 2, dim) vectors of a batch */
    char *name, *prefix;
    struct arena arena; /* strings of the config files */
};

/* Parse <dir>/<file> into *ret; a missing optional file leaves *ret NULL. */
static int read_json(struct retr_embedder *e, const char *dir, const char *file, bool required,
                     const struct retr_json **ret, struct rag_err *err)
{
    struct buf path = BUF_INIT, text = BUF_INIT;
    struct retr_json *j = NULL;
    int rc = 0;

    buf_appendf(&path, "%s/%s", dir, file);
    *ret = NULL;
    if (required || file_exists(buf_cstr(&path))) {
        rc = file_read(buf_cstr(&path), 1u << 20, &text, err);
        if (!rc)
            rc = retr_json_parse(text.data, text.len, arena_strdup(&e->arena, buf_cstr(&path)),
                                 &e->arena, &j, err);
        if (!rc && j->type != RETR_JSON_OBJECT)
            rc = rag_errf(err, RAG_EFORMAT, "'%s': not a json object", buf_cstr(&path));
    }
    if (!rc)
        *ret = j;
    buf_release(&text);
    buf_release(&path);
    return rc;
}

/* 1_Pooling/config.json: exactly one of CLS and mean pooling. */
static int read_pooling(struct retr_embedder *e, const char *dir, struct rag_err *err)
{
    const char *file = "1_Pooling/config.json";
    const struct retr_json *j;
    bool cls = false, mean = true, other = false, sqrt_len = false;
    int rc = read_json(e, dir, file, false, &j, err);

    if (rc || !j)
        return rc;
    mean = false;
    rc = retr_json_get_bool(j, "pooling_mode_cls_token", file, &cls, err);
    rc = rc ? rc : retr_json_get_bool(j, "pooling_mode_mean_tokens", file, &mean, err);
    rc = rc ? rc : retr_json_get_bool(j, "pooling_mode_max_tokens", file, &other, err);
    rc = rc ? rc : retr_json_get_bool(j, "pooling_mode_mean_sqrt_len_tokens", file, &sqrt_len, err);
    if (rc)
        return rc;
    if (other || sqrt_len || cls == mean)
        return rag_errf(err, RAG_EFORMAT, "'%s/%s': unsupported pooling (want cls or mean only)",
                        dir, file);
    e->info.pooling = cls ? RETR_POOLING_CLS : RETR_POOLING_MEAN;
    return 0;
}

/*
 * The query prompt: config_sentence_transformers.json "prompts"."query" when
 * present; otherwise the BGE English instruction for a CLS-pooled model whose
 * name says bge-*-en (BGE's model card documents it; its files do not).
 */
static int read_prefix(struct retr_embedder *e, const char *dir, const char *arch_name,
                       struct rag_err *err)
{
    const struct retr_json *j, *prompts;
    const char *q = NULL;
    int rc = read_json(e, dir, "config_sentence_transformers.json", false, &j, err);

    if (rc)
        return rc;
    prompts = retr_json_get(j, "prompts");
    rc = retr_json_get_str(prompts, "query", "config_sentence_transformers.json", &q, err);
    if (rc)
        return rc;
    if (!q && e->info.pooling == RETR_POOLING_CLS &&
        (strstr(arch_name, "bge-") || strstr(e->name, "bge-")) &&
        (strstr(arch_name, "-en") || strstr(e->name, "-en")))
        q = BGE_QUERY_PREFIX;
    e->prefix = xstrdup(q ? q : "");
    return 0;
}

static int read_settings(struct retr_embedder *e, const char *dir, struct rag_err *err)
{
    const struct retr_json *tok, *sbert, *cfg;
    const char *arch_name = "";
    size_t max_seq = e->model.c.n_pos;
    int rc = read_json(e, dir, "tokenizer_config.json", false, &tok, err);

    e->info.lowercase = true;
    rc = rc ? rc :
              retr_json_get_bool(tok, "do_lower_case", "tokenizer_config.json", &e->info.lowercase,
                                 err);
    rc = rc ? rc : read_json(e, dir, "sentence_bert_config.json", false, &sbert, err);
    rc = rc ? rc :
              retr_json_get_size(sbert, "max_seq_length", "sentence_bert_config.json", false,
                                 &max_seq, err);
    rc = rc ? rc : read_json(e, dir, "config.json", true, &cfg, err);
    rc = rc ? rc : retr_json_get_str(cfg, "_name_or_path", "config.json", &arch_name, err);
    rc = rc ? rc : read_pooling(e, dir, err);
    rc = rc ? rc : read_prefix(e, dir, arch_name, err);
    if (rc)
        return rc;
    if (max_seq < 3 || max_seq > e->model.c.n_pos)
        return rag_errf(err, RAG_EFORMAT, "'%s/sentence_bert_config.json': bad max_seq_length %zu",
                        dir, max_seq);
    e->info.max_seq = max_seq;
    e->info.max_tokens = max_seq - 2;
    return 0;
}

static void set_name(struct retr_embedder *e, const char *dir)
{
    size_t n = strlen(dir);
    const char *base;

    while (n > 1 && dir[n - 1] == '/')
        n--;
    base = dir + n;
    while (base > dir && base[-1] != '/')
        base--;
    e->name = xstrndup(base, (size_t)(dir + n - base));
}

static void fill_info(struct retr_embedder *e)
{
    const struct retr_bert_config *c = &e->model.c;

    e->info.name = e->name;
    e->info.query_prefix = e->prefix;
    e->info.dim = c->dim;
    e->info.n_layers = c->n_layers;
    e->info.n_heads = c->n_heads;
    e->info.vocab = c->vocab;
}

/*
 * What identifies the model in a store: the configuration files, the
 * vocabulary and the weights' size and tensor table (the safetensors header),
 * hashed together. Cheap, unlike hashing 90 MB of weights on every run.
 */
static void fingerprint(struct retr_embedder *e, const char *dir)
{
    static const char *const files[] = { "config.json", "vocab.txt", "1_Pooling/config.json",
                                         "sentence_bert_config.json" };
    struct buf path = BUF_INIT, data = BUF_INIT;
    size_t i;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        buf_reset(&path);
        buf_appendf(&path, "%s/%s", dir, files[i]);
        file_read(path.data, 8u << 20, &data, NULL);
    }
    buf_reset(&path);
    buf_appendf(&path, "%s/model.safetensors", dir);
    retr_st_fingerprint(path.data, &data);
    sha256_hex(data.data, data.len, e->info.fingerprint);
    e->info.fingerprint[16] = '\0';
    buf_release(&path);
    buf_release(&data);
}

static int load(struct retr_embedder *e, const char *dir, struct rag_err *err)
{
    struct buf vocab = BUF_INIT;
    int rc = retr_bert_load(&e->model, dir, !e->opts.tokenizer_only, err);

    rc = rc ? rc : read_settings(e, dir, err);
    if (!rc) {
        buf_appendf(&vocab, "%s/vocab.txt", dir);
        rc = retr_wp_load(&e->wp, buf_cstr(&vocab), e->info.lowercase, err);
    }
    if (!rc && e->wp.n_vocab > e->model.c.vocab)
        rc = rag_errf(err, RAG_EFORMAT, "'%s': %zu tokens, more than the model's %zu",
                      buf_cstr(&vocab), e->wp.n_vocab, e->model.c.vocab);
    buf_release(&vocab);
    return rc;
}

static int check_device(enum retr_device d, struct rag_err *err)
{
    if (d != RETR_DEVICE_AUTO && d != RETR_DEVICE_CPU && d != RETR_DEVICE_GPU)
        return rag_errf(err, RAG_EINVAL, "embedder: unknown device %d", (int)d);
    return 0;
}

/* The GPU when asked for, or with AUTO when there is one and it supports the model. */
static bool want_gpu(const struct retr_embedder *e)
{
    if (e->opts.tokenizer_only || e->opts.device == RETR_DEVICE_CPU)
        return false;
    if (e->opts.device == RETR_DEVICE_GPU)
        return true;
    return gpu_count() > 0 && retr_bert_gpu_check(&e->model.c, NULL) == 0;
}

static int open_gpu(struct retr_embedder *e, struct rag_err *err)
{
    struct retr_bert_gpu_opts o = { .max_seq = e->info.max_seq,
                                    .cls = e->info.pooling == RETR_POOLING_CLS };
    size_t bt = e->opts.batch_tokens ? e->opts.batch_tokens : GPU_BATCH_TOKENS;
    size_t pt = e->opts.gpu_pass_tokens ? e->opts.gpu_pass_tokens : GPU_PASS_TOKENS;
    int rc;

    o.batch_tokens = bt < o.max_seq ? o.max_seq : bt;
    o.pass_tokens = pt < o.max_seq ? o.max_seq : pt;
    rc = retr_bert_gpu_open(&e->gpu, &e->model, &o, err);
    if (rc) {
        if (e->opts.device == RETR_DEVICE_GPU)
            rag_err_prefix(err, "embedder '%s': device gpu requested", e->name);
        else
            rag_err_prefix(err, "embedder '%s'", e->name);
        return rc;
    }
    e->opts.batch_tokens = o.batch_tokens;
    e->opts.gpu_pass_tokens = o.pass_tokens;
    e->lens = xmalloc_array(o.batch_tokens / 2, sizeof(*e->lens));
    e->pooled = xmalloc_array(o.batch_tokens / 2 * e->info.dim, sizeof(*e->pooled));
    e->info.device_bytes = retr_bert_gpu_bytes(e->gpu);
    retr_bert_release_weights(&e->model);
    RAG_DEBUG("embedder '%s': on the GPU, %zu MiB, batches of %zu tokens, passes of %zu", e->name,
              e->info.device_bytes >> 20, o.batch_tokens, o.pass_tokens);
    return 0;
}

/* Buffers of the CPU path, or the GPU encoder with its own. */
static int plan(struct retr_embedder *e, struct rag_err *err)
{
    size_t bt = e->opts.batch_tokens ? e->opts.batch_tokens : CPU_BATCH_TOKENS;
    int rc = 0;

    if (want_gpu(e))
        rc = open_gpu(e, err);
    else
        e->opts.batch_tokens = bt < e->info.max_seq ? e->info.max_seq : bt;
    if (rc)
        return rc;
    e->ids = xmalloc_array(e->opts.batch_tokens, sizeof(*e->ids));
    e->start = xmalloc_array(e->opts.batch_tokens + 1, sizeof(*e->start));
    if (!e->opts.tokenizer_only && !e->gpu)
        retr_bert_run_init(&e->run, &e->model, e->opts.batch_tokens, e->info.max_seq,
                           e->opts.n_threads);
    return 0;
}

int retr_embedder_open(struct retr_embedder **ret, const char *model_dir,
                       const struct retr_embedder_opts *opts, struct rag_err *err)
{
    struct retr_embedder *e;
    int rc = check_device(opts ? opts->device : RETR_DEVICE_AUTO, err);

    if (rc)
        return rc;
    e = xcalloc(1, sizeof(*e));
    arena_init(&e->arena, 0);
    if (opts)
        e->opts = *opts;
    set_name(e, model_dir);
    rc = load(e, model_dir, err);
    if (!rc) {
        fill_info(e);
        fingerprint(e, model_dir);
        rc = plan(e, err);
    }
    if (rc) {
        retr_embedder_close(e);
        return rc;
    }
    *ret = e;
    return 0;
}

void retr_embedder_close(struct retr_embedder *e)
{
    if (!e)
        return;
    retr_bert_gpu_close(e->gpu);
    retr_bert_run_release(&e->run);
    retr_bert_release(&e->model);
    retr_wp_release(&e->wp);
    free(e->ids);
    free(e->start);
    free(e->lens);
    free(e->pooled);
    free(e->name);
    free(e->prefix);
    arena_release(&e->arena);
    free(e);
}

bool retr_embedder_on_gpu(const struct retr_embedder *e)
{
    return e->gpu != NULL;
}

const struct retr_embedder_info *retr_embedder_info(const struct retr_embedder *e)
{
    return &e->info;
}

size_t retr_count_tokens(void *embedder, const char *text, size_t len)
{
    const struct retr_embedder *e = embedder;

    return retr_wp_encode(&e->wp, text, len, NULL, NULL, 0);
}

const char *retr_token_text(const struct retr_embedder *e, int32_t id)
{
    return id >= 0 && (size_t)id < e->wp.n_vocab ? e->wp.token[id] : NULL;
}

/* ---- tokenizing and embedding ---- */

/*
 * Pieces of text as the model sees it (the query prefix included with
 * RETR_EMBED_QUERY); the first cap go to ids and spans (relative to text).
 */
static size_t pieces(const struct retr_embedder *e, struct buf *scratch, const char *text,
                     size_t len, unsigned flags, int32_t *ids, struct retr_span *spans, size_t cap)
{
    size_t plen = 0, n;

    if ((flags & RETR_EMBED_QUERY) && e->prefix[0]) {
        buf_reset(scratch);
        buf_appends(scratch, e->prefix);
        plen = scratch->len;
        buf_append(scratch, text, len);
        text = scratch->data;
        len = scratch->len;
    }
    n = retr_wp_encode(&e->wp, text, len, ids, spans, cap);
    for (size_t i = 0; spans && plen && i < n && i < cap; i++) {
        spans[i].start = spans[i].start < plen ? 0 : spans[i].start - plen;
        spans[i].end = spans[i].end < plen ? 0 : spans[i].end - plen;
    }
    return n;
}

static int too_long(const struct retr_embedder *e, size_t i, size_t n, struct rag_err *err)
{
    return rag_errf(err, RAG_EINVAL,
                    "text %zu has %zu tokens, more than the limit of %zu of model '%s'", i, n,
                    e->info.max_tokens, e->name);
}

int retr_tokenize(const struct retr_embedder *e, const char *text, size_t len, unsigned flags,
                  int32_t *ids, struct retr_span *spans, size_t cap, size_t *ret_n,
                  struct rag_err *err)
{
    struct buf scratch = BUF_INIT;
    size_t n = pieces(e, &scratch, text, len, flags, NULL, NULL, 0), keep;

    if (n > e->info.max_tokens && !(flags & RETR_EMBED_TRUNCATE)) {
        buf_release(&scratch);
        return too_long(e, 0, n, err);
    }
    keep = n < e->info.max_tokens ? n : e->info.max_tokens;
    if (cap > 0) {
        ids[0] = e->wp.cls;
        if (spans)
            spans[0] = (struct retr_span){ 0, 0 };
        pieces(e, &scratch, text, len, flags, ids + 1, spans ? spans + 1 : NULL,
               cap - 1 < keep ? cap - 1 : keep);
    }
    if (cap > keep + 1) {
        ids[keep + 1] = e->wp.sep;
        if (spans)
            spans[keep + 1] = (struct retr_span){ 0, 0 };
    }
    *ret_n = keep + 2;
    buf_release(&scratch);
    return 0;
}

static int cmp_longest(const void *a, const void *b, void *ctx)
{
    const size_t *len = ctx, x = *(const size_t *)a, y = *(const size_t *)b;

    if (len[x] != len[y])
        return len[x] > len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Mean of the sequence's hidden states, or its [CLS] state; then L2-normalised. */
static void pool(const struct retr_embedder *e, size_t s, float *out)
{
    size_t d = e->info.dim, a = e->start[s], z = e->start[s + 1];
    double norm = 0;

    if (e->info.pooling == RETR_POOLING_CLS)
        z = a + 1;
    for (size_t k = 0; k < d; k++) {
        double sum = 0;

        for (size_t t = a; t < z; t++)
            sum += e->run.h[t * d + k];
        out[k] = (float)(sum / (double)(z - a));
        norm += (double)out[k] * out[k];
    }
    norm = sqrt(norm);
    norm = norm > 1e-12 ? norm : 1e-12;
    for (size_t k = 0; k < d; k++)
        out[k] = (float)(out[k] / norm);
}

struct job {
    const char *const *texts;
    const size_t *lens;
    size_t *n_tok; /* model input length of each text */
    size_t *order;
    unsigned flags;
};

static size_t text_len(const struct job *j, size_t i)
{
    return j->lens ? j->lens[i] : strlen(j->texts[i]);
}

static int n_threads(const struct retr_embedder *e, size_t n_texts)
{
    if (n_texts < PARALLEL_MIN)
        return 1;
    return e->opts.n_threads ? (int)e->opts.n_threads : omp_get_max_threads();
}

/* The model input of text order[k] at ids (its n_tok ids), padded with [PAD] to width. */
static void fill_one(const struct retr_embedder *e, const struct job *j, struct buf *scratch,
                     size_t k, int32_t *ids, size_t width)
{
    size_t i = j->order[k], n = j->n_tok[i];

    ids[0] = e->wp.cls;
    pieces(e, scratch, j->texts[i], text_len(j, i), j->flags, ids + 1, NULL, n - 2);
    ids[n - 1] = e->wp.sep;
    for (size_t t = n; t < width; t++)
        ids[t] = e->wp.pad;
}

/*
 * Write texts order[first..first + n_seq) into e->ids, sequence s from
 * e->start[s]: packed back to back (width 0) or in rows of width ids.
 */
static void fill_ids(struct retr_embedder *e, const struct job *j, size_t first, size_t n_seq,
                     size_t width)
{
    size_t pos = 0;

    for (size_t s = 0; s < n_seq; s++) {
        e->start[s] = pos;
        pos += width ? width : j->n_tok[j->order[first + s]];
    }
    e->start[n_seq] = pos;
#pragma omp parallel num_threads(n_threads(e, n_seq))
    {
        struct buf scratch = BUF_INIT;

#pragma omp for schedule(dynamic, 4)
        for (size_t s = 0; s < n_seq; s++)
            fill_one(e, j, &scratch, first + s, e->ids + e->start[s], width);
        buf_release(&scratch);
    }
}

/* Encode texts order[first..first + n_seq) on the CPU and pool them into out. */
static void run_batch(struct retr_embedder *e, const struct job *j, size_t first, size_t n_seq,
                      float *out)
{
    fill_ids(e, j, first, n_seq, 0);
    retr_bert_forward(&e->model, &e->run, e->ids, e->start, n_seq);
    for (size_t s = 0; s < n_seq; s++)
        pool(e, s, out + j->order[first + s] * e->info.dim);
}

/* Count every text's pieces (in parallel), check the limit, sort longest first. */
static int measure(struct retr_embedder *e, struct job *j, size_t n, struct rag_err *err)
{
#pragma omp parallel num_threads(n_threads(e, n))
    {
        struct buf scratch = BUF_INIT;

#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++)
            j->n_tok[i] = pieces(e, &scratch, j->texts[i], text_len(j, i), j->flags, NULL, NULL, 0);
        buf_release(&scratch);
    }
    for (size_t i = 0; i < n; i++) {
        size_t c = j->n_tok[i];

        if (c > e->info.max_tokens && !(j->flags & RETR_EMBED_TRUNCATE))
            return too_long(e, i, c, err);
        j->n_tok[i] = (c < e->info.max_tokens ? c : e->info.max_tokens) + 2;
        j->order[i] = i;
    }
    qsort_r(j->order, n, sizeof(*j->order), cmp_longest, j->n_tok);
    return 0;
}

static void embed_cpu(struct retr_embedder *e, const struct job *j, size_t n, float *out)
{
    size_t first = 0;

    while (first < n) {
        size_t n_seq = 0, tokens = 0;

        while (first + n_seq < n &&
               tokens + j->n_tok[j->order[first + n_seq]] <= e->opts.batch_tokens)
            tokens += j->n_tok[j->order[first + n_seq++]];
        run_batch(e, j, first, n_seq, out);
        first += n_seq;
        if (e->opts.progress)
            e->opts.progress(e->opts.progress_ctx, first, n);
    }
}

/*
 * The GPU batch from text order[first]: as many texts as fit batch_tokens
 * padded to the first (longest) one's length, tokenized into e->ids and
 * e->lens. Returns the number of texts; *ret_len gets the padded length.
 */
static size_t gpu_batch(struct retr_embedder *e, const struct job *j, size_t first, size_t n,
                        size_t *ret_len)
{
    size_t len = j->n_tok[j->order[first]], n_seq = 1;

    while (first + n_seq < n && (n_seq + 1) * len <= e->opts.batch_tokens)
        n_seq++;
    fill_ids(e, j, first, n_seq, len);
    for (size_t s = 0; s < n_seq; s++)
        e->lens[s] = (int32_t)j->n_tok[j->order[first + s]];
    *ret_len = len;
    return n_seq;
}

/* Launch batch k, tokenize batch k + 1 meanwhile, collect k; repeat. */
static int embed_gpu(struct retr_embedder *e, const struct job *j, size_t n, float *out,
                     struct rag_err *err)
{
    size_t first = 0, len = 0, n_seq = n ? gpu_batch(e, j, 0, n, &len) : 0, d = e->info.dim;
    int rc = 0;

    while (!rc && first < n) {
        size_t next = first + n_seq, next_len = 0, next_n = 0;

        rc = retr_bert_gpu_launch(e->gpu, e->ids, e->lens, n_seq, len, err);
        if (!rc && next < n)
            next_n = gpu_batch(e, j, next, n, &next_len);
        if (!rc)
            rc = retr_bert_gpu_collect(e->gpu, e->pooled, err);
        for (size_t s = 0; !rc && s < n_seq; s++)
            memcpy(out + j->order[first + s] * d, e->pooled + s * d, d * sizeof(float));
        first = next;
        n_seq = next_n;
        len = next_len;
        if (!rc && e->opts.progress)
            e->opts.progress(e->opts.progress_ctx, first, n);
    }
    if (rc)
        rag_err_prefix(err, "embedder '%s'", e->name);
    return rc;
}

int retr_embed(struct retr_embedder *e, const char *const *texts, const size_t *lens, size_t n,
               unsigned flags, float *out, struct rag_err *err)
{
    struct job j = { .texts = texts, .lens = lens, .flags = flags };
    int rc;

    if (e->opts.tokenizer_only)
        return rag_errf(err, RAG_EINVAL, "embedder '%s' was opened for tokenizing only",
                        e->info.name);
    j.n_tok = xmalloc_array(n ? n : 1, sizeof(*j.n_tok));
    j.order = xmalloc_array(n ? n : 1, sizeof(*j.order));
    rc = measure(e, &j, n, err);
    if (!rc && e->gpu)
        rc = embed_gpu(e, &j, n, out, err);
    else if (!rc)
        embed_cpu(e, &j, n, out);
    free(j.n_tok);
    free(j.order);
    return rc;
}
