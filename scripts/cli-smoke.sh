#!/usr/bin/env bash
# Exercises the command line end to end on a committed PyTorch fixture: import-torch, eval
# (its loss must match what PyTorch computed), inspect (its files), and the exit statuses of user and usage errors
# (a failed import must not create its output). Run by .ci/run after the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-deps.sh
swift build --product longconv
cli=.build/debug/longconv
fixture=Tests/Fixtures/tnn-d16-l2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$cli" import-torch --state-dict "$fixture/model.safetensors" --config "$fixture/config.json" --out "$work/ckpt"
python3 -c "import json,sys; sys.stdout.buffer.write(bytes(json.load(open('$fixture/expected.json'))['tokens']))" > "$work/tokens.bin"
"$cli" eval --checkpoint "$work/ckpt" --text "$work/tokens.bin" --json > "$work/eval.json"
python3 - "$work/eval.json" "$fixture/expected.json" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))["loss_nats"]
want = json.load(open(sys.argv[2]))["mean_cross_entropy_nats"]
assert abs(got - want) <= 1e-4 * want, f"eval loss {got} != PyTorch's {want}"
print(f"cli-smoke: eval loss {got:.6f} matches PyTorch's {want:.6f}")
PY

"$cli" inspect --checkpoint "$work/ckpt" --out "$work/inspect" > "$work/inspect.txt"
for file in layer-0-toeplitz.svg layer-0-impulse.svg layer-1-toeplitz.svg layer-1-impulse.svg index.html; do
  [[ -s "$work/inspect/$file" ]] || { echo "cli-smoke: inspect did not write $file" >&2; exit 1; }
done
[[ $(wc -l < "$work/inspect.txt") == 5 ]] || { echo "cli-smoke: inspect printed:" >&2; cat "$work/inspect.txt" >&2; exit 1; }
echo "cli-smoke: inspect wrote $(ls "$work/inspect" | wc -l) files"

expect_status() {  # expect_status STATUS command...
  local want=$1; shift
  set +e; "$@" > /dev/null 2> "$work/stderr"; local got=$?; set -e
  [[ $got == "$want" ]] || { echo "cli-smoke: '$*' exited $got, expected $want" >&2; cat "$work/stderr" >&2; exit 1; }
}
expect_status 1 "$cli" import-torch --state-dict "$work/missing.safetensors" --config "$fixture/config.json" --out "$work/never"
[[ ! -e "$work/never" ]] || { echo "cli-smoke: a failed import created its output" >&2; exit 1; }
expect_status 2 "$cli" eval --checkpoint "$work/ckpt"
expect_status 2 "$cli" inspect --checkpoint "$work/ckpt" --out "$work/inspect" --length 0
expect_status 1 "$cli" inspect --checkpoint "$work/missing" --out "$work/inspect"
expect_status 1 "$cli" inspect --checkpoint "$work/ckpt" --out "$work/tokens.bin"
expect_status 2 "$cli" frobnicate
expect_status 0 "$cli" eval --help
echo "cli-smoke: ok"
