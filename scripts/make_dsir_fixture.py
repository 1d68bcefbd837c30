#!/usr/bin/env python3
"""make_dsir_fixture.py - writes tests/fixtures/dsir_ref.json, the reference
that tests/unit/test_dsir.c checks winnow's DSIR featurizer, bucket counts and
log importance weights against (src/dsir.h states the semantics).

This is an independent implementation in plain Python, written the way
p-lambda/dsir does it (data_selection/hashed_ngram_dsir.py, get_ngram_counts
with NLTK's WordPunctTokenizer, whose pattern is r"\\w+|[^\\w\\s]+"):

    words = re.findall(r"\\w+|[^\\w\\s]+", text.lower())
    features = words + [a + " " + b for a, b in zip(words, words[1:])]
    bucket(f) = xxh3_64(f.encode("utf-8")) % m        # p-lambda: sha256

with p = (c_tgt + laplace) / sum, q = (c_raw + laplace) / sum,
r = log(p + 1e-8) - log(q + 1e-8) and log w(x) = sum over features of r.

The hand-written texts avoid the two characters on which str.lower() and
utf8proc's simple lowercase differ (U+0130, a word-final capital sigma); the
script asserts it. For the optional corpus section it lowercases character by
character (= winnow's documented semantics) and records how many documents
str.lower() would have changed differently.

Produced with (Python 3.11, xxhash 4.1.0 from PyPI, no other packages):
    python3 scripts/make_dsir_fixture.py \\
        --corpus ../shared/corpora/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz \\
        > tests/fixtures/dsir_ref.json
"""
import argparse
import gzip
import json
import math
import os
import re
import struct
import sys
import unicodedata

import xxhash

WORDPUNCT = re.compile(r"\w+|[^\w\s]+")

TEXTS = [
    "",
    "   \n\t  ",
    "word",
    ".",
    "The quick brown fox jumps over the lazy dog.",
    "Hello, World!!! ... what?!? (yes) -- no; \"quoted\" 'single' a.b.c x+y=z",
    "Caf\u00e9 CR\u00c8ME br\u00fbl\u00e9e; na\u00efve fa\u00e7ade \u2014 \u00c9COLE \u00d1and\u00fa",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002\u4e2d\u6587\u6587\u672c\uff0c"
    "\u6ca1\u6709\u7a7a\u683c\uff01\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "Version 3.14.15 costs $1,299.99 on 2023-07-01; \u0663\u0664\u0665 and \uff15\uff16\uff17 "
    "(fullwidth), x\u00b2 \u00bd \u216b",
    "snake_case __init__ _private foo_bar_ \u203ftie\u203f x_1 ___",
    "I \u2764\ufe0f pizza \U0001f355\U0001f355 and \U0001f469\u200d\U0001f469\u200d\U0001f467 family \U0001f600!",
    "tabs\there\nnew\r\nline\x0bvt\x0cff\x1cfs\x1dgs\u00a0nbsp\u3000ideo\u2028ls\u2009thin\u0085nel  end",
    "e\u0301te\u0301 (decomposed) \u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e "
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u212a KELVIN \u2126 OHM \u023a\u023e \u1e9e STRASSE \u01c5ungla \u13a0\u13a1 \u0391\u03a3\u0391",
    "--==>> <<== ... !!! ??? \u00abguillemets\u00bb \u201elow\u201c \u2018curly\u2019 \u00bfqu\u00e9? \u00a1s\u00ed!",
    "def f(x): return x**2  # comment\nif (a && b || !c) { y->z[0] = 1; }",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u041c\u0418\u0420! \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 "
    "\u03ba\u03cc\u03c3\u03bc\u03b5. \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 "
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "nul\x00byte and bell\x07 del\x7f",
    "A" * 3000 + " " + "b" * 2000 + "!" * 500 + "\u00c9" * 700 + " tail",
    "same same same same, same same. SAME Same sAmE",
]

# A "target" domain (mathematics prose) and a "raw" pool (mixed web text).
TARGET = [
    "Let f be a continuous function on the closed interval [a, b].",
    "Then f attains its maximum and minimum, by the extreme value theorem.",
    "We prove the lemma by induction on n; the base case n = 1 is trivial.",
    "Suppose x_n converges to x. Then every subsequence of x_n converges to x.",
    "The eigenvalues of a symmetric matrix are real, and its eigenvectors are orthogonal.",
    "Theorem 2. Every finite group of prime order is cyclic.",
]
RAW = [
    "Click here to subscribe to our newsletter and get 20% off your first order!",
    "The weather today is sunny with a high of 25 degrees.",
    "Best pizza in town: call (555) 010-0199 or visit our shop on Main Street.",
    "Let me know what you think in the comments below.",
    "Our team won the match 3-1 after a great second half.",
    "Prove you are not a robot: type the characters you see.",
    "The matrix of options can be confusing; here is a simple guide.",
    "Terms of use | Privacy policy | Contact us",
]

