#!/usr/bin/env bash
# train_sample_tokenizer.sh - (re)makes samples/tokenizer.json: a small
# byte-level BPE vocabulary (GPT-2 pattern, 4096 tokens with <|endoftext|>)
# trained by winnow on the shipped samples, so the quickstart's tokenize stage
# needs nothing outside the repository. Deterministic: the same samples give
# the same file.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x ./winnow ] || make
./winnow tokenizer train --vocab-size 4096 --special '<|endoftext|>' --out samples/tokenizer.json \
    samples/web/*.jsonl.zst samples/target/*.jsonl.zst samples/text/*.txt
