/*
 * test_text_filters.c - regex_filter, url_filter and pii_redact driven
 * through their descriptors with parameters resolved by the real manifest
 * loader: every mode and rule with a positive and a negative case, the
 * checks behind PII candidates (Luhn, mod-97, address ranges), a
 * catastrophic-backtracking pattern stopped by the match limit, and report
 * counts that do not depend on the thread count.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../stage_harness.h"
#include "../test.h"
#include "fs.h"
#include "manifest.h"
#include "stage.h"

typedef wn_test_stage harness;

/* A fresh directory for list files, before open_stage. */
static int harness_init(harness *h)
{
    memset(h, 0, sizeof *h);
    return wn_test_stage_dir(h);
}

static void write_file(const harness *h, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", h->dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static wn_err open_stage(harness *h, const char *name, const char *params, int threads)
{
    return wn_test_stage_open(h, name, params, threads);
}

static void close_stage(harness *h) { wn_test_stage_close(h); }

static wn_doc *push(wn_batch *b, const char *text)
{
    wn_doc *d = wn_batch_push(b);
    wn_buf_puts(&d->id, "x");
    wn_buf_puts(&d->text, text);
    return d;
}

/* The stage's report keys as one JSON object. */
static void report(harness *h, wn_buf *out)
{
    wn_jw w;
    wn_buf_clear(out);
    wn_jw_init(&w, out, 0);
    wn_jw_obj_begin(&w);
    if (h->st.def->report) h->st.def->report(&h->st, &w);
    wn_jw_obj_end(&w);
}

static int64_t report_num(harness *h, const char *key)
{
    wn_buf r = {0};
    report(h, &r);
    wn_span v;
    int64_t n = -1;
    if (wn_json_get(r.p, r.len, key, &v)) {
        if (v.n && (v.p[0] == 't' || v.p[0] == 'f')) n = v.p[0] == 't'; /* booleans as 1/0 */
        else wn_json_to_i64(v, &n);
    }
    wn_buf_free(&r);
    return n;
}

static const char *text_of(const wn_doc *d) { return d->text.p ? d->text.p : ""; }

/* ---- regex_filter ------------------------------------------------------------ */

TEST(text_filter_regex_drop_keep)
{
    harness h;
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: '\\bcat\\b'", 2) == WN_OK);
    wn_batch b = {0};
    push(&b, "a cat sat");
    push(&b, "concatenate");
    push(&b, "invalid \xff\xfe utf-8 and a cat");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK_EQ_STR(b.docs[0].drop, "regex_match");
    CHECK(b.docs[1].drop == NULL);
    CHECK_EQ_STR(b.docs[2].drop, "regex_match");
    CHECK_EQ_INT(report_num(&h, "matched_docs"), 2);
    close_stage(&h);

    /* keep: the others go; UCP makes \w Unicode-aware */
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: '^\\w+$', action: keep", 1) == WN_OK);
    wn_batch_reset(&b);
    push(&b, "caf\xc3\xa9");
    push(&b, "two words");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop == NULL);
    CHECK_EQ_STR(b.docs[1].drop, "regex_no_match");
    close_stage(&h);

    /* annotate: nothing dropped, the reason goes to the attribute */
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: 'cat', mode: annotate, attr: rx", 1) == WN_OK);
    wn_batch_reset(&b);
    push(&b, "cat");
    push(&b, "dog");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop == NULL && b.docs[1].drop == NULL);
    CHECK_EQ_STR(b.docs[0].attrs.p, "\"rx\":\"regex_match\"");
    CHECK(b.docs[1].attrs.len == 0);
    close_stage(&h);
    wn_batch_free(&b);
}

TEST(text_filter_regex_replace)
{
    harness h;
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: '(\\w+)@example\\.com', action: replace, replacement: '$1 at x'",
                     2) == WN_OK);
    wn_batch b = {0};
    push(&b, "mail ann@example.com or bob@example.com");
    push(&b, "nothing here");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK_EQ_STR(text_of(&b.docs[0]), "mail ann at x or bob at x");
    CHECK(b.docs[0].modified && !b.docs[0].drop);
    CHECK_EQ_STR(text_of(&b.docs[1]), "nothing here");
    CHECK(!b.docs[1].modified);
    CHECK_EQ_INT(report_num(&h, "replacements"), 2);
    CHECK_EQ_INT(report_num(&h, "matched_docs"), 1);
    /* output longer than twice the input: the buffer grows */
    wn_batch_reset(&b);
    close_stage(&h);
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: 'a', action: replace, replacement: 'abcdefgh'", 1) == WN_OK);
    push(&b, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK_EQ_INT(b.docs[0].text.len, 86 * 8);
    CHECK_EQ_INT(report_num(&h, "replacements"), 86);
    close_stage(&h);
    wn_batch_free(&b);
}

