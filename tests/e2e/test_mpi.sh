# test_mpi.sh - data-parallel `winnow train` under MPI (README "Scale-out (MPI)"), on a noisy
# 64-token cycle (random-token shards would not move the loss): L=1 C=32 T=16, B=8, 20 steps.
#  1. `mpirun -np 1/2/4 --oversubscribe` train the model the single process trains: per-step
#     training losses within 1e-5 relative of the one-process run's, validation losses within
#     1e-5, final parameters within 1e-6 + 1e-4 |ref| (measured on this machine: losses 0 (2 ranks)
#     and 8e-8 (4 ranks), parameters 2e-7 at most; the key bias, whose true gradient is exactly 0, apart:
#     within 1e-4, measured 1e-5); -np 1 is byte-identical. Every
#     run sets WINNOW_MPI_CHECK=1: the ranks compare a checksum of their parameters after every
#     step. train.json records the ranks and their tokens; rank 0 alone reports.
#  2. resume under MPI: --stop-after 7 then --resume with 2 ranks is byte-identical to the straight
#     2-rank run; resuming with 4 ranks what 2 started agrees within the same tolerance.
#  3. errors: --batch not a multiple of the ranks; --device cuda with ranks where no GPU is visible
#     (exit 2, said once, by rank 0; with a GPU test_mpi_train_device.sh tests the GPU path);
#     a rank that fails mid-run (the WINNOW_MPI_TEST_FAIL hook) stops the whole job with a message
#     naming the rank and the cause; a command that does not run across ranks (`winnow stages`) refuses
#     2 ranks.
#  4. a build without MPI (the sanitized $WINNOW) started as 2 MPI processes refuses to run.
# It uses the optimized ./winnow (WINNOW_MPI overrides): the sanitized build has no MPI. SKIPs when
# mpirun or an MPI build is missing. Every run says --device cpu: on a GPU machine auto would train
# on the GPU (test_mpi_train_device.sh).
. "$(dirname "$0")/lib.sh"

BIN=${WINNOW_MPI:-$ROOT/winnow}
if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev; make deps): MPI training not tested"
    finish
fi
# OpenMPI refuses root without these; this machine has fewer cores than ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
# A build without MPI (the sanitized one) started as 2 MPI processes refuses rather than run twice.
if [ -x "$WINNOW" ] && ! "$WINNOW" --version | grep -q "with MPI"; then
    "${MPIRUN[@]}" -np 2 "$WINNOW" stages >/dev/null 2>"$T/nompi.err"
    check "a build without MPI under mpirun -np 2: exit 2" [ $? -eq 2 ]
    check "... says it was built without MPI" contains "$T/nompi.err" "built without MPI"
fi
if [ ! -x "$BIN" ] || ! "$BIN" --version | grep -q "with MPI"; then
    echo "SKIP: $BIN is not an MPI build (make with mpicc present, or MPI=1): MPI training not tested"
    finish
fi
export WINNOW_MPI_CHECK=1

D=$T/data
mkdir -p "$D"
python3 - "$D" <<'EOF'
import random, struct, sys
random.seed(5)
for name, n in (("train_000000.bin", 20000), ("val_000000.bin", 2000)):
    t, toks = 0, []
    for _ in range(n):
        t = (t * 7 + 3) % 64 if random.random() < 0.8 else random.randrange(64)
        toks.append(t)
    with open(f"{sys.argv[1]}/{name}", "wb") as f:
        f.write(struct.pack("<256i", 20240520, 1, n, *[0] * 253))
        f.write(struct.pack(f"<{n}H", *toks))
EOF
ARGS=(--data "$D/train_*.bin" --val "$D/val_*.bin" --layers 1 --dim 32 --heads 2 --context 16 --batch 8
      --steps 20 --lr 3e-3 --val-every 10 --val-batches 3 --checkpoint-every 5 --seed 3 --threads 1 --device cpu)

