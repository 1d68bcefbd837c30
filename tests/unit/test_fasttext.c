/*
 * test_fasttext.c - the fastText loader and predictor (src/fasttext.c) and
 * the fasttext_filter stage.
 *
 * Fixtures: tests/fuzz/corpus/fasttext/{softmax,hs,sub}.bin, trained with
 * the Debian `fasttext` 0.9.2 tool on nine labelled lines (en/fr/de):
 *   fasttext supervised -input tr.txt -output softmax -dim 2 -epoch 20 -bucket 0
 *   ... -output hs -loss hs -bucket 0
 *   ... -output sub -minn 2 -maxn 3 -wordNgrams 2 -bucket 64
 * The expected values are `fasttext predict-prob MODEL q.txt 3` for the
 * texts below (6 printed digits, so the tolerance is 1e-5). Broken models
 * come from the same corpus (see tests/fuzz/fuzz_fasttext.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../stage_harness.h"
#include "../test.h"
#include "fasttext.h"
#include "manifest.h"
#include "stage.h"
#include "fs.h"

#define CORPUS "tests/fuzz/corpus/fasttext/"

static const char *texts[] = {"the cat in the park", "le chien läuft", "unknown words only", "",
                              "der Vogel __label__en </s> the cat"};

typedef struct {
    const char *label[3];
    float p[3];
} ref3;

static const ref3 ref_softmax[] = {
    {{"__label__en", "__label__de", "__label__fr"}, {0.360654f, 0.324703f, 0.314673f}},
    {{"__label__de", "__label__fr", "__label__en"}, {0.346836f, 0.338706f, 0.314488f}},
    {{"__label__de", "__label__en", "__label__fr"}, {0.362658f, 0.330519f, 0.306853f}},
    {{"__label__de", "__label__en", "__label__fr"}, {0.362658f, 0.330519f, 0.306853f}},
    {{"__label__de", "__label__fr", "__label__en"}, {0.344556f, 0.331117f, 0.324357f}},
};
static const ref3 ref_hs[] = {
    {{"__label__fr", "__label__en", "__label__de"}, {0.481913f, 0.264463f, 0.253655f}},
    {{"__label__fr", "__label__de", "__label__en"}, {0.499862f, 0.255359f, 0.244809f}},
    {{"__label__fr", "__label__de", "__label__en"}, {0.456947f, 0.277271f, 0.265812f}},
    {{"__label__fr", "__label__de", "__label__en"}, {0.456947f, 0.277271f, 0.265812f}},
    {{"__label__fr", "__label__de", "__label__en"}, {0.491679f, 0.257235f, 0.251116f}},
};
static const ref3 ref_sub[] = {
    {{"__label__de", "__label__fr", "__label__en"}, {0.33351f, 0.33333f, 0.333189f}},
    {{"__label__de", "__label__fr", "__label__en"}, {0.334378f, 0.33335f, 0.332302f}},
    {{"__label__de", "__label__fr", "__label__en"}, {0.336629f, 0.33334f, 0.330061f}},
    {{"__label__de", "__label__fr", "__label__en"}, {0.335544f, 0.334258f, 0.330228f}},
    {{"__label__de", "__label__fr", "__label__en"}, {0.33574f, 0.333297f, 0.330993f}},
};

static int check_model(const char *file, const ref3 *ref)
{
    wn_ft *m = NULL;
    wn_errbuf err;
    if (wn_ft_load(&m, file, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        return 0;
    }
    int ok = wn_ft_nlabels(m) == 3 && wn_ft_dim(m) == 2;
    wn_ft_scratch sc = {0};
    wn_ft_pred top[3];
    for (int t = 0; t < 5; t++) {
        int n = 0;
        ok &= wn_ft_predict(m, &sc, texts[t], strlen(texts[t]), 5, top, &n) == WN_OK && n == 3;
        for (int i = 0; i < n; i++) {
            if (strcmp(wn_ft_label(m, top[i].label), ref[t].label[i]) || fabsf(top[i].prob - ref[t].p[i]) > 1e-5f) {
                fprintf(stderr, "  %s text %d rank %d: %s %.6g, expected %s %.6g\n", file, t, i,
                        wn_ft_label(m, top[i].label), top[i].prob, ref[t].label[i], ref[t].p[i]);
                ok = 0;
            }
        }
    }
    /* a newline inside the text is a space */
    int n1 = 0, n2 = 0;
    wn_ft_pred a[3], b[3];
    wn_ft_predict(m, &sc, "the cat in the park", 19, 3, a, &n1);
    wn_ft_predict(m, &sc, "the cat\nin the\n\npark\n", 21, 3, b, &n2);
    ok &= n1 == 3 && n2 == 3 && !memcmp(a, b, sizeof a);
    wn_ft_scratch_free(&sc);
    wn_ft_free(m);
    return ok;
}

