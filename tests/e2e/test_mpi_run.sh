# test_mpi_run.sh - `mpirun -np N winnow run` (README "Scale-out (MPI)"): the ranks take
# contiguous ranges of the input files, run the stages over their own documents and cut the
# document shards together at the end; the outputs must be those of one process.
#  1. per-document stages (normalize, filters in drop and annotate modes, PII, regex, URL,
#     sample, tokenize, score with a reference model trained inside the run — by rank 0, the
#     others load it) over the samples plus 6 generated JSONL files, with tiny shards so that
#     shards straddle ranks: documents, reports (timings aside) byte-identical for 1, 2, 4 ranks
#     and the threaded single process (mpi_lib.sh's mpi_compare). Merged reports carry a
#     per-rank list whose counts add up to the totals, and run.json the rank count.
#  2. resume: a 2-rank run killed at a checkpoint (every rank's first) resumes with
#     --resume to the same bytes; resuming with another rank count is refused, naming both.
#  3. a rank that fails (a malformed record in its file, on_error: fail) stops the job: non-zero
#     exit, the message names the rank and the file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpi_lib.sh"

D=$T/in
mkdir -p "$D"
for i in 0 1 2 3 4 5; do python3 tests/e2e/gen_docs.py $((60 + 25 * i)) "$D/gen-$i.jsonl"; done
cat >"$T/filters.yaml" <<YAML
name: mpi-filters
workdir: @WORKDIR@
memory: 64MiB
batch_bytes: 8KiB
inputs:
  - path: $ROOT/samples/web/*.jsonl.zst
  - path: $ROOT/samples/text/*.txt
  - path: $ROOT/samples/archive/*.tar.gz
  - path: $D/gen-*.jsonl
datasets:
  target: {path: $ROOT/samples/target/*.jsonl.zst}
stages:
  - normalize:         {form: nfkc, newlines: lf}
  - length_filter:     {min_words: 5, max_chars: 100000}
  - c4_filter:         {mode: annotate}
  - gopher_quality:    {mode: annotate}
  - gopher_repetition: {}
  - fineweb_quality:   {mode: annotate}
  - pii_redact:        {}
  - regex_filter:      {pattern: "(?i)lorem ipsum", action: drop}
  - url_filter:        {banned_words: "casino,xxx"}
  - sample:            {rate: 0.9, seed: 3}
  - tokenize:          {tokenizer: $ROOT/samples/tokenizer.json}
  - score:             {methods: perplexity, train_reference: target, train_steps: 10, ppl_cuts: "20,60"}
outputs:
  documents: {shard_bytes: 4KiB}
YAML
mpi_compare filters "$T/filters.yaml" 1 2 4

# The merged report: totals equal the sums of the per-rank figures; run.json says 4 ranks.
R4=$T/filters-np4
check "-np 4: run.json records 4 ranks" [ "$(json_get "$R4/run.json" mpi_ranks)" = 4 ]
check "-np 4: every report lists 4 ranks whose documents add up" python3 - "$R4" <<'PY'
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/stages/*/report.json")):
    r = json.load(open(f))
    assert len(r["ranks"]) == 4, f
    for k in ("docs_in", "docs_out", "bytes_in", "bytes_out"):
        assert sum(x[k] for x in r["ranks"]) == r[k], (f, k)
w = json.load(open(sorted(glob.glob(sys.argv[1] + "/stages/*-write/report.json"))[0]))
assert w["mpi_bytes_sent"] > 0, "the shard cut moved no bytes"
PY
check "-np 4: more than one document shard (shards straddle ranks)" \
    [ "$(ls "$R4/documents" | wc -l)" -gt 4 ]

# 2. Resume under MPI: every rank dies right after its first checkpoint; --resume finishes the job.
cat >"$T/resume.yaml" <<YAML
name: mpi-resume
workdir: @WORKDIR@
batch_bytes: 4KiB
inputs:
  - path: $D/gen-*.jsonl
stages:
  - normalize:     {}
  - length_filter: {min_words: 5}
outputs:
  documents: {shard_bytes: 2KiB}
YAML
sed "s|@WORKDIR@|$T/resume-ref|" "$T/resume.yaml" >"$T/resume-ref.yaml"
"$BIN" run "$T/resume-ref.yaml" --no-progress >/dev/null 2>&1
check "resume: the reference run succeeds" [ $? -eq 0 ]
sed "s|@WORKDIR@|$T/resume-np2|" "$T/resume.yaml" >"$T/resume-np2.yaml"
WINNOW_TEST_KILL_AT_CHECKPOINT=1 "${MPIRUN[@]}" -np 2 "$BIN" run "$T/resume-np2.yaml" --no-progress \
    >"$T/killed.log" 2>&1
check "resume: the run was killed (non-zero exit)" [ $? -ne 0 ]
check "resume: a rank's checkpoint exists" [ -e "$T/resume-np2/state/rank-0000/checkpoint.json" -o \
    -e "$T/resume-np2/state/rank-0001/checkpoint.json" ]
"${MPIRUN[@]}" -np 4 "$BIN" run "$T/resume-np2.yaml" --resume --no-progress >"$T/wrong.log" 2>&1
check "resume with 4 ranks what 2 started: refused" [ $? -ne 0 ]
check "... naming both rank counts" contains "$T/wrong.log" "started with 2 MPI ranks.*now 4"
"${MPIRUN[@]}" -np 2 "$BIN" run "$T/resume-np2.yaml" --resume --no-progress >"$T/resumed.log" 2>&1
check "resume: --resume with 2 ranks succeeds" [ $? -eq 0 ] || tail -5 "$T/resumed.log" >&2
check "resume: it resumed from a checkpoint" python3 -c "
import json,sys; sys.exit(0 if json.load(open('$T/resume-np2/run.json'))['resumed_from_checkpoint'] > 0 else 1)"
same_outputs "$T/resume-ref" "$T/resume-np2" "resumed -np 2"

# 3. A rank that fails stops the job and says which rank and why.
printf '{"id": "x", "text": "fine"}\n{"id": broken\n' >"$D/zz-bad.jsonl"
cat >"$T/bad.yaml" <<YAML
name: mpi-bad
workdir: $T/bad
inputs:
  - path: $D/*.jsonl
stages:
  - normalize: {}
YAML
"${MPIRUN[@]}" -np 2 "$BIN" run "$T/bad.yaml" --no-progress >"$T/bad.log" 2>&1
check "a failing rank: the job exits non-zero" [ $? -ne 0 ]
check "... the message names the rank" contains "$T/bad.log" "rank 1 of 2 failed"
check "... and the file" contains "$T/bad.log" "zz-bad.jsonl"
finish
