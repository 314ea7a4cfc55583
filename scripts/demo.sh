#!/usr/bin/env bash
# Builds the `longconv` tool in release mode and runs its demo; extra arguments go to
# `longconv demo`. Works from any directory. Installs missing system packages when root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-deps.sh
swift build -c release --product longconv
exec .build/release/longconv demo "$@"
