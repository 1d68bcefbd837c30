# test_select.sh - the select stage end to end, its decisions recomputed by
# independent Python from a run without it:
#  1. document level on samples/ ranked by the `n_tokens` attribute the tokenize
#     stage adds (the one numeric attribute a stage adds today): a token budget
#     (greedy, best first, stopping at the first document that does not fit),
#     the output in input order; quotas by input (`source`) and by a record
#     field, with largest-remainder rounding; the report's counts and
#     histograms; Gumbel sampling reproducible across thread counts and
#     changing with the seed;
#  2. `winnow train` runs a few steps on the packed shards;
#  3. killed at random moments (SIGKILL) and resumed: identical outputs;
#  4. token level (per-token perplexity from a score stage): the .weights.bin
#     sidecar lines up token for token with the .bin shard and every
#     document keeps exactly ceil(fraction x (n - 1)) of its tokens 1..n-1.
. "$(dirname "$0")/lib.sh"

TRAIN_BIN=${WINNOW_TRAIN:-$ROOT/winnow}
[ -x "$TRAIN_BIN" ] || TRAIN_BIN=$WINNOW

manifest() { # workdir, select params ("" = no select stage), input glob
    cat <<YAML
name: select
workdir: $1
batch_bytes: 64KiB
inputs:
  - path: ${3:-samples/web/*.jsonl.zst}
  - path: samples/text/*.txt
stages:
  - exact_dedup: {}
  - tokenize: {tokenizer: samples/tokenizer.json}
YAML
    [ -n "$2" ] && echo "  - select: {$2}"
    echo "  - pack: {seq_len: 64, val_fraction: 0.1, shard_tokens: 20000}"
}

# ---- 1. document level ------------------------------------------------------------
manifest "$T/all" "" >"$T/all.yaml"
check "run without select" "$WINNOW" run "$T/all.yaml" --no-progress 2>/dev/null
run_sel() { # name, select params, [threads]
    manifest "$T/$1" "$2" >"$T/$1.yaml"
    check "run $1 ($2)" "$WINNOW" run "$T/$1.yaml" --no-progress --threads "${3:-2}" 2>/dev/null
}
run_sel top "score: n_tokens, budget_tokens: 40000"
run_sel asc_src "score: n_tokens, order: asc, budget_fraction: 0.5, quota_by: source"
run_sel field "score: n_tokens, budget_docs: 150, quota_by: lang_hint"

python3 - "$T" <<'PY' || fails=$((fails + 1))
import glob, json, subprocess, sys
from fractions import Fraction
T = sys.argv[1]
def docs(run):
    out = []
    for f in sorted(glob.glob(f"{T}/{run}/documents/*.zst")):
        for l in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n"):
            if l:
                r = json.loads(l)
                out.append((r.get("id") or r.get("source"), r["winnow"]["n_tokens"], r))
    return out
cands = docs("all")  # what reaches select, in input order
order = {d[0]: i for i, d in enumerate(cands)}
def group_of(r, by):
    if by == "source":
        return "samples/web/*.jsonl.zst" if "source" not in r else "samples/text/*.txt"
    return json.dumps(r.get(by))
def expect(budget, unit, asc, by=None):
    """best first (ties: input order), take while it fits, stop at the first misfit, per group"""
    ranked = sorted(range(len(cands)), key=lambda i: ((cands[i][1] if asc else -cands[i][1]), i))
    cost = (lambda i: 1) if unit == "docs" else (lambda i: cands[i][1])
    groups = {}
    for i in range(len(cands)):
        groups.setdefault(group_of(cands[i][2], by) if by else None, []).append(i)
    names = list(groups)  # in order of first appearance
    share = {g: sum(cost(i) for i in groups[g]) for g in names}
    total = sum(share.values())
    quota = {g: budget * share[g] // total for g in names}
    rem = sorted(names, key=lambda g: (-(budget * share[g] % total), names.index(g)))
    for g in rem[:budget - sum(quota.values())]:
        quota[g] += 1
    used, full, keep = {g: 0 for g in names}, set(), set()
    for i in ranked:
        g = group_of(cands[i][2], by) if by else None
        if g in full:
            continue
        if used[g] + cost(i) > quota[g]:
            full.add(g)
            continue
        used[g] += cost(i)
        keep.add(i)
    return [cands[i][0] for i in sorted(keep)], quota, used
def report(run):
    return json.load(open(f"{T}/{run}/stages/03-select/report.json"))
def check(run, budget, unit, asc, by=None):
    want, quota, used = expect(budget, unit, asc, by)
    got = [d[0] for d in docs(run)]
    assert got == want, (run, len(got), len(want), [x for x in got if x not in want][:3], [x for x in want if x not in got][:3])
    r = report(run)
    total_tokens = sum(d[1] for d in cands)
    assert r["budget"]["asked"] == budget, (r["budget"], budget)
    assert r["budget"]["spent_tokens"] == sum(d[1] for d in docs(run)) <= (budget if unit == "tokens" else 1e18)
    assert r["selected"]["docs"] == len(want) and r["rejected"]["docs"] == len(cands) - len(want)
    assert r["candidates"] == {"docs": len(cands), "tokens": total_tokens}
    assert r["dropped"] == ({"below_threshold": len(cands) - len(want)} if len(want) < len(cands) else {})
    h = r["score_histogram"]
    assert len(h["edges"]) == 21 and sum(h["selected"]) == len(want) and sum(h["rejected"]) == len(cands) - len(want)
    assert h["min"] == min(d[1] for d in cands) and h["max"] == max(d[1] for d in cands)
    if by:
        for g in r["groups"]:
            name = g["group"] if by == "source" else json.dumps(g["group"])
            assert g["quota"] == quota[name] and g["selected_tokens" if unit == "tokens" else "selected_docs"] == used[name], (g, quota, used)
        assert sum(g["quota"] for g in r["groups"]) == budget
    print(f"{run}: {len(want)} of {len(cands)} documents, {r['budget']['spent_tokens']} tokens, threshold {r['threshold']}")
check("top", 40000, "tokens", False)
total = sum(d[1] for d in cands)
check("asc_src", int(Fraction("0.5") * total), "tokens", True, "source")
check("field", 150, "docs", False, "lang_hint")
PY

# Gumbel: the same sample with 1 or 2 threads, another with another seed.
run_sel g1 "score: n_tokens, budget_docs: 200, temperature: 30, seed: 5" 1
run_sel g2 "score: n_tokens, budget_docs: 200, temperature: 30, seed: 5" 2
run_sel g3 "score: n_tokens, budget_docs: 200, temperature: 30, seed: 6" 2
shard_sums "$T/g1" >"$T/g1.sums"
shard_sums "$T/g2" >"$T/g2.sums"
shard_sums "$T/g3" >"$T/g3.sums"
check "Gumbel: same seed, same outputs across thread counts" cmp -s "$T/g1.sums" "$T/g2.sums"
check "Gumbel: another seed, another sample" bash -c "! cmp -s '$T/g1.sums' '$T/g3.sums'"
check "Gumbel: 200 documents kept" [ "$(json_get "$T/g2/stages/03-select/report.json" selected.docs)" = 200 ]

# ---- 2. training on the selected shards ------------------------------------------------
"$TRAIN_BIN" train --data "$T/top/shards/train_*.bin" --val "$T/top/shards/val_*.bin" --out "$T/model" \
    --layers 1 --heads 2 --dim 32 --context 32 --batch 4 --steps 5 --val-every 5 --val-batches 2 \
    --tokenizer samples/tokenizer.json >"$T/train.out" 2>&1
check "train runs on the selected shards" [ $? -eq 0 ] || tail -5 "$T/train.out" >&2
check "train.json: 5 steps, a finite loss" python3 -c "
import json, math, sys
j = json.load(open('$T/model/train.json'))
assert j['steps'] == 5 and math.isfinite(j['final_val_loss']), j['steps']"

# ---- 3. killed and resumed ----------------------------------------------------------------
# A document-level select holds every document back, so no document shard completes and no
# checkpoint is taken while the input streams: a killed run resumes from the start (its spill
# restarts). The outputs must still be those of an uninterrupted run.
python3 tests/e2e/gen_docs.py 4000 "$T/g.jsonl"
GEN="score: n_tokens, budget_fraction: 0.3, temperature: 40, seed: 1, quota_by: source"
manifest "$T/gref" "$GEN" "$T/g.jsonl" >"$T/gref.yaml"
check "generated corpus: reference run" "$WINNOW" run "$T/gref.yaml" --no-progress 2>/dev/null
shard_sums "$T/gref" >"$T/gref.sums"
total=$( { /usr/bin/time -f %e "$WINNOW" run "$T/gref.yaml" --no-progress 2>&1 >/dev/null; } | tail -1)
for i in 1 2 3; do
    manifest "$T/gk$i" "$GEN" "$T/g.jsonl" >"$T/gk$i.yaml"
    "$WINNOW" run "$T/gk$i.yaml" --no-progress 2>/dev/null &
    pid=$!
    sleep "$(python3 -c "print(round($total * (0.2, 0.5, 0.8)[$i - 1], 3))")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    check "kill $i: resume" "$WINNOW" run "$T/gk$i.yaml" --resume --no-progress 2>/dev/null
    shard_sums "$T/gk$i" >"$T/gk$i.sums"
    check "kill $i: identical documents and shards" cmp -s "$T/gref.sums" "$T/gk$i.sums"
    check "kill $i: no temporary files" [ -z "$(find "$T/gk$i" -name '*.tmp')" ]
done

# ---- 4. token level -----------------------------------------------------------------------
# The weights check, written once: every shard's .weights.bin has one float per token of its
# .bin, and each document (from .docs.bin) keeps token 0 at weight 1 and exactly
# ceil(fraction x (n - 1)) of its other tokens at 1, the rest 0 (sequence scope), or exactly
# ceil(fraction x N) over all documents (global scope).
check_weights() { # run dir, fraction, scope
    python3 - "$1" "$2" "$3" <<'PY'
import glob, json, math, struct, sys
from fractions import Fraction
run, frac, scope = sys.argv[1], Fraction(sys.argv[2]), sys.argv[3]
def read(path, fmt, magic):
    d = open(path, "rb").read()
    h = struct.unpack("<256i", d[:1024])
    assert h[0] == magic, (path, h[0])
    size = struct.calcsize(fmt)
    assert len(d) == 1024 + h[2] * size, (path, len(d), h[2])
    return h, list(struct.unpack(f"<{h[2]}{fmt}", d[1024:]))
kept = scored = docs = 0
for b in sorted(glob.glob(f"{run}/shards/*.bin")):
    if b.endswith((".weights.bin", ".docs.bin")):
        continue
    h, toks = read(b, "H" if struct.unpack("<2i", open(b, "rb").read(8))[1] == 1 else "I", 20240520)
    _, w = read(b[:-4] + ".weights.bin", "f", 20261101)
    _, starts = read(b[:-4] + ".docs.bin", "Q", 20261102)
    assert len(w) == len(toks), (b, len(w), len(toks))
    for a, e in zip(starts, starts[1:] + [len(toks)]):
        n = e - a
        assert w[a] == 1.0, (b, a)
        ones = sum(1 for x in w[a + 1:e] if x == 1.0)
        assert all(x in (0.0, 1.0) for x in w[a:e])
        if scope == "sequence":
            assert ones == math.ceil(frac * (n - 1)), (b, a, n, ones)
        kept += ones
        scored += n - 1
        docs += 1
if scope == "global":
    assert kept == math.ceil(frac * scored), (kept, scored)
print(f"weights: {docs} documents, {kept} of {scored} scored tokens at weight 1 ({scope})")
PY
}
# Token level: a score stage with a per-token method (perplexity: the reference model's per-token
# loss; the model is trained inside the run on the target samples) fills d->tscore.
SCORE_STAGE="score: {methods: perplexity, train_reference: target, train_steps: 10, train_layers: 1, train_dim: 32, train_heads: 2, train_context: 64, train_batch: 4}"
if [ -z "$SCORE_STAGE" ]; then
    echo "SKIP: token-level select end to end needs a score stage"
else
    for scope in sequence global; do
        cat >"$T/tok-$scope.yaml" <<YAML
name: select_tokens
workdir: $T/tok-$scope
inputs:
  - path: samples/web/*.jsonl.zst
datasets:
  target: {path: samples/target/*.jsonl.zst}
stages:
  - tokenize: {tokenizer: samples/tokenizer.json}
  - $SCORE_STAGE
  - select: {level: token, token_fraction: 0.6, token_scope: $scope}
  - pack: {seq_len: 64, val_fraction: 0.1, shard_tokens: 20000}
YAML
        check "token level ($scope) run" "$WINNOW" run "$T/tok-$scope.yaml" --no-progress 2>/dev/null
        check "token level ($scope): weights line up, exact counts" check_weights "$T/tok-$scope" 0.6 "$scope"
    done
    "$TRAIN_BIN" train --data "$T/tok-sequence/shards/train_*.bin" --out "$T/tmodel" --layers 1 --heads 2 \
        --dim 32 --context 32 --batch 4 --steps 5 --tokenizer samples/tokenizer.json >"$T/ttrain.out" 2>&1
    check "train runs on token-weighted shards" [ $? -eq 0 ]
fi
finish
