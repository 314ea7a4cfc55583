#!/usr/bin/env bash
# Runs the custom-kernel example briefly (debug build, which reuses the modules the tests
# built): a kernel defined outside the library is registered, trained, and converted to
# recurrent form. `--check` makes the example exit non-zero unless the validation loss fell,
# the conversions are within their tolerances and the exact recurrent greedy bytes equal the
# FFT recomputation; this script also checks that the conversion lines were printed.
# Run by .ci/run after cli-smoke.sh. Text: tinyshakespeare if found, else generated sentences.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-deps.sh
swift build --product custom-kernel
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$SECONDS
.build/debug/custom-kernel --steps 30 --eval-bytes 8192 --generate 60 --check | tee "$out"
for mode in exact compact native; do
  grep -q "^conversion $mode at length" "$out" \
    || { echo "example-smoke: no '$mode' conversion line" >&2; exit 1; }
done
[[ $(grep -c "^  blocks\.[0-9]*\.mixer\.kernel: " "$out") == 6 ]] \
  || { echo "example-smoke: expected 6 per-layer conversion reports" >&2; exit 1; }
grep -q "^exact recurrent .*identical to the FFT recomputation" "$out" \
  || { echo "example-smoke: exact recurrent generation does not match the FFT" >&2; exit 1; }
echo "example-smoke: custom-kernel ok in $((SECONDS - start)) s"
