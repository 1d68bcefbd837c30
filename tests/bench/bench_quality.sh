#!/usr/bin/env bash
# bench_quality.sh - throughput of the four quality filters together
# (gopher_quality -> gopher_repetition -> c4_filter -> fineweb_quality, drop
# mode, defaults) on the synthetic bench corpus, at --threads 1 and 2. Reports
# MB/s per core = MB entering gopher_quality / (sum of the four stages' wall
# seconds x threads), from the stages' report.json. See BENCHMARKS.md.
#
# Files: build/bench/corpus.jsonl.zst (generated with 200 MB if missing),
# build/bench/quality.yaml, quality-run/, quality-results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=build/bench
CORPUS=$D/corpus.jsonl.zst
[[ -x ./winnow ]] || { echo "bench_quality: ./winnow missing (run 'make')" >&2; exit 1; }
mkdir -p "$D"
if [[ ! -f $CORPUS ]]; then
    make build/gen_corpus
    build/gen_corpus "$CORPUS" 200000000
fi
cat >"$D/quality.yaml" <<YAML
name: bench-quality
workdir: $D/quality-run
memory: 4GiB
inputs:
  - path: $CORPUS
    format: jsonl
stages:
  - gopher_quality: {}
  - gopher_repetition: {}
  - c4_filter: {}
  - fineweb_quality: {}
YAML
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
{
    echo "machine: nproc=$(nproc), CPU: $CPU; corpus $CORPUS ($(stat -c %s "$CORPUS") bytes zstd)"
    for th in 1 2; do
        rm -rf "$D/quality-run"
        ./winnow run "$D/quality.yaml" --no-progress --threads "$th" >/dev/null 2>&1
        python3 - "$D/quality-run" "$th" <<'PY'
import glob, json, sys
run, th = sys.argv[1], int(sys.argv[2])
rs = [json.load(open(f)) for f in sorted(glob.glob(f"{run}/stages/0[1-4]-*/report.json"))]
mb = rs[0]["bytes_in"] / 1e6
wall = sum(r["wall_seconds"] for r in rs)
print(f"threads={th}: {mb:.1f} MB in, four stages {wall:.2f} s wall -> {mb / wall:.1f} MB/s, "
      f"{mb / wall / th:.1f} MB/s per core")
for r in rs:
    print(f"  {r['stage']:<18} {r['bytes_in'] / 1e6:>8.1f} MB in {r['wall_seconds']:>7.2f} s "
          f"{r['throughput']['mb_per_s']:>7.1f} MB/s  docs {r['docs_in']} -> {r['docs_out']}")
PY
    done
} | tee "$D/quality-results.txt"
