#!/usr/bin/env python3
"""Make LongConvKit test fixtures from the authors' own, unmodified PyTorch code of
HazyResearch/safari (Hyena, safari's S4D, SimpleLMHeadModel) and state-spaces/s4 (s4's S4D).

What it makes (under Tests/Fixtures/ by default, see --outdir):

  safari-hyena-o2   SimpleLMHeadModel + HyenaOperator order 2   (vocab 256, d 16, 2 layers)
  safari-hyena-o3   order 3, post_order_ffn, shift, lr_pos_emb 0 (z is a buffer), w 14,
                    config.json in the nested {"model": {...}, "trainer": ..., "optimizer": ...} form
  safari-hyena-o4   order 4, outer_mixing, normalized, short_filter_order 4,
                    vocab_size 250 padded to 256 (pad_vocab_size_multiple 8)
  safari-s4d        SimpleLMHeadModel + safari's S4D layer (registry name "s4d", n_ssm 2)
  s4-s4d-block      s4's models/s4/s4d.py S4D block alone, (B, L, H) input [2, 40, 12]

Each LM directory holds
  model.safetensors  model.state_dict() exactly as PyTorch names it (every key, tied duplicates
                     such as lm_head.weight / backbone.embeddings.word_embeddings.weight and the
                     shared Sin `freq` under each Sequential index it appears at), float32
  config.json        safari's resolved `model` section (_name_: lm_simple, layer: {...})
  expected.json      tokens, eval_length, mean_loss_nats (chunked, see below),
                     last_position_logits, loss_if_z_recomputed (Hyena), commits, torch version,
                     git blob ids of every safari/s4 source file that was imported
The s4 block directory holds block.safetensors (state_dict), io.safetensors (input, output),
config.json (the constructor kwargs) and expected.json (meta data and a few numbers).

mean_loss_nats: predictions = len(tokens) - 1; chunk k reads tokens[kN : kN+w] and predicts
tokens[kN+1 : kN+w+1], w = min(N, predictions - kN), N = eval_length; each chunk is a separate
forward pass (model.eval(), torch.no_grad(), float32); the float32 logits are converted to float64,
log-softmaxed over all (padded) vocabulary rows, and the mean over all predictions is taken in
float64. last_position_logits: the logits (all padded rows) at position N-1 of a forward pass on
tokens[0:N].

Every parameter and buffer is perturbed after construction (seeded) so that a term that an importer
misses or recomputes from its init formula shows up: LayerNorm weights are 1 + 0.2 randn, all other
weights / biases get additive noise, the positional embedding z gets +0.2 randn, t +0.05 randn, the
modulation deltas are scaled by (1 + 0.3 randn), the (shared) Sin freq once by (1 + 0.1 randn),
log_dt stays within [log 1e-3, log 1e-1].

How to run (Python 3.11, torch, einops, opt_einsum, safetensors, numpy, scipy):

  mkdir -p /tmp/safari /tmp/s4
  git --git-dir=<safari mirror> archive 02220c69d247e5473616cd053a443ad99fd2559b | tar -x -C /tmp/safari
  git --git-dir=<s4 mirror> archive e757cef57d89e448c413de7325ed5601aceaac13 -- models src | tar -x -C /tmp/s4
  python3 Tests/Fixtures/make_safari_fixtures.py --safari /tmp/safari --s4 /tmp/s4
  python3 Tests/Fixtures/make_safari_fixtures.py --safari /tmp/safari --s4 /tmp/s4 --only safari-hyena-o3
  # any safari model config (JSON; the model section itself or {"model": {...}, ...}):
  python3 Tests/Fixtures/make_safari_fixtures.py --safari /tmp/safari --config my.json \
      --out /tmp/fixture --seed 7 --tokens 300 [--eval-length 128]

Made with: safari 02220c69d247e5473616cd053a443ad99fd2559b (2023-09-29),
           s4 e757cef57d89e448c413de7325ed5601aceaac13 (2024-02-21),
           torch 2.15.0+cu132 (CPU), safetensors 0.8.0, einops 0.8.2, opt_einsum 3.4.0,
           numpy 2.4.6, scipy 1.17.1, Python 3.11.7.
The script checks the git blob id of every imported safari/s4 file against these commits and
refuses to run on modified files (unless --allow-other-sources).

Imported unmodified from safari (its own files, via sys.path):
  src/models/sequence/hyena.py        HyenaOperator, HyenaFilter, PositionalEmbedding,
                                      ExponentialModulation, Sin, fftconv_ref
  src/models/sequence/simple_lm.py    SimpleLMHeadModel, LMBackbone, Block, Mlp, GPT2Embeddings
  src/models/sequence/ssm/s4d.py      S4D, S4DKernel, SSKernelDiag (registry name "s4d")
  src/utils/registry.py, src/utils/config.py (instantiate), src/utils/train.py (OptimModule),
  src/models/nn/components.py (Activation), and the package __init__ files they pull in
  (src/models/sequence/__init__.py -> base.py, model.py, block.py, pool.py, ff.py, ...).
Imported unmodified from s4: models/s4/s4d.py (S4D, S4DKernel) and src/models/nn (DropoutNd).
s4's and safari's trees both have a top-level `src` package, so the s4 fixture is made in a child
process that has only the s4 tree on sys.path.

Stubbed (only third-party packages that are not installed here and that no CPU eval forward pass
uses; a stub is only installed when the real package cannot be imported):
  hydra (hydra.utils.get_method)  imported by safari src/utils/config.py; safari's own
        instantiate() calls get_method(path) to turn a registry string such as
        "src.models.sequence.hyena.HyenaOperator" into the class. The stub does exactly that
        (import the module, getattr the attribute), so safari's registry and instantiate run as is.
  omegaconf (DictConfig, ListConfig, OmegaConf)  imported at module level by src/utils/config.py and
        src/utils/train.py; only used by config-processing helpers, never on the model path.
  pytorch_lightning (+ .utilities.rank_zero_only as identity decorator)  imported by
        src/utils/train.py (logger helpers) and by safari's ssm/s4d.py (not used there).
  rich (rich.syntax, rich.tree)  imported by src/utils/train.py for printing configs.
  torchvision (torchvision.ops.StochasticDepth)  imported by simple_lm.py; Block builds
        StochasticDepth(drop_path=0.0, mode='row'), which is the identity; the stub asserts p == 0
        (or eval mode) and returns its input.
Not stubbed, falls back inside safari's own try/except: src.ops.fftconv (needs the CUDA extension
`fftconv`; hyena.py then uses its own fftconv_ref, the path used with fused_fft_conv=False) and
flash_attn (FusedDense is None; fused_bias_fc=False).
"""

