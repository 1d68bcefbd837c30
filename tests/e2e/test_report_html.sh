#!/usr/bin/env bash
# test_report_html.sh - `winnow report`: the HTML page (--html), the merged
# JSON (--json), the sampled rejects (--rejects) and the terminal funnel.
#
# The quickstart runs into a temporary directory; a histogram pair in the
# `select` convention ({"selected": {edges, counts}, "rejected": ...}) is
# added to one stage report and an experiment report (the schema of
# RUN_DIR/experiment.json, a fixture written below) beside them, so
# the page draws every kind of chart. check_report_html.py checks the page
# with Python's html.parser: balanced tags, no network reference, every
# stage's funnel numbers, the pair, the experiment. A second tiny run drops a
# document whose id is `<script>alert(1)</script>`: the page must show it
# escaped. With `chromium` installed the page is also rendered headless (a
# screenshot, and the DOM must reach the footer); without it: SKIP.
. "$(dirname "$0")/lib.sh"

sed "s|^name: quickstart|name: quickstart\nworkdir: $T/run|" pipelines/quickstart.yaml >"$T/q.yaml"
check "quickstart runs" "$WINNOW" run "$T/q.yaml" --no-progress 2>/dev/null
R=$T/run

# A histogram pair (the select stage's convention) and a plain histogram in
# exact_dedup's report, and an experiment beside the stages.
python3 - "$R/stages/03-exact_dedup/report.json" <<'PY'
import json, sys
p = sys.argv[1]
r = json.load(open(p))
edges = [i / 10 for i in range(11)]
r["histogram"] = {"selected": {"edges": edges, "counts": [0, 0, 1, 3, 8, 20, 41, 60, 30, 9]},
                  "rejected": {"edges": edges, "counts": [12, 40, 66, 50, 31, 12, 4, 1, 0, 0]}}
r["clusters"] = {"size_histogram": {"edges": [1, 2, 4, 8, 16, 32], "counts": [500, 40, 12, 3, 1],
                                    "unit": "documents per cluster"}}
r["scores"] = {"quality": {"n": 616, "mean": 0.41, "min": 0.01, "max": 0.99}}
json.dump(r, open(p, "w"), indent=2)
PY

cat >"$R/experiment.json" <<'JSON'
{"target": "wiki-like",
 "arms": [
  {"name": "selected", "tokens": 1000000, "final_mean": 3.4125, "final_std": 0.0212, "tokens_to_reach_random": 620000,
   "seeds": [
    {"seed": 1, "curve": [[0, 0, 8.3], [100, 200000, 5.1], [200, 400000, 4.2], [300, 600000, 3.7], [400, 800000, 3.45], [500, 1000000, 3.39]], "final_loss": 3.39},
    {"seed": 2, "curve": [[0, 0, 8.3], [100, 200000, 5.2], [200, 400000, 4.3], [300, 600000, 3.8], [400, 800000, 3.48], [500, 1000000, 3.435]], "final_loss": 3.435}]},
  {"name": "random", "tokens": 1000000, "final_mean": 3.8050, "final_std": 0.0150, "tokens_to_reach_random": null,
   "seeds": [
    {"seed": 1, "curve": [[0, 0, 8.3], [100, 200000, 5.6], [200, 400000, 4.7], [300, 600000, 4.2], [400, 800000, 3.95], [500, 1000000, 3.79]], "final_loss": 3.79},
    {"seed": 2, "curve": [[0, 0, 8.3], [100, 200000, 5.7], [200, 400000, 4.8], [300, 600000, 4.25], [400, 800000, 3.98], [500, 1000000, 3.82]], "final_loss": 3.82}]}
 ]}
JSON

"$WINNOW" report "$R" --html "$T/report.html" >"$T/funnel.txt"
check "report --html exits 0" [ $? -eq 0 ]
check "the terminal funnel lists every stage" bash -c "grep -cE '^  0[0-6]-[a-z_]+ +[0-9]+ +[0-9]+ ' '$T/funnel.txt' | grep -qx 7"
check "the terminal funnel has tokens" contains "$T/funnel.txt" "tokens out"
check "the terminal funnel names the drop reasons" contains "$T/funnel.txt" "too_few_words"
check "the HTML page is written" [ -s "$T/report.html" ]
check "the HTML page passes check_report_html.py" \
    python3 tests/e2e/check_report_html.py "$T/report.html" "$R" --experiment --pair histogram
