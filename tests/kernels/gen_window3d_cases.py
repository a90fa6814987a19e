#!/opt/torchenv/bin/python
"""Generates data/window3d_cases.json for window3d_test: 3-D Conv/ConvGrad, MaxPool/MaxPoolGrad,
AveragePool/AveragePoolGrad, and the rank-agnostic BatchNormalization and GlobalAveragePool on 5-D inputs.

Run with current torch (/opt/torchenv) from this directory:
    /opt/torchenv/bin/python gen_window3d_cases.py > data/window3d_cases.json
References are computed in float64 from float32 inputs: forward values from F.conv3d, F.max_pool3d,
F.avg_pool3d and F.batch_norm, gradients from torch.autograd. Where torch and ONNX differ the reference says
how it bridges them:
  - ONNX pads may be asymmetric and auto_pad SAME_*: torch runs on the input padded by F.pad with the pads the
    spec derives (zeros for Conv, -inf for MaxPool; AveragePool divides by the taps that land in X, or in the
    padded extent with count_include_pad, counted by pooling a tensor of ones the same way).
  - AveragePool dilations (opset 19): torch's avg_pool3d has none; the sum of the dilated window is a conv3d
    with a ones kernel, divided by the same conv of the inside mask (or by the tap count with
    count_include_pad).
  - MaxPool Indices: flat offsets into X (torch returns offsets within each (n, c) volume).
  - BatchNormalization running_var uses the biased batch variance (torch uses the unbiased one).
The case format is nn_cases.json's (gen_nn_cases.py).
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

DSC = "ai.dscompile"
rng = np.random.default_rng(3030)
cases = []


def f32(*shape, scale=1.0, offset=0.0):
    return (rng.standard_normal(shape) * scale + offset).astype(np.float32)


def T(a):
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype == np.int64:
        return {"dtype": "int64", "dims": list(a.shape), "values": [int(v) for v in a.ravel()]}
    return {"dtype": "float", "dims": list(a.shape), "values": [float(f"{v:.9g}") for v in a.astype(np.float64).ravel()]}


def attr(v):
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"string": v}
    return {"ints": [int(x) for x in v]}


def case(name, op, inputs, outputs, attrs, domain="", atol=1e-5):
    cases.append({"name": name, "op": op, "domain": domain, "attrs": {k: attr(v) for k, v in attrs.items()},
                  "inputs": [T(a) for a in inputs], "outputs": [T(a) for a in outputs], "rtol": 1e-5, "atol": atol})


def t(a, grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def grads(y, xs, dy):
    return [g.numpy() for g in torch.autograd.grad(y, xs, torch.tensor(dy, dtype=torch.float64))]


def same_pads(ins, k, s, d, upper):
    """ONNX auto_pad SAME_*: output ceil(in / stride), the odd pad at the end (UPPER) or the beginning."""
    begin, end = [], []
    for i in range(len(ins)):
        out = -(-ins[i] // s[i])
        total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - ins[i])
        b = total // 2 if upper else total - total // 2
        begin.append(b)
        end.append(total - b)
    return begin + end


def torch_pad(x, pads, value=0.0):
    """ONNX pads [d0, h0, w0, d1, h1, w1] as F.pad's (w0, w1, h0, h1, d0, d1)."""
    r = len(pads) // 2
    spec = []
    for i in reversed(range(r)):
        spec += [pads[i], pads[i + r]]
    return F.pad(x, spec, value=value)


# ---------------------------------------------------------------- Conv
def conv_case(name, xs, ws, bias, pads=(0, 0, 0, 0, 0, 0), strides=(1, 1, 1), dil=(1, 1, 1), group=1,
              auto_pad=None, grad_outputs=(True, True, True), kernel_attr=False):
    x, w = f32(*xs), f32(*ws)
    b = f32(ws[0]) if bias else None
    if auto_pad == "VALID":
        pads = (0,) * 6
    elif auto_pad:
        pads = same_pads(xs[2:], ws[2:], strides, dil, auto_pad == "SAME_UPPER")
    xt, wt = t(x), t(w)
    bt = t(b) if bias else None
    y = F.conv3d(torch_pad(xt, pads), wt, bt, stride=strides, dilation=dil, groups=group)
    attrs = {"strides": list(strides), "dilations": list(dil), "group": group}
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs["pads"] = list(pads)
    if kernel_attr:
        attrs["kernel_shape"] = list(ws[2:])
    case(name, "Conv", [x, w, b], [y.detach().numpy()], attrs)
    dy = f32(*y.shape)
    gx, gw = grads(y, [xt, wt], dy)
    gb = dy.astype(np.float64).sum(axis=(0, 2, 3, 4))
    outs = [g if keep else None for g, keep in zip([gx, gw, gb], grad_outputs)]
    case(name + "_grad", "ConvGrad", [dy, x, w], outs, attrs, DSC)


