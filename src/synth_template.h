/*
 * synth_template.h - the template language of the `synthesize` stage: a
 * small text format whose templates expand into documents (question/answer
 * pairs, arithmetic with worked answers, formatted records) and, in the model
 * and endpoint modes, into prompts. The format is specified in
 * docs/synthesis.md; in short:
 *
 *   # a comment (at the start of a line, outside a block)
 *   list color = red | green | blue          word list, one line
 *   list city:                                word list, one item a line
 *     Paris
 *     Tokyo
 *   list noun < nouns.txt                     word list from a file (beside this one)
 *   rule greeting = Hello | [3] Hi {name}     weighted alternatives (template text)
 *   rule fact:                                one alternative a line
 *     [2] {city} is a city.
 *     {color} is a color.
 *   template sum [2]:                         a document; [weight] optional
 *     Q: What is {a = int 2..99} + {b = int 2..a}?
 *     A: {a} + {b} = {calc a + b}.
 *
 * Slots {...} in template text: {NAME} (a list, a rule, or a variable bound
 * before), {int LO..HI} (uniform; bounds are calc expressions),
 * {calc EXPR} (integer + - * / % and parentheses over integers and
 * variables), {doc.FIELD} (the source document: id, text, or a top-level
 * field of its record), {(alt|[2]alt|...)} (an inline weighted choice whose
 * alternatives are template text, so choices nest). Any slot may bind its
 * result, {x = ...} (and output it) or {x := ...} (silently), and end in
 * filters: | upper, | lower, | cap, | trim, | words N, | chars N, | sentence.
 * Escapes: \{ \} \| \( \) \[ \\ and \n.
 *
 * Expansion is a pure function of (template set, seed state, source
 * document): every random draw comes from the caller's splitmix64 state, in
 * the order the text is read, so a seed fixes the output.
 *
 * Errors. Parsing: WN_ERR_INPUT with "FILE:LINE: what" in err. Expansion:
 * failures that depend on the draws or the document (a missing field, a
 * division by zero, an unbound variable, an integer overflow, a result over
 * the size limit, too deep a recursion) return WN_ERR_INPUT with a static
 * reason in *why ("missing_field", "arithmetic", "unbound", "too_long",
 * "too_deep") and "FILE:LINE: what" in err; the caller decides whether that
 * skips one document or stops the run.
 *
 * Ownership and threads: a wn_tmpl is immutable after parsing (and
 * wn_tmpl_restrict) and may be shared by threads; each thread expands with
 * its own wn_tmpl_ctx.
 */
#ifndef WN_SYNTH_TEMPLATE_H
#define WN_SYNTH_TEMPLATE_H

#include "wn.h"

typedef struct wn_tmpl wn_tmpl;
typedef struct wn_tmpl_ctx wn_tmpl_ctx;

enum {
    WN_TMPL_NO_FILES = 1, /* refuse `list NAME < FILE` (fuzzing) */
};

/* The source document a template may read ({doc.id}, {doc.text},
 * {doc.FIELD} from raw, a JSON object or empty). Borrowed for the call. */
typedef struct {
    wn_span id, text, raw;
} wn_tmpl_doc;

/* Parses template text s[0..n). `path` names it in messages, and list files
 * are read relative to its directory. At least one template is required. */
wn_err wn_tmpl_parse(wn_tmpl **out, const char *s, size_t n, const char *path, unsigned flags, wn_errbuf *err);
/* Reads path and parses it. */
wn_err wn_tmpl_load(wn_tmpl **out, const char *path, wn_errbuf *err);
void wn_tmpl_free(wn_tmpl *t);

int wn_tmpl_count(const wn_tmpl *t);
const char *wn_tmpl_name(const wn_tmpl *t, int i);
/* Index of the template named name, or -1. */
int wn_tmpl_find(const wn_tmpl *t, const char *name);
/* Keeps only the templates of a comma-separated list for the weighted pick
 * (empty = all). An unknown name is WN_ERR_MANIFEST. */
wn_err wn_tmpl_restrict(wn_tmpl *t, const char *names, wn_errbuf *err);

wn_tmpl_ctx *wn_tmpl_ctx_new(const wn_tmpl *t);
void wn_tmpl_ctx_free(wn_tmpl_ctx *c);

/* Largest expansion (bytes) before it fails as "too_long"; default 1 MiB. */
void wn_tmpl_ctx_limit(wn_tmpl_ctx *c, size_t max_bytes);

/* Expands template `which` (-1: one picked by weight among the active ones,
 * the first draw from *rng) for doc (may be NULL: {doc.*} then fails as
 * missing_field), appending to out; *picked = the template expanded. */
wn_err wn_tmpl_expand(const wn_tmpl *t, wn_tmpl_ctx *c, int which, const wn_tmpl_doc *doc, uint64_t *rng,
                      wn_buf *out, int *picked, const char **why, wn_errbuf *err);

#endif
