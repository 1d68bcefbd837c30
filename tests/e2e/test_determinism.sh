# test_determinism.sh - the same manifest and input give byte-identical
# documents for any --threads, and across repeated runs.
. "$(dirname "$0")/lib.sh"

python3 tests/e2e/gen_docs.py 5000 "$T/a.jsonl"
cat >"$T/m.yaml" <<YAML
name: det
workdir: $T/run
batch_bytes: 256KiB
inputs:
  - path: $T/a.jsonl
stages:
  - normalize: {form: nfkc, newlines: lf}
  - length_filter: {min_words: 3, max_chars: 4000}
  - exact_dedup: {lowercase: true}
  - sample: {rate: 0.7, seed: 7}
  - tokenize: {tokenizer: samples/tokenizer.json, emit: ids}
outputs:
  documents: {shard_bytes: 300KiB}
YAML
for t in 1 2 4 3; do
    check "run with --threads $t" "$WINNOW" run "$T/m.yaml" --threads "$t" --no-progress 2>/dev/null
    shard_sums "$T/run" >"$T/sums.$t"
    cp "$T/run/stages/03-exact_dedup/report.json" "$T/dedup.$t"
done
check "several shards" [ "$(wc -l <"$T/sums.1")" -ge 3 ]
for t in 2 4 3; do
    check "threads $t == threads 1" cmp -s "$T/sums.1" "$T/sums.$t"
    check "threads $t: same duplicates" [ "$(json_get "$T/dedup.$t" dropped.duplicate)" = "$(json_get "$T/dedup.1" dropped.duplicate)" ]
done
finish
