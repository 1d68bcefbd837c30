/*
 * bpe_train.c - byte-level BPE training: counts pre-tokenization pieces over
 * a streamed corpus, then learns merges the way HF tokenizers' BpeTrainer
 * does, so the same corpus gives the same merges.
 *
 * Counting: a byte-only tokenizer cuts each fed chunk into pieces; a table
 * (open addressing, xxh3 of the bytes) maps each distinct piece to its count;
 * piece bytes live in one arena, so counting allocates only when the table
 * or the arena doubles. O(corpus bytes) time, O(distinct piece bytes) memory.
 *
 * Merging (finish): each distinct piece becomes a word, a run of symbol ids
 * that starts as its byte ids, with the piece's count as weight. For every
 * adjacent pair of ids we keep its count (occurrences weighted by word
 * count; "aaa" holds (a,a) twice, as in HF) and the list of words that
 * contain it. A max-heap ordered by (count desc, (a,b) asc) picks the next
 * merge with lazy invalidation: counts only fall after a pair's first push,
 * so a popped entry whose count is stale is pushed again with the current
 * count, and the first entry popped with a current count is the true
 * maximum. Merging (a,b) into z rewrites only the words on (a,b)'s list, left
 * to right and without overlap (HF's Word::merge: "aaaa" becomes "zz"), and
 * applies the neighbour changes: (x,a) and (b,y) lose the word's count,
 * (x,z) and (z,y) gain it, and the word joins the lists of the new pairs.
 * The corpus is never rescanned. Cost: O(S) to set up, S = total bytes of
 * the distinct pieces, then per merge O(sum of the lengths of the words on
 * the merged pair's list) plus O(log H) per heap entry, H <= pairs ever
 * created plus stale re-pushes.
 *
 * Determinism: counts are sums and the heap order is total on (count, a, b),
 * so neither the table's slot order (which words come first) nor the order
 * the words of one merge are rewritten changes the merges; nothing is
 * sorted.
 */
#include "bpe_train.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- piece counting -------------------------------------------------------- */

typedef struct {
    uint64_t hash;
    uint64_t off;   /* piece bytes at arena + off */
    uint64_t count; /* 0: empty slot */
    uint32_t len;
} piece_slot;

struct wn_bpe_trainer {
    wn_pretok pretok;
    char *pattern;
    int vocab_size, n_specials;
    uint64_t min_frequency;
    char **specials;

    wn_tokenizer *bytes_tok; /* no merges: cuts text into pieces, maps bytes to ids */
    wn_tok_ctx *ctx;

    piece_slot *slots; /* power-of-two capacity, at most 3/4 full */
    size_t cap, used;
    char *arena;
    size_t arena_len, arena_cap;

    uint64_t words, bytes;
    wn_err failed; /* first feed error; the trainer is unusable after it */
    wn_errbuf ferr;
    int finished;
};

static int slots_grow(wn_bpe_trainer *tr)
{
    size_t ncap = tr->cap ? tr->cap * 2 : 4096;
    piece_slot *ns = wn_calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < tr->cap; i++) {
        const piece_slot *s = &tr->slots[i];
        if (!s->count) continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].count) j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    wn_free(tr->slots);
    tr->slots = ns;
    tr->cap = ncap;
    return 0;
}

/* wn_piece_fn: one piece of the text being fed. */
static void count_piece(void *arg, const char *piece, size_t n)
{
    wn_bpe_trainer *tr = arg;
    if (tr->failed || n == 0) return;
    if (n > UINT32_MAX) {
        tr->failed = wn_fail(&tr->ferr, WN_ERR_INPUT, "tokenizer train: a piece of %zu bytes", n);
        return;
    }
    uint64_t h = XXH3_64bits(piece, n);
    size_t mask = tr->cap - 1, i = h & mask;
    for (piece_slot *s; (s = &tr->slots[i])->count; i = (i + 1) & mask) {
        if (s->hash == h && s->len == n && memcmp(tr->arena + s->off, piece, n) == 0) {
            s->count++;
            return;
        }
    }
    if (tr->arena_len + n > tr->arena_cap) {
        size_t ncap = tr->arena_cap ? tr->arena_cap : 1 << 16;
        while (ncap < tr->arena_len + n) ncap *= 2;
        char *na = wn_realloc(tr->arena, ncap);
        if (!na) goto nomem;
        tr->arena = na;
        tr->arena_cap = ncap;
    }
    memcpy(tr->arena + tr->arena_len, piece, n);
    tr->slots[i] = (piece_slot){.hash = h, .off = tr->arena_len, .count = 1, .len = (uint32_t)n};
    tr->arena_len += n;
    tr->words++;
    if (++tr->used * 4 > tr->cap * 3 && slots_grow(tr) != 0) goto nomem;
    return;
nomem:
    tr->failed = wn_fail(&tr->ferr, WN_ERR_NOMEM, "tokenizer train: out of memory counting pieces (%llu distinct)",
                         (unsigned long long)tr->words);
}