TEST(fasttext_predict_matches_reference)
{
    CHECK(check_model(CORPUS "softmax.bin", ref_softmax));
    CHECK(check_model(CORPUS "hs.bin", ref_hs));
    CHECK(check_model(CORPUS "sub.bin", ref_sub));
}

static int load_fails(const char *file, const char *want)
{
    wn_ft *m = NULL;
    wn_errbuf err = {{0}};
    wn_err e = wn_ft_load(&m, file, &err);
    if (!e || m) { wn_ft_free(m); return 0; }
    if (!strstr(err.msg, want) || !strstr(err.msg, file)) {
        fprintf(stderr, "  %s: got \"%s\", expected \"%s\"\n", file, err.msg, want);
        return 0;
    }
    return 1;
}

TEST(fasttext_load_errors)
{
    CHECK(load_fails(CORPUS "no-such-file.bin", "cannot open"));
    CHECK(load_fails(CORPUS "empty", "empty file"));
    CHECK(load_fails(CORPUS "bad_magic", "not a fastText model"));
    CHECK(load_fails(CORPUS "version11", "version 11 not supported"));
    CHECK(load_fails(CORPUS "cbow", "not a supervised model"));
    CHECK(load_fails(CORPUS "bad_loss", "unknown loss 9"));
    CHECK(load_fails(CORPUS "trunc_header", "truncated"));
    CHECK(load_fails(CORPUS "trunc_dict", "truncated"));
    CHECK(load_fails(CORPUS "trunc_matrix", "only"));
    CHECK(load_fails(CORPUS "huge_size", "inconsistent dictionary counts"));
    CHECK(load_fails(CORPUS "pruned_bad", ""));
    CHECK(load_fails(CORPUS "quantized", "quantized model (.ftz) not supported"));
    CHECK(load_fails(CORPUS "rows_huge", "input matrix"));
    CHECK(load_fails(CORPUS "sub_bucket_big", "too few"));
}

typedef wn_test_stage harness;

static int open_stage(harness *h, const char *params)
{
    memset(h, 0, sizeof *h);
    return wn_test_stage_open(h, "fasttext_filter", params, 2) == WN_OK;
}

static void close_stage(harness *h) { wn_test_stage_close(h); }

TEST(fasttext_filter_stage)
{
    harness h;
    /* softmax.bin top labels: text 0 en 0.36, 1 de 0.35, 2 de 0.36 */
    CHECK(open_stage(&h, "model: " CORPUS "softmax.bin, keep_labels: \"en, __label__de\", threshold: 0.35"));
    wn_batch b = {0};
    for (int i = 0; i < 3; i++) {
        wn_doc *d = wn_batch_push(&b);
        wn_buf_puts(&d->id, "x");
        wn_buf_puts(&d->text, texts[i]);
    }
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop == NULL && b.docs[2].drop == NULL);
    CHECK(b.docs[1].drop && !strcmp(b.docs[1].drop, "below_threshold"));
    CHECK(strstr(b.docs[0].attrs.p, "\"fasttext_label\":\"__label__en\"") != NULL);
    CHECK(strstr(b.docs[0].attrs.p, "\"fasttext_score\":0.3606") != NULL);
    wn_batch_free(&b);
    close_stage(&h);

    CHECK(open_stage(&h, "model: " CORPUS "hs.bin, keep_labels: en, mode: annotate, k: 2, prefix: lid"));
    wn_batch c = {0};
    wn_doc *d = wn_batch_push(&c);
    wn_buf_puts(&d->text, texts[0]);
    CHECK(h.st.def->process(&h.st, &c) == WN_OK);
    CHECK(d->drop == NULL && strstr(d->attrs.p, "\"lid_labels\":[\"__label__fr\",\"__label__en\"]") != NULL);
    wn_batch_free(&c);
    close_stage(&h);

    CHECK(!open_stage(&h, "model: " CORPUS "hs.bin, keep_labels: xx"));
    CHECK(strstr(h.st.err.msg, "no label \"xx\"") != NULL);
    close_stage(&h);
    CHECK(!open_stage(&h, "model: " CORPUS "quantized"));
    close_stage(&h);
}
