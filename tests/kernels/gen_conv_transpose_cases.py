#!/opt/torchenv/bin/python
"""Generates data/conv_transpose_cases.json for conv_transpose_test: ConvTranspose and ConvTransposeGrad cases.

Run with current torch and onnx (/opt/torchenv) from this directory:
    /opt/torchenv/bin/python gen_conv_transpose_cases.py > data/conv_transpose_cases.json
References are computed in float64 from float32 inputs: forward values from F.conv_transpose1d/2d/3d and
gradients from torch.autograd for what torch produces (strides, pads, output_padding, dilations, groups);
ONNX's reference implementation (onnx.reference, group 1: its grouped path is wrong) for what torch does not
write (auto_pad SAME_UPPER/SAME_LOWER/VALID, output_shape with SAME_*), whose gradients come from torch run on
the pads the spec derives; output_shape with auto_pad NOTSET, where the reference pads 0 (against the spec's
text: "If output_shape is specified pads values are ignored"), has the spec's formula and torch alone. The case format is nn_cases.json's (gen_nn_cases.py).
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from onnx.reference.ops.op_conv_transpose import ConvTranspose

DSC = "ai.dscompile"
rng = np.random.default_rng(2026)
cases = []


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def T(a):
    if a is None:
        return None
    a = np.asarray(a)
    return {"dtype": "float", "dims": list(a.shape), "values": [float(f"{v:.9g}") for v in a.astype(np.float64).ravel()]}


def attr(v):
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, str):
        return {"string": v}
    return {"ints": [int(x) for x in v]}


def case(name, op, inputs, outputs, attrs, domain=""):
    cases.append({"name": name, "op": op, "domain": domain, "attrs": {k: attr(v) for k, v in attrs.items()},
                  "inputs": [T(a) for a in inputs], "outputs": [T(a) for a in outputs], "rtol": 1e-5, "atol": 1e-5})


def t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def torch_conv_t(x, w, b, pads, strides, dil, group, out_pad):
    """ConvTranspose with ONNX pads [begin..., end...] through torch: symmetric padding, cropped for the rest."""
    r = x.dim() - 2
    sym = [min(pads[i], pads[i + r]) for i in range(r)]
    fn = [F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d][r - 1]
    # Extra end padding beyond the symmetric part crops the end; extra begin padding crops the beginning.
    y = fn(x, w, b, stride=strides, padding=sym, output_padding=out_pad, dilation=dil, groups=group)
    for i in range(r):
        lo, hi = pads[i] - sym[i], pads[i + r] - sym[i]
        y = y.narrow(2 + i, lo, y.shape[2 + i] - lo - hi)
    return y


def conv_t_case(name, xs, ws, group=1, bias=True, pads=None, strides=None, dil=None, out_pad=None, onnx_attrs=None,
                grad_outputs=(True, True, True)):
    """onnx_attrs: auto_pad/output_shape attributes for ONNX's reference; torch then runs on the pads it implies."""
    r = len(xs) - 2
    strides, dil = strides or [1] * r, dil or [1] * r
    out_pad = out_pad or [0] * r
    x, w = f32(*xs), f32(*ws)
    b = f32(ws[1] * group) if bias else None
    attrs = {"strides": strides, "dilations": dil, "group": group}
    if any(out_pad):
        attrs["output_padding"] = out_pad
    if onnx_attrs:
        attrs.update(onnx_attrs)
        k = list(ws[2:])
        full = [strides[i] * (xs[i + 2] - 1) + out_pad[i] + (k[i] - 1) * dil[i] + 1 for i in range(r)]
        want = onnx_attrs.get("output_shape") or ([xs[i + 2] * strides[i] for i in range(r)]
                                                  if onnx_attrs.get("auto_pad", "NOTSET").startswith("SAME") else None)
        if want is None:  # VALID
            pads = [0] * (2 * r)
        else:
            total = [full[i] - want[i] for i in range(r)]
            upper = onnx_attrs.get("auto_pad") == "SAME_UPPER"
            begin = [tt // 2 if upper else tt - tt // 2 for tt in total]
            pads = begin + [total[i] - begin[i] for i in range(r)]
        # ONNX's reference takes output_shape's pads only with SAME_*: with NOTSET it pads 0 and fails,
        # against the spec's text; there the spec's formula above and torch are the reference.
        if onnx_attrs.get("auto_pad", "NOTSET") != "NOTSET":
            ref = ConvTranspose.eval(x.astype(np.float64), w.astype(np.float64),
                                     None if b is None else b.astype(np.float64), **attrs)
        else:
            ref = None
    else:
        pads = pads or [0] * (2 * r)
        attrs["pads"] = pads
        ref = None
    xt, wt = t(x), t(w)
    bt = t(b) if bias else None
    y = torch_conv_t(xt, wt, bt, pads, strides, dil, group, out_pad)
    yv = y.detach().numpy()
    if ref is not None:
        assert ref.shape == yv.shape, (name, ref.shape, yv.shape)
        assert np.allclose(ref, yv, atol=1e-9), name  # the spec's pads, as torch computes them
    case(name, "ConvTranspose", [x, w, b], [yv], attrs)
    dy = f32(*yv.shape)
    gx, gw = torch.autograd.grad(y, [xt, wt], torch.tensor(dy, dtype=torch.float64))
    gb = dy.astype(np.float64).sum(axis=tuple(i for i in range(dy.ndim) if i != 1))
    outs = [g if keep else None for g, keep in zip([gx.numpy(), gw.numpy(), gb], grad_outputs)]
    case(name + "_grad", "ConvTransposeGrad", [dy, x, w], outs, attrs, DSC)


# torch's attribute combinations (what nn.ConvTranspose1d/2d/3d export).
conv_t_case("ct_basic", (1, 2, 4, 4), (2, 3, 3, 3))
conv_t_case("ct_stride2_pad", (2, 3, 5, 4), (3, 2, 3, 3), pads=[1, 1, 1, 1], strides=[2, 2])
conv_t_case("ct_stride2_outpad", (2, 4, 3, 5), (4, 3, 4, 4), pads=[1, 1, 1, 1], strides=[2, 2], out_pad=[1, 1])
conv_t_case("ct_stride3_asym_outpad", (1, 2, 4, 3), (2, 2, 3, 2), bias=False, pads=[0, 1, 2, 0], strides=[3, 2],
            out_pad=[2, 1], grad_outputs=(True, True, False))
conv_t_case("ct_dilation", (2, 2, 5, 5), (2, 3, 3, 2), pads=[2, 1, 2, 1], dil=[2, 3])
conv_t_case("ct_outpad_below_dilation", (1, 2, 4, 4), (2, 2, 2, 2), strides=[1, 1], dil=[3, 2], out_pad=[2, 1])
conv_t_case("ct_groups", (2, 6, 4, 3), (6, 2, 3, 3), group=3, pads=[1, 0, 1, 0], strides=[2, 1], out_pad=[1, 0])
conv_t_case("ct_depthwise", (2, 4, 5, 5), (4, 1, 4, 4), group=4, pads=[1, 1, 1, 1], strides=[2, 2],
            grad_outputs=(False, True, True))
conv_t_case("ct_odd_1x1_stride", (3, 5, 3, 2), (5, 2, 1, 1), strides=[2, 3], grad_outputs=(True, False, False))
conv_t_case("ct1d_basic", (2, 3, 7), (3, 2, 3), pads=[1, 1])
conv_t_case("ct1d_stride_outpad_dil", (1, 4, 6), (4, 3, 4), group=2, pads=[2, 1], strides=[3], dil=[2], out_pad=[1])
conv_t_case("ct1d_nobias", (2, 2, 9), (2, 1, 5), bias=False, strides=[2], pads=[2, 2], out_pad=[1])
# What torch does not write: ONNX's reference (group 1) on auto_pad and output_shape.
conv_t_case("ct_same_upper", (1, 2, 3, 4), (2, 3, 4, 3), strides=[2, 2], onnx_attrs={"auto_pad": "SAME_UPPER"})
conv_t_case("ct_same_lower", (2, 2, 3, 3), (2, 2, 3, 4), strides=[2, 3], onnx_attrs={"auto_pad": "SAME_LOWER"})
conv_t_case("ct_valid", (1, 3, 3, 4), (3, 2, 2, 3), strides=[2, 1], onnx_attrs={"auto_pad": "VALID"})
conv_t_case("ct_output_shape", (1, 2, 4, 3), (2, 2, 3, 3), strides=[2, 2], onnx_attrs={"output_shape": [8, 6]})
conv_t_case("ct_output_shape_same_lower", (1, 2, 3, 3), (2, 1, 3, 3), strides=[2, 2],
            onnx_attrs={"auto_pad": "SAME_LOWER", "output_shape": [6, 5]})
conv_t_case("ct_output_shape_outpad", (2, 1, 3, 3), (1, 2, 4, 3), strides=[3, 2], out_pad=[1, 1],
            onnx_attrs={"output_shape": [9, 6]})
conv_t_case("ct1d_output_shape_same_upper", (1, 2, 5), (2, 2, 4), strides=[2],
            onnx_attrs={"auto_pad": "SAME_UPPER", "output_shape": [9]})

# 3-D (video and volumetric decoders), appended so the cases above keep their random inputs.
conv_t_case("ct3d_stride_outpad", (1, 2, 3, 3, 4), (2, 3, 3, 2, 3), pads=[1, 0, 1, 1, 0, 1], strides=[2, 1, 2],
            out_pad=[1, 0, 1])
conv_t_case("ct3d_groups_dil", (2, 4, 3, 4, 3), (4, 1, 2, 3, 2), group=2, pads=[0, 1, 0, 0, 1, 1], dil=[1, 2, 2],
            grad_outputs=(True, True, False))
conv_t_case("ct3d_same_upper", (1, 2, 2, 3, 3), (2, 2, 3, 3, 2), strides=[2, 2, 1], onnx_attrs={"auto_pad": "SAME_UPPER"})

json.dump({"generator": "gen_conv_transpose_cases.py", "torch": torch.__version__, "cases": cases}, sys.stdout)
sys.stdout.write("\n")
