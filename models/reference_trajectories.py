#!/usr/bin/python3
"""PyTorch reference loss trajectories: train a bundled/unseen model exactly as DeepSpeed would.

    /usr/bin/python3 models/reference_trajectories.py MODEL_DIR CONFIG.json --steps 30 -o OUT.json
    /usr/bin/python3 models/reference_trajectories.py --check METRICS.jsonl REF.json [--rtol 1e-4]
    /usr/bin/python3 models/reference_trajectories.py --regenerate     # models/*/reference/trajectories
    /opt/torchenv/bin/python models/reference_trajectories.py --regenerate --only lion,lion_wd,...  # torch >= 2

MODEL_DIR is `models/<name>` (mlp, cnn, gpt) or a directory written by export_unseen.py (mlp_mix,
cnn_s2g, gpt_3l): `<name>/<name>.onnx` plus `<name>/data/<input>.npy`.  The PyTorch module is
re-created from export_models.py / export_unseen.py (chosen by the directory name, or by an optional
`<dir>/module.json` = {"class": "GPT", "kwargs": {...}}) and every ONNX initializer is loaded into its
state_dict by name, so the starting weights are bit-identical to what dscompile trains.

DeepSpeed semantics reproduced (fp32, one process):
  * data: no shuffling; optimizer step k (0-based) consumes samples [j*B, (j+1)*B) with
    j = k mod floor(N/B), B = train_batch_size (drop_last: a partial last batch is never used);
    micro-batches are consecutive slices of train_micro_batch_size_per_gpu samples.
  * gradient accumulation: each micro-batch loss is divided by gradient_accumulation_steps before
    backward; the reported loss of a step is the mean of the (unscaled) micro-batch losses.
  * model.train() (BatchNorm uses the micro-batch statistics; running stats evolve, unused).
  * gradient clipping (`gradient_clipping`, default 1.0, 0 = off) on the accumulated gradient,
    coef = max_norm / (total_norm + 1e-6) applied when < 1; grad_norm is the pre-clip global L2 norm.
  * optimizer: "Adam"/"AdamW" (DeepSpeed lower-cases them) -> FusedAdam semantics: AdamW-style
    decoupled weight decay unless type is "Adam" with adam_w_mode:false (then L2 in the gradient);
    defaults lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0 (FusedAdam's; with torch_adam:true
    the torch class defaults apply, i.e. torch AdamW's weight_decay 1e-2).  "Lion" -> DeepSpeed's
    FusedLion, reproduced by FusedLionReference below (torch has no Lion); "Adagrad" ->
    torch.optim.Adagrad (what DeepSpeed builds without optimizer offload); "Lamb" -> DeepSpeed's
    FusedLamb (CUDA-only there), reproduced by FusedLambReference below; "Muon" -> DeepSpeed's
    MuonWithAuxAdam (models/muon_reference.py: the engine's use_muon rule and two groups, float32
    Newton-Schulz; a "dscompile" group's use_muon overrides the rule).  Any other type is
    `getattr(torch.optim, type)` with the params as kwargs (e.g. "SGD": lr required; "NAdam" needs
    torch >= 2.0, whose update differs from 1.13's).
  * parameter groups (dscompile's own "dscompile" section, frontend/config/parameter_groups.h):
    torch param groups; a parameter joins the first parameter_groups entry one of whose fnmatch
    patterns matches its name, else with no_decay_bias_norm a weight_decay-0 group when
    p.dim() < 2, else the optimizer's; a group's lr is lr_scale x the scheduled lr.
  * scheduler: WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle; the LR used by optimizer step n
    (1-based) is the schedule value at last_batch_iteration = n - 2 (steps 1 and 2 use the values at
    -1 and 0).  OneCycle with cycle_momentum also writes betas = (momentum, 0.99) into every group of
    an optimizer whose defaults have betas (one_cycle(); "beta1" in the output lists it per step).
    No scheduler -> constant LR.  Other schedulers are refused.

Output JSON: {"model", "config", "steps", "batch": {"train_batch_size",
"train_micro_batch_size_per_gpu", "gradient_accumulation_steps"}, "samples", "steps_per_epoch",
"optimizer": {resolved class + hyper-parameters}, "gradient_clipping", "loss": [...],
"grad_norm": [...], "lr": [...]}; list index i = optimizer step i+1; floats at full precision.
"""

import argparse
import copy
import fnmatch
import json
import math
import os
import re
import sys
import time

import numpy as np
import onnx
import onnx.numpy_helper
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_models as E  # noqa: E402
import export_unseen as U  # noqa: E402
import muon_reference as M  # noqa: E402
import onebit_reference as OB  # noqa: E402
import zoadam_reference as ZO  # noqa: E402
import onebit_lamb_reference as OBL  # noqa: E402

BUNDLED = ("mlp", "cnn", "gpt")
REFERENCE_CONFIGS = ("adam", "adamw_wd", "sgd_momentum", "clip05", "accum4", "warmup")
# The element-wise optimizers (dscompile's OptimStep), each without and with weight decay, on the
# mlp and the gpt; written with torch >= 2 (/opt/torchenv/bin/python): --regenerate --only ...
OPTIMIZER_MODELS = ("mlp", "gpt")
OPTIMIZER_CONFIGS = tuple(n + sfx for n in ("lion", "adagrad", "rmsprop", "adamax", "nadam", "radam", "adadelta",
                                            "lamb", "muon")
                          for sfx in ("", "_wd"))
