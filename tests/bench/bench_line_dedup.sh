#!/usr/bin/env bash
# bench_line_dedup.sh - `make bench`: read -> line_dedup -> write throughput and peak
# memory on the synthetic JSONL.zst corpus of bench.sh (build/gen_corpus: English-like
# pages, ~10% exact duplicate documents, so ~5% of the lines repeat), with the
# stage's state under a 1 GiB budget (in memory) and under a tiny one (key runs
# spilled and merged, decision runs): the outputs must be identical. See BENCHMARKS.md.
#
#   BENCH_BYTES          uncompressed corpus size in bytes (default 1000000000; the
#                        corpus is shared with bench.sh when the sizes agree)
#   BENCH_LD_TINY        the tiny budget (default 256KiB)
#   BENCH_THREADS        threads (default: nproc)
#
# Files: build/bench/corpus.jsonl.zst (+ .stats, .bytes), line_dedup-*.yaml,
# run-line_dedup-*/, results-line_dedup.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

BYTES=${BENCH_BYTES:-1000000000}
TINY=${BENCH_LD_TINY:-256KiB}
THREADS=${BENCH_THREADS:-$(nproc)}
D=build/bench
CORPUS=$D/corpus.jsonl.zst
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
OUT=$D/results-line_dedup.txt

for f in ./winnow build/gen_corpus /usr/bin/time; do
    [[ -x $f ]] || { echo "bench: $f missing (run 'make bench'; /usr/bin/time is Debian's 'time' package)" >&2; exit 1; }
done
mkdir -p "$D"
now() { date +%s.%N; }

if [[ -f $CORPUS && -f $D/corpus.stats && "$(cat "$D/corpus.bytes" 2>/dev/null)" == "$BYTES" ]]; then
    echo "bench: reusing $CORPUS ($BYTES bytes requested)"
else
    rm -f "$CORPUS" "$D/corpus.stats" "$D/corpus.bytes"
    echo "bench: generating $CORPUS ($BYTES bytes uncompressed)"
    build/gen_corpus "$CORPUS.tmp" "$BYTES" 2>"$D/corpus.stats.tmp"
    mv "$D/corpus.stats.tmp" "$D/corpus.stats"
    mv "$CORPUS.tmp" "$CORPUS"
    echo "$BYTES" >"$D/corpus.bytes"
fi
RAW=$(tr ' ' '\n' <"$D/corpus.stats" | sed -n 's/^bytes=//p')

ROWS=()
for budget in 1GiB "$TINY"; do
    man=$D/line_dedup-$budget.yaml
    dir=$D/run-line_dedup-$budget
    cat >"$man" <<EOF
name: bench-line_dedup-$budget
workdir: $dir
memory: 4GiB
inputs:
  - path: $CORPUS
    format: jsonl
stages:
  - line_dedup: {memory: $budget}
outputs:
  documents: {shard_bytes: 256MB}
EOF
    rm -rf "$dir"
    echo "bench: ./winnow run $man --no-progress --threads $THREADS"
    t0=$(now)
    /usr/bin/time -v ./winnow run "$man" --no-progress --threads "$THREADS" 2>"$D/time-line_dedup-$budget.txt"
    t1=$(now)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$D/time-line_dedup-$budget.txt")
    sha=$(cd "$dir/documents" && cat part-*.jsonl.zst | sha256sum | cut -c1-16)
    ROWS+=("$budget|$t0|$t1|$rss|$dir|$sha")
done

python3 - "$RAW" "$THREADS" "$CPU" "${ROWS[@]}" <<'EOF' | tee "$OUT"
import glob, json, sys
raw, threads, cpu = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = [r.split("|") for r in sys.argv[4:]]
print(f"machine: {threads} threads, CPU: {cpu}")
print(f"corpus: {raw/1e6:.1f} MB JSONL (build/gen_corpus); pipeline: read -> line_dedup -> write\n")
hdr = (f"{'budget':<8} {'seconds':>8} {'MB/s':>7} {'stage MB/s':>10} {'stage s':>8} {'peak RSS MB':>11} "
       f"{'state MB':>8} {'runs':>5} {'merges':>6} {'dec runs':>8} {'lines':>10} {'removed':>9} output")
print(hdr); print("-" * len(hdr))
shas = set()
for budget, t0, t1, rss, d, sha in rows:
    secs = float(t1) - float(t0)
    r = json.load(open(glob.glob(d + "/stages/*-line_dedup/report.json")[0]))
    sp = r["spill"]
    shas.add(sha)
    print(f"{budget:<8} {secs:>8.2f} {raw/1e6/secs:>7.1f} {r['throughput']['mb_per_s']:>10.1f} {r['wall_seconds']:>8.2f} "
          f"{int(rss)/1024:>11.1f} {r['peak_memory_bytes']/2**20:>8.1f} {sp['runs']:>5} {sp['merge_passes']:>6} "
          f"{sp['decision_runs']:>8} {r['lines_total']:>10} {r['lines_removed']:>9} {sha}")
print("\nMB/s: uncompressed JSONL over the whole run's wall time; stage MB/s: the stage report's text MB in over "
      "its wall seconds (pass 1, decisions and emission); state MB: the stage's peak_memory_bytes (key and "
      "decision buffers, merge buffers, spill writer)")
same = len(shas) == 1
print(f"outputs identical across budgets: {'yes' if same else 'NO'}")
sys.exit(0 if same else 1)
EOF
echo "bench: results in $OUT"
