/*
 * test_synth_template.c - the synthesis template language (synth_template.h):
 * every construct expanded on known inputs (lists inline, as blocks and from
 * files; weighted rules and inline choices, nested; int ranges with constant
 * and variable bounds; calc with each operator; doc fields; bindings, silent
 * and visible; every filter; escapes; template weights and restriction),
 * draws checked against their frequencies, determinism from the seed, and
 * every parse error with its FILE:LINE, every expansion failure with its
 * reason.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "fs.h"
#include "synth_template.h"

/* Parses src (as "t.tmpl"); NULL and the message in err on failure. */
static wn_tmpl *parse(const char *src, wn_errbuf *err)
{
    wn_tmpl *t = NULL;
    err->msg[0] = 0;
    if (wn_tmpl_parse(&t, src, strlen(src), "t.tmpl", WN_TMPL_NO_FILES, err)) return NULL;
    return t;
}

/* Expands template `which` of src with seed, for doc (may be NULL); returns a
 * static copy of the text, or "ERR:<why>" on a failure. */
static const char *expand(const char *src, int which, uint64_t seed, const wn_tmpl_doc *doc)
{
    static char out[4096];
    wn_errbuf err;
    wn_tmpl *t = parse(src, &err);
    if (!t) {
        snprintf(out, sizeof out, "PARSE:%s", err.msg);
        return out;
    }
    wn_tmpl_ctx *c = wn_tmpl_ctx_new(t);
    wn_buf b = {0};
    const char *why;
    int picked;
    if (wn_tmpl_expand(t, c, which, doc, &seed, &b, &picked, &why, &err)) snprintf(out, sizeof out, "ERR:%s", why);
    else snprintf(out, sizeof out, "%s", b.p ? b.p : "");
    wn_buf_free(&b);
    wn_tmpl_ctx_free(c);
    wn_tmpl_free(t);
    return out;
}

/* The parse error of src, or "" when it parses. */
static const char *parse_error(const char *src)
{
    static wn_errbuf err;
    wn_tmpl *t = parse(src, &err);
    if (t) {
        wn_tmpl_free(t);
        return "";
    }
    return err.msg;
}

TEST(tmpl_literal_and_escapes)
{
    CHECK_EQ_STR(expand("template a:\n  hello world\n", 0, 1, NULL), "hello world");
    /* blocks: indentation of the first line removed, deeper kept, blank lines kept inside, trailing dropped */
    CHECK_EQ_STR(expand("template a:\n    line 1\n      indented\n\n    line 3\n\n\n# c\n", 0, 1, NULL),
                 "line 1\n  indented\n\nline 3");
    CHECK_EQ_STR(expand("template a:\n  \\{x\\} a\\|b \\(c\\) \\[d] e\\\\f\\ng C:\\Users\n", 0, 1, NULL),
                 "{x} a|b (c) [d] e\\f\ng C:\\Users");
    CHECK_EQ_STR(expand("# comment\n\ntemplate a:\r\n  crlf\r\n  lines\r\n", 0, 1, NULL), "crlf\nlines");
}

TEST(tmpl_lists_rules_choices)
{
    const char *src = "list color = red | green\n"
                      "list one:\n  only item  \n"
                      "rule r = x{one}y\n"
                      "rule blk:\n  [0] never\n  always {one}\n"
                      "template a:\n  {r} {blk} {([0]no|yes)} {(a{(b|[0]c)}d)}\n";
    CHECK_EQ_STR(expand(src, 0, 7, NULL), "xonly itemy always only item yes abd");
    /* a list item keeps braces literally; \| in inline lists */
    CHECK_EQ_STR(expand("list l = {x} a\\|b\ntemplate t:\n  {l}\n", 0, 1, NULL), "{x} a|b");
    /* balanced parentheses inside a choice alternative are text */
    CHECK_EQ_STR(expand("template t:\n  {(f(x) = 1)}\n", 0, 1, NULL), "f(x) = 1");
    /* inline rule alternatives are trimmed; slots with '|' filters inside stay whole */
    CHECK_EQ_STR(expand("list w = ab\nrule r = [1]  {w|upper} \ntemplate t:\n  <{r}>\n", 0, 3, NULL), "<AB>");
}

