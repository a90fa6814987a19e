"""DeepSpeed's 0/1 Adam (ZeroOneAdam) on `world` simulated data-parallel ranks, for the reference
trajectories: written from deepspeedai/DeepSpeed, deepspeed/runtime/fp16/onebit/zoadam.py
(ZeroOneAdam.step) and engine.py (which gradient all-reduces run), with the compressed all-reduce
of models/onebit_reference.py (runtime/comm/nccl.py compressed_allreduce).

What DeepSpeed does, and this file reproduces (line numbers of zoadam.py):
  * step() call 1 only initialises (228-233, 292-301): the compressed all-reduce of the zero
    momentum accumulator returns zeros; nothing else moves.
  * Before the freeze a step s is a variance step when s % var_interval == 0 (210): exp_avg_sq =
    b2*v + (1-b2)*g^2 and exp_avg = b1*m + (1-b1)*g with the engine-averaged gradient. Otherwise
    (213-222) the rank's own gradient goes through the compressed all-reduce (the worker and server
    errors of the parameter) and exp_avg = b1*m + (1-b1)*that; on one rank exp_avg does not move.
    After a variance step var_counter += 1, and at var_update_scaler var_interval doubles
    (269-274); the engine all-reduces a step's gradients only when it is a variance step
    (275-284; call 1's gradients too, the engine's default).
  * Every step from 2: update = exp_avg / (sqrt(exp_avg_sq) + eps) (no bias correction;
    bias_correction, eps_inside_sqrt and max_grad_norm are accepted and never read), update +=
    wd*p, p += -lr*update (239-244).
  * After a step s > var_freeze_step (303-308) the optimizer freezes: no gradient all-reduce
    again, the errors restart from zero (310-317). Frozen steps (223-225, 245-264): exp_avg = b1*m
    + (1-b1)*g_local, lrs += lr, the update above, and the momentum accumulator u += -lr*update.
    A step with s % local_step_interval == 0 synchronises: p -= u; u *= sqrt(v) + eps;
    u = compressed_allreduce(u) (more than one rank); exp_avg = -u / lrs; p += u / (sqrt(v) + eps);
    u = 0; lrs = 0. After every frozen step local_step_counter += 1 and, at local_step_scaler,
    local_step_interval = min(local_step_clipper, 2*local_step_interval) (285-290).
  * Between synchronisations each rank's parameters and momentum are its own: this file keeps
    them per rank, and the loss of rank r's micro-batches is computed with rank r's parameters.
  * load_state_dict (321-363) pops the errors and the momentum accumulator (lrs restarts at 0
    with them, 178-186); a resume here keeps everything else and every rank takes rank 0's saved
    parameters and states, as DeepSpeed's rank 0 saves them. (DeepSpeed's fresh optimizer also
    re-runs call 1's initialisation and restarts var_interval and local_step_interval at 1; that
    part is not reproduced: dscompile's schedule is a function of the step.)
  * fp16/bf16 (engine.py:2289: FP16_Optimizer, as for a fused optimizer): the param group is one
    flat fp32 tensor, so every compressed all-reduce takes the whole model as one buffer, and the
    wrapper's constructor makes call 1 (fused_optimizer.py:123), so training step k is call k + 1;
    `wrapped=True` reproduces both in fp32 arithmetic (the half model's rounding is not modelled).
  * Arithmetic: float32, one rounding per torch operation; lrs sums the lrs in double (a Python
    float) and divides as a float32 scalar.
"""

import math

import torch

import onebit_reference as OB


class Schedule:
    """The step schedule (kernels/common/zoadam_math.h ZoadamSchedule says the same), simulated
    the way zoadam.py keeps its counters."""

    def __init__(self, var_freeze_step, var_update_scaler, local_step_scaler, local_step_clipper):
        self.var_freeze_step = var_freeze_step
        self.var_update_scaler = var_update_scaler
        self.local_step_scaler = local_step_scaler
        self.local_step_clipper = local_step_clipper
        self.var_interval, self.var_counter = 1, 0
        self.local_step_interval, self.local_step_counter = 1, 0
        self.frozen = False

    def variance_step(self, step):
        return step % self.var_interval == 0

    def sync_step(self, step):
        return self.frozen and step % self.local_step_interval == 0

    def after(self, step):
        """The bookkeeping at the end of call `step` >= 2 (zoadam.py:269-290, 303-304)."""
        if not self.frozen:
            if step % self.var_interval == 0:
                self.var_counter += 1
                if self.var_counter == self.var_update_scaler:
                    self.var_counter = 0
                    self.var_interval *= 2
        else:
            self.local_step_counter += 1
            if self.local_step_counter == self.local_step_scaler:
                self.local_step_counter = 0
                self.local_step_interval = min(self.local_step_clipper, self.local_step_interval * 2)
        if step > self.var_freeze_step and not self.frozen:
            self.frozen = True
            return True  # the errors restart
        return False