TEST(text_filter_regex_patterns_file)
{
    harness h;
    char params[512];
    CHECK(harness_init(&h));
    write_file(&h, "p.txt", "# spam words\n\nviagra\n(?i)casino\r\n\\#hashtag\n");
    snprintf(params, sizeof params, "patterns_file: %s/p.txt", h.dir);
    CHECK(open_stage(&h, "regex_filter", params, 2) == WN_OK);
    CHECK_EQ_INT(report_num(&h, "patterns"), 3);
    wn_batch b = {0};
    push(&b, "cheap VIAGRA");
    push(&b, "Online CASINO");
    push(&b, "a #hashtag");
    push(&b, "clean text");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop == NULL); /* case-sensitive: (?i) applies only to its own pattern */
    CHECK_EQ_STR(b.docs[1].drop, "regex_match");
    CHECK_EQ_STR(b.docs[2].drop, "regex_match");
    CHECK(b.docs[3].drop == NULL);
    close_stage(&h);

    /* patterns from a file and `pattern:` together; inline flags stay in their pattern */
    CHECK(harness_init(&h));
    write_file(&h, "p.txt", "(?i)viagra\n(a)b\nfoo\n");
    snprintf(params, sizeof params, "patterns_file: %s/p.txt, pattern: 'x{3}'", h.dir);
    CHECK(open_stage(&h, "regex_filter", params, 2) == WN_OK);
    CHECK_EQ_INT(report_num(&h, "patterns"), 4);
    wn_batch_reset(&b);
    push(&b, "cheap VIAGRA");
    push(&b, "ab");
    push(&b, "xxx");
    push(&b, "Foo"); /* (?i) does not leak into the next pattern */
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop && b.docs[1].drop && b.docs[2].drop && !b.docs[3].drop);
    close_stage(&h);

    CHECK(harness_init(&h));
    write_file(&h, "p.txt", "(\\w)\\1\nzzz\n");
    snprintf(params, sizeof params, "patterns_file: %s/p.txt", h.dir);
    CHECK(open_stage(&h, "regex_filter", params, 1) == WN_OK);
    wn_batch_reset(&b);
    push(&b, "book");
    push(&b, "zzz");
    push(&b, "abc");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop && b.docs[1].drop && !b.docs[2].drop);
    close_stage(&h);
    wn_batch_free(&b);
}

TEST(text_filter_regex_errors)
{
    harness h;
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: 'a(b'", 1) == WN_ERR_MANIFEST);
    CHECK(strstr(h.st.err.msg, "'a(b'") && strstr(h.st.err.msg, "offset 3"));
    close_stage(&h);

    char params[512];
    CHECK(harness_init(&h));
    write_file(&h, "p.txt", "ok\n[z-a]\n");
    snprintf(params, sizeof params, "patterns_file: %s/p.txt", h.dir);
    CHECK(open_stage(&h, "regex_filter", params, 1) == WN_ERR_MANIFEST);
    CHECK(strstr(h.st.err.msg, "p.txt line 2") != NULL);
    close_stage(&h);

    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "", 1) == WN_ERR_MANIFEST);
    CHECK(strstr(h.st.err.msg, "no pattern") != NULL);
    close_stage(&h);

    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "patterns_file: /nonexistent/p.txt", 1) != WN_OK);
    close_stage(&h);
}

