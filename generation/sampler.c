/*
 * generation/sampler.c - choose the next token from logits.
 *
 * Pipeline (generation.h): repetition penalty, then greedy or temperature,
 * top-k, top-p, min-p and a draw. Candidates are kept as (index, logit)
 * pairs sorted by decreasing logit, ties broken by lower index, so results
 * are deterministic. Top-k uses a partial selection (O(n log k)) before the
 * sort of the survivors. The PRNG is xoshiro256** seeded through splitmix64
 * and turns 53 random bits into a double in [0, 1).
 */
#include "generation/generation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static double next_double(uint64_t s[4])
{
    return (double)(next_u64(s) >> 11) * 0x1.0p-53;
}

static void seed(struct gen_sampler *s)
{
    uint64_t x = s->opts.seed;

    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
}

int gen_sampler_init(struct gen_sampler *s, const struct gen_sampler_opts *opts, size_t n_vocab,
                     struct rag_err *err)
{
    const struct gen_sampler_opts *o = opts;

    memset(s, 0, sizeof(*s));
    if (n_vocab == 0 || n_vocab > INT32_MAX)
        return rag_errf(err, RAG_EINVAL, "invalid vocabulary size %zu", n_vocab);
    if (!(o->temperature >= 0.0f && isfinite(o->temperature)))
        return rag_errf(err, RAG_EINVAL, "invalid temperature %g", (double)o->temperature);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return rag_errf(err, RAG_EINVAL, "invalid top-p %g (0 < p <= 1)", (double)o->top_p);
    if (!(o->min_p >= 0.0f && o->min_p <= 1.0f))
        return rag_errf(err, RAG_EINVAL, "invalid min-p %g (0 <= p <= 1)", (double)o->min_p);
    if (!(o->repeat_penalty > 0.0f && isfinite(o->repeat_penalty)))
        return rag_errf(err, RAG_EINVAL, "invalid repetition penalty %g",
                        (double)o->repeat_penalty);
    s->opts = *o;
    s->n_vocab = n_vocab;
    s->history = xmalloc_array(o->repeat_last_n ? o->repeat_last_n : 1, sizeof(*s->history));
    s->prob = xmalloc_array(n_vocab, sizeof(*s->prob));
    s->idx = xmalloc_array(n_vocab, sizeof(*s->idx));
    seed(s);
    return 0;
}

void gen_sampler_release(struct gen_sampler *s)
{
    if (!s)
        return;
    free(s->history);
    free(s->prob);
    free(s->idx);
    memset(s, 0, sizeof(*s));
}

void gen_sampler_reset(struct gen_sampler *s)
{
    s->n_history = 0;
    s->history_pos = 0;
    seed(s);
}

void gen_sampler_accept(struct gen_sampler *s, int32_t token)
{
    size_t cap = s->opts.repeat_last_n;

    if (!cap)
        return;
    s->history[s->history_pos] = token;
    s->history_pos = (s->history_pos + 1) % cap;
    if (s->n_history < cap)
        s->n_history++;
}

static void apply_penalty(const struct gen_sampler *s, float *logits)
{
    float p = s->opts.repeat_penalty;

    if (p == 1.0f)
        return;
    /* each distinct token is penalized once: mark with the scratch index array */
    memset(s->idx, 0, s->n_vocab * sizeof(*s->idx));
    for (size_t i = 0; i < s->n_history; i++) {
        int32_t t = s->history[i];
        if (t < 0 || (size_t)t >= s->n_vocab || s->idx[t])
            continue;
        s->idx[t] = 1;
        logits[t] = logits[t] > 0.0f ? logits[t] / p : logits[t] * p;
    }
}

int32_t gen_argmax(const float *logits, size_t n)
{
    size_t best = 0;

    for (size_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return (int32_t)best;
}

/* Sort context: candidates by decreasing logit, then increasing index. */
static int cmp_cand(const void *a, const void *b, void *ctx)
{
    const float *l = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;

    if (l[i] != l[j])
        return l[i] > l[j] ? -1 : 1;
    return (i > j) - (i < j);
}

/* True when candidate i ranks below candidate j. */
static int worse(const float *l, int32_t i, int32_t j)
{
    return l[i] < l[j] || (l[i] == l[j] && i > j);
}

static void sift_down(int32_t *h, size_t n, size_t i, const float *l)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && worse(l, h[c + 1], h[c]))
            c++;
        if (!worse(l, h[c], h[i]))
            return;
        int32_t t = h[c];
        h[c] = h[i];
        h[i] = t;
        i = c;
    }
}

/* The k best candidates into s->idx, sorted best first; returns their count. */
static size_t select_top(struct gen_sampler *s, const float *l, size_t k)
{
    int32_t *h = s->idx;
    size_t n = s->n_vocab;

    if (k == 0 || k > n)
        k = n;
    for (size_t i = 0; i < k; i++)
        h[i] = (int32_t)i;
    for (size_t i = k / 2; i-- > 0;)
        sift_down(h, k, i, l);
    for (size_t i = k; i < n; i++) {
        if (worse(l, h[0], (int32_t)i)) {
            h[0] = (int32_t)i;
            sift_down(h, k, 0, l);
        }
    }
    qsort_r(h, k, sizeof(*h), cmp_cand, (void *)l);
    return k;
}

int32_t gen_sampler_sample(struct gen_sampler *s, float *logits)
{
    const struct gen_sampler_opts *o = &s->opts;
    size_t n, keep;
    double sum = 0.0, cum = 0.0, r;
    float inv_t;

    apply_penalty(s, logits);
    if (o->temperature <= 0.0f)
        return gen_argmax(logits, s->n_vocab);
    n = select_top(s, logits, o->top_k);
    inv_t = 1.0f / o->temperature;
    for (size_t i = 0; i < n; i++) {
        s->prob[i] = expf((logits[s->idx[i]] - logits[s->idx[0]]) * inv_t);
        sum += s->prob[i];
    }
    keep = n;
    for (size_t i = 0; i < n && o->top_p < 1.0f; i++) {
        cum += s->prob[i];
        if (cum >= o->top_p * sum) {
            keep = i + 1;
            break;
        }
    }
    /* min-p: probabilities relative to the best, whose unnormalized weight is 1 */
    while (keep > 1 && s->prob[keep - 1] < o->min_p)
        keep--;
    sum = 0.0;
    for (size_t i = 0; i < keep; i++)
        sum += s->prob[i];
    r = next_double(s->rng) * sum;
    for (size_t i = 0; i < keep; i++) {
        r -= s->prob[i];
        if (r < 0.0)
            return s->idx[i];
    }
    return s->idx[keep - 1];
}
