/*
 * fasttext.c - fastText supervised .bin models: loader and native
 * prediction (see fasttext.h for the format and what a prediction sees).
 *
 * Exactness: the float arithmetic follows fastText's order (rows summed in
 * feature order, one float scale by 1/n, float dot products, max-subtracted
 * float softmax), so probabilities match `predict-prob` to float rounding.
 * The word table is our own open-addressing table; lookups give the same
 * ids as fastText's (entries are unique; for a duplicated string the last
 * entry wins, as in fastText's load).
 */
#include "fasttext.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FT_MAGIC 793712314
#define FT_VERSION 12
enum { LOSS_HS = 1, LOSS_NS = 2, LOSS_SOFTMAX = 3, LOSS_OVA = 4 };
enum { MODEL_SUP = 3 };
#define SIG_SIZE 512
#define SIG_MAX 8
static const char EOS[] = "</s>";
static const char LABEL_PREFIX[] = "__label__";

typedef struct {
    int32_t key, val;
    int64_t order;
} prune_pair;

struct wn_ft {
    int32_t dim, word_ngrams, loss, bucket, minn, maxn;
    int32_t size, nwords, nlabels;
    int64_t prune_n; /* -1 = not pruned */
    char *arena;     /* all entry strings, NUL-terminated */
    char **str;
    uint32_t *len;
    int8_t *type;
    int64_t *count;
    int32_t *tab; /* slot -> entry id, -1 empty */
    uint32_t tab_mask;
    prune_pair *prune;
    float *in, *out;
    int64_t in_rows, out_rows;
    int32_t *left, *right; /* hs tree, 2*nlabels-1 nodes */
    float sig[SIG_SIZE + 1];
};

/* ---- reading ----------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, off;
    const char *name;
    wn_errbuf *err;
} rd;

static wn_err truncated(rd *r, const char *what)
{
    return wn_fail(r->err, WN_ERR_INPUT, "%s: fastText model truncated at byte %zu (reading %s)", r->name,
                   r->off, what);
}

static int rd_bytes(rd *r, void *dst, size_t k)
{
    if (r->n - r->off < k) return 0;
    memcpy(dst, r->p + r->off, k);
    r->off += k;
    return 1;
}
#define RD(r, v, what) \
    do { if (!rd_bytes(r, &(v), sizeof(v))) return truncated(r, what); } while (0)

/* Reads an int64 rows x cols float32 matrix into `*dst`. */
static wn_err rd_matrix(rd *r, const char *what, float **dst, int64_t *rows, int64_t *cols)
{
    RD(r, *rows, what);
    RD(r, *cols, what);
    size_t left = (r->n - r->off) / sizeof(float);
    if (*rows < 0 || *cols < 0 || (*cols > 0 && (uint64_t)*rows > left / (uint64_t)*cols))
        return wn_fail(r->err, WN_ERR_INPUT,
                       "%s: %s is %lld x %lld but only %zu floats remain in the file (truncated or corrupt)",
                       r->name, what, (long long)*rows, (long long)*cols, left);
    size_t k = (size_t)*rows * (size_t)*cols;
    *dst = wn_malloc(k ? k * sizeof(float) : 1);
    if (!*dst) return wn_fail(r->err, WN_ERR_NOMEM, "%s: out of memory for %s", r->name, what);
    memcpy(*dst, r->p + r->off, k * sizeof(float));
    r->off += k * sizeof(float);
    return WN_OK;
}

/* FNV-1a 32-bit over bytes taken as signed chars, as fastText hashes. */
static inline uint32_t fnv_step(uint32_t h, char c)
{
    return (h ^ (uint32_t)(int32_t)(int8_t)c) * 16777619u;
}
static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = fnv_step(h, s[i]);
    return h;
}

static int32_t lookup(const wn_ft *m, const char *s, size_t n, uint32_t h)
{
    for (uint32_t i = h & m->tab_mask;; i = (i + 1) & m->tab_mask) {
        int32_t id = m->tab[i];
        if (id < 0) return -1;
        if (m->len[id] == n && !memcmp(m->str[id], s, n)) return id;
    }
}

