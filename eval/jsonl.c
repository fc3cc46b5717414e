/*
 * eval/jsonl.c - the pieces every dataset loader needs: a string-to-index
 * hash map (FNV-1a, open addressing, load factor <= 1/2), a JSON Lines reader
 * over a file read whole into memory, and typed field getters whose errors
 * read "'<file>' line N: field 'x' ...". Each line is parsed on its own with
 * cJSON_ParseWithLengthOpts, so a bad line reports its byte offset in the file.
 */
#include "eval/internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define JSONL_MAX_BYTES ((size_t)1 << 32) /* 4 GiB: larger files are surely a mistake */

void idmap_init(struct idmap *m)
{
    memset(m, 0, sizeof(*m));
}

void idmap_release(struct idmap *m)
{
    free(m->key);
    free(m->val);
    idmap_init(m);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t slot_of(const struct idmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)hash_str(key) & mask;

    while (m->key[i] && strcmp(m->key[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

static void idmap_grow(struct idmap *m)
{
    struct idmap bigger;
    size_t i, s;

    bigger.cap = m->cap ? m->cap * 2 : 64;
    bigger.n = m->n;
    bigger.key = xcalloc(bigger.cap, sizeof(*bigger.key));
    bigger.val = xmalloc_array(bigger.cap, sizeof(*bigger.val));
    for (i = 0; i < m->cap; i++) {
        if (!m->key[i])
            continue;
        s = slot_of(&bigger, m->key[i]);
        bigger.key[s] = m->key[i];
        bigger.val[s] = m->val[i];
    }
    free(m->key);
    free(m->val);
    *m = bigger;
}

size_t idmap_put(struct idmap *m, const char *key, size_t val)
{
    size_t s;

    if (2 * (m->n + 1) > m->cap)
        idmap_grow(m);
    s = slot_of(m, key);
    if (m->key[s])
        return m->val[s];
    m->key[s] = key;
    m->val[s] = val;
    m->n++;
    return IDMAP_NONE;
}

size_t idmap_get(const struct idmap *m, const char *key)
{
    size_t s;

    if (!m->cap)
        return IDMAP_NONE;
    s = slot_of(m, key);
    return m->key[s] ? m->val[s] : IDMAP_NONE;
}

int jsonl_open(struct jsonl *j, const char *path, struct rag_err *err)
{
    memset(j, 0, sizeof(*j));
    j->name = path;
    return file_read(path, JSONL_MAX_BYTES, &j->data, err);
}

void jsonl_close(struct jsonl *j)
{
    buf_release(&j->data);
}

static bool is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    }
    return true;
}

bool jsonl_next_line(struct jsonl *j, const char **ret_line, size_t *ret_len)
{
    while (j->pos < j->data.len) {
        const char *p = j->data.data + j->pos;
        const char *nl = memchr(p, '\n', j->data.len - j->pos);
        size_t len = nl ? (size_t)(nl - p) : j->data.len - j->pos;

        j->line_no++;
        j->line_off = j->pos;
        j->pos += len + (nl ? 1 : 0);
        if (is_blank(p, len))
            continue;
        *ret_line = p;
        *ret_len = len;
        return true;
    }
    return false;
}

int jsonl_errf(const struct jsonl *j, struct rag_err *err, int code, const char *fmt, ...)
{
    char what[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return rag_errf(err, code, "'%s' line %zu: %s", j->name, j->line_no, what);
}

int jsonl_next(struct jsonl *j, struct cJSON **ret, struct rag_err *err)
{
    const char *line, *end = NULL;
    size_t len;
    cJSON *item;

    if (!jsonl_next_line(j, &line, &len)) {
        if (!j->n_records)
            return rag_errf(err, RAG_EFORMAT, "'%s': no records (empty file)", j->name);
        return 0;
    }
    item = cJSON_ParseWithLengthOpts(line, len, &end, false);
    if (!item) {
        size_t at = end && end >= line ? (size_t)(end - line) : 0;
        return jsonl_errf(j, err, RAG_EFORMAT, "invalid JSON at byte %zu", j->line_off + at);
    }
    if (end && !is_blank(end, len - (size_t)(end - line))) {
        cJSON_Delete(item);
        return jsonl_errf(j, err, RAG_EFORMAT, "trailing characters at byte %zu",
                          j->line_off + (size_t)(end - line));
    }
    if (!cJSON_IsObject(item)) {
        cJSON_Delete(item);
        return jsonl_errf(j, err, RAG_EFORMAT, "not a JSON object");
    }
    j->n_records++;
    *ret = item;
    return 1;
}

static int field(const struct jsonl *j, const cJSON *obj, const char *key, bool required,
                 const cJSON **ret, struct rag_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!v || cJSON_IsNull(v)) {
        *ret = NULL;
        if (required)
            return jsonl_errf(j, err, RAG_EFORMAT, "missing field '%s'", key);
        return 0;
    }
    *ret = v;
    return 0;
}

int json_field_string(const struct jsonl *j, const cJSON *obj, const char *key, bool required,
                      const char **ret, struct rag_err *err)
{
    const cJSON *v;
    int rc = field(j, obj, key, required, &v, err);

    if (rc || !v)
        return rc;
    if (!cJSON_IsString(v))
        return jsonl_errf(j, err, RAG_EFORMAT, "field '%s' is not a string", key);
    *ret = v->valuestring;
    return 0;
}

bool json_to_size(const cJSON *item, size_t *ret)
{
    double d;

    if (!cJSON_IsNumber(item))
        return false;
    d = item->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d)
        return false;
    *ret = (size_t)d;
    return true;
}

int json_field_size(const struct jsonl *j, const cJSON *obj, const char *key, bool required,
                    size_t *ret, struct rag_err *err)
{
    const cJSON *v;
    int rc = field(j, obj, key, required, &v, err);

    if (rc || !v)
        return rc;
    if (!json_to_size(v, ret))
        return jsonl_errf(j, err, RAG_EFORMAT, "field '%s' is not a non-negative integer", key);
    return 0;
}

int json_field_bool(const struct jsonl *j, const cJSON *obj, const char *key, bool required,
                    bool *ret, struct rag_err *err)
{
    const cJSON *v;
    int rc = field(j, obj, key, required, &v, err);

    if (rc || !v)
        return rc;
    if (!cJSON_IsBool(v))
        return jsonl_errf(j, err, RAG_EFORMAT, "field '%s' is not a boolean", key);
    *ret = cJSON_IsTrue(v);
    return 0;
}

int json_field_array(const struct jsonl *j, const cJSON *obj, const char *key, bool required,
                     const cJSON **ret, struct rag_err *err)
{
    const cJSON *v;
    int rc = field(j, obj, key, required, &v, err);

    *ret = NULL;
    if (rc || !v)
        return rc;
    if (!cJSON_IsArray(v))
        return jsonl_errf(j, err, RAG_EFORMAT, "field '%s' is not an array", key);
    *ret = v;
    return 0;
}
