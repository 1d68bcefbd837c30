/*
 * test_minhash.c - src/minhash.c and the minhash_dedup stage: normalization
 * and shingles on hand-made texts; the modular permutation and whole
 * signatures against a brute-force reference (128-bit %, over the distinct
 * shingles); band keys; the LSH curve; union-find in any order; Jaccard; the
 * bucket and pair tables with a budget that forces runs against the
 * in-memory path; and the stage through its descriptor: near-duplicates
 * found, verification by exact Jaccard, identical outputs for 1, 2 and 4
 * threads and for a tiny budget (spilled) vs a large one, and a checkpoint
 * taken mid-stream, a crash after more work, a restore and the rest giving
 * the uninterrupted run's output.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../stage_harness.h"
#include "../test.h"
#include "json.h"
#include "minhash.h"
#include "stage.h"

/* ---- normalization and shingles ------------------------------------------------------ */

static int norm_is(const char *in, int full, int cjk, const char *want)
{
    wn_mh_scratch sc = {0};
    int ok = wn_mh_normalize(&sc, in, strlen(in), full, cjk) == WN_OK && sc.norm.len == strlen(want) &&
             !memcmp(sc.norm.p, want, sc.norm.len);
    if (!ok) fprintf(stderr, "  normalize(\"%s\") = \"%s\", want \"%s\"\n", in, sc.norm.p ? sc.norm.p : "", want);
    /* word starts: one after each space */
    size_t words = 0;
    for (size_t i = 0; ok && i < sc.norm.len; i++)
        if (i == 0 || sc.norm.p[i - 1] == ' ') ok &= sc.pos[words++] == i;
    ok &= words == sc.n_pos && sc.pos[sc.n_pos] == sc.norm.len;
    wn_mh_scratch_free(&sc);
    return ok;
}

TEST(minhash_normalize)
{
    CHECK(norm_is("Hello, WORLD!  How are   you?", 1, 1, "hello world how are you"));
    CHECK(norm_is("  It's 3,700 people; 19.5% in 2024 ", 1, 1, "it s 0 0 people 0 0 in 0"));
    CHECK(norm_is("abc123def 42", 1, 1, "abc0def 0"));
    CHECK(norm_is("Caf\xc3\xa9 na\xc3\xafve \xef\xac\x81nd \xef\xbc\xa1\xef\xbc\xa2", 1, 1, "cafe naive find ab"));
    CHECK(norm_is("Stra\xc3\x9f" "e \xce\xa3\xce\xbf\xcf\x86\xce\xaf\xce\xb1", 1, 1, "strasse \xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1"));
    CHECK(norm_is("\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c", 1, 1,
                  "\xe4\xbd\xa0 \xe5\xa5\xbd \xe4\xb8\x96 \xe7\x95\x8c")); /* one word per ideograph */
    CHECK(norm_is("\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c", 1, 0,
                  "\xe4\xbd\xa0\xe5\xa5\xbd \xe4\xb8\x96\xe7\x95\x8c")); /* char mode keeps them together */
    CHECK(norm_is("a\xff" "b \xe2\x80\x94 c", 1, 1, "a b c"));                 /* invalid byte, dash */
    CHECK(norm_is("", 1, 1, ""));
    CHECK(norm_is("!!! ... ---", 1, 1, ""));
    CHECK(norm_is("  Keep  IT,\tas-is\n\xc2\xa0x ", 0, 1, "Keep IT, as-is x"));
}

static uint64_t h(const char *s) { return XXH3_64bits(s, strlen(s)); }

TEST(minhash_shingles)
{
    wn_mh_scratch sc = {0};
    wn_mh_cfg w5 = {WN_MH_WORD, 5, 1}, w3 = {WN_MH_WORD, 3, 1}, c3 = {WN_MH_CHAR, 3, 1};
    const char *t = "A b, c D e F!";
    CHECK(wn_mh_shingles(&sc, &w5, t, strlen(t)) == WN_OK);
    CHECK_EQ_INT(sc.n_h, 2);
    CHECK(sc.h[0] == h("a b c d e") && sc.h[1] == h("b c d e f"));
    CHECK(wn_mh_shingles(&sc, &w3, t, strlen(t)) == WN_OK);
    CHECK_EQ_INT(sc.n_h, 4);
    CHECK(sc.h[3] == h("d e f"));
    CHECK(wn_mh_shingles(&sc, &w5, "Two words", 9) == WN_OK); /* shorter than n: the whole text */
    CHECK(sc.n_h == 1 && sc.h[0] == h("two words"));
    CHECK(wn_mh_shingles(&sc, &w5, "...", 3) == WN_OK);
    CHECK_EQ_INT(sc.n_h, 0);
    CHECK(wn_mh_shingles(&sc, &c3, "Ab cd", 5) == WN_OK); /* "ab cd": ab_, b_c, _cd */
    CHECK(sc.n_h == 3 && sc.h[0] == h("ab ") && sc.h[1] == h("b c") && sc.h[2] == h(" cd"));
    CHECK(wn_mh_shingles(&sc, &c3, "\xc3\xa9t\xc3\xa9s", 7) == WN_OK); /* etes after stripping: ete, tes */
    CHECK(sc.n_h == 2 && sc.h[0] == h("ete") && sc.h[1] == h("tes"));
    CHECK(wn_mh_shingles(&sc, &c3, "xy", 2) == WN_OK);
    CHECK(sc.n_h == 1 && sc.h[0] == h("xy"));
    wn_mh_scratch_free(&sc);
}

