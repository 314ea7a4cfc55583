#!/usr/bin/env python3
"""LongConvKit's baseline for the Hyena and S4D families: their authors' own PyTorch modules,
unmodified, timed on the CPU beside `longconv-bench train --config ...`.

Subcommands (one JSON line per length, the keys of `longconv-bench train`):

  hyena   One training step of safari's recall model: safari's own `SimpleLMHeadModel` with its
          `HyenaOperator` (HazyResearch/safari, `src/models/sequence/{simple_lm,hyena}.py`),
          shaped as Configs/hyena_recall.json: vocabulary 10, d_model 64, 2 layers, d_inner 256,
          order 2, short filter 3, implicit filter emb_dim 5 x 64 wide, Sin frequency 10,
          l_max 258. Toolkit side:
            .build/release/longconv-bench train --config Configs/hyena_recall.json --batch 32 --len 256
  s4d     One training step of a language model built from s4's own S4D block
          (state-spaces/s4, `models/s4/s4d.py`: kernel, FFT convolution, skip D, GELU,
          Conv1d + GLU output), shaped as Configs/s4d_lm.json: byte vocabulary, dim 128,
          4 layers, state 64, pre-norm LayerNorm blocks of S4D then a GLU channel mixer
          (W3 (SiLU(W1 x) * W2 x), hidden = dim), final LayerNorm, tied head. The model
          around the block is plain PyTorch written here. Toolkit side:
            .build/release/longconv-bench train --config Configs/s4d_lm.json --batch 8 --len 1024

A step is what `longconv-bench train` times: forward, mean cross-entropy over every position
on random tokens, backward, AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay),
gradients cleared each step; dropout 0 on both sides. --warmup untimed steps first (default
10: PyTorch's first calls of a shape are slower), then the median of --reps.

The authors' trees are read from --safari DIR / --s4 DIR (checkouts at the commits
Tests/Fixtures/make_safari_fixtures.py pins; it checks the files' blob ids and refuses modified
ones). Missing third-party packages that the CPU path does not use (hydra, omegaconf,
pytorch_lightning, rich, torchvision) are stubbed as that script documents. For example:

  mkdir -p /tmp/safari /tmp/s4
  git --git-dir=<safari mirror> archive 02220c69d247e5473616cd053a443ad99fd2559b | tar -x -C /tmp/safari
  git --git-dir=<s4 mirror> archive e757cef57d89e448c413de7325ed5601aceaac13 -- models src | tar -x -C /tmp/s4
  python3 Benchmarks/authors_baseline.py hyena --safari /tmp/safari --threads 2
  python3 Benchmarks/authors_baseline.py s4d --s4 /tmp/s4 --threads 2

Needs torch, einops and opt_einsum (the set-up line in Benchmarks/README.md).
"""

import argparse
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Fixtures"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import make_safari_fixtures as fixtures  # noqa: E402  (the source checks and stubs)
from torch_baseline import emit, header, medians, parameter_count  # noqa: E402


def hyena_model(safari_dir, allow, vocab, length):
    sf = fixtures.import_safari(safari_dir, allow)
    config = fixtures.lm_config(
        d_model=64, n_layer=2, d_inner=256, vocab_size=vocab, layer_norm_epsilon=1e-5,
        embed_dropout=0.0,
        layer=fixtures.hyena_layer(l_max=length + 2, order=2, filter_order=64, emb_dim=5,
                                   short_filter_order=3, w=10, modulate=True, lr_pos_emb=0.0))
    return fixtures.build_model(sf, config, seed=0)


class S4DLanguageModel(nn.Module):
    """Configs/s4d_lm.json in PyTorch around s4's own S4D block."""

    def __init__(self, s4d, vocab, dim, layers, state):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.mixer_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.mixers = nn.ModuleList(
            s4d.S4D(dim, d_state=state, dropout=0.0, transposed=False, dt_min=0.001, dt_max=0.1)
            for _ in range(layers))
        self.channel_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.channel_in = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(layers))
        self.channel_out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for norm, mixer, channel_norm, w12, w3 in zip(
                self.mixer_norms, self.mixers, self.channel_norms, self.channel_in, self.channel_out):
            x = x + mixer(norm(x))[0]
            gate, value = w12(channel_norm(x)).chunk(2, dim=-1)
            x = x + w3(F.silu(gate) * value)
        return self.final_norm(x) @ self.embedding.weight.t()


def s4d_model(s4_dir, allow, vocab, dim, layers, state):
    s4_dir = os.path.realpath(s4_dir)
    if not os.path.isfile(os.path.join(s4_dir, "models/s4/s4d.py")):
        sys.exit(f"--s4 {s4_dir}: no models/s4/s4d.py there")
    sys.path.insert(0, s4_dir)
    s4d = importlib.import_module("models.s4.s4d")
    fixtures.check_sources(fixtures.imported_sources(s4_dir), fixtures.S4_BLOBS, "s4", allow)
    torch.manual_seed(0)
    return S4DLanguageModel(s4d, vocab, dim, layers, state)


def time_steps(model, vocab, batch, length, a, **fields):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randint(0, vocab, (batch, length), generator=generator)
    targets = torch.randint(0, vocab, (batch, length), generator=generator)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(inputs)
        out = out[0] if isinstance(out, tuple) else out  # safari's LM: (CausalLMOutput, state)
        logits = out.logits if hasattr(out, "logits") else out
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1])[:, :vocab].float(), targets.reshape(-1))
        loss.backward()
        opt.step()

    (seconds,) = medians([step], a.reps, a.warmup)
    emit(**header(), bench="train_step", **fields, batch=batch, len=length,
         params=parameter_count(model), step_ms=seconds * 1e3, tokens_per_s=batch * length / seconds)


def main():
    p = argparse.ArgumentParser(description="The authors' Hyena and S4D modules, timed (see the docstring).")
    p.add_argument("what", choices=["hyena", "s4d"])
    p.add_argument("--safari", help="safari checkout (hyena)")
    p.add_argument("--s4", help="s4 checkout (s4d)")
    p.add_argument("--batch", type=int)
    p.add_argument("--len", type=int, nargs="+")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: every CPU)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--allow-other-sources", action="store_true")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.what == "hyena":
        if not a.safari:
            p.error("hyena needs --safari DIR")
        for length in a.len or [256]:
            model = hyena_model(a.safari, a.allow_other_sources, 10, length)
            time_steps(model, 10, a.batch or 32, length, a, implementation="safari SimpleLMHeadModel + HyenaOperator",
                       dim=64, layers=2)
    else:
        if not a.s4:
            p.error("s4d needs --s4 DIR")
        for length in a.len or [1024]:
            model = s4d_model(a.s4, a.allow_other_sources, 256, 128, 4, 64)
            time_steps(model, 256, a.batch or 8, length, a, implementation="s4 S4D blocks", dim=128, layers=4)


if __name__ == "__main__":
    main()
