#!/usr/bin/env python3
"""compare_tokenizers.py OUT_JSONL MODE [ARGS] - checks the token ids that
winnow's tokenize stage wrote (winnow.tokens, emit: ids, eot: none) against
reference tokenizers, document by document:
  gpt2 DIR        tiktoken (from DIR's encoder.json + vocab.bpe) and HF
                  tokenizers built independently from the same two files
  hf FILE         HF tokenizers loading FILE (a tokenizer.json)
Prints documents/tokens compared; exits 1 on the first mismatch, 77 when
the reference packages are missing (the caller prints SKIP)."""
import json
import sys

out, mode, arg = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    if mode == "gpt2":
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
except ImportError as e:
    print(f"missing reference package: {e}")
    sys.exit(77)

refs = {}
if mode == "gpt2":
    ranks = data_gym_to_mergeable_bpe_ranks(f"{arg}/vocab.bpe", f"{arg}/encoder.json")
    pat = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
    enc = tiktoken.Encoding("gpt2-local", pat_str=pat, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    refs["tiktoken"] = enc.encode_ordinary
    vocab = json.load(open(f"{arg}/encoder.json", encoding="utf-8"))
    lines = open(f"{arg}/vocab.bpe", encoding="utf-8").read().split("\n")[1:]
    merges = [tuple(l.split(" ")) for l in lines if l]
    hf = Tokenizer(models.BPE(vocab, merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
else:
    hf = Tokenizer.from_file(arg)
refs["hf"] = lambda text: hf.encode(text).ids

docs = tokens = 0
for line in open(out, encoding="utf-8"):
    rec = json.loads(line)
    text, ids = rec["text"], rec["winnow"]["tokens"]
    for name, f in refs.items():
        want = f(text)
        if want != ids:
            i = next((k for k, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
            print(f"MISMATCH with {name} in document {rec.get('id')}: at token {i}: winnow {ids[i:i+8]} "
                  f"{name} {want[i:i+8]} (lengths {len(ids)} vs {len(want)})")
            sys.exit(1)
    if mode == "hf" and hf.decode(ids, skip_special_tokens=False) != text:
        print(f"HF decode of winnow's ids differs from the text in document {rec.get('id')}")
        sys.exit(1)
    docs += 1
    tokens += len(ids)
if not docs:
    print("no documents to compare")
    sys.exit(1)
print(f"{mode}: {docs} documents, {tokens} tokens identical to {' and '.join(refs)}")
