/*
 * cmd/answer.c - answering one question: hybrid retrieval of candidate
 * chunks, a weak-evidence check on their dense scores, a numbered-source
 * prompt within the context window (counted with the generator's own
 * tokenizer, chat template included), generation that reuses the KV cache
 * of the previous prompt's common prefix, and the citation check.
 */
#include "cmd/cmd.h"

#include "gpu/gpu.h"

struct asker {
    struct rag_ctx x;
    struct gen_model *model;
    struct gen_tokenizer *tok;
    struct gen_sampler sampler;
    struct gen_sampler *samplers; /* (o.n_seqs) for asker_ask_batch, when n_seqs > 1 */
    struct gen_tokens cached;     /* what the model's KV cache of sequence 0 holds */
    struct ask_opts o;
    size_t template_tokens; /* the chat template's own tokens around two messages */
    const volatile int *interrupt;
};

void ask_result_init(struct ask_result *r)
{
    memset(r, 0, sizeof(*r));
    arena_init(&r->arena, 0);
}

void ask_result_release(struct ask_result *r)
{
    arena_release(&r->arena);
    buf_release(&r->answer);
    free(r->source);
    free(r->problem);
    memset(r, 0, sizeof(*r));
}

/* Tokens the template adds around a system and a user message and the answer header. */
static int template_overhead(struct asker *a, struct rag_err *err)
{
    struct gen_chat_msg m[2] = { { "system", "" }, { "user", "" } };
    struct gen_tokens t = { 0 };
    int rc = gen_chat_tokenize(a->tok, m, 2, true, &t, err);

    a->template_tokens = t.n;
    gen_tokens_release(&t);
    return rc;
}

/* One sampler per sequence of a batch (the first is a->sampler). */
static int open_samplers(struct asker *a, struct rag_err *err)
{
    size_t n = a->o.n_seqs > 1 ? a->o.n_seqs : 0;
    int rc = 0;

    a->samplers = xcalloc(n ? n : 1, sizeof(*a->samplers));
    for (size_t i = 0; !rc && i < n; i++)
        rc = gen_sampler_init(&a->samplers[i], &a->o.sampler, gen_tok_n_vocab(a->tok), err);
    return rc;
}

static int open_model(struct asker *a, const struct globals *g, struct rag_err *err)
{
    struct gen_model_opts mo;
    struct buf path = BUF_INIT;
    int rc;

    /* Many sequences only where a batch is cheap: their CPU KV caches would be big and slow. */
    if (!a->o.n_seqs || g->device == CMD_DEVICE_CPU || gpu_count() == 0)
        a->o.n_seqs = 1;
    mo = (struct gen_model_opts){ .n_ctx = a->o.n_ctx,
                                  .n_threads = (int)a->o.n_threads,
                                  .device = (enum gen_device)g->device,
                                  .n_seqs = a->o.n_seqs };

    if (a->o.model)
        buf_appends(&path, a->o.model);
    else
        buf_appendf(&path, "%s/%s", g->models_dir, CMD_GENERATOR_DEFAULT);
    rc = gen_model_open(&a->model, path.data, &mo, err);
    if (!rc && !gen_model_on_gpu(a->model))
        a->o.n_seqs = 1; /* AUTO chose the CPU after all */
    rc = rc ? rc : gen_tokenizer_load(&a->tok, gen_model_gguf(a->model), err);
    rc = rc ? rc : gen_sampler_init(&a->sampler, &a->o.sampler, gen_tok_n_vocab(a->tok), err);
    rc = rc ? rc : open_samplers(a, err);
    rc = rc ? rc : template_overhead(a, err);
    if (!rc && gen_model_info(a->model)->n_ctx < a->o.n_ctx)
        a->o.n_ctx = gen_model_info(a->model)->n_ctx;
    buf_release(&path);
    return rc;
}

int asker_open(struct asker **ret, const struct globals *g, const struct ask_opts *o,
               struct rag_err *err)
{
    struct asker *a = xcalloc(1, sizeof(*a));
    struct ctx_opts co = { .vectors = o->mode != RETR_MODE_BM25 };
    int rc;

