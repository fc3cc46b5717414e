/*
 * generation/chat.c - chat prompts for the two template families the
 * supported models use, recognised from tokenizer.chat_template without
 * running its Jinja:
 *
 *   ChatML (SmolLM2, Qwen):  <|im_start|>{role}\n{content}<|im_end|>\n ...
 *                            <|im_start|>assistant\n
 *   Llama 3:                 <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n
 *                            {content, trimmed}<|eot_id|> ...
 *                            <|start_header_id|>assistant<|end_header_id|>\n\n
 *
 * ChatML templates that insert a default system turn when the conversation
 * does not start with one (SmolLM2: "You are a helpful AI assistant named
 * SmolLM, trained by Hugging Face"; Qwen2.5: "You are Qwen, ...") spell it as
 * a string literal '<|im_start|>system\n...<|im_end|>'; that literal is
 * extracted and used the same way. Llama 3.1 templates ("Cutting Knowledge
 * Date") always open with a system turn carrying the knowledge cutoff and
 * the template's default date, 26 Jul 2024.
 */
#include "generation/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char im_system[] = "<|im_start|>system";
static const char llama31_preamble[] = "Cutting Knowledge Date: December 2023\n"
                                       "Today Date: 26 Jul 2024\n\n";

/* Undo the escapes of a Jinja string literal; false if s[0..n) is not all literal text. */
static bool unescape_literal(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '\'' || c == '"' ||
            (c == '{' && i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '%')))
            return false;
        if (c == '\\' && i + 1 < n) {
            c = s[++i];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        }
        buf_appendc(out, c);
    }
    return true;
}

/* The default system prompt written literally in a ChatML template, or NULL. */
static char *default_system(const char *tmpl, size_t len)
{
    const char *p = tmpl, *end = tmpl + len;
    struct buf out = BUF_INIT;

    while ((p = memmem(p, (size_t)(end - p), im_system, sizeof(im_system) - 1))) {
        const char *s = p + sizeof(im_system) - 1, *e;

        p = s;
        if (s < end && *s == '\n')
            s++;
        else if (end - s >= 2 && s[0] == '\\' && s[1] == 'n')
            s += 2;
        else
            continue;
        e = memmem(s, (size_t)(end - s), "<|im_end|>", 10);
        if (!e)
            break;
        buf_reset(&out);
        if (e > s && unescape_literal(s, (size_t)(e - s), &out))
            return buf_detach(&out, NULL);
    }
    buf_release(&out);
    return NULL;
}

static void add_stop(struct gen_tokenizer *t, const char *text)
{
    int32_t id = gen_tok_find(t, text);

    if (id < 0)
        return;
    if (t->n_stop_ids < sizeof(t->stop_ids) / sizeof(*t->stop_ids))
        t->stop_ids[t->n_stop_ids++] = id;
    if (t->n_stop_strings < sizeof(t->stop_strings) / sizeof(*t->stop_strings))
        t->stop_strings[t->n_stop_strings++] = text;
}

void gen_tok_chat_init(struct gen_tokenizer *t, const char *tmpl, size_t tmpl_len)
{
    if (tmpl && memmem(tmpl, tmpl_len, "<|im_start|>", 12))
        t->chat = GEN_CHAT_CHATML;
    else if (tmpl && memmem(tmpl, tmpl_len, "<|start_header_id|>", 19))
        t->chat = GEN_CHAT_LLAMA3;
    else if (!tmpl && gen_tok_find(t, "<|im_start|>") >= 0)
        t->chat = GEN_CHAT_CHATML;
    else if (!tmpl && gen_tok_find(t, "<|start_header_id|>") >= 0)
        t->chat = GEN_CHAT_LLAMA3;
    else
        t->chat = GEN_CHAT_NONE;
    if (t->chat == GEN_CHAT_CHATML) {
        if (tmpl)
            t->chat_system = default_system(tmpl, tmpl_len);
        add_stop(t, "<|im_end|>");
        add_stop(t, "<|endoftext|>");
    } else if (t->chat == GEN_CHAT_LLAMA3) {
        t->llama31 = tmpl && memmem(tmpl, tmpl_len, "Cutting Knowledge Date", 22);
        add_stop(t, "<|eot_id|>");
        add_stop(t, "<|eom_id|>");
        add_stop(t, "<|end_of_text|>");
    } else if (tmpl) {
        RAG_DEBUG("tokenizer '%s': chat template of an unsupported family", t->name);
    }
}

enum gen_chat_format gen_chat_format(const struct gen_tokenizer *t)
{
    return t->chat;
}

const char *gen_chat_default_system(const struct gen_tokenizer *t)
{
    return t->chat_system;
}

/* The prompt being built, with the spans of caller text (roles and contents). */
struct render {
    struct buf *out;
    struct {
        size_t *item; /* start, end pairs */
        size_t n, cap;
    } span;
};

