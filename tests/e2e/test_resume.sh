# test_resume.sh - a run killed with SIGKILL and restarted with --resume ends
# with documents byte-identical to an uninterrupted run: killed right after
# each checkpoint (WINNOW_TEST_KILL_AT_CHECKPOINT), and at random moments,
# including while exact_dedup is spilling to disk.
. "$(dirname "$0")/lib.sh"

python3 tests/e2e/gen_docs.py 6000 "$T/a.jsonl"
python3 tests/e2e/gen_docs.py 3000 "$T/b.jsonl"
zstd -q --rm "$T/b.jsonl"
manifest() { # workdir
    cat <<YAML
name: resume
workdir: $1
batch_bytes: 64KiB
inputs:
  - path: $T/a.jsonl
  - path: $T/b.jsonl.zst
stages:
  - normalize: {form: nfkc}
  - length_filter: {min_words: 5}
  - exact_dedup: {memory: 16KiB}
  - sample: {rate: 0.9}
  - tokenize: {tokenizer: samples/tokenizer.json}
  - pack: {method: best_fit, seq_len: 128, shard_tokens: 60000, window: 8, val_fraction: 0.05, shuffle: true}
outputs:
  documents: {shard_bytes: 512KiB}
YAML
}
# Every report key but times and throughput is the same as the reference's.
same_reports() {
    python3 - "$1" "$2" <<'PY'
import json, sys, glob, os
def load(d):
    out = {}
    for f in sorted(glob.glob(d + "/stages/*/report.json")):
        r = json.load(open(f))
        for k in ("wall_seconds", "cpu_seconds", "energy", "throughput", "peak_memory_bytes"):
            r.pop(k, None)
        out[os.path.basename(os.path.dirname(f))] = r
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in a:
    if a[k] != b.get(k):
        print("report differs:", k, json.dumps(a[k])[:300], json.dumps(b.get(k))[:300], file=sys.stderr)
        sys.exit(1)
sys.exit(0 if len(a) == len(b) == 8 else 1)
PY
}
manifest "$T/ref" >"$T/ref.yaml"
check "reference run" "$WINNOW" run "$T/ref.yaml" --no-progress 2>/dev/null
shard_sums "$T/ref" >"$T/ref.sums"
nshards=$(ls "$T/ref/documents" | wc -l)
check "several shards to resume between (got $nshards)" [ "$nshards" -ge 4 ]
spills=$(json_get "$T/ref/stages/03-exact_dedup/report.json" spill_runs)
check "exact_dedup spilled (runs: $spills)" [ "$spills" -ge 2 ]

# Killed right after checkpoint k, then resumed.
for k in 1 2 $((nshards - 1)); do
    manifest "$T/k$k" >"$T/k$k.yaml"
    WINNOW_TEST_KILL_AT_CHECKPOINT=$k "$WINNOW" run "$T/k$k.yaml" --no-progress 2>/dev/null
    rc=$?
    check "kill at checkpoint $k: the run died (rc $rc)" [ "$rc" -ne 0 ]
    check "kill at checkpoint $k: no run.json yet" [ ! -e "$T/k$k/run.json" ]
    check "resume after checkpoint $k" "$WINNOW" run "$T/k$k.yaml" --resume --no-progress 2>/dev/null
    shard_sums "$T/k$k" >"$T/k$k.sums"
    check "resume after checkpoint $k: identical documents" cmp -s "$T/ref.sums" "$T/k$k.sums"
    check "resume after checkpoint $k: same reports but for times" same_reports "$T/ref" "$T/k$k"
done

# SIGKILL at random moments (possibly several times in a row), then resume.
total=$( { /usr/bin/time -f %e "$WINNOW" run "$T/ref.yaml" --no-progress 2>&1 >/dev/null; } | tail -1)
killed_late=0
for i in 1 2 3 4 5; do
    manifest "$T/r$i" >"$T/r$i.yaml"
    "$WINNOW" run "$T/r$i.yaml" --no-progress 2>/dev/null &
    pid=$!
    sleep "$(python3 -c "import random; random.seed($i); print(round(random.uniform(0.05, 0.6) * $total, 3))")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ -e "$T/r$i/run.json" ] && killed_late=$((killed_late + 1)) && echo "late kill $i: $(ls "$T/r$i") $(cat "$T/r$i/run.json")"
    for attempt in 1 2; do # a resumed run can be killed too
        "$WINNOW" run "$T/r$i.yaml" --resume --no-progress 2>/dev/null &
        pid=$!
        [ "$attempt" = 1 ] && { sleep 0.2; kill -9 "$pid" 2>/dev/null; }
        wait "$pid" 2>/dev/null
    done
    shard_sums "$T/r$i" >"$T/r$i.sums"
    check "random kill $i: identical documents" cmp -s "$T/ref.sums" "$T/r$i.sums"
    check "random kill $i: no temporary files" [ -z "$(find "$T/r$i" -name '*.tmp')" ]
done

check "most random kills hit a running process ($killed_late late of 5; run takes ${total}s)" [ "$killed_late" -le 3 ]

# --resume refuses when the manifest changed.
manifest "$T/k1" | sed 's/rate: 0.9/rate: 0.8/' >"$T/changed.yaml"
rm -f "$T/k1/run.json"
"$WINNOW" run "$T/changed.yaml" --resume --no-progress 2>"$T/err"
check "changed manifest: resume refused" [ $? -ne 0 ]
check "changed manifest: says why" contains "$T/err" "changed since this run started"
finish