static int prune_cmp(const void *a, const void *b)
{
    const prune_pair *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Builds fastText's Huffman tree over label counts (leaves 0..nlabels-1). */
static wn_err build_tree(wn_ft *m)
{
    int32_t osz = m->nlabels, nn = 2 * osz - 1;
    int64_t *cnt = wn_malloc((size_t)nn * sizeof *cnt);
    m->left = wn_malloc((size_t)nn * sizeof *m->left);
    m->right = wn_malloc((size_t)nn * sizeof *m->right);
    if (!cnt || !m->left || !m->right) { wn_free(cnt); return WN_ERR_NOMEM; }
    for (int32_t i = 0; i < nn; i++) {
        m->left[i] = m->right[i] = -1;
        cnt[i] = i < osz ? m->count[m->nwords + i] : (int64_t)1e15;
    }
    /* fastText's loop. Its nodes not yet built count 1e15, so that a leaf is
     * taken before them; a leaf is taken outright when no built node is
     * left, which is the same for real counts (below 1e15, in descending
     * order) and keeps a corrupt file's counts from running past the array. */
    int32_t leaf = osz - 1, node = osz;
    for (int32_t i = osz; i < nn; i++) {
        int32_t mini[2];
        for (int j = 0; j < 2; j++) {
            if (leaf >= 0 && (node >= i || cnt[leaf] < cnt[node])) mini[j] = leaf--;
            else mini[j] = node++;
        }
        m->left[i] = mini[0];
        m->right[i] = mini[1];
        cnt[i] = cnt[mini[0]] + cnt[mini[1]];
    }
    wn_free(cnt);
    return WN_OK;
}

wn_err wn_ft_parse(wn_ft **out, const void *data, size_t n, const char *name, wn_errbuf *err)
{
    *out = NULL;
    rd r = {data, n, 0, name, err};
    wn_err e = WN_OK;
    wn_ft *m = wn_calloc(1, sizeof *m);
    if (!m) return wn_fail(err, WN_ERR_NOMEM, "out of memory");
    int32_t magic, version, a[12];
    double t;
    if (!rd_bytes(&r, &magic, 4) || magic != FT_MAGIC) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: not a fastText model (bad magic number; expected 793712314)", name);
        goto fail;
    }
    if (!rd_bytes(&r, &version, 4)) { e = truncated(&r, "version"); goto fail; }
    if (version != FT_VERSION) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: fastText format version %d not supported (expected %d)", name,
                    version, FT_VERSION);
        goto fail;
    }
    if (!rd_bytes(&r, a, sizeof a) || !rd_bytes(&r, &t, sizeof t)) { e = truncated(&r, "args"); goto fail; }
    m->dim = a[0];
    m->word_ngrams = a[5];
    m->loss = a[6];
    m->bucket = a[8];
    m->minn = a[9];
    m->maxn = a[10];
    if (a[7] != MODEL_SUP) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: not a supervised model (model %d; only supervised classifiers "
                    "predict labels)", name, a[7]);
        goto fail;
    }
    if (m->loss < LOSS_HS || m->loss > LOSS_OVA) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: unknown loss %d (expected hs, ns, softmax or ova)", name, m->loss);
        goto fail;
    }
    if (m->dim <= 0 || m->dim > (1 << 20)) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: dim %d out of range", name, m->dim);
        goto fail;
    }
    int need_bucket = m->maxn > 0 || m->word_ngrams > 1;
    if (need_bucket && m->bucket <= 0) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: bucket %d but the model uses subwords or word n-grams", name, m->bucket);
        goto fail;
    }
    int64_t ntokens;
    if (!rd_bytes(&r, &m->size, 4) || !rd_bytes(&r, &m->nwords, 4) || !rd_bytes(&r, &m->nlabels, 4) ||
        !rd_bytes(&r, &ntokens, 8) || !rd_bytes(&r, &m->prune_n, 8)) {
        e = truncated(&r, "dictionary header");
        goto fail;
    }
    if (m->size < 0 || m->nwords < 0 || m->nlabels <= 0 || (int64_t)m->nwords + m->nlabels != m->size) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: inconsistent dictionary counts (size %d, nwords %d, nlabels %d)",
                    name, m->size, m->nwords, m->nlabels);
        goto fail;
    }
    /* each entry takes at least 10 bytes: check before allocating */
    if ((uint64_t)m->size > (r.n - r.off) / 10) { e = truncated(&r, "dictionary entries"); goto fail; }
    size_t sz = (size_t)m->size;
    m->str = wn_malloc(sz * sizeof *m->str + 1);
    m->len = wn_malloc(sz * sizeof *m->len + 1);
    m->type = wn_malloc(sz + 1);
    m->count = wn_malloc(sz * sizeof *m->count + 1);
    size_t cap = 16;
    while (cap < 2 * sz) cap *= 2;
    m->tab = wn_malloc(cap * sizeof *m->tab);
    if (!m->str || !m->len || !m->type || !m->count || !m->tab) goto nomem;
    m->tab_mask = (uint32_t)(cap - 1);
    memset(m->tab, 0xff, cap * sizeof *m->tab);
    size_t arena_start = r.off, arena_len = 0;
    for (size_t i = 0; i < sz; i++) { /* first pass: bounds, lengths */
        const uint8_t *z = memchr(r.p + r.off, 0, r.n - r.off);
        if (!z) { e = truncated(&r, "dictionary string"); goto fail; }
        size_t l = (size_t)(z - (r.p + r.off));
        if (l > UINT32_MAX) { e = truncated(&r, "dictionary string"); goto fail; }
        m->len[i] = (uint32_t)l;
        arena_len += l + 1;
        r.off += l + 1;
        if (!rd_bytes(&r, &m->count[i], 8) || !rd_bytes(&r, &m->type[i], 1)) {
            e = truncated(&r, "dictionary entry");
            goto fail;
        }
        if (m->type[i] != (i >= (size_t)m->nwords)) {
            e = wn_fail(err, WN_ERR_INPUT, "%s: dictionary entry %zu has type %d; words must precede labels",
                        name, i, m->type[i]);
            goto fail;
        }
    }
    m->arena = wn_malloc(arena_len + 1);
    if (!m->arena) goto nomem;
    {
        size_t off = arena_start, ao = 0;
        for (size_t i = 0; i < sz; i++) {
            memcpy(m->arena + ao, r.p + off, m->len[i] + 1);
            m->str[i] = m->arena + ao;
            ao += m->len[i] + 1;
            off += m->len[i] + 1 + 9;
            uint32_t h = fnv(m->str[i], m->len[i]);
            uint32_t s = h & m->tab_mask;
            while (m->tab[s] >= 0 && !(m->len[m->tab[s]] == m->len[i] && !memcmp(m->str[m->tab[s]], m->str[i], m->len[i])))
                s = (s + 1) & m->tab_mask;
            m->tab[s] = (int32_t)i;
        }
    }
    if (m->prune_n > 0) {
        if ((uint64_t)m->prune_n > (r.n - r.off) / 8) { e = truncated(&r, "pruned index"); goto fail; }
        m->prune = wn_malloc((size_t)m->prune_n * sizeof *m->prune);
        if (!m->prune) goto nomem;
        for (int64_t i = 0; i < m->prune_n; i++) {
            rd_bytes(&r, &m->prune[i].key, 4);
            rd_bytes(&r, &m->prune[i].val, 4);
            m->prune[i].order = i;
        }
        qsort(m->prune, (size_t)m->prune_n, sizeof *m->prune, prune_cmp);
    } else if (m->prune_n < -1) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: bad pruned-index size %lld", name, (long long)m->prune_n);
        goto fail;
    }
    uint8_t quant;
    if (!rd_bytes(&r, &quant, 1)) { e = truncated(&r, "quantization flag"); goto fail; }
    if (quant) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: quantized model (.ftz) not supported; use the unquantized .bin", name);
        goto fail;
    }
    int64_t cols;
    if ((e = rd_matrix(&r, "input matrix", &m->in, &m->in_rows, &cols))) goto fail;
    if (cols != m->dim) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: input matrix has %lld columns, expected dim %d", name, (long long)cols, m->dim);
        goto fail;
    }
    int64_t need_rows = m->nwords + (m->prune_n < 0 && need_bucket ? (int64_t)m->bucket : 0);
    for (int64_t i = 0; i < m->prune_n; i++)
        if (m->prune[i].val < 0 || m->nwords + (int64_t)m->prune[i].val >= m->in_rows) need_rows = INT64_MAX;
    if (m->in_rows < need_rows) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: input matrix has %lld rows, too few for %d words and the buckets",
                    name, (long long)m->in_rows, m->nwords);
        goto fail;
    }
    if (!rd_bytes(&r, &quant, 1)) { e = truncated(&r, "output quantization flag"); goto fail; }
    if (quant) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: quantized output matrix not supported", name);
        goto fail;
    }
    if ((e = rd_matrix(&r, "output matrix", &m->out, &m->out_rows, &cols))) goto fail;
    if (cols != m->dim || m->out_rows < (m->loss == LOSS_HS ? m->nlabels - 1 : m->nlabels)) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: output matrix is %lld x %lld, too small for %d labels of dim %d", name,
                    (long long)m->out_rows, (long long)cols, m->nlabels, m->dim);
        goto fail;
    }
    if (r.off != r.n) {
        e = wn_fail(err, WN_ERR_INPUT, "%s: %zu unexpected bytes after the output matrix", name, r.n - r.off);
        goto fail;
    }
    if (m->loss == LOSS_HS && build_tree(m)) goto nomem;
    for (int i = 0; i <= SIG_SIZE; i++) {
        float x = (float)(i * 2 * SIG_MAX) / SIG_SIZE - SIG_MAX;
        m->sig[i] = (float)(1.0 / (1.0 + exp(-x)));
    }
    *out = m;
    return WN_OK;