conv_case("conv3d_basic", (2, 2, 3, 4, 4), (3, 2, 3, 3, 3), True, pads=(1,) * 6, kernel_attr=True)
# VideoMAE / TimeSformer tubelet embedding: kernel = stride, no padding.
conv_case("conv3d_tubelet", (1, 3, 4, 8, 8), (4, 3, 2, 4, 4), True, strides=(2, 4, 4))
# C3D / R(2+1)D factorised kernels: spatial (1,3,3) with spatial stride, temporal (3,1,1).
conv_case("conv3d_spatial_stride", (2, 3, 2, 5, 6), (4, 3, 1, 3, 3), False, pads=(0, 1, 1, 0, 1, 1), strides=(1, 2, 2))
conv_case("conv3d_temporal", (1, 3, 6, 4, 5), (2, 3, 3, 1, 1), True, pads=(1, 0, 0, 1, 0, 0))
conv_case("conv3d_asym_pad_stride", (1, 2, 5, 6, 7), (3, 2, 2, 3, 2), True, pads=(0, 1, 0, 1, 0, 2), strides=(2, 1, 3),
          grad_outputs=(True, True, False))
conv_case("conv3d_group_dil", (1, 4, 5, 6, 5), (4, 2, 2, 2, 3), True, pads=(1, 0, 2, 1, 0, 2), dil=(2, 3, 1), group=2)
conv_case("conv3d_depthwise", (2, 3, 3, 5, 5), (3, 1, 2, 2, 2), True, strides=(1, 2, 1), group=3,
          grad_outputs=(False, True, True))
conv_case("conv3d_same_upper", (1, 2, 4, 5, 6), (2, 2, 2, 4, 3), False, strides=(2, 2, 1), auto_pad="SAME_UPPER")
conv_case("conv3d_same_lower", (1, 2, 5, 4, 3), (3, 2, 4, 2, 2), True, strides=(1, 2, 2), auto_pad="SAME_LOWER",
          grad_outputs=(True, False, False))
conv_case("conv3d_valid", (2, 2, 4, 4, 5), (2, 2, 3, 2, 2), True, strides=(1, 2, 2), auto_pad="VALID")


# ---------------------------------------------------------------- MaxPool
def pool_attrs(k, s, pads, dil=None, ceil=0, cip=None, auto_pad=None):
    a = {"kernel_shape": list(k), "strides": list(s)}
    if auto_pad:
        a["auto_pad"] = auto_pad
    else:
        a["pads"] = list(pads)
    if dil is not None:
        a["dilations"] = list(dil)
    if ceil:
        a["ceil_mode"] = 1
    if cip is not None:
        a["count_include_pad"] = cip
    return a


def maxpool_case(name, x, k, s, p, dil=(1, 1, 1), ceil=False, indices=False):
    """Symmetric pads p (torch's); Indices as ONNX flat offsets."""
    xt = t(x)
    y, idx = F.max_pool3d(xt, k, s, p, dil, ceil_mode=ceil, return_indices=True)
    vol = int(np.prod(x.shape[2:]))
    flat = idx.numpy() + (np.arange(x.shape[0] * x.shape[1]) * vol).reshape(x.shape[0], x.shape[1], 1, 1, 1)
    attrs = pool_attrs(k, s, list(p) + list(p), dil if dil != (1, 1, 1) else None, int(ceil))
    case(name, "MaxPool", [x], [y.detach().numpy(), flat.astype(np.int64) if indices else None], attrs)
    dy = f32(*y.shape)
    case(name + "_grad", "MaxPoolGrad", [dy, x], grads(y, [xt], dy), attrs, DSC)


