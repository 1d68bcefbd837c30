#!/usr/bin/env bash
# bench_tokenizer.sh - `make bench` (after bench.sh): GPT-2 BPE tokenizer throughput.
# See BENCHMARKS.md, "Tokenizer".
#
#   1. single thread: `./winnow tokenizer encode --tokenizer DIR FILE > /dev/null`, best of 3,
#      minus the tokenizer load time (`./winnow tokenizer info`, best of 5); next to
#      tiktoken's encode_ordinary(text) (best of 3) and encode_ordinary_batch(docs,
#      num_threads=N), with tiktoken built from the same local GPT-2 files;
#   2. token ids: winnow's encode output must equal tiktoken's ids for every input;
#   3. the `tokenize` stage alone (`winnow run`, batch_bytes 4MiB) at --threads 1, 2 and
#      nproc, best of 3: MB/s and tokens/s from its report.json; output documents must be
#      identical across all runs and thread counts.
#
# Inputs: tinyshakespeare, the texts of the Common Crawl sample (build/bench/cc.txt), and
# the first BENCH_TOK_BYTES of build/bench/corpus.jsonl.zst (the corpus bench.sh generates;
# generated here if missing).
#
#   WN_SHARED            shared data folder (default ../shared); no GPT-2 files there: SKIP
#   BENCH_TOK_BYTES      bytes of generated JSONL to take (default 100000000)
#   BENCH_TOK_REPEATS    timed repetitions, best kept (default 3)
#
# Files: build/bench/cc.txt, build/bench/tok/ (gen.jsonl, gen.jsonl.zst, gen.txt, ids-*.txt,
# manifests, runs), build/bench/tokenizer-results.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

SHARED=${WN_SHARED:-../shared}
TOK=$SHARED/tokenizers/gpt2
TOK_BYTES=${BENCH_TOK_BYTES:-100000000}
REPEATS=${BENCH_TOK_REPEATS:-3}
D=build/bench
T=$D/tok
CORPUS=$D/corpus.jsonl.zst
OUT=$D/tokenizer-results.txt
SHAKE=$SHARED/corpora/text/tinyshakespeare/input.txt
CC_GZ=$SHARED/corpora/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz

if [[ ! -f $TOK/encoder.json || ! -f $TOK/vocab.bpe ]]; then
    echo "SKIP: bench_tokenizer: no GPT-2 tokenizer files in $TOK (set WN_SHARED)"
    exit 0
fi
[[ -x ./winnow ]] || { echo "bench_tokenizer: ./winnow missing (run 'make')" >&2; exit 1; }
command -v zstd >/dev/null || { echo "bench_tokenizer: zstd CLI missing" >&2; exit 1; }
mkdir -p "$T"

# ---- generated corpus (normally left by bench.sh) ----------------------------
if [[ ! -f $CORPUS ]]; then
    [[ -x build/gen_corpus ]] || { echo "bench_tokenizer: $CORPUS and build/gen_corpus missing (run 'make build/gen_corpus')" >&2; exit 1; }
    BYTES=${BENCH_BYTES:-1000000000} # same file and bookkeeping as bench.sh, which then reuses it
    echo "bench_tokenizer: generating $CORPUS ($BYTES bytes uncompressed)"
    build/gen_corpus "$CORPUS.tmp" "$BYTES" 2>"$D/corpus.stats.tmp"
    mv "$D/corpus.stats.tmp" "$D/corpus.stats"
    mv "$CORPUS.tmp" "$CORPUS"
    echo "$BYTES" >"$D/corpus.bytes"
fi

# ---- tiktoken ------------------------------------------------------------------
if ! python3 -c 'import tiktoken' 2>/dev/null; then
    echo "bench_tokenizer: tiktoken not importable; trying 'pip install -q tiktoken'"
    python3 -m pip install -q tiktoken >/dev/null 2>&1 || true
fi
if python3 -c 'import tiktoken' 2>/dev/null; then HAVE_TT=1; else HAVE_TT=0; echo "SKIP: tiktoken (not installable): tiktoken columns left out"; fi

# ---- inputs ----------------------------------------------------------------------
# The first TOK_BYTES of the generated JSONL, whole lines only: gen.jsonl (and .zst for the
# tokenize stage) and their texts joined with "\n" (gen.txt). head closes the pipe early, so
# zstd's SIGPIPE is expected.
echo "bench_tokenizer: taking the first $TOK_BYTES bytes of $CORPUS"
{ zstd -dc "$CORPUS" 2>/dev/null || true; } | head -c "$TOK_BYTES" >"$T/gen-head.jsonl"
python3 - "$T/gen-head.jsonl" "$T/gen.jsonl" "$T/gen.txt" <<'EOF'
import json, sys
src, jl, txt = sys.argv[1:4]
data = open(src, "rb").read()
data = data[: data.rfind(b"\n") + 1]                  # whole lines only
open(jl, "wb").write(data)
texts = [json.loads(l)["text"] for l in data.splitlines() if l.strip()]
open(txt, "wb").write("\n".join(texts).encode("utf-8"))
EOF
rm -f "$T/gen-head.jsonl"
zstd -q -f -3 "$T/gen.jsonl" -o "$T/gen.jsonl.zst"
python3 - "$CC_GZ" "$D/cc.txt" <<'EOF'
import gzip, json, sys
texts = [json.loads(l)["text"] for l in gzip.open(sys.argv[1], "rb") if l.strip()]
open(sys.argv[2], "wb").write("\n".join(texts).encode("utf-8"))
EOF