MODELS = [(64, 0.0), (10000, 0.0), (10000, 0.5)]
SPARSE_M = [64, 10000]
CORPUS_M = 10000
CORPUS_LAPLACE = 1.0


def lower_cp(text):
    """Code point by code point lowercase: utf8proc's simple mapping."""
    return "".join("i" if c == "\u0130" else c.lower() for c in text)


def words_of(text, per_cp=False):
    return WORDPUNCT.findall(lower_cp(text) if per_cp else text.lower())


def features(words):
    return words + [a + " " + b for a, b in zip(words, words[1:])]


def bucket(f, m):
    return xxhash.xxh3_64_intdigest(f.encode("utf-8")) % m


def counts_of(words, m):
    c = [0] * m
    for f in features(words):
        c[bucket(f, m)] += 1
    return c


def log_ratios(ct, cr, laplace):
    m = len(ct)
    tp = float(sum(ct)) + laplace * m
    tq = float(sum(cr)) + laplace * m
    return [math.log((a + laplace) / tp + 1e-8) - math.log((b + laplace) / tq + 1e-8) for a, b in zip(ct, cr)]


def logweight(words, r):
    """Feature by feature in text order: unigram k, then bigram (k-1, k)."""
    m, acc = len(r), 0.0
    for k, w in enumerate(words):
        acc += r[bucket(w, m)]
        if k:
            acc += r[bucket(words[k - 1] + " " + w, m)]
    return acc


def check_dot(words, r, lw):
    """The bucket-order dot product p-lambda computes agrees closely."""
    dot = math.fsum(c * x for c, x in zip(counts_of(words, len(r)), r))
    assert abs(dot - lw) <= 1e-9 * (1 + abs(dot)), (dot, lw)


def total_counts(texts, m, per_cp=False):
    c = [0] * m
    for t in texts:
        for j, v in enumerate(counts_of(words_of(t, per_cp), m)):
            c[j] += v
    return c


def corpus_section(path):
    docs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
    ct = total_counts(TARGET, CORPUS_M)
    per_doc = []
    cr = [0] * CORPUS_M
    differs, newer = [], 0
    for i, t in enumerate(docs):
        if t.lower() != lower_cp(t):
            differs.append(i)
        newer += sum(unicodedata.category(ch) == "Cn" for ch in t)
        w = words_of(t, per_cp=True)
        c = counts_of(w, CORPUS_M)
        for j, v in enumerate(c):
            cr[j] += v
        per_doc.append((w, c))
    r = log_ratios(ct, cr, CORPUS_LAPLACE)
    out = []
    for w, c in per_doc:
        lw = logweight(w, r)
        check_dot(w, r, lw)
        out.append([len(w), "%016x" % xxhash.xxh3_64_intdigest(struct.pack("<%dQ" % CORPUS_M, *c)), lw])
    return {
        "file": "corpora/web/" + os.path.basename(path),
        "bytes": os.path.getsize(path),
        "m": CORPUS_M,
        "laplace": CORPUS_LAPLACE,
        "model": "target = the fixture's target texts, raw = this corpus",
        "plambda_lower_differs": differs,
        "chars_unassigned_in_this_python": newer,
        "docs": out,
        "_docs": "[words, xxh3_64 of the m little-endian uint64 counts (hex), log weight] per document",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", help="the dolma CC-MAIN jsonl.gz of ../shared/corpora/web (optional)")
    args = ap.parse_args()

    for t in TEXTS + TARGET + RAW:
        assert t.lower() == lower_cp(t), "text lowercases differently in Python and utf8proc: %r" % t

    texts = []
    for t in TEXTS:
        w = words_of(t)
        entry = {"text": t, "bytes": len(t.encode("utf-8")), "words": len(w)}
        for m in SPARSE_M:
            c = counts_of(w, m)
            entry["counts_%d" % m] = [[j, v] for j, v in enumerate(c) if v]
        entry["tokens"] = w if len(t) < 200 else None
        texts.append(entry)

    models = []
    for m, laplace in MODELS:
        ct, cr = total_counts(TARGET, m), total_counts(RAW, m)
        r = log_ratios(ct, cr, laplace)
        lws = []
        for t in TEXTS + TARGET + RAW:
            w = words_of(t)
            lw = logweight(w, r)
            check_dot(w, r, lw)
            lws.append(lw)
        models.append({"m": m, "laplace": laplace, "target_features": sum(ct), "raw_features": sum(cr),
                       "logweights": lws})

    fixture = {
        "_about": "DSIR reference: scripts/make_dsir_fixture.py (Python %s, xxhash %s, Unicode %s)"
                  % (sys.version.split()[0], xxhash.VERSION, unicodedata.unidata_version),
        "_texts": "counts_M: sparse [bucket, count]; tokens: for reading only (null for long texts)",
        "_models": "fitted on target and raw; logweights of texts, then target, then raw, in order",
        "texts": texts,
        "target": TARGET,
        "raw": RAW,
        "models": models,
    }
    if args.corpus:
        fixture["corpus"] = corpus_section(args.corpus)
    json.dump(fixture, sys.stdout, ensure_ascii=True, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
