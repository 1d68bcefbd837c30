# test_mpi_dedup.sh - exact_dedup and line_dedup across MPI ranks (README "Scale-out (MPI)"):
# `mpirun -np 1/2/4 winnow run` gives documents and reports identical to the one-process run.
#  1. A generated corpus over 8 JSONL files of different sizes (so ranks take 1 to 3 files):
#     exact duplicates, case and whitespace variants of earlier documents, boilerplate lines and
#     paragraphs, all drawn from any earlier file; the last file is made only of copies of the
#     first file's documents (so a rank's losers have their first occurrence on another rank).
#  2. mpi_compare (mpi_lib.sh) on manifests for exact_dedup (defaults; lowercase: true),
#     line_dedup (unit line, min_count 0; unit paragraph, min_count 3; unit line, min_count 3 after
#     exact_dedup, so exact_dedup's held documents flow into line_dedup at its finish).
#  3. Tiny memory budgets (exact_dedup and line_dedup at 4 KiB: spilled key runs, many exchange
#     rounds): the same documents and the same reports but for the spill figures, which depend on
#     how the input is split (each rank spills its own share).
#  4. Resume across ranks: 2 ranks killed right after checkpoint 1 or 3, then --resume: the
#     one-process run's documents and reports (spill figures aside).
# SKIPs (mpi_lib.sh) without mpirun or an MPI build.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpi_lib.sh"

mkdir -p "$T/in"
python3 - "$T/in" <<'PY'
import json, random, sys
out = sys.argv[1]
rng = random.Random(20240611)
words = ("river stone garden engine window market silver forest lantern harbor violet thunder paper "
         "orbit canyon meadow café naïve Ünïcode Straße").split()
def sentence(lo, hi):
    return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi))).capitalize() + "."
pool = [sentence(3, 9) for _ in range(300)]           # lines that recur across documents
boiler = ["Home | About | Contact", "Copyright 2024. All rights reserved.", "Subscribe to our newsletter!",
          "Share this page", "Cookies help us deliver our services."]
paras = ["\n".join(rng.choice(pool) for _ in range(rng.randint(2, 4))) for _ in range(60)]
sizes = [500, 120, 700, 60, 400, 900, 250]
texts, first = [], []
def fresh():
    blocks = []
    for _ in range(rng.randint(1, 6)):
        q = rng.random()
        if q < 0.15: blocks.append(rng.choice(paras))
        elif q < 0.30: blocks.append(rng.choice(boiler))
        else: blocks.append("\n".join(rng.choice(pool) if rng.random() < 0.35 else sentence(2, 14)
                                      for _ in range(rng.randint(1, 5))))
    t = "\n\n".join(blocks)
    return t + "\n" if rng.random() < 0.5 else t
def variant(t):
    r = rng.random()
    if r < 0.4: return t
    if r < 0.7: return "  " + t.replace(" ", "   ").replace("\n", " \n") + "\n"
    return t.upper()
n = 0
for f, size in enumerate(sizes):
    with open(f"{out}/part-{f}.jsonl", "w", encoding="utf-8") as fh:
        for _ in range(size):
            t = variant(rng.choice(texts)) if texts and rng.random() < 0.2 else fresh()
            if len(texts) < 2000: texts.append(t)
            if f == 0: first.append(t)
            fh.write(json.dumps({"id": f"d{n:05d}", "text": t, "meta": {"file": f}}, ensure_ascii=False) + "\n")
            n += 1
with open(f"{out}/part-7.jsonl", "w", encoding="utf-8") as fh:  # copies of part-0's documents only
    for _ in range(300):
        fh.write(json.dumps({"id": f"d{n:05d}", "text": variant(rng.choice(first))}, ensure_ascii=False) + "\n")
        n += 1
PY
check "8 input files" [ "$(ls "$T/in" | wc -l)" -eq 8 ]

manifest() { # name, stages (YAML lines)
    cat >"$T/$1.yaml" <<YAML
name: mpi_$1
workdir: @WORKDIR@
batch_bytes: 32KiB
inputs:
  - path: $T/in/part-*.jsonl
stages:
$2
outputs:
  documents: {shard_bytes: 64KiB}
YAML
}

manifest exact "  - exact_dedup: {}"
manifest exact_lower "  - exact_dedup: {lowercase: true}"
manifest lines "  - line_dedup: {}"
manifest paragraphs "  - line_dedup: {unit: paragraph, min_count: 3}"
manifest chain "  - exact_dedup: {lowercase: true}
  - line_dedup: {unit: line, min_count: 3}"
for m in exact exact_lower lines paragraphs chain; do mpi_compare "$m" "$T/$m.yaml"; done

