#!/usr/bin/env bash
# bench.sh - `make bench`: read -> normalize -> exact_dedup -> write throughput and
# peak memory on a synthetic JSONL.zst corpus, next to the floor of
# `zstd -dc FILE > /dev/null` on the same file. See BENCHMARKS.md.
#
#   BENCH_BYTES          uncompressed corpus size in bytes (default 1000000000)
#   BENCH_SPILL_MEMORY   exact_dedup memory budget of the spill run (default 1MiB:
#                        1 GB holds ~300k unique texts, a 16 MiB key table, so a
#                        64MiB budget would never spill)
#
# Files: build/bench/corpus.jsonl.zst (+ .stats, .bytes), bench.yaml,
# bench-spill.yaml, run/ (the --threads N run), run-spill/, results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

BYTES=${BENCH_BYTES:-1000000000}
SPILL_MEM=${BENCH_SPILL_MEMORY:-1MiB}
D=build/bench
CORPUS=$D/corpus.jsonl.zst
NPROC=$(nproc)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
OUT=$D/results.txt

for f in ./winnow build/gen_corpus /usr/bin/time; do
    [[ -x $f ]] || { echo "bench: $f missing (run 'make bench'; /usr/bin/time is Debian's 'time' package)" >&2; exit 1; }
done
command -v zstd >/dev/null || { echo "bench: zstd CLI missing" >&2; exit 1; }
mkdir -p "$D"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; } # T0 T1 -> seconds
# stat FILE KEY: a key=value field of the generator's stats line
stat_of() { tr ' ' '\n' <"$D/corpus.stats" | sed -n "s/^$1=//p"; }

# ---- corpus ---------------------------------------------------------------
if [[ -f $CORPUS && -f $D/corpus.stats && "$(cat "$D/corpus.bytes" 2>/dev/null)" == "$BYTES" ]]; then
    echo "bench: reusing $CORPUS ($BYTES bytes requested)"
else
    rm -f "$CORPUS" "$D/corpus.stats" "$D/corpus.bytes"
    echo "bench: generating $CORPUS ($BYTES bytes uncompressed)"
    t0=$(now)
    build/gen_corpus "$CORPUS.tmp" "$BYTES" 2>"$D/corpus.stats.tmp"
    t1=$(now)
    mv "$D/corpus.stats.tmp" "$D/corpus.stats"
    mv "$CORPUS.tmp" "$CORPUS"
    echo "$BYTES" >"$D/corpus.bytes"
    echo "bench: generated in $(elapsed "$t0" "$t1") s"
fi
echo "bench: corpus: $(cat "$D/corpus.stats")"
RAW=$(stat_of bytes)
COMP=$(stat -c %s "$CORPUS")
GEN_DUPS=$(stat_of exact_dups)
GEN_UNIQ=$(stat_of unique)

# ---- manifests ------------------------------------------------------------
manifest() { # NAME WORKDIR DEDUP_PARAMS
    cat <<EOF
name: $1
workdir: $2
memory: 4GiB
inputs:
  - path: $CORPUS
    format: jsonl
stages:
  - normalize: {form: nfc}
  - exact_dedup: $3
outputs:
  documents: {shard_bytes: 256MB}
EOF
}
manifest bench "$D/run" '{}' >"$D/bench.yaml"
manifest bench-spill "$D/run-spill" "{memory: $SPILL_MEM}" >"$D/bench-spill.yaml"

# ---- (a) the floor: zstd -dc, best of 3 -------------------------------------
cat "$CORPUS" >/dev/null # page cache warm for everyone
ZSTD_S=
for i in 1 2 3; do
    t0=$(now); zstd -dc "$CORPUS" >/dev/null; t1=$(now)
    s=$(elapsed "$t0" "$t1")
    echo "bench: zstd -dc run $i: $s s"
    if [[ -z $ZSTD_S ]] || python3 -c "import sys; sys.exit(0 if $s < $ZSTD_S else 1)"; then ZSTD_S=$s; fi
done
ZSTD_RSS_KB=$(/usr/bin/time -f %M sh -c "zstd -dc '$CORPUS' >/dev/null" 2>&1 >/dev/null | tail -1)

