/*
 * cmd_inspect.c - `winnow inspect FILE`: any artifact winnow writes, in
 * human form.
 *
 *   a token shard (.bin)     header facts, sidecars, and a window of tokens
 *                            (decoded with --tokenizer, or the tokenizer named
 *                            in the shards/index.json beside it)
 *   shards/index.json        the shard list; --verify re-checks every file's
 *                            size, header and xxh3-128 checksum
 *   a tokenizer.json / GPT-2 directory   size, pattern, hash
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "cli.h"
#include "fs.h"
#include "json.h"
#include "shard.h"
#include "tokenizer.h"

static const char *const usage =
    "usage: winnow inspect FILE [--tokenizer PATH] [--offset N] [--count N] [--verify]\n"
    "  FILE: a token shard (.bin), shards/index.json (or the shards directory), a tokenizer.json or a\n"
    "  GPT-2 tokenizer directory. For shards, --offset/--count choose the window of tokens shown\n"
    "  (default the first 64), decoded with --tokenizer or the tokenizer named in index.json.\n"
    "  --verify (index.json / shards directory): re-check every shard's header and checksum.\n";

static int fail(wn_err e, const wn_errbuf *err)
{
    fprintf(stderr, "winnow inspect: %s\n", err->msg[0] ? err->msg : wn_err_name(e));
    return e == WN_ERR_USAGE ? 2 : 1;
}

/* The tokenizer named by index.json in the shard's directory, if any. */
static void tokenizer_from_index(const char *shard, char *out, size_t n)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", shard);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    snprintf(path, sizeof path, "%s/index.json", dir);
    wn_buf j = {0}, s = {0};
    wn_span v;
    size_t off;
    const char *why;
    if (!wn_read_file(path, &j, NULL) && !wn_json_check_object(j.p, j.len, &off, &why) &&
        wn_json_get(j.p, j.len, "tokenizer", &v) && !wn_json_decode_string(v, &s) && s.len)
        snprintf(out, n, "%s", s.p);
    wn_buf_free(&j);
    wn_buf_free(&s);
}

static int inspect_shard(const char *path, const char *tok, uint64_t offset, uint64_t count)
{
    wn_errbuf err = {{0}};
    wn_shard s;
    wn_err e = wn_shard_open(&s, path, &err);
    if (e) return fail(e, &err);
    printf("%s: llm.c token shard, version %d (%s tokens), %llu tokens\n", path, s.version,
           s.token_bytes == 2 ? "uint16" : "uint32", (unsigned long long)s.ntok);
    if (s.docs) printf("  documents sidecar: %llu document starts\n", (unsigned long long)s.ndocs);
    if (s.weights) {
        uint64_t zero = 0;
        double sum = 0;
        for (uint64_t i = 0; i < s.ntok; i++) { zero += s.weights[i] == 0; sum += s.weights[i]; }
        printf("  weights sidecar: mean %.4f, %llu tokens with weight 0 (%.2f%%)\n", s.ntok ? sum / (double)s.ntok : 0.0,
               (unsigned long long)zero, s.ntok ? 100.0 * (double)zero / (double)s.ntok : 0.0);
    }
    if (offset > s.ntok) offset = s.ntok;
    if (count > s.ntok - offset) count = s.ntok - offset;
    printf("  tokens [%llu, %llu):", (unsigned long long)offset, (unsigned long long)(offset + count));
    wn_ids ids = {0};
    for (uint64_t i = offset; i < offset + count; i++) {
        uint32_t t = wn_shard_token(&s, i);
        printf(" %u", t);
        wn_ids_push(&ids, t);
    }
    printf("\n");
    char from_index[4096] = "";
    if (!tok) {
        tokenizer_from_index(path, from_index, sizeof from_index);
        if (from_index[0]) tok = from_index;
    }
    if (tok) {
        wn_tokenizer *t = NULL;
        wn_buf text = {0};
        if ((e = wn_tokenizer_load(&t, tok, &err)) || (e = wn_tokenizer_decode(t, ids.p, ids.n, &text))) {
            fprintf(stderr, "winnow inspect: cannot decode with %s: %s\n", tok, err.msg[0] ? err.msg : "an id is out of range");
        } else {
            printf("  decoded with %s:\n---\n%.*s\n---\n", tok, (int)text.len, text.p ? text.p : "");
        }
        wn_buf_free(&text);
        wn_tokenizer_free(t);
    }
    wn_ids_free(&ids);
    wn_shard_close(&s);
    return e ? 1 : 0;
}