    a->o = *o;
    rc = ctx_open(&a->x, g, &co, err);
    rc = rc ? rc : open_model(a, g, err);
    if (rc) {
        asker_close(a);
        return rc;
    }
    *ret = a;
    return 0;
}

void asker_close(struct asker *a)
{
    if (!a)
        return;
    ctx_close(&a->x);
    gen_sampler_release(&a->sampler);
    for (size_t i = 0; a->samplers && i < a->o.n_seqs; i++)
        gen_sampler_release(&a->samplers[i]);
    free(a->samplers);
    gen_tokenizer_free(a->tok);
    gen_model_close(a->model);
    gen_tokens_release(&a->cached);
    free(a);
}

size_t asker_batch(const struct asker *a)
{
    return a->o.n_seqs;
}

void asker_set_interrupt(struct asker *a, const volatile int *flag)
{
    a->interrupt = flag;
}

/* Fill one candidate from a fused result, its hit and its chunk. */
static int fill_source(struct asker *a, const struct retr_fused *f, const struct store_hit *h,
                       struct ask_source *s, struct arena *arena, struct rag_err *err)
{
    int dense = a->o.mode == RETR_MODE_HYBRID ? 1 : 0;
    struct store_chunk c;
    int rc = store_get_chunk(a->x.store, f->id, arena, &c, err);

    if (rc)
        return rc;
    *s = (struct ask_source){ .chunk_id = f->id,
                              .text = c.text,
                              .len = c.len,
                              .path = arena_strdup(arena, h->doc_path),
                              .heading = arena_strdup(arena, h->heading_path),
                              .byte_start = c.byte_start,
                              .byte_end = c.byte_end,
                              .page_start = c.page_start,
                              .page_end = c.page_end,
                              .score = f->score };
    s->bm25_rank = a->o.mode == RETR_MODE_DENSE ? 0 : f->rank[0];
    s->dense_rank = a->o.mode == RETR_MODE_BM25 ? 0 : f->rank[dense];
    s->dense_score = s->dense_rank ? f->source_score[dense] : 0;
    return 0;
}

static int retrieve(struct asker *a, const char *query, struct ask_result *r, struct rag_err *err)
{
    struct retr_query_opts qo = RETR_QUERY_OPTS_DEFAULT;
    struct retr_fused *f = xcalloc(a->o.k, sizeof(*f));
    struct store_hit_list hits;
    size_t i;
    int rc;

    qo.mode = a->o.mode;
    qo.k = a->o.k;
    qo.stats = &r->retrieval;
    store_hit_list_init(&hits);
    rc = ctx_rank(&a->x, query, &qo, f, &hits, err);
    r->source = xcalloc(hits.n + 1, sizeof(*r->source));
    for (i = 0; !rc && i < hits.n; i++)
        rc = fill_source(a, &f[i], &hits.item[i], &r->source[i], &r->arena, err);
    r->n_sources = rc ? 0 : hits.n;
    store_hit_list_release(&hits);
    free(f);
    return rc;
}

/* Weak evidence: the candidates' best dense similarity is under the threshold. */
static bool weak(const struct asker *a, const struct ask_result *r)
{
    double best[64];
    size_t n = 0, i;

    if (a->o.min_score <= 0 || a->o.mode == RETR_MODE_BM25)
        return false;
    for (i = 0; i < r->n_sources && n < 64; i++)
        if (r->source[i].dense_rank)
            best[n++] = r->source[i].dense_score;
    return gen_evidence_weak(best, n, a->o.min_score);
}

/* Put the sources in the prompt first, in their [n] order; the rest after. */
static void reorder(struct ask_result *r, const struct gen_prompt *p)
{
    struct ask_source *s = xcalloc(r->n_sources ? r->n_sources : 1, sizeof(*s));
    size_t k, n = 0;

    for (k = 0; k < p->n_source; k++) {
        s[n] = r->source[p->index[k]];
        s[n].in_prompt = true;
        r->source[p->index[k]].in_prompt = true;
        s[n].text = p->source[k].text; /* what the prompt holds (cut when truncated) */
        s[n++].len = p->source[k].len;
    }
    for (k = 0; k < r->n_sources; k++)
        if (!r->source[k].in_prompt)
            s[n++] = r->source[k];
    free(r->source);
    r->source = s;
}

