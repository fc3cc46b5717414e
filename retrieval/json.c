/*
 * retrieval/json.c - recursive-descent JSON reader for model files.
 *
 * Every read is checked against the end of the input, nesting is bounded
 * and numbers are only validated here (grammar of RFC 8259) and converted
 * later with parse_size/parse_double. \u escapes, surrogate pairs included,
 * are decoded to UTF-8; a lone surrogate is an error.
 */
#include "retrieval/json.h"

#include <string.h>

struct parser {
    const char *s;
    size_t len, pos;
    const char *name;
    struct arena *arena;
    struct rag_err *err;
    int depth;
};

static int fail(struct parser *p, const char *why)
{
    return rag_errf(p->err, RAG_EFORMAT, "'%s': invalid json at byte %zu: %s", p->name, p->pos,
                    why);
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];

        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
        p->pos++;
    }
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_digit(char c)
{
    if (is_digit(c))
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex4(struct parser *p, uint32_t *ret)
{
    uint32_t v = 0;

    if (p->len - p->pos < 4)
        return fail(p, "truncated \\u escape");
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->s[p->pos++]);

        if (d < 0)
            return fail(p, "bad \\u escape");
        v = v << 4 | (uint32_t)d;
    }
    *ret = v;
    return 0;
}

/* Decode \uXXXX (p->pos after the 'u'), with a following low surrogate if needed. */
static int unicode_escape(struct parser *p, struct buf *out)
{
    uint32_t cp, lo;
    char enc[4];
    int rc = hex4(p, &cp);

    if (rc)
        return rc;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(p, "lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail(p, "lone high surrogate");
        p->pos += 2;
        rc = hex4(p, &lo);
        if (rc)
            return rc;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(p, "bad surrogate pair");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    buf_append(out, enc, utf8_encode(cp, enc));
    return 0;
}

static int escape(struct parser *p, struct buf *out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit;

    if (p->pos >= p->len)
        return fail(p, "truncated string");
    if (p->s[p->pos] == 'u') {
        p->pos++;
        return unicode_escape(p, out);
    }
    hit = p->s[p->pos] ? strchr(from, p->s[p->pos]) : NULL;
    if (!hit)
        return fail(p, "bad escape");
    buf_appendc(out, to[hit - from]);
    p->pos++;
    return 0;
}

/* p->pos is at the opening quote; the decoded string goes to the arena. */
static int string(struct parser *p, const char **ret, size_t *ret_len)
{
    struct buf b = BUF_INIT;
    int rc = 0;

    p->pos++;
    while (!rc) {
        if (p->pos >= p->len) {
            rc = fail(p, "unterminated string");
        } else if (p->s[p->pos] == '"') {
            p->pos++;
            break;
        } else if (p->s[p->pos] == '\\') {
            p->pos++;
            rc = escape(p, &b);
        } else if ((unsigned char)p->s[p->pos] < 0x20) {
            rc = fail(p, "control character in string");
        } else {
            buf_appendc(&b, p->s[p->pos++]);
        }
    }
    if (!rc) {
        *ret = arena_strndup(p->arena, buf_cstr(&b), b.len);
        *ret_len = b.len;
    }
    buf_release(&b);
    return rc;
}

static void digits(struct parser *p)
{
    while (p->pos < p->len && is_digit(p->s[p->pos]))
        p->pos++;
}

static int number(struct parser *p, struct retr_json *v)
{
    size_t start = p->pos;

    if (p->s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->len || !is_digit(p->s[p->pos]))
        return fail(p, "bad number");
    if (p->s[p->pos] == '0')
        p->pos++;
    else
        digits(p);
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos]))
            return fail(p, "bad number");
        digits(p);
    }
    if (p->pos < p->len && (p->s[p->pos] | 0x20) == 'e') {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos]))
            return fail(p, "bad number");
        digits(p);
    }
    v->type = RETR_JSON_NUMBER;
    v->len = p->pos - start;
    v->str = arena_strndup(p->arena, p->s + start, v->len);
    return 0;
}

static int literal(struct parser *p, struct retr_json *v)
{
    static const struct {
        const char *word;
        enum retr_json_type type;
        bool b;
    } lits[] = { { "true", RETR_JSON_BOOL, true },
                 { "false", RETR_JSON_BOOL, false },
                 { "null", RETR_JSON_NULL, false } };

    for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
        size_t n = strlen(lits[i].word);

        if (p->len - p->pos >= n && !memcmp(p->s + p->pos, lits[i].word, n)) {
            p->pos += n;
            v->type = lits[i].type;
            v->b = lits[i].b;
            return 0;
        }
    }
    return fail(p, "unexpected character");
}

