/*
 * cmd_tokenizer.c - `winnow tokenizer encode|decode|train|info`.
 *
 *   encode --tokenizer PATH [--lines] [--special] [FILE]   ids separated by spaces
 *   decode --tokenizer PATH [--lines] [FILE]               the inverse
 *   train  --vocab-size N --out tokenizer.json [--pattern gpt2|cl100k]
 *          [--special TEXT]... [--min-frequency N] [--text-key KEY] FILE...
 *   info   --tokenizer PATH                                 sizes, pattern, hash
 *
 * PATH is an HF tokenizer.json or a directory with GPT-2's encoder.json and
 * vocab.bpe. Input is FILE or stdin. Training reads plain text files (a file
 * is a document) and JSONL files (.jsonl, .json, .ndjson; plain or
 * compressed) through the same readers as `winnow run`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpe_train.h"
#include "cli.h"
#include "manifest.h"
#include "reader.h"
#include "tokenizer.h"

static const char *const usage =
    "usage: winnow tokenizer encode --tokenizer PATH [--lines] [--special] [FILE]\n"
    "       winnow tokenizer decode --tokenizer PATH [--lines] [FILE]\n"
    "       winnow tokenizer train --vocab-size N --out FILE [--pattern gpt2|cl100k]\n"
    "                              [--special TEXT]... [--min-frequency N] [--text-key KEY] FILE...\n"
    "       winnow tokenizer info --tokenizer PATH\n"
    "       winnow tokenizer convert --tokenizer PATH --out FILE\n"
    "\n"
    "PATH: an HF tokenizer.json (byte-level BPE) or a directory holding GPT-2's encoder.json + vocab.bpe.\n"
    "encode prints token ids separated by spaces: one line for the whole input, or one line per input\n"
    "line with --lines (the newline itself is not encoded). --special maps special-token texts such as\n"
    "<|endoftext|> to their ids; by default they are ordinary text. decode is the inverse.\n"
    "train learns a byte-level BPE vocabulary of N tokens (256 bytes + merges + specials) from text or\n"
    "JSONL files (plain or compressed) and writes tokenizer.json, which HF tokenizers loads.\n"
    "convert writes any tokenizer winnow reads (e.g. GPT-2's two files) as tokenizer.json.\n";

static int fail(wn_err e, const wn_errbuf *err)
{
    fprintf(stderr, "winnow tokenizer: %s\n", err->msg[0] ? err->msg : wn_err_name(e));
    return e == WN_ERR_USAGE ? 2 : 1;
}

static int bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "winnow tokenizer: %s%s%s\n%s", what, arg ? " " : "", arg ? arg : "", usage);
    return 2;
}

static wn_err read_input(const char *file, wn_buf *in, wn_errbuf *err)
{
    FILE *f = file ? fopen(file, "rb") : stdin;
    if (!f) return wn_fail(err, WN_ERR_IO, "%s: cannot open", file);
    char chunk[1 << 16];
    size_t n;
    wn_err e = WN_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((e = wn_buf_append(in, chunk, n))) break;
    if (!e && ferror(f)) e = wn_fail(err, WN_ERR_IO, "%s: read error", file ? file : "stdin");
    if (file) fclose(f);
    if (!e && !in->p) e = wn_buf_reserve(in, 0);
    return e;
}

static void print_ids(const wn_ids *ids, wn_buf *out)
{
    if (wn_buf_reserve(out, ids->n * 11 + 1)) return;
    char *o = out->p + out->len;
    for (size_t i = 0; i < ids->n; i++) {
        char digits[10];
        int k = 0;
        uint32_t v = ids->p[i];
        do digits[k++] = (char)('0' + v % 10); while ((v /= 10));
        if (i) *o++ = ' ';
        while (k) *o++ = digits[--k];
    }
    *o++ = '\n';
    out->len = (size_t)(o - out->p);
    out->p[out->len] = 0;
}

static int encode(const char *tok, const char *file, int lines, int special)
{
    wn_errbuf err = {{0}};
    wn_tokenizer *t = NULL;
    wn_tok_ctx *c = NULL;
    wn_buf in = {0}, out = {0};
    wn_ids ids = {0};
    wn_err e = wn_tokenizer_load(&t, tok, &err);
    if (!e && !(c = wn_tok_ctx_new(t))) e = wn_fail(&err, WN_ERR_NOMEM, "out of memory");
    if (!e) e = read_input(file, &in, &err);
    const char *p = in.p, *end = in.p + in.len;
    while (!e && (p < end || (!lines && p == in.p))) {
        const char *nl = lines ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        ids.n = 0;
        if ((e = wn_tokenizer_encode(c, p, n, special, &ids))) break;
        print_ids(&ids, &out);
        if (out.len > (1 << 20)) { fwrite(out.p, 1, out.len, stdout); wn_buf_clear(&out); }
        p += n + (nl != NULL);
        if (!lines) break;
    }
    if (out.len) fwrite(out.p, 1, out.len, stdout);
    wn_ids_free(&ids);
    wn_buf_free(&in);
    wn_buf_free(&out);
    wn_tok_ctx_free(c);
    wn_tokenizer_free(t);
    return e ? fail(e, &err) : 0;
}

static int decode(const char *tok, const char *file, int lines)
{
    wn_errbuf err = {{0}};
    wn_tokenizer *t = NULL;
    wn_buf in = {0}, out = {0};
    wn_ids ids = {0};
    wn_err e = wn_tokenizer_load(&t, tok, &err);
    if (!e) e = read_input(file, &in, &err);
    const char *p = in.p, *end = in.p + in.len;
    size_t line = 1;
    while (!e && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        ids.n = 0;
        for (const char *q = p; q < le && !e;) {
            while (q < le && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
            if (q >= le) break;
            char *stop;
            unsigned long long v = strtoull(q, &stop, 10);
            if (stop == q || v > UINT32_MAX) {
                e = wn_fail(&err, WN_ERR_INPUT, "%s:%zu: not a token id: '%.*s'", file ? file : "stdin", line,
                            (int)(le - q > 20 ? 20 : le - q), q);
                break;
            }
            e = wn_ids_push(&ids, (uint32_t)v);
            q = stop;
        }
        if (!e && (e = wn_tokenizer_decode(t, ids.p, ids.n, &out)))
            wn_fail(&err, e, "%s:%zu: an id is not in the vocabulary (%d tokens)", file ? file : "stdin", line,
                    wn_tokenizer_vocab_size(t));
        if (!e && lines) wn_buf_putc(&out, '\n');
        p = le + 1;
        line++;
    }
    if (!e && out.len) fwrite(out.p, 1, out.len, stdout);
    wn_ids_free(&ids);
    wn_buf_free(&in);
    wn_buf_free(&out);
    wn_tokenizer_free(t);
    return e ? fail(e, &err) : 0;
}

static int convert(const char *tok, const char *out)
{
    wn_errbuf err = {{0}};
    wn_tokenizer *t = NULL;
    wn_err e = wn_tokenizer_load(&t, tok, &err);
    if (!e) e = wn_tokenizer_save(t, out, &err);
    wn_tokenizer_free(t);
    return e ? fail(e, &err) : 0;
}

static int info(const char *tok)
{
    wn_errbuf err = {{0}};
    wn_tokenizer *t = NULL;
    wn_err e = wn_tokenizer_load(&t, tok, &err);
    if (e) return fail(e, &err);
    printf("tokenizer %s\n  vocabulary: %d tokens\n  pre-tokenization: %s\n  hash: %016llx\n", tok,
           wn_tokenizer_vocab_size(t), wn_pretok_name(wn_tokenizer_pretok(t)),
           (unsigned long long)wn_tokenizer_hash(t));
    int64_t eot = wn_tokenizer_special(t, "<|endoftext|>");
    if (eot >= 0) printf("  <|endoftext|>: %lld\n", (long long)eot);
    wn_tokenizer_free(t);
    return 0;
}

/* Feeds every document of FILE to the trainer through the run's readers. */
static wn_err train_file(wn_bpe_trainer *tr, const char *path, const char *text_key, uint64_t *docs,
                         uint64_t *bytes, wn_errbuf *err)
{
    wn_input_spec spec = {0};
    spec.text_key = (char *)text_key;
    spec.id_key = (char *)"id";
    spec.utf8_pass = 1;
    wn_input_file f = {0};
    f.path = (char *)path;
    const char *dot = strstr(path, ".json");
    f.format = dot || strstr(path, ".ndjson") ? WN_FMT_JSONL : WN_FMT_TEXT;
    wn_reader *r;
    wn_err e = wn_reader_open(&r, &f, &spec, 0, err);
    if (e) return e;
    wn_doc d = {0};
    for (;;) {
        int got;
        const char *reason;
        e = wn_reader_next(r, &d, &got, &reason, err);
        if (e || !got) break;
        if ((e = wn_bpe_trainer_feed(tr, d.text.p ? d.text.p : "", d.text.len))) break;
        (*docs)++;
        *bytes += d.text.len;
    }
    wn_buf_free(&d.id);
    wn_buf_free(&d.text);
    wn_buf_free(&d.raw);
    wn_buf_free(&d.attrs);
    wn_reader_close(r);
    return e;
}

