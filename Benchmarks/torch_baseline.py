#!/usr/bin/env python3
"""LongConvKit's PyTorch baseline: the TNN of docs/MODELS.md (section 2) in plain PyTorch, on CPU.

Each measurement is printed as one JSON object per line, with the same keys as
`longconv-bench`, so the two programs can run one after the other on the same machine, at the
same thread count, and be compared as ratios. Nothing here calls the toolkit.

The model (`TnnLM`): byte vocabulary (256), an embedding N(0, 1/d) tied to the output head, pre-norm
blocks of a gated Toeplitz unit (GTU, inner width 3d) and a GLU (hidden width d), SimpleRMSNorm
in the blocks, LayerNorm at the end. The Toeplitz operator's kernel is an RPE MLP over the raw lags
0..L-1 (width 64, 3 hidden layers by default) times a fixed decay 0.99^k, applied by FFT at 2L.
The modules carry the TNN authors' parameter names (`layers.{i}.token_mixer.toep.rpe...`), so
`state_dict()` is already what `longconv import-torch` reads.

Subcommands (defaults are those of `longconv-bench`):

  tno     The Toeplitz neural operator alone (kernel generation from the RPE, then the causal FFT
          convolution), D = --dim channels, batch --batch, for each --len. `fwd_ms`: forward under
          torch.inference_mode (no graph, as the toolkit's forward). `fwd_bwd_ms`: forward,
          .sum(), .backward() to the input and the RPE parameters, gradients cleared before each
          repetition. Default --dim 1536 --batch 1 --len 512 2048 8192.
  train   One training step of the TNN LM: forward, mean cross-entropy on random bytes, backward,
          AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0: the settings of
          `longconv-bench train`), gradients cleared each step. Default --dim 256 --layers 6
          --batch 8 --len 512.
  decode  Generation without conversion: for each context --len C, the whole context through
          the FFT forward (inference mode) to get the next token's logits. Default --len 512
          2048 8192.
  etsc    Generation with ETSC (docs/MODELS.md section 5.1) in plain eager PyTorch: each layer's
          RPE at the conversion length n = --len (first value, default 512) turned into
          floor((n+1)/2) complex states per channel (conjugate pairs folded, residues doubled,
          the decay folded into the poles: the toolkit's exact conversion), then one token per
          step. For each --context C (default n): the prompt's state from one FFT forward and a
          DFT of the prompt folded modulo n+1, then --steps (default 50) greedy steps timed.
          `max_abs_logit_diff_vs_fft`: 64 tokens stepped from the empty state against the FFT
          forward's logits. --state-dtype complex128 keeps the state in double, as the toolkit
          does (the default complex64 is PyTorch's fastest form).
  charlm  The character-LM quality recipe: TNN LM dim 128, 4 layers, RPE width 32 x 3, length
          256, batch 16, 1500 steps, AdamW lr 2e-3, betas (0.9, 0.98), weight decay 0.1 except
          on norms and biases, 100 warm-up steps times a cosine over the run, gradient clipping
          at 1.0, on the bytes of --text (default Examples/Data/tinyshakespeare.txt) with the
          last 10% held out; then the validation loss in consecutive chunks of each --eval-len,
          as `longconv eval --length N` computes it.
  export  A random TNN LM (default dim 16, 2 layers, RPE width 8 x 2, the shape of
          Tests/Fixtures/tnn-d16-l2) written to --out as model.safetensors (the authors' names,
          F32) and config.json (the keys `longconv import-torch` reads), plus expected.json:
          --len+1 random tokens, the mean next-token cross-entropy over them and the logits at
          the last position. With --text FILE it also reports the loss over FILE in chunks of
          --len (`text_loss_nats`), which `longconv eval --length LEN` must reproduce.

Timing: every workload gets --warmup untimed calls first (default 10: PyTorch's first ~10 calls
of a new shape are several times slower), then --reps timed ones; the median is reported.
`tno` interleaves its two workloads within each repetition, as `longconv-bench` does.

Set-up of the PyTorch CPU environment, once per machine:

  python3 -m venv /tmp/torch-cpu && /tmp/torch-cpu/bin/pip install torch safetensors --extra-index-url https://download.pytorch.org/whl/cpu

Side by side with the toolkit (same machine, same --threads, one after the other):

  swift build -c release --product longconv-bench
  .build/release/longconv-bench tno --dim 1536 --batch 1 --len 512 2048 8192 --threads 2
  /tmp/torch-cpu/bin/python Benchmarks/torch_baseline.py tno --dim 1536 --batch 1 --len 512 2048 8192 --threads 2
  .build/release/longconv-bench train --dim 256 --layers 6 --batch 8 --len 512 --threads 2
  /tmp/torch-cpu/bin/python Benchmarks/torch_baseline.py train --dim 256 --layers 6 --batch 8 --len 512 --threads 2
  .build/release/longconv-bench etsc --dim 256 --layers 6 --len 512 --context 512 --threads 2
  /tmp/torch-cpu/bin/python Benchmarks/torch_baseline.py etsc --dim 256 --layers 6 --len 512 --context 512 --threads 2

Checkpoint round trip:

  python3 Benchmarks/torch_baseline.py export --out /tmp/tnn --text FILE --len 64
  .build/release/longconv import-torch --state-dict /tmp/tnn/model.safetensors --config /tmp/tnn/config.json --out /tmp/ck
  .build/release/longconv eval --checkpoint /tmp/ck --text FILE --length 64      # = text_loss_nats
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 256
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TEXT = os.path.join(REPO, "Examples", "Data", "tinyshakespeare.txt")


# ----------------------------------------------------------------------------------------------
# The model, with the authors' module names (docs/MODELS.md, "Names in the authors' PyTorch
# checkpoints").

class SimpleRMSNorm(nn.Module):
    """x / (||x||_2 * d^(-1/2) + 1e-8) over the last axis; no parameters."""

    def forward(self, x):
        scale = x.shape[-1] ** -0.5
        return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) * scale + 1e-8)


def rpe_stage(width_in, width_out):
    # Indices 0, 1, 2 -> the Linear is ".2", as in the reference checkpoints.
    return nn.Sequential(SimpleRMSNorm(), nn.ReLU(), nn.Linear(width_in, width_out))


class Rpe(nn.Module):
    """Relative position encoder: one scalar lag -> `channels` coefficients."""

    def __init__(self, channels, width, hidden_layers):
        super().__init__()
        self.pos_proj = nn.Linear(1, width)
        self.layers = nn.ModuleList([rpe_stage(width, width) for _ in range(hidden_layers)])
        self.out = rpe_stage(width, channels)

    def forward(self, lags):                       # [n, 1] -> [n, channels]
        h = self.pos_proj(lags)
        for stage in self.layers:
            h = stage(h)
        return self.out(h)


class Toeplitz(nn.Module):
    """Causal Toeplitz operator: t_c[k] = gamma^k RPE_c(k), applied by FFT at 2L."""

    def __init__(self, channels, rpe_width, rpe_layers, gamma):
        super().__init__()
        self.rpe = Rpe(channels, rpe_width, rpe_layers)
        # The reference stores the fixed decay as a [heads, 1, channels] buffer.
        self.register_buffer("gamma", torch.full((1, 1, channels), float(gamma)))
        self._decay = {}                           # length -> [n, channels] constant powers

    def undecayed(self, n):                        # [n, channels]
        lags = torch.arange(n, dtype=torch.float32).unsqueeze(1)
        return self.rpe(lags)

    def decay_powers(self, n):
        # A constant (the decay is not trained), kept per length as the toolkit keeps it. Built
        # outside inference mode so the same tensor can later take part in a backward pass.
        if n not in self._decay:
            with torch.inference_mode(False), torch.no_grad():
                lags = torch.arange(n, dtype=torch.float32).unsqueeze(1)
                self._decay[n] = torch.exp(lags * torch.log(self.gamma.reshape(1, -1)))
        return self._decay[n]

    def kernel(self, n):
        return self.undecayed(n) * self.decay_powers(n)

    def forward(self, x):                          # [B, L, channels]
        n = x.shape[1]
        size = 2 * n                               # no wrap-around onto outputs 0..n-1
        spectrum = torch.fft.rfft(x, size, dim=1) * torch.fft.rfft(self.kernel(n), size, dim=0)
        return torch.fft.irfft(spectrum, size, dim=1)[:, :n]


class GatedToeplitzUnit(nn.Module):
    def __init__(self, dim, expand, rpe_width, rpe_layers, gamma):
        super().__init__()
        inner = expand * dim
        self.u_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.o = nn.Linear(inner, dim)
        self.toep = Toeplitz(inner, rpe_width, rpe_layers, gamma)

    def gate_and_input(self, x):
        return F.silu(self.u_proj(x)), F.silu(self.v_proj(x))

    def forward(self, x, capture=None):
        u, v = self.gate_and_input(x)
        if capture is not None:
            capture.append(v)
        return self.o(u * self.toep(v))


class Glu(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.l1 = nn.Linear(dim, hidden)
        self.l2 = nn.Linear(dim, hidden)
        self.l3 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.l3(F.silu(self.l1(x)) * self.l2(x))


class TnnLayer(nn.Module):
    def __init__(self, dim, expand, glu_dim, rpe_width, rpe_layers, gamma):
        super().__init__()
        self.token_norm = SimpleRMSNorm()
        self.token_mixer = GatedToeplitzUnit(dim, expand, rpe_width, rpe_layers, gamma)
        self.feature_norm = SimpleRMSNorm()
        self.feature_mixer = Glu(dim, glu_dim)

    def forward(self, x, capture=None):
        x = x + self.token_mixer(self.token_norm(x), capture)
        return x + self.feature_mixer(self.feature_norm(x))


class TnnLM(nn.Module):
    def __init__(self, dim, layers, rpe_width=64, rpe_layers=3, expand=3, gamma=0.99):
        super().__init__()
        self.config = dict(vocab_size=VOCAB, dim=dim, layers=layers, expand_ratio=expand, glu_dim=dim,
                           rpe_width=rpe_width, rpe_layers=rpe_layers, gamma=gamma)
        self.embedding = nn.Embedding(VOCAB, dim)
        nn.init.normal_(self.embedding.weight, mean=0.0, std=dim ** -0.5)
        self.layers = nn.ModuleList(
            [TnnLayer(dim, expand, dim, rpe_width, rpe_layers, gamma) for _ in range(layers)])
        self.final_norm = nn.LayerNorm(dim)

    def head(self, h):                             # tied output head
        return self.final_norm(h) @ self.embedding.weight.t()

    def forward(self, tokens, capture=None):       # [B, L] -> [B, L, 256]
        h = self.embedding(tokens)
        for layer in self.layers:
            h = layer(h, capture)
        return self.head(h)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# Timing and output.

def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def medians(workloads, reps, warmup):
    """Median seconds of each workload; all run in turn within each round (warm-up rounds first)."""
    samples = [[] for _ in workloads]
    for round_index in range(warmup + reps):
        for i, work in enumerate(workloads):
            seconds = timed(work)
            if round_index >= warmup:
                samples[i].append(seconds)
    return [statistics.median(s) for s in samples]


def emit(**fields):
    print(json.dumps(fields), flush=True)


def header():
    return {"impl": "pytorch-" + torch.__version__, "threads": torch.get_num_threads()}


def pick(value, default):
    return default if value is None else value


# ----------------------------------------------------------------------------------------------
# tno, train, decode

def run_tno(a):
    dim, batch = pick(a.dim, 1536), pick(a.batch, 1)
    op = Toeplitz(dim, a.rpe_width, a.rpe_layers, 0.99)
    for n in pick(a.len, [512, 2048, 8192]):
        x = torch.randn(batch, n, dim, requires_grad=True)

        def forward():
            with torch.inference_mode():
                op(x)

        def forward_backward():
            x.grad = None
            op.zero_grad(set_to_none=True)
            op(x).sum().backward()

        fwd, fwd_bwd = medians([forward, forward_backward], a.reps, a.warmup)
        emit(**header(), bench="tno", dim=dim, batch=batch, len=n, fwd_ms=fwd * 1e3, fwd_bwd_ms=fwd_bwd * 1e3)


def run_train(a):
    dim, layers, batch = pick(a.dim, 256), pick(a.layers, 6), pick(a.batch, 8)
    for n in pick(a.len, [512]):
        model = TnnLM(dim, layers, a.rpe_width, a.rpe_layers)
        # The toolkit's bench optimizer: one group, no weight decay (PyTorch's AdamW default is 0.01).
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        inputs = torch.randint(0, VOCAB, (batch, n))
        targets = torch.randint(0, VOCAB, (batch, n))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs).reshape(-1, VOCAB), targets.reshape(-1))
            loss.backward()
            opt.step()

        (seconds,) = medians([step], a.reps, a.warmup)
        # Peak resident set of the process so far (Linux reports KiB), as longconv-bench's
        # peak_rss_mb: one length per process compares like with like.
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        emit(**header(), bench="train_step", dim=dim, layers=layers, batch=batch, len=n,
             params=parameter_count(model), step_ms=seconds * 1e3, tokens_per_s=batch * n / seconds,
             peak_rss_mb=peak_rss_mb)


def run_decode(a):
    dim, layers = pick(a.dim, 256), pick(a.layers, 6)
    model = TnnLM(dim, layers, a.rpe_width, a.rpe_layers).eval()
    for n in pick(a.len, [512, 2048, 8192]):
        context = torch.randint(0, VOCAB, (1, n))

        def next_token_logits():
            with torch.inference_mode():
                model(context)[:, -1]

        (seconds,) = medians([next_token_logits], max(3, a.reps // 2), a.warmup)
        emit(**header(), bench="decode_recompute", dim=dim, layers=layers, context=n, ms_per_token=seconds * 1e3)


# ----------------------------------------------------------------------------------------------
# etsc

class EtscLayer:
    """One GTU's kernel as a diagonal recurrence: state = p * state + v, y = Re(sum_s rho_s state_s)."""

    def __init__(self, toep, n, state_dtype):
        r = toep.undecayed(n).double()                              # [n, C], without the decay
        r = torch.cat([r, -r.sum(0, keepdim=True)])                 # m = n + 1 values summing to 0
        m = r.shape[0]
        kept = m // 2                                               # s = 1 .. floor(m/2)
        s = torch.arange(1, kept + 1, dtype=torch.float64).unsqueeze(1)
        rho = torch.fft.ifft(r, dim=0)[1:kept + 1]                  # (1/m) sum_k r[k] e^{+2 pi i s k/m}
        weight = torch.full((kept, 1), 2.0, dtype=torch.float64)   # conjugate pair s, m - s folded
        if m % 2 == 0:
            weight[-1] = 1.0                                        # s = m/2 is its own conjugate
        gamma = toep.gamma.reshape(-1).double()
        if bool((gamma == gamma[0]).all()):
            gamma = gamma[:1]                                       # one decay: poles shared by all channels
        self.m, self.n = m, n
        self.gamma = gamma
        self.grid = torch.exp(-2j * math.pi * s / m)                # [kept, 1]
        self.poles = (self.grid * gamma).to(state_dtype)            # [kept, 1] or [kept, C]
        self.residues = (rho * weight).to(state_dtype)              # [kept, C]
        self.states = kept

    def state_after(self, v):
        """The state after inputs v [P, C] from the empty state: sum_k p^k v[P-1-k], by folding
        the gamma-weighted, reversed inputs modulo m and one DFT (e^{-2 pi i s m/m} = 1)."""
        P, C = v.shape
        k = torch.arange(P, dtype=torch.float64).unsqueeze(1)
        weighted = v.double().flip(0) * self.gamma.unsqueeze(0) ** k   # [P, C], row k = gamma^k v[P-1-k]
        rows = -(-P // self.m) * self.m
        folded = F.pad(weighted, (0, 0, 0, rows - P)).reshape(-1, self.m, C).sum(0)
        return torch.fft.fft(folded, dim=0)[1:self.states + 1].to(self.residues.dtype)

    def step(self, state, v):                                       # state [kept, C], v [1, C]
        state.mul_(self.poles).add_(v)
        return (state * self.residues).sum(0, keepdim=True).real


class EtscModel:
    def __init__(self, model, n, state_dtype):
        self.model = model
        self.layers = [EtscLayer(layer.token_mixer.toep, n, state_dtype) for layer in model.layers]
        self.dtype = state_dtype

    def empty_state(self):
        return [torch.zeros(c.states, c.residues.shape[1], dtype=self.dtype) for c in self.layers]

    def prefill(self, tokens):                                      # [1, P] -> (logits [256], state)
        captured = []
        logits = self.model(tokens, capture=captured)[0, -1]
        return logits, [c.state_after(v[0]) for c, v in zip(self.layers, captured)]

    def step(self, token, state):                                   # token [1] -> logits [1, 256]
        h = self.model.embedding(token)
        for layer, conv, s in zip(self.model.layers, self.layers, state):
            mixer = layer.token_mixer
            u, v = mixer.gate_and_input(layer.token_norm(h))
            h = h + mixer.o(u * conv.step(s, v).to(u.dtype))
            h = h + layer.feature_mixer(layer.feature_norm(h))
        return self.model.head(h)


def run_etsc(a):
    dim, layers = pick(a.dim, 256), pick(a.layers, 6)
    n = pick(a.len, [512])[0]
    contexts = pick(a.context, [n])
    steps = pick(a.steps, 50)
    dtype = {"complex64": torch.complex64, "complex128": torch.complex128}[a.state_dtype]
    model = TnnLM(dim, layers, a.rpe_width, a.rpe_layers).eval()
    with torch.inference_mode():
        conversions = []
        for _ in range(3):
            start = time.perf_counter()
            etsc = EtscModel(model, n, dtype)
            conversions.append(time.perf_counter() - start)

        # 64 tokens stepped from the empty state against the FFT forward.
        probe = torch.randint(0, VOCAB, (1, 64))
        full = model(probe)[0]
        state = etsc.empty_state()
        stepped = torch.cat([etsc.step(probe[:, i], state) for i in range(probe.shape[1])])
        difference = (stepped - full).abs().max().item()

        states = etsc.layers[0].states
        for c in contexts:
            prompt = torch.randint(0, VOCAB, (1, c))
            start = time.perf_counter()
            logits, state = etsc.prefill(prompt)
            prefill_seconds = time.perf_counter() - start
            times = []
            for round_index in range(a.warmup + steps):
                token = logits.reshape(-1).argmax().reshape(1)      # greedy, outside the timed step
                start = time.perf_counter()
                logits = etsc.step(token, state)
                if round_index >= a.warmup:
                    times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            emit(**header(), bench="decode_etsc", dim=dim, layers=layers, state=n, complex_states=states,
                 ms_per_token=seconds * 1e3, max_abs_logit_diff_vs_fft=difference, context=c,
                 conversion_length=n, states_per_channel_max=states,
                 states_total=sum(l.states * l.residues.shape[1] for l in etsc.layers),
                 state_dtype=a.state_dtype, conversion_s=statistics.median(conversions),
                 prefill_s=prefill_seconds)


# ----------------------------------------------------------------------------------------------
# charlm

def chunked_loss(model, data, n):
    """Mean next-byte cross-entropy: chunk k reads data[kn : kn+n] and predicts data[kn+1 : kn+n+1]
    (the last chunk shorter), every byte but the first predicted once (as `longconv eval`)."""
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(data) - 1, n):
            end = min(start + n, len(data) - 1)
            inputs, targets = data[start:end], data[start + 1:end + 1]
            total += F.cross_entropy(model(inputs[None])[0], targets, reduction="sum").item()
            count += len(targets)
    return total / count


