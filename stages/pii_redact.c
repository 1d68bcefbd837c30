/*
 * pii_redact.c - replaces personal data and secrets in the text with tags:
 * e-mail addresses, IPv4/IPv6 addresses, phone numbers, payment-card
 * numbers, IBANs and common API-key formats.
 *
 * Each kind is one PCRE2 pattern (JIT) that finds candidates, plus a C check
 * that accepts or rejects each candidate (Luhn, mod-97, address ranges,
 * digit counts). Kinds run one after another over the text as the earlier
 * kinds left it, in the order secret, email, iban, card, ipv6, ipv4, phone:
 * a tag such as <EMAIL> has no digits, so later kinds never match inside it,
 * and an IBAN or card is gone before the phone pattern could take part of it.
 * What each kind matches is listed in the stage doc below (and README).
 *
 * Counters live in per-thread scratch and are summed by report, so they do
 * not depend on the thread count.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <omp.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "../src/stage.h"
#include "../src/mpi.h"

enum { K_SECRET, K_EMAIL, K_IBAN, K_CARD, K_IPV6, K_IPV4, K_PHONE, K__COUNT };

static const char *const kind_name[K__COUNT] = {"secret", "email", "iban", "card", "ipv6", "ipv4", "phone"};

/* Candidates. [0-9] rather than \d: UCP makes \d match every script's digits. */
static const char *const kind_pattern[K__COUNT] = {
    /* secret: AWS access key ids, GitHub tokens, Slack tokens, Google API keys,
     * Stripe live keys, PEM private keys (the whole block when its END line
     * follows within 20000 bytes, else the header) */
    "\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\b"
    "|\\bgh[pousr]_[A-Za-z0-9]{36,255}\\b"
    "|\\bgithub_pat_[A-Za-z0-9_]{22,255}"
    "|\\bxox[abposr]-[A-Za-z0-9-]{10,250}"
    "|\\bAIza[0-9A-Za-z_-]{35}"
    "|\\b[rs]k_live_[0-9A-Za-z]{20,247}"
    "|-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY-----(?:[\\s\\S]{0,20000}?-----END[ A-Z0-9]{0,40}PRIVATE KEY-----)?",
    /* email: local@domain.tld, ASCII */
    "(?<![\\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,24}(?![\\w-])",
    /* iban: country, check digits, then up to 30 letters/digits with single
     * spaces allowed; the C check cuts it to the country's length */
    "(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}",
    /* card: 13-19 digits starting 2-6, single spaces or dashes between */
    "(?<![0-9])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])",
    /* ipv6: hex groups and colons (validated by inet_pton), optional dotted tail */
    "(?<![\\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}"
    "(?:(?<=:)[0-9]{1,3}(?:\\.[0-9]{1,3}){3})?(?![\\w:]|\\.[0-9])",
    /* ipv4: dotted quad, each octet 0-255 without leading zeros */
    "(?<![0-9.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}"
    "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![0-9]|\\.[0-9])",
    /* phone: international +CC then groups (8-15 digits in all, checked in C),
     * or North American (1-)(NXX) NXX-XXXX / NXX-NXX-XXXX, or local NXX-XXXX */
    "(?<![\\w+])\\+[1-9][0-9]{0,2}(?:[ .-]?(?:\\([0-9]{1,4}\\)|[0-9]{1,5})){1,6}(?!\\w)"
    "|(?<![\\w+.-])(?:(?:1[ .-]?)?(?:\\([2-9][0-9]{2}\\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-]|[2-9][0-9]{2}[.-])"
    "[0-9]{4}(?!\\w|[.-][0-9])",
};

