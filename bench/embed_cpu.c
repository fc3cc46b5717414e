/*
 * bench/embed_cpu.c - CPU throughput of the retrieval/ embedder.
 *
 * usage: embed_cpu MODEL_DIR TEXTS_FILE N_THREADS REPEAT
 * TEXTS_FILE holds one text per line. The texts are embedded once to warm
 * up, then REPEAT times; the best run is reported on stdout as
 * "texts=N tokens=T seconds=S chunks_per_s=C tokens_per_s=R" (tokens count
 * [CLS] and [SEP], as the model sees them).
 */
#include <stdio.h>
#include <string.h>

#include "retrieval/retrieval.h"

static size_t split_lines(char *text, size_t len, const char ***ret)
{
    const char **lines = NULL;
    size_t n = 0, cap = 0;

    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));

        if (nl)
            *nl = '\0';
        lines = grow_array(lines, &cap, n + 1, sizeof(*lines));
        lines[n++] = p;
        p = nl ? nl + 1 : text + len;
    }
    *ret = lines;
    return n;
}

static int run(const char *dir, const char *file, size_t threads, size_t repeat)
{
    struct retr_embedder_opts opts = { .n_threads = threads };
    struct retr_embedder *e = NULL;
    struct buf b = BUF_INIT;
    struct rag_err err;
    const char **texts = NULL;
    size_t n, tokens = 0;
    double best = 1e30;
    float *out;

    if (file_read(file, 0, &b, &err) || retr_embedder_open(&e, dir, &opts, &err)) {
        fprintf(stderr, "embed_cpu: %s\n", err.msg);
        return 1;
    }
    n = split_lines(b.data, b.len, &texts);
    for (size_t i = 0; i < n; i++)
        tokens += retr_count_tokens(e, texts[i], strlen(texts[i])) + 2;
    out = xmalloc_array(n * retr_embedder_info(e)->dim, sizeof(float));
    for (size_t r = 0; r <= repeat; r++) {
        double t0 = time_now(), dt;

        if (retr_embed(e, texts, NULL, n, 0, out, &err)) {
            fprintf(stderr, "embed_cpu: %s\n", err.msg);
            return 1;
        }
        dt = time_now() - t0;
        best = r > 0 && dt < best ? dt : best;
    }
    printf("texts=%zu tokens=%zu seconds=%.4f chunks_per_s=%.2f tokens_per_s=%.1f\n", n, tokens,
           best, (double)n / best, (double)tokens / best);
    free(out);
    free(texts);
    buf_release(&b);
    retr_embedder_close(e);
    return 0;
}

int main(int argc, char **argv)
{
    size_t threads, repeat;

    if (argc != 5 || parse_size(argv[3], 1, 256, &threads) ||
        parse_size(argv[4], 1, 1000, &repeat)) {
        fprintf(stderr, "usage: embed_cpu MODEL_DIR TEXTS_FILE N_THREADS REPEAT\n");
        return 2;
    }
    return run(argv[1], argv[2], threads, repeat);
}
