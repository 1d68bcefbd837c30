/*
 * test_generate.c - sampling and batched generation (generate.h): greedy,
 * top-k and top-p restrict the draw to exactly the ids they should, with the
 * expected frequencies; batched generation with right padding equals a
 * one-sequence-at-a-time reference written here (greedy and sampled, prompts
 * of different lengths, a prompt longer than the context), respects
 * max_tokens and the stop token, and is reproducible from the seeds.
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
    wn_gen_opts g = {0, 0, 1, 1, -1};
    CHECK_EQ_INT(wn_gen_pick(l, 5, &g, &rng, &sc), 1); /* ties: the lower id */
    wn_gen_opts k1 = {1.0f, 1, 1, 1, -1};
    CHECK_EQ_INT(wn_gen_pick(l, 5, &k1, &rng, &sc), 1);
    /* top-k 2 over {1, 2} (equal logits): about half each, nothing else */
    wn_gen_opts k2 = {1.0f, 2, 1, 1, -1};
    int n[5] = {0};
    for (int i = 0; i < 2000; i++) n[wn_gen_pick(l, 5, &k2, &rng, &sc)]++;
    CHECK(n[0] == 0 && n[3] == 0 && n[4] == 0 && n[1] > 900 && n[2] > 900);
    /* probabilities 0.5, 0.3, 0.2: top_p 0.6 keeps {0, 1} in ratio 5:3; top_p 0.45 keeps {0} */
    const float q[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    wn_gen_opts p6 = {1.0f, 0, 0.6f, 1, -1}, p4 = {1.0f, 0, 0.45f, 1, -1}, all = {1.0f, 0, 1.0f, 1, -1};
    int m[3] = {0}, a[3] = {0};
    for (int i = 0; i < 8000; i++) m[wn_gen_pick(q, 3, &p6, &rng, &sc)]++;
    CHECK(m[2] == 0 && fabs(m[0] / 8000.0 - 0.625) < 0.03);
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(wn_gen_pick(q, 3, &p4, &rng, &sc), 0);
    for (int i = 0; i < 8000; i++) a[wn_gen_pick(q, 3, &all, &rng, &sc)]++;
    CHECK(fabs(a[0] / 8000.0 - 0.5) < 0.03 && fabs(a[2] / 8000.0 - 0.2) < 0.03);
    /* temperature sharpens: at 0.1, id 0 of q nearly always */
    wn_gen_opts cold = {0.1f, 0, 1.0f, 1, -1};
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
    const wn_gen_opts opts[3] = {{0, 0, 1, 9, -1}, {1.0f, 0, 1, 9, -1}, {0.8f, 5, 0.9f, 6, -1}};
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
    wn_gen_opts g = {0, 0, 1, 5, -1};
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