# ---- (b), (c) winnow runs ---------------------------------------------------
ROWS=()   # label|seconds|rss_kb|run_dir
run_winnow() { # LABEL MANIFEST RUN_DIR THREADS
    local label=$1 man=$2 dir=$3 thr=$4 t0 t1 rss
    rm -rf "$dir"
    echo "bench: ./winnow run $man --no-progress --threads $thr"
    t0=$(now)
    /usr/bin/time -v ./winnow run "$man" --no-progress --threads "$thr" 2>"$D/time-$label.txt"
    t1=$(now)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$D/time-$label.txt")
    ./winnow report "$dir" >"$D/report-$label.txt"
    (cd "$dir/documents" && cat part-*.jsonl.zst | sha256sum | cut -c1-16) >"$D/docs-$label.sha"
    ROWS+=("$label|$(elapsed "$t0" "$t1")|$rss|$dir")
}
run_winnow "threads=1" "$D/bench.yaml" "$D/run" 1
rm -rf "$D/stages-threads=1" && cp -r "$D/run/stages" "$D/stages-threads=1" # run/ is reused below
if ((NPROC > 1)); then run_winnow "threads=$NPROC" "$D/bench.yaml" "$D/run" "$NPROC"; fi
run_winnow "spill-$SPILL_MEM,threads=$NPROC" "$D/bench-spill.yaml" "$D/run-spill" "$NPROC"

# ---- table ------------------------------------------------------------------
python3 - "$RAW" "$COMP" "$ZSTD_S" "$ZSTD_RSS_KB" "$NPROC" "$CPU" "$GEN_DUPS" "$GEN_UNIQ" "$D" "${ROWS[@]}" <<'EOF' | tee "$OUT"
import json, os, sys, glob
raw, comp, zs, zrss, nproc, cpu, gdups, guniq, d = sys.argv[1:10]
raw, comp, zs, zrss, gdups, guniq = int(raw), int(comp), float(zs), int(zrss), int(gdups), int(guniq)
rows = [r.split("|") for r in sys.argv[10:]]
print(f"machine: nproc={nproc}, CPU: {cpu}")
print(f"corpus: {raw/1e6:.1f} MB JSONL, {comp/1e6:.1f} MB zstd; generator inserted {gdups} exact duplicates, {guniq} unique texts\n")
hdr = f"{'run':<28} {'uncomp MB':>9} {'comp MB':>8} {'seconds':>8} {'MB/s':>7} {'x floor':>8} {'peak RSS MB':>11}"
print(hdr); print("-" * len(hdr))
print(f"{'zstd -dc > /dev/null (best/3)':<28} {raw/1e6:>9.1f} {comp/1e6:>8.1f} {zs:>8.2f} {raw/1e6/zs:>7.1f} {1.0:>8.2f} {zrss/1024:>11.1f}")
stage_cols, ok = [], True
for label, secs, rss, rdir in rows:
    secs = float(secs)
    print(f"{'winnow ' + label:<28} {raw/1e6:>9.1f} {comp/1e6:>8.1f} {secs:>8.2f} {raw/1e6/secs:>7.1f} {secs/zs:>8.2f} {int(rss)/1024:>11.1f}")
    src = os.path.join(d, "stages-threads=1") if label == "threads=1" else os.path.join(rdir, "stages")
    st = {}
    for f in sorted(glob.glob(os.path.join(src, "*", "report.json"))):
        st[os.path.basename(os.path.dirname(f))] = json.load(open(f))
    stage_cols.append((label, st))
print("\nper-stage MB/s (stage reports: MB in / stage wall seconds; 00-read MB in is compressed bytes)")
names = sorted({n for _, st in stage_cols for n in st})
print(f"{'stage':<16}" + "".join(f"{l:>30}" for l, _ in stage_cols))
for n in names:
    cells = []
    for _, st in stage_cols:
        r = st.get(n)
        cells.append(f"{r['throughput']['mb_per_s']:>8.1f} MB/s {r['wall_seconds']:>7.2f} s" if r else "-")
    print(f"{n:<16}" + "".join(f"{c:>30}" for c in cells))
print("\nchecks")
shas = set()
for label, st in stage_cols:
    ed = st.get("02-exact_dedup", {})
    drop = ed.get("dropped", {}).get("duplicate", 0)
    good = drop == gdups and ed.get("docs_out") == guniq
    ok &= good
    sha = open(os.path.join(d, f"docs-{label}.sha")).read().strip()
    shas.add(sha)
    print(f"  {label:<26} duplicates dropped {drop} (generator: {gdups}), docs out {ed.get('docs_out')} (unique: {guniq}), "
          f"spill_runs {ed.get('spill_runs')}, spilled_keys {ed.get('spilled_keys')}, output sha256 {sha} "
          f"{'OK' if good else 'MISMATCH'}")
same = len(shas) == 1
print(f"  output shards identical across runs: {'yes' if same else 'NO'}")
sys.exit(0 if ok and same else 1)
EOF
echo "bench: results in $OUT; full reports in $D/report-*.txt"