# the exchanges had work to do: part-7 is all duplicates of part-0 (at 4 ranks on other ranks)
dups=$(json_get "$T/exact-ref/stages/01-exact_dedup/report.json" dropped.duplicate)
check "exact_dedup drops duplicates ($dups), part-7's 300 among them" [ "${dups:-0}" -ge 300 ]
check "exact_dedup lowercase drops more" \
    [ "$(json_get "$T/exact_lower-ref/stages/01-exact_dedup/report.json" dropped.duplicate)" -gt "${dups:-0}" ]
check "line_dedup removes lines" [ "$(json_get "$T/lines-ref/stages/01-line_dedup/report.json" lines_removed)" -gt 1000 ]
check "line_dedup min_count 3 removes paragraphs" \
    [ "$(json_get "$T/paragraphs-ref/stages/01-line_dedup/report.json" lines_removed)" -gt 100 ]

# ---- 3. tiny budgets: many rounds; spill figures aside -------------------------------------------
manifest tiny "  - exact_dedup: {memory: 4KiB}
  - line_dedup: {unit: paragraph, memory: 4KiB}
  - line_dedup: {min_count: 3, memory: 4KiB}"
same_but_spill() { # A B: reports equal but for timings and spill figures
    python3 - "$1" "$2" <<'PY'
import glob, json, os, sys
SKIP = {"wall_seconds", "cpu_seconds", "throughput", "peak_memory_bytes", "energy", "ranks", "mpi_bytes_sent",
        "gpu_seconds", "peak_rss_bytes", "threads", "spill", "spill_runs", "spilled_keys"}
def strip(v):
    if isinstance(v, dict): return {k: strip(x) for k, x in v.items() if k not in SKIP and not k.endswith("_per_s")}
    if isinstance(v, list): return [strip(x) for x in v]
    return v
def load(d):
    return {os.path.relpath(f, d): strip(json.load(open(f))) for f in sorted(glob.glob(d + "/stages/*/report.json"))}
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in a:
    if a[k] != b.get(k):
        print(k, "differs:", {x: (a[k][x], b[k].get(x)) for x in a[k] if a[k][x] != b[k].get(x)}, file=sys.stderr)
sys.exit(0 if a == b and len(a) >= 3 else 1)
PY
}
sed "s|@WORKDIR@|$T/tiny-ref|" "$T/tiny.yaml" >"$T/tiny-ref.yaml"
check "tiny budgets: one process" "$BIN" run "$T/tiny-ref.yaml" --threads 2 --no-progress
check "tiny budgets: exact_dedup spilled" [ "$(json_get "$T/tiny-ref/stages/01-exact_dedup/report.json" spill_runs)" -ge 2 ]
for r in 2 4; do
    sed "s|@WORKDIR@|$T/tiny-np$r|" "$T/tiny.yaml" >"$T/tiny-np$r.yaml"
    OMP_NUM_THREADS=1 "${MPIRUN[@]}" -np "$r" "$BIN" run "$T/tiny-np$r.yaml" --no-progress >"$T/tiny-np$r.log" 2>&1
    check "tiny budgets: mpirun -np $r succeeds" [ $? -eq 0 ] || { tail -20 "$T/tiny-np$r.log" >&2; continue; }
    check "tiny budgets -np $r: same document shards" [ "$(shard_sums "$T/tiny-ref")" = "$(shard_sums "$T/tiny-np$r")" ]
    check "tiny budgets -np $r: same reports but for spill figures" same_but_spill "$T/tiny-ref" "$T/tiny-np$r"
done

# ---- 4. resume across ranks: killed right after checkpoint K, resumed with --resume ----------------
# (each rank restores its own exact_dedup key set, keys.bin and spill, and line_dedup's spill)
for k in 1 3; do
    sed "s|@WORKDIR@|$T/kill$k|" "$T/tiny.yaml" >"$T/kill$k.yaml"
    WINNOW_TEST_KILL_AT_CHECKPOINT=$k OMP_NUM_THREADS=1 "${MPIRUN[@]}" -x WINNOW_TEST_KILL_AT_CHECKPOINT -np 2 \
        "$BIN" run "$T/kill$k.yaml" --no-progress >"$T/kill$k.log" 2>&1
    check "killed after checkpoint $k (2 ranks)" [ $? -ne 0 ]
    OMP_NUM_THREADS=1 "${MPIRUN[@]}" -np 2 "$BIN" run "$T/kill$k.yaml" --no-progress --resume >>"$T/kill$k.log" 2>&1
    check "resumed from checkpoint $k (2 ranks)" [ $? -eq 0 ] || { tail -20 "$T/kill$k.log" >&2; continue; }
    check "resumed from checkpoint $k: run.json says so" \
        [ "$(json_get "$T/kill$k/run.json" resumed_from_checkpoint)" = "$k" ]
    check "resumed from checkpoint $k: same document shards" [ "$(shard_sums "$T/tiny-ref")" = "$(shard_sums "$T/kill$k")" ]
    check "resumed from checkpoint $k: same reports but for spill figures" same_but_spill "$T/tiny-ref" "$T/kill$k"
done
finish
