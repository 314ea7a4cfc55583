#!/usr/bin/env bash
# Builds the DocC documentation of the library modules (LongConvTensors, LongConvLayers,
# LongConvIO, LongConv, LongConvInterop, LongConvInspection, LongConvTraining, LongConvRecurrence) with the articles of Sources/LongConvKit/LongConvKit.docc, using
# the toolchain's own `docc` (next to `swift`; no package plugin needed):
#
# 1. `swift package dump-symbol-graph` builds (debug, reusing .build) and extracts the public
#    symbols of every module;
# 2. `docc convert` renders the catalog with the library modules' symbol graphs into
#    .build/docs/LongConvKit.doccarchive, laid out for static hosting.
#
#   scripts/docs.sh [--output DIR] [--strict]
#
# Fails on any error and on any symbol link that does not resolve; `--strict` also fails on
# every other warning. To browse: python3 -m http.server -d .build/docs/LongConvKit.doccarchive
# then open http://localhost:8000/documentation/longconvkit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-deps.sh

output=.build/docs/LongConvKit.doccarchive
strict=0
while (($#)); do
  case "$1" in
  --output)
    output=${2:?--output needs a directory}
    shift
    ;;
  --strict) strict=1 ;;
  -h | --help)
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "docs.sh: unknown argument $1" >&2
    exit 2
    ;;
  esac
  shift
done

docc=${DOCC:-$(dirname "$(readlink -f "$(command -v swift)")")/docc}
[[ -x "$docc" ]] || {
  echo "docs.sh: no docc at $docc (set DOCC to the docc binary)" >&2
  exit 1
}
modules=(LongConvTensors LongConvLayers LongConvIO LongConv LongConvInterop LongConvInspection LongConvTraining LongConvRecurrence)
start=$SECONDS

# 1. Symbol graphs.
dump=$(swift package dump-symbol-graph --skip-synthesized-members 2>&1) || {
  echo "$dump" >&2
  exit 1
}
source_dir=$(sed -n 's/^Files written to //p' <<<"$dump" | tail -1)
[[ -d "$source_dir" ]] || {
  echo "docs.sh: dump-symbol-graph did not say where it wrote:" >&2
  echo "$dump" >&2
  exit 1
}
graphs=.build/docs/symbol-graphs
rm -rf "$graphs"
mkdir -p "$graphs"
for module in "${modules[@]}"; do
  cp "$source_dir/$module.symbols.json" "$graphs/"
  # Extensions of other modules' types: Module@Other.symbols.json.
  for extension in "$source_dir/$module@"*.symbols.json; do
    [[ -e "$extension" ]] && cp "$extension" "$graphs/"
  done
done

# 2. The archive.
rm -rf "$output"
mkdir -p "$(dirname "$output")"
log=.build/docs/docc.log
flags=()
((strict)) && flags+=(--warnings-as-errors)
status=0
"$docc" convert Sources/LongConvKit/LongConvKit.docc --additional-symbol-graph-dir "$graphs" \
  --output-path "$output" --fallback-display-name LongConvKit \
  --fallback-bundle-identifier org.longconvkit.LongConvKit --transform-for-static-hosting \
  ${flags[@]+"${flags[@]}"} >"$log" 2>&1 || status=$?
warnings=$(grep -c '^warning:' "$log" || true)
errors=$(grep -c '^error:' "$log" || true)
links=$(grep -E "^warning: .*(doesn't exist|unresolved|No symbol|not found)" "$log" || true)
if ((status != 0 || errors > 0)) || [[ -n "$links" ]]; then
  cat "$log" >&2
  echo "docs.sh: FAILED (status $status, $errors errors, $warnings warnings; log $log)" >&2
  exit 1
fi
((warnings > 0)) && grep -A2 '^warning:' "$log" >&2
echo "docs.sh: $output ($warnings warnings, $((SECONDS - start)) s)"
