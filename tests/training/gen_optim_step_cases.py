#!/opt/torchenv/bin/python
# Writes data/optim_step_cases.json: reference steps of the element-wise optimizers that OptimStep
# runs (ir/optim_algorithms.h), for tests/training/optim_step_test.cc. torch.optim's classes run
# single-tensor on the CPU (foreach=False); Lion follows DeepSpeed's FusedLion kernel
# (csrc/lion/multi_tensor_lion.cu), written here in float32 torch ops since torch has no Lion.
#
# Needs torch >= 2.0 (run with /opt/torchenv/bin/python): torch 1.13's NAdam multiplies mu into
# mu_product_next twice, which torch 2.0 fixed, and current torch is what DeepSpeed runs on.
import json
import os

import torch

assert int(torch.__version__.split(".")[0]) >= 2, "torch >= 2.0 is needed (NAdam changed in 2.0)"
torch.manual_seed(0)
F32 = torch.float32


def vals(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def rand(*shape):
    return torch.randn(*shape, dtype=F32)


def lion_steps(p, m, grads, lr, betas, wd, beta1_schedule=None):
    """DeepSpeed's LionFunctor: every factor a float, c == 0 (or NaN) moves the parameter by +lr.
    beta1_schedule: each step's beta1 (OneCycle's cycled momentum), else betas[0]."""
    b2 = torch.tensor(betas[1], dtype=F32)
    flr, fwd = torch.tensor(lr, dtype=F32), torch.tensor(wd, dtype=F32)
    one = torch.tensor(1.0, dtype=F32)
    after_decay = one - flr * fwd
    out = []
    for k, g in enumerate(grads):
        b1 = torch.tensor(beta1_schedule[k] if beta1_schedule else betas[0], dtype=F32)
        c = b1 * m + (one - b1) * g
        update = torch.where(c > 0, -flr, flr)
        p = p * after_decay + update
        m = b2 * m + (one - b2) * g
        out.append({"param": vals(p), "states": [vals(m)]})
    return out


# (attribute of OptimStep, torch constructor keyword) for the float hyper-parameters.
TORCH_NAMES = {"epsilon": "eps", "lr_decay": "lr_decay", "weight_decay": "weight_decay",
               "initial_accumulator_value": "initial_accumulator_value", "alpha": "alpha",
               "momentum": "momentum", "momentum_decay": "momentum_decay", "rho": "rho"}
TORCH_CLASSES = {"adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop, "adamax": torch.optim.Adamax,
                 "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam, "adadelta": torch.optim.Adadelta}
# The state names OptimStep takes, in input order (ir/optim_algorithms.h's OptimStateSuffixes).
def state_names(algorithm, attrs):
    if algorithm == "lion":
        return ["exp_avg"]
    if algorithm == "adagrad":
        return ["sum"]
    if algorithm == "rmsprop":
        s = ["square_avg"]
        if attrs.get("momentum", 0) != 0:
            s.append("momentum_buffer")
        if attrs.get("centered", 0):
            s.append("grad_avg")
        return s
    if algorithm == "adamax":
        return ["exp_avg", "exp_inf"]
    if algorithm in ("nadam", "radam"):
        return ["exp_avg", "exp_avg_sq"]
    if algorithm == "adadelta":
        return ["square_avg", "acc_delta"]
    raise ValueError(algorithm)


def case(name, algorithm, attrs, lr, steps=4, grad_scale=1.0, n=7, zero_grad_at=None, beta1_schedule=None):
    """`attrs`: OptimStep's attributes (beta1/beta2 for betas, flags 0/1). The gradient handed to
    the optimizer is grad * grad_scale, as OptimStep scales its grad input. `beta1_schedule`: each
    step's beta1, written into group['betas'] before the step as DeepSpeed's OneCycle does (OptimStep's
    beta1_override input)."""
    p0, grads = rand(n), [rand(n) for _ in range(steps)]
    if zero_grad_at is not None:
        for g in grads:
            g[zero_grad_at] = 0.0  # Lion: c == 0 at the first step
    scaled = [g * grad_scale for g in grads]
    names = state_names(algorithm, attrs)
    if algorithm == "lion":
        expected = lion_steps(p0.clone(), torch.zeros(n, dtype=F32), scaled, lr,
                              (attrs["beta1"], attrs["beta2"]), attrs["weight_decay"], beta1_schedule)
    else:
        kw = {TORCH_NAMES[k]: v for k, v in attrs.items() if k in TORCH_NAMES}
        if "beta1" in attrs:
            kw["betas"] = (attrs["beta1"], attrs["beta2"])
        for flag in ("centered", "decoupled_weight_decay"):
            if flag in attrs:
                kw[flag] = bool(attrs[flag])
        p = p0.clone().requires_grad_(True)
        opt = TORCH_CLASSES[algorithm]([p], lr=lr, foreach=False, **kw)
        expected = []
        for k, g in enumerate(scaled):
            p.grad = g.clone()
            if beta1_schedule:
                opt.param_groups[0]["betas"] = (beta1_schedule[k], attrs["beta2"])
            opt.step()
            st = opt.state[p]
            expected.append({"param": vals(p), "states": [vals(st[s]) for s in names]})
            if algorithm == "nadam" and beta1_schedule:  # OptimStep's mu_product input (a float32 scalar)
                expected[-1]["mu_product"] = float(st["mu_product"].item())
    return {"name": name, "algorithm": algorithm, "attrs": attrs, "states": names, "lr": lr,
            "grad_scale": grad_scale, "param": vals(p0), "grads": [vals(g) for g in grads],
            "beta1_schedule": beta1_schedule or [], "expected": expected}


def main():
    cases = [
        case("lion", "lion", {"beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0}, lr=1e-3, zero_grad_at=3),
        case("lion_wd_betas_scale", "lion", {"beta1": 0.95, "beta2": 0.98, "weight_decay": 0.1}, lr=3e-2,
             grad_scale=0.5),
        case("adagrad", "adagrad", {"lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0,
                                    "epsilon": 1e-10}, lr=1e-2),
        case("adagrad_decay_wd_init", "adagrad", {"lr_decay": 0.1, "weight_decay": 0.05,
                                                  "initial_accumulator_value": 0.2, "epsilon": 1e-6},
             lr=5e-2, grad_scale=0.37),
        case("rmsprop", "rmsprop", {"alpha": 0.99, "epsilon": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                                    "centered": 0}, lr=1e-2),
        case("rmsprop_momentum", "rmsprop", {"alpha": 0.9, "epsilon": 1e-8, "weight_decay": 0.0, "momentum": 0.9,
                                             "centered": 0}, lr=1e-2),
        case("rmsprop_centered", "rmsprop", {"alpha": 0.99, "epsilon": 1e-6, "weight_decay": 0.01, "momentum": 0.0,
                                             "centered": 1}, lr=1e-3),
        case("rmsprop_centered_momentum_wd", "rmsprop", {"alpha": 0.95, "epsilon": 1e-8, "weight_decay": 0.1,
                                                         "momentum": 0.5, "centered": 1}, lr=1e-2, grad_scale=2.0),
        case("adamax", "adamax", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0}, lr=2e-3),
        case("adamax_wd_betas", "adamax", {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6, "weight_decay": 0.05},
             lr=1e-2, grad_scale=0.5),
        case("nadam", "nadam", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0,
                                "momentum_decay": 4e-3, "decoupled_weight_decay": 0}, lr=2e-3, steps=6),
        case("nadam_l2", "nadam", {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8, "weight_decay": 0.1,
                                   "momentum_decay": 1e-2, "decoupled_weight_decay": 0}, lr=1e-2),
        case("nadam_decoupled", "nadam", {"beta1": 0.85, "beta2": 0.999, "epsilon": 1e-7, "weight_decay": 0.1,
                                          "momentum_decay": 4e-3, "decoupled_weight_decay": 1}, lr=1e-2),
        # beta2 0.999 crosses rho_t > 5 at step 6: both branches of RAdam.
        case("radam", "radam", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0,
                                "decoupled_weight_decay": 0}, lr=1e-3, steps=8),
        case("radam_l2", "radam", {"beta1": 0.9, "beta2": 0.95, "epsilon": 1e-8, "weight_decay": 0.05,
                                   "decoupled_weight_decay": 0}, lr=1e-2, steps=8),
        case("radam_decoupled", "radam", {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.1,
                                          "decoupled_weight_decay": 1}, lr=1e-2, steps=8, grad_scale=0.5),
        case("adadelta", "adadelta", {"rho": 0.9, "epsilon": 1e-6, "weight_decay": 0.0}, lr=1.0),
        case("adadelta_wd_rho", "adadelta", {"rho": 0.95, "epsilon": 1e-5, "weight_decay": 0.05}, lr=0.5,
             grad_scale=0.25),
        # OneCycle's cycled momentum: beta1 changes every step (fed as beta1_override), beta2 0.99.
        case("lion_beta1_schedule", "lion", {"beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1}, lr=1e-2,
             beta1_schedule=[0.8, 0.95, 0.9125, 0.85]),
        case("adamax_beta1_schedule", "adamax", {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8, "weight_decay": 0.05},
             lr=1e-2, beta1_schedule=[0.8, 0.95, 0.9125, 0.85]),
        case("radam_beta1_schedule", "radam", {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8, "weight_decay": 0.1,
                                               "decoupled_weight_decay": 1}, lr=1e-2, steps=8,
             beta1_schedule=[0.8, 0.95, 0.9125, 0.85, 0.8125, 0.8, 0.84, 0.88]),
        # NAdam's mu_product multiplies every step's mu with that step's beta1 (OptimStep's mu_product input).
        case("nadam_beta1_schedule", "nadam", {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8, "weight_decay": 0.0,
                                               "momentum_decay": 4e-3, "decoupled_weight_decay": 0}, lr=1e-2, steps=8,
             beta1_schedule=[0.6, 0.95, 0.7, 0.85, 0.6125, 0.9, 0.8, 0.65]),
        case("nadam_l2_beta1_schedule", "nadam", {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8, "weight_decay": 0.1,
                                                  "momentum_decay": 1e-2, "decoupled_weight_decay": 0}, lr=1e-2,
             beta1_schedule=[0.8, 0.95, 0.9125, 0.85]),
        case("nadam_decoupled_beta1_schedule", "nadam", {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-7,
                                                         "weight_decay": 0.1, "momentum_decay": 4e-3,
                                                         "decoupled_weight_decay": 1}, lr=1e-2, grad_scale=0.5,
             beta1_schedule=[0.7, 0.95, 0.6, 0.85]),
    ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "optim_step_cases.json")
    with open(out, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
