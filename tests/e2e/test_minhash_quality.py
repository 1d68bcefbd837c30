#!/usr/bin/env python3
"""test_minhash_quality.py - scores minhash_dedup's clusters against the exact Jaccard
ground truth of scripts/make_neardup_set.py.

    test_minhash_quality.py DOCS.jsonl TRUTH.tsv OUTPUT.jsonl THRESHOLD [LABEL]

OUTPUT.jsonl is the run's documents (decompressed) from `action: annotate`, so every
document is there and each member of a cluster carries winnow.minhash_cluster (and all but
the kept one winnow.minhash_duplicate). Prints one JSON line of figures; the first three
are the ones test_minhash_quality.sh asserts on.

Pair decisions. A pair of documents is predicted a duplicate when the stage put them in one
cluster. The truth is the clustering an exact method would give: documents are duplicates
when a chain of pairs, each with Jaccard >= THRESHOLD, links them (the connected components
of the >= THRESHOLD graph; union-find makes clusters transitive, so this is the reference
its output is meant to match). precision = TP / predicted pairs, recall = TP / true pairs.
Also printed: the same against the direct truth (Jaccard of the pair itself >= THRESHOLD:
recall = share of such pairs clustered, precision = share of clustered pairs with it), and
document decisions (a document should be removed when an earlier document in input order
is in its truth component; predicted removed = minhash_duplicate).
"""
import json
import sys
from collections import defaultdict


def main():
    docs_path, truth_path, out_path, thr = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    label = sys.argv[5] if len(sys.argv) > 5 else ""
    ids = [json.loads(line)["id"] for line in open(docs_path, encoding="utf-8")]
    pos = {d: i for i, d in enumerate(ids)}
    n = len(ids)

    # predicted clusters (singletons have no attribute)
    cluster, dup = {}, set()
    seen = 0
    for line in open(out_path, encoding="utf-8"):
        r = json.loads(line)
        seen += 1
        w = r.get("winnow", {})
        if "minhash_cluster" in w:
            cluster[r["id"]] = w["minhash_cluster"]
        if w.get("minhash_duplicate"):
            dup.add(r["id"])
    if seen != n:
        sys.exit(f"the output has {seen} documents, the input {n}: run with action: annotate")
    members = defaultdict(list)
    for d, c in cluster.items():
        members[c].append(d)
    pred_pairs = sum(len(m) * (len(m) - 1) // 2 for m in members.values())

    # truth components
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    direct = []
    for line in open(truth_path, encoding="utf-8"):
        a, b, j = line.split("\t")
        if float(j) >= thr:
            x, y = pos[a], pos[b]
            direct.append((a, b))
            rx, ry = find(x), find(y)
            if rx != ry:
                parent[max(rx, ry)] = min(rx, ry)
    comp = [find(i) for i in range(n)]
    comp_size = defaultdict(int)
    for c in comp:
        comp_size[c] += 1
    true_pairs = sum(s * (s - 1) // 2 for s in comp_size.values())
    tp = 0
    for m in members.values():
        by_comp = defaultdict(int)
        for d in m:
            by_comp[comp[pos[d]]] += 1
        tp += sum(k * (k - 1) // 2 for k in by_comp.values())

    def f1(p, r):
        return 2 * p * r / (p + r) if p + r else 0.0

    p = tp / pred_pairs if pred_pairs else 1.0
    r = tp / true_pairs if true_pairs else 1.0
    # direct truth
    dtp = sum(1 for a, b in direct if a in cluster and b in cluster and cluster[a] == cluster[b])
    dp = dtp / pred_pairs if pred_pairs else 1.0
    dr = dtp / len(direct) if direct else 1.0
    # document decisions: removed when not the first of its truth component in input order
    should = {ids[i] for i in range(n) if comp[i] != i}
    d_tp = len(should & dup)
    d_p = d_tp / len(dup) if dup else 1.0
    d_r = d_tp / len(should) if should else 1.0
    print(json.dumps({
        "label": label, "f1": round(f1(p, r), 4), "precision": round(p, 4), "recall": round(r, 4),
        "threshold": thr, "documents": n, "true_pairs": true_pairs, "predicted_pairs": pred_pairs,
        "true_positive_pairs": tp,
        "direct": {"pairs_at_threshold": len(direct), "precision": round(dp, 4), "recall": round(dr, 4),
                   "f1": round(f1(dp, dr), 4)},
        "documents_removed": {"should": len(should), "removed": len(dup), "precision": round(d_p, 4),
                              "recall": round(d_r, 4), "f1": round(f1(d_p, d_r), 4)},
    }))


if __name__ == "__main__":
    main()
