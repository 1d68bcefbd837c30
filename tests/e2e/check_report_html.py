#!/usr/bin/env python3
"""check_report_html.py - checks a page written by `winnow report --html`.

  check_report_html.py page RUN_DIR [--experiment] [--pair PATH] [--escaped ID]

Checks, with Python's html.parser (not with winnow's own code):
- the page parses and its major tags are balanced (every element that has an
  end tag is closed, in order);
- it is self-contained: no <script>, <link>, <img>, <iframe>, <object>,
  <embed>, no src= attribute, no href= other than '#anchor', no url(...) and
  no http:// or https:// anywhere in the page;
- the funnel numbers of every stage report (docs_in, docs_out, tokens_out,
  each drop count) appear in the text, formatted as the page formats counts
  (thousands separated by commas);
- every stage has its panel (id="step-NN-name") and each step with a
  non-empty length histogram has a "Document lengths" chart;
- --pair PATH: a histogram pair titled PATH with "selected" and "rejected"
  legends is drawn as an SVG;
- --experiment: the experiment section shows each arm from
  RUN_DIR/experiment.json, its final mean to 4 decimals, and one
  curve (an SVG path) per seed;
- --escaped ID: the document id ID appears only HTML-escaped: its escaped
  form is in the page source, the parsed text holds it verbatim, and no tag
  came out of it.
Exits 1 with one line per failed check.
"""
import glob
import html
import json
import os
import re
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
FORBIDDEN = {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source", "base"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.attrs = [], [], {}, []
        self.text, self.ids, self.svg_paths, self.h4 = [], set(), [], []
        self._h4 = None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        d = dict(attrs)
        if "id" in d:
            self.ids.add(d["id"])
        if tag == "path":
            self.svg_paths.append(d)
        if tag == "h4":
            self._h4 = []
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        if tag == "path":
            self.svg_paths.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            top = self.stack[-1] if self.stack else None
            self.errors.append(f"</{tag}> at line {self.getpos()[0]} closes {top}")
            return
        self.stack.pop()
        if tag == "h4" and self._h4 is not None:
            self.h4.append("".join(self._h4).strip())
            self._h4 = None

    def handle_data(self, data):
        self.text.append(data)
        if self._h4 is not None:
            self._h4.append(data)


def count(n):
    n = float(n)
    return f"{int(n):,}" if n == int(n) else f"{n:.4g}"


def main():
    args = sys.argv[1:]
    page_path, run_dir = args[0], args[1]
    opts = {"--experiment": False, "--pair": None, "--escaped": None}
    i = 2
    while i < len(args):
        if args[i] == "--experiment":
            opts["--experiment"] = True
            i += 1
        else:
            opts[args[i]] = args[i + 1]
            i += 2
    src = open(page_path, encoding="utf-8").read()
    p = Page()
    p.feed(src)
    p.close()
    text = " ".join(p.text)
    fails = []

    def check(what, ok):
        if not ok:
            fails.append(what)

    # well-formed enough
    check(f"unbalanced tags: {p.errors[:5]}", not p.errors)
    check(f"unclosed tags: {p.stack[-5:]}", not p.stack)
    for t in ("html", "head", "body", "main", "section", "table", "svg"):
        check(f"no <{t}>", p.tags.get(t, 0) > 0)
    check("doctype", src.lstrip().lower().startswith("<!doctype html>"))

    # self-contained
    for t in FORBIDDEN:
        check(f"<{t}> present (the page must be self-contained)", t not in p.tags)
    for tag, k, v in p.attrs:
        check(f"<{tag} {k}={v!r}>: external reference", k != "src" and (k != "href" or v.startswith("#")))
    check("http:// or https:// in the page", not re.search(r"https?://", src, re.I))
    check("url(...) in the page", not re.search(r"url\s*\(", src, re.I))

    # the funnel numbers of every stage
    reports = sorted(glob.glob(os.path.join(run_dir, "stages", "*", "report.json")))
    check("no stage reports", reports)
    for path in reports:
        r = json.load(open(path))
        step = os.path.basename(os.path.dirname(path))
        check(f"panel for {step}", f"step-{step}" in p.ids)
        for key in ("docs_in", "docs_out", "tokens_out"):
            if key in r:
                check(f"{step} {key} = {count(r[key])} not in the page", count(r[key]) in text)
        for reason, n in r.get("dropped", {}).items():
            check(f"{step} drop reason {reason} not in the page", reason in text)
            check(f"{step} dropped {reason} = {n} not in the page", count(n) in text)
    lengths = sum(1 for h in p.h4 if h == "Document lengths")
    want = sum(1 for path in reports if sum(json.load(open(path)).get("length_histogram", {}).get("counts", [])))
    check(f"{lengths} document-length charts, expected {want}", lengths == want)

    if opts["--pair"]:
        title = opts["--pair"]
        check(f"histogram pair {title} has no heading", any(h.startswith(title + " ") for h in p.h4))
        check("pair legend", "selected" in text and "rejected" in text)

    if opts["--experiment"]:
        e = json.load(open(os.path.join(run_dir, "experiment.json")))
        check("experiment section", "experiment" in p.ids)
        check("experiment target", e["target"] in text)
        seeds = 0
        for arm in e["arms"]:
            check(f"arm {arm['name']}", arm["name"] in text)
            check(f"arm {arm['name']} mean {arm['final_mean']:.4f}", f"{arm['final_mean']:.4f}" in text)
            seeds += len(arm["seeds"])
        curves = [d for d in p.svg_paths if d.get("fill") == "none" and d.get("stroke-width") == "1.8"]
        check(f"{len(curves)} loss curves, expected {seeds}", len(curves) == seeds)

    if opts["--escaped"]:
        bad = opts["--escaped"]
        check(f"escaped id {html.escape(bad)!r} not in the source", html.escape(bad) in src)
        check(f"raw id {bad!r} in the source", bad not in src)
        check("the id as text", bad in text)

    for f in fails:
        print("check_report_html:", f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
