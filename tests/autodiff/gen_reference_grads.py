#!/usr/bin/python3
"""torch.autograd reference gradients (float64) for tests/autodiff/grad_cases.txt.

The C++ exporter writes each case completed with its seeded data and loss as an .onnx file; this
script evaluates those graphs op by op in torch (double precision), differentiates the loss with
respect to the parameters listed in metadata "dsc.parameters", and writes reference_grads.json
({case: {param: [flat gradient]}}). Cases marked torch=0 (random dropout masks, tie-breaking
rules of our own) are left out.

    cmake --build build --target export_grad_cases
    /usr/bin/python3 tests/autodiff/gen_reference_grads.py build/tests/autodiff/export_grad_cases [CASE...]

Naming cases recomputes only those and keeps every other entry of reference_grads.json.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def attrs_of(node):
    out = {}
    for attr in node.attribute:
        v = onnx.helper.get_attribute_value(attr)
        out[attr.name] = v.decode() if isinstance(v, bytes) else v
    return out


def ints(t):
    return [int(v) for v in t.reshape(-1).tolist()]


def torch_pads(pads):
    """ONNX [b1, b2, ..., e1, e2, ...] -> F.pad's (last-dim-first) order."""
    n = len(pads) // 2
    out = []
    for i in reversed(range(n)):
        out += [pads[i], pads[i + n]]
    return out


def pool_padding(x, a, value):
    pads = list(a.get("pads", [0] * (2 * (x.dim() - 2))))
    n = len(pads) // 2
    if pads[:n] == pads[n:]:
        return x, pads[:n]
    return F.pad(x, torch_pads(pads), value=value), [0] * n