TEST(tmpl_weights_are_honoured)
{
    /* 1:3 weights: about 25% / 75% over 4000 draws, and both seen */
    wn_errbuf err;
    wn_tmpl *t = parse("rule r = a | [3] b\ntemplate t:\n  {r}\n", &err);
    CHECK(t != NULL);
    if (!t) return;
    wn_tmpl_ctx *c = wn_tmpl_ctx_new(t);
    int na = 0, nb = 0;
    for (uint64_t s = 0; s < 4000; s++) {
        wn_buf b = {0};
        const char *why;
        uint64_t rng = s * 0x9E3779B97F4A7C15ull;
        CHECK(wn_tmpl_expand(t, c, -1, NULL, &rng, &b, NULL, &why, &err) == WN_OK);
        na += b.len == 1 && b.p[0] == 'a';
        nb += b.len == 1 && b.p[0] == 'b';
        wn_buf_free(&b);
    }
    CHECK_EQ_INT(na + nb, 4000);
    CHECK(na > 850 && na < 1150);
    wn_tmpl_ctx_free(c);
    wn_tmpl_free(t);
}

TEST(tmpl_int_calc_bind)
{
    /* a, b bound visibly; c silently; worked answer by calc */
    const char *src = "template t:\n  {a = int 5..5}+{b = int -3..-3}={calc a + b}{c := int 7..7}[{c}]"
                      "{calc (a - b) * 2 / 3 % 4}{calc -a}{calc 7 / -2}{calc -7 % 3}\n";
    CHECK_EQ_STR(expand(src, 0, 1, NULL), "5+-3=2[7]1-5-3-1");
    /* variable bounds: b in 1..a always <= a */
    const char *dep = "template t:\n  {a := int 1..50}{b := int 1..a}{calc a - b}\n";
    for (uint64_t s = 0; s < 200; s++) {
        const char *r = expand(dep, 0, s, NULL);
        CHECK(r[0] != '-' && strncmp(r, "ERR", 3) && atoi(r) >= 0 && atoi(r) < 50);
    }
    /* range covers both ends, nothing outside */
    int seen[4] = {0};
    for (uint64_t s = 0; s < 400; s++) {
        int v = atoi(expand("template t:\n  {int 0..3}\n", 0, s, NULL));
        CHECK(v >= 0 && v <= 3);
        if (v >= 0 && v <= 3) seen[v] = 1;
    }
    CHECK(seen[0] && seen[1] && seen[2] && seen[3]);
    /* a bound rule result is reused verbatim */
    for (uint64_t seed = 0; seed < 20; seed++) {
        const char *r = expand("list x = p | q | r | s\ntemplate t:\n  {v = x}{v}{v}\n", 0, seed, NULL);
        CHECK(strlen(r) == 3 && r[0] == r[1] && r[1] == r[2]);
    }
    /* a variable bound inside a rule is visible after it */
    CHECK_EQ_STR(expand("rule r = {n := int 4..4}four\ntemplate t:\n  {r}:{n}\n", 0, 1, NULL), "four:4");
    /* int over the full 64-bit span is allowed */
    CHECK(strncmp(expand("template t:\n  {int -1000000000000000000..1000000000000000000}\n", 0, 3, NULL), "ERR", 3));
}

