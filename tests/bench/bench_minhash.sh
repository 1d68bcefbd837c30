#!/usr/bin/env bash
# bench_minhash.sh - minhash_dedup's throughput and memory (part of `make bench`):
#   - signatures per second per core: the stage's own count (normalize + shingle + 112
#     permutations + band keys, per document) from its single-thread runs;
#   - end-to-end time and peak RSS (/usr/bin/time) of `winnow run` with a read -> minhash_dedup
#     -> write pipeline on N generated documents (build/gen_corpus: web-like English, 200 B to
#     20 KB, about 3.3 KB on average, 10% exact duplicates), with the memory budget
#     BENCH_MINHASH_MEMORY, for 1 and 2 threads;
#   - the largest N once more with the small budget BENCH_MINHASH_SMALL (the LSH tables spill
#     sorted runs), to show the process stays within it.
#
#   BENCH_MINHASH_DOCS     document counts (default "100000 1000000")
#   BENCH_MINHASH_THREADS  thread counts (default "1 2")
#   BENCH_MINHASH_MEMORY   budget (default 1GiB)
#   BENCH_MINHASH_SMALL    the spill run's budget (default 64MiB; empty: skip it)
#   BENCH_MINHASH_PARAMS   the stage's parameters (default none: verify on, 14 x 8)
#
# Files under build/bench-minhash/: corpus-N.jsonl.zst, the runs, results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCS=${BENCH_MINHASH_DOCS:-100000 1000000}
THREADS=${BENCH_MINHASH_THREADS:-1 2}
MEM=${BENCH_MINHASH_MEMORY:-1GiB}
SMALL=${BENCH_MINHASH_SMALL-64MiB}
PARAMS=${BENCH_MINHASH_PARAMS:-}
D=$PWD/build/bench-minhash
OUT=$D/results.txt
for f in ./winnow build/gen_corpus /usr/bin/time; do
    [[ -x $f ]] || { echo "bench_minhash: $f missing (run 'make bench'; /usr/bin/time is Debian's 'time')" >&2; exit 1; }
done
mkdir -p "$D"
max=0
for n in $DOCS; do ((n > max)) && max=$n; done

# ---- corpora: the first N records of one generated file --------------------------------------
if [[ ! -f $D/source.jsonl.zst || $(cat "$D/source.docs" 2>/dev/null || echo 0) -lt $max ]]; then
    echo "bench_minhash: generating about $max documents"
    build/gen_corpus "$D/source.jsonl.zst" $((max * 3400 + 10000000)) 11 2>"$D/source.stats"
    sed -n 's/^docs=\([0-9]*\).*/\1/p' "$D/source.stats" >"$D/source.docs"
    rm -f "$D"/corpus-*.jsonl.zst
fi
have=$(cat "$D/source.docs")
((have >= max)) || { echo "bench_minhash: the generator gave $have documents, fewer than $max" >&2; exit 1; }
for n in $DOCS; do
    c=$D/corpus-$n.jsonl.zst
    [[ -f $c ]] || { { zstd -dc "$D/source.jsonl.zst" 2>/dev/null || true; } | head -n "$n" | zstd -q -f -3 -T0 -o "$c.tmp"
                     mv "$c.tmp" "$c"; }
done

manifest() { # name, corpus, memory
    cat <<EOF
name: $1
workdir: $D/$1
memory: $3
inputs:
  - path: $2
stages:
  - minhash_dedup: {$PARAMS}
outputs:
  documents: {shard_bytes: 256MB}
EOF
}

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
{
    echo "bench_minhash: $cpu, nproc $(nproc), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), params {$PARAMS}"
    printf '%-9s %-8s %-7s %-8s %-9s %-9s %-12s %-10s %-9s %-12s %-8s %-11s\n' docs MB budget threads wall_s \
        stage_s sigs/s sigs/s/thr rss_MiB stage_peak_MiB removed bucket_runs
} | tee "$OUT"
one() { # docs, threads, memory
    local n=$1 t=$2 mem=$3 name="run-$1-t$2-$3"
    manifest "$name" "$D/corpus-$n.jsonl.zst" "$mem" >"$D/$name.yaml"
    local tm
    tm=$( { /usr/bin/time -f '%e %M' ./winnow run "$D/$name.yaml" --threads "$t" --no-progress 2>&1 >/dev/null; } | tail -1)
    python3 - "$D/$name/stages/01-minhash_dedup/report.json" "$n" "$t" "$mem" $tm <<'PY' | tee -a "$OUT"
import json, sys
r = json.load(open(sys.argv[1]))
n, t, mem, wall, rss_kb = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), int(sys.argv[6])
sp = r["speed"]["signatures_per_second"]
print(f"{n:<9} {r['bytes_in'] / 1e6:<8.0f} {mem:<7} {t:<8} {wall:<9.1f} {r['wall_seconds']:<9.1f} {sp:<12.0f} "
      f"{sp / t:<10.0f} {rss_kb / 1024:<9.0f} {r['peak_memory_bytes'] / 2**20:<14.1f} {r['removed']:<8} "
      f"{r['spill']['bucket_runs']:<11}")
PY
    rm -rf "$D/$name/documents"
}
for n in $DOCS; do
    for t in $THREADS; do one "$n" "$t" "$MEM"; done
done
if [[ -n $SMALL ]]; then
    t=$(echo "$THREADS" | awk '{print $NF}')
    one "$max" "$t" "$SMALL"
fi
echo "bench_minhash: results in $OUT"