def run_node(op, a, x):
    """x: list of input tensors (None for omitted). Returns a list of outputs."""
    if op == "Gemm":
        A = x[0].t() if a.get("transA", 0) else x[0]
        B = x[1].t() if a.get("transB", 0) else x[1]
        y = a.get("alpha", 1.0) * (A @ B)
        if len(x) > 2 and x[2] is not None:
            y = y + a.get("beta", 1.0) * x[2]
        return [y]
    if op == "MatMul":
        return [torch.matmul(x[0], x[1])]
    simple = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow}
    if op in simple:
        return [simple[op](x[0], x[1])]
    if op in ("Max", "Min"):
        f = torch.maximum if op == "Max" else torch.minimum
        y = x[0]
        for t in x[1:]:
            y = f(y, t)
        return [y]
    if op == "Where":
        return [torch.where(x[0], x[1], x[2])]
    unary = {"Sqrt": torch.sqrt, "Reciprocal": torch.reciprocal, "Neg": torch.neg, "Exp": torch.exp,
             "Log": torch.log, "Abs": torch.abs, "Erf": torch.erf, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid,
             "Relu": torch.relu, "Identity": lambda t: t}
    if op in unary:
        return [unary[op](x[0])]
    if op == "LeakyRelu":
        return [F.leaky_relu(x[0], a.get("alpha", 0.01))]
    if op == "Clip":
        lo = x[1].item() if len(x) > 1 and x[1] is not None else None
        hi = x[2].item() if len(x) > 2 and x[2] is not None else None
        return [torch.clamp(x[0], lo, hi)]
    if op == "Cast":
        return [x[0]]  # float <-> float only; everything runs in double here
    if op == "Softmax":
        return [torch.softmax(x[0], a.get("axis", -1))]
    if op == "LogSoftmax":
        return [torch.log_softmax(x[0], a.get("axis", -1))]
    if op == "LayerNormalization":
        axis = a.get("axis", -1) % x[0].dim()
        bias = x[2] if len(x) > 2 else None
        return [F.layer_norm(x[0], x[0].shape[axis:], x[1], bias, a.get("epsilon", 1e-5))]
    if op == "BatchNormalization":
        training = bool(a.get("training_mode", 0))
        y = F.batch_norm(x[0], x[3].clone(), x[4].clone(), x[1], x[2], training=training,
                         momentum=1 - a.get("momentum", 0.9), eps=a.get("epsilon", 1e-5))
        return [y, None, None]
    if op == "Conv":
        inp, pad = pool_padding(x[0], a, 0.0)
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x[0].dim()]
        b = x[2] if len(x) > 2 else None
        return [conv(inp, x[1], b, stride=a.get("strides", 1), padding=pad, dilation=a.get("dilations", 1),
                     groups=a.get("group", 1))]
    if op == "MaxPool":
        inp, pad = pool_padding(x[0], a, float("-inf"))
        pool = {3: F.max_pool1d, 4: F.max_pool2d, 5: F.max_pool3d}[x[0].dim()]
        return [pool(inp, a["kernel_shape"], a.get("strides", 1), pad, ceil_mode=bool(a.get("ceil_mode", 0)))]
    if op == "AveragePool":  # symmetric pads only (torch's)
        pool = {3: F.avg_pool1d, 4: F.avg_pool2d, 5: F.avg_pool3d}[x[0].dim()]
        r = x[0].dim() - 2
        return [pool(x[0], a["kernel_shape"], a.get("strides", 1), a.get("pads", [0] * (2 * r))[:r],
                     ceil_mode=bool(a.get("ceil_mode", 0)), count_include_pad=bool(a.get("count_include_pad", 0)))]
    if op == "GlobalAveragePool":
        return [x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True)]
    if op == "Dropout":
        return [x[0], None]
    if op == "Flatten":
        axis = a.get("axis", 1) % (x[0].dim() + 1) if x[0].dim() else 0
        lead = int(np.prod(x[0].shape[:axis])) if axis else 1
        return [x[0].reshape(lead, -1)]
    if op == "Reshape":
        shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(ints(x[1]))]
        return [x[0].reshape(shape)]
    if op == "Transpose":
        perm = a.get("perm", list(reversed(range(x[0].dim()))))
        return [x[0].permute(*perm)]
    if op == "Squeeze":
        axes = sorted((v % x[0].dim() for v in ints(x[1])), reverse=True)
        y = x[0]
        for ax in axes:
            y = y.squeeze(ax)
        return [y]
    if op == "Unsqueeze":
        rank = x[0].dim() + x[1].numel()
        y = x[0]
        for ax in sorted(v % rank for v in ints(x[1])):
            y = y.unsqueeze(ax)
        return [y]
    if op == "Concat":
        return [torch.cat(x, a.get("axis", 0))]
    if op == "Split":
        axis = a.get("axis", 0)
        if len(x) > 1 and x[1] is not None:
            sizes = ints(x[1])
        else:
            n = a["_num_outputs"]
            dim = x[0].shape[axis]
            # Opset 18's num_outputs: parts of ceil(dim / n), the last one smaller.
            chunk = -(-dim // n) if "num_outputs" in a else dim // n
            sizes = [min(chunk, dim - i * chunk) for i in range(n)]
        return list(torch.split(x[0], sizes, axis))
    if op == "Slice":
        starts, ends = ints(x[1]), ints(x[2])
        axes = ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
        y = x[0]
        for s, e, ax, st in zip(starts, ends, axes, steps):
            dim = y.shape[ax]
            e = None if (st < 0 and e < -dim) else e
            idx = list(range(*slice(s, e, st).indices(dim)))
            y = y.index_select(ax % y.dim(), torch.tensor(idx, dtype=torch.long))
        return [y]
    if op == "Gather":
        axis = a.get("axis", 0) % x[0].dim()
        idx = x[1] % x[0].shape[axis]
        y = x[0].index_select(axis, idx.reshape(-1))
        return [y.reshape(x[0].shape[:axis] + idx.shape + x[0].shape[axis + 1:])]
    if op == "Expand":
        return [x[0] * torch.ones(ints(x[1]), dtype=x[0].dtype)]
    if op == "Tile":
        return [x[0].repeat(*ints(x[1]))]
    if op == "Pad":
        value = x[2].item() if len(x) > 2 and x[2] is not None else 0.0
        pads = ints(x[1])
        if len(x) > 3 and x[3] is not None:  # opset 18: pads cover only the listed axes
            rank, axes = x[0].dim(), [v % x[0].dim() for v in ints(x[3])]
            full = [0] * (2 * rank)
            for i, ax in enumerate(axes):
                full[ax], full[ax + rank] = pads[i], pads[i + len(axes)]
            pads = full
        return [F.pad(x[0], torch_pads(pads), value=value)]
    if op in ("ReduceSum", "ReduceMean"):
        axes = a.get("axes")
        if len(x) > 1 and x[1] is not None:  # ReduceSum from opset 13, ReduceMean from 18
            axes = ints(x[1])
        if not axes and a.get("noop_with_empty_axes", 0):
            return [x[0]]
        keep = bool(a.get("keepdims", 1))
        dims = tuple(axes) if axes else tuple(range(x[0].dim()))
        f = torch.sum if op == "ReduceSum" else torch.mean
        return [f(x[0], dim=dims, keepdim=keep)]
    if op in ("ReduceMax", "ReduceMin", "ReduceProd"):  # amax/amin: ties share the gradient
        axes = a.get("axes")
        if len(x) > 1 and x[1] is not None:
            axes = ints(x[1])
        if not axes and a.get("noop_with_empty_axes", 0):
            return [x[0]]
        keep = bool(a.get("keepdims", 1))
        dims = tuple(v % x[0].dim() for v in axes) if axes else tuple(range(x[0].dim()))
        if op != "ReduceProd":
            return [(torch.amax if op == "ReduceMax" else torch.amin)(x[0], dim=dims, keepdim=keep)]
        y = x[0]
        for d in sorted(dims, reverse=True):  # torch.prod takes one dim at a time
            y = torch.prod(y, dim=d, keepdim=keep)
        return [y]
    if op == "TopK":
        v, i = torch.topk(x[0], ints(x[1])[0], dim=a.get("axis", -1), largest=bool(a.get("largest", 1)),
                          sorted=bool(a.get("sorted", 1)))
        return [v, i]
    if op in ("SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"):
        w = x[2] if len(x) > 2 else None
        f = F.cross_entropy if op == "SoftmaxCrossEntropyLoss" else F.nll_loss
        y = f(x[0], x[1], weight=w, ignore_index=a.get("ignore_index", -100), reduction=a.get("reduction", "mean"))
        return [y, None]
    if op == "Gelu":
        return [F.gelu(x[0], approximate=a.get("approximate", "none"))]
    activations = {"Mish": F.mish, "HardSwish": F.hardswish, "Softplus": F.softplus, "Softsign": F.softsign,
                   "Cos": torch.cos, "Sin": torch.sin, "Atan": torch.atan}
    if op in activations:
        return [activations[op](x[0])]
    if op == "HardSigmoid":
        return [torch.clamp(a.get("alpha", 0.2) * x[0] + a.get("beta", 0.5), 0, 1)]
    if op == "Elu":
        return [F.elu(x[0], alpha=a.get("alpha", 1.0))]
    if op == "GridSample":
        mode = a.get("mode", "linear")
        mode = {"linear": "bilinear", "cubic": "bicubic"}.get(mode, mode)
        return [F.grid_sample(x[0], x[1], mode=mode, padding_mode=a.get("padding_mode", "zeros"),
                              align_corners=bool(a.get("align_corners", 0)))]
    if op == "Celu":
        return [F.celu(x[0], alpha=a.get("alpha", 1.0))]
    if op == "Selu":
        alpha, gamma = a.get("alpha", 1.6732632423543772), a.get("gamma", 1.0507009873554805)
        return [gamma * torch.where(x[0] > 0, x[0], alpha * torch.expm1(x[0]))]
    if op == "CastLike":
        return [x[0]]  # float <-> float only, as Cast
    if op == "CumSum":
        axis = ints(x[1])[0]
        t = x[0].flip(axis) if a.get("reverse", 0) else x[0]
        c = t.cumsum(axis) - (t if a.get("exclusive", 0) else 0)
        return [c.flip(axis) if a.get("reverse", 0) else c]
    if op == "Trilu":
        k = ints(x[1])[0] if len(x) > 1 and x[1] is not None else 0
        return [torch.triu(x[0], k) if a.get("upper", 1) else torch.tril(x[0], k)]
    if op == "IsNaN":
        return [torch.isnan(x[0])]
    if op == "IsInf":
        none = torch.zeros_like(x[0], dtype=torch.bool)
        pos = torch.isposinf(x[0]) if a.get("detect_positive", 1) else none
        neg = torch.isneginf(x[0]) if a.get("detect_negative", 1) else none
        return [pos | neg]
    if op in ("GatherElements", "ScatterElements"):
        axis = a.get("axis", 0) % x[0].dim()
        idx = x[1].long() % x[0].shape[axis]
        if op == "GatherElements":
            return [torch.gather(x[0], axis, idx)]
        reduction = a.get("reduction", "none")
        if reduction == "add":
            return [x[0].scatter_add(axis, idx, x[2])]
        if reduction in ("max", "min"):
            return [x[0].scatter_reduce(axis, idx, x[2], reduce="a" + reduction, include_self=True)]
        return [x[0].scatter(axis, idx, x[2])]
    if op == "GatherND":
        b = a.get("batch_dims", 0)
        k = x[1].shape[-1]
        idx = x[1] % torch.tensor(x[0].shape[b:b + k])
        data = x[0].reshape((-1,) + tuple(x[0].shape[b:]))
        flat = idx.reshape((data.shape[0], -1, k))
        y = torch.stack([data[i][tuple(flat[i].unbind(-1))] for i in range(data.shape[0])])
        return [y.reshape(tuple(x[1].shape[:-1]) + tuple(x[0].shape[b + k:]))]
    if op == "ScatterND":
        k = x[1].shape[-1]
        idx = x[1] % torch.tensor(x[0].shape[:k])
        return [x[0].index_put(tuple(idx.unbind(-1)), x[2], accumulate=a.get("reduction", "none") == "add")]
    if op == "Einsum":
        return [torch.einsum(a["equation"].replace(" ", ""), *x)]
    if op == "RMSNormalization":
        axes = tuple(range(a.get("axis", -1) % x[0].dim(), x[0].dim()))
        return [x[0] * torch.rsqrt((x[0] * x[0]).mean(dim=axes, keepdim=True) + a.get("epsilon", 1e-5)) * x[1]]
    if op == "RotaryEmbedding":
        return [rotary(x[0], x[1], x[2], x[3] if len(x) > 3 else None, a)]
    if op == "Attention":
        return [attention(x + [None] * (7 - len(x)), a)]
    raise NotImplementedError(op)


def rotary(x, cos, sin, pos, a):
    """ONNX RotaryEmbedding (opset 23): X (B,H,S,D) or (B,S,H*D) with num_heads."""
    shape = x.shape
    x4 = x.transpose(1, 2) if x.dim() == 4 else x.reshape(shape[0], shape[1], a["num_heads"], -1)  # (B,S,H,D)
    rot = a.get("rotary_embedding_dim", 0) or x4.shape[-1]
    if pos is not None:
        cos, sin = cos[pos], sin[pos]
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    xr, rest = x4[..., :rot], x4[..., rot:]
    inter = a.get("interleaved", 0)
    x1, x2 = (xr[..., 0::2], xr[..., 1::2]) if inter else xr.chunk(2, dim=-1)
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    out = torch.stack([real, imag], -1).flatten(-2) if inter else torch.cat([real, imag], -1)
    out = torch.cat([out, rest], -1)
    return out.transpose(1, 2) if x.dim() == 4 else out.reshape(shape)


def attention(x, a):
    """ONNX Attention (opsets 23/24), onnx/reference/ops/op_attention.py's order: scale, softcap, bias
    (mask, bottom-right causal, nonpad padding), softmax with fully masked rows 0, GQA by repeat."""
    q, k, v, mask, pk, pv, nonpad = x
    three = q.dim() == 3
    if three:
        q = q.reshape(q.shape[0], q.shape[1], a["q_num_heads"], -1).transpose(1, 2)
        k = k.reshape(k.shape[0], k.shape[1], a["kv_num_heads"], -1).transpose(1, 2)
        v = v.reshape(v.shape[0], v.shape[1], a["kv_num_heads"], -1).transpose(1, 2)
    if pk is not None:
        k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
    S, L = q.shape[2], k.shape[2]
    scale = float(np.float32(np.sqrt(a.get("scale", 1 / np.sqrt(q.shape[3]))))) ** 2
    inf = torch.tensor(float("-inf"), dtype=torch.float64)
    zero = torch.tensor(0.0, dtype=torch.float64)
    bias = torch.zeros(S, L, dtype=torch.float64)
    if mask is not None:
        m = torch.where(mask, zero, inf) if mask.dtype == torch.bool else mask
        if m.shape[-1] < L:
            m = torch.cat([m, torch.full(m.shape[:-1] + (L - m.shape[-1],), float("-inf"), dtype=torch.float64)], -1)
        bias = bias + m
    if a.get("is_causal", 0):
        off = pk.shape[2] if pk is not None else (nonpad.reshape(-1, 1, 1, 1) - S) if nonpad is not None else 0
        allowed = torch.arange(L).reshape(1, L) <= torch.arange(S).reshape(S, 1) + off
        bias = bias + torch.where(allowed, zero, inf)
    if nonpad is not None:
        keep = torch.arange(L).reshape(1, L) < nonpad.reshape(-1, 1)
        bias = bias + torch.where(keep, zero, inf).reshape(-1, 1, 1, L)
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = scale * q @ k.transpose(-1, -2)
    cap = a.get("softcap", 0.0)
    if cap > 0:
        s = cap * torch.tanh(s / cap)
    z = s + bias
    dead = torch.isneginf(bias.amax(-1, keepdim=True)).expand_as(z)
    p = torch.where(dead, zero, torch.softmax(torch.where(dead, zero, z), -1))
    y = p @ v
    return y.transpose(1, 2).reshape(y.shape[0], S, -1) if three else y


def reference(path):
    model = onnx.load(path)
    g = model.graph
    meta = {p.key: p.value for p in model.metadata_props}
    params = meta["dsc.parameters"].split(",")
    env = {}
    for t in g.initializer:
        arr = numpy_helper.to_array(t)
        ten = torch.from_numpy(arr.astype(np.float64) if arr.dtype.kind == "f" else arr.copy())
        if t.name in params:
            ten.requires_grad_(True)
        env[t.name] = ten
    for node in g.node:
        a = attrs_of(node)
        a["_num_outputs"] = len(node.output)
        outs = run_node(node.op_type, a, [env[i] if i else None for i in node.input])
        for name, v in zip(node.output, outs):
            if name:
                env[name] = v
    loss = env[g.output[0].name]
    grads = torch.autograd.grad(loss, [env[p] for p in params])
    return {p: gr.reshape(-1).tolist() for p, gr in zip(params, grads)}


def main():
    exporter = sys.argv[1] if len(sys.argv) > 1 else "build/tests/autodiff/export_grad_cases"
    cases_txt = os.path.join(HERE, "grad_cases.txt")
    skip = set()
    for line in open(cases_txt):
        if line.startswith("# ===== ") and "torch=0" in line.split():
            skip.add(line.split()[2])
    only = set(sys.argv[2:])
    out = {}
    if only:
        with open(os.path.join(HERE, "reference_grads.json")) as fh:
            out = {k: v for k, v in json.load(fh).items() if k not in only}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([exporter, cases_txt, tmp], check=True)
        for f in sorted(os.listdir(tmp)):
            name = f[:-len(".onnx")]
            if name in skip or (only and name not in only):
                continue
            out[name] = reference(os.path.join(tmp, f))
    with open(os.path.join(HERE, "reference_grads.json"), "w") as fh:
        json.dump(out, fh, indent=0, sort_keys=True)
        fh.write("\n")
    print(f"wrote {len(out)} cases to reference_grads.json")


if __name__ == "__main__":
    main()