# Parameter groups (the "dscompile" section): AdamW with the no-decay preset, and with an lr_scale group;
# Lamb with both.
GROUP_MODELS = ("mlp", "gpt")
GROUP_CONFIGS = ("adamw_nodecay", "adamw_groups", "lamb_groups", "muon_groups")
# Muon's two groups under a schedule that writes one lr into both (WarmupLR) and one that scales each
# group's own (WarmupCosineLR).
SCHEDULE_MODELS = ("mlp", "gpt")
SCHEDULE_CONFIGS = ("muon_warmup", "muon_cosine")
# 1-bit Adam (models/onebit_reference.py) on 1 and 2 ranks: after the freeze each rank's momentum
# is compressed, so the trajectory depends on the world size; written to models/<model>/reference/onebit/
# as <stem>_w<world>.json, and <stem>_w<world>_fp16.json under DeepSpeed's fp16/bf16 wrapper
# (FP16_Optimizer's flat group, compressed as one buffer, and its constructor's step() call; fp32
# arithmetic).
ONEBIT_MODELS = ("mlp", "gpt")
# A 4th element k: saved after step k and resumed (the errors reset), as <stem>_w<world>_resume<k>.json.
ONEBIT_JOBS = (("onebitadam", 1, False), ("onebitadam", 2, False), ("onebitadam_wd", 1, False),
               ("onebitadam_wd", 2, False), ("onebitadam_wd", 1, True), ("onebitadam_wd", 2, True),
               ("onebitadam", 2, False, 15),
               # 0/1 Adam (models/zoadam_reference.py): every phase (variance steps, compressed gradients,
               # local steps, synchronisations) within the 30 steps.
               ("zoadam", 1, False), ("zoadam", 2, False), ("zoadam_wd", 1, False), ("zoadam_wd", 2, False),
               ("zoadam", 2, False, 19), ("zoadam_wd", 1, True), ("zoadam_wd", 2, True),
               # ... with the "dscompile" parameter groups (the no-decay preset, a bias group of its own lr).
               ("zoadam_groups", 1, False), ("zoadam_groups", 2, False))
# 1-bit Lamb (models/onebit_lamb_reference.py): DeepSpeed compresses every momentum as one buffer in
# every precision; its fp16/bf16 wrapper (FP16_UnfusedOptimizer) adds the constructor's call.
ONEBIT_JOBS += (("onebitlamb", 1, False), ("onebitlamb", 2, False), ("onebitlamb_wd", 1, False),
                ("onebitlamb_wd", 2, False), ("onebitlamb", 2, False, 15), ("onebitlamb", 2, False, 5),
                ("onebitlamb_wd", 1, True), ("onebitlamb_wd", 2, True),
                ("onebitlamb_groups", 1, False), ("onebitlamb_groups", 2, False))
# Overflow steps under the fp16 wrapper (dsrun --debug-inject-overflow in the tests): the wrapper
# skips them before calling the optimizer; as <stem>_w<world>_fp16_skip<a>_<b>.json, mlp only.
ONEBIT_SKIP_JOBS = (("onebitadam_wd", 2, (4, 12)), ("zoadam_wd", 2, (4, 15)), ("onebitlamb_wd", 2, (4, 12)))
# OneCycle's lr and momentum cycle (betas = (momentum, 0.99) for those with betas; Muon's
# MuonWithAuxAdam has none in its defaults, so its lr cycles only); torch >= 2. NAdam's mu_product
# multiplies every step's cycled beta1 (without weight decay, with L2 and with decoupled decay).
ONE_CYCLE_MODELS = ("mlp", "gpt")
ONE_CYCLE_CONFIGS = tuple(n + "_onecycle" for n in ("adam", "lion", "adamax", "radam", "lamb", "muon", "nadam",
                                                    "nadam_l2", "nadam_wd"))
REFERENCE_STEPS = 30


class RefError(Exception):
    """A config or model this script cannot (or DeepSpeed would not) handle."""


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------

def _strip_json_comments(text):
    """Remove // and /* */ comments outside strings (the project's configs may carry them)."""
    out, i, n, in_str = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise RefError("unterminated /* comment")
            i = j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def load_config(path):
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(_strip_json_comments(text))
    except json.JSONDecodeError as e:
        raise RefError("%s: invalid JSON: %s" % (path, e))


