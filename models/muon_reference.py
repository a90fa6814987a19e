"""DeepSpeed's Muon optimizer (MuonWithAuxAdam) in plain torch, for the reference trajectories and
the kernel cases: written from deepspeedai/DeepSpeed at edaa72212,
deepspeed/runtime/zero/muon/original_muon.py (function bodies kept line for line), with one
change: the Newton-Schulz iterations compute in float32. DeepSpeed picks bfloat16 ("standard")
or float16 ("gram") when the accelerator supports it and float32 otherwise; dscompile computes in
float32, so the float32 branch is the one to compare with.

The reference is the optimizer's own step on the unscaled, clipped gradient, as every other
optimizer here; DeepSpeed's ZeRO 1-3 run muon_update earlier, on the loss-scaled, unclipped
gradient while reducing it, and its stage 0 skips the orthogonalisation (docs/config.md, "Where we
differ from DeepSpeed"): without clipping, in fp32 and without accumulation, the numbers agree.

How DeepSpeed's engine builds it (engine.py:2197-2235, deepspeed/__init__.py set_optimizer_flags):
  use_muon = p.ndim >= 2 and the name, lower-cased, contains neither "embed" nor "lm_head";
  the Muon group takes lr, momentum, weight_decay, ns_method (muon_lr overrides lr), the Adam
  group lr, betas, eps, weight_decay (adam_lr overrides lr); the rest are MuonWithAuxAdam's defaults.
torch.optim.Muon (torch 2.15 in /opt/torchenv) has the same momentum and Nesterov lerps and the
same sqrt(max(1, A/B)) factor (as an adjusted lr), but runs the standard iteration in bfloat16
only, on 2-D parameters only, without the gram method or the aux Adam: not DeepSpeed's
algorithm, so it is not the reference (gen_muon_cases.py cross-checks the standard iteration
against it with bfloat16's tolerance).
"""

import torch

NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_METHODS = {"standard", "gram"}
COMPUTE_DTYPE = torch.float32


def zeropower_via_newtonschulz5(G, steps: int):
    assert G.ndim >= 2
    a, b, c = NS_COEFFS
    X = G.to(COMPUTE_DTYPE)
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


def zeropower_via_gram_newtonschulz(G, steps: int):
    assert G.ndim >= 2
    a, b, c = NS_COEFFS
    X = G.to(COMPUTE_DTYPE)
    if G.size(-2) > G.size(-1):
        X = X.mT
    n, m = X.size(-2), X.size(-1)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    if m <= n:
        for _ in range(steps):
            A = X @ X.mT
            B = b * A + c * A @ A
            X = a * X + B @ X
        if G.size(-2) > G.size(-1):
            X = X.mT
        return X
    R = X @ X.mT
    Q = None
    restart_at = 2
    for i in range(steps):
        if i == restart_at and i != 0:
            X = Q @ X
            R = X @ X.mT
            Q = None
        Z = b * R + c * R @ R
        if Q is None:
            Q = Z.clone()
            if Q.ndim == 2:
                Q.diagonal().add_(a)
            else:
                Q.diagonal(dim1=-2, dim2=-1).add_(a)
        else:
            Q = a * Q + Z @ Q
        if i < steps - 1 and (i + 1) != restart_at:
            RZ = a * R + Z @ R
            R = a * RZ + Z @ RZ
    if G.size(-2) > G.size(-1):
        X = X.mT @ Q.mT
    else:
        X = Q @ X
    return X


def muon_update(grad, momentum, beta=0.95, ns_steps=5, nesterov=True, ns_method="gram"):
    orig_dtype = grad.dtype
    momentum.lerp_(grad, 1 - beta)
    update = grad.lerp_(momentum, beta) if nesterov else momentum
    if update.ndim == 4:  # for the case of conv filters
        update = update.view(len(update), -1)
    if ns_method == "gram":
        update = zeropower_via_gram_newtonschulz(update, steps=ns_steps)
    else:
        update = zeropower_via_newtonschulz5(update, steps=ns_steps)
    update *= max(1, grad.size(-2) / grad.size(-1))**0.5
    if update.dtype != orig_dtype:
        update = update.to(orig_dtype)
    return update


def adam_update(grad, buf1, buf2, step, betas, eps):
    buf1.lerp_(grad, 1 - betas[0])
    buf2.lerp_(grad.square(), 1 - betas[1])
    buf1c = buf1 / (1 - betas[0]**step)
    buf2c = buf2 / (1 - betas[1]**step)
    return buf1c / (buf2c.sqrt() + eps)


class MuonWithAuxAdamReference(torch.optim.Optimizer):
    """SingleDeviceMuonWithAuxAdam (original_muon.py:376-443): MuonWithAuxAdam's math on one rank."""

    def __init__(self, param_groups):
        for group in param_groups:
            assert "use_muon" in group
            if group["use_muon"]:
                group["lr"] = group.get("lr", 0.02)
                group["momentum"] = group.get("momentum", 0.95)
                group["weight_decay"] = group.get("weight_decay", 0)
                group["ns_method"] = group.get("ns_method", "gram")
                assert group["ns_method"] in NS_METHODS, \
                    f"ns_method must be one of {NS_METHODS}, got {group['ns_method']}"
            else:
                group["lr"] = group.get("lr", 3e-4)
                group["betas"] = group.get("betas", (0.9, 0.95))
                group["eps"] = group.get("eps", 1e-10)
                group["weight_decay"] = group.get("weight_decay", 0)
        super().__init__(param_groups, dict())

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if group["use_muon"]:
                for p in group["params"]:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    state = self.state[p]
                    if len(state) == 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    update = muon_update(p.grad, state["momentum_buffer"], beta=group["momentum"],
                                         ns_method=group.get("ns_method", "gram"))
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(update.reshape(p.shape), alpha=-group["lr"])
            else:
                for p in group["params"]:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    state = self.state[p]
                    if len(state) == 0:
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                        state["step"] = 0
                    state["step"] += 1
                    update = adam_update(p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                                         group["betas"], group["eps"])
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(update, alpha=-group["lr"])


def uses_muon(name, p):
    """deepspeed/__init__.py set_optimizer_flags."""
    return p.ndim >= 2 and not any(k in name.lower() for k in ("embed", "lm_head"))


MUON_KEYS = ("lr", "momentum", "weight_decay", "muon_lr", "ns_method")
ADAM_KEYS = ("lr", "betas", "eps", "weight_decay", "adam_lr")


def engine_group(params, use_muon, optimizer_parameters):
    """One of the engine's two groups (engine.py:2213-2231) for `params`."""
    accepted = {}
    for key in (MUON_KEYS if use_muon else ADAM_KEYS):
        if key in optimizer_parameters:
            if key in ("muon_lr", "adam_lr"):
                accepted["lr"] = optimizer_parameters[key]
            else:
                accepted[key] = optimizer_parameters[key]
    if "betas" in accepted:
        accepted["betas"] = tuple(float(b) for b in accepted["betas"])
    return dict(params=params, use_muon=use_muon, **accepted)
