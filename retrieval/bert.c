/*
 * retrieval/bert.c - load a BERT encoder from config.json and
 * model.safetensors.
 *
 * The shapes come from config.json and every tensor is checked against
 * them before it is copied, so a checkpoint that does not match its config
 * is rejected with the file and tensor named. Limits on the config values
 * keep a hostile config from asking for absurd allocations.
 */
#include "retrieval/bert.h"

#include <stdio.h>
#include <string.h>

#include "retrieval/json.h"
#include "retrieval/safetensors.h"

struct loader {
    const struct retr_st *st;
    const char *prefix; /* "" or "bert." */
    struct rag_err *err;
};

static int check_config(const struct retr_bert_config *c, const char *path, struct rag_err *err)
{
    if (!c->dim || c->dim > 8192 || !c->n_heads || c->dim % c->n_heads || !c->n_layers ||
        c->n_layers > 256 || !c->ffn || c->ffn > 65536 || !c->vocab || c->vocab > 4000000 ||
        c->n_pos < 2 || c->n_pos > 65536 || !c->n_types || c->n_types > 64)
        return rag_errf(err, RAG_EFORMAT, "'%s': unsupported model shape", path);
    if (!(c->ln_eps > 0 && c->ln_eps < 1))
        return rag_errf(err, RAG_EFORMAT, "'%s': bad 'layer_norm_eps'", path);
    return 0;
}

static int parse_config(struct retr_bert_config *c, const struct retr_json *j, const char *path,
                        struct rag_err *err)
{
    const char *act = "gelu", *pos = "absolute";
    double eps = 1e-12;
    int rc = retr_json_get_size(j, "hidden_size", path, true, &c->dim, err);

    c->n_types = 2;
    if (!rc)
        rc = retr_json_get_size(j, "num_hidden_layers", path, true, &c->n_layers, err);
    if (!rc)
        rc = retr_json_get_size(j, "num_attention_heads", path, true, &c->n_heads, err);
    if (!rc)
        rc = retr_json_get_size(j, "intermediate_size", path, true, &c->ffn, err);
    if (!rc)
        rc = retr_json_get_size(j, "vocab_size", path, true, &c->vocab, err);
    if (!rc)
        rc = retr_json_get_size(j, "max_position_embeddings", path, true, &c->n_pos, err);
    if (!rc)
        rc = retr_json_get_size(j, "type_vocab_size", path, false, &c->n_types, err);
    if (!rc)
        rc = retr_json_get_double(j, "layer_norm_eps", path, &eps, err);
    if (!rc)
        rc = retr_json_get_str(j, "hidden_act", path, &act, err);
    if (!rc)
        rc = retr_json_get_str(j, "position_embedding_type", path, &pos, err);
    if (rc)
        return rc;
    if (strcmp(act, "gelu") || strcmp(pos, "absolute"))
        return rag_errf(err, RAG_EFORMAT, "'%s': unsupported hidden_act '%s' or position type '%s'",
                        path, act, pos);
    c->ln_eps = (float)eps;
    return check_config(c, path, err);
}

static int read_config(struct retr_bert_config *c, const char *dir, struct rag_err *err)
{
    struct buf path = BUF_INIT, text = BUF_INIT;
    struct arena a;
    struct retr_json *j;
    int rc;

    arena_init(&a, 0);
    buf_appendf(&path, "%s/config.json", dir);
    rc = file_read(buf_cstr(&path), 1u << 20, &text, err);
    if (!rc)
        rc = retr_json_parse(text.data, text.len, buf_cstr(&path), &a, &j, err);
    if (!rc && j->type != RETR_JSON_OBJECT)
        rc = rag_errf(err, RAG_EFORMAT, "'%s': not a json object", buf_cstr(&path));
    if (!rc)
        rc = parse_config(c, j, buf_cstr(&path), err);
    arena_release(&a);
    buf_release(&text);
    buf_release(&path);
    return rc;
}

/* Read tensor <prefix><name> of shape (d0) or (d0, d1) into out. */
static int rd(const struct loader *ld, const char *name, size_t d0, size_t d1, float *out)
{
    char full[256];
    size_t shape[2] = { d0, d1 };

    snprintf(full, sizeof(full), "%s%s", ld->prefix, name);
    return retr_st_read_f32(ld->st, full, shape, d1 ? 2 : 1, out, ld->err);
}

/* Read tensor encoder.layer.<i>.<name>. */
static int rd_layer(const struct loader *ld, size_t i, const char *name, size_t d0, size_t d1,
                    float *out)
{
    char full[256];

    snprintf(full, sizeof(full), "encoder.layer.%zu.%s", i, name);
    return rd(ld, full, d0, d1, out);
}

static size_t layer_floats(const struct retr_bert_config *c)
{
    size_t d = c->dim, f = c->ffn;

    return 4 * d * d + 4 * d + 4 * d + 2 * f * d + f + d;
}