def resolve_batch(cfg, world_size=1):
    """DeepSpeed's _set_batch_related_parameters + _batch_assertion (config-reference.md §3)."""
    tb = cfg.get("train_batch_size")
    mb = cfg.get("train_micro_batch_size_per_gpu")
    gas = cfg.get("gradient_accumulation_steps")
    w = world_size
    if tb is not None and mb is not None and gas is not None:
        pass
    elif tb is not None and mb is not None:
        gas = (tb // mb) // w
    elif tb is not None and gas is not None:
        mb = (tb // w) // gas
    elif mb is not None and gas is not None:
        tb = mb * gas * w
    elif tb is not None:
        gas, mb = 1, tb // w
    elif mb is not None:
        tb, gas = mb * w, 1
    else:
        raise RefError("Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided")
    for k, v in (("train_batch_size", tb), ("train_micro_batch_size_per_gpu", mb),
                 ("gradient_accumulation_steps", gas)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise RefError("%s must be an integer here, got %r" % (k, v))
    if tb <= 0:
        raise RefError("Train batch size: %d has to be greater than 0" % tb)
    if mb <= 0:
        raise RefError("Micro batch size per gpu: %d has to be greater than 0" % mb)
    if gas <= 0:
        raise RefError("Gradient accumulation steps: %d has to be greater than 0" % gas)
    if tb != mb * gas * w:
        raise RefError("Check batch related parameters. train_batch_size is not equal to "
                       "micro_batch_per_gpu * gradient_acc_step * world_size %d != %d * %d * %d"
                       % (tb, mb, gas, w))
    return tb, mb, gas


def check_precision(cfg):
    for sec in ("fp16", "bf16", "bfloat16", "amp"):
        s = cfg.get(sec)
        if isinstance(s, dict) and s.get("enabled", False):
            raise RefError("%s.enabled: the reference trains in fp32 only" % sec)


ADAM_KEYS = {"lr", "betas", "eps", "weight_decay", "bias_correction", "amsgrad", "adam_w_mode",
             "torch_adam", "set_grad_none"}


class FusedLionReference(torch.optim.Optimizer):
    """DeepSpeed's FusedLion (deepspeed/ops/lion/fused_lion.py), its CUDA kernel
    (csrc/lion/multi_tensor_lion.cu, LionFunctor) in float32 torch ops: lr, betas and weight_decay
    reach the kernel as C floats and every factor is float arithmetic;
        c = beta1*m + (1-beta1)*g;  p = p*(1 - lr*wd) + (c > 0 ? -lr : lr);  m = beta2*m + (1-beta2)*g
    (c == 0 moves the parameter by +lr, as the kernel's comparison does)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, set_grad_none=True):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))
        self.set_grad_none = set_grad_none

    @torch.no_grad()
    def step(self, closure=None):
        f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
        for group in self.param_groups:
            b1, b2 = f(group["betas"][0]), f(group["betas"][1])
            lr, wd, one = f(group["lr"]), f(group["weight_decay"]), f(1.0)
            after_decay = one - lr * wd
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                state["step"] += 1
                m, g = state["exp_avg"], p.grad
                c = b1 * m + (one - b1) * g
                p.copy_(p * after_decay + torch.where(c > 0, -lr, lr))
                m.copy_(b2 * m + (one - b2) * g)


def fused_lamb_step(p, g, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, eps_inside_sqrt=False,
                    bias_correction=True, max_coeff=10.0, min_coeff=0.01, grad_scale=1.0):
    """One step of DeepSpeed's FusedLamb on one tensor, in place on p, m, v (float32), as its CUDA
    kernel computes it (csrc/lamb/fused_lamb_cuda_kernel.cu at edaa72212; every hyper-parameter
    reaches it as a C float):
      part 1 (:223-235): g' = g * grad_scale (DeepSpeed divides by its `scale`, 1 from the engine);
        m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'*g'; denom = sqrt(v + eps) with eps_inside_sqrt
        (eps_mode 0) else sqrt(v) + eps; update = m/denom + weight_decay*p; sums of p^2, update^2
      part 3 (:288-316): coeff = ||p||/||update|| clamped to max_coeff, then to min_coeff, and 1
        when either norm is 0; p -= step_size*coeff*update
      host (:363-370): step_size = lr*sqrt(bc2)/bc1, bc_i = float(1 - beta_i**step) (the pow in
        double), or lr without bias_correction; m and v themselves are never bias-corrected.
    The sums of squares are taken in double here (float per thread in DeepSpeed).
    Returns (sum p^2, sum update^2, coeff) as Python floats."""
    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    b1, b2, feps, decay, one = f(betas[0]), f(betas[1]), f(eps), f(weight_decay), f(1.0)
    sg = g * f(grad_scale)
    m.copy_(b1 * m + (one - b1) * sg)
    v.copy_(b2 * v + (one - b2) * sg * sg)
    denom = torch.sqrt(v + feps) if eps_inside_sqrt else torch.sqrt(v) + feps
    update = m / denom + decay * p
    w2 = torch.sum(p.double() ** 2).float()
    u2 = torch.sum(update.double() ** 2).float()
    w, u = torch.sqrt(w2), torch.sqrt(u2)
    coeff = f(1.0)
    if float(w) != 0.0 and float(u) != 0.0:
        coeff = w / u
        if coeff > f(max_coeff):
            coeff = f(max_coeff)
        if coeff < f(min_coeff):
            coeff = f(min_coeff)
    if bias_correction:
        b1f, b2f = float(np.float32(betas[0])), float(np.float32(betas[1]))
        bc1, bc2 = f(1.0 - b1f ** step), f(1.0 - b2f ** step)
        step_size = f(lr) * torch.sqrt(bc2) / bc1
    else:
        step_size = f(lr)
    p.copy_(p - (step_size * coeff) * update)
    return float(w2), float(u2), float(coeff)


class FusedLambReference(torch.optim.Optimizer):
    """DeepSpeed's FusedLamb (deepspeed/ops/lamb/fused_lamb.py): per parameter, fused_lamb_step with
    the group's hyper-parameters; state exp_avg and exp_avg_sq. The engine calls step() with no
    grads or scale (scale 1) and refuses max_grad_norm (fused_lamb.py:133's clip never runs)."""

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, eps_inside_sqrt=False,
                 weight_decay=0.0, max_coeff=10.0, min_coeff=0.01, amsgrad=False):
        if amsgrad:
            raise RefError("optimizer.params.amsgrad: FusedLamb does not support the AMSGrad variant")
        super().__init__(params, dict(lr=lr, bias_correction=bias_correction, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, max_coeff=max_coeff, min_coeff=min_coeff))
        self.eps_inside_sqrt = eps_inside_sqrt

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                fused_lamb_step(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"], group["lr"],
                                group["betas"], group["eps"], group["weight_decay"], self.eps_inside_sqrt,
                                group["bias_correction"], group["max_coeff"], group["min_coeff"])


LAMB_KEYS = {"lr", "bias_correction", "betas", "eps", "eps_inside_sqrt", "weight_decay", "max_coeff", "min_coeff",
             "amsgrad"}


def param_groups(cfg, module):
    """The torch param groups for the config's "dscompile" section (a flat parameter list when it
    has none): [{"params", "group", "lr_scale"[, "weight_decay"]}], first match wins."""
    sec = cfg.get("dscompile") or {}
    unknown = set(sec) - {"no_decay_bias_norm", "parameter_groups"}
    if unknown:
        raise RefError("dscompile: unknown key(s): %s" % sorted(unknown))
    specs = sec.get("parameter_groups", [])
    preset = bool(sec.get("no_decay_bias_norm", False))
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    muon = str((cfg.get("optimizer") or {}).get("type", "")).lower() == "muon"
    if not specs and not preset and not muon:
        return [p for _, p in named]
    groups = []
    for i, g in enumerate(specs):
        unknown = set(g) - {"params", "weight_decay", "lr_scale", "use_muon"}
        if unknown:
            raise RefError("dscompile.parameter_groups[%d]: unknown key(s): %s" % (i, sorted(unknown)))
        d = {"params": [], "group": "parameter_groups[%d]" % i, "lr_scale": float(g.get("lr_scale", 1.0))}
        if "weight_decay" in g:
            d["weight_decay"] = float(g["weight_decay"])
        if "use_muon" in g:
            if not muon:
                raise RefError("dscompile.parameter_groups[%d].use_muon: only with the muon optimizer" % i)
            d["use_muon"] = bool(g["use_muon"])
        groups.append(d)
    no_decay = {"params": [], "group": "no_decay_bias_norm", "lr_scale": 1.0, "weight_decay": 0.0}
    default = {"params": [], "group": "default", "lr_scale": 1.0}
    matched = set()
    for name, p in named:
        target = None
        for i, g in enumerate(specs):
            hits = [pat for pat in g["params"] if fnmatch.fnmatchcase(name, pat)]
            matched.update((i, pat) for pat in hits)
            if hits and target is None:
                target = groups[i]
        if target is None:
            target = no_decay if preset and p.dim() < 2 else default
        target["params"].append(p)
        target.setdefault("names", []).append(name)
    for i, g in enumerate(specs):
        for pat in g["params"]:
            if (i, pat) not in matched:
                raise RefError("dscompile.parameter_groups[%d]: pattern %r matches no parameter" % (i, pat))
    return [g for g in groups + [no_decay, default] if g["params"]]


def make_optimizer(cfg, params):
    """(torch optimizer, description dict) with DeepSpeed's construction (reference §8.2)."""
    opt = cfg.get("optimizer")
    if opt is None or opt.get("type") is None:
        raise RefError("optimizer.type: a config optimizer is required (no client optimizer here)")
    typ = opt["type"]
    kw = dict(opt.get("params") or {})
    if "max_grad_norm" in kw:
        raise RefError("optimizer.params.max_grad_norm: 'max_grad_norm' is not supported as an "
                       "optimizer parameter, please switch to using the deepspeed parameter "
                       "'gradient_clipping'")
    name = typ.lower() if typ.lower() in ("adam", "adamw") else typ
    if name.lower() == "muon":
        return make_muon(kw, params)
    if name in ("adam", "adamw"):
        unknown = set(kw) - ADAM_KEYS
        if unknown:
            raise RefError("optimizer.params: unknown key(s) for %s: %s" % (typ, sorted(unknown)))
        torch_adam = bool(kw.pop("torch_adam", False))
        adam_w_mode = bool(kw.pop("adam_w_mode", True))
        kw.pop("set_grad_none", None)
        eff_w = (name == "adamw") or adam_w_mode
        if not kw.pop("bias_correction", True):
            raise RefError("optimizer.params.bias_correction=false is not supported by the reference")
        if kw.pop("amsgrad", False):
            raise RefError("optimizer.params.amsgrad: FusedAdam does not support amsgrad")
        if "betas" in kw:
            kw["betas"] = tuple(float(b) for b in kw["betas"])
        if not torch_adam:
            # FusedAdam defaults (differ from torch AdamW's weight_decay=1e-2).
            kw.setdefault("lr", 1e-3)
            kw.setdefault("betas", (0.9, 0.999))
            kw.setdefault("eps", 1e-8)
            kw.setdefault("weight_decay", 0.0)
        cls = torch.optim.AdamW if eff_w else torch.optim.Adam
        o = cls(params, **kw)
    elif name.lower() == "lion":
        unknown = set(kw) - {"lr", "betas", "weight_decay", "set_grad_none"}
        if unknown:
            raise RefError("optimizer.params: unknown key(s) for FusedLion: %s" % sorted(unknown))
        o = FusedLionReference(params, **kw)
        g = o.param_groups[0]
        return o, {"class": "deepspeed.ops.lion.FusedLion (FusedLionReference)", "lr": g["lr"],
                   "betas": list(g["betas"]), "weight_decay": g["weight_decay"]}
    elif name.lower() == "lamb":
        unknown = set(kw) - LAMB_KEYS
        if unknown:
            raise RefError("optimizer.params: unknown key(s) for FusedLamb: %s" % sorted(unknown))
        o = FusedLambReference(params, **kw)
        g = o.defaults if "group" in o.param_groups[0] else o.param_groups[0]
        return o, {"class": "deepspeed.ops.lamb.FusedLamb (FusedLambReference)", "lr": g["lr"],
                   "betas": list(g["betas"]), "eps": g["eps"], "weight_decay": g["weight_decay"],
                   "bias_correction": g["bias_correction"], "eps_inside_sqrt": o.eps_inside_sqrt,
                   "max_coeff": g["max_coeff"], "min_coeff": g["min_coeff"]}
    else:
        if name.lower() == "adagrad":
            name = "Adagrad"  # DeepSpeed lower-cases it, then builds torch.optim.Adagrad
        if name == "NAdam" and int(torch.__version__.split(".")[0]) < 2:
            raise RefError("optimizer.type: NAdam needs torch >= 2.0 here (1.13 multiplies mu into "
                           "mu_product_next twice); run with /opt/torchenv/bin/python")
        cls = getattr(torch.optim, name, None)
        if cls is None or not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer):
            raise RefError("optimizer.type: %s is not a supported DeepSpeed Optimizer" % typ)
        try:
            o = cls(params, **kw)
        except TypeError as e:
            raise RefError("optimizer.params: %s(%s): %s" % (name, kw, e))
    # With parameter groups, the constructor's values (the "default" group's), not the first group's.
    g = o.defaults if "group" in o.param_groups[0] else o.param_groups[0]
    desc = {"class": "torch.optim." + type(o).__name__}
    internal = {"params", "foreach", "capturable", "maximize", "differentiable", "fused", "group", "lr_scale",
                "names"}
    desc.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()
                 if k not in internal})
    return o, desc


