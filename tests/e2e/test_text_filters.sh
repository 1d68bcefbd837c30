#!/usr/bin/env bash
# test_text_filters.sh - url_filter, regex_filter and pii_redact in one pipeline over
# samples/web/*.jsonl.zst. The expected drop counts and PII counts are computed
# independently here (Python's json and re over the input); the output documents are
# checked with grep: the samples' invented e-mails (example.com) and phones (555-01xx)
# are replaced by tags, and their documentation-range IPs (192.0.2.x, 198.51.100.x)
# stay. The same run at 1 and 3 threads gives identical outputs and reports.
. "$(dirname "$0")/lib.sh"

printf '# blocked\nbest-offers.example.com\n' >"$T/domains.txt"
printf 'https://science.example.org/2023/05/questions-from-the-science-mailbag/\n' >"$T/urls.txt"

manifest() { # workdir [pattern]
    cat <<YAML
name: text-filters
workdir: $1
inputs:
  - path: samples/web/*.jsonl.zst
stages:
  - url_filter: {domains_file: $T/domains.txt, urls_file: $T/urls.txt, banned_words: 'deals,casino'}
  - regex_filter: {pattern: '${2:-(?i)\\bvpn\\b}'}
  - pii_redact: {}
YAML
}
manifest "$T/run" >"$T/m.yaml"
manifest "$T/run3" >"$T/m3.yaml"
check "run" "$WINNOW" run "$T/m.yaml" --no-progress --threads 1 2>/dev/null
check "run, 3 threads" "$WINNOW" run "$T/m3.yaml" --no-progress --threads 3 2>/dev/null

R=$T/run/stages
zstd -dcq "$T"/run/documents/part-*.jsonl.zst >"$T/out.jsonl"

python3 - "$T/run" <<'PY' || fails=$((fails + 1))
import glob, json, re, subprocess, sys
run = sys.argv[1]
docs = []
for f in sorted(glob.glob("samples/web/*.jsonl.zst")):
    out = subprocess.run(["zstd", "-dcq", f], check=True, capture_output=True).stdout
    docs += [json.loads(l) for l in out.splitlines() if l.strip()]

def rep(i, name):
    return json.load(open(glob.glob(f"{run}/stages/{i:02d}-{name}/report.json")[0]))

# url_filter, written from its documented rules
want = {"blocked_url": 0, "blocked_domain": 0, "banned_word": 0}
kept = []
for d in docs:
    u = d["url"].lower()
    bare = re.sub(r"^[a-z]+://", "", u).split("#")[0].rstrip("/")
    host = re.split(r"[/?#]", bare)[0]
    if bare == "science.example.org/2023/05/questions-from-the-science-mailbag":
        want["blocked_url"] += 1
    elif host == "best-offers.example.com" or host.endswith(".best-offers.example.com"):
        want["blocked_domain"] += 1
    elif {"deals", "casino"} & set(re.split(r"[^a-z0-9]+", bare)):
        want["banned_word"] += 1
    else:
        kept.append(d)
r = rep(1, "url_filter")
for k, v in want.items():
    assert r[k] == v and r["dropped"].get(k, 0) == v, (k, r[k], r["dropped"], v)
assert r["no_url"] == 0 and r["docs_out"] == len(kept), r
assert min(want.values()) > 0, want

# regex_filter
after = [d for d in kept if not re.search(r"(?i)\bvpn\b", d["text"])]
r = rep(2, "regex_filter")
assert r["dropped"].get("regex_match", 0) == len(kept) - len(after) > 0, r
assert r["matched_docs"] == len(kept) - len(after) and r["limit_hits"] == 0, r

# pii_redact: the samples' e-mails and phone forms
email = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
phone = re.compile(r"\+1[- ](?:312[- ])?555[- ]01\d\d|(?<![\d+-])555-01\d\d")
ne = sum(len(email.findall(d["text"])) for d in after)
np_ = sum(len(phone.findall(d["text"])) for d in after)
r = rep(3, "pii_redact")
assert r["pii"]["email"] == ne > 0, (r["pii"], ne)
assert r["pii"]["phone"] == np_ > 0, (r["pii"], np_)
assert r["pii"]["ipv4"] == 0 and r["ip_kept_reserved"] > 0, r  # documentation ranges kept
assert r["modified"] == sum(1 for d in after if email.search(d["text"]) or phone.search(d["text"])), r
print(f"text_filters: url drops {want}, regex drops {len(kept) - len(after)}, "
      f"e-mails {ne}, phones {np_}, kept IPs {r['ip_kept_reserved']}")
PY

check "e-mails redacted" bash -c "! grep -q '@example\.com' '$T/out.jsonl'"
check "phones redacted" bash -c "! grep -qE '555[- ]01[0-9][0-9]' '$T/out.jsonl'"
check "EMAIL tags in output" contains "$T/out.jsonl" '<EMAIL>'
check "PHONE tags in output" contains "$T/out.jsonl" '<PHONE>'
check "documentation IPs kept" grep -qE '192\.0\.2\.[0-9]+|198\.51\.100\.[0-9]+' "$T/out.jsonl"
check "no blocked domain in output" bash -c "! grep -q 'best-offers.example.com' '$T/out.jsonl'"
check "same documents at 3 threads" diff <(shard_sums "$T/run") <(shard_sums "$T/run3")
for s in 01-url_filter 02-regex_filter 03-pii_redact; do
    strip='import json,sys; r=json.load(open(sys.argv[1])); [r.pop(k) for k in list(r) if k in ("throughput", "energy") or "second" in k]; print(json.dumps(r,sort_keys=True))'
    check "same $s report at 3 threads" diff <(python3 -c "$strip" "$R/$s/report.json") \
        <(python3 -c "$strip" "$T/run3/stages/$s/report.json")
done

# a manifest error names the pattern and offset, exit status 2
manifest "$T/bad" 'a(b' >"$T/bad.yaml"
"$WINNOW" run "$T/bad.yaml" --no-progress 2>"$T/bad.err"
check "bad pattern exits 2" test $? -eq 2
check "bad pattern message" grep -q "a(b.*offset 3" "$T/bad.err"
finish
