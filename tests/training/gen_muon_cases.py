#!/opt/torchenv/bin/python
# Writes data/muon_cases.json: reference steps of DeepSpeed's Muon update for MuonMomentum/MuonApply
# (tests/training/muon_step_test.cc), from models/muon_reference.py (DeepSpeed's original_muon.py with
# float32 Newton-Schulz, the same reference the muon trajectories come from). Each step records the
# new param and momentum buffer. Shapes cover the gram iteration with its restart (wide), the
# transposed case and its sqrt(rows/cols) factor (tall), the square fallback, the standard
# iteration, a 4-D filter (viewed as dims[0] x rest, scaled by its last two dims) and a batch.
# The standard iteration is also cross-checked against torch.optim.Muon (bfloat16 there).
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import muon_reference as M  # noqa: E402

torch.manual_seed(0)
F32 = torch.float32


def vals(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def case(name, shape, lr=0.02, momentum=0.95, weight_decay=0.0, ns_method="gram", grad_scale=1.0, steps=3):
    p0 = torch.randn(shape, dtype=F32)
    grads = [torch.randn(shape, dtype=F32) for _ in range(steps)]
    p, buf = p0.clone(), torch.zeros(shape, dtype=F32)
    expected = []
    for g in grads:
        update = M.muon_update(g.clone() * grad_scale, buf, beta=momentum, ns_method=ns_method)
        p.mul_(1 - lr * weight_decay)
        p.add_(update.reshape(p.shape), alpha=-lr)
        expected.append({"param": vals(p), "momentum_buffer": vals(buf)})
    return {"name": name, "shape": list(shape), "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
            "ns_method": ns_method, "grad_scale": grad_scale, "param": vals(p0), "grads": [vals(g) for g in grads],
            "expected": expected}


def cross_check_torch_muon():
    """torch.optim.Muon's one step on a 2-D matrix: the standard iteration in bfloat16, so ours (float32)
    agrees to bfloat16's precision only."""
    if not hasattr(torch.optim, "Muon"):
        return
    p0, g = torch.randn(6, 10, dtype=F32), torch.randn(6, 10, dtype=F32)
    a = torch.nn.Parameter(p0.clone())
    a.grad = g.clone()
    torch.optim.Muon([a], lr=0.02, weight_decay=0.0, momentum=0.95, nesterov=True).step()
    ours = p0 - 0.02 * M.muon_update(g.clone(), torch.zeros_like(g), beta=0.95, ns_method="standard")
    err = ((a.detach() - ours).abs().max() / (ours - p0).abs().max()).item()
    assert err < 0.05, err


def main():
    cross_check_torch_muon()
    cases = [
        case("wide_gram", (4, 9)),
        case("tall_gram_wd_scale", (9, 4), weight_decay=0.1, grad_scale=0.5),
        case("square_gram", (5, 5), lr=0.05),
        case("wide_standard", (3, 7), momentum=0.9, ns_method="standard", weight_decay=0.01),
        case("filter_4d", (4, 2, 3, 1), lr=0.01),
        case("batched_3d", (2, 3, 5), ns_method="standard"),
    ]
    out = os.path.join(HERE, "data", "muon_cases.json")
    with open(out, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