static int train(int argc, char **argv)
{
    wn_bpe_train_opts o = {0};
    o.pretok = WN_PRETOK_GPT2;
    o.min_frequency = 2;
    const char *out = NULL, *text_key = "text";
    const char **specials = calloc((size_t)argc + 1, sizeof *specials);
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    int n_files = 0, rc = 2;
    if (!specials || !files) goto done;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 < argc && !strcmp(a, "--vocab-size")) o.vocab_size = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(a, "--out")) out = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--special")) specials[o.n_specials++] = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--min-frequency")) o.min_frequency = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(a, "--text-key")) text_key = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--pattern")) {
            if (wn_pretok_from_name(argv[++i], &o.pretok)) { rc = bad_usage("--pattern: expected gpt2 or cl100k, got", argv[i]); goto done; }
        } else if (a[0] == '-') { rc = bad_usage("unknown option or missing value:", a); goto done; }
        else files[n_files++] = a;
    }
    o.specials = specials;
    if (o.vocab_size < 256 + o.n_specials) { rc = bad_usage("--vocab-size must be at least 256 + specials", NULL); goto done; }
    if (!out || !n_files) { rc = bad_usage("--out and at least one FILE are required", NULL); goto done; }
    wn_errbuf err = {{0}};
    wn_bpe_trainer *tr = NULL;
    wn_tokenizer *t = NULL;
    uint64_t docs = 0, bytes = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wn_err e = wn_bpe_trainer_new(&tr, &o, &err);
    for (int i = 0; !e && i < n_files; i++) e = train_file(tr, files[i], text_key, &docs, &bytes, &err);
    if (!e) e = wn_bpe_trainer_finish(tr, &t, &err);
    if (!e) e = wn_tokenizer_save(t, out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!e)
        fprintf(stderr, "winnow tokenizer: %s: %d tokens from %llu documents (%.1f MB, %llu distinct pieces) in %.2f s\n",
                out, wn_tokenizer_vocab_size(t), (unsigned long long)docs, (double)bytes / 1e6,
                (unsigned long long)wn_bpe_trainer_words(tr),
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    wn_bpe_trainer_free(tr);
    wn_tokenizer_free(t);
    rc = e ? fail(e, &err) : 0;
done:
    free(specials);
    free(files);
    return rc;
}

int wn_cmd_tokenizer(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    const char *cmd = argv[0];
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(usage, stdout); return 0; }
    if (!strcmp(cmd, "train")) return train(argc - 1, argv + 1);
    const char *tok = NULL, *file = NULL, *out = NULL;
    int lines = 0, special = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--tokenizer")) tok = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--lines")) lines = 1;
        else if (!strcmp(argv[i], "--special")) special = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return bad_usage("unknown option or missing value:", argv[i]);
        else if (!file) file = argv[i];
        else return bad_usage("unexpected argument", argv[i]);
    }
    if (!tok) return bad_usage("--tokenizer PATH is required", NULL);
    if (file && !strcmp(file, "-")) file = NULL;
    if (!strcmp(cmd, "encode")) return encode(tok, file, lines, special);
    if (!strcmp(cmd, "decode")) return decode(tok, file, lines);
    if (!strcmp(cmd, "info")) return info(tok);
    if (!strcmp(cmd, "convert")) return out ? convert(tok, out) : bad_usage("convert needs --out FILE", NULL);
    return bad_usage("unknown tokenizer command", cmd);
}