static const wn_param_def params[] = {
    {"mode", WN_P_ENUM, "redact", 0, 0, "redact|annotate",
     "redact: replace with tags; annotate: keep the text, add the attribute pii with counts per kind"},
    {"email", WN_P_BOOL, "true", 0, 0, NULL, "e-mail addresses"},
    {"ip", WN_P_BOOL, "true", 0, 0, NULL, "IPv4 and IPv6 addresses"},
    {"phone", WN_P_BOOL, "true", 0, 0, NULL, "phone numbers"},
    {"card", WN_P_BOOL, "true", 0, 0, NULL, "payment-card numbers (Luhn-checked)"},
    {"iban", WN_P_BOOL, "true", 0, 0, NULL, "IBANs (length per country, mod-97 checked)"},
    {"secret", WN_P_BOOL, "true", 0, 0, NULL, "API keys, tokens and private-key blocks"},
    {"redact_private", WN_P_BOOL, "false", 0, 0, NULL,
     "also redact private, loopback, link-local, documentation and other reserved addresses"},
    {"email_tag", WN_P_STRING, "<EMAIL>", 0, 0, NULL, "replacement for e-mail addresses"},
    {"ip_tag", WN_P_STRING, "<IP>", 0, 0, NULL, "replacement for IP addresses"},
    {"phone_tag", WN_P_STRING, "<PHONE>", 0, 0, NULL, "replacement for phone numbers"},
    {"card_tag", WN_P_STRING, "<CARD>", 0, 0, NULL, "replacement for card numbers"},
    {"iban_tag", WN_P_STRING, "<IBAN>", 0, 0, NULL, "replacement for IBANs"},
    {"secret_tag", WN_P_STRING, "<SECRET>", 0, 0, NULL, "replacement for secrets"},
};

typedef struct {
    pcre2_match_data *md;
    wn_buf buf[2];
    uint64_t found[K__COUNT];
    uint64_t kept_reserved, docs, limit_hits;
    char pad[64];
} scratch;

typedef struct {
    pcre2_code *re[K__COUNT]; /* NULL = kind off */
    const char *tag[K__COUNT];
    size_t tag_len[K__COUNT];
    pcre2_match_context *mctx;
    int annotate, redact_private;
    scratch *tls;
    int n_tls;
} pii_redact;

/* ---- checks ----------------------------------------------------------------- */

/* Luhn over the digits of s[0..n) (separators skipped). */
static int luhn_ok(const char *s, size_t n)
{
    int sum = 0, dbl = 0, digits = 0;
    for (size_t i = n; i-- > 0;) {
        if (s[i] < '0' || s[i] > '9') continue;
        int v = s[i] - '0';
        if (dbl && (v *= 2) > 9) v -= 9;
        sum += v;
        dbl = !dbl;
        digits++;
    }
    return digits >= 13 && digits <= 19 && sum % 10 == 0;
}

/* IBAN lengths per country (ISO 13616 registry). */
static const char iban_len[] = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27DK18DO28"
                               "EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27"
                               "JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18"
                               "NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28"
                               "TL23TN24TR26UA29VA22VG24XK20";

static int iban_country_len(const char *cc)
{
    for (const char *p = iban_len; *p; p += 4)
        if (p[0] == cc[0] && p[1] == cc[1]) return (p[2] - '0') * 10 + (p[3] - '0');
    return 0;
}

/* The IBAN starting at s (spaces allowed between characters): takes exactly
 * the country's length, which must end at a word boundary, and checks
 * mod 97 == 1. Returns the matched byte length, or 0. */
static size_t iban_check(const char *s, size_t n, const char *end_of_text)
{
    int want = iban_country_len(s);
    if (!want) return 0;
    char c[34];
    int k = 0;
    size_t i = 0;
    for (; i < n && k < want; i++)
        if (s[i] != ' ') c[k++] = s[i];
    if (k < want) return 0;
    const char *after = s + i;
    if (after < end_of_text && ((*after >= '0' && *after <= '9') || (*after >= 'A' && *after <= 'Z') ||
                                (*after >= 'a' && *after <= 'z')))
        return 0;
    unsigned rem = 0;
    for (int j = 0; j < want; j++) {
        char ch = c[(j + 4) % want];
        if (ch >= '0' && ch <= '9') rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    return rem == 1 ? i : 0;
}

/* Private, loopback, link-local, shared, documentation, benchmarking,
 * multicast and reserved IPv4 ranges (RFC 6890 and friends). */
static int ipv4_reserved(const unsigned char a[4])
{
    return a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224 || (a[0] == 100 && (a[1] & 0xc0) == 64) ||
           (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
           (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) || (a[0] == 192 && a[1] == 88 && a[2] == 99) ||
           (a[0] == 192 && a[1] == 168) || (a[0] == 198 && (a[1] & 0xfe) == 18) ||
           (a[0] == 198 && a[1] == 51 && a[2] == 100) || (a[0] == 203 && a[1] == 0 && a[2] == 113);
}

/* Public = global unicast 2000::/3, less 2001::/23 (IETF protocols, Teredo),
 * 2001:db8::/32 and 3fff::/20 (documentation), 2002::/16 (6to4). */
static int ipv6_reserved(const unsigned char a[16])
{
    if ((a[0] & 0xe0) != 0x20) return 1;
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] < 0x02) return 1;
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return 1;
    if (a[0] == 0x20 && a[1] == 0x02) return 1;
    if (a[0] == 0x3f && a[1] == 0xff && (a[2] & 0xf0) == 0) return 1;
    return 0;
}

