#!/usr/bin/env bash
# Mutation check of the test suite (issue #16): applies each mutation of scripts/mutations.txt to
# the sources, one at a time, builds the tests (`swift build --build-tests`), runs the tests its
# `filter` lines select (`swift test --skip-build --filter ...`) with a timeout, and reports how
# many mutants the suite kills (tests fail), how many survive, time out or do not compile.
# Every mutated file is restored from a kept copy, also on Ctrl-C or SIGTERM, and checked against
# git afterwards; a run killed outright (SIGKILL) is repaired by the next one.
#
#   scripts/mutation-check.sh                  # the whole list (about an hour on 2 cores)
#   scripts/mutation-check.sh --list           # ids, places, filters, descriptions
#   scripts/mutation-check.sh --check          # only check that each original text is found once
#   scripts/mutation-check.sh --only ID[,ID]   # a subset (after adding a test for a survivor)
#   scripts/mutation-check.sh --report Benchmarks/some.md --test-timeout 300 --no-baseline
#
# Works from any directory; needs python3 and a tree that builds (run scripts/test.sh once first).
# It edits the work tree while it runs: do not build or edit in the same tree meanwhile. Slow by
# design, so it is never run in CI (it refuses to when CI is set). Results: see
# Benchmarks/MUTATIONS.md; logs per mutation in .build/mutation-check/logs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${CI:-}" && " $* " != *" --list "* && " $* " != *" --check "* ]]; then
  echo "mutation-check: not run in CI (it rebuilds the tests once per mutation); run it by hand" >&2
  exit 0
fi
command -v python3 >/dev/null || { echo "mutation-check: needs python3" >&2; exit 2; }
if ! command -v swift >/dev/null && [[ -x /opt/swift/usr/bin/swift ]]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
exec python3 "$root/scripts/mutation_check.py" --root "$root" "$@"