import argparse
import copy
import hashlib
import importlib
import json
import math
import os
import subprocess
import sys
import types

SAFARI_COMMIT = "02220c69d247e5473616cd053a443ad99fd2559b"
S4_COMMIT = "e757cef57d89e448c413de7325ed5601aceaac13"

# git blob ids at the commits above of the files whose code runs (checked at run time).
SAFARI_BLOBS = {
    "src/models/sequence/hyena.py": "03289ba94932b02449160a7eb2c55bb6c6d56e3e",
    "src/models/sequence/simple_lm.py": "9b598ba28fe5edc5ae9c5924295fffd1458f01ed",
    "src/models/sequence/ssm/s4d.py": "643e1a55d0ac0557d14b9eb1bed21096718aa359",
    "src/utils/train.py": "b8638000e06f5d49312484c60bb8b188a3bf1184",
    "src/utils/config.py": "9020037c133b4c6bbf877aa74e2bd9f78a4090a2",
    "src/utils/registry.py": "7943bdcc2ff56d44512d0bee1a891d0ebbcc158b",
    "src/utils/__init__.py": "960c2b9a9261191e21c2b13d21b6506df7276106",
    "src/models/nn/components.py": "b47e951e37dfd3ba21f3eb7414b48cbddc830542",
    "src/models/nn/__init__.py": "aee8113e664104603d751d3576be6dbd7b4dac05",
    "src/models/sequence/__init__.py": "38669fb6ef44c296b8be55a9103a9d74bfb1a5aa",
}
S4_BLOBS = {
    "models/s4/s4d.py": "49ef2a9b2f7911f3aadcc13def89c76d79c53b2a",
    "src/models/nn/dropout.py": "8cf36dfa7a23981fde810a5919f4262f8eb7bdee",
}

