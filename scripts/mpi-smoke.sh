#!/usr/bin/env bash
# Data-parallel training over MPI (Open MPI, two processes on this machine; loopback only):
# - 30 steps on 2 ranks equal 30 steps of one process with the same global batch and seed
#   (every step's loss within 1e-5 relative, the final weights within 1e-5), over shared
#   memory, again over TCP on the loopback interface, and with 4 ranks;
# - a checkpoint written by 2 ranks resumes in 1 process and the other way round, ending where
#   an uninterrupted run ends;
# - exactly one writer: metrics.jsonl holds each training step once;
# - a global batch the ranks cannot share is refused before any step (exit 2, nothing written);
# - a rank that fails ends the job (MPI_Abort) with a message naming the rank.
# Run by .ci/run after cli-smoke.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-deps.sh
swift build --product longconv
cli=$PWD/.build/debug/longconv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Shared memory between the two local ranks (no network interface is used).
mpi=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca oob_tcp_if_include lo -np 2)

python3 - "$work/tiny.json" <<'PY'
import json, sys
c = json.load(open("Configs/tnn_lm.json"))
c.update(dim=32, num_layers=2, max_length=64)
c["layers"]["channel_mixer"]["hidden_dim"] = 32
c["layers"]["mixer"]["kernel"]["rpe_width"] = 16
json.dump(c, open(sys.argv[1], "w"))
PY
# A constant schedule (after warmup) does not depend on --steps, so 15 steps then a resume to 30
# is the same run as 30 steps at once.
base=(train --config "$work/tiny.json" --text Examples/Data/tinyshakespeare.txt --length 64
  --seed 3 --threads 1 --schedule constant --warmup 5 --lr 3e-3 --validate-every 10 --checkpoint-every 5)
args=("${base[@]}" --batch 4)

compare() {  # compare A B WHAT: per-step losses and final weights of two runs
  python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
import numpy as np
def losses(run):
    steps = {}
    for line in open(run + "/metrics.jsonl"):
        j = json.loads(line)
        if "loss" in j:
            assert j["step"] not in steps, f"{run}: step {j['step']} logged twice"
            steps[j["step"]] = j["loss"]
    return steps
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype="<f4")
            for k, v in h.items() if k != "__metadata__"}
a, b, what = sys.argv[1:]
la, lb = losses(a), losses(b)
assert sorted(la) == list(range(1, 31)) and sorted(lb) == list(range(1, 31)), f"{what}: steps {sorted(la)} / {sorted(lb)}"
loss = max(abs(la[s] - lb[s]) / abs(la[s]) for s in la)
ta = tensors(a + "/checkpoint/model.safetensors")
tb = tensors(b + "/checkpoint/model.safetensors")
assert ta.keys() == tb.keys()
weight = max(float(np.max(np.abs(ta[k] - tb[k]) / np.maximum(1, np.abs(ta[k])))) for k in ta)
print(f"mpi-smoke: {what}: largest loss difference {loss:.2e} (relative), weights {weight:.2e}")
assert loss <= 1e-5, f"{what}: losses differ by {loss} (relative)"
assert weight <= 1e-5, f"{what}: final weights differ by {weight}"
PY
}

"$cli" "${args[@]}" --steps 30 --out "$work/one" > /dev/null
# Buckets of 1 KB: many sums in flight at once, whose two phases must start in the same order
# on both ranks whatever order they finish in.
"${mpi[@]}" "$cli" "${args[@]}" --steps 30 --bucket-mb 0.001 --out "$work/two" > "$work/two.log"
grep -q "data-parallel: 2 processes, 2 rows each" "$work/two.log" ||
  { echo "mpi-smoke: no data-parallel line" >&2; cat "$work/two.log" >&2; exit 1; }
[[ $(grep -c '"loss"' "$work/two/metrics.jsonl") == 30 ]] ||
  { echo "mpi-smoke: metrics.jsonl of 2 ranks does not hold 30 training lines" >&2; cat "$work/two/metrics.jsonl" >&2; exit 1; }
