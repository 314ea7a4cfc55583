#!/usr/bin/env bash
# Exercises the command line end to end on committed PyTorch fixtures (TNN, safari's Hyena and S4D): import-torch, eval
# (its loss must match what PyTorch computed), inspect (its files), convert and generate (greedy
# decoding by the converted model equals FFT recomputation), and the exit statuses of user and usage errors
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

# convert: exact and compact; generate: greedy decoding by the recurrent (exact) model must give
# the same bytes as FFT recomputation within the conversion length.
"$cli" convert --checkpoint "$work/ckpt" --mode exact --length 64 --out "$work/exact" > "$work/convert-exact.txt"
"$cli" convert --checkpoint "$work/ckpt" --mode compact --tolerance 1e-3 --length 64 --out "$work/compact" > /dev/null
for mode in exact compact; do
  for file in kernels.safetensors report.json report.txt; do
    [[ -s "$work/$mode/$file" ]] || { echo "cli-smoke: convert --mode $mode did not write $file" >&2; exit 1; }
  done
done
"$cli" generate --checkpoint "$work/ckpt" --prompt "The " --tokens 24 > "$work/fft.out" 2> /dev/null
"$cli" generate --checkpoint "$work/ckpt" --recurrent "$work/exact" --prompt "The " --tokens 24 > "$work/exact.out" 2> "$work/exact.err"
"$cli" generate --checkpoint "$work/ckpt" --recurrent "$work/compact" --prompt "The " --tokens 24 > "$work/compact.out" 2> /dev/null
[[ $(wc -c < "$work/fft.out") == 24 && $(wc -c < "$work/compact.out") == 24 ]] || { echo "cli-smoke: generate did not write 24 bytes" >&2; exit 1; }
cmp -s "$work/fft.out" "$work/exact.out" || { echo "cli-smoke: greedy recurrent (exact) output differs from FFT recomputation" >&2; exit 1; }
grep -q "tokens/s (recurrent exact" "$work/exact.err" || { echo "cli-smoke: generate printed no timing line" >&2; cat "$work/exact.err" >&2; exit 1; }
! grep -q warning "$work/exact.err" || { echo "cli-smoke: warned within the conversion length" >&2; exit 1; }
"$cli" generate --checkpoint "$work/ckpt" --recurrent "$work/exact" --prompt "The " --tokens 70 > /dev/null 2> "$work/long.err"
[[ $(grep -c "warning: past position 64" "$work/long.err") == 1 ]] || { echo "cli-smoke: no single warning past the conversion length" >&2; cat "$work/long.err" >&2; exit 1; }
# bfloat16 weights: the logit difference over the prompt is reported, and a bound it exceeds stops
# generation with an error naming the option.
"$cli" generate --checkpoint "$work/ckpt" --recurrent "$work/exact" --weights bfloat16 --prompt "The " --tokens 24 > "$work/bf16.out" 2> "$work/bf16.err"
[[ $(wc -c < "$work/bf16.out") == 24 ]] && grep -q "bfloat16 weights: logits within .* over the prompt's 4 tokens" "$work/bf16.err" && grep -q "bfloat16 weights; prompt 4 bytes)" "$work/bf16.err" \
  || { echo "cli-smoke: generate --weights bfloat16:" >&2; cat "$work/bf16.err" >&2; exit 1; }
if "$cli" generate --checkpoint "$work/ckpt" --recurrent "$work/exact" --weights bfloat16 --max-logit-error 0 --prompt "The " --tokens 4 > /dev/null 2> "$work/bf16-bound.err"; then
  echo "cli-smoke: --max-logit-error 0 was not enforced" >&2; exit 1
fi
grep -q "longconv: --max-logit-error: bfloat16 weights moved the logits" "$work/bf16-bound.err" || { cat "$work/bf16-bound.err" >&2; exit 1; }
if "$cli" generate --checkpoint "$work/ckpt" --weights bfloat16 --prompt "The " --tokens 4 > /dev/null 2> "$work/bf16-usage.err" \
  || ! grep -q "need --recurrent" "$work/bf16-usage.err"; then
  echo "cli-smoke: --weights without --recurrent was not refused by name" >&2; cat "$work/bf16-usage.err" >&2; exit 1
fi
python3 -c "import struct,json; h=json.dumps({'k':{'dtype':'F32','shape':[1,2],'data_offsets':[0,8]}}).encode(); h+=b' '*(-len(h)%8); open('$work/bad-kernels.safetensors','wb').write(struct.pack('<Q',len(h))+h+struct.pack('<2f',1,float('nan')))"
echo "cli-smoke: convert (exact, compact) and generate (greedy, recurrent = FFT) ok"

