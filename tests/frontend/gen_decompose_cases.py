#!/opt/torchenv/bin/python
"""Writes data/decompose_cases.json for decompose_ops_test: PRelu, DepthToSpace, SpaceToDepth and Col2Im
models with PyTorch's (torch 2.15) forward values and gradients, which dscompile computes through
its import-time decompositions (frontend/decompose_ops.h).

    /opt/torchenv/bin/python tests/frontend/gen_decompose_cases.py

Each case: an ONNX text model whose float initializers are the inputs, a weight R per output (the
test differentiates loss = sum(y * R)), and the expected output and gradient of every initializer.
References: torch.prelu and F.pixel_shuffle / F.pixel_unshuffle with autograd, in float64 from
float32 data; DepthToSpace DCR and SpaceToDepth (no torch op) as the ONNX spec's reshape/transpose in
torch, checked here against onnx.reference; Col2Im as F.fold (2-D; a 1-D Col2Im is F.fold over a
(1, W) image), checked against onnx.reference as well.
"""
import json
import os

import numpy as np
import onnx
import onnx.reference
import torch
import torch.nn.functional as F

rng = np.random.default_rng(7)
CASES = []


def text_tensor(name, a):
    vals = ", ".join(repr(float(v)) for v in a.reshape(-1))
    return "float[%s] %s = {%s}" % (",".join(str(d) for d in a.shape), name, vals)


def text_ints(name, v):
    return "int64[%d] %s = {%s}" % (len(v), name, ", ".join(str(x) for x in v))


def add(name, opset, node, inits, fn, out_shape, check_onnx=False, consts=None):
    """inits: {name: float32 array}; fn(*torch tensors) -> y; consts: {name: int list}, int64 initializers."""
    ts = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in inits.items()}
    y = fn(*ts.values())
    r = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    (y * torch.from_numpy(r.astype(np.float64))).sum().backward()
    text = ("<ir_version: %d, opset_import: [\"\" : %d]>\ng () => (float[%s] y) <%s> {\n  y = %s\n}"
            % (10 if opset >= 20 else 8, opset, ",".join(str(d) for d in out_shape),
               ", ".join([text_tensor(k, v) for k, v in inits.items()] + [text_ints(k, v) for k, v in (consts or {}).items()]),
               node))
    if check_onnx:
        m = onnx.parser.parse_model(text)
        (ref,) = onnx.reference.ReferenceEvaluator(m).run(None, {})
        assert np.allclose(ref, y.detach().numpy(), rtol=1e-6, atol=1e-7), name
    CASES.append({"name": name, "model": text, "R": r.reshape(-1).tolist(),
                  "y": y.detach().numpy().astype(np.float32).reshape(-1).tolist(),
                  "grads": {k: t.grad.numpy().astype(np.float32).reshape(-1).tolist() for k, t in ts.items()}})


def with_zeros(a):
    a = a.copy()
    a.reshape(-1)[::5] = 0.0  # torch: dX = slope * dY and dSlope = 0 at x == 0
    return a


x = with_zeros(rng.uniform(-2, 2, size=(2, 3, 2, 2)).astype(np.float32))
s = rng.uniform(0.05, 0.5, size=(3, 1, 1)).astype(np.float32)
add("prelu_per_channel", 20, "PRelu(x, s)", {"x": x, "s": s},
    lambda x, s: torch.prelu(x, s.reshape(-1)), x.shape)
x = with_zeros(rng.uniform(-2, 2, size=(4, 5)).astype(np.float32))
add("prelu_single", 17, "PRelu(x, s)", {"x": x, "s": np.array([0.25], np.float32)},
    lambda x, s: torch.prelu(x, s), x.shape)
