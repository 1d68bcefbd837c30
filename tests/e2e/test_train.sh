# test_train.sh - `winnow train` end to end:
#  1. shards from samples/web through the pipeline (tokenize with samples/tokenizer.json, pack
#     with a 10% validation split; without the pack stage, llm.c shards written by Python from
#     `winnow tokenizer encode`);
#  2. a small model (L=2, C=64, H=4, T=64, B=8, 300 steps, lr 3e-3) whose final validation loss
#     must end well below (1 nat) the unigram entropy of the training tokens; train.json keys;
#     a sampled continuation. This run uses the optimized ./winnow (WINNOW_TRAIN overrides): the
#     ASan/UBSan build trains about 25x slower, minutes instead of seconds;
#  3. with the sanitized build ($WINNOW) and a tiny model: resume identity (20 steps straight ==
#     --stop-after 10 then --resume; and 10 steps + --resume --steps 20 == 20 at constant lr),
#     byte for byte on model.safetensors and on the loss lists; --init; the errors;
#  4. HF compatibility (check_hf_gpt2.py; SKIP without torch + transformers; WN_HF_PYTHON picks the
#     interpreter): GPT2LMHeadModel.from_pretrained loads winnow's model.safetensors and its loss on
#     one sequence matches winnow's; and a checkpoint HF's save_pretrained wrote ("transformer."
#     names, no winnow metadata) loads with --init --heads and gives HF's loss.
. "$(dirname "$0")/lib.sh"

TRAIN_BIN=${WINNOW_TRAIN:-$ROOT/winnow}
[ -x "$TRAIN_BIN" ] || TRAIN_BIN=$WINNOW
PY=${WN_HF_PYTHON:-python3}

# ---- 1. shards ------------------------------------------------------------------
S=$T/shards
if "$WINNOW" stages | grep -q '^pack '; then
    cat >"$T/data.yaml" <<YAML