TEST(minhash_sets_jaccard)
{
    uint64_t a[] = {5, 1, 3, 3, 9, 1}, b[] = {3, 4, 5, 5};
    size_t na = wn_mh_set(a, 6), nb = wn_mh_set(b, 4);
    CHECK(na == 4 && a[0] == 1 && a[1] == 3 && a[2] == 5 && a[3] == 9);
    CHECK(nb == 3 && b[0] == 3 && b[1] == 4 && b[2] == 5);
    CHECK_EQ_INT(wn_mh_intersect(a, na, b, nb), 2);
    CHECK(fabs(wn_mh_jaccard(a, na, b, nb) - 2.0 / 5) < 1e-15);
    CHECK(wn_mh_jaccard(a, 0, b, 0) == 0);
}

/* ---- signatures ---------------------------------------------------------------------- */

static uint64_t ref_perm(uint64_t a, uint64_t b, uint64_t h)
{
    unsigned __int128 x = h % WN_MH_P;
    return (uint64_t)(((unsigned __int128)a * x + b) % WN_MH_P);
}

TEST(minhash_perm_vs_bruteforce)
{
    uint64_t s = 7, P = WN_MH_P;
    const uint64_t edge[] = {0, 1, 2, P - 2, P - 1, P, P + 1, (1ull << 62), UINT64_MAX, UINT64_MAX - 1};
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t a = 1 + wn_splitmix64(&s) % (P - 1), b = wn_splitmix64(&s) % P, x = wn_splitmix64(&s);
        if (i < 1000) { /* edges of every operand */
            a = i % 3 == 0 ? P - 1 : i % 3 == 1 ? 1 : a;
            b = i % 5 == 0 ? P - 1 : i % 5 == 1 ? 0 : b;
            x = edge[i % 10];
        }
        if (wn_mh_perm(a, b, wn_mh_mod(x)) != ref_perm(a, b, x) && bad++ < 5)
            fprintf(stderr, "  perm(%llu, %llu, %llu) wrong\n", (unsigned long long)a, (unsigned long long)b,
                    (unsigned long long)x);
        if (wn_mh_mod(x) != x % P) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    uint64_t pa[8], pb[8], qa[8], qb[8];
    wn_mh_perms(42, 8, pa, pb);
    wn_mh_perms(42, 8, qa, qb);
    CHECK(!memcmp(pa, qa, sizeof pa) && !memcmp(pb, qb, sizeof pb));
    for (int k = 0; k < 8; k++) CHECK(pa[k] >= 1 && pa[k] < P && pb[k] < P);
    wn_mh_perms(43, 8, qa, qb);
    CHECK(memcmp(pa, qa, sizeof pa));
}

TEST(minhash_signature_vs_bruteforce)
{
    enum { K = 112 };
    uint64_t a[K], b[K], sig[K], ref[K], s = 99;
    wn_mh_perms(1, K, a, b);
    size_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 64, 333};
    uint64_t hs[400];
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        size_t n = sizes[t];
        for (size_t i = 0; i < n; i++) hs[i] = i % 7 == 3 && i ? hs[i - 1] : wn_splitmix64(&s); /* with repeats */
        wn_mh_signature(hs, n, a, b, K, sig);
        /* brute force: the distinct hashes, each permutation's minimum by 128-bit % */
        uint64_t set[400];
        memcpy(set, hs, n * sizeof *hs);
        size_t m = wn_mh_set(set, n);
        for (int k = 0; k < K; k++) {
            ref[k] = UINT64_MAX;
            for (size_t i = 0; i < m; i++) {
                uint64_t v = ref_perm(a[k], b[k], set[i]);
                if (v < ref[k]) ref[k] = v;
            }
        }
        CHECK(!memcmp(sig, ref, sizeof sig));
    }
    /* the batch form is the per-document form */
    uint64_t off[4] = {0, 5, 5, 12}, all[12], batch[3 * K];
    for (int i = 0; i < 12; i++) all[i] = wn_splitmix64(&s);
    wn_mh_signatures(all, off, 3, a, b, K, batch);
    for (int d = 0; d < 3; d++) {
        wn_mh_signature(all + off[d], off[d + 1] - off[d], a, b, K, sig);
        CHECK(!memcmp(sig, batch + d * K, sizeof sig));
    }
    CHECK(batch[K] == UINT64_MAX); /* the empty document */
}

