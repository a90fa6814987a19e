"""DeepSpeed's 1-bit Adam (OnebitAdam) on `world` simulated data-parallel ranks, for the reference
trajectories: written from deepspeedai/DeepSpeed at edaa72212,
deepspeed/runtime/fp16/onebit/adam.py (OnebitAdam.step) and deepspeed/runtime/comm/nccl.py
(NcclBackend.compressed_allreduce; mpi.py's is the same arithmetic over other transfers).

What DeepSpeed does, and this file reproduces:
  * The engine all-reduces (averages) gradients until the optimizer freezes; after that
    `enable_backward_allreduce` is False and each rank's optimizer sees its own gradient.
  * step() call 1 only initialises (adam_freeze_key turns True while the error buffers are made,
    so the first call takes the compressed branch with `initialize` False: exp_avg is not
    updated, the compressed all-reduce of the zero exp_avg returns zeros, no parameter moves).
  * Calls 2 .. max(2, freeze_step): exp_avg = b1*m + (1-b1)*g, exp_avg_sq = b2*v + (1-b2)*g^2,
    update = m / (sqrt(v) + eps) (no bias correction: `bias_correction` and `eps_inside_sqrt` are
    accepted and never read), update += wd*p, p -= lr*update. After a call with
    state['step'] >= freeze_step the optimizer freezes.
  * Frozen calls: exp_avg = b1*m + (1-b1)*g_local, then exp_avg = compressed_allreduce(exp_avg)
    with this rank's worker and server errors (fresh zeros at the first frozen call), exp_avg_sq
    frozen, and the same update. With one rank nothing is compressed.
  * The compressed all-reduce of a buffer of n elements on N ranks: padded with zeros to a
    multiple of N*divider (divider = N*8/gcd(N,8)); x += worker_error; scale = ||x||/sqrt(len);
    sign = -1 where x < 0 else +1; worker_error = x - scale*sign; rank r averages chunk r of
    every rank's sign*scale (sign*(scale*(1/N)) summed over ranks), adds its server_error,
    compresses that the same way (server_error = c - server_scale*sign), and every rank
    all-gathers the compressed chunks: the result is sign_r*server_scale_r over chunks r.
  * fp32 (no wrapper): every parameter is compressed on its own. fp16/bf16 (FP16_Optimizer,
    which engine.py:2289 selects for OnebitAdam as for a fused optimizer): each param group is one
    flat fp32 tensor, so the whole group is compressed as one buffer, and the wrapper's constructor
    (fused_optimizer.py:123 initialize_optimizer_states) makes call 1 on zero gradients, so the
    first training step is call 2 and the freeze comes one training step earlier. `wrapped=True`
    reproduces both in fp32 arithmetic (the half model's rounding is not modelled: the tests
    compare with a tolerance measured for it).
  * Arithmetic: each float32 operation rounds once (DeepSpeed's `add_(alpha, x)` and `addcmul_`
    are written as a product and a sum), the norms' sums of squares in double. DeepSpeed's own
    rounding is its GPU's; after the freeze a one-ulp difference can flip a sign that later steps
    amplify, so the reference fixes one rounding that the kernels (kernels/common/onebit_math.h)
    share.
  * Gradient clipping: fp32 DeepSpeed clips with clip_grad_norm_ over the model-parallel group
    only, so after the freeze each rank clips its own gradient by its own norm; before it the
    gradients are averaged first.
"""

import math

import torch


def divider(world):
    return world * 8 // math.gcd(world, 8)


def corrected_size(n, world):
    unit = world * divider(world)
    return n if n % unit == 0 else n + unit - n % unit


def _sign(x):
    # buffer.sign().add_(1).bool().float().add_(-0.5).mul_(2.0): -1 where x < 0, else +1 (0 and NaN too).
    return torch.where(x < 0, torch.tensor(-1.0), torch.tensor(1.0))


def _scale(x):
    # ||x|| / sqrt(numel) in float32, the sum of squares in double: DeepSpeed's float reduction
    # order (a GPU's) is reproducible nowhere else, and a scale one ulp apart moves every element.
    norm = torch.tensor(math.sqrt(float((x.double() ** 2).sum())), dtype=torch.float32)
    return norm / torch.tensor(math.sqrt(x.numel()), dtype=torch.float32)