static int build_prompt(struct asker *a, const char *question, struct ask_result *r,
                        struct gen_prompt *p, struct rag_err *err)
{
    struct gen_source *src = xcalloc(r->n_sources ? r->n_sources : 1, sizeof(*src));
    struct gen_prompt_opts po = { .tok = { gen_count_tokens, a->tok }, .system = a->o.system };
    size_t i;
    int rc;

    for (i = 0; i < r->n_sources; i++) {
        const struct ask_source *s = &r->source[i];

        src[i] = (struct gen_source){ s->text,
                                      s->len,
                                      s->path,
                                      s->heading[0] ? s->heading : NULL,
                                      (unsigned)s->page_start,
                                      (unsigned)s->page_end };
    }
    po.budget = a->o.n_ctx - a->o.max_tokens - a->template_tokens;
    r->budget = po.budget;
    rc = gen_prompt_build(p, question, src, r->n_sources, &po, err);
    free(src);
    if (!rc)
        reorder(r, p);
    return rc;
}

/* The chat-formatted ids of prompt p. */
static int prompt_ids(struct asker *a, const struct gen_prompt *p, struct gen_tokens *ids,
                      struct rag_err *err)
{
    struct gen_chat_msg m[2] = { { "system", p->system }, { "user", p->user } };

    return gen_chat_tokenize(a->tok, m, 2, true, ids, err);
}

/* Token counts and timings of a generation; wait_s: from r's start to the generation's. */
static void record(struct ask_result *r, const struct gen_generate_stats *st, double wait_s)
{
    r->prompt_tokens = st->n_prompt;
    r->reused_tokens = st->n_reused;
    r->gen_tokens = st->n_gen;
    r->prefill_s = st->prefill_s;
    r->decode_s = st->decode_s;
    r->ttft_s = wait_s + st->ttft_s;
    r->stopped = st->stopped;
}

static int generate(struct asker *a, const struct gen_prompt *p,
                    int (*on_text)(void *, const char *, size_t), void *ctx, struct ask_result *r,
                    struct rag_err *err)
{
    struct gen_generate_opts go = { .max_tokens = a->o.max_tokens,
                                    .sampler = &a->sampler,
                                    .on_text = on_text,
                                    .ctx = ctx,
                                    .interrupt = a->interrupt };
    struct gen_generate_stats st = { 0 };
    struct gen_tokens ids = { 0 };
    int rc = prompt_ids(a, p, &ids, err);

    gen_sampler_reset(&a->sampler);
    rc = rc ?
             rc :
             gen_generate(a->model, a->tok, ids.item, ids.n, &go, &a->cached, &r->answer, &st, err);
    st.n_prompt = ids.n;
    record(r, &st, r->search_s);
    gen_tokens_release(&ids);
    return rc;
}

/* Flag citations that point nowhere or quote what the source does not say. */
static void check_citations(struct ask_result *r, const struct gen_prompt *p)
{
    struct gen_cite_report rep;
    size_t i;

    gen_cite_check(r->answer.data ? r->answer.data : "", r->answer.len, p->source, p->n_source,
                   &rep);
    for (i = 0; i < p->n_source; i++)
        r->source[i].cited = rep.cited[i];
    r->problem = xcalloc(rep.problems.n ? rep.problems.n : 1, sizeof(*r->problem));
    for (i = 0; i < rep.problems.n; i++)
        r->problem[i] = arena_strdup(&r->arena, rep.problems.item[i].msg);
    r->n_problems = rep.problems.n;
    r->abstained = rep.abstained;
    gen_cite_report_release(&rep);
}

static const char not_found[] = "The answer was " GEN_NOT_FOUND ".";

/* Retrieval and the weak-evidence check; a weak question gets its "not found" answer. */
static int begin(struct asker *a, const char *question, const char *query, struct ask_result *r,
                 struct rag_err *err)
{
    double t0 = time_now();
    int rc;

