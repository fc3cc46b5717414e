/*
 * generation/generate.c - the token loop: prefill a prompt (reusing what
 * the KV cache already holds of it), then sample, decode and stream tokens
 * until a stop token, a stop string, the token limit, the context window, a
 * callback or an interrupt ends it. Decoded text is held back while it could
 * still be the start of a stop string, so no part of one is ever streamed.
 */
#include "generation/generation.h"

#include <string.h>

/* Bytes at the end of text[0..len) that are a proper prefix of a stop string. */
static size_t stop_prefix(const char *text, size_t len, const char *const *stop, size_t n_stop)
{
    size_t best = 0, i, k, sl;

    for (i = 0; i < n_stop; i++) {
        sl = strlen(stop[i]);
        for (k = sl - 1 < len ? sl - 1 : len; k > best; k--)
            if (!memcmp(text + len - k, stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* Offset of the first complete stop string in text[0..len), or len. */
static size_t stop_at(const char *text, size_t len, const char *const *stop, size_t n_stop)
{
    size_t best = len, i;
    const char *p;

    for (i = 0; i < n_stop; i++) {
        p = memmem(text, len, stop[i], strlen(stop[i]));
        if (p && (size_t)(p - text) < best)
            best = (size_t)(p - text);
    }
    return best;
}

/* Stream answer[*sent..upto) to the callback; non-zero from it stops. */
static int emit(const struct gen_generate_opts *o, const struct buf *answer, size_t *sent,
                size_t upto)
{
    int rc = 0;

    if (upto > *sent && o->on_text)
        rc = o->on_text(o->ctx, answer->data + *sent, upto - *sent);
    *sent = upto;
    return rc;
}

/* Tokens of prompt already in the cache: the common prefix with what was evaluated. */
static size_t reusable(const struct gen_tokens *cached, const int32_t *prompt, size_t n)
{
    size_t i = 0;

    while (i < cached->n && i < n && cached->item[i] == prompt[i])
        i++;
    return i == n ? n - 1 : i; /* always evaluate at least the last token */
}

static int prefill(struct gen_model *m, struct gen_tokens *cached, const int32_t *prompt, size_t n,
                   float *logits, struct gen_generate_stats *st, struct rag_err *err)
{
    size_t keep = reusable(cached, prompt, n);
    double t0 = time_now();
    int rc;

    gen_kv_truncate(m, keep);
    rc = gen_eval(m, prompt + keep, n - keep, keep, logits, err);
    cached->n = 0;
    if (!rc) {
        VEC_RESERVE(cached, n);
        memcpy(cached->item, prompt, n * sizeof(*prompt));
        cached->n = n;
    }
    st->n_prompt = n;
    st->n_reused = keep;
    st->prefill_s = time_now() - t0;
    return rc;
}

/* One decode step: sample from logits, decode, evaluate the token for the next step. */
static int step(struct gen_model *m, struct gen_tokenizer *t, const struct gen_generate_opts *o,
                float *logits, struct gen_detok *d, struct buf *answer, bool *eos,
                struct gen_tokens *cached, struct rag_err *err)
{
    int32_t tok = gen_sampler_sample(o->sampler, logits);

    gen_sampler_accept(o->sampler, tok);
    *eos = gen_tok_is_stop(t, tok);
    if (*eos)
        return 0;
    gen_detok_push(d, tok, answer);
    VEC_RESERVE(cached, cached->n + 1);
    cached->item[cached->n++] = tok;
    return gen_eval(m, &tok, 1, cached->n - 1, logits, err);
}

/* Why the loop must stop before the next token, or GEN_STOP_NONE. */
static enum gen_stop limit(const struct gen_model_info *info, const struct gen_generate_opts *o,
                           const struct gen_generate_stats *st, size_t n_cached)
{
    if (st->n_gen >= o->max_tokens)
        return GEN_STOP_LIMIT;
    if (n_cached >= info->n_ctx)
        return GEN_STOP_CONTEXT;
    if (o->interrupt && *o->interrupt)
        return GEN_STOP_INTERRUPT;
    return GEN_STOP_NONE;
}

/* Cut a complete stop string off the answer; true when there was one. */
static bool cut_stop(struct buf *answer, size_t start, const char *const *stop, size_t n_stop)
{
    size_t cut = stop_at(answer->data + start, answer->len - start, stop, n_stop) + start;

    if (cut == answer->len)
        return false;
    answer->len = cut;
    answer->data[cut] = '\0';
    return true;
}

static int decode(struct gen_model *m, struct gen_tokenizer *t, const struct gen_generate_opts *o,
                  float *logits, struct gen_tokens *cached, struct buf *answer,
                  struct gen_generate_stats *st, struct rag_err *err)
{
    size_t n_stop, start = answer->len, sent = answer->len, hold;
    const char *const *stop = gen_chat_stop_strings(t, &n_stop);
    struct gen_detok d;
    double t0 = time_now();
    bool eos = false;
    int rc = 0;

    gen_detok_init(&d, t, 0);
    for (;;) {
        st->stopped = limit(gen_model_info(m), o, st, cached->n);
        if (st->stopped)
            break;
        rc = step(m, t, o, logits, &d, answer, &eos, cached, err);
        if (rc)
            break;
        if (eos) {
            st->stopped = GEN_STOP_EOS;
            break;
        }
        if (++st->n_gen == 1)
            st->ttft_s = st->prefill_s + time_now() - t0;
        if (cut_stop(answer, start, stop, n_stop)) {
            st->stopped = GEN_STOP_EOS;
            break;
        }
        hold = stop_prefix(answer->data + start, answer->len - start, stop, n_stop);
        if (emit(o, answer, &sent, answer->len - hold)) {
            st->stopped = GEN_STOP_CALLER;
            break;
        }
    }
    if (!rc && st->stopped != GEN_STOP_CALLER) {
        gen_detok_flush(&d, answer);
        emit(o, answer, &sent, answer->len);
    }
    st->decode_s = time_now() - t0;
    return rc;
}

int gen_generate(struct gen_model *m, struct gen_tokenizer *t, const int32_t *prompt, size_t n,
                 const struct gen_generate_opts *o, struct gen_tokens *cached, struct buf *answer,
                 struct gen_generate_stats *st, struct rag_err *err)
{
    const struct gen_model_info *info = gen_model_info(m);
    float *logits;
    int rc;

    memset(st, 0, sizeof(*st));
    if (n == 0 || n >= info->n_ctx)
        return rag_errf(err, RAG_EINVAL, "prompt of %zu tokens does not fit the context of %zu", n,
                        info->n_ctx);
    logits = xmalloc_array(info->n_vocab, sizeof(*logits));
    rc = prefill(m, cached, prompt, n, logits, st, err);
    rc = rc ? rc : decode(m, t, o, logits, cached, answer, st, err);
    if (rc)
        cached->n = 0; /* the cache no longer matches what we recorded */
    free(logits);
    return rc;
}

/* ---- many answers at once ---- */

/* Item i's first tokens: its prompt into KV sequence i, logits into row i. */
static int prefill_batch(struct gen_model *m, struct gen_batch_item *it, size_t n, float *logits,
                         struct rag_err *err)
{
    size_t nv = gen_model_info(m)->n_vocab;
    int rc = 0;

    for (size_t i = 0; !rc && i < n; i++) {
        double t0 = time_now();

        gen_seq_truncate(m, i, 0);
        rc = gen_eval_seq(m, i, it[i].prompt, it[i].n, 0, logits + i * nv, err);
        it[i].st.n_prompt = it[i].n;
        it[i].st.prefill_s = time_now() - t0;
    }
    return rc;
}

/* The items of a batch, the sequences still running and their next tokens. */
struct batch_live {
    struct gen_batch_item *item; /* (n items); item i decodes into KV sequence i */
    struct gen_detok *detok;     /* (n items) */
    size_t *start;               /* (n items) each answer's length before the batch */
    size_t max_tokens;
    size_t *seq; /* (n) the running sequences, in order */
    int32_t *tok;
    size_t n;
};

/* Why item s must stop before its next token, or GEN_STOP_NONE (gen_generate's limit()). */
static enum gen_stop batch_limit(struct gen_model *m, const struct batch_live *l, size_t s)
{
    if (l->item[s].st.n_gen >= l->max_tokens)
        return GEN_STOP_LIMIT;
    if (gen_seq_len(m, s) >= gen_model_info(m)->n_ctx)
        return GEN_STOP_CONTEXT;
    return GEN_STOP_NONE;
}

/*
 * Sample item s's next token from row; false when the item has finished
 * (its stop reason set, its text complete), else *tok is to be evaluated.
 */
static bool batch_step(struct gen_model *m, struct gen_tokenizer *t, struct batch_live *l, size_t s,
                       float *row, int32_t *tok)
{
    struct gen_batch_item *it = &l->item[s];
    size_t n_stop;
    const char *const *stop = gen_chat_stop_strings(t, &n_stop);

    it->st.stopped = batch_limit(m, l, s);
    if (!it->st.stopped) {
        *tok = gen_sampler_sample(it->sampler, row);
        gen_sampler_accept(it->sampler, *tok);
        if (gen_tok_is_stop(t, *tok)) {
            it->st.stopped = GEN_STOP_EOS;
        } else {
            gen_detok_push(&l->detok[s], *tok, it->answer);
            it->st.n_gen++;
            if (cut_stop(it->answer, l->start[s], stop, n_stop))
                it->st.stopped = GEN_STOP_EOS;
        }
    }
    if (it->st.stopped)
        gen_detok_flush(&l->detok[s], it->answer);
    return it->st.stopped == GEN_STOP_NONE;
}

/*
 * One pass over the running items' logits rows; keeps those that go on, in
 * order. t0: when the batch started; t_dec: when its decoding started.
 */
static void batch_advance(struct gen_model *m, struct gen_tokenizer *t, struct batch_live *l,
                          float *logits, double t0, double t_dec)
{
    size_t nv = gen_model_info(m)->n_vocab, kept = 0, s;
    int32_t tok = 0;

    for (size_t j = 0; j < l->n; j++) {
        s = l->seq[j];
        if (batch_step(m, t, l, s, logits + j * nv, &tok)) {
            l->seq[kept] = s;
            l->tok[kept++] = tok;
        } else {
            l->item[s].st.decode_s = time_now() - t_dec;
        }
        if (l->item[s].st.n_gen == 1 && l->item[s].st.ttft_s == 0)
            l->item[s].st.ttft_s = time_now() - t0;
    }
    l->n = kept;
}

int gen_generate_batch(struct gen_model *m, struct gen_tokenizer *t, struct gen_batch_item *items,
                       size_t n, size_t max_tokens, struct rag_err *err)
{
    const struct gen_model_info *info = gen_model_info(m);
    struct batch_live l = { .item = items, .max_tokens = max_tokens };
    double t0 = time_now(), t_dec;
    float *logits;
    int rc = 0;

    if (n == 0 || n > info->n_seqs)
        return rag_errf(err, RAG_EINVAL, "batch of %zu answers for a model of %zu sequences", n,
                        info->n_seqs);
    for (size_t i = 0; i < n; i++) {
        memset(&items[i].st, 0, sizeof(items[i].st));
        if (items[i].n == 0 || items[i].n >= info->n_ctx)
            return rag_errf(err, RAG_EINVAL,
                            "prompt %zu of %zu tokens does not fit the context of %zu", i,
                            items[i].n, info->n_ctx);
    }
    logits = xmalloc_array(n, info->n_vocab * sizeof(*logits));
    l.seq = xmalloc_array(n, sizeof(*l.seq));
    l.tok = xmalloc_array(n, sizeof(*l.tok));
    l.detok = xmalloc_array(n, sizeof(*l.detok));
    l.start = xmalloc_array(n, sizeof(*l.start));
    for (size_t i = 0; i < n; i++) {
        l.seq[i] = i;
        l.start[i] = items[i].answer->len;
        gen_detok_init(&l.detok[i], t, 0);
    }
    l.n = n;
    rc = prefill_batch(m, items, n, logits, err);
    t_dec = time_now();
    while (!rc && l.n > 0) {
        batch_advance(m, t, &l, logits, t0, t_dec);
        if (l.n > 0)
            rc = gen_decode_batch(m, l.seq, l.tok, l.n, logits, NULL, err);
    }
    free(logits);
    free(l.seq);
    free(l.tok);
    free(l.detok);
    free(l.start);
    return rc;
}