nomem:
    e = wn_fail(err, WN_ERR_NOMEM, "%s: out of memory loading the model", name);
fail:
    wn_ft_free(m);
    return e;
}

wn_err wn_ft_load(wn_ft **out, const char *path, wn_errbuf *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return wn_fail(err, WN_ERR_IO, "%s: cannot open fastText model", path);
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return wn_fail(err, WN_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return wn_fail(err, WN_ERR_INPUT, "%s: empty file, not a fastText model", path);
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return wn_fail(err, WN_ERR_IO, "%s: cannot map the file", path);
    wn_err e = wn_ft_parse(out, p, (size_t)sb.st_size, path, err);
    munmap(p, (size_t)sb.st_size);
    return e;
}

void wn_ft_free(wn_ft *m)
{
    if (!m) return;
    wn_free(m->arena);
    wn_free(m->str);
    wn_free(m->len);
    wn_free(m->type);
    wn_free(m->count);
    wn_free(m->tab);
    wn_free(m->prune);
    wn_free(m->in);
    wn_free(m->out);
    wn_free(m->left);
    wn_free(m->right);
    wn_free(m);
}

int wn_ft_nlabels(const wn_ft *m) { return m->nlabels; }
const char *wn_ft_label(const wn_ft *m, int i) { return m->str[m->nwords + i]; }
int wn_ft_dim(const wn_ft *m) { return m->dim; }

/* ---- prediction -------------------------------------------------------- */

static wn_err push32(int32_t **v, size_t *n, size_t *cap, int32_t x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        int32_t *p = wn_realloc(*v, c * sizeof *p);
        if (!p) return WN_ERR_NOMEM;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return WN_OK;
}

/* fastText's pushHash: a bucket id becomes a feature (through the pruned
 * index when there is one). */
static wn_err push_bucket(const wn_ft *m, wn_ft_scratch *s, int32_t id)
{
    if (m->prune_n == 0 || id < 0) return WN_OK;
    if (m->prune_n > 0) {
        size_t lo = 0, hi = (size_t)m->prune_n; /* last pair with key == id */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (m->prune[mid].key <= id) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0 || m->prune[lo - 1].key != id) return WN_OK;
        id = m->prune[lo - 1].val;
    }
    return push32(&s->feat, &s->n_feat, &s->cap_feat, m->nwords + id);
}