static int value(struct parser *p, struct retr_json **ret);

/* Members or elements of v; p->pos is after the opening bracket. */
static int container(struct parser *p, struct retr_json *v, char close)
{
    struct retr_json **tail = &v->child;
    int rc;

    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len;

        skip_ws(p);
        if (close == '}') {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, "expected a member name");
            rc = string(p, &key, &key_len);
            if (rc)
                return rc;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return fail(p, "expected ':'");
            p->pos++;
        }
        rc = value(p, tail);
        if (rc)
            return rc;
        (*tail)->key = key;
        tail = &(*tail)->next;
        v->n++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        return fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(struct parser *p, struct retr_json **ret)
{
    struct retr_json *v = arena_calloc(p->arena, 1, sizeof(*v));
    int rc;
    char c;

    *ret = v;
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, "unexpected end of input");
    c = p->s[p->pos];
    if (c == '{' || c == '[') {
        if (++p->depth > RETR_JSON_MAX_DEPTH)
            return fail(p, "nested too deeply");
        p->pos++;
        v->type = c == '{' ? RETR_JSON_OBJECT : RETR_JSON_ARRAY;
        rc = container(p, v, c == '{' ? '}' : ']');
        p->depth--;
        return rc;
    }
    if (c == '"') {
        v->type = RETR_JSON_STRING;
        return string(p, &v->str, &v->len);
    }
    if (c == '-' || is_digit(c))
        return number(p, v);
    return literal(p, v);
}

int retr_json_parse(const char *text, size_t len, const char *name, struct arena *arena,
                    struct retr_json **ret, struct rag_err *err)
{
    struct parser p = { .s = text, .len = len, .name = name, .arena = arena, .err = err };
    struct retr_json *root;
    int rc = value(&p, &root);

    if (rc)
        return rc;
    skip_ws(&p);
    if (p.pos != p.len)
        return fail(&p, "trailing data");
    *ret = root;
    return 0;
}

const struct retr_json *retr_json_get(const struct retr_json *obj, const char *key)
{
    if (!obj || obj->type != RETR_JSON_OBJECT)
        return NULL;
    for (const struct retr_json *c = obj->child; c; c = c->next)
        if (!strcmp(c->key, key))
            return c;
    return NULL;
}

int retr_json_u64(const struct retr_json *v, uint64_t *ret)
{
    size_t n;

    if (!v || v->type != RETR_JSON_NUMBER || parse_size(v->str, 0, SIZE_MAX, &n))
        return RAG_EFORMAT;
    *ret = n;
    return 0;
}

int retr_json_double(const struct retr_json *v, double *ret)
{
    if (!v || v->type != RETR_JSON_NUMBER || parse_double(v->str, -1e308, 1e308, ret))
        return RAG_EFORMAT;
    return 0;
}

int retr_json_get_size(const struct retr_json *obj, const char *key, const char *name,
                       bool required, size_t *ret, struct rag_err *err)
{
    const struct retr_json *v = retr_json_get(obj, key);
    uint64_t n;

    if (!v && !required)
        return 0;
    if (!v)
        return rag_errf(err, RAG_EFORMAT, "'%s': missing '%s'", name, key);
    if (retr_json_u64(v, &n))
        return rag_errf(err, RAG_EFORMAT, "'%s': '%s' is not a non-negative integer", name, key);
    *ret = (size_t)n;
    return 0;
}

int retr_json_get_double(const struct retr_json *obj, const char *key, const char *name,
                         double *ret, struct rag_err *err)
{
    const struct retr_json *v = retr_json_get(obj, key);

    if (v && retr_json_double(v, ret))
        return rag_errf(err, RAG_EFORMAT, "'%s': '%s' is not a number", name, key);
    return 0;
}

int retr_json_get_bool(const struct retr_json *obj, const char *key, const char *name, bool *ret,
                       struct rag_err *err)
{
    const struct retr_json *v = retr_json_get(obj, key);

    if (!v || v->type == RETR_JSON_NULL)
        return 0;
    if (v->type != RETR_JSON_BOOL)
        return rag_errf(err, RAG_EFORMAT, "'%s': '%s' is not a boolean", name, key);
    *ret = v->b;
    return 0;
}

int retr_json_get_str(const struct retr_json *obj, const char *key, const char *name,
                      const char **ret, struct rag_err *err)
{
    const struct retr_json *v = retr_json_get(obj, key);

    if (!v || v->type == RETR_JSON_NULL)
        return 0;
    if (v->type != RETR_JSON_STRING)
        return rag_errf(err, RAG_EFORMAT, "'%s': '%s' is not a string", name, key);
    *ret = v->str;
    return 0;
}