def make_muon(kw, groups):
    """MuonWithAuxAdamReference over the "dscompile" groups, each split by use_muon (its override,
    else DeepSpeed's rule) into the engine's Muon and Adam groups with the optimizer's parameters;
    a "dscompile" group's weight_decay replaces the optimizer's. Each torch group keeps its own
    lr (base_lr) times its lr_scale."""
    if "ns_method" in kw and kw["ns_method"] not in M.NS_METHODS:
        raise RefError("optimizer.params.ns_method: must be one of %s" % sorted(M.NS_METHODS))
    torch_groups = []
    for g in groups:
        for use_muon in (True, False):
            pairs = [(n, p) for n, p in zip(g["names"], g["params"])
                     if g.get("use_muon", M.uses_muon(n, p)) == use_muon]
            if not pairs:
                continue
            if use_muon and any(p.ndim < 2 for _, p in pairs):
                raise RefError("%s: use_muon on a parameter of fewer than 2 dimensions" % g["group"])
            tg = M.engine_group([p for _, p in pairs], use_muon, kw)
            if "weight_decay" in g:
                tg["weight_decay"] = g["weight_decay"]
            tg.update(group=g["group"], lr_scale=g["lr_scale"], names=[n for n, _ in pairs])
            torch_groups.append(tg)
    o = M.MuonWithAuxAdamReference(torch_groups)
    for tg in o.param_groups:
        tg["base_lr"] = tg["lr"]
    muon_g = M.engine_group([], True, kw)
    adam_g = M.engine_group([], False, kw)
    desc = {"class": "deepspeed.runtime.zero.muon.MuonWithAuxAdam (MuonWithAuxAdamReference)",
            "muon_lr": muon_g.get("lr", 0.02), "momentum": muon_g.get("momentum", 0.95),
            "ns_method": muon_g.get("ns_method", "gram"), "adam_lr": adam_g.get("lr", 3e-4),
            "betas": list(adam_g.get("betas", (0.9, 0.95))), "eps": adam_g.get("eps", 1e-10),
            "weight_decay": kw.get("weight_decay", 0), "lr": muon_g.get("lr", 0.02)}
    return o, desc


