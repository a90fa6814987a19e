#!/opt/torchenv/bin/python
"""PyTorch bf16 reference trajectory of the bundled gpt, trained as DeepSpeed trains with bf16 enabled.

    /opt/torchenv/bin/python models/reference_mixed_precision.py --regenerate
        # rewrites models/gpt/reference/mixed_precision/bf16.json (30 steps, the built-in config)
        # and bf16_zero2.json (the same at ZeRO stage 2), and bf16_optimizers.json (other
        # optimizers at ZeRO 0 and 2, 10 steps)
    /opt/torchenv/bin/python models/reference_mixed_precision.py [CONFIG.json] [--steps N] [-o OUT.json]
    /opt/torchenv/bin/python models/reference_mixed_precision.py --check METRICS.jsonl REF.json [--rtol 1e-2]

What it does (DeepSpeed's "bf16": {"enabled": true} at ZeRO 0 on one rank: engine.bfloat16(), then
the ddp_bf16 wrapper, FP16_Optimizer in bf16 mode for FusedAdam, config-reference.md §6):
  * every parameter and buffer of the model is bf16: the ONNX file's fp32 initial values rounded to
    nearest even (torch's float->bfloat16 conversion), so the starting weights are what dscompile's
    precision pass makes of the same file;
  * the forward is the ONNX graph of models/gpt/gpt.onnx op for op in PyTorch's CPU bf16 kernels,
    which compute in fp32 and round each output to bf16 once (checked by --self-test).  Where the
    exporter split a PyTorch op, so does this forward: Linear = MatMul then Add(bias) (two roundings,
    not addmm's one), GELU = Div, Erf, Add, Mul, Mul; the graph's float constants (1/sqrt(head_dim),
    sqrt(2), 1, 0.5, -inf) are converted to bf16 like every frozen float initializer;
  * the loss is SoftmaxCrossEntropyLoss in fp32 (it is on the fp32 list): cross_entropy on
    logits.float(); its gradient is cast back to bf16 where the logits were cast up;
  * gradient accumulation: each micro-batch loss is divided by gradient_accumulation_steps before
    backward, and the parameters' .grad accumulate in bf16 (grad_accum_dtype defaults to the model
    dtype); the step's loss is the mean of the micro-batch losses;
  * fp32 master weights start as float(bf16 parameter); the bf16 gradients are cast to fp32; the
    global L2 norm is taken over all of them (accumulated in fp64, as dscompile's SumSquares), and
    gradient clipping multiplies them by max_norm / (norm + 1e-6) when that is < 1 (DeepSpeed's
    clip_grad_norm_); grad_norm is the pre-clip norm;
  * the optimizer (Adam/AdamW with FusedAdam's defaults, from reference_trajectories.make_optimizer)
    updates the fp32 masters; then every parameter = bf16(master);
  * at ZeRO 0 the wrapper's constructor calls optimizer.step() once on zero gradients
    (fused_optimizer.py:123 initialize_optimizer_states) with the optimizer's own lr, before the LR
    scheduler exists: Adam's step count starts at 1 and AdamW's decay acts once on the fp32 masters;
    the bf16 parameters keep their values until the first step copies the masters back.  The ZeRO
    stages make no such call (DeepSpeed #5104);
  * data order, batch resolution and LR schedules are reference_trajectories.py's (DeepSpeed's
    sequential sampler, drop_last).

Torch: 2.x (/opt/torchenv).  torch 1.13 (the fp32 references' torch, /usr/bin/python3) does not follow
the one-rounding rule on CPU in bf16: its layer_norm rounds intermediate values (--self-test: about a
third of its outputs differ from round(fp32 layer_norm)), which would make the reference test torch
1.13's kernels instead of the precision rule.

Output JSON: reference_trajectories.py's fields ("loss", "grad_norm", "lr", "config", "batch", ...)
plus "torch" (version) and "precision" (the settings above, in words).
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_trajectories as R  # noqa: E402

REFERENCE_STEPS = 30
REFERENCE_OUT = os.path.join(HERE, "gpt", "reference", "mixed_precision", "bf16.json")
# The same config at ZeRO 2 (one process: the ZeRO optimizer's arithmetic is one rank's), which
# makes no constructor call.
REFERENCE_ZERO2_OUT = os.path.join(HERE, "gpt", "reference", "mixed_precision", "bf16_zero2.json")
# Other optimizers through the same two regimes (the wrapper's constructor call at ZeRO 0, none at
# ZeRO 2), each chosen so that call shows: SGD's momentum buffer (dampening) and L2 decay, Adam's
# L2 decay and step count, Adagrad's lr_decay and L2 decay, Lamb's step count, Lion's decoupled decay.
VARIANTS_OUT = os.path.join(HERE, "gpt", "reference", "mixed_precision", "bf16_optimizers.json")
VARIANT_STEPS = 10
OPTIMIZER_VARIANTS = {
    "sgd": {"type": "SGD", "params": {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}},
    "adam_l2": {"type": "Adam", "params": {"lr": 0.001, "adam_w_mode": False, "weight_decay": 0.01}},
    "adagrad": {"type": "Adagrad", "params": {"lr": 0.01, "lr_decay": 0.1, "weight_decay": 0.01}},
    "lamb": {"type": "Lamb", "params": {"lr": 0.002, "weight_decay": 0.01}},
    "lion": {"type": "Lion", "params": {"lr": 0.0003, "weight_decay": 0.1}},
}

# The built-in config of the committed reference: gradient accumulation (bf16 accumulators),
# clipping that acts on some steps (the gpt's pre-clip norm is about 0.5), AdamW with decay.
REFERENCE_CONFIG = {
    "train_batch_size": 16,
    "train_micro_batch_size_per_gpu": 4,
    "gradient_accumulation_steps": 4,
    "gradient_clipping": 0.5,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.001, "weight_decay": 0.01}},
    "bf16": {"enabled": True},
}

PRECISION_NOTE = [
    "bf16 parameters = round-to-nearest-even of the ONNX fp32 initializers; buffers (attn.mask) bf16",
    "forward = the ONNX graph op for op in torch CPU bf16 kernels (fp32 compute, one rounding per op): "
    "Linear as MatMul + Add(bias), GELU as Div/Erf/Add/Mul/Mul, graph constants rounded to bf16",
    "loss: cross_entropy(logits.float()) in fp32 (SoftmaxCrossEntropyLoss is on the fp32 list)",
    "micro-batch loss / gradient_accumulation_steps; .grad accumulates in bf16",
    "fp32 master = float(bf16 param); grads cast to fp32; global L2 norm in fp64; "
    "clip coef = max_norm / (norm + 1e-6) when < 1",
    "optimizer on the fp32 masters (FusedAdam defaults); param = bf16(master) after each step",
    "ZeRO 0: the wrapper's constructor calls optimizer.step() once on zero gradients with the optimizer's lr "
    "(step count 1, AdamW decay of the masters); the bf16 parameters are unchanged by it",
]


def load_gpt(model_dir):
    """(torch GPT module with the ONNX weights in fp32, input names, data) via reference_trajectories."""
    name, module, in_names, data = R.load_model(model_dir)
    if type(module).__name__ != "GPT" or module.size_driven:
        raise R.RefError("%s: the mixed-precision reference mirrors the bundled gpt's graph only" % model_dir)
    if in_names != ["idx", "targets"]:
        raise R.RefError("%s: expected graph inputs idx, targets; got %s" % (model_dir, in_names))
    return name, module, in_names, data


def gpt_forward(module, P, idx, targets):
    """The loss of models/gpt/gpt.onnx computed op for op as the ONNX graph does, in the dtype of the
    tensors in P (state_dict name -> tensor).  Comments name the ONNX nodes."""
    dt = P["transformer.wte.weight"].dtype

    def const(v):  # a graph float constant (fp32 in the file) converted to the op's dtype
        return torch.tensor(v, dtype=torch.float32).to(dt)

    C = P["transformer.wte.weight"].shape[1]
    V = module.vocab_size
    B, T = idx.shape
    n_layer = len(module.transformer.h)
    H = module.transformer.h[0].attn.n_head
    hs = C // H
    eps = module.transformer.ln_f.eps
    inv_sqrt_hs = const(1.0 / math.sqrt(hs))  # Mul constant, 0.35355338 in the file
    sqrt2 = const(1.4142135381698608)          # gelu Div constant
    one, half, ninf = const(1.0), const(0.5), const(float("-inf"))

    def linear(x, prefix):  # Transpose(W) + MatMul + Add(bias, matmul): two ops, two roundings
        y = torch.matmul(x, P[prefix + ".weight"].t())
        return P[prefix + ".bias"] + y

    pos = torch.arange(0, T, dtype=torch.long)                                     # Range
    x = P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][pos]        # Gather, Gather, Add
    for layer in range(n_layer):
        pre = "transformer.h.%d." % layer
        h = F.layer_norm(x, (C,), P[pre + "ln_1.weight"], P[pre + "ln_1.bias"], eps)  # LayerNormalization
        qkv = linear(h, pre + "attn.c_attn")
        q, k, v = qkv.split(C, dim=2)                                                # Split
        q = q.reshape(B, T, H, hs).permute(0, 2, 1, 3)                               # Reshape, Transpose
        k = k.reshape(B, T, H, hs).permute(0, 2, 3, 1)
        v = v.reshape(B, T, H, hs).permute(0, 2, 1, 3)
        att = torch.matmul(q, k) * inv_sqrt_hs                                       # MatMul, Mul
        mask = P[pre + "attn.mask"][:, :, :T, :T]                                    # Slice, Slice
        att = torch.where(mask == 0, ninf, att)                                      # Equal, Where
        att = torch.softmax(att, dim=-1)                                             # Softmax
        y = torch.matmul(att, v)                                                     # MatMul
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)                                   # Transpose, Reshape
        x = x + linear(y, pre + "attn.c_proj")                                       # Add
        h = F.layer_norm(x, (C,), P[pre + "ln_2.weight"], P[pre + "ln_2.bias"], eps)
        h = linear(h, pre + "mlp.c_fc")
        g = (h * (torch.erf(h / sqrt2) + one)) * half                                # Div, Erf, Add, Mul, Mul
        x = x + linear(g, pre + "mlp.c_proj")
    x = F.layer_norm(x, (C,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    logits = linear(x, "lm_head").reshape(-1, V)                                     # Reshape
    # SoftmaxCrossEntropyLoss is on the fp32 list: its input is cast to fp32.
    return F.cross_entropy(logits.float(), targets.reshape(-1))


def train_bf16(model_dir, cfg, steps, verbose=False):
    name, module, in_names, data = load_gpt(model_dir)
    prec = cfg.get("bf16") or cfg.get("bfloat16") or {}
    if not (isinstance(prec, dict) and prec.get("enabled", False)):
        raise R.RefError("the config must enable bf16 (this reference trains the bf16 model)")
    for sec in ("fp16", "amp"):
        if isinstance(cfg.get(sec), dict) and cfg[sec].get("enabled", False):
            raise R.RefError("%s.enabled: only bf16 is reproduced here" % sec)
    zero = (cfg.get("zero_optimization") or {}).get("stage", 0)
    dt = (cfg.get("data_types") or {}).get("grad_accum_dtype")
    if dt not in (None, "bf16", "bfloat16"):
        raise R.RefError("data_types.grad_accum_dtype %r: only the bf16 default is reproduced" % dt)
    tb, mb, gas = R.resolve_batch(cfg)
    n = next(iter(data.values())).shape[0]
    spe = n // tb
    if spe == 0:
        raise R.RefError("train_batch_size %d is larger than the %d samples" % (tb, n))
    clip = cfg.get("gradient_clipping", 1.0)
    clip = 0.0 if clip is None else float(clip)

    trainable = [k for k, p in module.named_parameters() if p.requires_grad]
    sd = module.state_dict()
    P = {}
    for k, v in sd.items():
        t = v.detach().clone().to(torch.bfloat16)   # round to nearest even
        if k in trainable:
            t.requires_grad_(True)
        P[k] = t
    masters = {k: P[k].detach().float().clone() for k in trainable}  # exactly float(bf16)
    opt, desc = R.make_optimizer(cfg, [masters[k] for k in trainable])
    base_lr = opt.param_groups[0]["lr"]
    if zero == 0:
        for k in trainable:
            masters[k].grad = torch.zeros_like(masters[k])
        opt.step()
        for k in trainable:
            masters[k].grad = None
    sched = R.make_schedule(cfg, base_lr)
    tensors = {k: torch.from_numpy(v) for k, v in data.items()}

    losses, norms, lrs = [], [], []
    for step in range(steps):
        lr = base_lr if sched is None else sched(step - 1)
        for g in opt.param_groups:
            g["lr"] = lr
        for k in trainable:
            P[k].grad = None
        start = (step % spe) * tb
        micro = []
        for a in range(gas):
            s = start + a * mb
            loss = gpt_forward(module, P, tensors["idx"][s:s + mb], tensors["targets"][s:s + mb])
            micro.append(loss.detach())
            (loss / gas).backward()
        step_loss = torch.stack(micro).mean() if gas > 1 else micro[0]
        for k in trainable:
            if P[k].grad.dtype != torch.bfloat16:
                raise R.RefError("%s: gradient is %s, expected bfloat16" % (k, P[k].grad.dtype))
        g32 = {k: P[k].grad.detach().float() for k in trainable}
        sumsq = sum(float(torch.sum(g.double() * g.double())) for g in g32.values())
        norm = math.sqrt(sumsq)
        if not math.isfinite(norm):
            raise R.RefError("step %d: gradient norm %r (bf16 overflow)" % (step + 1, norm))
        if clip > 0:
            coef = clip / (float(np.float32(norm)) + 1e-6)
            if coef < 1.0:
                for g in g32.values():
                    g.mul_(coef)
        for k in trainable:
            masters[k].grad = g32[k]
        opt.step()
        with torch.no_grad():
            for k in trainable:
                P[k].copy_(masters[k].to(torch.bfloat16))
        losses.append(float(step_loss.item()))
        norms.append(float(np.float32(norm)))
        lrs.append(float(lr))
        if not math.isfinite(losses[-1]):
            raise R.RefError("step %d: loss is %r" % (step + 1, losses[-1]))
        if verbose:
            print("step %2d loss %.6f grad_norm %.6f" % (step + 1, losses[-1], norms[-1]))
    return {
        "model": name,
        "config": cfg,
        "steps": steps,
        "batch": {"train_batch_size": tb, "train_micro_batch_size_per_gpu": mb,
                  "gradient_accumulation_steps": gas},
        "samples": n,
        "steps_per_epoch": spe,
        "optimizer": desc,
        "gradient_clipping": clip,
        "zero_stage": zero,
        "torch": torch.__version__,
        "precision": PRECISION_NOTE,
        "loss": losses,
        "grad_norm": norms,
        "lr": lrs,
    }


# --------------------------------------------------------------------------
# --self-test: the forward is the module's, and the kernels round once
# --------------------------------------------------------------------------

def self_test(model_dir):
    """Returns 0 when (1) in fp32 the op-for-op forward gives the module's loss and gradients, and
    (2) this torch's CPU bf16 kernels used by the forward compute in fp32 and round once."""
    _, module, _, data = load_gpt(model_dir)
    idx = torch.from_numpy(data["idx"][:8])
    tgt = torch.from_numpy(data["targets"][:8])
    bad = 0
    module.train()
    module.zero_grad(set_to_none=True)
    want = module(idx, tgt)
    want.backward()
    P = {k: v.detach().clone().requires_grad_(True) for k, v in module.state_dict().items()}
    got = gpt_forward(module, P, idx, tgt)
    got.backward()
    got, want = float(got.detach()), float(want.detach())
    d = abs(got - want) / abs(want)
    print("fp32 forward vs module: loss %.9g vs %.9g (rel %.2e)" % (got, want, d))
    bad += d > 1e-6
    for k, p in module.named_parameters():
        e = float((P[k].grad - p.grad).abs().max()) / max(float(p.grad.abs().max()), 1e-12)
        if e > 1e-5:
            print("  grad %s differs: %.2e" % (k, e))
            bad += 1
    torch.manual_seed(0)
    bf = torch.bfloat16
    x = (torch.randn(4, 16, 32) * 2).to(bf)
    w = torch.randn(96, 32).to(bf)
    g, b = torch.randn(32).to(bf), torch.randn(32).to(bf)
    s = (torch.randn(4, 4, 16, 16) * 3).to(bf)
    c = torch.tensor(1.4142135381698608).to(bf)
    checks = [
        ("matmul", torch.matmul(x, w.t()), torch.matmul(x.float(), w.float().t())),
        ("add", x + x[0, 0], x.float() + x[0, 0].float()),
        ("layer_norm", F.layer_norm(x, (32,), g, b, 1e-5), F.layer_norm(x.float(), (32,), g.float(), b.float(), 1e-5)),
        ("softmax", torch.softmax(s, -1), torch.softmax(s.float(), -1)),
        ("erf", torch.erf(s), torch.erf(s.float())),
        ("div", s / c, s.float() / c.float()),
        ("mul", s * c, s.float() * c.float()),
    ]
    for name, lo, hi in checks:
        frac = float((lo != hi.to(bf)).float().mean())
        print("bf16 %-10s outputs != round(fp32 compute): %.4f" % (name, frac))
        bad += frac > 0
    print("self-test: %s" % ("FAIL" if bad else "OK"))
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("args", nargs="*", help="[CONFIG.json] (default: the built-in config), or REF.json with --check")
    ap.add_argument("--model", default=os.path.join(HERE, "gpt"), help="model dir (default models/gpt)")
    ap.add_argument("--steps", type=int, default=REFERENCE_STEPS)
    ap.add_argument("-o", "--out", help="output JSON (default: stdout)")
    ap.add_argument("--regenerate", action="store_true", help="rewrite %s and %s" % (
        os.path.relpath(REFERENCE_OUT, HERE), os.path.relpath(REFERENCE_ZERO2_OUT, HERE)))
    ap.add_argument("--self-test", action="store_true", help="check the forward and the bf16 kernels")
    ap.add_argument("--check", metavar="METRICS.jsonl", help="compare dsrun metrics with REF.json")
    ap.add_argument("--rtol", type=float, default=1e-2)
    ap.add_argument("--fields", default="loss", help="--check: fields to compare (loss,grad_norm,lr)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # fixed reduction order
    try:
        if a.self_test:
            return self_test(a.model)
        if a.check:
            if len(a.args) != 1:
                ap.error("--check METRICS.jsonl takes one argument: the reference JSON")
            return R.check(a.check, a.args[0], a.rtol, [f for f in a.fields.split(",") if f])
        if len(a.args) > 1:
            ap.error("expected at most one CONFIG.json")
        if a.steps <= 0:
            ap.error("--steps must be positive")
        if a.regenerate:
            variants = {}
            for name, opt in OPTIMIZER_VARIANTS.items():
                variants[name] = {"optimizer": opt}
                for key, zero in (("zero0", None), ("zero2", {"stage": 2})):
                    cfg = dict(REFERENCE_CONFIG, optimizer=opt)
                    if zero:
                        # DeepSpeed's ZeRO takes SGD and Lamb only as untested optimizers.
                        cfg["zero_optimization"] = zero
                        cfg["zero_allow_untested_optimizer"] = True
                    res = train_bf16(a.model, cfg, VARIANT_STEPS)
                    variants[name][key] = {k: res[k] for k in ("loss", "grad_norm", "config", "optimizer")}
            R.dump_result({"steps": VARIANT_STEPS, "torch": torch.__version__, "precision": PRECISION_NOTE,
                           "variants": variants}, VARIANTS_OUT)
            print("wrote %s: %s" % (VARIANTS_OUT, ", ".join(variants)))
            zero2 = dict(REFERENCE_CONFIG, zero_optimization={"stage": 2})
            runs = [(dict(REFERENCE_CONFIG), REFERENCE_OUT), (zero2, REFERENCE_ZERO2_OUT)]
        else:
            runs = [(R.load_config(a.args[0]) if a.args else dict(REFERENCE_CONFIG), a.out)]
        for cfg, out in runs:
            res = train_bf16(a.model, cfg, a.steps, verbose=a.verbose)
            if out:
                R.dump_result(res, out)
                print("wrote %s: loss[1]=%.6f loss[%d]=%.6f" % (out, res["loss"][0], a.steps, res["loss"][-1]))
            else:
                json.dump(res, sys.stdout, indent=1)
                sys.stdout.write("\n")
        return 0
    except R.RefError as e:
        print("reference_mixed_precision: error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