check "a log-binned histogram is drawn by its key path" contains "$T/report.html" "<h4>clusters.size_histogram</h4>"
check "score summaries are tabled" contains "$T/report.html" "<code>scores.quality</code>"

# The default page goes to RUN_DIR/report.html; --no-html writes none.
rm -f "$R/report.html"
check "report writes RUN_DIR/report.html by default" bash -c "'$WINNOW' report '$R' >/dev/null && [ -s '$R/report.html' ]"
rm -f "$R/report.html"
check "--no-html writes no page" bash -c "'$WINNOW' report '$R' --no-html >/dev/null && [ ! -e '$R/report.html' ]"

# --json: one JSON document with run.json and every stage report in order.
"$WINNOW" report "$R" --json >"$T/merged.json"
check "--json exits 0" [ $? -eq 0 ]
check "--json parses and holds run.json and the stages in order" python3 - "$T/merged.json" "$R" <<'PY'
import glob, json, os, sys
m = json.load(open(sys.argv[1]))
dirs = sorted(glob.glob(os.path.join(sys.argv[2], "stages", "*", "report.json")))
assert m["run"]["status"] == "complete", m["run"]
assert len(m["stages"]) == len(dirs), (len(m["stages"]), len(dirs))
for got, path in zip(m["stages"], dirs):
    assert got == json.load(open(path)), path
assert m["experiment"]["target"] == "wiki-like"
PY

# A document whose id is markup, dropped by length_filter.
printf '%s\n' '{"id":"<script>alert(1)</script>","text":"too short"}' \
    '{"id":"ok-1","text":"one two three four five six seven eight"}' >"$T/evil.jsonl"
cat >"$T/evil.yaml" <<YAML
name: evil
workdir: $T/evil
inputs:
  - path: $T/evil.jsonl
stages:
  - length_filter: {min_words: 5}
YAML
check "the tiny run runs" "$WINNOW" run "$T/evil.yaml" --no-progress 2>/dev/null
check "report --html on the tiny run" "$WINNOW" report "$T/evil" --html "$T/evil.html" >/dev/null
check "the markup id is escaped in the page" \
    python3 tests/e2e/check_report_html.py "$T/evil.html" "$T/evil" --escaped '<script>alert(1)</script>'
"$WINNOW" report "$T/evil" --rejects length_filter >"$T/rejects.txt"
check "--rejects NAME exits 0" [ $? -eq 0 ]
check "--rejects lists the dropped id" grep -qxF '  <script>alert(1)</script>' "$T/rejects.txt"
check "--rejects names the reason" contains "$T/rejects.txt" "^too_few_words: 1 dropped"
check "--rejects 1 (by number) lists it too" bash -c "'$WINNOW' report '$T/evil' --rejects 1 | grep -qF 'alert(1)'"
"$WINNOW" report "$T/evil" --rejects nosuch 2>"$T/nosuch.err" >/dev/null
check "--rejects of an unknown stage exits 2" [ $? -eq 2 ]
check "... and lists the stages" contains "$T/nosuch.err" "01-length_filter"
"$WINNOW" report "$T/evil" --json --rejects 1 >/dev/null 2>&1
check "--json with --rejects is a usage error" [ $? -eq 2 ]
"$WINNOW" report "$T/nothing" 2>/dev/null
check "a directory without reports exits 1" [ $? -eq 1 ]

# Render it when a headless Chromium is here.
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: chromium not installed: HTML not rendered"
else
    chrome() { timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$T/chrome" --window-size=1280,2000 "$@" "file://$T/report.html"; }
    chrome --screenshot="$T/shot.png" >"$T/chrome.log" 2>&1
    size=$(stat -c %s "$T/shot.png" 2>/dev/null || echo 0)
    check "chromium screenshot is non-trivial ($size bytes)" [ "$size" -gt 10240 ]
    chrome --dump-dom >"$T/dom.html" 2>"$T/dom.log"
    check "chromium reaches the footer" contains "$T/dom.html" 'id="winnow-report-end"'
    check "chromium logs no script error" bash -c "! grep -q 'Uncaught' '$T/chrome.log' '$T/dom.log'"
    [ -n "${KEEP_T:-}" ] && echo "screenshot: $T/shot.png"
fi
finish