def read_bytes(path):
    with open(path, "rb") as f:
        return torch.tensor(list(f.read()), dtype=torch.long)


def run_charlm(a):
    dim, layers, batch = pick(a.dim, 128), pick(a.layers, 4), pick(a.batch, 16)
    n, steps = pick(a.len, [256])[0], pick(a.steps, 1500)
    rpe_width = pick(a.rpe_width_given, 32)
    data = read_bytes(a.text or DEFAULT_TEXT)
    held_out = len(data) // 10
    train, val = data[:-held_out], data[-held_out:]
    model = TnnLM(dim, layers, rpe_width, a.rpe_layers)
    # The toolkit's groups: no weight decay on norms (names containing "norm") and biases.
    plain = [p for name, p in model.named_parameters() if "norm" in name.lower() or name.endswith("bias")]
    decayed = [p for name, p in model.named_parameters() if not ("norm" in name.lower() or name.endswith("bias"))]
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98), eps=1e-8)
    sampler = torch.Generator().manual_seed(a.seed)
    offsets = torch.arange(n)
    started = time.time()
    for step in range(1, steps + 1):
        rate = a.lr * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = rate
        starts = torch.randint(0, len(train) - n, (batch, 1), generator=sampler)   # 0 ... len - n - 1
        inputs, targets = train[starts + offsets], train[starts + offsets + 1]
        loss = F.cross_entropy(model(inputs).reshape(-1, VOCAB), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps:
            emit(**header(), bench="charlm_progress", step=step, train_loss=loss.item(),
                 elapsed_s=time.time() - started)
    train_seconds = time.time() - started
    model.eval()
    for eval_len in a.eval_len:
        v = chunked_loss(model, val, eval_len)
        emit(**header(), bench="charlm", dim=dim, layers=layers, len=n, batch=batch, steps=steps,
             eval_len=eval_len, val_loss_nats=v, bits_per_byte=v / math.log(2), train_s=train_seconds,
             params=parameter_count(model))


# ----------------------------------------------------------------------------------------------
# export

def run_export(a):
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise SystemExit("export needs the safetensors package (pip install safetensors)")
    dim, layers = pick(a.dim, 16), pick(a.layers, 2)
    rpe_width = pick(a.rpe_width_given, 8)
    rpe_layers = pick(a.rpe_layers_given, 2)
    n = pick(a.len, [48])[0]
    model = TnnLM(dim, layers, rpe_width, rpe_layers).eval()
    with torch.no_grad():
        # A final LayerNorm that is not the identity, so an affine dropped on import shows.
        model.final_norm.weight.copy_(1 + 0.5 * torch.rand(dim) - 0.25)
        model.final_norm.bias.copy_(0.2 * torch.randn(dim))
    os.makedirs(a.out, exist_ok=True)
    tensors = {name: t.detach().float().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, os.path.join(a.out, "model.safetensors"))
    config = dict(model.config, causal=True, norm="simple_rms_norm", prenorm=True, final_norm="layer_norm",
                  tied_embedding=True, max_length=n)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")

    tokens = torch.randint(0, VOCAB, (1, n + 1))
    with torch.inference_mode():
        logits = model(tokens[:, :-1])[0]
        loss = F.cross_entropy(logits, tokens[0, 1:]).item()
    expected = {"tokens": tokens[0].tolist(), "mean_cross_entropy_nats": loss,
                "last_position_logits": logits[-1].tolist()}
    line = dict(bench="export", out=a.out, params=parameter_count(model), loss=loss)
    if a.text:
        text_loss = chunked_loss(model, read_bytes(a.text), n)
        expected.update(text=os.path.abspath(a.text), text_chunk_length=n, text_loss_nats=text_loss)
        line.update(text_loss_nats=text_loss, text_chunk_length=n)
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(expected, f)
    emit(**line)


# ----------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description="PyTorch CPU baseline for longconv-bench (see the module docstring).")
    p.add_argument("what", choices=["tno", "train", "decode", "etsc", "charlm", "export"])
    p.add_argument("--dim", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--len", type=int, nargs="+", help="lengths (tno, train), contexts (decode), "
                   "conversion length (etsc), training length (charlm), token count (export)")
    p.add_argument("--context", type=int, nargs="+", help="etsc: prompt lengths to prefill before timing")
    p.add_argument("--steps", type=int, help="etsc: timed steps (50); charlm: training steps (1500)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: every CPU, as longconv-bench)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before timing each workload")
    p.add_argument("--rpe-width", type=int, dest="rpe_width_given")
    p.add_argument("--rpe-layers", type=int, dest="rpe_layers_given")
    p.add_argument("--state-dtype", choices=["complex64", "complex128"], default="complex64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text", help="charlm: corpus (default Examples/Data/tinyshakespeare.txt); export: text to score")
    p.add_argument("--lr", type=float, default=2e-3, help="charlm peak learning rate")
    p.add_argument("--eval-len", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--out", default="tnn-export")
    a = p.parse_args()
    a.rpe_width = pick(a.rpe_width_given, 64)
    a.rpe_layers = pick(a.rpe_layers_given, 3)
    a.reps, a.warmup = max(1, a.reps), max(0, a.warmup)

    torch.set_num_threads(a.threads if a.threads > 0 else (os.cpu_count() or 1))
    torch.manual_seed(a.seed)
    {"tno": run_tno, "train": run_train, "decode": run_decode, "etsc": run_etsc,
     "charlm": run_charlm, "export": run_export}[a.what](a)


if __name__ == "__main__":
    main()