/* Accepts or rejects the candidate s[0..*n); may shorten *n. Returns 1 to
 * redact, 0 to leave, -1 to leave and count as a kept reserved address. */
static int check_candidate(const pii_redact *s, int kind, const char *p, size_t *n, const char *end_of_text)
{
    switch (kind) {
    case K_IBAN: return (*n = iban_check(p, *n, end_of_text)) != 0;
    case K_CARD: return luhn_ok(p, *n);
    case K_IPV4: {
        unsigned char a[4] = {0};
        int k = 0;
        for (size_t i = 0; i < *n; i++) {
            if (p[i] == '.') k++;
            else a[k] = (unsigned char)(a[k] * 10 + (p[i] - '0')); /* octets are <= 255 by the pattern */
        }
        return s->redact_private || !ipv4_reserved(a) ? 1 : -1;
    }
    case K_IPV6: {
        char z[48];
        unsigned char a[16];
        if (*n >= sizeof z) return 0;
        memcpy(z, p, *n);
        z[*n] = 0;
        if (inet_pton(AF_INET6, z, a) != 1) return 0;
        return s->redact_private || !ipv6_reserved(a) ? 1 : -1;
    }
    case K_PHONE: {
        if (p[0] != '+') return 1;
        int digits = 0;
        for (size_t i = 0; i < *n; i++) digits += p[i] >= '0' && p[i] <= '9';
        return digits >= 8 && digits <= 15;
    }
    default: return 1;
    }
}

/* Cheap reasons to skip a kind's scan entirely. */
static int may_contain(int kind, const char *p, size_t n)
{
    switch (kind) {
    case K_EMAIL: return memchr(p, '@', n) != NULL;
    case K_IPV6: return memchr(p, ':', n) != NULL;
    case K_IPV4: return memchr(p, '.', n) != NULL;
    default: return 1;
    }
}

/* ---- stage ------------------------------------------------------------------------ */

