"""DeepSpeed's 1-bit Lamb (OnebitLamb) on `world` simulated data-parallel ranks, for the reference
trajectories: written from deepspeedai/DeepSpeed deepspeed/runtime/fp16/onebit/lamb.py
(OnebitLamb.step, lines 148-389; load_state_dict 391-448) with the compressed all-reduce of
models/onebit_reference.py (runtime/comm/nccl.py compressed_allreduce).

What DeepSpeed does, and this file reproduces (kernels/common/onebit_lamb_math.h says the same
from the kernels' side):
  * The engine all-reduces (averages) gradients until the optimizer freezes; then each rank's
    optimizer sees its own gradient (enable_backward_allreduce = False, lamb.py:380-387).
  * Call 1 only initialises (lamb_freeze_key turns True while `initialize` is False: nothing
    moves, the compressed all-reduce of the zero momenta returns zeros, :219-220, :374-378).
  * Calls 2 .. max(2, freeze_step), :230-255: Lamb without bias correction (bias_correction and
    eps_inside_sqrt are accepted and never read): m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2,
    exp_avg_sq_fresh = v at the call whose state['step'] == freeze_step, update = m/(sqrt(v)+eps)
    (+ wd*p), coeff = ||p||/||update|| clamped to [min_coeff, max_coeff] (1.0 when either norm
    is 0); only when coeff != 1.0 lamb_coeff_freeze = coeff_beta*lamb_coeff_freeze +
    (1-coeff_beta)*coeff; p += -lr*coeff*update. The call with state['step'] >= freeze_step freezes.
  * The first frozen call (:179-190) gives each tensor scaling_coeff = united/scale_i, scale_i =
    ||m_i||/sqrt(numel_i) of its momentum then, united their mean (Python floats).
  * Frozen calls: m_last = m; m = (b1*m + (1-b1)*g_local) * scaling_coeff; every tensor's
    momentum in ONE flat buffer compressed-all-reduced (world > 1; one rank compresses nothing);
    then per tensor m /= scaling_coeff, r = (m - m_last*b1)/(1-b1), exp_avg_sq_fresh = b2*f +
    (1-b2)*r^2 (exp_avg_sq frozen), denom = sqrt(v)+eps, update = m/denom (+ wd*p), factor =
    max(denom/(sqrt(f)+eps)); with weight decay factor = factor*u + (1-u), u = min(1,
    ||m/denom||/||update||); clamped to [factor_min, factor_max], then to last_factor*(1 -/+
    factor_threshold); last_factor = factor; p += -lr*lamb_coeff_freeze*factor*update.
  * load_state_dict (:391-448) drops the compression errors; before the freeze (state['step'] <
    freeze_step) it also resets lamb_coeff_freeze = 0, last_factor = 1 and drops scaling_coeff.
  * Arithmetic: each float32 tensor op rounds once, with Python floats cast to float32 where a
    tensor op takes them; division by a scalar is true division (torch's CPU kernels); the
    norms are float32 from a double sum of the float32 squares, the momentum scales as the
    compressed all-reduce's (onebit_reference._scale).
  * Gradient clipping: as 1-bit Adam (fp32 DeepSpeed clips each rank's own gradient after the freeze).
"""

import math

import torch

import onebit_reference as OB


def _norm(x):
    """x.pow(2).sum().sqrt() of a float32 tensor: the float32 squares summed in double."""
    return torch.tensor(float((x * x).double().sum()), dtype=torch.float32).sqrt()


def _f32(x):
    return torch.tensor(x, dtype=torch.float32)