# safari: a Hyena of order 3 (config under a "model" key) and an S4D model import, evaluate to the
# loss safari's own modules computed, convert, and generate greedily as the FFT model does.
for name in safari-hyena-o3 safari-s4d; do
  safari=Tests/Fixtures/$name
  "$cli" import-torch --format safari --state-dict "$safari/model.safetensors" --config "$safari/config.json" --out "$work/$name" > /dev/null
  python3 -c "import json,sys; sys.stdout.buffer.write(bytes(json.load(open('$safari/expected.json'))['tokens']))" > "$work/$name.bin"
  "$cli" eval --checkpoint "$work/$name" --text "$work/$name.bin" --length 64 --json > "$work/$name-eval.json"
  python3 - "$work/$name-eval.json" "$safari/expected.json" "$name" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))["loss_nats"]
want = json.load(open(sys.argv[2]))["mean_loss_nats"]
assert abs(got - want) <= 2e-6, f"{sys.argv[3]}: eval loss {got} != safari's {want}"
print(f"cli-smoke: {sys.argv[3]} eval loss {got:.7f} matches safari's {want:.7f}")
PY
  "$cli" convert --checkpoint "$work/$name" --mode exact --length 64 --out "$work/$name-exact" > /dev/null
  "$cli" generate --checkpoint "$work/$name" --prompt "The " --tokens 24 > "$work/$name-fft.out" 2> /dev/null
  "$cli" generate --checkpoint "$work/$name" --recurrent "$work/$name-exact" --prompt "The " --tokens 24 > "$work/$name-exact.out" 2> /dev/null
  cmp -s "$work/$name-fft.out" "$work/$name-exact.out" || { echo "cli-smoke: $name: recurrent output differs from FFT" >&2; exit 1; }
done
"$cli" convert --checkpoint "$work/safari-s4d" --mode native --length 64 --out "$work/safari-s4d-native" > /dev/null
echo "cli-smoke: safari Hyena (order 3) and S4D: import, eval, convert, generate ok"

# Reproducible training (2 threads): the same command twice gives byte-identical checkpoints,
# and a run killed with SIGKILL after a checkpoint and resumed ends byte-identical to an
# uninterrupted one, with every step logged once.
train_args=(train --config Configs/tnn_lm.json --text Examples/Data/tinyshakespeare.txt --steps 8 --batch 4
  --length 128 --threads 2 --checkpoint-every 2)
"$cli" "${train_args[@]}" --out "$work/run1" > /dev/null
"$cli" "${train_args[@]}" --out "$work/run2" > /dev/null
for file in model.safetensors optimizer.safetensors; do
  cmp -s "$work/run1/checkpoint/$file" "$work/run2/checkpoint/$file" ||
    { echo "cli-smoke: two identical train runs differ in $file" >&2; exit 1; }
done
"$cli" "${train_args[@]}" --out "$work/killed" > /dev/null &
pid=$!
for _ in $(seq 1 600); do
  [[ -f "$work/killed/checkpoint/trainer.json" ]] && [[ $(wc -l < "$work/killed/metrics.jsonl") -ge 5 ]] && break
  sleep 0.1
done
kill -9 "$pid" 2> /dev/null || true
wait "$pid" 2> /dev/null || true
"$cli" "${train_args[@]}" --out "$work/killed" --resume > /dev/null
for file in model.safetensors optimizer.safetensors; do
  cmp -s "$work/run1/checkpoint/$file" "$work/killed/checkpoint/$file" ||
    { echo "cli-smoke: a killed and resumed run differs in $file from an uninterrupted one" >&2; exit 1; }
done
python3 - "$work/killed/metrics.jsonl" <<'PY'
import json, sys
steps = [json.loads(line)["step"] for line in open(sys.argv[1]) if '"loss"' in line and "val_" not in line]
assert steps == list(range(1, 9)), f"training steps logged after a resume: {steps}"
PY
echo "cli-smoke: reproducible training (two runs, kill and resume) ok"

# A new run from another run's weights (--init-from): its first step starts from run1's final
# loss, not from a fresh initialisation's; combined with --resume it is refused.
"$cli" train --config Configs/tnn_lm.json --text Examples/Data/tinyshakespeare.txt --steps 1 --batch 4 --length 128 \
  --threads 2 --out "$work/init" --init-from "$work/run1" > "$work/init.log"
grep -q "starting from the weights in $work/run1" "$work/init.log" ||
  { echo "cli-smoke: --init-from did not say where it started" >&2; exit 1; }
python3 - "$work/run1/metrics.jsonl" "$work/init/metrics.jsonl" <<'PY'
import json, sys
def losses(path):
    return [json.loads(l)["loss"] for l in open(path) if '"loss"' in l and "val_" not in l]