def compressed_allreduce(buffers, worker_errors, server_errors):
    """buffers[r]: rank r's flat float32 tensor (n elements); worker_errors[r] (padded size) and
    server_errors[r] (padded size / world) are updated in place. Returns the result every rank
    gets (n elements)."""
    world = len(buffers)
    n = buffers[0].numel()
    size = worker_errors[0].numel()
    chunk = size // world
    signs, scales = [], []
    for r in range(world):
        x = torch.cat([buffers[r], torch.zeros(size - n)]) + worker_errors[r]
        s = _scale(x)
        sign = _sign(x)
        worker_errors[r].copy_(x - s * sign)
        signs.append(sign)
        scales.append(s)
    result = torch.empty(size)
    for r in range(world):
        part = torch.stack([signs[q][r * chunk:(r + 1) * chunk] * (scales[q] * (1.0 / world)) for q in range(world)])
        c = part.sum(0) + server_errors[r]
        s = _scale(c)
        sign = _sign(c)
        server_errors[r].copy_(c - s * sign)
        result[r * chunk:(r + 1) * chunk] = sign * s
    return result[:n]


class OnebitAdamReference:
    """OnebitAdam.step for `world` ranks that hold the same parameters: step(local_grads) takes
    each rank's gradient list (already averaged by the engine before the freeze, the caller's
    business) and updates the shared parameters. `groups` is a list of parameter lists; with
    `flat` every group is compressed as one buffer (FP16_Optimizer's flat fp32 groups); `calls`
    is the number of step() calls made before training (FP16_Optimizer's constructor makes one)."""

    def __init__(self, groups, world, lr=1e-3, freeze_step=100000, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, flat=False, calls=0):
        self.groups = groups
        self.world = world
        self.lr, self.freeze_step, self.betas, self.eps, self.wd = lr, freeze_step, betas, eps, weight_decay
        self.flat = flat
        self.params = [p for g in groups for p in g]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.calls = calls
        self.frozen = False
        self.errors = None  # per compressed unit: (worker errors per rank, server errors per rank)

    def units(self):
        """Index lists of the parameters compressed together."""
        if self.flat:
            out, k = [], 0
            for g in self.groups:
                out.append(list(range(k, k + len(g))))
                k += len(g)
            return out
        return [[i] for i in range(len(self.params))]

    def reset_errors(self):
        """DeepSpeed pops the errors on checkpoint load; they are made again, zero, when needed."""
        self.errors = None

    @torch.no_grad()
    def step(self, local_grads):
        self.calls += 1
        if self.calls == 1:
            return
        b1, b2 = self.betas
        if not self.frozen:
            g = local_grads[0]  # averaged: every rank's is the same
            for i, p in enumerate(self.params):
                self.m[i].copy_(self._moment(self.m[i], g[i]))
                self.v[i].copy_(self.v[i] * b2 + ((1 - b2) * g[i]) * g[i])
            self._apply()
            if self.calls >= self.freeze_step:
                self.frozen = True
            return
        units = self.units()
        if self.world > 1 and self.errors is None:
            self.errors = []
            for u in units:
                size = corrected_size(sum(self.params[i].numel() for i in u), self.world)
                self.errors.append(([torch.zeros(size) for _ in range(self.world)],
                                    [torch.zeros(size // self.world) for _ in range(self.world)]))
        for k, u in enumerate(units):
            per_rank = []
            for r in range(self.world):
                parts = [self._moment(self.m[i], local_grads[r][i]).reshape(-1) for i in u]
                per_rank.append(torch.cat(parts))
            if self.world > 1:
                out = compressed_allreduce(per_rank, self.errors[k][0], self.errors[k][1])
            else:
                out = per_rank[0]
            at = 0
            for i in u:
                n = self.params[i].numel()
                self.m[i].copy_(out[at:at + n].reshape(self.m[i].shape))
                at += n
        self._apply()

    def _moment(self, m, g):
        """exp_avg.mul_(beta1).add_(1 - beta1, grad), one rounding per operation."""
        return m * self.betas[0] + (1 - self.betas[0]) * g

    def _apply(self):
        for i, p in enumerate(self.params):
            update = self.m[i] / (self.v[i].sqrt() + self.eps)
            if self.wd > 0.0:
                update = update + self.wd * p
            p.copy_(p + (-self.lr) * update)


ONEBIT_ADAM_DEFAULTS = dict(lr=1e-3, freeze_step=100000, bias_correction=True, betas=(0.9, 0.999), eps=1e-8,
                            eps_inside_sqrt=False, weight_decay=0.0, max_grad_norm=0.0, amsgrad=False,
                            cuda_aware=False, comm_backend_name="nccl")


def optimizer_params(cfg, defaults, name, amsgrad_message):
    """The config's optimizer.params over `defaults`, refusing unknown keys and amsgrad as
    DeepSpeed's 1-bit optimizers do."""
    kw = dict(defaults)
    given = dict(cfg["optimizer"].get("params") or {})
    unknown = set(given) - set(kw)
    if unknown:
        raise ValueError("optimizer.params: not %s parameters: %s" % (name, sorted(unknown)))
    if given.get("amsgrad"):
        raise ValueError(amsgrad_message)
    kw.update(given)
    return kw


def describe(type_name, world, kw, groups, wrapped, skipped, resume_after, extra=None):
    """The reference's description of its run: the optimizer's arguments (after `extra`), its
    parameter groups (each {"group", "names", "lr_scale"[, "weight_decay"]}) when there are any,
    and how it ran."""
    desc = {"type": type_name, "world": world, **(extra or {}), **kw}
    if groups:
        desc["param_groups"] = [{"group": g["group"], "lr": kw["lr"] * g["lr_scale"],
                                 "weight_decay": g.get("weight_decay", kw["weight_decay"]), "params": g["names"]}
                                for g in groups]
    if wrapped:
        desc["wrapped"] = True
    if skipped:
        desc["skipped_steps"] = sorted(skipped)
    if resume_after:
        desc["resumed_after"] = resume_after
    return desc


def train_ranks(module, params, in_names, tensors, steps, world, tb, mb, gas, clip, averaged, step,
                before_rank=None):
    """Trains `steps` steps of `world` simulated ranks, as dsrun's data loader feeds them: each rank's
    gradients (gas micro-batches) are averaged across ranks when averaged(k) says the engine
    all-reduces step k + 1, clipped per rank by its own norm, and handed to step(k, grads per rank).
    before_rank(r), when given, runs before rank r's micro-batches (per-rank parameters). Returns
    the loss averaged over every rank's micro-batches (as dsrun reports it) and rank 0's norm."""
    n = next(iter(tensors.values())).shape[0]
    spe = n // tb
    module.train()
    losses, norms = [], []
    for k in range(steps):
        start = (k % spe) * tb
        local, micro = [], []
        for r in range(world):
            if before_rank:
                before_rank(r)
            for p in params:
                p.grad = None
            for a in range(gas):
                s = start + (a * world + r) * mb  # the data loader's first_sample(a) on rank r
                loss = module(*[tensors[nm][s:s + mb] for nm in in_names])
                micro.append(float(loss.detach()))
                (loss / gas).backward()
            local.append([p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params])
        if averaged(k):
            avg = [torch.stack([local[r][i] for r in range(world)]).mean(0) for i in range(len(params))]
            local = [avg for _ in range(world)]
        norm0 = None
        for r in range(world):
            total = torch.norm(torch.stack([torch.norm(g, 2.0) for g in local[r]]), 2.0)
            if r == 0:
                norm0 = float(total)
            if clip > 0:
                coef = clip / (float(total) + 1e-6)
                if coef < 1:
                    local[r] = [g * coef for g in local[r]]
        step(k, local)
        losses.append(sum(micro) / len(micro))
        norms.append(norm0)
    return losses, norms


def train_onebit(module, in_names, tensors, cfg, steps, world, tb, mb, gas, clip, wrapped, resume_after=0,
                 skipped=()):
    """The reference trajectory of OnebitAdam on `world` ranks: the loss averaged over every
    rank's micro-batches (as dsrun reports it), rank 0's gradient norm, the lr. `wrapped`: under
    DeepSpeed's fp16/bf16 wrapper (flat groups, one call before training). `resume_after` = k:
    the run is saved after step k and resumed, which drops the compression errors (DeepSpeed's
    load_state_dict pops them). `skipped`: the 1-based steps whose gradients overflow, which
    FP16_Optimizer.step skips before calling the optimizer (fused_optimizer.py:264)."""
    kw = optimizer_params(cfg, ONEBIT_ADAM_DEFAULTS, "OnebitAdam", "1-bit Adam does not support the AMSGrad variant.")
    params = [p for p in module.parameters() if p.requires_grad]
    opt = OnebitAdamReference([params], world, lr=kw["lr"], freeze_step=kw["freeze_step"],
                              betas=tuple(kw["betas"]), eps=kw["eps"], weight_decay=kw["weight_decay"], flat=wrapped,
                              calls=1 if wrapped else 0)

    def step(k, grads):
        if k + 1 not in skipped:
            opt.step(grads)
        if k + 1 == resume_after:
            opt.reset_errors()

    # The engine averages gradients until the freeze.
    losses, norms = train_ranks(module, params, in_names, tensors, steps, world, tb, mb, gas, clip,
                                lambda k: not opt.frozen, step)
    lrs = [float(kw["lr"])] * steps
    desc = describe("OnebitAdam", world, kw, None, wrapped, skipped, resume_after, {"flat": wrapped})
    return losses, norms, lrs, desc
