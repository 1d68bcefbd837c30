#!/usr/bin/env bash
# bench_mpi_run.sh - `make bench`: the full quickstart pipeline (pipelines/quickstart.yaml) as one
# process and under `mpirun -np R` for R in BENCH_MPI_RANKS (default "1 2 4"), one thread per rank:
# wall time, speed-up over the one-process run, whether the outputs are byte-identical to the one-process run,
# and the payload bytes each stage's exchanges moved (the reports' mpi_bytes_sent, summed over
# ranks) as a model of what larger runs will move. See BENCHMARKS.md "Pipeline across MPI ranks".
#
#   BENCH_MPI_RANKS      rank counts (default "1 2 4")
#   BENCH_MPI_MANIFEST   another manifest (default pipelines/quickstart.yaml; its workdir is replaced)
#   BENCH_MPI_WEB_BYTES  when set (e.g. 200000000), a second pipeline after the quickstart: that many
#                        bytes of generated web-like JSONL (build/gen_corpus) in 16 files through
#                        normalize, length_filter, gopher_repetition, gopher_quality, exact_dedup,
#                        minhash_dedup, tokenize, pack — per-document work that ranks can share,
#                        where the quickstart's time is mostly its reference model's training
#                        (done once, by rank 0, inside the score stage's open).
#
# Files: build/bench-mpi/{ref,np<R>}/ run directories, results.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
RANKS=${BENCH_MPI_RANKS:-"1 2 4"}
MANIFEST=${BENCH_MPI_MANIFEST:-pipelines/quickstart.yaml}
D=build/bench-mpi
OUT=$D/results.txt
if ! command -v mpirun >/dev/null 2>&1 || ! ./winnow --version | grep -q "with MPI"; then
    echo "bench_mpi_run: SKIP: needs mpirun and an MPI build of ./winnow (make deps && make)"
    exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
mkdir -p "$D"
now() { date +%s.%N; }
manifest_for() { # name -> a copy of the manifest with its workdir under $D
    sed -e '/^workdir:/d' -e "s|^name: .*|&\nworkdir: $D/$1|" "$MANIFEST" >"$D/$1.yaml"
    echo "$D/$1.yaml"
}
sums() { (cd "$1" && sha256sum documents/* shards/* 2>/dev/null | sort -k2); }

bench_one() { # MANIFEST: the one-process run, then each rank count
local MANIFEST=$1
rm -rf "$D/ref" "$D"/np*
echo "bench_mpi_run: $MANIFEST, $(nproc) cores ($(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)), one thread per rank, $(date -u +%Y-%m-%d)"
m=$(manifest_for ref)
t0=$(now)
OMP_NUM_THREADS=1 ./winnow run "$m" --threads 1 --no-progress >"$D/ref.log" 2>&1 || { echo "one-process run failed"; tail "$D/ref.log"; return 1; }
t1=$(now)
ref=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
echo "one process, 1 thread: $ref s"
printf '%-6s %10s %9s %10s\n' ranks wall_s speedup identical   # speed-up: over the one-process run
base=$ref
for r in $RANKS; do
    m=$(manifest_for np$r)
    t0=$(now)
    OMP_NUM_THREADS=1 "${MPIRUN[@]}" -np "$r" ./winnow run "$m" --threads 1 --no-progress >"$D/np$r.log" 2>&1 \
        || { echo "-np $r failed"; tail "$D/np$r.log"; continue; }
    t1=$(now)
    w=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    same=no
    [ "$(sums "$D/ref")" = "$(sums "$D/np$r")" ] && same=yes
    printf '%-6s %10s %8sx %10s\n' "$r" "$w" "$(python3 -c "print(f'{$base / $w:.2f}')")" "$same"
done
echo
echo "payload bytes sent per stage (all ranks), and each stage's slowest-rank wall seconds:"
python3 - "$D" $RANKS <<'PY'
import json, glob, os, sys
d, ranks = sys.argv[1], sys.argv[2:]
rows = {}
for r in ranks:
    for f in sorted(glob.glob(f"{d}/np{r}/stages/*/report.json")):
        rep = json.load(open(f))
        name = os.path.basename(os.path.dirname(f))
        rows.setdefault(name, {})[r] = (rep.get("mpi_bytes_sent", 0), rep["wall_seconds"], rep["docs_in"])
print(f"{'stage':22s}" + "".join(f"{'np'+r+' bytes':>14s}{'s':>8s}" for r in ranks) + f"{'docs in':>9s}")
for name, v in rows.items():
    line = f"{name:22s}"
    for r in ranks:
        b, w, n = v.get(r, (0, 0, 0))
        line += f"{b:14d}{w:8.2f}"
    print(line + f"{n:9d}")
PY
}

{
bench_one "$MANIFEST"
if [ -n "${BENCH_MPI_WEB_BYTES:-}" ]; then
    [ -x build/gen_corpus ] || { echo "bench_mpi_run: build/gen_corpus missing (make bench builds it)"; exit 1; }
    mkdir -p "$D/web"
    for i in $(seq 0 15); do
        [ -f "$D/web/web-$i.jsonl.zst" ] || build/gen_corpus "$D/web/web-$i.jsonl.zst" $((BENCH_MPI_WEB_BYTES / 16)) $((100 + i)) 2>/dev/null
    done
    cat >"$D/web.yaml" <<YAML
name: bench-mpi-web
memory: 1GiB
inputs:
  - path: $PWD/$D/web/web-*.jsonl.zst
stages:
  - normalize:         {}
  - length_filter:     {min_words: 50}
  - gopher_repetition: {}
  - gopher_quality:    {}
  - exact_dedup:       {}
  - minhash_dedup:     {}
  - tokenize:          {tokenizer: $PWD/samples/tokenizer.json}
  - pack:              {shard_tokens: 10000000}
YAML
    echo
    bench_one "$D/web.yaml"
fi
} | tee "$OUT"
