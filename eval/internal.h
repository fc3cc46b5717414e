/*
 * eval/internal.h - helpers shared by the eval/ loaders: a string-to-index
 * hash map, a JSON Lines reader whose errors name file and line, and typed
 * field getters. Internal to eval/.
 */
#ifndef EVAL_INTERNAL_H
#define EVAL_INTERNAL_H

#include "eval/eval.h"

struct cJSON;

#define IDMAP_NONE ((size_t)-1)

/* Open-addressing map from borrowed NUL-terminated keys to indices. */
struct idmap {
    const char **key;
    size_t *val;
    size_t n, cap; /* cap is 0 or a power of two */
};

void idmap_init(struct idmap *m);
void idmap_release(struct idmap *m);
/* Insert key -> val unless key is present; returns the existing value or IDMAP_NONE. */
size_t idmap_put(struct idmap *m, const char *key, size_t val);
size_t idmap_get(const struct idmap *m, const char *key); /* IDMAP_NONE when absent */

struct eval_dataset_index {
    struct idmap docs, questions;
};

/* A line reader over a whole file in memory; name is used in messages. */
struct jsonl {
    const char *name;
    struct buf data;
    size_t pos;      /* start of the next line */
    size_t line_no;  /* 1-based number of the current line */
    size_t line_off; /* byte offset of the current line */
    size_t n_records;
};

/* Read path; name (borrowed for the reader's life) is what messages show. */
int jsonl_open(struct jsonl *j, const char *path, struct rag_err *err);
void jsonl_close(struct jsonl *j);
/* Next non-blank line as text; returns false at the end of the file. */
bool jsonl_next_line(struct jsonl *j, const char **ret_line, size_t *ret_len);
/*
 * Parse the next non-blank line as a JSON object into *ret (cJSON_Delete it).
 * Returns 1 with an item, 0 at the end (RAG_EFORMAT when the file had no
 * record at all), or a negative code.
 */
int jsonl_next(struct jsonl *j, struct cJSON **ret, struct rag_err *err);
/* Fill err with "'<name>' line N: <message>"; returns code. */
int jsonl_errf(const struct jsonl *j, struct rag_err *err, int code, const char *fmt, ...)
    RAG_PRINTF(4, 5);

/*
 * Typed object fields. A missing optional field leaves *ret unchanged and
 * returns 0; a missing required field or one of the wrong type is RAG_EFORMAT
 * naming the field.
 */
int json_field_string(const struct jsonl *j, const struct cJSON *obj, const char *key,
                      bool required, const char **ret, struct rag_err *err);
int json_field_size(const struct jsonl *j, const struct cJSON *obj, const char *key, bool required,
                    size_t *ret, struct rag_err *err);
int json_field_bool(const struct jsonl *j, const struct cJSON *obj, const char *key, bool required,
                    bool *ret, struct rag_err *err);
/* Array field (NULL when absent and optional). */
int json_field_array(const struct jsonl *j, const struct cJSON *obj, const char *key, bool required,
                     const struct cJSON **ret, struct rag_err *err);
/* A JSON number that is an integer in [0, 2^53]; false otherwise. */
bool json_to_size(const struct cJSON *item, size_t *ret);

/* Layout loaders (dataset.c calls them after detection). */
int beir_load(struct eval_dataset *ds, const char *dir, const char *split, struct rag_err *err);
int qa_load(struct eval_dataset *ds, const char *dir, struct rag_err *err);
/* Register doc i of ds in the index; RAG_EFORMAT (via j) on a duplicate id. */
int dataset_add_doc_id(struct eval_dataset *ds, const struct jsonl *j, size_t i,
                       struct rag_err *err);
/* Path "<dir>/<name>" in the dataset arena. */
char *dataset_path(struct eval_dataset *ds, const char *dir, const char *name);

/* Unicode properties as Python's str methods define them (unicode.c, generated). */
bool uni_isalnum(uint32_t cp);
bool uni_isspace(uint32_t cp);
uint32_t uni_lower(uint32_t cp); /* simple one-to-one mapping */

/* PCG32 (O'Neill), used for bootstrap and question sampling. */
struct pcg32 {
    uint64_t state, inc;
};
void pcg32_seed(struct pcg32 *r, uint64_t seed);
uint32_t pcg32_next(struct pcg32 *r);
uint32_t pcg32_below(struct pcg32 *r, uint32_t bound); /* uniform in [0, bound), bound > 0 */

#endif
