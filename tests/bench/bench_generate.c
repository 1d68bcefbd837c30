/*
 * bench_generate.c - generation speed of the bundled GPT (generate.h), with
 * the key/value cache and without it (a forward over the window every step),
 * for one model shape: generated tokens per second, tokens run through the
 * model, and whether both ways generated the same tokens (greedy).
 *
 *   bench_generate LAYERS HEADS DIM CONTEXT VOCAB PROMPT NEW BATCH
 *
 * Random weights (seed 1) and prompts; `batch` prompts continued together.
 * Run by tests/bench/bench_generate.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "model.h"

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: bench_generate LAYERS HEADS DIM CONTEXT VOCAB PROMPT NEW BATCH\n");
        return 2;
    }
    wn_gpt_config c = {atoi(argv[5]), atoi(argv[4]), atoi(argv[1]), atoi(argv[2]), atoi(argv[3])};
    int P = atoi(argv[6]), NEW = atoi(argv[7]), B = atoi(argv[8]);
    wn_gpt *m = NULL;
    wn_errbuf err;
    if (wn_gpt_new(&m, &c, 1, &err) != WN_OK) {
        fprintf(stderr, "bench_generate: %s\n", err.msg);
        return 1;
    }
    wn_ids *prompts = calloc((size_t)B, sizeof *prompts), *out[2] = {calloc((size_t)B, sizeof **out),
                                                                      calloc((size_t)B, sizeof **out)};
    uint64_t *rng = calloc((size_t)B, sizeof *rng), x = 42;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++) wn_ids_push(&prompts[b], (uint32_t)(wn_splitmix64(&x) % (uint64_t)c.vocab));
    double sec[2];
    uint64_t ft[2] = {0, 0};
    for (int k = 0; k < 2; k++) { /* 0: cache, 1: window every step */
        wn_gen_opts o = {0, 0, 1, NEW, -1, k};
        double t0 = wn_now();
        if (wn_gen_run(m, prompts, (size_t)B, B, &o, rng, out[k], &ft[k]) != WN_OK) {
            fprintf(stderr, "bench_generate: generation failed\n");
            return 1;
        }
        sec[k] = wn_now() - t0;
    }
    int same = 1;
    for (int b = 0; b < B; b++)
        same &= out[0][b].n == out[1][b].n && !memcmp(out[0][b].p, out[1][b].p, out[0][b].n * sizeof *out[0][b].p);
    double gen = (double)B * NEW;
    printf("L%d H%d C%d T%d V%d, %.1fM params, prompt %d, new %d, batch %d\n", c.layers, c.heads, c.dim, c.context,
           c.vocab, wn_gpt_num_params(m) / 1e6, P, NEW, B);
    printf("  kv cache     %8.2f s  %10.1f tokens/s  %9llu tokens through the model\n", sec[0], gen / sec[0],
           (unsigned long long)ft[0]);
    printf("  no cache     %8.2f s  %10.1f tokens/s  %9llu tokens through the model\n", sec[1], gen / sec[1],
           (unsigned long long)ft[1]);
    printf("  speedup %.1fx, same tokens (greedy): %s\n", sec[1] / sec[0], same ? "yes" : "NO");
    for (int b = 0; b < B; b++) {
        wn_ids_free(&prompts[b]);
        wn_ids_free(&out[0][b]);
        wn_ids_free(&out[1][b]);
    }
    free(prompts);
    free(out[0]);
    free(out[1]);
    free(rng);
    wn_gpt_free(m);
    return same ? 0 : 1;
}
