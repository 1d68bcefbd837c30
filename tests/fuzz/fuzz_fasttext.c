/*
 * fuzz_fasttext.c - libFuzzer target for fasttext.c. Parses the input as a
 * fastText .bin model; a parse either fails with a message or yields a model
 * that predicts on a few fixed texts (words, UTF-8, a label token, "</s>",
 * empty) without reading outside its matrices, with probabilities in order.
 *
 * Corpus (tests/fuzz/corpus/fasttext/): tiny models trained with the
 * reference tool on nine labelled lines (`fasttext supervised -dim 2
 * -epoch 20`: softmax.bin and hs.bin with -bucket 0, sub.bin with -minn 2
 * -maxn 3 -wordNgrams 2 -bucket 64), plus broken copies: truncated header,
 * dictionary and matrix, empty, bad magic, version 11, cbow model, unknown
 * loss, huge dictionary size, bad pruned-index size, quantized flag, huge
 * matrix rows, bucket larger than the matrix.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasttext.h"

#define REQUIRE(c)                                                                      \
    do {                                                                                \
        if (!(c)) {                                                                     \
            fprintf(stderr, "fuzz_fasttext: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *texts[] = {"the cat sat", "le chien läuft im Park", "__label__en x </s> y", "", "\n\n",
                                  "a\tb\rc\vd\fe"};
    wn_ft *m = NULL;
    wn_errbuf err;
    err.msg[0] = 0;
    if (wn_ft_parse(&m, data, size, "fuzz.bin", &err)) {
        REQUIRE(err.msg[0] != 0 && m == NULL);
        return 0;
    }
    int nl = wn_ft_nlabels(m);
    REQUIRE(nl >= 1);
    for (int i = 0; i < nl; i++) REQUIRE(wn_ft_label(m, i) != NULL);
    wn_ft_scratch sc = {0};
    wn_ft_pred top[4];
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        int n = -1;
        REQUIRE(wn_ft_predict(m, &sc, texts[t], strlen(texts[t]), 4, top, &n) == WN_OK);
        REQUIRE(n >= 0 && n <= 4 && n <= nl);
        for (int i = 0; i < n; i++) {
            REQUIRE(top[i].label >= 0 && top[i].label < nl);
            if (i) REQUIRE(!(top[i].prob > top[i - 1].prob));
        }
    }
    wn_ft_scratch_free(&sc);
    wn_ft_free(m);
    return 0;
}