FIXTURES = ["safari-hyena-o2", "safari-hyena-o3", "safari-hyena-o4", "safari-s4d", "s4-s4d-block"]

# Public-domain English text (Austen, Pride and Prejudice, 1813; Melville, Moby-Dick, 1851;
# Dickens, A Tale of Two Cities, 1859), with a few non-ASCII characters so that UTF-8 bytes
# >= 128 occur (all bytes stay < 250).
TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be "
    "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    "their daughters. \u201cMy dear Mr. Bennet,\u201d said his lady to him one day, \u201chave you heard "
    "that Netherfield Park is let at last?\u201d Call me Ishmael. Some years ago\u2014never mind how "
    "long precisely\u2014having little or no money in my purse, and nothing particular to interest "
    "me on shore, I thought I would sail about a little and see the watery part of the world. "
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity; a na\u00efve "
    "caf\u00e9 r\u00e9sum\u00e9 of the season of Light and the season of Darkness. "
)


# ----------------------------------------------------------------------------------------------
# stubs for third-party packages that are absent and unused by a CPU eval forward pass


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__stub__ = True
    return m


def _importable(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def install_stubs():
    """Install stubs for missing third-party packages; returns the names stubbed."""
    import torch.nn as nn

    stubbed = []

    if not _importable("hydra"):
        def get_method(path):
            # same contract as hydra.utils.get_method: "pkg.module.Attr" -> the attribute
            mod_name, _, attr = path.rpartition(".")
            return getattr(importlib.import_module(mod_name), attr)

        utils = _module("hydra.utils", get_method=get_method, get_class=get_method)
        sys.modules["hydra"] = _module("hydra", utils=utils)
        sys.modules["hydra.utils"] = utils
        stubbed.append("hydra")

    if not _importable("omegaconf"):
        class DictConfig(dict):
            pass

        class ListConfig(list):
            pass

        class OmegaConf:
            @staticmethod
            def set_struct(*a, **k):
                raise RuntimeError("omegaconf is stubbed")

        sys.modules["omegaconf"] = _module(
            "omegaconf", DictConfig=DictConfig, ListConfig=ListConfig, OmegaConf=OmegaConf)
        stubbed.append("omegaconf")

    if not _importable("pytorch_lightning"):
        def rank_zero_only(fn):
            return fn

        utilities = _module("pytorch_lightning.utilities", rank_zero_only=rank_zero_only)
        sys.modules["pytorch_lightning"] = _module("pytorch_lightning", utilities=utilities)
        sys.modules["pytorch_lightning.utilities"] = utilities
        stubbed.append("pytorch_lightning")

    if not _importable("rich"):
        syntax, tree = _module("rich.syntax"), _module("rich.tree")
        sys.modules["rich"] = _module("rich", syntax=syntax, tree=tree)
        sys.modules["rich.syntax"] = syntax
        sys.modules["rich.tree"] = tree
        stubbed.append("rich")

    if not _importable("torchvision"):
        class StochasticDepth(nn.Module):
            """torchvision.ops.StochasticDepth; only p == 0 (the identity) is supported."""

            def __init__(self, p, mode):
                super().__init__()
                self.p, self.mode = p, mode

            def forward(self, x):
                assert self.p == 0.0 or not self.training, "stub StochasticDepth: p must be 0"
                return x

        ops = _module("torchvision.ops", StochasticDepth=StochasticDepth)
        sys.modules["torchvision"] = _module("torchvision", ops=ops)
        sys.modules["torchvision.ops"] = ops
        stubbed.append("torchvision")

    return stubbed


# ----------------------------------------------------------------------------------------------
# source checks


def git_blob_id(path):
    data = open(path, "rb").read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def imported_sources(root):
    """Git blob ids of every module file under `root` that is loaded now."""
    root = os.path.realpath(root)
    out = {}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not f:
            continue
        f = os.path.realpath(f)
        if f.startswith(root + os.sep):
            out[os.path.relpath(f, root)] = git_blob_id(f)
    return dict(sorted(out.items()))


def check_sources(blobs, pinned, what, allow):
    bad = [p for p, b in pinned.items() if p in blobs and blobs[p] != b]
    missing = [p for p in pinned if p not in blobs]
    if bad:
        msg = f"{what}: these files differ from the pinned commit: {bad}"
        if not allow:
            sys.exit(msg + " (use --allow-other-sources to go on)")
        print("WARNING:", msg)
    return missing


# ----------------------------------------------------------------------------------------------
# helpers


def text_tokens(n, vocab_size, seed):
    data = TEXT.encode("utf-8")
    start = (seed * 7919) % len(data)
    toks = [data[(start + i) % len(data)] for i in range(n)]
    if vocab_size < 256:
        toks = [t % vocab_size for t in toks]
    assert all(0 <= t < vocab_size for t in toks)
    return toks


def perturb_(model, seed):
    """Perturb every parameter and buffer (each storage once), in place, deterministically."""
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)

    def randn(t):
        return torch.randn(t.shape, generator=g, dtype=torch.float32).to(t.dtype)

    layernorm_weights = set()
    for name, m in model.named_modules():
        if isinstance(m, nn.LayerNorm) and m.weight is not None:
            layernorm_weights.add(id(m.weight))

    seen = set()
    log = []
    with torch.no_grad():
        for key, p in model.state_dict(keep_vars=True).items():
            if id(p) in seen or (p.numel() and p.data_ptr() in seen):
                continue
            seen.add(id(p))
            if p.numel():
                seen.add(p.data_ptr())
            if not p.is_floating_point():
                continue
            leaf = key.rsplit(".", 1)[-1]
            if id(p) in layernorm_weights:
                p.copy_(1.0 + 0.2 * randn(p)); how = "1+0.2n"
            elif key.endswith("pos_emb.z"):
                p.add_(0.2 * randn(p)); how = "+0.2n"
            elif key.endswith("pos_emb.t"):
                p.add_(0.05 * randn(p)); how = "+0.05n"
            elif key.endswith("modulation.deltas"):
                p.mul_(1.0 + 0.3 * randn(p)); how = "x(1+0.3n)"
            elif leaf == "freq":
                p.mul_(1.0 + 0.1 * randn(p)); how = "x(1+0.1n)"
            elif leaf == "log_dt":
                p.add_(0.3 * randn(p)).clamp_(math.log(1e-3), math.log(1e-1)); how = "+0.3n clamp"
            elif leaf in ("log_w_real", "log_A_real"):
                p.add_(0.2 * randn(p)); how = "+0.2n"
            elif leaf in ("w_imag", "A_imag"):
                p.mul_(1.0 + 0.05 * randn(p)).add_(0.1 * randn(p)); how = "x(1+0.05n)+0.1n"
            elif key.endswith("word_embeddings.weight"):
                p.add_(0.3 * randn(p)); how = "+0.3n"
            elif ".implicit_filter." in key:
                p.add_(0.3 * randn(p)); how = "+0.3n"
            else:
                p.add_(0.1 * randn(p)); how = "+0.1n"
            log.append((key, how))
    return log