# --------------------------------------------------------------------------
# LR schedules (reference §9); `it` = last_batch_iteration
# --------------------------------------------------------------------------

def _warmup_steps(p, path):
    n = p.get("warmup_num_steps", 1000)
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise RefError("%s.warmup_num_steps must be a positive integer, got %r" % (path, n))
    return max(2, n)


def _warmup_gamma(it, w, wtype):
    if it >= w:
        return 1.0
    if wtype == "linear":
        return it / w
    return math.log(it + 1) / math.log(w)


def make_schedule(cfg, base_lr):
    """Function it -> lr, or None for a constant LR."""
    sch = cfg.get("scheduler")
    if sch is None or sch.get("type") is None:
        return None
    typ = sch["type"]
    p = sch.get("params")
    if p is None:
        raise RefError("scheduler.params: null (DeepSpeed calls %s(optimizer, **params))" % typ)
    path = "scheduler.params"
    if typ == "WarmupLR":
        allowed = {"warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type",
                   "last_batch_iteration"}
    elif typ == "WarmupDecayLR":
        allowed = {"total_num_steps", "warmup_min_lr", "warmup_max_lr", "warmup_num_steps",
                   "warmup_type", "last_batch_iteration"}
    elif typ == "WarmupCosineLR":
        allowed = {"total_num_steps", "warmup_min_ratio", "warmup_num_steps", "cos_min_ratio",
                   "warmup_type", "last_batch_iteration"}
    elif typ == "OneCycle":
        return one_cycle(p, path)[0]
    else:
        raise RefError("scheduler.type: %r is not supported by the PyTorch reference (supported: "
                       "WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle; the C++ side has its own "
                       "schedule tests)" % typ)
    unknown = set(p) - allowed
    if unknown:
        raise RefError("%s: unknown key(s) for %s: %s" % (path, typ, sorted(unknown)))
    if p.get("last_batch_iteration", -1) != -1:
        raise RefError("%s.last_batch_iteration: only -1 (a fresh run) is supported" % path)
    w = _warmup_steps(p, path)
    wtype = p.get("warmup_type", "log")
    if wtype not in ("log", "linear"):
        wtype = "log"  # DeepSpeed warns and falls back to log
    if typ in ("WarmupLR", "WarmupDecayLR"):
        lo = float(p.get("warmup_min_lr", 0.0))
        default_max = base_lr if typ == "WarmupLR" else 0.001
        hi = p.get("warmup_max_lr")
        hi = float(default_max if hi is None else hi)
        total = None
        if typ == "WarmupDecayLR":
            if "total_num_steps" not in p:
                raise RefError("%s.total_num_steps is required for WarmupDecayLR" % path)
            total = p["total_num_steps"]

        def lr_at(it):
            if it < 0:
                return lo
            if total is not None and it >= w:
                gamma = max(0.0, float(total - it) / float(max(1.0, total - w)))
            else:
                gamma = _warmup_gamma(it, w, wtype)
            return lo + (hi - lo) * gamma
        return lr_at
    # WarmupCosineLR
    if "total_num_steps" not in p:
        raise RefError("%s.total_num_steps is required for WarmupCosineLR" % path)
    total = p["total_num_steps"]
    wmr = float(p.get("warmup_min_ratio", 0.0))
    cmr = float(p.get("cos_min_ratio", 0.0001))

    def lr_at(it):
        if it < 0:
            return 0.0
        if it < w:
            r = (it / w) if wtype == "linear" else math.log(it + 1) / math.log(w)
            ratio = wmr + r * (1.0 - wmr)
        else:
            prog = min(1.0, (it - w + 1) / max(1, total - w))
            ratio = max(0.0, cmr + (1.0 - cmr) * (1.0 + math.cos(math.pi * prog)) / 2.0)
        return base_lr * ratio
    return lr_at


ONE_CYCLE_KEYS = {"cycle_min_lr", "cycle_max_lr", "decay_lr_rate", "cycle_first_step_size", "cycle_second_step_size",
                  "cycle_first_stair_count", "cycle_second_stair_count", "decay_step_size", "cycle_momentum",
                  "cycle_min_mom", "cycle_max_mom", "decay_mom_rate", "last_batch_iteration"}


def one_cycle(p, path="scheduler.params"):
    """DeepSpeed's OneCycle (deepspeed/runtime/lr_schedules.py) as (lr_at, mom_at): functions of
    last_batch_iteration it (-1 = what the constructor writes). mom_at is None without
    cycle_momentum; else it gives beta1, which OneCycle writes as group['betas'] = (mom, 0.99) into
    every group of an optimizer whose defaults have betas (the constructor writes cycle_min_mom,
    not get_mom()'s value at -1)."""
    unknown = set(p) - ONE_CYCLE_KEYS
    if unknown:
        raise RefError("%s: unknown key(s) for OneCycle: %s" % (path, sorted(unknown)))
    if p.get("last_batch_iteration", -1) != -1:
        raise RefError("%s.last_batch_iteration: only -1 (a fresh run) is supported" % path)
    for k in ("cycle_min_lr", "cycle_max_lr"):
        if k not in p:
            raise RefError("%s.%s is required for OneCycle" % (path, k))
    min_lr, max_lr = float(p["cycle_min_lr"]), float(p["cycle_max_lr"])
    first = float(p.get("cycle_first_step_size", 2000))
    second = p.get("cycle_second_step_size")
    second = first if second is None else float(second)
    if first <= 0 or second < 0:
        raise RefError("%s: cycle_first_step_size must be positive and cycle_second_step_size "
                       "non-negative" % path)
    first_stairs = p.get("cycle_first_stair_count", 0)
    second_stairs = p.get("cycle_second_stair_count")
    second_stairs = first_stairs if second_stairs is None else second_stairs
    decay_step = p.get("decay_step_size", 0)
    decay_lr_rate = float(p.get("decay_lr_rate", 0.0))
    min_mom, max_mom = float(p.get("cycle_min_mom", 0.8)), float(p.get("cycle_max_mom", 0.9))
    decay_mom_rate = float(p.get("decay_mom_rate", 0.0))
    skip_lr_decay = math.isclose(decay_step, 0) or math.isclose(decay_lr_rate, 0)
    skip_mom_decay = math.isclose(decay_step, 0) or math.isclose(decay_mom_rate, 0)
    total = first + second
    ratio = first / total

    def scale(it):  # _get_scale_factor
        b = it + 1
        cycle = math.floor(1 + b / total)
        x = 1. + b / total - cycle
        if x <= ratio:
            f, stairs = x / ratio, first_stairs
        else:
            f, stairs = (x - 1) / (ratio - 1), second_stairs
        if stairs > 0:
            ci = b % total
            pos = ci * stairs / first if ci <= first else (total - ci) * stairs / second
            f = math.floor(pos) / stairs
        return f

    def lr_at(it):
        if it < total:
            return min_lr + (max_lr - min_lr) * scale(it)
        if skip_lr_decay:
            return min_lr
        return min_lr / (1 + decay_lr_rate * ((it - total + 1) / decay_step))

    def mom_at(it):
        if it < 0:
            return min_mom
        if it < total:
            return max_mom - (max_mom - min_mom) * scale(it)
        if skip_mom_decay:
            return max_mom
        return max_mom * (1 + decay_mom_rate * ((it - total + 1) / decay_step))

    return lr_at, (mom_at if p.get("cycle_momentum", True) else None)


