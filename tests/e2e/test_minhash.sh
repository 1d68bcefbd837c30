# test_minhash.sh - minhash_dedup end to end:
#  1. the data-juicer demo set (../shared/corpora/web/demo-dataset-deduplication.jsonl, 14
#     documents with known exact and near duplicates): exactly the expected documents removed,
#     the kept ones annotated; SKIP when ../shared is absent;
#  2. byte-identical documents for --threads 1, 2 and 3 and for a budget so small that the LSH
#     tables spill sorted runs, with and without verification; the report's histogram in the
#     convention the HTML report draws;
#  3. killed at random moments (SIGKILL) and resumed: identical documents. (The run loop
#     checkpoints when a document shard completes; minhash_dedup holds every document back to
#     the end of the stream, so no checkpoint falls inside its pass and a resume starts it over;
#     its save/load are exercised mid-stream by tests/unit/test_minhash.c.)
#  4. device: cuda without a GPU stops with a clear message; with a GPU (the release build sees
#     one) the GPU's documents are identical to the CPU's.
. "$(dirname "$0")/lib.sh"

manifest() { # workdir, input, params, [extra top-level lines]
    cat <<YAML
name: minhash
workdir: $1
batch_bytes: 64KiB
${4:-}
inputs:
  - path: $2
stages:
  - minhash_dedup: {$3}
outputs:
  documents: {shard_bytes: 256KiB}
YAML
}
report() { echo "$1/stages/01-minhash_dedup/report.json"; }

# ---- 1. the demo set --------------------------------------------------------------------------
DEMO=$SHARED/corpora/web/demo-dataset-deduplication.jsonl
if [ -f "$DEMO" ]; then
    # Lines (1-based, the ids winnow gives JSONL records without an id field): 7 and 12 are the
    # same sentence; 8/9 and 10/11 are a long and a short news text, each in a "plant" and a
    # "plants" variant (Jaccard 0.987 and 0.975; long vs short about 0.51: the short one is the
    # first half of the long one, a containment that Jaccard does not call a duplicate); 13/14
    # differ in one header line (0.988); 1 and 6 ("Today is Sunday..." with "really" inserted)
    # share 2 of 9 word 5-grams (0.22).
    manifest "$T/demo" "$DEMO" "" >"$T/demo.yaml"
    check "demo: runs" "$WINNOW" run "$T/demo.yaml" --no-progress 2>/dev/null
    check "demo: removes lines 9, 11, 12, 14 (verify, the default)" python3 - "$(report "$T/demo")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
