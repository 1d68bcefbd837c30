# test_synthesize.sh - the synthesize stage end to end.
#  1. template mode on the shipped pipeline (pipelines/synth_template.yaml):
#     byte-identical documents for --threads 1, 2, 4; every generated document
#     right after its source, with its provenance; every worked answer
#     recomputed in Python; the per-template report adds up;
#  2. ratio controls: a fractional per_doc matches a Python recomputation of
#     the per-document draw (xxh3-64 of the id), max_total takes the first
#     documents of the stream, keep_source: false passes only generated ones;
#  3. failures: counted per reason with a FILE:LINE example (skip), or the
#     run stops naming them (fail); a broken template file is a manifest
#     error naming its line;
#  4. killed after a checkpoint and resumed: identical documents and report;
#  5. model mode with a small GPT trained here: byte-identical documents for
#     --threads 1 and 2, valid UTF-8, at most max_tokens tokens each (and the
#     report's count is their sum), greedy continuations that start with
#     their prompt, the shipped prompts file equal to the built-in set, and
#     resume;
#  6. endpoint mode against `winnow serve` on loopback (the model of 5): the
#     server's log and the report agree on the requests; a rerun with the
#     same cache sends none and writes the same documents; a server that
#     fails every third request and stalls past the client's timeout loses
#     nothing (same texts, retries and timeouts counted); a server that
#     always fails and a closed port are counted per reason (or stop the run);
#     the chat API; killed mid-run and resumed: identical documents, and no
#     prompt sent twice (but for the one in flight at the kill).
. "$(dirname "$0")/lib.sh"

TRAIN_BIN=${WINNOW_TRAIN:-$ROOT/winnow}
[ -x "$TRAIN_BIN" ] || TRAIN_BIN=$WINNOW

