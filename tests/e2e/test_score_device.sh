# test_score_device.sh - where the score stage's forward passes run. Without a GPU: `device: cuda`
# stops before any work with a clear message, and `auto` scores on the CPU (report device "cpu").
# With a GPU: `device: cuda` scores perplexity, excess loss, EL2N and gradient features with the
# GPU model (src/gpt_cuda.h; the partial backward and the projection on the device) and agrees
# with the CPU run document by document: losses and EL2N within 1e-4 relative, the gradient
# norm within 1e-3 relative and the gradient cosine within 1e-3 absolute.
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
  - score: {methods: 'perplexity,excess_loss,el2n,gradient', target: target, train_reference: target, train_model: target, train_steps: 5, train_layers: 1, train_dim: 32, train_heads: 2, train_context: 64, train_batch: 4, grad_dim: 8}
YAML
}
manifest cpu cpu >"$T/cpu.yaml"
manifest auto auto >"$T/auto.yaml"
manifest gpu cuda >"$T/gpu.yaml"
check "device cpu runs" "$WINNOW" run "$T/cpu.yaml" --no-progress 2>/dev/null
# `winnow run --device` overrides the manifest: the cuda manifest on the CPU gives the CPU run's scores
check "run --device cpu overrides device: cuda" "$WINNOW" run "$T/gpu.yaml" --device cpu --no-progress 2>/dev/null
check "... and the report says cpu" \
    bash -c "python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))[\"device\"] == \"cpu\"' $T/gpu/stages/03-score/report.json"
check "... with the CPU run's documents" cmp <(cd "$T/cpu/documents" && zstd -dc part-*.jsonl.zst) \
    <(cd "$T/gpu/documents" && zstd -dc part-*.jsonl.zst)
"$WINNOW" run "$T/cpu.yaml" --device gpu --no-progress >/dev/null 2>"$T/bad.err"
check "run --device gpu is a usage error (exit 2)" [ $? -eq 2 ]
check "... that names the value" grep -q "expected cpu, cuda or auto, got 'gpu'" "$T/bad.err"
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
worst = {}
for k in a:
    for key in ("ref_loss", "base_loss", "excess_loss", "el2n", "grad_norm", "grad_cos"):
        x, y = a[k][key], b[k][key]
        d = abs(x - y) if key == "grad_cos" else abs(x - y) / max(1e-12, abs(x))
        worst[key] = max(worst.get(key, 0), d)
print(f"GPU vs CPU scores, {len(a)} documents, worst difference (relative; grad_cos absolute): " +
      ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
limit = {"grad_norm": 1e-3, "grad_cos": 1e-3}
bad = [k for k, v in worst.items() if not v <= limit.get(k, 1e-4)]
assert not bad, bad
PY
fi
finish
