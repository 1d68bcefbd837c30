#!/usr/bin/env python3
"""check_trained_tokenizer.py - checks a tokenizer winnow wrote against HF
tokenizers: loads TOKENIZER_JSON with Tokenizer.from_file, encodes TEXT_FILE
(whole, as UTF-8) and compares the ids with IDS_FILE (winnow's ids, separated
by spaces or newlines). Prints a one-line summary (and the first mismatch);
exits 0 when the ids are identical, 1 when they differ, 2 on bad input.

    check_trained_tokenizer.py TOKENIZER_JSON TEXT_FILE IDS_FILE

HF always splits out special tokens, so the text should not contain them.
"""
import sys


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    tok_path, text_path, ids_path = sys.argv[1:]
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("check_trained_tokenizer: python package 'tokenizers' not installed", file=sys.stderr)
        return 2
    tok = Tokenizer.from_file(tok_path)
    with open(text_path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        print(f"check_trained_tokenizer: {text_path}: not UTF-8 at byte {e.start}", file=sys.stderr)
        return 2
    with open(ids_path) as f:
        try:
            ours = [int(x) for x in f.read().split()]
        except ValueError as e:
            print(f"check_trained_tokenizer: {ids_path}: {e}", file=sys.stderr)
            return 2
    ref = tok.encode(text, add_special_tokens=False).ids

    name = f"{tok_path} (vocab {tok.get_vocab_size(with_added_tokens=True)}) on {text_path} ({len(raw)} bytes)"
    if ours == ref:
        print(f"ok: {name}: {len(ref)} ids identical to HF tokenizers")
        return 0
    i = next((k for k, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
    def show(ids):
        return " ".join(f"{x}:{tok.id_to_token(x)!r}" for x in ids[max(0, i - 3):i + 4])
    print(f"MISMATCH: {name}: winnow {len(ours)} ids, HF {len(ref)} ids; first difference at id {i}")
    print(f"  winnow: {show(ours)}")
    print(f"  HF:     {show(ref)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
