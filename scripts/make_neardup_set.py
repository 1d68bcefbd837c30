#!/usr/bin/env python3
"""make_neardup_set.py - a deterministic near-duplicate test set for minhash_dedup, with
exact ground truth. Standard library only; the same arguments give the same bytes.

    scripts/make_neardup_set.py OUT_DIR [--bases N] [--seed S] [--ngram 5] [--no-truth]

Writes OUT_DIR/docs.jsonl ({"id", "text", "kind"}) and, unless --no-truth,
OUT_DIR/truth.tsv: one line "id_a<TAB>id_b<TAB>jaccard" for every pair of documents
whose shingle sets intersect, with the exact Jaccard similarity |A n B| / |A u B| of their
sets of word n-grams after minhash_dedup's normalization (src/minhash.h: NFKD, case
folding, marks removed, punctuation and symbols separate words, digit runs become "0").
Shingles are compared as strings, so the truth has no hash collisions.

The text is generated, never copied: a vocabulary of pseudo-words built from syllables
(Zipf-distributed, plus English function words and a few accented words), 40 topics that
each favour their own 300 words, sentences of 5-25 words with commas, numbers and end
marks, 1-7 paragraphs, 40-800 words a document; 15% of documents carry one of a few
boilerplate lines (a header or footer), which gives unrelated documents a little overlap,
as on the web.

Near-duplicates: 45% of the base documents get 1-3 copies, each made from the base or
(one time in five) from an earlier copy of it:
  exact      15%  the same words; case, spacing and punctuation changed (Jaccard 1)
  edit       60%  a fraction r of the words edited (substituted, inserted or deleted,
                  equally likely), r uniform in [0, 0.10]: Jaccard from 1 down to ~0.4,
                  the region around 0.8 well covered
  reorder    10%  paragraphs shuffled, plus edits with r uniform in [0, 0.02]
  truncate    8%  the first 50-100% of the words
  extend      7%  new paragraphs appended (10-100% more words)
All documents are then shuffled, so a copy may come before its base.

--no-truth skips the Jaccard computation (for benchmark corpora); --bases sets the number
of base documents (the total is about 1.75x that).
"""
import argparse
import bisect
import json
import os
import random
import sys
import unicodedata

SYLLABLES = ("ka ri to na mo se lu pe da vi gor an el is un tra ble men ter pro con ver sta lin dor "
             "mar pen ros cal fen bri gal hum jor kel lom nix ost pra quil rin sul tev ur vos wen yar "
             "zel ba co de fi gu ha ji ke ly ma ne ol pi qu ra su ti ul ve wa xe yo zu").split()
FUNCTION = ("the of and a to in is was that for it with as on be at by this had not are but from or "
            "have an they which one you were her all she there would their we him been has when who will "
            "more no if out so said what up its about into than them can only other new some could time "
            "these two may then do first any my now such like our over man me even most made after also").split()
ACCENTED = ["café", "naïve", "façade", "résumé", "piñata", "über", "São", "Ærø", "ﬁnal", "Straße"]
BOILERPLATE = [
    "Share this article with your friends and family on social media.",
    "All rights reserved. No part of this page may be reproduced without permission.",
    "Subscribe to our newsletter to get the latest stories delivered to your inbox.",
    "This post may contain affiliate links, which means we may earn a small commission.",
    "Click here to read more stories like this one from our archive.",
    "Comments are closed for this article. Please read our community guidelines.",
]


def make_vocab(rng, n):
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
    return sorted(words)


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        vocab = make_vocab(self.rng, 6000)
        self.rng.shuffle(vocab)
        self.vocab = FUNCTION + vocab
        cum, total = [], 0.0
        for r in range(len(self.vocab)):
            total += 1.0 / (r + 1) ** 1.05
            cum.append(total)
        self.cum, self.total = cum, total
        self.topics = [self.rng.sample(vocab, 300) for _ in range(40)]

    def word(self, topic):
        r = self.rng.random()
        if r < 0.002:
            return self.rng.choice(ACCENTED)
        if r < 0.45:
            return self.rng.choice(topic)
        return self.vocab[bisect.bisect_left(self.cum, self.rng.random() * self.total)]

    def sentence(self, topic):
        rng = self.rng
        words = []
        for i in range(rng.randint(5, 25)):
            w = self.word(topic)
            if rng.random() < 0.03:
                w = str(rng.choice((rng.randint(1, 99), rng.randint(1900, 2030), rng.randint(1000, 99999))))
                if len(w) > 4 and rng.random() < 0.5:
                    w = w[:-3] + "," + w[-3:]
            if i == 0:
                w = w[:1].upper() + w[1:]
            if i and rng.random() < 0.08:
                words[-1] += ","
            words.append(w)
        return " ".join(words) + rng.choice((".", ".", ".", ".", "?", "!"))

    def paragraphs(self, nwords, topic):
        """Paragraphs (lists of sentences as word lists) of about nwords words."""
        rng, paras, n = self.rng, [], 0
        while n < nwords:
            para = []
            for _ in range(rng.randint(2, 7)):
                s = self.sentence(topic).split(" ")
                para.append(s)
                n += len(s)
                if n >= nwords:
                    break
            paras.append(para)
        return paras

    def base(self):
        rng = self.rng
        topic = rng.choice(self.topics)
        nwords = int(round(40 * (20 ** rng.random())))  # 40..800, log-uniform
        paras = [[w for s in p for w in s] for p in self.paragraphs(nwords, topic)]
        if rng.random() < 0.15:
            line = rng.choice(BOILERPLATE).split(" ")
            paras.insert(0 if rng.random() < 0.5 else len(paras), line)
        return {"paras": paras, "topic": topic}


