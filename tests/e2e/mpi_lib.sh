# mpi_lib.sh - helpers for tests of `winnow run` across MPI ranks (README "Scale-out (MPI)").
# Source after lib.sh. Sets BIN (the optimized ./winnow, WINNOW_MPI overrides: the sanitized build
# has no MPI) and MPIRUN, or prints SKIP and finishes when mpirun or an MPI build is missing.
#
#   mpi_compare NAME MANIFEST [RANKS...]   (default ranks: 1 2 4)
# MANIFEST holds the placeholder @WORKDIR@ for its workdir. Runs it as one process with 2 threads
# (the reference), then under `mpirun -np R` for each R, and checks that every output is
# byte-identical to the reference: documents/part-*.jsonl.zst, shards/*.bin and shards/index.json,
# and each stages/*/report.json with the figures that measure the machine rather than the data
# removed (wall/cpu seconds, throughput, memory and the memory split that depends on the thread
# count, energy, the per-rank list, bytes exchanged, and
# the FLOPs of model work, which count the padding of each rank's last model call: report_norm
# below). Run directories are left in $T/NAME-ref, $T/NAME-np<R>.
BIN=${WINNOW_MPI:-$ROOT/winnow}
if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev; make deps): pipeline runs across MPI ranks not tested"
    finish
fi
if [ ! -x "$BIN" ] || ! "$BIN" --version | grep -q "with MPI"; then
    echo "SKIP: $BIN is not an MPI build (make with mpicc present, or MPI=1): pipeline runs across MPI ranks not tested"
    finish
fi
# OpenMPI refuses root without these; this machine has fewer cores than ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)

# report_norm FILE: the report without the figures that measure the machine, sorted keys.
report_norm() {
    python3 - "$1" <<'PY'
import json, sys
SKIP = {"wall_seconds", "cpu_seconds", "throughput", "peak_memory_bytes", "energy", "ranks",
        "mpi_bytes_sent", "gpu_seconds", "wall_seconds_last_session", "cpu_seconds_last_session",
        "peak_rss_bytes", "threads", "model_seconds", "train_seconds", "target_seconds", "flops",
        "table_budget_bytes", "reserve_bytes"}
def strip(v):
    if isinstance(v, dict): return {k: strip(x) for k, x in v.items() if k not in SKIP and not k.endswith("_per_s")}
    if isinstance(v, list): return [strip(x) for x in v]
    return v
print(json.dumps(strip(json.load(open(sys.argv[1]))), sort_keys=True, indent=1))
PY
}

# same_outputs A B LABEL: checks run directory B's outputs are byte-identical to A's.
same_outputs() {
    local a=$1 b=$2 label=$3 f
    check "$label: same document shard names" [ "$(cd "$a/documents" && ls)" = "$(cd "$b/documents" && ls)" ]
    for f in "$a"/documents/* ; do
        check "$label: documents/$(basename "$f") byte-identical" cmp -s "$f" "$b/documents/$(basename "$f")"
    done
    if [ -d "$a/shards" ]; then
        check "$label: same token shard names" [ "$(cd "$a/shards" && ls)" = "$(cd "$b/shards" && ls)" ]
        for f in "$a"/shards/*; do
            check "$label: shards/$(basename "$f") byte-identical" cmp -s "$f" "$b/shards/$(basename "$f")"
        done
    fi
    check "$label: same stage reports" [ "$(cd "$a/stages" && ls)" = "$(cd "$b/stages" && ls)" ]
    for f in "$a"/stages/*/report.json; do
        local rel=${f#$a/}
        report_norm "$f" >"$T/norm-a.json"
        report_norm "$b/$rel" >"$T/norm-b.json" 2>/dev/null
        if ! cmp -s "$T/norm-a.json" "$T/norm-b.json"; then
            echo "  $label: $rel differs:" >&2
            diff "$T/norm-a.json" "$T/norm-b.json" | head -20 >&2
        fi
        check "$label: $rel the same (timings aside)" cmp -s "$T/norm-a.json" "$T/norm-b.json"
    done
}

mpi_compare() {
    local name=$1 manifest=$2; shift 2
    local ranks=("$@") r
    [ ${#ranks[@]} -gt 0 ] || ranks=(1 2 4)
    sed "s|@WORKDIR@|$T/$name-ref|" "$manifest" >"$T/$name-ref.yaml"
    "$BIN" run "$T/$name-ref.yaml" --threads 2 --no-progress >"$T/$name-ref.log" 2>&1
    check "$name: the one-process run succeeds" [ $? -eq 0 ] || { cat "$T/$name-ref.log" >&2; return; }
    for r in "${ranks[@]}"; do
        sed "s|@WORKDIR@|$T/$name-np$r|" "$manifest" >"$T/$name-np$r.yaml"
        OMP_NUM_THREADS=1 "${MPIRUN[@]}" -np "$r" "$BIN" run "$T/$name-np$r.yaml" --no-progress \
            >"$T/$name-np$r.log" 2>&1
        local rc=$?
        check "$name: mpirun -np $r succeeds" [ $rc -eq 0 ]
        if [ $rc -ne 0 ]; then tail -20 "$T/$name-np$r.log" >&2; continue; fi
        same_outputs "$T/$name-ref" "$T/$name-np$r" "$name -np $r"
    done
}