name: traindata
workdir: $T/run
inputs:
  - path: $ROOT/samples/web/*.jsonl.zst
stages:
  - tokenize: {tokenizer: $ROOT/samples/tokenizer.json}
  - pack: {seq_len: 64, val_fraction: 0.1}
YAML
    check "pipeline builds shards" "$WINNOW" run "$T/data.yaml" --no-progress
    S=$T/run/shards
else
    echo "SKIP: no pack stage: shards written by Python from winnow tokenizer encode"
    mkdir -p "$S"
    zstd -dc "$ROOT"/samples/web/*.jsonl.zst | python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["text"]); print()' >"$T/text"
    "$WINNOW" tokenizer encode --tokenizer "$ROOT/samples/tokenizer.json" "$T/text" >"$T/ids"
    python3 - "$T/ids" "$S" <<'EOF'
import struct, sys
ids = [int(x) for x in open(sys.argv[1]).read().split()]
cut = len(ids) * 9 // 10
for name, part in (("train_000000.bin", ids[:cut]), ("val_000000.bin", ids[cut:])):
    with open(f"{sys.argv[2]}/{name}", "wb") as f:
        f.write(struct.pack("<256i", 20240520, 1, len(part), *[0] * 253))
        f.write(struct.pack(f"<{len(part)}H", *part))
EOF
fi
DATA="$S/train_*.bin"
VAL="$S/val_*.bin"

# ---- 2. training to a loss well below the unigram entropy ------------------------------
O=$T/o1
"$TRAIN_BIN" train --data "$DATA" --val "$VAL" --out "$O" --layers 2 --dim 64 --heads 4 --context 64 \
    --batch 8 --steps 300 --lr 3e-3 --val-every 100 --val-batches 10 --seed 1 \
    --tokenizer "$ROOT/samples/tokenizer.json" --prompt "The " >"$T/o1.out" 2>"$T/o1.err"
check "train exits 0" [ $? -eq 0 ] || cat "$T/o1.err" >&2
check "files written" [ -s "$O/model.safetensors" -a -s "$O/optimizer.bin" -a -s "$O/train.json" ]
check "no temporary files left" bash -c "! ls '$O' | grep -q tmp"
check "sample printed" contains "$T/o1.out" "^sample (step 300, end): The "
python3 - "$O/train.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("steps", "tokens", "train_loss", "val_loss", "final_val_loss", "tokens_per_second", "wall_seconds",
          "unigram_entropy_bits", "config", "model"):
    assert k in j, f"train.json lacks {k}"
assert j["steps"] == 300 and j["tokens"] == 300 * 8 * 64, (j["steps"], j["tokens"])
assert len(j["train_loss"]) == 300 and all(isinstance(x, float) for x in j["train_loss"])
assert [v[0] for v in j["val_loss"]] == [0, 100, 200, 300], j["val_loss"]
assert j["final_val_loss"] == j["val_loss"][-1][1]
H = j["unigram_entropy_bits"] * 0.6931471805599453
print(f"final validation loss {j['final_val_loss']:.4f} nats; unigram entropy of the training tokens "
      f"{H:.4f} nats ({j['unigram_entropy_bits']:.4f} bits); {j['tokens_per_second']:.0f} tokens/s")
assert j["final_val_loss"] < H - 1.0, "validation loss is not well below the unigram entropy"
assert j["val_loss"][0][1] > j["final_val_loss"] + 2
EOF
check "loss well below the unigram entropy; train.json keys" [ $? -eq 0 ]

# ---- 3. resume identity, --init, errors (sanitized build, tiny model) ----------------------
tiny() { # OUT, extra flags...
    local out=$1; shift
    "$WINNOW" train --data "$DATA" --val "$VAL" --out "$out" --layers 1 --dim 32 --heads 2 --context 32 \
        --batch 4 --val-every 5 --val-batches 2 --checkpoint-every 4 --seed 7 "$@" 2>>"$T/tiny.err"
}
losses() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["train_loss"], j["val_loss"], j["steps"], j["tokens"])' "$1"; }
tiny "$T/a" --steps 20
check "straight 20 steps" [ $? -eq 0 ]
tiny "$T/b" --steps 20 --stop-after 10
check "--stop-after 10" [ $? -eq 0 ]
check "stopped run says incomplete" bash -c "grep -q '\"complete\": false' '$T/b/train.json'"
"$WINNOW" train --out "$T/b" --resume 2>>"$T/tiny.err"
check "--resume exits 0" [ $? -eq 0 ]
check "resume: model.safetensors byte-identical" cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors"
check "resume: same loss history" [ "$(losses "$T/a/train.json")" = "$(losses "$T/b/train.json")" ]
tiny "$T/c" --steps 20 --lr 2e-3 --min-lr 2e-3 --warmup 0
tiny "$T/d" --steps 10 --lr 2e-3 --min-lr 2e-3 --warmup 0
"$WINNOW" train --out "$T/d" --resume --steps 20 2>>"$T/tiny.err"
check "10 steps + resume to 20 == 20 steps (constant lr)" cmp -s "$T/c/model.safetensors" "$T/d/model.safetensors"
check "... same loss history" [ "$(losses "$T/c/train.json")" = "$(losses "$T/d/train.json")" ]
# A crash between a checkpoint's two renames: model.safetensors new, optimizer.bin old, and the
# new optimizer.bin.tmp complete; --resume takes the .tmp.
tiny "$T/f" --steps 20 --stop-after 8
cp "$T/f/optimizer.bin" "$T/f8.bin"
"$WINNOW" train --out "$T/f" --resume --stop-after 12 2>>"$T/tiny.err"
mv "$T/f/optimizer.bin" "$T/f/optimizer.bin.tmp"
cp "$T/f8.bin" "$T/f/optimizer.bin"
"$WINNOW" train --out "$T/f" --resume 2>>"$T/tiny.err"
check "crash between renames: resume recovers" [ $? -eq 0 ]
check "... byte-identical model" cmp -s "$T/a/model.safetensors" "$T/f/model.safetensors"
rm "$T/f/optimizer.bin"
err_only=$("$WINNOW" train --out "$T/f" --resume 2>&1 >/dev/null)
check "no optimizer.bin: clear error" bash -c "[[ '$err_only' == *'no optimizer.bin beside model.safetensors'* ]]"
cp "$T/a/model.safetensors" "$T/a.safetensors"
"$WINNOW" train --out "$T/a" --resume 2>"$T/again.err"
check "resume of a finished run exits 0" [ $? -eq 0 ]
check "... and keeps the model" cmp -s "$T/a/model.safetensors" "$T/a.safetensors"

"$WINNOW" train --data "$DATA" --out "$T/e" --steps 2 --init "$O/model.safetensors" --context 16 --batch 2 \
    --layers 2 2>"$T/e.err"
check "--init from a checkpoint" [ $? -eq 0 ]
check "--init keeps its shape" [ "$(json_get "$T/e/train.json" model.dim)" = 64 ]

err() { # name, expected exit, pattern, command...
    local name=$1 want=$2 pat=$3; shift 3
    "$@" >/dev/null 2>"$T/$name.err"
    local rc=$?
    check "$name: exit $want (got $rc)" [ "$rc" -eq "$want" ]
    check "$name: message matches '$pat'" contains "$T/$name.err" "$pat"
}
err cuda 2 "CUDA trainer is not built yet" "$WINNOW" train --data "$DATA" --out "$T/x" --device cuda
err no_data 2 "\-\-data GLOB is required" "$WINNOW" train --out "$T/x"
err exists 2 "already holds a training run" "$WINNOW" train --data "$DATA" --out "$T/a" --steps 1
err changed 2 "\-\-batch differs from the run" "$WINNOW" train --out "$T/a" --resume --batch 16
err nothing 1 "no checkpoint to resume" "$WINNOW" train --data "$DATA" --out "$T/empty" --resume
err heads 2 "\-\-heads 3 does not divide \-\-dim 64" "$WINNOW" train --data "$DATA" --out "$T/x" --heads 3 --dim 64
err nomatch 1 "nothing-\*.bin: no file matches" "$WINNOW" train --data "$T/nothing-*.bin" --out "$T/x"
err badflag 2 "unknown option '--layer'" "$WINNOW" train --data "$DATA" --out "$T/x" --layer 2
head -c 3000 "$O/model.safetensors" >"$T/cut.safetensors"
err badinit 1 "cut.safetensors: tensor '.*'.*outside the data section" \
    "$WINNOW" train --data "$DATA" --out "$T/x" --init "$T/cut.safetensors"
check "help" bash -c "'$WINNOW' train --help | grep -q 'usage: winnow train'"

# ---- 4. HF transformers ---------------------------------------------------------------
python3 - "$VAL" "$T/one.bin" <<'EOF'
import glob, struct, sys
path = sorted(glob.glob(sys.argv[1]))[0]
with open(path, "rb") as f:
    h = struct.unpack("<256i", f.read(1024)); toks = struct.unpack("<65H", f.read(130))
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, 65, *[0] * 253)); f.write(struct.pack("<65H", *toks))
EOF
"$WINNOW" train --data "$DATA" --val "$T/one.bin" --out "$T/eval" --init "$O/model.safetensors" --steps 0 \
    --batch 1 --val-batches 1 2>"$T/eval.err"
check "--steps 0 evaluates an --init checkpoint" [ $? -eq 0 ]
WL=$(json_get "$T/eval/train.json" final_val_loss)
# Early stopping: an improvement must exceed 100 nats, so training stops after the third evaluation
# (step 0 is the first; steps 4 and 8 make two without improvement) and says what that saved.
"$WINNOW" train --data "$DATA" --val "$VAL" --out "$T/early" --layers 1 --dim 16 --heads 2 --context 16 \
    --batch 2 --steps 40 --val-every 4 --val-batches 1 --early-stop 2 --early-stop-margin 100 2>"$T/early.err"
check "--early-stop exits 0" [ $? -eq 0 ]
check "--early-stop says it stopped" contains "$T/early.err" "early stop"
python3 - "$T/early/train.json" <<'PY' || fails=$((fails + 1))
import json, sys
t = json.load(open(sys.argv[1]))
assert t["early_stopped"] and t["complete"], t
assert t["steps"] == 8 and t["steps_saved"] == 32 and t["tokens_saved"] == 32 * 2 * 16, t
assert t["flops_saved"] > 0 and [v[0] for v in t["val_loss"]] == [0, 4, 8], t["val_loss"]
PY
# Memory plan: parameters are 4 bytes each (L2 C64, V 4096, context 128: 370,432 parameters), and the
# largest batch for a budget is the last whose total fits it.
"$WINNOW" train --plan --layers 2 --heads 4 --dim 64 --context 128 --vocab 4096 --memory 100MiB >"$T/plan.txt"
check "--plan exits 0" [ $? -eq 0 ]
check "--plan: parameters 370,432 x 4 bytes" contains "$T/plan.txt" "parameters                            1.4 MiB"
NB=$(sed -n 's/^largest batch within 100.0 MiB (--memory): \([0-9]*\).*/\1/p' "$T/plan.txt")
total() { "$WINNOW" train --plan --layers 2 --heads 4 --dim 64 --context 128 --vocab 4096 --batch "$1" --memory 100MiB |
    sed -n 's/^  total *\([0-9.]*\) MiB/\1/p'; }
