/*
 * eval/answer.c - SQuAD v1.1 answer scoring, as the official
 * evaluate-v1.1.py computes it under Python 3: normalise (str.lower(), drop
 * string.punctuation, replace the words a/an/the by a space where regex \b
 * allows, str.split() + join), then exact match of the normal forms and token
 * F1 over multisets of tokens, each maximised over the gold answers. Unicode
 * case, word and space classes come from the generated tables in unicode.c
 * (Python's final-sigma rule is not applied). Also the prediction-file loader.
 */
#include "eval/internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define PREDICTIONS_MAX_BYTES ((size_t)1 << 30)

static bool is_ascii_punct(uint32_t c)
{
    return c < 0x80 && c > 0x20 && c != 0x7f && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
           !(c >= '0' && c <= '9');
}

/* s[0..len) as lower-cased code points without ASCII punctuation; invalid bytes give U+FFFD. */
static size_t lower_nopunct(const char *s, size_t len, uint32_t *out)
{
    size_t n = 0, i = 0;

    while (i < len) {
        uint32_t cp;
        size_t step = utf8_decode(s + i, len - i, &cp);

        if (!step) {
            cp = 0xfffd;
            step = 1;
        }
        i += step;
        if (cp == 0x130) { /* U+0130 lower-cases to "i" + U+0307 */
            out[n++] = 'i';
            out[n++] = 0x307;
            continue;
        }
        cp = uni_lower(cp);
        if (!is_ascii_punct(cp))
            out[n++] = cp;
    }
    return n;
}

static bool is_word(const uint32_t *cp, size_t n, size_t i)
{
    return i < n && (cp[i] == '_' || uni_isalnum(cp[i]));
}

/* Length of the article (a, an, the) that starts a whole word at i, or 0. */
static size_t article_at(const uint32_t *cp, size_t n, size_t i)
{
    static const char *const words[] = { "a", "an", "the" };

    if (i > 0 && is_word(cp, n, i - 1))
        return 0;
    for (size_t w = 0; w < 3; w++) {
        size_t k = 0;
        while (words[w][k] && i + k < n && cp[i + k] == (uint32_t)words[w][k])
            k++;
        if (!words[w][k] && !is_word(cp, n, i + k))
            return k;
    }
    return 0;
}

void eval_normalize_answer(const char *s, size_t len, struct buf *out)
{
    uint32_t *cp = xmalloc_array(len + 1, sizeof(*cp));
    size_t n = lower_nopunct(s, len, cp), m = 0;
    bool need_space = false, any = false;

    for (size_t i = 0; i < n;) {
        size_t a = article_at(cp, n, i);
        uint32_t c = a ? ' ' : cp[i];
        i += a ? a : 1;
        cp[m++] = c; /* m <= i: rewriting in place is safe */
    }
    buf_append(out, "", 0);
    for (size_t i = 0; i < m; i++) {
        char enc[4];
        if (uni_isspace(cp[i])) {
            need_space = any;
            continue;
        }
        if (need_space)
            buf_appendc(out, ' ');
        need_space = false;
        any = true;
        buf_append(out, enc, utf8_encode(cp[i], enc));
    }
    free(cp);
}

static void normal_form(const char *s, struct buf *b)
{
    buf_reset(b);
    eval_normalize_answer(s, strlen(s), b);
}

double eval_exact_match(const char *pred, const char *gold)
{
    struct buf a = BUF_INIT, b = BUF_INIT;
    double em;

    normal_form(pred, &a);
    normal_form(gold, &b);
    em = strcmp(buf_cstr(&a), buf_cstr(&b)) == 0;
    buf_release(&a);
    buf_release(&b);
    return em;
}

/* Split a normal form (single spaces) in place into at most n tokens. */
static size_t tokens(char *s, char **tok)
{
    size_t n = 0;

    while (*s) {
        char *sp = strchr(s, ' ');
        tok[n++] = s;
        if (!sp)
            break;
        *sp = '\0';
        s = sp + 1;
    }
    return n;
}

static double f1_tokens(char **p, size_t np, char **g, size_t ng)
{
    bool *used = xcalloc(ng + 1, sizeof(*used));
    size_t same = 0;
    double prec, rec;

    for (size_t i = 0; i < np; i++) {
        for (size_t j = 0; j < ng; j++) {
            if (!used[j] && strcmp(p[i], g[j]) == 0) {
                used[j] = true;
                same++;
                break;
            }
        }
    }
    free(used);
    if (!same)
        return 0;
    prec = (double)same / (double)np;
    rec = (double)same / (double)ng;
    return 2 * prec * rec / (prec + rec);
}

