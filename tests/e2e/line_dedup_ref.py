#!/usr/bin/env python3
"""line_dedup_ref.py PARAMS_JSON RUN_DIR INPUT... - an independent Python
reimplementation of the line_dedup stage (stages/line_dedup.c's header
comment; README's Stages section) checked against a winnow run that had
line_dedup as its only stage: the same documents kept, in the same order,
with the same texts (so the same lines removed), and the same counts in the
stage's report. Standard library only; whole normalized strings are compared
(no hashing), in plain dicts.

PARAMS_JSON holds the stage's non-default parameters, e.g. '{"unit": "paragraph"}'.
Prints a one-line summary; exits 1 on the first difference, naming it."""
import glob
import gzip
import json
import subprocess
import sys
import unicodedata

# Unicode White_Space (src/text.c wn_is_space), not str.isspace (which also
# takes U+001C..U+001F).
WS = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
WS.update(range(0x2000, 0x200B))


def is_space(c):
    return ord(c) in WS


def simple_lower(c):
    lo = c.lower()
    if len(lo) == 1:
        return lo
    return "i" if c == "\u0130" else c  # U+0130 is the one full mapping of length 2


def normalize(s, p):
    out, space, last = [], False, 0
    for ch in s:
        for x in (unicodedata.normalize("NFD", ch) if p["accents"] else ch):
            if p["accents"] and unicodedata.category(x) == "Mn":
                continue
            if is_space(x):
                if p["collapse_whitespace"]:
                    space = len(out) > 0
                elif out:
                    out.append(x)
                continue
            if p["lowercase"]:
                x = simple_lower(x)
            cat = unicodedata.category(x)
            if p["punctuation"] and (cat[0] == "P" or cat in ("Cc", "Cf")):
                continue
            if p["digits"] and cat == "Nd":
                x = "0"
            if space:
                out.append(" ")
                space = False
            out.append(x)
            last = len(out)
    return "".join(out[:last])


def units(text, paragraph):
    """[content, has_newline, blank] for every unit"""
    res, i, n = [], 0, len(text)
    while i < n:
        j = text.find("\n", i)
        e = n if j < 0 else j
        nl = j >= 0
        blank = all(is_space(c) for c in text[i:e])
        if paragraph and not blank and res and not res[-1][2]:
            res[-1][0] += "\n" + text[i:e]
            res[-1][1] = nl
        else:
            res.append([text[i:e], nl, blank])
        i = e + 1 if nl else n
    return res


def read_jsonl(path):
    if path.endswith(".zst"):
        data = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout.decode("utf-8")
    elif path.endswith(".gz"):
        data = gzip.open(path, "rt", encoding="utf-8").read()
    else:
        data = open(path, encoding="utf-8").read()
    return [json.loads(l) for l in data.split("\n") if l.strip()]