/* Character n-grams of w = "<token>" (code points minn..maxn, not the lone
 * "<" or ">"). */
static wn_err subwords(const wn_ft *m, wn_ft_scratch *s, const char *w, size_t L)
{
    for (size_t i = 0; i < L; i++) {
        if ((w[i] & 0xC0) == 0x80) continue;
        uint32_t h = 2166136261u;
        size_t j = i;
        for (int n = 1; j < L && n <= m->maxn; n++) {
            h = fnv_step(h, w[j++]);
            while (j < L && (w[j] & 0xC0) == 0x80) h = fnv_step(h, w[j++]);
            if (n >= m->minn && !(n == 1 && (i == 0 || j == L))) {
                wn_err e = push_bucket(m, s, (int32_t)(h % (uint32_t)m->bucket));
                if (e) return e;
            }
        }
    }
    return WN_OK;
}

static wn_err add_token(const wn_ft *m, wn_ft_scratch *s, const char *tok, size_t n, int is_eos)
{
    uint32_t h = fnv(tok, n);
    int32_t id = lookup(m, tok, n, h);
    int label = id >= 0 ? m->type[id] == 1
                        : n >= sizeof LABEL_PREFIX - 1 && !memcmp(tok, LABEL_PREFIX, sizeof LABEL_PREFIX - 1);
    if (label) return WN_OK;
    wn_err e = WN_OK;
    if (id >= 0 && (e = push32(&s->feat, &s->n_feat, &s->cap_feat, id))) return e;
    if (m->maxn > 0 && !is_eos) {
        if (n + 3 > s->cap_tok) {
            char *p = wn_realloc(s->tok, n + 64);
            if (!p) return WN_ERR_NOMEM;
            s->tok = p;
            s->cap_tok = n + 64;
        }
        s->tok[0] = '<';
        memcpy(s->tok + 1, tok, n);
        s->tok[n + 1] = '>';
        if ((e = subwords(m, s, s->tok, n + 2))) return e;
    }
    return push32(&s->hash, &s->n_hash, &s->cap_hash, (int32_t)h);
}

