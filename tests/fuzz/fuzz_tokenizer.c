/*
 * fuzz_tokenizer.c - two properties of the tokenizer on arbitrary bytes.
 * First byte even: the rest is text; decode(encode(x)) == x with a small
 * tokenizer (GPT-2 or cl100k pattern by the second byte, specials allowed by
 * the third). First byte odd: the rest is a tokenizer.json to load; it must
 * load or fail with a message, and a loaded one must round-trip "hello".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "tokenizer.h"

#define REQUIRE(c) do { if (!(c)) { fprintf(stderr, "fuzz_tokenizer: %s failed\n", #c); abort(); } } while (0)

static wn_tokenizer *tiny[2];

static wn_tokenizer *make_tiny(wn_pretok p)
{
    uint32_t id_of[256];
    for (int i = 0; i < 256; i++) id_of[wn_bpe_byte_of_rank(i)] = (uint32_t)i;
    const uint32_t pairs[][2] = {{id_of['e'], id_of[' ']}, {id_of[' '], id_of['t']}, {257, id_of['h']},
                                 {id_of['a'], id_of['a']}, {259, 259}, {id_of[0xc3], id_of[0xa9]}};
    const char *specials[] = {"<|endoftext|>", "<s>"};
    wn_tokenizer *t = NULL;
    wn_errbuf err;
    REQUIRE(wn_tokenizer_build(&t, p, NULL, pairs, 6, specials, 2, &err) == WN_OK);
    return t;
}

static void round_trip(wn_tokenizer *t, const uint8_t *s, size_t n, int special)
{
    wn_tok_ctx *c = wn_tok_ctx_new(t);
    wn_ids ids = {0};
    wn_buf back = {0};
    REQUIRE(wn_tokenizer_encode(c, (const char *)s, n, special, &ids) == WN_OK);
    REQUIRE(wn_tokenizer_decode(t, ids.p, ids.n, &back) == WN_OK);
    REQUIRE(back.len == n && (!n || !memcmp(back.p, s, n)));
    wn_ids_free(&ids);
    wn_buf_free(&back);
    wn_tok_ctx_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    if (!(data[0] & 1)) {
        int which = data[1] & 1;
        if (!tiny[which]) tiny[which] = make_tiny(which ? WN_PRETOK_CL100K : WN_PRETOK_GPT2);
        round_trip(tiny[which], data + 3, size - 3, data[2] & 1);
        return 0;
    }
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/wn-fuzz-tok-%d.json", (int)getpid());
    }
    wn_write_atomic(path, data + 1, size - 1, NULL);
    wn_tokenizer *t = NULL;
    wn_errbuf err;
    err.msg[0] = 0;
    if (wn_tokenizer_load(&t, path, &err)) {
        REQUIRE(t == NULL && err.msg[0]);
    } else {
        round_trip(t, (const uint8_t *)"hello world", 11, 0);
        wn_tokenizer_free(t);
    }
    remove(path);
    return 0;
}
