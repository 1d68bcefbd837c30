# test_quality.sh - the four quality filters (gopher_quality,
# gopher_repetition, c4_filter, fineweb_quality) on the dolma Common Crawl
# sample in ../shared/corpora (skips when absent):
#   1. drop mode, per-stage drop counts per reason and C4's line counters
#      against tests/golden/quality_cc.expected, identical at --threads 1 and 2
#      (refresh with `bash tests/e2e/test_quality.sh --update`);
#   2. an independent cross-check with datatrove (pip-installed into
#      build/quality-venv when possible, else SKIP): its GopherQualityFilter,
#      GopherRepetitionFilter, C4QualityFilter and FineWebQualityFilter with
#      their default thresholds (= ours) judge every document; winnow's
#      annotate-mode verdicts must agree (keep/drop) on >= 97% per filter.
. "$(dirname "$0")/lib.sh"

CC=$SHARED/corpora/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz
GOLDEN=$ROOT/tests/golden/quality_cc.expected
if [ ! -r "$CC" ]; then echo "SKIP: ../shared/corpora not present"; exit 0; fi

manifest() { # workdir mode
    cat <<YAML
name: quality
workdir: $1
inputs:
  - path: $CC
stages:
  - gopher_quality: {mode: $2}
  - gopher_repetition: {mode: $2}
  - c4_filter: {mode: $2}
  - fineweb_quality: {mode: $2}
YAML
}
summary() { # run dir -> one line per stage/reason and C4 counter
    python3 - "$1" <<'PY'
import json, glob, sys
for f in sorted(glob.glob(f"{sys.argv[1]}/stages/0[1-4]-*/report.json")):
    r = json.load(open(f))
    print(f"{r['stage']} docs_in {r['docs_in']} docs_out {r['docs_out']} modified {r['modified']}")
    for k, v in sorted(r["dropped"].items()):
        print(f"{r['stage']} dropped {k} {v}")
    for k in sorted(r):
        if k.startswith("lines_") or k == "bytes_removed":
            print(f"{r['stage']} {k} {r[k]}")
PY
}

for th in 1 2; do
    manifest "$T/drop$th" drop >"$T/drop$th.yaml"
    check "drop run --threads $th" "$WINNOW" run "$T/drop$th.yaml" --threads $th --no-progress 2>/dev/null
    summary "$T/drop$th" >"$T/summary$th.txt"
done
check "same counts at 1 and 2 threads" cmp -s "$T/summary1.txt" "$T/summary2.txt"
check "same documents at 1 and 2 threads" [ "$(shard_sums "$T/drop1")" = "$(shard_sums "$T/drop2")" ]
if [ "${1:-}" = --update ]; then
    cp "$T/summary1.txt" "$GOLDEN"
    echo "updated $GOLDEN"
elif ! diff -u "$GOLDEN" "$T/summary1.txt"; then
    echo "  check failed: drop counts differ from $GOLDEN" >&2
    fails=$((fails + 1))
fi

# ---- independent cross-check with datatrove ---------------------------------
VENV=$ROOT/build/quality-venv
if ! "$VENV/bin/python" -c "import datatrove, spacy, regex" 2>/dev/null; then
    { python3 -m venv "$VENV" && timeout 300 "$VENV/bin/pip" install -q datatrove spacy regex; } >/dev/null 2>&1
fi
if ! "$VENV/bin/python" -c "import datatrove, spacy, regex" 2>/dev/null; then
    echo "SKIP: datatrove cross-check (pip install datatrove spacy regex failed)"
    finish
fi
manifest "$T/annotate" annotate >"$T/annotate.yaml"
check "annotate run" "$WINNOW" run "$T/annotate.yaml" --no-progress 2>/dev/null
"$VENV/bin/python" - "$T/annotate" "$CC" <<'PY' || fails=$((fails + 1))
import collections, glob, gzip, json, subprocess, sys
from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)
run, src = sys.argv[1], sys.argv[2]
ours = {}
for f in sorted(glob.glob(f"{run}/documents/*.zst")):
    for l in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n"):
        if l:
            r = json.loads(l)
            ours[r["id"]] = r["winnow"]
docs = [json.loads(l) for l in gzip.open(src, "rt", encoding="utf-8")]
filters = {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
           "c4_filter": C4QualityFilter(), "fineweb_quality": FineWebQualityFilter()}
low = 0
for name, flt in filters.items():
    agree, dis = 0, collections.Counter()
    for d in docs:
        res = flt.filter(Document(text=d["text"], id=d["id"]))
        ref = "pass" if res is True else res[1]
        mine = ours[d["id"]][name]
        if (ref == "pass") == (mine == "pass"):
            agree += 1
        else:
            dis[(ref, mine)] += 1
    print(f"datatrove agreement {name}: {agree}/{len(docs)} = {agree / len(docs):.2%}")
    for (r, m), c in dis.most_common():
        print(f"  {c} x datatrove {r} / winnow {m}")
    low += agree / len(docs) < 0.97
sys.exit(1 if low else 0)
PY
finish
