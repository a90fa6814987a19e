#!/usr/bin/python3
# Writes data/optimizer_cases.json: torch.optim reference trajectories for the training-op kernel
# tests and the two-program linear-regression test. Run with Debian's /usr/bin/python3 (torch 1.13).
import json
import os

import torch

torch.manual_seed(0)
F32 = torch.float32


def vals(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def rand(*shape):
    return torch.randn(*shape, dtype=F32)


def adam_case(name, steps=3, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, wd=0.0, adam_w_mode=True,
              bias_correction=True, grad_scale=1.0, beta1_schedule=None, n=7):
    """torch.optim.Adam / AdamW on one tensor; bias_correction=False follows FusedAdam's formula."""
    p0, grads = rand(n), [rand(n) for _ in range(steps)]
    p = p0.clone().requires_grad_(True)
    # OneCycle writes (beta1, 0.99) into the param group: beta2 becomes 0.99 too.
    b2 = 0.99 if beta1_schedule else betas[1]
    if bias_correction:
        cls = torch.optim.AdamW if adam_w_mode else torch.optim.Adam
        opt = cls([p], lr=lr, betas=(betas[0], b2), eps=eps, weight_decay=wd)
    m = torch.zeros(n, dtype=F32)
    v = torch.zeros(n, dtype=F32)
    expected = []
    for k, g in enumerate(grads):
        b1 = beta1_schedule[k] if beta1_schedule else betas[0]
        if bias_correction:
            for group in opt.param_groups:
                group["betas"] = (b1, b2)
            p.grad = (g * grad_scale).clone()
            opt.step()
            state = opt.state[p]
            m, v = state["exp_avg"], state["exp_avg_sq"]
        else:
            with torch.no_grad():  # FusedAdam (multi_tensor_adam.cu) with bias_correction=0
                gg = g * grad_scale
                if not adam_w_mode and wd != 0:
                    gg = gg + wd * p
                m = m * b1 + (1 - b1) * gg
                v = v * b2 + (1 - b2) * gg * gg
                update = m / (v.sqrt() + eps)
                if adam_w_mode and wd != 0:
                    update = update + wd * p
                p -= lr * update
        expected.append({"param": vals(p), "exp_avg": vals(m), "exp_avg_sq": vals(v)})
    attrs = {"beta1": betas[0], "beta2": b2, "epsilon": eps, "weight_decay": wd,
             "adam_w_mode": int(adam_w_mode), "bias_correction": int(bias_correction)}
    return {"name": name, "attrs": attrs, "lr": lr, "grad_scale": grad_scale, "param": vals(p0),
            "grads": [vals(g) for g in grads], "beta1_schedule": beta1_schedule or [], "expected": expected}


def sgd_case(name, steps=3, lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, wd=0.0, grad_scale=1.0, n=6):
    p0, grads = rand(n), [rand(n) for _ in range(steps)]
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=wd)
    expected = []
    for g in grads:
        p.grad = (g * grad_scale).clone()
        opt.step()
        buf = opt.state[p].get("momentum_buffer")
        expected.append({"param": vals(p), "momentum_buffer": vals(buf) if buf is not None else []})
    attrs = {"momentum": momentum, "dampening": dampening, "nesterov": int(nesterov), "weight_decay": wd}
    return {"name": name, "attrs": attrs, "lr": lr, "grad_scale": grad_scale, "param": vals(p0),
            "grads": [vals(g) for g in grads], "expected": expected}


def clip_cases():
    """torch.nn.utils.clip_grad_norm_'s factor for a few norms and max_norms (0: no clipping)."""
    out = []
    for max_norm in [0.0, 0.5, 1e9]:
        for norm in [0.0, 0.3, 2.5]:
            if max_norm > 0:
                coef = torch.tensor(max_norm, dtype=F32) / (torch.tensor(norm, dtype=F32) + 1e-6)
                scale = float(torch.clamp(coef, max=1.0))
            else:
                scale = 1.0
            out.append({"max_norm": max_norm, "norm": norm, "scale": scale})
    return out


def sum_squares_case():
    xs = [rand(5), rand(2, 3), rand(1)]
    total = sum(float((x.double() ** 2).sum()) for x in xs)
    return {"inputs": [{"dims": list(x.shape), "data": vals(x)} for x in xs], "sum": total}


def linreg_case(steps=3, gas=2, micro=4, lr=0.05, wd=0.01, clip=0.5):
    """y = x w^T + b (w: [1,3] as nn.Linear), MSE loss, AdamW (DeepSpeed "AdamW"), gradient_clipping,
    gas micro-steps per optimizer step."""
    w0, b0 = rand(1, 3), rand(1)
    xs = [rand(micro, 3) for _ in range(steps * gas)]
    ys = [rand(micro, 1) for _ in range(steps * gas)]
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([w, b], lr=lr, weight_decay=wd)
    losses, norms, trajectory = [], [], []
    for s in range(steps):
        for k in range(gas):
            x, y = xs[s * gas + k], ys[s * gas + k]
            loss = torch.mean((x @ w.t() + b - y) ** 2)
            losses.append(float(loss))
            (loss / gas).backward()  # DeepSpeed scales each micro-step's loss by 1/gas
        norms.append(float(torch.nn.utils.clip_grad_norm_([w, b], clip)))
        opt.step()
        opt.zero_grad()
        trajectory.append({"w": vals(w), "b": vals(b)})
    return {"gas": gas, "micro_batch": micro, "lr": lr, "weight_decay": wd, "gradient_clipping": clip,
            "w": vals(w0), "b": vals(b0), "x": [vals(x) for x in xs], "y": [vals(y) for y in ys],
            "losses": losses, "grad_norms": norms, "trajectory": trajectory}


def main():
    cases = {
        "adam": [
            adam_case("adamw"),
            adam_case("adamw_weight_decay", wd=0.1),
            adam_case("adam_l2", adam_w_mode=False, wd=0.1),
            adam_case("adamw_no_bias_correction", bias_correction=False, wd=0.05),
            adam_case("adam_l2_no_bias_correction", bias_correction=False, adam_w_mode=False, wd=0.05),
            adam_case("adamw_grad_scale", grad_scale=0.37, wd=0.01, betas=(0.8, 0.95), eps=1e-6),
            adam_case("adamw_beta1_override", beta1_schedule=[0.85, 0.9, 0.95], wd=0.01),
        ],
        "sgd": [
            sgd_case("plain"),
            sgd_case("momentum", momentum=0.9),
            sgd_case("momentum_dampening_wd", momentum=0.8, dampening=0.3, wd=0.05),
            sgd_case("nesterov", momentum=0.9, nesterov=True, wd=0.01),
            sgd_case("wd_grad_scale", wd=0.1, grad_scale=0.5),
        ],
        "clip": clip_cases(),
        "sum_squares": sum_squares_case(),
        "linreg": linreg_case(),
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "optimizer_cases.json")
    with open(out, "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