wn_err wn_bpe_trainer_new(wn_bpe_trainer **out, const wn_bpe_train_opts *o, wn_errbuf *err)
{
    *out = NULL;
    if (o->n_specials < 0 || (o->n_specials && !o->specials))
        return wn_fail(err, WN_ERR_USAGE, "tokenizer train: bad special-token list");
    if ((long long)o->vocab_size < 256LL + o->n_specials)
        return wn_fail(err, WN_ERR_USAGE,
                       "tokenizer train: vocab size %d is below 256 byte tokens + %d special tokens",
                       o->vocab_size, o->n_specials);
    if (o->pretok == WN_PRETOK_CUSTOM && !o->pattern)
        return wn_fail(err, WN_ERR_USAGE, "tokenizer train: custom pre-tokenization needs a pattern");
    wn_err e = WN_ERR_NOMEM;
    wn_bpe_trainer *tr = wn_calloc(1, sizeof *tr);
    if (!tr) return wn_fail(err, e, "tokenizer train: out of memory");
    tr->pretok = o->pretok;
    tr->vocab_size = o->vocab_size;
    tr->min_frequency = o->min_frequency ? o->min_frequency : 2;
    if (o->pattern && !(tr->pattern = wn_strdup(o->pattern))) goto nomem;
    if (o->n_specials) {
        if (!(tr->specials = wn_calloc((size_t)o->n_specials, sizeof *tr->specials))) goto nomem;
        for (int i = 0; i < o->n_specials; i++) {
            if (!o->specials[i] || !o->specials[i][0]) {
                e = wn_fail(err, WN_ERR_USAGE, "tokenizer train: special token %d is empty", i);
                goto fail;
            }
            if (!(tr->specials[i] = wn_strdup(o->specials[i]))) goto nomem;
            tr->n_specials = i + 1;
        }
    }
    if ((e = wn_tokenizer_build(&tr->bytes_tok, tr->pretok, tr->pattern, NULL, 0, NULL, 0, err)) != WN_OK)
        goto fail;
    e = WN_ERR_NOMEM;
    if (!(tr->ctx = wn_tok_ctx_new(tr->bytes_tok))) goto nomem;
    if (slots_grow(tr) != 0) goto nomem;
    *out = tr;
    return WN_OK;
nomem:
    e = wn_fail(err, WN_ERR_NOMEM, "tokenizer train: out of memory");
fail:
    wn_bpe_trainer_free(tr);
    return e;
}

wn_err wn_bpe_trainer_feed(wn_bpe_trainer *tr, const char *text, size_t n)
{
    if (tr->failed) return tr->failed;
    if (tr->finished) return tr->failed = wn_fail(&tr->ferr, WN_ERR_INTERNAL, "tokenizer train: feed after finish");
    wn_err e = wn_tokenizer_pieces(tr->ctx, text, n, count_piece, tr);
    if (e != WN_OK && !tr->failed)
        tr->failed = wn_fail(&tr->ferr, e, "tokenizer train: pre-tokenization failed (%s)", wn_err_name(e));
    tr->bytes += n;
    return tr->failed;
}

uint64_t wn_bpe_trainer_words(const wn_bpe_trainer *tr) { return tr->words; }
uint64_t wn_bpe_trainer_bytes(const wn_bpe_trainer *tr) { return tr->bytes; }

static void free_pieces(wn_bpe_trainer *tr)
{
    wn_free(tr->slots);
    wn_free(tr->arena);
    tr->slots = NULL;
    tr->arena = NULL;
    tr->cap = tr->used = tr->arena_len = tr->arena_cap = 0;
}

void wn_bpe_trainer_free(wn_bpe_trainer *tr)
{
    if (!tr) return;
    free_pieces(tr);
    wn_tok_ctx_free(tr->ctx);
    wn_tokenizer_free(tr->bytes_tok);
    for (int i = 0; i < tr->n_specials; i++) wn_free(tr->specials[i]);
    wn_free(tr->specials);
    wn_free(tr->pattern);
    wn_free(tr);
}

/* ---- merging ------------------------------------------------------------- */

#define NONE UINT32_MAX

