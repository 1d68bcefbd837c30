/*
 * fuzz_synth_template.c - libFuzzer target for the synthesis template
 * language (synth_template.c). Any input either parses or fails with a
 * message that names the file; a set that parses expands every template
 * under a few seeds, for a source document with fields, and each expansion
 * must succeed within the size limit or fail with a reason and a message,
 * and give the same result when repeated with the same seed.
 *
 * Build and run with `make fuzz` (libFuzzer); `make test` replays the corpus
 * in tests/fuzz/corpus/synth_template/.
 */
#include "synth_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                                  \
    do {                                                                                            \
        if (!(c)) {                                                                                 \
            fprintf(stderr, "fuzz_synth_template: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                                \
        }                                                                                           \
    } while (0)

enum { LIMIT = 1 << 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wn_tmpl *t = NULL;
    wn_errbuf err;
    err.msg[0] = 0;
    wn_err e = wn_tmpl_parse(&t, (const char *)data, size, "fuzz.tmpl", WN_TMPL_NO_FILES, &err);
    if (e) {
        REQUIRE(t == NULL && !strncmp(err.msg, "fuzz.tmpl", 9));
        return 0;
    }
    REQUIRE(t != NULL && wn_tmpl_count(t) > 0);
    static const char raw[] = "{\"id\":\"x\",\"title\":\"T\\u00e9\",\"n\":7,\"z\":null}";
    wn_tmpl_doc doc = {{"x", 1}, {"One. Two three! four", 20}, {raw, sizeof raw - 1}};
    wn_tmpl_ctx *c = wn_tmpl_ctx_new(t);
    REQUIRE(c != NULL);
    wn_tmpl_ctx_limit(c, LIMIT);
    wn_buf a = {0}, b = {0};
    for (int which = -1; which < wn_tmpl_count(t) && which < 4; which++)
        for (uint64_t seed = 0; seed < 3; seed++) {
            const char *why1, *why2;
            int p1, p2;
            uint64_t r1 = seed, r2 = seed;
            wn_buf_clear(&a);
            wn_buf_clear(&b);
            wn_err e1 = wn_tmpl_expand(t, c, which, &doc, &r1, &a, &p1, &why1, &err);
            REQUIRE(e1 == WN_OK || e1 == WN_ERR_INPUT);
            REQUIRE(e1 ? why1 != NULL && a.len == 0 && !strncmp(err.msg, "fuzz.tmpl:", 10) : a.len <= LIMIT);
            wn_err e2 = wn_tmpl_expand(t, c, which, &doc, &r2, &b, &p2, &why2, &err);
            REQUIRE(e1 == e2 && p1 == p2 && r1 == r2 && a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len)));
            REQUIRE(p1 >= 0 && p1 < wn_tmpl_count(t) && (which < 0 || p1 == which));
        }
    wn_buf_free(&a);
    wn_buf_free(&b);
    wn_tmpl_ctx_free(c);
    wn_tmpl_free(t);
    return 0;
}