maxpool_case("maxpool3d_basic", f32(2, 2, 4, 4, 4), (2, 2, 2), (2, 2, 2), (0, 0, 0), indices=True)  # nn.MaxPool3d(2)
maxpool_case("maxpool3d_c3d_pool1", f32(1, 2, 3, 6, 5), (1, 2, 2), (1, 2, 2), (0, 0, 0))  # C3D's first pool
maxpool_case("maxpool3d_pad_dil", f32(1, 2, 5, 6, 7), (3, 2, 3), (2, 1, 2), (1, 0, 1), dil=(1, 2, 1), indices=True)
maxpool_case("maxpool3d_ceil", f32(1, 2, 5, 5, 4), (2, 3, 2), (2, 2, 2), (1, 1, 0), ceil=True)  # last window dropped
ties = np.round(f32(1, 2, 4, 4, 4)).astype(np.float32)  # many equal maxima: the first in window order wins
maxpool_case("maxpool3d_ties", ties, (3, 3, 3), (1, 1, 1), (1, 1, 1), indices=True)

# auto_pad SAME_UPPER: torch on the input padded with -inf by the spec's pads.
x = f32(1, 2, 5, 4, 6)
k, s = (3, 2, 3), (2, 2, 2)
pads = same_pads(x.shape[2:], k, s, (1, 1, 1), True)
xt = t(x)
y = F.max_pool3d(torch_pad(xt, pads, value=-np.inf), k, s)
attrs = pool_attrs(k, s, None, auto_pad="SAME_UPPER")
case("maxpool3d_same_upper", "MaxPool", [x], [y.detach().numpy()], attrs)
dy = f32(*y.shape)
case("maxpool3d_same_upper_grad", "MaxPoolGrad", [dy, x], grads(y, [xt], dy), attrs, DSC)


# ---------------------------------------------------------------- AveragePool
def avg_reference(xt, k, s, pads, dil, cip, ceil=False):
    """The ONNX AveragePool of xt through torch, for any pads, dilations and count_include_pad.

    Without dilations, avg_pool3d on the zero-padded input sums each window; the divisor is the pool of the
    inside mask (taps in X) or, with count_include_pad, of the mask of X plus its pads (taps in the padded
    extent: with ceil_mode a window may reach past it). On the pre-padded input ceil_mode would also keep a
    last window that starts in the end padding, which torch and ONNX drop: the output is cut to their size.
    With dilations the window sums are a conv3d with a ones kernel; ceil_mode with dilations is not
    generated."""
    n, c = xt.shape[:2]
    flat = xt.reshape(n * c, 1, *xt.shape[2:])
    ones = torch.ones_like(flat[:1])
    inside = torch_pad(ones, pads)
    extent = torch_pad(ones, pads, value=1.0)
    if dil == (1, 1, 1):
        # divisor_override=1 makes avg_pool3d a plain window sum, padding past the input with zeros for ceil.
        def window_sum(v):
            return F.avg_pool3d(v, k, s, 0, ceil_mode=ceil, divisor_override=1)
    else:
        assert not ceil
        kern = torch.ones(1, 1, *k, dtype=torch.float64)

        def window_sum(v):
            return F.conv3d(v, kern, stride=s, dilation=dil)
    total = window_sum(torch_pad(flat, pads))
    count = window_sum(extent if cip else inside)
    y = total / count
    for i in range(3):
        size = xt.shape[2 + i]
        out = (size + pads[i] + pads[i + 3] - (k[i] - 1) * dil[i] - 1 + ((s[i] - 1) if ceil else 0)) // s[i] + 1
        if ceil and (out - 1) * s[i] >= size + pads[i]:
            out -= 1  # the window would start in the end padding
        y = y.narrow(2 + i, 0, out)
    return y.reshape(n, c, *y.shape[2:])


def avgpool_case(name, x, k, s, pads, dil=(1, 1, 1), ceil=False, cip=0, auto_pad=None):
    if auto_pad:
        pads = same_pads(x.shape[2:], k, s, dil, auto_pad == "SAME_UPPER")
    xt = t(x)
    y = avg_reference(xt, k, s, pads, dil, cip, ceil)
    if dil == (1, 1, 1) and not auto_pad and list(pads[:3]) == list(pads[3:]):  # torch's own op agrees
        ref = F.avg_pool3d(xt, k, s, list(pads[:3]), ceil_mode=ceil, count_include_pad=bool(cip))
        assert torch.allclose(ref, y, atol=1e-12), name
    attrs = pool_attrs(k, s, pads, dil if dil != (1, 1, 1) else None, int(ceil), cip, auto_pad)
    case(name, "AveragePool", [x], [y.detach().numpy()], attrs)
    dy = f32(*y.shape)
    case(name + "_grad", "AveragePoolGrad", [dy], grads(y, [xt], dy), attrs, DSC)


