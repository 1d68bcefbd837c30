# test_formats.sh - every input format gives the same documents: JSONL plain,
# .gz, .zst, .bz2, .xz, and inside tar, tar.gz, tar.zst and zip archives
# (read in place); text files per file and per line; a multi-record WET.
. "$(dirname "$0")/lib.sh"

python3 tests/e2e/gen_docs.py 500 "$T/docs.jsonl"
gzip -n -c "$T/docs.jsonl" >"$T/docs.jsonl.gz"
zstd -q -c "$T/docs.jsonl" >"$T/docs.jsonl.zst"
bzip2 -c "$T/docs.jsonl" >"$T/docs.jsonl.bz2"
xz -c "$T/docs.jsonl" >"$T/docs.jsonl.xz"
mkdir -p "$T/a" && cp "$T/docs.jsonl" "$T/a/docs.jsonl"
tar -C "$T/a" -cf "$T/docs.tar" docs.jsonl
tar -C "$T/a" -czf "$T/docs.tar.gz" docs.jsonl
tar -C "$T/a" -cf - docs.jsonl | zstd -q -c >"$T/docs.tar.zst"
python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[2],'docs.jsonl'); z.close()" "$T/docs.zip" "$T/docs.jsonl"

one() { # input file -> prints the sha256 of the output records
    cat >"$T/m.yaml" <<YAML
name: fmt
workdir: $T/run
inputs:
  - path: $1
stages:
  - normalize: {}
YAML
    "$WINNOW" run "$T/m.yaml" --no-progress 2>/dev/null || { echo "run failed for $1"; return 1; }
    zstd -dc "$T"/run/documents/*.zst | sha256sum
}
ref=$(one "$T/docs.jsonl")
check "plain jsonl gives 500 docs" [ "$(json_get "$T/run/stages/02-write/report.json" docs_out)" = 500 ]
for f in docs.jsonl.gz docs.jsonl.zst docs.jsonl.bz2 docs.jsonl.xz docs.tar docs.tar.gz docs.tar.zst docs.zip; do
    check "$f gives the same records as plain JSONL" [ "$(one "$T/$f")" = "$ref" ]
done

# text: per file and per line
printf 'first line\nsecond line\n\nfourth line\n' >"$T/notes.txt"
cat >"$T/m.yaml" <<YAML
name: fmt
workdir: $T/run
inputs:
  - {path: $T/notes.txt}
  - {path: $T/notes.txt, text_unit: line}
YAML
check "text run" "$WINNOW" run "$T/m.yaml" --no-progress 2>/dev/null
zstd -dc "$T"/run/documents/*.zst >"$T/text.jsonl"
python3 - "$T/text.jsonl" "$T/notes.txt" <<'PY' || fails=$((fails + 1))
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
assert len(docs) == 5, len(docs)            # one file document + four line documents
assert docs[0]["text"] == open(sys.argv[2]).read() and docs[0]["id"] == sys.argv[2]
assert [d["text"] for d in docs[1:]] == ["first line", "second line", "", "fourth line"]
assert docs[2]["id"] == sys.argv[2] + ":2" and docs[2]["source"] == sys.argv[2]
PY

# WET: warcinfo + two conversion records, CRLF headers, gzip members per record
python3 - "$T/x.warc.wet.gz" <<'PY'
import gzip, sys
def rec(t, uri, body, rid):
    body = body.encode()
    h = (f"WARC/1.0\r\nWARC-Type: {t}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-05-01T00:00:00Z\r\n"
         f"WARC-Record-ID: <urn:uuid:{rid}>\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n")
    return h.encode() + body + b"\r\n\r\n"
with open(sys.argv[1], "wb") as f:
    f.write(gzip.compress(rec("warcinfo", "", "software: test\r\n", "0")))
    f.write(gzip.compress(rec("conversion", "https://example.org/a", "Alpha page.\nSecond line.", "1")))
    f.write(gzip.compress(rec("conversion", "https://example.org/b", "Beta page, été.", "2")))
PY
cat >"$T/m.yaml" <<YAML
name: fmt
workdir: $T/run
inputs:
  - {path: $T/x.warc.wet.gz}
YAML
check "wet run" "$WINNOW" run "$T/m.yaml" --no-progress 2>/dev/null
zstd -dc "$T"/run/documents/*.zst >"$T/wet.jsonl"
python3 - "$T/wet.jsonl" <<'PY' || fails=$((fails + 1))
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
assert [d["url"] for d in docs] == ["https://example.org/a", "https://example.org/b"], docs
assert docs[0]["text"] == "Alpha page.\nSecond line." and docs[1]["text"] == "Beta page, été."
assert docs[1]["id"] == "<urn:uuid:2>" and docs[1]["date"] == "2024-05-01T00:00:00Z"
PY
finish