static int inspect_index(const char *path, int verify)
{
    wn_errbuf err = {{0}};
    wn_buf j = {0};
    wn_err e = wn_read_file(path, &j, &err);
    size_t off;
    const char *why;
    if (!e && wn_json_check_object(j.p, j.len, &off, &why))
        e = wn_fail(&err, WN_ERR_INPUT, "%s: not JSON: %s at byte %zu", path, why, off);
    if (e) { wn_buf_free(&j); return fail(e, &err); }
    wn_span v, shards, item;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    printf("%s:\n", path);
    static const char *const keys[] = {"format", "method", "seq_len", "tokenizer", "tokenizer_hash", "vocab_size",
                                       "manifest_hash"};
    for (size_t i = 0; i < WN_ARRAY_LEN(keys); i++)
        if (wn_json_get(j.p, j.len, keys[i], &v)) printf("  %-15s %.*s\n", keys[i], (int)v.n, v.p);
    int bad = 0, n = 0;
    uint64_t total = 0;
    if (wn_json_get(j.p, j.len, "shards", &shards)) {
        wn_json_iter it;
        wn_json_items_init(&it, shards.p, shards.n);
        while (wn_json_items_next(&it, &item)) {
            wn_buf file = {0}, sum = {0};
            int64_t tokens = 0;
            if (wn_json_get(item.p, item.n, "file", &v)) wn_json_decode_string(v, &file);
            if (wn_json_get(item.p, item.n, "tokens", &v)) wn_json_to_i64(v, &tokens);
            if (wn_json_get(item.p, item.n, "xxh3_128", &v)) wn_json_decode_string(v, &sum);
            printf("  %-24s %12lld tokens  xxh3-128 %s", file.p ? file.p : "?", (long long)tokens, sum.p ? sum.p : "?");
            total += (uint64_t)tokens;
            n++;
            if (verify) {
                char shard[8300];
                snprintf(shard, sizeof shard, "%s/%s", dir, file.p ? file.p : "");
                wn_shard s;
                wn_buf data = {0};
                wn_errbuf e2 = {{0}};
                const char *verdict = "ok";
                if (wn_shard_open(&s, shard, &e2)) verdict = e2.msg;
                else {
                    if (s.ntok != (uint64_t)tokens) verdict = "token count differs from the index";
                    wn_shard_close(&s);
                }
                if (!strcmp(verdict, "ok") && !wn_read_file(shard, &data, &e2)) {
                    XXH128_hash_t h = XXH3_128bits(data.p, data.len);
                    char hex[40];
                    snprintf(hex, sizeof hex, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
                    if (!sum.p || strcmp(hex, sum.p)) verdict = "CHECKSUM MISMATCH";
                }
                wn_buf_free(&data);
                printf("  %s", verdict);
                bad += strcmp(verdict, "ok") != 0;
            }
            printf("\n");
            wn_buf_free(&file);
            wn_buf_free(&sum);
        }
    }
    printf("  %d shards, %llu tokens%s\n", n, (unsigned long long)total,
           verify ? (bad ? " - VERIFY FAILED" : " - verified") : "");
    wn_buf_free(&j);
    return bad ? 1 : 0;
}

int wn_cmd_inspect(int argc, char **argv)
{
    const char *file = NULL, *tok = NULL;
    uint64_t offset = 0, count = 64;
    int verify = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(usage, stdout); return 0; }
        if (i + 1 < argc && !strcmp(argv[i], "--tokenizer")) tok = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--offset")) offset = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(argv[i], "--count")) count = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--verify")) verify = 1;
        else if (argv[i][0] == '-') { fprintf(stderr, "winnow inspect: unknown option %s\n%s", argv[i], usage); return 2; }
        else if (!file) file = argv[i];
        else { fprintf(stderr, "winnow inspect: unexpected argument %s\n%s", argv[i], usage); return 2; }
    }
    if (!file) { fputs(usage, stderr); return 2; }
    struct stat sb;
    if (stat(file, &sb)) { fprintf(stderr, "winnow inspect: %s: no such file\n", file); return 1; }
    char path[4200];
    if (S_ISDIR(sb.st_mode)) {
        snprintf(path, sizeof path, "%s/index.json", file);
        if (wn_exists(path)) return inspect_index(path, verify);
        snprintf(path, sizeof path, "%s/encoder.json", file);
        if (!wn_exists(path)) {
            fprintf(stderr, "winnow inspect: %s: a directory without index.json or encoder.json\n", file);
            return 1;
        } /* else a GPT-2 tokenizer directory: below */
    }
    size_t n = strlen(file);
    if (n > 4 && !strcmp(file + n - 4, ".bin")) return inspect_shard(file, tok, offset, count);
    if (n >= 10 && !strcmp(file + n - 10, "index.json")) return inspect_index(file, verify);
    /* a tokenizer */
    wn_errbuf err = {{0}};
    wn_tokenizer *t = NULL;
    wn_err e = wn_tokenizer_load(&t, file, &err);
    if (e) {
        fprintf(stderr, "winnow inspect: %s: not a shard, index.json or tokenizer winnow reads (%s)\n", file, err.msg);
        return 1;
    }
    printf("%s: byte-level BPE tokenizer, %d tokens, pre-tokenization %s, hash %016llx\n", file,
           wn_tokenizer_vocab_size(t), wn_pretok_name(wn_tokenizer_pretok(t)), (unsigned long long)wn_tokenizer_hash(t));
    wn_tokenizer_free(t);
    return 0;
}