TEST(text_filter_regex_limit)
{
    /* (a+)+$ on "aaa...ab" backtracks exponentially: the match limit stops it */
    char text[64];
    memset(text, 'a', 40);
    strcpy(text + 40, "b");
    harness h;
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: '(a+)+$'", 2) == WN_OK);
    wn_batch b = {0};
    push(&b, text);
    push(&b, "aaaa");
    push(&b, "xyz");
    double t0 = wn_now();
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    double dt = wn_now() - t0;
    CHECK(dt < 5.0);
    CHECK_EQ_STR(b.docs[0].drop, "regex_limit");
    CHECK_EQ_STR(b.docs[1].drop, "regex_match");
    CHECK(b.docs[2].drop == NULL);
    CHECK_EQ_INT(report_num(&h, "limit_hits"), 1);
    close_stage(&h);

    /* the same in replace and annotate modes, with a tighter limit */
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: '(a+)+$', action: replace, replacement: x, match_limit: 10000",
                     1) == WN_OK);
    wn_batch_reset(&b);
    push(&b, text);
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK_EQ_STR(b.docs[0].drop, "regex_limit");
    close_stage(&h);
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "regex_filter", "pattern: '(a+)+$', mode: annotate", 1) == WN_OK);
    wn_batch_reset(&b);
    push(&b, text);
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop == NULL);
    CHECK_EQ_STR(b.docs[0].attrs.p, "\"regex_filter\":\"regex_limit\"");
    CHECK_EQ_INT(report_num(&h, "limit_hits"), 1);
    close_stage(&h);
    wn_batch_free(&b);
}

/* ---- url_filter ---------------------------------------------------------------- */

static wn_doc *push_url(wn_batch *b, const char *key, const char *url)
{
    wn_doc *d = push(b, "text");
    if (url) wn_buf_printf(&d->raw, "{\"id\":\"x\",\"%s\":\"%s\",\"text\":\"text\"}", key, url);
    else wn_buf_puts(&d->raw, "{\"id\":\"x\",\"text\":\"text\"}");
    return d;
}

TEST(text_filter_url)
{
    harness h;
    char params[1024];
    CHECK(harness_init(&h));
    write_file(&h, "d.txt", "# domains\nexample.com\n*.Bad.ORG\n\n");
    write_file(&h, "u.txt", "https://good.net/Some/Page/\n");
    write_file(&h, "w.txt", "porn\n");
    snprintf(params, sizeof params,
             "domains_file: %s/d.txt, urls_file: %s/u.txt, banned_words_file: %s/w.txt, banned_words: 'casino, sex'",
             h.dir, h.dir, h.dir);
    CHECK(open_stage(&h, "url_filter", params, 2) == WN_OK);
    wn_batch b = {0};
    push_url(&b, "url", "https://example.com/a");            /* 0 domain */
    push_url(&b, "url", "http://user@Sub.EXAMPLE.com:8080/"); /* 1 subdomain, userinfo, port */
    push_url(&b, "url", "https://notexample.com/a");         /* 2 kept */
    push_url(&b, "url", "https://x.bad.org./p");             /* 3 domain, trailing dot */
    push_url(&b, "url", "http://GOOD.net/some/page#top");    /* 4 url */
    push_url(&b, "url", "https://good.net/some/page/other"); /* 5 kept */
    push_url(&b, "url", "https://good.net/Casino-Night");    /* 6 word */
    push_url(&b, "url", "https://good.net/essex/sussex");    /* 7 kept: not whole words */
    push_url(&b, "url", "https://good.net/free_porn.html");  /* 8 word */
    push_url(&b, "link", "https://example.com/");           /* 9 no url (other key) */
    push_url(&b, "url", NULL);                              /* 10 no url */
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    const char *want[] = {"blocked_domain", "blocked_domain", NULL, "blocked_domain", "blocked_url", NULL,
                          "banned_word",    NULL,           "banned_word", NULL, NULL};
    for (size_t i = 0; i < WN_ARRAY_LEN(want); i++) {
        if (!want[i]) CHECK(b.docs[i].drop == NULL);
        else CHECK_EQ_STR(b.docs[i].drop, want[i]);
        if ((want[i] != NULL) != (b.docs[i].drop != NULL)) fprintf(stderr, "  doc %zu\n", i);
    }
    CHECK_EQ_INT(report_num(&h, "blocked_domain"), 3);
    CHECK_EQ_INT(report_num(&h, "blocked_url"), 1);
    CHECK_EQ_INT(report_num(&h, "banned_word"), 2);
    CHECK_EQ_INT(report_num(&h, "no_url"), 2);
    CHECK_EQ_INT(report_num(&h, "list_banned_words"), 3);
    close_stage(&h);

    /* url_key, annotate */
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "url_filter", "url_key: link, banned_words: casino, mode: annotate", 1) == WN_OK);
    wn_batch_reset(&b);
    push_url(&b, "link", "https://a.net/casino");
    push_url(&b, "url", "https://a.net/casino");
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK(b.docs[0].drop == NULL && b.docs[1].drop == NULL);
    CHECK_EQ_STR(b.docs[0].attrs.p, "\"url_filter\":\"banned_word\"");
    CHECK(b.docs[1].attrs.len == 0);
    CHECK_EQ_INT(report_num(&h, "no_url"), 1);
    close_stage(&h);

    /* nothing to check is a manifest error */
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "url_filter", "", 1) == WN_ERR_MANIFEST);
    close_stage(&h);
    wn_batch_free(&b);
}