def main():
    p = {"unit": "line", "min_count": 0, "lowercase": True, "digits": True, "punctuation": True, "accents": True,
         "collapse_whitespace": True, "blank_lines": "follow", "min_chars": 0, "min_words": 0}
    p.update(json.loads(sys.argv[1]))
    run, inputs = sys.argv[2], sys.argv[3:]
    docs = [r for f in inputs for r in read_jsonl(f)]
    para = p["unit"] == "paragraph"
    U = [units(r["text"], para) for r in docs]
    keys = [[None if u[2] else (normalize(u[0], p) or None) for u in us] for us in U]
    count = {}
    for ks in keys:
        for k in ks:
            if k is not None:
                count[k] = count.get(k, 0) + 1
    seen = set()
    want, dropped = [], {}
    c = dict(lines_total=0, lines_hashed=0, lines_removed=0, blank_lines_removed=0, bytes_removed=0, docs_modified=0)
    for r, us, ks in zip(docs, U, keys):
        c["lines_total"] += len(us)
        rm = []
        for k in ks:
            if k is None:
                rm.append(0)
                continue
            c["lines_hashed"] += 1
            if p["min_count"]:
                rm.append(1 if count[k] >= p["min_count"] else 0)
            else:
                rm.append(1 if k in seen else 0)
                seen.add(k)
        text = r["text"]
        if not any(rm):
            want.append((r.get("id"), text))
            continue
        n = len(us)
        if p["blank_lines"] == "follow":
            for j in range(n):
                if rm[j] == 1:
                    k = j + 1
                    while k < n and us[k][2]:
                        rm[k] = 2
                        k += 1
            kept = [j for j in range(n) if not rm[j] and not us[j][2]]
            last = kept[-1] if kept else -1
            if any(rm[j] == 1 for j in range(last + 1, n)):
                for j in range(last + 1, n):
                    rm[j] = rm[j] or 2
        new = "".join(u[0] + ("\n" if u[1] else "") for u, x in zip(us, rm) if not x)
        if new.endswith("\n") and not text.endswith("\n"):
            new = new[:-1]
        c["lines_removed"] += rm.count(1)
        c["blank_lines_removed"] += rm.count(2)
        c["bytes_removed"] += len(text.encode("utf-8")) - len(new.encode("utf-8"))
        words = sum(1 for w in "".join(" " if is_space(ch) else ch for ch in new).split(" ") if w)
        if not words:
            reason = "empty_after_dedup"
        elif words < p["min_words"] or len(new) < p["min_chars"]:
            reason = "too_short_after_dedup"
        else:
            reason = None
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
        else:
            c["docs_modified"] += 1
            want.append((r.get("id"), new))

    got = []
    for f in sorted(glob.glob(f"{run}/documents/part-*.jsonl.zst")):
        got += [(r.get("id"), r["text"]) for r in read_jsonl(f)]
    if len(got) != len(want):
        sys.exit(f"documents: {len(got)} written, {len(want)} expected")
    for (gi, gt), (wi, wt) in zip(got, want):
        if gi != wi:
            sys.exit(f"document order/set differs: got {gi}, expected {wi}")
        if gt != wt:
            sys.exit(f"document {gi}: text differs:\n  got      {gt[:300]!r}\n  expected {wt[:300]!r}")

    rep = json.load(open(glob.glob(f"{run}/stages/*-line_dedup/report.json")[0]))
    hist = {}
    for k, v in count.items():
        if v >= 2:
            b = v.bit_length() - 2  # [2^(b+1), 2^(b+2))
            hist[b] = hist.get(b, 0) + 1
    top = max(hist) + 1 if hist else 1
    expect = dict(c, unique_line_hashes=len(count), duplicated_line_hashes=sum(1 for v in count.values() if v >= 2),
                  docs_dropped={"empty_after_dedup": dropped.get("empty_after_dedup", 0),
                                "too_short_after_dedup": dropped.get("too_short_after_dedup", 0)},
                  dropped=dropped, docs_in=len(docs), docs_out=len(want), modified=c["docs_modified"],
                  recurrence_histogram=([2 ** (b + 1) for b in range(top + 1)], [hist.get(b, 0) for b in range(top)]))
    rep["recurrence_histogram"] = (rep["recurrence_histogram"]["edges"], rep["recurrence_histogram"]["counts"])
    for k, v in expect.items():
        if rep.get(k) != v and not (isinstance(v, tuple) and list(map(list, v)) == list(map(list, rep[k]))):
            sys.exit(f"report {k}: {rep.get(k)} != expected {v}")
    print(f"line_dedup reference ({sys.argv[1]}): {len(docs)} documents, {c['lines_total']} units, "
          f"{c['lines_removed']} removed (+{c['blank_lines_removed']} blank), {c['bytes_removed']} bytes, "
          f"{c['docs_modified']} modified, dropped {dropped}, {len(want)} kept: identical")


if __name__ == "__main__":
    main()
