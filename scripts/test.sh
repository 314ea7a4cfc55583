#!/usr/bin/env bash
# Runs the package's tests (debug build); extra arguments go to `swift test`, e.g.
# `scripts/test.sh --filter FFT`. Works from any directory; exits with swift test's status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-deps.sh
exec swift test "$@"
