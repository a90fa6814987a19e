#!/opt/torchenv/bin/python
# Writes data/lamb_cases.json: reference steps of DeepSpeed's FusedLamb for LambMoments/LambApply
# (tests/training/lamb_step_test.cc), from fused_lamb_step in models/reference_trajectories.py (the
# same reference the lamb trajectories come from, written from DeepSpeed's CUDA kernel). Each step
# records the tensor's sums of squares (LambMoments' output) and the new param and moments.
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
from reference_trajectories import fused_lamb_step  # noqa: E402

torch.manual_seed(0)
F32 = torch.float32


def vals(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def case(name, lr, steps=4, n=7, grad_scale=1.0, param_scale=1.0, zero_param=False, zero_grad_first=False,
         beta1_schedule=None, **attrs):
    """attrs: the ops' attributes (beta1, beta2, epsilon, weight_decay, eps_inside_sqrt, bias_correction,
    max_coeff, min_coeff), FusedLamb's defaults where not given. beta1_schedule: each step's beta1, as
    OneCycle writes it into group['betas'] (the ops' beta1_override input)."""
    a = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0, "eps_inside_sqrt": 0,
         "bias_correction": 1, "max_coeff": 10.0, "min_coeff": 0.01}
    a.update(attrs)
    p0 = torch.zeros(n, dtype=F32) if zero_param else torch.randn(n, dtype=F32) * param_scale
    grads = [torch.randn(n, dtype=F32) for _ in range(steps)]
    if zero_grad_first:
        grads[0].zero_()
    p, m, v = p0.clone(), torch.zeros(n, dtype=F32), torch.zeros(n, dtype=F32)
    expected = []
    for k, g in enumerate(grads):
        b1 = beta1_schedule[k] if beta1_schedule else a["beta1"]
        w2, u2, coeff = fused_lamb_step(p, g, m, v, k + 1, lr, (b1, a["beta2"]), a["epsilon"],
                                        a["weight_decay"], bool(a["eps_inside_sqrt"]), bool(a["bias_correction"]),
                                        a["max_coeff"], a["min_coeff"], grad_scale)
        expected.append({"sums": [w2, u2], "coeff": coeff, "param": vals(p), "exp_avg": vals(m),
                         "exp_avg_sq": vals(v)})
    return {"name": name, "attrs": a, "lr": lr, "grad_scale": grad_scale, "param": vals(p0),
            "grads": [vals(g) for g in grads], "beta1_schedule": beta1_schedule or [], "expected": expected}


def main():
    cases = [
        case("default", lr=1e-3),
        case("weight_decay_scale", lr=2e-3, weight_decay=0.01, grad_scale=0.5),
        case("eps_inside_sqrt", lr=1e-3, epsilon=1e-6, eps_inside_sqrt=1, beta1=0.85, beta2=0.99),
        case("no_bias_correction_wd", lr=1e-2, bias_correction=0, weight_decay=0.1),
        # ||p|| / ||update|| far above max_coeff and far below min_coeff: the clamps.
        case("clamp_max", lr=1e-3, param_scale=100.0, max_coeff=5.0),
        case("clamp_min", lr=1e-3, param_scale=1e-4, min_coeff=0.05),
        # ||p|| = 0 at step 1, then ||update|| = 0 at step 1: the trust ratio is 1.
        case("zero_param", lr=1e-2, zero_param=True),
        case("zero_grad_first_step", lr=1e-2, zero_grad_first=True),
        # OneCycle's cycled momentum: beta1 changes every step (the moments' decay and the bias
        # correction), beta2 0.99.
        case("beta1_schedule", lr=1e-2, weight_decay=0.01, beta2=0.99, beta1_schedule=[0.8, 0.95, 0.9125, 0.85]),
    ]
    for c in cases:  # the cases do what their names say
        coeffs = [e["coeff"] for e in c["expected"]]
        if c["name"] == "clamp_max":
            assert all(x == 5.0 for x in coeffs), coeffs
        if c["name"] == "clamp_min":
            assert all(abs(x - 0.05) < 1e-7 for x in coeffs), coeffs
        if c["name"] in ("zero_param", "zero_grad_first_step"):
            assert coeffs[0] == 1.0 and coeffs[1] != 1.0, coeffs
    out = os.path.join(HERE, "data", "lamb_cases.json")
    with open(out, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
