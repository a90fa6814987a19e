#!/usr/bin/python3
"""Generates data/nn_cases.json for nn_forward_test and nn_grad_test: one-node cases with expected outputs.

Run with Debian's /usr/bin/python3 (torch 1.13 CPU, numpy 1.24) from this directory:
    ./gen_nn_cases.py > data/nn_cases.json
References are computed in float64 from float32 inputs. Forward values come from torch.nn.functional and
gradients from torch.autograd, except where torch and ONNX differ; there numpy spells out the ONNX rule:
  - BatchNormalization training: running_var uses the biased batch variance (torch uses the unbiased one).
  - LayerNormalization Mean / InvStdDev outputs (torch does not return them).
  - MaxPool Indices: flat offsets into X (torch returns offsets within each (n, c) plane).
  - SliceGrad: numpy basic slicing (same clamping as ONNX Slice; torch has no negative steps).
Each case: {name, op, domain, attrs, inputs: [tensor|null], outputs: [tensor|null = omitted], rtol, atol}.
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

DSC = "ai.dscompile"
rng = np.random.default_rng(1234)
cases = []


def f32(*shape, scale=1.0, offset=0.0):
    return (rng.standard_normal(shape) * scale + offset).astype(np.float32)


def T(a):
    """A tensor as JSON; floats keep 9 significant digits, enough to round-trip float32."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype == np.float32 or a.dtype == np.float64:
        return {"dtype": "float", "dims": list(a.shape), "values": [float(f"{v:.9g}") for v in a.astype(np.float64).ravel()]}
    if a.dtype == np.bool_:
        return {"dtype": "bool", "dims": list(a.shape), "values": [int(v) for v in a.ravel()]}
    assert a.dtype == np.int64, a.dtype
    return {"dtype": "int64", "dims": list(a.shape), "values": [int(v) for v in a.ravel()]}


def attr(v):
    if isinstance(v, bool) or isinstance(v, int):
        return {"int": int(v)}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"string": v}
    if all(isinstance(x, int) for x in v):
        return {"ints": list(v)}
    return {"floats": [float(x) for x in v]}


def case(name, op, inputs, outputs, attrs=None, domain="", rtol=1e-5, atol=1e-6):
    cases.append({"name": name, "op": op, "domain": domain, "attrs": {k: attr(v) for k, v in (attrs or {}).items()},
                  "inputs": [T(a) for a in inputs], "outputs": [T(a) for a in outputs], "rtol": rtol, "atol": atol})


