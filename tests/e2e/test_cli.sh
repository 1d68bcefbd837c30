# test_cli.sh - the command line: help, version, stages, validate and their
# errors (file:line and key, exit 2).
. "$(dirname "$0")/lib.sh"

check "--help exits 0" "$WINNOW" --help >"$T/help"
check "--help lists run" contains "$T/help" "run MANIFEST"
check "--version" bash -c "'$WINNOW' --version | grep -q '^winnow [0-9]'"
for c in run validate stages report; do
    check "$c --help" bash -c "'$WINNOW' $c --help | grep -q usage"
done
"$WINNOW" stages >"$T/stages"
for s in normalize length_filter exact_dedup sample; do check "stages lists $s" contains "$T/stages" "^$s "; done
"$WINNOW" stages length_filter >"$T/lf"
check "stage help shows defaults" contains "$T/lf" "min_words.*default 0"
"$WINNOW" nosuch 2>/dev/null; check "unknown command exits 2" [ $? -eq 2 ]

printf '{"id":"a","text":"hello world"}\n' >"$T/in.jsonl"
cat >"$T/good.yaml" <<YAML
name: good
workdir: $T/run
inputs:
  - path: $T/in.jsonl
stages:
  - length_filter: {min_words: 1}
YAML
check "validate ok" bash -c "'$WINNOW' validate '$T/good.yaml' | grep -q ': ok: 1 stage, 1 input file'"

bad() { # name, expected exit, pattern, yaml
    printf '%s\n' "$4" >"$T/$1.yaml"
    "$WINNOW" validate "$T/$1.yaml" 2>"$T/$1.err"
    local rc=$?
    check "$1: exit $2 (got $rc)" [ "$rc" -eq "$2" ]
    check "$1: message matches '$3'" contains "$T/$1.err" "$3"
}
bad unknown_key 2 "unknown_key.yaml:2: (top level): unknown key 'colour'" "name: x
colour: red
inputs: [{path: $T/in.jsonl}]"
bad unknown_stage 2 "unknown_stage.yaml:4: stages\[0\]: unknown stage 'dedupe'" "name: x
inputs: [{path: $T/in.jsonl}]
stages:
  - dedupe: {}"
bad unknown_param 2 "unknown_param.yaml:4: stages\[0\].length_filter: unknown parameter 'min_word'" "name: x
inputs: [{path: $T/in.jsonl}]
stages:
  - length_filter: {min_word: 3}"
bad bad_type 2 "bad_type.yaml:5: stages\[0\].length_filter.min_words: expected an integer, got 'many'" "name: x
inputs: [{path: $T/in.jsonl}]
stages:
  - length_filter:
      min_words: many"
bad range 2 "range.yaml:4: stages\[0\].sample.rate: out of range" "name: x
inputs: [{path: $T/in.jsonl}]
stages:
  - sample: {rate: 1.5}"
bad enum 2 "enum.yaml:2: on_error: expected one of fail|skip, got 'ignore'" "name: x
on_error: ignore
inputs: [{path: $T/in.jsonl}]"
bad nomatch 2 "inputs\[0\].path: no file matches" "name: x
inputs: [{path: $T/nothing-*.jsonl}]"
bad yaml 2 "yaml.yaml:3:.*YAML error" "name: x
inputs: [{path: a}
stages: ["
bad missing_name 2 "name: required key is missing" "inputs: [{path: $T/in.jsonl}]"
finish
