# Writes data/resize_cases.json: Resize and ResizeGrad cases for tests/kernels/resize_test.cc.
# Run with current torch and onnx:  /opt/torchenv/bin/python tests/kernels/gen_resize_cases.py
#
# "torch" cases: F.interpolate in float32 (forward) and autograd (dX for a random dY), written as
# the ONNX Resize attributes that compute the same thing. "onnx" cases: attribute combinations
# torch does not produce, from onnx.reference (the spec's implementation); their dX is the exact
# adjoint J^T dY, J built column by column from the reference on unit inputs.
import json
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper
from onnx.reference import ReferenceEvaluator

rng = np.random.default_rng(20261130)
CASES = []


def vals(a):
    return [float(str(v)) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def add(name, source, x, attrs, scales, sizes, y, dy, dx, axes=None, rtol=1e-5, atol=1e-5):
    CASES.append({"name": name, "source": source, "x_dims": list(x.shape), "x": vals(x), "attrs": attrs,
                  "axes": axes, "scales": scales, "sizes": sizes, "y_dims": list(y.shape), "y": vals(y),
                  "dy": vals(dy), "dx": vals(dx), "rtol": rtol, "atol": atol})


# torch mode -> ONNX attributes computing the same interpolation.
def torch_attrs(mode, align_corners):
    if mode == "nearest":
        return {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    if mode == "nearest-exact":
        return {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"}
    ctm = "align_corners" if align_corners else "half_pixel"
    if mode == "bicubic":
        return {"mode": "cubic", "coordinate_transformation_mode": ctm, "cubic_coeff_a": -0.75}
    return {"mode": "linear", "coordinate_transformation_mode": ctm}


def torch_case(name, shape, mode, scale=None, size=None, align_corners=None, ctm=None):
    x = rng.uniform(-2, 2, size=shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    spatial = len(shape) - 2
    kw = {"mode": mode}
    if align_corners is not None:
        kw["align_corners"] = align_corners
    if scale is not None:
        kw["scale_factor"] = scale
        kw["recompute_scale_factor"] = False
    else:
        kw["size"] = size
    y = F.interpolate(xt, **kw)
    dy = rng.uniform(-1, 1, size=tuple(y.shape)).astype(np.float32)
    (dx,) = torch.autograd.grad(y, xt, torch.from_numpy(dy))
    attrs = torch_attrs(mode, bool(align_corners))
    if ctm:
        attrs["coordinate_transformation_mode"] = ctm
    scales = sizes = None
    if scale is not None:
        s = list(scale) if isinstance(scale, (tuple, list)) else [scale] * spatial
        scales = [1.0, 1.0] + [float(v) for v in s]
    else:
        sizes = list(shape[:2]) + (list(size) if isinstance(size, (tuple, list)) else [size] * spatial)
    add(name, "torch", x, attrs, scales, sizes, y.detach().numpy(), dy, dx.numpy())


for mode in ["nearest", "nearest-exact"]:
    torch_case(f"{mode}_2d_x2", (2, 3, 4, 5), mode, scale=2.0)
    torch_case(f"{mode}_2d_x1.5", (1, 2, 5, 7), mode, scale=1.5)
    torch_case(f"{mode}_2d_x3", (1, 2, 3, 4), mode, scale=3.0)
    torch_case(f"{mode}_2d_x0.5", (1, 2, 8, 6), mode, scale=0.5)
    torch_case(f"{mode}_2d_size", (1, 2, 5, 7), mode, size=(8, 11))
    torch_case(f"{mode}_2d_size_down", (1, 2, 9, 7), mode, size=(4, 3))
    torch_case(f"{mode}_1d_x2", (2, 3, 7), mode, scale=2.0)
    torch_case(f"{mode}_3d_x2", (1, 2, 3, 2, 4), mode, scale=2.0)
for ac in [False, True]:
    tag = "ac" if ac else "hp"
    torch_case(f"bilinear_{tag}_x2", (2, 3, 4, 5), "bilinear", scale=2.0, align_corners=ac)
    torch_case(f"bilinear_{tag}_x3", (1, 2, 3, 4), "bilinear", scale=3.0, align_corners=ac)
    torch_case(f"bilinear_{tag}_x0.5", (1, 2, 8, 6), "bilinear", scale=0.5, align_corners=ac)
    torch_case(f"bilinear_{tag}_size", (1, 2, 5, 7), "bilinear", size=(8, 11), align_corners=ac)
    torch_case(f"bilinear_{tag}_size_down", (1, 2, 9, 7), "bilinear", size=(4, 3), align_corners=ac)
    torch_case(f"linear_{tag}_1d_size", (2, 3, 7), "linear", size=12, align_corners=ac)
    torch_case(f"trilinear_{tag}_x2", (1, 2, 3, 2, 4), "trilinear", scale=2.0, align_corners=ac)
    torch_case(f"trilinear_{tag}_size", (1, 1, 3, 4, 5), "trilinear", size=(5, 3, 7), align_corners=ac)
    torch_case(f"bicubic_{tag}_x2", (1, 2, 4, 5), "bicubic", scale=2.0, align_corners=ac)
    torch_case(f"bicubic_{tag}_x0.5", (1, 2, 8, 6), "bicubic", scale=0.5, align_corners=ac)
    torch_case(f"bicubic_{tag}_size", (1, 2, 5, 7), "bicubic", size=(9, 4), align_corners=ac)
# A non-integer in*scale: torch uses the given scale (1/1.5) as half_pixel does.
torch_case("bilinear_hp_x1.5", (1, 2, 5, 7), "bilinear", scale=1.5, align_corners=False)
torch_case("bicubic_hp_x1.5", (1, 2, 5, 7), "bicubic", scale=1.5, align_corners=False)
# What the legacy exporter writes for align_corners=False linear: pytorch_half_pixel (outputs > 1).
torch_case("bilinear_php_size", (1, 2, 5, 7), "bilinear", size=(8, 3), align_corners=False, ctm="pytorch_half_pixel")


def reference(x, attrs, scales, sizes, axes):
    names = ["X", "roi", "scales", "sizes"]
    kw = dict(attrs)
    if axes is not None:
        kw["axes"] = axes
    node = helper.make_node("Resize", ["X", "", "scales" if scales else "", "sizes" if sizes else ""], ["Y"], **kw)
    feeds = {"X": x}
    if scales:
        feeds["scales"] = np.asarray(scales, dtype=np.float32)
    if sizes:
        feeds["sizes"] = np.asarray(sizes, dtype=np.int64)
    inputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT if n != "sizes" else onnx.TensorProto.INT64, None)
              for n in names if n in feeds]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ReferenceEvaluator(model).run(None, feeds)[0]


def onnx_case(name, shape, attrs, scales=None, sizes=None, axes=None):
    x = rng.uniform(-2, 2, size=shape).astype(np.float32)
    y = reference(x.astype(np.float64).astype(np.float32), attrs, scales, sizes, axes)
    dy = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    # dX = J^T dY with J's columns the reference's response to unit inputs (Resize is linear in X).
    dx = np.zeros(x.size, dtype=np.float64)
    for j in range(x.size):
        e = np.zeros(x.size, dtype=np.float32)
        e[j] = 1
        dx[j] = float(np.dot(reference(e.reshape(shape), attrs, scales, sizes, axes).reshape(-1).astype(np.float64),
                             dy.reshape(-1).astype(np.float64)))
    add(name, "onnx", x, attrs, scales, sizes, y, dy, dx.reshape(shape).astype(np.float32), axes=axes)


for nm in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]:
    for ctm in ["half_pixel", "asymmetric", "align_corners"]:
        onnx_case(f"nearest_{nm}_{ctm}_x1.5", (1, 1, 4, 5),
                  {"mode": "nearest", "coordinate_transformation_mode": ctm, "nearest_mode": nm}, scales=[1, 1, 1.5, 1.5])
    onnx_case(f"nearest_{nm}_size_down", (1, 2, 8, 5),
              {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": nm}, sizes=[1, 2, 4, 3])
onnx_case("linear_asymmetric_x2.5", (1, 2, 4, 3), {"mode": "linear", "coordinate_transformation_mode": "asymmetric"},
          scales=[1, 1, 2.5, 2.5])
for mode in ["linear", "cubic", "nearest"]:
    onnx_case(f"{mode}_half_pixel_symmetric_x1.7", (1, 2, 4, 5),
              {"mode": mode, "coordinate_transformation_mode": "half_pixel_symmetric"}, scales=[1, 1, 1.7, 0.7])
onnx_case("cubic_exclude_outside", (1, 2, 4, 5), {"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5},
          scales=[1, 1, 2, 1.5])
onnx_case("cubic_exclude_outside_down", (1, 1, 9, 7), {"mode": "cubic", "exclude_outside": 1}, sizes=[1, 1, 4, 3])
onnx_case("cubic_align_corners_x1.5", (1, 1, 5, 4), {"mode": "cubic", "coordinate_transformation_mode": "align_corners"},
          scales=[1, 1, 1.5, 1.5])
onnx_case("linear_align_corners_x1.5", (1, 1, 5, 4),
          {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, scales=[1, 1, 1.5, 1.5])
onnx_case("linear_pytorch_half_pixel_to1", (1, 2, 1, 6), {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
          sizes=[1, 2, 1, 3])
onnx_case("linear_axes_last", (2, 3, 5), {"mode": "linear"}, scales=[2.0], axes=[2])
onnx_case("cubic_axes_hw", (2, 2, 3, 4), {"mode": "cubic"}, sizes=[5, 6], axes=[2, 3])
onnx_case("linear_not_larger", (1, 1, 4, 6), {"mode": "linear", "keep_aspect_ratio_policy": "not_larger"},
          sizes=[7, 7], axes=[2, 3])
onnx_case("nearest_not_smaller", (1, 1, 4, 6), {"mode": "nearest", "keep_aspect_ratio_policy": "not_smaller"},
          sizes=[7, 7], axes=[2, 3])
onnx_case("linear_channels_too", (2, 3, 4), {"mode": "linear"}, scales=[1.0, 2.0, 0.5])
onnx_case("linear_rank1", (6,), {"mode": "linear"}, scales=[1.5])

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "resize_cases.json")
with open(out, "w") as f:
    json.dump({"generator": f"gen_resize_cases.py (torch {torch.__version__}, onnx {onnx.__version__})",
               "cases": CASES}, f, separators=(",", ":"))
print(len(CASES), "cases ->", out, os.path.getsize(out), "bytes")
