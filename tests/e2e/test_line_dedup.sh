# test_line_dedup.sh - the line_dedup stage end to end:
#  1. samples/web (boilerplate pages repeat lines) under several parameter sets, each
#     checked against tests/e2e/line_dedup_ref.py, an independent Python
#     reimplementation (normalized strings in a dict, no hashing, no spill): the same
#     documents kept in the same order with the same texts (so the same lines
#     removed), and the same counts in the report;
#  2. a tiny memory budget (key runs spilled and merged, decision runs) and another
#     thread count give byte-identical outputs and the same counts;
#  3. the dolma Common Crawl sample from ../shared/corpora, when present, against
#     the reference too (SKIP otherwise);
#  4. a generated corpus of boilerplate-heavy pages, killed with SIGKILL at random
#     moments (possibly while spilling, merging or emitting) and resumed with --resume:
#     identical outputs. line_dedup holds every document back, so no document shard
#     completes while the input streams and the run takes no checkpoint before the end
#     of the stream (as with select): a resumed run starts the stream over. The
#     stage's own save/load is tested in tests/unit/test_line_dedup.c.
. "$(dirname "$0")/lib.sh"

# stage parameters as JSON (for the reference) -> a YAML flow map
flow() { python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in d.items()) + "}")' "$1"; }
manifest() { # workdir, params JSON, [memory], [input glob]
    local extra=""
    [ -n "${3:-}" ] && extra=$(echo "$2" | python3 -c "import json,sys; d=json.load(sys.stdin); d['memory']='$3'; print(json.dumps(d))")
    cat <<YAML
name: line_dedup
workdir: $1
batch_bytes: 64KiB
inputs:
  - path: ${4:-samples/web/*.jsonl.zst}
stages:
  - line_dedup: $(flow "${extra:-$2}")
outputs:
  documents: {shard_bytes: 128KiB}
YAML
}
# Every report key but times, throughput, memory and spill figures is the same.
same_reports() {
    python3 - "$1" "$2" <<'PY'
import json, sys, glob
def load(d):
    r = json.load(open(glob.glob(d + "/stages/*-line_dedup/report.json")[0]))
    for k in ("wall_seconds", "cpu_seconds", "energy", "throughput", "peak_memory_bytes", "spill", "memory_budget_bytes", "table_budget_bytes", "params"):
        r.pop(k, None)
    return r
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    print("reports differ:", {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}, file=sys.stderr)
    sys.exit(1)
PY
}
spill_of() { json_get "$(ls "$1"/stages/*-line_dedup/report.json)" "spill.$2"; }

# ---- 1. samples/web against the reference ----------------------------------------------
i=0
for P in '{}' '{"unit": "paragraph"}' '{"min_count": 3}' '{"min_count": 2, "unit": "paragraph", "blank_lines": "keep"}' \
         '{"blank_lines": "keep", "min_words": 30, "accents": false, "digits": false}' \
         '{"lowercase": false, "punctuation": false, "collapse_whitespace": false, "min_chars": 400}'; do
    i=$((i + 1))
    manifest "$T/s$i" "$P" >"$T/s$i.yaml"
    check "samples $P: run" "$WINNOW" run "$T/s$i.yaml" --no-progress 2>/dev/null
    check "samples $P: same as the Python reference" python3 tests/e2e/line_dedup_ref.py "$P" "$T/s$i" samples/web/*.jsonl.zst
done
check "samples: lines removed" [ "$(json_get "$T/s1/stages/01-line_dedup/report.json" lines_removed)" -gt 1000 ]

# ---- 2. tiny budget, thread counts -------------------------------------------------------
manifest "$T/tiny" '{}' 4KiB >"$T/tiny.yaml"
check "tiny budget: run" "$WINNOW" run "$T/tiny.yaml" --no-progress --threads 2 2>/dev/null
manifest "$T/t1" '{"min_count": 3}' >"$T/t1.yaml"
manifest "$T/t4" '{"min_count": 3}' 4KiB >"$T/t4.yaml"
check "threads 1: run" "$WINNOW" run "$T/t1.yaml" --no-progress --threads 1 2>/dev/null
check "threads 4, tiny budget: run" "$WINNOW" run "$T/t4.yaml" --no-progress --threads 4 2>/dev/null
for r in s1 tiny s3 t1 t4; do shard_sums "$T/$r" >"$T/$r.sums"; done
check "tiny budget: spilled key runs ($(spill_of "$T/tiny" runs)), merged them" \
    [ "$(spill_of "$T/tiny" runs)" -gt 16 -a "$(spill_of "$T/tiny" merge_passes)" -ge 1 ]
check "tiny budget: decision runs ($(spill_of "$T/tiny" decision_runs))" [ "$(spill_of "$T/tiny" decision_runs)" -ge 2 ]
check "in memory: no spill" [ "$(spill_of "$T/s1" runs)" = 0 ]
check "tiny budget: identical documents" cmp -s "$T/s1.sums" "$T/tiny.sums"
check "tiny budget: same report" same_reports "$T/s1" "$T/tiny"
check "threads 1 vs 4 (min_count, tiny budget): identical documents" cmp -s "$T/t1.sums" "$T/t4.sums"
check "threads 1 vs 4: same report" same_reports "$T/t1" "$T/t4"
check "threads: same as the single-threaded min_count run" cmp -s "$T/s3.sums" "$T/t1.sums"
check "several shards" [ "$(ls "$T/s1/documents" | wc -l)" -ge 3 ]

# ---- 3. the Common Crawl sample ------------------------------------------------------------
CC=$SHARED/corpora/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz
if [ ! -r "$CC" ]; then
    echo "SKIP: ../shared/corpora not present (the Common Crawl part of test_line_dedup)"
else
    for P in '{}' '{"unit": "paragraph", "min_count": 2}'; do
        i=$((i + 1))
        manifest "$T/cc$i" "$P" "" "$CC" >"$T/cc$i.yaml"
        check "cc $P: run" "$WINNOW" run "$T/cc$i.yaml" --no-progress 2>/dev/null
        check "cc $P: same as the Python reference" python3 tests/e2e/line_dedup_ref.py "$P" "$T/cc$i" "$CC"
        manifest "$T/cct$i" "$P" 8KiB "$CC" >"$T/cct$i.yaml"
        check "cc $P, tiny budget: run" "$WINNOW" run "$T/cct$i.yaml" --no-progress 2>/dev/null
        shard_sums "$T/cc$i" >"$T/cc$i.sums"
        shard_sums "$T/cct$i" >"$T/cct$i.sums"
        check "cc $P, tiny budget: spilled" [ "$(spill_of "$T/cct$i" runs)" -gt 16 ]
        check "cc $P, tiny budget: identical documents" cmp -s "$T/cc$i.sums" "$T/cct$i.sums"
    done
fi

# ---- 4. killed and resumed ------------------------------------------------------------------
python3 - "$T/g.jsonl" <<'PY'
import json, random, sys
rng = random.Random(7)
boiler = ["Skip to main content", "Home | About | Contact", "Share this:", "Facebook", "Twitter", "Related posts",
          "Subscribe to our newsletter", "\u00a9 2019 Example Media. All rights reserved.",
          "Posted on March 3, 2019 by admin", "Leave a comment", "Caf\u00e9 Cr\u00e8me menu", "Read more \u00bb"]
words = "river stone garden engine window market silver forest lantern harbor violet thunder paper orbit " \
        "canyon meadow na\u00efve \u6771\u4eac".split()
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for i in range(20000):
        lines = rng.sample(boiler, rng.randint(0, 5))
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.15:
                lines.append("")
            elif r < 0.35:
                lines.append(f"Line {rng.randint(0, 300)}: " + " ".join(rng.choice(words) for _ in range(4)))
            else:
                lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 20))).capitalize() + ".")
        lines += rng.sample(boiler, rng.randint(0, 3))
        text = "\n".join(lines) + ("\n" if rng.random() < 0.5 else "")
        f.write(json.dumps({"id": f"g{i:06d}", "text": text, "meta": {"n": i}}, ensure_ascii=False) + "\n")
PY
gen() { # workdir
    cat <<YAML
name: line_dedup_resume
workdir: $1
batch_bytes: 64KiB
inputs:
  - path: $T/g.jsonl
stages:
  - normalize: {form: nfc}
  - line_dedup: {memory: 16KiB}
  - length_filter: {min_words: 3}
outputs:
  documents: {shard_bytes: 256KiB}
YAML
}
gen "$T/gref" >"$T/gref.yaml"
total=$( { /usr/bin/time -f %e "$WINNOW" run "$T/gref.yaml" --no-progress 2>&1 >/dev/null; } | tail -1)
check "generated corpus: reference run" [ -e "$T/gref/run.json" ]
check "generated corpus: spilled ($(spill_of "$T/gref" runs) runs)" [ "$(spill_of "$T/gref" runs)" -gt 16 ]
gen "$T/gone" | sed 's/  - normalize: {form: nfc}//; s/  - length_filter: {min_words: 3}//' >"$T/gone.yaml"
check "generated corpus, line_dedup alone: run" "$WINNOW" run "$T/gone.yaml" --no-progress 2>/dev/null
check "generated corpus, line_dedup alone: same as the Python reference" \
    python3 tests/e2e/line_dedup_ref.py '{}' "$T/gone" "$T/g.jsonl"
shard_sums "$T/gref" >"$T/gref.sums"
late=0
for k in 1 2 3 4; do
    gen "$T/k$k" >"$T/k$k.yaml"
    "$WINNOW" run "$T/k$k.yaml" --no-progress 2>/dev/null &
    pid=$!
    sleep "$(python3 -c "import random; random.seed($k); print(round(random.uniform(0.1, 0.9) * $total, 3))")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ -e "$T/k$k/run.json" ] && late=$((late + 1))
    for attempt in 1 2; do # a resumed run can be killed too
        "$WINNOW" run "$T/k$k.yaml" --resume --no-progress 2>/dev/null &
        pid=$!
        [ "$attempt" = 1 ] && { sleep 0.3; kill -9 "$pid" 2>/dev/null; }
        wait "$pid" 2>/dev/null
    done
    shard_sums "$T/k$k" >"$T/k$k.sums"
    check "kill $k: identical documents" cmp -s "$T/gref.sums" "$T/k$k.sums"
    check "kill $k: same reports" same_reports "$T/gref" "$T/k$k"
    check "kill $k: no temporary files" [ -z "$(find "$T/k$k" -name '*.tmp')" ]
done
check "most kills hit a running process ($late late of 4; run takes ${total}s)" [ "$late" -le 2 ]
finish
