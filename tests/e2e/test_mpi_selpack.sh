# test_mpi_selpack.sh - select, pack and synthesize across MPI ranks (README "Scale-out (MPI)"):
# each manifest runs as one process (2 threads) and under mpirun -np 1, 2 and 4, and every output -
# documents, token shards and their sidecars, shards/index.json, the stage reports (timings aside) -
# must be byte-identical (tests/e2e/mpi_lib.sh). The inputs are 8 JSONL files of 12 to 70 documents
# (so ranks get different numbers of files, and 4 ranks' streams are short), with repeated texts
# across files, so equal scores (ties) fall on different ranks; small batches, shards and windows,
# so shards and best_fit/shuffle windows straddle ranks.
#   docsel     document level by n_tokens, budget_fraction with quota_by source; pack concat, val split
#   docsel_t   asc, Gumbel (temperature), budget_docs with quota_by a record field (tag, missing on
#              some); pack best_fit + shuffle, val split
#   dsir       document level by a dsir score, budget_tokens; pack concat + shuffle
#   tok_global token level, global scope, random per-token scores (select's `score: random`): the
#              exact stream-wide threshold; pack best_fit with the weights sidecar
#   tok_seq    token level, sequence scope (random scores too); pack concat + shuffle, Megatron format,
#              val split
#   synth      synthesize (templates, some failing: missing_field) with max_total reached part way
#   synth_repl synthesize with keep_source false and max_total, documents only
# Then docsel_t, tok_global and synth again on 2 ranks, killed after a checkpoint and resumed.
# Per-token scores from `score: {methods: perplexity, train_reference: ...}` are not used: on these
# inputs the documents of ranks >= 1 get a ref_loss that differs from one process's in the 8th digit
# (the score stage's, not select's: its own outputs differ).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpi_lib.sh"

# Also aside (on top of mpi_lib.sh's list): every *_seconds and *_per_second figure (synthesize's
# generation_seconds and throughputs) - they measure the machine too.
eval "$(declare -f report_norm | sed '1s/report_norm/lib_report_norm/')"
report_norm() {
    lib_report_norm "$1" | python3 -c '
import json, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if not k.endswith(("_per_second", "_seconds"))}
    if isinstance(v, list): return [strip(x) for x in v]
    return v
print(json.dumps(strip(json.load(sys.stdin)), sort_keys=True, indent=1))'
}

IN=$T/in
mkdir -p "$IN"
python3 - "$IN" <<'PY'
import json, random, sys
rng = random.Random(7)
words = ("river stone garden engine window market silver forest lantern harbor violet thunder paper "
         "orbit canyon meadow data model the of and a to in is was for on with as by").split()
texts = []
sizes = [30, 55, 12, 70, 41, 25, 60, 18]
for f, n in enumerate(sizes):
    name = f"{'ab'[f // 4]}-{f % 4}.jsonl"
    with open(f"{sys.argv[1]}/{name}", "w") as out:
        for i in range(n):
            if texts and rng.random() < 0.2:
                text = rng.choice(texts)  # the same text (and token count) on another rank
            else:
                k = rng.choice([3, 8, 20, 40, 90, 200])
                text = " ".join(rng.choice(words) for _ in range(rng.randint(1, k))).capitalize() + "."
                texts.append(text)
            rec = {"id": f"f{f}-{i:03d}", "text": text}
            r = rng.random()
            if r < 0.8: rec["tag"] = rng.choice(["x", "y", "z"])
            elif r < 0.9: rec["tag"] = None
            if rng.random() < 0.7: rec["url"] = f"https://example.org/{f}/{i}"
            out.write(json.dumps(rec) + "\n")
PY