check "--plan: the largest batch fits and one more does not" \
    python3 -c "import sys; a, b = float('$(total "$NB")'), float('$(total $((NB + 1)))'); sys.exit(not (0 < a <= 100 < b))"
"$WINNOW" train --data "$DATA" --out "$T/auto" --layers 1 --dim 16 --heads 2 --context 16 --batch 0 --memory 64MiB \
    --steps 2 2>"$T/auto.err"
check "--batch 0 trains with the planned batch" contains "$T/auto.err" "the largest that fits 64.0 MiB"
if "$PY" -c 'import torch, transformers' 2>/dev/null; then
    "$PY" tests/e2e/check_hf_gpt2.py load "$O/model.safetensors" "$T/one.bin" "$WL" 2>"$T/hf.err"
    check "winnow -> HF: GPT2LMHeadModel loads model.safetensors and agrees" [ $? -eq 0 ] || cat "$T/hf.err" >&2
    HL=$("$PY" tests/e2e/check_hf_gpt2.py export "$T/hf" "$T/one.bin" 4096 64 2 4 64 2>"$T/hf.err")
    check "HF save_pretrained checkpoint written" [ -s "$T/hf/model.safetensors" ] || cat "$T/hf.err" >&2
    "$WINNOW" train --data "$DATA" --val "$T/one.bin" --out "$T/hfeval" --init "$T/hf/model.safetensors" --heads 4 \
        --steps 0 --batch 1 --val-batches 1 2>"$T/hfeval.err"
    check "HF -> winnow: --init reads HF's checkpoint" [ $? -eq 0 ] || cat "$T/hfeval.err" >&2
    WL2=$(json_get "$T/hfeval/train.json" final_val_loss)
    echo "HF checkpoint: HF loss $HL, winnow loss $WL2"
    check "HF -> winnow: same loss within 1e-3" python3 -c "import sys; sys.exit(abs($HL - $WL2) > 1e-3)"
else
    echo "SKIP: torch/transformers not importable: HF GPT-2 compatibility not checked"
fi
finish
