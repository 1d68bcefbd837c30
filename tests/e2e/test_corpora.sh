# test_corpora.sh - real third-party data from ../shared/corpora: the dolma
# Common Crawl sample (697 documents, 27 empty or whitespace-only) and a real
# Common Crawl WET file (one conversion record). Skips when ../shared is absent.
. "$(dirname "$0")/lib.sh"

CC=$SHARED/corpora/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz
WET=$SHARED/corpora/web/whirlwind.warc.wet.gz
if [ ! -r "$CC" ] || [ ! -r "$WET" ]; then echo "SKIP: ../shared/corpora not present"; exit 0; fi

cat >"$T/cc.yaml" <<YAML
name: cc
workdir: $T/cc
inputs:
  - path: $CC
stages:
  - length_filter: {min_words: 1}
YAML
check "cc run" "$WINNOW" run "$T/cc.yaml" --no-progress 2>/dev/null
R=$T/cc/stages
check "cc: 697 documents read" [ "$(json_get "$R/00-read/report.json" docs_out)" = 697 ]
check "cc: 27 empty/whitespace-only dropped" [ "$(json_get "$R/01-length_filter/report.json" dropped.too_few_words)" = 27 ]
check "cc: 670 written" [ "$(json_get "$R/02-write/report.json" docs_out)" = 670 ]
# Untouched records pass through byte-for-byte: compare with the source lines.
zstd -dc "$T"/cc/documents/*.zst >"$T/out.jsonl"
python3 - "$CC" "$T/out.jsonl" <<'PY' || fails=$((fails + 1))
import gzip, sys
src = [l.rstrip("\n") for l in gzip.open(sys.argv[1], "rt", encoding="utf-8")]
import json
kept = [l for l in src if json.loads(l)["text"].split()]
out = open(sys.argv[2], encoding="utf-8").read().split("\n")[:-1]
assert out == kept, "records changed on the way through"
PY

cat >"$T/wet.yaml" <<YAML
name: wet
workdir: $T/wet
inputs:
  - path: $WET
YAML
check "wet run" "$WINNOW" run "$T/wet.yaml" --no-progress 2>/dev/null
check "wet: 1 document" [ "$(json_get "$T/wet/stages/01-write/report.json" docs_out)" = 1 ]
zstd -dc "$T"/wet/documents/*.zst >"$T/wet.jsonl"
python3 - "$T/wet.jsonl" <<'PY' || fails=$((fails + 1))
import json, sys
(d,) = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert d["url"] == "https://an.wikipedia.org/wiki/Escopete", d["url"]
assert d["date"].startswith("2024-"), d["date"]
assert d["language"] == "spa", d.get("language")
assert d["id"].startswith("<urn:uuid:"), d["id"]
assert d["text"].startswith("Escopete"), d["text"][:40]
PY
finish