def state_dict_for_file(model):
    return {k: v.detach().clone().contiguous().float() for k, v in model.state_dict().items()}


def lm_logits(model, toks):
    import torch
    x = torch.tensor([toks], dtype=torch.long)
    out = model(x)
    logits = out[0].logits if isinstance(out, tuple) else out.logits
    return logits[0]


def chunked_loss(model, tokens, n):
    """Mean cross entropy (nats) with the chunk semantics described in the header."""
    import torch
    preds = len(tokens) - 1
    total = 0.0
    count = 0
    max_abs = 0.0
    model.eval()
    with torch.no_grad():
        k = 0
        while k * n < preds:
            start = k * n
            w = min(n, preds - start)
            logits = lm_logits(model, tokens[start:start + w])  # [w, V] float32
            assert logits.shape[0] == w
            max_abs = max(max_abs, logits.abs().max().item())
            lp = torch.log_softmax(logits.double(), dim=-1)
            tgt = torch.tensor(tokens[start + 1:start + w + 1], dtype=torch.long)
            total += float(-lp.gather(1, tgt[:, None]).sum().item())
            count += w
            k += 1
    assert count == preds
    return total / preds, max_abs


def first_chunk_last_logits(model, tokens, n):
    import torch
    model.eval()
    with torch.no_grad():
        logits = lm_logits(model, tokens[:n])
    return [float(v) for v in logits[-1].tolist()]


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def save_safetensors(tensors, path, metadata):
    from safetensors.torch import save_file
    save_file(tensors, path, metadata=metadata)
    os.chmod(path, 0o644)  # save_file creates 0600


