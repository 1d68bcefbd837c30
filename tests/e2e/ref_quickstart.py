#!/usr/bin/env python3
"""ref_quickstart.py - an independent reference for the quickstart funnel:
reads samples/ with Python's json, tarfile and the zstd CLI, applies NFKC
(unicodedata), control stripping, LF newlines, the 20-word minimum and
whitespace-collapsed exact dedup, and prints "docs N short N dup N"."""
import glob
import json
import subprocess
import tarfile
import unicodedata

docs = []
for f in sorted(glob.glob("samples/web/*.jsonl.zst")):
    out = subprocess.run(["zstd", "-dc", f], capture_output=True, check=True).stdout.decode()
    docs += [json.loads(l)["text"] for l in out.split("\n") if l.strip()]
for f in sorted(glob.glob("samples/text/*.txt")):
    docs.append(open(f, encoding="utf-8").read())
for f in sorted(glob.glob("samples/archive/*.tar.gz")):
    with tarfile.open(f) as t:
        for m in t.getmembers():
            data = t.extractfile(m).read().decode()
            if m.name.endswith(".jsonl"):
                docs += [json.loads(l)["text"] for l in data.split("\n") if l.strip()]
            else:
                docs.append(data)

WS = set(" \t\n\r\x0b\x0c\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}

def normalize(t):
    t = t.replace("\r\n", "\n").replace("\r", "\n")
    t = "".join(c for c in t if not ((ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F))
    return unicodedata.normalize("NFKC", t)

def words(t):
    n, inw = 0, False
    for c in t:
        sp = c in WS
        n += not sp and not inw
        inw = not sp
    return n

short = dup = 0
seen = set()
for d in map(normalize, docs):
    if words(d) < 20:
        short += 1
        continue
    key = " ".join(x for x in "".join(" " if c in WS else c for c in d).split(" ") if x)
    dup += key in seen
    seen.add(key)
print(f"docs {len(docs)} short {short} dup {dup}")
