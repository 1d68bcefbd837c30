# test_energy.sh - the "energy" objects of reports (src/energy.h) and how `winnow report` shows them:
#  1. the sanitized CPU-only build ($WINNOW), where nothing runs on a GPU: run.json, every stage
#     report and train.json have exactly {"joules", "method", "basis"} (no GPU part, whether or
#     not an NVML library could be loaded: tests/unit/fake_nvml stands in for one), joules = the
#     CPU estimate or the RAPL reading, and `winnow report` prints a cost line without a GPU
#     figure;
#  2. `winnow report` on that run with GPU parts written into its reports as a GPU run writes
#     them (one step measured with NVML, one not): the terminal's cost line splits the joules
#     into CPU + GPU, the "on the GPU" lines give each step's seconds and joules and the total;
#     the HTML page has the GPU cards and columns and passes check_report_html.py;
#  3. the optimized ./winnow when it is a CUDA build and sees a GPU (WINNOW_CUDA overrides the
#     path; SKIP otherwise; scripts/gpu_check.sh runs this on a GPU machine): `winnow train
#     --device cuda` writes energy.gpu_method "nvml" with gpu_joules > 0 and gpu_seconds > 0, and
#     joules = cpu_joules + gpu_joules; a minhash_dedup run with `device: cuda` writes a measured
#     GPU part in its stage report and in run.json, and `winnow report` prints it. Not yet run:
#     no GPU was available when this was written.
. "$(dirname "$0")/lib.sh"

# energy_keys FILE KEY...: FILE's "energy" has exactly these keys, and joules is consistent
energy_keys() {
    python3 - "$@" <<'PY'
import json, sys
path, want = sys.argv[1], set(sys.argv[2:])
e = json.load(open(path))["energy"]
assert set(e) == want, (path, sorted(e))
assert e["method"] in ("rapl", "estimate"), e
assert e["joules"] >= 0, e
if "gpu_joules" in e:
    assert abs(e["joules"] - e["cpu_joules"] - e["gpu_joules"]) <= 1e-6 * max(1, e["joules"]), e
elif "cpu_joules" in e:
    assert e["joules"] == e["cpu_joules"], e
PY
}
CPU_KEYS=(joules method basis)

# ---- 1. CPU-only build: no GPU part ----------------------------------------------------------
python3 tests/e2e/gen_docs.py 400 "$T/a.jsonl"
cat >"$T/m.yaml" <<YAML
name: energy
workdir: $T/run
batch_bytes: 32KiB
inputs:
  - path: $T/a.jsonl
stages:
  - normalize: {}
  - exact_dedup: {}
  - minhash_dedup: {}