double eval_token_f1(const char *pred, const char *gold)
{
    struct buf a = BUF_INIT, b = BUF_INIT;
    char **pt, **gt;
    double f1;

    normal_form(pred, &a);
    normal_form(gold, &b);
    pt = xmalloc_array(a.len / 2 + 2, sizeof(*pt));
    gt = xmalloc_array(b.len / 2 + 2, sizeof(*gt));
    f1 = f1_tokens(pt, tokens(a.data, pt), gt, tokens(b.data, gt));
    free(pt);
    free(gt);
    buf_release(&a);
    buf_release(&b);
    return f1;
}

void eval_score_answer(const struct eval_question *q, const char *pred, bool abstained,
                       struct eval_answer_scores *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->abstained = abstained || !pred;
    ret->is_impossible = q->is_impossible;
    if (q->is_impossible) {
        ret->scored = true;
        ret->em = ret->f1 = ret->abstained;
        return;
    }
    ret->scored = q->n_answers > 0;
    if (ret->abstained)
        return;
    for (size_t i = 0; i < q->n_answers; i++) {
        double em = eval_exact_match(pred, q->answer[i].text);
        double f1 = eval_token_f1(pred, q->answer[i].text);
        ret->em = em > ret->em ? em : ret->em;
        ret->f1 = f1 > ret->f1 ? f1 : ret->f1;
    }
}

/* ---- prediction files ---- */

struct eval_predictions {
    struct arena arena;
    struct idmap ids;
    const char **answer;
    size_t n;
};

static int predictions_fill(struct eval_predictions *p, const char *path, const cJSON *root,
                            struct rag_err *err)
{
    const cJSON *item;

    if (!cJSON_IsObject(root))
        return rag_errf(err, RAG_EFORMAT, "'%s': not a JSON object of id: answer", path);
    p->answer = xmalloc_array((size_t)cJSON_GetArraySize(root) + 1, sizeof(*p->answer));
    for (item = root ? root->child : NULL; item; item = item->next) {
        const char *id;

        if (!cJSON_IsString(item))
            return rag_errf(err, RAG_EFORMAT, "'%s': answer for '%s' is not a string", path,
                            item->string);
        id = arena_strdup(&p->arena, item->string);
        if (idmap_put(&p->ids, id, p->n) != IDMAP_NONE)
            return rag_errf(err, RAG_EFORMAT, "'%s': duplicate id '%s'", path, id);
        p->answer[p->n++] = arena_strdup(&p->arena, item->valuestring);
    }
    return 0;
}

int eval_predictions_load(struct eval_predictions **ret, const char *path, struct rag_err *err)
{
    struct eval_predictions *p = xcalloc(1, sizeof(*p));
    struct buf b = BUF_INIT;
    const char *end = NULL;
    cJSON *root = NULL;
    int rc;

    arena_init(&p->arena, 0);
    rc = file_read(path, PREDICTIONS_MAX_BYTES, &b, err);
    if (!rc) {
        root = cJSON_ParseWithLengthOpts(b.data, b.len, &end, false);
        if (!root)
            rc = rag_errf(err, RAG_EFORMAT, "'%s': invalid JSON at byte %zu", path,
                          end && end >= b.data ? (size_t)(end - b.data) : 0);
    }
    if (!rc)
        rc = predictions_fill(p, path, root, err);
    cJSON_Delete(root);
    buf_release(&b);
    if (rc) {
        eval_predictions_free(p);
        return rc;
    }
    *ret = p;
    return 0;
}

const char *eval_predictions_get(const struct eval_predictions *p, const char *id)
{
    size_t i = idmap_get(&p->ids, id);

    return i == IDMAP_NONE ? NULL : p->answer[i];
}

size_t eval_predictions_count(const struct eval_predictions *p)
{
    return p->n;
}

void eval_predictions_free(struct eval_predictions *p)
{
    if (!p)
        return;
    idmap_release(&p->ids);
    free(p->answer);
    arena_release(&p->arena);
    free(p);
}

void eval_strip_citations(const char *answer, struct buf *out)
{
    const char *p = answer, *q;
    bool digit;

    while (*p) {
        if (*p == '[') {
            digit = false;
            for (q = p + 1; *q && strchr("0123456789 ,-", *q); q++)
                digit |= *q >= '0' && *q <= '9';
            if (*q == ']' && digit) {
                p = q + 1;
                continue;
            }
        }
        buf_appendc(out, *p++);
    }
    buf_appends(out, "");
}