static int is_sep(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == 0;
}

/* fastText's std_log: log(p + 1e-5), the score predictions are ranked and
 * printed by. */
static inline float std_log(float x) { return (float)log((double)x + 1e-5); }

/* Inserts (label, key) into the best-first list out[0..*n) of at most k. */
static void top_insert(wn_ft_pred *out, int *n, int k, int label, float key)
{
    if (*n == k && !(key > out[k - 1].prob)) return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && key > out[i - 1].prob) {
        out[i] = out[i - 1];
        i--;
    }
    out[i].label = label;
    out[i].prob = key;
}

static float sigmoid_table(const wn_ft *m, float x)
{
    if (!(x >= -SIG_MAX)) return 0.0f;
    if (x > SIG_MAX) return 1.0f;
    int64_t i = (int64_t)((x + SIG_MAX) * SIG_SIZE / SIG_MAX / 2);
    return m->sig[i];
}

static float dot_row(const float *restrict row, const float *restrict v, int dim)
{
    float d = 0.0f;
    for (int j = 0; j < dim; j++) d += row[j] * v[j];
    return d;
}

wn_err wn_ft_predict(const wn_ft *m, wn_ft_scratch *s, const char *text, size_t n, int k, wn_ft_pred *out,
                     int *n_out)
{
    *n_out = 0;
    if (k > m->nlabels) k = m->nlabels;
    if (k < 1) return WN_ERR_INTERNAL;
    wn_err e;
    s->n_feat = s->n_hash = 0;
    int eos_seen = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && is_sep(text[i])) i++;
        if (i == n) break;
        size_t b = i;
        while (i < n && !is_sep(text[i])) i++;
        int eos = i - b == 4 && !memcmp(text + b, EOS, 4);
        if ((e = add_token(m, s, text + b, i - b, eos))) return e;
        if (eos) { eos_seen = 1; break; } /* predict stops reading the line at "</s>" */
    }
    if (!eos_seen && (e = add_token(m, s, EOS, 4, 1))) return e;
    if (m->word_ngrams > 1)
        for (size_t i = 0; i < s->n_hash; i++) {
            uint64_t h = (uint64_t)(int64_t)s->hash[i];
            for (size_t j = i + 1; j < s->n_hash && j < i + (size_t)m->word_ngrams; j++) {
                h = h * 116049371u + (uint64_t)(int64_t)s->hash[j];
                if ((e = push_bucket(m, s, (int32_t)(h % (uint64_t)m->bucket)))) return e;
            }
        }
    if (!s->n_feat) return WN_OK;

    size_t need = (size_t)m->dim > (size_t)m->nlabels ? (size_t)m->dim : (size_t)m->nlabels;
    if (need > s->cap_vec) {
        float *h = wn_realloc(s->hidden, need * sizeof *h), *o = h ? wn_realloc(s->out, need * sizeof *o) : NULL;
        if (h) s->hidden = h;
        if (!o) return WN_ERR_NOMEM;
        s->out = o;
        s->cap_vec = need;
    }
    int dim = m->dim;
    float *restrict hid = s->hidden;
    memset(hid, 0, (size_t)dim * sizeof *hid);
    for (size_t f = 0; f < s->n_feat; f++) {
        int32_t id = s->feat[f];
        WN_CHECK(id >= 0 && id < m->in_rows);
        const float *row = m->in + (size_t)id * (size_t)dim;
        for (int j = 0; j < dim; j++) hid[j] += row[j];
    }
    float scale = (float)(1.0 / (double)s->n_feat);
    for (int j = 0; j < dim; j++) hid[j] *= scale;

    int nl = m->nlabels, cnt = 0;
    if (m->loss == LOSS_HS) {
        if ((size_t)(nl + 2) > s->cap_stack) {
            size_t c = (size_t)nl + 2;
            int32_t *a = wn_realloc(s->stack_node, c * sizeof *a);
            if (a) s->stack_node = a;
            float *b = a ? wn_realloc(s->stack_score, c * sizeof *b) : NULL;
            if (!b) return WN_ERR_NOMEM;
            s->stack_score = b;
            s->cap_stack = c;
        }
        /* fastText's dfs: left child first, pruned below log(1e-5) and by
         * the current k-th best */
        const float floor_score = std_log(0.0f);
        size_t sp = 0;
        s->stack_node[sp] = 2 * nl - 2;
        s->stack_score[sp++] = 0.0f;
        while (sp) {
            sp--;
            int32_t node = s->stack_node[sp];
            float score = s->stack_score[sp];
            if (score < floor_score) continue;
            if (cnt == k && score < out[k - 1].prob) continue;
            if (m->left[node] == -1 && m->right[node] == -1) {
                top_insert(out, &cnt, k, node, score);
                continue;
            }
            float f = dot_row(m->out + (size_t)(node - nl) * (size_t)dim, hid, dim);
            f = (float)(1. / (1 + expf(-f)));
            WN_CHECK(sp + 2 <= s->cap_stack);
            s->stack_node[sp] = m->right[node];
            s->stack_score[sp++] = score + std_log(f);
            s->stack_node[sp] = m->left[node];
            s->stack_score[sp++] = score + std_log((float)(1.0 - f));
        }
    } else {
        float *restrict o = s->out;
        for (int i = 0; i < nl; i++) o[i] = dot_row(m->out + (size_t)i * (size_t)dim, hid, dim);
        if (m->loss == LOSS_SOFTMAX) {
            float mx = o[0], z = 0.0f;
            for (int i = 0; i < nl; i++) mx = o[i] > mx ? o[i] : mx;
            for (int i = 0; i < nl; i++) {
                o[i] = expf(o[i] - mx);
                z += o[i];
            }
            for (int i = 0; i < nl; i++) o[i] /= z;
        } else {
            for (int i = 0; i < nl; i++) o[i] = sigmoid_table(m, o[i]);
        }
        for (int i = 0; i < nl; i++) {
            float key = std_log(o[i]);
            if (cnt == k && key < out[k - 1].prob) continue;
            top_insert(out, &cnt, k, i, key);
        }
    }
    for (int i = 0; i < cnt; i++) out[i].prob = expf(out[i].prob);
    *n_out = cnt;
    return WN_OK;
}

void wn_ft_scratch_free(wn_ft_scratch *s)
{
    if (!s) return;
    wn_free(s->feat);
    wn_free(s->hash);
    wn_free(s->hidden);
    wn_free(s->out);
    wn_free(s->tok);
    wn_free(s->stack_node);
    wn_free(s->stack_score);
    memset(s, 0, sizeof *s);
}
