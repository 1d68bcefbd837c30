#!/usr/bin/env bash
# run_all.sh - everything `make test` runs: unit tests, fuzz-corpus replay and
# the end-to-end tests (tests/e2e/test_*.sh), all against the ASan/UBSan
# build. Ends with one summary line: "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
failures=()

step() { # name, command...
    local name=$1; shift
    local log
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        printf 'ok   %s\n' "$name"
        grep -h "SKIP" "$log" | sed 's/^/     /' | sort -u
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL %s\n' "$name"
        tail -n 40 "$log" | sed 's/^/     /'
    fi
    rm -f "$log"
}

step unit ./build/san/unit
for f in tests/fuzz/fuzz_*.c; do
    t=$(basename "$f" .c); t=${t#fuzz_}
    step "fuzz-replay $t" ./build/san/fuzz_"$t" tests/fuzz/corpus/"$t"
done
for t in tests/e2e/test_*.sh; do
    step "e2e $(basename "$t" .sh)" bash "$t"
done

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