TEST(tmpl_doc_fields_and_filters)
{
    const char *raw = "{\"id\":\"d1\",\"title\":\"caf\\u00e9 \\\"menu\\\"\",\"n\":42,\"none\":null}";
    wn_tmpl_doc d = {{"d1", 2}, {"  First one. Second? third", 26}, {raw, strlen(raw)}};
    CHECK_EQ_STR(expand("template t:\n  {doc.id}|{doc.title}|{doc.n}\n", 0, 1, &d), "d1|caf\xc3\xa9 \"menu\"|42");
    CHECK_EQ_STR(expand("template t:\n  {doc.none}\n", 0, 1, &d), "ERR:missing_field");
    CHECK_EQ_STR(expand("template t:\n  {doc.absent}\n", 0, 1, &d), "ERR:missing_field");
    CHECK_EQ_STR(expand("template t:\n  {doc.title}\n", 0, 1, NULL), "ERR:missing_field");
    CHECK_EQ_STR(expand("template t:\n  {doc.text|sentence}/{doc.text|words 2}/{doc.text|chars 4}/{doc.text|trim|words 0}.\n",
                        0, 1, &d),
                 "First one./First one./  Fi/.");
    CHECK_EQ_STR(expand("template t:\n  {doc.title|upper}/{doc.title|lower|cap}\n", 0, 0, &d),
                 "CAF\xc3\x89 \"MENU\"/Caf\xc3\xa9 \"menu\"");
    CHECK_EQ_STR(expand("template t:\n  {(\xc3\xa9t\xc3\xa9)|cap}\n", 0, 0, NULL), "\xc3\x89t\xc3\xa9");
    CHECK_EQ_STR(expand("template t:\n  {(no end|no end)|sentence}|{( padded \t)|trim}|\n", 0, 1, NULL), "no end|padded|");
    /* filters apply in order, and a binding keeps the filtered value */
    CHECK_EQ_STR(expand("template t:\n  {x := (Hello World)|lower|words 1}{x}{x|upper}\n", 0, 1, NULL), "helloHELLO");
}

TEST(tmpl_templates_weights_restrict)
{
    const char *src = "template a [1]:\n  A\ntemplate b [0]:\n  B\ntemplate c [3]:\n  C\n";
    wn_errbuf err;
    wn_tmpl *t = parse(src, &err);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(wn_tmpl_count(t), 3);
    CHECK_EQ_STR(wn_tmpl_name(t, 2), "c");
    CHECK_EQ_INT(wn_tmpl_find(t, "b"), 1);
    CHECK_EQ_INT(wn_tmpl_find(t, "zz"), -1);
    wn_tmpl_ctx *c = wn_tmpl_ctx_new(t);
    int counts[3] = {0};
    for (uint64_t s = 0; s < 1000; s++) {
        wn_buf b = {0};
        const char *why;
        int picked = -1;
        uint64_t rng = s;
        CHECK(wn_tmpl_expand(t, c, -1, NULL, &rng, &b, &picked, &why, &err) == WN_OK);
        if (picked >= 0 && picked < 3) counts[picked]++;
        CHECK(b.len == 1 && b.p[0] == "ABC"[picked]);
        wn_buf_free(&b);
    }
    CHECK_EQ_INT(counts[1], 0);
    CHECK(counts[0] > 170 && counts[0] < 330);
    /* an explicit index ignores weights */
    wn_buf b = {0};
    const char *why;
    uint64_t rng = 1;
    CHECK(wn_tmpl_expand(t, c, 1, NULL, &rng, &b, NULL, &why, &err) == WN_OK && b.len == 1 && b.p[0] == 'B');
    wn_buf_free(&b);
    CHECK(wn_tmpl_restrict(t, "b", &err) == WN_ERR_MANIFEST); /* only weight-0 templates */
    CHECK(wn_tmpl_restrict(t, "a, x", &err) == WN_ERR_MANIFEST && strstr(err.msg, "'x'"));
    CHECK(wn_tmpl_restrict(t, " a ", &err) == WN_OK);
    for (uint64_t s = 0; s < 50; s++) {
        wn_buf o = {0};
        int picked;
        rng = s;
        CHECK(wn_tmpl_expand(t, c, -1, NULL, &rng, &o, &picked, &why, &err) == WN_OK && picked == 0);
        wn_buf_free(&o);
    }
    wn_tmpl_ctx_free(c);
    wn_tmpl_free(t);
}

