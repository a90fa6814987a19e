#!/opt/torchenv/bin/python
"""Models exported in half precision, as users export LLMs loaded with torch_dtype=torch.bfloat16,
with PyTorch reference trajectories of the two ways dscompile trains them.

Re-run (torch 2.15 / transformers 5 / onnx 1.23 venv; seeded, no downloads; ~1 min):

    /opt/torchenv/bin/python models/export_half.py [--out DIR]

Per model <m> in models/half/<m>/ (the module of models/export_current.py, cast with .bfloat16()):
    <m>.<mode>.onnx            mode dynamo_default (torch.onnx.export(dynamo=True) with its defaults:
                               bfloat16 Conv and LayerNorm at opset 20, which ONNX's schemas admit
                               from opset 22 only) and, for llama, helper (export_for_training)
    data/<input>.npy           64 samples; images stay float32 (numpy has no bfloat16: dsrun rounds
                               them to the bfloat16 input)
    reference.json             per regime, the config and PyTorch's 10-step trajectory (loss,
                               grad_norm), data in file order (dsrun --no-shuffle)

The regimes (Adam, lr 1e-3, gradient_clipping 0, micro-batch 16):
  * "pure": no precision section. DeepSpeed hands the half module to its optimizer as it is:
    parameters, gradients and Adam's moments stay bfloat16 and FusedAdam computes each element in
    float32 (its MATH_T), rounding what it stores. The loss output is the graph's bfloat16 loss:
    cross entropy computed in float32 and rounded once, as PyTorch's bfloat16 kernels compute.
  * "bf16": "bf16": {"enabled": true} at ZeRO stage 1. The fp32 master weights start as the
    bfloat16 parameters, bfloat16 gradients are widened for the update and the parameters are the
    rounded masters; the loss is cross entropy on float32 logits (dscompile's policy puts the loss
    on its fp32 list). Stage 1, not 0: DeepSpeed's ZeRO-0 bf16 wrapper steps once before training
    (models/reference_mixed_precision.py), which would test that quirk rather than the half file.
In both the forward and backward are the bfloat16 module's own (PyTorch's CPU kernels compute in
float32 and round each output once); grad_norm is the L2 norm of the bfloat16 gradients.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import export_current as C  # noqa: E402
import export_for_training as X  # noqa: E402

NUM_SAMPLES = C.NUM_SAMPLES
BATCH = 16
STEPS = 10
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8

# name -> (builder, data function, data seed, modes, logits of the module's model for one batch)
MODELS = {
    "llama": (C.build_llama, C.data_lm, 12, ("dynamo_default", "helper"),
              lambda m, b: m.model(input_ids=b["input_ids"], use_cache=False).logits),
    "vit": (C.build_vit, C.data_image, 14, ("dynamo_default",),
            lambda m, b: m.model(pixel_values=b["pixel_values"]).logits),
}


def config(regime):
    cfg = {"train_batch_size": BATCH, "train_micro_batch_size_per_gpu": BATCH, "gradient_clipping": 0,
           "optimizer": {"type": "Adam", "params": {"lr": LR}}}
    if regime == "bf16":
        cfg["bf16"] = {"enabled": True}
        cfg["zero_optimization"] = {"stage": 1}
    return cfg


def as_inputs(data, lo, hi):
    """Samples [lo, hi) as the half module takes them: float data rounded to bfloat16."""
    out = {}
    for k, v in data.items():
        t = torch.from_numpy(v[lo:hi])
        out[k] = t.to(torch.bfloat16) if t.is_floating_point() else t
    return out


def trajectory(module, data, logits_of, regime):
    """PyTorch's trajectory of the bfloat16 module in `regime` (see the module docstring)."""
    params = [p for p in module.parameters() if p.requires_grad]
    master = [p.detach().float().clone() for p in params]
    m1 = [torch.zeros_like(w) for w in master]
    m2 = [torch.zeros_like(w) for w in master]
    losses, norms = [], []
    per_epoch = NUM_SAMPLES // BATCH
    for step in range(STEPS):
        lo = (step % per_epoch) * BATCH
        batch = as_inputs(data, lo, lo + BATCH)
        for p in params:
            p.grad = None
        logits = logits_of(module, batch)
        labels = batch["labels"]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))
        losses.append(loss.item() if regime == "bf16" else loss.bfloat16().item())
        loss.backward()
        norms.append(torch.cat([p.grad.double().flatten() for p in params]).norm().item())
        t = step + 1
        with torch.no_grad():
            for i, p in enumerate(params):
                g = p.grad.float()
                a = BETAS[0] * m1[i] + (1 - BETAS[0]) * g
                b = BETAS[1] * m2[i] + (1 - BETAS[1]) * g * g
                update = LR * (a / (1 - BETAS[0] ** t)) / ((b / (1 - BETAS[1] ** t)).sqrt() + EPS)
                if regime == "bf16":
                    m1[i], m2[i] = a, b
                    master[i] = master[i] - update
                    p.copy_(master[i].bfloat16())
                else:  # stored in bfloat16, computed in float32
                    m1[i], m2[i] = a.bfloat16().float(), b.bfloat16().float()
                    p.copy_((p.float() - update).bfloat16())
    return losses, norms


def single_file(path):
    """The exporter writes initializers to path.data; one file is easier to keep in the repository."""
    m = onnx.load(path)
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    onnx.save(m, path)


def export(name, out_root):
    builder, data_fn, seed, modes, logits_of = MODELS[name]
    out = os.path.join(out_root, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "data"))
    torch.manual_seed(0)
    module = builder().bfloat16().train()
    initial = {k: v.clone() for k, v in module.state_dict().items()}
    data = data_fn(NUM_SAMPLES, seed)
    for k, v in data.items():
        np.save(os.path.join(out, "data", k + ".npy"), v)
    example = tuple(as_inputs(data, 0, C.EXAMPLE_BATCH).values())
    names = list(data)
    for mode in modes:
        path = os.path.join(out, "%s.%s.onnx" % (name, mode))
        if mode == "helper":
            X.export_for_training(module, example, path)
        else:
            batch = torch.export.Dim("batch")
            torch.onnx.export(module, example, path, dynamo=True, input_names=names, output_names=["loss"],
                              dynamic_shapes={k: {0: batch} for k in names})
        single_file(path)
        C.strip_stack_traces(path, keep_keys=C.FX_ONLY["node_metadata"])
    ref = {"torch": torch.__version__, "steps": STEPS, "files": ["%s.%s.onnx" % (name, m) for m in modes],
           "regimes": {}}
    for regime in ("pure", "bf16"):
        module.load_state_dict(initial)
        losses, norms = trajectory(module, data, logits_of, regime)
        ref["regimes"][regime] = {"config": config(regime), "loss": losses, "grad_norm": norms}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print("%s: %s" % (name, ", ".join("%s %.4f -> %.4f" % (r, v["loss"][0], v["loss"][-1])
                                       for r, v in ref["regimes"].items())))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "half"))
    args = ap.parse_args(argv)
    for name in MODELS:
        export(name, args.out)


if __name__ == "__main__":
    main()