TEST(minhash_bands_and_curve)
{
    uint64_t sig[12], keys[3], keys2[3];
    for (int i = 0; i < 12; i++) sig[i] = (uint64_t)i * 1000003;
    wn_mh_band_keys(sig, 3, 4, keys);
    for (int b = 0; b < 3; b++) CHECK(keys[b] == XXH3_64bits(sig + 4 * b, 32));
    sig[5]++; /* band 1 changes, bands 0 and 2 do not */
    wn_mh_band_keys(sig, 3, 4, keys2);
    CHECK(keys[0] == keys2[0] && keys[1] != keys2[1] && keys[2] == keys2[2]);
    double s = wn_mh_s_half(14, 8);
    CHECK(fabs(s - 0.68470) < 1e-4);
    CHECK(fabs(wn_mh_p_candidate(s, 14, 8) - 0.5) < 1e-9);
    CHECK(fabs(wn_mh_p_candidate(0.8, 14, 8) - 0.92355) < 1e-4);
    CHECK(wn_mh_p_candidate(1, 14, 8) == 1 && wn_mh_p_candidate(0, 14, 8) == 0);
}

TEST(minhash_union_find)
{
    enum { N = 1000 };
    uint32_t p1[N], p2[N];
    uint64_t s = 5;
    uint32_t ea[600], eb[600];
    for (int i = 0; i < 600; i++) {
        ea[i] = (uint32_t)(wn_splitmix64(&s) % N);
        eb[i] = (uint32_t)(wn_splitmix64(&s) % N);
    }
    for (uint32_t i = 0; i < N; i++) p1[i] = p2[i] = i;
    for (int i = 0; i < 600; i++) wn_mh_union(p1, ea[i], eb[i]);
    for (int i = 599; i >= 0; i--) wn_mh_union(p2, eb[i], ea[i]); /* reversed, swapped */
    int bad = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t r = wn_mh_find(p1, i);
        bad += r != wn_mh_find(p2, i) || r > i || p1[i] > i;
    }
    /* the root is the smallest member: every member's root is <= it and is its own root */
    for (uint32_t i = 0; i < N; i++) bad += wn_mh_find(p1, wn_mh_find(p1, i)) != wn_mh_find(p1, i);
    CHECK_EQ_INT(bad, 0);
    uint32_t q[4] = {0, 1, 2, 3};
    CHECK(wn_mh_union(q, 3, 2) == 1 && wn_mh_union(q, 2, 3) == 0 && wn_mh_union(q, 1, 3) == 1);
    CHECK(wn_mh_find(q, 3) == 1 && wn_mh_find(q, 2) == 1 && wn_mh_find(q, 0) == 0);
}

/* ---- the tables ---------------------------------------------------------------------- */

typedef struct {
    uint64_t *v;
    size_t n, cap;
} pairs_out;

static wn_err collect(void *ctx, uint32_t a, uint32_t b)
{
    pairs_out *o = ctx;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 1024;
        o->v = realloc(o->v, o->cap * sizeof *o->v);
    }
    o->v[o->n++] = (uint64_t)a << 32 | b;
    return WN_OK;
}

/* The pairs of a bucket table of 3000 documents x 6 bands with many shared
 * keys, at a budget. */
static int bucket_pairs(const char *dir, uint64_t budget, int anchors, pairs_out *o, int *runs)
{
    wn_mh_buckets t;
    wn_errbuf err;
    if (wn_mh_buckets_init(&t, dir, 6, budget, &err)) return 0;
    uint64_t s = 11, keys[6];
    int ok = 1;
    for (uint32_t d = 0; d < 3000 && ok; d++) {
        for (int b = 0; b < 6; b++) keys[b] = wn_splitmix64(&s) % (b == 0 ? 50 : 2000 + 1000 * b);
        ok = wn_mh_buckets_add(&t, d, keys, &err) == WN_OK;
    }
    ok = ok && wn_mh_buckets_pairs(&t, anchors, 4096, collect, o, &err) == WN_OK;
    *runs = t.n_runs;
    wn_mh_buckets_free(&t);
    return ok;
}

TEST(minhash_bucket_table_spill)
{
    wn_test_stage h = {0};
    CHECK(wn_test_stage_dir(&h));
    for (int anchors = 1; anchors <= 2; anchors++) {
        pairs_out mem = {0}, disk = {0};
        int runs_mem, runs_disk;
        CHECK(bucket_pairs(h.dir, 64 << 20, anchors, &mem, &runs_mem));
        CHECK(bucket_pairs(h.dir, 20000, anchors, &disk, &runs_disk));
        CHECK(runs_mem == 0 && runs_disk > 5);
        CHECK(mem.n == disk.n && mem.n > 3000 && !memcmp(mem.v, disk.v, mem.n * sizeof *mem.v));
        /* every pair is (smaller, larger) */
        int bad = 0;
        for (size_t i = 0; i < mem.n; i++) bad += (uint32_t)(mem.v[i] >> 32) >= (uint32_t)mem.v[i];
        CHECK_EQ_INT(bad, 0);
        free(mem.v);
        free(disk.v);
    }
    wn_test_stage_close(&h);
}