static void put(struct render *r, const char *s)
{
    buf_appends(r->out, s);
}

/* Caller text: plain text when tokenized by gen_chat_tokenize. */
static void put_plain(struct render *r, const char *s, size_t n)
{
    VEC_RESERVE(&r->span, r->span.n + 2);
    r->span.item[r->span.n++] = r->out->len;
    buf_append(r->out, s, n);
    r->span.item[r->span.n++] = r->out->len;
}

static void chatml_turn(struct render *r, const char *role, const char *content)
{
    put(r, "<|im_start|>");
    put_plain(r, role, strlen(role));
    put(r, "\n");
    put_plain(r, content, strlen(content));
    put(r, "<|im_end|>\n");
}

static void chatml(const struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                   bool add_generation_prompt, struct render *r)
{
    if (n && t->chat_system && strcmp(msg[0].role, "system"))
        chatml_turn(r, "system", t->chat_system);
    for (size_t i = 0; i < n; i++)
        chatml_turn(r, msg[i].role, msg[i].content);
    if (add_generation_prompt)
        put(r, "<|im_start|>assistant\n");
}

/* Append s with leading and trailing whitespace removed (Jinja's trim). */
static void put_trimmed(struct render *r, const char *s)
{
    const char *e = s + strlen(s);

    while (s < e && strchr(" \t\n\r\f\v", *s))
        s++;
    while (e > s && strchr(" \t\n\r\f\v", e[-1]))
        e--;
    put_plain(r, s, (size_t)(e - s));
}

static void llama3_header(struct render *r, const char *role)
{
    put(r, "<|start_header_id|>");
    put_plain(r, role, strlen(role));
    put(r, "<|end_header_id|>\n\n");
}

static void llama3(const struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                   bool add_generation_prompt, struct render *r)
{
    size_t len, i = 0;
    const char *bos = t->bos_id >= 0 ? tok_text(t, t->bos_id, &len) : NULL;

    if (bos)
        buf_append(r->out, bos, len);
    if (t->llama31) {
        llama3_header(r, "system");
        put(r, llama31_preamble);
        if (n && !strcmp(msg[0].role, "system"))
            put_trimmed(r, msg[i++].content);
        put(r, "<|eot_id|>");
    }
    for (; i < n; i++) {
        llama3_header(r, msg[i].role);
        put_trimmed(r, msg[i].content);
        put(r, "<|eot_id|>");
    }
    if (add_generation_prompt)
        llama3_header(r, "assistant");
}

static int render(const struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                  bool add_generation_prompt, struct render *r, struct rag_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!msg[i].role || !*msg[i].role)
            return rag_errf(err, RAG_EINVAL, "chat message %zu has no role", i);
        if (!msg[i].content)
            return rag_errf(err, RAG_EINVAL, "chat message %zu ('%s') has no content", i,
                            msg[i].role);
    }
    if (t->chat == GEN_CHAT_CHATML)
        chatml(t, msg, n, add_generation_prompt, r);
    else if (t->chat == GEN_CHAT_LLAMA3)
        llama3(t, msg, n, add_generation_prompt, r);
    else
        return rag_errf(err, RAG_EFORMAT, "'%s': no supported chat template (ChatML or Llama 3)",
                        t->name);
    return 0;
}

int gen_chat_apply(const struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                   bool add_generation_prompt, struct buf *out, struct rag_err *err)
{
    struct render r = { .out = out };
    int rc = render(t, msg, n, add_generation_prompt, &r, err);

    free(r.span.item);
    return rc;
}

int gen_chat_tokenize(struct gen_tokenizer *t, const struct gen_chat_msg *msg, size_t n,
                      bool add_generation_prompt, struct gen_tokens *out, struct rag_err *err)
{
    struct buf text = BUF_INIT;
    struct render r = { .out = &text };
    int rc = render(t, msg, n, add_generation_prompt, &r, err);

    if (!rc)
        gen_tok_encode_spans(t, text.data, text.len, GEN_TOKENIZE_SPECIAL, r.span.item,
                             r.span.n / 2, out);
    free(r.span.item);
    buf_release(&text);
    return rc;
}

bool gen_tok_is_stop(const struct gen_tokenizer *t, int32_t id)
{
    if (id >= 0 && id == t->eos_id)
        return true;
    for (size_t i = 0; i < t->n_stop_ids; i++)
        if (t->stop_ids[i] == id)
            return true;
    return false;
}

const int32_t *gen_chat_stop_ids(const struct gen_tokenizer *t, size_t *ret_n)
{
    *ret_n = t->n_stop_ids;
    return t->stop_ids;
}

const char *const *gen_chat_stop_strings(const struct gen_tokenizer *t, size_t *ret_n)
{
    *ret_n = t->n_stop_strings;
    return t->stop_strings;
}