def momentum_schedule(cfg, opt):
    """Function it -> beta1 when the scheduler cycles the betas of `opt` (OneCycle with
    cycle_momentum, and betas in opt.defaults as DeepSpeed checks), else None."""
    sch = cfg.get("scheduler") or {}
    if sch.get("type") != "OneCycle" or "betas" not in opt.defaults:
        return None
    return one_cycle(sch.get("params") or {})[1]


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

_CLASSES = {"MLP": E.MLP, "CNN": E.CNN, "GPT": E.GPT, "CNNStride2Groups": U.CNNStride2Groups}


def _registry():
    reg = {}
    for name, model, _ in E.build_bundled():
        reg[name] = model
    for name, model, _ in U.build_unseen():
        reg[name] = model
    return reg


def find_onnx(model_dir):
    name = os.path.basename(os.path.normpath(model_dir))
    path = os.path.join(model_dir, name + ".onnx")
    if not os.path.exists(path):
        cands = [f for f in os.listdir(model_dir) if f.endswith(".onnx")]
        if len(cands) != 1:
            raise RefError("%s: expected %s.onnx (or exactly one .onnx file)" % (model_dir, name))
        path = os.path.join(model_dir, cands[0])
    return name, path


def build_module(model_dir, name):
    spec_path = os.path.join(model_dir, "module.json")
    if os.path.exists(spec_path):
        with open(spec_path) as f:
            spec = json.load(f)
        cls = _CLASSES.get(spec.get("class"))
        if cls is None:
            raise RefError("%s: unknown class %r (known: %s)" % (spec_path, spec.get("class"),
                                                                 sorted(_CLASSES)))
        return cls(**spec.get("kwargs", {}))
    reg = _registry()
    if name not in reg:
        raise RefError("%s: no PyTorch module known for model %r (known: %s; or add module.json)"
                       % (model_dir, name, sorted(reg)))
    return reg[name]


def load_model(model_dir):
    """(name, torch module with the ONNX initial weights, [input names], {input: array})."""
    name, path = find_onnx(model_dir)
    m = onnx.load(path)
    module = build_module(model_dir, name)
    sd = module.state_dict()
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    missing = [k for k in inits if k not in sd]
    if missing:
        raise RefError("%s: initializers with no state_dict entry: %s" % (path, missing))
    # num_batches_tracked is dropped by the exporter (it does not affect training with momentum).
    absent = [k for k in sd if k not in inits and not k.endswith("num_batches_tracked")]
    if absent:
        raise RefError("%s: state_dict entries with no initializer: %s" % (path, absent))
    new_sd = {}
    for k, v in sd.items():
        if k in inits:
            a = inits[k]
            if tuple(a.shape) != tuple(v.shape):
                raise RefError("%s: %s has shape %s in the ONNX file, %s in the module"
                               % (path, k, list(a.shape), list(v.shape)))
            new_sd[k] = torch.from_numpy(np.array(a)).to(v.dtype)
        else:
            new_sd[k] = v
    module.load_state_dict(new_sd, strict=True)
    for k, v in module.state_dict().items():
        if k in inits:
            assert np.array_equal(v.numpy(), inits[k]), k
    init_names = set(inits)
    in_names = [i.name for i in m.graph.input if i.name not in init_names]
    data = {}
    for k in in_names:
        p = os.path.join(model_dir, "data", k + ".npy")
        if not os.path.exists(p):
            raise RefError("%s: missing data file for graph input %r" % (p, k))
        data[k] = np.load(p)
    ns = {v.shape[0] for v in data.values()}
    if len(ns) != 1:
        raise RefError("%s/data: inputs disagree on the number of samples: %s"
                       % (model_dir, {k: v.shape[0] for k, v in data.items()}))
    return name, module, in_names, data


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def global_grad_norm(params):
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.norm(torch.stack([torch.norm(g, 2.0) for g in grads]), 2.0)


def train(model_dir, cfg, steps, world=1, wrapped=False, resume_after=0, skipped=()):
    name, module, in_names, data = load_model(model_dir)
    if is_onebit(cfg):
        return train_onebit(name, module, in_names, data, cfg, steps, world, wrapped, resume_after, skipped)
    if world != 1 or wrapped:
        raise RefError("--world and --wrapped are for the 1-bit optimizers (every other trajectory is the same "
                       "on any number of ranks)")
    return train_module(name, module, in_names, data, cfg, steps, where=model_dir)


def is_onebit(cfg):
    return str((cfg.get("optimizer") or {}).get("type", "")).lower() in ("onebitadam", "onebitlamb", "zerooneadam")


