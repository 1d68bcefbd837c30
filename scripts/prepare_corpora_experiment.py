#!/usr/bin/env python3
"""Prepare the real-corpora selection experiment (pipelines/experiment_corpora.yaml) from
../shared/corpora (third-party text; nothing is copied into the repository):

  runs/corpora-data/target.jsonl   tinyshakespeare, first 60%, in ~2,000-character chunks:
                                   what "valuable" means (the reference model learns it)
  runs/corpora-data/pool.jsonl     the 697 Common Crawl documents of dolma's CC-MAIN test file
                                   (real web text: boilerplate, menus, many languages) mixed
                                   with tinyshakespeare's next 20% in chunks: a pool with a
                                   little in-domain text among much that is not
  runs/corpora-data/heldout.jsonl  tinyshakespeare, last 20%: the evaluation set, never seen
                                   by any stage

    python3 scripts/prepare_corpora_experiment.py [--shared ../shared] [--out runs/corpora-data]

Deterministic (chunks cut at line ends, pool order fixed by a seeded shuffle). Standard library only.
"""
import argparse
import gzip
import json
import os
import random
import sys


def chunks(text, size=2000):
    out, cur = [], []
    n = 0
    for line in text.splitlines(keepends=True):
        cur.append(line)
        n += len(line)
        if n >= size:
            out.append("".join(cur))
            cur, n = [], 0
    if cur:
        out.append("".join(cur))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
    ap.add_argument("--out", default="runs/corpora-data")
    a = ap.parse_args()
    cc = os.path.join(a.shared, "corpora", "web", "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz")
    ts = os.path.join(a.shared, "corpora", "text", "tinyshakespeare", "input.txt")
    if not (os.path.exists(cc) and os.path.exists(ts)):
        print("SKIP: %s or %s is missing: no real-corpora experiment" % (cc, ts))
        return 0
    text = open(ts, encoding="utf-8").read()
    n = len(text)
    cut1, cut2 = text.rfind("\n", 0, int(n * 0.6)) + 1, text.rfind("\n", 0, int(n * 0.8)) + 1
    os.makedirs(a.out, exist_ok=True)

    def write(name, recs):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print("%s: %d documents, %d characters" % (name, len(recs), sum(len(r["text"]) for r in recs)))

    write("target.jsonl", [{"id": "ts-target-%04d" % i, "text": c} for i, c in enumerate(chunks(text[:cut1]))])
    write("heldout.jsonl", [{"id": "ts-heldout-%04d" % i, "text": c} for i, c in enumerate(chunks(text[cut2:]))])
    pool = [{"id": "ts-pool-%04d" % i, "text": c, "source": "tinyshakespeare"}
            for i, c in enumerate(chunks(text[cut1:cut2]))]
    with gzip.open(cc, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            pool.append({"id": "cc-" + r["id"], "text": r["text"], "source": "cc-main"})
    random.Random(20241122).shuffle(pool)
    write("pool.jsonl", pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
