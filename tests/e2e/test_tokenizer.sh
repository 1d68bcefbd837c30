# test_tokenizer.sh - token ids against the tools the field uses, on real
# corpora: GPT-2 against tiktoken and HF tokenizers; tokenizers trained by
# winnow (GPT-2 and cl100k patterns) against HF tokenizers loading winnow's
# tokenizer.json. The CLI's encode/decode round trip. Needs ../shared for the
# corpora and the GPT-2 files, and the PyPI packages tokenizers and tiktoken
# (.ci/run installs them); prints SKIP without them.
. "$(dirname "$0")/lib.sh"

GPT2=$SHARED/tokenizers/gpt2
CC=$SHARED/corpora/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz
DEMO=$SHARED/corpora/web/demo-dataset-deduplication.jsonl
SHAKE=$SHARED/corpora/text/tinyshakespeare/input.txt

# The CLI: encode | decode gives the input back, --lines keeps lines.
printf 'Hello world\n\tcaf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac  12345!\n\xff\xfe raw bytes\n' >"$T/mixed.txt"
check "sample tokenizer: encode | decode round trip" bash -c \
    "'$WINNOW' tokenizer encode --tokenizer samples/tokenizer.json '$T/mixed.txt' | '$WINNOW' tokenizer decode --tokenizer samples/tokenizer.json | cmp -s - '$T/mixed.txt'"
check "--lines gives one line per input line" [ "$("$WINNOW" tokenizer encode --tokenizer samples/tokenizer.json --lines "$T/mixed.txt" | wc -l)" = 3 ]
"$WINNOW" tokenizer encode --tokenizer "$T/nothing.json" "$T/mixed.txt" 2>"$T/err"
check "missing tokenizer: exit 1 and a message" bash -c "[ $? = 1 ] && grep -q 'nothing.json' '$T/err'"

if [ ! -d "$GPT2" ] || [ ! -r "$CC" ]; then echo "SKIP: ../shared absent: reference comparisons not run"; finish; fi
python3 -c 'import tokenizers, tiktoken' 2>/dev/null || { echo "SKIP: python packages tokenizers/tiktoken not installed: reference comparisons not run"; finish; }

cat >"$T/gpt2.yaml" <<YAML
name: tok
workdir: $T/gpt2
inputs:
  - {path: $CC}
  - {path: $DEMO}
  - {path: samples/web/*.jsonl.zst}
  - {path: $SHAKE, format: text}
stages:
  - tokenize: {tokenizer: $GPT2, eot: none, emit: ids}
YAML
check "gpt2 tokenize run" "$WINNOW" run "$T/gpt2.yaml" --no-progress 2>/dev/null
zstd -dc "$T"/gpt2/documents/*.zst >"$T/gpt2.jsonl"
check "gpt2: identical to tiktoken and HF tokenizers" python3 tests/e2e/compare_tokenizers.py "$T/gpt2.jsonl" gpt2 "$GPT2"
check "gpt2: tinyshakespeare is 338,025 tokens" python3 -c "
import json,sys
for l in open('$T/gpt2.jsonl'):
    r=json.loads(l)
    if r.get('id','').endswith('input.txt'): sys.exit(0 if len(r['winnow']['tokens'])==338025 else 1)
sys.exit(1)"

# GPT-2 converted to tokenizer.json loads in HF and encodes the same
check "convert gpt2 to tokenizer.json" "$WINNOW" tokenizer convert --tokenizer "$GPT2" --out "$T/gpt2.json"
check "gpt2 tokenizer.json written by winnow: HF agrees" python3 tests/e2e/compare_tokenizers.py "$T/gpt2.jsonl" hf "$T/gpt2.json"

# Tokenizers trained by winnow, both patterns, read back by HF.
zstd -dc samples/web/*.jsonl.zst >"$T/train.jsonl"
for pat in gpt2 cl100k; do
    check "train $pat" "$WINNOW" tokenizer train --vocab-size 3000 --pattern "$pat" --special '<|endoftext|>' \
        --out "$T/$pat-trained.json" "$T/train.jsonl" "$CC" "$SHAKE"
    sed "s|$GPT2|$T/$pat-trained.json|; s|workdir: $T/gpt2|workdir: $T/$pat-run|" "$T/gpt2.yaml" >"$T/run-$pat.yaml"
    check "tokenize with the trained $pat tokenizer" "$WINNOW" run "$T/run-$pat.yaml" --no-progress 2>/dev/null
    zstd -dc "$T/$pat-run"/documents/*.zst >"$T/$pat-out.jsonl"
    check "trained $pat: HF tokenizers loads it and agrees" python3 tests/e2e/compare_tokenizers.py "$T/$pat-out.jsonl" hf "$T/$pat-trained.json"
done
finish
