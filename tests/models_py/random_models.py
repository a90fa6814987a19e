#!/usr/bin/env python3
"""Differential fuzzing of the whole pipeline on random PyTorch models: export, dscompile, dsrun.

Each seed builds a small random nn.Module from the ops users' models are made of (elementwise
functions, broadcasting arithmetic with parameters, Linear, batched products, norms, softmax,
reductions, views, slices, concatenation, gathers, convolutions, pooling, BatchNorm, ...), its
loss computed inside the graph, and exports it the way the chosen exporter does. dscompile
compiles it for one SGD step with a large power-of-two learning rate and no momentum, dsrun takes
that step on a fixed batch and writes the trained weights as safetensors, so each parameter's
gradient is (w0 - w1) / lr. The loss and every gradient are compared with PyTorch's, computed in
float64 on the same batch.

    python random_models.py --dscompile BIN --dsrun BIN [--seeds 0-49] [--exporter legacy]
                            [--precision fp32|bf16|fp16] [--zero STAGE] [--keep DIR] [--show-source] [-v]

Exporters: legacy (torch.onnx.export with dynamo=False, opset 17, training mode, no constant
folding: the bundled models' settings; the one torch 1.13 has), dynamo (dynamo=True with its
default optimizer, as users of current PyTorch export), dynamo_noopt (optimize=False) and helper
(tools/export_for_training.py). Legacy files carry no parameter list, so PyTorch's single-element
parameters are named to dscompile with --add-trainable.

Outcomes per seed: matched; differs only in parameters a dscompile warning names (an exporter's
optimizer folded a parameter into a value no rule inverts: announced, not silent); not exported
(the exporter failed); mistranslated by the exporter (ONNX Runtime, when importable, computes
dscompile's loss from the file, or cannot run the file either); failed: anything else, printed with
the model's source so that it can be reproduced by hand.

Exit status: 0 when no seed failed, 1 when one did, 77 when torch or numpy is missing (ctest
reports a skip).
"""

import argparse
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

SKIP = 77
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BATCH = 4          # samples in dsrun's one step and in the reference
EXAMPLE_BATCH = 3  # the export's example batch: different, so a batch size baked in shows
LR = 1024.0        # a power of two: (w0 - w1) / LR loses no bits to the division
CLASSES = 3
# Per precision: the largest gradient error (max |dsc - ref| over max |ref| per tensor), the
# relative loss error against PyTorch in float64, and the noise floor of gradients that are zero
# in exact arithmetic (the sum of a softmax), as a fraction of the model's largest gradient. bf16
# and fp16 keep 8 and 11 significant bits through a chain of a dozen ops: their bounds only catch
# what is grossly wrong (a missing cast, an op computed in the wrong type), not rounding.
TOLERANCES = {"fp32": (2e-3, 1e-4, 1e-3), "bf16": (0.15, 5e-2, 3e-2), "fp16": (0.05, 1e-2, 1e-2)}


class Builder:
    """Writes a module's __init__ and forward as source lines, tracking every value's shape.

    Dim 0 of every value is the batch; no op reads or changes it, so the batch stays dynamic."""

    def __init__(self, rng, avoid):
        self.rng = rng
        self.avoid = avoid  # what the exporter at hand is known to mistranslate
        self.init = []
        self.fwd = []
        self.pool = []      # (name, shape) of values forward may use; shape[0] is BATCH
        self.n = 0
        self.inputs = []    # (name, kind, shape): kind float, ids or labels

    def fresh(self, prefix="t"):
        self.n += 1
        return "%s%d" % (prefix, self.n)

    def param(self, shape, scale=0.5):
        name = self.fresh("p")
        self.init.append("self.%s = nn.Parameter(torch.randn(%s) * %g)" % (name, list(shape), scale))
        return "self." + name

    def module(self, ctor):
        name = self.fresh("m")
        self.init.append("self.%s = %s" % (name, ctor))
        return "self." + name

    def buffer(self, expr):
        name = self.fresh("b")
        self.init.append("self.register_buffer(%r, %s)" % (name, expr))
        return "self." + name

    def emit(self, expr, shape):
        name = self.fresh()
        self.fwd.append("%s = %s" % (name, expr))
        self.pool.append((name, tuple(shape)))
        return name, tuple(shape)

    def pick(self, pred=lambda s: True):
        cands = [v for v in self.pool if pred(v[1])]
        if not cands:
            return None
        # Prefer recent values, so the graph grows deep rather than only wide.
        weights = [1.0 + i for i in range(len(cands))]
        return self.rng.choices(cands, weights)[0]


def numel(shape):
    out = 1
    for d in shape[1:]:
        out *= d
    return out


def idx(rank, dim, text):
    """Indexing code that applies `text` (a slice or index) to dim `dim`."""
    return "[" + ", ".join([":"] * dim + [text]) + "]"


UNARY = [
    "torch.relu({})", "torch.tanh({})", "torch.sigmoid({})", "F.gelu({})",
    "F.gelu({}, approximate='tanh')", "F.silu({})", "F.elu({})", "F.leaky_relu({}, 0.1)",
    "F.softplus({})", "torch.sin({})", "torch.cos({})", "torch.abs({})", "{0} * {0}",
    "{}.pow(3)", "torch.exp(torch.tanh({}))", "torch.log({0} * {0} + 1.0)",
    "torch.sqrt({0} * {0} + 0.5)", "torch.rsqrt({0} * {0} + 0.5)", "1.0 / ({0} * {0} + 1.0)",
    "torch.clamp({}, -0.5, 0.7)", "F.hardtanh({})", "F.mish({})", "F.hardswish({})",
    "torch.erf({})", "F.softsign({})", "F.selu({})", "F.celu({})", "torch.atan({})",
    "F.hardsigmoid({})", "torch.neg({})", "F.relu6({} * 4.0)", "torch.square({})",
]


def op_unary(b):
    v = b.pick()
    f = b.rng.choice(UNARY)
    return b.emit(f.format(v[0]), v[1])


