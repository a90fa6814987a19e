#!/opt/torchenv/bin/python
"""Writes data/grid_sample_cases.json for grid_sample_test: GridSample and GridSampleGrad cases with
PyTorch's (torch 2.15) F.grid_sample values and autograd gradients for X and Grid, computed in float64
from float32 data, over every mode, padding mode and align_corners, under opset 16's and opset 20's
mode names; onnx.reference's GridSample checks the forward of each but bicubic with border or
reflection padding, where it pads the taps otherwise than PyTorch (the difference is printed).

    /opt/torchenv/bin/python tests/kernels/gen_grid_sample_cases.py
"""
import json
import os

import numpy as np
import onnx
import onnx.helper as oh
import onnx.reference
import torch
import torch.nn.functional as F

rng = np.random.default_rng(16)
CASES = []
OPSET20 = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}


def onnx_forward(x, g, mode, padding, align, opset):
    node = oh.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding, align_corners=align)
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", 1, None), oh.make_tensor_value_info("g", 1, None)],
                          [oh.make_tensor_value_info("y", 1, None)])
    m = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    return onnx.reference.ReferenceEvaluator(m).run(None, {"x": x, "g": g})[0]


def add(name, x, g, mode, padding, align, opset):
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    gt = torch.tensor(g.astype(np.float64), requires_grad=True)
    y = F.grid_sample(xt, gt, mode=mode, padding_mode=padding, align_corners=bool(align))
    dy = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    dx, dg = torch.autograd.grad(y, [xt, gt], torch.from_numpy(dy.astype(np.float64)))
    onnx_mode = OPSET20[mode] if opset >= 20 else mode
    ref = onnx_forward(x, g, OPSET20[mode], padding, align, 20)  # onnx.reference knows opset 20's names only
    agree = bool(np.allclose(ref, y.detach().numpy(), rtol=1e-5, atol=1e-5))
    # onnx.reference pads bicubic's taps otherwise than PyTorch under border/reflection; dscompile
    # follows PyTorch, whose trajectory it must match.
    assert agree or (mode == "bicubic" and padding != "zeros"), (name, np.abs(ref - y.detach().numpy()).max())
    if not agree:
        print("%s: onnx.reference differs from torch by %.3g (torch kept)" % (name, np.abs(ref - y.detach().numpy()).max()))
    f = lambda a: [float(str(v)) for v in np.asarray(a, np.float32).reshape(-1)]  # shortest round-trip text
    CASES.append({"name": name, "opset": opset,
                  "attrs": {"mode": onnx_mode, "padding_mode": padding, "align_corners": align},
                  "x_dims": list(x.shape), "grid_dims": list(g.shape), "x": f(x), "grid": f(g), "dy": f(dy),
                  "y": f(y.detach().numpy()), "dx": f(dx.numpy()), "dgrid": f(dg.numpy())})


for mode in ["bilinear", "nearest", "bicubic"]:
    for padding in ["zeros", "border", "reflection"]:
        for align in [0, 1]:
            x = rng.uniform(-1, 1, size=(2, 2, 4, 5)).astype(np.float32)
            g = rng.uniform(-1.3, 1.3, size=(2, 3, 4, 2)).astype(np.float32)  # some points outside
            for opset in [16, 20]:
                add("%s_%s_align%d_opset%d" % (mode, padding, align, opset), x, g, mode, padding, align, opset)
# affine_grid's identity-ish grid (the spatial transformer's start), 1x1 planes, far-outside points
th = torch.tensor([[[1.0, 0.1, 0.05], [-0.1, 0.9, 0.0]]])
x = rng.uniform(-1, 1, size=(1, 2, 8, 8)).astype(np.float32)
g = F.affine_grid(th, [1, 2, 6, 5], align_corners=False).numpy().astype(np.float32)
add("affine_grid_bilinear", x, g, "bilinear", "zeros", 0, 20)
x = rng.uniform(-1, 1, size=(2, 2, 1, 1)).astype(np.float32)
g = rng.uniform(-3, 3, size=(2, 3, 2, 2)).astype(np.float32)
for mode in ["bilinear", "bicubic"]:
    for padding in ["zeros", "reflection"]:
        add("single_pixel_%s_%s" % (mode, padding), x, g, mode, padding, 0, 16)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "grid_sample_cases.json")
with open(out, "w") as f:
    json.dump({"generator": "tests/kernels/gen_grid_sample_cases.py (torch %s)" % torch.__version__, "cases": CASES},
              f, separators=(",", ":"))
    f.write("\n")
print("wrote %d cases to %s (%d bytes)" % (len(CASES), out, os.path.getsize(out)))
