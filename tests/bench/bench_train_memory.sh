#!/usr/bin/env bash
# bench_train_memory.sh - `make bench`: what `winnow train --adam-8bit` and `--recompute` cost and save
# on the CPU, for one model on random-token shards (the data of bench_train.sh): peak RSS (/usr/bin/time)
# against the `--plan` total, tokens/s and CPU seconds per step, for the four combinations, one thread
# each. Checks that --recompute wrote the same models. See BENCHMARKS.md ("Memory-lean options").
#
#   BENCH_MEM_STEPS   steps per run (default 20)
#   BENCH_MEM_SHAPE   model flags (default: --layers 8 --dim 256 --heads 4 --context 256 --batch 8)
#
# Files: build/bench/train/data/*.bin (made by bench_train.sh; made here too when missing),
# build/bench/train-mem/<mode>/ (each run), results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

STEPS=${BENCH_MEM_STEPS:-20}
read -r -a SHAPE <<<"${BENCH_MEM_SHAPE:---layers 8 --dim 256 --heads 4 --context 256 --batch 8}"
D=build/bench/train-mem
DATA=build/bench/train/data
[[ -x ./winnow ]] || { echo "bench_train_memory: ./winnow missing (run 'make bench')" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench_train_memory: needs /usr/bin/time (Debian package 'time')" >&2; exit 1; }
if [[ ! -f $DATA/train_000000.bin ]]; then
    mkdir -p "$DATA"
    python3 - "$DATA" <<'EOF'
import random, struct, sys
random.seed(20240520)
n = 1_000_000
toks = [random.randrange(4096) for _ in range(n)]
with open(f"{sys.argv[1]}/train_000000.bin", "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *[0] * 253))
    f.write(struct.pack(f"<{n}H", *toks))
EOF
fi
mkdir -p "$D"
declare -A FLAGS=([plain]="" [adam8]="--adam-8bit" [recompute]="--recompute" [both]="--adam-8bit --recompute")
MODES="plain adam8 recompute both"
for mode in $MODES; do
    rm -rf "${D:?}/$mode"
    # shellcheck disable=SC2086
    ./winnow train --plan "${SHAPE[@]}" --vocab 4096 ${FLAGS[$mode]} >"$D/$mode.plan"
    echo "bench_train_memory: ./winnow train --data '$DATA/*.bin' --out $D/$mode ${SHAPE[*]} --steps $STEPS" \
         "--threads 1 ${FLAGS[$mode]}"
    # shellcheck disable=SC2086
    /usr/bin/time -v ./winnow train --data "$DATA/*.bin" --out "$D/$mode" "${SHAPE[@]}" --steps "$STEPS" \
        --threads 1 --lr 1e-3 ${FLAGS[$mode]} 2>"$D/$mode.log"
done
python3 - "$D" "$(nproc)" $MODES <<'EOF' | tee "$D/results.txt"
import json, re, sys
d, nproc, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
j0 = json.load(open(f"{d}/{modes[0]}/train.json"))
m = j0["model"]
print(f"machine: nproc={nproc}; one thread per run")
print(f"model: L={m['layers']} C={m['dim']} H={m['heads']} T={m['context']} V={m['vocab']}, "
      f"{m['params']/1e6:.2f} M parameters, B={j0['config']['batch']}, {j0['steps']} steps\n")
hdr = (f"{'mode':<10} {'plan MiB':>9} {'moments':>8} {'activ.':>8} {'peak RSS MiB':>13} {'tokens/s':>9} "
       f"{'CPU s/step':>11} {'vs plain':>9}")
print(hdr); print("-" * len(hdr))
base = None
for mode in modes:
    j = json.load(open(f"{d}/{mode}/train.json"))
    log = open(f"{d}/{mode}.log").read()
    num = lambda what: float(re.search(what + r": ([0-9.]+)", log).group(1))
    rss = num(r"Maximum resident set size \(kbytes\)") / 1024
    # CPU time (user + system, start-up and checkpoint included) is steadier than the wall time
    # on a machine that other work shares
    cpu = (num(r"User time \(seconds\)") + num(r"System time \(seconds\)")) / j["steps"]
    mem = j["memory"]
    base = base or cpu
    mib = lambda b: b / 2**20
    print(f"{mode:<10} {mib(mem['total_bytes']):>9.1f} {mib(mem['optimizer_bytes']):>8.1f} "
          f"{mib(mem['activations_bytes']):>8.1f} {rss:>13.1f} {j['tokens_per_second']:>9.0f} {cpu:>11.3f} "
          f"{cpu / base:>9.2f}")
EOF
cmp -s "$D/plain/model.safetensors" "$D/recompute/model.safetensors" ||
    { echo "bench_train_memory: --recompute wrote a different model" >&2; exit 1; }
cmp -s "$D/adam8/model.safetensors" "$D/both/model.safetensors" ||
    { echo "bench_train_memory: --recompute changed the 8-bit run's model" >&2; exit 1; }
echo "bench_train_memory: --recompute wrote the same models"
