#!/usr/bin/env python3
"""check_hf_gpt2.py - winnow's GPT-2 checkpoints against HF transformers' GPT2LMHeadModel.

usage: check_hf_gpt2.py load MODEL.safetensors SHARD.bin WINNOW_LOSS [TOL]
       check_hf_gpt2.py export DIR SHARD.bin V T L H C

load: winnow -> HF.
- Writes a config.json matching the checkpoint's metadata (winnow_config) next to a link to
  the file and calls GPT2LMHeadModel.from_pretrained on that directory: every parameter must
  load (no missing or unexpected keys, apart from the attention-mask buffers HF makes itself).
- Reads the first T + 1 tokens of SHARD.bin (llm.c layout) with T = the model's context, runs
  HF's forward and prints the mean cross-entropy of the T next-token predictions.
- winnow has no logits dump, so its logits are compared through that loss: WINNOW_LOSS is
  winnow's validation loss of the same checkpoint on a shard holding exactly that sequence
  (`winnow train --init MODEL --steps 0 --val SHARD --batch 1 --val-batches 1`). They must
  agree within TOL (default 1e-3). Also checks that the file's tensors are float32, sorted,
  unprefixed HF GPT-2 names.

export: HF -> winnow. Saves a randomly initialised GPT2LMHeadModel (weights N(0, 0.1), wte
N(0, 0.5), LayerNorm gains N(1, 0.3), so the logits are far from uniform) with save_pretrained
as DIR/model.safetensors (HF's own names and metadata: "transformer." prefixes, no
winnow_config) and prints its loss on the first T + 1 tokens of SHARD.bin, for
`winnow train --init DIR/model.safetensors --heads H --steps 0` to match.

Exit status: 0 agree, 1 disagree, 77 when torch or transformers cannot be imported (SKIP).
"""
import json
import os
import struct
import sys
import tempfile

try:
    import torch
    import transformers
    from safetensors import safe_open
except Exception as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: torch/transformers not importable ({e.__class__.__name__}: {e})")
    sys.exit(77)


def read_shard(path):
    with open(path, "rb") as f:
        head = struct.unpack("<256i", f.read(1024))
        assert head[0] == 20240520 and head[1] in (1, 2), f"{path}: not an llm.c shard"
        n = head[2]
        width = 2 if head[1] == 1 else 4
        data = f.read(n * width)
    return list(struct.unpack(f"<{n}{'H' if width == 2 else 'I'}", data))


def gpt2_config(V, T, L, H, C):
    return transformers.GPT2Config(
        vocab_size=V, n_positions=T, n_embd=C, n_layer=L, n_head=H, activation_function="gelu_new",
        layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
        bos_token_id=V - 1, eos_token_id=V - 1)


def sequence_loss(model, shard, T):
    """Mean next-token cross-entropy over the first T + 1 tokens of shard."""
    toks = read_shard(shard)[: T + 1]
    assert len(toks) == T + 1, f"{shard}: needs {T + 1} tokens"
    with torch.no_grad():
        logits = model(torch.tensor([toks[:T]])).logits[0]
    return torch.nn.functional.cross_entropy(logits.double(), torch.tensor(toks[1:])).item(), logits


def export(out_dir, shard, V, T, L, H, C):
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(gpt2_config(V, T, L, H, C))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith(".weight"):
                p.normal_(1.0, 0.3)  # LayerNorm gains around 1
            else:
                p.normal_(0.0, 0.5 if name.endswith("wte.weight") else 0.1)
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    loss, _ = sequence_loss(model, shard, T)
    print(f"{loss:.7f}")
    return 0


def main():
    if sys.argv[1] == "export":
        return export(sys.argv[2], sys.argv[3], *[int(x) for x in sys.argv[4:9]])
    model_path, shard, winnow_loss = sys.argv[2], sys.argv[3], float(sys.argv[4])
    tol = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3
    with safe_open(model_path, "pt") as f:
        meta = f.metadata()
        names = list(f.keys())
        dtypes = {f.get_slice(k).get_dtype() for k in names}
    cfg = json.loads(meta["winnow_config"])
    assert meta.get("format") == "pt", meta
    assert dtypes == {"F32"}, dtypes
    assert not any(k.startswith("transformer.") for k in names), names[:3]
    assert "wte.weight" in names and f"h.{cfg['layers'] - 1}.mlp.c_proj.weight" in names

    hf_cfg = gpt2_config(cfg["vocab"], cfg["context"], cfg["layers"], cfg["heads"], cfg["dim"])
    with tempfile.TemporaryDirectory() as d:
        hf_cfg.save_pretrained(d)
        os.symlink(os.path.abspath(model_path), os.path.join(d, "model.safetensors"))
        model, info = transformers.GPT2LMHeadModel.from_pretrained(d, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if not k.endswith((".attn.bias", ".attn.masked_bias", "lm_head.weight"))]
    unexpected = list(info["unexpected_keys"])
    if missing or unexpected:
        print(f"FAIL: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return 1
    model.eval()
    assert torch.equal(model.lm_head.weight, model.transformer.wte.weight)  # the tied head really is wte
    hf_loss, logits = sequence_loss(model, shard, cfg["context"])
    print(f"HF GPT2LMHeadModel loss {hf_loss:.6f}, winnow {winnow_loss:.6f}, |diff| {abs(hf_loss - winnow_loss):.2e} "
          f"(tolerance {tol:g}); logits shape {tuple(logits.shape)}")
    return 0 if abs(hf_loss - winnow_loss) <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