/* Carve the allocation: embeddings first, then each layer. */
static void carve(struct retr_bert *m)
{
    const struct retr_bert_config *c = &m->c;
    size_t d = c->dim, f = c->ffn;
    float *p = m->weights;

    m->tok_emb = p, p += c->vocab * d;
    m->pos_emb = p, p += c->n_pos * d;
    m->type_emb = p, p += c->n_types * d;
    m->emb_ln_g = p, p += d;
    m->emb_ln_b = p, p += d;
    for (size_t i = 0; i < c->n_layers; i++) {
        struct retr_bert_layer *l = &m->layer[i];

        l->wqkv = p, p += 3 * d * d;
        l->bqkv = p, p += 3 * d;
        l->wo = p, p += d * d;
        l->bo = p, p += d;
        l->ln1_g = p, p += d;
        l->ln1_b = p, p += d;
        l->w1 = p, p += f * d;
        l->b1 = p, p += f;
        l->w2 = p, p += d * f;
        l->b2 = p, p += d;
        l->ln2_g = p, p += d;
        l->ln2_b = p, p += d;
    }
}

static int load_layer(const struct loader *ld, const struct retr_bert_config *c, size_t i,
                      struct retr_bert_layer *l)
{
    size_t d = c->dim, f = c->ffn;
    int rc = rd_layer(ld, i, "attention.self.query.weight", d, d, l->wqkv);

    rc = rc ? rc : rd_layer(ld, i, "attention.self.key.weight", d, d, l->wqkv + d * d);
    rc = rc ? rc : rd_layer(ld, i, "attention.self.value.weight", d, d, l->wqkv + 2 * d * d);
    rc = rc ? rc : rd_layer(ld, i, "attention.self.query.bias", d, 0, l->bqkv);
    rc = rc ? rc : rd_layer(ld, i, "attention.self.key.bias", d, 0, l->bqkv + d);
    rc = rc ? rc : rd_layer(ld, i, "attention.self.value.bias", d, 0, l->bqkv + 2 * d);
    rc = rc ? rc : rd_layer(ld, i, "attention.output.dense.weight", d, d, l->wo);
    rc = rc ? rc : rd_layer(ld, i, "attention.output.dense.bias", d, 0, l->bo);
    rc = rc ? rc : rd_layer(ld, i, "attention.output.LayerNorm.weight", d, 0, l->ln1_g);
    rc = rc ? rc : rd_layer(ld, i, "attention.output.LayerNorm.bias", d, 0, l->ln1_b);
    rc = rc ? rc : rd_layer(ld, i, "intermediate.dense.weight", f, d, l->w1);
    rc = rc ? rc : rd_layer(ld, i, "intermediate.dense.bias", f, 0, l->b1);
    rc = rc ? rc : rd_layer(ld, i, "output.dense.weight", d, f, l->w2);
    rc = rc ? rc : rd_layer(ld, i, "output.dense.bias", d, 0, l->b2);
    rc = rc ? rc : rd_layer(ld, i, "output.LayerNorm.weight", d, 0, l->ln2_g);
    return rc ? rc : rd_layer(ld, i, "output.LayerNorm.bias", d, 0, l->ln2_b);
}

static int load_weights(struct retr_bert *m, const struct retr_st *st, struct rag_err *err)
{
    const struct retr_bert_config *c = &m->c;
    struct loader ld = { .st = st, .prefix = "", .err = err };
    size_t d = c->dim;
    int rc;

    if (!retr_st_find(st, "embeddings.word_embeddings.weight") &&
        retr_st_find(st, "bert.embeddings.word_embeddings.weight"))
        ld.prefix = "bert.";
    m->weights = xmalloc_array(c->vocab * d + c->n_pos * d + c->n_types * d + 2 * d +
                                   c->n_layers * layer_floats(c),
                               sizeof(float));
    m->layer = xcalloc(c->n_layers, sizeof(*m->layer));
    carve(m);
    rc = rd(&ld, "embeddings.word_embeddings.weight", c->vocab, d, m->tok_emb);
    rc = rc ? rc : rd(&ld, "embeddings.position_embeddings.weight", c->n_pos, d, m->pos_emb);
    rc = rc ? rc : rd(&ld, "embeddings.token_type_embeddings.weight", c->n_types, d, m->type_emb);
    rc = rc ? rc : rd(&ld, "embeddings.LayerNorm.weight", d, 0, m->emb_ln_g);
    rc = rc ? rc : rd(&ld, "embeddings.LayerNorm.bias", d, 0, m->emb_ln_b);
    for (size_t i = 0; !rc && i < c->n_layers; i++)
        rc = load_layer(&ld, c, i, &m->layer[i]);
    return rc;
}

int retr_bert_load(struct retr_bert *m, const char *dir, bool weights, struct rag_err *err)
{
    struct retr_st st;
    struct buf path = BUF_INIT;
    int rc;

    memset(m, 0, sizeof(*m));
    rc = read_config(&m->c, dir, err);
    if (rc || !weights)
        return rc;
    buf_appendf(&path, "%s/model.safetensors", dir);
    rc = retr_st_open(&st, buf_cstr(&path), err);
    if (!rc)
        rc = load_weights(m, &st, err);
    retr_st_close(&st);
    buf_release(&path);
    return rc;
}

void retr_bert_release(struct retr_bert *m)
{
    if (!m)
        return;
    free(m->weights);
    free(m->layer);
    memset(m, 0, sizeof(*m));
}

void retr_bert_release_weights(struct retr_bert *m)
{
    free(m->weights);
    free(m->layer);
    m->weights = NULL;
    m->layer = NULL;
    m->tok_emb = m->pos_emb = m->type_emb = m->emb_ln_g = m->emb_ln_b = NULL;
}
