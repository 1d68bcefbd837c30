/*
 * fuzz_safetensors.c - libFuzzer target for safetensors.c. Parses the input
 * as a safetensors file; a parse either fails with a message or yields
 * entries that lie inside the data section with lengths matching their
 * shapes. When the tensors form a GPT-2 model (heads hint 1), the model is
 * loaded, written back, and the rewrite must parse and load to the same
 * parameters bit for bit and rewrite to the same bytes.
 *
 * Corpus (tests/fuzz/corpus/safetensors/): files written by winnow for a
 * tiny model (V 5, maxT 4, L 1, heads 1, C 2) and HF-style variants built
 * by hand (transformer. prefix, attn.bias buffers, lm_head, BF16, no
 * metadata), plus broken ones: truncated data, header length past the end,
 * wrong dtype, shape/offset mismatch, bad JSON, empty.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

#define REQUIRE(c)                                                                      \
    do {                                                                                \
        if (!(c)) {                                                                     \
            fprintf(stderr, "fuzz_safetensors: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static int buf_sink(void *arg, const void *p, size_t n) { return wn_buf_append(arg, p, n) != WN_OK; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wn_st_file f;
    wn_errbuf err;
    err.msg[0] = 0;
    if (wn_st_parse(&f, data, size, "fuzz.safetensors", &err)) {
        REQUIRE(err.msg[0] != 0);
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        const wn_st_entry *t = &f.t[i];
        REQUIRE(t->begin <= t->end && t->end <= f.data_len);
        REQUIRE(t->dtype_bytes > 0 && (t->end - t->begin) % (uint64_t)t->dtype_bytes == 0);
        REQUIRE(wn_st_find(&f, t->name) == t);
        if (i) REQUIRE(strcmp(f.t[i - 1].name, t->name) < 0);
    }
    wn_buf meta = {0};
    (void)wn_st_meta(&f, "winnow_config", &meta);
    wn_buf_free(&meta);

    wn_gpt *m = NULL;
    if (wn_st_gpt_load(&m, &f, 1, &err)) {
        REQUIRE(err.msg[0] != 0 && m == NULL);
        wn_st_close(&f);
        return 0;
    }
    wn_st_close(&f);

    wn_buf out = {0}, again = {0};
    REQUIRE(wn_st_gpt_write(m, NULL, 0, buf_sink, &out, &err) == WN_OK);
    wn_st_file g;
    REQUIRE(wn_st_parse(&g, (const uint8_t *)out.p, out.len, "rewrite", &err) == WN_OK);
    wn_gpt *m2 = NULL;
    REQUIRE(wn_st_gpt_load(&m2, &g, 1, &err) == WN_OK);
    wn_tensor *a, *b;
    int n = wn_gpt_tensors(m, &a);
    REQUIRE(n == wn_gpt_tensors(m2, &b));
    for (int i = 0; i < n; i++)
        REQUIRE(a[i].size == b[i].size && !memcmp(a[i].data, b[i].data, a[i].size * sizeof(float)));
    REQUIRE(wn_st_gpt_write(m2, NULL, 0, buf_sink, &again, &err) == WN_OK);
    REQUIRE(again.len == out.len && !memcmp(again.p, out.p, out.len));
    wn_st_close(&g);
    wn_gpt_free(m2);
    wn_gpt_free(m);
    wn_buf_free(&out);
    wn_buf_free(&again);
    return 0;
}