def train_onebit(name, module, in_names, data, cfg, steps, world, wrapped, resume_after=0, skipped=()):
    """OnebitAdam, ZeroOneAdam or OnebitLamb on `world` simulated ranks (models/onebit_reference.py,
    models/zoadam_reference.py, models/onebit_lamb_reference.py), fp32 arithmetic; `wrapped`: as
    DeepSpeed's fp16/bf16 optimizer wrapper runs it (a flat buffer for OnebitAdam and ZeroOneAdam,
    and the wrapper constructor's step() call). `skipped`: steps the wrapper skips (an overflow)."""
    check_precision(cfg)
    tb, mb, gas = resolve_batch(cfg, world)
    n = next(iter(data.values())).shape[0]
    if n // tb == 0:
        raise RefError("train_batch_size %d is larger than the %d samples" % (tb, n))
    clip = cfg.get("gradient_clipping", 1.0)
    clip = 0.0 if clip is None else float(clip)
    tensors = {k: torch.from_numpy(v) for k, v in data.items()}
    kind = str(cfg["optimizer"].get("type", "")).lower()
    try:
        if kind == "zerooneadam":
            losses, norms, lrs, desc = ZO.train_zoadam(module, in_names, tensors, cfg, steps, world, tb, mb, gas, clip,
                                                       resume_after, wrapped, skipped, param_groups(cfg, module))
        elif kind == "onebitlamb":
            losses, norms, lrs, desc = OBL.train_onebit_lamb(module, in_names, tensors, cfg, steps, world, tb, mb, gas,
                                                             clip, resume_after, wrapped, skipped, param_groups(cfg, module))
        else:
            losses, norms, lrs, desc = OB.train_onebit(module, in_names, tensors, cfg, steps, world, tb, mb, gas, clip,
                                                       wrapped, resume_after, skipped)
    except ValueError as e:
        raise RefError(str(e))
    return {"model": name, "config": cfg, "steps": steps,
            "batch": {"train_batch_size": tb, "train_micro_batch_size_per_gpu": mb, "gradient_accumulation_steps": gas},
            "samples": n, "steps_per_epoch": n // tb, "optimizer": desc, "gradient_clipping": clip,
            "loss": losses, "grad_norm": norms, "lr": lrs}


def train_module(name, module, in_names, data, cfg, steps, where="the data"):
    """PyTorch training of `module` on `data` ({input name: array}) with DeepSpeed's semantics for
    `cfg`: the reference every trajectory in models/ comes from (also models/export_current.py)."""
    check_precision(cfg)
    tb, mb, gas = resolve_batch(cfg)
    n = next(iter(data.values())).shape[0]
    spe = n // tb
    if spe == 0:
        raise RefError("train_batch_size %d is larger than the %d samples in %s"
                       % (tb, n, where))
    clip = cfg.get("gradient_clipping", 1.0)
    clip = 0.0 if clip is None else float(clip)
    params = [p for p in module.parameters() if p.requires_grad]
    opt, desc = make_optimizer(cfg, param_groups(cfg, module))
    if len(opt.param_groups) > 1 or "group" in opt.param_groups[0]:
        desc["param_groups"] = [{"group": g["group"], "weight_decay": g["weight_decay"], "lr_scale": g["lr_scale"],
                                 "params": g["names"]} for g in opt.param_groups]
        for d, g in zip(desc["param_groups"], opt.param_groups):
            if "use_muon" in g:
                d.update(use_muon=g["use_muon"], lr=g["base_lr"])
    base_lr = desc["lr"] if "base_lr" in opt.param_groups[0] else opt.param_groups[0]["lr"]
    sched = make_schedule(cfg, base_lr)
    mom = momentum_schedule(cfg, opt)
    tensors = {k: torch.from_numpy(v) for k, v in data.items()}

    module.train()
    losses, norms, lrs, beta1s = [], [], [], []
    for k in range(steps):
        lr = base_lr if sched is None else sched(k - 1)  # step n = k+1 uses it = n-2
        for g in opt.param_groups:
            # Muon's groups keep their own lrs, scaled as the schedule scales base_lr, unless
            # the scheduler writes one lr into every group (WarmupLR, WarmupDecayLR, OneCycle).
            own = lr
            if "base_lr" in g and not (sched is not None and
                                       cfg["scheduler"]["type"] in ("WarmupLR", "WarmupDecayLR", "OneCycle")):
                own = g["base_lr"] * (lr / base_lr) if base_lr else g["base_lr"]
            g["lr"] = own * g["lr_scale"] if "lr_scale" in g else own
            if mom is not None:
                g["betas"] = (mom(k - 1), 0.99)
        opt.zero_grad(set_to_none=True)
        start = (k % spe) * tb
        micro = []
        for a in range(gas):
            s = start + a * mb
            inputs = [tensors[nm][s:s + mb] for nm in in_names]
            loss = module(*inputs)
            micro.append(loss.detach())
            (loss / gas).backward()
        step_loss = torch.stack(micro).mean() if gas > 1 else micro[0]
        total = global_grad_norm(params)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(float(step_loss.item()))
        norms.append(float(total.item()))
        lrs.append(float(lr))
        if mom is not None:
            beta1s.append(float(mom(k - 1)))
        if not math.isfinite(losses[-1]):
            raise RefError("step %d: loss is %r" % (k + 1, losses[-1]))
    res = {
        "model": name,
        "config": cfg,
        "steps": steps,
        "batch": {"train_batch_size": tb, "train_micro_batch_size_per_gpu": mb,
                  "gradient_accumulation_steps": gas},
        "samples": n,
        "steps_per_epoch": spe,
        "optimizer": desc,
        "gradient_clipping": clip,
        "loss": losses,
        "grad_norm": norms,
        "lr": lrs,
    }
    if mom is not None:
        res["beta1"] = beta1s
    return res


def _fmt_float_list(xs):
    return "[" + ", ".join(repr(float(x)) for x in xs) + "]"


def dump_result(res, path):
    """JSON with one line per list (readable diffs); floats are repr (round-trip exact)."""
    lines = ["{"]
    items = list(res.items())
    for i, (k, v) in enumerate(items):
        if k in ("loss", "grad_norm", "lr", "beta1"):
            s = _fmt_float_list(v)
        else:
            s = json.dumps(v, sort_keys=True)
        lines.append(" %s: %s%s" % (json.dumps(k), s, "," if i + 1 < len(items) else ""))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # sanity
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# --check
# --------------------------------------------------------------------------

def read_metrics(path):
    rows = {}
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise RefError("%s:%d: not JSON: %s" % (path, ln, e))
            if not isinstance(obj, dict) or "step" not in obj or "loss" not in obj:
                continue
            rows[int(obj["step"])] = obj
    return rows


def rel_diff(a, b):
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(b), 1e-12)


