#!/usr/bin/env bash
# bench_text_filters.sh - throughput of regex_filter (50 patterns), pii_redact and
# fasttext_filter (when the `fasttext` tool is installed, to train the model), each alone in
# a pipeline, at --threads 1 and 2. See BENCHMARKS.md, "Regex, URL and PII filters".
#
# Input: the first BENCH_TF_BYTES (default 100000000) of build/bench/corpus.jsonl.zst, whole
# lines (generated with `build/gen_corpus build/bench/corpus.jsonl.zst 200000000` if missing).
# MB/s = the stage's report.json bytes_in / wall_seconds (1 MB = 1e6 bytes of text; the
# reader and writer are not counted), best of BENCH_TF_REPEATS (default 3).
#
# The 50 patterns (build/bench/tf/patterns.txt) are typical boilerplate/spam filters:
# case-insensitive phrases with \b, a few alternations and classes. None matches the
# generated text, so every pattern scans every document (the worst case for drop).
set -euo pipefail
cd "$(dirname "$0")/../.."
BYTES=${BENCH_TF_BYTES:-100000000}
REPEATS=${BENCH_TF_REPEATS:-3}
D=build/bench
T=$D/tf
CORPUS=$D/corpus.jsonl.zst
[[ -x ./winnow ]] || { echo "bench_text_filters: ./winnow missing (run 'make')" >&2; exit 1; }
mkdir -p "$T"
if [[ ! -f $CORPUS ]]; then
    make build/gen_corpus >/dev/null
    build/gen_corpus "$CORPUS.tmp" 200000000 2>/dev/null
    mv "$CORPUS.tmp" "$CORPUS"
fi
{ zstd -dc "$CORPUS" 2>/dev/null || true; } | head -c "$BYTES" >"$T/head.jsonl"
python3 - "$T/head.jsonl" <<'EOF'
import sys
p = sys.argv[1]; d = open(p, "rb").read(); open(p, "wb").write(d[: d.rfind(b"\n") + 1])
EOF
zstd -q -f -3 --rm "$T/head.jsonl" -o "$T/input.jsonl.zst"

cat >"$T/patterns.txt" <<'EOF'
(?i)\bclick here\b
(?i)\bsubscribe now\b
(?i)\blorem ipsum\b
(?i)\bjavascript\b
(?i)\bcookie policy\b
(?i)\bprivacy policy\b
(?i)\bterms of (?:use|service)\b
(?i)\ball rights reserved\b
(?i)\bsign in\b
(?i)\blog ?in to\b
(?i)\bbuy (?:cheap|now)\b
(?i)\bfree shipping\b
(?i)\blimited time offer\b
(?i)\bcasino\b
(?i)\bviagra\b
(?i)\bcialis\b
(?i)\bpayday loans?\b
(?i)\bonline pharmacy\b
(?i)\bcrypto(?:currency)? giveaway\b
(?i)\bwork from home\b
(?i)\bmake money fast\b
(?i)\bweight loss pills?\b
(?i)\bhot singles\b
(?i)\bxxx\b
(?i)\bporn\w*
(?i)\bescort services?\b
(?i)\bdownload (?:now|free)\b
(?i)\bcracked? (?:version|software)\b
(?i)\bkeygen\b
(?i)\btorrent\b
(?i)\bread more\b
(?i)\bitems? in (?:your )?cart\b
(?i)\badd to (?:cart|basket)\b
(?i)\bskip to (?:main )?content\b
(?i)\bpowered by wordpress\b
(?i)\bplease enable javascript\b
(?i)\bthis site uses cookies\b
(?i)\byou are here:
(?i)\bcopyright \d{4}
(?i)\bposted by \w+ on\b
\b[A-Z]{12,}\b
(?:https?://\S+\s+){5}
(?i)\bno obligation\b
[!?]{4,}
\.{5,}
(?:\$\s?\d+(?:\.\d\d)?\s+){4}
(?i)\b(?:win|won) (?:a|an) (?:iphone|ipad|prize)\b
(?i)\bcall now\b
(?i)\bact now\b
(?i)\bunsubscribe\b
EOF
[[ $(grep -c . "$T/patterns.txt") -eq 50 ]] || { echo "bench_text_filters: want 50 patterns" >&2; exit 1; }

manifest() { # name stage
    cat <<EOF
name: $1
workdir: $T/run-$1
batch_bytes: 4MiB
inputs:
  - path: $T/input.jsonl.zst
    format: jsonl
stages:
  - $2
EOF
}
manifest regex "regex_filter: {patterns_file: $T/patterns.txt}" >"$T/regex.yaml"
manifest pii "pii_redact: {}" >"$T/pii.yaml"
STAGES="regex pii"
if command -v fasttext >/dev/null; then
    # a small supervised model (dim 16, char 2-4-grams, word bigrams) trained by the reference tool
    # on 20k documents of the input, labelled by a crude rule (length), as a classifier stand-in
    python3 - "$T" <<'PY'
import json, subprocess, sys
T = sys.argv[1]
out = open(f"{T}/ft-train.txt", "w")
p = subprocess.Popen(["zstd", "-dc", f"{T}/input.jsonl.zst"], stdout=subprocess.PIPE, text=True)
for i, line in enumerate(p.stdout):
    if i == 20000: break
    t = json.loads(line)["text"].replace("\n", " ")
    out.write(("__label__long " if len(t) > 3000 else "__label__short ") + t + "\n")
p.kill()
PY
    fasttext supervised -input "$T/ft-train.txt" -output "$T/ft" -dim 16 -epoch 1 -minn 2 -maxn 4 \
        -wordNgrams 2 -bucket 200000 -thread 2 -verbose 0
    manifest fasttext "fasttext_filter: {model: $T/ft.bin, mode: annotate}" >"$T/fasttext.yaml"
    STAGES="regex pii fasttext"
else
    echo "SKIP: fasttext_filter (the fasttext tool is not installed to train a model)"
fi

python3 - "$T" "$REPEATS" $STAGES <<'EOF'
import glob, json, subprocess, sys
T, repeats, stages = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {cpu}, nproc={subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}; best of {repeats}")
print(f"{'stage':<28} {'threads':>7} {'docs':>7} {'MB in':>7} {'stage s':>8} {'MB/s':>8}  notes")
labels = {"regex": "regex_filter (50 patterns)", "pii": "pii_redact (all kinds)",
          "fasttext": "fasttext_filter (dim 16)"}
for name in stages:
    label = labels[name]
    for n in (1, 2):
        best = None
        for _ in range(repeats):
            subprocess.run(["rm", "-rf", f"{T}/run-{name}"], check=True)
            subprocess.run(["./winnow", "run", f"{T}/{name}.yaml", "--no-progress", "--threads", str(n)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = json.load(open(glob.glob(f"{T}/run-{name}/stages/01-*/report.json")[0]))
            if best is None or r["wall_seconds"] < best["wall_seconds"]:
                best = r
        r = best
        if name == "regex":
            note = f"matched_docs={r['matched_docs']} limit_hits={r['limit_hits']}"
        elif name == "fasttext":
            note = "char 2-4-grams, word bigrams, annotate"
        else:
            note = " ".join(f"{k}={v}" for k, v in r["pii"].items() if v) + f" kept_reserved={r['ip_kept_reserved']}"
        print(f"{label:<28} {n:>7} {r['docs_in']:>7} {r['bytes_in']/1e6:>7.1f} {r['wall_seconds']:>8.3f}"
              f" {r['bytes_in']/1e6/r['wall_seconds']:>8.1f}  {note}")
EOF
