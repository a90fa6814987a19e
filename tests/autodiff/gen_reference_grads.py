#!/usr/bin/python3
"""torch.autograd reference gradients (float64) for tests/autodiff/grad_cases.txt.

The C++ exporter writes each case completed with its seeded data and loss as an .onnx file; this
script evaluates those graphs op by op in torch (double precision), differentiates the loss with
respect to the parameters listed in metadata "dsc.parameters", and writes reference_grads.json
({case: {param: [flat gradient]}}). Cases marked torch=0 (random dropout masks, tie-breaking
rules of our own) are left out.

    cmake --build build --target export_grad_cases
    /usr/bin/python3 tests/autodiff/gen_reference_grads.py build/tests/autodiff/export_grad_cases
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
        return [F.max_pool2d(inp, a["kernel_shape"], a.get("strides", 1), pad, ceil_mode=bool(a.get("ceil_mode", 0)))]
    if op == "AveragePool":
        return [F.avg_pool2d(x[0], a["kernel_shape"], a.get("strides", 1), a.get("pads", [0, 0, 0, 0])[:2],
                             ceil_mode=bool(a.get("ceil_mode", 0)),
                             count_include_pad=bool(a.get("count_include_pad", 0)))]
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
            sizes = [x[0].shape[axis] // n] * n
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
    if op == "Pad":
        value = x[2].item() if len(x) > 2 and x[2] is not None else 0.0
        return [F.pad(x[0], torch_pads(ints(x[1])), value=value)]
    if op in ("ReduceSum", "ReduceMean"):
        axes = a.get("axes")
        if op == "ReduceSum" and len(x) > 1 and x[1] is not None:
            axes = ints(x[1])
        keep = bool(a.get("keepdims", 1))
        dims = tuple(axes) if axes else tuple(range(x[0].dim()))
        f = torch.sum if op == "ReduceSum" else torch.mean
        return [f(x[0], dim=dims, keepdim=keep)]
    if op in ("SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"):
        w = x[2] if len(x) > 2 else None
        f = F.cross_entropy if op == "SoftmaxCrossEntropyLoss" else F.nll_loss
        y = f(x[0], x[1], weight=w, ignore_index=a.get("ignore_index", -100), reduction=a.get("reduction", "mean"))
        return [y, None]
    raise NotImplementedError(op)


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
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([exporter, cases_txt, tmp], check=True)
        for f in sorted(os.listdir(tmp)):
            name = f[:-len(".onnx")]
            if name in skip:
                continue
            out[name] = reference(os.path.join(tmp, f))
    with open(os.path.join(HERE, "reference_grads.json"), "w") as fh:
        json.dump(out, fh, indent=0, sort_keys=True)
        fh.write("\n")
    print(f"wrote {len(out)} cases to reference_grads.json")


if __name__ == "__main__":
    main()