typedef struct {
    uint64_t key;   /* a << 32 | b: comparing keys compares (a, b) */
    int64_t count;  /* occurrences weighted by word count */
    uint32_t *w;    /* words that contain (or once contained) the pair */
    uint32_t n, cap;
    uint32_t last;  /* the word last added to w: dedups within one word */
    uint32_t mark;  /* the merge that last collected this pair as new, + 1 */
    int pooled;     /* w points into the shared pool (initial pairs; never grows) */
} pair_t;

typedef struct {
    uint64_t count, key;
    uint32_t idx;
} heap_ent;

typedef struct {
    /* words */
    uint32_t *syms;   /* all words' symbols; word i at syms + woff[i], wlen[i] long */
    size_t *woff;
    uint32_t *wlen;
    uint64_t *wcount;
    uint32_t nwords;
    /* pairs: table of pair indexes, NONE when empty */
    pair_t *pairs;
    uint32_t npairs, pairs_cap;
    uint32_t *tab;
    size_t tab_cap;
    uint32_t *pool;
    /* pairs created by the current merge, pushed when it is done */
    uint32_t *fresh;
    uint32_t nfresh, fresh_cap;
    heap_ent *heap;
    size_t nheap, heap_cap;
} merger;

static inline size_t key_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k;
}

static int tab_grow(merger *m)
{
    size_t ncap = m->tab_cap ? m->tab_cap * 2 : 1 << 12;
    uint32_t *nt = wn_malloc(ncap * sizeof *nt);
    if (!nt) return -1;
    memset(nt, 0xff, ncap * sizeof *nt);
    for (uint32_t i = 0; i < m->npairs; i++) {
        size_t j = key_hash(m->pairs[i].key) & (ncap - 1);
        while (nt[j] != NONE) j = (j + 1) & (ncap - 1);
        nt[j] = i;
    }
    wn_free(m->tab);
    m->tab = nt;
    m->tab_cap = ncap;
    return 0;
}

/* The index of pair key, or NONE. */
static inline uint32_t pair_find(const merger *m, uint64_t key)
{
    size_t mask = m->tab_cap - 1;
    for (size_t j = key_hash(key) & mask;; j = (j + 1) & mask) {
        uint32_t i = m->tab[j];
        if (i == NONE || m->pairs[i].key == key) return i;
    }
}

/* The index of pair key, added with count 0 when new; NONE on out-of-memory. */
static uint32_t pair_get(merger *m, uint64_t key)
{
    size_t mask = m->tab_cap - 1, j = key_hash(key) & mask;
    for (uint32_t i; (i = m->tab[j]) != NONE; j = (j + 1) & mask)
        if (m->pairs[i].key == key) return i;
    if (m->npairs == m->pairs_cap) {
        if (m->pairs_cap >= NONE / 2) return NONE;
        uint32_t ncap = m->pairs_cap ? m->pairs_cap * 2 : 1 << 12;
        pair_t *np = wn_realloc(m->pairs, (size_t)ncap * sizeof *np);
        if (!np) return NONE;
        m->pairs = np;
        m->pairs_cap = ncap;
    }
    uint32_t i = m->npairs++;
    m->pairs[i] = (pair_t){.key = key, .last = NONE};
    m->tab[j] = i;
    if ((size_t)m->npairs * 2 > m->tab_cap && tab_grow(m) != 0) return NONE;
    return i;
}

/* Heap order: larger count first, then the smaller (a, b). */
static inline int heap_before(const heap_ent *x, const heap_ent *y)
{
    return x->count != y->count ? x->count > y->count : x->key < y->key;
}

static void heap_down(heap_ent *h, size_t n, size_t i)
{
    heap_ent e = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&h[c + 1], &h[c])) c++;
        if (!heap_before(&h[c], &e)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static int heap_push(merger *m, uint64_t count, uint32_t idx)
{
    if (m->nheap == m->heap_cap) {
        size_t ncap = m->heap_cap ? m->heap_cap * 2 : 1 << 12;
        heap_ent *nh = wn_realloc(m->heap, ncap * sizeof *nh);
        if (!nh) return -1;
        m->heap = nh;
        m->heap_cap = ncap;
    }
    heap_ent e = {count, m->pairs[idx].key, idx};
    size_t i = m->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(&e, &m->heap[p])) break;
        m->heap[i] = m->heap[p];
        i = p;
    }
    m->heap[i] = e;
    return 0;
}

static heap_ent heap_pop(merger *m)
{
    heap_ent top = m->heap[0];
    m->heap[0] = m->heap[--m->nheap];
    if (m->nheap) heap_down(m->heap, m->nheap, 0);
    return top;
}