# ----------------------------------------------------------------------------------------------
# safari LM fixtures

HYENA_DEFAULTS = dict(
    # HyenaOperator
    num_heads=1, inner_factor=1, num_blocks=1, fused_bias_fc=False, outer_mixing=False,
    dropout=0.0, filter_dropout=0.0, filter_cls="hyena-filter", post_order_ffn=False,
    jit_filter=False, activation="id", return_state=False,
    # HyenaFilter (filter_args)
    fused_fft_conv=False, lr=1e-3, lr_pos_emb=1e-5, w=1, wd=0.0, bias=True, num_inner_mlps=2,
    normalized=False,
    # ExponentialModulation (HyenaFilter **kwargs)
    fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2, modulation_lr=0.0, modulate=True,
    shift=0.0,
)


def hyena_layer(**kw):
    layer = {"_name_": "hyena"}
    layer.update(HYENA_DEFAULTS)
    layer.update(kw)
    return layer


def lm_config(**kw):
    cfg = {"_name_": "lm_simple", "resid_dropout": 0.0, "embed_dropout": 0.1,
           "pad_vocab_size_multiple": 1}
    cfg.update(kw)
    return cfg


def fixture_specs():
    return {
        "safari-hyena-o2": dict(
            seed=1002, nested=False,
            model=lm_config(
                d_model=16, n_layer=2, d_inner=64, vocab_size=256, layer_norm_epsilon=1e-5,
                layer=hyena_layer(l_max=64, order=2, filter_order=16, emb_dim=5,
                                  short_filter_order=3, w=10))),
        "safari-hyena-o3": dict(
            seed=1003, nested=True,
            model=lm_config(
                d_model=24, n_layer=2, d_inner=48, vocab_size=256, layer_norm_epsilon=1e-6,
                layer=hyena_layer(l_max=64, order=3, filter_order=8, emb_dim=3, num_inner_mlps=1,
                                  lr_pos_emb=0.0, shift=0.1, post_order_ffn=True, w=14,
                                  modulate=True, short_filter_order=3))),
        "safari-hyena-o4": dict(
            seed=1004, nested=False,
            model=lm_config(
                d_model=16, n_layer=1, d_inner=32, vocab_size=250, pad_vocab_size_multiple=8,
                layer_norm_epsilon=1e-5,
                layer=hyena_layer(l_max=48, order=4, filter_order=8, emb_dim=7,
                                  short_filter_order=4, outer_mixing=True, normalized=True,
                                  w=1))),
        "safari-s4d": dict(
            seed=1005, nested=False, eval_length=64,
            model=lm_config(
                d_model=16, n_layer=2, d_inner=64, vocab_size=256, layer_norm_epsilon=1e-5,
                layer={"_name_": "s4d", "d_state": 16, "channels": 1, "bidirectional": False,
                       "activation": "gelu", "postact": None, "dropout": 0.0,
                       "transposed": False, "return_state": False, "n_ssm": 2, "lr": 0.001,
                       "dt_min": 0.001, "dt_max": 0.1, "scaling": "inverse"})),
    }