[[ $(grep -c "^done:" "$work/two.log") == 1 ]] || { echo "mpi-smoke: more than one rank reported" >&2; exit 1; }
compare "$work/one" "$work/two" "2 ranks vs 1 process"
python3 - "$work/two/metrics.jsonl" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
assert all(s["allreduce_exposed_ms"] <= s["allreduce_ms"] + 1e-3 for s in steps), "exposed time above the total"
PY

# The network path: Open MPI's TCP transport forced onto the loopback interface (no shared
# memory between the ranks), the same run.
tcp=(mpirun --allow-run-as-root --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo
  --mca oob_tcp_if_include lo -np 2)
"${tcp[@]}" "$cli" "${args[@]}" --steps 30 --out "$work/tcp" > /dev/null
compare "$work/one" "$work/tcp" "2 ranks over TCP (loopback) vs 1 process"
# Four ranks, one row each: every bucket is cut into four chunks of unequal sizes.
mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca oob_tcp_if_include lo -np 4 \
  "$cli" "${args[@]}" --steps 30 --out "$work/four" > /dev/null
compare "$work/one" "$work/four" "4 ranks vs 1 process"

# Resume across process counts: 2 ranks then 1 process, 1 process then 2 ranks.
"${mpi[@]}" "$cli" "${args[@]}" --steps 15 --out "$work/two-one" > /dev/null
"$cli" "${args[@]}" --steps 30 --out "$work/two-one" --resume > /dev/null
compare "$work/one" "$work/two-one" "2 ranks, resumed in 1 process"
"$cli" "${args[@]}" --steps 15 --out "$work/one-two" > /dev/null
"${mpi[@]}" "$cli" "${args[@]}" --steps 30 --out "$work/one-two" --resume > /dev/null
compare "$work/one" "$work/one-two" "1 process, resumed on 2 ranks"

# A batch of 5 rows cannot be shared by 2 ranks: refused before anything is written.
set +e
"${mpi[@]}" "$cli" "${base[@]}" --batch 5 --steps 30 --out "$work/odd" > /dev/null 2> "$work/odd.err"
status=$?
set -e
[[ $status == 2 ]] || { echo "mpi-smoke: an indivisible batch exited $status, expected 2" >&2; cat "$work/odd.err" >&2; exit 1; }
grep -q "cannot be shared by 2 processes" "$work/odd.err" || { echo "mpi-smoke: indivisible batch said:" >&2; cat "$work/odd.err" >&2; exit 1; }
[[ ! -e "$work/odd" ]] || { echo "mpi-smoke: a refused run wrote $work/odd" >&2; exit 1; }

# A rank that throws (here every rank: --out is under a regular file) aborts the job naming it.
# Open MPI prints its MPI_ABORT notice through its help system, which now and then loses it
# when both ranks abort at once ("ORTE_ERROR_LOG: Out of resource in show_help.c"): such a run
# is tried again, up to three times; every run must fail and name the rank.
touch "$work/file"
for attempt in 1 2 3; do
  set +e
  "${mpi[@]}" "$cli" "${args[@]}" --steps 30 --out "$work/file/run" > /dev/null 2> "$work/abort.err"
  status=$?
  set -e
  [[ $status != 0 ]] || { echo "mpi-smoke: a failing rank left the job with status 0" >&2; exit 1; }
  grep -q "longconv: rank [01] of 2:" "$work/abort.err" || { echo "mpi-smoke: no message naming the rank:" >&2; cat "$work/abort.err" >&2; exit 1; }
  grep -q "MPI_ABORT" "$work/abort.err" && break
  grep -q "show_help.c" "$work/abort.err" && [[ $attempt -lt 3 ]] && continue
  echo "mpi-smoke: the job did not end with MPI_Abort:" >&2
  cat "$work/abort.err" >&2
  exit 1
done
echo "mpi-smoke: ok"
