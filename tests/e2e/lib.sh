# lib.sh - shared helpers for the end-to-end tests. Each test script sources
# this, calls `check` for every assertion and ends with `finish`.
# WINNOW selects the binary (default: the sanitized build).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
WINNOW=${WINNOW:-$ROOT/build/san/winnow}
SHARED=${WN_SHARED:-$ROOT/../shared}
T=$(mktemp -d /tmp/winnow-e2e.XXXXXX)
trap "[ -n \"${KEEP_T:-}\" ] || rm -rf \"$T\"" EXIT
fails=0

check() { # description, command...
    local what=$1; shift
    if "$@"; then :; else echo "  check failed: $what" >&2; fails=$((fails + 1)); fi
}
contains() { grep -q -- "$2" "$1"; }
# json_get FILE PATH: prints a value from a JSON file (PATH like dropped.duplicate)
json_get() {
    python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v.get(k, 0) if isinstance(v, dict) else v[int(k)]
print(v)' "$1" "$2"
}
# checksums of a run's outputs: document shards, and token shards when present
shard_sums() {
    (cd "$1/documents" && sha256sum part-*.jsonl.zst)
    if [ -d "$1/shards" ]; then (cd "$1/shards" && sha256sum ./*.bin index.json); fi
}
finish() {
    if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
    exit 0
}