manifest() { # name, stages (YAML lines), [extra top-level YAML]
    cat >"$T/$1.yaml" <<YAML
name: $1
workdir: @WORKDIR@
batch_bytes: 4KiB
inputs:
  - path: $IN/a-*.jsonl
  - path: $IN/b-*.jsonl
datasets:
  target: {path: samples/target/*.jsonl.zst}
  raw: {path: samples/heldout/*.jsonl.zst}
stages:
$2
outputs:
  documents: {shard_bytes: 16KiB}
YAML
}
TOK="  - tokenize: {tokenizer: samples/tokenizer.json}"

manifest docsel "$TOK
  - select: {score: n_tokens, budget_fraction: 0.4, quota_by: source}
  - pack: {seq_len: 64, shard_tokens: 1024, val_fraction: 0.15}"
manifest docsel_t "$TOK
  - select: {score: n_tokens, order: asc, budget_docs: 200, quota_by: tag, temperature: 20, seed: 3}
  - pack: {method: best_fit, seq_len: 64, window: 8, shard_tokens: 1024, val_fraction: 0.1, shuffle: true, seed: 4}"
manifest dsir "$TOK
  - score: {methods: dsir, target: target, raw: raw}
  - select: {score: dsir, budget_tokens: 15000}
  - pack: {seq_len: 64, shard_tokens: 2500, shuffle: true, window: 4}"
manifest tok_global "$TOK
  - select: {level: token, score: random, seed: 9, token_fraction: 0.5, token_scope: global}
  - pack: {method: best_fit, seq_len: 64, window: 6, shard_tokens: 3000, val_fraction: 0.1}"
manifest tok_seq "$TOK
  - select: {level: token, score: random, token_fraction: 0.3, token_scope: sequence, order: asc}
  - pack: {format: megatron, seq_len: 64, shard_tokens: 3000, val_fraction: 0.2, shuffle: true, window: 5}"
manifest synth "  - synthesize: {mode: template, templates: pipelines/synth/qa_arith.tmpl, per_doc: 1.5, max_total: 150, seed: 2}
$TOK
  - pack: {seq_len: 64, shard_tokens: 5000}"
manifest synth_repl "  - synthesize: {mode: template, templates: pipelines/synth/qa_arith.tmpl, per_doc: 2, max_total: 90, keep_source: false, seed: 5}"

for m in docsel docsel_t dsir tok_global tok_seq synth synth_repl; do
    mpi_compare "$m" "$T/$m.yaml" ${MPI_RANKS:-} # MPI_RANKS="1 2": fewer runs
done

# Resume: a rank killed (SIGKILL) right after its first checkpoint - documents held back in select's,
# pack's or synthesize's spill - then --resume on 2 ranks: the same outputs.
for m in docsel_t tok_global synth; do
    [ -d "$T/$m-ref" ] || continue
    sed "s|@WORKDIR@|$T/$m-resume|" "$T/$m.yaml" >"$T/$m-resume.yaml"
    OMP_NUM_THREADS=1 WINNOW_TEST_KILL_AT_CHECKPOINT=1 "${MPIRUN[@]}" -np 2 "$BIN" run "$T/$m-resume.yaml" \
        --no-progress >/dev/null 2>&1
    check "$m: a rank killed after its first checkpoint" [ $? -ne 0 ]
    OMP_NUM_THREADS=1 "${MPIRUN[@]}" -np 2 "$BIN" run "$T/$m-resume.yaml" --resume --no-progress >"$T/$m-resume.log" 2>&1
    check "$m: --resume on 2 ranks succeeds" [ $? -eq 0 ] || tail -5 "$T/$m-resume.log" >&2
    same_outputs "$T/$m-ref" "$T/$m-resume" "$m resumed"
done

# The runs exercise what they say: shards straddle ranks, the caps bind, ties and failures happen.
python3 - "$T" <<'PY' || fails=$((fails + 1))
import glob, json, sys
T = sys.argv[1]
def rep(run, stage):
    return json.load(open(glob.glob(f"{T}/{run}-ref/stages/*-{stage}/report.json")[0]))
def index(run):
    return json.load(open(f"{T}/{run}-ref/shards/index.json"))
bad = []
for run in ("docsel", "docsel_t", "dsir", "tok_global", "tok_seq", "synth"):
    n = len(index(run)["shards"])
    if n < 4: bad.append(f"{run}: {n} shards, want several")
s = rep("docsel", "select")
if not (0 < s["selected"]["docs"] < s["candidates"]["docs"]) or len(s["groups"]) != 2:
    bad.append(f"docsel: {s['selected']} of {s['candidates']}, groups {len(s.get('groups', []))}")
s = rep("docsel_t", "select")
if s["selected"]["docs"] > 200 or len(s["groups"]) != 4:  # x, y, z, null (missing or null)
    bad.append(f"docsel_t: {s['selected']}, groups {[g['group'] for g in s['groups']]}")
s = rep("tok_global", "select")
if not s["threshold"] or s["tokens"]["kept"] != s["target_kept"]:
    bad.append(f"tok_global: kept {s['tokens']['kept']} of target {s['target_kept']}, {s['threshold']}")
for run, cap in (("synth", 150), ("synth_repl", 90)):
    s = rep(run, "synthesize")
    if s["generated"] != cap or not s["capped"] or not s["failures"]:
        bad.append(f"{run}: generated {s['generated']} capped {s['capped']} failures {s['failures']}")
for b in bad: print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
finish