# ---- tokenize-stage manifests --------------------------------------------------------
manifest() { # NAME INPUT WORKDIR
    cat <<EOF
name: $1
workdir: $3
batch_bytes: 4MiB
inputs:
  - path: $2
    format: jsonl
stages:
  - tokenize: {tokenizer: $TOK}
EOF
}
manifest tok-gen "$T/gen.jsonl.zst" "$T/run-gen" >"$T/gen.yaml"
manifest tok-cc "$CC_GZ" "$T/run-cc" >"$T/cc.yaml"

# ---- measure and print ---------------------------------------------------------
# name|text file|docs (jsonl, jsonl.gz, or - for the file as one document)|manifest or -
INPUTS=(
    "tinyshakespeare|$SHAKE|-|-"
    "cc (CC-MAIN sample)|$D/cc.txt|$CC_GZ|$T/cc.yaml"
    "generated|$T/gen.txt|$T/gen.jsonl|$T/gen.yaml"
)
cat "$SHAKE" "$D/cc.txt" "$T/gen.txt" "$T/gen.jsonl.zst" >/dev/null # page cache warm

TIKTOKEN_CACHE_DIR= python3 - "$TOK" "$REPEATS" "$HAVE_TT" "$(nproc)" "$T" "${INPUTS[@]}" <<'EOF' | tee "$OUT"
import glob, gzip, hashlib, json, os, subprocess, sys, time

tok, repeats, have_tt, nproc, tdir = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
inputs = [a.split("|") for a in sys.argv[6:]]
ok = True
lines = []
def out(s=""):
    print(s, flush=True)

def best(f, n):
    b = None
    for _ in range(n):
        t0 = time.perf_counter(); f(); t = time.perf_counter() - t0
        b = t if b is None or t < b else b
    return b

def run_quiet(args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

def read_docs(path):
    if path == "-":
        return None
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        return [json.loads(l)["text"] for l in f if l.strip()]

cpu = ""
try:
    for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if l.startswith("Model name:"):
            cpu = l.split(":", 1)[1].strip()
except OSError:
    pass
tt_version = "-"
if have_tt:
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    tt_version = tiktoken.__version__
    ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(tok, "vocab.bpe"), os.path.join(tok, "encoder.json"))
    enc = tiktoken.Encoding(
        "gpt2-local",
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
        mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})

load_s = best(lambda: run_quiet(["./winnow", "tokenizer", "info", "--tokenizer", tok]), 5)
out(f"machine: nproc={nproc}, CPU: {cpu}; tiktoken {tt_version}; best of {repeats} (load time: best of 5)")
out(f"winnow tokenizer load (`./winnow tokenizer info --tokenizer {tok}`): {load_s*1000:.1f} ms")
out()

# ---- 1, 2: single thread, ids --------------------------------------------------
out("single thread (MB = 1e6 bytes of UTF-8 text; winnow timings include printing the ids)")
hdr = (f"{'input':<20} {'MB':>7} {'docs':>7} {'tokens':>10} {'winnow s':>9} {'MB/s raw':>9} {'MB/s -load':>10}"
       f" {'tiktoken s':>10} {'tt MB/s':>8} {'ids':>8}")