got = sorted(int(i.rsplit(":", 1)[1]) for i in r["dropped_samples"]["near_duplicate"])
assert got == [9, 11, 12, 14], got
assert r["docs_out"] == 10 and r["clusters"] == 4 and r["removed"] == 4, r
PY
    zstd -dc "$T"/demo/documents/*.zst >"$T/demo.out"
    check "demo: kept cluster members carry their cluster and its size" python3 - "$T/demo.out" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
marked = [(r["text"][:12], r["winnow"]["minhash_cluster"], r["winnow"]["minhash_cluster_size"]) for r in recs if "winnow" in r]
assert [m[1:] for m in marked] == [(0, 2), (1, 2), (2, 2), (3, 2)], marked
assert marked[0][0] == "This paper p" and marked[3][0].startswith("第九届会议"), marked
PY
    manifest "$T/demo-lsh" "$DEMO" "verify: false" >"$T/demo-lsh.yaml"
    check "demo, verify false: runs" "$WINNOW" run "$T/demo-lsh.yaml" --no-progress 2>/dev/null
    check "demo, verify false: also joins the long and short news texts (lines 9-12, 14 removed)" python3 - "$(report "$T/demo-lsh")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
got = sorted(int(i.rsplit(":", 1)[1]) for i in r["dropped_samples"]["near_duplicate"])
assert got == [9, 10, 11, 12, 14], got
assert r["verified_pairs"] is None
PY
else
    echo "SKIP: $DEMO absent (../shared not here): the demo near-duplicate set was not checked"
fi

# ---- 2. threads, budgets ------------------------------------------------------------------------
python3 tests/e2e/gen_docs.py 3000 "$T/g.jsonl"
for v in true false; do
    manifest "$T/ref-$v" "$T/g.jsonl" "verify: $v" "memory: 1GiB" >"$T/ref-$v.yaml"
    check "verify $v: reference run" "$WINNOW" run "$T/ref-$v.yaml" --threads 1 --no-progress 2>/dev/null
    shard_sums "$T/ref-$v" >"$T/ref-$v.sums"
    check "verify $v: near-duplicates removed" [ "$(json_get "$(report "$T/ref-$v")" dropped.near_duplicate)" -ge 300 ]
    for t in 2 3; do
        manifest "$T/t$t-$v" "$T/g.jsonl" "verify: $v" "memory: 1GiB" >"$T/t$t-$v.yaml"
        check "verify $v: --threads $t" "$WINNOW" run "$T/t$t-$v.yaml" --threads "$t" --no-progress 2>/dev/null
        shard_sums "$T/t$t-$v" >"$T/t$t-$v.sums"
        check "verify $v: --threads $t == --threads 1" cmp -s "$T/ref-$v.sums" "$T/t$t-$v.sums"
    done
    manifest "$T/small-$v" "$T/g.jsonl" "verify: $v, memory: 48KiB" >"$T/small-$v.yaml"
    check "verify $v: 48KiB budget" "$WINNOW" run "$T/small-$v.yaml" --threads 2 --no-progress 2>/dev/null
    shard_sums "$T/small-$v" >"$T/small-$v.sums"
    check "verify $v: the tables spilled" [ "$(json_get "$(report "$T/small-$v")" spill.bucket_runs)" -ge 3 ]
    check "verify $v: spilled == in memory" cmp -s "$T/ref-$v.sums" "$T/small-$v.sums"
done
check "several document shards" [ "$(wc -l <"$T/ref-true.sums")" -ge 3 ]
check "report: counts, curve, histogram in the edges/counts convention" python3 - "$(report "$T/ref-true")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
h = r["cluster_size_histogram"]
assert len(h["edges"]) == len(h["counts"]) + 1 and sum(h["counts"]) == r["clusters"] > 0, h
assert r["removed"] == r["dropped"]["near_duplicate"] and r["documents"] == r["docs_in"]
assert r["verified_pairs"] <= r["candidate_pairs"] and abs(r["lsh"]["s_at_p_half"] - 0.6847) < 1e-3
assert r["speed"]["signatures_per_second"] > 0 and r["device"] == "cpu"
PY

# ---- 3. killed and resumed ------------------------------------------------------------------------
total=$( { /usr/bin/time -f %e "$WINNOW" run "$T/ref-true.yaml" --no-progress 2>&1 >/dev/null; } | tail -1)
for i in 1 2 3; do
    manifest "$T/k$i" "$T/g.jsonl" "memory: 48KiB" >"$T/k$i.yaml"
    "$WINNOW" run "$T/k$i.yaml" --no-progress 2>/dev/null &
    pid=$!
    sleep "$(python3 -c "print(round($total * (0.15, 0.5, 0.85)[$i - 1], 3))")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    check "kill $i: resume" "$WINNOW" run "$T/k$i.yaml" --resume --no-progress 2>/dev/null
    shard_sums "$T/k$i" >"$T/k$i.sums"
    check "kill $i: identical documents" cmp -s "$T/ref-true.sums" "$T/k$i.sums"
    check "kill $i: no temporary files" [ -z "$(find "$T/k$i" -name '*.tmp')" ]
done

# ---- 4. device ---------------------------------------------------------------------------------------
manifest "$T/gpu" "$T/g.jsonl" "" "device: cuda" >"$T/gpu.yaml"
gpus=$("$ROOT/winnow" --version 2>/dev/null | sed -n 's/.*; \([0-9]*\) CUDA devices visible.*/\1/p')
if [ "${gpus:-0}" -gt 0 ]; then
    check "device cuda runs (release build)" "$ROOT/winnow" run "$T/gpu.yaml" --no-progress 2>/dev/null
    check "the report says cuda" [ "$(json_get "$(report "$T/gpu")" device)" = cuda ]
    shard_sums "$T/gpu" >"$T/gpu.sums"
    check "GPU signatures give the CPU's documents" cmp -s "$T/ref-true.sums" "$T/gpu.sums"
else
    "$WINNOW" run "$T/gpu.yaml" --no-progress >"$T/gpu.out" 2>"$T/gpu.err"
    check "device cuda without a GPU fails" [ $? -ne 0 ]
    check "... saying why" grep -qE 'device: cuda, but (no CUDA device is visible|this winnow was built without CUDA)' "$T/gpu.err"
    echo "SKIP: no GPU visible: minhash_dedup's GPU signatures not run end to end (checked the refusal)"
fi
finish