TEST(tmpl_deterministic_from_seed)
{
    const char *src = "list n = a | b | c | d | e | f\nrule r = {n}{n} | {n}{r}\n"
                      "template t:\n  {r} {int 0..1000000} {(x|y|z)}\n";
    char first[256];
    snprintf(first, sizeof first, "%s", expand(src, 0, 42, NULL));
    CHECK_EQ_STR(expand(src, 0, 42, NULL), first);
    int differ = 0;
    for (uint64_t s = 0; s < 5; s++) differ += strcmp(expand(src, 0, 100 + s, NULL), first) != 0;
    CHECK(differ >= 4);
}

TEST(tmpl_expansion_failures)
{
    CHECK_EQ_STR(expand("template t:\n  {calc 1 / 0}\n", 0, 1, NULL), "ERR:arithmetic");
    CHECK_EQ_STR(expand("template t:\n  {calc 5 % (2 - 2)}\n", 0, 1, NULL), "ERR:arithmetic");
    CHECK_EQ_STR(expand("template t:\n  {calc 1000000000000000000 * 10}\n", 0, 1, NULL), "ERR:arithmetic");
    CHECK_EQ_STR(expand("template t:\n  {x := (abc)}{calc x + 1}\n", 0, 1, NULL), "ERR:arithmetic");
    CHECK_EQ_STR(expand("template t:\n  {a := int 5..5}{int a..1}\n", 0, 1, NULL), "ERR:arithmetic");
    CHECK_EQ_STR(expand("template t:\n  {x}{x = (1)}\n", 0, 1, NULL), "ERR:unbound");
    CHECK_EQ_STR(expand("template t:\n  {calc y}{y := int 1..2}\n", 0, 1, NULL), "ERR:unbound");
    CHECK_EQ_STR(expand("rule r = a{r}\ntemplate t:\n  {r}\n", 0, 1, NULL), "ERR:too_deep");
    /* exponential growth hits the size limit, not memory */
    CHECK_EQ_STR(expand("rule a = {b}{b}\nrule b = {c}{c}\nrule c = {d}{d}\nrule d = {e}{e}\nrule e = {f}{f}\n"
                        "rule f = {g}{g}\nrule g = {h}{h}\nrule h = {i}{i}\nrule i = {j}{j}\nrule j = {k}{k}\n"
                        "rule k = {l}{l}\nrule l = {m}{m}\nrule m = {o}{o}\nrule o = {q}{q}\nrule q = {s}{s}\n"
                        "rule s = {u}{u}\nrule u = {v}{v}\nrule v = {w}{w}\nrule w = {y}{y}\nrule y = {z}{z}\n"
                        "rule z = xxxxxxxx\ntemplate t:\n  {a}\n",
                        0, 1, NULL),
                 "ERR:too_long");
    /* the message names the file and the slot's line */
    wn_errbuf err;
    wn_tmpl *t = parse("template t:\n  ok\n  {calc 1/0}\n", &err);
    CHECK(t != NULL);
    if (!t) return;
    wn_tmpl_ctx *c = wn_tmpl_ctx_new(t);
    wn_buf b = {0};
    const char *why;
    uint64_t rng = 0;
    CHECK(wn_tmpl_expand(t, c, 0, NULL, &rng, &b, NULL, &why, &err) == WN_ERR_INPUT);
    CHECK(strstr(err.msg, "t.tmpl:3: division by zero") != NULL);
    CHECK_EQ_INT(b.len, 0); /* nothing of a failed expansion is appended */
    /* a small limit */
    wn_tmpl_ctx_limit(c, 2);
    wn_tmpl_free(t);
    wn_tmpl_ctx_free(c);
    t = parse("template t:\n  abc\n", &err);
    c = wn_tmpl_ctx_new(t);
    wn_tmpl_ctx_limit(c, 2);
    CHECK(wn_tmpl_expand(t, c, 0, NULL, &rng, &b, NULL, &why, &err) == WN_ERR_INPUT && !strcmp(why, "too_long"));
    wn_buf_free(&b);
    wn_tmpl_ctx_free(c);
    wn_tmpl_free(t);
}