static void merger_free(merger *m)
{
    for (uint32_t i = 0; i < m->npairs; i++)
        if (!m->pairs[i].pooled) wn_free(m->pairs[i].w);
    wn_free(m->pairs);
    wn_free(m->tab);
    wn_free(m->pool);
    wn_free(m->fresh);
    wn_free(m->heap);
    wn_free(m->syms);
    wn_free(m->woff);
    wn_free(m->wlen);
    wn_free(m->wcount);
}

/* Words from the counted pieces (a one-byte piece has no pairs: skipped).
 * Frees the piece table. */
static int words_build(merger *m, wn_bpe_trainer *tr)
{
    size_t nw = 0;
    for (size_t i = 0; i < tr->cap; i++) nw += tr->slots[i].count && tr->slots[i].len >= 2;
    if (nw >= NONE) return -1;
    m->syms = wn_malloc((tr->arena_len ? tr->arena_len : 1) * sizeof *m->syms);
    m->woff = wn_malloc((nw ? nw : 1) * sizeof *m->woff);
    m->wlen = wn_malloc((nw ? nw : 1) * sizeof *m->wlen);
    m->wcount = wn_malloc((nw ? nw : 1) * sizeof *m->wcount);
    if (!m->syms || !m->woff || !m->wlen || !m->wcount) return -1;
    uint32_t byte_id[256];
    for (int b = 0; b < 256; b++) byte_id[b] = wn_tokenizer_byte_id(tr->bytes_tok, (unsigned char)b);
    size_t off = 0;
    for (size_t i = 0; i < tr->cap; i++) {
        const piece_slot *s = &tr->slots[i];
        if (!s->count || s->len < 2) continue;
        const unsigned char *p = (const unsigned char *)tr->arena + s->off;
        for (uint32_t k = 0; k < s->len; k++) m->syms[off + k] = byte_id[p[k]];
        m->woff[m->nwords] = off;
        m->wlen[m->nwords] = s->len;
        m->wcount[m->nwords] = s->count;
        m->nwords++;
        off += s->len;
    }
    free_pieces(tr);
    return 0;
}

/* Counts the pairs of all words and fills each pair's word list (two passes:
 * sizes, then the lists, all in one pool). */
static int pairs_build(merger *m)
{
    if (tab_grow(m) != 0) return -1;
    for (uint32_t w = 0; w < m->nwords; w++) {
        const uint32_t *s = m->syms + m->woff[w];
        for (uint32_t k = 0; k + 1 < m->wlen[w]; k++) {
            uint32_t i = pair_get(m, (uint64_t)s[k] << 32 | s[k + 1]);
            if (i == NONE) return -1;
            pair_t *p = &m->pairs[i];
            p->count += (int64_t)m->wcount[w];
            if (p->last != w) p->last = w, p->cap++;
        }
    }
    size_t total = 0;
    for (uint32_t i = 0; i < m->npairs; i++) total += m->pairs[i].cap;
    if (!(m->pool = wn_malloc((total ? total : 1) * sizeof *m->pool))) return -1;
    total = 0;
    for (uint32_t i = 0; i < m->npairs; i++) {
        pair_t *p = &m->pairs[i];
        p->w = m->pool + total;
        p->pooled = 1;
        p->last = NONE;
        total += p->cap;
    }
    for (uint32_t w = 0; w < m->nwords; w++) {
        const uint32_t *s = m->syms + m->woff[w];
        for (uint32_t k = 0; k + 1 < m->wlen[w]; k++) {
            pair_t *p = &m->pairs[pair_find(m, (uint64_t)s[k] << 32 | s[k + 1])];
            if (p->last != w) p->last = w, p->w[p->n++] = w;
        }
    }
    return 0;
}

/* Word w loses one (x, y). The pair exists: the word held it. */
static inline void pair_dec(merger *m, uint32_t x, uint32_t y, uint32_t w)
{
    uint32_t i = pair_find(m, (uint64_t)x << 32 | y);
    WN_CHECK(i != NONE);
    m->pairs[i].count -= (int64_t)m->wcount[w];
    assert(m->pairs[i].count >= 0);
}