class OnebitLambReference:
    """OnebitLamb.step for `world` ranks that hold the same parameters, in DeepSpeed's order (its
    param groups one after another: the order of the flat compressed buffer and of the momentum
    scales' mean). group_of[i] = (lr, weight_decay) of parameter i's group (None: `lr` and
    `weight_decay` for all): DeepSpeed reads group['lr'] and group['weight_decay'] per parameter."""

    def __init__(self, params, world, lr=1e-3, freeze_step=100000, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 max_coeff=10.0, min_coeff=0.01, coeff_beta=0.9, factor_max=4.0, factor_min=0.5,
                 factor_threshold=0.1, calls=0, group_of=None):
        self.params = params
        self.world = world
        self.freeze_step, self.betas, self.eps = freeze_step, betas, eps
        group_of = group_of or [(lr, weight_decay)] * len(params)
        self.lr = [g[0] for g in group_of]
        self.wd = [g[1] for g in group_of]
        self.max_coeff, self.min_coeff, self.coeff_beta = max_coeff, min_coeff, coeff_beta
        self.factor_max, self.factor_min, self.factor_threshold = factor_max, factor_min, factor_threshold
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.fresh = [torch.zeros_like(p) for p in params]
        self.coeff_freeze = [0.0] * len(params)
        self.last_factor = [1.0] * len(params)
        self.scaling = None
        self.calls = calls  # step() calls before training: FP16_UnfusedOptimizer's constructor makes one
        self.frozen = False
        self.errors = None

    def load_reset(self):
        """What load_state_dict does to a run saved after this many calls."""
        self.errors = None
        if self.calls < self.freeze_step:
            self.frozen = False
            self.coeff_freeze = [0.0] * len(self.params)
            self.last_factor = [1.0] * len(self.params)
            self.scaling = None
        else:
            self.frozen = True

    def _moment(self, m, g):
        return m * self.betas[0] + (1 - self.betas[0]) * g

    def _update(self, prelim, p, i):
        return prelim + self.wd[i] * p if self.wd[i] > 0.0 else prelim

    @torch.no_grad()
    def step(self, local_grads):
        self.calls += 1
        if self.calls == 1:
            return
        b1, b2 = self.betas
        if not self.frozen:
            g = local_grads[0]  # averaged by the engine: every rank's is the same
            for i, p in enumerate(self.params):
                self.m[i].copy_(self._moment(self.m[i], g[i]))
                self.v[i].copy_(self.v[i] * b2 + ((1 - b2) * g[i]) * g[i])
                if self.calls == self.freeze_step:
                    self.fresh[i].copy_(self.v[i])
                update = self._update(self.m[i] / (self.v[i].sqrt() + self.eps), p, i)
                w, u = _norm(p), _norm(update)
                coeff = 1.0
                if w != 0 and u != 0:
                    coeff = (w / u).item()
                    if coeff > self.max_coeff:
                        coeff = self.max_coeff
                    if coeff < self.min_coeff:
                        coeff = self.min_coeff
                if coeff != 1.0:
                    self.coeff_freeze[i] = self.coeff_beta * self.coeff_freeze[i] + (1 - self.coeff_beta) * coeff
                p.copy_(p + (-self.lr[i] * coeff) * update)
            if self.calls >= self.freeze_step:
                self.frozen = True
            return
        if self.scaling is None:
            scales = [OB._scale(m).item() for m in self.m]
            united = sum(scales) / len(scales)
            self.scaling = [united / s for s in scales]
        last = [m.clone() for m in self.m]
        per_rank = []
        for r in range(self.world):
            per_rank.append(torch.cat([(self._moment(self.m[i], local_grads[r][i]) * self.scaling[i]).reshape(-1)
                                       for i in range(len(self.params))]))
        if self.world > 1:
            if self.errors is None:
                size = OB.corrected_size(per_rank[0].numel(), self.world)
                self.errors = ([torch.zeros(size) for _ in range(self.world)],
                               [torch.zeros(size // self.world) for _ in range(self.world)])
            out = OB.compressed_allreduce(per_rank, self.errors[0], self.errors[1])
        else:
            out = per_rank[0]
        at = 0
        for i, p in enumerate(self.params):
            n = p.numel()
            m = out[at:at + n].reshape(p.shape) / self.scaling[i]
            at += n
            self.m[i].copy_(m)
            r = (m - last[i] * b1) / (1 - b1)
            self.fresh[i].copy_(self.fresh[i] * b2 + ((1 - b2) * r) * r)
            denom = self.v[i].sqrt() + self.eps
            prelim = m / denom
            update = self._update(prelim, p, i)
            u = _norm(update)
            factor = (denom / (self.fresh[i].sqrt() + self.eps)).max().item()
            if self.wd[i] > 0.0:
                ratio = min(1.0, (_norm(prelim) / u).item())
                factor = factor * ratio + (1.0 - ratio)
            if factor > self.factor_max:
                factor = self.factor_max
            if factor < self.factor_min:
                factor = self.factor_min
            lf = self.last_factor[i]
            if factor > lf * (1.0 + self.factor_threshold):
                factor = lf * (1.0 + self.factor_threshold)
            if factor < lf * (1.0 - self.factor_threshold):
                factor = lf * (1.0 - self.factor_threshold)
            self.last_factor[i] = factor
            p.copy_(p + (-self.lr[i] * (self.coeff_freeze[i] * factor)) * update)


ONEBIT_LAMB_DEFAULTS = dict(lr=1e-3, freeze_step=100000, bias_correction=True, betas=(0.9, 0.999), eps=1e-8,
                            eps_inside_sqrt=False, weight_decay=0.0, max_grad_norm=0.0, max_coeff=10.0, min_coeff=0.01,
                            amsgrad=False, cuda_aware=False, comm_backend_name="nccl", coeff_beta=0.9, factor_max=4.0,
                            factor_min=0.5, factor_threshold=0.1)


def train_onebit_lamb(module, in_names, tensors, cfg, steps, world, tb, mb, gas, clip, resume_after=0, wrapped=False,
                      skipped=(), groups=None):
    """The reference trajectory of OnebitLamb on `world` ranks, as onebit_reference.train_onebit
    for 1-bit Adam: the loss averaged over every rank's micro-batches, rank 0's gradient norm, the
    lr. `resume_after` = k: saved after step k and resumed (load_state_dict's resets). `wrapped`:
    under fp16/bf16 (engine.py:2324 FP16_UnfusedOptimizer: per-tensor fp32 masters, which OnebitLamb
    fuses into one momentum buffer as in fp32; its constructor, unfused_optimizer.py:407, makes
    call 1, so training step k is call k + 1). `skipped`: the 1-based steps whose gradients
    overflow, which FP16_UnfusedOptimizer.step skips before calling the optimizer. `groups`: the
    config's "dscompile" parameter groups (reference_trajectories.param_groups), each a torch param
    group of lr*lr_scale and its own weight decay (else the optimizer's), in their order."""
    kw = OB.optimizer_params(cfg, ONEBIT_LAMB_DEFAULTS, "OnebitLamb", "1-bit Lamb does not support the AMSGrad variant.")
    params = [p for p in module.parameters() if p.requires_grad]
    group_of = None
    if groups and isinstance(groups[0], dict):
        params = [p for g in groups for p in g["params"]]
        group_of = [(kw["lr"] * g["lr_scale"], g.get("weight_decay", kw["weight_decay"])) for g in groups for _ in g["params"]]
    opt = OnebitLambReference(params, world, lr=kw["lr"], freeze_step=kw["freeze_step"], betas=tuple(kw["betas"]),
                              eps=kw["eps"], weight_decay=kw["weight_decay"], max_coeff=kw["max_coeff"],
                              min_coeff=kw["min_coeff"], coeff_beta=kw["coeff_beta"], factor_max=kw["factor_max"],
                              factor_min=kw["factor_min"], factor_threshold=kw["factor_threshold"],
                              calls=1 if wrapped else 0, group_of=group_of)

    def step(k, grads):
        if k + 1 not in skipped:
            opt.step(grads)
        if k + 1 == resume_after:
            opt.load_reset()

    # The engine averages gradients until the freeze.
    losses, norms = OB.train_ranks(module, params, in_names, tensors, steps, world, tb, mb, gas, clip,
                                   lambda k: not opt.frozen, step)
    lrs = [float(kw["lr"])] * steps
    desc = OB.describe("OnebitLamb", world, kw, groups if group_of else None, wrapped, skipped, resume_after)
    return losses, norms, lrs, desc