/* ---- pii_redact ------------------------------------------------------------------ */

/* Runs pii_redact with params over one text; returns the result in out. */
static void redact1(int *wn_failed_, const char *params, const char *in, const char *want)
{
    harness h;
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "pii_redact", params, 1) == WN_OK);
    wn_batch b = {0};
    push(&b, in);
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    if (strcmp(text_of(&b.docs[0]), want))
        fprintf(stderr, "  pii_redact {%s}\n    in:   %s\n    got:  %s\n    want: %s\n", params, in,
                text_of(&b.docs[0]), want);
    CHECK_EQ_STR(text_of(&b.docs[0]), want);
    CHECK_EQ_INT(b.docs[0].modified, strcmp(in, want) != 0);
    close_stage(&h);
    wn_batch_free(&b);
}

TEST(text_filter_pii_email)
{
    redact1(wn_failed_, "", "write to ann.lee+news@mail.example.com, or bob@example.org.",
            "write to <EMAIL>, or <EMAIL>.");
    redact1(wn_failed_, "", "not an address: a@b, @home, x@y.z1", "not an address: a@b, @home, x@y.z1");
    redact1(wn_failed_, "email: false", "ann@example.com", "ann@example.com");
    redact1(wn_failed_, "email_tag: '[mail]'", "ann@example.com", "[mail]");
}

TEST(text_filter_pii_ip)
{
    redact1(wn_failed_, "", "server 8.8.8.8 and 1.1.1.1:53", "server <IP> and <IP>:53");
    /* private, loopback, documentation ranges stay by default */
    const char *kept = "lan 192.168.1.10, 10.0.0.1, 127.0.0.1, 172.16.5.4, docs 192.0.2.71, 198.51.100.33, 203.0.113.9";
    redact1(wn_failed_, "", kept, kept);
    redact1(wn_failed_, "redact_private: true", kept,
            "lan <IP>, <IP>, <IP>, <IP>, docs <IP>, <IP>, <IP>");
    redact1(wn_failed_, "", "172.32.0.1 is public, 172.31.0.1 is not", "<IP> is public, 172.31.0.1 is not");
    /* not addresses */
    redact1(wn_failed_, "", "256.1.1.1 and 1.2.3 and 1.2.3.4.5 and 01.2.3.4", "256.1.1.1 and 1.2.3 and 1.2.3.4.5 and 01.2.3.4");
    /* IPv6 */
    redact1(wn_failed_, "", "dns 2606:4700:4700::1111 here", "dns <IP> here");
    redact1(wn_failed_, "", "2001:db8::1, fe80::1, ::1 and fd00::2", "2001:db8::1, fe80::1, ::1 and fd00::2");
    redact1(wn_failed_, "redact_private: true", "2001:db8::1 and ::ffff:192.0.2.1", "<IP> and <IP>");
    redact1(wn_failed_, "", "at 12:30:45, std::vector, a::b", "at 12:30:45, std::vector, a::b");
    redact1(wn_failed_, "ip: false", "8.8.8.8", "8.8.8.8");
}

TEST(text_filter_pii_card_iban)
{
    /* Luhn-valid test numbers vs one digit off */
    redact1(wn_failed_, "", "card 4111 1111 1111 1111 ok", "card <CARD> ok");
    redact1(wn_failed_, "", "card 4111-1111-1111-1112 bad", "card 4111-1111-1111-1112 bad");
    redact1(wn_failed_, "", "5555555555554444 and 378282246310005", "<CARD> and <CARD>");
    redact1(wn_failed_, "", "order 4111111111111111111111", "order 4111111111111111111111"); /* 22 digits */
    redact1(wn_failed_, "card: false", "4111111111111111", "4111111111111111");
    /* IBANs: valid mod-97 vs a changed check digit */
    redact1(wn_failed_, "", "pay GB82 WEST 1234 5698 7654 32 today", "pay <IBAN> today");
    redact1(wn_failed_, "", "pay GB82 WEST 1234 5698 7654 33 today", "pay GB82 WEST 1234 5698 7654 33 today");
    redact1(wn_failed_, "", "IBAN DE89370400440532013000 IBAN", "IBAN <IBAN> IBAN");
    redact1(wn_failed_, "", "DE89 3704 0044 0532 0130 00 BIC", "<IBAN> BIC");
    redact1(wn_failed_, "", "QQ89370400440532013000", "QQ89370400440532013000"); /* no such country */
    redact1(wn_failed_, "iban: false", "DE89370400440532013000", "DE89370400440532013000");
}

