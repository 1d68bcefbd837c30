# test_score_device.sh - where the score stage's forward passes run. Without a GPU: `device: cuda`
# stops before any work with a clear message, and `auto` scores on the CPU (report device "cpu").
# With a GPU: `device: cuda` scores perplexity and excess loss with the GPU model (src/gpt_cuda.h)
# and agrees with the CPU run within 1e-4 relative, document by document.
. "$(dirname "$0")/lib.sh"

manifest() { # name, device
    cat <<YAML
name: $1
workdir: $T/$1
device: $2
inputs:
  - path: samples/web/web-000.jsonl.zst
datasets:
  target: {path: samples/target/*.jsonl.zst}
stages:
  - length_filter: {min_words: 20}
  - tokenize: {tokenizer: samples/tokenizer.json}
  - score: {methods: 'perplexity,excess_loss', train_reference: target, train_model: target, train_steps: 5, train_layers: 1, train_dim: 32, train_heads: 2, train_context: 64, train_batch: 4}
YAML
}
manifest cpu cpu >"$T/cpu.yaml"
manifest auto auto >"$T/auto.yaml"
manifest gpu cuda >"$T/gpu.yaml"
check "device cpu runs" "$WINNOW" run "$T/cpu.yaml" --no-progress 2>/dev/null
gpus=$("$WINNOW" --version | grep -c '^  cuda:' || true)
if [ "$gpus" -eq 0 ]; then
    check "device auto runs" "$WINNOW" run "$T/auto.yaml" --no-progress 2>/dev/null
    check "device auto without a GPU scores on the CPU" \
        bash -c "python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))[\"device\"] == \"cpu\"' $T/auto/stages/03-score/report.json"
    "$WINNOW" run "$T/gpu.yaml" --no-progress >"$T/gpu.out" 2>"$T/gpu.err"
    check "device cuda without a GPU fails" [ $? -ne 0 ]
    check "... saying why" bash -c "grep -qE 'no CUDA device is visible|built without CUDA' '$T/gpu.err'"
    echo "SKIP: no GPU visible: GPU scoring not compared with the CPU (checked the refusal and the CPU fallback)"
else
    check "device cuda runs" "$WINNOW" run "$T/gpu.yaml" --no-progress 2>/dev/null
    check "the report says cuda" \
        bash -c "python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))[\"device\"] == \"cuda\"' $T/gpu/stages/03-score/report.json"
    python3 - "$T/cpu" "$T/gpu" <<'PY' || fails=$((fails + 1))
import glob, json, subprocess, sys
def attrs(run):
    out = {}
    for f in sorted(glob.glob(run + "/documents/*.jsonl.zst")):
        for line in subprocess.run(["zstd", "-dc", f], capture_output=True, text=True).stdout.splitlines():
            r = json.loads(line)
            out[r["id"]] = r["winnow"]
    return out
a, b = attrs(sys.argv[1]), attrs(sys.argv[2])
assert a.keys() == b.keys() and a
worst = 0
for k in a:
    for key in ("ref_loss", "base_loss", "excess_loss"):
        x, y = a[k][key], b[k][key]
        worst = max(worst, abs(x - y) / max(1, abs(x)))
assert worst < 1e-4, worst
print(f"GPU vs CPU scores: {len(a)} documents, worst relative difference {worst:.2e}")
PY
fi
finish