# compare REF OUT...: losses and parameters of each OUT against REF within the tolerances above
compare() {
    python3 - "$@" <<'EOF'
import json, struct, sys
def params(d):
    b = open(f"{d}/model.safetensors", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        out[k] = struct.unpack(f"<{(e - s) // 4}f", b[8 + n + s:8 + n + e])
    return out
ref = sys.argv[1]
a, pa = json.load(open(f"{ref}/train.json")), params(ref)
ok = True
for d in sys.argv[2:]:
    b, pb = json.load(open(f"{d}/train.json")), params(d)
    assert len(a["train_loss"]) == len(b["train_loss"]) and [v[0] for v in a["val_loss"]] == [v[0] for v in b["val_loss"]]
    tl = max(abs(x - y) / abs(x) for x, y in zip(a["train_loss"], b["train_loss"]))
    vl = max(abs(x[1] - y[1]) / abs(x[1]) for x, y in zip(a["val_loss"], b["val_loss"]))
    # The key bias (attn.c_attn.bias[C:2C]) has an exactly zero gradient in exact arithmetic (softmax
    # ignores a shift shared by a row's scores), so its computed gradient is rounding noise that
    # AdamW normalises to steps of about lr: in every run it is a random walk of its own. It is
    # checked apart, loosely.
    C = len(pa["ln_f.weight"])
    def diffs(kb):
        for k in pa:
            for i, (x, y) in enumerate(zip(pa[k], pb[k])):
                if kb == (k.endswith("attn.c_attn.bias") and C <= i < 2 * C): yield x, y
    pd = max(abs(x - y) - 1e-4 * abs(x) for x, y in diffs(False))
    pm = max(abs(x - y) for x, y in diffs(False))
    kd = max(abs(x - y) for x, y in diffs(True))
    print(f"{d.split('/')[-1]} ({b.get('ranks')} ranks) vs {ref.split('/')[-1]}: largest relative difference of the "
          f"training losses {tl:.2e}, validation {vl:.2e}; parameters: largest |difference| {pm:.2e} "
          f"(key bias: {kd:.2e})")
    ok &= tl <= 1e-5 and vl <= 1e-5 and pd <= 1e-6 and kd <= 1e-4 and sorted(pa) == sorted(pb)
sys.exit(0 if ok else 1)
EOF
}

# ---- 1. 1, 2 and 4 ranks against one process ---------------------------------------------
"$BIN" train "${ARGS[@]}" --out "$T/p1" 2>"$T/p1.err"
check "one process exits 0" [ $? -eq 0 ] || cat "$T/p1.err" >&2
for n in 1 2 4; do
    "${MPIRUN[@]}" -np $n "$BIN" train "${ARGS[@]}" --out "$T/r$n" >"$T/r$n.out" 2>"$T/r$n.err"
    check "mpirun -np $n: exits 0" [ $? -eq 0 ] || cat "$T/r$n.err" >&2
    check "mpirun -np $n: train.json ranks $n" [ "$(json_get "$T/r$n/train.json" ranks)" = $n ]
    check "mpirun -np $n: one 'done' line (rank 0 reports)" [ "$(grep -c 'winnow train: done' "$T/r$n.err")" = 1 ]
done
check "-np 1 == one process, byte for byte" cmp -s "$T/p1/model.safetensors" "$T/r1/model.safetensors"
compare "$T/p1" "$T/r2" "$T/r4"
check "2 and 4 ranks: losses within 1e-5 relative, parameters within 1e-6 + 1e-4 |ref| of one process's" [ $? -eq 0 ]
check "4 ranks: tokens per rank (20 steps x 2 sequences x 16)" \
    [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens_per_rank"])' "$T/r4/train.json")" = \
      "[640, 640, 640, 640]" ]
check "2 ranks: the split is announced" contains "$T/r2.err" "2 MPI ranks, 4 sequences each per step"

# ---- 2. resume under MPI -------------------------------------------------------------------
"${MPIRUN[@]}" -np 2 "$BIN" train "${ARGS[@]}" --out "$T/s2" --stop-after 7 2>"$T/s2.err" &&
    "${MPIRUN[@]}" -np 2 "$BIN" train --out "$T/s2" --resume --threads 1 --device cpu 2>>"$T/s2.err"
check "2 ranks: --stop-after 7 then --resume exits 0" [ $? -eq 0 ] || cat "$T/s2.err" >&2
check "... byte-identical to the straight 2-rank run" cmp -s "$T/r2/model.safetensors" "$T/s2/model.safetensors"
"${MPIRUN[@]}" -np 2 "$BIN" train "${ARGS[@]}" --out "$T/s4" --stop-after 7 2>"$T/s4.err" &&
    "${MPIRUN[@]}" -np 4 "$BIN" train --out "$T/s4" --resume --threads 1 --device cpu 2>>"$T/s4.err"
check "2 ranks then --resume with 4 exits 0" [ $? -eq 0 ] || cat "$T/s4.err" >&2
compare "$T/p1" "$T/s4"
check "... within the tolerances of one process" [ $? -eq 0 ]

# ---- 3. errors -----------------------------------------------------------------------------
"${MPIRUN[@]}" -np 4 "$BIN" train "${ARGS[@]}" --batch 6 --out "$T/e1" >/dev/null 2>"$T/e1.err"
rc=$?
check "--batch 6 on 4 ranks: exit 2 (got $rc)" [ $rc -eq 2 ]
check "... says why, once" [ "$(grep -c 'batch 6 is not a multiple of the 4 MPI ranks' "$T/e1.err")" = 1 ]
check "... nothing written" [ ! -e "$T/e1/model.safetensors" ]
if "$BIN" --version | grep -q "; 0 CUDA devices\|CPU-only build"; then
    "${MPIRUN[@]}" -np 2 "$BIN" train "${ARGS[@]}" --device cuda --out "$T/e2" >/dev/null 2>"$T/e2.err"
    check "--device cuda with 2 ranks and no GPU: exit 2" [ $? -eq 2 ]
    check "... rank 0 says why, once" [ "$(grep -c 'rank 0 of 2: --device cuda: \(no CUDA device is visible\|the CUDA trainer is not built\)' "$T/e2.err")" = 1 ]
    check "... nothing written" [ ! -e "$T/e2/model.safetensors" ]
fi
WINNOW_MPI_TEST_FAIL=1:3 timeout 60 "${MPIRUN[@]}" -np 2 "$BIN" train "${ARGS[@]}" --out "$T/e3" >/dev/null 2>"$T/e3.err"
rc=$?
check "a rank failing at step 3 stops the job (exit $rc, not 0, not a timeout)" [ $rc -ne 0 -a $rc -ne 124 ]
check "... naming the rank and the cause" contains "$T/e3.err" "rank 1 of 2: step 3: injected failure"
sed -n '/rank 1 of 2/p' "$T/e3.err" | sed 's/^/     /'
"${MPIRUN[@]}" -np 2 "$BIN" train --out "$T/none" --resume >/dev/null 2>"$T/e4.err"
check "--resume of nothing with 2 ranks: exit 1, said once" \
    [ $? -eq 1 -a "$(grep -c 'no checkpoint to resume' "$T/e4.err")" = 1 ]
"${MPIRUN[@]}" -np 2 "$BIN" stages >/dev/null 2>"$T/e5.err"
check "winnow stages with 2 ranks: exit 2" [ $? -eq 2 ]
check "... says only run and train run across ranks" contains "$T/e5.err" "only .winnow run. and .winnow train. run across ranks"
finish