/* The entry stream: every entry once, band by band, each band in (key, doc)
 * order, the same from runs as from memory. */
typedef struct {
    wn_buf b;
    int last_band;
    uint64_t n, bad;
    wn_mh_entry prev;
} entries_out;

static wn_err collect_entry(void *ctx, int band, const wn_mh_entry *e)
{
    entries_out *o = ctx;
    if (band < o->last_band) o->bad++;
    if (band == o->last_band && (e->key < o->prev.key || (e->key == o->prev.key && e->doc <= o->prev.doc))) o->bad++;
    o->last_band = band;
    o->prev = *e;
    o->n++;
    wn_buf_append(&o->b, &band, sizeof band);
    wn_buf_append(&o->b, e, sizeof *e);
    return WN_OK;
}

static int bucket_entries(const char *dir, uint64_t budget, entries_out *o)
{
    wn_mh_buckets t;
    wn_errbuf err;
    if (wn_mh_buckets_init(&t, dir, 4, budget, &err)) return 0;
    uint64_t s = 5, keys[4];
    int ok = 1;
    for (uint32_t d = 0; d < 2000 && ok; d++) {
        for (int b = 0; b < 4; b++) keys[b] = wn_splitmix64(&s) % (b == 0 ? 30 : 500 * (uint64_t)b);
        ok = wn_mh_buckets_add(&t, d, keys, &err) == WN_OK;
    }
    o->last_band = -1;
    ok = ok && wn_mh_buckets_each(&t, 4096, collect_entry, o, &err) == WN_OK;
    ok = ok && (budget > 1000000 ? t.n_runs == 0 : t.n_runs > 3);
    wn_mh_buckets_free(&t);
    return ok;
}

TEST(minhash_bucket_entry_stream)
{
    wn_test_stage h = {0};
    CHECK(wn_test_stage_dir(&h));
    entries_out mem, disk;
    memset(&mem, 0, sizeof mem);
    memset(&disk, 0, sizeof disk);
    CHECK(bucket_entries(h.dir, 64 << 20, &mem));
    CHECK(bucket_entries(h.dir, 12000, &disk));
    CHECK(mem.n == 4 * 2000 && mem.bad == 0 && disk.bad == 0);
    CHECK(mem.b.len == disk.b.len && !memcmp(mem.b.p, disk.b.p, mem.b.len));
    wn_buf_free(&mem.b);
    wn_buf_free(&disk.b);
    wn_test_stage_close(&h);
}

static int cmp_entry(const void *a, const void *b)
{
    const wn_mh_entry *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* One band's entries cut into blocks of consecutive documents (as MPI ranks
 * hold them), each sorted: the merge gives the table's pairs, in its order. */