TEST(text_filter_pii_phone)
{
    redact1(wn_failed_, "", "call +1-312-555-0163 or +44 20 7946 0958.", "call <PHONE> or <PHONE>.");
    redact1(wn_failed_, "", "call Ana on 555-0156, (312) 555-0163 or 1-800-555-0199", "call Ana on <PHONE>, <PHONE> or <PHONE>");
    redact1(wn_failed_, "", "phone +1 555 0115 and 312.555.0116", "phone <PHONE> and <PHONE>");
    const char *not_phones = "on 2024-01-09, in 1999-2003, v1.2.3, +12 points, 3125550163, 555-01234";
    redact1(wn_failed_, "", not_phones, not_phones);
    redact1(wn_failed_, "phone: false, phone_tag: P", "555-0156", "555-0156");
}

TEST(text_filter_pii_secret)
{
    redact1(wn_failed_, "", "key AKIAIOSFODNN7EXAMPLE end", "key <SECRET> end");
    redact1(wn_failed_, "", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 end", "token <SECRET> end");
    redact1(wn_failed_, "", "slack xoxb-123456789012-abcdefABCDEF end", "slack <SECRET> end");
    redact1(wn_failed_, "", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nafter",
            "<SECRET>\nafter");
    redact1(wn_failed_, "", "-----BEGIN OPENSSH PRIVATE KEY----- cut", "<SECRET> cut");
    const char *not_secrets = "AKIA too short, ghp_short, xox, -----BEGIN PUBLIC KEY-----";
    redact1(wn_failed_, "", not_secrets, not_secrets);
    redact1(wn_failed_, "secret: false", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE");
}

/* A batch with every kind, repeated; reports at 1 and 4 threads agree, and
 * annotate leaves text alone. */
TEST(text_filter_pii_counts)
{
    const char *texts[] = {
        "mail ann@example.com, ip 8.8.8.8, phone +1-312-555-0163",
        "card 4111 1111 1111 1111, iban GB82WEST12345698765432, key AKIAIOSFODNN7EXAMPLE",
        "docs ip 192.0.2.1 kept, ipv6 2606:4700::1",
        "nothing \xff here",
    };
    wn_buf r1 = {0}, r4 = {0};
    for (int pass = 0; pass < 2; pass++) {
        harness h;
        CHECK(harness_init(&h));
        CHECK(open_stage(&h, "pii_redact", "", pass ? 4 : 1) == WN_OK);
        wn_batch b = {0};
        for (int rep = 0; rep < 3; rep++) {
            wn_batch_reset(&b);
            for (int i = 0; i < 200; i++) push(&b, texts[i % 4]);
            CHECK(h.st.def->process(&h.st, &b) == WN_OK);
        }
        report(&h, pass ? &r4 : &r1);
        close_stage(&h);
        wn_batch_free(&b);
    }
    CHECK_EQ_STR(r1.p, r4.p);
    CHECK_EQ_STR(r1.p, "{\"pii_docs\":450,\"pii\":{\"secret\":150,\"email\":150,\"iban\":150,\"card\":150,\"ipv6\":150,"
                       "\"ipv4\":150,\"phone\":150},\"ip_kept_reserved\":150,\"limit_hits\":0}");
    wn_buf_free(&r1);
    wn_buf_free(&r4);

    harness h;
    CHECK(harness_init(&h));
    CHECK(open_stage(&h, "pii_redact", "mode: annotate", 2) == WN_OK);
    wn_batch b = {0};
    push(&b, texts[0]);
    push(&b, texts[3]);
    CHECK(h.st.def->process(&h.st, &b) == WN_OK);
    CHECK_EQ_STR(text_of(&b.docs[0]), texts[0]);
    CHECK(!b.docs[0].modified);
    CHECK_EQ_STR(b.docs[0].attrs.p, "\"pii\":{\"email\":1,\"ipv4\":1,\"phone\":1}");
    CHECK(b.docs[1].attrs.len == 0);
    close_stage(&h);
    wn_batch_free(&b);
}
