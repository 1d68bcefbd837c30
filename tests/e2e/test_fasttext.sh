# test_fasttext.sh - fasttext_filter against the reference `fasttext` tool
# (Debian package fasttext; SKIP when the CLI is absent or ../shared is).
#   1. Documents: the 697 dolma Common Crawl documents plus tinyshakespeare
#      cut into 40-line pieces. Labels by crude rules: __label__shakespeare,
#      __label__cc_ascii / __label__cc_mixed (share of non-ASCII bytes), so
#      the classes are learnable and the text is real (UTF-8 included).
#   2. Four models trained in seconds with small -dim: (a) softmax, words
#      only (the lid.176 / DCLM shape); (b) -minn 2 -maxn 4 -wordNgrams 2;
#      (c) -loss hs; (d) -loss ova; (e) -loss ns.
#   3. For every document, `fasttext predict-prob MODEL FILE K` (K = all
#      labels) on the text with newlines replaced by spaces, one per line —
#      what winnow feeds — against winnow's annotate-mode top-K
#      (winnow.ft_labels / ft_scores): labels identical, |p - p_ref| <= 1e-5.
#   4. A drop-mode pipeline: report counts per reason equal the counts
#      computed from the reference predictions.
. "$(dirname "$0")/lib.sh"

CC=$SHARED/corpora/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz
SH=$SHARED/corpora/text/tinyshakespeare/input.txt
if [ ! -r "$CC" ] || [ ! -r "$SH" ]; then echo "SKIP: ../shared/corpora not present"; exit 0; fi
if ! command -v fasttext >/dev/null; then echo "SKIP: fasttext CLI not installed (apt-get install fasttext)"; exit 0; fi

python3 - "$CC" "$SH" "$T" <<'PY'
import gzip, json, sys
cc, sh, t = sys.argv[1:]
docs = []
for l in gzip.open(cc, "rt", encoding="utf-8"):
    d = json.loads(l)
    text = d["text"]
    b = text.encode()
    lab = "cc_mixed" if sum(c >= 0x80 for c in b) > 0.002 * len(b) else "cc_ascii"
    docs.append((d["id"], text, lab))
lines = open(sh, encoding="utf-8").read().split("\n")
for i in range(0, len(lines), 40):
    docs.append((f"sh{i}", "\n".join(lines[i:i + 40]), "shakespeare"))
flat = lambda s: s.replace("\n", " ")
with open(f"{t}/docs.jsonl", "w") as f, open(f"{t}/lines.txt", "w") as g, open(f"{t}/train.txt", "w") as tr:
    for i, (id_, text, lab) in enumerate(docs):
        f.write(json.dumps({"id": id_, "text": text}) + "\n")
        g.write(flat(text) + "\n")
        if i % 2 == 0:
            tr.write(f"__label__{lab} {flat(text)}\n")
print(len(docs), "documents")
PY

compare() { # model-name -> prints "n maxdp" or fails
    python3 - "$T/$1.ref" "$T/$1.run" <<'PY'
import glob, json, subprocess, sys
ref = [l.split() for l in open(sys.argv[1], encoding="utf-8").read().split("\n")[:-1]]
got = []
for f in sorted(glob.glob(f"{sys.argv[2]}/documents/*.zst")):
    for l in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n"):
        if l:
            w = json.loads(l)["winnow"]
            got.append((w.get("ft_labels", [w["ft_label"]] if w["ft_label"] else []),
                        w.get("ft_scores", [w["ft_score"]] if w["ft_label"] else [])))
assert len(ref) == len(got), (len(ref), len(got))
bad, maxdp = 0, 0.0
for i, (r, (labs, ps)) in enumerate(zip(ref, got)):
    rl, rp = r[0::2], [float(x) for x in r[1::2]]
    dp = max([abs(a - b) for a, b in zip(ps, rp)] or [0.0])
    # labels whose reference probabilities tie at printed precision may swap
    same = rl == labs or sorted(rl) == sorted(labs) and all(
        abs(rp[j] - ps[j]) <= 1e-5 for j in range(len(rl)))
    if not same or dp > 1e-5:
        bad += 1
        if bad <= 5:
            print(f"  doc {i}: ref {r} winnow {labs} {ps}", file=sys.stderr)
    maxdp = max(maxdp, dp)
print(len(ref), f"{maxdp:.3g}", bad)
sys.exit(1 if bad else 0)
PY
}

total=0
for spec in "a:-dim 16" "b:-dim 16 -minn 2 -maxn 4 -wordNgrams 2" "c:-dim 16 -loss hs" "d:-dim 16 -loss ova" "e:-dim 16 -loss ns -neg 2"; do
    name=${spec%%:*}; args=${spec#*:}
    # shellcheck disable=SC2086
    check "train $name" fasttext supervised -input "$T/train.txt" -output "$T/$name" -epoch 5 -thread 1 \
        -verbose 0 $args
    check "predict-prob $name" sh -c "fasttext predict-prob '$T/$name.bin' '$T/lines.txt' 3 >'$T/$name.ref'"
    cat >"$T/$name.yaml" <<YAML
name: ft-$name
workdir: $T/$name.run
inputs:
  - path: $T/docs.jsonl
stages:
  - fasttext_filter: {model: $T/$name.bin, mode: annotate, k: 3, prefix: ft}
YAML
    check "winnow run $name" "$WINNOW" run "$T/$name.yaml" --threads 2 --no-progress 2>/dev/null
    if out=$(compare "$name"); then
        echo "  model $name: $out (documents, max |dp|, mismatches)"
        total=$((total + ${out%% *}))
    else
        echo "  check failed: model $name predictions differ: $out" >&2
        fails=$((fails + 1))
    fi
done
echo "  compared $total document predictions"

# drop mode: the report's counts follow from the reference predictions
cat >"$T/drop.yaml" <<YAML
name: ft-drop
workdir: $T/drop.run
inputs:
  - path: $T/docs.jsonl
stages:
  - fasttext_filter: {model: $T/a.bin, keep_labels: "cc_ascii,__label__shakespeare", threshold: 0.6}
YAML
check "winnow drop run" "$WINNOW" run "$T/drop.yaml" --threads 2 --no-progress 2>/dev/null
expect=$(python3 - "$T/a.ref" <<'PY'
import sys
nk = nb = kept = 0
for l in open(sys.argv[1]).read().split("\n")[:-1]:
    r = l.split()
    if not r or r[0] not in ("__label__cc_ascii", "__label__shakespeare"): nk += 1
    elif float(r[1]) < 0.6: nb += 1
    else: kept += 1
print(nk, nb, kept)
PY
)
rep=$(ls "$T"/drop.run/stages/01-*/report.json)
got="$(json_get "$rep" dropped.label_not_kept) $(json_get "$rep" dropped.below_threshold) $(json_get "$rep" docs_out)"
check "drop counts $got == reference $expect" [ "$got" = "$expect" ]

# errors name the file
printf 'not a model' >"$T/bad.bin"
sed "s#$T/a.bin#$T/bad.bin#" "$T/drop.yaml" | sed "s#drop.run#bad.run#" >"$T/bad.yaml"
"$WINNOW" run "$T/bad.yaml" --no-progress >"$T/bad.out" 2>&1
check "bad model refused" [ $? -ne 0 ]
check "error names the file" contains "$T/bad.out" "bad.bin: not a fastText model"
finish
