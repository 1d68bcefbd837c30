#!/usr/bin/env bash
# bench_minhash.sh - minhash_dedup's throughput and memory (part of `make bench`):
#   - signatures per second per core: the stage's own count (normalize + shingle + 112
#     permutations + band keys, per document) from its single-thread runs;
#   - end-to-end time, CPU time (user + system) and peak RSS (/usr/bin/time) of `winnow run`
#     with a read -> minhash_dedup -> write pipeline on N generated documents (build/gen_corpus:
#     web-like English, 200 B to 20 KB, about 3.3 KB on average, 10% exact duplicates), with
#     the memory budget BENCH_MINHASH_MEMORY, for each thread count;
#   - the largest N once more with the small budget BENCH_MINHASH_SMALL at the last thread
#     count (the LSH tables spill sorted runs);
#   - for every run, whether the process's peak RSS stayed within its budget (`memory:` bounds
#     the process: the tables get the budget less the reserve the report shows, spill.reserve_bytes).
#
#   BENCH_MINHASH_DOCS     document counts (default "100000 1000000")
#   BENCH_MINHASH_THREADS  thread counts (default "1 2")
#   BENCH_MINHASH_MEMORY   budget (default 1GiB)
#   BENCH_MINHASH_SMALL    the spill run's budget (default 256MiB; empty: skip it)
#   BENCH_MINHASH_PARAMS   the stage's parameters (default none: verify on, 14 x 8)
#
# Files under build/bench-minhash/: source.jsonl.zst (generated once, for the largest N; not
# needed again once every corpus-N.jsonl.zst exists, so it may be deleted to save disk), the
# corpora, the runs (their documents are deleted after each run), results.txt. Exits non-zero
# when a run at a budget of at least twice its reserve went over it.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCS=${BENCH_MINHASH_DOCS:-100000 1000000}
THREADS=${BENCH_MINHASH_THREADS:-1 2}
MEM=${BENCH_MINHASH_MEMORY:-1GiB}
SMALL=${BENCH_MINHASH_SMALL-256MiB}
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
missing=0
for n in $DOCS; do [[ -f $D/corpus-$n.jsonl.zst ]] || missing=1; done
if ((missing)) && [[ ! -f $D/source.jsonl.zst || $(cat "$D/source.docs" 2>/dev/null || echo 0) -lt $max ]]; then
    echo "bench_minhash: generating about $max documents"
    build/gen_corpus "$D/source.jsonl.zst" $((max * 3400 + 10000000)) 11 2>"$D/source.stats"
    sed -n 's/^docs=\([0-9]*\).*/\1/p' "$D/source.stats" >"$D/source.docs"
    rm -f "$D"/corpus-*.jsonl.zst
fi
have=$(cat "$D/source.docs" 2>/dev/null || echo 0)
((!missing || have >= max)) || { echo "bench_minhash: the generator gave $have documents, fewer than $max" >&2; exit 1; }
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
    printf '%-9s %-6s %-7s %-3s %-8s %-8s %-8s %-8s %-7s %-8s %-9s %-8s %-8s %-7s %-8s %-5s\n' docs MB budget thr \
        wall_s cpu_s stage_s stage_cpu sigs/s rss_MiB table_MiB rsv_MiB peak_MiB removed bk/pr_runs 'rss<=budget'
} | tee "$OUT"
over=0
one() { # docs, threads, memory
    local n=$1 t=$2 mem=$3 name="run-$1-t$2-$3"
    manifest "$name" "$D/corpus-$n.jsonl.zst" "$mem" >"$D/$name.yaml"
    local tm
    tm=$( { /usr/bin/time -f '%e %M %U %S' ./winnow run "$D/$name.yaml" --threads "$t" --no-progress 2>&1 >/dev/null; } | tail -1)
    python3 - "$D/$name/stages/01-minhash_dedup/report.json" "$n" "$t" "$mem" $tm <<'PY' | tee -a "$OUT"
import json, sys
r = json.load(open(sys.argv[1]))
n, t, mem = sys.argv[2], int(sys.argv[3]), sys.argv[4]
wall, rss_kb, cpu = float(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]) + float(sys.argv[8])
sp, s = r["speed"]["signatures_per_second"], r["spill"]
budget, table = s["memory_budget_bytes"], s["table_budget_bytes"]
ok = "yes" if rss_kb * 1024 <= budget else "NO" if budget >= 2 * s["reserve_bytes"] else "no*"
print(f"{n:<9} {r['bytes_in'] / 1e6:<6.0f} {mem:<7} {t:<3} {wall:<8.1f} {cpu:<8.1f} {r['wall_seconds']:<8.1f} "
      f"{r['cpu_seconds']:<9.1f} {sp:<7.0f} {rss_kb / 1024:<8.0f} {table / 2**20:<9.0f} {s['reserve_bytes'] / 2**20:<8.0f} "
      f"{r['peak_memory_bytes'] / 2**20:<8.0f} {r['removed']:<7} {s['bucket_runs']}/{s['pair_runs']:<6} {ok}")
PY
    grep -q ' NO$' "$OUT" && over=1
    rm -rf "$D/$name/documents"
}
for n in $DOCS; do
    for t in $THREADS; do one "$n" "$t" "$MEM"; done
done
if [[ -n $SMALL ]]; then
    t=$(echo "$THREADS" | awk '{print $NF}')
    one "$max" "$t" "$SMALL"
fi
echo "bench_minhash: results in $OUT (rss<=budget: no* = a budget under twice the reserve, which it cannot hold)"
((!over)) || { echo "bench_minhash: a run went over its memory budget" >&2; exit 1; }