TEST(minhash_blocks_pairs)
{
    wn_test_stage h = {0};
    CHECK(wn_test_stage_dir(&h));
    enum { N = 3000 };
    wn_mh_entry *e = malloc(N * sizeof *e);
    uint64_t s = 17;
    for (uint32_t d = 0; d < N; d++) {
        e[d].key = wn_splitmix64(&s) % 400;
        e[d].doc = d;
    }
    for (int anchors = 1; anchors <= 2; anchors++) {
        wn_mh_buckets t;
        wn_errbuf err;
        pairs_out ref = {0}, got = {0};
        CHECK(wn_mh_buckets_init(&t, h.dir, 1, 64 << 20, &err) == WN_OK);
        int ok = 1;
        for (uint32_t d = 0; d < N && ok; d++) {
            uint64_t key = e[d].key;
            ok = wn_mh_buckets_add(&t, d, &key, &err) == WN_OK;
        }
        CHECK(ok && wn_mh_buckets_pairs(&t, anchors, 4096, collect, &ref, &err) == WN_OK);
        wn_mh_buckets_free(&t);
        static const uint64_t cut[] = {0, 700, 1500, 1500, 2999, N}; /* an empty block, a block of one */
        uint64_t n[5];
        wn_mh_entry *blk = malloc(N * sizeof *blk);
        memcpy(blk, e, N * sizeof *blk);
        for (int k = 0; k < 5; k++) {
            n[k] = cut[k + 1] - cut[k];
            qsort(blk + cut[k], n[k], sizeof *blk, cmp_entry);
        }
        CHECK(wn_mh_blocks_pairs(blk, n, 5, anchors, collect, &got) == WN_OK);
        CHECK(ref.n > N / 2 && got.n == ref.n && !memcmp(got.v, ref.v, ref.n * sizeof *ref.v));
        free(blk);
        free(ref.v);
        free(got.v);
    }
    free(e);
    wn_test_stage_close(&h);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

TEST(minhash_pair_table_spill)
{
    wn_test_stage h = {0};
    CHECK(wn_test_stage_dir(&h));
    enum { N = 50000 };
    uint64_t *ref = malloc(N * sizeof *ref), s = 3;
    for (int i = 0; i < N; i++) {
        uint32_t a = (uint32_t)(wn_splitmix64(&s) % 3000), b = a + 1 + (uint32_t)(wn_splitmix64(&s) % 40);
        ref[i] = (uint64_t)a << 32 | b;
    }
    uint64_t budgets[] = {64 << 20, 16384};
    for (int k = 0; k < 2; k++) {
        wn_mh_pairs p;
        wn_errbuf err;
        pairs_out o = {0};
        CHECK(wn_mh_pairs_init(&p, h.dir, budgets[k], &err) == WN_OK);
        int ok = 1;
        for (int i = 0; i < N && ok; i++) ok = wn_mh_pairs_add(&p, (uint32_t)(ref[i] >> 32), (uint32_t)ref[i], &err) == WN_OK;
        CHECK(ok);
        CHECK(wn_mh_pairs_each(&p, 4096, collect, &o, &err) == WN_OK);
        size_t first = o.n;
        CHECK(wn_mh_pairs_each(&p, 4096, collect, &o, &err) == WN_OK); /* repeatable */
        CHECK(k == 0 ? p.n_runs == 0 : p.n_runs > 2);
        uint64_t *u = malloc(N * sizeof *u);
        memcpy(u, ref, N * sizeof *u);
        qsort(u, N, sizeof *u, cmp_u64);
        size_t m = 0;
        for (size_t i = 0; i < N; i++)
            if (!m || u[i] != u[m - 1]) u[m++] = u[i];
        CHECK(first == m && o.n == 2 * m && !memcmp(o.v, u, m * sizeof *u) && !memcmp(o.v + m, u, m * sizeof *u));
        free(u);
        free(o.v);
        wn_mh_pairs_free(&p);
    }
    free(ref);
    wn_test_stage_close(&h);
}

/* ---- the stage ------------------------------------------------------------------------- */

static const char *const vocab[] = {
    "river", "stone", "light", "garden", "winter", "market", "letter", "window", "silver", "forest", "engine",
    "bridge", "harbor", "candle", "mirror", "planet", "thunder", "valley", "meadow", "signal", "copper", "lantern",
    "orchard", "canvas", "pocket", "ladder", "button", "feather", "island", "compass", "blanket", "kettle", "saddle",
    "basket", "crystal", "velvet", "marble", "timber", "ribbon", "anchor", "summit", "glacier", "desert", "canyon",
    "prairie", "tunnel", "castle", "temple", "village", "station", "the", "of", "and", "a", "to", "in", "is", "was",
    "under", "over", "near", "far", "quiet", "loud", "bright", "dark", "old", "new", "small", "large"};
enum { NV = sizeof vocab / sizeof *vocab };

/* Text of `words` words from seed, with a fraction `edit` of its words
 * replaced (edit seed eseed). */
static void gen_text(wn_buf *out, uint64_t seed, int words, double edit, uint64_t eseed)
{
    uint64_t s = seed, e = eseed;
    wn_buf_clear(out);
    for (int i = 0; i < words; i++) {
        const char *w = vocab[wn_splitmix64(&s) % NV];
        if (edit > 0 && (double)(wn_splitmix64(&e) >> 11) * 0x1p-53 < edit) w = vocab[wn_splitmix64(&e) % NV];
        wn_buf_printf(out, "%s%s%s", i ? " " : "", i % 17 == 0 ? "The" : w, i % 13 == 12 ? "." : "");
    }
}

/* The test corpus: n base documents of 60-200 words; after every fourth,
 * a copy with edit rate 0 (exact), 0.01, 0.06 or 0.4, cycling (Jaccard
 * about 1, 0.75-0.95, 0.45-0.7 and below 0.1). */
typedef struct {
    wn_batch b;
    int *base;       /* per document: the base index it copies, -1 for a base */
    double *rate;
} corpus;

static void make_corpus(corpus *c, int n)
{
    memset(c, 0, sizeof *c);
    c->base = calloc((size_t)n * 2, sizeof *c->base);
    c->rate = calloc((size_t)n * 2, sizeof *c->rate);
    static const double rates[] = {0, 0.01, 0.06, 0.4};
    int copies = 0;
    for (int i = 0; i < n; i++) {
        uint64_t s = (uint64_t)i * 7919 + 1;
        int words = 60 + (int)(wn_splitmix64(&s) % 140);
        wn_doc *d = wn_batch_push(&c->b);
        wn_buf_printf(&d->id, "b%d", i);
        gen_text(&d->text, (uint64_t)i + 1000, words, 0, 0);
        wn_buf_printf(&d->raw, "{\"id\":\"b%d\"}", i);
        d->record = c->b.n - 1;
        c->base[c->b.n - 1] = -1;
        if (i % 4 == 3) {
            double r = rates[copies++ % 4];
            d = wn_batch_push(&c->b);
            wn_buf_printf(&d->id, "c%d", i);
            gen_text(&d->text, (uint64_t)i + 1000, words, r, (uint64_t)i * 31 + 7);
            wn_buf_printf(&d->raw, "{\"id\":\"c%d\"}", i);
            d->record = c->b.n - 1;
            c->base[c->b.n - 1] = (int)c->b.n - 2;
            c->rate[c->b.n - 1] = r;
        }
    }
}

static void corpus_free(corpus *c)
{
    wn_batch_free(&c->b);
    free(c->base);
    free(c->rate);
}

/* Feeds docs [from, to) in batches of `per`; appends "id drop attrs\n" of
 * everything that comes back to out. */
static wn_err feed(wn_test_stage *h, const corpus *c, size_t from, size_t to, size_t per, wn_buf *out)
{
    wn_batch b = {0};
    wn_err e = WN_OK;
    for (size_t i = from; i < to && !e; i += per) {
        wn_batch_reset(&b);
        for (size_t j = i; j < to && j < i + per; j++) {
            const wn_doc *s = &c->b.docs[j];
            wn_doc *d = wn_batch_push(&b);
            wn_buf_append(&d->id, s->id.p, s->id.len);
            wn_buf_append(&d->text, s->text.p, s->text.len);
            wn_buf_append(&d->raw, s->raw.p, s->raw.len);
            d->raw_text = 1;
            d->record = s->record;
        }
        if ((e = h->st.def->process(&h->st, &b))) break;
        for (size_t j = 0; j < b.n; j++) wn_buf_printf(out, "early %.*s\n", (int)b.docs[j].id.len, b.docs[j].id.p);
    }
    wn_batch_free(&b);
    return e;
}

static wn_err drain(wn_test_stage *h, wn_buf *out)
{
    wn_batch b = {0};
    wn_err e = WN_OK;
    for (;;) {
        wn_batch_reset(&b);
        if ((e = h->st.def->finish(&h->st, &b)) || !b.n) break;
        for (size_t j = 0; j < b.n; j++)
            wn_buf_printf(out, "%.*s %s %.*s %.*s\n", (int)b.docs[j].id.len, b.docs[j].id.p,
                          b.docs[j].drop ? b.docs[j].drop : "-", (int)b.docs[j].attrs.len,
                          b.docs[j].attrs.p ? b.docs[j].attrs.p : "", (int)b.docs[j].text.len, b.docs[j].text.p);
    }
    wn_batch_free(&b);
    return e;
}

static void report_of(wn_test_stage *h, wn_buf *out)
{
    wn_jw w;
    wn_buf_clear(out);
    wn_jw_init(&w, out, 0);
    wn_jw_obj_begin(&w);
    h->st.def->report(&h->st, &w);
    wn_jw_obj_end(&w);
}

static double rnum(const wn_buf *r, const char *k1, const char *k2)
{
    wn_span v;
    double x = NAN;
    if (!wn_json_get(r->p, r->len, k1, &v)) return NAN;
    if (k2 && !wn_json_get(v.p, v.n, k2, &v)) return NAN;
    wn_json_to_double(v, &x);
    return x;
}

/* Runs the stage over the corpus: output lines into out, the report into rep. */
static int run(const corpus *c, const char *params, int threads, wn_buf *out, wn_buf *rep)
{
    wn_test_stage h = {0};
    wn_buf_clear(out);
    int ok = wn_test_stage_open(&h, "minhash_dedup", params, threads) == WN_OK;
    ok = ok && feed(&h, c, 0, c->b.n, 37, out) == WN_OK && drain(&h, out) == WN_OK;
    if (rep) report_of(&h, rep);
    wn_test_stage_close(&h);
    return ok;
}

/* Jaccard of two documents' 5-word shingle sets, from the library. */
static double jaccard_of(const wn_doc *x, const wn_doc *y)
{
    wn_mh_cfg cfg = {WN_MH_WORD, 5, 1};
    wn_mh_scratch a = {0}, b = {0};
    wn_mh_shingles(&a, &cfg, x->text.p, x->text.len);
    wn_mh_shingles(&b, &cfg, y->text.p, y->text.len);
    size_t na = wn_mh_set(a.h, a.n_h), nb = wn_mh_set(b.h, b.n_h);
    double j = wn_mh_jaccard(a.h, na, b.h, nb);
    wn_mh_scratch_free(&a);
    wn_mh_scratch_free(&b);
    return j;
}

/* Which documents a run dropped, from its output lines. */
static int dropped(const wn_buf *out, const char *id)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s near_duplicate", id);
    if (out->len > strlen(pat) - 1 && !strncmp(out->p, pat + 1, strlen(pat) - 1)) return 1;
    return strstr(out->p, pat) != NULL;
}

