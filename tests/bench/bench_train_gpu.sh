#!/usr/bin/env bash
# bench_train_gpu.sh - GPU training throughput of `winnow train --device cuda` for a GPT-2
# small shaped model (L=12, C=768, H=12, T=1024, V=50257: 124.4 M parameters) on random-token
# shards, in full fp32 and with --tf32. Prints tokens/s, ms per step, achieved TFLOP/s (the
# model's own FLOP count per step, wn_gpt_flops_per_step: 6 N per token plus attention) and
# MFU against the device's dense peak for that precision (fp32 CUDA cores, or TF32 tensor
# cores; NVIDIA datasheet figures without sparsity, from src/gpt_cuda.c's table, e.g. H100
# SXM: 67 TFLOP/s fp32, 494.7 TFLOP/s TF32). One call on a GPU machine does everything
# (builds ./winnow with `make` if it is missing or is not a CUDA build).
#
# Steady state: each precision trains twice from the same seed, for S and S + BENCH_GPU_STEPS
# steps; the difference of the two training times (tokens / tokens_per_second in train.json,
# which excludes start-up, validation and checkpoints) is the time of BENCH_GPU_STEPS steps
# after the first S (cuBLAS loading, allocation, warm-up).
#
#   BENCH_GPU_BATCH   sequences per step B (default 16: about 30 GB of device memory)
#   BENCH_GPU_STEPS   steady steps measured (default 10); BENCH_GPU_WARMUP = S (default 3)
#
# Without a CUDA device (or a CUDA build) it prints a SKIP line and exits 0. Files:
# build/bench/train_gpu/data/*.bin, one directory per run, results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

B=${BENCH_GPU_BATCH:-16}
STEPS=${BENCH_GPU_STEPS:-10}
WARM=${BENCH_GPU_WARMUP:-3}
D=build/bench/train_gpu

if ! ./winnow --version 2>/dev/null | grep -q "CUDA build"; then
    if command -v nvcc >/dev/null 2>&1; then
        echo "bench_train_gpu: building ./winnow with CUDA"
        make -j"$(nproc)" CUDA=1 >/dev/null
    else
        echo "SKIP: bench_train_gpu: no nvcc: cannot build the CUDA trainer"
        exit 0
    fi
fi
VERSION=$(./winnow --version)
if grep -q "; 0 CUDA devices" <<<"$VERSION"; then
    echo "SKIP: bench_train_gpu: no CUDA device visible ($VERSION)"
    exit 0
fi
echo "$VERSION"

mkdir -p "$D/data"
NTOK=$(((WARM + STEPS) * B * 1024 + 1))
if [[ ! -f $D/data/train_000000.bin ]] || (($(stat -c %s "$D/data/train_000000.bin") < 1024 + 2 * NTOK)); then
    python3 - "$D/data" "$NTOK" <<'EOF'
import os, random, struct, sys
random.seed(20240520)
n = max(int(sys.argv[2]), 1_000_000)
toks = [random.randrange(50257) for _ in range(n)]
tmp = f"{sys.argv[1]}/train_000000.bin.tmp"
with open(tmp, "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *[0] * 253))
    f.write(struct.pack(f"<{n}H", *toks))
os.rename(tmp, f"{sys.argv[1]}/train_000000.bin")
EOF
fi

run() { # name, steps, extra flags...
    local name=$1 steps=$2; shift 2
    rm -rf "${D:?}/$name"
    echo "bench_train_gpu: ./winnow train --device cuda${*:+ $*} --layers 12 --dim 768 --heads 12 --context 1024" \
         "--batch $B --steps $steps (vocabulary 50257)"
    if ! ./winnow train --data "$D/data/*.bin" --out "$D/$name" --device cuda "$@" --layers 12 --dim 768 \
        --heads 12 --context 1024 --batch "$B" --steps "$steps" --lr 6e-4 --warmup 0 --checkpoint-every 0 \
        --seed 1 2>"$D/$name.log"; then
        cat "$D/$name.log" >&2
        echo "bench_train_gpu: $name failed (lower BENCH_GPU_BATCH if the device ran out of memory)" >&2
        exit 1
    fi
}
run fp32-a "$WARM"
run fp32-b "$((WARM + STEPS))"
run tf32-a "$WARM" --tf32
run tf32-b "$((WARM + STEPS))" --tf32
run bf16-a "$WARM" --bf16
run bf16-b "$((WARM + STEPS))" --bf16

python3 - "$D" "$VERSION" <<'EOF' | tee "$D/results.txt"
import json, math, sys
d, version = sys.argv[1], sys.argv[2]
def load(name): return json.load(open(f"{d}/{name}/train.json"))
j = load("fp32-b")
m = j["model"]
B, T = j["config"]["batch"], m["context"]
fps = m["flops_per_step"]
print(f"device: {j.get('device_name')}")
print(f"model: L={m['layers']} C={m['dim']} H={m['heads']} T={T} V={m['vocab']}, {m['params'] / 1e6:.2f} M parameters, "
      f"B={B} ({B * T} tokens/step), {fps / 1e12:.2f} TFLOP per step (wn_gpt_flops_per_step)\n")
hdr = f"{'precision':<10} {'tokens/s':>10} {'ms/step':>9} {'TFLOP/s':>8} {'MFU':>7} {'GiB used':>9}  peak used for MFU"
print(hdr); print("-" * (len(hdr) + 30))
for p in ("fp32", "tf32", "bf16"):
    a, b = load(f"{p}-a"), load(f"{p}-b")
    assert a["device"] == b["device"] == "cuda", "did not train on the GPU"
    assert all(math.isfinite(x) for x in b["train_loss"]), "non-finite loss"
    ta = a["tokens"] / a["tokens_per_second"]
    tb = b["tokens"] / b["tokens_per_second"]
    steps = b["steps"] - a["steps"]
    tps = (b["tokens"] - a["tokens"]) / (tb - ta)
    ms = (tb - ta) / steps * 1e3
    tflops = fps / (ms / 1e3) / 1e12
    peak = b.get("peak_flops") or 0
    mfu = f"{100 * tflops * 1e12 / peak:6.1f}%" if peak else "    n/a"
    mem = b.get("device_memory_used_bytes", 0) / 2**30
    print(f"{p:<10} {tps:>10.0f} {ms:>9.1f} {tflops:>8.2f} {mfu} {mem:>9.1f}  {b.get('peak_flops_what')}")
    print(f"{'':<10} loss step 1 {b['train_loss'][0]:.4f} (ln V = {math.log(m['vocab']):.4f}), "
          f"step {b['steps']} {b['train_loss'][-1]:.4f}; whole run incl. warm-up: {b['tokens_per_second']:.0f} tokens/s")
EOF