trained, started = losses(sys.argv[1]), losses(sys.argv[2])
assert abs(started[0] - trained[-1]) < abs(trained[0] - trained[-1]) / 2, (trained, started)
PY
echo "cli-smoke: --init-from ok"

expect_status() {  # expect_status STATUS command...
  local want=$1; shift
  set +e; "$@" > /dev/null 2> "$work/stderr"; local got=$?; set -e
  [[ $got == "$want" ]] || { echo "cli-smoke: '$*' exited $got, expected $want" >&2; cat "$work/stderr" >&2; exit 1; }
}
expect_status 1 "$cli" import-torch --state-dict "$work/missing.safetensors" --config "$fixture/config.json" --out "$work/never"
[[ ! -e "$work/never" ]] || { echo "cli-smoke: a failed import created its output" >&2; exit 1; }
python3 -c "import json; c=json.load(open('Tests/Fixtures/safari-hyena-o2/config.json')); c['layer']['num_heads']=2; json.dump(c, open('$work/heads.json','w'))"
expect_status 1 "$cli" import-torch --format safari --state-dict Tests/Fixtures/safari-hyena-o2/model.safetensors --config "$work/heads.json" --out "$work/never"
grep -q "layer.num_heads" "$work/stderr" || { echo "cli-smoke: num_heads 2 was not refused by name" >&2; cat "$work/stderr" >&2; exit 1; }
[[ ! -e "$work/never" ]] || { echo "cli-smoke: a refused safari import created its output" >&2; exit 1; }
expect_status 2 "$cli" import-torch --format keras --state-dict "$fixture/model.safetensors" --config "$fixture/config.json" --out "$work/never"
expect_status 2 "$cli" eval --checkpoint "$work/ckpt"
expect_status 2 "$cli" "${train_args[@]}" --out "$work/init" --resume --init-from "$work/run1"
expect_status 1 "$cli" train --config Configs/hyena_lm.json --text Examples/Data/tinyshakespeare.txt --steps 1 --out "$work/never" --init-from "$work/run1"
grep -q "shape mismatch\|missing" "$work/stderr" || { echo "cli-smoke: --init-from with another model's checkpoint" >&2; cat "$work/stderr" >&2; exit 1; }
expect_status 2 "$cli" inspect --checkpoint "$work/ckpt" --out "$work/inspect" --length 0
expect_status 1 "$cli" inspect --checkpoint "$work/missing" --out "$work/inspect"
expect_status 1 "$cli" inspect --checkpoint "$work/ckpt" --out "$work/tokens.bin"
expect_status 2 "$cli" convert --checkpoint "$work/ckpt" --mode compact --tolerance 0 --out "$work/never"
# A bidirectional classifier has no causal recurrent form: a clear error, nothing written.
cat > "$work/classifier.json" <<'JSON'
{"model": "classifier", "vocab_size": 32, "dim": 8, "num_layers": 1, "num_classes": 10, "max_length": 64,
 "layers": {"mixer": {"type": "gtu", "expand_ratio": 1, "kernel": {"type": "tnn", "rpe_width": 4, "rpe_layers": 1}}}}
JSON
"$cli" train --config "$work/classifier.json" --task listops --steps 1 --batch 2 --length 64 --out "$work/cls" > /dev/null
expect_status 1 "$cli" convert --checkpoint "$work/cls/checkpoint" --mode exact --out "$work/never-cls"
message=$("$cli" convert --checkpoint "$work/cls/checkpoint" --mode exact --out "$work/never-cls" 2>&1 || true)
[[ $message == *bidirectional* ]] || { echo "cli-smoke: converting a classifier said: $message" >&2; exit 1; }
[[ ! -e "$work/never-cls" ]] || { echo "cli-smoke: a refused conversion wrote $work/never-cls" >&2; exit 1; }
expect_status 2 "$cli" convert --checkpoint "$work/ckpt" --mode sideways --out "$work/never"
expect_status 1 "$cli" convert --kernels "$work/bad-kernels.safetensors" --mode exact --out "$work/never.safetensors"
expect_status 1 "$cli" convert --checkpoint "$work/ckpt" --mode exact --out "$work/inspect"
expect_status 2 "$cli" generate --checkpoint "$work/ckpt" --prompt "" --tokens 3
expect_status 2 "$cli" generate --checkpoint "$work/ckpt" --prompt "a" --tokens 0
expect_status 1 "$cli" generate --checkpoint "$work/ckpt" --recurrent "$work/inspect" --prompt "a" --tokens 3
[[ ! -e "$work/never" && ! -e "$work/never.safetensors" ]] || { echo "cli-smoke: a failed convert created its output" >&2; exit 1; }
expect_status 0 "$cli" convert --help
expect_status 0 "$cli" generate --help
expect_status 2 "$cli" frobnicate
expect_status 0 "$cli" eval --help
echo "cli-smoke: ok"