TEST(minhash_stage_finds_near_duplicates)
{
    corpus c;
    make_corpus(&c, 400);
    wn_buf out = {0}, rep = {0}, vout = {0}, vrep = {0};
    CHECK(run(&c, "verify: false", 2, &out, &rep));
    CHECK(run(&c, "", 2, &vout, &vrep)); /* verify: true, threshold: 0.8 */
    int bad = 0, n_copies = 0, n_drop = 0;
    for (size_t i = 0; i < c.b.n; i++) {
        const wn_doc *d = &c.b.docs[i];
        char id[32];
        snprintf(id, sizeof id, "%.*s", (int)d->id.len, d->id.p);
        if (c.base[i] < 0) { /* bases are unrelated: never dropped */
            bad += dropped(&out, id) + dropped(&vout, id);
            continue;
        }
        n_copies++;
        double j = jaccard_of(d, &c.b.docs[c.base[i]]);
        int drop = dropped(&out, id), vdrop = dropped(&vout, id);
        n_drop += drop;
        /* P(candidate) >= 0.988 from J = 0.85 (14 x 8): those must all be found */
        if ((j >= 0.85 || c.rate[i] == 0) && !(drop && vdrop)) bad++, fprintf(stderr, "  %s (J %.3f) kept\n", id, j);
        if (c.rate[i] >= 0.4 && (drop || vdrop)) bad++, fprintf(stderr, "  %s (J %.3f) dropped\n", id, j);
        if (vdrop && j < 0.8) bad++, fprintf(stderr, "  verify: %s (J %.3f) dropped\n", id, j);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(rnum(&rep, "removed", NULL) == n_drop);
    CHECK(rnum(&rep, "documents", NULL) == (double)c.b.n);
    CHECK(rnum(&rep, "candidate_pairs", NULL) >= rnum(&rep, "removed", NULL));
    CHECK(rnum(&vrep, "verified_pairs", NULL) <= rnum(&vrep, "candidate_pairs", NULL));
    CHECK(rnum(&vrep, "verified_pairs", NULL) >= rnum(&vrep, "removed", NULL));
    CHECK(rnum(&rep, "clusters", NULL) > 0 && rnum(&rep, "clusters", NULL) <= n_copies);
    /* a kept document of a cluster carries its id and size; clusters are numbered in order */
    CHECK(strstr(out.p, "b3 - \"minhash_cluster\":0,\"minhash_cluster_size\":2 ") != NULL);
    CHECK(strstr(out.p, "early") == NULL); /* everything is held back to the end */
    /* annotate: nothing dropped, the same documents marked, every member numbered */
    wn_buf aout = {0};
    CHECK(run(&c, "action: annotate", 2, &aout, NULL));
    int marked = 0, same = 1;
    for (size_t i = 0; i < c.b.n; i++) {
        char id[32], pat[64];
        snprintf(id, sizeof id, "%.*s", (int)c.b.docs[i].id.len, c.b.docs[i].id.p);
        snprintf(pat, sizeof pat, "\n%s - \"minhash_cluster\":", id);
        const char *line = strstr(aout.p, pat);
        int dup = line && strstr(line + 1, "\n") > strstr(line + 1, "\"minhash_duplicate\":true");
        dup = dup && strstr(line + 1, "\"minhash_duplicate\":true") != NULL;
        marked += dup;
        same &= dup == dropped(&vout, id);
    }
    CHECK(same && marked == rnum(&vrep, "removed", NULL));
    CHECK(strstr(aout.p, "near_duplicate") == NULL);
    wn_buf_free(&aout);
    wn_buf_free(&out);
    wn_buf_free(&rep);
    wn_buf_free(&vout);
    wn_buf_free(&vrep);
    corpus_free(&c);
}

TEST(minhash_stage_deterministic_threads_and_budget)
{
    corpus c;
    make_corpus(&c, 600);
    wn_buf ref = {0}, out = {0}, rep = {0};
    CHECK(run(&c, "memory: 64MiB, verify: false", 1, &ref, &rep));
    CHECK(rnum(&rep, "spill", "bucket_runs") == 0);
    CHECK(run(&c, "memory: 64MiB, verify: false", 2, &out, NULL));
    CHECK(out.len == ref.len && !memcmp(out.p, ref.p, ref.len));
    CHECK(run(&c, "memory: 64MiB, verify: false", 4, &out, NULL));
    CHECK(out.len == ref.len && !memcmp(out.p, ref.p, ref.len));
    /* a budget so small the buckets spill many runs (and the pairs too) */
    CHECK(run(&c, "memory: 24KiB, verify: false", 3, &out, &rep));
    CHECK(rnum(&rep, "spill", "bucket_runs") >= 10);
    CHECK(out.len == ref.len && !memcmp(out.p, ref.p, ref.len));
    /* the same with verification (the default) */
    CHECK(run(&c, "memory: 64MiB", 1, &ref, NULL));
    CHECK(run(&c, "memory: 64MiB", 3, &out, NULL));
    CHECK(out.len == ref.len && !memcmp(out.p, ref.p, ref.len));
    CHECK(run(&c, "memory: 24KiB", 4, &out, &rep));
    CHECK(rnum(&rep, "spill", "bucket_runs") >= 10);
    CHECK(out.len == ref.len && !memcmp(out.p, ref.p, ref.len));
    /* the GPU path's host code (gathering, offsets, keys), the CPU reference standing in for the kernel */
    setenv("WINNOW_TEST_MINHASH_HOST_KERNEL", "1", 1);
    CHECK(run(&c, "memory: 64MiB", 2, &out, NULL));
    unsetenv("WINNOW_TEST_MINHASH_HOST_KERNEL");
    CHECK(out.len == ref.len && !memcmp(out.p, ref.p, ref.len));
    /* char shingles and other bands run too */
    CHECK(run(&c, "shingle: char, bands: 20, rows: 5", 2, &out, &rep));
    CHECK(rnum(&rep, "ngram_used", NULL) == 24 && rnum(&rep, "removed", NULL) > 0);
    wn_buf_free(&ref);
    wn_buf_free(&out);
    wn_buf_free(&rep);
    corpus_free(&c);
}

/* Straight, and with a checkpoint after `at` documents, more work after it
 * (more spill frames, more bucket runs: the restore must forget them), a
 * crash, a restore and the rest. */
static void resume_identity(int *wn_failed_, const corpus *c, const char *params, size_t at)
{
    wn_buf ref = {0}, got = {0}, rep = {0};
    CHECK(run(c, params, 2, &ref, &rep));
    double runs = rnum(&rep, "spill", "bucket_runs");
    wn_test_stage h = {0};
    CHECK(wn_test_stage_open(&h, "minhash_dedup", params, 2) == WN_OK);
    CHECK(feed(&h, c, 0, at, 37, &got) == WN_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/ckpt", h.dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && h.st.def->save(&h.st, f) == WN_OK);
    if (f) fclose(f);
    CHECK(feed(&h, c, at, at + 150 < c->b.n ? at + 150 : c->b.n, 37, &got) == WN_OK);
    h.st.def->close(&h.st); /* the crash: state gone, files stay */
    memset(h.st.state, 0, h.st.def->state_size);
    CHECK(h.st.def->open(&h.st) == WN_OK);
    f = fopen(path, "rb");
    CHECK(f && h.st.def->load(&h.st, f) == WN_OK);
    if (f) fclose(f);
    wn_buf_clear(&got);
    CHECK(feed(&h, c, at, c->b.n, 37, &got) == WN_OK && drain(&h, &got) == WN_OK);
    report_of(&h, &rep);
    CHECK(rnum(&rep, "spill", "bucket_runs") == runs);
    wn_test_stage_close(&h);
    CHECK(got.len == ref.len && !memcmp(got.p, ref.p, ref.len));
    wn_buf_free(&ref);
    wn_buf_free(&got);
    wn_buf_free(&rep);
}

TEST(minhash_stage_checkpoint_restore)
{
    corpus c;
    make_corpus(&c, 500);
    resume_identity(wn_failed_, &c, "memory: 64MiB, verify: false", 250);
    resume_identity(wn_failed_, &c, "memory: 24KiB, verify: false", 300); /* runs before and after it */
    resume_identity(wn_failed_, &c, "memory: 24KiB", 111);
    resume_identity(wn_failed_, &c, "", 0);
    corpus_free(&c);
}

TEST(minhash_stage_params)
{
    wn_test_stage h = {0};
    CHECK(wn_test_stage_open(&h, "minhash_dedup", "bands: 100, rows: 100", 1) == WN_ERR_MANIFEST);
    CHECK(strstr(h.st.err.msg, "4096") != NULL);
    wn_test_stage_close(&h);
    /* an empty stream and documents without words */
    corpus c = {0};
    wn_doc *d = wn_batch_push(&c.b);
    wn_buf_puts(&d->id, "e1");
    wn_buf_puts(&d->text, "!!!");
    d = wn_batch_push(&c.b);
    wn_buf_puts(&d->id, "e2");
    wn_buf_puts(&d->text, "");
    wn_buf out = {0}, rep = {0};
    CHECK(run(&c, "", 1, &out, &rep));
    CHECK(out.p && !strcmp(out.p, "e1 -  !!!\ne2 -  \n"));
    CHECK(rnum(&rep, "documents_without_shingles", NULL) == 2);
    c.b.n = 0;
    CHECK(run(&c, "", 1, &out, &rep));
    CHECK(out.len == 0);
    wn_buf_free(&out);
    wn_buf_free(&rep);
    wn_batch_free(&c.b);
}
