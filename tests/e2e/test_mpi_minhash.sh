# test_mpi_minhash.sh - minhash_dedup under `mpirun -np 1/2/4 winnow run` (README "Scale-out (MPI)"):
# the documents, their attributes and the stage's report (candidate pairs, verified pairs, clusters,
# removed, the cluster-size histogram) are byte-identical to the one-process run's, on 3000
# documents in 7 files (tests/e2e/gen_near_dups.py: edited copies of earlier documents placed
# anywhere later, and chains of edits scattered over the files, so that clusters span ranks and
# their documents meet only through other ranks' pairs). Manifests:
#  1. the defaults (word 5-grams, verify: true, action: drop);
#  2. verify: false (every LSH candidate pair joins);
#  3. action: annotate (every member carries its cluster's number and size);
#  4. char shingles (ngram 12; verify: their shingle sets cross ranks);
#  5. a tiny budget and WINNOW_TEST_MINHASH_ROUND_BYTES=4096: the LSH tables spill, and the bucket
#     exchange and the verify set transfer take many rounds; a stage after minhash_dedup.
# The data check: the one-process annotate run has clusters whose members lie in different files.
# The report's figures that measure the machine or the partition are left out of the comparison:
# mpi_lib's list, plus speed.signature_seconds / signatures_per_second and the spill run counts
# (per-rank tables, summed over the ranks).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpi_lib.sh"

eval "mpi_lib_$(declare -f report_norm)"
report_norm() {
    mpi_lib_report_norm "$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if r.get("stage") == "minhash_dedup":
    r.get("speed", {}).pop("signature_seconds", None)
    r.get("speed", {}).pop("signatures_per_second", None)
    for k in ("bucket_runs", "pair_runs"): r.get("spill", {}).pop(k, None)
print(json.dumps(r, sort_keys=True, indent=1))'
}

mkdir -p "$T/in"
python3 tests/e2e/gen_near_dups.py 3000 "$T/in" 7

manifest() { # name, minhash params, [extra top-level lines], [extra stages]
    cat >"$T/$1.yaml" <<YAML
name: $1
workdir: @WORKDIR@
batch_bytes: 64KiB
${3:-}
inputs:
  - path: $T/in/*.jsonl
stages:
  - minhash_dedup: {$2}
${4:-}
outputs:
  documents: {shard_bytes: 128KiB}
YAML
}

manifest defaults ""
manifest noverify "verify: false"
manifest annotate "action: annotate"
manifest chars "shingle: char, ngram: 12"
manifest spill "verify: true" "memory: 1MiB" "  - length_filter: {min_words: 50}"

for m in defaults noverify annotate chars; do
    mpi_compare "$m" "$T/$m.yaml"
done
WINNOW_TEST_MINHASH_ROUND_BYTES=4096 mpi_compare spill "$T/spill.yaml"

r="$T/defaults-ref/stages/01-minhash_dedup/report.json"
check "defaults: near-duplicates removed" [ "$(json_get "$r" removed)" -ge 300 ]
check "defaults: clusters of three or more (chains)" python3 - "$r" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["cluster_size_histogram"]["counts"]
assert len(h) > 2 and sum(h[1:]) > 10, h
PY
check "spill: the tables spilled" [ "$(json_get "$T/spill-ref/stages/01-minhash_dedup/report.json" spill.bucket_runs)" -ge 1 ]
check "spill: several ranks exchanged bytes" python3 - "$T/spill-np4/stages/01-minhash_dedup/report.json" <<'PY'
import json, sys
assert json.load(open(sys.argv[1]))["mpi_bytes_sent"] > 0
PY
zstd -dcq "$T"/annotate-ref/documents/*.zst >"$T/annotate.out"
check "annotate: clusters span files (3000 documents over 7 files: 429 a file)" python3 - "$T/annotate.out" <<'PY'
import json, sys
files = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    c = r.get("winnow", {}).get("minhash_cluster")
    if c is not None:
        files.setdefault(c, set()).add(int(r["id"][1:]) // 429)
spanning = sum(len(f) > 1 for f in files.values())
assert spanning >= 50, (spanning, len(files))
PY
finish