class ZeroOneAdamReference:
    """ZeroOneAdam.step for `world` ranks: params[r] is rank r's parameter list; step(local_grads)
    takes each rank's gradient list (averaged by the caller on variance steps). `flat`: every
    parameter in one compressed buffer (FP16_Optimizer's flat group); `calls`: step() calls made
    before training (FP16_Optimizer's constructor makes one)."""

    def __init__(self, params, world, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, var_freeze_step=100000,
                 var_update_scaler=16, local_step_scaler=32678, local_step_clipper=16, flat=False, calls=0,
                 group_of=None):
        """group_of[i] = (lr, weight_decay) of parameter i's param group (None: every parameter
        takes `lr` and `weight_decay`): DeepSpeed reads group['lr'] and group['weight_decay'] per
        parameter, and each parameter's state['lrs'] sums its own group's lr."""
        self.params = params
        self.world = world
        self.betas, self.eps = betas, eps
        group_of = group_of or [(lr, weight_decay)] * len(params[0])
        self.lr = [g[0] for g in group_of]
        self.wd = [g[1] for g in group_of]
        self.sched = Schedule(var_freeze_step, var_update_scaler, local_step_scaler, local_step_clipper)
        k = len(params[0])
        self.m = [[torch.zeros_like(p) for p in params[0]] for _ in range(world)]
        self.v = [torch.zeros_like(p) for p in params[0]]
        self.u = [[torch.zeros_like(p) for p in params[0]] for _ in range(world)]
        self.lrs = [[0.0] * len(params[0]) for _ in range(world)]
        self.calls = calls
        self.units = [list(range(k))] if flat else [[i] for i in range(k)]
        self.reset_errors()
        self.k = k

    def reset_errors(self):
        self.errors = []
        for unit in self.units:
            size = OB.corrected_size(sum(self.params[0][i].numel() for i in unit), self.world)
            self.errors.append(([torch.zeros(size) for _ in range(self.world)],
                                [torch.zeros(size // self.world) for _ in range(self.world)]))

    def resume(self):
        """A checkpoint load: every rank takes rank 0's parameters and momentum; the errors, the
        momentum accumulators and lrs are zero again."""
        for r in range(1, self.world):
            for i in range(self.k):
                self.params[r][i].copy_(self.params[0][i])
                self.m[r][i].copy_(self.m[0][i])
        self.u = [[torch.zeros_like(p) for p in self.params[0]] for _ in range(self.world)]
        self.lrs = [[0.0] * self.k for _ in range(self.world)]
        self.reset_errors()

    def uses_allreduce(self, step):
        """Whether the engine all-reduces the gradients of call `step` (1-based)."""
        return not self.sched.frozen and (step == 1 or self.sched.variance_step(step))

    def _compressed(self, u, bufs):
        """Unit u's compressed all-reduce of bufs[r] (rank r's list of the unit's tensors)."""
        if self.world == 1:
            return bufs[0]
        out = OB.compressed_allreduce([torch.cat([b.reshape(-1) for b in bs]) for bs in bufs], self.errors[u][0],
                                      self.errors[u][1])
        parts, at = [], 0
        for b in bufs[0]:
            parts.append(out[at:at + b.numel()].reshape(b.shape))
            at += b.numel()
        return parts

    @torch.no_grad()
    def step(self, grads):
        # Element-wise every phase is zoadam.py's per-parameter loop; only the compressed
        # all-reduces see a whole unit (a parameter, or with `flat` the model).
        self.calls += 1
        s = self.calls
        if s == 1:
            return
        b1, b2 = self.betas
        sched = self.sched
        if not sched.frozen and sched.variance_step(s):
            for i in range(self.k):
                g = grads[0][i]
                self.v[i].copy_(self.v[i] * b2 + ((1 - b2) * g) * g)
                for r in range(self.world):
                    self.m[r][i].copy_(self.m[r][i] * b1 + (1 - b1) * g)
        elif not sched.frozen and self.world > 1:
            for u, unit in enumerate(self.units):
                c = self._compressed(u, [[grads[r][i] for i in unit] for r in range(self.world)])
                for j, i in enumerate(unit):
                    for r in range(self.world):
                        self.m[r][i].copy_(self.m[r][i] * b1 + (1 - b1) * c[j])
        elif sched.frozen:
            for i in range(self.k):
                for r in range(self.world):
                    self.m[r][i].copy_(self.m[r][i] * b1 + (1 - b1) * grads[r][i])
        denoms = [self.v[i].sqrt() + self.eps for i in range(self.k)]
        for i in range(self.k):
            for r in range(self.world):
                p = self.params[r][i]
                update = self.m[r][i] / denoms[i]
                if self.wd[i] > 0.0:
                    update = update + self.wd[i] * p
                delta = (-self.lr[i]) * update
                p.copy_(p + delta)
                if sched.frozen:
                    self.u[r][i].copy_(self.u[r][i] + delta)
        if sched.sync_step(s):
            for i in range(self.k):
                for r in range(self.world):
                    self.params[r][i].copy_(self.params[r][i] + (-1 * self.u[r][i]))
                    self.u[r][i].copy_(self.u[r][i] * denoms[i])
            for u, unit in enumerate(self.units):
                c = self._compressed(u, [[self.u[r][i] for i in unit] for r in range(self.world)])
                for j, i in enumerate(unit):
                    for r in range(self.world):
                        lrs = torch.tensor(self.lrs[r][i] + self.lr[i], dtype=torch.float32)
                        self.m[r][i].copy_(-(c[j] / lrs))
                        self.params[r][i].copy_(self.params[r][i] + c[j] / denoms[i])
                        self.u[r][i].zero_()
        if sched.frozen:
            self.lrs = [[0.0 if sched.sync_step(s) else x + lr for x, lr in zip(xs, self.lr)] for xs in self.lrs]
        if sched.after(s):
            self.reset_errors()


ZERO_ONE_ADAM_DEFAULTS = dict(lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, eps_inside_sqrt=False,
                              weight_decay=0.0, max_grad_norm=0.0, var_freeze_step=100000, var_update_scaler=16,
                              local_step_scaler=32678, local_step_clipper=16, amsgrad=False, cuda_aware=False,
                              comm_backend_name="nccl")


def train_zoadam(module, in_names, tensors, cfg, steps, world, tb, mb, gas, clip, resume_after=0, wrapped=False,
                 skipped=(), groups=None):
    """The reference trajectory of ZeroOneAdam on `world` ranks: the loss averaged over every
    rank's micro-batches (each with its rank's parameters), rank 0's gradient norm, the lr.
    `resume_after` = k: saved after step k and resumed (ZeroOneAdamReference.resume). `wrapped`:
    under DeepSpeed's fp16/bf16 wrapper (one flat buffer, one call before training). `skipped`: the
    1-based steps whose gradients overflow, which the wrapper skips before calling the optimizer.
    `groups`: the config's "dscompile" parameter groups (reference_trajectories.param_groups: dicts
    with params, lr_scale and maybe weight_decay), each a torch param group of lr*lr_scale and its
    own weight decay (else the optimizer's)."""
    kw = OB.optimizer_params(cfg, ZERO_ONE_ADAM_DEFAULTS, "ZeroOneAdam", "0/1 Adam does not support the AMSGrad variant.")
    shared = [p for p in module.parameters() if p.requires_grad]
    group_of = None
    if groups and isinstance(groups[0], dict):
        of = {id(p): (kw["lr"] * g["lr_scale"], g.get("weight_decay", kw["weight_decay"])) for g in groups for p in g["params"]}
        group_of = [of[id(p)] for p in shared]
    per_rank = [[p.detach().clone() for p in shared] for _ in range(world)]
    opt = ZeroOneAdamReference(per_rank, world, lr=kw["lr"], betas=tuple(kw["betas"]), eps=kw["eps"],
                               weight_decay=kw["weight_decay"], var_freeze_step=kw["var_freeze_step"],
                               var_update_scaler=kw["var_update_scaler"], local_step_scaler=kw["local_step_scaler"],
                               local_step_clipper=kw["local_step_clipper"], flat=wrapped, calls=1 if wrapped else 0,
                               group_of=group_of)

    def own_parameters(r):
        with torch.no_grad():
            for p, q in zip(shared, per_rank[r]):
                p.copy_(q)

    def step(k, grads):
        if k + 1 not in skipped:
            opt.step(grads)
        if k + 1 == resume_after:
            opt.resume()

    losses, norms = OB.train_ranks(module, shared, in_names, tensors, steps, world, tb, mb, gas, clip,
                                   lambda k: opt.uses_allreduce(opt.calls + 1), step, own_parameters)
    lrs = [float(kw["lr"])] * steps
    desc = OB.describe("ZeroOneAdam", world, kw, groups if group_of else None, wrapped, skipped, resume_after)
    return losses, norms, lrs, desc
