#!/usr/bin/env python3
"""gen_docs.py N OUT.jsonl - deterministic synthetic JSONL for the resume and
determinism tests: N documents, about 10% exact duplicates, 5% whitespace
variants, some non-ASCII and decomposed accents (so normalize has work)."""
import json
import random
import sys

n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(1234)
words = ["river", "stone", "garden", "engine", "window", "market", "silver", "forest",
         "lantern", "harbor", "violet", "thunder", "paper", "orbit", "canyon", "meadow",
         "café", "naïve", "e\u0301te\u0301", "東京", "Ｆｕｌｌ", "ﬁsh", "data", "model"]
texts = []
with open(out, "w", encoding="utf-8") as f:
    for i in range(n):
        r = rng.random()
        if texts and r < 0.10:
            text = rng.choice(texts)
        elif texts and r < 0.15:
            text = "  " + rng.choice(texts).replace(" ", "   ") + "\n"
        else:
            paras = []
            for _ in range(rng.randint(1, 6)):
                sent = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 18))).capitalize() + "."
                        for _ in range(rng.randint(1, 8))]
                paras.append(" ".join(sent))
            text = "\n\n".join(paras)
            texts.append(text)
        rec = {"id": f"doc-{i:06d}", "text": text, "meta": {"n": i, "tag": rng.choice(["a", "b", "c"])}}
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