def import_safari(safari_dir, allow):
    safari_dir = os.path.realpath(safari_dir)
    if not os.path.isfile(os.path.join(safari_dir, "src/models/sequence/hyena.py")):
        sys.exit(f"--safari {safari_dir}: no src/models/sequence/hyena.py there")
    stubbed = install_stubs()
    sys.path.insert(0, safari_dir)
    import src.utils.registry as registry  # noqa: E402  (safari's)
    from src.utils.config import instantiate  # noqa: E402  (safari's)
    import src.models.sequence.hyena as hyena  # noqa: E402
    import src.models.sequence.simple_lm  # noqa: F401,E402
    import src.models.sequence.ssm.s4d  # noqa: F401,E402
    for m in (registry, hyena):
        assert os.path.realpath(m.__file__).startswith(safari_dir + os.sep), m.__file__
    blobs = imported_sources(safari_dir)
    missing = check_sources(blobs, SAFARI_BLOBS, "safari", allow)
    assert not missing, f"not imported from {safari_dir}: {missing}"
    return types.SimpleNamespace(registry=registry, instantiate=instantiate, hyena=hyena,
                                 stubbed=stubbed, blobs=blobs)


def build_model(sf, model_cfg, seed):
    import torch
    torch.manual_seed(seed)
    # safari's own instantiate + registry: "lm_simple" -> SimpleLMHeadModel, layer "_name_"
    # -> registry.layer (inside create_mixer_cls)
    return sf.instantiate(sf.registry.model, copy.deepcopy(model_cfg))


def hyena_mixers(model, sf):
    return [m for m in model.modules() if isinstance(m, sf.hyena.HyenaOperator)]


def make_lm_fixture(sf, model_cfg, out_dir, seed, n_tokens=None, eval_length=None,
                    full_config=None, torch_version=None):
    import torch
    from safetensors.torch import load_file

    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(out_dir))
    model = build_model(sf, model_cfg, seed)
    model.eval()
    log = perturb_(model, seed + 1)

    layer = model_cfg.get("layer") or {}
    if eval_length is None:
        eval_length = int(layer["l_max"]) if layer.get("_name_") == "hyena" else 64
    n = eval_length
    if n_tokens is None:
        n_tokens = 2 * n + n // 2 + 1
    tokens = text_tokens(n_tokens, int(model_cfg["vocab_size"]), seed)

    loss, max_abs = chunked_loss(model, tokens, n)
    loss2, max_abs2 = chunked_loss(model, tokens, n)
    logits_last = first_chunk_last_logits(model, tokens, n)
    logits_last2 = first_chunk_last_logits(model, tokens, n)
    assert loss == loss2 and max_abs == max_abs2 and logits_last == logits_last2, \
        "second forward pass differs"
    assert math.isfinite(loss) and loss < 50, f"loss not sane: {loss}"

    expected = {
        "tokens": tokens,
        "eval_length": n,
        "mean_loss_nats": loss,
        "last_position_logits": logits_last,
        "num_predictions": len(tokens) - 1,
        "max_abs_logit": max_abs,
        "seed": seed,
        "safari_commit": SAFARI_COMMIT,
        "torch": torch_version or torch.__version__,
    }

    mixers = hyena_mixers(model, sf)
    if mixers:
        # recompute z (and t, deltas) from safari's own formulas: a test that reads them from the
        # file instead of recomputing must see a big difference
        def loss_with(fn):
            m2 = copy.deepcopy(model)
            with torch.no_grad():
                for mix in hyena_mixers(m2, sf):
                    fn(mix.filter_fn)
            return chunked_loss(m2, tokens, n)[0]

        def fresh_pos(ff):
            lr_pos = layer.get("lr_pos_emb", 1e-5)
            return sf.hyena.PositionalEmbedding(ff.emb_dim, ff.seq_len, lr_pos)

        def fresh_deltas(ff):
            kw = {k: layer[k] for k in ("fast_decay_pct", "slow_decay_pct", "target") if k in layer}
            return sf.hyena.ExponentialModulation(ff.d_model, **kw).deltas

        loss_z = loss_with(lambda ff: ff.pos_emb.z.copy_(fresh_pos(ff).z))
        loss_t = loss_with(lambda ff: ff.pos_emb.t.copy_(fresh_pos(ff).t))
        loss_d = loss_with(lambda ff: ff.modulation.deltas.copy_(fresh_deltas(ff)))
        expected["loss_if_z_recomputed"] = loss_z
        expected["loss_delta_if_z_recomputed"] = loss_z - loss
        expected["loss_if_t_recomputed"] = loss_t
        expected["loss_if_deltas_recomputed"] = loss_d
        print(f"[{name}] |loss(z recomputed) - loss| = {abs(loss_z - loss):.6g} nats"
              f" (t: {abs(loss_t - loss):.6g}, deltas: {abs(loss_d - loss):.6g})")
        assert abs(loss_z - loss) > 1e-3, "recomputing z barely changes the loss"

    # write the model exactly as PyTorch names it
    sd = state_dict_for_file(model)
    st_path = os.path.join(out_dir, "model.safetensors")
    save_safetensors(sd, st_path, {"format": "pt", "safari_commit": SAFARI_COMMIT})

    # round trip: a freshly built model (other seed) loading the file gives the same numbers
    fresh = build_model(sf, model_cfg, seed + 12345)
    fresh.load_state_dict(load_file(st_path), strict=True)
    fresh.eval()
    loss3, _ = chunked_loss(fresh, tokens, n)
    assert loss3 == loss, f"round trip through model.safetensors changes the loss {loss3} {loss}"
    assert first_chunk_last_logits(fresh, tokens, n) == logits_last

    expected["source_blobs"] = sf.blobs
    expected["stubbed_packages"] = sf.stubbed
    write_json(os.path.join(out_dir, "config.json"),
               full_config if full_config is not None else model_cfg)
    write_json(os.path.join(out_dir, "expected.json"), expected)

    print(f"[{name}] loss {loss:.6f} nats over {len(tokens) - 1} predictions (N={n}), "
          f"max |logit| {max_abs:.4f}, second pass identical, {len(sd)} tensors, "
          f"round trip identical")
    return model, log


