#!/usr/bin/env python3
"""check_shards.py RUN_DIR TOKENIZER_JSON - reads a run's token shards as
any llm.c loader would (256 x int32 header: magic 20240520, version 1,
token count; uint16 tokens; file size checked) with numpy-free struct code,
splits them at the .docs.bin document starts, decodes every document with HF
tokenizers, and checks that the documents are exactly the run's output
documents, each once, each prefixed with <|endoftext|> (llm.c's convention).
Exit 77 when `tokenizers` is missing."""
import glob
import json
import os
import struct
import subprocess
import sys

run, tok_path = sys.argv[1], sys.argv[2]
try:
    from tokenizers import Tokenizer
except ImportError:
    print("tokenizers not installed")
    sys.exit(77)
tok = Tokenizer.from_file(tok_path)

def read(path, magic, fmt, size):
    data = open(path, "rb").read()
    h = struct.unpack("<256i", data[:1024])
    assert h[0] == magic, f"{path}: magic {h[0]}"
    assert h[1] == 1, f"{path}: version {h[1]}"
    assert len(data) == 1024 + size * h[2], f"{path}: size {len(data)} for {h[2]} items"
    return list(struct.unpack(f"<{h[2]}{fmt}", data[1024:]))

want = {}
for f in sorted(glob.glob(f"{run}/documents/*.jsonl.zst")):
    for line in subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode().split("\n"):
        if line:
            text = json.loads(line)["text"]
            want[text] = want.get(text, 0) + 1
index = json.load(open(f"{run}/shards/index.json"))
got = 0
for entry in index["shards"]:
    path = f"{run}/shards/{entry['file']}"
    ids = read(path, 20240520, "H", 2)
    assert len(ids) == entry["tokens"], (path, len(ids), entry["tokens"])
    starts = read(path[:-4] + ".docs.bin", 20261102, "Q", 8) + [len(ids)]
    for a, b in zip(starts, starts[1:]):
        text = tok.decode(ids[a:b], skip_special_tokens=False)
        assert text.startswith("<|endoftext|>"), text[:40]
        body = text[len("<|endoftext|>"):]
        assert want.get(body, 0) > 0, f"a shard document is not an output document: {body[:60]!r}"
        want[body] -= 1
        got += 1
left = sum(want.values())
assert left == 0, f"{left} output documents are missing from the shards"
print(f"shards: {len(index['shards'])} files, {got} documents, all output documents exactly once, EOT-prefixed")
