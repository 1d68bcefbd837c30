/*
 * test_generate.c - sampling and batched generation (generate.h): greedy,
 * top-k and top-p restrict the draw to exactly the ids they should, with the
 * expected frequencies; batched generation with right padding equals a
 * one-sequence-at-a-time reference written here (greedy and sampled, prompts
 * of different lengths, a prompt longer than the context), respects
 * max_tokens and the stop token, and is reproducible from the seeds. The
 * key/value cache gives a full forward's logits (bit for bit for the same
 * shapes, to float rounding in pieces), and generation with it equals
 * generation without it.
 */
#include <math.h>
#include <string.h>

#include "../test.h"
#include "generate.h"
#include "model.h"

TEST(gen_pick_greedy_topk_topp)
{
    wn_gen_scratch sc = {0};
    uint64_t rng = 1;
    const float l[5] = {0.5f, 2.0f, 2.0f, -1.0f, 1.0f};
    wn_gen_opts g = {0, 0, 1, 1, -1, 0};
    CHECK_EQ_INT(wn_gen_pick(l, 5, &g, &rng, &sc), 1); /* ties: the lower id */
    wn_gen_opts k1 = {1.0f, 1, 1, 1, -1, 0};
    CHECK_EQ_INT(wn_gen_pick(l, 5, &k1, &rng, &sc), 1);
    /* top-k 2 over {1, 2} (equal logits): about half each, nothing else */
    wn_gen_opts k2 = {1.0f, 2, 1, 1, -1, 0};
    int n[5] = {0};
    for (int i = 0; i < 2000; i++) n[wn_gen_pick(l, 5, &k2, &rng, &sc)]++;
    CHECK(n[0] == 0 && n[3] == 0 && n[4] == 0 && n[1] > 900 && n[2] > 900);
    /* probabilities 0.5, 0.3, 0.2: top_p 0.6 keeps {0, 1} in ratio 5:3; top_p 0.45 keeps {0} */
    const float q[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    wn_gen_opts p6 = {1.0f, 0, 0.6f, 1, -1, 0}, p4 = {1.0f, 0, 0.45f, 1, -1, 0}, all = {1.0f, 0, 1.0f, 1, -1, 0};
    int m[3] = {0}, a[3] = {0};
    for (int i = 0; i < 8000; i++) m[wn_gen_pick(q, 3, &p6, &rng, &sc)]++;
    CHECK(m[2] == 0 && fabs(m[0] / 8000.0 - 0.625) < 0.03);
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(wn_gen_pick(q, 3, &p4, &rng, &sc), 0);
    for (int i = 0; i < 8000; i++) a[wn_gen_pick(q, 3, &all, &rng, &sc)]++;
    CHECK(fabs(a[0] / 8000.0 - 0.5) < 0.03 && fabs(a[2] / 8000.0 - 0.2) < 0.03);
    /* temperature sharpens: at 0.1, id 0 of q nearly always */
    wn_gen_opts cold = {0.1f, 0, 1.0f, 1, -1, 0};
    int c0 = 0;
    for (int i = 0; i < 1000; i++) c0 += wn_gen_pick(q, 3, &cold, &rng, &sc) == 0;
    CHECK(c0 > 990);
    /* the same state gives the same pick */
    uint64_t r1 = 77, r2 = 77;
    CHECK_EQ_INT(wn_gen_pick(q, 3, &all, &r1, &sc), wn_gen_pick(q, 3, &all, &r2, &sc));
    wn_gen_scratch_free(&sc);
}

/* The reference: one sequence at a time, the window re-run every step. */
static void reference(wn_gpt *m, const wn_ids *prompt, const wn_gen_opts *o, uint64_t rng, wn_ids *out)
{
    const wn_gpt_config *c = wn_gpt_cfg(m);
    wn_ids seq = {0};
    wn_gen_scratch sc = {0};
    out->n = 0;
    for (size_t i = 0; i < prompt->n; i++) wn_ids_push(&seq, prompt->p[i]);
    while (out->n < (size_t)o->max_tokens) {
        size_t w = seq.n < (size_t)c->context ? seq.n : (size_t)c->context;
        if (wn_gpt_forward(m, seq.p + seq.n - w, NULL, NULL, 1, (int)w, NULL)) break;
        int64_t id = wn_gen_pick(wn_gpt_logits(m) + (w - 1) * c->vocab, c->vocab, o, &rng, &sc);
        if (id == o->stop_id) break;
        wn_ids_push(&seq, (uint32_t)id);
        wn_ids_push(out, (uint32_t)id);
    }
    wn_ids_free(&seq);
    wn_gen_scratch_free(&sc);
}

TEST(gen_run_batched_equals_reference)
{
    wn_gpt_config cfg = {37, 12, 2, 2, 16};
    wn_gpt *m = NULL;
    CHECK(wn_gpt_new(&m, &cfg, 5, NULL) == WN_OK);
    if (!m) return;
    enum { N = 7 };
    wn_ids prompts[N] = {{0}}, outs[N] = {{0}}, ref = {0};
    static const int lens[N] = {1, 3, 5, 2, 20, 4, 1}; /* 20 > context 12 */
    for (int i = 0; i < N; i++)
        for (int t = 0; t < lens[i]; t++) wn_ids_push(&prompts[i], (uint32_t)((i * 7 + t * 3) % 37));
    const wn_gen_opts opts[3] = {{0, 0, 1, 9, -1, 0}, {1.0f, 0, 1, 9, -1, 0}, {0.8f, 5, 0.9f, 6, -1, 0}};
    for (int k = 0; k < 3; k++)
        for (int batch = 1; batch <= 4; batch += 3) {
            uint64_t rngs[N];
            for (int i = 0; i < N; i++) rngs[i] = 1000 + (uint64_t)i;
            uint64_t ft = 0;
            CHECK(wn_gen_run(m, prompts, N, batch, &opts[k], rngs, outs, &ft) == WN_OK);
            CHECK(ft > 0);
            for (int i = 0; i < N; i++) {
                reference(m, &prompts[i], &opts[k], 1000 + (uint64_t)i, &ref);
                int same = ref.n == outs[i].n && (!ref.n || !memcmp(ref.p, outs[i].p, ref.n * sizeof *ref.p));
                if (!same) fprintf(stderr, "  opts %d batch %d prompt %d: %zu vs %zu tokens\n", k, batch, i, outs[i].n, ref.n);
                CHECK(same);
                CHECK(outs[i].n == (size_t)opts[k].max_tokens); /* no stop token: always max_tokens */
            }
        }
    /* the stop token: greedy's first pick as stop_id gives an empty output for that prompt */
    wn_gen_opts g = {0, 0, 1, 5, -1, 0};
    uint64_t rng = 0;
    reference(m, &prompts[1], &g, 0, &ref);
    g.stop_id = ref.p[0];
    CHECK(wn_gen_run(m, &prompts[1], 1, 2, &g, &rng, outs, NULL) == WN_OK && outs[0].n == 0);
    /* ids outside the vocabulary are the forward's input error */
    wn_ids bad = {0};
    wn_ids_push(&bad, 99);
    CHECK(wn_gen_run(m, &bad, 1, 1, &g, &rng, outs, NULL) == WN_ERR_INPUT);
    wn_ids_free(&bad);
    for (int i = 0; i < N; i++) {
        wn_ids_free(&prompts[i]);
        wn_ids_free(&outs[i]);
    }
    wn_ids_free(&ref);
    wn_gpt_free(m);
}

/* The cache computes what a full forward does: fed a whole sequence in one
 * call (the same matrix shapes) its logits are the forward's bit for bit;
 * fed in pieces (a prompt, then a token or two at a time, two sequences
 * interleaved, up to the context) they agree to float rounding - with
 * OpenBLAS a row's product can change in the last bits with the number of
 * rows in the call (the full forward's own rows do too: T 8 against T 16). */
TEST(gen_kv_cache_logits_equal_full_forward)
{
    wn_gpt_config cfg = {41, 16, 2, 2, 24};
    wn_gpt *m = NULL;
    wn_gpt_kv *kv = NULL;
    CHECK(wn_gpt_new(&m, &cfg, 9, NULL) == WN_OK);
    if (!m) return;
    CHECK(wn_gpt_kv_new(m, 2, &kv) == WN_OK);
    if (!kv) { wn_gpt_free(m); return; }
    enum { T = 16 };
    uint32_t seq[2][T];
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < T; t++) seq[s][t] = (uint32_t)((s * 13 + t * 7 + t * t) % 41);
    float full[2][T][41];
    for (int s = 0; s < 2; s++) {
        CHECK(wn_gpt_forward(m, seq[s], NULL, NULL, 1, T, NULL) == WN_OK);
        memcpy(full[s], wn_gpt_logits(m), sizeof full[s]);
    }
    int slot[T * 2], nw = 0;
    uint32_t tok[T * 2];
    unsigned char want[T * 2];
    memset(slot, 0, sizeof slot);
    memset(want, 1, sizeof want); /* every row's logits, to compare each position */
    CHECK(wn_gpt_kv_forward(m, kv, slot, seq[0], T, want, &nw) == WN_OK && nw == T);
    CHECK(!memcmp(wn_gpt_kv_logits(kv), full[0], sizeof full[0]));
    CHECK_EQ_INT(wn_gpt_kv_len(kv, 0), T);
    /* past the context: refused, nothing fed */
    CHECK(wn_gpt_kv_forward(m, kv, slot, seq[0], 1, want, &nw) == WN_ERR_USAGE);
    CHECK_EQ_INT(wn_gpt_kv_len(kv, 0), T);

    /* pieces: slot 0 starts over with 5 tokens, slot 1 with 3; then rows of both in each call */
    wn_gpt_kv_reset(kv, 0);
    int fed[2] = {0, 0}, checked = 0;
    const int first[2] = {5, 3};
    double maxd = 0;
    for (int step = 0; fed[0] < T || fed[1] < T; step++) {
        int n = 0;
        for (int s = 0; s < 2; s++) {
            int k = step == 0 ? first[s] : (s == 1 && step % 3 == 0 ? 2 : 1);
            for (int j = 0; j < k && fed[s] < T; j++) {
                slot[n] = s;
                tok[n++] = seq[s][fed[s]++];
            }
        }
        CHECK(wn_gpt_kv_forward(m, kv, slot, tok, n, want, &nw) == WN_OK);
        CHECK_EQ_INT(nw, n);
        const float *lg = wn_gpt_kv_logits(kv);
        int at[2] = {fed[0], fed[1]};
        for (int i = n - 1; i >= 0; i--, checked++) { /* row i is position --at[slot] */
            int s = slot[i], t = --at[s];
            for (int v = 0; v < 41; v++) {
                double d = fabs((double)lg[(size_t)i * 41 + v] - full[s][t][v]);
                if (d > maxd) maxd = d;
            }
        }
    }
    CHECK_EQ_INT(checked, 2 * T);
    if (maxd > 1e-5) fprintf(stderr, "  pieces: logits differ by up to %g\n", maxd);
    CHECK(maxd <= 1e-5);
    /* a reset slot starts at position 0 again; an id outside the vocabulary feeds nothing */
    wn_gpt_kv_reset(kv, 0);
    slot[0] = 0, tok[0] = seq[0][0];
    CHECK(wn_gpt_kv_forward(m, kv, slot, tok, 1, want, &nw) == WN_OK && nw == 1);
    CHECK(fabs(wn_gpt_kv_logits(kv)[3] - full[0][0][3]) <= 1e-5);
    tok[0] = 99;
    CHECK(wn_gpt_kv_forward(m, kv, slot, tok, 1, want, &nw) == WN_ERR_INPUT);
    CHECK_EQ_INT(wn_gpt_kv_len(kv, 0), 1);
    wn_gpt_kv_free(kv);
    wn_gpt_free(m);
}

