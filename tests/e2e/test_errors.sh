# test_errors.sh - bad input: malformed JSON, a missing text key, invalid
# UTF-8, truncated .zst and .gz, and a corrupt archive. With on_error: fail
# the run stops (exit 1) with a message naming the file and line or byte
# offset; with on_error: skip it finishes and counts each reason in
# stages/00-read/report.json.
. "$(dirname "$0")/lib.sh"

python3 tests/e2e/gen_docs.py 3000 "$T/big.jsonl"
printf '{"id":"1","text":"fine"}\n{"id":"2","text":"broken\n{"id":"3","text":"also fine"}\n' >"$T/malformed.jsonl"
printf '{"id":"1","text":"fine"}\n{"id":"2","body":"no text here"}\n' >"$T/missing.jsonl"
printf '{"id":"1","text":"fine"}\n{"id":"2","text":"bad \xff\xfe bytes"}\n' >"$T/badutf8.jsonl"
zstd -q -c "$T/big.jsonl" >"$T/full.zst"; head -c $(( $(stat -c %s "$T/full.zst") / 2 )) "$T/full.zst" >"$T/trunc.jsonl.zst"
gzip -n -c "$T/big.jsonl" >"$T/full.gz"; head -c $(( $(stat -c %s "$T/full.gz") / 2 )) "$T/full.gz" >"$T/trunc.jsonl.gz"
mkdir -p "$T/arch" && cp "$T/big.jsonl" "$T/arch/a.jsonl" && tar -C "$T/arch" -czf "$T/full.tar.gz" a.jsonl
head -c $(( $(stat -c %s "$T/full.tar.gz") / 2 )) "$T/full.tar.gz" >"$T/corrupt.tar.gz"

# case: file, reason, pattern expected in the fail message
run_case() {
    local file=$1 reason=$2 pattern=$3 name
    name=$(basename "$file")
    for policy in fail skip; do
        cat >"$T/m.yaml" <<YAML
name: err
workdir: $T/run-$name-$policy
on_error: $policy
inputs:
  - path: $file
YAML
        "$WINNOW" run "$T/m.yaml" --no-progress >"$T/out" 2>"$T/err"
        local rc=$?
        if [ "$policy" = fail ]; then
            check "$name fail: exit 1 (got $rc)" [ "$rc" -eq 1 ]
            check "$name fail: message '$pattern'" contains "$T/err" "$pattern"
        else
            check "$name skip: exit 0 (got $rc)" [ "$rc" -eq 0 ]
            local n
            n=$(json_get "$T/run-$name-$policy/stages/00-read/report.json" "dropped.$reason")
            check "$name skip: counted $reason (got $n)" [ "$n" = 1 ]
        fi
    done
}
run_case "$T/malformed.jsonl" malformed_json "malformed.jsonl:2: malformed JSON at column"
run_case "$T/missing.jsonl" missing_text "missing.jsonl:2: no \"text\" field"
run_case "$T/badutf8.jsonl" invalid_utf8 "badutf8.jsonl:2: invalid UTF-8 at byte 4"
run_case "$T/trunc.jsonl.zst" truncated "trunc.jsonl.zst: byte offset [0-9]* of the decompressed data: truncated"
run_case "$T/trunc.jsonl.gz" truncated "trunc.jsonl.gz: byte offset [0-9]* of the decompressed data: truncated"
run_case "$T/corrupt.tar.gz" corrupt_archive "corrupt.tar.gz\[a.jsonl\]: byte offset [0-9]*.*corrupt archive"

# Nothing vanishes: with skip, good records around the bad one still come out.
check "malformed skip keeps 2 docs" [ "$(json_get "$T/run-malformed.jsonl-skip/stages/01-write/report.json" docs_out)" = 2 ]
# A per-input on_error overrides the top level.
cat >"$T/m.yaml" <<YAML
name: err
workdir: $T/run-override
on_error: fail
inputs:
  - path: $T/malformed.jsonl
    on_error: skip
YAML
check "per-input on_error: skip overrides" "$WINNOW" run "$T/m.yaml" --no-progress
# utf8: pass hands invalid UTF-8 to normalize, which repairs it.
cat >"$T/m.yaml" <<YAML
name: err
workdir: $T/run-pass
inputs:
  - path: $T/badutf8.jsonl
    utf8: pass
stages:
  - normalize: {invalid_utf8: repair}
YAML
check "utf8 pass + repair runs" "$WINNOW" run "$T/m.yaml" --no-progress
fffd=$(printf 'bad \xef\xbf\xbd\xef\xbf\xbd bytes')
check "repaired text has U+FFFD" bash -c "zstd -dc '$T'/run-pass/documents/*.zst | grep -q '$fffd'"
finish