def render(paras):
    return "\n\n".join(" ".join(p) for p in paras)


def copy_doc(gen, src, kind):
    rng = gen.rng
    paras = [list(p) for p in src["paras"]]
    if kind == "exact":  # same words after normalization
        out = []
        for p in paras:
            q = []
            for w in p:
                r = rng.random()
                if r < 0.1:
                    w = w.upper()
                elif r < 0.2:
                    w = w.lower()
                elif r < 0.25:
                    w = w.rstrip(",.?!") + rng.choice((";", " -", ":", ""))
                q.append(w)
            out.append(q)
        return {"paras": out, "topic": src["topic"]}, 0.0
    if kind == "truncate":
        words = [w for p in paras for w in p]
        keep = max(1, int(len(words) * rng.uniform(0.5, 1.0)))
        out, n = [], 0
        for p in paras:
            if n >= keep:
                break
            out.append(p[: keep - n])
            n += len(out[-1])
        return {"paras": out, "topic": src["topic"]}, 0.0
    if kind == "extend":
        total = sum(len(p) for p in paras)
        more = gen.paragraphs(max(5, int(total * rng.uniform(0.1, 1.0))), src["topic"])
        return {"paras": paras + [[w for s in p for w in s] for p in more], "topic": src["topic"]}, 0.0
    rate = rng.uniform(0, 0.10) if kind == "edit" else rng.uniform(0, 0.02)
    if kind == "reorder" and len(paras) > 1:
        while True:
            order = list(range(len(paras)))
            rng.shuffle(order)
            if order != sorted(order):
                break
        paras = [paras[i] for i in order]
    out = []
    for p in paras:
        q = []
        for w in p:
            if rng.random() < rate:
                op = rng.randrange(3)
                if op == 0:  # substitute
                    q.append(gen.word(src["topic"]))
                elif op == 1:  # insert before
                    q.append(gen.word(src["topic"]))
                    q.append(w)
                # op == 2: delete
            else:
                q.append(w)
        out.append(q if q else p[:1])
    return {"paras": out, "topic": src["topic"]}, rate


# ---- minhash_dedup's normalization and shingles (src/minhash.c), for the truth -----------

def is_cjk(c):
    o = ord(c)
    return (0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF
            or 0x20000 <= o <= 0x323AF)


def normalize_words(text, cjk_words=True):
    words, cur, digit = [], [], False
    for ch in text:
        for c in unicodedata.normalize("NFKD", ch.casefold()):
            cat = unicodedata.category(c)
            if cat in ("Mn", "Mc", "Me"):
                continue  # marks are stripped
            if cat[0] == "L" or cat in ("Nl", "No"):
                if cjk_words and is_cjk(c):
                    if cur:
                        words.append("".join(cur))
                    words.append(c)
                    cur, digit = [], False
                    continue
                cur.append(c)
                digit = False
            elif cat == "Nd":
                if not digit:
                    cur.append("0")
                digit = True
            else:
                if cur:
                    words.append("".join(cur))
                cur, digit = [], False
    if cur:
        words.append("".join(cur))
    return words


def shingles(text, n):
    w = normalize_words(text)
    if not w:
        return set()
    if len(w) < n:
        return {" ".join(w)}
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--bases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--no-truth", action="store_true")
    a = ap.parse_args()
    gen = Gen(a.seed)
    rng = gen.rng
    docs = []  # (id, text, kind)
    kinds = (("exact", 0.15), ("edit", 0.60), ("reorder", 0.10), ("truncate", 0.08), ("extend", 0.07))
    for b in range(a.bases):
        base = gen.base()
        family = [base]
        docs.append((f"b{b}", render(base["paras"]), "base"))
        if rng.random() < 0.45:
            for c in range(rng.randint(1, 3)):
                r, acc, kind = rng.random(), 0.0, "edit"
                for k, p in kinds:
                    acc += p
                    if r < acc:
                        kind = k
                        break
                src = family[-1] if len(family) > 1 and rng.random() < 0.2 else base
                doc, rate = copy_doc(gen, src, kind)
                family.append(doc)
                docs.append((f"b{b}c{c}", render(doc["paras"]), f"{kind}:{rate:.4f}"))
    rng.shuffle(docs)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "docs.jsonl"), "w", encoding="utf-8") as f:
        for i, t, k in docs:
            f.write(json.dumps({"id": i, "text": t, "kind": k}, ensure_ascii=False) + "\n")
    if a.no_truth:
        print(f"{len(docs)} documents", file=sys.stderr)
        return
    sets = [shingles(t, a.ngram) for _, t, _ in docs]
    index = {}
    for d, s in enumerate(sets):
        for sh in s:
            index.setdefault(sh, []).append(d)
    inter = {}
    for posting in index.values():
        if len(posting) < 2:
            continue
        for x in range(len(posting)):
            for y in range(x + 1, len(posting)):
                key = (posting[x], posting[y])
                inter[key] = inter.get(key, 0) + 1
    with open(os.path.join(a.out, "truth.tsv"), "w", encoding="utf-8") as f:
        for (x, y), c in sorted(inter.items()):
            j = c / (len(sets[x]) + len(sets[y]) - c)
            f.write(f"{docs[x][0]}\t{docs[y][0]}\t{j:.6f}\n")
    print(f"{len(docs)} documents, {len(inter)} pairs sharing a shingle", file=sys.stderr)


if __name__ == "__main__":
    main()