/* Generation with the cache equals generation without it (a forward over the
 * window every step), through the switch to the sliding window past the
 * context, with far fewer tokens through the model. */
TEST(gen_run_kv_cache_equals_no_cache)
{
    wn_gpt_config cfg = {37, 24, 2, 2, 16};
    wn_gpt *m = NULL;
    CHECK(wn_gpt_new(&m, &cfg, 11, NULL) == WN_OK);
    if (!m) return;
    enum { N = 5 };
    wn_ids prompts[N] = {{0}}, a[N] = {{0}}, b[N] = {{0}};
    static const int lens[N] = {2, 9, 1, 30, 6}; /* 30 > context 24; 9 + 20 passes it */
    for (int i = 0; i < N; i++)
        for (int t = 0; t < lens[i]; t++) wn_ids_push(&prompts[i], (uint32_t)((i * 5 + t * 11) % 37));
    wn_gen_opts o = {0.9f, 0, 1, 20, -1, 0}, ref = o;
    ref.no_kv_cache = 1;
    uint64_t ra[N], rb[N], fa = 0, fb = 0;
    for (int i = 0; i < N; i++) ra[i] = rb[i] = 50 + (uint64_t)i;
    CHECK(wn_gen_run(m, prompts, N, 3, &o, ra, a, &fa) == WN_OK);
    CHECK(wn_gen_run(m, prompts, N, 3, &ref, rb, b, &fb) == WN_OK);
    for (int i = 0; i < N; i++) {
        CHECK(a[i].n == 20 && b[i].n == 20 && !memcmp(a[i].p, b[i].p, 20 * sizeof *a[i].p));
        CHECK(ra[i] == rb[i]);
    }
    if (!(fa > 0 && fa * 2 < fb)) fprintf(stderr, "  forward tokens %llu vs %llu\n", (unsigned long long)fa, (unsigned long long)fb);
    CHECK(fa > 0 && fa * 2 < fb);
    for (int i = 0; i < N; i++) {
        wn_ids_free(&prompts[i]);
        wn_ids_free(&a[i]);
        wn_ids_free(&b[i]);
    }
    wn_gpt_free(m);
}
