# test_pack.sh - the pack stage's layouts read back by independent code:
# best_fit sequences (exact length, padding weighted 0, documents cut only
# when longer than a sequence) and Megatron-LM's .bin/.idx (parsed per
# Megatron's _IndexWriter layout), checked against the output documents.
. "$(dirname "$0")/lib.sh"

manifest() { # workdir, pack params
    cat <<YAML
name: pack
workdir: $1
inputs:
  - path: samples/web/*.jsonl.zst
stages:
  - exact_dedup: {}
  - tokenize: {tokenizer: samples/tokenizer.json}
  - pack: {$2}
YAML
}
manifest "$T/bf" "method: best_fit, seq_len: 200, window: 64" >"$T/bf.yaml"
check "best_fit run" "$WINNOW" run "$T/bf.yaml" --no-progress 2>/dev/null
python3 - "$T/bf" <<'PY' || fails=$((fails + 1))
import json, struct, sys
run = sys.argv[1]
idx = json.load(open(f"{run}/shards/index.json"))
rep = json.load(open(f"{run}/stages/03-pack/report.json"))
L = idx["sequence_tokens"]
assert L == 201, L
def read(path, fmt, size):
    d = open(path, "rb").read()
    h = struct.unpack("<256i", d[:1024])
    return h, list(struct.unpack(f"<{h[2]}{fmt}", d[1024:]))
pad = total = 0
for sh in idx["shards"]:
    base = f"{run}/shards/{sh['file'][:-4]}"
    _, toks = read(base + ".bin", "H", 2)
    _, w = read(base + ".weights.bin", "f", 4)
    _, starts = read(base + ".docs.bin", "Q", 8)
    assert len(toks) % L == 0 and len(w) == len(toks)
    for q in range(0, len(toks), L):
        ws = w[q:q + L]
        # weights: ones, then zeros (padding) to the end of the sequence
        k = ws.index(0.0) if 0.0 in ws else L
        assert all(x == 1.0 for x in ws[:k]) and all(x == 0.0 for x in ws[k:]), ws
        assert all(t == idx["eot"] for t in toks[q + k:q + L])
        pad += L - k
        total += L
        # every chunk starts with EOT unless it continues a long document
        inside = [s - q for s in starts if q <= s < q + L]
        assert inside and inside[0] == 0
assert abs(rep["padding_fraction"] - pad / total) < 1e-9, (rep["padding_fraction"], pad / total)
assert rep["sequences"] * L == total
print(f"best_fit: {total // L} sequences of {L} tokens, padding {pad / total:.3%}, "
      f"truncated documents {rep['truncated_documents']}")
PY

manifest "$T/mg" "format: megatron, shard_tokens: 50000" >"$T/mg.yaml"
check "megatron run" "$WINNOW" run "$T/mg.yaml" --no-progress 2>/dev/null
python3 - "$T/mg" <<'PY' || fails=$((fails + 1))
import json, struct, subprocess, sys, glob
run = sys.argv[1]
try:
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file("samples/tokenizer.json")
except ImportError:
    tok = None
want = {}
for f in sorted(glob.glob(f"{run}/documents/*.zst")):
    for l in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n"):
        if l:
            t = json.loads(l)["text"]
            want[t] = want.get(t, 0) + 1
n_docs = 0
idx = json.load(open(f"{run}/shards/index.json"))
assert idx["format"].startswith("megatron")
for sh in idx["shards"]:
    base = f"{run}/shards/{sh['file'][:-4]}"
    i = open(base + ".idx", "rb").read()
    assert i[:9] == b"MMIDIDX\x00\x00"
    version, code = struct.unpack("<QB", i[9:18])
    nseq, ndoc = struct.unpack("<QQ", i[18:34])
    assert version == 1 and code == 8 and ndoc == nseq + 1
    o = 34
    sizes = struct.unpack(f"<{nseq}i", i[o:o + 4 * nseq]); o += 4 * nseq
    ptrs = struct.unpack(f"<{nseq}q", i[o:o + 8 * nseq]); o += 8 * nseq
    docs = struct.unpack(f"<{ndoc}q", i[o:o + 8 * ndoc]); o += 8 * ndoc
    assert o == len(i) and list(docs) == list(range(ndoc))
    data = open(base + ".bin", "rb").read()
    assert len(data) == 2 * sum(sizes) == 2 * sh["tokens"]
    for size, ptr in zip(sizes, ptrs):
        ids = list(struct.unpack(f"<{size}H", data[ptr:ptr + 2 * size]))
        if tok:
            text = tok.decode(ids, skip_special_tokens=False)
            assert text.startswith("<|endoftext|>")
            body = text[len("<|endoftext|>"):]
            assert want.get(body, 0) > 0, body[:60]
            want[body] -= 1
        n_docs += 1
assert n_docs == sum(1 for _ in want) or not tok or sum(want.values()) == 0
print(f"megatron: {len(idx['shards'])} .bin/.idx pairs, {n_docs} sequences" + (", all output documents once" if tok else ""))
PY
# concat + shuffle: the same documents, each once, in another order
manifest "$T/cs" "shuffle: true, window: 4, seed: 3" >"$T/cs.yaml"
manifest "$T/c0" "" >"$T/c0.yaml"
check "concat shuffle run" "$WINNOW" run "$T/cs.yaml" --no-progress 2>/dev/null
check "concat run" "$WINNOW" run "$T/c0.yaml" --no-progress 2>/dev/null
python3 - "$T/cs" "$T/c0" <<'PY' || fails=$((fails + 1))
import struct, sys
def docs(run):
    d = open(f"{run}/shards/train_000000.bin", "rb").read()
    n = struct.unpack("<3i", d[:12])[2]
    toks = struct.unpack(f"<{n}H", d[1024:])
    s = open(f"{run}/shards/train_000000.docs.bin", "rb").read()
    m = struct.unpack("<3i", s[:12])[2]
    starts = list(struct.unpack(f"<{m}Q", s[1024:])) + [n]
    return [toks[a:b] for a, b in zip(starts, starts[1:])]
a, b = docs(sys.argv[1]), docs(sys.argv[2])
assert sorted(a) == sorted(b), "shuffled shards hold other documents"
assert a != b, "shuffle changed nothing"
print(f"shuffle: {len(a)} documents, same multiset, new order")
PY
finish