YAML
check "the run completes" "$WINNOW" run "$T/m.yaml" --no-progress 2>/dev/null
check "run.json: energy is {joules, method, basis}" energy_keys "$T/run/run.json" "${CPU_KEYS[@]}"
for r in "$T"/run/stages/*/report.json; do
    check "$(basename "$(dirname "$r")"): energy is {joules, method, basis}" energy_keys "$r" "${CPU_KEYS[@]}"
done
check "a stage's estimate is its cpu_seconds x 10 W" python3 - "$T/run/stages/03-minhash_dedup/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["energy"]["method"] == "estimate" and abs(r["energy"]["joules"] - 10 * r["cpu_seconds"]) < 1e-9, r["energy"]
PY
"$WINNOW" report "$T/run" --no-html >"$T/funnel.txt"
check "report: a cost line" contains "$T/funnel.txt" "^cost: .* CPU-seconds, .* J ("
check "report: no GPU figures" bash -c "! grep -qi 'gpu' '$T/funnel.txt'"

# the trainer, with and without a loadable NVML library: nothing ran on a GPU, so no GPU part
D=$T/data
mkdir -p "$D"
python3 - "$D" <<'EOF'
import random, struct, sys
random.seed(5)
n = 4000
toks = [random.randrange(64) for _ in range(n)]
with open(f"{sys.argv[1]}/train_000000.bin", "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *[0] * 253))
    f.write(struct.pack(f"<{n}H", *toks))
EOF
TARGS=(--data "$D/train_*.bin" --layers 1 --dim 32 --heads 2 --context 16 --batch 4 --steps 6 --seed 3)
check "train (CPU) exits 0" "$WINNOW" train "${TARGS[@]}" --out "$T/tr" --device cpu 2>/dev/null
check "train.json: energy is {joules, method, basis}" energy_keys "$T/tr/train.json" "${CPU_KEYS[@]}"
check "train.json: no gpu_seconds_last_session on the CPU" bash -c "! grep -q gpu_seconds '$T/tr/train.json'"
if [ -r build/san/fake_nvml.so ]; then
    WINNOW_TEST_NVML_LIB=$ROOT/build/san/fake_nvml.so "$WINNOW" train "${TARGS[@]}" --out "$T/tr2" --device auto 2>/dev/null
    check "train with an NVML library but no GPU work: exits 0" [ $? -eq 0 ]
    check "... and train.json still has no GPU part" energy_keys "$T/tr2/train.json" "${CPU_KEYS[@]}"
else
    echo "SKIP: build/san/fake_nvml.so not built: the NVML-present CPU run not checked"
fi

# ---- 2. winnow report with GPU parts ---------------------------------------------------------
cp -r "$T/run" "$T/g"
python3 - "$T/g" <<'PY'
import json, sys
d = sys.argv[1]
def patch(path, gpu_s, gpu_j):
    r = json.load(open(path))
    e = r["energy"]
    e["cpu_joules"] = e["joules"]
    if gpu_j is not None:
        e["gpu_joules"] = gpu_j
        e["joules"] = e["cpu_joules"] + gpu_j
    e["gpu_method"] = "nvml" if gpu_j is not None else "none"
    e["gpu_basis"] = "test"
    e["gpu_seconds"] = gpu_s
    if "device" in r:
        r["device"] = "cuda"
    json.dump(r, open(path, "w"), indent=2)
patch(f"{d}/stages/03-minhash_dedup/report.json", 1.25, 412.0)
patch(f"{d}/stages/02-exact_dedup/report.json", 0.5, None)
patch(f"{d}/run.json", 1.75, 650.0)
PY
"$WINNOW" report "$T/g" --html "$T/g.html" >"$T/g.txt"
check "GPU report: exits 0" [ $? -eq 0 ]
check "GPU report: cost line splits CPU + GPU" contains "$T/g.txt" "J = CPU [0-9]* J (estimated: 10 W per busy core) + GPU 650 J (measured, NVML) over 1.8 GPU-seconds"
check "GPU report: the measured step" contains "$T/g.txt" "03-minhash_dedup *1.250 s *412 J"
check "GPU report: the unmeasured step" contains "$T/g.txt" "02-exact_dedup *0.500 s  energy not measured"
check "GPU report: the total over the steps" contains "$T/g.txt" "total *1.750 s *412 J"
check "GPU report: the page passes check_report_html.py" python3 tests/e2e/check_report_html.py "$T/g.html" "$T/g"
check "GPU report: GPU energy card" contains "$T/g.html" ">GPU energy</div><div class=\"v\">650 J<"
check "GPU report: GPU time card" contains "$T/g.html" ">GPU time<"
check "GPU report: per-step GPU columns" contains "$T/g.html" "<th class=\"n\">GPU energy</th>"
check "GPU report: a step's GPU joules" contains "$T/g.html" "<td class=\"n\">412 J</td>"
check "GPU report: an unmeasured step says so" contains "$T/g.html" "<td class=\"n\">not measured</td>"
# unmeasured at the run level: the total stays the CPU part
python3 - "$T/g/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["energy"]
e["joules"] = e["cpu_joules"]
del e["gpu_joules"]
e["gpu_method"] = "none"
json.dump(r, open(sys.argv[1], "w"))
PY
"$WINNOW" report "$T/g" --no-html >"$T/g2.txt"
check "GPU report without NVML: cost line says not measured" \
    contains "$T/g2.txt" "GPU: 1.8 GPU-seconds, energy not measured (no NVML counters)"

# ---- 3. on a GPU -------------------------------------------------------------------------------
CUDA_BIN=${WINNOW_CUDA:-$ROOT/winnow}
if [ -x "$CUDA_BIN" ] && "$CUDA_BIN" --version | grep -q "CUDA build" && ! "$CUDA_BIN" --version | grep -q "; 0 CUDA devices"; then
    "$CUDA_BIN" --version
    check "GPU: --version says GPU energy is measured" bash -c "'$CUDA_BIN' --version | grep -q 'GPU energy: measured (NVML'"
    # long enough (a few seconds) for NVML's counter, refreshed every few tens of ms, to move
    "$CUDA_BIN" train --data "$D/train_*.bin" --layers 2 --dim 128 --heads 4 --context 64 --batch 16 --steps 400 \
        --seed 3 --out "$T/gtr" --device cuda 2>"$T/gtr.err"
    check "GPU: train --device cuda exits 0" [ $? -eq 0 ] || cat "$T/gtr.err" >&2
    check "GPU: train.json has a measured GPU part" python3 - "$T/gtr/train.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
e = t["energy"]
print("train.json energy:", json.dumps(e))
assert t["device"] == "cuda", t["device"]
assert e["gpu_method"] == "nvml", e
assert e["gpu_joules"] > 0 and e["gpu_seconds"] > 0, e
assert abs(e["joules"] - e["cpu_joules"] - e["gpu_joules"]) <= 1e-6 * e["joules"], e
assert abs(t["gpu_seconds_last_session"] - e["gpu_seconds"]) < 1e-6, t["gpu_seconds_last_session"]
print(f"GPU: {e['gpu_joules']:.0f} J over {e['gpu_seconds']:.2f} s = {e['gpu_joules'] / e['gpu_seconds']:.0f} W average")
PY
    sed "s|^workdir: .*|workdir: $T/grun|; s|^name: energy|name: energy\ndevice: cuda|" "$T/m.yaml" >"$T/gm.yaml"
    "$CUDA_BIN" run "$T/gm.yaml" --no-progress 2>"$T/grun.err"
    check "GPU: minhash_dedup with device: cuda runs" [ $? -eq 0 ] || cat "$T/grun.err" >&2
    check "GPU: the stage report and run.json have measured GPU parts" python3 - "$T/grun" <<'PY'
import json, sys
d = sys.argv[1]
s = json.load(open(f"{d}/stages/03-minhash_dedup/report.json"))
run = json.load(open(f"{d}/run.json"))
for name, e in (("stage", s["energy"]), ("run", run["energy"])):
    print(name, json.dumps(e))
    assert e["gpu_method"] == "nvml" and e["gpu_joules"] >= 0, (name, e)
assert s["device"] == "cuda" and abs(s["energy"]["gpu_seconds"] - s["wall_seconds"]) < 1e-9, s
for k in ("01-normalize", "02-exact_dedup"):
    assert "gpu_seconds" not in json.load(open(f"{d}/stages/{k}/report.json"))["energy"], k
PY
    "$CUDA_BIN" report "$T/grun" --no-html >"$T/grun.txt"
    check "GPU: winnow report prints the GPU part" contains "$T/grun.txt" "(measured, NVML) over"
    check "GPU: winnow report lists the GPU step" contains "$T/grun.txt" "03-minhash_dedup .* J$"
else
    echo "SKIP: no CUDA build seeing a GPU ($CUDA_BIN): NVML energy on a GPU not checked"
fi
finish