/* Word w gains one (x, y), a pair holding the token merge `k` creates. */
static int pair_inc(merger *m, uint32_t x, uint32_t y, uint32_t w, uint32_t k)
{
    uint32_t i = pair_get(m, (uint64_t)x << 32 | y);
    if (i == NONE) return -1;
    pair_t *p = &m->pairs[i];
    p->count += (int64_t)m->wcount[w];
    if (p->last != w) {
        WN_CHECK(!p->pooled); /* only pairs with a new token gain words */
        if (p->n == p->cap) {
            uint32_t ncap = p->cap ? p->cap * 2 : 4;
            uint32_t *nw = wn_realloc(p->w, (size_t)ncap * sizeof *nw);
            if (!nw) return -1;
            p->w = nw;
            p->cap = ncap;
        }
        p->w[p->n++] = w;
        p->last = w;
    }
    if (p->mark != k + 1) {
        if (m->nfresh == m->fresh_cap) {
            uint32_t ncap = m->fresh_cap ? m->fresh_cap * 2 : 256;
            uint32_t *nf = wn_realloc(m->fresh, (size_t)ncap * sizeof *nf);
            if (!nf) return -1;
            m->fresh = nf;
            m->fresh_cap = ncap;
        }
        m->fresh[m->nfresh++] = i;
        p->mark = k + 1;
    }
    return 0;
}

/* Rewrites word w with every (a, b), left to right and without overlap, as
 * z, the token of merge k; updates the neighbouring pairs. */
static int word_merge(merger *m, uint32_t w, uint32_t a, uint32_t b, uint32_t z, uint32_t k)
{
    uint32_t *s = m->syms + m->woff[w];
    uint32_t n = m->wlen[w], j = 0;
    for (uint32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (j > 0) {
                pair_dec(m, s[j - 1], a, w);
                if (pair_inc(m, s[j - 1], z, w, k) != 0) return -1;
            }
            if (i + 2 < n) {
                pair_dec(m, b, s[i + 2], w);
                if (pair_inc(m, z, s[i + 2], w, k) != 0) return -1;
            }
            s[j++] = z;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    m->wlen[w] = j;
    return 0;
}

wn_err wn_bpe_trainer_finish(wn_bpe_trainer *tr, wn_tokenizer **out, wn_errbuf *err)
{
    *out = NULL;
    if (tr->failed) return wn_fail(err, tr->failed, "%s", tr->ferr.msg);
    if (tr->finished) return wn_fail(err, WN_ERR_INTERNAL, "tokenizer train: finish called twice");
    tr->finished = 1;
    size_t target = (size_t)(tr->vocab_size - 256 - tr->n_specials);
    merger m = {0};
    uint32_t(*merges)[2] = wn_malloc((target ? target : 1) * sizeof *merges);
    size_t k = 0;
    wn_err e = WN_OK;
    if (!merges || words_build(&m, tr) != 0 || pairs_build(&m) != 0) goto nomem;

    m.heap_cap = m.npairs ? m.npairs : 1;
    if (!(m.heap = wn_malloc(m.heap_cap * sizeof *m.heap))) goto nomem;
    for (uint32_t i = 0; i < m.npairs; i++)
        m.heap[m.nheap++] = (heap_ent){(uint64_t)m.pairs[i].count, m.pairs[i].key, i};
    for (size_t i = m.nheap / 2; i-- > 0;) heap_down(m.heap, m.nheap, i);

    while (k < target && m.nheap) {
        heap_ent top = heap_pop(&m);
        int64_t cur = m.pairs[top.idx].count;
        if ((int64_t)top.count != cur) {
            if (cur > 0 && heap_push(&m, (uint64_t)cur, top.idx) != 0) goto nomem;
            continue;
        }
        if (top.count == 0 || top.count < tr->min_frequency) break;
        uint32_t a = (uint32_t)(top.key >> 32), b = (uint32_t)top.key, z = (uint32_t)(256 + k);
        merges[k][0] = a;
        merges[k][1] = b;
        /* The list does not move while we walk it: only pairs holding z gain words. */
        const uint32_t *ws = m.pairs[top.idx].w;
        uint32_t nws = m.pairs[top.idx].n;
        m.nfresh = 0;
        for (uint32_t i = 0; i < nws; i++)
            if (word_merge(&m, ws[i], a, b, z, (uint32_t)k) != 0) goto nomem;
        pair_t *p = &m.pairs[top.idx];
        p->count = 0;
        if (!p->pooled) wn_free(p->w);
        p->w = NULL;
        p->n = p->cap = 0;
        for (uint32_t i = 0; i < m.nfresh; i++) {
            int64_t c = m.pairs[m.fresh[i]].count;
            if (c > 0 && heap_push(&m, (uint64_t)c, m.fresh[i]) != 0) goto nomem;
        }
        k++;
    }
    merger_free(&m);
    e = wn_tokenizer_build(out, tr->pretok, tr->pattern, (const uint32_t(*)[2])merges, k,
                           (const char *const *)tr->specials, tr->n_specials, err);
    wn_free(merges);
    return e;
nomem:
    merger_free(&m);
    wn_free(merges);
    return wn_fail(err, WN_ERR_NOMEM, "tokenizer train: out of memory after %zu merges", k);
}
