/*
 * cmd/ask_json.c - the JSON trace of `rag ask --json` (schema rag.ask/1):
 *   schema, question, answer, abstained, weak_evidence, stopped;
 *   candidates[]: rank, source (the [n] in the prompt, null when not in it),
 *     chunk_id, doc_path, heading_path, page_start, page_end, byte_start,
 *     byte_end, score, bm25_rank, dense_rank, dense_score (null when absent),
 *     cited;
 *   citation_problems[]: messages;
 *   tokens: budget, prompt, reused (found in the KV cache), answer;
 *   timings (seconds): embed, bm25, dense, search, prefill, decode,
 *     time_to_first_token, total; decode_tokens_per_s.
 */
#include "cmd/cmd.h"

#include <cjson/cJSON.h>

static void add_rank(cJSON *o, const char *key, size_t rank)
{
    if (rank)
        cJSON_AddNumberToObject(o, key, (double)rank);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *candidate(const struct ask_source *s, size_t i, size_t n_in_prompt)
{
    cJSON *c = cJSON_CreateObject();

    cJSON_AddNumberToObject(c, "rank", (double)(i + 1));
    if (s->in_prompt && i < n_in_prompt)
        cJSON_AddNumberToObject(c, "source", (double)(i + 1));
    else
        cJSON_AddNullToObject(c, "source");
    cJSON_AddNumberToObject(c, "chunk_id", (double)s->chunk_id);
    cJSON_AddStringToObject(c, "doc_path", s->path);
    cJSON_AddStringToObject(c, "heading_path", s->heading);
    cJSON_AddNumberToObject(c, "page_start", s->page_start);
    cJSON_AddNumberToObject(c, "page_end", s->page_end);
    cJSON_AddNumberToObject(c, "byte_start", (double)s->byte_start);
    cJSON_AddNumberToObject(c, "byte_end", (double)s->byte_end);
    cJSON_AddNumberToObject(c, "score", s->score);
    add_rank(c, "bm25_rank", s->bm25_rank);
    add_rank(c, "dense_rank", s->dense_rank);
    if (s->dense_rank)
        cJSON_AddNumberToObject(c, "dense_score", s->dense_score);
    else
        cJSON_AddNullToObject(c, "dense_score");
    cJSON_AddBoolToObject(c, "cited", s->cited);
    return c;
}

static void add_timings(cJSON *j, const struct ask_result *r)
{
    cJSON *t = cJSON_AddObjectToObject(j, "timings");

    cJSON_AddNumberToObject(t, "embed", r->retrieval.embed_s);
    cJSON_AddNumberToObject(t, "bm25", r->retrieval.bm25_s);
    cJSON_AddNumberToObject(t, "dense", r->retrieval.dense_s);
    cJSON_AddNumberToObject(t, "search", r->search_s);
    cJSON_AddNumberToObject(t, "prefill", r->prefill_s);
    cJSON_AddNumberToObject(t, "decode", r->decode_s);
    cJSON_AddNumberToObject(t, "time_to_first_token", r->ttft_s);
    cJSON_AddNumberToObject(t, "total", r->total_s);
    cJSON_AddNumberToObject(j, "decode_tokens_per_s",
                            r->decode_s > 0 ? (double)r->gen_tokens / r->decode_s : 0.0);
}

void ask_print_json(const struct ask_result *r)
{
    static const char *const stops[] = { "none", "eos", "limit", "context", "interrupt", "caller" };
    cJSON *j = cJSON_CreateObject(), *arr, *tok, *dev;
    size_t i, n_in = 0;
    char *s;

    while (n_in < r->n_sources && r->source[n_in].in_prompt)
        n_in++;
    cJSON_AddStringToObject(j, "schema", "rag.ask/1");
    cJSON_AddStringToObject(j, "question", r->question);
    cJSON_AddStringToObject(j, "answer", buf_cstr(&r->answer));
    cJSON_AddBoolToObject(j, "abstained", r->abstained);
    cJSON_AddBoolToObject(j, "weak_evidence", r->weak);
    cJSON_AddStringToObject(j, "stopped", stops[r->stopped]);
    arr = cJSON_AddArrayToObject(j, "candidates");
    for (i = 0; i < r->n_sources; i++)
        cJSON_AddItemToArray(arr, candidate(&r->source[i], i, n_in));
    arr = cJSON_AddArrayToObject(j, "citation_problems");
    for (i = 0; i < r->n_problems; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(r->problem[i]));
    dev = cJSON_AddObjectToObject(j, "device");
    cJSON_AddStringToObject(dev, "embedder", r->embed_gpu ? "gpu" : "cpu");
    cJSON_AddStringToObject(dev, "generator", r->gen_gpu ? "gpu" : "cpu");
    tok = cJSON_AddObjectToObject(j, "tokens");
    cJSON_AddNumberToObject(tok, "budget", (double)r->budget);
    cJSON_AddNumberToObject(tok, "prompt", (double)r->prompt_tokens);
    cJSON_AddNumberToObject(tok, "reused", (double)r->reused_tokens);
    cJSON_AddNumberToObject(tok, "answer", (double)r->gen_tokens);
    add_timings(j, r);
    s = cJSON_PrintUnformatted(j);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(j);
}
