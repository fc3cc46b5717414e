/*
 * cmd/eval_answer.c - the answer half of `rag eval` (QA sets, which have
 * gold answers): every question goes through the asker (retrieval, prompt,
 * generation) with short-answer instructions, 32 at a time when the
 * generator runs on a GPU, and its answer, stripped of citation marks, is
 * scored (eval/).
 */
#include "cmd/cmd.h"

#include "eval/eval.h"

/* Questions answered at once when the generator runs on a GPU (1 on the CPU). */
#define EVAL_BATCH 32

/*
 * QA sets score short answers (SQuAD spans), so the model is asked for one;
 * the rest of the default instructions stay.
 */
#define EVAL_SYSTEM                                                                       \
 "Answer the question using only the numbered sources provided. Reply with the shortest " \
 "exact phrase from the sources that answers it, then cite its source like [1]. If the "  \
 "sources do not contain the answer, reply only: " GEN_NOT_FOUND "."

/* One question through the whole pipeline; answer and cost metrics. */
static void score_answer(struct eval_acc *acc, const struct eval_question *q,
                         const struct ask_result *r)
{
    struct eval_answer_scores s;
    struct buf clean = BUF_INIT;

    eval_strip_citations(buf_cstr(&r->answer), &clean);
    eval_score_answer(q, r->abstained ? NULL : clean.data, r->abstained, &s);
    buf_release(&clean);
    eval_acc_add_answer(acc, &s);
    eval_acc_add(acc, "context_tokens", (double)r->prompt_tokens);
    eval_acc_add(acc, "ttft_s", r->ttft_s);
    if (r->decode_s > 0)
        eval_acc_add(acc, "decode_tok_per_s", (double)r->gen_tokens / r->decode_s);
}

/* Questions first..first+n through the asker, as one batch when it takes one. */
static int answer_some(const struct eval_dataset *ds, struct eval_acc *acc, struct asker *a,
                       size_t first, size_t n, struct rag_err *err)
{
    struct ask_result *r = xcalloc(n, sizeof(*r));
    const char **q = xcalloc(n, sizeof(*q));
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        ask_result_init(&r[i]);
        q[i] = ds->question[first + i].text;
    }
    if (n == 1)
        rc = asker_ask(a, q[0], NULL, NULL, NULL, &r[0], err);
    else
        rc = asker_ask_batch(a, q, n, r, err);
    for (i = 0; i < n; i++) {
        if (!rc)
            score_answer(acc, &ds->question[first + i], &r[i]);
        ask_result_release(&r[i]);
    }
    free(r);
    free(q);
    return rc;
}

int eval_answer_questions(const struct eval_dataset *ds, struct eval_acc *acc,
                          const struct ask_opts *o, const struct globals *g, struct rag_err *err)
{
    struct ask_opts ao = *o;
    struct asker *a = NULL;
    struct progress p;
    size_t i, n;
    int rc;

    ao.system = EVAL_SYSTEM;
    ao.n_seqs = EVAL_BATCH;
    rc = asker_open(&a, g, &ao, err);
    progress_start(&p, "answering", "questions", ds->n_questions, cmd_show_progress(g));
    for (i = 0; !rc && i < ds->n_questions; i += n) {
        n = ds->n_questions - i < asker_batch(a) ? ds->n_questions - i : asker_batch(a);
        rc = answer_some(ds, acc, a, i, n, err);
        progress_update(&p, i + n, 0);
    }
    progress_end(&p);
    asker_close(a);
    return rc;
}