out(hdr); out("-" * len(hdr))
batch_rows, stage_inputs = [], []
for name, txt, docs_path, man in inputs:
    nbytes = os.path.getsize(txt)
    argv = ["./winnow", "tokenizer", "encode", "--tokenizer", tok, txt]
    w_s = best(lambda: run_quiet(argv), repeats)
    ids_file = os.path.join(tdir, "ids-" + name.split()[0] + ".txt")
    with open(ids_file, "wb") as f:
        subprocess.run(argv, check=True, stdout=f)
    w_ids = open(ids_file, "rb").read().strip()
    ntok = w_ids.count(b" ") + 1 if w_ids else 0
    docs = read_docs(docs_path)
    tt_cells, idcell = f"{'SKIP':>10} {'SKIP':>8}", "SKIP"
    tt_batch_tokens = None
    if have_tt:
        text = open(txt, "rb").read().decode("utf-8")
        res = [None]
        def encode_all():
            res[0] = None
            res[0] = enc.encode_ordinary(text)
        tt_s = best(encode_all, repeats)
        ids = res[0]
        t_ids = " ".join(map(str, ids)).encode()
        if t_ids == w_ids:
            idcell = "OK"
        else:
            idcell = "MISMATCH"; ok = False
            a, b = w_ids.split(), t_ids.split()
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            print(f"  {name}: winnow {len(a)} ids, tiktoken {len(b)}; first difference at id {i}: "
                  f"winnow {a[i:i+8]} tiktoken {b[i:i+8]}", file=sys.stderr)
        del ids, t_ids, res, text
        tt_cells = f"{tt_s:>10.2f} {nbytes/1e6/tt_s:>8.2f}"
        if docs is not None:
            dbytes = sum(len(d.encode("utf-8")) for d in docs)
            for n in sorted({1, 2, nproc}):
                cnt = []
                s = best(lambda: cnt.append(sum(map(len, enc.encode_ordinary_batch(docs, num_threads=n)))), repeats)
                tt_batch_tokens = cnt[-1]
                batch_rows.append((name, n, len(docs), dbytes, s, cnt[-1]))
    ndocs = len(docs) if docs is not None else 1
    out(f"{name:<20} {nbytes/1e6:>7.1f} {ndocs:>7} {ntok:>10} {w_s:>9.3f} {nbytes/1e6/w_s:>9.2f} "
        f"{nbytes/1e6/max(w_s - load_s, 1e-9):>10.2f} {tt_cells} {idcell:>8}")
    if man != "-":
        stage_inputs.append((name, man, tt_batch_tokens))
    del w_ids, docs

if batch_rows:
    out()
    out("tiktoken encode_ordinary_batch(docs, num_threads=N) (MB: the documents' bytes, without separators)")
    hdr = f"{'input':<20} {'threads':>7} {'docs':>7} {'MB':>7} {'tokens':>10} {'seconds':>8} {'MB/s':>8}"
    out(hdr); out("-" * len(hdr))
    for name, n, nd, db, s, ntk in batch_rows:
        out(f"{name:<20} {n:>7} {nd:>7} {db/1e6:>7.1f} {ntk:>10} {s:>8.2f} {db/1e6/s:>8.2f}")

# ---- 3: tokenize stage -------------------------------------------------------------
out()
out(f"tokenize stage alone (`winnow run MANIFEST --threads N`, best of {repeats} by stage seconds; report.json: bytes_in /")
out("wall_seconds, tokens_out / wall_seconds; tokens_out counts the <|endoftext|> prepended to each document; run s is")
out("the whole command of that run)")
hdr = (f"{'input':<20} {'threads':>7} {'docs':>7} {'MB in':>7} {'tokens_out':>10} {'stage s':>8} {'MB/s':>8}"
       f" {'Mtok/s':>7} {'run s':>7} {'docs sha256':>17} {'tokens':>8}")
out(hdr); out("-" * len(hdr))
for name, man, tt_tokens in stage_inputs:
    wd = None
    for l in open(man):
        if l.startswith("workdir:"):
            wd = l.split(":", 1)[1].strip()
    shas = set()
    for n in sorted({1, 2, nproc}):
        r = run_s = None
        for _ in range(repeats): # best (by stage wall_seconds) of REPEATS; every run's output is checked
            subprocess.run(["rm", "-rf", wd], check=True)
            t0 = time.perf_counter()
            subprocess.run(["./winnow", "run", man, "--no-progress", "--threads", str(n)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            s = time.perf_counter() - t0
            rr = json.load(open(glob.glob(os.path.join(wd, "stages", "*-tokenize", "report.json"))[0]))
            if r is None or rr["wall_seconds"] < r["wall_seconds"]:
                r, run_s = rr, s
            h = hashlib.sha256()
            for part in sorted(glob.glob(os.path.join(wd, "documents", "part-*"))):
                h.update(subprocess.run(["zstd", "-dc", part], check=True, capture_output=True).stdout)
            sha = h.hexdigest()[:16]
            shas.add(sha)
        if tt_tokens is None:
            tcell = "-"
        elif r["tokens_out"] - r["docs_out"] == tt_tokens:
            tcell = "OK"
        else:
            tcell = "MISMATCH"; ok = False
        ws = r["wall_seconds"]
        out(f"{name:<20} {n:>7} {r['docs_out']:>7} {r['bytes_in']/1e6:>7.1f} {r['tokens_out']:>10} {ws:>8.3f}"
            f" {r['bytes_in']/1e6/ws:>8.2f} {r['tokens_out']/1e6/ws:>7.2f} {run_s:>7.2f} {sha:>17} {tcell:>8}")
    same = len(shas) == 1
    ok &= same
    out(f"  {name}: output documents identical across thread counts: {'yes' if same else 'NO'}")

out()
out("ids: winnow's `tokenizer encode` ids == tiktoken encode_ordinary ids for the whole file; stage tokens:")
out("tokens_out - docs (the prepended <|endoftext|>) == tiktoken's batch token count")
out(f"result: {'OK' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
EOF
echo "bench_tokenizer: results in $OUT"
