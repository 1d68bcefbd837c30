#!/usr/bin/env python3
"""gen_near_dups.py N OUTDIR FILES - deterministic synthetic JSONL with near-duplicates spread over
FILES files (OUTDIR/part-00.jsonl ...), for tests of minhash_dedup across MPI ranks: N documents,
of which about a third copy an earlier document with a fraction of its words replaced (0, 1%, 3%,
8%, 20%, 50%: Jaccard about 1 down to unrelated), placed anywhere later (often in another file),
and chains: a document, an edit of it, an edit of the edit, ... with the links scattered over the
files, so that a cluster's documents meet only through other ranks' pairs. Texts of 40-400 words
from a 300-word vocabulary (letters only: normalization turns digit runs into "0"), some with
accents, capitals and punctuation (normalization has work), a few empty."""
import json
import random
import sys

n, outdir, nfiles = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = random.Random(20261122)
syl = ["ka", "lo", "mi", "nu", "re", "sa", "to", "vi", "ze", "po", "da", "fe", "gu", "hi", "jo", "be", "ro"]
vocab = [a + b + c for a in syl for b in syl[:6] for c in syl[:3]][:290] + ["café", "naïve", "e\u0301te\u0301", "東京", "Ｆｕｌｌ",
                                             "ﬁsh", "Data", "MODEL", "river", "stone"]


def fresh():
    return [rng.choice(vocab) for _ in range(rng.randint(40, 400))]


def edit(words, rate):
    return [rng.choice(vocab) if rng.random() < rate else w for w in words]


docs = [None] * n
free = list(range(n))
rng.shuffle(free)
# chains: 4-10 links, each a 2% edit of the previous link, at positions in random order (a fifth of
# the documents)
pos = 0
while pos < n // 5:
    k = rng.randint(4, 10)
    words = fresh()
    for p in free[pos:pos + k]:
        docs[p] = words
        words = edit(words, 0.02)
    pos += k
# everything else: a fresh text, or an edited copy of an earlier fresh one
rates = [0, 0.01, 0.03, 0.08, 0.2, 0.5]
bases = []
for i in range(n):
    if docs[i] is not None:
        continue
    if len(bases) > 10 and rng.random() < 0.33:
        docs[i] = edit(docs[rng.choice(bases)], rng.choice(rates))
    elif rng.random() < 0.01:
        docs[i] = []
    else:
        docs[i] = fresh()
        bases.append(i)
per = (n + nfiles - 1) // nfiles
for f in range(nfiles):
    with open(f"{outdir}/part-{f:02d}.jsonl", "w", encoding="utf-8") as out:
        for i in range(f * per, min(n, (f + 1) * per)):
            w = docs[i]
            text = " ".join(w)
            if w and i % 7 == 0:
                text = text.capitalize().replace(" ka", ", Ka") + "."
            out.write(json.dumps({"id": f"d{i:06d}", "text": text}, ensure_ascii=False) + "\n")
