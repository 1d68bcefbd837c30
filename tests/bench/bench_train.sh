#!/usr/bin/env bash
# bench_train.sh - `make bench`: CPU training throughput of `winnow train` for one fixed small
# model (L=4, C=128, H=4, T=128, B=8, V=4096: 1.3 M parameters) on random-token shards, at
# --threads 1 and 2 (and nproc when larger). Prints tokens/s, ms per step and GFLOP/s (the
# model's own FLOP count per step, wn_gpt_flops_per_step), and checks that every thread count
# wrote the same model (results do not depend on the thread count). See BENCHMARKS.md.
#
#   BENCH_TRAIN_STEPS   steps per run (default 30)
#
# Files: build/bench/train/data/*.bin (1 M random tokens, uniform over 4096 ids, seeded),
# build/bench/train/t<N>/ (each run's output), results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

STEPS=${BENCH_TRAIN_STEPS:-30}
D=build/bench/train
NPROC=$(nproc)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
[[ -x ./winnow ]] || { echo "bench_train: ./winnow missing (run 'make bench')" >&2; exit 1; }
mkdir -p "$D/data"

if [[ ! -f $D/data/train_000000.bin ]]; then
    python3 - "$D/data" <<'EOF'
import random, struct, sys
random.seed(20240520)
n = 1_000_000
toks = [random.randrange(4096) for _ in range(n)]
with open(f"{sys.argv[1]}/train_000000.bin.tmp", "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *[0] * 253))
    f.write(struct.pack(f"<{n}H", *toks))
import os; os.rename(f"{sys.argv[1]}/train_000000.bin.tmp", f"{sys.argv[1]}/train_000000.bin")
EOF
fi

THREADS="1 2"
((NPROC > 2)) && THREADS="$THREADS $NPROC"
for t in $THREADS; do
    rm -rf "$D/t$t"
    echo "bench_train: ./winnow train --data '$D/data/*.bin' --out $D/t$t --layers 4 --dim 128 --heads 4" \
         "--context 128 --batch 8 --steps $STEPS --threads $t"
    ./winnow train --data "$D/data/*.bin" --out "$D/t$t" --layers 4 --dim 128 --heads 4 --context 128 \
        --batch 8 --steps "$STEPS" --threads "$t" --lr 1e-3 2>"$D/t$t.log"
done

python3 - "$D" "$NPROC" "$CPU" $THREADS <<'EOF' | tee "$D/results.txt"
import json, sys
d, nproc, cpu, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
print(f"machine: nproc={nproc}, CPU: {cpu}")
j0 = json.load(open(f"{d}/t{threads[0]}/train.json"))
m = j0["model"]
print(f"model: L={m['layers']} C={m['dim']} H={m['heads']} T={m['context']} V={m['vocab']}, {m['params']/1e6:.2f} M parameters, "
      f"B={j0['config']['batch']}, {m['flops_per_step']/1e9:.2f} GFLOP per step, {j0['steps']} steps\n")
hdr = f"{'threads':>7} {'tokens/s':>10} {'ms/step':>9} {'GFLOP/s':>8} {'speedup':>8}"
print(hdr); print("-" * len(hdr))
base = None
for t in threads:
    j = json.load(open(f"{d}/t{t}/train.json"))
    tps = j["tokens_per_second"]
    tok_step = j["tokens"] / j["steps"]
    ms = tok_step / tps * 1e3
    base = base or tps
    print(f"{t:>7} {tps:>10.0f} {ms:>9.1f} {j['model']['flops_per_step'] / (ms / 1e3) / 1e9:>8.2f} {tps / base:>8.2f}")
EOF
for t in $THREADS; do
    cmp -s "$D/t${THREADS%% *}/model.safetensors" "$D/t$t/model.safetensors" ||
        { echo "bench_train: --threads $t wrote a different model" >&2; exit 1; }
done
echo "bench_train: models identical across thread counts"