def broadcast_shape(b, shape):
    """A parameter shape that broadcasts against a value of `shape`, never of one element."""
    dims = [d if b.rng.random() < 0.6 else 1 for d in shape[1:]]
    drop = b.rng.randint(0, len(dims) - 1) if len(dims) > 1 else 0
    dims = dims[drop:]
    if numel((0,) + tuple(dims)) < 2:
        dims = list(shape[1 + drop:])
    if numel((0,) + tuple(dims)) < 2:
        return None
    return dims


def op_binary_param(b):
    v = b.pick(lambda s: numel(s) >= 2)
    if v is None:
        return None
    dims = broadcast_shape(b, v[1])
    if dims is None:
        return None
    p = b.param(dims)
    form = b.rng.choice(["{a} + {p}", "{a} * {p}", "{a} - {p}", "{p} - {a}", "{a} / ({p} * {p} + 1.0)",
                         "torch.maximum({a}, {p})", "torch.minimum({a}, {p})", "{a} * torch.sigmoid({p})"])
    return b.emit(form.format(a=v[0], p=p), v[1])


def compatible(s, t):
    return len(s) == len(t) and all(x == y or x == 1 or y == 1 for x, y in zip(s[1:], t[1:]))


def op_binary_values(b):
    v = b.pick()
    others = [u for u in b.pool if compatible(u[1], v[1]) and u[0] != v[0]]
    if not others:
        # `t - t.mean(d, keepdim=True)` style: a value against its own reduction.
        if len(v[1]) < 2:
            return None
        d = b.rng.randint(1, len(v[1]) - 1)
        red = b.rng.choice(["mean", "sum", "amax"])
        return b.emit("%s - %s.%s(%d, keepdim=True)" % (v[0], v[0], red, d), v[1])
    u = b.rng.choice(others)
    out = tuple([v[1][0]] + [max(x, y) for x, y in zip(v[1][1:], u[1][1:])])
    form = b.rng.choice(["{a} + {u}", "{a} * {u}", "{a} - {u}", "{a} / ({u} * {u} + 1.0)",
                         "torch.where({a} > {u}, {a}, {u} * 0.5)", "torch.maximum({a}, {u})"])
    return b.emit(form.format(a=v[0], u=u[0]), out)


def op_linear(b):
    v = b.pick(lambda s: len(s) >= 2)
    k = v[1][-1]
    n = b.rng.randint(2, 8)
    if b.rng.random() < 0.7:
        m = b.module("nn.Linear(%d, %d, bias=%s)" % (k, n, b.rng.random() < 0.8))
        return b.emit("%s(%s)" % (m, v[0]), v[1][:-1] + (n,))
    w = b.param([k, n])
    return b.emit("%s @ %s" % (v[0], w), v[1][:-1] + (n,))


def op_scores(b):
    # Attention-like: two projections of one value multiplied as batched matrices.
    v = b.pick(lambda s: len(s) >= 3)
    if v is None:
        return None
    k = v[1][-1]
    d = b.rng.randint(2, 6)
    qa = b.module("nn.Linear(%d, %d)" % (k, d))
    qb = b.module("nn.Linear(%d, %d, bias=False)" % (k, d))
    m = v[1][-2]
    expr = "%s(%s) @ %s(%s).transpose(-1, -2)" % (qa, v[0], qb, v[0])
    if b.rng.random() < 0.5:
        expr = "torch.softmax((%s) * %g, dim=-1)" % (expr, 1.0 / d ** 0.5)
    return b.emit(expr, v[1][:-1] + (m,))


def op_norm(b):
    v = b.pick(lambda s: len(s) >= 2 and s[-1] >= 2)
    if v is None:
        return None
    k = v[1][-1]
    c = b.rng.random()
    if c < 0.5:
        m = b.module("nn.LayerNorm(%d, elementwise_affine=%s)" % (k, b.rng.random() < 0.7))
        return b.emit("%s(%s)" % (m, v[0]), v[1])
    if c < 0.75:
        w = b.param([k], 0.3)
        return b.emit("%s * torch.rsqrt(%s.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + %s)" % (v[0], v[0], w), v[1])
    d = b.rng.randint(1, len(v[1]) - 1)
    return b.emit("F.normalize(%s, dim=%d)" % (v[0], d), v[1])


def op_softmax(b):
    v = b.pick(lambda s: len(s) >= 2)
    d = b.rng.randint(1, len(v[1]) - 1)
    if b.rng.random() < 0.5:
        d = d - len(v[1])
    f = b.rng.choice(["torch.softmax", "torch.log_softmax", "F.softmax", "F.log_softmax"])
    return b.emit("%s(%s, dim=%d)" % (f, v[0], d), v[1])


def op_reduce(b):
    v = b.pick(lambda s: len(s) >= 2)
    r = len(v[1])
    d = b.rng.randint(1, r - 1)
    keep = r == 2 or b.rng.random() < 0.4
    red = b.rng.choice(["sum", "mean", "amax", "amin", "logsumexp", "norm", "var", "std", "prod"])
    if red == "norm":
        expr = "torch.linalg.vector_norm(%s, dim=%d, keepdim=%s)" % (v[0], d, keep)
    elif red in ("var", "std"):
        if v[1][d] < 2:
            return None
        expr = "%s.%s(%d, keepdim=%s)" % (v[0], red, d, keep)
    elif red == "prod":
        if v[1][d] > 4:
            return None
        expr = "torch.tanh(%s).prod(%d, keepdim=%s)" % (v[0], d, keep)
    else:
        expr = "%s.%s(%d, keepdim=%s)" % (v[0], red, d, keep)
    shape = list(v[1])
    if keep:
        shape[d] = 1
    else:
        del shape[d]
    return b.emit(expr, shape)