static wn_err pii_open(wn_stage *st)
{
    pii_redact *s = st->state;
    static const char *const onoff[K__COUNT] = {"secret", "email", "iban", "card", "ip", "ip", "phone"};
    static const char *const tagp[K__COUNT] = {"secret_tag", "email_tag", "iban_tag", "card_tag",
                                               "ip_tag",     "ip_tag",    "phone_tag"};
    s->annotate = !strcmp(wn_param(st, "mode")->s, "annotate");
    s->redact_private = wn_param(st, "redact_private")->b;
    s->mctx = pcre2_match_context_create(NULL);
    if (!s->mctx) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    pcre2_set_match_limit(s->mctx, 1000000);
    pcre2_set_depth_limit(s->mctx, 10000);
    uint32_t groups = 0;
    for (int k = 0; k < K__COUNT; k++) {
        s->tag[k] = wn_param(st, tagp[k])->s;
        s->tag_len[k] = strlen(s->tag[k]);
        if (!wn_param(st, onoff[k])->b) continue;
        int code;
        PCRE2_SIZE off;
        s->re[k] = pcre2_compile((PCRE2_SPTR)kind_pattern[k], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
        if (!s->re[k]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            return wn_fail(&st->err, WN_ERR_INTERNAL, "%s pattern: %s at offset %zu", kind_name[k],
                           (const char *)msg, (size_t)off);
        }
        pcre2_jit_compile(s->re[k], PCRE2_JIT_COMPLETE);
        uint32_t c = 0;
        pcre2_pattern_info(s->re[k], PCRE2_INFO_CAPTURECOUNT, &c);
        if (c > groups) groups = c;
    }
    s->n_tls = st->threads > 0 ? st->threads : 1;
    s->tls = wn_calloc((size_t)s->n_tls, sizeof *s->tls);
    if (!s->tls) return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    for (int t = 0; t < s->n_tls; t++)
        if (!(s->tls[t].md = pcre2_match_data_create(groups + 1, NULL)))
            return wn_fail(&st->err, WN_ERR_NOMEM, "out of memory");
    return WN_OK;
}

/* One kind over p[0..n): writes the redacted text to out and returns the
 * number of redactions (out is untouched when 0). */
static size_t redact_kind(const pii_redact *s, scratch *t, int kind, const char *p, size_t n, wn_buf *out,
                          wn_err *e)
{
    size_t start = 0, copied = 0, count = 0;
    while (start < n) {
        int rc = pcre2_match(s->re[kind], (PCRE2_SPTR)p, n, start, 0, t->md, s->mctx);
        if (rc < 0) {
            if (rc != PCRE2_ERROR_NOMATCH) t->limit_hits++;
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t ms = ov[0], len = ov[1] - ov[0];
        int ok = check_candidate(s, kind, p + ms, &len, p + n);
        if (ok <= 0) {
            if (ok < 0) t->kept_reserved++;
            start = ms + 1; /* candidates start with an ASCII byte: ms + 1 is a character boundary */
            continue;
        }
        if (!count) wn_buf_clear(out);
        if ((*e = wn_buf_append(out, p + copied, ms - copied)) ||
            (*e = wn_buf_append(out, s->tag[kind], s->tag_len[kind])))
            return 0;
        copied = ms + len;
        start = copied > ms ? copied : ms + 1;
        count++;
    }
    if (count && (*e = wn_buf_append(out, p + copied, n - copied))) return 0;
    return count;
}

static void pii_doc(const pii_redact *s, scratch *t, wn_doc *d, wn_err *e)
{
    const char *p = d->text.p ? d->text.p : "";
    size_t n = d->text.len, found[K__COUNT] = {0}, total = 0;
    int cur = -1; /* which scratch buffer holds the current text; -1 = d->text */
    for (int k = 0; k < K__COUNT; k++) {
        if (!s->re[k] || !may_contain(k, p, n)) continue;
        wn_buf *out = &t->buf[cur == 0 ? 1 : 0];
        found[k] = redact_kind(s, t, k, p, n, out, e);
        if (*e) return;
        if (found[k]) {
            cur = cur == 0 ? 1 : 0;
            p = out->p;
            n = out->len;
            total += found[k];
        }
    }
    if (!total) return;
    t->docs++;
    for (int k = 0; k < K__COUNT; k++) t->found[k] += found[k];
    if (s->annotate) {
        char v[256];
        int m = snprintf(v, sizeof v, "{");
        for (int k = 0; k < K__COUNT; k++)
            if (found[k]) m += snprintf(v + m, sizeof v - (size_t)m, "%s\"%s\":%zu", m > 1 ? "," : "", kind_name[k], found[k]);
        snprintf(v + m, sizeof v - (size_t)m, "}");
        *e = wn_doc_attr(d, "pii", v);
        return;
    }
    wn_buf tmp = d->text;
    d->text = t->buf[cur];
    t->buf[cur] = tmp;
    d->modified = 1;
}

static wn_err pii_process(wn_stage *st, wn_batch *b)
{
    pii_redact *s = st->state;
    wn_err err = WN_OK;
#pragma omp parallel for schedule(dynamic, 16) num_threads(s->n_tls)
    for (size_t i = 0; i < b->n; i++) {
        wn_err e = WN_OK;
        pii_doc(s, &s->tls[omp_get_thread_num()], &b->docs[i], &e);
        if (e) {
#pragma omp atomic write
            err = e;
        }
    }
    if (err) return wn_fail(&st->err, err, "out of memory");
    return WN_OK;
}

static void pii_report(wn_stage *st, wn_jw *w)
{
    pii_redact *s = st->state;
    uint64_t found[K__COUNT] = {0}, kept = 0, docs = 0, lim = 0;
    for (int t = 0; s->tls && t < s->n_tls; t++) {
        for (int k = 0; k < K__COUNT; k++) found[k] += s->tls[t].found[k];
        kept += s->tls[t].kept_reserved;
        docs += s->tls[t].docs;
        lim += s->tls[t].limit_hits;
    }
    uint64_t tot[K__COUNT + 3];
    for (int k = 0; k < K__COUNT; k++) tot[k] = found[k];
    tot[K__COUNT] = kept, tot[K__COUNT + 1] = docs, tot[K__COUNT + 2] = lim;
    wn_mpi_allreduce_sum_u64(tot, K__COUNT + 3); /* every rank calls report: the whole stream's counts */
    for (int k = 0; k < K__COUNT; k++) found[k] = tot[k];
    kept = tot[K__COUNT], docs = tot[K__COUNT + 1], lim = tot[K__COUNT + 2];
    wn_jw_key(w, "pii_docs"); wn_jw_u64(w, docs);
    wn_jw_key(w, "pii");
    wn_jw_obj_begin(w);
    for (int k = 0; k < K__COUNT; k++) {
        wn_jw_key(w, kind_name[k]);
        wn_jw_u64(w, found[k]);
    }
    wn_jw_obj_end(w);
    wn_jw_key(w, "ip_kept_reserved"); wn_jw_u64(w, kept);
    wn_jw_key(w, "limit_hits"); wn_jw_u64(w, lim);
}

static void pii_close(wn_stage *st)
{
    pii_redact *s = st->state;
    for (int k = 0; k < K__COUNT; k++) pcre2_code_free(s->re[k]);
    pcre2_match_context_free(s->mctx);
    for (int t = 0; s->tls && t < s->n_tls; t++) {
        pcre2_match_data_free(s->tls[t].md);
        wn_buf_free(&s->tls[t].buf[0]);
        wn_buf_free(&s->tls[t].buf[1]);
    }
    wn_free(s->tls);
}

const wn_stage_def wn_stage_pii_redact = {
    .name = "pii_redact",
    .summary = "replace e-mails, IPs, phones, card numbers, IBANs and API keys with tags",
    .doc = "PCRE2 finds candidates, C checks them; kinds run in the order secret, email, iban,\n"
           "card, ip, phone, each over the text the earlier ones left. What is matched:\n"
           "  secret: AWS key ids (AKIA/ASIA + 16), GitHub tokens (ghp_/gho_/ghu_/ghs_/ghr_ + 36+,\n"
           "    github_pat_...), Slack tokens (xoxa-/xoxb-/xoxp-/xoxo-/xoxs-/xoxr-), Google API keys\n"
           "    (AIza + 35), Stripe live keys (sk_live_/rk_live_), PEM '-----BEGIN ... PRIVATE\n"
           "    KEY-----' (through its END line when that follows within 20000 bytes).\n"
           "  email: ASCII local@domain.tld (TLD of 2-24 letters).\n"
           "  iban: 2 capital letters + 2 digits + letters/digits, single spaces allowed, exactly\n"
           "    the country's registered length, mod-97 == 1. Unknown countries are left.\n"
           "  card: 13-19 digits starting with 2-6 (the card networks' ranges), single spaces or\n"
           "    dashes between digits, not touching other digits, Luhn-valid.\n"
           "  ip: IPv4 dotted quads (octets 0-255) and IPv6 (inet_pton-valid). Private, loopback,\n"
           "    link-local, CGNAT, documentation (192.0.2/24, 198.51.100/24, 203.0.113/24,\n"
           "    2001:db8::/32), multicast and reserved ranges, and IPv6 outside 2000::/3, are kept\n"
           "    unless redact_private: true (counted in ip_kept_reserved).\n"
           "  phone: '+' country code then 1-6 groups of digits (or (digits)) separated by single\n"
           "    spaces, dots or dashes, 8-15 digits in all; or North American\n"
           "    [1 ](NXX) NXX-XXXX / NXX-NXX-XXXX / NXX.NXX.XXXX (N = 2-9) and local NXX-XXXX or\n"
           "    NXX.XXXX. Bare digit runs without separators are not phones.\n"
           "mode annotate leaves the text and adds the attribute pii = {kind: count}. Report:\n"
           "pii_docs, pii {secret, email, iban, card, ipv6, ipv4, phone}, ip_kept_reserved.",
    .params = params,
    .n_params = WN_ARRAY_LEN(params),
    .state_size = sizeof(pii_redact),
    .open = pii_open,
    .process = pii_process,
    .report = pii_report,
    .close = pii_close,
};