manifest() { # workdir, synthesize params, [extra stages]
    cat <<YAML
name: synth
workdir: $1
batch_bytes: 16KiB
inputs:
  - path: samples/web/*.jsonl.zst
stages:
  - length_filter: {min_words: 20}
  - synthesize: {$2}
${3:-}
outputs:
  documents: {shard_bytes: 64KiB}
YAML
}
TMPL="mode: template, templates: pipelines/synth/qa_arith.tmpl, seed: 3"

# ---- 1. the shipped pipeline, determinism, provenance, worked answers ----------------
sed "s|^name: synth_template|name: synth_template\nworkdir: $T/ship|" pipelines/synth_template.yaml >"$T/ship.yaml"
for t in 1 2 4; do
    check "shipped pipeline, --threads $t" "$WINNOW" run "$T/ship.yaml" --threads "$t" --no-progress 2>/dev/null
    shard_sums "$T/ship" >"$T/ship.$t"
done
check "threads 2 == threads 1" cmp -s "$T/ship.1" "$T/ship.2"
check "threads 4 == threads 1" cmp -s "$T/ship.1" "$T/ship.4"

manifest "$T/plain" "$TMPL" >"$T/plain.yaml"
check "template run" "$WINNOW" run "$T/plain.yaml" --no-progress --threads 3 2>/dev/null
python3 - "$T/plain" <<'PY' || fails=$((fails + 1))
import glob, json, re, subprocess, sys
run = sys.argv[1]
recs = []
for f in sorted(glob.glob(run + "/documents/*.zst")):
    out = subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode()
    recs += [json.loads(l) for l in out.split("\n") if l]
rep = json.load(open(run + "/stages/02-synthesize/report.json"))
bad = []
def need(c, what):
    if not c: bad.append(what)
prev_src = None
synth = 0
for r in recs:
    w = r.get("winnow", {})
    if not w.get("synthetic"):
        prev_src = r["id"]
        continue
    synth += 1
    s = w["synth"]
    need(set(r) == {"id", "text", "winnow"}, f"{r['id']}: fields {sorted(r)}")
    need(s["mode"] == "template" and s["seed"] == 3 and s["index"] == 0, f"{r['id']}: provenance {s}")
    need(s["source"] == prev_src and r["id"] == prev_src + "#synth-0", f"{r['id']}: not right after its source {prev_src}")
    t = r["text"]
    # every "x op y = z" with integers, recomputed (÷ is checked through its worked lines)
    for a, op, b, c in re.findall(r"(\d+) ([-+×]) (\d+) = (\d+)(?![\d ×+])", t):
        a, b, c = int(a), int(b), int(c)
        need({"+": a + b, "-": a - b, "×": a * b}[op] == c, f"{r['id']}: {a} {op} {b} = {c} in {t!r}")
    m = re.search(r"What is (\d+) × (\d+)\?", t) or re.search(r"(\d+) × (\d+)\?", t)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        need(t.endswith(f"= {a * b}."), f"{r['id']}: product of {a} × {b} in {t!r}")
    m = re.search(r"(\d+) ÷ (\d+)", t)
    if m:
        n, d = int(m.group(1)), int(m.group(2))
        need(f"quotient is {n // d} and the remainder is {n % d}." in t, f"{r['id']}: {n} ÷ {d} in {t!r}")
    if s.get("template") == "source_quote":
        need("The page at https://" in t, f"{r['id']}: url of the source in {t!r}")
    need(s.get("template") in rep["generated_per_template"], f"{r['id']}: template {s.get('template')}")
sources = len(recs) - synth
need(rep["sources"] == sources and rep["generated"] == synth == sources, f"report {rep['sources']} {rep['generated']} vs {sources} {synth}")
need(sum(rep["generated_per_template"].values()) == synth, "per-template counts add up")
need(rep["generated_per_mode"] == {"template": synth}, "per-mode counts")
need(all(v > 0 for v in rep["generated_per_template"].values()), f"every template used: {rep['generated_per_template']}")
need(rep["failures"] == 0 and rep["docs_out"] == 2 * sources, "no failures, docs out")
for b in bad[:10]:
    print("  ", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# ---- 2. ratio controls ------------------------------------------------------------
manifest "$T/frac" "$TMPL, per_doc: 1.3" >"$T/frac.yaml"
check "per_doc 1.3" "$WINNOW" run "$T/frac.yaml" --no-progress 2>/dev/null
manifest "$T/cap" "$TMPL, per_doc: 2, max_total: 101" >"$T/cap.yaml"
check "max_total 101" "$WINNOW" run "$T/cap.yaml" --no-progress 2>/dev/null
manifest "$T/only" "$TMPL, keep_source: false, use: 'addition, capital'" >"$T/only.yaml"
check "keep_source false" "$WINNOW" run "$T/only.yaml" --no-progress 2>/dev/null
python3 - "$T" <<'PY' || fails=$((fails + 1))
import glob, json, subprocess, sys, xxhash
T = sys.argv[1]
def docs(run):
    out = []
    for f in sorted(glob.glob(f"{T}/{run}/documents/*.zst")):
        out += [json.loads(l) for l in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n") if l]
    return out
bad = []
# per_doc 1.3: one each, plus one more when xxh3-64(id, seed ^ "synth-ra") / 2^64 < 0.3
frac = docs("frac")
src = [r for r in frac if not r.get("winnow", {}).get("synthetic")]
for i, r in enumerate(frac):
    if r.get("winnow", {}).get("synthetic"):
        continue
    h = xxhash.xxh3_64_intdigest(r["id"].encode(), seed=3 ^ 0x73796e74682d7261)
    want = 1 + ((h >> 11) * 2.0 ** -53 < 0.3)
    got = 0
    while i + 1 + got < len(frac) and frac[i + 1 + got].get("winnow", {}).get("synth", {}).get("source") == r["id"]:
        s = frac[i + 1 + got]["winnow"]["synth"]
        if s["index"] != got: bad.append(f"index {s['index']} at {got}")
        got += 1
    if got != want:
        bad.append(f"{r['id']}: {got} generated, expected {want}")
rep = json.load(open(f"{T}/frac/stages/02-synthesize/report.json"))
extra = rep["generated"] - len(src)
if not (0.2 * len(src) < extra < 0.4 * len(src)): bad.append(f"per_doc 1.3: {extra} extra of {len(src)}")
# max_total: the first 101 generations of the stream, 2 per source
cap = docs("cap")
rep = json.load(open(f"{T}/cap/stages/02-synthesize/report.json"))
gen = [r for r in cap if r.get("winnow", {}).get("synthetic")]
srcs = [r["id"] for r in cap if not r.get("winnow", {}).get("synthetic")]
want = [(s, k) for s in srcs for k in (0, 1)][:101]
got = [(r["winnow"]["synth"]["source"], r["winnow"]["synth"]["index"]) for r in gen]
if got != want: bad.append(f"max_total: got {got[:4]}... ({len(got)})")
if rep["generated"] != 101 or rep["capped"] != rep["planned"] - 101: bad.append(f"cap report {rep['generated']} {rep['capped']} {rep['planned']}")
# keep_source false: generated only, from the two templates asked for
only = docs("only")
rep = json.load(open(f"{T}/only/stages/02-synthesize/report.json"))
if not only or any(not r.get("winnow", {}).get("synthetic") for r in only): bad.append("keep_source false kept a source")
if {r["winnow"]["synth"]["template"] for r in only} != {"addition", "capital"}: bad.append("use: restricts templates")
if rep["dropped"].get("source_replaced") != rep["sources"] or rep["docs_out"] != len(only): bad.append(f"only: {rep['dropped']} {rep['docs_out']}")
for b in bad[:10]: print("  ", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# ---- 3. failures ------------------------------------------------------------------
cat >"$T/fail.tmpl" <<'EOF'
template title [1]:
  Title: {doc.title}
template ok [1]:
  {a = int 0..3} / {b = int 0..1} = {calc a / b}
EOF
manifest "$T/skip" "templates: $T/fail.tmpl" >"$T/skip.yaml"
check "failures skipped" "$WINNOW" run "$T/skip.yaml" --no-progress 2>/dev/null
rep=$T/skip/stages/02-synthesize/report.json
check "missing fields counted" [ "$(json_get "$rep" failures_by_reason.missing_field)" -gt 0 ]
check "division by zero counted" [ "$(json_get "$rep" failures_by_reason.arithmetic)" -gt 0 ]
check "failures add up" [ "$(json_get "$rep" failures)" -eq $(($(json_get "$rep" planned) - $(json_get "$rep" generated))) ]
check "example names file and line" contains "$rep" "fail.tmpl:2: the source document has no field 'title'"
check "example names file and line (calc)" contains "$rep" "fail.tmpl:4: division by zero"
manifest "$T/stop" "templates: $T/fail.tmpl, on_failure: fail" >"$T/stop.yaml"
"$WINNOW" run "$T/stop.yaml" --no-progress 2>"$T/stop.err"
check "on_failure fail stops the run" [ $? -eq 1 ]
check "and says where" grep -q "fail.tmpl:[24]: " "$T/stop.err"
printf 'template t:\n  {a b}\n' >"$T/broken.tmpl"
manifest "$T/broken" "templates: $T/broken.tmpl" >"$T/broken.yaml"
"$WINNOW" run "$T/broken.yaml" --no-progress 2>"$T/broken.err"
check "broken template: a manifest error (exit 2)" [ $? -eq 2 ]
check "broken template: file and line" contains "$T/broken.err" "broken.tmpl:2: unexpected 'b' in a slot"
manifest "$T/late" "$TMPL" "  - tokenize: {tokenizer: samples/tokenizer.json}
  - synthesize: {$TMPL}" >"$T/late.yaml"
"$WINNOW" run "$T/late.yaml" --no-progress 2>"$T/late.err"
check "synthesize after tokenize is refused" contains "$T/late.err" "place synthesize before tokenize"

# ---- 4. resume ------------------------------------------------------------------
manifest "$T/ref" "$TMPL, per_doc: 1.5" >"$T/ref.yaml"
check "reference run" "$WINNOW" run "$T/ref.yaml" --no-progress 2>/dev/null
shard_sums "$T/ref" >"$T/ref.sums"
check "several shards" [ "$(wc -l <"$T/ref.sums")" -ge 3 ]
for k in 1 2; do
    manifest "$T/k$k" "$TMPL, per_doc: 1.5" >"$T/k$k.yaml"
    WINNOW_TEST_KILL_AT_CHECKPOINT=$k "$WINNOW" run "$T/k$k.yaml" --no-progress 2>/dev/null
    check "killed at checkpoint $k" [ ! -e "$T/k$k/run.json" ]
    check "resumed after checkpoint $k" "$WINNOW" run "$T/k$k.yaml" --resume --no-progress 2>/dev/null
    shard_sums "$T/k$k" >"$T/k$k.sums"
    check "resume $k: identical documents" cmp -s "$T/ref.sums" "$T/k$k.sums"
    for key in sources planned generated generated_per_template.addition; do
        check "resume $k: report $key" [ "$(json_get "$T/k$k/stages/02-synthesize/report.json" $key)" = \
            "$(json_get "$T/ref/stages/02-synthesize/report.json" $key)" ]
    done
done

# ---- 5. model mode ------------------------------------------------------------
cat >"$T/shards.yaml" <<YAML
name: shards
workdir: $T/shards
inputs:
  - path: samples/web/*.jsonl.zst
stages:
  - tokenize: {tokenizer: samples/tokenizer.json}
  - pack: {shard_tokens: 1000000}
YAML
check "shards for a small model" "$TRAIN_BIN" run "$T/shards.yaml" --no-progress 2>/dev/null
check "a small model" "$TRAIN_BIN" train --data "$T/shards/shards/train_*.bin" --out "$T/model" --layers 1 --heads 2 \
    --dim 32 --context 48 --batch 4 --steps 25 --lr 0.01 --tokenizer samples/tokenizer.json >/dev/null 2>&1
MODEL="mode: model, model: $T/model/model.safetensors, tokenizer: samples/tokenizer.json, seed: 5"
model_manifest() { # workdir, extra params
    cat <<YAML
name: synth_model
workdir: $1
batch_bytes: 16KiB
inputs:
  - path: samples/web/web-000.jsonl.zst
stages:
  - length_filter: {min_words: 20}
  - synthesize: {$MODEL, per_doc: 0.15, max_tokens: 12, batch: 4$2}
outputs:
  documents: {shard_bytes: 16KiB}
YAML
}
for t in 1 2; do
    model_manifest "$T/m$t" "" >"$T/m$t.yaml"
    check "model mode, --threads $t" "$WINNOW" run "$T/m$t.yaml" --threads "$t" --no-progress 2>/dev/null
    shard_sums "$T/m$t" >"$T/m$t.sums"
done
check "model mode: threads 2 == threads 1" cmp -s "$T/m1.sums" "$T/m2.sums"
model_manifest "$T/mfile" ", prompts: pipelines/synth/prompts.tmpl" >"$T/mfile.yaml"
check "model mode, shipped prompts file" "$WINNOW" run "$T/mfile.yaml" --no-progress 2>/dev/null
shard_sums "$T/mfile" >"$T/mfile.sums"
check "pipelines/synth/prompts.tmpl is the built-in set" cmp -s "$T/m1.sums" "$T/mfile.sums"
model_manifest "$T/greedy" ", temperature: 0, use: continue, include_prompt: true" >"$T/greedy.yaml"
check "model mode, greedy, with the prompt" "$WINNOW" run "$T/greedy.yaml" --no-progress 2>/dev/null
python3 - "$T" <<'PY' || fails=$((fails + 1))
import glob, json, subprocess, sys
T = sys.argv[1]
def docs(run):
    out = []
    for f in sorted(glob.glob(f"{T}/{run}/documents/*.zst")):
        raw = subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout
        out += [json.loads(l) for l in raw.decode("utf-8").split("\n") if l]  # strict UTF-8
    return out
bad = []
recs = docs("m1")
rep = json.load(open(f"{T}/m1/stages/02-synthesize/report.json"))
gen = [r for r in recs if r.get("winnow", {}).get("synthetic")]
if len(gen) < 5: bad.append(f"only {len(gen)} generated")
for r in gen:
    s = r["winnow"]["synth"]
    if not (1 <= s["tokens"] <= 12): bad.append(f"{r['id']}: {s['tokens']} tokens")
    if s["mode"] != "model" or s["model"] != f"{T}/model/model.safetensors" or s["prompt"] not in rep["generated_per_prompt"]:
        bad.append(f"{r['id']}: provenance {s}")
    if not r["text"]: bad.append(f"{r['id']}: empty text")
if sum(r["winnow"]["synth"]["tokens"] for r in gen) != rep["tokens_generated"]: bad.append("tokens_generated is not the sum")
if rep["generated"] + rep["failures"] != rep["planned"]: bad.append("planned = generated + failures")
if not any(r["winnow"]["synth"]["tokens"] == 12 for r in gen): bad.append("no document reached max_tokens")
if rep["forward_tokens"] < rep["tokens_generated"] or rep["model"]["layers"] != 1: bad.append(f"report {rep['model']}")
# greedy continuations start with their prompt: the first 120 words of the source
g = docs("greedy")
src = {r["id"]: r["text"] for r in g if not r.get("winnow", {}).get("synthetic")}
gg = [r for r in g if r.get("winnow", {}).get("synthetic")]
if not gg: bad.append("greedy: nothing generated")
for r in gg:
    s = r["winnow"]["synth"]
    prompt = " ".join(src[s["source"]].split()[:120])
    words = src[s["source"]].lstrip()
    # the prompt is the source text from its first word to the end of the 120th, as written
    cut = len(words)
    n, i = 0, 0
    while i < len(words) and n < 120:
        while i < len(words) and not words[i].isspace(): i += 1
        n += 1; cut = i
        while i < len(words) and words[i].isspace(): i += 1
    if not r["text"].startswith(words[:cut]) or len(r["text"]) <= cut: bad.append(f"{r['id']}: does not start with its prompt")
    if s["prompt"] != "continue": bad.append(f"{r['id']}: prompt {s['prompt']}")
for b in bad[:10]: print("  ", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
model_manifest "$T/mk" "" >"$T/mk.yaml"
WINNOW_TEST_KILL_AT_CHECKPOINT=1 "$WINNOW" run "$T/mk.yaml" --no-progress 2>/dev/null
check "model mode: killed at checkpoint 1" [ ! -e "$T/mk/run.json" ]
check "model mode: resumed" "$WINNOW" run "$T/mk.yaml" --resume --no-progress 2>/dev/null
shard_sums "$T/mk" >"$T/mk.sums"
check "model mode: resume gives identical documents" cmp -s "$T/m1.sums" "$T/mk.sums"
check "model mode: resume gives the same token count" [ "$(json_get "$T/mk/stages/02-synthesize/report.json" tokens_generated)" = \
    "$(json_get "$T/m1/stages/02-synthesize/report.json" tokens_generated)" ]

# ---- 6. endpoint mode against winnow serve -------------------------------------
SERVERS=()
trap 'for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; done; [ -n "${KEEP_T:-}" ] || rm -rf "$T"' EXIT
serve() { # name, extra flags: starts a server, sets PORT
    rm -f "$T/$1.port"
    "$WINNOW" serve "$T/model/model.safetensors" --tokenizer samples/tokenizer.json --port 0 --threads 1 \
        --port-file "$T/$1.port" "${@:2}" 2>"$T/$1.log" &
    SERVERS+=($!)
    for _ in $(seq 200); do [ -s "$T/$1.port" ] && break; sleep 0.05; done
    PORT=$(cat "$T/$1.port" 2>/dev/null)
}
posts() { grep -c " POST " "$T/$1.log"; }
ep_manifest() { # workdir, port, extra params
    cat <<YAML
name: synth_endpoint
workdir: $1
batch_bytes: 16KiB
inputs:
  - path: samples/web/web-000.jsonl.zst
stages:
  - length_filter: {min_words: 20}
  - synthesize: {mode: endpoint, url: "http://127.0.0.1:$2/v1/completions", per_doc: ${PER_DOC:-0.12}, max_tokens: 8, seed: 6, backoff_ms: 20$3}
outputs:
  documents: {shard_bytes: 16KiB}
YAML
}
texts() { # run dir: "id<TAB>text" of the generated documents, in order
    python3 -c 'import glob, json, subprocess, sys
for f in sorted(glob.glob(sys.argv[1] + "/documents/*.zst")):
    for l in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n"):
        r = json.loads(l) if l else {}
        if r.get("winnow", {}).get("synthetic"): print(r["id"] + "\t" + json.dumps(r["text"]) + "\t" + str(r["winnow"]["synth"]["tokens"]))' "$1"
}
serve clean
check "winnow serve started" [ -n "$PORT" ]
CLEAN=$PORT
check "serve: HTTP errors and endpoints" python3 - "$CLEAN" <<'PY'
import json, sys, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
def call(path, body=None, method=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
assert call("/health") == (200, {"status": "ok"})
assert call("/v1/models")[1]["data"][0]["object"] == "model"
code, r = call("/v1/completions", b'{"prompt": "x",')
assert code == 400 and "at byte 15" in r["error"]["message"], r
assert call("/v1/completions", b'{"prompt": ["a", "b"]}')[0] == 400
assert call("/v1/completions", b'{"prompt": "a", "max_tokens": 0}')[0] == 400
assert call("/v1/completions", method="GET")[0] == 405
assert call("/nowhere")[0] == 404
code, a = call("/v1/completions", b'{"prompt": "The", "max_tokens": 5, "seed": 9}')
code2, b = call("/v1/completions", b'{"prompt": "The", "max_tokens": 5, "seed": 9}')
assert code == code2 == 200 and a["choices"][0]["text"] == b["choices"][0]["text"], (a, b)
assert 1 <= a["usage"]["completion_tokens"] <= 5 and a["object"] == "text_completion"
PY
ep_manifest "$T/e1" "$CLEAN" "" >"$T/e1.yaml"
check "endpoint mode" "$WINNOW" run "$T/e1.yaml" --no-progress 2>/dev/null
rep=$T/e1/stages/02-synthesize/report.json
gen=$(json_get "$rep" generated)
check "endpoint: documents generated ($gen)" [ "$gen" -ge 5 ]
check "endpoint: the server saw every request" [ "$(posts clean)" -eq $(($(json_get "$rep" requests) + 5)) ] # + the 5 POSTs of the checks above
check "endpoint: one request per prompt" [ "$(json_get "$rep" requests)" -eq "$(json_get "$rep" planned)" ]
check "endpoint: no failures" [ "$(json_get "$rep" failures)" -eq 0 ]
check "endpoint: responses cached" [ "$(find "$T/e1/cache/02-synthesize" -name '*.json' | wc -l)" -eq "$(json_get "$rep" requests)" ]
texts "$T/e1" >"$T/e1.texts"
check "endpoint: provenance and token counts" python3 - "$T/e1" "$CLEAN" <<'PY'
import glob, json, subprocess, sys
n = 0
for f in sorted(glob.glob(sys.argv[1] + "/documents/*.zst")):
    for l in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n"):
        r = json.loads(l) if l else {}
        s = r.get("winnow", {}).get("synth")
        if not s: continue
        n += 1
        assert s["mode"] == "endpoint" and s["endpoint"] == f"http://127.0.0.1:{sys.argv[2]}/v1/completions", s
        assert s["prompt"] in ("rephrase", "continue", "summarize", "qa") and 1 <= s["tokens"] <= 8 and r["text"], r
assert n > 0
PY
before=$(posts clean)
ep_manifest "$T/e2" "$CLEAN" ", cache: $T/e1/cache/02-synthesize" >"$T/e2.yaml"
check "endpoint: rerun on the cache" "$WINNOW" run "$T/e2.yaml" --no-progress 2>/dev/null
check "endpoint: the rerun sent nothing" [ "$(posts clean)" -eq "$before" ]
check "endpoint: all cache hits" [ "$(json_get "$T/e2/stages/02-synthesize/report.json" cache_hits)" -eq "$(json_get "$rep" planned)" ]
shard_sums "$T/e1" >"$T/e1.sums"
shard_sums "$T/e2" >"$T/e2.sums"
check "endpoint: the rerun's documents are identical" cmp -s "$T/e1.sums" "$T/e2.sums"

serve flaky --fail-every 3 --delay-ms 1500 --delay-every 4
ep_manifest "$T/e3" "$PORT" ", retries: 8, timeout_ms: 700, concurrency: 3, cache: none" >"$T/e3.yaml"
check "endpoint: a flaky, slow server" "$WINNOW" run "$T/e3.yaml" --no-progress 2>/dev/null
rep3=$T/e3/stages/02-synthesize/report.json
texts "$T/e3" | sed "s/$PORT/PORT/" >"$T/e3.texts"
check "flaky server: nothing lost, the same texts" cmp -s "$T/e1.texts" "$T/e3.texts"
check "flaky server: failed attempts counted" [ "$(json_get "$rep3" request_failures)" -gt 0 ]
check "flaky server: timeouts counted" [ "$(json_get "$rep3" timeouts)" -gt 0 ]
check "flaky server: retries = failed attempts" [ "$(json_get "$rep3" retries)" -eq "$(json_get "$rep3" request_failures)" ]
check "flaky server: requests = prompts + retries" [ "$(json_get "$rep3" requests)" -eq $(($(json_get "$rep3" planned) + $(json_get "$rep3" retries))) ]
check "flaky server: no failures in the end" [ "$(json_get "$rep3" failures)" -eq 0 ]

serve down --fail-every 1
ep_manifest "$T/e4" "$PORT" ", retries: 2, cache: none" >"$T/e4.yaml"
check "endpoint: a server that always fails (skip)" "$WINNOW" run "$T/e4.yaml" --no-progress 2>/dev/null
rep4=$T/e4/stages/02-synthesize/report.json
planned=$(json_get "$rep4" planned)
check "always failing: every prompt counted as failed" [ "$(json_get "$rep4" failures_by_reason.http_5xx)" -eq "$planned" ]
check "always failing: three attempts each" [ "$(json_get "$rep4" requests)" -eq $((3 * planned)) ]
check "always failing: the sources still pass" [ "$(json_get "$rep4" docs_out)" -eq "$(json_get "$rep4" docs_in)" ]
check "always failing: the example says why" contains "$rep4" "HTTP 503: injected failure (--fail-every) (after 3 attempts)"
ep_manifest "$T/e5" "$PORT" ", retries: 0, cache: none, on_failure: fail" >"$T/e5.yaml"
"$WINNOW" run "$T/e5.yaml" --no-progress 2>"$T/e5.err"
check "always failing, on_failure fail: the run stops" [ $? -eq 1 ]
check "always failing, on_failure fail: names the endpoint" contains "$T/e5.err" "127.0.0.1:$PORT/v1/completions: HTTP 503"
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ep_manifest "$T/e6" "$closed" ", retries: 1, cache: none" >"$T/e6.yaml"
check "endpoint: a closed port" "$WINNOW" run "$T/e6.yaml" --no-progress 2>/dev/null
check "closed port: counted as connect failures" [ "$(json_get "$T/e6/stages/02-synthesize/report.json" failures_by_reason.connect)" -eq "$planned" ]

ep_manifest "$T/e7" "$CLEAN" ", api: chat, url: \"http://127.0.0.1:$CLEAN/v1/chat/completions\"" |
    sed 's|url: "http://127.0.0.1:[0-9]*/v1/completions", ||' >"$T/e7.yaml"
check "endpoint: chat api" "$WINNOW" run "$T/e7.yaml" --no-progress 2>/dev/null
check "chat api: documents generated" [ "$(json_get "$T/e7/stages/02-synthesize/report.json" generated)" -gt 0 ]
check "chat api: the server saw chat requests" grep -q "POST /v1/chat/completions 200" "$T/clean.log"

serve resume
PER_DOC=0.3 ep_manifest "$T/e8" "$PORT" ", concurrency: 1" >"$T/e8.yaml"
"$WINNOW" run "$T/e8.yaml" --no-progress 2>/dev/null &
pid=$!
for _ in $(seq 600); do [ "$(posts resume)" -ge 25 ] && break; sleep 0.05; done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
check "endpoint: killed mid-run (after $(posts resume) requests)" [ ! -e "$T/e8/run.json" -a "$(posts resume)" -ge 25 ]
check "endpoint: resumed" "$WINNOW" run "$T/e8.yaml" --resume --no-progress 2>/dev/null
PER_DOC=0.3 ep_manifest "$T/e9" "$PORT" ", concurrency: 1, cache: none" >"$T/e9.yaml"
sent=$(posts resume)
check "endpoint: uninterrupted reference" "$WINNOW" run "$T/e9.yaml" --no-progress 2>/dev/null
prompts=$(($(posts resume) - sent))
check "resume: identical documents" cmp -s <(texts "$T/e8") <(texts "$T/e9")
check "resume: no prompt sent twice ($sent sent for $prompts prompts; one may have been in flight)" \
    [ "$sent" -ge "$prompts" -a "$sent" -le $((prompts + 1)) ]

finish