def t(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def np_(x):
    return x.detach().numpy()


def grads(y, xs, dy):
    gs = torch.autograd.grad(y, xs, t(dy))
    return [np_(g) for g in gs]


# ---------------------------------------------------------------- softmax family
for name, shape, axis, log in [("softmax_last", (2, 5), None, False), ("softmax_axis0", (3, 4), 0, False),
                               ("softmax_axis1_3d", (2, 3, 4), 1, False), ("logsoftmax_axis_neg2", (2, 3, 4), -2, True),
                               ("logsoftmax_large", (3, 6), None, True)]:
    x = f32(*shape, scale=3.0, offset=100.0 if name == "logsoftmax_large" else 0.0)
    dim = -1 if axis is None else axis
    xt = t(x, True)
    y = (F.log_softmax if log else F.softmax)(xt, dim=dim)
    attrs = {} if axis is None else {"axis": axis}
    case(name, "LogSoftmax" if log else "Softmax", [x], [np_(y)], attrs)
    dy = f32(*shape)
    (dx,) = grads(y, [xt], dy)
    case(name.replace("softmax", "softmax_grad"), "LogSoftmaxGrad" if log else "SoftmaxGrad",
         [dy, np_(y).astype(np.float32)], [dx], attrs, DSC, atol=1e-5)

# ---------------------------------------------------------------- activation gradients
x = f32(3, 4)
x[0, 0] = 0.0  # Relu's gradient at 0 is 0 in both torch and ONNX Runtime
dy = f32(3, 4)
for op, fn, attrs, uses_y in [("ReluGrad", F.relu, {}, False),
                              ("LeakyReluGrad", lambda v: F.leaky_relu(v, 0.2), {"alpha": 0.2}, False),
                              ("SigmoidGrad", torch.sigmoid, {}, True), ("TanhGrad", torch.tanh, {}, True)]:
    xt = t(x, True)
    y = fn(xt)
    (dx,) = grads(y, [xt], dy)
    second = np_(y).astype(np.float32) if uses_y else x
    case(op.lower(), op, [dy, second], [dx], attrs, DSC)

# ---------------------------------------------------------------- layer norm
for name, shape, axis, eps, with_b, stats in [("ln_last", (2, 3, 4), -1, 1e-5, True, True),
                                              ("ln_2axes", (2, 3, 4), 1, 1e-3, True, True),
                                              ("ln_noB_nostats", (3, 5), -1, 1e-5, False, False)]:
    x = f32(*shape, scale=2.0, offset=0.5)
    a = axis % len(shape)
    norm_shape = shape[a:]
    scale, bias = f32(*norm_shape), f32(*norm_shape)
    xt, st, bt = t(x, True), t(scale, True), t(bias, True)
    y = F.layer_norm(xt, norm_shape, st, bt if with_b else None, eps)
    axes = tuple(range(a, len(shape)))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(((x64 - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    attrs = {"epsilon": eps} if axis == -1 and eps == 1e-5 else {"axis": axis, "epsilon": eps}
    outs = [np_(y), mean, inv] if stats else [np_(y), None, None]
    case(name, "LayerNormalization", [x, scale, bias if with_b else None], outs, attrs)
    dy = f32(*shape)
    dx, ds, db = grads(y, [xt, st, bt] if with_b else [xt, st], dy) + ([None] if not with_b else [])
    if with_b:
        case(name.replace("ln_", "ln_grad_"), "LayerNormalizationGrad", [dy, x, scale], [dx, ds, db], attrs, DSC,
             atol=1e-5)
    else:  # dScale omitted; dBias of a B-less forward is still sum(dY)
        case("ln_grad_only_dx_dbias", "LayerNormalizationGrad", [dy, x, scale], [dx, None, dy.sum(axis=0)], attrs, DSC,
             atol=1e-5)

# ---------------------------------------------------------------- batch norm
x = f32(2, 3, 2, 2, scale=2.0, offset=1.0)
scale, bias, rmean = f32(3), f32(3), f32(3)
rvar = (np.abs(f32(3)) + 0.5).astype(np.float32)
y = F.batch_norm(t(x), t(rmean), t(rvar), t(scale), t(bias), training=False, eps=1e-5)
case("bn_inference", "BatchNormalization", [x, scale, bias, rmean, rvar], [np_(y)])
for name, xs, momentum in [("bn_train", x, 0.8), ("bn_train_2d", f32(4, 3, offset=2.0), None)]:
    red = tuple(i for i in range(xs.ndim) if i != 1)
    xt, st, bt = t(xs, True), t(scale, True), t(bias, True)
    y = F.batch_norm(xt, None, None, st, bt, training=True, eps=1e-5)
    x64 = xs.astype(np.float64)
    m = 0.9 if momentum is None else momentum
    bmean, bvar = x64.mean(axis=red), x64.var(axis=red)  # ONNX: population (biased) variance
    attrs = {"training_mode": 1} if momentum is None else {"training_mode": 1, "momentum": momentum}
    case(name, "BatchNormalization", [xs, scale, bias, rmean, rvar],
         [np_(y), rmean * m + bmean * (1 - m), rvar * m + bvar * (1 - m)], attrs)
    dy = f32(*xs.shape)
    dx, ds, db = grads(y, [xt, st, bt], dy)
    case(name.replace("bn_", "bn_grad_"), "BatchNormalizationGrad", [dy, xs, scale], [dx, ds, db], {"epsilon": 1e-5},
         DSC, atol=1e-5)


# ---------------------------------------------------------------- conv
def same_pads(in_hw, k, s, d, upper):
    pads_b, pads_e = [], []
    for i in range(2):
        out = -(-in_hw[i] // s[i])
        total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i])
        small = total // 2
        b = small if upper else total - small
        pads_b.append(b)
        pads_e.append(total - b)
    return pads_b + pads_e


def conv_case(name, xs, ws, bias, pads=(0, 0, 0, 0), strides=(1, 1), dil=(1, 1), group=1, auto_pad=None,
              grad_outputs=(True, True, True), kernel_attr=False):
    x, w = f32(*xs), f32(*ws)
    b = f32(ws[0]) if bias else None
    if auto_pad:
        pads = same_pads(xs[2:], ws[2:], strides, dil, auto_pad == "SAME_UPPER")
    xt, wt = t(x, True), t(w, True)
    bt = t(b, True) if bias else None
    xp = F.pad(xt, (pads[1], pads[3], pads[0], pads[2]))
    y = F.conv2d(xp, wt, bt, stride=strides, dilation=dil, groups=group)
    attrs = {"strides": list(strides), "dilations": list(dil), "group": group}
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs["pads"] = list(pads)
    if kernel_attr:
        attrs["kernel_shape"] = list(ws[2:])
    case(name, "Conv", [x, w, b], [np_(y)], attrs, atol=1e-5)
    dy = f32(*y.shape)
    gx, gw = grads(y, [xt, wt], dy)
    gb = dy.astype(np.float64).sum(axis=(0, 2, 3))
    outs = [g if keep else None for g, keep in zip([gx, gw, gb], grad_outputs)]
    case(name.replace("conv_", "conv_grad_"), "ConvGrad", [dy, x, w], outs, attrs, DSC, atol=1e-5)


conv_case("conv_basic", (1, 2, 5, 5), (3, 2, 3, 3), True, kernel_attr=True)
conv_case("conv_pad_stride", (2, 2, 6, 5), (4, 2, 3, 3), False, pads=(1, 1, 1, 1), strides=(2, 2))
conv_case("conv_group_dil", (1, 4, 7, 7), (4, 2, 3, 3), True, pads=(2, 1, 2, 1), dil=(2, 2), group=2)
conv_case("conv_asym_pad", (2, 3, 5, 4), (2, 3, 2, 3), True, pads=(1, 0, 0, 2), strides=(1, 2),
          grad_outputs=(True, True, False))
conv_case("conv_same_upper", (1, 2, 5, 6), (2, 2, 4, 3), False, strides=(2, 2), auto_pad="SAME_UPPER")
conv_case("conv_same_lower", (1, 2, 5, 6), (3, 2, 4, 2), True, strides=(2, 1), auto_pad="SAME_LOWER",
          grad_outputs=(False, True, True))
conv_case("conv_depthwise", (2, 3, 4, 4), (3, 1, 2, 2), True, strides=(1, 2), group=3)


# ---------------------------------------------------------------- pools
def pool_attrs(k, s, pads, dil=None, ceil=0, cip=None):
    a = {"kernel_shape": list(k), "strides": list(s), "pads": list(pads)}
    if dil:
        a["dilations"] = list(dil)
    if ceil:
        a["ceil_mode"] = 1
    if cip is not None:
        a["count_include_pad"] = cip
    return a


def maxpool_case(name, x, k, s, p, dil=(1, 1), ceil=False, indices=False):
    xt = t(x, True)
    y, idx = F.max_pool2d(xt, k, s, p, dil, ceil_mode=ceil, return_indices=True)
    n, c, h, w = x.shape
    plane = (np.arange(n * c).reshape(n, c, 1, 1) * h * w).astype(np.int64)
    attrs = pool_attrs(k, s, [p[0], p[1], p[0], p[1]], dil if dil != (1, 1) else None, int(ceil))
    case(name, "MaxPool", [x], [np_(y), idx.numpy() + plane] if indices else [np_(y)], attrs)
    dy = f32(*y.shape)
    (dx,) = grads(y, [xt], dy)
    case(name.replace("maxpool_", "maxpool_grad_"), "MaxPoolGrad", [dy, x], [dx], attrs, DSC)


maxpool_case("maxpool_basic", f32(1, 2, 5, 5), (2, 2), (2, 2), (0, 0))
ties = rng.integers(0, 3, size=(2, 2, 5, 5)).astype(np.float32)  # many equal maxima: the first one wins
maxpool_case("maxpool_ties", ties, (3, 3), (1, 1), (1, 1), indices=True)
maxpool_case("maxpool_dil", f32(1, 2, 7, 7), (3, 3), (1, 1), (0, 0), dil=(2, 2), indices=True)
maxpool_case("maxpool_ceil", f32(1, 1, 5, 5), (2, 2), (2, 2), (1, 1), ceil=True)  # 4 -> 3: last window dropped
maxpool_case("maxpool_ceil_rect", f32(1, 2, 6, 7), (3, 2), (2, 3), (1, 0), ceil=True)

# SAME_UPPER: asymmetric padding, done by hand with -inf
x = f32(1, 2, 5, 6)
pads = same_pads((5, 6), (3, 3), (2, 2), (1, 1), True)
y = F.max_pool2d(F.pad(t(x), (pads[1], pads[3], pads[0], pads[2]), value=-np.inf), 3, 2)
case("maxpool_same_upper", "MaxPool", [x], [np_(y)], {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"})


def avgpool_case(name, x, k, s, p, ceil=False, cip=0):
    xt = t(x, True)
    y = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=bool(cip))
    attrs = pool_attrs(k, s, [p[0], p[1], p[0], p[1]], None, int(ceil), cip)
    case(name, "AveragePool", [x], [np_(y)], attrs)
    dy = f32(*y.shape)
    (dx,) = grads(y, [xt], dy)
    case(name.replace("avgpool_", "avgpool_grad_"), "AveragePoolGrad", [dy], [dx], attrs, DSC)
    return dx


avgpool_case("avgpool_include_pad", f32(1, 2, 5, 5), (3, 3), (2, 2), (1, 1), cip=1)
avgpool_case("avgpool_exclude_pad", f32(1, 2, 5, 5), (3, 3), (2, 2), (1, 1), cip=0)
avgpool_case("avgpool_ceil_include", f32(1, 1, 5, 5), (2, 2), (2, 2), (1, 1), ceil=True, cip=1)
avgpool_case("avgpool_ceil_exclude", f32(2, 1, 6, 5), (3, 2), (2, 2), (1, 0), ceil=True, cip=0)
avgpool_case("avgpool_rect", f32(1, 3, 4, 6), (2, 3), (1, 2), (0, 0))

x = f32(2, 3, 3, 4)
case("globalavgpool", "GlobalAveragePool", [x], [x.astype(np.float64).mean(axis=(2, 3), keepdims=True)])


# ---------------------------------------------------------------- losses
def loss_case(name, shape, reduction, weights=False, ignore=None, log_prob=False, ignore_at=()):
    n, c = shape[0], shape[1]
    scores = f32(*shape, scale=2.0)
    labels = rng.integers(0, c, size=(n,) + tuple(shape[2:])).astype(np.int64)
    for pos in ignore_at:
        labels[pos] = ignore
    w = (np.abs(f32(c)) + 0.1).astype(np.float32) if weights else None
    st = t(scores, True)
    kw = {"reduction": reduction}
    if ignore is not None:
        kw["ignore_index"] = ignore
    wt = t(w) if weights else None
    loss = F.cross_entropy(st, torch.from_numpy(labels), weight=wt, **kw)
    attrs = {"reduction": reduction} if reduction != "mean" else {}
    if ignore is not None:
        attrs["ignore_index"] = ignore
    lp = F.log_softmax(st, dim=1)
    case(name, "SoftmaxCrossEntropyLoss", [scores, labels, w], [np_(loss), np_(lp)] if log_prob else [np_(loss)], attrs)
    dloss = f32(*loss.shape)
    (ds,) = grads(loss, [st], dloss)
    case(name.replace("sce_", "sce_grad_"), "SoftmaxCrossEntropyLossGrad", [dloss, scores, labels, w], [ds], attrs, DSC)
    # NegativeLogLikelihoodLoss on the same log-probabilities.
    logp = np_(lp).astype(np.float32)
    lt = t(logp, True)
    nll = F.nll_loss(lt, torch.from_numpy(labels), weight=wt, **kw)
    nname = name.replace("sce_", "nll_")
    case(nname, "NegativeLogLikelihoodLoss", [logp, labels, w], [np_(nll)], attrs)
    (dl,) = grads(nll, [lt], dloss)
    case(nname.replace("nll_", "nll_grad_"), "NegativeLogLikelihoodLossGrad", [dloss, logp, labels, w], [dl], attrs, DSC)


loss_case("sce_mean", (4, 5), "mean")
loss_case("sce_sum_weights", (4, 5), "sum", weights=True)
loss_case("sce_none_ignore_logprob", (5, 4), "none", ignore=1, log_prob=True, ignore_at=(0, 3))
loss_case("sce_mean_weights_ignore_neg", (6, 3), "mean", weights=True, ignore=-1, ignore_at=(2,))
loss_case("sce_nd_mean_weights_ignore", (2, 3, 4), "mean", weights=True, ignore=2, ignore_at=((0, 1), (1, 3)))
loss_case("sce_nd_none", (2, 3, 2, 2), "none", log_prob=True)
loss_case("sce_nd_sum_ignore", (3, 4, 3), "sum", ignore=0, ignore_at=((1, 1),))

# ---------------------------------------------------------------- GatherGrad: torch indexing's backward
for name, dshape, idx, axis in [("gather_grad_axis0", (4, 3), np.array([[0, 2, -1], [2, 2, 1]]), 0),
                                ("gather_grad_axis1", (2, 5, 3), np.array([4, -5, 1, 4]), 1),
                                ("gather_grad_last_scalar_index", (2, 3, 4), np.array(-2), -1)]:
    data = t(f32(*dshape), True)
    index = (slice(None),) * (axis % len(dshape)) + (torch.from_numpy(idx.astype(np.int64)),)
    y = data[index]
    dy = f32(*y.shape)
    (dd,) = grads(y, [data], dy)
    case(name, "GatherGrad", [dy, idx.astype(np.int64)], [dd], {"axis": axis}, DSC)

# ---------------------------------------------------------------- SliceGrad: numpy basic slicing
I64_MAX, I64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min
for name, shape, starts, ends, axes, steps in [
        ("slice_grad_basic", (4, 5), [1, 0], [3, 4], None, None),
        ("slice_grad_neg_axes_steps", (4, 5, 6), [-1, 1], [I64_MIN, I64_MAX], [-1, 0], [-2, 2]),
        ("slice_grad_clamped", (3, 6), [-10, 2], [10, -1], [0, 1], [1, 3]),
        ("slice_grad_reverse", (5,), [3], [-7], [0], [-1])]:
    x = np.zeros(shape)
    sl = [slice(None)] * len(shape)
    for k, a in enumerate(axes if axes is not None else range(len(starts))):
        sl[a] = slice(int(starts[k]), int(ends[k]), int(steps[k]) if steps else 1)
    dy = f32(*x[tuple(sl)].shape)
    dx = np.zeros(shape)
    dx[tuple(sl)] = dy
    ins = [dy, np.array(starts, np.int64), np.array(ends, np.int64),
           None if axes is None else np.array(axes, np.int64), None if steps is None else np.array(steps, np.int64)]
    case(name, "SliceGrad", ins, [dx], {}, DSC)

# ---------------------------------------------------------------- AveragePool dilations (opset 19)
# torch's avg_pool2d has no dilation; F.unfold gathers the same dilated, zero-padded windows, and
# excluding the pads divides by the taps that land in the image (an unfolded tensor of ones).
def avgpool_dilated_case(name, x, k, s, p, dil, cip):
    xt = t(x, True)
    n, c, h, w = x.shape
    kw = dict(kernel_size=k, dilation=dil, padding=p, stride=s)
    oh = (h + 2 * p[0] - dil[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - dil[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = F.unfold(xt.reshape(n * c, 1, h, w), **kw)
    taps = F.unfold(torch.ones(1, 1, h, w, dtype=torch.float64), **kw).sum(1)
    y = (cols.mean(1) if cip else cols.sum(1) / taps).reshape(n, c, oh, ow)
    attrs = pool_attrs(k, s, [p[0], p[1], p[0], p[1]], dil, 0, cip)
    case(name, "AveragePool", [x], [np_(y)], attrs)
    dy = f32(*y.shape)
    (dx,) = grads(y, [xt], dy)
    case(name.replace("avgpool_", "avgpool_grad_"), "AveragePoolGrad", [dy], [dx], attrs, DSC)


avgpool_dilated_case("avgpool_dil_exclude_pad", f32(1, 2, 6, 6), (2, 2), (1, 1), (1, 1), (2, 2), 0)
avgpool_dilated_case("avgpool_dil_include_pad_rect", f32(2, 1, 7, 5), (3, 2), (2, 1), (1, 0), (2, 3), 1)

# ---------------------------------------------------------------- activation gradients of current exports
# (dY, X) -> dX; x keeps the kinks of HardSwish (+-3), HardSigmoid and Elu/Selu (0) where torch decides them.
x = np.concatenate([f32(20, scale=2.5), np.array([-3.0, 3.0, 0.0, -0.5], np.float32)]).reshape(4, 6)
dy = f32(4, 6)
for op, fn, attrs in [("GeluGrad", F.gelu, {"approximate": "none"}),
                      ("GeluGrad", lambda v: F.gelu(v, approximate="tanh"), {"approximate": "tanh"}),
                      ("MishGrad", F.mish, {}),
                      ("HardSigmoidGrad", F.hardsigmoid,
                       {"alpha": float(np.float32(1 / 6)), "beta": 0.5}),
                      ("SoftplusGrad", F.softplus, {}), ("EluGrad", lambda v: F.elu(v, alpha=0.5), {"alpha": 0.5}),
                      ("SeluGrad", F.selu, {}), ("SoftsignGrad", F.softsign, {})]:
    xt = t(x, True)
    (dx,) = grads(fn(xt), [xt], dy)
    name = op.lower() + ("_" + attrs["approximate"] if "approximate" in attrs else "")
    case(name, op, [dy, x], [dx], attrs, DSC)
# HardSwish at exactly +-3: current torch (2.x) passes 0 and 1, torch 1.13 -0.5 and 1.5; numpy spells out 2.x.
x64 = x.astype(np.float64)
case("hardswishgrad", "HardSwishGrad", [dy, x], [dy * np.where(x64 <= -3, 0.0, np.where(x64 < 3, x64 / 3 + 0.5, 1.0))],
     {}, DSC)
# ONNX's default HardSigmoid (alpha 0.2, beta 0.5): slope alpha strictly inside (0, 1).
v = 0.2 * x.astype(np.float64) + 0.5
case("hardsigmoidgrad_onnx_default", "HardSigmoidGrad", [dy, x], [dy * np.where((v > 0) & (v < 1), 0.2, 0.0)],
     {"alpha": 0.2, "beta": 0.5}, DSC)

# ---------------------------------------------------------------- 1-D Conv and pools (NCL: Whisper, wav2vec 2.0)
def conv1d_case(name, xs, ws, bias, pads=(0, 0), stride=1, dil=1, group=1, grad_outputs=(True, True, True)):
    x, w = f32(*xs), f32(*ws)
    b = f32(ws[0]) if bias else None
    xt, wt = t(x, True), t(w, True)
    bt = t(b, True) if bias else None
    y = F.conv1d(F.pad(xt, (pads[0], pads[1])), wt, bt, stride=stride, dilation=dil, groups=group)
    attrs = {"strides": [stride], "dilations": [dil], "group": group, "pads": list(pads)}
    case(name, "Conv", [x, w, b], [np_(y)], attrs, atol=1e-5)
    dy = f32(*y.shape)
    gx, gw = grads(y, [xt, wt], dy)
    gb = dy.astype(np.float64).sum(axis=(0, 2))
    outs = [g if keep else None for g, keep in zip([gx, gw, gb], grad_outputs)]
    case(name.replace("conv1d_", "conv1d_grad_"), "ConvGrad", [dy, x, w], outs, attrs, DSC, atol=1e-5)


conv1d_case("conv1d_basic", (2, 3, 9), (4, 3, 3), True, pads=(1, 1))
conv1d_case("conv1d_stride_dil_asym", (1, 2, 12), (3, 2, 3), False, pads=(2, 0), stride=2, dil=2)
conv1d_case("conv1d_group", (2, 4, 10), (4, 2, 5), True, stride=5, group=2, grad_outputs=(False, True, True))

x = f32(2, 3, 9)
xt = t(x, True)
y, idx = F.max_pool1d(xt, 3, 2, 1, return_indices=True)
a = {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}
case("maxpool1d", "MaxPool", [x], [np_(y), idx.numpy() + (np.arange(6).reshape(2, 3, 1) * 9)], a)
dy = f32(*y.shape)
case("maxpool1d_grad", "MaxPoolGrad", [dy, x], [grads(y, [xt], dy)[0]], a, DSC)
y = F.avg_pool1d(xt, 2, 2)
a = {"kernel_shape": [2], "strides": [2], "pads": [0, 0]}
case("avgpool1d", "AveragePool", [x], [np_(y)], a)
dy = f32(*y.shape)
case("avgpool1d_grad", "AveragePoolGrad", [dy], [grads(y, [xt], dy)[0]], a, DSC)

# CeluGrad (nn.CELU): own generator, so the cases above keep their values; x keeps the kink at 0.
rng_celu = np.random.default_rng(41)
x = np.concatenate([rng_celu.uniform(-5, 5, size=20), [0.0, -0.0, 1e-3, -1e-3]]).astype(np.float32).reshape(4, 6)
dy = rng_celu.uniform(-1, 1, size=(4, 6)).astype(np.float32)
for name, alpha in [("celugrad", 1.0), ("celugrad_alpha", 0.7)]:
    xt = t(x, True)
    (dx,) = grads(F.celu(xt, alpha=alpha), [xt], dy)
    case(name, "CeluGrad", [dy, x], [dx], {"alpha": alpha}, DSC)

# ceil_mode windows longer than the padded input (by less than a stride): one window over the whole
# axis, as HF EfficientNet's AvgPool2d(hidden_dim, ceil_mode=True) over its 1x1 map. Own generator, so
# the cases above keep their values.
rng = np.random.default_rng(43)
avgpool_case("avgpool_ceil_window_past_input", f32(2, 3, 3, 2), (4, 5), (4, 5), (0, 0), ceil=True, cip=1)
avgpool_case("avgpool_ceil_window_past_input_exclude", f32(2, 3, 3, 2), (4, 5), (4, 5), (0, 0), ceil=True, cip=0)
# H: 2 + 1 + 1 < 5 (one window); W: 3 + 2 + 2 - 5 = 2 -> two windows.
avgpool_case("avgpool_ceil_window_past_padded", f32(1, 2, 2, 3), (5, 5), (3, 3), (1, 2), ceil=True, cip=1)
maxpool_case("maxpool_ceil_window_past_input", f32(2, 2, 3, 2), (4, 4), (4, 4), (0, 0), ceil=True, indices=True)

json.dump({"cases": cases}, sys.stdout, indent=None, separators=(",", ":"))
sys.stdout.write("\n")