avgpool_case("avgpool3d_basic", f32(2, 2, 4, 4, 4), (2, 2, 2), (2, 2, 2), (0,) * 6)
avgpool_case("avgpool3d_include_pad", f32(1, 2, 5, 5, 4), (3, 3, 2), (2, 2, 1), (1, 1, 0, 1, 1, 0), cip=1)
avgpool_case("avgpool3d_exclude_pad", f32(1, 2, 5, 5, 4), (3, 3, 2), (2, 2, 1), (1, 1, 1, 1, 1, 1), cip=0)
avgpool_case("avgpool3d_ceil_include", f32(1, 1, 5, 4, 5), (2, 3, 2), (2, 2, 2), (1, 1, 1, 1, 1, 1), ceil=True, cip=1)
avgpool_case("avgpool3d_ceil_exclude", f32(2, 1, 4, 6, 5), (3, 2, 2), (2, 2, 2), (1, 0, 0, 1, 0, 0), ceil=True)
avgpool_case("avgpool3d_asym_pad", f32(1, 2, 4, 5, 3), (2, 3, 2), (1, 2, 1), (0, 1, 1, 1, 2, 0), cip=1)
avgpool_case("avgpool3d_dil", f32(1, 2, 6, 5, 6), (2, 2, 3), (1, 2, 1), (1, 0, 1, 1, 0, 1), dil=(2, 1, 2))
avgpool_case("avgpool3d_dil_include_pad", f32(2, 1, 5, 6, 5), (3, 2, 2), (2, 1, 2), (1, 1, 0, 1, 1, 0), dil=(1, 2, 2),
             cip=1)
avgpool_case("avgpool3d_same_lower", f32(1, 2, 5, 4, 3), (2, 3, 2), (2, 1, 2), None, auto_pad="SAME_LOWER")
# nn.LocalResponseNorm(3) on (N,C,H,W) exports as a 3-D AveragePool over the channel axis of x^2 zero-padded
# by F.pad (so the pool itself has no pads): kernel (size, 1, 1), stride 1, over (N, 1, C + size - 1, H, W).
avgpool_case("avgpool3d_lrn", np.square(f32(2, 1, 10, 4, 4)), (3, 1, 1), (1, 1, 1), (0,) * 6)

# ---------------------------------------------------------------- rank-agnostic ops on 5-D inputs
x = f32(2, 3, 2, 3, 4, scale=1.5, offset=0.5)
case("globalavgpool3d", "GlobalAveragePool", [x], [x.astype(np.float64).mean(axis=(2, 3, 4), keepdims=True)], {})

scale, bias, rmean = f32(3), f32(3), f32(3)
rvar = (np.abs(f32(3)) + 0.5).astype(np.float32)
xt, st, bt = t(x), t(scale), t(bias)
y = F.batch_norm(xt, None, None, st, bt, training=True, eps=1e-5)  # nn.BatchNorm3d in training
x64 = x.astype(np.float64)
red = (0, 2, 3, 4)
case("bn3d_train", "BatchNormalization", [x, scale, bias, rmean, rvar],
     [y.detach().numpy(), rmean * 0.9 + x64.mean(axis=red) * 0.1, rvar * 0.9 + x64.var(axis=red) * 0.1],
     {"training_mode": 1, "momentum": 0.9})
dy = f32(*x.shape)
case("bn3d_train_grad", "BatchNormalizationGrad", [dy, x, scale], grads(y, [xt, st, bt], dy), {"epsilon": 1e-5}, DSC)
y = F.batch_norm(t(x, False), t(rmean, False), t(rvar, False), t(scale, False), t(bias, False), training=False, eps=1e-5)
case("bn3d_inference", "BatchNormalization", [x, scale, bias, rmean, rvar], [y.numpy()], {})

json.dump({"generator": "gen_window3d_cases.py", "torch": torch.__version__, "cases": cases}, sys.stdout)
sys.stdout.write("\n")