    r->question = arena_strdup(&r->arena, question);
    r->embed_gpu = a->x.embedder && retr_embedder_on_gpu(a->x.embedder);
    r->gen_gpu = gen_model_on_gpu(a->model);
    rc = retrieve(a, query ? query : question, r, err);
    r->search_s = time_now() - t0;
    r->weak = !rc && weak(a, r);
    if (r->weak) {
        buf_appends(&r->answer, not_found);
        r->abstained = true;
        r->ttft_s = r->search_s;
    }
    return rc;
}

int asker_ask(struct asker *a, const char *question, const char *retrieval_query,
              int (*on_text)(void *ctx, const char *text, size_t len), void *ctx,
              struct ask_result *r, struct rag_err *err)
{
    struct gen_prompt p = { 0 };
    double t0 = time_now();
    int rc = begin(a, question, retrieval_query, r, err);

    if (!rc && r->weak && on_text) {
        on_text(ctx, r->answer.data, r->answer.len);
    } else if (!rc && !r->weak) {
        rc = build_prompt(a, question, r, &p, err);
        rc = rc ? rc : generate(a, &p, on_text, ctx, r, err);
        if (!rc)
            check_citations(r, &p);
    }
    gen_prompt_release(&p);
    r->total_s = time_now() - t0;
    return rc;
}

/* The prompts of a batch: item j answers question of[j]. */
struct batch {
    struct gen_prompt *p;   /* (n questions) */
    struct gen_tokens *ids; /* (n questions) */
    struct gen_batch_item *item;
    size_t *of, n_items;
};

/* Retrieval and a prompt for each question; the weak ones are answered already. */
static int batch_prepare(struct asker *a, const char *const *questions, size_t n,
                         struct ask_result *r, struct batch *b, struct rag_err *err)
{
    int rc = 0;

    for (size_t i = 0; !rc && i < n; i++) {
        rc = begin(a, questions[i], NULL, &r[i], err);
        if (rc || r[i].weak)
            continue;
        rc = build_prompt(a, questions[i], &r[i], &b->p[i], err);
        rc = rc ? rc : prompt_ids(a, &b->p[i], &b->ids[i], err);
        if (rc)
            break;
        b->item[b->n_items] =
            (struct gen_batch_item){ .prompt = b->ids[i].item,
                                     .n = b->ids[i].n,
                                     .sampler =
                                         a->o.n_seqs > 1 ? &a->samplers[b->n_items] : &a->sampler,
                                     .answer = &r[i].answer };
        gen_sampler_reset(b->item[b->n_items].sampler);
        b->of[b->n_items++] = i;
    }
    return rc;
}

int asker_ask_batch(struct asker *a, const char *const *questions, size_t n, struct ask_result *r,
                    struct rag_err *err)
{
    struct batch b = { xcalloc(n + 1, sizeof(*b.p)), xcalloc(n + 1, sizeof(*b.ids)),
                       xcalloc(n + 1, sizeof(*b.item)), xcalloc(n + 1, sizeof(*b.of)), 0 };
    double t0 = time_now(), t_gen;
    int rc = 0;

    if (n > (a->o.n_seqs > 1 ? a->o.n_seqs : 1))
        rc = rag_errf(err, RAG_EINVAL, "batch of %zu questions for %zu sequences", n, a->o.n_seqs);
    rc = rc ? rc : batch_prepare(a, questions, n, r, &b, err);
    t_gen = time_now();
    a->cached.n = 0; /* sequence 0 is overwritten */
    if (!rc && b.n_items)
        rc = gen_generate_batch(a->model, a->tok, b.item, b.n_items, a->o.max_tokens, err);
    for (size_t j = 0; !rc && j < b.n_items; j++) {
        record(&r[b.of[j]], &b.item[j].st, t_gen - t0);
        check_citations(&r[b.of[j]], &b.p[b.of[j]]);
    }
    for (size_t i = 0; i < n; i++) {
        r[i].total_s = time_now() - t0;
        gen_prompt_release(&b.p[i]);
        gen_tokens_release(&b.ids[i]);
    }
    free(b.p);
    free(b.ids);
    free(b.item);
    free(b.of);
    return rc;
}
