/*
 * retrieval/json.h - a small bounds-checked JSON reader for model files
 * (internal to retrieval/).
 *
 * cJSON is confined to cmd/ and eval/ (STYLE.md 2), and the files read here
 * are small and simple: the safetensors header and the config files of a
 * sentence-transformers model directory. The parser builds a tree in a
 * caller-provided arena; strings are decoded to UTF-8 and NUL-terminated,
 * numbers keep their source text and are converted on demand with the base
 * parse_* functions. Nesting is limited to RETR_JSON_MAX_DEPTH levels.
 */
#ifndef RETRIEVAL_JSON_H
#define RETRIEVAL_JSON_H

#include "base/base.h"

#define RETR_JSON_MAX_DEPTH 32

enum retr_json_type {
    RETR_JSON_NULL,
    RETR_JSON_BOOL,
    RETR_JSON_NUMBER,
    RETR_JSON_STRING,
    RETR_JSON_ARRAY,
    RETR_JSON_OBJECT,
};

struct retr_json {
    enum retr_json_type type;
    const char *key;                /* member name inside an object, else NULL */
    const char *str;                /* decoded string, or the number's source text */
    size_t len;                     /* bytes in str */
    bool b;                         /* RETR_JSON_BOOL */
    size_t n;                       /* children of an array or object */
    struct retr_json *child, *next; /* first child; next sibling */
};

/*
 * Parse text[0..len) into a tree allocated from arena (valid while it
 * lives). name is the file name used in messages: RAG_EFORMAT with
 * "'<name>': invalid json at byte N: <why>".
 */
int retr_json_parse(const char *text, size_t len, const char *name, struct arena *arena,
                    struct retr_json **ret, struct rag_err *err);

/* Member key of an object (first match), or NULL when absent or obj is not an object. */
const struct retr_json *retr_json_get(const struct retr_json *obj, const char *key);

/* Conversions: 0 on success, RAG_EFORMAT when the value has another type or range. */
int retr_json_u64(const struct retr_json *v, uint64_t *ret);
int retr_json_double(const struct retr_json *v, double *ret);

/*
 * Helpers for config files: read member key of obj. Absent members leave
 * *ret unchanged and return 0 unless required; a wrong type gives
 * RAG_EFORMAT naming the file and the key.
 */
int retr_json_get_size(const struct retr_json *obj, const char *key, const char *name,
                       bool required, size_t *ret, struct rag_err *err);
int retr_json_get_double(const struct retr_json *obj, const char *key, const char *name,
                         double *ret, struct rag_err *err);
int retr_json_get_bool(const struct retr_json *obj, const char *key, const char *name, bool *ret,
                       struct rag_err *err);
/* *ret points into the tree. */
int retr_json_get_str(const struct retr_json *obj, const char *key, const char *name,
                      const char **ret, struct rag_err *err);

#endif