def op_permute(b):
    v = b.pick(lambda s: len(s) >= 3)
    if v is None:
        return None
    r = len(v[1])
    if b.rng.random() < 0.5:
        return b.emit("%s.transpose(-1, -2)" % v[0], v[1][:-2] + (v[1][-1], v[1][-2]))
    perm = list(range(1, r))
    b.rng.shuffle(perm)
    perm = [0] + perm
    return b.emit("%s.permute(%s)" % (v[0], ", ".join(map(str, perm))), tuple(v[1][p] for p in perm))


def op_reshape(b):
    v = b.pick(lambda s: len(s) >= 2)
    s = list(v[1])
    r = len(s)
    c = b.rng.random()
    if c < 0.35 and r >= 3:
        d = b.rng.randint(1, r - 2)
        new = s[:d] + [s[d] * s[d + 1]] + s[d + 2:]
    elif c < 0.7:
        d = b.rng.randint(1, r - 1)
        fac = [f for f in range(2, s[d]) if s[d] % f == 0]
        if not fac or r >= 5:
            return None
        f = b.rng.choice(fac)
        new = s[:d] + [f, s[d] // f] + s[d + 1:]
    elif c < 0.85 and r <= 4:
        d = b.rng.randint(1, r)
        return b.emit("%s.unsqueeze(%d)" % (v[0], d), s[:d] + [1] + s[d:])
    else:
        ones = [d for d in range(1, r) if s[d] == 1]
        if not ones or r == 2:
            if r >= 3:
                return b.emit("%s.flatten(1)" % v[0], [s[0], numel(s)])
            return None
        d = b.rng.choice(ones)
        return b.emit("%s.squeeze(%d)" % (v[0], d), s[:d] + s[d + 1:])
    form = b.rng.choice(["{v}.reshape({v}.shape[0], {dims})", "{v}.reshape(-1, {dims})",
                         "{v}.contiguous().view(-1, {dims})"])
    return b.emit(form.format(v=v[0], dims=", ".join(map(str, new[1:]))), new)


def op_slice(b):
    v = b.pick(lambda s: len(s) >= 2 and max(s[1:]) >= 2)
    if v is None:
        return None
    s = list(v[1])
    r = len(s)
    dims = [d for d in range(1, r) if s[d] >= 2]
    d = b.rng.choice(dims)
    n = s[d]
    c = b.rng.random()
    if c < 0.2 and r >= 3:
        i = b.rng.randint(-n, n - 1)
        return b.emit(v[0] + idx(r, d, str(i)), s[:d] + s[d + 1:])
    if c < 0.35:
        start = b.rng.randint(-n, -1)
        return b.emit(v[0] + idx(r, d, "%d:" % start), s[:d] + [-start] + s[d + 1:])
    start = b.rng.randint(0, n - 1)
    stop = b.rng.randint(start + 1, n)
    step = b.rng.choice([1, 1, 2, 3])
    length = len(range(start, stop, step))
    text = "%d:%d" % (start, stop) + (":%d" % step if step != 1 else "")
    if b.rng.random() < 0.3:
        return b.emit("%s.narrow(%d, %d, %d)" % (v[0], d, start, stop - start), s[:d] + [stop - start] + s[d + 1:])
    return b.emit(v[0] + idx(r, d, text), s[:d] + [length] + s[d + 1:])


def op_cat(b):
    v = b.pick(lambda s: len(s) >= 2)
    r = len(v[1])
    d = b.rng.randint(1, r - 1)
    others = [u for u in b.pool if len(u[1]) == r and all(u[1][i] == v[1][i] for i in range(1, r) if i != d)]
    u = b.rng.choice(others)
    if b.rng.random() < 0.3:
        return b.emit("torch.stack([%s, %s], dim=%d)" % (v[0], u[0], d) if u[1] == v[1] else
                      "torch.cat([%s, %s], dim=%d)" % (v[0], u[0], d),
                      (v[1][:d] + (2,) + v[1][d:]) if u[1] == v[1] else
                      (v[1][:d] + (v[1][d] + u[1][d],) + v[1][d + 1:]))
    s = list(v[1])
    s[d] = v[1][d] + u[1][d]
    return b.emit("torch.cat([%s, %s], dim=%d)" % (v[0], u[0], d), s)


def op_split(b):
    v = b.pick(lambda s: len(s) >= 2 and max(s[1:]) >= 2)
    if v is None:
        return None
    s = list(v[1])
    d = b.rng.choice([d for d in range(1, len(s)) if s[d] >= 2])
    n = s[d]
    if b.rng.random() < 0.5:
        # Only counts torch.chunk returns in full: for others (7 into 6 gives 4 chunks) torch's
        # legacy exporter writes negative split sizes, a broken file (fold_sequences refuses it).
        k = b.rng.choice([k for k in range(2, n + 1) if -(-n // -(-n // k)) == k])
        size = -(-n // k)
        parts = [min(size, n - i * size) for i in range(k) if n - i * size > 0]
        i = b.rng.randrange(len(parts))
        s[d] = parts[i]
        return b.emit("torch.chunk(%s, %d, dim=%d)[%d]" % (v[0], k, d, i), s)
    a = b.rng.randint(1, n - 1)
    i = b.rng.randrange(2)
    s[d] = [a, n - a][i]
    return b.emit("%s.split([%d, %d], dim=%d)[%d]" % (v[0], a, n - a, d, i), s)


def op_expand(b):
    v = b.pick(lambda s: len(s) >= 2)
    s = list(v[1])
    ones = [d for d in range(1, len(s)) if s[d] == 1]
    if ones and b.rng.random() < 0.6:
        d = b.rng.choice(ones)
        s[d] = b.rng.randint(2, 4)
        args = ["-1"] * len(s)
        args[d] = str(s[d])
        return b.emit("%s.expand(%s)" % (v[0], ", ".join(args)), s)
    if numel(s) > 64:
        return None
    reps = [1] * len(s)
    d = b.rng.randint(1, len(s) - 1)
    reps[d] = 2
    s[d] *= 2
    return b.emit("%s.repeat(%s)" % (v[0], ", ".join(map(str, reps))), s)


def op_gather(b):
    v = b.pick(lambda s: len(s) >= 2)
    s = list(v[1])
    d = b.rng.randint(1, len(s) - 1)
    m = b.rng.randint(1, 5)
    ids = [b.rng.randrange(s[d]) for _ in range(m)]
    buf = b.buffer("torch.tensor(%s, dtype=torch.long)" % ids)
    s[d] = m
    if b.rng.random() < 0.5:
        return b.emit("torch.index_select(%s, %d, %s)" % (v[0], d, buf), s)
    return b.emit(v[0] + idx(len(s), d, buf), s)


def op_cumsum(b):
    v = b.pick(lambda s: len(s) >= 2)
    d = b.rng.randint(1, len(v[1]) - 1)
    if b.rng.random() < 0.3:
        return b.emit("torch.flip(%s, dims=[%d])" % (v[0], d), v[1])
    return b.emit("torch.cumsum(%s, dim=%d)" % (v[0], d), v[1])


def op_trilu(b):
    v = b.pick(lambda s: len(s) >= 3)
    if v is None:
        return None
    k = b.rng.randint(-1, 1)
    return b.emit("torch.%s(%s, diagonal=%d)" % (b.rng.choice(["tril", "triu"]), v[0], k), v[1])


def op_where_mask(b):
    v = b.pick(lambda s: len(s) >= 2)
    s = v[1]
    dims = [d if b.rng.random() < 0.6 else 1 for d in s[1:]]
    total = numel((0,) + tuple(dims))
    bits = [b.rng.random() < 0.5 for _ in range(total)]
    buf = b.buffer("torch.tensor(%s).reshape(%s)" % (bits, dims))
    if b.rng.random() < 0.5:
        return b.emit("%s.masked_fill(%s, %g)" % (v[0], buf, b.rng.choice([0.0, -1.5, 2.0])), s)
    return b.emit("torch.where(%s > 0.2, %s, torch.zeros_like(%s))" % (v[0], v[0], v[0]), s)


def op_topk(b):
    v = b.pick(lambda s: len(s) >= 2 and s[-1] >= 2)
    if v is None:
        return None
    k = b.rng.randint(1, v[1][-1])
    return b.emit("torch.topk(%s, %d, dim=-1).values" % (v[0], k), v[1][:-1] + (k,))


def op_einsum(b):
    v = b.pick(lambda s: len(s) == 3)
    if v is None:
        return None
    n = b.rng.randint(2, 5)
    w = b.param([v[1][2], n])
    return b.emit("torch.einsum('bij,jk->bik', %s, %s)" % (v[0], w), v[1][:2] + (n,))


def op_conv(b):
    v = b.pick(lambda s: len(s) in (3, 4) and s[1] <= 8 and min(s[2:]) >= 2)
    if v is None:
        return None
    s = v[1]
    sp = len(s) - 2
    c = s[1]
    choice = b.rng.random()
    if choice < 0.45:
        groups = b.rng.choice([g for g in (1, 2, c) if c % g == 0])
        out = groups * b.rng.randint(1, 3)
        k = b.rng.randint(1, min(3, min(s[2:])))
        stride = b.rng.choice([1, 1, 2])
        pad = b.rng.randint(0, k // 2 + 1) if k > 1 else 0
        dil = b.rng.choice([1, 1, 2]) if k > 1 else 1
        mode = b.rng.choice(["'zeros'"] * 3 + ["'reflect'", "'replicate'", "'circular'"])
        if mode in b.avoid:
            mode = "'zeros'"
        if mode != "'zeros'" and (pad == 0 or pad >= min(s[2:])):
            mode = "'zeros'"
        dims = [(n + 2 * pad - dil * (k - 1) - 1) // stride + 1 for n in s[2:]]
        if min(dims) < 1:
            return None
        m = b.module("nn.Conv%dd(%d, %d, %d, stride=%d, padding=%d, dilation=%d, groups=%d, bias=%s, padding_mode=%s)"
                     % (sp, c, out, k, stride, pad, dil, groups, b.rng.random() < 0.7, mode))
        return b.emit("%s(%s)" % (m, v[0]), (s[0], out) + tuple(dims))
    if choice < 0.7:
        k = b.rng.randint(1, min(3, min(s[2:])))
        stride = b.rng.randint(1, k)
        pad = b.rng.randint(0, k // 2)
        ceil = b.rng.random() < 0.3
        kind = b.rng.choice(["max", "avg"])
        extra = ", count_include_pad=%s" % (b.rng.random() < 0.5) if kind == "avg" else ""
        dims = []
        for n in s[2:]:
            num = n + 2 * pad - k
            o = (-(-num // stride) if ceil else num // stride) + 1
            if ceil and (o - 1) * stride >= n + pad:
                o -= 1
            dims.append(o)
        if min(dims) < 1:
            return None
        return b.emit("F.%s_pool%dd(%s, %d, stride=%d, padding=%d, ceil_mode=%s%s)"
                      % (kind, sp, v[0], k, stride, pad, ceil, extra), (s[0], c) + tuple(dims))
    if choice < 0.85:
        m = b.module("nn.BatchNorm%dd(%d)" % (sp, c))
        return b.emit("%s(%s)" % (m, v[0]), s)
    if c % 2 == 0:
        m = b.module("nn.GroupNorm(2, %d)" % c)
        return b.emit("%s(%s)" % (m, v[0]), s)
    m = b.module("nn.InstanceNorm%dd(%d, affine=True)" % (sp, c))
    return b.emit("%s(%s)" % (m, v[0]), s)


def op_attention(b):
    # F.scaled_dot_product_attention (causal or with a mask) on [B, H, L, E], or
    # nn.MultiheadAttention on [B, L, E].
    v = b.pick(lambda s: len(s) in (3, 4))
    if v is None:
        return None
    s = v[1]
    e = s[-1]
    # torch.onnx's dynamo exporter takes SDPA on 4-D [batch, heads, L, E] only, as models call it.
    if len(s) == 3:
        heads = b.rng.choice([h for h in (1, 2, 3, 4) if e % h == 0])
        m = b.module("nn.MultiheadAttention(%d, %d, batch_first=True, bias=%s)" % (e, heads, b.rng.random() < 0.7))
        return b.emit("%s(%s, %s, %s, need_weights=False)[0]" % (m, v[0], v[0], v[0]), s)
    if "sdpa" in b.avoid:
        return None
    d = b.rng.randint(2, 6)
    q, k, w = (b.module("nn.Linear(%d, %d)" % (e, d)) for _ in range(3))
    c = b.rng.random()
    if c < 0.4:
        extra = ", is_causal=True"
    elif c < 0.7:
        bits = [b.rng.random() < 0.7 for _ in range(s[-2] * s[-2])]
        for i in range(s[-2]):
            bits[i * s[-2] + i] = True  # every query sees at least itself
        extra = ", attn_mask=%s" % b.buffer("torch.tensor(%s).reshape(%d, %d)" % (bits, s[-2], s[-2]))
    else:
        extra = ""
    return b.emit("F.scaled_dot_product_attention(%s(%s), %s(%s), %s(%s)%s)" % (q, v[0], k, v[0], w, v[0], extra),
                  s[:-1] + (d,))


def op_upsample(b):
    # ConvTranspose, F.interpolate and adaptive pooling on [B, C, L] or [B, C, H, W].
    v = b.pick(lambda s: len(s) in (3, 4) and s[1] <= 8 and numel(s) <= 128)
    if v is None:
        return None
    s = v[1]
    sp = len(s) - 2
    c = b.rng.random()
    if c < 0.45:
        k = b.rng.randint(1, 3)
        stride = b.rng.randint(1, 2)
        pad = b.rng.randint(0, (k - 1) // 2) if k > 1 else 0
        outpad = b.rng.randint(0, stride - 1)
        groups = b.rng.choice([g for g in (1, 2) if s[1] % g == 0])
        out = groups * b.rng.randint(1, 3)
        dims = [(n - 1) * stride - 2 * pad + (k - 1) + outpad + 1 for n in s[2:]]
        if min(dims) < 1:
            return None
        m = b.module("nn.ConvTranspose%dd(%d, %d, %d, stride=%d, padding=%d, output_padding=%d, groups=%d, bias=%s)"
                     % (sp, s[1], out, k, stride, pad, outpad, groups, b.rng.random() < 0.7))
        return b.emit("%s(%s)" % (m, v[0]), (s[0], out) + tuple(dims))
    if c < 0.8:
        mode = b.rng.choice(["nearest", "linear" if sp == 1 else "bilinear"])
        corners = "" if mode == "nearest" else ", align_corners=%s" % (b.rng.random() < 0.5)
        if b.rng.random() < 0.5:
            dims = [n * 2 for n in s[2:]]
            return b.emit("F.interpolate(%s, scale_factor=2.0, mode='%s'%s)" % (v[0], mode, corners), s[:2] + tuple(dims))
        dims = [b.rng.randint(2, 7) for _ in s[2:]]
        size = dims[0] if sp == 1 else tuple(dims)
        return b.emit("F.interpolate(%s, size=%s, mode='%s'%s)" % (v[0], size, mode, corners), s[:2] + tuple(dims))
    dims = [b.rng.choice([d for d in range(1, n + 1) if n % d == 0]) for n in s[2:]]
    kind = b.rng.choice(["avg", "max"])
    size = dims[0] if sp == 1 else tuple(dims)
    return b.emit("F.adaptive_%s_pool%dd(%s, %s)" % (kind, sp, v[0], size), s[:2] + tuple(dims))


def op_recurrent(b):
    v = b.pick(lambda s: len(s) == 3 and s[1] <= 6)
    if v is None:
        return None
    h = b.rng.randint(2, 5)
    kind = b.rng.choice(["GRU", "LSTM", "RNN"])
    bi = b.rng.random() < 0.3
    m = b.module("nn.%s(%d, %d, batch_first=True, bidirectional=%s)" % (kind, v[1][2], h, bi))
    return b.emit("%s(%s)[0]" % (m, v[0]), v[1][:2] + (h * (2 if bi else 1),))


def op_pad(b):
    v = b.pick(lambda s: len(s) >= 2)
    a, c = b.rng.randint(0, 2), b.rng.randint(0, 2)
    if a + c == 0:
        return None
    s = v[1][:-1] + (v[1][-1] + a + c,)
    return b.emit("F.pad(%s, (%d, %d), value=%g)" % (v[0], a, c, b.rng.choice([0.0, 0.5])), s)


OPS = [(op_unary, 4), (op_binary_param, 3), (op_binary_values, 3), (op_linear, 3), (op_scores, 1),
       (op_norm, 2), (op_softmax, 1.5), (op_reduce, 2), (op_permute, 1.5), (op_reshape, 2),
       (op_slice, 2), (op_cat, 1), (op_split, 1), (op_expand, 1), (op_gather, 1), (op_cumsum, 1),
       (op_trilu, 0.5), (op_where_mask, 1), (op_topk, 0.5), (op_einsum, 0.5), (op_conv, 2.5),
       (op_attention, 1), (op_upsample, 1), (op_recurrent, 0.4), (op_pad, 0.5)]


def build_source(seed, avoid=()):
    """The source of a random module `Net` and the inputs it takes, from the seed alone; `avoid`
    holds what to leave out (see known_exporter_bugs)."""
    rng = random.Random(seed)
    b = Builder(rng, avoid)
    kind = rng.choice(["vector", "sequence", "image", "signal", "tokens"])
    if kind == "tokens":
        vocab, seq, width = rng.randint(5, 12), rng.randint(2, 6), rng.randint(3, 8)
        b.inputs.append(("ids", "ids", (BATCH, seq), vocab))
        emb = b.module("nn.Embedding(%d, %d%s)" % (vocab, width, ", padding_idx=0" if rng.random() < 0.3 else ""))
        b.emit("%s(ids)" % emb, (BATCH, seq, width))
    else:
        shape = {"vector": (BATCH, rng.randint(2, 8)),
                 "sequence": (BATCH, rng.randint(2, 5), rng.randint(2, 6)),
                 "image": (BATCH, rng.randint(1, 4), rng.randint(3, 6), rng.randint(3, 6)),
                 "signal": (BATCH, rng.randint(1, 4), rng.randint(4, 9))}[kind]
        b.inputs.append(("x", "float", shape, None))
        b.pool.append(("x", shape))
    for _ in range(rng.randint(4, 12)):
        for _attempt in range(20):
            f = rng.choices([o for o, _ in OPS], [w for _, w in OPS])[0]
            before = len(b.pool)
            if f(b) is not None and len(b.pool) > before:
                name, shape = b.pool[-1]
                if numel(shape) > 512 or min(shape[1:] or (1,)) < 1:
                    # Too big or empty: take it back, with what it declared.
                    b.pool.pop()
                    b.fwd.pop()
                    continue
                break
    # The loss: a head on the last value under one of torch's losses, plus every value nothing reads.
    last = b.pool[-1]
    head = b.module("nn.Linear(%d, %d)" % (numel(last[1]), CLASSES))
    logits = "%s(%s.reshape(%s.shape[0], -1))" % (head, last[0], last[0])
    loss = rng.choice(["ce", "ce", "ce_smooth", "nll", "mse", "bce", "smooth_l1", "l1", "kl"])
    if loss in avoid:
        loss = "ce"
    if loss in ("ce", "ce_smooth", "nll"):
        b.inputs.append(("y", "labels", (BATCH,), CLASSES))
        terms = [{"ce": "F.cross_entropy({l}, y)", "ce_smooth": "F.cross_entropy({l}, y, label_smoothing=0.1)",
                  "nll": "F.nll_loss(F.log_softmax({l}, dim=-1), y)"}[loss].format(l=logits)]
    else:
        b.inputs.append(("y", "probs" if loss in ("bce", "kl") else "float", (BATCH, CLASSES), None))
        terms = [{"mse": "F.mse_loss({l}, y)", "bce": "F.binary_cross_entropy_with_logits({l}, y)",
                  "smooth_l1": "F.smooth_l1_loss({l}, y)", "l1": "F.l1_loss({l}, y)",
                  "kl": "F.kl_div(F.log_softmax({l}, dim=-1), y, reduction='batchmean')"}[loss].format(l=logits)]
    # Every other value nothing reads joins the loss, so every op is on a gradient path.
    text = "\n".join(b.fwd)
    for v in b.pool[:-1]:
        if v[0] != "x" and len(re.findall(r"\b%s\b" % v[0], text)) == 1:
            form = rng.choice(["{c} * {v}.pow(2).mean()", "{c} * torch.tanh({v}).mean()", "{c} * {v}.sum()"])
            terms.append(form.format(c=rng.choice([0.1, 0.5, 1.0]), v=v[0]))
    b.fwd.append("return " + " + ".join(terms))
    args = ", ".join(n for n, _, _, _ in b.inputs)
    src = ["class Net(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    src += ["        " + line for line in b.init] or ["        pass"]
    src += ["", "    def forward(self, %s):" % args]
    src += ["        " + line for line in b.fwd]
    return "\n".join(src) + "\n", b.inputs


def known_exporter_bugs(torch, exporter):
    """What the torch at hand cannot run or export, or exports wrongly (checked with ONNX Runtime
    on its files): the generator leaves it out."""
    avoid = ()
    if exporter == "legacy":
        avoid += ("l1", "smooth_l1", "ce_smooth")  # not exported, in 1.13 nor 2.x
    if int(torch.__version__.split(".")[0]) < 2:
        # torch 1.13: no F.scaled_dot_product_attention; its legacy exporter pads circular
        # convolutions wrongly and has no mse loss.
        avoid += ("'circular'", "sdpa", "mse")
    return avoid


def make_inputs(torch, inputs, batch, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for name, kind, shape, n in inputs:
        shape = (batch,) + tuple(shape[1:])
        if kind == "float":
            out.append(torch.randn(shape, generator=g))
        elif kind == "probs":
            out.append(torch.softmax(torch.randn(shape, generator=g), dim=-1))
        else:
            out.append(torch.randint(0, n, shape, generator=g))
    return out


def export(torch, net, args, inputs, path, exporter):
    names = [n for n, _, _, _ in inputs]
    if exporter == "legacy":
        kw = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
        torch.onnx.export(net, tuple(args), path, input_names=names, output_names=["loss"],
                          dynamic_axes={n: {0: "batch"} for n in names}, opset_version=17,
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False, **kw)
        return
    if exporter == "helper":
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import export_for_training
        export_for_training.export_for_training(net, tuple(args), path, exporter="dynamo",
                                                log=lambda *a, **k: None)
        return
    batch = torch.export.Dim("batch")
    torch.onnx.export(net, tuple(args), path, input_names=names, output_names=["loss"],
                      dynamic_shapes={n: {0: batch} for n in names}, dynamo=True,
                      optimize=(exporter == "dynamo"), verbose=False)


def read_safetensors(path, np):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, e = meta["data_offsets"]
        dt = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16}[meta["dtype"]]
        out[name] = np.frombuffer(data[a:e], dtype=dt).reshape(meta["shape"])
    return out


class Outcome(Exception):
    pass


def compare_gradients(w1, grads, w0, np, where, tol, floor_fraction):
    """(parameter, problem) pairs: each gradient read back from the trained weights `w1` against
    PyTorch's."""
    problems = []
    # A gradient that is zero in exact arithmetic comes out as rounding noise in float32: each
    # tensor's error is measured against the largest gradient of the model too.
    floor = floor_fraction * max([float(np.abs(g).max()) for g in grads.values() if g is not None and g.size] + [1e-4])
    for n, g in grads.items():
        if g is None:
            continue  # PyTorch has no gradient: the parameter is on no path to the loss
        if n not in w1:
            problems.append((n, "parameter %s is not among the trained weights" % n))
            continue
        if tuple(w1[n].shape) != tuple(g.shape):
            problems.append((n, "trained weight %s has shape %s, PyTorch's %s" % (n, list(w1[n].shape), list(g.shape))))
            continue
        got = (w0[n] - w1[n].astype(np.float64)) / LR
        scale = max(float(np.abs(g).max()), floor)
        err = float(np.abs(got - g).max()) / scale
        if err > tol:
            problems.append((n, "gradient of %s %s: max error %.3g of its largest %.3g" % (n, list(g.shape), err, scale)))
    return [(n, p + where) for n, p in problems]


def check_seed(seed, args, torch, np, nn, F, work):
    src, inputs = build_source(seed, known_exporter_bugs(torch, args.exporter))
    ns = {"torch": torch, "nn": nn, "F": F}
    exec(compile(src, "<seed %d>" % seed, "exec"), ns)
    torch.manual_seed(seed)
    net = ns["Net"]()
    net.train()
    d = os.path.join(work, "seed%d" % seed)
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    path = os.path.join(d, "model.onnx")
    with open(os.path.join(d, "model.py"), "w") as f:
        f.write(src)
    example = make_inputs(torch, inputs, EXAMPLE_BATCH, seed + 1)
    try:
        with torch.no_grad():
            net(*example)  # a model torch itself rejects is a generator slip, not a finding
    except Exception as e:
        return "torch", "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    try:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            export(torch, net, example, inputs, path, args.exporter)
    except Exception as e:
        return "export", "%s: %s" % (type(e).__name__, (str(e).splitlines() or [""])[0][:200])

    batch = make_inputs(torch, inputs, BATCH, seed + 2)
    for (name, _, _, _), t in zip(inputs, batch):
        np.save(os.path.join(d, "data", name + ".npy"), t.numpy())
    # The reference: float64, the same weights and batch; BatchNorm's running statistics
    # change in the forward, which no gradient depends on.
    ref = ns["Net"]()
    ref.load_state_dict(net.state_dict())
    ref.double().train()

    def torch_step(samples):
        ref.zero_grad(set_to_none=True)
        loss = ref(*[t[samples].double() if t.is_floating_point() else t[samples] for t in batch])
        loss.backward()
        return loss.item(), {n: p.grad.numpy().copy() if p.grad is not None else None for n, p in ref.named_parameters()}

    want_loss, grads = torch_step(slice(0, BATCH))
    w0 = {n: p.detach().double().numpy() for n, p in ref.named_parameters()}

    cfg = {"train_batch_size": BATCH, "train_micro_batch_size_per_gpu": BATCH, "gradient_clipping": 0.0,
           "optimizer": {"type": "SGD", "params": {"lr": LR, "momentum": 0.0, "weight_decay": 0.0}}}
    if args.precision == "bf16":
        cfg["bf16"] = {"enabled": True}
    elif args.precision == "fp16":
        # A static scale: a dynamic one would skip the only step on an overflow.
        cfg["fp16"] = {"enabled": True, "loss_scale": 256}
    with open(os.path.join(d, "ds.json"), "w") as f:
        json.dump(cfg, f)
    plan = os.path.join(d, "model.plan")
    extra = []
    if args.exporter == "legacy":
        # A legacy file has no parameter list, and dscompile keeps single-element initializers
        # constant (they may be buffers); PyTorch's parameters among them are named to it.
        import onnx
        inits = {t.name for t in onnx.load(path).graph.initializer}
        for n, p in ref.named_parameters():
            if p.numel() == 1 and n in inits:
                extra += ["--add-trainable", re.escape(n)]
    p = subprocess.run([args.dscompile, path, "--config", os.path.join(d, "ds.json"), "-o", plan] + extra,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        file_loss = onnxruntime_loss(path, d, inputs, np)
        if isinstance(file_loss, str):
            return "exporter", "ONNX Runtime cannot run the file either (%s); dscompile: %s" % (
                file_loss, p.stdout.strip().splitlines()[-1])
        raise Outcome("dscompile failed:\n" + p.stdout[-3000:])
    warnings = [l for l in p.stdout.splitlines() if "warning:" in l or "note:" in l]
    st = os.path.join(d, "trained.safetensors")
    met = os.path.join(d, "metrics.jsonl")
    p = subprocess.run([args.dsrun, plan, "--data", os.path.join(d, "data"), "--steps", "1",
                        "--no-shuffle", "--threads", "1", "-q", "--metrics", met,
                        "--export-safetensors", st],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise Outcome("dsrun failed:\n" + p.stdout[-3000:])
    with open(met) as f:
        got_loss = json.loads(f.readline())["loss"]
    problems = []
    tol, loss_tol, floor = TOLERANCES[args.precision]
    if abs(got_loss - want_loss) > loss_tol * max(1.0, abs(want_loss)):
        file_loss = onnxruntime_loss(path, d, inputs, np)
        if isinstance(file_loss, str):
            file_loss = None
        if file_loss is not None and abs(file_loss - got_loss) <= loss_tol * max(1.0, abs(want_loss)):
            # ONNX Runtime computes dscompile's loss from the file: the exporter mistranslated
            # the model, which no importer can see.
            return "exporter", "the file computes %.9g (ONNX Runtime and dscompile), PyTorch %.9g" % (got_loss, want_loss)
        problems.append((None, "loss %.9g, PyTorch %.9g%s" % (got_loss, want_loss, "" if file_loss is None else
                                                              ", ONNX Runtime %.9g" % file_loss)))
    problems += compare_gradients(read_safetensors(st, np), grads, w0, np, "", tol, floor)
    if args.zero is not None and not problems:
        # The same step on 2 ranks at the given ZeRO stage, 2 samples each: as in DeepSpeed (and
        # PyTorch's DDP), the mean of the ranks' gradients, each on its own samples (a loss that
        # sums over the batch halves, BatchNorm normalises over each rank's samples).
        cfg2 = dict(cfg, train_micro_batch_size_per_gpu=BATCH // 2, zero_optimization={"stage": args.zero},
                    zero_allow_untested_optimizer=True)
        with open(os.path.join(d, "ds_zero.json"), "w") as f:
            json.dump(cfg2, f)
        plan2, st2 = os.path.join(d, "zero.plan"), os.path.join(d, "zero.safetensors")
        p = subprocess.run([args.dscompile, path, "--config", os.path.join(d, "ds_zero.json"), "-o", plan2,
                            "--world-size", "2"] + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise Outcome("dscompile --world-size 2 failed:\n" + p.stdout[-3000:])
        p = subprocess.run([args.dsrun, plan2, "--data", os.path.join(d, "data"), "--steps", "1", "--no-shuffle",
                            "--nproc", "2", "-q", "--export-safetensors", st2],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise Outcome("dsrun --nproc 2 failed:\n" + p.stdout[-3000:])
        halves = [torch_step(slice(r * BATCH // 2, (r + 1) * BATCH // 2))[1] for r in range(2)]
        mean = {n: None if halves[0][n] is None else (halves[0][n] + halves[1][n]) / 2 for n in grads}
        problems += compare_gradients(read_safetensors(st2, np), mean, w0, np,
                                      " on 2 ranks at ZeRO stage %d" % args.zero, tol, floor)

    if problems:
        # A parameter dscompile's warnings name (one the exporter's optimizer folded into a value
        # no rule can invert, say) differs as announced: not a silent error.
        named = set(re.findall(r"'([^']+)'", "\n".join(warnings)))
        text = "\n".join(p for _, p in problems) + ("\n" + "\n".join(warnings) if warnings else "")
        if all(n is not None and n in named for n, _ in problems):
            return "warned", text
        raise Outcome(text)
    return "ok", ""


def onnxruntime_loss(path, d, inputs, np):
    """The file's own loss on the batch by ONNX Runtime: a float, the error (a str) when ONNX
    Runtime cannot run the file either, or None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    try:
        opts = onnxruntime.SessionOptions()
        opts.log_severity_level = 4  # the error comes back as the exception
        sess = onnxruntime.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {n: np.load(os.path.join(d, "data", n + ".npy")) for n, _, _, _ in inputs}
        return float(sess.run(None, feed)[0])
    except Exception as e:
        return "%s: %s" % (type(e).__name__, (str(e).splitlines() or [""])[0][:300])


def parse_seeds(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dscompile", default=os.path.join(ROOT, "build", "tools", "dscompile"))
    ap.add_argument("--dsrun", default=os.path.join(ROOT, "build", "tools", "dsrun"))
    ap.add_argument("--seeds", default="0-29", help="seeds, e.g. 0-99 or 3,7,12 (default 0-29)")
    ap.add_argument("--exporter", default="legacy", choices=["legacy", "dynamo", "dynamo_noopt", "helper"])
    ap.add_argument("--precision", default="fp32", choices=sorted(TOLERANCES),
                    help="train in this precision (the config's bf16 or fp16 section, fp32 master weights); "
                         "bf16 and fp16 are checked with loose bounds (TOLERANCES)")
    ap.add_argument("--zero", type=int, choices=[0, 1, 2, 3],
                    help="also take the step on 2 ranks (dsrun --nproc 2) at this ZeRO stage, 2 samples each, "
                         "against the mean of PyTorch's gradients on each rank's samples")
    ap.add_argument("--keep", help="keep each seed's files (model.py, model.onnx, data, plan) in this folder")
    ap.add_argument("--show-source", action="store_true", help="print every seed's model source")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line per seed")
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print("SKIP: %s lacks torch or numpy (%s)" % (sys.executable, e))
        return SKIP
    for tool in (args.dscompile, args.dsrun):
        if not os.access(tool, os.X_OK):
            print("error: %s is not an executable (build first, or pass --dscompile/--dsrun)" % tool)
            return 1
    torch.set_num_threads(1)
    sys.stdout.reconfigure(line_buffering=True)  # a long campaign's findings show as they come
    work = args.keep or tempfile.mkdtemp(prefix="dsc_random_models_")
    counts = {"ok": 0, "warned": 0, "torch": 0, "export": 0, "exporter": 0, "failed": 0}
    failures = []
    print("random models: torch %s, exporter %s, seeds %s" % (torch.__version__, args.exporter, args.seeds))
    try:
        for seed in parse_seeds(args.seeds):
            try:
                status, why = check_seed(seed, args, torch, np, nn, F, work)
            except Outcome as e:
                status, why = "failed", str(e)
            except Exception:
                status, why = "failed", "the checker raised:\n" + traceback.format_exc()
            counts[status] += 1
            if status == "failed":
                src, _ = build_source(seed, known_exporter_bugs(torch, args.exporter))
                failures.append(seed)
                print("seed %d FAILED (%s): %s\n%s" % (seed, args.exporter, why, src))
            elif args.verbose or args.show_source:
                print("seed %d: %s%s" % (seed, status, " (%s)" % why if why else ""))
                if args.show_source:
                    print(build_source(seed, known_exporter_bugs(torch, args.exporter))[0])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("random models: %d matched PyTorch, %d differ where dscompile warned, %d failed, %d not exported, "
          "%d mistranslated by the exporter (%d rejected by torch)%s"
          % (counts["ok"], counts["warned"], counts["failed"], counts["export"], counts["exporter"], counts["torch"],
             ("; failed seeds: " + ",".join(map(str, failures))) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
