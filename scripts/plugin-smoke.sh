#!/usr/bin/env bash
# Checks the `new-kernel` plugin end to end without touching this working tree:
#
# 1. copies the package (not .git, not .build) to a temporary staging directory and runs the
#    plugin there: bad and taken names must be refused with nothing written, then a kernel is
#    scaffolded;
# 2. syncs the staging copy into a build copy, file by file, rewriting only the files whose
#    contents differ;
# 3. runs only the generated tests there (`swift test --filter <Name>Tests`); they must pass
#    unchanged.
#
# Why a build copy and not a copy of .build: SwiftPM's build database and Clang's module cache
# hold absolute paths, so a .build copied to another directory rebuilds everything (or fails
# on the module cache). The build copy instead lives at a fixed path, .build/plugin-smoke/package,
# and step 2 leaves unchanged files untouched, so after the first run only what changed is
# rebuilt. `--fresh` builds in a new temporary directory instead (a clean, full build).
#
#   scripts/plugin-smoke.sh [--fresh] [TypeName]      (default name: SmokeDampedKernel)
#
# Exits non-zero, with the reason on standard error, on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-deps.sh

fresh=0
name=SmokeDampedKernel
for arg in "$@"; do
  case "$arg" in
  --fresh) fresh=1 ;;
  -h | --help)
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  -*)
    echo "plugin-smoke: unknown option $arg" >&2
    exit 2
    ;;
  *) name=$arg ;;
  esac
done

root=$PWD
start=$SECONDS
fail() {
  echo "plugin-smoke: FAILED: $*" >&2
  exit 1
}
elapsed() { echo "$((SECONDS - start)) s"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/longconv-plugin-smoke.XXXXXX")
# SwiftPM also leaves lock files named after each package path in the temporary directory.
locks=$(printf %s "$tmp" | tr / _)
trap 'rm -rf "$tmp"; rm -f "${TMPDIR:-/tmp}/${locks}"_*.lock /tmp/"${locks}"_*.lock' EXIT
stage=$tmp/stage
mkdir -p "$stage"
tar --exclude=./.git --exclude=./.build -cf - . | tar -xf - -C "$stage"

# 1. The plugin, in the staging copy.
cd "$stage"
new_kernel() { swift package --allow-writing-to-package-directory new-kernel "$@"; }
fingerprint() { find . -path ./.build -prune -o -type f -print0 | sort -z | xargs -0 cksum | cksum; }
new_kernel --name Probe --dry-run >/dev/null 2>&1 || true # compiles the plugin once
before=$(fingerprint)
for bad in 1Bad my-kernel lowercase Kernel.Name self Tensor ExplicitKernel Explicit GeometricTestKernel; do
  if new_kernel --name "$bad" >/dev/null 2>"$tmp/refusal.txt"; then
    fail "new-kernel accepted the name '$bad'"
  fi
  grep -q "new-kernel: " "$tmp/refusal.txt" || fail "no clear error for '$bad': $(cat "$tmp/refusal.txt")"
done
[[ "$(fingerprint)" == "$before" ]] || fail "a refused name wrote files"
echo "plugin-smoke: bad and taken names refused, nothing written ($(elapsed))"

new_kernel --name "$name"
for file in "Sources/LongConv/Kernels/$name.swift" "Tests/LongConvTests/${name}Tests.swift"; do
  [[ -f "$file" ]] || fail "$file was not written"
done
grep -q "try Registry.add(kernel: $name.self)" Sources/LongConv/Config/BuiltinComponents.swift ||
  fail "$name is not registered in BuiltinComponents.swift"
grep -q "(\`$name\`)" docs/CONFIG.md || fail "$name has no section in docs/CONFIG.md"
if new_kernel --name "$name" >/dev/null 2>&1; then fail "new-kernel accepted '$name' twice"; fi

# 2. Sync into the build copy: only files whose contents differ are written.
if ((fresh)); then
  build=$tmp/build
else
  build=$root/.build/plugin-smoke/package
fi
mkdir -p "$build"
list() { (cd "$1" && find . -path ./.build -prune -o -type f -print | sort); }
list "$stage" >"$tmp/stage.list"
list "$build" >"$tmp/build.list"
comm -13 "$tmp/stage.list" "$tmp/build.list" | (cd "$build" && xargs -r -d '\n' rm -f)
while IFS= read -r file; do
  if ! cmp -s "$stage/$file" "$build/$file"; then
    mkdir -p "$build/$(dirname "$file")"
    cp -p "$stage/$file" "$build/$file"
  fi
done <"$tmp/stage.list"

# 3. Only the generated tests, unchanged; they must run (a filter that matches nothing passes).
cd "$build"
log=$tmp/test.log
echo "plugin-smoke: swift test --filter ${name}Tests in $build ($(elapsed))"
status=0
# Build the test bundle alone (not the executables and examples), then run the filter.
swift build --product LongConvKitPackageTests >"$log" 2>&1 || status=$?
((status != 0)) || swift test --skip-build --filter "${name}Tests" >>"$log" 2>&1 || status=$?
grep -E "error:|✘|Test run with" "$log" || true
if ((status != 0)); then
  tail -30 "$log" >&2
  fail "building or testing exited with status $status (errors above)"
fi
grep -q "✘" "$log" && fail "the generated tests failed"
grep -Eq "Test run with [1-9][0-9]* tests? .*passed" "$log" || fail "the generated tests did not run"
echo "plugin-smoke: OK: $name scaffolded, registered, documented, and its tests pass ($(elapsed))"
