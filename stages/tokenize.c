/*
 * tokenize.c - adds byte-level BPE token ids to documents.
 *
 * Each document's text is encoded with the tokenizer (tokenizer.json or a
 * GPT-2 encoder.json + vocab.bpe directory). The end-of-text token is placed
 * per `eot`: `prepend` is llm.c's convention (every document starts with
 * <|endoftext|>, which then acts as BOS and as the separator between
 * documents in a packed stream), `append` puts it after the text, `none`
 * leaves it out. The ids travel with the document to later stages (shard
 * packing); the output record gets "winnow": {"n_tokens": N} and, with
 * emit: ids, "tokens": [...]. Reports gain tokens_in / tokens_out.
 */
#include <string.h>

#include "../src/stage.h"
#include "../src/tokenizer.h"

static const wn_param_def params[] = {
    {"tokenizer", WN_P_STRING, NULL, 0, 0, NULL, "tokenizer.json, or a directory with GPT-2's encoder.json + vocab.bpe"},
    {"eot", WN_P_ENUM, "prepend", 0, 0, "prepend|append|none",
     "where <|endoftext|> goes: prepend (llm.c: before every document), append, none"},
    {"eot_token", WN_P_STRING, "<|endoftext|>", 0, 0, NULL, "the special token used as end of text"},
    {"special", WN_P_BOOL, "false", 0, 0, NULL, "map special-token texts inside documents to their ids"},
    {"emit", WN_P_ENUM, "count", 0, 0, "count|ids", "what the output record gets: the token count, or also the ids"},
};

typedef struct {
    wn_tokenizer *t;
    wn_tok_ctx **ctx;
    int n_ctx;
    int64_t eot;
    int eot_where; /* 0 none, 1 prepend, 2 append */
    int special, emit_ids;
    wn_buf *attr; /* per thread */
} tokenize;

static wn_err tok_open(wn_stage *st)
{
    tokenize *s = st->state;
    wn_err e = wn_tokenizer_load(&s->t, wn_param(st, "tokenizer")->s, &st->err);
    if (e) return e;
    const char *where = wn_param(st, "eot")->s;
    s->eot_where = !strcmp(where, "prepend") ? 1 : !strcmp(where, "append") ? 2 : 0;
    s->eot = wn_tokenizer_special(s->t, wn_param(st, "eot_token")->s);
    if (s->eot_where && s->eot < 0)
        return wn_fail(&st->err, WN_ERR_MANIFEST, "tokenizer %s has no special token %s (set eot: none, or eot_token)",
                       wn_param(st, "tokenizer")->s, wn_param(st, "eot_token")->s);
    s->special = wn_param(st, "special")->b;
    if (st->run) { /* announce the tokenizer to later stages (pack records it) */
        st->run->vocab_size = wn_tokenizer_vocab_size(s->t);
        st->run->eot_id = s->eot;
        st->run->tokenizer_hash = wn_tokenizer_hash(s->t);
        snprintf(st->run->tokenizer, sizeof st->run->tokenizer, "%s", wn_param(st, "tokenizer")->s);
    }
    s->emit_ids = !strcmp(wn_param(st, "emit")->s, "ids");
    s->n_ctx = st->threads > 0 ? st->threads : 1;
    s->ctx = wn_calloc((size_t)s->n_ctx, sizeof *s->ctx);
    s->attr = wn_calloc((size_t)s->n_ctx, sizeof *s->attr);
    if (!s->ctx || !s->attr) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n_ctx; i++)
        if (!(s->ctx[i] = wn_tok_ctx_new(s->t))) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

static wn_err tok_doc(const tokenize *s, wn_tok_ctx *c, wn_buf *attr, wn_doc *d)
{
    wn_err e = WN_OK;
    d->tokens.n = 0;
    if (s->eot_where == 1) e = wn_ids_push(&d->tokens, (uint32_t)s->eot);
    if (!e) e = wn_tokenizer_encode(c, d->text.p ? d->text.p : "", d->text.len, s->special, &d->tokens);
    if (!e && s->eot_where == 2) e = wn_ids_push(&d->tokens, (uint32_t)s->eot);
    if (e) return e;
    d->has_tokens = 1;
    wn_buf_clear(attr);
    wn_buf_printf(attr, "%zu", d->tokens.n);
    if ((e = wn_doc_attr(d, "n_tokens", attr->p))) return e;
    if (s->emit_ids) {
        wn_buf_clear(attr);
        wn_buf_putc(attr, '[');
        for (size_t i = 0; i < d->tokens.n; i++) wn_buf_printf(attr, i ? ",%u" : "%u", d->tokens.p[i]);
        wn_buf_putc(attr, ']');
        e = wn_doc_attr(d, "tokens", attr->p);
    }
    return e;
}

static wn_err tok_one(wn_stage *st, int thread, wn_doc *d)
{
    tokenize *s = st->state;
    return tok_doc(s, s->ctx[thread], &s->attr[thread], d);
}

static wn_err tok_process(wn_stage *st, wn_batch *b)
{
    return wn_stage_each_doc(st, b, ((tokenize *)st->state)->n_ctx, tok_one);
}

static void tok_report(wn_stage *st, wn_jw *w)
{
    tokenize *s = st->state;
    wn_jw_key(w, "tokenizer_vocab_size"); wn_jw_i64(w, wn_tokenizer_vocab_size(s->t));
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)wn_tokenizer_hash(s->t));
    wn_jw_key(w, "tokenizer_hash"); wn_jw_str(w, hex);
}

static void tok_close(wn_stage *st)
{
    tokenize *s = st->state;
    for (int i = 0; s->ctx && i < s->n_ctx; i++) wn_tok_ctx_free(s->ctx[i]);
    for (int i = 0; s->attr && i < s->n_ctx; i++) wn_buf_free(&s->attr[i]);
    wn_free(s->ctx);
    wn_free(s->attr);
    wn_tokenizer_free(s->t);
}

const wn_stage_def wn_stage_tokenize = {
    .name = "tokenize",
    .summary = "byte-level BPE token ids for every document (GPT-2 / HF tokenizer.json)",
    .doc = "Encodes each text with the tokenizer, identical to GPT-2 / tiktoken / HF tokenizers for the\n"
           "same files. eot: prepend follows llm.c (each document starts with <|endoftext|>, the\n"
           "separator of a packed stream). The ids stay with the document for later stages; the output\n"
           "record gets winnow.n_tokens (and winnow.tokens with emit: ids). Reports add tokens_in,\n"
           "tokens_out, tokenizer_vocab_size and tokenizer_hash.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(tokenize),
    .open = tok_open,
    .process = tok_process,
    .report = tok_report,
    .close = tok_close,
};