TEST(tmpl_parse_errors_name_file_and_line)
{
    static const struct {
        const char *src, *msg;
    } cases[] = {
        {"", "t.tmpl: no template"},
        {"list a = x\n", "t.tmpl: no template"},
        {"template t [0]:\n  x\n", "every template has weight 0"},
        {"\n\nfoo bar\n", "t.tmpl:3: expected 'list', 'rule' or 'template'"},
        {"  indented\n", "t.tmpl:1: indented line outside a block"},
        {"template:\n  x\n", "t.tmpl:1: template needs a NAME"},
        {"template t\n  x\n", "t.tmpl:1: expected 'template NAME:'"},
        {"template t:\n", "t.tmpl:1: template 't' has an empty body"},
        {"template t:\n  a\ntemplate t:\n  b\n", "t.tmpl:3: template 't' is already defined on line 1"},
        {"list a = x\nrule a = y\ntemplate t:\n  {a}\n", "t.tmpl:2: 'a' is already defined on line 1"},
        {"list a = x ||\ntemplate t:\n  {a}\n", "t.tmpl:1: empty list item"},
        {"list a:\n\ntemplate t:\n  {a}\n", "t.tmpl:1: 'a' has no items"},
        {"list a < f.txt\ntemplate t:\n  {a}\n", "t.tmpl:1: list files are not allowed here"},
        {"list a ? x\n", "t.tmpl:1: expected 'list NAME = a | b'"},
        {"rule a\n", "t.tmpl:1: expected 'rule NAME = alt | alt'"},
        {"rule int = x\n", "t.tmpl:1: 'int' is a keyword"},
        {"rule r = [0] a | [0] b\ntemplate t:\n  {r}\n", "t.tmpl:1: every alternative of 'r' has weight 0"},
        {"rule r = [x] a\n", "t.tmpl:1: a weight is [N]"},
        {"template t:\n  a\n  {nope}\n", "t.tmpl:3: unknown name 'nope'"},
        {"template t:\n  x\n\n  {a b}\n", "t.tmpl:4: unexpected 'b' in a slot"},
        {"template t:\n  {a\n", "t.tmpl:2: slot '{' not closed"},
        {"template t:\n  a}\n", "t.tmpl:2: unmatched '}'"},
        {"template t:\n  {}\n", "t.tmpl:2: expected a name, int LO..HI"},
        {"template t:\n  {(a|b}\n", "t.tmpl:2: unmatched '}'"},
        {"template t:\n  {(a|b\n", "t.tmpl:2: choice '(' not closed"},
        {"template t:\n  {([0]a|[0]b)}\n", "t.tmpl:2: every alternative of the choice has weight 0"},
        {"template t:\n  {int 5..1}\n", "t.tmpl:2: int 5..1 is empty"},
        {"template t:\n  {int 1 5}\n", "t.tmpl:2: int takes LO..HI"},
        {"template t:\n  {int x..5}\n", "t.tmpl:2: unknown variable 'x'"},
        {"template t:\n  {calc 1 +}\n", "t.tmpl:2: expected a number"},
        {"template t:\n  {calc (1 + 2}\n", "t.tmpl:2: expected ')' in calc"},
        {"template t:\n  {calc 99999999999999999999}\n", "t.tmpl:2: integer too large"},
        {"list l = a\ntemplate t:\n  {calc l + 1}\n", "t.tmpl:3: 'l' is a list; int and calc"},
        {"list l = a\ntemplate t:\n  {l = (x)}{l}\n", "t.tmpl:3: 'l' is a list (line 1) and cannot be bound"},
        {"template t:\n  {calc = 1}\n", "t.tmpl:2: 'calc' is a keyword and cannot be bound"},
        {"template t:\n  {doc}\n", "t.tmpl:2: doc takes a field"},
        {"template t:\n  {doc.}\n", "t.tmpl:2: doc takes a field"},
        {"template t:\n  {doc.x|shout}\n", "t.tmpl:2: unknown filter 'shout'"},
        {"template t:\n  {doc.x|words}\n", "t.tmpl:2: filter words takes a count"},
        {"rule r:\n  ok\n  {bad\ntemplate t:\n  {r}\n", "t.tmpl:3: slot '{' not closed"},
    };
    for (size_t i = 0; i < WN_ARRAY_LEN(cases); i++) {
        const char *m = parse_error(cases[i].src);
        if (!strstr(m, cases[i].msg)) {
            fprintf(stderr, "  case %zu: expected '%s' in '%s'\n", i, cases[i].msg, m);
            CHECK(0);
        }
    }
    /* nesting limits */
    wn_buf deep = {0};
    wn_buf_puts(&deep, "template t:\n  ");
    for (int i = 0; i < 100; i++) wn_buf_puts(&deep, "{(");
    CHECK(strstr(parse_error(deep.p), "nested deeper than") != NULL);
    wn_buf_clear(&deep);
    wn_buf_puts(&deep, "template t:\n  {calc ");
    for (int i = 0; i < 100; i++) wn_buf_puts(&deep, "(");
    CHECK(strstr(parse_error(deep.p), "nested deeper than") != NULL);
    wn_buf_free(&deep);
}