# ----------------------------------------------------------------------------------------------
# s4 block fixture (child process: only the s4 tree on sys.path)


def make_s4_block_fixture(s4_dir, out_dir, seed, allow, torch_version=None):
    import torch
    from safetensors.torch import load_file

    s4_dir = os.path.realpath(s4_dir)
    if "src" in sys.modules:
        raise RuntimeError("s4 fixture must be made in a process without safari's `src`")
    if not os.path.isfile(os.path.join(s4_dir, "models/s4/s4d.py")):
        sys.exit(f"--s4 {s4_dir}: no models/s4/s4d.py there")
    sys.path.insert(0, s4_dir)
    s4d = importlib.import_module("models.s4.s4d")
    assert os.path.realpath(s4d.__file__).startswith(s4_dir + os.sep)
    blobs = imported_sources(s4_dir)
    check_sources(blobs, S4_BLOBS, "s4", allow)

    os.makedirs(out_dir, exist_ok=True)
    kwargs = {"d_model": 12, "d_state": 16, "dropout": 0.0, "transposed": False,
              "dt_min": 0.001, "dt_max": 0.1, "lr": None}
    torch.manual_seed(seed)
    block = s4d.S4D(**kwargs)
    block.eval()
    perturb_(block, seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(2, 40, 12, generator=g)  # (B, L, H) because transposed=False
    with torch.no_grad():
        y, state = block(x)
        y2, _ = block(x)
    assert state is None and y.shape == x.shape
    assert torch.equal(y, y2), "second forward pass differs"
    assert torch.isfinite(y).all()

    sd = state_dict_for_file(block)
    meta = {"format": "pt", "s4_commit": S4_COMMIT}
    save_safetensors(sd, os.path.join(out_dir, "block.safetensors"), meta)
    save_safetensors({"input": x.contiguous(), "output": y.detach().clone().contiguous()},
                     os.path.join(out_dir, "io.safetensors"), meta)

    torch.manual_seed(seed + 12345)
    fresh = s4d.S4D(**kwargs)
    fresh.load_state_dict(load_file(os.path.join(out_dir, "block.safetensors")), strict=True)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x)[0], y), "round trip through block.safetensors differs"

    write_json(os.path.join(out_dir, "config.json"), kwargs)
    write_json(os.path.join(out_dir, "expected.json"), {
        "input_shape": list(x.shape), "layout": "(B, L, H)",
        "max_abs_output": float(y.abs().max()), "mean_output": float(y.double().mean()),
        "seed": seed, "s4_commit": S4_COMMIT, "torch": torch_version or torch.__version__,
        "source_blobs": blobs,
    })
    print(f"[s4-s4d-block] output {tuple(y.shape)} max |y| {y.abs().max().item():.4f}, "
          f"second pass identical, round trip identical; keys: "
          + ", ".join(f"{k}{list(v.shape)}" for k, v in sd.items()))


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--safari", help="extracted HazyResearch/safari tree")
    ap.add_argument("--s4", help="extracted state-spaces/s4 tree")
    ap.add_argument("--outdir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where the fixture directories go (default: this script's directory)")
    ap.add_argument("--only", choices=FIXTURES, help="make only this fixture")
    ap.add_argument("--config", help="a safari model config JSON (model section or {'model': ...})")
    ap.add_argument("--out", help="with --config: the output directory")
    ap.add_argument("--seed", type=int, default=0, help="with --config: seed")
    ap.add_argument("--tokens", type=int, help="with --config: number of tokens")
    ap.add_argument("--eval-length", type=int,
                    help="with --config: chunk length N (default: layer l_max for hyena, else 64)")
    ap.add_argument("--allow-other-sources", action="store_true",
                    help="go on when safari/s4 files differ from the pinned commits")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}")

    if args.config:
        if not (args.safari and args.out):
            ap.error("--config needs --safari and --out")
        with open(args.config) as f:
            full = json.load(f)
        model_cfg = full["model"] if "model" in full and isinstance(full["model"], dict) else full
        sf = import_safari(args.safari, args.allow_other_sources)
        print("stubbed:", sf.stubbed)
        make_lm_fixture(sf, model_cfg, args.out, args.seed, n_tokens=args.tokens,
                        eval_length=args.eval_length, full_config=full)
        return

    names = [args.only] if args.only else FIXTURES
    lm_names = [n for n in names if n != "s4-s4d-block"]
    if lm_names:
        if not args.safari:
            ap.error("--safari is needed")
        sf = import_safari(args.safari, args.allow_other_sources)
        print("stubbed:", sf.stubbed)
        specs = fixture_specs()
        for name in lm_names:
            spec = specs[name]
            full = None
            if spec["nested"]:
                full = {
                    "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1,
                                "gradient_clip_val": 1.0},
                    "optimizer": {"_name_": "adamw", "lr": 0.001, "weight_decay": 0.1,
                                  "betas": [0.9, 0.98]},
                    "model": spec["model"],
                    "train": {"seed": spec["seed"], "global_batch_size": 8},
                }
            make_lm_fixture(sf, spec["model"], os.path.join(args.outdir, name), spec["seed"],
                            eval_length=spec.get("eval_length"), full_config=full)

    if "s4-s4d-block" in names:
        if not args.s4:
            ap.error("--s4 is needed")
        out = os.path.join(args.outdir, "s4-s4d-block")
        if "src" in sys.modules:  # safari's `src` is loaded: use a clean child process
            cmd = [sys.executable, os.path.abspath(__file__), "--s4", args.s4,
                   "--outdir", args.outdir, "--only", "s4-s4d-block"]
            if args.allow_other_sources:
                cmd.append("--allow-other-sources")
            subprocess.run(cmd, check=True)
        else:
            make_s4_block_fixture(args.s4, out, 1006, args.allow_other_sources)


if __name__ == "__main__":
    main()
