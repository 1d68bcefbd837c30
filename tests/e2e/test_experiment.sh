# test_experiment.sh - `winnow experiment` end to end, in miniature (a few training steps): the
# arms' pipelines (selected, an extra arm, the random baseline without the score stage and with a
# uniform selection of the selected run's token count), experiment.json in DESIGN.md's pinned
# form, and the experiment's place in `winnow report`. Whether selection pays is measured by
# pipelines/experiment.yaml (EXPERIMENTS.md), not here.
. "$(dirname "$0")/lib.sh"

cat >"$T/x.yaml" <<YAML
name: x
workdir: $T/run
inputs:
  - path: samples/web/*.jsonl.zst
datasets:
  target:  {path: samples/target/*.jsonl.zst}
  heldout: {path: samples/heldout/*.jsonl.zst}
stages:
  - length_filter: {min_words: 20}
  - tokenize:      {tokenizer: samples/tokenizer.json}
  - score:         {methods: perplexity, train_reference: target, train_steps: 5, train_layers: 1, train_dim: 32, train_heads: 2, train_context: 64, train_batch: 4}
  - select:        {score: ref_loss, order: asc, budget_fraction: 0.4}
  - pack:          {}
experiment:
  eval: heldout
  seeds: 2
  steps: 6
  batch: 2
  context: 32
  layers: 1
  dim: 16
  heads: 2
  eval_every: 3
  budgets: '0.34, 0.67'
  arms:
    high_ppl: {order: desc}
YAML
"$WINNOW" experiment "$T/x.yaml" --no-progress >"$T/out.txt" 2>"$T/err.txt"
check "experiment exits 0" [ $? -eq 0 ]
check "the table names every arm" bash -c "grep -q '^selected ' '$T/out.txt' && grep -q '^high_ppl ' '$T/out.txt' && grep -q '^random ' '$T/out.txt'"
check "the random arm leaves the score stage out" bash -c "ls '$T/run/experiment/arms/random/stages' | grep -q select && ! ls '$T/run/experiment/arms/random/stages' | grep -q score"
check "the extra arm reused the cached reference model" bash -c "ls '$T/run/experiment/cache/'model-*.safetensors >/dev/null"
python3 - "$T/run" <<'PY' || fails=$((fails + 1))
import json, sys
run = sys.argv[1]
x = json.load(open(f"{run}/experiment.json"))
names = [a["name"] for a in x["arms"]]
assert names == ["selected", "high_ppl", "random"], names
for name in names:
    a = x[name]  # DESIGN.md's pinned per-arm object
    for k in ("tokens", "seeds", "final_loss", "final_loss_mean", "final_loss_std"):
        assert k in a, (name, k)
    assert len(a["final_loss"]) == 2 and a["seeds"] == [1, 2], a
    m = sum(a["final_loss"]) / 2
    assert abs(m - a["final_loss_mean"]) < 1e-9, (m, a)
    if name != "random":
        assert "tokens_to_match_random" in a
for arm in x["arms"]:
    sc = arm["scaling"]  # the budget sweep: 2, 4 and 6 steps of 2 x 32 tokens
    assert [p[0] for p in sc["points"]] == [128, 256, 384], sc["points"]
    assert sc["points"][-1][1] == arm["final_loss_mean"] or abs(sc["points"][-1][1] - x[arm["name"]]["final_loss_mean"]) < 1e-12
    if sc["fit"] is not None:  # 3 points, 3 parameters: the fit passes through the means
        f = sc["fit"]
        for D, L, _ in sc["points"]:
            assert abs(f["E"] + f["B"] * D ** -f["beta"] - L) < 0.05, (f, D, L)
        assert sc["predicted"]["10x"]["tokens"] == 3840
    if arm["name"] != "random" and sc["fit"] is not None and x["arms"][-1]["scaling"]["fit"] is not None:
        assert "at_largest" in sc["effective_data_multiplier"]
    assert len(arm["curves"]) == 2
    for c in arm["curves"]:
        assert [p[0] for p in c["curve"]] == [0, 3, 6], c["curve"]
        assert all(p[1] == p[0] * 2 * 32 for p in c["curve"])
        assert c["curve"][-1][2] < c["curve"][0][2], c  # training lowers the held-out loss
# the random baseline keeps (about) the selected token count: a uniform selection under the
# selected run's tokens_out as its budget, never above it
def sel_out(d, stage):
    import glob
    r = json.load(open(glob.glob(f"{d}/stages/*-{stage}/report.json")[0]))
    return r["tokens_out"]
s = sel_out(run, "select")
r = sel_out(f"{run}/experiment/arms/random", "select")
assert r <= s and r > 0.9 * s, (r, s)
rr = json.load(open(f"{run}/experiment/arms/random/stages/03-select/report.json"))
assert rr["params"]["score"] == "random" and rr["params"]["budget_tokens"] == s, rr["params"]
print("experiment.json: arms", names, "selected", s, "random", r, "tokens")
PY
"$WINNOW" report "$T/run" --html "$T/r.html" >/dev/null
check "the HTML report shows the experiment" contains "$T/r.html" "high_ppl"
check "the HTML report shows the budget sweep" contains "$T/r.html" "Scaling with the token budget"
finish