# nn.PReLU(5) on (N, 5): the exporter's slope (1, 5); torch.prelu reads the weight along dim 1.
x = with_zeros(rng.uniform(-2, 2, size=(3, 5)).astype(np.float32))
add("prelu_row_slope", 13, "PRelu(x, s)", {"x": x, "s": rng.uniform(-0.5, 0.5, size=(1, 5)).astype(np.float32)},
    lambda x, s: torch.prelu(x, s.reshape(-1)), x.shape)

x = rng.uniform(-1, 1, size=(2, 8, 2, 3)).astype(np.float32)
add("depth_to_space_crd", 20, 'DepthToSpace <blocksize = 2, mode = "CRD"> (x)', {"x": x},
    lambda x: F.pixel_shuffle(x, 2), (2, 2, 4, 6), check_onnx=True)


def dcr(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def s2d(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


x = rng.uniform(-1, 1, size=(1, 18, 2, 3)).astype(np.float32)
add("depth_to_space_dcr", 13, "DepthToSpace <blocksize = 3> (x)", {"x": x}, lambda x: dcr(x, 3), (1, 2, 6, 9),
    check_onnx=True)
x = rng.uniform(-1, 1, size=(2, 3, 4, 6)).astype(np.float32)
add("space_to_depth", 17, "SpaceToDepth <blocksize = 2> (x)", {"x": x}, lambda x: s2d(x, 2), (2, 12, 2, 3),
    check_onnx=True)
# nn.PixelUnshuffle is not SpaceToDepth (channel-major blocks): exporters write it as Reshape/Transpose.
assert not torch.equal(F.pixel_unshuffle(torch.from_numpy(x), 2), s2d(torch.from_numpy(x), 2))

def col2im(name, n, c, image, block, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), opset=20):
    """Col2Im over a 2-D image (pads: begin h, begin w, end h, end w; F.fold pads both ends alike)."""
    assert pads[:2] == pads[2:]
    k = int(np.prod(block))
    l = 1
    for i in range(2):
        l *= (image[i] + 2 * pads[i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
    x = rng.uniform(-1, 1, size=(n, c * k, l)).astype(np.float32)
    node = "Col2Im <strides = [%s], pads = [%s], dilations = [%s]> (x, image, block)" % (
        ", ".join(map(str, strides)), ", ".join(map(str, pads)), ", ".join(map(str, dilations)))
    add(name, opset, node, {"x": x},
        lambda x: F.fold(x, tuple(image), tuple(block), dilation=tuple(dilations), padding=tuple(pads[:2]), stride=tuple(strides)),
        (n, c) + tuple(image), check_onnx=True, consts={"image": list(image), "block": list(block)})


# VOLO's outlook attention: fold(3x3 blocks, stride 2, pad 1) onto 8x8 (every image row covered).
col2im("col2im_volo", 2, 3, (8, 8), (3, 3), strides=(2, 2), pads=(1, 1, 1, 1))
# Dilation 2 and stride 2 over 8 rows: blocks cover rows 0..6 (3 blocks; the floor leaves row 7, which
# the decomposition's output_padding restores as zeros); an unequal block, overlaps summed.
col2im("col2im_dilated_uncovered", 1, 2, (8, 6), (2, 3), strides=(2, 1), dilations=(2, 1))
# A 1-D Col2Im is F.fold over a (1, W) image.
x = rng.uniform(-1, 1, size=(2, 2 * 3, 4)).astype(np.float32)
add("col2im_1d", 18, "Col2Im <strides = [2]> (x, image, block)", {"x": x},
    lambda x: F.fold(x, (1, 9), (1, 3), stride=(1, 2)).reshape(2, 2, 9), (2, 2, 9), check_onnx=True,
    consts={"image": [9], "block": [3]})


out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "decompose_cases.json")
with open(out, "w") as f:
    json.dump({"generator": "tests/frontend/gen_decompose_cases.py (torch %s)" % torch.__version__, "cases": CASES},
              f, separators=(",", ":"))
    f.write("\n")
print("wrote %d cases to %s" % (len(CASES), out))