TEST(tmpl_list_files)
{
    char dir[] = "/tmp/wn-tmpl-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], words[256];
    snprintf(words, sizeof words, "%s/words.txt", dir);
    snprintf(path, sizeof path, "%s/t.tmpl", dir);
    wn_errbuf err;
    CHECK(wn_write_atomic(words, "alpha\n\n  beta  \n", 15, &err) == WN_OK);
    const char *src = "list w < words.txt\ntemplate t:\n  [{w}]\n";
    CHECK(wn_write_atomic(path, src, strlen(src), &err) == WN_OK);
    wn_tmpl *t = NULL;
    CHECK(wn_tmpl_load(&t, path, &err) == WN_OK);
    if (t) {
        wn_tmpl_ctx *c = wn_tmpl_ctx_new(t);
        int alpha = 0, beta = 0;
        for (uint64_t s = 0; s < 64; s++) {
            wn_buf b = {0};
            const char *why;
            uint64_t rng = s;
            CHECK(wn_tmpl_expand(t, c, 0, NULL, &rng, &b, NULL, &why, &err) == WN_OK);
            alpha += b.p && !strcmp(b.p, "[alpha]");
            beta += b.p && !strcmp(b.p, "[beta]");
            wn_buf_free(&b);
        }
        CHECK(alpha > 0 && beta > 0 && alpha + beta == 64);
        wn_tmpl_ctx_free(c);
        wn_tmpl_free(t);
    }
    const char *missing = "\nlist w < nope.txt\ntemplate t:\n  [{w}]\n";
    CHECK(wn_write_atomic(path, missing, strlen(missing), &err) == WN_OK);
    CHECK(wn_tmpl_load(&t, path, &err) == WN_ERR_INPUT && strstr(err.msg, "t.tmpl:2: list file:") &&
          strstr(err.msg, "nope.txt"));
    CHECK(wn_tmpl_load(&t, "/nonexistent/x.tmpl", &err) != WN_OK && strstr(err.msg, "/nonexistent/x.tmpl"));
    unlink(words);
    unlink(path);
    rmdir(dir);
}