def check(metrics_path, ref_path, rtol, fields):
    with open(ref_path) as f:
        ref = json.load(f)
    rows = read_metrics(metrics_path)
    nref = len(ref["loss"])
    common = [s for s in range(1, nref + 1) if s in rows]
    if not common:
        print("check: no step of %s (1..%d) found in %s" % (ref_path, nref, metrics_path))
        return 1
    bad = 0
    worst = {f: (0.0, 0) for f in fields}
    print("%5s " % "step" + " ".join("%17s %17s %9s" % (f, "ref", "rel") for f in fields))
    for s in common:
        cols = []
        for fld in fields:
            r = ref[fld][s - 1]
            got = rows[s].get(fld)
            if got is None:
                cols.append("%17s %17.9g %9s" % ("-", r, "-"))
                if fld == "loss":
                    bad += 1
                continue
            d = rel_diff(float(got), float(r))
            if d > worst[fld][0]:
                worst[fld] = (d, s)
            flag = "*" if d > rtol else " "
            if d > rtol or not math.isfinite(float(got)):
                bad += 1
            cols.append("%17.9g %17.9g %8.2e%s" % (float(got), r, d, flag))
        print("%5d " % s + " ".join(cols))
    missing = [s for s in range(1, nref + 1) if s not in rows]
    for fld in fields:
        d, at = worst[fld]
        print("max rel diff %-9s %.3e%s" % (fld, d, " (step %d)" % at if at else ""))
    if missing:
        print("note: %d reference step(s) not in the metrics (first: %d)" % (len(missing), missing[0]))
    print("%s: %d step(s) compared, rtol %g, %d over" % ("FAIL" if bad else "OK", len(common), rtol, bad))
    return 1 if bad else 0


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def regenerate(steps=REFERENCE_STEPS, verbose=True, only=None):
    cdir = os.path.join(HERE, "reference_configs")
    out = {}
    jobs = [(m, c) for m in BUNDLED for c in REFERENCE_CONFIGS]
    jobs += [(m, c) for m in OPTIMIZER_MODELS for c in OPTIMIZER_CONFIGS]
    jobs += [(m, c) for m in GROUP_MODELS for c in GROUP_CONFIGS]
    jobs += [(m, c) for m in SCHEDULE_MODELS for c in SCHEDULE_CONFIGS]
    jobs += [(m, c) for m in ONE_CYCLE_MODELS for c in ONE_CYCLE_CONFIGS]
    if only:
        jobs = [(m, c) for m, c in jobs if c in only]
    for model in BUNDLED:
        odir = os.path.join(HERE, model, "reference", "trajectories")
        os.makedirs(odir, exist_ok=True)
        for stem in [c for m, c in jobs if m == model]:
            cfg = load_config(os.path.join(cdir, stem + ".json"))
            t0 = time.time()
            res = train(os.path.join(HERE, model), cfg, steps)
            dump_result(res, os.path.join(odir, stem + ".json"))
            out[(model, stem)] = res
            if verbose:
                L = res["loss"]
                print("%-4s %-13s loss[1]=%.6f loss[10]=%.6f loss[%d]=%.6f  (%.2fs)"
                      % (model, stem, L[0], L[min(9, steps - 1)], steps, L[-1], time.time() - t0))
    for model in ONEBIT_MODELS:
        odir = os.path.join(HERE, model, "reference", "onebit")
        os.makedirs(odir, exist_ok=True)
        for stem, world, wrapped, *resume in ONEBIT_JOBS:
            if only and stem not in only:
                continue
            cfg = load_config(os.path.join(cdir, stem + ".json"))
            after = resume[0] if resume else 0
            res = train(os.path.join(HERE, model), cfg, steps, world, wrapped, after)
            name = "%s_w%d%s%s" % (stem, world, "_fp16" if wrapped else "", "_resume%d" % after if after else "")
            dump_result(res, os.path.join(odir, name + ".json"))
            if verbose:
                print("%-4s %-22s loss[1]=%.6f loss[%d]=%.6f" % (model, name, res["loss"][0], steps, res["loss"][-1]))
        for stem, world, skipped in ONEBIT_SKIP_JOBS if model == "mlp" else ():
            if only and stem not in only:
                continue
            cfg = load_config(os.path.join(cdir, stem + ".json"))
            res = train(os.path.join(HERE, model), cfg, steps, world, True, 0, set(skipped))
            name = "%s_w%d_fp16_skip%s" % (stem, world, "_".join(str(k) for k in skipped))
            dump_result(res, os.path.join(odir, name + ".json"))
            if verbose:
                print("%-4s %-22s loss[1]=%.6f loss[%d]=%.6f" % (model, name, res["loss"][0], steps, res["loss"][-1]))
    if verbose:
        for model in BUNDLED:
            if (model, "adam") not in out or (model, "accum4") not in out:
                continue
            a, b = out[(model, "adam")]["loss"], out[(model, "accum4")]["loss"]
            d = max(rel_diff(x, y) for x, y in zip(b, a))
            print("%-4s accum4 vs adam: max rel diff %.3e" % (model, d))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("args", nargs="*", help="MODEL_DIR CONFIG.json, or REF.json with --check")
    ap.add_argument("--steps", type=int, default=REFERENCE_STEPS)
    ap.add_argument("-o", "--out", help="output JSON (default: stdout)")
    ap.add_argument("--check", metavar="METRICS.jsonl",
                    help="compare a dsrun metrics file against the reference JSON given as argument")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--fields", default="loss",
                    help="--check: comma-separated fields to compare (loss,lr,grad_norm)")
    ap.add_argument("--regenerate", action="store_true",
                    help="rewrite models/<mlp|cnn|gpt>/reference/trajectories/*.json")
    ap.add_argument("--only", default="",
                    help="--regenerate: comma-separated config stems (e.g. lion,lion_wd) instead of all")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--world", type=int, default=1, help="1-bit optimizers: the number of data-parallel ranks")
    ap.add_argument("--wrapped", action="store_true",
                    help="1-bit optimizers: as DeepSpeed's fp16/bf16 wrapper runs them (flat buffer, constructor step)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        if a.check:
            if len(a.args) != 1:
                ap.error("--check METRICS.jsonl takes one argument: the reference JSON")
            fields = [f for f in a.fields.split(",") if f]
            return check(a.check, a.args[0], a.rtol, fields)
        if a.regenerate:
            regenerate(a.steps, only=set(x for x in a.only.split(",") if x))
            return 0
        if len(a.args) != 2:
            ap.error("expected MODEL_DIR CONFIG.json")
        if a.steps <= 0:
            ap.error("--steps must be positive")
        cfg = load_config(a.args[1])
        res = train(a.args[0], cfg, a.steps, a.world, a.wrapped)
        if a.out:
            dump_result(res, a.out)
        else:
            json.dump(res, sys.stdout, indent=1)
            sys.stdout.write("\n")
        return 0
    except RefError as e:
        print("reference_trajectories: error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
